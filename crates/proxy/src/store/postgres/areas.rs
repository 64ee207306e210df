//! The store's areas on Postgres. Each method is one transaction; a write that depends on what it
//! read locks the rows it read (`FOR UPDATE`) or is itself the guard (`UPDATE ... WHERE state = ...`),
//! so two replicas doing the same thing at once do it once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledgerlink_wire::documents::{DocumentKind, DocumentState, EventEntry, Mappings};
use ledgerlink_wire::ConnectionStatus;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::super::*;
use super::PostgresStore;

const PAIRING_COLUMNS: &str = "id, device_code_hash, user_code, client_id, device_id, device_name, provider, status, connection_id, created_at, expires_at, interval_secs, last_poll_at, moves_from";
const CONNECTION_COLUMNS: &str = "id, provider, tenant_id, tenant_name, xero_connection_id, token_set_id, status, created_at, updated_at, status_reason";
const DEVICE_COLUMNS: &str =
    "id, name, client_id, connection_id, paired_at, revoked_at, last_seen_at";
const TOKEN_SET_COLUMNS: &str =
    "id, provider, ciphertext, access_expires_at, last_refresh_at, created_at, version";
const DOCUMENT_COLUMNS: &str = "id, device_id, connection_id, kind, client_ref, body, state, xero_id, xero_number, message, attempts, created_at, updated_at, unknown_since, bundle_key, waits_for, version, resends, discard_reason, provider_status";
const CHOICE_COLUMNS: &str =
    "id_hash, pairing_id, browser_hash, token_set_id, tenants, expires_at, used_at";
const TOKEN_COLUMNS: &str =
    "hash, device_id, kind, created_at, expires_at, rotated_at, successor, revoked_at";

/// A queued document `d` that can go now (`$cutoff`: payments whose invoice never came wait this
/// long): see the SQLite backend's `READY`, of which this is the same rule.
fn ready(cutoff: &str) -> String {
    format!(
        "(d.waits_for IS NULL
          OR EXISTS (SELECT 1 FROM documents t WHERE t.device_id = d.device_id AND t.client_ref = d.waits_for
                       AND t.state NOT IN ('queued', 'sending'))
          OR (d.created_at < {cutoff} AND NOT EXISTS (SELECT 1 FROM documents t WHERE t.device_id = d.device_id AND t.client_ref = d.waits_for)))"
    )
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn pairing_row(r: &Row) -> Result<Pairing> {
    let status: String = r.try_get(7)?;
    Ok(Pairing {
        id: r.try_get(0)?,
        device_code_hash: r.try_get(1)?,
        user_code: r.try_get(2)?,
        client_id: r.try_get(3)?,
        device_id: r.try_get(4)?,
        device_name: r.try_get(5)?,
        provider: r.try_get(6)?,
        status: PairingStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("pairing status {status}")))?,
        connection_id: r.try_get(8)?,
        created_at: r.try_get(9)?,
        expires_at: r.try_get(10)?,
        interval_secs: r.try_get(11)?,
        last_poll_at: r.try_get(12)?,
        moves_from: r.try_get(13)?,
    })
}

fn connection_row(r: &Row) -> Result<ConnectionRow> {
    let status: String = r.try_get(6)?;
    let reason: Option<String> = r.try_get(9)?;
    Ok(ConnectionRow {
        id: r.try_get(0)?,
        provider: r.try_get(1)?,
        tenant_id: r.try_get(2)?,
        tenant_name: r.try_get(3)?,
        xero_connection_id: r.try_get(4)?,
        token_set_id: r.try_get(5)?,
        status: ConnectionStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("connection status {status}")))?,
        created_at: r.try_get(7)?,
        updated_at: r.try_get(8)?,
        status_reason: reason.as_deref().and_then(StatusReason::parse),
    })
}

fn device_row(r: &Row) -> Result<DeviceRow> {
    Ok(DeviceRow {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        client_id: r.try_get(2)?,
        connection_id: r.try_get(3)?,
        paired_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
        last_seen_at: r.try_get(6)?,
    })
}

fn token_set_row(r: &Row) -> Result<TokenSetRow> {
    Ok(TokenSetRow {
        id: r.try_get(0)?,
        provider: r.try_get(1)?,
        ciphertext: r.try_get(2)?,
        access_expires_at: r.try_get(3)?,
        last_refresh_at: r.try_get(4)?,
        created_at: r.try_get(5)?,
        version: r.try_get(6)?,
    })
}

fn document_row(r: &Row) -> Result<DocumentRow> {
    let kind: String = r.try_get(3)?;
    let state: String = r.try_get(6)?;
    let count = |i: usize| -> Result<u32> {
        let n: i64 = r.try_get(i)?;
        u32::try_from(n).map_err(|_| corrupt(format!("a count of {n}")))
    };
    Ok(DocumentRow {
        id: r.try_get(0)?,
        device_id: r.try_get(1)?,
        connection_id: r.try_get(2)?,
        kind: DocumentKind::parse(&kind).ok_or_else(|| corrupt(format!("document kind {kind}")))?,
        client_ref: r.try_get(4)?,
        body: r.try_get(5)?,
        state: DocumentState::parse(&state)
            .ok_or_else(|| corrupt(format!("document state {state}")))?,
        provider_id: r.try_get(7)?,
        provider_number: r.try_get(8)?,
        message: r.try_get(9)?,
        attempts: r.try_get(10)?,
        created_at: r.try_get(11)?,
        updated_at: r.try_get(12)?,
        unknown_since: r.try_get(13)?,
        bundle_key: r.try_get(14)?,
        waits_for: r.try_get(15)?,
        version: count(16)?,
        resends: count(17)?,
        discard_reason: r.try_get(18)?,
        provider_status: r.try_get(19)?,
    })
}

fn choice_row(r: &Row) -> Result<PendingChoice> {
    Ok(PendingChoice {
        id_hash: r.try_get(0)?,
        pairing_id: r.try_get(1)?,
        browser_hash: r.try_get(2)?,
        token_set_id: r.try_get(3)?,
        tenants: choices::read(r.try_get(4)?).map_err(corrupt)?,
        expires_at: r.try_get(5)?,
        used_at: r.try_get(6)?,
    })
}

fn token_row(r: &Row) -> Result<DeviceTokenRow> {
    let kind: String = r.try_get(2)?;
    Ok(DeviceTokenRow {
        hash: r.try_get(0)?,
        device_id: r.try_get(1)?,
        kind: if kind == "access" {
            TokenKind::Access
        } else {
            TokenKind::Refresh
        },
        created_at: r.try_get(3)?,
        expires_at: r.try_get(4)?,
        rotated_at: r.try_get(5)?,
        successor: r.try_get(6)?,
        revoked_at: r.try_get(7)?,
    })
}

fn kind_word(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Access => "access",
        TokenKind::Refresh => "refresh",
    }
}

async fn document_by_id(c: &impl GenericClient, id: Uuid) -> Result<DocumentRow> {
    let row = c
        .row(
            &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1"),
            &[&id],
        )
        .await?;
    document_row(&row)
}

