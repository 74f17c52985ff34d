//! The compatibility gate: does a change to an event type's schema break a consumer?
//!
//! A consumer written against a published schema must keep reading what eshop publishes, and
//! eshop must keep loading what it stored. So, comparing a committed schema with the one the
//! Rust types generate now, these break:
//!
//! - a field removed (a consumer reads it),
//! - a field retyped: its JSON type, format, constant or set of allowed values changed, or a
//!   nested shape (object, array item, variant) broke in one of these ways,
//! - a new required field, or an optional one made required (events already stored lack it).
//!
//! Adding an optional field, and changing descriptions, do not. A breaking change is allowed
//! only under a new event version, with an upcaster that turns the old version into the new
//! shape (see [`has_shipped_upcaster`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use super::schemas::{EventSchema, SchemaKey};

/// One way a new schema breaks a consumer of the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// Where, as a JSON path (`data.lines[].quantity`).
    pub path: String,
    pub kind: BreakKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    Removed,
    Retyped { old: String, new: String },
    NewlyRequired,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BreakKind::Removed => write!(f, "`{}` was removed", self.path),
            BreakKind::Retyped { old, new } => {
                write!(f, "`{}` changed type from {old} to {new}", self.path)
            }
            BreakKind::NewlyRequired => write!(f, "`{}` is newly required", self.path),
        }
    }
}

/// How deep `$ref`s and nesting are followed (schemas of events are shallow; this only stops a
/// recursive definition from looping).
const MAX_DEPTH: usize = 32;

/// Every way `new` breaks a consumer of `old` (both standalone schemas, definitions under
/// `$defs`). Empty: compatible.
pub fn breaking_changes(old: &Value, new: &Value) -> Vec<Break> {
    let mut breaks = Vec::new();
    let schemas = Roots { old, new };
    compare(&schemas, old, new, "", 0, &mut breaks);
    breaks
}

struct Roots<'a> {
    old: &'a Value,
    new: &'a Value,
}

fn compare(
    roots: &Roots<'_>,
    old: &Value,
    new: &Value,
    path: &str,
    depth: usize,
    breaks: &mut Vec<Break>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let old = resolve(old, roots.old);
    let new = resolve(new, roots.new);
    let (old_shape, new_shape) = (Shape::of(old), Shape::of(new));
    if old_shape != new_shape {
        breaks.push(Break {
            path: display_path(path),
            kind: BreakKind::Retyped {
                old: old_shape.to_string(),
                new: new_shape.to_string(),
            },
        });
        return;
    }

    let old_properties = properties(old);
    let new_properties = properties(new);
    for (name, old_property) in &old_properties {
        let field_path = join(path, name);
        match new_properties.get(name) {
            None => breaks.push(Break {
                path: field_path,
                kind: BreakKind::Removed,
            }),
            Some(new_property) => compare(
                roots,
                old_property,
                new_property,
                &field_path,
                depth + 1,
                breaks,
            ),
        }
    }
    let old_required = required(old);
    for name in required(new).difference(&old_required) {
        breaks.push(Break {
            path: join(path, name),
            kind: BreakKind::NewlyRequired,
        });
    }

    if let (Some(old_items), Some(new_items)) = (old.get("items"), new.get("items")) {
        compare(
            roots,
            old_items,
            new_items,
            &format!("{path}[]"),
            depth + 1,
            breaks,
        );
    }
    for keyword in ["oneOf", "anyOf", "allOf"] {
        let old_variants = old.get(keyword).and_then(Value::as_array);
        let new_variants = new.get(keyword).and_then(Value::as_array);
        if let (Some(old_variants), Some(new_variants)) = (old_variants, new_variants) {
            for (index, (old_variant, new_variant)) in
                old_variants.iter().zip(new_variants).enumerate()
            {
                compare(
                    roots,
                    old_variant,
                    new_variant,
                    &format!("{path}<{keyword} {index}>"),
                    depth + 1,
                    breaks,
                );
            }
        }
    }
}

