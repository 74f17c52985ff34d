//! The economic calendar: list and detail reads (from the `calendar_events` read model behind
//! the Redis cache), admin create/revise/delete, and feed imports as background tasks.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use eshop_commands::calendar::{feed, FeedError};
use eshop_domain::calendar::{
    self, CalendarCommand, CalendarEvent, Changes, Country, Details, Entry, EventKey, Importance,
    ZoneName,
};
use eshop_domain::values::InvalidValue;
use eshop_projections::cached::Entry as Cached;
use eshop_projections::calendar::{
    CalendarQuery, CalendarRecord, RevisionRecord, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
};

use crate::auth::AdminUser;
use crate::background::respond_async::accepted;
use crate::background::tasks::CALENDAR_IMPORT;
use crate::command::{execute, Answer};
use crate::error::{ApiError, FieldError};
use crate::request::{ApiQuery, JsonBody, RequestMeta};
use crate::routes::{parse_id, READ_YOUR_WRITES_WAIT};
use crate::state::AppState;
use crate::validate::Fields;

/// The largest feed `POST /api/admin/imports/calendar` takes.
const FEED_LIMIT_BYTES: usize = 8 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/calendar/events", get(list).post(create))
        .route(
            "/api/calendar/events/{id}",
            get(show).patch(revise).delete(remove),
        )
        .route(
            "/api/admin/imports/calendar",
            post(import).layer(DefaultBodyLimit::max(FEED_LIMIT_BYTES)),
        )
}

/// An entry as clients see it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CalendarView {
    pub id: Uuid,
    pub date: NaiveDate,
    /// `HH:MM:SS` in `time_zone`.
    pub time: String,
    pub time_zone: String,
    pub name: String,
    pub country: String,
    pub importance: Importance,
    pub actual: Option<String>,
    pub forecast: Option<String>,
    pub previous: Option<String>,
    pub source: Option<String>,
    pub version: u64,
    /// Detail reads only: each revision with the fields it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revisions: Option<Vec<RevisionView>>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RevisionView {
    pub recorded_at: DateTime<Utc>,
    pub changes: calendar::Revision,
}

fn time_text(time: NaiveTime) -> String {
    time.format("%H:%M:%S").to_string()
}

impl CalendarView {
    fn from_record(record: CalendarRecord, with_revisions: bool) -> Self {
        Self {
            id: record.id,
            date: record.date,
            time: time_text(record.time),
            time_zone: record.time_zone,
            name: record.name,
            country: record.country,
            importance: record.importance,
            actual: record.actual,
            forecast: record.forecast,
            previous: record.previous,
            source: record.source,
            version: record.version,
            revisions: with_revisions.then(|| {
                record
                    .revisions
                    .into_iter()
                    .map(
                        |RevisionRecord {
                             recorded_at,
                             changes,
                         }| RevisionView {
                            recorded_at,
                            changes,
                        },
                    )
                    .collect()
            }),
        }
    }

