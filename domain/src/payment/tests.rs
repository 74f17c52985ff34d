use cqrs_es::test::TestFramework;

use super::*;

type PaymentTest = TestFramework<Payment>;

fn request(card_last4: Option<&str>) -> PaymentCommand {
    PaymentCommand::Request {
        order_id: Uuid::from_u128(1),
        customer_id: Uuid::from_u128(2),
        method: PaymentMethod::Card,
        amount_cents: 1250,
        card_last4: card_last4.map(str::to_string),
    }
}

fn requested() -> PaymentEvent {
    PaymentEvent::PaymentRequested {
        order_id: Uuid::from_u128(1),
        customer_id: Uuid::from_u128(2),
        method: PaymentMethod::Card,
        amount_cents: 1250,
        card_last4: Some("4242".into()),
    }
}

fn captured() -> PaymentEvent {
    PaymentEvent::PaymentCaptured {
        reference: "sim-1".into(),
    }
}

#[test]
fn a_payment_is_requested_with_the_last_four_digits_only() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(request(Some("4242")))
        .then_expect_events(vec![requested()]);
    for digits in ["4242424242424242", "42a2", "424"] {
        PaymentTest::with(())
            .given_no_previous_events()
            .when(request(Some(digits)))
            .then_expect_error(PaymentError::InvalidCardDigits);
    }
}

#[test]
fn a_requested_payment_is_captured_or_declined_once() {
    PaymentTest::with(())
        .given(vec![requested()])
        .when(PaymentCommand::Capture {
            reference: "sim-1".into(),
        })
        .then_expect_events(vec![captured()]);
    PaymentTest::with(())
        .given(vec![requested(), captured()])
        .when(PaymentCommand::Capture {
            reference: "sim-1".into(),
        })
        .then_expect_events(vec![]);
    PaymentTest::with(())
        .given(vec![requested()])
        .when(PaymentCommand::Decline {
            reason: "card declined".into(),
        })
        .then_expect_events(vec![PaymentEvent::PaymentDeclined {
            reason: "card declined".into(),
        }]);
    PaymentTest::with(())
        .given(vec![requested(), captured()])
        .when(PaymentCommand::Decline {
            reason: "late".into(),
        })
        .then_expect_error(PaymentError::InvalidTransition {
            status: PaymentStatus::Captured,
            action: "be declined",
        });
}

#[test]
fn only_a_captured_payment_is_refunded_and_only_once() {
    PaymentTest::with(())
        .given(vec![requested(), captured()])
        .when(PaymentCommand::Refund)
        .then_expect_events(vec![PaymentEvent::PaymentRefunded { amount_cents: 1250 }]);
    PaymentTest::with(())
        .given(vec![
            requested(),
            captured(),
            PaymentEvent::PaymentRefunded { amount_cents: 1250 },
        ])
        .when(PaymentCommand::Refund)
        .then_expect_events(vec![]);
    PaymentTest::with(())
        .given(vec![requested()])
        .when(PaymentCommand::Refund)
        .then_expect_error(PaymentError::InvalidTransition {
            status: PaymentStatus::Requested,
            action: "be refunded",
        });
}

#[test]
fn a_payment_is_requested_once() {
    PaymentTest::with(())
        .given(vec![requested()])
        .when(request(None))
        .then_expect_error(PaymentError::AlreadyRequested);
}
