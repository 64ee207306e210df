//! The device's credentials: in the OS keychain when there is one, else in a file only the user can
//! read (mode 0600, written atomically). Refreshed before they expire by one process at a time: the
//! CLI and the desktop app may run together on one data directory, and a refresh token works once, so
//! refreshing happens under a file lock and re-reads what another process may just have stored.

use chrono::{DateTime, Utc};
use ledgerlink_wire::{ConnectionInfo, Secret};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::api::{ClientError, ProxyClient};

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

/// The stored shape (file or keychain item): the one place the tokens are written out.
#[derive(Serialize, Deserialize)]
struct Stored {
    proxy_url: String,
    access_token: String,
    refresh_token: String,
    expires_at: DateTime<Utc>,
    connection: ConnectionInfo,
}

impl Stored {
    fn from(c: &Credentials) -> Self {
        Self {
            proxy_url: c.proxy_url.clone(),
            access_token: c.access_token.expose().to_string(),
            refresh_token: c.refresh_token.expose().to_string(),
            expires_at: c.expires_at,
            connection: c.connection.clone(),
        }
    }

    fn into_credentials(self) -> Credentials {
        Credentials {
            proxy_url: self.proxy_url,
            access_token: Secret::new(self.access_token),
            refresh_token: Secret::new(self.refresh_token),
            expires_at: self.expires_at,
            connection: self.connection,
        }
    }
}

fn damaged(place: &str, e: impl fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("the credentials in {place} are damaged ({e}): run `ledgerlink pair` again")
}

/// The file store: `credentials.json` in the data directory, readable by the user only.
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
        let s: Stored = serde_json::from_str(&text)
            .map_err(|e| damaged(&self.path.display().to_string(), e))?;
        Ok(Some(s.into_credentials()))
    }

    /// Writes the credentials readable by the user only, replacing the file in one step.
    pub fn save(&self, c: &Credentials) -> anyhow::Result<()> {
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
        std::io::Write::write_all(
            &mut file,
            serde_json::to_string_pretty(&Stored::from(c))?.as_bytes(),
        )?;
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

/// Which store to use: `LEDGERLINK_CREDENTIALS=auto|keychain|file` (default `auto`: the keychain
/// when one answers, else the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreChoice {
    Auto,
    Keychain,
    File,
}

impl StoreChoice {
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("LEDGERLINK_CREDENTIALS").as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(Self::Auto),
            Ok("keychain") => Ok(Self::Keychain),
            Ok("file") => Ok(Self::File),
            Ok(other) => {
                anyhow::bail!("LEDGERLINK_CREDENTIALS is '{other}': use auto, keychain or file")
            }
        }
    }
}

/// The device's credentials wherever they are kept.
pub struct CredentialStore {
    dir: PathBuf,
    file: FileStore,
    choice: StoreChoice,
}

/// Where credentials were found or put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Keychain,
    File,
}

/// Why fresh credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FreshError {
    #[error("This device is not paired: run `ledgerlink pair` first.")]
    NotPaired,
    #[error("This device is no longer paired: run `ledgerlink pair` again.")]
    PairAgain,
    #[error(transparent)]
    Client(ClientError),
    #[error("{0}")]
    Store(anyhow::Error),
}

/// Refresh this long before the access token expires.
const REFRESH_AHEAD_SECS: i64 = 120;

