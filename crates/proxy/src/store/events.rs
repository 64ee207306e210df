//! What the proxy tells a device, in one shape for every backend: a backend stores an event as the
//! text [`EventBody::text`] makes and reads it back with [`EventBody::entry`], so the wire shape of
//! `GET /v1/events` is decided here, never in a backend's SQL.

use ledgerlink_wire::documents::{DocumentView, EventEntry, EventKind};
use ledgerlink_wire::ConnectionStatus;
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// One event for a device.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// A document's new state.
    Document(DocumentView),
    /// What the provider said of a document.
    Provider(ProviderNews),
    /// The device's connection's new status.
    Connection(ConnectionStatus),
}

/// What the provider said of a document: its status there (HubRise: `cancelled`; Xero: `PAID`)
/// and, for an invoice, what is still due and what was paid.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderNews {
    pub document: DocumentView,
    pub provider_status: Option<String>,
    /// Xero's own name for the status (devices older than `provider_status` read this).
    pub xero_status: Option<String>,
    pub amount_due: Option<Decimal>,
    pub amount_paid: Option<Decimal>,
}

impl EventBody {
    /// The stored text: `EventEntry`'s shape without its cursor.
    pub fn text(&self) -> String {
        let money = |d: &Option<Decimal>| d.map(|d| d.to_string());
        match self {
            Self::Document(view) => json!({"type": "document", "document": view}),
            Self::Provider(news) => {
                let mut v = json!({"type": "provider", "document": news.document});
                for (field, value) in [
                    ("provider_status", news.provider_status.clone()),
                    ("xero_status", news.xero_status.clone()),
                    ("amount_due", money(&news.amount_due)),
                    ("amount_paid", money(&news.amount_paid)),
                ] {
                    if let Some(value) = value {
                        v[field] = json!(value);
                    }
                }
                v
            }
            Self::Connection(status) => json!({"type": "connection", "status": status}),
        }
        .to_string()
    }

    /// A stored event as the wire's entry at cursor `seq`. A stored text that no longer reads (it
    /// was written by this module, so this means damage) still moves the cursor, as an event of
    /// no kind.
    pub fn entry(seq: i64, text: &str) -> EventEntry {
        let parsed = serde_json::from_str::<Value>(text).ok().and_then(|mut v| {
            v["seq"] = json!(seq);
            serde_json::from_value::<EventEntry>(v).ok()
        });
        parsed.unwrap_or_else(|| {
            tracing::warn!(seq, "a stored event does not read");
            EventEntry {
                seq,
                kind: EventKind::Other,
                document: None,
                xero_status: None,
                provider_status: None,
                amount_due: None,
                amount_paid: None,
                status: None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use ledgerlink_wire::documents::{DocumentKind, DocumentState};

    fn view() -> DocumentView {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        DocumentView {
            id: uuid::Uuid::nil(),
            kind: DocumentKind::Order,
            client_ref: "o-1".into(),
            state: DocumentState::Sent,
            provider_id: Some("p0cpo".into()),
            provider_number: None,
            xero_id: None,
            xero_number: None,
            message: None,
            version: 1,
            discard_reason: None,
            provider_status: Some("cancelled".into()),
            created_at: at,
            updated_at: at,
            history: None,
        }
    }

    #[test]
    fn every_event_reads_back_as_the_wire_entry_it_was() {
        let provider = EventBody::Provider(ProviderNews {
            document: view(),
            provider_status: Some("cancelled".into()),
            xero_status: None,
            amount_due: Some(Decimal::new(1250, 2)),
            amount_paid: None,
        });
        let e = EventBody::entry(7, &provider.text());
        assert_eq!((e.seq, e.kind), (7, EventKind::Provider));
        assert_eq!(e.provider_status.as_deref(), Some("cancelled"));
        assert_eq!(e.amount_due, Some(Decimal::new(1250, 2)));
        assert_eq!(e.document, Some(view()));
        let c = EventBody::entry(
            8,
            &EventBody::Connection(ConnectionStatus::NeedsReconnect).text(),
        );
        assert_eq!(
            (c.kind, c.status),
            (
                EventKind::Connection,
                Some(ConnectionStatus::NeedsReconnect)
            )
        );
        let d = EventBody::entry(9, &EventBody::Document(view()).text());
        assert_eq!(d.kind, EventKind::Document);
        assert_eq!(EventBody::entry(10, "not json").kind, EventKind::Other);
    }
}
