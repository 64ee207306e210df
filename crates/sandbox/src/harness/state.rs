//! `--state FILE`: the sandbox's whole state kept in one file, so a restarted sandbox is the same
//! Xero: the organisations' books, the identity server's grants, refresh tokens and connections,
//! the keys tokens are signed with, the Idempotency-Key replays, and the moved clock. A
//! proxy that cached contacts, tokens and connections keeps working across a restart, as it would
//! against the real Xero, which never forgets.
//!
//! The file is rewritten after every request that may change something (anything but `GET`,
//! `HEAD` and `OPTIONS`), before that request is answered: written to a temporary file beside it,
//! flushed to disk, then renamed over it, so a `kill -9` at any moment leaves either the old state
//! or the new one, never half of either. What the app's settings say (its credentials, redirect
//! URIs, the rate limits) comes from the settings at each start, not from the file.
//! `POST /_sandbox/reset` seeds the world again, and the file with it.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::xero::api::idempotency;
use crate::xero::model::World;

/// Bumped when the file's layout changes: a file of another format is refused, saying so.
const FORMAT: u32 = 1;

/// The state as read back.
#[derive(Deserialize)]
pub struct Snapshot {
    pub format: u32,
    pub clock_offset_ms: i64,
    /// The signing keys; absent from a file written while tokens were HS256 (its `jwt_key` is
    /// ignored now: tokens it signed are refused, and a client refreshes).
    #[serde(default)]
    pub xero_keys: Option<Vec<crate::harness::keys::SavedKey>>,
    #[serde(default)]
    pub idp_keys: Option<Vec<crate::harness::keys::SavedKey>>,
    pub world: World,
    /// Absent from a file written before HubRise was emulated.
    #[serde(default)]
    pub hubrise: Option<crate::hubrise::model::World>,
    /// Absent from a file written before the identity provider was emulated.
    #[serde(default)]
    pub idp: Option<crate::idp::model::World>,
    pub idempotency: Vec<idempotency::Entry>,
}

/// The state as written: the world borrowed, serialized while its lock is held.
#[derive(Serialize)]
pub struct SnapshotRef<'a> {
    pub format: u32,
    pub clock_offset_ms: i64,
    pub xero_keys: Vec<crate::harness::keys::SavedKey>,
    pub idp_keys: Vec<crate::harness::keys::SavedKey>,
    pub world: &'a World,
    pub hubrise: &'a crate::hubrise::model::World,
    pub idp: &'a crate::idp::model::World,
    pub idempotency: Vec<idempotency::Entry>,
}

/// The file, and the lock that keeps its writes in order.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// Held across taking a snapshot and writing it: the last write is always the newest state.
    writing: Mutex<()>,
}

impl StateFile {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            writing: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, or `None` when there is no file yet. A file that cannot be read is an
    /// error that names it: starting afresh would silently lose what it holds.
    pub fn load(&self) -> anyhow::Result<Option<Snapshot>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading the state file {}", self.path.display()))
            }
        };
        let snapshot: Snapshot = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the state file {} cannot be read (remove it to start from the seeded organisations)",
                self.path.display()
            )
        })?;
        anyhow::ensure!(
            snapshot.format == FORMAT,
            "the state file {} has format {}, this sandbox reads format {FORMAT}: remove it to start afresh",
            self.path.display(),
            snapshot.format
        );
        Ok(Some(snapshot))
    }

    /// Writes the bytes `take()` serializes atomically: a temporary file beside the real one,
    /// synced, then renamed over it, and the directory synced so the rename itself survives a
    /// crash.
    pub fn save(&self, take: impl FnOnce() -> serde_json::Result<Vec<u8>>) -> std::io::Result<()> {
        let _turn = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = take().map_err(std::io::Error::other)?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        tmp.write_all(&bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        std::fs::File::open(&dir)?.sync_all()
    }
}

pub fn format() -> u32 {
    FORMAT
}
