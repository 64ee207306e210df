//! Refunds through the device API: a credit note to the customer, its credit allocated to the sale
//! it names while that sale still owes something, the rest paid back by tender; exactly once, even
//! when Xero's answer is lost past the replay window. Counted in the sandbox.

use crate::push::{invoice, paired_with_mappings};
use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

fn example(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{name}")),
        )
        .unwrap(),
    )
    .unwrap()
}

fn refund(client_ref: &str, sale: &str, refunds: Value) -> Value {
    json!({
        "client_ref": client_ref,
        "contact": {"name": "Walk-in"},
        "date": "2026-11-21",
        "tax_mode": "inclusive",
        "invoice": {"client_ref": sale},
        "lines": [{"description": "Flat white", "quantity": 2, "unit_amount": "4.80", "sales_category": "Drinks"}],
        "refunds": refunds,
    })
}

/// `POST /v1/credit-notes` with `{"credit_notes": items}`.
async fn push_refunds(device: &Device, token: &str, items: Value) -> Answer {
    device
        .call(
            Method::POST,
            "/v1/credit-notes",
            token,
            Some(json!({ "credit_notes": items })),
        )
        .await
}

async fn lose_next_answer(world: &World, path: &str) -> u64 {
    let lost =
        json!({"path_prefix": path, "method": "PUT", "drop": true, "phase": "after", "count": 1});
    assert_eq!(
        world.control(Method::POST, "/faults", lost).await.status,
        201
    );
    world.last_seq().await
}

#[tokio::test]
async fn a_refund_of_a_paid_sale_is_one_credit_note_and_one_refund_per_tender_even_past_a_lost_answer(
) {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    // The example sale, paid in full by the example payment.
    let sale = device
        .push("invoices", &p.access, json!([example("invoice.json")]))
        .await;
    assert_eq!(sale.status, 202, "{}", sale.text);
    let paid = device
        .push("payments", &p.access, json!([example("payment.json")]))
        .await;
    assert_eq!(paid.status, 202, "{}", paid.text);
    device.settle(&p.access, 2, Duration::from_secs(30)).await;

    // Two flat whites back (9.60): 5.00 in cash, 4.60 to the card. Xero makes the credit note but
    // its answer never arrives, and the proxy only looks again past the replay window.
    let since = lose_next_answer(&world, "/api.xro/2.0/CreditNotes").await;
    let mut back = refund(
        "till1-refund-1",
        "till1-2026-11-20-0042",
        json!([{"tender": "cash", "amount": "5.00"}, {"tender": "card", "amount": "4.60"}]),
    );
    back["contact"] = json!({"name": "Harbour Cafe"});
    let pushed = push_refunds(&device, &p.access, json!([back])).await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    assert_eq!(pushed.json["items"][0]["document"]["kind"], "credit_note");
    world
        .wait_for_lost_call(since, "/api.xro/2.0/CreditNotes")
        .await;
    world.advance(400).await;
    let docs = device.settle(&p.access, 3, Duration::from_secs(30)).await;
    let doc = docs
        .iter()
        .find(|d| d["client_ref"] == "till1-refund-1")
        .unwrap();
    assert_eq!(doc["state"], "sent", "{doc}");
    assert!(
        doc["xero_number"].as_str().unwrap().starts_with("CN-"),
        "Xero's number for the credit note: {doc}"
    );

    world.control(Method::DELETE, "/faults", json!({})).await;
    let notes = world.xero_get("CreditNotes").await;
    let notes = notes["CreditNotes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "one credit note, not two: {notes:?}");
    assert_eq!(notes[0]["Total"].to_string(), "9.60");
    assert_eq!(notes[0]["Status"], "PAID", "its credit all paid back");
    assert!(
        notes[0]["Allocations"].as_array().unwrap().is_empty(),
        "the sale was paid: nothing to allocate"
    );
    let payments = world.xero_get("Payments").await;
    let refunds: Vec<&Value> = payments["Payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["PaymentType"] == "ARCREDITPAYMENT")
        .collect();
    assert_eq!(refunds.len(), 2, "one refund per tender: {refunds:?}");
    let mut amounts: Vec<String> = refunds.iter().map(|p| p["Amount"].to_string()).collect();
    amounts.sort();
    assert_eq!(amounts, ["4.60", "5.00"]);
}

#[tokio::test]
async fn a_refund_naming_a_sale_that_still_owes_is_allocated_to_it() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let sale = device
        .push("invoices", &p.access, json!([invoice("sale-1", "Walk-in")]))
        .await;
    assert_eq!(sale.status, 202, "{}", sale.text);
    // 9.60 back: 2.00 in cash, the rest (7.60) comes off what the sale still owes (13.55).
    let pushed = push_refunds(
        &device,
        &p.access,
        json!([refund(
            "refund-1",
            "sale-1",
            json!([{"tender": "cash", "amount": "2.00"}])
        )]),
    )
    .await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let docs = device.settle(&p.access, 2, Duration::from_secs(30)).await;
    assert!(docs.iter().all(|d| d["state"] == "sent"), "{docs:?}");
    let sale_id = docs.iter().find(|d| d["client_ref"] == "sale-1").unwrap()["xero_id"]
        .as_str()
        .unwrap()
        .to_string();
    let inv = world.xero_get(&format!("Invoices/{sale_id}")).await;
    let inv = &inv["Invoices"][0];
    assert_eq!(inv["AmountCredited"].to_string(), "7.60");
    assert_eq!(inv["AmountDue"].to_string(), "5.95");
    let notes = world.xero_get("CreditNotes").await;
    assert_eq!(notes["CreditNotes"][0]["Status"], "PAID");

    // Refunds past the credit note's total are refused before anything is made.
    let too_much = push_refunds(
        &device,
        &p.access,
        json!([refund(
            "refund-2",
            "sale-1",
            json!([{"tender": "cash", "amount": "20.00"}])
        )]),
    )
    .await;
    assert_eq!(too_much.status, 202);
    let docs = device.settle(&p.access, 3, Duration::from_secs(30)).await;
    let refused = docs.iter().find(|d| d["client_ref"] == "refund-2").unwrap();
    assert_eq!(refused["state"], "failed");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("more than the credit note's total of 9.60"),
        "{refused}"
    );
    let notes = world.xero_get("CreditNotes").await;
    assert_eq!(notes["CreditNotes"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_till_refunds_with_the_cli_from_the_example_file() {
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let world = World::start_with(settings).await;
    let till = crate::cli::Cli::new();
    till.pair(&world).await;
    till.map_the_examples().await;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    for (kind, file) in [
        ("invoice", "invoice.json"),
        ("payment", "payment.json"),
        ("credit-note", "credit-note.json"),
    ] {
        let (code, lines, stderr) = till
            .exit(&["push", kind, &format!("{examples}/{file}")])
            .await;
        assert_eq!(code, 0, "{kind}: {lines:?} {stderr}");
        if kind == "credit-note" {
            assert_eq!(lines[0]["kind"], "credit_note");
            assert_eq!(lines[0]["totals"]["total"], "4.80", "{lines:?}");
        }
    }
    let (code, lines, _) = till.exit(&["sync", "--timeout", "60"]).await;
    assert_eq!(code, 0, "{lines:?}");
    let outbox = till.outbox(&[]).await;
    let payment = &outbox["till1-2026-11-20-0042-pay"];
    assert_eq!(payment["state"], "sent");
    let note = &outbox["till1-2026-11-21-0007-refund"];
    assert_eq!(note["kind"], "credit_note");
    assert_eq!(note["state"], "sent", "{note}");
    assert!(note["xero_number"].as_str().unwrap().starts_with("CN-"));
}
