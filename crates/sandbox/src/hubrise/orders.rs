//! HubRise's API for a location and its orders. Money is `"8.90 EUR"` in the location's currency,
//! quantities and tax rates are decimal strings, `status` is required and one of HubRise's; an
//! order answers with its `id`, `total` (computed here), `created_at` in the location's offset, and
//! an `id` on each item, charge, payment and discount. There is no idempotency key: the same order
//! sent twice is two orders, which is why a sender keeps its own id in `private_ref`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::str::FromStr;
use std::sync::{Arc, MutexGuard};

use super::model::{short_id, Location, Order, Token, World};
use super::{authenticated, callbacks, count, world, Refusal};
use crate::Shared;

pub const STATUSES: &[&str] = &[
    "new",
    "received",
    "accepted",
    "in_preparation",
    "awaiting_shipment",
    "awaiting_collection",
    "in_delivery",
    "completed",
    "rejected",
    "cancelled",
    "delivery_failed",
];

const SERVICE_TYPES: &[&str] = &["delivery", "collection", "eat_in"];

/// The fields an order may have (anything else is refused by name).
const ORDER_FIELDS: &[&str] = &[
    "ref",
    "private_ref",
    "status",
    "service_type",
    "service_type_ref",
    "expected_time",
    "confirmed_time",
    "customer_notes",
    "seller_notes",
    "coupon_codes",
    "collection_code",
    "items",
    "deals",
    "discounts",
    "charges",
    "payments",
    "loyalty_operations",
    "custom_fields",
    "customer_id",
    "customer_list_id",
    "customer_private_ref",
    "customer",
];

/// What a status change may touch (the sandbox's PATCH; adding or deleting elements is not
/// emulated and is refused, never silently ignored).
const PATCHABLE: &[&str] = &[
    "status",
    "seller_notes",
    "customer_notes",
    "expected_time",
    "confirmed_time",
];

/// An API call's checks, in HubRise's order: the token, the location it may reach, the call
/// counted against the connection's limits, then the scope.
struct Call<'a> {
    world: MutexGuard<'a, World>,
    location: Location,
    client_id: String,
    client_name: String,
}

fn call<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
    at: Option<&str>,
    write: bool,
    heavy: bool,
) -> Result<Call<'a>, Refusal> {
    let mut world = world(shared);
    let (_, token): (String, Token) = authenticated(&world, headers)?;
    count(shared, &mut world, &token, heavy)?;
    let location = match at {
        None if token.scope.level == "location" => world.location(&token.location_id).cloned(),
        None => {
            return Err(Refusal::forbidden(
                "This endpoint needs a location-level access token",
            ))
        }
        Some(id) => {
            let reachable = match token.scope.level.as_str() {
                "location" => id == token.location_id,
                _ => world
                    .location(&token.location_id)
                    .zip(world.location(id))
                    .is_some_and(|(mine, asked)| mine.account_id == asked.account_id),
            };
            if world.location(id).is_none() {
                return Err(Refusal::not_found(format!("No location '{id}'")));
            }
            if !reachable {
                return Err(Refusal::forbidden(
                    "The access token does not give access to this location",
                ));
            }
            world.location(id).cloned()
        }
    }
    .ok_or_else(|| Refusal::not_found("The token's location no longer exists"))?;
    if !token.scope.allows("orders", write) {
        return Err(Refusal::forbidden(format!(
            "The access token's scope does not allow orders.{}",
            if write { "write" } else { "read" }
        )));
    }
    let client_name = world
        .clients
        .get(&token.client_id)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    Ok(Call {
        world,
        location,
        client_id: token.client_id,
        client_name,
    })
}

