//! The category tree over HTTP: admin create/rename/move/delete with their rules (a slug unique
//! among siblings, no cycles, no deleting a category in use), the tree with paths and product
//! counts that include descendants, products filed by id or by free text, `category_id` filters
//! that include descendants, breadcrumbs, products stored before the tree, and concurrency.

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(30);

async fn create(app: &TestApp, admin: &str, body: Value) -> Value {
    let response = app.post("/api/categories", Some(admin), body.clone()).await;
    assert_eq!(response.status(), 201, "{body}");
    response.json().await.expect("json")
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("id").to_string()
}

/// The tree once `check` holds for it.
async fn tree_where(app: &TestApp, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(WAIT, what, || async {
        let tree: Value = app.get("/api/categories", None).await.json().await.ok()?;
        check(&tree).then_some(tree)
    })
    .await
}

/// The node `id` anywhere in `nodes`.
fn find<'a>(nodes: &'a Value, id: &str) -> Option<&'a Value> {
    nodes.as_array()?.iter().find_map(|node| {
        if node["id"] == id {
            Some(node)
        } else {
            find(&node["children"], id)
        }
    })
}

fn slugs(path: &Value) -> Vec<&str> {
    path.as_array()
        .expect("path")
        .iter()
        .map(|crumb| crumb["slug"].as_str().expect("slug"))
        .collect()
}

fn book(title: &str, category: Value) -> Value {
    let mut body = json!({"title": title, "author": "Frank Herbert",
        "published_date": "1965-08-01", "price_cents": 1999, "stock": 3});
    let fields = body.as_object_mut().expect("object");
    for (key, value) in category.as_object().expect("object") {
        fields.insert(key.clone(), value.clone());
    }
    body
}

async fn add(app: &TestApp, admin: &str, title: &str, category: Value) -> Value {
    let response = app
        .post("/api/products", Some(admin), book(title, category))
        .await;
    assert_eq!(response.status(), 201, "adding {title}");
    response.json().await.expect("json")
}

async fn titles(app: &TestApp, query: &str) -> Vec<String> {
    let response = app.get(&format!("/api/products?{query}"), None).await;
    assert_eq!(response.status(), 200, "{query}");
    let page: Value = response.json().await.expect("json");
    let mut titles: Vec<String> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["title"].as_str().expect("title").to_string())
        .collect();
    titles.sort();
    titles
}

