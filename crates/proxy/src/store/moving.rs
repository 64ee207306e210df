//! Moving a proxy's state from SQLite to Postgres (`ledgerlink-proxy migrate`): every table
//! copied row for row, ids unchanged (a token set's id is its ciphertext's associated data, so it
//! must not change), times and flags turned into Postgres's types, and the event cursor carried
//! over so a device's old `after` still means what it meant.
//!
//! The copy is one Postgres transaction: it lands whole or not at all. The SQLite file is opened
//! as a proxy opens it (its lock taken), so a database a running proxy holds is refused, and the
//! target must be empty: nothing already there is ever overwritten.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use std::path::Path;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::postgres::{PoolSettings, PostgresStore};
use super::sqlite::SqliteStore;
use super::{Result, StoreError};

/// The tables in the order their foreign keys allow (each after what it refers to).
const TABLES: &[&str] = &[
    "key_check",
    "token_sets",
    "connections",
    "organisations",
    "devices",
    "device_tokens",
    "pairings",
    "oauth_states",
    "pending_choices",
    "documents",
    "document_versions",
    "bundles",
    "events",
    "mappings",
    "contact_ids",
    "contact_generations",
    "delivery_leases",
    "refresh_leases",
    "throttles",
    "call_slices",
    "sightings",
    "operator_logins",
    "operator_sessions",
];

/// What was copied: each table with its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub tables: Vec<(String, u64)>,
    /// The event cursor the Postgres database carries on from.
    pub last_event: i64,
}

type Param = Box<dyn ToSql + Sync + Send>;

fn bad(table: &str, column: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table}.{column}: {why}"))
}

/// One SQLite value as the Postgres column's type wants it.
fn convert(table: &str, column: &str, pg_type: &str, v: Value) -> Result<Param> {
    let none = |t: &str| -> Result<Param> {
        Ok(match t {
            "uuid" => Box::new(None::<Uuid>),
            "timestamp with time zone" => Box::new(None::<DateTime<Utc>>),
            "bytea" => Box::new(None::<Vec<u8>>),
            "boolean" => Box::new(None::<bool>),
            "bigint" => Box::new(None::<i64>),
            "integer" => Box::new(None::<i32>),
            "ARRAY" => Box::new(None::<Vec<Uuid>>),
            _ => Box::new(None::<String>),
        })
    };
    let uuid = |s: &str| Uuid::parse_str(s).map_err(|e| bad(table, column, e));
    Ok(match (pg_type, v) {
        (t, Value::Null) => return none(t),
        ("uuid", Value::Text(s)) => Box::new(uuid(&s)?),
        ("uuid", Value::Blob(b)) => {
            Box::new(Uuid::from_slice(&b).map_err(|e| bad(table, column, e))?)
        }
        ("timestamp with time zone", Value::Integer(ms)) => Box::new(
            DateTime::<Utc>::from_timestamp_millis(ms)
                .ok_or_else(|| bad(table, column, format!("{ms} is not a time")))?,
        ),
        ("bytea", Value::Blob(b)) => Box::new(b),
        ("bytea", Value::Text(s)) => Box::new(s.into_bytes()),
        ("boolean", Value::Integer(n)) => Box::new(n != 0),
        ("bigint", Value::Integer(n)) => Box::new(n),
        ("integer", Value::Integer(n)) => {
            Box::new(i32::try_from(n).map_err(|e| bad(table, column, e))?)
        }
        // A bundle's members: a JSON list of ids in SQLite, `uuid[]` in Postgres.
        ("ARRAY", Value::Text(s)) => {
            Box::new(serde_json::from_str::<Vec<Uuid>>(&s).map_err(|e| bad(table, column, e))?)
        }
        ("text", Value::Text(s)) => Box::new(s),
        ("text", Value::Integer(n)) => Box::new(n.to_string()),
        (t, v) => {
            return Err(bad(
                table,
                column,
                format!("a {:?} value where Postgres keeps {t}", v.data_type()),
            ))
        }
    })
}

/// Copies the SQLite database at `from` into the Postgres database at `to` (migrated first to
/// this proxy's schema), which must be empty.
pub async fn sqlite_to_postgres(from: &Path, to: &str, pool: &PoolSettings) -> Result<Moved> {
    let source = {
        let from = from.to_path_buf();
        tokio::task::spawn_blocking(move || SqliteStore::open(&from))
            .await
            .map_err(|e| StoreError::Failed(format!("opening the SQLite database: {e}")))??
    };
    let target = PostgresStore::connect(to, pool).await?;
    let mut client = target.client().await?;
    let tx = client.transaction().await?;
    // A table this list does not name would be left behind: refuse rather than move half.
    let unknown: Vec<String> = tx
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
               AND table_name <> 'schema_migrations' AND NOT (table_name = ANY($1))",
            &[&TABLES],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !unknown.is_empty() {
        return Err(StoreError::Failed(format!(
            "this proxy does not know how to move the tables {}",
            unknown.join(", ")
        )));
    }
    for table in TABLES {
        let found = tx
            .query_opt(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])
            .await?;
        if found.is_some() {
            return Err(StoreError::Failed(format!(
                "the Postgres database already holds data (table {table}): moving up needs an empty one, so nothing there is overwritten"
            )));
        }
    }
    let mut moved = Vec::new();
    for table in TABLES {
        let columns: Vec<(String, String)> = tx
            .query(
                "SELECT column_name, data_type FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                &[table],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let list = names.join(", ");
        let rows: Vec<Vec<Value>> = source.read(|c| {
            let mut stmt = c.prepare(&format!("SELECT {list} FROM {table}"))?;
            let n = names.len();
            let rows = stmt
                .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())?
                .collect();
            rows
        })?;
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        // The event cursor is copied, not made afresh: a device's `after` keeps its meaning.
        let overriding = if *table == "events" {
            "OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {table} ({list}) {overriding} VALUES ({})",
                placeholders.join(", ")
            ))
            .await?;
        let count = rows.len() as u64;
        for row in rows {
            let params = row
                .into_iter()
                .zip(&columns)
                .map(|(v, (name, ty))| convert(table, name, ty, v))
                .collect::<Result<Vec<Param>>>()?;
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            tx.execute(&insert, &refs).await?;
        }
        moved.push((table.to_string(), count));
    }
    let last_event: i64 = tx
        .query_one("SELECT COALESCE(MAX(seq), 0) FROM events", &[])
        .await?
        .get(0);
    if last_event > 0 {
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('events', 'seq'), $1)",
            &[&last_event],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Moved {
        tables: moved,
        last_event,
    })
}
