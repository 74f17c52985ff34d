//! The storefront's pages over HTTP, as a browser without JavaScript uses them: forms posted
//! with their CSRF token, cookies kept, redirects read (not followed).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, Response, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// A cookie-keeping visitor.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            base: app.url(""),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, method: Method, path: &str, form: &[(&str, &str)]) -> Response {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            let cookies: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header(COOKIE, cookies.join("; "));
        }
        if method == Method::POST {
            request = request.form(form);
        }
        let response = request.send().await.expect("request sent");
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().expect("ascii");
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        response
    }

    async fn get(&mut self, path: &str) -> Response {
        self.send(Method::GET, path, &[]).await
    }

    /// The page's HTML, which must answer 200.
    async fn page(&mut self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.expect("html")
    }

    /// Submits form `form_id` of the page at `page` (its CSRF token and hidden fields as the
    /// page gives them) with `fields`.
    async fn submit(&mut self, page: &str, form_id: &str, fields: &[(&str, &str)]) -> Response {
        let html = self.page(page).await;
        let form = form_html(&html, form_id);
        let action = attribute(form, "action").expect("the form's action");
        let mut values: Vec<(String, String)> = hidden_fields(form);
        values.retain(|(name, _)| !fields.iter().any(|(field, _)| field == name));
        values.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let pairs: Vec<(&str, &str)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.send(Method::POST, &action, &pairs).await
    }

    fn is_signed_in(&self) -> bool {
        self.cookies.contains_key("eshop_session")
    }
}

/// The markup of `<form id="{id}" ...>...</form>` in `html`.
fn form_html<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<form id=\"{id}\""))
        .unwrap_or_else(|| panic!("no form#{id} in {html}"));
    let end = html[start..].find("</form>").expect("the form's end");
    &html[start..start + end]
}

/// The value of `name="..."` in the first tag of `markup`.
fn attribute(markup: &str, name: &str) -> Option<String> {
    let tag = &markup[..markup.find('>')?];
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let value = &tag[at..at + tag[at..].find('"')?];
    Some(value.replace("&amp;", "&"))
}

/// The hidden inputs of a form, as (name, value).
fn hidden_fields(form: &str) -> Vec<(String, String)> {
    form.match_indices("<input type=\"hidden\"")
        .filter_map(|(at, _)| {
            let tag = &form[at..];
            Some((attribute(tag, "name")?, attribute(tag, "value")?))
        })
        .collect()
}

fn location(response: &Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .expect("a Location")
        .to_string()
}

/// A shopper who registered through the form (and is signed in by it), with money in the
/// wallet deposited through the account page.
async fn shopper(app: &TestApp, name: &str, deposit: &str) -> Browser {
    let mut browser = Browser::new(app);
    let email = format!("{name}@example.com");
    let registered = browser
        .submit(
            "/register",
            "register",
            &[
                ("email", &email),
                ("username", name),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(registered.status(), StatusCode::SEE_OTHER);
    assert!(browser.is_signed_in(), "registering signs in");
    if !deposit.is_empty() {
        let deposited = browser
            .submit("/account", "deposit", &[("amount", deposit)])
            .await;
        assert_eq!(deposited.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&deposited), "/account?notice=deposited");
    }
    browser
}

/// A product added by the admin, once the catalog's read model shows it.
async fn product(app: &TestApp, admin: &str, title: &str) -> String {
    let id = app.add_book(admin, title, 10).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    eventually(
        Duration::from_secs(10),
        "the product in the catalog",
        || async {
            (app.get(&format!("/api/products/{id}"), None).await.status() == 200).then_some(())
        },
    )
    .await;
    id
}

/// Puts `quantity` of the product in the cart through its page, and checks out with `payment`;
/// returns the order page's path.
async fn buy(browser: &mut Browser, product_id: &str, payment: &[(&str, &str)]) -> String {
    let page = format!("/products/{product_id}");
    let added = browser
        .submit(&page, "add-to-cart", &[("quantity", "2")])
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&added), "/cart?notice=added");
    let placed = browser.submit("/checkout", "checkout", payment).await;
    assert_eq!(
        placed.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        placed.text().await
    );
    let order = location(&placed);
    assert!(order.starts_with("/orders/"), "{order}");
    order
}

