//! Validation of pushed documents: every problem of every document, each with its field path
//! (`invoices[3].lines[0].unit_amount`), a code and a sentence that says what to fix. Runs on the raw
//! JSON so a wrong type in one field does not hide the problems in others.

use crate::documents::{
    CreditNote, Invoice, Mappings, Order, Payment, Problem, ProblemCode, Shift, ORDER_STATUSES,
};
use crate::strict::{code_point, forbidden_in_name, forbidden_in_text};
use crate::totals;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

/// Lines one document may have unless the proxy is set otherwise: any document at this length
/// stays under Xero's 3.5 MB request limit, however long its descriptions (see the proxy's
/// `limits.max_lines_per_document`).
pub const DEFAULT_MAX_LINES: usize = 200;

/// The largest amount anywhere (a unit amount, a line amount, a total, a payment):
/// 999,999,999,999.99.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(276_447_231, 23_283, 0, false, 2);

/// Tenders in one shift: their payments go to Xero in one call of at most 50.
pub const MAX_TENDERS: usize = 50;

/// The largest quantity on a line: 10^9.
pub const MAX_QUANTITY: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// Whether a field holds a name (no control characters at all) or free text (line feeds and tabs
/// allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Name,
    Text,
}

/// Collects the problems of one document.
pub struct Check<'a> {
    pub problems: Vec<Problem>,
    /// `None` on the device, which checks shape and amounts but leaves mappings to the proxy (its
    /// copy may be stale).
    mappings: Option<&'a Mappings>,
    max_lines: usize,
}

