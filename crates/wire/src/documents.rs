//! Business documents a device pushes (sales invoices and bills, payments, end-of-shift summaries),
//! their states, and the answer to a batch. Amounts are exact decimals (see [`crate::money`]).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Where a document is. One enum for the proxy, the client and the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DocumentState {
    /// On the device only: the proxy does not have it yet.
    Pending,
    /// Accepted by the proxy, waiting to be delivered.
    Queued,
    /// In a call to Xero now.
    Sending,
    /// In Xero, with Xero's id and number.
    Sent,
    /// Xero refused it; `message` is Xero's own text.
    Failed,
    Paid,
    /// A void was asked for: it goes to Xero (from `sent`); back to `sent` with Xero's message if
    /// Xero refuses it.
    Voiding,
    Voided,
    /// Refused by validation: never stored as a document.
    Rejected,
    /// Put aside by a person (with their reason): it will not be sent. Only a document that is not
    /// in Xero can be discarded.
    Discarded,
}

impl DocumentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Paid => "paid",
            Self::Voiding => "voiding",
            Self::Voided => "voided",
            Self::Rejected => "rejected",
            Self::Discarded => "discarded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "failed" => Self::Failed,
            "paid" => Self::Paid,
            "voiding" => Self::Voiding,
            "voided" => Self::Voided,
            "rejected" => Self::Rejected,
            "discarded" => Self::Discarded,
            _ => return None,
        })
    }

    /// Nothing more will happen to it unless someone acts.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Failed | Self::Paid | Self::Voided | Self::Rejected | Self::Discarded
        )
    }

    /// Refused (by Xero or by validation) and waiting for a person: correct it, send it again or
    /// discard it. A corrected document is queued again and a discarded one is settled, so neither
    /// counts.
    pub fn needs_attention(self) -> bool {
        matches!(self, Self::Failed | Self::Rejected)
    }

    /// A document in this state may be replaced by a corrected version under the same
    /// `client_ref`; in any other state a different body for it is refused (`client_ref_in_use`).
    pub fn correctable(self) -> bool {
        self.needs_attention()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Invoice,
    Payment,
    Shift,
    /// A refund: a credit note to the customer, allocated to the sale it names and paid back by
    /// tender.
    CreditNote,
    /// A restaurant's order, for an order hub (HubRise).
    Order,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invoice => "invoice",
            Self::Payment => "payment",
            Self::Shift => "shift",
            Self::CreditNote => "credit_note",
            Self::Order => "order",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "invoice" => Self::Invoice,
            "payment" => Self::Payment,
            "shift" => Self::Shift,
            "credit_note" => Self::CreditNote,
            "order" => Self::Order,
            _ => return None,
        })
    }

    /// The collection a batch of this kind is pushed as: `{"invoices": [...]}`.
    pub fn collection(self) -> &'static str {
        match self {
            Self::Invoice => "invoices",
            Self::Payment => "payments",
            Self::Shift => "shifts",
            Self::CreditNote => "credit_notes",
            Self::Order => "orders",
        }
    }
}

/// An order as an order hub takes it (HubRise): what was sold, with options, discounts, charges
/// and how it was paid. Amounts are exact decimals with at most two places, in the location's
/// currency; the till's `client_ref` keeps it from ever being sent twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// The device's own reference: (device, client_ref) is unique, so a resend never duplicates.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub client_ref: String,
    /// HubRise's status for it; a till's finished sale is `completed` (the default).
    #[serde(default = "completed")]
    pub status: String,
    /// `delivery`, `collection` or `eat_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    /// The till's own reference for it (a ticket number), shown to people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub reference: Option<String>,
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub items: Vec<OrderItem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<OrderDiscount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charges: Vec<OrderCharge>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<OrderPayment>,
    /// A guest customer; none for a walk-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<OrderCustomer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
    pub customer_notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
    pub seller_notes: Option<String>,
}

fn completed() -> String {
    "completed".into()
}