    /// The entry as the command left it (before the read model caught up).
    fn from_aggregate(id: Uuid, event: &CalendarEvent, version: u64) -> Self {
        Self {
            id,
            date: event.date.unwrap_or_default(),
            time: event.time.map(time_text).unwrap_or_default(),
            time_zone: event.time_zone.clone(),
            name: event.name.clone(),
            country: event.country.clone(),
            importance: event.importance.unwrap_or(Importance::Low),
            actual: event.actual.clone(),
            forecast: event.forecast.clone(),
            previous: event.previous.clone(),
            source: event.source.clone(),
            version,
            revisions: None,
        }
    }
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct PageView {
    items: Vec<CalendarView>,
    next_cursor: Option<String>,
}

fn date(raw: &str) -> Result<NaiveDate, InvalidValue> {
    raw.trim()
        .parse()
        .map_err(|_| InvalidValue("must be a date like 2026-10-20".into()))
}

/// The parameters of `GET /api/calendar/events`, for the document: `to_query` reads them.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
pub(crate) struct ListParams {
    /// One day (not with `from`/`to`), like `2026-10-20`.
    date: Option<NaiveDate>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    /// Two-letter ISO 3166-1 codes; may repeat or be comma-separated.
    country: Option<Vec<String>>,
    /// `low`, `medium`, `high`; may repeat or be comma-separated.
    importance: Option<Vec<ImportanceParam>>,
    #[schemars(range(min = 1, max = 200))]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<Uuid>,
}

/// `Importance`, inlined: a query parameter's schema cannot refer to definitions.
#[derive(schemars::JsonSchema)]
#[schemars(inline, rename_all = "lowercase")]
#[allow(dead_code)]
enum ImportanceParam {
    Low,
    Medium,
    High,
}

/// `?country=&importance=` may repeat (or hold comma-separated values); the others may not.
fn to_query(pairs: Vec<(String, String)>) -> Result<CalendarQuery, ApiError> {
    let mut fields = Fields::default();
    let mut query = CalendarQuery {
        limit: DEFAULT_PAGE_SIZE,
        ..CalendarQuery::default()
    };
    let (mut on, mut seen) = (None, Vec::new());
    for (name, value) in pairs {
        if !matches!(name.as_str(), "country" | "importance") {
            if seen.contains(&name) {
                fields.add(FieldError::new(&name, "must be given once"));
                continue;
            }
            seen.push(name.clone());
        }
        let values = || value.split(',').map(str::trim).filter(|v| !v.is_empty());
        match name.as_str() {
            "country" => {
                for raw in values() {
                    if let Some(country) = fields.check("country", Country::parse(raw)) {
                        query.countries.push(country.as_str().to_string());
                    }
                }
            }
            "importance" => {
                for raw in values() {
                    if let Some(importance) = fields.check("importance", Importance::parse(raw)) {
                        query.importances.push(importance);
                    }
                }
            }
            "date" => on = fields.check("date", date(&value)),
            "from" => query.from = fields.check("from", date(&value)),
            "to" => query.to = fields.check("to", date(&value)),
            "limit" => match value.trim().parse::<u32>() {
                Ok(limit) if (1..=MAX_PAGE_SIZE).contains(&limit) => query.limit = limit,
                _ => fields.add(FieldError::new(
                    "limit",
                    format!("must be 1 to {MAX_PAGE_SIZE}"),
                )),
            },
            "cursor" => match value.trim().parse::<Uuid>() {
                Ok(id) => query.after = Some(id),
                Err(_) => fields.add(FieldError::new(
                    "cursor",
                    "is not a cursor from a previous page",
                )),
            },
            other => fields.add(FieldError::new(other, "is not a filter of this list")),
        }
    }
    if let Some(day) = on {
        if query.from.is_some() || query.to.is_some() {
            fields.add(FieldError::new("date", "give either date or from/to"));
        }
        query.from = Some(day);
        query.to = Some(day);
    }
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if to < from {
            fields.add(FieldError::new("to", "must not be before from"));
        }
    }
    if fields.is_valid() {
        Ok(query)
    } else {
        Err(fields.into_error())
    }
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let query = to_query(pairs)?;
    let calendar = &state.calendar;
    let page = state
        .cache
        .get_or_load(Cached::CalendarList(query.cache_key()), || async {
            let records = calendar.list(&query).await?;
            let next_cursor = (records.len() == query.limit as usize)
                .then(|| records.last().map(|record| record.id.to_string()))
                .flatten();
            let page = PageView {
                items: records
                    .into_iter()
                    .map(|record| CalendarView::from_record(record, false))
                    .collect(),
                next_cursor,
            };
            serde_json::to_vec(&page)
                .map(|body| Some(Bytes::from(body)))
                .map_err(ApiError::internal)
        })
        .await?
        .unwrap_or_default();
    Ok(json_bytes(page))
}

