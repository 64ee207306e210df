//! The seeded demo world: one registered app, the demo user, and two organisations with realistic
//! charts of accounts and their country's tax rates. Ids are fixed so docs and scripts can name them.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::HashMap;
use uuid::Uuid;

use crate::harness::secret::Secret;
use crate::settings::Settings;
use crate::xero::model::{Account, App, Contact, Country, TaxRate, Tenant, User, World};

pub const DEMO_USER_EMAIL: &str = "demo@ledgerlink.test";
pub const DEMO_USER_PASSWORD: &str = "demo";
pub const DEMO_USER_ID: Uuid = Uuid::from_u128(0x6a1f0c2e_4b3d_4e5f_8a9b_0c1d2e3f4a01);
pub const DEMO_NZ_TENANT_ID: Uuid = Uuid::from_u128(0x3c9d1a2b_7e4f_4a6b_9c8d_1e2f3a4b5c01);
pub const DEMO_UK_TENANT_ID: Uuid = Uuid::from_u128(0x3c9d1a2b_7e4f_4a6b_9c8d_1e2f3a4b5c02);
pub const APP_NAME: &str = "Ledgerlink Demo";

pub fn world(settings: &Settings, now: DateTime<Utc>) -> World {
    let app = App {
        client_id: settings.client_id.clone(),
        client_secret: settings.client_secret.clone(),
        name: APP_NAME.to_string(),
        redirect_uris: settings.redirect_uris.clone(),
        webhook_url: settings.webhook_url.clone(),
        webhook_key: settings.webhook_key.clone(),
        created_at: App::seeded_on(),
        certified: false,
        tier: "starter".into(),
    };
    let user = User {
        id: DEMO_USER_ID,
        email: DEMO_USER_EMAIL.to_string(),
        password: Secret::new(DEMO_USER_PASSWORD),
        first_name: "Demo".into(),
        last_name: "User".into(),
    };
    let tenants = vec![
        tenant(
            DEMO_NZ_TENANT_ID,
            "Demo Company (NZ)",
            Country::Nz,
            DEMO_USER_ID,
            now,
        ),
        tenant(
            DEMO_UK_TENANT_ID,
            "Demo Company (UK)",
            Country::Uk,
            DEMO_USER_ID,
            now,
        ),
    ];
    World {
        apps: HashMap::from([(app.client_id.clone(), app)]),
        users: vec![user],
        tenants,
        codes: HashMap::new(),
        grants: HashMap::new(),
        refresh_tokens: HashMap::new(),
        connections: Vec::new(),
        tickets: HashMap::new(),
        sessions: HashMap::new(),
        limits: settings.limits,
    }
}

/// A new organisation with its country's chart of accounts, tax rates and a few contacts.
pub fn tenant(id: Uuid, name: &str, country: Country, member: Uuid, now: DateTime<Utc>) -> Tenant {
    let mut t = Tenant {
        id,
        name: name.to_string(),
        country,
        short_code: format!("!{}", &id.simple().to_string()[..5]),
        timezone: None,
        created: now,
        members: vec![member],
        accounts: accounts(id, country),
        tax_rates: tax_rates(country),
        contacts: Vec::new(),
        contact_by_id: HashMap::new(),
        invoices: Vec::new(),
        invoice_by_id: HashMap::new(),
        invoice_by_number: HashMap::new(),
        payments: Vec::new(),
        next_invoice_number: 1,
        credit_notes: Vec::new(),
        credit_note_by_id: HashMap::new(),
        next_credit_note_number: 1,
    };
    for (i, (name, number, status)) in [
        ("Ridgeway University", Some("RIDGE-01"), "ACTIVE"),
        ("City Limousines", None, "ACTIVE"),
        ("Old Supplies Ltd", None, "ARCHIVED"),
    ]
    .into_iter()
    .enumerate()
    {
        t.add_contact(Contact {
            id: derived(id, 0xC0 + i as u128),
            name: name.into(),
            contact_number: number.map(Into::into),
            first_name: None,
            last_name: None,
            email: None,
            status: status.into(),
            is_customer: true,
            is_supplier: false,
            updated: now,
        });
    }
    t
}

