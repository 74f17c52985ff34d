//! The AsyncAPI 3.0 document of eshop's NATS channels, generated from the same event types as
//! docs/events.md (`eshop docs asyncapi` prints it, `GET /api/asyncapi.json` serves it, and
//! `docs/asyncapi.json` is the committed copy a test keeps current).
//!
//! Schemas come from `super::schemas`, with their `#/$defs/…` references moved to
//! `#/components/schemas/…`: inside an AsyncAPI document a reference resolves against the
//! document, not against the schema that holds it.

use serde_json::{json, Map, Value};

use super::schemas::{event_schemas, EventSchema};

const DESCRIPTION: &str = "\
Every event eshop commits, published on NATS JetStream for downstream consumers. The event store \
in Postgres is the record; the stream is derived from it and can be replayed from it \
(`eshop relay replay`).\n\n\
Delivery: at least once. Each message carries `Nats-Msg-Id` = the event's global `position`, \
unique per event: JetStream drops a re-publish within its 10-minute duplicate window, and a \
consumer deduplicates by it (or by `sequence` per aggregate). Each aggregate's events arrive in \
`sequence` order (1, 2, 3, … without gaps); across aggregates the order is commit order, so \
`position` is not ascending in the stream.\n\n\
Each message is also a CloudEvent (1.0, NATS binding, binary mode): the `ce-*` headers carry its \
attributes and the body is its `data`.\n\n\
Personal fields of `user` events (`email`, `first_name`, `last_name`) are published sealed, as \
`{\"sealed\": \"<base64url>\"}` (XChaCha20-Poly1305, a key per user, deleted on erasure); the \
schemas show them as they are before sealing. Secrets (password hashes) are never published.";

/// Headers on every event message: eshop's own and the CloudEvents attributes.
fn event_headers() -> Value {
    let text = |description: &str| json!({"type": "string", "description": description});
    json!({
        "type": "object",
        "required": [
            "Nats-Msg-Id", "Eshop-Event-Type", "Eshop-Aggregate-Type", "Eshop-Aggregate-Id",
            "Eshop-Sequence", "ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time",
            "ce-subject", "ce-datacontenttype"
        ],
        "properties": {
            "Nats-Msg-Id": text("The event's global position: JetStream's deduplication key, and the consumer's."),
            "Eshop-Event-Type": text("`event_type` of the body."),
            "Eshop-Aggregate-Type": text("`aggregate_type` of the body."),
            "Eshop-Aggregate-Id": text("`aggregate_id` of the body."),
            "Eshop-Sequence": text("`sequence` of the body."),
            "Eshop-Event-Id": text("`metadata.event_id`."),
            "Eshop-Correlation-Id": text("`metadata.correlation_id`."),
            "Eshop-Causation-Id": text("`metadata.causation_id`."),
            "ce-specversion": {"type": "string", "const": "1.0", "description": "CloudEvents version."},
            "ce-id": text("CloudEvents id: the event's id (`metadata.event_id`)."),
            "ce-source": text("CloudEvents source: `/eshop/<aggregate_type>`."),
            "ce-type": text("CloudEvents type: `eshop.<aggregate_type>.<event_type>.v<event_version>`."),
            "ce-time": {"type": "string", "format": "date-time", "description": "CloudEvents time: `recorded_at`."},
            "ce-subject": text("CloudEvents subject: the aggregate id."),
            "ce-datacontenttype": {"type": "string", "const": "application/json", "description": "CloudEvents datacontenttype of the body."}
        }
    })
}

fn metadata() -> Value {
    let id =
        |description: &str| json!({"type": "string", "format": "uuid", "description": description});
    json!({
        "type": "object",
        "description": "Who and what caused the event.",
        "properties": {
            "event_id": id("Unique per event."),
            "command_id": id("The command that appended it (deterministic for repeated commands)."),
            "correlation_id": id("Shared by everything one request or process set off."),
            "causation_id": id("The event or command that caused this one."),
            "actor": {"type": "string", "description": "A user id, or `system`."},
            "request_id": {"type": ["string", "null"], "description": "The HTTP request's id, when one caused it."}
        }
    })
}

