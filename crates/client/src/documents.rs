//! Documents as a device makes them: read from JSON (one document, a list, or a batch as the API
//! takes it), given a `client_ref` when they have none, checked before they are saved (the same
//! checks as the proxy's, except mappings, which the proxy owns), and totalled exactly as Xero will.

use ledgerlink_wire::documents::{
    DocumentKind, Invoice, Mappings, Problem, ProblemCode, Shift, TaxMode,
};
use ledgerlink_wire::totals;
use ledgerlink_wire::validate::Check;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A `client_ref` for a document that came without one: unique, and stable once saved.
pub fn new_client_ref(kind: DocumentKind) -> String {
    format!("{}-{}", kind.as_str(), uuid::Uuid::new_v4().simple())
}

/// The documents of an input, each checked: the good ones ready to save, the problems of the rest.
#[derive(Debug, Default)]
pub struct Prepared {
    pub documents: Vec<Value>,
    pub problems: Vec<Problem>,
    /// How many documents the problems belong to (0 when the input itself is unreadable).
    pub refused: usize,
}

fn plural(kind: DocumentKind) -> &'static str {
    kind.collection()
}

/// Reads `text` as documents of `kind`: `{...}` (one), `[{...}, ...]`, or `{"invoices": [...]}`.
pub fn prepare(kind: DocumentKind, text: &str) -> Prepared {
    let mut out = Prepared::default();
    let value: Value = match ledgerlink_wire::strict::parse_json(text.as_bytes()) {
        Ok(v) => v,
        Err(e) => {
            out.problems.push(Problem {
                path: String::new(),
                code: ProblemCode::Invalid,
                message: match e {
                    ledgerlink_wire::strict::JsonError::Syntax(why) => format!("not JSON: {why}"),
                    dup => dup.to_string(),
                },
            });
            return out;
        }
    };
    let many = plural(kind);
    let (items, listed) = match value {
        Value::Array(items) => (items, true),
        Value::Object(mut map) if map.len() == 1 && map.contains_key(many) => {
            match map.remove(many) {
                Some(Value::Array(items)) => (items, true),
                _ => {
                    out.problems.push(Problem {
                        path: many.into(),
                        code: ProblemCode::Invalid,
                        message: format!("must be a list of {many}"),
                    });
                    return out;
                }
            }
        }
        other => (vec![other], false),
    };
    if items.is_empty() {
        out.problems.push(Problem {
            path: many.into(),
            code: ProblemCode::Required,
            message: format!("there are no {many} in it"),
        });
    }
    for (i, mut item) in items.into_iter().enumerate() {
        let path = if listed {
            format!("{many}[{i}]")
        } else {
            kind.as_str().to_string()
        };
        if let Some(map) = item.as_object_mut() {
            match map.get("client_ref") {
                None | Some(Value::Null) => {
                    map.insert("client_ref".into(), Value::String(new_client_ref(kind)));
                }
                // The proxy keys documents by the trimmed client_ref: so must the outbox, or
                // "A1 " and "A1" would be two documents here and one there.
                Some(Value::String(r)) if r.trim() != r => {
                    let trimmed = r.trim().to_string();
                    map.insert("client_ref".into(), Value::String(trimmed));
                }
                _ => {}
            }
        }
        let mut check = Check::without_mappings();
        let typed = match kind {
            DocumentKind::Invoice => check.invoice(&item, &path).map(serde_json::to_value),
            DocumentKind::Payment => check.payment(&item, &path).map(serde_json::to_value),
            DocumentKind::Shift => check.shift(&item, &path).map(serde_json::to_value),
            DocumentKind::CreditNote => check.credit_note(&item, &path).map(serde_json::to_value),
            DocumentKind::Order => check.order(&item, &path).map(serde_json::to_value),
        };
        match typed {
            Some(Ok(document)) if check.problems.is_empty() => out.documents.push(document),
            _ => {
                out.refused += 1;
                out.problems.append(&mut check.problems)
            }
        }
    }
    out
}

/// The organisation's tax rates by tax type (percent), from `GET /v1/mappings`'s `tax_rates`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaxRates(pub BTreeMap<String, Decimal>);

impl TaxRates {
    pub fn from_offer(offer: &Value) -> Self {
        Self(
            offer["tax_rates"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    let tax_type = t["tax_type"].as_str()?.to_string();
                    let rate = ledgerlink_wire::money::parse_lenient(&t["rate"]).ok()?;
                    Some((tax_type, rate))
                })
                .collect(),
        )
    }
}

