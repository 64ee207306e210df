//! Is the sandbox ever the bottleneck? Requests per second for `GET /Organisation` and for a
//! 50-invoice `PUT /Invoices`, limits lifted, against the release binary in its own process.
//!
//! Run: `cargo bench -p ledgerlink-sandbox --bench throughput`
//! Knobs: `BENCH_SECONDS` (per run, default 3), `BENCH_RUNS` (default 5), `BENCH_CLIENTS`
//! (concurrent connections, default 8). Prints the median and the spread of the runs.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ledgerlink-sandbox");
const NZ: &str = "3c9d1a2b-7e4f-4a6b-9c8d-1e2f3a4b5c01";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn batch(n: usize, round: u64) -> Value {
    let invoices: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "Type": "ACCREC",
                "Contact": {"Name": format!("Bench Customer {}", i % 7)},
                "Date": "2026-11-20",
                "Status": "AUTHORISED",
                "LineAmountTypes": "Inclusive",
                "Reference": format!("bench-{round}-{i}"),
                "LineItems": [
                    {"Description": "Coffee", "Quantity": 2, "UnitAmount": 4.5, "AccountCode": "200", "TaxType": "OUTPUT2"},
                    {"Description": "Muffin", "Quantity": 1, "UnitAmount": 3.95, "AccountCode": "200", "TaxType": "OUTPUT2"},
                ],
            })
        })
        .collect();
    json!({ "Invoices": invoices })
}

/// Runs `clients` loops of `call` for `seconds`; answers requests per second. Every answer must be 200.
async fn measure<F, Fut>(clients: u64, seconds: u64, call: F) -> f64
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = reqwest::StatusCode> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let status = call(c * 1_000_000 + n).await;
                    assert_eq!(status, 200, "the sandbox refused a benchmark call");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn summary(name: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let list: Vec<String> = samples.iter().map(|s| format!("{s:.0}")).collect();
    println!("| {name} | {median:.0} | {} |", list.join(", "));
}

#[tokio::main]
async fn main() {
    let seconds = env_or("BENCH_SECONDS", 3);
    let runs = env_or("BENCH_RUNS", 5);
    let clients = env_or("BENCH_CLIENTS", 8);

    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--no-limits"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sandbox");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .trim_start_matches("ledgerlink-sandbox listening on ")
        .to_string();

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
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
    let token = grant["access_token"].as_str().unwrap().to_string();

    println!("sandbox throughput: {runs} runs of {seconds} s, {clients} concurrent clients, limits lifted");
    println!();
    println!("| scenario | median req/s | runs (req/s) |");
    println!("|---|---|---|");

    let mut org = Vec::new();
    for _ in 0..runs {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        org.push(
            measure(clients, seconds, move |_| {
                let req = http
                    .get(format!("{url}/api.xro/2.0/Organisation"))
                    .bearer_auth(&token)
                    .header("xero-tenant-id", NZ);
                async move { req.send().await.unwrap().status() }
            })
            .await,
        );
    }
    summary("GET /Organisation", org);

    let mut put = Vec::new();
    for run in 0..runs {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        put.push(
            measure(clients, seconds, move |n| {
                let body = batch(50, run * 10_000_000 + n).to_string();
                let req = http
                    .put(format!("{url}/api.xro/2.0/Invoices?summarizeErrors=false"))
                    .bearer_auth(&token)
                    .header("xero-tenant-id", NZ)
                    .header("content-type", "application/json")
                    .body(body);
                async move { req.send().await.unwrap().status() }
            })
            .await,
        );
    }
    let invoices: Vec<f64> = put.iter().map(|r| r * 50.0).collect();
    summary("PUT /Invoices (50 per call)", put);
    summary("  = invoices created per second", invoices);
    println!();
    println!("Xero allows 60 calls/min per tenant and 10,000/min (167/s) per app.");

    let _ = child.kill();
    let _ = child.wait();
}
