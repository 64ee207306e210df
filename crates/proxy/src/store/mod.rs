//! What the proxy keeps, behind an async interface split by area ([`PairingStore`],
//! [`VaultStore`], [`ConnectionStore`], [`DeviceStore`], [`DocumentStore`], [`EventStore`],
//! [`MappingStore`], [`HealthStore`]), so handlers never know which database holds it. A backend
//! implements every area ([`Backend`]); [`Storage`] is the handle the proxy passes around. The
//! SQLite backend (`sqlite`) runs its synchronous calls on a blocking pool of its own: its
//! callers only await.

pub mod choices;
#[cfg(test)]
mod conformance;
pub mod events;
pub mod moving;
pub mod postgres;
pub mod rules;
mod sqlite;
pub mod throttles;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ledgerlink_wire::documents::{DocumentKind, DocumentState, DocumentView};
use ledgerlink_wire::ConnectionStatus;
use std::sync::Arc;
use uuid::Uuid;

pub use events::{EventBody, ProviderNews};
pub use sqlite::SqliteStore;

/// What went wrong with the store, whatever the database behind it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot take this call now (its disk is full, its I/O fails, it stayed busy past
    /// the timeout, it cannot be reached): nothing was stored, and the same call may well work
    /// later. The API answers it `503 unavailable`.
    #[error("the database cannot be used just now: {0}")]
    Unavailable(String),
    /// Another proxy process has the database open (one process per SQLite database).
    #[error("{0}")]
    InUse(String),
    /// The database refused the statement: a bug, or a schema out of step with this proxy.
    #[error("database: {0}")]
    Failed(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// A delivery write under a lease another proxy has since taken (see [`LeaseStore`]): nothing
    /// was written, and this proxy's round for the connection must stop.
    #[error("another proxy now delivers this connection's documents")]
    Fenced,
    #[error("migration {version} failed: {reason}")]
    Migration { version: u32, reason: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingStatus {
    Pending,
    Approved,
    Denied,
    /// The device collected its credentials: the device code is spent.
    Consumed,
}

impl PairingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Consumed => "consumed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "consumed" => Self::Consumed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Pairing {
    pub id: Uuid,
    pub device_code_hash: Vec<u8>,
    /// Normalized: 8 characters, upper case, no dash.
    pub user_code: String,
    pub client_id: String,
    pub device_id: Uuid,
    pub device_name: String,
    pub provider: String,
    pub status: PairingStatus,
    pub connection_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub interval_secs: i64,
    pub last_poll_at: Option<DateTime<Utc>>,
    /// The connection the device was paired with when it asked to pair again, proving it with its
    /// credentials: the only one it may be moved from (once the person agrees on the page).
    pub moves_from: Option<Uuid>,
}

impl Pairing {
    /// Still waiting for the person, and not expired.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.status == PairingStatus::Pending && now < self.expires_at
    }
}

#[derive(Debug, Clone)]
pub struct OAuthState {
    pub state_hash: Vec<u8>,
    pub pairing_id: Uuid,
    pub browser_hash: Vec<u8>,
    /// The PKCE verifier, encrypted under the master key.
    pub verifier: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// A connection's delivery as one proxy holds it: every delivery write names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub connection: Uuid,
    /// The proxy process holding it.
    pub holder: Uuid,
    /// Moves on each time the lease is taken.
    pub epoch: i64,
}

/// A lease just taken.
#[derive(Debug, Clone)]
pub struct Taken {
    pub lease: Lease,
    /// The pacing its last holder left.
    pub pacing: Option<crate::delivery::pacer::Snapshot>,
    /// Its last holder's lease ran out (it stopped without letting go), so it may have made calls
    /// after it last wrote its pacing.
    pub lost_holder: bool,
}

#[derive(Debug, Clone)]
pub struct PendingChoice {
    pub id_hash: Vec<u8>,
    pub pairing_id: Uuid,
    pub browser_hash: Vec<u8>,
    pub token_set_id: Uuid,
    /// The organisations on offer (stored as [`choices::text`]).
    pub tenants: Vec<crate::providers::Organisation>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct TokenSetRow {
    pub id: Uuid,
    pub provider: String,
    pub ciphertext: Vec<u8>,
    pub access_expires_at: DateTime<Utc>,
    pub last_refresh_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub version: i64,
}

/// Why a connection left `connected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusReason {
    /// Xero refused the refresh token (`invalid_grant`): only connecting again helps.
    RefreshRefused,
    /// Xero kept refusing API calls although the tokens refreshed: probed again now and then.
    ApiRefused,
    /// The organisation is no longer among Xero's connections for these tokens.
    TenantGone,
    /// Disconnected from Ledgerlink (a device or the operator).
    Disconnected,
}

