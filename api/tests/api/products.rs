use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn an_admin_adds_changes_restocks_and_removes_a_book() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Dune", 10).await;
    let id = book["id"].as_str().expect("id");
    assert_eq!(book["display_name"], "Dune by Frank Herbert");
    assert_eq!(
        (book["price_cents"].as_i64(), book["stock"].as_i64()),
        (Some(1999), Some(10))
    );
    assert_eq!(book["version"], 1);

    let read: Value = app
        .get(&format!("/api/products/{id}?min_version=1"), None)
        .await
        .json()
        .await
        .expect("json");
    let mut read = read;
    let ratings = read.as_object_mut().expect("object");
    assert_eq!(ratings.remove("rating_count"), Some(json!(0)));
    assert_eq!(ratings.remove("rating_average"), Some(Value::Null));
    // Reads also show when the product was added and last changed.
    let created_at = ratings.remove("created_at").expect("created_at");
    assert_eq!(ratings.remove("updated_at"), Some(created_at));
    // Reads show the category's breadcrumbs once the categories read model has the category
    // (filed a moment ago by the free-text `category`); the command's answer has none.
    if let Some(crumbs) = ratings.remove("category_ref") {
        assert_eq!(crumbs["id"], book["category_id"], "{crumbs}");
    }
    assert_eq!(read, book);

    let changed = app
        .patch(
            &format!("/api/products/{id}"),
            Some(&admin),
            json!({"title": "Dune Messiah", "price_cents": 2499}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.expect("json");
    assert_eq!(
        (changed["title"].as_str(), changed["price_cents"].as_i64()),
        (Some("Dune Messiah"), Some(2499))
    );
    assert_eq!(changed["version"], 3, "details and price are two events");

    let restocked: Value = app
        .post(
            &format!("/api/products/{id}/restock"),
            Some(&admin),
            json!({"quantity": 5}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(restocked["stock"], 15);

    let removed = app
        .request(Method::DELETE, &format!("/api/products/{id}"), Some(&admin))
        .header("If-Match", "\"4\"")
        .send()
        .await
        .expect("sent");
    assert_eq!(removed.status(), 200);
    assert_problem(
        app.get(&format!("/api/products/{id}?min_version=5"), None)
            .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn customers_cannot_change_the_catalog() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, customer) = app.customer("gina").await;
    let id = app.add_book(&admin, "Emma", 3).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let add = app.post("/api/products", Some(&customer), json!({})).await;
    assert_problem(add, 403, "forbidden").await;
    let restock = app
        .post(
            &format!("/api/products/{id}/restock"),
            Some(&customer),
            json!({"quantity": 1}),
        )
        .await;
    assert_problem(restock, 403, "forbidden").await;
    let anonymous = app
        .post(
            &format!("/api/products/{id}/restock"),
            None,
            json!({"quantity": 1}),
        )
        .await;
    assert_problem(anonymous, 401, "unauthorized").await;
}

#[tokio::test]
async fn invalid_products_name_their_fields() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let response = app
        .post(
            "/api/products",
            Some(&admin),
            json!({"title": "", "author": "A", "published_date": "yesterday", "price_cents": -1,
                   "stock": -5, "category": "c"}),
        )
        .await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    let mut fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["price_cents", "published_date", "stock", "title"]);
}

#[tokio::test]
async fn unknown_or_malformed_product_ids_are_not_found() {
    let app = spawn_app().await;
    for id in ["not-a-uuid", &uuid::Uuid::now_v7().to_string()] {
        assert_problem(
            app.get(&format!("/api/products/{id}"), None).await,
            404,
            "not_found",
        )
        .await;
    }
}
