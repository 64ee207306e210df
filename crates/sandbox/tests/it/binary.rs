//! The `ledgerlink-sandbox` binary as a script uses it: the first stdout line names the address,
//! the credentials follow, `--help` explains every flag, and bad settings say what to fix.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ledgerlink-sandbox");

struct Killed(std::process::Child);

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
    let rest: Vec<String> = lines.by_ref().take(5).map(Result::unwrap).collect();
    assert!(
        rest[0].starts_with("client_id: ")
            && rest[1].starts_with("client_secret: ")
            && rest[2].starts_with("webhook_key: ")
    );
    assert_eq!(
        &rest[3..],
        [
            "redirect_uri: http://127.0.0.1:1/a",
            "redirect_uri: http://127.0.0.1:1/b"
        ]
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
