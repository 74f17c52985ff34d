//! Read-only views of the event history for auditors (and admins): the feed with filters, one
//! stream, one correlation's story, an aggregate's state as of a moment, the NDJSON export and
//! the verification of the hash chain.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use eshop_projections::RelayedEvent;

use crate::auth::AuditReader;
use crate::error::ApiError;
use crate::request::ApiQuery;
use crate::state::{
    write_export_lines, AggregateState, AppState, AsOf, Export, ExportError, ExportRange,
    FeedFilter, Until, Verification,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/audit/events", get(feed))
        .route(
            "/api/audit/streams/{aggregate_type}/{aggregate_id}",
            get(stream),
        )
        .route(
            "/api/audit/streams/{aggregate_type}/{aggregate_id}/state",
            get(state_as_of),
        )
        .route("/api/audit/correlations/{correlation_id}", get(correlation))
        .route("/api/audit/export", get(export))
        .route("/api/audit/verify", get(verify))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedQuery {
    after: Option<i64>,
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<i64>,
    aggregate_type: Option<String>,
    aggregate_id: Option<String>,
    event_type: Option<String>,
    actor: Option<String>,
    correlation_id: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Feed {
    items: Vec<RelayedEvent>,
    /// Pass as `after` for the next page; absent at the end.
    next_after: Option<i64>,
}

fn non_negative(field: &str, value: Option<i64>) -> Result<i64, ApiError> {
    let value = value.unwrap_or(0);
    if value < 0 {
        return Err(ApiError::field(field, "must not be negative"));
    }
    Ok(value)
}

fn uuid_field(field: &str, value: &str) -> Result<(), ApiError> {
    value
        .parse::<Uuid>()
        .map(|_| ())
        .map_err(|_| ApiError::field(field, "must be a UUID"))
}

/// Every event by global position, as published (secrets removed, personal data sealed),
/// narrowed by any of the filters.
async fn feed(
    State(state): State<AppState>,
    _reader: AuditReader,
    ApiQuery(query): ApiQuery<FeedQuery>,
) -> Result<Json<Feed>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 1000"));
    }
    let after = non_negative("after", query.after)?;
    if let Some(actor) = query.actor.as_deref().filter(|actor| *actor != "system") {
        uuid_field("actor", actor)
            .map_err(|_| ApiError::field("actor", "must be a user id or `system`"))?;
    }
    if let Some(correlation_id) = &query.correlation_id {
        uuid_field("correlation_id", correlation_id)?;
    }
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if to < from {
            return Err(ApiError::field("to", "must not be before `from`"));
        }
    }
    let filter = FeedFilter {
        aggregate_type: query.aggregate_type,
        aggregate_id: query.aggregate_id,
        event_type: query.event_type,
        actor: query.actor,
        correlation_id: query.correlation_id,
        from: query.from,
        to: query.to,
    };
    let items = state
        .audit_feed(after, limit, &filter)
        .await
        .map_err(ApiError::unavailable)?;
    let next_after = (items.len() as i64 == limit)
        .then(|| items.last().map(|event| event.position))
        .flatten();
    Ok(Json(Feed { items, next_after }))
}

/// One aggregate's history in sequence; 404 when it has none.
async fn stream(
    State(state): State<AppState>,
    _reader: AuditReader,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
) -> Result<Json<Vec<RelayedEvent>>, ApiError> {
    // No stored id holds U+0000 (Postgres text cannot), and Postgres refuses it as a parameter.
    if aggregate_type.contains('\0') || aggregate_id.contains('\0') {
        return Err(ApiError::NotFound("stream"));
    }
    let events = state
        .audit_stream(&aggregate_type, &aggregate_id)
        .await
        .map_err(ApiError::unavailable)?;
    if events.is_empty() {
        return Err(ApiError::NotFound("stream"));
    }
    Ok(Json(events))
}

