//! Pairing through the HTML pages, and what follows: re-pairing, unpairing, disconnecting.

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn pair_with_one_organisation() {
    let world = World::start().await;
    let device = world.device("Front counter");
    let started = device.start().await;
    assert_eq!(started.status, 200, "{}", started.text);
    let s = &started.json;
    let code = s["user_code"].as_str().unwrap();
    assert!(
        code.len() == 9 && code.as_bytes()[4] == b'-',
        "user code shown XXXX-XXXX: {code}"
    );
    assert!(code
        .chars()
        .filter(|c| *c != '-')
        .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)));
    assert_eq!(s["verification_uri"], format!("{}/pair", world.proxy_url));
    assert_eq!(s["interval"], 5);
    assert!((600..=900).contains(&s["expires_in"].as_u64().unwrap()));

    // Until the person finishes, the device is told to wait.
    let pending = device.poll(s["device_code"].as_str().unwrap()).await;
    assert_eq!(
        (pending.status.as_u16(), pending.code()),
        (400, "authorization_pending")
    );

    // The page names the device and shows the code to compare.
    let browser = world.browser();
    let link = s["verification_uri_complete"].as_str().unwrap();
    let confirm = browser.get(link).await;
    assert!(
        confirm.text.contains("Front counter") && confirm.text.contains(code),
        "{}",
        confirm.text
    );
    assert!(confirm.text.contains("Continue to Xero"));

    let done = browser.consent(link, &[NZ], true).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.text.contains("Demo Company (NZ)"));

    world.advance(5).await;
    let tokens = device.poll(s["device_code"].as_str().unwrap()).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    assert_eq!(tokens.json["token_type"], "Bearer");
    assert!((3000..=3600).contains(&tokens.json["expires_in"].as_u64().unwrap()));
    let paired = Paired::from(&tokens.json);
    assert_eq!(paired.connection["tenant_id"], NZ.to_string());
    assert_eq!(paired.connection["organisation_name"], "Demo Company (NZ)");
    assert!(
        !paired.access.starts_with("eyJ"),
        "the device never gets a Xero token"
    );

    let info = device
        .call(Method::GET, "/v1/connection", &paired.access, None)
        .await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.json["status"], "connected");
    assert_eq!(info.json["device_name"], "Front counter");
    assert_eq!(info.json["device_id"], device.id.to_string());
    assert!(info.json["last_refresh_at"].is_string());

    // The organisation was picked by this consent's authEventId.
    let requests = world.sandbox_requests(0).await;
    assert!(requests.iter().any(|r| r["path"] == "/connections"
        && r["query"]
            .as_str()
            .is_some_and(|q| q.starts_with("authEventId="))));
}

#[tokio::test]
async fn pair_with_two_organisations_and_pick_the_second() {
    let world = World::start().await;
    let device = world.device("Clinic desk");
    let paired = world.pair(&device, &[NZ, UK], Some(UK)).await;
    assert_eq!(paired.connection["tenant_id"], UK.to_string());
    assert_eq!(paired.connection["organisation_name"], "Demo Company (UK)");
    let connections = world.connections().await;
    assert_eq!(
        connections.len(),
        1,
        "only the picked organisation becomes a connection"
    );
    assert_eq!(connections[0].tenant_id, UK.to_string());
}

#[tokio::test]
async fn denying_at_xero_or_cancelling_on_the_page_tells_the_device() {
    let world = World::start().await;
    let device = world.device("Till 1");
    let started = device.start().await;
    let link = started.json["verification_uri_complete"].as_str().unwrap();
    let page = world.browser().consent(link, &[], false).await;
    assert!(page.text.contains("nothing was connected"), "{}", page.text);
    world.advance(5).await;
    let denied = device
        .poll(started.json["device_code"].as_str().unwrap())
        .await;
    assert_eq!(denied.code(), "access_denied");

    let second = world.device("Till 2");
    let started = second.start().await;
    let browser = world.browser();
    let confirm = browser
        .get(started.json["verification_uri_complete"].as_str().unwrap())
        .await;
    let cancelled = browser
        .submit(&world.proxy_url, &confirm, "/pair/cancel", &[])
        .await;
    assert!(cancelled.text.contains("Cancelled"));
    world.advance(5).await;
    assert_eq!(
        second
            .poll(started.json["device_code"].as_str().unwrap())
            .await
            .code(),
        "access_denied"
    );
    assert!(world.connections().await.is_empty());
}