/// What totals are worked out from: the mappings (a category's tax type) and the tax rates, from a
/// `GET /v1/mappings` answer (none yet: no mappings, no rates).
pub fn totals_basis(offer: Option<&Value>) -> (Mappings, TaxRates) {
    let mappings = offer
        .and_then(|o| serde_json::from_value(o["mappings"].clone()).ok())
        .unwrap_or_default();
    let rates = offer.map(TaxRates::from_offer).unwrap_or_default();
    (mappings, rates)
}

/// One line as Xero will show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineTotal {
    #[serde(with = "ledgerlink_wire::money")]
    pub amount: Decimal,
    #[serde(with = "ledgerlink_wire::money")]
    pub tax: Decimal,
}

/// An invoice's totals as Xero will show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceTotals {
    pub lines: Vec<LineTotal>,
    #[serde(with = "ledgerlink_wire::money")]
    pub subtotal: Decimal,
    #[serde(with = "ledgerlink_wire::money")]
    pub total_tax: Decimal,
    #[serde(with = "ledgerlink_wire::money")]
    pub total: Decimal,
}

/// Why totals cannot be worked out yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotalsError {
    #[error("line {line}: sales category '{category}' has no mapping yet")]
    UnmappedCategory { line: usize, category: String },
    #[error("line {line}: no tax type")]
    NoTaxType { line: usize },
    #[error("line {line}: the organisation has no tax rate '{tax_type}'")]
    UnknownTaxType { line: usize, tax_type: String },
    #[error("the amounts are too large to add up")]
    TooLarge,
}

/// Xero's totals of `invoice`: each line's amount is quantity × unit amount to 2 decimals, its tax
/// is worked out on that amount at its rate and rounded half away from zero; totals are sums.
/// A refund's totals: what was given back, totalled as a sale's lines are.
pub fn credit_note_totals(
    note: &ledgerlink_wire::documents::CreditNote,
    rates: &TaxRates,
    mappings: &Mappings,
) -> Result<InvoiceTotals, TotalsError> {
    let as_sale = Invoice {
        client_ref: note.client_ref.clone(),
        invoice_type: Default::default(),
        contact: note.contact.clone(),
        date: note.date,
        due_date: None,
        reference: note.reference.clone(),
        currency: note.currency.clone(),
        tax_mode: note.tax_mode,
        status: Default::default(),
        lines: note.lines.clone(),
    };
    invoice_totals(&as_sale, rates, mappings)
}

pub fn invoice_totals(
    invoice: &Invoice,
    rates: &TaxRates,
    mappings: &Mappings,
) -> Result<InvoiceTotals, TotalsError> {
    let mut lines = Vec::with_capacity(invoice.lines.len());
    for (i, line) in invoice.lines.iter().enumerate() {
        let amount =
            totals::line_amount(line.quantity, line.unit_amount).ok_or(TotalsError::TooLarge)?;
        // A line that comes to nothing has no tax, whatever its rate (a form's fresh empty line).
        let rate = if invoice.tax_mode == TaxMode::NoTax || amount.is_zero() {
            Decimal::ZERO
        } else {
            let tax_type = match (&line.tax_type, &line.sales_category) {
                (Some(t), _) => t.clone(),
                (None, Some(c)) => mappings
                    .categories
                    .get(c)
                    .map(|m| m.tax_type.clone())
                    .ok_or_else(|| TotalsError::UnmappedCategory {
                        line: i,
                        category: c.clone(),
                    })?,
                (None, None) => return Err(TotalsError::NoTaxType { line: i }),
            };
            *rates
                .0
                .get(&tax_type)
                .ok_or(TotalsError::UnknownTaxType { line: i, tax_type })?
        };
        lines.push(LineTotal {
            amount,
            tax: totals::line_tax(amount, rate, invoice.tax_mode).ok_or(TotalsError::TooLarge)?,
        });
    }
    let sum = totals::sum(lines.iter().map(|l| l.amount)).ok_or(TotalsError::TooLarge)?;
    let total_tax = totals::sum(lines.iter().map(|l| l.tax)).ok_or(TotalsError::TooLarge)?;
    let (subtotal, total) = match invoice.tax_mode {
        TaxMode::Inclusive => (sum.checked_sub(total_tax), Some(sum)),
        TaxMode::Exclusive | TaxMode::NoTax => (Some(sum), sum.checked_add(total_tax)),
    };
    let (Some(subtotal), Some(total)) = (subtotal, total) else {
        return Err(TotalsError::TooLarge);
    };
    Ok(InvoiceTotals {
        lines,
        subtotal,
        total_tax,
        total,
    })
}

