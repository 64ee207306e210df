//! What the desktop app does, without the window: every screen's data and action as a method, so the
//! Tauri shell stays a thin layer of commands and the logic is tested here in Rust. Errors reach the
//! UI as `{code, message, problems}`; amounts cross as exact decimal strings, never floats.

use chrono::{DateTime, Utc};
use ledgerlink_wire::documents::{
    DocumentKind, DocumentState, Invoice, InvoiceLine, Mappings, Problem, Shift, TaxMode,
};
use ledgerlink_wire::{ConnectionInfo, ConnectionStatus, Provider};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

use crate::advice::{self, Surface};
use crate::api::ProxyClient;
use crate::credentials::{CredentialStore, FreshError};
use crate::documents::{self, InvoiceTotals, ShiftSummary, TaxRates};
use crate::identity::Identity;
use crate::outbox::{Counts, Entry, Outbox, OutboxError, Saved};
use crate::pairing::{self, PairError};
use crate::sync::{Progress, SyncError, Syncer, Until};

/// An error as the UI shows it: a stable code, a sentence that says what to do, and for a refused
/// document every problem by field path.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UiError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// What to do, as an action on a screen (from [`crate::advice`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

impl UiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            problems: Vec::new(),
            advice: advice::advice(code, Surface::Desktop, None),
        }
    }
}

impl From<SyncError> for UiError {
    fn from(e: SyncError) -> Self {
        let code = e.code();
        let message = match code {
            "proxy_unreachable" => {
                format!("{e}. Check the proxy URL in Settings and that it is running.")
            }
            "pair_again" => "This device is no longer paired: connect it again.".into(),
            "not_paired" => "This device is not connected yet: connect it first.".into(),
            _ => match &e {
                // A refused body: the problems go to their fields, the message stays short.
                SyncError::Client(crate::api::ClientError::Api {
                    message, problems, ..
                }) if !problems.is_empty() => {
                    return Self {
                        problems: problems.clone(),
                        ..Self::new(code, message.clone())
                    }
                }
                _ => e.to_string(),
            },
        };
        Self::new(code, message)
    }
}

impl From<OutboxError> for UiError {
    fn from(e: OutboxError) -> Self {
        Self::new("outbox", e.to_string())
    }
}

/// The desktop's own settings (`desktop.json` in the data directory).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settings {
    pub proxy_url: String,
    pub device_name: String,
}

/// What the Settings screen shows.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    #[serde(flatten)]
    pub settings: Settings,
    pub device_id: String,
    pub data_dir: String,
    /// Whether a manager PIN guards Disconnect and Unpair.
    pub pin_set: bool,
}

/// A pairing in progress, as the Connect screen shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PairingView {
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_at: DateTime<Utc>,
    /// The link as a QR code (SVG), to finish on a phone.
    pub qr_svg: String,
    /// Whether a browser was opened (not when `LEDGERLINK_NO_BROWSER=1`).
    pub browser_opened: bool,
}

/// How a pairing ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PairOutcome {
    /// `paired`, `access_denied`, `expired_token`, `proxy_unreachable`, ...
    pub outcome: String,
    pub message: String,
    pub organisation_name: Option<String>,
}

/// The sync loop's news for the UI.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// The proxy answered the last attempt.
    pub online: bool,
    pub paired: bool,
    /// Why not, in a sentence.
    pub message: Option<String>,
    pub retry_in_secs: Option<u64>,
    pub last_sync_at: Option<String>,
    pub counts: Counts,
}

/// The Home screen.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub paired: bool,
    pub connection: Option<ConnectionInfo>,
    pub sync: SyncStatus,
    pub pairing: Option<PairingView>,
}

/// A document in the list: what it is, its state in words, and what Xero said.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DocumentRow {
    pub client_ref: String,
    pub kind: DocumentKind,
    pub state: DocumentState,
    pub state_label: String,
    /// `waiting`, `good`, `bad`, `done`: how the badge looks.
    pub tone: &'static str,
    pub title: String,
    /// The document's own date (`YYYY-MM-DD`; a shift's `closed_at`, RFC 3339): shown in the
    /// device's locale.
    pub date: Option<String>,
    /// Who it is for (a shift: its register).
    pub contact: Option<String>,
    /// The reference staff gave it (a payment: the number of the invoice it pays).
    pub reference: Option<String>,
    pub amount: Option<String>,
    pub xero_id: Option<String>,
    pub xero_number: Option<String>,
    /// What the provider calls it, as people quote it: its number (Xero: `INV-0042`), or its id
    /// where it gives none (a HubRise order).
    pub provider_ref: Option<String>,
    /// The provider's own status for it, when it told of one (HubRise: `cancelled`).
    pub provider_status: Option<String>,
    /// The organisation it went to.
    pub organisation: Option<String>,
    /// The document in Xero (invoices and shifts, once sent): opened with `open_in_xero`.
    pub xero_url: Option<String>,
    pub message: Option<String>,
    /// 1, and one more for each correction.
    pub version: u32,
    pub discard_reason: Option<String>,
    /// For a document that needs attention: what to do, as screen actions.
    pub advice: Option<String>,
    /// Which of Fix, Send again and Discard the document takes now.
    pub can_fix: bool,
    pub can_retry: bool,
    pub can_discard: bool,
    /// A sale in Xero: refunded with a credit note, or voided when no money touched it.
    pub can_refund: bool,
    pub can_void: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One document in full.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentDetail {
    #[serde(flatten)]
    pub row: DocumentRow,
    pub body: Value,
    pub totals: Option<InvoiceTotals>,
}

/// The list's filter: by state group (`queued` covers pending, queued and sending), kind, and text.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocumentFilter {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub text: Option<String>,
}

/// A document form's live answer: totals as Xero will show them, and every problem by field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InvoicePreview {
    pub totals: Option<InvoiceTotals>,
    /// Why there are no totals yet (a line without a tax rate, say).
    pub totals_note: Option<String>,
    pub problems: Vec<Problem>,
}

