//! `?min_version` waits: many reads waiting for a version cost a bounded number of statements
//! (no polling), and return as soon as the version lands.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tracing::field::{Field, Visit};
use uuid::Uuid;

use eshop_domain::product::ProductEvent;
use eshop_infra::projector::{Projector, ProjectorContext};
use eshop_infra::read_models::products::PgProducts;
use eshop_infra::relay::{Relay, RelaySettings};
use eshop_infra::shutdown::shutdown_pair;
use eshop_infra::testing::{fresh_database, fresh_stream};
use eshop_projections::product::ProductRecord;

/// Counts the SQL statements sqlx runs that read one product (sqlx reports each statement as a
/// `sqlx::query` event with its text).
#[derive(Clone, Default)]
struct ProductReads(Arc<AtomicUsize>);

struct Statement(bool);

impl Visit for Statement {
    fn record_str(&mut self, _: &Field, value: &str) {
        self.0 |= value.contains("WHERE products.id = $1");
    }
    fn record_debug(&mut self, _: &Field, value: &dyn std::fmt::Debug) {
        self.0 |= format!("{value:?}").contains("WHERE products.id = $1");
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ProductReads {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            let mut statement = Statement(false);
            event.record(&mut statement);
            if statement.0 {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

async fn append(pool: &sqlx::PgPool, id: Uuid, sequence: i64, event: &ProductEvent) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('product', $1, $2, 'test', '1', $3, $4)",
    )
    .bind(id.to_string())
    .bind(sequence)
    .bind(serde_json::to_value(event).expect("json"))
    .bind(json!({"event_id": Uuid::new_v4()}))
    .execute(pool)
    .await
    .expect("append");
}

#[tokio::test]
async fn a_hundred_reads_waiting_for_a_version_cost_a_bounded_number_of_statements() {
    use tracing_subscriber::layer::SubscriberExt;
    let reads = ProductReads::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(reads.clone()))
        .expect("the only subscriber in this process");

    let (_, pool) = fresh_database().await;
    let (jetstream, subjects) = fresh_stream().await;
    let (stop, shutdown) = shutdown_pair();
    let workers = vec![
        tokio::spawn(
            Relay::new(
                pool.clone(),
                jetstream.clone(),
                subjects.clone(),
                RelaySettings::default(),
            )
            .run(shutdown.clone()),
        ),
        tokio::spawn(
            Projector::<ProductRecord>::new(ProjectorContext {
                pool: pool.clone(),
                jetstream: jetstream.clone(),
                subjects: subjects.clone(),
                cache: None,
                settings: Default::default(),
            })
            .run(shutdown),
        ),
    ];
    let id = Uuid::now_v7();
    append(
        &pool,
        id,
        1,
        &ProductEvent::ProductAdded {
            title: "Dune".into(),
            author: "Frank Herbert".into(),
            published_date: "1965-08-01".parse().expect("date"),
            description: "A desert planet.".into(),
            price_cents: 1999,
            stock: 3,
            category: "science-fiction".into(),
            category_id: None,
        },
    )
    .await;
    let products = PgProducts::new(pool.clone());
    products
        .wait_for_version(id, 1, Duration::from_secs(20))
        .await
        .expect("reads")
        .expect("the product is there");

    const READERS: usize = 100;
    let before = reads.0.load(Ordering::SeqCst);
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let products = products.clone();
            tokio::spawn(async move {
                let record = products
                    .wait_for_version(id, 2, Duration::from_secs(30))
                    .await
                    .expect("reads");
                (record, Instant::now())
            })
        })
        .collect();
    // They wait a while (a poll every 20 ms would read 5,000 times a second meanwhile)...
    tokio::time::sleep(Duration::from_secs(1)).await;
    // ...until the version lands.
    let landed = Instant::now();
    append(
        &pool,
        id,
        2,
        &ProductEvent::ProductRestocked {
            quantity: 2,
            stock: 5,
        },
    )
    .await;
    let mut slowest = Duration::ZERO;
    for reader in readers {
        let (record, at) = reader.await.expect("reader");
        assert_eq!(record.map(|r| r.version), Some(2));
        slowest = slowest.max(at.duration_since(landed));
    }
    let statements = reads.0.load(Ordering::SeqCst) - before;
    println!("{READERS} waiting reads: {statements} product reads; the slowest answered {slowest:?} after the append");
    // One read to look, one after the wake-up (and one spare each for a wake-up that came early).
    assert!(
        statements <= 3 * READERS,
        "{statements} statements for {READERS} waiting reads"
    );
    // Woken by the announcement, not by their 30 s deadline.
    assert!(slowest < Duration::from_secs(10), "{slowest:?}");

    stop.trigger();
    for worker in workers {
        worker.await.expect("stops");
    }
    let _ = jetstream.delete_stream(subjects.stream_name()).await;
}
