//! Invoices: `GET` (by id or number, `where`, `Statuses`, `IDs`, paging, `If-Modified-Since`), `PUT`
//! (create) and `POST` (create or update), in batches, validated as Xero validates and totalled by
//! Xero's per-line rule.

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

use super::{batch_reply, elements, failed_element, listing, render, Ctx, Reply};
use crate::xero::model::{Contact, Invoice, LineItem, Tenant, World};
use crate::xero::totals::{line_amount, line_tax, totals, TaxMode};
use crate::xero::webhooks::Event;
use crate::xero::xjson::{decimal, field, parse_date, text, uuid_field};

pub fn get(ctx: &Ctx, world: &World, id: Option<&str>) -> Result<Reply, Reply> {
    let tenant = world
        .tenant(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    let mut items: Vec<&Invoice> = match id {
        Some(id) => {
            let found = match Uuid::parse_str(id) {
                Ok(uuid) => tenant.invoice(uuid),
                Err(_) => tenant.invoice_by_number(id).or_else(|| {
                    tenant
                        .invoices
                        .iter()
                        .find(|i| i.number.as_deref() == Some(id))
                }),
            };
            vec![found.ok_or_else(Reply::not_found)?]
        }
        None => tenant.invoices.iter().collect(),
    };
    let list = |name: &str| {
        ctx.param(name).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .collect::<HashSet<String>>()
        })
    };
    if let Some(ids) = list("IDs") {
        items.retain(|i| ids.contains(&i.id.to_string()));
    }
    if let Some(numbers) = list("InvoiceNumbers") {
        items.retain(|i| {
            i.number
                .as_ref()
                .is_some_and(|n| numbers.contains(&n.to_lowercase()))
        });
    }
    if let Some(contacts) = list("ContactIDs") {
        items.retain(|i| contacts.contains(&i.contact_id.to_string()));
    }
    if let Some(statuses) = list("Statuses") {
        items.retain(|i| statuses.contains(&i.status.to_lowercase()));
    }
    let rendered = items
        .into_iter()
        .map(|i| render::invoice(tenant, i))
        .collect();
    listing::list(ctx, "Invoices", rendered)
}

/// What one valid element will do when the batch is applied.
struct Draft {
    existing: Option<usize>,
    invoice: Invoice,
    new_contact: Option<Contact>,
}

/// What earlier elements of the same batch claimed.
#[derive(Default)]
pub(super) struct Batch {
    pub numbers: HashSet<String>,
    pub new_contacts: HashMap<String, Uuid>,
}

