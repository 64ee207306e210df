//! The device's own outbox (SQLite in the data directory): every document is saved here first, so a
//! till keeps taking sales while the proxy is unreachable. A document is `pending` until the proxy
//! has it; from then on its state mirrors the proxy's events (queued, sending, sent with Xero's
//! number, failed with Xero's message, paid, voided), or it is `rejected` with the proxy's reasons.
//!
//! Several processes may share one outbox (the desktop app and the CLI): SQLite's WAL and a busy
//! timeout serialise their writes, and a document both send reaches Xero once because the proxy
//! dedupes by `(device, client_ref)`.

use chrono::{DateTime, Utc};
use ledgerlink_wire::documents::{DocumentKind, DocumentState, DocumentView, Problem};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// One document as the device knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The order documents were saved in (and are sent in).
    pub seq: i64,
    pub client_ref: String,
    pub kind: DocumentKind,
    pub state: DocumentState,
    /// The document as pushed (amounts as exact decimal strings).
    pub body: Value,
    pub xero_id: Option<String>,
    pub xero_number: Option<String>,
    /// Xero's message when it refused the document, or the proxy's reasons when it rejected it.
    pub message: Option<String>,
    /// 1, and one more for each correction the proxy accepted (as the proxy counts them).
    pub version: u32,
    /// Why a person discarded it.
    pub discard_reason: Option<String>,
    /// The organisation the proxy took it for, and its Xero short code.
    pub organisation: Option<String>,
    pub short_code: Option<String>,
    /// The provider's own status for it, as last heard (HubRise: an order `cancelled` there).
    pub provider_status: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What saving a document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    New,
    /// The same document was already in the outbox: nothing changed.
    AlreadySaved,
    /// It replaces a document of the same `client_ref` that the proxy had rejected (the proxy never
    /// had it: the same version).
    Replaced,
    /// It corrects a document of the same `client_ref` that Xero refused: the next version, sent
    /// as a correction.
    Corrected,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("{}", in_use_message(client_ref, kind, *state))]
    ClientRefInUse {
        client_ref: String,
        kind: String,
        state: DocumentState,
    },
    /// The document is not in a state the action takes.
    #[error("'{client_ref}' cannot be {action}: {why}")]
    NotNow {
        client_ref: String,
        action: &'static str,
        why: String,
    },
    #[error("there is no document '{0}' on this device")]
    NotFound(String),
    #[error("the outbox at {path} cannot be used: {reason}")]
    Storage { path: String, reason: String },
}

fn in_use_message(client_ref: &str, kind: &str, state: DocumentState) -> String {
    if !matches!(kind, "invoice" | "payment" | "shift") || state.correctable() {
        return format!("'{client_ref}' is already used by a {kind} in the outbox: give this document its own client_ref");
    }
    format!(
        "'{client_ref}' is already {} ({kind}): only a failed or rejected document can be corrected; give this document its own client_ref",
        state.as_str()
    )
}

/// How many documents are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pending: usize,
    pub queued: usize,
    pub sending: usize,
    pub sent: usize,
    pub failed: usize,
    pub paid: usize,
    pub voided: usize,
    pub rejected: usize,
    pub discarded: usize,
    pub voiding: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.pending
            + self.queued
            + self.sending
            + self.sent
            + self.failed
            + self.paid
            + self.voided
            + self.rejected
            + self.discarded
            + self.voiding
    }

    /// Documents waiting for a person: failed or rejected, neither corrected (a correction is
    /// queued again) nor discarded.
    pub fn needs_attention(&self) -> usize {
        self.failed + self.rejected
    }

    /// Documents the proxy does not have yet.
    pub fn unsent(&self) -> usize {
        self.pending
    }

    /// Documents not yet in Xero, nor refused.
    pub fn in_flight(&self) -> usize {
        self.pending + self.queued + self.sending + self.voiding
    }
}

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE documents (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    client_ref  TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    body        TEXT NOT NULL,
    xero_id     TEXT,
    xero_number TEXT,
    message     TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX documents_by_state ON documents (state, seq);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"#,
    r#"
ALTER TABLE documents ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE documents ADD COLUMN discard_reason TEXT;
"#,
    r#"
-- A void asked for on this device that the proxy has not heard of yet (it goes with the next sync).
ALTER TABLE documents ADD COLUMN void_requested INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- The organisation a document went to, and its Xero short code (for the link into Xero): a device
-- moved to another organisation keeps where each earlier document went.
ALTER TABLE documents ADD COLUMN organisation TEXT;
ALTER TABLE documents ADD COLUMN short_code TEXT;
-- What was sent before this went to the organisation the device knew then.
UPDATE documents
   SET organisation = json_extract((SELECT value FROM meta WHERE key = 'connection'), '$.organisation_name'),
       short_code = json_extract((SELECT value FROM meta WHERE key = 'connection'), '$.short_code')
 WHERE xero_id IS NOT NULL;
"#,
    r#"
-- What the provider last said of a sent document (HubRise: the order was cancelled there).
ALTER TABLE documents ADD COLUMN provider_status TEXT;
"#,
];

