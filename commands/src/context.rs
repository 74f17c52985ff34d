//! Who asked for a command, why, and under which id: carried into every event's metadata.

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};
use uuid::Uuid;

/// Namespace for ids derived from other ids (v5), so that a repeated request or step derives
/// the same id again.
const ESHOP_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_0b7e_5c3a_4f8e_9a21_7c44_e0b5_d913);

pub fn derived_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&ESHOP_NAMESPACE, parts.join("\u{1f}").as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(Uuid),
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => id.fmt(f),
            Self::System => f.write_str("system"),
        }
    }
}

impl FromStr for Actor {
    type Err = uuid::Error;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw == "system" {
            Ok(Self::System)
        } else {
            raw.parse().map(Self::User)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    pub command_id: Uuid,
    /// True when `command_id` was derived from something the client may send again (an
    /// `Idempotency-Key`, a saga step): such a command must take effect at most once.
    pub repeatable: bool,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub actor: Actor,
    pub request_id: String,
}

impl CommandContext {
    /// A one-off command with a fresh id; it is its own correlation and cause.
    pub fn new(actor: Actor, request_id: impl Into<String>) -> Self {
        let command_id = Uuid::now_v7();
        Self {
            command_id,
            repeatable: false,
            correlation_id: command_id,
            causation_id: command_id,
            actor,
            request_id: request_id.into(),
        }
    }

    /// A command whose id is derived from `parts`, so a repeat of the same request is recognised.
    pub fn repeatable(actor: Actor, request_id: impl Into<String>, parts: &[&str]) -> Self {
        let command_id = derived_id(parts);
        Self {
            command_id,
            repeatable: true,
            correlation_id: command_id,
            causation_id: command_id,
            actor,
            request_id: request_id.into(),
        }
    }

    /// A process manager's step: its id is derived from `parts` (so the events name their
    /// step, and a duplicate append is refused), but it is not looked up before it runs: the
    /// domain makes such steps idempotent itself.
    pub fn step(actor: Actor, request_id: impl Into<String>, parts: &[&str]) -> Self {
        Self {
            repeatable: false,
            ..Self::repeatable(actor, request_id, parts)
        }
    }

    pub fn correlated_with(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = correlation_id;
        self
    }

    /// The id a new aggregate created by this command gets: derived for repeatable commands so
    /// a repeat targets the same aggregate, random otherwise.
    pub fn new_aggregate_id(&self) -> Uuid {
        if self.repeatable {
            derived_id(&["new-aggregate", &self.command_id.to_string()])
        } else {
            Uuid::now_v7()
        }
    }

    /// The metadata stored with the `sequence`th event of an aggregate. The event id is derived
    /// from the command and the position in the stream, so a replayed append names it the same.
    pub fn event_metadata(&self, aggregate_type: &str, aggregate_id: &str, sequence: u64) -> Value {
        let event_id = derived_id(&[
            "event",
            &self.command_id.to_string(),
            aggregate_type,
            aggregate_id,
            &sequence.to_string(),
        ]);
        json!({
            "event_id": event_id,
            "command_id": self.command_id,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "actor": self.actor.to_string(),
            "request_id": self.request_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeatable_commands_derive_the_same_ids() {
        let a = CommandContext::repeatable(Actor::System, "r1", &["user-1", "key-1"]);
        let b = CommandContext::repeatable(Actor::System, "r2", &["user-1", "key-1"]);
        let other = CommandContext::repeatable(Actor::System, "r1", &["user-2", "key-1"]);
        assert_eq!(a.command_id, b.command_id);
        assert_eq!(a.new_aggregate_id(), b.new_aggregate_id());
        assert_ne!(a.command_id, other.command_id);
    }

    #[test]
    fn metadata_carries_every_id() {
        let actor = Actor::User(Uuid::now_v7());
        let context = CommandContext::new(actor, "req-7");
        let metadata = context.event_metadata("user", "u1", 3);
        for field in [
            "event_id",
            "command_id",
            "correlation_id",
            "causation_id",
            "actor",
            "request_id",
        ] {
            assert!(metadata.get(field).is_some(), "missing {field}");
        }
        assert_eq!(metadata["actor"], actor.to_string());
        assert_ne!(
            metadata["event_id"],
            context.event_metadata("user", "u1", 4)["event_id"]
        );
    }

    #[test]
    fn actor_round_trips_through_text() {
        let user = Actor::User(Uuid::now_v7());
        assert_eq!(user.to_string().parse::<Actor>().expect("parses"), user);
        assert_eq!("system".parse::<Actor>().expect("parses"), Actor::System);
    }
}
