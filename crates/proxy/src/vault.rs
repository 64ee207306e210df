//! The token vault: every provider's grants encrypted at rest. A grant that expires is refreshed
//! ahead of expiry by one caller at a time (single-flight per token set), through its provider's
//! [`Grants`]; a rotating refresh token is committed before the new access token is handed out. A
//! static grant (a token that never expires) is never refreshed: refused, its connection must be
//! connected again.

use chrono::{DateTime, Duration, Utc};
use ledgerlink_wire::{ConnectionStatus, Secret};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

use crate::clock::Clock;
use crate::crypto::{CryptoError, Keyring};
use crate::providers::{Grant, Grants, TokenError, Tokens};
use crate::settings::RefreshSettings;
use crate::store::{StatusReason, Storage, StoreError, TokenSetRow};

/// A token set in the clear: only ever in memory, only inside the vault.
#[derive(Clone, Serialize, Deserialize)]
struct Plain {
    access_token: String,
    /// `None` for a static grant (stored as a plain string when there is one, as before).
    refresh_token: Option<String>,
    /// The refresh token this one replaced: kept so an operator can see a rotation happened and so a
    /// refresh whose answer was lost can be retried with it inside Xero's grace period.
    previous_refresh_token: Option<String>,
    scope: String,
    auth_event_id: Option<Uuid>,
}

