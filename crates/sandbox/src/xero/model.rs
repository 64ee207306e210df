//! The sandbox's data: apps, users, organisations (tenants) with their books, and the identity
//! server's grants, codes and connections.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

use crate::harness::secret::Secret;
use crate::settings::Limits;
use crate::xero::totals::TaxMode;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    pub client_id: String,
    #[serde(with = "crate::harness::secret::stored")]
    pub client_secret: Secret,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub webhook_url: Option<String>,
    #[serde(with = "crate::harness::secret::stored")]
    pub webhook_key: Secret,
    /// When the app was registered: apps made on or after 2 March 2026 get granular scopes only.
    #[serde(default = "App::seeded_on")]
    pub created_at: NaiveDate,
    /// Whether Xero certified it (an uncertified app may connect 25 organisations at most).
    #[serde(default)]
    pub certified: bool,
    /// Its pricing tier (`starter`, `core`, `plus`, `advanced`, `enterprise`).
    #[serde(default = "App::starter")]
    pub tier: String,
}

/// The first day of Xero's granular scopes: an app registered from then on may not ask for a
/// broad scope such as `accounting.transactions`.
pub const GRANULAR_SCOPES_FROM: (i32, u32, u32) = (2026, 3, 2);

/// The broad scopes granular scopes replace.
pub const BROAD_SCOPES: &[&str] = &["accounting.transactions", "accounting.transactions.read"];

impl App {
    /// The demo app's registration date: before the granular-scopes rule.
    pub fn seeded_on() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 6, 1).expect("a date")
    }

    fn starter() -> String {
        "starter".into()
    }

    /// Whether it may only ask for granular scopes.
    pub fn granular_only(&self) -> bool {
        let (y, m, d) = GRANULAR_SCOPES_FROM;
        self.created_at >= NaiveDate::from_ymd_opt(y, m, d).expect("a date")
    }

    /// How many organisations it may have connected at once: 25 until Xero certifies it, then its
    /// tier's allowance (Starter 5, Core 50, Plus 1,000, Advanced 10,000; Enterprise unlimited).
    pub fn connection_cap(&self) -> Option<usize> {
        if !self.certified {
            return Some(UNCERTIFIED_CAP);
        }
        match self.tier.as_str() {
            "starter" => Some(5),
            "core" => Some(50),
            "plus" => Some(1_000),
            "advanced" => Some(10_000),
            _ => None,
        }
    }
}

/// The connections an app that Xero has not certified may have.
pub const UNCERTIFIED_CAP: usize = 25;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    #[serde(with = "crate::harness::secret::stored")]
    pub password: Secret,
    pub first_name: String,
    pub last_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Country {
    Nz,
    Uk,
}

impl Country {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "NZ" => Some(Self::Nz),
            "UK" | "GB" => Some(Self::Uk),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Nz => "NZ",
            Self::Uk => "GB",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Self::Nz => "NZ",
            Self::Uk => "UK",
        }
    }

    pub fn currency(self) -> &'static str {
        match self {
            Self::Nz => "NZD",
            Self::Uk => "GBP",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub class: String,
    pub status: String,
    pub tax_type: String,
    pub enable_payments: bool,
    pub system_account: Option<String>,
    pub bank_account_number: Option<String>,
    pub description: Option<String>,
}

impl Account {
    pub fn is_active(&self) -> bool {
        self.status == "ACTIVE"
    }