pub struct Outbox {
    conn: Mutex<Connection>,
    path: String,
}

fn storage(path: &str, e: impl std::fmt::Display) -> OutboxError {
    OutboxError::Storage {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let kind: String = r.get(2)?;
    let state: String = r.get(3)?;
    let body: String = r.get(4)?;
    let time = |i: usize| -> rusqlite::Result<DateTime<Utc>> {
        let t: String = r.get(i)?;
        DateTime::parse_from_rfc3339(&t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
            })
    };
    Ok(Entry {
        seq: r.get(0)?,
        client_ref: r.get(1)?,
        kind: DocumentKind::parse(&kind).unwrap_or(DocumentKind::Invoice),
        state: DocumentState::parse(&state).unwrap_or(DocumentState::Pending),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        xero_id: r.get(5)?,
        xero_number: r.get(6)?,
        message: r.get(7)?,
        created_at: time(8)?,
        updated_at: time(9)?,
        version: r.get(10)?,
        discard_reason: r.get(11)?,
        organisation: r.get(12)?,
        short_code: r.get(13)?,
        provider_status: r.get(14)?,
    })
}

/// The provider's id of a document: `provider_id`, or from a proxy older than it, `xero_id`.
fn provider_id(v: &DocumentView) -> Option<String> {
    v.provider_id
        .clone()
        .or_else(|| v.xero_id.map(|i| i.to_string()))
}

fn provider_number(v: &DocumentView) -> Option<String> {
    v.provider_number.clone().or_else(|| v.xero_number.clone())
}

const COLUMNS: &str =
    "seq, client_ref, kind, state, body, xero_id, xero_number, message, created_at, updated_at, version, discard_reason, organisation, short_code, provider_status";

