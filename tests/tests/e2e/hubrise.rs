//! HubRise, the second provider, across sandbox, proxy and a till: pairing through the same pages
//! with HubRise's location chooser, one connection (and one token) per location shared by its
//! tills, the token kept by the proxy, refusals of what HubRise connections do not take, a revoked
//! token found out, and disconnecting that revokes it at HubRise.

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Pairs `device` with `location` through HubRise's pages: the device's tokens.
async fn pair_hubrise(world: &World, device: &Device, location: &str) -> Paired {
    world.pair_hubrise(device, location).await
}

fn invoice() -> Value {
    json!([{"client_ref": "INV-1", "contact": {"name": "Walk-in"}, "date": "2026-11-20",
        "lines": [{"description": "Coffee", "quantity": 1, "unit_amount": "4.50", "account_code": "200", "tax_type": "OUTPUT2"}]}])
}

#[tokio::test]
async fn a_till_pairs_with_a_hubrise_location_and_its_tills_share_one_connection() {
    let world = World::start().await;
    let till = world.device("Bistro till 1");
    let started = till.start_for("hubrise").await;
    let page = world
        .browser()
        .hubrise_consent(
            started.json["verification_uri_complete"].as_str().unwrap(),
            PARIS,
            true,
        )
        .await;
    assert!(
        page.text
            .contains("now sends to <strong>Demo Bistro – Paris</strong> in HubRise"),
        "{}",
        page.text
    );
    world.advance(5).await;
    let tokens = till
        .poll(started.json["device_code"].as_str().unwrap())
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let p = Paired::from(&tokens.json);
    assert_eq!(p.connection["provider"], "hubrise", "{}", p.connection);
    assert_eq!(p.connection["tenant_id"], PARIS);
    assert_eq!(p.connection["organisation_name"], "Demo Bistro – Paris");
    assert_eq!(p.connection["timezone"], "Europe/Paris");

    let shown = till
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.json["provider"], "hubrise");
    assert_eq!(shown.json["status"], "connected");

    // Another till of the same location: the same connection (one per client and location).
    let second = world.device("Bistro till 2");
    let q = pair_hubrise(&world, &second, PARIS).await;
    assert_eq!(q.connection["connection_id"], p.connection["connection_id"]);
    // Lyon is a connection of its own.
    let lyon = world.device("Lyon till");
    let l = pair_hubrise(&world, &lyon, LYON).await;
    assert_ne!(l.connection["connection_id"], p.connection["connection_id"]);

    // What a HubRise connection does not take is refused whole, saying why.
    let pushed = till.push("invoices", &p.access, invoice()).await;
    assert_eq!(pushed.status, 422, "{}", pushed.text);
    assert_eq!(
        pushed.json["problems"][0]["code"], "unsupported_kind",
        "{}",
        pushed.text
    );
    assert!(pushed.text.contains("HubRise"), "{}", pushed.text);
    let mappings = till
        .call(Method::GET, "/v1/mappings", &p.access, None)
        .await;
    assert_eq!(
        (mappings.status.as_u16(), mappings.code()),
        (404, "not_found"),
        "{}",
        mappings.text
    );

    // The proxy holds the location's token; no device answer ever carried it.
    let grants: Vec<Value> = world
        .sandbox_requests(0)
        .await
        .into_iter()
        .filter(|r| r["provider"] == "hubrise" && r["path"] == "/oauth2/v1/token")
        .collect();
    assert_eq!(grants.len(), 3, "one code exchanged per pairing");
    for body in world.seen.lock().unwrap().iter() {
        assert!(
            !body.contains(HUBRISE_CLIENT_SECRET),
            "the client secret reached a client"
        );
    }
}

