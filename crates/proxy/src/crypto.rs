//! Encryption at rest: XChaCha20-Poly1305 under a master key. Every ciphertext names the key that
//! sealed it (so a second key can be added and old rows still read) and is bound to the identity of
//! the row it belongs to (associated data), so ciphertexts cannot be swapped between rows.
//!
//! Layout: `[version = 1][key id: 8 bytes][nonce: 24 bytes][ciphertext + tag]`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::fmt;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("ciphertext is too short or of an unknown version")]
    Malformed,
    #[error("ciphertext was sealed with key {0}, which is not configured")]
    UnknownKey(String),
    #[error("ciphertext does not open: wrong key, tampered data, or another row's data")]
    Open,
    #[error("a master key must be 32 bytes, base64-encoded ({0})")]
    BadKey(String),
}

/// One 256-bit master key and its id (the first 8 bytes of SHA-256 over a label and the key).
#[derive(Clone)]
pub struct MasterKey {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id_hex())
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"ledgerlink master key id v1")
            .chain_update(bytes)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self {
            id,
            cipher: XChaCha20Poly1305::new(&bytes.into()),
        }
    }

    /// Parses a base64 key (the key file's contents or `LEDGERLINK_MASTER_KEY`).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| CryptoError::BadKey(format!("not base64: {e}")))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| CryptoError::BadKey(format!("got {} bytes", b.len())))?;
        Ok(Self::from_bytes(bytes))
    }

    /// A fresh random key, base64-encoded (what `--dev` writes to the key file).
    pub fn generate_base64() -> String {
        STANDARD.encode(rand::random::<[u8; 32]>())
    }

    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The configured keys: the first seals, all of them open.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl Keyring {
    /// `keys[0]` is the primary. Panics on an empty list: the proxy refuses to start without a key.
    pub fn new(keys: Vec<MasterKey>) -> Self {
        assert!(!keys.is_empty(), "a keyring needs at least one key");
        Self { keys }
    }

    pub fn primary_id(&self) -> String {
        self.keys[0].id_hex()
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let key = &self.keys[0];
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory data");
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, aad: &[u8], blob: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if blob.len() < 1 + KEY_ID_LEN + NONCE_LEN + 16 || blob[0] != VERSION {
            return Err(CryptoError::Malformed);
        }
        let id = &blob[1..1 + KEY_ID_LEN];
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
            CryptoError::UnknownKey(id.iter().map(|b| format!("{b:02x}")).collect())
        })?;
        let nonce = XNonce::from_slice(&blob[1 + KEY_ID_LEN..1 + KEY_ID_LEN + NONCE_LEN]);
        key.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &blob[1 + KEY_ID_LEN + NONCE_LEN..],
                    aad,
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> MasterKey {
        MasterKey::from_bytes([n; 32])
    }

    #[test]
    fn sealed_data_opens_only_with_its_row_identity() {
        let ring = Keyring::new(vec![key(1)]);
        let blob = ring.seal(b"token_set:A", b"refresh-token-value");
        assert!(
            !blob.windows(7).any(|w| w == b"refresh"),
            "no plaintext in the ciphertext"
        );
        assert_eq!(
            ring.open(b"token_set:A", &blob).unwrap(),
            b"refresh-token-value"
        );
        assert_eq!(
            ring.open(b"token_set:B", &blob),
            Err(CryptoError::Open),
            "swapped between rows"
        );
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open(b"token_set:A", &tampered), Err(CryptoError::Open));
    }

    #[test]
    fn a_second_key_can_be_added_and_old_rows_still_read() {
        let old = Keyring::new(vec![key(1)]);
        let blob = old.seal(b"row", b"secret");
        let rotated = Keyring::new(vec![key(2), key(1)]);
        assert_eq!(rotated.open(b"row", &blob).unwrap(), b"secret");
        let new_blob = rotated.seal(b"row", b"secret");
        assert_eq!(
            &new_blob[1..9],
            &key(2).id,
            "new rows are sealed with the new primary"
        );
        assert!(matches!(
            old.open(b"row", &new_blob),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_parse_from_base64_and_say_what_is_wrong() {
        let text = MasterKey::generate_base64();
        assert!(MasterKey::from_base64(&format!("{text}\n")).is_ok());
        assert!(
            matches!(MasterKey::from_base64("c2hvcnQ="), Err(CryptoError::BadKey(m)) if m.contains("5 bytes"))
        );
        assert!(!format!("{:?}", key(1)).contains("1, 1"));
    }
}
