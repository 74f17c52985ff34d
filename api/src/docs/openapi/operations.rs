//! Every route of the router, as the document describes it. One entry per method and path:
//! `spec.route(METHOD, PATH, summary)`, who may call it, the query struct, the body type, the
//! answers, the problem statuses beyond the ones `Operation::add` adds for its kind, `.add()`.
//!
//! Adding a route: add its entry here (in the area's function, or a new one called from
//! `describe`), with the same path template as its `.route(…)`; derive `schemars::JsonSchema`
//! on the structs it reads and answers. `cargo nextest run -p eshop-api openapi` names any
//! served route this file lacks.

use serde_json::{json, Value};

use eshop_commands::schedules::ScheduleRecord;
use eshop_infra::audit::state::AggregateState;
use eshop_infra::audit::verify::Verification;
use eshop_infra::mail::outbox::MailRecord;
use eshop_infra::projector::ProjectionReport;
use eshop_infra::scheduler::RunRecord;
use eshop_projections::category::CategoryNode;
use eshop_projections::movie::query::{
    GenreCount, MovieCard, MovieDetail, MoviePage, RatingView, TagView,
};
use eshop_projections::payment::PaymentRecord;
use eshop_projections::query::Page as ProductPage;
use eshop_projections::RelayedEvent;

use super::{Access, Spec};
use crate::background::tasks::SalesReportInput;
use crate::routes::{
    admin, audit, auth, calendar as calendar_routes, catalog, categories as category_routes,
    movies as movie_routes, orders, products, schedules, search, shopping, tasks as task_routes,
    users, PageParams,
};
use crate::views::{Page, ProductView, TaskView, UserView};

pub fn describe(spec: &mut Spec) {
    meta(spec);
    accounts(spec);
    catalog(spec);
    movies(spec);
    calendar(spec);
    categories(spec);
    shopping(spec);
    ordering(spec);
    tasks(spec);
    administration(spec);
    auditing(spec);
}

/// `{items: [T]}`.
fn items(spec: &mut Spec, item: Value) -> Value {
    let _ = spec;
    json!({
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": item}}
    })
}

