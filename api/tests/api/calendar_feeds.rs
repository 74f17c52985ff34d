//! Calendar feeds over https, through a real TLS server with a CA made in the test: the
//! scheduled import and `eshop import calendar` fetch a feed whose CA `ESHOP_FEED_CA_FILE`
//! trusts, and fail with the reason named (no panic) when the certificate is not trusted, the
//! server is down or silent, or the redirects do not end.

use std::time::Duration;

use serde_json::{json, Value};

use crate::calendar::{eshop_import_calendar, list, listed, run_calendar_import_now};
use crate::feed_server::*;
use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(30);

fn feed() -> String {
    json!([{"date": "2026-11-05", "time": "14:30", "name": "Nonfarm Payrolls",
            "country": "US", "importance": "high", "forecast": "180K"},
           {"date": "2026-11-06", "time": "10:00", "name": "Ifo",
            "country": "DE", "importance": "medium"}])
    .to_string()
}

async fn scheduled_entries(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'CalendarEventScheduled'")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// The scheduled run failed with an error naming the feed and containing each of `words`, and
/// imported nothing.
async fn assert_run_failed(app: &TestApp, run: &Value, url: &str, words: &[&str]) {
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_else(|| panic!("{run}"));
    assert!(error.contains(url), "{error}");
    for word in words {
        assert!(error.contains(word), "{word:?} not in {error:?}");
    }
    assert_eq!(scheduled_entries(app).await, 0);
}

/// The command line exited with failure, naming each of `words` on standard error, not panicking.
fn assert_cli_failed(output: &std::process::Output, words: &[&str]) {
    assert!(!output.status.success(), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    for word in words {
        assert!(stderr.contains(word), "{word:?} not in {stderr:?}");
    }
}

#[tokio::test]
async fn an_https_feed_from_a_server_behind_a_trusted_private_ca_is_imported() {
    let ca = TestCa::new("eshop test feed CA");
    let ca_file = ca.pem_file();
    let url = serve_feed_over_tls(feed(), ca.server_tls()).await;
    let app = spawn_app_with(|config| {
        config.calendar.calendar_feed = Some(url.clone());
        config.calendar.fetch.feed_ca_file = Some(ca_file.path().clone());
    })
    .await;
    let admin = app.admin_token().await;

    // The scheduled import.
    let run = run_calendar_import_now(&app, &admin).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["result"],
        json!({"created": 2, "revised": 0, "unchanged": 0, "skipped": []})
    );
    listed(&app, 2).await;

    // The command line, trusting the same CA, from another feed server revising one entry.
    let revised = json!([{"date": "2026-11-05", "time": "14:30", "name": "Nonfarm Payrolls",
                          "country": "US", "importance": "high", "forecast": "180K",
                          "actual": "210K"}])
    .to_string();
    let url = serve_feed_over_tls(revised, ca.server_tls()).await;
    let output = eshop_import_calendar(&app, &url, &["--feed-ca-file", &ca_file.display()]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        serde_json::from_slice::<Value>(&output.stdout).expect("json"),
        json!({"created": 0, "revised": 1, "unchanged": 0, "skipped": []})
    );
    eventually(WAIT, "the revision in the read model", || async {
        (list(&app, "country=US").await["items"][0]["actual"] == "210K").then_some(())
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_https_feed_whose_certificate_is_not_trusted_fails_naming_the_tls_failure() {
    let trusted = TestCa::new("eshop trusted CA");
    let ca_file = trusted.pem_file();
    let stranger = TestCa::new("a CA nobody trusts");
    let url = serve_feed_over_tls(feed(), stranger.server_tls()).await;
    let app = spawn_app_with(|config| {
        config.calendar.calendar_feed = Some(url.clone());
        config.calendar.fetch.feed_ca_file = Some(ca_file.path().clone());
    })
    .await;
    let admin = app.admin_token().await;

    let run = run_calendar_import_now(&app, &admin).await;
    assert_run_failed(
        &app,
        &run,
        &url,
        &["TLS failed", "UnknownIssuer", "ESHOP_FEED_CA_FILE"],
    )
    .await;

    // The command line: with the other CA, and with the system's roots alone.
    for args in [&["--feed-ca-file", &ca_file.display()][..], &[]] {
        let output = eshop_import_calendar(&app, &url, args).await;
        assert_cli_failed(&output, &[&url, "TLS failed", "UnknownIssuer"]);
    }
    assert_eq!(scheduled_entries(&app).await, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_feed_whose_server_is_down_fails_saying_it_cannot_connect() {
    let url = nobody_listening().await;
    let app = spawn_app_with(|config| config.calendar.calendar_feed = Some(url.clone())).await;
    let admin = app.admin_token().await;
    let run = run_calendar_import_now(&app, &admin).await;
    assert_run_failed(&app, &run, &url, &["cannot connect", "refused"]).await;
    let output = eshop_import_calendar(&app, &url, &[]).await;
    assert_cli_failed(&output, &[&url, "cannot connect", "refused"]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_feed_that_redirects_for_ever_or_never_answers_fails_saying_so() {
    let ca = TestCa::new("eshop test feed CA");
    let ca_file = ca.pem_file();
    let looping = serve_endless_redirects_over_tls(ca.server_tls()).await;
    let app = spawn_app_with(|config| {
        config.calendar.calendar_feed = Some(looping.clone());
        config.calendar.fetch.feed_ca_file = Some(ca_file.path().clone());
    })
    .await;
    let admin = app.admin_token().await;
    let run = run_calendar_import_now(&app, &admin).await;
    assert_run_failed(&app, &run, &looping, &["more than 3 redirects"]).await;

    let silent = serve_silence().await;
    let output = eshop_import_calendar(&app, &silent, &["--feed-timeout-seconds", "1"]).await;
    assert_cli_failed(&output, &[&silent, "no complete answer within 1s"]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_ca_file_that_cannot_be_used_stops_the_start() {
    let (database_url, _pool) = eshop_infra::testing::fresh_database().await;
    let mut config = test_config(&database_url, "cafile");
    let not_pem = std::env::temp_dir().join(format!("eshop-ca-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&not_pem, "not a certificate\n").expect("written");
    for (ca_file, why) in [
        (not_pem.clone(), "holds no certificate"),
        (
            "/nonexistent/eshop-ca.pem".into(),
            "cannot read the CA file",
        ),
    ] {
        config.calendar.fetch.feed_ca_file = Some(ca_file.clone());
        let refused = eshop_api::server::start(&config)
            .await
            .err()
            .expect("refused");
        let said = refused.to_string();
        assert!(said.contains(why), "{said}");
        assert!(said.contains(&*ca_file.to_string_lossy()), "{said}");
    }
    let _ = std::fs::remove_file(not_pem);
}
