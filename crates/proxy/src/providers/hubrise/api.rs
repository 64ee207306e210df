//! Calls to HubRise's API for one connection: the location's token from the vault in
//! `X-Access-Token`, the answer with what it says of HubRise's limits (only a `429` and its
//! `Retry-After`: HubRise says nothing of what is left, so the pacer keeps to the limit itself).
//! A `401` is confirmed with one `GET /location` before the connection is marked
//! `needs_reconnect`: the token never expires, so a refusal means it was revoked.

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

use super::oauth::HubRiseClient;
use crate::delivery::pacer::Quota;
use crate::delivery::Stop;
use crate::providers::{Answer, Grants, Quotas, TokenError};
use crate::store::{ConnectionRow, StatusReason};
use crate::vault::VaultError;
use crate::AppState;
use ledgerlink_wire::ConnectionStatus;

/// One call; `path` is below the API's base (`/location/orders`).
pub async fn call(
    state: &AppState,
    connection: &ConnectionRow,
    client: &HubRiseClient,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Answer, Stop> {
    let token_set = connection.token_set_id.ok_or(Stop::Reconnect)?;
    let access = match state.vault.access_token(token_set).await {
        Ok(a) => a,
        Err(VaultError::NeedsReconnect) => return Err(Stop::Reconnect),
        Err(e) => return Err(Stop::Later(e.to_string())),
    };
    let url = format!(
        "{}/{}",
        client.endpoints().api.as_str().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let mut request = client
        .http()
        .request(method, url)
        .header("x-access-token", access.expose());
    if let Some(b) = body {
        request = request.json(b);
    }
    let response = request
        .send()
        .await
        .map_err(|e| Stop::Later(format!("HubRise did not answer: {}", e.without_url())))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = response
        .text()
        .await
        .map_err(|e| Stop::Later(format!("HubRise's answer was lost: {}", e.without_url())))?;
    if status == StatusCode::UNAUTHORIZED {
        // Revoked, or a passing refusal? One look at the location decides.
        match client.reaches(&access, &connection.tenant_id).await {
            Ok(true) => {
                return Err(Stop::Later(
                    "HubRise refused a call with a token it still takes".into(),
                ))
            }
            Ok(false) | Err(TokenError::InvalidGrant) => {
                tracing::warn!(connection = %connection.id, "HubRise refuses the location's token: it must be connected again");
                if let Err(e) = crate::connections::leave_connected(
                    state,
                    connection.id,
                    token_set,
                    ConnectionStatus::NeedsReconnect,
                    // Probed again now and then (`connections::reprobe`): a refusal HubRise
                    // takes back recovers without a person.
                    StatusReason::ApiRefused,
                )
                .await
                {
                    tracing::error!(connection = %connection.id, error = %e, "cannot record the connection's status");
                }
                return Err(Stop::Reconnect);
            }
            Err(e) => return Err(Stop::Later(e.to_string())),
        }
    }
    let limited = status == StatusCode::TOO_MANY_REQUESTS;
    Ok(Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        quota: Quotas {
            connection: Quota {
                remaining: None,
                limited,
                retry_after,
            },
            app: Quota::default(),
            spent_until: None,
        },
    })
}

/// HubRise's words for a refusal: its message and each field's.
pub fn refusal(answer: &Answer) -> String {
    let message = answer.body["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("HubRise answered {}", answer.status));
    let fields: Vec<String> = answer.body["errors"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["field"].as_str().unwrap_or_default(),
                        e["message"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        message
    } else {
        format!("{message}: {}", fields.join("; "))
    }
}
