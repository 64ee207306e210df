//! Credit notes: `PUT`/`POST /CreditNotes` (create, in batches, validated as Xero validates),
//! `POST /CreditNotes/{id}` to void (or delete a draft), `GET`, and
//! `PUT /CreditNotes/{id}/Allocations`, which applies credit to invoices. A credit note's credit
//! (`RemainingCredit`) is used up by allocations and by refund payments (`PUT /Payments` naming
//! the `CreditNote`); once none is left it is `PAID`. An allocation may not exceed the invoice's
//! `AmountDue` nor the credit note's `RemainingCredit`, and joins documents of the same contact
//! and side (a customer's credit note to a sales invoice).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

use super::invoices::{currency, line_items, resolve_contact, tax_mode, Batch};
use super::{batch_reply, elements, failed_element, listing, render, Ctx, Reply};
use crate::xero::model::{Allocation, Contact, CreditNote, Tenant, World};
use crate::xero::totals::{totals, TaxMode};
use crate::xero::webhooks::Event;
use crate::xero::xjson::{decimal, field, parse_date, text, uuid_field};

pub fn get(ctx: &Ctx, world: &World, id: Option<&str>) -> Result<Reply, Reply> {
    let tenant = world
        .tenant(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    let mut items: Vec<&CreditNote> = match id {
        Some(id) => {
            let found = match Uuid::parse_str(id) {
                Ok(uuid) => tenant.credit_note(uuid),
                Err(_) => tenant.credit_note_by_number(id),
            };
            vec![found.ok_or_else(Reply::not_found)?]
        }
        None => tenant.credit_notes.iter().collect(),
    };
    if let Some(statuses) = ctx.param("Statuses") {
        let wanted: Vec<String> = statuses
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .collect();
        items.retain(|c| wanted.contains(&c.status));
    }
    let rendered = items
        .into_iter()
        .map(|c| render::credit_note(tenant, c))
        .collect();
    listing::list(ctx, "CreditNotes", rendered)
}

struct Draft {
    note: CreditNote,
    new_contact: Option<Contact>,
}

pub fn write(
    ctx: &Ctx,
    world: &mut World,
    path_id: Option<&str>,
    body: Value,
    create_only: bool,
) -> Reply {
    let tenant = world
        .tenant_mut(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    if let Some(id) = path_id {
        return change_status(ctx, tenant, id, body);
    }
    let unit_dp: u32 = match ctx.param("unitdp").map(str::trim) {
        Some("4") => 4,
        _ => 2,
    };
    let mut batch = Batch::default();
    let drafts: Vec<Result<Draft, Value>> = elements(body, "CreditNotes")
        .into_iter()
        .map(|el| {
            validate(ctx, tenant, &el, create_only, unit_dp, &mut batch)
                .map_err(|errors| failed_element(el, "CreditNoteID", &errors))
        })
        .collect();
    if ctx.summarize_errors() && drafts.iter().any(Result::is_err) {
        let results = drafts.into_iter().map(|d| d.map(|_| Value::Null)).collect();
        return batch_reply(ctx, "CreditNotes", results, Vec::new());
    }
    let mut events = Vec::new();
    let results = drafts
        .into_iter()
        .map(|d| {
            d.map(
                |Draft {
                     mut note,
                     new_contact,
                 }| {
                    if let Some(c) = new_contact {
                        events.push(Event::contact("CREATE", c.id));
                        tenant.add_contact(c);
                    }
                    if note.kind == "ACCRECCREDIT" && note.number.is_none() {
                        loop {
                            let n = format!("CN-{:04}", tenant.next_credit_note_number);
                            tenant.next_credit_note_number += 1;
                            if tenant.credit_note_by_number(&n).is_none() {
                                note.number = Some(n);
                                break;
                            }
                        }
                    }
                    events.push(Event::credit_note("CREATE", note.id));
                    let v = render::credit_note(tenant, &note);
                    tenant.add_credit_note(note);
                    v
                },
            )
        })
        .collect();
    batch_reply(ctx, "CreditNotes", results, events)
}

fn validate(
    ctx: &Ctx,
    tenant: &Tenant,
    el: &Value,
    create_only: bool,
    unit_dp: u32,
    batch: &mut Batch,
) -> Result<Draft, Vec<String>> {
    let mut errors: Vec<String> = Vec::new();
    if !el.is_object() {
        return Err(vec!["Each credit note must be a JSON object".into()]);
    }
    match uuid_field(el, "CreditNoteID") {
        Ok(Some(id)) if tenant.credit_note(id).is_some() => {
            errors.push(if create_only {
                format!(
                    "A credit note with CreditNoteID {id} already exists; use POST to update it"
                )
            } else {
                format!("Credit note {id} can only be changed at /CreditNotes/{id}")
            });
        }
        Ok(Some(id)) => errors.push(format!(
            "Credit note with CreditNoteID {id} could not be found"
        )),
        Ok(None) => {}
        Err(_) => errors.push("CreditNoteID must be a GUID".into()),
    }
    let kind = match text(el, "Type").map(|t| t.trim().to_ascii_uppercase()) {
        Some(k) if k == "ACCRECCREDIT" || k == "ACCPAYCREDIT" => k,
        Some(k) => {
            errors.push(format!(
                "Credit note Type '{k}' is not valid; use ACCRECCREDIT (a customer's) or ACCPAYCREDIT (a supplier's)"
            ));
            "ACCRECCREDIT".into()
        }
        None => {
            errors.push("Credit note Type must be specified".into());
            "ACCRECCREDIT".into()
        }
    };
    let mode = tax_mode(el, &mut errors).unwrap_or(TaxMode::Exclusive);
    let currency = currency(tenant, el, &mut errors);
    let date = match text(el, "Date") {
        None => ctx.now.date_naive(),
        Some(raw) => parse_date(&raw).unwrap_or_else(|| {
            errors.push(format!(
                "The Date '{raw}' is not a valid date; use YYYY-MM-DD"
            ));
            ctx.now.date_naive()
        }),
    };
    let status = text(el, "Status")
        .map(|s| s.trim().to_ascii_uppercase())
        .unwrap_or_else(|| "DRAFT".into());
    if !matches!(status.as_str(), "DRAFT" | "SUBMITTED" | "AUTHORISED") {
        errors.push(format!(
            "Credit note Status '{status}' is not valid for a new credit note; use DRAFT, SUBMITTED or AUTHORISED"
        ));
    }
    let approved = matches!(status.as_str(), "AUTHORISED" | "SUBMITTED");
    let number = text(el, "CreditNoteNumber")
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    if kind == "ACCRECCREDIT" {
        if let Some(n) = &number {
            let key = format!("cn:{}", n.to_lowercase());
            if tenant.credit_note_by_number(n).is_some() || batch.numbers.contains(&key) {
                errors.push("Credit Note # must be unique.".into());
            } else {
                batch.numbers.insert(key);
            }
        }
    }
    let lines = field(el, "LineItems")
        .map(|items| line_items(tenant, items, mode, unit_dp, approved, &mut errors))
        .unwrap_or_default();
    if approved && lines.is_empty() {
        errors.push("A credit note must have at least one line item before it is approved".into());
    }
    let t = totals(lines.iter().map(|l| (l.line_amount, l.tax_amount)), mode);
    if t.total < Decimal::ZERO {
        errors.push("The credit note total cannot be negative".into());
    }
    let mut new_contact = None;
    let contact_id = match field(el, "Contact") {
        None => {
            errors.push("A Contact must be specified for this type of transaction".into());
            None
        }
        Some(c) => {
            let may_create = errors.is_empty();
            resolve_contact(
                tenant,
                c,
                &mut errors,
                may_create,
                batch,
                ctx,
                &mut new_contact,
            )
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Draft {
        new_contact,
        note: CreditNote {
            id: Uuid::new_v4(),
            kind,
            contact_id: contact_id.expect("no errors means a contact"),
            number,
            reference: text(el, "Reference"),
            date,
            remaining_credit: t.total,
            status,
            mode,
            currency,
            lines,
            sub_total: t.sub_total,
            total_tax: t.total_tax,
            total: t.total,
            allocations: Vec::new(),
            payment_ids: Vec::new(),
            fully_paid_on: None,
            updated: ctx.now,
            unit_dp,
        },
    })
}

/// `POST /CreditNotes/{id}` with a new `Status`: `VOIDED` for an authorised credit note none of
/// whose credit was used, `DELETED` for a draft, `AUTHORISED` to approve a draft.
fn change_status(ctx: &Ctx, tenant: &mut Tenant, id: &str, body: Value) -> Reply {
    let Some(&i) = Uuid::parse_str(id)
        .ok()
        .and_then(|id| tenant.credit_note_by_id.get(&id))
    else {
        return Reply::not_found();
    };
    let el = elements(body, "CreditNotes")
        .into_iter()
        .next()
        .unwrap_or(Value::Null);
    let wanted = text(&el, "Status").map(|s| s.trim().to_ascii_uppercase());
    let note = &tenant.credit_notes[i];
    let used = !note.allocations.is_empty() || !note.payment_ids.is_empty();
    let error = match (note.status.as_str(), wanted.as_deref()) {
        (_, None) => Some("Only the Status of a credit note can be changed here".to_string()),
        ("AUTHORISED" | "PAID", Some("VOIDED")) if used => Some(
            "This document cannot be edited as it has a payment or credit note allocated to it."
                .into(),
        ),
        ("AUTHORISED", Some("VOIDED"))
        | ("DRAFT" | "SUBMITTED", Some("DELETED" | "AUTHORISED")) => None,
        (from, Some(to)) => Some(format!(
            "Credit note Status cannot change from {from} to {to}"
        )),
    };
    if let Some(e) = error {
        return batch_reply(
            ctx,
            "CreditNotes",
            vec![Err(failed_element(el, "CreditNoteID", &[e]))],
            Vec::new(),
        );
    }
    let note = &mut tenant.credit_notes[i];
    note.status = wanted.expect("checked");
    if matches!(note.status.as_str(), "VOIDED" | "DELETED") {
        note.remaining_credit = Decimal::ZERO;
    }
    note.updated = ctx.now;
    let note = note.clone();
    batch_reply(
        ctx,
        "CreditNotes",
        vec![Ok(render::credit_note(tenant, &note))],
        vec![Event::credit_note("UPDATE", note.id)],
    )
}

/// `PUT /CreditNotes/{id}/Allocations`: applies the credit note's credit to invoices.
pub fn allocate(ctx: &Ctx, world: &mut World, id: &str, body: Value) -> Reply {
    let tenant = world
        .tenant_mut(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    let Some(&note_index) = Uuid::parse_str(id)
        .ok()
        .and_then(|id| tenant.credit_note_by_id.get(&id))
    else {
        return Reply::not_found();
    };
    let mut remaining = tenant.credit_notes[note_index].remaining_credit;
    let mut due: HashMap<usize, Decimal> = HashMap::new();
    let drafts: Vec<Result<(usize, Decimal, NaiveDate), Value>> = elements(body, "Allocations")
        .into_iter()
        .map(|el| {
            let mut errors = Vec::new();
            let note = &tenant.credit_notes[note_index];
            if note.status != "AUTHORISED" {
                errors.push(format!(
                    "Credit note not of valid status for allocation: it is {}",
                    note.status
                ));
            }
            let invoice = field(&el, "Invoice")
                .and_then(|i| uuid_field(i, "InvoiceID").ok().flatten())
                .and_then(|id| tenant.invoice_by_id.get(&id).copied());
            match invoice {
                None => errors.push("Invoice could not be found (Invoice.InvoiceID)".into()),
                Some(i) => {
                    let inv = &tenant.invoices[i];
                    let side = if note.kind == "ACCRECCREDIT" {
                        "ACCREC"
                    } else {
                        "ACCPAY"
                    };
                    if inv.kind != side {
                        errors.push(format!(
                            "A {} credit note can only be allocated to an {side} invoice",
                            note.kind
                        ));
                    }
                    if inv.contact_id != note.contact_id {
                        errors.push(
                            "The invoice and the credit note must be for the same contact".into(),
                        );
                    }
                    if inv.status != "AUTHORISED" {
                        errors.push("Invoice not of valid status for allocation".into());
                    }
                }
            }
            let amount = match decimal(&el, "Amount") {
                Ok(Some(a)) if a > Decimal::ZERO => Some(crate::xero::totals::round2(a)),
                Ok(_) => {
                    errors.push("Allocation amount must be greater than zero".into());
                    None
                }
                Err(crate::xero::xjson::FieldError::Invalid(raw)) => {
                    errors.push(format!("Amount must be a number, not {raw}"));
                    None
                }
            };
            let date = match text(&el, "Date") {
                None => ctx.now.date_naive(),
                Some(raw) => parse_date(&raw).unwrap_or_else(|| {
                    errors.push(format!(
                        "The Date '{raw}' is not a valid date; use YYYY-MM-DD"
                    ));
                    ctx.now.date_naive()
                }),
            };
            if let (Some(i), Some(a)) = (invoice, amount) {
                let left = *due.entry(i).or_insert(tenant.invoices[i].amount_due);
                if a > left {
                    errors.push(
                        "Allocation amount exceeds the amount outstanding on the invoice".into(),
                    );
                }
                if a > remaining {
                    errors.push(
                        "Allocation amount exceeds the remaining credit on the credit note".into(),
                    );
                }
            }
            if !errors.is_empty() {
                return Err(failed_element(el, "AllocationID", &errors));
            }
            let (i, a) = (invoice.expect("checked"), amount.expect("checked"));
            *due.get_mut(&i).expect("entered above") -= a;
            remaining -= a;
            Ok((i, a, date))
        })
        .collect();
    if ctx.summarize_errors() && drafts.iter().any(Result::is_err) {
        let results = drafts.into_iter().map(|d| d.map(|_| Value::Null)).collect();
        return batch_reply(ctx, "Allocations", results, Vec::new());
    }
    let mut events = Vec::new();
    let results = drafts
        .into_iter()
        .map(|d| {
            d.map(|(i, amount, date)| {
                let allocation = Allocation {
                    id: Uuid::new_v4(),
                    invoice_id: tenant.invoices[i].id,
                    amount,
                    date,
                };
                let inv = &mut tenant.invoices[i];
                inv.amount_credited += amount;
                inv.amount_due -= amount;
                inv.updated = ctx.now;
                if inv.amount_due.is_zero() {
                    inv.status = "PAID".into();
                    inv.fully_paid_on = Some(date);
                }
                events.push(Event::invoice("UPDATE", inv.id));
                let note = &mut tenant.credit_notes[note_index];
                note.remaining_credit -= amount;
                note.allocations.push(allocation.clone());
                note.updated = ctx.now;
                if note.remaining_credit.is_zero() {
                    note.status = "PAID".into();
                    note.fully_paid_on = Some(date);
                }
                events.push(Event::credit_note("UPDATE", note.id));
                let note = tenant.credit_notes[note_index].clone();
                render::allocation(tenant, &note, &allocation)
            })
        })
        .collect();
    batch_reply(ctx, "Allocations", results, events)
}

/// Uses `amount` of a credit note's credit for a refund payment (the one place, with
/// [`allocate`], its remaining credit goes down).
pub fn refund(
    tenant: &mut Tenant,
    note: usize,
    payment: Uuid,
    amount: Decimal,
    date: NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
) {
    let note = &mut tenant.credit_notes[note];
    note.remaining_credit -= amount;
    note.payment_ids.push(payment);
    note.updated = now;
    if note.remaining_credit.is_zero() {
        note.status = "PAID".into();
        note.fully_paid_on = Some(date);
    }
}
