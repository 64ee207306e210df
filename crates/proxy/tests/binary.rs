//! The `ledgerlink-proxy` binary as an operator runs it: settings from flags and `LEDGERLINK_...`
//! variables, no start without a master key (unless `--dev`, which makes a private key file), the
//! first stdout line, health endpoints, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ledgerlink-proxy");

fn temp() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ll-proxy-bin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn base(dir: &std::path::Path) -> Command {
    let mut c = on(dir.join("proxy.db").to_str().unwrap());
    c.args(["--listen", "127.0.0.1:0"]);
    c
}

/// The binary on `database` (given by the environment, as a URL with a password should be).
fn on(database: &str) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LEDGERLINK_XERO_CLIENT_ID", "CLIENT")
        .env("LEDGERLINK_XERO_CLIENT_SECRET", "not-a-real-secret")
        .env("LEDGERLINK_XERO_BASE_URL", "http://127.0.0.1:9")
        .env("LEDGERLINK_DATABASE", database);
    c
}

#[test]
fn refuses_to_start_without_a_master_key_and_says_how_to_give_one() {
    let dir = temp();
    let out = base(&dir).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("LEDGERLINK_MASTER_KEY") && err.contains("--dev"),
        "{err}"
    );
    assert!(!dir.join("ledgerlink-master.key").exists());

    let out = base(&dir)
        .env_remove("LEDGERLINK_XERO_CLIENT_ID")
        .arg("--dev")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--xero-client-id"));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn runs_with_dev_answers_health_and_stops_on_sigterm() {
    let dir = temp();
    let mut child = base(&dir)
        .arg("--dev")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("ledgerlink-proxy listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"));
    let second = lines.next().unwrap().unwrap();
    assert_eq!(
        second,
        format!("xero_redirect_uri: {url}/oauth/xero/callback")
    );

    let key = dir.join("ledgerlink-master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(
        reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{url}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let pairing = reqwest::Client::new()
        .post(format!("{url}/v1/pairings"))
        .form(&[
            ("client_id", "ledgerlink-desktop"),
            ("device_id", &uuid::Uuid::new_v4().to_string()),
            ("device_name", "Till"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(pairing.status(), 200);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "a graceful stop exits 0: {exit:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn help_names_every_setting_and_its_variable() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--public-url",
        "--database",
        "--xero-client-id",
        "--xero-client-secret",
        "--xero-base-url",
        "--xero-token-url",
        "--admin-token",
        "--master-key-file",
        "--dev",
        "--log-format",
        "--config",
        "LEDGERLINK_XERO_CLIENT_SECRET",
        "LEDGERLINK_ADMIN_TOKEN",
        "LEDGERLINK_DATABASE",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

/// Starts the binary and waits for its first line; `None` (with what it said) if it exits first.
fn start(mut command: Command) -> Result<(std::process::Child, String), String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    if first.starts_with("ledgerlink-proxy listening on") {
        return Ok((child, first));
    }
    let out = child.wait_with_output().unwrap();
    Err(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_second_proxy_on_the_same_database_is_refused_and_a_killed_one_lets_go() {
    let dir = temp();
    let (mut first, _) = start({
        let mut c = base(&dir);
        c.arg("--dev");
        c
    })
    .expect("the first proxy starts");
    let refused = start({
        let mut c = base(&dir);
        c.arg("--dev");
        c
    })
    .expect_err("a second proxy on the same database is refused");
    assert!(
        refused.contains("is in use by process") && refused.contains(&first.id().to_string()),
        "{refused}"
    );
    // SIGKILL: the kernel lets go of the lock, and the next start works.
    first.kill().unwrap();
    first.wait().unwrap();
    let (mut again, _) = start({
        let mut c = base(&dir);
        c.arg("--dev");
        c
    })
    .expect("a proxy starts again after the last one was killed");
    again.kill().unwrap();
    again.wait().unwrap();
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_wrong_master_key_is_refused_at_start() {
    let dir = temp();
    let right = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // 32 bytes, base64
    let wrong = "HxwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA="; // another 32
    let (mut first, _) = start({
        let mut c = base(&dir);
        c.env("LEDGERLINK_MASTER_KEY", right);
        c
    })
    .expect("a new database takes the key it is given");
    first.kill().unwrap();
    first.wait().unwrap();
    let refused = start({
        let mut c = base(&dir);
        c.env("LEDGERLINK_MASTER_KEY", wrong);
        c
    })
    .expect_err("a start with another key is refused");
    assert!(
        refused.contains("not among the keys given") && refused.contains("LEDGERLINK_MASTER_KEY"),
        "{refused}"
    );
    // The old key after a new one (a rotation) is fine.
    let (mut rotated, _) = start({
        let mut c = base(&dir);
        c.env("LEDGERLINK_MASTER_KEY", format!("{wrong},{right}"));
        c
    })
    .expect("a rotation (new key first, old one after) starts");
    rotated.kill().unwrap();
    rotated.wait().unwrap();
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_settings_file_with_the_old_xero_section_still_starts_the_proxy_with_a_warning() {
    let dir = temp();
    let run = |file: &str| {
        let path = dir.join("proxy.toml");
        std::fs::write(&path, file).unwrap();
        let mut c = base(&dir);
        c.env_remove("LEDGERLINK_XERO_CLIENT_ID")
            .env_remove("LEDGERLINK_XERO_CLIENT_SECRET")
            .arg("--dev")
            .arg("--config")
            .arg(&path);
        start(c)
    };
    let section = "client_id = \"CLIENT\"\nclient_secret = \"not-a-real-secret\"\n";
    // The name before the provider seam: taken, and said.
    let (mut old, _) = run(&format!("[xero]\n{section}")).expect("[xero] still starts the proxy");
    old.kill().unwrap();
    let said = String::from_utf8_lossy(&old.wait_with_output().unwrap().stderr).into_owned();
    assert!(
        said.contains("[xero] section is deprecated") && said.contains("[providers.xero]"),
        "{said}"
    );
    // The name now: no warning.
    let (mut new, _) =
        run(&format!("[providers.xero]\n{section}")).expect("[providers.xero] starts");
    new.kill().unwrap();
    let said = String::from_utf8_lossy(&new.wait_with_output().unwrap().stderr).into_owned();
    assert!(!said.contains("deprecated"), "{said}");
    // Both: which one would be meant? Refused, saying so.
    let both = run(&format!("[xero]\n{section}\n[providers.xero]\n{section}"))
        .expect_err("both sections are refused");
    assert!(both.contains("keep only [providers.xero]"), "{both}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_postgres_database_that_cannot_be_reached_is_refused_at_start_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp();
    let key = dir.join("master.key");
    std::fs::write(&key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    let url = format!("postgres://ledgerlink:hunter2@127.0.0.1:{port}/ledgerlink");
    let mut command = on(&url);
    command
        .args(["--listen", "127.0.0.1:0", "--master-key-file"])
        .arg(&key);
    let refused = start(command).expect_err("nothing listens there");
    assert!(
        refused.contains(&format!("127.0.0.1:{port}")) && refused.contains("cannot be used"),
        "{refused}"
    );
    assert!(
        !refused.contains("hunter2"),
        "the password reached the log: {refused}"
    );

    // With Postgres, --dev alone is refused: every replica must share one key.
    let mut dev = on("postgres://127.0.0.1:1/x");
    dev.args(["--listen", "127.0.0.1:0", "--dev"]);
    let out = dev.output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--master-key-file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(dir).ok();
}