/// Stable per-tenant ids for seeded rows, so a reset gives the same ids back.
fn derived(tenant: Uuid, n: u128) -> Uuid {
    Uuid::from_u128(tenant.as_u128() ^ (n << 64) ^ n)
}

type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    Option<&'static str>,
    &'static str,
);

fn accounts(tenant: Uuid, country: Country) -> Vec<Account> {
    let (out, inp, none) = ("OUTPUT2", "INPUT2", "NONE");
    let (tax_name, rows): (&str, Vec<Row>) = match country {
        Country::Nz => (
            "GST",
            vec![
                (
                    "090",
                    "Business Bank Account",
                    "BANK",
                    "ASSET",
                    none,
                    true,
                    None,
                    "ACTIVE",
                ),
                (
                    "091",
                    "Business Savings Account",
                    "BANK",
                    "ASSET",
                    none,
                    true,
                    None,
                    "ACTIVE",
                ),
                (
                    "092",
                    "Cash Drawer",
                    "BANK",
                    "ASSET",
                    none,
                    true,
                    None,
                    "ACTIVE",
                ),
            ],
        ),
        Country::Uk => (
            "VAT",
            vec![
                (
                    "090",
                    "Business Current Account",
                    "BANK",
                    "ASSET",
                    none,
                    true,
                    None,
                    "ACTIVE",
                ),
                (
                    "091",
                    "Business Savings Account",
                    "BANK",
                    "ASSET",
                    none,
                    true,
                    None,
                    "ACTIVE",
                ),
                (
                    "092",
                    "Petty Cash",
                    "BANK",
                    "ASSET",
                    none,
                    true,
                    None,
                    "ACTIVE",
                ),
            ],
        ),
    };
    let mut all = rows;
    all.extend([
        (
            "200", "Sales", "REVENUE", "REVENUE", out, false, None, "ACTIVE",
        ),
        (
            "201",
            "Sales - Legacy Products",
            "REVENUE",
            "REVENUE",
            out,
            false,
            None,
            "ARCHIVED",
        ),
        (
            "260",
            "Other Revenue",
            "REVENUE",
            "REVENUE",
            out,
            false,
            None,
            "ACTIVE",
        ),
        (
            "270",
            "Interest Income",
            "REVENUE",
            "REVENUE",
            none,
            false,
            None,
            "ACTIVE",
        ),
        (
            "310",
            "Cost of Goods Sold",
            "DIRECTCOSTS",
            "EXPENSE",
            inp,
            false,
            None,
            "ACTIVE",
        ),
        (
            "400",
            "Advertising",
            "EXPENSE",
            "EXPENSE",
            inp,
            false,
            None,
            "ACTIVE",
        ),
        (
            "404",
            "Bank Fees",
            "EXPENSE",
            "EXPENSE",
            none,
            false,
            None,
            "ACTIVE",
        ),
        (
            "408",
            "Cash Over/Short",
            "EXPENSE",
            "EXPENSE",
            none,
            false,
            None,
            "ACTIVE",
        ),
        (
            "429",
            "General Expenses",
            "EXPENSE",
            "EXPENSE",
            inp,
            false,
            None,
            "ACTIVE",
        ),
        (
            "453",
            "Office Expenses",
            "EXPENSE",
            "EXPENSE",
            inp,
            false,
            None,
            "ACTIVE",
        ),
        (
            "469", "Rent", "EXPENSE", "EXPENSE", inp, false, None, "ACTIVE",
        ),
        (
            "477",
            "Wages and Salaries",
            "EXPENSE",
            "EXPENSE",
            none,
            false,
            None,
            "ACTIVE",
        ),
        (
            "489",
            "Telephone & Internet",
            "EXPENSE",
            "EXPENSE",
            inp,
            false,
            None,
            "ACTIVE",
        ),
        (
            "610",
            "Accounts Receivable",
            "CURRENT",
            "ASSET",
            none,
            false,
            Some("DEBTORS"),
            "ACTIVE",
        ),
        (
            "615",
            "Card Clearing",
            "CURRENT",
            "ASSET",
            none,
            true,
            None,
            "ACTIVE",
        ),
        (
            "620",
            "Prepayments",
            "CURRENT",
            "ASSET",
            none,
            false,
            None,
            "ACTIVE",
        ),
        (
            "800",
            "Accounts Payable",
            "CURRLIAB",
            "LIABILITY",
            none,
            false,
            Some("CREDITORS"),
            "ACTIVE",
        ),
        (
            "820",
            tax_name,
            "CURRLIAB",
            "LIABILITY",
            none,
            false,
            Some("GST"),
            "ACTIVE",
        ),
        (
            "840",
            "Historical Adjustment",
            "CURRLIAB",
            "LIABILITY",
            none,
            false,
            Some("HISTORICAL"),
            "ACTIVE",
        ),
        (
            "860",
            "Rounding",
            "CURRLIAB",
            "LIABILITY",
            none,
            false,
            Some("ROUNDING"),
            "ACTIVE",
        ),
        (
            "960",
            "Retained Earnings",
            "EQUITY",
            "EQUITY",
            none,
            false,
            Some("RETAINEDEARNINGS"),
            "ACTIVE",
        ),
        (
            "970",
            "Owner Funds Introduced",
            "EQUITY",
            "EQUITY",
            none,
            false,
            None,
            "ACTIVE",
        ),
    ]);
    all.into_iter()
        .enumerate()
        .map(
            |(i, (code, name, kind, class, tax_type, pay, system, status))| Account {
                id: derived(tenant, 0xA000 + i as u128),
                code: code.into(),
                name: name.into(),
                kind: kind.into(),
                class: class.into(),
                status: status.into(),
                tax_type: tax_type.into(),
                enable_payments: pay && kind != "BANK",
                system_account: system.map(Into::into),
                bank_account_number: (kind == "BANK").then(|| {
                    match country {
                        Country::Nz => "0102030123456700",
                        Country::Uk => "40123412345678",
                    }
                    .to_string()
                }),
                description: None,
            },
        )
        .collect()
}

