//! Loading the master keys: from `LEDGERLINK_MASTER_KEY` (base64, comma-separated for several) and
//! key files; the first key seals new data, every key opens old data. Without a key the proxy refuses
//! to start, except with `--dev`, which makes a key file readable only by its owner.
//!
//! The keys are then checked against the database: it holds a record sealed under the key it was
//! made with, and a start whose keys cannot open it is refused, rather than failing every call
//! that needs a token later.

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

use crate::crypto::{CryptoError, Keyring, MasterKey};
use crate::settings::Settings;
use crate::store::{Sealed, VaultStore};

/// The key check record: this text sealed under the master key, bound to its own label.
const CHECK_AAD: &[u8] = b"ledgerlink:key_check";
const CHECK_TEXT: &[u8] = b"ledgerlink master key check v1";

/// Refuses keys that cannot open the database's key check. A database without one (new, or made
/// before the check existed) gets one, sealed under the primary key, once every value sealed in it
/// opens with the keys given.
pub async fn check_database(
    store: &dyn VaultStore,
    keyring: &Keyring,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    const HOW: &str = "start the proxy with the master key the database was made with \
        (LEDGERLINK_MASTER_KEY or --master-key-file; to rotate, give the new key first and the old one after it)";
    if let Some(sealed) = store.key_check().await? {
        return match keyring.open(CHECK_AAD, &sealed) {
            Ok(text) if text == CHECK_TEXT => Ok(()),
            Err(CryptoError::UnknownKey(id)) => bail!(
                "the database was sealed under master key {id}, which is not among the keys given: {HOW}"
            ),
            _ => bail!("the master keys given do not open this database's key check: {HOW}"),
        };
    }
    let sealed = store.sealed().await?;
    let closed = sealed
        .iter()
        .filter(|s| {
            let (aad, blob) = match s {
                Sealed::TokenSet { id, ciphertext } => (crate::vault::aad(*id), ciphertext),
                Sealed::Successor {
                    old_hash,
                    ciphertext,
                } => (crate::device::successor_aad(old_hash), ciphertext),
                Sealed::Verifier {
                    state_hash,
                    ciphertext,
                } => (crate::pairing::verifier_aad(state_hash), ciphertext),
            };
            keyring.open(&aad, blob).is_err()
        })
        .count();
    if closed > 0 {
        bail!(
            "{closed} of the {} encrypted values in the database do not open with the master keys given: {HOW}",
            sealed.len()
        );
    }
    store
        .put_key_check(&keyring.seal(CHECK_AAD, CHECK_TEXT), now)
        .await?;
    Ok(())
}

/// Where `--dev` keeps its key when no file is named: beside the database.
pub fn default_dev_key_file(settings: &Settings) -> PathBuf {
    let dir = match &settings.database {
        crate::settings::Database::Sqlite(path) => path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
        // Refused by `Settings::problems` before it gets here: the working directory.
        crate::settings::Database::Postgres(_) => Path::new("."),
    };
    dir.join("ledgerlink-master.key")
}

pub fn load(settings: &Settings) -> anyhow::Result<Keyring> {
    let mut keys = Vec::new();
    for (i, key) in settings.master_keys.iter().enumerate() {
        keys.push(
            MasterKey::from_base64(key.expose())
                .with_context(|| format!("master key #{} from the environment", i + 1))?,
        );
    }
    let mut files = settings.master_key_files.clone();
    if keys.is_empty() && files.is_empty() && settings.dev {
        files.push(default_dev_key_file(settings));
    }
    for (i, file) in files.iter().enumerate() {
        if !file.exists() {
            if settings.dev && i == 0 && keys.is_empty() {
                create_key_file(file)?;
                tracing::warn!(path = %file.display(), "created a development master key file; keep it secret and back it up");
            } else {
                bail!("the master key file {} does not exist", file.display());
            }
        }
        warn_if_readable_by_others(file);
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        keys.push(MasterKey::from_base64(&text).with_context(|| format!("in {}", file.display()))?);
    }
    if keys.is_empty() {
        bail!(
            "no master key: set LEDGERLINK_MASTER_KEY (base64 of 32 random bytes) or --master-key-file PATH, \
             or pass --dev to create a development key file"
        );
    }
    Ok(Keyring::new(keys))
}

