//! The OpenAPI 3.1 document of the HTTP API (`GET /api/openapi.json`, `eshop docs openapi`).
//!
//! Every schema comes from the Rust type the route reads or answers (schemars, JSON Schema
//! 2020-12, which is OpenAPI 3.1's dialect), so a changed field changes the document. What the
//! types cannot say (which route, who may call it, which problems it answers) is said once per
//! route in `operations`, next to nothing else: to document a new route, add one
//! `spec.route(…)…add()` there (the tests name a route the router serves and the document
//! lacks).

mod operations;
mod problems;

use std::collections::HashSet;
use std::sync::OnceLock;

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

pub use problems::problem_codes;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    /// Any signed-in user.
    User,
    Admin,
    /// Auditors and admins.
    Auditor,
    /// Anyone; a bearer token, when sent, must be valid.
    OptionalUser,
}

/// The document being built: the schemas met so far and the paths.
pub struct Spec {
    generator: SchemaGenerator,
    paths: Map<String, Value>,
    /// In the order `operations` first names them: the explorer shows them so.
    tags: Vec<String>,
}

impl Spec {
    fn new() -> Self {
        let settings = SchemaSettings::draft2020_12().with(|settings| {
            settings.definitions_path = "/components/schemas".into();
        });
        Self {
            generator: settings.into_generator(),
            paths: Map::new(),
            tags: Vec::new(),
        }
    }

    /// The schema of `T`: a `$ref` into `components/schemas` for named types.
    pub fn schema<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    /// The operation `method path` (`method` in capitals, `path` as the router spells it).
    pub fn route(&mut self, method: &str, path: &str, summary: &str) -> Operation<'_> {
        let parameters = path_parameters(path);
        Operation {
            spec: self,
            method: method.to_ascii_lowercase(),
            path: path.to_string(),
            tag: tag_of(path),
            access: Access::Anyone,
            read: method.eq_ignore_ascii_case("GET"),
            command: !method.eq_ignore_ascii_case("GET"),
            background: !method.eq_ignore_ascii_case("GET"),
            parameters,
            body: None,
            answers: Map::new(),
            problems: Vec::new(),
            value: json!({ "summary": summary }),
        }
    }
}

/// One operation under construction; `add` puts it into the document.
#[must_use = "call .add() to put the operation into the document"]
pub struct Operation<'a> {
    spec: &'a mut Spec,
    method: String,
    path: String,
    tag: String,
    access: Access,
    read: bool,
    /// Reads `Idempotency-Key`, `If-Match`, `X-Correlation-Id`.
    command: bool,
    /// Honours `Prefer: respond-async`.
    background: bool,
    parameters: Vec<Value>,
    body: Option<Value>,
    answers: Map<String, Value>,
    problems: Vec<u16>,
    value: Value,
}