    /// Payments go to bank accounts and to accounts with payments enabled.
    pub fn takes_payments(&self) -> bool {
        self.is_active() && (self.kind == "BANK" || self.enable_payments)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaxRate {
    pub name: String,
    pub tax_type: String,
    pub rate: Decimal,
    pub status: String,
    pub report_tax_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contact {
    pub id: Uuid,
    pub name: String,
    pub contact_number: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub status: String,
    pub is_customer: bool,
    pub is_supplier: bool,
    pub updated: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LineItem {
    pub id: Uuid,
    pub description: Option<String>,
    pub quantity: Decimal,
    pub unit_amount: Decimal,
    pub item_code: Option<String>,
    pub account_code: Option<String>,
    pub tax_type: Option<String>,
    pub tax_amount: Decimal,
    pub line_amount: Decimal,
    pub discount_rate: Option<Decimal>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invoice {
    pub id: Uuid,
    pub kind: String,
    pub contact_id: Uuid,
    pub number: Option<String>,
    pub reference: Option<String>,
    pub date: NaiveDate,
    pub due_date: Option<NaiveDate>,
    pub status: String,
    pub mode: TaxMode,
    pub currency: String,
    pub lines: Vec<LineItem>,
    pub sub_total: Decimal,
    pub total_tax: Decimal,
    pub total: Decimal,
    pub amount_paid: Decimal,
    pub amount_due: Decimal,
    pub fully_paid_on: Option<NaiveDate>,
    pub payment_ids: Vec<Uuid>,
    pub updated: DateTime<Utc>,
    /// `unitdp` the invoice was written with: how many decimals unit amounts keep.
    pub unit_dp: u32,
    /// What credit notes allocated to it took off what is due.
    #[serde(default)]
    pub amount_credited: Decimal,
}

/// A credit note (`ACCRECCREDIT`: money owed back to a customer; `ACCPAYCREDIT`: by a supplier).
/// Its credit is used up by allocations to invoices of the same contact and by refund payments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreditNote {
    pub id: Uuid,
    pub kind: String,
    pub contact_id: Uuid,
    pub number: Option<String>,
    pub reference: Option<String>,
    pub date: NaiveDate,
    pub status: String,
    pub mode: TaxMode,
    pub currency: String,
    pub lines: Vec<LineItem>,
    pub sub_total: Decimal,
    pub total_tax: Decimal,
    pub total: Decimal,
    pub remaining_credit: Decimal,
    pub allocations: Vec<Allocation>,
    /// Refund payments made against it.
    pub payment_ids: Vec<Uuid>,
    pub fully_paid_on: Option<NaiveDate>,
    pub updated: DateTime<Utc>,
    pub unit_dp: u32,
}

/// Part of a credit note's credit applied to an invoice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Allocation {
    pub id: Uuid,
    pub invoice_id: Uuid,
    pub amount: Decimal,
    pub date: NaiveDate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payment {
    pub id: Uuid,
    /// The invoice it pays (nil for a refund of a credit note).
    pub invoice_id: Uuid,
    /// For a refund: the credit note it pays out.
    #[serde(default)]
    pub credit_note_id: Option<Uuid>,
    pub account_id: Uuid,
    pub date: NaiveDate,
    pub amount: Decimal,
    pub reference: Option<String>,
    pub status: String,
    pub payment_type: String,
    pub updated: DateTime<Utc>,
}

/// An organisation with its books. Lookups are indexed: benchmarks grow tenants to many invoices.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub country: Country,
    pub short_code: String,
    /// Xero's (Windows) name of its time zone, when not its country's usual one.
    #[serde(default)]
    pub timezone: Option<String>,
    pub created: DateTime<Utc>,
    pub members: Vec<Uuid>,
    pub accounts: Vec<Account>,
    pub tax_rates: Vec<TaxRate>,
    pub contacts: Vec<Contact>,
    pub contact_by_id: HashMap<Uuid, usize>,
    pub invoices: Vec<Invoice>,
    pub invoice_by_id: HashMap<Uuid, usize>,
    /// ACCREC invoice numbers, lower-cased.
    pub invoice_by_number: HashMap<String, usize>,
    pub payments: Vec<Payment>,
    pub next_invoice_number: u32,
    #[serde(default)]
    pub credit_notes: Vec<CreditNote>,
    #[serde(default)]
    pub credit_note_by_id: HashMap<Uuid, usize>,
    #[serde(default = "first_number")]
    pub next_credit_note_number: u32,
}

fn first_number() -> u32 {
    1
}

impl Tenant {
    pub fn account_by_code(&self, code: &str) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|a| a.code.eq_ignore_ascii_case(code))
    }

    pub fn tax_rate(&self, tax_type: &str) -> Option<&TaxRate> {
        self.tax_rates
            .iter()
            .find(|t| t.tax_type.eq_ignore_ascii_case(tax_type))
    }

    pub fn contact(&self, id: Uuid) -> Option<&Contact> {
        self.contact_by_id.get(&id).map(|&i| &self.contacts[i])
    }

    /// Active contacts match by name case-insensitively, as Xero's uniqueness rule does.
    pub fn contact_by_name(&self, name: &str) -> Option<&Contact> {
        let name = name.trim();
        self.contacts
            .iter()
            .find(|c| c.status != "ARCHIVED" && c.name.trim().eq_ignore_ascii_case(name))
    }

    pub fn contact_by_number(&self, number: &str) -> Option<&Contact> {
        self.contacts
            .iter()
            .find(|c| c.contact_number.as_deref() == Some(number))
    }

    pub fn add_contact(&mut self, contact: Contact) {
        self.contact_by_id.insert(contact.id, self.contacts.len());
        self.contacts.push(contact);
    }

    pub fn credit_note(&self, id: Uuid) -> Option<&CreditNote> {
        self.credit_note_by_id
            .get(&id)
            .map(|&i| &self.credit_notes[i])
    }

    /// Credit note numbers are unique among ACCRECCREDIT ones, as invoice numbers among ACCREC.
    pub fn credit_note_by_number(&self, number: &str) -> Option<&CreditNote> {
        self.credit_notes.iter().find(|c| {
            c.kind == "ACCRECCREDIT"
                && c.number
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(number.trim()))
        })
    }

    pub fn add_credit_note(&mut self, note: CreditNote) {
        self.credit_note_by_id
            .insert(note.id, self.credit_notes.len());
        self.credit_notes.push(note);
    }

    pub fn invoice(&self, id: Uuid) -> Option<&Invoice> {
        self.invoice_by_id.get(&id).map(|&i| &self.invoices[i])
    }

    pub fn invoice_by_number(&self, number: &str) -> Option<&Invoice> {
        self.invoice_by_number
            .get(&number.to_lowercase())
            .map(|&i| &self.invoices[i])
    }

