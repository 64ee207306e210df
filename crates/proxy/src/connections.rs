//! What happens to a connection as a whole: its health seen from its provider, and disconnecting
//! it. Written once for every provider, through the provider's `Grants` and `BrowserConsent`.

use chrono::Duration;
use ledgerlink_wire::ConnectionStatus;

use crate::error::AppError;
use crate::providers::{Organisation, TokenError};
use crate::store::{ConnectionRow, StatusReason};
use crate::vault::VaultError;
use crate::AppState;

/// How often a device's status check may ask the provider whether the organisation is still
/// connected.
const CHECK_EVERY_SECS: i64 = 60;

/// The connection as it stands, after asking its provider (at most once a minute per connection)
/// whether the grant still reaches the organisation: a refusal that a refresh cannot fix, or an
/// organisation the grant no longer reaches (Xero: gone from `/connections`), means it was
/// disconnected from the provider's side.
pub async fn check(state: &AppState, connection: ConnectionRow) -> Result<ConnectionRow, AppError> {
    let (Some(token_set), ConnectionStatus::Connected) =
        (connection.token_set_id, connection.status)
    else {
        return Ok(connection);
    };
    let now = state.clock.now();
    {
        let mut checked = state.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked
            .get(&connection.id)
            .is_some_and(|t| now - *t < Duration::seconds(CHECK_EVERY_SECS))
        {
            return Ok(connection);
        }
        checked.insert(connection.id, now);
    }
    let id = connection.id;
    let Some(provider) = ledgerlink_wire::Provider::parse(&connection.provider) else {
        return Ok(connection);
    };
    let Some(grants) = state.grants(provider) else {
        return Ok(connection);
    };
    let reread = |state: &AppState| {
        let storage = state.storage.clone();
        async move {
            storage
                .connections()
                .connection(id)
                .await
                .map_err(AppError::from)?
                .ok_or_else(|| AppError::internal("a connection vanished"))
        }
    };
    let access = match state.vault.access_token(token_set).await {
        Ok(a) => a,
        Err(VaultError::NeedsReconnect) => return reread(state).await,
        Err(VaultError::Unavailable(why)) => {
            tracing::warn!(connection = %id, error = %why, "cannot check the connection with its provider now");
            return Ok(connection);
        }
        Err(e) => return Err(e.into()),
    };
    let mut listed = grants.reaches(&access, &connection.tenant_id).await;
    if matches!(listed, Err(TokenError::InvalidGrant)) {
        // The provider refused the access token: refresh once and ask again.
        match state
            .vault
            .refresh_after_rejection(token_set, &access)
            .await
        {
            Ok(fresh) => listed = grants.reaches(&fresh, &connection.tenant_id).await,
            Err(VaultError::NeedsReconnect) => return reread(state).await,
            Err(VaultError::Unavailable(why) | VaultError::Rejected(why)) => {
                tracing::warn!(connection = %id, error = %why, "cannot check the connection with its provider now");
                return Ok(connection);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let gone = match listed {
        Ok(reaches) => !reaches,
        Err(TokenError::InvalidGrant) => true,
        Err(e) => {
            tracing::warn!(connection = %id, error = %e, "cannot check the connection with its provider now");
            return Ok(connection);
        }
    };
    if gone {
        tracing::warn!(connection = %id, tenant = %connection.tenant_id, "the organisation was disconnected from the provider's side");
        leave_connected(
            state,
            id,
            token_set,
            ConnectionStatus::Disconnected,
            StatusReason::TenantGone,
        )
        .await?;
        return reread(state).await;
    }
    Ok(connection)
}

/// Moves a connection still `connected` on `token_set` to `to` for `reason`, and tells its devices.
/// `false` when it had moved meanwhile (nothing changed).
pub async fn leave_connected(
    state: &AppState,
    id: uuid::Uuid,
    token_set: uuid::Uuid,
    to: ConnectionStatus,
    reason: StatusReason,
) -> Result<bool, AppError> {
    let now = state.clock.now();
    let moved = state
        .storage
        .connections()
        .mark_connection(
            id,
            Some(token_set),
            ConnectionStatus::Connected,
            to,
            Some(reason),
            now,
        )
        .await?;
    if moved {
        state.events_ready.notify_waiters();
    }
    Ok(moved)
}

/// Asks the provider again about connections parked because it refused API calls (not the refresh, which
/// only a reconnect fixes): one that works again is `connected` once more, and its devices are
/// told. Answers how many recovered.
pub async fn reprobe(state: &AppState) -> usize {
    let parked = match state.storage.connections().connections_to_reprobe().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list connections to probe again");
            return 0;
        }
    };
    let mut recovered = 0;
    for connection in parked {
        let id = connection.id;
        match crate::providers::probe(state, &connection).await {
            Ok(true) => {
                let (token_set, now) = (connection.token_set_id, state.clock.now());
                let moved = state
                    .storage
                    .connections()
                    .mark_connection(
                        id,
                        token_set,
                        ConnectionStatus::NeedsReconnect,
                        ConnectionStatus::Connected,
                        None,
                        now,
                    )
                    .await;
                if let Ok(true) = moved {
                    tracing::info!(connection = %id, "the provider takes the organisation's tokens again: connected");
                    recovered += 1;
                    state.events_ready.notify_waiters();
                    state.outbox_ready.notify_one();
                }
            }
            Ok(false) => {
                tracing::info!(connection = %id, "the provider still refuses the organisation's tokens")
            }
            Err(e) => {
                tracing::info!(connection = %id, error = %e, "cannot probe the organisation now")
            }
        }
    }
    recovered
}

/// Disconnects the organisation: `DELETE /connections/{id}` at Xero, the refresh token revoked when
/// no other connection uses it, and every device of the connection cut off (they are told
/// `disconnected` on their next call).
pub async fn disconnect(
    state: &AppState,
    connection: ConnectionRow,
) -> Result<ConnectionRow, AppError> {
    let id = connection.id;
    if let Some(token_set) = connection.token_set_id {
        match state.vault.access_token(token_set).await {
            Ok(access) => {
                let organisation = Organisation {
                    tenant_id: connection.tenant_id.clone(),
                    name: connection.tenant_name.clone(),
                    link_id: connection.xero_connection_id,
                };
                let provider = ledgerlink_wire::Provider::parse(&connection.provider)
                    .ok_or_else(|| AppError::internal("a connection to an unknown provider"))?;
                let released = match state.consent(provider) {
                    Some(consent) => consent.release(&access, &organisation).await,
                    None => Ok(false),
                };
                match released {
                    Ok(true) => {
                        tracing::info!(connection = %id, "let the organisation go at the provider")
                    }
                    Ok(false) => {
                        tracing::info!(connection = %id, "the organisation was already let go at the provider")
                    }
                    Err(e) => {
                        return Err(AppError::from(VaultError::Unavailable(e.to_string())));
                    }
                }
            }
            // The provider no longer honours these tokens: there is nothing left to let go there.
            Err(VaultError::NeedsReconnect) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let now = state.clock.now();
    let token_set_before = connection.token_set_id;
    let done = state
        .storage
        .connections()
        .disconnect(id, token_set_before, now)
        .await?;
    if done {
        let devices = state.storage.devices().devices_on(id).await?;
        state.streams.end(devices.iter().map(|d| d.id));
    } else {
        return Err(AppError::api(
            axum::http::StatusCode::CONFLICT,
            ledgerlink_wire::ErrorCode::Conflict,
            "The organisation was connected again while it was being disconnected: look at it again and retry.",
        ));
    }
    if let Some(token_set) = connection.token_set_id {
        let unused = state
            .storage
            .connections()
            .connections_using(token_set)
            .await?
            .is_empty();
        if unused {
            if let Err(e) = state.vault.revoke(token_set).await {
                tracing::warn!(error = %e, "could not revoke the grant at the provider");
            }
            state.vault.delete(token_set).await?;
        }
    }
    tracing::info!(connection = %id, "organisation disconnected");
    state
        .storage
        .connections()
        .connection(id)
        .await?
        .ok_or_else(|| AppError::internal("a connection vanished"))
}