/// The proxy's reasons for refusing a document, as one message.
pub fn problems_message(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Outbox {
    /// Opens (making it on first use) `outbox.db` in the data directory.
    pub fn open(dir: &Path) -> Result<Self, OutboxError> {
        let path = dir.join("outbox.db");
        let shown = path.display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| storage(&shown, e))?;
        let mut conn = Connection::open(&path).map_err(|e| storage(&shown, e))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| storage(&shown, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| storage(&shown, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| storage(&shown, e))?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| storage(&shown, e))?;
        let version: usize = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| storage(&shown, e))?;
        if version > MIGRATIONS.len() {
            return Err(storage(
                &shown,
                "it was written by a newer Ledgerlink: update this one",
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql).map_err(|e| storage(&shown, e))?;
            tx.pragma_update(None, "user_version", i + 1)
                .map_err(|e| storage(&shown, e))?;
        }
        tx.commit().map_err(|e| storage(&shown, e))?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: shown,
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, OutboxError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(|e| storage(&self.path, e))
    }

    /// Saves a document (already checked, with its `client_ref`) as `pending`, by the proxy's
    /// rule: the same document again changes nothing; a different one under the `client_ref` of a
    /// rejected document replaces it, and of a failed one corrects it (the next version); under
    /// any other document's `client_ref` it is refused. A replaced or corrected document moves to
    /// the end: it is sent after what was saved before it now.
    pub fn save(&self, kind: DocumentKind, document: &Value) -> Result<Saved, OutboxError> {
        let client_ref = document["client_ref"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let body = document.to_string();
        let now = Utc::now().to_rfc3339();
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| storage(&self.path, e))?;
        let existing: Option<(String, String, String, u32)> = tx
            .query_row(
                "SELECT kind, state, body, version FROM documents WHERE client_ref = ?1",
                [&client_ref],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| storage(&self.path, e))?;
        let state_of = |s: &str| DocumentState::parse(s).unwrap_or(DocumentState::Pending);
        let (saved, version) = match existing {
            None => (Saved::New, 1),
            Some((k, _, b, _))
                if k == kind.as_str()
                    && serde_json::from_str::<Value>(&b).ok().as_ref() == Some(document) =>
            {
                return Ok(Saved::AlreadySaved);
            }
            Some((k, state, _, version))
                if k == kind.as_str() && state_of(&state).correctable() =>
            {
                tx.execute("DELETE FROM documents WHERE client_ref = ?1", [&client_ref])
                    .map_err(|e| storage(&self.path, e))?;
                if state_of(&state) == DocumentState::Failed {
                    (Saved::Corrected, version + 1)
                } else {
                    (Saved::Replaced, version)
                }
            }
            Some((k, state, _, _)) => {
                return Err(OutboxError::ClientRefInUse {
                    client_ref,
                    kind: k,
                    state: state_of(&state),
                })
            }
        };
        tx.execute(
            "INSERT INTO documents (client_ref, kind, state, body, created_at, updated_at, version)
             VALUES (?1, ?2, 'pending', ?3, ?4, ?4, ?5)",
            params![client_ref, kind.as_str(), body, now, version],
        )
        .map_err(|e| storage(&self.path, e))?;
        tx.commit().map_err(|e| storage(&self.path, e))?;
        Ok(saved)
    }

    /// A rejected document back to `pending`, unchanged, to go to the proxy again (its mapping may
    /// be set now).
    pub fn resend_rejected(&self, client_ref: &str) -> Result<Entry, OutboxError> {
        self.change(client_ref, "sent again", &[DocumentState::Rejected], |c, now| {
            c.execute(
                "UPDATE documents SET state = 'pending', message = NULL, updated_at = ?2 WHERE client_ref = ?1",
                params![client_ref, now],
            )
        })
    }

    /// Asks for a sent invoice to be voided: `voiding` here at once, and the request goes to the
    /// proxy with the next sync (so it works offline).
    pub fn request_void(&self, client_ref: &str) -> Result<Entry, OutboxError> {
        let entry = self
            .get(client_ref)?
            .ok_or_else(|| OutboxError::NotFound(client_ref.to_string()))?;
        if entry.kind != DocumentKind::Invoice {
            return Err(OutboxError::NotNow {
                client_ref: client_ref.to_string(),
                action: "voided",
                why: format!("it is a {}; only an invoice is voided", entry.kind.as_str()),
            });
        }
        self.change(client_ref, "voided", &[DocumentState::Sent], |c, now| {
            c.execute(
                "UPDATE documents SET state = 'voiding', void_requested = 1, message = NULL, updated_at = ?2
                 WHERE client_ref = ?1",
                params![client_ref, now],
            )
        })
    }

    /// The voids asked for here that the proxy has not answered yet.
    pub fn void_requests(&self) -> Result<Vec<Entry>, OutboxError> {
        self.with(|c| {
            let mut q = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM documents WHERE void_requested = 1 ORDER BY updated_at"
            ))?;
            let rows = q.query_map([], row)?;
            rows.collect()
        })
    }

    /// The proxy's answer to a void asked for here: its view of the document, or why it refused
    /// (the document is `sent` again, with the reason).
    pub fn void_answered(
        &self,
        client_ref: &str,
        answer: Result<&DocumentView, &str>,
    ) -> Result<(), OutboxError> {
        let now = Utc::now().to_rfc3339();
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE documents SET void_requested = 0 WHERE client_ref = ?1",
                [client_ref],
            )?;
            match answer {
                Ok(view) => {
                    follow(&tx, view, &now)?;
                }
                Err(why) => {
                    tx.execute(
                        "UPDATE documents SET state = 'sent', message = ?2, updated_at = ?3
                         WHERE client_ref = ?1 AND state = 'voiding'",
                        params![client_ref, why, now],
                    )?;
                }
            }
            tx.commit()
        })
    }

    /// Puts aside a document the proxy does not have (pending or rejected), with the reason.
    pub fn discard_local(&self, client_ref: &str, reason: &str) -> Result<Entry, OutboxError> {
        self.change(
            client_ref,
            "discarded here",
            &[DocumentState::Pending, DocumentState::Rejected],
            |c, now| {
                c.execute(
                    "UPDATE documents SET state = 'discarded', discard_reason = ?2, updated_at = ?3 WHERE client_ref = ?1",
                    params![client_ref, reason, now],
                )
            },
        )
    }

    /// Changes one document if it is in one of `states` (in one transaction), answering it as it is
    /// now.
    fn change(
        &self,
        client_ref: &str,
        action: &'static str,
        states: &[DocumentState],
        f: impl FnOnce(&Connection, &str) -> rusqlite::Result<usize>,
    ) -> Result<Entry, OutboxError> {
        let now = Utc::now().to_rfc3339();
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| storage(&self.path, e))?;
        let select = format!("SELECT {COLUMNS} FROM documents WHERE client_ref = ?1");
        let entry = tx
            .query_row(&select, [client_ref], row)
            .optional()
            .map_err(|e| storage(&self.path, e))?
            .ok_or_else(|| OutboxError::NotFound(client_ref.to_string()))?;
        if !states.contains(&entry.state) {
            return Err(OutboxError::NotNow {
                client_ref: client_ref.to_string(),
                action,
                why: format!("it is {}", entry.state.as_str()),
            });
        }
        f(&tx, &now).map_err(|e| storage(&self.path, e))?;
        let entry = tx
            .query_row(&select, [client_ref], row)
            .map_err(|e| storage(&self.path, e))?;
        tx.commit().map_err(|e| storage(&self.path, e))?;
        Ok(entry)
    }

    /// Whether anything waits to go to the proxy, a document or a void (cheap to ask often).
    pub fn has_pending(&self) -> Result<bool, OutboxError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM documents WHERE state = 'pending' OR void_requested = 1)",
            )?
                .query_row([], |r| r.get(0))
        })
    }

    /// The oldest documents the proxy does not have yet, in the order they were saved.
    pub fn pending(&self, limit: usize) -> Result<Vec<Entry>, OutboxError> {
        self.with(|c| {
            let mut q = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM documents WHERE state = 'pending' ORDER BY seq LIMIT ?1"
            ))?;
            let rows = q.query_map([limit as i64], row)?;
            rows.collect()
        })
    }

    /// Records the proxy's answers to an upload, by row (`seq`). Only a `pending` row takes one: an
    /// event may already have moved the document further (another process sent it too), and a
    /// rejected document saved again is a new row that a late answer about the old one must not
    /// touch.
    /// Records the proxy's answers to an upload; accepted documents remember the organisation they
    /// went to (`sent_to`: its name and Xero short code).
    pub fn uploaded(
        &self,
        answers: &[(i64, Upload)],
        sent_to: Option<(&str, Option<&str>)>,
    ) -> Result<(), OutboxError> {
        let now = Utc::now().to_rfc3339();
        self.with(|c| {
            let tx = c.transaction()?;
            for (seq, answer) in answers {
                match answer {
                    Upload::Accepted(view) => {
                        tx.execute(
                            "UPDATE documents SET state = ?2, xero_id = ?3, xero_number = ?4, message = ?5,
                             updated_at = ?6, version = COALESCE(?7, version), discard_reason = ?8
                             WHERE seq = ?1 AND state = 'pending'",
                            params![
                                seq,
                                view.as_ref().map_or("queued", |v| v.state.as_str()),
                                view.as_deref().and_then(provider_id),
                                view.as_deref().and_then(provider_number),
                                view.as_ref().and_then(|v| v.message.clone()),
                                now,
                                view.as_ref().map(|v| v.version),
                                view.as_ref().and_then(|v| v.discard_reason.clone()),
                            ],
                        )?;
                        // Where it went, even when its events got here before this answer did.
                        if let Some((name, code)) = sent_to {
                            tx.execute(
                                "UPDATE documents SET organisation = ?2, short_code = ?3
                                 WHERE seq = ?1 AND organisation IS NULL",
                                params![seq, name, code],
                            )?;
                        }
                    }
                    Upload::Rejected(message) => {
                        tx.execute(
                            "UPDATE documents SET state = 'rejected', message = ?2, updated_at = ?3
                             WHERE seq = ?1 AND state = 'pending'",
                            params![seq, message, now],
                        )?;
                    }
                }
            }
            tx.commit()
        })
    }

    /// Applies events from the proxy's feed, given as `(seq, document)` in feed order, and moves
    /// the cursor to `next`, in one transaction. Another process may have read further meanwhile:
    /// events at or below the stored cursor are skipped and the cursor never moves back. Answers
    /// how many documents of this outbox changed.
    pub fn apply(&self, events: &[(i64, &DocumentView)], next: i64) -> Result<usize, OutboxError> {
        let now = Utc::now().to_rfc3339();
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let stored: i64 = tx
                .query_row(
                    "SELECT value FROM meta WHERE key = 'events_cursor'",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut changed = 0;
            for (_, v) in events.iter().filter(|(seq, _)| *seq > stored) {
                changed += follow(&tx, v, &now)?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('events_cursor', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [next.max(stored).to_string()],
            )?;
            tx.commit()?;
            Ok(changed)
        })
    }

    /// Takes the proxy's word for one document (its answer to a person's action).
    pub fn record(&self, view: &DocumentView) -> Result<(), OutboxError> {
        let now = Utc::now().to_rfc3339();
        self.with(|c| follow(c, view, &now).map(|_| ()))
    }

    /// Starts the event feed from the beginning: after pairing, the feed is a new one (another
    /// proxy, or a restored one), and replaying it in order ends at the latest states.
    pub fn reset_cursor(&self) -> Result<(), OutboxError> {
        self.set_meta("events_cursor", "0")
    }

    /// Where the event feed was read up to.
    pub fn cursor(&self) -> Result<i64, OutboxError> {
        Ok(self
            .meta("events_cursor")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, OutboxError> {
        self.with(|c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        })
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), OutboxError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(|_| ())
        })
    }

    /// Every document, newest first, optionally of one state.
    pub fn list(&self, state: Option<DocumentState>) -> Result<Vec<Entry>, OutboxError> {
        self.with(|c| {
            let mut q = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM documents WHERE ?1 IS NULL OR state = ?1 ORDER BY seq DESC"
            ))?;
            let rows = q.query_map([state.map(DocumentState::as_str)], row)?;
            rows.collect()
        })
    }

    pub fn get(&self, client_ref: &str) -> Result<Option<Entry>, OutboxError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM documents WHERE client_ref = ?1"),
                [client_ref],
                row,
            )
            .optional()
        })
    }

    pub fn counts(&self) -> Result<Counts, OutboxError> {
        self.with(|c| {
            let mut q = c.prepare_cached("SELECT state, COUNT(*) FROM documents GROUP BY state")?;
            let mut counts = Counts::default();
            for r in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (state, n) = r?;
                let n = n as usize;
                match DocumentState::parse(&state) {
                    Some(DocumentState::Pending) => counts.pending += n,
                    Some(DocumentState::Queued) => counts.queued += n,
                    Some(DocumentState::Sending) => counts.sending += n,
                    Some(DocumentState::Sent) => counts.sent += n,
                    Some(DocumentState::Failed) => counts.failed += n,
                    Some(DocumentState::Paid) => counts.paid += n,
                    Some(DocumentState::Voided) => counts.voided += n,
                    Some(DocumentState::Voiding) => counts.voiding += n,
                    Some(DocumentState::Discarded) => counts.discarded += n,
                    Some(DocumentState::Rejected) | None => counts.rejected += n,
                }
            }
            Ok(counts)
        })
    }
}

