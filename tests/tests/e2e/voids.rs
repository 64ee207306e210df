//! Voiding a sent invoice through the device API: queued like a push (`voiding`), then `voided` in
//! Xero; refused at once while a payment of the device names it; and settled from Xero's own state
//! when Xero was paid meanwhile.

use crate::push::{invoice, paired_with_mappings};
use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// Waits until the document leaves `voiding`; answers it.
async fn settled_void(device: &Device, token: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let doc = device
            .call(Method::GET, &format!("/v1/documents/{id}"), token, None)
            .await;
        if doc.json["state"] != "voiding" {
            return doc.json;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still voiding: {}",
            doc.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn void(device: &Device, token: &str, id: &str) -> Answer {
    device
        .call(
            Method::POST,
            &format!("/v1/documents/{id}/void"),
            token,
            None,
        )
        .await
}

#[tokio::test]
async fn a_sent_invoice_is_voided_in_xero_and_one_with_a_payment_is_refused_with_the_reason() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let pushed = device
        .push(
            "invoices",
            &p.access,
            json!([
                invoice("mistake-1", "Walk-in"),
                invoice("paid-1", "Walk-in")
            ]),
        )
        .await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let pay = json!([{"client_ref": "pay-1", "invoice": {"client_ref": "paid-1"}, "amount": "13.55", "date": "2026-11-20", "tender": "card"}]);
    assert_eq!(device.push("payments", &p.access, pay).await.status, 202);
    let docs = device.settle(&p.access, 3, Duration::from_secs(30)).await;
    let id_of = |r: &str| {
        docs.iter().find(|d| d["client_ref"] == r).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let asked = void(&device, &p.access, &id_of("mistake-1")).await;
    assert_eq!(asked.status, 200, "{}", asked.text);
    assert_eq!(asked.json["state"], "voiding");
    let done = settled_void(&device, &p.access, &id_of("mistake-1")).await;
    assert_eq!(done["state"], "voided", "{done}");
    let xero_id = done["xero_id"].as_str().unwrap();
    let inv = world.xero_get(&format!("Invoices/{xero_id}")).await;
    assert_eq!(inv["Invoices"][0]["Status"], "VOIDED");

    let refused = void(&device, &p.access, &id_of("paid-1")).await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.code(), "conflict");
    assert!(
        refused.text.contains("pay-1"),
        "names the payment: {}",
        refused.text
    );
    // Nor a payment, nor a voided invoice again.
    assert_eq!(void(&device, &p.access, &id_of("pay-1")).await.status, 409);
    assert_eq!(
        void(&device, &p.access, &id_of("mistake-1")).await.status,
        409
    );
}

#[tokio::test]
async fn an_invoice_paid_in_xero_meanwhile_is_not_voided_and_says_so() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    device
        .push("invoices", &p.access, json!([invoice("inv-1", "Walk-in")]))
        .await;
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    let (id, xero_id) = (
        docs[0]["id"].as_str().unwrap().to_string(),
        docs[0]["xero_id"].as_str().unwrap().to_string(),
    );
    // The customer pays in Xero; this proxy has no webhooks, so it still thinks the invoice sent.
    let paid = world
        .control(Method::POST, &format!("/invoices/{xero_id}/pay"), json!({}))
        .await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    assert_eq!(void(&device, &p.access, &id).await.status, 200);
    let done = settled_void(&device, &p.access, &id).await;
    assert_eq!(done["state"], "paid", "{done}");
    assert!(
        done["message"]
            .as_str()
            .unwrap()
            .contains("cannot be voided"),
        "{done}"
    );
    let inv = world.xero_get(&format!("Invoices/{xero_id}")).await;
    assert_eq!(inv["Invoices"][0]["Status"], "PAID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_till_voids_with_the_cli_even_while_the_proxy_is_away() {
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let mut world = World::start_with(settings).await;
    let till = crate::cli::Cli::new();
    till.pair(&world).await;
    till.map_the_examples().await;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let file = |name: &str, client_ref: &str| {
        let mut inv: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{examples}/{name}")).unwrap())
                .unwrap();
        inv["client_ref"] = json!(client_ref);
        let path = till.dir.join(format!("{client_ref}.json"));
        std::fs::write(&path, inv.to_string()).unwrap();
        path.to_str().unwrap().to_string()
    };
    for r in ["oops-1", "oops-2"] {
        till.ok(&["push", "invoice", &file("invoice.json", r)])
            .await;
    }
    till.ok(&["push", "invoice", &format!("{examples}/invoice.json")])
        .await;
    till.ok(&["push", "payment", &format!("{examples}/payment.json")])
        .await;
    assert_eq!(till.exit(&["sync", "--timeout", "60"]).await.0, 0);

    // Destructive: not without a terminal and without --yes.
    assert_eq!(till.exit(&["void", "oops-1"]).await.0, 2);
    let asked = till.ok(&["void", "oops-1", "--yes"]).await;
    assert_eq!(asked["event"], "voiding");
    assert_eq!(till.exit(&["sync", "--timeout", "60"]).await.0, 0);
    let outbox = till.outbox(&[]).await;
    assert_eq!(
        outbox["oops-1"]["state"], "voided",
        "{:?}",
        outbox["oops-1"]
    );

    // A paid sale is refused at once, with the reason.
    let (code, lines, _) = till.exit(&["void", "till1-2026-11-20-0042", "--yes"]).await;
    assert_eq!(code, 1, "{lines:?}");
    let err = lines.last().unwrap();
    assert_eq!(err["code"], "conflict");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("till1-2026-11-20-0042-pay"),
        "{err}"
    );
    assert_eq!(
        till.outbox(&[]).await["till1-2026-11-20-0042"]["state"],
        "sent"
    );

    // Offline: asked for here, sent once the proxy is back.
    world.stop_proxy().await;
    let asked = till.ok(&["void", "oops-2", "--yes"]).await;
    assert_eq!(asked["document"]["state"], "voiding");
    world.start_proxy().await;
    assert_eq!(till.exit(&["sync", "--timeout", "60"]).await.0, 0);
    assert_eq!(
        till.outbox(&["--offline"]).await["oops-2"]["state"],
        "voided"
    );
}
