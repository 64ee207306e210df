//! Pushed documents: intake (validated, stored in the outbox in the same transaction that answers
//! `202`), reading them back, and the per-connection mappings they rely on.

pub(crate) mod actions;
mod contacts;
mod events;
mod mappings;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ledgerlink_wire::documents::{
    BatchItem, BatchResult, CreditNoteBatch, DocumentKind, DocumentList, DocumentState,
    DocumentVersion, DocumentView, InvoiceBatch, Mappings, Outcome, PaymentBatch, Problem,
    ProblemCode, ShiftBatch,
};
use ledgerlink_wire::{ApiError, ErrorCode};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::body::{Params, RawBody};
use crate::device::DeviceAuth;
use crate::error::AppError;
use crate::openapi::{BodyRefusals, DeviceRefusals};
use crate::store::{DocumentFilter, DocumentRow, Stored};
use crate::AppState;
use ledgerlink_wire::validate::Check;

/// What a push answers about its documents.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // described, never built
enum PushAnswers {
    /// Every document accepted (or already stored: `duplicate`).
    #[response(status = 202)]
    Accepted(BatchResult),
    /// `invalid_request`: not JSON, a key given twice, a key this call does not take, or not 1 to
    /// 1,000 documents.
    #[response(status = 400)]
    Refused(ApiError),
    /// Some documents refused, each with every problem by field; the others accepted.
    #[response(status = 422)]
    Partly(BatchResult),
}

/// A document refused by validation: its `client_ref` (when readable) and every problem.
type Refused = (Option<String>, Vec<Problem>);

/// Most documents in one push.
pub const MAX_BATCH: usize = 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(push_invoices))
        .routes(routes!(push_payments))
        .routes(routes!(push_shifts))
        .routes(routes!(push_credit_notes))
        .routes(routes!(push_orders))
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(events::events))
        .merge(mappings::routes())
        .merge(actions::routes())
        .merge(contacts::routes())
}

/// The organisation's tax rates by tax type (from the ten-minute cache of its books).
pub async fn tax_rates(
    state: &AppState,
    connection: &crate::store::ConnectionRow,
) -> Result<std::collections::HashMap<String, rust_decimal::Decimal>, AppError> {
    let books = mappings::offered(state, connection, false).await?;
    Ok(books
        .tax_rates
        .iter()
        .map(|r| (r.tax_type.to_ascii_uppercase(), r.rate))
        .collect())
}

/// The connection's mappings (empty until someone maps categories and tenders).
pub async fn mappings(state: &AppState, connection: Uuid) -> Result<Mappings, AppError> {
    let stored = state.storage.mappings().mappings(connection).await?;
    Ok(stored.unwrap_or_default())
}

/// Pushes sales invoices and bills: each checked (every problem by field path), the good ones stored in the outbox
/// before the answer.
#[utoipa::path(post, path = "/v1/invoices", tag = "documents", security(("device" = [])),
    request_body(content((InvoiceBatch = "application/json"))),
    responses(PushAnswers, DeviceRefusals, BodyRefusals))]
async fn push_invoices(
    State(state): State<AppState>,
    auth: DeviceAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<BatchResult>), AppError> {
    push(&state, &auth, DocumentKind::Invoice, &headers, body).await
}

/// Pushes payments of invoices (by `client_ref` or Xero number): each checked (every problem by field path), the good ones stored in the outbox
/// before the answer.
#[utoipa::path(post, path = "/v1/payments", tag = "documents", security(("device" = [])),
    request_body(content((PaymentBatch = "application/json"))),
    responses(PushAnswers, DeviceRefusals, BodyRefusals))]
async fn push_payments(
    State(state): State<AppState>,
    auth: DeviceAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<BatchResult>), AppError> {
    push(&state, &auth, DocumentKind::Payment, &headers, body).await
}

/// Pushes refunds (credit notes): each checked (every problem by field path), the good ones stored
/// in the outbox before the answer. One naming a sale of this device waits for it to reach Xero.
#[utoipa::path(post, path = "/v1/credit-notes", tag = "documents", security(("device" = [])),
    request_body(content((CreditNoteBatch = "application/json"))),
    responses(PushAnswers, DeviceRefusals, BodyRefusals))]