/// Every event one request or one order process caused, in commit order; 404 when none.
async fn correlation(
    State(state): State<AppState>,
    _reader: AuditReader,
    Path(correlation_id): Path<String>,
) -> Result<Json<Vec<RelayedEvent>>, ApiError> {
    uuid_field("correlation_id", &correlation_id)?;
    let events = state
        .audit_correlation(&correlation_id)
        .await
        .map_err(ApiError::unavailable)?;
    if events.is_empty() {
        return Err(ApiError::NotFound("correlation"));
    }
    Ok(Json(events))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateQuery {
    as_of: Option<DateTime<Utc>>,
    #[schemars(range(min = 1))]
    version: Option<u64>,
}

/// The aggregate as the domain rebuilt it from its events up to `as_of` or `version`.
async fn state_as_of(
    State(state): State<AppState>,
    _reader: AuditReader,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<StateQuery>,
) -> Result<Json<AggregateState>, ApiError> {
    let as_of = match (query.as_of, query.version) {
        (Some(time), None) => AsOf::Time(time),
        (None, Some(version)) => AsOf::Version(version),
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "as_of",
                "give either `as_of` or `version`, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::field(
                "as_of",
                "give `as_of` (RFC 3339) or `version`",
            ))
        }
    };
    if as_of == AsOf::Version(0) {
        return Err(ApiError::field("version", "must be at least 1"));
    }
    state
        .state_as_of(&aggregate_type, &aggregate_id, as_of)
        .await
        .map_err(ApiError::internal)?
        .map(Json)
        .ok_or(ApiError::NotFound("aggregate event by then"))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    after: Option<i64>,
    /// A position (the last event included, in commit order) or an RFC 3339 time.
    until: Option<String>,
    aggregate_type: Option<String>,
}

const NDJSON: &str = "application/x-ndjson";
/// Bytes gathered before they go to the client: few enough to keep memory flat, many enough
/// that a chunk is not a syscall per event.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks waiting for a slow client; beyond them the export waits.
const CHUNKS_IN_FLIGHT: usize = 4;

fn parse_until(raw: &str) -> Result<Until, ApiError> {
    if let Ok(position) = raw.parse::<i64>() {
        return if position > 0 {
            Ok(Until::Position(position))
        } else {
            Err(ApiError::field("until", "must be a positive position"))
        };
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|time| Until::Time(time.with_timezone(&Utc)))
        .map_err(|_| ApiError::field("until", "must be a position or an RFC 3339 time"))
}

fn export_error(error: ExportError) -> ApiError {
    match error {
        ExportError::UnknownPosition { field, .. } => ApiError::field(field, error.to_string()),
        ExportError::Database(error) => ApiError::unavailable(error),
    }
}

/// NDJSON, one envelope per line as on NATS, in commit order, streamed a page at a time.
async fn export(
    State(state): State<AppState>,
    _reader: AuditReader,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let range = ExportRange {
        after: non_negative("after", query.after)?,
        until: query.until.as_deref().map(parse_until).transpose()?,
        aggregate_type: query.aggregate_type,
    };
    let export = state.start_export(range).await.map_err(export_error)?;
    let (chunks, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::spawn(stream_export(export, chunks));
    let body = Body::from_stream(futures::stream::unfold(receiver, |mut receiver| async {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    }));
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    Ok(response)
}

type Chunk = Result<Bytes, std::io::Error>;

/// Pages into chunks until the export ends or the client goes away. A failure ends the body
/// early: the client sees a cut response and resumes after the last line it got.
async fn stream_export(mut export: Export, chunks: mpsc::Sender<Chunk>) {
    let mut buffer = Vec::with_capacity(CHUNK_BYTES * 2);
    loop {
        let page = match export.next_page().await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(error = %error, after = export.last_position(), "export cut short");
                let _ = chunks.send(Err(std::io::Error::other(error))).await;
                return;
            }
        };
        if page.is_empty() {
            break;
        }
        for event in page.chunks(64) {
            if let Err(error) = write_export_lines(&mut buffer, event) {
                let _ = chunks.send(Err(std::io::Error::other(error))).await;
                return;
            }
            if buffer.len() >= CHUNK_BYTES {
                let chunk = Bytes::from(std::mem::replace(
                    &mut buffer,
                    Vec::with_capacity(CHUNK_BYTES * 2),
                ));
                if chunks.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        }
    }
    if !buffer.is_empty() {
        let _ = chunks.send(Ok(Bytes::from(buffer))).await;
    }
}

/// Recomputes the hash chain and compares it with the stored links and seals.
async fn verify(
    State(state): State<AppState>,
    _reader: AuditReader,
) -> Result<Json<Verification>, ApiError> {
    state
        .verify_chain()
        .await
        .map(Json)
        .map_err(ApiError::Unavailable)
}
