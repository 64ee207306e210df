//! Which connections get a worker, how a worker backs off, and the passes a round makes over the
//! document kinds.

use ledgerlink_wire::documents::DocumentKind;
use ledgerlink_wire::{ConnectionStatus, Provider};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

use super::pacer::{Limit, LocalAllowance, Pacer};
use super::{bundle, AppPacer, Round, Stop};
use crate::providers::hubrise::delivery::HubRiseDocuments;
use crate::providers::xero::delivery::XeroDocuments;
use crate::providers::Documents;
use crate::AppState;

/// The kinds in the order a pass offers them: a payment is only offered once its invoice is at
/// the provider (the outbox leaves the others waiting), so invoices and shifts go first.
const KINDS: [DocumentKind; 5] = [
    DocumentKind::Invoice,
    DocumentKind::Shift,
    DocumentKind::Payment,
    DocumentKind::CreditNote,
    DocumentKind::Order,
];

/// Runs until the process stops: one worker per connection with documents waiting, each paced to
/// that organisation's limits and all of them to the app's.
pub async fn run(state: AppState) {
    match state.storage.documents().requeue_sending().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(documents = n, "documents were mid-delivery when the proxy stopped; they go again under the same idempotency keys"),
        Err(e) => tracing::error!(error = %e, "cannot requeue documents left sending"),
    }
    // Each provider's app-wide allowance, shared by every connection to it.
    let apps: Arc<HashMap<Provider, AppPacer>> = Arc::new(
        Provider::ALL
            .iter()
            .map(|p| {
                let limits = crate::providers::limits(*p, &state.settings);
                let app: AppPacer = Arc::new(LocalAllowance::new(Limit {
                    per_window: limits.app_per_window,
                    window: limits.window,
                }));
                (*p, app)
            })
            .collect(),
    );
    let pacers: Arc<Mutex<HashMap<Uuid, Pacer>>> = Arc::default();
    // Owned here: when the engine stops (or its task is aborted), its workers stop with it.
    let mut workers = tokio::task::JoinSet::new();
    let mut running: HashMap<tokio::task::Id, Uuid> = HashMap::new();
    let trouble = crate::logs::Every::minute();
    let mut first = true;
    loop {
        // Straight to work after a start (documents may be waiting); then on news or every second.
        if !first {
            tokio::select! {
                () = state.outbox_ready.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        first = false;
        while let Some(done) = workers.try_join_next_with_id() {
            let id = match &done {
                Ok((id, ())) => *id,
                Err(e) => e.id(),
            };
            running.remove(&id);
        }
        let now = state.clock.now();
        let ids = match state.storage.documents().connections_with_work(now).await {
            Ok(ids) => ids,
            Err(e) => {
                if trouble.due() {
                    tracing::error!(error = %e, "cannot read the outbox");
                }
                continue;
            }
        };
        for id in ids {
            if running.values().any(|r| *r == id) {
                continue;
            }
            let (state, apps, pacers) = (state.clone(), apps.clone(), pacers.clone());
            let handle = workers.spawn(async move { worker(state, id, apps, pacers).await });
            running.insert(handle.id(), id);
        }
    }
}

/// How long a worker waits after its `failures`-th failure in a row: 1 s, 2 s, 4 s, then 8 s at
/// most, plus `jitter_ms` (under half a second), so a provider's bad minutes pass and workers that
/// failed together do not come back together.
pub fn backoff(failures: u32, jitter_ms: u64) -> Duration {
    Duration::from_millis((500u64 << failures.clamp(1, 4)) + jitter_ms % 500)
}

/// Delivers one connection's outbox until it is empty (or the connection needs reconnecting).
async fn worker(
    state: AppState,
    id: Uuid,
    apps: Arc<HashMap<Provider, AppPacer>>,
    pacers: Arc<Mutex<HashMap<Uuid, Pacer>>>,
) {
    // The connection's pacer outlives its workers: what it learned of the windows is kept.
    let mut pacer = pacers.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    let mut failures = 0u32;
    loop {
        let mut answered = 0;
        let delivered = deliver(&state, id, &mut pacer, &apps, &mut answered).await;
        if answered > 0 {
            // The provider answered in between: what failed now is a first failure again.
            failures = 0;
        }
        match delivered {
            Ok(()) => break,
            Err(Stop::Limited(wait)) => {
                // The pacer holds the next call back as long as the provider asked.
                tracing::info!(connection = %id, wait_ms = wait.as_millis() as u64, "the provider's rate limit: waiting as told");
            }
            Err(Stop::Later(why)) => {
                failures += 1;
                let wait = backoff(failures, rand::random::<u64>());
                tracing::warn!(connection = %id, error = %why, retry_in_ms = wait.as_millis() as u64, "delivery paused");
                tokio::time::sleep(wait).await;
            }
            Err(Stop::Reconnect) => {
                // The call that found out marked the connection (and told its devices).
                tracing::warn!(connection = %id, "delivery stopped: the organisation must be connected again");
                break;
            }
        }
    }
    if let Some(pacer) = pacer {
        pacers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, pacer);
    }
}