fn json_bytes(body: Bytes) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DetailParams {
    min_version: Option<u64>,
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DetailParams>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "calendar event")?;
    let wanted = params.min_version.unwrap_or(0);
    let body = |record: CalendarRecord| -> Result<Option<Bytes>, ApiError> {
        if record.deleted {
            return Ok(None);
        }
        serde_json::to_vec(&CalendarView::from_record(record, true))
            .map(|body| Some(Bytes::from(body)))
            .map_err(ApiError::internal)
    };
    let calendar = &state.calendar;
    let cached = state
        .cache
        .get_or_load(Cached::CalendarEvent(id), || async {
            match calendar.get(id).await? {
                Some(record) if record.version >= wanted => body(record),
                // Not yet at the version asked for: nothing to cache.
                _ => Ok::<_, ApiError>(None),
            }
        })
        .await?;
    if let Some(bytes) = cached {
        let version = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|view| view["version"].as_u64())
            .unwrap_or(0);
        if version >= wanted {
            return Ok(json_bytes(bytes));
        }
    }
    if wanted == 0 {
        return Err(ApiError::NotFound("calendar event"));
    }
    match calendar
        .wait_for_version(id, wanted, READ_YOUR_WRITES_WAIT)
        .await?
    {
        Some(record) => body(record)?
            .map(json_bytes)
            .ok_or(ApiError::NotFound("calendar event")),
        None => Err(crate::routes::not_yet_visible(wanted)),
    }
}

/// A new entry, as `POST /api/calendar/events` takes it.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    date: String,
    time: String,
    time_zone: Option<String>,
    name: String,
    country: String,
    importance: String,
    actual: Option<String>,
    forecast: Option<String>,
    previous: Option<String>,
    source: Option<String>,
}

fn optional(
    raw: Option<&str>,
    read: fn(&str) -> Result<Option<String>, InvalidValue>,
) -> Result<Option<String>, InvalidValue> {
    raw.map(read).transpose().map(Option::flatten)
}

fn entry(body: &CreateRequest, default_zone: &str) -> Result<Entry, ApiError> {
    let mut fields = Fields::default();
    let date = fields.check("date", date(&body.date));
    let time = fields.check("time", calendar::time_of_day(&body.time));
    let time_zone = fields.check(
        "time_zone",
        ZoneName::parse(body.time_zone.as_deref().unwrap_or(default_zone)),
    );
    let country = fields.check("country", Country::parse(&body.country));
    let importance = fields.check("importance", Importance::parse(&body.importance));
    let actual = fields.check("actual", optional(body.actual.as_deref(), calendar::figure));
    let forecast = fields.check(
        "forecast",
        optional(body.forecast.as_deref(), calendar::figure),
    );
    let previous = fields.check(
        "previous",
        optional(body.previous.as_deref(), calendar::figure),
    );
    let source = fields.check("source", optional(body.source.as_deref(), calendar::source));
    let key = match (date, time) {
        (Some(date), Some(time)) => fields.check("name", EventKey::new(date, time, &body.name)),
        _ => None,
    };
    let (
        Some(key),
        Some(time_zone),
        Some(country),
        Some(importance),
        Some(actual),
        Some(forecast),
        Some(previous),
        Some(source),
        true,
    ) = (
        key,
        time_zone,
        country,
        importance,
        actual,
        forecast,
        previous,
        source,
        fields.is_valid(),
    )
    else {
        return Err(fields.into_error());
    };
    Ok(Entry {
        key,
        details: Details {
            time_zone,
            country,
            importance,
            actual,
            forecast,
            previous,
            source,
        },
    })
}

/// Runs a command on an entry and answers with the entry after it.
async fn run(
    state: &AppState,
    meta: &RequestMeta,
    admin: &crate::auth::CurrentUser,
    id: Uuid,
    body: &Value,
    command: CalendarCommand,
    status: StatusCode,
) -> Result<Response, ApiError> {
    execute(
        state,
        meta,
        &admin.id.to_string(),
        admin.actor(),
        body,
        |context| async move {
            let executed = state
                .bus
                .execute_with(
                    &id.to_string(),
                    command,
                    &context,
                    meta.expected_version,
                    |event: &CalendarEvent| CalendarView::from_aggregate(id, event, 0),
                )
                .await?;
            let view = CalendarView {
                version: executed.version,
                ..executed.aggregate
            };
            match status {
                StatusCode::CREATED => Answer::created(view),
                _ => Answer::ok(view),
            }
        },
    )
    .await
}

