//! The proxy on a PostgreSQL that goes away while tills push and comes back: every call that needs
//! it answers `503 unavailable` (nothing half-stored), `/readyz` says not ready, and once it is back
//! the proxy carries on without a restart: what it had accepted is delivered, once, and what it
//! refused is taken when the till sends it again.

use ledgerlink_e2e::*;
use ledgerlink_proxy::settings::Database;
use ledgerlink_proxy::store::postgres::testing::Cluster;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

fn invoices(prefix: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"client_ref": format!("{prefix}-{i}"), "contact": {"name": "Walk-in"}, "date": "2026-11-20",
                "lines": [{"description": "Coffee", "quantity": 1, "unit_amount": "4.50", "account_code": "200", "tax_type": "OUTPUT2"}]}))
            .collect(),
    )
}

async fn ready(world: &World) -> u16 {
    reqwest::get(format!("{}/readyz", world.proxy_url))
        .await
        .map_or(0, |r| r.status().as_u16())
}

// Multi-threaded: stopping and starting the cluster are blocking calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_gone_answers_unavailable_and_back_delivers_every_accepted_document_once() {
    let cluster = Cluster::start();
    let mut settings = settings();
    settings.database = Database::Postgres(ledgerlink_wire::Secret::new(cluster.database().await));
    // A call waits at most a second for the database before answering 503.
    settings.postgres.timeout_secs = 1;
    let world = World::start_with(settings).await;
    let till = world.device("Till");
    let p = world.pair(&till, &[NZ], None).await;
    assert_eq!(ready(&world).await, 200);

    // Five sales accepted while Xero is failing: they wait in the proxy's outbox.
    let failing = world
        .control(
            Method::POST,
            "/faults",
            json!({"path_prefix": "/api.xro/2.0/Invoices", "status": 503}),
        )
        .await;
    assert_eq!(failing.status, 201, "{}", failing.text);
    let accepted = till.push("invoices", &p.access, invoices("A", 5)).await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);

    // The database goes away.
    tokio::task::spawn_blocking({
        let c = cluster.clone();
        move || c.stop()
    })
    .await
    .unwrap();
    let refused = till.push("invoices", &p.access, invoices("B", 5)).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.code(), "unavailable", "{}", refused.text);
    assert_eq!(ready(&world).await, 503, "not ready without its database");

    // Xero works again, and the database comes back: no restart.
    world.control(Method::DELETE, "/faults", json!({})).await;
    tokio::task::spawn_blocking({
        let c = cluster.clone();
        move || c.start_again()
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ready(&world).await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready 30 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The till sends again what was refused.
    let again = till.push("invoices", &p.access, invoices("B", 5)).await;
    assert_eq!(again.status, 202, "{}", again.text);
    let docs = till.settle(&p.access, 10, Duration::from_secs(60)).await;
    assert!(
        docs.iter().all(|d| d["state"] == "sent"),
        "every accepted document is delivered: {docs:?}"
    );
    let in_xero = world.xero_get("Invoices").await;
    let mut refs: Vec<String> = in_xero["Invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Reference"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(refs.len(), 10, "each once: {refs:?}");
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), 10, "no duplicate: {refs:?}");
}
