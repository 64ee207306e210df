//! Strict reading of what a device sends, shared by the proxy (which refuses) and the client core
//! (which checks before it saves): JSON in which no object names a key twice, text without the
//! control and bidirectional-formatting characters that can make a name read as something it is
//! not, and amounts written as plain decimals.
//!
//! `serde_json` keeps the last of two equal keys without a word, so `{"amount": 1, "amount": 900}`
//! would be read differently by different parsers along the way. Here the document is walked once
//! for duplicates (nothing is built), then parsed as usual.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::cell::RefCell;
use std::fmt;

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON at all (serde_json's words, with line and column).
    Syntax(String),
    /// An object names `key` twice; `at` is where that object is (`invoices[0].contact`, or empty
    /// for the top level).
    DuplicateKey { at: String, key: String },
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(why) => write!(f, "the body is not JSON: {why}"),
            Self::DuplicateKey { at, key } if at.is_empty() => {
                write!(f, "the key '{key}' is given twice: give each key once")
            }
            Self::DuplicateKey { at, key } => {
                write!(
                    f,
                    "the key '{key}' is given twice in {at}: give each key once"
                )
            }
        }
    }
}

impl std::error::Error for JsonError {}

/// Parses `bytes` as JSON, refusing an object that names a key twice, at any depth.
pub fn parse_json(bytes: &[u8]) -> Result<Value, JsonError> {
    let path = RefCell::new(Vec::new());
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let walked = Walk {
        path: &path,
        found: &found,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(dup) = found.into_inner() {
        return Err(dup);
    }
    walked.map_err(|e| JsonError::Syntax(e.to_string()))?;
    serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Like [`parse_json`], then reads the value, which must be an object, as `T` (whose own rules name
/// unknown fields). An object, because serde would also read a struct from a list of its fields in
/// order, and `[]` is not a request.
pub fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let value = parse_json(bytes)?;
    if !value.is_object() {
        return Err(JsonError::Syntax("expected a JSON object".into()));
    }
    T::deserialize(&value).map_err(|e| JsonError::Syntax(e.to_string()))
}

enum Segment {
    Key(String),
    Index(usize),
}

fn describe(path: &[Segment]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Walks one JSON value without building it, failing at the first object with a repeated key.
#[derive(Clone, Copy)]
struct Walk<'a> {
    path: &'a RefCell<Vec<Segment>>,
    found: &'a RefCell<Option<JsonError>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.path.borrow_mut().push(Segment::Index(i));
            let next = seq.next_element_seed(self)?;
            self.path.borrow_mut().pop();
            if next.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Objects here are small: a list beats a hash set.
        let mut keys: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.contains(&key) {
                *self.found.borrow_mut() = Some(JsonError::DuplicateKey {
                    at: describe(&self.path.borrow()),
                    key,
                });
                return Err(serde::de::Error::custom("duplicate key"));
            }
            self.path.borrow_mut().push(Segment::Key(key.clone()));
            map.next_value_seed(self)?;
            self.path.borrow_mut().pop();
            keys.push(key);
        }
        Ok(())
    }
}

/// The bidirectional formatting characters: they reorder how the text around them is shown (a
/// right-to-left override makes "Front counter" show as something else).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first character not allowed in a name (a device, contact, register, category or tender
/// name, a reference, a code): C0 and C1 controls and the bidirectional controls.
pub fn forbidden_in_name(text: &str) -> Option<char> {
    text.chars().find(|&c| c.is_control() || is_bidi_control(c))
}

/// The first character not allowed in free text (descriptions, notes): as for names, except that
/// line feeds and tabs are allowed.
pub fn forbidden_in_text(text: &str) -> Option<char> {
    text.chars()
        .find(|&c| (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c))
}

