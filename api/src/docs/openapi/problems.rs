//! The problem+json answers (RFC 9457) of the document: one shared response per status, with
//! the `code`s `ApiError` gives under it.

use serde_json::{json, Map, Value};

/// Each status eshop answers with a problem, the codes it carries, and what they mean.
pub fn problem_codes() -> Vec<(u16, &'static str, &'static [&'static str])> {
    vec![
        (
            400,
            "The request is malformed: a header that does not fit (`invalid_header`), a body that is not JSON (`malformed_json`), or `Prefer: respond-async` on a route that answers with credentials (`respond_async_not_allowed`).",
            &["invalid_header", "malformed_json", "respond_async_not_allowed"],
        ),
        (
            401,
            "No valid bearer token (`unauthorized`, with `WWW-Authenticate: Bearer`), a wrong e-mail or password (`invalid_credentials`), an unknown or expired refresh token (`invalid_refresh_token`), or a session that was ended (`session_revoked`).",
            &["unauthorized", "invalid_credentials", "invalid_refresh_token", "session_revoked"],
        ),
        (
            403,
            "The caller lacks the role (`forbidden`); auditors may only read.",
            &["forbidden"],
        ),
        (404, "No such resource (`not_found`); another user's resource is also 404.", &["not_found"]),
        (
            408,
            "The body arrived too slowly, or the answer took too long (`request_timeout`).",
            &["request_timeout"],
        ),
        (
            409,
            "The change conflicts with the state: `email_taken`, `username_taken`, `already_taken`, `already_exists`, `already_active`, `out_of_stock`, `insufficient_balance`, `invalid_transition`, `no_reservation`, `user_deactivated`, `user_erased`, `builtin_schedule`, `not_rated` (removing a rating the caller never gave), `category_in_use` (deleting a category that has products or subcategories), `category_slug_taken` (a sibling has the slug); an order that failed: `product_unavailable`, `payment_declined`, `order_failed`; or `conflict` (a concurrent change won; retry).",
            &[
                "email_taken",
                "username_taken",
                "already_taken",
                "product_unavailable",
                "payment_declined",
                "order_failed",
                "already_exists",
                "already_active",
                "out_of_stock",
                "insufficient_balance",
                "invalid_transition",
                "no_reservation",
                "user_deactivated",
                "user_erased",
                "builtin_schedule",
                "not_rated",
                "category_in_use",
                "category_slug_taken",
                "conflict",
            ],
        ),
        (
            412,
            "`If-Match` names another version than the aggregate's (`version_mismatch`, with `expected_version` and `current_version`).",
            &["version_mismatch"],
        ),
        (413, "The body is over 64 KiB (`payload_too_large`).", &["payload_too_large"]),
        (
            415,
            "The body is not `application/json` (`multipart/form-data` for uploads) (`unsupported_media_type`).",
            &["unsupported_media_type"],
        ),
        (
            422,
            "Invalid fields or parameters (`validation_failed`, each in `errors` as `{field, message}`), a reused `Idempotency-Key` with another body (`idempotency_key_reused`), or a rule of the domain: `cart_empty`, `cart_full`, `wishlist_full`, `stock_limit`, `balance_limit`; a calendar event whose key names another entry (`key_mismatch`); a category moved under itself or a descendant (`category_cycle`); an import feed that is neither JSON nor CSV of events, or is empty (`invalid_feed`).",
            &[
                "validation_failed",
                "idempotency_key_reused",
                "cart_empty",
                "cart_full",
                "wishlist_full",
                "stock_limit",
                "balance_limit",
                "key_mismatch",
                "category_cycle",
                "invalid_feed",
            ],
        ),
        (
            429,
            "Too many requests (`throttled`, with `retry_after_seconds` and `Retry-After`).",
            &["throttled"],
        ),
        (
            503,
            "A dependency is down (`service_unavailable`), the read model has not reached `min_version` within 5 s (`not_yet_visible`), both with `Retry-After`; or, on `/ready`, this replica should not take traffic (`not_ready`, with `reasons`).",
            &["service_unavailable", "not_yet_visible", "not_ready"],
        ),
    ]
}

pub fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "An RFC 9457 problem document.",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string", "description": "`urn:eshop:problem:<code>`"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string", "description": "For people; branch on `code`."},
            "code": {"type": "string", "description": "Stable; see the response's description for the values."},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}}
                }
            },
            "expected_version": {"type": "integer"},
            "current_version": {"type": "integer"},
            "retry_after_seconds": {"type": "integer"}
        }
    })
}

/// `Problem<status>` for every status, and `Queued` (202 of `Prefer: respond-async`).
pub fn responses() -> Value {
    let mut responses = Map::new();
    for (status, description, codes) in problem_codes() {
        responses.insert(
            format!("Problem{status}"),
            json!({
                "description": description,
                "content": {
                    "application/problem+json": {
                        "schema": {
                            "allOf": [
                                {"$ref": "#/components/schemas/Problem"},
                                {"properties": {"status": {"const": status}, "code": {"enum": codes}}}
                            ]
                        }
                    }
                }
            }),
        );
    }
    responses.insert(
        "Queued".into(),
        json!({
            "description": "Queued as a background task (`Prefer: respond-async`): `Location` is the task.",
            "headers": {
                "Location": {"schema": {"type": "string"}},
                "Preference-Applied": {"schema": {"type": "string"}}
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Queued"}}}
        }),
    );
    Value::Object(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `code: "…"` the API's source spells out is listed under some status, so a new
    /// code cannot be left out of the document unnoticed.
    #[test]
    fn every_code_in_the_source_is_listed() {
        fn sources(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("a folder").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    sources(&path, found);
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    found.push(std::fs::read_to_string(&path).expect("source"));
                }
            }
        }
        let mut files = Vec::new();
        sources(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
            &mut files,
        );
        let listed: Vec<&str> = problem_codes()
            .iter()
            .flat_map(|(_, _, codes)| codes.iter().copied())
            .collect();
        let mut missing = Vec::new();
        for source in &files {
            for (at, _) in source.match_indices("code: \"") {
                let rest = &source[at + 7..];
                let code = &rest[..rest.find('"').unwrap_or(0)];
                let is_code =
                    !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_');
                if is_code && !listed.contains(&code) {
                    missing.push(code.to_string());
                }
            }
        }
        assert!(
            missing.is_empty(),
            "problem codes missing from docs/openapi/problems.rs: {missing:?}"
        );
    }

    /// A code `ApiError` gives for itself is listed under the status it answers with.
    #[test]
    fn the_fixed_codes_are_listed_under_their_status() {
        use crate::error::ApiError;
        let errors = [
            ApiError::field("x", "y"),
            ApiError::UnsupportedMediaType,
            ApiError::PayloadTooLarge,
            ApiError::RequestTimeout,
            ApiError::Unauthorized,
            ApiError::InvalidCredentials,
            ApiError::InvalidRefreshToken,
            ApiError::SessionRevoked,
            ApiError::Forbidden,
            ApiError::NotFound("thing"),
            ApiError::VersionMismatch {
                expected: 1,
                actual: 2,
            },
            ApiError::IdempotencyKeyReused,
            ApiError::NotYetVisible { version: 1 },
            ApiError::Throttled {
                retry_after_seconds: 1,
            },
        ];
        let listed = problem_codes();
        for error in errors {
            let status = error.status().as_u16();
            let codes = listed
                .iter()
                .find(|(listed, _, _)| *listed == status)
                .map(|(_, _, codes)| *codes)
                .unwrap_or_default();
            assert!(
                codes.contains(&error.code()),
                "{} ({status}) is not listed",
                error.code()
            );
        }
    }
}
