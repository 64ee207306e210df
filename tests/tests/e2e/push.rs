//! Pushing documents through a paired device: accepted into the outbox, delivered to the sandbox in
//! bundles, states and Xero's numbers (or Xero's own messages) coming back.

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

pub(crate) async fn paired_with_mappings(world: &World) -> (Device, Paired) {
    let device = world.device("Till 1");
    let p = world.pair(&device, &[NZ], None).await;
    let m = device
        .call(
            Method::PUT,
            "/v1/mappings",
            &p.access,
            Some(json!({
                "categories": {"Food": {"account_code": "200", "tax_type": "OUTPUT2"}, "Drinks": {"account_code": "260", "tax_type": "OUTPUT2"}},
                "tenders": {"cash": {"account_code": "092"}, "card": {"account_code": "615"}, "voucher": {"account_code": "091"}},
                "over_short_account": "408",
            })),
        )
        .await;
    assert_eq!(m.status, 200, "{}", m.text);
    (device, p)
}

pub(crate) fn invoice(client_ref: &str, contact: &str) -> Value {
    json!({
        "client_ref": client_ref,
        "contact": {"name": contact},
        "date": "2026-11-20",
        "tax_mode": "inclusive",
        "lines": [
            {"description": "Flat white", "quantity": 2, "unit_amount": "4.80", "sales_category": "Drinks"},
            {"description": "Muffin", "quantity": 1, "unit_amount": 3.95, "account_code": "200", "tax_type": "OUTPUT2"}
        ]
    })
}

fn sandbox_invoice_puts(requests: &[Value]) -> usize {
    requests
        .iter()
        .filter(|r| r["method"] == "PUT" && r["path"] == "/api.xro/2.0/Invoices")
        .count()
}

#[tokio::test]
async fn a_120_invoice_batch_arrives_as_3_calls_with_xeros_totals_and_a_resend_makes_nothing() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let batch: Vec<Value> = (0..120)
        .map(|i| {
            invoice(
                &format!("till1-{i:04}"),
                if i % 2 == 0 {
                    "Walk-in"
                } else {
                    "Harbour Cafe"
                },
            )
        })
        .collect();
    let since = world.last_seq().await;
    let pushed = device.push("invoices", &p.access, batch.clone()).await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    assert_eq!(pushed.json["accepted"], 120);
    let docs = device.settle(&p.access, 120, Duration::from_secs(30)).await;
    assert!(
        docs.iter().all(|d| d["state"] == "sent"
            && d["xero_number"]
                .as_str()
                .is_some_and(|n| n.starts_with("INV-"))),
        "{docs:?}"
    );
    let requests = world.sandbox_requests(since).await;
    assert_eq!(
        sandbox_invoice_puts(&requests),
        3,
        "120 invoices in bundles of 50"
    );
    assert!(requests.iter().all(|r| r["method"] != "PUT"
        || r["query"]
            .as_str()
            .unwrap_or_default()
            .contains("summarizeErrors=false")));
    assert!(requests
        .iter()
        .filter(|r| r["path"] == "/api.xro/2.0/Invoices")
        .all(|r| r["headers"]["idempotency-key"].is_string()));

    // Xero's totals: 2 × 4.80 + 3.95 = 13.55 inclusive of 15% GST (1.25 + 0.52 per line rule = 1.77).
    let xero_id = docs[0]["xero_id"].as_str().unwrap();
    let inv = world.xero_get(&format!("Invoices/{xero_id}")).await;
    let inv = &inv["Invoices"][0];
    assert_eq!(inv["Total"].to_string(), "13.55");
    assert_eq!(inv["TotalTax"].to_string(), "1.77");
    assert_eq!(
        inv["LineItems"][0]["AccountCode"], "260",
        "the category's mapped account"
    );
    // Contacts were found or made once each, not per invoice.
    let contact_puts = requests
        .iter()
        .filter(|r| r["method"] == "PUT" && r["path"] == "/api.xro/2.0/Contacts")
        .count();
    assert_eq!(contact_puts, 2);

    let since = world.last_seq().await;
    let again = device.push("invoices", &p.access, batch).await;
    assert_eq!(again.status, 202);
    assert!(again.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["duplicate"] == true));
    tokio::time::sleep(Duration::from_millis(1500)).await; // give the engine a chance to misbehave
    assert_eq!(
        sandbox_invoice_puts(&world.sandbox_requests(since).await),
        0,
        "a resend creates nothing"
    );
}

