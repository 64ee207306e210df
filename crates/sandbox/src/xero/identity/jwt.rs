//! Compact JWTs signed with HS256. Xero signs with RS256 and publishes a JWKS; nothing of ours
//! verifies Xero's signature (the proxy treats access tokens as opaque), so the sandbox keeps a
//! symmetric key of its own and verifies what it issued.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub fn sign(key: &[u8], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// The claims of a token this key signed; `None` for anything else. Expiry is the caller's check.
pub fn verify(key: &[u8], token: &str) -> Option<Value> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (_, payload) = signing_input.split_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&signature).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The claims of any JWT without checking its signature (for tests reading what a token carries).
pub fn decode_unverified(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let key = [7u8; 32];
        let token = sign(&key, &json!({"sub": "a", "exp": 1}));
        assert_eq!(verify(&key, &token).unwrap()["sub"], "a");
        assert!(verify(&[8u8; 32], &token).is_none());
        let (head, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert!(verify(&key, &forged).is_none());
    }
}
