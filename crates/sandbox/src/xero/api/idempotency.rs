//! `Idempotency-Key` on PUT/POST/PATCH: the first answer (errors too) is kept for a window and
//! replayed for the same key; the same key with a different request answers `400`.

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Stored {
    fingerprint: [u8; 32],
    pub status: StatusCode,
    pub body: Value,
    stored: DateTime<Utc>,
}

/// Keys are scoped to (app, tenant).
#[derive(Debug, Default)]
pub struct Store {
    entries: HashMap<(String, Uuid, String), Stored>,
}

pub enum Lookup {
    Replay(StatusCode, Value),
    /// The key was used for a different request inside the window.
    Conflict,
    New,
}

pub fn fingerprint(method: &str, path: &str, query: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        method.as_bytes(),
        path.to_ascii_lowercase().as_bytes(),
        query.as_bytes(),
        body,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

impl Store {
    pub fn lookup(
        &mut self,
        scope: (&str, Uuid, &str),
        fingerprint: [u8; 32],
        now: DateTime<Utc>,
        window: Duration,
    ) -> Lookup {
        let key = (scope.0.to_string(), scope.1, scope.2.to_string());
        match self.entries.get(&key) {
            Some(e) if now < e.stored + window => {
                if e.fingerprint == fingerprint {
                    Lookup::Replay(e.status, e.body.clone())
                } else {
                    Lookup::Conflict
                }
            }
            Some(_) => {
                self.entries.remove(&key);
                Lookup::New
            }
            None => Lookup::New,
        }
    }

    pub fn store(
        &mut self,
        scope: (&str, Uuid, &str),
        fingerprint: [u8; 32],
        status: StatusCode,
        body: Value,
        now: DateTime<Utc>,
        window: Duration,
    ) {
        if self.entries.len() > 50_000 {
            self.entries.retain(|_, e| now < e.stored + window);
        }
        self.entries.insert(
            (scope.0.to_string(), scope.1, scope.2.to_string()),
            Stored {
                fingerprint,
                status,
                body,
                stored: now,
            },
        );
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Every kept answer, for the state file.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .iter()
            .map(|((app, tenant, key), e)| Entry {
                app: app.clone(),
                tenant: *tenant,
                key: key.clone(),
                fingerprint: e.fingerprint,
                status: e.status.as_u16(),
                body: e.body.clone(),
                stored: e.stored,
            })
            .collect()
    }

    /// The kept answers of a state file.
    pub fn restore(entries: Vec<Entry>) -> Self {
        Self {
            entries: entries
                .into_iter()
                .map(|e| {
                    (
                        (e.app, e.tenant, e.key),
                        Stored {
                            fingerprint: e.fingerprint,
                            status: StatusCode::from_u16(e.status)
                                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                            body: e.body,
                            stored: e.stored,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// One kept answer as the state file holds it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    app: String,
    tenant: Uuid,
    key: String,
    fingerprint: [u8; 32],
    status: u16,
    body: Value,
    stored: DateTime<Utc>,
}