impl StatusReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshRefused => "refresh_refused",
            Self::ApiRefused => "api_refused",
            Self::TenantGone => "tenant_gone",
            Self::Disconnected => "disconnected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "refresh_refused" => Self::RefreshRefused,
            "api_refused" => Self::ApiRefused,
            "tenant_gone" => Self::TenantGone,
            "disconnected" => Self::Disconnected,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ConnectionRow {
    pub id: Uuid,
    pub provider: String,
    /// The provider's id of the organisation (Xero: a tenant UUID; HubRise: a location id).
    pub tenant_id: String,
    pub tenant_name: String,
    pub xero_connection_id: Option<Uuid>,
    pub token_set_id: Option<Uuid>,
    pub status: ConnectionStatus,
    /// Why it is not `connected` (none while it is).
    pub status_reason: Option<StatusReason>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub id: Uuid,
    pub name: String,
    pub client_id: String,
    pub connection_id: Uuid,
    pub paired_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone)]
pub struct DeviceTokenRow {
    pub hash: Vec<u8>,
    pub device_id: Uuid,
    pub kind: TokenKind,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub successor: Option<Vec<u8>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A pushed document, as kept in the outbox.
#[derive(Debug, Clone)]
pub struct DocumentRow {
    pub id: Uuid,
    pub device_id: Uuid,
    pub connection_id: Uuid,
    pub kind: DocumentKind,
    pub client_ref: String,
    /// Canonical JSON of the wire document.
    pub body: String,
    pub state: DocumentState,
    /// What the provider calls it: its id (Xero: a UUID; HubRise: its order id) and number.
    pub provider_id: Option<String>,
    pub provider_number: Option<String>,
    pub message: Option<String>,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Since when the outcome of its last delivery attempt is unknown (it may be in Xero).
    pub unknown_since: Option<DateTime<Utc>>,
    /// The bundle it was last sent in, while its fate is open.
    pub bundle_key: Option<String>,
    /// For a payment: the `client_ref` of the invoice (or shift) it pays, which must reach Xero
    /// first.
    pub waits_for: Option<String>,
    /// 1, and one more for each correction.
    pub version: u32,
    /// How many times a person asked for it to be sent again unchanged.
    pub resends: u32,
    /// Why a person discarded it.
    pub discard_reason: Option<String>,
    /// The provider's own status for it, as last heard (HubRise: `cancelled`); informational.
    pub provider_status: Option<String>,
}

/// A bundle as sent to Xero: resent byte for byte under its key while its outcome is unknown.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub key: String,
    pub connection_id: Uuid,
    /// Path and query, e.g. `Invoices?summarizeErrors=false&unitdp=4`.
    pub path: String,
    pub collection: String,
    pub body: String,
    /// The documents, in the order of the bundle's elements.
    pub members: Vec<Uuid>,
}

impl DocumentRow {
    /// A document just accepted from `device`: queued, first version, never attempted.
    pub fn accepted(
        device_id: Uuid,
        connection_id: Uuid,
        kind: DocumentKind,
        client_ref: String,
        body: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::new_v4(),
            device_id,
            connection_id,
            kind,
            client_ref,
            body,
            state: DocumentState::Queued,
            provider_id: None,
            provider_number: None,
            message: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
            unknown_since: None,
            bundle_key: None,
            waits_for: None,
            version: 1,
            resends: 0,
            discard_reason: None,
            provider_status: None,
        }
    }

    pub fn view(&self) -> DocumentView {
        let xero_id = self
            .provider_id
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok());
        DocumentView {
            provider_id: self.provider_id.clone(),
            provider_number: self.provider_number.clone(),
            id: self.id,
            kind: self.kind,
            client_ref: self.client_ref.clone(),
            state: self.state,
            // The deprecated Xero fields: filled only for Xero's ids (UUIDs; HubRise's are not).
            xero_id,
            xero_number: self.provider_number.clone().filter(|_| xero_id.is_some()),
            message: self.message.clone(),
            version: self.version,
            discard_reason: self.discard_reason.clone(),
            provider_status: self.provider_status.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            history: None,
        }
    }

    /// What its sends to Xero are told apart by: the id, the version and the resends. Every
    /// Idempotency-Key derived from a document includes it, so a corrected or resent document is
    /// a new request to Xero, never a replay of the answer to the last one.
    pub fn send_identity(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..16].copy_from_slice(self.id.as_bytes());
        out[16..20].copy_from_slice(&self.version.to_be_bytes());
        out[20..].copy_from_slice(&self.resends.to_be_bytes());
        out
    }
}

