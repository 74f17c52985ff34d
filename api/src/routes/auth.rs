//! Registration, login, token refresh and logout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use eshop_commands::digest::sha256_hex;
use eshop_commands::sessions::{Issued, RefreshError};
use eshop_commands::{Actor, EventStore};
use eshop_domain::user::{Registration, User, UserCommand, EMAIL_CLAIM};
use eshop_domain::values::{EmailAddress, PersonName, Username};

use crate::accounts::{mail_password_link, Purpose};
use crate::auth::credentials::issues_credentials;
use crate::auth::policy::{self, AccountAttributes};
use crate::auth::{password, CurrentUser};
use crate::command::{execute, Answer};
use crate::error::ApiError;
use crate::request::{JsonBody, RequestMeta};
use crate::state::AppState;
use crate::throttle::{self, ClientAddress};
use crate::validate::Fields;
use crate::views::UserView;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        // Their answers carry tokens: never a background task, never cached.
        .route("/api/auth/login", issues_credentials(post(login)))
        .route("/api/auth/refresh", issues_credentials(post(refresh)))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/password-reset", post(request_password_reset))
        .route(
            "/api/auth/password-reset/confirm",
            post(confirm_password_reset),
        )
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    email: String,
    username: String,
    password: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

async fn register(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
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
    let attributes = AccountAttributes {
        email: &body.email,
        username: &body.username,
    };
    if let Err(rule) = policy::check("password", &body.password, attributes) {
        fields.add(rule);
    }
    let (Some(email), Some(username), Some(first_name), Some(last_name), true) =
        (email, username, first_name, last_name, fields.is_valid())
    else {
        return Err(fields.into_error());
    };
    let plain_password = body.password;
    let bus = &state.bus;
    // Without a caller to name, an Idempotency-Key is scoped by the client's address (as a
    // digest: the records keep no address), so two clients choosing one key stay apart.
    let scope = format!("anonymous:{}", sha256_hex(&[address.as_bytes()]));
    execute(
        &state,
        &meta,
        &scope,
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

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct TokenResponse {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
}

fn tokens_for(state: &AppState, user: &User, issued: Issued) -> TokenResponse {
    let roles = user.roles.iter().copied().collect();
    let access_token = state.tokens.issue(
        issued.user_id,
        issued.session_id,
        roles,
        chrono::Utc::now().timestamp(),
    );
    TokenResponse {
        access_token,
        refresh_token: issued.refresh_token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl().as_secs(),
    }
}

/// A user who may hold a session: registered, active, not erased.
fn may_sign_in(user: &User) -> Result<(), ApiError> {
    if !user.registered || user.erased {
        return Err(ApiError::InvalidCredentials);
    }
    if !user.active {
        return Err(ApiError::Conflict {
            code: "user_deactivated",
            detail: "this account is deactivated".into(),
        });
    }
    Ok(())
}

/// The same answer, after the same work, for an unknown e-mail and a wrong password.
async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    JsonBody { value: body, .. }: JsonBody<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    throttle::check_login(&state, &body.email, &address).await?;
    let holder = match EmailAddress::parse(&body.email) {
        Ok(email) => {
            state
                .bus
                .store()
                .claim_holder(EMAIL_CLAIM, email.as_str())
                .await?
        }
        Err(_) => None,
    };
    let account = match holder.as_deref().map(str::parse::<uuid::Uuid>) {
        Some(Ok(user_id)) => {
            let loaded = state.bus.store().load::<User>(&user_id.to_string()).await?;
            Some((user_id, loaded.aggregate)).filter(|(_, user)| user.registered && !user.erased)
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
    may_sign_in(&user)?;
    let issued = state
        .sessions
        .start(user_id)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(tokens_for(&state, &user, issued)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

/// Spends a refresh token for a new pair. The access token carries the roles the user has
/// now, so a role change shows from the next refresh on.
async fn refresh(
    State(state): State<AppState>,
    JsonBody { value: body, .. }: JsonBody<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let issued = state
        .sessions
        .refresh(body.refresh_token.trim())
        .await
        .map_err(|error| match error {
            RefreshError::Unavailable(error) => ApiError::Unavailable(error),
            RefreshError::Invalid => ApiError::InvalidRefreshToken,
            RefreshError::Reused | RefreshError::Revoked => ApiError::SessionRevoked,
        })?;
    let user = state
        .bus
        .store()
        .load::<User>(&issued.user_id.to_string())
        .await?
        .aggregate;
    if let Err(error) = may_sign_in(&user) {
        let _ = state
            .sessions
            .revoke(issued.session_id, "account closed")
            .await;
        return Err(error);
    }
    Ok(Json(tokens_for(&state, &user, issued)))
}

/// Ends the session of the access token presented: its refresh token and every access token
/// of the session stop working.
async fn logout(State(state): State<AppState>, user: CurrentUser) -> Result<StatusCode, ApiError> {
    state
        .sessions
        .revoke(user.session_id, "logout")
        .await
        .map_err(ApiError::unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/auth/password-reset`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    pub email: String,
}

/// The one answer to a password-reset request, whether the address is known or not.
#[derive(Serialize, schemars::JsonSchema)]
pub struct PasswordResetAccepted {
    pub status: &'static str,
    pub detail: &'static str,
}

/// Always 202, the same for any address: whether an account has it is not told. The lookup
/// and the mail happen after the answer, so its timing tells nothing either. Throttled like
/// logins (per address asked about, per client), counted apart from them.
async fn request_password_reset(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    JsonBody { value: body, .. }: JsonBody<PasswordResetRequest>,
) -> Result<Response, ApiError> {
    throttle::check_attempts(&state, "password-reset", &body.email, &address).await?;
    if let Ok(email) = EmailAddress::parse(&body.email) {
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(error) = mail_reset_link(&state, &email).await {
                tracing::warn!(error = %error, "a password-reset link was not mailed");
            }
        });
    }
    Answer::accepted(PasswordResetAccepted {
        status: "accepted",
        detail: "if an account has this address, a link to reset its password is on its way",
    })
    .map(Answer::into_response)
}

async fn mail_reset_link(state: &AppState, email: &EmailAddress) -> Result<(), ApiError> {
    let holder = state
        .bus
        .store()
        .claim_holder(EMAIL_CLAIM, email.as_str())
        .await?;
    let Some(Ok(user_id)) = holder.as_deref().map(str::parse::<uuid::Uuid>) else {
        return Ok(());
    };
    let user = state
        .bus
        .store()
        .load::<User>(&user_id.to_string())
        .await?
        .aggregate;
    if !user.active {
        return Ok(());
    }
    mail_password_link(state, user_id, &user, Purpose::Reset).await
}

/// `POST /api/auth/password-reset/confirm`: also sets the first password of an account an
/// admin created (its mailed link carries the same kind of token).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    pub token: String,
    pub new_password: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct PasswordResetDone {
    pub status: &'static str,
}

fn unusable_token() -> ApiError {
    ApiError::field("token", "is unknown, already used or expired")
}

/// Sets the password the token's user chose (under the password rules), spends the token
/// (and any other of theirs), and ends every session of the user.
async fn confirm_password_reset(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    meta: RequestMeta,
    JsonBody { value: body, raw }: JsonBody<PasswordResetConfirm>,
) -> Result<Response, ApiError> {
    throttle::check_attempts(&state, "password-reset-confirm", "any", &address).await?;
    let user_id = state
        .password_tokens
        .holder(&body.token)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(unusable_token)?;
    let user = state
        .bus
        .store()
        .load::<User>(&user_id.to_string())
        .await?
        .aggregate;
    if !user.registered || user.erased || !user.active {
        return Err(unusable_token());
    }
    let attributes = AccountAttributes {
        email: user.email.expose(),
        username: &user.username,
    };
    policy::check("new_password", &body.new_password, attributes)
        .map_err(|rule| ApiError::Validation(vec![rule]))?;
    let password_hash = password::hash(body.new_password).await?;
    // Spent before the change: of two requests with one token only one goes on.
    let spent = state
        .password_tokens
        .spend(&body.token)
        .await
        .map_err(ApiError::unavailable)?;
    if spent != Some(user_id) {
        return Err(unusable_token());
    }
    let scope = format!("anonymous:{}", sha256_hex(&[address.as_bytes()]));
    let bus = &state.bus;
    let response = execute(
        &state,
        &meta,
        &scope,
        Actor::User(user_id),
        &raw,
        |context| async move {
            bus.execute::<User>(
                &user_id.to_string(),
                UserCommand::ChangePassword { password_hash },
                &context,
                None,
            )
            .await?;
            Answer::ok(PasswordResetDone {
                status: "password_changed",
            })
        },
    )
    .await?;
    state
        .sessions
        .revoke_all(user_id, "password reset")
        .await
        .map_err(ApiError::unavailable)?;
    Ok(response)
}
