//! `POST /webhooks/xero`: Xero's webhooks. The signature (`x-xero-signature`, base64 HMAC-SHA256 of
//! the raw body under the webhooks key) is checked in constant time; the answer (200, or 401 for a
//! bad signature, empty body either way, as the intent-to-receive check expects) goes out at once and
//! the events are processed after it: a changed invoice is looked up and the device that pushed it
//! hears that it was paid, voided, or that its amount due changed. An event Xero sends again (to
//! this replica or another) is taken in once.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use ledgerlink_wire::documents::{DocumentKind, DocumentState};
use ledgerlink_wire::ConnectionStatus;
use reqwest::Method;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::Xero;
use crate::providers::{WebhookEvent, Webhooks};
use crate::store::{DocumentUpdate, EventBody, ProviderNews};
use crate::AppState;

impl Webhooks for Xero {
    fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
        let given = headers
            .get("x-xero-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        signature_ok(key, body, given)
    }

    fn events(body: &[u8]) -> Vec<WebhookEvent> {
        let payload: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let text = |e: &Value, f: &str| e[f].as_str().unwrap_or_default().to_string();
        payload["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .map(|e| WebhookEvent {
                        id: [
                            "tenantId",
                            "eventCategory",
                            "eventType",
                            "resourceId",
                            "eventDateUtc",
                        ]
                        .map(|f| text(e, f))
                        .join("/"),
                        tenant_id: text(e, "tenantId"),
                        category: text(e, "eventCategory"),
                        change: text(e, "eventType"),
                        resource_id: text(e, "resourceId"),
                        status: None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn signature_ok(key: &[u8], body: &[u8], given: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    bool::from(expected.as_bytes().ct_eq(given.trim().as_bytes()))
}

pub async fn receive(state: AppState, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(key) = state.settings.providers.xero.webhook_key.clone() else {
        tracing::warn!("a webhook arrived but no webhooks key is configured (--xero-webhook-key)");
        return StatusCode::UNAUTHORIZED;
    };
    if !Xero::verify(key.expose().as_bytes(), &headers, &body) {
        crate::metrics::Metrics::count(&state.metrics.webhooks, "xero", "bad_signature");
        return StatusCode::UNAUTHORIZED;
    }
    crate::metrics::Metrics::count(&state.metrics.webhooks, "xero", "verified");
    let events = Xero::events(&body);
    if !events.is_empty() {
        // Answer within Xero's 5 seconds; look things up afterwards.
        tokio::spawn(async move {
            for event in events {
                match event.first_sighting(&state, "xero").await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Sent again, to this replica or another.
                        crate::metrics::Metrics::count(
                            &state.metrics.webhooks,
                            "xero",
                            "duplicate",
                        );
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a webhook event could not be recorded");
                        continue;
                    }
                }
                if let Err(e) = process(&state, &event).await {
                    tracing::warn!(error = %e, "a webhook event could not be processed");
                    // Xero had its 200 already and will not send it again; a copy that comes
                    // anyway is welcome.
                    let _ = event.forget_sighting(&state, "xero").await;
                }
            }
        });
    }
    StatusCode::OK
}

async fn process(state: &AppState, event: &WebhookEvent) -> anyhow::Result<()> {
    // A CREATE is the invoice we just sent: the device already knows it.
    if event.category != "INVOICE" || event.change != "UPDATE" {
        return Ok(());
    }
    let (Ok(tenant), Ok(invoice_id)) = (
        Uuid::parse_str(&event.tenant_id),
        Uuid::parse_str(&event.resource_id),
    ) else {
        return Ok(());
    };
    let connections = state.storage.connections().connections().await?;
    let Some(connection) = connections.into_iter().find(|c| {
        c.provider == "xero"
            && c.tenant_id == tenant.to_string()
            && c.status == ConnectionStatus::Connected
    }) else {
        return Ok(());
    };
    let id = connection.id;
    let docs = state
        .storage
        .documents()
        .documents_by_provider_id(id, &invoice_id.to_string())
        .await?;
    let docs: Vec<_> = docs
        .into_iter()
        .filter(|d| matches!(d.kind, DocumentKind::Invoice | DocumentKind::Shift))
        .collect();
    if docs.is_empty() {
        return Ok(()); // not one of ours
    }
    let answer = crate::providers::xero::api::call(
        state,
        &connection,
        Method::GET,
        &format!("Invoices/{invoice_id}"),
        None,
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !answer.status.is_success() {
        anyhow::bail!(
            "Xero answered {} to GET Invoices/{invoice_id}",
            answer.status
        );
    }
    let invoice = &answer.body["Invoices"][0];
    let status = invoice["Status"].as_str().unwrap_or_default();
    let new_state = match status {
        "PAID" => Some(DocumentState::Paid),
        "VOIDED" | "DELETED" => Some(DocumentState::Voided),
        _ => None,
    };
    let now = state.clock.now();
    for doc in docs {
        match new_state {
            Some(s) if s != doc.state => {
                let update = DocumentUpdate {
                    id: doc.id,
                    state: s,
                    provider_id: None,
                    provider_number: None,
                    message: doc.message.clone(),
                    attempt: false,
                };
                state
                    .storage
                    .documents()
                    .update_documents(None, &[update], now)
                    .await?;
            }
            _ => {
                let money = |v: &Value| ledgerlink_wire::money::parse_lenient(v).ok();
                let body = EventBody::Provider(ProviderNews {
                    document: doc.view(),
                    provider_status: Some(status.to_string()),
                    xero_status: Some(status.to_string()),
                    amount_due: money(&invoice["AmountDue"]),
                    amount_paid: money(&invoice["AmountPaid"]),
                });
                state
                    .storage
                    .events()
                    .record_event(&doc, &body, now)
                    .await?;
            }
        }
    }
    state.events_ready.notify_waiters();
    Ok(())
}
