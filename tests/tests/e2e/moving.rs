//! Re-pairing a paired till: it moves to the other organisation only when it asked to (with its
//! own credentials) and the person agreed on the pairing page; what it already sent stays with
//! the first organisation and is still delivered there. And a reloaded organisation chooser never
//! dead-ends.

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};

fn sale(client_ref: &str) -> Value {
    json!({"client_ref": client_ref, "contact": {"name": "Walk-in"}, "date": "2026-11-20",
        "lines": [{"description": "Tea", "quantity": 1, "unit_amount": "4.00", "account_code": "200", "tax_type": "OUTPUT2"}]})
}

/// The tenants of the sandbox's successful invoice creations since `since`.
async fn invoices_created_in(world: &World, since: u64) -> Vec<String> {
    world
        .sandbox_requests(since)
        .await
        .iter()
        .filter(|r| {
            r["method"] == "PUT" && r["path"] == "/api.xro/2.0/Invoices" && r["status"] == 200
        })
        .map(|r| r["tenant_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_paired_till_moves_to_the_other_organisation_and_its_queued_documents_still_reach_the_first(
) {
    let world = World::start().await;
    let till = world.device("Front till");
    let first = world.pair(&till, &[NZ], None).await;
    // Xero is struggling: what the till pushes now stays queued at the proxy.
    let busy = world
        .control(
            Method::POST,
            "/faults",
            json!({"path_prefix": "/api.xro/2.0/Invoices", "method": "PUT", "status": 503, "retry_after": 1}),
        )
        .await;
    assert_eq!(busy.status.as_u16() / 100, 2, "{}", busy.text);
    let pushed = till
        .push("invoices", &first.access, json!([sale("m-1"), sale("m-2")]))
        .await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let since = world.last_seq().await;

    // The till asks to pair again, proving it is the till: the page says what will happen.
    let started = till.begin(Some(&first.access)).await;
    let link = started.link.clone();
    let browser = world.browser();
    let confirm = browser.get(&link).await;
    assert!(
        confirm
            .text
            .contains("already connected to <strong>Demo Company (NZ)</strong>"),
        "{}",
        confirm.text
    );
    assert!(confirm.text.contains("Continue to Xero and move"));
    assert!(confirm.text.contains("documents it already sent stay with"));
    let done = browser.consent(&link, &[UK], true).await;
    assert!(
        done.text
            .contains("now sends to <strong>Demo Company (UK)</strong>"),
        "{}",
        done.text
    );
    assert!(
        done.text
            .contains("It moved from <strong>Demo Company (NZ)</strong>"),
        "{}",
        done.text
    );

    // The till learns where it is now; its old credentials stop working.
    let polled = till.poll_after(&world, &started).await;
    assert_eq!(polled.status, 200, "{}", polled.text);
    let moved = Paired::from(&polled.json);
    assert_eq!(moved.connection["tenant_id"], UK.to_string());
    assert_eq!(moved.connection["organisation_name"], "Demo Company (UK)");
    let old = till
        .call(Method::GET, "/v1/connection", &first.access, None)
        .await;
    assert_eq!(old.status, 401, "{}", old.text);

    // Xero recovers: the two queued invoices go to the first organisation, and the till sees them.
    world.control(Method::DELETE, "/faults", json!({})).await;
    let docs = till
        .settle(&moved.access, 2, std::time::Duration::from_secs(30))
        .await;
    assert!(docs.iter().all(|d| d["state"] == "sent"), "{docs:?}");
    assert_eq!(
        invoices_created_in(&world, since).await,
        vec![NZ.to_string()]
    );

    // What it sends from now on goes to the second.
    let since = world.last_seq().await;
    let next = till
        .push("invoices", &moved.access, json!([sale("m-3")]))
        .await;
    assert_eq!(next.status, 202, "{}", next.text);
    let docs = till
        .settle(&moved.access, 3, std::time::Duration::from_secs(30))
        .await;
    assert!(docs.iter().all(|d| d["state"] == "sent"), "{docs:?}");
    assert_eq!(
        invoices_created_in(&world, since).await,
        vec![UK.to_string()]
    );
}

#[tokio::test]
async fn choosing_the_same_organisation_again_only_reconnects_the_till() {
    let world = World::start().await;
    let till = world.device("Front till");
    let first = world.pair(&till, &[NZ], None).await;
    let started = till.begin(Some(&first.access)).await;
    let link = started.link.clone();
    let done = world.browser().consent(&link, &[NZ], true).await;
    assert!(
        done.text
            .contains("now sends to <strong>Demo Company (NZ)</strong>"),
        "{}",
        done.text
    );
    assert!(!done.text.contains("moved from"), "{}", done.text);
    let polled = till.poll_after(&world, &started).await;
    assert_eq!(
        polled.json["connection"]["tenant_id"],
        NZ.to_string(),
        "{}",
        polled.text
    );
}

#[tokio::test]
async fn a_reloaded_organisation_chooser_shows_the_choice_again_then_the_outcome() {
    let world = World::start().await;
    let till = world.device("Back office");
    let started = till.begin(None).await;
    let link = started.link.clone();
    let proxy = world.proxy_url.clone();
    let browser = world.browser();
    let callback = browser.consent_redirect(&link, &[NZ, UK], true).await;
    let back = browser.get(&callback).await;
    assert_eq!(back.status, 303, "{}", back.text);
    let chooser_url = format!("{proxy}{}", back.location());
    let chooser = browser.get(&chooser_url).await;
    assert!(
        chooser.text.contains("Which organisation"),
        "{}",
        chooser.text
    );

    // Reloads, of the chooser and of Xero's redirect, show the choice again.
    let reloaded = browser.get(&chooser_url).await;
    assert!(
        reloaded.text.contains("Which organisation"),
        "{}",
        reloaded.text
    );
    let again = browser.get(&callback).await;
    assert_eq!(
        (
            again.status.as_u16(),
            format!("{proxy}{}", again.location())
        ),
        (303, chooser_url.clone()),
        "back to the same chooser"
    );
    // Another browser gets nothing.
    let stranger = world.browser().get(&chooser_url).await;
    assert_eq!(stranger.status, 400);
    assert!(!stranger.text.contains("Demo Company"));

    // The reloaded chooser still completes.
    let done = browser.pick(&proxy, &reloaded, UK).await;
    assert!(
        done.text
            .contains("now sends to <strong>Demo Company (UK)</strong>"),
        "{}",
        done.text
    );
    // Afterwards every reload shows the outcome.
    for url in [&chooser_url, &callback] {
        let after = browser.get(url).await;
        assert_eq!(after.status, 200, "{url}: {}", after.text);
        assert!(
            after
                .text
                .contains("now sends to <strong>Demo Company (UK)</strong>"),
            "{url}: {}",
            after.text
        );
    }
    let resent = browser.pick(&proxy, &reloaded, NZ).await;
    assert!(
        resent.text.contains("Demo Company (UK)"),
        "a second pick changes nothing: {}",
        resent.text
    );
    let polled = till.poll_after(&world, &started).await;
    assert_eq!(
        polled.json["connection"]["tenant_id"],
        UK.to_string(),
        "{}",
        polled.text
    );
}

#[tokio::test]
async fn a_device_lists_the_devices_a_disconnect_would_stop() {
    let world = World::start().await;
    let front = world.device("Front till");
    let back = world.device("Back office");
    let f = world.pair(&front, &[NZ], None).await;
    let b = world.pair(&back, &[NZ], None).await;
    world.pair(&world.device("Elsewhere"), &[UK], None).await;
    let listed = front
        .call(Method::GET, "/v1/devices", &f.access, None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let names: Vec<(String, bool)> = listed.json["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device_name"].as_str().unwrap().to_string(),
                d["this_device"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("Front till".to_string(), true),
            ("Back office".to_string(), false)
        ],
        "the organisation's devices only, this one marked"
    );
    // One unpaired no longer stops with the rest.
    let gone = back
        .call(Method::DELETE, "/v1/device", &b.access, None)
        .await;
    assert_eq!(gone.status, 204);
    let listed = front
        .call(Method::GET, "/v1/devices", &f.access, None)
        .await;
    assert_eq!(
        listed.json["devices"].as_array().unwrap().len(),
        1,
        "{}",
        listed.text
    );
}

#[tokio::test]
async fn a_pairing_started_with_a_token_that_is_not_the_devices_is_refused() {
    let world = World::start().await;
    let till = world.device("Front till");
    let other = world.device("Back office");
    let o = world.pair(&other, &[NZ], None).await;
    let refused = till.start_as(Some(&o.access)).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.text.contains("belongs to another device"),
        "{}",
        refused.text
    );
    let unknown = till.start_as(Some("not-a-token")).await;
    assert_eq!(unknown.status, 401, "{}", unknown.text);
}

#[tokio::test]
async fn two_pairings_in_one_browser_each_keep_their_own_chooser() {
    let world = World::start().await;
    let proxy = world.proxy_url.clone();
    let browser = world.browser();
    let mut choosers = Vec::new();
    for name in ["Front till", "Back office"] {
        let started = world.device(name).begin(None).await;
        let callback = browser
            .consent_redirect(&started.link, &[NZ, UK], true)
            .await;
        let back = browser.get(&callback).await;
        assert_eq!(back.status, 303, "{}", back.text);
        choosers.push((name, format!("{proxy}{}", back.location())));
    }
    for (name, url) in &choosers {
        let page = browser.get(url).await;
        assert!(
            page.text.contains(&format!(
                "Which organisation should <span class=\"device\">{name}</span>"
            )),
            "{url}: {}",
            page.text
        );
    }
}
