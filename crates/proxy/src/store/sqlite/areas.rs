//! The SQLite backend for async callers: each call of [`SqliteStore`] runs on tokio's blocking
//! pool, so the async workers never wait on disk.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ledgerlink_wire::documents::DocumentKind;
use ledgerlink_wire::ConnectionStatus;
use std::sync::Arc;
use uuid::Uuid;

use super::super::*;
use super::SqliteStore;

/// [`SqliteStore`] behind the async areas.
pub struct SqliteBackend(Arc<SqliteStore>);

impl SqliteBackend {
    pub fn new(store: SqliteStore) -> Self {
        Self(Arc::new(store))
    }

    async fn run<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&SqliteStore) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let store = self.0.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Unavailable(format!("the storage task stopped: {e}")))?
    }
}

impl Backend for SqliteBackend {
    fn keeps_open(&self) -> std::sync::Weak<dyn std::any::Any + Send + Sync> {
        let weak: std::sync::Weak<SqliteStore> = Arc::downgrade(&self.0);
        weak
    }
}

#[async_trait]
impl HealthStore for SqliteBackend {
    async fn ping(&self) -> Result<()> {
        self.run(move |s| s.ping()).await
    }
    async fn writable(&self) -> Result<()> {
        self.run(move |s| s.writable()).await
    }
    async fn release_memory(&self, quiet_for: std::time::Duration) -> Result<bool> {
        self.run(move |s| s.release_memory(quiet_for)).await
    }
    async fn limit_size(&self, max_bytes: Option<u64>) -> Result<u64> {
        self.run(move |s| s.limit_size(max_bytes)).await
    }
    async fn sweep(&self, short: DateTime<Utc>, long: DateTime<Utc>) -> Result<usize> {
        self.run(move |s| s.sweep(short, long)).await
    }
}