fn meta(spec: &mut Spec) {
    spec.route("GET", "/health", "Whether the event store answers")
        .answer_schema(
            200,
            "The event store answers.",
            json!({"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}),
        )
        .add();
    spec.route("GET", "/ready", "Whether this replica should take traffic")
        .answer_schema(
            200,
            "Postgres and NATS answer and no projection lags more than ESHOP_READY_MAX_LAG_SECONDS (otherwise 503 `not_ready` with `reasons`).",
            json!({"type": "object", "required": ["status"], "properties": {"status": {"const": "ready"}}}),
        )
        .add();
    spec.route("GET", "/metrics", "Prometheus metrics of this replica")
        .answer_raw(200, "Prometheus text exposition format.", "text/plain")
        .add();
    spec.route("GET", "/api/", "The resources of the API, with links")
        .answer_schema(
            200,
            "Each resource with the address of its collection and a short description.",
            json!({
                "type": "object",
                "required": ["links", "resources"],
                "properties": {
                    "links": {"type": "object", "additionalProperties": {"type": "string"}},
                    "resources": {"type": "array", "items": {
                        "type": "object",
                        "required": ["name", "href", "description"],
                        "properties": {
                            "name": {"type": "string"},
                            "href": {"type": "string"},
                            "description": {"type": "string"},
                            "methods": {"type": "array", "items": {"type": "string"}}
                        }
                    }}
                }
            }),
        )
        .add();
    spec.route("GET", "/api/openapi.json", "This document")
        .answer_schema(200, "The OpenAPI 3.1 document.", json!({"type": "object"}))
        .add();
    spec.route(
        "GET",
        "/api/asyncapi.json",
        "The AsyncAPI document of the event stream",
    )
    .answer_schema(
        200,
        "The AsyncAPI 3.0 document of this instance's NATS channels.",
        json!({"type": "object"}),
    )
    .add();
    spec.route("GET", "/api/docs", "The API explorer (Swagger UI)")
        .answer_raw(200, "An HTML page.", "text/html")
        .add();
    spec.route("GET", "/api/docs/{asset}", "A file of the API explorer")
        .answer_raw(200, "A script, a style sheet or an image.", "*/*")
        .problems(&[404])
        .add();
}

fn accounts(spec: &mut Spec) {
    spec.route("POST", "/api/auth/register", "Open an account")
        .body::<auth::RegisterRequest>()
        .answer::<UserView>(201, "The account.")
        .problems(&[409])
        .add();
    spec.route("POST", "/api/auth/login", "Sign in")
        .body::<auth::LoginRequest>()
        .answer::<auth::TokenResponse>(200, "An access and a refresh token.")
        .without_command_headers()
        .not_in_background()
        .problems(&[400, 401])
        .add();
    spec.route(
        "POST",
        "/api/auth/refresh",
        "Spend a refresh token for a new pair",
    )
    .body::<auth::RefreshRequest>()
    .answer::<auth::TokenResponse>(200, "A new access and refresh token.")
    .without_command_headers()
    .not_in_background()
    .problems(&[400, 401])
    .add();
    spec.route("POST", "/api/auth/logout", "End this session")
        .access(Access::User)
        .without_command_headers()
        .answer_raw(204, "The session's tokens stop working.", "")
        .add();
    spec.route(
        "POST",
        "/api/auth/password-reset",
        "Mail a link to reset a password",
    )
    .body::<auth::PasswordResetRequest>()
    .without_command_headers()
    .not_in_background()
    .answer::<auth::PasswordResetAccepted>(
        202,
        "The same answer whether an account has the address or not.",
    )
    .add();
    spec.route(
        "POST",
        "/api/auth/password-reset/confirm",
        "Choose a new password with a mailed token",
    )
    .body::<auth::PasswordResetConfirm>()
    .answer::<auth::PasswordResetDone>(
        200,
        "`status: password_changed`; every session of the user ends.",
    )
    .add();
    spec.route("GET", "/api/users/me", "The caller's account")
        .access(Access::User)
        .query::<users::ReadParams>()
        .answer::<UserView>(200, "The account.")
        .problems(&[404])
        .add();
    spec.route("PATCH", "/api/users/me", "Change the caller's profile")
        .access(Access::User)
        .body::<users::ProfileChanges>()
        .answer::<UserView>(200, "The account after the change.")
        .problems(&[404, 409])
        .add();
    spec.route(
        "POST",
        "/api/users/me/deposits",
        "Add money to the caller's wallet",
    )
    .access(Access::User)
    .body::<users::DepositRequest>()
    .answer::<UserView>(200, "The account with its new balance.")
    .problems(&[404, 409])
    .add();
    spec.route(
        "POST",
        "/api/users/me/password",
        "Change the caller's password",
    )
    .access(Access::User)
    .body::<users::PasswordChange>()
    .answer::<UserView>(200, "The account; every session of the user ends.")
    .problems(&[404, 409])
    .add();
    spec.route("GET", "/api/users", "Every account")
        .access(Access::Admin)
        .query::<PageParams>()
        .answer::<Page<UserView>>(
            200,
            "A page of accounts; those the admin just created or changed as their commands answered.",
        )
        .add();
    spec.route("POST", "/api/users", "Create an account without a password")
        .access(Access::Admin)
        .body::<users::NewUser>()
        .answer::<UserView>(
            201,
            "The account; its owner is mailed a link to choose a password.",
        )
        .problems(&[409])
        .add();
    spec.route("GET", "/api/users/{id}", "One account")
        .access(Access::Admin)
        .query::<users::ReadParams>()
        .answer::<UserView>(200, "The account.")
        .problems(&[404])
        .add();
    spec.route("PATCH", "/api/users/{id}", "Change an account's profile")
        .access(Access::Admin)
        .body::<users::ProfileChanges>()
        .answer::<UserView>(200, "The account after the change.")
        .problems(&[404, 409])
        .add();
    spec.route("PUT", "/api/users/{id}", "Replace an account's profile")
        .access(Access::Admin)
        .body::<users::UserReplacement>()
        .answer::<UserView>(200, "The account after the change.")
        .problems(&[404, 409])
        .add();
    spec.route("DELETE", "/api/users/{id}", "Deactivate an account")
        .access(Access::Admin)
        .answer::<UserView>(200, "The account; its sessions end.")
        .problems(&[404, 409])
        .add();
    spec.route(
        "POST",
        "/api/users/{id}/reactivate",
        "Reactivate an account",
    )
    .access(Access::Admin)
    .answer::<UserView>(200, "The account.")
    .problems(&[404, 409])
    .add();
    spec.route("POST", "/api/users/{id}/roles", "Grant a role")
        .access(Access::Admin)
        .body::<users::RoleRequest>()
        .answer::<UserView>(200, "The account.")
        .problems(&[404, 409])
        .add();
    spec.route("DELETE", "/api/users/{id}/roles/{role}", "Revoke a role")
        .access(Access::Admin)
        .answer::<UserView>(200, "The account.")
        .problems(&[404, 409, 422])
        .add();
    spec.route(
        "POST",
        "/api/admin/users/{id}/erase",
        "Erase a user's personal data",
    )
    .access(Access::Admin)
    .answer::<UserView>(200, "The account, `erased: true`, `email: null`.")
    .problems(&[404, 409])
    .add();
}

fn catalog(spec: &mut Spec) {
    spec.route("GET", "/api/search", "Ranked full-text search of the catalog")
        .query::<search::SearchParams>()
        .answer::<search::SearchAnswer>(
            200,
            "A page of ranked products with their score, `<mark>` highlights (HTML-escaped otherwise), the facets asked for, the total and the next cursor.",
        )
        .add();
    spec.route(
        "GET",
        "/api/search/suggest",
        "Titles for what is being typed",
    )
    .query::<search::SuggestParams>()
    .answer::<search::Suggestions>(
        200,
        "Up to 10 titles for the words typed, the last one as a prefix.",
    )
    .add();
    spec.route("GET", "/api/products", "The catalog")
        .query::<catalog::ListParams>()
        .answer::<ProductPage<ProductView>>(
            200,
            "A page of products (`total` when asked for); with an admin's token, those the admin just changed as their commands answered.",
        )
        .add();
    spec.route("POST", "/api/products", "Add a product")
        .access(Access::Admin)
        .body::<products::AddRequest>()
        .answer::<ProductView>(201, "The product.")
        .answer::<ProductView>(200, "The product, added before by the same request.")
        .problems(&[409])
        .add();
    spec.route("GET", "/api/products/{id}", "One product")
        .query::<catalog::DetailParams>()
        .answer::<ProductView>(200, "The product.")
        .problems(&[404])
        .add();
    spec.route("PATCH", "/api/products/{id}", "Change a product")
        .access(Access::Admin)
        .body::<products::UpdateRequest>()
        .answer::<ProductView>(200, "The product after the change.")
        .problems(&[404, 409])
        .add();
    spec.route(
        "DELETE",
        "/api/products/{id}",
        "Remove a product from the catalog",
    )
    .access(Access::Admin)
    .answer::<ProductView>(200, "The product, `removed: true`.")
    .problems(&[404, 409])
    .add();
    spec.route("POST", "/api/products/{id}/restock", "Add stock")
        .access(Access::Admin)
        .body::<products::RestockRequest>()
        .answer::<ProductView>(200, "The product with its new stock.")
        .problems(&[404, 409])
        .add();
    let review = spec.schema::<shopping::ReviewView>();
    let reviews = items(spec, review);
    spec.route(
        "GET",
        "/api/products/{id}/reviews",
        "A product's reviews, newest first",
    )
    .query::<shopping::ListParams>()
    .answer_schema(200, "The reviews.", reviews)
    .problems(&[404])
    .add();
    spec.route("POST", "/api/products/{id}/reviews", "Review a product")
        .access(Access::User)
        .body::<shopping::ReviewRequest>()
        .answer::<shopping::ReviewView>(201, "The review (a second one replaces the first).")
        .problems(&[404, 409])
        .add();
}

fn movies(spec: &mut Spec) {
    spec.route("GET", "/api/movies", "The movies, filtered and ordered")
        .query::<movie_routes::ListParams>()
        .answer::<MoviePage<MovieCard>>(200, "A page of movies; `next_cursor` for the next.")
        .add();
    spec.route("POST", "/api/movies", "Add a movie")
        .access(Access::Admin)
        .body::<movie_routes::MovieRequest>()
        .answer::<movie_routes::MovieAnswer>(201, "The movie.")
        .problems(&[409])
        .add();
    spec.route(
        "GET",
        "/api/movies/{id}",
        "One movie with its histogram and top tags",
    )
    .answer::<MovieDetail>(200, "The movie.")
    .problems(&[404])
    .add();
    spec.route(
        "PATCH",
        "/api/movies/{id}",
        "Change a movie's details or links",
    )
    .access(Access::Admin)
    .body::<movie_routes::MovieRequest>()
    .answer::<movie_routes::MovieAnswer>(200, "The movie after the change.")
    .problems(&[404, 409])
    .add();
    spec.route(
        "GET",
        "/api/movies/{id}/ratings",
        "A movie's ratings by rater",
    )
    .query::<PageParams>()
    .answer::<MoviePage<RatingView>>(200, "A page of ratings.")
    .problems(&[404])
    .add();
    spec.route("GET", "/api/movies/{id}/tags", "A movie's tags by rater")
        .query::<PageParams>()
        .answer::<MoviePage<TagView>>(200, "A page of tags.")
        .problems(&[404])
        .add();
    spec.route("POST", "/api/movies/{id}/tags", "Tag a movie")
        .access(Access::User)
        .body::<movie_routes::TagRequest>()
        .answer::<movie_routes::MovieAnswer>(200, "The movie.")
        .problems(&[404, 409])
        .add();
    spec.route(
        "PUT",
        "/api/movies/{id}/rating",
        "Rate a movie (0.5 to 5 stars)",
    )
    .access(Access::User)
    .body::<movie_routes::RateRequest>()
    .answer::<movie_routes::MovieAnswer>(200, "The movie (a second rating replaces the first).")
    .problems(&[404, 409])
    .add();
    spec.route(
        "DELETE",
        "/api/movies/{id}/rating",
        "Withdraw the caller's rating",
    )
    .access(Access::User)
    .answer::<movie_routes::MovieAnswer>(200, "The movie.")
    .problems(&[404, 409])
    .add();
    let genres = spec.schema::<Vec<GenreCount>>();
    spec.route(
        "GET",
        "/api/genres",
        "Every genre with its number of movies",
    )
    .answer_schema(200, "The genres.", genres)
    .add();
    spec.route(
        "POST",
        "/api/admin/imports/movielens",
        "Import a MovieLens data set",
    )
    .access(Access::Admin)
    .without_command_headers()
    .body_content(json!({
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["movies"],
                "properties": {
                    "movies": {"type": "string", "format": "binary", "description": "movies.csv"},
                    "ratings": {"type": "string", "format": "binary", "description": "ratings.csv"},
                    "tags": {"type": "string", "format": "binary", "description": "tags.csv"},
                    "links": {"type": "string", "format": "binary", "description": "links.csv"}
                }
            }
        }
    }))
    .answer_schema(
        202,
        "Queued: poll `status_url`; the task reports what was imported and each bad row.",
        json!({"$ref": "#/components/schemas/Queued"}),
    )
    .add();
}

