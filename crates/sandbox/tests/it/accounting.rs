//! The Accounting API as a client sees it: settings, contacts, invoices (totals, validation,
//! batches), payments, filters and paging, errors in Xero's shapes.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn organisation_accounts_and_tax_rates_of_each_country() {
    let env = start().await;
    for (tenant, name, currency, rate) in [
        (NZ, "Demo Company (NZ)", "NZD", "15"),
        (UK, "Demo Company (UK)", "GBP", "20"),
    ] {
        let api = env.api(tenant).await;
        let org = api.get("Organisation").await;
        assert_eq!(org.status, 200);
        assert_eq!(org.body["Status"], "OK");
        assert!(org.body["DateTimeUTC"]
            .as_str()
            .unwrap()
            .starts_with("/Date("));
        let o = &org.body["Organisations"][0];
        assert_eq!(
            (o["Name"].as_str(), o["BaseCurrency"].as_str()),
            (Some(name), Some(currency))
        );
        assert_eq!(o["OrganisationID"], tenant.to_string());

        let accounts = api.get("Accounts").await.body["Accounts"]
            .as_array()
            .unwrap()
            .clone();
        let by_code = |code: &str| {
            accounts
                .iter()
                .find(|a| a["Code"] == code)
                .cloned()
                .unwrap()
        };
        assert_eq!(by_code("200")["Name"], "Sales");
        assert_eq!(by_code("200")["Status"], "ACTIVE");
        assert_eq!(by_code("201")["Status"], "ARCHIVED");
        assert_eq!(by_code("090")["Type"], "BANK");
        assert_eq!(by_code("610")["SystemAccount"], "DEBTORS");
        let active = api
            .get("Accounts?where=Status%3D%3D%22ACTIVE%22")
            .await
            .body["Accounts"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(
            active,
            accounts.len() - 1,
            "one archived account is filtered out"
        );

        let rates = api.get("TaxRates").await.body["TaxRates"]
            .as_array()
            .unwrap()
            .clone();
        let output = rates.iter().find(|r| r["TaxType"] == "OUTPUT2").unwrap();
        assert_eq!(dec(&output["EffectiveRate"]), rate);
    }
}

#[tokio::test]
async fn missing_or_foreign_tenant_is_forbidden_and_no_token_unauthorized() {
    let env = start().await;
    let nz_only = env.grant(Some(&[NZ]), None).await;
    let api = Api {
        env: &env,
        token: nz_only.access.clone(),
        tenant: UK,
    };
    let a = api.get("Invoices").await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body["Detail"], "AuthenticationUnsuccessful");
    let no_tenant = env
        .http
        .get(format!("{}/api.xro/2.0/Invoices", env.url))
        .bearer_auth(&nz_only.access)
        .send()
        .await
        .unwrap();
    assert_eq!(no_tenant.status(), 403);
    let no_token = env
        .http
        .get(format!("{}/api.xro/2.0/Invoices", env.url))
        .header("xero-tenant-id", NZ.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let forged = Api {
        env: &env,
        token: format!("{}x", nz_only.access),
        tenant: NZ,
    };
    assert_eq!(forged.get("Invoices").await.status, 401);
}

#[tokio::test]
async fn scopes_limit_what_a_token_may_call() {
    let env = start().await;
    let tokens = env
        .grant(None, Some("offline_access accounting.transactions"))
        .await;
    let api = Api {
        env: &env,
        token: tokens.access,
        tenant: NZ,
    };
    assert_eq!(api.get("Invoices").await.status, 200);
    let a = api.get("Contacts").await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["Detail"], "AuthorizationUnsuccessful");
    assert_eq!(api.get("Accounts").await.status, 401);
}

#[tokio::test]
async fn unknown_resources_ids_and_bad_json() {
    let env = start().await;
    let api = env.api(NZ).await;
    assert_eq!(api.get("Nonsense").await.status, 404);
    assert_eq!(
        api.get(&format!("Invoices/{}", uuid::Uuid::new_v4()))
            .await
            .status,
        404
    );
    assert_eq!(
        api.get(&format!("Contacts/{}", uuid::Uuid::new_v4()))
            .await
            .status,
        404
    );
    let bad = Answer::read(
        api.request(Method::PUT, "Invoices")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["Type"], "PostDataInvalidException");
    // Resource names are case-insensitive, as at Xero.
    assert_eq!(api.get("invoices").await.status, 200);
}

