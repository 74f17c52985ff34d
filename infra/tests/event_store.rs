//! The Postgres event store against a real server: appends, conflicts across replicas, unique
//! claims under races, applied commands, and the append-only guarantee.

use std::sync::Arc;
use std::time::Duration;

use eshop_commands::{
    Actor, CommandBus, CommandContext, CommandError, EventStore, RetryPolicy, StagedAppend,
    StagedEvent,
};
use eshop_domain::user::{Registration, User, UserCommand, UserError};
use eshop_domain::values::{DepositAmount, EmailAddress, Username};
use eshop_infra::testing::fresh_database;
use eshop_infra::PgEventStore;
use sqlx::PgPool;
use uuid::Uuid;

/// Two buses over one database behave like two replicas: their local queues do not see each
/// other, so they collide in the store.
async fn two_replicas() -> (
    PgPool,
    Arc<CommandBus<PgEventStore>>,
    Arc<CommandBus<PgEventStore>>,
) {
    let (_, pool) = fresh_database().await;
    let retry = RetryPolicy {
        max_attempts: 100,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    };
    let replica = || Arc::new(CommandBus::new(PgEventStore::new(pool.clone()), retry));
    (pool.clone(), replica(), replica())
}

fn registration(email: &str, username: &str) -> UserCommand {
    UserCommand::Register(Registration {
        email: EmailAddress::parse(email).expect("valid"),
        username: Username::parse(username).expect("valid"),
        password_hash: "$argon2id$test".into(),
        first_name: None,
        last_name: None,
    })
}

fn context() -> CommandContext {
    CommandContext::new(Actor::System, "test")
}

async fn event_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .expect("counts")
}

#[tokio::test]
async fn concurrent_deposits_from_two_replicas_all_land() {
    let (pool, a, b) = two_replicas().await;
    let user = Uuid::now_v7().to_string();
    a.execute::<User>(
        &user,
        registration("w@example.com", "wallet"),
        &context(),
        None,
    )
    .await
    .expect("registered");

    let deposits = (1..=50).map(|amount| {
        let bus = if amount % 2 == 0 {
            a.clone()
        } else {
            b.clone()
        };
        let user = user.clone();
        tokio::spawn(async move {
            let amount = DepositAmount::parse(amount).expect("valid");
            bus.execute::<User>(&user, UserCommand::Deposit(amount), &context(), None)
                .await
                .map(|_| ())
        })
    });
    for outcome in futures::future::join_all(deposits).await {
        outcome.expect("task").expect("deposit landed");
    }

    let loaded = a.store().load::<User>(&user).await.expect("loads");
    assert_eq!(loaded.aggregate.balance_cents, (1..=50).sum::<i64>());
    assert_eq!(loaded.version, 51);
    assert_eq!(event_count(&pool).await, 51);
}

#[tokio::test]
async fn one_email_registered_concurrently_is_taken_exactly_once() {
    let (pool, a, b) = two_replicas().await;
    let attempts = (0..20).map(|n| {
        let bus = if n % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            let id = Uuid::now_v7().to_string();
            bus.execute::<User>(
                &id,
                registration("Same@Example.com", &format!("user{n}")),
                &context(),
                None,
            )
            .await
            .map(|_| ())
        })
    });
    let outcomes = futures::future::join_all(attempts).await;
    let succeeded = outcomes.iter().filter(|o| matches!(o, Ok(Ok(())))).count();
    let taken = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Err(CommandError::ClaimTaken { kind })) if kind == "email"))
        .count();
    assert_eq!((succeeded, taken), (1, 19));
    assert_eq!(event_count(&pool).await, 1);
}

#[tokio::test]
async fn a_username_differing_only_in_case_is_taken() {
    let (_, a, _) = two_replicas().await;
    a.execute::<User>(
        &Uuid::now_v7().to_string(),
        registration("a@example.com", "Alice"),
        &context(),
        None,
    )
    .await
    .expect("first");
    let second = a
        .execute::<User>(
            &Uuid::now_v7().to_string(),
            registration("b@example.com", "alice"),
            &context(),
            None,
        )
        .await;
    assert!(matches!(second, Err(CommandError::ClaimTaken { kind }) if kind == "username"));
}

