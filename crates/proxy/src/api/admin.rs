//! The operator API: list connections with their devices, disconnect one. Bearer admin token; wrong
//! tokens are logged (never the token) and, past `admin.max_failures_per_address` in a window,
//! every call from that address is refused until the window turns.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ledgerlink_wire::ErrorCode;
use serde_json::{json, Value};
use std::net::SocketAddr;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::connections;
use crate::error::AppError;
use crate::store::ConnectionRow;
use crate::AppState;

fn authorize(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Result<(), AppError> {
    let Some(expected) = &state.settings.admin_token else {
        return Err(AppError::api(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "The admin API is off: start the proxy with --admin-token.",
        ));
    };
    let address = crate::pairing::client_address(state, peer, headers);
    let now = state.clock.now();
    let limits = &state.settings.admin;
    if state.throttle.admin_blocked(address, now, limits) {
        tracing::warn!(%address, "operator API: refused, too many wrong tokens from this address");
        return Err(AppError::rate_limited(
            "Too many wrong admin tokens from this address: wait before trying again.",
            crate::pairing::Throttle::admin_retry_after(now, limits),
        ));
    }
    let given = crate::device::bearer(headers).unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        Ok(())
    } else {
        state.throttle.admin_failed(address, now, limits);
        tracing::warn!(
            %address,
            token_given = !given.is_empty(),
            "operator API: wrong or missing admin token"
        );
        Err(AppError::api(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "Send the admin token as `Authorization: Bearer ...`.",
        ))
    }
}

async fn describe(state: &AppState, c: &ConnectionRow) -> Result<Value, AppError> {
    let id = c.id;
    let devices = state.storage.call(move |s| s.devices_on(id)).await?;
    Ok(json!({
        "id": c.id,
        "provider": c.provider,
        "tenant_id": c.tenant_id,
        "tenant_name": c.tenant_name,
        "status": c.status,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "devices": devices.iter().map(|d| json!({
            "id": d.id,
            "name": d.name,
            "paired_at": d.paired_at,
            "last_seen_at": d.last_seen_at,
            "revoked_at": d.revoked_at,
        })).collect::<Vec<_>>(),
    }))
}

pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize(&state, peer, &headers)?;
    let rows = state.storage.call(|s| s.connections()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for c in &rows {
        out.push(describe(&state, c).await?);
    }
    Ok(Json(json!({ "connections": out })))
}

pub async fn disconnect(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>, AppError> {
    authorize(&state, peer, &headers)?;
    let connection = state
        .storage
        .call(move |s| s.connection(id))
        .await?
        .ok_or_else(|| {
            AppError::api(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                format!("No connection {id}."),
            )
        })?;
    let done = connections::disconnect(&state, connection).await?;
    Ok(Json(describe(&state, &done).await?))
}