#[tokio::test]
async fn a_mixed_batch_keeps_the_good_documents_and_lists_every_problem() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let mut bad = invoice("bad-1", "X");
    bad["lines"][0]["unit_amount"] = json!("four");
    bad["lines"][1]["sales_category"] = json!("Tobacco");
    let answer = device
        .push(
            "invoices",
            &p.access,
            json!([invoice("good-1", "Y"), bad, invoice("good-1", "Y")]),
        )
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert_eq!(
        (
            answer.json["accepted"].as_u64(),
            answer.json["rejected"].as_u64()
        ),
        (Some(1), Some(2))
    );
    let items = answer.json["items"].as_array().unwrap();
    let problems: Vec<(String, String)> = items[1]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().into(),
                p["code"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        problems.contains(&("invoices[1].lines[0].unit_amount".into(), "invalid".into())),
        "{problems:?}"
    );
    assert!(
        problems.contains(&("invoices[1].lines[1].account_code".into(), "invalid".into()))
            || problems
                .iter()
                .any(|(p, c)| p.starts_with("invoices[1].lines[1]") && c == "invalid"),
        "{problems:?}"
    );
    assert_eq!(items[2]["problems"][0]["code"], "duplicate_in_batch");
    let unmapped = device
        .push("invoices", &p.access, json!([{
            "client_ref": "u-1", "contact": {"name": "Z"}, "date": "2026-11-20",
            "lines": [{"description": "Cigars", "quantity": 1, "unit_amount": 20, "sales_category": "Tobacco"}]}]))
        .await;
    assert_eq!(unmapped.json["items"][0]["problems"][0]["code"], "unmapped");
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["client_ref"], "good-1");
}

#[tokio::test]
async fn a_document_xero_refuses_carries_xeros_own_message() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let mut inv = invoice("refused-1", "Walk-in");
    inv["lines"][1]["account_code"] = json!("999");
    let answer = device
        .push(
            "invoices",
            &p.access,
            json!([inv, invoice("fine-1", "Walk-in")]),
        )
        .await;
    assert_eq!(answer.status, 202);
    let docs = device.settle(&p.access, 2, Duration::from_secs(30)).await;
    let refused = docs
        .iter()
        .find(|d| d["client_ref"] == "refused-1")
        .unwrap();
    assert_eq!(refused["state"], "failed");
    assert_eq!(
        refused["message"],
        "Account code '999' is not a valid code for this document."
    );
    assert_eq!(
        docs.iter().find(|d| d["client_ref"] == "fine-1").unwrap()["state"],
        "sent"
    );
}

#[tokio::test]
async fn a_payment_waits_for_its_invoice_and_pays_it() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let pay = json!({"payments": [{"client_ref": "pay-1", "invoice": {"client_ref": "inv-1"}, "amount": "13.55", "date": "2026-11-20", "tender": "card"}]});
    let inv = json!({"invoices": [invoice("inv-1", "Walk-in")]});
    // Both arrive together; the payment can only go once the invoice has Xero's id.
    let (a, b) = tokio::join!(
        device.call(Method::POST, "/v1/payments", &p.access, Some(pay)),
        device.call(Method::POST, "/v1/invoices", &p.access, Some(inv))
    );
    assert_eq!(
        (a.status.as_u16(), b.status.as_u16()),
        (202, 202),
        "{} {}",
        a.text,
        b.text
    );
    let docs = device.settle(&p.access, 2, Duration::from_secs(30)).await;
    assert!(docs.iter().all(|d| d["state"] == "sent"), "{docs:?}");
    let invoice_id = docs.iter().find(|d| d["client_ref"] == "inv-1").unwrap()["xero_id"]
        .as_str()
        .unwrap()
        .to_string();
    let shared = world.sandbox.shared().clone();
    let world_lock = shared.world();
    let tenant = world_lock.tenant(NZ).unwrap();
    let xero_invoice = tenant.invoice(invoice_id.parse().unwrap()).unwrap();
    assert_eq!(xero_invoice.status, "PAID");
}