pub fn write(
    ctx: &Ctx,
    world: &mut World,
    path_id: Option<&str>,
    body: Value,
    create_only: bool,
) -> Reply {
    let unit_dp: u32 = match ctx.param("unitdp").map(str::trim) {
        Some("4") => 4,
        _ => 2,
    };
    let tenant = world
        .tenant_mut(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    let mut batch = Batch::default();
    let drafts: Vec<Result<Draft, Value>> = elements(body, "Invoices")
        .into_iter()
        .map(|el| {
            validate(ctx, tenant, &el, path_id, create_only, unit_dp, &mut batch)
                .map_err(|errors| failed_element(el, "InvoiceID", &errors))
        })
        .collect();
    if ctx.summarize_errors() && drafts.iter().any(Result::is_err) {
        let results = drafts.into_iter().map(|d| d.map(|_| Value::Null)).collect();
        return batch_reply(ctx, "Invoices", results, Vec::new());
    }
    let mut events = Vec::new();
    let results = drafts
        .into_iter()
        .map(|draft| draft.map(|d| apply(tenant, d, &mut events)))
        .collect();
    batch_reply(ctx, "Invoices", results, events)
}

fn apply(tenant: &mut Tenant, draft: Draft, events: &mut Vec<Event>) -> Value {
    let Draft {
        existing,
        mut invoice,
        new_contact,
    } = draft;
    if let Some(c) = new_contact {
        events.push(Event::contact("CREATE", c.id));
        tenant.add_contact(c);
    }
    if invoice.kind == "ACCREC" && invoice.number.is_none() {
        loop {
            let n = format!("INV-{:04}", tenant.next_invoice_number);
            tenant.next_invoice_number += 1;
            if tenant.invoice_by_number(&n).is_none() {
                invoice.number = Some(n);
                break;
            }
        }
    }
    match existing {
        Some(i) => {
            let old_number = tenant.invoices[i].number.clone();
            if invoice.kind == "ACCREC" && old_number != invoice.number {
                if let Some(n) = old_number {
                    tenant.invoice_by_number.remove(&n.to_lowercase());
                }
                if let Some(n) = &invoice.number {
                    tenant.invoice_by_number.insert(n.to_lowercase(), i);
                }
            }
            events.push(Event::invoice("UPDATE", invoice.id));
            tenant.invoices[i] = invoice;
            render::invoice(tenant, &tenant.invoices[i])
        }
        None => {
            events.push(Event::invoice("CREATE", invoice.id));
            let v = render::invoice(tenant, &invoice);
            tenant.add_invoice(invoice);
            v
        }
    }
}

fn round_unit(d: Decimal, dp: u32) -> Decimal {
    d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

#[allow(clippy::too_many_lines)]
fn validate(
    ctx: &Ctx,
    tenant: &Tenant,
    el: &Value,
    path_id: Option<&str>,
    create_only: bool,
    unit_dp: u32,
    batch: &mut Batch,
) -> Result<Draft, Vec<String>> {
    let mut errors: Vec<String> = Vec::new();
    if !el.is_object() {
        return Err(vec!["Each invoice must be a JSON object".into()]);
    }

    // Which invoice, if any, this element updates.
    let id = match path_id {
        Some(p) => match Uuid::parse_str(p) {
            Ok(id) => Some(id),
            Err(_) => tenant.invoice_by_number(p).map(|i| i.id).or_else(|| {
                errors.push(format!("Invoice '{p}' could not be found"));
                None
            }),
        },
        None => uuid_field(el, "InvoiceID").unwrap_or_else(|_| {
            errors.push("InvoiceID must be a GUID".into());
            None
        }),
    };
    let number_in = text(el, "InvoiceNumber")
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let type_in = text(el, "Type").map(|t| t.trim().to_ascii_uppercase());
    let existing: Option<usize> = match id {
        Some(id) => match tenant.invoice_by_id.get(&id) {
            Some(_) if create_only => {
                errors.push(format!(
                    "An invoice with InvoiceID {id} already exists; use POST to update it"
                ));
                None
            }
            Some(&i) => Some(i),
            None => {
                errors.push(format!("Invoice with InvoiceID {id} could not be found"));
                None
            }
        },
        None if !create_only && type_in.as_deref().unwrap_or("ACCREC") == "ACCREC" => number_in
            .as_deref()
            .and_then(|n| tenant.invoice_by_number.get(&n.to_lowercase()).copied()),
        None => None,
    };
    let base = existing.map(|i| &tenant.invoices[i]);
    if let Some(b) = base {
        if matches!(b.status.as_str(), "PAID" | "VOIDED" | "DELETED") {
            errors.push(format!(
                "Invoice not of valid status for modification: it is {}",
                b.status
            ));
        }
    }

    let kind = match type_in.or_else(|| base.map(|b| b.kind.clone())) {
        Some(k) if k == "ACCREC" || k == "ACCPAY" => k,
        Some(k) => {
            errors.push(format!(
                "Invoice Type '{k}' is not valid; use ACCREC (sales) or ACCPAY (bills)"
            ));
            "ACCREC".into()
        }
        None => {
            errors.push("Invoice Type must be specified".into());
            "ACCREC".into()
        }
    };
    let mode =
        tax_mode(el, &mut errors).unwrap_or_else(|| base.map_or(TaxMode::Exclusive, |b| b.mode));
    let currency = currency(tenant, el, &mut errors);
    let mut date_field = |name: &str| -> Option<NaiveDate> {
        let raw = text(el, name)?;
        let parsed = parse_date(&raw);
        if parsed.is_none() {
            errors.push(format!(
                "The {name} '{raw}' is not a valid date; use YYYY-MM-DD"
            ));
        }
        parsed
    };
    let date = date_field("Date")
        .or(base.map(|b| b.date))
        .unwrap_or_else(|| ctx.now.date_naive());
    let due_date = date_field("DueDate").or(base.and_then(|b| b.due_date));

    let status = text(el, "Status").map(|s| s.trim().to_ascii_uppercase());
    let status = match (base, status) {
        (None, None) => "DRAFT".to_string(),
        (None, Some(s)) => {
            if !matches!(s.as_str(), "DRAFT" | "SUBMITTED" | "AUTHORISED") {
                errors.push(format!("Invoice Status '{s}' is not valid for a new invoice; use DRAFT, SUBMITTED or AUTHORISED"));
            }
            s
        }
        (Some(b), None) => b.status.clone(),
        (Some(b), Some(s)) => {
            let settled = !b.amount_paid.is_zero() || !b.amount_credited.is_zero();
            let allowed = match b.status.as_str() {
                "DRAFT" | "SUBMITTED" => {
                    matches!(s.as_str(), "DRAFT" | "SUBMITTED" | "AUTHORISED" | "DELETED")
                }
                "AUTHORISED" => s == "AUTHORISED" || (s == "VOIDED" && !settled),
                _ => false,
            };
            if b.status == "AUTHORISED" && s == "VOIDED" && settled {
                errors.push("This document cannot be edited as it has a payment or credit note allocated to it.".into());
            } else if !allowed {
                errors.push(format!(
                    "Invoice Status cannot change from {} to {s}",
                    b.status
                ));
            }
            s
        }
    };
    let approved = matches!(status.as_str(), "AUTHORISED" | "SUBMITTED");

    let number = number_in.or(base.and_then(|b| b.number.clone()));
    if kind == "ACCREC" {
        if let Some(n) = &number {
            let key = n.to_lowercase();
            let taken = tenant
                .invoice_by_number
                .get(&key)
                .is_some_and(|&i| Some(i) != existing);
            if taken || batch.numbers.contains(&key) {
                errors.push("Invoice # must be unique.".into());
            }
        }
    }
    let reference = text(el, "Reference").or(base.and_then(|b| b.reference.clone()));

    // Lines.
    let lines = match field(el, "LineItems") {
        None => base.map(|b| b.lines.clone()).unwrap_or_default(),
        Some(items) => {
            if base.is_some_and(|b| !b.amount_paid.is_zero() || !b.amount_credited.is_zero()) {
                errors.push("This document cannot be edited as it has a payment or credit note allocated to it.".into());
            }
            line_items(tenant, items, mode, unit_dp, approved, &mut errors)
        }
    };
    if approved && lines.is_empty() {
        errors.push("An invoice must have at least one line item before it is approved".into());
    }
    let t = totals(lines.iter().map(|l| (l.line_amount, l.tax_amount)), mode);
    if t.total < Decimal::ZERO {
        errors.push("The invoice total cannot be negative; use a credit note instead".into());
    }

    // The contact, resolved last so a new one is only made for an otherwise valid invoice.
    let mut new_contact = None;
    let contact_id = match field(el, "Contact") {
        None => match base {
            Some(b) => Some(b.contact_id),
            None => {
                errors.push("A Contact must be specified for this type of transaction".into());
                None
            }
        },
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
    if kind == "ACCREC" {
        if let Some(n) = &number {
            batch.numbers.insert(n.to_lowercase());
        }
    }
    let amount_paid = base.map_or(Decimal::ZERO, |b| b.amount_paid);
    let amount_credited = base.map_or(Decimal::ZERO, |b| b.amount_credited);
    let amount_due = if matches!(status.as_str(), "VOIDED" | "DELETED") {
        Decimal::ZERO
    } else {
        t.total - amount_paid - amount_credited
    };
    Ok(Draft {
        existing,
        new_contact,
        invoice: Invoice {
            id: base.map_or_else(Uuid::new_v4, |b| b.id),
            kind,
            contact_id: contact_id.expect("no errors means a contact"),
            number,
            reference,
            date,
            due_date,
            status,
            mode,
            currency,
            lines,
            sub_total: t.sub_total,
            total_tax: t.total_tax,
            total: t.total,
            amount_paid,
            amount_due,
            fully_paid_on: base.and_then(|b| b.fully_paid_on),
            payment_ids: base.map(|b| b.payment_ids.clone()).unwrap_or_default(),
            updated: ctx.now,
            unit_dp,
            amount_credited,
        },
    })
}

/// `LineAmountTypes` when given (a wrong one is an error, read as Exclusive).
pub(super) fn tax_mode(el: &Value, errors: &mut Vec<String>) -> Option<TaxMode> {
    let t = text(el, "LineAmountTypes")?;
    Some(TaxMode::parse(t.trim()).unwrap_or_else(|| {
        errors.push(format!(
            "LineAmountTypes '{t}' is not valid; use Exclusive, Inclusive or NoTax"
        ));
        TaxMode::Exclusive
    }))
}

/// `CurrencyCode`, the organisation's when not given; another one is an error.
pub(super) fn currency(tenant: &Tenant, el: &Value, errors: &mut Vec<String>) -> String {
    let currency = text(el, "CurrencyCode")
        .map(|c| c.trim().to_ascii_uppercase())
        .unwrap_or_else(|| tenant.country.currency().to_string());
    if currency != tenant.country.currency() {
        errors.push(format!(
            "Organisation is not subscribed to currency {currency}"
        ));
    }
    currency
}

/// The `LineItems` given, each checked (every problem, numbered from 1).
pub(super) fn line_items(
    tenant: &Tenant,
    items: &Value,
    mode: TaxMode,
    unit_dp: u32,
    approved: bool,
    errors: &mut Vec<String>,
) -> Vec<LineItem> {
    let Value::Array(items) = items else {
        errors.push("LineItems must be a list of line items".into());
        return Vec::new();
    };
    let mut lines = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        match line(tenant, item, n + 1, mode, unit_dp, approved) {
            Ok(l) => lines.push(l),
            Err(mut e) => errors.append(&mut e),
        }
    }
    lines
}

pub(super) fn resolve_contact(
    tenant: &Tenant,
    c: &Value,
    errors: &mut Vec<String>,
    may_create: bool,
    batch: &mut Batch,
    ctx: &Ctx,
    new_contact: &mut Option<Contact>,
) -> Option<Uuid> {
    let archived = |c: &Contact, errors: &mut Vec<String>| {
        errors.push(format!(
            "The contact '{}' is archived and cannot be used on a transaction",
            c.name
        ));
    };
    if let Some(id) = uuid_field(c, "ContactID").unwrap_or_else(|_| {
        errors.push("Contact.ContactID must be a GUID".into());
        None
    }) {
        return match tenant.contact(id) {
            Some(found) if found.status == "ARCHIVED" => {
                archived(found, errors);
                None
            }
            Some(found) => Some(found.id),
            None => {
                errors.push(format!(
                    "The contact with ContactID {id} could not be found"
                ));
                None
            }
        };
    }
    if let Some(number) = text(c, "ContactNumber").filter(|n| !n.trim().is_empty()) {
        if let Some(found) = tenant.contact_by_number(number.trim()) {
            if found.status == "ARCHIVED" {
                archived(found, errors);
                return None;
            }
            return Some(found.id);
        }
    }
    let Some(name) = text(c, "Name")
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
    else {
        errors.push("A Contact must be specified for this type of transaction".into());
        return None;
    };
    if let Some(found) = tenant.contact_by_name(&name) {
        return Some(found.id);
    }
    if let Some(found) = tenant
        .contacts
        .iter()
        .find(|c| c.status == "ARCHIVED" && c.name.eq_ignore_ascii_case(&name))
    {
        archived(found, errors);
        return None;
    }
    if let Some(id) = batch.new_contacts.get(&name.to_lowercase()) {
        return Some(*id);
    }
    if !may_create {
        return None;
    }
    // Xero makes a contact for a name it does not know.
    let contact = Contact {
        id: Uuid::new_v4(),
        name: name.clone(),
        contact_number: text(c, "ContactNumber").filter(|n| !n.trim().is_empty()),
        first_name: None,
        last_name: None,
        email: text(c, "EmailAddress"),
        status: "ACTIVE".into(),
        is_customer: true,
        is_supplier: false,
        updated: ctx.now,
    };
    batch.new_contacts.insert(name.to_lowercase(), contact.id);
    let id = contact.id;
    *new_contact = Some(contact);
    Some(id)
}

fn line(
    tenant: &Tenant,
    item: &Value,
    n: usize,
    mode: TaxMode,
    unit_dp: u32,
    approved: bool,
) -> Result<LineItem, Vec<String>> {
    let mut errors = Vec::new();
    let mut number = |name: &str| match decimal(item, name) {
        Ok(v) => v,
        Err(crate::xero::xjson::FieldError::Invalid(raw)) => {
            errors.push(format!("Line {n}: {name} must be a number, not {raw}"));
            None
        }
    };
    let quantity = number("Quantity");
    let unit_in = number("UnitAmount");
    let given_line_amount = number("LineAmount");
    let discount_rate = number("DiscountRate");
    let quantity = quantity.unwrap_or(Decimal::ONE);
    let unit_amount = match (unit_in, given_line_amount) {
        (Some(u), _) => round_unit(u, unit_dp),
        (None, Some(la)) if !quantity.is_zero() => round_unit(la / quantity, unit_dp),
        _ => Decimal::ZERO,
    };
    let amount = match (unit_in, given_line_amount) {
        (None, Some(la)) => crate::xero::totals::round2(la),
        _ => line_amount(quantity, unit_amount, discount_rate),
    };
    if let (Some(_), Some(la)) = (unit_in, given_line_amount) {
        if crate::xero::totals::round2(la) != amount {
            errors.push(format!(
                "Line {n}: LineAmount {la} does not match Quantity × UnitAmount ({amount})"
            ));
        }
    }
    if let Some(d) = discount_rate {
        if d < Decimal::ZERO || d > Decimal::ONE_HUNDRED {
            errors.push(format!("Line {n}: DiscountRate must be between 0 and 100"));
        }
    }
    let account_code = text(item, "AccountCode")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let account = match &account_code {
        Some(code) => {
            match tenant.account_by_code(code) {
                None => {
                    errors.push(format!(
                        "Account code '{code}' is not a valid code for this document."
                    ));
                    None
                }
                Some(a) if !a.is_active() => {
                    errors.push(format!(
                    "Account code '{code}' has been archived, or has been deleted. Each line item must reference a valid account."
                ));
                    None
                }
                Some(a) if a.system_account.is_some() => {
                    errors.push(format!("Account code '{code}' is a system account and cannot be used on a line item."));
                    None
                }
                Some(a) => Some(a),
            }
        }
        None => {
            if approved {
                errors.push(format!(
                    "Line {n}: an AccountCode is required on every line of an approved invoice"
                ));
            }
            None
        }
    };
    let tax_type = match text(item, "TaxType")
        .map(|t| t.trim().to_ascii_uppercase())
        .filter(|t| !t.is_empty())
    {
        Some(t) => match tenant.tax_rate(&t) {
            Some(r) if r.status == "ACTIVE" => Some(r.tax_type.to_string()),
            _ => {
                errors.push(format!(
                    "The TaxType code '{t}' does not exist or cannot be used with this type of transaction."
                ));
                None
            }
        },
        None if mode == TaxMode::NoTax => Some("NONE".to_string()),
        None => account.map(|a| a.tax_type.to_string()),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let rate = tax_type
        .as_deref()
        .and_then(|t| tenant.tax_rate(t))
        .map_or(Decimal::ZERO, |r| r.rate);
    Ok(LineItem {
        id: Uuid::new_v4(),
        description: text(item, "Description"),
        quantity,
        unit_amount,
        item_code: text(item, "ItemCode"),
        account_code: account.map(|a| a.code.clone()),
        tax_type,
        tax_amount: line_tax(amount, rate, mode),
        line_amount: amount,
        discount_rate,
    })
}
