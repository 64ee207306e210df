//! The Accounting API under `/api.xro/2.0/`: one dispatcher that checks the bearer token and the
//! `xero-tenant-id`, counts the call against the rate limits, honours `Idempotency-Key`, and routes
//! by resource name (matched case-insensitively, as Xero does).

mod contacts;
mod credit_notes;
pub mod idempotency;
mod invoices;
mod listing;
mod organisation;
mod payments;
pub mod render;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

use crate::harness::limits;
use crate::harness::server::InjectedLatency;
use crate::xero::identity::{problem, verify_bearer, Caller};
use crate::xero::model::World;
use crate::xero::webhooks::Event;
use crate::Shared;

/// What a handler answers, and the changes to announce by webhook once the world is unlocked.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub events: Vec<Event>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            events: Vec::new(),
        }
    }

    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            body: json!({
                "Type": null,
                "Title": "NotFound",
                "Status": 404,
                "Detail": "The resource you're looking for cannot be found",
            }),
            events: Vec::new(),
        }
    }

    /// Xero's error shape for everything that is not a per-element validation failure.
    pub fn error(status: StatusCode, number: u32, kind: &str, message: &str) -> Self {
        Self {
            status,
            body: json!({"ErrorNumber": number, "Type": kind, "Message": message}),
            events: Vec::new(),
        }
    }

    pub fn bad_request(message: &str) -> Self {
        Self::error(StatusCode::BAD_REQUEST, 10, "ValidationException", message)
    }

    fn method_not_allowed() -> Self {
        Self::error(
            StatusCode::METHOD_NOT_ALLOWED,
            405,
            "MethodNotAllowedException",
            "This method is not supported by this endpoint",
        )
    }
}

/// Everything a handler needs besides the world.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub caller: &'a Caller,
    pub tenant: Uuid,
    pub query: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    pub now: DateTime<Utc>,
}

impl Ctx<'_> {
    /// A query parameter, its name matched case-insensitively.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `summarizeErrors`: true unless `false` is passed (any casing), whatever the spec says.
    pub fn summarize_errors(&self) -> bool {
        !self
            .param("summarizeErrors")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
    }

    pub fn provider(&self) -> &'static str {
        crate::xero::seed::APP_NAME
    }
}

const WRITE_SCOPES: &[&str] = &["accounting.transactions", "accounting.invoices"];
const READ_TRANSACTIONS: &[&str] = &[
    "accounting.transactions",
    "accounting.transactions.read",
    "accounting.invoices",
    "accounting.invoices.read",
];
const PAYMENT_WRITE: &[&str] = &["accounting.transactions", "accounting.payments"];
const PAYMENT_READ: &[&str] = &[
    "accounting.transactions",
    "accounting.transactions.read",
    "accounting.payments",
    "accounting.payments.read",
];
const CONTACT_WRITE: &[&str] = &["accounting.contacts"];
const CONTACT_READ: &[&str] = &["accounting.contacts", "accounting.contacts.read"];
const SETTINGS_READ: &[&str] = &["accounting.settings", "accounting.settings.read"];

