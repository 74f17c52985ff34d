//! The current user's own account, and admin management of every account.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use eshop_commands::EventStore;
use eshop_domain::user::{User, UserCommand};
use eshop_domain::values::{DepositAmount, EmailAddress, PersonName, Role};

use crate::auth::{AdminUser, CurrentUser};
use crate::command::{execute, Answer};
use crate::error::ApiError;
use crate::request::{JsonBody, RequestMeta};
use crate::routes::parse_id;
use crate::state::AppState;
use crate::validate::Fields;
use crate::views::{Page, UserView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/me", get(me).patch(update_me))
        .route("/api/users/me/deposits", post(deposit))
        .route("/api/users", get(list))
        .route(
            "/api/users/{id}",
            get(show).patch(update).delete(deactivate),
        )
        .route("/api/users/{id}/reactivate", post(reactivate))
        .route("/api/users/{id}/roles", post(grant_role))
        .route("/api/users/{id}/roles/{role}", delete(revoke_role))
}

async fn load_view(state: &AppState, id: Uuid) -> Result<UserView, ApiError> {
    let loaded = state.bus.store().load::<User>(&id.to_string()).await?;
    if !loaded.aggregate.registered {
        return Err(ApiError::NotFound("user"));
    }
    Ok(UserView::new(id, &loaded.aggregate, loaded.version))
}

/// Runs a user command and answers with the user after it.
async fn run(
    state: &AppState,
    meta: &RequestMeta,
    caller: &CurrentUser,
    target: Uuid,
    body: &serde_json::Value,
    command: UserCommand,
) -> Result<Response, ApiError> {
    execute(
        state,
        meta,
        &caller.id.to_string(),
        caller.actor(),
        body,
        |context| async move {
            let executed = state
                .bus
                .execute::<User>(
                    &target.to_string(),
                    command,
                    &context,
                    meta.expected_version,
                )
                .await?;
            Answer::ok(UserView::new(target, &executed.aggregate, executed.version))
        },
    )
    .await
}

async fn me(State(state): State<AppState>, user: CurrentUser) -> Result<Response, ApiError> {
    let view = load_view(&state, user.id).await?;
    Answer::ok(view).map(Answer::into_response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileChanges {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
}

fn profile_command(body: &ProfileChanges) -> Result<UserCommand, ApiError> {
    let mut fields = Fields::default();
    let first_name = fields.check(
        "first_name",
        body.first_name
            .as_deref()
            .map(PersonName::parse)
            .transpose(),
    );
    let last_name = fields.check(
        "last_name",
        body.last_name.as_deref().map(PersonName::parse).transpose(),
    );
    let email = fields.check(
        "email",
        body.email.as_deref().map(EmailAddress::parse).transpose(),
    );
    let (Some(first_name), Some(last_name), Some(email), true) =
        (first_name, last_name, email, fields.is_valid())
    else {
        return Err(fields.into_error());
    };
    Ok(UserCommand::UpdateProfile {
        first_name,
        last_name,
        email,
    })
}

async fn update_me(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    JsonBody { value, raw }: JsonBody<ProfileChanges>,
) -> Result<Response, ApiError> {
    let command = profile_command(&value)?;
    run(&state, &meta, &user, user.id, &raw, command).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepositRequest {
    amount_cents: i64,
}

async fn deposit(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    JsonBody { value, raw }: JsonBody<DepositRequest>,
) -> Result<Response, ApiError> {
    let amount = DepositAmount::parse(value.amount_cents)
        .map_err(|invalid| ApiError::field("amount_cents", invalid.0))?;
    run(
        &state,
        &meta,
        &user,
        user.id,
        &raw,
        UserCommand::Deposit(amount),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

/// Pages through accounts in registration order. Reads the event store until the read models
/// arrive; the cursor is the global position of the last account's first event.
async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<UserView>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 200"));
    }
    let after = match query.cursor.as_deref() {
        Some(raw) => raw
            .parse::<i64>()
            .map_err(|_| ApiError::field("cursor", "is not a cursor from a previous page"))?,
        None => 0,
    };
    let starts = state
        .bus
        .store()
        .stream_starts(<User as cqrs_es::Aggregate>::TYPE, after, limit)
        .await?;
    let mut items = Vec::with_capacity(starts.len());
    for (_, id) in &starts {
        if let Ok(id) = id.parse() {
            items.push(load_view(&state, id).await?);
        }
    }
    let next_cursor = (starts.len() as i64 == limit)
        .then(|| starts.last().map(|(position, _)| position.to_string()))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}

async fn show(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = load_view(&state, parse_id(&id, "user")?).await?;
    Answer::ok(view).map(Answer::into_response)
}

async fn update(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
    JsonBody { value, raw }: JsonBody<ProfileChanges>,
) -> Result<Response, ApiError> {
    let target = parse_id(&id, "user")?;
    let command = profile_command(&value)?;
    run(&state, &meta, &admin, target, &raw, command).await
}

async fn deactivate(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let target = parse_id(&id, "user")?;
    run(
        &state,
        &meta,
        &admin,
        target,
        &serde_json::Value::Null,
        UserCommand::Deactivate,
    )
    .await
}

async fn reactivate(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let target = parse_id(&id, "user")?;
    run(
        &state,
        &meta,
        &admin,
        target,
        &serde_json::Value::Null,
        UserCommand::Reactivate,
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleRequest {
    role: String,
}

async fn grant_role(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
    JsonBody { value, raw }: JsonBody<RoleRequest>,
) -> Result<Response, ApiError> {
    let target = parse_id(&id, "user")?;
    let role = Role::parse(&value.role).map_err(|invalid| ApiError::field("role", invalid.0))?;
    run(
        &state,
        &meta,
        &admin,
        target,
        &raw,
        UserCommand::GrantRole(role),
    )
    .await
}

async fn revoke_role(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path((id, role)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let target = parse_id(&id, "user")?;
    let role = Role::parse(&role).map_err(|_| ApiError::NotFound("role"))?;
    run(
        &state,
        &meta,
        &admin,
        target,
        &serde_json::Value::Null,
        UserCommand::RevokeRole(role),
    )
    .await
}
