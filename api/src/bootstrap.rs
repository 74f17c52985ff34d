//! The admin account named by `ESHOP_ADMIN_EMAIL` / `ESHOP_ADMIN_PASSWORD`.

use eshop_commands::{Actor, CommandContext, EventStore};
use eshop_domain::user::{Registration, User, UserCommand, EMAIL_CLAIM};
use eshop_domain::values::{EmailAddress, Role, Username};

use crate::auth::password;
use crate::auth::policy::{self, AccountAttributes};
use crate::error::ApiError;
use crate::state::AppState;

/// Makes sure an active account with this e-mail exists and is an admin. Repeatable: ids are
/// derived from the e-mail, so a second start (or a second replica) appends nothing new. An
/// existing account keeps its password.
pub async fn ensure_admin(state: &AppState, email: &str, password: &str) -> Result<(), ApiError> {
    let user_id = ensure_account(state, email, password, None).await?;
    let context = CommandContext::repeatable(
        Actor::System,
        "bootstrap",
        &["bootstrap-admin-role", &user_id],
    );
    state
        .bus
        .execute::<User>(
            &user_id,
            UserCommand::GrantRole(Role::Admin),
            &context,
            None,
        )
        .await?;
    tracing::info!(user_id, "admin account ready");
    Ok(())
}

/// The id of the account with this e-mail, registered (with this password, and `username` or
/// one derived from its id) when there is none. An existing account keeps its password.
pub async fn ensure_account(
    state: &AppState,
    email: &str,
    password: &str,
    username: Option<&str>,
) -> Result<String, ApiError> {
    let email = EmailAddress::parse(email)
        .map_err(|invalid| ApiError::field("ESHOP_ADMIN_EMAIL", invalid.0))?;
    let holder = state
        .bus
        .store()
        .claim_holder(EMAIL_CLAIM, email.as_str())
        .await?;
    match holder {
        Some(id) => Ok(id),
        None => register(state, &email, password, username).await,
    }
}

async fn register(
    state: &AppState,
    email: &EmailAddress,
    password: &str,
    username: Option<&str>,
) -> Result<String, ApiError> {
    let attributes = AccountAttributes {
        email: email.as_str(),
        username: "",
    };
    policy::check("ESHOP_ADMIN_PASSWORD", password, attributes)
        .map_err(|rule| ApiError::Validation(vec![rule]))?;
    let context = CommandContext::repeatable(
        Actor::System,
        "bootstrap",
        &["bootstrap-admin", email.as_str()],
    );
    let user_id = context.new_aggregate_id();
    let username = match username {
        Some(name) => name.to_string(),
        None => format!("admin-{}", &user_id.simple().to_string()[..8]),
    };
    let username =
        Username::parse(&username).map_err(|invalid| ApiError::Internal(invalid.0.into()))?;
    let registration = Registration {
        email: email.clone(),
        username,
        password_hash: password::hash(password.to_string()).await?,
        first_name: None,
        last_name: None,
    };
    let id = user_id.to_string();
    match state
        .bus
        .execute::<User>(&id, UserCommand::Register(registration), &context, None)
        .await
    {
        Ok(_) => Ok(id),
        // Another replica registered it first: use theirs.
        Err(eshop_commands::CommandError::ClaimTaken { .. }) => state
            .bus
            .store()
            .claim_holder(EMAIL_CLAIM, email.as_str())
            .await?
            .ok_or_else(|| ApiError::Internal("the admin e-mail claim vanished".into())),
        Err(other) => Err(other.into()),
    }
}
