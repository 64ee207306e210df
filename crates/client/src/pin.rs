//! The manager PIN that guards what stops every till of an organisation (Disconnect) or this one
//! (Unpair) on the desktop. Kept on the device as an Argon2id hash (`manager-pin` in the data
//! directory, readable by the user only); the PIN itself is never written anywhere.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PinError {
    #[error("a PIN is 4 to 8 digits")]
    Form,
    #[error("that is not the manager PIN")]
    Wrong,
    #[error("the manager PIN cannot be kept: {0}")]
    Storage(String),
}

pub struct ManagerPin {
    path: PathBuf,
}

impl ManagerPin {
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("manager-pin"),
        }
    }

    fn stored(&self) -> Option<String> {
        std::fs::read_to_string(&self.path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Whether a PIN was set.
    pub fn is_set(&self) -> bool {
        self.stored().is_some()
    }

    /// Checks `pin` against the stored one (any PIN passes while none is set).
    pub fn check(&self, pin: Option<&str>) -> Result<(), PinError> {
        let Some(stored) = self.stored() else {
            return Ok(());
        };
        let hash = PasswordHash::new(&stored).map_err(|e| PinError::Storage(e.to_string()))?;
        let pin = pin.unwrap_or_default();
        Argon2::default()
            .verify_password(pin.as_bytes(), &hash)
            .map_err(|_| PinError::Wrong)
    }

    /// Sets (or changes) the PIN; changing one needs the current PIN.
    pub fn set(&self, current: Option<&str>, new: &str) -> Result<(), PinError> {
        self.check(current)?;
        if !(4..=8).contains(&new.len()) || !new.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PinError::Form);
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(new.as_bytes(), &salt)
            .map_err(|e| PinError::Storage(e.to_string()))?
            .to_string();
        write_private(&self.path, &hash).map_err(|e| PinError::Storage(e.to_string()))
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_kept_hashed_checked_and_changed_only_with_the_current_one() {
        let dir = std::env::temp_dir().join(format!("ll-pin-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let pin = ManagerPin::new(&dir);
        assert!(!pin.is_set());
        assert_eq!(
            pin.check(None),
            Ok(()),
            "nothing to check while none is set"
        );
        assert_eq!(pin.set(None, "12a4"), Err(PinError::Form));
        assert_eq!(pin.set(None, "123"), Err(PinError::Form));
        pin.set(None, "2468").unwrap();
        assert!(pin.is_set());
        let kept = std::fs::read_to_string(dir.join("manager-pin")).unwrap();
        assert!(
            kept.starts_with("$argon2id$") && !kept.contains("2468"),
            "{kept}"
        );
        assert_eq!(pin.check(Some("2468")), Ok(()));
        assert_eq!(pin.check(Some("1111")), Err(PinError::Wrong));
        assert_eq!(pin.check(None), Err(PinError::Wrong));
        assert_eq!(pin.set(Some("0000"), "13579"), Err(PinError::Wrong));
        pin.set(Some("2468"), "13579").unwrap();
        assert_eq!(pin.check(Some("13579")), Ok(()));
        std::fs::remove_dir_all(dir).ok();
    }
}