pub async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    latency: Option<Extension<InjectedLatency>>,
    body: Bytes,
) -> Response {
    let caller = match verify_bearer(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let tenant = headers
        .get("xero-tenant-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
        .filter(|t| {
            shared
                .world()
                .is_connected(&caller.client_id, caller.user_id, *t)
        });
    let Some(tenant) = tenant else {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "AuthenticationUnsuccessful",
        );
    };
    let permit = match limits::acquire(&shared, &caller.client_id, tenant) {
        Ok(p) => p,
        Err(limited) => return too_many(limited),
    };
    if let Some(Extension(InjectedLatency(d))) = latency {
        tokio::time::sleep(d).await;
    }

    let path = uri.path();
    let rest = path
        .get("/api.xro/2.0/".len()..)
        .unwrap_or_default()
        .trim_end_matches('/');
    let mut segments = rest.split('/');
    let resource = segments.next().unwrap_or_default().to_ascii_lowercase();
    let id = segments.next().map(str::to_string);
    let sub = segments.next().map(str::to_ascii_lowercase);
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let ctx = Ctx {
        shared: &shared,
        caller: &caller,
        tenant,
        query,
        headers: &headers,
        now: shared.clock.now(),
    };

    let is_write = matches!(method, Method::PUT | Method::POST | Method::PATCH);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|_| is_write);
    let reply = match key {
        None => route(
            &ctx,
            &method,
            &resource,
            id.as_deref(),
            sub.as_deref(),
            &body,
        ),
        Some(key) if key.is_empty() || key.len() > 128 => {
            Reply::bad_request("Idempotency-Key must be between 1 and 128 characters")
        }
        Some(key) => {
            let window = Duration::seconds(shared.settings.idempotency_window_seconds);
            let print = idempotency::fingerprint(
                method.as_str(),
                path,
                uri.query().unwrap_or_default(),
                &body,
            );
            let scope = (caller.client_id.as_str(), tenant, key.as_str());
            // Handlers never await, so holding the store across one keeps two requests with the
            // same key from both running.
            let mut store = shared.idempotency.lock().unwrap_or_else(|e| e.into_inner());
            match store.lookup(scope, print, ctx.now, window) {
                idempotency::Lookup::Replay(status, body) => Reply {
                    status,
                    body,
                    events: Vec::new(),
                },
                idempotency::Lookup::Conflict => Reply::bad_request(
                    "The Idempotency-Key was already used for a different request",
                ),
                idempotency::Lookup::New => {
                    let reply = route(
                        &ctx,
                        &method,
                        &resource,
                        id.as_deref(),
                        sub.as_deref(),
                        &body,
                    );
                    store.store(
                        scope,
                        print,
                        reply.status,
                        reply.body.clone(),
                        ctx.now,
                        window,
                    );
                    reply
                }
            }
        }
    };

    if !reply.events.is_empty() {
        let targets = crate::xero::webhooks::targets(&shared.world(), tenant);
        shared
            .webhooks
            .emit(targets, tenant, shared.base_url(), &reply.events, ctx.now);
    }
    let mut response = (reply.status, Json(reply.body)).into_response();
    permit.remaining.write(response.headers_mut());
    response
}

fn too_many(limited: limits::Limited) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({
            "Type": null,
            "Title": "Too Many Requests",
            "Status": 429,
            "Detail": format!("Rate limit exceeded: {}", limited.problem),
        })),
    )
        .into_response();
    let headers = response.headers_mut();
    limited.remaining.write(headers);
    headers.insert(
        "x-rate-limit-problem",
        HeaderValue::from_static(limited.problem),
    );
    if let Some(secs) = limited.retry_after {
        headers.insert("retry-after", HeaderValue::from(secs));
    }
    response
}

fn scope_check(caller: &Caller, wanted: &[&str]) -> Result<(), Reply> {
    if caller.has_any_scope(wanted) {
        Ok(())
    } else {
        Err(Reply {
            status: StatusCode::UNAUTHORIZED,
            body: json!({
                "Type": null,
                "Title": "Unauthorized",
                "Status": 401,
                "Detail": "AuthorizationUnsuccessful",
                "Instance": Uuid::new_v4(),
                "Extensions": {},
            }),
            events: Vec::new(),
        })
    }
}

/// Parses a request body, answering Xero's `PostDataInvalidException` when it is not JSON.
pub fn parse_body(body: &[u8]) -> Result<Value, Reply> {
    serde_json::from_slice(body).map_err(|e| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            14,
            "PostDataInvalidException",
            &format!("Invalid Json data: {e}"),
        )
    })
}

/// The elements of a write: `{"Invoices": [...]}`, a bare array, or one object.
pub fn elements(body: Value, collection: &str) -> Vec<Value> {
    if let Some(Value::Array(items)) = crate::xero::xjson::field(&body, collection) {
        return items.clone();
    }
    match body {
        Value::Array(items) => items,
        other => vec![other],
    }
}

