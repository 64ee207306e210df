//! A refund: one credit note (`ACCRECCREDIT`) to the customer; its credit allocated to the sale it
//! names, up to what that sale still owes; then one refund payment per tender (`PUT /Payments`
//! naming the `CreditNote`) for what the till paid back. Like a shift it goes one document at a
//! time, each step under an Idempotency-Key of its own, and each thing made in Xero is found again
//! after an answer lost past the replay window: the credit note and the refunds by the document's
//! marker in their `Reference`, the allocation among the credit note's own.

use ledgerlink_wire::documents::{CreditNote, DocumentState, Invoice};
use ledgerlink_wire::totals;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use uuid::Uuid;

use super::{num, outcome_of, XeroDocuments, CREDIT_NOTE};
use crate::delivery::bundle::key_for;
use crate::delivery::claim::{unreadable, update};
use crate::delivery::reconcile::marker;
use crate::delivery::Stop;
use crate::store::DocumentRow;

/// A decimal Xero sent as a JSON number.
fn decimal(v: &Value) -> Option<Decimal> {
    Decimal::from_str(&v.to_string()).ok()
}

impl XeroDocuments {
    pub(super) async fn credit_note(&mut self, doc: DocumentRow) -> Result<(), Stop> {
        let fail = |why: String| update(doc.id, DocumentState::Failed, None, None, Some(why));
        let note: CreditNote = match serde_json::from_str(&doc.body) {
            Ok(n) => n,
            Err(e) => return self.save(vec![unreadable(doc.id, &e)]).await,
        };
        // Everything that can be refused here is, before anything is made in Xero: a refund that
        // failed halfway would leave a credit note a correction could make twice.
        if let Some(c) = note
            .lines
            .iter()
            .filter_map(|l| l.sales_category.as_ref())
            .find(|c| !self.mappings.categories.contains_key(*c))
        {
            return self
                .save(vec![fail(format!(
                    "the sales category '{c}' is not mapped: map it, then send the refund again"
                ))])
                .await;
        }
        let mut refunds = Vec::with_capacity(note.refunds.len());
        for r in &note.refunds {
            match self.mappings.tenders.get(&r.tender) {
                Some(m) => refunds.push((r.amount, m.account_code.clone())),
                None => {
                    return self
                        .save(vec![fail(format!(
                            "the tender '{}' is not mapped: map it, then send the refund again",
                            r.tender
                        ))])
                        .await
                }
            }
        }
        let paid_back = totals::sum(refunds.iter().map(|(a, _)| *a)).unwrap_or(Decimal::MAX);
        let as_sale = self.as_sale(&note);
        let total = match self.expected_total(&as_sale).await? {
            Ok(t) => t,
            Err(why) => return self.save(vec![fail(why)]).await,
        };
        if paid_back > total {
            return self
                .save(vec![fail(format!(
                    "the refunds add up to {paid_back}, more than the credit note's total of {total}"
                ))])
                .await;
        }
        let sale = match self.sale_refunded(&doc, &note).await? {
            Ok(s) => s,
            Err(why) => return self.save(vec![fail(why)]).await,
        };
        let contact = match self
            .contact(
                &note.contact.name,
                note.contact.email.as_deref(),
                note.contact.contact_number.as_deref(),
            )
            .await?
        {
            Ok(c) => c,
            Err(why) => return self.save(vec![fail(why)]).await,
        };

        let past_window = self.round.past_replay_window(&doc);
        let m = marker(&doc);
        let credit_note = |this: &Self, m: &str| {
            let mut x = this.xero_invoice(&as_sale, contact, m);
            x["Type"] = json!("ACCRECCREDIT");
            x["Status"] = json!("AUTHORISED");
            x
        };
        let first = self
            .first_record(&doc, CREDIT_NOTE, past_window, credit_note, b"credit_note")
            .await?;
        // Refused: the refusal is saved.
        let Some((note_id, number)) = first else {
            return Ok(());
        };
        let done = |why: Option<String>, state| {
            update(doc.id, state, Some(note_id.clone()), number.clone(), why)
        };

        // The credit goes to the sale first, up to what it still owes; the rest was paid back.
        if let Some(invoice_id) = sale {
            let step = self
                .allocate(&doc, &note_id, &invoice_id, total - paid_back, past_window)
                .await;
            match step {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    return self
                        .save(vec![done(
                            Some(format!("the credit note was made but could not be allocated to the sale: {why}")),
                            DocumentState::Failed,
                        )])
                        .await
                }
                Err(stop) => {
                    self.round.requeue(&[&doc], &stop).await?;
                    return Err(stop);
                }
            }
        }

