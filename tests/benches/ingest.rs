//! Ingest: invoices accepted per second, durably (stored in the outbox before the answer), with 64
//! devices pushing 50-invoice batches, divided by a plain batched SQLite insert of the same rows
//! measured in the same run (the storage ceiling; target at least 50%). And the p99 latency of
//! single-invoice pushes at a fixed offered rate divided by the p99 of an authenticated no-op
//! (`GET /v1/device`) at the same rate (target at most 3).
//!
//! On PostgreSQL (`LEDGERLINK_E2E_BACKEND=postgres`, the server `LEDGERLINK_TEST_PG_URL` names or
//! one the bench starts), the ceiling is a plain multi-row INSERT of the same rows, 50 a
//! transaction, into the proxy's own `documents` table (the same indexes) in a database of its own
//! on the same server.
//!
//! Run: `cargo bench -p ledgerlink-e2e --bench ingest` (prefix `LEDGERLINK_E2E_BACKEND=postgres`
//! for Postgres)
//! Knobs: `BENCH_SECONDS` (default 3), `BENCH_RUNS` (default 3), `BENCH_DEVICES` (default 64),
//! `BENCH_RATE` (offered requests per second for the latency part, default 200).

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn invoice(client_ref: &str) -> Value {
    json!({"client_ref": client_ref, "contact": {"name": "Walk-in"}, "date": "2026-11-20",
        "lines": [{"description": "Lunch", "quantity": 1, "unit_amount": "9.50", "sales_category": "Food"}]})
}

/// Rows per second of plain batched inserts (50 a transaction) of the same documents into a table
/// shaped like the outbox, WAL and synchronous=NORMAL as the proxy runs.
fn sqlite_ceiling(seconds: u64) -> f64 {
    let path = std::env::temp_dir().join(format!("ll-ceiling-{}.db", uuid::Uuid::new_v4()));
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE documents (id TEXT PRIMARY KEY, device_id TEXT NOT NULL, connection_id TEXT NOT NULL, kind TEXT NOT NULL,
           client_ref TEXT NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (device_id, client_ref));",
    )
    .unwrap();
    let device = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        let tx = conn.transaction().unwrap();
        for _ in 0..50 {
            let body = invoice(&format!("r{n}")).to_string();
            tx.execute(
                "INSERT INTO documents VALUES (?1, ?2, ?3, 'invoice', ?4, ?5, 'queued', ?6)",
                rusqlite::params![
                    uuid::Uuid::new_v4().to_string(),
                    device,
                    device,
                    format!("r{n}"),
                    body,
                    n as i64
                ],
            )
            .unwrap();
            n += 1;
        }
        tx.commit().unwrap();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    rate
}