/// `GET /v1/location`: the token's location, with its currency.
pub async fn location(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Value>, Refusal> {
    let mut world = world(&shared);
    let (_, token) = authenticated(&world, &headers)?;
    count(&shared, &mut world, &token, false)?;
    let location = world
        .location(&token.location_id)
        .cloned()
        .ok_or_else(|| Refusal::not_found("The token's location no longer exists"))?;
    let account = world.account(&location.account_id).cloned();
    Ok(Json(json!({
        "id": location.id,
        "name": location.name,
        "account": account.map(|a| json!({"id": a.id, "name": a.name, "currency": a.currency})),
        "currency": location.currency,
        "timezone": {"name": location.timezone},
    })))
}

/// `"8.90 EUR"`: its amount, if it is money in `currency`.
fn money(v: &Value, currency: &str) -> Result<Decimal, String> {
    let text = v.as_str().ok_or("must be a string such as \"8.90 EUR\"")?;
    let (amount, code) = text
        .split_once(' ')
        .ok_or("must be an amount, a space and a currency code, such as \"8.90 EUR\"")?;
    let digits = amount.strip_prefix('-').unwrap_or(amount);
    let well_formed = digits.split_once('.').is_some_and(|(units, cents)| {
        !units.is_empty()
            && units.bytes().all(|b| b.is_ascii_digit())
            && cents.len() == 2
            && cents.bytes().all(|b| b.is_ascii_digit())
    }) && code.len() == 3
        && code.bytes().all(|b| b.is_ascii_uppercase());
    if !well_formed {
        return Err(format!(
            "'{text}' is not money: two decimals, a space and a currency code, such as \"8.90 EUR\""
        ));
    }
    if code != currency {
        return Err(format!(
            "'{text}' is in {code}, not in the location's currency {currency}"
        ));
    }
    Decimal::from_str(amount).map_err(|e| format!("'{text}': {e}"))
}

/// A decimal sent as a string (`"2"`, `"20.0"`).
fn decimal_string(v: &Value) -> Result<Decimal, String> {
    let text = v
        .as_str()
        .ok_or("must be a decimal number in a string, such as \"2\" or \"20.0\"")?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let ok = !digits.is_empty()
        && !digits.starts_with('.')
        && !digits.ends_with('.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !ok {
        return Err(format!("'{text}' is not a decimal number"));
    }
    Decimal::from_str(text).map_err(|e| format!("'{text}': {e}"))
}

/// Checks a new order as HubRise does and works out its total; every refusal by field.
fn check(order: &Map<String, Value>, currency: &str) -> Result<Decimal, Vec<(String, String)>> {
    let mut errors = Vec::new();
    let mut push = |field: String, message: String| errors.push((field, message));
    for key in order.keys() {
        if !ORDER_FIELDS.contains(&key.as_str()) {
            push(key.clone(), "is not a field of an order".into());
        }
    }
    match order.get("status").and_then(Value::as_str) {
        None => push("status".into(), "is required".into()),
        Some(s) if !STATUSES.contains(&s) => {
            push("status".into(), format!("'{s}' is not a status"))
        }
        Some(_) => {}
    }
    if let Some(t) = order.get("service_type") {
        if !t.as_str().is_some_and(|t| SERVICE_TYPES.contains(&t)) {
            push(
                "service_type".into(),
                "must be delivery, collection or eat_in".into(),
            );
        }
    }
    let list = |name: &str| -> Result<Vec<Value>, String> {
        match order.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(_) => Err("must be an array".into()),
        }
    };
    let mut total = Decimal::ZERO;
    let read_money =
        |field: String, v: Option<&Value>, push: &mut dyn FnMut(String, String)| match v {
            None => {
                push(field, "is required".into());
                None
            }
            Some(v) => match money(v, currency) {
                Ok(d) => Some(d),
                Err(m) => {
                    push(field, m);
                    None
                }
            },
        };
    for (name, sign) in [
        ("items", 1),
        ("charges", 1),
        ("discounts", -1),
        ("payments", 0),
    ] {
        let elements = match list(name) {
            Ok(e) => e,
            Err(m) => {
                push(name.into(), m);
                continue;
            }
        };
        for (i, e) in elements.iter().enumerate() {
            let at = |f: &str| format!("{name}[{i}].{f}");
            let Some(e) = e.as_object() else {
                push(format!("{name}[{i}]"), "must be an object".into());
                continue;
            };
            match name {
                "items" => {
                    if !e.get("product_name").is_some_and(Value::is_string) {
                        push(at("product_name"), "is required".into());
                    }
                    let price = read_money(at("price"), e.get("price"), &mut push);
                    let quantity = match e.get("quantity").map(decimal_string) {
                        None => {
                            push(at("quantity"), "is required".into());
                            None
                        }
                        Some(Err(m)) => {
                            push(at("quantity"), m);
                            None
                        }
                        Some(Ok(q)) => Some(q),
                    };
                    if let Some(Err(m)) = e.get("tax_rate").map(decimal_string) {
                        push(at("tax_rate"), m);
                    }
                    let mut options = Decimal::ZERO;
                    if let Some(opts) = e.get("options") {
                        for (j, o) in opts.as_array().into_iter().flatten().enumerate() {
                            let field = |f: &str| format!("{name}[{i}].options[{j}].{f}");
                            if !o.get("name").is_some_and(Value::is_string) {
                                push(field("name"), "is required".into());
                            }
                            let q = match o.get("quantity") {
                                None => Some(1),
                                Some(q) => {
                                    let n = q.as_i64().filter(|n| *n > 0);
                                    if n.is_none() {
                                        push(field("quantity"), "must be a whole number".into());
                                    }
                                    n
                                }
                            };
                            if let Some(p) = o.get("price") {
                                match (money(p, currency), q) {
                                    (Ok(p), Some(q)) => options += p * Decimal::from(q),
                                    (Err(m), _) => push(field("price"), m),
                                    _ => {}
                                }
                            }
                        }
                    }
                    if let (Some(p), Some(q)) = (price, quantity) {
                        total += (p + options) * q;
                    }
                }
                "charges" => {
                    if let Some(p) = read_money(at("price"), e.get("price"), &mut push) {
                        total += p * Decimal::from(sign);
                    }
                    if let Some(Err(m)) = e.get("tax_rate").map(decimal_string) {
                        push(at("tax_rate"), m);
                    }
                }
                "discounts" => {
                    if let Some(p) = read_money(at("price_off"), e.get("price_off"), &mut push) {
                        total += p * Decimal::from(sign);
                    }
                }
                _ => {
                    read_money(at("amount"), e.get("amount"), &mut push);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(total.round_dp(2))
    } else {
        Err(errors)
    }
}

fn format_money(amount: Decimal, currency: &str) -> String {
    format!("{:.2} {currency}", amount.round_dp(2))
}

/// A time as HubRise gives it: ISO 8601 with the location's offset.
pub(crate) fn local_time(t: chrono::DateTime<chrono::Utc>, location: &Location) -> String {
    match location.timezone.parse::<chrono_tz::Tz>() {
        Ok(tz) => t
            .with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        Err(_) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
    }
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(Refusal::unprocessable(vec![(
            "base".into(),
            "the body must be a JSON object".into(),
        )])),
        Err(e) => Err(Refusal::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_request",
            format!("The body is not JSON: {e}"),
        )),
    }
}

async fn create_in(
    shared: Arc<Shared>,
    headers: HeaderMap,
    at: Option<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let order = parse_body(&body)?;
    let mut c = call(&shared, &headers, at.as_deref(), true, false)?;
    let total = check(&order, &c.location.currency).map_err(Refusal::unprocessable)?;
    let now = shared.clock.now();
    let id = short_id();
    let mut answer = Value::Object(order.clone());
    for name in ["items", "charges", "payments", "discounts"] {
        if let Some(Value::Array(list)) = answer.get_mut(name) {
            for e in list.iter_mut() {
                e["id"] = json!(short_id());
            }
        }
    }
    answer["id"] = json!(id);
    answer["location_id"] = json!(c.location.id);
    answer["created_at"] = json!(local_time(now, &c.location));
    answer["created_by"] = json!(c.client_name);
    answer["total"] = json!(format_money(total, &c.location.currency));
    let status = order["status"].as_str().unwrap_or_default().to_string();
    c.world.orders.push(Order {
        id,
        location_id: c.location.id.clone(),
        private_ref: order
            .get("private_ref")
            .and_then(Value::as_str)
            .map(str::to_string),
        status,
        created_at: now,
        body: answer.clone(),
    });
    callbacks::order_changed(
        &shared,
        &mut c.world,
        Some(&c.client_id),
        &c.location,
        None,
        &answer,
    );
    drop(c);
    let _ = shared.persist();
    Ok((axum::http::StatusCode::OK, Json(answer)).into_response())
}

pub async fn create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    create_in(shared, headers, None, body).await
}

