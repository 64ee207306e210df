//! Calls to Xero's Accounting API for one connection: the access token from the vault, and the
//! answer with what the caller needs to pace itself. Refusals are not taken at their first word:
//!
//! - a `401` refreshes the tokens (once, single-flight) and tries again; a `401` right after a
//!   refresh that worked is Xero's token service and API disagreeing for a moment, so it is tried
//!   again with backoff, up to three times, before the connection is marked `needs_reconnect`
//!   (`api_refused`, which the re-probe in `crate::connections` revisits);
//! - a `403` (`AuthenticationUnsuccessful`) asks Xero whether the organisation is still connected:
//!   if it is, the call is tried again with backoff; if not, the connection is `disconnected`.

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

use crate::delivery::pacer::Quota;
use crate::delivery::Stop;
use crate::error::AppError;
pub use crate::providers::Answer;
use crate::providers::Quotas;
use crate::store::{ConnectionRow, StatusReason};
use crate::vault::VaultError;
use crate::AppState;
use ledgerlink_wire::ConnectionStatus;
use ledgerlink_wire::ErrorCode;

/// Tries after a refusal that may pass (a `401` after a fresh refresh, a `403` for an organisation
/// Xero still lists), with backoff between them.
const AUTH_RETRIES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Xero could not be reached or the answer was lost: the outcome is unknown.
    #[error("Xero did not answer: {0}")]
    Transport(String),
    /// The tokens no longer work.
    #[error("the organisation must be connected again")]
    NeedsReconnect,
    /// The organisation is no longer connected at Xero.
    #[error("the organisation was disconnected from Xero")]
    Disconnected,
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
    let url = api_url(state, path_and_query);
    let mut refreshed = false;
    let mut retries = 0;
    loop {
        let response = send(
            state,
            connection,
            &access,
            &method,
            &url,
            body,
            idempotency_key,
        )
        .await?;
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
        let app_remaining = header("x-appminlimit-remaining").map(|v| v as u32);
        let rate_limit_problem = response
            .headers()
            .get("x-rate-limit-problem")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase());
        if status == StatusCode::UNAUTHORIZED {
            if !refreshed {
                // Refresh once through the vault (single-flight) and try again.
                access = state
                    .vault
                    .refresh_after_rejection(token_set, &access)
                    .await
                    .map_err(vault_error)?;
                refreshed = true;
                continue;
            }
            if retries < AUTH_RETRIES {
                retries += 1;
                tracing::warn!(connection = %connection.id, attempt = retries, "Xero refused a freshly refreshed token; trying again shortly");
                backoff(retries).await;
                continue;
            }
            tracing::warn!(connection = %connection.id, "Xero keeps refusing the organisation's tokens: it must be connected again");
            mark(
                state,
                connection,
                token_set,
                ConnectionStatus::NeedsReconnect,
                StatusReason::ApiRefused,
            )
            .await;
            return Err(CallError::NeedsReconnect);
        }
        if status == StatusCode::FORBIDDEN {
            // AuthenticationUnsuccessful: is the organisation still connected to these tokens?
            match state.xero.connections(&access, None).await {
                Ok(list)
                    if list
                        .iter()
                        .any(|c| c.tenant_id.to_string() == connection.tenant_id) =>
                {
                    if retries < AUTH_RETRIES {
                        retries += 1;
                        tracing::warn!(connection = %connection.id, attempt = retries, "Xero answered 403 for an organisation it still lists; trying again shortly");
                        backoff(retries).await;
                        continue;
                    }
                    // Listed, yet refused every time: not a passing refusal, but not proof of a
                    // disconnection either. The caller retries later.
                    return Err(CallError::Transport(
                        "Xero keeps answering 403 for an organisation it lists as connected".into(),
                    ));
                }
                Ok(_) => {
                    tracing::warn!(connection = %connection.id, tenant = %connection.tenant_id, "the organisation was disconnected from Xero's side");
                    mark(
                        state,
                        connection,
                        token_set,
                        ConnectionStatus::Disconnected,
                        StatusReason::TenantGone,
                    )
                    .await;
                    return Err(CallError::Disconnected);
                }
                Err(e) => return Err(CallError::Transport(e.to_string())),
            }
        }
        let text = response
            .text()
            .await
            .map_err(|e| CallError::Transport(e.without_url().to_string()))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        // What Xero says of its counts: the organisation's minute (a 429 for it, or for the day)
        // paces this connection, the app's minute every connection.
        let limited = status == StatusCode::TOO_MANY_REQUESTS;
        let app_limited = limited && rate_limit_problem.as_deref() == Some("appminute");
        let quota = Quotas {
            connection: Quota {
                // Refused for the app's minute, the organisation's count may not have moved:
                // nothing is learned from it.
                remaining: minute_remaining.filter(|_| !app_limited),
                limited: limited && !app_limited,
                retry_after,
            },
            app: Quota {
                remaining: app_remaining,
                limited: app_limited,
                retry_after,
            },
            // The organisation's calls for the day are spent: none until the next UTC day (Xero's
            // Retry-After says the same when a 429 comes).
            spent_until: (day_remaining == Some(0)).then(|| next_utc_midnight(state.clock.now())),
        };
        return Ok(Answer {
            status,
            body,
            quota,
        });
    }
}

