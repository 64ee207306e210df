//! HubRise's callbacks: one per connection (`POST /callback` sets it, `GET` reads it, `DELETE`
//! removes it). An active callback gets each event posted to its URL, signed with the client
//! secret (`X-HubRise-Hmac-SHA256`: hex HMAC-SHA256 of the raw body); an answer from 200 to 499
//! acknowledges it, anything else (or none within 20 seconds) is retried six times, a minute after
//! the first attempt and doubling to 32 minutes ("minutes" as the limits scale them). A passive
//! callback (`"url": null`) only records: the client polls `GET /callback/events` and deletes what
//! it has handled. Events stay listed until acknowledged. A client never hears of what it did
//! itself.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard, OnceLock};
use std::time::Duration;

use super::model::{short_id, Callback, CallbackAttempt, Event, Location, Token, World};
use super::{authenticated, count, world, Refusal};
use crate::harness::hooks;
use crate::harness::secret::Secret;
use crate::Shared;

/// The events a callback may ask for, by resource type, and the permission its scope needs.
const RESOURCES: &[(&str, &[&str], &str)] = &[
    ("order", &["create", "update"], "orders"),
    ("customer", &["create", "update"], "customer_list"),
    ("catalog", &["create", "update"], "catalog"),
    ("inventory", &["update"], "inventory"),
    ("location", &["update"], "location"),
];

/// Retries after the first post, a "minute" apart and doubling.
const RETRIES: u32 = 6;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/callback", get(read).post(set).delete(remove))
        .route("/v1/callback/events", get(events))
        .route("/v1/callback/events/{id}", get(event).delete(acknowledge))
}

/// The token, counted against its connection's limits; callbacks belong to a connection.
fn connection<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
) -> Result<(MutexGuard<'a, World>, Token), Refusal> {
    let mut world = world(shared);
    let (_, token) = authenticated(&world, headers)?;
    count(shared, &mut world, &token, false)?;
    Ok((world, token))
}

fn owned_by(token: &Token) -> impl Fn(&Callback) -> bool + '_ {
    move |c| c.client_id == token.client_id && c.location_id == token.location_id
}

fn view(callback: &Callback) -> Value {
    json!({"url": callback.url, "events": callback.events})
}

async fn read(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Result<Response, Refusal> {
    let (world, token) = connection(&shared, &headers)?;
    world
        .callbacks
        .iter()
        .find(|c| owned_by(&token)(c))
        .map(|c| Json(view(c)).into_response())
        .ok_or_else(|| Refusal::not_found("No callback is set for this connection"))
}

/// `POST /callback {"url": ..., "events": {"order": ["create", "update"]}}`: replaces the
/// connection's callback.
async fn set(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let given: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(o)) => o,
        _ => {
            return Err(Refusal::unprocessable(vec![(
                "base".into(),
                "the body must be a JSON object".into(),
            )]))
        }
    };
    let (mut world, token) = connection(&shared, &headers)?;
    let mut errors = Vec::new();
    for key in given.keys() {
        if key != "url" && key != "events" {
            errors.push((key.clone(), "is not a callback field".into()));
        }
    }
    let url = match given.get("url") {
        None | Some(Value::Null) => None,
        Some(Value::String(u))
            if reqwest::Url::parse(u).is_ok_and(|p| p.scheme().starts_with("http")) =>
        {
            Some(u.clone())
        }
        Some(other) => {
            errors.push(("url".into(), format!("{other} is not an http(s) URL")));
            None
        }
    };
    let mut events = BTreeMap::new();
    match given.get("events") {
        Some(Value::Object(asked)) if !asked.is_empty() => {
            for (resource, types) in asked {
                let Some((_, allowed, permission)) =
                    RESOURCES.iter().find(|(name, ..)| name == resource)
                else {
                    errors.push((
                        format!("events.{resource}"),
                        "is not a resource type".into(),
                    ));
                    continue;
                };
                let types: Vec<String> = match types {
                    Value::Array(list) if !list.is_empty() => list
                        .iter()
                        .filter_map(|t| match t.as_str() {
                            Some(t) if allowed.contains(&t) => Some(t.to_string()),
                            _ => {
                                errors.push((
                                    format!("events.{resource}"),
                                    format!("{t} is not one of {}", allowed.join(", ")),
                                ));
                                None
                            }
                        })
                        .collect(),
                    _ => {
                        errors.push((
                            format!("events.{resource}"),
                            "must be a non-empty list of event types".into(),
                        ));
                        continue;
                    }
                };
                if *permission != "location" && !token.scope.allows(permission, false) {
                    return Err(Refusal::forbidden(format!(
                        "The access token's scope does not allow {permission}.read"
                    )));
                }
                events.insert(resource.clone(), types);
            }
        }
        _ => errors.push((
            "events".into(),
            "is required: an object of resource types and their event types".into(),
        )),
    }
    if !errors.is_empty() {
        return Err(Refusal::unprocessable(errors));
    }
    let callback = Callback {
        client_id: token.client_id.clone(),
        location_id: token.location_id.clone(),
        url,
        events,
    };
    let answer = view(&callback);
    world.callbacks.retain(|c| !owned_by(&token)(c));
    world.callbacks.push(callback);
    drop(world);
    let _ = shared.persist();
    Ok(Json(answer).into_response())
}

