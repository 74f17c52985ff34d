//! One self-contained JSON Schema per event type and version: the `payload` of the envelope as
//! it is published (`{type, data?}`), with the definitions it uses. They are committed under
//! `docs/schemas/<aggregate_type>/<EventType>.v<version>.json`, so a change to an event's shape
//! shows in review and the compatibility gate (`super::compatibility`) can judge it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Map, Value};

use super::{aggregate_schemas, published_data};

/// Identifies a committed schema: `docs/schemas/<aggregate_type>/<event_type>.v<version>.json`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaKey {
    pub aggregate_type: String,
    pub event_type: String,
    pub version: String,
}

impl SchemaKey {
    pub fn relative_path(&self) -> String {
        format!(
            "{}/{}.v{}.json",
            self.aggregate_type, self.event_type, self.version
        )
    }

    /// Reads a key back from a path relative to the schemas folder.
    pub fn from_relative_path(path: &str) -> Option<Self> {
        let (aggregate_type, file) = path.split_once('/')?;
        let stem = file.strip_suffix(".json")?;
        let (event_type, version) = stem.rsplit_once(".v")?;
        Some(Self {
            aggregate_type: aggregate_type.to_string(),
            event_type: event_type.to_string(),
            version: version.to_string(),
        })
    }
}

/// An event type's published payload schema. `data` is the schema of its fields without
/// `$defs` (they are in `definitions`, referenced as `#/$defs/<name>`), or `None` for an event
/// without fields.
#[derive(Debug, Clone)]
pub struct EventSchema {
    pub key: SchemaKey,
    pub description: Option<String>,
    pub data: Option<Value>,
    pub definitions: BTreeMap<String, Value>,
}

impl EventSchema {
    /// The committed file's content: a standalone JSON Schema (2020-12) of the `payload`.
    pub fn document(&self) -> Value {
        let mut properties = Map::new();
        properties.insert(
            "type".into(),
            json!({"type": "string", "const": self.key.event_type}),
        );
        let mut required = vec![json!("type")];
        if let Some(data) = &self.data {
            properties.insert("data".into(), data.clone());
            required.push(json!("data"));
        }
        let mut document = Map::new();
        document.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        document.insert(
            "title".into(),
            json!(format!(
                "{} (eshop {} event, version {})",
                self.key.event_type, self.key.aggregate_type, self.key.version
            )),
        );
        if let Some(description) = &self.description {
            document.insert("description".into(), json!(description));
        }
        document.insert("type".into(), json!("object"));
        document.insert("properties".into(), Value::Object(properties));
        document.insert("required".into(), Value::Array(required));
        if !self.definitions.is_empty() {
            document.insert(
                "$defs".into(),
                Value::Object(self.definitions.clone().into_iter().collect()),
            );
        }
        Value::Object(document)
    }
}

/// Every event type of every aggregate, in the order of docs/events.md.
pub fn event_schemas() -> Vec<EventSchema> {
    let mut schemas = Vec::new();
    for (aggregate_type, version, schema) in aggregate_schemas() {
        let all_definitions = schema
            .get("$defs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let variants = schema
            .get("oneOf")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for variant in variants {
            let properties = &variant["properties"];
            let event_type = properties["type"]["const"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            let data = properties
                .get("data")
                .cloned()
                .map(|data| published_data(aggregate_type, data));
            let definitions = data
                .as_ref()
                .map(|data| reachable_definitions(data, &all_definitions))
                .unwrap_or_default();
            schemas.push(EventSchema {
                key: SchemaKey {
                    aggregate_type: aggregate_type.to_string(),
                    event_type,
                    version: version.to_string(),
                },
                description: variant
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                data,
                definitions,
            });
        }
    }
    schemas
}

/// The definitions `schema` refers to, directly or through other definitions.
fn reachable_definitions(
    schema: &Value,
    definitions: &Map<String, Value>,
) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    let mut pending: Vec<String> = references(schema).into_iter().collect();
    while let Some(name) = pending.pop() {
        if found.contains_key(&name) {
            continue;
        }
        if let Some(definition) = definitions.get(&name) {
            pending.extend(references(definition));
            found.insert(name, definition.clone());
        }
    }
    found
}

/// Names of the `#/$defs/<name>` references anywhere in `schema`.
pub fn references(schema: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    collect_references(schema, &mut names);
    names
}

fn collect_references(schema: &Value, names: &mut BTreeSet<String>) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object {
                if key == "$ref" {
                    if let Some(name) = value.as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
                        names.insert(name.to_string());
                    }
                } else {
                    collect_references(value, names);
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_references(item, names)),
        _ => {}
    }
}