/// The message body (the envelope of docs/events.md) of one event type.
fn envelope(schema: &EventSchema, payload: Value) -> Value {
    json!({
        "type": "object",
        "required": [
            "position", "aggregate_type", "aggregate_id", "sequence", "event_type",
            "event_version", "recorded_at", "metadata", "payload"
        ],
        "properties": {
            "position": {"type": "integer", "format": "int64", "description": "Global position in the event store; unique, not ascending in the stream."},
            "aggregate_type": {"type": "string", "const": schema.key.aggregate_type},
            "aggregate_id": {"type": "string", "format": "uuid"},
            "sequence": {"type": "integer", "minimum": 1, "description": "The event's place in its aggregate's stream, from 1 without gaps."},
            "event_type": {"type": "string", "const": schema.key.event_type},
            "event_version": {"type": "string", "const": schema.key.version},
            "recorded_at": {"type": "string", "format": "date-time"},
            "metadata": {"$ref": "#/components/schemas/EventMetadata"},
            "payload": payload
        }
    })
}

fn seal() -> Value {
    json!({
        "type": "object",
        "required": ["up_to_position", "chain_index", "link", "sealed_at"],
        "properties": {
            "up_to_position": {"type": "integer", "format": "int64", "description": "The position of the last event the seal covers."},
            "chain_index": {"type": "integer", "format": "int64", "description": "That event's place in the hash chain (commit-safe order), from 1."},
            "link": {"type": "string", "description": "Hex of that event's chain link: SHA-256 of the previous link and the event's stored bytes."},
            "sealed_at": {"type": "string", "format": "date-time"}
        }
    })
}

/// Rewrites `#/$defs/<name>` references to the component names `rename` gives.
fn move_references(schema: &mut Value, rename: &impl Fn(&str) -> String) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                if key == "$ref" {
                    if let Some(name) = value.as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
                        *value = json!(format!("#/components/schemas/{}", rename(name)));
                    }
                } else {
                    move_references(value, rename);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| move_references(item, rename)),
        _ => {}
    }
}

/// The component name of an aggregate's definition: its own name, unless another aggregate
/// defines a different schema under it (then prefixed with the aggregate type).
fn component_name(
    aggregate_type: &str,
    name: &str,
    definition: &Value,
    taken: &Map<String, Value>,
) -> String {
    match taken.get(name) {
        Some(existing) if existing != definition => {
            let mut prefixed = aggregate_type.to_string();
            if let Some(first) = prefixed.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            format!("{prefixed}{name}")
        }
        _ => name.to_string(),
    }
}

