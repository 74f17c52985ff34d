//! Wiring: the state, the router with its layers, start-up, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::{middleware, Router};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use eshop_commands::orders::{OrderProcess, Orders};
use eshop_commands::{CommandBus, Idempotency, RetryPolicy};
use eshop_infra::cache::Cache;
use eshop_infra::mail::outbox::{MailStats, Outbox, RetrySettings};
use eshop_infra::mail::transport::MailTransport;
use eshop_infra::nats::{self, EventSubjects};
use eshop_infra::personal_data::SealingKey;
use eshop_infra::rate_limit::RateLimiter;
use eshop_infra::read_models::calendar::PgCalendar;
use eshop_infra::read_models::categories::PgCategories;
use eshop_infra::read_models::documents::PgDocuments;
use eshop_infra::read_models::movies::PgMovies;
use eshop_infra::read_models::orders::PgOrders;
use eshop_infra::read_models::payments::PgPayments;
use eshop_infra::read_models::products::PgProducts;
use eshop_infra::read_models::progress::VersionWaits;
use eshop_infra::read_models::users::PgUsers;
use eshop_infra::recent_writes::RecentWrites;
use eshop_infra::relay::RelayStatus;
use eshop_infra::scheduler::PgSchedules;
use eshop_infra::search::{ProductSearch, SearchSettings};
use eshop_infra::sessions::PgSessions;
use eshop_infra::shutdown::{shutdown_pair, ShutdownTrigger};
use eshop_infra::simulated_gateway::SimulatedGateway;
use eshop_infra::tasks::{PgTasks, TaskQueue};
use eshop_infra::{
    connect, connect_for_listing, migrate, DatabaseSettings, PgEventStore, PgIdempotencyRecords,
};

use crate::auth::read_only::auditors_read_only;
use crate::auth::TokenKeys;
use crate::background::respond_async::respond_async;
use crate::bootstrap::ensure_admin;
use crate::config::{Config, HttpSettings};
use crate::error::ApiError;
use crate::request::REQUEST_ID;
use crate::routes;
use crate::state::{AppState, Services};
use crate::{demo, http, http_metrics, security, throttle, workers};
use eshop_infra::embedded::EmbeddedServices;

pub use eshop_commands::BoxError;

/// Request bodies above this are refused with 413.
const BODY_LIMIT_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    router_with(state, &HttpSettings::default())
}

/// The router, with the request time limit of `http`.
pub fn router_with(state: AppState, http: &HttpSettings) -> Router {
    let request_limit = Duration::from_millis(http.request_timeout_ms.max(1));
    let request_id = HeaderName::from_static(REQUEST_ID);
    let cors = security::cors(&state.cors_origins);
    let metrics = state.http_metrics.clone();
    let routes = Router::new()
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::products::router())
        .merge(routes::search::router())
        .merge(routes::orders::router())
        .merge(routes::payments::router())
        .merge(routes::shopping::router())
        .merge(routes::admin::router())
        .merge(routes::audit::router())
        .merge(routes::metrics::router())
        .merge(routes::tasks::router())
        .merge(routes::schedules::router())
        .merge(routes::calendar::router())
        .merge(routes::categories::router())
        .merge(routes::contract::router())
        .merge(routes::movies::router().layer(DefaultBodyLimit::max(
            routes::movie_import::MAX_UPLOAD_BYTES,
        )))
        .fallback(|| async { ApiError::NotFound("resource") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Around every route and inside every other layer: a request is queued only after the
        // checks every request goes through, and keeps its request id.
        .layer(middleware::from_fn_with_state(state.clone(), respond_async))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auditors_read_only,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            throttle::throttle,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::profiling::server_timing,
        ))
        .with_state(state.clone());
    // The pages call the routes above in-process, inside the layers below.
    let routes = Router::new()
        .merge(crate::web::router(state, routes.clone()))
        .merge(routes);
    let routes = match cors {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    routes
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        // Inside the time limit: the rest of a body is read before an early answer goes out.
        .layer(middleware::from_fn(http::drain_unread_body))
        .layer(middleware::from_fn(move |request, next| {
            http::request_timeout(request_limit, request, next)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
            },
        ))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        // Outside the layer that generates an id: one that does not fit is dropped first.
        .layer(middleware::from_fn(http::fit_request_id))
        .layer(middleware::from_fn(security::secure_headers))
        // Outermost: every answer is counted, the early ones included.
        .layer(middleware::from_fn_with_state(
            metrics,
            http_metrics::record,
        ))
}

/// The shortest HS256 key accepted outside development: 256 bits.
const MIN_JWT_SECRET_BYTES: usize = 32;

