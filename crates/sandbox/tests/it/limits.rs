//! Xero's rate limits with their headers: per tenant per window, per day, concurrent, and per app.

use futures_util::future::join;
use serde_json::json;

use crate::common::*;

fn remaining(a: &Answer, name: &str) -> u32 {
    a.header(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_response_says_what_is_left() {
    let env = start().await;
    let api = env.api(NZ).await;
    let a = api.get("Organisation").await;
    assert_eq!(remaining(&a, "x-daylimit-remaining"), 4999);
    assert_eq!(remaining(&a, "x-minlimit-remaining"), 59);
    assert_eq!(remaining(&a, "x-appminlimit-remaining"), 9999);
    let b = api.get("Invoices").await;
    assert_eq!(remaining(&b, "x-minlimit-remaining"), 58);
    // Validation errors count too: they are calls.
    let c = api.put("Invoices", json!({"Type": "ACCREC"})).await;
    assert_eq!(c.status, 400);
    assert_eq!(remaining(&c, "x-minlimit-remaining"), 57);
}

#[tokio::test]
async fn the_minute_limit_answers_429_with_retry_after_until_the_window_turns() {
    let env = start().await;
    env.set_limits(json!({"tenant_per_window": 3, "window_seconds": 60}))
        .await;
    let api = env.api(NZ).await;
    let left: Vec<u32> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let a = api.get("Organisation").await;
            assert_eq!(a.status, 200);
            v.push(remaining(&a, "x-minlimit-remaining"));
        }
        v
    };
    assert_eq!(left, [2, 1, 0]);
    let limited = api.get("Organisation").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("x-rate-limit-problem"), Some("minute"));
    let retry: i64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(remaining(&limited, "x-minlimit-remaining"), 0);
    // Another tenant has its own window.
    let uk = env.api(UK).await;
    assert_eq!(uk.get("Organisation").await.status, 200);
    // Fixed windows: after Retry-After the tenant may call again.
    env.advance(retry).await;
    let again = api.get("Organisation").await;
    assert_eq!(again.status, 200);
    assert_eq!(remaining(&again, "x-minlimit-remaining"), 2);
}

#[tokio::test]
async fn the_day_limit_answers_429_day() {
    let env = start().await;
    env.set_limits(json!({"tenant_per_day": 2})).await;
    let api = env.api(NZ).await;
    assert_eq!(api.get("Organisation").await.status, 200);
    let second = api.get("Organisation").await;
    assert_eq!(remaining(&second, "x-daylimit-remaining"), 0);
    let limited = api.get("Organisation").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("x-rate-limit-problem"), Some("day"));
    let retry: i64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    env.advance(60).await;
    assert_eq!(
        api.get("Organisation").await.status,
        429,
        "a new minute does not reset the day"
    );
    env.advance(retry).await;
    let next_day = env.api(NZ).await; // the old access token expired in the meantime
    assert_eq!(next_day.get("Organisation").await.status, 200);
}

#[tokio::test]
async fn the_app_limit_counts_across_tenants() {
    let env = start().await;
    env.set_limits(json!({"app_per_window": 2})).await;
    let nz = env.api(NZ).await;
    let uk = env.api(UK).await;
    assert_eq!(nz.get("Organisation").await.status, 200);
    let b = uk.get("Organisation").await;
    assert_eq!(remaining(&b, "x-appminlimit-remaining"), 0);
    let limited = uk.get("Organisation").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("x-rate-limit-problem"), Some("appminute"));
    assert!(limited.header("retry-after").is_some());
}

#[tokio::test]
async fn the_concurrency_limit_refuses_a_call_while_another_is_in_flight() {
    let env = start().await;
    env.set_limits(json!({"tenant_concurrent": 1})).await;
    let api = env.api(NZ).await;
    // Both calls are slowed inside the API: whichever takes the slot first holds it for 1.5 s.
    env.fault(json!({"path_prefix": "/api.xro/2.0/Organisation", "latency_ms": 1500, "count": 2}))
        .await;
    let (a, b) = join(api.get("Organisation"), api.get("Organisation")).await;
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 429]);
    let limited = if a.status == 429 { &a } else { &b };
    assert_eq!(limited.header("x-rate-limit-problem"), Some("concurrent"));
    // The slot is free again afterwards.
    assert_eq!(api.get("Organisation").await.status, 200);
}
