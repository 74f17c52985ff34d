//! Every endpoint × every role: anonymous, a customer (the owner of the resources named), another
//! customer, an admin and an auditor. A customer reaches only their own things (another's id is
//! 404, so existence does not leak), admin endpoints answer 403 to others, auditors read the
//! audit endpoints and change nothing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Anonymous,
    Owner,
    OtherCustomer,
    Admin,
    Auditor,
}

#[derive(Debug, Clone, Copy)]
enum Access {
    /// Anyone, signed in or not (but auditors change nothing).
    Public,
    /// Login and refresh, given wrong credentials here: 401 for everyone, auditors included.
    Credentials,
    /// Any signed-in user, about themselves (auditors too may read, but change nothing).
    SignedIn,
    /// Managing one's own session and password: every signed-in user, auditors included.
    OwnAccount,
    /// A resource of the owner's: the owner and admins; anyone else gets 404.
    Owned,
    /// A task: like `Owned`, but readable without a token (a task queued anonymously is read
    /// by its random id), so an anonymous reader of another's task gets 404 too.
    Task,
    Admin,
    /// The audit endpoints: auditors and admins.
    Audit,
}

#[derive(Debug, PartialEq)]
enum Expect {
    /// Reached the handler: neither 401, 403 nor 404 (a 409 or 422 about the body is fine).
    Reached,
    Status(u16),
}

fn expected(access: Access, role: Role, method: &Method) -> Expect {
    let command = *method != Method::GET;
    match (access, role) {
        (Access::Public, Role::Auditor) if command => Expect::Status(403),
        (Access::Public, _) => Expect::Reached,
        (Access::Task, Role::Owner | Role::Admin) => Expect::Reached,
        (Access::Task, _) => Expect::Status(404),
        (Access::Credentials, _) => Expect::Status(401),
        (_, Role::Anonymous) => Expect::Status(401),
        (Access::SignedIn, Role::Auditor) if command => Expect::Status(403),
        (Access::SignedIn | Access::OwnAccount, _) => Expect::Reached,
        (Access::Owned, Role::Owner | Role::Admin) => Expect::Reached,
        (Access::Owned, Role::Auditor) if command => Expect::Status(403),
        (Access::Owned, _) => Expect::Status(404),
        (Access::Admin, Role::Admin) => Expect::Reached,
        (Access::Admin, _) => Expect::Status(403),
        (Access::Audit, Role::Admin | Role::Auditor) => Expect::Reached,
        (Access::Audit, _) => Expect::Status(403),
    }
}

struct World {
    owner: String,
    other: String,
    admin: String,
    auditor: String,
    owner_id: String,
    order_id: String,
    payment_id: String,
    product_id: String,
    doomed_product_id: String,
    doomed_user_ids: Vec<String>,
    task_id: String,
    schedule_id: String,
}

async fn grant(app: &TestApp, admin: &str, user_id: &str, role: &str) {
    let response = app
        .post(
            &format!("/api/users/{user_id}/roles"),
            Some(admin),
            json!({"role": role}),
        )
        .await;
    assert_eq!(response.status(), 200);
}

