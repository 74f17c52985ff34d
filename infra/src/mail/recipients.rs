//! The one place the mailer reads personal data (addresses and names). Events and read models
//! may come to hold them encrypted per user (erasure deletes the key): switching to decryption
//! happens here and nowhere else.

use serde_json::Value;
use uuid::Uuid;

use crate::read_models::users::PgUsers;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Recipient),
    /// The user is erased or has no address: the mail is skipped.
    Gone,
    /// The users read model does not have this user yet: ask again later.
    NotYet,
}

#[derive(Clone)]
pub struct Recipients {
    users: PgUsers,
}

fn usable(address: &str) -> bool {
    address.contains('@')
}

impl Recipients {
    pub fn new(users: PgUsers) -> Self {
        Self { users }
    }

    /// A user's address and name, from the users read model.
    pub async fn of_user(&self, user_id: Uuid) -> Result<Lookup, sqlx::Error> {
        Ok(match self.users.get(user_id).await? {
            None => Lookup::NotYet,
            Some(user) if !usable(&user.email) => Lookup::Gone,
            Some(user) => Lookup::Found(Recipient {
                address: user.email,
                name: user.first_name.filter(|name| !name.is_empty()),
            }),
        })
    }

    /// The address a `UserRegistered` payload (`data`) carries; when it carries none that is
    /// usable (encrypted, say), the users read model's.
    pub async fn of_registration(
        &self,
        user_id: Uuid,
        data: &Value,
    ) -> Result<Lookup, sqlx::Error> {
        match data.get("email").and_then(Value::as_str) {
            Some(address) if usable(address) => Ok(Lookup::Found(Recipient {
                address: address.to_string(),
                name: data
                    .get("first_name")
                    .and_then(Value::as_str)
                    .filter(|name| !name.is_empty())
                    .map(str::to_string),
            })),
            _ => self.of_user(user_id).await,
        }
    }
}
