//! Scheduled jobs for admins: the built-in ones and their own (a cron expression, a fixed
//! interval, or one time), each naming a job kind and its parameters; and each one's runs.
//! Every replica picks up a change within `ESHOP_SCHEDULE_POLL_MS`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use eshop_commands::schedules::{ScheduleInput, ScheduleRecord, ScheduleSpec, SpecError};

use crate::auth::AdminUser;
use crate::background::jobs;
use crate::command::Answer;
use crate::error::{ApiError, FieldError};
use crate::request::{ApiQuery, JsonBody, RequestMeta};
use crate::routes::parse_id;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/schedules", get(list).post(create))
        .route(
            "/api/admin/schedules/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/admin/schedules/{id}/runs", get(runs))
}

/// A job's parameters as the OpenAPI document shows them: an object of plain values (which
/// ones depends on `job_kind`).
fn job_params(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["object", "null"],
        "additionalProperties": {"type": ["string", "number", "boolean", "null"]}
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleBody {
    name: Option<String>,
    job_kind: Option<String>,
    #[schemars(schema_with = "job_params")]
    params: Option<Value>,
    #[serde(default, deserialize_with = "crate::request::some_or_null")]
    cron: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::request::some_or_null")]
    every_seconds: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::request::some_or_null")]
    run_at: Option<Option<DateTime<Utc>>>,
    enabled: Option<bool>,
}

impl ScheduleBody {
    fn names_a_time(&self) -> bool {
        self.cron.is_some() || self.every_seconds.is_some() || self.run_at.is_some()
    }
}

/// The schedule `body` describes on top of `current` (for a PATCH), validated.
fn input(body: ScheduleBody, current: Option<&ScheduleRecord>) -> Result<ScheduleInput, ApiError> {
    let mut errors = Vec::new();
    let name = body
        .name
        .clone()
        .or_else(|| current.map(|schedule| schedule.name.clone()))
        .unwrap_or_default();
    if name.trim().is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "must be 1 to 100 characters"));
    }
    let job_kind = body
        .job_kind
        .clone()
        .or_else(|| current.map(|schedule| schedule.job_kind.clone()))
        .unwrap_or_default();
    let params = body
        .params
        .clone()
        .or_else(|| current.map(|schedule| schedule.params.clone()))
        .unwrap_or_else(|| json!({}));
    if let Err(ApiError::Validation(mut invalid)) = jobs::validate(&job_kind, &params) {
        errors.append(&mut invalid);
    }
    // A new time replaces the old one entirely: name exactly one of the three.
    let spec = if body.names_a_time() || current.is_none() {
        ScheduleSpec::from_columns(
            body.cron.clone().flatten().as_deref(),
            body.every_seconds.flatten(),
            body.run_at.flatten(),
        )
    } else {
        current
            .map(ScheduleRecord::spec)
            .unwrap_or(Err(SpecError::NotExactlyOne))
    };
    let spec = match spec {
        Ok(spec) => Some(spec),
        Err(error) => {
            let field = match error {
                SpecError::Cron(_) => "cron",
                SpecError::Interval => "every_seconds",
                SpecError::NotExactlyOne => "cron",
            };
            errors.push(FieldError::new(field, error.to_string()));
            None
        }
    };
    match spec {
        Some(spec) if errors.is_empty() => Ok(ScheduleInput {
            name: name.trim().to_string(),
            job_kind,
            params,
            spec,
            enabled: body
                .enabled
                .or(current.map(|schedule| schedule.enabled))
                .unwrap_or(true),
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

fn answer(status: axum::http::StatusCode, schedule: &ScheduleRecord) -> Result<Response, ApiError> {
    let mut response = Answer::ok(schedule)?.into_response();
    *response.status_mut() = status;
    if let Ok(etag) = axum::http::HeaderValue::from_str(&format!("\"{}\"", schedule.version)) {
        response
            .headers_mut()
            .insert(axum::http::header::ETAG, etag);
    }
    Ok(response)
}

async fn list(State(state): State<AppState>, _admin: AdminUser) -> Result<Response, ApiError> {
    let schedules = state.schedules.list().await?;
    Answer::ok(json!({"items": schedules})).map(Answer::into_response)
}

async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    JsonBody { value, .. }: JsonBody<ScheduleBody>,
) -> Result<Response, ApiError> {
    let input = input(value, None)?;
    let schedule = state.schedules.create(&input, Some(admin.id)).await?;
    answer(axum::http::StatusCode::CREATED, &schedule)
}

async fn find(state: &AppState, id: &str) -> Result<ScheduleRecord, ApiError> {
    let id = parse_id(id, "schedule")?;
    state
        .schedules
        .get(id)
        .await?
        .ok_or(ApiError::NotFound("schedule"))
}

async fn show(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    answer(axum::http::StatusCode::OK, &find(&state, &id).await?)
}

fn version_of(schedule: &ScheduleRecord) -> u64 {
    u64::try_from(schedule.version).unwrap_or_default()
}

async fn update(
    State(state): State<AppState>,
    _admin: AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
    JsonBody { value, .. }: JsonBody<ScheduleBody>,
) -> Result<Response, ApiError> {
    let current = find(&state, &id).await?;
    if current.builtin
        && value
            .job_kind
            .as_deref()
            .is_some_and(|kind| kind != current.job_kind)
    {
        return Err(ApiError::field(
            "job_kind",
            "a built-in schedule keeps its job kind",
        ));
    }
    let input = input(value, Some(&current))?;
    let expected = meta
        .expected_version
        .map(|version| i64::try_from(version).unwrap_or(i64::MAX))
        .unwrap_or(current.version);
    match state
        .schedules
        .update(current.id, &input, Some(expected))
        .await?
    {
        Some(schedule) => answer(axum::http::StatusCode::OK, &schedule),
        None => {
            let now = find(&state, &id).await?;
            Err(ApiError::VersionMismatch {
                expected: u64::try_from(expected).unwrap_or_default(),
                actual: version_of(&now),
            })
        }
    }
}

async fn remove(
    State(state): State<AppState>,
    _admin: AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let current = find(&state, &id).await?;
    if current.builtin {
        return Err(ApiError::Conflict {
            code: "builtin_schedule",
            detail: "a built-in schedule cannot be deleted; disable it with {\"enabled\": false}"
                .into(),
        });
    }
    if let Some(expected) = meta.expected_version {
        if expected != version_of(&current) {
            return Err(ApiError::VersionMismatch {
                expected,
                actual: version_of(&current),
            });
        }
    }
    state.schedules.delete(current.id).await?;
    answer(axum::http::StatusCode::OK, &current)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsParams {
    #[schemars(range(min = 1, max = 100))]
    limit: Option<i64>,
    /// Runs with a tick before this (the last tick of the previous page).
    before: Option<DateTime<Utc>>,
}

async fn runs(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<RunsParams>,
) -> Result<Response, ApiError> {
    let schedule = find(&state, &id).await?;
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 100"));
    }
    let runs = state
        .schedules
        .runs(schedule.id, limit, params.before)
        .await?;
    Answer::ok(json!({"items": runs})).map(Answer::into_response)
}
