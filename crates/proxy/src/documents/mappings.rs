//! `GET /v1/mappings` (the mappings, and the accounts and tax rates the organisation offers) and
//! `PUT /v1/mappings` (checked against what the organisation's books hold, read from its provider: active, non-system accounts; existing tax
//! rates; payment accounts that accept payments).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ledgerlink_wire::documents::{
    Mappings, MappingsAnswer, OfferedAccount, OfferedTaxRate, Problem, ProblemCode,
};
use ledgerlink_wire::{ApiError, ErrorCode};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::body::{Params, StrictJson};
use crate::device::DeviceAuth;
use crate::error::AppError;
use crate::openapi::{BodyRefusals, DeviceRefusals};
use crate::providers::Books;
use crate::store::ConnectionRow;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(read, write))
}

/// How long the organisation's accounts and tax rates are kept before asking its provider again.
const OFFER_TTL_SECS: i64 = 600;

/// The organisation's books (accounts and tax rates) for mapping: from a cache of ten minutes, or
/// from the provider when `refresh` (or the cache is cold).
pub(crate) async fn offered(
    state: &AppState,
    connection: &ConnectionRow,
    refresh: bool,
) -> Result<Books, AppError> {
    let now = state.clock.now();
    if !refresh {
        let cache = state.offers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, books)) = cache.get(&connection.id) {
            if (now - *at).num_seconds() < OFFER_TTL_SECS {
                return Ok(books.clone());
            }
        }
    }
    let books = crate::providers::books(state, connection).await?;
    state
        .offers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(connection.id, (now, books.clone()));
    Ok(books)
}

