//! HubRise, emulated from `../shared/reference/HUBRISE-FACTS.md`: its OAuth server (login, location
//! chooser and consent without JavaScript; single-use ten-minute codes; the token by HTTP Basic or
//! in the body; revocation), `GET /v1/location`, and orders (create, read, list with `private_ref`
//! and `status` filters and `X-Cursor-Next` paging, status changes), with HubRise's limits per
//! connection (a minute, an hour and a day in clock-aligned windows; heavy reads ten a minute) and
//! every error in HubRise's `{error_type, message, errors[]}` shape. It refuses what HubRise
//! refuses: a sandbox more lenient than the real service makes every test built on it lie.
//!
//! Paths are HubRise's own (`manager.hubrise.com/oauth2/v1/...` and `api.hubrise.com/v1/...`
//! both served at this one address).

pub(crate) mod callbacks;
pub(crate) mod control;
pub mod model;
mod oauth;
mod orders;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, MutexGuard};

use crate::Shared;
use model::{Token, World};

/// HubRise's routes, served beside Xero's.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/oauth2/v1/authorize", get(oauth::page).post(oauth::submit))
        .route("/oauth2/v1/token", post(oauth::token))
        .route("/oauth2/v1/revoke", post(oauth::revoke))
        .route("/v1/location", get(orders::location))
        .route(
            "/v1/location/orders",
            post(orders::create).get(orders::list),
        )
        .route(
            "/v1/locations/{location_id}/orders",
            post(orders::create_at).get(orders::list_at),
        )
        .route(
            "/v1/location/orders/{id}",
            get(orders::read).patch(orders::update),
        )
        .route(
            "/v1/locations/{location_id}/orders/{id}",
            get(orders::read_at).patch(orders::update_at),
        )
        .merge(callbacks::routes())
}

/// Whether a request path is HubRise's (for the request log).
pub fn owns(path: &str) -> bool {
    path.starts_with("/oauth2/v1/") || path == "/v1" || path.starts_with("/v1/")
}

/// A HubRise error: `{error_type, message, errors: [{field, message}]}` with its status.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    error_type: &'static str,
    message: String,
    errors: Vec<(String, String)>,
    retry_after: Option<u64>,
}

impl Refusal {
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `422 unprocessable_entity` listing every field refused.
    pub fn unprocessable(errors: Vec<(String, String)>) -> Self {
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable_entity",
                "Validation failed",
            )
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|(field, message)| json!({"field": field, "message": message}))
            .collect();
        let mut body = json!({"error_type": self.error_type, "message": self.message});
        if !errors.is_empty() {
            body["errors"] = json!(errors);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert("retry-after", v);
            }
        }
        response
    }
}

pub(crate) fn world(shared: &Shared) -> MutexGuard<'_, World> {
    shared.hubrise.lock().unwrap_or_else(|e| e.into_inner())
}

/// The token an API call carries (`X-Access-Token`), if HubRise would take it.
fn authenticated(world: &World, headers: &HeaderMap) -> Result<(String, Token), Refusal> {
    let given = headers
        .get("x-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match world.tokens.get(given) {
        Some(t) if !t.revoked => Ok((given.to_string(), t.clone())),
        _ => Err(Refusal::unauthorized("Invalid access token")),
    }
}

/// Counts a call against the connection's windows; `Err` with a 429 when one is spent.
fn count(shared: &Shared, world: &mut World, token: &Token, heavy: bool) -> Result<(), Refusal> {
    let limits = world.limits;
    let minute = i64::from(limits.minute_seconds.max(1));
    let now = shared.clock.now().timestamp();
    let key = (token.client_id.clone(), token.location_id.clone());
    let w = world.counts.windows.entry(key).or_default();
    let windows = [
        (&mut w.minute, minute, limits.per_minute, true),
        (&mut w.hour, minute * 60, limits.per_hour, true),
        (&mut w.day, minute * 1_440, limits.per_day, true),
        (&mut w.heavy, minute, limits.heavy_per_minute, heavy),
    ];
    // Check every window first: a refused call counts against none.
    let mut refused = None;
    let mut open = Vec::new();
    for (slot, len, limit, applies) in windows {
        if !applies {
            continue;
        }
        let number = now.div_euclid(len);
        if slot.0 != number {
            *slot = (number, 0);
        }
        if slot.1 >= limit {
            let wait = (number + 1) * len - now;
            refused = Some(refused.map_or(wait, |w: i64| w.max(wait)));
        }
        open.push(slot);
    }
    if let Some(wait) = refused {
        let mut r = Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Rate limit exceeded",
        );
        r.retry_after = Some(wait.max(1) as u64);
        return Err(r);
    }
    for slot in open {
        slot.1 += 1;
    }
    Ok(())
}