fn join(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

impl<'a> Check<'a> {
    pub fn new(mappings: &'a Mappings) -> Self {
        Self {
            problems: Vec::new(),
            mappings: Some(mappings),
            max_lines: DEFAULT_MAX_LINES,
        }
    }

    /// Everything but the mappings: what a device can check before it saves a document.
    pub fn without_mappings() -> Self {
        Self {
            problems: Vec::new(),
            mappings: None,
            max_lines: DEFAULT_MAX_LINES,
        }
    }

    /// At most `max` lines per document (the proxy's `limits.max_lines_per_document`).
    pub fn max_lines(mut self, max: usize) -> Self {
        self.max_lines = max;
        self
    }

    fn problem(&mut self, path: String, code: ProblemCode, message: impl Into<String>) {
        self.problems.push(Problem {
            path,
            code,
            message: message.into(),
        });
    }

    fn object<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        allowed: &[&str],
    ) -> Option<&'v serde_json::Map<String, Value>> {
        let Some(map) = v.as_object() else {
            self.problem(path.to_string(), ProblemCode::Invalid, "must be an object");
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    join(path, key),
                    ProblemCode::Invalid,
                    format!("unknown field; expected one of: {}", allowed.join(", ")),
                );
            }
        }
        Some(map)
    }

    /// A name or code: no control or bidirectional formatting characters.
    fn text(
        &mut self,
        v: &Value,
        path: &str,
        name: &str,
        required: bool,
        max: usize,
    ) -> Option<String> {
        self.string(v, path, name, required, max, Kind::Name)
    }

    fn string(
        &mut self,
        v: &Value,
        path: &str,
        name: &str,
        required: bool,
        max: usize,
        kind: Kind,
    ) -> Option<String> {
        let p = join(path, name);
        match v.get(name) {
            None | Some(Value::Null) => {
                if required {
                    self.problem(p, ProblemCode::Required, "is required");
                }
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                if required {
                    self.problem(p, ProblemCode::Required, "must not be empty");
                }
                None
            }
            Some(Value::String(s)) if s.chars().count() > max => {
                self.problem(
                    p,
                    ProblemCode::TooLong,
                    format!("must be at most {max} characters"),
                );
                None
            }
            Some(Value::String(s)) => {
                let bad = match kind {
                    Kind::Name => forbidden_in_name(s),
                    Kind::Text => forbidden_in_text(s),
                };
                if let Some(c) = bad {
                    let allowed = match kind {
                        Kind::Name => "",
                        Kind::Text => " (line feeds and tabs are fine)",
                    };
                    self.problem(
                        p,
                        ProblemCode::Invalid,
                        format!("must not contain control or bidirectional formatting characters{allowed}: remove {}", code_point(c)),
                    );
                    return None;
                }
                Some(s.trim().to_string())
            }
            Some(other) => {
                self.problem(
                    p,
                    ProblemCode::Invalid,
                    format!("must be text, not {other}"),
                );
                None
            }
        }
    }

    /// An amount of money (at most 2 decimal places, at most [`MAX_AMOUNT`] either way).
    fn amount(&mut self, v: &Value, path: &str, name: &str) -> Option<Decimal> {
        let d = self.money(v, path, name)?;
        self.within(join(path, name), d, MAX_AMOUNT)
    }

    /// `Some(d)` when |d| ≤ `max`; else an `out_of_range` problem at `path`.
    fn within(&mut self, path: String, d: Decimal, max: Decimal) -> Option<Decimal> {
        if d.abs() > max {
            self.problem(
                path,
                ProblemCode::OutOfRange,
                format!("must be at most {max} either way"),
            );
            return None;
        }
        Some(d)
    }

    /// Money: at most two decimal places (what Xero keeps).
    fn money(&mut self, v: &Value, path: &str, name: &str) -> Option<Decimal> {
        let d = self.decimal(v, path, name)?;
        if d.normalize().scale() > 2 {
            self.problem(
                join(path, name),
                ProblemCode::Invalid,
                "has more than 2 decimal places",
            );
            return None;
        }
        Some(d)
    }

    fn decimal(&mut self, v: &Value, path: &str, name: &str) -> Option<Decimal> {
        let p = join(path, name);
        match v.get(name) {
            None | Some(Value::Null) => {
                self.problem(p, ProblemCode::Required, "is required");
                None
            }
            Some(x) => match crate::money::parse(x) {
                Ok(d) if d.normalize().scale() > 4 => {
                    self.problem(p, ProblemCode::Invalid, "has more than 4 decimal places");
                    None
                }
                Ok(d) => Some(d),
                Err(why) => {
                    self.problem(p, ProblemCode::Invalid, why);
                    None
                }
            },
        }
    }

    /// Dates and times are read exactly as written: no spaces around them.
    fn unpadded(&mut self, v: &Value, path: &str, name: &str) -> bool {
        match v.get(name).and_then(Value::as_str) {
            Some(raw) if !raw.trim().is_empty() && raw.trim() != raw => {
                self.problem(
                    join(path, name),
                    ProblemCode::Invalid,
                    "must not have spaces around it",
                );
                false
            }
            _ => true,
        }
    }

    fn date(&mut self, v: &Value, path: &str, name: &str, required: bool) -> Option<NaiveDate> {
        if !self.unpadded(v, path, name) {
            return None;
        }
        let text = self.text(v, path, name, required, 10)?;
        NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .ok()
            .or_else(|| {
                self.problem(
                    join(path, name),
                    ProblemCode::Invalid,
                    format!("'{text}' is not a date: use YYYY-MM-DD"),
                );
                None
            })
    }

    fn datetime(&mut self, v: &Value, path: &str, name: &str) -> Option<DateTime<Utc>> {
        if !self.unpadded(v, path, name) {
            return None;
        }
        let text = self.text(v, path, name, true, 40)?;
        DateTime::parse_from_rfc3339(&text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| {
                self.problem(
                    join(path, name),
                    ProblemCode::Invalid,
                    format!("'{text}' is not a time: use RFC 3339, e.g. 2026-11-20T17:30:00Z"),
                );
                None
            })
    }

    fn one_of(&mut self, v: &Value, path: &str, name: &str, allowed: &[&str]) {
        if let Some(text) = self.text(v, path, name, false, 40) {
            if !allowed.contains(&text.as_str()) {
                self.problem(
                    join(path, name),
                    ProblemCode::Invalid,
                    format!("'{text}' is not one of: {}", allowed.join(", ")),
                );
            }
        }
    }

    fn list<'v>(&mut self, v: &'v Value, path: &str, name: &str, required: bool) -> &'v [Value] {
        match v.get(name) {
            Some(Value::Array(items)) if items.is_empty() && required => {
                self.problem(
                    join(path, name),
                    ProblemCode::Required,
                    "needs at least one entry",
                );
                &[]
            }
            Some(Value::Array(items)) => items,
            None | Some(Value::Null) if !required => &[],
            None | Some(Value::Null) => {
                self.problem(join(path, name), ProblemCode::Required, "is required");
                &[]
            }
            Some(other) => {
                self.problem(
                    join(path, name),
                    ProblemCode::Invalid,
                    format!("must be a list, not {other}"),
                );
                &[]
            }
        }
    }

    fn client_ref(&mut self, v: &Value, path: &str) -> Option<String> {
        self.text(v, path, "client_ref", true, 100)
    }

    fn category(&mut self, path: String, category: &str) {
        if self
            .mappings
            .is_some_and(|m| !m.categories.contains_key(category))
        {
            self.problem(
                path,
                ProblemCode::Unmapped,
                format!(
                    "the sales category '{category}' is not mapped to an account and tax type yet"
                ),
            );
        }
    }

    fn tender(&mut self, path: String, tender: &str) {
        if self
            .mappings
            .is_some_and(|m| !m.tenders.contains_key(tender))
        {
            self.problem(
                path,
                ProblemCode::Unmapped,
                format!("the tender '{tender}' is not mapped to a payment account yet"),
            );
        }
    }

    /// The typed document once the raw checks passed (a mismatch is still reported, never panics).
    fn typed<T: serde::de::DeserializeOwned>(&mut self, v: &Value, path: &str) -> Option<T> {
        if !self.problems.is_empty() {
            return None;
        }
        T::deserialize(v)
            .map_err(|e| self.problem(path.to_string(), ProblemCode::Invalid, e.to_string()))
            .ok()
    }

    pub fn invoice(&mut self, v: &Value, path: &str) -> Option<Invoice> {
        self.object(
            v,
            path,
            &[
                "client_ref",
                "type",
                "contact",
                "date",
                "due_date",
                "reference",
                "currency",
                "tax_mode",
                "status",
                "lines",
            ],
        )?;
        self.client_ref(v, path);
        self.one_of(v, path, "type", &["sale", "bill"]);
        self.one_of(v, path, "tax_mode", &["inclusive", "exclusive", "no_tax"]);
        self.one_of(v, path, "status", &["draft", "authorised"]);
        let no_tax = v.get("tax_mode").and_then(Value::as_str) == Some("no_tax");
        let sale = v.get("type").and_then(Value::as_str).unwrap_or("sale") == "sale";
        let contact_path = join(path, "contact");
        match v.get("contact") {
            None | Some(Value::Null) => self.problem(
                contact_path,
                ProblemCode::Required,
                "is required: the contact's name at least",
            ),
            Some(c) => {
                if self
                    .object(c, &contact_path, &["name", "email", "contact_number"])
                    .is_some()
                {
                    self.text(c, &contact_path, "name", true, 255);
                    self.text(c, &contact_path, "email", false, 255);
                    self.text(c, &contact_path, "contact_number", false, 50);
                }
            }
        }
        let date = self.date(v, path, "date", true);
        if let (Some(date), Some(due)) = (date, self.date(v, path, "due_date", false)) {
            if due < date {
                self.problem(
                    join(path, "due_date"),
                    ProblemCode::OutOfRange,
                    "must not be before the date",
                );
            }
        }
        // 255 in Xero, less the marker Ledgerlink appends (" LL-" and 12 characters).
        self.text(v, path, "reference", false, 239);
        if let Some(c) = self.text(v, path, "currency", false, 3) {
            if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
                self.problem(
                    join(path, "currency"),
                    ProblemCode::Invalid,
                    "must be a 3-letter code such as NZD",
                );
            }
        }
        let lines_path = join(path, "lines");
        let lines = self.list(v, path, "lines", true);
        if lines.len() > self.max_lines {
            // Not checked line by line: one problem says what to do.
            self.problem(
                lines_path,
                ProblemCode::TooLong,
                format!(
                    "has {} lines; a document may have at most {} (Xero takes at most 3.5 MB a request): split it into several",
                    lines.len(),
                    self.max_lines
                ),
            );
            return None;
        }
        let mut sum = Some(Decimal::ZERO);
        for (i, line) in lines.iter().enumerate() {
            let lp = format!("{lines_path}[{i}]");
            if self
                .object(
                    line,
                    &lp,
                    &[
                        "description",
                        "quantity",
                        "unit_amount",
                        "account_code",
                        "tax_type",
                        "sales_category",
                    ],
                )
                .is_none()
            {
                continue;
            }
            self.string(line, &lp, "description", true, 4000, Kind::Text);
            let quantity = self
                .decimal(line, &lp, "quantity")
                .and_then(|q| self.within(join(&lp, "quantity"), q, MAX_QUANTITY));
            // Xero refuses it too ("use a credit note instead"), but only once it is sent: a
            // negative quantity is something given back, which is a refund, not a sale. (A
            // discount is a line with a negative unit amount, allowed while the total is not
            // negative.)
            if sale && quantity.is_some_and(|q| q.is_sign_negative() && !q.is_zero()) {
                self.problem(
                    join(&lp, "quantity"),
                    ProblemCode::Invalid,
                    "is negative: a sale cannot take back what was sold; record the refund instead (a credit note)",
                );
            }
            let unit = self
                .decimal(line, &lp, "unit_amount")
                .and_then(|u| self.within(join(&lp, "unit_amount"), u, MAX_AMOUNT));
            match (quantity, unit) {
                (Some(q), Some(u)) => {
                    // Within the bounds above the product cannot overflow (at most 10^21).
                    let amount = totals::line_amount(q, u).unwrap_or(Decimal::MAX);
                    if amount.abs() > MAX_AMOUNT {
                        self.problem(
                            lp.clone(),
                            ProblemCode::OutOfRange,
                            format!("its amount (quantity × unit amount, {amount}) must be at most {MAX_AMOUNT} either way"),
                        );
                        sum = None;
                    } else {
                        sum = sum.and_then(|s| s.checked_add(amount));
                    }
                }
                _ => sum = None,
            }
            let account = self.text(line, &lp, "account_code", false, 10);
            let tax = self.text(line, &lp, "tax_type", false, 40);
            let category = self.text(line, &lp, "sales_category", false, 100);
            match (&account, &category) {
                (Some(_), Some(_)) => self.problem(
                    lp.clone(),
                    ProblemCode::Invalid,
                    "give either account_code (and tax_type) or sales_category, not both",
                ),
                (None, None) => self.problem(
                    join(&lp, "account_code"),
                    ProblemCode::Required,
                    "give account_code and tax_type, or a sales_category",
                ),
                (Some(_), None) if tax.is_none() && !no_tax => self.problem(
                    join(&lp, "tax_type"),
                    ProblemCode::Required,
                    "is required with account_code (nothing is guessed)",
                ),
                (None, Some(c)) => self.category(join(&lp, "sales_category"), c),
                _ => {}
            }
        }
        if let Some(total) = sum {
            if total.abs() > MAX_AMOUNT {
                self.problem(
                    lines_path,
                    ProblemCode::OutOfRange,
                    format!("the lines add up to {total}; a document's total must be at most {MAX_AMOUNT} either way"),
                );
            } else if total.is_sign_negative() && !total.is_zero() {
                self.problem(
                    lines_path,
                    ProblemCode::OutOfRange,
                    format!("the lines add up to {total}: an invoice cannot be negative (discounts may not exceed what is sold); record a refund instead (a credit note)"),
                );
            }
        }
        self.typed(v, path)
    }

    /// `invoice`: the sale a payment pays or a refund refunds, `{"client_ref"}` (pushed by this
    /// device) or `{"xero_number"}`.
    fn invoice_target(&mut self, v: &Value, path: &str, required: bool) {
        let ip = join(path, "invoice");
        match v.get("invoice") {
            None | Some(Value::Null) if required => self.problem(
                ip,
                ProblemCode::Required,
                "is required: {\"client_ref\": ...} or {\"xero_number\": ...}",
            ),
            None | Some(Value::Null) => {}
            Some(target) => {
                if self
                    .object(target, &ip, &["client_ref", "xero_number"])
                    .is_some()
                {
                    let by_ref = self.text(target, &ip, "client_ref", false, 100);
                    let by_number = self.text(target, &ip, "xero_number", false, 255);
                    if by_ref.is_some() == by_number.is_some() {
                        self.problem(
                            ip,
                            ProblemCode::Invalid,
                            "give exactly one of client_ref and xero_number",
                        );
                    }
                }
            }
        }
    }

    /// A list of `{tender, amount}` under `name`: each tender mapped and given once, each amount
    /// at least zero (`positive`: more than zero).
    fn tender_amounts(&mut self, v: &Value, path: &str, name: &str, positive: bool) {
        let mut seen = std::collections::HashSet::new();
        let tp = join(path, name);
        for (i, item) in self.list(v, path, name, false).iter().enumerate() {
            let ip = format!("{tp}[{i}]");
            if self.object(item, &ip, &["tender", "amount"]).is_none() {
                continue;
            }
            if let Some(t) = self.text(item, &ip, "tender", true, 100) {
                self.tender(join(&ip, "tender"), &t);
                if !seen.insert(t.to_lowercase()) {
                    self.problem(
                        join(&ip, "tender"),
                        ProblemCode::Invalid,
                        format!("'{t}' appears twice: give each tender once, with its total"),
                    );
                }
            }
            if let Some(a) = self.amount(item, &ip, "amount") {
                if a < Decimal::ZERO || (positive && a.is_zero()) {
                    self.problem(
                        join(&ip, "amount"),
                        ProblemCode::OutOfRange,
                        if positive {
                            "must be more than zero"
                        } else {
                            "must not be negative"
                        },
                    );
                }
            }
        }
    }

    /// A refund: the invoice's checks for what was given back (a credit note's lines are what the
    /// customer returns, so a negative quantity is as wrong as on a sale), then the sale it names
    /// and what was paid back by tender.
    pub fn credit_note(&mut self, v: &Value, path: &str) -> Option<CreditNote> {
        self.object(
            v,
            path,
            &[
                "client_ref",
                "contact",
                "date",
                "reference",
                "currency",
                "tax_mode",
                "lines",
                "invoice",
                "refunds",
            ],
        )?;
        let mut given_back = v.clone();
        if let Some(fields) = given_back.as_object_mut() {
            fields.remove("invoice");
            fields.remove("refunds");
        }
        self.invoice(&given_back, path);
        self.invoice_target(v, path, false);
        self.tender_amounts(v, path, "refunds", true);
        if self.list(v, path, "refunds", false).len() > MAX_TENDERS {
            self.problem(
                join(path, "refunds"),
                ProblemCode::TooLong,
                format!("at most {MAX_TENDERS} tenders: give each tender once, with its total"),
            );
        }
        if !self.problems.is_empty() {
            return None;
        }
        self.typed(v, path)
    }

    pub fn payment(&mut self, v: &Value, path: &str) -> Option<Payment> {
        self.object(
            v,
            path,
            &[
                "client_ref",
                "invoice",
                "amount",
                "date",
                "tender",
                "reference",
            ],
        )?;
        self.client_ref(v, path);
        self.invoice_target(v, path, true);
        if let Some(a) = self.amount(v, path, "amount") {
            if a <= Decimal::ZERO {
                self.problem(
                    join(path, "amount"),
                    ProblemCode::OutOfRange,
                    "must be more than zero",
                );
            }
        }
        self.date(v, path, "date", true);
        if let Some(t) = self.text(v, path, "tender", true, 100) {
            self.tender(join(path, "tender"), &t);
        }
        // 255 in Xero, less the marker Ledgerlink appends (" LL-" and 12 characters).
        self.text(v, path, "reference", false, 239);
        self.typed(v, path)
    }

    /// An order for an order hub: a status it knows, 1 to the line limit of items with a price and a
    /// quantity above zero, options, discounts, charges and payments with amounts of at most two
    /// decimal places, tax rates from 0 to 100 percent.
    pub fn order(&mut self, v: &Value, path: &str) -> Option<Order> {
        self.object(
            v,
            path,
            &[
                "client_ref",
                "status",
                "service_type",
                "reference",
                "items",
                "discounts",
                "charges",
                "payments",
                "customer",
                "customer_notes",
                "seller_notes",
            ],
        )?;
        self.client_ref(v, path);
        if let Some(status) = self.text(v, path, "status", false, 40) {
            if !ORDER_STATUSES.contains(&status.as_str()) {
                self.problem(
                    join(path, "status"),
                    ProblemCode::Invalid,
                    format!("'{status}' is not one of: {}", ORDER_STATUSES.join(", ")),
                );
            }
        }
        self.one_of(
            v,
            path,
            "service_type",
            &["delivery", "collection", "eat_in"],
        );
        self.text(v, path, "reference", false, 100);
        self.long_text(v, path, "customer_notes");
        self.long_text(v, path, "seller_notes");
        let items = self.list(v, path, "items", true);
        if items.len() > self.max_lines {
            self.problem(
                join(path, "items"),
                ProblemCode::TooLong,
                format!("at most {} items in one order", self.max_lines),
            );
        }
        for (i, item) in items.iter().enumerate() {
            let at = format!("{path}.items[{i}]");
            if self
                .object(
                    item,
                    &at,
                    &["name", "sku", "price", "quantity", "tax_rate", "options"],
                )
                .is_none()
            {
                continue;
            }
            self.text(item, &at, "name", true, 255);
            self.text(item, &at, "sku", false, 100);
            self.not_negative(item, &at, "price");
            if let Some(q) = self.decimal(item, &at, "quantity") {
                if q <= Decimal::ZERO || q > MAX_QUANTITY {
                    self.problem(
                        join(&at, "quantity"),
                        ProblemCode::OutOfRange,
                        format!("must be more than zero and at most {MAX_QUANTITY}"),
                    );
                }
            }
            self.rate(item, &at);
            for (j, option) in self.list(item, &at, "options", false).iter().enumerate() {
                let at = format!("{at}.options[{j}]");
                if self
                    .object(option, &at, &["name", "price", "quantity"])
                    .is_none()
                {
                    continue;
                }
                self.text(option, &at, "name", true, 255);
                if option.get("price").is_some() {
                    self.not_negative(option, &at, "price");
                }
                if let Some(q) = option.get("quantity") {
                    if !q.as_u64().is_some_and(|n| (1..=1_000).contains(&n)) {
                        self.problem(
                            join(&at, "quantity"),
                            ProblemCode::Invalid,
                            "must be a whole number from 1 to 1000",
                        );
                    }
                }
            }
        }
        for (name, fields, rated) in [
            ("discounts", &["name", "amount"][..], false),
            ("charges", &["name", "amount", "tax_rate"][..], true),
            ("payments", &["tender", "amount"][..], false),
        ] {
            for (i, e) in self.list(v, path, name, false).iter().enumerate() {
                let at = format!("{path}.{name}[{i}]");
                if self.object(e, &at, fields).is_none() {
                    continue;
                }
                self.text(e, &at, fields[0], true, 255);
                if let Some(a) = self.amount(e, &at, "amount") {
                    if a <= Decimal::ZERO {
                        self.problem(
                            join(&at, "amount"),
                            ProblemCode::OutOfRange,
                            "must be more than zero",
                        );
                    }
                }
                if rated {
                    self.rate(e, &at);
                }
            }
        }
        if let Some(c) = v.get("customer").filter(|c| !c.is_null()) {
            let at = join(path, "customer");
            if self
                .object(c, &at, &["first_name", "last_name", "email", "phone"])
                .is_some()
            {
                for f in ["first_name", "last_name", "email", "phone"] {
                    self.text(c, &at, f, false, 255);
                }
            }
        }
        self.typed(v, path)
    }

    /// An amount of money that may be zero but not negative.
    fn not_negative(&mut self, v: &Value, path: &str, name: &str) {
        if let Some(a) = self.amount(v, path, name) {
            if a < Decimal::ZERO {
                self.problem(
                    join(path, name),
                    ProblemCode::OutOfRange,
                    "must not be negative",
                );
            }
        }
    }

    /// An optional tax rate in percent, from 0 to 100.
    fn rate(&mut self, v: &Value, path: &str) {
        if v.get("tax_rate").is_none_or(Value::is_null) {
            return;
        }
        if let Some(r) = self.decimal(v, path, "tax_rate") {
            if r < Decimal::ZERO || r > Decimal::ONE_HUNDRED {
                self.problem(
                    join(path, "tax_rate"),
                    ProblemCode::OutOfRange,
                    "must be a percent from 0 to 100",
                );
            }
        }
    }

    /// Notes: up to 1,000 characters, line feeds allowed.
    fn long_text(&mut self, v: &Value, path: &str, name: &str) {
        self.string(v, path, name, false, 1_000, Kind::Text);
    }

    pub fn shift(&mut self, v: &Value, path: &str) -> Option<Shift> {
        self.object(
            v,
            path,
            &[
                "client_ref",
                "register",
                "opened_at",
                "closed_at",
                "tax_mode",
                "sales",
                "refunds",
                "tenders",
                "counted_cash",
                "opening_float",
                "notes",
            ],
        )?;
        self.client_ref(v, path);
        self.text(v, path, "register", true, 100);
        let opened = self.datetime(v, path, "opened_at");
        let closed = self.datetime(v, path, "closed_at");
        if let (Some(o), Some(c)) = (opened, closed) {
            if c < o {
                self.problem(
                    join(path, "closed_at"),
                    ProblemCode::OutOfRange,
                    "must not be before opened_at",
                );
            }
        }
        self.one_of(v, path, "tax_mode", &["inclusive", "exclusive", "no_tax"]);
        for (name, required) in [("sales", false), ("refunds", false)] {
            let lp = join(path, name);
            for (i, item) in self.list(v, path, name, required).iter().enumerate() {
                let ip = format!("{lp}[{i}]");
                if self.object(item, &ip, &["category", "amount"]).is_none() {
                    continue;
                }
                if let Some(c) = self.text(item, &ip, "category", true, 100) {
                    self.category(join(&ip, "category"), &c);
                }
                if let Some(a) = self.amount(item, &ip, "amount") {
                    if a < Decimal::ZERO {
                        self.problem(
                            join(&ip, "amount"),
                            ProblemCode::OutOfRange,
                            "must not be negative (refunds go in refunds)",
                        );
                    }
                }
            }
        }
        self.tender_amounts(v, path, "tenders", false);
        for name in ["counted_cash", "opening_float"] {
            if v.get(name).is_none() && name == "opening_float" {
                continue;
            }
            if let Some(c) = self.amount(v, path, name) {
                if c < Decimal::ZERO {
                    self.problem(
                        join(path, name),
                        ProblemCode::OutOfRange,
                        "must not be negative",
                    );
                }
            }
        }
        self.string(v, path, "notes", false, 500, Kind::Text);
        let shift: Shift = self.typed(v, path)?;
        // Each sale and refund becomes a line of the shift's invoice (and over/short one more);
        // each tender a payment, all in one call.
        let lines = shift.sales.len() + shift.refunds.len() + 1;
        if lines > self.max_lines {
            self.problem(
                join(path, "sales"),
                ProblemCode::TooLong,
                format!(
                    "sales and refunds make {lines} invoice lines; at most {} are allowed: give one entry per category",
                    self.max_lines
                ),
            );
        }
        if shift.tenders.len() > MAX_TENDERS {
            self.problem(
                join(path, "tenders"),
                ProblemCode::TooLong,
                format!("at most {MAX_TENDERS} tenders: give each tender once, with its total"),
            );
        }
        if !self.problems.is_empty() {
            return None;
        }
        // Every amount is at most MAX_AMOUNT and there are at most a few hundred: no overflow.
        let sales: Decimal = shift.sales.iter().map(|s| s.amount).sum();
        let refunds: Decimal = shift.refunds.iter().map(|s| s.amount).sum();
        let over_short = over_short(&shift);
        for (name, total) in [("sales", sales), ("refunds", refunds)] {
            if total > MAX_AMOUNT {
                self.problem(
                    join(path, name),
                    ProblemCode::OutOfRange,
                    format!("adds up to {total}; a shift's {name} must total at most {MAX_AMOUNT}"),
                );
            }
        }
        if sales - refunds + over_short < Decimal::ZERO {
            self.problem(path.to_string(), ProblemCode::NegativeShift, "the shift's total is negative: refunds exceed sales (credit notes are not supported yet)");
        }
        if !over_short.is_zero()
            && self
                .mappings
                .is_some_and(|m| m.over_short_account.is_none())
        {
            self.problem(
                join(path, "counted_cash"),
                ProblemCode::Unmapped,
                format!("the cash is over/short by {over_short} and no over/short account is mapped yet"),
            );
        }
        self.problems.is_empty().then_some(shift)
    }
}

