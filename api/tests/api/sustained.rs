//! Sustained purchases: 30 s of wallet purchases arriving at a fixed rate (an open model: the
//! next one is sent when it is due, answered or not), with scarce stock and small wallets so
//! that some fail for each reason, and every background worker in the process. Then the books
//! must balance and everything derived must have caught up within 5 s of the last answer.
//!
//! The rate is modest on purpose: this is a correctness bound for a loaded 2-core CI machine,
//! not a speed figure (`cargo bench --bench purchases` measures those).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;
use crate::ledger::{assert_books_balance, outstanding, rows_behind, seed_buyers, seed_products};

const RATE_PER_SECOND: u64 = 20;
const SECONDS: u64 = 30;
const PRODUCTS: i64 = 12;
const STOCK: i64 = 40;
const BUYERS: i64 = 40;
const BALANCE_CENTS: i64 = 3_000;
const CATCH_UP: Duration = Duration::from_secs(5);

/// The Message-ID of each `.eml` file the mailer wrote.
fn message_ids(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "eml"))
        .map(|entry| {
            let text = std::fs::read_to_string(entry.path()).expect("a mail file");
            text.lines()
                .find(|line| line.to_ascii_lowercase().starts_with("message-id:"))
                .map(|line| line["message-id:".len()..].trim().to_string())
                .expect("a Message-ID")
        })
        .collect()
}

#[tokio::test]
async fn thirty_seconds_of_sustained_purchases_balance_and_catch_up_within_5_s() {
    let app = spawn_app().await;
    let products = seed_products(&app.pool, PRODUCTS, STOCK).await;
    let buyers = seed_buyers(&app.pool, BUYERS, BALANCE_CENTS).await;
    let now = chrono::Utc::now().timestamp();
    let mut tokens = Vec::new();
    for buyer in &buyers {
        let session = app.state().sessions.start(*buyer).await.expect("session");
        tokens.push(
            app.state()
                .tokens
                .issue(*buyer, session.session_id, Vec::new(), now),
        );
    }
    let product_ids: Vec<Uuid> = products.keys().copied().collect();
    eventually(
        Duration::from_secs(30),
        "the seeds in the read models",
        || async { (rows_behind(&app.pool).await == 0).then_some(()) },
    )
    .await;

    // Open model: purchase n is sent at n / rate, whatever became of the others.
    let started = tokio::time::Instant::now();
    let mut sent = tokio::task::JoinSet::new();
    for n in 0..RATE_PER_SECOND * SECONDS {
        tokio::time::sleep_until(started + Duration::from_millis(n * 1000 / RATE_PER_SECOND)).await;
        let request = app
            .request(
                reqwest::Method::POST,
                "/api/purchases",
                Some(&tokens[fastrand::usize(..tokens.len())]),
            )
            .json(&serde_json::json!({
                "product_id": product_ids[fastrand::usize(..product_ids.len())],
                "quantity": fastrand::i64(1..=2),
                "payment_method": "balance",
            }));
        sent.spawn(async move {
            let response = request.send().await.expect("an answer");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body["code"].as_str().map(str::to_string))
        });
    }
    let mut answers: HashMap<(u16, Option<String>), i64> = HashMap::new();
    while let Some(answer) = sent.join_next().await {
        *answers.entry(answer.expect("a purchase")).or_default() += 1;
    }
    let load_stopped = tokio::time::Instant::now();
    println!(
        "sent {} purchases in {:?}; answers: {answers:?}",
        RATE_PER_SECOND * SECONDS,
        load_stopped - started
    );
    let confirmed_answers = answers.get(&(201, None)).copied().unwrap_or(0);
    let refused: i64 = answers
        .iter()
        .filter(|((status, code), _)| {
            *status == 409
                && matches!(
                    code.as_deref(),
                    Some("out_of_stock" | "insufficient_balance")
                )
        })
        .map(|(_, count)| count)
        .sum();
    assert_eq!(
        confirmed_answers + refused,
        i64::try_from(RATE_PER_SECOND * SECONDS).expect("fits"),
        "every purchase was confirmed or refused for stock or money: {answers:?}"
    );
    // Stock and money both run out somewhere (about 300 purchases' worth of stock, 400 of money,
    // 600 asked for at random): the test exercises both refusals, not only the happy path.
    for code in ["out_of_stock", "insufficient_balance"] {
        assert!(
            answers.contains_key(&(409, Some(code.to_string()))),
            "no purchase was refused with {code}: {answers:?}"
        );
    }

    // Everything derived catches up.
    let caught_up = loop {
        let left = outstanding(&app.pool).await;
        if left == (0, 0, 0, 0) {
            break load_stopped.elapsed();
        }
        assert!(
            load_stopped.elapsed() < Duration::from_secs(60),
            "still behind a minute after the load (rows, orders, confirmations unmailed, mails unsettled): {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("everything caught up {caught_up:?} after the last answer");
    assert!(
        caught_up <= CATCH_UP,
        "caught up only {caught_up:?} after the load stopped"
    );

    // The books balance, read from the read models (now equal to the store).
    let books = assert_books_balance(&app.pool, &products, STOCK, &buyers, BALANCE_CENTS).await;
    assert_eq!(
        books.orders as u64,
        RATE_PER_SECOND * SECONDS,
        "one order per purchase"
    );
    assert_eq!(
        books.confirmed, confirmed_answers,
        "each 201 is a confirmed order"
    );

    // Each confirmation was mailed once: one row, one file, one Message-ID per confirmed order.
    let mailed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM email_log WHERE template = 'order_confirmation' AND status = 'sent'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("mails");
    assert_eq!(mailed, confirmed_answers);
    let sent_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM email_log WHERE status = 'sent'")
        .fetch_one(&app.pool)
        .await
        .expect("mails");
    let ids = message_ids(&default_mail_dir(&app.namespace));
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        ids.len() as i64,
        sent_rows,
        "one file per mail recorded sent"
    );
    assert_eq!(distinct.len(), ids.len(), "no mail was sent twice");

    app.shutdown().await;
}
