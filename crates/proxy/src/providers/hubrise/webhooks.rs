//! `POST /webhooks/hubrise`: HubRise's callbacks. Each carries one event, signed with our client
//! secret (`X-HubRise-Hmac-SHA256`: hex HMAC-SHA256 of the raw body), checked in constant time. An
//! order's new status is kept on the document (`provider_status`) and told to the device that
//! pushed it, once however often HubRise sends it (its `id` is remembered across replicas); the document stays `sent`. The answer comes
//! after the event is recorded: a 503 when it could not be, so HubRise sends it again.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use ledgerlink_wire::documents::DocumentKind;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::HubRise;
use crate::providers::{WebhookEvent, Webhooks};
use crate::store::{EventBody, ProviderNews};
use crate::AppState;

impl Webhooks for HubRise {
    fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
        let given = headers
            .get("x-hubrise-hmac-sha256")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(body);
        let expected = hex::encode(mac.finalize().into_bytes());
        bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }

    /// The one event of a callback: an order's update, with the location and the new status.
    fn events(body: &[u8]) -> Vec<WebhookEvent> {
        let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let text = |v: &Value| v.as_str().map(str::to_string);
        let (Some(location), Some(category), Some(change)) = (
            text(&event["location_id"]),
            text(&event["resource_type"]),
            text(&event["event_type"]),
        ) else {
            return Vec::new();
        };
        let resource_id = text(&event["order_id"])
            .or_else(|| text(&event["new_state"]["id"]))
            .unwrap_or_default();
        vec![WebhookEvent {
            id: text(&event["id"]).unwrap_or_default(),
            tenant_id: location,
            category,
            change,
            resource_id,
            status: text(&event["new_state"]["status"]),
        }]
    }
}

pub async fn receive(state: AppState, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(secret) = state.settings.providers.hubrise.client_secret.clone() else {
        return StatusCode::NOT_FOUND; // HubRise is not set up here
    };
    if !HubRise::verify(secret.expose().as_bytes(), &headers, &body) {
        tracing::warn!("a HubRise callback with a bad signature was refused");
        crate::metrics::Metrics::count(&state.metrics.webhooks, "hubrise", "bad_signature");
        return StatusCode::UNAUTHORIZED;
    }
    crate::metrics::Metrics::count(&state.metrics.webhooks, "hubrise", "verified");
    for event in HubRise::events(&body) {
        // A callback HubRise sends again (it heard no answer in time, or copies went to two
        // replicas) is taken in once; an old one replayed never takes a status back.
        let first = if event.id.is_empty() {
            Ok(true)
        } else {
            event.first_sighting(&state, "hubrise").await
        };
        let handled = match first {
            Ok(false) => {
                crate::metrics::Metrics::count(&state.metrics.webhooks, "hubrise", "duplicate");
                Ok(())
            }
            Ok(true) => process(&state, &event).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = handled {
            tracing::warn!(error = %e, "a HubRise callback could not be recorded: HubRise will send it again");
            if !event.id.is_empty() {
                let _ = event.forget_sighting(&state, "hubrise").await;
            }
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    StatusCode::OK
}

async fn process(state: &AppState, event: &WebhookEvent) -> anyhow::Result<()> {
    let (true, Some(status)) = (event.category == "order", event.status.clone()) else {
        return Ok(()); // only orders' statuses are followed
    };
    let connections = state.storage.connections().connections().await?;
    let now = state.clock.now();
    let mut told = false;
    for connection in connections
        .into_iter()
        .filter(|c| c.provider == "hubrise" && c.tenant_id == event.tenant_id)
    {
        let (id, order) = (connection.id, event.resource_id.clone());
        let docs = state
            .storage
            .documents()
            .documents_by_provider_id(id, &order)
            .await?;
        for doc in docs.into_iter().filter(|d| d.kind == DocumentKind::Order) {
            let mut view = doc.view();
            view.provider_status = Some(status.clone());
            let body = EventBody::Provider(ProviderNews {
                document: view,
                provider_status: Some(status.clone()),
                xero_status: None,
                amount_due: None,
                amount_paid: None,
            });
            let status = status.clone();
            told |= state
                .storage
                .documents()
                .record_provider_status(&doc, &status, &body, now)
                .await?;
        }
    }
    if told {
        state.events_ready.notify_waiters();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secrets_hex_signature_over_exactly_this_body_is_taken() {
        let body = br#"{"resource_type":"order","event_type":"update"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(body);
        let good = hex::encode(mac.finalize().into_bytes());
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-hubrise-hmac-sha256", v.parse().unwrap());
            h
        };
        assert!(HubRise::verify(b"secret", &with(&good), body));
        assert!(HubRise::verify(
            b"secret",
            &with(&good.to_uppercase()),
            body
        ));
        assert!(!HubRise::verify(b"other", &with(&good), body));
        assert!(!HubRise::verify(b"secret", &with(&good), b"{}"));
        assert!(!HubRise::verify(b"secret", &HeaderMap::new(), body));
    }

    #[test]
    fn an_order_update_names_the_location_the_order_and_its_new_status() {
        let body = serde_json::json!({"id": "e1", "resource_type": "order", "event_type": "update",
            "order_id": "o1", "location_id": "l-0", "account_id": "l",
            "previous_state": {"status": "completed"}, "new_state": {"id": "o1", "status": "cancelled"}});
        let events = HubRise::events(body.to_string().as_bytes());
        assert_eq!(
            events,
            [WebhookEvent {
                id: "e1".into(),
                tenant_id: "l-0".into(),
                category: "order".into(),
                change: "update".into(),
                resource_id: "o1".into(),
                status: Some("cancelled".into()),
            }]
        );
        assert!(HubRise::events(b"not json").is_empty());
    }
}
