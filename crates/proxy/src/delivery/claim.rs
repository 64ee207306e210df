//! Taking documents from the outbox and writing back what became of them: claimed (`sending`)
//! before their call, an outcome saved after it, or back to the queue when the call failed (with
//! the outcome unknown when the call may have reached the provider).

use chrono::{DateTime, Utc};
use ledgerlink_wire::documents::{DocumentKind, DocumentState};
use uuid::Uuid;

use super::{Round, Stop};
use crate::store::{DocumentRow, DocumentUpdate};

/// A document's new state after an attempt, with what the provider called it.
pub fn update(
    id: Uuid,
    state: DocumentState,
    provider_id: Option<String>,
    number: Option<String>,
    message: Option<String>,
) -> DocumentUpdate {
    DocumentUpdate {
        id,
        state,
        provider_id,
        provider_number: number,
        message,
        attempt: true,
    }
}

/// A document's new state that is not an attempt (claimed, or back in the queue).
fn moved(id: Uuid, state: DocumentState) -> DocumentUpdate {
    DocumentUpdate {
        id,
        state,
        provider_id: None,
        provider_number: None,
        message: None,
        attempt: false,
    }
}

/// A stored document that no longer parses (it was checked at intake, so this means damage).
pub fn unreadable(id: Uuid, e: &serde_json::Error) -> DocumentUpdate {
    update(
        id,
        DocumentState::Failed,
        None,
        None,
        Some(format!("stored document unreadable: {e}")),
    )
}

/// Whether an outcome unknown since `unknown_since` is older, at `now`, than the provider replays
/// an idempotency key for: what the call made must then be looked up before anything goes again.
pub fn past_window(
    unknown_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    window: chrono::Duration,
) -> bool {
    unknown_since.is_some_and(|t| now - t > window)
}

impl Round {
    /// Up to `limit` documents of a kind that are due.
    pub async fn outbox(&self, kind: DocumentKind, limit: usize) -> Result<Vec<DocumentRow>, Stop> {
        let id = self.connection.id;
        let now = self.state.clock.now();
        self.state
            .storage
            .documents()
            .outbox(id, kind, limit, now)
            .await
            .map_err(Stop::store)
    }

    /// Up to `limit` documents waiting to be voided at the provider.
    pub async fn voids(&self, limit: usize) -> Result<Vec<DocumentRow>, Stop> {
        let id = self.connection.id;
        self.state
            .storage
            .documents()
            .voids(id, limit)
            .await
            .map_err(Stop::store)
    }

    /// Documents an interrupted round left `sending` go again (under the same keys).
    pub async fn requeue_stranded(&self) -> Result<(), Stop> {
        let id = self.connection.id;
        let stranded = self
            .state
            .storage
            .documents()
            .requeue_sending_for(&self.lease)
            .await
            .map_err(Stop::store)?;
        if stranded > 0 {
            tracing::warn!(connection = %id, documents = stranded, "documents were mid-delivery when their last round stopped (here, or in a proxy that stopped); they go again under the same idempotency keys");
        }
        Ok(())
    }

    /// Saves outcomes and tells the devices' event streams.
    pub async fn save(&self, updates: Vec<DocumentUpdate>) -> Result<(), Stop> {
        if updates.is_empty() {
            return Ok(());
        }
        let now = self.state.clock.now();
        let rows = self
            .state
            .storage
            .documents()
            .update_documents(Some(&self.lease), &updates, now)
            .await
            .map_err(Stop::store)?;
        self.state.events_ready.notify_waiters();
        self.report(&updates, &rows, now);
        Ok(())
    }

