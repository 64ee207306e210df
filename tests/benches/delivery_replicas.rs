//! Delivery across replicas: three proxy processes on one Postgres database deliver for 50
//! organisations under Xero's own limits (60 calls a minute per organisation, 5 at once, the
//! 60-second window; the day limit lifted), the bench's app registered uncapped in the sandbox
//! (certified, Enterprise tier, so 50 organisations may connect). Tills keep pushing through the
//! replicas while they deliver: each organisation's outbox is topped up whenever it holds less
//! than two windows' worth. Measured over three windows after a warm-up window: invoices that
//! reached Xero per window per organisation, divided by the ceiling (60 calls × 50 invoices a
//! call), and every `429` the sandbox answered in the run. Target: at least 95% and no 429.
//!
//! Run: `cargo bench -p ledgerlink-e2e --bench delivery_replicas` (about 6 minutes a run).
//! Knobs: `BENCH_RUNS` (default 3), `BENCH_TENANTS` (50), `BENCH_REPLICAS` (3), `BENCH_WINDOWS`
//! (3), `BENCH_WINDOW_SECS` (60; shorter for a quick look, at a higher rate of calls).

use futures_util::StreamExt;
use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ledgerlink-proxy-under-test");
const PER_WINDOW: usize = 60;
const PER_CALL: usize = 50;
const BATCH: usize = 1000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Invoices in the sandbox, per organisation.
fn delivered(sandbox: &ledgerlink_sandbox::Shared, tenants: &[uuid::Uuid]) -> Vec<usize> {
    let world = sandbox.world();
    tenants
        .iter()
        .map(|t| world.tenant(*t).map_or(0, |t| t.invoices.len()))
        .collect()
}

/// Xero's answers so far: (all of them, the 429s).
async fn answers(world: &World) -> (u64, u64) {
    let tally = world
        .control(Method::GET, "/requests/tally", json!({}))
        .await;
    let xero = &tally.json["xero"];
    let all = xero
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    (all, xero["429"].as_u64().unwrap_or(0))
}

struct Run {
    share: f64,
    limited: u64,
    requests: u64,
}

