//! Payments: `PUT`/`POST` (a batch, or one), `POST /Payments/{id}` with `Status: DELETED` to remove
//! one, and `GET`. A payment may not exceed the invoice's `AmountDue`; one that clears it makes the
//! invoice `PAID`.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

use super::{batch_reply, elements, failed_element, listing, render, Ctx, Reply};
use crate::xero::model::{Payment, Tenant, World};
use crate::xero::webhooks::Event;
use crate::xero::xjson::{decimal, field, parse_date, text, uuid_field};

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
        credit_note_id: None,
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

/// What a payment pays: an invoice, or out of a credit note (a refund).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Invoice(usize),
    CreditNote(usize),
}

/// Records a refund paid out of a credit note's credit.
fn record_refund(
    tenant: &mut Tenant,
    note: usize,
    account_id: Uuid,
    amount: Decimal,
    date: NaiveDate,
    reference: Option<String>,
    now: DateTime<Utc>,
) -> Payment {
    let n = &tenant.credit_notes[note];
    let payment = Payment {
        id: Uuid::new_v4(),
        invoice_id: Uuid::nil(),
        credit_note_id: Some(n.id),
        account_id,
        date,
        amount,
        reference,
        status: "AUTHORISED".into(),
        payment_type: if n.kind == "ACCPAYCREDIT" {
            "APCREDITPAYMENT".to_string()
        } else {
            "ARCREDITPAYMENT".to_string()
        },
        updated: now,
    };
    super::credit_notes::refund(tenant, note, payment.id, amount, date, now);
    tenant.payments.push(payment.clone());
    payment
}

struct Draft {
    target: Target,
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
    let mut outstanding: HashMap<Target, Decimal> = HashMap::new();
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
                let p = match d.target {
                    Target::Invoice(i) => {
                        let p = record_payment(
                            tenant,
                            i,
                            d.account_id,
                            d.amount,
                            d.date,
                            d.reference,
                            ctx.now,
                        );
                        events.push(Event::invoice("UPDATE", p.invoice_id));
                        p
                    }
                    Target::CreditNote(n) => {
                        let p = record_refund(
                            tenant,
                            n,
                            d.account_id,
                            d.amount,
                            d.date,
                            d.reference,
                            ctx.now,
                        );
                        events.push(Event::credit_note("UPDATE", tenant.credit_notes[n].id));
                        p
                    }
                };
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
    outstanding: &mut HashMap<Target, Decimal>,
) -> Result<Draft, Vec<String>> {
    let mut errors = Vec::new();
    if let Some(note_ref) = field(el, "CreditNote") {
        if field(el, "Invoice").is_some() {
            errors.push("A payment pays an Invoice or refunds a CreditNote, not both".into());
        }
        let note = match uuid_field(note_ref, "CreditNoteID") {
            Ok(Some(id)) => tenant.credit_note_by_id.get(&id).copied(),
            _ => text(note_ref, "CreditNoteNumber")
                .and_then(|n| tenant.credit_note_by_number(&n).map(|c| c.id))
                .and_then(|id| tenant.credit_note_by_id.get(&id).copied()),
        };
        match note {
            None => errors.push("Credit note could not be found".into()),
            Some(n) if tenant.credit_notes[n].status != "AUTHORISED" => {
                errors.push("Credit note not of valid status for creation of a payment".into())
            }
            Some(_) => {}
        }
        return finish(
            ctx,
            tenant,
            el,
            note.map(Target::CreditNote),
            outstanding,
            errors,
        );
    }
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
    finish(
        ctx,
        tenant,
        el,
        invoice.map(Target::Invoice),
        outstanding,
        errors,
    )
}

/// The account, amount and date of a payment to `target`, checked against what is left on it.
fn finish(
    ctx: &Ctx,
    tenant: &Tenant,
    el: &Value,
    target: Option<Target>,
    outstanding: &mut HashMap<Target, Decimal>,
    mut errors: Vec<String>,
) -> Result<Draft, Vec<String>> {
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
        Ok(Some(a)) if a > Decimal::ZERO => Some(crate::xero::totals::round2(a)),
        Ok(_) => {
            errors.push("Payment amount must be greater than zero".into());
            None
        }
        Err(crate::xero::xjson::FieldError::Invalid(raw)) => {
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
    if let (Some(t), Some(a)) = (target, amount) {
        let left = *outstanding.entry(t).or_insert(match t {
            Target::Invoice(i) => tenant.invoices[i].amount_due,
            Target::CreditNote(n) => tenant.credit_notes[n].remaining_credit,
        });
        if a > left {
            errors.push(match t {
                Target::Invoice(_) => {
                    "Payment amount exceeds the amount outstanding on this document".into()
                }
                Target::CreditNote(_) => {
                    "Payment amount exceeds the remaining credit on this credit note".into()
                }
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (target, amount) = (target.expect("checked"), amount.expect("checked"));
    *outstanding.get_mut(&target).expect("entered above") -= amount;
    Ok(Draft {
        target,
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
    if let Some(&n) = payment
        .credit_note_id
        .and_then(|id| tenant.credit_note_by_id.get(&id))
    {
        let note = &mut tenant.credit_notes[n];
        note.remaining_credit += amount;
        note.payment_ids.retain(|x| *x != payment.id);
        note.status = "AUTHORISED".into();
        note.fully_paid_on = None;
        note.updated = ctx.now;
        let mut reply = batch_reply(
            ctx,
            "Payments",
            vec![Ok(render::payment(tenant, &payment))],
            Vec::new(),
        );
        reply
            .events
            .push(Event::credit_note("UPDATE", note_id(tenant, n)));
        return reply;
    }
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

fn note_id(tenant: &Tenant, n: usize) -> Uuid {
    tenant.credit_notes[n].id
}