/// The order form's live answer: the total as the order hub works it out, what the payments
/// cover, and every problem by field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OrderPreview {
    #[serde(with = "ledgerlink_wire::money::option")]
    pub total: Option<Decimal>,
    #[serde(with = "ledgerlink_wire::money::option")]
    pub paid: Option<Decimal>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ShiftPreview {
    pub summary: Option<ShiftSummary>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SavedDocument {
    pub client_ref: String,
    pub already_saved: bool,
    /// It corrects a failed or rejected document of the same `client_ref`.
    pub corrected: bool,
}

/// A state in words, and how its badge looks.
pub fn state_label(state: DocumentState) -> (&'static str, &'static str) {
    match state {
        DocumentState::Pending => ("Waiting to send", "waiting"),
        DocumentState::Queued => ("Queued", "waiting"),
        DocumentState::Sending => ("Sending", "waiting"),
        DocumentState::Sent => ("Sent", "good"),
        DocumentState::Paid => ("Paid", "done"),
        DocumentState::Failed => ("Failed", "bad"),
        DocumentState::Rejected => ("Needs fixing", "bad"),
        DocumentState::Voiding => ("Voiding", "waiting"),
        DocumentState::Voided => ("Voided", "done"),
        DocumentState::Discarded => ("Discarded", "done"),
    }
}

/// Which states a filter word covers.
pub fn states_of(group: &str) -> Option<&'static [DocumentState]> {
    Some(match group {
        "queued" => &[
            DocumentState::Pending,
            DocumentState::Queued,
            DocumentState::Sending,
        ],
        "sent" => &[DocumentState::Sent],
        "failed" => &[DocumentState::Failed, DocumentState::Rejected],
        "paid" => &[DocumentState::Paid],
        "voided" => &[DocumentState::Voided],
        _ => return None,
    })
}

/// A form's amount, for live totals: what does not read, or is beyond the bound validation will
/// refuse anyway (a trillion), counts as nothing, so the arithmetic can never overflow.
fn decimal(v: &Value) -> Option<Decimal> {
    let d = match v {
        Value::String(s) if !s.trim().is_empty() => Decimal::from_str(s.trim()).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }?;
    (d.abs() < Decimal::from(1_000_000_000_000i64)).then_some(d)
}

struct Pairing {
    id: u64,
    /// The code, once the proxy gave one.
    view: Option<PairingView>,
    task: tokio::task::JoinHandle<()>,
}

pub struct App {
    dir: PathBuf,
    pub syncer: Arc<Syncer>,
    no_browser: bool,
    /// Opens a link in the system browser; answers whether it could (see [`App::with_browser`]).
    browser: fn(&str) -> bool,
    /// The pairing in progress: at most one; a new one (Retry, Reconnect) replaces it.
    pairing: Mutex<Option<Pairing>>,
    pairings: std::sync::atomic::AtomicU64,
    status: Mutex<SyncStatus>,
    /// Wakes the sync loop (after pairing, after a save while it waits).
    wake: Arc<Notify>,
}

