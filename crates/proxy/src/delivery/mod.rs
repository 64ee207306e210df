//! The delivery engine: takes queued documents from each connection's outbox and turns them into
//! Xero calls — contacts resolved (and cached), bundles of up to 50 with `summarizeErrors=false` under
//! 3.5 MB, an `Idempotency-Key` derived from the bundle, each element's result mapped back to its
//! document — paced to Xero's per-tenant limits, waiting `Retry-After` on a `429` and backing off on
//! failures.
//! Shifts and refunds (`credit_notes`) go one document at a time: each is several calls in order.
//!
//! Not yet here: spreading one connection's calls over Xero's 5 concurrent slots.

mod credit_notes;
pub mod pacer;
mod voids;

use chrono::{DateTime, Utc};
use ledgerlink_wire::documents::{
    DocumentKind, DocumentState, Invoice, InvoiceStatus, InvoiceType, Mappings, Payment, Shift,
    TaxMode,
};
use ledgerlink_wire::ConnectionStatus;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Number, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::providers::xero::api::{self, Answer, CallError};
use crate::store::{Bundle, ConnectionRow, DocumentRow, DocumentUpdate};
use crate::AppState;
use pacer::{Allowance, Limit, LocalAllowance, Pacer, Quota};

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

/// Documents per call (Xero's advice).
const BUNDLE: usize = 50;
/// Keep each call under Xero's 3.5 MB request limit (the envelope and query take the rest).
const MAX_BYTES: usize = 3_400_000;

/// The app-wide budget (Xero: 10,000 calls a minute across all organisations), shared by workers.
pub type AppPacer = Arc<dyn Allowance>;

/// Why a round for a connection stopped early.
#[derive(Debug)]
enum Stop {
    /// Xero refused for its limit and said how long to wait (the pacer holds calls that long).
    Limited(Duration),
    /// Try again later (Xero unreachable or failing): back off.
    Later(String),
    /// The connection's tokens are no good.
    Reconnect,
}

impl From<CallError> for Stop {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NeedsReconnect | CallError::NotConnected | CallError::Disconnected => {
                Stop::Reconnect
            }
            other => Stop::Later(other.to_string()),
        }
    }
}

/// Runs until the process stops: one worker per connection with documents waiting, each paced to
/// that organisation's limits and all of them to the app's.
pub async fn run(state: AppState) {
    match state.storage.call(|s| s.requeue_sending()).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(documents = n, "documents were mid-delivery when the proxy stopped; they go again under the same idempotency keys"),
        Err(e) => tracing::error!(error = %e, "cannot requeue documents left sending"),
    }
    let d = state.settings.delivery;
    let window = Duration::from_secs(d.window_secs.max(1));
    let app: AppPacer = Arc::new(LocalAllowance::new(Limit {
        per_window: d.app_per_window,
        window,
    }));
    let pacers: Arc<Mutex<HashMap<Uuid, Pacer>>> = Arc::default();
    // Owned here: when the engine stops (or its task is aborted), its workers stop with it.
    let mut workers = tokio::task::JoinSet::new();
    let mut running: HashMap<tokio::task::Id, Uuid> = HashMap::new();
    let trouble = crate::logs::Every::minute();
    let mut first = true;
    loop {
        // Straight to work after a start (documents may be waiting); then on news or every second.
        if !first {
            tokio::select! {
                () = state.outbox_ready.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        first = false;
        while let Some(done) = workers.try_join_next_with_id() {
            let id = match &done {
                Ok((id, ())) => *id,
                Err(e) => e.id(),
            };
            running.remove(&id);
        }
        let now = state.clock.now();
        let ids = match state
            .storage
            .call(move |s| s.connections_with_work(now))
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                if trouble.due() {
                    tracing::error!(error = %e, "cannot read the outbox");
                }
                continue;
            }
        };
        for id in ids {
            if running.values().any(|r| *r == id) {
                continue;
            }
            let (state, app, pacers) = (state.clone(), app.clone(), pacers.clone());
            let handle = workers.spawn(async move { worker(state, id, app, pacers).await });
            running.insert(handle.id(), id);
        }
    }
}

