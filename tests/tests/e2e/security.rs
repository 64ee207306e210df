//! Each protection of pairing and credentials, shown by the attack it stops.

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;

/// Starts a pairing and takes the browser to Xero and back, stopping before the proxy's callback:
/// answers the device's pairing, the browser and the callback URL.
async fn up_to_callback(world: &World, tick: &[uuid::Uuid]) -> (Answer, Browser, String) {
    let device = world.device("Till");
    let started = device.start().await;
    let browser = world.browser();
    let link = started.json["verification_uri_complete"]
        .as_str()
        .unwrap()
        .to_string();
    let confirm = browser.get(&link).await;
    let to_xero = browser
        .submit(&world.proxy_url, &confirm, "/pair/continue", &[])
        .await;
    let authorize = to_xero.location().to_string();
    let login = browser.get(&authorize).await;
    let consent = browser
        .submit(
            &world.sandbox_url,
            &login,
            "/identity/connect/authorize",
            &[
                ("action", "login"),
                ("email", "demo@ledgerlink.test"),
                ("password", "demo"),
            ],
        )
        .await;
    let mut extra: Vec<(&str, String)> = tick.iter().map(|t| ("tenant", t.to_string())).collect();
    extra.push(("action", "allow".into()));
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let back = browser
        .submit(
            &world.sandbox_url,
            &consent,
            "/identity/connect/authorize",
            &extra,
        )
        .await;
    assert_eq!(back.status, 302);
    (started, browser, back.location().to_string())
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(name, value);
    u.to_string()
}

#[tokio::test]
async fn a_wrong_or_replayed_state_is_refused() {
    let world = World::start().await;
    let (started, browser, callback) = up_to_callback(&world, &[NZ]).await;
    let forged = browser
        .get(&with_param(&callback, "state", "forged-state-value"))
        .await;
    assert_eq!(forged.status, 400);
    assert!(forged.text.contains("not valid"));
    let ok = browser.get(&callback).await;
    assert!(ok.text.contains("Connected"), "{}", ok.text);
    // Replayed in the same browser (a reload), it shows the outcome and exchanges nothing again.
    let since = world.last_seq().await;
    let replay = browser.get(&callback).await;
    assert_eq!(replay.status, 200);
    assert!(replay.text.contains("now sends to"), "{}", replay.text);
    assert!(
        !world
            .sandbox_requests(since)
            .await
            .iter()
            .any(|r| r["path"] == "/connect/token"),
        "no second code exchange"
    );
    // Anywhere else it is refused.
    let elsewhere = world.browser();
    elsewhere.get(&format!("{}/pair", world.proxy_url)).await;
    let replay = elsewhere.get(&callback).await;
    assert_eq!(replay.status, 400);
    assert!(replay.text.contains("already used"), "{}", replay.text);
    // The forged attempt did not spoil the real one: the device is paired once.
    world.advance(5).await;
    let poll = world
        .device("Till")
        .poll(started.json["device_code"].as_str().unwrap())
        .await;
    assert_eq!(poll.status, 200, "{}", poll.text);
}

#[tokio::test]
async fn a_callback_opened_in_another_browser_is_refused() {
    let world = World::start().await;
    let (started, _browser, callback) = up_to_callback(&world, &[NZ]).await;
    // No cookie at all.
    let stranger = world.browser().get(&callback).await;
    assert_eq!(stranger.status, 400);
    assert!(stranger.text.contains("same browser"));
    // Another browser with a cookie of its own.
    let other = world.browser();
    other.get(&format!("{}/pair", world.proxy_url)).await;
    let refused = other.get(&callback).await;
    assert_eq!(refused.status, 400);
    assert!(refused.text.contains("another browser"), "{}", refused.text);
    // Nothing was approved.
    world.advance(5).await;
    let device = world.device("x");
    let poll = device
        .poll(started.json["device_code"].as_str().unwrap())
        .await;
    assert_eq!(poll.code(), "authorization_pending");
}

#[tokio::test]
async fn a_device_code_gives_credentials_once() {
    let world = World::start().await;
    let device = world.device("Till");
    let started = device.start().await;
    let link = started.json["verification_uri_complete"]
        .as_str()
        .unwrap()
        .to_string();
    world.browser().consent(&link, &[NZ], true).await;
    world.advance(5).await;
    let code = started.json["device_code"].as_str().unwrap();
    assert_eq!(device.poll(code).await.status, 200);
    world.advance(5).await;
    let again = device.poll(code).await;
    assert_eq!(again.code(), "invalid_grant");
}

