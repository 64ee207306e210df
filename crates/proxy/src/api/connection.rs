//! `GET /v1/connection` (the organisation and its health), `DELETE /v1/device` (unpair this device),
//! `DELETE /v1/connection` (disconnect the organisation for every device), `GET /v1/devices` (the
//! devices that would stop).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ledgerlink_wire::connection::DisconnectRequest;
use ledgerlink_wire::{ApiError, ConnectionInfo, DeviceInfo, DeviceList, ErrorCode, PairedDevice};
use serde::Deserialize;

use crate::body::{Params, RawBody};
use crate::connections;
use crate::device::{connection_info, DeviceAuth};
use crate::error::{parse_form_or_json, AppError};
use crate::openapi::{BodyRefusals, DeviceRefusals};
use crate::AppState;

/// The organisation this device sends to, and its status (asking Xero at most once a minute
/// whether it is still connected).
#[utoipa::path(get, path = "/v1/connection", tag = "connection", security(("device" = [])),
    responses((status = 200, body = ConnectionInfo), DeviceRefusals))]
pub async fn get(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> Result<Json<ConnectionInfo>, AppError> {
    let connection = connections::check(&state, auth.connection).await?;
    Ok(Json(
        connection_info(&state, &auth.device, &connection).await?,
    ))
}

/// Which device these credentials are (cheap: no call to Xero).
#[utoipa::path(get, path = "/v1/device", tag = "connection", security(("device" = [])),
    responses((status = 200, body = DeviceInfo), DeviceRefusals))]
pub async fn whoami(auth: DeviceAuth) -> Json<DeviceInfo> {
    Json(DeviceInfo {
        device_id: auth.device.id,
        device_name: auth.device.name,
        connection_id: auth.connection.id,
        paired_at: auth.device.paired_at,
    })
}

/// Every device paired with this device's organisation (oldest first): the ones that stop when
/// it is disconnected, for the confirmation that names them.
#[utoipa::path(get, path = "/v1/devices", tag = "connection", security(("device" = [])),
    responses((status = 200, body = DeviceList), DeviceRefusals))]
pub async fn devices(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> Result<Json<DeviceList>, AppError> {
    let connection = auth.connection.id;
    let rows = state.storage.devices().devices_on(connection).await?;
    Ok(Json(DeviceList {
        devices: rows
            .into_iter()
            .filter(|d| d.revoked_at.is_none())
            .map(|d| PairedDevice {
                // Names only: another device's id is no business of this one.
                this_device: d.id == auth.device.id,
                device_name: d.name,
                paired_at: d.paired_at,
                last_seen_at: d.last_seen_at,
            })
            .collect(),
    }))
}

/// Unpairs this device: its credentials are revoked at once, its event feeds end.
#[utoipa::path(delete, path = "/v1/device", tag = "connection", security(("device" = [])),
    responses((status = 204, description = "Unpaired"), DeviceRefusals))]
pub async fn unpair(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> Result<StatusCode, AppError> {
    let (id, now) = (auth.device.id, state.clock.now());
    state.storage.devices().revoke_device(id, now).await?;
    state.streams.end([id]);
    tracing::info!(device = %id, "device unpaired");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfirmQuery {
    /// `true` disconnects (or send `{"confirm": true}` as the body).
    confirm: Option<bool>,
}

/// Disconnects the organisation from Xero for every device (Xero's connection deleted, the refresh
/// token revoked when nothing else uses it, every device's credentials revoked). Needs
/// `?confirm=true` or `{"confirm": true}`.
#[utoipa::path(delete, path = "/v1/connection", tag = "connection", security(("device" = [])),
    params(ConfirmQuery),
    request_body(content = Option<DisconnectRequest>, content_type = "application/json", description = "Optional: the confirmation, when not in the query"),
    responses(
        (status = 200, description = "Disconnected", body = ConnectionInfo),
        (status = 400, description = "confirmation_required, or a body that is not `{\"confirm\": ...}`", body = ApiError),
        (status = 409, description = "conflict: the organisation was connected again meanwhile", body = ApiError),
        DeviceRefusals,
        BodyRefusals,
    ))]
pub async fn disconnect(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Params(q): Params<ConfirmQuery>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<ConnectionInfo>, AppError> {
    // A body, when there is one, is read (and refused when it is not `{"confirm": ...}`) whatever
    // the query says.
    let in_body = if body.is_empty() {
        None
    } else {
        Some(
            parse_form_or_json::<DisconnectRequest>(&headers, &body)
                .map_err(AppError::bad_request)?
                .confirm,
        )
    };
    let confirmed = q.confirm == Some(true) || in_body == Some(true);
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
