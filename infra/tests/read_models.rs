//! Projections and queries against real Postgres, NATS and Redis.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use eshop_domain::movie::{Links, MovieEvent, Rater, Rating};
use eshop_domain::product::ProductEvent;
use eshop_infra::cache::{Cache, Entry};
use eshop_infra::personal_data::PersonalDataKeys;
use eshop_infra::projector::{report, Projector, ProjectorContext};
use eshop_infra::read_models::products::PgProducts;
use eshop_infra::read_models::{apply_events, StoreReader};
use eshop_infra::relay::{Relay, RelaySettings};
use eshop_infra::shutdown::shutdown_pair;
use eshop_infra::testing::{fresh_database, fresh_stream};
use eshop_infra::{connect_for_listing, DatabaseSettings};
use eshop_projections::movie::MovieRecord;
use eshop_projections::product::ProductRecord;
use eshop_projections::query::{Ordering as SortOrdering, ProductFilter, ProductQuery};
use eshop_projections::RelayedEvent;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

fn added(title: &str, price_cents: i64) -> ProductEvent {
    ProductEvent::ProductAdded {
        title: title.into(),
        author: "Ursula K. Le Guin".into(),
        published_date: "1969-03-01".parse().expect("date"),
        description: "A winter planet.".into(),
        price_cents,
        stock: 3,
        category: "science-fiction".into(),
        category_id: None,
    }
}

fn relayed(id: Uuid, sequence: u64, event: &ProductEvent) -> RelayedEvent {
    RelayedEvent {
        position: i64::try_from(sequence).expect("small"),
        aggregate_type: "product".into(),
        aggregate_id: id.to_string(),
        sequence,
        event_type: "test".into(),
        event_version: "1".into(),
        recorded_at: Utc::now(),
        metadata: json!({}),
        payload: serde_json::to_value(event).expect("serializes"),
    }
}

async fn apply_in_tx(pool: &PgPool, events: &[RelayedEvent]) -> Vec<Uuid> {
    let store = StoreReader::new(PersonalDataKeys::new(pool.clone()));
    let mut tx = pool.begin().await.expect("begin");
    let changed: Vec<ProductRecord> = apply_events(&mut tx, events, &store)
        .await
        .expect("applies");
    tx.commit().await.expect("commit");
    changed.iter().map(|product| product.id).collect()
}

#[tokio::test]
async fn a_batch_fed_twice_ends_in_the_same_state() {
    let (_, pool) = fresh_database().await;
    let id = Uuid::now_v7();
    let batch = vec![
        relayed(id, 1, &added("The Left Hand of Darkness", 1200)),
        relayed(
            id,
            2,
            &ProductEvent::ProductRestocked {
                quantity: 4,
                stock: 7,
            },
        ),
        relayed(
            id,
            3,
            &ProductEvent::ProductPriceChanged {
                old_price_cents: 1200,
                price_cents: 1500,
            },
        ),
    ];
    assert_eq!(apply_in_tx(&pool, &batch).await, vec![id]);
    let once = PgProducts::new(pool.clone()).get(id).await.expect("reads");
    assert!(
        apply_in_tx(&pool, &batch).await.is_empty(),
        "a redelivery changes nothing"
    );
    let twice = PgProducts::new(pool.clone()).get(id).await.expect("reads");
    assert_eq!(once, twice);
    let row = twice.expect("row");
    assert_eq!((row.stock, row.price_cents, row.version), (7, 1500, 3));
}