#[tokio::test]
async fn a_shift_with_three_tenders_and_a_cash_shortfall_balances_to_the_cent() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let shift = json!({"shifts": [{
        "client_ref": "shift-2026-11-20-r1",
        "register": "Register 1",
        "opened_at": "2026-11-20T08:00:00Z",
        "closed_at": "2026-11-20T16:30:00Z",
        "tax_mode": "inclusive",
        "sales": [{"category": "Food", "amount": "100.00"}, {"category": "Drinks", "amount": "50.55"}],
        "refunds": [{"category": "Food", "amount": "10.00"}],
        "tenders": [{"tender": "cash", "amount": "40.00"}, {"tender": "card", "amount": "80.55"}, {"tender": "voucher", "amount": "20.00"}],
        "counted_cash": "38.50"
    }]});
    let answer = device
        .call(Method::POST, "/v1/shifts", &p.access, Some(shift))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    assert_eq!(docs[0]["state"], "sent", "{docs:?}");
    let id: uuid::Uuid = docs[0]["xero_id"].as_str().unwrap().parse().unwrap();
    let shared = world.sandbox.shared().clone();
    let sandbox = shared.world();
    let inv = sandbox.tenant(NZ).unwrap().invoice(id).unwrap();
    // 100.00 + 50.55 - 10.00 - 1.50 short = 139.05; paid by 38.50 counted cash + 80.55 + 20.00.
    assert_eq!(inv.total.to_string(), "139.05");
    assert_eq!(inv.status, "PAID");
    assert!(inv.amount_due.is_zero());
    assert_eq!(inv.payment_ids.len(), 3);
    assert!(inv.reference.as_deref().unwrap().contains("Register 1"));
    let short = inv
        .lines
        .iter()
        .find(|l| l.account_code.as_deref() == Some("408"))
        .unwrap();
    assert_eq!(
        (
            short.line_amount.normalize().to_string(),
            short.tax_amount.is_zero()
        ),
        ("-1.5".to_string(), true)
    );
}

#[tokio::test]
async fn a_customer_payment_in_xero_reaches_the_device_as_an_event() {
    let world = World::start_with_webhooks(settings()).await;

    let (device, p) = paired_with_mappings(&world).await;
    device
        .push(
            "invoices",
            &p.access,
            json!([invoice("to-be-paid", "Walk-in")]),
        )
        .await;
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    let xero_id = docs[0]["xero_id"].as_str().unwrap().to_string();

    // The feed so far: queued, sending, sent, in order.
    let feed = device
        .call(Method::GET, "/v1/events?after=0", &p.access, None)
        .await;
    let states: Vec<&str> = feed.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["document"]["state"].as_str())
        .collect();
    assert_eq!(states, ["queued", "sending", "sent"]);
    let cursor = feed.json["next"].as_i64().unwrap();

    let paid = world
        .control(Method::POST, &format!("/invoices/{xero_id}/pay"), json!({}))
        .await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    // Long-poll from the cursor: the paid event arrives without polling in a loop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut cursor = cursor;
    loop {
        let next = device
            .call(
                Method::GET,
                &format!("/v1/events?after={cursor}&wait=10"),
                &p.access,
                None,
            )
            .await;
        let events = next.json["events"].as_array().cloned().unwrap_or_default();
        if events.iter().any(|e| e["document"]["state"] == "paid") {
            break;
        }
        cursor = next.json["next"].as_i64().unwrap();
        assert!(
            tokio::time::Instant::now() < deadline,
            "no paid event within 20 s"
        );
    }
    let doc = device
        .call(
            Method::GET,
            &format!("/v1/documents/{}", docs[0]["id"].as_str().unwrap()),
            &p.access,
            None,
        )
        .await;
    assert_eq!(doc.json["state"], "paid");
}