/// Moves a document to the state the proxy reports. A report about an older version than the
/// device has (a correction not yet uploaded) is left alone: it would undo the correction.
fn follow(c: &Connection, v: &DocumentView, now: &str) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE documents SET state = ?3, xero_id = COALESCE(?4, xero_id),
         xero_number = COALESCE(?5, xero_number), message = ?6, updated_at = ?7, version = ?8,
         discard_reason = ?9, provider_status = COALESCE(?10, provider_status)
         WHERE client_ref = ?1 AND kind = ?2 AND version <= ?8
           AND NOT (void_requested = 1 AND ?3 = 'sent')
           AND (state != ?3 OR xero_number IS NOT ?5 OR message IS NOT ?6 OR version != ?8
                OR (?10 IS NOT NULL AND provider_status IS NOT ?10))",
        params![
            v.client_ref,
            v.kind.as_str(),
            v.state.as_str(),
            provider_id(v),
            provider_number(v),
            v.message,
            now,
            v.version,
            v.discard_reason,
            v.provider_status,
        ],
    )
}

/// The proxy's answer about one uploaded document.
#[derive(Debug, Clone)]
pub enum Upload {
    /// Stored at the proxy (now or by an earlier upload), with its state there when known.
    Accepted(Option<Box<DocumentView>>),
    /// Refused, with the reasons.
    Rejected(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("ll-outbox-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn documents_sent_before_the_upgrade_keep_the_organisation_the_device_knew_then() {
        let dir = temp();
        std::fs::create_dir_all(&dir).unwrap();
        {
            // An outbox as the previous release left it (schema 3).
            let c = Connection::open(dir.join("outbox.db")).unwrap();
            for sql in &MIGRATIONS[..3] {
                c.execute_batch(sql).unwrap();
            }
            c.pragma_update(None, "user_version", 3).unwrap();
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('connection', ?1)",
                [
                    json!({"organisation_name": "Demo Company (NZ)", "short_code": "!kX9pQ"})
                        .to_string(),
                ],
            )
            .unwrap();
            c.execute_batch(
                "INSERT INTO documents (client_ref, kind, state, body, xero_id, xero_number, created_at, updated_at)
                 VALUES ('sent', 'invoice', 'sent', '{}', 'a1b2', 'INV-1', '2026-11-20T00:00:00Z', '2026-11-20T00:00:00Z'),
                        ('waiting', 'invoice', 'pending', '{}', NULL, NULL, '2026-11-20T00:00:00Z', '2026-11-20T00:00:00Z');",
            )
            .unwrap();
        }
        let outbox = Outbox::open(&dir).unwrap();
        let sent = outbox.get("sent").unwrap().unwrap();
        assert_eq!(
            (sent.organisation.as_deref(), sent.short_code.as_deref()),
            (Some("Demo Company (NZ)"), Some("!kX9pQ"))
        );
        let waiting = outbox.get("waiting").unwrap().unwrap();
        assert_eq!(waiting.organisation, None, "not sent anywhere yet");
        std::fs::remove_dir_all(dir).ok();
    }