fn calendar(spec: &mut Spec) {
    spec.route(
        "GET",
        "/api/calendar/events",
        "The economic calendar by date and time",
    )
    .query::<calendar_routes::ListParams>()
    .answer::<calendar_routes::PageView>(200, "A page of entries; `next_cursor` for the next.")
    .add();
    spec.route("POST", "/api/calendar/events", "Add an entry")
        .access(Access::Admin)
        .body::<calendar_routes::CreateRequest>()
        .answer::<calendar_routes::CalendarView>(201, "The entry.")
        .problems(&[409])
        .add();
    spec.route(
        "GET",
        "/api/calendar/events/{id}",
        "One entry with its revisions",
    )
    .query::<calendar_routes::DetailParams>()
    .answer::<calendar_routes::CalendarView>(200, "The entry.")
    .problems(&[404])
    .add();
    spec.route("PATCH", "/api/calendar/events/{id}", "Revise an entry")
        .access(Access::Admin)
        .body::<calendar_routes::ReviseRequest>()
        .answer::<calendar_routes::CalendarView>(200, "The entry after the revision.")
        .problems(&[404, 409])
        .add();
    spec.route("DELETE", "/api/calendar/events/{id}", "Delete an entry")
        .access(Access::Admin)
        .answer::<calendar_routes::CalendarView>(200, "The entry as it was.")
        .problems(&[404, 409])
        .add();
    spec.route(
        "POST",
        "/api/admin/imports/calendar",
        "Import a calendar feed (JSON array or CSV)",
    )
    .access(Access::Admin)
    .without_command_headers()
    .body_content(json!({
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "text/csv": {"schema": {"type": "string"}}
    }))
    .answer_schema(
        202,
        "Queued: poll `status_url`; the task reports `{created, revised, unchanged, skipped}`.",
        json!({"$ref": "#/components/schemas/Queued"}),
    )
    .problems(&[422])
    .add();
}

