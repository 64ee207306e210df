//! `GET /v1/events?after=CURSOR`: every state change of the device's documents and every provider
//! event about them, in order, resumable from a cursor. Long-poll (`wait` seconds, at most 60) or,
//! with `Accept: text/event-stream`, Server-Sent Events (resuming from `Last-Event-ID`). A device
//! holds at most `server.max_event_streams_per_device` feeds at once, and each ends when the
//! credentials that opened it do (see `crate::streams`).

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::Duration;

use crate::device::DeviceAuth;
use crate::error::AppError;
use crate::AppState;

const PAGE: usize = 500;

#[derive(Deserialize)]
pub struct EventsQuery {
    after: Option<i64>,
    /// Seconds to wait for something new when nothing is there yet (long-poll).
    wait: Option<u64>,
}

async fn page(
    state: &AppState,
    device: uuid::Uuid,
    after: i64,
) -> Result<Vec<(i64, Value)>, AppError> {
    let rows = state
        .storage
        .call(move |s| s.events_after(device, after, PAGE))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, body)| (seq, serde_json::from_str(&body).unwrap_or(Value::Null)))
        .collect())
}

pub async fn events(
    State(state): State<AppState>,
    auth: DeviceAuth,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Response, AppError> {
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait.unwrap_or(0).min(60));
    loop {
        // Subscribe before reading, so an event stored between the read and the wait is not missed.
        let notified = state.events_ready.notified();
        let found = page(&state, device, after).await?;
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            let next = found.last().map_or(after, |(seq, _)| *seq);
            let events: Vec<Value> = found
                .into_iter()
                .map(|(seq, mut e)| {
                    e["seq"] = json!(seq);
                    e
                })
                .collect();
            return Ok(Json(json!({ "events": events, "next": next })).into_response());
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
        (state, after, Vec::<(i64, Value)>::new(), feed),
        move |(state, mut cursor, mut pending, feed)| async move {
            loop {
                if feed.is_ended() {
                    return None;
                }
                if let Some((seq, e)) = (!pending.is_empty()).then(|| pending.remove(0)) {
                    cursor = seq;
                    let event = Event::default()
                        .id(seq.to_string())
                        .event("ledgerlink")
                        .data(e.to_string());
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
