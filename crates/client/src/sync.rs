//! The sync loop: sends the outbox's pending documents to the proxy in batches, reads the proxy's
//! event feed into the outbox, and backs off (with jitter, up to 30 s) while the proxy cannot be
//! reached. Sending twice is safe by design: the proxy dedupes by `client_ref`, so a batch whose
//! answer was lost is simply sent again.

use ledgerlink_wire::documents::{Mappings, Outcome};
use ledgerlink_wire::{ConnectionInfo, ErrorCode};
use reqwest::Method;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::api::{ClientError, ProxyClient};
use crate::credentials::{CredentialStore, Credentials, FreshError};
use crate::outbox::{problems_message, Counts, Outbox, OutboxError, Upload};

/// Documents per request (well under the proxy's 1,000).
pub const BATCH: usize = 100;
/// Bytes of documents per request: under the proxy's body limit (4 MiB by default), however long
/// the documents. A document larger than this goes alone.
pub const BATCH_BYTES: usize = 3 * 1024 * 1024;
/// The longest pause between attempts while the proxy is unreachable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Credentials(#[from] FreshError),
    #[error(transparent)]
    Client(ClientError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

impl SyncError {
    /// Worth retrying after a pause.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Client(e) | Self::Credentials(FreshError::Client(e)) => e.is_transient(),
            _ => false,
        }
    }

    /// A stable code for scripts and the UI.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Credentials(FreshError::NotPaired) => "not_paired",
            Self::Credentials(FreshError::PairAgain) => "pair_again",
            Self::Credentials(FreshError::Store(_)) => "credentials",
            Self::Client(ClientError::Unreachable { .. })
            | Self::Credentials(FreshError::Client(ClientError::Unreachable { .. })) => {
                "proxy_unreachable"
            }
            Self::Client(ClientError::Api { code, .. })
            | Self::Credentials(FreshError::Client(ClientError::Api { code, .. })) => code.as_str(),
            Self::Client(ClientError::Protocol(_))
            | Self::Credentials(FreshError::Client(ClientError::Protocol(_))) => "protocol",
            Self::Outbox(OutboxError::NotFound(_)) => "not_found",
            Self::Outbox(OutboxError::NotNow { .. }) => "conflict",
            Self::Outbox(OutboxError::ClientRefInUse { .. }) => "client_ref_in_use",
            Self::Outbox(_) => "outbox",
        }
    }
}

impl From<ClientError> for SyncError {
    fn from(e: ClientError) -> Self {
        if e.is_unpaired() {
            Self::Credentials(FreshError::PairAgain)
        } else {
            Self::Client(e)
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub uploaded: usize,
    pub rejected: usize,
    /// Documents of this outbox an event changed.
    pub changed: usize,
}

/// When [`Syncer::run`] is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The proxy has every document.
    Uploaded,
    /// Every document reached Xero or was refused.
    Delivered,
    /// Never: follow the feed (the desktop app, `outbox --watch`).
    Forever,
}

/// What [`Syncer::run`] reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// After a pass: where the outbox stands.
    Counts(Counts),
    /// The proxy could not be reached (or failed); the next attempt is in `wait`.
    Retrying { wait: Duration, reason: String },
}

pub struct Syncer {
    pub outbox: Arc<Outbox>,
    pub store: Arc<CredentialStore>,
    client: Mutex<Option<ProxyClient>>,
}

impl Syncer {
    pub fn new(outbox: Arc<Outbox>, store: Arc<CredentialStore>) -> Self {
        Self {
            outbox,
            store,
            client: Mutex::new(None),
        }
    }