/// One round for a connection: what was left mid-call goes again, then its provider takes the
/// outbox pass by pass.
async fn deliver(
    state: &AppState,
    connection_id: Uuid,
    slot: &mut Option<Pacer>,
    apps: &HashMap<Provider, AppPacer>,
    answered: &mut u32,
) -> Result<(), Stop> {
    let connection = match state.storage.connections().connection(connection_id).await {
        Ok(Some(c)) if c.status == ConnectionStatus::Connected => c,
        Ok(_) => return Ok(()),
        Err(e) => return Err(Stop::store(e)),
    };
    let Some(provider) = Provider::parse(&connection.provider) else {
        return Err(Stop::Later(format!(
            "the connection is to '{}', a provider this proxy does not know",
            connection.provider
        )));
    };
    let limits = crate::providers::limits(provider, &state.settings);
    let pacer = slot.take().unwrap_or_else(|| {
        Pacer::new(Limit {
            per_window: limits.per_window,
            window: limits.window,
        })
        .with(&limits.longer, limits.heavy)
    });
    let app = apps[&provider].clone();
    match provider {
        Provider::Xero => {
            let mappings = match crate::documents::mappings(state, connection_id).await {
                Ok(m) => m,
                Err(e) => {
                    *slot = Some(pacer);
                    return Err(Stop::store(e));
                }
            };
            let round = Round::new(state.clone(), connection, pacer, app, limits);
            let mut documents = XeroDocuments::new(round, mappings);
            let delivered = passes(&mut documents).await;
            let round = documents.into_round();
            *answered = round.answered();
            *slot = Some(round.into_pacer());
            delivered
        }
        Provider::HubRise => {
            let Some(client) = state.hubrise.clone() else {
                *slot = Some(pacer);
                return Err(Stop::Later(
                    "HubRise is no longer set up here: its orders wait".into(),
                ));
            };
            let round = Round::new(state.clone(), connection, pacer, app, limits);
            let mut documents = HubRiseDocuments::new(round, client);
            let delivered = passes(&mut documents).await;
            let round = documents.into_round();
            *answered = round.answered();
            *slot = Some(round.into_pacer());
            delivered
        }
    }
}

/// Pass after pass until the outbox is empty: every kind gets its turn in each pass, so a flood of
/// one never holds back another.
async fn passes<D: Documents>(d: &mut D) -> Result<(), Stop> {
    d.round().requeue_stranded().await?;
    bundle::resend_open(d).await?;
    let mut last_pass = Vec::new();
    loop {
        let mut taken = Vec::with_capacity(KINDS.len());
        for kind in KINDS {
            let per_pass = d.per_pass(kind);
            taken.push((kind, d.round().outbox(kind, per_pass).await?));
        }
        let batch = d.per_pass(DocumentKind::Invoice);
        let voids = d.round().voids(batch).await?;
        let pass: Vec<Uuid> = taken
            .iter()
            .flat_map(|(_, docs)| docs)
            .chain(&voids)
            .map(|doc| doc.id)
            .collect();
        if pass.is_empty() {
            return Ok(());
        }
        if pass == last_pass {
            // The same documents again and none of them moved: leave them to the next round
            // rather than spin (a waiting document should never be offered; this is the guard).
            let connection = d.round().connection.id;
            tracing::warn!(connection = %connection, documents = pass.len(), "delivery made no progress; trying again later");
            return Ok(());
        }
        last_pass = pass;
        for (kind, docs) in taken {
            if !docs.is_empty() {
                d.send(kind, docs).await?;
            }
        }
        for void in voids {
            d.void(void).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_eight_seconds_with_jitter_under_half_a_second() {
        assert_eq!(backoff(1, 0), Duration::from_secs(1));
        assert_eq!(backoff(2, 0), Duration::from_secs(2));
        assert_eq!(backoff(3, 0), Duration::from_secs(4));
        assert_eq!(backoff(4, 0), Duration::from_secs(8));
        assert_eq!(backoff(40, 0), Duration::from_secs(8));
        assert_eq!(backoff(1, 1_499), Duration::from_millis(1_499));
        assert!(backoff(4, u64::MAX) < Duration::from_millis(8_500));
    }
}
