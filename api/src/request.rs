//! What a command request carries besides its body: request and correlation ids, an
//! `Idempotency-Key`, an `If-Match` version; and a JSON body extractor with problem+json errors.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use eshop_commands::idempotency::is_valid_key;

use crate::error::{ApiError, FieldError};
use crate::json_body::{self, BodyError};

pub const REQUEST_ID: &str = "x-request-id";
pub const CORRELATION_ID: &str = "x-correlation-id";
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub method: Method,
    pub path: String,
    pub request_id: String,
    pub correlation_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    /// The version named by `If-Match` (`"7"` or `7`); `None` without the header or for `*`.
    pub expected_version: Option<u64>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A header that must be ASCII when present: one that is not is refused, not taken as absent
/// (an Idempotency-Key ignored that way would let a retry apply twice).
fn ascii_header(
    headers: &HeaderMap,
    name: &str,
    display: &str,
) -> Result<Option<String>, ApiError> {
    headers
        .get(name)
        .map(|value| {
            value
                .to_str()
                .map(str::to_string)
                .map_err(|_| bad_header(display, "must be printable ASCII"))
        })
        .transpose()
}

fn bad_header(name: &str, detail: &str) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_header",
        detail: format!("{name}: {detail}"),
    }
}

fn parse_if_match(raw: &str) -> Result<Option<u64>, ApiError> {
    let raw = raw.trim();
    if raw == "*" {
        return Ok(None);
    }
    raw.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| bad_header("If-Match", "must be a version such as \"3\""))
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let headers = &parts.headers;
        let idempotency_key = ascii_header(headers, IDEMPOTENCY_KEY, "Idempotency-Key")?;
        if let Some(key) = &idempotency_key {
            if !is_valid_key(key) {
                return Err(bad_header(
                    "Idempotency-Key",
                    "must be 1 to 255 printable ASCII characters",
                ));
            }
        }
        let correlation_id = match ascii_header(headers, CORRELATION_ID, "X-Correlation-Id")? {
            Some(raw) => Some(
                raw.parse()
                    .map_err(|_| bad_header("X-Correlation-Id", "must be a UUID"))?,
            ),
            None => None,
        };
        let expected_version = match headers.get(IF_MATCH) {
            Some(value) => parse_if_match(
                value
                    .to_str()
                    .map_err(|_| bad_header("If-Match", "must be ASCII"))?,
            )?,
            None => None,
        };
        Ok(Self {
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            request_id: header(headers, REQUEST_ID).unwrap_or_default().to_string(),
            correlation_id,
            idempotency_key,
            expected_version,
        })
    }
}

/// Query parameters, with problem+json (422) when they do not fit `T`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|query| Self(query.0))
            .map_err(|rejection| {
                let detail = rejection.body_text();
                let field = detail
                    .split('`')
                    .nth(1)
                    .filter(|_| detail.contains("field"))
                    .unwrap_or("query")
                    .to_string();
                ApiError::Validation(vec![FieldError::new(field, detail)])
            })
    }
}

/// A JSON body, kept both as the typed value and as the JSON it came from (for request
/// fingerprints). Every way a body can be wrong answers problem+json.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Value,
}

fn serde_error_to_field(error: &serde_json::Error) -> FieldError {
    let message = error.to_string();
    // serde names the field in backticks ("missing field `email`", "unknown field `x`").
    let field = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
        .unwrap_or("body");
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    FieldError::new(field, message)
}

/// No text eshop stores can hold U+0000 (Postgres refuses it in `text` and `jsonb`), so a body
/// carrying one anywhere is refused up front, naming the top-level field it is under.
fn field_with_nul(value: &Value, field: &str) -> Option<String> {
    match value {
        Value::String(text) => text.contains('\0').then(|| field.to_string()),
        Value::Array(items) => items.iter().find_map(|item| field_with_nul(item, field)),
        Value::Object(members) => members.iter().find_map(|(key, member)| {
            let name = if field == "body" { key.as_str() } else { field };
            if key.contains('\0') {
                Some(name.to_string())
            } else {
                field_with_nul(member, name)
            }
        }),
        _ => None,
    }
}

/// A request body as JSON, checked as every endpoint checks it: malformed JSON is 400
/// `malformed_json`; a key given twice, nesting deeper than `json_body::MAX_DEPTH` and U+0000
/// anywhere are 422 `validation_failed`.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    let raw = json_body::parse(bytes).map_err(|error| match error {
        BodyError::Malformed(detail) => ApiError::BadRequest {
            code: "malformed_json",
            detail: format!("the body is not valid JSON: {detail}"),
        },
        BodyError::DuplicateKey(key) => ApiError::field(&key, "is given more than once"),
        BodyError::TooDeep => ApiError::field(
            "body",
            format!("nests deeper than {} levels", json_body::MAX_DEPTH),
        ),
    })?;
    if let Some(field) = field_with_nul(&raw, "body") {
        return Err(ApiError::field(
            &field,
            "must not contain the NUL character (U+0000)",
        ));
    }
    Ok(raw)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        let raw = parse_body(&bytes)?;
        let value = T::deserialize(&raw)
            .map_err(|error| ApiError::Validation(vec![serde_error_to_field(&error)]))?;
        Ok(Self { value, raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_anywhere_names_its_top_level_field() {
        let body = serde_json::json!({"title": "ok", "lines": [{"note": "a\u{0}b"}]});
        assert_eq!(field_with_nul(&body, "body").as_deref(), Some("lines"));
        assert_eq!(
            field_with_nul(&serde_json::json!({"a": "fine"}), "body"),
            None
        );
    }

    #[test]
    fn if_match_accepts_quoted_bare_and_weak_versions() {
        assert_eq!(parse_if_match("\"3\"").expect("ok"), Some(3));
        assert_eq!(parse_if_match("3").expect("ok"), Some(3));
        assert_eq!(parse_if_match("W/\"3\"").expect("ok"), Some(3));
        assert_eq!(parse_if_match("*").expect("ok"), None);
        assert!(parse_if_match("\"abc\"").is_err());
    }

    #[test]
    fn serde_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            email: String,
        }
        let missing = serde_json::from_value::<Body>(serde_json::json!({})).expect_err("missing");
        assert_eq!(serde_error_to_field(&missing).field, "email");
        let unknown =
            serde_json::from_value::<Body>(serde_json::json!({"email": "a", "admin": true}))
                .expect_err("unknown");
        assert_eq!(serde_error_to_field(&unknown).field, "admin");
    }
}

/// For a `PATCH` field that may be absent (kept), `null` (cleared) or set: with
/// `#[serde(default, deserialize_with = "crate::request::some_or_null")]` on an
/// `Option<Option<T>>`, absent is `None` and `null` is `Some(None)`.
pub fn some_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}
