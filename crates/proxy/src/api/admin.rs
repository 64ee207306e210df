//! The operator API: list connections with their devices, disconnect one. Bearer admin token.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ledgerlink_wire::ErrorCode;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::connections;
use crate::error::AppError;
use crate::store::ConnectionRow;
use crate::AppState;

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let Some(expected) = &state.settings.admin_token else {
        return Err(AppError::api(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "The admin API is off: start the proxy with --admin-token.",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        Ok(())
    } else {
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
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize(&state, &headers)?;
    let rows = state.storage.call(|s| s.connections()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for c in &rows {
        out.push(describe(&state, c).await?);
    }
    Ok(Json(json!({ "connections": out })))
}

pub async fn disconnect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>, AppError> {
    authorize(&state, &headers)?;
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
