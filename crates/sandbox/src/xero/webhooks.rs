//! Webhooks as Xero sends them: events on invoice and contact creates and updates, posted to the
//! app's webhook URL with `x-xero-signature` (base64 HMAC-SHA256 of the raw body under the app's
//! webhook key), retried with decreasing frequency when the receiver does not answer `200`; and the
//! intent-to-receive check.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::harness::hooks;
use crate::harness::secret::Secret;
use crate::settings::WebhookSettings;
use crate::xero::model::World;

/// One change to report.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub category: &'static str,
    pub kind: &'static str,
    pub resource_id: Uuid,
}

impl Event {
    pub fn invoice(kind: &'static str, id: Uuid) -> Self {
        Self {
            category: "INVOICE",
            kind,
            resource_id: id,
        }
    }

    pub fn credit_note(kind: &'static str, id: Uuid) -> Self {
        Self {
            category: "CREDITNOTE",
            kind,
            resource_id: id,
        }
    }

    pub fn contact(kind: &'static str, id: Uuid) -> Self {
        Self {
            category: "CONTACT",
            kind,
            resource_id: id,
        }
    }
}

/// An app to notify about a tenant's changes.
#[derive(Debug, Clone)]
pub struct Target {
    pub client_id: String,
    pub url: String,
    pub key: Secret,
}

/// The apps connected to `tenant` that registered a webhook URL.
pub fn targets(world: &World, tenant: Uuid) -> Vec<Target> {
    world
        .apps
        .values()
        .filter(|app| {
            world
                .connections
                .iter()
                .any(|c| c.client_id == app.client_id && c.tenant_id == tenant)
        })
        .filter_map(|app| {
            Some(Target {
                client_id: app.client_id.clone(),
                url: app.webhook_url.clone()?,
                key: app.webhook_key.clone(),
            })
        })
        .collect()
}

pub fn sign(key: &Secret, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).expect("any key length");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// One delivery attempt, as `GET /_sandbox/webhooks/deliveries` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub url: String,
    pub first_event_sequence: u64,
    pub last_event_sequence: u64,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub delivered: bool,
}

pub struct Outbox {
    settings: WebhookSettings,
    sequences: Mutex<HashMap<String, u64>>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    client: reqwest::Client,
}

fn entropy() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..20)
        .map(|_| rng.random_range(b'A'..=b'Z') as char)
        .collect()
}

impl Outbox {
    pub fn new(settings: WebhookSettings) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .expect("a plain HTTP client builds");
        Self {
            settings,
            sequences: Mutex::new(HashMap::new()),
            attempts: Arc::new(Mutex::new(Vec::new())),
            client,
        }
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends `events` of `tenant` to every target, in the background.
    pub fn emit(
        &self,
        targets: Vec<Target>,
        tenant: Uuid,
        base_url: &str,
        events: &[Event],
        now: DateTime<Utc>,
    ) {
        if events.is_empty() {
            return;
        }
        for target in targets {
            let first = {
                let mut seqs = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
                let next = seqs.entry(target.client_id.clone()).or_insert(0);
                let first = *next + 1;
                *next += events.len() as u64;
                first
            };
            let last = first + events.len() as u64 - 1;
            let items: Vec<_> = events
                .iter()
                .map(|e| {
                    let resource = if e.category == "INVOICE" { "Invoices" } else { "Contacts" };
                    json!({
                        "resourceUrl": format!("{base_url}/api.xro/2.0/{resource}/{}", e.resource_id),
                        "resourceId": e.resource_id,
                        "eventDateUtc": now.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
                        "eventType": e.kind,
                        "eventCategory": e.category,
                        "tenantId": tenant,
                        "tenantType": "ORGANISATION",
                    })
                })
                .collect();
            let body = json!({
                "events": items,
                "firstEventSequence": first,
                "lastEventSequence": last,
                "entropy": entropy(),
            })
            .to_string();
            tokio::spawn(deliver(
                self.client.clone(),
                self.settings,
                self.attempts.clone(),
                target,
                body,
                (first, last),
            ));
        }
    }

    /// Xero's intent-to-receive check: an empty event list with a good signature must get `200`,
    /// the same with a bad signature `401`.
    pub async fn intent(&self, url: &str, key: &Secret) -> (Option<u16>, Option<u16>) {
        let body = json!({"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": entropy()})
            .to_string();
        let good = sign(key, body.as_bytes());
        let bad = sign(
            &Secret::new(format!("not-{}", key.expose())),
            body.as_bytes(),
        );
        let post = |signature: String| {
            self.client
                .post(url)
                .header("content-type", "application/json")
                .header("x-xero-signature", signature)
                .body(body.clone())
                .send()
        };
        let good_status = post(good).await.ok().map(|r| r.status().as_u16());
        let bad_status = post(bad).await.ok().map(|r| r.status().as_u16());
        (good_status, bad_status)
    }
}

async fn deliver(
    client: reqwest::Client,
    settings: WebhookSettings,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    target: Target,
    body: String,
    (first, last): (u64, u64),
) {
    let signature = sign(&target.key, body.as_bytes());
    let started = Instant::now();
    let mut delay = Duration::from_millis(settings.retry_initial_ms.max(1));
    // Retried with decreasing frequency until the receiver answers 200, for a day at most.
    let next_wait = |_: u32| {
        let wait = delay;
        delay = (delay * 2).min(Duration::from_millis(settings.retry_max_ms.max(1)));
        (started.elapsed() + wait <= Duration::from_secs(settings.give_up_after_seconds))
            .then_some(wait)
    };
    let record = |tried: hooks::Tried| {
        attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Attempt {
                url: target.url.clone(),
                first_event_sequence: first,
                last_event_sequence: last,
                attempt: tried.attempt,
                status: tried.status,
                error: tried.error,
                delivered: tried.taken,
            });
    };
    hooks::post(
        &client,
        &target.url,
        &[("x-xero-signature", signature)],
        &body,
        |status| status == 200,
        next_wait,
        record,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_base64_hmac_sha256_of_the_raw_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = sign(&Secret::new("Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            sig,
            STANDARD.encode(hex(
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            ))
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
