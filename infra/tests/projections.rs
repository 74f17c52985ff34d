//! The generic projection builder: a read model added with one module and one registration
//! line, gaps filled from the store, and a builder taking over at once from one that died with
//! messages delivered and unacknowledged.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull;
use futures::StreamExt;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use eshop_domain::product::ProductEvent;
use eshop_infra::personal_data::PersonalDataKeys;
use eshop_infra::projector::{Projector, ProjectorContext};
use eshop_infra::read_models::registry::ReadModels;
use eshop_infra::read_models::{apply_events, Records, StoreReader};
use eshop_infra::relay::{Relay, RelaySettings};
use eshop_infra::shutdown::shutdown_pair;
use eshop_infra::testing::{fresh_database, fresh_stream, stream_len};
use eshop_projections::product::ProductRecord;
use eshop_projections::RelayedEvent;

/// A read model that exists only in this test: each product's title and how often it was
/// restocked. This module is all it takes (and a table, which a migration would create).
mod restocks {
    use eshop_domain::product::ProductEvent;
    use eshop_infra::read_models::JsonTable;
    use eshop_projections::{step, ProjectionError, ReadModel, RelayedEvent, Step};
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    pub const TABLE_SQL: &str =
        "CREATE TABLE test_restocks (id uuid PRIMARY KEY, title text NOT NULL, record jsonb NOT NULL, version bigint NOT NULL)";

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Restocks {
        pub id: Uuid,
        pub title: String,
        pub restocks: u32,
        pub version: u64,
    }

    impl ReadModel for Restocks {
        const NAME: &'static str = "test_restocks";
        const AGGREGATE_TYPE: &'static str = "product";

        fn id(&self) -> Uuid {
            self.id
        }
        fn version(&self) -> u64 {
            self.version
        }
        fn apply(
            current: Option<&Self>,
            event: &RelayedEvent,
        ) -> Result<Option<Self>, ProjectionError> {
            if step(event, current.map_or(0, |row| row.version))? == Step::Seen {
                return Ok(None);
            }
            let mut row = match (current, event.decode::<ProductEvent>()?) {
                (None, ProductEvent::ProductAdded { title, .. }) => Restocks {
                    id: event
                        .aggregate_id
                        .parse()
                        .map_err(|error| event.unreadable(error))?,
                    title,
                    restocks: 0,
                    version: 0,
                },
                (Some(row), ProductEvent::ProductRestocked { .. }) => Restocks {
                    restocks: row.restocks + 1,
                    ..row.clone()
                },
                (Some(row), _) => row.clone(),
                (None, _) => return Err(event.unreadable("the first event is not ProductAdded")),
            };
            row.version = event.sequence;
            Ok(Some(row))
        }
    }

    impl JsonTable for Restocks {
        const TABLE: &'static str = "test_restocks";
        const COLUMNS: &'static [(&'static str, &'static str)] = &[("title", "record->>'title'")];
    }
}

fn added(title: &str) -> ProductEvent {
    ProductEvent::ProductAdded {
        title: title.into(),
        author: "Ursula K. Le Guin".into(),
        published_date: "1969-03-01".parse().expect("date"),
        description: "A winter planet.".into(),
        price_cents: 1200,
        stock: 3,
        category: "science-fiction".into(),
        category_id: None,
    }
}

fn restocked(stock: i64) -> ProductEvent {
    ProductEvent::ProductRestocked { quantity: 1, stock }
}

/// Appends events straight to the store, in this order, in one transaction.
async fn append(pool: &PgPool, events: &[(Uuid, u64, ProductEvent)]) {
    let mut tx = pool.begin().await.expect("begin");
    for (id, sequence, event) in events {
        let event_type = serde_json::to_value(event).expect("json")["type"]
            .as_str()
            .unwrap_or("ProductEvent")
            .to_string();
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('product', $1, $2, $3, '1', $4, $5)",
        )
        .bind(id.to_string())
        .bind(i64::try_from(*sequence).expect("small"))
        .bind(event_type)
        .bind(serde_json::to_value(event).expect("json"))
        .bind(json!({"event_id": Uuid::new_v4()}))
        .execute(&mut *tx)
        .await
        .expect("append");
    }
    tx.commit().await.expect("commit");
}

fn context(
    pool: &PgPool,
    jetstream: &async_nats::jetstream::Context,
    subjects: &eshop_infra::nats::EventSubjects,
) -> ProjectorContext {
    ProjectorContext {
        pool: pool.clone(),
        jetstream: jetstream.clone(),
        subjects: subjects.clone(),
        cache: None,
        settings: Default::default(),
    }
}

#[tokio::test]
async fn a_read_model_added_with_one_module_and_one_line_is_built_from_the_stream() {
    let (_, pool) = fresh_database().await;
    sqlx::query(restocks::TABLE_SQL)
        .execute(&pool)
        .await
        .expect("table");
    let (jetstream, subjects) = fresh_stream().await;
    let (stop, shutdown) = shutdown_pair();

    // The one line: this process builds the new read model.
    let read_models = ReadModels::new().with::<restocks::Restocks>();

    let mut workers = vec![tokio::spawn(
        Relay::new(
            pool.clone(),
            jetstream.clone(),
            subjects.clone(),
            RelaySettings::default(),
        )
        .run(shutdown.clone()),
    )];
    for read_model in read_models.iter() {
        workers.push(tokio::spawn(
            read_model.run(context(&pool, &jetstream, &subjects), shutdown.clone()),
        ));
    }
    let (dune, earthsea) = (Uuid::now_v7(), Uuid::now_v7());
    append(
        &pool,
        &[
            (dune, 1, added("Dune")),
            (earthsea, 1, added("Earthsea")),
            (dune, 2, restocked(4)),
            (dune, 3, restocked(5)),
        ],
    )
    .await;

    let records = Records::<restocks::Restocks>::new(pool.clone());
    let built = records
        .wait_for_version(dune, 3, Duration::from_secs(20))
        .await
        .expect("reads")
        .expect("built from the stream");
    assert_eq!((built.title.as_str(), built.restocks), ("Dune", 2));
    let other = records.get(earthsea).await.expect("reads").expect("built");
    assert_eq!((other.title.as_str(), other.restocks), ("Earthsea", 0));
    let title: String = sqlx::query_scalar("SELECT title FROM test_restocks WHERE id = $1")
        .bind(dune)
        .fetch_one(&pool)
        .await
        .expect("its query column");
    assert_eq!(title, "Dune");
    assert_eq!(read_models.names(), vec!["test_restocks"]);

    stop.trigger();
    for worker in workers {
        worker.await.expect("stops");
    }
    let _ = jetstream.delete_stream(subjects.stream_name()).await;
}