/// Counts the SQL statements sqlx runs (it reports each as a `sqlx::query` event).
#[derive(Clone, Default)]
struct StatementCounter(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn a_list_page_is_one_statement_and_a_total_one_more() {
    use tracing_subscriber::layer::SubscriberExt;
    let counter = StatementCounter::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(counter.clone()))
        .expect("the only subscriber in this process");

    let (url, pool) = fresh_database().await;
    let events: Vec<RelayedEvent> = (0..30)
        .map(|n| {
            relayed(
                Uuid::now_v7(),
                1,
                &added(&format!("Earthsea {n:02}"), 100 + n),
            )
        })
        .collect();
    apply_in_tx(&pool, &events).await;
    // As eshop runs it: list queries on their own pool, which keeps one generic plan.
    let listing = connect_for_listing(&DatabaseSettings {
        url,
        max_connections: 2,
    })
    .await
    .expect("connects");
    let plan_cache_mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(&listing)
        .await
        .expect("shows");
    assert_eq!(plan_cache_mode, "force_generic_plan");
    let products = PgProducts::new(pool.clone()).listing_on(listing);
    let query = |with_total| ProductQuery {
        filter: ProductFilter {
            search: Some("earthsea".into()),
            min_price_cents: Some(105),
            ..ProductFilter::default()
        },
        ordering: SortOrdering::parse("-price_cents", true).expect("valid"),
        limit: 10,
        after: None,
        with_total,
    };

    let before = counter.0.load(Ordering::SeqCst);
    let page = products.list(&query(false)).await.expect("lists");
    assert_eq!(counter.0.load(Ordering::SeqCst) - before, 1);
    assert_eq!(page.items.len(), 10);
    assert_eq!(page.items[0].price_cents, 129);

    let before = counter.0.load(Ordering::SeqCst);
    let page = products.list(&query(true)).await.expect("lists");
    assert_eq!(counter.0.load(Ordering::SeqCst) - before, 2);
    assert_eq!(page.total, Some(25));
}

#[tokio::test]
async fn concurrent_misses_on_one_key_make_one_load() {
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    let cache = Arc::new(
        Cache::new("redis://127.0.0.1:6379", &prefix, Duration::from_secs(30)).expect("client"),
    );
    let loads = Arc::new(AtomicUsize::new(0));
    let id = Uuid::now_v7();
    let readers = (0..25).map(|_| {
        let cache = cache.clone();
        let loads = loads.clone();
        tokio::spawn(async move {
            cache
                .get_or_load(Entry::Product(id), || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, std::convert::Infallible>(Some(bytes::Bytes::from_static(b"value")))
                })
                .await
        })
    });
    for outcome in futures::future::join_all(readers).await {
        assert_eq!(
            outcome.expect("task").expect("value").as_deref(),
            Some(&b"value"[..])
        );
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    // And the next read is a hit.
    let hit = cache
        .get_or_load(Entry::Product(id), || async {
            Ok::<_, std::convert::Infallible>(None)
        })
        .await
        .expect("value");
    assert_eq!(hit.as_deref(), Some(&b"value"[..]));
}

#[tokio::test]
async fn an_invalidated_entry_is_never_served_again() {
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    let cache =
        Cache::new("redis://127.0.0.1:6379", &prefix, Duration::from_secs(30)).expect("client");
    let id = Uuid::now_v7();
    let load = |value: &'static [u8]| {
        move || async move { Ok::<_, std::convert::Infallible>(Some(bytes::Bytes::from_static(value))) }
    };
    let list = Entry::ProductList("q".into());
    assert_eq!(
        cache
            .get_or_load(Entry::Product(id), load(b"old"))
            .await
            .expect("v")
            .as_deref(),
        Some(&b"old"[..])
    );
    assert_eq!(
        cache
            .get_or_load(list.clone(), load(b"old list"))
            .await
            .expect("v")
            .as_deref(),
        Some(&b"old list"[..])
    );
    cache.invalidate_products(&[id]).await;
    assert_eq!(
        cache
            .get_or_load(Entry::Product(id), load(b"new"))
            .await
            .expect("v")
            .as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(
        cache
            .get_or_load(list, load(b"new list"))
            .await
            .expect("v")
            .as_deref(),
        Some(&b"new list"[..])
    );
}

