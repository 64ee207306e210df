//! How orders become HubRise calls: one `POST /location/orders` per order, its money written as
//! HubRise writes it (`"8.90 EUR"` in the location's currency) and its quantities and rates as
//! decimal strings. HubRise has no idempotency key, so each order carries the document's marker
//! as `private_ref`, and an order whose outcome is unknown is looked up by it
//! (`GET /location/orders?private_ref=`) before it is sent again: never twice in HubRise.

use ledgerlink_wire::documents::{DocumentKind, DocumentState, Order};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

use super::api;
use super::oauth::HubRiseClient;
use crate::delivery::claim::{unreadable, update};
use crate::delivery::pacer::Cost;
use crate::delivery::reconcile::{marker, reconcile};
use crate::delivery::{Round, Stop};
use crate::providers::{Answer, Documents, Found};
use crate::store::{Bundle, DocumentRow, DocumentUpdate};

/// One round of a HubRise connection's orders.
pub struct HubRiseDocuments {
    round: Round,
    client: Arc<HubRiseClient>,
    /// The location's currency, looked up once a round.
    currency: Option<String>,
}

impl HubRiseDocuments {
    pub fn new(round: Round, client: Arc<HubRiseClient>) -> Self {
        Self {
            round,
            client,
            currency: None,
        }
    }