/// How a forbidden character is named in a message: `U+202E`.
pub fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// Whether `text` is an amount as devices write it: `-?\d+(\.\d+)?` (no exponent, no sign but a
/// leading minus, no separators, no spaces).
pub fn is_plain_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_is_named_with_where_it_is() {
        let e =
            parse_json(br#"{"invoices": [{"contact": {"name": "a", "name": "b"}}]}"#).unwrap_err();
        assert_eq!(
            e,
            JsonError::DuplicateKey {
                at: "invoices[0].contact".into(),
                key: "name".into()
            }
        );
        assert!(e
            .to_string()
            .contains("'name' is given twice in invoices[0].contact"));
        let top = parse_json(br#"{"a": 1, "a": 2}"#).unwrap_err();
        assert_eq!(
            top.to_string(),
            "the key 'a' is given twice: give each key once"
        );
        // Equal keys in different objects are fine, and numbers keep their exact text.
        let v = parse_json(br#"[{"a": 1.10}, {"a": 2}]"#).unwrap();
        assert_eq!(v[0]["a"].to_string(), "1.10");
        assert!(matches!(parse_json(b"{\"a\": "), Err(JsonError::Syntax(_))));
        assert!(matches!(parse_json(b"{} {}"), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn a_request_is_an_object_not_a_list_of_its_fields() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Confirm {
            #[serde(default)]
            confirm: bool,
        }
        assert!(
            from_json::<Confirm>(br#"{"confirm": true}"#)
                .unwrap()
                .confirm
        );
        assert!(
            serde_json::from_slice::<Confirm>(b"[true]").is_ok(),
            "serde alone takes it"
        );
        assert!(from_json::<Confirm>(b"[true]").is_err());
        assert!(from_json::<Confirm>(b"[]").is_err());
    }

    #[test]
    fn escaped_keys_are_compared_as_the_text_they_stand_for() {
        assert!(matches!(
            parse_json(br#"{"name": 1, "n\u0061me": 2}"#),
            Err(JsonError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn names_refuse_controls_and_bidi_overrides_and_text_allows_lines_and_tabs() {
        assert_eq!(forbidden_in_name("Front counter"), None);
        assert_eq!(forbidden_in_name("Front \u{202E}retnuoc"), Some('\u{202E}'));
        assert_eq!(forbidden_in_name("a\u{0085}b"), Some('\u{0085}'));
        assert_eq!(forbidden_in_name("a\nb"), Some('\n'));
        assert_eq!(forbidden_in_name("Café – 2×"), None);
        assert_eq!(forbidden_in_text("two\nlines\tand a tab"), None);
        assert_eq!(forbidden_in_text("bell\u{7}"), Some('\u{7}'));
        assert_eq!(forbidden_in_text("\u{2066}isolate"), Some('\u{2066}'));
        assert_eq!(code_point('\u{202E}'), "U+202E");
    }

    #[test]
    fn amounts_are_plain_decimals() {
        for ok in ["0", "12", "12.50", "-3.1", "0001"] {
            assert!(is_plain_decimal(ok), "{ok}");
        }
        for bad in [
            "", "-", "1_000", "1e5", "+1", " 1", "1.", ".5", "1.2.3", "١٢", "1,5",
        ] {
            assert!(!is_plain_decimal(bad), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any bytes at all: JSON or a reason, never a panic.
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse_json(&bytes);
        }

        /// JSON-looking text with repeated keys, nesting and odd numbers.
        #[test]
        fn json_like_text_never_panics(text in r#"[\[\]{}",:a-c0-9.eE+\- ]{0,64}"#) {
            let _ = parse_json(text.as_bytes());
        }

        /// The amount syntax is exactly `-?\d+(\.\d+)?`.
        #[test]
        fn plain_decimals_are_exactly_the_pattern(text in r"[-+0-9._eE ]{0,12}") {
            let by_hand = {
                let t = text.strip_prefix('-').unwrap_or(&text);
                let mut parts = t.splitn(2, '.');
                let whole = parts.next().unwrap_or("");
                let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
                ok(whole) && parts.next().is_none_or(ok)
            };
            proptest::prop_assert_eq!(is_plain_decimal(&text), by_hand);
        }
    }
}