async fn world(app: &TestApp) -> World {
    let admin = app.admin_token().await;
    let product_id = app.add_book(&admin, "Dune", 100).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let doomed_product_id = app.add_book(&admin, "Doomed", 1).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (owner_id, owner) = app.customer("owner").await;
    let (_, other) = app.customer("other").await;
    let (auditor_id, _) = app.customer("auditor").await;
    grant(app, &admin, &auditor_id, "auditor").await;
    let auditor = app
        .login("auditor@example.com", crate::helpers::PASSWORD)
        .await;
    let mut doomed_user_ids = Vec::new();
    for n in 0..5 {
        let (id, _) = app.customer(&format!("doomed{n}")).await;
        doomed_user_ids.push(id);
    }
    let placed = app
        .request(Method::POST, "/api/orders", Some(&owner))
        .header("Prefer", "wait=5")
        .json(
            &json!({"lines": [{"product_id": product_id, "quantity": 1}],
                      "payment": {"method": "card", "card": "4242 4242 4242 4242"}}),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(placed.status(), 201);
    let order: Value = placed.json().await.expect("json");
    let order_id = order["id"].as_str().expect("order id").to_string();
    let payment_id = wait_for_payment(app, &owner).await;
    let queued = app
        .request(Method::POST, "/api/users/me/deposits", Some(&owner))
        .header("Prefer", "respond-async")
        .json(&json!({"amount_cents": 100}))
        .send()
        .await
        .expect("sent");
    assert_eq!(queued.status(), 202);
    let task_id = queued.json::<Value>().await.expect("json")["task_id"]
        .as_str()
        .expect("task id")
        .to_string();
    let scheduled = app
        .post(
            "/api/admin/schedules",
            Some(&admin),
            json!({"name": "nightly", "job_kind": "housekeeping", "params": {}, "cron": "0 0 3 * * *"}),
        )
        .await;
    assert_eq!(scheduled.status(), 201);
    let schedule_id = scheduled.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("schedule id")
        .to_string();
    World {
        owner,
        other,
        admin,
        auditor,
        owner_id,
        order_id,
        payment_id,
        product_id,
        doomed_product_id,
        doomed_user_ids,
        task_id,
        schedule_id,
    }
}

async fn wait_for_payment(app: &TestApp, token: &str) -> String {
    for _ in 0..100 {
        let page: Value = app
            .get("/api/payments", Some(token))
            .await
            .json()
            .await
            .expect("json");
        if let Some(id) = page["items"][0]["id"].as_str() {
            return id.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the payment never showed");
}

#[tokio::test]
async fn every_endpoint_answers_each_role_as_its_access_rule_says() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = &w.order_id;
    let product = &w.product_id;
    let doomed_product = &w.doomed_product_id;
    let owner_id = &w.owner_id;
    // Commands that change their target for good get a target of their own per role.
    let doomed = |n: usize| w.doomed_user_ids[n].clone();
    let card = json!({"method": "card", "card": "4242 4242 4242 4242"});
    let endpoints: Vec<(Method, String, Value, Access)> = vec![
        (Method::GET, "/health".into(), Value::Null, Access::Public),
        (Method::GET, "/metrics".into(), Value::Null, Access::Public),
        (
            Method::GET,
            "/api/products".into(),
            Value::Null,
            Access::Public,
        ),
        (
            Method::GET,
            format!("/api/products/{product}"),
            Value::Null,
            Access::Public,
        ),
        (
            Method::GET,
            format!("/api/products/{product}/reviews"),
            Value::Null,
            Access::Public,
        ),
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"email": "x"}),
            Access::Public,
        ),
        (
            Method::POST,
            "/api/auth/login".into(),
            json!({"email": "x@example.com", "password": "wrong-password-1"}),
            Access::Credentials,
        ),
        (
            Method::POST,
            "/api/auth/refresh".into(),
            json!({"refresh_token": "nope"}),
            Access::Credentials,
        ),
        (
            Method::GET,
            "/api/users/me".into(),
            Value::Null,
            Access::SignedIn,
        ),
        (
            Method::PATCH,
            "/api/users/me".into(),
            json!({}),
            Access::SignedIn,
        ),
        (
            Method::POST,
            "/api/users/me/deposits".into(),
            json!({"amount_cents": 100}),
            Access::SignedIn,
        ),
        (
            Method::POST,
            "/api/users/me/password".into(),
            json!({"current_password": "wrong-password-1", "new_password": "plum-velvet-42"}),
            Access::OwnAccount,
        ),
        (
            Method::POST,
            "/api/purchases".into(),
            json!({"product_id": product, "quantity": 1, "payment_method": "balance"}),
            Access::SignedIn,
        ),
        (
            Method::POST,
            "/api/orders".into(),
            json!({"lines": [{"product_id": product, "quantity": 1}], "payment": card}),
            Access::SignedIn,
        ),
        (
            Method::GET,
            "/api/orders".into(),
            Value::Null,
            Access::SignedIn,
        ),
        (
            Method::GET,
            format!("/api/orders/{order}"),
            Value::Null,
            Access::Owned,
        ),
        (
            Method::POST,
            format!("/api/orders/{order}/cancel"),
            json!({}),
            Access::Owned,
        ),
        (
            Method::POST,
            format!("/api/orders/{order}/payments"),
            card.clone(),
            Access::Owned,
        ),
        (
            Method::GET,
            "/api/payments".into(),
            Value::Null,
            Access::SignedIn,
        ),
        (
            Method::GET,
            format!("/api/payments/{}", w.payment_id),
            Value::Null,
            Access::Owned,
        ),
        (
            Method::GET,
            "/api/cart".into(),
            Value::Null,
            Access::SignedIn,
        ),
        (
            Method::PUT,
            format!("/api/cart/items/{product}"),
            json!({"quantity": 1}),
            Access::SignedIn,
        ),
        (
            Method::DELETE,
            format!("/api/cart/items/{product}"),
            Value::Null,
            Access::SignedIn,
        ),
        (
            Method::POST,
            "/api/cart/checkout".into(),
            json!({"payment": card}),
            Access::SignedIn,
        ),
        (
            Method::GET,
            "/api/wishlist".into(),
            Value::Null,
            Access::SignedIn,
        ),
        (
            Method::PUT,
            format!("/api/wishlist/items/{product}"),
            json!({}),
            Access::SignedIn,
        ),
        (
            Method::DELETE,
            format!("/api/wishlist/items/{product}"),
            Value::Null,
            Access::SignedIn,
        ),
        (
            Method::POST,
            format!("/api/products/{product}/reviews"),
            json!({"rating": 5, "comment": "Great"}),
            Access::SignedIn,
        ),
        (
            Method::POST,
            "/api/products".into(),
            json!({"title": "T", "author": "A", "published_date": "2000-01-01", "price_cents": 100, "stock": 1, "category": "c"}),
            Access::Admin,
        ),
        (
            Method::PATCH,
            format!("/api/products/{product}"),
            json!({"description": "Sand."}),
            Access::Admin,
        ),
        (
            Method::POST,
            format!("/api/products/{product}/restock"),
            json!({"quantity": 1}),
            Access::Admin,
        ),
        (
            Method::DELETE,
            format!("/api/products/{doomed_product}"),
            Value::Null,
            Access::Admin,
        ),
        (Method::GET, "/api/users".into(), Value::Null, Access::Admin),
        (
            Method::GET,
            format!("/api/users/{owner_id}"),
            Value::Null,
            Access::Admin,
        ),
        (
            Method::PATCH,
            format!("/api/users/{owner_id}"),
            json!({}),
            Access::Admin,
        ),
        (
            Method::DELETE,
            format!("/api/users/{}", doomed(0)),
            Value::Null,
            Access::Admin,
        ),
        (
            Method::POST,
            format!("/api/users/{}/reactivate", doomed(0)),
            json!({}),
            Access::Admin,
        ),
        (
            Method::POST,
            format!("/api/users/{}/roles", doomed(1)),
            json!({"role": "auditor"}),
            Access::Admin,
        ),
        (
            Method::DELETE,
            format!("/api/users/{}/roles/auditor", doomed(1)),
            Value::Null,
            Access::Admin,
        ),
        (
            Method::POST,
            format!("/api/admin/users/{}/erase", doomed(2)),
            json!({}),
            Access::Admin,
        ),
        (
            Method::GET,
            "/api/admin/projections".into(),
            Value::Null,
            Access::Admin,
        ),
        (
            Method::GET,
            "/api/tasks".into(),
            Value::Null,
            Access::SignedIn,
        ),
        (
            Method::GET,
            format!("/api/tasks/{}", w.task_id),
            Value::Null,
            Access::Task,
        ),
        (
            Method::POST,
            "/api/admin/reports/sales".into(),
            json!({"from": "2026-01-01", "to": "2026-01-31"}),
            Access::Admin,
        ),
        (
            Method::POST,
            "/api/admin/products/ratings/recompute".into(),
            json!({}),
            Access::Admin,
        ),
        (
            Method::GET,
            "/api/admin/emails".into(),
            Value::Null,
            Access::Admin,
        ),
        (
            Method::GET,
            "/api/admin/schedules".into(),
            Value::Null,
            Access::Admin,
        ),
        (
            Method::POST,
            "/api/admin/schedules".into(),
            json!({"name": "n", "job_kind": "housekeeping", "params": {}, "every_seconds": 3600}),
            Access::Admin,
        ),
        (
            Method::GET,
            format!("/api/admin/schedules/{}", w.schedule_id),
            Value::Null,
            Access::Admin,
        ),
        (
            Method::PATCH,
            format!("/api/admin/schedules/{}", w.schedule_id),
            json!({"enabled": false}),
            Access::Admin,
        ),
        (
            Method::GET,
            format!("/api/admin/schedules/{}/runs", w.schedule_id),
            Value::Null,
            Access::Admin,
        ),
        (
            Method::DELETE,
            format!("/api/admin/schedules/{}", w.schedule_id),
            Value::Null,
            Access::Admin,
        ),
        (
            Method::GET,
            "/api/audit/events".into(),
            Value::Null,
            Access::Audit,
        ),
        (
            Method::GET,
            format!("/api/audit/streams/user/{owner_id}"),
            Value::Null,
            Access::Audit,
        ),
        (
            Method::GET,
            format!(
                "/api/audit/events?aggregate_type=user&actor={owner_id}&event_type=UserRegistered"
            ),
            Value::Null,
            Access::Audit,
        ),
        (
            Method::GET,
            format!("/api/audit/correlations/{order}"),
            Value::Null,
            Access::Audit,
        ),
        (
            Method::GET,
            format!("/api/audit/streams/user/{owner_id}/state?version=1"),
            Value::Null,
            Access::Audit,
        ),
        (
            Method::GET,
            "/api/audit/export".into(),
            Value::Null,
            Access::Audit,
        ),
        (
            Method::GET,
            "/api/audit/verify".into(),
            Value::Null,
            Access::Audit,
        ),
        // Last: it ends the session it is called with.
        (
            Method::POST,
            "/api/auth/logout".into(),
            json!({}),
            Access::OwnAccount,
        ),
    ];
    let roles = [
        (Role::Anonymous, None),
        (Role::OtherCustomer, Some(w.other.as_str())),
        (Role::Auditor, Some(w.auditor.as_str())),
        (Role::Owner, Some(w.owner.as_str())),
        (Role::Admin, Some(w.admin.as_str())),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, access) in &endpoints {
        for (role, token) in &roles {
            let mut request = app.request(method.clone(), path, *token);
            if !body.is_null() {
                request = request.json(body);
            }
            let status = request.send().await.expect("sent").status().as_u16();
            let expectation = expected(*access, *role, method);
            let fine = status < 500
                && match expectation {
                    Expect::Reached => ![401, 403, 404].contains(&status),
                    Expect::Status(expected) => status == expected,
                };
            if !fine {
                wrong.push(format!(
                    "{method} {path} as {role:?}: {status}, expected {expectation:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    app.shutdown().await;
}

#[tokio::test]
async fn an_auditor_reads_the_history_with_personal_data_sealed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (auditor_id, _) = app.customer("reader").await;
    grant(&app, &admin, &auditor_id, "auditor").await;
    let auditor = app
        .login("reader@example.com", crate::helpers::PASSWORD)
        .await;

    let page: Value = app
        .get("/api/audit/events?limit=2", Some(&auditor))
        .await
        .json()
        .await
        .expect("json");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["position"].as_i64(), Some(1));
    let next = page["next_after"].as_i64().expect("more");
    let rest: Value = app
        .get(&format!("/api/audit/events?after={next}"), Some(&auditor))
        .await
        .json()
        .await
        .expect("json");
    assert!(rest["items"].as_array().is_some_and(|items| items
        .iter()
        .all(|event| event["position"].as_i64() > Some(next))));
    let history: Value = app
        .get(
            &format!("/api/audit/streams/user/{auditor_id}"),
            Some(&auditor),
        )
        .await
        .json()
        .await
        .expect("json");
    let registered = &history[0]["payload"]["data"];
    assert!(registered["email"]["sealed"].is_string(), "{registered}");
    assert!(registered.get("password_hash").is_none(), "{registered}");
    assert_eq!(
        history.as_array().map(Vec::len),
        Some(2),
        "registered, granted"
    );
    app.shutdown().await;
}