/// Follows `#/$defs/<name>` references within `root`.
fn resolve<'a>(mut schema: &'a Value, root: &'a Value) -> &'a Value {
    for _ in 0..MAX_DEPTH {
        let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|reference| reference.strip_prefix("#/$defs/"))
        else {
            break;
        };
        match root.get("$defs").and_then(|defs| defs.get(name)) {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

/// What a consumer's parser sees of a value at one level: its JSON types, format, constant,
/// allowed values, and how many variants it has.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    types: BTreeSet<String>,
    format: Option<String>,
    constant: Option<String>,
    allowed: Option<BTreeSet<String>>,
    variants: BTreeMap<&'static str, usize>,
}

impl Shape {
    fn of(schema: &Value) -> Self {
        let mut types: BTreeSet<String> = match schema.get("type") {
            Some(Value::String(name)) => [name.clone()].into(),
            Some(Value::Array(names)) => names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => BTreeSet::new(),
        };
        if types.is_empty() && schema.get("properties").is_some() {
            types.insert("object".into());
        }
        let variants = ["oneOf", "anyOf", "allOf"]
            .into_iter()
            .filter_map(|keyword| {
                let count = schema.get(keyword)?.as_array()?.len();
                Some((keyword, count))
            })
            .collect();
        Self {
            types,
            format: schema
                .get("format")
                .and_then(Value::as_str)
                .map(str::to_string),
            constant: schema.get("const").map(Value::to_string),
            allowed: schema
                .get("enum")
                .and_then(Value::as_array)
                .map(|values| values.iter().map(Value::to_string).collect()),
            variants,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.types.is_empty() {
            parts.push(self.types.iter().cloned().collect::<Vec<_>>().join(" or "));
        }
        if let Some(format) = &self.format {
            parts.push(format!("format {format}"));
        }
        if let Some(constant) = &self.constant {
            parts.push(format!("= {constant}"));
        }
        if let Some(allowed) = &self.allowed {
            parts.push(format!(
                "one of {}",
                allowed.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for (keyword, count) in &self.variants {
            parts.push(format!("{keyword} of {count}"));
        }
        if parts.is_empty() {
            f.write_str("any")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

fn properties(schema: &Value) -> Map<String, Value> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn required(schema: &Value) -> BTreeSet<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "(the payload)".to_string()
    } else {
        path.to_string()
    }
}

/// Whether eshop ships an upcaster that reads `event_type` at `version` (turns it into a newer
/// shape). No event type has changed shape since version 1, so none is shipped yet; when one
/// is, this asks the event store's upcasters (`EventUpcaster::can_upcast`).
pub fn has_shipped_upcaster(event_type: &str, version: &str) -> bool {
    eshop_domain::upcasting::SHIPPED
        .iter()
        .any(|step| step.event_type == event_type && step.from_version == version)
}

/// Judges the current schemas against the committed ones. For every event type:
///
/// - its committed schema of the same version must not break (a changed shape needs a new
///   version, since consumers and stored events of that version exist);
/// - each older committed version it breaks needs an upcaster (`has_upcaster(event type,
///   old version)`), or stored events of that version no longer load;
/// - a committed event type must still exist.
///
/// Returns one sentence per problem; empty means the gate passes.
pub fn gate(
    committed: &BTreeMap<SchemaKey, Value>,
    current: &[EventSchema],
    has_upcaster: impl Fn(&str, &str) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for schema in current {
        let document = schema.document();
        let key = &schema.key;
        let older = committed.iter().filter(|(committed_key, _)| {
            committed_key.aggregate_type == key.aggregate_type
                && committed_key.event_type == key.event_type
        });
        for (committed_key, committed_schema) in older {
            let breaks = breaking_changes(committed_schema, &document);
            if breaks.is_empty() {
                continue;
            }
            let reasons = breaks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            if committed_key.version == key.version {
                problems.push(format!(
                    "{} v{} changed in a way that breaks its consumers ({reasons}): publish it \
                     as a new event version (bump EVENT_VERSION) with an upcaster from v{}",
                    key.event_type, key.version, key.version
                ));
            } else if !has_upcaster(&key.event_type, &committed_key.version) {
                problems.push(format!(
                    "{} v{} breaks v{} ({reasons}) and no upcaster reads v{}: ship one",
                    key.event_type, key.version, committed_key.version, committed_key.version
                ));
            }
        }
    }
    let current_types: BTreeSet<(&str, &str)> = current
        .iter()
        .map(|schema| {
            (
                schema.key.aggregate_type.as_str(),
                schema.key.event_type.as_str(),
            )
        })
        .collect();
    let removed: BTreeSet<(&str, &str)> = committed
        .keys()
        .map(|key| (key.aggregate_type.as_str(), key.event_type.as_str()))
        .filter(|pair| !current_types.contains(pair))
        .collect();
    for (aggregate_type, event_type) in removed {
        problems.push(format!(
            "{aggregate_type} event {event_type} was removed: stored events of it must still \
             load, and consumers may still receive it"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_placed() -> Value {
        json!({
            "type": "object",
            "properties": {
                "type": {"type": "string", "const": "OrderPlaced"},
                "data": {
                    "type": "object",
                    "properties": {
                        "customer_id": {"type": "string", "format": "uuid"},
                        "lines": {"type": "array", "items": {"$ref": "#/$defs/OrderLine"}},
                        "note": {"type": ["string", "null"]}
                    },
                    "required": ["customer_id", "lines"]
                }
            },
            "required": ["type", "data"],
            "$defs": {
                "OrderLine": {
                    "type": "object",
                    "properties": {
                        "product_id": {"type": "string", "format": "uuid"},
                        "quantity": {"type": "integer", "format": "int64"}
                    },
                    "required": ["product_id", "quantity"]
                }
            }
        })
    }

    fn edited(edit: impl FnOnce(&mut Value)) -> Value {
        let mut schema = order_placed();
        edit(&mut schema);
        schema
    }

    #[test]
    fn the_same_schema_is_compatible() {
        assert_eq!(breaking_changes(&order_placed(), &order_placed()), vec![]);
    }

    #[test]
    fn an_added_optional_field_is_compatible() {
        let new = edited(|schema| {
            schema["properties"]["data"]["properties"]["gift_wrap"] = json!({"type": "boolean"});
        });
        assert_eq!(breaking_changes(&order_placed(), &new), vec![]);
    }

    #[test]
    fn a_changed_description_is_compatible() {
        let new = edited(|schema| {
            schema["properties"]["data"]["description"] = json!("now described");
        });
        assert_eq!(breaking_changes(&order_placed(), &new), vec![]);
    }

    #[test]
    fn a_removed_field_breaks() {
        let new = edited(|schema| {
            schema["properties"]["data"]["properties"]
                .as_object_mut()
                .map(|fields| fields.remove("note"));
        });
        assert_eq!(
            breaking_changes(&order_placed(), &new),
            vec![Break {
                path: "data.note".into(),
                kind: BreakKind::Removed
            }]
        );
    }

    #[test]
    fn a_retyped_field_breaks() {
        let new = edited(|schema| {
            schema["properties"]["data"]["properties"]["customer_id"] = json!({"type": "integer"});
        });
        let breaks = breaking_changes(&order_placed(), &new);
        assert_eq!(breaks.len(), 1, "{breaks:?}");
        assert_eq!(breaks[0].path, "data.customer_id");
        assert!(matches!(breaks[0].kind, BreakKind::Retyped { .. }));
    }

    #[test]
    fn a_field_made_nullable_breaks() {
        let new = edited(|schema| {
            schema["properties"]["data"]["properties"]["customer_id"] =
                json!({"type": ["string", "null"], "format": "uuid"});
        });
        assert_eq!(breaking_changes(&order_placed(), &new).len(), 1);
    }

    #[test]
    fn a_retyped_field_inside_a_definition_breaks() {
        let new = edited(|schema| {
            schema["$defs"]["OrderLine"]["properties"]["quantity"] = json!({"type": "string"});
        });
        let breaks = breaking_changes(&order_placed(), &new);
        assert_eq!(breaks.len(), 1, "{breaks:?}");
        assert_eq!(breaks[0].path, "data.lines[].quantity");
    }

    #[test]
    fn a_new_required_field_breaks() {
        let new = edited(|schema| {
            schema["properties"]["data"]["properties"]["currency"] = json!({"type": "string"});
            schema["properties"]["data"]["required"] = json!(["customer_id", "lines", "currency"]);
        });
        assert_eq!(
            breaking_changes(&order_placed(), &new),
            vec![Break {
                path: "data.currency".into(),
                kind: BreakKind::NewlyRequired
            }]
        );
    }

    #[test]
    fn an_optional_field_made_required_breaks() {
        let new = edited(|schema| {
            schema["properties"]["data"]["required"] = json!(["customer_id", "lines", "note"]);
        });
        assert_eq!(
            breaking_changes(&order_placed(), &new),
            vec![Break {
                path: "data.note".into(),
                kind: BreakKind::NewlyRequired
            }]
        );
    }

    #[test]
    fn a_new_allowed_value_breaks() {
        let old = json!({"type": "object", "properties": {"method": {"type": "string", "enum": ["card", "balance"]}}});
        let new = json!({"type": "object", "properties": {"method": {"type": "string", "enum": ["card", "balance", "crypto"]}}});
        assert_eq!(breaking_changes(&old, &new).len(), 1);
    }

    fn event(version: &str, document: Value) -> (SchemaKey, Value, EventSchema) {
        let key = SchemaKey {
            aggregate_type: "order".into(),
            event_type: "OrderPlaced".into(),
            version: version.into(),
        };
        // An EventSchema whose document() is exactly `document`.
        let data = document["properties"]["data"].clone();
        let definitions = document["$defs"]
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let schema = EventSchema {
            key: key.clone(),
            description: None,
            data: Some(data),
            definitions,
        };
        (key, schema.document(), schema)
    }

    #[test]
    fn the_gate_passes_an_added_optional_field_in_the_same_version() {
        let (key, committed, _) = event("1", order_placed());
        let (_, _, current) = event(
            "1",
            edited(|schema| {
                schema["properties"]["data"]["properties"]["gift_wrap"] =
                    json!({"type": "boolean"});
            }),
        );
        let committed = BTreeMap::from([(key, committed)]);
        assert_eq!(
            gate(&committed, &[current], |_, _| false),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_gate_fails_a_breaking_change_in_the_same_version() {
        let (key, committed, _) = event("1", order_placed());
        let (_, _, current) = event(
            "1",
            edited(|schema| {
                schema["properties"]["data"]["properties"]
                    .as_object_mut()
                    .map(|fields| fields.remove("note"));
            }),
        );
        let committed = BTreeMap::from([(key, committed)]);
        // An upcaster does not help: consumers of v1 would receive the new shape as v1.
        let problems = gate(&committed, &[current], |_, _| true);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("data.note"), "{}", problems[0]);
    }

    #[test]
    fn the_gate_needs_an_upcaster_for_a_breaking_new_version() {
        let (key, committed, _) = event("1", order_placed());
        let (_, _, current) = event(
            "2",
            edited(|schema| {
                schema["properties"]["data"]["properties"]
                    .as_object_mut()
                    .map(|fields| fields.remove("note"));
            }),
        );
        let committed = BTreeMap::from([(key, committed)]);
        let current = [current];
        let without = gate(&committed, &current, |_, _| false);
        assert_eq!(without.len(), 1, "{without:?}");
        assert!(
            without[0].contains("no upcaster reads v1"),
            "{}",
            without[0]
        );
        let with = gate(&committed, &current, |event_type, version| {
            event_type == "OrderPlaced" && version == "1"
        });
        assert_eq!(with, Vec::<String>::new());
    }

    #[test]
    fn the_gate_passes_a_new_version_that_breaks_nothing_without_an_upcaster() {
        let (key, committed, _) = event("1", order_placed());
        let (_, _, current) = event("2", order_placed());
        let committed = BTreeMap::from([(key, committed)]);
        assert_eq!(
            gate(&committed, &[current], |_, _| false),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_gate_fails_a_removed_event_type() {
        let (key, committed, _) = event("1", order_placed());
        let committed = BTreeMap::from([(key, committed)]);
        let problems = gate(&committed, &[], |_, _| true);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("OrderPlaced was removed"));
    }

    /// The gate itself, over the committed schemas and the Rust types as they are now.
    #[test]
    fn event_types_change_compatibly_or_under_a_new_version_with_an_upcaster() {
        let committed =
            super::super::schemas::read_committed(&super::super::schemas::committed_dir())
                .expect("docs/schemas is readable");
        assert!(!committed.is_empty(), "docs/schemas holds no schema");
        let problems = gate(
            &committed,
            &super::super::schemas::event_schemas(),
            has_shipped_upcaster,
        );
        assert!(
            problems.is_empty(),
            "the compatibility gate failed:\n{}",
            problems.join("\n")
        );
    }
}