    /// One HTTP client per proxy URL, reused across calls.
    fn client(&self, creds: &Credentials) -> ProxyClient {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(c) if c.base() == creds.proxy_url.trim_end_matches('/') => c.clone(),
            _ => {
                let c = ProxyClient::new(&creds.proxy_url);
                *slot = Some(c.clone());
                c
            }
        }
    }

    /// Runs `call` with fresh credentials; when the proxy says the access token expired (clocks
    /// disagree), refreshes once and runs it again.
    pub async fn authed<T, F, Fut>(&self, call: F) -> Result<T, SyncError>
    where
        F: Fn(ProxyClient, Credentials) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let creds = self.store.fresh().await?;
        match call(self.client(&creds), creds.clone()).await {
            Err(e) if e.code() == Some(ErrorCode::TokenExpired) => {
                let renewed = self.store.refresh(&creds).await?;
                Ok(call(self.client(&renewed), renewed).await?)
            }
            other => Ok(other?),
        }
    }

    /// Sends every pending document, oldest first, in batches of one kind (so an invoice goes
    /// before a payment of it saved later).
    pub async fn upload(&self) -> Result<Pass, SyncError> {
        let mut pass = Pass::default();
        loop {
            let pending = self.outbox.pending(BATCH)?;
            let Some(first) = pending.first() else {
                return Ok(pass);
            };
            let kind = first.kind;
            let mut bytes = 0;
            let run: Vec<_> = pending
                .iter()
                .take_while(|e| e.kind == kind)
                .enumerate()
                .take_while(|(i, e)| {
                    bytes += e.body.to_string().len() + 1;
                    *i == 0 || bytes <= BATCH_BYTES
                })
                .map(|(_, e)| e)
                .collect();
            let bodies: Vec<Value> = run.iter().map(|e| e.body.clone()).collect();
            let bodies = &bodies;
            let (result, organisation) = self
                .authed(|client, creds| async move {
                    let answer = client.push(&creds.access_token, kind, bodies).await?;
                    Ok((answer, creds.connection))
                })
                .await?;
            // The organisation they went to, with its short code as last heard (pairing's answer
            // may predate the proxy reading it).
            let short_code = organisation.short_code.clone().or_else(|| {
                self.known_connection()
                    .filter(|k| k.tenant_id == organisation.tenant_id)
                    .and_then(|k| k.short_code)
            });
            let mut answers = Vec::with_capacity(run.len());
            for item in result.items {
                let Some(entry) = run.get(item.index) else {
                    continue;
                };
                let answer = match item.outcome {
                    Outcome::Accepted => {
                        pass.uploaded += 1;
                        Upload::Accepted(item.document.map(Box::new))
                    }
                    Outcome::Rejected => {
                        pass.rejected += 1;
                        Upload::Rejected(problems_message(&item.problems))
                    }
                };
                answers.push((entry.seq, answer));
            }
            if answers.is_empty() {
                // An answer that names none of the batch would loop forever: stop here.
                return Err(SyncError::Client(ClientError::Protocol(
                    "the proxy's answer to a batch named none of its documents".into(),
                )));
            }
            self.outbox.uploaded(
                &answers,
                Some((&organisation.organisation_name, short_code.as_deref())),
            )?;
        }
    }

    /// Reads the event feed from the stored cursor into the outbox, waiting up to `wait` seconds
    /// for the first event when there is none yet.
    pub async fn pull(&self, wait: u64) -> Result<usize, SyncError> {
        let mut changed = 0;
        let mut wait = wait;
        loop {
            let after = self.outbox.cursor()?;
            let page = self
                .authed(|client, creds| async move {
                    client.events(&creds.access_token, after, wait).await
                })
                .await?;
            // Documents' states; a connection's new status is read with `status` (events of kinds
            // this device does not know are skipped, the cursor moving past them all the same).
            let events: Vec<_> = page
                .events
                .iter()
                .filter_map(|e| e.document.as_ref().map(|d| (e.seq, d)))
                .collect();
            changed += self.outbox.apply(&events, page.next.max(after))?;
            if page.events.len() < 500 {
                return Ok(changed);
            }
            wait = 0;
        }
    }

    /// Sends what is pending, then reads what happened, waiting up to `wait` seconds for news.
    pub async fn pass(&self, wait: u64) -> Result<Pass, SyncError> {
        let mut pass = self.upload().await?;
        self.send_voids().await?;
        pass.changed = if wait == 0 {
            self.pull(0).await?
        } else {
            // A long-poll of the feed. A document saved meanwhile by another process on this
            // device (the CLI beside the app, a second terminal) ends it, so the next pass sends
            // the document now rather than when the poll ends. Dropping the poll loses nothing:
            // the feed's cursor moves only with the events applied, and an answer is applied
            // within one poll of this future.
            tokio::select! {
                changed = self.pull(wait) => changed?,
                () = self.saved_meanwhile() => 0,
            }
        };
        self.outbox
            .set_meta("last_sync_at", &chrono::Utc::now().to_rfc3339())?;
        Ok(pass)
    }

    /// Returns once a document waits to be sent, looking twice a second.
    async fn saved_meanwhile(&self) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if self.outbox.has_pending().unwrap_or(false) {
                return;
            }
        }
    }

    /// The connection as the proxy reports it (kept, for when the proxy cannot be reached).
    pub async fn connection(&self) -> Result<ConnectionInfo, SyncError> {
        let info = self
            .authed(|client, creds| async move { client.connection(&creds.access_token).await })
            .await?;
        self.remember_connection(&info)?;
        Ok(info)
    }

    /// The device's credentials for `proxy_url`, fresh, while it is paired there: what a new
    /// pairing sends to show the device itself asks (so it may be moved). What the device saved
    /// while paired is sent first (best effort), so it goes to the organisation it was saved for,
    /// not to the one the device may move to.
    pub async fn current_for(&self, proxy_url: &str) -> Option<Credentials> {
        let current = self
            .store
            .fresh()
            .await
            .ok()
            .filter(|c| c.proxy_url == proxy_url)?;
        // A failure leaves them waiting; they then go wherever the device is paired next.
        let _ = self.upload().await;
        Some(current)
    }

    /// Every device paired with the organisation (the ones a disconnect stops).
    pub async fn devices(&self) -> Result<Vec<ledgerlink_wire::PairedDevice>, SyncError> {
        let list: ledgerlink_wire::DeviceList = self
            .authed(|client, creds| async move {
                client
                    .call(Method::GET, "/v1/devices", &creds.access_token, None::<&()>)
                    .await
            })
            .await?;
        Ok(list.devices)
    }

    /// Disconnects the organisation from Xero, for every device of it (this one's credentials
    /// end with it); answers, and keeps, the connection as it is then.
    pub async fn disconnect(&self) -> Result<ConnectionInfo, SyncError> {
        let info: ConnectionInfo = self
            .authed(|client, creds| async move {
                client
                    .call(
                        Method::DELETE,
                        "/v1/connection?confirm=true",
                        &creds.access_token,
                        None::<&()>,
                    )
                    .await
            })
            .await?;
        self.remember_connection(&info)?;
        Ok(info)
    }

    /// Keeps what the proxy last said of the connection.
    pub fn remember_connection(&self, info: &ConnectionInfo) -> Result<(), OutboxError> {
        self.outbox.set_meta(
            "connection",
            &serde_json::to_string(info).expect("connection info serializes"),
        )
    }

    /// What the device last heard of its connection: from the proxy, or else from pairing.
    /// `None` when it is not paired.
    pub fn known_connection(&self) -> Option<ConnectionInfo> {
        let heard = self
            .outbox
            .meta("connection")
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str::<Option<ConnectionInfo>>(&t).ok())
            .flatten();
        heard.or_else(|| self.store.load().ok().flatten().map(|c| c.connection))
    }

    /// `GET /v1/mappings`: the mappings and, with `offered`, the organisation's accounts and tax
    /// rates. A full answer is kept in the outbox: totals are worked out from it offline.
    pub async fn read_mappings(&self, offered: bool, refresh: bool) -> Result<Value, SyncError> {
        let path = format!("/v1/mappings?offered={offered}&refresh={refresh}");
        let path = &path;
        let answer: Value = self
            .authed(|client, creds| async move {
                client
                    .call(Method::GET, path, &creds.access_token, None::<&()>)
                    .await
            })
            .await?;
        if offered {
            self.outbox.set_meta("mappings", &answer.to_string())?;
        }
        Ok(answer)
    }

    /// `PUT /v1/mappings` (refused with every problem when they do not fit the books).
    pub async fn write_mappings(&self, mappings: &Mappings) -> Result<(), SyncError> {
        self.authed(|client, creds| async move {
            client
                .call::<Value>(
                    Method::PUT,
                    "/v1/mappings",
                    &creds.access_token,
                    Some(mappings),
                )
                .await
        })
        .await
        .map(|_| ())
    }

    /// The organisation's contacts whose name holds `search` (`GET /v1/contacts`).
    pub async fn contacts(
        &self,
        search: &str,
    ) -> Result<ledgerlink_wire::documents::ContactList, SyncError> {
        let mut url = reqwest::Url::parse("http://proxy/v1/contacts").expect("a valid URL");
        url.query_pairs_mut().append_pair("q", search);
        let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        let path = &path;
        self.authed(|client, creds| async move {
            client
                .call(Method::GET, path, &creds.access_token, None::<&()>)
                .await
        })
        .await
    }

    /// The last full mappings answer kept by [`Syncer::read_mappings`].
    pub fn cached_mappings(&self) -> Option<Value> {
        self.outbox
            .meta("mappings")
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str(&t).ok())
    }

    /// Unpairs the device at the proxy and forgets its credentials. Already unpaired elsewhere:
    /// forgetting them is all there is left to do. Documents not yet sent stay in the outbox.
    pub async fn unpair(&self) -> Result<(), SyncError> {
        let result = self
            .authed(|client, creds| async move {
                client.delete(&creds.access_token, "/v1/device").await
            })
            .await;
        match result {
            Ok(()) | Err(SyncError::Credentials(FreshError::PairAgain)) => {}
            Err(e) => return Err(e),
        }
        self.store
            .delete()
            .map_err(|e| SyncError::Credentials(FreshError::Store(e)))?;
        Ok(self.outbox.set_meta("connection", "null")?)
    }

    /// Passes until `until` holds, backing off while the proxy is unreachable; stops on an error
    /// that waiting will not fix (the device was unpaired, the outbox cannot be written).
    pub async fn run(
        &self,
        until: Until,
        mut progress: impl FnMut(Progress),
    ) -> Result<Counts, SyncError> {
        let mut failures: u32 = 0;
        let done = |c: &Counts| match until {
            Until::Uploaded => c.unsent() == 0,
            Until::Delivered => c.in_flight() == 0,
            Until::Forever => false,
        };
        let mut first = true;
        loop {
            let before = self.outbox.counts()?;
            // With nothing left to send, wait on the feed (long-poll): an event wakes it at once.
            // The first pass never waits, so its news comes at once.
            let wait =
                if !first && until != Until::Uploaded && before.unsent() == 0 && !done(&before) {
                    20
                } else {
                    0
                };
            first = false;
            match self.pass(wait).await {
                Ok(_) => {
                    failures = 0;
                    let counts = self.outbox.counts()?;
                    progress(Progress::Counts(counts));
                    if done(&counts) {
                        return Ok(counts);
                    }
                }
                Err(e) if e.is_transient() => {
                    let wait = backoff(failures);
                    failures = failures.saturating_add(1);
                    progress(Progress::Retrying {
                        wait,
                        reason: e.to_string(),
                    });
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// 1 s, 2 s, 4 s ... up to [`MAX_BACKOFF`], each between half and all of it (jitter), so many
/// tills coming back at once do not arrive together.
pub fn backoff(failures: u32) -> Duration {
    let full = Duration::from_secs(1u64 << failures.min(5)).min(MAX_BACKOFF);
    full.mul_f64(rand::random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_thirty_seconds_with_jitter() {
        for failures in 0..10 {
            let full = Duration::from_secs(1u64 << failures.min(5)).min(MAX_BACKOFF);
            let b = backoff(failures);
            assert!(b >= full / 2 && b <= full, "{failures}: {b:?}");
        }
        assert!(backoff(40) <= MAX_BACKOFF);
    }
}
