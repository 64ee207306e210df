//! The delivery engine: what every provider's documents share on their way out. It takes queued
//! documents from each connection's outbox and hands them to the connection's provider
//! ([`crate::providers::Documents`]), which turns them into calls; the engine paces those calls,
//! records bundles so they can go again byte for byte under the same idempotency key, finds out
//! what became of a call whose answer was lost, and backs off while the provider is failing.
//!
//! By responsibility:
//! - [`scheduler`]: one worker per connection with work, its backoff, and the passes over the
//!   document kinds so a flood of one never holds back another;
//! - [`round`]: one connection's round, and each call paced through it;
//! - [`claim`]: reading the outbox, claiming documents (`sending`), saving outcomes, putting
//!   documents back after a failed call;
//! - [`pacer`]: the provider's windows as its answers reveal them, per connection and per app;
//! - [`bundle`]: documents cut into calls, each call's idempotency key, recorded bundles resent;
//! - [`reconcile`]: markers, and documents whose outcome is unknown looked up past the
//!   provider's replay window.
//!
//! Time comes from the injected clock (`AppState::clock`) for everything kept in the store, and
//! from `Instant`s handed to the pacer, so each part is tested without waiting.

pub mod bundle;
pub mod claim;
pub mod pacer;
pub mod reconcile;
pub mod round;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

pub use reconcile::marker;
pub use round::Round;
pub use scheduler::run;

/// The app-wide budget (Xero: 10,000 calls a minute across all organisations), shared by this
/// proxy's workers, and on a database several proxies share, by every proxy.
#[derive(Clone)]
pub struct AppPacer {
    /// Paced in this proxy, learning from what the provider says of the app's count.
    pub local: Arc<dyn pacer::Allowance>,
    /// Taken from the budget every proxy on the database shares (Postgres; `None` on SQLite,
    /// which one proxy has to itself).
    pub shared: Option<Arc<SharedBudget>>,
}

/// A provider's app-wide calls counted in the database, so N proxies together keep to it.
pub struct SharedBudget {
    pub storage: crate::store::Storage,
    pub provider: &'static str,
    pub limit: u32,
    pub window: Duration,
}

impl SharedBudget {
    /// Waits until the shared budget has room and takes one call of it.
    pub async fn take(&self) -> Result<(), Stop> {
        loop {
            let now = chrono::Utc::now();
            let next = self
                .storage
                .throttles()
                .take_call("app_calls", self.provider, self.limit, self.window, now)
                .await
                .map_err(Stop::store)?;
            let Some(at) = next else {
                return Ok(());
            };
            let wait = (at - now).to_std().unwrap_or_default();
            tokio::time::sleep(wait.max(Duration::from_millis(5))).await;
        }
    }
}

/// Why a round for a connection stopped early.
#[derive(Debug)]
pub enum Stop {
    /// The provider refused for its limit and said how long to wait (the pacer holds calls that
    /// long).
    Limited(Duration),
    /// Try again later (the provider unreachable or failing, the store busy): back off.
    Later(String),
    /// The connection's grant is no good: it must be connected again.
    Reconnect,
    /// Another proxy took the connection's delivery lease: this one writes nothing more of it.
    Lost,
}

impl Stop {
    /// Something of the proxy's own that failed (a read through the API's helpers): try again
    /// later.
    pub fn later(e: impl std::fmt::Display) -> Self {
        Stop::Later(e.to_string())
    }

    /// A failure of the proxy's own store: try again later, unless the lease is gone.
    pub fn store(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Fenced => Stop::Lost,
            e => Stop::Later(e.to_string()),
        }
    }
}