    pub fn add_invoice(&mut self, invoice: Invoice) {
        let index = self.invoices.len();
        self.invoice_by_id.insert(invoice.id, index);
        if invoice.kind == "ACCREC" {
            if let Some(n) = &invoice.number {
                self.invoice_by_number.insert(n.to_lowercase(), index);
            }
        }
        self.invoices.push(invoice);
    }
}

/// An authorization code, bound to the client, redirect URI and PKCE challenge it was issued for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    /// The authorization request's `nonce`, for the ID token (OpenID Connect).
    #[serde(default)]
    pub nonce: Option<String>,
    pub user_id: Uuid,
    pub scope: Vec<String>,
    pub tenant_ids: Vec<Uuid>,
    pub auth_event_id: Uuid,
    pub issued: DateTime<Utc>,
    pub used: bool,
    /// The grant the code was exchanged for; revoked if the code is replayed.
    pub grant_id: Option<Uuid>,
}

/// A consent turned into tokens: one token set per (user, app, consent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub id: Uuid,
    pub client_id: String,
    pub user_id: Uuid,
    pub scope: Vec<String>,
    pub auth_event_id: Uuid,
    pub tenant_ids: Vec<Uuid>,
    pub created: DateTime<Utc>,
    pub revoked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub grant_id: Uuid,
    pub issued: DateTime<Utc>,
    /// When it was first exchanged; it keeps working for the grace period after this.
    pub rotated: Option<DateTime<Utc>>,
}

/// A tenant connected to an app for a user. Unique per (app, user, tenant); a new consent updates it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connection {
    pub id: Uuid,
    pub client_id: String,
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub auth_event_id: Uuid,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// The consent page's proof that the person logged in, carried in a hidden field so plain form posts
/// work without cookies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginTicket {
    pub user_id: Uuid,
    pub issued: DateTime<Utc>,
}

/// The mutable part of the sandbox. Guarded by one mutex; no lock is held across an `.await`.
#[derive(Debug, Serialize, Deserialize)]
pub struct World {
    pub apps: HashMap<String, App>,
    pub users: Vec<User>,
    pub tenants: Vec<Tenant>,
    pub codes: HashMap<String, AuthCode>,
    pub grants: HashMap<Uuid, Grant>,
    pub refresh_tokens: HashMap<String, RefreshRecord>,
    pub connections: Vec<Connection>,
    pub tickets: HashMap<String, LoginTicket>,
    /// Browser sessions (cookie value → user), so a person logs in once.
    pub sessions: HashMap<String, Uuid>,
    pub limits: Limits,
}

impl World {
    /// The organisations connected to an app (by any of its users), each once.
    pub fn connected_tenants(&self, client_id: &str) -> std::collections::BTreeSet<Uuid> {
        self.connections
            .iter()
            .filter(|c| c.client_id == client_id)
            .map(|c| c.tenant_id)
            .collect()
    }

    pub fn tenant(&self, id: Uuid) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }

    pub fn tenant_mut(&mut self, id: Uuid) -> Option<&mut Tenant> {
        self.tenants.iter_mut().find(|t| t.id == id)
    }

    pub fn user(&self, id: Uuid) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email.trim()))
    }

    /// Whether `client_id` acting for `user_id` may call `tenant_id`.
    pub fn is_connected(&self, client_id: &str, user_id: Uuid, tenant_id: Uuid) -> bool {
        self.connections
            .iter()
            .any(|c| c.client_id == client_id && c.user_id == user_id && c.tenant_id == tenant_id)
    }

    /// Creates or refreshes the connections of one consent.
    pub fn connect(
        &mut self,
        client_id: &str,
        user_id: Uuid,
        tenant_ids: &[Uuid],
        auth_event_id: Uuid,
        now: DateTime<Utc>,
    ) {
        for &tenant_id in tenant_ids {
            match self.connections.iter_mut().find(|c| {
                c.client_id == client_id && c.user_id == user_id && c.tenant_id == tenant_id
            }) {
                Some(c) => {
                    c.auth_event_id = auth_event_id;
                    c.updated = now;
                }
                None => self.connections.push(Connection {
                    id: Uuid::new_v4(),
                    client_id: client_id.to_string(),
                    user_id,
                    tenant_id,
                    auth_event_id,
                    created: now,
                    updated: now,
                }),
            }
        }
    }

    /// Revokes a grant: its refresh tokens stop working, its access tokens are refused, and the
    /// connections it made are removed (as revoking at Xero disconnects the tenants).
    pub fn revoke_grant(&mut self, grant_id: Uuid) -> bool {
        let Some(grant) = self.grants.get_mut(&grant_id) else {
            return false;
        };
        grant.revoked = true;
        let (client_id, user_id, tenants) = (
            grant.client_id.clone(),
            grant.user_id,
            grant.tenant_ids.clone(),
        );
        self.refresh_tokens.retain(|_, r| r.grant_id != grant_id);
        self.connections.retain(|c| {
            !(c.client_id == client_id && c.user_id == user_id && tenants.contains(&c.tenant_id))
        });
        true
    }
}
