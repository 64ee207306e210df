//! The operator API: list connections with their devices, disconnect one. A bearer access token of
//! the operators' identity provider (`crate::operators`), or the static admin token; wrong tokens
//! are logged (never the token) and, past `admin.max_failures_per_address` in a window, every call
//! from that address is refused until the window turns.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use ledgerlink_wire::admin::{
    AdminConnection, AdminConnectionList, AdminDevice, AdminDeviceEntry, AdminDeviceList,
    AdminDocument, AdminDocumentList,
};
use ledgerlink_wire::documents::{DiscardRequest, DocumentState, DocumentView};
use ledgerlink_wire::{ApiError, ErrorCode};
use std::net::SocketAddr;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::body::{Params, StrictJson};
use crate::connections;
use crate::documents::actions::{act_for, Act};
use crate::error::AppError;
use crate::operators::{Operator, Role};
use crate::store::{ConnectionRow, DocumentSearch, QueueSummary};
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
    if given.is_empty() {
        // A signed-in console session serves too (its CSRF token for what changes something).
        if let Some(found) = crate::operators::console::session_operator(state, headers, need).await
        {
            let operator = found.map_err(forbidden)?;
            if operator.role < need {
                return Err(forbidden(
                    "This needs the operator role: viewers may only read.",
                ));
            }
            return Ok(operator);
        }
    }
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

async fn describe(
    state: &AppState,
    c: &ConnectionRow,
    queue: Option<&QueueSummary>,
) -> Result<AdminConnection, AppError> {
    let id = c.id;
    let devices = state.storage.devices().devices_on(id).await?;
    Ok(AdminConnection {
        queue: queue.map(|q| q.by_state.clone()).unwrap_or_default(),
        last_delivered_at: queue.and_then(|q| q.last_delivered_at),
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
#[utoipa::path(get, path = "/admin/v1/connections", tag = "operator", security(("operator" = [])),
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
    Ok(Json(AdminConnectionList {
        connections: connection_list(&state).await?,
    }))
}

/// Every connection with its devices and queue: the operator API's list and the console's page.
pub(crate) async fn connection_list(state: &AppState) -> Result<Vec<AdminConnection>, AppError> {
    let rows = state.storage.connections().connections().await?;
    let queues = state.storage.documents().queue_summaries().await?;
    let mut connections = Vec::with_capacity(rows.len());
    for c in &rows {
        connections.push(describe(state, c, queues.get(&c.id)).await?);
    }
    Ok(connections)
}

/// Disconnects an organisation for every device (as `DELETE /v1/connection` does).
#[utoipa::path(delete, path = "/admin/v1/connections/{id}", tag = "operator", security(("operator" = [])),
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
    let queues = state.storage.documents().queue_summaries().await?;
    Ok(Json(describe(&state, &done, queues.get(&done.id)).await?))
}

/// The refusals every operator route may answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // described, never built: the errors are `AppError`s
pub enum OperatorRefusals {
    /// unauthenticated: no token, or one that is not the identity provider's (or the admin token)
    #[response(status = 401)]
    Unauthenticated(#[to_schema] ApiError),
    /// forbidden: the token's role does not allow this (viewers only read)
    #[response(status = 403)]
    Forbidden(#[to_schema] ApiError),
    /// rate_limited: too many wrong tokens from this address
    #[response(status = 429)]
    RateLimited(#[to_schema] ApiError),
}

/// Every device, paired or unpaired, with its organisation.
#[utoipa::path(get, path = "/admin/v1/devices", tag = "operator", security(("operator" = [])),
    responses((status = 200, body = AdminDeviceList), OperatorRefusals))]
pub async fn devices(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<AdminDeviceList>, AppError> {
    authorize(&state, peer, &headers, Role::Viewer).await?;
    let mut devices = Vec::new();
    for c in state.storage.connections().connections().await? {
        for d in state.storage.devices().devices_on(c.id).await? {
            devices.push(AdminDeviceEntry {
                id: d.id,
                name: d.name,
                connection_id: c.id,
                provider: c.provider.clone(),
                tenant_name: c.tenant_name.clone(),
                paired_at: d.paired_at,
                last_seen_at: d.last_seen_at,
                revoked_at: d.revoked_at,
            });
        }
    }
    Ok(Json(AdminDeviceList { devices }))
}

/// Unpairs a device (a lost or stolen till): its credentials stop working at once and its event
/// feeds end. Its documents stay, and the ones queued still go.
#[utoipa::path(delete, path = "/admin/v1/devices/{id}", tag = "operator", security(("operator" = [])),
    params(("id" = uuid::Uuid, Path, description = "The device")),
    responses(
        (status = 204, description = "Unpaired"),
        (status = 404, description = "not_found: no such device", body = ApiError),
        OperatorRefusals,
    ))]
pub async fn unpair_device(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let operator = authorize(&state, peer, &headers, Role::Operator).await?;
    let not_found = || {
        AppError::api(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("No device {id}."),
        )
    };
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    state
        .storage
        .devices()
        .device(uuid)
        .await?
        .ok_or_else(not_found)?;
    state
        .storage
        .devices()
        .revoke_device(uuid, state.clock.now())
        .await?;
    state.streams.end([uuid]);
    tracing::info!(operator = %operator.subject, device = %uuid, "operator API: device unpaired");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentQuery {
    /// Only the documents with this `client_ref` (each device's own).
    client_ref: Option<String>,
    /// Only documents whose contact's name holds this, any case.
    contact: Option<String>,
    /// Only documents in this state.
    state: Option<DocumentState>,
    /// Only documents made at or after this time (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Only documents made before this time (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// Only this organisation's.
    connection: Option<Uuid>,
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Every device's documents, newest first, found by what a person calling support knows.
#[utoipa::path(get, path = "/admin/v1/documents", tag = "operator", security(("operator" = [])),
    params(DocumentQuery),
    responses(
        (status = 200, body = AdminDocumentList),
        (status = 400, description = "invalid_request: a filter that is not valid", body = ApiError),
        OperatorRefusals,
    ))]
pub async fn documents(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Params(q): Params<DocumentQuery>,
) -> Result<Json<AdminDocumentList>, AppError> {
    authorize(&state, peer, &headers, Role::Viewer).await?;
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from >= to {
            return Err(AppError::bad_request("from must be before to"));
        }
    }
    let search = DocumentSearch {
        id: None,
        connection: q.connection,
        client_ref: q.client_ref,
        contact: q.contact.filter(|c| !c.trim().is_empty()),
        state: q.state,
        from: q.from,
        to: q.to,
        limit: q.limit.unwrap_or(100).clamp(1, 1000) as usize,
    };
    let rows = state.storage.documents().search_documents(&search).await?;
    Ok(Json(AdminDocumentList {
        documents: rows.iter().map(admin_document).collect(),
    }))
}

