//! The sandbox's records as Xero's JSON, field for field with the official schemas.

use serde_json::{json, Value};

use crate::xero::model::{
    Account, Allocation, Contact, CreditNote, Invoice, LineItem, Payment, TaxRate, Tenant,
};
use crate::xero::xjson::{money, ms_date, ms_day, num};

pub fn organisation(t: &Tenant) -> Value {
    let (tax_number, timezone, year_end_month, sales_tax_period) = match t.country {
        crate::xero::model::Country::Nz => {
            ("101-202-303", "NEWZEALANDSTANDARDTIME", 3, "TWOMONTHS")
        }
        crate::xero::model::Country::Uk => ("GB123456789", "GMTSTANDARDTIME", 12, "QUARTERLY1"),
    };
    json!({
        "OrganisationID": t.id,
        "APIKey": "",
        "Name": t.name,
        "LegalName": t.name,
        "PaysTax": true,
        "Version": t.country.version(),
        "OrganisationType": "COMPANY",
        "BaseCurrency": t.country.currency(),
        "CountryCode": t.country.code(),
        "IsDemoCompany": false,
        "OrganisationStatus": "ACTIVE",
        "TaxNumber": tax_number,
        "FinancialYearEndDay": 31,
        "FinancialYearEndMonth": year_end_month,
        "SalesTaxBasis": "INVOICE",
        "SalesTaxPeriod": sales_tax_period,
        "DefaultSalesTax": "Tax Exclusive",
        "DefaultPurchasesTax": "Tax Exclusive",
        "CreatedDateUTC": ms_date(t.created),
        "OrganisationEntityType": "COMPANY",
        "Timezone": t.timezone.as_deref().unwrap_or(timezone),
        "ShortCode": t.short_code,
        "Edition": "BUSINESS",
        "Class": "PREMIUM",
        "LineOfBusiness": "Retail",
        "Addresses": [],
        "Phones": [],
        "ExternalLinks": [],
        "PaymentTerms": {},
    })
}

pub fn account(a: &Account, updated: chrono::DateTime<chrono::Utc>) -> Value {
    let mut v = json!({
        "AccountID": a.id,
        "Code": a.code,
        "Name": a.name,
        "Status": a.status,
        "Type": a.kind,
        "TaxType": a.tax_type,
        "Class": a.class,
        "EnablePaymentsToAccount": a.enable_payments,
        "ShowInExpenseClaims": a.class == "EXPENSE",
        "ReportingCode": format!("{}.{}", &a.class[..3], a.code),
        "ReportingCodeName": a.name,
        "HasAttachments": false,
        "UpdatedDateUTC": ms_date(updated),
        "AddToWatchlist": false,
    });
    if let Some(system) = &a.system_account {
        v["SystemAccount"] = json!(system);
    }
    if let Some(number) = &a.bank_account_number {
        v["BankAccountNumber"] = json!(number);
        v["BankAccountType"] = json!("BANK");
    }
    if let Some(d) = &a.description {
        v["Description"] = json!(d);
    }
    v
}

pub fn tax_rate(r: &TaxRate) -> Value {
    json!({
        "Name": r.name,
        "TaxType": r.tax_type,
        "ReportTaxType": r.report_tax_type,
        "CanApplyToAssets": true,
        "CanApplyToEquity": true,
        "CanApplyToExpenses": true,
        "CanApplyToLiabilities": true,
        "CanApplyToRevenue": true,
        "DisplayTaxRate": num(r.rate.normalize()),
        "EffectiveRate": num(r.rate.normalize()),
        "Status": r.status,
        "TaxComponents": [{
            "Name": if r.name.contains("VAT") { "VAT" } else { "GST" },
            "Rate": num(r.rate.normalize()),
            "IsCompound": false,
            "IsNonRecoverable": false,
        }],
    })
}

pub fn contact(c: &Contact) -> Value {
    let mut v = json!({
        "ContactID": c.id,
        "ContactStatus": c.status,
        "Name": c.name,
        "IsSupplier": c.is_supplier,
        "IsCustomer": c.is_customer,
        "Addresses": [],
        "Phones": [],
        "UpdatedDateUTC": ms_date(c.updated),
        "ContactGroups": [],
        "HasAttachments": false,
        "HasValidationErrors": false,
    });
    for (key, value) in [
        ("ContactNumber", &c.contact_number),
        ("FirstName", &c.first_name),
        ("LastName", &c.last_name),
        ("EmailAddress", &c.email),
    ] {
        if let Some(value) = value {
            v[key] = json!(value);
        }
    }
    v
}

