//! Xero's cap on an app's connected organisations (25 until Xero certifies the app): the proxy
//! counts its own and says so on the pairing page, before anyone goes to Xero; Xero's consent page
//! refuses a new organisation at the cap; reconnecting one already connected always works.

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

async fn new_organisation(world: &World, name: &str) -> Uuid {
    let made = world
        .control(
            Method::POST,
            "/tenants",
            json!({"name": name, "country": "NZ"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    made.json["tenant_id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_26th_organisation_of_an_uncertified_app_is_stopped_on_the_pairing_page() {
    let world = World::start().await;
    let mut organisations = vec![NZ, UK];
    for i in 3..=26 {
        organisations.push(new_organisation(&world, &format!("Shop {i}")).await);
    }
    for (i, org) in organisations[..25].iter().enumerate() {
        world
            .pair(&world.device(&format!("Till {i}")), &[*org], None)
            .await;
    }

    // The 26th: the pairing page explains before Xero.
    let till = world.device("Till 26");
    let started = till.begin(None).await;
    let link = started.link.clone();
    let browser = world.browser();
    let confirm = browser.get(&link).await;
    assert!(
        confirm
            .text
            .contains("No new organisation can be connected"),
        "{}",
        confirm.text
    );
    assert!(confirm
        .text
        .contains("limit of 25 connected Xero organisations"));
    assert!(confirm.text.contains("Continue to Xero to reconnect"));

    // Going on anyway, Xero itself refuses it: disabled on its consent page, refused if sent.
    let (sandbox, consent) = browser.to_consent(&link).await;
    assert!(
        consent
            .text
            .contains("has reached its limit of 25 connected organisations"),
        "{}",
        consent.text
    );
    let last = organisations[25].to_string();
    let checkbox = &consent.text[consent.text.find(&format!("value=\"{last}\"")).unwrap()..];
    assert!(checkbox.split('>').next().unwrap().contains("disabled"));
    let refused = browser
        .decide(&sandbox, &consent, &[organisations[25]], true)
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.headers.get("location").is_none(),
        "nothing is redirected"
    );
    assert_eq!(world.connections().await.len(), 25);

    // At the cap, a second till for an organisation already connected pairs as always.
    let again = world
        .pair(&world.device("Second till"), &[organisations[3]], None)
        .await;
    assert_eq!(again.connection["tenant_id"], organisations[3].to_string());
    assert_eq!(world.connections().await.len(), 25);
}

#[tokio::test]
async fn the_proxys_own_cap_refuses_a_new_organisation_after_xero_and_takes_its_connection_back() {
    let mut settings = settings();
    settings.providers.xero.connection_cap = Some(1);
    let world = World::start_with(settings).await;
    world.pair(&world.device("Till 1"), &[NZ], None).await;

    let till = world.device("Till 2");
    let started = till.begin(None).await;
    let link = started.link.clone();
    let browser = world.browser();
    let confirm = browser.get(&link).await;
    assert!(
        confirm
            .text
            .contains("limit of 1 connected Xero organisations"),
        "{}",
        confirm.text
    );
    let since = world.last_seq().await;
    // Xero's own cap is 25, so it lets UK through; the proxy does not.
    let callback = browser.consent_redirect(&link, &[UK], true).await;
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 403, "{}", page.text);
    // A reload of that answer is no dead end: the device's code leads on.
    let reload = browser.get(&callback).await;
    assert!(reload.text.contains("Not connected yet"), "{}", reload.text);
    let on = reload
        .text
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let confirm_again = browser.get(&format!("{}{on}", world.proxy_url)).await;
    assert!(
        confirm_again
            .text
            .contains("Connect <span class=\"device\">Till 2</span>"),
        "{}",
        confirm_again.text
    );
    assert!(
        page.text.contains("Demo Company (UK) is not connected"),
        "{}",
        page.text
    );
    assert_eq!(world.connections().await.len(), 1);
    let removed = world.sandbox_requests(since).await;
    assert!(
        removed.iter().any(|r| r["method"] == "DELETE"
            && r["path"].as_str().unwrap().starts_with("/connections/")
            && r["status"] == 204),
        "the connection Xero made is taken back: {removed:?}"
    );
    // The same code can still reconnect the organisation already connected.
    let page = browser.consent(&link, &[NZ], true).await;
    assert!(
        page.text
            .contains("now sends to <strong>Demo Company (NZ)</strong>"),
        "{}",
        page.text
    );
    let polled = till.poll_after(&world, &started).await;
    assert_eq!(
        polled.json["connection"]["tenant_id"],
        NZ.to_string(),
        "{}",
        polled.text
    );
}