/// `DELETE /callback`: no more events, and the held ones go too.
async fn remove(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let (mut world, token) = connection(&shared, &headers)?;
    let before = world.callbacks.len();
    world.callbacks.retain(|c| !owned_by(&token)(c));
    if world.callbacks.len() == before {
        return Err(Refusal::not_found("No callback is set for this connection"));
    }
    world
        .events
        .retain(|e| !(e.client_id == token.client_id && e.location_id == token.location_id));
    drop(world);
    let _ = shared.persist();
    Ok(Json(json!({})).into_response())
}

fn held<'w>(world: &'w World, token: &Token) -> impl Iterator<Item = &'w Event> {
    let (client, location) = (token.client_id.clone(), token.location_id.clone());
    world
        .events
        .iter()
        .filter(move |e| e.client_id == client && e.location_id == location)
}

/// `GET /callback/events`: the events not yet acknowledged, oldest first.
async fn events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Value>, Refusal> {
    let (world, token) = connection(&shared, &headers)?;
    if !world.callbacks.iter().any(owned_by(&token)) {
        return Err(Refusal::not_found("No callback is set for this connection"));
    }
    Ok(Json(Value::Array(
        held(&world, &token).map(|e| e.body.clone()).collect(),
    )))
}

async fn event(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Refusal> {
    let (world, token) = connection(&shared, &headers)?;
    let found = held(&world, &token)
        .find(|e| e.id == id)
        .map(|e| Json(e.body.clone()));
    found.ok_or_else(|| Refusal::not_found(format!("No event '{id}'")))
}

/// `DELETE /callback/events/:id`: handled; HubRise forgets it.
async fn acknowledge(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Refusal> {
    let (mut world, token) = connection(&shared, &headers)?;
    let body = held(&world, &token)
        .find(|e| e.id == id)
        .map(|e| e.body.clone())
        .ok_or_else(|| Refusal::not_found(format!("No event '{id}'")))?;
    world.events.retain(|e| e.id != id);
    drop(world);
    let _ = shared.persist();
    Ok(Json(body))
}

/// An order was created (`previous` none) or changed at `location` by `actor` (a client id; none
/// for a person in HubRise's back office): every other client with a callback asking for it gets
/// the event.
pub fn order_changed(
    shared: &Arc<Shared>,
    world: &mut World,
    actor: Option<&str>,
    location: &Location,
    previous: Option<&Value>,
    order: &Value,
) {
    let event_type = if previous.is_some() {
        "update"
    } else {
        "create"
    };
    let created_at = super::orders::local_time(shared.clock.now(), location);
    let listeners: Vec<Callback> = world
        .callbacks
        .iter()
        .filter(|c| c.location_id == location.id && Some(c.client_id.as_str()) != actor)
        .filter(|c| {
            c.events
                .get("order")
                .is_some_and(|types| types.iter().any(|t| t == event_type))
        })
        .cloned()
        .collect();
    for callback in listeners {
        let id = short_id();
        let body = json!({
            "id": id,
            "resource_type": "order",
            "event_type": event_type,
            "created_at": created_at,
            "order_id": order["id"],
            "account_id": location.account_id,
            "location_id": location.id,
            "previous_state": previous,
            "new_state": order,
        });
        world.events.push(Event {
            id: id.clone(),
            client_id: callback.client_id.clone(),
            location_id: location.id.clone(),
            body: body.clone(),
        });
        let (Some(url), Some(client)) =
            (callback.url.clone(), world.clients.get(&callback.client_id))
        else {
            continue; // passive: polled
        };
        let minute = Duration::from_secs(u64::from(world.limits.minute_seconds.max(1)));
        tokio::spawn(post(
            shared.clone(),
            id,
            url,
            client.secret.clone(),
            body.to_string(),
            minute,
        ));
    }
}

/// The signature HubRise puts on a callback: hex HMAC-SHA256 of the raw body under the secret.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("a plain HTTP client builds")
    })
}

async fn post(
    shared: Arc<Shared>,
    event_id: String,
    url: String,
    secret: Secret,
    body: String,
    minute: Duration,
) {
    let signature = sign(&secret, body.as_bytes());
    let record = |tried: hooks::Tried| {
        let mut w = world(&shared);
        if tried.taken {
            w.events.retain(|e| e.id != event_id);
        }
        w.callback_attempts.push(CallbackAttempt {
            event_id: event_id.clone(),
            url: url.clone(),
            attempt: tried.attempt,
            status: tried.status,
            error: tried.error,
            acknowledged: tried.taken,
        });
    };
    let taken = hooks::post(
        http(),
        &url,
        &[("x-hubrise-hmac-sha256", signature)],
        &body,
        |status| (200..500).contains(&status),
        |attempts| (attempts <= RETRIES).then(|| minute * 2u32.pow(attempts - 1)),
        record,
    )
    .await;
    if taken {
        let _ = shared.persist();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hex_hmac_sha256_of_the_raw_body_under_the_client_secret() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(&Secret::new("Jefe"), b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