#[tokio::test]
async fn a_failing_projection_stops_shows_its_error_and_resumes_once_fixed() {
    let (_, pool) = fresh_database().await;
    let (jetstream, subjects) = fresh_stream().await;
    let (stop, shutdown) = shutdown_pair();
    let relay = Relay::new(
        pool.clone(),
        jetstream.clone(),
        subjects.clone(),
        RelaySettings::default(),
    );
    let projector = Projector::<ProductRecord>::new(ProjectorContext {
        pool: pool.clone(),
        jetstream: jetstream.clone(),
        subjects: subjects.clone(),
        cache: None,
        settings: Default::default(),
    });
    let workers = vec![
        tokio::spawn(relay.run(shutdown.clone())),
        tokio::spawn(projector.run(shutdown)),
    ];

    // A rule the read table does not accept yet: free books.
    sqlx::query("ALTER TABLE products ADD CONSTRAINT no_free_books CHECK (price_cents > 0)")
        .execute(&pool)
        .await
        .expect("constraint");
    let free = Uuid::now_v7();
    let paid = Uuid::now_v7();
    for (id, price) in [(free, 0), (paid, 900)] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('product', $1, 1, 'ProductAdded', '1', $2, '{}')",
        )
        .bind(id.to_string())
        .bind(serde_json::to_value(added("Free or not", price)).expect("json"))
        .execute(&pool)
        .await
        .expect("append");
    }

    let products = PgProducts::new(pool.clone());
    let mut failed = None;
    for _ in 0..100 {
        let reports = report(&pool, &jetstream, &subjects, &["products"])
            .await
            .expect("report");
        if reports[0].status == "failed" {
            failed = Some(reports[0].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed = failed.expect("the projection reports its failure");
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("no_free_books"),
        "{failed:?}"
    );
    assert!(failed.lag_events >= 1);
    // Stopped: the event behind the failing one is not applied either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(products.get(paid).await.expect("reads").is_none());

    sqlx::query("ALTER TABLE products DROP CONSTRAINT no_free_books")
        .execute(&pool)
        .await
        .expect("fix");
    let resumed = products
        .wait_for_version(paid, 1, Duration::from_secs(20))
        .await
        .expect("reads");
    assert!(resumed.is_some(), "the projection resumed");
    assert!(products.get(free).await.expect("reads").is_some());
    let reports = report(&pool, &jetstream, &subjects, &["products"])
        .await
        .expect("report");
    assert_eq!(
        (reports[0].status.as_str(), reports[0].last_error.as_deref()),
        ("running", None)
    );

    stop.trigger();
    for worker in workers {
        worker.await.expect("stops");
    }
    jetstream
        .delete_stream(subjects.stream_name())
        .await
        .expect("cleanup");
}

/// Relevance pages: the rank comes from the subquery that ranked each match once, and its
/// cursor continues exactly after the last row (ties broken by id), most relevant first.
#[tokio::test]
async fn a_search_pages_by_relevance_through_its_cursor() {
    let (_, pool) = fresh_database().await;
    let mut events: Vec<RelayedEvent> = (0..12)
        .map(|n| {
            relayed(
                Uuid::now_v7(),
                1,
                &added(&format!("Earthsea {n:02}"), 100 + n),
            )
        })
        .collect();
    // Twice the word in the title: ranked above the rest.
    let best = Uuid::now_v7();
    events.push(relayed(best, 1, &added("Earthsea earthsea", 999)));
    apply_in_tx(&pool, &events).await;
    let products = PgProducts::new(pool.clone());
    let mut query = ProductQuery {
        filter: ProductFilter {
            search: Some("earthsea".into()),
            ..ProductFilter::default()
        },
        ordering: SortOrdering::default_for(true),
        limit: 5,
        after: None,
        with_total: false,
    };
    let mut seen = Vec::new();
    loop {
        let page = products.list(&query).await.expect("lists");
        seen.extend(page.items.iter().map(|item| item.id));
        let Some(next) = page.next_cursor else { break };
        query.after = Some(eshop_projections::query::Cursor::decode(&next).expect("cursor"));
    }
    assert_eq!(seen.len(), 13, "every match once");
    assert_eq!(seen[0], best);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 13);
}

fn relayed_movie(id: Uuid, sequence: u64, event: &MovieEvent) -> RelayedEvent {
    RelayedEvent {
        position: i64::try_from(sequence).expect("small"),
        aggregate_type: "movie".into(),
        aggregate_id: id.to_string(),
        sequence,
        event_type: "test".into(),
        event_version: "1".into(),
        recorded_at: Utc::now(),
        metadata: json!({}),
        payload: serde_json::to_value(event).expect("serializes"),
    }
}

