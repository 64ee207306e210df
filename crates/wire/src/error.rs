//! Every error a device can meet: a stable machine code (what the UI branches on) and a message
//! (what it shows).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable error codes. The serialized names never change; new codes may be added, so clients keep a
/// fallback for codes they do not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: a field is missing or has the wrong form.
    InvalidRequest,
    /// The public client id is not one the proxy knows.
    InvalidClient,
    UnsupportedGrantType,
    /// RFC 8628: the person has not finished in the browser yet; poll again after `interval`.
    AuthorizationPending,
    /// RFC 8628: polling too fast; add 5 seconds to the interval.
    SlowDown,
    /// RFC 8628: the person cancelled in the browser.
    AccessDenied,
    /// RFC 8628: the pairing expired; start a new one.
    ExpiredToken,
    /// The device code or refresh token is not valid (any more).
    InvalidGrant,
    /// No valid device credentials were sent.
    Unauthenticated,
    /// The device access token expired: refresh it.
    TokenExpired,
    /// The device was unpaired (or its credentials were revoked): pair again.
    DeviceRevoked,
    /// The organisation's Xero authorisation no longer works: someone must connect Xero again.
    NeedsReconnect,
    /// The organisation was disconnected from Xero.
    Disconnected,
    /// A destructive call needs `confirm`.
    ConfirmationRequired,
    NotFound,
    /// Too many attempts; wait before trying again.
    RateLimited,
    /// Xero could not be reached or failed; the proxy will retry where it can.
    ProviderUnavailable,
    /// The device id is paired, and active, with another organisation: unpair it first or pair under
    /// a new device id.
    DeviceIdInUse,
    /// Something changed underneath (say, the organisation was reconnected while being
    /// disconnected): look again and retry.
    Conflict,
    /// Something failed inside the proxy; it is logged there.
    Internal,
    /// Nothing was stored: the proxy cannot write just now (its database is full or failing). Send
    /// the same request again after `Retry-After`; resending is always safe.
    Unavailable,
    /// The request body is larger than the proxy takes: send fewer documents per request.
    PayloadTooLarge,
    /// Signed in, but the role does not allow this (an operator API viewer asking to change
    /// something).
    Forbidden,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::InvalidGrant => "invalid_grant",
            Self::Unauthenticated => "unauthenticated",
            Self::TokenExpired => "token_expired",
            Self::DeviceRevoked => "device_revoked",
            Self::NeedsReconnect => "needs_reconnect",
            Self::Disconnected => "disconnected",
            Self::ConfirmationRequired => "confirmation_required",
            Self::NotFound => "not_found",
            Self::RateLimited => "rate_limited",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::DeviceIdInUse => "device_id_in_use",
            Self::Conflict => "conflict",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Forbidden => "forbidden",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every non-OAuth error answer: `{"code": "...", "message": "..."}`, and for a
/// refused body (mappings that do not fit the books) every problem by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<crate::documents::Problem>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            problems: Vec::new(),
        }
    }

    /// With every problem of a refused body.
    pub fn with_problems(mut self, problems: Vec<crate::documents::Problem>) -> Self {
        self.problems = problems;
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

/// The body of an OAuth-style error (the pairing token endpoint): `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthErrorBody {
    pub error: ErrorCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_stable_names() {
        for code in [
            ErrorCode::AuthorizationPending,
            ErrorCode::SlowDown,
            ErrorCode::DeviceRevoked,
            ErrorCode::NeedsReconnect,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
        let e: ApiError =
            serde_json::from_str(r#"{"code":"token_expired","message":"refresh"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::TokenExpired);
    }
}