/// The short contact form an invoice carries.
fn invoice_contact(c: Option<&Contact>, id: uuid::Uuid) -> Value {
    match c {
        Some(c) => {
            let mut v = json!({"ContactID": c.id, "Name": c.name, "ContactStatus": c.status, "HasValidationErrors": false});
            if let Some(n) = &c.contact_number {
                v["ContactNumber"] = json!(n);
            }
            v
        }
        None => json!({"ContactID": id}),
    }
}

/// Line items as Xero renders them, unit amounts to the `unitdp` they were written with.
fn line_items(t: &Tenant, lines: &[LineItem], unit_dp: u32) -> Vec<Value> {
    let unit = |d: rust_decimal::Decimal| {
        let mut d = d;
        d.rescale(unit_dp.max(2));
        num(d)
    };
    lines
        .iter()
        .map(|l| {
            let mut v = json!({
                "LineItemID": l.id,
                "Quantity": num(l.quantity.normalize()),
                "UnitAmount": unit(l.unit_amount),
                "TaxAmount": money(l.tax_amount),
                "LineAmount": money(l.line_amount),
                "Tracking": [],
            });
            for (key, value) in [
                ("Description", &l.description),
                ("AccountCode", &l.account_code),
                ("TaxType", &l.tax_type),
                ("ItemCode", &l.item_code),
            ] {
                if let Some(value) = value {
                    v[key] = json!(value);
                }
            }
            if let Some(code) = &l.account_code {
                if let Some(a) = t.account_by_code(code) {
                    v["AccountID"] = json!(a.id);
                }
            }
            if let Some(d) = l.discount_rate {
                v["DiscountRate"] = num(d.normalize());
            }
            v
        })
        .collect()
}

pub fn invoice(t: &Tenant, inv: &Invoice) -> Value {
    let lines = line_items(t, &inv.lines, inv.unit_dp);
    let payments = short_payments(t, &inv.payment_ids);
    let mut v = json!({
        "Type": inv.kind,
        "InvoiceID": inv.id,
        "Contact": invoice_contact(t.contact(inv.contact_id), inv.contact_id),
        "Date": ms_day(inv.date),
        "Status": inv.status,
        "LineAmountTypes": inv.mode.as_str(),
        "LineItems": lines,
        "SubTotal": money(inv.sub_total),
        "TotalTax": money(inv.total_tax),
        "Total": money(inv.total),
        "TotalDiscount": money(rust_decimal::Decimal::ZERO),
        "UpdatedDateUTC": ms_date(inv.updated),
        "CurrencyCode": inv.currency,
        "CurrencyRate": 1,
        "AmountDue": money(inv.amount_due),
        "AmountPaid": money(inv.amount_paid),
        "AmountCredited": money(inv.amount_credited),
        "SentToContact": false,
        "IsDiscounted": inv.lines.iter().any(|l| l.discount_rate.is_some()),
        "HasAttachments": false,
        "HasErrors": false,
        "Payments": payments,
        "Prepayments": [],
        "Overpayments": [],
        "CreditNotes": credited(t, inv),
    });
    if let Some(n) = &inv.number {
        v["InvoiceNumber"] = json!(n);
    }
    if let Some(r) = &inv.reference {
        v["Reference"] = json!(r);
    }
    if let Some(d) = inv.due_date {
        v["DueDate"] = json!(ms_day(d));
    }
    if let Some(d) = inv.fully_paid_on {
        v["FullyPaidOnDate"] = json!(ms_day(d));
    }
    v
}

/// Payments in the short form an invoice or a credit note carries them.
fn short_payments(t: &Tenant, ids: &[uuid::Uuid]) -> Vec<Value> {
    ids.iter()
        .filter_map(|id| t.payments.iter().find(|p| p.id == *id))
        .map(|p| {
            json!({
                "PaymentID": p.id,
                "Date": ms_day(p.date),
                "Amount": money(p.amount),
                "CurrencyRate": 1,
                "HasAccount": true,
                "HasValidationErrors": false,
            })
        })
        .collect()
}

