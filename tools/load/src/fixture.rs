//! What the scenarios need from the shop before the run: shoppers with money, and the
//! products and words to browse and search for.

use serde_json::{json, Value};
use uuid::Uuid;

/// A shopper the run registered, signed in and gave money.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub email: String,
    pub password: String,
    pub token: String,
}

#[derive(Debug, Clone)]
pub struct Fixture {
    pub shoppers: Vec<Shopper>,
    pub products: Vec<Uuid>,
    pub words: Vec<String>,
}

/// Money each shopper gets: enough for every purchase of a run.
const DEPOSIT_CENTS: i64 = 10_000_000;

#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

async fn json(response: reqwest::Response, what: &str) -> Result<Value, SetupError> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        Err(SetupError(format!("{what}: {status} {body}")))
    }
}

/// Registers `count` shoppers (new addresses each run), signs them in and funds them, and reads
/// up to 100 products of the catalog. The shop must run without rate limits
/// (`ESHOP_THROTTLE=false`) or with limits above the run's.
pub async fn prepare(
    client: &reqwest::Client,
    base: &str,
    count: usize,
) -> Result<Fixture, SetupError> {
    let run = &Uuid::new_v4().simple().to_string()[..8];
    let password = format!("load-{run}-password");
    let mut shoppers = Vec::with_capacity(count);
    for n in 0..count {
        let email = format!("load-{run}-{n}@example.com");
        let registered = client
            .post(format!("{base}/api/auth/register"))
            .json(
                &json!({"email": email, "username": format!("load{run}{n}"), "password": password}),
            )
            .send()
            .await
            .map_err(|error| SetupError(format!("register: {error}")))?;
        json(registered, "register").await?;
        let token = sign_in(client, base, &email, &password).await?;
        let deposited = client
            .post(format!("{base}/api/users/me/deposits"))
            .bearer_auth(&token)
            .json(&json!({"amount_cents": DEPOSIT_CENTS}))
            .send()
            .await
            .map_err(|error| SetupError(format!("deposit: {error}")))?;
        json(deposited, "deposit").await?;
        shoppers.push(Shopper {
            email,
            password: password.clone(),
            token,
        });
    }
    let page = client
        .get(format!("{base}/api/products?limit=100"))
        .send()
        .await
        .map_err(|error| SetupError(format!("catalog: {error}")))?;
    let page = json(page, "catalog").await?;
    let items = page["items"].as_array().cloned().unwrap_or_default();
    let products: Vec<Uuid> = items
        .iter()
        .filter(|item| item["stock"].as_i64().unwrap_or(0) > 0)
        .filter_map(|item| item["id"].as_str()?.parse().ok())
        .collect();
    if products.is_empty() {
        return Err(SetupError("the catalog has no product in stock".into()));
    }
    let mut words: Vec<String> = items
        .iter()
        .filter_map(|item| item["title"].as_str())
        .flat_map(|title| {
            title
                .split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .filter(|word| word.len() >= 4 && word.chars().all(char::is_alphabetic))
        .collect();
    words.sort_unstable();
    words.dedup();
    if words.is_empty() {
        words.push("book".into());
    }
    Ok(Fixture {
        shoppers,
        products,
        words,
    })
}

/// An access token for `email`.
pub async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> Result<String, SetupError> {
    let answer = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .map_err(|error| SetupError(format!("login: {error}")))?;
    let body = json(answer, "login").await?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| SetupError("login: no access_token".into()))
}