    pub fn into_round(self) -> Round {
        self.round
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, Stop> {
        self.call_as(Cost::Light, method, path, body).await
    }

    async fn call_as(
        &mut self,
        cost: Cost,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, Stop> {
        let client = self.client.clone();
        self.round
            .paced_as(cost, |state, connection| async move {
                api::call(state, connection, &client, method, path, body).await
            })
            .await
    }

    /// The location's currency: as read at connect, or (a connection made before it was kept)
    /// from `GET /location`.
    async fn currency(&mut self) -> Result<String, Stop> {
        if let Some(c) = &self.currency {
            return Ok(c.clone());
        }
        let id = self.round.connection.id;
        let kept = self
            .round
            .state
            .storage
            .connections()
            .organisation(id)
            .await
            .map_err(Stop::store)?
            .and_then(|o| o.currency);
        if let Some(c) = kept {
            self.currency = Some(c.clone());
            return Ok(c);
        }
        let answer = self.call(Method::GET, "/location", None).await?;
        let currency = answer.body["currency"]
            .as_str()
            .filter(|c| c.len() == 3)
            .ok_or_else(|| {
                Stop::Later(format!(
                    "HubRise's location has no currency ({})",
                    api::refusal(&answer)
                ))
            })?
            .to_string();
        self.currency = Some(currency.clone());
        Ok(currency)
    }

    /// Sends one order; its outcome saved (a failed call requeues it, its outcome unknown).
    async fn send_order(&mut self, doc: DocumentRow, currency: &str) -> Result<(), Stop> {
        let order: Order = match serde_json::from_str(&doc.body) {
            Ok(o) => o,
            Err(e) => return self.round.save(vec![unreadable(doc.id, &e)]).await,
        };
        let body = render(&order, &marker(&doc), currency);
        self.round.mark(&[&doc], DocumentState::Sending).await?;
        let answer = match self
            .call(Method::POST, "/location/orders", Some(&body))
            .await
        {
            Ok(a) => a,
            Err(stop) => {
                self.round.requeue(&[&doc], &stop).await?;
                return Err(stop);
            }
        };
        let outcome = match answer.body["id"].as_str() {
            Some(id) if answer.status.is_success() => update(
                doc.id,
                DocumentState::Sent,
                Some(id.to_string()),
                None,
                None,
            ),
            _ => update(
                doc.id,
                DocumentState::Failed,
                None,
                None,
                Some(api::refusal(&answer)),
            ),
        };
        self.round.save(vec![outcome]).await
    }
}

/// HubRise's money: two decimals, a space, the currency.
fn money(amount: Decimal, currency: &str) -> String {
    format!("{:.2} {currency}", amount.round_dp(2))
}

/// A decimal as HubRise takes it: in a string.
fn decimal(d: Decimal) -> String {
    d.normalize().to_string()
}

/// The order as HubRise takes it.
pub fn render(order: &Order, private_ref: &str, currency: &str) -> Value {
    let items: Vec<Value> = order
        .items
        .iter()
        .map(|i| {
            let mut item = json!({
                "product_name": i.name,
                "price": money(i.price, currency),
                "quantity": decimal(i.quantity),
            });
            if let Some(sku) = &i.sku {
                item["sku_ref"] = json!(sku);
            }
            if let Some(rate) = i.tax_rate {
                item["tax_rate"] = json!(decimal(rate));
            }
            if !i.options.is_empty() {
                item["options"] = json!(i
                    .options
                    .iter()
                    .map(|o| json!({"option_list_name": "Options", "name": o.name,
                        "price": money(o.price, currency), "quantity": o.quantity}))
                    .collect::<Vec<_>>());
            }
            item
        })
        .collect();
    let mut out = json!({
        "status": order.status,
        "private_ref": private_ref,
        "items": items,
    });
    if let Some(r) = &order.reference {
        out["ref"] = json!(r);
    }
    if let Some(t) = &order.service_type {
        out["service_type"] = json!(t);
    }
    if !order.discounts.is_empty() {
        out["discounts"] = json!(order
            .discounts
            .iter()
            .map(|d| json!({"name": d.name, "price_off": money(d.amount, currency)}))
            .collect::<Vec<_>>());
    }
    if !order.charges.is_empty() {
        out["charges"] = json!(order
            .charges
            .iter()
            .map(|c| {
                let mut charge = json!({"name": c.name, "price": money(c.amount, currency)});
                if let Some(rate) = c.tax_rate {
                    charge["tax_rate"] = json!(decimal(rate));
                }
                charge
            })
            .collect::<Vec<_>>());
    }
    if !order.payments.is_empty() {
        out["payments"] = json!(order
            .payments
            .iter()
            .map(|p| json!({"name": p.tender, "amount": money(p.amount, currency)}))
            .collect::<Vec<_>>());
    }
    if let Some(c) = &order.customer {
        out["customer"] = json!(c);
    }
    for (field, text) in [
        ("customer_notes", &order.customer_notes),
        ("seller_notes", &order.seller_notes),
    ] {
        if let Some(t) = text {
            out[field] = json!(t);
        }
    }
    out
}

impl Documents for HubRiseDocuments {
    fn round(&mut self) -> &mut Round {
        &mut self.round
    }

    fn per_pass(&self, kind: DocumentKind) -> usize {
        match kind {
            // One call each, in turn.
            DocumentKind::Order => 50,
            // Intake refuses every other kind for a HubRise connection.
            _ => 0,
        }
    }

    async fn send(&mut self, kind: DocumentKind, docs: Vec<DocumentRow>) -> Result<(), Stop> {
        if kind != DocumentKind::Order {
            let refused = docs
                .iter()
                .map(|d| {
                    update(
                        d.id,
                        DocumentState::Failed,
                        None,
                        None,
                        Some(format!("HubRise takes no {}s", kind.as_str())),
                    )
                })
                .collect();
            return self.round.save(refused).await;
        }
        // No idempotency key: any order whose last call went unanswered is looked up first.
        let docs = reconcile(self, docs, "orders").await?;
        if docs.is_empty() {
            return Ok(());
        }
        let currency = self.currency().await?;
        for doc in docs {
            self.send_order(doc, &currency).await?;
        }
        Ok(())
    }

    /// Orders are changed in HubRise, not voided from here: the request is answered, unchanged.
    async fn void(&mut self, doc: DocumentRow) -> Result<(), Stop> {
        self.round
            .save(vec![update(
                doc.id,
                DocumentState::Sent,
                doc.provider_id.clone(),
                doc.provider_number.clone(),
                Some("a HubRise order is not voided from here: cancel it in HubRise".into()),
            )])
            .await
    }

    /// HubRise has no batch calls: a HubRise connection never records a bundle.
    async fn deliver_bundle(&mut self, bundle: &Bundle) -> Result<Answer, Stop> {
        Err(Stop::Later(format!(
            "bundle {} is for a provider with batch calls, not HubRise",
            bundle.key
        )))
    }

    async fn outcomes(
        &mut self,
        bundle: &Bundle,
        _answer: &Answer,
    ) -> Result<Vec<DocumentUpdate>, Stop> {
        Err(Stop::Later(format!(
            "bundle {} is for a provider with batch calls, not HubRise",
            bundle.key
        )))
    }

    /// One `private_ref` per lookup.
    fn markers_per_lookup(&self) -> usize {
        1
    }

    /// Each marker looked up by `private_ref` (a heavy read for HubRise: ten a minute).
    async fn find_marked(
        &mut self,
        _collection: &str,
        markers: &[String],
    ) -> Result<HashMap<String, Found>, Stop> {
        let mut found = HashMap::new();
        for m in markers {
            let answer = self
                .call_as(
                    Cost::Heavy,
                    Method::GET,
                    &format!("/location/orders?private_ref={m}&count=1"),
                    None,
                )
                .await?;
            if !answer.status.is_success() {
                return Err(Stop::Later(format!(
                    "looking up an order: {}",
                    api::refusal(&answer)
                )));
            }
            if let Some(id) = answer.body[0]["id"].as_str() {
                found.insert(
                    m.clone(),
                    Found {
                        id: id.to_string(),
                        number: None,
                    },
                );
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_written_as_hubrise_writes_it() {
        let order: Order = serde_json::from_value(
            serde_json::from_str::<Value>(include_str!("../../../../../examples/order.json"))
                .unwrap()["orders"][0]
                .clone(),
        )
        .unwrap();
        let x = render(&order, "LL-abc", "EUR");
        assert_eq!(x["private_ref"], "LL-abc");
        assert_eq!(x["status"], "completed");
        assert_eq!(x["ref"], "Table 7");
        assert_eq!(x["items"][0]["price"], "8.90 EUR");
        assert_eq!(x["items"][0]["quantity"], "2");
        assert_eq!(x["items"][0]["tax_rate"], "10");
        assert_eq!(x["items"][0]["options"][0]["price"], "1.00 EUR");
        assert_eq!(x["discounts"][0]["price_off"], "1.50 EUR");
        assert_eq!(x["charges"][0]["price"], "2.00 EUR");
        assert_eq!(x["payments"][0]["amount"], "24.70 EUR");
        assert_eq!(
            order.total(),
            Some(Decimal::new(2470, 2)),
            "what the payment covers"
        );
    }
}