fn categories(spec: &mut Spec) {
    spec.route(
        "GET",
        "/api/categories",
        "The category tree, with each node's path and product count",
    )
    .answer::<Vec<CategoryNode>>(
        200,
        "Every top-level category with its subtree; `products` counts the descendants' too.",
    )
    .add();
    spec.route("POST", "/api/categories", "Add a category")
        .access(Access::Admin)
        .body::<category_routes::CreateRequest>()
        .answer::<category_routes::CategoryView>(201, "The category.")
        .problems(&[409, 422])
        .add();
    spec.route(
        "GET",
        "/api/categories/{id}",
        "One category with its subtree",
    )
    .query::<category_routes::DetailParams>()
    .answer::<CategoryNode>(
        200,
        "The category, its path, its subtree and product count.",
    )
    .problems(&[404])
    .add();
    spec.route("PATCH", "/api/categories/{id}", "Rename or move a category")
        .access(Access::Admin)
        .body::<category_routes::ChangeRequest>()
        .answer::<category_routes::CategoryView>(200, "The category after the change.")
        .problems(&[404, 409, 422])
        .add();
    spec.route("DELETE", "/api/categories/{id}", "Delete an empty category")
        .access(Access::Admin)
        .answer::<category_routes::CategoryView>(200, "The category as it was.")
        .problems(&[404, 409])
        .add();
}