/// What the provider said of an organisation at connect (Xero's `GET /Organisation`, HubRise's
/// `GET /location`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationRow {
    /// IANA (`Pacific/Auckland`); `UTC` when Xero's name is one CLDR does not map.
    pub timezone: String,
    /// As Xero wrote it (`NEWZEALANDSTANDARDTIME`); empty for other providers.
    pub xero_timezone: String,
    pub short_code: Option<String>,
    /// ISO 4217 (`EUR`): a HubRise location's orders are written in it.
    pub currency: Option<String>,
}

/// What storing one pushed document did.
#[derive(Debug, Clone)]
pub enum Stored {
    New(DocumentView),
    /// The same document was already stored: the stored one.
    Duplicate(DocumentView),
    /// It replaced a failed version: the document as it is now (queued, the next version).
    Corrected(DocumentView),
    /// The `client_ref` is taken by a document that cannot be replaced by this one: that document.
    InUse(DocumentView),
}

/// An earlier version of a corrected document.
#[derive(Debug, Clone)]
pub struct DocumentVersionRow {
    pub version: u32,
    pub body: String,
    pub state: DocumentState,
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub replaced_at: DateTime<Utc>,
}

/// What a person's action on a document did.
#[derive(Debug, Clone)]
pub enum Change {
    /// No such document from this device.
    NotFound,
    /// Its state does not allow it: the document as it is.
    Refused(DocumentRow),
    /// Done: the document as it is now.
    Done(DocumentRow),
    /// Its state would allow it, but something else stands in the way: the document, and why.
    Blocked(DocumentRow, String),
}

/// A document's new state after a delivery attempt.
#[derive(Debug, Clone)]
pub struct DocumentUpdate {
    pub id: Uuid,
    pub state: DocumentState,
    /// What the provider calls it: its id (Xero: a UUID; HubRise: its order id) and number.
    pub provider_id: Option<String>,
    pub provider_number: Option<String>,
    pub message: Option<String>,
    /// Counts as a delivery attempt.
    pub attempt: bool,
}

/// Which of a device's documents to list.
#[derive(Debug, Clone, Default)]
pub struct DocumentFilter {
    pub state: Option<DocumentState>,
    pub kind: Option<DocumentKind>,
    pub client_ref: Option<String>,
    pub limit: usize,
}

/// What an operator looks for among every device's documents (each given field must match).
#[derive(Debug, Clone, Default)]
pub struct DocumentSearch {
    pub id: Option<Uuid>,
    pub connection: Option<Uuid>,
    pub client_ref: Option<String>,
    /// Part of the contact's name, any case.
    pub contact: Option<String>,
    pub state: Option<DocumentState>,
    /// Made at or after.
    pub from: Option<DateTime<Utc>>,
    /// Made before.
    pub to: Option<DateTime<Utc>>,
    pub limit: usize,
}

/// An operator's sign-in under way: bound to the browser that began it; its nonce and PKCE
/// verifier sealed under the master key.
#[derive(Debug, Clone)]
pub struct OperatorLogin {
    pub state_hash: Vec<u8>,
    pub browser_hash: Vec<u8>,
    pub sealed: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

/// A signed-in operator's console session (its cookie's hash is the key).
#[derive(Debug, Clone)]
pub struct OperatorSession {
    pub id_hash: Vec<u8>,
    pub subject: String,
    pub name: String,
    /// `viewer` or `operator`.
    pub role: String,
    /// Every form's CSRF token.
    pub csrf: String,
    /// The ID token (for signing out at the provider), sealed under the master key.
    pub sealed_id_token: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A connection's outbox at a glance: its documents by state, and when one last reached the
/// provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSummary {
    /// By the state's name (`queued`, `failed`, ...).
    pub by_state: std::collections::BTreeMap<String, u64>,
    pub last_delivered_at: Option<DateTime<Utc>>,
}

/// How consuming a pairing went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    Paired,
    /// Not approved (any more): a second poller, or a pairing that was never approved.
    NotApproved,
    /// The device id is paired, and active, on another organisation the person did not agree to
    /// move it from (it was paired there after the pairing page warned): it stays where it is.
    DeviceInUse,
}

/// How approving a pairing went.
#[derive(Debug, Clone)]
pub enum Approval {
    /// The connection as stored, and the token set it replaced (if any).
    Approved(ConnectionRow, Option<Uuid>),
    /// The pairing is no longer pending: nothing changed.
    NotPending,
    /// The organisation is not connected yet and the proxy already has its cap of connected ones.
    AtCap(u32),
    /// The pairing's device is paired with another organisation and the pairing was not started
    /// by that device (with its credentials), so it may not move it: nothing changed.
    DeviceElsewhere,
}

