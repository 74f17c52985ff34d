//! The four scenarios of the mix, each one or two requests.

use std::time::Instant;

use serde_json::json;

use crate::fixture::Fixture;
use crate::Outcome;

/// A request's endpoint, outcome and when it was answered.
pub struct Answered {
    pub endpoint: &'static str,
    pub outcome: Outcome,
    pub at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Browse,
    Search,
    CartAndPurchase,
    Login,
}

impl Scenario {
    /// The mix: browse 70 %, search 15 %, cart and purchase 10 %, login 5 %.
    pub fn pick(percent: u32) -> Self {
        match percent {
            0..=69 => Self::Browse,
            70..=84 => Self::Search,
            85..=94 => Self::CartAndPurchase,
            _ => Self::Login,
        }
    }
}

async fn send(endpoint: &'static str, request: reqwest::RequestBuilder) -> Answered {
    let outcome = match request.send().await {
        Ok(response) => {
            let outcome = Outcome::of_status(response.status().as_u16());
            // Read the whole answer: its time counts.
            let _ = response.bytes().await;
            outcome
        }
        Err(_) => Outcome::Error,
    };
    Answered {
        endpoint,
        outcome,
        at: Instant::now(),
    }
}

fn pick<T>(items: &[T]) -> &T {
    &items[fastrand::usize(..items.len())]
}

/// Runs one scenario; its requests' answers in order.
pub async fn run(
    scenario: Scenario,
    client: &reqwest::Client,
    base: &str,
    fixture: &Fixture,
) -> Vec<Answered> {
    match scenario {
        Scenario::Browse => {
            // A list page half the time, a product page the other half.
            if fastrand::bool() {
                let ordering = pick(&["title", "-published_date", "price_cents"]);
                vec![
                    send(
                        "GET /api/products",
                        client.get(format!("{base}/api/products?limit=20&ordering={ordering}")),
                    )
                    .await,
                ]
            } else {
                let id = pick(&fixture.products);
                vec![
                    send(
                        "GET /api/products/{id}",
                        client.get(format!("{base}/api/products/{id}")),
                    )
                    .await,
                ]
            }
        }
        Scenario::Search => {
            let word = pick(&fixture.words);
            vec![
                send(
                    "GET /api/search",
                    client.get(format!("{base}/api/search?q={word}")),
                )
                .await,
            ]
        }
        Scenario::CartAndPurchase => {
            let shopper = pick(&fixture.shoppers);
            let product = pick(&fixture.products);
            let added = send(
                "PUT /api/cart/items/{id}",
                client
                    .put(format!("{base}/api/cart/items/{product}"))
                    .bearer_auth(&shopper.token)
                    .json(&json!({"quantity": 1})),
            )
            .await;
            if added.outcome != Outcome::Success {
                return vec![added];
            }
            let checked_out = send(
                "POST /api/cart/checkout",
                client
                    .post(format!("{base}/api/cart/checkout"))
                    .bearer_auth(&shopper.token)
                    .json(&json!({"payment": {"method": "balance"}})),
            )
            .await;
            vec![added, checked_out]
        }
        Scenario::Login => {
            let shopper = pick(&fixture.shoppers);
            vec![
                send(
                    "POST /api/auth/login",
                    client
                        .post(format!("{base}/api/auth/login"))
                        .json(&json!({"email": shopper.email, "password": shopper.password})),
                )
                .await,
            ]
        }
    }
}
