//! How documents become Xero calls: contacts resolved (and cached), invoices and payments in
//! bundles under `summarizeErrors=false` (each element's result mapped back to its document),
//! shifts and refunds (`credit_notes`) one document at a time since each is several calls in
//! order, voids after reading Xero's own state. What is generic (claiming, pacing, bundle keys and
//! resends, unknown outcomes) is the engine's (`crate::delivery`); this module only says what
//! Xero is sent and what its answers mean.
//!
//! Not yet here: spreading one connection's calls over Xero's 5 concurrent slots.

mod credit_notes;
mod shift;
mod voids;

use ledgerlink_wire::documents::{
    DocumentKind, DocumentState, Invoice, InvoiceStatus, InvoiceType, Mappings, Payment, TaxMode,
};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Number, Value};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use uuid::Uuid;

use super::api;
use crate::delivery::bundle::{self, key_for};
use crate::delivery::claim::{unreadable, update};
use crate::delivery::reconcile::{marker, reconcile};
use crate::delivery::{Round, Stop};
use crate::providers::{Answer, Documents, Found};
use crate::store::{Bundle, DocumentRow, DocumentUpdate};

pub use shift::{plan_shift, ShiftPlan};

/// Where and how a Xero record is created: the path, its collection, and its id and number fields.
#[derive(Clone, Copy)]
struct Creation {
    path: &'static str,
    collection: &'static str,
    id_field: &'static str,
    number_field: &'static str,
}

const INVOICE: Creation = Creation {
    path: "Invoices?summarizeErrors=false",
    collection: "Invoices",
    id_field: "InvoiceID",
    number_field: "InvoiceNumber",
};

const CREDIT_NOTE: Creation = Creation {
    path: "CreditNotes?summarizeErrors=false&unitdp=4",
    collection: "CreditNotes",
    id_field: "CreditNoteID",
    number_field: "CreditNoteNumber",
};

/// A collection's id field and number field (payments have no number).
fn fields(collection: &str) -> (&'static str, Option<&'static str>) {
    match collection {
        "Invoices" => ("InvoiceID", Some("InvoiceNumber")),
        "CreditNotes" => ("CreditNoteID", Some("CreditNoteNumber")),
        "Allocations" => ("AllocationID", None),
        _ => ("PaymentID", None),
    }
}

/// One round of a Xero connection's documents.
pub struct XeroDocuments {
    round: Round,
    mappings: Mappings,
    /// Contacts resolved in this round (name key → id or the reason it cannot be used).
    contacts: HashMap<String, Result<Uuid, String>>,
    /// The name keys whose ContactID came from the store's cache this round (not found or made
    /// in Xero just now).
    from_cache: HashSet<String>,
    /// Invoices of this round that use a ContactID from the cache, with its name key: refused,
    /// they go once more with the contact looked up by name.
    second_chance: HashMap<Uuid, String>,
}

fn num(d: Decimal) -> Value {
    Value::Number(Number::from_str(&d.normalize().to_string()).expect("a decimal is a JSON number"))
}

fn xero_messages(element: &Value) -> String {
    let messages: Vec<&str> = element["ValidationErrors"]
        .as_array()
        .map(|v| v.iter().filter_map(|m| m["Message"].as_str()).collect())
        .unwrap_or_default();
    if messages.is_empty() {
        "Xero refused the document without saying why".into()
    } else {
        messages.join("; ")
    }
}

fn tax_mode(mode: TaxMode) -> &'static str {
    match mode {
        TaxMode::Inclusive => "Inclusive",
        TaxMode::Exclusive => "Exclusive",
        TaxMode::NoTax => "NoTax",
    }
}

/// Whether a Xero invoice or payment carries `marker` (in Reference, or a bill's InvoiceNumber).
fn carries(item: &Value, marker: &str) -> bool {
    ["Reference", "InvoiceNumber"]
        .iter()
        .any(|f| item[*f].as_str().is_some_and(|r| r.ends_with(marker)))
}

impl Documents for XeroDocuments {
    fn round(&mut self) -> &mut Round {
        &mut self.round
    }

