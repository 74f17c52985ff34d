use cqrs_es::test::TestFramework;

use super::*;

type UserTest = TestFramework<User>;

fn email(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).expect("valid e-mail")
}

fn name(raw: &str) -> PersonName {
    PersonName::parse(raw).expect("valid name")
}

fn registration() -> Registration {
    Registration {
        email: email("alice@example.com"),
        username: Username::parse("alice").expect("valid username"),
        password_hash: "$argon2id$fake".into(),
        first_name: Some(name("Alice")),
        last_name: None,
    }
}

fn registered() -> UserEvent {
    UserEvent::UserRegistered {
        email: Personal::new("alice@example.com".into()),
        username: "alice".into(),
        password_hash: "$argon2id$fake".into(),
        first_name: Personal::new(Some("Alice".into())),
        last_name: Personal::new(None),
    }
}

fn deposited(amount_cents: i64, balance_cents: i64) -> UserEvent {
    UserEvent::WalletDeposited {
        amount_cents,
        balance_cents,
    }
}

fn deposit(cents: i64) -> UserCommand {
    UserCommand::Deposit(DepositAmount::parse(cents).expect("valid amount"))
}

#[test]
fn register_a_new_user() {
    UserTest::with(())
        .given_no_previous_events()
        .when(UserCommand::Register(registration()))
        .then_expect_events(vec![registered()]);
}

#[test]
fn registering_twice_is_refused() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::Register(registration()))
        .then_expect_error(UserError::AlreadyRegistered);
}

#[test]
fn registration_claims_the_email_and_the_lowercased_username() {
    let mut event = registered();
    if let UserEvent::UserRegistered { username, .. } = &mut event {
        *username = "Alice".into();
    }
    assert_eq!(
        event.unique_claims(),
        vec![
            UniqueClaim {
                kind: EMAIL_CLAIM,
                value: "alice@example.com".into()
            },
            UniqueClaim {
                kind: USERNAME_CLAIM,
                value: "alice".into()
            },
        ]
    );
}

#[test]
fn commands_on_an_unregistered_user_are_refused() {
    for command in [
        deposit(100),
        UserCommand::Deactivate,
        UserCommand::Reactivate,
        UserCommand::GrantRole(Role::Admin),
        UserCommand::RevokeRole(Role::Admin),
        UserCommand::UpdateProfile {
            first_name: Some(name("Bob")),
            last_name: None,
            email: None,
        },
    ] {
        UserTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(UserError::NotFound);
    }
}

#[test]
fn update_profile_records_only_what_changed() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::UpdateProfile {
            first_name: None,
            last_name: Some(name("Smith")),
            email: Some(email("ALICE@example.com")),
        })
        .then_expect_events(vec![UserEvent::ProfileChanged {
            first_name: Personal::new(Some("Alice".into())),
            last_name: Personal::new(Some("Smith".into())),
        }]);
}

#[test]
fn change_email_emits_email_changed_with_its_claim() {
    let events = UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::UpdateProfile {
            first_name: None,
            last_name: None,
            email: Some(email("new@example.com")),
        })
        .inspect_result()
        .expect("accepted");
    assert_eq!(
        events,
        vec![UserEvent::EmailChanged {
            email: Personal::new("new@example.com".into())
        }]
    );
    assert_eq!(
        events[0].unique_claims(),
        vec![UniqueClaim {
            kind: EMAIL_CLAIM,
            value: "new@example.com".into()
        }]
    );
}

#[test]
fn an_unchanged_profile_emits_nothing() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::UpdateProfile {
            first_name: Some(name("Alice")),
            last_name: None,
            email: Some(email("alice@example.com")),
        })
        .then_expect_events(vec![]);
}

#[test]
fn deposits_accumulate_the_balance() {
    UserTest::with(())
        .given(vec![registered(), deposited(500, 500)])
        .when(deposit(250))
        .then_expect_events(vec![deposited(250, 750)]);
}

#[test]
fn a_balance_cannot_overflow() {
    UserTest::with(())
        .given(vec![registered(), deposited(1, i64::MAX)])
        .when(deposit(1))
        .then_expect_error(UserError::BalanceLimit);
}

#[test]
fn a_deactivated_user_cannot_deposit_or_change_profile() {
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDeactivated])
        .when(deposit(100))
        .then_expect_error(UserError::Deactivated);
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDeactivated])
        .when(UserCommand::UpdateProfile {
            first_name: Some(name("Eve")),
            last_name: None,
            email: None,
        })
        .then_expect_error(UserError::Deactivated);
}

#[test]
fn deactivate_is_idempotent() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::Deactivate)
        .then_expect_events(vec![UserEvent::UserDeactivated]);
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDeactivated])
        .when(UserCommand::Deactivate)
        .then_expect_events(vec![]);
}

#[test]
fn reactivate_needs_a_deactivated_user() {
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDeactivated])
        .when(UserCommand::Reactivate)
        .then_expect_events(vec![UserEvent::UserReactivated]);
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::Reactivate)
        .then_expect_error(UserError::AlreadyActive);
}

