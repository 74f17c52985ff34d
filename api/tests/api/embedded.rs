//! `eshop serve --embedded --demo`: the built binary starts its own Postgres and NATS, runs
//! without Redis, loads the demo shop, stops the servers when it stops, and finds its data
//! again on the next start (where the demo adds nothing twice).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{eventually, ADMIN_EMAIL, ADMIN_PASSWORD};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Processes whose command line names `dir` (the embedded servers run with their data there).
fn processes_using(dir: &str) -> Vec<String> {
    let output = Command::new("pgrep")
        .args(["-a", "-f", dir])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.contains("pgrep"))
        .map(str::to_string)
        .collect()
}

fn serve_embedded(dir: &str, port: u16) -> Eshop {
    let child = Command::new(env!("CARGO_BIN_EXE_eshop"))
        .args(["serve", "--embedded", "--demo"])
        .env("ESHOP_DATA_DIR", dir)
        .env("ESHOP_HTTP_ADDR", format!("127.0.0.1:{port}"))
        // Nothing of the machine's own services: the embedded ones must do.
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("NATS_URL", "nats://127.0.0.1:1")
        .env("ESHOP_ENV", "test")
        .env("ESHOP_JWT_SECRET", "test-secret-not-the-default-0123456789")
        .env("ESHOP_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ESHOP_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("ESHOP_MAIL_DIR", format!("{dir}/mail"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("eshop starts");
    Eshop(Some(child))
}

async fn stop(mut eshop: Eshop) {
    let mut child = eshop.0.take().expect("running");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "eshop exits cleanly: {status}");
}

/// Signs in once the account has reached the users read model.
async fn login(client: &reqwest::Client, api: &str, email: &str, password: &str) -> String {
    eventually(Duration::from_secs(20), "signing in", || async {
        let response = client
            .post(format!("{api}/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        let body: serde_json::Value = response.json().await.ok()?;
        Some(body["access_token"].as_str()?.to_string())
    })
    .await
}

/// eshop, stopped with SIGTERM (so it stops its servers) however the test ends.
struct Eshop(Option<Child>);

impl Drop for Eshop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn serve_embedded_runs_on_its_own_servers_stops_them_and_keeps_its_data() {
    let dir = std::env::temp_dir().join(format!("eshop-embedded-{}", uuid::Uuid::new_v4()));
    let dir = dir.to_str().expect("path").to_string();
    let client = reqwest::Client::new();

    for start in ["first", "second"] {
        let port = free_port();
        let api = format!("http://127.0.0.1:{port}");
        let child = serve_embedded(&dir, port);
        eventually(Duration::from_secs(90), "eshop answers", || async {
            let health = client.get(format!("{api}/ready")).send().await.ok()?;
            (health.status() == 200).then_some(())
        })
        .await;
        // The admin account made on the first start signs in on both (the data is kept).
        login(&client, &api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        // The demo: ten books, and shoppers whose money is deposited once, not per start.
        let books = eventually(Duration::from_secs(20), "the demo catalog", || async {
            let page: serde_json::Value = client
                .get(format!("{api}/api/products?limit=50"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let count = page["items"].as_array()?.len();
            (count == 10).then_some(count)
        })
        .await;
        assert_eq!(books, 10, "{start} start");
        let token = login(&client, &api, "alice@example.com", "demo-shopper-2026").await;
        let me: serde_json::Value = client
            .get(format!("{api}/api/users/me?min_version=2"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        assert_eq!(me["balance_cents"], 100_000, "{start} start: {me}");
        assert_eq!(me["version"], 2, "registered, then one deposit: {me}");
        if start == "second" {
            // No second deposit is on its way either: version 3 never becomes visible.
            let later = client
                .get(format!("{api}/api/users/me?min_version=3"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("sent");
            assert_eq!(later.status(), 503, "nothing appended by the second start");
        }
        let servers = processes_using(&dir);
        assert!(
            servers.iter().any(|line| line.contains("postgres"))
                && servers.iter().any(|line| line.contains("nats-server")),
            "{start} start runs both servers: {servers:?}"
        );
        stop(child).await;
        let left = processes_using(&dir);
        assert!(
            left.is_empty(),
            "{start} stop leaves nothing running: {left:?}"
        );
    }
    // Postgres ran as its own user when the test runs as root; remove its files as we can.
    let _ = std::fs::remove_dir_all(&dir);
}
