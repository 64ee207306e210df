//! One application error: a caller's mistake keeps its status and a `{code, message}` body (or the
//! OAuth shape on the token endpoint); anything internal answers a generic 500 and is logged in full.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledgerlink_wire::error::OAuthErrorBody;
use ledgerlink_wire::{ApiError, ErrorCode};

use crate::store::StoreError;
use crate::vault::VaultError;

#[derive(Debug)]
pub enum AppError {
    Api(StatusCode, ApiError),
    /// RFC 6749/8628 error body, for the pairing token endpoint.
    OAuth(StatusCode, OAuthErrorBody),
    /// Logged in full; the caller sees only that something failed.
    Internal(String),
}

impl AppError {
    pub fn api(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Api(status, ApiError::new(code, message))
    }

    pub fn oauth(code: ErrorCode, description: impl Into<String>) -> Self {
        let status = match code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::OAuth(
            status,
            OAuthErrorBody {
                error: code,
                error_description: Some(description.into()),
            },
        )
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::api(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    /// The error code a client would branch on, for tests and logs.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Api(_, e) => e.code,
            Self::OAuth(_, e) => e.error,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(status, e) => write!(f, "{status}: {e}"),
            Self::OAuth(status, e) => write!(f, "{status}: {}", e.error),
            Self::Internal(detail) => f.write_str(detail),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Api(status, body) => (status, Json(body)).into_response(),
            Self::OAuth(status, body) => {
                (status, [("cache-control", "no-store")], Json(body)).into_response()
            }
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(ApiError::new(
                        ErrorCode::Internal,
                        "Something failed inside the proxy; it has been logged.",
                    )),
                )
                    .into_response()
            }
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<VaultError> for AppError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::NeedsReconnect => Self::api(
                StatusCode::CONFLICT,
                ErrorCode::NeedsReconnect,
                "Xero no longer accepts this organisation's authorisation: connect Xero again.",
            ),
            VaultError::Unavailable(m) => Self::api(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ProviderUnavailable,
                format!("Xero could not be reached: {m}"),
            ),
            other => Self::internal(other),
        }
    }
}

/// Parses a body sent as a form or as JSON (by its content type; JSON when none is given).
pub fn parse_form_or_json<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<T, String> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    }
}