async fn push_credit_notes(
    State(state): State<AppState>,
    auth: DeviceAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<BatchResult>), AppError> {
    push(&state, &auth, DocumentKind::CreditNote, &headers, body).await
}

/// Pushes orders (a HubRise connection's documents): each checked (every problem by field path),
/// the good ones stored in the outbox before the answer. A Xero connection refuses them whole
/// (`unsupported_kind`).
#[utoipa::path(post, path = "/v1/orders", tag = "documents", security(("device" = [])),
    request_body(content((ledgerlink_wire::documents::OrderBatch = "application/json"))),
    responses(PushAnswers, DeviceRefusals, BodyRefusals))]
async fn push_orders(
    State(state): State<AppState>,
    auth: DeviceAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<BatchResult>), AppError> {
    push(&state, &auth, DocumentKind::Order, &headers, body).await
}

/// Pushes end-of-shift summaries: each checked (every problem by field path), the good ones stored in the outbox
/// before the answer.
#[utoipa::path(post, path = "/v1/shifts", tag = "documents", security(("device" = [])),
    request_body(content((ShiftBatch = "application/json"))),
    responses(PushAnswers, DeviceRefusals, BodyRefusals))]
async fn push_shifts(
    State(state): State<AppState>,
    auth: DeviceAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<BatchResult>), AppError> {
    push(&state, &auth, DocumentKind::Shift, &headers, body).await
}

fn collection(kind: DocumentKind) -> &'static str {
    kind.collection()
}

/// Validates every document of a batch, stores the good ones (and their `queued` events) in one
/// transaction, and says per document what happened: `202` when all were accepted, `422` otherwise.
/// A push of a kind the connection's provider does not take: refused whole, before anything is
/// read, with the problem `unsupported_kind`.
fn unsupported(
    connection: &crate::store::ConnectionRow,
    kind: DocumentKind,
    key: &str,
) -> Option<AppError> {
    let provider = ledgerlink_wire::Provider::parse(&connection.provider)?;
    let takes = match provider {
        ledgerlink_wire::Provider::Xero => kind != DocumentKind::Order,
        ledgerlink_wire::Provider::HubRise => kind == DocumentKind::Order,
    };
    if takes {
        return None;
    }
    Some(AppError::Api(
        StatusCode::UNPROCESSABLE_ENTITY,
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "{} does not take {}: this device is paired with a {} connection.",
                provider.name(),
                kind.as_str().replace('_', " ") + "s",
                provider.name()
            ),
        )
        .with_problems(vec![Problem {
            path: key.to_string(),
            code: ProblemCode::UnsupportedKind,
            message: format!("{} takes no {key}", provider.name()),
        }]),
    ))
}

