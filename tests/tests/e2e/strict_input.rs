//! What the proxy takes is exactly what it says it takes: unknown keys and keys given twice are
//! named and refused, amounts are plain decimals, names carry no control or bidirectional
//! characters, and the small protocol details (the bearer scheme's case, the pairing throttle's
//! answer, the pages' Content-Security-Policy) are as the standards say.

use crate::push::{invoice, paired_with_mappings};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

async fn raw(world: &World, path: &str, token: &str, body: &str) -> Answer {
    Answer::read(
        reqwest::Client::new()
            .post(format!("{}{path}", world.proxy_url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn unknown_and_repeated_keys_are_refused_by_name_and_amounts_are_plain_decimals() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let good = invoice("k-1", "Walk-in");

    let extra = raw(
        &world,
        "/v1/invoices",
        &p.access,
        &json!({"invoices": [good.clone()], "dry_run": true}).to_string(),
    )
    .await;
    assert_eq!(extra.status, 400, "{}", extra.text);
    assert!(extra.json["message"]
        .as_str()
        .unwrap()
        .contains("'dry_run'"));

    // The same key twice, deep inside: refused, named with where it is. (serde_json alone would
    // have kept the second.)
    let doubled = r#"{"invoices": [{"client_ref": "k-2", "contact": {"name": "A", "name": "B"}, "date": "2026-11-20",
        "lines": [{"description": "x", "quantity": 1, "unit_amount": "1.00", "unit_amount": "900.00", "sales_category": "Drinks"}]}]}"#;
    let twice = raw(&world, "/v1/invoices", &p.access, doubled).await;
    assert_eq!(twice.status, 400, "{}", twice.text);
    let message = twice.json["message"].as_str().unwrap();
    assert!(
        message.contains("'name' is given twice in invoices[0].contact"),
        "{message}"
    );

    let mut underscored = good.clone();
    underscored["client_ref"] = json!("k-3");
    underscored["lines"][0]["unit_amount"] = json!("1_000");
    let mut huge = good.clone();
    huge["client_ref"] = json!("k-4");
    huge["lines"][0]["unit_amount"] = json!("999999999999");
    huge["lines"][0]["quantity"] = json!(1_000_000);
    let answer = device
        .push("invoices", &p.access, json!([underscored, huge, good]))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    let items = answer.json["items"].as_array().unwrap();
    assert_eq!(
        items[0]["problems"][0]["path"],
        "invoices[0].lines[0].unit_amount"
    );
    assert_eq!(items[0]["problems"][0]["code"], "invalid");
    assert_eq!(items[1]["problems"][0]["path"], "invoices[1].lines[0]");
    assert_eq!(items[1]["problems"][0]["code"], "out_of_range");
    assert_eq!(items[2]["outcome"], "accepted", "the good one is kept");

    // Mappings take no unknown key either.
    let m = device
        .call(
            Method::PUT,
            "/v1/mappings",
            &p.access,
            Some(json!({"categories": {}, "tenders": {}, "over_short_acount": "408"})),
        )
        .await;
    assert_eq!(m.status, 400, "{}", m.text);
    assert!(m.json["message"]
        .as_str()
        .unwrap()
        .contains("over_short_acount"));
}

#[tokio::test]
async fn a_device_name_that_could_read_as_something_else_is_refused() {
    let world = World::start().await;
    // "Front counter" with a right-to-left override in it.
    let device = world.device("Front \u{202E}retnuoc");
    let started = device.start().await;
    assert_eq!(started.status, 400, "{}", started.text);
    assert_eq!(started.code(), "invalid_request");
    assert!(started.text.contains("U+202E"), "{}", started.text);
    let plain = world.device("Front counter — till 2");
    assert_eq!(plain.start().await.status, 200);
}

#[tokio::test]
async fn protocol_details_follow_the_standards() {
    let mut s = settings();
    s.pairing.max_pairings_per_address = 2;
    let world = World::start_with(s).await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    // RFC 7235: the scheme is case-insensitive.
    let shouted = Answer::read(
        reqwest::Client::new()
            .get(format!("{}/v1/device", world.proxy_url))
            .header("authorization", format!("BEARER {}", p.access))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shouted.status, 200, "{}", shouted.text);
    // The second pairing of this address is fine; the third is over the limit: 429 with
    // Retry-After, in the OAuth shape.
    let another = world.device("Another");
    let second = another.start().await;
    assert_eq!(second.status, 200, "{}", second.text);
    let over = world.device("Third").start().await;
    assert_eq!(over.status, 429, "{}", over.text);
    assert_eq!(over.json["error"], "rate_limited");
    assert!(over.headers.contains_key("retry-after"));
    // Polling too fast stays RFC 8628's `slow_down` (400).
    let code = second.json["device_code"].as_str().unwrap();
    assert_eq!(another.poll(code).await.code(), "authorization_pending");
    let fast = another.poll(code).await;
    assert_eq!((fast.status.as_u16(), fast.code()), (400, "slow_down"));

    // The pages say what they may load: their own style (by its hash), no script, forms to the
    // proxy and on to Xero, no framing.
    let page = world
        .browser()
        .get(&format!("{}/pair", world.proxy_url))
        .await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    let style = page
        .text
        .split("<style>")
        .nth(1)
        .and_then(|rest| rest.split("</style>").next())
        .unwrap();
    let hash = STANDARD.encode(Sha256::digest(style.as_bytes()));
    assert!(csp.contains(&format!("style-src 'sha256-{hash}'")), "{csp}");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(
        csp.contains(&format!(
            "form-action 'self' {}",
            origin(&world.sandbox_url)
        )),
        "{csp}"
    );
}