#[tokio::test]
async fn contacts_create_find_page_and_update() {
    let env = start().await;
    let api = env.api(NZ).await;
    let made = api.put("Contacts", json!({"Contacts": [{"Name": "Harbour Cafe", "ContactNumber": "HC-1", "EmailAddress": "a@b.test"}]})).await;
    assert_eq!(made.status, 200, "{}", made.text);
    let id = made.body["Contacts"][0]["ContactID"]
        .as_str()
        .unwrap()
        .to_string();

    let dup = api.put("Contacts", json!({"Name": "harbour cafe"})).await;
    assert_eq!(dup.status, 400);
    assert_eq!(dup.body["Type"], "ValidationException");
    assert!(dup.messages()[0].contains("is already assigned to another contact"));

    let by_id = api.get(&format!("Contacts/{id}")).await;
    assert_eq!(by_id.body["Contacts"][0]["EmailAddress"], "a@b.test");
    let by_number = api.get("Contacts/HC-1").await;
    assert_eq!(by_number.body["Contacts"][0]["ContactID"], id);
    let by_name = api
        .get("Contacts?where=Name%3D%3D%22Harbour%20Cafe%22")
        .await;
    assert_eq!(by_name.body["Contacts"].as_array().unwrap().len(), 1);
    let by_cn = api
        .get("Contacts?where=ContactNumber%3D%3D%22HC-1%22")
        .await;
    assert_eq!(by_cn.body["Contacts"][0]["ContactID"], id);

    let page = api.get("Contacts?page=2&pageSize=1").await;
    assert_eq!(page.body["pagination"]["page"], 2);
    assert_eq!(
        page.body["pagination"]["itemCount"], 3,
        "two seeded active contacts and the new one"
    );
    assert_eq!(page.body["Contacts"].as_array().unwrap().len(), 1);
    let archived = api.get("Contacts?includeArchived=true").await.body["Contacts"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(archived, 4);

    env.advance(5).await;
    let since = chrono::Utc::now() + chrono::Duration::seconds(2);
    let renamed = api
        .post(
            "Contacts",
            json!({"Contacts": [{"ContactID": id, "Name": "Harbour Cafe Ltd"}]}),
        )
        .await;
    assert_eq!(renamed.status, 200);
    assert_eq!(
        renamed.body["Contacts"][0]["ContactNumber"], "HC-1",
        "fields not sent are kept"
    );
    let modified = Answer::read(
        api.request(Method::GET, "Contacts")
            .header(
                "If-Modified-Since",
                since.format("%Y-%m-%dT%H:%M:%S").to_string(),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names: Vec<_> = modified.body["Contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Name"].clone())
        .collect();
    assert_eq!(names, vec![json!("Harbour Cafe Ltd")]);

    // POST with a known name updates that contact instead of making another.
    let by_name_update = api
        .post(
            "Contacts",
            json!({"Name": "Harbour Cafe Ltd", "EmailAddress": "new@b.test"}),
        )
        .await;
    assert_eq!(by_name_update.body["Contacts"][0]["ContactID"], id);
}

async fn put_one(api: &Api<'_>, invoice: Value) -> Value {
    let a = api.put("Invoices", json!({"Invoices": [invoice]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["Invoices"][0].clone()
}

#[tokio::test]
async fn totals_follow_the_per_line_rule_in_all_three_tax_modes() {
    let env = start().await;
    let api = env.api(NZ).await;
    let lines = json!([
        {"Description": "a", "Quantity": 3, "UnitAmount": 0.30, "AccountCode": "200", "TaxType": "OUTPUT2"},
        {"Description": "b", "Quantity": 1, "UnitAmount": 10.01, "AccountCode": "200", "TaxType": "OUTPUT2"},
        {"Description": "c", "Quantity": 2, "UnitAmount": 5, "AccountCode": "270", "TaxType": "NONE"},
    ]);
    let make = |mode: &str| json!({"Type": "ACCREC", "Contact": {"Name": "Totals Ltd"}, "LineAmountTypes": mode, "LineItems": lines});

    // Exclusive: 0.90 → tax 0.135 → 0.14; 10.01 → 1.5015 → 1.50; 10.00 → 0.
    let ex = put_one(&api, make("Exclusive")).await;
    assert_eq!(
        [
            dec(&ex["SubTotal"]),
            dec(&ex["TotalTax"]),
            dec(&ex["Total"])
        ],
        ["20.91", "1.64", "22.55"]
    );
    assert_eq!(dec(&ex["LineItems"][0]["TaxAmount"]), "0.14");
    assert_eq!(dec(&ex["AmountDue"]), "22.55");

    // Inclusive: tax contained: 0.90×15/115 = 0.1174 → 0.12; 10.01×15/115 = 1.3057 → 1.31.
    let inc = put_one(&api, make("Inclusive")).await;
    assert_eq!(
        [
            dec(&inc["SubTotal"]),
            dec(&inc["TotalTax"]),
            dec(&inc["Total"])
        ],
        ["19.48", "1.43", "20.91"]
    );

    let none = put_one(&api, make("NoTax")).await;
    assert_eq!(
        [
            dec(&none["SubTotal"]),
            dec(&none["TotalTax"]),
            dec(&none["Total"])
        ],
        ["20.91", "0.00", "20.91"]
    );

    // UK: VAT 20%.
    let uk = env.api(UK).await;
    let vat = put_one(&uk, invoice("Shop", "1", "99.99")).await;
    assert_eq!(
        [dec(&vat["TotalTax"]), dec(&vat["Total"])],
        ["20.00", "119.99"]
    );
    assert_eq!(vat["CurrencyCode"], "GBP");
}

#[tokio::test]
async fn unitdp_keeps_four_decimals_on_unit_amounts() {
    let env = start().await;
    let api = env.api(NZ).await;
    let two = put_one(&api, invoice("Dp", "3", "1.2345")).await;
    assert_eq!(dec(&two["LineItems"][0]["UnitAmount"]), "1.23");
    let a = api
        .put(
            "Invoices?unitdp=4",
            json!({"Invoices": [invoice("Dp", "3", "1.2345")]}),
        )
        .await;
    let four = &a.body["Invoices"][0];
    assert_eq!(dec(&four["LineItems"][0]["UnitAmount"]), "1.2345");
    assert_eq!(dec(&four["LineItems"][0]["LineAmount"]), "3.70");
}

#[tokio::test]
async fn invoice_validation_errors_say_what_xero_says() {
    let env = start().await;
    let api = env.api(NZ).await;
    let first = put_one(&api, json!({"Type": "ACCREC", "InvoiceNumber": "INV-9000", "Contact": {"Name": "V"}, "LineItems": [{"Quantity": 1, "UnitAmount": 1, "AccountCode": "200"}]})).await;
    assert_eq!(first["InvoiceNumber"], "INV-9000");
    let base = || invoice("Validator", "1", "10");
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut i = base();
                i.as_object_mut().unwrap().remove("Contact");
                i
            },
            "A Contact must be specified",
        ),
        (
            {
                let mut i = base();
                i["LineItems"][0]["AccountCode"] = json!("999");
                i
            },
            "Account code '999' is not a valid code",
        ),
        (
            {
                let mut i = base();
                i["LineItems"][0]["AccountCode"] = json!("201");
                i
            },
            "has been archived, or has been deleted",
        ),
        (
            {
                let mut i = base();
                i["LineItems"][0]["TaxType"] = json!("OUTPUT9");
                i
            },
            "The TaxType code 'OUTPUT9' does not exist",
        ),
        (
            {
                let mut i = base();
                i["InvoiceNumber"] = json!("inv-9000");
                i
            },
            "Invoice # must be unique.",
        ),
        (
            {
                let mut i = base();
                i["Date"] = json!("31/12/2026");
                i
            },
            "is not a valid date",
        ),
        (
            {
                let mut i = base();
                i["LineItems"][0]["UnitAmount"] = json!("ten");
                i
            },
            "UnitAmount must be a number",
        ),
        (
            {
                let mut i = base();
                i["Contact"] = json!({"Name": "Old Supplies Ltd"});
                i
            },
            "is archived",
        ),
        (
            {
                let mut i = base();
                i["CurrencyCode"] = json!("USD");
                i
            },
            "not subscribed to currency USD",
        ),
        (
            {
                let mut i = base();
                i["LineItems"][0]["AccountCode"] = json!("610");
                i
            },
            "is a system account",
        ),
        (
            {
                let mut i = base();
                i["Type"] = json!("INVOICE");
                i
            },
            "Invoice Type 'INVOICE' is not valid",
        ),
    ];
    for (body, expected) in cases {
        let a = api.put("Invoices", json!({"Invoices": [body]})).await;
        assert_eq!(a.status, 400, "{expected}: {}", a.text);
        assert_eq!(a.body["Type"], "ValidationException");
        assert_eq!(a.body["ErrorNumber"], 10);
        let messages = a.messages();
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "expected '{expected}' in {messages:?}"
        );
    }
    let all = api.get("Invoices").await;
    assert_eq!(
        all.body["Invoices"].as_array().unwrap().len(),
        1,
        "nothing invalid was created"
    );
    // Bills have no uniqueness on their number.
    let bill = |n: &str| json!({"Type": "ACCPAY", "InvoiceNumber": n, "Contact": {"Name": "Supplier"}, "LineItems": [{"Quantity": 1, "UnitAmount": 5, "AccountCode": "429"}]});
    put_one(&api, bill("SUP-1")).await;
    put_one(&api, bill("SUP-1")).await;
}

#[tokio::test]
async fn summarize_errors_decides_whether_one_bad_element_fails_the_batch() {
    let env = start().await;
    let api = env.api(NZ).await;
    let good = invoice("Batch Co", "1", "10");
    let mut bad = invoice("Batch Co", "1", "10");
    bad["LineItems"][0]["AccountCode"] = json!("999");

    let summarized = api
        .put("Invoices", json!({"Invoices": [good.clone(), bad.clone()]}))
        .await;
    assert_eq!(summarized.status, 400);
    assert_eq!(
        api.get("Invoices").await.body["Invoices"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        api.get("Contacts?where=Name%3D%3D%22Batch%20Co%22")
            .await
            .body["Contacts"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "no contact made either"
    );

    for flag in ["false", "False"] {
        let mixed = api
            .put(
                &format!("Invoices?summarizeErrors={flag}"),
                json!({"Invoices": [good.clone(), bad.clone(), good.clone()]}),
            )
            .await;
        assert_eq!(mixed.status, 200, "{}", mixed.text);
        let items = mixed.body["Invoices"].as_array().unwrap();
        let states: Vec<_> = items
            .iter()
            .map(|i| i["StatusAttributeString"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["OK", "ERROR", "OK"]);
        assert_eq!(items[1]["HasErrors"], true);
        assert!(items[1]["ValidationErrors"][0]["Message"]
            .as_str()
            .unwrap()
            .contains("999"));
        assert_ne!(items[0]["InvoiceNumber"], items[2]["InvoiceNumber"]);
        assert_eq!(
            items[0]["Contact"]["ContactID"], items[2]["Contact"]["ContactID"],
            "one new contact for the batch"
        );
    }
    assert_eq!(
        api.get("Invoices").await.body["Invoices"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn invoices_are_found_by_id_number_where_status_and_date() {
    let env = start().await;
    let api = env.api(NZ).await;
    let a = put_one(&api, invoice("Finder", "1", "10")).await;
    let mut draft = invoice("Finder", "2", "10");
    draft["Status"] = json!("DRAFT");
    draft["Reference"] = json!("REG1-SHIFT7");
    let b = put_one(&api, draft).await;
    let id = a["InvoiceID"].as_str().unwrap();
    let number = a["InvoiceNumber"].as_str().unwrap();

    assert_eq!(
        api.get(&format!("Invoices/{id}")).await.body["Invoices"][0]["InvoiceNumber"],
        number
    );
    assert_eq!(
        api.get(&format!("Invoices/{number}")).await.body["Invoices"][0]["InvoiceID"],
        id
    );
    let drafts = api.get("Invoices?Statuses=DRAFT").await;
    assert_eq!(drafts.body["Invoices"].as_array().unwrap().len(), 1);
    assert_eq!(drafts.body["Invoices"][0]["InvoiceID"], b["InvoiceID"]);
    let by_ref = api
        .get("Invoices?where=Reference%3D%3D%22REG1-SHIFT7%22")
        .await;
    assert_eq!(by_ref.body["Invoices"][0]["InvoiceID"], b["InvoiceID"]);
    let by_ids = api.get(&format!("Invoices?IDs={id}")).await;
    assert_eq!(by_ids.body["Invoices"].as_array().unwrap().len(), 1);
    let total = api.get("Invoices?where=Total%3E20").await;
    assert_eq!(
        total.body["Invoices"][0]["InvoiceID"], b["InvoiceID"],
        "23.00 > 20, 11.50 is not"
    );
    let dated = api
        .get("Invoices?where=Date%3E%3DDateTime(2026,11,20)%20AND%20Date%3CDateTime(2026,11,21)")
        .await;
    assert_eq!(dated.body["Invoices"].as_array().unwrap().len(), 2);
    assert_eq!(a["Date"], "/Date(1795132800000+0000)/");
    let bad_where = api.get("Invoices?where=Total%3E%3E").await;
    assert_eq!(bad_where.status, 400);
    let paged = api
        .get("Invoices?page=1&pageSize=1&order=Total%20DESC")
        .await;
    assert_eq!(paged.body["Invoices"][0]["InvoiceID"], b["InvoiceID"]);
    assert_eq!(paged.body["pagination"]["pageCount"], 2);
}

#[tokio::test]
async fn post_updates_an_invoice_and_status_rules_hold() {
    let env = start().await;
    let api = env.api(NZ).await;
    let mut draft = invoice("Updater", "1", "10");
    draft["Status"] = json!("DRAFT");
    let made = put_one(&api, draft).await;
    let id = made["InvoiceID"].as_str().unwrap();
    let approved = api
        .post(
            "Invoices",
            json!({"Invoices": [{"InvoiceID": id, "Status": "AUTHORISED"}]}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    assert_eq!(approved.body["Invoices"][0]["Status"], "AUTHORISED");
    assert_eq!(
        dec(&approved.body["Invoices"][0]["Total"]),
        "11.50",
        "lines kept"
    );
    let back = api
        .post(&format!("Invoices/{id}"), json!({"Status": "DRAFT"}))
        .await;
    assert_eq!(back.status, 400);
    assert!(back.messages()[0].contains("cannot change from AUTHORISED to DRAFT"));
    let dup_put = api
        .put(
            "Invoices",
            json!({"InvoiceID": id, "Type": "ACCREC", "Contact": {"Name": "x"}}),
        )
        .await;
    assert_eq!(dup_put.status, 400, "PUT creates only");
    let voided = api
        .post(&format!("Invoices/{id}"), json!({"Status": "VOIDED"}))
        .await;
    assert_eq!(voided.body["Invoices"][0]["Status"], "VOIDED");
    assert_eq!(dec(&voided.body["Invoices"][0]["AmountDue"]), "0.00");
}

#[tokio::test]
async fn payments_reduce_amount_due_and_clearing_one_makes_it_paid() {
    let env = start().await;
    let api = env.api(NZ).await;
    let inv = put_one(&api, invoice("Payer", "1", "100")).await; // 115.00
    let id = inv["InvoiceID"].as_str().unwrap();
    let pay = |amount: &str, code: &str| json!({"Invoice": {"InvoiceID": id}, "Account": {"Code": code}, "Date": "2026-11-21", "Amount": serde_json::from_str::<Value>(amount).unwrap(), "Reference": "till"});
    let too_much = api
        .put("Payments", json!({"Payments": [pay("115.01", "090")]}))
        .await;
    assert_eq!(too_much.status, 400);
    assert!(too_much.messages()[0].contains("exceeds the amount outstanding"));
    let not_bank = api.put("Payments", pay("10", "200")).await;
    assert!(not_bank.messages()[0].contains("not a bank account"));

    // A batch of two that together exceed the amount due: the second fails, the first stands.
    let both = api
        .put(
            "Payments?summarizeErrors=false",
            json!({"Payments": [pay("100", "090"), pay("20", "615")]}),
        )
        .await;
    assert_eq!(both.status, 200);
    assert_eq!(both.body["Payments"][0]["StatusAttributeString"], "OK");
    assert_eq!(both.body["Payments"][1]["StatusAttributeString"], "ERROR");
    let after = api.get(&format!("Invoices/{id}")).await.body["Invoices"][0].clone();
    assert_eq!(
        (
            dec(&after["AmountPaid"]),
            dec(&after["AmountDue"]),
            after["Status"].as_str()
        ),
        ("100.00".into(), "15.00".into(), Some("AUTHORISED"))
    );

    let rest = api.post("Payments", pay("15", "615")).await;
    assert_eq!(rest.status, 200, "{}", rest.text);
    assert_eq!(rest.body["Payments"][0]["PaymentType"], "ACCRECPAYMENT");
    let paid = api.get(&format!("Invoices/{id}")).await.body["Invoices"][0].clone();
    assert_eq!(paid["Status"], "PAID");
    assert_eq!(dec(&paid["AmountDue"]), "0.00");
    assert_eq!(paid["Payments"].as_array().unwrap().len(), 2);
    assert!(paid["FullyPaidOnDate"].is_string());
    assert_eq!(
        api.get("Payments").await.body["Payments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let mut draft = invoice("Payer", "1", "1");
    draft["Status"] = json!("DRAFT");
    let d = put_one(&api, draft).await;
    let on_draft = api.put("Payments", json!({"Invoice": {"InvoiceID": d["InvoiceID"]}, "Account": {"Code": "090"}, "Amount": 1})).await;
    assert!(
        on_draft.messages()[0].contains("Invoice not of valid status for creation of a payment")
    );

    // Deleting a payment reopens the invoice.
    let pid = rest.body["Payments"][0]["PaymentID"].as_str().unwrap();
    let deleted = api
        .post(&format!("Payments/{pid}"), json!({"Status": "DELETED"}))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let reopened = api.get(&format!("Invoices/{id}")).await.body["Invoices"][0].clone();
    assert_eq!(
        (reopened["Status"].as_str(), dec(&reopened["AmountDue"])),
        (Some("AUTHORISED"), "15.00".into())
    );
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let env = start().await;
    let api = env.api(NZ).await;
    let send = |body: Value, key: &str| {
        let req = api
            .request(Method::PUT, "Invoices")
            .header("Idempotency-Key", key)
            .json(&body);
        async move { Answer::read(req.send().await.unwrap()).await }
    };
    let body = json!({"Invoices": [invoice("Idem", "1", "10")]});
    let first = send(body.clone(), "key-1").await;
    let replay = send(body.clone(), "key-1").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        replay.body["Invoices"][0]["InvoiceID"],
        first.body["Invoices"][0]["InvoiceID"]
    );
    assert_eq!(
        api.get("Invoices").await.body["Invoices"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the replay made nothing"
    );
    let left = |a: &Answer| {
        a.header("x-minlimit-remaining")
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    assert_eq!(
        left(&first) - 1,
        left(&replay),
        "replays count against the limits"
    );

    let other = send(json!({"Invoices": [invoice("Idem", "2", "10")]}), "key-1").await;
    assert_eq!(other.status, 400);
    assert!(other.text.contains("Idempotency-Key was already used"));

    // Errors are replayed too.
    let mut bad = invoice("Idem", "1", "1");
    bad["LineItems"][0]["AccountCode"] = json!("999");
    let e1 = send(json!({"Invoices": [bad.clone()]}), "key-2").await;
    let e2 = send(json!({"Invoices": [bad]}), "key-2").await;
    assert_eq!((e1.status.as_u16(), e2.status.as_u16()), (400, 400));
    assert_eq!(e1.body, e2.body);

    // After the window, the same key is a new request.
    env.advance(361).await;
    let later = send(body, "key-1").await;
    assert_ne!(
        later.body["Invoices"][0]["InvoiceID"],
        first.body["Invoices"][0]["InvoiceID"]
    );
    let too_long = send(json!({}), &"k".repeat(129)).await;
    assert_eq!(too_long.status, 400);
}