#[tokio::test]
async fn a_token_revoked_in_hubrise_turns_the_connection_to_needs_reconnect() {
    let world = World::start().await;
    let till = world.device("Bistro till");
    let p = pair_hubrise(&world, &till, PARIS).await;
    let revoked = world
        .control(
            Method::POST,
            "/hubrise/tokens/revoke",
            json!({"location_id": PARIS}),
        )
        .await;
    assert_eq!(revoked.json["revoked"], 1, "{}", revoked.text);
    // The status check asks HubRise at most once a minute: one confirming GET /location.
    world.advance(61).await;
    let since = world.last_seq().await;
    let shown = till
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(shown.json["status"], "needs_reconnect", "{}", shown.text);
    let asked: Vec<String> = world
        .sandbox_requests(since)
        .await
        .iter()
        .map(|r| format!("{} {} {}", r["method"], r["path"], r["status"]))
        .collect();
    assert_eq!(asked, ["\"GET\" \"/v1/location\" 401"]);
}

#[tokio::test]
async fn unpairing_a_till_keeps_the_token_and_disconnecting_revokes_it_at_hubrise() {
    let world = World::start().await;
    let a = world.device("Till A");
    let b = world.device("Till B");
    let pa = pair_hubrise(&world, &a, PARIS).await;
    let pb = pair_hubrise(&world, &b, PARIS).await;
    let since = world.last_seq().await;
    let unpaired = b.call(Method::DELETE, "/v1/device", &pb.access, None).await;
    assert!(unpaired.status.is_success(), "{}", unpaired.text);
    let calls = world.sandbox_requests(since).await;
    assert!(
        calls.iter().all(|r| r["path"] != "/oauth2/v1/revoke"),
        "unpairing one till revokes nothing: {calls:?}"
    );
    world.advance(61).await;
    let still = a
        .call(Method::GET, "/v1/connection", &pa.access, None)
        .await;
    assert_eq!(still.json["status"], "connected", "{}", still.text);

    let since = world.last_seq().await;
    let done = a
        .call(
            Method::DELETE,
            "/v1/connection",
            &pa.access,
            Some(json!({"confirm": true})),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.json["status"], "disconnected");
    let revokes: Vec<u64> = world
        .sandbox_requests(since)
        .await
        .iter()
        .filter(|r| r["path"] == "/oauth2/v1/revoke")
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(revokes, [200], "the location's token revoked at HubRise");
}

#[tokio::test]
async fn a_proxy_not_set_up_for_hubrise_says_so_when_a_till_asks() {
    let mut world = World::start().await;
    world.proxy_settings.providers.hubrise.client_id.clear();
    world.restart_proxy().await;
    let till = world.device("Bistro till");
    let refused = till.start_for("hubrise").await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.text.contains("[providers.hubrise]"),
        "says what to set: {}",
        refused.text
    );
    // Xero still pairs.
    let xero = world.device("Counter");
    world.pair(&xero, &[NZ], None).await;
}

#[tokio::test]
async fn hubrises_token_and_client_secret_never_reach_the_logs_the_database_file_or_a_response() {
    let world = World::start().await;
    let till = world.device("Bistro till");
    let p = pair_hubrise(&world, &till, PARIS).await;
    // Calls that use the token: the status check, a disconnect that revokes it.
    world.advance(61).await;
    let shown = till
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(shown.json["status"], "connected", "{}", shown.text);
    let tokens: Vec<String> = world
        .sandbox
        .shared()
        .hubrise()
        .tokens
        .keys()
        .cloned()
        .collect();
    assert_eq!(tokens.len(), 1);
    let mut needles = tokens.clone();
    needles.push(HUBRISE_CLIENT_SECRET.to_string());

    let db = world.stored_bytes().await;
    let logs = ledgerlink_e2e::logs::text();
    assert!(logs.contains("device paired"), "the log capture works");
    let responses = world.seen.lock().unwrap().join("\n");
    for needle in &needles {
        assert!(
            !db.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "a HubRise secret is in the database"
        );
        assert!(
            !logs.contains(needle.as_str()),
            "a HubRise secret is in the logs"
        );
        assert!(
            !responses.contains(needle.as_str()),
            "a HubRise secret reached a device or browser"
        );
    }
}

