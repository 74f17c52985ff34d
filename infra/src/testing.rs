//! For tests: a fresh, migrated database per test, so tests run in parallel and reruns start
//! clean. Its name starts with `eshop_test_`; CI drops old ones before it runs.

pub mod catalog;
pub mod smtp;

use sqlx::PgPool;
use uuid::Uuid;

use crate::database::{connect, migrate, DatabaseSettings};

/// The server tests use: `ESHOP_TEST_DATABASE_URL` (a URL without a database name), or the
/// local default.
pub fn server_url() -> String {
    std::env::var("ESHOP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// Creates and migrates a new database; returns its URL and a pool on it.
pub async fn fresh_database() -> (String, PgPool) {
    let name = format!("eshop_test_{}", Uuid::new_v4().simple());
    let url = format!("{}/{name}", server_url().trim_end_matches('/'));
    let pool = connect(&DatabaseSettings {
        url: url.clone(),
        max_connections: 20,
    })
    .await
    .unwrap_or_else(|error| panic!("cannot create the test database {name}: {error}"));
    migrate(&pool)
        .await
        .unwrap_or_else(|error| panic!("cannot migrate {name}: {error}"));
    (url, pool)
}

/// The NATS server tests use: `ESHOP_TEST_NATS_URL`, or the local default.
pub fn nats_url() -> String {
    std::env::var("ESHOP_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

/// A JetStream context and subjects under a prefix of this test's own, with the event stream
/// created (its messages expire after an hour; `delete_stream` removes it at the end).
pub async fn fresh_stream() -> (async_nats::jetstream::Context, crate::nats::EventSubjects) {
    let prefix = format!("t{}", &Uuid::new_v4().simple().to_string()[..12]);
    let subjects = crate::nats::EventSubjects::new(&prefix);
    let jetstream = crate::nats::connect(&nats_url())
        .await
        .expect("NATS answers");
    crate::nats::ensure_event_stream(
        &jetstream,
        &subjects,
        Some(std::time::Duration::from_secs(3600)),
    )
    .await
    .expect("stream created");
    (jetstream, subjects)
}

/// Every message in the stream, in stream order, decoded.
pub async fn read_stream(
    jetstream: &async_nats::jetstream::Context,
    subjects: &crate::nats::EventSubjects,
) -> Vec<eshop_projections::RelayedEvent> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    use futures::StreamExt;

    let stream = jetstream
        .get_stream(subjects.stream_name())
        .await
        .expect("stream exists");
    let total = stream.get_info().await.expect("info").state.messages as usize;
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: std::time::Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut events = Vec::with_capacity(total);
    let mut messages = consumer.messages().await.expect("messages");
    while events.len() < total {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), messages.next())
            .await
            .expect("the stream delivers")
            .expect("a message")
            .expect("no error");
        events.push(serde_json::from_slice(&message.payload).expect("an envelope"));
    }
    events
}

/// The number of messages in the stream.
pub async fn stream_len(
    jetstream: &async_nats::jetstream::Context,
    subjects: &crate::nats::EventSubjects,
) -> u64 {
    let stream = jetstream
        .get_stream(subjects.stream_name())
        .await
        .expect("stream exists");
    stream.get_info().await.expect("info").state.messages
}