#[tokio::test]
async fn a_changed_email_frees_the_old_one() {
    let (_, a, _) = two_replicas().await;
    let first = Uuid::now_v7().to_string();
    a.execute::<User>(
        &first,
        registration("old@example.com", "first"),
        &context(),
        None,
    )
    .await
    .expect("registered");
    let change = UserCommand::UpdateProfile {
        first_name: None,
        last_name: None,
        email: Some(EmailAddress::parse("new@example.com").expect("valid")),
    };
    a.execute::<User>(&first, change, &context(), None)
        .await
        .expect("changed");
    a.execute::<User>(
        &Uuid::now_v7().to_string(),
        registration("old@example.com", "second"),
        &context(),
        None,
    )
    .await
    .expect("the old address is free again");
    let third = a
        .execute::<User>(
            &Uuid::now_v7().to_string(),
            registration("new@example.com", "third"),
            &context(),
            None,
        )
        .await;
    assert!(matches!(third, Err(CommandError::ClaimTaken { .. })));
}

#[tokio::test]
async fn a_repeatable_command_applies_once_across_replicas() {
    let (pool, a, b) = two_replicas().await;
    let user = Uuid::now_v7().to_string();
    a.execute::<User>(
        &user,
        registration("r@example.com", "repeat"),
        &context(),
        None,
    )
    .await
    .expect("registered");
    let repeated = CommandContext::repeatable(Actor::System, "r", &["same-key"]);
    let runs = (0..10).map(|n| {
        let bus = if n % 2 == 0 { a.clone() } else { b.clone() };
        let user = user.clone();
        let repeated = repeated.clone();
        tokio::spawn(async move {
            let amount = DepositAmount::parse(500).expect("valid");
            bus.execute::<User>(&user, UserCommand::Deposit(amount), &repeated, None)
                .await
                .map(|executed| executed.aggregate.balance_cents)
        })
    });
    for outcome in futures::future::join_all(runs).await {
        assert_eq!(outcome.expect("task").expect("answered"), 500);
    }
    assert_eq!(event_count(&pool).await, 2);
}

#[tokio::test]
async fn events_carry_the_metadata_and_store_columns() {
    let (pool, a, _) = two_replicas().await;
    let user = Uuid::now_v7().to_string();
    let actor = Actor::User(Uuid::now_v7());
    let context = CommandContext::new(actor, "req-42");
    a.execute::<User>(&user, registration("m@example.com", "meta"), &context, None)
        .await
        .expect("registered");
    let (metadata, position, has_xid, recorded): (serde_json::Value, i64, bool, bool) =
        sqlx::query_as(
            "SELECT metadata, position, xid IS NOT NULL, recorded_at <= now() FROM events",
        )
        .fetch_one(&pool)
        .await
        .expect("one event");
    assert_eq!(metadata["command_id"], context.command_id.to_string());
    assert_eq!(
        metadata["correlation_id"],
        context.correlation_id.to_string()
    );
    assert_eq!(metadata["causation_id"], context.causation_id.to_string());
    assert_eq!(metadata["actor"], actor.to_string());
    assert_eq!(metadata["request_id"], "req-42");
    assert!(metadata["event_id"]
        .as_str()
        .is_some_and(|id| id.parse::<Uuid>().is_ok()));
    assert!(position > 0 && has_xid && recorded);
}

#[tokio::test]
async fn events_cannot_be_updated_or_deleted() {
    let (pool, a, _) = two_replicas().await;
    a.execute::<User>(
        &Uuid::now_v7().to_string(),
        registration("x@example.com", "immutable"),
        &context(),
        None,
    )
    .await
    .expect("registered");
    for statement in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let refused = sqlx::query(statement).execute(&pool).await;
        assert!(refused.is_err(), "{statement} was allowed");
    }
    assert_eq!(event_count(&pool).await, 1);
}

#[tokio::test]
async fn a_rejected_command_appends_nothing() {
    let (pool, a, _) = two_replicas().await;
    let outcome = a
        .execute::<User>(
            &Uuid::now_v7().to_string(),
            UserCommand::Deposit(DepositAmount::parse(5).expect("valid")),
            &context(),
            None,
        )
        .await;
    assert!(matches!(
        outcome,
        Err(CommandError::Rejected(UserError::NotFound))
    ));
    assert_eq!(event_count(&pool).await, 0);
}

