//! Schemathesis (PyPI, pinned in scripts/openapi/requirements.txt, installed by scripts/test into
//! scripts/openapi/.venv) fuzzes a started eshop from its own OpenAPI document: a bounded number
//! of generated requests per operation, as the admin, and the answers must hold no server error
//! and match the document (status, content type, headers, schema), and a route that needs a
//! token must refuse a request without one. Without schemathesis the test says so and passes,
//! except under CI=true, where it fails.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::spawn_app;

/// Generated cases per operation and phase: about a minute for the whole API on two cores.
const EXAMPLES_PER_OPERATION: &str = "10";
/// The whole run is killed past this (alone it takes 1 to 2 minutes; nextest ends a test at 5).
const TIME_LIMIT: Duration = Duration::from_secs(270);
/// A fixed seed: the same cases each run, so a failure reproduces.
const SEED: &str = "18";

fn scripts_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/openapi"))
}

fn schemathesis() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("ESHOP_SCHEMATHESIS") {
        return Some(PathBuf::from(path));
    }
    let installed = scripts_dir().join(".venv/bin/schemathesis");
    installed.exists().then_some(installed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let Some(schemathesis) = schemathesis() else {
        let message = "schemathesis is not installed (scripts/test installs it into \
                       scripts/openapi/.venv from scripts/openapi/requirements.txt): the OpenAPI \
                       fuzz test did not run";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("SKIPPED: {message}");
        return;
    };
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    // The admin's id is the token's subject (no wait for the users read model).
    let claims = admin.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
            .expect("base64url"),
    )
    .expect("JSON claims");
    let admin_id = claims["sub"].as_str().expect("a subject").to_string();
    let base = format!("http://{}", app.addr);
    let report = std::env::temp_dir().join(format!("eshop-schemathesis-{}", app.namespace));
    // Hypothesis keeps its example database in the working directory: a temporary one.
    std::fs::create_dir_all(&report).expect("a working directory");
    let mut command = Command::new(&schemathesis);
    command
        .current_dir(&report)
        .arg("run")
        .arg(format!("{base}/api/openapi.json"))
        .args(["--url", &base])
        .args(["--header", &format!("Authorization: Bearer {admin}")])
        // Logging out would end the session every other case runs with.
        .args(["--exclude-path", "/api/auth/logout"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", EXAMPLES_PER_OPERATION])
        .args(["--seed", SEED])
        // One worker: Python 3.11 (before 3.11.8) can fail compiling in two threads at once
        // ("AST constructor recursion depth mismatch"), and the generation holds the GIL anyway.
        .args(["--workers", "1"])
        .args(["--request-timeout", "20"])
        // "No 5xx, every answer matches the document", and auth is not ignored. Not the checks
        // that a valid request is accepted or an invalid one refused: the document does not
        // spell out every rule of the domain (password strength, a date range), and a queued
        // request (`Prefer: respond-async`) is validated when its task runs.
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance,ignored_auth",
        ])
        .args(["--report-dir", &report.display().to_string()])
        .arg("--no-color")
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("ESHOP_FUZZ_CALLER_ID", &admin_id)
        .env("PYTHONPATH", scripts_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (status, output) = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("schemathesis starts");
        let started = Instant::now();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let read_out = std::thread::spawn(move || std::io::read_to_string(stdout));
        let read_err = std::thread::spawn(move || std::io::read_to_string(stderr));
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if started.elapsed() > TIME_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let output = format!(
            "{}\n{}",
            read_out
                .join()
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            read_err
                .join()
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        );
        (status, output)
    })
    .await
    .expect("the run");
    let _ = std::fs::remove_dir_all(&report);
    app.shutdown().await;
    let status = status.unwrap_or_else(|| {
        panic!("schemathesis ran past {TIME_LIMIT:?}:\n{output}");
    });
    assert!(
        status.success(),
        "schemathesis found answers off the document or server errors:\n{output}"
    );
    assert!(output.contains("Tested: "), "nothing was tested:\n{output}");
}