/// Delivers one connection's outbox until it is empty (or the connection needs reconnecting).
async fn worker(
    state: AppState,
    id: Uuid,
    app: AppPacer,
    pacers: Arc<Mutex<HashMap<Uuid, Pacer>>>,
) {
    let d = state.settings.delivery;
    let mut pacer = pacers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id)
        .unwrap_or_else(|| {
            Pacer::new(Limit {
                per_window: d.tenant_per_window,
                window: Duration::from_secs(d.window_secs.max(1)),
            })
        });
    let mut failures = 0u32;
    loop {
        match deliver(&state, id, &mut pacer, &app).await {
            Ok(()) => break,
            Err(Stop::Limited(wait)) => {
                // The pacer holds the next call back as long as Xero asked.
                tracing::info!(connection = %id, wait_ms = wait.as_millis() as u64, "Xero's rate limit: waiting as told");
            }
            Err(Stop::Later(why)) => {
                failures += 1;
                // 1 s, 2 s, 4 s, then 8 s at most, with jitter: Xero's bad minutes pass.
                let backoff = Duration::from_millis(
                    (500u64 << failures.min(4)) + rand::random::<u64>() % 500,
                );
                tracing::warn!(connection = %id, error = %why, retry_in_ms = backoff.as_millis() as u64, "delivery paused");
                tokio::time::sleep(backoff).await;
            }
            Err(Stop::Reconnect) => {
                // The call that found out marked the connection (and told its devices).
                tracing::warn!(connection = %id, "delivery stopped: the organisation must be connected again");
                break;
            }
        }
    }
    pacers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, pacer);
}

async fn deliver(
    state: &AppState,
    connection_id: Uuid,
    pacer: &mut Pacer,
    app: &AppPacer,
) -> Result<(), Stop> {
    let connection = match state
        .storage
        .call(move |s| s.connection(connection_id))
        .await
    {
        Ok(Some(c)) if c.status == ConnectionStatus::Connected => c,
        Ok(_) => return Ok(()),
        Err(e) => return Err(Stop::Later(e.to_string())),
    };
    let mappings = crate::documents::mappings(state, connection_id)
        .await
        .map_err(|e| Stop::Later(e.to_string()))?;
    let mut d = Delivery {
        state,
        connection: &connection,
        mappings: &mappings,
        pacer,
        app,
        contacts: HashMap::new(),
        from_cache: Default::default(),
        second_chance: HashMap::new(),
    };
    let stranded = state
        .storage
        .call(move |s| s.requeue_sending_for(connection_id))
        .await
        .map_err(|e| Stop::Later(e.to_string()))?;
    if stranded > 0 {
        tracing::warn!(connection = %connection_id, documents = stranded, "documents left sending by an interrupted round go again");
    }
    d.resend_open_bundles().await?;
    // Every kind gets its turn in each pass, so a flood of one never holds back another; a payment
    // is only taken once its invoice is in Xero (the outbox query leaves the others waiting).
    let mut last_pass = Vec::new();
    loop {
        let invoices = d.outbox(DocumentKind::Invoice, BUNDLE).await?;
        let shifts = d.outbox(DocumentKind::Shift, 1).await?;
        let payments = d.outbox(DocumentKind::Payment, BUNDLE).await?;
        let refunds = d.outbox(DocumentKind::CreditNote, 1).await?;
        let voids = d.voids().await?;
        let pass: Vec<Uuid> = invoices
            .iter()
            .chain(&shifts)
            .chain(&payments)
            .chain(&refunds)
            .chain(&voids)
            .map(|d| d.id)
            .collect();
        if pass.is_empty() {
            return Ok(());
        }
        if pass == last_pass {
            // The same documents again and none of them moved: leave them to the next round
            // rather than spin (a waiting document should never be offered; this is the guard).
            tracing::warn!(connection = %connection_id, documents = pass.len(), "delivery made no progress; trying again later");
            return Ok(());
        }
        last_pass = pass;
        if !invoices.is_empty() {
            d.invoices(invoices).await?;
        }
        for shift in shifts {
            d.shift(shift).await?;
        }
        if !payments.is_empty() {
            d.payments(payments).await?;
        }
        for refund in refunds {
            d.credit_note(refund).await?;
        }
        for void in voids {
            d.void(void).await?;
        }
    }
}

struct Delivery<'a> {
    state: &'a AppState,
    connection: &'a ConnectionRow,
    mappings: &'a Mappings,
    pacer: &'a mut Pacer,
    app: &'a AppPacer,
    /// Contacts resolved in this round (name key → id or the reason it cannot be used).
    contacts: HashMap<String, Result<Uuid, String>>,
    /// The name keys whose ContactID came from the store's cache this round (not found or made
    /// in Xero just now).
    from_cache: std::collections::HashSet<String>,
    /// Invoices of this round that use a ContactID from the cache, with its name key: refused,
    /// they go once more with the contact looked up by name.
    second_chance: HashMap<Uuid, String>,
}

