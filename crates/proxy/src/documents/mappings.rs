//! `GET /v1/mappings` (the mappings, and the accounts and tax rates the organisation offers) and
//! `PUT /v1/mappings` (checked against what Xero has: active, non-system accounts; existing tax
//! rates; payment accounts that accept payments).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ledgerlink_wire::documents::{
    Mappings, MappingsAnswer, OfferedAccount, OfferedTaxRate, Problem, ProblemCode,
};
use ledgerlink_wire::{ApiError, ErrorCode};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::body::{Params, StrictJson};
use crate::device::DeviceAuth;
use crate::error::AppError;
use crate::openapi::{BodyRefusals, DeviceRefusals};
use crate::providers::xero::api;
use crate::store::ConnectionRow;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(read, write))
}

/// How long the organisation's accounts and tax rates are kept before asking Xero again.
const OFFER_TTL_SECS: i64 = 600;

/// The organisation's accounts and tax rates, as offered for mapping: from a cache of ten minutes,
/// or from Xero when `refresh` (or the cache is cold).
pub(crate) async fn offered(
    state: &AppState,
    connection: &ConnectionRow,
    refresh: bool,
) -> Result<(Vec<Value>, Vec<Value>), AppError> {
    let now = state.clock.now();
    if !refresh {
        let cache = state.offers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, accounts, tax_rates)) = cache.get(&connection.id) {
            if (now - *at).num_seconds() < OFFER_TTL_SECS {
                return Ok((accounts.clone(), tax_rates.clone()));
            }
        }
    }
    let mut out = Vec::new();
    for (path, key) in [("Accounts", "Accounts"), ("TaxRates", "TaxRates")] {
        let answer = api::call(state, connection, Method::GET, path, None, None)
            .await
            .map_err(|e| super::call_failed(e, "read the organisation's accounts"))?;
        if !answer.status.is_success() {
            return Err(AppError::api(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ProviderUnavailable,
                format!("Xero answered {} to GET {path}", answer.status),
            ));
        }
        out.push(answer.body[key].as_array().cloned().unwrap_or_default());
    }
    let tax_rates = out.pop().unwrap_or_default();
    let accounts = out.pop().unwrap_or_default();
    state
        .offers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(connection.id, (now, accounts.clone(), tax_rates.clone()));
    Ok((accounts, tax_rates))
}

/// What the organisation offers for mapping: active, non-system accounts and active tax rates.
fn summary(accounts: &[Value], tax_rates: &[Value]) -> (Vec<OfferedAccount>, Vec<OfferedTaxRate>) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let accounts = accounts
        .iter()
        .filter(|a| a["Status"] == "ACTIVE" && a.get("SystemAccount").is_none_or(Value::is_null))
        .map(|a| OfferedAccount {
            code: text(&a["Code"]),
            name: text(&a["Name"]),
            account_type: text(&a["Type"]),
            takes_payments: a["Type"] == "BANK" || a["EnablePaymentsToAccount"] == true,
        })
        .collect();
    let tax_rates = tax_rates
        .iter()
        .filter(|t| t["Status"] == "ACTIVE")
        .filter_map(|t| {
            Some(OfferedTaxRate {
                tax_type: text(&t["TaxType"]),
                name: text(&t["Name"]),
                rate: ledgerlink_wire::money::parse_lenient(&t["EffectiveRate"]).ok()?,
            })
        })
        .collect();
    (accounts, tax_rates)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// `false` leaves out the organisation's accounts and tax rates (no call to Xero).
    offered: Option<bool>,
    /// `true` reads them from Xero now instead of the ten-minute cache.
    refresh: Option<bool>,
}

/// The mappings, and (unless `offered=false`) the accounts and tax rates the organisation offers.
#[utoipa::path(get, path = "/v1/mappings", tag = "mappings", security(("device" = [])),
    params(ReadQuery),
    responses(
        (status = 200, body = MappingsAnswer),
        (status = 400, description = "invalid_request: a query that is not valid", body = ApiError),
        (status = 409, description = "needs_reconnect or disconnected: Xero does not take the organisation's authorisation", body = ApiError),
        DeviceRefusals,
    ))]
async fn read(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Params(q): Params<ReadQuery>,
) -> Result<Json<MappingsAnswer>, AppError> {
    let mappings = super::mappings(&state, auth.connection.id).await?;
    let mut out = MappingsAnswer {
        mappings,
        accounts: None,
        tax_rates: None,
    };
    if q.offered.unwrap_or(true) {
        let (accounts, tax_rates) =
            offered(&state, &auth.connection, q.refresh.unwrap_or(false)).await?;
        let (accounts, tax_rates) = summary(&accounts, &tax_rates);
        out.accounts = Some(accounts);
        out.tax_rates = Some(tax_rates);
    }
    Ok(Json(out))
}