fn route(
    ctx: &Ctx,
    method: &Method,
    resource: &str,
    id: Option<&str>,
    sub: Option<&str>,
    body: &[u8],
) -> Reply {
    let mut world = ctx.shared.world();
    let world: &mut World = &mut world;
    let result = (|| -> Result<Reply, Reply> {
        if let Some(sub) = sub {
            return Ok(match (resource, sub, method, id) {
                ("creditnotes", "allocations", &Method::PUT, Some(id)) => {
                    scope_check(ctx.caller, WRITE_SCOPES)?;
                    credit_notes::allocate(ctx, world, id, parse_body(body)?)
                }
                ("creditnotes", "allocations", _, _) => Reply::method_not_allowed(),
                _ => Reply::not_found(),
            });
        }
        Ok(match (resource, method) {
            ("organisation" | "organisations", &Method::GET) => {
                organisation::organisation(ctx, world)
            }
            ("accounts", &Method::GET) => {
                scope_check(ctx.caller, SETTINGS_READ)?;
                organisation::accounts(ctx, world, id)?
            }
            ("taxrates", &Method::GET) => {
                scope_check(ctx.caller, SETTINGS_READ)?;
                organisation::tax_rates(ctx, world)?
            }
            ("contacts", &Method::GET) => {
                scope_check(ctx.caller, CONTACT_READ)?;
                contacts::get(ctx, world, id)?
            }
            ("contacts", &Method::PUT | &Method::POST) => {
                scope_check(ctx.caller, CONTACT_WRITE)?;
                contacts::write(ctx, world, id, parse_body(body)?, method == Method::PUT)
            }
            ("invoices", &Method::GET) => {
                scope_check(ctx.caller, READ_TRANSACTIONS)?;
                invoices::get(ctx, world, id)?
            }
            ("invoices", &Method::PUT | &Method::POST) => {
                scope_check(ctx.caller, WRITE_SCOPES)?;
                invoices::write(ctx, world, id, parse_body(body)?, method == Method::PUT)
            }
            ("creditnotes", &Method::GET) => {
                scope_check(ctx.caller, READ_TRANSACTIONS)?;
                credit_notes::get(ctx, world, id)?
            }
            ("creditnotes", &Method::PUT | &Method::POST) => {
                scope_check(ctx.caller, WRITE_SCOPES)?;
                credit_notes::write(ctx, world, id, parse_body(body)?, method == Method::PUT)
            }
            ("payments", &Method::GET) => {
                scope_check(ctx.caller, PAYMENT_READ)?;
                payments::get(ctx, world, id)?
            }
            ("payments", &Method::PUT | &Method::POST) => {
                scope_check(ctx.caller, PAYMENT_WRITE)?;
                payments::write(ctx, world, id, parse_body(body)?)
            }
            (
                "organisation" | "organisations" | "accounts" | "taxrates" | "contacts"
                | "invoices" | "payments" | "creditnotes",
                _,
            ) => Reply::method_not_allowed(),
            _ => Reply::not_found(),
        })
    })();
    result.unwrap_or_else(|e| e)
}

/// Renders a validation failure of one element the way Xero echoes it back.
pub fn failed_element(mut element: Value, id_field: &str, errors: &[String]) -> Value {
    if !element.is_object() {
        element = json!({});
    }
    if crate::xero::xjson::field(&element, id_field).is_none() {
        element[id_field] = json!(Uuid::nil());
    }
    // Xero parses what it was sent and echoes it in its own date form.
    for name in ["Date", "DueDate"] {
        if let Some(d) = crate::xero::xjson::text(&element, name)
            .and_then(|t| crate::xero::xjson::parse_date(&t))
        {
            element[name] = json!(crate::xero::xjson::ms_day(d));
        }
    }
    element["HasErrors"] = json!(true);
    element["StatusAttributeString"] = json!("ERROR");
    element["ValidationErrors"] =
        Value::Array(errors.iter().map(|m| json!({"Message": m})).collect());
    element
}

/// The answer to a batch write: with `summarizeErrors` (the default) any failed element fails the
/// whole request with `400` and nothing is kept; with `summarizeErrors=false` every element answers
/// for itself inside a `200`.
pub fn batch_reply(
    ctx: &Ctx,
    collection: &str,
    results: Vec<Result<Value, Value>>,
    events: Vec<Event>,
) -> Reply {
    let summarize = ctx.summarize_errors();
    if summarize && results.iter().any(Result::is_err) {
        let failed: Vec<Value> = results.into_iter().filter_map(Result::err).collect();
        return Reply {
            status: StatusCode::BAD_REQUEST,
            body: json!({
                "ErrorNumber": 10,
                "Type": "ValidationException",
                "Message": "A validation exception occurred",
                "Elements": failed,
            }),
            events: Vec::new(),
        };
    }
    let items: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(mut v) => {
                if !summarize {
                    v["StatusAttributeString"] = json!("OK");
                }
                v
            }
            Err(v) => v,
        })
        .collect();
    Reply {
        status: StatusCode::OK,
        body: crate::xero::xjson::envelope(ctx.provider(), ctx.now, collection, items),
        events,
    }
}

/// A payment made inside Xero (the control API's "customer pays"), dated today.
pub fn payments_record(
    tenant: &mut crate::xero::model::Tenant,
    invoice: usize,
    account_id: Uuid,
    amount: rust_decimal::Decimal,
    now: DateTime<Utc>,
) -> crate::xero::model::Payment {
    payments::record_payment(
        tenant,
        invoice,
        account_id,
        amount,
        now.date_naive(),
        Some("Paid in Xero".into()),
        now,
    )
}