#[tokio::test]
async fn an_event_after_a_gap_has_the_missing_events_read_from_the_store() {
    let (_, pool) = fresh_database().await;
    let id = Uuid::now_v7();
    append(
        &pool,
        &[
            (id, 1, added("Dune")),
            (id, 2, restocked(9)),
            (id, 3, restocked(10)),
        ],
    )
    .await;
    let relayed = |sequence: u64, event: &ProductEvent| RelayedEvent {
        position: 0,
        aggregate_type: "product".into(),
        aggregate_id: id.to_string(),
        sequence,
        event_type: "test".into(),
        event_version: "1".into(),
        recorded_at: chrono::Utc::now(),
        metadata: json!({}),
        payload: serde_json::to_value(event).expect("json"),
    };
    let store = StoreReader::new(PersonalDataKeys::new(pool.clone()));
    let mut tx = pool.begin().await.expect("begin");
    // Only the first and the third event arrive (the second went to a builder that died).
    apply_events::<ProductRecord>(&mut tx, &[relayed(1, &added("Dune"))], &store)
        .await
        .expect("applies");
    let changed = apply_events::<ProductRecord>(&mut tx, &[relayed(3, &restocked(10))], &store)
        .await
        .expect("the gap is filled, not an error");
    tx.commit().await.expect("commit");
    assert_eq!(changed.len(), 1);
    assert_eq!((changed[0].version, changed[0].stock), (3, 10));
    // The second one arriving late changes nothing.
    let mut tx = pool.begin().await.expect("begin");
    let late = apply_events::<ProductRecord>(&mut tx, &[relayed(2, &restocked(9))], &store)
        .await
        .expect("applies");
    tx.commit().await.expect("commit");
    assert!(late.is_empty());
}

/// The probe's crash: a builder took a batch and died before acknowledging it. Its messages
/// would come back only after the ack wait (30 s), while newer ones met gaps. The next builder
/// must catch up at once.
#[tokio::test]
async fn a_builder_taking_over_from_one_that_died_mid_batch_catches_up_within_5_s() {
    let (_, pool) = fresh_database().await;
    let (jetstream, subjects) = fresh_stream().await;
    let (stop, shutdown) = shutdown_pair();
    let relay = tokio::spawn(
        Relay::new(
            pool.clone(),
            jetstream.clone(),
            subjects.clone(),
            RelaySettings::default(),
        )
        .run(shutdown.clone()),
    );

    // Ten products with one event each come first (all of them in the lost batch), then thirty
    // products with five events each, round by round.
    let mut events = Vec::new();
    for n in 0..10 {
        events.push((Uuid::now_v7(), 1, added(&format!("Lonely {n}"))));
    }
    let busy: Vec<Uuid> = (0..30).map(|_| Uuid::now_v7()).collect();
    for sequence in 1..=5_u64 {
        for (n, id) in busy.iter().enumerate() {
            let event = if sequence == 1 {
                added(&format!("Busy {n}"))
            } else {
                restocked(i64::try_from(sequence).expect("small") + 2)
            };
            events.push((*id, sequence, event));
        }
    }
    append(&pool, &events).await;
    let total = events.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while stream_len(&jetstream, &subjects).await < total {
        assert!(Instant::now() < deadline, "the relay publishes everything");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The builder that dies: it takes the first 60 messages and never acknowledges them.
    let dying = Projector::<ProductRecord>::new(context(&pool, &jetstream, &subjects));
    let consumer: async_nats::jetstream::consumer::Consumer<pull::Config> =
        dying.runner().consumer().await.expect("consumer");
    let mut taken = consumer
        .fetch()
        .max_messages(60)
        .messages()
        .await
        .expect("fetch");
    let mut in_flight = 0;
    while let Some(message) = taken.next().await {
        message.expect("message");
        in_flight += 1;
    }
    assert_eq!(in_flight, 60);
    drop(taken);

    let started = Instant::now();
    let builder = tokio::spawn(
        Projector::<ProductRecord>::new(context(&pool, &jetstream, &subjects))
            .run(shutdown.clone()),
    );
    let caught_up = loop {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT aggregate_id, max(sequence) AS version FROM events GROUP BY aggregate_id) AS store
              LEFT JOIN products ON products.id::text = store.aggregate_id AND products.version = store.version
              WHERE products.id IS NULL",
        )
        .fetch_one(&pool)
        .await
        .expect("compares");
        if behind == 0 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "still {behind} products behind"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("caught up {caught_up:?} after the new builder started");
    assert!(
        caught_up <= Duration::from_secs(5),
        "caught up only after {caught_up:?}"
    );

    stop.trigger();
    builder.await.expect("stops");
    relay.await.expect("stops");
    let _ = jetstream.delete_stream(subjects.stream_name()).await;
}
