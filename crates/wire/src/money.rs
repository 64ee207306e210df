//! Exact decimal amounts on the wire. Read from a JSON number (exactly as written, never through a
//! float) or a string, either way as a plain decimal (`-?\d+(\.\d+)?`: no exponent, no `_`, no
//! spaces); written as a string, so no JavaScript client ever parses money into a float.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serializer};
use std::str::FromStr;

pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    parse(&v).map_err(serde::de::Error::custom)
}

/// A decimal from a JSON value written as a plain decimal, or why not.
pub fn parse(v: &serde_json::Value) -> Result<Decimal, String> {
    let text = match v {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => return Err(format!("expected a decimal number, got {other}")),
    };
    if !crate::strict::is_plain_decimal(&text) {
        return Err(format!(
            "'{text}' is not a plain decimal: write digits, with a leading minus and a decimal point if need be (e.g. 1250.50)"
        ));
    }
    Decimal::from_str_exact(&text)
        .map_err(|_| format!("'{text}' has too many digits to be kept exactly"))
}

/// A decimal from a provider's answer (a tax rate from Xero), read leniently: a number in any JSON
/// form, or a string. Never for what devices send.
pub fn parse_lenient(v: &serde_json::Value) -> Result<Decimal, String> {
    let text = match v {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.trim().to_string(),
        other => return Err(format!("expected a decimal number, got {other}")),
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| format!("'{text}' is not a decimal number"))
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.is_null() {
            return Ok(None);
        }
        parse(&v).map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Line {
        #[serde(with = "crate::money")]
        amount: Decimal,
    }

    #[test]
    fn numbers_and_strings_read_exactly_and_write_as_strings() {
        for (json, want) in [
            (r#"{"amount": 0.1}"#, "0.1"),
            (r#"{"amount": "12.50"}"#, "12.50"),
            (
                r#"{"amount": 1234567890.123456789}"#,
                "1234567890.123456789",
            ),
        ] {
            let l: Line = serde_json::from_str(json).unwrap();
            assert_eq!(l.amount.to_string(), want);
        }
        assert_eq!(
            serde_json::to_string(&Line {
                amount: Decimal::new(1250, 2)
            })
            .unwrap(),
            r#"{"amount":"12.50"}"#
        );
        assert!(serde_json::from_str::<Line>(r#"{"amount": "ten"}"#).is_err());
        assert!(serde_json::from_str::<Line>(r#"{"amount": true}"#).is_err());
        for lenient in [r#""1_000""#, "1e3", r#"" 12""#, r#""+5""#, r#""1.""#] {
            assert!(
                serde_json::from_str::<Line>(&format!(r#"{{"amount": {lenient}}}"#)).is_err(),
                "{lenient} is refused"
            );
        }
        assert_eq!(
            parse_lenient(&serde_json::json!(1.5e1)).unwrap(),
            Decimal::new(15, 0)
        );
    }

    proptest::proptest! {
        /// Whatever a device writes as an amount: a decimal or a reason, never a panic, and a
        /// decimal only when it is written plainly.
        #[test]
        fn amounts_never_panic(text in r"[-+0-9._eE ]{0,40}") {
            if let Ok(d) = parse(&serde_json::Value::String(text.clone())) {
                proptest::prop_assert!(crate::strict::is_plain_decimal(&text));
                proptest::prop_assert_eq!(d, Decimal::from_str(&text).unwrap());
            }
        }
    }
}
