//! Voiding a sent invoice: Xero's own state is read first (so a void asked again after a lost
//! answer, or of an invoice paid meanwhile in Xero, settles without a second write), then
//! `POST /Invoices/{id}` with `Status: VOIDED` under an Idempotency-Key of its own. Xero's refusal
//! puts the document back to `sent` with Xero's message.

use ledgerlink_wire::documents::DocumentState;
use reqwest::Method;
use serde_json::json;

use super::{outcome_of, xero_messages, XeroDocuments};
use crate::delivery::bundle::key_for;
use crate::delivery::claim::update;
use crate::delivery::Stop;
use crate::store::DocumentRow;

impl XeroDocuments {
    pub(super) async fn void_invoice(&mut self, doc: DocumentRow) -> Result<(), Stop> {
        let back = |why: String| {
            update(
                doc.id,
                DocumentState::Sent,
                doc.provider_id.clone(),
                doc.provider_number.clone(),
                Some(why),
            )
        };
        let Some(id) = doc.provider_id.clone() else {
            return self
                .save(vec![back(
                    "Xero never gave it an id, so there is nothing to void".into(),
                )])
                .await;
        };
        let now = self
            .call(Method::GET, &format!("Invoices/{id}"), None, None)
            .await?;
        let status = now.body["Invoices"][0]["Status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match status.as_str() {
            "VOIDED" => {
                return self
                    .save(vec![update(
                        doc.id,
                        DocumentState::Voided,
                        Some(id),
                        doc.provider_number.clone(),
                        None,
                    )])
                    .await
            }
            "PAID" => {
                return self
                    .save(vec![update(
                        doc.id,
                        DocumentState::Paid,
                        Some(id),
                        doc.provider_number.clone(),
                        Some("it was paid in Xero, so it cannot be voided".into()),
                    )])
                    .await
            }
            _ => {}
        }
        let body = json!({"Invoices": [{"InvoiceID": id, "Status": "VOIDED"}]}).to_string();
        let key = key_for(&[&doc.send_identity(), b"void"]);
        let answer = self
            .call(
                Method::POST,
                &format!("Invoices/{id}?summarizeErrors=false"),
                Some(&body),
                Some(&key),
            )
            .await?;
        let outcome = outcome_of(
            doc.id,
            &answer,
            "Invoices",
            0,
            "InvoiceID",
            Some("InvoiceNumber"),
        );
        let update = if outcome.state == DocumentState::Failed {
            back(format!(
                "Xero refused to void it: {}",
                outcome
                    .message
                    .unwrap_or_else(|| xero_messages(&answer.body))
            ))
        } else {
            update(
                doc.id,
                DocumentState::Voided,
                Some(id),
                doc.provider_number.clone(),
                None,
            )
        };
        self.save(vec![update]).await
    }
}