#[tokio::test]
async fn events_stream_as_server_sent_events_from_a_cursor() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    device
        .push("invoices", &p.access, json!([invoice("sse-1", "Walk-in")]))
        .await;
    let mut response = reqwest::Client::new()
        .get(format!("{}/v1/events?after=0", world.proxy_url))
        .bearer_auth(&p.access)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains("\"state\":\"sent\"") {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("the sent event streams within 20 s")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        text.contains("event: ledgerlink") && text.contains("id: 1"),
        "{text}"
    );
    let queued = text.find("\"state\":\"queued\"").unwrap();
    let sent = text.find("\"state\":\"sent\"").unwrap();
    assert!(queued < sent, "in order");
}

fn example(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_examples_push_as_they_are_and_the_openapi_document_describes_them() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    for (path, key, file) in [
        ("/v1/invoices", "invoices", "invoice.json"),
        ("/v1/payments", "payments", "payment.json"),
        ("/v1/shifts", "shifts", "shift.json"),
    ] {
        let a = device
            .call(
                Method::POST,
                path,
                &p.access,
                Some(json!({ key: [example(file)] })),
            )
            .await;
        assert_eq!(a.status, 202, "{file}: {}", a.text);
    }
    let docs = device.settle(&p.access, 3, Duration::from_secs(30)).await;
    assert!(docs.iter().all(|d| d["state"] == "sent"), "{docs:?}");

    let spec = reqwest::get(format!("{}/v1/openapi.json", world.proxy_url))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    for path in [
        "/v1/pairings",
        "/v1/pairings/token",
        "/v1/connection",
        "/v1/invoices",
        "/v1/payments",
        "/v1/shifts",
        "/v1/documents/{id}",
        "/v1/events",
        "/v1/mappings",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "the OpenAPI document lacks {path}"
        );
    }
    let invoice = &spec["components"]["schemas"]["Invoice"];
    // Every field of the example is a property of the schema.
    for field in example("invoice.json").as_object().unwrap().keys() {
        assert!(
            invoice["properties"][field].is_object(),
            "Invoice schema lacks {field}"
        );
    }
    assert_eq!(
        spec["components"]["schemas"]["InvoiceLine"]["properties"]["unit_amount"]["$ref"],
        "#/components/schemas/PlainDecimal"
    );
    let plain = &spec["components"]["schemas"]["PlainDecimal"]["oneOf"];
    assert_eq!(plain[0]["type"], "string", "money is written as a string");
    assert_eq!(plain[0]["pattern"], r"^-?[0-9]+(\.[0-9]+)?$");
}

#[tokio::test]
async fn shifts_with_nothing_taken_or_more_refunded_than_sold_get_clear_answers() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let shift = |client_ref: &str, sales: &str, refunds: &str, cash: &str| {
        json!({"client_ref": client_ref, "register": "Register 2", "opened_at": "2026-11-20T08:00:00Z", "closed_at": "2026-11-20T09:00:00Z",
            "sales": [{"category": "Food", "amount": sales}], "refunds": [{"category": "Food", "amount": refunds}],
            "tenders": [{"tender": "cash", "amount": cash}], "counted_cash": cash})
    };
    let negative = device
        .push(
            "shifts",
            &p.access,
            json!([shift("neg", "5.00", "12.00", "0")]),
        )
        .await;
    assert_eq!(negative.status, 422);
    assert_eq!(
        negative.json["items"][0]["problems"][0]["code"],
        "negative_shift"
    );
    let zero = device
        .push("shifts", &p.access, json!([shift("zero", "0", "0", "0")]))
        .await;
    assert_eq!(zero.status, 202);
    // Awkward cents: 33.33 + 0.01 refunded, paid 33.32 in cash, all inclusive of GST.
    let cents = device
        .push(
            "shifts",
            &p.access,
            json!([shift("cents", "33.33", "0.01", "33.32")]),
        )
        .await;
    assert_eq!(cents.status, 202);
    let docs = device.settle(&p.access, 2, Duration::from_secs(30)).await;
    let by_ref = |r: &str| docs.iter().find(|d| d["client_ref"] == r).unwrap().clone();
    assert_eq!(by_ref("zero")["state"], "sent");
    assert!(by_ref("zero")["message"]
        .as_str()
        .unwrap()
        .contains("nothing to send"));
    let cents = by_ref("cents");
    assert_eq!(cents["state"], "sent", "{cents}");
    let shared = world.sandbox.shared().clone();
    let sandbox = shared.world();
    let inv = sandbox
        .tenant(NZ)
        .unwrap()
        .invoice(cents["xero_id"].as_str().unwrap().parse().unwrap())
        .unwrap();
    assert_eq!(
        (inv.total.to_string(), inv.status.as_str()),
        ("33.32".to_string(), "PAID")
    );
}