/// A value sealed under the master key, and what it is (so its associated data can be rebuilt).
#[derive(Debug, Clone)]
pub enum Sealed {
    TokenSet {
        id: Uuid,
        ciphertext: Vec<u8>,
    },
    /// A rotated device refresh token's successor pair.
    Successor {
        old_hash: Vec<u8>,
        ciphertext: Vec<u8>,
    },
    /// A PKCE verifier of an authorization request.
    Verifier {
        state_hash: Vec<u8>,
        ciphertext: Vec<u8>,
    },
}

/// Whether the database can be used, and what keeps it tidy.
#[async_trait]
pub trait HealthStore: Send + Sync {
    async fn ping(&self) -> Result<()>;
    /// Whether writes work: at once while none has failed; after a failure (a full disk), by
    /// trying a write that needs fresh pages. `Unavailable` while they still fail.
    async fn writable(&self) -> Result<()>;
    /// Gives back memory held only for speed (page caches) when the store has had no write for a
    /// while, so a burst's memory goes back to the system. Answers whether it did.
    async fn release_memory(&self, quiet_for: std::time::Duration) -> Result<bool>;
    /// Caps how large the database may grow (SQLite's `max_page_count`), `None` lifting the cap:
    /// how the tests fill the disk. Answers the cap now in force, in bytes.
    async fn limit_size(&self, max_bytes: Option<u64>) -> Result<u64>;
    /// Deletes what can no longer be used: pairings, states, choices and access tokens that expired
    /// before `short`, token sets no connection or choice refers to made before `short`, and refresh
    /// tokens revoked or rotated before `long` (kept that long so a stolen old one is still
    /// recognised, and revokes its device, when it comes back), and attempt counts last touched
    /// before `short`, sightings kept until before `short`, and operators' sign-ins and sessions that
    /// expired before `short`. Answers how many rows went.
    async fn sweep(&self, short: DateTime<Utc>, long: DateTime<Utc>) -> Result<usize>;
}

