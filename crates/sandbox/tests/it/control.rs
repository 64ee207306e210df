//! The control API and fault injection, as tests and scripts use them.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn injected_statuses_answer_without_processing() {
    let env = start().await;
    let api = env.api(NZ).await;
    env.fault(json!({"method": "PUT", "path_prefix": "/api.xro/2.0/Invoices", "status": 503, "count": 1, "retry_after": 7})).await;
    let a = api
        .put(
            "Invoices",
            json!({"Invoices": [invoice("Fault", "1", "1")]}),
        )
        .await;
    assert_eq!(a.status, 503);
    assert_eq!(a.header("retry-after"), Some("7"));
    assert_eq!(
        api.get("Invoices").await.body["Invoices"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "phase before: not processed"
    );
    let b = api
        .put(
            "Invoices",
            json!({"Invoices": [invoice("Fault", "1", "1")]}),
        )
        .await;
    assert_eq!(b.status, 200, "the rule was spent");
}

#[tokio::test]
async fn a_dropped_connection_before_processing_leaves_nothing_behind() {
    let env = start().await;
    let api = env.api(NZ).await;
    env.fault(
        json!({"path_prefix": "/api.xro/2.0/Invoices", "method": "PUT", "drop": true, "count": 1}),
    )
    .await;
    let r = api
        .request(Method::PUT, "Invoices")
        .json(&json!({"Invoices": [invoice("Drop", "1", "1")]}))
        .send()
        .await;
    assert!(r.is_err(), "the connection is closed without an answer");
    assert_eq!(
        api.get("Invoices").await.body["Invoices"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let log = env.control(Method::GET, "/requests", json!({})).await;
    let dropped = log.body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "PUT")
        .unwrap()
        .clone();
    assert!(dropped["status"].is_null());
    assert_eq!(
        dropped["provider"], "xero",
        "each request says which provider it was for"
    );
}

#[tokio::test]
async fn a_lost_answer_after_processing_is_the_unknown_outcome_and_a_replay_recovers_it() {
    let env = start().await;
    let api = env.api(NZ).await;
    env.fault(json!({"path_prefix": "/api.xro/2.0/Invoices", "method": "PUT", "drop": true, "phase": "after", "count": 1})).await;
    let body = json!({"Invoices": [invoice("Unknown", "1", "1")]});
    let lost = api
        .request(Method::PUT, "Invoices")
        .header("Idempotency-Key", "bundle-1")
        .json(&body)
        .send()
        .await;
    assert!(lost.is_err());
    let existing = api.get("Invoices").await.body["Invoices"].clone();
    assert_eq!(
        existing.as_array().unwrap().len(),
        1,
        "phase after: it was processed"
    );
    let replay = Answer::read(
        api.request(Method::PUT, "Invoices")
            .header("Idempotency-Key", "bundle-1")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        replay.body["Invoices"][0]["InvoiceID"],
        existing[0]["InvoiceID"]
    );
    assert_eq!(
        api.get("Invoices").await.body["Invoices"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn faults_can_be_cleared_and_bad_rules_are_refused_with_a_reason() {
    let env = start().await;
    let api = env.api(NZ).await;
    env.fault(json!({"path_prefix": "/api.xro", "status": 500, "rate": 1.0}))
        .await;
    assert_eq!(api.get("Organisation").await.status, 500);
    assert_eq!(api.get("Organisation").await.status, 500);
    let cleared = env.control(Method::DELETE, "/faults", json!({})).await;
    assert_eq!(cleared.status, 204);
    assert_eq!(api.get("Organisation").await.status, 200);
    let bad = env
        .control(
            Method::POST,
            "/faults",
            json!({"status": 503, "count": 1, "rate": 0.5}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["error"]
        .as_str()
        .unwrap()
        .contains("either `count` or `rate`"));
    let typo = env
        .control(Method::POST, "/faults", json!({"statuss": 503}))
        .await;
    assert_eq!(typo.status, 400);
    assert!(typo.body["error"].as_str().unwrap().contains("statuss"));
}

#[tokio::test]
async fn the_clock_only_moves_forward() {
    let env = start().await;
    let before = env.control(Method::GET, "/clock", json!({})).await.body["now"]
        .as_str()
        .unwrap()
        .to_string();
    let after = env
        .control(Method::POST, "/clock", json!({"advance_seconds": 86_400}))
        .await;
    let (b, a) = (
        chrono::DateTime::parse_from_rfc3339(&before).unwrap(),
        chrono::DateTime::parse_from_rfc3339(after.body["now"].as_str().unwrap()).unwrap(),
    );
    assert!((a - b).num_seconds() >= 86_400);
    let back = env
        .control(Method::POST, "/clock", json!({"advance_seconds": -5}))
        .await;
    assert_eq!(back.status, 400);
}

#[tokio::test]
async fn the_request_log_shows_every_call_with_credentials_removed() {
    let env = start().await;
    let tokens = env.grant(None, None).await;
    let refresh = tokens.refresh.clone().unwrap();
    let refreshed = env.refresh(&refresh).await;
    let api = Api {
        env: &env,
        token: tokens.access.clone(),
        tenant: NZ,
    };
    api.put(
        "Invoices?summarizeErrors=false",
        json!({"Invoices": [invoice("Logged", "1", "1")]}),
    )
    .await;
    let log = env
        .control(Method::GET, "/requests?since=0", json!({}))
        .await;
    let entries = log.body["requests"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        2,
        "control calls are not logged: {}",
        log.text
    );
    let token_call = &entries[0];
    assert_eq!(token_call["path"], "/connect/token");
    assert_eq!(token_call["status"], 200);
    let put = &entries[1];
    assert_eq!(
        (put["method"].as_str(), put["path"].as_str()),
        (Some("PUT"), Some("/api.xro/2.0/Invoices"))
    );
    assert_eq!(put["query"], "summarizeErrors=false");
    assert_eq!(put["tenant_id"], NZ.to_string());
    assert!(
        put["body"].as_str().unwrap().contains("Logged"),
        "the raw body is kept"
    );
    assert!(put["seq"].as_u64() > token_call["seq"].as_u64());
    for secret in [
        refresh.as_str(),
        CLIENT_SECRET,
        tokens.access.as_str(),
        refreshed.body["refresh_token"].as_str().unwrap(),
    ] {
        assert!(
            !log.text.contains(secret),
            "a credential leaked into the request log"
        );
    }
    assert_eq!(put["headers"]["authorization"], "[redacted]");
    let since = env
        .control(
            Method::GET,
            &format!("/requests?since={}", token_call["seq"]),
            json!({}),
        )
        .await;
    assert_eq!(since.body["requests"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn new_tenants_grants_revocation_and_reset() {
    let env = start().await;
    let made = env
        .control(
            Method::POST,
            "/tenants",
            json!({"name": "Bench Shop 1", "country": "UK"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let tenant: uuid::Uuid = made.body["tenant_id"].as_str().unwrap().parse().unwrap();
    let tokens = env.grant(Some(&[tenant]), None).await;
    let api = Api {
        env: &env,
        token: tokens.access.clone(),
        tenant,
    };
    let org = api.get("Organisation").await;
    assert_eq!(org.body["Organisations"][0]["Name"], "Bench Shop 1");
    assert_eq!(org.body["Organisations"][0]["BaseCurrency"], "GBP");
    assert!(api.get("Accounts").await.body["Accounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["Code"] == "200"));
    let bad_country = env
        .control(
            Method::POST,
            "/tenants",
            json!({"name": "X", "country": "ZZ"}),
        )
        .await;
    assert_eq!(bad_country.status, 400);
    let stranger = env
        .control(
            Method::POST,
            "/grants",
            json!({"client_id": CLIENT_ID, "user": "nobody@x.test"}),
        )
        .await;
    assert_eq!(stranger.status, 404);

    let revoked = env
        .control(
            Method::POST,
            &format!("/grants/{}/revoke", tokens.grant_id.clone().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(api.get("Organisation").await.status, 401);

    let nz = env.api(NZ).await;
    nz.put(
        "Invoices",
        json!({"Invoices": [invoice("Before Reset", "1", "1")]}),
    )
    .await;
    let reset = env.control(Method::POST, "/reset", json!({})).await;
    assert_eq!(reset.status, 200);
    let fresh = env.api(NZ).await;
    assert_eq!(
        fresh.get("Invoices").await.body["Invoices"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        nz.get("Invoices").await.status,
        401,
        "grants are gone after a reset"
    );
    let unknown = env.control(Method::POST, "/nothing-here", json!({})).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn xeros_control_calls_answer_under_its_name_and_without_one_alike() {
    let env = start().await;
    let body = json!({"client_id": CLIENT_ID, "user": USER, "tenant_ids": [NZ]});
    for path in ["/grants", "/xero/grants"] {
        let a = env.control(Method::POST, path, body.clone()).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert!(a.body["access_token"].is_string(), "{path}: {}", a.body);
    }
    // The harness's own calls are the harness's, named under no provider.
    let a = env.control(Method::GET, "/xero/clock", json!({})).await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .contains("no such control endpoint"),
        "{}",
        a.body
    );
    let a = env.control(Method::GET, "/hubrise/grants", json!({})).await;
    assert_eq!(a.status, 404, "a provider not emulated yet: {}", a.body);
}
