//! Xero's rules of 2026 as the proxy meets them: an app registered since 2 March 2026 gets granular
//! scopes only. The proxy's default scopes are granular, so such an app pairs; a broad scope set by
//! the operator is refused by Xero, and the person is told it is the setup, not them.

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;

/// Registers an app made in April 2026 whose redirect URI is this world's proxy, and starts the
/// proxy again with its credentials (and `scopes`, if given).
async fn with_a_2026_app(world: &mut World, scopes: Option<&str>) {
    let made = world
        .control(
            Method::POST,
            "/apps",
            json!({"redirect_uris": [format!("{}/oauth/xero/callback", world.proxy_url)], "created_at": "2026-04-01"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    world.stop_proxy().await;
    world.proxy_settings.providers.xero.client_id = made.json["client_id"].as_str().unwrap().into();
    world.proxy_settings.providers.xero.client_secret = Some(ledgerlink_wire::Secret::new(
        made.json["client_secret"].as_str().unwrap(),
    ));
    world.proxy_settings.providers.xero.scopes = scopes.map(str::to_string);
    world.start_proxy().await;
}

#[tokio::test]
async fn an_app_made_in_2026_pairs_with_the_default_granular_scopes() {
    let mut world = World::start().await;
    with_a_2026_app(&mut world, None).await;
    let device = world.device("Till 2026");
    let p = world.pair(&device, &[NZ], None).await;
    // And it can do its work: read the organisation's accounts, push an invoice.
    let offer = device
        .call(Method::GET, "/v1/mappings?refresh=true", &p.access, None)
        .await;
    assert_eq!(offer.status, 200, "{}", offer.text);
    let pushed = device
        .push(
            "invoices",
            &p.access,
            json!([{"client_ref": "g-1", "contact": {"name": "Walk-in"}, "date": "2026-11-20",
                "lines": [{"description": "Tea", "quantity": 1, "unit_amount": "4.00", "account_code": "200", "tax_type": "OUTPUT2"}]}]),
        )
        .await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let docs = device
        .settle(&p.access, 1, std::time::Duration::from_secs(30))
        .await;
    assert_eq!(docs[0]["state"], "sent", "{docs:?}");
    // The provider's id and number, and Xero's names for them (kept, deprecated), agree.
    assert!(docs[0]["provider_number"]
        .as_str()
        .unwrap()
        .starts_with("INV-"));
    assert_eq!(docs[0]["provider_number"], docs[0]["xero_number"]);
    assert_eq!(docs[0]["provider_id"], docs[0]["xero_id"]);
    assert_eq!(p.connection["tenant_id"], NZ.to_string());
}

#[tokio::test]
async fn a_broad_scope_refused_by_xero_is_explained_as_the_setup_not_the_person() {
    let mut world = World::start().await;
    with_a_2026_app(
        &mut world,
        Some("offline_access accounting.transactions accounting.contacts accounting.settings.read"),
    )
    .await;
    let device = world.device("Till");
    let started = device.start().await;
    assert_eq!(started.status, 200, "{}", started.text);
    let browser = world.browser();
    let link = started.json["verification_uri_complete"].as_str().unwrap();
    let confirm = browser.get(link).await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);
    let to_xero = browser
        .submit(&world.proxy_url, &confirm, "/pair/continue", &[])
        .await;
    assert_eq!(to_xero.status, 303, "{}", to_xero.text);
    let refused = browser.get(to_xero.location()).await;
    assert!(refused.status.is_redirection(), "{}", refused.text);
    assert!(
        refused.location().contains("error=invalid_scope"),
        "{}",
        refused.location()
    );
    let page = browser.get(refused.location()).await;
    assert!(
        page.text
            .contains("Whoever runs it needs to change its Xero scopes"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("Connected"));
}
