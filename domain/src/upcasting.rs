//! Old shapes of stored events keep loading: an [`Upcaster`] turns one version of an event
//! type's payload into the next, and [`Upcasters`] applies every step from the version stored
//! to the current one before the payload is deserialized.
//!
//! When an event's shape changes: bump its aggregate's `EVENT_VERSION`, add a step to
//! [`SHIPPED`], keep the old fixture under `domain/tests/fixtures/events/` (renamed
//! `<EventType>.v<old>.json`) and add the new one; `tests/fixtures.rs` then loads the old
//! fixture through the upcasters into the current type.

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::Value;

/// One step: `event_type` at `from_version` becomes `to_version` through `upcast`.
#[derive(Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: &'static str,
    pub to_version: &'static str,
    /// Takes the stored payload (`{"type", "data"}`) and returns the newer one.
    pub upcast: fn(Value) -> Value,
}

/// The steps eshop ships. Empty: no event type has changed shape since version 1.
pub const SHIPPED: &[Upcaster] = &[];

/// A set of steps, applied in chains (1 → 2 → 3) as far as they go.
#[derive(Clone)]
pub struct Upcasters(Vec<Upcaster>);

impl Upcasters {
    pub fn shipped() -> Self {
        Self(SHIPPED.to_vec())
    }

    pub fn new(steps: Vec<Upcaster>) -> Self {
        Self(steps)
    }

    fn step(&self, event_type: &str, version: &str) -> Option<&Upcaster> {
        self.0
            .iter()
            .find(|step| step.event_type == event_type && step.from_version == version)
    }

    /// The payload in the newest shape these steps reach, and its version.
    pub fn upcast(&self, event_type: &str, version: &str, mut payload: Value) -> (String, Value) {
        let mut version = version.to_string();
        // Each step must move to another version; the bound stops a cycle in a bad table.
        for _ in 0..=self.0.len() {
            let Some(step) = self.step(event_type, &version) else {
                break;
            };
            payload = (step.upcast)(payload);
            version = step.to_version.to_string();
        }
        (version, payload)
    }
}

/// The same steps for cqrs-es's event stores.
impl EventUpcaster for Upcasters {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        self.step(event_type, event_version).is_some()
    }

    fn upcast(&self, event: SerializedEvent) -> SerializedEvent {
        let (event_version, payload) =
            Upcasters::upcast(self, &event.event_type, &event.event_version, event.payload);
        SerializedEvent {
            event_version,
            payload,
            ..event
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn renamed_amount(mut payload: Value) -> Value {
        if let Some(data) = payload.get_mut("data").and_then(Value::as_object_mut) {
            if let Some(amount) = data.remove("amount") {
                data.insert("amount_cents".into(), amount);
            }
        }
        payload
    }

    fn added_note(mut payload: Value) -> Value {
        payload["data"]["note"] = json!("");
        payload
    }

    #[test]
    fn steps_chain_from_the_stored_version_to_the_newest() {
        let upcasters = Upcasters::new(vec![
            Upcaster {
                event_type: "Paid",
                from_version: "1",
                to_version: "2",
                upcast: renamed_amount,
            },
            Upcaster {
                event_type: "Paid",
                from_version: "2",
                to_version: "3",
                upcast: added_note,
            },
        ]);
        let (version, payload) =
            upcasters.upcast("Paid", "1", json!({"type": "Paid", "data": {"amount": 5}}));
        assert_eq!(version, "3");
        assert_eq!(
            payload,
            json!({"type": "Paid", "data": {"amount_cents": 5, "note": ""}})
        );
        let (version, _) = upcasters.upcast("Paid", "3", json!({}));
        assert_eq!(version, "3", "the newest version is left alone");
        let (version, _) = upcasters.upcast("Other", "1", json!({}));
        assert_eq!(version, "1", "other types are left alone");
    }
}