/// The document. `prefix` is the NATS prefix (`ESHOP_NATS_PREFIX`, empty in production): the
/// channels' addresses carry it as the running eshop publishes them.
pub fn document(prefix: &str) -> Value {
    let root = if prefix.is_empty() {
        "eshop".to_string()
    } else {
        format!("{prefix}.eshop")
    };
    let mut schemas = Map::new();
    schemas.insert("EventHeaders".into(), event_headers());
    schemas.insert("EventMetadata".into(), metadata());
    schemas.insert("Seal".into(), seal());

    let mut definitions = Map::new();
    let mut messages = Map::new();
    let mut channel_messages = Map::new();
    let mut aggregate_types: Vec<String> = Vec::new();
    for schema in event_schemas() {
        let aggregate_type = schema.key.aggregate_type.clone();
        if !aggregate_types.contains(&aggregate_type) {
            aggregate_types.push(aggregate_type.clone());
        }
        let names: std::collections::BTreeMap<String, String> = schema
            .definitions
            .iter()
            .map(|(name, definition)| {
                (
                    name.clone(),
                    component_name(&aggregate_type, name, definition, &definitions),
                )
            })
            .collect();
        let rename = |name: &str| names.get(name).cloned().unwrap_or_else(|| name.to_string());
        for (name, definition) in &schema.definitions {
            let mut definition = definition.clone();
            move_references(&mut definition, &rename);
            definitions.insert(rename(name), definition);
        }
        let mut payload = schema.document();
        if let Some(object) = payload.as_object_mut() {
            object.remove("$schema");
            object.remove("$defs");
            object.remove("title");
        }
        move_references(&mut payload, &rename);

        let event_type = schema.key.event_type.clone();
        let mut message = json!({
            "name": event_type,
            "title": format!("{event_type} ({aggregate_type}, version {})", schema.key.version),
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/EventHeaders"},
            "payload": envelope(&schema, payload),
            "correlationId": {
                "description": "Shared by every event one request or process set off.",
                "location": "$message.payload#/metadata/correlation_id"
            }
        });
        if let Some(description) = &schema.description {
            message["summary"] = json!(description);
        }
        message["description"] = json!(format!(
            "The payload's schema is committed as `docs/schemas/{}`; docs/events.md describes \
             the envelope.",
            schema.key.relative_path()
        ));
        messages.insert(event_type.clone(), message);
        channel_messages.insert(
            event_type.clone(),
            json!({"$ref": format!("#/components/messages/{event_type}")}),
        );
    }
    for (name, definition) in definitions {
        schemas.insert(name, definition);
    }
    messages.insert(
        "Seal".into(),
        json!({
            "name": "Seal",
            "title": "A seal of the hash chain",
            "summary": "Every 1,000 events or 10 s, the link the chain reached, so that a party keeping the seals can detect history rewritten, even by someone who recomputes the chain in the database (`eshop audit verify`).",
            "contentType": "application/json",
            "payload": {"$ref": "#/components/schemas/Seal"}
        }),
    );

    let operation_messages: Vec<Value> = channel_messages
        .keys()
        .map(|name| json!({"$ref": format!("#/channels/events/messages/{name}")}))
        .collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "eshop events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "The NATS server (with JetStream) eshop is configured with (`NATS_URL`)."
            }
        },
        "channels": {
            "events": {
                "address": format!("{root}.events.{{aggregate_type}}.{{aggregate_id}}"),
                "title": "Events",
                "summary": "Every committed event, one subject per aggregate.",
                "description": format!(
                    "Kept by the JetStream stream `{}` (file storage, 10-minute duplicate window; \
                     operators may bound its age with `ESHOP_EVENTS_MAX_AGE`). Subscribe to \
                     `{root}.events.>` for everything, `{root}.events.order.>` for one aggregate \
                     type. A replay (`eshop relay replay`) publishes the same messages under \
                     another subject prefix and stream.",
                    if prefix.is_empty() { "ESHOP_EVENTS".to_string() } else { format!("{}_ESHOP_EVENTS", prefix.to_uppercase()) }
                ),
                "servers": [{"$ref": "#/servers/nats"}],
                "parameters": {
                    "aggregate_type": {
                        "description": "The kind of aggregate the event belongs to.",
                        "enum": aggregate_types
                    },
                    "aggregate_id": {
                        "description": "The aggregate's UUID."
                    }
                },
                "messages": channel_messages
            },
            "seals": {
                "address": format!("{root}.seals"),
                "title": "Seals",
                "summary": "Seals of the tamper-evident hash chain over the event store.",
                "servers": [{"$ref": "#/servers/nats"}],
                "messages": {"Seal": {"$ref": "#/components/messages/Seal"}}
            }
        },
        "operations": {
            "receiveEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/events"},
                "title": "Receive events",
                "summary": "Consume the event stream (a durable JetStream consumer is the usual way).",
                "description": "At least once; deduplicate by `Nats-Msg-Id` (the position) or by `sequence` per aggregate. Per-aggregate order by `sequence`. Acknowledge after your own write commits.",
                "messages": operation_messages,
                "x-eshop-delivery": {
                    "guarantee": "at-least-once",
                    "deduplication": "Nats-Msg-Id = position (unique per event)",
                    "ordering": "per aggregate, by sequence; across aggregates commit order",
                    "stream": "JetStream, file storage, duplicate window 10 minutes"
                }
            },
            "receiveSeals": {
                "action": "receive",
                "channel": {"$ref": "#/channels/seals"},
                "title": "Receive seals",
                "summary": "Keep the seals outside eshop to detect rewritten history.",
                "messages": [{"$ref": "#/channels/seals/messages/Seal"}]
            }
        },
        "components": {
            "schemas": schemas,
            "messages": messages
        }
    })
}