/// Connects, migrates, and prepares the state (and the admin account when configured).
pub async fn build_state(config: &Config) -> Result<AppState, BoxError> {
    if !config.is_development() {
        if config.uses_development_secret() {
            return Err(
                "ESHOP_JWT_SECRET must be set (or ESHOP_ENV=development for a local run)".into(),
            );
        }
        if config.jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(format!(
                "ESHOP_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
            )
            .into());
        }
    }
    if config.uses_development_secret() {
        tracing::warn!(
            "ESHOP_JWT_SECRET is not set: using the built-in development key. ANYONE CAN FORGE \
             TOKENS FOR THIS SERVER. Set ESHOP_JWT_SECRET before exposing it."
        );
    }
    let database = DatabaseSettings {
        url: config.database_url.clone(),
        max_connections: config.db_pool_size,
    };
    let pool = connect(&database).await?;
    migrate(&pool).await?;
    let listing_pool = connect_for_listing(&DatabaseSettings {
        max_connections: config.db_listing_pool_size.max(1),
        ..database
    })
    .await?;
    let subjects = EventSubjects::new(&config.nats_prefix);
    let jetstream = nats::connect(&config.nats_url).await?;
    nats::ensure_event_stream(&jetstream, &subjects, config.events_max_age).await?;
    nats::ensure_task_stream(&jetstream, &subjects).await?;
    let tz = config.time_zone()?;
    let transport = MailTransport::new(config.smtp_url.as_deref(), &config.mail_dir)?;
    if config.smtp_url.is_none() {
        tracing::info!(dir = %config.mail_dir.display(), "SMTP_URL is not set: mails are written as .eml files");
    }
    let outbox = Outbox::new(
        pool.clone(),
        transport,
        &config.mail_from,
        RetrySettings {
            max: Duration::from_secs(config.mail_retry_max_seconds.max(1)),
            ..RetrySettings::default()
        },
        Arc::new(MailStats::default()),
    );
    let cache = Arc::new(Cache::new(
        &config.redis_url,
        &config.redis_prefix,
        Duration::from_secs(config.cache_ttl_seconds),
    )?);
    let retry = RetryPolicy {
        max_attempts: config.command_attempts.max(1),
        ..RetryPolicy::default()
    };
    let bus = Arc::new(CommandBus::new(PgEventStore::new(pool.clone()), retry));
    let gateway = SimulatedGateway::with_latency(Duration::from_millis(config.gateway_latency_ms));
    let process = Arc::new(OrderProcess::new(bus.clone(), gateway));
    // The search index is this process's own: only a process that serves the API opens it
    // (and a second process on the same directory is refused here, before anything starts).
    let search = if config.runs_api() && config.search.search_index {
        Some(Arc::new(ProductSearch::open(search_settings(config))?))
    } else {
        None
    };
    // One listener per process wakes every read waiting for a version (`?min_version`).
    let waits = VersionWaits::new(pool.clone());
    let state = AppState::new(Services {
        ordering: Orders::new(process.clone()),
        process,
        orders: PgOrders::new(pool.clone()).waiting_on(waits.clone()),
        payments: PgPayments::new(pool.clone()).waiting_on(waits.clone()),
        carts: PgDocuments::new(pool.clone()).waiting_on(waits.clone()),
        wishlists: PgDocuments::new(pool.clone()).waiting_on(waits.clone()),
        reviews: PgDocuments::new(pool.clone()).waiting_on(waits.clone()),
        movies: PgMovies::new(pool.clone()),
        profile_sql: config.movies.profile_sql,
        calendar: PgCalendar::new(pool.clone()).waiting_on(waits.clone()),
        categories: PgCategories::new(pool.clone()).waiting_on(waits.clone()),
        bus,
        idempotency: Arc::new(Idempotency::new(PgIdempotencyRecords::new(pool.clone()))),
        tokens: TokenKeys::new(&config.jwt_secret, config.access_token_ttl()),
        task_body_key: SealingKey::derived(&config.jwt_secret, "queued request bodies"),
        sessions: PgSessions::new(pool.clone(), config.session_ttl()),
        limiter: Arc::new(RateLimiter::new(&config.redis_url, &config.redis_prefix)?),
        recent_writes: Arc::new(RecentWrites::new(
            // 0: nothing remembered (as without Redis), lists read as before.
            if config.own_writes_ttl_seconds == 0 {
                ""
            } else {
                &config.redis_url
            },
            &config.redis_prefix,
            Duration::from_secs(config.own_writes_ttl_seconds),
        )?),
        throttle: Arc::new(config.throttle.clone()),
        client_ip_header: config.client_ip_header.as_deref().map(Arc::from),
        cors_origins: config.cors_origins.clone().into(),
        products: PgProducts::new(pool.clone())
            .listing_on(listing_pool)
            .waiting_on(waits.clone()),
        users: PgUsers::new(pool.clone()).waiting_on(waits),
        cache,
        jetstream: jetstream.clone(),
        subjects: subjects.clone(),
        relay: Arc::new(RelayStatus::default()),
        outbox,
        tasks: PgTasks::new(pool.clone()),
        task_queue: TaskQueue::new(jetstream.clone(), subjects.clone()),
        schedules: PgSchedules::new(pool.clone()),
        password_tokens: eshop_infra::password_tokens::PgPasswordTokens::new(pool.clone()),
        accounts: Arc::new(config.accounts.clone()),
        tz,
        http_metrics: Arc::default(),
        ready_max_lag: Duration::from_secs(config.operations.ready_max_lag_seconds),
        web: config.web.clone(),
        search,
        pool,
    });
    if let Some((email, password)) = config.admin_account() {
        ensure_admin(&state, email, password).await?;
    }
    Ok(state)
}

