use cqrs_es::test::TestFramework;

use super::*;

type OrderTest = TestFramework<Order>;

fn customer() -> Uuid {
    Uuid::from_u128(7)
}

fn line(product: u128, quantity: i64, price: i64) -> OrderLine {
    OrderLine {
        product_id: Uuid::from_u128(product),
        quantity,
        unit_price_cents: price,
    }
}

fn place(lines: Vec<OrderLine>) -> OrderCommand {
    OrderCommand::Place {
        customer_id: customer(),
        lines,
        payment: PaymentInstrument::balance(),
    }
}

fn placed() -> OrderEvent {
    OrderEvent::OrderPlaced {
        customer_id: customer(),
        lines: vec![line(1, 2, 500), line(2, 1, 250)],
        total_cents: 1250,
        payment: PaymentInstrument::balance(),
    }
}

fn paid() -> OrderEvent {
    OrderEvent::OrderPaid {
        payment_id: Uuid::from_u128(9),
    }
}

#[test]
fn placing_computes_the_total() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(place(vec![line(1, 2, 500), line(2, 1, 250)]))
        .then_expect_events(vec![placed()]);
}

#[test]
fn invalid_lines_are_refused() {
    for lines in [
        vec![],
        vec![line(1, 0, 500)],
        vec![line(1, MAX_QUANTITY_PER_LINE + 1, 1)],
        vec![line(1, 1, -1)],
        vec![line(1, 1, 100), line(1, 2, 100)],
    ] {
        OrderTest::with(())
            .given_no_previous_events()
            .when(place(lines))
            .then_expect_error(OrderError::InvalidLines);
    }
    OrderTest::with(())
        .given_no_previous_events()
        .when(place(vec![line(1, 1000, i64::MAX / 10)]))
        .then_expect_error(OrderError::TotalTooLarge);
}

#[test]
fn an_order_is_placed_once() {
    OrderTest::with(())
        .given(vec![placed()])
        .when(place(vec![line(1, 1, 1)]))
        .then_expect_error(OrderError::AlreadyPlaced);
}

#[test]
fn the_happy_path_reserves_pays_and_confirms() {
    OrderTest::with(())
        .given(vec![placed()])
        .when(OrderCommand::RecordStockReserved)
        .then_expect_events(vec![OrderEvent::OrderStockReserved]);
    OrderTest::with(())
        .given(vec![placed(), OrderEvent::OrderStockReserved])
        .when(OrderCommand::RecordPaid {
            payment_id: Uuid::from_u128(9),
        })
        .then_expect_events(vec![paid()]);
    OrderTest::with(())
        .given(vec![placed(), OrderEvent::OrderStockReserved, paid()])
        .when(OrderCommand::Confirm)
        .then_expect_events(vec![OrderEvent::OrderConfirmed]);
}

#[test]
fn repeated_steps_change_nothing() {
    let confirmed = vec![
        placed(),
        OrderEvent::OrderStockReserved,
        paid(),
        OrderEvent::OrderConfirmed,
    ];
    for command in [
        OrderCommand::RecordStockReserved,
        OrderCommand::RecordPaid {
            payment_id: Uuid::from_u128(9),
        },
        OrderCommand::Confirm,
    ] {
        OrderTest::with(())
            .given(confirmed.clone())
            .when(command)
            .then_expect_events(vec![]);
    }
}

#[test]
fn steps_out_of_order_are_refused() {
    OrderTest::with(())
        .given(vec![placed()])
        .when(OrderCommand::Confirm)
        .then_expect_error(OrderError::InvalidTransition {
            status: OrderStatus::Placed,
            action: "be confirmed",
        });
    OrderTest::with(())
        .given(vec![placed()])
        .when(OrderCommand::RecordPaid {
            payment_id: Uuid::from_u128(9),
        })
        .then_expect_error(OrderError::InvalidTransition {
            status: OrderStatus::Placed,
            action: "be paid",
        });
    OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::Confirm)
        .then_expect_error(OrderError::NotFound);
}

#[test]
fn a_customer_cancels_only_before_payment() {
    OrderTest::with(())
        .given(vec![placed(), OrderEvent::OrderStockReserved])
        .when(OrderCommand::Cancel {
            reason: "changed my mind".into(),
        })
        .then_expect_events(vec![OrderEvent::OrderCancelled {
            reason: "changed my mind".into(),
        }]);
    OrderTest::with(())
        .given(vec![placed(), OrderEvent::OrderStockReserved, paid()])
        .when(OrderCommand::Cancel {
            reason: "too late".into(),
        })
        .then_expect_error(OrderError::InvalidTransition {
            status: OrderStatus::Paid,
            action: "be cancelled",
        });
}

