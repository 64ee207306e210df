//! `ledgerlink-proxy migrate`: a proxy on SQLite, with a paired till and documents still on their
//! way, moves to Postgres; the till carries on with the credentials it has, its event cursor keeps
//! its meaning, and what was queued reaches Xero once.

use ledgerlink_e2e::*;
use ledgerlink_proxy::store::postgres::testing::TestDatabase;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ledgerlink-proxy-under-test");

fn migrate(from: &std::path::Path, to: &str) -> std::process::Output {
    std::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LEDGERLINK_MIGRATE_TO", to)
        .args(["migrate", "--from", &format!("sqlite:{}", from.display())])
        .output()
        .unwrap()
}

/// Every event of the device from the start, page after page.
async fn all_events(device: &Device, access: &str) -> Vec<Value> {
    let mut after = 0;
    let mut out = Vec::new();
    loop {
        let page = device
            .call(
                Method::GET,
                &format!("/v1/events?after={after}"),
                access,
                None,
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        let events = page.json["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            return out;
        }
        after = page.json["next"].as_i64().unwrap();
        out.extend(events);
    }
}

#[tokio::test]
async fn a_sqlite_proxy_moves_to_postgres_and_its_till_carries_on_without_pairing_again() {
    // The proxy stopped without letting go of its delivery (killed, below): the one after the
    // move holds back a whole window first, short here.
    let mut s = settings();
    s.delivery.window_secs = 1;
    s.delivery.tenant_per_window = 1_000;
    let mut world = World::start_on(s, "sqlite").await;
    let (device, p) = crate::push::paired_with_mappings(&world).await;
    // Xero answers slowly, so documents are still queued (or in a call) at the move.
    world
        .control(
            Method::POST,
            "/faults",
            json!({"path_prefix": "/api.xro/2.0/Invoices", "method": "PUT", "latency_ms": 2000, "phase": "after"}),
        )
        .await;
    let total = 60;
    let batch: Vec<_> = (0..total)
        .map(|i| json!({"client_ref": format!("m{i:02}"), "contact": {"name": "Ann"}, "date": "2026-11-20",
            "lines": [{"description": "Lunch", "quantity": 1, "unit_amount": "9.50", "sales_category": "Food"}]}))
        .collect();
    let pushed = device.push("invoices", &p.access, batch).await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = all_events(&device, &p.access).await;
    let cursor = before.last().unwrap()["seq"].as_i64().unwrap();

    // Refused while a proxy holds the SQLite file.
    let pg = TestDatabase::empty().await;
    let refused = migrate(&world.db, pg.url());
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("nothing was moved"), "{said}");

    world.proxy.kill().await;
    let moved = migrate(&world.db, pg.url());
    let out = String::from_utf8_lossy(&moved.stdout);
    assert!(
        moved.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(out.contains(&format!("documents: {total}")), "{out}");
    assert!(out.contains(&format!("last event: {cursor}")), "{out}");
    // Never over data already there.
    let again = migrate(&world.db, pg.url());
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds data"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The proxy again, on Postgres: the till's credentials work as they were.
    world.proxy_settings.database =
        ledgerlink_proxy::settings::Database::Postgres(ledgerlink_wire::Secret::new(pg.url()));
    world.start_proxy().await;
    world.control(Method::DELETE, "/faults", json!({})).await;
    let after_move = all_events(&device, &p.access).await;
    assert_eq!(
        &after_move[..before.len()],
        &before[..],
        "the events up to the move, with their cursors, as they were"
    );
    let page = device
        .call(
            Method::GET,
            &format!("/v1/events?after={}", before[before.len() / 2]["seq"]),
            &p.access,
            None,
        )
        .await;
    assert_eq!(
        page.json["events"][0],
        before[before.len() / 2 + 1],
        "an old cursor returns exactly the events after it"
    );
    let docs = device
        .settle(&p.access, total, Duration::from_secs(60))
        .await;
    assert!(
        docs.iter().all(|d| d["state"] == "sent"),
        "{:?}",
        docs.iter().map(|d| &d["state"]).collect::<Vec<_>>()
    );
    let in_xero = {
        let shared = world.sandbox.shared().clone();
        let sandbox = shared.world();
        sandbox.tenant(NZ).unwrap().invoices.len()
    };
    assert_eq!(in_xero, total, "each queued invoice reached Xero once");
    drop(world);
    drop(pg);
}
