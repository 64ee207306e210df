//! What every list endpoint shares: `where`, `If-Modified-Since`, `order`, and paging.

use serde_json::{json, Value};
use std::cmp::Ordering;

use super::{Ctx, Reply};
use crate::xero::where_filter::Filter;
use crate::xero::xjson::{field, parse_datetime};

/// Filters, orders and pages rendered resources, then wraps them in Xero's envelope.
pub fn list(ctx: &Ctx, collection: &str, mut items: Vec<Value>) -> Result<Reply, Reply> {
    if let Some(text) = ctx.param("where").filter(|w| !w.trim().is_empty()) {
        let filter: Filter = text.parse().map_err(|e: String| {
            Reply::error(
                axum::http::StatusCode::BAD_REQUEST,
                16,
                "QueryParseException",
                &format!("The where clause could not be parsed: {e}"),
            )
        })?;
        items.retain(|v| filter.matches(v));
    }
    if let Some(since) = ctx
        .headers
        .get("if-modified-since")
        .and_then(|v| v.to_str().ok())
    {
        let since = parse_datetime(since).ok_or_else(|| {
            Reply::bad_request("If-Modified-Since must be a date such as 2024-01-31T00:00:00")
        })?;
        items.retain(|v| {
            field(v, "UpdatedDateUTC")
                .and_then(Value::as_str)
                .and_then(parse_datetime)
                .is_some_and(|t| t > since)
        });
    }
    if let Some(order) = ctx.param("order").filter(|o| !o.trim().is_empty()) {
        let mut parts = order.split_whitespace();
        let name = parts.next().unwrap_or_default().to_string();
        let descending = parts.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
        items.sort_by(|a, b| {
            let o = compare(field(a, &name), field(b, &name));
            if descending {
                o.reverse()
            } else {
                o
            }
        });
    }
    let mut body = crate::xero::xjson::envelope(ctx.provider(), ctx.now, collection, Vec::new());
    if let Some(page) = ctx.param("page") {
        let page: usize = page
            .parse()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| Reply::bad_request("page must be a whole number from 1"))?;
        let size: usize = match ctx.param("pageSize") {
            None => 100,
            Some(s) => s
                .parse()
                .ok()
                .filter(|s| (1..=1000).contains(s))
                .ok_or_else(|| Reply::bad_request("pageSize must be between 1 and 1000"))?,
        };
        let count = items.len();
        body["pagination"] = json!({
            "page": page,
            "pageSize": size,
            "pageCount": count.div_ceil(size),
            "itemCount": count,
        });
        items = items
            .into_iter()
            .skip((page - 1) * size)
            .take(size)
            .collect();
    }
    body[collection] = Value::Array(items);
    Ok(Reply::ok(body))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let x: rust_decimal::Decimal = x.to_string().parse().unwrap_or_default();
            let y: rust_decimal::Decimal = y.to_string().parse().unwrap_or_default();
            x.cmp(&y)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => {
            match (
                parse_datetime(x).filter(|_| x.starts_with("/Date(")),
                parse_datetime(y),
            ) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => x.to_lowercase().cmp(&y.to_lowercase()),
            }
        }
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        _ => Ordering::Equal,
    }
}
