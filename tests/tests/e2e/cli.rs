//! The `ledgerlink` CLI as a headless till uses it: pair (the person's browser step driven over HTTP),
//! status, unpair, and a clear "pair again" when the device was unpaired elsewhere.

use ledgerlink_e2e::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const CLI: &str = env!("CARGO_BIN_EXE_ledgerlink-under-test");

fn cli(dir: &std::path::Path, args: &[&str]) -> (bool, Value) {
    let out = Command::new(CLI)
        .arg("--data-dir")
        .arg(dir)
        .arg("--json")
        .args(args)
        .env_remove("LEDGERLINK_PROXY")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    (
        out.status.success(),
        serde_json::from_str(&line).unwrap_or(Value::Null),
    )
}

// Multi-threaded: the test reads the CLI's output with blocking calls while the in-process proxy serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_till_pairs_shows_its_status_and_unpairs() {
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let world = World::start_with(settings).await;
    let dir = std::env::temp_dir().join(format!("ll-cli-{}", uuid::Uuid::new_v4()));
    let mut child = Command::new(CLI)
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "--json",
            "pair",
            "--proxy",
            &world.proxy_url,
            "--name",
            "Headless till",
            "--no-browser",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let code: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(code["event"], "code");
    assert!(code["user_code"].as_str().unwrap().len() == 9);
    let page = world
        .browser()
        .consent(
            code["verification_uri_complete"].as_str().unwrap(),
            &[NZ],
            true,
        )
        .await;
    assert!(
        page.text.contains("Headless till") && page.text.contains("Demo Company (NZ)"),
        "{}",
        page.text
    );
    let paired = tokio::task::spawn_blocking(move || lines.next().unwrap().unwrap());
    let paired: Value = serde_json::from_str(
        &tokio::time::timeout(Duration::from_secs(20), paired)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(paired["event"], "paired");
    assert_eq!(paired["tenant_name"], "Demo Company (NZ)");
    assert!(child.wait().unwrap().success());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("credentials.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "credentials readable by the user only");
    }
    let dir2 = dir.clone();
    let (ok, status) = tokio::task::spawn_blocking(move || cli(&dir2, &["status"]))
        .await
        .unwrap();
    assert!(ok, "{status}");
    assert_eq!(
        (
            status["organisation_name"].as_str(),
            status["status"].as_str()
        ),
        (Some("Demo Company (NZ)"), Some("connected"))
    );
    assert_eq!(status["device_name"], "Headless till");

    // Unpaired from elsewhere (say, the operator): the CLI says to pair again, no stack trace.
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("credentials.json")).unwrap())
            .unwrap();
    let r = reqwest::Client::new()
        .delete(format!("{}/v1/device", world.proxy_url))
        .bearer_auth(creds["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let dir3 = dir.clone();
    let (ok, err) = tokio::task::spawn_blocking(move || cli(&dir3, &["status"]))
        .await
        .unwrap();
    assert!(!ok);
    assert_eq!(err["code"], "pair_again");
    assert!(err["message"].as_str().unwrap().contains("ledgerlink pair"));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_device_that_never_paired_is_told_how_to() {
    let dir = std::env::temp_dir().join(format!("ll-cli-{}", uuid::Uuid::new_v4()));
    let (ok, err) = tokio::task::spawn_blocking(move || cli(&dir, &["status"]))
        .await
        .unwrap();
    assert!(!ok);
    assert_eq!(err["code"], "not_paired");
}