fn shopping(spec: &mut Spec) {
    spec.route("GET", "/api/cart", "The caller's cart")
        .access(Access::User)
        .query::<shopping::ReadParams>()
        .answer::<shopping::CartView>(200, "The cart.")
        .add();
    spec.route(
        "PUT",
        "/api/cart/items/{product_id}",
        "Set a product's quantity in the cart",
    )
    .access(Access::User)
    .body::<shopping::QuantityRequest>()
    .answer::<shopping::CartView>(200, "The cart (quantity 0 removes the line).")
    .problems(&[404, 409])
    .add();
    spec.route(
        "DELETE",
        "/api/cart/items/{product_id}",
        "Remove a product from the cart",
    )
    .access(Access::User)
    .answer::<shopping::CartView>(200, "The cart.")
    .problems(&[404, 409])
    .add();
    spec.route("GET", "/api/wishlist", "The caller's wishlist")
        .access(Access::User)
        .query::<shopping::ReadParams>()
        .answer::<shopping::WishlistView>(200, "The wishlist.")
        .add();
    spec.route(
        "PUT",
        "/api/wishlist/items/{product_id}",
        "Add a product to the wishlist",
    )
    .access(Access::User)
    .answer::<shopping::WishlistView>(200, "The wishlist.")
    .problems(&[404, 409])
    .add();
    spec.route(
        "DELETE",
        "/api/wishlist/items/{product_id}",
        "Remove a product from the wishlist",
    )
    .access(Access::User)
    .answer::<shopping::WishlistView>(200, "The wishlist.")
    .problems(&[404, 409])
    .add();
}

fn pending_order() -> Value {
    json!({
        "type": "object",
        "description": "Still running: the order's address says what became of it.",
        "required": ["order_id", "status_url"],
        "properties": {
            "order_id": {"type": "string", "format": "uuid"},
            "status_url": {"type": "string"}
        }
    })
}

