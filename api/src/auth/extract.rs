//! `CurrentUser` (any valid bearer token) and `AdminUser` (one with the admin role).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use eshop_commands::Actor;
use eshop_domain::values::Role;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: Uuid,
    pub session_id: Uuid,
    pub roles: Vec<Role>,
}

impl CurrentUser {
    pub fn actor(&self) -> Actor {
        Actor::User(self.id)
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let claims = state
            .tokens
            .verify(token.trim(), chrono::Utc::now().timestamp())
            .map_err(|_| ApiError::Unauthorized)?;
        // One indexed read per request: a logout or password change ends the token at once,
        // not when it expires.
        let live = state
            .sessions
            .is_live(claims.sid)
            .await
            .map_err(ApiError::unavailable)?;
        if !live {
            return Err(ApiError::SessionRevoked);
        }
        Ok(Self {
            id: claims.sub,
            session_id: claims.sid,
            roles: claims.roles,
        })
    }
}

#[derive(Debug, Clone)]
pub struct AdminUser(pub CurrentUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if user.has_role(Role::Admin) {
            Ok(Self(user))
        } else {
            Err(ApiError::Forbidden)
        }
    }
}
