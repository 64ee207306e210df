//! The vault's refresh against the sandbox's clock: ahead of expiry, rotation, a lost answer retried
//! inside the grace period, `invalid_grant`, and the idle refresher.

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

async fn paired(world: &World) -> (Device, Paired, Uuid) {
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    let token_set = world.connections().await[0].token_set_id.unwrap();
    (device, p, token_set)
}

/// The access token works at the sandbox's API.
async fn works(world: &World, access: &str) -> bool {
    reqwest::Client::new()
        .get(format!("{}/api.xro/2.0/Organisation", world.sandbox_url))
        .bearer_auth(access)
        .header("xero-tenant-id", NZ.to_string())
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

#[tokio::test]
async fn tokens_are_refreshed_ahead_of_expiry_and_the_rotated_refresh_token_is_kept() {
    let world = World::start().await;
    let (_, _, ts) = paired(&world).await;
    let vault = world.proxy.state().vault.clone();
    let first = vault.access_token(ts).await.unwrap();
    let since = world.last_seq().await;
    assert_eq!(
        vault.access_token(ts).await.unwrap().expose(),
        first.expose(),
        "fresh tokens are reused"
    );
    // Inside the 5-minute margin before expiry: refreshed.
    world.advance(1800 - 299).await;
    let second = vault.access_token(ts).await.unwrap();
    assert_ne!(second.expose(), first.expose());
    assert!(works(&world, second.expose()).await);
    assert_eq!(
        refresh_calls(&world.sandbox_requests(since).await),
        [Some(200)]
    );
    // Long after the sandbox's grace for the old refresh token: the next refresh still works,
    // because the rotated one was stored.
    world.advance(3600).await;
    let third = vault.access_token(ts).await.unwrap();
    assert!(works(&world, third.expose()).await);
}

#[tokio::test]
async fn a_lost_refresh_answer_is_retried_with_the_same_token_inside_the_grace_period() {
    let world = World::start().await;
    let (_, _, ts) = paired(&world).await;
    world.advance(1800).await;
    // Xero rotates the refresh token, but the answer never arrives.
    let fault = world
        .control(
            Method::POST,
            "/faults",
            json!({"path_prefix": "/connect/token", "drop": true, "phase": "after", "count": 1}),
        )
        .await;
    assert_eq!(fault.status, 201);
    let since = world.last_seq().await;
    let access = world.proxy.state().vault.access_token(ts).await.unwrap();
    assert!(works(&world, access.expose()).await);
    assert_eq!(
        refresh_calls(&world.sandbox_requests(since).await),
        [None, Some(200)],
        "dropped, then retried"
    );
    // And the token stored after the retry keeps working later.
    world.advance(1800).await;
    let later = world.proxy.state().vault.access_token(ts).await.unwrap();
    assert!(works(&world, later.expose()).await);
}

#[tokio::test]
async fn invalid_grant_marks_the_connection_for_reconnecting_and_the_device_sees_it() {
    let world = World::start().await;
    let (device, p, ts) = paired(&world).await;
    // The grant is revoked at Xero (say, by an admin there).
    let refresh = world.proxy.state().vault.refresh_token(ts).await.unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/connect/revocation", world.sandbox_url))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("token", refresh.expose())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    world.advance(1800).await;
    let err = world
        .proxy
        .state()
        .vault
        .access_token(ts)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ledgerlink_proxy::vault::VaultError::NeedsReconnect),
        "{err}"
    );
    assert_eq!(
        world.connections().await[0].status,
        ledgerlink_wire::ConnectionStatus::NeedsReconnect
    );
    let info = device
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(info.json["status"], "needs_reconnect");
    // Pairing again connects the organisation again.
    let again = world.pair(&world.device("Till"), &[NZ], None).await;
    assert_eq!(again.connection["status"], "connected");
}

#[tokio::test]
async fn the_idle_refresher_refreshes_unused_token_sets_well_before_sixty_days() {
    let mut settings = settings();
    settings.refresh.idle_check_secs = 1;
    let world = World::start_with(settings).await;
    let (_, _, ts) = paired(&world).await;
    let since = world.last_seq().await;
    world.advance(31 * 86_400).await;
    // The refresher runs on its own; wait (bounded) until the sandbox has seen its refresh.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let calls = refresh_calls(&world.sandbox_requests(since).await);
        if calls.contains(&Some(200)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no idle refresh within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = world
        .proxy
        .state()
        .storage
        .vault()
        .token_set(ts)
        .await
        .unwrap()
        .unwrap();
    assert!(row.last_refresh_at.is_some());
    // 31 more days: the refreshed token set is still good (the sandbox drops refresh tokens unused 60 days).
    world.advance(31 * 86_400).await;
    let access = world.proxy.state().vault.access_token(ts).await.unwrap();
    assert!(works(&world, access.expose()).await);
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let world = World::start().await;
    let (_, _, ts) = paired(&world).await;
    world.advance(1800).await;
    let since = world.last_seq().await;
    let vault = world.proxy.state().vault.clone();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let vault = vault.clone();
            tokio::spawn(async move { vault.access_token(ts).await.unwrap().expose().to_string() })
        })
        .collect();
    let mut tokens = Vec::new();
    for c in calls {
        tokens.push(c.await.unwrap());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "everyone got the same new token");
    assert_eq!(
        refresh_calls(&world.sandbox_requests(since).await).len(),
        1,
        "exactly one refresh reached Xero"
    );
}
