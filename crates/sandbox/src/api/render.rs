//! The sandbox's records as Xero's JSON, field for field with the official schemas.

use serde_json::{json, Value};

use crate::model::{Account, Contact, Invoice, Payment, TaxRate, Tenant};
use crate::xjson::{money, ms_date, ms_day, num};

pub fn organisation(t: &Tenant) -> Value {
    let (tax_number, timezone, year_end_month, sales_tax_period) = match t.country {
        crate::model::Country::Nz => ("101-202-303", "NEWZEALANDSTANDARDTIME", 3, "TWOMONTHS"),
        crate::model::Country::Uk => ("GB123456789", "GMTSTANDARDTIME", 12, "QUARTERLY1"),
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
        "Timezone": timezone,
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

pub fn invoice(t: &Tenant, inv: &Invoice) -> Value {
    let unit = |d: rust_decimal::Decimal| {
        let mut d = d;
        d.rescale(inv.unit_dp.max(2));
        num(d)
    };
    let lines: Vec<Value> = inv
        .lines
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
        .collect();
    let payments: Vec<Value> = inv
        .payment_ids
        .iter()
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
        .collect();
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
        "AmountCredited": money(rust_decimal::Decimal::ZERO),
        "SentToContact": false,
        "IsDiscounted": inv.lines.iter().any(|l| l.discount_rate.is_some()),
        "HasAttachments": false,
        "HasErrors": false,
        "Payments": payments,
        "Prepayments": [],
        "Overpayments": [],
        "CreditNotes": [],
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
