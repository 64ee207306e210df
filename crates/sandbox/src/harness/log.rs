//! The inspection log behind `GET /_sandbox/requests`: every request the sandbox received (control
//! calls aside), oldest first, with credentials removed from headers and bodies; and behind
//! `GET /_sandbox/requests/tally`, how many answers of each status it gave.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

/// Form and JSON fields whose values are credentials.
const SECRET_FIELDS: &[&str] = &[
    "client_secret",
    "code",
    "code_verifier",
    "refresh_token",
    "access_token",
    "id_token",
    "token",
    "password",
];
const SECRET_HEADERS: &[&str] = &["authorization", "cookie", "set-cookie", "x-xero-signature"];
pub const REDACTED: &str = "[redacted]";

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub seq: u64,
    /// Which emulated provider the request was for (`xero`).
    pub provider: &'static str,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub tenant_id: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// `null` when the connection was dropped before an answer.
    pub status: Option<u16>,
}

/// The log also stays under this many bytes of bodies, so a long benchmark cannot grow it without
/// bound (a 50-invoice batch is about 25 KB).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug)]
pub struct RequestLog {
    entries: VecDeque<Entry>,
    next_seq: u64,
    capacity: usize,
    body_bytes: usize,
    /// Every answer ever given, by provider and status (`dropped` for none), never evicted: what
    /// a long run counts its `429`s by when its early entries have left the log.
    tally: BTreeMap<&'static str, BTreeMap<String, u64>>,
}

impl RequestLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            next_seq: 1,
            capacity: capacity.max(1),
            body_bytes: 0,
            tally: BTreeMap::new(),
        }
    }

    /// Records a finished request; its `seq` is given now, so a reader polling `since` never misses
    /// one that finished late.
    pub fn push(&mut self, mut entry: Entry) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        let status = entry
            .status
            .map_or_else(|| "dropped".to_string(), |s| s.to_string());
        *self
            .tally
            .entry(entry.provider)
            .or_default()
            .entry(status)
            .or_default() += 1;
        self.body_bytes += entry.body.len();
        self.entries.push_back(entry);
        while self.entries.len() > self.capacity
            || (self.body_bytes > MAX_BODY_BYTES && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.body_bytes -= old.body.len();
            }
        }
    }

    /// Answers by provider and status since the sandbox started.
    pub fn tally(&self) -> &BTreeMap<&'static str, BTreeMap<String, u64>> {
        &self.tally
    }

    pub fn since(&self, seq: u64) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|e| e.seq > seq)
            .cloned()
            .collect()
    }
}

pub fn redact_headers(headers: &axum::http::HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().to_ascii_lowercase();
            let value = if SECRET_HEADERS.contains(&name.as_str()) {
                REDACTED.to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name, value)
        })
        .collect()
}

/// The request body as text, with credential values replaced, for form and JSON bodies alike.
pub fn redact_body(content_type: Option<&str>, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let is_form = content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        return redact_form(&text);
    }
    if let Ok(mut json) = serde_json::from_str::<Value>(&text) {
        redact_json(&mut json);
        return json.to_string();
    }
    text.into_owned()
}

pub fn redact_form(text: &str) -> String {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| {
            let v = if SECRET_FIELDS.contains(&k.as_ref()) {
                REDACTED.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if SECRET_FIELDS.contains(&k.to_ascii_lowercase().as_str()) {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &str) -> Entry {
        Entry {
            seq: 0,
            provider: "xero",
            method: "GET".into(),
            path: "/".into(),
            query: None,
            tenant_id: None,
            headers: BTreeMap::new(),
            body: body.into(),
            status: Some(200),
        }
    }

    #[test]
    fn the_oldest_entries_go_first_and_sequence_numbers_keep_rising() {
        let mut log = RequestLog::new(2);
        for b in ["a", "b", "c"] {
            log.push(entry(b));
        }
        let kept: Vec<_> = log
            .since(0)
            .iter()
            .map(|e| (e.seq, e.body.clone()))
            .collect();
        assert_eq!(kept, [(2, "b".to_string()), (3, "c".to_string())]);
        assert_eq!(log.since(2).len(), 1);
        // The tally still counts the one that left.
        let mut limited = entry("d");
        limited.status = Some(429);
        log.push(limited);
        log.push(Entry {
            status: None,
            ..entry("e")
        });
        let xero = &log.tally()["xero"];
        assert_eq!(
            (xero["200"], xero["429"], xero["dropped"]),
            (3, 1, 1),
            "{xero:?}"
        );
    }

    #[test]
    fn form_credentials_are_removed() {
        let out = redact_form("grant_type=refresh_token&refresh_token=abc123&client_secret=s3cr3t");
        assert!(!out.contains("abc123") && !out.contains("s3cr3t"));
        assert!(out.contains("grant_type=refresh_token"));
    }

    #[test]
    fn json_credentials_are_removed_at_any_depth() {
        let out = redact_body(
            Some("application/json"),
            br#"{"a":{"Password":"pw1"},"b":[{"token":"t1"}]}"#,
        );
        assert!(!out.contains("pw1") && !out.contains("t1"));
    }
}
