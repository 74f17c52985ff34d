//! The one place the mailer reads personal data (addresses and names): from the users read
//! model, or from a registration's sealed fields opened with the user's key. An erased user
//! (no key, an empty address in the read model) gets no mail.

use std::collections::HashMap;

use eshop_projections::user::UserRecord;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::personal_data::PersonalDataKeys;
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
    keys: PersonalDataKeys,
}

fn usable(address: &str) -> bool {
    address.contains('@')
}

impl Recipients {
    pub fn new(users: PgUsers, keys: PersonalDataKeys) -> Self {
        Self { users, keys }
    }

    /// A user's address and name, from the users read model.
    pub async fn of_user(&self, user_id: Uuid) -> Result<Lookup, sqlx::Error> {
        Ok(Self::lookup(self.users.get(user_id).await?))
    }

    /// The addresses and names of `user_ids`, in one query (missing users are `NotYet`).
    pub async fn of_users(&self, user_ids: &[Uuid]) -> Result<HashMap<Uuid, Lookup>, sqlx::Error> {
        let mut found: HashMap<Uuid, Lookup> =
            user_ids.iter().map(|id| (*id, Lookup::NotYet)).collect();
        for user in self.users.get_many(user_ids).await? {
            found.insert(user.id, Self::lookup(Some(user)));
        }
        Ok(found)
    }

    fn lookup(user: Option<UserRecord>) -> Lookup {
        match user {
            None => Lookup::NotYet,
            Some(user) if !usable(&user.email) => Lookup::Gone,
            Some(user) => Lookup::Found(Recipient {
                address: user.email,
                name: user.first_name.filter(|name| !name.is_empty()),
            }),
        }
    }

    /// The address a `UserRegistered` payload (`data`) carries, unsealed; when it has none
    /// that is usable (erased since), the users read model's.
    pub async fn of_registration(
        &self,
        user_id: Uuid,
        data: &Value,
    ) -> Result<Lookup, sqlx::Error> {
        let subject = user_id.to_string();
        let mut payload = json!({ "data": data });
        self.keys
            .unseal_all([("user", subject.as_str(), &mut payload)])
            .await?;
        let data = &payload["data"];
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
