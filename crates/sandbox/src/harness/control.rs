//! The control API under `/_sandbox/` (not part of any provider): for tests, benchmarks and the
//! demo. JSON in and out; these shapes are a contract outside scripts rely on (fields may be added,
//! never renamed). This module holds the harness's own calls (the request log, limits, faults, the
//! clock, reset) and what every provider's control calls share; each emulated provider adds its
//! own (`crate::xero::control`). A call that names no provider means Xero.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

use crate::harness::faults::FaultRule;
use crate::Shared;

/// The harness's calls and every provider's: Xero's at the top (`/_sandbox/grants`, as always)
/// and under its name (`/_sandbox/xero/grants`).
pub fn routes() -> Router<Arc<Shared>> {
    let xero = crate::xero::control::routes();
    Router::new()
        .route("/requests", get(requests))
        .route("/requests/tally", get(tally))
        .route("/limits", put(set_limits).get(get_limits))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/clock", post(advance_clock).get(get_clock))
        .route("/reset", post(reset))
        .merge(xero.clone())
        .nest("/xero", xero)
        .nest("/hubrise", crate::hubrise::control::routes())
        .nest("/idp", crate::idp::control::routes())
        .fallback(
            delete(not_found)
                .get(not_found)
                .post(not_found)
                .put(not_found),
        )
}

async fn not_found() -> Fail {
    fail(
        StatusCode::NOT_FOUND,
        "no such control endpoint; see docs/sandbox.md for the list",
    )
}

/// A control call that cannot be done: its status and a sentence saying what to fix.
pub struct Fail(StatusCode, String);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

pub(crate) fn fail(status: StatusCode, message: impl Into<String>) -> Fail {
    Fail(status, message.into())
}

pub(crate) type Answer = Result<Response, Fail>;

/// Parses a JSON body (an empty one is `{}`), answering `400` with serde's own words on a mistake.
pub(crate) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Fail> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(text)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
struct Since {
    since: Option<u64>,
}

async fn requests(State(shared): State<Arc<Shared>>, Query(q): Query<Since>) -> Answer {
    let entries = shared
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .since(q.since.unwrap_or(0));
    Ok(Json(json!({ "requests": entries })).into_response())
}

/// `GET /_sandbox/requests/tally`: every answer since the sandbox started, by provider and
/// status (`{"xero": {"200": 1200, "429": 0}}`), kept however long the run.
async fn tally(State(shared): State<Arc<Shared>>) -> Answer {
    let log = shared.log.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Json(json!(log.tally())).into_response())
}

/// Which provider a limits call is about: `provider` in the body or the query (none: Xero).
#[derive(Deserialize)]
struct Which {
    provider: Option<String>,
}

fn provider_of(named: Option<String>) -> Result<String, Fail> {
    let p = named.unwrap_or_else(|| "xero".into());
    if crate::harness::PROVIDERS.contains(&p.as_str()) {
        Ok(p)
    } else {
        Err(fail(
            StatusCode::BAD_REQUEST,
            format!(
                "`provider` must be one of {}, got '{p}'",
                crate::harness::PROVIDERS.join(", ")
            ),
        ))
    }
}

/// `PUT /_sandbox/limits`: Xero's limits, or with `"provider": "hubrise"` HubRise's (the same as
/// `PUT /_sandbox/hubrise/limits`).
async fn set_limits(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Answer {
    let mut given: serde_json::Value = body(&bytes)?;
    let named = match given.as_object_mut().and_then(|o| o.remove("provider")) {
        None => None,
        Some(serde_json::Value::String(p)) => Some(p),
        Some(other) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("`provider` must be a name, got {other}"),
            ))
        }
    };
    let rest = Bytes::from(given.to_string());
    match provider_of(named)?.as_str() {
        "hubrise" => crate::hubrise::control::apply_limits(&shared, &rest),
        _ => set_xero_limits(&shared, &rest),
    }
}

/// `GET /_sandbox/limits[?provider=hubrise]`.
async fn get_limits(State(shared): State<Arc<Shared>>, Query(q): Query<Which>) -> Answer {
    match provider_of(q.provider)?.as_str() {
        "hubrise" => Ok(Json(crate::hubrise::world(&shared).limits).into_response()),
        _ => Ok(Json(shared.world().limits).into_response()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsPatch {
    tenant_per_window: Option<u32>,
    tenant_concurrent: Option<u32>,
    tenant_per_day: Option<u32>,
    app_per_window: Option<u32>,
    window_seconds: Option<u32>,
}

fn set_xero_limits(shared: &Shared, bytes: &Bytes) -> Answer {
    let patch: LimitsPatch = body(bytes)?;
    if patch.window_seconds == Some(0) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "window_seconds must be at least 1",
        ));
    }
    let mut world = shared.world();
    let l = &mut world.limits;
    l.tenant_per_window = patch.tenant_per_window.unwrap_or(l.tenant_per_window);
    l.tenant_concurrent = patch.tenant_concurrent.unwrap_or(l.tenant_concurrent);
    l.tenant_per_day = patch.tenant_per_day.unwrap_or(l.tenant_per_day);
    l.app_per_window = patch.app_per_window.unwrap_or(l.app_per_window);
    l.window_seconds = patch.window_seconds.unwrap_or(l.window_seconds);
    Ok(Json(world.limits).into_response())
}

async fn add_fault(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Answer {
    let rule: FaultRule = body(&bytes)?;
    if let Err(why) = rule.validate() {
        return Err(fail(StatusCode::BAD_REQUEST, why));
    }
    shared
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .add(rule.clone());
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Answer {
    shared
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    advance_seconds: i64,
}

async fn advance_clock(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Answer {
    let req: ClockRequest = body(&bytes)?;
    if req.advance_seconds < 0 {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "advance_seconds must not be negative: the clock only moves forward",
        ));
    }
    shared.clock.advance(req.advance_seconds);
    get_clock(State(shared)).await
}

async fn get_clock(State(shared): State<Arc<Shared>>) -> Answer {
    Ok(Json(json!({ "now": shared.clock.now().to_rfc3339() })).into_response())
}

async fn reset(State(shared): State<Arc<Shared>>) -> Answer {
    shared.clock.reset();
    *shared.world() = crate::xero::seed::world(&shared.settings, shared.clock.now());
    *crate::hubrise::world(&shared) = crate::hubrise::model::World::seed(&shared.settings);
    *crate::idp::world(&shared) = crate::idp::model::World::seed(&shared.settings.idp);
    shared
        .counters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    shared
        .idempotency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    shared
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    Ok(Json(json!({"reset": true})).into_response())
}
