//! The `user` aggregate: identity, profile, roles and the wallet.

use std::collections::{BTreeMap, BTreeSet};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::claims::{DeclaresClaims, UniqueClaim};
use crate::personal::Personal;
use crate::values::{DepositAmount, EmailAddress, PersonName, Role, Username};

pub const EMAIL_CLAIM: &str = "email";
pub const USERNAME_CLAIM: &str = "username";

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    Register(Registration),
    /// Changes whichever fields are `Some`; fields equal to the current value produce no event.
    UpdateProfile {
        first_name: Option<PersonName>,
        last_name: Option<PersonName>,
        email: Option<EmailAddress>,
    },
    Deposit(DepositAmount),
    Deactivate,
    Reactivate,
    GrantRole(Role),
    RevokeRole(Role),
    /// Pays for an order from the wallet. Once per order: a repeat changes nothing.
    Debit {
        order_id: Uuid,
        amount_cents: i64,
    },
    /// Gives an order's debit back. Once per order; nothing to refund is no change.
    Refund {
        order_id: Uuid,
    },
    /// `password_hash` is an argon2id PHC string, like at registration.
    ChangePassword {
        password_hash: String,
    },
    /// Marks the account erased (its personal data is unreadable once its key is deleted) and
    /// closes it for good. A repeat changes nothing.
    Erase,
}

/// One order's payment from the wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Debit {
    pub amount_cents: i64,
    pub refunded: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub email: EmailAddress,
    pub username: Username,
    /// An argon2id PHC string; the plain password never reaches the domain.
    pub password_hash: String,
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
}

/// The version of every event type below; bump one (with an upcaster) when its shape changes.
pub const EVENT_VERSION: &str = "1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    UserRegistered {
        email: Personal<String>,
        username: String,
        /// Kept in the store, never published (see `crate::unpublished_fields`), so readers of
        /// the stream see it absent.
        #[serde(default)]
        password_hash: String,
        first_name: Personal<Option<String>>,
        last_name: Personal<Option<String>>,
    },
    ProfileChanged {
        first_name: Personal<Option<String>>,
        last_name: Personal<Option<String>>,
    },
    EmailChanged {
        email: Personal<String>,
    },
    WalletDeposited {
        amount_cents: i64,
        balance_cents: i64,
    },
    UserDeactivated,
    UserReactivated,
    RoleGranted {
        role: Role,
    },
    RoleRevoked {
        role: Role,
    },
    WalletDebited {
        order_id: Uuid,
        amount_cents: i64,
        balance_cents: i64,
    },
    WalletRefunded {
        order_id: Uuid,
        amount_cents: i64,
        balance_cents: i64,
    },
    PasswordChanged {
        /// Kept in the store, never published, like at registration.
        #[serde(default)]
        password_hash: String,
    },
    /// The user's personal data was erased: events before this one hold it only sealed with a
    /// key that no longer exists.
    UserErased,
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            Self::UserRegistered { .. } => "UserRegistered",
            Self::ProfileChanged { .. } => "ProfileChanged",
            Self::EmailChanged { .. } => "EmailChanged",
            Self::WalletDeposited { .. } => "WalletDeposited",
            Self::UserDeactivated => "UserDeactivated",
            Self::UserReactivated => "UserReactivated",
            Self::RoleGranted { .. } => "RoleGranted",
            Self::RoleRevoked { .. } => "RoleRevoked",
            Self::WalletDebited { .. } => "WalletDebited",
            Self::WalletRefunded { .. } => "WalletRefunded",
            Self::PasswordChanged { .. } => "PasswordChanged",
            Self::UserErased => "UserErased",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

impl DeclaresClaims for UserEvent {
    fn unique_claims(&self) -> Vec<UniqueClaim> {
        match self {
            Self::UserRegistered {
                email, username, ..
            } => vec![
                UniqueClaim {
                    kind: EMAIL_CLAIM,
                    value: email.expose().clone(),
                },
                UniqueClaim {
                    kind: USERNAME_CLAIM,
                    value: username.to_lowercase(),
                },
            ],
            Self::EmailChanged { email } => vec![UniqueClaim {
                kind: EMAIL_CLAIM,
                value: email.expose().clone(),
            }],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("the user does not exist")]
    NotFound,
    #[error("the user is already registered")]
    AlreadyRegistered,
    #[error("the user is deactivated")]
    Deactivated,
    #[error("the user is already active")]
    AlreadyActive,
    #[error("the wallet balance would exceed its limit")]
    BalanceLimit,
    #[error("the balance is {balance_cents} cents, not enough")]
    InsufficientBalance { balance_cents: i64 },
    #[error("an amount must not be negative")]
    NegativeAmount,
    #[error("the user was erased")]
    Erased,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub registered: bool,
    pub email: Personal<String>,
    pub username: String,
    pub password_hash: String,
    pub first_name: Personal<Option<String>>,
    pub last_name: Personal<Option<String>>,
    pub roles: BTreeSet<Role>,
    pub active: bool,
    pub balance_cents: i64,
    /// Every order paid from the wallet, so that each is debited and refunded at most once.
    #[serde(default)]
    pub debits: BTreeMap<Uuid, Debit>,
    #[serde(default)]
    pub erased: bool,
}

impl User {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    fn require_registered(&self) -> Result<(), UserError> {
        if self.erased {
            Err(UserError::Erased)
        } else if self.registered {
            Ok(())
        } else {
            Err(UserError::NotFound)
        }
    }

    fn require_active(&self) -> Result<(), UserError> {
        self.require_registered()?;
        if self.active {
            Ok(())
        } else {
            Err(UserError::Deactivated)
        }
    }

    fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::Register(registration) => {
                if self.registered {
                    return Err(UserError::AlreadyRegistered);
                }
                Ok(vec![UserEvent::UserRegistered {
                    email: Personal::new(registration.email.as_str().to_string()),
                    username: registration.username.as_str().to_string(),
                    password_hash: registration.password_hash,
                    first_name: Personal::new(registration.first_name.map(PersonName::into_inner)),
                    last_name: Personal::new(registration.last_name.map(PersonName::into_inner)),
                }])
            }
            UserCommand::UpdateProfile {
                first_name,
                last_name,
                email,
            } => {
                self.require_active()?;
                let mut events = Vec::new();
                let first_name = first_name
                    .map(PersonName::into_inner)
                    .or_else(|| self.first_name.expose().clone());
                let last_name = last_name
                    .map(PersonName::into_inner)
                    .or_else(|| self.last_name.expose().clone());
                if &first_name != self.first_name.expose() || &last_name != self.last_name.expose()
                {
                    events.push(UserEvent::ProfileChanged {
                        first_name: Personal::new(first_name),
                        last_name: Personal::new(last_name),
                    });
                }
                if let Some(email) = email {
                    if email.as_str() != self.email.expose() {
                        events.push(UserEvent::EmailChanged {
                            email: Personal::new(email.as_str().to_string()),
                        });
                    }
                }
                Ok(events)
            }
            UserCommand::Deposit(amount) => {
                self.require_active()?;
                let balance_cents = self
                    .balance_cents
                    .checked_add(amount.cents())
                    .ok_or(UserError::BalanceLimit)?;
                Ok(vec![UserEvent::WalletDeposited {
                    amount_cents: amount.cents(),
                    balance_cents,
                }])
            }
            UserCommand::Deactivate => {
                self.require_registered()?;
                Ok(if self.active {
                    vec![UserEvent::UserDeactivated]
                } else {
                    Vec::new()
                })
            }
            UserCommand::Reactivate => {
                self.require_registered()?;
                if self.active {
                    return Err(UserError::AlreadyActive);
                }
                Ok(vec![UserEvent::UserReactivated])
            }
            UserCommand::GrantRole(role) => {
                self.require_registered()?;
                Ok(if self.has_role(role) {
                    Vec::new()
                } else {
                    vec![UserEvent::RoleGranted { role }]
                })
            }
            UserCommand::RevokeRole(role) => {
                self.require_registered()?;
                Ok(if self.has_role(role) {
                    vec![UserEvent::RoleRevoked { role }]
                } else {
                    Vec::new()
                })
            }
            UserCommand::Debit {
                order_id,
                amount_cents,
            } => {
                if self.debits.contains_key(&order_id) {
                    return Ok(Vec::new());
                }
                self.require_active()?;
                if amount_cents < 0 {
                    return Err(UserError::NegativeAmount);
                }
                if amount_cents > self.balance_cents {
                    return Err(UserError::InsufficientBalance {
                        balance_cents: self.balance_cents,
                    });
                }
                Ok(vec![UserEvent::WalletDebited {
                    order_id,
                    amount_cents,
                    balance_cents: self.balance_cents - amount_cents,
                }])
            }
            UserCommand::ChangePassword { password_hash } => {
                self.require_active()?;
                Ok(vec![UserEvent::PasswordChanged { password_hash }])
            }
            UserCommand::Erase => {
                if self.erased {
                    return Ok(Vec::new());
                }
                self.require_registered()?;
                Ok(vec![UserEvent::UserErased])
            }
            UserCommand::Refund { order_id } => Ok(match self.debits.get(&order_id) {
                Some(debit) if !debit.refunded => vec![UserEvent::WalletRefunded {
                    order_id,
                    amount_cents: debit.amount_cents,
                    balance_cents: self.balance_cents.saturating_add(debit.amount_cents),
                }],
                _ => Vec::new(),
            }),
        }
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = self.decide(command)?;
        crate::emit(self, events, sink).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            UserEvent::UserRegistered {
                email,
                username,
                password_hash,
                first_name,
                last_name,
            } => {
                self.registered = true;
                self.active = true;
                self.email = email;
                self.username = username;
                self.password_hash = password_hash;
                self.first_name = first_name;
                self.last_name = last_name;
            }
            UserEvent::ProfileChanged {
                first_name,
                last_name,
            } => {
                self.first_name = first_name;
                self.last_name = last_name;
            }
            UserEvent::EmailChanged { email } => self.email = email,
            UserEvent::WalletDeposited { balance_cents, .. } => self.balance_cents = balance_cents,
            UserEvent::UserDeactivated => self.active = false,
            UserEvent::UserReactivated => self.active = true,
            UserEvent::RoleGranted { role } => {
                self.roles.insert(role);
            }
            UserEvent::RoleRevoked { role } => {
                self.roles.remove(&role);
            }
            UserEvent::WalletDebited {
                order_id,
                amount_cents,
                balance_cents,
            } => {
                self.balance_cents = balance_cents;
                self.debits.insert(
                    order_id,
                    Debit {
                        amount_cents,
                        refunded: false,
                    },
                );
            }
            UserEvent::WalletRefunded {
                order_id,
                balance_cents,
                ..
            } => {
                self.balance_cents = balance_cents;
                if let Some(debit) = self.debits.get_mut(&order_id) {
                    debit.refunded = true;
                }
            }
            UserEvent::PasswordChanged { password_hash } => self.password_hash = password_hash,
            UserEvent::UserErased => {
                self.erased = true;
                self.active = false;
                self.email = Personal::default();
                self.first_name = Personal::default();
                self.last_name = Personal::default();
                self.password_hash.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests;