#[tokio::test]
async fn an_unfinished_pairing_expires() {
    let world = World::start().await;
    let device = world.device("Till");
    let started = device.start().await;
    world.advance(901).await;
    let expired = device
        .poll(started.json["device_code"].as_str().unwrap())
        .await;
    assert_eq!(expired.code(), "expired_token");
    let page = world
        .browser()
        .get(started.json["verification_uri_complete"].as_str().unwrap())
        .await;
    assert_eq!(page.status, 400);
    assert!(
        page.text.contains("That code is not valid"),
        "expired codes get the unknown-code answer"
    );
}

#[tokio::test]
async fn a_second_device_can_pair_the_same_organisation_and_both_work() {
    let world = World::start().await;
    let a = world.device("Counter A");
    let b = world.device("Counter B");
    let pa = world.pair(&a, &[NZ], None).await;
    let pb = world.pair(&b, &[NZ], None).await;
    assert_eq!(
        pa.connection["connection_id"], pb.connection["connection_id"],
        "one connection per organisation"
    );
    for (device, p) in [(&a, &pa), (&b, &pb)] {
        let info = device
            .call(Method::GET, "/v1/connection", &p.access, None)
            .await;
        assert_eq!(
            (info.status.as_u16(), info.json["status"].as_str()),
            (200, Some("connected")),
            "{}",
            info.text
        );
    }
    assert_eq!(world.connections().await.len(), 1);
}

#[tokio::test]
async fn unpairing_revokes_the_device_at_once() {
    let world = World::start().await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    let gone = device
        .call(Method::DELETE, "/v1/device", &p.access, None)
        .await;
    assert_eq!(gone.status, 204);
    let after = device
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(
        (after.status.as_u16(), after.code()),
        (401, "device_revoked")
    );
    assert_eq!(device.refresh(&p.refresh).await.code(), "invalid_grant");
    // The organisation stays connected for everyone else.
    assert_eq!(
        world.connections().await[0].status,
        ledgerlink_wire::ConnectionStatus::Connected
    );
}

#[tokio::test]
async fn disconnecting_from_the_proxy_deletes_the_xero_connection_and_tells_every_device() {
    let world = World::start().await;
    let a = world.device("A");
    let b = world.device("B");
    let pa = world.pair(&a, &[NZ], None).await;
    let pb = world.pair(&b, &[NZ], None).await;
    let unconfirmed = a
        .call(Method::DELETE, "/v1/connection", &pa.access, None)
        .await;
    assert_eq!(
        (unconfirmed.status.as_u16(), unconfirmed.code()),
        (400, "confirmation_required")
    );
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
    let calls: Vec<(String, String, u64)> = world
        .sandbox_requests(since)
        .await
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().into(),
                r["path"].as_str().unwrap().into(),
                r["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(
        calls
            .iter()
            .any(|(m, p, s)| m == "DELETE" && p.starts_with("/connections/") && *s == 204),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|(m, p, s)| m == "POST" && p == "/connect/revocation" && *s == 200),
        "{calls:?}"
    );
    let told = b
        .call(Method::GET, "/v1/connection", &pb.access, None)
        .await;
    assert_eq!((told.status.as_u16(), told.code()), (401, "disconnected"));
}

#[tokio::test]
async fn the_operator_can_list_and_disconnect_connections() {
    let mut settings = settings();
    settings.admin_token = Some(ledgerlink_wire::Secret::new("admin-secret-token"));
    let world = World::start_with(settings).await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    assert_eq!(
        world
            .admin(Method::GET, "/connections", "wrong")
            .await
            .status,
        401
    );
    let list = world
        .admin(Method::GET, "/connections", "admin-secret-token")
        .await;
    let conns = list.json["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0]["devices"][0]["name"], "Till");
    let id = conns[0]["id"].as_str().unwrap();
    let done = world
        .admin(
            Method::DELETE,
            &format!("/connections/{id}"),
            "admin-secret-token",
        )
        .await;
    assert_eq!(done.json["status"], "disconnected");
    let told = device
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(told.code(), "disconnected");
}

#[tokio::test]
async fn a_disconnection_made_in_xero_is_noticed() {
    let world = World::start().await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    // Someone removes the app from the organisation in Xero.
    world.remove_at_xero(NZ).await;
    let info = device
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(info.status, 200);
    assert_eq!(info.json["status"], "disconnected");
}