pub async fn create_at(
    State(shared): State<Arc<Shared>>,
    Path(location_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    create_in(shared, headers, Some(location_id), body).await
}

#[derive(Deserialize)]
pub struct ListQuery {
    private_ref: Option<String>,
    /// One status, or several separated by commas.
    status: Option<String>,
    count: Option<String>,
    cursor: Option<String>,
}

/// The orders of the location, newest first, filtered; at most `count` (100) a page, the next
/// page's cursor in `X-Cursor-Next`. A heavy read: ten a minute.
fn list_in(
    shared: &Shared,
    headers: &HeaderMap,
    at: Option<&str>,
    q: ListQuery,
) -> Result<Response, Refusal> {
    let c = call(shared, headers, at, false, true)?;
    let count = match q.count.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => {
            return Err(Refusal::unprocessable(vec![(
                "count".into(),
                "must be a whole number from 1 to 100".into(),
            )]))
        }
    };
    let statuses: Option<Vec<&str>> = q.status.as_deref().map(|s| s.split(',').collect());
    let start = match q.cursor.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return Err(Refusal::unprocessable(vec![(
                "cursor".into(),
                "is not a cursor this API gave".into(),
            )]))
        }
    };
    let matching: Vec<&Order> = c
        .world
        .orders
        .iter()
        .rev()
        .filter(|o| o.location_id == c.location.id)
        .filter(|o| {
            q.private_ref
                .as_ref()
                .is_none_or(|r| o.private_ref.as_ref() == Some(r))
        })
        .filter(|o| {
            statuses
                .as_ref()
                .is_none_or(|s| s.contains(&o.status.as_str()))
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(count)
        .map(|o| o.body.clone())
        .collect();
    let mut response = Json(page).into_response();
    if start + count < matching.len() {
        if let Ok(v) = HeaderValue::from_str(&(start + count).to_string()) {
            response.headers_mut().insert("x-cursor-next", v);
        }
    }
    Ok(response)
}

pub async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, Refusal> {
    list_in(&shared, &headers, None, q)
}

pub async fn list_at(
    State(shared): State<Arc<Shared>>,
    Path(location_id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, Refusal> {
    list_in(&shared, &headers, Some(&location_id), q)
}

fn read_in(
    shared: &Shared,
    headers: &HeaderMap,
    at: Option<&str>,
    id: &str,
) -> Result<Json<Value>, Refusal> {
    let c = call(shared, headers, at, false, false)?;
    c.world
        .orders
        .iter()
        .find(|o| o.id == id && o.location_id == c.location.id)
        .map(|o| Json(o.body.clone()))
        .ok_or_else(|| Refusal::not_found(format!("No order '{id}' at this location")))
}

pub async fn read(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Refusal> {
    read_in(&shared, &headers, None, &id)
}

pub async fn read_at(
    State(shared): State<Arc<Shared>>,
    Path((location_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, Refusal> {
    read_in(&shared, &headers, Some(&location_id), &id)
}

fn update_in(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    at: Option<&str>,
    id: &str,
    body: &Bytes,
) -> Result<Json<Value>, Refusal> {
    let change = parse_body(body)?;
    let mut c = call(shared, headers, at, true, false)?;
    let mut errors = Vec::new();
    for (key, value) in &change {
        if !PATCHABLE.contains(&key.as_str()) {
            errors.push((
                key.clone(),
                "cannot be changed in the sandbox (elements are added or deleted, never edited in place)".into(),
            ));
        } else if key == "status" && !value.as_str().is_some_and(|s| STATUSES.contains(&s)) {
            errors.push(("status".into(), format!("{value} is not a status")));
        }
    }
    if !errors.is_empty() {
        return Err(Refusal::unprocessable(errors));
    }
    let location = c.location.id.clone();
    let order = c
        .world
        .orders
        .iter_mut()
        .find(|o| o.id == id && o.location_id == location)
        .ok_or_else(|| Refusal::not_found(format!("No order '{id}' at this location")))?;
    let previous = order.body.clone();
    for (key, value) in change {
        if key == "status" {
            order.status = value.as_str().unwrap_or_default().to_string();
        }
        order.body[key] = value;
    }
    let answer = order.body.clone();
    callbacks::order_changed(
        shared,
        &mut c.world,
        Some(&c.client_id),
        &c.location,
        Some(&previous),
        &answer,
    );
    drop(c);
    let _ = shared.persist();
    Ok(Json(answer))
}

pub async fn update(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Refusal> {
    update_in(&shared, &headers, None, &id, &body)
}

pub async fn update_at(
    State(shared): State<Arc<Shared>>,
    Path((location_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Refusal> {
    update_in(&shared, &headers, Some(&location_id), &id, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_two_decimals_a_space_and_the_locations_currency() {
        assert_eq!(money(&json!("8.90 EUR"), "EUR"), Ok(Decimal::new(890, 2)));
        assert_eq!(money(&json!("-0.05 EUR"), "EUR"), Ok(Decimal::new(-5, 2)));
        for bad in [
            json!("8.9 EUR"),
            json!("8.90EUR"),
            json!("8.90 eur"),
            json!(8.9),
            json!("8,90 EUR"),
            json!(".90 EUR"),
        ] {
            assert!(money(&bad, "EUR").is_err(), "{bad} was taken");
        }
        assert!(money(&json!("8.90 GBP"), "EUR")
            .unwrap_err()
            .contains("not in the location's currency EUR"));
    }

    #[test]
    fn quantities_and_rates_are_decimal_strings() {
        assert_eq!(decimal_string(&json!("2")), Ok(Decimal::from(2)));
        assert_eq!(decimal_string(&json!("20.0")), Ok(Decimal::new(200, 1)));
        for bad in [json!(2), json!("2."), json!("two"), json!(""), json!("1e3")] {
            assert!(decimal_string(&bad).is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn the_total_counts_items_with_their_options_charges_and_discounts() {
        let order = json!({"status": "completed",
            "items": [{"product_name": "Pizza", "price": "9.50 EUR", "quantity": "2",
                       "options": [{"name": "Extra cheese", "price": "1.00 EUR", "quantity": 1}]},
                      {"product_name": "Water", "price": "2.00 EUR", "quantity": "1", "tax_rate": "5.5"}],
            "charges": [{"name": "Delivery", "price": "3.00 EUR"}],
            "discounts": [{"name": "Promo", "price_off": "2.50 EUR"}],
            "payments": [{"name": "Card", "amount": "23.50 EUR"}]});
        assert_eq!(
            check(order.as_object().unwrap(), "EUR"),
            Ok(Decimal::new(2350, 2))
        );
    }

    #[test]
    fn every_refusal_is_named_by_its_field() {
        let order = json!({"items": [{"product_name": "Pizza", "price": "9.50 USD", "quantity": 2}],
            "payments": [{"amount": "9.5 EUR"}], "colour": "red"});
        let fields: Vec<String> = check(order.as_object().unwrap(), "EUR")
            .unwrap_err()
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "colour",
                "status",
                "items[0].price",
                "items[0].quantity",
                "payments[0].amount"
            ]
        );
    }
}
