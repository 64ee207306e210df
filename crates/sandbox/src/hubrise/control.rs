//! HubRise's control calls under `/_sandbox/hubrise/`: its limits (scaled for tests), the orders
//! of a location as HubRise holds them (to count them), an order's status changed as another
//! client would (its callbacks fire), tokens revoked as a HubRise user would, and the callbacks
//! with the events they hold and every post made.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

use super::orders::STATUSES;
use super::{callbacks, world};
use crate::harness::control::{body, fail, Answer};
use crate::Shared;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/limits", get(get_limits).put(set_limits))
        .route("/orders", get(orders))
        .route("/orders/{id}/status", post(set_status))
        .route("/tokens/revoke", post(revoke_tokens))
        .route("/callbacks", get(callbacks_view))
}

async fn get_limits(State(shared): State<Arc<Shared>>) -> Answer {
    Ok(Json(world(&shared).limits).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsPatch {
    per_minute: Option<u32>,
    per_hour: Option<u32>,
    per_day: Option<u32>,
    heavy_per_minute: Option<u32>,
    minute_seconds: Option<u32>,
}

async fn set_limits(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Answer {
    apply_limits(&shared, &bytes)
}

/// Changes HubRise's limits (also `PUT /_sandbox/limits` with `"provider": "hubrise"`).
pub(crate) fn apply_limits(shared: &Shared, bytes: &Bytes) -> Answer {
    let patch: LimitsPatch = body(bytes)?;
    if patch.minute_seconds == Some(0) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "minute_seconds must be at least 1",
        ));
    }
    let mut w = world(shared);
    let l = &mut w.limits;
    l.per_minute = patch.per_minute.unwrap_or(l.per_minute);
    l.per_hour = patch.per_hour.unwrap_or(l.per_hour);
    l.per_day = patch.per_day.unwrap_or(l.per_day);
    l.heavy_per_minute = patch.heavy_per_minute.unwrap_or(l.heavy_per_minute);
    l.minute_seconds = patch.minute_seconds.unwrap_or(l.minute_seconds);
    let limits = *l;
    // New windows count from nothing.
    w.counts.windows.clear();
    Ok(Json(limits).into_response())
}

#[derive(Deserialize)]
struct OrdersQuery {
    location_id: Option<String>,
}

/// Every order (of one location if asked), oldest first, as HubRise answers for it.
async fn orders(State(shared): State<Arc<Shared>>, Query(q): Query<OrdersQuery>) -> Answer {
    let w = world(&shared);
    let orders: Vec<_> = w
        .orders
        .iter()
        .filter(|o| q.location_id.as_ref().is_none_or(|l| &o.location_id == l))
        .map(|o| o.body.clone())
        .collect();
    Ok(Json(json!({ "orders": orders })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
}

/// An order's status changed in HubRise by someone else (a delivery platform, the restaurant).
async fn set_status(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Answer {
    let change: StatusChange = body(&bytes)?;
    if !STATUSES.contains(&change.status.as_str()) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!(
                "'{}' is not a HubRise status: one of {}",
                change.status,
                STATUSES.join(", ")
            ),
        ));
    }
    let mut w = world(&shared);
    let Some(order) = w.orders.iter_mut().find(|o| o.id == id) else {
        return Err(fail(StatusCode::NOT_FOUND, format!("no order '{id}'")));
    };
    let previous = order.body.clone();
    order.status = change.status.clone();
    order.body["status"] = json!(change.status);
    let (answer, location_id) = (order.body.clone(), order.location_id.clone());
    // Changed in HubRise's back office: every client with a callback hears of it.
    if let Some(location) = w.location(&location_id).cloned() {
        callbacks::order_changed(&shared, &mut w, None, &location, Some(&previous), &answer);
    }
    drop(w);
    let _ = shared.persist();
    Ok(Json(answer).into_response())
}

/// Every connection's callback, the events held for them and every post of one so far.
async fn callbacks_view(State(shared): State<Arc<Shared>>) -> Answer {
    let w = world(&shared);
    Ok(Json(json!({
        "callbacks": w.callbacks,
        "events": w.events.iter().map(|e| &e.body).collect::<Vec<_>>(),
        "attempts": w.callback_attempts,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    location_id: Option<String>,
}

/// Revokes the tokens of a location (or every token), as a user removing the app would.
async fn revoke_tokens(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Answer {
    let req: RevokeRequest = body(&bytes)?;
    let mut w = world(&shared);
    let mut revoked = 0;
    for t in w.tokens.values_mut() {
        if !t.revoked && req.location_id.as_ref().is_none_or(|l| &t.location_id == l) {
            t.revoked = true;
            revoked += 1;
        }
    }
    Ok(Json(json!({ "revoked": revoked })).into_response())
}
