//! The embedded SQLite backend: WAL, foreign keys, versioned migrations, one connection behind a
//! mutex (SQLite allows one writer at a time anyway).

use chrono::{DateTime, TimeZone, Utc};
use ledgerlink_wire::documents::{DocumentKind, DocumentState};
use ledgerlink_wire::ConnectionStatus;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;
use std::sync::Mutex;
use uuid::Uuid;

use super::*;

mod areas;

pub use areas::SqliteBackend;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        match e.sqlite_error_code() {
            Some(
                DiskFull | SystemIoFailure | DatabaseBusy | DatabaseLocked | CannotOpen | ReadOnly
                | OutOfMemory,
            ) => Self::Unavailable(e.to_string()),
            _ => Self::Failed(e.to_string()),
        }
    }
}

/// Versioned migrations, applied in order, each once.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../../migrations/sqlite/0002_documents.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/sqlite/0003_unknown_outcomes.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/sqlite/0004_bundles.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/sqlite/0005_hardening.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/sqlite/0006_corrections.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/sqlite/0007_credit_notes.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/sqlite/0008_contact_generations.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/sqlite/0009_organisations.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/sqlite/0010_moving_devices.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/sqlite/0011_orders.sql"),
    ),
    (
        12,
        include_str!("../../../migrations/sqlite/0012_provider_status.sql"),
    ),
    (
        13,
        include_str!("../../../migrations/sqlite/0013_organisation_currency.sql"),
    ),
    (
        14,
        include_str!("../../../migrations/sqlite/0014_delivery_leases.sql"),
    ),
    (
        15,
        include_str!("../../../migrations/sqlite/0015_sightings.sql"),
    ),
    (
        16,
        include_str!("../../../migrations/sqlite/0016_operator_sessions.sql"),
    ),
];

/// One writer (SQLite allows one at a time) and a few readers: in WAL mode readers see the last
/// commit and never wait for the writer, so authenticating a request does not queue behind a
/// batch being stored.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
    /// Stops the background checkpointer when the store goes.
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// `<database>.lock`, locked (`flock`) while this store is open: one process per database.
    /// The kernel lets go of it when the process ends, however it ends.
    _lock: Option<std::fs::File>,
    /// Whether the last write failed for want of disk (or I/O), and the once-a-minute warning.
    failing: std::sync::atomic::AtomicBool,
    /// When the last write was made (to release caches once the store is quiet), and whether they
    /// were released since.
    last_write: Mutex<std::time::Instant>,
    released: std::sync::atomic::AtomicBool,
    warned: crate::logs::Every,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

const READERS: usize = 4;

/// Statements as this backend runs them: each prepared once per connection and kept in
/// rusqlite's statement cache, so a push does not parse the same SQL again for every document.
trait Cached {
    fn run<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn one<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn run<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn one<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Statements each connection keeps prepared: more than this backend has, so the hot ones are
/// never pushed out.
const STATEMENT_CACHE: usize = 256;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

fn opt_time(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(time)
}

fn uuid(text: String) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn opt_uuid(text: Option<String>) -> rusqlite::Result<Option<Uuid>> {
    text.map(uuid).transpose()
}

fn status(text: String) -> rusqlite::Result<ConnectionStatus> {
    ConnectionStatus::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("status {text}").into(),
        )
    })
}

impl SqliteStore {
    /// A person's action on one of a device's documents, in one transaction: `act` changes the
    /// row (answering whether its state allowed it); when it did, the change is told to the device
    /// as a `document` event.
    fn change_document(
        &self,
        device: Uuid,
        id: Uuid,
        act: impl FnOnce(&Connection, &DocumentRow) -> rusqlite::Result<bool>,
    ) -> Result<Change> {
        self.write(|c| {
            let tx = c.transaction()?;
            let select = format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1 AND device_id = ?2"
            );
            let keys = params![id.to_string(), device.to_string()];
            let Some(row) = tx.one(&select, keys, document_row).optional()? else {
                return Ok(Change::NotFound);
            };
            if !act(&tx, &row)? {
                return Ok(Change::Refused(row));
            }
            let row = tx.one(&select, keys, document_row)?;
            document_event(&tx, &row)?;
            tx.commit()?;
            Ok(Change::Done(row))
        })
    }

    /// Opens (creating if needed) the database file and brings its schema up to date. Refused when
    /// another process has it open.
    pub fn open(path: &Path) -> Result<Self> {
        let lock = lock(path)?;
        let conn = Connection::open(path)?;
        let mut store = Self::setup(conn)?;
        store._lock = Some(lock);
        // The file lock says no other process has the database open, so the holders of any
        // delivery lease in it have stopped: their leases run out now rather than a lease's
        // length from now. They were not let go, so the next holder still holds back what the
        // stopped one may have sent without recording it.
        store.with(|c| {
            c.run(
                "UPDATE delivery_leases SET expires_at = 0 WHERE released = 0",
                [],
            )
        })?;
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )?;
            reader.busy_timeout(std::time::Duration::from_secs(5))?;
            reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            store.readers.push(Mutex::new(reader));
        }
        // Checkpoints run on a connection of their own, off the request path: a PASSIVE checkpoint
        // copies the WAL into the database while writers carry on, where SQLite's automatic one
        // would make some unlucky commit wait for it. Automatic checkpoints remain, much later, as
        // a backstop.
        store.with(|c| c.pragma_update(None, "wal_autocheckpoint", 20_000))?;
        let checkpointer = Connection::open(path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        // It only copies pages from the WAL into the database: a small cache will do.
        checkpointer.pragma_update(None, "cache_size", -256)?;
        let stop = store.stop.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let warned = crate::logs::Every::minute();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                    match checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        Ok(()) if warned.reported() => {
                            tracing::info!("WAL checkpoints work again");
                            warned.reset();
                        }
                        Ok(()) => {}
                        Err(e) => {
                            if let Some(skipped) = warned.due_counting() {
                                tracing::warn!(error = %e, failed_since_last_warning = skipped, "WAL checkpoint failed");
                            }
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(store)
    }

    /// A private in-memory database, for tests.
    pub fn memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )?;
        let mut conn = conn;
        for &(version, sql) in MIGRATIONS {
            let applied: bool = conn
                .query_row(
                    "SELECT 1 FROM schema_migrations WHERE version = ?1",
                    [version],
                    |_| Ok(true),
                )
                .optional()?
                .unwrap_or(false);
            if applied {
                continue;
            }
            let tx = conn.transaction()?;
            tx.execute_batch(sql).map_err(|e| StoreError::Migration {
                version,
                reason: e.to_string(),
            })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, Utc::now().timestamp_millis()],
            )?;
            tx.commit()?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            readers: Vec::new(),
            next_reader: Default::default(),
            stop: Default::default(),
            _lock: None,
            failing: Default::default(),
            last_write: Mutex::new(std::time::Instant::now()),
            released: Default::default(),
            warned: crate::logs::Every::minute(),
        })
    }

    /// A read on one of the reader connections (the writer for an in-memory database, which
    /// other connections cannot see).
    pub(in crate::store) fn read<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R> {
        if self.readers.is_empty() {
            return self.with(f);
        }
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A free reader if there is one; else wait for the next in turn.
        for i in 0..self.readers.len() {
            if let Ok(mut conn) = self.readers[(start + i) % self.readers.len()].try_lock() {
                return Ok(f(&mut conn)?);
            }
        }
        let mut conn = self.readers[start % self.readers.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Ok(f(&mut conn)?)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>) -> Result<R> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(&mut conn)?)
    }

    /// A write on the writer connection. A write refused for want of disk (or failing I/O) is
    /// remembered, so readiness says so, and warned about at most once a minute.
    fn write<R>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>) -> Result<R> {
        let result = self.with(f);
        self.note(&result);
        *self.last_write.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        self.released
            .store(false, std::sync::atomic::Ordering::Relaxed);
        result
    }

    fn note<R>(&self, result: &Result<R>) {
        use std::sync::atomic::Ordering::Relaxed;
        match result {
            Err(StoreError::Unavailable(why)) => {
                self.failing.store(true, Relaxed);
                if let Some(skipped) = self.warned.due_counting() {
                    tracing::warn!(error = %why, failed_since_last_warning = skipped, "the database refuses writes: devices are told to send again later");
                }
            }
            Ok(_) if self.failing.swap(false, Relaxed) => {
                self.warned.reset();
                tracing::info!("the database takes writes again");
            }
            _ => {}
        }
    }
}

/// Takes `<database>.lock` (`flock`, exclusive): a second proxy on the same database is refused.
/// A file of its own, not the database: closing any descriptor of the database file would drop
/// SQLite's own (POSIX) locks on it.
fn lock(path: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = std::path::PathBuf::from(name);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| StoreError::Unavailable(format!("opening {}: {e}", lock_path.display())))?;
    // A proxy that is just stopping (or a child process it started that has not yet run its
    // program, which briefly shares its descriptors) may hold the lock a moment longer: wait a
    // little before refusing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut locked = file.try_lock();
    while matches!(locked, Err(std::fs::TryLockError::WouldBlock))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
        locked = file.try_lock();
    }
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_string()
            } else {
                format!("process {holder}")
            };
            return Err(StoreError::InUse(format!(
                "the database {} is in use by {who} (it holds {}): run one proxy per SQLite database, or use Postgres to run several",
                path.display(),
                lock_path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StoreError::Unavailable(format!(
                "locking {}: {e}",
                lock_path.display()
            )))
        }
    }
    // Who holds it, for the message a second proxy gets.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

const PAIRING_COLUMNS: &str = "id, device_code_hash, user_code, client_id, device_id, device_name, provider, status, connection_id, created_at, expires_at, interval_secs, last_poll_at, moves_from";