#[test]
fn roles_are_granted_and_revoked_once() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::GrantRole(Role::Auditor))
        .then_expect_events(vec![UserEvent::RoleGranted {
            role: Role::Auditor,
        }]);
    UserTest::with(())
        .given(vec![
            registered(),
            UserEvent::RoleGranted {
                role: Role::Auditor,
            },
        ])
        .when(UserCommand::GrantRole(Role::Auditor))
        .then_expect_events(vec![]);
    UserTest::with(())
        .given(vec![
            registered(),
            UserEvent::RoleGranted { role: Role::Admin },
        ])
        .when(UserCommand::RevokeRole(Role::Admin))
        .then_expect_events(vec![UserEvent::RoleRevoked { role: Role::Admin }]);
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::RevokeRole(Role::Admin))
        .then_expect_events(vec![]);
}

#[test]
fn events_serialize_with_a_stable_shape() {
    let json = serde_json::to_value(deposited(250, 750)).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({"type": "WalletDeposited", "data": {"amount_cents": 250, "balance_cents": 750}})
    );
}

fn order(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

fn debited(n: u128, amount_cents: i64, balance_cents: i64) -> UserEvent {
    UserEvent::WalletDebited {
        order_id: order(n),
        amount_cents,
        balance_cents,
    }
}

#[test]
fn a_debit_pays_for_an_order_once() {
    UserTest::with(())
        .given(vec![registered(), deposited(1000, 1000)])
        .when(UserCommand::Debit {
            order_id: order(1),
            amount_cents: 300,
        })
        .then_expect_events(vec![debited(1, 300, 700)]);
    UserTest::with(())
        .given(vec![
            registered(),
            deposited(1000, 1000),
            debited(1, 300, 700),
        ])
        .when(UserCommand::Debit {
            order_id: order(1),
            amount_cents: 300,
        })
        .then_expect_events(vec![]);
}

#[test]
fn a_balance_never_goes_below_zero() {
    UserTest::with(())
        .given(vec![
            registered(),
            deposited(1000, 1000),
            debited(1, 800, 200),
        ])
        .when(UserCommand::Debit {
            order_id: order(2),
            amount_cents: 201,
        })
        .then_expect_error(UserError::InsufficientBalance { balance_cents: 200 });
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::Debit {
            order_id: order(3),
            amount_cents: -5,
        })
        .then_expect_error(UserError::NegativeAmount);
}

#[test]
fn a_refund_gives_the_debit_back_once() {
    let refunded = UserEvent::WalletRefunded {
        order_id: order(1),
        amount_cents: 300,
        balance_cents: 1000,
    };
    UserTest::with(())
        .given(vec![
            registered(),
            deposited(1000, 1000),
            debited(1, 300, 700),
        ])
        .when(UserCommand::Refund { order_id: order(1) })
        .then_expect_events(vec![refunded.clone()]);
    UserTest::with(())
        .given(vec![
            registered(),
            deposited(1000, 1000),
            debited(1, 300, 700),
            refunded,
        ])
        .when(UserCommand::Refund { order_id: order(1) })
        .then_expect_events(vec![]);
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::Refund { order_id: order(9) })
        .then_expect_events(vec![]);
}

#[test]
fn a_password_change_records_the_new_hash() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::ChangePassword {
            password_hash: "$argon2id$new".into(),
        })
        .then_expect_events(vec![UserEvent::PasswordChanged {
            password_hash: "$argon2id$new".into(),
        }]);
}

#[test]
fn a_deactivated_user_cannot_change_the_password() {
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDeactivated])
        .when(UserCommand::ChangePassword {
            password_hash: "$argon2id$new".into(),
        })
        .then_expect_error(UserError::Deactivated);
}

#[test]
fn erasure_happens_once_and_closes_the_account() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::Erase)
        .then_expect_events(vec![UserEvent::UserErased]);
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserErased])
        .when(UserCommand::Erase)
        .then_expect_events(vec![]);
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserErased])
        .when(deposit(100))
        .then_expect_error(UserError::Erased);
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserErased])
        .when(UserCommand::Reactivate)
        .then_expect_error(UserError::Erased);
}

#[test]
fn an_erased_user_keeps_no_personal_data_in_memory() {
    let mut user = User::default();
    user.apply(registered());
    user.apply(UserEvent::UserErased);
    assert!(user.erased && !user.active);
    assert_eq!(user.email.expose(), "");
    assert_eq!(user.first_name.expose(), &None);
    assert!(user.password_hash.is_empty());
}

/// Erasure only reaches the fields `personal_fields` names: every event that carries personal
/// data must carry it there and nowhere else.
#[test]
fn personal_fields_name_every_personal_value() {
    let sentinel = "sentinel-personal-value";
    let events = vec![
        UserEvent::UserRegistered {
            email: Personal::new(format!("{sentinel}@example.com")),
            username: "ann".into(),
            password_hash: String::new(),
            first_name: Personal::new(Some(sentinel.into())),
            last_name: Personal::new(Some(sentinel.into())),
        },
        UserEvent::ProfileChanged {
            first_name: Personal::new(Some(sentinel.into())),
            last_name: Personal::new(Some(sentinel.into())),
        },
        UserEvent::EmailChanged {
            email: Personal::new(format!("{sentinel}@example.com")),
        },
    ];
    for event in events {
        let mut json = serde_json::to_value(&event).expect("serializes");
        let data = json["data"].as_object_mut().expect("an object");
        for field in crate::personal_fields(User::TYPE) {
            data.remove(*field);
        }
        assert!(
            !json.to_string().contains(sentinel),
            "{} carries personal data outside personal_fields",
            event.event_type()
        );
    }
}
