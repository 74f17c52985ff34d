//! Every route the router serves, as (method, path template), for tests that must walk them all
//! (credentials in tasks, the fuzz test). A test reads `api/src/routes/*.rs` and fails when a
//! route is served that this list does not name, so the list cannot fall behind the router.

use std::collections::BTreeSet;

use reqwest::Method;

pub const EVERY_ROUTE: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/ready"),
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/password-reset"),
    ("POST", "/api/auth/password-reset/confirm"),
    ("GET", "/api/users/me"),
    ("PATCH", "/api/users/me"),
    ("POST", "/api/users/me/deposits"),
    ("POST", "/api/users/me/password"),
    ("GET", "/api/users"),
    ("POST", "/api/users"),
    ("GET", "/api/users/{id}"),
    ("PATCH", "/api/users/{id}"),
    ("PUT", "/api/users/{id}"),
    ("DELETE", "/api/users/{id}"),
    ("POST", "/api/users/{id}/reactivate"),
    ("POST", "/api/users/{id}/roles"),
    ("DELETE", "/api/users/{id}/roles/{role}"),
    ("POST", "/api/admin/users/{id}/erase"),
    ("GET", "/api/products"),
    ("POST", "/api/products"),
    ("GET", "/api/products/{id}"),
    ("PATCH", "/api/products/{id}"),
    ("DELETE", "/api/products/{id}"),
    ("POST", "/api/products/{id}/restock"),
    ("GET", "/api/products/{id}/reviews"),
    ("POST", "/api/products/{id}/reviews"),
    ("GET", "/api/search"),
    ("GET", "/api/search/suggest"),
    ("POST", "/api/purchases"),
    ("GET", "/api/orders"),
    ("POST", "/api/orders"),
    ("GET", "/api/orders/{id}"),
    ("POST", "/api/orders/{id}/cancel"),
    ("POST", "/api/orders/{id}/payments"),
    ("GET", "/api/payments"),
    ("GET", "/api/payments/{id}"),
    ("GET", "/api/cart"),
    ("PUT", "/api/cart/items/{product_id}"),
    ("DELETE", "/api/cart/items/{product_id}"),
    ("POST", "/api/cart/checkout"),
    ("GET", "/api/wishlist"),
    ("PUT", "/api/wishlist/items/{product_id}"),
    ("DELETE", "/api/wishlist/items/{product_id}"),
    ("GET", "/api/admin/projections"),
    ("POST", "/api/admin/projections/{name}/rebuild"),
    ("GET", "/api/admin/emails"),
    ("GET", "/api/audit/events"),
    ("GET", "/api/audit/streams/{aggregate_type}/{aggregate_id}"),
    (
        "GET",
        "/api/audit/streams/{aggregate_type}/{aggregate_id}/state",
    ),
    ("GET", "/api/audit/correlations/{correlation_id}"),
    ("GET", "/api/audit/export"),
    ("GET", "/api/audit/verify"),
    ("GET", "/api/asyncapi.json"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/"),
    ("GET", "/api/docs"),
    ("GET", "/api/docs/{asset}"),
    ("GET", "/api/tasks"),
    ("GET", "/api/tasks/{id}"),
    ("GET", "/api/tasks/{id}/status"),
    ("POST", "/api/admin/reports/sales"),
    ("POST", "/api/admin/products/ratings/recompute"),
    ("GET", "/api/admin/schedules"),
    ("POST", "/api/admin/schedules"),
    ("GET", "/api/admin/schedules/{id}"),
    ("PATCH", "/api/admin/schedules/{id}"),
    ("DELETE", "/api/admin/schedules/{id}"),
    ("GET", "/api/admin/schedules/{id}/runs"),
    ("GET", "/api/movies"),
    ("POST", "/api/movies"),
    ("GET", "/api/movies/{id}"),
    ("PATCH", "/api/movies/{id}"),
    ("GET", "/api/movies/{id}/ratings"),
    ("GET", "/api/movies/{id}/tags"),
    ("POST", "/api/movies/{id}/tags"),
    ("PUT", "/api/movies/{id}/rating"),
    ("DELETE", "/api/movies/{id}/rating"),
    ("GET", "/api/genres"),
    ("POST", "/api/admin/imports/movielens"),
    ("GET", "/api/calendar/events"),
    ("POST", "/api/calendar/events"),
    ("GET", "/api/calendar/events/{id}"),
    ("PATCH", "/api/calendar/events/{id}"),
    ("DELETE", "/api/calendar/events/{id}"),
    ("POST", "/api/admin/imports/calendar"),
    ("GET", "/api/categories"),
    ("POST", "/api/categories"),
    ("GET", "/api/categories/{id}"),
    ("PATCH", "/api/categories/{id}"),
    ("DELETE", "/api/categories/{id}"),
];

pub fn method(name: &str) -> Method {
    name.parse().expect("a method")
}

/// The path templates the route modules register (the first string literal after each
/// `.route(`).
fn served_paths() -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes");
    let mut paths = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("the routes folder") {
        let source = std::fs::read_to_string(entry.expect("an entry").path()).expect("source");
        for (at, _) in source.match_indices(".route(") {
            let rest = &source[at..];
            let Some(open) = rest.find('"') else { continue };
            let Some(close) = rest[open + 1..].find('"') else {
                continue;
            };
            paths.insert(rest[open + 1..open + 1 + close].to_string());
        }
    }
    paths
}

#[test]
fn the_route_list_names_every_served_path() {
    let listed: BTreeSet<String> = EVERY_ROUTE
        .iter()
        .map(|(_, path)| (*path).to_string())
        .collect();
    let served = served_paths();
    assert!(served.len() > 30, "found only {served:?}");
    let missing: Vec<_> = served.difference(&listed).collect();
    assert!(missing.is_empty(), "routes not in EVERY_ROUTE: {missing:?}");
}
