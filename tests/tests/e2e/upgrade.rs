//! A proxy upgraded in place: a till paired, and documents pushed, under the proxy as it was before
//! the provider seam (commit cb3b300, built by `scripts/old-proxy`), then the current proxy on the
//! same database and keys. The till keeps its credentials and goes on pushing; what the old proxy
//! had not delivered yet is delivered; the Xero tokens the old proxy stored still refresh.

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// The commit before the provider seam.
const BEFORE_THE_SEAM: &str = "cb3b300";

/// The old proxy binary, built once (minutes the first time; kept under target/upgrade/).
fn old_proxy() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(root.join("scripts/old-proxy"))
        .arg(BEFORE_THE_SEAM)
        .output()
        .expect("scripts/old-proxy runs");
    assert!(
        out.status.success(),
        "scripts/old-proxy {BEFORE_THE_SEAM} failed (it needs the repository's history): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn invoice(client_ref: &str, amount: &str) -> Value {
    json!({"client_ref": client_ref, "contact": {"name": "Upgrade Day Customer"}, "date": "2026-11-20",
        "lines": [{"description": "Flat white", "quantity": 1, "unit_amount": amount, "sales_category": "Food"}]})
}

fn payment(client_ref: &str, invoice: &str, amount: &str) -> Value {
    json!({"client_ref": client_ref, "invoice": {"client_ref": invoice}, "tender": "Card",
        "date": "2026-11-20", "amount": amount})
}

fn by_ref<'a>(docs: &'a [Value], client_ref: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["client_ref"] == client_ref)
        .unwrap_or_else(|| panic!("no document {client_ref} in {docs:?}"))
}

#[tokio::test]
async fn a_till_paired_before_the_seam_keeps_working_after_the_upgrade() {
    let old = old_proxy();
    let mut world = World::start().await;
    world.stop_proxy().await;
    let dir = world.db.parent().unwrap().to_path_buf();
    let config = dir.join("proxy.toml");
    std::fs::write(&config, "[delivery]\ntenant_per_window = 100000\n").unwrap();
    let log = dir.join("old-proxy.log");

    // Before: the old proxy pairs the till and delivers its first sale.
    let old_process = world.spawn_proxy(old.to_str().unwrap(), &config, &log);
    let till = world.device("Front counter");
    let p = world.pair(&till, &[NZ], None).await;
    let mapped = till
        .call(
            Method::PUT,
            "/v1/mappings",
            &p.access,
            Some(
                json!({"categories": {"Food": {"account_code": "200", "tax_type": "OUTPUT2"}},
                "tenders": {"Card": {"account_code": "090"}}}),
            ),
        )
        .await;
    assert_eq!(mapped.status, 200, "{}", mapped.text);
    let pushed = till
        .push("invoices", &p.access, json!([invoice("BEFORE-1", "4.50")]))
        .await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let docs = till.settle(&p.access, 1, Duration::from_secs(30)).await;
    let before = by_ref(&docs, "BEFORE-1").clone();
    assert_eq!(before["state"], "sent", "{before}");
    let xero_id = before["xero_id"].as_str().unwrap().to_string();
    assert!(
        before.get("provider_id").is_none(),
        "the proxy answering is the old one (it has no provider_id yet): {before}"
    );

    // Accepted but not delivered when the old proxy stops: Xero is failing.
    world
        .control(
            Method::POST,
            "/faults",
            json!({"path_prefix": "/api.xro/2.0/Invoices", "method": "PUT", "status": 503}),
        )
        .await;
    let pushed = till
        .push("invoices", &p.access, json!([invoice("BEFORE-2", "7.00")]))
        .await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let pushed = till
        .push(
            "payments",
            &p.access,
            json!([payment("PAY-BEFORE-2", "BEFORE-2", "7.00")]),
        )
        .await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = till
        .call(Method::GET, "/v1/documents?limit=10", &p.access, None)
        .await;
    let held = held.json["documents"].as_array().unwrap().clone();
    for r in ["BEFORE-2", "PAY-BEFORE-2"] {
        let d = by_ref(&held, r);
        assert!(
            d["state"] == "queued" || d["state"] == "sending",
            "not delivered before the upgrade: {d}"
        );
    }
    drop(old_process); // SIGKILL, mid-retry
    world.control(Method::DELETE, "/faults", json!({})).await;

    // The upgrade: the current proxy on the same database, keys and address.
    world.start_proxy().await;
    let connection = till
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(connection.status, 200, "{}", connection.text);
    assert_eq!(connection.json["provider"], "xero", "{}", connection.text);
    assert_eq!(
        connection.json["tenant_id"],
        NZ.to_string(),
        "{}",
        connection.text
    );

    // What the old proxy had not delivered goes; the first sale keeps its Xero id, now also as
    // the provider's id.
    let docs = till.settle(&p.access, 3, Duration::from_secs(30)).await;
    for r in ["BEFORE-1", "BEFORE-2"] {
        let d = by_ref(&docs, r);
        assert!(d["state"] == "sent" || d["state"] == "paid", "{d}");
        assert_eq!(d["provider_id"], d["xero_id"], "{d}");
        assert_eq!(d["provider_number"], d["xero_number"], "{d}");
    }
    assert_eq!(by_ref(&docs, "BEFORE-1")["xero_id"], xero_id.as_str());
    assert_eq!(by_ref(&docs, "PAY-BEFORE-2")["state"], "sent");

    // Past the Xero access token's 30 minutes: the refresh token the old proxy stored (encrypted)
    // is refreshed by the new one; the till's own tokens refresh too.
    world.advance(31 * 60).await;
    let refreshed = till.refresh(&p.refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let access = refreshed.json["access_token"].as_str().unwrap().to_string();
    let pushed = till
        .push("invoices", &access, json!([invoice("AFTER-1", "12.25")]))
        .await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let docs = till.settle(&access, 4, Duration::from_secs(30)).await;
    let after = by_ref(&docs, "AFTER-1");
    assert_eq!(after["state"], "sent", "{after}");
    assert!(after["provider_number"].as_str().is_some(), "{after}");

    // Xero holds each sale once.
    let invoices = world.xero_get("Invoices").await;
    let ours: Vec<&Value> = invoices["Invoices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["Contact"]["Name"] == "Upgrade Day Customer")
        .collect();
    assert_eq!(ours.len(), 3, "{invoices}");
    let old_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !old_log.is_empty(),
        "the old proxy ran (its log is at {})",
        log.display()
    );
}
