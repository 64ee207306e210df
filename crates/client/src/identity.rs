//! The device's identity: a UUID v4 made on first run and kept in the data directory, and a name
//! (the host name unless told otherwise).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub device_id: Uuid,
    pub device_name: String,
}

/// Where the device keeps its files: `--data-dir`, else the OS's per-user data directory.
pub fn data_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let dirs =
        directories::ProjectDirs::from("com", "Ledgerlink", "ledgerlink").ok_or_else(|| {
            anyhow::anyhow!("no home directory to keep the device's data in: pass --data-dir")
        })?;
    Ok(dirs.data_dir().to_path_buf())
}

impl Identity {
    /// Reads the identity from `dir`, making it on first run. A new `name` replaces the stored one.
    pub fn load_or_create(dir: &Path, name: Option<&str>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("device.json");
        let mut stored = None;
        let mut identity = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let read: Identity = serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "{} is damaged ({e}): remove it to start afresh",
                        path.display()
                    )
                })?;
                stored = Some(read.clone());
                read
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Identity {
                device_id: Uuid::new_v4(),
                device_name: gethostname::gethostname().to_string_lossy().into_owned(),
            },
            Err(e) => return Err(e.into()),
        };
        if let Some(n) = name.map(str::trim).filter(|n| !n.is_empty()) {
            identity.device_name = n.to_string();
        }
        if stored.as_ref() != Some(&identity) {
            // Replaced in one step: a torn write would lose the device id, and with it the
            // proxy's memory of what this device already sent.
            let tmp = dir.join(format!(".device.{}.tmp", std::process::id()));
            let file = std::fs::File::create(&tmp)?;
            serde_json::to_writer_pretty(&file, &identity)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("ll-id-{}", Uuid::new_v4()));
        let a = Identity::load_or_create(&dir, None).unwrap();
        assert_eq!(a.device_id.get_version_num(), 4);
        let b = Identity::load_or_create(&dir, Some("Front counter")).unwrap();
        assert_eq!(
            (b.device_id, b.device_name.as_str()),
            (a.device_id, "Front counter")
        );
        assert_eq!(
            Identity::load_or_create(&dir, None).unwrap().device_name,
            "Front counter"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
