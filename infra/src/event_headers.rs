//! The NATS headers of a published event: eshop's own (`Nats-Msg-Id` = position for
//! JetStream's deduplication, the ids again) and the CloudEvents 1.0 attributes of the NATS
//! protocol binding in binary mode, so that consumers built on a CloudEvents SDK read each
//! message as a CloudEvent whose `data` is the body. The body itself is unchanged.

use async_nats::HeaderMap;

use eshop_projections::RelayedEvent;

pub const CLOUDEVENTS_SPEC_VERSION: &str = "1.0";

/// `ce-type`: `eshop.<aggregate_type>.<EventType>.v<version>`.
pub fn cloudevents_type(event: &RelayedEvent) -> String {
    format!(
        "eshop.{}.{}.v{}",
        event.aggregate_type, event.event_type, event.event_version
    )
}

/// `ce-source`: the context the event happened in, `/eshop/<aggregate_type>`; with `ce-id` it
/// identifies the event.
pub fn cloudevents_source(event: &RelayedEvent) -> String {
    format!("/eshop/{}", event.aggregate_type)
}

pub fn headers_for(event: &RelayedEvent) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.position.to_string().as_str());
    headers.insert("Eshop-Event-Type", event.event_type.as_str());
    headers.insert("Eshop-Aggregate-Type", event.aggregate_type.as_str());
    headers.insert("Eshop-Aggregate-Id", event.aggregate_id.as_str());
    headers.insert("Eshop-Sequence", event.sequence.to_string().as_str());
    for (header, field) in [
        ("Eshop-Event-Id", "event_id"),
        ("Eshop-Correlation-Id", "correlation_id"),
        ("Eshop-Causation-Id", "causation_id"),
    ] {
        if let Some(value) = event.metadata.get(field).and_then(|v| v.as_str()) {
            headers.insert(header, value);
        }
    }

    headers.insert("ce-specversion", CLOUDEVENTS_SPEC_VERSION);
    // Every stored event has an event id; the position is the fallback that is unique too.
    let id = event
        .metadata
        .get("event_id")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| event.position.to_string());
    headers.insert("ce-id", id.as_str());
    headers.insert("ce-source", cloudevents_source(event).as_str());
    headers.insert("ce-type", cloudevents_type(event).as_str());
    headers.insert(
        "ce-time",
        event
            .recorded_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .as_str(),
    );
    headers.insert("ce-subject", event.aggregate_id.as_str());
    headers.insert("ce-datacontenttype", "application/json");
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn event() -> RelayedEvent {
        RelayedEvent {
            position: 42,
            aggregate_type: "order".into(),
            aggregate_id: "0b0c3f8e-7d4c-4a59-9a8f-3f2b1c0d9e71".into(),
            sequence: 3,
            event_type: "OrderConfirmed".into(),
            event_version: "1".into(),
            recorded_at: chrono::Utc
                .with_ymd_and_hms(2026, 12, 3, 9, 30, 0)
                .single()
                .expect("a time"),
            metadata: json!({"event_id": "5f1d2a3b-0000-4000-8000-000000000001",
                             "correlation_id": "c", "causation_id": "d"}),
            payload: json!({"type": "OrderConfirmed"}),
        }
    }

    #[test]
    fn the_cloudevents_attributes_name_the_event() {
        let headers = headers_for(&event());
        let get = |name: &str| headers.get(name).map(|value| value.as_str().to_string());
        assert_eq!(get("ce-specversion").as_deref(), Some("1.0"));
        assert_eq!(
            get("ce-id").as_deref(),
            Some("5f1d2a3b-0000-4000-8000-000000000001")
        );
        assert_eq!(get("ce-source").as_deref(), Some("/eshop/order"));
        assert_eq!(
            get("ce-type").as_deref(),
            Some("eshop.order.OrderConfirmed.v1")
        );
        assert_eq!(
            get("ce-time").as_deref(),
            Some("2026-12-03T09:30:00.000000Z")
        );
        assert_eq!(
            get("ce-subject").as_deref(),
            Some("0b0c3f8e-7d4c-4a59-9a8f-3f2b1c0d9e71")
        );
        assert_eq!(
            get("ce-datacontenttype").as_deref(),
            Some("application/json")
        );
        assert_eq!(get("Nats-Msg-Id").as_deref(), Some("42"));
    }
}