fn pairing_row(r: &Row) -> rusqlite::Result<Pairing> {
    let status_text: String = r.get(7)?;
    Ok(Pairing {
        id: uuid(r.get(0)?)?,
        device_code_hash: r.get(1)?,
        user_code: r.get(2)?,
        client_id: r.get(3)?,
        device_id: uuid(r.get(4)?)?,
        device_name: r.get(5)?,
        provider: r.get(6)?,
        status: PairingStatus::parse(&status_text).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                7,
                rusqlite::types::Type::Text,
                format!("pairing status {status_text}").into(),
            )
        })?,
        connection_id: opt_uuid(r.get(8)?)?,
        created_at: time(r.get(9)?),
        expires_at: time(r.get(10)?),
        interval_secs: r.get(11)?,
        last_poll_at: opt_time(r.get(12)?),
        moves_from: opt_uuid(r.get(13)?)?,
    })
}

const CONNECTION_COLUMNS: &str =
    "id, provider, tenant_id, tenant_name, xero_connection_id, token_set_id, status, created_at, updated_at, status_reason";

fn connection_row(r: &Row) -> rusqlite::Result<ConnectionRow> {
    Ok(ConnectionRow {
        id: uuid(r.get(0)?)?,
        provider: r.get(1)?,
        tenant_id: r.get(2)?,
        tenant_name: r.get(3)?,
        xero_connection_id: opt_uuid(r.get(4)?)?,
        token_set_id: opt_uuid(r.get(5)?)?,
        status: status(r.get(6)?)?,
        created_at: time(r.get(7)?),
        updated_at: time(r.get(8)?),
        status_reason: r
            .get::<_, Option<String>>(9)?
            .as_deref()
            .and_then(StatusReason::parse),
    })
}

const DEVICE_COLUMNS: &str =
    "id, name, client_id, connection_id, paired_at, revoked_at, last_seen_at";

fn device_row(r: &Row) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        id: uuid(r.get(0)?)?,
        name: r.get(1)?,
        client_id: r.get(2)?,
        connection_id: uuid(r.get(3)?)?,
        paired_at: time(r.get(4)?),
        revoked_at: opt_time(r.get(5)?),
        last_seen_at: opt_time(r.get(6)?),
    })
}

fn token_set_row(r: &Row) -> rusqlite::Result<TokenSetRow> {
    Ok(TokenSetRow {
        id: uuid(r.get(0)?)?,
        provider: r.get(1)?,
        ciphertext: r.get(2)?,
        access_expires_at: time(r.get(3)?),
        last_refresh_at: opt_time(r.get(4)?),
        created_at: time(r.get(5)?),
        version: r.get(6)?,
    })
}

const DOCUMENT_COLUMNS: &str =
    // `xero_id` and `xero_number` hold any provider's id and number (as text): named before the
    // provider seam.
    "id, device_id, connection_id, kind, client_ref, body, state, xero_id, xero_number, message, attempts, created_at, updated_at, unknown_since, bundle_key, waits_for, version, resends, discard_reason, provider_status";

fn conversion(what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, what.into())
}

/// Whether `lease` is still its holder's (see the Postgres backend's `fenced`): SQLite has one
/// writer, so nothing takes the lease between this check and the commit.
fn holds(c: &Connection, lease: &Lease) -> rusqlite::Result<bool> {
    c.one(
        "SELECT 1 FROM delivery_leases WHERE connection_id = ?1 AND holder = ?2 AND epoch = ?3 AND released = 0",
        params![lease.connection.to_string(), lease.holder.to_string(), lease.epoch],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

fn counted(
    c: &Connection,
    kind: &str,
    key: &[u8],
) -> rusqlite::Result<Option<super::throttles::Counted>> {
    c.one(
        "SELECT win, n, prev FROM throttles WHERE kind = ?1 AND key = ?2",
        params![kind, key],
        |r| {
            Ok(super::throttles::Counted {
                window: r.get(0)?,
                n: r.get(1)?,
                prev: r.get(2)?,
            })
        },
    )
    .optional()
}

fn pacing_text(pacing: Option<&crate::delivery::pacer::Snapshot>) -> Option<String> {
    pacing.map(|p| serde_json::to_string(p).expect("a pacer's state serializes"))
}

fn document_row(r: &Row) -> rusqlite::Result<DocumentRow> {
    let kind: String = r.get(3)?;
    let state: String = r.get(6)?;
    Ok(DocumentRow {
        id: uuid(r.get(0)?)?,
        device_id: uuid(r.get(1)?)?,
        connection_id: uuid(r.get(2)?)?,
        kind: DocumentKind::parse(&kind)
            .ok_or_else(|| conversion(format!("document kind {kind}")))?,
        client_ref: r.get(4)?,
        body: r.get(5)?,
        state: DocumentState::parse(&state)
            .ok_or_else(|| conversion(format!("document state {state}")))?,
        provider_id: r.get(7)?,
        provider_number: r.get(8)?,
        message: r.get(9)?,
        attempts: r.get(10)?,
        created_at: time(r.get(11)?),
        updated_at: time(r.get(12)?),
        unknown_since: opt_time(r.get(13)?),
        bundle_key: r.get(14)?,
        waits_for: r.get(15)?,
        version: r.get(16)?,
        resends: r.get(17)?,
        discard_reason: r.get(18)?,
        provider_status: r.get(19)?,
    })
}

/// A queued document `d` that can go now (`:cutoff`: the oldest creation time of a payment whose invoice
/// never came that is still waited for): anything that waits for nothing; a payment whose invoice
/// from the same device is past `queued`/`sending` (sent, paid, failed: delivery pays or fails it);
/// a payment whose invoice never came once it has waited long enough (delivery fails it).
const READY: &str = "(d.waits_for IS NULL
     OR EXISTS (SELECT 1 FROM documents t WHERE t.device_id = d.device_id AND t.client_ref = d.waits_for
                  AND t.state NOT IN ('queued', 'sending'))
     OR (d.created_at < :cutoff AND NOT EXISTS (SELECT 1 FROM documents t WHERE t.device_id = d.device_id AND t.client_ref = d.waits_for)))";

fn document_event(tx: &Connection, d: &DocumentRow) -> rusqlite::Result<()> {
    let body = EventBody::Document(d.view()).text();
    tx.run(
        "INSERT INTO events (connection_id, device_id, document_id, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![d.connection_id.to_string(), d.device_id.to_string(), d.id.to_string(), body, ms(d.updated_at)],
    )?;
    Ok(())
}

fn insert_device_token(tx: &Connection, t: &DeviceTokenRow) -> rusqlite::Result<()> {
    tx.run(
        "INSERT INTO device_tokens (hash, device_id, kind, created_at, expires_at, rotated_at, successor, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            t.hash,
            t.device_id.to_string(),
            match t.kind {
                TokenKind::Access => "access",
                TokenKind::Refresh => "refresh",
            },
            ms(t.created_at),
            t.expires_at.map(ms),
            t.rotated_at.map(ms),
            t.successor,
            t.revoked_at.map(ms),
        ],
    )?;
    Ok(())
}

const CHOICE_COLUMNS: &str =
    "id_hash, pairing_id, browser_hash, token_set_id, tenants, expires_at, used_at";

fn choice_row(r: &Row) -> rusqlite::Result<PendingChoice> {
    Ok(PendingChoice {
        id_hash: r.get(0)?,
        pairing_id: uuid(r.get(1)?)?,
        browser_hash: r.get(2)?,
        token_set_id: uuid(r.get(3)?)?,
        tenants: super::choices::read(&r.get::<_, String>(4)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
        })?,
        expires_at: time(r.get(5)?),
        used_at: opt_time(r.get(6)?),
    })
}

fn connected_count_in(c: &Connection, provider: &str) -> rusqlite::Result<u32> {
    c.one(
        "SELECT COUNT(*) FROM connections WHERE provider = ?1 AND status != ?2",
        params![provider, ConnectionStatus::Disconnected.as_str()],
        |r| r.get(0),
    )
}

fn upsert_connection_in(
    tx: &Connection,
    row: &ConnectionRow,
) -> rusqlite::Result<(ConnectionRow, Option<Uuid>)> {
    let existing = tx
        .query_row(
            &format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE provider = ?1 AND tenant_id = ?2"),
            params![row.provider, row.tenant_id],
            connection_row,
        )
        .optional()?;
    Ok(match existing {
        Some(old) => {
            tx.run(
                "UPDATE connections SET tenant_name = ?2, xero_connection_id = ?3, token_set_id = ?4, status = ?5, updated_at = ?6, status_reason = ?7 WHERE id = ?1",
                params![
                    old.id.to_string(),
                    row.tenant_name,
                    row.xero_connection_id.map(|u| u.to_string()),
                    row.token_set_id.map(|u| u.to_string()),
                    row.status.as_str(),
                    ms(row.updated_at),
                    row.status_reason.map(StatusReason::as_str),
                ],
            )?;
            let replaced = old.token_set_id.filter(|t| Some(*t) != row.token_set_id);
            (
                ConnectionRow {
                    id: old.id,
                    created_at: old.created_at,
                    ..row.clone()
                },
                replaced,
            )
        }
        None => {
            tx.run(
                &format!("INSERT INTO connections ({CONNECTION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    row.id.to_string(),
                    row.provider,
                    row.tenant_id,
                    row.tenant_name,
                    row.xero_connection_id.map(|u| u.to_string()),
                    row.token_set_id.map(|u| u.to_string()),
                    row.status.as_str(),
                    ms(row.created_at),
                    ms(row.updated_at),
                    row.status_reason.map(StatusReason::as_str),
                ],
            )?;
            (row.clone(), None)
        }
    })
}

fn revoke_tokens_of(tx: &Connection, device: Uuid, now: DateTime<Utc>) -> rusqlite::Result<()> {
    tx.run(
        "UPDATE device_tokens SET revoked_at = ?2, successor = NULL WHERE device_id = ?1 AND revoked_at IS NULL",
        params![device.to_string(), ms(now)],
    )?;
    Ok(())
}