fn tax_rates(country: Country) -> Vec<TaxRate> {
    let r = |name: &str, tax_type: &str, rate: i64, report: &str| TaxRate {
        name: name.into(),
        tax_type: tax_type.into(),
        rate: Decimal::from(rate),
        status: "ACTIVE".into(),
        report_tax_type: report.into(),
    };
    match country {
        Country::Nz => vec![
            r("GST on Income", "OUTPUT2", 15, "OUTPUT"),
            r("GST on Expenses", "INPUT2", 15, "INPUT"),
            r("No GST", "NONE", 0, "NONE"),
            r("Zero Rated", "ZERORATED", 0, "OUTPUT"),
            r("GST on Imports", "GSTONIMPORTS", 0, "GSTONIMPORTS"),
        ],
        Country::Uk => vec![
            r("20% (VAT on Income)", "OUTPUT2", 20, "OUTPUT"),
            r("20% (VAT on Expenses)", "INPUT2", 20, "INPUT"),
            r("5% (VAT on Income)", "RROUTPUT", 5, "OUTPUT"),
            r("5% (VAT on Expenses)", "RRINPUT", 5, "INPUT"),
            r("Zero Rated Income", "ZERORATEDOUTPUT", 0, "OUTPUT"),
            r("Zero Rated Expenses", "ZERORATEDINPUT", 0, "INPUT"),
            r("Exempt Income", "EXEMPTOUTPUT", 0, "EXEMPTOUTPUT"),
            r("Exempt Expenses", "EXEMPTINPUT", 0, "EXEMPTINPUT"),
            r("No VAT", "NONE", 0, "NONE"),
        ],
    }
}
