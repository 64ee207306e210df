//! Pairing a device (RFC 8628, device authorization grant) and its credentials.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::connection::{ConnectionInfo, Provider};
use crate::secret::{expose, Secret};

/// `grant_type` of a device polling for its credentials.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// `grant_type` of a device rotating its credentials.
pub const REFRESH_TOKEN_GRANT: &str = "refresh_token";

/// `POST /v1/pairings` (form or JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PairingRequest {
    pub client_id: String,
    /// The device's own id (a UUID made on first run), not the nil UUID.
    pub device_id: Uuid,
    /// Shown on the pairing page: 1 to 100 characters, no control or bidirectional characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub device_name: String,
    #[serde(default)]
    pub provider: Provider,
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PairingResponse {
    /// Never shown to anyone: the device polls with it.
    #[serde(serialize_with = "expose")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub device_code: Secret,
    /// Shown as `XXXX-XXXX` for the person to compare in the browser.
    pub user_code: String,
    pub verification_uri: String,
    /// The page with the code filled in: open it, or show it as a QR code.
    pub verification_uri_complete: String,
    pub expires_in: u64,
    /// Seconds to wait between polls.
    pub interval: u64,
}

/// `POST /v1/pairings/token` (form or JSON): poll with the device code, or rotate a refresh token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    /// `urn:ietf:params:oauth:grant-type:device_code` to poll, `refresh_token` to rotate.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^(urn:ietf:params:oauth:grant-type:device_code|refresh_token)$")
    )]
    pub grant_type: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub device_code: Option<Secret>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub refresh_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

fn expose_opt<S: serde::Serializer>(secret: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => expose(secret, s),
        None => s.serialize_none(),
    }
}

/// Device credentials: an opaque access token (about an hour) and a rotating refresh token. Neither is
/// a Xero token; the device never sees one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceTokens {
    #[serde(serialize_with = "expose")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub access_token: Secret,
    pub token_type: String,
    pub expires_in: u64,
    #[serde(serialize_with = "expose")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub refresh_token: Secret,
    /// The organisation the device is now paired to.
    pub connection: ConnectionInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_requests_round_trip_and_never_debug_their_secrets() {
        let req = TokenRequest {
            grant_type: DEVICE_CODE_GRANT.into(),
            device_code: Some(Secret::new("dc-123")),
            refresh_token: None,
            client_id: Some("ledgerlink-desktop".into()),
        };
        let json = serde_json::to_string(&req).unwrap();
        assert!(json.contains("dc-123") && !json.contains("refresh_token"));
        let back: TokenRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.device_code.unwrap().expose(), "dc-123");
        assert!(!format!("{req:?}").contains("dc-123"));
    }
}