/// Moves connection `id` from `from` to `to` if it is still `from` on `token_set` (a reconnect in
/// the meantime wins), telling each of its devices with a `connection` event. Whether it moved.
fn mark_connection_in(
    tx: &Connection,
    id: Uuid,
    token_set: Option<Uuid>,
    from: ConnectionStatus,
    to: ConnectionStatus,
    reason: Option<StatusReason>,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let moved = tx.run(
        "UPDATE connections SET status = ?2, status_reason = ?3, updated_at = ?4
         WHERE id = ?1 AND token_set_id IS ?5 AND status = ?6",
        params![
            id.to_string(),
            to.as_str(),
            reason.map(StatusReason::as_str),
            ms(now),
            token_set.map(|t| t.to_string()),
            from.as_str()
        ],
    )?;
    if moved != 1 {
        return Ok(false);
    }
    let body = EventBody::Connection(to).text();
    tx.run(
        "INSERT INTO events (connection_id, device_id, document_id, body, created_at)
         SELECT connection_id, id, NULL, ?2, ?3 FROM devices WHERE connection_id = ?1 AND revoked_at IS NULL",
        params![id.to_string(), body, ms(now)],
    )?;
    Ok(true)
}

/// Every call is one transaction, run by the caller's thread: [`SqliteBackend`] runs them on the
/// blocking pool for async callers.
impl SqliteStore {
    fn ping(&self) -> Result<()> {
        self.read(|c| c.one("SELECT 1", [], |_| Ok(())))
    }

    fn writable(&self) -> Result<()> {
        if !self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        // 64 KiB needs fresh pages, as a pushed batch does; written and removed in one transaction.
        self.write(|c| {
            let tx = c.transaction()?;
            tx.run("INSERT INTO write_probe (pad) VALUES (zeroblob(65536))", [])?;
            tx.run("DELETE FROM write_probe", [])?;
            tx.commit()
        })
    }

    fn release_memory(&self, quiet_for: std::time::Duration) -> Result<bool> {
        use std::sync::atomic::Ordering::Relaxed;
        let last = *self.last_write.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < quiet_for || self.released.load(Relaxed) {
            return Ok(false);
        }
        // A connection in use keeps its cache this time round.
        let shrink = |conn: &Mutex<Connection>| {
            if let Ok(c) = conn.try_lock() {
                let _ = c.execute_batch("PRAGMA shrink_memory");
            }
        };
        shrink(&self.conn);
        self.readers.iter().for_each(shrink);
        self.released.store(true, Relaxed);
        Ok(true)
    }