/// What a device hears when a Xero call made for it (`what`: "read the organisation's accounts")
/// could not be made: reconnect, disconnected, or Xero out of reach. The vault's trouble (a
/// database, a key) is the operator's, logged in full there; the device hears only that something
/// failed.
pub(crate) fn to_device(e: CallError, what: &str) -> AppError {
    match e {
        CallError::NeedsReconnect | CallError::NotConnected => AppError::api(
            StatusCode::CONFLICT,
            ErrorCode::NeedsReconnect,
            format!("Connect Xero again to {what}."),
        ),
        CallError::Disconnected => AppError::api(
            StatusCode::CONFLICT,
            ErrorCode::Disconnected,
            "The organisation was disconnected from Xero: connect Xero again.",
        ),
        CallError::Transport(why) => AppError::api(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ProviderUnavailable,
            format!("Could not {what}: Xero did not answer ({why})"),
        ),
        CallError::Vault(v) => AppError::from(v),
    }
}

fn next_utc_midnight(now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    (now.date_naive() + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

impl From<CallError> for Stop {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NeedsReconnect | CallError::NotConnected | CallError::Disconnected => {
                Stop::Reconnect
            }
            other => Stop::Later(other.to_string()),
        }
    }
}

fn api_url(state: &AppState, path_and_query: &str) -> String {
    format!(
        "{}/{}",
        state.xero.endpoints().api.as_str().trim_end_matches('/'),
        path_and_query.trim_start_matches('/')
    )
}

async fn send(
    state: &AppState,
    connection: &ConnectionRow,
    access: &ledgerlink_wire::Secret,
    method: &Method,
    url: &str,
    body: Option<&str>,
    idempotency_key: Option<&str>,
) -> Result<reqwest::Response, CallError> {
    let mut req = state
        .xero
        .http()
        .request(method.clone(), url)
        .bearer_auth(access.expose())
        .header("xero-tenant-id", &connection.tenant_id)
        .header("accept", "application/json");
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    if let Some(k) = idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    req.send()
        .await
        .map_err(|e| CallError::Transport(e.without_url().to_string()))
}

/// Whether Xero takes the connection's tokens again (`GET /Organisation`, refreshing once on a
/// `401`): one look, no retries and nothing marked, for the re-probe of a connection parked by
/// refused API calls.
pub async fn probe(state: &AppState, connection: &ConnectionRow) -> Result<bool, CallError> {
    let token_set = connection.token_set_id.ok_or(CallError::NotConnected)?;
    let url = api_url(state, "Organisation");
    let mut access = state
        .vault
        .access_token(token_set)
        .await
        .map_err(vault_error)?;
    for attempt in 0..2 {
        let response = send(state, connection, &access, &Method::GET, &url, None, None).await?;
        if response.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
            access = state
                .vault
                .refresh_after_rejection(token_set, &access)
                .await
                .map_err(vault_error)?;
            continue;
        }
        return Ok(response.status().is_success());
    }
    Ok(false)
}

/// 1 s, 2 s, 4 s, with up to half again of jitter.
async fn backoff(attempt: u32) {
    let base = 500u64 << attempt.min(4);
    tokio::time::sleep(Duration::from_millis(
        base + rand::random::<u64>() % (base / 2 + 1),
    ))
    .await;
}

/// Moves a connected connection to `to`, telling its devices (nothing if it moved meanwhile).
async fn mark(
    state: &AppState,
    connection: &ConnectionRow,
    token_set: uuid::Uuid,
    to: ConnectionStatus,
    reason: StatusReason,
) {
    let marked =
        crate::connections::leave_connected(state, connection.id, token_set, to, reason).await;
    if let Err(e) = marked {
        tracing::error!(connection = %connection.id, error = %e, "cannot record the connection's status");
    }
}

fn vault_error(e: VaultError) -> CallError {
    match e {
        VaultError::NeedsReconnect => CallError::NeedsReconnect,
        VaultError::Unavailable(m) => CallError::Transport(m),
        other => CallError::Vault(other),
    }
}