impl Operation<'_> {
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    pub fn description(mut self, text: &str) -> Self {
        self.value["description"] = json!(text);
        self
    }

    /// The query parameters: the fields of `T` (the struct the handler reads the query into).
    pub fn query<T: JsonSchema>(mut self) -> Self {
        let root = SchemaSettings::draft2020_12()
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value();
        let required: Vec<&str> = root["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(properties) = root["properties"].as_object() {
            for (name, schema) in properties {
                let mut schema = schema.clone();
                let description = schema
                    .as_object_mut()
                    .and_then(|fields| fields.remove("description"));
                not_null(&mut schema);
                let mut parameter = json!({
                    "name": name,
                    "in": "query",
                    "required": required.contains(&name.as_str()),
                    "schema": schema,
                });
                if let Some(description) = description {
                    parameter["description"] = description;
                }
                self.parameters.push(parameter);
            }
        }
        self
    }

    /// A JSON request body of type `T`.
    pub fn body<T: JsonSchema>(mut self) -> Self {
        let schema = self.spec.schema::<T>();
        self.body = Some(json!({ "application/json": { "schema": schema } }));
        self
    }

    /// A request body given as its `content` map (media type → `{schema}`): uploads, or text
    /// in more than one format.
    pub fn body_content(mut self, content: Value) -> Self {
        self.body = Some(content);
        self
    }

    /// A JSON answer of type `T` with `status`.
    pub fn answer<T: JsonSchema>(self, status: u16, description: &str) -> Self {
        let schema = self.spec.schema::<T>();
        self.answer_schema(status, description, schema)
    }

    /// A JSON answer whose schema is given as it is.
    pub fn answer_schema(mut self, status: u16, description: &str, schema: Value) -> Self {
        self.answers.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": { "application/json": { "schema": schema } }
            }),
        );
        self
    }

    /// An answer with a body that is not JSON (or none: `content_type` empty).
    pub fn answer_raw(mut self, status: u16, description: &str, content_type: &str) -> Self {
        let mut answer = json!({ "description": description });
        if !content_type.is_empty() {
            answer["content"] = json!({ content_type: { "schema": { "type": "string" } } });
        }
        self.answers.insert(status.to_string(), answer);
        self
    }

    /// The problem+json answers this operation gives besides the ones every operation of its
    /// kind can give (see `finish`).
    pub fn problems(mut self, statuses: &[u16]) -> Self {
        self.problems.extend_from_slice(statuses);
        self
    }

    /// Not a command: no `Idempotency-Key`, `If-Match` or `Prefer: respond-async`.
    pub fn not_a_command(mut self) -> Self {
        self.command = false;
        self.background = false;
        self
    }

    /// A command whose handler does not read `Idempotency-Key`, `If-Match` or
    /// `X-Correlation-Id` (it still honours `Prefer: respond-async`).
    pub fn without_command_headers(mut self) -> Self {
        self.command = false;
        self
    }

    /// Runs as it is even with `Prefer: respond-async` (it is a background task already, or it
    /// answers with credentials and refuses with 400).
    pub fn not_in_background(mut self) -> Self {
        self.background = false;
        self
    }

    pub fn add(self) {
        let Operation {
            spec,
            method,
            path,
            tag,
            access,
            read,
            command,
            background,
            mut parameters,
            body,
            mut answers,
            mut problems,
            mut value,
        } = self;
        value["operationId"] = json!(operation_id(&method, &path));
        value["tags"] = json!([tag]);
        if !spec.tags.contains(&tag) {
            spec.tags.push(tag);
        }
        match access {
            Access::Anyone => {}
            Access::OptionalUser => {
                value["security"] = json!([{}, { "bearer": [] }]);
                problems.push(401);
            }
            Access::User => {
                value["security"] = json!([{ "bearer": [] }]);
                problems.push(401);
            }
            Access::Admin | Access::Auditor => {
                value["security"] = json!([{ "bearer": [] }]);
                problems.extend([401, 403]);
            }
        }
        if matches!(access, Access::User | Access::OptionalUser) && !read {
            // Auditors are read-only: any command they send is refused.
            problems.push(403);
        }
        if command {
            parameters.extend([
                json!({"$ref": "#/components/parameters/IdempotencyKey"}),
                json!({"$ref": "#/components/parameters/IfMatch"}),
                json!({"$ref": "#/components/parameters/CorrelationId"}),
            ]);
            // 422 `idempotency_key_reused` too: a key sent before with another request.
            problems.extend([400, 412, 422]);
        }
        if background {
            // A token sent along is checked before the request is queued.
            problems.push(401);
            parameters.push(json!({"$ref": "#/components/parameters/Prefer"}));
            // An operation that answers 202 itself says so, Queued among its answers.
            answers
                .entry("202")
                .or_insert_with(|| json!({"$ref": "#/components/responses/Queued"}));
        }
        if let Some(content) = body {
            value["requestBody"] = json!({ "required": true, "content": content });
            problems.extend([400, 413, 415, 422]);
        }
        if parameters
            .iter()
            .any(|parameter| parameter["in"] == "query")
        {
            problems.push(422);
        }
        // Any request can be throttled, time out, or find a dependency down.
        problems.extend([408, 429, 503]);
        problems.sort_unstable();
        problems.dedup();
        for status in problems {
            answers.entry(status.to_string()).or_insert_with(
                || json!({"$ref": format!("#/components/responses/Problem{status}")}),
            );
        }
        if !parameters.is_empty() {
            value["parameters"] = Value::Array(parameters);
        }
        value["responses"] = Value::Object(answers);
        let item = spec
            .paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[method] = value;
    }
}

/// `{name}` segments of a path template, as path parameters.
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = if name == "id" || name.ends_with("_id") && name != "aggregate_id" {
                json!({"type": "string", "format": "uuid"})
            } else {
                json!({"type": "string"})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

/// `type: [T, "null"]` becomes `type: T`: a query parameter is absent, never null.
fn not_null(schema: &mut Value) {
    if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|kind| kind != "null");
        if types.len() == 1 {
            let only = types[0].clone();
            schema["type"] = only;
        }
    }
}

/// The area a path belongs to: its segment after `/api/` (`admin/<x>` for admin routes).
fn tag_of(path: &str) -> String {
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some("api"), Some("admin"), Some(area)) => format!("admin/{area}"),
        (Some("api"), Some(area), _) if !area.is_empty() => {
            area.trim_end_matches(".json").to_string()
        }
        (Some("api"), _, _) => "meta".to_string(),
        (Some(first), _, _) => first.to_string(),
        _ => "meta".to_string(),
    }
}

/// `get /api/users/{id}/roles` → `get_api_users_id_roles`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for part in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !part.is_empty() {
            id.push('_');
            id.push_str(part);
        }
    }
    id
}

/// Whether the operation `method path` (`path` as the router spells it) needs a bearer token:
/// its security names only `bearer`. Unknown operations do not.
pub fn needs_a_token(method: &str, path: &str) -> bool {
    static NEED_TOKENS: OnceLock<HashSet<(String, String)>> = OnceLock::new();
    NEED_TOKENS
        .get_or_init(|| {
            let document = document();
            let mut operations = HashSet::new();
            for (path, item) in document["paths"].as_object().into_iter().flatten() {
                for (method, operation) in item.as_object().into_iter().flatten() {
                    let security = operation["security"].as_array();
                    let needs = security.is_some_and(|alternatives| {
                        !alternatives.is_empty()
                            && alternatives
                                .iter()
                                .all(|alternative| alternative.get("bearer").is_some())
                    });
                    if needs {
                        operations.insert((method.to_ascii_uppercase(), path.clone()));
                    }
                }
            }
            operations
        })
        .contains(&(method.to_ascii_uppercase(), path.to_string()))
}