/// The committed copy's text (pretty JSON, final newline).
pub fn document_text(prefix: &str) -> String {
    let mut text = serde_json::to_string_pretty(&document(prefix)).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regenerate with `cargo run --bin eshop -- docs asyncapi > docs/asyncapi.json`.
    #[test]
    fn docs_asyncapi_json_matches_the_event_types() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/asyncapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == document_text(""),
            "docs/asyncapi.json is stale: run `cargo run --bin eshop -- docs asyncapi > docs/asyncapi.json`"
        );
    }

    /// The document against the official AsyncAPI 3.0 JSON Schema and the rules of the
    /// AsyncAPI Initiative's parser (`scripts/asyncapi`, installed by `scripts/test`). Outside
    /// CI a machine without it skips with a note; under `CI=true` that is a failure.
    #[test]
    fn the_document_is_valid_asyncapi_3() {
        let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/asyncapi");
        let installed = std::path::Path::new(scripts)
            .join("node_modules/@asyncapi/parser")
            .is_dir();
        let in_ci = std::env::var("CI").is_ok_and(|value| value == "true");
        if !installed {
            assert!(
                !in_ci,
                "@asyncapi/parser is not installed in scripts/asyncapi: scripts/test installs it \
                 (npm ci --prefix scripts/asyncapi)"
            );
            eprintln!(
                "SKIPPED: @asyncapi/parser is not installed (npm ci --prefix scripts/asyncapi)"
            );
            return;
        }
        let file = std::env::temp_dir().join(format!(
            "eshop-asyncapi-{}.json",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&file, document_text("")).expect("the document is written");
        let output = std::process::Command::new("node")
            .arg(format!("{scripts}/validate.mjs"))
            .arg(&file)
            .output();
        let _ = std::fs::remove_file(&file);
        let output = match output {
            Ok(output) => output,
            Err(error) => {
                assert!(!in_ci, "node cannot run: {error}");
                eprintln!("SKIPPED: node cannot run: {error}");
                return;
            }
        };
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "not valid AsyncAPI:\n{report}");
        assert!(report.contains("VALID: AsyncAPI 3.0.0"), "{report}");
    }

    #[test]
    fn every_reference_resolves_within_the_document() {
        let document = document("");
        let text = document.to_string();
        assert!(!text.contains("#/$defs/"), "a $defs reference is left");
        let mut references = Vec::new();
        collect(&document, &mut references);
        assert!(!references.is_empty());
        for reference in references {
            let pointer = reference.trim_start_matches('#');
            assert!(
                document.pointer(pointer).is_some(),
                "{reference} does not resolve"
            );
        }
    }

    fn collect(value: &Value, references: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                for (key, value) in object {
                    match (key.as_str(), value.as_str()) {
                        ("$ref", Some(reference)) => references.push(reference.to_string()),
                        _ => collect(value, references),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect(item, references)),
            _ => {}
        }
    }

    #[test]
    fn every_event_type_is_a_message_of_the_events_channel() {
        let document = document("");
        let channel = &document["channels"]["events"]["messages"];
        for schema in event_schemas() {
            assert!(
                channel.get(&schema.key.event_type).is_some(),
                "{} is missing",
                schema.key.event_type
            );
            let payload = &document["components"]["messages"][&schema.key.event_type]["payload"];
            assert_eq!(
                payload["properties"]["event_type"]["const"],
                json!(schema.key.event_type)
            );
        }
        assert_eq!(
            document["channels"]["events"]["address"],
            "eshop.events.{aggregate_type}.{aggregate_id}"
        );
        assert_eq!(document["channels"]["seals"]["address"], "eshop.seals");
    }

    #[test]
    fn a_prefix_moves_every_address() {
        let document = document("t1234");
        assert_eq!(
            document["channels"]["events"]["address"],
            "t1234.eshop.events.{aggregate_type}.{aggregate_id}"
        );
        assert_eq!(
            document["channels"]["seals"]["address"],
            "t1234.eshop.seals"
        );
    }
}
