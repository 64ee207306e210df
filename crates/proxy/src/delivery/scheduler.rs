//! Which connections get a worker, how a worker backs off, and the passes a round makes over the
//! document kinds.
//!
//! Several proxies may share one database: a connection's delivery is leased to one of them at a
//! time ([`crate::store::LeaseStore`]). A proxy takes the lease of a connection with work, keeps
//! it while its worker runs (renewed every third of `cluster.lease_secs`, with the pacer's state),
//! and lets it go when the outbox is empty. A proxy that stops without letting go holds its
//! connections until the lease runs out; the next holder puts back what it left `sending` and
//! carries on from the pacing it last wrote.

use ledgerlink_wire::documents::DocumentKind;
use ledgerlink_wire::{ConnectionStatus, Provider};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::pacer::{Limit, LocalAllowance, Pacer, Snapshot};
use super::round::Held;
use super::{bundle, AppPacer, Round, Stop};
use crate::providers::hubrise::delivery::HubRiseDocuments;
use crate::providers::xero::delivery::XeroDocuments;
use crate::providers::Documents;
use crate::store::Taken;
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

/// Runs until the process stops: one worker per connection with documents waiting whose delivery
/// lease this proxy holds, each paced to that organisation's limits and all of them to the app's.
/// When `stop` is cancelled, its workers stop and their leases are let go with their pacing.
pub async fn run(state: AppState, stop: tokio_util::sync::CancellationToken) {
    // Each provider's app-wide allowance, shared by every connection to it.
    let apps: Arc<HashMap<Provider, AppPacer>> = Arc::new(
        Provider::ALL
            .iter()
            .map(|p| {
                let limits = crate::providers::limits(*p, &state.settings);
                let shared = matches!(
                    state.settings.database,
                    crate::settings::Database::Postgres(_)
                )
                .then(|| {
                    Arc::new(super::SharedBudget {
                        storage: state.storage.clone(),
                        provider: p.as_str(),
                        limit: limits.app_per_window,
                        window: limits.window,
                    })
                });
                let app = AppPacer {
                    local: Arc::new(LocalAllowance::new(Limit {
                        per_window: limits.app_per_window,
                        window: limits.window,
                    })),
                    shared,
                };
                (*p, app)
            })
            .collect(),
    );
    // Owned here: when the engine stops (or its task is aborted), its workers stop with it.
    let mut workers = tokio::task::JoinSet::new();
    let mut running: HashMap<tokio::task::Id, Held> = HashMap::new();
    let trouble = crate::logs::Every::minute();
    let mut first = true;
    loop {
        // Straight to work after a start (documents may be waiting); then on news or every second.
        if !first {
            tokio::select! {
                () = state.outbox_ready.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = stop.cancelled() => {
                    workers.shutdown().await;
                    for held in running.values() {
                        let pacing = held.pacing();
                        if let Err(e) = state.storage.leases().release_lease(&held.lease, pacing.as_ref()).await {
                            tracing::warn!(connection = %held.lease.connection, error = %e, "cannot let a delivery lease go; it runs out instead");
                        }
                    }
                    return;
                }
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
        let ttl = state.settings.cluster.lease();
        for id in ids {
            if running.values().any(|held| held.lease.connection == id) {
                continue;
            }
            let taken = match state
                .storage
                .leases()
                .take_lease(id, state.replica, ttl)
                .await
            {
                Ok(Some(taken)) => taken,
                // Another proxy delivers it.
                Ok(None) => continue,
                Err(e) => {
                    if trouble.due() {
                        tracing::error!(error = %e, "cannot take a delivery lease");
                    }
                    continue;
                }
            };
            let held = Held::new(taken.lease.clone());
            let (state, apps, h) = (state.clone(), apps.clone(), held.clone());
            let handle = workers.spawn(async move { worker(state, taken, h, apps).await });
            running.insert(handle.id(), held);
        }
    }
}

/// How long a worker waits after its `failures`-th failure in a row: 1 s, 2 s, 4 s, then 8 s at
/// most, plus `jitter_ms` (under half a second), so a provider's bad minutes pass and workers that
/// failed together do not come back together.
pub fn backoff(failures: u32, jitter_ms: u64) -> Duration {
    Duration::from_millis((500u64 << failures.clamp(1, 4)) + jitter_ms % 500)
}

/// Delivers one connection's outbox under its lease until it is empty (or the connection needs
/// reconnecting), then lets the lease go. Stops at once, letting nothing go, if the lease is lost.
async fn worker(state: AppState, taken: Taken, held: Held, apps: Arc<HashMap<Provider, AppPacer>>) {
    let id = taken.lease.connection;
    let ttl = state.settings.cluster.lease();
    let delivered = tokio::select! {
        lost = keep(&state, &held, ttl) => Err(lost),
        () = work(&state, &taken, &held, &apps) => Ok(()),
    };
    match delivered {
        Ok(()) => {
            if let Err(e) = state
                .storage
                .leases()
                .release_lease(&held.lease, held.pacing().as_ref())
                .await
            {
                tracing::warn!(connection = %id, error = %e, "cannot let a delivery lease go; it runs out instead");
            }
        }
        Err(why) => {
            tracing::warn!(connection = %id, reason = why, "delivery lease lost: another proxy carries on")
        }
    }
}

/// Renews the lease every third of `ttl` with the round's pacing, until it is lost: answers why.
/// A proxy that cannot renew (the database out of reach) stops calling the provider before the
/// lease can have run out on the database's clock, so two proxies never call for one connection.
async fn keep(state: &AppState, held: &Held, ttl: Duration) -> &'static str {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        match state
            .storage
            .leases()
            .renew_lease(&held.lease, ttl, held.pacing().as_ref())
            .await
        {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => return "another proxy took it",
            Err(e) => {
                tracing::warn!(connection = %held.lease.connection, error = %e, "cannot renew a delivery lease");
                // Renewed at `renewed` at the latest: it runs out a `ttl` after that. Stop with a
                // margin for the time the renewal took to reach the database.
                if renewed.elapsed() >= ttl.mul_f64(0.8) {
                    return "it could not be renewed in time";
                }
            }
        }
    }
}

