//! The device's credentials, in a file only the user can read (mode 0600, written atomically). The OS
//! keychain comes with the desktop app's issue; the file store is what headless tills and CI use.

use chrono::{DateTime, Utc};
use ledgerlink_wire::{ConnectionInfo, Secret};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// What a paired device holds: its own tokens (never Xero's), where the proxy is, and what it was
/// told about its connection.
#[derive(Clone)]
pub struct Credentials {
    pub proxy_url: String,
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub expires_at: DateTime<Utc>,
    pub connection: ConnectionInfo,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("proxy_url", &self.proxy_url)
            .field("expires_at", &self.expires_at)
            .field("connection", &self.connection.connection_id)
            .finish_non_exhaustive()
    }
}

/// The file's shape: the one place the tokens are written out.
#[derive(Serialize, Deserialize)]
struct Stored {
    proxy_url: String,
    access_token: String,
    refresh_token: String,
    expires_at: DateTime<Utc>,
    connection: ConnectionInfo,
}

pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join("credentials.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> anyhow::Result<Option<Credentials>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let s: Stored = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is damaged ({e}): run `ledgerlink pair` again",
                self.path.display()
            )
        })?;
        Ok(Some(Credentials {
            proxy_url: s.proxy_url,
            access_token: Secret::new(s.access_token),
            refresh_token: Secret::new(s.refresh_token),
            expires_at: s.expires_at,
            connection: s.connection,
        }))
    }

    /// Writes the credentials readable by the user only, replacing the file in one step.
    pub fn save(&self, c: &Credentials) -> anyhow::Result<()> {
        let stored = Stored {
            proxy_url: c.proxy_url.clone(),
            access_token: c.access_token.expose().to_string(),
            refresh_token: c.refresh_token.expose().to_string(),
            expires_at: c.expires_at,
            connection: c.connection.clone(),
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".credentials.{}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        std::io::Write::write_all(&mut file, serde_json::to_string_pretty(&stored)?.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }

    pub fn delete(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
