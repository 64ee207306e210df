//! Putting a mistake right, by hand: sending a failed document again unchanged
//! (`POST /v1/documents/{id}/retry`) and putting one aside for good (`POST
//! /v1/documents/{id}/discard`). Correcting a document is a push under its `client_ref` (see the
//! intake in the parent module).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use ledgerlink_wire::documents::{DiscardRequest, DocumentState, DocumentView};
use ledgerlink_wire::{ApiError, ErrorCode};
use uuid::Uuid;

use crate::body::StrictJson;
use crate::device::DeviceAuth;
use crate::error::AppError;
use crate::openapi::{BodyRefusals, DeviceRefusals};
use crate::store::{Change, DocumentRow};
use crate::AppState;

pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(retry))
        .routes(utoipa_axum::routes!(discard))
        .routes(utoipa_axum::routes!(void))
}

fn not_found(id: &str) -> AppError {
    AppError::api(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("No document {id} from this device."),
    )
}

/// Why a document in this state cannot take the action, and what can be done instead.
fn refused(row: &DocumentRow, action: &str) -> AppError {
    let state = row.state;
    let why = match state {
        DocumentState::Queued if row.unknown_since.is_some() || row.bundle_key.is_some() => {
            "its last send to Xero has no answer yet, so it may already be in Xero; it is being looked up".to_string()
        }
        DocumentState::Queued | DocumentState::Sending => {
            "it is on its way to Xero".to_string()
        }
        DocumentState::Sent | DocumentState::Paid | DocumentState::Voided => {
            format!("it is {} in Xero", state.as_str())
        }
        DocumentState::Discarded => "it was discarded".to_string(),
        DocumentState::Voiding => "it is being voided".to_string(),
        other => format!("it is {}", other.as_str()),
    };
    AppError::api(
        StatusCode::CONFLICT,
        ErrorCode::Conflict,
        format!("'{}' cannot be {action}: {why}.", row.client_ref),
    )
}

/// What a person (or an operator) asked of one of a device's documents.
pub(crate) enum Act {
    Resend,
    Discard(String),
    Void,
}

async fn act(
    state: &AppState,
    auth: &DeviceAuth,
    id: &str,
    action: &str,
    what: Act,
) -> Result<Json<DocumentView>, AppError> {
    act_for(state, auth.device.id, id, action, what)
        .await
        .map(Json)
}

/// `what` done to document `id` of `device`, as the device's own call would do it (the operator
/// API's retry and discard mean the same).
pub(crate) async fn act_for(
    state: &AppState,
    device: Uuid,
    id: &str,
    action: &str,
    what: Act,
) -> Result<DocumentView, AppError> {
    let uuid = Uuid::parse_str(id).map_err(|_| not_found(id))?;
    let store = state.storage.documents();
    let now = state.clock.now();
    let change = match what {
        Act::Resend => store.resend_document(device, uuid, now).await?,
        Act::Discard(reason) => store.discard_document(device, uuid, &reason, now).await?,
        Act::Void => store.request_void(device, uuid, now).await?,
    };
    match change {
        Change::NotFound => Err(not_found(id)),
        Change::Refused(row) => Err(refused(&row, action)),
        Change::Blocked(row, why) => Err(AppError::api(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("'{}' cannot be {action}: {why}.", row.client_ref),
        )),
        Change::Done(row) => {
            state.outbox_ready.notify_one();
            state.events_ready.notify_waiters();
            Ok(row.view())
        }
    }
}

/// Sends a failed document again, unchanged: once what made it fail is put right (the contact
/// unarchived in Xero, a mapping set, the organisation connected again). It is queued under new
/// Idempotency-Keys, so Xero never answers it with the replay of its last refusal. To change the
/// document instead, push the corrected one under the same `client_ref`.
#[utoipa::path(post, path = "/v1/documents/{id}/retry", tag = "documents", security(("device" = [])),
    params(("id" = uuid::Uuid, Path, description = "The document's id")),
    responses(
        (status = 200, description = "Queued again", body = DocumentView),
        (status = 404, description = "not_found: no such document from this device", body = ApiError),
        (status = 409, description = "conflict: only a failed document can be sent again", body = ApiError),
        DeviceRefusals,
    ))]
async fn retry(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Path(id): Path<String>,
) -> Result<Json<DocumentView>, AppError> {
    act(&state, &auth, &id, "sent again", Act::Resend).await
}

/// Puts a document aside for good, with the reason: it will not be sent and no longer counts as
/// needing attention. Allowed for a failed document, and for a queued one that is not in a call to
/// Xero and whose last send (if any) was answered: a document that may already be in Xero cannot
/// be discarded.
#[utoipa::path(post, path = "/v1/documents/{id}/discard", tag = "documents", security(("device" = [])),
    params(("id" = uuid::Uuid, Path, description = "The document's id")),
    request_body(content((DiscardRequest = "application/json"))),
    responses(
        (status = 200, description = "Discarded", body = DocumentView),
        (status = 400, description = "invalid_request: no reason, or one that is too long", body = ApiError),
        (status = 404, description = "not_found: no such document from this device", body = ApiError),
        (status = 409, description = "conflict: the document is in Xero, on its way there, or already discarded", body = ApiError),
        DeviceRefusals, BodyRefusals,
    ))]
async fn discard(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Path(id): Path<String>,
    StrictJson(request): StrictJson<DiscardRequest>,
) -> Result<Json<DocumentView>, AppError> {
    let reason = request
        .checked_reason()
        .map_err(|why| AppError::bad_request(format!("reason: {why}")))?;
    act(&state, &auth, &id, "discarded", Act::Discard(reason)).await
}

/// Voids a sent invoice in Xero: queued like a push (`voiding`), then `voided`, or back to `sent`
/// with Xero's message if Xero refuses. Refused at once while a payment or a refund of this device
/// names the invoice: Xero does not void what money has touched.
#[utoipa::path(post, path = "/v1/documents/{id}/void", tag = "documents", security(("device" = [])),
    params(("id" = uuid::Uuid, Path, description = "The document's id")),
    responses(
        (status = 200, description = "Queued to be voided (`voiding`)", body = DocumentView),
        (status = 404, description = "not_found: no such document from this device", body = ApiError),
        (status = 409, description = "conflict: not a sent invoice, or money is recorded against it", body = ApiError),
        DeviceRefusals,
    ))]
async fn void(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Path(id): Path<String>,
) -> Result<Json<DocumentView>, AppError> {
    act(&state, &auth, &id, "voided", Act::Void).await
}
