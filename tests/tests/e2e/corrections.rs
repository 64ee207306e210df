//! Putting a mistake right through the device API: a document Xero refused is corrected under its
//! `client_ref` (the next version of the same document, its history kept), sent again unchanged
//! once the cause is gone, or discarded with a reason.

use crate::push::{invoice, paired_with_mappings};
use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// `refused-1`, which Xero refuses (an account code it does not have), settled as failed.
pub(crate) async fn a_refused_invoice(world: &World) -> (Device, Paired, Value) {
    let (device, p) = paired_with_mappings(world).await;
    let mut bad = invoice("refused-1", "Walk-in");
    bad["lines"][1]["account_code"] = json!("999");
    let pushed = device.push("invoices", &p.access, json!([bad])).await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    assert_eq!(docs[0]["state"], "failed", "{docs:?}");
    assert_eq!(docs[0]["version"], 1);
    (device, p, bad)
}

fn invoice_puts(requests: &[Value]) -> Vec<&Value> {
    requests
        .iter()
        .filter(|r| r["method"] == "PUT" && r["path"] == "/api.xro/2.0/Invoices")
        .collect()
}

#[tokio::test]
async fn a_refused_invoice_is_corrected_under_its_client_ref_and_reaches_xero_once_with_its_history(
) {
    let world = World::start().await;
    let since = world.last_seq().await;
    let (device, p, bad) = a_refused_invoice(&world).await;
    let first_key =
        invoice_puts(&world.sandbox_requests(since).await)[0]["headers"]["idempotency-key"].clone();

    // The same body again is a resend, not a correction: nothing changes.
    let again = device.push("invoices", &p.access, json!([bad])).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.json["items"][0]["duplicate"], true);
    assert_eq!(again.json["items"][0]["corrected"], false);
    assert_eq!(again.json["items"][0]["document"]["state"], "failed");

    let mut fixed = bad.clone();
    fixed["lines"][1]["account_code"] = json!("200");
    let since = world.last_seq().await;
    let corrected = device.push("invoices", &p.access, json!([fixed])).await;
    assert_eq!(corrected.status, 202, "{}", corrected.text);
    let item = &corrected.json["items"][0];
    assert_eq!(item["corrected"], true, "{item}");
    assert_eq!(item["duplicate"], false);
    assert_eq!(item["document"]["version"], 2);
    assert_eq!(item["document"]["state"], "queued");
    let id = item["document"]["id"].as_str().unwrap().to_string();

    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    assert_eq!(docs.len(), 1, "one document, not two: {docs:?}");
    assert_eq!(docs[0]["id"], id.as_str(), "the correction keeps the id");
    assert_eq!(docs[0]["state"], "sent", "{docs:?}");
    assert!(docs[0]["message"].is_null(), "the old refusal is gone");
    let puts = world.sandbox_requests(since).await;
    let puts = invoice_puts(&puts);
    assert_eq!(puts.len(), 1);
    assert_ne!(
        puts[0]["headers"]["idempotency-key"], first_key,
        "a correction goes under a key of its own: Xero would replay the refusal"
    );
    let in_xero = world.xero_get("Invoices").await;
    assert_eq!(in_xero["Invoices"].as_array().unwrap().len(), 1);

    let one = device
        .call(
            Method::GET,
            &format!("/v1/documents/{id}?history=true"),
            &p.access,
            None,
        )
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    let history = one.json["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{}", one.text);
    assert_eq!(history[0]["version"], 1);
    assert_eq!(history[0]["state"], "failed");
    assert_eq!(
        history[0]["message"],
        "Account code '999' is not a valid code for this document."
    );
    assert_eq!(history[0]["document"]["lines"][1]["account_code"], "999");
    let plain = device
        .call(Method::GET, &format!("/v1/documents/{id}"), &p.access, None)
        .await;
    assert!(plain.json.get("history").is_none(), "only when asked");

    // Now that it is in Xero, a different body under its client_ref is refused, saying why.
    let mut late = fixed.clone();
    late["lines"][0]["quantity"] = json!(3);
    let refused = device.push("invoices", &p.access, json!([late])).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    let problem = &refused.json["items"][0]["problems"][0];
    assert_eq!(problem["code"], "client_ref_in_use");
    assert_eq!(problem["path"], "invoices[0].client_ref");
    let message = problem["message"].as_str().unwrap();
    assert!(message.contains("already sent in Xero"), "{message}");
    // And so is a payment under an invoice's client_ref.
    let clash = device
        .push(
            "payments",
            &p.access,
            json!([{"client_ref": "refused-1", "invoice": {"client_ref": "refused-1"}, "amount": "1.00", "date": "2026-11-20", "tender": "card"}]),
        )
        .await;
    assert_eq!(clash.status, 422, "{}", clash.text);
    assert_eq!(
        clash.json["items"][0]["problems"][0]["code"],
        "client_ref_in_use"
    );
}