/// The buses keep aggregates in memory between commands; whatever interleaving of two replicas,
/// what they hold equals a full replay from the store.
#[tokio::test]
async fn cached_aggregates_equal_a_full_replay() {
    use eshop_domain::user::User;
    let (_, a, b) = two_replicas().await;
    let user = Uuid::now_v7().to_string();
    a.execute::<User>(
        &user,
        registration("c@example.com", "cached"),
        &context(),
        None,
    )
    .await
    .expect("registered");
    let commands = (0..120).map(|n| {
        let bus = if fastrand::bool() {
            a.clone()
        } else {
            b.clone()
        };
        let user = user.clone();
        tokio::spawn(async move {
            let order_id = Uuid::from_u128(n / 3);
            let command = match n % 3 {
                0 => UserCommand::Deposit(DepositAmount::parse(100 + n as i64).expect("valid")),
                1 => UserCommand::Debit {
                    order_id,
                    amount_cents: 50,
                },
                _ => UserCommand::Refund { order_id },
            };
            // Debits may find too little money; that is a valid outcome here.
            let _ = bus.execute::<User>(&user, command, &context(), None).await;
        })
    });
    futures::future::join_all(commands).await;

    let replayed = a.store().load::<User>(&user).await.expect("replays");
    for bus in [&a, &b] {
        // A command that changes nothing answers with what the bus holds, caught up.
        let held = bus
            .execute::<User>(
                &user,
                UserCommand::RevokeRole(eshop_domain::values::Role::Auditor),
                &context(),
                None,
            )
            .await
            .expect("no-op");
        assert_eq!(held.version, replayed.version);
        assert_eq!(held.aggregate, replayed.aggregate);
    }
    assert!(replayed.version > 60, "most commands landed");
}

fn staged_deposit(user: &str, expected_version: u64, balance_cents: i64) -> StagedAppend {
    StagedAppend {
        aggregate_type: "user",
        aggregate_id: user.to_string(),
        expected_version,
        events: vec![StagedEvent {
            event_type: "WalletDeposited".into(),
            event_version: "1".into(),
            payload: serde_json::json!({
                "type": "WalletDeposited",
                "data": {"amount_cents": balance_cents, "balance_cents": balance_cents}
            }),
        }],
        context: context(),
    }
}

#[tokio::test]
async fn appends_staged_together_land_together_or_not_at_all() {
    let (pool, a, _) = two_replicas().await;
    let [first, second] = [Uuid::now_v7().to_string(), Uuid::now_v7().to_string()];
    for (user, name) in [(&first, "first"), (&second, "second")] {
        a.execute::<User>(
            user,
            registration(&format!("{name}@example.com"), name),
            &context(),
            None,
        )
        .await
        .expect("registered");
    }
    let before = event_count(&pool).await;

    // The second append is stale (version 0, the stream is at 1): neither lands.
    let stale = [
        staged_deposit(&first, 1, 10),
        staged_deposit(&second, 0, 20),
    ];
    let refused = a.store().append_all(&stale).await;
    assert!(
        matches!(refused, Err(eshop_commands::StoreError::Conflict)),
        "{refused:?}"
    );
    assert_eq!(event_count(&pool).await, before);
    for append in &stale {
        let applied = a.store().applied_to(append.context.command_id).await;
        assert!(matches!(applied, Ok(None)), "{applied:?}");
    }

    let fresh = [
        staged_deposit(&first, 1, 10),
        staged_deposit(&second, 1, 20),
    ];
    a.store().append_all(&fresh).await.expect("both land");
    let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, position, xid::text FROM events
          WHERE event_type = 'WalletDeposited' ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .expect("reads");
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].0.as_str(), rows[0].1), (first.as_str(), 2));
    assert_eq!((rows[1].0.as_str(), rows[1].1), (second.as_str(), 2));
    assert_eq!(rows[1].2, rows[0].2 + 1, "staged order, adjacent positions");
    assert_eq!(rows[0].3, rows[1].3, "one transaction");
    for append in &fresh {
        let applied = a
            .store()
            .applied_to(append.context.command_id)
            .await
            .expect("reads");
        assert_eq!(
            applied,
            Some(("user".to_string(), append.aggregate_id.clone()))
        );
    }
    assert_eq!(
        a.store()
            .load::<User>(&second)
            .await
            .expect("loads")
            .aggregate
            .balance_cents,
        20
    );
}