async fn push(
    state: &AppState,
    auth: &DeviceAuth,
    kind: DocumentKind,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<BatchResult>), AppError> {
    let key = collection(kind);
    if let Some(refused) = unsupported(&auth.connection, kind, key) {
        return Err(refused);
    }
    if !crate::body::json_content(headers) {
        return Err(AppError::api(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidRequest,
            format!("Send the {key} as JSON (Content-Type: application/json)."),
        ));
    }
    // One push per processor is checked at a time (see `AppState::intake`); its turn ends once its
    // documents are typed, before they are stored, so checking and storing overlap.
    let turn = state
        .intake
        .acquire()
        .await
        .map_err(|_| AppError::internal("the intake semaphore is closed"))?;
    let parsed = ledgerlink_wire::strict::parse_json(&body)
        .map_err(|e| AppError::bad_request(crate::body::json_problem(&e)))?;
    drop(body);
    let shape = || AppError::bad_request(format!("send {{\"{key}\": [...]}}: a list of documents"));
    let items = match parsed {
        Value::Array(items) => items,
        Value::Object(mut map) => {
            if let Some(other) = map.keys().find(|k| *k != key) {
                return Err(AppError::bad_request(format!(
                    "'{other}' is not part of this call: send {{\"{key}\": [...]}} and nothing else"
                )));
            }
            match map.remove(key) {
                Some(Value::Array(items)) => items,
                _ => return Err(shape()),
            }
        }
        _ => return Err(shape()),
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(AppError::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH} documents, not {}",
            items.len()
        )));
    }
    let mappings = mappings(state, auth.connection.id).await?;
    let max_lines = state.settings.limits.max_lines_per_document;
    let now = state.clock.now();
    let mut seen = HashSet::new();
    let mut outcomes: Vec<Result<DocumentRow, Refused>> = Vec::with_capacity(items.len());
    // Each document is checked, typed and serialized, then its parsed form dropped: a batch is
    // never held twice over.
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("{key}[{i}]");
        let mut check = Check::new(&mappings).max_lines(max_lines);
        let typed = match kind {
            DocumentKind::Invoice => check
                .invoice(&item, &path)
                .map(|d| (serde_json::to_string(&d), None)),
            DocumentKind::Payment => check.payment(&item, &path).map(|d| {
                let waits_for = d.invoice.client_ref.clone();
                (serde_json::to_string(&d), waits_for)
            }),
            DocumentKind::Shift => check
                .shift(&item, &path)
                .map(|d| (serde_json::to_string(&d), None)),
            // A refund naming a sale this device pushed waits for it, as a payment does: its
            // credit goes to that invoice.
            DocumentKind::Order => check
                .order(&item, &path)
                .map(|d| (serde_json::to_string(&d), None)),
            DocumentKind::CreditNote => check.credit_note(&item, &path).map(|d| {
                let waits_for = d.invoice.as_ref().and_then(|i| i.client_ref.clone());
                (serde_json::to_string(&d), waits_for)
            }),
        };
        let client_ref = item
            .get("client_ref")
            .and_then(Value::as_str)
            .map(|s| s.trim().to_string());
        drop(item);
        if let Some(r) = &client_ref {
            if !seen.insert(r.clone()) {
                check.problems.push(Problem {
                    path: format!("{path}.client_ref"),
                    code: ProblemCode::DuplicateInBatch,
                    message: format!("'{r}' appears earlier in this batch"),
                });
            }
        }
        match typed {
            Some((Ok(json), waits_for)) if check.problems.is_empty() => {
                outcomes.push(Ok(DocumentRow {
                    waits_for,
                    ..DocumentRow::accepted(
                        auth.device.id,
                        auth.connection.id,
                        kind,
                        client_ref.unwrap_or_default(),
                        json,
                        now,
                    )
                }))
            }
            Some((Err(e), _)) => return Err(AppError::internal(e)),
            _ => outcomes.push(Err((client_ref, check.problems))),
        }
    }
    drop(turn);
    // The accepted rows move to the store; the outcomes keep only what the answer needs.
    let mut rows = Vec::new();
    let outcomes: Vec<Result<(), Refused>> = outcomes
        .into_iter()
        .map(|o| o.map(|row| rows.push(row)))
        .collect();
    let stored = if rows.is_empty() {
        Vec::new()
    } else {
        state.storage.documents().insert_documents(&rows).await?
    };
    let mut stored = stored.into_iter();
    let mut result = BatchResult {
        accepted: 0,
        rejected: 0,
        items: Vec::with_capacity(outcomes.len()),
    };
    for (index, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(()) => {
                let stored = stored.next().expect("one stored row per accepted document");
                let (view, duplicate, corrected) = match stored {
                    Stored::New(view) => (view, false, false),
                    Stored::Duplicate(view) if view.kind == kind => (view, true, false),
                    Stored::Corrected(view) => (view, false, true),
                    Stored::Duplicate(view) | Stored::InUse(view) => {
                        result.rejected += 1;
                        result.items.push(BatchItem {
                            index,
                            outcome: Outcome::Rejected,
                            client_ref: Some(view.client_ref.clone()),
                            duplicate: false,
                            corrected: false,
                            document: None,
                            problems: vec![Problem {
                                path: format!("{key}[{index}].client_ref"),
                                code: ProblemCode::ClientRefInUse,
                                message: in_use(&view, kind),
                            }],
                        });
                        continue;
                    }
                };
                result.accepted += 1;
                result.items.push(BatchItem {
                    index,
                    outcome: Outcome::Accepted,
                    client_ref: Some(view.client_ref.clone()),
                    duplicate,
                    corrected,
                    document: Some(view),
                    problems: Vec::new(),
                });
            }
            Err((client_ref, problems)) => {
                result.rejected += 1;
                result.items.push(BatchItem {
                    index,
                    outcome: Outcome::Rejected,
                    client_ref,
                    duplicate: false,
                    corrected: false,
                    document: None,
                    problems,
                });
            }
        }
    }
    if result.accepted > 0 {
        state.outbox_ready.notify_one();
        state.events_ready.notify_waiters();
    }
    let status = if result.rejected == 0 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(result)))
}

