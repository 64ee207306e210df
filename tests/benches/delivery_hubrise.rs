//! Delivery efficiency against HubRise: the sandbox enforcing HubRise's limits per connection (500
//! calls a "minute", 2,500 an "hour", 10,000 a "day", heavy reads 10 a "minute", all three windows
//! scaled by one factor: a minute of `BENCH_MINUTE_SECS`, default 4 s) and the proxy configured with
//! the same scale. Each order is one call. Measured over three minute-windows after a warm-up
//! window, all inside one hour-window (4 × 500 calls < 2,500), so the minute limit binds: orders
//! that reach HubRise per minute-window ÷ 500, and the `429`s the sandbox had to send. Target: at
//! least 95% and zero 429s.
//!
//! Run: `cargo bench -p ledgerlink-e2e --bench delivery_hubrise`
//! Knobs: `BENCH_RUNS` (default 3), `BENCH_MINUTE_SECS` (default 4).

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

const PER_MINUTE: usize = 500;
const WINDOWS: usize = 3;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn delivered(world: &World) -> usize {
    world.sandbox.shared().hubrise().orders.len()
}

/// One run: (orders per minute-window / 500, number of 429s).
async fn run(minute_secs: u64) -> (f64, usize) {
    let mut settings = settings();
    settings.providers.hubrise.limits.minute_secs = minute_secs;
    let world = World::start_with(settings).await;
    let scaled = world
        .control(
            Method::PUT,
            "/limits",
            json!({"provider": "hubrise", "minute_seconds": minute_secs}),
        )
        .await;
    assert_eq!(scaled.status, 200, "{}", scaled.text);
    let till = world.device("Bistro till");
    let p = world.pair_hubrise(&till, PARIS).await;
    let since = world.last_seq().await;

    // Enough for the warm-up and the measured windows, so the outbox never runs dry.
    let total = PER_MINUTE * (WINDOWS + 3);
    for chunk in 0..total / 100 {
        let batch: Vec<_> = (0..100)
            .map(|i| json!({"client_ref": format!("B-{chunk}-{i}"),
                "items": [{"name": "Croque monsieur", "price": "8.90", "quantity": "1", "tax_rate": "10"}],
                "payments": [{"tender": "Card", "amount": "8.90"}]}))
            .collect();
        let a = till.push("orders", &p.access, batch).await;
        assert_eq!(a.status, 202, "{}", a.text);
    }
    let window = Duration::from_secs(minute_secs);
    while delivered(&world) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(window).await;
    let (start, before) = (Instant::now(), delivered(&world));
    tokio::time::sleep(window * WINDOWS as u32).await;
    let (elapsed, after) = (start.elapsed(), delivered(&world));
    assert!(after < total, "the outbox ran dry while measuring");
    let per_window = (after - before) as f64 / (elapsed.as_secs_f64() / window.as_secs_f64());
    let limited = world
        .sandbox_requests(since)
        .await
        .iter()
        .filter(|r| r["provider"] == "hubrise" && r["status"] == 429)
        .count();
    (per_window / PER_MINUTE as f64, limited)
}

#[tokio::main]
async fn main() {
    let runs = env_or("BENCH_RUNS", 3);
    let minute_secs = env_or("BENCH_MINUTE_SECS", 4) as u64;
    println!("HubRise delivery efficiency: {PER_MINUTE} calls per {minute_secs}-s \"minute\" (hour and day scaled alike), one order per call, {WINDOWS} windows measured, {runs} runs");
    println!();
    println!("| median share of the minute's allowance | runs | 429s |");
    println!("|---|---|---|");
    let mut shares = Vec::new();
    let mut limited = 0;
    for _ in 0..runs {
        let (share, n) = run(minute_secs).await;
        shares.push(share);
        limited += n;
    }
    let mut sorted = shares.clone();
    sorted.sort_by(f64::total_cmp);
    let list: Vec<String> = shares
        .iter()
        .map(|s| format!("{:.1}%", s * 100.0))
        .collect();
    println!(
        "| {:.1}% | {} | {limited} |",
        sorted[sorted.len() / 2] * 100.0,
        list.join(", ")
    );
}