/// The order page's `data-status`, once it is `status`; returns the page.
async fn order_page_when(browser: &mut Browser, order: &str, status: &str) -> String {
    let wanted = format!("id=\"order-status\" data-status=\"{status}\"");
    for _ in 0..200 {
        let html = browser.page(order).await;
        if html.contains(&wanted) {
            return html;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{order} never showed {status}");
}

#[tokio::test]
async fn a_shopper_registers_signs_in_buys_with_the_wallet_and_sees_the_order_confirmed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let dune = product(&app, &admin, "Dune").await;
    let mut browser = shopper(&app, "wanda", "100.00").await;

    let signed_out = browser.submit("/", "signout", &[]).await;
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert!(!browser.is_signed_in());
    let signed_in = browser
        .submit(
            "/signin?next=/cart",
            "signin",
            &[("email", "wanda@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&signed_in), "/cart");
    assert!(browser.page("/account").await.contains("100.00"));

    let listed = browser
        .page("/products?category=science-fiction&in_stock=true")
        .await;
    assert!(
        listed.contains(&format!("href=\"/products/{dune}\"")),
        "{listed}"
    );

    let page = format!("/products/{dune}");
    let added = browser
        .submit(&page, "add-to-cart", &[("quantity", "2")])
        .await;
    assert_eq!(location(&added), "/cart?notice=added");
    let cart = browser.page("/cart").await;
    assert_eq!(cart.matches("class=\"cart-line\"").count(), 1);
    assert!(cart.contains("39.98"), "two at 19.99: {cart}");
    assert!(cart.contains("id=\"checkout\""));
    assert!(cart.contains("Cart (2)"), "the header counts the items");

    // The same form sent twice (a double click, a reload) places one order.
    let checkout = browser.page("/checkout").await;
    let form = form_html(&checkout, "checkout");
    let mut fields = hidden_fields(form);
    fields.push(("payment".into(), "wallet".into()));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let first = browser.send(Method::POST, "/checkout", &fields).await;
    let again = browser.send(Method::POST, "/checkout", &fields).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&first), location(&again));
    let order = location(&first);

    let shown = order_page_when(&mut browser, &order, "confirmed").await;
    assert!(shown.contains("Dune"), "{shown}");
    let orders = browser.page("/orders").await;
    assert_eq!(orders.matches("class=\"order-row\"").count(), 1, "{orders}");
    assert!(orders.contains(&format!("href=\"{order}\"")));
    assert!(browser.page("/account").await.contains("60.02"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_declined_card_shows_the_reason_on_the_order_page() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let dune = product(&app, &admin, "Dune").await;
    let mut browser = shopper(&app, "dora", "").await;
    let page = format!("/products/{dune}");
    browser
        .submit(&page, "add-to-cart", &[("quantity", "1")])
        .await;
    let typo = browser
        .submit(
            "/checkout",
            "checkout",
            &[
                ("payment", "card"),
                ("card_number", "4242424242424242"),
                ("expiry", "13/39"),
            ],
        )
        .await;
    assert_eq!(typo.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(typo
        .text()
        .await
        .expect("html")
        .contains("class=\"flash error\""));

    let card = [
        ("payment", "card"),
        ("card_number", "4000 0000 0000 0002"),
        ("expiry", "12/39"),
        ("cvc", "123"),
    ];
    let order = buy(&mut browser, &dune, &card).await;
    let shown = order_page_when(&mut browser, &order, "failed").await;
    assert!(
        shown.contains(
            "<p class=\"flash error\" role=\"alert\">Not placed: the payment was declined.</p>"
        ),
        "{shown}"
    );
    app.shutdown().await;
}

/// The `data:` messages of an event stream's text, as JSON.
fn messages(stream: &str) -> Vec<serde_json::Value> {
    stream
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("json"))
        .collect()
}

/// Reads `events` until it ends (within a generous bound); returns its text.
async fn read_to_end(events: &mut Response, received: &mut String) {
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = events.chunk().await.expect("the stream") {
            received.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends once settled: {received}");
}

#[tokio::test]
async fn the_order_events_stream_sends_the_confirmed_status_and_ends() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let dune = product(&app, &admin, "Dune").await;
    let mut browser = shopper(&app, "sam", "100.00").await;
    let order = buy(&mut browser, &dune, &[("payment", "wallet")]).await;

    let mut events = browser.get(&format!("{order}/events")).await;
    assert_eq!(events.status(), 200);
    assert_eq!(
        events.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream"
    );
    let mut received = String::new();
    read_to_end(&mut events, &mut received).await;
    let last = messages(&received).pop().expect("a message");
    assert_eq!(last["attributes"]["data-status"], "confirmed");
    assert_eq!(last["done"], true);
    assert!(last["html"].as_str().expect("html").contains("confirmed"));

    let stranger = shopper(&app, "eve", "")
        .await
        .get(&format!("{order}/events"))
        .await;
    assert_eq!(stranger.status(), 404, "another's order is not shown");
    app.shutdown().await;
}

#[tokio::test]
async fn the_order_events_stream_follows_a_change_made_while_it_is_open() {
    // A slow gateway holds the order before payment while the stream is open.
    let app = spawn_app_with(|config| config.gateway_latency_ms = 20_000).await;
    let admin = app.admin_token().await;
    let dune = product(&app, &admin, "Dune").await;
    let mut browser = shopper(&app, "sid", "").await;
    let card = [
        ("payment", "card"),
        ("card_number", "4242 4242 4242 4242"),
        ("expiry", "12/39"),
        ("cvc", "123"),
    ];
    let order = buy(&mut browser, &dune, &card).await;
    let mut events = browser.get(&format!("{order}/events")).await;
    let mut received = String::new();
    while messages(&received).is_empty() {
        let chunk = events
            .chunk()
            .await
            .expect("the stream")
            .expect("a message");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    let first = &messages(&received)[0];
    assert_eq!(first["done"], false, "{received}");

    let token = app.login("sid@example.com", PASSWORD).await;
    let cancelled = app
        .post(&format!("/api{order}/cancel"), Some(&token), json!({}))
        .await;
    assert_eq!(cancelled.status(), 200);
    read_to_end(&mut events, &mut received).await;
    let last = messages(&received).pop().expect("a message");
    assert_eq!(last["attributes"]["data-status"], "cancelled");
    assert_eq!(last["done"], true);
    app.shutdown().await;
}

#[tokio::test]
async fn a_form_without_the_visitors_csrf_token_is_refused() {
    let app = spawn_app().await;
    let mut browser = shopper(&app, "carl", "").await;
    let before = browser.page("/account").await;
    for token in [None, Some("0123456789abcdef0123456789abcdef")] {
        let mut form = vec![("amount", "10.00")];
        if let Some(token) = token {
            form.push(("csrf", token));
        }
        let refused = browser.send(Method::POST, "/account/deposit", &form).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "csrf {token:?}");
        assert!(refused.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html"));
    }
    assert_eq!(browser.page("/account").await, before, "nothing deposited");
    let accepted = browser
        .submit("/account", "deposit", &[("amount", "10.00")])
        .await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    app.shutdown().await;
}

#[tokio::test]
async fn a_signed_out_visitor_is_sent_to_sign_in_and_back() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    for page in ["/cart", "/checkout", "/orders", "/account", "/wishlist"] {
        let response = browser.get(page).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{page}");
        assert_eq!(
            location(&response),
            format!("/signin?next=%2F{}", &page[1..])
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn anonymous_pages_come_from_the_page_cache_until_the_catalog_changes() {
    let app = spawn_app_with(|config| config.web.page_cache_ms = 600_000).await;
    let admin = app.admin_token().await;
    let dune = product(&app, &admin, "Dune").await;
    let mut anonymous = Browser::new(&app);
    // Kept once rendered (the product's own announcement may still drop the first one).
    let first = anonymous.get("/").await;
    assert_eq!(first.headers()["x-page-cache"], "miss");
    eventually(
        Duration::from_secs(10),
        "the home page from the cache",
        || {
            let client = anonymous.client.clone();
            let url = app.url("/");
            async move {
                let page = client.get(url).send().await.ok()?;
                let hit = page.headers().get("x-page-cache")? == "hit";
                (hit && page.text().await.ok()?.contains("Dune")).then_some(())
            }
        },
    )
    .await;

    let renamed = app
        .patch(
            &format!("/api/products/{dune}"),
            Some(&admin),
            json!({"title": "Dune Messiah"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    eventually(
        Duration::from_secs(10),
        "the new title on the home page",
        || {
            let client = anonymous.client.clone();
            let url = app.url("/");
            async move {
                let html = client.get(url).send().await.ok()?.text().await.ok()?;
                html.contains("Dune Messiah").then_some(())
            }
        },
    )
    .await;
    let product_page = anonymous.page(&format!("/products/{dune}")).await;
    assert!(product_page.contains("Dune Messiah"));
    assert!(
        !product_page.contains("name=\"csrf\""),
        "a page kept for everyone carries nobody's token"
    );

    let mut shopper = shopper(&app, "olga", "").await;
    let personal = shopper.get("/").await;
    assert!(
        personal.headers().get("x-page-cache").is_none(),
        "signed-in pages are never cached"
    );
    assert!(personal
        .text()
        .await
        .expect("html")
        .contains("id=\"nav-cart\""));
    app.shutdown().await;
}

#[tokio::test]
async fn a_shopper_keeps_a_wishlist_and_reviews_a_product() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let dune = product(&app, &admin, "Dune").await;
    let mut browser = shopper(&app, "willa", "").await;
    let page = format!("/products/{dune}");

    let wished = browser.submit(&page, "add-to-wishlist", &[]).await;
    assert_eq!(location(&wished), "/wishlist?notice=wished");
    let wishlist = browser.page("/wishlist?notice=wished").await;
    assert_eq!(wishlist.matches("class=\"wish\"").count(), 1, "{wishlist}");
    assert!(wishlist.contains("Dune") && wishlist.contains("class=\"flash notice\""));
    let removed = browser
        .send(
            Method::POST,
            &format!("/wishlist/{dune}/remove"),
            &[("csrf", &browser.cookies["eshop_csrf"].clone())],
        )
        .await;
    assert_eq!(location(&removed), "/wishlist?notice=removed");
    assert_eq!(
        browser
            .page("/wishlist")
            .await
            .matches("class=\"wish\"")
            .count(),
        0
    );

    let reviewed = browser
        .submit(
            &page,
            "review",
            &[("rating", "4"), ("comment", "Spice & sand <3")],
        )
        .await;
    assert_eq!(location(&reviewed), format!("{page}?notice=reviewed"));
    eventually(
        Duration::from_secs(10),
        "the review on the product page",
        || {
            let client = browser.client.clone();
            let url = app.url(&page);
            async move {
                let html = client.get(url).send().await.ok()?.text().await.ok()?;
                html.contains("Spice &amp; sand &lt;3").then_some(())
            }
        },
    )
    .await;

    let refused = browser
        .submit(&page, "add-to-cart", &[("quantity", "5000")])
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let shown = refused.text().await.expect("html");
    assert!(shown.contains("class=\"flash error\"") && shown.contains("class=\"product-name\""));
    app.shutdown().await;
}

#[tokio::test]
async fn movies_and_the_calendar_are_listed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let added = app
        .post(
            "/api/movies",
            Some(&admin),
            json!({"title": "Alien", "year": 1979, "genres": ["Horror", "Sci-Fi"]}),
        )
        .await;
    assert_eq!(added.status(), 201);
    let movie = added.json::<serde_json::Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let entry = json!({"date": "2026-10-20", "time": "14:30", "time_zone": "America/New_York",
        "name": "GDP Report", "country": "us", "importance": "high"});
    let created = app.post("/api/calendar/events", Some(&admin), entry).await;
    assert_eq!(created.status(), 201);

    let mut visitor = Browser::new(&app);
    let movies = eventually(Duration::from_secs(10), "the movie listed", || {
        let client = visitor.client.clone();
        let url = app.url("/movies?genre=horror");
        async move {
            let html = client.get(url).send().await.ok()?.text().await.ok()?;
            html.contains("class=\"movie-card\"").then_some(html)
        }
    })
    .await;
    assert!(
        movies.contains(&format!("href=\"/movies/{movie}\"")),
        "{movies}"
    );
    let detail = visitor.page(&format!("/movies/{movie}")).await;
    assert!(detail.contains("Alien") && detail.contains("1979"));
    let calendar = eventually(Duration::from_secs(10), "the entry listed", || {
        let client = visitor.client.clone();
        let url = app.url("/calendar");
        async move {
            let html = client.get(url).send().await.ok()?.text().await.ok()?;
            html.contains("GDP Report").then_some(html)
        }
    })
    .await;
    assert!(calendar.contains("id=\"calendar\""));
    app.shutdown().await;
}

#[tokio::test]
async fn the_catalog_searches_filters_and_pages() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let dune = product(&app, &admin, "Dune").await;
    for n in 0..25 {
        let added = app
            .post(
                "/api/products",
                Some(&admin),
                json!({"title": format!("Atlas {n}"), "author": "A. Mapmaker",
                       "published_date": "2001-01-01", "price_cents": 500 + n,
                       "stock": 1, "category": "maps"}),
            )
            .await;
        assert_eq!(added.status(), 201);
    }
    let mut visitor = Browser::new(&app);
    let first = eventually(
        Duration::from_secs(15),
        "a full first page, and more",
        || {
            let client = visitor.client.clone();
            let url = app.url("/products?category=maps");
            async move {
                let html = client.get(url).send().await.ok()?.text().await.ok()?;
                let full = html.matches("class=\"product-card\"").count() == 24;
                (full && html.contains("rel=\"next\"")).then_some(html)
            }
        },
    )
    .await;
    let next = first
        .find("rel=\"next\"")
        .and_then(|at| attribute(&first[first[..at].rfind('<').expect("a tag")..], "href"))
        .expect("a link to the next page");
    assert!(next.starts_with("/products?category=maps&page="), "{next}");
    let second = visitor.page(&next).await;
    assert_eq!(second.matches("class=\"product-card\"").count(), 1);
    assert!(!second.contains("rel=\"next\""));

    let cheap = visitor.page("/products?category=maps&max_price=5.04").await;
    assert_eq!(
        cheap.matches("class=\"product-card\"").count(),
        5,
        "5.00 to 5.04"
    );
    let typo = visitor.get("/products?min_price=cheap").await;
    assert_eq!(typo.status(), StatusCode::UNPROCESSABLE_ENTITY);

    app.search_caught_up().await;
    let found = visitor.page("/products?q=dune").await;
    assert!(
        found.contains(&format!("href=\"/products/{dune}\"")),
        "{found}"
    );
    assert!(!found.contains("Atlas"));
    assert!(
        found.contains("science-fiction (1)"),
        "the category facet: {found}"
    );
    app.shutdown().await;
}
