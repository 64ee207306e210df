//! `GET /v1/events?after=CURSOR`: every state change of the device's documents and every provider
//! event about them, in order, resumable from a cursor. Long-poll (`wait` seconds, at most 60) or,
//! with `Accept: text/event-stream`, Server-Sent Events (resuming from `Last-Event-ID`). A device
//! holds at most `server.max_event_streams_per_device` feeds at once, and each ends when the
//! credentials that opened it do (see `crate::streams`).

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledgerlink_wire::documents::{EventEntry, EventPage};
use ledgerlink_wire::ApiError;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;

use crate::body::Params;
use crate::device::DeviceAuth;
use crate::error::AppError;
use crate::openapi::DeviceRefusals;
use crate::AppState;

const PAGE: usize = 500;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The cursor: events after this one (`next` of the last page; 0 from the start).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Seconds to wait for something new when nothing is there yet (long-poll).
    #[param(minimum = 0, maximum = 60)]
    wait: Option<u64>,
}

async fn page(
    state: &AppState,
    device: uuid::Uuid,
    after: i64,
) -> Result<Vec<EventEntry>, AppError> {
    Ok(state
        .storage
        .events()
        .events_after(device, after, PAGE)
        .await?)
}

/// Every state change of this device's documents, every provider event about them and every change
/// of its connection's status, in order, from a cursor. Long-poll with `wait`; or send
/// `Accept: text/event-stream` for Server-Sent Events (resuming from `Last-Event-ID`). At most 8
/// feeds per device; each ends when the credentials that opened it do.
#[utoipa::path(get, path = "/v1/events", tag = "documents", security(("device" = [])),
    params(EventsQuery),
    responses(
        (status = 200, body = EventPage),
        (status = 400, description = "invalid_request: a cursor or wait that is not valid", body = ApiError),
        (status = 429, description = "rate_limited: this device has 8 feeds open", body = ApiError,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        DeviceRefusals,
    ))]
pub async fn events(
    State(state): State<AppState>,
    auth: DeviceAuth,
    headers: HeaderMap,
    Params(q): Params<EventsQuery>,
) -> Result<Response, AppError> {
    if q.after.is_some_and(|a| a < 0) {
        return Err(AppError::bad_request("after must be 0 or more"));
    }
    if q.wait.is_some_and(|w| w > 60) {
        return Err(AppError::bad_request("wait must be 0 to 60 seconds"));
    }
    let wants_sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let after = q.after.or(last_id).unwrap_or(0);
    let device = auth.device.id;
    let feed = state.streams.open(device).ok_or_else(|| {
        AppError::rate_limited(
            format!(
                "This device has {} event feeds open already: close one before opening another.",
                state.settings.server.max_event_streams_per_device
            ),
            FEED_RETRY_SECS,
        )
    })?;
    // A feed lasts no longer than the access token that opened it.
    let credentials_left = auth
        .expires_at
        .map(|at| (at - state.clock.now()).to_std().unwrap_or_default());
    if wants_sse {
        let stream = async_stream(state, device, after, feed, credentials_left);
        return Ok(Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let wait = q
        .wait
        .unwrap_or(0)
        .min(state.settings.server.long_poll_max_secs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        // Subscribe before reading, so an event stored between the read and the wait is not missed.
        let notified = state.events_ready.notified();
        let found = page(&state, device, after).await?;
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            let next = found.last().map_or(after, |e| e.seq);
            return Ok(Json(EventPage {
                events: found,
                next,
            })
            .into_response());
        }
        // Woken by a new event, or the deadline: either way, read again (and answer at the deadline).
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, notified) => {}
            () = feed.ended() => return Err(ended(&state, &headers).await),
        }
    }
}

/// Seconds a device is asked to wait before opening a feed over its limit.
const FEED_RETRY_SECS: u64 = 10;

/// Why the credentials that opened a feed no longer work, exactly as a new call with them would be
/// told (`disconnected` when the organisation was, `device_revoked` when the device was unpaired).
async fn ended(state: &AppState, headers: &HeaderMap) -> AppError {
    let token = crate::device::bearer(headers).unwrap_or_default();
    match crate::device::authenticate(state, token).await {
        Err(e) => e,
        // Ended, yet they work (paired again under the same token cannot happen): say so plainly.
        Ok(_) => AppError::api(
            axum::http::StatusCode::UNAUTHORIZED,
            ledgerlink_wire::ErrorCode::DeviceRevoked,
            "The credentials this feed was opened with were revoked.",
        ),
    }
}

/// Events from `after` on, then each new one as it is stored, until the device's credentials end
/// (revoked, or the access token expires): then the stream closes and the device reconnects with
/// what it has.
fn async_stream(
    state: AppState,
    device: uuid::Uuid,
    after: i64,
    feed: crate::streams::Feed,
    credentials_left: Option<Duration>,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> {
    let expires = credentials_left.map(|left| tokio::time::Instant::now() + left);
    futures_util::stream::unfold(
        (state, after, Vec::<EventEntry>::new(), feed),
        move |(state, mut cursor, mut pending, feed)| async move {
            loop {
                if feed.is_ended() {
                    return None;
                }
                if let Some(e) = (!pending.is_empty()).then(|| pending.remove(0)) {
                    cursor = e.seq;
                    let event = Event::default()
                        .id(e.seq.to_string())
                        .event("ledgerlink")
                        .json_data(&e)
                        .unwrap_or_default();
                    return Some((Ok(event), (state, cursor, pending, feed)));
                }
                let notified = state.events_ready.notified();
                match page(&state, device, cursor).await {
                    Ok(found) if !found.is_empty() => pending = found,
                    Ok(_) => {
                        let expiry = async {
                            match expires {
                                Some(at) => tokio::time::sleep_until(at).await,
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            _ = tokio::time::timeout(Duration::from_secs(15), notified) => {}
                            () = feed.ended() => return None,
                            () = expiry => return None,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream stopped");
                        return None;
                    }
                }
            }
        },
    )
}
