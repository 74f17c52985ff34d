//! The sealer against real Postgres and NATS: it links every event in commit-safe order, even
//! while writers hold transactions open; seals go to NATS with the stored link; another sealer
//! carries on the same chain; and a chain recomputed in the database shows against its seals.

use std::time::Duration;

use async_nats::jetstream;
use eshop_infra::audit::chain::{to_hex, Link, StoredEvent, GENESIS, STORED_COLUMNS};
use eshop_infra::audit::sealer::{chain_head, Seal, Sealer, SealerSettings};
use eshop_infra::audit::verify::{verify, Reason};
use eshop_infra::nats::EventSubjects;
use eshop_infra::shutdown::shutdown_pair;
use eshop_infra::testing::{fresh_database, fresh_stream};
use sqlx::PgPool;

fn settings() -> SealerSettings {
    SealerSettings {
        batch_size: 7,
        seal_every_events: 10,
        seal_every: Duration::from_secs(3600),
        poll: Duration::from_millis(20),
    }
}

/// Appends `count` events to one aggregate, a transaction each, some held open for a while.
async fn writer(pool: PgPool, aggregate_id: String, count: i64) {
    for sequence in 1..=count {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('probe', $1, $2, 'Probed', '1', jsonb_build_object('n', $2), '{}')",
        )
        .bind(&aggregate_id)
        .bind(sequence)
        .execute(&mut *tx)
        .await
        .expect("insert");
        if fastrand::u8(0..10) < 3 {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=80))).await;
        }
        tx.commit().await.expect("commit");
    }
}

async fn linked(pool: &PgPool) -> i64 {
    let mut connection = pool.acquire().await.expect("connection");
    chain_head(&mut connection).await.expect("head").chain_index
}

async fn wait_until_linked(pool: &PgPool, expected: i64) {
    for _ in 0..500 {
        if linked(pool).await >= expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("linked {} of {expected}", linked(pool).await);
}

async fn published_seals(jetstream: &jetstream::Context, subjects: &EventSubjects) -> Vec<Seal> {
    let stream = jetstream
        .get_stream(subjects.seals_stream_name())
        .await
        .expect("the seal stream");
    let count = stream.get_info().await.expect("info").state.messages;
    let mut seals = Vec::new();
    for sequence in 1..=count {
        let message = stream.get_raw_message(sequence).await.expect("a seal");
        seals.push(serde_json::from_slice(&message.payload).expect("json"));
    }
    seals
}

#[tokio::test]
async fn every_event_is_linked_and_sealed_and_a_recomputed_chain_shows_at_its_seal() {
    let (_, pool) = fresh_database().await;
    let (jetstream, subjects) = fresh_stream().await;
    let (stop, shutdown) = shutdown_pair();
    let first = tokio::spawn(
        Sealer::new(
            pool.clone(),
            jetstream.clone(),
            subjects.clone(),
            settings(),
        )
        .run(shutdown),
    );
    let writers: Vec<_> = (0..6)
        .map(|n| tokio::spawn(writer(pool.clone(), format!("w{n}"), 10)))
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    wait_until_linked(&pool, 60).await;
    stop.trigger();
    first.await.expect("first sealer");

    // A second sealer (another replica) carries on the same chain.
    for sequence in 11..=25 {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('probe', 'w0', $1, 'Probed', '1', '{}', '{}')",
        )
        .bind(sequence)
        .execute(&pool)
        .await
        .expect("insert");
    }
    let (stop, shutdown) = shutdown_pair();
    let second = tokio::spawn(
        Sealer::new(
            pool.clone(),
            jetstream.clone(),
            subjects.clone(),
            settings(),
        )
        .run(shutdown),
    );
    wait_until_linked(&pool, 75).await;
    for _ in 0..200 {
        if published_seals(&jetstream, &subjects).await.len() >= 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.trigger();
    second.await.expect("second sealer");

    let sound = verify(&pool).await.expect("verify");
    assert!(sound.ok, "{sound:?}");
    assert_eq!(sound.verified_events, 75);
    assert_eq!(sound.pending_events, 0);
    let seals = published_seals(&jetstream, &subjects).await;
    let indexes: Vec<i64> = seals.iter().map(|seal| seal.chain_index).collect();
    assert_eq!(
        indexes,
        [10, 20, 30, 40, 50, 60, 70],
        "a seal every 10 events"
    );
    for seal in &seals {
        let stored: Vec<u8> =
            sqlx::query_scalar("SELECT link FROM event_links WHERE chain_index = $1")
                .bind(seal.chain_index)
                .fetch_one(&pool)
                .await
                .expect("link");
        assert_eq!(seal.link, to_hex(&stored));
    }
    assert_eq!(sound.seals_checked, 7);

    // Someone with the database alters event 15 of the chain and recomputes every link after
    // it: the chain is consistent again, but not with the seal at 20 (nor the one on NATS).
    let mut tx = pool.begin().await.expect("begin");
    for sql in [
        "ALTER TABLE events DISABLE TRIGGER events_append_only",
        "ALTER TABLE event_links DISABLE TRIGGER event_links_append_only",
        "UPDATE events SET payload = '{\"n\": 999}'
          WHERE position = (SELECT position FROM event_links WHERE chain_index = 15)",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.expect(sql);
    }
    let events: Vec<StoredEvent> = sqlx::query_as(&format!(
        "SELECT {STORED_COLUMNS} FROM events ORDER BY events.xid, events.position"
    ))
    .fetch_all(&mut *tx)
    .await
    .expect("events");
    let mut recomputed: Vec<Link> = Vec::new();
    for (index, event) in (1_i64..).zip(&events) {
        let link = event.link(recomputed.last().unwrap_or(&GENESIS));
        sqlx::query("UPDATE event_links SET link = $2 WHERE chain_index = $1")
            .bind(index)
            .bind(link.to_vec())
            .execute(&mut *tx)
            .await
            .expect("relink");
        recomputed.push(link);
    }
    for sql in [
        "ALTER TABLE events ENABLE TRIGGER events_append_only",
        "ALTER TABLE event_links ENABLE TRIGGER event_links_append_only",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.expect(sql);
    }
    tx.commit().await.expect("commit");

    let rewritten = verify(&pool).await.expect("verify");
    assert!(!rewritten.ok);
    let first_mismatch = rewritten.first_mismatch.expect("a mismatch");
    assert_eq!(first_mismatch.reason, Reason::Altered);
    assert_eq!(first_mismatch.chain_index, Some(20), "{first_mismatch:?}");
    assert_eq!(rewritten.head.expect("head").chain_index, 75);
    // The seals kept on NATS no longer match from the altered event on.
    for seal in &seals {
        let index = usize::try_from(seal.chain_index - 1).expect("index");
        assert_eq!(
            seal.link == to_hex(&recomputed[index]),
            seal.chain_index < 15,
            "seal {}",
            seal.chain_index
        );
    }
    let _ = jetstream.delete_stream(subjects.seals_stream_name()).await;
    let _ = jetstream.delete_stream(subjects.stream_name()).await;
}
