//! `CurrentUser` (any valid bearer token of a live session), `AdminUser` (one with the admin
//! role) and `AuditReader` (an auditor or an admin).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use uuid::Uuid;

use eshop_commands::Actor;
use eshop_domain::values::Role;
use eshop_infra::tasks::TaskOwner;

use crate::auth::token::Claims;
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

    /// As the owner of a background task.
    pub fn task_owner(&self) -> TaskOwner {
        TaskOwner {
            user_id: self.id,
            session_id: self.session_id,
            roles: self
                .roles
                .iter()
                .map(|role| role.as_str().to_string())
                .collect(),
        }
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// The token of a `Bearer` credential. The scheme is case-insensitive (RFC 9110 §11.1), so
/// `bearer` and `BEARER` name it too.
pub fn bearer_token(credential: &str) -> Option<&str> {
    let (scheme, token) = credential.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// The claims of a well-signed, unexpired bearer token (its session is not checked here).
pub fn bearer_claims(state: &AppState, headers: &HeaderMap) -> Option<Claims> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)?;
    state
        .tokens
        .verify(token.trim(), chrono::Utc::now().timestamp())
        .ok()
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = bearer_claims(state, &parts.headers).ok_or(ApiError::Unauthorized)?;
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

/// Someone who may read the audit endpoints: an auditor or an admin.
#[derive(Debug, Clone)]
pub struct AuditReader(pub CurrentUser);

impl FromRequestParts<AppState> for AuditReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if user.has_role(Role::Auditor) || user.has_role(Role::Admin) {
            Ok(Self(user))
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
