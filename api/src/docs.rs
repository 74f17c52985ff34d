//! `docs/events.md`, generated from the Rust event types so it cannot drift from them
//! (a test compares the file with this output; `eshop docs events` prints it). The AsyncAPI
//! document and the committed schemas under `docs/schemas/` come from the same types.

pub mod asyncapi;
pub mod compatibility;
pub mod openapi;
pub mod schemas;

use std::fmt::Write;

use serde_json::Value;

use eshop_domain::calendar::{self, CalendarEventEvent};
use eshop_domain::cart::{self, CartEvent};
use eshop_domain::category::{self, CategoryEvent};
use eshop_domain::movie::{self, MovieEvent};
use eshop_domain::order::{self, OrderEvent};
use eshop_domain::payment::{self, PaymentEvent};
use eshop_domain::product::{self, ProductEvent};
use eshop_domain::review::{self, ReviewEvent};
use eshop_domain::user::{self, UserEvent};
use eshop_domain::wishlist::{self, WishlistEvent};

const PREAMBLE: &str = r#"# eshop events

This file is generated from the event types in `domain/` by `eshop docs events`; a test fails
when it is stale. It is the contract for downstream consumers of the NATS stream.

## The stream

- JetStream stream `ESHOP_EVENTS` (file storage, duplicate window 10 minutes), subjects
  `eshop.events.<aggregate_type>.<aggregate_id>`: `eshop.events.user.>` carries every user event,
  `eshop.events.product.<id>` one product's.
- Every committed event is published exactly once into the stream (the relay publishes with
  `Nats-Msg-Id` = the event's global position, so a re-publish after a crash is dropped).
  Delivery to a consumer is at least once: make consumers idempotent (skip an event whose
  `sequence` is not above what you last applied for that aggregate).
- Order: each aggregate's events arrive in `sequence` order (1, 2, 3, … without gaps). Across
  aggregates the order is commit order; `position` is unique but not ascending in the stream.
- The event store in Postgres is the record; the stream can be rebuilt from it.

## The envelope

Each message body is JSON:

| field | type | meaning |
| --- | --- | --- |
| `position` | integer | global position in the event store (unique) |
| `aggregate_type` | string | `user`, `product`, `order`, `payment`, `cart`, `wishlist` or `review` |
| `aggregate_id` | string | the aggregate's UUID |
| `sequence` | integer | the event's place in its aggregate's stream, from 1 |
| `event_type` | string | one of the types below |
| `event_version` | string | the version of that type's shape |
| `recorded_at` | string | RFC 3339 time of the append |
| `metadata` | object | `event_id`, `command_id`, `correlation_id`, `causation_id` (UUIDs), `actor` (a user id or `system`), `request_id` |
| `payload` | object | `{"type": <event_type>, "data": <the fields below>}` (`data` absent for events without fields) |

Headers: `Nats-Msg-Id` (the position), `Eshop-Event-Type`, `Eshop-Aggregate-Type`,
`Eshop-Aggregate-Id`, `Eshop-Sequence`, `Eshop-Event-Id`, `Eshop-Correlation-Id`,
`Eshop-Causation-Id`; and the CloudEvents 1.0 attributes (NATS binding, binary mode: the body is
the event's `data`): `ce-specversion` (`1.0`), `ce-id` (the event id), `ce-source`
(`/eshop/<aggregate_type>`), `ce-type` (`eshop.<aggregate_type>.<event_type>.v<event_version>`),
`ce-time` (`recorded_at`), `ce-subject` (the aggregate id), `ce-datacontenttype`
(`application/json`).

The same contract as an AsyncAPI 3.0 document: `docs/asyncapi.json` (`eshop docs asyncapi`,
or `GET /api/asyncapi.json` of a running eshop). Each event type's payload schema is committed
under `docs/schemas/<aggregate_type>/<EventType>.v<version>.json`. History the stream no longer
holds (`ESHOP_EVENTS_MAX_AGE`) can be republished to a stream of your own with
`eshop relay replay`.

Secrets stay in the event store and are never published: `UserRegistered` and
`PasswordChanged` are stored with the password's argon2id hash, which the relay removes.

Money is in integer cents (fields ending in `_cents`).

Personal data is sealed. The personal fields of `user` events (`email`, `first_name`,
`last_name`) are stored and published as `{"sealed": "<base64url>"}`: XChaCha20-Poly1305 with a
key per user, bound to the aggregate and the field. eshop's own consumers open them with the
key; erasing a user (`UserErased`) deletes the key, after which they open to nothing, in every
replay. A downstream consumer that needs an address asks the API, not the stream. The schemas
below show these fields as they are before sealing.

## Versioning

A change to an event's shape bumps its `event_version`; old versions stay readable (the store
upcasts them when loading aggregates). New optional fields may appear without a bump. A test
(the compatibility gate) compares the types with the committed schemas and fails on a removed
or retyped field or a new required one unless the event has a new version and an upcaster.
"#;

fn render_aggregate(out: &mut String, aggregate_type: &str, version: &str, schema: &Value) {
    let _ = writeln!(out, "\n## `{aggregate_type}` events (version {version})\n");
    let variants = schema
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for variant in variants {
        let properties = &variant["properties"];
        let name = properties["type"]["const"].as_str().unwrap_or("?");
        let _ = writeln!(out, "### `{name}`\n");
        if let Some(description) = variant.get("description").and_then(Value::as_str) {
            let _ = writeln!(out, "{description}\n");
        }
        match properties.get("data").cloned() {
            Some(data) => {
                let data = published_data(aggregate_type, data);
                let pretty = serde_json::to_string_pretty(&data).unwrap_or_default();
                let _ = writeln!(out, "JSON Schema of `data`:\n\n```json\n{pretty}\n```\n");
            }
            None => {
                let _ = writeln!(out, "No `data`.\n");
            }
        }
    }
    if let Some(definitions) = schema.get("$defs") {
        let pretty = serde_json::to_string_pretty(definitions).unwrap_or_default();
        let _ = writeln!(
            out,
            "### Definitions used above (`#/$defs/…`)\n\n```json\n{pretty}\n```"
        );
    }
}

/// Each aggregate type with its events' version and the JSON Schema of its event enum (a
/// `oneOf` of `{type, data}` objects, definitions under `$defs`).
pub fn aggregate_schemas() -> Vec<(&'static str, &'static str, Value)> {
    let aggregates = [
        (
            "user",
            user::EVENT_VERSION,
            schemars::schema_for!(UserEvent),
        ),
        (
            "product",
            product::EVENT_VERSION,
            schemars::schema_for!(ProductEvent),
        ),
        (
            "order",
            order::EVENT_VERSION,
            schemars::schema_for!(OrderEvent),
        ),
        (
            "payment",
            payment::EVENT_VERSION,
            schemars::schema_for!(PaymentEvent),
        ),
        (
            "cart",
            cart::EVENT_VERSION,
            schemars::schema_for!(CartEvent),
        ),
        (
            "wishlist",
            wishlist::EVENT_VERSION,
            schemars::schema_for!(WishlistEvent),
        ),
        (
            "review",
            review::EVENT_VERSION,
            schemars::schema_for!(ReviewEvent),
        ),
        (
            "movie",
            movie::EVENT_VERSION,
            schemars::schema_for!(MovieEvent),
        ),
        (
            "calendar_event",
            calendar::EVENT_VERSION,
            schemars::schema_for!(CalendarEventEvent),
        ),
        (
            "category",
            category::EVENT_VERSION,
            schemars::schema_for!(CategoryEvent),
        ),
    ];
    aggregates
        .into_iter()
        .map(|(aggregate_type, version, schema)| {
            (
                aggregate_type,
                version,
                serde_json::to_value(schema).unwrap_or_default(),
            )
        })
        .collect()
}

/// The schema of an event's `data` as it is published: without the fields that stay in the
/// store (see `eshop_domain::unpublished_fields`).
pub fn published_data(aggregate_type: &str, mut data: Value) -> Value {
    for field in eshop_domain::unpublished_fields(aggregate_type) {
        if let Some(fields) = data.get_mut("properties").and_then(Value::as_object_mut) {
            fields.remove(*field);
        }
        if let Some(required) = data.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|name| name != field);
        }
    }
    data
}

