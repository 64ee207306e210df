//! Validation of pushed documents: every problem of every document, each with its field path
//! (`invoices[3].lines[0].unit_amount`), a code and a sentence that says what to fix. Runs on the raw
//! JSON so a wrong type in one field does not hide the problems in others.

use crate::documents::{Invoice, Mappings, Payment, Problem, ProblemCode, Shift};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

/// Collects the problems of one document.
pub struct Check<'a> {
    pub problems: Vec<Problem>,
    /// `None` on the device, which checks shape and amounts but leaves mappings to the proxy (its
    /// copy may be stale).
    mappings: Option<&'a Mappings>,
}

fn join(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

impl<'a> Check<'a> {
    pub fn new(mappings: &'a Mappings) -> Self {
        Self {
            problems: Vec::new(),
            mappings: Some(mappings),
        }
    }

    /// Everything but the mappings: what a device can check before it saves a document.
    pub fn without_mappings() -> Self {
        Self {
            problems: Vec::new(),
            mappings: None,
        }
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

    fn text(
        &mut self,
        v: &Value,
        path: &str,
        name: &str,
        required: bool,
        max: usize,
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
            Some(Value::String(s)) => Some(s.trim().to_string()),
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
                Ok(d) if d.abs() >= Decimal::from(1_000_000_000_000i64) => {
                    self.problem(p, ProblemCode::OutOfRange, "must be less than a trillion");
                    None
                }
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

    fn date(&mut self, v: &Value, path: &str, name: &str, required: bool) -> Option<NaiveDate> {
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
                format!("map the sales category '{category}' to an account and tax type first (PUT /v1/mappings)"),
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
                format!("map the tender '{tender}' to a payment account first (PUT /v1/mappings)"),
            );
        }
    }

    /// The typed document once the raw checks passed (a mismatch is still reported, never panics).
    fn typed<T: serde::de::DeserializeOwned>(&mut self, v: &Value, path: &str) -> Option<T> {
        if !self.problems.is_empty() {
            return None;
        }
        serde_json::from_value(v.clone())
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
        for (i, line) in self.list(v, path, "lines", true).iter().enumerate() {
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
            self.text(line, &lp, "description", true, 4000);
            self.decimal(line, &lp, "quantity");
            self.decimal(line, &lp, "unit_amount");
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
        let ip = join(path, "invoice");
        match v.get("invoice") {
            None | Some(Value::Null) => self.problem(
                ip,
                ProblemCode::Required,
                "is required: {\"client_ref\": ...} or {\"xero_number\": ...}",
            ),
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
        if let Some(a) = self.money(v, path, "amount") {
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
        self.text(v, path, "reference", false, 255);
        self.typed(v, path)
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
                if let Some(a) = self.money(item, &ip, "amount") {
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
        let mut seen_tenders = std::collections::HashSet::new();
        let tp = join(path, "tenders");
        for (i, item) in self.list(v, path, "tenders", false).iter().enumerate() {
            let ip = format!("{tp}[{i}]");
            if self.object(item, &ip, &["tender", "amount"]).is_none() {
                continue;
            }
            if let Some(t) = self.text(item, &ip, "tender", true, 100) {
                self.tender(join(&ip, "tender"), &t);
                if !seen_tenders.insert(t.to_lowercase()) {
                    self.problem(
                        join(&ip, "tender"),
                        ProblemCode::Invalid,
                        format!("'{t}' appears twice: give each tender once, with its total"),
                    );
                }
            }
            if let Some(a) = self.money(item, &ip, "amount") {
                if a < Decimal::ZERO {
                    self.problem(
                        join(&ip, "amount"),
                        ProblemCode::OutOfRange,
                        "must not be negative",
                    );
                }
            }
        }
        if let Some(c) = self.money(v, path, "counted_cash") {
            if c < Decimal::ZERO {
                self.problem(
                    join(path, "counted_cash"),
                    ProblemCode::OutOfRange,
                    "must not be negative",
                );
            }
        }
        let shift: Shift = self.typed(v, path)?;
        let sales: Decimal = shift.sales.iter().map(|s| s.amount).sum();
        let refunds: Decimal = shift.refunds.iter().map(|s| s.amount).sum();
        let over_short = over_short(&shift);
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
                format!("the cash is over/short by {over_short}: map an over/short account first (PUT /v1/mappings)"),
            );
        }
        self.problems.is_empty().then_some(shift)
    }
}

/// Counted cash minus the cash the till expected (its `cash` tender).
pub fn over_short(shift: &Shift) -> Decimal {
    let expected: Decimal = shift
        .tenders
        .iter()
        .filter(|t| t.tender.eq_ignore_ascii_case("cash"))
        .map(|t| t.amount)
        .sum();
    shift.counted_cash - expected
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
}