/// Statements as this backend runs them: each is prepared once per pooled connection and kept
/// there (deadpool's statement cache), so a call is one round trip to the server rather than two
/// (parse and describe, then bind and execute). Every statement here is a fixed text, so the cache
/// holds a bounded set; their column lists are explicit, so a migration that adds a column does
/// not invalidate a cached statement's result type.
#[async_trait]
trait Prepared {
    async fn run(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64>;
    async fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>>;
    async fn row(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row>;
    async fn maybe_row(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>>;
}

#[async_trait]
impl<C: GenericClient + Sync> Prepared for C {
    async fn run(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let statement = self.prepare_cached(sql).await?;
        Ok(self.execute(&statement, params).await?)
    }

    async fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let statement = self.prepare_cached(sql).await?;
        Ok(self.query(&statement, params).await?)
    }

    async fn row(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        let statement = self.prepare_cached(sql).await?;
        Ok(self.query_one(&statement, params).await?)
    }

    async fn maybe_row(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let statement = self.prepare_cached(sql).await?;
        Ok(self.query_opt(&statement, params).await?)
    }
}

/// The advisory lock event writers take: the events' cursor must only grow in commit order, or a
/// reader that saw a later event would skip an earlier one committed after it. Held to the end of
/// the transaction, it makes events commit in the order of their `seq`. Every writer of events
/// takes it last, in [`Events::commit`], so writers take turns only for their events' insert and
/// their commit: everything before runs side by side.
pub(super) const EVENTS_LOCK: i64 = 0x4c4c_4576_656e_7473; // "LLEvents"

/// The channels other proxies listen on (see [`WakeupStore`]).
pub(super) const EVENTS_CHANNEL: &str = "ledgerlink_events";
pub(super) const OUTBOX_CHANNEL: &str = "ledgerlink_outbox";

/// The events a transaction records, kept until it commits and then written in one statement.
#[derive(Default)]
struct Events {
    /// Something became ready to deliver (a document queued, a connection back).
    outbox: bool,
    connections: Vec<Uuid>,
    devices: Vec<Uuid>,
    documents: Vec<Option<Uuid>>,
    bodies: Vec<String>,
    at: Vec<DateTime<Utc>>,
}

impl Events {
    /// An event for `device` of `connection`, about `document` when it is one.
    fn push(
        &mut self,
        connection: Uuid,
        device: Uuid,
        document: Option<Uuid>,
        body: &EventBody,
        at: DateTime<Utc>,
    ) {
        self.connections.push(connection);
        self.devices.push(device);
        self.documents.push(document);
        self.bodies.push(body.text());
        self.at.push(at);
    }

    /// The document's state as it now is, for its device.
    fn document(&mut self, d: &DocumentRow) {
        self.outbox |= matches!(d.state, DocumentState::Queued | DocumentState::Voiding);
        let body = EventBody::Document(d.view());
        self.push(
            d.connection_id,
            d.device_id,
            Some(d.id),
            &body,
            d.updated_at,
        );
    }

    /// Writes the events and commits `tx`. The lock, the insert and the notice to the other
    /// proxies go to the server together (one round trip: the server runs them in the order
    /// sent), so the lock is held for the insert and the commit only. A notice is delivered when
    /// the transaction commits, and not at all if it does not.
    async fn commit(self, tx: deadpool_postgres::Transaction<'_>) -> Result<()> {
        if !self.bodies.is_empty() {
            let (lock, insert, notify) = futures_util::try_join!(
                tx.prepare_cached("SELECT pg_advisory_xact_lock($1)"),
                tx.prepare_cached(
                    "INSERT INTO events (connection_id, device_id, document_id, body, created_at)
                     SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[])",
                ),
                tx.prepare_cached(
                    "SELECT pg_notify($1, ''), CASE WHEN $2 THEN pg_notify($3, '') END",
                ),
            )?;
            let rows: [&(dyn ToSql + Sync); 5] = [
                &self.connections,
                &self.devices,
                &self.documents,
                &self.bodies,
                &self.at,
            ];
            let notices: [&(dyn ToSql + Sync); 3] =
                [&EVENTS_CHANNEL, &self.outbox, &OUTBOX_CHANNEL];
            futures_util::try_join!(
                tx.execute(&lock, &[&EVENTS_LOCK]),
                tx.execute(&insert, &rows),
                tx.execute(&notify, &notices),
            )?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_device_token(c: &impl GenericClient, t: &DeviceTokenRow) -> Result<()> {
    c.run(
        &format!(
            "INSERT INTO device_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ),
        &[
            &t.hash,
            &t.device_id,
            &kind_word(t.kind),
            &t.created_at,
            &t.expires_at,
            &t.rotated_at,
            &t.successor,
            &t.revoked_at,
        ],
    )
    .await?;
    Ok(())
}

async fn connected_count_in(c: &impl GenericClient, provider: &str) -> Result<u32> {
    let n: i64 = c
        .row(
            "SELECT COUNT(*) FROM connections WHERE provider = $1 AND status != 'disconnected'",
            &[&provider],
        )
        .await?
        .try_get(0)?;
    Ok(n as u32)
}

/// Creates the connection for (provider, tenant) or points the existing one at the new token set
/// (locked while it changes): the stored row and the token set it replaced.
async fn upsert_connection_in(
    c: &impl GenericClient,
    row: &ConnectionRow,
) -> Result<(ConnectionRow, Option<Uuid>)> {
    c.run(
        &format!("INSERT INTO connections ({CONNECTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                  ON CONFLICT (provider, tenant_id) DO NOTHING"),
        &[&row.id, &row.provider, &row.tenant_id, &row.tenant_name, &row.xero_connection_id, &row.token_set_id,
          &row.status.as_str(), &row.created_at, &row.updated_at, &row.status_reason.map(StatusReason::as_str)],
    )
    .await?;
    let old = connection_row(
        &c.row(
            &format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE provider = $1 AND tenant_id = $2 FOR UPDATE"),
            &[&row.provider, &row.tenant_id],
        )
        .await?,
    )?;
    if old.id == row.id {
        return Ok((row.clone(), None));
    }
    c.run(
        "UPDATE connections SET tenant_name = $2, xero_connection_id = $3, token_set_id = $4, status = $5, updated_at = $6, status_reason = $7 WHERE id = $1",
        &[&old.id, &row.tenant_name, &row.xero_connection_id, &row.token_set_id, &row.status.as_str(), &row.updated_at,
          &row.status_reason.map(StatusReason::as_str)],
    )
    .await?;
    let replaced = old.token_set_id.filter(|t| Some(*t) != row.token_set_id);
    Ok((
        ConnectionRow {
            id: old.id,
            created_at: old.created_at,
            ..row.clone()
        },
        replaced,
    ))
}

async fn revoke_tokens_of(c: &impl GenericClient, device: Uuid, now: DateTime<Utc>) -> Result<()> {
    c.run(
        "UPDATE device_tokens SET revoked_at = $2, successor = NULL WHERE device_id = $1 AND revoked_at IS NULL",
        &[&device, &now],
    )
    .await?;
    Ok(())
}

/// Moves connection `id` from `from` to `to` if it is still `from` on `token_set`, telling each of
/// its devices (in `events`). Whether it moved.
#[allow(clippy::too_many_arguments)]
async fn mark_connection_in(
    c: &impl GenericClient,
    events: &mut Events,
    id: Uuid,
    token_set: Option<Uuid>,
    from: ConnectionStatus,
    to: ConnectionStatus,
    reason: Option<StatusReason>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let moved = c
        .run(
            "UPDATE connections SET status = $2, status_reason = $3, updated_at = $4
             WHERE id = $1 AND token_set_id IS NOT DISTINCT FROM $5 AND status = $6",
            &[
                &id,
                &to.as_str(),
                &reason.map(StatusReason::as_str),
                &now,
                &token_set,
                &from.as_str(),
            ],
        )
        .await?;
    if moved != 1 {
        return Ok(false);
    }
    // Connected again: what waited for it can go.
    events.outbox |= to == ConnectionStatus::Connected;
    let body = EventBody::Connection(to);
    for device in c
        .rows(
            "SELECT id FROM devices WHERE connection_id = $1 AND revoked_at IS NULL",
            &[&id],
        )
        .await?
    {
        events.push(id, device.try_get(0)?, None, &body, now);
    }
    Ok(true)
}

/// Refuses a delivery write whose lease another proxy has taken since. The row is locked shared,
/// so a take (which updates it) waits for this transaction: a write that passed the check commits
/// before the new holder starts.
async fn fenced(c: &impl GenericClient, lease: &Lease) -> Result<()> {
    let held = c
        .maybe_row(
            "SELECT 1 FROM delivery_leases WHERE connection_id = $1 AND holder = $2 AND epoch = $3 AND NOT released FOR SHARE",
            &[&lease.connection, &lease.holder, &lease.epoch],
        )
        .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Fenced),
    }
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pacing_text(pacing: Option<&crate::delivery::pacer::Snapshot>) -> Option<String> {
    pacing.map(|p| serde_json::to_string(p).expect("a pacer's state serializes"))
}

/// Deletes a bundle none of whose documents still refers to it: settled, its body is not needed.
/// The documents of `rows` in the order of `ids` (a set-based statement answers in any order);
/// every id must be there.
fn in_order(ids: &[Uuid], rows: Vec<Row>) -> Result<Vec<DocumentRow>> {
    let mut by_id: std::collections::HashMap<Uuid, DocumentRow> = rows
        .iter()
        .map(|r| document_row(r).map(|d| (d.id, d)))
        .collect::<Result<_>>()?;
    ids.iter()
        .map(|id| {
            by_id
                .remove(id)
                .ok_or_else(|| StoreError::Failed(format!("document {id} is not there")))
        })
        .collect()
}

async fn drop_settled_bundle(c: &impl GenericClient, key: &str) -> Result<()> {
    c.run(
        "DELETE FROM bundles WHERE idempotency_key = $1
           AND NOT EXISTS (SELECT 1 FROM documents WHERE bundle_key = $1)",
        &[&key],
    )
    .await?;
    Ok(())
}

impl PostgresStore {
    pub(in crate::store) async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// Runs `act` on the document of `device` (locked), which answers whether it changed it; the
    /// changed document's event goes with it.
    async fn change_document<F>(&self, device: Uuid, id: Uuid, act: F) -> Result<Change>
    where
        F: for<'t> FnOnce(
                &'t deadpool_postgres::Transaction<'t>,
                &'t DocumentRow,
            ) -> futures_util::future::BoxFuture<'t, Result<bool>>
            + Send,
    {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let found = tx
            .maybe_row(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1 AND device_id = $2 FOR UPDATE"),
                &[&id, &device],
            )
            .await?;
        let Some(row) = found.as_ref().map(document_row).transpose()? else {
            return Ok(Change::NotFound);
        };
        if !act(&tx, &row).await? {
            return Ok(Change::Refused(row));
        }
        let row = document_by_id(&tx, id).await?;
        let mut events = Events::default();
        events.document(&row);
        events.commit(tx).await?;
        Ok(Change::Done(row))
    }
}

#[async_trait]
impl HealthStore for PostgresStore {
    async fn ping(&self) -> Result<()> {
        self.client().await?.run("SELECT 1", &[]).await?;
        Ok(())
    }

    /// A write is possible: the server gives a transaction id (refused on a read-only server).
    async fn writable(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.run("SELECT txid_current()", &[]).await?;
        tx.rollback().await?;
        Ok(())
    }

    /// The server holds its own caches: nothing held here to give back.
    async fn release_memory(&self, _quiet_for: std::time::Duration) -> Result<bool> {
        Ok(false)
    }

    /// Postgres has no per-database size cap: a full disk is tested on the server's volume.
    async fn limit_size(&self, _max_bytes: Option<u64>) -> Result<u64> {
        Err(StoreError::Failed(
            "a Postgres database has no size cap to set: fill the server's volume instead".into(),
        ))
    }

    async fn sweep(&self, short: DateTime<Utc>, long: DateTime<Utc>) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut n = 0;
        for sql in [
            "DELETE FROM oauth_states WHERE expires_at < $1",
            "DELETE FROM pending_choices WHERE expires_at < $1",
            "DELETE FROM oauth_states WHERE pairing_id IN (SELECT id FROM pairings WHERE expires_at < $1)",
            "DELETE FROM pending_choices WHERE pairing_id IN (SELECT id FROM pairings WHERE expires_at < $1)",
            "DELETE FROM pairings WHERE expires_at < $1",
            "DELETE FROM throttles WHERE updated_at < $1",
            "DELETE FROM sightings WHERE until < $1",
            "DELETE FROM operator_logins WHERE expires_at < $1",
            "DELETE FROM operator_sessions WHERE expires_at < $1",
            "DELETE FROM bundles WHERE created_at < $1 AND idempotency_key NOT IN (SELECT bundle_key FROM documents WHERE bundle_key IS NOT NULL)",
            // A consent nobody finished: forgotten here, not revoked at the provider.
            "DELETE FROM token_sets WHERE created_at < $1
               AND id NOT IN (SELECT token_set_id FROM connections WHERE token_set_id IS NOT NULL)
               AND id NOT IN (SELECT token_set_id FROM pending_choices)",
        ] {
            n += tx.run(sql, &[&short]).await? as usize;
        }
        n += tx
            .run(
                "DELETE FROM device_tokens WHERE revoked_at < $2 OR rotated_at < $2 OR (kind = 'access' AND expires_at < $1)",
                &[&short, &long],
            )
            .await? as usize;
        tx.commit().await?;
        Ok(n)
    }
}

#[async_trait]
impl VaultStore for PostgresStore {
    async fn take_refresh_lease(
        &self,
        id: Uuid,
        holder: Uuid,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                "INSERT INTO refresh_leases (token_set_id, holder, epoch, expires_at)
                 VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond')
                 ON CONFLICT (token_set_id) DO UPDATE SET holder = EXCLUDED.holder, epoch = refresh_leases.epoch + 1,
                   expires_at = EXCLUDED.expires_at
                 WHERE refresh_leases.expires_at <= now()
                 RETURNING epoch",
                &[&id, &holder, &millis(ttl)],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn end_refresh_lease(&self, id: Uuid, holder: Uuid, epoch: i64) -> Result<()> {
        self.client()
            .await?
            .run(
                "UPDATE refresh_leases SET expires_at = now() WHERE token_set_id = $1 AND holder = $2 AND epoch = $3",
                &[&id, &holder, &epoch],
            )
            .await?;
        Ok(())
    }

    async fn key_check(&self) -> Result<Option<Vec<u8>>> {
        let row = self
            .client()
            .await?
            .maybe_row("SELECT sealed FROM key_check WHERE id = 1", &[])
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn put_key_check(&self, sealed: &[u8], now: DateTime<Utc>) -> Result<()> {
        self.client()
            .await?
            .run(
                "INSERT INTO key_check (id, sealed, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
                &[&sealed, &now],
            )
            .await?;
        Ok(())
    }

    async fn sealed(&self) -> Result<Vec<Sealed>> {
        let client = self.client().await?;
        let mut out = Vec::new();
        for r in client
            .rows("SELECT id, ciphertext FROM token_sets", &[])
            .await?
        {
            out.push(Sealed::TokenSet {
                id: r.try_get(0)?,
                ciphertext: r.try_get(1)?,
            });
        }
        for r in client
            .rows(
                "SELECT hash, successor FROM device_tokens WHERE successor IS NOT NULL",
                &[],
            )
            .await?
        {
            out.push(Sealed::Successor {
                old_hash: r.try_get(0)?,
                ciphertext: r.try_get(1)?,
            });
        }
        for r in client
            .rows("SELECT state_hash, verifier FROM oauth_states", &[])
            .await?
        {
            out.push(Sealed::Verifier {
                state_hash: r.try_get(0)?,
                ciphertext: r.try_get(1)?,
            });
        }
        Ok(out)
    }

    async fn insert_token_set(&self, t: &TokenSetRow) -> Result<()> {
        self.client()
            .await?
            .run(
                &format!("INSERT INTO token_sets ({TOKEN_SET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                &[&t.id, &t.provider, &t.ciphertext, &t.access_expires_at, &t.last_refresh_at, &t.created_at, &t.version],
            )
            .await?;
        Ok(())
    }

    async fn token_set(&self, id: Uuid) -> Result<Option<TokenSetRow>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                &format!("SELECT {TOKEN_SET_COLUMNS} FROM token_sets WHERE id = $1"),
                &[&id],
            )
            .await?;
        row.as_ref().map(token_set_row).transpose()
    }

    async fn update_token_set(&self, t: &TokenSetRow, holder: Uuid, epoch: i64) -> Result<bool> {
        // The lease row is share-locked until the write commits: a proxy taking the lease over
        // waits for it, then re-reads the row and finds the new tokens.
        let n = self
            .client()
            .await?
            .run(
                "WITH lease AS (SELECT 1 FROM refresh_leases WHERE token_set_id = $1 AND holder = $6 AND epoch = $7 FOR SHARE)
                 UPDATE token_sets SET ciphertext = $2, access_expires_at = $3, last_refresh_at = $4, version = version + 1
                 WHERE id = $1 AND version = $5 AND EXISTS (SELECT 1 FROM lease)",
                &[&t.id, &t.ciphertext, &t.access_expires_at, &t.last_refresh_at, &t.version, &holder, &epoch],
            )
            .await?;
        Ok(n == 1)
    }

    async fn delete_token_set(&self, id: Uuid) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.run(
            "DELETE FROM pending_choices WHERE token_set_id = $1",
            &[&id],
        )
        .await?;
        tx.run(
            "UPDATE connections SET token_set_id = NULL WHERE token_set_id = $1",
            &[&id],
        )
        .await?;
        tx.run("DELETE FROM token_sets WHERE id = $1", &[&id])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn idle_token_sets(&self, before: DateTime<Utc>) -> Result<Vec<Uuid>> {
        let rows = self
            .client()
            .await?
            .rows(
                "SELECT DISTINCT t.id FROM token_sets t JOIN connections c ON c.token_set_id = t.id
                 WHERE c.status = 'connected' AND COALESCE(t.last_refresh_at, t.created_at) < $1",
                &[&before],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

#[async_trait]
impl PairingStore for PostgresStore {
    async fn insert_pairing(&self, p: &Pairing) -> Result<()> {
        self.client()
            .await?
            .run(
                &format!("INSERT INTO pairings ({PAIRING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"),
                &[&p.id, &p.device_code_hash, &p.user_code, &p.client_id, &p.device_id, &p.device_name, &p.provider,
                  &p.status.as_str(), &p.connection_id, &p.created_at, &p.expires_at, &p.interval_secs, &p.last_poll_at, &p.moves_from],
            )
            .await?;
        Ok(())
    }

    async fn pairing(&self, id: Uuid) -> Result<Option<Pairing>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                &format!("SELECT {PAIRING_COLUMNS} FROM pairings WHERE id = $1"),
                &[&id],
            )
            .await?;
        row.as_ref().map(pairing_row).transpose()
    }

    async fn pairing_by_user_code(&self, code: &str) -> Result<Option<Pairing>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                &format!("SELECT {PAIRING_COLUMNS} FROM pairings WHERE user_code = $1 ORDER BY created_at DESC LIMIT 1"),
                &[&code],
            )
            .await?;
        row.as_ref().map(pairing_row).transpose()
    }

    async fn pairing_by_device_code(&self, hash: &[u8]) -> Result<Option<Pairing>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                &format!("SELECT {PAIRING_COLUMNS} FROM pairings WHERE device_code_hash = $1"),
                &[&hash],
            )
            .await?;
        row.as_ref().map(pairing_row).transpose()
    }

