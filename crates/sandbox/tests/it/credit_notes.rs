//! Credit notes as Xero keeps them: made and numbered, refused with Xero's messages, their credit
//! allocated to a customer's invoices and paid out as refunds, never past what is due or what is
//! left; and voiding, refused once money has moved. Every answer follows the official schemas.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::schemas::assert_fits;

const SPEC: &str = "xero_accounting.yaml";

/// An authorised sales invoice of 2 × 10.00 + 15% GST (23.00) to `contact`: its id.
async fn invoice_of_23(api: &Api<'_>, contact: &str) -> String {
    let made = api
        .put(
            "Invoices",
            json!({"Invoices": [invoice(contact, "2", "10.00")]}),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    made.body["Invoices"][0]["InvoiceID"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An authorised credit note of 1 × 10.00 + GST (11.50) to `contact`: its id.
async fn credit_of_11_50(api: &Api<'_>, contact: &str) -> String {
    let made = api
        .put(
            "CreditNotes",
            json!({"CreditNotes": [credit_note(contact, "1", "10.00")]}),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    made.body["CreditNotes"][0]["CreditNoteID"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_credit_note_is_made_numbered_totalled_and_read_back() {
    let env = start().await;
    let api = env.api(NZ).await;
    let made = api
        .put(
            "CreditNotes",
            json!({"CreditNotes": [credit_note("Harbour Cafe", "2", "4.35")]}),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    assert_fits(SPEC, "CreditNotes", &made.body);
    let c = &made.body["CreditNotes"][0];
    assert_eq!(c["Type"], "ACCRECCREDIT");
    assert_eq!(c["Status"], "AUTHORISED");
    assert_eq!(c["CreditNoteNumber"], "CN-0001");
    assert_eq!(dec(&c["Total"]), "10.01", "8.70 + 15% GST, per line");
    assert_eq!(dec(&c["RemainingCredit"]), "10.01");
    let id = c["CreditNoteID"].as_str().unwrap();
    let read = api.get(&format!("CreditNotes/{id}")).await;
    assert_eq!(read.status, 200);
    assert_fits(SPEC, "CreditNotes", &read.body);
    assert_eq!(read.body["CreditNotes"][0]["CreditNoteNumber"], "CN-0001");
    let by_number = api.get("CreditNotes/CN-0001").await;
    assert_eq!(by_number.body["CreditNotes"][0]["CreditNoteID"], id);
    let listed = api.get("CreditNotes?page=1").await;
    assert_fits(SPEC, "CreditNotes", &listed.body);
    assert_eq!(listed.body["CreditNotes"].as_array().unwrap().len(), 1);
    let second = credit_of_11_50(&api, "Harbour Cafe").await;
    let second = api.get(&format!("CreditNotes/{second}")).await;
    assert_eq!(second.body["CreditNotes"][0]["CreditNoteNumber"], "CN-0002");
}

#[tokio::test]
async fn a_credit_note_xero_would_refuse_is_refused_with_its_messages() {
    let env = start().await;
    let api = env.api(NZ).await;
    let mut untyped = credit_note("Harbour Cafe", "1", "10");
    untyped.as_object_mut().unwrap().remove("Type");
    let mut invoice_type = credit_note("Harbour Cafe", "1", "10");
    invoice_type["Type"] = json!("ACCREC");
    let negative = credit_note("Harbour Cafe", "-1", "10");
    let archived = credit_note("Old Supplies Ltd", "1", "10");
    let mut numbered = credit_note("Harbour Cafe", "1", "10");
    numbered["CreditNoteNumber"] = json!("RF-1");
    for (bad, message) in [
        (untyped, "Credit note Type must be specified"),
        (invoice_type, "Credit note Type 'ACCREC' is not valid"),
        (negative, "The credit note total cannot be negative"),
        (archived, "is archived and cannot be used on a transaction"),
    ] {
        let refused = api.put("CreditNotes", json!({"CreditNotes": [bad]})).await;
        assert_eq!(refused.status, 400, "{}", refused.text);
        assert_fits(SPEC, "Error", &refused.body);
        assert!(
            refused.messages().iter().any(|m| m.contains(message)),
            "{message}: {:?}",
            refused.messages()
        );
    }
    // Unique numbers; and with summarizeErrors=false the good one is made, the bad one says why.
    let first = api
        .put("CreditNotes", json!({"CreditNotes": [numbered.clone()]}))
        .await;
    assert_eq!(first.status, 200);
    let mixed = api
        .put(
            "CreditNotes?summarizeErrors=false",
            json!({"CreditNotes": [numbered, credit_note("Harbour Cafe", "1", "5")]}),
        )
        .await;
    assert_eq!(mixed.status, 200, "{}", mixed.text);
    assert_fits(SPEC, "CreditNotes", &mixed.body);
    let items = mixed.body["CreditNotes"].as_array().unwrap();
    assert_eq!(items[0]["StatusAttributeString"], "ERROR");
    assert_eq!(
        items[0]["ValidationErrors"][0]["Message"],
        "Credit Note # must be unique."
    );
    assert_eq!(items[1]["StatusAttributeString"], "OK");
}

#[tokio::test]
async fn credit_is_allocated_to_a_customers_invoice_but_never_past_what_is_due_or_left() {
    let env = start().await;
    let api = env.api(NZ).await;
    let invoice_id = invoice_of_23(&api, "Harbour Cafe").await;
    let note = credit_of_11_50(&api, "Harbour Cafe").await;
    let allocate = |amount: &str, invoice: &str| json!({"Allocations": [{"Invoice": {"InvoiceID": invoice}, "Amount": serde_json::from_str::<Value>(amount).unwrap(), "Date": "2026-11-21"}]});

    // More than is left on the credit note.
    let too_much = api
        .put(
            &format!("CreditNotes/{note}/Allocations"),
            allocate("12.00", &invoice_id),
        )
        .await;
    assert_eq!(too_much.status, 400, "{}", too_much.text);
    assert!(
        too_much
            .messages()
            .iter()
            .any(|m| m.contains("exceeds the remaining credit")),
        "{:?}",
        too_much.messages()
    );
    // Another customer's invoice.
    let other = invoice_of_23(&api, "Walk-in").await;
    let wrong = api
        .put(
            &format!("CreditNotes/{note}/Allocations"),
            allocate("1.00", &other),
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.messages().iter().any(|m| m.contains("same contact")));

    let applied = api
        .put(
            &format!("CreditNotes/{note}/Allocations"),
            allocate("10.00", &invoice_id),
        )
        .await;
    assert_eq!(applied.status, 200, "{}", applied.text);
    assert_fits(SPEC, "Allocations", &applied.body);
    assert_eq!(dec(&applied.body["Allocations"][0]["Amount"]), "10.00");
    let inv = api.get(&format!("Invoices/{invoice_id}")).await;
    assert_fits(SPEC, "Invoices", &inv.body);
    let inv = &inv.body["Invoices"][0];
    assert_eq!(dec(&inv["AmountDue"]), "13.00");
    assert_eq!(dec(&inv["AmountCredited"]), "10.00");
    assert_eq!(inv["CreditNotes"][0]["CreditNoteID"], note.as_str());
    let c = api.get(&format!("CreditNotes/{note}")).await;
    assert_eq!(dec(&c.body["CreditNotes"][0]["RemainingCredit"]), "1.50");

    // What is left of the credit covers part of a second invoice's 23.00; the credit note is
    // then used up (PAID) and takes no more.
    let invoice_2 = invoice_of_23(&api, "Harbour Cafe").await;
    let rest = api
        .put(
            &format!("CreditNotes/{note}/Allocations"),
            allocate("1.50", &invoice_2),
        )
        .await;
    assert_eq!(rest.status, 200, "{}", rest.text);
    let c = api.get(&format!("CreditNotes/{note}")).await;
    let c = &c.body["CreditNotes"][0];
    assert_eq!(c["Status"], "PAID");
    assert_eq!(dec(&c["RemainingCredit"]), "0.00");
    assert_eq!(c["Allocations"].as_array().unwrap().len(), 2);
    let more = api
        .put(
            &format!("CreditNotes/{note}/Allocations"),
            allocate("0.01", &invoice_2),
        )
        .await;
    assert_eq!(more.status, 400);

    // A credit larger than an invoice's amount due goes no further than it, and clears it.
    let small = api
        .put(
            "Invoices",
            json!({"Invoices": [invoice("Harbour Cafe", "1", "4.00")]}),
        )
        .await;
    let small_id = small.body["Invoices"][0]["InvoiceID"]
        .as_str()
        .unwrap()
        .to_string();
    let big = credit_of_11_50(&api, "Harbour Cafe").await;
    let past_due = api
        .put(
            &format!("CreditNotes/{big}/Allocations"),
            allocate("5.00", &small_id),
        )
        .await;
    assert_eq!(past_due.status, 400);
    assert!(past_due
        .messages()
        .iter()
        .any(|m| m.contains("exceeds the amount outstanding on the invoice")));
    let cleared = api
        .put(
            &format!("CreditNotes/{big}/Allocations"),
            allocate("4.60", &small_id),
        )
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    let small = api.get(&format!("Invoices/{small_id}")).await;
    assert_eq!(small.body["Invoices"][0]["Status"], "PAID");
    // A draft credit note has no credit to give yet.
    let mut draft = credit_note("Harbour Cafe", "1", "1");
    draft["Status"] = json!("DRAFT");
    let draft = api
        .put("CreditNotes", json!({"CreditNotes": [draft]}))
        .await;
    let draft_id = draft.body["CreditNotes"][0]["CreditNoteID"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = api
        .put(
            &format!("CreditNotes/{draft_id}/Allocations"),
            allocate("1.00", &invoice_2),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused
        .messages()
        .iter()
        .any(|m| m.contains("not of valid status")));
    let wrong_method = api
        .request(Method::GET, &format!("CreditNotes/{note}/Allocations"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
}

#[tokio::test]
async fn a_refund_is_paid_out_of_a_credit_note_up_to_its_remaining_credit() {
    let env = start().await;
    let api = env.api(NZ).await;
    let note = credit_of_11_50(&api, "Harbour Cafe").await;
    let refund = |amount: &str| json!({"Payments": [{"CreditNote": {"CreditNoteID": note}, "Account": {"Code": "090"}, "Date": "2026-11-21", "Amount": serde_json::from_str::<Value>(amount).unwrap(), "Reference": "Cash back"}]});
    let too_much = api.put("Payments", refund("11.51")).await;
    assert_eq!(too_much.status, 400);
    assert!(too_much
        .messages()
        .iter()
        .any(|m| m.contains("exceeds the remaining credit")));
    let cash = api.put("Payments", refund("5.00")).await;
    assert_eq!(cash.status, 200, "{}", cash.text);
    assert_fits(SPEC, "Payments", &cash.body);
    let p = &cash.body["Payments"][0];
    assert_eq!(p["PaymentType"], "ARCREDITPAYMENT");
    assert_eq!(p["CreditNote"]["CreditNoteID"], note.as_str());
    let card = api.put("Payments", refund("6.50")).await;
    assert_eq!(card.status, 200, "{}", card.text);
    let c = api.get(&format!("CreditNotes/{note}")).await;
    assert_fits(SPEC, "CreditNotes", &c.body);
    let c = &c.body["CreditNotes"][0];
    assert_eq!(c["Status"], "PAID");
    assert_eq!(c["Payments"].as_array().unwrap().len(), 2);
    assert_fits(SPEC, "Payments", &api.get("Payments").await.body);

    // Deleting a refund gives the credit back.
    let card_id = card.body["Payments"][0]["PaymentID"].as_str().unwrap();
    let deleted = api
        .post(&format!("Payments/{card_id}"), json!({"Status": "DELETED"}))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let c = api.get(&format!("CreditNotes/{note}")).await;
    assert_eq!(c.body["CreditNotes"][0]["Status"], "AUTHORISED");
    assert_eq!(dec(&c.body["CreditNotes"][0]["RemainingCredit"]), "6.50");
    // A payment names an invoice or a credit note, not both.
    let invoice_id = invoice_of_23(&api, "Harbour Cafe").await;
    let both = api
        .put(
            "Payments",
            json!({"CreditNote": {"CreditNoteID": note}, "Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"}, "Amount": 1}),
        )
        .await;
    assert_eq!(both.status, 400);
}

#[tokio::test]
async fn voiding_is_refused_once_money_has_moved() {
    let env = start().await;
    let api = env.api(NZ).await;
    let void = json!({"Invoices": [{"Status": "VOIDED"}]});
    let unpaid = invoice_of_23(&api, "Harbour Cafe").await;
    let voided = api.post(&format!("Invoices/{unpaid}"), void.clone()).await;
    assert_eq!(voided.status, 200, "{}", voided.text);
    assert_eq!(voided.body["Invoices"][0]["Status"], "VOIDED");
    assert_eq!(dec(&voided.body["Invoices"][0]["AmountDue"]), "0.00");

    let paid = invoice_of_23(&api, "Harbour Cafe").await;
    let payment = api
        .put(
            "Payments",
            json!({"Invoice": {"InvoiceID": paid}, "Account": {"Code": "090"}, "Amount": 5}),
        )
        .await;
    assert_eq!(payment.status, 200);
    let refused = api.post(&format!("Invoices/{paid}"), void.clone()).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        refused.messages(),
        ["This document cannot be edited as it has a payment or credit note allocated to it."]
    );

    let credited = invoice_of_23(&api, "Harbour Cafe").await;
    let note = credit_of_11_50(&api, "Harbour Cafe").await;
    let applied = api
        .put(
            &format!("CreditNotes/{note}/Allocations"),
            json!({"Allocations": [{"Invoice": {"InvoiceID": credited}, "Amount": 2}]}),
        )
        .await;
    assert_eq!(applied.status, 200);
    let refused = api
        .post(&format!("Invoices/{credited}"), void.clone())
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.messages()[0].contains("credit note allocated"));
    // The credit note itself: used, so it stays; an unused one is voided.
    let note_void = json!({"CreditNotes": [{"Status": "VOIDED"}]});
    let refused = api
        .post(&format!("CreditNotes/{note}"), note_void.clone())
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    let unused = credit_of_11_50(&api, "Harbour Cafe").await;
    let voided = api.post(&format!("CreditNotes/{unused}"), note_void).await;
    assert_eq!(voided.status, 200, "{}", voided.text);
    assert_fits(SPEC, "CreditNotes", &voided.body);
    assert_eq!(voided.body["CreditNotes"][0]["Status"], "VOIDED");
    assert_eq!(
        dec(&voided.body["CreditNotes"][0]["RemainingCredit"]),
        "0.00"
    );
}