impl Order {
    /// What the order comes to as an order hub works it out: each item's price with its options
    /// times its quantity, plus charges, less discounts; `None` if it overflows.
    pub fn total(&self) -> Option<Decimal> {
        let mut total = Decimal::ZERO;
        for item in &self.items {
            let mut each = item.price;
            for o in &item.options {
                each = each.checked_add(o.price.checked_mul(Decimal::from(o.quantity))?)?;
            }
            total = total.checked_add(each.checked_mul(item.quantity)?)?;
        }
        for c in &self.charges {
            total = total.checked_add(c.amount)?;
        }
        for d in &self.discounts {
            total = total.checked_sub(d.amount)?;
        }
        Some(total.round_dp(2))
    }
}

/// The statuses an order hub knows (HubRise's).
pub const ORDER_STATUSES: &[&str] = &[
    "new",
    "received",
    "accepted",
    "in_preparation",
    "awaiting_shipment",
    "awaiting_collection",
    "in_delivery",
    "completed",
    "rejected",
    "cancelled",
    "delivery_failed",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub name: String,
    /// The till's product code, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// The price of one, options excluded.
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub price: Decimal,
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub quantity: Decimal,
    /// Percent.
    #[serde(
        default,
        with = "crate::money::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::PlainDecimal>))]
    pub tax_rate: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<OrderOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderOption {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub name: String,
    /// Added to the item's price for each one.
    #[serde(default, with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub price: Decimal,
    #[serde(default = "one")]
    pub quantity: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderDiscount {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub name: String,
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderCharge {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub name: String,
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub amount: Decimal,
    #[serde(
        default,
        with = "crate::money::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::PlainDecimal>))]
    pub tax_rate: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderPayment {
    /// How it was paid (`Card`, `Cash`).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub tender: String,
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderCustomer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// How line amounts relate to tax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaxMode {
    /// Amounts include tax (a till's shelf prices).
    Inclusive,
    /// Tax is added on top.
    #[default]
    Exclusive,
    NoTax,
}

/// A sales invoice (`ACCREC`) or a bill (`ACCPAY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InvoiceType {
    #[default]
    Sale,
    Bill,
}

/// Whether Xero should keep it as a draft or approve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    #[default]
    Authorised,
}

/// The contact, by name (Xero finds or creates it), optionally with email and contact number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 255,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 255,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 50,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub contact_number: Option<String>,
}

/// One line: either an account code and tax type, or a sales category the mappings resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InvoiceLine {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 4000,
            pattern = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub description: String,
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub quantity: Decimal,
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub unit_amount: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 10,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub account_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 40,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub tax_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub sales_category: Option<String>,
}

/// `POST /v1/invoices` takes a batch of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    /// The device's own reference: (device, client_ref) is unique, so a resend never duplicates.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub client_ref: String,
    #[serde(default, rename = "type")]
    pub invoice_type: InvoiceType,
    pub contact: Contact,
    pub date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 239,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub reference: Option<String>,
    /// The organisation's currency when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*[A-Z]{3}\s*$"))]
    pub currency: Option<String>,
    #[serde(default)]
    pub tax_mode: TaxMode,
    #[serde(default)]
    pub status: InvoiceStatus,
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub lines: Vec<InvoiceLine>,
}

/// Which invoice a payment pays: one it pushed (by `client_ref`) or one in Xero (by number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InvoiceTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub client_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 255,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub xero_number: Option<String>,
}

/// `POST /v1/payments` takes a batch of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Payment {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub client_ref: String,
    pub invoice: InvoiceTarget,
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub amount: Decimal,
    pub date: NaiveDate,
    /// How it was paid (`cash`, `card`, ...): mapped to the account the money goes to.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub tender: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 239,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub reference: Option<String>,
}

/// An amount for a sales category (sales or refunds) as the till records it, in the shift's tax mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CategoryAmount {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub category: String,
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub amount: Decimal,
}

/// What a tender took in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenderAmount {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub tender: String,
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub amount: Decimal,
}

