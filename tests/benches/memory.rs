//! The proxy's memory under the largest pushes it takes: the proxy binary alone (a process of its
//! own, release build), eight devices' bodies at the default body limit (4 MiB) at once, each made
//! of invoices at the line limit (200 lines), then their delivery to the sandbox. Reports the
//! resident memory when idle, the peak (VmHWM) over the pushes and the deliveries, and the resident
//! memory 60 s after the last delivery. Targets: peak under 300 MB; 60 s after, within 20% of idle.
//!
//! "Idle" is the proxy at rest after it has done the work once (each device pushed one invoice,
//! delivered, then a quiet minute): the code of intake, delivery and SQLite is then in memory, as it
//! is in any proxy that has served a till, so what is compared is what the burst leaves behind. The
//! resident memory right after the start is reported too.
//!
//! Run: `cargo bench -p ledgerlink-e2e --bench memory`
//! Knobs: `BENCH_RUNS` (default 3; medians are reported), `BENCH_SETTLE_SECS` (default 60).

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ledgerlink-proxy-under-test");
const BODIES: usize = 8;
const BODY_LIMIT: usize = 4 * 1024 * 1024;
const LINES: usize = 200;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1_000_000.0
}

/// One device's body: invoices of 200 lines each, as many as fit under the body limit.
fn body(prefix: &str) -> String {
    let line = json!({"description": "Espresso beans 1 kg", "quantity": 2, "unit_amount": "24.90", "sales_category": "Food"});
    let invoice = |i: usize| {
        json!({"client_ref": format!("{prefix}-{i:04}"), "contact": {"name": format!("Wholesale {}", i % 7)},
               "date": "2026-11-20", "lines": vec![line.clone(); LINES]})
    };
    let one = invoice(0).to_string().len() + 1;
    let n = (BODY_LIMIT - 64) / one;
    let text = json!({"invoices": (0..n).map(invoice).collect::<Vec<Value>>()}).to_string();
    assert!(text.len() <= BODY_LIMIT, "{} bytes", text.len());
    text
}

struct Figures {
    cold_kib: u64,
    idle_kib: u64,
    peak_kib: u64,
    after_kib: u64,
    documents: usize,
    push_secs: f64,
    deliver_secs: f64,
}

/// Waits (10 minutes at most) until no device has a document queued or sending.
async fn delivered(devices: &[(Device, Paired)]) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut busy = 0;
        for (device, p) in devices {
            for state in ["queued", "sending"] {
                let a = device
                    .call(
                        Method::GET,
                        &format!("/v1/documents?state={state}&limit=1"),
                        &p.access,
                        None,
                    )
                    .await;
                busy += a.json["documents"].as_array().map_or(0, Vec::len);
            }
        }
        if busy == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "delivery did not finish in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run(settle: Duration) -> Figures {
    let mut world = World::start().await;
    let mut devices = Vec::new();
    for i in 0..BODIES {
        let device = world.device(&format!("Till {i}"));
        let p = world.pair(&device, &[NZ], None).await;
        devices.push((device, p));
    }
    let m = devices[0]
        .0
        .call(
            Method::PUT,
            "/v1/mappings",
            &devices[0].1.access,
            Some(json!({"categories": {"Food": {"account_code": "200", "tax_type": "OUTPUT2"}}})),
        )
        .await;
    assert_eq!(m.status, 200, "{}", m.text);
    let bodies: Vec<String> = (0..BODIES).map(|i| body(&format!("d{i}"))).collect();

    // The proxy as its own process, on the same database.
    world.stop_proxy().await;
    let dir = world.db.parent().unwrap().to_path_buf();
    let config = dir.join("proxy.toml");
    std::fs::write(&config, "[delivery]\ntenant_per_window = 100000\n").unwrap();
    let process = world.spawn_proxy(BIN, &config, &dir.join("proxy.log"));
    let pid = process.child.id();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cold_kib = status_kib(pid, "VmRSS:");
    // Warm up: one invoice from each device, delivered; then the quiet minute.
    for (i, (device, p)) in devices.iter().enumerate() {
        let one = device
            .push("invoices", &p.access, json!([{"client_ref": format!("warm-{i}"), "contact": {"name": "Walk-in"},
                "date": "2026-11-20", "lines": [{"description": "Flat white", "quantity": 1, "unit_amount": "4.80", "sales_category": "Food"}]}]))
            .await;
        assert_eq!(one.status, 202, "{}", one.text);
    }
    delivered(&devices).await;
    tokio::time::sleep(settle).await;
    let idle_kib = status_kib(pid, "VmRSS:");

    let started = Instant::now();
    let http = reqwest::Client::new();
    let pushes = devices.iter().zip(&bodies).map(|((_, p), body)| {
        http.post(format!("{}/v1/invoices", world.proxy_url))
            .bearer_auth(&p.access)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    });
    let mut documents = 0;
    for answer in futures_util::future::join_all(pushes).await {
        let a = Answer::read(answer.unwrap()).await;
        assert_eq!(a.status, 202, "{}", &a.text[..a.text.len().min(300)]);
        documents += a.json["accepted"].as_u64().unwrap() as usize;
    }
    let push_secs = started.elapsed().as_secs_f64();

    delivered(&devices).await;
    let deliver_secs = started.elapsed().as_secs_f64() - push_secs;
    let in_xero = world
        .sandbox
        .shared()
        .world()
        .tenant(NZ)
        .unwrap()
        .invoices
        .len();
    assert_eq!(
        in_xero,
        documents + BODIES,
        "every document reached Xero once"
    );
    tokio::time::sleep(settle).await;
    let after_kib = status_kib(pid, "VmRSS:");
    let peak_kib = status_kib(pid, "VmHWM:");
    drop(process);
    Figures {
        cold_kib,
        idle_kib,
        peak_kib,
        after_kib,
        documents,
        push_secs,
        deliver_secs,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let runs = env_or("BENCH_RUNS", 3) as usize;
    let settle = Duration::from_secs(env_or("BENCH_SETTLE_SECS", 60));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut all = Vec::new();
    for i in 0..runs {
        let f = rt.block_on(run(settle));
        println!(
            "run {}: {} documents of {LINES} lines in {BODIES} bodies of 4 MiB; started {:.1} MB, idle {:.1} MB, peak {:.1} MB, {}s after the last delivery {:.1} MB ({:+.1}% of idle); pushes {:.1} s, delivery {:.1} s",
            i + 1,
            f.documents,
            mb(f.cold_kib),
            mb(f.idle_kib),
            mb(f.peak_kib),
            settle.as_secs(),
            mb(f.after_kib),
            (f.after_kib as f64 / f.idle_kib as f64 - 1.0) * 100.0,
            f.push_secs,
            f.deliver_secs
        );
        all.push(f);
    }
    let cold = median(all.iter().map(|f| mb(f.cold_kib)).collect());
    let idle = median(all.iter().map(|f| mb(f.idle_kib)).collect());
    let peak = median(all.iter().map(|f| mb(f.peak_kib)).collect());
    let after = median(all.iter().map(|f| mb(f.after_kib)).collect());
    let ratio = median(
        all.iter()
            .map(|f| f.after_kib as f64 / f.idle_kib as f64)
            .collect(),
    );
    println!(
        "median of {runs}: started {cold:.1} MB, idle {idle:.1} MB, peak {peak:.1} MB (target < 300), after {after:.1} MB = {:.2} × idle (target ≤ 1.20)",
        ratio
    );
}
