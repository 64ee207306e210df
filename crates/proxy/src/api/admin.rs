//! The operator API: list connections with their devices, disconnect one. A bearer access token of
//! the operators' identity provider (`crate::operators`), or the static admin token; wrong tokens
//! are logged (never the token) and, past `admin.max_failures_per_address` in a window, every call
//! from that address is refused until the window turns.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ledgerlink_wire::admin::{AdminConnection, AdminConnectionList, AdminDevice};
use ledgerlink_wire::{ApiError, ErrorCode};
use std::net::SocketAddr;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::connections;
use crate::error::AppError;
use crate::operators::{Operator, Role};
use crate::store::ConnectionRow;
use crate::AppState;

/// Who is calling, if they may do what `need` asks. A bearer token is either the static admin
/// token (an operator) or an access token of the configured issuer (a role from its groups or
/// scopes). Wrong tokens of either kind count against the caller's address.
pub(crate) async fn authorize(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    need: Role,
) -> Result<Operator, AppError> {
    let expected = state.settings.admin_token.as_ref();
    if expected.is_none() && state.operators.is_none() {
        return Err(AppError::api(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "The operator API is off: set [operators] issuer, or start the proxy with --admin-token.",
        ));
    }
    let address = crate::pairing::client_address(state, peer, headers);
    let now = state.clock.now();
    let limits = &state.settings.admin;
    if state.throttle.admin_blocked(address, now, limits).await? {
        tracing::warn!(%address, "operator API: refused, too many wrong tokens from this address");
        return Err(AppError::rate_limited(
            "Too many wrong operator tokens from this address: wait before trying again.",
            crate::pairing::Throttle::admin_retry_after(now, limits),
        ));
    }
    let given = crate::device::bearer(headers).unwrap_or_default();
    let operator = match (expected, &state.operators) {
        (Some(t), _) if bool::from(given.as_bytes().ct_eq(t.expose().as_bytes())) => {
            Some(Operator {
                subject: "admin-token".into(),
                role: Role::Operator,
            })
        }
        (_, Some(ops)) if given.split('.').count() == 3 => {
            match ops.verifier.verify(given, now.timestamp()).await {
                Ok(claims) => match ops.role_of(&claims) {
                    Some(role) => Some(Operator {
                        subject: claims.sub,
                        role,
                    }),
                    None => {
                        tracing::warn!(%address, subject = %claims.sub, "operator API: a valid token whose groups and scopes give no role here");
                        return Err(forbidden(
                            "Your groups give you no role in this operator API.",
                        ));
                    }
                },
                Err(refusal) => {
                    tracing::warn!(%address, %refusal, "operator API: a token was refused");
                    None
                }
            }
        }
        _ => None,
    };
    let Some(operator) = operator else {
        state.throttle.admin_failed(address, now, limits).await?;
        tracing::warn!(
            %address,
            token_given = !given.is_empty(),
            "operator API: wrong or missing operator token"
        );
        return Err(AppError::api(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "Send an access token from the operators' identity provider, or the admin token, as `Authorization: Bearer ...`.",
        ));
    };
    if operator.role < need {
        tracing::warn!(%address, subject = %operator.subject, "operator API: a viewer asked for an operator's action");
        return Err(forbidden(
            "This needs the operator role: viewers may only read.",
        ));
    }
    Ok(operator)
}

fn forbidden(message: &str) -> AppError {
    AppError::api(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
}

async fn describe(state: &AppState, c: &ConnectionRow) -> Result<AdminConnection, AppError> {
    let id = c.id;
    let devices = state.storage.devices().devices_on(id).await?;
    Ok(AdminConnection {
        id: c.id,
        provider: c.provider.clone(),
        tenant_id: c.tenant_id.clone(),
        tenant_name: c.tenant_name.clone(),
        status: c.status,
        created_at: c.created_at,
        updated_at: c.updated_at,
        devices: devices
            .into_iter()
            .map(|d| AdminDevice {
                id: d.id,
                name: d.name,
                paired_at: d.paired_at,
                last_seen_at: d.last_seen_at,
                revoked_at: d.revoked_at,
            })
            .collect(),
    })
}

/// Every connection, with its devices.
#[utoipa::path(get, path = "/admin/v1/connections", tag = "operator", security(("admin" = [])),
    responses(
        (status = 200, body = AdminConnectionList),
        (status = 401, description = "unauthenticated: no admin token, or a wrong one", body = ApiError),
        (status = 404, description = "not_found: the admin API is off (no admin token set)", body = ApiError),
        (status = 429, description = "rate_limited: too many wrong tokens from this address", body = ApiError,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<AdminConnectionList>, AppError> {
    authorize(&state, peer, &headers, Role::Viewer).await?;
    let rows = state.storage.connections().connections().await?;
    let mut connections = Vec::with_capacity(rows.len());
    for c in &rows {
        connections.push(describe(&state, c).await?);
    }
    Ok(Json(AdminConnectionList { connections }))
}

/// Disconnects an organisation for every device (as `DELETE /v1/connection` does).
#[utoipa::path(delete, path = "/admin/v1/connections/{id}", tag = "operator", security(("admin" = [])),
    params(("id" = uuid::Uuid, Path, description = "The connection")),
    responses(
        (status = 200, description = "Disconnected", body = AdminConnection),
        (status = 401, description = "unauthenticated: no admin token, or a wrong one", body = ApiError),
        (status = 404, description = "not_found: no such connection, or the admin API is off", body = ApiError),
        (status = 409, description = "conflict: the organisation was connected again meanwhile", body = ApiError),
        (status = 429, description = "rate_limited: too many wrong tokens from this address", body = ApiError,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "provider_unavailable or unavailable: nothing was changed", body = ApiError),
    ))]
pub async fn disconnect(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<AdminConnection>, AppError> {
    let operator = authorize(&state, peer, &headers, Role::Operator).await?;
    let not_found = || {
        AppError::api(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("No connection {id}."),
        )
    };
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let connection = state
        .storage
        .connections()
        .connection(id)
        .await?
        .ok_or_else(not_found)?;
    tracing::info!(operator = %operator.subject, connection = %connection.id, "operator API: disconnecting an organisation");
    let done = connections::disconnect(&state, connection).await?;
    Ok(Json(describe(&state, &done).await?))
}