    fn limit_size(&self, max_bytes: Option<u64>) -> Result<u64> {
        self.with(|c| {
            let page: u64 = c.one("PRAGMA page_size", [], |r| r.get(0))?;
            // SQLite's own ceiling when lifted.
            let pages = max_bytes.map_or(4_294_967_294, |b| (b / page).max(1));
            let now: u64 = c.one(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                r.get(0)
            })?;
            Ok(now * page)
        })
    }

    fn key_check(&self) -> Result<Option<Vec<u8>>> {
        self.read(|c| {
            c.one("SELECT sealed FROM key_check WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    fn put_key_check(&self, sealed: &[u8], now: DateTime<Utc>) -> Result<()> {
        self.write(|c| {
            c.run(
                "INSERT INTO key_check (id, sealed, created_at) VALUES (1, ?1, ?2) ON CONFLICT(id) DO NOTHING",
                params![sealed, ms(now)],
            )
            .map(|_| ())
        })
    }

    fn sealed(&self) -> Result<Vec<Sealed>> {
        self.read(|c| {
            let mut out = Vec::new();
            let mut stmt = c.prepare("SELECT id, ciphertext FROM token_sets")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))? {
                let (id, ciphertext) = row?;
                out.push(Sealed::TokenSet {
                    id: uuid(id)?,
                    ciphertext,
                });
            }
            let mut stmt =
                c.prepare("SELECT hash, successor FROM device_tokens WHERE successor IS NOT NULL")?;
            for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
                let (old_hash, ciphertext) = row?;
                out.push(Sealed::Successor {
                    old_hash,
                    ciphertext,
                });
            }
            let mut stmt = c.prepare("SELECT state_hash, verifier FROM oauth_states")?;
            for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
                let (state_hash, ciphertext) = row?;
                out.push(Sealed::Verifier {
                    state_hash,
                    ciphertext,
                });
            }
            Ok(out)
        })
    }

    fn insert_pairing(&self, p: &Pairing) -> Result<()> {
        self.write(|c| {
            c.run(
                &format!("INSERT INTO pairings ({PAIRING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
                params![
                    p.id.to_string(),
                    p.device_code_hash,
                    p.user_code,
                    p.client_id,
                    p.device_id.to_string(),
                    p.device_name,
                    p.provider,
                    p.status.as_str(),
                    p.connection_id.map(|u| u.to_string()),
                    ms(p.created_at),
                    ms(p.expires_at),
                    p.interval_secs,
                    p.last_poll_at.map(ms),
                    p.moves_from.map(|u| u.to_string()),
                ],
            )
            .map(|_| ())
        })
    }

    fn connected_count(&self, provider: &str) -> Result<u32> {
        self.read(|c| connected_count_in(c, provider))
    }

    fn pairing(&self, id: Uuid) -> Result<Option<Pairing>> {
        self.read(|c| {
            c.one(
                &format!("SELECT {PAIRING_COLUMNS} FROM pairings WHERE id = ?1"),
                [id.to_string()],
                pairing_row,
            )
            .optional()
        })
    }

    fn pairing_by_user_code(&self, code: &str) -> Result<Option<Pairing>> {
        self.read(|c| {
            c.one(
                &format!("SELECT {PAIRING_COLUMNS} FROM pairings WHERE user_code = ?1 ORDER BY created_at DESC LIMIT 1"),
                [code],
                pairing_row,
            )
            .optional()
        })
    }

    fn pairing_by_device_code(&self, hash: &[u8]) -> Result<Option<Pairing>> {
        self.read(|c| {
            c.one(
                &format!("SELECT {PAIRING_COLUMNS} FROM pairings WHERE device_code_hash = ?1"),
                [hash],
                pairing_row,
            )
            .optional()
        })
    }

    fn record_poll(&self, id: Uuid, at: DateTime<Utc>, interval_secs: i64) -> Result<()> {
        self.write(|c| {
            c.run(
                "UPDATE pairings SET last_poll_at = ?2, interval_secs = ?3 WHERE id = ?1",
                params![id.to_string(), ms(at), interval_secs],
            )
            .map(|_| ())
        })
    }

    fn deny_pairing(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        self.write(|c| {
            c.run(
                "UPDATE pairings SET status = 'denied' WHERE id = ?1 AND status = 'pending' AND expires_at > ?2",
                params![id.to_string(), ms(now)],
            )
            .map(|n| n == 1)
        })
    }

    fn approve_pairing(
        &self,
        pairing: Uuid,
        row: &ConnectionRow,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Approval> {
        self.write(|c| {
            let tx = c.transaction()?;
            if let Some(cap) = cap {
                let connected: Option<String> = tx
                    .query_row(
                        "SELECT status FROM connections WHERE provider = ?1 AND tenant_id = ?2",
                        params![row.provider, row.tenant_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                let reconnect =
                    connected.is_some_and(|s| s != ConnectionStatus::Disconnected.as_str());
                if !reconnect && connected_count_in(&tx, &row.provider)? >= cap {
                    return Ok(Approval::AtCap(cap));
                }
            }
            let (stored, replaced) = upsert_connection_in(&tx, row)?;
            // A device paired with another organisation moves only from the one it proved it is
            // on (`moves_from`); otherwise nothing is written at all.
            let paired_elsewhere: Option<(Option<String>, String)> = tx
                .query_row(
                    "SELECT p.moves_from, d.connection_id FROM pairings p
                     JOIN devices d ON d.id = p.device_id AND d.revoked_at IS NULL
                     WHERE p.id = ?1",
                    [pairing.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((moves_from, on)) = paired_elsewhere {
                if on != stored.id.to_string() && moves_from.as_deref() != Some(on.as_str()) {
                    return Ok(Approval::DeviceElsewhere); // rolled back
                }
            }
            let approved = tx.run(
                "UPDATE pairings SET status = 'approved', connection_id = ?2
                 WHERE id = ?1 AND status = 'pending' AND expires_at > ?3",
                params![pairing.to_string(), stored.id.to_string(), ms(now)],
            )?;
            if approved != 1 {
                return Ok(Approval::NotPending); // dropped transaction: rolled back
            }
            tx.commit()?;
            Ok(Approval::Approved(stored, replaced))
        })
    }

    fn consume_pairing(
        &self,
        pairing: Uuid,
        d: &DeviceRow,
        access: &DeviceTokenRow,
        refresh: &DeviceTokenRow,
    ) -> Result<Consumed> {
        self.write(|c| {
            let tx = c.transaction()?;
            let consumed = tx.run(
                "UPDATE pairings SET status = 'consumed' WHERE id = ?1 AND status = 'approved'",
                [pairing.to_string()],
            )?;
            if consumed != 1 {
                return Ok(Consumed::NotApproved);
            }
            let existing = tx
                .query_row(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"), [d.id.to_string()], device_row)
                .optional()?;
            // A device paired elsewhere moves only from the organisation the person agreed to
            // move it from; its documents keep their own connection and are still delivered there.
            let moves_from: Option<String> = tx.one(
                "SELECT moves_from FROM pairings WHERE id = ?1",
                [pairing.to_string()],
                |r| r.get(0),
            )?;
            if existing.is_some_and(|e| {
                e.revoked_at.is_none()
                    && e.connection_id != d.connection_id
                    && moves_from.as_deref() != Some(e.connection_id.to_string().as_str())
            }) {
                return Ok(Consumed::DeviceInUse); // rolled back: the pairing stays approved
            }
            revoke_tokens_of(&tx, d.id, d.paired_at)?;
            tx.run(
                &format!(
                    "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL)
                     ON CONFLICT(id) DO UPDATE SET name = excluded.name, client_id = excluded.client_id,
                       connection_id = excluded.connection_id, paired_at = excluded.paired_at, revoked_at = NULL"
                ),
                params![d.id.to_string(), d.name, d.client_id, d.connection_id.to_string(), ms(d.paired_at)],
            )?;
            insert_device_token(&tx, access)?;
            insert_device_token(&tx, refresh)?;
            tx.commit()?;
            Ok(Consumed::Paired)
        })
    }

    fn insert_oauth_state(&self, s: &OAuthState) -> Result<()> {
        self.write(|c| {
            c.run(
                "INSERT INTO oauth_states (state_hash, pairing_id, browser_hash, verifier, created_at, expires_at, used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                params![s.state_hash, s.pairing_id.to_string(), s.browser_hash, s.verifier, ms(s.created_at), ms(s.expires_at)],
            )
            .map(|_| ())
        })
    }

    fn oauth_state(&self, hash: &[u8]) -> Result<Option<OAuthState>> {
        self.read(|c| {
            c.one(
                "SELECT state_hash, pairing_id, browser_hash, verifier, created_at, expires_at, used_at FROM oauth_states WHERE state_hash = ?1",
                [hash],
                |r| {
                    Ok(OAuthState {
                        state_hash: r.get(0)?,
                        pairing_id: uuid(r.get(1)?)?,
                        browser_hash: r.get(2)?,
                        verifier: r.get(3)?,
                        created_at: time(r.get(4)?),
                        expires_at: time(r.get(5)?),
                        used_at: opt_time(r.get(6)?),
                    })
                },
            )
            .optional()
        })
    }

    fn mark_state_used(&self, hash: &[u8], now: DateTime<Utc>) -> Result<bool> {
        self.write(|c| {
            c.run(
                "UPDATE oauth_states SET used_at = ?2 WHERE state_hash = ?1 AND used_at IS NULL",
                params![hash, ms(now)],
            )
            .map(|n| n == 1)
        })
    }

    fn insert_choice(&self, ch: &PendingChoice) -> Result<()> {
        self.write(|c| {
            c.run(
                "INSERT INTO pending_choices (id_hash, pairing_id, browser_hash, token_set_id, tenants, expires_at, used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                params![ch.id_hash, ch.pairing_id.to_string(), ch.browser_hash, ch.token_set_id.to_string(), super::choices::text(&ch.tenants), ms(ch.expires_at)],
            )
            .map(|_| ())
        })
    }

    fn choice(&self, hash: &[u8]) -> Result<Option<PendingChoice>> {
        self.read(|c| {
            c.one(
                &format!("SELECT {CHOICE_COLUMNS} FROM pending_choices WHERE id_hash = ?1"),
                [hash],
                choice_row,
            )
            .optional()
        })
    }

    fn latest_choice(
        &self,
        browser_hash: &[u8],
        pairing: Option<Uuid>,
    ) -> Result<Option<PendingChoice>> {
        self.read(|c| {
            c.one(
                &format!("SELECT {CHOICE_COLUMNS} FROM pending_choices WHERE browser_hash = ?1 AND (?2 IS NULL OR pairing_id = ?2) ORDER BY expires_at DESC LIMIT 1"),
                params![browser_hash, pairing.map(|p| p.to_string())],
                choice_row,
            )
            .optional()
        })
    }

    fn mark_choice_used(&self, hash: &[u8], now: DateTime<Utc>) -> Result<bool> {
        self.write(|c| {
            c.run(
                "UPDATE pending_choices SET used_at = ?2 WHERE id_hash = ?1 AND used_at IS NULL",
                params![hash, ms(now)],
            )
            .map(|n| n == 1)
        })
    }

    fn sweep(&self, short: DateTime<Utc>, long: DateTime<Utc>) -> Result<usize> {
        self.write(|c| {
            let tx = c.transaction()?;
            let t = ms(short);
            let mut n = 0;
            n += tx.run("DELETE FROM oauth_states WHERE expires_at < ?1", [t])?;
            n += tx.run("DELETE FROM pending_choices WHERE expires_at < ?1", [t])?;
            n += tx.run(
                "DELETE FROM oauth_states WHERE pairing_id IN (SELECT id FROM pairings WHERE expires_at < ?1)",
                [t],
            )?;
            n += tx.run(
                "DELETE FROM pending_choices WHERE pairing_id IN (SELECT id FROM pairings WHERE expires_at < ?1)",
                [t],
            )?;
            n += tx.run("DELETE FROM pairings WHERE expires_at < ?1", [t])?;
            n += tx.run("DELETE FROM throttles WHERE updated_at < ?1", [t])?;
            n += tx.run("DELETE FROM sightings WHERE until < ?1", [t])?;
            n += tx.run("DELETE FROM operator_logins WHERE expires_at < ?1", [t])?;
            n += tx.run("DELETE FROM operator_sessions WHERE expires_at < ?1", [t])?;
            n += tx.run(
                "DELETE FROM bundles WHERE created_at < ?1 AND idempotency_key NOT IN (SELECT bundle_key FROM documents WHERE bundle_key IS NOT NULL)",
                [t],
            )?;
            n += tx.run(
                "DELETE FROM device_tokens WHERE revoked_at < ?2 OR rotated_at < ?2 OR (kind = 'access' AND expires_at < ?1)",
                params![t, ms(long)],
            )?;
            // A consent nobody finished (the picker abandoned): forgotten here. It is not revoked at
            // Xero, where revoking would also remove connections another token set may rely on.
            n += tx.run(
                "DELETE FROM token_sets WHERE created_at < ?1
                   AND id NOT IN (SELECT token_set_id FROM connections WHERE token_set_id IS NOT NULL)
                   AND id NOT IN (SELECT token_set_id FROM pending_choices)",
                [t],
            )?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn insert_token_set(&self, t: &TokenSetRow) -> Result<()> {
        self.write(|c| {
            c.run(
                "INSERT INTO token_sets (id, provider, ciphertext, access_expires_at, last_refresh_at, created_at, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![t.id.to_string(), t.provider, t.ciphertext, ms(t.access_expires_at), t.last_refresh_at.map(ms), ms(t.created_at), t.version],
            )
            .map(|_| ())
        })
    }

    fn token_set(&self, id: Uuid) -> Result<Option<TokenSetRow>> {
        self.read(|c| {
            c.one(
                "SELECT id, provider, ciphertext, access_expires_at, last_refresh_at, created_at, version FROM token_sets WHERE id = ?1",
                [id.to_string()],
                token_set_row,
            )
            .optional()
        })
    }

    fn update_token_set(&self, t: &TokenSetRow, holder: Uuid, epoch: i64) -> Result<bool> {
        self.write(|c| {
            c.run(
                "UPDATE token_sets SET ciphertext = ?2, access_expires_at = ?3, last_refresh_at = ?4, version = version + 1
                 WHERE id = ?1 AND version = ?5
                   AND EXISTS (SELECT 1 FROM refresh_leases WHERE token_set_id = ?1 AND holder = ?6 AND epoch = ?7)",
                params![t.id.to_string(), t.ciphertext, ms(t.access_expires_at), t.last_refresh_at.map(ms), t.version, holder.to_string(), epoch],
            )
            .map(|n| n == 1)
        })
    }

    fn count_attempt(
        &self,
        kind: &str,
        key: &[u8],
        window: i64,
        elapsed: f64,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(|c| {
            let tx = c.transaction()?;
            let stored = counted(&tx, kind, key)?;
            let Some(next) = super::throttles::attempt(stored, window, elapsed, limit) else {
                return Ok(false);
            };
            tx.run(
                "INSERT INTO throttles (kind, key, win, n, prev, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (kind, key) DO UPDATE SET win = excluded.win, n = excluded.n, prev = excluded.prev,
                   updated_at = excluded.updated_at",
                params![kind, key, next.window, next.n, next.prev, ms(now)],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn put_login(&self, l: &OperatorLogin) -> Result<()> {
        self.write(|c| {
            c.run(
                "INSERT INTO operator_logins (state_hash, browser_hash, sealed, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![l.state_hash, l.browser_hash, l.sealed, ms(l.expires_at)],
            )
            .map(|_| ())
        })
    }

    fn take_login(&self, state_hash: &[u8], now: DateTime<Utc>) -> Result<Option<OperatorLogin>> {
        let login = self.write(|c| {
            c.one(
                "DELETE FROM operator_logins WHERE state_hash = ?1
                 RETURNING state_hash, browser_hash, sealed, expires_at",
                [state_hash],
                |r| {
                    Ok(OperatorLogin {
                        state_hash: r.get(0)?,
                        browser_hash: r.get(1)?,
                        sealed: r.get(2)?,
                        expires_at: time(r.get(3)?),
                    })
                },
            )
            .optional()
        })?;
        Ok(login.filter(|l| l.expires_at > now))
    }

    fn put_session(&self, s: &OperatorSession) -> Result<()> {
        self.write(|c| {
            c.run(
                "INSERT INTO operator_sessions (id_hash, subject, name, role, csrf, sealed_id_token, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![s.id_hash, s.subject, s.name, s.role, s.csrf, s.sealed_id_token, ms(s.created_at), ms(s.expires_at)],
            )
            .map(|_| ())
        })
    }

    fn session(&self, id_hash: &[u8], now: DateTime<Utc>) -> Result<Option<OperatorSession>> {
        self.read(|c| {
            c.one(
                "SELECT id_hash, subject, name, role, csrf, sealed_id_token, created_at, expires_at
                   FROM operator_sessions WHERE id_hash = ?1 AND expires_at > ?2",
                params![id_hash, ms(now)],
                operator_session,
            )
            .optional()
        })
    }

    fn end_session(&self, id_hash: &[u8]) -> Result<Option<OperatorSession>> {
        self.write(|c| {
            c.one(
                "DELETE FROM operator_sessions WHERE id_hash = ?1
                 RETURNING id_hash, subject, name, role, csrf, sealed_id_token, created_at, expires_at",
                [id_hash],
                operator_session,
            )
            .optional()
        })
    }

    fn first_sighting(
        &self,
        kind: &str,
        key: &[u8],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(|c| {
            c.run(
                "INSERT INTO sightings (kind, key, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, key) DO UPDATE SET until = excluded.until WHERE sightings.until < ?4",
                params![kind, key, ms(until), ms(now)],
            )
            .map(|n| n == 1)
        })
    }

    fn forget_sighting(&self, kind: &str, key: &[u8]) -> Result<()> {
        self.write(|c| {
            c.run(
                "DELETE FROM sightings WHERE kind = ?1 AND key = ?2",
                params![kind, key],
            )
            .map(|_| ())
        })
    }

    fn take_call(
        &self,
        kind: &str,
        key: &str,
        limit: u32,
        window: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        use super::throttles::{oldest_counted, released_at, slice_of};
        let (current, slice_ms) = slice_of(now, window);
        self.write(|c| {
            let tx = c.transaction()?;
            tx.run(
                "DELETE FROM call_slices WHERE kind = ?1 AND key = ?2 AND slice < ?3",
                params![kind, key, oldest_counted(current)],
            )?;
            let (taken, oldest): (i64, Option<i64>) = tx.one(
                "SELECT COALESCE(SUM(n), 0), MIN(slice) FROM call_slices WHERE kind = ?1 AND key = ?2",
                params![kind, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let answer = if taken < i64::from(limit) {
                tx.run(
                    "INSERT INTO call_slices (kind, key, slice, n) VALUES (?1, ?2, ?3, 1)
                     ON CONFLICT (kind, key, slice) DO UPDATE SET n = call_slices.n + 1",
                    params![kind, key, current],
                )?;
                None
            } else {
                Some(released_at(oldest.unwrap_or(current), slice_ms))
            };
            tx.commit()?;
            Ok(answer)
        })
    }

    fn attempts(&self, kind: &str, key: &[u8], window: i64, elapsed: f64) -> Result<f64> {
        self.read(|c| counted(c, kind, key))
            .map(|stored| super::throttles::estimate(stored, window, elapsed))
    }

    fn take_refresh_lease(
        &self,
        id: Uuid,
        holder: Uuid,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>> {
        let now = ms(Utc::now());
        self.write(|c| {
            c.one(
                "INSERT INTO refresh_leases (token_set_id, holder, epoch, expires_at) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT (token_set_id) DO UPDATE SET holder = excluded.holder, epoch = refresh_leases.epoch + 1,
                   expires_at = excluded.expires_at
                 WHERE refresh_leases.expires_at <= ?4
                 RETURNING epoch",
                params![id.to_string(), holder.to_string(), now + ttl.as_millis() as i64, now],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn end_refresh_lease(&self, id: Uuid, holder: Uuid, epoch: i64) -> Result<()> {
        let now = ms(Utc::now());
        self.write(|c| {
            c.run(
                "UPDATE refresh_leases SET expires_at = ?4 WHERE token_set_id = ?1 AND holder = ?2 AND epoch = ?3",
                params![id.to_string(), holder.to_string(), epoch, now],
            )
        })
        .map(|_| ())
    }

    fn delete_token_set(&self, id: Uuid) -> Result<()> {
        self.write(|c| {
            let tx = c.transaction()?;
            tx.run(
                "DELETE FROM pending_choices WHERE token_set_id = ?1",
                [id.to_string()],
            )?;
            tx.run(
                "UPDATE connections SET token_set_id = NULL WHERE token_set_id = ?1",
                [id.to_string()],
            )?;
            tx.run("DELETE FROM token_sets WHERE id = ?1", [id.to_string()])?;
            tx.commit()
        })
    }

    fn idle_token_sets(&self, before: DateTime<Utc>) -> Result<Vec<Uuid>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT DISTINCT t.id FROM token_sets t JOIN connections c ON c.token_set_id = t.id
                 WHERE c.status = 'connected' AND COALESCE(t.last_refresh_at, t.created_at) < ?1",
            )?;
            let ids = stmt
                .query_map([ms(before)], |r| uuid(r.get(0)?))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(ids)
        })
    }

    fn upsert_connection(&self, row: &ConnectionRow) -> Result<(ConnectionRow, Option<Uuid>)> {
        self.write(|c| {
            let tx = c.transaction()?;
            let out = upsert_connection_in(&tx, row)?;
            tx.commit()?;
            Ok(out)
        })
    }

    fn connection(&self, id: Uuid) -> Result<Option<ConnectionRow>> {
        self.read(|c| {
            c.one(
                &format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = ?1"),
                [id.to_string()],
                connection_row,
            )
            .optional()
        })
    }

    fn connections(&self) -> Result<Vec<ConnectionRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY created_at"
            ))?;
            let rows = stmt.query_map([], connection_row)?.collect();
            rows
        })
    }

    fn connections_using(&self, token_set: Uuid) -> Result<Vec<ConnectionRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CONNECTION_COLUMNS} FROM connections WHERE token_set_id = ?1"
            ))?;
            let rows = stmt
                .query_map([token_set.to_string()], connection_row)?
                .collect();
            rows
        })
    }

    fn mark_connection(
        &self,
        id: Uuid,
        token_set: Option<Uuid>,
        from: ConnectionStatus,
        to: ConnectionStatus,
        reason: Option<StatusReason>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(|c| {
            let tx = c.transaction()?;
            let moved = mark_connection_in(&tx, id, token_set, from, to, reason, now)?;
            tx.commit()?;
            Ok(moved)
        })
    }

    fn mark_connections_using(
        &self,
        token_set: Uuid,
        from: ConnectionStatus,
        to: ConnectionStatus,
        reason: Option<StatusReason>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        self.write(|c| {
            let tx = c.transaction()?;
            let ids: Vec<String> = {
                let mut stmt = tx.prepare("SELECT id FROM connections WHERE token_set_id = ?1")?;
                let rows = stmt
                    .query_map([token_set.to_string()], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                rows
            };
            let mut moved = 0;
            for id in ids {
                if mark_connection_in(&tx, uuid(id)?, Some(token_set), from, to, reason, now)? {
                    moved += 1;
                }
            }
            tx.commit()?;
            Ok(moved)
        })
    }

    fn connections_to_reprobe(&self) -> Result<Vec<ConnectionRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CONNECTION_COLUMNS} FROM connections
                 WHERE status = 'needs_reconnect' AND status_reason = 'api_refused' AND token_set_id IS NOT NULL"
            ))?;
            let rows = stmt.query_map([], connection_row)?.collect();
            rows
        })
    }

    fn disconnect(&self, id: Uuid, token_set: Option<Uuid>, now: DateTime<Utc>) -> Result<bool> {
        self.write(|c| {
            let tx = c.transaction()?;
            let changed = tx.run(
                "UPDATE connections SET status = 'disconnected', status_reason = 'disconnected', token_set_id = NULL, updated_at = ?2
                 WHERE id = ?1 AND token_set_id IS ?3",
                params![id.to_string(), ms(now), token_set.map(|t| t.to_string())],
            )?;
            if changed != 1 {
                return Ok(false);
            }
            tx.run(
                "UPDATE device_tokens SET revoked_at = ?2, successor = NULL
                 WHERE revoked_at IS NULL AND device_id IN (SELECT id FROM devices WHERE connection_id = ?1)",
                params![id.to_string(), ms(now)],
            )?;
            tx.run(
                "UPDATE devices SET revoked_at = ?2 WHERE connection_id = ?1 AND revoked_at IS NULL",
                params![id.to_string(), ms(now)],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn device(&self, id: Uuid) -> Result<Option<DeviceRow>> {
        self.read(|c| {
            c.one(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
                [id.to_string()],
                device_row,
            )
            .optional()
        })
    }

    fn devices_on(&self, connection: Uuid) -> Result<Vec<DeviceRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE connection_id = ?1 ORDER BY paired_at"
            ))?;
            let rows = stmt
                .query_map([connection.to_string()], device_row)?
                .collect();
            rows
        })
    }

    fn revoke_device(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        self.write(|c| {
            let tx = c.transaction()?;
            revoke_tokens_of(&tx, id, now)?;
            tx.run(
                "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id.to_string(), ms(now)],
            )?;
            tx.commit()
        })
    }

    fn touch_device(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        self.write(|c| {
            c.run(
                "UPDATE devices SET last_seen_at = ?2 WHERE id = ?1",
                params![id.to_string(), ms(now)],
            )
            .map(|_| ())
        })
    }

    fn insert_documents(&self, docs: &[DocumentRow]) -> Result<Vec<Stored>> {
        self.write(|c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(docs.len());
            for d in docs {
                // Most documents are new: stored in one statement; what was there already is
                // read and settled below.
                let inserted = tx.run(
                    &format!(
                        "INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL, NULL, ?14, 1, 0, NULL, NULL)
                         ON CONFLICT(device_id, client_ref) DO NOTHING"
                    ),
                    params![
                        d.id.to_string(),
                        d.device_id.to_string(),
                        d.connection_id.to_string(),
                        d.kind.as_str(),
                        d.client_ref,
                        d.body,
                        d.state.as_str(),
                        d.provider_id,
                        d.provider_number,
                        d.message,
                        d.attempts,
                        ms(d.created_at),
                        ms(d.updated_at),
                        d.waits_for,
                    ],
                )?;
                let existing = if inserted == 1 {
                    None
                } else {
                    Some(tx.one(
                        &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE device_id = ?1 AND client_ref = ?2"),
                        params![d.device_id.to_string(), d.client_ref],
                        document_row,
                    )?)
                };
                let stored = match existing {
                    None => {
                        document_event(&tx, d)?;
                        Stored::New(d.view())
                    }
                    Some(e) if e.kind == d.kind && e.body == d.body => Stored::Duplicate(e.view()),
                    Some(e) if e.kind == d.kind && e.state.correctable() => {
                        tx.run(
                            "INSERT INTO document_versions (document_id, version, body, state, message, created_at, replaced_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                            params![e.id.to_string(), e.version, e.body, e.state.as_str(), e.message, ms(e.updated_at), ms(d.updated_at)],
                        )?;
                        tx.run(
                            "UPDATE documents SET body = ?2, state = 'queued', version = version + 1, resends = 0, provider_status = NULL,
                               xero_id = NULL, xero_number = NULL, message = NULL, attempts = 0, updated_at = ?3,
                               unknown_since = NULL, bundle_key = NULL, waits_for = ?4, connection_id = ?5
                             WHERE id = ?1",
                            params![e.id.to_string(), d.body, ms(d.updated_at), d.waits_for, d.connection_id.to_string()],
                        )?;
                        let row = tx.one(
                            &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1"),
                            [e.id.to_string()],
                            document_row,
                        )?;
                        document_event(&tx, &row)?;
                        Stored::Corrected(row.view())
                    }
                    Some(e) => Stored::InUse(e.view()),
                };
                out.push(stored);
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn document_versions(&self, id: Uuid) -> Result<Vec<DocumentVersionRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT version, body, state, message, created_at, replaced_at FROM document_versions
                 WHERE document_id = ?1 ORDER BY version",
            )?;
            let rows = stmt.query_map([id.to_string()], |r| {
                let state: String = r.get(2)?;
                Ok(DocumentVersionRow {
                    version: r.get(0)?,
                    body: r.get(1)?,
                    state: DocumentState::parse(&state)
                        .ok_or_else(|| conversion(format!("document state {state}")))?,
                    message: r.get(3)?,
                    created_at: time(r.get(4)?),
                    replaced_at: time(r.get(5)?),
                })
            })?;
            rows.collect()
        })
    }

    fn resend_document(&self, device: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<Change> {
        self.change_document(device, id, |tx, d| {
            if d.state != DocumentState::Failed {
                return Ok(false);
            }
            tx.run(
                "UPDATE documents SET state = 'queued', resends = resends + 1, message = NULL, attempts = 0,
                   updated_at = ?2, unknown_since = NULL, bundle_key = NULL
                 WHERE id = ?1 AND state = 'failed'",
                params![id.to_string(), ms(now)],
            )
            .map(|n| n == 1)
        })
    }

    fn request_void(&self, device: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<Change> {
        self.write(|c| {
            let tx = c.transaction()?;
            let select = format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1 AND device_id = ?2"
            );
            let keys = params![id.to_string(), device.to_string()];
            let Some(row) = tx.one(&select, keys, document_row).optional()? else {
                return Ok(Change::NotFound);
            };
            if row.state != DocumentState::Sent || row.kind != DocumentKind::Invoice {
                return Ok(Change::Refused(row));
            }
            let money: Option<(String, String)> = tx
                .query_row(
                    "SELECT kind, client_ref FROM documents WHERE device_id = ?1 AND waits_for = ?2
                       AND kind IN ('payment', 'credit_note')
                       AND state NOT IN ('failed', 'rejected', 'discarded', 'voided')
                     ORDER BY created_at LIMIT 1",
                    params![device.to_string(), row.client_ref],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((kind, r)) = money {
                let what = if kind == "payment" { "payment" } else { "refund" };
                return Ok(Change::Blocked(
                    row,
                    format!("the {what} '{r}' from this device is recorded against it, and Xero does not void an invoice money has touched"),
                ));
            }
            tx.run(
                "UPDATE documents SET state = 'voiding', message = NULL, updated_at = ?2 WHERE id = ?1",
                params![id.to_string(), ms(now)],
            )?;
            let row = tx.one(&select, keys, document_row)?;
            document_event(&tx, &row)?;
            tx.commit()?;
            Ok(Change::Done(row))
        })
    }

    fn voids(&self, connection: Uuid, limit: usize) -> Result<Vec<DocumentRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE connection_id = ?1 AND state = 'voiding'
                 ORDER BY updated_at, id LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![connection.to_string(), limit as i64], document_row)?
                .collect();
            rows
        })
    }

    fn discard_document(
        &self,
        device: Uuid,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Change> {
        self.change_document(device, id, |tx, _| {
            tx.run(
                "UPDATE documents SET state = 'discarded', discard_reason = ?2, updated_at = ?3
                 WHERE id = ?1 AND (state IN ('failed', 'rejected')
                   OR (state = 'queued' AND unknown_since IS NULL AND bundle_key IS NULL))",
                params![id.to_string(), reason, ms(now)],
            )
            .map(|n| n == 1)
        })
    }

    fn document(&self, device: Uuid, id: Uuid) -> Result<Option<DocumentRow>> {
        self.read(|c| {
            c.one(
                &format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1 AND device_id = ?2"
                ),
                params![id.to_string(), device.to_string()],
                document_row,
            )
            .optional()
        })
    }

    fn document_by_ref(&self, device: Uuid, client_ref: &str) -> Result<Option<DocumentRow>> {
        self.read(|c| {
            c.one(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE device_id = ?1 AND client_ref = ?2"),
                params![device.to_string(), client_ref],
                document_row,
            )
            .optional()
        })
    }

    fn documents(&self, device: Uuid, f: &DocumentFilter) -> Result<Vec<DocumentRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE device_id = ?1
                   AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR client_ref = ?4)
                 ORDER BY created_at DESC, id LIMIT ?5"
            ))?;
            let rows = stmt
                .query_map(
                    params![
                        device.to_string(),
                        f.state.map(|s| s.as_str()),
                        f.kind.map(|k| k.as_str()),
                        f.client_ref,
                        f.limit.clamp(1, 1000) as i64
                    ],
                    document_row,
                )?
                .collect();
            rows
        })
    }

    fn search_documents(&self, f: &DocumentSearch) -> Result<Vec<DocumentRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents
                  WHERE (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR connection_id = ?2)
                    AND (?3 IS NULL OR client_ref = ?3)
                    AND (?4 IS NULL OR instr(lower(json_extract(body, '$.contact.name')), lower(?4)) > 0)
                    AND (?5 IS NULL OR state = ?5)
                    AND (?6 IS NULL OR created_at >= ?6) AND (?7 IS NULL OR created_at < ?7)
                  ORDER BY created_at DESC, id LIMIT ?8"
            ))?;
            let rows = stmt
                .query_map(
                    params![
                        f.id.map(|u| u.to_string()),
                        f.connection.map(|u| u.to_string()),
                        f.client_ref,
                        f.contact,
                        f.state.map(|s| s.as_str()),
                        f.from.map(ms),
                        f.to.map(ms),
                        f.limit.clamp(1, 1000) as i64
                    ],
                    document_row,
                )?
                .collect();
            rows
        })
    }

    fn queue_summaries(&self) -> Result<std::collections::HashMap<Uuid, QueueSummary>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT connection_id, state, count(*), max(updated_at) FROM documents GROUP BY connection_id, state",
            )?;
            let mut out: std::collections::HashMap<Uuid, QueueSummary> = Default::default();
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })?;
            for row in rows {
                let (connection, state, n, at) = row?;
                let (Ok(connection), Some(state)) =
                    (Uuid::parse_str(&connection), DocumentState::parse(&state))
                else {
                    continue;
                };
                let summary = out.entry(connection).or_default();
                summary.by_state.insert(state.as_str().to_string(), n as u64);
                if matches!(state, DocumentState::Sent | DocumentState::Paid | DocumentState::Voided) {
                    let at = at.and_then(DateTime::<Utc>::from_timestamp_millis);
                    summary.last_delivered_at = summary.last_delivered_at.max(at);
                }
            }
            Ok(out)
        })
    }

    fn outbox(
        &self,
        connection: Uuid,
        kind: DocumentKind,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRow>> {
        // A reader: it sees every commit, and leaves the writer to the pushes.
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE connection_id = :connection AND state = 'queued' AND kind = :kind
                   AND {READY}
                 ORDER BY created_at, id LIMIT :limit"
            ))?;
            let rows = stmt
                .query_map(
                    rusqlite::named_params! {
                        ":connection": connection.to_string(),
                        ":kind": kind.as_str(),
                        ":limit": limit as i64,
                        ":cutoff": ms(now - PAYMENT_WAITS_FOR_INVOICE),
                    },
                    document_row,
                )?
                .collect();
            rows
        })
    }

    fn connections_with_work(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT c.id FROM connections c WHERE c.status = 'connected'
                   AND NOT EXISTS (SELECT 1 FROM delivery_leases l WHERE l.connection_id = c.id AND l.released = 0 AND l.expires_at > :lease_now)
                   AND (EXISTS (SELECT 1 FROM documents d WHERE d.connection_id = c.id AND d.state IN ('voiding', 'sending'))
                        OR EXISTS (SELECT 1 FROM documents d WHERE d.connection_id = c.id AND d.state = 'queued' AND {READY}))"
            ))?;
            let ids = stmt
                .query_map(
                    rusqlite::named_params! {
                        ":cutoff": ms(now - PAYMENT_WAITS_FOR_INVOICE),
                        // Leases run on the database's clock: this process's, not the injected one.
                        ":lease_now": ms(Utc::now()),
                    },
                    |r| uuid(r.get(0)?),
                )?
                .collect();
            ids
        })
    }

    fn start_bundle(&self, lease: &Lease, b: &Bundle, now: DateTime<Utc>) -> Result<bool> {
        self.write(|c| {
            let tx = c.transaction()?;
            if !holds(&tx, lease)? {
                return Ok(None);
            }
            for id in &b.members {
                let state: Option<String> = tx
                    .query_row("SELECT state FROM documents WHERE id = ?1", [id.to_string()], |r| r.get(0))
                    .optional()?;
                if state.as_deref() != Some("queued") {
                    return Ok(Some(false));
                }
            }
            tx.run(
                "INSERT INTO bundles (idempotency_key, connection_id, path, collection, body, members, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(idempotency_key) DO NOTHING",
                params![
                    b.key,
                    b.connection_id.to_string(),
                    b.path,
                    b.collection,
                    b.body,
                    serde_json::to_string(&b.members).expect("ids serialize"),
                    ms(now)
                ],
            )?;
            for id in &b.members {
                tx.run(
                    "UPDATE documents SET state = 'sending', bundle_key = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id.to_string(), b.key, ms(now)],
                )?;
                let row = tx.one(&format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1"), [id.to_string()], document_row)?;
                document_event(&tx, &row)?;
            }
            tx.commit()?;
            Ok(Some(true))
        })?
        .ok_or(StoreError::Fenced)
    }

    fn open_bundles(&self, connection: Uuid, since: DateTime<Utc>) -> Result<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT DISTINCT bundle_key FROM documents WHERE connection_id = ?1 AND state = 'queued'
                   AND bundle_key IS NOT NULL AND unknown_since > ?2",
            )?;
            let keys = stmt.query_map(params![connection.to_string(), ms(since)], |r| r.get(0))?.collect();
            keys
        })
    }

    fn bundle(&self, key: &str) -> Result<Option<Bundle>> {
        self.read(|c| {
            c.one(
                "SELECT idempotency_key, connection_id, path, collection, body, members FROM bundles WHERE idempotency_key = ?1",
                [key],
                |r| {
                    let members: String = r.get(5)?;
                    Ok(Bundle {
                        key: r.get(0)?,
                        connection_id: uuid(r.get(1)?)?,
                        path: r.get(2)?,
                        collection: r.get(3)?,
                        body: r.get(4)?,
                        members: serde_json::from_str(&members).map_err(|e| conversion(format!("bundle members: {e}")))?,
                    })
                },
            )
            .optional()
        })
    }

    fn mark_unknown(&self, lease: &Lease, ids: &[Uuid], now: DateTime<Utc>) -> Result<()> {
        self.write(|c| {
            let tx = c.transaction()?;
            if !holds(&tx, lease)? {
                return Ok(false);
            }
            for id in ids {
                tx.run(
                    "UPDATE documents SET state = 'queued', unknown_since = COALESCE(unknown_since, ?2)
                     WHERE id = ?1 AND state = 'sending' AND connection_id = ?3",
                    params![id.to_string(), ms(now), lease.connection.to_string()],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })?
        .then_some(())
        .ok_or(StoreError::Fenced)
    }

    fn forget_unknown(&self, lease: &Lease, ids: &[Uuid]) -> Result<()> {
        self.write(|c| {
            let tx = c.transaction()?;
            if !holds(&tx, lease)? {
                return Ok(false);
            }
            for id in ids {
                let key: Option<String> = tx
                    .query_row(
                        "SELECT bundle_key FROM documents WHERE id = ?1 AND state = 'queued'",
                        [id.to_string()],
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten();
                tx.run(
                    "UPDATE documents SET unknown_since = NULL, bundle_key = NULL WHERE id = ?1 AND state = 'queued'",
                    [id.to_string()],
                )?;
                // The bundle it was in goes once nothing refers to it (it was not found).
                if let Some(key) = key {
                    tx.run(
                        "DELETE FROM bundles WHERE idempotency_key = ?1
                           AND NOT EXISTS (SELECT 1 FROM documents WHERE bundle_key = ?1)",
                        [key],
                    )?;
                }
            }
            tx.commit()?;
            Ok(true)
        })?
        .then_some(())
        .ok_or(StoreError::Fenced)
    }

    fn requeue_sending_for(&self, lease: &Lease) -> Result<usize> {
        self.write(|c| {
            let tx = c.transaction()?;
            if !holds(&tx, lease)? {
                return Ok(None);
            }
            let n = tx.run(
                "UPDATE documents SET state = 'queued', unknown_since = COALESCE(unknown_since, updated_at)
                 WHERE state = 'sending' AND connection_id = ?1",
                [lease.connection.to_string()],
            )?;
            tx.commit()?;
            Ok(Some(n))
        })?
        .ok_or(StoreError::Fenced)
    }

    fn update_documents(
        &self,
        lease: Option<&Lease>,
        updates: &[DocumentUpdate],
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRow>> {
        self.write(|c| {
            let tx = c.transaction()?;
            if let Some(lease) = lease {
                if !holds(&tx, lease)? {
                    return Ok(None);
                }
            }
            let mut rows = Vec::with_capacity(updates.len());
            let mut bundles = std::collections::BTreeSet::new();
            for u in updates {
                let key: Option<String> = tx
                    .query_row(
                        "SELECT bundle_key FROM documents WHERE id = ?1",
                        [u.id.to_string()],
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten();
                bundles.extend(key);
                // The state rule (`rules::outcome_from`) is the write's guard.
                tx.run(
                    &format!("UPDATE documents SET state = ?2, xero_id = COALESCE(?3, xero_id), xero_number = COALESCE(?4, xero_number),
                       message = ?5, attempts = attempts + ?6, updated_at = ?7,
                       unknown_since = CASE WHEN ?2 IN ('queued', 'sending') THEN unknown_since ELSE NULL END,
                       bundle_key = CASE WHEN ?2 IN ('queued', 'sending') THEN bundle_key ELSE NULL END
                     WHERE id = ?1 AND state IN ({})", rules::sql_list(&rules::outcome_from(u.state))),
                    params![
                        u.id.to_string(),
                        u.state.as_str(),
                        u.provider_id,
                        u.provider_number,
                        u.message,
                        i64::from(u.attempt),
                        ms(now)
                    ],
                )?;
                let row = tx.one(&format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1"), [u.id.to_string()], document_row)?;
                document_event(&tx, &row)?;
                rows.push(row);
            }
            // A bundle none of whose documents still refers to it is settled: its body goes.
            for key in &bundles {
                tx.run(
                    "DELETE FROM bundles WHERE idempotency_key = ?1
                       AND NOT EXISTS (SELECT 1 FROM documents WHERE bundle_key = ?1)",
                    [key],
                )?;
            }
            tx.commit()?;
            Ok(Some(rows))
        })?
        .ok_or(StoreError::Fenced)
    }

    /// See [`LeaseStore::take_lease`]. The database's clock is this process's.
    fn take_lease(
        &self,
        connection: Uuid,
        holder: Uuid,
        ttl: std::time::Duration,
    ) -> Result<Option<Taken>> {
        let now = Utc::now();
        let until = ms(now) + ttl.as_millis() as i64;
        self.write(|c| {
            let tx = c.transaction()?;
            let current: Option<(i64, bool, i64, Option<String>)> = tx
                .query_row(
                    "SELECT epoch, released, expires_at, pacing FROM delivery_leases WHERE connection_id = ?1",
                    [connection.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let lease = |epoch| Lease {
                connection,
                holder,
                epoch,
            };
            let taken = match current {
                None => {
                    tx.run(
                        "INSERT INTO delivery_leases (connection_id, holder, epoch, expires_at) VALUES (?1, ?2, 1, ?3)",
                        params![connection.to_string(), holder.to_string(), until],
                    )?;
                    Some(Taken {
                        lease: lease(1),
                        pacing: None,
                        lost_holder: false,
                    })
                }
                Some((_, false, expires, _)) if expires > ms(now) => None,
                Some((epoch, released, _, pacing)) => {
                    tx.run(
                        "UPDATE delivery_leases SET holder = ?2, epoch = ?3, released = 0, expires_at = ?4 WHERE connection_id = ?1",
                        params![connection.to_string(), holder.to_string(), epoch + 1, until],
                    )?;
                    Some(Taken {
                        lease: lease(epoch + 1),
                        // A pacing that no longer reads is only lost pacing: start afresh.
                        pacing: pacing.and_then(|p| serde_json::from_str(&p).ok()),
                        lost_holder: !released,
                    })
                }
            };
            tx.commit()?;
            Ok(taken)
        })
    }

    fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
        pacing: Option<&crate::delivery::pacer::Snapshot>,
    ) -> Result<bool> {
        let until = ms(Utc::now()) + ttl.as_millis() as i64;
        self.write(|c| {
            c.run(
                "UPDATE delivery_leases SET expires_at = ?4, pacing = COALESCE(?5, pacing)
                 WHERE connection_id = ?1 AND holder = ?2 AND epoch = ?3 AND released = 0",
                params![
                    lease.connection.to_string(),
                    lease.holder.to_string(),
                    lease.epoch,
                    until,
                    pacing_text(pacing)
                ],
            )
        })
        .map(|n| n == 1)
    }

    fn release_lease(
        &self,
        lease: &Lease,
        pacing: Option<&crate::delivery::pacer::Snapshot>,
    ) -> Result<()> {
        let now = ms(Utc::now());
        self.write(|c| {
            c.run(
                "UPDATE delivery_leases SET released = 1, expires_at = ?4, pacing = COALESCE(?5, pacing)
                 WHERE connection_id = ?1 AND holder = ?2 AND epoch = ?3",
                params![lease.connection.to_string(), lease.holder.to_string(), lease.epoch, now, pacing_text(pacing)],
            )
        })
        .map(|_| ())
    }

    fn documents_by_provider_id(
        &self,
        connection: Uuid,
        provider_id: &str,
    ) -> Result<Vec<DocumentRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE connection_id = ?1 AND xero_id = ?2"))?;
            let rows = stmt.query_map(params![connection.to_string(), provider_id], document_row)?.collect();
            rows
        })
    }

    fn record_event(&self, d: &DocumentRow, body: &str, now: DateTime<Utc>) -> Result<()> {
        self.write(|c| {
            c.run(
                "INSERT INTO events (connection_id, device_id, document_id, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![d.connection_id.to_string(), d.device_id.to_string(), d.id.to_string(), body, ms(now)],
            )
            .map(|_| ())
        })
    }

    fn record_provider_status(
        &self,
        d: &DocumentRow,
        status: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(|c| {
            let tx = c.transaction()?;
            let changed = tx.run(
                "UPDATE documents SET provider_status = ?2 WHERE id = ?1 AND provider_status IS NOT ?2",
                params![d.id.to_string(), status],
            )? == 1;
            if changed {
                tx.run(
                    "INSERT INTO events (connection_id, device_id, document_id, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![d.connection_id.to_string(), d.device_id.to_string(), d.id.to_string(), body, ms(now)],
                )?;
            }
            tx.commit()?;
            Ok(changed)
        })
    }

    fn events_after(&self, device: Uuid, after: i64, limit: usize) -> Result<Vec<(i64, String)>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT seq, body FROM events WHERE device_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")?;
            let rows = stmt.query_map(params![device.to_string(), after, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?.collect();
            rows
        })
    }

    fn mappings(&self, connection: Uuid) -> Result<Option<String>> {
        self.read(|c| {
            c.one(
                "SELECT body FROM mappings WHERE connection_id = ?1",
                [connection.to_string()],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn put_mappings(&self, connection: Uuid, body: &str, now: DateTime<Utc>) -> Result<()> {
        self.write(|c| {
            c.run(
                "INSERT INTO mappings (connection_id, body, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(connection_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                params![connection.to_string(), body, ms(now)],
            )
            .map(|_| ())
        })
    }

    fn contact_id(&self, connection: Uuid, name_key: &str) -> Result<Option<Uuid>> {
        self.read(|c| {
            let found: Option<String> = c
                .query_row(
                    "SELECT contact_id FROM contact_ids WHERE connection_id = ?1 AND name_key = ?2",
                    params![connection.to_string(), name_key],
                    |r| r.get(0),
                )
                .optional()?;
            found.map(uuid).transpose()
        })
    }

    fn put_contact_id(&self, connection: Uuid, name_key: &str, id: Uuid) -> Result<()> {
        self.write(|c| {
            c.run(
                "INSERT INTO contact_ids (connection_id, name_key, contact_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT(connection_id, name_key) DO UPDATE SET contact_id = excluded.contact_id",
                params![connection.to_string(), name_key, id.to_string()],
            )
            .map(|_| ())
        })
    }

    fn forget_contact_id(&self, connection: Uuid, name_key: &str) -> Result<()> {
        self.write(|c| {
            let tx = c.transaction()?;
            tx.run(
                "DELETE FROM contact_ids WHERE connection_id = ?1 AND name_key = ?2",
                params![connection.to_string(), name_key],
            )?;
            tx.run(
                "INSERT INTO contact_generations (connection_id, name_key, generation) VALUES (?1, ?2, 1)
                 ON CONFLICT(connection_id, name_key) DO UPDATE SET generation = generation + 1",
                params![connection.to_string(), name_key],
            )?;
            tx.commit()
        })
    }

    fn organisation(&self, connection: Uuid) -> Result<Option<OrganisationRow>> {
        self.read(|c| {
            c.one(
                "SELECT timezone, xero_timezone, short_code, currency FROM organisations WHERE connection_id = ?1",
                [connection.to_string()],
                |r| {
                    Ok(OrganisationRow {
                        timezone: r.get(0)?,
                        xero_timezone: r.get(1)?,
                        short_code: r.get(2)?,
                        currency: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    fn put_organisation(
        &self,
        connection: Uuid,
        org: &OrganisationRow,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write(|c| {
            c.run(
                "INSERT INTO organisations (connection_id, timezone, xero_timezone, short_code, currency, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(connection_id) DO UPDATE SET timezone = excluded.timezone,
                   xero_timezone = excluded.xero_timezone, short_code = excluded.short_code,
                   currency = excluded.currency, updated_at = excluded.updated_at",
                params![connection.to_string(), org.timezone, org.xero_timezone, org.short_code, org.currency, ms(now)],
            )
            .map(|_| ())
        })
    }

    fn contact_generation(&self, connection: Uuid, name_key: &str) -> Result<u32> {
        self.read(|c| {
            c.one(
                "SELECT generation FROM contact_generations WHERE connection_id = ?1 AND name_key = ?2",
                params![connection.to_string(), name_key],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
        })
    }

    fn device_token(&self, hash: &[u8]) -> Result<Option<DeviceTokenRow>> {
        self.read(|c| {
            c.one(
                "SELECT hash, device_id, kind, created_at, expires_at, rotated_at, successor, revoked_at FROM device_tokens WHERE hash = ?1",
                [hash],
                |r| {
                    let kind: String = r.get(2)?;
                    Ok(DeviceTokenRow {
                        hash: r.get(0)?,
                        device_id: uuid(r.get(1)?)?,
                        kind: if kind == "access" { TokenKind::Access } else { TokenKind::Refresh },
                        created_at: time(r.get(3)?),
                        expires_at: opt_time(r.get(4)?),
                        rotated_at: opt_time(r.get(5)?),
                        successor: r.get(6)?,
                        revoked_at: opt_time(r.get(7)?),
                    })
                },
            )
            .optional()
        })
    }

    fn rotate_refresh(
        &self,
        old: &[u8],
        successor: &[u8],
        access: &DeviceTokenRow,
        refresh: &DeviceTokenRow,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(|c| {
            let tx = c.transaction()?;
            let changed = tx.run(
                "UPDATE device_tokens SET rotated_at = ?2, successor = ?3
                 WHERE hash = ?1 AND kind = 'refresh' AND rotated_at IS NULL AND revoked_at IS NULL",
                params![old, ms(now), successor],
            )?;
            if changed != 1 {
                return Ok(false);
            }
            insert_device_token(&tx, access)?;
            insert_device_token(&tx, refresh)?;
            tx.commit()?;
            Ok(true)
        })
    }
}

fn operator_session(r: &Row) -> rusqlite::Result<OperatorSession> {
    Ok(OperatorSession {
        id_hash: r.get(0)?,
        subject: r.get(1)?,
        name: r.get(2)?,
        role: r.get(3)?,
        csrf: r.get(4)?,
        sealed_id_token: r.get(5)?,
        created_at: time(r.get(6)?),
        expires_at: time(r.get(7)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{connection, document, pairing};

    #[test]
    fn migrations_apply_once_and_foreign_keys_hold() {
        let dir = std::env::temp_dir().join(format!("ll-store-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.db");
        drop(SqliteStore::open(&path).unwrap());
        let store = SqliteStore::open(&path).unwrap();
        let n: i64 = store
            .with(|c| c.one("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
        let mode: String = store
            .with(|c| c.one("PRAGMA journal_mode", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
        // A device on a connection that does not exist is refused.
        let now = Utc::now();
        let device = DeviceRow {
            id: Uuid::new_v4(),
            name: "x".into(),
            client_id: "c".into(),
            connection_id: Uuid::new_v4(),
            paired_at: now,
            revoked_at: None,
            last_seen_at: None,
        };
        let token = |kind| DeviceTokenRow {
            hash: Uuid::new_v4().as_bytes().to_vec(),
            device_id: device.id,
            kind,
            created_at: now,
            expires_at: None,
            rotated_at: None,
            successor: None,
            revoked_at: None,
        };
        let mut approved = pairing(now, 600);
        approved.status = PairingStatus::Approved;
        approved.device_id = device.id;
        store.insert_pairing(&approved).unwrap();
        let refused = store.consume_pairing(
            approved.id,
            &device,
            &token(TokenKind::Access),
            &token(TokenKind::Refresh),
        );
        assert!(refused.is_err());
        assert_eq!(
            store.pairing(approved.id).unwrap().unwrap().status,
            PairingStatus::Approved,
            "rolled back"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn credit_notes_are_stored_and_the_kind_check_still_holds() {
        let dir = std::env::temp_dir().join(format!("ll-store-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.db");
        let store = SqliteStore::open(&path).unwrap();
        let now = Utc::now();
        let (c, _) = store.upsert_connection(&connection(now)).unwrap();
        let device = Uuid::new_v4();
        store
            .write(|x| {
                x.run(
                    "INSERT INTO devices (id, name, client_id, connection_id, paired_at) VALUES (?1, 'Till', 'c', ?2, 0)",
                    params![device.to_string(), c.id.to_string()],
                )
            })
            .unwrap();
        let note = document(&c, device, DocumentKind::CreditNote, "refund-1", now);
        store.insert_documents(std::slice::from_ref(&note)).unwrap();
        // Read back through a reader connection, which loaded the schema on its own.
        let read = store.document(device, note.id).unwrap().unwrap();
        assert_eq!(read.kind, DocumentKind::CreditNote);
        let unknown = store.write(|x| {
            x.run(
                "UPDATE documents SET kind = 'refund' WHERE id = ?1",
                [note.id.to_string()],
            )
        });
        assert!(
            unknown.is_err(),
            "the CHECK constraint still refuses other kinds"
        );
        let ok: String = store
            .with(|x| x.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(ok, "ok");
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }
}