/// Counted cash minus the cash the drawer should hold (the opening float and the `cash` tender).
pub fn over_short(shift: &Shift) -> Decimal {
    // Validated amounts (each at most 10^12, a few dozen of them) always add up.
    shift.counted_cash - shift.expected_cash().unwrap_or(Decimal::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::CategoryMapping;
    use serde_json::json;

    fn mappings() -> Mappings {
        let mut m = Mappings::default();
        m.categories.insert(
            "Drinks".into(),
            CategoryMapping {
                account_code: "200".into(),
                tax_type: "OUTPUT2".into(),
            },
        );
        m
    }

    #[test]
    fn a_sale_takes_discounts_but_not_negative_quantities_or_a_negative_total() {
        let line = |q: &str, u: &str| serde_json::json!({"description": "x", "quantity": q, "unit_amount": u, "account_code": "200", "tax_type": "OUTPUT2"});
        let doc = |lines: Vec<serde_json::Value>, kind: &str| serde_json::json!({"client_ref": "r", "type": kind, "contact": {"name": "A"}, "date": "2026-11-20", "lines": lines});
        let m = mappings();
        let problems = |d: &serde_json::Value| {
            let mut c = Check::new(&m);
            c.invoice(d, "invoices[0]");
            c.problems
        };
        // A discount line: allowed while the invoice stays positive.
        assert!(problems(&doc(vec![line("1", "10.00"), line("1", "-2.00")], "sale")).is_empty());
        let negative = problems(&doc(vec![line("-1", "10.00")], "sale"));
        assert_eq!(negative[0].path, "invoices[0].lines[0].quantity");
        assert!(negative[0].message.contains("refund"), "{negative:?}");
        let below_zero = problems(&doc(vec![line("1", "2.00"), line("1", "-5.00")], "sale"));
        assert_eq!(below_zero.len(), 1, "{below_zero:?}");
        assert_eq!(below_zero[0].path, "invoices[0].lines");
        assert!(below_zero[0].message.contains("cannot be negative"));
        // A bill may carry a negative quantity (a return on a supplier's bill) while its total is
        // not negative, as Xero allows.
        assert!(problems(&doc(vec![line("2", "10.00"), line("-1", "5.00")], "bill")).is_empty());
    }

    #[test]
    fn a_refund_is_checked_as_a_sale_plus_its_invoice_and_tenders() {
        let mut m = mappings();
        m.tenders.insert(
            "cash".into(),
            crate::documents::TenderMapping {
                account_code: "090".into(),
            },
        );
        let check = |d: serde_json::Value| {
            let mut c = Check::new(&m);
            let typed = c.credit_note(&d, "credit_notes[0]");
            (typed, c.problems)
        };
        let good = serde_json::json!({"client_ref": "r1", "contact": {"name": "A"}, "date": "2026-11-20",
            "lines": [{"description": "Returned mug", "quantity": 1, "unit_amount": "8.00", "sales_category": "Drinks"}],
            "invoice": {"client_ref": "inv-1"}, "refunds": [{"tender": "cash", "amount": "9.20"}]});
        let (typed, problems) = check(good.clone());
        assert!(problems.is_empty(), "{problems:?}");
        let typed = typed.unwrap();
        assert_eq!(typed.refunds[0].amount.to_string(), "9.20");
        assert_eq!(typed.invoice.unwrap().client_ref.as_deref(), Some("inv-1"));
        let mut bad = good.clone();
        bad["refunds"] = serde_json::json!([{"tender": "gold", "amount": "0"}, {"tender": "cash", "amount": "1"}, {"tender": "cash", "amount": "1"}]);
        bad["invoice"] = serde_json::json!({"client_ref": "a", "xero_number": "INV-1"});
        bad["status"] = serde_json::json!("draft");
        let (_, problems) = check(bad.clone());
        assert_eq!(
            problems[0].path, "credit_notes[0].status",
            "no status on a refund: {problems:?}"
        );
        bad.as_object_mut().unwrap().remove("status");
        let (typed, problems) = check(bad);
        assert!(typed.is_none());
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "credit_notes[0].invoice",
                "credit_notes[0].refunds[0].tender",
                "credit_notes[0].refunds[0].amount",
                "credit_notes[0].refunds[2].tender",
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_path() {
        let m = mappings();
        let mut c = Check::new(&m);
        let bad = json!({
            "client_ref": "", "contact": {"nmae": "x"}, "date": "20/11/2026", "colour": "red",
            "lines": [{"description": "a", "quantity": "two", "unit_amount": 1, "sales_category": "Food"},
                      {"description": "b", "quantity": 1, "unit_amount": 1, "account_code": "200"}]
        });
        assert!(c.invoice(&bad, "invoices[3]").is_none());
        let paths: Vec<(&str, ProblemCode)> = c
            .problems
            .iter()
            .map(|p| (p.path.as_str(), p.code))
            .collect();
        for want in [
            ("invoices[3].colour", ProblemCode::Invalid),
            ("invoices[3].client_ref", ProblemCode::Required),
            ("invoices[3].contact.nmae", ProblemCode::Invalid),
            ("invoices[3].contact.name", ProblemCode::Required),
            ("invoices[3].date", ProblemCode::Invalid),
            ("invoices[3].lines[0].quantity", ProblemCode::Invalid),
            ("invoices[3].lines[0].sales_category", ProblemCode::Unmapped),
            ("invoices[3].lines[1].tax_type", ProblemCode::Required),
        ] {
            assert!(paths.contains(&want), "missing {want:?} in {paths:?}");
        }
    }

    #[test]
    fn a_good_invoice_is_typed_exactly() {
        let m = mappings();
        let mut c = Check::new(&m);
        let inv = c
            .invoice(
                &json!({"client_ref": "r1", "contact": {"name": "Walk-in"}, "date": "2026-11-20",
                        "lines": [{"description": "Latte", "quantity": 2, "unit_amount": "4.80", "sales_category": "Drinks"}]}),
                "invoices[0]",
            )
            .unwrap_or_else(|| panic!("{:?}", c.problems));
        assert_eq!(inv.lines[0].unit_amount.to_string(), "4.80");
    }

    fn problems_of(invoice: serde_json::Value) -> Vec<(String, ProblemCode)> {
        let m = mappings();
        let mut c = Check::new(&m);
        c.invoice(&invoice, "invoices[0]");
        c.problems.into_iter().map(|p| (p.path, p.code)).collect()
    }

    fn line(quantity: serde_json::Value, unit: serde_json::Value) -> serde_json::Value {
        json!({"description": "x", "quantity": quantity, "unit_amount": unit, "sales_category": "Drinks"})
    }

    #[test]
    fn the_bounds_are_what_they_say() {
        assert_eq!(MAX_AMOUNT.to_string(), "999999999999.99");
        assert_eq!(MAX_QUANTITY.to_string(), "1000000000");
    }

    #[test]
    fn amounts_and_quantities_out_of_bounds_are_out_of_range_and_never_overflow() {
        let invoice = |lines: Vec<serde_json::Value>| json!({"client_ref": "r", "contact": {"name": "c"}, "date": "2026-11-20", "lines": lines});
        // 10^9 × 999,999,999,999.99: each bound holds alone, the line amount does not.
        let p = problems_of(invoice(vec![line(
            json!("1000000000"),
            json!("999999999999.99"),
        )]));
        assert_eq!(
            p,
            vec![("invoices[0].lines[0]".into(), ProblemCode::OutOfRange)]
        );
        let p = problems_of(invoice(vec![line(json!("1000000001"), json!("1"))]));
        assert_eq!(
            p,
            vec![(
                "invoices[0].lines[0].quantity".into(),
                ProblemCode::OutOfRange
            )]
        );
        let p = problems_of(invoice(vec![line(json!(1), json!("1000000000000"))]));
        assert_eq!(
            p,
            vec![(
                "invoices[0].lines[0].unit_amount".into(),
                ProblemCode::OutOfRange
            )]
        );
        let p = problems_of(invoice(vec![line(json!(1), json!("1e24"))]));
        assert_eq!(
            p,
            vec![(
                "invoices[0].lines[0].unit_amount".into(),
                ProblemCode::Invalid
            )]
        );
        // Two lines within bounds whose sum is not.
        let big = line(json!(1), json!("600000000000"));
        let p = problems_of(invoice(vec![big.clone(), big]));
        assert_eq!(
            p,
            vec![("invoices[0].lines".into(), ProblemCode::OutOfRange)]
        );
        for written in [json!("1_000"), json!(" 5"), json!("+5")] {
            let p = problems_of(invoice(vec![line(json!(1), written.clone())]));
            assert_eq!(
                p,
                vec![(
                    "invoices[0].lines[0].unit_amount".into(),
                    ProblemCode::Invalid
                )],
                "{written}"
            );
        }
    }

    #[test]
    fn a_document_over_the_line_limit_is_too_long_with_one_problem() {
        let lines: Vec<_> = (0..40_000).map(|_| line(json!(1), json!("1.00"))).collect();
        let doc = json!({"client_ref": "r", "contact": {"name": "c"}, "date": "2026-11-20", "lines": lines});
        let m = mappings();
        let mut c = Check::new(&m);
        assert!(c.invoice(&doc, "invoices[0]").is_none());
        assert_eq!(c.problems.len(), 1);
        assert_eq!(c.problems[0].path, "invoices[0].lines");
        assert_eq!(c.problems[0].code, ProblemCode::TooLong);
        assert!(
            c.problems[0].message.contains("at most 200"),
            "{}",
            c.problems[0].message
        );
        let mut c = Check::new(&m).max_lines(50_000);
        assert!(
            c.invoice(&doc, "invoices[0]").is_some(),
            "{:?}",
            c.problems.first()
        );
    }

    #[test]
    fn names_refuse_control_and_bidi_characters_and_descriptions_keep_lines() {
        let doc = json!({"client_ref": "r", "contact": {"name": "Front \u{202E}retnuoc"}, "date": "2026-11-20",
            "reference": "a\u{0007}b",
            "lines": [{"description": "two\nlines\tok", "quantity": 1, "unit_amount": 1, "sales_category": "Drinks"},
                      {"description": "bell\u{0007}", "quantity": 1, "unit_amount": 1, "sales_category": "Drinks"}]});
        let p = problems_of(doc);
        assert_eq!(
            p,
            vec![
                ("invoices[0].contact.name".into(), ProblemCode::Invalid),
                ("invoices[0].reference".into(), ProblemCode::Invalid),
                (
                    "invoices[0].lines[1].description".into(),
                    ProblemCode::Invalid
                ),
            ]
        );
    }

    #[test]
    fn a_payment_reference_leaves_room_for_the_marker() {
        let pay = |reference: String| {
            let mut c = Check::without_mappings();
            c.payment(
                &json!({"client_ref": "p", "invoice": {"client_ref": "i"}, "amount": "1.00", "date": "2026-11-20",
                        "tender": "cash", "reference": reference}),
                "payments[0]",
            );
            c.problems
        };
        assert!(pay("x".repeat(239)).is_empty());
        assert_eq!(pay("x".repeat(240))[0].code, ProblemCode::TooLong);
    }

    /// Any JSON value, nested a little.
    fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[-0-9.eE_]{0,30}"
                .prop_map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))),
            "\\PC{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let key = prop_oneof![
                Just("client_ref".to_string()),
                Just("contact".to_string()),
                Just("name".to_string()),
                Just("date".to_string()),
                Just("lines".to_string()),
                Just("quantity".to_string()),
                Just("unit_amount".to_string()),
                Just("amount".to_string()),
                Just("sales".to_string()),
                Just("tenders".to_string()),
                Just("counted_cash".to_string()),
                Just("invoice".to_string()),
                "[a-z_]{1,8}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(key, inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever a device sends as a document: problems or a typed document, never a panic.
        #[test]
        fn checking_anything_never_panics(v in any_json()) {
            let m = mappings();
            let _ = Check::new(&m).invoice(&v, "invoices[0]");
            let _ = Check::new(&m).payment(&v, "payments[0]");
            let _ = Check::new(&m).shift(&v, "shifts[0]");
            let _ = Check::without_mappings().invoice(&v, "invoice");
        }
    }

    #[test]
    fn the_example_order_is_taken_as_written() {
        let example: Value =
            serde_json::from_str(include_str!("../../../examples/order.json")).unwrap();
        let mut c = Check::without_mappings();
        let order = c.order(&example["orders"][0], "orders[0]");
        assert_eq!(c.problems, vec![]);
        let order = order.unwrap();
        assert_eq!(order.status, "completed");
        assert_eq!(
            order.items[0].options[0].quantity, 1,
            "an option counts once by default"
        );
        assert_eq!(order.items[0].price, Decimal::new(890, 2));
    }

    #[test]
    fn an_order_is_refused_by_field_for_what_an_order_hub_refuses() {
        let mut c = Check::without_mappings();
        let order = serde_json::json!({"client_ref": "O-1", "status": "eaten", "service_type": "drive",
            "items": [{"name": "Soup", "price": "-1", "quantity": "0", "tax_rate": "120",
                       "options": [{"name": "Bread", "price": "0.001", "quantity": 0}]}],
            "payments": [{"tender": "Card", "amount": "0"}], "colour": "red"});
        assert!(c.order(&order, "orders[0]").is_none());
        let paths: Vec<&str> = c.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "orders[0].colour",
                "orders[0].status",
                "orders[0].service_type",
                "orders[0].items[0].price",
                "orders[0].items[0].quantity",
                "orders[0].items[0].tax_rate",
                "orders[0].items[0].options[0].price",
                "orders[0].items[0].options[0].quantity",
                "orders[0].payments[0].amount",
            ]
        );
        let mut c = Check::without_mappings();
        assert!(c
            .order(&serde_json::json!({"client_ref": "O-2", "items": []}), "o")
            .is_none());
        assert_eq!(c.problems[0].code, ProblemCode::Required);
    }
}