const DESCRIPTION: &str = "\
The eshop HTTP API. Money is in integer cents (fields ending in `_cents`). Errors are RFC 9457 \
problem documents (`application/problem+json`) with a stable `code` to branch on; the codes \
each status can carry are listed with it.\n\n\
Sign in with `POST /api/auth/login` and send the access token as `Authorization: Bearer …`.\n\n\
Commands (every method but GET) accept `Idempotency-Key` (a retry with the same key and body \
replays the first answer), `If-Match: \"<version>\"` (412 when the aggregate moved on) and \
`Prefer: respond-async` (202 and a task to poll at `/api/tasks/{id}`). Reads of one's own \
writes take `?min_version=` (the `version` a command answered) where offered.\n\n\
The events eshop publishes are described by the AsyncAPI document at `/api/asyncapi.json`.";

/// The whole document.
pub fn document() -> Value {
    let mut spec = Spec::new();
    operations::describe(&mut spec);
    let Spec {
        mut generator,
        paths,
        tags,
    } = spec;
    let tags: Vec<Value> = tags
        .into_iter()
        .map(|name| json!({ "name": name }))
        .collect();
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.insert("Problem".into(), problems::problem_schema());
    schemas.insert("Queued".into(), queued_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "eshop",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": { "name": "MIT", "identifier": "MIT" }
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": problems::responses(),
            "parameters": command_parameters(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The `access_token` of `POST /api/auth/login` or `/api/auth/refresh`."
                }
            }
        }
    })
}

fn queued_schema() -> Value {
    json!({
        "type": "object",
        "description": "The request was queued as a background task: poll `status_url`.",
        "required": ["task_id", "status", "status_url"],
        "properties": {
            "task_id": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": ["PENDING", "PROCESSING", "DONE", "FAILED"]},
            "status_url": {"type": "string"}
        }
    })
}

fn command_parameters() -> Value {
    json!({
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "1 to 255 printable ASCII characters. A repeat with the same key and body answers what the first did (with `Idempotent-Replayed: true`); the same key with another body is 422 `idempotency_key_reused`.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"}
        },
        "IfMatch": {
            "name": "If-Match",
            "in": "header",
            "required": false,
            "description": "The version (`ETag`) the change is based on, as `\"3\"`; 412 `version_mismatch` when the aggregate is at another.",
            "schema": {"type": "string", "pattern": "^(\\*|(W/)?\"?[0-9]{1,15}\"?)$"}
        },
        "CorrelationId": {
            "name": "X-Correlation-Id",
            "in": "header",
            "required": false,
            "description": "Ties the events this request causes to others (a UUID).",
            "schema": {"type": "string", "format": "uuid"}
        },
        "Prefer": {
            "name": "Prefer",
            "in": "header",
            "required": false,
            "description": "`respond-async` queues the request as a task and answers 202 at once.",
            "schema": {"type": "string", "enum": ["respond-async"]}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_the_bearer_scheme() {
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(document["paths"]["/api/users/me"]["get"]["security"].is_array());
        assert!(needs_a_token("PATCH", "/api/users/{id}"));
        assert!(!needs_a_token("POST", "/api/auth/register"));
        assert!(!needs_a_token("GET", "/api/tasks/{id}"));
        assert!(!needs_a_token("GET", "/api/nowhere"));
    }

    /// Every `$ref` names something the document has.
    #[test]
    fn every_reference_resolves() {
        fn walk(value: &Value, document: &Value, broken: &mut Vec<String>) {
            match value {
                Value::Object(fields) => {
                    for (key, inner) in fields {
                        if key == "$ref" {
                            let target = inner.as_str().unwrap_or_default();
                            let pointer = target.trim_start_matches('#');
                            if document.pointer(pointer).is_none() {
                                broken.push(target.to_string());
                            }
                        } else {
                            walk(inner, document, broken);
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|item| walk(item, document, broken)),
                _ => {}
            }
        }
        let document = document();
        let mut broken = Vec::new();
        walk(&document, &document, &mut broken);
        assert!(broken.is_empty(), "unresolved references: {broken:?}");
    }

    #[test]
    fn path_parameters_and_tags_come_from_the_template() {
        let parameters = path_parameters("/api/users/{id}/roles/{role}");
        assert_eq!(parameters[0]["schema"]["format"], "uuid");
        assert_eq!(parameters[1]["name"], "role");
        assert_eq!(parameters[1]["schema"], json!({"type": "string"}));
        assert_eq!(tag_of("/api/admin/schedules/{id}"), "admin/schedules");
        assert_eq!(tag_of("/api/users/me"), "users");
        assert_eq!(tag_of("/health"), "health");
        assert_eq!(
            operation_id("get", "/api/users/{id}"),
            "get_api_users_id".to_string()
        );
    }
}