fn admin_document(row: &crate::store::DocumentRow) -> AdminDocument {
    AdminDocument {
        connection_id: row.connection_id,
        device_id: row.device_id,
        document: row.view(),
    }
}

/// The device a document belongs to, or 404.
async fn owner(state: &AppState, id: &str) -> Result<Uuid, AppError> {
    let not_found = || {
        AppError::api(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("No document {id}."),
        )
    };
    let uuid = Uuid::parse_str(id).map_err(|_| not_found())?;
    let found = state
        .storage
        .documents()
        .search_documents(&DocumentSearch {
            id: Some(uuid),
            limit: 1,
            ..Default::default()
        })
        .await?;
    found.first().map(|d| d.device_id).ok_or_else(not_found)
}

/// Sends a failed document again, unchanged, as its device's retry does.
#[utoipa::path(post, path = "/admin/v1/documents/{id}/retry", tag = "operator", security(("operator" = [])),
    params(("id" = uuid::Uuid, Path, description = "The document")),
    responses(
        (status = 200, description = "Queued again", body = DocumentView),
        (status = 404, description = "not_found: no such document", body = ApiError),
        (status = 409, description = "conflict: only a failed document can be sent again", body = ApiError),
        OperatorRefusals,
    ))]
pub async fn retry(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<DocumentView>, AppError> {
    let operator = authorize(&state, peer, &headers, Role::Operator).await?;
    let device = owner(&state, &id).await?;
    let view = act_for(&state, device, &id, "sent again", Act::Resend).await?;
    tracing::info!(operator = %operator.subject, document = %id, "operator API: document sent again");
    Ok(Json(view))
}

/// Puts a document aside for good, with the reason, as its device's discard does.
#[utoipa::path(post, path = "/admin/v1/documents/{id}/discard", tag = "operator", security(("operator" = [])),
    params(("id" = uuid::Uuid, Path, description = "The document")),
    request_body(content((DiscardRequest = "application/json"))),
    responses(
        (status = 200, description = "Discarded", body = DocumentView),
        (status = 400, description = "invalid_request: no reason, or one that is too long", body = ApiError),
        (status = 404, description = "not_found: no such document", body = ApiError),
        (status = 409, description = "conflict: the document is at the provider, on its way there, or already discarded", body = ApiError),
        OperatorRefusals,
    ))]
pub async fn discard(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    StrictJson(request): StrictJson<DiscardRequest>,
) -> Result<Json<DocumentView>, AppError> {
    let operator = authorize(&state, peer, &headers, Role::Operator).await?;
    let reason = request
        .checked_reason()
        .map_err(|why| AppError::bad_request(format!("reason: {why}")))?;
    let device = owner(&state, &id).await?;
    let view = act_for(&state, device, &id, "discarded", Act::Discard(reason)).await?;
    tracing::info!(operator = %operator.subject, document = %id, "operator API: document discarded");
    Ok(Json(view))
}