    fn per_pass(&self, kind: DocumentKind) -> usize {
        match kind {
            DocumentKind::Invoice | DocumentKind::Payment => self.round.limits.batch,
            // Several calls each, in order.
            DocumentKind::Shift | DocumentKind::CreditNote => 1,
            // Xero takes no orders (intake refuses them for a Xero connection).
            DocumentKind::Order => 0,
        }
    }

    async fn send(&mut self, kind: DocumentKind, docs: Vec<DocumentRow>) -> Result<(), Stop> {
        match kind {
            DocumentKind::Invoice => self.invoices(docs).await,
            DocumentKind::Payment => self.payments(docs).await,
            DocumentKind::Shift => {
                for doc in docs {
                    self.shift(doc).await?;
                }
                Ok(())
            }
            DocumentKind::CreditNote => {
                for doc in docs {
                    self.credit_note(doc).await?;
                }
                Ok(())
            }
            DocumentKind::Order => {
                let refused = docs
                    .iter()
                    .map(|d| {
                        update(
                            d.id,
                            DocumentState::Failed,
                            None,
                            None,
                            Some("Xero takes no orders".into()),
                        )
                    })
                    .collect();
                self.save(refused).await
            }
        }
    }

    async fn void(&mut self, doc: DocumentRow) -> Result<(), Stop> {
        self.void_invoice(doc).await
    }

    async fn deliver_bundle(&mut self, bundle: &Bundle) -> Result<Answer, Stop> {
        self.call(
            Method::PUT,
            &bundle.path,
            Some(&bundle.body),
            Some(&bundle.key),
        )
        .await
    }

    async fn outcomes(
        &mut self,
        bundle: &Bundle,
        answer: &Answer,
    ) -> Result<Vec<DocumentUpdate>, Stop> {
        let (id_field, number_field) = fields(&bundle.collection);
        let mut updates: Vec<DocumentUpdate> = bundle
            .members
            .iter()
            .enumerate()
            .map(|(i, id)| outcome_of(*id, answer, &bundle.collection, i, id_field, number_field))
            .collect();
        // A document refused while it used a ContactID from the cache may have met a contact
        // removed in Xero since (an organisation reset, a merge): the cache entry goes and the
        // document goes once more, its contact looked up by name. Decided by which ContactID it
        // used, never by the wording of Xero's message; a second refusal stands.
        for u in updates.iter_mut() {
            if u.state != DocumentState::Failed {
                continue;
            }
            let Some(key) = self.second_chance.remove(&u.id) else {
                continue;
            };
            tracing::info!(document = %u.id, "refused with a cached contact: looking the contact up again by name");
            self.forget_contact(&key).await?;
            *u = DocumentUpdate {
                id: u.id,
                state: DocumentState::Queued,
                provider_id: None,
                provider_number: None,
                message: None,
                attempt: false,
            };
        }
        for id in &bundle.members {
            self.second_chance.remove(id);
        }
        Ok(updates)
    }

    async fn find_marked(
        &mut self,
        collection: &str,
        markers: &[String],
    ) -> Result<HashMap<String, Found>, Stop> {
        let items = self.find_by_markers(collection, markers).await?;
        let (id_field, number_field) = fields(collection);
        Ok(markers
            .iter()
            .filter_map(|m| {
                let hit = items.iter().find(|i| carries(i, m))?;
                let id = Uuid::parse_str(hit[id_field].as_str()?).ok()?;
                let number = number_field.and_then(|f| hit[f].as_str().map(str::to_string));
                Some((
                    m.clone(),
                    Found {
                        id: id.to_string(),
                        number,
                    },
                ))
            })
            .collect())
    }
}

impl XeroDocuments {
    /// A round for a Xero connection, with its mappings.
    pub fn new(round: Round, mappings: Mappings) -> Self {
        Self {
            round,
            mappings,
            contacts: HashMap::new(),
            from_cache: HashSet::new(),
            second_chance: HashMap::new(),
        }
    }

    pub fn into_round(self) -> Round {
        self.round
    }