#[tokio::test]
async fn the_right_code_after_five_wrong_ones_fails_in_that_browser() {
    let world = World::start().await;
    let device = world.device("Till");
    let started = device.start().await;
    let code = started.json["user_code"].as_str().unwrap().to_string();
    let browser = world.browser();
    for wrong in [
        "BCDF-GHJK",
        "ZZZZ-ZZZZ",
        "not-a-code",
        "BBBB-BBBB",
        "CCCC-CCCC",
    ] {
        let a = browser
            .post(
                &format!("{}/pair", world.proxy_url),
                &[("code".into(), wrong.into())],
            )
            .await;
        assert_eq!(a.status, 400, "{wrong}");
    }
    let locked = browser
        .post(
            &format!("{}/pair", world.proxy_url),
            &[("code".into(), code.clone())],
        )
        .await;
    assert_eq!(locked.status, 429);
    assert!(locked.text.contains("locked"));
    // Codes match ignoring case and punctuation, in a browser that is not locked.
    let fresh = world.browser();
    let typed = code.to_lowercase().replace('-', " ");
    let ok = fresh
        .post(
            &format!("{}/pair", world.proxy_url),
            &[("code".into(), typed)],
        )
        .await;
    assert_eq!(ok.status, 200);
    assert!(ok.text.contains("Continue to Xero"));
}

#[tokio::test]
async fn code_entry_is_throttled_per_address_across_sessions() {
    let mut settings = settings();
    settings.pairing.max_code_attempts_per_address = 3;
    let world = World::start_with(settings).await;
    let device = world.device("Till");
    let started = device.start().await;
    let code = started.json["user_code"].as_str().unwrap().to_string();
    for _ in 0..3 {
        // A new browser session each time: dropping cookies buys no extra guesses.
        let a = world
            .browser()
            .post(
                &format!("{}/pair", world.proxy_url),
                &[("code".into(), "BCDF-GHJK".into())],
            )
            .await;
        assert_eq!(a.status, 400);
    }
    let throttled = world
        .browser()
        .post(
            &format!("{}/pair", world.proxy_url),
            &[("code".into(), code)],
        )
        .await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.text.contains("Too many codes were tried"));
}

#[tokio::test]
async fn polling_faster_than_the_interval_gets_slow_down() {
    let world = World::start().await;
    let device = world.device("Till");
    let started = device.start().await;
    let code = started.json["device_code"].as_str().unwrap();
    assert_eq!(device.poll(code).await.code(), "authorization_pending");
    let fast = device.poll(code).await;
    assert_eq!(fast.code(), "slow_down");
    // The interval grew by 5 s to 10: 5 s later is still too fast (and it grows to 15)...
    world.advance(5).await;
    assert_eq!(device.poll(code).await.code(), "slow_down");
    // ...and a device that honours the interval it was given is answered normally.
    world.advance(15).await;
    assert_eq!(device.poll(code).await.code(), "authorization_pending");
}

#[tokio::test]
async fn device_refresh_tokens_rotate_and_reuse_revokes_the_device() {
    let world = World::start().await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    let first = device.refresh(&p.refresh).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = Paired::from(&first.json);
    assert_ne!(second.refresh, p.refresh);
    // A racing second process of the same device, a moment later, gets the same new pair.
    world.advance(2).await;
    let racing = device.refresh(&p.refresh).await;
    assert_eq!(racing.status, 200);
    assert_eq!(Paired::from(&racing.json).access, second.access);
    assert_eq!(
        device
            .call(Method::GET, "/v1/connection", &second.access, None)
            .await
            .status,
        200
    );
    // Later, the old token looks stolen: the device is revoked.
    world.advance(60).await;
    let reuse = device.refresh(&p.refresh).await;
    assert_eq!(reuse.code(), "invalid_grant");
    assert!(reuse.json["error_description"]
        .as_str()
        .unwrap()
        .contains("pair it again"));
    let cut = device
        .call(Method::GET, "/v1/connection", &second.access, None)
        .await;
    assert_eq!((cut.status.as_u16(), cut.code()), (401, "device_revoked"));
}