fn movie_rated(rater: i64, stars: f64, previous: Option<f64>) -> MovieEvent {
    MovieEvent::MovieRated {
        rater: Rater::MovieLens(rater),
        rating: Rating::from_stars(stars).expect("valid"),
        rated_at: Utc::now(),
        previous: previous.map(|stars| Rating::from_stars(stars).expect("valid")),
    }
}

/// The movie's row figures and its rating rows, as (rater, stars).
async fn movie_state(pool: &PgPool, id: Uuid) -> (i64, Option<f64>, i64, Vec<(String, f64)>) {
    let (version, average, count): (i64, Option<f64>, i64) =
        sqlx::query_as("SELECT version, rating_average, ratings_count FROM movies WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .expect("the movie");
    let ratings = sqlx::query_as(
        "SELECT rater, rating::float8 FROM movie_ratings WHERE movie_id = $1 ORDER BY rater",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .expect("its ratings");
    (version, average, count, ratings)
}

async fn apply_movies(pool: &PgPool, events: &[RelayedEvent]) -> usize {
    let store = StoreReader::new(PersonalDataKeys::new(pool.clone()));
    let mut tx = pool.begin().await.expect("begin");
    let changed: Vec<MovieRecord> = apply_events(&mut tx, events, &store)
        .await
        .expect("applies");
    tx.commit().await.expect("commit");
    changed.len()
}

#[tokio::test]
async fn movie_ratings_are_written_as_their_events_change_them_and_a_redelivery_counts_none_twice()
{
    let (_, pool) = fresh_database().await;
    let id = Uuid::now_v7();
    let events: Vec<RelayedEvent> = [
        MovieEvent::MovieAdded {
            movielens_id: Some(6),
            title: "Heat".into(),
            year: Some(1995),
            genres: vec!["Crime".into()],
            links: Links::default(),
        },
        movie_rated(1, 4.0, None),
        movie_rated(2, 2.0, None),
        movie_rated(3, 5.0, None),
        // Rating again replaces; withdrawing removes.
        movie_rated(1, 3.0, Some(4.0)),
        MovieEvent::MovieRatingWithdrawn {
            rater: Rater::MovieLens(2),
            rating: Rating::from_stars(2.0).expect("valid"),
        },
        MovieEvent::MovieTagged {
            rater: Rater::MovieLens(3),
            tag: "heist".into(),
            tagged_at: Utc::now(),
        },
    ]
    .iter()
    .zip(1..)
    .map(|(event, sequence)| relayed_movie(id, sequence, event))
    .collect();
    // Two batches, the second beginning with events the first applied (as a redelivery does).
    assert_eq!(apply_movies(&pool, &events[..3]).await, 1);
    assert_eq!(apply_movies(&pool, &events[1..]).await, 1);
    let expected = (
        7,
        Some(4.0),
        2,
        vec![("ml:1".to_string(), 3.0), ("ml:3".to_string(), 5.0)],
    );
    assert_eq!(movie_state(&pool, id).await, expected);
    // All of it again: nothing changes, nothing counts twice.
    assert_eq!(apply_movies(&pool, &events).await, 0);
    assert_eq!(movie_state(&pool, id).await, expected);
    let tags: i64 = sqlx::query_scalar("SELECT count(*) FROM movie_tags WHERE movie_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("tags");
    assert_eq!(tags, 1);

    // Withdrawn and given again in one batch: the rating is there once, with its new value.
    let again = [
        MovieEvent::MovieRatingWithdrawn {
            rater: Rater::MovieLens(3),
            rating: Rating::from_stars(5.0).expect("valid"),
        },
        movie_rated(3, 1.0, None),
    ];
    let again: Vec<RelayedEvent> = again
        .iter()
        .zip(8..)
        .map(|(event, sequence)| relayed_movie(id, sequence, event))
        .collect();
    assert_eq!(apply_movies(&pool, &again).await, 1);
    assert_eq!(
        movie_state(&pool, id).await,
        (
            9,
            Some(2.0),
            2,
            vec![("ml:1".to_string(), 3.0), ("ml:3".to_string(), 1.0)]
        )
    );
}
