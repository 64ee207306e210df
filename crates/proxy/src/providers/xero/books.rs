//! What an organisation's books hold, read from Xero in the seam's neutral terms: for mappings
//! (`GET Accounts`, `GET TaxRates`) and for a till's contact field (`GET Contacts` by name).

use axum::http::StatusCode;
use ledgerlink_wire::ErrorCode;
use reqwest::Method;
use serde_json::Value;

use super::{api, Xero};
use crate::error::AppError;
use crate::providers::{BookAccount, BookKeeping, BookTaxRate, Books};
use crate::store::ConnectionRow;
use crate::AppState;
use ledgerlink_wire::documents::ContactSuggestion;

impl BookKeeping for Xero {
    async fn books(state: &AppState, connection: &ConnectionRow) -> Result<Books, AppError> {
        let accounts = read(state, connection, "Accounts").await?;
        let tax_rates = read(state, connection, "TaxRates").await?;
        Ok(Books {
            accounts: accounts.iter().map(account).collect(),
            tax_rates: tax_rates.iter().filter_map(tax_rate).collect(),
        })
    }

    /// `GET Contacts?includeArchived=true&where=Name.Contains("...")`, its first page.
    async fn contacts(
        state: &AppState,
        connection: &ConnectionRow,
        text: &str,
    ) -> Result<Vec<ContactSuggestion>, AppError> {
        let quoted = text.replace('\\', "\\\\").replace('"', "\\\"");
        let clause = format!("Name.Contains(\"{quoted}\")");
        let path = format!(
            "Contacts?includeArchived=true&page=1&where={}",
            url::form_urlencoded::byte_serialize(clause.as_bytes()).collect::<String>()
        );
        let answer = api::call(state, connection, Method::GET, &path, None, None)
            .await
            .map_err(|e| api::to_device(e, "look up the organisation's contacts"))?;
        if !answer.status.is_success() {
            return Err(AppError::api(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ProviderUnavailable,
                format!("Xero answered {} to a contact search", answer.status),
            ));
        }
        let text_of = |v: &Value| v.as_str().map(str::to_string).filter(|s| !s.is_empty());
        Ok(answer.body["Contacts"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|c| {
                        Some(ContactSuggestion {
                            name: text_of(&c["Name"])?,
                            contact_number: text_of(&c["ContactNumber"]),
                            email: text_of(&c["EmailAddress"]),
                            archived: c["ContactStatus"] == "ARCHIVED",
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// `GET {collection}`: its list.
async fn read(
    state: &AppState,
    connection: &ConnectionRow,
    collection: &str,
) -> Result<Vec<Value>, AppError> {
    let answer = api::call(state, connection, Method::GET, collection, None, None)
        .await
        .map_err(|e| api::to_device(e, "read the organisation's accounts"))?;
    if !answer.status.is_success() {
        return Err(AppError::api(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ProviderUnavailable,
            format!("Xero answered {} to GET {collection}", answer.status),
        ));
    }
    Ok(answer.body[collection]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn account(a: &Value) -> BookAccount {
    BookAccount {
        code: text(&a["Code"]),
        name: text(&a["Name"]),
        account_type: text(&a["Type"]),
        active: a["Status"] == "ACTIVE",
        system: a.get("SystemAccount").is_some_and(|s| !s.is_null()),
        takes_payments: a["Type"] == "BANK" || a["EnablePaymentsToAccount"] == true,
    }
}

/// A tax rate Xero sent without a readable rate is left out (it could not be checked).
fn tax_rate(t: &Value) -> Option<BookTaxRate> {
    Some(BookTaxRate {
        tax_type: text(&t["TaxType"]),
        name: text(&t["Name"]),
        rate: ledgerlink_wire::money::parse_lenient(&t["EffectiveRate"]).ok()?,
        active: t["Status"] == "ACTIVE",
    })
}