#[tokio::test]
async fn device_access_tokens_expire_and_the_refreshed_one_works() {
    let world = World::start().await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    world.advance(3601).await;
    let expired = device
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(
        (expired.status.as_u16(), expired.code()),
        (401, "token_expired")
    );
    let fresh = Paired::from(&device.refresh(&p.refresh).await.json);
    assert_eq!(
        device
            .call(Method::GET, "/v1/connection", &fresh.access, None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_device_only_ever_sees_its_own_connection() {
    let world = World::start().await;
    let a = world.device("NZ till");
    let b = world.device("UK till");
    let pa = world.pair(&a, &[NZ], None).await;
    let pb = world.pair(&b, &[UK], None).await;
    let b_connection = pb.connection["connection_id"].as_str().unwrap();
    // There is no way to name another connection: parameters and bodies are ignored; the token decides.
    let tries = a
        .call(
            Method::GET,
            &format!("/v1/connection?connection_id={b_connection}&tenant_id={UK}"),
            &pa.access,
            None,
        )
        .await;
    assert_eq!(tries.json["tenant_id"], NZ.to_string());
    // A body naming another connection is refused by name (the call takes `confirm` only)...
    let naming = a
        .call(
            Method::DELETE,
            "/v1/connection",
            &pa.access,
            Some(json!({"confirm": true, "connection_id": b_connection})),
        )
        .await;
    assert_eq!(naming.status, 400, "{}", naming.text);
    assert!(naming.json["message"]
        .as_str()
        .unwrap()
        .contains("connection_id"));
    // ...and the one it takes disconnects the device's own organisation.
    let disconnect = a
        .call(
            Method::DELETE,
            "/v1/connection",
            &pa.access,
            Some(json!({"confirm": true})),
        )
        .await;
    assert_eq!(disconnect.json["tenant_id"], NZ.to_string());
    let still = b
        .call(Method::GET, "/v1/connection", &pb.access, None)
        .await;
    assert_eq!(
        still.json["status"], "connected",
        "B's organisation is untouched"
    );
}

#[tokio::test]
async fn no_token_or_secret_reaches_the_logs_the_database_file_or_a_response() {
    let world = World::start().await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    let refreshed = Paired::from(&device.refresh(&p.refresh).await.json);
    // Make the proxy refresh its Xero tokens too, so rotated ones are in play.
    world.advance(1700).await;
    let token_set = world.connections().await[0].token_set_id.unwrap();
    world
        .proxy
        .state()
        .vault
        .access_token(token_set)
        .await
        .unwrap();

    // Every Xero refresh token the sandbox ever issued, and the marks of any Xero access token (JWT).
    let xero_refresh: Vec<String> = world
        .sandbox
        .shared()
        .world()
        .refresh_tokens
        .keys()
        .cloned()
        .collect();
    assert!(xero_refresh.len() >= 2);
    let mut needles: Vec<String> = xero_refresh.clone();
    needles.extend([
        p.access.clone(),
        p.refresh.clone(),
        refreshed.access.clone(),
        refreshed.refresh.clone(),
    ]);
    needles.push(CLIENT_SECRET.to_string());
    needles.push("eyJhbGciOi".to_string()); // the start of every JWT the sandbox signs

    let db = world.stored_bytes().await;
    let logs = ledgerlink_e2e::logs::text();
    assert!(logs.contains("device paired"), "the log capture works");
    let responses = world.seen.lock().unwrap().join("\n");
    for needle in &needles {
        assert!(
            !db.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "a secret is in the database"
        );
        assert!(!logs.contains(needle.as_str()), "a secret is in the logs");
    }
    for needle in xero_refresh
        .iter()
        .chain([&CLIENT_SECRET.to_string(), &"eyJhbGciOi".to_string()])
    {
        assert!(
            !responses.contains(needle.as_str()),
            "a Xero secret reached a device or browser"
        );
    }
}

#[tokio::test]
async fn a_xero_code_cannot_be_replayed_into_another_pairing() {
    let world = World::start().await;
    let (_, browser, first) = up_to_callback(&world, &[NZ]).await;
    assert!(browser.get(&first).await.text.contains("Connected"));
    let used_code = url::Url::parse(&first)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    // A second pairing, whose own state is genuine, fed the first pairing's authorization code.
    let (started, browser2, second) = up_to_callback(&world, &[UK]).await;
    let replayed = browser2.get(&with_param(&second, "code", &used_code)).await;
    assert_eq!(replayed.status, 502, "{}", replayed.text);
    assert!(replayed.text.contains("Xero refused the sign-in"));
    world.advance(5).await;
    let poll = world
        .device("Till")
        .poll(started.json["device_code"].as_str().unwrap())
        .await;
    assert_eq!(
        poll.code(),
        "authorization_pending",
        "nothing was approved with the replayed code"
    );
    assert_eq!(world.connections().await.len(), 1);
}

#[tokio::test]
async fn a_form_posted_from_another_site_cannot_skip_the_code_check() {
    let world = World::start().await;
    let device = world.device("Attacker's till");
    let started = device.start().await;
    let code = started.json["user_code"].as_str().unwrap().to_string();
    // A victim's browser, made to post the attacker's code straight to "Continue" by another site.
    let victim = world.browser();
    let forged = victim
        .post(
            &format!("{}/pair/continue", world.proxy_url),
            &[("code".into(), code.clone())],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.text);
    assert!(
        forged.headers.get("location").is_none(),
        "no redirect to Xero"
    );
    // Even with a session cookie, a form token from elsewhere is refused.
    victim.get(&format!("{}/pair", world.proxy_url)).await;
    let wrong_token = victim
        .post(
            &format!("{}/pair/continue", world.proxy_url),
            &[
                ("code".into(), code.clone()),
                ("form".into(), "made-up".into()),
            ],
        )
        .await;
    assert_eq!(wrong_token.status, 403);
    let cancel = victim
        .post(
            &format!("{}/pair/cancel", world.proxy_url),
            &[("code".into(), code)],
        )
        .await;
    assert_eq!(
        cancel.status, 403,
        "nor can another site cancel someone's pairing"
    );
    world.advance(5).await;
    assert_eq!(
        device
            .poll(started.json["device_code"].as_str().unwrap())
            .await
            .code(),
        "authorization_pending"
    );
}

#[tokio::test]
async fn a_device_id_paired_elsewhere_cannot_be_taken_over() {
    let world = World::start().await;
    let id = uuid::Uuid::new_v4();
    let victim = world.device_with_id("Victim till", id);
    let pv = world.pair(&victim, &[NZ], None).await;
    // Someone who learned the id pairs it with another organisation.
    let attacker = world.device_with_id("Attacker", id);
    let started = attacker.start().await;
    let link = started.json["verification_uri_complete"]
        .as_str()
        .unwrap()
        .to_string();
    // The page names no organisation, and the browser is told the truth at the end.
    let browser = world.browser();
    let confirm = browser.get(&link).await;
    assert!(confirm.text.contains("already paired"), "{}", confirm.text);
    assert!(!confirm.text.contains("Demo Company"), "{}", confirm.text);
    let end = browser.consent(&link, &[UK], true).await;
    assert!(end.text.contains("was not moved"), "{}", end.text);
    world.advance(5).await;
    assert_eq!(end.status, 409);
    // Nothing was written: no connection for the other organisation, and the pairing gives the
    // attacker nothing.
    assert!(world
        .connections()
        .await
        .iter()
        .all(|c| c.tenant_id != UK.to_string()));
    let refused = attacker
        .poll(started.json["device_code"].as_str().unwrap())
        .await;
    assert_eq!(refused.code(), "authorization_pending");
    // The victim is untouched.
    let info = victim
        .call(Method::GET, "/v1/connection", &pv.access, None)
        .await;
    assert_eq!(
        (info.status.as_u16(), info.json["tenant_id"].as_str()),
        (200, Some(NZ.to_string().as_str()))
    );
}

#[tokio::test]
async fn device_grants_need_their_client_id() {
    let world = World::start().await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    let http = reqwest::Client::new();
    let without = Answer::read(
        http.post(format!("{}/v1/pairings/token", world.proxy_url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", p.refresh.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(without.code(), "invalid_request");
    let other = Answer::read(
        http.post(format!("{}/v1/pairings/token", world.proxy_url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", p.refresh.as_str()),
                ("client_id", "someone-else"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(other.code(), "invalid_client");
    assert_eq!(
        device.refresh(&p.refresh).await.status,
        200,
        "the refresh token was not spent by the refused calls"
    );
}

#[tokio::test]
async fn routes_named_after_a_provider_this_proxy_does_not_have_are_not_found() {
    let world = World::start().await;
    let browser = world.browser();
    let callback = browser
        .get(&format!(
            "{}/oauth/officernd/callback?code=x&state=y",
            world.proxy_url
        ))
        .await;
    assert_eq!(callback.status, 404, "{}", callback.text);
    let hook = reqwest::Client::new()
        .post(format!("{}/webhooks/officernd", world.proxy_url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 404);
    // Xero's, as registered apps have them, still answer.
    let xero = browser
        .get(&format!(
            "{}/oauth/xero/callback?state=nope",
            world.proxy_url
        ))
        .await;
    assert_eq!(xero.status, 400, "{}", xero.text);
}
