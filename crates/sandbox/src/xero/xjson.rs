//! Xero's JSON conventions: `/Date(ms+0000)/` dates, PascalCase fields read case-insensitively (Xero's
//! .NET binder does), exact decimal numbers, and the response envelope.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Number, Value};
use std::str::FromStr;
use uuid::Uuid;

/// `/Date(1552262400000+0000)/`
pub fn ms_date(t: DateTime<Utc>) -> String {
    format!("/Date({}+0000)/", t.timestamp_millis())
}

pub fn ms_day(d: NaiveDate) -> String {
    ms_date(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists")))
}

/// Parses what Xero accepts in request date fields: `/Date(ms)/`, `/Date(ms+0000)/`, `YYYY-MM-DD` and
/// `YYYY-MM-DDTHH:MM:SS`.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    parse_datetime(text).map(|t| t.date_naive())
}

pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|s| s.strip_suffix(")/"))
    {
        let digits_end = inner
            .char_indices()
            .find(|&(i, c)| i > 0 && (c == '+' || c == '-'))
            .map_or(inner.len(), |(i, _)| i);
        let ms: i64 = inner[..digits_end].parse().ok()?;
        return Utc.timestamp_millis_opt(ms).single();
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_rfc2822(text))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Connection dates: no zone, seven fractional digits (`2019-12-07T18:46:19.5165400`).
pub fn connection_date(t: DateTime<Utc>) -> String {
    format!(
        "{}{:07}",
        t.format("%Y-%m-%dT%H:%M:%S."),
        t.timestamp_subsec_nanos() / 100
    )
}

/// A field of a JSON object, its name matched case-insensitively.
pub fn field<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(name)
        .or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// A text field; numbers and booleans are accepted as their text, as Xero's binder does.
pub fn text(obj: &Value, name: &str) -> Option<String> {
    match field(obj, name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Why a field could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum FieldError {
    /// Present but not of the expected kind (the text says what was there).
    Invalid(String),
}

/// An exact decimal from a JSON number or numeric string. `Ok(None)` when absent.
pub fn decimal(obj: &Value, name: &str) -> Result<Option<Decimal>, FieldError> {
    let Some(v) = field(obj, name) else {
        return Ok(None);
    };
    let raw = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
        Value::String(_) => return Ok(None),
        other => return Err(FieldError::Invalid(other.to_string())),
    };
    Decimal::from_str(&raw)
        .or_else(|_| Decimal::from_scientific(&raw))
        .map(Some)
        .map_err(|_| FieldError::Invalid(raw))
}

pub fn boolean(obj: &Value, name: &str) -> Option<bool> {
    match field(obj, name)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s
            .parse::<bool>()
            .ok()
            .or(match s.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }),
        _ => None,
    }
}

pub fn uuid_field(obj: &Value, name: &str) -> Result<Option<Uuid>, FieldError> {
    match text(obj, name) {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => Uuid::parse_str(s.trim())
            .map(Some)
            .map_err(|_| FieldError::Invalid(s)),
    }
}

/// A JSON number carrying exactly this decimal's digits (serde_json's `arbitrary_precision`).
pub fn num(d: Decimal) -> Value {
    Value::Number(Number::from_str(&d.to_string()).expect("a decimal is a JSON number"))
}

/// Money as Xero shows it: two decimal places.
pub fn money(d: Decimal) -> Value {
    let mut d = d.round_dp(2);
    d.rescale(2);
    num(d)
}

/// Xero's response envelope: `{"Id", "Status": "OK", "ProviderName", "DateTimeUTC", <Collection>: [...]}`.
pub fn envelope(provider: &str, now: DateTime<Utc>, collection: &str, items: Vec<Value>) -> Value {
    let mut map = Map::new();
    map.insert("Id".into(), Value::String(Uuid::new_v4().to_string()));
    map.insert("Status".into(), Value::String("OK".into()));
    map.insert("ProviderName".into(), Value::String(provider.to_string()));
    map.insert("DateTimeUTC".into(), Value::String(ms_date(now)));
    map.insert(collection.into(), Value::Array(items));
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_round_trip_in_xero_form() {
        let d = NaiveDate::from_ymd_opt(2019, 3, 11).unwrap();
        assert_eq!(ms_day(d), "/Date(1552262400000+0000)/");
        assert_eq!(parse_date("/Date(1552262400000+0000)/"), Some(d));
        assert_eq!(parse_date("/Date(1552262400000)/"), Some(d));
        assert_eq!(parse_date("2019-03-11"), Some(d));
        assert_eq!(parse_date("2019-03-11T00:00:00"), Some(d));
        assert_eq!(parse_date("11/03/2019"), None);
    }

    #[test]
    fn connection_dates_have_no_zone_and_seven_digits() {
        let t = Utc.timestamp_nanos(1_575_744_379_516_540_000);
        assert_eq!(connection_date(t), "2019-12-07T18:46:19.5165400");
    }

    #[test]
    fn decimals_are_exact_and_fields_case_insensitive() {
        let v: Value = serde_json::from_str(r#"{"unitamount": 0.1, "Quantity": "3"}"#).unwrap();
        assert_eq!(decimal(&v, "UnitAmount").unwrap(), Some(Decimal::new(1, 1)));
        assert_eq!(decimal(&v, "Quantity").unwrap(), Some(Decimal::from(3)));
        let bad = json!({"UnitAmount": "ten"});
        assert!(decimal(&bad, "UnitAmount").is_err());
        assert_eq!(money(Decimal::new(115, 0)).to_string(), "115.00");
    }
}