/// Rows per second of plain multi-row INSERTs (50 rows a statement, one statement a transaction) of
/// the same documents into the proxy's own `documents` table, with its indexes, on the same server.
async fn postgres_ceiling(seconds: u64) -> f64 {
    let db = ledgerlink_proxy::store::postgres::testing::TestDatabase::migrated().await;
    let (mut client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let (conn, device, now) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        chrono::Utc::now(),
    );
    client
        .execute(
            "INSERT INTO connections (id, provider, tenant_id, tenant_name, status, created_at, updated_at)
             VALUES ($1, 'xero', $2, 'Bench', 'connected', $3, $3)",
            &[&conn, &conn.to_string(), &now],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO devices (id, name, client_id, connection_id, paired_at) VALUES ($1, 'Till', 'c', $2, $3)",
            &[&device, &conn, &now],
        )
        .await
        .unwrap();
    let values: Vec<String> = (0..50)
        .map(|i| {
            let b = i * 6;
            format!(
                "(${}, ${}, ${}, 'invoice', ${}, ${}, 'queued', ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 6
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO documents (id, device_id, connection_id, kind, client_ref, body, state, created_at, updated_at) VALUES {}",
        values.join(", ")
    );
    let statement = client.prepare(&sql).await.unwrap();
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        let rows: Vec<(uuid::Uuid, String, String)> = (0..50)
            .map(|i| {
                let r = format!("r{}", n + i);
                (uuid::Uuid::new_v4(), invoice(&r).to_string(), r)
            })
            .collect();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
        for (id, body, r) in &rows {
            params.extend([
                id as &(dyn tokio_postgres::types::ToSql + Sync),
                &device,
                &conn,
                r,
                body,
                &now,
            ]);
        }
        let tx = client.transaction().await.unwrap();
        tx.execute(&statement, &params).await.unwrap();
        tx.commit().await.unwrap();
        n += 50;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Sends `rate` requests a second for `seconds` (open loop), answers each one's latency.
async fn offered(
    rate: usize,
    seconds: u64,
    make: impl Fn(usize) -> reqwest::RequestBuilder,
) -> Vec<Duration> {
    let mut tasks = Vec::new();
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    for i in 0..rate * seconds as usize {
        tokio::time::sleep_until(start + gap * i as u32).await;
        let req = make(i);
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            let _ = r.bytes().await;
            t.elapsed()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::main]
async fn main() {
    let seconds = env_or("BENCH_SECONDS", 3) as u64;
    let runs = env_or("BENCH_RUNS", 3);
    let device_count = env_or("BENCH_DEVICES", 64);
    let rate = env_or("BENCH_RATE", 200);

    let mut settings = settings();
    settings.delivery.tenant_per_window = 60; // Xero's pace: delivery barely competes with ingest
    let world = World::start_with(settings).await;
    let mut devices = Vec::new();
    for i in 0..device_count {
        let device = world.device(&format!("Till {i}"));
        let p = world.pair(&device, &[NZ], None).await;
        if i == 0 {
            let m = device
                .call(Method::PUT, "/v1/mappings", &p.access, Some(json!({"categories": {"Food": {"account_code": "200", "tax_type": "OUTPUT2"}}})))
                .await;
            assert_eq!(m.status, 200);
        }
        devices.push(p.access);
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let url = world.proxy_url.clone();

    let store = backend();
    println!(
        "ingest on {store}: {device_count} devices pushing 50-invoice batches for {seconds} s, {runs} runs"
    );
    println!();
    println!("| run | accepted invoices/s | plain {store} inserts/s | ratio |");
    println!("|---|---|---|---|");
    let mut ratios = Vec::new();
    for run in 0..runs {
        let accepted = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(d, token)| {
                let (http, url, token, accepted) =
                    (http.clone(), url.clone(), token.clone(), accepted.clone());
                tokio::spawn(async move {
                    let mut batch_no = 0;
                    while Instant::now() < deadline {
                        let batch: Vec<Value> = (0..50)
                            .map(|i| invoice(&format!("run{run}-d{d}-b{batch_no}-{i}")))
                            .collect();
                        let r = http
                            .post(format!("{url}/v1/invoices"))
                            .bearer_auth(&token)
                            .json(&json!({"invoices": batch}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 202);
                        let _ = r.bytes().await;
                        accepted.fetch_add(50, Ordering::Relaxed);
                        batch_no += 1;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let ingest = accepted.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        let ceiling = match store {
            "postgres" => postgres_ceiling(seconds).await,
            _ => tokio::task::spawn_blocking(move || sqlite_ceiling(seconds))
                .await
                .unwrap(),
        };
        println!(
            "| {} | {ingest:.0} | {ceiling:.0} | {:.0}% |",
            run + 1,
            ingest / ceiling * 100.0
        );
        ratios.push(ingest / ceiling);
    }
    ratios.sort_by(f64::total_cmp);
    println!();
    println!(
        "median ingest / storage ceiling: {:.0}%",
        ratios[ratios.len() / 2] * 100.0
    );

    println!();
    println!("latency at {rate} requests/s offered for {seconds} s, {runs} runs:");
    println!();
    println!("| run | p99 single-invoice push (ms) | p99 GET /v1/device (ms) | ratio | p50 push / no-op (ms) |");
    println!("|---|---|---|---|---|");
    let mut lat_ratios = Vec::new();
    for run in 0..runs {
        let tokens = devices.clone();
        let (h, u) = (http.clone(), url.clone());
        let push = offered(rate, seconds, move |i| {
            h.post(format!("{u}/v1/invoices"))
                .bearer_auth(&tokens[i % tokens.len()])
                .json(&json!({"invoices": [invoice(&format!("lat{run}-{i}"))]}))
        })
        .await;
        let tokens = devices.clone();
        let (h, u) = (http.clone(), url.clone());
        let noop = offered(rate, seconds, move |i| {
            h.get(format!("{u}/v1/device"))
                .bearer_auth(&tokens[i % tokens.len()])
        })
        .await;
        let (a, b) = (percentile(&push, 99), percentile(&noop, 99));
        let (ma, mb) = (percentile(&push, 50), percentile(&noop, 50));
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} |",
            run + 1,
            a.as_secs_f64() * 1000.0,
            b.as_secs_f64() * 1000.0,
            a.as_secs_f64() / b.as_secs_f64(),
            ma.as_secs_f64() * 1000.0,
            mb.as_secs_f64() * 1000.0
        );
        lat_ratios.push(a.as_secs_f64() / b.as_secs_f64());
    }
    lat_ratios.sort_by(f64::total_cmp);
    println!();
    println!(
        "median p99 ratio (push / no-op): {:.2}",
        lat_ratios[lat_ratios.len() / 2]
    );
}