    async fn record_poll(&self, id: Uuid, at: DateTime<Utc>, interval_secs: i64) -> Result<()> {
        self.client()
            .await?
            .run(
                "UPDATE pairings SET last_poll_at = $2, interval_secs = $3 WHERE id = $1",
                &[&id, &at, &interval_secs],
            )
            .await?;
        Ok(())
    }

    async fn deny_pairing(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .client()
            .await?
            .run(
                "UPDATE pairings SET status = 'denied' WHERE id = $1 AND status = 'pending' AND expires_at > $2",
                &[&id, &now],
            )
            .await?;
        Ok(n == 1)
    }

    async fn approve_pairing(
        &self,
        pairing: Uuid,
        row: &ConnectionRow,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Approval> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(cap) = cap {
            // Approvals of one provider's organisations take turns while the cap is counted.
            tx.run(
                "SELECT pg_advisory_xact_lock(hashtext('ledgerlink cap ' || $1))",
                &[&row.provider],
            )
            .await?;
            let connected: Option<String> = tx
                .maybe_row(
                    "SELECT status FROM connections WHERE provider = $1 AND tenant_id = $2",
                    &[&row.provider, &row.tenant_id],
                )
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            let reconnect = connected.is_some_and(|s| s != ConnectionStatus::Disconnected.as_str());
            if !reconnect && connected_count_in(&tx, &row.provider).await? >= cap {
                return Ok(Approval::AtCap(cap));
            }
        }
        let (stored, replaced) = upsert_connection_in(&tx, row).await?;
        // A device paired with another organisation moves only from the one it proved it is on.
        let elsewhere = tx
            .maybe_row(
                "SELECT p.moves_from, d.connection_id FROM pairings p
                 JOIN devices d ON d.id = p.device_id AND d.revoked_at IS NULL
                 WHERE p.id = $1",
                &[&pairing],
            )
            .await?;
        if let Some(r) = elsewhere {
            let (moves_from, on): (Option<Uuid>, Uuid) = (r.try_get(0)?, r.try_get(1)?);
            if on != stored.id && moves_from != Some(on) {
                return Ok(Approval::DeviceElsewhere); // rolled back
            }
        }
        let approved = tx
            .run(
                "UPDATE pairings SET status = 'approved', connection_id = $2
                 WHERE id = $1 AND status = 'pending' AND expires_at > $3",
                &[&pairing, &stored.id, &now],
            )
            .await?;
        if approved != 1 {
            return Ok(Approval::NotPending); // rolled back
        }
        tx.commit().await?;
        Ok(Approval::Approved(stored, replaced))
    }