fn num(d: Decimal) -> Value {
    Value::Number(Number::from_str(&d.normalize().to_string()).expect("a decimal is a JSON number"))
}

fn key_for(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(b"ledgerlink bundle v1");
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
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

/// A stored document that no longer parses (it was checked at intake, so this means damage).
fn unreadable(id: Uuid, e: &serde_json::Error) -> DocumentUpdate {
    update(
        id,
        DocumentState::Failed,
        None,
        None,
        Some(format!("stored document unreadable: {e}")),
    )
}

fn update(
    id: Uuid,
    state: DocumentState,
    xero_id: Option<Uuid>,
    number: Option<String>,
    message: Option<String>,
) -> DocumentUpdate {
    DocumentUpdate {
        id,
        state,
        xero_id,
        xero_number: number,
        message,
        attempt: true,
    }
}

fn tax_mode(mode: TaxMode) -> &'static str {
    match mode {
        TaxMode::Inclusive => "Inclusive",
        TaxMode::Exclusive => "Exclusive",
        TaxMode::NoTax => "NoTax",
    }
}

impl Delivery<'_> {
    async fn outbox(&self, kind: DocumentKind, limit: usize) -> Result<Vec<DocumentRow>, Stop> {
        let id = self.connection.id;
        let now = self.state.clock.now();
        self.state
            .storage
            .call(move |s| s.outbox(id, kind, limit, now))
            .await
            .map_err(|e| Stop::Later(e.to_string()))
    }

    /// The organisation's time zone (read from Xero once, then kept).
    async fn organisation_zone(&mut self) -> Result<chrono_tz::Tz, Stop> {
        Ok(crate::providers::xero::timezone::of_organisation(self.state, self.connection).await?)
    }

    /// Documents waiting to be voided in Xero.
    async fn voids(&self) -> Result<Vec<DocumentRow>, Stop> {
        let id = self.connection.id;
        self.state
            .storage
            .call(move |s| s.voids(id, BUNDLE))
            .await
            .map_err(|e| Stop::Later(e.to_string()))
    }

    async fn save(&self, updates: Vec<DocumentUpdate>) -> Result<(), Stop> {
        if updates.is_empty() {
            return Ok(());
        }
        let now = self.state.clock.now();
        self.state
            .storage
            .call(move |s| s.update_documents(&updates, now))
            .await
            .map_err(|e| Stop::Later(e.to_string()))?;
        self.state.events_ready.notify_waiters();
        Ok(())
    }

    async fn mark(&self, docs: &[&DocumentRow], state: DocumentState) -> Result<(), Stop> {
        let updates = docs
            .iter()
            .map(|d| DocumentUpdate {
                id: d.id,
                state,
                xero_id: None,
                xero_number: None,
                message: None,
                attempt: false,
            })
            .collect();
        self.save(updates).await
    }

    /// Back to the queue after a failed call: a `429` or a refused token means nothing was done; any
    /// other failure may have reached Xero, so the documents' outcome is unknown from now.
    async fn requeue(&self, docs: &[&DocumentRow], stop: &Stop) -> Result<(), Stop> {
        let ids: Vec<Uuid> = docs.iter().map(|d| d.id).collect();
        self.requeue_ids(&ids, stop).await
    }

    async fn requeue_ids(&self, ids: &[Uuid], stop: &Stop) -> Result<(), Stop> {
        match stop {
            Stop::Limited(_) | Stop::Reconnect => {
                let updates = ids
                    .iter()
                    .map(|id| DocumentUpdate {
                        id: *id,
                        state: DocumentState::Queued,
                        xero_id: None,
                        xero_number: None,
                        message: None,
                        attempt: false,
                    })
                    .collect();
                self.save(updates).await
            }
            Stop::Later(_) => {
                let ids = ids.to_vec();
                let now = self.state.clock.now();
                self.state
                    .storage
                    .call(move |s| s.mark_unknown(&ids, now))
                    .await
                    .map_err(|e| Stop::Later(e.to_string()))
            }
        }
    }

    /// Documents whose last attempt's outcome is unknown and past Xero's replay window: looked up in
    /// Xero (`Invoices` or `Payments`) by their markers. Answers the ones Xero has (now `sent`); the
    /// rest are to be sent.
    async fn reconcile(
        &mut self,
        docs: Vec<DocumentRow>,
        collection: &str,
    ) -> Result<Vec<DocumentRow>, Stop> {
        let (stale, fresh): (Vec<DocumentRow>, Vec<DocumentRow>) =
            docs.into_iter().partition(|d| self.past_replay_window(d));
        if stale.is_empty() {
            return Ok(fresh);
        }
        let markers: Vec<String> = stale.iter().map(marker).collect();
        let found = self.find_by_markers(collection, &markers).await?;
        let (id_field, number_field) = if collection == "Invoices" {
            ("InvoiceID", Some("InvoiceNumber"))
        } else {
            ("PaymentID", None)
        };
        let mut updates = Vec::new();
        let mut out = fresh;
        for (doc, m) in stale.into_iter().zip(markers) {
            let hit = found.iter().find(|i| carries(i, &m));
            let id = hit.and_then(|i| Uuid::parse_str(i[id_field].as_str()?).ok());
            match id {
                Some(id) => {
                    tracing::info!(document = %doc.id, "found in Xero after an unknown outcome: not sent again");
                    let number = number_field
                        .and_then(|f| hit.and_then(|i| i[f].as_str()).map(str::to_string));
                    updates.push(update(doc.id, DocumentState::Sent, Some(id), number, None));
                }
                None => out.push(doc),
            }
        }
        self.save(updates).await?;
        Ok(out)
    }

    /// The `Invoices` or `Payments` whose `Reference` ends with one of `markers`.
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

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&str>,
        key: Option<&str>,
    ) -> Result<Answer, Stop> {
        let sent = pacer::take(self.pacer, self.app.as_ref()).await;
        let answer = api::call(self.state, self.connection, method, path, body, key).await?;
        // What Xero says of its counts paces what follows: the organisation's minute (a 429 for
        // it, or for the day) on this connection, the app's minute on every connection.
        let limited = answer.status.as_u16() == 429;
        let problem = answer.rate_limit_problem.as_deref();
        let back = Instant::now();
        let app_limited = limited && problem == Some("appminute");
        self.pacer.answered(
            sent,
            back,
            Quota {
                // Refused for the app's minute, the organisation's count may not have moved:
                // nothing is learned from it.
                remaining: answer.minute_remaining.filter(|_| !app_limited),
                limited: limited && !app_limited,
                retry_after: answer.retry_after,
            },
        );
        self.app.answered(
            sent,
            back,
            Quota {
                remaining: answer.app_remaining,
                limited: app_limited,
                retry_after: answer.retry_after,
            },
        );
        if answer.day_remaining == Some(0) {
            // The organisation's calls for the day are spent: wait for the next UTC day rather than
            // collect 429s (Xero's Retry-After says the same when one comes).
            let now = self.state.clock.now();
            let midnight = (now.date_naive() + chrono::Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc();
            let wait = (midnight - now).to_std().unwrap_or(Duration::from_secs(60));
            tracing::warn!(connection = %self.connection.id, wait_secs = wait.as_secs(), "Xero's daily limit is spent for this organisation");
            self.pacer.hold(back + wait);
        }
        if limited {
            // The pacer holds its calls back as long as Xero asked; the round stops here.
            return Err(Stop::Limited(
                answer.retry_after.unwrap_or(pacer::DEFAULT_RETRY),
            ));
        }
        if answer.status.is_server_error() {
            return Err(Stop::Later(format!("Xero answered {}", answer.status)));
        }
        Ok(answer)
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
        let (connection, k) = (self.connection.id, key.clone());
        if let Some(id) = self
            .state
            .storage
            .call(move |s| s.contact_id(connection, &k))
            .await
            .map_err(|e| Stop::Later(e.to_string()))?
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
        if let (None, Some(archived)) = (
            by_number.or_else(|| list.iter().find(|c| c["ContactStatus"] == "ACTIVE")),
            list.first(),
        ) {
            // Only an archived contact has this name: the document goes to it, and Xero's own
            // refusal (its words, shown to the person) says what to do. Never kept: once someone
            // restores the contact it is found again, and if they make another it is that one.
            let outcome = id_of(archived);
            self.contacts.insert(key, outcome.clone());
            return Ok(outcome);
        }
        let outcome = if let Some(active) =
            by_number.or_else(|| list.iter().find(|c| c["ContactStatus"] == "ACTIVE"))
        {
            id_of(active)
        } else {
            let mut contact = json!({"Name": name.trim()});
            if let Some(e) = email {
                contact["EmailAddress"] = json!(e);
            }
            if let Some(n) = number {
                contact["ContactNumber"] = json!(n);
            }
            let body = json!({"Contacts": [contact]}).to_string();
            let (connection, k) = (self.connection.id, key.clone());
            let generation = self
                .state
                .storage
                .call(move |s| s.contact_generation(connection, &k))
                .await
                .map_err(|e| Stop::Later(e.to_string()))?;
            let idem = key_for(&[
                self.connection.id.as_bytes(),
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
            let connection = self.connection.id;
            self.state
                .contact_searches
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(c, _), _| *c != connection);
            let element = &made.body["Contacts"][0];
            match element["ContactID"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                Some(id) if element["StatusAttributeString"] != "ERROR" && !id.is_nil() => Ok(id),
                _ => Err(xero_messages(element)),
            }
        };
        if let Ok(id) = &outcome {
            let (connection, k, id) = (self.connection.id, key.clone(), *id);
            self.state
                .storage
                .call(move |s| s.put_contact_id(connection, &k, id))
                .await
                .map_err(|e| Stop::Later(e.to_string()))?;
        }
        self.contacts.insert(key, outcome.clone());
        Ok(outcome)
    }

    fn line(
        &self,
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
                    self.line(
                        &l.description,
                        l.quantity,
                        l.unit_amount,
                        &m.account_code,
                        Some(&m.tax_type),
                    )
                }
                None => self.line(
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

    /// One bundle of invoices (split further if it would pass 3.5 MB).
    async fn invoices(&mut self, docs: Vec<DocumentRow>) -> Result<(), Stop> {
        let docs = self.reconcile(docs, "Invoices").await?;
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
            if inv.lines.iter().any(|l| {
                l.sales_category
                    .as_ref()
                    .is_some_and(|c| !self.mappings.categories.contains_key(c))
            }) {
                let unmapped: Vec<&str> = inv
                    .lines
                    .iter()
                    .filter_map(|l| l.sales_category.as_deref())
                    .filter(|c| !self.mappings.categories.contains_key(*c))
                    .collect();
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
        self.save(std::mem::take(&mut updates)).await?;
        for part in bundles(ready) {
            self.send_invoices(part).await?;
        }
        Ok(())
    }

    async fn send_invoices(&mut self, part: Vec<(DocumentRow, Value)>) -> Result<(), Stop> {
        self.send_bundle("Invoices", "InvoiceID", Some("InvoiceNumber"), &part)
            .await
    }

    /// One `PUT /{collection}?summarizeErrors=false` of up to 50 documents under an Idempotency-Key
    /// derived from their ids, recorded exactly as sent (so it can go again byte for byte), each
    /// element's outcome written back to its document.
    async fn send_bundle(
        &mut self,
        collection: &str,
        id_field: &str,
        number_field: Option<&str>,
        part: &[(DocumentRow, Value)],
    ) -> Result<(), Stop> {
        let identities: Vec<[u8; 24]> = part.iter().map(|(d, _)| d.send_identity()).collect();
        let body = json!({ collection: part.iter().map(|(_, x)| x.clone()).collect::<Vec<_>>() })
            .to_string();
        // The key covers what is sent, not only which documents: the same documents sent again
        // with something changed (a contact found again by name) are a new request to Xero.
        let mut parts: Vec<&[u8]> = identities.iter().map(|i| i.as_slice()).collect();
        parts.push(body.as_bytes());
        let bundle = Bundle {
            key: key_for(&parts),
            connection_id: self.connection.id,
            // unitdp=4: unit amounts keep the four decimals intake accepts.
            path: if collection == "Invoices" {
                "Invoices?summarizeErrors=false&unitdp=4".into()
            } else {
                format!("{collection}?summarizeErrors=false")
            },
            collection: collection.to_string(),
            body,
            members: part.iter().map(|(d, _)| d.id).collect(),
        };
        self.send_recorded(&bundle, id_field, number_field).await
    }

    /// Sends a recorded bundle (first time or again) and maps each element back to its document.
    async fn send_recorded(
        &mut self,
        bundle: &Bundle,
        id_field: &str,
        number_field: Option<&str>,
    ) -> Result<(), Stop> {
        let now = self.state.clock.now();
        let b = bundle.clone();
        let started = self
            .state
            .storage
            .call(move |s| s.start_bundle(&b, now))
            .await
            .map_err(|e| Stop::Later(e.to_string()))?;
        if !started {
            // A member was discarded since the bundle was made: nothing was sent, and the next
            // round makes the bundle again without it.
            return Ok(());
        }
        self.state.events_ready.notify_waiters();
        let answer = match self
            .call(
                Method::PUT,
                &bundle.path,
                Some(&bundle.body),
                Some(&bundle.key),
            )
            .await
        {
            Ok(a) => a,
            Err(stop) => {
                let members = bundle.members.clone();
                self.requeue_ids(&members, &stop).await?;
                return Err(stop);
            }
        };
        let mut updates: Vec<DocumentUpdate> = bundle
            .members
            .iter()
            .enumerate()
            .map(|(i, id)| outcome_of(*id, &answer, &bundle.collection, i, id_field, number_field))
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
                xero_id: None,
                xero_number: None,
                message: None,
                attempt: false,
            };
        }
        for id in &bundle.members {
            self.second_chance.remove(id);
        }
        self.save(updates).await
    }

    /// Whether the document's last send has had no answer for longer than Xero replays a key: what
    /// it made must then be looked up in Xero before anything is sent again.
    /// Creates in Xero the first record of a document that takes several calls (a shift's
    /// invoice, a refund's credit note) under `key`, and keeps its id on the document, still
    /// `sending`, while the other calls go. `None` when Xero refused it (the refusal is saved);
    /// a call that failed is requeued.
    async fn create_first(
        &mut self,
        doc: &DocumentRow,
        what: Creation,
        item: Value,
        key: &str,
    ) -> Result<Option<(Uuid, Option<String>)>, Stop> {
        let body = json!({ what.collection: [item] }).to_string();
        let answer = match self
            .call(Method::PUT, what.path, Some(&body), Some(key))
            .await
        {
            Ok(a) => a,
            Err(stop) => {
                self.requeue(&[doc], &stop).await?;
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
        let (Some(id), DocumentState::Sent) = (outcome.xero_id, outcome.state) else {
            self.save(vec![outcome]).await?;
            return Ok(None);
        };
        let number = outcome.xero_number.clone();
        self.save(vec![DocumentUpdate {
            state: DocumentState::Sending,
            attempt: false,
            ..outcome
        }])
        .await?;
        Ok(Some((id, number)))
    }

    fn past_replay_window(&self, doc: &DocumentRow) -> bool {
        let window =
            chrono::Duration::seconds(self.state.settings.delivery.replay_window_secs as i64);
        doc.unknown_since
            .is_some_and(|t| self.state.clock.now() - t > window)
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
            let found = self.find_by_markers("Payments", &markers).await?;
            indexed.retain(|(i, _)| !found.iter().any(|p| carries(p, &format!("{m}-{i}"))));
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
                self.requeue(&[doc], &stop).await?;
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

    /// Drops a cached ContactID (from this round and from the store).
    async fn forget_contact(&mut self, key: &str) -> Result<(), Stop> {
        self.contacts.remove(key);
        self.from_cache.remove(key);
        let (connection, k) = (self.connection.id, key.to_string());
        self.state
            .storage
            .call(move |s| s.forget_contact_id(connection, &k))
            .await
            .map_err(|e| Stop::Later(e.to_string()))
    }

    /// Bundles whose outcome is unknown and still inside Xero's replay window go again exactly as
    /// they were sent, under the same key: Xero answers from its replay, creating nothing twice.
    async fn resend_open_bundles(&mut self) -> Result<(), Stop> {
        let window =
            chrono::Duration::seconds(self.state.settings.delivery.replay_window_secs as i64);
        let since = self.state.clock.now() - window;
        let connection = self.connection.id;
        let keys = self
            .state
            .storage
            .call(move |s| s.open_bundles(connection, since))
            .await
            .map_err(|e| Stop::Later(e.to_string()))?;
        for key in keys {
            let k = key.clone();
            let Some(bundle) = self
                .state
                .storage
                .call(move |s| s.bundle(&k))
                .await
                .map_err(|e| Stop::Later(e.to_string()))?
            else {
                continue;
            };
            tracing::info!(bundle = %key, "resending a bundle whose outcome is unknown, under its key");
            let (id_field, number_field) = if bundle.collection == "Invoices" {
                ("InvoiceID", Some("InvoiceNumber"))
            } else {
                ("PaymentID", None)
            };
            self.send_recorded(&bundle, id_field, number_field).await?;
        }
        Ok(())
    }

    /// Payments whose invoice is in Xero; the others wait.
    async fn payments(&mut self, docs: Vec<DocumentRow>) -> Result<(), Stop> {
        let docs = self.reconcile(docs, "Payments").await?;
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
            let invoice = match (&p.invoice.client_ref, &p.invoice.xero_number) {
                (Some(r), _) => {
                    let (device, r2) = (doc.device_id, r.clone());
                    let target = self
                        .state
                        .storage
                        .call(move |s| s.document_by_ref(device, &r2))
                        .await
                        .map_err(|e| Stop::Later(e.to_string()))?;
                    let refuse =
                        |why: String| update(doc.id, DocumentState::Failed, None, None, Some(why));
                    match target {
                        // The invoice may still be on its way from the device: it waits (the
                        // outbox does not offer it before the hour is up).
                        None if self.state.clock.now() - doc.created_at
                            < crate::store::PAYMENT_WAITS_FOR_INVOICE =>
                        {
                            continue
                        }
                        None => {
                            updates.push(refuse(format!(
                                "no invoice with client_ref '{r}' arrived from this device within an hour"
                            )));
                            continue;
                        }
                        Some(t)
                            if !matches!(t.kind, DocumentKind::Invoice | DocumentKind::Shift) =>
                        {
                            updates.push(refuse(format!(
                                "'{r}' is a {} from this device, not an invoice",
                                t.kind.as_str()
                            )));
                            continue;
                        }
                        Some(t) => match (t.state, t.xero_id) {
                            (DocumentState::Sent | DocumentState::Paid, Some(id)) => {
                                json!({"InvoiceID": id})
                            }
                            (DocumentState::Sent | DocumentState::Paid, None) => {
                                updates.push(refuse(format!(
                                    "'{r}' made no invoice in Xero (it took no money): there is nothing to pay"
                                )));
                                continue;
                            }
                            (DocumentState::Failed, _) => {
                                updates.push(refuse(format!(
                                    "the invoice '{r}' failed in Xero, so it cannot be paid: correct the invoice, then send this payment again"
                                )));
                                continue;
                            }
                            (DocumentState::Voided | DocumentState::Discarded, _) => {
                                updates.push(refuse(format!(
                                    "the invoice '{r}' is {}: it cannot be paid",
                                    t.state.as_str()
                                )));
                                continue;
                            }
                            _ => continue, // waiting for its invoice
                        },
                    }
                }
                (None, Some(n)) => json!({"InvoiceNumber": n}),
                (None, None) => {
                    updates.push(update(
                        doc.id,
                        DocumentState::Failed,
                        None,
                        None,
                        Some("the payment names no invoice".into()),
                    ));
                    continue;
                }
            };
            let Some(account) = self.mappings.tenders.get(&p.tender) else {
                updates.push(update(
                    doc.id,
                    DocumentState::Failed,
                    None,
                    None,
                    Some(format!("the tender '{}' is no longer mapped", p.tender)),
                ));
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
        for part in bundles(ready) {
            self.send_bundle("Payments", "PaymentID", None, &part)
                .await?;
        }
        Ok(())
    }

    /// A shift: one sales invoice to the POS contact, then one payment per tender.
    async fn shift(&mut self, doc: DocumentRow) -> Result<(), Stop> {
        let shift: Shift = match serde_json::from_str(&doc.body) {
            Ok(s) => s,
            Err(e) => {
                return self
                    .save(vec![update(
                        doc.id,
                        DocumentState::Failed,
                        None,
                        None,
                        Some(format!("stored document unreadable: {e}")),
                    )])
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
            crate::documents::tax_rates(self.state, self.connection)
                .await
                .map_err(|e| Stop::Later(e.to_string()))?
        } else {
            HashMap::new()
        };
        let Some(plan) = plan_shift(&shift, self.mappings, &rates) else {
            return self
                .save(vec![update(
                    doc.id,
                    DocumentState::Failed,
                    None,
                    None,
                    Some("a category, tender, tax rate or the over/short account is not mapped: map it and push the shift again under a new client_ref".into()),
                )])
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
            Err(why) => {
                return self
                    .save(vec![update(
                        doc.id,
                        DocumentState::Failed,
                        None,
                        None,
                        Some(why),
                    )])
                    .await
            }
        };
        // An earlier attempt may have made the invoice without our hearing of it (looked up before
        // the shift is marked sending, so a failed lookup leaves it queued).
        let past_window = self.past_replay_window(&doc);
        let mut known = doc.xero_id.map(|id| (id, doc.xero_number.clone()));
        if known.is_none() && past_window {
            let m = marker(&doc);
            let found = self
                .find_by_markers("Invoices", std::slice::from_ref(&m))
                .await?;
            known = found.iter().find(|i| carries(i, &m)).and_then(|i| {
                Some((
                    Uuid::parse_str(i["InvoiceID"].as_str()?).ok()?,
                    i["InvoiceNumber"].as_str().map(str::to_string),
                ))
            });
        }
        self.mark(&[&doc], DocumentState::Sending).await?;
        let (invoice_id, number) = match known {
            Some((id, number)) => (id, number),
            None => {
                let lines: Vec<Value> = plan
                    .lines
                    .iter()
                    .map(|(d, amount, account, tax)| {
                        self.line(d, Decimal::ONE, *amount, account, Some(tax))
                    })
                    .collect();
                let x = json!({
                    "Type": "ACCREC",
                    "Contact": {"ContactID": contact},
                    "Date": day,
                    "DueDate": day,
                    "Reference": format!("{} {}", reference(&shift), marker(&doc)),
                    "LineAmountTypes": tax_mode(shift.tax_mode),
                    "Status": "AUTHORISED",
                    "LineItems": lines,
                });
                let key = key_for(&[&doc.send_identity(), b"invoice"]);
                let created = self.create_first(&doc, INVOICE, x, &key).await?;
                // Refused: the refusal is saved.
                let Some(created) = created else {
                    return Ok(());
                };
                created
            }
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
        if let Err(refused) = self
            .marked_payments(&doc, indexed, past_window, b"payments")
            .await?
        {
            return self
                .save(vec![update(
                    doc.id,
                    DocumentState::Failed,
                    Some(invoice_id),
                    number,
                    Some(format!(
                        "the invoice was made but a payment was refused: {refused}"
                    )),
                )])
                .await;
        }
        self.save(vec![update(
            doc.id,
            DocumentState::Sent,
            Some(invoice_id),
            number,
            None,
        )])
        .await
    }
}

/// Documents cut into bundles of at most [`BUNDLE`] and at most [`MAX_BYTES`] of JSON each (a
/// document larger than that alone goes alone; intake's line limit keeps any one under it).
fn bundles(ready: Vec<(DocumentRow, Value)>) -> Vec<Vec<(DocumentRow, Value)>> {
    let mut out = Vec::new();
    let mut part: Vec<(DocumentRow, Value)> = Vec::new();
    let mut size = 0;
    for (doc, x) in ready {
        let len = x.to_string().len() + 1;
        if !part.is_empty() && (part.len() == BUNDLE || size + len > MAX_BYTES) {
            out.push(std::mem::take(&mut part));
            size = 0;
        }
        size += len;
        part.push((doc, x));
    }
    if !part.is_empty() {
        out.push(part);
    }
    out
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
        Some(id) => update(doc, DocumentState::Sent, Some(id), number, None),
        None => update(
            doc,
            DocumentState::Failed,
            None,
            None,
            Some("Xero's answer had no id for this document".into()),
        ),
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

/// Whether a Xero invoice or payment carries `marker` (in Reference, or a bill's InvoiceNumber).
fn carries(item: &Value, marker: &str) -> bool {
    ["Reference", "InvoiceNumber"]
        .iter()
        .any(|f| item[*f].as_str().is_some_and(|r| r.ends_with(marker)))
}

/// A stable marker of a document, derived from its device and `client_ref`, carried at the end of
/// the Xero invoice's `Reference` (`LL-` and 12 hex characters) so the invoice can be found again
/// (`Reference.EndsWith`) when it is unknown whether a call created it.
pub fn marker(doc: &DocumentRow) -> String {
    let digest = Sha256::new()
        .chain_update(b"ledgerlink marker v1")
        .chain_update(doc.device_id.as_bytes())
        .chain_update(doc.client_ref.as_bytes())
        .finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("LL-{hex}")
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

#[cfg(test)]
mod golden {
    //! Idempotency keys and markers already sent to Xero must come out byte for byte the same
    //! after any refactor: a changed key makes Xero create a document twice.
    use super::*;

    #[test]
    fn keys_and_markers_are_stable() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(key_for(&[id.as_bytes(), b"invoice"]), "c766ebb2a29ccc6201c56bd74925371ae46afa5ec90ff5a6b65d5774c0813d83");
        let doc = DocumentRow {
            id,
            device_id: Uuid::from_u128(7),
            connection_id: Uuid::from_u128(8),
            kind: DocumentKind::Invoice,
            client_ref: "INV-1001".into(),
            body: "{}".into(),
            state: DocumentState::Queued,
            xero_id: None,
            xero_number: None,
            message: None,
            attempts: 0,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            unknown_since: None,
            bundle_key: None,
            waits_for: None,
            version: 2,
            resends: 1,
            discard_reason: None,
        };
        assert_eq!(marker(&doc), "LL-a8af83623b92");
        assert_eq!(key_for(&[&doc.send_identity(), b"void"]), "c538857fb4e35539ca5e6f8d3ffeb937a4a602e3a94e832f058d3a8d07c7dac4");
    }
}
