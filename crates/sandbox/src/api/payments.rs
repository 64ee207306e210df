//! Payments: `PUT`/`POST` (a batch, or one), `POST /Payments/{id}` with `Status: DELETED` to remove
//! one, and `GET`. A payment may not exceed the invoice's `AmountDue`; one that clears it makes the
//! invoice `PAID`.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

use super::{batch_reply, elements, failed_element, listing, render, Ctx, Reply};
use crate::model::{Payment, Tenant, World};
use crate::webhooks::Event;
use crate::xjson::{decimal, field, parse_date, text, uuid_field};

pub fn get(ctx: &Ctx, world: &World, id: Option<&str>) -> Result<Reply, Reply> {
    let tenant = world
        .tenant(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    let mut items: Vec<&Payment> = tenant.payments.iter().collect();
    if let Some(id) = id {
        items.retain(|p| p.id.to_string().eq_ignore_ascii_case(id));
        if items.is_empty() {
            return Err(Reply::not_found());
        }
    }
    let rendered = items
        .into_iter()
        .map(|p| render::payment(tenant, p))
        .collect();
    listing::list(ctx, "Payments", rendered)
}

/// Records a payment against an invoice: the one place amounts due and `PAID` change.
pub fn record_payment(
    tenant: &mut Tenant,
    invoice: usize,
    account_id: Uuid,
    amount: Decimal,
    date: NaiveDate,
    reference: Option<String>,
    now: DateTime<Utc>,
) -> Payment {
    let inv = &mut tenant.invoices[invoice];
    let payment = Payment {
        id: Uuid::new_v4(),
        invoice_id: inv.id,
        account_id,
        date,
        amount,
        reference,
        status: "AUTHORISED".into(),
        payment_type: if inv.kind == "ACCPAY" {
            "ACCPAYPAYMENT".to_string()
        } else {
            "ACCRECPAYMENT".to_string()
        },
        updated: now,
    };
    inv.amount_paid += amount;
    inv.amount_due -= amount;
    inv.payment_ids.push(payment.id);
    inv.updated = now;
    if inv.amount_due.is_zero() {
        inv.status = "PAID".into();
        inv.fully_paid_on = Some(date);
    }
    tenant.payments.push(payment.clone());
    payment
}

struct Draft {
    invoice: usize,
    account_id: Uuid,
    amount: Decimal,
    date: NaiveDate,
    reference: Option<String>,
}

pub fn write(ctx: &Ctx, world: &mut World, path_id: Option<&str>, body: Value) -> Reply {
    let tenant = world
        .tenant_mut(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    if let Some(id) = path_id {
        return delete(ctx, tenant, id, &body);
    }
    let mut outstanding: HashMap<usize, Decimal> = HashMap::new();
    let drafts: Vec<Result<Draft, Value>> = elements(body, "Payments")
        .into_iter()
        .map(|el| {
            validate(ctx, tenant, &el, &mut outstanding)
                .map_err(|e| failed_element(el, "PaymentID", &e))
        })
        .collect();
    if ctx.summarize_errors() && drafts.iter().any(Result::is_err) {
        let results = drafts.into_iter().map(|d| d.map(|_| Value::Null)).collect();
        return batch_reply(ctx, "Payments", results, Vec::new());
    }
    let mut events = Vec::new();
    let results = drafts
        .into_iter()
        .map(|d| {
            d.map(|d| {
                let p = record_payment(
                    tenant,
                    d.invoice,
                    d.account_id,
                    d.amount,
                    d.date,
                    d.reference,
                    ctx.now,
                );
                events.push(Event::invoice("UPDATE", p.invoice_id));
                render::payment(tenant, &p)
            })
        })
        .collect();
    batch_reply(ctx, "Payments", results, events)
}

fn validate(
    ctx: &Ctx,
    tenant: &Tenant,
    el: &Value,
    outstanding: &mut HashMap<usize, Decimal>,
) -> Result<Draft, Vec<String>> {
    let mut errors = Vec::new();
    let invoice_ref = field(el, "Invoice");
    let by_id = invoice_ref.and_then(|i| uuid_field(i, "InvoiceID").ok().flatten());
    let by_number = invoice_ref
        .and_then(|i| text(i, "InvoiceNumber"))
        .or_else(|| text(el, "InvoiceNumber"));
    let invoice = match (by_id, by_number.as_deref()) {
        (Some(id), _) => tenant.invoice_by_id.get(&id).copied(),
        (None, Some(n)) => tenant
            .invoice_by_number
            .get(&n.trim().to_lowercase())
            .copied(),
        (None, None) => {
            errors.push("An Invoice must be specified for the payment (Invoice.InvoiceID or Invoice.InvoiceNumber)".into());
            None
        }
    };
    if invoice.is_none() && (by_id.is_some() || by_number.is_some()) {
        errors.push("Invoice could not be found".into());
    }
    if let Some(i) = invoice {
        if tenant.invoices[i].status != "AUTHORISED" {
            errors.push("Invoice not of valid status for creation of a payment".into());
        }
    }
    let account_ref = field(el, "Account");
    let account = match account_ref {
        None => {
            errors.push(
                "An Account must be specified for the payment (Account.Code or Account.AccountID)"
                    .into(),
            );
            None
        }
        Some(a) => {
            let found = match (uuid_field(a, "AccountID").ok().flatten(), text(a, "Code")) {
                (Some(id), _) => tenant.accounts.iter().find(|x| x.id == id),
                (None, Some(code)) => tenant.account_by_code(code.trim()),
                (None, None) => None,
            };
            match found {
                Some(acc) if acc.takes_payments() => Some(acc.id),
                Some(acc) if acc.is_active() => {
                    errors.push(format!(
                        "Account code '{}' is not a bank account and does not have payments enabled",
                        acc.code
                    ));
                    None
                }
                _ => {
                    errors.push("Account could not be found".into());
                    None
                }
            }
        }
    };
    let amount = match decimal(el, "Amount") {
        Ok(Some(a)) if a > Decimal::ZERO => Some(crate::totals::round2(a)),
        Ok(_) => {
            errors.push("Payment amount must be greater than zero".into());
            None
        }
        Err(crate::xjson::FieldError::Invalid(raw)) => {
            errors.push(format!("Amount must be a number, not {raw}"));
            None
        }
    };
    let date = match text(el, "Date") {
        None => ctx.now.date_naive(),
        Some(raw) => parse_date(&raw).unwrap_or_else(|| {
            errors.push(format!(
                "The Date '{raw}' is not a valid date; use YYYY-MM-DD"
            ));
            ctx.now.date_naive()
        }),
    };
    if let (Some(i), Some(a)) = (invoice, amount) {
        let due = *outstanding
            .entry(i)
            .or_insert(tenant.invoices[i].amount_due);
        if a > due {
            errors.push("Payment amount exceeds the amount outstanding on this document".into());
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (invoice, amount) = (invoice.expect("checked"), amount.expect("checked"));
    *outstanding.get_mut(&invoice).expect("entered above") -= amount;
    Ok(Draft {
        invoice,
        account_id: account.expect("checked"),
        amount,
        date,
        reference: text(el, "Reference"),
    })
}

/// `POST /Payments/{id}` `{"Status": "DELETED"}`: removes a payment and reopens its invoice.
fn delete(ctx: &Ctx, tenant: &mut Tenant, id: &str, body: &Value) -> Reply {
    let element = elements(body.clone(), "Payments")
        .into_iter()
        .next()
        .unwrap_or(Value::Null);
    if !text(&element, "Status").is_some_and(|s| s.eq_ignore_ascii_case("DELETED")) {
        return Reply::bad_request(
            "A payment can only be changed by setting its Status to DELETED",
        );
    }
    let Some(p) = tenant
        .payments
        .iter_mut()
        .find(|p| p.id.to_string().eq_ignore_ascii_case(id) && p.status != "DELETED")
    else {
        return Reply::not_found();
    };
    p.status = "DELETED".into();
    p.updated = ctx.now;
    let (invoice_id, amount) = (p.invoice_id, p.amount);
    let payment = p.clone();
    if let Some(&i) = tenant.invoice_by_id.get(&invoice_id) {
        let inv = &mut tenant.invoices[i];
        inv.amount_paid -= amount;
        inv.amount_due += amount;
        inv.payment_ids.retain(|x| *x != payment.id);
        inv.status = "AUTHORISED".into();
        inv.fully_paid_on = None;
        inv.updated = ctx.now;
    }
    let mut reply = batch_reply(
        ctx,
        "Payments",
        vec![Ok(render::payment(tenant, &payment))],
        Vec::new(),
    );
    reply.events.push(Event::invoice("UPDATE", invoice_id));
    reply
}
