//! Delivery under Xero's bad days: errors, timeouts, a 429 storm, a revoked grant, a restart. After
//! each, every document is in Xero exactly once or failed with a reason; duplicates are counted in
//! the sandbox itself.

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

async fn setup(world: &World) -> (Device, Paired) {
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    let m = device
        .call(Method::PUT, "/v1/mappings", &p.access, Some(json!({"categories": {"Food": {"account_code": "200", "tax_type": "OUTPUT2"}}, "tenders": {"card": {"account_code": "615"}}})))
        .await;
    assert_eq!(m.status, 200, "{}", m.text);
    (device, p)
}

fn invoices(prefix: &str, n: usize) -> Value {
    json!({"invoices": (0..n).map(|i| json!({
        "client_ref": format!("{prefix}-{i:05}"),
        "contact": {"name": format!("Customer {}", i % 3)},
        "date": "2026-11-20",
        "lines": [{"description": "Lunch", "quantity": 1, "unit_amount": "12.00", "sales_category": "Food"}],
    })).collect::<Vec<_>>()})
}

/// Xero does the next PUT to `path` but its answer never arrives. Returns the sandbox's request
/// sequence number before the fault, for `wait_for_lost_call` and `sandbox_requests`.
async fn lose_next_answer(world: &World, path: &str) -> u64 {
    let lost =
        json!({"path_prefix": path, "method": "PUT", "drop": true, "phase": "after", "count": 1});
    assert_eq!(
        world.control(Method::POST, "/faults", lost).await.status,
        201
    );
    world.last_seq().await
}

