//! The current user's own account, and admin management of every account.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use cqrs_es::Aggregate;

use eshop_commands::EventStore;
use eshop_domain::user::{Registration, User, UserCommand};
use eshop_domain::values::{DepositAmount, EmailAddress, PersonName, Role, Username};

use crate::accounts::{mail_password_link, Purpose};

use crate::auth::policy::{self, AccountAttributes};
use crate::auth::{password, AdminUser, CurrentUser};
use crate::command::{execute, Answer};
use crate::error::ApiError;
use crate::request::{ApiQuery, JsonBody, RequestMeta};
use crate::routes::{
    after_own_writes, not_yet_visible, parse_id, PageParams, READ_YOUR_WRITES_WAIT,
};
use crate::state::AppState;
use crate::validate::Fields;
use crate::views::{Page, UserView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/me", get(me).patch(update_me))
        .route("/api/users/me/deposits", post(deposit))
        .route("/api/users/me/password", post(change_password))
        .route("/api/admin/users/{id}/erase", post(erase))
        .route("/api/users", get(list).post(create))
        .route(
            "/api/users/{id}",
            get(show).patch(update).put(replace).delete(deactivate),
        )
        .route("/api/users/{id}/reactivate", post(reactivate))
        .route("/api/users/{id}/roles", post(grant_role))
        .route("/api/users/{id}/roles/{role}", delete(revoke_role))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadParams {
    min_version: Option<u64>,
}

/// The account from the `users` read model, waiting up to 5 s for `min_version` when given.
async fn read_view(
    state: &AppState,
    id: Uuid,
    min_version: Option<u64>,
) -> Result<UserView, ApiError> {
    let Some(min_version) = min_version else {
        return state
            .users
            .get(id)
            .await?
            .map(UserView::from)
            .ok_or(ApiError::NotFound("user"));
    };
    state
        .users
        .wait_for_version(id, min_version, READ_YOUR_WRITES_WAIT)
        .await?
        .map(UserView::from)
        .ok_or_else(|| not_yet_visible(min_version))
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
                .execute_with(
                    &target.to_string(),
                    command,
                    &context,
                    meta.expected_version,
                    |user: &User| UserView::new(target, user, 0),
                )
                .await?;
            Answer::ok(UserView {
                version: executed.version,
                ..executed.aggregate
            })
        },
    )
    .await
}

