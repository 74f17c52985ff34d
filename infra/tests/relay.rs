//! The relay against real Postgres and NATS: late commits are never skipped, a crash repeats
//! work without duplicating it, and another replica takes over.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use eshop_infra::nats::EventSubjects;
use eshop_infra::relay::{Relay, RelaySettings};
use eshop_infra::shutdown::shutdown_pair;
use eshop_infra::testing::{fresh_database, fresh_stream, read_stream, stream_len};
use eshop_projections::RelayedEvent;
use sqlx::PgPool;
use uuid::Uuid;

/// Appends `count` events to a test aggregate, one transaction each, holding some of them open
/// for up to 200 ms after the insert (so their positions are taken long before they commit).
async fn slow_writer(pool: PgPool, aggregate_id: String, count: i64) {
    for sequence in 1..=count {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('probe', $1, $2, 'Probed', '1', '{}', '{}')",
        )
        .bind(&aggregate_id)
        .bind(sequence)
        .execute(&mut *tx)
        .await
        .expect("insert");
        if fastrand::u8(0..10) < 4 {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=200))).await;
        }
        tx.commit().await.expect("commit");
    }
}

async fn all_positions(pool: &PgPool) -> HashSet<i64> {
    sqlx::query_scalar("SELECT position FROM events")
        .fetch_all(pool)
        .await
        .expect("positions")
        .into_iter()
        .collect()
}

async fn wait_for_stream(
    jetstream: &async_nats::jetstream::Context,
    subjects: &EventSubjects,
    expected: u64,
) {
    for _ in 0..200 {
        if stream_len(jetstream, subjects).await >= expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the stream holds {} of {expected} events",
        stream_len(jetstream, subjects).await
    );
}

/// Every event exactly once, and each aggregate's events in sequence order.
fn assert_exactly_once_in_order(stream: &[RelayedEvent], positions: &HashSet<i64>) {
    let relayed: Vec<i64> = stream.iter().map(|event| event.position).collect();
    let unique: HashSet<i64> = relayed.iter().copied().collect();
    assert_eq!(relayed.len(), unique.len(), "an event was relayed twice");
    assert_eq!(&unique, positions, "the stream and the store differ");
    let mut last_sequence: HashMap<&str, u64> = HashMap::new();
    for event in stream {
        let last = last_sequence.entry(&event.aggregate_id).or_default();
        assert_eq!(
            event.sequence,
            *last + 1,
            "{} out of order",
            event.aggregate_id
        );
        *last = event.sequence;
    }
}

fn fast_settings(batch_size: i64) -> RelaySettings {
    RelaySettings {
        batch_size,
        ..RelaySettings::default()
    }
}

#[tokio::test]
async fn late_commits_are_never_skipped() {
    let (_, pool) = fresh_database().await;
    let (jetstream, subjects) = fresh_stream().await;
    let (stop, shutdown) = shutdown_pair();
    let relay = Relay::new(
        pool.clone(),
        jetstream.clone(),
        subjects.clone(),
        fast_settings(100),
    );
    let relaying = tokio::spawn(relay.run(shutdown));

    let writers: Vec<_> = (0..24)
        .map(|n| tokio::spawn(slow_writer(pool.clone(), format!("agg-{n}"), 30)))
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    wait_for_stream(&jetstream, &subjects, 24 * 30).await;

    let stream = read_stream(&jetstream, &subjects).await;
    assert_exactly_once_in_order(&stream, &all_positions(&pool).await);
    stop.trigger();
    relaying.await.expect("relay stops");
    jetstream
        .delete_stream(subjects.stream_name())
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn a_crashed_relay_is_replaced_and_nothing_is_lost_or_doubled() {
    let (_, pool) = fresh_database().await;
    let (jetstream, subjects) = fresh_stream().await;
    let writers: Vec<_> = (0..10)
        .map(|n| tokio::spawn(slow_writer(pool.clone(), format!("agg-{n}"), 150)))
        .collect();

    let (_stop_a, shutdown_a) = shutdown_pair();
    let first = Relay::new(
        pool.clone(),
        jetstream.clone(),
        subjects.clone(),
        fast_settings(20),
    );
    let crashing = tokio::spawn(first.run(shutdown_a));
    // A second replica waits for the lead.
    let (stop_b, shutdown_b) = shutdown_pair();
    let second = Relay::new(
        pool.clone(),
        jetstream.clone(),
        subjects.clone(),
        fast_settings(20),
    );
    let status_b = second.status();
    let standby = tokio::spawn(second.run(shutdown_b));

    wait_for_stream(&jetstream, &subjects, 100).await;
    crashing.abort();
    let _ = crashing.await;
    // The crash lost the checkpoint's last moves: everything will be published again.
    sqlx::query("UPDATE relay_checkpoint SET xid = '0', position = 0")
        .execute(&pool)
        .await
        .expect("rewind");

    for writer in writers {
        writer.await.expect("writer");
    }
    wait_for_stream(&jetstream, &subjects, 1500).await;
    assert!(
        status_b.leading.load(std::sync::atomic::Ordering::Relaxed),
        "the standby took over"
    );
    // Give a duplicate, if the window failed to drop it, time to land.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stream = read_stream(&jetstream, &subjects).await;
    assert_eq!(stream.len(), 1500);
    assert_exactly_once_in_order(&stream, &all_positions(&pool).await);
    stop_b.trigger();
    standby.await.expect("relay stops");
    jetstream
        .delete_stream(subjects.stream_name())
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn the_envelope_and_headers_follow_the_contract() {
    let (_, pool) = fresh_database().await;
    let (jetstream, subjects) = fresh_stream().await;
    let metadata = serde_json::json!({"event_id": Uuid::now_v7(), "correlation_id": Uuid::now_v7(), "causation_id": Uuid::now_v7()});
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('product', 'p-1', 1, 'ProductRemoved', '1', '{\"type\":\"ProductRemoved\"}', $1)",
    )
    .bind(&metadata)
    .execute(&pool)
    .await
    .expect("insert");
    let (stop, shutdown) = shutdown_pair();
    let relaying = tokio::spawn(
        Relay::new(
            pool.clone(),
            jetstream.clone(),
            subjects.clone(),
            fast_settings(10),
        )
        .run(shutdown),
    );
    wait_for_stream(&jetstream, &subjects, 1).await;

    let stream = jetstream
        .get_stream(subjects.stream_name())
        .await
        .expect("stream");
    let message = stream.get_raw_message(1).await.expect("first message");
    assert_eq!(message.subject.as_str(), subjects.subject("product", "p-1"));
    let headers = message.headers;
    assert_eq!(
        headers.get("Eshop-Event-Type").map(|v| v.as_str()),
        Some("ProductRemoved")
    );
    assert_eq!(
        headers
            .get("Eshop-Correlation-Id")
            .map(|v| v.as_str().to_string()),
        metadata["correlation_id"].as_str().map(str::to_string)
    );
    let body: serde_json::Value = serde_json::from_slice(&message.payload).expect("json");
    for field in [
        "position",
        "aggregate_type",
        "aggregate_id",
        "sequence",
        "event_type",
        "event_version",
        "recorded_at",
        "metadata",
        "payload",
    ] {
        assert!(body.get(field).is_some(), "missing {field}");
    }
    assert_eq!(
        headers.get("Nats-Msg-Id").map(|v| v.as_str().to_string()),
        Some(body["position"].to_string())
    );
    stop.trigger();
    relaying.await.expect("relay stops");
    jetstream
        .delete_stream(subjects.stream_name())
        .await
        .expect("cleanup");
}

/// Inserts one probe event in `tx` and returns its position.
async fn probe_in(tx: &mut sqlx::PgConnection, aggregate_id: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('probe', $1, 1, 'Probed', '1', '{}', '{}') RETURNING position",
    )
    .bind(aggregate_id)
    .fetch_one(tx)
    .await
    .expect("insert")
}