    /// One log line (JSON when the proxy logs JSON) and the metrics for each document an attempt
    /// took to an outcome. The provider's message is the provider's own text; no secret is in it.
    fn report(&self, updates: &[DocumentUpdate], rows: &[DocumentRow], now: DateTime<Utc>) {
        let provider = self.connection.provider.as_str();
        let metrics = &self.state.metrics;
        for (u, row) in updates.iter().zip(rows) {
            if !u.attempt
                || row.state != u.state
                || matches!(row.state, DocumentState::Queued | DocumentState::Sending)
            {
                continue;
            }
            let (kind, outcome) = (row.kind.as_str(), row.state.as_str());
            tracing::info!(
                target: "ledgerlink::delivery",
                document = %row.id,
                kind,
                provider,
                outcome,
                attempts = row.attempts,
                message = row.message.as_deref().unwrap_or_default(),
                "delivery outcome"
            );
            metrics
                .deliveries
                .get_or_create(&crate::metrics::DeliveryLabels {
                    provider: provider.into(),
                    kind: kind.into(),
                    outcome: outcome.into(),
                })
                .inc();
            if row.state == DocumentState::Sent {
                let took = (now - row.created_at).num_milliseconds().max(0) as f64 / 1000.0;
                metrics
                    .delivery_latency
                    .get_or_create(&crate::metrics::KindLabels {
                        provider: provider.into(),
                        kind: kind.into(),
                    })
                    .observe(took);
            }
        }
    }

    /// Moves documents to `state` without counting an attempt (claiming them: `sending`).
    pub async fn mark(&self, docs: &[&DocumentRow], state: DocumentState) -> Result<(), Stop> {
        self.save(docs.iter().map(|d| moved(d.id, state)).collect())
            .await
    }

    /// Back to the queue after a failed call: a refusal for a limit or of the grant means nothing
    /// was done; any other failure may have reached the provider, so the documents' outcome is
    /// unknown from now.
    pub async fn requeue(&self, docs: &[&DocumentRow], stop: &Stop) -> Result<(), Stop> {
        let ids: Vec<Uuid> = docs.iter().map(|d| d.id).collect();
        self.requeue_ids(&ids, stop).await
    }

    pub async fn requeue_ids(&self, ids: &[Uuid], stop: &Stop) -> Result<(), Stop> {
        match stop {
            // The lease is another proxy's: it puts them back when it starts.
            Stop::Lost => Ok(()),
            Stop::Limited(_) | Stop::Reconnect => {
                self.save(
                    ids.iter()
                        .map(|id| moved(*id, DocumentState::Queued))
                        .collect(),
                )
                .await
            }
            Stop::Later(_) => {
                let ids = ids.to_vec();
                let now = self.state.clock.now();
                self.state
                    .storage
                    .documents()
                    .mark_unknown(&self.lease, &ids, now)
                    .await
                    .map_err(Stop::store)
            }
        }
    }

    /// Whether the document's last send has had no answer for longer than the provider replays a
    /// key (see [`past_window`]).
    pub fn past_replay_window(&self, doc: &DocumentRow) -> bool {
        let window = self
            .limits
            .replay_window
            .map_or(chrono::Duration::zero(), |w| {
                chrono::Duration::from_std(w).unwrap_or(chrono::Duration::MAX)
            });
        past_window(doc.unknown_since, self.state.clock.now(), window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_outcome_is_looked_up_only_once_the_replay_window_has_passed() {
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let window = chrono::Duration::seconds(300);
        assert!(!past_window(None, t0, window), "a known outcome");
        assert!(!past_window(Some(t0), t0, window));
        assert!(!past_window(
            Some(t0),
            t0 + chrono::Duration::seconds(300),
            window
        ));
        assert!(past_window(
            Some(t0),
            t0 + chrono::Duration::seconds(301),
            window
        ));
    }

    #[test]
    fn an_attempt_counts_and_a_claim_does_not() {
        let id = Uuid::from_u128(1);
        assert!(update(id, DocumentState::Sent, None, None, None).attempt);
        let claim = moved(id, DocumentState::Sending);
        assert!(!claim.attempt);
        assert_eq!(claim.state, DocumentState::Sending);
    }
}