/// Why a pushed document cannot take the `client_ref` another document of the device has.
fn in_use(existing: &DocumentView, kind: DocumentKind) -> String {
    let r = &existing.client_ref;
    if existing.kind != kind {
        return format!(
            "'{r}' is already the client_ref of a {} from this device: give this {} its own",
            existing.kind.as_str(),
            kind.as_str()
        );
    }
    let why = match existing.state {
        DocumentState::Discarded => "was discarded".to_string(),
        DocumentState::Queued | DocumentState::Sending => {
            "is on its way to Xero, as it was first sent".to_string()
        }
        state => format!("is already {} in Xero", state.as_str()),
    };
    format!(
        "'{r}' {why}: only a failed document can be corrected. Give this {} its own client_ref",
        kind.as_str()
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OneQuery {
    /// `true` adds the earlier versions of a corrected document (`history`), oldest first.
    history: Option<bool>,
}

/// One of this device's documents (with its earlier versions when asked).
#[utoipa::path(get, path = "/v1/documents/{id}", tag = "documents", security(("device" = [])),
    params(("id" = uuid::Uuid, Path, description = "The document's id"), OneQuery),
    responses(
        (status = 200, body = DocumentView),
        (status = 400, description = "invalid_request: a query that is not valid", body = ApiError),
        (status = 404, description = "not_found: no such document from this device", body = ApiError),
        DeviceRefusals,
    ))]
async fn one(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Path(id): Path<String>,
    Params(q): Params<OneQuery>,
) -> Result<Json<DocumentView>, AppError> {
    let not_found = || {
        AppError::api(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("No document {id} from this device."),
        )
    };
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let device = auth.device.id;
    let history = q.history.unwrap_or(false);
    let store = state.storage.documents();
    let row = store.document(device, uuid).await?.ok_or_else(not_found)?;
    let versions = if history {
        store.document_versions(uuid).await?
    } else {
        Vec::new()
    };
    let mut view = row.view();
    if history {
        let versions = versions
            .into_iter()
            .map(|v| {
                let document = serde_json::from_str(&v.body).map_err(AppError::internal)?;
                Ok(DocumentVersion {
                    version: v.version,
                    state: v.state,
                    message: v.message,
                    document,
                    created_at: v.created_at,
                    replaced_at: v.replaced_at,
                })
            })
            .collect::<Result<_, AppError>>()?;
        view.history = Some(versions);
    }
    Ok(Json(view))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only documents in this state.
    state: Option<DocumentState>,
    /// Only documents of this kind.
    kind: Option<DocumentKind>,
    /// Only the document with this `client_ref`.
    client_ref: Option<String>,
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// This device's documents, newest first.
#[utoipa::path(get, path = "/v1/documents", tag = "documents", security(("device" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = DocumentList),
        (status = 400, description = "invalid_request: a filter that is not valid", body = ApiError),
        DeviceRefusals,
    ))]
async fn list(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Params(q): Params<ListQuery>,
) -> Result<Json<DocumentList>, AppError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::bad_request(format!(
            "limit must be 1 to 1000, not {limit}"
        )));
    }
    let filter = DocumentFilter {
        state: q.state,
        kind: q.kind,
        client_ref: q.client_ref,
        limit: limit as usize,
    };
    let device = auth.device.id;
    let rows = state.storage.documents().documents(device, &filter).await?;
    Ok(Json(DocumentList {
        documents: rows.iter().map(DocumentRow::view).collect(),
    }))
}
