//! The device API against its own description: schemathesis (4.x, installed by `./scripts/test` in a
//! virtual environment and named by `LEDGERLINK_SCHEMATHESIS`) reads `/v1/openapi.json` from a real
//! proxy over a real sandbox and throws generated requests at every `/v1` operation with a paired
//! device's token: all its default checks (no 5xx, every status, content type, header and body as
//! described, invalid data refused, valid data accepted, auth honoured), its examples, coverage,
//! fuzzing and stateful phases, 50 examples each. The two DELETEs (which unpair the device and
//! disconnect its organisation) run last, apart; the Server-Sent Events form of `/v1/events` is not
//! part of the description.
//!
//! Where the description cannot say everything (a category must be mapped, Xero must know the
//! account), the operations' own answers for it (422, the OAuth 400s) are accepted as answers to
//! valid data: `tests/schemathesis.toml` lists each, with why.

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn schemathesis() -> String {
    std::env::var("LEDGERLINK_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!(
            "LEDGERLINK_SCHEMATHESIS names the schemathesis 4.x `st` to run: ./scripts/test installs it \
             (a virtual environment under target/) and sets it"
        )
    })
}

/// One `st run` over the operations `filter` selects (several include filters select what any of
/// them matches); its output, and whether it passed.
fn run(st: &str, world: &World, token: &str, filter: &[&str]) -> (bool, String) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    let report = world_dir().join(format!("schemathesis-{}", uuid::Uuid::new_v4()));
    let out = Command::new(st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/v1/openapi.json", world.proxy_url))
        .args(["--url", &world.proxy_url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", "50", "--workers", "1", "--seed", "1"])
        .args(["--request-timeout", "20", "--no-color"])
        .arg("--report-dir")
        .arg(&report)
        .args(filter)
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn world_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_api_answers_as_its_description_says() {
    let st = schemathesis();
    let mut settings = settings();
    // Long-polls answer within a second here (a device may ask for 60): the run stays short.
    settings.server.long_poll_max_secs = 1;
    let world = World::start_with(settings).await;
    let device = world.device("Conformance till");
    let p = world.pair(&device, &[NZ], None).await;
    let mapped = device
        .call(
            Method::PUT,
            "/v1/mappings",
            &p.access,
            Some(json!({
                "categories": {"Food": {"account_code": "200", "tax_type": "OUTPUT2"}},
                "tenders": {"cash": {"account_code": "092"}, "card": {"account_code": "615"}},
                "over_short_account": "408",
            })),
        )
        .await;
    assert_eq!(mapped.status, 200, "{}", mapped.text);
    let started = Instant::now();
    let token = p.access.clone();
    let (all, first) = tokio::task::block_in_place(|| {
        run(
            &st,
            &world,
            &token,
            &[
                "--include-path-regex",
                "^/v1/",
                "--exclude-method",
                "DELETE",
            ],
        )
    });
    println!("{first}");
    assert!(
        all,
        "schemathesis found failures (every /v1 operation but the DELETEs):\n{first}"
    );
    let (deletes, second) = tokio::task::block_in_place(|| {
        run(
            &st,
            &world,
            &token,
            &[
                "--include-name",
                "DELETE /v1/device",
                "--include-name",
                "DELETE /v1/connection",
            ],
        )
    });
    println!("{second}");
    assert!(
        deletes,
        "schemathesis found failures (the DELETEs):\n{second}"
    );
    // A figure for the record (docs/BENCHMARKS.md), not a pass mark: this machine is shared.
    println!("schemathesis took {:?}", started.elapsed());
}
