//! The message body every event travels in on NATS (a public contract, see docs/events.md).

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ProjectionError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RelayedEvent {
    /// Global position in the event store. Unique; not ascending in delivery order.
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The event's place in its aggregate's stream, from 1 without gaps.
    pub sequence: u64,
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    pub metadata: Value,
    pub payload: Value,
}

impl RelayedEvent {
    /// The payload as the domain event it carries.
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, ProjectionError> {
        serde_json::from_value(self.payload.clone()).map_err(|error| self.unreadable(error))
    }

    pub fn unreadable(&self, reason: impl ToString) -> ProjectionError {
        ProjectionError::Unreadable {
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
            reason: reason.to_string(),
        }
    }
}