#[test]
fn the_process_manager_fails_an_unconfirmed_order_once() {
    OrderTest::with(())
        .given(vec![placed(), OrderEvent::OrderStockReserved, paid()])
        .when(OrderCommand::Fail {
            reason: "timeout".into(),
        })
        .then_expect_events(vec![OrderEvent::OrderFailed {
            reason: "timeout".into(),
        }]);
    OrderTest::with(())
        .given(vec![
            placed(),
            OrderEvent::OrderFailed {
                reason: "out of stock".into(),
            },
        ])
        .when(OrderCommand::Fail {
            reason: "again".into(),
        })
        .then_expect_events(vec![]);
    OrderTest::with(())
        .given(vec![
            placed(),
            OrderEvent::OrderStockReserved,
            paid(),
            OrderEvent::OrderConfirmed,
        ])
        .when(OrderCommand::Fail {
            reason: "late".into(),
        })
        .then_expect_error(OrderError::InvalidTransition {
            status: OrderStatus::Confirmed,
            action: "fail",
        });
}

#[test]
fn terminal_states() {
    assert!(OrderStatus::Confirmed.is_terminal());
    assert!(OrderStatus::Cancelled.is_terminal());
    assert!(OrderStatus::Failed.is_terminal());
    assert!(!OrderStatus::Paid.is_terminal());
}

fn card(last4: &str) -> PaymentInstrument {
    PaymentInstrument {
        method: PaymentMethod::Card,
        token: Some(format!("tok_{last4}")),
        card_last4: Some(last4.into()),
        card_brand: Some("visa".into()),
    }
}

fn failed(reason: &str) -> OrderEvent {
    OrderEvent::OrderFailed {
        reason: reason.into(),
    }
}

#[test]
fn an_order_whose_payment_was_refused_is_paid_again_as_a_new_attempt() {
    for reason in RETRYABLE_REASONS {
        OrderTest::with(())
            .given(vec![
                placed(),
                OrderEvent::OrderStockReserved,
                failed(reason),
            ])
            .when(OrderCommand::RetryPayment {
                payment: card("4242"),
            })
            .then_expect_events(vec![OrderEvent::OrderPaymentRetried {
                payment: card("4242"),
                attempt: 2,
            }]);
    }
    OrderTest::with(())
        .given(vec![
            placed(),
            failed("payment_declined"),
            OrderEvent::OrderPaymentRetried {
                payment: card("0002"),
                attempt: 2,
            },
            failed("payment_declined"),
        ])
        .when(OrderCommand::RetryPayment {
            payment: card("4242"),
        })
        .then_expect_events(vec![OrderEvent::OrderPaymentRetried {
            payment: card("4242"),
            attempt: 3,
        }]);
}

#[test]
fn a_placed_order_changes_instrument_within_its_attempt() {
    OrderTest::with(())
        .given(vec![placed()])
        .when(OrderCommand::RetryPayment {
            payment: card("4242"),
        })
        .then_expect_events(vec![OrderEvent::OrderPaymentRetried {
            payment: card("4242"),
            attempt: 1,
        }]);
}

#[test]
fn an_order_failed_for_another_reason_or_already_paying_is_not_paid_again() {
    let retry = || OrderCommand::RetryPayment {
        payment: card("4242"),
    };
    for given in [
        vec![placed(), failed("out_of_stock")],
        vec![placed(), failed("timed_out")],
        vec![placed(), OrderEvent::OrderStockReserved],
        vec![placed(), OrderEvent::OrderStockReserved, paid()],
        vec![
            placed(),
            OrderEvent::OrderCancelled {
                reason: "no".into(),
            },
        ],
    ] {
        let status = {
            let mut order = Order::default();
            for event in given.clone() {
                order.apply(event);
            }
            order.status
        };
        OrderTest::with(())
            .given(given)
            .when(retry())
            .then_expect_error(OrderError::InvalidTransition {
                status,
                action: "be paid again",
            });
    }
    OrderTest::with(())
        .given_no_previous_events()
        .when(retry())
        .then_expect_error(OrderError::NotFound);
}
