//! Webhooks reach a real receiver, signed as Xero signs them; failed deliveries are retried; the
//! intent-to-receive check reports what the receiver answered.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::common::*;
use ledgerlink_sandbox::settings::DEMO_WEBHOOK_KEY;

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Mode {
    /// As Xero asks: 200 for a good signature, 401 for a bad one.
    Honest,
    /// 500 for the first `n` deliveries, then honest.
    FailFirst(u32),
    /// 200 whatever the signature (a receiver that does not check).
    Careless,
}

struct Receiver {
    mode: Mode,
    seen: AtomicU32,
    events: mpsc::UnboundedSender<(Value, bool)>,
}

fn signature_ok(headers: &HeaderMap, body: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(DEMO_WEBHOOK_KEY.as_bytes()).unwrap();
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    headers
        .get("x-xero-signature")
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let good = signature_ok(&headers, &body);
    let n = r.seen.fetch_add(1, Ordering::SeqCst);
    let _ = r
        .events
        .send((serde_json::from_slice(&body).unwrap_or(Value::Null), good));
    match r.mode {
        Mode::FailFirst(k) if n < k => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Careless => StatusCode::OK,
        _ if good => StatusCode::OK,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// Starts a receiver on 127.0.0.1:0 and registers it as the app's webhook URL.
async fn receiver(env: &Env, mode: Mode) -> mpsc::UnboundedReceiver<(Value, bool)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(Receiver {
        mode,
        seen: AtomicU32::new(0),
        events: tx,
    });
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let a = env
        .control(
            Method::PUT,
            &format!("/apps/{CLIENT_ID}"),
            json!({"webhook_url": url}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    rx
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(Value, bool)>) -> (Value, bool) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a webhook arrives within 10 s")
        .expect("receiver alive")
}

#[tokio::test]
async fn invoice_and_contact_changes_arrive_signed_in_xeros_shape() {
    let env = start().await;
    let mut rx = receiver(&env, Mode::Honest).await;
    let api = env.api(NZ).await;
    let made = api
        .put(
            "Invoices",
            json!({"Invoices": [invoice("Webhook Customer", "1", "10")]}),
        )
        .await;
    let invoice_id = made.body["Invoices"][0]["InvoiceID"]
        .as_str()
        .unwrap()
        .to_string();
    let contact_id = made.body["Invoices"][0]["Contact"]["ContactID"]
        .as_str()
        .unwrap()
        .to_string();

    let (payload, good) = next(&mut rx).await;
    assert!(
        good,
        "x-xero-signature is base64 HMAC-SHA256 of the raw body"
    );
    crate::schemas::assert_webhook_fits(&payload);
    let events = payload["events"].as_array().unwrap();
    let find = |cat: &str| {
        events
            .iter()
            .find(|e| e["eventCategory"] == cat)
            .cloned()
            .unwrap()
    };
    let inv = find("INVOICE");
    assert_eq!(inv["eventType"], "CREATE");
    assert_eq!(inv["resourceId"], invoice_id);
    assert_eq!(inv["tenantId"], NZ.to_string());
    assert_eq!(inv["tenantType"], "ORGANISATION");
    assert!(inv["resourceUrl"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/api.xro/2.0/Invoices/{invoice_id}")));
    assert_eq!(find("CONTACT")["resourceId"], contact_id);
    assert_eq!(payload["firstEventSequence"], 1);
    assert_eq!(payload["lastEventSequence"], 2);
    assert!(payload["entropy"].as_str().unwrap().len() >= 10);

    // A customer pays in Xero: there is no payment event, the invoice is UPDATEd.
    let paid = env
        .control(
            Method::POST,
            &format!("/invoices/{invoice_id}/pay"),
            json!({}),
        )
        .await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    assert_eq!(paid.body["invoice"]["Status"], "PAID");
    let (payload, good) = next(&mut rx).await;
    assert!(good);
    assert_eq!(payload["events"][0]["eventType"], "UPDATE");
    assert_eq!(payload["events"][0]["resourceId"], invoice_id);
    assert_eq!(payload["firstEventSequence"], 3);
    let inv = api.get(&format!("Invoices/{invoice_id}")).await;
    assert_eq!(inv.body["Invoices"][0]["Status"], "PAID");
}

#[tokio::test]
async fn failed_deliveries_are_retried_until_the_receiver_takes_them() {
    let mut settings = settings();
    settings.webhooks.retry_initial_ms = 20;
    let env = start_with(settings).await;
    let mut rx = receiver(&env, Mode::FailFirst(2)).await;
    let api = env.api(NZ).await;
    let made = api.put("Contacts", json!({"Name": "Retry Me"})).await;
    let id = made.body["Contacts"][0]["ContactID"].clone();
    for _ in 0..3 {
        let (payload, good) = next(&mut rx).await;
        assert!(good);
        assert_eq!(
            payload["events"][0]["resourceId"], id,
            "every retry carries the same event"
        );
    }
    let deliveries = env
        .control(Method::GET, "/webhooks/deliveries", json!({}))
        .await;
    let attempts: Vec<(u64, Option<u64>, bool)> = deliveries.body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["attempt"].as_u64().unwrap(),
                d["status"].as_u64(),
                d["delivered"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (1, Some(500), false),
            (2, Some(500), false),
            (3, Some(200), true)
        ]
    );
}

#[tokio::test]
async fn intent_to_receive_checks_both_signatures() {
    let env = start().await;
    let no_url = env
        .control(Method::POST, "/webhooks/intent", json!({}))
        .await;
    assert_eq!(no_url.status, 400, "no webhook URL yet: {}", no_url.text);

    let _rx = receiver(&env, Mode::Honest).await;
    let ok = env
        .control(Method::POST, "/webhooks/intent", json!({}))
        .await;
    assert_eq!(
        ok.body,
        json!({"ok": true, "good_signature_status": 200, "bad_signature_status": 401})
    );

    let _rx = receiver(&env, Mode::Careless).await;
    let careless = env
        .control(Method::POST, "/webhooks/intent", json!({}))
        .await;
    assert_eq!(careless.body["ok"], false);
    assert_eq!(careless.body["bad_signature_status"], 200);
}