        let date = note.date.to_string();
        let indexed: Vec<(usize, Value)> = refunds
            .iter()
            .enumerate()
            .map(|(i, (amount, account))| {
                (
                    i,
                    json!({"CreditNote": {"CreditNoteID": note_id}, "Account": {"Code": account},
                    "Date": date, "Amount": num(*amount), "Reference": format!("Refund {m}-{i}")}),
                )
            })
            .collect();
        if let Err(refused) = self
            .marked_payments(&doc, indexed, past_window, b"refunds")
            .await?
        {
            return self
                .save(vec![done(
                    Some(format!(
                        "the credit note was made but a refund was refused: {refused}"
                    )),
                    DocumentState::Failed,
                )])
                .await;
        }
        self.save(vec![done(None, DocumentState::Sent)]).await
    }

    /// The refund's lines as a sale's, to build Xero's lines and work out the total the same way.
    fn as_sale(&self, note: &CreditNote) -> Invoice {
        Invoice {
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
        }
    }

    /// The total Xero will give the credit note (its per-line rule, the organisation's rates), to
    /// check the refunds against before anything is made. `Err` with the reason it cannot be known.
    async fn expected_total(&mut self, sale: &Invoice) -> Result<Result<Decimal, String>, Stop> {
        let rates = crate::documents::tax_rates(&self.round.state, &self.round.connection)
            .await
            .map_err(Stop::later)?;
        let mut lines = Vec::with_capacity(sale.lines.len());
        for l in &sale.lines {
            let tax_type = match &l.sales_category {
                Some(c) => Some(self.mappings.categories[c].tax_type.clone()),
                None => l.tax_type.clone(),
            };
            let rate = match tax_type {
                None => Decimal::ZERO,
                Some(t) => match rates.get(&t.to_ascii_uppercase()) {
                    Some(r) => *r,
                    None => return Ok(Err(format!("the organisation has no tax rate '{t}'"))),
                },
            };
            let Some(amount) = totals::line_amount(l.quantity, l.unit_amount) else {
                return Ok(Err("a line's amount is out of range".into()));
            };
            lines.push((amount, rate));
        }
        Ok(totals::total(lines, sale.tax_mode).ok_or_else(|| "the total is out of range".into()))
    }

    /// The Xero id of the sale a refund names, if it names one. `Err` when the sale cannot take
    /// credit (refused, voided, another kind, not in Xero).
    async fn sale_refunded(
        &mut self,
        doc: &DocumentRow,
        note: &CreditNote,
    ) -> Result<Result<Option<String>, String>, Stop> {
        let Some(target) = &note.invoice else {
            return Ok(Ok(None));
        };
        if let Some(r) = &target.client_ref {
            let found = match self.sale_from_device(doc, r, "a sale").await? {
                Ok(found) => found,
                Err(why) => return Ok(Err(why)),
            };
            return Ok(match found {
                None => Err(format!(
                    "no invoice with client_ref '{r}' arrived from this device within an hour"
                )),
                Some(t) => match (t.state, t.provider_id) {
                    (DocumentState::Sent | DocumentState::Paid, Some(id)) => Ok(Some(id)),
                    (state, _) => Err(format!(
                        "the sale '{r}' is {} and not in Xero: refund it once it is",
                        state.as_str()
                    )),
                },
            });
        }
        let n = target.xero_number.clone().unwrap_or_default();
        let clause = format!("InvoiceNumber==\"{}\"", n.replace('"', ""));
        let path = format!(
            "Invoices?where={}",
            url::form_urlencoded::byte_serialize(clause.as_bytes()).collect::<String>()
        );
        let found = self.call(Method::GET, &path, None, None).await?;
        Ok(found.body["Invoices"]
            .as_array()
            .and_then(|list| list.first())
            .and_then(|i| Uuid::parse_str(i["InvoiceID"].as_str()?).ok())
            .map(|id| Some(id.to_string()))
            .ok_or_else(|| format!("Xero has no invoice numbered '{n}'")))
    }

    /// Allocates up to `credit` of the credit note to the sale, no more than the sale still owes.
    /// `Ok(Err(why))` when Xero refuses it.
    async fn allocate(
        &mut self,
        doc: &DocumentRow,
        note_id: &str,
        invoice_id: &str,
        credit: Decimal,
        past_window: bool,
    ) -> Result<Result<(), String>, Stop> {
        if credit <= Decimal::ZERO {
            return Ok(Ok(()));
        }
        if past_window {
            // A lost answer: the allocation may be there already.
            let found = self
                .call(Method::GET, &format!("CreditNotes/{note_id}"), None, None)
                .await?;
            let allocated = found.body["CreditNotes"][0]["Allocations"]
                .as_array()
                .is_some_and(|list| {
                    list.iter()
                        .any(|a| a["Invoice"]["InvoiceID"].as_str() == Some(invoice_id))
                });
            if allocated {
                return Ok(Ok(()));
            }
        }
        let sale = self
            .call(Method::GET, &format!("Invoices/{invoice_id}"), None, None)
            .await?;
        let inv = &sale.body["Invoices"][0];
        let due = decimal(&inv["AmountDue"]).unwrap_or(Decimal::ZERO);
        if inv["Status"] != "AUTHORISED" || due <= Decimal::ZERO {
            // Paid (or voided) already: the whole credit is what was paid back.
            return Ok(Ok(()));
        }
        let amount = credit.min(due);
        let body = json!({"Allocations": [{"Invoice": {"InvoiceID": invoice_id}, "Amount": num(amount), "Date": self.round.state.clock.now().date_naive().to_string()}]}).to_string();
        let key = key_for(&[&doc.send_identity(), b"allocation"]);
        let answer = self
            .call(
                Method::PUT,
                &format!("CreditNotes/{note_id}/Allocations?summarizeErrors=false"),
                Some(&body),
                Some(&key),
            )
            .await?;
        let o = outcome_of(doc.id, &answer, "Allocations", 0, "AllocationID", None);
        Ok(if o.state == DocumentState::Failed {
            Err(o.message.unwrap_or_default())
        } else {
            Ok(())
        })
    }
}