/// The credit notes allocated to an invoice, in the short form an invoice carries them.
fn credited(t: &Tenant, inv: &Invoice) -> Vec<Value> {
    t.credit_notes
        .iter()
        .filter(|c| c.allocations.iter().any(|a| a.invoice_id == inv.id))
        .map(|c| {
            let applied: rust_decimal::Decimal = c
                .allocations
                .iter()
                .filter(|a| a.invoice_id == inv.id)
                .map(|a| a.amount)
                .sum();
            let mut v = json!({
                "CreditNoteID": c.id,
                "Type": c.kind,
                "Date": ms_day(c.date),
                "Total": money(c.total),
                "AppliedAmount": num(applied.normalize()),
                "LineItems": [],
                "Allocations": [],
                "Payments": [],
            });
            if let Some(n) = &c.number {
                v["CreditNoteNumber"] = json!(n);
            }
            v
        })
        .collect()
}

pub fn credit_note(t: &Tenant, c: &CreditNote) -> Value {
    let allocations: Vec<Value> = c.allocations.iter().map(|a| allocation(t, c, a)).collect();
    let payments = short_payments(t, &c.payment_ids);
    let mut v = json!({
        "Type": c.kind,
        "CreditNoteID": c.id,
        "Contact": invoice_contact(t.contact(c.contact_id), c.contact_id),
        "Date": ms_day(c.date),
        "Status": c.status,
        "LineAmountTypes": c.mode.as_str(),
        "LineItems": line_items(t, &c.lines, c.unit_dp),
        "SubTotal": money(c.sub_total),
        "TotalTax": money(c.total_tax),
        "Total": money(c.total),
        "UpdatedDateUTC": ms_date(c.updated),
        "CurrencyCode": c.currency,
        "CurrencyRate": 1,
        "RemainingCredit": money(c.remaining_credit),
        "Allocations": allocations,
        "Payments": payments,
        "SentToContact": false,
        "HasAttachments": false,
        "HasErrors": false,
    });
    if let Some(n) = &c.number {
        v["CreditNoteNumber"] = json!(n);
    }
    if let Some(r) = &c.reference {
        v["Reference"] = json!(r);
    }
    if let Some(d) = c.fully_paid_on {
        v["FullyPaidOnDate"] = json!(ms_day(d));
    }
    v
}

pub fn allocation(t: &Tenant, c: &CreditNote, a: &Allocation) -> Value {
    let mut invoice = json!({"InvoiceID": a.invoice_id, "LineItems": []});
    if let Some(n) = t.invoice(a.invoice_id).and_then(|i| i.number.clone()) {
        invoice["InvoiceNumber"] = json!(n);
    }
    let mut note = json!({"CreditNoteID": c.id, "LineItems": []});
    if let Some(n) = &c.number {
        note["CreditNoteNumber"] = json!(n);
    }
    json!({
        "AllocationID": a.id,
        "Amount": money(a.amount),
        "Date": ms_day(a.date),
        "Invoice": invoice,
        "CreditNote": note,
        "IsDeleted": false,
    })
}

pub fn payment(t: &Tenant, p: &Payment) -> Value {
    let inv = t.invoice(p.invoice_id);
    let account = t.accounts.iter().find(|a| a.id == p.account_id);
    let mut v = json!({
        "PaymentID": p.id,
        "Date": ms_day(p.date),
        "Amount": money(p.amount),
        "BankAmount": money(p.amount),
        "CurrencyRate": 1,
        "PaymentType": p.payment_type,
        "Status": p.status,
        "UpdatedDateUTC": ms_date(p.updated),
        "HasAccount": true,
        "IsReconciled": false,
        "HasValidationErrors": false,
        "Account": {"AccountID": p.account_id, "Code": account.map(|a| a.code.clone())},
    });
    if let Some(r) = &p.reference {
        v["Reference"] = json!(r);
    }
    if let Some(c) = p.credit_note_id.and_then(|id| t.credit_note(id)) {
        let mut n = json!({
            "CreditNoteID": c.id,
            "Type": c.kind,
            "Contact": invoice_contact(t.contact(c.contact_id), c.contact_id),
            "CurrencyCode": c.currency,
            "LineItems": [],
        });
        if let Some(number) = &c.number {
            n["CreditNoteNumber"] = json!(number);
        }
        v["CreditNote"] = n;
    }
    if let Some(inv) = inv {
        let mut i = json!({
            "InvoiceID": inv.id,
            "Type": inv.kind,
            "Contact": invoice_contact(t.contact(inv.contact_id), inv.contact_id),
            "CurrencyCode": inv.currency,
            "LineItems": [],
        });
        if let Some(n) = &inv.number {
            i["InvoiceNumber"] = json!(n);
        }
        v["Invoice"] = i;
    }
    v
}
