//! RSA keys that sign the sandbox's JWTs with RS256, as a real identity server's do: each key has
//! a `kid` (its RFC 7638 thumbprint), the set is published as a JWKS, and a rotation puts a new key
//! first while the one before stays published, so tokens it signed still verify until they expire.
//!
//! Without a state file a sandbox starts on a fixed demo key (`demo_keys/`, public, never for real
//! use): a key generation costs more than a test's whole sandbox. A rotation makes a fresh key in
//! the process; `--state` keeps whatever keys are in use.

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The demo key of Xero's identity server (public: see `demo_keys/README.md`).
pub const DEMO_XERO_KEY: &str = include_str!("demo_keys/xero.pem");
/// The demo key of the operators' identity provider (public: see `demo_keys/README.md`).
pub const DEMO_IDP_KEY: &str = include_str!("demo_keys/idp.pem");

/// Keys published after a rotation: the new one and the one before it.
const PUBLISHED: usize = 2;

/// One key, as the state file keeps it.
#[derive(Clone, Serialize, Deserialize)]
pub struct SavedKey {
    pub pem: String,
}

impl std::fmt::Debug for SavedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SavedKey([redacted])")
    }
}

#[derive(Clone)]
struct SigningKey {
    kid: String,
    pem: String,
    n: String,
    e: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKey {
    fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let private =
            RsaPrivateKey::from_pkcs8_pem(pem).context("an RSA private key in PKCS#8 PEM")?;
        let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
        // RFC 7638: the SHA-256 of the required members, in lexical order, without spaces.
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Ok(Self {
            kid,
            pem: pem.to_string(),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes())?,
            decoding: DecodingKey::from_rsa_components(&n, &e)?,
            n,
            e,
        })
    }

    fn generate() -> Self {
        let private = RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("an RSA key");
        let pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a key encodes as PEM");
        Self::from_pem(&pem).expect("a key just made reads back")
    }
}

/// The keys one issuer signs with, newest first.
#[derive(Clone)]
pub struct KeySet {
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl KeySet {
    /// A set holding one key from its PEM (a demo key).
    pub fn from_pem(pem: &str) -> Self {
        Self {
            keys: vec![SigningKey::from_pem(pem).expect("the demo key reads")],
        }
    }

    /// The keys a state file kept; an empty list is refused.
    pub fn restore(saved: &[SavedKey]) -> anyhow::Result<Self> {
        let keys = saved
            .iter()
            .map(|k| SigningKey::from_pem(&k.pem))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!keys.is_empty(), "a key set without a key");
        Ok(Self { keys })
    }

    pub fn saved(&self) -> Vec<SavedKey> {
        self.keys
            .iter()
            .map(|k| SavedKey { pem: k.pem.clone() })
            .collect()
    }

    /// Makes a new key and signs with it from now on; the previous one stays published. Answers
    /// the new key's `kid`.
    pub fn rotate(&mut self) -> String {
        self.keys.insert(0, SigningKey::generate());
        self.keys.truncate(PUBLISHED);
        self.keys[0].kid.clone()
    }

    /// The `kid` tokens are signed with now.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// The public keys, as `jwks_uri` serves them.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": k.kid, "n": k.n, "e": k.e}))
            .collect();
        json!({ "keys": keys })
    }

    /// `claims` as a compact JWT, RS256 under the current key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let key = &self.keys[0];
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).expect("claims serialize")
    }

    /// The claims of a token one of these keys signed (RS256, a published `kid`); `None` for
    /// anything else. Expiry and audience are the caller's checks.
    pub fn verify(&self, token: &str) -> Option<Value> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::RS256 {
            return None;
        }
        let key = self
            .keys
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref())?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(token, &key.decoding, &validation)
            .ok()
            .map(|t| t.claims)
    }
}

/// The claims of any JWT without checking its signature (for tests reading what a token carries).
pub fn decode_unverified(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_under_their_kid_until_two_rotations_later_and_forgeries_never() {
        let mut keys = KeySet::from_pem(DEMO_XERO_KEY);
        let first = keys.sign(&json!({"sub": "a"}));
        assert_eq!(keys.verify(&first).unwrap()["sub"], "a");
        let jwks = keys.jwks();
        assert_eq!(jwks["keys"][0]["kid"], keys.current_kid());
        assert_eq!(jwks["keys"][0]["alg"], "RS256");

        // Another issuer's key is not ours.
        let other = KeySet::from_pem(DEMO_IDP_KEY).sign(&json!({"sub": "a"}));
        assert!(keys.verify(&other).is_none());
        // A tampered payload fails the signature.
        let parts: Vec<&str> = first.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#),
            parts[2]
        );
        assert!(keys.verify(&forged).is_none());
        // `alg: none` is not RS256.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert!(keys.verify(&none).is_none());

        // Rotated: the new key signs, the old one's tokens still verify, then no longer.
        let second_kid = keys.rotate();
        assert_ne!(
            second_kid,
            jsonwebtoken::decode_header(&first).unwrap().kid.unwrap()
        );
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 2);
        let second = keys.sign(&json!({"sub": "b"}));
        assert_eq!(
            jsonwebtoken::decode_header(&second).unwrap().kid.as_deref(),
            Some(second_kid.as_str())
        );
        assert!(keys.verify(&first).is_some());
        keys.rotate();
        assert!(keys.verify(&first).is_none(), "two rotations later");
        assert!(keys.verify(&second).is_some());

        // Kept and read back: the same keys.
        let again = KeySet::restore(&keys.saved()).unwrap();
        assert_eq!(again.current_kid(), keys.current_kid());
        assert!(again.verify(&second).is_some());
        assert!(!format!("{:?}", keys.saved()).contains("PRIVATE"));
    }
}