#[tokio::test]
async fn a_payment_refused_for_its_invoice_is_sent_again_once_the_invoice_is_corrected() {
    let world = World::start().await;
    let (device, p, bad) = a_refused_invoice(&world).await;
    let pay = device
        .push(
            "payments",
            &p.access,
            json!([{"client_ref": "pay-1", "invoice": {"client_ref": "refused-1"}, "amount": "13.55", "date": "2026-11-20", "tender": "card"}]),
        )
        .await;
    assert_eq!(pay.status, 202, "{}", pay.text);
    let docs = device.settle(&p.access, 2, Duration::from_secs(30)).await;
    let payment = docs.iter().find(|d| d["client_ref"] == "pay-1").unwrap();
    assert_eq!(payment["state"], "failed", "{payment}");
    let message = payment["message"].as_str().unwrap();
    assert!(message.contains("correct the invoice"), "{message}");
    assert!(!message.contains("/v1/"), "no HTTP paths: {message}");
    let payment_id = payment["id"].as_str().unwrap().to_string();

    // Sending it again before the invoice is right fails it again, with the same reason.
    let mut fixed = bad.clone();
    fixed["lines"][1]["account_code"] = json!("200");
    let corrected = device.push("invoices", &p.access, json!([fixed])).await;
    assert_eq!(corrected.json["items"][0]["corrected"], true);
    device.settle(&p.access, 2, Duration::from_secs(30)).await;
    let retried = device
        .call(
            Method::POST,
            &format!("/v1/documents/{payment_id}/retry"),
            &p.access,
            None,
        )
        .await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.json["state"], "queued");
    assert!(retried.json["message"].is_null());
    let docs = device.settle(&p.access, 2, Duration::from_secs(30)).await;
    assert!(
        docs.iter().all(|d| d["state"] == "sent"),
        "the invoice and its payment are in Xero: {docs:?}"
    );
    let invoice_id = docs
        .iter()
        .find(|d| d["client_ref"] == "refused-1")
        .unwrap()["xero_id"]
        .as_str()
        .unwrap()
        .to_string();
    let inv = world.xero_get(&format!("Invoices/{invoice_id}")).await;
    assert_eq!(inv["Invoices"][0]["Status"], "PAID");
    let payments = world.xero_get("Payments").await;
    assert_eq!(payments["Payments"].as_array().unwrap().len(), 1);

    // A document in Xero is not sent again.
    let twice = device
        .call(
            Method::POST,
            &format!("/v1/documents/{payment_id}/retry"),
            &p.access,
            None,
        )
        .await;
    assert_eq!(twice.status, 409, "{}", twice.text);
    assert_eq!(twice.code(), "conflict");
    assert!(twice.text.contains("sent in Xero"), "{}", twice.text);
    let unknown = device
        .call(
            Method::POST,
            &format!("/v1/documents/{}/retry", uuid::Uuid::new_v4()),
            &p.access,
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn a_discarded_document_keeps_its_reason_and_is_never_sent() {
    let world = World::start().await;
    let (device, p, bad) = a_refused_invoice(&world).await;
    let id = device.settle(&p.access, 1, Duration::from_secs(30)).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/documents/{id}/discard");

    let blank = device
        .call(
            Method::POST,
            &path,
            &p.access,
            Some(json!({"reason": "  "})),
        )
        .await;
    assert_eq!(blank.status, 400, "{}", blank.text);
    assert!(blank.text.contains("reason"), "{}", blank.text);
    let missing = device
        .call(Method::POST, &path, &p.access, Some(json!({})))
        .await;
    assert_eq!(missing.status, 400, "{}", missing.text);

    let since = world.last_seq().await;
    let discarded = device
        .call(
            Method::POST,
            &path,
            &p.access,
            Some(json!({"reason": "Rung up twice; the customer paid once"})),
        )
        .await;
    assert_eq!(discarded.status, 200, "{}", discarded.text);
    assert_eq!(discarded.json["state"], "discarded");
    assert_eq!(
        discarded.json["discard_reason"],
        "Rung up twice; the customer paid once"
    );
    let listed = device
        .call(
            Method::GET,
            "/v1/documents?state=discarded",
            &p.access,
            None,
        )
        .await;
    assert_eq!(listed.json["documents"].as_array().unwrap().len(), 1);
    // The device hears of it on its event feed.
    let events = device
        .call(Method::GET, "/v1/events?after=0", &p.access, None)
        .await;
    let last = events.json["events"].as_array().unwrap().last().unwrap();
    assert_eq!(last["document"]["state"], "discarded", "{last}");

    // Settled: neither sent again, nor discarded again, nor corrected.
    let again = device
        .call(Method::POST, &path, &p.access, Some(json!({"reason": "x"})))
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    let retry = device
        .call(
            Method::POST,
            &format!("/v1/documents/{id}/retry"),
            &p.access,
            None,
        )
        .await;
    assert_eq!(retry.status, 409, "{}", retry.text);
    let mut changed = bad.clone();
    changed["lines"][1]["account_code"] = json!("200");
    let pushed = device.push("invoices", &p.access, json!([changed])).await;
    assert_eq!(pushed.status, 422, "{}", pushed.text);
    assert_eq!(
        pushed.json["items"][0]["problems"][0]["code"],
        "client_ref_in_use"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        invoice_puts(&world.sandbox_requests(since).await).is_empty(),
        "nothing discarded goes to Xero"
    );

    // A document in Xero cannot be discarded.
    let sent = device
        .push("invoices", &p.access, json!([invoice("fine-1", "Walk-in")]))
        .await;
    let sent_id = sent.json["items"][0]["document"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    device.settle(&p.access, 2, Duration::from_secs(30)).await;
    let refused = device
        .call(
            Method::POST,
            &format!("/v1/documents/{sent_id}/discard"),
            &p.access,
            Some(json!({"reason": "changed my mind"})),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(refused.text.contains("sent in Xero"), "{}", refused.text);
}
