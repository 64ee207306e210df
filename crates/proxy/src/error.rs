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
    /// A refusal to try again after this many seconds (`429`, `503`): sent with `Retry-After`.
    Later(StatusCode, ApiError, u64),
    /// RFC 6749/8628 error body, for the pairing endpoints; with `Retry-After` when set.
    OAuth(StatusCode, OAuthErrorBody, Option<u64>),
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
            None,
        )
    }

    /// An OAuth-shaped `429 rate_limited`, again after `retry_after` seconds.
    pub fn oauth_rate_limited(description: impl Into<String>, retry_after: u64) -> Self {
        Self::OAuth(
            StatusCode::TOO_MANY_REQUESTS,
            OAuthErrorBody {
                error: ErrorCode::RateLimited,
                error_description: Some(description.into()),
            },
            Some(retry_after),
        )
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    /// Too many of something: `429 rate_limited`, again after `retry_after` seconds.
    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> Self {
        Self::Later(
            StatusCode::TOO_MANY_REQUESTS,
            ApiError::new(ErrorCode::RateLimited, message),
            retry_after,
        )
    }

    /// Nothing was stored: `503 unavailable`, again after a few seconds.
    pub fn unavailable() -> Self {
        Self::Later(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiError::new(
                ErrorCode::Unavailable,
                "Nothing was stored: the proxy cannot save anything just now. Send the same request again in a moment.",
            ),
            UNAVAILABLE_RETRY_SECS,
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::api(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    /// The error code a client would branch on, for tests and logs.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Api(_, e) | Self::Later(_, e, _) => e.code,
            Self::OAuth(_, e, _) => e.error,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(status, e) | Self::Later(status, e, _) => write!(f, "{status}: {e}"),
            Self::OAuth(status, e, _) => write!(f, "{status}: {}", e.error),
            Self::Internal(detail) => f.write_str(detail),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Api(status, body) => (status, Json(body)).into_response(),
            Self::Later(status, body, secs) => (
                status,
                [(axum::http::header::RETRY_AFTER, secs.to_string())],
                Json(body),
            )
                .into_response(),
            Self::OAuth(status, body, retry_after) => {
                let mut response =
                    (status, [("cache-control", "no-store")], Json(body)).into_response();
                if let Some(secs) = retry_after {
                    response
                        .headers_mut()
                        .insert(axum::http::header::RETRY_AFTER, secs.into());
                }
                response
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

/// How long a device is asked to wait before sending again what could not be stored.
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            // Logged (at most once a minute) where it happened.
            StoreError::Unavailable(_) => Self::unavailable(),
            other => Self::internal(other),
        }
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
            VaultError::Store(e) => e.into(),
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
        ledgerlink_wire::strict::from_json(body).map_err(|e| e.to_string())
    }
}