    fn view(client_ref: &str, state: DocumentState, number: Option<&str>) -> DocumentView {
        DocumentView {
            provider_id: None,
            provider_number: None,
            id: uuid::Uuid::new_v4(),
            kind: DocumentKind::Invoice,
            client_ref: client_ref.into(),
            state,
            xero_id: number.map(|_| uuid::Uuid::new_v4()),
            xero_number: number.map(str::to_string),
            message: None,
            version: 1,
            discard_reason: None,
            provider_status: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            history: None,
        }
    }

    #[test]
    fn documents_are_saved_once_sent_in_order_and_follow_the_proxy() {
        let dir = temp();
        let outbox = Outbox::open(&dir).unwrap();
        let a = json!({"client_ref": "a", "n": 1});
        assert_eq!(outbox.save(DocumentKind::Invoice, &a).unwrap(), Saved::New);
        assert_eq!(
            outbox.save(DocumentKind::Invoice, &a).unwrap(),
            Saved::AlreadySaved
        );
        let clash = outbox
            .save(DocumentKind::Invoice, &json!({"client_ref": "a", "n": 2}))
            .unwrap_err();
        assert!(clash.to_string().contains("its own client_ref"), "{clash}");
        outbox
            .save(DocumentKind::Payment, &json!({"client_ref": "b"}))
            .unwrap();
        let pending: Vec<String> = outbox
            .pending(10)
            .unwrap()
            .into_iter()
            .map(|e| e.client_ref)
            .collect();
        assert_eq!(pending, ["a", "b"]);

        // An event from another process's upload arrives before this one's answer: the answer
        // does not move the document back.
        outbox
            .apply(&[(3, &view("a", DocumentState::Sent, Some("INV-0001")))], 3)
            .unwrap();
        // A slower process applying older events cannot move the document or the cursor back.
        outbox
            .apply(&[(2, &view("a", DocumentState::Queued, None))], 2)
            .unwrap();
        let seq = |r: &str| outbox.get(r).unwrap().unwrap().seq;
        outbox
            .uploaded(
                &[
                    (
                        seq("a"),
                        Upload::Accepted(Some(Box::new(view("a", DocumentState::Queued, None)))),
                    ),
                    (
                        seq("b"),
                        Upload::Rejected("payments[0].tender: map it".into()),
                    ),
                ],
                Some(("Demo Company (NZ)", Some("!kX9pQ"))),
            )
            .unwrap();
        let a = outbox.get("a").unwrap().unwrap();
        assert_eq!(
            (a.organisation.as_deref(), a.short_code.as_deref()),
            (Some("Demo Company (NZ)"), Some("!kX9pQ")),
            "an accepted document keeps where it went"
        );
        assert_eq!(
            (a.state, a.xero_number.as_deref()),
            (DocumentState::Sent, Some("INV-0001"))
        );
        assert_eq!(outbox.cursor().unwrap(), 3);
        let counts = outbox.counts().unwrap();
        assert_eq!((counts.sent, counts.rejected, counts.total()), (1, 1, 2));

        // A rejected document saved again unchanged is the same document: it is sent again
        // with `resend_rejected` (its category may be mapped since), and fixed under its
        // client_ref by saving the fixed one.
        let old_b = seq("b");
        assert_eq!(
            outbox
                .save(DocumentKind::Payment, &json!({"client_ref": "b"}))
                .unwrap(),
            Saved::AlreadySaved
        );
        assert_eq!(
            outbox.resend_rejected("b").unwrap().state,
            DocumentState::Pending
        );
        outbox
            .uploaded(&[(old_b, Upload::Rejected("still unmapped".into()))], None)
            .unwrap();
        assert_eq!(
            outbox
                .save(
                    DocumentKind::Payment,
                    &json!({"client_ref": "b", "fixed": true})
                )
                .unwrap(),
            Saved::Replaced
        );
        // A late answer about the old row leaves the new one alone.
        outbox
            .uploaded(&[(old_b, Upload::Rejected("late".into()))], None)
            .unwrap();
        let b = outbox.get("b").unwrap().unwrap();
        assert_eq!((b.state, b.version), (DocumentState::Pending, 1));
        assert_eq!(outbox.counts().unwrap().pending, 1);
        // Neither a sent document can be changed, nor a pending one discarded twice.
        let sent = outbox
            .save(DocumentKind::Invoice, &json!({"client_ref": "a", "n": 3}))
            .unwrap_err();
        assert!(sent.to_string().contains("already sent"), "{sent}");
        outbox.discard_local("b", "typed twice").unwrap();
        assert!(matches!(
            outbox.discard_local("b", "again"),
            Err(OutboxError::NotNow { .. })
        ));
        assert_eq!(outbox.counts().unwrap().discarded, 1);
        drop(outbox);
        // Reopened: everything is still there.
        let again = Outbox::open(&dir).unwrap();
        assert_eq!(again.list(None).unwrap().len(), 2);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_failed_document_is_corrected_as_its_next_version_and_old_news_cannot_undo_it() {
        let dir = temp();
        let outbox = Outbox::open(&dir).unwrap();
        outbox
            .save(DocumentKind::Invoice, &json!({"client_ref": "c", "n": 1}))
            .unwrap();
        outbox
            .uploaded(
                &[(
                    1,
                    Upload::Accepted(Some(Box::new(view("c", DocumentState::Queued, None)))),
                )],
                None,
            )
            .unwrap();
        let mut failed = view("c", DocumentState::Failed, None);
        failed.message = Some("Account code '999' is not valid".into());
        outbox.apply(&[(1, &failed)], 1).unwrap();
        assert_eq!(outbox.counts().unwrap().needs_attention(), 1);
        assert_eq!(
            outbox
                .save(DocumentKind::Invoice, &json!({"client_ref": "c", "n": 2}))
                .unwrap(),
            Saved::Corrected
        );
        let c = outbox.get("c").unwrap().unwrap();
        assert_eq!(
            (c.state, c.version, c.message),
            (DocumentState::Pending, 2, None)
        );
        assert_eq!(outbox.counts().unwrap().needs_attention(), 0);
        // The feed repeats the old version's failure (another process read it late): the
        // correction, not yet sent, stays.
        outbox.apply(&[(2, &failed)], 2).unwrap();
        assert_eq!(
            outbox.get("c").unwrap().unwrap().state,
            DocumentState::Pending
        );
        // The proxy's word on the new version is taken.
        let mut queued = view("c", DocumentState::Queued, None);
        queued.version = 2;
        outbox.apply(&[(3, &queued)], 3).unwrap();
        assert_eq!(
            outbox.get("c").unwrap().unwrap().state,
            DocumentState::Queued
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
