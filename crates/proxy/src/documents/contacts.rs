//! `GET /v1/contacts?q=`: the organisation's contacts whose name holds what a person typed, for a
//! till's contact field to suggest. At most 20, archived ones marked; each answer kept a minute per
//! organisation and query, so typing does not become a call to the provider per key.

use axum::extract::State;

use axum::Json;
use ledgerlink_wire::documents::ContactList;
use ledgerlink_wire::ApiError;

use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::body::Params;
use crate::device::DeviceAuth;
use crate::error::AppError;
use crate::openapi::DeviceRefusals;
use crate::AppState;

const KEEP_SECS: i64 = 60;
const MOST: usize = 20;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Part of the contact's name: 2 to 100 characters, not only spaces.
    #[param(
        min_length = 2,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
    )]
    q: String,
}

/// Contacts whose name holds `q` (case does not matter), archived ones marked.
#[utoipa::path(get, path = "/v1/contacts", tag = "documents", security(("device" = [])),
    params(SearchQuery),
    responses(
        (status = 200, body = ContactList),
        (status = 400, description = "invalid_request: q is missing, shorter than 2 or longer than 100 characters", body = ApiError),
        (status = 409, description = "needs_reconnect or disconnected: Xero does not take the organisation's authorisation", body = ApiError),
        (status = 503, description = "provider_unavailable: Xero could not be asked", body = ApiError),
        DeviceRefusals,
    ))]
async fn search(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Params(q): Params<SearchQuery>,
) -> Result<Json<ContactList>, AppError> {
    let text = q.q.trim().to_string();
    let chars = q.q.chars().count();
    if !(2..=100).contains(&chars)
        || text.is_empty()
        || ledgerlink_wire::strict::forbidden_in_name(&q.q).is_some()
    {
        return Err(AppError::bad_request(
            "q: give 2 to 100 characters of the contact's name",
        ));
    }
    let key = (auth.connection.id, text.to_lowercase());
    let now = state.clock.now();
    if let Some((at, found)) = state
        .contact_searches
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        if (now - *at).num_seconds() < KEEP_SECS {
            return Ok(Json(ContactList {
                contacts: found.clone(),
            }));
        }
    }
    let mut contacts = crate::providers::contacts(&state, &auth.connection, &text).await?;
    // Active ones first, then by name.
    contacts.sort_by(|a, b| {
        (a.archived, a.name.to_lowercase()).cmp(&(b.archived, b.name.to_lowercase()))
    });
    contacts.truncate(MOST);
    let mut cache = state
        .contact_searches
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache.retain(|_, (at, _)| (now - *at).num_seconds() < KEEP_SECS);
    cache.insert(key, (now, contacts.clone()));
    Ok(Json(ContactList { contacts }))
}