fn ordering(spec: &mut Spec) {
    let queued = json!({"$ref": "#/components/schemas/Queued"});
    let order_pending = json!({"oneOf": [pending_order(), queued]});
    spec.route("POST", "/api/purchases", "Buy one product from the wallet")
        .access(Access::User)
        .body::<orders::PurchaseBody>()
        .answer_schema(
            201,
            "Confirmed.",
            json!({
                "type": "object",
                "required": ["order_id", "status", "total_cents", "balance_cents", "version"],
                "properties": {
                    "order_id": {"type": "string", "format": "uuid"},
                    "status": {"const": "confirmed"},
                    "total_cents": {"type": "integer"},
                    "balance_cents": {"type": "integer"},
                    "version": {"type": "integer", "minimum": 0}
                }
            }),
        )
        .answer_schema(
            202,
            "Still running after 5 s (or queued with `Prefer: respond-async`).",
            order_pending.clone(),
        )
        .problems(&[404, 409])
        .add();
    spec.route("POST", "/api/orders", "Place an order")
        .access(Access::User)
        .body::<orders::OrderRequest>()
        .answer::<orders::OrderView>(201, "With `Prefer: wait=N`: the order, finished in time.")
        .answer_schema(202, "Placed; poll `status_url`.", order_pending.clone())
        .problems(&[404, 409])
        .add();
    spec.route("GET", "/api/orders", "The caller's orders, newest first")
        .access(Access::User)
        .query::<PageParams>()
        .answer::<Page<orders::OrderView>>(
            200,
            "A page of orders; those the caller just placed or changed as their commands answered.",
        )
        .add();
    spec.route("GET", "/api/orders/{id}", "One order")
        .access(Access::User)
        .answer::<orders::OrderView>(200, "The order with its timeline.")
        .problems(&[404])
        .add();
    spec.route(
        "POST",
        "/api/orders/{id}/cancel",
        "Cancel an order before payment",
    )
    .access(Access::User)
    .answer::<orders::OrderView>(200, "The order, cancelled; the stock comes back.")
    .problems(&[404, 409])
    .add();
    spec.route(
        "POST",
        "/api/orders/{id}/payments",
        "Pay an order again with another instrument",
    )
    .access(Access::User)
    .body::<orders::PaymentRequest>()
    .answer::<orders::OrderView>(201, "With `Prefer: wait=N`: the order, finished in time.")
    .answer_schema(202, "Placed; poll `status_url`.", order_pending.clone())
    .problems(&[404, 409])
    .add();
    spec.route("POST", "/api/cart/checkout", "Order the cart")
        .access(Access::User)
        .body::<orders::CheckoutRequest>()
        .answer::<orders::OrderView>(201, "With `Prefer: wait=N`: the order, finished in time.")
        .answer_schema(202, "Placed; poll `status_url`.", order_pending)
        .problems(&[404, 409])
        .add();
    spec.route(
        "GET",
        "/api/payments",
        "The caller's payments (admins: all), newest first",
    )
    .access(Access::User)
    .query::<PageParams>()
    .answer::<Page<PaymentRecord>>(
        200,
        "A page of payments; those the caller's orders just took as their commands answered.",
    )
    .add();
    spec.route("GET", "/api/payments/{id}", "One payment")
        .access(Access::User)
        .answer::<PaymentRecord>(200, "The payment (`card_last4` only).")
        .problems(&[404])
        .add();
}

fn tasks(spec: &mut Spec) {
    spec.route(
        "GET",
        "/api/tasks",
        "The caller's tasks (admins: all), newest first",
    )
    .access(Access::User)
    .query::<PageParams>()
    .answer::<Page<TaskView>>(200, "A page of tasks.")
    .add();
    spec.route("GET", "/api/tasks/{id}", "One task")
        .access(Access::OptionalUser)
        .answer::<TaskView>(200, "The task.")
        .problems(&[404])
        .add();
    spec.route(
        "GET",
        "/api/tasks/{id}/status",
        "Where a task stands, for polling",
    )
    .access(Access::OptionalUser)
    .answer::<task_routes::TaskStatus>(200, "The task's status and progress.")
    .problems(&[404])
    .add();
    spec.route("POST", "/api/admin/reports/sales", "Start a sales report")
        .access(Access::Admin)
        .body::<SalesReportInput>()
        .without_command_headers()
        .not_in_background()
        .answer_schema(
            202,
            "Queued: poll `status_url`.",
            json!({"$ref": "#/components/schemas/Queued"}),
        )
        .add();
    spec.route(
        "POST",
        "/api/admin/products/ratings/recompute",
        "Recompute every product's rating",
    )
    .access(Access::Admin)
    .without_command_headers()
    .not_in_background()
    .answer_schema(
        202,
        "Queued: poll `status_url`.",
        json!({"$ref": "#/components/schemas/Queued"}),
    )
    .add();
}

