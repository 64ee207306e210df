//! Delivery efficiency: against the sandbox enforcing Xero's per-tenant limits (60 calls a window,
//! 5 concurrent; the day limit lifted) with a 2-second window so it runs quickly, how many documents
//! reach Xero per window, divided by the ceiling (50 per call × 60 calls), for one organisation and
//! for several; and how many `429`s the sandbox had to send. Target: at least 95% and zero 429s.
//!
//! Run: `cargo bench -p ledgerlink-e2e --bench delivery`
//! Knobs: `BENCH_RUNS` (default 3), `BENCH_TENANTS` (the "many" case, default 4),
//! `BENCH_WINDOWS` (windows measured, default 3).

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

const WINDOW_SECS: u64 = 2;
const PER_WINDOW: u32 = 60;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn delivered(world: &World, tenants: &[uuid::Uuid]) -> usize {
    let shared = world.sandbox.shared().clone();
    let sandbox = shared.world();
    tenants
        .iter()
        .map(|t| sandbox.tenant(*t).map_or(0, |t| t.invoices.len()))
        .sum()
}

/// One run: answers (documents per window per tenant / ceiling, number of 429s).
async fn run(tenant_count: usize, windows: usize) -> (f64, usize) {
    let mut settings = settings();
    settings.delivery.tenant_per_window = PER_WINDOW;
    settings.delivery.window_secs = WINDOW_SECS;
    let world = World::start_with(settings).await;
    let tenants = world.organisations(tenant_count).await;
    let mut devices = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let device = world.device(&format!("Till {i}"));
        let p = world.pair(&device, &[*t], None).await;
        let m = device
            .call(
                Method::PUT,
                "/v1/mappings",
                &p.access,
                Some(
                    json!({"categories": {"Food": {"account_code": "200", "tax_type": "OUTPUT2"}}}),
                ),
            )
            .await;
        assert_eq!(m.status, 200, "{}", m.text);
        devices.push((device, p));
    }
    // Xero's limits, with a short window; nothing else binds.
    let limits = json!({"tenant_per_window": PER_WINDOW, "window_seconds": WINDOW_SECS, "tenant_concurrent": 5, "tenant_per_day": 10_000_000, "app_per_window": 10_000_000});
    assert_eq!(
        world.control(Method::PUT, "/limits", limits).await.status,
        200
    );
    let since = world.last_seq().await;

    // Enough for the measured windows plus warm-up, so the outbox never runs dry while measuring.
    let per_tenant = 50 * PER_WINDOW as usize * (windows + 3);
    for (device, p) in &devices {
        for chunk in 0..per_tenant / 1000 {
            let batch: Vec<_> = (0..1000)
                .map(|i| json!({"client_ref": format!("{chunk}-{i}"), "contact": {"name": "Walk-in"}, "date": "2026-11-20",
                    "lines": [{"description": "Lunch", "quantity": 1, "unit_amount": "9.50", "sales_category": "Food"}]}))
                .collect();
            let a = device.push("invoices", &p.access, batch).await;
            assert_eq!(a.status, 202);
        }
    }
    // Warm up one window, then count what arrives over the measured windows.
    while delivered(&world, &tenants) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(WINDOW_SECS)).await;
    let (start, before) = (Instant::now(), delivered(&world, &tenants));
    tokio::time::sleep(Duration::from_secs(WINDOW_SECS * windows as u64)).await;
    let (elapsed, after) = (start.elapsed(), delivered(&world, &tenants));
    let per_window = (after - before) as f64
        / (elapsed.as_secs_f64() / WINDOW_SECS as f64)
        / tenants.len() as f64;
    let ceiling = 50.0 * f64::from(PER_WINDOW);
    let limited = world
        .sandbox_requests(since)
        .await
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert!(
        after - before < per_tenant * tenants.len(),
        "the outbox ran dry while measuring"
    );
    (per_window / ceiling, limited)
}

#[tokio::main]
async fn main() {
    let runs = env_or("BENCH_RUNS", 3);
    let many = env_or("BENCH_TENANTS", 4);
    let windows = env_or("BENCH_WINDOWS", 3);
    println!("delivery efficiency: {PER_WINDOW} calls per {WINDOW_SECS}-s window per organisation, 50 documents per call, {windows} windows measured, {runs} runs");
    println!();
    println!("| organisations | median share of the ceiling | runs | 429s |");
    println!("|---|---|---|---|");
    for tenants in [1, many] {
        let mut shares = Vec::new();
        let mut limited = 0;
        for _ in 0..runs {
            let (share, n) = run(tenants, windows).await;
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
            "| {tenants} | {:.1}% | {} | {limited} |",
            sorted[sorted.len() / 2] * 100.0,
            list.join(", ")
        );
    }
}