fn order(i: usize) -> Value {
    json!({"client_ref": format!("ORD-{i:04}"), "reference": format!("Ticket {i}"),
        "items": [{"name": "Croque monsieur", "price": "8.90", "quantity": "1", "tax_rate": "10",
                   "options": [{"name": "Extra cheese", "price": "1.00"}]}],
        "payments": [{"tender": "Card", "amount": "9.90"}]})
}

#[tokio::test]
async fn orders_reach_hubrise_exactly_once_through_failures_and_lost_answers() {
    let total = std::env::var("HUBRISE_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    // HubRise's windows scaled (a 2-second "minute", a 2-minute "hour") at both ends, so the
    // proxy paces to what the sandbox counts: the lookups after lost answers are heavy reads, ten
    // a "minute".
    let mut settings = settings();
    settings.providers.hubrise.limits.minute_secs = 2;
    let world = World::start_with(settings).await;
    let scaled = world
        .control(Method::PUT, "/hubrise/limits", json!({"minute_seconds": 2}))
        .await;
    assert_eq!(scaled.status, 200, "{}", scaled.text);
    let till = world.device("Bistro till");
    let p = pair_hubrise(&world, &till, PARIS).await;
    // A Xero till beside it, on the same proxy.
    let counter = world.device("Counter");
    let x = world.pair(&counter, &[NZ], None).await;

    for rule in [
        json!({"path_prefix": "/v1/location/orders", "method": "POST", "status": 500, "rate": 0.1, "phase": "before"}),
        json!({"path_prefix": "/v1/location/orders", "method": "POST", "drop": true, "rate": 0.05, "phase": "after"}),
    ] {
        let added = world.control(Method::POST, "/faults", rule).await;
        assert_eq!(added.status, 201, "{}", added.text);
    }
    for chunk in (0..total).collect::<Vec<_>>().chunks(100) {
        let batch: Vec<Value> = chunk.iter().map(|i| order(*i)).collect();
        let pushed = till.push("orders", &p.access, batch).await;
        assert_eq!(pushed.status, 202, "{}", pushed.text);
    }
    // An order to the Xero till's connection is refused whole.
    let refused = counter
        .push("orders", &x.access, json!([order(9_999)]))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.json["problems"][0]["code"], "unsupported_kind");
    // Meanwhile the Xero till sells as usual, through the same proxy.
    let sales: Vec<Value> = (0..20)
        .map(|i| json!({"client_ref": format!("INV-{i}"), "contact": {"name": "Walk-in"}, "date": "2026-11-20",
            "lines": [{"description": "Coffee", "quantity": 1, "unit_amount": "4.50", "account_code": "200", "tax_type": "OUTPUT2"}]}))
        .collect();
    let sold = counter.push("invoices", &x.access, sales).await;
    assert_eq!(sold.status, 202, "{}", sold.text);

    let started = std::time::Instant::now();
    let settled = tokio::spawn({
        let till = world.device_with_id("Bistro till", till.id);
        let access = p.access.clone();
        async move {
            till.settle(&access, total, std::time::Duration::from_secs(240))
                .await
        }
    })
    .await;
    if std::env::var("HUBRISE_LOG").is_ok() {
        for line in ledgerlink_e2e::logs::text().lines() {
            if line.contains("paused") || line.contains("rate limit") || line.contains("WARN") {
                println!("{line}");
            }
        }
    }
    let docs = settled.expect("every order settles");
    println!("settled in {:?}", started.elapsed());
    world.control(Method::DELETE, "/faults", json!({})).await;
    let failed: Vec<&Value> = docs.iter().filter(|d| d["state"] != "sent").collect();
    assert!(failed.is_empty(), "every order sent: {failed:?}");
    for d in &docs {
        assert!(
            d["provider_id"].as_str().is_some_and(|id| !id.is_empty()),
            "HubRise's id: {d}"
        );
        assert!(d["xero_id"].is_null(), "not a Xero id: {d}");
    }
    let held = world
        .control(
            Method::GET,
            &format!("/hubrise/orders?location_id={PARIS}"),
            json!({}),
        )
        .await;
    let orders = held.json["orders"].as_array().unwrap();
    let mut refs: Vec<&str> = orders
        .iter()
        .map(|o| o["private_ref"].as_str().unwrap())
        .collect();
    refs.sort();
    refs.dedup();
    assert_eq!(orders.len(), total, "each order in HubRise once");
    assert_eq!(refs.len(), total);
    assert!(orders
        .iter()
        .all(|o| o["total"] == "9.90 EUR" && o["status"] == "completed"));
    // The lost answers were found by private_ref, not sent again.
    let lookups = world
        .sandbox_requests(0)
        .await
        .iter()
        .filter(|r| {
            r["path"] == "/v1/location/orders"
                && r["method"] == "GET"
                && r["query"]
                    .as_str()
                    .is_some_and(|q| q.contains("private_ref"))
        })
        .count();
    assert!(lookups > 0, "no answer was lost: the test proved nothing");
    let limited = world
        .sandbox_requests(0)
        .await
        .iter()
        .filter(|r| r["provider"] == "hubrise" && r["status"] == 429)
        .count();
    assert_eq!(
        limited, 0,
        "paced to HubRise's limits, heavy reads included"
    );
    println!("{total} orders, {lookups} looked up after a lost answer or a failure");
    // The Xero till's sales are in Xero, each once, beside the orders.
    let invoices = counter
        .settle(&x.access, 20, std::time::Duration::from_secs(60))
        .await;
    let sent = invoices
        .iter()
        .filter(|d| d["kind"] == "invoice" && d["state"] == "sent")
        .count();
    assert_eq!(sent, 20, "{invoices:?}");
    let in_xero = world.xero_get("Invoices").await;
    assert_eq!(in_xero["Invoices"].as_array().unwrap().len(), 20);
}