    /// One call to Xero for this connection, paced.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&str>,
        key: Option<&str>,
    ) -> Result<Answer, Stop> {
        self.round
            .paced(|state, connection| api::call(state, connection, method, path, body, key))
            .await
    }

    async fn save(&self, updates: Vec<DocumentUpdate>) -> Result<(), Stop> {
        self.round.save(updates).await
    }

    /// The organisation's time zone (read from Xero once, then kept).
    async fn organisation_zone(&mut self) -> Result<chrono_tz::Tz, Stop> {
        Ok(super::timezone::of_organisation(&self.round.state, &self.round.connection).await?)
    }

    /// The `Invoices`, `CreditNotes` or `Payments` whose `Reference` (a bill: `InvoiceNumber`)
    /// ends with one of `markers`.
    async fn find_by_markers(
        &mut self,
        collection: &str,
        markers: &[String],
    ) -> Result<Vec<Value>, Stop> {
        // A bill carries its marker in InvoiceNumber, everything else in Reference.
        let fields: &[&str] = if collection == "Invoices" {
            &["Reference", "InvoiceNumber"]
        } else {
            &["Reference"]
        };
        let clause = markers
            .iter()
            .flat_map(|m| fields.iter().map(move |f| format!("{f}.EndsWith(\"{m}\")")))
            .collect::<Vec<_>>()
            .join(" OR ");
        let path = format!(
            "{collection}?where={}",
            url::form_urlencoded::byte_serialize(clause.as_bytes()).collect::<String>()
        );
        let found = self.call(Method::GET, &path, None, None).await?;
        Ok(found.body[collection]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The ContactID for a name: from the cache, found in Xero, or created there.
    async fn contact(
        &mut self,
        name: &str,
        email: Option<&str>,
        number: Option<&str>,
    ) -> Result<Result<Uuid, String>, Stop> {
        let key = name.trim().to_lowercase();
        if let Some(found) = self.contacts.get(&key) {
            return Ok(found.clone());
        }
        let (state, connection) = (self.round.state.clone(), self.round.connection.id);
        let k = key.clone();
        if let Some(id) = state
            .storage
            .mappings()
            .contact_id(connection, &k)
            .await
            .map_err(Stop::store)?
        {
            self.from_cache.insert(key.clone());
            self.contacts.insert(key, Ok(id));
            return Ok(Ok(id));
        }
        let quote = |t: &str| t.trim().replace('\\', "\\\\").replace('"', "\\\"");
        // By contact number when the till knows one (it is the stable key), else by name.
        let filter = match number.filter(|n| !n.trim().is_empty()) {
            Some(n) => format!(
                "ContactNumber==\"{}\" OR Name==\"{}\"",
                quote(n),
                quote(name)
            ),
            None => format!("Name==\"{}\"", quote(name)),
        };
        let path = format!(
            "Contacts?includeArchived=true&where={}",
            url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
        );
        let found = self.call(Method::GET, &path, None, None).await?;
        let list = found.body["Contacts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // A contact number match wins over a name match.
        let by_number = number.and_then(|n| {
            list.iter().find(|c| {
                c["ContactNumber"].as_str() == Some(n.trim()) && c["ContactStatus"] == "ACTIVE"
            })
        });
        let id_of = |c: &Value| {
            c["ContactID"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| "Xero sent a contact without an id".to_string())
        };
        let active = by_number.or_else(|| list.iter().find(|c| c["ContactStatus"] == "ACTIVE"));
        if let (None, Some(archived)) = (active, list.first()) {
            // Only an archived contact has this name: the document goes to it, and Xero's own
            // refusal (its words, shown to the person) says what to do. Never kept: once someone
            // restores the contact it is found again, and if they make another it is that one.
            let outcome = id_of(archived);
            self.contacts.insert(key, outcome.clone());
            return Ok(outcome);
        }
        let outcome = match active {
            Some(active) => id_of(active),
            None => self.create_contact(&key, name, email, number).await?,
        };
        if let Ok(id) = &outcome {
            let (k, id) = (key.clone(), *id);
            state
                .storage
                .mappings()
                .put_contact_id(connection, &k, id)
                .await
                .map_err(Stop::store)?;
        }
        self.contacts.insert(key, outcome.clone());
        Ok(outcome)
    }

    /// Makes the contact in Xero, under a key from its name and how many times it was made before
    /// (a contact removed in Xero and made again is a new request).
    async fn create_contact(
        &mut self,
        key: &str,
        name: &str,
        email: Option<&str>,
        number: Option<&str>,
    ) -> Result<Result<Uuid, String>, Stop> {
        let mut contact = json!({"Name": name.trim()});
        if let Some(e) = email {
            contact["EmailAddress"] = json!(e);
        }
        if let Some(n) = number {
            contact["ContactNumber"] = json!(n);
        }
        let body = json!({"Contacts": [contact]}).to_string();
        let (state, connection) = (self.round.state.clone(), self.round.connection.id);
        let k = key.to_string();
        let generation = state
            .storage
            .mappings()
            .contact_generation(connection, &k)
            .await
            .map_err(Stop::store)?;
        let idem = key_for(&[
            connection.as_bytes(),
            b"contact",
            key.as_bytes(),
            &generation.to_be_bytes(),
        ]);
        let made = self
            .call(
                Method::PUT,
                "Contacts?summarizeErrors=false",
                Some(&body),
                Some(&idem),
            )
            .await?;
        // A contact made here is one a search a minute ago could not know of.
        state
            .contact_searches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(c, _), _| *c != connection);
        let element = &made.body["Contacts"][0];
        Ok(
            match element["ContactID"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                Some(id) if element["StatusAttributeString"] != "ERROR" && !id.is_nil() => Ok(id),
                _ => Err(xero_messages(element)),
            },
        )
    }

    /// Drops a cached ContactID (from this round and from the store).
    async fn forget_contact(&mut self, key: &str) -> Result<(), Stop> {
        self.contacts.remove(key);
        self.from_cache.remove(key);
        let (connection, k) = (self.round.connection.id, key.to_string());
        self.round
            .state
            .storage
            .mappings()
            .forget_contact_id(connection, &k)
            .await
            .map_err(Stop::store)
    }

    fn line(
        description: &str,
        quantity: Decimal,
        unit: Decimal,
        account: &str,
        tax: Option<&str>,
    ) -> Value {
        let mut line = json!({
            "Description": description,
            "Quantity": num(quantity),
            "UnitAmount": num(unit),
            "AccountCode": account,
        });
        if let Some(t) = tax {
            line["TaxType"] = json!(t);
        }
        line
    }

    fn xero_invoice(&self, inv: &Invoice, contact: Uuid, marker: &str) -> Value {
        let lines: Vec<Value> = inv
            .lines
            .iter()
            .map(|l| match &l.sales_category {
                Some(c) => {
                    let m = &self.mappings.categories[c];
                    Self::line(
                        &l.description,
                        l.quantity,
                        l.unit_amount,
                        &m.account_code,
                        Some(&m.tax_type),
                    )
                }
                None => Self::line(
                    &l.description,
                    l.quantity,
                    l.unit_amount,
                    l.account_code.as_deref().unwrap_or_default(),
                    l.tax_type.as_deref(),
                ),
            })
            .collect();
        let mut x = json!({
            "Type": if inv.invoice_type == InvoiceType::Bill { "ACCPAY" } else { "ACCREC" },
            "Contact": {"ContactID": contact},
            "Date": inv.date.to_string(),
            "LineAmountTypes": tax_mode(inv.tax_mode),
            "Status": if inv.status == InvoiceStatus::Draft { "DRAFT" } else { "AUTHORISED" },
            "LineItems": lines,
        });
        if let Some(d) = inv.due_date {
            x["DueDate"] = json!(d.to_string());
        }
        let tagged = match &inv.reference {
            Some(r) => format!("{r} {marker}"),
            None => marker.to_string(),
        };
        // Xero keeps a bill's reference in InvoiceNumber (Reference is for sales invoices only).
        let field = if inv.invoice_type == InvoiceType::Bill {
            "InvoiceNumber"
        } else {
            "Reference"
        };
        x[field] = json!(tagged);
        if let Some(c) = &inv.currency {
            x["CurrencyCode"] = json!(c);
        }
        x
    }

    /// The unmapped sales categories a document's lines name, if any.
    fn unmapped<'l>(&self, categories: impl Iterator<Item = &'l Option<String>>) -> Vec<&'l str> {
        categories
            .filter_map(|c| c.as_deref())
            .filter(|c| !self.mappings.categories.contains_key(*c))
            .collect()
    }

    /// One outbox's worth of invoices, in bundles.
    async fn invoices(&mut self, docs: Vec<DocumentRow>) -> Result<(), Stop> {
        let docs = reconcile(self, docs, "Invoices").await?;
        let mut updates = Vec::new();
        let mut ready: Vec<(DocumentRow, Value)> = Vec::new();
        for doc in docs {
            let inv: Invoice = match serde_json::from_str(&doc.body) {
                Ok(i) => i,
                Err(e) => {
                    updates.push(unreadable(doc.id, &e));
                    continue;
                }
            };
            let unmapped = self.unmapped(inv.lines.iter().map(|l| &l.sales_category));
            if !unmapped.is_empty() {
                updates.push(update(doc.id, DocumentState::Failed, None, None, Some(format!("the sales category '{}' is not mapped: map it, then send the invoice again", unmapped.join("', '")))));
                continue;
            }
            match self
                .contact(
                    &inv.contact.name,
                    inv.contact.email.as_deref(),
                    inv.contact.contact_number.as_deref(),
                )
                .await?
            {
                Ok(contact) => {
                    let key = inv.contact.name.trim().to_lowercase();
                    if self.from_cache.contains(&key) {
                        self.second_chance.insert(doc.id, key);
                    }
                    let x = self.xero_invoice(&inv, contact, &marker(&doc));
                    ready.push((doc, x));
                }
                Err(why) => {
                    updates.push(update(doc.id, DocumentState::Failed, None, None, Some(why)))
                }
            }
        }
        self.save(updates).await?;
        // unitdp=4: unit amounts keep the four decimals intake accepts.
        self.send_bundles("Invoices", "Invoices?summarizeErrors=false&unitdp=4", ready)
            .await
    }

    /// Documents in bundles of one collection, each sent as one call under its own key.
    async fn send_bundles(
        &mut self,
        collection: &str,
        path: &str,
        ready: Vec<(DocumentRow, Value)>,
    ) -> Result<(), Stop> {
        for part in bundle::bundles(ready, &self.round.limits) {
            let members: Vec<&DocumentRow> = part.iter().map(|(d, _)| d).collect();
            let body =
                json!({ collection: part.iter().map(|(_, x)| x.clone()).collect::<Vec<_>>() })
                    .to_string();
            let sealed = bundle::seal(
                self.round.connection.id,
                path.to_string(),
                collection,
                &members,
                body,
            );
            bundle::send_recorded(self, &sealed).await?;
        }
        Ok(())
    }

    /// The invoice or shift this device pushed as `client_ref` (`None` while none has arrived);
    /// `Err` when it is another kind of document, not `wanted` ("an invoice", "a sale").
    async fn sale_from_device(
        &self,
        doc: &DocumentRow,
        client_ref: &str,
        wanted: &str,
    ) -> Result<Result<Option<DocumentRow>, String>, Stop> {
        let (device, r) = (doc.device_id, client_ref.to_string());
        let found = self
            .round
            .state
            .storage
            .documents()
            .document_by_ref(device, &r)
            .await
            .map_err(Stop::store)?;
        Ok(match found {
            Some(t) if !matches!(t.kind, DocumentKind::Invoice | DocumentKind::Shift) => {
                Err(format!(
                    "'{client_ref}' is a {} from this device, not {wanted}",
                    t.kind.as_str()
                ))
            }
            found => Ok(found),
        })
    }

    /// What the payment pays: the invoice it names, once that invoice is in Xero. `Ok(None)`
    /// while it waits (the invoice is on its way); `Err` with the reason it cannot be paid.
    async fn invoice_paid(
        &mut self,
        doc: &DocumentRow,
        p: &Payment,
    ) -> Result<Result<Option<Value>, String>, Stop> {
        let r = match (&p.invoice.client_ref, &p.invoice.xero_number) {
            (Some(r), _) => r,
            (None, Some(n)) => return Ok(Ok(Some(json!({"InvoiceNumber": n})))),
            (None, None) => return Ok(Err("the payment names no invoice".into())),
        };
        let target = match self.sale_from_device(doc, r, "an invoice").await? {
            Ok(t) => t,
            Err(why) => return Ok(Err(why)),
        };
        Ok(match target {
            // The invoice may still be on its way from the device: it waits (the outbox does not
            // offer it before the hour is up).
            None if self.round.state.clock.now() - doc.created_at
                < crate::store::PAYMENT_WAITS_FOR_INVOICE =>
            {
                Ok(None)
            }
            None => Err(format!(
                "no invoice with client_ref '{r}' arrived from this device within an hour"
            )),
            Some(t) => match (t.state, t.provider_id) {
                (DocumentState::Sent | DocumentState::Paid, Some(id)) => {
                    Ok(Some(json!({"InvoiceID": id})))
                }
                (DocumentState::Sent | DocumentState::Paid, None) => Err(format!(
                    "'{r}' made no invoice in Xero (it took no money): there is nothing to pay"
                )),
                (DocumentState::Failed, _) => Err(format!(
                    "the invoice '{r}' failed in Xero, so it cannot be paid: correct the invoice, then send this payment again"
                )),
                (DocumentState::Voided | DocumentState::Discarded, _) => Err(format!(
                    "the invoice '{r}' is {}: it cannot be paid",
                    t.state.as_str()
                )),
                _ => Ok(None), // waiting for its invoice
            },
        })
    }

    /// Payments whose invoice is in Xero, in bundles; the others wait.
    async fn payments(&mut self, docs: Vec<DocumentRow>) -> Result<(), Stop> {
        let docs = reconcile(self, docs, "Payments").await?;
        let mut updates = Vec::new();
        let mut ready: Vec<(DocumentRow, Value)> = Vec::new();
        for doc in docs {
            let p: Payment = match serde_json::from_str(&doc.body) {
                Ok(p) => p,
                Err(e) => {
                    updates.push(unreadable(doc.id, &e));
                    continue;
                }
            };
            let refuse = |why: String| update(doc.id, DocumentState::Failed, None, None, Some(why));
            let invoice = match self.invoice_paid(&doc, &p).await? {
                Ok(Some(invoice)) => invoice,
                Ok(None) => continue,
                Err(why) => {
                    updates.push(refuse(why));
                    continue;
                }
            };
            let Some(account) = self.mappings.tenders.get(&p.tender) else {
                updates.push(refuse(format!(
                    "the tender '{}' is no longer mapped",
                    p.tender
                )));
                continue;
            };
            let mut x = json!({"Invoice": invoice, "Account": {"Code": account.account_code}, "Date": p.date.to_string(), "Amount": num(p.amount)});
            x["Reference"] = json!(match &p.reference {
                Some(r) => format!("{r} {}", marker(&doc)),
                None => marker(&doc),
            });
            ready.push((doc, x));
        }
        self.save(updates).await?;
        self.send_bundles("Payments", "Payments?summarizeErrors=false", ready)
            .await
    }

    /// The first record of a document that takes several calls (a shift's invoice, a refund's
    /// credit note): the one an earlier attempt made if Xero has it (`known`, or found by the
    /// marker once past the replay window), else created now under `key`. The document is
    /// claimed (`sending`) with its id kept while the other calls go. `None` when Xero refused it
    /// (the refusal is saved); a call that failed is requeued.
    async fn first_record(
        &mut self,
        doc: &DocumentRow,
        what: Creation,
        past_window: bool,
        item: impl FnOnce(&Self, &str) -> Value,
        tag: &[u8],
    ) -> Result<Option<(String, Option<String>)>, Stop> {
        let m = marker(doc);
        // An earlier attempt may have made it without our hearing of it (looked up before the
        // document is claimed, so a failed lookup leaves it queued).
        let mut known = doc
            .provider_id
            .clone()
            .map(|id| (id, doc.provider_number.clone()));
        if known.is_none() && past_window {
            let found = self
                .find_marked(what.collection, std::slice::from_ref(&m))
                .await?;
            known = found.get(&m).map(|f| (f.id.clone(), f.number.clone()));
        }
        self.round.mark(&[doc], DocumentState::Sending).await?;
        if known.is_some() {
            return Ok(known);
        }
        let body = json!({ what.collection: [item(self, &m)] }).to_string();
        let key = key_for(&[&doc.send_identity(), tag]);
        let answer = match self
            .call(Method::PUT, what.path, Some(&body), Some(&key))
            .await
        {
            Ok(a) => a,
            Err(stop) => {
                self.round.requeue(&[doc], &stop).await?;
                return Err(stop);
            }
        };
        let outcome = outcome_of(
            doc.id,
            &answer,
            what.collection,
            0,
            what.id_field,
            Some(what.number_field),
        );
        let (Some(id), DocumentState::Sent) = (outcome.provider_id.clone(), outcome.state) else {
            self.save(vec![outcome]).await?;
            return Ok(None);
        };
        let number = outcome.provider_number.clone();
        self.save(vec![DocumentUpdate {
            state: DocumentState::Sending,
            attempt: false,
            ..outcome
        }])
        .await?;
        Ok(Some((id, number)))
    }

    /// The payments of one document (a shift's tenders, a refund's), each `(position, payment)` with
    /// `Reference` ending in the document's marker and `-{position}`. Past the replay window those
    /// Xero already has are found by their markers and left out; the rest go in one call under a
    /// key from the document, `tag` and their positions. On a failed call the document goes back to
    /// the queue. `Ok(Err(why))` with Xero's refusals.
    async fn marked_payments(
        &mut self,
        doc: &DocumentRow,
        mut indexed: Vec<(usize, Value)>,
        past_window: bool,
        tag: &[u8],
    ) -> Result<Result<(), String>, Stop> {
        let m = marker(doc);
        if !indexed.is_empty() && past_window {
            let markers: Vec<String> = indexed.iter().map(|(i, _)| format!("{m}-{i}")).collect();
            let found = self.find_marked("Payments", &markers).await?;
            indexed.retain(|(i, _)| !found.contains_key(&format!("{m}-{i}")));
        }
        if indexed.is_empty() {
            return Ok(Ok(()));
        }
        let positions: Vec<[u8; 8]> = indexed
            .iter()
            .map(|(i, _)| (*i as u64).to_be_bytes())
            .collect();
        let identity = doc.send_identity();
        let mut parts: Vec<&[u8]> = vec![&identity, tag];
        parts.extend(positions.iter().map(|p| p.as_slice()));
        let key = key_for(&parts);
        let payments: Vec<Value> = indexed.into_iter().map(|(_, p)| p).collect();
        let body = json!({"Payments": payments}).to_string();
        let answer = match self
            .call(
                Method::PUT,
                "Payments?summarizeErrors=false",
                Some(&body),
                Some(&key),
            )
            .await
        {
            Ok(a) => a,
            Err(stop) => {
                self.round.requeue(&[doc], &stop).await?;
                return Err(stop);
            }
        };
        let refused: Vec<String> = (0..payments.len())
            .filter_map(|i| {
                let o = outcome_of(doc.id, &answer, "Payments", i, "PaymentID", None);
                (o.state == DocumentState::Failed).then(|| o.message.unwrap_or_default())
            })
            .collect();
        Ok(if refused.is_empty() {
            Ok(())
        } else {
            Err(refused.join("; "))
        })
    }
}