/// `POST /v1/shifts`: the end-of-shift summary of one register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Shift {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub client_ref: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub register: String,
    pub opened_at: DateTime<Utc>,
    pub closed_at: DateTime<Utc>,
    #[serde(default = "inclusive")]
    pub tax_mode: TaxMode,
    pub sales: Vec<CategoryAmount>,
    #[serde(default)]
    pub refunds: Vec<CategoryAmount>,
    /// Takings by tender. The cash tender's amount is what the till expected in the drawer.
    pub tenders: Vec<TenderAmount>,
    /// Cash counted in the drawer at the close, the float included; counted minus expected (the
    /// float plus the cash tender's takings) is the over/short.
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub counted_cash: Decimal,
    /// Cash in the drawer when the shift opened; it stays there, so it is not paid into the bank.
    #[serde(
        default,
        with = "crate::money",
        skip_serializing_if = "rust_decimal::Decimal::is_zero"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub opening_float: Decimal,
    /// What staff noted about the shift: kept and shown, not sent to Xero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub notes: Option<String>,
}

impl Shift {
    /// The cash the drawer should hold at the close: the float and the cash tender's takings.
    pub fn expected_cash(&self) -> Option<Decimal> {
        self.tenders
            .iter()
            .filter(|t| t.tender.eq_ignore_ascii_case("cash"))
            .try_fold(self.opening_float, |sum, t| sum.checked_add(t.amount))
    }

    /// The cash the shift took: what was counted less the float left in the drawer.
    pub fn cash_taken(&self) -> Option<Decimal> {
        self.counted_cash.checked_sub(self.opening_float)
    }
}

fn inclusive() -> TaxMode {
    TaxMode::Inclusive
}

/// A refund to a customer: Xero's credit note (`ACCRECCREDIT`). What was given back is `lines`, as on
/// an invoice; when it names the sale it refunds (`invoice`) and that sale still has something due,
/// the credit goes to it first; the rest is what the till paid back, by tender (`refunds`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreditNote {
    /// The device's own reference: (device, client_ref) is unique, so a resend never duplicates.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub client_ref: String,
    pub contact: Contact,
    pub date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 239,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub reference: Option<String>,
    /// The organisation's currency when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*[A-Z]{3}\s*$"))]
    pub currency: Option<String>,
    #[serde(default)]
    pub tax_mode: TaxMode,
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub lines: Vec<InvoiceLine>,
    /// The sale it refunds, pushed by this device (`client_ref`) or in Xero (`xero_number`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<InvoiceTarget>,
    /// What the till paid back, by tender (each mapped, like a payment's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub refunds: Vec<TenderAmount>,
}

/// One of the organisation's contacts, as `GET /v1/contacts?q=` suggests it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactSuggestion {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Archived in Xero: a document to it is refused until someone restores it there.
    pub archived: bool,
}

/// `GET /v1/contacts?q=`: at most 20 contacts whose name holds `q`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactList {
    pub contacts: Vec<ContactSuggestion>,
}

/// `POST /v1/credit-notes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreditNoteBatch {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub credit_notes: Vec<CreditNote>,
}

/// `POST /v1/orders` (HubRise connections).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderBatch {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub orders: Vec<Order>,
}

/// `POST /v1/invoices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InvoiceBatch {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub invoices: Vec<Invoice>,
}

/// `POST /v1/payments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PaymentBatch {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub payments: Vec<Payment>,
}

/// `POST /v1/shifts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShiftBatch {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub shifts: Vec<Shift>,
}

/// `GET /v1/documents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentList {
    pub documents: Vec<DocumentView>,
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A document's new state.
    Document,
    /// What the provider said about a document (Xero: it was paid, voided, or its amount due
    /// changed; HubRise: the order's status changed).
    Provider,
    /// The connection's new status (it needs reconnecting, was disconnected, or works again).
    Connection,
    /// A kind this device does not know yet (newer proxies may add kinds): skip it.
    #[serde(other)]
    Other,
}