/// Every sent document is one invoice in Xero, and there is no other: counted through the
/// sandbox's Accounting API, as any client of Xero would count.
async fn exactly_once(world: &World, docs: &[Value]) {
    let sent: Vec<&str> = docs
        .iter()
        .filter(|d| d["state"] == "sent")
        .map(|d| d["xero_id"].as_str().unwrap())
        .collect();
    let failed: Vec<&Value> = docs.iter().filter(|d| d["state"] == "failed").collect();
    assert!(
        failed
            .iter()
            .all(|d| d["message"].as_str().is_some_and(|m| !m.is_empty())),
        "a failure without a reason"
    );
    // The check's own calls must not meet the test's faults.
    world.control(Method::DELETE, "/faults", json!({})).await;
    let invoices = world.xero_get("Invoices").await;
    let in_xero: Vec<&str> = invoices["Invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["InvoiceID"].as_str().unwrap())
        .collect();
    assert_eq!(
        in_xero.len(),
        sent.len(),
        "duplicates (or strays) in Xero: {} invoices for {} sent documents",
        in_xero.len(),
        sent.len()
    );
    let unique: std::collections::HashSet<&str> = sent.iter().copied().collect();
    assert_eq!(unique.len(), sent.len());
    assert!(sent.iter().all(|id| in_xero.contains(id)));
    let contacts = world
        .xero_get("Contacts?where=Name.StartsWith(%22Customer%22)")
        .await;
    assert_eq!(
        contacts["Contacts"].as_array().unwrap().len(),
        3,
        "each contact made once"
    );
}

#[tokio::test]
async fn errors_and_timeouts_from_xero_lose_and_duplicate_nothing() {
    let mut settings = settings();
    settings.providers.xero.timeout_secs = Some(1);
    let world = World::start_with(settings).await;
    let (device, p) = setup(&world).await;
    // 10% of calls answer 500 without doing anything; 5% are done but answered too late (the proxy
    // gives up after 1 s: the outcome is unknown to it).
    for rule in [
        json!({"path_prefix": "/api.xro/", "status": 500, "rate": 0.1}),
        json!({"path_prefix": "/api.xro/", "latency_ms": 1500, "phase": "after", "rate": 0.05}),
    ] {
        assert_eq!(
            world.control(Method::POST, "/faults", rule).await.status,
            201
        );
    }
    let pushed = device
        .call(
            Method::POST,
            "/v1/invoices",
            &p.access,
            Some(invoices("f", 250)),
        )
        .await;
    assert_eq!(pushed.status, 202);
    let docs = device.settle(&p.access, 250, Duration::from_secs(90)).await;
    assert!(
        docs.iter().all(|d| d["state"] == "sent"),
        "{:?}",
        docs.iter()
            .filter(|d| d["state"] != "sent")
            .collect::<Vec<_>>()
    );
    exactly_once(&world, &docs).await;
}

#[tokio::test]
async fn a_429_storm_is_waited_out() {
    let world = World::start().await;
    let (device, p) = setup(&world).await;
    let storm = world
        .control(
            Method::POST,
            "/faults",
            json!({"path_prefix": "/api.xro/", "status": 429, "retry_after": 1, "count": 6}),
        )
        .await;
    assert_eq!(storm.status, 201);
    let since = world.last_seq().await;
    device
        .call(
            Method::POST,
            "/v1/invoices",
            &p.access,
            Some(invoices("s", 120)),
        )
        .await;
    let docs = device.settle(&p.access, 120, Duration::from_secs(60)).await;
    assert!(docs.iter().all(|d| d["state"] == "sent"));
    exactly_once(&world, &docs).await;
    let limited = world
        .sandbox_requests(since)
        .await
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert_eq!(
        limited, 6,
        "the storm happened and the engine waited it out"
    );

    // What an operator's Prometheus scraped meanwhile says the same.
    let metrics = reqwest::get(format!("{}/metrics", world.proxy_url))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = metrics.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(
        value(r#"ledgerlink_provider_rate_limited_total{provider="xero"}"#),
        6.0
    );
    assert_eq!(
        value(r#"ledgerlink_provider_calls_total{provider="xero",outcome="rate_limited"}"#),
        6.0
    );
    assert_eq!(
        value(r#"ledgerlink_delivery_retries_total{provider="xero",outcome="rate_limited"}"#),
        6.0,
        "each 429'd call made again"
    );
    assert_eq!(
        value(r#"ledgerlink_deliveries_total{provider="xero",kind="invoice",outcome="sent"}"#),
        120.0
    );
    assert_eq!(
        value(r#"ledgerlink_queue_documents{provider="xero",state="sent"}"#),
        120.0
    );
    assert_eq!(
        value(r#"ledgerlink_delivery_latency_seconds_count{provider="xero",kind="invoice"}"#),
        120.0
    );
    // Labels never name an organisation, a device or a document.
    for id in [
        p.connection["id"].as_str().unwrap_or("none"),
        docs[0]["id"].as_str().unwrap(),
    ] {
        assert!(!text.contains(id), "{id} is in the metrics");
    }
    // One log line per outcome, with the document, kind, provider, outcome and attempts.
    let logs = logs::text();
    let id = docs[0]["id"].as_str().unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("delivery outcome") && l.contains(id))
        .unwrap_or_else(|| panic!("no outcome line for {id}"));
    for field in [
        "kind=\"invoice\"",
        "provider=\"xero\"",
        "outcome=\"sent\"",
        "attempts=",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
}

#[tokio::test]
async fn a_grant_revoked_mid_run_keeps_documents_until_the_organisation_is_connected_again() {
    let world = World::start().await;
    let (device, p) = setup(&world).await;
    device
        .call(
            Method::POST,
            "/v1/invoices",
            &p.access,
            Some(invoices("a", 60)),
        )
        .await;
    device.settle(&p.access, 60, Duration::from_secs(30)).await;
    // Someone revokes Ledgerlink's access in Xero.
    let token_set = world.connections().await[0].token_set_id.unwrap();
    let refresh = world
        .proxy
        .state()
        .vault
        .refresh_token(token_set)
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/connect/revocation", world.sandbox_url))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("token", refresh.expose())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    world.advance(1800).await; // the access token runs out, so the next call needs a refresh
    device
        .call(
            Method::POST,
            "/v1/invoices",
            &p.access,
            Some(invoices("b", 40)),
        )
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let info = device
            .call(Method::GET, "/v1/connection", &p.access, None)
            .await;
        if info.json["status"] == "needs_reconnect" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection was not marked needs_reconnect: {}",
            info.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing lost, nothing failed: the documents wait in the queue (an attempt already under way
    // when the tokens died puts its bundle back).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let all = device
            .call(Method::GET, "/v1/documents?limit=1000", &p.access, None)
            .await;
        let b: Vec<&Value> = all.json["documents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["client_ref"].as_str().unwrap().starts_with("b-"))
            .collect();
        assert_eq!(b.len(), 40);
        assert!(
            b.iter()
                .all(|d| d["state"] == "queued" || d["state"] == "sending"),
            "{b:?}"
        );
        if b.iter().all(|d| d["state"] == "queued") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "documents stuck sending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Connecting again (a new consent from the same device) lets them go.
    let again = world
        .pair(&world.device_with_id("Till", device.id), &[NZ], None)
        .await;
    let docs = device
        .settle(&again.access, 100, Duration::from_secs(30))
        .await;
    assert!(docs.iter().all(|d| d["state"] == "sent"));
    exactly_once(&world, &docs).await;
}

#[tokio::test]
async fn a_proxy_killed_mid_delivery_resumes_without_duplicates() {
    // Each restarted proxy holds back a whole window after the killed one (it may have sent
    // calls it never recorded): a short window keeps that short.
    let mut s = settings();
    s.delivery.window_secs = 1;
    s.delivery.tenant_per_window = 1_000;
    let mut world = World::start_with(s).await;
    let (device, p) = setup(&world).await;
    // Slow Xero down so the kill lands while bundles are in flight.
    world
        .control(
            Method::POST,
            "/faults",
            json!({"path_prefix": "/api.xro/2.0/Invoices", "latency_ms": 300, "phase": "after"}),
        )
        .await;
    device
        .call(
            Method::POST,
            "/v1/invoices",
            &p.access,
            Some(invoices("k", 300)),
        )
        .await;
    for _ in 0..3 {
        // Past the restarted proxy's held-back window, so the kill lands while bundles go.
        tokio::time::sleep(Duration::from_millis(1_350)).await;
        world.restart_proxy().await;
    }
    world.control(Method::DELETE, "/faults", json!({})).await;
    let docs = device.settle(&p.access, 300, Duration::from_secs(60)).await;
    assert!(
        docs.iter().all(|d| d["state"] == "sent"),
        "{:?}",
        docs.iter().filter(|d| d["state"] != "sent").count()
    );
    exactly_once(&world, &docs).await;
}

#[tokio::test]
async fn an_unknown_outcome_past_the_replay_window_is_looked_up_not_resent() {
    let world = World::start().await;
    let (device, p) = setup(&world).await;
    // Xero creates the invoices but the answer never arrives.
    let since = lose_next_answer(&world, "/api.xro/2.0/Invoices").await;
    device
        .call(
            Method::POST,
            "/v1/invoices",
            &p.access,
            Some(invoices("u", 30)),
        )
        .await;
    world
        .wait_for_lost_call(since, "/api.xro/2.0/Invoices")
        .await;
    // Past Xero's replay window before the proxy tries again: the same Idempotency-Key would now
    // create everything a second time.
    world.advance(400).await;
    let docs = device.settle(&p.access, 30, Duration::from_secs(30)).await;
    assert!(
        docs.iter()
            .all(|d| d["state"] == "sent" && d["xero_number"].is_string()),
        "{docs:?}"
    );
    exactly_once(&world, &docs).await;
    let requests = world.sandbox_requests(since).await;
    assert!(
        requests.iter().any(|r| r["method"] == "GET"
            && r["path"] == "/api.xro/2.0/Invoices"
            && r["query"].as_str().unwrap_or_default().contains("EndsWith")),
        "the documents were looked up by their markers"
    );
}

#[tokio::test]
async fn a_payment_whose_answer_was_lost_is_found_not_paid_twice() {
    let world = World::start().await;
    let (device, p) = setup(&world).await;
    device
        .call(
            Method::POST,
            "/v1/invoices",
            &p.access,
            Some(invoices("pi", 3)),
        )
        .await;
    device.settle(&p.access, 3, Duration::from_secs(20)).await;
    let since = lose_next_answer(&world, "/api.xro/2.0/Payments").await;
    let payments: Vec<Value> = (0..3)
        .map(|i| json!({"client_ref": format!("pay-{i}"), "invoice": {"client_ref": format!("pi-{i:05}")}, "amount": "5.00", "date": "2026-11-20", "tender": "card"}))
        .collect();
    device.push("payments", &p.access, payments).await;
    world
        .wait_for_lost_call(since, "/api.xro/2.0/Payments")
        .await;
    world.advance(400).await;
    let docs = device.settle(&p.access, 6, Duration::from_secs(30)).await;
    assert!(docs.iter().all(|d| d["state"] == "sent"), "{docs:?}");
    let shared = world.sandbox.shared().clone();
    let count = shared.world().tenant(NZ).unwrap().payments.len();
    assert_eq!(count, 3, "each payment once");
}

#[tokio::test]
async fn a_bundle_with_an_unknown_outcome_goes_again_alone_under_its_key() {
    let world = World::start().await;
    let (device, p) = setup(&world).await;
    let since = lose_next_answer(&world, "/api.xro/2.0/Invoices").await;
    device
        .call(
            Method::POST,
            "/v1/invoices",
            &p.access,
            Some(invoices("first", 30)),
        )
        .await;
    world
        .wait_for_lost_call(since, "/api.xro/2.0/Invoices")
        .await;
    // More documents arrive before the retry: they must not join the unknown bundle under a new key.
    device
        .call(
            Method::POST,
            "/v1/invoices",
            &p.access,
            Some(invoices("second", 20)),
        )
        .await;
    let docs = device.settle(&p.access, 50, Duration::from_secs(30)).await;
    assert!(docs.iter().all(|d| d["state"] == "sent"));
    exactly_once(&world, &docs).await;
    let puts: Vec<Value> = world
        .sandbox_requests(since)
        .await
        .into_iter()
        .filter(|r| r["method"] == "PUT" && r["path"] == "/api.xro/2.0/Invoices")
        .collect();
    assert_eq!(
        puts[0]["headers"]["idempotency-key"], puts[1]["headers"]["idempotency-key"],
        "the same bundle, the same key"
    );
    assert_eq!(puts[0]["body"], puts[1]["body"], "byte for byte");
}

#[tokio::test]
async fn a_bill_with_a_lost_answer_is_found_by_its_number_past_the_window() {
    let world = World::start().await;
    let (device, p) = setup(&world).await;
    let since = lose_next_answer(&world, "/api.xro/2.0/Invoices").await;
    let bills: Vec<Value> = (0..5)
        .map(|i| json!({"client_ref": format!("bill-{i}"), "type": "bill", "contact": {"name": format!("Customer {i}")}, "date": "2026-11-20",
            "reference": "SUP-778", "lines": [{"description": "Flour", "quantity": 1, "unit_amount": "40.00", "account_code": "310", "tax_type": "INPUT2"}]}))
        .collect();
    device.push("invoices", &p.access, bills).await;
    world
        .wait_for_lost_call(since, "/api.xro/2.0/Invoices")
        .await;
    world.advance(400).await;
    let docs = device.settle(&p.access, 5, Duration::from_secs(30)).await;
    assert!(docs.iter().all(|d| d["state"] == "sent"), "{docs:?}");
    let shared = world.sandbox.shared().clone();
    let bills_in_xero: Vec<String> = shared
        .world()
        .tenant(NZ)
        .unwrap()
        .invoices
        .iter()
        .filter(|i| i.kind == "ACCPAY")
        .map(|i| i.number.clone().unwrap_or_default())
        .collect();
    assert_eq!(bills_in_xero.len(), 5, "each bill once: {bills_in_xero:?}");
    assert!(
        bills_in_xero.iter().all(|n| n.starts_with("SUP-778 LL-")),
        "the supplier's reference, then the marker"
    );
}

#[tokio::test]
async fn a_shift_whose_payments_answer_was_lost_is_paid_once() {
    let world = World::start().await;
    let (device, p) = setup(&world).await;
    let m = device
        .call(
            Method::PUT,
            "/v1/mappings",
            &p.access,
            Some(
                json!({"categories": {"Food": {"account_code": "200", "tax_type": "OUTPUT2"}},
            "tenders": {"card": {"account_code": "615"}, "cash": {"account_code": "092"}}}),
            ),
        )
        .await;
    assert_eq!(m.status, 200);
    let since = lose_next_answer(&world, "/api.xro/2.0/Payments").await;
    let shift = json!({"shifts": [{"client_ref": "lost-pay", "register": "R1", "opened_at": "2026-11-20T08:00:00Z", "closed_at": "2026-11-20T17:00:00Z",
        "sales": [{"category": "Food", "amount": "100.00"}], "tenders": [{"tender": "cash", "amount": "40.00"}, {"tender": "card", "amount": "60.00"}], "counted_cash": "40.00"}]});
    assert_eq!(
        device
            .call(Method::POST, "/v1/shifts", &p.access, Some(shift))
            .await
            .status,
        202
    );
    world
        .wait_for_lost_call(since, "/api.xro/2.0/Payments")
        .await;
    world.advance(400).await;
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    assert_eq!(docs[0]["state"], "sent", "{docs:?}");
    let shared = world.sandbox.shared().clone();
    let sandbox = shared.world();
    let tenant = sandbox.tenant(NZ).unwrap();
    assert_eq!(tenant.invoices.len(), 1);
    assert_eq!(tenant.payments.len(), 2, "each tender paid once");
    assert_eq!(tenant.invoices[0].status, "PAID");
}

/// `count` answers of `status` to the next calls to `path` (before Xero does anything).
async fn refuse_next(world: &World, path: &str, status: u16, count: u64) {
    let rule = json!({"path_prefix": path, "status": status, "count": count});
    assert_eq!(
        world.control(Method::POST, "/faults", rule).await.status,
        201
    );
}

async fn connection_status(device: &Device, access: &str) -> String {
    let info = device
        .call(Method::GET, "/v1/connection", access, None)
        .await;
    info.json["status"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn two_refusals_in_a_row_are_waited_out_not_taken_for_a_lost_organisation() {
    let world = World::start().await;
    let (device, p) = setup(&world).await;
    // A 401 (the tokens are refreshed), then a 401 again right after the refresh worked.
    refuse_next(&world, "/api.xro/2.0/Invoices", 401, 2).await;
    device
        .push("invoices", &p.access, invoices("a", 3)["invoices"].clone())
        .await;
    let docs = device.settle(&p.access, 3, Duration::from_secs(30)).await;
    assert!(docs.iter().all(|d| d["state"] == "sent"), "{docs:?}");
    assert_eq!(connection_status(&device, &p.access).await, "connected");
    // A 403 for an organisation Xero still lists: asked, and tried again.
    let since = world.last_seq().await;
    refuse_next(&world, "/api.xro/2.0/Invoices", 403, 1).await;
    device
        .push("invoices", &p.access, invoices("b", 3)["invoices"].clone())
        .await;
    let docs = device.settle(&p.access, 6, Duration::from_secs(30)).await;
    assert!(docs.iter().all(|d| d["state"] == "sent"), "{docs:?}");
    assert_eq!(connection_status(&device, &p.access).await, "connected");
    let asked = world.sandbox_requests(since).await;
    assert!(
        asked.iter().any(|r| r["path"] == "/connections"),
        "a 403 makes the proxy ask Xero whether the organisation is still connected"
    );
    exactly_once(&world, &docs).await;
}

#[tokio::test]
async fn a_connection_parked_by_refused_calls_recovers_by_itself_and_its_devices_hear() {
    let mut s = settings();
    s.refresh.reprobe_secs = 1;
    let world = World::start_with(s).await;
    let (device, p) = setup(&world).await;
    // Xero refuses every call for a while, however fresh the tokens: after its retries the proxy
    // parks the organisation...
    refuse_next(&world, "/api.xro/2.0/", 401, 5).await;
    device
        .push("invoices", &p.access, invoices("a", 2)["invoices"].clone())
        .await;
    // ...then the re-probe finds the tokens work again: connected, its devices told, and the
    // documents go.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let events = device
            .call(Method::GET, "/v1/events?after=0", &p.access, None)
            .await;
        let told: Vec<String> = events.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "connection")
            .map(|e| e["status"].as_str().unwrap().to_string())
            .collect();
        let docs = device
            .call(Method::GET, "/v1/documents", &p.access, None)
            .await;
        let sent = docs.json["documents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "sent");
        if told == ["needs_reconnect", "connected"] && sent {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "told {told:?}; documents: {}",
            docs.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(connection_status(&device, &p.access).await, "connected");
}

#[tokio::test]
async fn an_organisation_removed_in_xero_is_disconnected_when_a_call_is_refused() {
    let world = World::start().await;
    let (device, p) = setup(&world).await;
    // Someone removes the app from the organisation in Xero.
    world.remove_at_xero(NZ).await;
    device
        .push("invoices", &p.access, invoices("a", 1)["invoices"].clone())
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = device
            .call(Method::GET, "/v1/events?after=0", &p.access, None)
            .await;
        let told = events.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "connection" && e["status"] == "disconnected");
        if told {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", events.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let docs = device
        .call(Method::GET, "/v1/documents", &p.access, None)
        .await;
    assert_eq!(
        docs.json["documents"][0]["state"], "queued",
        "kept for a reconnect"
    );
}

#[tokio::test]
async fn a_correction_whose_answer_was_lost_past_the_replay_window_reaches_xero_once() {
    let world = World::start().await;
    let (device, p) = setup(&world).await;
    let mut batch = invoices("c", 3);
    batch["invoices"][1]["lines"][0]["account_code"] = json!("999");
    batch["invoices"][1]["lines"][0]["tax_type"] = json!("OUTPUT2");
    batch["invoices"][1]["lines"][0]
        .as_object_mut()
        .unwrap()
        .remove("sales_category");
    let pushed = device
        .call(Method::POST, "/v1/invoices", &p.access, Some(batch.clone()))
        .await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let docs = device.settle(&p.access, 3, Duration::from_secs(30)).await;
    assert_eq!(
        docs.iter().filter(|d| d["state"] == "failed").count(),
        1,
        "{docs:?}"
    );

    // The correction is created in Xero, but the answer never arrives, and the proxy only tries
    // again after Xero stopped replaying the key.
    let since = lose_next_answer(&world, "/api.xro/2.0/Invoices").await;
    let mut fixed = batch["invoices"][1].clone();
    fixed["lines"][0]["account_code"] = json!("200");
    let corrected = device.push("invoices", &p.access, json!([fixed])).await;
    assert_eq!(
        corrected.json["items"][0]["corrected"], true,
        "{}",
        corrected.text
    );
    world
        .wait_for_lost_call(since, "/api.xro/2.0/Invoices")
        .await;
    world.advance(400).await;
    let docs = device.settle(&p.access, 3, Duration::from_secs(30)).await;
    assert!(docs.iter().all(|d| d["state"] == "sent"), "{docs:?}");
    exactly_once(&world, &docs).await;
}