/// What an end-of-shift summary comes to before it is sent: takings, and the cash over (positive)
/// or short (negative) against what the till expected in the drawer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShiftSummary {
    #[serde(with = "ledgerlink_wire::money")]
    pub sales: Decimal,
    #[serde(with = "ledgerlink_wire::money")]
    pub refunds: Decimal,
    /// Sales less refunds.
    #[serde(with = "ledgerlink_wire::money")]
    pub net_sales: Decimal,
    #[serde(with = "ledgerlink_wire::money")]
    pub taken: Decimal,
    #[serde(with = "ledgerlink_wire::money")]
    pub over_short: Decimal,
}

/// `None` when the amounts are past what a decimal holds (a form can hold anything).
pub fn shift_summary(shift: &Shift) -> Option<ShiftSummary> {
    let sales = totals::sum(shift.sales.iter().map(|s| s.amount))?;
    let refunds = totals::sum(shift.refunds.iter().map(|s| s.amount))?;
    let taken = totals::sum(shift.tenders.iter().map(|t| t.amount))?;
    let expected = shift.expected_cash()?;
    Some(ShiftSummary {
        sales,
        refunds,
        net_sales: sales.checked_sub(refunds)?,
        taken,
        over_short: shift.counted_cash.checked_sub(expected)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgerlink_wire::documents::{CategoryMapping, InvoiceLine};
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn example(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/{name}")),
        )
        .unwrap()
    }

    #[test]
    fn the_examples_prepare_as_they_are_and_a_missing_client_ref_is_made() {
        for (kind, file) in [
            (DocumentKind::Invoice, "invoice.json"),
            (DocumentKind::Payment, "payment.json"),
            (DocumentKind::Shift, "shift.json"),
        ] {
            let p = prepare(kind, &example(file));
            assert!(p.problems.is_empty(), "{file}: {:?}", p.problems);
            assert_eq!(p.documents.len(), 1);
        }
        let mut inv: Value = serde_json::from_str(&example("invoice.json")).unwrap();
        inv.as_object_mut().unwrap().remove("client_ref");
        let batch = serde_json::json!({ "invoices": [inv.clone(), inv] }).to_string();
        let p = prepare(DocumentKind::Invoice, &batch);
        assert_eq!(p.documents.len(), 2);
        let refs: Vec<&str> = p
            .documents
            .iter()
            .map(|d| d["client_ref"].as_str().unwrap())
            .collect();
        assert!(refs[0].starts_with("invoice-") && refs[0] != refs[1]);
        // The proxy keys by the trimmed client_ref, and so does the device.
        let mut padded: Value = serde_json::from_str(&example("invoice.json")).unwrap();
        padded["client_ref"] = Value::String("  till1-7 ".into());
        let p2 = prepare(DocumentKind::Invoice, &padded.to_string());
        assert_eq!(p2.documents[0]["client_ref"], "till1-7");
        // Amounts are kept exactly, as strings.
        assert_eq!(p.documents[0]["lines"][0]["unit_amount"], "4.80");
    }

    #[test]
    fn bad_input_lists_every_problem_by_path_and_keeps_the_good_documents() {
        let text = r#"[
            {"client_ref": "ok", "contact": {"name": "Walk-in"}, "date": "2026-11-20",
             "lines": [{"description": "Tea", "quantity": 1, "unit_amount": "3.50", "account_code": "200", "tax_type": "OUTPUT2"}]},
            {"contact": {}, "date": "20/11/2026", "lines": [{"description": "x", "quantity": "two", "unit_amount": 1}]}
        ]"#;
        let p = prepare(DocumentKind::Invoice, text);
        assert_eq!(p.documents.len(), 1);
        let paths: Vec<&str> = p.problems.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"invoices[1].contact.name"), "{paths:?}");
        assert!(paths.contains(&"invoices[1].date"), "{paths:?}");
        assert!(
            paths.contains(&"invoices[1].lines[0].quantity"),
            "{paths:?}"
        );
        let p = prepare(DocumentKind::Invoice, "{oops");
        assert!(p.problems[0].message.starts_with("not JSON"));
    }

    #[test]
    fn totals_follow_xeros_per_line_rule() {
        let rates = TaxRates::from_offer(&serde_json::json!({"tax_rates": [
            {"tax_type": "OUTPUT2", "name": "GST on Income", "rate": 15.0},
            {"tax_type": "NONE", "name": "No GST", "rate": "0"}
        ]}));
        let mut mappings = Mappings::default();
        mappings.categories.insert(
            "Drinks".into(),
            CategoryMapping {
                account_code: "260".into(),
                tax_type: "OUTPUT2".into(),
            },
        );
        let inv: Invoice = serde_json::from_str(&example("invoice.json")).unwrap();
        // 2 × 4.80 = 9.60 containing 1.25 of GST; 3.95 containing 0.52.
        let t = invoice_totals(&inv, &rates, &mappings).unwrap();
        assert_eq!(
            (
                t.lines[0].tax,
                t.lines[1].tax,
                t.total_tax,
                t.subtotal,
                t.total
            ),
            (d("1.25"), d("0.52"), d("1.77"), d("11.78"), d("13.55"))
        );
        let mut exclusive = inv.clone();
        exclusive.tax_mode = TaxMode::Exclusive;
        let t = invoice_totals(&exclusive, &rates, &mappings).unwrap();
        assert_eq!(
            (t.subtotal, t.total_tax, t.total),
            (d("13.55"), d("2.03"), d("15.58"))
        );
        let e = invoice_totals(&inv, &rates, &Mappings::default()).unwrap_err();
        assert_eq!(
            e,
            TotalsError::UnmappedCategory {
                line: 0,
                category: "Drinks".into()
            }
        );
    }

    #[test]
    fn a_shift_shows_its_over_short_before_it_is_sent() {
        let shift: Shift = serde_json::from_str(&example("shift.json")).unwrap();
        let s = shift_summary(&shift).unwrap();
        assert_eq!(
            (s.sales, s.refunds, s.taken, s.over_short),
            (d("150.55"), d("10.00"), d("140.55"), d("-1.50"))
        );
        assert_eq!(s.net_sales, d("140.55"));
    }

    #[test]
    fn absurd_amounts_are_refused_before_saving_and_totals_never_panic() {
        // The file that made the CLI panic ("Addition overflowed"): huge amounts on many lines.
        let line = serde_json::json!({"description": "x", "quantity": "99999999999",
            "unit_amount": "999999999999", "account_code": "200", "tax_type": "OUTPUT2"});
        let text = serde_json::json!({"client_ref": "huge", "contact": {"name": "c"},
            "date": "2026-11-20", "lines": vec![line; 150]})
        .to_string();
        let p = prepare(DocumentKind::Invoice, &text);
        assert!(p.documents.is_empty());
        assert!(
            p.problems.iter().all(|p| p.code == ProblemCode::OutOfRange),
            "{:?}",
            p.problems
        );
        // What a form's live preview totals, unchecked: an answer, not a panic.
        let mut inv: Invoice = serde_json::from_str(&example("invoice.json")).unwrap();
        let big = Decimal::from_str("79228162514264337593543950").unwrap();
        for l in &mut inv.lines {
            l.quantity = big;
            l.unit_amount = big;
        }
        assert_eq!(
            invoice_totals(&inv, &TaxRates::default(), &Mappings::default()),
            Err(TotalsError::TooLarge)
        );
    }

    proptest::proptest! {
        /// Whatever a file or a form holds: documents or problems, never a panic.
        #[test]
        fn preparing_anything_never_panics(text in r#"[\[\]{}",:a-z_0-9.eE+\- ]{0,80}"#) {
            let _ = prepare(DocumentKind::Invoice, &text);
            let _ = prepare(DocumentKind::Shift, &text);
        }

        #[test]
        fn totals_of_any_amounts_never_panic(
            amounts in proptest::collection::vec((proptest::num::i64::ANY, 0u32..=10, proptest::num::i64::ANY, 0u32..=10), 1..12),
        ) {
            let mut inv: Invoice = serde_json::from_str(&example("invoice.json")).unwrap();
            let template = inv.lines[1].clone();
            inv.lines = amounts
                .iter()
                .map(|(q, qs, u, us)| InvoiceLine {
                    quantity: Decimal::new(*q, *qs),
                    unit_amount: Decimal::new(*u, *us),
                    ..template.clone()
                })
                .collect();
            let rates = TaxRates([("OUTPUT2".to_string(), Decimal::new(15, 0))].into_iter().collect());
            let _ = invoice_totals(&inv, &rates, &Mappings::default());
        }
    }
}
