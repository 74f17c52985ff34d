//! One-time password links: an account an admin created gets one to set its password, a user
//! who forgot theirs one to reset it. The token is mailed (through the outbox, which drops the
//! link from its log once the mail is out) and stored only as a digest.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use eshop_domain::user::User;
use eshop_infra::mail::outbox::NewMail;
use eshop_infra::mail::templates::Template;
pub use eshop_infra::password_tokens::Purpose;

use crate::error::ApiError;
use crate::state::AppState;

/// Mails `user` (as loaded, with `user_id`) a one-time link for `purpose`. A user without a
/// usable address (erased) gets nothing.
pub async fn mail_password_link(
    state: &AppState,
    user_id: Uuid,
    user: &User,
    purpose: Purpose,
) -> Result<(), ApiError> {
    let address = user.email.expose().to_string();
    if !user.registered || user.erased || !address.contains('@') {
        return Ok(());
    }
    let (lifetime, template, path, source) = match purpose {
        Purpose::Reset => (
            Duration::from_secs(state.accounts.password_reset_ttl_minutes.max(1) * 60),
            Template::PasswordReset,
            "reset-password",
            "PasswordResetRequested",
        ),
        Purpose::Set => (
            Duration::from_secs(state.accounts.set_password_ttl_hours.max(1) * 3600),
            Template::SetPassword,
            "set-password",
            "UserCreatedByAdmin",
        ),
    };
    let issued = state
        .password_tokens
        .issue(user_id, purpose, lifetime)
        .await
        .map_err(ApiError::unavailable)?;
    let link = format!(
        "{}/{path}?token={}",
        state.accounts.public_url.trim_end_matches('/'),
        issued.token
    );
    let name = user.first_name.expose().clone().unwrap_or_default();
    let mail = NewMail {
        source_id: Uuid::new_v4(),
        template,
        position: None,
        source: source.to_string(),
        user_id: Some(user_id),
        recipient: Some(address),
        context: json!({
            "username": user.username,
            "name": name,
            "link": link,
            "valid_minutes": issued.expires_in.as_secs() / 60,
        }),
    };
    state
        .outbox
        .enqueue(&mail)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(())
}
