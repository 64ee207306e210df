//! Loading the master keys: from `LEDGERLINK_MASTER_KEY` (base64, comma-separated for several) and
//! key files; the first key seals new data, every key opens old data. Without a key the proxy refuses
//! to start, except with `--dev`, which makes a key file readable only by its owner.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

use crate::crypto::{Keyring, MasterKey};
use crate::settings::Settings;

/// Where `--dev` keeps its key when no file is named: beside the database.
pub fn default_dev_key_file(settings: &Settings) -> PathBuf {
    let dir = settings
        .database
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
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
    use ledgerlink_wire::Secret;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ll-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn without_a_key_the_proxy_refuses_unless_dev_makes_a_private_file() {
        let dir = temp();
        let settings = Settings {
            database: dir.join("p.db"),
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