/// Every page of an export from `after`, as positions.
async fn exported(pool: &PgPool, after: i64) -> Vec<i64> {
    use eshop_infra::audit::export::{Export, ExportRange};
    let range = ExportRange {
        after,
        ..ExportRange::default()
    };
    let mut export = Export::with_page_size(pool, range, 1)
        .await
        .expect("export");
    let mut positions = Vec::new();
    loop {
        let page = export.next_page().await.expect("page");
        if page.is_empty() {
            return positions;
        }
        positions.extend(page.iter().map(|event| event.position));
    }
}

/// The case a position alone gets wrong (DESIGN.md, invariant 3): `early` takes its xid first,
/// then `late` takes a lower position but commits after `early`'s higher one. A reader ordered
/// and resumed by position would have read `early` and then skipped `late` for ever; in the
/// commit-safe order, `late` comes after `early`, in the relay's stream and in the export (also
/// one resumed after `early`).
#[tokio::test]
async fn a_lower_position_committed_later_comes_after_in_the_relay_and_the_export() {
    let (_, pool) = fresh_database().await;
    let (jetstream, subjects) = fresh_stream().await;
    let (stop, shutdown) = shutdown_pair();
    let relay = Relay::new(
        pool.clone(),
        jetstream.clone(),
        subjects.clone(),
        fast_settings(100),
    );
    let relaying = tokio::spawn(relay.run(shutdown));

    let mut early = pool.begin().await.expect("begin");
    let _: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *early)
        .await
        .expect("the early transaction takes its xid");
    let mut late = pool.begin().await.expect("begin");
    let late_position = probe_in(&mut late, "late").await;
    let early_position = probe_in(&mut early, "early").await;
    assert!(
        late_position < early_position,
        "the late one's position is lower"
    );
    early.commit().await.expect("commit");

    // With `late` in flight, the relay publishes `early` alone, and the export shows it alone.
    wait_for_stream(&jetstream, &subjects, 1).await;
    assert_eq!(exported(&pool, 0).await, vec![early_position]);
    late.commit().await.expect("commit");

    wait_for_stream(&jetstream, &subjects, 2).await;
    let stream = read_stream(&jetstream, &subjects).await;
    let relayed: Vec<i64> = stream.iter().map(|event| event.position).collect();
    assert_eq!(
        relayed,
        vec![early_position, late_position],
        "the relay's order"
    );
    // The horizon may be held back a moment by a transaction elsewhere in the cluster.
    let mut all = Vec::new();
    for _ in 0..200 {
        all = exported(&pool, 0).await;
        if all.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        all,
        vec![early_position, late_position],
        "the export's order"
    );
    assert_eq!(
        exported(&pool, early_position).await,
        vec![late_position],
        "an export resumed after the early event still finds the late one"
    );

    stop.trigger();
    relaying.await.expect("relay stops");
    jetstream
        .delete_stream(subjects.stream_name())
        .await
        .expect("cleanup");
}