#[tokio::test]
async fn existing_contacts_are_found_by_number_and_offers_are_cached() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let since = world.last_seq().await;
    let mut inv = invoice("ridge-1", "Ridgeway Uni (typed differently)");
    inv["contact"]["contact_number"] = json!("RIDGE-01");
    device.push("invoices", &p.access, json!([inv])).await;
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    let requests = world.sandbox_requests(since).await;
    assert!(
        !requests
            .iter()
            .any(|r| r["method"] == "PUT" && r["path"] == "/api.xro/2.0/Contacts"),
        "the seeded contact was found, not made"
    );
    {
        let shared = world.sandbox.shared().clone();
        let sandbox = shared.world();
        let tenant = sandbox.tenant(NZ).unwrap();
        let inv = tenant
            .invoice(docs[0]["xero_id"].as_str().unwrap().parse().unwrap())
            .unwrap();
        assert_eq!(
            tenant.contact(inv.contact_id).unwrap().name,
            "Ridgeway University"
        );
    }

    let reads = |rs: &[Value]| {
        rs.iter()
            .filter(|r| {
                r["method"] == "GET"
                    && (r["path"] == "/api.xro/2.0/Accounts"
                        || r["path"] == "/api.xro/2.0/TaxRates")
            })
            .count()
    };
    let since = world.last_seq().await;
    for _ in 0..3 {
        let m = device
            .call(Method::GET, "/v1/mappings", &p.access, None)
            .await;
        assert_eq!(m.status, 200);
        assert!(m.json["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["code"] == "200"));
        assert!(
            !m.json["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["code"] == "201"),
            "archived accounts are not offered"
        );
    }
    assert_eq!(
        reads(&world.sandbox_requests(since).await),
        0,
        "the PUT just before filled the cache"
    );
    device
        .call(Method::GET, "/v1/mappings?refresh=true", &p.access, None)
        .await;
    assert_eq!(reads(&world.sandbox_requests(since).await), 2);
}

#[tokio::test]
async fn a_tax_exclusive_shift_still_balances_when_xero_rounds_per_line() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    // Net 0.10 of food and 0.10 of drinks: Xero taxes each line (0.015 → 0.02), 0.24 in all; the till
    // taxed the sale as a whole and took 0.23 by card.
    let shift = json!({"shifts": [{
        "client_ref": "excl-1", "register": "Register 3", "opened_at": "2026-11-20T08:00:00Z", "closed_at": "2026-11-20T09:00:00Z",
        "tax_mode": "exclusive",
        "sales": [{"category": "Food", "amount": "0.10"}, {"category": "Drinks", "amount": "0.10"}],
        "tenders": [{"tender": "card", "amount": "0.23"}],
        "counted_cash": "0"
    }]});
    let a = device
        .call(Method::POST, "/v1/shifts", &p.access, Some(shift))
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    assert_eq!(docs[0]["state"], "sent", "{docs:?}");
    let shared = world.sandbox.shared().clone();
    let sandbox = shared.world();
    let inv = sandbox
        .tenant(NZ)
        .unwrap()
        .invoice(docs[0]["xero_id"].as_str().unwrap().parse().unwrap())
        .unwrap();
    assert_eq!(
        (inv.total.to_string(), inv.status.as_str()),
        ("0.23".to_string(), "PAID"),
        "the cent of rounding went to over/short"
    );
}

#[tokio::test]
async fn clashing_client_refs_and_repeated_tenders_are_refused() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    device
        .push(
            "invoices",
            &p.access,
            json!([invoice("till-0001", "Walk-in")]),
        )
        .await;
    let clash = device
        .push("payments", &p.access, json!([{"client_ref": "till-0001", "invoice": {"client_ref": "till-0001"}, "amount": "1.00", "date": "2026-11-20", "tender": "card"}]))
        .await;
    assert_eq!(clash.status, 422, "{}", clash.text);
    assert!(clash.json["items"][0]["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("already the client_ref of a invoice"));
    let twice = device
        .push("shifts", &p.access, json!([{"client_ref": "s-1", "register": "R", "opened_at": "2026-11-20T08:00:00Z", "closed_at": "2026-11-20T09:00:00Z",
            "sales": [{"category": "Food", "amount": "80"}], "tenders": [{"tender": "cash", "amount": "50"}, {"tender": "Cash", "amount": "30"}], "counted_cash": "80"}]))
        .await;
    assert_eq!(twice.status, 422);
    assert!(twice.json["items"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["message"].as_str().unwrap().contains("appears twice")));
    let cents = device
        .push("payments", &p.access, json!([{"client_ref": "p-2", "invoice": {"client_ref": "till-0001"}, "amount": "1.005", "date": "2026-11-20", "tender": "card"}]))
        .await;
    assert!(cents.json["items"][0]["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("2 decimal places"));
}

#[tokio::test]
async fn a_negative_quantity_is_refused_at_intake_with_the_advice_to_refund_and_a_discount_is_not()
{
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let mut give_back = invoice("minus-1", "Walk-in");
    give_back["lines"][0]["quantity"] = json!("-2");
    let mut discounted = invoice("discount-1", "Walk-in");
    discounted["lines"]
        .as_array_mut()
        .unwrap()
        .push(json!({"description": "Loyalty discount", "quantity": 1, "unit_amount": "-1.00", "sales_category": "Drinks"}));
    let since = world.last_seq().await;
    let answer = device
        .push("invoices", &p.access, json!([give_back, discounted]))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    let refused = &answer.json["items"][0];
    assert_eq!(refused["outcome"], "rejected");
    assert_eq!(
        refused["problems"][0]["path"],
        "invoices[0].lines[0].quantity"
    );
    assert!(
        refused["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("record the refund instead"),
        "{refused}"
    );
    assert_eq!(answer.json["items"][1]["outcome"], "accepted");
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    assert_eq!(docs[0]["state"], "sent", "{docs:?}");
    // The refused one never went to Xero.
    assert_eq!(
        sandbox_invoice_puts(&world.sandbox_requests(since).await),
        1
    );
}

#[tokio::test]
async fn a_contact_removed_in_xero_after_it_was_cached_does_not_fail_the_next_invoice() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let first = device
        .push(
            "invoices",
            &p.access,
            json!([invoice("c-1", "Harbour Cafe")]),
        )
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    device.settle(&p.access, 1, Duration::from_secs(30)).await;
    let contacts = world
        .xero_get("Contacts?where=Name%3D%3D%22Harbour%20Cafe%22")
        .await;
    let old = contacts["Contacts"][0]["ContactID"]
        .as_str()
        .unwrap()
        .to_string();
    // The organisation loses the contact (a reset, a merge) while the proxy still has its id.
    let removed = world
        .control(
            Method::DELETE,
            &format!("/tenants/{NZ}/contacts/{old}"),
            json!({}),
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    let since = world.last_seq().await;
    let second = device
        .push(
            "invoices",
            &p.access,
            json!([invoice("c-2", "Harbour Cafe")]),
        )
        .await;
    assert_eq!(second.status, 202);
    let docs = device.settle(&p.access, 2, Duration::from_secs(30)).await;
    let doc = docs.iter().find(|d| d["client_ref"] == "c-2").unwrap();
    assert_eq!(doc["state"], "sent", "{doc}");
    let contacts = world
        .xero_get("Contacts?where=Name%3D%3D%22Harbour%20Cafe%22")
        .await;
    let new = contacts["Contacts"][0]["ContactID"].as_str().unwrap();
    assert_ne!(new, old, "made again by name");
    let inv = world
        .xero_get(&format!("Invoices/{}", doc["xero_id"].as_str().unwrap()))
        .await;
    assert_eq!(inv["Invoices"][0]["Contact"]["ContactID"], new);
    // Once: the refused call, then the lookup by name and the invoice again.
    assert_eq!(
        sandbox_invoice_puts(&world.sandbox_requests(since).await),
        2
    );
    // And a third invoice uses the contact cached anew, without a lookup.
    let since = world.last_seq().await;
    device
        .push(
            "invoices",
            &p.access,
            json!([invoice("c-3", "Harbour Cafe")]),
        )
        .await;
    device.settle(&p.access, 3, Duration::from_secs(30)).await;
    let lookups = world
        .sandbox_requests(since)
        .await
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"] == "/api.xro/2.0/Contacts")
        .count();
    assert_eq!(lookups, 0);
}

#[tokio::test]
async fn a_shift_closed_at_eight_in_the_morning_in_auckland_is_dated_that_day_in_xero() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    // 19:00 UTC on the 20th is 08:00 on the 21st in Auckland (NZDT, UTC+13).
    let shift = json!({
        "client_ref": "early-1", "register": "Register 1",
        "opened_at": "2026-11-20T18:00:00Z", "closed_at": "2026-11-20T19:00:00Z",
        "sales": [{"category": "Food", "amount": "10.00"}],
        "tenders": [{"tender": "card", "amount": "10.00"}],
        "counted_cash": "0",
    });
    let pushed = device.push("shifts", &p.access, json!([shift])).await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    assert!(
        docs[0]["state"] == "sent" || docs[0]["state"] == "paid",
        "{docs:?}"
    );
    let inv = world
        .xero_get(&format!(
            "Invoices/{}",
            docs[0]["xero_id"].as_str().unwrap()
        ))
        .await;
    // Xero's /Date(ms)/ of the invoice's day.
    let local_day = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let ms = local_day
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    assert_eq!(
        inv["Invoices"][0]["Date"],
        format!("/Date({ms}+0000)/"),
        "{}",
        inv["Invoices"][0]
    );
    // The device hears the organisation's zone and short code.
    let info = device
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(info.json["timezone"], "Pacific/Auckland", "{}", info.text);
    assert!(info.json["short_code"]
        .as_str()
        .is_some_and(|c| c.starts_with('!')));
    assert!(info.json.get("timezone_warning").is_none(), "{}", info.text);
}

#[tokio::test]
async fn an_organisation_in_a_time_zone_ledgerlink_cannot_map_is_dated_in_utc_and_says_so() {
    let world = World::start().await;
    let made = world
        .control(
            Method::POST,
            "/tenants",
            json!({"name": "Far Away Ltd", "country": "NZ", "timezone": "MARSSTANDARDTIME"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let tenant: uuid::Uuid = made.json["tenant_id"].as_str().unwrap().parse().unwrap();
    let device = world.device("Till");
    let p = world.pair(&device, &[tenant], None).await;
    assert_eq!(p.connection["timezone"], "UTC", "{}", p.connection);
    let warning = p.connection["timezone_warning"].as_str().unwrap();
    assert!(
        warning.contains("'MARSSTANDARDTIME'") && warning.contains("dated in UTC"),
        "{warning}"
    );
    // And the sandbox refuses what Xero could never send.
    let bad = world
        .control(
            Method::POST,
            "/tenants",
            json!({"name": "Bad", "country": "NZ", "timezone": "Pacific/Auckland"}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

#[tokio::test]
async fn a_shift_with_an_opening_float_pays_in_only_what_the_drawer_took() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    // 100.00 float; cash sales 40.00 and card 60.00; 139.00 counted: 1.00 short. The float stays in
    // the drawer: 39.00 of cash goes to the bank.
    let shift = json!({
        "client_ref": "float-1", "register": "Register 1",
        "opened_at": "2026-11-20T20:00:00Z", "closed_at": "2026-11-21T04:00:00Z",
        "tax_mode": "inclusive",
        "sales": [{"category": "Food", "amount": "100.00"}],
        "tenders": [{"tender": "cash", "amount": "40.00"}, {"tender": "card", "amount": "60.00"}],
        "opening_float": "100.00", "counted_cash": "139.00",
        "notes": "Till roll replaced at noon",
    });
    let pushed = device.push("shifts", &p.access, json!([shift])).await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    let xero_id = docs[0]["xero_id"].as_str().unwrap();
    let inv = world.xero_get(&format!("Invoices/{xero_id}")).await;
    let inv = &inv["Invoices"][0];
    assert_eq!(inv["Total"].to_string(), "99.00", "{inv}");
    let short = inv["LineItems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["Description"] == "Cash short")
        .expect("the shortfall is a line");
    assert_eq!(short["LineAmount"].to_string(), "-1.00");
    let payments = world.xero_get("Payments").await;
    let mut amounts: Vec<String> = payments["Payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Amount"].to_string())
        .collect();
    amounts.sort();
    assert_eq!(amounts, ["39.00", "60.00"], "the float is not banked");
    assert_eq!(inv["Status"], "PAID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_found_by_part_of_their_name_archived_ones_marked_and_kept_a_minute() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let search = |q: &str| {
        let q = url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>();
        format!("/v1/contacts?q={q}")
    };
    let found = device
        .call(Method::GET, &search("supplies"), &p.access, None)
        .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let contacts = found.json["contacts"].as_array().unwrap();
    let old = contacts
        .iter()
        .find(|c| c["name"] == "Old Supplies Ltd")
        .unwrap_or_else(|| panic!("{contacts:?}"));
    assert_eq!(old["archived"], true);
    for bad in ["a", "  ", &"x".repeat(101)] {
        let refused = device
            .call(Method::GET, &search(bad), &p.access, None)
            .await;
        assert_eq!(refused.status, 400, "'{bad}': {}", refused.text);
    }
    // Asked again within the minute: answered without asking Xero.
    let since = world.last_seq().await;
    let again = device
        .call(Method::GET, &search("Supplies"), &p.access, None)
        .await;
    assert_eq!(again.json, found.json);
    assert!(world
        .sandbox_requests(since)
        .await
        .iter()
        .all(|r| r["path"] != "/api.xro/2.0/Contacts"));

    // The same from the CLI.
    let till = crate::cli::Cli::new();
    till.pair(&world).await;
    let (code, lines, _) = till.exit(&["contacts", "old supp"]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines[0]["name"], "Old Supplies Ltd");
    assert_eq!(lines[0]["archived"], true);
}

#[tokio::test]
async fn an_invoice_to_an_archived_contact_fails_with_xeros_own_words() {
    let world = World::start().await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    let sale = |r: &str| {
        json!({"client_ref": r, "contact": {"name": "Old Supplies Ltd"}, "date": "2026-11-20",
            "lines": [{"description": "Scones", "quantity": 1, "unit_amount": "5.00", "account_code": "200", "tax_type": "OUTPUT2"}]})
    };
    let pushed = device
        .push("invoices", &p.access, json!([sale("arch-1")]))
        .await;
    assert_eq!(pushed.status, 202, "{}", pushed.text);
    let docs = device
        .settle(&p.access, 1, std::time::Duration::from_secs(30))
        .await;
    assert_eq!(docs[0]["state"], "failed", "{docs:?}");
    // Xero's message, as Xero words it, not one the proxy made up.
    let message = docs[0]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "The contact 'Old Supplies Ltd' is archived and cannot be used on a transaction"
        ),
        "{message}"
    );
    // The archived contact's id is not kept: the next invoice looks it up again.
    let since = world.last_seq().await;
    device
        .push("invoices", &p.access, json!([sale("arch-2")]))
        .await;
    let docs = device
        .settle(&p.access, 2, std::time::Duration::from_secs(30))
        .await;
    assert!(docs.iter().all(|d| d["state"] == "failed"), "{docs:?}");
    let lookups = world
        .sandbox_requests(since)
        .await
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"] == "/api.xro/2.0/Contacts")
        .count();
    assert_eq!(lookups, 1, "looked up again, not taken from the cache");
}