/// The schemas committed under `dir`, by key.
pub fn read_committed(dir: &Path) -> std::io::Result<BTreeMap<SchemaKey, Value>> {
    let mut committed = BTreeMap::new();
    let Ok(aggregates) = std::fs::read_dir(dir) else {
        return Ok(committed);
    };
    for aggregate in aggregates {
        let aggregate = aggregate?;
        if !aggregate.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(aggregate.path())? {
            let file = file?;
            let relative = format!(
                "{}/{}",
                aggregate.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            );
            let Some(key) = SchemaKey::from_relative_path(&relative) else {
                continue;
            };
            let text = std::fs::read_to_string(file.path())?;
            let schema = serde_json::from_str(&text).map_err(|error| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{relative}: {error}"),
                )
            })?;
            committed.insert(key, schema);
        }
    }
    Ok(committed)
}

/// The text a schema file holds (pretty JSON with a final newline).
pub fn file_text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes the current schemas into `dir` (older versions' files stay), after the gate has
/// judged them: a breaking change without a new version and an upcaster is refused, so the
/// committed record of a published version is never rewritten incompatibly.
pub fn write_current(dir: &Path) -> Result<Vec<SchemaKey>, String> {
    let committed = read_committed(dir).map_err(|error| error.to_string())?;
    let current = event_schemas();
    let problems = super::compatibility::gate(
        &committed,
        &current,
        super::compatibility::has_shipped_upcaster,
    );
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let mut written = Vec::new();
    for schema in &current {
        let path = dir.join(schema.key.relative_path());
        let text = file_text(&schema.document());
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| error.to_string())?;
        }
        std::fs::write(&path, text).map_err(|error| format!("{}: {error}", path.display()))?;
        written.push(schema.key.clone());
    }
    Ok(written)
}

/// Where the schemas are committed.
pub fn committed_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_survives_its_path() {
        let key = SchemaKey {
            aggregate_type: "order".into(),
            event_type: "OrderPlaced".into(),
            version: "12".into(),
        };
        assert_eq!(key.relative_path(), "order/OrderPlaced.v12.json");
        assert_eq!(
            SchemaKey::from_relative_path(&key.relative_path()),
            Some(key)
        );
    }

    #[test]
    fn every_schema_carries_the_definitions_it_uses() {
        for schema in event_schemas() {
            let document = schema.document();
            let defined: BTreeSet<String> = document
                .get("$defs")
                .and_then(Value::as_object)
                .map(|defs| defs.keys().cloned().collect())
                .unwrap_or_default();
            for name in references(&document) {
                assert!(
                    defined.contains(&name),
                    "{}: #/$defs/{name} is not defined",
                    schema.key.relative_path()
                );
            }
        }
    }

    #[test]
    fn no_secret_is_in_a_published_schema() {
        for schema in event_schemas() {
            let text = schema.document().to_string();
            assert!(
                !text.contains("password_hash"),
                "{}",
                schema.key.relative_path()
            );
        }
    }

    /// Regenerate with `cargo run --bin eshop -- docs schemas docs/schemas`.
    #[test]
    fn committed_schemas_match_the_event_types() {
        let committed = read_committed(&committed_dir()).expect("docs/schemas is readable");
        for schema in event_schemas() {
            let stored = committed.get(&schema.key);
            assert!(
                stored == Some(&schema.document()),
                "docs/schemas/{} is missing or stale: run `cargo run --bin eshop -- docs schemas docs/schemas`",
                schema.key.relative_path()
            );
        }
    }
}
