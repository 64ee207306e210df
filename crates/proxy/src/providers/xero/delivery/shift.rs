//! A shift: one sales invoice to the POS contact on the organisation's local day of its close
//! (its lines what each category took, and cash over or short), then one payment per tender.

use chrono::{DateTime, Utc};
use ledgerlink_wire::documents::{DocumentState, Mappings, Shift, TaxMode};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::HashMap;

use super::{num, tax_mode, XeroDocuments, INVOICE};
use crate::delivery::claim::update;
use crate::delivery::reconcile::marker;
use crate::delivery::Stop;
use crate::store::DocumentRow;

impl XeroDocuments {
    pub(super) async fn shift(&mut self, doc: DocumentRow) -> Result<(), Stop> {
        let fail = |why: String| update(doc.id, DocumentState::Failed, None, None, Some(why));
        let shift: Shift = match serde_json::from_str(&doc.body) {
            Ok(s) => s,
            Err(e) => {
                return self
                    .save(vec![crate::delivery::claim::unreadable(doc.id, &e)])
                    .await
            }
        };
        // A shift closed at 08:00 in Auckland is that morning's, not the previous UTC day's.
        let zone = self.organisation_zone().await?;
        let day = shift
            .closed_at
            .with_timezone(&zone)
            .date_naive()
            .to_string();
        let rates = if shift.tax_mode == TaxMode::Exclusive {
            crate::documents::tax_rates(&self.round.state, &self.round.connection)
                .await
                .map_err(Stop::later)?
        } else {
            HashMap::new()
        };
        let Some(plan) = plan_shift(&shift, &self.mappings, &rates) else {
            return self
                .save(vec![fail("a category, tender, tax rate or the over/short account is not mapped: map it and push the shift again under a new client_ref".into())])
                .await;
        };
        if plan.lines.is_empty() {
            return self
                .save(vec![update(
                    doc.id,
                    DocumentState::Sent,
                    None,
                    None,
                    Some("nothing to send: the shift took no money".into()),
                )])
                .await;
        }
        let contact = match self
            .contact(&self.mappings.pos_contact_name.clone(), None, None)
            .await?
        {
            Ok(c) => c,
            Err(why) => return self.save(vec![fail(why)]).await,
        };
        let past_window = self.round.past_replay_window(&doc);
        let invoice = |_: &Self, m: &str| {
            let lines: Vec<Value> = plan
                .lines
                .iter()
                .map(|(d, amount, account, tax)| {
                    Self::line(d, Decimal::ONE, *amount, account, Some(tax))
                })
                .collect();
            json!({
                "Type": "ACCREC",
                "Contact": {"ContactID": contact},
                "Date": day,
                "DueDate": day,
                "Reference": format!("{} {m}", reference(&shift)),
                "LineAmountTypes": tax_mode(shift.tax_mode),
                "Status": "AUTHORISED",
                "LineItems": lines,
            })
        };
        let first = self
            .first_record(&doc, INVOICE, past_window, invoice, b"invoice")
            .await?;
        // Refused: the refusal is saved.
        let Some((invoice_id, number)) = first else {
            return Ok(());
        };
        // Each tender's payment carries the shift's marker and its position, so a lost answer can be
        // checked against Xero once the replay window has passed.
        let shift_marker = marker(&doc);
        let indexed: Vec<(usize, Value)> = plan
            .payments
            .iter()
            .enumerate()
            .map(|(i, (amount, account))| {
                (i, json!({"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": account}, "Date": day,
                    "Amount": num(*amount), "Reference": format!("{} {shift_marker}-{i}", reference(&shift))}))
            })
            .collect();
        let made = |state, why| update(doc.id, state, Some(invoice_id), number.clone(), why);
        let outcome = match self
            .marked_payments(&doc, indexed, past_window, b"payments")
            .await?
        {
            Ok(()) => made(DocumentState::Sent, None),
            Err(refused) => made(
                DocumentState::Failed,
                Some(format!(
                    "the invoice was made but a payment was refused: {refused}"
                )),
            ),
        };
        self.save(vec![outcome]).await
    }
}

/// What a shift becomes: invoice lines `(description, amount, account, tax type)` and payments
/// `(amount, account)`. `None` if something it needs is unmapped.
pub struct ShiftPlan {
    pub lines: Vec<(String, Decimal, String, String)>,
    pub payments: Vec<(Decimal, String)>,
}

pub fn plan_shift(
    shift: &Shift,
    m: &Mappings,
    rates: &HashMap<String, Decimal>,
) -> Option<ShiftPlan> {
    // The payments first: what each tender took (cash: what was counted, less the float that
    // stays in the drawer; nothing when the drawer holds less than its float).
    let cash_taken = shift.cash_taken()?.max(Decimal::ZERO);
    let mut payments = Vec::new();
    for t in &shift.tenders {
        let account = m.tenders.get(&t.tender)?;
        let amount = if t.tender.eq_ignore_ascii_case("cash") {
            cash_taken
        } else {
            t.amount
        };
        if !amount.is_zero() {
            payments.push((amount, account.account_code.clone()));
        }
    }
    if !shift
        .tenders
        .iter()
        .any(|t| t.tender.eq_ignore_ascii_case("cash"))
        && !cash_taken.is_zero()
    {
        let account = m
            .tenders
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("cash"))
            .map(|(_, v)| v)?;
        payments.push((cash_taken, account.account_code.clone()));
    }
    let mut lines = Vec::new();
    let mut priced = Vec::new();
    for (items, sign, what) in [
        (&shift.sales, Decimal::ONE, "sales"),
        (&shift.refunds, Decimal::NEGATIVE_ONE, "refunds"),
    ] {
        for item in items {
            let c = m.categories.get(&item.category)?;
            if item.amount.is_zero() {
                continue;
            }
            let amount = item.amount * sign;
            let rate = match shift.tax_mode {
                TaxMode::Exclusive => *rates.get(&c.tax_type.to_ascii_uppercase())?,
                TaxMode::Inclusive | TaxMode::NoTax => Decimal::ZERO,
            };
            priced.push((amount, rate));
            lines.push((
                format!("{} {what}", item.category),
                amount,
                c.account_code.clone(),
                c.tax_type.clone(),
            ));
        }
    }
    // Over/short is what makes the invoice equal the money taken: counted cash against expected in
    // any tax mode, plus (tax exclusive) the cents between the till's tax and Xero's per-line tax.
    let taken: Decimal = payments.iter().map(|(a, _)| *a).sum();
    // Validated amounts (each at most 10^12, a few hundred of them) always total.
    let over_short = taken - ledgerlink_wire::totals::total(priced, shift.tax_mode)?;
    if !over_short.is_zero() {
        let label = if over_short > Decimal::ZERO {
            "Cash over"
        } else {
            "Cash short"
        };
        lines.push((
            label.to_string(),
            over_short,
            m.over_short_account.clone()?,
            "NONE".to_string(),
        ));
    }
    Some(ShiftPlan { lines, payments })
}

fn reference(shift: &Shift) -> String {
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M").to_string();
    format!(
        "{} shift {} to {}",
        shift.register,
        fmt(shift.opened_at),
        fmt(shift.closed_at)
    )
}
