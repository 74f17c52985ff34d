//! The `users` read model: profile, roles, balance, status, and the version it reflects.

use chrono::{DateTime, Utc};
use eshop_domain::user::UserEvent;
use eshop_domain::values::Role;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{step, ProjectionError, RelayedEvent, Step};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub roles: Vec<Role>,
    pub is_active: bool,
    pub balance_cents: i64,
    /// Erased: the e-mail is empty and the names are absent, also after any rebuild.
    #[serde(default)]
    pub erased: bool,
    /// When the user registered (absent in rows written before it was kept).
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// When the last event changed the account.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    pub version: u64,
}

/// The record after `event`, or `None` when the event was already applied.
pub fn apply(
    current: Option<&UserRecord>,
    event: &RelayedEvent,
) -> Result<Option<UserRecord>, ProjectionError> {
    if step(event, current.map_or(0, |row| row.version))? == Step::Seen {
        return Ok(None);
    }
    let decoded: UserEvent = event.decode()?;
    let mut row = match (current, decoded) {
        (
            None,
            UserEvent::UserRegistered {
                email,
                username,
                first_name,
                last_name,
                ..
            },
        ) => UserRecord {
            id: event
                .aggregate_id
                .parse()
                .map_err(|error| event.unreadable(error))?,
            email: email.into_inner(),
            username,
            first_name: first_name.into_inner(),
            last_name: last_name.into_inner(),
            roles: Vec::new(),
            is_active: true,
            balance_cents: 0,
            erased: false,
            created_at: Some(event.recorded_at),
            updated_at: None,
            version: 0,
        },
        (Some(current), decoded) => {
            let mut row = current.clone();
            match decoded {
                UserEvent::UserRegistered { .. } => {
                    return Err(event.unreadable("UserRegistered on an existing user"))
                }
                UserEvent::ProfileChanged {
                    first_name,
                    last_name,
                } => {
                    row.first_name = first_name.into_inner();
                    row.last_name = last_name.into_inner();
                }
                UserEvent::EmailChanged { email } => row.email = email.into_inner(),
                UserEvent::WalletDeposited { balance_cents, .. }
                | UserEvent::WalletDebited { balance_cents, .. }
                | UserEvent::WalletRefunded { balance_cents, .. } => {
                    row.balance_cents = balance_cents
                }
                UserEvent::UserDeactivated => row.is_active = false,
                UserEvent::UserReactivated => row.is_active = true,
                UserEvent::RoleGranted { role } => {
                    if !row.roles.contains(&role) {
                        row.roles.push(role);
                        row.roles.sort();
                    }
                }
                UserEvent::RoleRevoked { role } => row.roles.retain(|held| *held != role),
                UserEvent::PasswordChanged { .. } => {}
                UserEvent::UserErased => {
                    row.erased = true;
                    row.is_active = false;
                    row.email.clear();
                    row.first_name = None;
                    row.last_name = None;
                }
            }
            row
        }
        (None, _) => return Err(event.unreadable("the first event is not UserRegistered")),
    };
    row.updated_at = Some(event.recorded_at);
    row.version = event.sequence;
    Ok(Some(row))
}

impl crate::ReadModel for UserRecord {
    const NAME: &'static str = "users";
    const AGGREGATE_TYPE: &'static str = "user";

    fn id(&self) -> Uuid {
        self.id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn apply(
        current: Option<&Self>,
        event: &RelayedEvent,
    ) -> Result<Option<Self>, ProjectionError> {
        apply(current, event)
    }
}
