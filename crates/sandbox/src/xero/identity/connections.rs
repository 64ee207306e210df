//! `GET /connections[?authEventId=]` and `DELETE /connections/{id}`: the tenants an app may call for
//! the user behind the access token.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

use super::verify_bearer;
use crate::xero::xjson::connection_date;
use crate::Shared;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(rename = "authEventId", alias = "autheventid", alias = "AuthEventId")]
    auth_event_id: Option<String>,
}

pub async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let caller = match verify_bearer(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let filter = match query.auth_event_id.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match Uuid::parse_str(text) {
            Ok(id) => Some(id),
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"Title": "Bad Request", "Status": 400, "Detail": format!("authEventId '{text}' is not a GUID")})),
                )
                    .into_response()
            }
        },
    };
    let world = shared.world();
    let items: Vec<Value> = world
        .connections
        .iter()
        .filter(|c| c.client_id == caller.client_id && c.user_id == caller.user_id)
        .filter(|c| filter.is_none_or(|f| c.auth_event_id == f))
        .filter_map(|c| {
            let tenant = world.tenant(c.tenant_id)?;
            Some(json!({
                "id": c.id,
                "authEventId": c.auth_event_id,
                "tenantId": c.tenant_id,
                "tenantType": "ORGANISATION",
                "tenantName": tenant.name,
                "createdDateUtc": connection_date(c.created),
                "updatedDateUtc": connection_date(c.updated),
            }))
        })
        .collect();
    Json(Value::Array(items)).into_response()
}

pub async fn remove(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match verify_bearer(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(id) = Uuid::parse_str(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut world = shared.world();
    let before = world.connections.len();
    world.connections.retain(|c| {
        !(c.id == id && c.client_id == caller.client_id && c.user_id == caller.user_id)
    });
    if world.connections.len() < before {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