/// What one element of Xero's batch answer means for its document.
fn outcome_of(
    doc: Uuid,
    answer: &Answer,
    collection: &str,
    index: usize,
    id_field: &str,
    number_field: Option<&str>,
) -> DocumentUpdate {
    if !answer.status.is_success() {
        // A summarized error (should not happen with summarizeErrors=false) or another refusal.
        let message = answer.body["Elements"][index]
            .as_object()
            .map(|_| xero_messages(&answer.body["Elements"][index]))
            .or_else(|| answer.body["Message"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("Xero answered {}", answer.status));
        return update(doc, DocumentState::Failed, None, None, Some(message));
    }
    let element = &answer.body[collection][index];
    if element["StatusAttributeString"] == "ERROR" || element["HasErrors"] == true {
        return update(
            doc,
            DocumentState::Failed,
            None,
            None,
            Some(xero_messages(element)),
        );
    }
    let id = element[id_field]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .filter(|u| !u.is_nil());
    let number = number_field
        .and_then(|f| element[f].as_str())
        .map(str::to_string);
    match id {
        Some(id) => update(doc, DocumentState::Sent, Some(id.to_string()), number, None),
        None => update(
            doc,
            DocumentState::Failed,
            None,
            None,
            Some("Xero's answer had no id for this document".into()),
        ),
    }
}
