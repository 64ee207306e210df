//! One connection's round: what a provider's [`Documents`](crate::providers::Documents) works on,
//! and the one way its calls go out, paced.

use std::future::Future;
use std::time::{Duration, Instant};

use super::pacer::{self, Cost, Pacer, Snapshot};
use super::{AppPacer, Stop};
use crate::providers::{Answer, Limits};
use crate::store::{ConnectionRow, Lease};
use crate::AppState;

/// The lease a round delivers under, and where it leaves its pacing after each call for the
/// lease's keeper to write with each renewal (the next holder carries on from it).
#[derive(Clone)]
pub struct Held {
    pub lease: Lease,
    pub pacing: std::sync::Arc<std::sync::Mutex<Option<Snapshot>>>,
}

impl Held {
    pub fn new(lease: Lease) -> Self {
        Self {
            lease,
            pacing: Default::default(),
        }
    }

    /// The pacing as the round last left it.
    pub fn pacing(&self) -> Option<Snapshot> {
        self.pacing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn keep(&self, pacer: &Pacer, now: Instant) {
        *self.pacing.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(pacer.snapshot(now, chrono::Utc::now()));
    }
}

/// Owns what it needs (the connection's pacer comes back with [`Round::into_pacer`]), so a
/// provider's round has no lifetimes to carry across its awaits.
pub struct Round {
    pub state: AppState,
    pub connection: ConnectionRow,
    /// The connection's delivery lease: every write of the round names it.
    pub lease: Lease,
    held: Held,
    pub limits: Limits,
    pacer: Pacer,
    app: AppPacer,
    /// Calls the provider answered this round (not with a server error or a limit).
    answered: u32,
}

impl Round {
    pub fn new(
        state: AppState,
        connection: ConnectionRow,
        held: Held,
        pacer: Pacer,
        app: AppPacer,
        limits: Limits,
    ) -> Self {
        Self {
            state,
            connection,
            lease: held.lease.clone(),
            held,
            limits,
            pacer,
            app,
            answered: 0,
        }
    }

    /// Calls the provider answered this round: a round that failed after some is not a failure
    /// in a row.
    pub fn answered(&self) -> u32 {
        self.answered
    }

    /// The connection's pacer, with what it learned this round, for the next.
    pub fn into_pacer(self) -> Pacer {
        self.pacer
    }

    /// Makes one provider call when the connection's and the app's pacers allow it (`call` is not
    /// started before), and lets what its answer says of the quotas pace what follows. A refusal
    /// for a limit stops the round (the pacer holds calls as long as the provider asked); a server
    /// error stops it to back off.
    pub async fn paced<'s, E, Fut>(
        &'s mut self,
        call: impl FnOnce(&'s AppState, &'s ConnectionRow) -> Fut,
    ) -> Result<Answer, Stop>
    where
        Fut: Future<Output = Result<Answer, E>> + 's,
        Stop: From<E>,
    {
        self.paced_as(Cost::Light, call).await
    }

    /// [`Round::paced`] for a call of `cost` (a heavy read keeps to its own lower limit too).
    pub async fn paced_as<'s, E, Fut>(
        &'s mut self,
        cost: Cost,
        call: impl FnOnce(&'s AppState, &'s ConnectionRow) -> Fut,
    ) -> Result<Answer, Stop>
    where
        Fut: Future<Output = Result<Answer, E>> + 's,
        Stop: From<E>,
    {
        let Round {
            state,
            connection,
            pacer,
            app,
            answered,
            held,
            ..
        } = self;
        let sent = pacer::take(pacer, app.local.as_ref(), cost).await;
        if let Some(shared) = &app.shared {
            // The app's budget across every proxy: taken when the call is about to go.
            shared.take().await?;
        }
        // Kept before the call too: a call that fails without an answer still counted.
        held.keep(pacer, sent);
        let answer = match call(state, connection).await {
            Ok(a) => {
                state
                    .metrics
                    .provider_call(&connection.provider, Some(a.status));
                a
            }
            Err(e) => {
                state.metrics.provider_call(&connection.provider, None);
                return Err(e.into());
            }
        };
        let (state, connection): (&AppState, &ConnectionRow) = (state, connection);
        let back = Instant::now();
        let quota = answer.quota;
        pacer.answered(sent, back, quota.connection);
        app.local.answered(sent, back, quota.app);
        if let Some(until) = quota.spent_until {
            // The connection's calls are spent (Xero: its day): wait until they come back rather
            // than collect refusals.
            let wait = (until - state.clock.now())
                .to_std()
                .unwrap_or(Duration::from_secs(60));
            tracing::warn!(connection = %connection.id, provider = %connection.provider, wait_secs = wait.as_secs(), "the provider's daily limit is spent for this organisation");
            pacer.hold(back + wait);
        }
        held.keep(pacer, back);
        if let Some(retry_after) = quota.limited() {
            return Err(Stop::Limited(retry_after.unwrap_or(pacer::DEFAULT_RETRY)));
        }
        if answer.status.is_server_error() {
            return Err(Stop::Later(format!(
                "{} answered {}",
                connection.provider, answer.status
            )));
        }
        *answered += 1;
        Ok(answer)
    }
}