    async fn connected_count(&self, provider: &str) -> Result<u32> {
        connected_count_in(&self.client().await?, provider).await
    }

    async fn consume_pairing(
        &self,
        pairing: Uuid,
        d: &DeviceRow,
        access: &DeviceTokenRow,
        refresh: &DeviceTokenRow,
    ) -> Result<Consumed> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let consumed = tx
            .maybe_row(
                "UPDATE pairings SET status = 'consumed' WHERE id = $1 AND status = 'approved' RETURNING moves_from",
                &[&pairing],
            )
            .await?;
        let Some(consumed) = consumed else {
            return Ok(Consumed::NotApproved);
        };
        let moves_from: Option<Uuid> = consumed.try_get(0)?;
        let existing = tx
            .maybe_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1 FOR UPDATE"),
                &[&d.id],
            )
            .await?
            .as_ref()
            .map(device_row)
            .transpose()?;
        if existing.is_some_and(|e| {
            e.revoked_at.is_none()
                && e.connection_id != d.connection_id
                && moves_from != Some(e.connection_id)
        }) {
            return Ok(Consumed::DeviceInUse); // rolled back: the pairing stays approved
        }
        revoke_tokens_of(&tx, d.id, d.paired_at).await?;
        tx.run(
            &format!(
                "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL, NULL)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, client_id = excluded.client_id,
                   connection_id = excluded.connection_id, paired_at = excluded.paired_at, revoked_at = NULL"
            ),
            &[&d.id, &d.name, &d.client_id, &d.connection_id, &d.paired_at],
        )
        .await?;
        insert_device_token(&tx, access).await?;
        insert_device_token(&tx, refresh).await?;
        tx.commit().await?;
        Ok(Consumed::Paired)
    }

    async fn insert_oauth_state(&self, s: &OAuthState) -> Result<()> {
        self.client()
            .await?
            .run(
                "INSERT INTO oauth_states (state_hash, pairing_id, browser_hash, verifier, created_at, expires_at, used_at)
                 VALUES ($1, $2, $3, $4, $5, $6, NULL)",
                &[&s.state_hash, &s.pairing_id, &s.browser_hash, &s.verifier, &s.created_at, &s.expires_at],
            )
            .await?;
        Ok(())
    }

    async fn oauth_state(&self, hash: &[u8]) -> Result<Option<OAuthState>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                "SELECT state_hash, pairing_id, browser_hash, verifier, created_at, expires_at, used_at FROM oauth_states WHERE state_hash = $1",
                &[&hash],
            )
            .await?;
        row.map(|r| {
            Ok(OAuthState {
                state_hash: r.try_get(0)?,
                pairing_id: r.try_get(1)?,
                browser_hash: r.try_get(2)?,
                verifier: r.try_get(3)?,
                created_at: r.try_get(4)?,
                expires_at: r.try_get(5)?,
                used_at: r.try_get(6)?,
            })
        })
        .transpose()
    }

    async fn mark_state_used(&self, hash: &[u8], now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .client()
            .await?
            .run(
                "UPDATE oauth_states SET used_at = $2 WHERE state_hash = $1 AND used_at IS NULL",
                &[&hash, &now],
            )
            .await?;
        Ok(n == 1)
    }

    async fn insert_choice(&self, ch: &PendingChoice) -> Result<()> {
        self.client()
            .await?
            .run(
                &format!("INSERT INTO pending_choices ({CHOICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL)"),
                &[&ch.id_hash, &ch.pairing_id, &ch.browser_hash, &ch.token_set_id, &choices::text(&ch.tenants), &ch.expires_at],
            )
            .await?;
        Ok(())
    }

    async fn choice(&self, hash: &[u8]) -> Result<Option<PendingChoice>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                &format!("SELECT {CHOICE_COLUMNS} FROM pending_choices WHERE id_hash = $1"),
                &[&hash],
            )
            .await?;
        row.as_ref().map(choice_row).transpose()
    }

    async fn latest_choice(
        &self,
        browser_hash: &[u8],
        pairing: Option<Uuid>,
    ) -> Result<Option<PendingChoice>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                &format!("SELECT {CHOICE_COLUMNS} FROM pending_choices WHERE browser_hash = $1 AND ($2::uuid IS NULL OR pairing_id = $2)
                          ORDER BY expires_at DESC LIMIT 1"),
                &[&browser_hash, &pairing],
            )
            .await?;
        row.as_ref().map(choice_row).transpose()
    }

    async fn mark_choice_used(&self, hash: &[u8], now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .client()
            .await?
            .run(
                "UPDATE pending_choices SET used_at = $2 WHERE id_hash = $1 AND used_at IS NULL",
                &[&hash, &now],
            )
            .await?;
        Ok(n == 1)
    }
}