/// Where and how this process keeps its search index.
pub fn search_settings(config: &Config) -> SearchSettings {
    SearchSettings {
        dir: config.search.dir(&config.nats_prefix),
        commit_every: Duration::from_millis(config.search.search_commit_ms.max(10)),
        batch: config.search.search_batch.max(1),
        suggestions_kept: config.search.search_suggestions_kept,
    }
}

/// A server running in the background (tests, and `serve` itself).
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    stop_workers: ShutdownTrigger,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting connections, lets requests in flight finish, stops the workers, and
    /// waits for all of it.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        let served = self.task.await.map_err(std::io::Error::other)?;
        self.stop_workers.trigger();
        for worker in self.workers {
            worker.await.map_err(std::io::Error::other)?;
        }
        served
    }
}

pub async fn start(config: &Config) -> Result<Running, BoxError> {
    // Before anything connects: a CA file that cannot be used stops the start, not the monthly
    // import weeks later.
    let feeds = config.calendar.fetch.reader()?;
    let state = build_state(config).await?;
    let (stop_workers, shutdown) = shutdown_pair();
    let mut workers = if config.runs_workers() {
        // The workers replay requests through the router (background commands, the import).
        let app = router_with(state.clone(), &config.http);
        workers::spawn(&state, &app, config, feeds, &shutdown)
    } else {
        Vec::new()
    };
    if let Some(search) = &state.search {
        workers.push(tokio::spawn(search.clone().run(
            state.jetstream.clone(),
            state.subjects.clone(),
            shutdown.clone(),
        )));
    }
    let listener = TcpListener::bind(config.http_addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = if config.runs_api() {
        router_with(state.clone(), &config.http)
    } else {
        // A workers-only process answers what operators probe it with, and nothing else.
        Router::new()
            .merge(routes::health::router())
            .merge(routes::metrics::router())
            .with_state(state.clone())
    };
    let http_settings = config.http.clone();
    let task =
        tokio::spawn(async move { http::serve(listener, app, &http_settings, stopped).await });
    Ok(Running {
        addr,
        state,
        stop,
        task,
        stop_workers,
        workers,
    })
}

pub async fn serve(mut config: Config) -> Result<(), BoxError> {
    let stop = shutdown_signal();
    if !config.operations.embedded {
        return serve_until(config, stop).await;
    }
    let data_dir = config.operations.data_dir.clone();
    let services =
        tokio::task::spawn_blocking(move || EmbeddedServices::start(&data_dir)).await??;
    tracing::info!(
        data_dir = %config.operations.data_dir.display(),
        nats = %services.nats_url,
        "embedded Postgres and NATS started; running without Redis"
    );
    config.database_url = services.database_url.clone();
    config.nats_url = services.nats_url.clone();
    config.redis_url = String::new();
    let served = serve_until(config, stop).await;
    tokio::task::spawn_blocking(move || services.stop()).await?;
    served
}

async fn serve_until(
    config: Config,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), BoxError> {
    let running = start(&config).await?;
    if config.operations.demo {
        let added = demo::load(&running.state).await?;
        tracing::info!(added, "demo catalog and shoppers loaded");
        println!(
            "{}",
            demo::instructions(&format!("http://{}", running.addr))
        );
    }
    tracing::info!(addr = %running.addr, "eshop is serving");
    let purge = tokio::spawn(purge_idempotency_records(running.state.clone()));
    stop.await;
    tracing::info!("shutting down: finishing requests in flight");
    purge.abort();
    running.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

pub async fn migrate_only(config: &Config) -> Result<(), BoxError> {
    let pool = connect(&DatabaseSettings {
        url: config.database_url.clone(),
        max_connections: 1,
    })
    .await?;
    migrate(&pool).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// Idempotency records are kept at least 24 hours; older ones are purged hourly.
async fn purge_idempotency_records(state: AppState) {
    let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        match state.idempotency.purge_expired().await {
            Ok(purged) => tracing::debug!(purged, "purged expired idempotency records"),
            Err(error) => tracing::warn!(error = %error, "could not purge idempotency records"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C. The listeners are registered when this is called, not when
/// it is first awaited: a signal that arrives while eshop is still starting then stops it
/// cleanly (embedded servers included) instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let listeners = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match listeners {
                (Ok(mut terminate), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {},
                        _ = interrupt.recv() => {},
                    }
                }
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(error = %error, "cannot listen for SIGTERM or SIGINT");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}