impl App {
    /// Opens the device's data directory. `default_proxy` is used until Settings says otherwise.
    pub fn open(dir: &Path, default_proxy: &str, no_browser: bool) -> Result<Self, UiError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| UiError::new("data_dir", format!("{}: {e}", dir.display())))?;
        let store =
            CredentialStore::open(dir).map_err(|e| UiError::new("credentials", e.to_string()))?;
        let outbox = Outbox::open(dir)?;
        let app = Self {
            dir: dir.to_path_buf(),
            syncer: Arc::new(Syncer::new(Arc::new(outbox), Arc::new(store))),
            no_browser,
            browser: |link| webbrowser::open(link).is_ok(),
            pairing: Mutex::new(None),
            pairings: Default::default(),
            status: Mutex::new(SyncStatus::default()),
            wake: Arc::new(Notify::new()),
        };
        if !app.dir.join("desktop.json").exists() {
            let identity = Identity::load_or_create(dir, None)
                .map_err(|e| UiError::new("data_dir", e.to_string()))?;
            app.write_settings(&Settings {
                proxy_url: default_proxy.to_string(),
                device_name: identity.device_name,
            })?;
        }
        Ok(app)
    }

    /// Opens pairing links with `open` instead of the `webbrowser` crate: the desktop app starts
    /// the browser without its own memory settings in the browser's environment.
    pub fn with_browser(mut self, open: fn(&str) -> bool) -> Self {
        self.browser = open;
        self
    }

    fn outbox(&self) -> &Outbox {
        &self.syncer.outbox
    }

    pub fn settings(&self) -> Result<SettingsView, UiError> {
        let text = std::fs::read_to_string(self.dir.join("desktop.json"))
            .map_err(|e| UiError::new("settings", e.to_string()))?;
        let settings: Settings = serde_json::from_str(&text).map_err(|e| {
            UiError::new(
                "settings",
                format!("desktop.json is damaged ({e}): save the settings again"),
            )
        })?;
        let identity = Identity::load_or_create(&self.dir, Some(&settings.device_name))
            .map_err(|e| UiError::new("data_dir", e.to_string()))?;
        Ok(SettingsView {
            settings,
            device_id: identity.device_id.to_string(),
            data_dir: self.dir.display().to_string(),
            pin_set: self.pin().is_set(),
        })
    }

    fn pin(&self) -> crate::pin::ManagerPin {
        crate::pin::ManagerPin::new(&self.dir)
    }

    /// The manager PIN before something that stops tills: refused, saying so, when it is wrong.
    fn manager_allows(&self, pin: Option<&str>) -> Result<(), UiError> {
        self.pin().check(pin).map_err(|e| {
            let mut err = UiError::new("pin", capitalised(&e.to_string()));
            err.problems.push(Problem {
                path: "pin".into(),
                code: ledgerlink_wire::documents::ProblemCode::Invalid,
                message: e.to_string(),
            });
            err
        })
    }

    /// Sets or changes the manager PIN (changing it needs the current one).
    pub fn set_manager_pin(
        &self,
        current: Option<&str>,
        new: &str,
    ) -> Result<SettingsView, UiError> {
        self.pin().set(current, new).map_err(|e| {
            let field = if e == crate::pin::PinError::Wrong {
                "current_pin"
            } else {
                "new_pin"
            };
            let mut err = UiError::new("pin", capitalised(&e.to_string()));
            err.problems.push(Problem {
                path: field.into(),
                code: ledgerlink_wire::documents::ProblemCode::Invalid,
                message: e.to_string(),
            });
            err
        })?;
        self.settings()
    }

    fn write_settings(&self, s: &Settings) -> Result<(), UiError> {
        std::fs::write(
            self.dir.join("desktop.json"),
            serde_json::to_string_pretty(s).expect("settings serialize"),
        )
        .map_err(|e| UiError::new("settings", e.to_string()))
    }

    /// Checks and saves the settings; a new proxy URL is used by the next pairing.
    pub fn save_settings(&self, s: Settings) -> Result<SettingsView, UiError> {
        let proxy_url = s.proxy_url.trim().trim_end_matches('/').to_string();
        let ok = url_ok(&proxy_url);
        if !ok {
            return Err(UiError {
                code: "invalid_request".into(),
                message: "Check the settings.".into(),
                problems: vec![Problem {
                    path: "proxy_url".into(),
                    code: ledgerlink_wire::documents::ProblemCode::Invalid,
                    message: "must be an http:// or https:// address, like https://ledgerlink.example.com".into(),
                }],
                advice: None,
            });
        }
        let device_name = s.device_name.trim().to_string();
        if device_name.is_empty() || device_name.chars().count() > 100 {
            return Err(UiError {
                code: "invalid_request".into(),
                message: "Check the settings.".into(),
                problems: vec![Problem {
                    path: "device_name".into(),
                    code: ledgerlink_wire::documents::ProblemCode::Invalid,
                    message: "give the device a name of 1 to 100 characters".into(),
                }],
                advice: None,
            });
        }
        self.write_settings(&Settings {
            proxy_url,
            device_name,
        })?;
        self.settings()
    }

    fn status_now(&self) -> SyncStatus {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Ok(c) = self.outbox().counts() {
            s.counts = c;
        }
        s.last_sync_at = self.outbox().meta("last_sync_at").ok().flatten();
        s.paired = matches!(self.syncer.store.load(), Ok(Some(_)));
        s
    }

    pub fn overview(&self) -> Result<Overview, UiError> {
        let creds = self
            .syncer
            .store
            .load()
            .map_err(|e| UiError::new("credentials", e.to_string()))?;
        let connection = match (&creds, self.outbox().meta("connection")?) {
            (Some(_), Some(text)) => serde_json::from_str(&text).ok(),
            (Some(c), None) => Some(c.connection.clone()),
            (None, _) => None,
        };
        Ok(Overview {
            paired: creds.is_some(),
            connection,
            sync: self.status_now(),
            pairing: self
                .pairing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .and_then(|p| p.view.clone()),
        })
    }

    /// Asks the proxy how the connection is (connected, needs reconnect, disconnected).
    pub async fn check_connection(&self) -> Result<ConnectionInfo, UiError> {
        let info = self.syncer.connection().await?;
        self.remember_connection(&info)?;
        Ok(info)
    }

    /// Starts pairing: answers the code to show; `done` hears how it ended.
    /// Starts pairing with `provider` (none: the one the device is paired with now, or Xero for a
    /// new till).
    pub async fn start_pairing(
        self: &Arc<Self>,
        provider: Option<Provider>,
        done: impl FnOnce(PairOutcome) + Send + 'static,
    ) -> Result<PairingView, UiError> {
        self.cancel_pairing();
        let id = self
            .pairings
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let settings = self.settings()?.settings;
        let identity = Identity::load_or_create(&self.dir, Some(&settings.device_name))
            .map_err(|e| UiError::new("data_dir", e.to_string()))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<PairingView, UiError>>();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let shown = tx.clone();
        let app = self.clone();
        let task = tokio::spawn(async move {
            let client = ProxyClient::new(&settings.proxy_url);
            // Paired now (with this proxy)? Then the pairing may move the device, and says so.
            let current = app.syncer.current_for(&settings.proxy_url).await;
            // The provider asked for, else the one it is paired with now (Xero for a new till).
            let provider = provider
                .or_else(|| current.as_ref().map(|c| c.connection.provider))
                .unwrap_or_default();
            let result = pairing::pair(
                &client,
                &settings.proxy_url,
                &identity,
                current.as_ref(),
                provider,
                |p| {
                    let view = PairingView {
                        user_code: p.user_code.clone(),
                        verification_uri: p.verification_uri.clone(),
                        verification_uri_complete: p.verification_uri_complete.clone(),
                        expires_at: Utc::now()
                            + chrono::Duration::seconds(p.expires_in.min(86_400) as i64),
                        qr_svg: qr_svg(&p.verification_uri_complete),
                        browser_opened: false,
                    };
                    if let Some(tx) = shown.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        let _ = tx.send(Ok(view));
                    }
                },
            )
            .await;
            let outcome = match result {
                Ok(pairing::Paired {
                    credentials: creds,
                    moved_from,
                }) => match app.syncer.store.save(&creds) {
                    Ok(_) => {
                        let _ = app.outbox().reset_cursor();
                        let _ = app.remember_connection(&creds.connection);
                        app.wake.notify_one();
                        PairOutcome {
                            outcome: "paired".into(),
                            message: paired_message(moved_from.as_deref(), &creds.connection),
                            organisation_name: Some(creds.connection.organisation_name.clone()),
                        }
                    }
                    Err(e) => PairOutcome {
                        outcome: "credentials".into(),
                        message: e.to_string(),
                        organisation_name: None,
                    },
                },
                Err(e) => {
                    let failure = pair_failure(&e, provider);
                    if let Some(tx) = tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        // It failed before there was a code to show.
                        let _ =
                            tx.send(Err(UiError::new(&failure.outcome, failure.message.clone())));
                        return;
                    }
                    failure
                }
            };
            app.clear_pairing(id);
            done(outcome);
        });
        *self.pairing.lock().unwrap_or_else(|e| e.into_inner()) = Some(Pairing {
            id,
            view: None,
            task,
        });
        let answer = rx
            .await
            .map_err(|_| UiError::new("cancelled", "The pairing was cancelled."))
            .and_then(|r| r);
        let mut view = match answer {
            Ok(v) => v,
            Err(e) => {
                self.clear_pairing(id);
                return Err(e);
            }
        };
        if !self.no_browser {
            view.browser_opened = (self.browser)(&view.verification_uri_complete);
        }
        match self
            .pairing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            Some(p) if p.id == id => p.view = Some(view.clone()),
            // Replaced by a newer pairing meanwhile.
            _ => return Err(UiError::new("cancelled", "The pairing was cancelled.")),
        }
        Ok(view)
    }

    /// Forgets pairing `id` if it is still the current one (a finished one never clears a newer).
    fn clear_pairing(&self, id: u64) {
        let mut slot = self.pairing.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|p| p.id == id) {
            slot.take();
        }
    }

    /// Opens the browser at the pairing's link again (only that link: the page cannot ask for others).
    pub fn reopen_browser(&self) -> Result<bool, UiError> {
        let link = self
            .pairing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|p| p.view.as_ref())
            .map(|v| v.verification_uri_complete.clone())
            .ok_or_else(|| UiError::new("no_pairing", "There is no pairing in progress."))?;
        if self.no_browser {
            return Ok(false);
        }
        Ok((self.browser)(&link))
    }

    pub fn cancel_pairing(&self) {
        if let Some(p) = self
            .pairing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            p.task.abort();
        }
    }

    /// The cached mappings and the organisation's tax rates, for totals.
    fn offer(&self) -> (Mappings, TaxRates) {
        documents::totals_basis(self.syncer.cached_mappings().as_ref())
    }

    /// Live totals and problems of an invoice form (the draft is the wire document, amounts as
    /// strings). Totals come from the lines that read, even while other fields are incomplete.
    pub fn preview_invoice(&self, draft: &Value) -> InvoicePreview {
        let prepared = documents::prepare(DocumentKind::Invoice, &draft.to_string());
        let (mappings, rates) = self.offer();
        let tax_mode: TaxMode =
            serde_json::from_value(draft["tax_mode"].clone()).unwrap_or_default();
        let lines: Vec<InvoiceLine> = draft["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| InvoiceLine {
                description: String::new(),
                quantity: decimal(&l["quantity"]).unwrap_or_default(),
                unit_amount: decimal(&l["unit_amount"]).unwrap_or_default(),
                account_code: l["account_code"].as_str().map(str::to_string),
                tax_type: l["tax_type"]
                    .as_str()
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
                sales_category: l["sales_category"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                    .map(str::to_string),
            })
            .collect();
        let invoice = Invoice {
            client_ref: String::new(),
            invoice_type: Default::default(),
            contact: ledgerlink_wire::documents::Contact {
                name: String::new(),
                email: None,
                contact_number: None,
            },
            date: chrono::NaiveDate::MIN,
            due_date: None,
            reference: None,
            currency: None,
            tax_mode,
            status: Default::default(),
            lines,
        };
        let (totals, totals_note) = match documents::invoice_totals(&invoice, &rates, &mappings) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e.to_string())),
        };
        InvoicePreview {
            totals,
            totals_note,
            problems: prepared.problems,
        }
    }

    pub fn preview_shift(&self, draft: &Value) -> ShiftPreview {
        let prepared = documents::prepare(DocumentKind::Shift, &draft.to_string());
        let sum = |key: &str, field: &str| -> Vec<Value> {
            draft[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| json!({field: r[field], "amount": decimal(&r["amount"]).unwrap_or_default().to_string()}))
                .collect()
        };
        let lenient = json!({
            "client_ref": "preview", "register": "preview",
            "opened_at": "2000-01-01T00:00:00Z", "closed_at": "2000-01-01T00:00:00Z",
            "sales": sum("sales", "category"), "refunds": sum("refunds", "category"),
            "tenders": sum("tenders", "tender"),
            "counted_cash": decimal(&draft["counted_cash"]).unwrap_or_default().to_string(),
            // The float stays in the drawer: expected cash is the float plus the cash takings.
            "opening_float": decimal(&draft["opening_float"]).unwrap_or_default().to_string(),
        });
        let summary = serde_json::from_value::<Shift>(lenient)
            .ok()
            .and_then(|s| documents::shift_summary(&s));
        ShiftPreview {
            summary,
            problems: prepared.problems,
        }
    }

    /// The order form's total (what each line's price times its quantity comes to, with any
    /// options, charges and discounts the draft has), what its payments cover, and its problems.
    /// Fields not filled in yet count as nothing; amounts too large to add up give no figure.
    pub fn preview_order(&self, draft: &Value) -> OrderPreview {
        let prepared = documents::prepare(DocumentKind::Order, &draft.to_string());
        let amount = |v: &Value| decimal(v).unwrap_or_default();
        let list = |key: &str| draft[key].as_array().cloned().unwrap_or_default();
        let total = || -> Option<Decimal> {
            let mut total = Decimal::ZERO;
            for item in list("items") {
                let mut each = amount(&item["price"]);
                for o in item["options"].as_array().into_iter().flatten() {
                    let times = Decimal::from(o["quantity"].as_u64().unwrap_or(1));
                    each = each.checked_add(amount(&o["price"]).checked_mul(times)?)?;
                }
                total = total.checked_add(each.checked_mul(amount(&item["quantity"]))?)?;
            }
            for c in list("charges") {
                total = total.checked_add(amount(&c["amount"]))?;
            }
            for d in list("discounts") {
                total = total.checked_sub(amount(&d["amount"]))?;
            }
            Some(total.round_dp(2))
        };
        let paid = list("payments").iter().try_fold(Decimal::ZERO, |sum, p| {
            sum.checked_add(amount(&p["amount"]))
        });
        OrderPreview {
            total: total(),
            paid: paid.map(|p| p.round_dp(2)),
            problems: prepared.problems,
        }
    }

    /// A `client_ref` for a new form, kept until it is saved: saving twice saves once.
    pub fn new_client_ref(&self, kind: DocumentKind) -> String {
        documents::new_client_ref(kind)
    }

    /// Checks and saves a document, then sends it in the background.
    pub fn save(
        self: &Arc<Self>,
        kind: DocumentKind,
        draft: &Value,
    ) -> Result<SavedDocument, UiError> {
        let prepared = documents::prepare(kind, &draft.to_string());
        if !prepared.problems.is_empty() {
            return Err(UiError {
                code: "invalid_document".into(),
                message: "Some fields need attention.".into(),
                problems: prepared.problems,
                advice: None,
            });
        }
        let document = prepared
            .documents
            .into_iter()
            .next()
            .ok_or_else(|| UiError::new("invalid_document", "There is nothing to save."))?;
        let client_ref = document["client_ref"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let saved = self.outbox().save(kind, &document).map_err(|e| match e {
            OutboxError::ClientRefInUse { .. } => UiError::new("client_ref_in_use", e.to_string()),
            other => other.into(),
        })?;
        self.wake.notify_one();
        Ok(SavedDocument {
            client_ref,
            already_saved: saved == Saved::AlreadySaved,
            corrected: matches!(saved, Saved::Corrected | Saved::Replaced),
        })
    }

    /// How a document reads on screen. `number_of` finds the Xero number of a document of this
    /// device by its client_ref (for the sale a payment or refund is for).
    fn row(
        &self,
        e: &Entry,
        rates: &TaxRates,
        mappings: &Mappings,
        number_of: &dyn Fn(&str) -> Option<String>,
    ) -> DocumentRow {
        let (label, tone) = state_label(e.state);
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let date = match e.kind {
            DocumentKind::Shift => text(&e.body["closed_at"]),
            _ => text(&e.body["date"]),
        };
        let contact = match e.kind {
            DocumentKind::Shift => text(&e.body["register"]),
            DocumentKind::Payment => None,
            _ => text(&e.body["contact"]["name"]),
        };
        // A payment or a refund is known by the sale it is for.
        let sale_number = || {
            text(&e.body["invoice"]["xero_number"])
                .or_else(|| number_of(e.body["invoice"]["client_ref"].as_str()?))
        };
        let reference = match e.kind {
            DocumentKind::Payment => sale_number(),
            DocumentKind::CreditNote => text(&e.body["reference"]).or_else(sale_number),
            _ => text(&e.body["reference"]),
        };
        let (organisation, short_code) = (e.organisation.clone(), e.short_code.clone());
        // Only what a short code and an id can be goes into the link.
        let short_code = short_code.filter(|c| {
            !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '!')
        });
        let invoice_id = e
            .xero_id
            .as_deref()
            .and_then(|id| uuid::Uuid::parse_str(id).ok());
        let xero_url = match (e.kind, invoice_id, short_code) {
            (DocumentKind::Invoice | DocumentKind::Shift, Some(id), Some(code)) => {
                Some(xero_invoice_url(&code, &id.to_string()))
            }
            _ => None,
        };
        let (title, amount) = match e.kind {
            DocumentKind::Invoice => {
                let title = e.body["contact"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let amount = serde_json::from_value::<Invoice>(e.body.clone())
                    .ok()
                    .and_then(|i| documents::invoice_totals(&i, rates, mappings).ok())
                    .map(|t| t.total.to_string());
                (title, amount)
            }
            DocumentKind::CreditNote => {
                let title = format!(
                    "Refund to {}",
                    e.body["contact"]["name"].as_str().unwrap_or_default()
                );
                let amount = serde_json::from_value::<ledgerlink_wire::documents::CreditNote>(
                    e.body.clone(),
                )
                .ok()
                .and_then(|c| documents::credit_note_totals(&c, rates, mappings).ok())
                .map(|t| t.total.to_string());
                (title, amount)
            }
            DocumentKind::Payment => (
                format!(
                    "Payment of {}",
                    e.body["invoice"]["client_ref"]
                        .as_str()
                        .or(e.body["invoice"]["xero_number"].as_str())
                        .unwrap_or_default()
                ),
                e.body["amount"].as_str().map(str::to_string),
            ),
            DocumentKind::Order => (
                match e.body["reference"].as_str() {
                    Some(r) => format!("Order, {r}"),
                    None => "Order".to_string(),
                },
                serde_json::from_value::<ledgerlink_wire::documents::Order>(e.body.clone())
                    .ok()
                    .and_then(|o| o.total())
                    .map(|t| t.to_string()),
            ),
            DocumentKind::Shift => (
                format!(
                    "End of shift, {}",
                    e.body["register"].as_str().unwrap_or_default()
                ),
                serde_json::from_value::<Shift>(e.body.clone())
                    .ok()
                    .and_then(|s| documents::shift_summary(&s))
                    .map(|s| s.taken.to_string()),
            ),
        };
        DocumentRow {
            client_ref: e.client_ref.clone(),
            kind: e.kind,
            state: e.state,
            state_label: label.into(),
            tone,
            title,
            date,
            contact,
            reference,
            amount,
            xero_id: e.xero_id.clone(),
            xero_number: e.xero_number.clone(),
            provider_ref: e.xero_number.clone().or_else(|| e.xero_id.clone()),
            provider_status: e.provider_status.clone(),
            organisation,
            xero_url,
            message: e.message.clone(),
            version: e.version,
            discard_reason: e.discard_reason.clone(),
            advice: advice::for_document(
                e.state,
                e.message.as_deref(),
                Surface::Desktop,
                &e.client_ref,
            ),
            // Invoices and orders have a form that shows all of a document; a payment or a
            // shift is sent again or discarded here, and corrected from the CLI.
            can_fix: e.state.correctable()
                && matches!(e.kind, DocumentKind::Invoice | DocumentKind::Order),
            can_retry: e.state.needs_attention(),
            can_discard: matches!(
                e.state,
                DocumentState::Pending | DocumentState::Failed | DocumentState::Rejected
            ),
            can_refund: e.kind == DocumentKind::Invoice
                && matches!(e.state, DocumentState::Sent | DocumentState::Paid)
                && e.body["type"].as_str().unwrap_or("sale") == "sale",
            can_void: e.kind == DocumentKind::Invoice && e.state == DocumentState::Sent,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }

    /// Sends a refused document again, unchanged (once what made it fail is put right).
    pub async fn retry(&self, client_ref: &str) -> Result<DocumentDetail, UiError> {
        self.syncer.retry(client_ref).await?;
        self.wake.notify_one();
        self.document(client_ref)
    }

    /// The organisation's contacts whose name holds `q`, for the contact field's suggestions.
    pub async fn contacts(
        &self,
        q: &str,
    ) -> Result<ledgerlink_wire::documents::ContactList, UiError> {
        Ok(self.syncer.contacts(q).await?)
    }

    /// Asks for a sent invoice to be voided in Xero: `voiding` at once, sent by the sync loop (so
    /// it works offline); a refusal comes back as the document's message.
    pub fn void(&self, client_ref: &str) -> Result<DocumentDetail, UiError> {
        self.outbox()
            .request_void(client_ref)
            .map_err(|e| UiError::from(SyncError::from(e)))?;
        self.wake.notify_one();
        self.document(client_ref)
    }

    /// Puts a document aside for good, with the reason.
    pub async fn discard(&self, client_ref: &str, reason: &str) -> Result<DocumentDetail, UiError> {
        let reason = ledgerlink_wire::documents::DiscardRequest {
            reason: reason.to_string(),
        }
        .checked_reason()
        .map_err(|why| {
            let mut e = UiError::new("invalid_request", capitalised(&why));
            e.problems.push(Problem {
                path: "reason".into(),
                code: ledgerlink_wire::documents::ProblemCode::Invalid,
                message: why,
            });
            e
        })?;
        self.syncer.discard(client_ref, &reason).await?;
        self.wake.notify_one();
        self.document(client_ref)
    }

    /// The document list, newest first.
    pub fn documents(&self, filter: &DocumentFilter) -> Result<Vec<DocumentRow>, UiError> {
        let (mappings, rates) = self.offer();
        let states = filter.state.as_deref().and_then(states_of);
        let kind = filter.kind.as_deref().and_then(DocumentKind::parse);
        let text = filter
            .text
            .as_deref()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty());
        let all = self.outbox().list(None)?;
        // The sales' numbers from the list already read, not one outbox query per payment.
        let numbers: std::collections::HashMap<&str, &str> = all
            .iter()
            .filter_map(|e| Some((e.client_ref.as_str(), e.xero_number.as_deref()?)))
            .collect();
        let number_of = |r: &str| numbers.get(r).map(|n| n.to_string());
        Ok(all
            .iter()
            .filter(|e| states.is_none_or(|s| s.contains(&e.state)))
            .filter(|e| kind.is_none_or(|k| k == e.kind))
            .map(|e| self.row(e, &rates, &mappings, &number_of))
            .filter(|r| {
                text.as_ref().is_none_or(|t| {
                    [
                        Some(&r.client_ref),
                        Some(&r.title),
                        r.contact.as_ref(),
                        r.reference.as_ref(),
                        r.provider_ref.as_ref(),
                        r.message.as_ref(),
                    ]
                    .into_iter()
                    .flatten()
                    .any(|f| f.to_lowercase().contains(t))
                })
            })
            .collect())
    }

    pub fn document(&self, client_ref: &str) -> Result<DocumentDetail, UiError> {
        let (mappings, rates) = self.offer();
        let e = self.outbox().get(client_ref)?.ok_or_else(|| {
            UiError::new("not_found", format!("There is no document '{client_ref}'."))
        })?;
        // Lines, tax and total as Xero shows them: a sale's, or a refund's.
        let totals = match e.kind {
            DocumentKind::Invoice => serde_json::from_value::<Invoice>(e.body.clone())
                .ok()
                .and_then(|i| documents::invoice_totals(&i, &rates, &mappings).ok()),
            DocumentKind::CreditNote => {
                serde_json::from_value::<ledgerlink_wire::documents::CreditNote>(e.body.clone())
                    .ok()
                    .and_then(|c| documents::credit_note_totals(&c, &rates, &mappings).ok())
            }
            _ => None,
        };
        Ok(DocumentDetail {
            row: self.row(&e, &rates, &mappings, &|r| {
                self.outbox().get(r).ok().flatten()?.xero_number
            }),
            body: e.body,
            totals,
        })
    }

    /// The mappings and what the organisation offers; from the last copy (`stale: true`) when the
    /// proxy cannot be reached.
    pub async fn mappings(&self, refresh: bool) -> Result<Value, UiError> {
        let (mut answer, stale) = match self.syncer.read_mappings(true, refresh).await {
            Ok(v) => (v, false),
            Err(e) if e.is_transient() => match self.syncer.cached_mappings() {
                Some(v) => (v, true),
                None => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        answer["stale"] = json!(stale);
        Ok(answer)
    }

    pub async fn save_mappings(&self, mappings: &Mappings) -> Result<Value, UiError> {
        self.syncer.write_mappings(mappings).await?;
        self.mappings(false).await
    }

    /// Unpairs this device (its credentials stop working); documents not yet sent stay.
    pub async fn unpair(&self, pin: Option<&str>) -> Result<(), UiError> {
        self.manager_allows(pin)?;
        self.cancel_pairing();
        match self.syncer.unpair().await {
            Ok(()) | Err(SyncError::Credentials(FreshError::NotPaired)) => {}
            Err(e) => return Err(e.into()),
        }
        self.outbox().set_meta("connection", "null")?;
        Ok(())
    }

    /// Opens a document in Xero, in the browser (only a link the app built from the document).
    pub fn open_in_xero(&self, client_ref: &str) -> Result<bool, UiError> {
        let url = self.document(client_ref)?.row.xero_url.ok_or_else(|| {
            UiError::new(
                "no_link",
                "This document has no page in Xero to open (not sent yet, or Xero's short code for the organisation is not known).",
            )
        })?;
        if self.no_browser {
            return Ok(false);
        }
        Ok((self.browser)(&url))
    }

    /// The devices paired with the organisation, for the confirmation that names those a
    /// disconnect stops.
    pub async fn devices(&self) -> Result<Vec<ledgerlink_wire::PairedDevice>, UiError> {
        Ok(self.syncer.devices().await?)
    }

    /// Disconnects the organisation from Xero: every device of it stops syncing.
    pub async fn disconnect(&self, pin: Option<&str>) -> Result<ConnectionInfo, UiError> {
        self.manager_allows(pin)?;
        Ok(self.syncer.disconnect().await?)
    }

    /// The sync loop, for the app's lifetime: sends, follows the feed, backs off while the proxy is
    /// unreachable, sleeps while the device is not paired; `news` hears every change of status.
    pub async fn run_sync(self: Arc<Self>, mut news: impl FnMut(SyncStatus) + Send) {
        loop {
            if !matches!(self.syncer.store.load(), Ok(Some(_))) {
                self.set_status(|s| {
                    s.online = false;
                    s.message = None;
                    s.retry_in_secs = None;
                });
                news(self.status_now());
                // Woken by a pairing here; the periodic look catches one made by the CLI.
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
                }
                continue;
            }
            let app = self.clone();
            let result = {
                let news = &mut news;
                let waiting = self.syncer.run(Until::Forever, |p| {
                    match p {
                        Progress::Counts(_) => app.set_status(|s| {
                            s.online = true;
                            s.message = None;
                            s.retry_in_secs = None;
                        }),
                        Progress::Retrying { wait, reason } => app.set_status(|s| {
                            s.online = false;
                            s.message = Some(capitalised(&reason));
                            s.retry_in_secs = Some(wait.as_secs().max(1));
                        }),
                    }
                    news(app.status_now());
                });
                // A save wakes the loop at once instead of after its long-poll.
                tokio::select! {
                    r = waiting => Some(r),
                    _ = self.wake.notified() => None,
                }
            };
            match result {
                None => continue,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let e = UiError::from(e);
                    if e.code == "pair_again" {
                        // Unpaired elsewhere (the operator, another app): back to Connect.
                        let _ = self.syncer.store.delete();
                    }
                    self.set_status(|s| {
                        s.online = false;
                        s.message = Some(e.message.clone());
                        s.retry_in_secs = None;
                    });
                    news(self.status_now());
                    // Not fixed by waiting (unpaired, say): wait for the person to act, or a minute.
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                    }
                }
            }
        }
    }

    /// Keeps what the proxy last said of the connection, for Home while offline.
    fn remember_connection(&self, info: &ConnectionInfo) -> Result<(), OutboxError> {
        self.syncer.remember_connection(info)
    }

    fn set_status(&self, f: impl FnOnce(&mut SyncStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// How the connection's state reads on Home.
    pub fn connection_label(status: ConnectionStatus, provider: Provider) -> String {
        match status {
            ConnectionStatus::Connected => "Connected".into(),
            ConnectionStatus::NeedsReconnect => "Needs reconnecting".into(),
            ConnectionStatus::Disconnected => format!("Disconnected from {}", provider.name()),
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn url_ok(text: &str) -> bool {
    match reqwest::Url::parse(text) {
        Ok(u) => matches!(u.scheme(), "http" | "https") && u.host_str().is_some(),
        Err(_) => false,
    }
}

fn pair_failure(e: &PairError, provider: Provider) -> PairOutcome {
    let message = match e {
        PairError::Denied => format!(
            "Connecting {} was cancelled in the browser. Try again when ready.",
            provider.name()
        ),
        PairError::Expired => {
            "The code expired before it was confirmed. Start again for a new code.".to_string()
        }
        PairError::Client(c) if c.code().is_none() => {
            format!("{c}. Check the proxy URL in Settings and that it is running.")
        }
        other => other.to_string(),
    };
    PairOutcome {
        outcome: e.code().to_string(),
        message,
        organisation_name: None,
    }
}

/// The QR code of `link` as an SVG image.
pub fn qr_svg(link: &str) -> String {
    qrcode::QrCode::new(link.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default()
}

/// Xero's link to an invoice: its organisation by short code (Xero switches to it after login),
/// then the invoice.
pub fn xero_invoice_url(short_code: &str, invoice_id: &str) -> String {
    // As Xero documents it; a short code is letters, digits and `!`, an id a UUID.
    format!(
        "https://go.xero.com/organisationlogin/default.aspx?shortcode={short_code}&redirecturl=/AccountsReceivable/View.aspx?InvoiceID={invoice_id}"
    )
}

/// What the person is told when pairing ends well: where the device now sends, and where it moved
/// from if the pairing moved it.
pub fn paired_message(moved_from: Option<&str>, now: &ConnectionInfo) -> String {
    match moved_from {
        Some(before) => format!(
            "Moved from {before} to {}. Documents already sent to {before} stay there.",
            now.organisation_name
        ),
        None => format!("Connected to {}.", now.organisation_name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_into_xero_is_xeros_documented_form() {
        assert_eq!(
            xero_invoice_url("!kX9pQ", "6f1c5c2e-0b7a-4d7e-9a51-2f1d3c4b5a69"),
            "https://go.xero.com/organisationlogin/default.aspx?shortcode=!kX9pQ&redirecturl=/AccountsReceivable/View.aspx?InvoiceID=6f1c5c2e-0b7a-4d7e-9a51-2f1d3c4b5a69"
        );
    }

    #[test]
    fn a_moved_device_says_where_from() {
        let info: ConnectionInfo = serde_json::from_value(json!({
            "connection_id": uuid::Uuid::nil(), "provider": "xero", "tenant_id": uuid::Uuid::nil(),
            "organisation_name": "Demo Company (UK)", "status": "connected",
            "paired_at": "2026-11-20T00:00:00Z", "last_refresh_at": null,
            "device_id": uuid::Uuid::nil(), "device_name": "Till",
        }))
        .unwrap();
        assert_eq!(
            paired_message(Some("Demo Company (NZ)"), &info),
            "Moved from Demo Company (NZ) to Demo Company (UK). Documents already sent to Demo Company (NZ) stay there."
        );
        assert_eq!(
            paired_message(None, &info),
            "Connected to Demo Company (UK)."
        );
    }

    fn app() -> (Arc<App>, PathBuf) {
        let dir = std::env::temp_dir().join(format!("ll-app-{}", uuid::Uuid::new_v4()));
        let app = App::open(&dir, "http://127.0.0.1:9", true).unwrap();
        (Arc::new(app), dir)
    }

    fn cache_offer(app: &App) {
        app.outbox()
            .set_meta(
                "mappings",
                &json!({"mappings": {"categories": {"Food": {"account_code": "200", "tax_type": "OUTPUT2"}}},
                        "tax_rates": [{"tax_type": "OUTPUT2", "name": "GST", "rate": "15"}]})
                .to_string(),
            )
            .unwrap();
    }

    #[test]
    fn the_invoice_form_totals_live_and_lists_problems_by_field() {
        let (app, dir) = app();
        cache_offer(&app);
        let draft = json!({"client_ref": "inv-1", "contact": {"name": ""}, "date": "2026-11-20", "tax_mode": "exclusive",
            "lines": [{"description": "Lunch", "quantity": "3", "unit_amount": "0.10", "sales_category": "Food"},
                      {"description": "Tea", "quantity": "1", "unit_amount": "abc", "account_code": "200", "tax_type": "OUTPUT2"}]});
        let p = app.preview_invoice(&draft);
        // 3 × 0.10 = 0.30, tax 0.045 → 0.05 (half away from zero); the unreadable line counts 0.
        let t = p.totals.unwrap();
        assert_eq!(
            (
                t.subtotal.to_string(),
                t.total_tax.to_string(),
                t.total.to_string()
            ),
            ("0.30".into(), "0.05".into(), "0.35".into())
        );
        let paths: Vec<&str> = p.problems.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"invoice.contact.name"), "{paths:?}");
        assert!(paths.contains(&"invoice.lines[1].unit_amount"), "{paths:?}");
        // Saving refuses it with the same problems, and saves nothing.
        let e = app.save(DocumentKind::Invoice, &draft).unwrap_err();
        assert_eq!(e.code, "invalid_document");
        assert_eq!(app.outbox().counts().unwrap().total(), 0);
        // Absurd amounts never crash the form (they are refused when saved).
        let p = app.preview_invoice(&json!({"lines": [{"quantity": "1e20", "unit_amount": "79228162514264337593543950335", "tax_type": "OUTPUT2"}]}));
        assert_eq!(p.totals.unwrap().total.to_string(), "0");
        let s = app.preview_shift(&json!({"sales": [{"category": "Food", "amount": "79228162514264337593543950335"}, {"category": "Food", "amount": "79228162514264337593543950335"}]}));
        assert!(s.summary.is_some());
        // A fresh empty line totals nothing rather than complaining.
        let p = app.preview_invoice(&json!({"lines": [{"quantity": "1", "unit_amount": ""}]}));
        assert_eq!(p.totals.unwrap().total.to_string(), "0");
        // An unknown tax type says why there is no total.
        let p = app.preview_invoice(
            &json!({"lines": [{"quantity": "1", "unit_amount": "1", "tax_type": "NOPE"}]}),
        );
        assert!(p.totals.is_none() && p.totals_note.unwrap().contains("NOPE"));
        // An order's total as it is typed: price times quantity, options, charges, discounts.
        let o = app.preview_order(&json!({"items": [
            {"name": "Croque", "price": "8.90", "quantity": "2", "options": [{"name": "Cheese", "price": "1.00"}]},
            {"name": "", "price": "", "quantity": "1"}],
            "charges": [{"name": "Service", "amount": "2.00"}], "discounts": [{"name": "Card", "amount": "1.50"}],
            "payments": [{"tender": "Card", "amount": "10"}, {"tender": "Cash", "amount": ""}]}));
        assert_eq!(o.total, Some(Decimal::new(2030, 2)));
        assert_eq!(o.paid, Some(Decimal::new(10, 0)));
        assert!(
            o.problems.iter().any(|p| p.path.ends_with("items[1].name")),
            "{:?}",
            o.problems
        );
        let o = app.preview_order(&json!({"items": [{"name": "x", "price": "999999999999", "quantity": "999999999999",
            "options": [{"name": "y", "price": "999999999999", "quantity": 18_000_000_000_000_000_000u64}]}]}));
        assert_eq!(o.total, None, "too large to add up: no figure, no panic");
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_saved_document_is_listed_with_its_state_in_words_and_saving_twice_saves_once() {
        let (app, dir) = app();
        cache_offer(&app);
        let client_ref = app.new_client_ref(DocumentKind::Invoice);
        let draft = json!({"client_ref": client_ref, "contact": {"name": "Harbour Cafe"}, "date": "2026-11-20",
            "tax_mode": "inclusive", "lines": [{"description": "Lunch", "quantity": "2", "unit_amount": "11.50", "sales_category": "Food"}]});
        let saved = app.save(DocumentKind::Invoice, &draft).unwrap();
        assert!(!saved.already_saved);
        assert!(
            app.save(DocumentKind::Invoice, &draft)
                .unwrap()
                .already_saved
        );
        let rows = app.documents(&DocumentFilter::default()).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (
                r.title.as_str(),
                r.amount.as_deref(),
                r.state_label.as_str(),
                r.tone
            ),
            ("Harbour Cafe", Some("23.00"), "Waiting to send", "waiting")
        );
        for (state, n) in [("queued", 1), ("sent", 0), ("failed", 0)] {
            let f = DocumentFilter {
                state: Some(state.into()),
                ..Default::default()
            };
            assert_eq!(app.documents(&f).unwrap().len(), n, "{state}");
        }
        let f = DocumentFilter {
            text: Some("harbour".into()),
            ..Default::default()
        };
        assert_eq!(app.documents(&f).unwrap().len(), 1);
        let detail = app.document(&client_ref).unwrap();
        assert_eq!(detail.totals.unwrap().total_tax.to_string(), "3.00");
        assert_eq!(state_label(DocumentState::Failed), ("Failed", "bad"));
        assert_eq!(state_label(DocumentState::Paid), ("Paid", "done"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_pairing_that_cannot_start_says_why_and_leaves_nothing_behind() {
        let (app, dir) = app();
        let e = app.start_pairing(None, |_| {}).await.unwrap_err();
        assert_eq!(e.code, "proxy_unreachable", "{e:?}");
        assert!(e.message.contains("proxy URL in Settings"), "{}", e.message);
        // A real refused connection (nothing listens on port 9), in plain words.
        assert!(
            e.message.contains("nothing answers at that address")
                && !e.message.contains("os error"),
            "{}",
            e.message
        );
        assert!(app.overview().unwrap().pairing.is_none());
        assert_eq!(app.reopen_browser().unwrap_err().code, "no_pairing");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn pairing_outcomes_say_what_happened_and_what_to_do() {
        assert_eq!(
            pair_failure(&PairError::Denied, Provider::Xero).outcome,
            "access_denied"
        );
        let expired = pair_failure(&PairError::Expired, Provider::Xero);
        assert_eq!(expired.outcome, "expired_token");
        assert!(
            expired.message.contains("Start again"),
            "{}",
            expired.message
        );
        let down = pair_failure(
            &PairError::Client(crate::api::ClientError::Unreachable {
                url: "http://127.0.0.1:9".into(),
                reason: "Connection refused (os error 111)".into(),
            }),
            Provider::Xero,
        );
        assert_eq!(down.outcome, "proxy_unreachable");
        assert!(
            down.message.contains("proxy URL in Settings"),
            "{}",
            down.message
        );
        assert!(qr_svg("http://127.0.0.1:7400/pair?code=ABCD-EFGH").starts_with("<?xml"));
    }

    #[test]
    fn the_shift_form_shows_the_over_short_and_settings_are_checked() {
        let (app, dir) = app();
        let p = app.preview_shift(&json!({"register": "Register 1", "sales": [{"category": "Food", "amount": "100"}],
            "tenders": [{"tender": "cash", "amount": "60.00"}, {"tender": "card", "amount": "40"}], "counted_cash": "59.50"}));
        let s = p.summary.unwrap();
        assert_eq!(
            (s.taken.to_string(), s.over_short.to_string()),
            ("100.00".into(), "-0.50".into())
        );
        let e = app
            .save_settings(Settings {
                proxy_url: "ftp://x".into(),
                device_name: "Till".into(),
            })
            .unwrap_err();
        assert_eq!(e.problems[0].path, "proxy_url");
        let s = app
            .save_settings(Settings {
                proxy_url: "https://proxy.example.com/".into(),
                device_name: " Front desk ".into(),
            })
            .unwrap();
        assert_eq!(
            (
                s.settings.proxy_url.as_str(),
                s.settings.device_name.as_str()
            ),
            ("https://proxy.example.com", "Front desk")
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