/// One entry of `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventEntry {
    /// The cursor: ask `?after=` this to read on from here.
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// `document` and `provider`: the document as it stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentView>,
    /// `provider`: the invoice's status in Xero (`AUTHORISED`, `PAID`, `VOIDED`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xero_status: Option<String>,
    /// `provider`: the provider's own status for the document now (HubRise: the order's
    /// `cancelled`, `delivered`, ...); also on the document as `provider_status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    /// `provider`: what is still to be paid.
    #[serde(
        default,
        with = "crate::money::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "12.50"))]
    pub amount_due: Option<Decimal>,
    /// `provider`: what has been paid.
    #[serde(
        default,
        with = "crate::money::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "12.50"))]
    pub amount_paid: Option<Decimal>,
    /// `connection`: the connection's status now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::ConnectionStatus>,
}

/// `GET /v1/events`: the events after the cursor and the cursor to ask from next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub events: Vec<EventEntry>,
    pub next: i64,
}

/// A document as the proxy reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentView {
    pub id: Uuid,
    pub kind: DocumentKind,
    pub client_ref: String,
    pub state: DocumentState,
    /// The provider's id of what the document became (Xero: the invoice's `InvoiceID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// The number the provider gave it, the one people quote (Xero: `INV-0042`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_number: Option<String>,
    /// Deprecated: `provider_id`, filled for Xero documents only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(deprecated))]
    pub xero_id: Option<Uuid>,
    /// Deprecated: `provider_number`, filled for Xero documents only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(deprecated))]
    pub xero_number: Option<String>,
    /// The provider's own message when it refused the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// 1 for the document as first accepted; each correction under the same `client_ref` adds one.
    #[serde(default = "first_version")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub version: u32,
    /// Why a person discarded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard_reason: Option<String>,
    /// The provider's own status for it, as last heard from the provider (HubRise: an order
    /// `cancelled` or `delivered` by the restaurant). Informational: `state` stays what delivery
    /// made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Earlier versions, oldest first: only when asked for (`?history=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<DocumentVersion>>,
}

fn first_version() -> u32 {
    1
}

/// An earlier version of a corrected document, as it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentVersion {
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub version: u32,
    /// How it ended (`failed`, or `rejected`).
    pub state: DocumentState,
    /// Xero's own message about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The document as it was pushed.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub document: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// When the correction replaced it.
    pub replaced_at: DateTime<Utc>,
}

/// `POST /v1/documents/{id}/discard`: why the document is put aside (kept with it, shown to whoever
/// looks at it later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DiscardRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 500,
            pattern = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub reason: String,
}

/// Longest discard reason, in characters.
pub const MAX_DISCARD_REASON: usize = 500;

impl DiscardRequest {
    /// The reason, trimmed, or what is wrong with it (said so a person can fix it).
    pub fn checked_reason(&self) -> Result<String, String> {
        let reason = self.reason.trim();
        if reason.is_empty() {
            return Err("say why the document is discarded (a reason is kept with it)".into());
        }
        if reason.chars().count() > MAX_DISCARD_REASON {
            return Err(format!(
                "the reason is longer than {MAX_DISCARD_REASON} characters"
            ));
        }
        if let Some(c) = crate::strict::forbidden_in_text(reason) {
            return Err(format!(
                "the reason holds the control character {}: only lines and tabs are allowed",
                crate::strict::code_point(c)
            ));
        }
        Ok(reason.to_string())
    }
}

/// Why one field of a document is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// Where, from the batch: `invoices[3].lines[0].unit_amount`.
    pub path: String,
    pub code: ProblemCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    Required,
    Invalid,
    TooLong,
    OutOfRange,
    /// The document names a sales category or tender with no mapping yet: map it first.
    Unmapped,
    /// A shift whose total is negative (credit notes come later).
    NegativeShift,
    /// The same `client_ref` twice in one batch.
    DuplicateInBatch,
    /// The `client_ref` already names another document from this device that cannot be replaced
    /// (it is queued, in Xero, or discarded, or of another kind): give this one its own.
    ClientRefInUse,
    /// The connection's provider does not take this kind of document (an invoice to HubRise).
    UnsupportedKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Stored (or already stored: `duplicate`), in the outbox.
    Accepted,
    Rejected,
}

