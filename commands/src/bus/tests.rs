use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::sync::Mutex as StdMutex;

use cqrs_es::DomainEvent;
use eshop_domain::user::{User, UserCommand, UserError, UserEvent};
use eshop_domain::values::{DepositAmount, Role};
use serde_json::Value;
use uuid::Uuid;

use super::*;
use crate::context::Actor;
use crate::store::Loaded;

/// An in-memory store that can be told to report a number of conflicts before it accepts.
#[derive(Default)]
struct FakeStore {
    streams: StdMutex<HashMap<String, Vec<Value>>>,
    applied: StdMutex<HashMap<Uuid, (String, String)>>,
    conflicts_to_inject: AtomicU32,
    appends: AtomicU32,
    catch_ups: AtomicU32,
}

impl EventStore for FakeStore {
    async fn claim_holder(&self, _kind: &str, _value: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    async fn load<A: Aggregate>(&self, aggregate_id: &str) -> Result<Loaded<A>, StoreError> {
        let streams = self.streams.lock().expect("lock");
        let mut aggregate = A::default();
        let events = streams.get(aggregate_id).cloned().unwrap_or_default();
        for payload in &events {
            let event = serde_json::from_value(payload.clone())
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            aggregate.apply(event);
        }
        Ok(Loaded {
            aggregate,
            version: events.len() as u64,
        })
    }

    async fn catch_up<A: Aggregate>(
        &self,
        aggregate_id: &str,
        known: Loaded<A>,
    ) -> Result<Loaded<A>, StoreError> {
        self.catch_ups.fetch_add(1, Ordering::SeqCst);
        let streams = self.streams.lock().expect("lock");
        let events = streams.get(aggregate_id).cloned().unwrap_or_default();
        let mut aggregate = known.aggregate;
        let skip = usize::try_from(known.version).expect("small");
        for payload in events.iter().skip(skip) {
            let event = serde_json::from_value(payload.clone())
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            aggregate.apply(event);
        }
        Ok(Loaded {
            aggregate,
            version: events.len() as u64,
        })
    }

    async fn append<A>(
        &self,
        aggregate_id: &str,
        expected_version: u64,
        events: &[A::Event],
        context: &CommandContext,
    ) -> Result<u64, StoreError>
    where
        A: Aggregate,
        A::Event: DeclaresClaims,
    {
        if self
            .conflicts_to_inject
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Conflict);
        }
        let mut streams = self.streams.lock().expect("lock");
        let stream = streams.entry(aggregate_id.to_string()).or_default();
        if stream.len() as u64 != expected_version {
            return Err(StoreError::Conflict);
        }
        let mut applied = self.applied.lock().expect("lock");
        if applied.contains_key(&context.command_id) {
            return Err(StoreError::AlreadyApplied);
        }
        applied.insert(
            context.command_id,
            (A::TYPE.to_string(), aggregate_id.to_string()),
        );
        for event in events {
            assert!(!event.event_type().is_empty());
            stream.push(serde_json::to_value(event).expect("serializes"));
        }
        self.appends.fetch_add(1, Ordering::SeqCst);
        Ok(stream.len() as u64)
    }

    async fn append_all(&self, appends: &[crate::StagedAppend]) -> Result<(), StoreError> {
        // A real store answers later: let other tasks run meanwhile.
        tokio::task::yield_now().await;
        if self
            .conflicts_to_inject
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Conflict);
        }
        let mut streams = self.streams.lock().expect("lock");
        let mut applied = self.applied.lock().expect("lock");
        // All or nothing: check every append against the streams as they would be.
        let mut lengths: HashMap<String, u64> = HashMap::new();
        for append in appends {
            let length = lengths
                .entry(append.aggregate_id.clone())
                .or_insert_with(|| {
                    streams
                        .get(&append.aggregate_id)
                        .map_or(0, |stream| stream.len() as u64)
                });
            if *length != append.expected_version {
                return Err(StoreError::Conflict);
            }
            if applied.contains_key(&append.context.command_id) {
                return Err(StoreError::AlreadyApplied);
            }
            *length += append.events.len() as u64;
        }
        for append in appends {
            applied.insert(
                append.context.command_id,
                (
                    append.aggregate_type.to_string(),
                    append.aggregate_id.clone(),
                ),
            );
            let stream = streams.entry(append.aggregate_id.clone()).or_default();
            stream.extend(append.events.iter().map(|event| event.payload.clone()));
        }
        self.appends.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn applied_to(&self, command_id: Uuid) -> Result<Option<(String, String)>, StoreError> {
        Ok(self.applied.lock().expect("lock").get(&command_id).cloned())
    }
}

