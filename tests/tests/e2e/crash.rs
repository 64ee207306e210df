//! The proxy as a real process, killed with SIGKILL at random moments while it delivers 2,000
//! invoices, and started again each time: none lost, none duplicated.
//!
//! Longer soak: `CRASH_KILLS=100 CRASH_DOCUMENTS=5000 cargo test -p ledgerlink-e2e --test e2e crash -- --nocapture`
//! (prefix `LEDGERLINK_E2E_BACKEND=postgres` for the proxy on PostgreSQL; `./scripts/test` runs the
//! default 10 kills over 2,000 invoices on both).

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ledgerlink-proxy-under-test");

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let kills = env_or("CRASH_KILLS", 10);
    let total = env_or("CRASH_DOCUMENTS", 2000);
    let world = World::start().await;
    // Xero's limits are not what this is about; a little latency on each invoice call makes the
    // kills land while bundles are in flight (their outcome unknown to the proxy).
    world
        .control(Method::PUT, "/limits", json!({"tenant_per_window": 1_000_000, "tenant_per_day": 1_000_000, "app_per_window": 1_000_000, "tenant_concurrent": 100}))
        .await;
    world.control(Method::POST, "/faults", json!({"path_prefix": "/api.xro/2.0/Invoices", "method": "PUT", "latency_ms": 100, "phase": "after"})).await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    let m = device
        .call(
            Method::PUT,
            "/v1/mappings",
            &p.access,
            Some(json!({"categories": {"Food": {"account_code": "200", "tax_type": "OUTPUT2"}}})),
        )
        .await;
    assert_eq!(m.status, 200);
    for chunk in 0..total.div_ceil(500) {
        let n = (total - chunk * 500).min(500);
        let batch: Vec<_> = (0..n)
            .map(|i| json!({"client_ref": format!("c{chunk}-{i:04}"), "contact": {"name": format!("Customer {}", i % 5)}, "date": "2026-11-20",
                "lines": [{"description": "Lunch", "quantity": 1, "unit_amount": "9.50", "sales_category": "Food"}]}))
            .collect();
        let pushed = device.push("invoices", &p.access, batch).await;
        assert_eq!(pushed.status, 202);
    }
    // Hand the database over to a real process.
    let mut world = world;
    world.proxy.kill().await;
    let dir = world.db.parent().unwrap().to_path_buf();
    let config = dir.join("proxy.toml");
    // After each kill the next proxy holds back a whole window (1 s here: the killed one may have
    // sent calls it never recorded) before it calls Xero; each kill comes after that.
    std::fs::write(
        &config,
        "[delivery]\ntenant_per_window = 2000\nwindow_secs = 1\n\n[cluster]\nlease_secs = 2\n",
    )
    .unwrap();
    let log = dir.join("proxy.log");
    let mut process = world.spawn_proxy(BIN, &config, &log);
    for k in 0..kills {
        // A random moment, then (within a few seconds) one when a bundle is out: the restarted
        // proxy first waits for the killed one's lease to run out (on Postgres) and a window.
        let pause = 150 + (uuid::Uuid::new_v4().as_u128() % 500) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let looking = tokio::time::Instant::now();
        while looking.elapsed() < Duration::from_secs(5) {
            let sending = device
                .try_call(
                    Method::GET,
                    "/v1/documents?state=sending&limit=1",
                    &p.access,
                    None,
                )
                .await
                .is_some_and(|a| {
                    a.json["documents"]
                        .as_array()
                        .is_some_and(|d| !d.is_empty())
                });
            if sending {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        process.child.kill().unwrap(); // SIGKILL
        process.child.wait().unwrap();
        drop(process);
        process = world.spawn_proxy(BIN, &config, &log);
        let _ = k;
    }
    world.control(Method::DELETE, "/faults", json!({})).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let mut busy = 0;
        for state in ["queued", "sending"] {
            let a = device
                .call(
                    Method::GET,
                    &format!("/v1/documents?state={state}&limit=1000"),
                    &p.access,
                    None,
                )
                .await;
            busy += a.json["documents"].as_array().map_or(0, Vec::len);
        }
        if busy == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{busy} documents still moving after 180 s (log: {})",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let failed = device
        .call(
            Method::GET,
            "/v1/documents?state=failed&limit=1000",
            &p.access,
            None,
        )
        .await;
    assert_eq!(
        failed.json["documents"].as_array().unwrap().len(),
        0,
        "{}",
        failed.text
    );
    let shared = world.sandbox.shared().clone();
    let sandbox = shared.world();
    let tenant = sandbox.tenant(NZ).unwrap();
    assert_eq!(
        tenant.invoices.len(),
        total,
        "every invoice in Xero exactly once after {kills} kills"
    );
    assert_eq!(
        tenant
            .contacts
            .iter()
            .filter(|c| c.name.starts_with("Customer"))
            .count(),
        5
    );
    drop(process);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let mid_flight = log_text.matches("mid-delivery").count();
    assert!(
        mid_flight >= 1,
        "no kill landed while bundles were in flight: the test proved nothing"
    );
    if std::env::var("CRASH_LOG").is_ok() {
        println!("{log_text}");
    }
    println!("{kills} kills, {mid_flight} of them with bundles in flight (outcome unknown), {total} invoices, none lost or doubled");
}
