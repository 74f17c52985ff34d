//! Background tasks: their status, and the heavy tasks admins start (a sales report over a
//! date range, a recompute of the product rating aggregates). Any command endpoint queues one
//! with `Prefer: respond-async` (`crate::background::respond_async`).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use uuid::Uuid;

use eshop_domain::values::Role;

use crate::auth::{AdminUser, CurrentUser};
use crate::background::respond_async::accepted;
use crate::background::tasks::{SalesReportInput, RECOMPUTE_RATINGS, SALES_REPORT};
use crate::command::Answer;
use crate::error::ApiError;
use crate::request::{ApiQuery, JsonBody};
use crate::routes::{parse_id, PageParams};
use crate::state::AppState;
use crate::views::{Page, TaskView};

/// The longest range a sales report covers.
const MAX_REPORT_DAYS: i64 = 366;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tasks", get(list))
        .route("/api/tasks/{id}", get(show))
        .route("/api/tasks/{id}/status", get(status))
        .route("/api/admin/reports/sales", post(sales_report))
        .route(
            "/api/admin/products/ratings/recompute",
            post(recompute_ratings),
        )
}

/// The caller, when a token came along: a task queued anonymously (a registration, say) is
/// readable by anyone holding its id, which is random and was only ever given to its caller.
struct MaybeUser(Option<CurrentUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(AUTHORIZATION) {
            Ok(Self(Some(
                CurrentUser::from_request_parts(parts, state).await?,
            )))
        } else {
            Ok(Self(None))
        }
    }
}

/// `GET /api/tasks/{id}/status`: where a task stands, for polling.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct TaskStatus {
    pub id: Uuid,
    pub status: String,
    pub progress: i16,
}

async fn status(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let task = visible_task(&state, user.as_ref(), &id).await?;
    Answer::ok(TaskStatus {
        id: task.id,
        status: task.status,
        progress: task.progress,
    })
    .map(Answer::into_response)
}

async fn show(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let task = visible_task(&state, user.as_ref(), &id).await?;
    Answer::ok(TaskView::from(task)).map(Answer::into_response)
}

/// The task, if this caller may see it (its owner, an admin; a task queued without a token:
/// whoever has its id); else 404.
async fn visible_task(
    state: &AppState,
    user: Option<&CurrentUser>,
    id: &str,
) -> Result<crate::views::TaskRecord, ApiError> {
    let id = parse_id(id, "task")?;
    let task = state
        .tasks
        .get(id)
        .await?
        .filter(|task| match (user, task.owner_id) {
            (Some(user), _) if user.has_role(Role::Admin) => true,
            (Some(user), Some(owner)) => owner == user.id,
            (_, None) => task.kind == crate::background::respond_async::COMMAND_TASK,
            (None, Some(_)) => false,
        })
        .ok_or(ApiError::NotFound("task"))?;
    Ok(task)
}

async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit(20, 100)?;
    let whose = (!user.has_role(Role::Admin)).then_some(user.id);
    let before = match params.cursor.as_deref() {
        Some(raw) => {
            let not_a_cursor = || ApiError::field("cursor", "is not a cursor from a previous page");
            let id = raw.parse::<Uuid>().map_err(|_| not_a_cursor())?;
            let task = state.tasks.get(id).await?.ok_or_else(not_a_cursor)?;
            Some((task.created_at, task.id))
        }
        None => None,
    };
    let tasks = state.tasks.list(whose, limit, before).await?;
    let next_cursor = (tasks.len() as i64 == limit)
        .then(|| tasks.last().map(|task| task.id.to_string()))
        .flatten();
    Answer::ok(Page {
        items: tasks.into_iter().map(TaskView::from).collect::<Vec<_>>(),
        next_cursor,
    })
    .map(Answer::into_response)
}

pub(crate) async fn queue(
    state: &AppState,
    admin: &CurrentUser,
    kind: &str,
    input: Value,
) -> Result<Response, ApiError> {
    let task = state
        .tasks
        .create(kind, &input, Some(&admin.task_owner()))
        .await?;
    state
        .task_queue
        .publish(&task, Value::Null)
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(accepted(&task))
}

async fn sales_report(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    JsonBody { value, .. }: JsonBody<SalesReportInput>,
) -> Result<Response, ApiError> {
    let days = (value.to - value.from).num_days() + 1;
    if days < 1 {
        return Err(ApiError::field("to", "must not be before from"));
    }
    if days > MAX_REPORT_DAYS {
        return Err(ApiError::field(
            "to",
            format!("a report covers at most {MAX_REPORT_DAYS} days"),
        ));
    }
    let input = json!({"from": value.from, "to": value.to});
    queue(&state, &admin, SALES_REPORT, input).await
}

/// No body needed (any is ignored).
async fn recompute_ratings(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
) -> Result<Response, ApiError> {
    queue(&state, &admin, RECOMPUTE_RATINGS, json!({})).await
}
