//! Old events keep loading. Every event type's stored form is a committed fixture
//! (`fixtures/events/<aggregate>/<EventType>.v<version>.json`); each is loaded through the
//! shipped upcasters into the current type, and a fixture of the current version must come out
//! byte for byte the same: a shape that changes without a new version (and an upcaster from the
//! old one) fails here. An old fixture kept beside the new one is its upcaster's test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cqrs_es::DomainEvent;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use eshop_domain::upcasting::{Upcaster, Upcasters};
use eshop_domain::{calendar, cart, category, order, payment, product, review, user, wishlist};

#[derive(serde::Deserialize)]
struct Fixture {
    aggregate_type: String,
    event_type: String,
    event_version: String,
    payload: Value,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The event type names of an aggregate's event enum, from its JSON Schema.
fn event_types<E: schemars::JsonSchema>() -> BTreeSet<String> {
    let schema = serde_json::to_value(schemars::schema_for!(E)).expect("schema");
    schema["oneOf"]
        .as_array()
        .expect("one schema per event type")
        .iter()
        .map(|variant| {
            variant["properties"]["type"]["const"]
                .as_str()
                .expect("a type name")
                .to_string()
        })
        .collect()
}

/// Loads every fixture of one aggregate and checks it against the current type.
fn check_aggregate<E>(aggregate_type: &str, current_version: &str, upcasters: &Upcasters)
where
    E: DomainEvent + DeserializeOwned + Serialize + schemars::JsonSchema,
{
    let dir = fixtures_dir().join("events").join(aggregate_type);
    let mut current = BTreeSet::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    for path in files {
        let fixture = read(&path);
        let name = path.display();
        assert_eq!(fixture.aggregate_type, aggregate_type, "{name}");
        let (version, payload) = upcasters.upcast(
            &fixture.event_type,
            &fixture.event_version,
            fixture.payload.clone(),
        );
        assert_eq!(
            version, current_version,
            "{name}: no upcaster reaches the current version"
        );
        let event: E = serde_json::from_value(payload.clone())
            .unwrap_or_else(|e| panic!("{name} does not load: {e}"));
        assert_eq!(event.event_type(), fixture.event_type, "{name}");
        assert_eq!(event.event_version(), current_version, "{name}");
        if fixture.event_version == current_version {
            assert_eq!(
                serde_json::to_value(&event).expect("serializes"),
                fixture.payload,
                "{name}: the stored shape changed; bump the version and add an upcaster"
            );
            current.insert(fixture.event_type);
        }
    }
    let missing: Vec<String> = event_types::<E>().difference(&current).cloned().collect();
    assert!(
        missing.is_empty(),
        "{aggregate_type}: no fixture of the current version for {missing:?}"
    );
}

#[test]
fn every_event_types_stored_form_loads_into_the_current_type() {
    let upcasters = Upcasters::shipped();
    check_aggregate::<user::UserEvent>("user", user::EVENT_VERSION, &upcasters);
    check_aggregate::<product::ProductEvent>("product", product::EVENT_VERSION, &upcasters);
    check_aggregate::<order::OrderEvent>("order", order::EVENT_VERSION, &upcasters);
    check_aggregate::<payment::PaymentEvent>("payment", payment::EVENT_VERSION, &upcasters);
    check_aggregate::<cart::CartEvent>("cart", cart::EVENT_VERSION, &upcasters);
    check_aggregate::<wishlist::WishlistEvent>("wishlist", wishlist::EVENT_VERSION, &upcasters);
    check_aggregate::<review::ReviewEvent>("review", review::EVENT_VERSION, &upcasters);
    check_aggregate::<calendar::CalendarEventEvent>(
        "calendar_event",
        calendar::EVENT_VERSION,
        &upcasters,
    );
    check_aggregate::<category::CategoryEvent>("category", category::EVENT_VERSION, &upcasters);
}

#[test]
fn fixtures_name_their_file() {
    for aggregate in std::fs::read_dir(fixtures_dir().join("events")).expect("dir") {
        for file in std::fs::read_dir(aggregate.expect("entry").path()).expect("dir") {
            let path = file.expect("entry").path();
            let fixture = read(&path);
            let expected = format!("{}.v{}.json", fixture.event_type, fixture.event_version);
            assert_eq!(
                path.file_name().and_then(|n| n.to_str()),
                Some(expected.as_str())
            );
            assert_eq!(fixture.payload["type"], fixture.event_type.as_str());
        }
    }
}

/// The money fields of a deposit before they were named in cents (invariant 2).
fn deposit_amounts_in_cents(mut payload: Value) -> Value {
    if let Some(data) = payload.get_mut("data").and_then(Value::as_object_mut) {
        for (old, new) in [("amount", "amount_cents"), ("balance", "balance_cents")] {
            if let Some(value) = data.remove(old) {
                data.insert(new.to_string(), value);
            }
        }
    }
    payload
}

/// How an upcaster is tested: against the old form, kept as a fixture. (This one is an example
/// of the mechanism: `upcasting::SHIPPED` is empty while no shape has changed.)
#[test]
fn an_upcaster_turns_an_old_fixture_into_the_current_event() {
    let old = read(&fixtures_dir().join("upcasting/WalletDeposited.v0.json"));
    let upcasters = Upcasters::new(vec![Upcaster {
        event_type: "WalletDeposited",
        from_version: "0",
        to_version: user::EVENT_VERSION,
        upcast: deposit_amounts_in_cents,
    }]);
    assert!(
        serde_json::from_value::<user::UserEvent>(old.payload.clone()).is_err(),
        "the old form does not load as it is"
    );
    let (version, payload) = upcasters.upcast(&old.event_type, &old.event_version, old.payload);
    assert_eq!(version, user::EVENT_VERSION);
    let event: user::UserEvent = serde_json::from_value(payload).expect("loads once upcast");
    assert_eq!(
        event,
        user::UserEvent::WalletDeposited {
            amount_cents: 2500,
            balance_cents: 4000
        }
    );
    // Through cqrs-es's interface too, as the event store applies it.
    let stored = cqrs_es::persist::SerializedEvent::new(
        "u1".into(),
        3,
        "user".into(),
        old.event_type.clone(),
        old.event_version.clone(),
        read(&fixtures_dir().join("upcasting/WalletDeposited.v0.json")).payload,
        Value::Null,
    );
    let upcast = cqrs_es::persist::EventUpcaster::upcast(&upcasters, stored);
    assert_eq!(upcast.event_version, user::EVENT_VERSION);
    assert!(serde_json::from_value::<user::UserEvent>(upcast.payload).is_ok());
}
