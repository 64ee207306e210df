//! Refresh storm: 1,000 concurrent callers ask the vault for the access token of one token set at the
//! moment it expires. Measures how many refresh calls reach Xero (the sandbox; target exactly 1) and
//! how long until every caller has its token.
//!
//! Run: `cargo bench -p ledgerlink-proxy --bench refresh_storm`
//! Knobs: `BENCH_CALLERS` (default 1000), `BENCH_RUNS` (default 7).

use ledgerlink_proxy::providers::xero::oauth::XeroTokens;
use ledgerlink_proxy::{AppState, Clock, Settings};
use ledgerlink_sandbox::Sandbox;
use ledgerlink_wire::Secret;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct SandboxClock(Arc<ledgerlink_sandbox::Shared>);

impl Clock for SandboxClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.clock.now()
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn refresh_requests(http: &reqwest::Client, url: &str, since: u64) -> (usize, u64) {
    let log: Value = http
        .get(format!("{url}/_sandbox/requests?since={since}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let requests = log["requests"].as_array().unwrap();
    let n = requests
        .iter()
        .filter(|r| {
            r["path"] == "/connect/token"
                && r["body"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("refresh_token")
        })
        .count();
    let last = requests
        .last()
        .and_then(|r| r["seq"].as_u64())
        .unwrap_or(since);
    (n, last)
}

#[tokio::main]
async fn main() {
    let callers = env_or("BENCH_CALLERS", 1000);
    let runs = env_or("BENCH_RUNS", 7);
    let sandbox = Sandbox::start(ledgerlink_sandbox::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let url = sandbox.url();
    let http = reqwest::Client::new();
    let dir = std::env::temp_dir().join(format!("ll-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut settings = Settings {
        database: ledgerlink_proxy::settings::Database::Sqlite(dir.join("proxy.db")),
        ..Default::default()
    };
    settings.providers.xero.client_id = ledgerlink_sandbox::settings::DEMO_CLIENT_ID.into();
    settings.providers.xero.client_secret = Some(Secret::new(
        ledgerlink_sandbox::settings::DEMO_CLIENT_SECRET,
    ));
    settings.providers.xero.base_url = Some(url::Url::parse(&url).unwrap());
    settings.master_keys = vec![Secret::new(
        ledgerlink_proxy::crypto::MasterKey::generate_base64(),
    )];
    let state = AppState::new(settings, Arc::new(SandboxClock(sandbox.shared().clone())))
        .await
        .unwrap();

    let grant: Value = http
        .post(format!("{url}/_sandbox/grants"))
        .json(&json!({"client_id": ledgerlink_sandbox::settings::DEMO_CLIENT_ID, "user": "demo@ledgerlink.test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokens = XeroTokens {
        access_token: Secret::new(grant["access_token"].as_str().unwrap()),
        refresh_token: Secret::new(grant["refresh_token"].as_str().unwrap()),
        expires_in: 1800,
        scope: grant["scope"].as_str().unwrap_or_default().into(),
    };
    let id = state
        .vault
        .store(ledgerlink_wire::Provider::Xero, &tokens.into())
        .await
        .unwrap();

    println!("refresh storm: {callers} concurrent callers, {runs} runs");
    println!();
    println!("| run | refresh calls at Xero | all answered after (ms) |");
    println!("|---|---|---|");
    let (_, mut since) = refresh_requests(&http, &url, 0).await;
    let mut times = Vec::new();
    let mut counts = Vec::new();
    for run in 1..=runs {
        // The token set expires now.
        http.post(format!("{url}/_sandbox/clock"))
            .json(&json!({"advance_seconds": 1800}))
            .send()
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(callers));
        let started = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let vault = state.vault.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    vault
                        .access_token(id)
                        .await
                        .expect("a token")
                        .expose()
                        .len()
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap() > 0);
        }
        let elapsed: Duration = started.elapsed();
        let (n, last) = refresh_requests(&http, &url, since).await;
        since = last;
        println!("| {run} | {n} | {:.1} |", elapsed.as_secs_f64() * 1000.0);
        times.push(elapsed.as_secs_f64() * 1000.0);
        counts.push(n);
    }
    times.sort_by(f64::total_cmp);
    println!();
    println!(
        "median time until all {callers} callers had the new token: {:.1} ms; refresh calls per storm: {:?}",
        times[times.len() / 2],
        counts
    );
    std::fs::remove_dir_all(dir).ok();
}
