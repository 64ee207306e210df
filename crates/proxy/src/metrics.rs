//! `GET /metrics`: what an operator graphs and alerts on, in the Prometheus text format (the
//! `prometheus-client` crate; the registry lives in the app state, no globals). Every name starts
//! `ledgerlink_`; labels are the provider, the document kind and the outcome, never an
//! organisation, a device or a document (their number is unbounded, and they are customers'
//! business). Queue depths are read from the database at each scrape, so every replica answers
//! the same; the counters are each replica's own since it started (Prometheus sums them).
//!
//! The route is on the main listener: restrict it at the reverse proxy (`docs/deployment.md`).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub provider: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub provider: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub provider: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub provider: String,
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

/// Every metric the proxy keeps.
pub struct Metrics {
    registry: Registry,
    /// Documents by provider and state, set from the database at each scrape.
    queue: Family<QueueLabels, Gauge>,
    /// From a document's acceptance to the provider's acceptance of it, in seconds.
    pub delivery_latency: Family<KindLabels, Histogram>,
    /// Documents that reached an outcome (`sent`, `failed`, `voided`, ...).
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// Delivery calls to providers by outcome: `ok`, `refused` (4xx), `rate_limited` (429),
    /// `server_error` (5xx), `lost` (no answer).
    pub provider_calls: Family<OutcomeLabels, Counter>,
    /// The providers' `429`s.
    pub rate_limited: Family<ProviderLabels, Counter>,
    /// Delivery calls that must be made again, by why: `rate_limited` (429), `server_error`
    /// (5xx), `lost` (no answer: the outcome is looked up or the same request resent).
    pub retries: Family<OutcomeLabels, Counter>,
    /// Grant refreshes by outcome: `ok`, `refused` (the grant is gone), `failed`.
    pub refreshes: Family<OutcomeLabels, Counter>,
    /// Pairings finished by outcome: `paired`, `denied`.
    pub pairings: Family<OutcomeLabels, Counter>,
    /// Webhooks received by outcome: `verified`, `bad_signature`, `duplicate`.
    pub webhooks: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ledgerlink");
        let queue = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_documents",
            "Documents by provider and state, as the database holds them",
            queue.clone(),
        );
        let delivery_latency = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            // 50 ms to about 7 minutes.
            Histogram::new(exponential_buckets(0.05, 2.0, 14))
        });
        registry.register(
            "delivery_latency_seconds",
            "From a document's acceptance to the provider's",
            delivery_latency.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Documents that reached an outcome at the provider",
            deliveries.clone(),
        );
        let provider_calls = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "provider_calls",
            "Delivery calls to providers by outcome",
            provider_calls.clone(),
        );
        let rate_limited = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_rate_limited",
            "Provider answers 429 (Too Many Requests)",
            rate_limited.clone(),
        );
        let retries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "delivery_retries",
            "Delivery calls to be made again: refused for the limit, failed, or unanswered",
            retries.clone(),
        );
        let refreshes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "token_refreshes",
            "Provider grant refreshes by outcome",
            refreshes.clone(),
        );
        let pairings = Family::<OutcomeLabels, Counter>::default();
        registry.register("pairings", "Device pairings by outcome", pairings.clone());
        let webhooks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhooks",
            "Provider webhooks received, by verification outcome",
            webhooks.clone(),
        );
        Self {
            registry,
            queue,
            delivery_latency,
            deliveries,
            provider_calls,
            rate_limited,
            retries,
            refreshes,
            pairings,
            webhooks,
        }
    }
}

impl Metrics {
    /// Counts one of a family's events.
    pub fn count(family: &Family<OutcomeLabels, Counter>, provider: &str, outcome: &str) {
        family
            .get_or_create(&OutcomeLabels {
                provider: provider.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// A delivery call's answer (`None`: no answer came). A call refused for the limit, failed
    /// or unanswered is also a retry: the round stops and it is made again.
    pub fn provider_call(&self, provider: &str, status: Option<StatusCode>) {
        let outcome = match status {
            None => "lost",
            Some(s) if s == StatusCode::TOO_MANY_REQUESTS => {
                self.rate_limited
                    .get_or_create(&ProviderLabels {
                        provider: provider.into(),
                    })
                    .inc();
                "rate_limited"
            }
            Some(s) if s.is_success() => "ok",
            Some(s) if s.is_server_error() => "server_error",
            Some(_) => "refused",
        };
        Self::count(&self.provider_calls, provider, outcome);
        if matches!(outcome, "lost" | "rate_limited" | "server_error") {
            Self::count(&self.retries, provider, outcome);
        }
    }
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let queues = match state.storage.documents().queue_summaries().await {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the queues cannot be read");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database cannot be read",
            )
                .into_response();
        }
    };
    let connections = match state.storage.connections().connections().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the connections cannot be read");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database cannot be read",
            )
                .into_response();
        }
    };
    let mut totals: std::collections::BTreeMap<(String, String), i64> = Default::default();
    for c in &connections {
        for (state, n) in queues.get(&c.id).map(|q| &q.by_state).into_iter().flatten() {
            *totals
                .entry((c.provider.clone(), state.clone()))
                .or_default() += *n as i64;
        }
    }
    // Set afresh: a state emptied since the last scrape reads 0, not its old count.
    metrics.queue.clear();
    for ((provider, state), n) in totals {
        metrics
            .queue
            .get_or_create(&QueueLabels { provider, state })
            .set(n);
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &metrics.registry) {
        tracing::error!(error = %e, "metrics did not encode");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}