async fn run(tenant_count: usize, replica_count: usize, windows: usize, window: u64) -> Run {
    let mut settings = settings();
    settings.delivery.tenant_per_window = PER_WINDOW as u32;
    settings.delivery.window_secs = window;
    // An Enterprise app: no cap on connected organisations, here as in the sandbox.
    settings.providers.xero.connection_cap = Some(0);
    let mut world = World::start_on(settings, "postgres").await;
    // The bench's app may connect every organisation it needs.
    let app = world
        .control(
            Method::PUT,
            &format!("/apps/{CLIENT_ID}"),
            json!({"certified": true, "tier": "enterprise"}),
        )
        .await;
    assert_eq!(app.status, 200, "{}", app.text);
    let tenants = world.organisations(tenant_count).await;
    let mut tills = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let device = world.device(&format!("Till {i}"));
        let p = world.pair(&device, &[*t], None).await;
        tills.push((device, p.access));
    }
    // Xero's limits as they are; only the day's is lifted (a bench's invoices are not a day's).
    let limits = json!({"tenant_per_window": PER_WINDOW, "window_seconds": window, "tenant_concurrent": 5,
        "tenant_per_day": 10_000_000, "app_per_window": 10_000});
    assert_eq!(
        world.control(Method::PUT, "/limits", limits).await.status,
        200
    );
    let before_run = answers(&world).await;

    // The proxy becomes `replica_count` processes on the database, the first on its address.
    world.proxy.kill().await;
    let dir = world.db.parent().unwrap().to_path_buf();
    let config = dir.join("replicas.toml");
    std::fs::write(
        &config,
        format!("[delivery]\ntenant_per_window = {PER_WINDOW}\nwindow_secs = {window}\n\n[providers.xero]\nconnection_cap = 0\n"),
    )
    .unwrap();
    let mut addrs = vec![world.proxy_settings.listen];
    addrs.extend((1..replica_count).map(|_| free_port()));
    let replicas: Vec<ProxyProcess> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| world.spawn_proxy_on(BIN, &config, &dir.join(format!("replica-{i}.log")), *a))
        .collect();
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();

    // The tills: each organisation's outbox is kept above two windows' worth, its pushes spread
    // over the replicas. The lowest it fell to while measuring says whether it ever ran dry.
    let sandbox = world.sandbox.shared().clone();
    let low = 2 * PER_WINDOW * PER_CALL;
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let lowest = Arc::new(Mutex::new(usize::MAX));
    let feeder = {
        let (sandbox, tenants, stop, measuring, lowest) = (
            sandbox.clone(),
            tenants.clone(),
            stop.clone(),
            measuring.clone(),
            lowest.clone(),
        );
        let tills: Vec<_> = tills
            .iter()
            .enumerate()
            .map(|(i, (d, access))| (d.via(&urls[i % urls.len()]), access.clone()))
            .collect();
        tokio::spawn(async move {
            let mut pushed = vec![0usize; tenants.len()];
            while !stop.load(Ordering::Relaxed) {
                let there = delivered(&sandbox, &tenants);
                let queued: Vec<usize> = pushed.iter().zip(&there).map(|(p, d)| p - d).collect();
                if measuring.load(Ordering::Relaxed) {
                    let mut l = lowest.lock().unwrap();
                    *l = (*l).min(*queued.iter().min().unwrap());
                }
                let wanted: Vec<(usize, usize)> = queued
                    .iter()
                    .enumerate()
                    .filter(|(_, q)| **q < low)
                    .flat_map(|(i, q)| {
                        let batches = (low + BATCH - q).div_ceil(BATCH);
                        (0..batches).map(move |b| (i, b))
                    })
                    .collect();
                let tills = &tills;
                let done: Vec<usize> = futures_util::stream::iter(wanted)
                    .map(|(i, b)| {
                        let n = pushed[i] + b * BATCH;
                        async move {
                            let body: Vec<Value> = (n..n + BATCH)
                                .map(|k| json!({"client_ref": format!("b-{k}"), "contact": {"name": "Walk-in"}, "date": "2026-11-20",
                                    "lines": [{"description": "Lunch", "quantity": 1, "unit_amount": "9.50", "account_code": "200", "tax_type": "OUTPUT2"}]}))
                                .collect();
                            let (till, access) = &tills[i];
                            let a = till.call(Method::POST, "/v1/invoices", access, Some(json!(body))).await;
                            assert_eq!(a.status, 202, "{}", a.text);
                            i
                        }
                    })
                    .buffer_unordered(4)
                    .collect()
                    .await;
                for i in done {
                    pushed[i] += BATCH;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    // Warm up: every organisation has had invoices delivered, then one more window.
    while delivered(&sandbox, &tenants).contains(&0) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(window)).await;
    // Whole windows of Xero's (aligned to its clock, which the pairings moved on), each invoice
    // counted in the window Xero made it in: a pacer may well spend a window's calls early in it,
    // so a stretch of time that is not whole windows would say little.
    let clock = world.control(Method::GET, "/clock", json!({})).await;
    let xero_now: chrono::DateTime<chrono::Utc> =
        clock.json["now"].as_str().unwrap().parse().unwrap();
    let w = window as i64 * 1000;
    let edge = (xero_now.timestamp_millis() / w + 1) * w;
    let (from, to) = (edge, edge + w * windows as i64);
    let start = tokio::time::Instant::now()
        + Duration::from_millis((edge - xero_now.timestamp_millis()) as u64);
    tokio::time::sleep_until(start).await;
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep_until(start + Duration::from_millis((to - from) as u64)).await;
    measuring.store(false, Ordering::Relaxed);
    // The last calls land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    feeder.await.unwrap();
    let lowest = *lowest.lock().unwrap();
    assert!(
        lowest > 0,
        "an outbox ran dry while measuring: the figure would say nothing"
    );
    let invoices: usize = {
        let world = sandbox.world();
        tenants
            .iter()
            .map(|t| {
                world.tenant(*t).map_or(0, |t| {
                    t.invoices
                        .iter()
                        .filter(|i| (from..to).contains(&i.updated.timestamp_millis()))
                        .count()
                })
            })
            .sum()
    };
    let per_window = invoices as f64 / windows as f64 / tenants.len() as f64;
    drop(replicas);
    let after_run = answers(&world).await;
    Run {
        share: per_window / (PER_WINDOW * PER_CALL) as f64,
        requests: after_run.0 - before_run.0,
        limited: after_run.1 - before_run.1,
    }
}

#[tokio::main]
async fn main() {
    let runs = env_or("BENCH_RUNS", 3);
    let tenants = env_or("BENCH_TENANTS", 50);
    let replicas = env_or("BENCH_REPLICAS", 3);
    let windows = env_or("BENCH_WINDOWS", 3);
    let window = env_or("BENCH_WINDOW_SECS", 60) as u64;
    println!("delivery across replicas: {replicas} proxy processes on one Postgres, {tenants} organisations, {PER_WINDOW} calls per {window}-s window each, {PER_CALL} invoices a call, {windows} windows measured, {runs} runs");
    println!();
    println!("| run | share of the ceiling | 429s | sandbox requests in the run |");
    println!("|---|---|---|---|");
    let mut shares = Vec::new();
    for r in 1..=runs {
        let run = run(tenants, replicas, windows, window).await;
        println!(
            "| {r} | {:.1}% | {} | {} |",
            run.share * 100.0,
            run.limited,
            run.requests
        );
        shares.push(run.share);
    }
    shares.sort_by(f64::total_cmp);
    println!();
    println!("median {:.1}%", shares[shares.len() / 2] * 100.0);
}