async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    JsonBody { value, raw }: JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    let entry = entry(&value, state.tz.name())?;
    let id = entry.key.aggregate_id();
    run(
        &state,
        &meta,
        &admin,
        id,
        &raw,
        CalendarCommand::Schedule(entry),
        StatusCode::CREATED,
    )
    .await
}

/// What `PATCH` may change: everything but the date, time and name, which identify the entry.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviseRequest {
    time_zone: Option<String>,
    country: Option<String>,
    importance: Option<String>,
    #[serde(default, deserialize_with = "crate::request::some_or_null")]
    #[schemars(with = "Option<String>")]
    actual: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::request::some_or_null")]
    #[schemars(with = "Option<String>")]
    forecast: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::request::some_or_null")]
    #[schemars(with = "Option<String>")]
    previous: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::request::some_or_null")]
    #[schemars(with = "Option<String>")]
    source: Option<Option<String>>,
}

fn cleared_or(
    raw: Option<Option<String>>,
    read: fn(&str) -> Result<Option<String>, InvalidValue>,
) -> Result<Option<Option<String>>, InvalidValue> {
    match raw {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(text)) => read(&text).map(Some),
    }
}

async fn revise(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
    JsonBody { value, raw }: JsonBody<ReviseRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "calendar event")?;
    let mut fields = Fields::default();
    let time_zone = fields.check(
        "time_zone",
        value.time_zone.as_deref().map(ZoneName::parse).transpose(),
    );
    let country = fields.check(
        "country",
        value.country.as_deref().map(Country::parse).transpose(),
    );
    let importance = fields.check(
        "importance",
        value
            .importance
            .as_deref()
            .map(Importance::parse)
            .transpose(),
    );
    let actual = fields.check("actual", cleared_or(value.actual, calendar::figure));
    let forecast = fields.check("forecast", cleared_or(value.forecast, calendar::figure));
    let previous = fields.check("previous", cleared_or(value.previous, calendar::figure));
    let source = fields.check("source", cleared_or(value.source, calendar::source));
    let (
        Some(time_zone),
        Some(country),
        Some(importance),
        Some(actual),
        Some(forecast),
        Some(previous),
        Some(source),
    ) = (
        time_zone, country, importance, actual, forecast, previous, source,
    )
    else {
        return Err(fields.into_error());
    };
    let changes = Changes {
        time_zone,
        country,
        importance,
        actual,
        forecast,
        previous,
        source,
    };
    run(
        &state,
        &meta,
        &admin,
        id,
        &raw,
        CalendarCommand::Revise(changes),
        StatusCode::OK,
    )
    .await
}

async fn remove(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "calendar event")?;
    run(
        &state,
        &meta,
        &admin,
        id,
        &Value::Null,
        CalendarCommand::Delete,
        StatusCode::OK,
    )
    .await
}

/// A feed (a JSON array, or CSV with a header row) imported in the background: 202 with the
/// task to watch (its progress, then `{created, revised, unchanged, skipped}`). A feed that
/// cannot be read at all is refused at once.
async fn import(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    body: Bytes,
) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::field("body", "must be UTF-8 text (JSON or CSV)"))?;
    let rows =
        feed::parse(text, state.tz.name()).map_err(|error: FeedError| ApiError::Unprocessable {
            code: "invalid_feed",
            detail: error.to_string(),
        })?;
    if rows.is_empty() {
        return Err(ApiError::Unprocessable {
            code: "invalid_feed",
            detail: FeedError::Empty.to_string(),
        });
    }
    let task = state
        .tasks
        .create(
            CALENDAR_IMPORT,
            &json!({"feed": text, "rows": rows.len()}),
            Some(&admin.task_owner()),
        )
        .await?;
    state
        .task_queue
        .publish(&task, Value::Null)
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(accepted(&task))
}