impl CredentialStore {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self::with_choice(dir, StoreChoice::from_env()?))
    }

    pub fn with_choice(dir: &Path, choice: StoreChoice) -> Self {
        Self {
            dir: dir.to_path_buf(),
            file: FileStore::new(dir),
            choice,
        }
    }

    /// One keychain item per data directory, so two devices on one account stay apart.
    fn entry(&self) -> keyring::Result<keyring::Entry> {
        let dir = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        keyring::Entry::new("ledgerlink", &format!("device:{}", dir.display()))
    }

    /// The keychain's copy: `Err` when there is no usable keychain.
    fn keychain_load(&self) -> keyring::Result<Option<Credentials>> {
        match self.entry()?.get_password() {
            Ok(text) => Ok(serde_json::from_str::<Stored>(&text)
                .ok()
                .map(Stored::into_credentials)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The stored credentials. With both a keychain item and a file (the keychain failed once and
    /// the file took a refresh), the later one wins: the other holds a spent refresh token.
    pub fn load(&self) -> anyhow::Result<Option<Credentials>> {
        let mut keychain = None;
        if self.choice != StoreChoice::File {
            match self.keychain_load() {
                Ok(c) => keychain = c,
                Err(e) if self.choice == StoreChoice::Keychain => {
                    anyhow::bail!("the OS keychain cannot be used: {e}")
                }
                Err(_) => {}
            }
        }
        let file = if self.choice == StoreChoice::Keychain {
            None
        } else {
            self.file.load()?
        };
        Ok(match (keychain, file) {
            (Some(k), Some(f)) => Some(if f.expires_at > k.expires_at { f } else { k }),
            (k, f) => k.or(f),
        })
    }

    /// Saves to the keychain when it answers (removing any file copy), else to the file.
    pub fn save(&self, c: &Credentials) -> anyhow::Result<Place> {
        if self.choice != StoreChoice::File {
            let text = serde_json::to_string(&Stored::from(c))?;
            match self.entry().and_then(|e| e.set_password(&text)) {
                Ok(()) => {
                    self.file.delete()?;
                    return Ok(Place::Keychain);
                }
                Err(e) if self.choice == StoreChoice::Keychain => {
                    anyhow::bail!("the OS keychain cannot be used: {e}")
                }
                Err(_) => {}
            }
        }
        self.file.save(c)?;
        Ok(Place::File)
    }

    pub fn delete(&self) -> anyhow::Result<()> {
        if self.choice != StoreChoice::File {
            if let Ok(entry) = self.entry() {
                match entry.delete_credential() {
                    Ok(()) | Err(keyring::Error::NoEntry) => {}
                    Err(_) if self.choice == StoreChoice::Auto => {}
                    Err(e) => anyhow::bail!("the OS keychain cannot be used: {e}"),
                }
            }
        }
        self.file.delete()
    }

    /// Takes the data directory's refresh lock (blocking until another process lets go).
    async fn lock(&self) -> anyhow::Result<std::fs::File> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join("credentials.lock");
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok(file)
        })
        .await?
    }

    /// The stored credentials, refreshed first when they are about to expire.
    pub async fn fresh(&self) -> Result<Credentials, FreshError> {
        let creds = self
            .load()
            .map_err(FreshError::Store)?
            .ok_or(FreshError::NotPaired)?;
        if creds.expires_at - Utc::now() > chrono::Duration::seconds(REFRESH_AHEAD_SECS) {
            return Ok(creds);
        }
        self.refresh(&creds).await
    }

    /// Refreshes `stale` (the proxy said its access token expired, or it is about to), unless
    /// another process already did: then its newer credentials are answered.
    ///
    /// The work runs as its own task: once the proxy has rotated the refresh token, the new one
    /// must be stored even if the caller gives up (a timeout, Ctrl-C, a cancelled sync pass).
    pub async fn refresh(&self, stale: &Credentials) -> Result<Credentials, FreshError> {
        let store = Self::with_choice(&self.dir, self.choice);
        let stale = stale.clone();
        tokio::spawn(async move { store.refresh_locked(&stale).await })
            .await
            .map_err(|e| FreshError::Store(e.into()))?
    }

    async fn refresh_locked(&self, stale: &Credentials) -> Result<Credentials, FreshError> {
        let _lock = self.lock().await.map_err(FreshError::Store)?;
        let current = self
            .load()
            .map_err(FreshError::Store)?
            .ok_or(FreshError::NotPaired)?;
        if current.access_token.expose() != stale.access_token.expose()
            && current.expires_at - Utc::now() > chrono::Duration::seconds(REFRESH_AHEAD_SECS)
        {
            return Ok(current);
        }
        let tokens = ProxyClient::new(&current.proxy_url)
            .refresh(&current.refresh_token)
            .await
            .map_err(|e| {
                if e.is_unpaired() {
                    FreshError::PairAgain
                } else {
                    FreshError::Client(e)
                }
            })?;
        let renewed = crate::pairing::credentials(&current.proxy_url, tokens);
        self.save(&renewed).map_err(FreshError::Store)?;
        Ok(renewed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn sample() -> Credentials {
        Credentials {
            proxy_url: "http://127.0.0.1:1".into(),
            access_token: Secret::new("ll_at_secret-access"),
            refresh_token: Secret::new("ll_rt_secret-refresh"),
            expires_at: Utc::now() + chrono::Duration::hours(1),
            connection: ConnectionInfo {
                connection_id: Uuid::new_v4(),
                provider: Default::default(),
                tenant_id: Uuid::new_v4().to_string(),
                organisation_name: "Demo".into(),
                status: ledgerlink_wire::ConnectionStatus::Connected,
                paired_at: Utc::now(),
                last_refresh_at: None,
                device_id: Uuid::new_v4(),
                device_name: "Till".into(),
                timezone: None,
                short_code: None,
                timezone_warning: None,
            },
        }
    }

    #[test]
    fn the_file_store_is_owner_only_and_debug_hides_the_tokens() {
        let dir = std::env::temp_dir().join(format!("ll-cred-{}", Uuid::new_v4()));
        let store = CredentialStore::with_choice(&dir, StoreChoice::File);
        assert!(store.load().unwrap().is_none());
        assert_eq!(store.save(&sample()).unwrap(), Place::File);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("credentials.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.refresh_token.expose(), "ll_rt_secret-refresh");
        let shown = format!("{back:?}");
        assert!(!shown.contains("secret-access") && !shown.contains("secret-refresh"));
        store.delete().unwrap();
        assert!(store.load().unwrap().is_none());
        std::fs::write(dir.join("credentials.json"), "{not json").unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("ledgerlink pair"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }

    /// The OS keychain for real: a Secret Service (gnome-keyring) in the test's D-Bus session, as
    /// `./scripts/test` provides. Saving puts the tokens there and nowhere on disk; a file left from
    /// an earlier fallback with older tokens loses to the keychain's newer ones; delete clears both.
    #[test]
    fn the_keychain_holds_the_credentials_when_there_is_one() {
        let dir = std::env::temp_dir().join(format!("ll-cred-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = CredentialStore::with_choice(&dir, StoreChoice::Keychain);
        let place = store.save(&sample()).unwrap_or_else(|e| {
            panic!("no usable keychain: run the tests in ./scripts/test's D-Bus session with gnome-keyring ({e})")
        });
        assert_eq!(place, Place::Keychain);
        assert!(!dir.join("credentials.json").exists(), "no copy on disk");
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.refresh_token.expose(), "ll_rt_secret-refresh");

        let mut older = sample();
        older.access_token = Secret::new("older");
        older.expires_at = Utc::now();
        FileStore::new(&dir).save(&older).unwrap();
        let auto = CredentialStore::with_choice(&dir, StoreChoice::Auto);
        assert_eq!(
            auto.load().unwrap().unwrap().access_token.expose(),
            "ll_at_secret-access",
            "the later copy wins"
        );
        auto.delete().unwrap();
        assert!(auto.load().unwrap().is_none());
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn fresh_credentials_are_used_as_they_are_and_none_means_pair_first() {
        let dir = std::env::temp_dir().join(format!("ll-cred-{}", Uuid::new_v4()));
        let store = CredentialStore::with_choice(&dir, StoreChoice::File);
        assert!(matches!(store.fresh().await, Err(FreshError::NotPaired)));
        store.save(&sample()).unwrap();
        // Valid for an hour: no refresh (the proxy URL answers nothing, so a refresh would fail).
        let c = store.fresh().await.unwrap();
        assert_eq!(c.access_token.expose(), "ll_at_secret-access");
        std::fs::remove_dir_all(dir).ok();
    }
}
