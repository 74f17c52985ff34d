//! The OpenAPI document (`GET /api/openapi.json`) against the router: every route served is
//! documented with its method, and every documented operation is served; the explorer and the
//! index of resources are served by eshop itself.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::every_route::{method, EVERY_ROUTE};
use crate::helpers::spawn_app;

fn document_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

fn listed_routes() -> BTreeSet<(String, String)> {
    EVERY_ROUTE
        .iter()
        .map(|(method, path)| ((*method).to_string(), (*path).to_string()))
        .collect()
}

/// EVERY_ROUTE is kept equal to the router by `the_route_list_names_every_served_path`.
#[test]
fn every_served_route_is_in_the_openapi_document() {
    let documented = document_operations(&eshop_api::docs::openapi::document());
    let missing: Vec<String> = listed_routes()
        .difference(&documented)
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(
        missing.is_empty(),
        "routes the router serves but the OpenAPI document lacks: {missing:?}. Describe each \
         in api/src/docs/openapi/operations.rs (`spec.route(METHOD, PATH, summary)…add()`)"
    );
    let unknown: Vec<String> = documented
        .difference(&listed_routes())
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "operations the OpenAPI document describes but EVERY_ROUTE does not list: {unknown:?}"
    );
}

/// Each operation of the document reaches a handler: not the router's 404 for an unknown
/// path, not 405 (so the methods agree too, which the source scan cannot see).
#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn_app().await;
    let document: Value = app
        .get("/api/openapi.json", None)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(document, eshop_api::docs::openapi::document());
    for (name, template) in document_operations(&document) {
        let path = template
            .replace("{aggregate_type}", "user")
            .replace("{asset}", "init.js")
            .replace("{role}", "auditor")
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "00000000-0000-0000-0000-000000000001"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let response = app
            .request(method(&name), &path, None)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("answered");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{name} {template} is not served: {body}");
        assert!(
            !(status == 404 && body.contains("no such resource")),
            "{name} {template} is not served: {body}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_explorer_and_its_files_come_from_eshop() {
    let app = spawn_app().await;
    let page = app.get("/api/docs", None).await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .expect("ASCII")
        .starts_with("text/html"));
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII")
        .to_string();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = page.text().await.expect("text");
    let mut assets = 0;
    for reference in html
        .split(['"', '\''])
        .filter(|part| part.starts_with("docs/"))
    {
        assert!(!reference.contains("//"), "{reference} is not local");
        let asset = app.get(&format!("/api/{reference}"), None).await;
        assert_eq!(asset.status(), 200, "{reference}");
        assert!(!asset.bytes().await.expect("body").is_empty());
        assets += 1;
    }
    assert_eq!(
        assets, 4,
        "the page names its style, icon, bundle and start script"
    );
    assert!(!html.contains("http://") && !html.contains("https://"));
    let script = app
        .get("/api/docs/init.js", None)
        .await
        .text()
        .await
        .expect("text");
    assert!(script.contains("url: \"openapi.json\""), "{script}");
    let missing = app.get("/api/docs/elsewhere.js", None).await;
    assert_eq!(missing.status(), 404);
    app.shutdown().await;
}

#[tokio::test]
async fn the_index_links_every_resource() {
    let app = spawn_app().await;
    let index: Value = app.get("/api/", None).await.json().await.expect("JSON");
    assert_eq!(index["links"]["openapi"], "/api/openapi.json");
    assert_eq!(index["links"]["docs"], "/api/docs");
    let hrefs: BTreeSet<&str> = index["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|resource| resource["href"].as_str())
        .collect();
    for (_, path) in EVERY_ROUTE {
        if path.starts_with("/api/") && *path != "/api/" {
            assert!(hrefs.contains(path), "{path} is not in GET /api/");
        }
    }
    let users = index["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|resource| resource["href"] == "/api/users/{id}")
        .expect("the users resource");
    assert_eq!(
        users["methods"],
        serde_json::json!(["DELETE", "GET", "PATCH", "PUT"])
    );
    app.shutdown().await;
}

/// Found by schemathesis: an anonymous `Prefer: respond-async` request to a route that needs a
/// token was queued (202) instead of refused; the task could only fail.
#[tokio::test]
async fn an_anonymous_background_request_to_a_route_that_needs_a_token_is_refused_at_once() {
    let app = spawn_app().await;
    let response = app
        .request(reqwest::Method::PATCH, "/api/users/me", None)
        .header("prefer", "respond-async")
        .json(&serde_json::json!({"first_name": "Eve"}))
        .send()
        .await
        .expect("answered");
    crate::helpers::assert_problem(response, 401, "unauthorized").await;
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tasks, 0);
    // Registering needs no token: it still runs in the background.
    let queued = app
        .request(reqwest::Method::POST, "/api/auth/register", None)
        .header("prefer", "respond-async")
        .json(&serde_json::json!({
            "email": "bg@example.com", "username": "bground", "password": "plum-velvet-42"
        }))
        .send()
        .await
        .expect("answered");
    assert_eq!(queued.status(), 202);
    app.shutdown().await;
}

/// The (method, path) pairs README's route table names: the first cell of each row of the
/// table under "## API", where a bare method (`GET`, `POST /x`) shares the next path.
fn readme_routes() -> BTreeSet<(String, String)> {
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let table = readme
        .split("\n## API\n")
        .nth(1)
        .and_then(|section| section.split("| method and path |").nth(1))
        .expect("README's route table under ## API");
    let mut routes = BTreeSet::new();
    for row in table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
    {
        let cell = row[1..].replace("\\|", "¦");
        let cell = cell.split('|').next().unwrap_or_default();
        let mut pending: Vec<&str> = Vec::new();
        for (index, span) in cell.split('`').enumerate() {
            if index % 2 == 0 {
                continue;
            }
            let mut words = span.splitn(2, ' ');
            let Some(method) = words.next().filter(|word| METHODS.contains(word)) else {
                continue;
            };
            pending.push(method);
            if let Some(path) = words.next().filter(|rest| rest.starts_with('/')) {
                let path = path.split(['?', ' ']).next().unwrap_or_default();
                for method in pending.drain(..) {
                    routes.insert((method.to_string(), path.to_string()));
                }
            }
        }
    }
    routes
}

#[test]
fn the_readme_route_table_and_the_document_agree() {
    let readme = readme_routes();
    assert!(readme.len() > 30, "read only {readme:?}");
    let documented = document_operations(&eshop_api::docs::openapi::document());
    let not_in_readme: Vec<String> = documented
        .difference(&readme)
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    let not_documented: Vec<String> = readme
        .difference(&documented)
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(
        not_in_readme.is_empty() && not_documented.is_empty(),
        "README's route table (## API) lacks {not_in_readme:?}; it names operations the \
         OpenAPI document lacks: {not_documented:?}"
    );
}