fn create_key_file(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(
        &mut file,
        format!("{}\n", MasterKey::generate_base64()).as_bytes(),
    )?;
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the master key file is readable by others: chmod 600 it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, Storage};
    use ledgerlink_wire::Secret;

    #[tokio::test]
    async fn a_database_opens_only_with_the_key_it_was_made_with() {
        let storage = Storage::sqlite(SqliteStore::memory().unwrap());
        let store = storage.vault();
        let now = Utc::now();
        let right = Keyring::new(vec![MasterKey::from_bytes([1; 32])]);
        let wrong = Keyring::new(vec![MasterKey::from_bytes([2; 32])]);
        check_database(store, &right, now)
            .await
            .expect("a new database takes the key");
        check_database(store, &right, now)
            .await
            .expect("and opens with it again");
        let refused = check_database(store, &wrong, now)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("not among the keys given")
                && refused.contains("LEDGERLINK_MASTER_KEY"),
            "{refused}"
        );
        let rotated = Keyring::new(vec![
            MasterKey::from_bytes([2; 32]),
            MasterKey::from_bytes([1; 32]),
        ]);
        check_database(store, &rotated, now)
            .await
            .expect("a new key in front of the old one");
    }

    #[tokio::test]
    async fn an_older_database_gets_its_check_only_if_everything_in_it_opens() {
        let storage = Storage::sqlite(SqliteStore::memory().unwrap());
        let store = storage.vault();
        let now = Utc::now();
        let right = Keyring::new(vec![MasterKey::from_bytes([1; 32])]);
        let wrong = Keyring::new(vec![MasterKey::from_bytes([2; 32])]);
        let id = uuid::Uuid::new_v4();
        store
            .insert_token_set(&crate::store::TokenSetRow {
                id,
                provider: "xero".into(),
                ciphertext: right.seal(&crate::vault::aad(id), b"{}"),
                access_expires_at: now,
                last_refresh_at: None,
                created_at: now,
                version: 1,
            })
            .await
            .unwrap();
        let refused = check_database(store, &wrong, now)
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("1 of the 1 encrypted values"), "{refused}");
        assert!(
            store.key_check().await.unwrap().is_none(),
            "no check sealed under a wrong key"
        );
        check_database(store, &right, now).await.unwrap();
        assert!(store.key_check().await.unwrap().is_some());
    }

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ll-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn without_a_key_the_proxy_refuses_unless_dev_makes_a_private_file() {
        let dir = temp();
        let settings = Settings {
            database: crate::settings::Database::Sqlite(dir.join("p.db")),
            ..Default::default()
        };
        let err = load(&settings).unwrap_err().to_string();
        assert!(err.contains("LEDGERLINK_MASTER_KEY"), "{err}");

        let dev = Settings {
            dev: true,
            ..settings
        };
        let ring = load(&dev).unwrap();
        let file = default_dev_key_file(&dev);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // The same file is used again on the next start: data sealed before still opens.
        let sealed = ring.seal(b"row", b"x");
        assert_eq!(load(&dev).unwrap().open(b"row", &sealed).unwrap(), b"x");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn environment_keys_come_first_and_bad_ones_are_named() {
        let a = MasterKey::generate_base64();
        let settings = Settings {
            master_keys: vec![Secret::new(a.clone())],
            ..Default::default()
        };
        assert_eq!(
            load(&settings).unwrap().primary_id(),
            MasterKey::from_base64(&a).unwrap().id_hex()
        );
        let bad = Settings {
            master_keys: vec![Secret::new("nope")],
            ..Default::default()
        };
        assert!(format!("{:#}", load(&bad).unwrap_err()).contains("master key #1"));
    }
}