fn administration(spec: &mut Spec) {
    let projections = spec.schema::<Vec<ProjectionReport>>();
    spec.route(
        "GET",
        "/api/admin/projections",
        "Each projection's progress and health",
    )
    .access(Access::Admin)
    .answer_schema(200, "One report per projection.", projections)
    .add();
    spec.route(
        "POST",
        "/api/admin/projections/{name}/rebuild",
        "Rebuild a read model beside the live one, then swap it in",
    )
    .access(Access::Admin)
    .without_command_headers()
    .not_in_background()
    .answer_schema(
        202,
        "Queued: poll `status_url`.",
        json!({"$ref": "#/components/schemas/Queued"}),
    )
    .problems(&[404])
    .add();
    let mail = spec.schema::<MailRecord>();
    let mails = items(spec, mail);
    spec.route("GET", "/api/admin/emails", "The mail log, newest first")
        .access(Access::Admin)
        .query::<admin::EmailParams>()
        .answer_schema(200, "The mails.", mails)
        .add();
    let schedule = spec.schema::<ScheduleRecord>();
    let every_schedule = items(spec, schedule);
    spec.route("GET", "/api/admin/schedules", "Every schedule")
        .access(Access::Admin)
        .answer_schema(200, "The schedules.", every_schedule)
        .add();
    spec.route("POST", "/api/admin/schedules", "Create a schedule")
        .access(Access::Admin)
        .body::<schedules::ScheduleBody>()
        .without_command_headers()
        .answer::<ScheduleRecord>(201, "The schedule.")
        .problems(&[409])
        .add();
    spec.route("GET", "/api/admin/schedules/{id}", "One schedule")
        .access(Access::Admin)
        .answer::<ScheduleRecord>(200, "The schedule.")
        .problems(&[404])
        .add();
    spec.route("PATCH", "/api/admin/schedules/{id}", "Change a schedule")
        .access(Access::Admin)
        .body::<schedules::ScheduleBody>()
        .answer::<ScheduleRecord>(200, "The schedule after the change.")
        .problems(&[404, 409])
        .add();
    spec.route("DELETE", "/api/admin/schedules/{id}", "Delete a schedule")
        .access(Access::Admin)
        .answer::<ScheduleRecord>(200, "The schedule as it was.")
        .problems(&[404, 409])
        .add();
    let run = spec.schema::<RunRecord>();
    let runs = items(spec, run);
    spec.route(
        "GET",
        "/api/admin/schedules/{id}/runs",
        "A schedule's runs, newest first",
    )
    .access(Access::Admin)
    .query::<schedules::RunsParams>()
    .answer_schema(200, "The runs.", runs)
    .problems(&[404])
    .add();
}

fn auditing(spec: &mut Spec) {
    spec.route("GET", "/api/audit/events", "Every event by global position")
        .access(Access::Auditor)
        .query::<audit::FeedQuery>()
        .answer::<audit::Feed>(200, "A page of events.")
        .add();
    let events = spec.schema::<Vec<RelayedEvent>>();
    spec.route(
        "GET",
        "/api/audit/streams/{aggregate_type}/{aggregate_id}",
        "One aggregate's events in sequence",
    )
    .access(Access::Auditor)
    .answer_schema(200, "The events.", events.clone())
    .problems(&[404])
    .add();
    spec.route(
        "GET",
        "/api/audit/streams/{aggregate_type}/{aggregate_id}/state",
        "An aggregate as of a time or version",
    )
    .access(Access::Auditor)
    .query::<audit::StateQuery>()
    .answer::<AggregateState>(200, "The aggregate rebuilt from its events up to then.")
    .problems(&[404])
    .add();
    spec.route(
        "GET",
        "/api/audit/correlations/{correlation_id}",
        "Every event one request or process caused",
    )
    .access(Access::Auditor)
    .answer_schema(200, "The events in commit order.", events)
    .problems(&[404, 422])
    .add();
    spec.route(
        "GET",
        "/api/audit/export",
        "Every event as NDJSON, streamed",
    )
    .access(Access::Auditor)
    .query::<audit::ExportQuery>()
    .answer_raw(
        200,
        "One event envelope per line, in commit order.",
        "application/x-ndjson",
    )
    .add();
    spec.route("GET", "/api/audit/verify", "Check the hash chain")
        .access(Access::Auditor)
        .answer::<Verification>(200, "The verification.")
        .add();
}