#[tokio::test]
async fn admins_build_the_tree_and_its_rules_hold() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, customer) = app.customer("cleo").await;

    assert_problem(
        app.post(
            "/api/categories",
            Some(&customer),
            json!({"name": "Fiction"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let fiction = create(&app, &admin, json!({"name": "Fiction"})).await;
    assert_eq!(fiction["slug"], "fiction");
    assert_eq!(fiction["parent"], Value::Null);
    assert_eq!(fiction["version"], 1);
    let fiction = id_of(&fiction);
    let sf = id_of(
        &create(
            &app,
            &admin,
            json!({"name": "Science Fiction", "parent_id": fiction}),
        )
        .await,
    );
    let opera = id_of(
        &create(
            &app,
            &admin,
            json!({"name": "Space Opera", "slug": "space-opera", "parent_id": sf}),
        )
        .await,
    );
    let history = id_of(&create(&app, &admin, json!({"name": "History"})).await);

    // A slug is unique among siblings only.
    assert_problem(
        app.post(
            "/api/categories",
            Some(&admin),
            json!({"name": "SF again", "slug": "science-fiction", "parent_id": fiction}),
        )
        .await,
        409,
        "category_slug_taken",
    )
    .await;
    create(
        &app,
        &admin,
        json!({"name": "Science Fiction", "parent_id": history}),
    )
    .await;
    // Invalid input and unknown parents.
    let invalid = assert_problem(
        app.post(
            "/api/categories",
            Some(&admin),
            json!({"name": "", "slug": "Bad Slug"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        invalid["errors"].as_array().map(Vec::len),
        Some(2),
        "{invalid}"
    );
    assert_problem(
        app.post(
            "/api/categories",
            Some(&admin),
            json!({"name": "Orphan", "parent_id": Uuid::now_v7()}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;

    // No cycles: not under itself, not under a descendant.
    for parent in [&fiction, &sf, &opera] {
        assert_problem(
            app.patch(
                &format!("/api/categories/{fiction}"),
                Some(&admin),
                json!({"parent_id": parent}),
            )
            .await,
            422,
            "category_cycle",
        )
        .await;
    }

    // The tree: paths from the top, children under their parent.
    let tree = tree_where(&app, "the tree of four", |tree| {
        find(tree, &opera).is_some() && tree.as_array().map(Vec::len) == Some(2)
    })
    .await;
    let node = find(&tree, &opera).expect("opera");
    assert_eq!(
        slugs(&node["path"]),
        ["fiction", "science-fiction", "space-opera"]
    );
    assert_eq!(
        tree.as_array().expect("roots")[0]["children"][0]["id"],
        sf.as_str()
    );

    // Rename and move in one request.
    let changed = app
        .patch(
            &format!("/api/categories/{sf}"),
            Some(&admin),
            json!({"name": "Sci-Fi", "slug": "sci-fi", "parent_id": null}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.expect("json");
    assert_eq!(
        (&changed["name"], &changed["slug"], &changed["parent"]),
        (&json!("Sci-Fi"), &json!("sci-fi"), &Value::Null)
    );
    // The move and the rename are two events: wait for both.
    let tree = tree_where(&app, "sci-fi at the top, renamed", |tree| {
        tree.as_array().map(Vec::len) == Some(3)
            && find(tree, &opera).is_some_and(|node| node["path"][0]["slug"] == "sci-fi")
    })
    .await;
    assert_eq!(
        slugs(&find(&tree, &opera).expect("opera")["path"]),
        ["sci-fi", "space-opera"]
    );
    // Its former slug is free again under fiction.
    create(
        &app,
        &admin,
        json!({"name": "Science Fiction", "parent_id": fiction}),
    )
    .await;

    let detail = app.get(&format!("/api/categories/{sf}"), None).await;
    assert_eq!(detail.status(), 200);
    let detail: Value = detail.json().await.expect("json");
    assert_eq!(detail["children"][0]["id"], opera.as_str());
    assert_problem(
        app.get(&format!("/api/categories/{}", Uuid::now_v7()), None)
            .await,
        404,
        "not_found",
    )
    .await;

    // A category with children cannot go; an empty one can.
    assert_problem(
        app.request(
            reqwest::Method::DELETE,
            &format!("/api/categories/{sf}"),
            Some(&admin),
        )
        .send()
        .await
        .expect("sent"),
        409,
        "category_in_use",
    )
    .await;
    let deleted = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/categories/{opera}"),
            Some(&admin),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(deleted.status(), 200);
    tree_where(&app, "space opera gone", |tree| {
        find(tree, &opera).is_none()
    })
    .await;
    assert_problem(
        app.get(&format!("/api/categories/{opera}"), None).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn products_are_filed_counted_and_filtered_with_every_descendant() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let fiction = id_of(&create(&app, &admin, json!({"name": "Fiction"})).await);
    let sf = id_of(
        &create(
            &app,
            &admin,
            json!({"name": "Science Fiction", "parent_id": fiction}),
        )
        .await,
    );
    let opera = id_of(
        &create(
            &app,
            &admin,
            json!({"name": "Space Opera", "parent_id": sf}),
        )
        .await,
    );

    // By id: the text defaults to the category's name.
    let dune = add(&app, &admin, "Dune", json!({"category_id": opera})).await;
    assert_eq!(dune["category"], "Space Opera");
    assert_eq!(dune["category_id"], opera.as_str());
    add(&app, &admin, "Hyperion", json!({"category_id": sf})).await;
    // By free text: the top-level category of that slug, the existing one or a new one.
    let emma = add(&app, &admin, "Emma", json!({"category": "Fiction"})).await;
    assert_eq!(emma["category_id"], fiction.as_str());
    let odes = add(&app, &admin, "Odes", json!({"category": "Poetry"})).await;
    let poetry = odes["category_id"].as_str().expect("filed").to_string();
    assert_problem(
        app.post(
            "/api/products",
            Some(&admin),
            book("Nowhere", json!({"category_id": Uuid::now_v7()})),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.post("/api/products", Some(&admin), book("Nothing", json!({})))
            .await,
        422,
        "validation_failed",
    )
    .await;

    // Counts include descendants.
    let tree = tree_where(&app, "four products counted", |tree| {
        find(tree, &fiction).map(|n| n["products"].clone()) == Some(json!(3))
            && find(tree, &poetry).map(|n| n["products"].clone()) == Some(json!(1))
    })
    .await;
    assert_eq!(find(&tree, &sf).expect("sf")["products"], 2);
    assert_eq!(find(&tree, &opera).expect("opera")["products"], 1);

    // Filters include every descendant.
    assert_eq!(
        titles(&app, &format!("category_id={fiction}")).await,
        ["Dune", "Emma", "Hyperion"]
    );
    assert_eq!(
        titles(&app, &format!("category_id={sf}")).await,
        ["Dune", "Hyperion"]
    );
    assert_eq!(
        titles(&app, &format!("category_id={opera}")).await,
        ["Dune"]
    );
    assert_eq!(
        titles(&app, &format!("category_id={poetry}")).await,
        ["Odes"]
    );
    assert_eq!(
        titles(&app, &format!("category_id={fiction}&title=dun")).await,
        ["Dune"]
    );
    assert!(titles(&app, &format!("category_id={}", Uuid::now_v7()))
        .await
        .is_empty());
    assert_problem(
        app.get("/api/products?category_id=fiction", None).await,
        422,
        "validation_failed",
    )
    .await;
    // The free-text filter is as before.
    assert_eq!(titles(&app, "category=Fiction").await, ["Emma"]);

    // Breadcrumbs; `category` stays the text.
    let id = id_of(&dune);
    let shown: Value = app
        .get(&format!("/api/products/{id}"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(shown["category"], "Space Opera");
    assert_eq!(shown["category_ref"]["id"], opera.as_str());
    assert_eq!(shown["category_ref"]["name"], "Space Opera");
    assert_eq!(
        slugs(&shown["category_ref"]["path"]),
        ["fiction", "science-fiction", "space-opera"]
    );
    // A search answered by the index shows them too (from the tree kept in memory).
    let searched_path = || async {
        let page: Value = app
            .get("/api/products?search=dune", None)
            .await
            .json()
            .await
            .ok()?;
        let path = &page["items"].as_array()?.first()?["category_ref"]["path"];
        Some(slugs(path).join("/"))
    };
    eventually(WAIT, "dune found by the index", || async {
        (searched_path().await? == "fiction/science-fiction/space-opera").then_some(())
    })
    .await;

    // A category with products cannot go.
    assert_problem(
        app.request(
            reqwest::Method::DELETE,
            &format!("/api/categories/{opera}"),
            Some(&admin),
        )
        .send()
        .await
        .expect("sent"),
        409,
        "category_in_use",
    )
    .await;

    // Renaming a category changes the breadcrumbs shown (the cache is dropped).
    let renamed = app
        .patch(
            &format!("/api/categories/{sf}"),
            Some(&admin),
            json!({"name": "SF", "slug": "sf"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    eventually(WAIT, "the new breadcrumbs", || async {
        let shown: Value = app
            .get(&format!("/api/products/{id}"), None)
            .await
            .json()
            .await
            .ok()?;
        (slugs(&shown["category_ref"]["path"]) == ["fiction", "sf", "space-opera"]).then_some(())
    })
    .await;
    eventually(WAIT, "the new breadcrumbs in a search", || async {
        (searched_path().await? == "fiction/sf/space-opera").then_some(())
    })
    .await;

    // Moving a product to another category.
    let moved = app
        .patch(
            &format!("/api/products/{id}"),
            Some(&admin),
            json!({"category_id": poetry}),
        )
        .await;
    assert_eq!(moved.status(), 200);
    eventually(WAIT, "dune under poetry", || async {
        let listed = titles(&app, &format!("category_id={poetry}")).await;
        (listed == ["Dune", "Odes"]).then_some(())
    })
    .await;
    assert_eq!(
        titles(&app, &format!("category_id={fiction}")).await,
        ["Emma", "Hyperion"]
    );
}

#[tokio::test]
async fn products_stored_before_the_tree_appear_under_their_top_level_category() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    // A product as events stored before the tree have it: free text, no category id.
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         VALUES ('product', $1, 1, 'ProductAdded', '1', $2, $3)",
    )
    .bind(id.to_string())
    .bind(
        json!({"type": "ProductAdded", "data": {"title": "Foundation",
        "author": "Isaac Asimov", "published_date": "1951-06-01", "description": "",
        "price_cents": 999, "stock": 4, "category": "Science Fiction"}}),
    )
    .bind(
        json!({"event_id": Uuid::now_v7(), "command_id": Uuid::now_v7(),
        "correlation_id": Uuid::now_v7(), "causation_id": Uuid::now_v7(),
        "actor": "system", "request_id": "old"}),
    )
    .execute(&app.pool)
    .await
    .expect("stored the old event");
    let shown = eventually(WAIT, "the old product", || async {
        let response = app.get(&format!("/api/products/{id}"), None).await;
        if response.status() != 200 {
            return None;
        }
        response.json::<Value>().await.ok()
    })
    .await;
    assert_eq!(shown["category"], "Science Fiction");
    assert_eq!(shown.get("category_ref"), None, "no such category yet");

    // The top-level category of that slug: the product appears under it.
    let sf = id_of(
        &create(
            &app,
            &admin,
            json!({"name": "Sci-Fi", "slug": "science-fiction"}),
        )
        .await,
    );
    let tree = tree_where(&app, "the old product counted", |tree| {
        find(tree, &sf).map(|n| n["products"].clone()) == Some(json!(1))
    })
    .await;
    assert_eq!(tree.as_array().map(Vec::len), Some(1));
    assert_eq!(
        titles(&app, &format!("category_id={sf}")).await,
        ["Foundation"]
    );
    let shown = eventually(WAIT, "the old product's breadcrumbs", || async {
        let shown: Value = app
            .get(&format!("/api/products/{id}"), None)
            .await
            .json()
            .await
            .ok()?;
        shown.get("category_ref").is_some().then_some(shown)
    })
    .await;
    assert_eq!(shown["category_ref"]["id"], sf.as_str());
    assert_eq!(slugs(&shown["category_ref"]["path"]), ["science-fiction"]);
    // Under a subcategory, the rule does not apply: only the top level holds old products.
    let child = id_of(&create(&app, &admin, json!({"name": "Classics", "parent_id": sf})).await);
    assert!(titles(&app, &format!("category_id={child}"))
        .await
        .is_empty());
    // And a new product by the same text joins the same category.
    let new = add(
        &app,
        &admin,
        "I, Robot",
        json!({"category": "science fiction"}),
    )
    .await;
    assert_eq!(new["category_id"], sf.as_str());
}

#[tokio::test]
async fn concurrent_creations_of_one_slug_under_one_parent_leave_one_category() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let parent = id_of(&create(&app, &admin, json!({"name": "Fiction"})).await);
    let attempts = (0..8).map(|n| {
        let app = &app;
        let admin = &admin;
        let parent = &parent;
        async move {
            app.post(
                "/api/categories",
                Some(admin),
                json!({"name": format!("Horror {n}"), "slug": "horror", "parent_id": parent}),
            )
            .await
            .status()
            .as_u16()
        }
    });
    let mut statuses = futures::future::join_all(attempts).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);

    // Products filed by one new free-text category at once: one top-level category holds all.
    let adds = (0..6).map(|n| {
        let app = &app;
        let admin = &admin;
        async move {
            app.post(
                "/api/products",
                Some(admin),
                book(&format!("Ghost {n}"), json!({"category": "Ghost Stories"})),
            )
            .await
            .json::<Value>()
            .await
            .expect("json")["category_id"]
                .clone()
        }
    });
    let filed = futures::future::join_all(adds).await;
    assert!(
        filed.iter().all(|id| id == &filed[0] && id.is_string()),
        "{filed:?}"
    );
    let ghosts = filed[0].as_str().expect("id").to_string();
    let tree = tree_where(&app, "six ghosts", |tree| {
        find(tree, &ghosts).map(|n| n["products"].clone()) == Some(json!(6))
    })
    .await;
    let tops: Vec<&str> = tree
        .as_array()
        .expect("roots")
        .iter()
        .map(|node| node["slug"].as_str().expect("slug"))
        .collect();
    assert_eq!(tops, ["fiction", "ghost-stories"]);
    let fiction = find(&tree, &parent).expect("fiction");
    assert_eq!(fiction["children"].as_array().map(Vec::len), Some(1));
}

/// A category deleted while products are filed in it and subcategories created under it, all at
/// once: either the delete is refused (409) and everything filed stays in a category that
/// exists, or it wins and nothing was filed in it. Never both: a deleted category holding
/// products or children. Each round reads the outcome from the store's side (the answers) and
/// from the read models once they caught up.
#[tokio::test]
async fn a_category_deleted_while_things_are_filed_in_it_never_keeps_them() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for round in 0..6 {
        let doomed = id_of(&create(&app, &admin, json!({"name": format!("Doomed {round}")})).await);
        // Each is filed (201) or refused because the category is gone (422), nothing else.
        let filed_or_refused = |path: &'static str, body: Value| {
            let (app, admin) = (&app, &admin);
            async move {
                let response = app.post(path, Some(admin), body).await;
                let status = response.status().as_u16();
                if ![201, 422].contains(&status) {
                    let body = response.text().await.unwrap_or_default();
                    panic!("round {round}: {status} {body}");
                }
                status
            }
        };
        let products = (0..4).map(|n| {
            let body = book(&format!("Book {round}.{n}"), json!({"category_id": doomed}));
            filed_or_refused("/api/products", body)
        });
        let children = (0..2).map(|n| {
            let body = json!({"name": format!("Child {round}.{n}"), "parent_id": doomed});
            filed_or_refused("/api/categories", body)
        });
        let delete = async {
            // Let the others start first, so that each order of events happens in some round.
            tokio::time::sleep(Duration::from_millis(round * 3)).await;
            app.request(
                reqwest::Method::DELETE,
                &format!("/api/categories/{doomed}"),
                Some(&admin),
            )
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16()
        };
        let (products, children, deleted) = tokio::join!(
            futures::future::join_all(products),
            futures::future::join_all(children),
            delete
        );
        let filed = products.iter().filter(|s| **s == 201).count()
            + children.iter().filter(|s| **s == 201).count();
        for status in products.iter().chain(&children) {
            assert!([201, 422].contains(status), "round {round}: {status}");
        }
        match deleted {
            200 | 204 => {
                assert_eq!(filed, 0, "round {round}: deleted, yet {filed} filed in it");
            }
            409 => {
                assert!(filed > 0, "round {round}: refused with nothing filed");
            }
            other => panic!("round {round}: the delete answered {other}"),
        }
        // The read models agree once they caught up: a deleted category is gone from the
        // tree, and no product shows it.
        let shown = format!("category_id={doomed}&limit=100");
        if deleted == 409 {
            let expected = products.iter().filter(|s| **s == 201).count();
            eventually(WAIT, "the products filed", || async {
                (titles(&app, &shown).await.len() == expected).then_some(())
            })
            .await;
        } else {
            let tree = tree_where(&app, "the category gone", |tree| {
                find(tree, &doomed).is_none()
            })
            .await;
            assert!(find(&tree, &doomed).is_none());
        }
    }
}

/// Two categories each moved under the other at the same moment: each move alone is fine, both
/// together would make a loop that no root reaches. At most one stands (the other, or both,
/// answered 422 `category_cycle`), and the tree the store holds has no loop.
#[tokio::test]
async fn two_moves_at_once_never_make_a_loop() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for round in 0..6 {
        let a = id_of(&create(&app, &admin, json!({"name": format!("A {round}")})).await);
        let b = id_of(&create(&app, &admin, json!({"name": format!("B {round}")})).await);
        let move_under = |this: &str, parent: &str| {
            let (app, admin) = (&app, &admin);
            let (this, parent) = (this.to_string(), parent.to_string());
            async move {
                let response = app
                    .patch(
                        &format!("/api/categories/{this}"),
                        Some(admin),
                        json!({"parent_id": parent}),
                    )
                    .await;
                let status = response.status().as_u16();
                let body: Value = response.json().await.expect("json");
                (status, body)
            }
        };
        let ((a_status, a_body), (b_status, b_body)) =
            tokio::join!(move_under(&a, &b), move_under(&b, &a));
        for (status, body) in [(a_status, &a_body), (b_status, &b_body)] {
            assert!(
                status == 200 || (status == 422 && body["code"] == "category_cycle"),
                "round {round}: {status} {body}"
            );
        }
        assert!(
            a_status != 200 || b_status != 200,
            "round {round}: both moves stood: {a_body} {b_body}"
        );
        // The read model settles on a tree where both are reachable from a root.
        let moved = if a_status == 200 {
            Some(&a)
        } else if b_status == 200 {
            Some(&b)
        } else {
            None
        };
        tree_where(&app, "both reachable from a root", |tree| {
            let both = find(tree, &a).is_some() && find(tree, &b).is_some();
            let settled = match moved {
                Some(child) => {
                    let parent = if child == &a { &b } else { &a };
                    find(tree, parent).is_some_and(|node| find(&node["children"], child).is_some())
                }
                None => true,
            };
            both && settled
        })
        .await;
    }
}