/// One document's fate in a batch. (A plain struct, not an internally tagged enum: serde buffers
/// tagged enums, and buffered numbers do not survive serde_json's `arbitrary_precision`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchItem {
    /// Position in the batch.
    pub index: usize,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ref: Option<String>,
    /// For an accepted document: whether it was already stored by an earlier push.
    #[serde(default)]
    pub duplicate: bool,
    /// For an accepted document: whether it replaced a failed version of the same `client_ref`
    /// (it is queued again as the next `version`).
    #[serde(default)]
    pub corrected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// The answer to a batch push: `202` when everything was accepted, `422` when anything was refused
/// (the accepted ones are stored all the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchResult {
    pub accepted: usize,
    pub rejected: usize,
    pub items: Vec<BatchItem>,
}

/// How the organisation's books receive a till's categories and tenders. Nothing is guessed: a
/// document naming an unmapped category or tender is refused with [`ProblemCode::Unmapped`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mappings {
    #[serde(default)]
    pub categories: BTreeMap<String, CategoryMapping>,
    #[serde(default)]
    pub tenders: BTreeMap<String, TenderMapping>,
    /// Where cash over/short goes (no tax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_short_account: Option<String>,
    /// The contact shift invoices go to.
    #[serde(default = "pos_contact")]
    pub pos_contact_name: String,
}

impl Default for Mappings {
    /// Nothing mapped yet; shift invoices go to "POS Sales".
    fn default() -> Self {
        Self {
            categories: BTreeMap::new(),
            tenders: BTreeMap::new(),
            over_short_account: None,
            pos_contact_name: pos_contact(),
        }
    }
}

pub fn pos_contact() -> String {
    "POS Sales".to_string()
}

/// An account the organisation offers for mapping: active and not a system account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfferedAccount {
    pub code: String,
    pub name: String,
    /// Xero's account type (`REVENUE`, `BANK`, `CURRLIAB`, ...).
    #[serde(rename = "type")]
    pub account_type: String,
    /// Whether a tender can be mapped to it (a bank account, or payments enabled).
    pub takes_payments: bool,
}

/// A tax rate the organisation offers: active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfferedTaxRate {
    pub tax_type: String,
    pub name: String,
    /// The effective rate in percent (`15.0000`).
    #[serde(with = "crate::money")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::PlainDecimal))]
    pub rate: Decimal,
}

/// `GET`/`PUT /v1/mappings`: the mappings, and (unless `offered=false`) what the organisation
/// offers to map to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MappingsAnswer {
    pub mappings: Mappings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<OfferedAccount>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_rates: Option<Vec<OfferedTaxRate>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CategoryMapping {
    pub account_code: String,
    pub tax_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenderMapping {
    /// A bank account or an account with payments enabled.
    pub account_code: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_reads_with_defaults_and_exact_amounts() {
        let inv: Invoice = serde_json::from_str(
            r#"{"client_ref": "till1-0001", "contact": {"name": "Walk-in"}, "date": "2026-11-20",
                "lines": [{"description": "Flat white", "quantity": 2, "unit_amount": 4.80, "sales_category": "Drinks"}]}"#,
        )
        .unwrap();
        assert_eq!(
            (inv.invoice_type, inv.status, inv.tax_mode),
            (
                InvoiceType::Sale,
                InvoiceStatus::Authorised,
                TaxMode::Exclusive
            )
        );
        assert_eq!(inv.lines[0].unit_amount.to_string(), "4.80");
        let back = serde_json::to_value(&inv).unwrap();
        assert_eq!(back["lines"][0]["unit_amount"], "4.80");
    }

    #[test]
    fn batch_items_round_trip() {
        let item = BatchItem {
            index: 3,
            outcome: Outcome::Rejected,
            client_ref: Some("x".into()),
            duplicate: false,
            corrected: false,
            document: None,
            problems: vec![Problem {
                path: "invoices[3].lines[0].unit_amount".into(),
                code: ProblemCode::Invalid,
                message: "m".into(),
            }],
        };
        let v = serde_json::to_value(&item).unwrap();
        assert_eq!(v["outcome"], "rejected");
        assert_eq!(v["problems"][0]["code"], "invalid");
        let back: BatchItem = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(back, item);
        assert_eq!(DocumentState::parse("paid"), Some(DocumentState::Paid));
    }
}