fn check(m: &Mappings, accounts: &[Value], tax_rates: &[Value]) -> Vec<Problem> {
    let mut problems = Vec::new();
    // Names and codes are shown to people and sent to Xero: no control or bidirectional
    // characters, as in documents.
    let mut named = |path: String, text: &str| {
        if let Some(c) = ledgerlink_wire::strict::forbidden_in_name(text) {
            problems.push(Problem {
                path,
                code: ProblemCode::Invalid,
                message: format!(
                    "must not contain control or bidirectional formatting characters: remove {}",
                    ledgerlink_wire::strict::code_point(c)
                ),
            });
        }
    };
    for (name, c) in &m.categories {
        named(format!("categories.{name}"), name);
        named(format!("categories.{name}.account_code"), &c.account_code);
        named(format!("categories.{name}.tax_type"), &c.tax_type);
    }
    for (name, t) in &m.tenders {
        named(format!("tenders.{name}"), name);
        named(format!("tenders.{name}.account_code"), &t.account_code);
    }
    named("pos_contact_name".into(), &m.pos_contact_name);
    let account = |code: &str| {
        accounts.iter().find(|a| {
            a["Code"]
                .as_str()
                .is_some_and(|c| c.eq_ignore_ascii_case(code))
        })
    };
    let usable = |path: String, code: &str, payments: bool, problems: &mut Vec<Problem>| {
        match account(code) {
        None => problems.push(Problem { path, code: ProblemCode::Invalid, message: format!("the organisation has no account '{code}'") }),
        Some(a) if a["Status"] != "ACTIVE" => {
            problems.push(Problem { path, code: ProblemCode::Invalid, message: format!("account '{code}' is archived") })
        }
        Some(a) if a.get("SystemAccount").is_some_and(|s| !s.is_null()) => problems.push(Problem {
            path,
            code: ProblemCode::Invalid,
            message: format!("account '{code}' is a system account and cannot be posted to"),
        }),
        Some(a) if payments && !(a["Type"] == "BANK" || a["EnablePaymentsToAccount"] == true) => problems.push(Problem {
            path,
            code: ProblemCode::Invalid,
            message: format!("account '{code}' does not accept payments: choose a bank account or enable payments to it in Xero"),
        }),
        Some(_) => {}
    }
    };
    for (name, c) in &m.categories {
        usable(
            format!("categories.{name}.account_code"),
            &c.account_code,
            false,
            &mut problems,
        );
        let ok = tax_rates.iter().any(|t| {
            t["TaxType"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(&c.tax_type))
                && t["Status"] == "ACTIVE"
        });
        if !ok {
            problems.push(Problem {
                path: format!("categories.{name}.tax_type"),
                code: ProblemCode::Invalid,
                message: format!("the organisation has no active tax rate '{}'", c.tax_type),
            });
        }
    }
    for (name, t) in &m.tenders {
        usable(
            format!("tenders.{name}.account_code"),
            &t.account_code,
            true,
            &mut problems,
        );
    }
    if let Some(code) = &m.over_short_account {
        usable("over_short_account".into(), code, false, &mut problems);
    }
    if m.pos_contact_name.trim().is_empty() {
        problems.push(Problem {
            path: "pos_contact_name".into(),
            code: ProblemCode::Required,
            message: "must not be empty".into(),
        });
    }
    problems
}

/// Replaces the mappings, after checking them against what the organisation's books hold now:
/// active, non-system accounts, active tax rates, payment accounts that take payments.
#[utoipa::path(put, path = "/v1/mappings", tag = "mappings", security(("device" = [])),
    request_body(content((Mappings = "application/json"))),
    responses(
        (status = 200, description = "Stored", body = MappingsAnswer),
        (status = 400, description = "invalid_request: not JSON, a key given twice, or one mappings do not take", body = ApiError),
        (status = 409, description = "needs_reconnect or disconnected", body = ApiError),
        (status = 422, description = "invalid_request: mappings that do not fit the organisation's books, every problem by field", body = ApiError),
        DeviceRefusals,
        BodyRefusals,
    ))]
async fn write(
    State(state): State<AppState>,
    auth: DeviceAuth,
    StrictJson(m): StrictJson<Mappings>,
) -> Result<Json<MappingsAnswer>, AppError> {
    // Checked against what the books hold now, not the cache.
    let (accounts, tax_rates) = offered(&state, &auth.connection, true).await?;
    let problems = check(&m, &accounts, &tax_rates);
    if !problems.is_empty() {
        return Err(AppError::Api(
            StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::new(
                ErrorCode::InvalidRequest,
                "Some mappings do not fit the organisation's books.",
            )
            .with_problems(problems),
        ));
    }
    let body = serde_json::to_string(&m).map_err(AppError::internal)?;
    let (connection, now) = (auth.connection.id, state.clock.now());
    state
        .storage
        .call(move |s| s.put_mappings(connection, &body, now))
        .await?;
    let (accounts, tax_rates) = summary(&accounts, &tax_rates);
    Ok(Json(MappingsAnswer {
        mappings: m,
        accounts: Some(accounts),
        tax_rates: Some(tax_rates),
    }))
}