/// The caller's account. It exists (the token says so), so a missing row only means the read
/// model has not caught up with the registration yet: wait for it.
async fn me(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(params): ApiQuery<ReadParams>,
) -> Result<Response, ApiError> {
    // Read your own writes: the account as of every change already answered (one read of the
    // store's last version for it), not only as of `min_version`.
    let current = state
        .bus
        .store()
        .current_version("user", &user.id.to_string())
        .await?;
    let wanted = params.min_version.unwrap_or(1).max(current);
    let view = read_view(&state, user.id, Some(wanted)).await?;
    Answer::ok(view).map(Answer::into_response)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileChanges {
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

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DepositRequest {
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

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password and ends every session of theirs (this one included).
async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    JsonBody { value, raw }: JsonBody<PasswordChange>,
) -> Result<Response, ApiError> {
    let account = state
        .bus
        .store()
        .load::<User>(&user.id.to_string())
        .await?
        .aggregate;
    let attributes = AccountAttributes {
        email: account.email.expose(),
        username: &account.username,
    };
    policy::check("new_password", &value.new_password, attributes)
        .map_err(|rule| ApiError::Validation(vec![rule]))?;
    if !password::verify(value.current_password, Some(account.password_hash)).await? {
        return Err(ApiError::field(
            "current_password",
            "is not the current password",
        ));
    }
    let password_hash = password::hash(value.new_password).await?;
    let command = UserCommand::ChangePassword { password_hash };
    run_ending_sessions(
        &state,
        &meta,
        &user,
        user.id,
        &raw,
        command,
        "password changed",
    )
    .await
}

/// Runs a command after which the target's sessions must end (a password change, a
/// deactivation, an erasure), and ends them when it succeeded.
async fn run_ending_sessions(
    state: &AppState,
    meta: &RequestMeta,
    caller: &CurrentUser,
    target: Uuid,
    body: &serde_json::Value,
    command: UserCommand,
    reason: &str,
) -> Result<Response, ApiError> {
    let response = run(state, meta, caller, target, body, command).await?;
    if response.status().is_success() {
        state
            .sessions
            .revoke_all(target, reason)
            .await
            .map_err(ApiError::unavailable)?;
    }
    Ok(response)
}

/// Erases the user's personal data: an `UserErased` event, then their key, e-mail claim,
/// remembered answers and sessions go. The events stay; their sealed fields read as absent.
async fn erase(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let target = parse_id(&id, "user")?;
    let body = serde_json::Value::Null;
    let response = run_ending_sessions(
        &state,
        &meta,
        &admin,
        target,
        &body,
        UserCommand::Erase,
        "erased",
    )
    .await?;
    if response.status().is_success() {
        state
            .erasure()
            .erase_user_data(target)
            .await
            .map_err(ApiError::unavailable)?;
        tracing::info!(user_id = %target, "personal data erased");
    }
    Ok(response)
}

/// Pages through accounts by id (most ids are time-ordered); the cursor is the last id.
async fn list(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiQuery(query): ApiQuery<PageParams>,
) -> Result<Json<Page<UserView>>, ApiError> {
    let limit = query.limit(50, 200)?;
    let after = match query.cursor.as_deref() {
        Some(raw) => Some(
            raw.parse::<Uuid>()
                .map_err(|_| ApiError::field("cursor", "is not a cursor from a previous page"))?,
        ),
        None => None,
    };
    // Read your own writes: the accounts this admin created or changed are listed as answered.
    let users = &state.users;
    after_own_writes(&state, admin.id, User::TYPE, |mine| async move {
        users.wait_for_versions(&mine, READ_YOUR_WRITES_WAIT).await
    })
    .await?;
    let records = state.users.list(after, limit).await?;
    let next_cursor = (records.len() as i64 == limit)
        .then(|| records.last().map(|record| record.id.to_string()))
        .flatten();
    Ok(Json(Page {
        items: records.into_iter().map(UserView::from).collect(),
        next_cursor,
    }))
}

async fn show(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<ReadParams>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "user")?;
    // Admins read the users they change: as of every change already stored.
    let current = state
        .bus
        .store()
        .current_version("user", &id.to_string())
        .await?;
    let wanted = params.min_version.unwrap_or(0).max(current);
    let view = read_view(&state, id, (wanted > 0).then_some(wanted)).await?;
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
    let body = serde_json::Value::Null;
    let command = UserCommand::Deactivate;
    run_ending_sessions(&state, &meta, &admin, target, &body, command, "deactivated").await
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

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleRequest {
    #[schemars(extend("enum" = ["admin", "auditor"]))]
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

/// `POST /api/users` (admin): an account without a password.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub username: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// Creates an account with no usable password and mails its owner a one-time link to choose
/// one (`POST /api/auth/password-reset/confirm`). 201 the account.
async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    JsonBody { value, raw }: JsonBody<NewUser>,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let email = fields.check("email", EmailAddress::parse(&value.email));
    let username = fields.check("username", Username::parse(&value.username));
    let first_name = fields.check(
        "first_name",
        value
            .first_name
            .as_deref()
            .map(PersonName::parse)
            .transpose(),
    );
    let last_name = fields.check(
        "last_name",
        value
            .last_name
            .as_deref()
            .map(PersonName::parse)
            .transpose(),
    );
    let (Some(email), Some(username), Some(first_name), Some(last_name), true) =
        (email, username, first_name, last_name, fields.is_valid())
    else {
        return Err(fields.into_error());
    };
    let state = &state;
    execute(
        state,
        &meta,
        &admin.id.to_string(),
        admin.actor(),
        &raw,
        |context| async move {
            let user_id = context.new_aggregate_id();
            // A password nobody knows: the account signs in once its owner chose one.
            let unknowable = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
            let registration = Registration {
                email,
                username,
                password_hash: password::hash(unknowable).await?,
                first_name,
                last_name,
            };
            let executed = state
                .bus
                .execute::<User>(
                    &user_id.to_string(),
                    UserCommand::Register(registration),
                    &context,
                    None,
                )
                .await?;
            mail_password_link(state, user_id, &executed.aggregate, Purpose::Set).await?;
            Answer::created(UserView::new(
                user_id,
                &executed.aggregate,
                executed.version,
            ))
        },
    )
    .await
}

/// `PUT /api/users/{id}` (admin): every editable field, replaced.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserReplacement {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

async fn replace(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
    JsonBody { value, raw }: JsonBody<UserReplacement>,
) -> Result<Response, ApiError> {
    let target = parse_id(&id, "user")?;
    let command = profile_command(&ProfileChanges {
        first_name: Some(value.first_name),
        last_name: Some(value.last_name),
        email: Some(value.email),
    })?;
    run(&state, &meta, &admin, target, &raw, command).await
}
