//! The `ledgerlink-sandbox` binary as a script uses it: the first stdout line names the address,
//! the credentials follow, `--help` explains every flag, and bad settings say what to fix.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ledgerlink-sandbox");

pub(crate) struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_first_line_names_the_address_and_credentials_follow() {
    let dir = std::env::temp_dir().join(format!("sandbox-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sandbox.toml");
    std::fs::write(&config, "[limits]\ntenant_per_window = 7\n").unwrap();
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .args([
            "--redirect-uri",
            "http://127.0.0.1:1/a",
            "--redirect-uri",
            "http://127.0.0.1:1/b",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Killed(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("ledgerlink-sandbox listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"));
    let rest: Vec<String> = lines.by_ref().take(9).map(Result::unwrap).collect();
    assert!(
        rest[0].starts_with("client_id: ")
            && rest[1].starts_with("client_secret: ")
            && rest[2].starts_with("webhook_key: ")
    );
    assert_eq!(
        &rest[3..5],
        [
            "redirect_uri: http://127.0.0.1:1/a",
            "redirect_uri: http://127.0.0.1:1/b"
        ]
    );
    // Xero's lines first; then the login, then each other provider's lines, prefixed.
    assert!(rest[5].starts_with("user: "), "{rest:?}");
    assert_eq!(
        rest[6],
        format!(
            "hubrise_client_id: {}",
            ledgerlink_sandbox::settings::DEMO_HUBRISE_CLIENT_ID
        )
    );
    assert!(rest[7].starts_with("hubrise_client_secret: "), "{rest:?}");
    assert_eq!(
        rest[8],
        "hubrise_redirect_uri: http://127.0.0.1:7400/oauth/hubrise/callback"
    );

    // It serves as soon as it has printed; the TOML file's limit is in force.
    let limits: serde_json::Value = reqwest::get(format!("{url}/_sandbox/limits"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(limits["tenant_per_window"], 7);
    assert_eq!(limits["tenant_per_day"], 5000);
    let home = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(home.contains("demo@ledgerlink.test"));
    drop(lines); // a reader that stops early must not take the sandbox down
    let still = reqwest::get(format!("{url}/_sandbox/clock")).await.unwrap();
    assert_eq!(still.status(), 200);
}

#[test]
fn help_explains_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--config",
        "--client-id",
        "--client-secret",
        "--webhook-key",
        "--redirect-uri",
        "--webhook-url",
        "--tenant-per-window",
        "--tenant-concurrent",
        "--tenant-per-day",
        "--app-per-window",
        "--window-seconds",
        "--no-limits",
        "--access-token-seconds",
        "--refresh-grace-seconds",
        "--refresh-token-days",
        "--auth-code-seconds",
        "--idempotency-window-seconds",
        "--webhook-retry-initial-ms",
        "--log-format",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

#[test]
fn bad_settings_are_refused_with_what_to_fix() {
    let dir = std::env::temp_dir().join(format!("sandbox-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bad.toml");
    std::fs::write(&config, "[limits]\ntenant_per_minute = 7\n").unwrap();
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tenant_per_minute"),
        "the unknown key is named: {err}"
    );

    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--webhook-url", "not a url"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an absolute URL"));
}

/// Starts the binary with `--state FILE` on a free port; answers its URL and the process.
pub(crate) fn with_state(file: &std::path::Path) -> (String, Killed) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--state"])
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let url = first
        .strip_prefix("ledgerlink-sandbox listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    (url, Killed(child))
}

#[tokio::test]
async fn a_sandbox_with_a_state_file_is_the_same_xero_after_a_kill_9_until_it_is_reset() {
    use crate::common::{invoice, CLIENT_ID, CLIENT_SECRET, NZ, USER};
    let dir = std::env::temp_dir().join(format!("sandbox-state-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    let http = reqwest::Client::new();

    let (url, first) = with_state(&file);
    assert!(file.exists(), "made from the seed at the first start");
    let grant: serde_json::Value = http
        .post(format!("{url}/_sandbox/grants"))
        .json(&serde_json::json!({"client_id": CLIENT_ID, "user": USER}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = grant["access_token"].as_str().unwrap().to_string();
    let refresh = grant["refresh_token"].as_str().unwrap().to_string();
    let api = |url: &str, method: reqwest::Method, path: &str, token: &str| {
        http.request(method, format!("{url}/api.xro/2.0/{path}"))
            .bearer_auth(token)
            .header("xero-tenant-id", NZ.to_string())
            .header("accept", "application/json")
    };
    let made = api(&url, reqwest::Method::PUT, "Invoices", &access)
        .header("idempotency-key", "state-test-1")
        .json(&serde_json::json!({"Invoices": [invoice("Harbour Cafe", "2", "10.00")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    let made: serde_json::Value = made.json().await.unwrap();
    let number = made["Invoices"][0]["InvoiceNumber"]
        .as_str()
        .unwrap()
        .to_string();
    http.post(format!("{url}/_sandbox/clock"))
        .json(&serde_json::json!({"advance_seconds": 60}))
        .send()
        .await
        .unwrap();

    // kill -9: nothing gets to flush anything.
    drop(first);
    let (url, second) = with_state(&file);
    // The access token still works (same signing key), the invoice is there, the replay of the
    // same Idempotency-Key answers the same invoice, and the refresh token still refreshes.
    let found: serde_json::Value = api(&url, reqwest::Method::GET, "Invoices", &access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let numbers: Vec<&str> = found["Invoices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["InvoiceNumber"].as_str())
        .collect();
    assert_eq!(numbers, [number.as_str()]);
    let replay: serde_json::Value = api(&url, reqwest::Method::PUT, "Invoices", &access)
        .header("idempotency-key", "state-test-1")
        .json(&serde_json::json!({"Invoices": [invoice("Harbour Cafe", "2", "10.00")]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay["Invoices"][0]["InvoiceNumber"], number.as_str());
    let clock: serde_json::Value = http
        .get(format!("{url}/_sandbox/clock"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let now = chrono::DateTime::parse_from_rfc3339(clock["now"].as_str().unwrap()).unwrap();
    assert!(
        now > chrono::Utc::now() + chrono::Duration::seconds(50),
        "the moved clock is kept: {clock}"
    );
    let refreshed = http
        .post(format!("{url}/connect/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);

    // Reset seeds it afresh, in the file too.
    let reset = http
        .post(format!("{url}/_sandbox/reset"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    drop(second);
    let (url, third) = with_state(&file);
    let gone = api(&url, reqwest::Method::GET, "Invoices", &access)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 401, "the grant went with the reset");

    // A damaged file is refused, saying which and what to do, rather than silently reseeded.
    drop(third);
    std::fs::write(&file, "{not json").unwrap();
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--state"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("state.json") && err.contains("remove it"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}