pub fn events_markdown() -> String {
    let mut out = PREAMBLE.to_string();
    for (aggregate_type, version, schema) in aggregate_schemas() {
        render_aggregate(&mut out, aggregate_type, version, &schema);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regenerate with `cargo run --bin eshop -- docs events > docs/events.md`.
    #[test]
    fn docs_events_md_matches_the_event_types() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == events_markdown(),
            "docs/events.md is stale: run `cargo run --bin eshop -- docs events > docs/events.md`"
        );
    }

    #[test]
    fn every_event_type_is_documented() {
        let markdown = events_markdown();
        for name in [
            "UserRegistered",
            "ProfileChanged",
            "EmailChanged",
            "WalletDeposited",
            "UserDeactivated",
            "UserReactivated",
            "RoleGranted",
            "RoleRevoked",
            "ProductAdded",
            "ProductDetailsUpdated",
            "ProductPriceChanged",
            "ProductRestocked",
            "ProductRemoved",
            "StockReserved",
            "StockReleased",
            "ReservationCommitted",
            "WalletDebited",
            "WalletRefunded",
            "OrderPlaced",
            "OrderStockReserved",
            "OrderPaid",
            "OrderConfirmed",
            "OrderCancelled",
            "OrderFailed",
            "OrderPaymentRetried",
            "PaymentRequested",
            "PaymentCaptured",
            "PaymentDeclined",
            "PaymentRefunded",
            "CartItemSet",
            "CartItemRemoved",
            "CartCheckedOut",
            "WishlistItemAdded",
            "WishlistItemRemoved",
            "ReviewWritten",
        ] {
            assert!(
                markdown.contains(&format!("### `{name}`")),
                "{name} is missing"
            );
        }
    }
}
