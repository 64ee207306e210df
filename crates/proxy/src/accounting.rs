//! Calls to Xero's Accounting API for one connection: the access token from the vault, a `401`
//! refreshed once and retried, and the answer with what the caller needs to pace itself.

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

use crate::store::ConnectionRow;
use crate::vault::VaultError;
use crate::AppState;

/// Xero's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    /// `Retry-After` on a `429`.
    pub retry_after: Option<Duration>,
    /// `X-MinLimit-Remaining`: calls left in this minute for the tenant.
    pub minute_remaining: Option<u32>,
    /// `X-DayLimit-Remaining`: calls left today for the tenant.
    pub day_remaining: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Xero could not be reached or the answer was lost: the outcome is unknown.
    #[error("Xero did not answer: {0}")]
    Transport(String),
    /// The tokens no longer work.
    #[error("the organisation must be connected again")]
    NeedsReconnect,
    #[error("no token set: the organisation is not connected")]
    NotConnected,
    #[error(transparent)]
    Vault(VaultError),
}

/// One call; `body` is sent as JSON text.
pub async fn call(
    state: &AppState,
    connection: &ConnectionRow,
    method: Method,
    path_and_query: &str,
    body: Option<&str>,
    idempotency_key: Option<&str>,
) -> Result<Answer, CallError> {
    let token_set = connection.token_set_id.ok_or(CallError::NotConnected)?;
    let mut access = state
        .vault
        .access_token(token_set)
        .await
        .map_err(vault_error)?;
    let url = format!(
        "{}/{}",
        state.xero.endpoints().api.as_str().trim_end_matches('/'),
        path_and_query.trim_start_matches('/')
    );
    for attempt in 0..2 {
        let mut req = state
            .xero
            .http()
            .request(method.clone(), &url)
            .bearer_auth(access.expose())
            .header("xero-tenant-id", connection.tenant_id.to_string())
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let response = req
            .send()
            .await
            .map_err(|e| CallError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let retry_after = header("retry-after").map(Duration::from_secs);
        let minute_remaining = header("x-minlimit-remaining").map(|v| v as u32);
        let day_remaining = header("x-daylimit-remaining").map(|v| v as u32);
        if status == StatusCode::UNAUTHORIZED && attempt == 0 {
            // Refresh once through the vault (single-flight) and try again.
            access = state
                .vault
                .refresh_after_rejection(token_set, &access)
                .await
                .map_err(vault_error)?;
            continue;
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(CallError::NeedsReconnect);
        }
        let text = response
            .text()
            .await
            .map_err(|e| CallError::Transport(e.without_url().to_string()))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        return Ok(Answer {
            status,
            body,
            retry_after,
            minute_remaining,
            day_remaining,
        });
    }
    Err(CallError::NeedsReconnect)
}

fn vault_error(e: VaultError) -> CallError {
    match e {
        VaultError::NeedsReconnect => CallError::NeedsReconnect,
        VaultError::Unavailable(m) => CallError::Transport(m),
        other => CallError::Vault(other),
    }
}