impl fmt::Debug for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plain")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("no token set {0}")]
    NotFound(Uuid),
    #[error("the provider refused the grant: the organisation must be connected again")]
    NeedsReconnect,
    #[error("the provider could not be reached to refresh tokens: {0}")]
    Unavailable(String),
    #[error("the provider refused the refresh: {0}")]
    Rejected(String),
    #[error("no provider '{0}' in this proxy for a stored grant")]
    UnknownProvider(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a token set does not decrypt: {0}")]
    Crypto(#[from] CryptoError),
}

pub struct Vault {
    storage: Storage,
    keyring: Arc<Keyring>,
    /// Each provider's grants, by its name (`xero`).
    grants: HashMap<String, Arc<dyn Grants>>,
    clock: Arc<dyn Clock>,
    settings: RefreshSettings,
    /// One async lock per token set: the single flight.
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    refreshes: AtomicU64,
    /// This proxy, as the holder of refresh leases (the single flight across proxies).
    holder: Uuid,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// How long one proxy may hold the right to refresh a token set: longer than a refresh with its
/// retries takes; a proxy that stops mid-refresh holds it no longer than this.
const REFRESH_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// When an access token living `expires_in` seconds from `now` expires; one that does not expire
/// is given a century (the column is a time, and nothing is ever due to refresh it).
fn expires_at(now: DateTime<Utc>, expires_in: Option<u64>) -> DateTime<Utc> {
    match expires_in {
        Some(secs) => now + Duration::seconds(secs as i64),
        None => now + Duration::days(36_525),
    }
}

pub(crate) fn aad(id: Uuid) -> Vec<u8> {
    format!("ledgerlink:token_set:{id}").into_bytes()
}

impl Vault {
    pub fn new(
        storage: Storage,
        keyring: Arc<Keyring>,
        grants: HashMap<String, Arc<dyn Grants>>,
        clock: Arc<dyn Clock>,
        settings: RefreshSettings,
    ) -> Self {
        Self {
            storage,
            keyring,
            grants,
            clock,
            settings,
            locks: Mutex::new(HashMap::new()),
            refreshes: AtomicU64::new(0),
            holder: Uuid::new_v4(),
            metrics: None,
        }
    }

    /// Counts refreshes by outcome in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count_refresh(&self, provider: &str, outcome: &str) {
        if let Some(m) = &self.metrics {
            crate::metrics::Metrics::count(&m.refreshes, provider, outcome);
        }
    }

    fn grants_for(&self, provider: &str) -> Result<&Arc<dyn Grants>, VaultError> {
        self.grants
            .get(provider)
            .ok_or_else(|| VaultError::UnknownProvider(provider.to_string()))
    }

    /// How many refresh calls this vault has made to providers (for benchmarks and health).
    pub fn refresh_calls(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    fn seal(&self, id: Uuid, plain: &Plain) -> Vec<u8> {
        let json = serde_json::to_vec(plain).expect("a token set serializes");
        self.keyring.seal(&aad(id), &json)
    }

    fn open(&self, row: &TokenSetRow) -> Result<Plain, VaultError> {
        let json = self.keyring.open(&aad(row.id), &row.ciphertext)?;
        serde_json::from_slice(&json)
            .map_err(|e| StoreError::Corrupt(format!("token set {}: {e}", row.id)).into())
    }

    /// Keeps a new token set of `provider` (straight from a consent); answers its id.
    pub async fn store(
        &self,
        provider: ledgerlink_wire::Provider,
        tokens: &Tokens,
    ) -> Result<Uuid, VaultError> {
        let id = Uuid::new_v4();
        let now = self.clock.now();
        let plain = Plain {
            access_token: tokens.access_token.expose().to_string(),
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|t| t.expose().to_string()),
            previous_refresh_token: None,
            scope: tokens.scope.clone(),
            auth_event_id: tokens.consent_id,
        };
        let row = TokenSetRow {
            id,
            provider: provider.as_str().into(),
            ciphertext: self.seal(id, &plain),
            access_expires_at: expires_at(now, tokens.expires_in),
            last_refresh_at: None,
            created_at: now,
            version: 1,
        };
        self.storage.vault().insert_token_set(&row).await?;
        Ok(id)
    }

    async fn read(&self, id: Uuid) -> Result<(TokenSetRow, Plain), VaultError> {
        let row = self
            .storage
            .vault()
            .token_set(id)
            .await?
            .ok_or(VaultError::NotFound(id))?;
        let plain = self.open(&row)?;
        Ok((row, plain))
    }

    fn fresh(&self, row: &TokenSetRow, now: DateTime<Utc>) -> bool {
        row.access_expires_at - Duration::seconds(self.settings.ahead_secs as i64) > now
    }

    fn lock_for(&self, id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default()
            .clone()
    }

    /// A usable access token for the token set, refreshing it first when it is about to expire.
    pub async fn access_token(&self, id: Uuid) -> Result<Secret, VaultError> {
        let (row, plain) = self.read(id).await?;
        if self.fresh(&row, self.clock.now()) {
            return Ok(Secret::new(plain.access_token));
        }
        self.refresh_under_lock(id, None).await
    }

    /// Refreshes because Xero refused `stale` (a 401): unless someone already replaced it.
    pub async fn refresh_after_rejection(
        &self,
        id: Uuid,
        stale: &Secret,
    ) -> Result<Secret, VaultError> {
        self.refresh_under_lock(id, Some(stale.expose().to_string()))
            .await
    }

    /// Refreshes now, whatever the expiry (the idle refresher); a static grant has nothing to
    /// refresh.
    pub async fn force_refresh(&self, id: Uuid) -> Result<(), VaultError> {
        let (row, _) = self.read(id).await?;
        if self.grants_for(&row.provider)?.kind() == Grant::Static {
            return Ok(());
        }
        self.refresh_under_lock(id, Some(String::new()))
            .await
            .map(|_| ())
    }

    /// The current refresh token (a static grant has none).
    pub async fn refresh_token(&self, id: Uuid) -> Result<Secret, VaultError> {
        let (_, plain) = self.read(id).await?;
        plain
            .refresh_token
            .map(Secret::new)
            .ok_or_else(|| VaultError::Rejected("a static grant has no refresh token".into()))
    }

    /// Ends the grant at its provider (its refresh token, or a static grant's token, revoked).
    pub async fn revoke(&self, id: Uuid) -> Result<(), VaultError> {
        let (row, plain) = self.read(id).await?;
        let token = Secret::new(plain.refresh_token.unwrap_or(plain.access_token));
        self.grants_for(&row.provider)?
            .revoke(&token)
            .await
            .map_err(|e| match e {
                TokenError::InvalidGrant => VaultError::NeedsReconnect,
                TokenError::Rejected(m) => VaultError::Rejected(m),
                TokenError::Transient(m) => VaultError::Unavailable(m),
            })
    }

    /// Whether what a caller wanted of a refresh is already so: `force` `None`, the access token
    /// is fresh; `Some(stale)`, it is no longer `stale`; `Some("")` (refresh now), the row moved on
    /// from version `seen`.
    fn done(&self, row: &TokenSetRow, plain: &Plain, force: &Option<String>, seen: i64) -> bool {
        match force {
            None => self.fresh(row, self.clock.now()),
            Some(stale) if !stale.is_empty() => plain.access_token != *stale,
            Some(_) => row.version != seen,
        }
    }

    /// `force`: `None` refreshes only if still due; `Some(stale)` refreshes unless the stored access
    /// token is no longer `stale` (someone else refreshed while we waited).
    ///
    /// One refresh at a time per token set: in this proxy by its lock, across the proxies sharing
    /// the database by a refresh lease (`REFRESH_LEASE` on the database's clock). The lease's
    /// holder calls the provider outside any transaction and writes the rotated tokens; the others
    /// wait for the new row rather than spend the refresh token again.
    async fn refresh_under_lock(
        &self,
        id: Uuid,
        force: Option<String>,
    ) -> Result<Secret, VaultError> {
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        // Re-read under the lock: whoever held it may have refreshed already.
        let (row, plain) = self.read(id).await?;
        let seen = row.version;
        if self.done(&row, &plain, &force, seen) {
            return Ok(Secret::new(plain.access_token));
        }
        let mut wait = std::time::Duration::from_millis(25);
        loop {
            let store = self.storage.vault();
            if let Some(epoch) = store
                .take_refresh_lease(id, self.holder, REFRESH_LEASE)
                .await?
            {
                // Re-read under the lease: the proxy that held it before may have refreshed.
                let (row, plain) = self.read(id).await?;
                let refreshed = if self.done(&row, &plain, &force, seen) {
                    Ok(Secret::new(plain.access_token))
                } else {
                    self.refresh_holding(id, row, plain, epoch).await
                };
                if let Err(e) = store.end_refresh_lease(id, self.holder, epoch).await {
                    tracing::warn!(token_set = %id, error = %e, "cannot let a refresh lease go; it runs out instead");
                }
                return refreshed;
            }
            // Another proxy is refreshing: its tokens will be in the row.
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_millis(500));
            let (row, plain) = self.read(id).await?;
            if self.done(&row, &plain, &force, seen) {
                return Ok(Secret::new(plain.access_token));
            }
        }
    }

    /// The refresh itself, by the holder of the token set's refresh lease `epoch`.
    async fn refresh_holding(
        &self,
        id: Uuid,
        row: TokenSetRow,
        plain: Plain,
        epoch: i64,
    ) -> Result<Secret, VaultError> {
        let grants = self.grants_for(&row.provider)?.clone();
        // A static grant (or one without a refresh token) that was refused cannot be renewed.
        let tokens = match &plain.refresh_token {
            Some(refresh) => {
                self.call_refresh(grants.as_ref(), &Secret::new(refresh.clone()))
                    .await
            }
            None => Err(TokenError::InvalidGrant),
        };
        let tokens = tokens.map_err(|e| match e {
            TokenError::InvalidGrant => VaultError::NeedsReconnect,
            TokenError::Rejected(m) => VaultError::Rejected(m),
            TokenError::Transient(m) => VaultError::Unavailable(m),
        });
        self.count_refresh(
            &row.provider,
            match &tokens {
                Ok(_) => "ok",
                Err(VaultError::NeedsReconnect) => "refused",
                Err(_) => "failed",
            },
        );
        let tokens = match tokens {
            Ok(t) => t,
            Err(VaultError::NeedsReconnect) => {
                tracing::warn!(token_set = %id, provider = %row.provider, "the provider refused the grant; marking its connections needs_reconnect");
                // A refused refresh token never works again; a static grant (HubRise) was refused
                // on a call, which a passing fault at the provider can do: probed again now and
                // then, it recovers on its own if the provider takes it again.
                let reason = match grants.kind() {
                    crate::providers::Grant::Static => StatusReason::ApiRefused,
                    _ => StatusReason::RefreshRefused,
                };
                let now = self.clock.now();
                self.storage
                    .connections()
                    .mark_connections_using(
                        id,
                        ConnectionStatus::Connected,
                        ConnectionStatus::NeedsReconnect,
                        Some(reason),
                        now,
                    )
                    .await?;
                return Err(VaultError::NeedsReconnect);
            }
            Err(e) => return Err(e),
        };
        let now = self.clock.now();
        let next = Plain {
            access_token: tokens.access_token.expose().to_string(),
            // A provider that does not rotate may answer without one: the old one stays.
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|t| t.expose().to_string())
                .or(plain.refresh_token.clone()),
            previous_refresh_token: plain.refresh_token,
            scope: if tokens.scope.is_empty() {
                plain.scope
            } else {
                tokens.scope.clone()
            },
            auth_event_id: plain.auth_event_id,
        };
        let provider = row.provider.clone();
        let updated = TokenSetRow {
            ciphertext: self.seal(id, &next),
            access_expires_at: expires_at(now, tokens.expires_in),
            last_refresh_at: Some(now),
            ..row
        };
        // Commit the rotated refresh token, under the lease, before anyone uses the new access
        // token.
        let seen = updated.version;
        let written = self
            .storage
            .vault()
            .update_token_set(&updated, self.holder, epoch)
            .await?;
        if !written {
            // The refresh outlived its lease and another proxy took it over. Its tokens are the
            // ones to use once written; until then ours work too (the refresh token we spent
            // stays good at the provider for its grace period, for the new holder to spend).
            let (now_stored, theirs) = self.read(id).await?;
            if now_stored.version != seen {
                return Ok(Secret::new(theirs.access_token));
            }
            tracing::warn!(token_set = %id, provider = %provider, "a refresh outlived its lease; its tokens were not kept");
            return Ok(tokens.access_token);
        }
        tracing::info!(token_set = %id, provider = %provider, "refreshed the grant");
        Ok(tokens.access_token)
    }

    /// One refresh, retried with the same refresh token when the answer is lost or Xero fails: if
    /// Xero did rotate before the answer was lost, the old token still works inside its grace period.
    async fn call_refresh(
        &self,
        grants: &dyn Grants,
        refresh_token: &Secret,
    ) -> Result<Tokens, TokenError> {
        let attempts = self.settings.attempts.max(1);
        let mut delay = std::time::Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            self.refreshes.fetch_add(1, Ordering::Relaxed);
            match grants.refresh(refresh_token).await {
                Err(TokenError::Transient(why)) if attempt < attempts => {
                    tracing::warn!(attempt, error = %why, "refresh failed; retrying with the same refresh token");
                    let jitter = rand::random::<u64>() % (delay.as_millis() as u64 / 2 + 1);
                    tokio::time::sleep(delay + std::time::Duration::from_millis(jitter)).await;
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Refreshes every token set in use that has not been refreshed for `idle_refresh_days`, so Xero
    /// never drops one for being unused 60 days. Answers how many were refreshed.
    pub async fn refresh_idle(&self) -> usize {
        let before = self.clock.now() - Duration::days(self.settings.idle_refresh_days as i64);
        let ids = match self.storage.vault().idle_token_sets(before).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "idle refresh: cannot list token sets");
                return 0;
            }
        };
        let mut done = 0;
        for id in ids {
            match self.force_refresh(id).await {
                Ok(()) => done += 1,
                Err(e) => tracing::warn!(token_set = %id, error = %e, "idle refresh failed"),
            }
        }
        done
    }

    /// Forgets a token set (its connections let go of it).
    pub async fn delete(&self, id: Uuid) -> Result<(), VaultError> {
        self.storage.vault().delete_token_set(id).await?;
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The vault over each kind of grant, with a provider that counts what it is asked.
    use super::*;
    use crate::clock::SystemClock;
    use crate::crypto::MasterKey;
    use crate::store::SqliteStore;
    use futures_util::future::BoxFuture;
    use ledgerlink_wire::Provider;
    use std::sync::atomic::AtomicU32;

    struct Counting {
        kind: Grant,
        refreshed: AtomicU32,
        revoked: Mutex<Vec<String>>,
    }

    impl Grants for Counting {
        fn kind(&self) -> Grant {
            self.kind
        }
        fn refresh<'a>(
            &'a self,
            refresh_token: &'a Secret,
        ) -> BoxFuture<'a, Result<Tokens, TokenError>> {
            Box::pin(async move {
                let n = self.refreshed.fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(refresh_token.expose(), format!("refresh-{}", n - 1));
                Ok(Tokens {
                    access_token: Secret::new(format!("access-{n}")),
                    refresh_token: Some(Secret::new(format!("refresh-{n}"))),
                    expires_in: Some(1800),
                    scope: String::new(),
                    consent_id: None,
                })
            })
        }
        fn revoke<'a>(&'a self, token: &'a Secret) -> BoxFuture<'a, Result<(), TokenError>> {
            self.revoked
                .lock()
                .unwrap()
                .push(token.expose().to_string());
            Box::pin(async { Ok(()) })
        }
        fn reaches<'a>(
            &'a self,
            _access: &'a Secret,
            _tenant_id: &'a str,
        ) -> BoxFuture<'a, Result<bool, TokenError>> {
            Box::pin(async { Ok(true) })
        }
    }

    fn vault(kind: Grant) -> (Vault, Arc<Counting>) {
        let grants = Arc::new(Counting {
            kind,
            refreshed: AtomicU32::new(0),
            revoked: Mutex::default(),
        });
        let vault = Vault::new(
            Storage::sqlite(SqliteStore::memory().unwrap()),
            Arc::new(Keyring::new(vec![MasterKey::from_bytes([7; 32])])),
            HashMap::from([(
                Provider::Xero.as_str().to_string(),
                grants.clone() as Arc<dyn Grants>,
            )]),
            Arc::new(SystemClock),
            RefreshSettings::default(),
        );
        (vault, grants)
    }

    #[tokio::test]
    async fn a_static_grant_is_never_refreshed_and_once_refused_needs_connecting_again() {
        let (vault, grants) = vault(Grant::Static);
        let id = vault
            .store(
                Provider::Xero,
                &Tokens {
                    access_token: Secret::new("static-token"),
                    refresh_token: None,
                    expires_in: None,
                    scope: String::new(),
                    consent_id: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            vault.access_token(id).await.unwrap().expose(),
            "static-token"
        );
        vault.force_refresh(id).await.unwrap();
        assert_eq!(vault.refresh_idle().await, 0);
        let refused = vault
            .refresh_after_rejection(id, &Secret::new("static-token"))
            .await;
        assert!(
            matches!(refused, Err(VaultError::NeedsReconnect)),
            "{refused:?}"
        );
        assert_eq!(grants.refreshed.load(Ordering::SeqCst), 0);
        vault.revoke(id).await.unwrap();
        assert_eq!(*grants.revoked.lock().unwrap(), ["static-token"]);
    }

    #[tokio::test]
    async fn a_rotating_grant_is_refreshed_with_the_token_that_replaced_the_last() {
        let (vault, grants) = vault(Grant::RotatingRefresh);
        let id = vault
            .store(
                Provider::Xero,
                &Tokens {
                    access_token: Secret::new("access-0"),
                    refresh_token: Some(Secret::new("refresh-0")),
                    expires_in: Some(1800),
                    scope: "accounting.transactions".into(),
                    consent_id: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(vault.access_token(id).await.unwrap().expose(), "access-0");
        let fresh = vault
            .refresh_after_rejection(id, &Secret::new("access-0"))
            .await
            .unwrap();
        assert_eq!(fresh.expose(), "access-1");
        // Someone else's refusal of a token already replaced refreshes nothing.
        let same = vault
            .refresh_after_rejection(id, &Secret::new("access-0"))
            .await
            .unwrap();
        assert_eq!(same.expose(), "access-1");
        vault.force_refresh(id).await.unwrap();
        assert_eq!(grants.refreshed.load(Ordering::SeqCst), 2);
        vault.revoke(id).await.unwrap();
        assert_eq!(*grants.revoked.lock().unwrap(), ["refresh-2"]);
    }
}
