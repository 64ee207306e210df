//! The Postgres backend, for several proxies sharing one database: a pool of connections
//! (tokio-postgres with deadpool; `docs/storage.md` says why), versioned migrations embedded in the
//! binary and run under an advisory lock so replicas that start together never race, and errors
//! that say which of them a caller may retry.
//!
//! Every area of the store ([`super::Backend`]) is here (`areas`), proven by the same conformance
//! suite as SQLite's.

mod areas;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;
use std::time::Duration;

use super::{Result, StoreError};

/// Versioned migrations, applied in order, each once.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_delivery_leases.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_sightings.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/postgres/0004_operator_sessions.sql"),
    ),
];

/// The advisory lock migrations run under ("Ledgerlk"): one replica migrates, the others wait
/// and then find nothing left to do.
const MIGRATION_LOCK: i64 = 0x4c65_6467_6572_6c6b;

/// How the pool reaches the database.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Connections kept at most.
    pub size: usize,
    /// How long a call waits for a free connection, or for a new one to open.
    pub timeout: Duration,
    /// PEM certificates of the authorities that may sign the server's certificate, besides the
    /// Mozilla roots (a private CA). Whether TLS is used is the URL's `sslmode`.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            size: 16,
            timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

/// The TLS client for the server's certificate: verified against the Mozilla roots and the
/// given CA file's. The URL's `sslmode` decides whether it is used (`disable`, `prefer`, the
/// default, or `require`); a certificate that does not verify is refused, whatever the mode.
fn tls(settings: &PoolSettings) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = &settings.ca_file {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| {
                StoreError::Failed(format!(
                    "the Postgres CA file {} does not read as PEM certificates: {e}",
                    file.display()
                ))
            })?;
        for cert in certs {
            roots.add(cert).map_err(|e| {
                StoreError::Failed(format!("a certificate in {}: {e}", file.display()))
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Failed(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A Postgres database behind a pool.
pub struct PostgresStore {
    pool: Pool,
    /// How to open a connection of its own (the listener's), outside the pool.
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// Held while the store is: a weak handle to it says when every handle has gone.
    alive: std::sync::Arc<()>,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            // No answer at all (the server went away, the socket closed): try again later.
            None => Self::Unavailable(e.to_string()),
            // Connection exceptions, shutdowns, insufficient resources, serialization failures:
            // nothing was stored, and the same call may work later.
            Some(code)
                if code.code().starts_with("08")
                    || code.code().starts_with("53")
                    || code.code().starts_with("57P")
                    || code.code() == "40001"
                    || code.code() == "40P01" =>
            {
                Self::Unavailable(e.to_string())
            }
            Some(_) => Self::Failed(e.as_db_error().map_or_else(
                || e.to_string(),
                |db| format!("{}: {}", db.code().code(), db.message()),
            )),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://` or `postgresql://`; TLS as its `sslmode` says) and brings
    /// the schema up to date. An unreachable database, a refused login or certificate, or a
    /// schema newer than this proxy is refused with the reason.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::Failed(format!(
                "the database URL does not read ({e}): use postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            ))
        })?;
        let tls = tls(settings)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.size.max(1))
            .wait_timeout(Some(settings.timeout))
            .create_timeout(Some(settings.timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Failed(format!("the database pool: {e}")))?;
        let store = Self {
            pool,
            config,
            tls,
            alive: std::sync::Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations this database has not had, all in one transaction under the
    /// advisory lock: a replica starting at the same moment waits, then finds them applied.
    async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
        let applied: Vec<i32> = tx
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if let Some(newer) = applied.iter().find(|v| **v > known) {
            return Err(StoreError::Migration {
                version: *newer as u32,
                reason: "the database was migrated by a newer Ledgerlink: update this one".into(),
            });
        }
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .map_err(|e| StoreError::Migration {
                    version: *version as u32,
                    reason: StoreError::from(e).to_string(),
                })?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The schema versions applied, oldest first.
    pub async fn schema_versions(&self) -> Result<Vec<i32>> {
        let client = self.pool.get().await?;
        Ok(client
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}

#[async_trait::async_trait]
impl super::WakeupStore for PostgresStore {
    /// LISTENs on a connection of its own (a pooled one would be handed to other work), and
    /// opens it again when it drops (the database restarted, a network cut): on each start both
    /// wakeups fire once, so nothing sent while it was away waits for a reader's next look.
    async fn listen(&self, wake: std::sync::Arc<dyn Fn(super::Wakeup) + Send + Sync>) {
        use futures_util::StreamExt;
        use tokio_postgres::AsyncMessage;
        let trouble = crate::logs::Every::minute();
        let mut failures = 0u32;
        loop {
            match self.config.connect(self.tls.clone()).await {
                Ok((client, mut connection)) => {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                    let driver = tokio::spawn(async move {
                        let mut messages =
                            futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                        while let Some(Ok(message)) = messages.next().await {
                            if let AsyncMessage::Notification(n) = message {
                                if tx.send(n.channel().to_string()).is_err() {
                                    break;
                                }
                            }
                        }
                    });
                    let listening = client
                        .batch_execute(&format!(
                            "LISTEN {}; LISTEN {}",
                            areas::EVENTS_CHANNEL,
                            areas::OUTBOX_CHANNEL
                        ))
                        .await;
                    match listening {
                        Ok(()) => {
                            if trouble.reported() {
                                tracing::info!("hearing the other proxies again");
                                trouble.reset();
                            }
                            failures = 0;
                            wake(super::Wakeup::Events);
                            wake(super::Wakeup::Outbox);
                            while let Some(channel) = rx.recv().await {
                                match channel.as_str() {
                                    areas::EVENTS_CHANNEL => wake(super::Wakeup::Events),
                                    areas::OUTBOX_CHANNEL => wake(super::Wakeup::Outbox),
                                    _ => {}
                                }
                            }
                        }
                        Err(e) => {
                            if trouble.due() {
                                tracing::warn!(error = %StoreError::from(e), "cannot listen for the other proxies' writes");
                            }
                        }
                    }
                    driver.abort();
                }
                Err(e) => {
                    if trouble.due() {
                        tracing::warn!(error = %StoreError::from(e), "cannot listen for the other proxies' writes; readers and delivery look every second meanwhile");
                    }
                }
            }
            failures = failures.saturating_add(1);
            tokio::time::sleep(crate::delivery::scheduler::backoff(
                failures,
                rand::random(),
            ))
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TestDatabase;
    use super::*;

    #[tokio::test]
    async fn replicas_starting_together_migrate_once() {
        let db = TestDatabase::empty().await;
        let settings = PoolSettings::default();
        let starts = (0..4).map(|_| PostgresStore::connect(db.url(), &settings));
        let stores = futures_util::future::join_all(starts).await;
        for store in &stores {
            assert!(store.is_ok(), "{:?}", store.as_ref().err());
        }
        let versions = stores[0].as_ref().unwrap().schema_versions().await.unwrap();
        let all: Vec<i32> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, all, "each migration once");
        // And again, as a restart: nothing left to do.
        let again = PostgresStore::connect(db.url(), &settings).await.unwrap();
        assert_eq!(again.schema_versions().await.unwrap(), all);
    }

    /// The event cursor only grows in commit order: while a writer that took an earlier `seq` is
    /// still open, a later writer waits, so a reader never sees event N+1 before event N and moves
    /// its cursor past N. (Without the lock the later event commits first; the reader's cursor
    /// passes the earlier one, which it then never reads.)
    #[tokio::test]
    async fn a_reader_never_skips_an_event_committed_after_a_later_one() {
        use crate::store::conformance::{a_paired_device, document};
        let db = TestDatabase::migrated().await;
        let store = PostgresStore::connect(db.url(), &PoolSettings::default())
            .await
            .unwrap();
        let storage = crate::store::Storage::new(store);
        let (c, device, now) = a_paired_device(&storage).await;
        let doc = document(
            &c,
            device,
            ledgerlink_wire::documents::DocumentKind::Invoice,
            "r1",
            now,
        );
        storage
            .documents()
            .insert_documents(std::slice::from_ref(&doc))
            .await
            .unwrap();
        let start = storage.events().events_after(device, 0, 100).await.unwrap();
        let cursor = start.last().map(|e| e.seq).unwrap();

        // A writer that takes its `seq` first and commits last, by the same rule as the store's.
        let (mut raw, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let slow = raw.transaction().await.unwrap();
        slow.execute("SELECT pg_advisory_xact_lock($1)", &[&areas::EVENTS_LOCK])
            .await
            .unwrap();
        let early: i64 = slow
            .query_one(
                "INSERT INTO events (connection_id, device_id, document_id, body, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING seq",
                &[
                    &c.id,
                    &device,
                    &doc.id,
                    &crate::store::events::EventBody::Document(doc.view()).text(),
                    &now,
                ],
            )
            .await
            .unwrap()
            .get(0);

        // The store records a later event meanwhile: it must wait for the first to commit.
        let later = {
            let (storage, doc) = (storage.clone(), doc.clone());
            let body = crate::store::events::EventBody::Document(doc.view());
            tokio::spawn(async move { storage.events().record_event(&doc, &body, now).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let seen = storage
            .events()
            .events_after(device, cursor, 100)
            .await
            .unwrap();
        assert!(
            seen.is_empty(),
            "nothing may be read past event {early} while it is uncommitted: {seen:?}"
        );
        assert!(
            !later.is_finished(),
            "the later writer waits for the earlier"
        );

        slow.commit().await.unwrap();
        later.await.unwrap().unwrap();
        let seen: Vec<i64> = storage
            .events()
            .events_after(device, cursor, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], early, "the earlier event first: {seen:?}");
        assert!(seen[1] > early);
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_reached_is_refused_with_the_reason() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = PoolSettings {
            timeout: Duration::from_secs(2),
            ..PoolSettings::default()
        };
        let url = format!("postgres://ledgerlink@127.0.0.1:{port}/ledgerlink");
        let refused = PostgresStore::connect(&url, &settings)
            .await
            .err()
            .expect("nothing listens there");
        assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
        let bad = PostgresStore::connect("mysql://x", &settings)
            .await
            .err()
            .expect("not a Postgres URL");
        assert!(bad.to_string().contains("postgres://"), "{bad}");
        // A server without TLS, asked for it: refused, never silently plain.
        let db = TestDatabase::empty().await;
        let tls = PostgresStore::connect(&format!("{}?sslmode=require", db.url()), &settings)
            .await
            .err()
            .expect("TLS required");
        assert!(tls.to_string().to_lowercase().contains("tls"), "{tls}");
    }

    // Multi-threaded: starting the cluster blocks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_is_used_when_the_url_asks_and_the_servers_certificate_must_verify() {
        let (cluster, ca) = tokio::task::spawn_blocking(super::testing::Cluster::start_tls)
            .await
            .unwrap();
        let url = format!("{}?sslmode=require", cluster.database().await);
        let trusted = PoolSettings {
            ca_file: Some(ca),
            ..PoolSettings::default()
        };
        let store = PostgresStore::connect(&url, &trusted)
            .await
            .expect("over TLS");
        let on_tls: bool = store
            .pool
            .get()
            .await
            .unwrap()
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(on_tls, "the connection is encrypted");
        // A certificate signed by a CA nobody gave: refused.
        let refused = PostgresStore::connect(&url, &PoolSettings::default())
            .await
            .err()
            .expect("an unknown CA is refused");
        assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
    }

    #[tokio::test]
    async fn a_schema_from_a_newer_proxy_is_refused() {
        let db = TestDatabase::empty().await;
        let settings = PoolSettings::default();
        let store = PostgresStore::connect(db.url(), &settings).await.unwrap();
        store
            .pool
            .get()
            .await
            .unwrap()
            .execute("INSERT INTO schema_migrations (version) VALUES (999)", &[])
            .await
            .unwrap();
        let refused = PostgresStore::connect(db.url(), &settings)
            .await
            .err()
            .expect("refused");
        assert!(
            refused.to_string().contains("newer Ledgerlink"),
            "{refused}"
        );
    }
}