/// The pacer a new holder starts with: carried on from the last holder's, and after a holder
/// that never let go, holding back what it may have sent unrecorded.
fn pacer_for(
    state: &AppState,
    pacing: Option<&Snapshot>,
    lost_holder: bool,
    provider: Provider,
) -> Pacer {
    let limits = crate::providers::limits(provider, &state.settings);
    let fresh = Pacer::new(Limit {
        per_window: limits.per_window,
        window: limits.window,
    })
    .with(&limits.longer, limits.heavy);
    let now = Instant::now();
    let wall = chrono::Utc::now();
    let mut pacer = match pacing {
        Some(s) => fresh.restore(s, now, wall),
        None => fresh,
    };
    if lost_holder {
        // Since it last wrote its pacing (or since it took the lease, if it never did).
        let ttl = state.settings.cluster.lease();
        let gap = pacing
            .and_then(|s| (wall - s.taken_at()).to_std().ok())
            .unwrap_or(ttl * 2);
        pacer.after_a_lost_holder(gap, now);
    }
    pacer
}

/// The worker's rounds, with backoff between failed ones.
async fn work(state: &AppState, taken: &Taken, held: &Held, apps: &HashMap<Provider, AppPacer>) {
    let id = taken.lease.connection;
    let mut pacer: Option<Pacer> = None;
    let mut first = true;
    let mut failures = 0u32;
    loop {
        let mut answered = 0;
        let delivered = deliver(
            state,
            taken,
            held,
            std::mem::take(&mut first),
            &mut pacer,
            apps,
            &mut answered,
        )
        .await;
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
            Err(Stop::Lost) => {
                // Nothing more is written under this lease; the keeper sees it lost too.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// One round for a connection: what was left mid-call goes again, then its provider takes the
/// outbox pass by pass.
async fn deliver(
    state: &AppState,
    taken: &Taken,
    held: &Held,
    first: bool,
    slot: &mut Option<Pacer>,
    apps: &HashMap<Provider, AppPacer>,
    answered: &mut u32,
) -> Result<(), Stop> {
    let connection_id = taken.lease.connection;
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
    let pacer = match slot.take() {
        Some(p) => p,
        // The lease's first round carries on from its last holder; a later one from this
        // holder's own last round.
        None if first => pacer_for(state, taken.pacing.as_ref(), taken.lost_holder, provider),
        None => pacer_for(state, held.pacing().as_ref(), false, provider),
    };
    let app = apps[&provider].clone();
    match provider {
        Provider::Xero => {
            let mappings = match crate::documents::mappings(state, connection_id).await {
                Ok(m) => m,
                Err(e) => {
                    *slot = Some(pacer);
                    return Err(Stop::later(e));
                }
            };
            let round = Round::new(state.clone(), connection, held.clone(), pacer, app, limits);
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
            let round = Round::new(state.clone(), connection, held.clone(), pacer, app, limits);
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
