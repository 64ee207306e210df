//! `GET /v1/connection` (the organisation and its health), `DELETE /v1/device` (unpair this device),
//! `DELETE /v1/connection` (disconnect the organisation for every device).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ledgerlink_wire::connection::DisconnectRequest;
use ledgerlink_wire::{ConnectionInfo, ErrorCode};
use serde::Deserialize;

use crate::connections;
use crate::device::{connection_info, DeviceAuth};
use crate::error::{parse_form_or_json, AppError};
use crate::AppState;

pub async fn get(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> Result<Json<ConnectionInfo>, AppError> {
    let connection = connections::check(&state, auth.connection).await?;
    Ok(Json(
        connection_info(&state, &auth.device, &connection).await?,
    ))
}

/// `GET /v1/device`: which device these credentials are (cheap: no call to Xero).
pub async fn whoami(auth: DeviceAuth) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "device_id": auth.device.id,
        "device_name": auth.device.name,
        "connection_id": auth.connection.id,
        "paired_at": auth.device.paired_at,
    }))
}

pub async fn unpair(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> Result<StatusCode, AppError> {
    let (id, now) = (auth.device.id, state.clock.now());
    state
        .storage
        .call(move |s| s.revoke_device(id, now))
        .await?;
    state.streams.end([id]);
    tracing::info!(device = %id, "device unpaired");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct ConfirmQuery {
    /// `?confirm=true` (read leniently: anything but `true`/`1`/`yes` is no).
    confirm: Option<String>,
}

pub async fn disconnect(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Query(q): Query<ConfirmQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ConnectionInfo>, AppError> {
    let confirmed = q
        .confirm
        .is_some_and(|c| matches!(c.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        || (!body.is_empty()
            && parse_form_or_json::<DisconnectRequest>(&headers, &body)
                .map_err(AppError::bad_request)?
                .confirm);
    if !confirmed {
        return Err(AppError::api(
            StatusCode::BAD_REQUEST,
            ErrorCode::ConfirmationRequired,
            "Disconnecting stops every device of this organisation from sending to Xero. Send {\"confirm\": true} to go ahead.",
        ));
    }
    let connection = connections::disconnect(&state, auth.connection).await?;
    Ok(Json(
        connection_info(&state, &auth.device, &connection).await?,
    ))
}
