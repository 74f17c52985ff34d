//! Registration and login.

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use eshop_commands::{Actor, EventStore};
use eshop_domain::user::{Registration, User, UserCommand, EMAIL_CLAIM};
use eshop_domain::values::{EmailAddress, PersonName, Username};
use eshop_infra::claims;

use crate::auth::password;
use crate::command::{execute, Answer};
use crate::error::ApiError;
use crate::request::{JsonBody, RequestMeta};
use crate::state::AppState;
use crate::validate::Fields;
use crate::views::UserView;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    email: String,
    username: String,
    password: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

async fn register(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonBody { value: body, raw }: JsonBody<RegisterRequest>,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let email = fields.check("email", EmailAddress::parse(&body.email));
    let username = fields.check("username", Username::parse(&body.username));
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
    if let Err(rule) = password::check_policy(&body.password) {
        fields.add(rule);
    }
    let (Some(email), Some(username), Some(first_name), Some(last_name), true) =
        (email, username, first_name, last_name, fields.is_valid())
    else {
        return Err(fields.into_error());
    };
    let plain_password = body.password;
    let bus = &state.bus;
    execute(
        &state,
        &meta,
        "anonymous",
        Actor::System,
        &raw,
        |mut context| async move {
            let user_id = context.new_aggregate_id();
            context.actor = Actor::User(user_id);
            let registration = Registration {
                email,
                username,
                password_hash: password::hash(plain_password).await?,
                first_name,
                last_name,
            };
            let executed = bus
                .execute::<User>(
                    &user_id.to_string(),
                    UserCommand::Register(registration),
                    &context,
                    None,
                )
                .await?;
            Answer::created(UserView::new(
                user_id,
                &executed.aggregate,
                executed.version,
            ))
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// The same answer, after the same work, for an unknown e-mail and a wrong password.
async fn login(
    State(state): State<AppState>,
    JsonBody { value: body, .. }: JsonBody<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let holder = match EmailAddress::parse(&body.email) {
        Ok(email) => claims::holder(&state.pool, EMAIL_CLAIM, email.as_str()).await?,
        Err(_) => None,
    };
    let account = match holder.as_deref().map(str::parse::<uuid::Uuid>) {
        Some(Ok(user_id)) => {
            let loaded = state.bus.store().load::<User>(&user_id.to_string()).await?;
            Some((user_id, loaded.aggregate)).filter(|(_, user)| user.registered)
        }
        _ => None,
    };
    let stored_hash = account.as_ref().map(|(_, user)| user.password_hash.clone());
    if !password::verify(body.password, stored_hash).await? {
        return Err(ApiError::InvalidCredentials);
    }
    let Some((user_id, user)) = account else {
        return Err(ApiError::InvalidCredentials);
    };
    if !user.active {
        return Err(ApiError::Conflict {
            code: "user_deactivated",
            detail: "this account is deactivated".into(),
        });
    }
    let roles = user.roles.iter().copied().collect();
    let access_token = state
        .tokens
        .issue(user_id, roles, chrono::Utc::now().timestamp());
    Ok(Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl().as_secs(),
    }))
}
