//! `ledgerlink-sandbox`: a faithful local emulator of Xero — its identity server (authorize page,
//! token and revocation endpoints, connections) and the Accounting API — with Xero's rate limits,
//! `Idempotency-Key` replay, validation errors, signed webhooks, fault injection, a movable clock and
//! an inspection API. It is the ground every Ledgerlink test stands on, because the real Xero cannot
//! be reached from here.
//!
//! Start it in-process with [`Sandbox::start`] (tests bind `127.0.0.1:0`) or run the binary.

pub mod api;
mod clock;
mod control;
mod faults;
pub mod identity;
mod limits;
mod log;
pub mod model;
mod pages;
mod secret;
pub mod seed;
mod server;
pub mod settings;
pub mod totals;
mod webhooks;
mod where_filter;
pub mod xjson;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

pub use clock::Clock;
pub use secret::Secret;
pub use settings::{Limits, Settings};

/// Everything a request handler can reach.
pub struct Shared {
    pub settings: Settings,
    pub clock: Clock,
    world: Mutex<model::World>,
    log: Mutex<log::RequestLog>,
    faults: Mutex<faults::Faults>,
    idempotency: Mutex<api::idempotency::Store>,
    counters: Mutex<limits::Counters>,
    webhooks: webhooks::Outbox,
    /// Key that signs access tokens (HS256); made fresh at every start.
    jwt_key: [u8; 32],
    /// `http://host:port` once bound: the issuer of tokens and the base of webhook resource URLs.
    base_url: OnceLock<String>,
}

impl Shared {
    pub fn new(settings: Settings) -> Arc<Self> {
        let clock = Clock::default();
        let world = seed::world(&settings, clock.now());
        let capacity = settings.request_log_capacity;
        Arc::new(Self {
            clock,
            world: Mutex::new(world),
            log: Mutex::new(log::RequestLog::new(capacity)),
            faults: Mutex::new(faults::Faults::default()),
            idempotency: Mutex::new(api::idempotency::Store::default()),
            counters: Mutex::new(limits::Counters::default()),
            webhooks: webhooks::Outbox::new(settings.webhooks),
            jwt_key: rand::random(),
            base_url: OnceLock::new(),
            settings,
        })
    }

    /// The world, locked. Never hold the guard across an `.await`.
    pub fn world(&self) -> MutexGuard<'_, model::World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn base_url(&self) -> &str {
        self.base_url
            .get()
            .map_or("http://127.0.0.1", String::as_str)
    }
}

/// A running sandbox: its address, its shared state, and a handle that stops it.
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sandbox {
    /// Binds `settings.listen` (port 0 picks a free one) and serves until [`Sandbox::stop`] or drop.
    pub async fn start(settings: Settings) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(settings.listen).await?;
        Ok(Self::from_listener(listener, settings))
    }

    /// Serves on a listener the caller bound.
    pub fn from_listener(listener: tokio::net::TcpListener, settings: Settings) -> Self {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Shared::new(settings);
        let _ = shared.base_url.set(format!("http://{addr}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, shared.clone(), async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: one URL standing in for all of Xero's hosts.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves the sandbox on `listener` until `shutdown` resolves (the binary's entry point).
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let shared = Shared::new(settings);
    let _ = shared.base_url.set(format!("http://{addr}"));
    server::serve(listener, shared, shutdown).await;
    Ok(())
}

/// Every route of the sandbox: Xero's hosts by their paths, and the control API.
pub fn router(shared: Arc<Shared>) -> axum::Router {
    use axum::routing::{any, get};
    axum::Router::new()
        .route("/", get(index))
        .merge(identity::routes())
        .route("/api.xro/2.0/{*rest}", any(api::dispatch))
        .route("/API.XRO/2.0/{*rest}", any(api::dispatch))
        .nest("/_sandbox", control::routes())
        .with_state(shared)
}

async fn index(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
) -> axum::response::Html<String> {
    axum::response::Html(pages::index(shared.base_url(), &shared.settings.client_id))
}