/// Attempts counted per kind and key (a client's address, a browser session) in a sliding window
/// (see [`throttles`]), shared by every proxy on the database, so guesses spread over replicas
/// count as one budget.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Counts one attempt of `kind` by `key`, `elapsed` (0 to 1) into the numbered `window`,
    /// unless the sliding window holds `limit` already: whether it was counted (false: over).
    async fn count_attempt(
        &self,
        kind: &str,
        key: &[u8],
        window: i64,
        elapsed: f64,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// The attempts of `kind` by `key` in the sliding window ending `elapsed` into `window`.
    async fn attempts(&self, kind: &str, key: &[u8], window: i64, elapsed: f64) -> Result<f64>;
    /// Takes one call of a budget every proxy shares (`limit` calls in any stretch of `window`,
    /// counted in 64ths of it, so no fixed window however aligned sees more): `None` when taken,
    /// else when to ask again. Proxies take turns for it, so two never take the last call.
    async fn take_call(
        &self,
        kind: &str,
        key: &str,
        limit: u32,
        window: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>>;
    /// Notes a sighting of `key` (a provider's notification) kept until `until`: true only for
    /// the first while it is kept, whichever proxy saw it before.
    async fn first_sighting(
        &self,
        kind: &str,
        key: &[u8],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Forgets a sighting whose handling failed, so the provider's next sending is taken in.
    async fn forget_sighting(&self, kind: &str, key: &[u8]) -> Result<()>;
}

/// Operators' console sign-ins and sessions, in the database so any replica serves any step.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    async fn put_login(&self, l: &OperatorLogin) -> Result<()>;
    /// The sign-in under way with this state, taken (a state is used once); `None` when unknown
    /// or expired.
    async fn take_login(
        &self,
        state_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorLogin>>;
    async fn put_session(&self, s: &OperatorSession) -> Result<()>;
    /// The live session with this cookie hash.
    async fn session(&self, id_hash: &[u8], now: DateTime<Utc>) -> Result<Option<OperatorSession>>;
    /// Ends a session; answers it, if there was one.
    async fn end_session(&self, id_hash: &[u8]) -> Result<Option<OperatorSession>>;
}

/// The master-key check and the providers' grants, sealed (the vault's rows).
#[async_trait]
pub trait VaultStore: Send + Sync {
    /// The master-key check record, if the database has one.
    async fn key_check(&self) -> Result<Option<Vec<u8>>>;
    async fn put_key_check(&self, sealed: &[u8], now: DateTime<Utc>) -> Result<()>;
    /// Every value sealed under the master key (to check the keys before the key check exists).
    async fn sealed(&self) -> Result<Vec<Sealed>>;
    async fn insert_token_set(&self, t: &TokenSetRow) -> Result<()>;
    async fn token_set(&self, id: Uuid) -> Result<Option<TokenSetRow>>;
    /// The refreshed tokens, written by the holder of the token set's refresh lease `epoch`:
    /// compare-and-swap on `version` (written with `version + 1` only if the row still has
    /// `t.version`), and fenced by the lease (refused once another proxy has taken it, though an
    /// expired lease nobody took still writes). False when either check fails.
    async fn update_token_set(&self, t: &TokenSetRow, holder: Uuid, epoch: i64) -> Result<bool>;
    async fn delete_token_set(&self, id: Uuid) -> Result<()>;
    /// Token sets in use by a live connection whose last refresh (or creation) is before `before`.
    async fn idle_token_sets(&self, before: DateTime<Utc>) -> Result<Vec<Uuid>>;
    /// Takes the right to refresh token set `id` for `ttl` (on the database's clock) unless
    /// another proxy holds it: one refresh per token set at a time across every proxy sharing
    /// the database. Its epoch, or `None` while another proxy refreshes.
    async fn take_refresh_lease(
        &self,
        id: Uuid,
        holder: Uuid,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>>;
    /// Lets the right to refresh go (the next caller may take it at once).
    async fn end_refresh_lease(&self, id: Uuid, holder: Uuid, epoch: i64) -> Result<()>;
}

/// Pairings, their browser states and choices, and the transactions that pair a device.
#[async_trait]
pub trait PairingStore: Send + Sync {
    async fn insert_pairing(&self, p: &Pairing) -> Result<()>;
    async fn pairing(&self, id: Uuid) -> Result<Option<Pairing>>;
    /// The newest pairing with this (normalized) user code.
    async fn pairing_by_user_code(&self, code: &str) -> Result<Option<Pairing>>;
    async fn pairing_by_device_code(&self, hash: &[u8]) -> Result<Option<Pairing>>;
    /// Records a poll (and the interval after any `slow_down`); leaves the status alone.
    async fn record_poll(&self, id: Uuid, at: DateTime<Utc>, interval_secs: i64) -> Result<()>;
    /// Pending and unexpired → denied. False when it was no longer pending.
    async fn deny_pairing(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool>;
    /// In one transaction: creates the connection for (provider, tenant) or points the existing one at
    /// the new token set, and approves the pairing with it. `None` (and nothing changed) when the
    /// pairing is no longer pending. Otherwise the stored connection and the token set it replaced.
    /// With a `cap`, an organisation not connected yet is refused once that many of the provider's
    /// organisations are connected (checked in the same transaction); reconnecting one never is.
    /// A device paired elsewhere is moved only by a pairing it started itself (`moves_from`).
    async fn approve_pairing(
        &self,
        pairing: Uuid,
        connection: &ConnectionRow,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Approval>;
    /// The provider's organisations connected now (not disconnected).
    async fn connected_count(&self, provider: &str) -> Result<u32>;
    /// In one transaction: the approved pairing becomes consumed and the device is paired (earlier
    /// credentials of the device revoked, the new pair stored).
    async fn consume_pairing(
        &self,
        pairing: Uuid,
        device: &DeviceRow,
        access: &DeviceTokenRow,
        refresh: &DeviceTokenRow,
    ) -> Result<Consumed>;
    async fn insert_oauth_state(&self, s: &OAuthState) -> Result<()>;
    async fn oauth_state(&self, hash: &[u8]) -> Result<Option<OAuthState>>;
    /// Marks a state used; false when it already was (a replay racing this one).
    async fn mark_state_used(&self, hash: &[u8], now: DateTime<Utc>) -> Result<bool>;
    async fn insert_choice(&self, c: &PendingChoice) -> Result<()>;
    async fn choice(&self, hash: &[u8]) -> Result<Option<PendingChoice>>;
    /// The newest choice made in a browser (of one pairing, if given): for a reloaded chooser.
    async fn latest_choice(
        &self,
        browser_hash: &[u8],
        pairing: Option<Uuid>,
    ) -> Result<Option<PendingChoice>>;
    async fn mark_choice_used(&self, hash: &[u8], now: DateTime<Utc>) -> Result<bool>;
}

/// Connections to providers' organisations, their guarded status changes, and what is kept of each organisation.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Creates the connection for (provider, tenant) or points the existing one at a new token set;
    /// answers the stored row and the token set it replaced, if any.
    async fn upsert_connection(&self, c: &ConnectionRow) -> Result<(ConnectionRow, Option<Uuid>)>;
    async fn connection(&self, id: Uuid) -> Result<Option<ConnectionRow>>;
    async fn connections(&self) -> Result<Vec<ConnectionRow>>;
    async fn connections_using(&self, token_set: Uuid) -> Result<Vec<ConnectionRow>>;
    /// Moves the connection from `from` to `to` (saying why), only if it is still `from` and
    /// still on `token_set` (a reconnect in the meantime wins), and tells each of its devices with
    /// a `connection` event, in one transaction. False when it was not moved.
    async fn mark_connection(
        &self,
        id: Uuid,
        token_set: Option<Uuid>,
        from: ConnectionStatus,
        to: ConnectionStatus,
        reason: Option<StatusReason>,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// [`ConnectionStore::mark_connection`] for every connection on `token_set` (one grant can
    /// cover several organisations), in one transaction: a reconnect of any of them meanwhile wins
    /// for that one. How many moved.
    async fn mark_connections_using(
        &self,
        token_set: Uuid,
        from: ConnectionStatus,
        to: ConnectionStatus,
        reason: Option<StatusReason>,
        now: DateTime<Utc>,
    ) -> Result<usize>;
    /// Connections that left `connected` because Xero refused API calls (not the refresh): worth
    /// asking Xero again now and then.
    async fn connections_to_reprobe(&self) -> Result<Vec<ConnectionRow>>;
    /// Marks the connection disconnected, detaches its token set and revokes every device on it, if
    /// it still uses `token_set` (a reconnect in the meantime wins). False when it did not.
    async fn disconnect(
        &self,
        id: Uuid,
        token_set: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// What the proxy keeps of the connection's organisation (its time zone, its short code).
    async fn organisation(&self, connection: Uuid) -> Result<Option<OrganisationRow>>;
    async fn put_organisation(
        &self,
        connection: Uuid,
        org: &OrganisationRow,
        now: DateTime<Utc>,
    ) -> Result<()>;
}

/// Paired devices and their credentials.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    async fn device(&self, id: Uuid) -> Result<Option<DeviceRow>>;
    async fn devices_on(&self, connection: Uuid) -> Result<Vec<DeviceRow>>;
    async fn revoke_device(&self, id: Uuid, now: DateTime<Utc>) -> Result<()>;
    async fn touch_device(&self, id: Uuid, now: DateTime<Utc>) -> Result<()>;
    async fn device_token(&self, hash: &[u8]) -> Result<Option<DeviceTokenRow>>;
    /// Rotates a refresh token: marks `old` rotated (only if it was not yet) with `successor`, and
    /// stores the new pair. False when `old` was already rotated or revoked.
    async fn rotate_refresh(
        &self,
        old: &[u8],
        successor: &[u8],
        access: &DeviceTokenRow,
        refresh: &DeviceTokenRow,
        now: DateTime<Utc>,
    ) -> Result<bool>;
}

/// Documents, their outbox, bundles and outcomes.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Stores accepted documents and their `queued` events in one transaction, one answer per
    /// document. A document whose (device, client_ref) is already stored with the same kind and
    /// body is not written again (`Duplicate`); with a different body it replaces a correctable
    /// (failed) one as its next version, the replaced version kept (`Corrected`), and is refused
    /// otherwise (`InUse`).
    async fn insert_documents(&self, docs: &[DocumentRow]) -> Result<Vec<Stored>>;
    /// A document's earlier versions, oldest first.
    async fn document_versions(&self, id: Uuid) -> Result<Vec<DocumentVersionRow>>;
    /// A failed document of the device back in the queue, unchanged (one more resend, so its next
    /// send has Idempotency-Keys of its own), with its `queued` event.
    async fn resend_document(&self, device: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<Change>;
    /// Asks for a sent invoice of the device to be voided (`voiding`: delivery takes it to Xero).
    /// Refused (`Blocked`, with the reason) while a payment or a refund of this device names it:
    /// Xero refuses to void what money has touched.
    async fn request_void(&self, device: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<Change>;
    /// A connection's documents waiting to be voided in Xero.
    async fn voids(&self, connection: Uuid, limit: usize) -> Result<Vec<DocumentRow>>;
    /// Puts a document of the device aside (`discarded`, with the reason) if it is failed, or
    /// queued and not in a call nor of unknown outcome (it may be in Xero), with its event.
    async fn discard_document(
        &self,
        device: Uuid,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Change>;
    /// One of a device's documents.
    async fn document(&self, device: Uuid, id: Uuid) -> Result<Option<DocumentRow>>;
    async fn document_by_ref(&self, device: Uuid, client_ref: &str) -> Result<Option<DocumentRow>>;
    async fn documents(&self, device: Uuid, filter: &DocumentFilter) -> Result<Vec<DocumentRow>>;
    /// Every device's documents matching the search, newest first (the operator API).
    async fn search_documents(&self, search: &DocumentSearch) -> Result<Vec<DocumentRow>>;
    /// Each connection's documents counted by state, and its last delivery.
    async fn queue_summaries(&self) -> Result<std::collections::HashMap<Uuid, QueueSummary>>;
    /// The oldest documents of a kind in a connection's outbox that can go now: a payment whose
    /// invoice has not reached Xero (nor failed, nor stayed away an hour) is left where it is, so it
    /// never holds back the ones behind it.
    async fn outbox(
        &self,
        connection: Uuid,
        kind: DocumentKind,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRow>>;
    /// Connected connections nobody delivers now (no live lease) with documents that can go now,
    /// or that a stopped round left `sending` (the next holder puts them back).
    async fn connections_with_work(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>>;
    /// Puts the connection's documents left `sending` (a round stopped mid-call, here or in a
    /// proxy that stopped: outcome unknown) back in the queue; they go again under the same
    /// idempotency key. Only its lease's holder delivers a connection, so at the start of a round
    /// nothing of it is in flight. Answers how many.
    async fn requeue_sending_for(&self, lease: &Lease) -> Result<usize>;
    /// Records a bundle about to be sent and marks its documents `sending` in it, if every one of
    /// them is still queued. False (nothing changed) when one is not: a person discarded it since
    /// the bundle was made, and the bundle is made again next round.
    async fn start_bundle(
        &self,
        lease: &Lease,
        bundle: &Bundle,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    async fn bundle(&self, key: &str) -> Result<Option<Bundle>>;
    /// Bundles of a connection with documents waiting whose outcome became unknown after `since`.
    async fn open_bundles(&self, connection: Uuid, since: DateTime<Utc>) -> Result<Vec<String>>;
    /// Back to the queue after an attempt whose outcome is unknown (it may have reached Xero).
    async fn mark_unknown(&self, lease: &Lease, ids: &[Uuid], now: DateTime<Utc>) -> Result<()>;
    /// Queued documents whose unknown outcome was looked up and not found at the provider: known
    /// again (not there), so they go without another lookup.
    async fn forget_unknown(&self, lease: &Lease, ids: &[Uuid]) -> Result<()>;
    /// Applies delivery outcomes and records an event for each, in one transaction; answers the
    /// documents as they now stand, in the order of `updates`. A bundle whose
    /// documents all have their outcome is deleted with it (its body is no longer needed). Under
    /// `lease` (a delivery round's outcomes) it is refused once another proxy took the lease;
    /// without one (the provider's word that an invoice was paid) the state rule alone guards it.
    async fn update_documents(
        &self,
        lease: Option<&Lease>,
        updates: &[DocumentUpdate],
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRow>>;
    /// Documents of a connection that Xero knows by this id (invoices and shifts).
    async fn documents_by_provider_id(
        &self,
        connection: Uuid,
        provider_id: &str,
    ) -> Result<Vec<DocumentRow>>;
    /// Sets the provider's status of a document and records `body` as an event for its device, in
    /// one transaction, only if the status is new: a notification the provider sends twice reaches
    /// the device once. Whether it was new.
    async fn record_provider_status(
        &self,
        document: &DocumentRow,
        status: &str,
        body: &EventBody,
        now: DateTime<Utc>,
    ) -> Result<bool>;
}

/// Which proxy delivers a connection's documents: one at a time, by a lease that runs out unless
/// renewed, timed by the database's clock (Postgres's `now()`; SQLite is one process's). Taking a
/// lease moves its epoch on, and every delivery write names its lease ([`Lease`]), so a proxy
/// that lost its lease (paused, cut off) can no longer write what it thought it did.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes the delivery of `connection` for `ttl` if nobody holds it (never held, let go, or
    /// run out), with the pacing its last holder left.
    async fn take_lease(
        &self,
        connection: Uuid,
        holder: Uuid,
        ttl: std::time::Duration,
    ) -> Result<Option<Taken>>;
    /// Extends the lease to `ttl` from now and keeps `pacing`, if it is still this epoch's (false:
    /// another proxy took it).
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
        pacing: Option<&crate::delivery::pacer::Snapshot>,
    ) -> Result<bool>;
    /// Lets the lease go, so any proxy may take it at once, keeping `pacing` for the next holder.
    async fn release_lease(
        &self,
        lease: &Lease,
        pacing: Option<&crate::delivery::pacer::Snapshot>,
    ) -> Result<()>;
}

/// What one proxy's writes tell every proxy sharing the database, so that a reader or the
/// delivery engine on another proxy wakes at once rather than at its next look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// Events were recorded: event readers look again.
    Events,
    /// Documents became ready to go: the delivery engine looks again.
    Outbox,
}

/// Hearing the other proxies' writes. A backend's writes send their wakeups as they commit; on
/// SQLite (one process) there is nobody else to hear, and this proxy's own notices suffice.
#[async_trait]
pub trait WakeupStore: Send + Sync {
    /// Runs until the process stops, calling `wake` for every wakeup any proxy's writes send
    /// (this one's included), and for both once each time it starts listening (what was sent
    /// while it was not is read then).
    async fn listen(&self, wake: Arc<dyn Fn(Wakeup) + Send + Sync>);
}

/// Each device's events, in order, after a cursor.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Records a provider event about a document for its device.
    async fn record_event(
        &self,
        document: &DocumentRow,
        body: &EventBody,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// A device's events after `after`, oldest first: `(seq, JSON)`.
    async fn events_after(
        &self,
        device: Uuid,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ledgerlink_wire::documents::EventEntry>>;
}

/// Mappings and the contacts cache of each connection.
#[async_trait]
pub trait MappingStore: Send + Sync {
    async fn mappings(
        &self,
        connection: Uuid,
    ) -> Result<Option<ledgerlink_wire::documents::Mappings>>;
    async fn put_mappings(
        &self,
        connection: Uuid,
        mappings: &ledgerlink_wire::documents::Mappings,
        now: DateTime<Utc>,
    ) -> Result<()>;
    async fn contact_id(&self, connection: Uuid, name_key: &str) -> Result<Option<Uuid>>;
    async fn put_contact_id(&self, connection: Uuid, name_key: &str, id: Uuid) -> Result<()>;
    /// Drops a cached ContactID Xero no longer knows, and counts it (see `contact_generation`).
    async fn forget_contact_id(&self, connection: Uuid, name_key: &str) -> Result<()>;
    /// How many times the name's cached ContactID was dropped: part of the Idempotency-Key of the
    /// contact made again, or Xero would replay the first creation's answer.
    async fn contact_generation(&self, connection: Uuid, name_key: &str) -> Result<u32>;
}

/// A database holding everything the proxy keeps: every area. Each method is one transaction.
pub trait Backend:
    HealthStore
    + VaultStore
    + PairingStore
    + ConnectionStore
    + DeviceStore
    + DocumentStore
    + EventStore
    + MappingStore
    + LeaseStore
    + WakeupStore
    + ThrottleStore
    + OperatorStore
    + 'static
{
    /// What keeps the database open: gone once every handle and every call under way let go of
    /// it (so a new proxy may open the database).
    fn keeps_open(&self) -> std::sync::Weak<dyn std::any::Any + Send + Sync>;
}

/// How long a payment waits for its invoice to arrive from its device before it fails.
pub const PAYMENT_WAITS_FOR_INVOICE: chrono::Duration = chrono::Duration::hours(1);

/// The store the proxy passes around: one backend, reached by area
/// (`state.storage.documents().outbox(...).await`).
#[derive(Clone)]
pub struct Storage {
    inner: Arc<dyn Backend>,
}

impl Storage {
    pub fn new(backend: impl Backend) -> Self {
        Self {
            inner: Arc::new(backend),
        }
    }

    /// An SQLite database (its calls run on the blocking pool).
    pub fn sqlite(store: SqliteStore) -> Self {
        Self::new(sqlite::SqliteBackend::new(store))
    }

    pub fn health(&self) -> &dyn HealthStore {
        &*self.inner
    }

    pub fn vault(&self) -> &dyn VaultStore {
        &*self.inner
    }

    pub fn pairing(&self) -> &dyn PairingStore {
        &*self.inner
    }

    pub fn connections(&self) -> &dyn ConnectionStore {
        &*self.inner
    }

    pub fn devices(&self) -> &dyn DeviceStore {
        &*self.inner
    }

    pub fn documents(&self) -> &dyn DocumentStore {
        &*self.inner
    }

    pub fn events(&self) -> &dyn EventStore {
        &*self.inner
    }

    pub fn mappings(&self) -> &dyn MappingStore {
        &*self.inner
    }

    pub fn leases(&self) -> &dyn LeaseStore {
        &*self.inner
    }

    pub fn wakeups(&self) -> &dyn WakeupStore {
        &*self.inner
    }

    pub fn throttles(&self) -> &dyn ThrottleStore {
        &*self.inner
    }

    pub fn operators(&self) -> &dyn OperatorStore {
        &*self.inner
    }

    /// A handle that does not keep the database open (to wait until it is closed).
    pub fn downgrade(&self) -> std::sync::Weak<dyn std::any::Any + Send + Sync> {
        self.inner.keeps_open()
    }
}