fn registered() -> Value {
    serde_json::to_value(UserEvent::UserRegistered {
        email: eshop_domain::Personal::new("a@example.com".into()),
        username: "alice".into(),
        password_hash: "h".into(),
        first_name: eshop_domain::Personal::new(None),
        last_name: eshop_domain::Personal::new(None),
    })
    .expect("serializes")
}

fn bus_with_user(conflicts: u32, max_attempts: u32) -> CommandBus<FakeStore> {
    let store = FakeStore::default();
    store
        .streams
        .lock()
        .expect("lock")
        .insert("u1".into(), vec![registered()]);
    store.conflicts_to_inject.store(conflicts, Ordering::SeqCst);
    CommandBus::new(
        store,
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_micros(10),
            max_delay: Duration::from_micros(100),
        },
    )
}

fn deposit(cents: i64) -> UserCommand {
    UserCommand::Deposit(DepositAmount::parse(cents).expect("valid"))
}

fn context() -> CommandContext {
    CommandContext::new(Actor::System, "test")
}

#[tokio::test]
async fn a_conflict_is_retried_and_the_command_lands_once() {
    let bus = bus_with_user(3, 5);
    let executed = bus
        .execute::<User>("u1", deposit(100), &context(), None)
        .await
        .expect("lands after retries");
    assert_eq!(executed.version, 2);
    assert_eq!(executed.aggregate.balance_cents, 100);
    assert_eq!(bus.store().appends.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retries_are_bounded() {
    let bus = bus_with_user(u32::MAX, 4);
    let error = bus
        .execute::<User>("u1", deposit(100), &context(), None)
        .await
        .expect_err("gives up");
    assert!(
        matches!(error, CommandError::Conflict { attempts: 4 }),
        "{error:?}"
    );
    assert_eq!(bus.store().appends.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_repeated_command_appends_nothing_and_answers_the_current_state() {
    let bus = bus_with_user(0, 5);
    let context = CommandContext::repeatable(Actor::System, "r", &["key"]);
    let first = bus
        .execute::<User>("u1", deposit(100), &context, None)
        .await
        .expect("first");
    let again = bus
        .execute::<User>("u1", deposit(100), &context, None)
        .await
        .expect("repeat");
    assert_eq!((first.appended, again.appended), (1, 0));
    assert_eq!(again.version, first.version);
    assert_eq!(again.aggregate.balance_cents, 100);
}

#[tokio::test]
async fn a_stale_expected_version_is_refused() {
    let bus = bus_with_user(0, 5);
    let error = bus
        .execute::<User>(
            "u1",
            UserCommand::GrantRole(Role::Admin),
            &context(),
            Some(7),
        )
        .await
        .expect_err("stale");
    assert!(
        matches!(
            error,
            CommandError::VersionMismatch {
                expected: 7,
                actual: 1
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_conflict_under_an_expected_version_becomes_a_mismatch() {
    let bus = bus_with_user(0, 5);
    // Another writer lands between our load and our append.
    bus.store()
        .streams
        .lock()
        .expect("lock")
        .get_mut("u1")
        .expect("stream")
        .push(serde_json::to_value(UserEvent::UserDeactivated).expect("serializes"));
    let error = bus
        .execute::<User>(
            "u1",
            UserCommand::GrantRole(Role::Admin),
            &context(),
            Some(1),
        )
        .await
        .expect_err("stale");
    assert!(matches!(
        error,
        CommandError::VersionMismatch {
            expected: 1,
            actual: 2
        }
    ));
}

#[tokio::test]
async fn domain_rejections_pass_through_without_appending() {
    let bus = bus_with_user(0, 5);
    let error = bus
        .execute::<User>("nobody", deposit(1), &context(), None)
        .await
        .expect_err("no such user");
    assert!(matches!(error, CommandError::Rejected(UserError::NotFound)));
    assert_eq!(bus.store().appends.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_next_command_decides_on_the_copy_in_memory_without_reading_the_store() {
    let bus = bus_with_user(0, 5);
    bus.execute::<User>("u1", deposit(100), &context(), None)
        .await
        .expect("first");
    let catch_ups = bus.store().catch_ups.load(Ordering::SeqCst);
    let second = bus
        .execute::<User>("u1", deposit(50), &context(), None)
        .await
        .expect("second");
    assert_eq!(bus.store().catch_ups.load(Ordering::SeqCst), catch_ups);
    assert_eq!((second.version, second.aggregate.balance_cents), (3, 150));
}

/// Appends a wallet event to "u1" behind the bus's back, as another replica would.
fn deposited_elsewhere(bus: &CommandBus<FakeStore>, event: UserEvent) {
    bus.store()
        .streams
        .lock()
        .expect("lock")
        .get_mut("u1")
        .expect("stream")
        .push(serde_json::to_value(event).expect("serializes"));
}

#[tokio::test]
async fn a_stale_copy_does_not_refuse_what_the_stored_aggregate_accepts() {
    let bus = bus_with_user(0, 5);
    bus.execute::<User>("u1", deposit(100), &context(), None)
        .await
        .expect("cached with 100");
    deposited_elsewhere(
        &bus,
        UserEvent::WalletDeposited {
            amount_cents: 1000,
            balance_cents: 1100,
        },
    );
    let order_id = Uuid::new_v4();
    let debited = bus
        .execute::<User>(
            "u1",
            UserCommand::Debit {
                order_id,
                amount_cents: 500,
            },
            &context(),
            None,
        )
        .await
        .expect("the store holds enough");
    assert_eq!((debited.version, debited.aggregate.balance_cents), (4, 600));
}

#[tokio::test]
async fn a_stale_copy_does_not_skip_what_the_stored_aggregate_must_do() {
    let bus = bus_with_user(0, 5);
    bus.execute::<User>("u1", deposit(1000), &context(), None)
        .await
        .expect("cached without any debit");
    let order_id = Uuid::new_v4();
    // Another replica debits for the order; here, a refund looks like nothing to do.
    deposited_elsewhere(
        &bus,
        UserEvent::WalletDebited {
            order_id,
            amount_cents: 300,
            balance_cents: 700,
        },
    );
    let refunded = bus
        .execute::<User>("u1", UserCommand::Refund { order_id }, &context(), None)
        .await
        .expect("refunds");
    assert_eq!(
        (refunded.appended, refunded.aggregate.balance_cents),
        (1, 1000)
    );
}

#[tokio::test]
async fn a_repeat_that_the_aggregate_now_refuses_still_answers_as_applied() {
    let bus = bus_with_user(0, 5);
    let order_id = Uuid::new_v4();
    let step = CommandContext::repeatable(Actor::System, "r", &["debit", &order_id.to_string()]);
    let debit = |amount_cents| UserCommand::Debit {
        order_id,
        amount_cents,
    };
    bus.execute::<User>("u1", deposit(100), &context(), None)
        .await
        .expect("deposit");
    let first = bus
        .execute::<User>("u1", debit(100), &step, None)
        .await
        .expect("first");
    let again = bus
        .execute::<User>("u1", debit(100), &step, None)
        .await
        .expect("the repeat answers, though the balance is now 0");
    assert_eq!((first.appended, again.appended), (1, 0));
    assert_eq!(again.version, first.version);
}

#[tokio::test]
async fn a_cached_aggregate_catches_up_with_events_appended_elsewhere() {
    let bus = bus_with_user(0, 5);
    bus.execute::<User>("u1", deposit(100), &context(), None)
        .await
        .expect("cached at version 2");
    // Another replica appends behind this bus's back.
    bus.store()
        .streams
        .lock()
        .expect("lock")
        .get_mut("u1")
        .expect("stream")
        .push(
            serde_json::to_value(UserEvent::WalletDeposited {
                amount_cents: 1000,
                balance_cents: 1100,
            })
            .expect("serializes"),
        );
    let executed = bus
        .execute::<User>("u1", deposit(1), &context(), None)
        .await
        .expect("lands on top");
    assert_eq!(
        (executed.version, executed.aggregate.balance_cents),
        (4, 1101)
    );
    let replayed = bus.store().load::<User>("u1").await.expect("replays");
    assert_eq!(replayed.aggregate, executed.aggregate);
}

#[tokio::test]
async fn a_rejected_command_leaves_the_cached_aggregate_intact() {
    let bus = bus_with_user(0, 5);
    bus.execute::<User>("u1", deposit(100), &context(), None)
        .await
        .expect("first");
    let refused = bus
        .execute::<User>("u1", UserCommand::Reactivate, &context(), None)
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(UserError::AlreadyActive))
    ));
    let executed = bus
        .execute::<User>("u1", deposit(1), &context(), None)
        .await
        .expect("lands");
    assert_eq!(
        (executed.version, executed.aggregate.balance_cents),
        (3, 101)
    );
}

#[tokio::test]
async fn one_command_id_on_two_aggregates_is_refused_not_skipped() {
    let bus = bus_with_user(0, 5);
    bus.store()
        .streams
        .lock()
        .expect("lock")
        .insert("u2".into(), vec![registered()]);
    let shared = context();
    bus.execute::<User>("u1", deposit(1), &shared, None)
        .await
        .expect("first aggregate");
    let second = bus.execute::<User>("u2", deposit(1), &shared, None).await;
    assert!(
        matches!(
            second,
            Err(CommandError::Store(StoreError::CommandIdReused(_)))
        ),
        "{second:?}"
    );
}

fn declared(ids: &[&'static str]) -> Vec<(&'static str, &'static str)> {
    ids.iter().map(|id| ("user", *id)).collect()
}

fn stream_length(bus: &CommandBus<FakeStore>, id: &str) -> usize {
    bus.store()
        .streams
        .lock()
        .expect("lock")
        .get(id)
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn a_batch_sees_its_own_staged_events_and_stores_them_in_one_append() {
    let bus = bus_with_user(0, 5);
    let mut batch = bus.batch(declared(&["u1"])).await;
    batch
        .execute_with::<User, _>("u1", deposit(100), &context(), |_| ())
        .await
        .expect("first");
    let second = batch
        .execute_with::<User, _>("u1", deposit(50), &context(), |user: &User| {
            user.balance_cents
        })
        .await
        .expect("second");
    assert_eq!((second.version, second.aggregate), (3, 150));
    assert_eq!(
        stream_length(&bus, "u1"),
        1,
        "nothing stored before the commit"
    );
    batch.commit().await.expect("commits");
    assert_eq!(stream_length(&bus, "u1"), 3);
    assert_eq!(bus.store().appends.load(Ordering::SeqCst), 1);
    let replayed = bus.store().load::<User>("u1").await.expect("replays");
    assert_eq!(replayed.aggregate.balance_cents, 150);
}

#[tokio::test]
async fn a_batch_that_fails_to_commit_stores_nothing_and_leaves_the_aggregates_usable() {
    let bus = bus_with_user(0, 5);
    bus.store()
        .streams
        .lock()
        .expect("lock")
        .insert("u2".into(), vec![registered()]);
    let mut batch = bus.batch(declared(&["u1", "u2"])).await;
    for id in ["u1", "u2"] {
        batch
            .execute_with::<User, _>(id, deposit(100), &context(), |_| ())
            .await
            .expect("staged");
    }
    bus.store().conflicts_to_inject.store(1, Ordering::SeqCst);
    let refused = batch.commit().await;
    assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
    assert_eq!(
        (stream_length(&bus, "u1"), stream_length(&bus, "u2")),
        (1, 1)
    );
    // The bus forgot the touched aggregates: the next command reads them afresh.
    let executed = bus
        .execute::<User>("u1", deposit(7), &context(), None)
        .await
        .expect("lands");
    assert_eq!((executed.version, executed.aggregate.balance_cents), (2, 7));
}

#[tokio::test]
async fn a_batch_on_a_stale_copy_conflicts_and_the_next_batch_lands_on_the_stored_aggregate() {
    let bus = bus_with_user(0, 5);
    bus.execute::<User>("u1", deposit(100), &context(), None)
        .await
        .expect("cached at version 2");
    deposited_elsewhere(
        &bus,
        UserEvent::WalletDeposited {
            amount_cents: 1000,
            balance_cents: 1100,
        },
    );
    let mut stale = bus.batch(declared(&["u1"])).await;
    stale
        .execute_with::<User, _>("u1", deposit(1), &context(), |_| ())
        .await
        .expect("staged");
    assert!(matches!(stale.commit().await, Err(StoreError::Conflict)));
    let mut retried = bus.batch(declared(&["u1"])).await;
    let staged = retried
        .execute_with::<User, _>("u1", deposit(1), &context(), |user: &User| {
            user.balance_cents
        })
        .await
        .expect("staged");
    retried.commit().await.expect("commits");
    assert_eq!((staged.version, staged.aggregate), (4, 1101));
}

#[tokio::test]
async fn a_batch_does_not_refuse_on_a_stale_copy() {
    let bus = bus_with_user(0, 5);
    bus.execute::<User>("u1", deposit(100), &context(), None)
        .await
        .expect("cached with 100");
    deposited_elsewhere(
        &bus,
        UserEvent::WalletDeposited {
            amount_cents: 1000,
            balance_cents: 1100,
        },
    );
    let mut batch = bus.batch(declared(&["u1"])).await;
    let debited = batch
        .execute_with::<User, _>(
            "u1",
            UserCommand::Debit {
                order_id: Uuid::new_v4(),
                amount_cents: 500,
            },
            &context(),
            |user: &User| user.balance_cents,
        )
        .await
        .expect("the store holds enough");
    batch.commit().await.expect("commits");
    assert_eq!((debited.version, debited.aggregate), (4, 600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_batches_never_wait_on_each_other_in_a_cycle() {
    let bus = Arc::new(bus_with_user(0, 50));
    let users = ["u1", "u2", "u3", "u4", "u5"];
    for user in &users[1..] {
        bus.store()
            .streams
            .lock()
            .expect("lock")
            .insert((*user).to_string(), vec![registered()]);
    }
    // Each batch deposits 1 cent into two users, named in either order.
    let batches = (0..200).map(|n| {
        let bus = bus.clone();
        let pair = [users[n % 5], users[(n / 5 + n + 1) % 5]];
        tokio::spawn(async move {
            let pair = if pair[0] == pair[1] {
                vec![pair[0]]
            } else {
                pair.to_vec()
            };
            let mut batch = bus.batch(declared(&pair)).await;
            for user in &pair {
                batch
                    .execute_with::<User, _>(user, deposit(1), &context(), |_| ())
                    .await
                    .expect("staged");
            }
            batch.commit().await.expect("commits");
            pair.len() as i64
        })
    });
    let deposited =
        tokio::time::timeout(Duration::from_secs(20), futures_join_all(batches.collect()))
            .await
            .expect("no batch waits forever");
    let total: i64 = deposited.into_iter().map(|n| n.expect("task")).sum();
    let mut stored = 0;
    for user in users {
        stored += bus
            .store()
            .load::<User>(user)
            .await
            .expect("loads")
            .aggregate
            .balance_cents;
    }
    assert_eq!(stored, total);
}

async fn futures_join_all<T>(
    handles: Vec<tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await);
    }
    results
}