#[async_trait]
impl VaultStore for SqliteBackend {
    async fn take_refresh_lease(
        &self,
        id: Uuid,
        holder: Uuid,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>> {
        self.run(move |s| s.take_refresh_lease(id, holder, ttl))
            .await
    }
    async fn end_refresh_lease(&self, id: Uuid, holder: Uuid, epoch: i64) -> Result<()> {
        self.run(move |s| s.end_refresh_lease(id, holder, epoch))
            .await
    }
    async fn key_check(&self) -> Result<Option<Vec<u8>>> {
        self.run(move |s| s.key_check()).await
    }
    async fn put_key_check(&self, sealed: &[u8], now: DateTime<Utc>) -> Result<()> {
        let sealed = sealed.to_vec();
        self.run(move |s| s.put_key_check(&sealed, now)).await
    }
    async fn sealed(&self) -> Result<Vec<Sealed>> {
        self.run(move |s| s.sealed()).await
    }
    async fn insert_token_set(&self, t: &TokenSetRow) -> Result<()> {
        let t = t.clone();
        self.run(move |s| s.insert_token_set(&t)).await
    }
    async fn token_set(&self, id: Uuid) -> Result<Option<TokenSetRow>> {
        self.run(move |s| s.token_set(id)).await
    }
    async fn update_token_set(&self, t: &TokenSetRow, holder: Uuid, epoch: i64) -> Result<bool> {
        let t = t.clone();
        self.run(move |s| s.update_token_set(&t, holder, epoch))
            .await
    }
    async fn delete_token_set(&self, id: Uuid) -> Result<()> {
        self.run(move |s| s.delete_token_set(id)).await
    }
    async fn idle_token_sets(&self, before: DateTime<Utc>) -> Result<Vec<Uuid>> {
        self.run(move |s| s.idle_token_sets(before)).await
    }
}

#[async_trait]
impl PairingStore for SqliteBackend {
    async fn insert_pairing(&self, p: &Pairing) -> Result<()> {
        let p = p.clone();
        self.run(move |s| s.insert_pairing(&p)).await
    }
    async fn pairing(&self, id: Uuid) -> Result<Option<Pairing>> {
        self.run(move |s| s.pairing(id)).await
    }
    async fn pairing_by_user_code(&self, code: &str) -> Result<Option<Pairing>> {
        let code = code.to_string();
        self.run(move |s| s.pairing_by_user_code(&code)).await
    }
    async fn pairing_by_device_code(&self, hash: &[u8]) -> Result<Option<Pairing>> {
        let hash = hash.to_vec();
        self.run(move |s| s.pairing_by_device_code(&hash)).await
    }
    async fn record_poll(&self, id: Uuid, at: DateTime<Utc>, interval_secs: i64) -> Result<()> {
        self.run(move |s| s.record_poll(id, at, interval_secs))
            .await
    }
    async fn deny_pairing(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        self.run(move |s| s.deny_pairing(id, now)).await
    }
    async fn approve_pairing(
        &self,
        pairing: Uuid,
        connection: &ConnectionRow,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Approval> {
        let connection = connection.clone();
        self.run(move |s| s.approve_pairing(pairing, &connection, cap, now))
            .await
    }
    async fn connected_count(&self, provider: &str) -> Result<u32> {
        let provider = provider.to_string();
        self.run(move |s| s.connected_count(&provider)).await
    }
    async fn consume_pairing(
        &self,
        pairing: Uuid,
        device: &DeviceRow,
        access: &DeviceTokenRow,
        refresh: &DeviceTokenRow,
    ) -> Result<Consumed> {
        let device = device.clone();
        let access = access.clone();
        let refresh = refresh.clone();
        self.run(move |s| s.consume_pairing(pairing, &device, &access, &refresh))
            .await
    }
    async fn insert_oauth_state(&self, s: &OAuthState) -> Result<()> {
        let s = s.clone();
        self.run(move |store| store.insert_oauth_state(&s)).await
    }
    async fn oauth_state(&self, hash: &[u8]) -> Result<Option<OAuthState>> {
        let hash = hash.to_vec();
        self.run(move |s| s.oauth_state(&hash)).await
    }
    async fn mark_state_used(&self, hash: &[u8], now: DateTime<Utc>) -> Result<bool> {
        let hash = hash.to_vec();
        self.run(move |s| s.mark_state_used(&hash, now)).await
    }
    async fn insert_choice(&self, c: &PendingChoice) -> Result<()> {
        let c = c.clone();
        self.run(move |s| s.insert_choice(&c)).await
    }
    async fn choice(&self, hash: &[u8]) -> Result<Option<PendingChoice>> {
        let hash = hash.to_vec();
        self.run(move |s| s.choice(&hash)).await
    }
    async fn latest_choice(
        &self,
        browser_hash: &[u8],
        pairing: Option<Uuid>,
    ) -> Result<Option<PendingChoice>> {
        let browser_hash = browser_hash.to_vec();
        self.run(move |s| s.latest_choice(&browser_hash, pairing))
            .await
    }
    async fn mark_choice_used(&self, hash: &[u8], now: DateTime<Utc>) -> Result<bool> {
        let hash = hash.to_vec();
        self.run(move |s| s.mark_choice_used(&hash, now)).await
    }
}

#[async_trait]
impl ConnectionStore for SqliteBackend {
    async fn upsert_connection(&self, c: &ConnectionRow) -> Result<(ConnectionRow, Option<Uuid>)> {
        let c = c.clone();
        self.run(move |s| s.upsert_connection(&c)).await
    }
    async fn connection(&self, id: Uuid) -> Result<Option<ConnectionRow>> {
        self.run(move |s| s.connection(id)).await
    }
    async fn connections(&self) -> Result<Vec<ConnectionRow>> {
        self.run(move |s| s.connections()).await
    }
    async fn connections_using(&self, token_set: Uuid) -> Result<Vec<ConnectionRow>> {
        self.run(move |s| s.connections_using(token_set)).await
    }
    async fn mark_connection(
        &self,
        id: Uuid,
        token_set: Option<Uuid>,
        from: ConnectionStatus,
        to: ConnectionStatus,
        reason: Option<StatusReason>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.run(move |s| s.mark_connection(id, token_set, from, to, reason, now))
            .await
    }
    async fn mark_connections_using(
        &self,
        token_set: Uuid,
        from: ConnectionStatus,
        to: ConnectionStatus,
        reason: Option<StatusReason>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        self.run(move |s| s.mark_connections_using(token_set, from, to, reason, now))
            .await
    }
    async fn connections_to_reprobe(&self) -> Result<Vec<ConnectionRow>> {
        self.run(move |s| s.connections_to_reprobe()).await
    }
    async fn disconnect(
        &self,
        id: Uuid,
        token_set: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.run(move |s| s.disconnect(id, token_set, now)).await
    }
    async fn organisation(&self, connection: Uuid) -> Result<Option<OrganisationRow>> {
        self.run(move |s| s.organisation(connection)).await
    }
    async fn put_organisation(
        &self,
        connection: Uuid,
        org: &OrganisationRow,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let org = org.clone();
        self.run(move |s| s.put_organisation(connection, &org, now))
            .await
    }
}

#[async_trait]
impl DeviceStore for SqliteBackend {
    async fn device(&self, id: Uuid) -> Result<Option<DeviceRow>> {
        self.run(move |s| s.device(id)).await
    }
    async fn devices_on(&self, connection: Uuid) -> Result<Vec<DeviceRow>> {
        self.run(move |s| s.devices_on(connection)).await
    }
    async fn revoke_device(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        self.run(move |s| s.revoke_device(id, now)).await
    }
    async fn touch_device(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        self.run(move |s| s.touch_device(id, now)).await
    }
    async fn device_token(&self, hash: &[u8]) -> Result<Option<DeviceTokenRow>> {
        let hash = hash.to_vec();
        self.run(move |s| s.device_token(&hash)).await
    }
    async fn rotate_refresh(
        &self,
        old: &[u8],
        successor: &[u8],
        access: &DeviceTokenRow,
        refresh: &DeviceTokenRow,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let old = old.to_vec();
        let successor = successor.to_vec();
        let access = access.clone();
        let refresh = refresh.clone();
        self.run(move |s| s.rotate_refresh(&old, &successor, &access, &refresh, now))
            .await
    }
}

#[async_trait]
impl DocumentStore for SqliteBackend {
    async fn insert_documents(&self, docs: &[DocumentRow]) -> Result<Vec<Stored>> {
        let docs = docs.to_vec();
        self.run(move |s| s.insert_documents(&docs)).await
    }
    async fn document_versions(&self, id: Uuid) -> Result<Vec<DocumentVersionRow>> {
        self.run(move |s| s.document_versions(id)).await
    }
    async fn resend_document(&self, device: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<Change> {
        self.run(move |s| s.resend_document(device, id, now)).await
    }
    async fn request_void(&self, device: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<Change> {
        self.run(move |s| s.request_void(device, id, now)).await
    }
    async fn voids(&self, connection: Uuid, limit: usize) -> Result<Vec<DocumentRow>> {
        self.run(move |s| s.voids(connection, limit)).await
    }
    async fn discard_document(
        &self,
        device: Uuid,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Change> {
        let reason = reason.to_string();
        self.run(move |s| s.discard_document(device, id, &reason, now))
            .await
    }
    async fn document(&self, device: Uuid, id: Uuid) -> Result<Option<DocumentRow>> {
        self.run(move |s| s.document(device, id)).await
    }
    async fn document_by_ref(&self, device: Uuid, client_ref: &str) -> Result<Option<DocumentRow>> {
        let client_ref = client_ref.to_string();
        self.run(move |s| s.document_by_ref(device, &client_ref))
            .await
    }
    async fn documents(&self, device: Uuid, filter: &DocumentFilter) -> Result<Vec<DocumentRow>> {
        let filter = filter.clone();
        self.run(move |s| s.documents(device, &filter)).await
    }
    async fn search_documents(&self, search: &DocumentSearch) -> Result<Vec<DocumentRow>> {
        let search = search.clone();
        self.run(move |s| s.search_documents(&search)).await
    }
    async fn queue_summaries(&self) -> Result<std::collections::HashMap<Uuid, QueueSummary>> {
        self.run(move |s| s.queue_summaries()).await
    }
    async fn outbox(
        &self,
        connection: Uuid,
        kind: DocumentKind,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRow>> {
        self.run(move |s| s.outbox(connection, kind, limit, now))
            .await
    }
    async fn connections_with_work(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>> {
        self.run(move |s| s.connections_with_work(now)).await
    }
    async fn requeue_sending_for(&self, lease: &Lease) -> Result<usize> {
        let lease = lease.clone();
        self.run(move |s| s.requeue_sending_for(&lease)).await
    }
    async fn start_bundle(
        &self,
        lease: &Lease,
        bundle: &Bundle,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (lease, bundle) = (lease.clone(), bundle.clone());
        self.run(move |s| s.start_bundle(&lease, &bundle, now))
            .await
    }
    async fn bundle(&self, key: &str) -> Result<Option<Bundle>> {
        let key = key.to_string();
        self.run(move |s| s.bundle(&key)).await
    }
    async fn open_bundles(&self, connection: Uuid, since: DateTime<Utc>) -> Result<Vec<String>> {
        self.run(move |s| s.open_bundles(connection, since)).await
    }
    async fn mark_unknown(&self, lease: &Lease, ids: &[Uuid], now: DateTime<Utc>) -> Result<()> {
        let (lease, ids) = (lease.clone(), ids.to_vec());
        self.run(move |s| s.mark_unknown(&lease, &ids, now)).await
    }
    async fn forget_unknown(&self, lease: &Lease, ids: &[Uuid]) -> Result<()> {
        let (lease, ids) = (lease.clone(), ids.to_vec());
        self.run(move |s| s.forget_unknown(&lease, &ids)).await
    }
    async fn update_documents(
        &self,
        lease: Option<&Lease>,
        updates: &[DocumentUpdate],
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRow>> {
        let (lease, updates) = (lease.cloned(), updates.to_vec());
        self.run(move |s| s.update_documents(lease.as_ref(), &updates, now))
            .await
    }
    async fn documents_by_provider_id(
        &self,
        connection: Uuid,
        provider_id: &str,
    ) -> Result<Vec<DocumentRow>> {
        let provider_id = provider_id.to_string();
        self.run(move |s| s.documents_by_provider_id(connection, &provider_id))
            .await
    }
    async fn record_provider_status(
        &self,
        document: &DocumentRow,
        status: &str,
        body: &EventBody,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let document = document.clone();
        let status = status.to_string();
        let body = body.text();
        self.run(move |s| s.record_provider_status(&document, &status, &body, now))
            .await
    }
}

#[async_trait]
impl EventStore for SqliteBackend {
    async fn record_event(
        &self,
        document: &DocumentRow,
        body: &EventBody,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let document = document.clone();
        let body = body.text();
        self.run(move |s| s.record_event(&document, &body, now))
            .await
    }
    async fn events_after(
        &self,
        device: Uuid,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ledgerlink_wire::documents::EventEntry>> {
        let rows = self
            .run(move |s| s.events_after(device, after, limit))
            .await?;
        Ok(rows
            .iter()
            .map(|(seq, text)| EventBody::entry(*seq, text))
            .collect())
    }
}

#[async_trait]
impl ThrottleStore for SqliteBackend {
    async fn count_attempt(
        &self,
        kind: &str,
        key: &[u8],
        window: i64,
        elapsed: f64,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (kind, key) = (kind.to_string(), key.to_vec());
        self.run(move |s| s.count_attempt(&kind, &key, window, elapsed, limit, now))
            .await
    }
    async fn take_call(
        &self,
        kind: &str,
        key: &str,
        limit: u32,
        window: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let (kind, key) = (kind.to_string(), key.to_string());
        self.run(move |s| s.take_call(&kind, &key, limit, window, now))
            .await
    }
    async fn attempts(&self, kind: &str, key: &[u8], window: i64, elapsed: f64) -> Result<f64> {
        let (kind, key) = (kind.to_string(), key.to_vec());
        self.run(move |s| s.attempts(&kind, &key, window, elapsed))
            .await
    }
    async fn first_sighting(
        &self,
        kind: &str,
        key: &[u8],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (kind, key) = (kind.to_string(), key.to_vec());
        self.run(move |s| s.first_sighting(&kind, &key, until, now))
            .await
    }
    async fn forget_sighting(&self, kind: &str, key: &[u8]) -> Result<()> {
        let (kind, key) = (kind.to_string(), key.to_vec());
        self.run(move |s| s.forget_sighting(&kind, &key)).await
    }
}

#[async_trait]
impl WakeupStore for SqliteBackend {
    /// One process: its own notices are all there is.
    async fn listen(&self, _wake: std::sync::Arc<dyn Fn(Wakeup) + Send + Sync>) {
        std::future::pending::<()>().await;
    }
}

#[async_trait]
impl LeaseStore for SqliteBackend {
    async fn take_lease(
        &self,
        connection: Uuid,
        holder: Uuid,
        ttl: std::time::Duration,
    ) -> Result<Option<Taken>> {
        self.run(move |s| s.take_lease(connection, holder, ttl))
            .await
    }
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
        pacing: Option<&crate::delivery::pacer::Snapshot>,
    ) -> Result<bool> {
        let (lease, pacing) = (lease.clone(), pacing.cloned());
        self.run(move |s| s.renew_lease(&lease, ttl, pacing.as_ref()))
            .await
    }
    async fn release_lease(
        &self,
        lease: &Lease,
        pacing: Option<&crate::delivery::pacer::Snapshot>,
    ) -> Result<()> {
        let (lease, pacing) = (lease.clone(), pacing.cloned());
        self.run(move |s| s.release_lease(&lease, pacing.as_ref()))
            .await
    }
}

#[async_trait]
impl MappingStore for SqliteBackend {
    async fn mappings(
        &self,
        connection: Uuid,
    ) -> Result<Option<ledgerlink_wire::documents::Mappings>> {
        let Some(text) = self.run(move |s| s.mappings(connection)).await? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("the mappings of {connection}: {e}")))
    }
    async fn put_mappings(
        &self,
        connection: Uuid,
        mappings: &ledgerlink_wire::documents::Mappings,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let body = serde_json::to_string(mappings)
            .map_err(|e| StoreError::Failed(format!("the mappings do not serialize: {e}")))?;
        self.run(move |s| s.put_mappings(connection, &body, now))
            .await
    }
    async fn contact_id(&self, connection: Uuid, name_key: &str) -> Result<Option<Uuid>> {
        let name_key = name_key.to_string();
        self.run(move |s| s.contact_id(connection, &name_key)).await
    }
    async fn put_contact_id(&self, connection: Uuid, name_key: &str, id: Uuid) -> Result<()> {
        let name_key = name_key.to_string();
        self.run(move |s| s.put_contact_id(connection, &name_key, id))
            .await
    }
    async fn forget_contact_id(&self, connection: Uuid, name_key: &str) -> Result<()> {
        let name_key = name_key.to_string();
        self.run(move |s| s.forget_contact_id(connection, &name_key))
            .await
    }
    async fn contact_generation(&self, connection: Uuid, name_key: &str) -> Result<u32> {
        let name_key = name_key.to_string();
        self.run(move |s| s.contact_generation(connection, &name_key))
            .await
    }
}

#[async_trait]
impl OperatorStore for SqliteBackend {
    async fn put_login(&self, l: &OperatorLogin) -> Result<()> {
        let l = l.clone();
        self.run(move |s| s.put_login(&l)).await
    }
    async fn take_login(
        &self,
        state_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorLogin>> {
        let h = state_hash.to_vec();
        self.run(move |s| s.take_login(&h, now)).await
    }
    async fn put_session(&self, session: &OperatorSession) -> Result<()> {
        let session = session.clone();
        self.run(move |s| s.put_session(&session)).await
    }
    async fn session(&self, id_hash: &[u8], now: DateTime<Utc>) -> Result<Option<OperatorSession>> {
        let h = id_hash.to_vec();
        self.run(move |s| s.session(&h, now)).await
    }
    async fn end_session(&self, id_hash: &[u8]) -> Result<Option<OperatorSession>> {
        let h = id_hash.to_vec();
        self.run(move |s| s.end_session(&h)).await
    }
}
