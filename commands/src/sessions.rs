//! The session port's answers: what signing in or refreshing issues, and why a refresh token
//! is refused. The sessions themselves are operational state kept by an adapter in `infra`.

use uuid::Uuid;

use crate::error::BoxError;

/// A session's id, its user, and the refresh token handed to the client.
#[derive(Clone)]
pub struct Issued {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub refresh_token: String,
}

/// Without the token: it is a credential.
impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the refresh token is unknown or expired")]
    Invalid,
    #[error("the refresh token was already used; its session is revoked")]
    Reused,
    #[error("the session was revoked")]
    Revoked,
    #[error("the session store is unavailable")]
    Unavailable(#[source] BoxError),
}