/// What the organisation offers for mapping: active, non-system accounts and active tax rates.
fn summary(books: &Books) -> (Vec<OfferedAccount>, Vec<OfferedTaxRate>) {
    let accounts = books
        .accounts
        .iter()
        .filter(|a| a.active && !a.system)
        .map(|a| OfferedAccount {
            code: a.code.clone(),
            name: a.name.clone(),
            account_type: a.account_type.clone(),
            takes_payments: a.takes_payments,
        })
        .collect();
    let tax_rates = books
        .tax_rates
        .iter()
        .filter(|t| t.active)
        .map(|t| OfferedTaxRate {
            tax_type: t.tax_type.clone(),
            name: t.name.clone(),
            rate: t.rate,
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
    crate::providers::maps(&auth.connection)?;
    let mappings = super::mappings(&state, auth.connection.id).await?;
    let mut out = MappingsAnswer {
        mappings,
        accounts: None,
        tax_rates: None,
    };
    if q.offered.unwrap_or(true) {
        let books = offered(&state, &auth.connection, q.refresh.unwrap_or(false)).await?;
        let (accounts, tax_rates) = summary(&books);
        out.accounts = Some(accounts);
        out.tax_rates = Some(tax_rates);
    }
    Ok(Json(out))
}

fn check(m: &Mappings, books: &Books) -> Vec<Problem> {
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
        books
            .accounts
            .iter()
            .find(|a| a.code.eq_ignore_ascii_case(code))
    };
    let usable = |path: String, code: &str, payments: bool, problems: &mut Vec<Problem>| {
        match account(code) {
        None => problems.push(Problem { path, code: ProblemCode::Invalid, message: format!("the organisation has no account '{code}'") }),
        Some(a) if !a.active => {
            problems.push(Problem { path, code: ProblemCode::Invalid, message: format!("account '{code}' is archived") })
        }
        Some(a) if a.system => problems.push(Problem {
            path,
            code: ProblemCode::Invalid,
            message: format!("account '{code}' is a system account and cannot be posted to"),
        }),
        Some(a) if payments && !a.takes_payments => problems.push(Problem {
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
        let ok = books
            .tax_rates
            .iter()
            .any(|t| t.active && t.tax_type.eq_ignore_ascii_case(&c.tax_type));
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
    crate::providers::maps(&auth.connection)?;
    // Checked against what the books hold now, not the cache.
    let books = offered(&state, &auth.connection, true).await?;
    let problems = check(&m, &books);
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
    let (connection, now) = (auth.connection.id, state.clock.now());
    state
        .storage
        .mappings()
        .put_mappings(connection, &m, now)
        .await?;
    let (accounts, tax_rates) = summary(&books);
    Ok(Json(MappingsAnswer {
        mappings: m,
        accounts: Some(accounts),
        tax_rates: Some(tax_rates),
    }))
}

#[cfg(test)]
mod tests {
    //! Mappings checked against books in the seam's neutral terms: no provider involved.
    use super::*;
    use crate::providers::{BookAccount, BookTaxRate};
    use ledgerlink_wire::documents::{CategoryMapping, TenderMapping};
    use rust_decimal::Decimal;

    fn account(code: &str, active: bool, system: bool, takes_payments: bool) -> BookAccount {
        BookAccount {
            code: code.into(),
            name: format!("Account {code}"),
            account_type: "REVENUE".into(),
            active,
            system,
            takes_payments,
        }
    }

    fn books() -> Books {
        Books {
            accounts: vec![
                account("200", true, false, false),
                account("090", true, false, true),
                account("260", false, false, false),
                account("820", true, true, false),
            ],
            tax_rates: vec![
                BookTaxRate {
                    tax_type: "OUTPUT2".into(),
                    name: "15% GST on Income".into(),
                    rate: Decimal::new(15, 0),
                    active: true,
                },
                BookTaxRate {
                    tax_type: "OLDRATE".into(),
                    name: "Gone".into(),
                    rate: Decimal::new(125, 1),
                    active: false,
                },
            ],
        }
    }

    fn mappings(category: (&str, &str), tender: &str) -> Mappings {
        let mut m = Mappings::default();
        m.categories.insert(
            "Food".into(),
            CategoryMapping {
                account_code: category.0.into(),
                tax_type: category.1.into(),
            },
        );
        m.tenders.insert(
            "Card".into(),
            TenderMapping {
                account_code: tender.into(),
            },
        );
        m
    }

    #[test]
    fn what_the_books_hold_is_accepted_in_any_case() {
        assert_eq!(
            check(&mappings(("200", "output2"), "090"), &books()),
            vec![]
        );
    }

    #[test]
    fn archived_system_missing_and_non_payment_accounts_and_inactive_rates_are_refused() {
        let problems = |m: Mappings| -> Vec<(String, String)> {
            check(&m, &books())
                .into_iter()
                .map(|p| (p.path, p.message))
                .collect()
        };
        assert_eq!(
            problems(mappings(("260", "OLDRATE"), "200")),
            vec![
                (
                    "categories.Food.account_code".into(),
                    "account '260' is archived".into()
                ),
                (
                    "categories.Food.tax_type".into(),
                    "the organisation has no active tax rate 'OLDRATE'".into()
                ),
                ("tenders.Card.account_code".into(), "account '200' does not accept payments: choose a bank account or enable payments to it in Xero".into()),
            ]
        );
        assert_eq!(
            problems(mappings(("820", "OUTPUT2"), "999")),
            vec![
                (
                    "categories.Food.account_code".into(),
                    "account '820' is a system account and cannot be posted to".into()
                ),
                (
                    "tenders.Card.account_code".into(),
                    "the organisation has no account '999'".into()
                ),
            ]
        );
    }

    #[test]
    fn only_active_non_system_accounts_and_active_rates_are_offered() {
        let (accounts, rates) = summary(&books());
        let codes: Vec<&str> = accounts.iter().map(|a| a.code.as_str()).collect();
        assert_eq!(codes, ["200", "090"]);
        assert!(accounts[1].takes_payments);
        assert_eq!(rates.len(), 1);
        assert_eq!(rates[0].tax_type, "OUTPUT2");
    }
}