// Multi-threaded: the test reads the CLI's output with blocking calls while the in-process proxy
// serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_till_pairs_with_hubrise_and_pushes_the_example_order() {
    use std::io::BufRead;
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let world = World::start_with(settings).await;
    let till = crate::cli::Cli::new();
    let mut command = till.command();
    command
        .args(["pair", "--proxy", &world.proxy_url, "--provider", "HubRise"])
        .env("LEDGERLINK_NO_BROWSER", "1")
        .stdout(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let code: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(code["event"], "code", "{code}");
    let page = world
        .browser()
        .hubrise_consent(
            code["verification_uri_complete"].as_str().unwrap(),
            LYON,
            true,
        )
        .await;
    assert!(page.text.contains("Connected"), "{}", page.text);
    let paired = tokio::task::spawn_blocking(move || {
        let line = lines.next().unwrap().unwrap();
        assert!(child.wait().unwrap().success());
        line
    })
    .await
    .unwrap();
    let paired: Value = serde_json::from_str(&paired).unwrap();
    assert_eq!(paired["tenant_name"], "Demo Bistro – Lyon", "{paired}");

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/order.json");
    let (ok, lines) = till.run(&["push", "order", example]).await;
    assert!(ok, "{lines:?}");
    assert_eq!(lines[0]["total"], "24.70", "{lines:?}");
    let done = till.ok(&["sync", "--timeout", "60"]).await;
    assert_eq!(done["outbox"]["sent"], 1, "{done}");
    let outbox = till.outbox(&[]).await;
    let sent = &outbox["ORD-2026-0412"];
    assert_eq!(sent["state"], "sent", "{sent}");
    let id = sent["provider_id"].as_str().expect("HubRise's order id");
    let held = world
        .control(
            Method::GET,
            &format!("/hubrise/orders?location_id={LYON}"),
            json!({}),
        )
        .await;
    let orders = held.json["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["id"], id);
    assert_eq!(orders[0]["total"], "24.70 EUR");
    assert_eq!(orders[0]["ref"], "Table 7");

    // A provider the proxy does not connect is named back.
    let (code, lines, _) = till
        .exit(&["pair", "--proxy", &world.proxy_url, "--provider", "sage"])
        .await;
    assert_ne!(code, 0);
    let said = serde_json::to_string(&lines).unwrap();
    assert!(said.contains("use xero or hubrise"), "{said}");
}

/// Pushes one order and waits until HubRise has it: its HubRise id.
async fn one_order_sent(till: &Device, access: &str, i: usize) -> String {
    let pushed = till.push("orders", access, json!([order(i)])).await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let docs = till
        .settle(access, 1, std::time::Duration::from_secs(30))
        .await;
    let doc = docs
        .iter()
        .find(|d| d["client_ref"] == format!("ORD-{i:04}"))
        .expect("the order is listed");
    assert_eq!(doc["state"], "sent", "{doc}");
    doc["provider_id"].as_str().unwrap().to_string()
}

/// The device's events after `after`, waiting (up to 10 s) for at least one.
async fn events_after(till: &Device, access: &str, after: i64) -> Vec<Value> {
    let page = till
        .call(
            Method::GET,
            &format!("/v1/events?after={after}&wait=10"),
            access,
            None,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    page.json["events"].as_array().cloned().unwrap_or_default()
}

fn signed(body: &str, secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn an_order_cancelled_in_hubrise_reaches_the_till_as_an_event_and_stays_sent() {
    let world = World::start().await;
    let till = world.device("Bistro till");
    let p = pair_hubrise(&world, &till, PARIS).await;
    // Connecting registered the proxy's callback for the location's order updates.
    let view = world
        .control(Method::GET, "/hubrise/callbacks", json!({}))
        .await;
    let callbacks = view.json["callbacks"].as_array().unwrap();
    assert_eq!(callbacks.len(), 1, "{}", view.text);
    assert_eq!(
        callbacks[0]["url"],
        format!("{}/webhooks/hubrise", world.proxy_url),
        "{}",
        view.text
    );
    assert_eq!(callbacks[0]["location_id"], PARIS);

    let since = world.last_seq().await;
    let order_id = one_order_sent(&till, &p.access, 1).await;
    // The location's currency was read at connect: sending is one call, nothing else.
    let calls: Vec<String> = world
        .sandbox_requests(since)
        .await
        .iter()
        .map(|r| format!("{} {}", r["method"], r["path"]))
        .collect();
    assert_eq!(calls, ["\"POST\" \"/v1/location/orders\""]);
    let before = till
        .call(Method::GET, "/v1/events?after=0", &p.access, None)
        .await;
    let cursor = before.json["next"].as_i64().unwrap();

    // Cancelled by the restaurant in HubRise: the callback comes to the proxy, the till hears.
    let cancelled = world
        .control(
            Method::POST,
            &format!("/hubrise/orders/{order_id}/status"),
            json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    let events = events_after(&till, &p.access, cursor).await;
    let provider: Vec<&Value> = events.iter().filter(|e| e["type"] == "provider").collect();
    assert_eq!(provider.len(), 1, "{events:?}");
    assert_eq!(provider[0]["provider_status"], "cancelled");
    assert_eq!(provider[0]["document"]["provider_id"], order_id.as_str());
    assert_eq!(provider[0]["document"]["provider_status"], "cancelled");
    assert_eq!(
        provider[0]["document"]["state"], "sent",
        "the document stays sent"
    );
    let listed = till
        .call(
            Method::GET,
            "/v1/documents?client_ref=ORD-0001",
            &p.access,
            None,
        )
        .await;
    let doc = &listed.json["documents"][0];
    assert_eq!(doc["provider_status"], "cancelled", "{}", listed.text);
    assert_eq!(doc["state"], "sent");
    // The proxy acknowledged it at once: HubRise holds nothing.
    let view = world
        .control(Method::GET, "/hubrise/callbacks", json!({}))
        .await;
    assert_eq!(view.json["events"], json!([]), "{}", view.text);
    assert_eq!(view.json["attempts"][0]["status"], 200, "{}", view.text);

    // HubRise sending the same event again tells the till nothing new.
    let cursor = provider[0]["seq"].as_i64().unwrap();
    let again = json!({"id": "e-again", "resource_type": "order", "event_type": "update",
        "order_id": order_id, "location_id": PARIS, "account_id": "b7m3k",
        "previous_state": {"status": "completed"}, "new_state": {"id": order_id, "status": "cancelled"}})
    .to_string();
    let answer = reqwest::Client::new()
        .post(format!("{}/webhooks/hubrise", world.proxy_url))
        .header(
            "x-hubrise-hmac-sha256",
            signed(&again, HUBRISE_CLIENT_SECRET),
        )
        .body(again)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let later = till
        .call(
            Method::GET,
            &format!("/v1/events?after={cursor}"),
            &p.access,
            None,
        )
        .await;
    assert_eq!(later.json["events"], json!([]), "{}", later.text);
}

#[tokio::test]
async fn a_callback_with_a_bad_signature_is_refused_and_changes_nothing() {
    let world = World::start().await;
    let till = world.device("Bistro till");
    let p = pair_hubrise(&world, &till, PARIS).await;
    let order_id = one_order_sent(&till, &p.access, 2).await;
    let forged = json!({"id": "e-forged", "resource_type": "order", "event_type": "update",
        "order_id": order_id, "location_id": PARIS, "account_id": "b7m3k",
        "previous_state": {"status": "completed"}, "new_state": {"id": order_id, "status": "cancelled"}})
    .to_string();
    let http = reqwest::Client::new();
    let url = format!("{}/webhooks/hubrise", world.proxy_url);
    for signature in [
        Some(signed(&forged, "not-the-client-secret")),
        Some(signed("{}", HUBRISE_CLIENT_SECRET)),
        Some("nonsense".to_string()),
        None,
    ] {
        let mut request = http.post(&url).body(forged.clone());
        if let Some(s) = signature {
            request = request.header("x-hubrise-hmac-sha256", s);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401);
        assert_eq!(answer.text().await.unwrap(), "", "a refusal says nothing");
    }
    let listed = till
        .call(
            Method::GET,
            "/v1/documents?client_ref=ORD-0002",
            &p.access,
            None,
        )
        .await;
    let doc = &listed.json["documents"][0];
    assert_eq!(doc["state"], "sent", "{}", listed.text);
    assert!(doc.get("provider_status").is_none(), "{}", listed.text);
    let events = till
        .call(Method::GET, "/v1/events?after=0", &p.access, None)
        .await;
    assert!(
        events.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "provider"),
        "{}",
        events.text
    );
}

#[tokio::test]
async fn a_refusal_hubrise_takes_back_recovers_by_itself() {
    let mut settings = settings();
    settings.refresh.reprobe_secs = 1;
    let world = World::start_with(settings).await;
    let till = world.device("Bistro till");
    let p = pair_hubrise(&world, &till, PARIS).await;
    // HubRise refuses the token once, then takes it again (a passing fault on its side).
    let fault = world
        .control(
            Method::POST,
            "/faults",
            json!({"provider": "hubrise", "path_prefix": "/v1/location", "method": "GET", "status": 401, "count": 1}),
        )
        .await;
    assert_eq!(fault.status, 201, "{}", fault.text);
    world.advance(61).await;
    let shown = till
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(shown.json["status"], "needs_reconnect", "{}", shown.text);
    // The re-probe asks HubRise again and finds the token good: connected, and the till is told.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = till
            .call(Method::GET, "/v1/connection", &p.access, None)
            .await;
        if now.json["status"] == "connected" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} after 20 s",
            now.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let events = till
        .call(Method::GET, "/v1/events?after=0", &p.access, None)
        .await;
    let statuses: Vec<&Value> = events.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "connection")
        .map(|e| &e["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!("needs_reconnect"), &json!("connected")],
        "{}",
        events.text
    );
}