#[async_trait]
impl ConnectionStore for PostgresStore {
    async fn upsert_connection(&self, c: &ConnectionRow) -> Result<(ConnectionRow, Option<Uuid>)> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let out = upsert_connection_in(&tx, c).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn connection(&self, id: Uuid) -> Result<Option<ConnectionRow>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                &format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1"),
                &[&id],
            )
            .await?;
        row.as_ref().map(connection_row).transpose()
    }

    async fn connections(&self) -> Result<Vec<ConnectionRow>> {
        let rows = self
            .client()
            .await?
            .rows(
                &format!("SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY created_at, id"),
                &[],
            )
            .await?;
        rows.iter().map(connection_row).collect()
    }

    async fn connections_using(&self, token_set: Uuid) -> Result<Vec<ConnectionRow>> {
        let rows = self
            .client()
            .await?
            .rows(
                &format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE token_set_id = $1"),
                &[&token_set],
            )
            .await?;
        rows.iter().map(connection_row).collect()
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
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut events = Events::default();
        let moved =
            mark_connection_in(&tx, &mut events, id, token_set, from, to, reason, now).await?;
        events.commit(tx).await?;
        Ok(moved)
    }

    async fn mark_connections_using(
        &self,
        token_set: Uuid,
        from: ConnectionStatus,
        to: ConnectionStatus,
        reason: Option<StatusReason>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let ids: Vec<Uuid> = tx
            .rows(
                "SELECT id FROM connections WHERE token_set_id = $1 ORDER BY id FOR UPDATE",
                &[&token_set],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        let mut moved = 0;
        let mut events = Events::default();
        for id in ids {
            if mark_connection_in(&tx, &mut events, id, Some(token_set), from, to, reason, now)
                .await?
            {
                moved += 1;
            }
        }
        events.commit(tx).await?;
        Ok(moved)
    }

    async fn connections_to_reprobe(&self) -> Result<Vec<ConnectionRow>> {
        let rows = self
            .client()
            .await?
            .rows(
                &format!("SELECT {CONNECTION_COLUMNS} FROM connections
                          WHERE status = 'needs_reconnect' AND status_reason = 'api_refused' AND token_set_id IS NOT NULL"),
                &[],
            )
            .await?;
        rows.iter().map(connection_row).collect()
    }

    async fn disconnect(
        &self,
        id: Uuid,
        token_set: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .run(
                "UPDATE connections SET status = 'disconnected', status_reason = 'disconnected', token_set_id = NULL, updated_at = $2
                 WHERE id = $1 AND token_set_id IS NOT DISTINCT FROM $3",
                &[&id, &now, &token_set],
            )
            .await?;
        if changed != 1 {
            return Ok(false);
        }
        tx.run(
            "UPDATE device_tokens SET revoked_at = $2, successor = NULL
             WHERE revoked_at IS NULL AND device_id IN (SELECT id FROM devices WHERE connection_id = $1)",
            &[&id, &now],
        )
        .await?;
        tx.run(
            "UPDATE devices SET revoked_at = $2 WHERE connection_id = $1 AND revoked_at IS NULL",
            &[&id, &now],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn organisation(&self, connection: Uuid) -> Result<Option<OrganisationRow>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                "SELECT timezone, xero_timezone, short_code, currency FROM organisations WHERE connection_id = $1",
                &[&connection],
            )
            .await?;
        row.map(|r| {
            Ok(OrganisationRow {
                timezone: r.try_get(0)?,
                xero_timezone: r.try_get(1)?,
                short_code: r.try_get(2)?,
                currency: r.try_get(3)?,
            })
        })
        .transpose()
    }

    async fn put_organisation(
        &self,
        connection: Uuid,
        org: &OrganisationRow,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.client()
            .await?
            .run(
                "INSERT INTO organisations (connection_id, timezone, xero_timezone, short_code, currency, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (connection_id) DO UPDATE SET timezone = excluded.timezone,
                   xero_timezone = excluded.xero_timezone, short_code = excluded.short_code,
                   currency = excluded.currency, updated_at = excluded.updated_at",
                &[&connection, &org.timezone, &org.xero_timezone, &org.short_code, &org.currency, &now],
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl DeviceStore for PostgresStore {
    async fn device(&self, id: Uuid) -> Result<Option<DeviceRow>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"),
                &[&id],
            )
            .await?;
        row.as_ref().map(device_row).transpose()
    }

    async fn devices_on(&self, connection: Uuid) -> Result<Vec<DeviceRow>> {
        let rows = self
            .client()
            .await?
            .rows(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE connection_id = $1 ORDER BY paired_at, id"),
                &[&connection],
            )
            .await?;
        rows.iter().map(device_row).collect()
    }

    async fn revoke_device(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        revoke_tokens_of(&tx, id, now).await?;
        tx.run(
            "UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &now],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn touch_device(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        self.client()
            .await?
            .run(
                "UPDATE devices SET last_seen_at = $2 WHERE id = $1",
                &[&id, &now],
            )
            .await?;
        Ok(())
    }

    async fn device_token(&self, hash: &[u8]) -> Result<Option<DeviceTokenRow>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM device_tokens WHERE hash = $1"),
                &[&hash],
            )
            .await?;
        row.as_ref().map(token_row).transpose()
    }

    async fn rotate_refresh(
        &self,
        old: &[u8],
        successor: &[u8],
        access: &DeviceTokenRow,
        refresh: &DeviceTokenRow,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .run(
                "UPDATE device_tokens SET rotated_at = $2, successor = $3
                 WHERE hash = $1 AND kind = 'refresh' AND rotated_at IS NULL AND revoked_at IS NULL",
                &[&old, &now, &successor],
            )
            .await?;
        if changed != 1 {
            return Ok(false);
        }
        insert_device_token(&tx, access).await?;
        insert_device_token(&tx, refresh).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl DocumentStore for PostgresStore {
    async fn insert_documents(&self, docs: &[DocumentRow]) -> Result<Vec<Stored>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The new ones in one statement, and their events in another: a batch is two round trips,
        // not two per document. What was there already is settled one by one below.
        let col = |f: fn(&DocumentRow) -> String| docs.iter().map(f).collect::<Vec<String>>();
        let ids: Vec<Uuid> = docs.iter().map(|d| d.id).collect();
        let devices: Vec<Uuid> = docs.iter().map(|d| d.device_id).collect();
        let connections: Vec<Uuid> = docs.iter().map(|d| d.connection_id).collect();
        let kinds = col(|d| d.kind.as_str().to_string());
        let refs = col(|d| d.client_ref.clone());
        let bodies = col(|d| d.body.clone());
        let states = col(|d| d.state.as_str().to_string());
        let provider_ids: Vec<Option<String>> =
            docs.iter().map(|d| d.provider_id.clone()).collect();
        let numbers: Vec<Option<String>> = docs.iter().map(|d| d.provider_number.clone()).collect();
        let messages: Vec<Option<String>> = docs.iter().map(|d| d.message.clone()).collect();
        let attempts: Vec<i64> = docs.iter().map(|d| d.attempts).collect();
        let created: Vec<DateTime<Utc>> = docs.iter().map(|d| d.created_at).collect();
        let updated: Vec<DateTime<Utc>> = docs.iter().map(|d| d.updated_at).collect();
        let waits: Vec<Option<String>> = docs.iter().map(|d| d.waits_for.clone()).collect();
        let inserted: std::collections::HashSet<Uuid> = tx
            .rows(
                "INSERT INTO documents (id, device_id, connection_id, kind, client_ref, body, state, xero_id, xero_number,
                                        message, attempts, created_at, updated_at, waits_for)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
                                      $8::text[], $9::text[], $10::text[], $11::bigint[], $12::timestamptz[],
                                      $13::timestamptz[], $14::text[])
                 ON CONFLICT (device_id, client_ref) DO NOTHING
                 RETURNING id",
                &[&ids, &devices, &connections, &kinds, &refs, &bodies, &states, &provider_ids, &numbers,
                  &messages, &attempts, &created, &updated, &waits],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        let mut events = Events::default();
        for d in docs.iter().filter(|d| inserted.contains(&d.id)) {
            events.document(d);
        }
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            if inserted.contains(&d.id) {
                out.push(Stored::New(d.view()));
                continue;
            }
            let e = document_row(
                &tx.row(
                    &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE device_id = $1 AND client_ref = $2 FOR UPDATE"),
                    &[&d.device_id, &d.client_ref],
                )
                .await?,
            )?;
            let stored = if e.kind == d.kind && e.body == d.body {
                Stored::Duplicate(e.view())
            } else if e.kind == d.kind && e.state.correctable() {
                tx.run(
                    "INSERT INTO document_versions (document_id, version, body, state, message, created_at, replaced_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&e.id, &i64::from(e.version), &e.body, &e.state.as_str(), &e.message, &e.updated_at, &d.updated_at],
                )
                .await?;
                tx.run(
                    "UPDATE documents SET body = $2, state = 'queued', version = version + 1, resends = 0, provider_status = NULL,
                       xero_id = NULL, xero_number = NULL, message = NULL, attempts = 0, updated_at = $3,
                       unknown_since = NULL, bundle_key = NULL, waits_for = $4, connection_id = $5
                     WHERE id = $1",
                    &[&e.id, &d.body, &d.updated_at, &d.waits_for, &d.connection_id],
                )
                .await?;
                let row = document_by_id(&tx, e.id).await?;
                events.document(&row);
                Stored::Corrected(row.view())
            } else {
                Stored::InUse(e.view())
            };
            out.push(stored);
        }
        events.commit(tx).await?;
        Ok(out)
    }

    async fn document_versions(&self, id: Uuid) -> Result<Vec<DocumentVersionRow>> {
        let rows = self
            .client()
            .await?
            .rows(
                "SELECT version, body, state, message, created_at, replaced_at FROM document_versions
                 WHERE document_id = $1 ORDER BY version",
                &[&id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get(2)?;
                let version: i64 = r.try_get(0)?;
                Ok(DocumentVersionRow {
                    version: version as u32,
                    body: r.try_get(1)?,
                    state: DocumentState::parse(&state)
                        .ok_or_else(|| corrupt(format!("document state {state}")))?,
                    message: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    replaced_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn resend_document(&self, device: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<Change> {
        self.change_document(device, id, move |tx, d| {
            Box::pin(async move {
                if d.state != DocumentState::Failed {
                    return Ok(false);
                }
                let n = tx
                    .run(
                        "UPDATE documents SET state = 'queued', resends = resends + 1, message = NULL, attempts = 0,
                           updated_at = $2, unknown_since = NULL, bundle_key = NULL
                         WHERE id = $1 AND state = 'failed'",
                        &[&id, &now],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }

    async fn request_void(&self, device: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<Change> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let found = tx
            .maybe_row(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1 AND device_id = $2 FOR UPDATE"),
                &[&id, &device],
            )
            .await?;
        let Some(row) = found.as_ref().map(document_row).transpose()? else {
            return Ok(Change::NotFound);
        };
        if row.state != DocumentState::Sent || row.kind != DocumentKind::Invoice {
            return Ok(Change::Refused(row));
        }
        let money = tx
            .maybe_row(
                "SELECT kind, client_ref FROM documents WHERE device_id = $1 AND waits_for = $2
                   AND kind IN ('payment', 'credit_note')
                   AND state NOT IN ('failed', 'rejected', 'discarded', 'voided')
                 ORDER BY created_at LIMIT 1",
                &[&device, &row.client_ref],
            )
            .await?;
        if let Some(m) = money {
            let (kind, r): (String, String) = (m.try_get(0)?, m.try_get(1)?);
            let what = if kind == "payment" {
                "payment"
            } else {
                "refund"
            };
            return Ok(Change::Blocked(
                row,
                format!("the {what} '{r}' from this device is recorded against it, and Xero does not void an invoice money has touched"),
            ));
        }
        tx.run(
            "UPDATE documents SET state = 'voiding', message = NULL, updated_at = $2 WHERE id = $1",
            &[&id, &now],
        )
        .await?;
        let row = document_by_id(&tx, id).await?;
        let mut events = Events::default();
        events.document(&row);
        events.commit(tx).await?;
        Ok(Change::Done(row))
    }

    async fn voids(&self, connection: Uuid, limit: usize) -> Result<Vec<DocumentRow>> {
        let rows = self
            .client()
            .await?
            .rows(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE connection_id = $1 AND state = 'voiding'
                          ORDER BY updated_at, id LIMIT $2"),
                &[&connection, &(limit as i64)],
            )
            .await?;
        rows.iter().map(document_row).collect()
    }

    async fn discard_document(
        &self,
        device: Uuid,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Change> {
        let reason = reason.to_string();
        self.change_document(device, id, move |tx, _| {
            Box::pin(async move {
                let n = tx
                    .run(
                        "UPDATE documents SET state = 'discarded', discard_reason = $2, updated_at = $3
                         WHERE id = $1 AND (state IN ('failed', 'rejected')
                           OR (state = 'queued' AND unknown_since IS NULL AND bundle_key IS NULL))",
                        &[&id, &reason, &now],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }

    async fn document(&self, device: Uuid, id: Uuid) -> Result<Option<DocumentRow>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                &format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1 AND device_id = $2"
                ),
                &[&id, &device],
            )
            .await?;
        row.as_ref().map(document_row).transpose()
    }

    async fn document_by_ref(&self, device: Uuid, client_ref: &str) -> Result<Option<DocumentRow>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE device_id = $1 AND client_ref = $2"),
                &[&device, &client_ref],
            )
            .await?;
        row.as_ref().map(document_row).transpose()
    }

    async fn documents(&self, device: Uuid, f: &DocumentFilter) -> Result<Vec<DocumentRow>> {
        let rows = self
            .client()
            .await?
            .rows(
                &format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE device_id = $1
                            AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR kind = $3)
                            AND ($4::text IS NULL OR client_ref = $4)
                          ORDER BY created_at DESC, id LIMIT $5"
                ),
                &[
                    &device,
                    &f.state.map(|s| s.as_str()),
                    &f.kind.map(|k| k.as_str()),
                    &f.client_ref,
                    &(f.limit.clamp(1, 1000) as i64),
                ],
            )
            .await?;
        rows.iter().map(document_row).collect()
    }

    async fn search_documents(&self, f: &DocumentSearch) -> Result<Vec<DocumentRow>> {
        let rows = self
            .client()
            .await?
            .rows(
                &format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM documents
                      WHERE ($1::uuid IS NULL OR id = $1) AND ($2::uuid IS NULL OR connection_id = $2)
                        AND ($3::text IS NULL OR client_ref = $3)
                        AND ($4::text IS NULL OR strpos(lower(body::jsonb #>> '{{contact,name}}'), lower($4)) > 0)
                        AND ($5::text IS NULL OR state = $5)
                        AND ($6::timestamptz IS NULL OR created_at >= $6) AND ($7::timestamptz IS NULL OR created_at < $7)
                      ORDER BY created_at DESC, id LIMIT $8"
                ),
                &[
                    &f.id,
                    &f.connection,
                    &f.client_ref,
                    &f.contact,
                    &f.state.map(|s| s.as_str()),
                    &f.from,
                    &f.to,
                    &(f.limit.clamp(1, 1000) as i64),
                ],
            )
            .await?;
        rows.iter().map(document_row).collect()
    }

    async fn queue_summaries(&self) -> Result<std::collections::HashMap<Uuid, QueueSummary>> {
        let rows = self
            .client()
            .await?
            .rows(
                "SELECT connection_id, state, count(*), max(updated_at) FROM documents GROUP BY connection_id, state",
                &[],
            )
            .await?;
        let mut out: std::collections::HashMap<Uuid, QueueSummary> = Default::default();
        for r in rows {
            let state: String = r.try_get(1)?;
            let state = DocumentState::parse(&state)
                .ok_or_else(|| corrupt(format!("document state {state}")))?;
            let summary = out.entry(r.try_get(0)?).or_default();
            summary
                .by_state
                .insert(state.as_str().to_string(), r.try_get::<_, i64>(2)? as u64);
            if matches!(
                state,
                DocumentState::Sent | DocumentState::Paid | DocumentState::Voided
            ) {
                let at: Option<DateTime<Utc>> = r.try_get(3)?;
                summary.last_delivered_at = summary.last_delivered_at.max(at);
            }
        }
        Ok(out)
    }

    async fn outbox(
        &self,
        connection: Uuid,
        kind: DocumentKind,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRow>> {
        let rows = self
            .client()
            .await?
            .rows(
                &format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE connection_id = $1 AND state = 'queued' AND kind = $2
                       AND {}
                     ORDER BY created_at, id LIMIT $3",
                    ready("$4")
                ),
                &[&connection, &kind.as_str(), &(limit as i64), &(now - PAYMENT_WAITS_FOR_INVOICE)],
            )
            .await?;
        rows.iter().map(document_row).collect()
    }

    async fn connections_with_work(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>> {
        let rows = self
            .client()
            .await?
            .rows(
                &format!(
                    "SELECT c.id FROM connections c WHERE c.status = 'connected'
                       AND NOT EXISTS (SELECT 1 FROM delivery_leases l WHERE l.connection_id = c.id AND NOT l.released AND l.expires_at > now())
                       AND (EXISTS (SELECT 1 FROM documents d WHERE d.connection_id = c.id AND d.state IN ('voiding', 'sending'))
                            OR EXISTS (SELECT 1 FROM documents d WHERE d.connection_id = c.id AND d.state = 'queued' AND {}))",
                    ready("$1")
                ),
                &[&(now - PAYMENT_WAITS_FOR_INVOICE)],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn requeue_sending_for(&self, lease: &Lease) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        fenced(&tx, lease).await?;
        let n = tx
            .run(
                "UPDATE documents SET state = 'queued', unknown_since = COALESCE(unknown_since, updated_at)
                 WHERE state = 'sending' AND connection_id = $1",
                &[&lease.connection],
            )
            .await?;
        tx.commit().await?;
        Ok(n as usize)
    }

    async fn start_bundle(&self, lease: &Lease, b: &Bundle, now: DateTime<Utc>) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        fenced(&tx, lease).await?;
        let queued: i64 = tx
            .row(
                "SELECT COUNT(*) FROM (SELECT 1 FROM documents WHERE id = ANY($1) AND state = 'queued' FOR UPDATE) q",
                &[&b.members],
            )
            .await?
            .try_get(0)?;
        if queued != b.members.len() as i64 {
            return Ok(false);
        }
        tx.run(
            "INSERT INTO bundles (idempotency_key, connection_id, path, collection, body, members, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING",
            &[&b.key, &b.connection_id, &b.path, &b.collection, &b.body, &b.members, &now],
        )
        .await?;
        // One statement for the whole bundle (a delivery's every call starts one).
        let rows = tx
            .rows(
                &format!("UPDATE documents SET state = 'sending', bundle_key = $2, updated_at = $3 WHERE id = ANY($1) RETURNING {DOCUMENT_COLUMNS}"),
                &[&b.members, &b.key, &now],
            )
            .await?;
        let mut events = Events::default();
        for row in in_order(&b.members, rows)? {
            events.document(&row);
        }
        events.commit(tx).await?;
        Ok(true)
    }

    async fn bundle(&self, key: &str) -> Result<Option<Bundle>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                "SELECT idempotency_key, connection_id, path, collection, body, members FROM bundles WHERE idempotency_key = $1",
                &[&key],
            )
            .await?;
        row.map(|r| {
            Ok(Bundle {
                key: r.try_get(0)?,
                connection_id: r.try_get(1)?,
                path: r.try_get(2)?,
                collection: r.try_get(3)?,
                body: r.try_get(4)?,
                members: r.try_get(5)?,
            })
        })
        .transpose()
    }

    async fn open_bundles(&self, connection: Uuid, since: DateTime<Utc>) -> Result<Vec<String>> {
        let rows = self
            .client()
            .await?
            .rows(
                "SELECT DISTINCT bundle_key FROM documents WHERE connection_id = $1 AND state = 'queued'
                   AND bundle_key IS NOT NULL AND unknown_since > $2",
                &[&connection, &since],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn mark_unknown(&self, lease: &Lease, ids: &[Uuid], now: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        fenced(&tx, lease).await?;
        tx.run(
            "UPDATE documents SET state = 'queued', unknown_since = COALESCE(unknown_since, $2)
             WHERE id = ANY($1) AND state = 'sending' AND connection_id = $3",
            &[&ids, &now, &lease.connection],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn forget_unknown(&self, lease: &Lease, ids: &[Uuid]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        fenced(&tx, lease).await?;
        let keys: Vec<String> = tx
            .rows(
                "UPDATE documents d SET unknown_since = NULL, bundle_key = NULL
                 FROM (SELECT id, bundle_key FROM documents WHERE id = ANY($1) AND state = 'queued' FOR UPDATE) old
                 WHERE d.id = old.id RETURNING old.bundle_key",
                &[&ids],
            )
            .await?
            .iter()
            .filter_map(|r| r.try_get::<_, Option<String>>(0).ok().flatten())
            .collect();
        // The bundles they were in go once nothing refers to them (they were not found).
        for key in keys {
            drop_settled_bundle(&tx, &key).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn update_documents(
        &self,
        lease: Option<&Lease>,
        updates: &[DocumentUpdate],
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRow>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(lease) = lease {
            fenced(&tx, lease).await?;
        }
        let mut bundles = std::collections::BTreeSet::new();
        let mut events = Events::default();
        let mut settled = Vec::with_capacity(updates.len());
        // A delivery's outcome is a bundle's worth of documents: set-based, a few statements for
        // all of them, in runs without a repeated document (a later update of one sees the
        // earlier's result, as if each went on its own).
        let mut start = 0;
        while start < updates.len() {
            let mut seen = std::collections::HashSet::new();
            let end = updates[start..]
                .iter()
                .position(|u| !seen.insert(u.id))
                .map_or(updates.len(), |p| start + p);
            let run = &updates[start..end];
            start = end;
            let ids: Vec<Uuid> = run.iter().map(|u| u.id).collect();
            // Locked in one order, so two writers of the same documents never deadlock.
            for r in tx
                .rows(
                    "SELECT bundle_key FROM documents WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                    &[&ids],
                )
                .await?
            {
                bundles.extend(r.try_get::<_, Option<String>>(0)?);
            }
            // The state rule (`rules::outcome_from`) is the write's guard; it depends on where a
            // document goes, so each target state is its own statement.
            let mut targets: Vec<DocumentState> = run.iter().map(|u| u.state).collect();
            targets.sort_by_key(|s| s.as_str());
            targets.dedup();
            for to in targets {
                let group: Vec<&DocumentUpdate> = run.iter().filter(|u| u.state == to).collect();
                let from: Vec<&str> = rules::outcome_from(to).iter().map(|s| s.as_str()).collect();
                let ids: Vec<Uuid> = group.iter().map(|u| u.id).collect();
                let provider_ids: Vec<Option<&str>> =
                    group.iter().map(|u| u.provider_id.as_deref()).collect();
                let numbers: Vec<Option<&str>> =
                    group.iter().map(|u| u.provider_number.as_deref()).collect();
                let messages: Vec<Option<&str>> =
                    group.iter().map(|u| u.message.as_deref()).collect();
                let attempts: Vec<i64> = group.iter().map(|u| i64::from(u.attempt)).collect();
                tx.run(
                    "UPDATE documents d SET state = $2, xero_id = COALESCE(u.provider_id, d.xero_id),
                       xero_number = COALESCE(u.number, d.xero_number), message = u.message,
                       attempts = d.attempts + u.attempt, updated_at = $3,
                       unknown_since = CASE WHEN $2 IN ('queued', 'sending') THEN d.unknown_since ELSE NULL END,
                       bundle_key = CASE WHEN $2 IN ('queued', 'sending') THEN d.bundle_key ELSE NULL END
                     FROM UNNEST($1::uuid[], $5::text[], $6::text[], $7::text[], $8::bigint[])
                       AS u(id, provider_id, number, message, attempt)
                     WHERE d.id = u.id AND d.state = ANY($4)",
                    &[&ids, &to.as_str(), &now, &from, &provider_ids, &numbers, &messages, &attempts],
                )
                .await?;
            }
            let rows = tx
                .rows(
                    &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ANY($1)"),
                    &[&ids],
                )
                .await?;
            for row in in_order(&ids, rows)? {
                events.document(&row);
                settled.push(row);
            }
        }
        for key in &bundles {
            drop_settled_bundle(&tx, key).await?;
        }
        events.commit(tx).await?;
        Ok(settled)
    }

    async fn documents_by_provider_id(
        &self,
        connection: Uuid,
        provider_id: &str,
    ) -> Result<Vec<DocumentRow>> {
        let rows = self
            .client()
            .await?
            .rows(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE connection_id = $1 AND xero_id = $2"),
                &[&connection, &provider_id],
            )
            .await?;
        rows.iter().map(document_row).collect()
    }

    async fn record_provider_status(
        &self,
        d: &DocumentRow,
        status: &str,
        body: &EventBody,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .run(
                "UPDATE documents SET provider_status = $2 WHERE id = $1 AND provider_status IS DISTINCT FROM $2",
                &[&d.id, &status],
            )
            .await?
            == 1;
        let mut events = Events::default();
        if changed {
            events.push(d.connection_id, d.device_id, Some(d.id), body, now);
        }
        events.commit(tx).await?;
        Ok(changed)
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn record_event(
        &self,
        d: &DocumentRow,
        body: &EventBody,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut events = Events::default();
        events.push(d.connection_id, d.device_id, Some(d.id), body, now);
        events.commit(tx).await?;
        Ok(())
    }

    async fn events_after(
        &self,
        device: Uuid,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventEntry>> {
        let rows = self
            .client()
            .await?
            .rows(
                "SELECT seq, body FROM events WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&device, &after, &(limit as i64)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get(1)?;
                Ok(EventBody::entry(r.try_get(0)?, &text))
            })
            .collect()
    }
}

async fn counted(
    c: &impl GenericClient,
    kind: &str,
    key: &[u8],
    lock: bool,
) -> Result<Option<throttles::Counted>> {
    let sql = if lock {
        "SELECT win, n, prev FROM throttles WHERE kind = $1 AND key = $2 FOR UPDATE"
    } else {
        "SELECT win, n, prev FROM throttles WHERE kind = $1 AND key = $2"
    };
    c.maybe_row(sql, &[&kind, &key])
        .await?
        .map(|r| {
            Ok(throttles::Counted {
                window: r.try_get(0)?,
                n: r.try_get(1)?,
                prev: r.try_get(2)?,
            })
        })
        .transpose()
}

#[async_trait]
impl ThrottleStore for PostgresStore {
    async fn count_attempt(
        &self,
        kind: &str,
        key: &[u8],
        window: i64,
        elapsed: f64,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The first attempt of a key: its row, made by whichever proxy gets there first, is then
        // locked like any other.
        tx.run(
            "INSERT INTO throttles (kind, key, win, n, prev, updated_at) VALUES ($1, $2, $3, 0, 0, $4)
             ON CONFLICT (kind, key) DO NOTHING",
            &[&kind, &key, &window, &now],
        )
        .await?;
        let stored = counted(&tx, kind, key, true).await?;
        let Some(next) = throttles::attempt(stored, window, elapsed, limit) else {
            return Ok(false);
        };
        tx.run(
            "UPDATE throttles SET win = $3, n = $4, prev = $5, updated_at = $6 WHERE kind = $1 AND key = $2",
            &[&kind, &key, &next.window, &next.n, &next.prev, &now],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn first_sighting(
        &self,
        kind: &str,
        key: &[u8],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let row = self
            .client()
            .await?
            .maybe_row(
                "INSERT INTO sightings (kind, key, until) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, key) DO UPDATE SET until = EXCLUDED.until WHERE sightings.until < $4
                 RETURNING 1",
                &[&kind, &key, &until, &now],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn forget_sighting(&self, kind: &str, key: &[u8]) -> Result<()> {
        self.client()
            .await?
            .run(
                "DELETE FROM sightings WHERE kind = $1 AND key = $2",
                &[&kind, &key],
            )
            .await?;
        Ok(())
    }

    async fn take_call(
        &self,
        kind: &str,
        key: &str,
        limit: u32,
        window: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        use crate::store::throttles::{oldest_counted, released_at, slice_of};
        let (current, slice_ms) = slice_of(now, window);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Proxies take turns for a budget: two never both take its last call.
        tx.run(
            "SELECT pg_advisory_xact_lock(hashtext('ledgerlink calls ' || $1 || ' ' || $2))",
            &[&kind, &key],
        )
        .await?;
        tx.run(
            "DELETE FROM call_slices WHERE kind = $1 AND key = $2 AND slice < $3",
            &[&kind, &key, &oldest_counted(current)],
        )
        .await?;
        let row = tx
            .row(
                "SELECT COALESCE(SUM(n), 0)::bigint, MIN(slice) FROM call_slices WHERE kind = $1 AND key = $2",
                &[&kind, &key],
            )
            .await?;
        let (taken, oldest): (i64, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
        let answer = if taken < i64::from(limit) {
            tx.run(
                "INSERT INTO call_slices (kind, key, slice, n) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (kind, key, slice) DO UPDATE SET n = call_slices.n + 1",
                &[&kind, &key, &current],
            )
            .await?;
            None
        } else {
            Some(released_at(oldest.unwrap_or(current), slice_ms))
        };
        tx.commit().await?;
        Ok(answer)
    }

    async fn attempts(&self, kind: &str, key: &[u8], window: i64, elapsed: f64) -> Result<f64> {
        let client = self.client().await?;
        let stored = counted(&client, kind, key, false).await?;
        Ok(throttles::estimate(stored, window, elapsed))
    }
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn take_lease(
        &self,
        connection: Uuid,
        holder: Uuid,
        ttl: std::time::Duration,
    ) -> Result<Option<Taken>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let current = tx
            .maybe_row(
                "SELECT epoch, released, expires_at > now(), pacing FROM delivery_leases WHERE connection_id = $1 FOR UPDATE",
                &[&connection],
            )
            .await?;
        let taken = match current {
            None => {
                let inserted = tx
                    .maybe_row(
                        "INSERT INTO delivery_leases (connection_id, holder, epoch, expires_at)
                         VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond')
                         ON CONFLICT (connection_id) DO NOTHING RETURNING epoch",
                        &[&connection, &holder, &millis(ttl)],
                    )
                    .await?;
                inserted.map(|_| Taken {
                    lease: Lease {
                        connection,
                        holder,
                        epoch: 1,
                    },
                    pacing: None,
                    lost_holder: false,
                })
            }
            Some(row) => {
                let (epoch, released, live): (i64, bool, bool) =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                if live && !released {
                    None
                } else {
                    tx.run(
                        "UPDATE delivery_leases SET holder = $2, epoch = $3, released = false,
                           expires_at = now() + $4 * interval '1 millisecond'
                         WHERE connection_id = $1",
                        &[&connection, &holder, &(epoch + 1), &millis(ttl)],
                    )
                    .await?;
                    let pacing: Option<String> = row.try_get(3)?;
                    Some(Taken {
                        lease: Lease {
                            connection,
                            holder,
                            epoch: epoch + 1,
                        },
                        // A pacing that no longer reads is only lost pacing: start afresh.
                        pacing: pacing.and_then(|p| serde_json::from_str(&p).ok()),
                        lost_holder: !released,
                    })
                }
            }
        };
        tx.commit().await?;
        Ok(taken)
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
        pacing: Option<&crate::delivery::pacer::Snapshot>,
    ) -> Result<bool> {
        let n = self
            .client()
            .await?
            .run(
                "UPDATE delivery_leases SET expires_at = now() + $4 * interval '1 millisecond', pacing = COALESCE($5, pacing)
                 WHERE connection_id = $1 AND holder = $2 AND epoch = $3 AND NOT released",
                &[&lease.connection, &lease.holder, &lease.epoch, &millis(ttl), &pacing_text(pacing)],
            )
            .await?;
        Ok(n == 1)
    }

    async fn release_lease(
        &self,
        lease: &Lease,
        pacing: Option<&crate::delivery::pacer::Snapshot>,
    ) -> Result<()> {
        self.client()
            .await?
            .run(
                "UPDATE delivery_leases SET released = true, expires_at = now(), pacing = COALESCE($4, pacing)
                 WHERE connection_id = $1 AND holder = $2 AND epoch = $3",
                &[&lease.connection, &lease.holder, &lease.epoch, &pacing_text(pacing)],
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl MappingStore for PostgresStore {
    async fn mappings(&self, connection: Uuid) -> Result<Option<Mappings>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                "SELECT body FROM mappings WHERE connection_id = $1",
                &[&connection],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let text: String = row.try_get(0)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| corrupt(format!("the mappings of {connection}: {e}")))
    }

    async fn put_mappings(
        &self,
        connection: Uuid,
        mappings: &Mappings,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let body = serde_json::to_string(mappings)
            .map_err(|e| StoreError::Failed(format!("the mappings do not serialize: {e}")))?;
        self.client()
            .await?
            .run(
                "INSERT INTO mappings (connection_id, body, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (connection_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                &[&connection, &body, &now],
            )
            .await?;
        Ok(())
    }

    async fn contact_id(&self, connection: Uuid, name_key: &str) -> Result<Option<Uuid>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                "SELECT contact_id FROM contact_ids WHERE connection_id = $1 AND name_key = $2",
                &[&connection, &name_key],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn put_contact_id(&self, connection: Uuid, name_key: &str, id: Uuid) -> Result<()> {
        self.client()
            .await?
            .run(
                "INSERT INTO contact_ids (connection_id, name_key, contact_id) VALUES ($1, $2, $3)
                 ON CONFLICT (connection_id, name_key) DO UPDATE SET contact_id = excluded.contact_id",
                &[&connection, &name_key, &id],
            )
            .await?;
        Ok(())
    }

    async fn forget_contact_id(&self, connection: Uuid, name_key: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.run(
            "DELETE FROM contact_ids WHERE connection_id = $1 AND name_key = $2",
            &[&connection, &name_key],
        )
        .await?;
        tx.run(
            "INSERT INTO contact_generations (connection_id, name_key, generation) VALUES ($1, $2, 1)
             ON CONFLICT (connection_id, name_key) DO UPDATE SET generation = contact_generations.generation + 1",
            &[&connection, &name_key],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn contact_generation(&self, connection: Uuid, name_key: &str) -> Result<u32> {
        let row = self
            .client()
            .await?
            .maybe_row(
                "SELECT generation FROM contact_generations WHERE connection_id = $1 AND name_key = $2",
                &[&connection, &name_key],
            )
            .await?;
        let n: i64 = row.map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
        Ok(n as u32)
    }
}

impl Backend for PostgresStore {
    fn keeps_open(&self) -> std::sync::Weak<dyn std::any::Any + Send + Sync> {
        let weak: std::sync::Weak<()> = std::sync::Arc::downgrade(&self.alive);
        weak
    }
}

#[async_trait]
impl OperatorStore for PostgresStore {
    async fn put_login(&self, l: &OperatorLogin) -> Result<()> {
        self.client()
            .await?
            .run(
                "INSERT INTO operator_logins (state_hash, browser_hash, sealed, expires_at) VALUES ($1, $2, $3, $4)",
                &[&l.state_hash, &l.browser_hash, &l.sealed, &l.expires_at],
            )
            .await?;
        Ok(())
    }

    async fn take_login(
        &self,
        state_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorLogin>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                "DELETE FROM operator_logins WHERE state_hash = $1 RETURNING state_hash, browser_hash, sealed, expires_at",
                &[&state_hash],
            )
            .await?;
        let login = row
            .map(|r| -> Result<OperatorLogin> {
                Ok(OperatorLogin {
                    state_hash: r.try_get(0)?,
                    browser_hash: r.try_get(1)?,
                    sealed: r.try_get(2)?,
                    expires_at: r.try_get(3)?,
                })
            })
            .transpose()?;
        Ok(login.filter(|l| l.expires_at > now))
    }

    async fn put_session(&self, s: &OperatorSession) -> Result<()> {
        self.client()
            .await?
            .run(
                "INSERT INTO operator_sessions (id_hash, subject, name, role, csrf, sealed_id_token, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&s.id_hash, &s.subject, &s.name, &s.role, &s.csrf, &s.sealed_id_token, &s.created_at, &s.expires_at],
            )
            .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &[u8], now: DateTime<Utc>) -> Result<Option<OperatorSession>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                "SELECT id_hash, subject, name, role, csrf, sealed_id_token, created_at, expires_at
                   FROM operator_sessions WHERE id_hash = $1 AND expires_at > $2",
                &[&id_hash, &now],
            )
            .await?;
        row.map(|r| operator_session(&r)).transpose()
    }

    async fn end_session(&self, id_hash: &[u8]) -> Result<Option<OperatorSession>> {
        let row = self
            .client()
            .await?
            .maybe_row(
                "DELETE FROM operator_sessions WHERE id_hash = $1
                 RETURNING id_hash, subject, name, role, csrf, sealed_id_token, created_at, expires_at",
                &[&id_hash],
            )
            .await?;
        row.map(|r| operator_session(&r)).transpose()
    }
}

fn operator_session(r: &Row) -> Result<OperatorSession> {
    Ok(OperatorSession {
        id_hash: r.try_get(0)?,
        subject: r.try_get(1)?,
        name: r.try_get(2)?,
        role: r.try_get(3)?,
        csrf: r.try_get(4)?,
        sealed_id_token: r.try_get(5)?,
        created_at: r.try_get(6)?,
        expires_at: r.try_get(7)?,
    })
}
