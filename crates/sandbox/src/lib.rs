//! `ledgerlink-sandbox`: a faithful local emulator of the providers Ledgerlink connects to (Xero
//! today) and of an identity server, because none of them can be reached from here. It is the ground
//! every Ledgerlink test stands on.
//!
//! - [`harness`]: what every emulated provider shares: the movable clock, fault injection, rate-limit
//!   windows, the request log (each entry names its provider), the state file, the HTTP front, the
//!   control API's shared calls (`/_sandbox/clock`, `/faults`, `/limits`, `/requests`, `/reset`) and
//!   the pages' chrome;
//! - [`xero`]: Xero's identity server (authorize page, token and revocation endpoints, connections),
//!   its Accounting API with its limits, `Idempotency-Key` replay and validation errors, its signed
//!   webhooks, and its control calls (`/_sandbox/grants`, also `/_sandbox/xero/grants`).
//!
//! - [`idp`]: the operators' identity provider, Okta-shaped (`/oauth2/default`): discovery, keys,
//!   a login page, token, userinfo and sign-out, its control calls under `/_sandbox/idp/`.
//!
//! A new provider is a module beside `xero` on the same harness: its routes merged in [`router`],
//! its control calls under `/_sandbox/NAME/`, its credentials printed by the binary as prefixed
//! lines (`NAME_client_id:`) after Xero's.
//!
//! Start it in-process with [`Sandbox::start`] (tests bind `127.0.0.1:0`) or run the binary.

pub mod harness;
pub mod hubrise;
pub mod idp;
pub mod settings;
pub mod xero;

// Xero's emulation where tests and tools have always found it, at the crate root.
pub use xero::{api, identity, model, seed, totals, xjson};

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use harness::{control, faults, limits, log, pages, server, state};
use xero::webhooks;

pub use harness::clock::Clock;
pub use harness::secret::Secret;
pub use settings::{Limits, Settings};

/// Everything a request handler can reach.
pub struct Shared {
    pub settings: Settings,
    pub clock: Clock,
    world: Mutex<model::World>,
    /// HubRise's world (its own lock: a HubRise call never waits for Xero's).
    hubrise: Mutex<hubrise::model::World>,
    /// The operators' identity provider's people, clients, sessions and codes.
    idp: Mutex<idp::model::World>,
    log: Mutex<log::RequestLog>,
    faults: Mutex<faults::Faults>,
    idempotency: Mutex<api::idempotency::Store>,
    counters: Mutex<limits::Counters>,
    webhooks: webhooks::Outbox,
    /// The RSA keys Xero's identity server signs its access and ID tokens with (RS256).
    xero_keys: std::sync::RwLock<harness::keys::KeySet>,
    /// The RSA keys the operators' identity provider signs with.
    idp_keys: std::sync::RwLock<harness::keys::KeySet>,
    /// Where the whole state is kept between runs (`--state`), if anywhere.
    state: Option<state::StateFile>,
    /// `http://host:port` once bound: the issuer of tokens and the base of webhook resource URLs.
    base_url: OnceLock<String>,
}

impl Shared {
    /// The sandbox's state: seeded, or as `settings.state_file` kept it (written there first when
    /// there is no file yet).
    pub fn open(settings: Settings) -> anyhow::Result<Arc<Self>> {
        let clock = Clock::default();
        let file = settings.state_file.clone().map(state::StateFile::new);
        let saved = match &file {
            Some(f) => f.load()?,
            None => None,
        };
        let loaded = saved.is_some();
        let demo = |pem| harness::keys::KeySet::from_pem(pem);
        let (world, hubrise, idp_world, idempotency, xero_keys, idp_keys) = match saved {
            Some(s) => {
                clock.set_offset_ms(s.clock_offset_ms);
                let mut world = s.world;
                // The app and the limits are configuration: this start's settings say what they are.
                let fresh = seed::world(&settings, clock.now());
                world.apps = fresh.apps;
                world.limits = fresh.limits;
                // A file written before HubRise was emulated has none: seeded.
                let mut hubrise = s
                    .hubrise
                    .unwrap_or_else(|| hubrise::model::World::seed(&settings));
                let seeded = hubrise::model::World::seed(&settings);
                hubrise.clients = seeded.clients;
                hubrise.users = seeded.users;
                hubrise.limits = seeded.limits;
                // A file written before the keys were RSA has none: the demo keys.
                let keys = |saved: Option<Vec<harness::keys::SavedKey>>, pem| match saved {
                    Some(k) => harness::keys::KeySet::restore(&k),
                    None => Ok(demo(pem)),
                };
                // The clients are configuration; the people are kept.
                let mut idp_world = s
                    .idp
                    .unwrap_or_else(|| idp::model::World::seed(&settings.idp));
                idp_world.clients = idp::model::World::seed(&settings.idp).clients;
                (
                    world,
                    hubrise,
                    idp_world,
                    api::idempotency::Store::restore(s.idempotency),
                    keys(s.xero_keys, harness::keys::DEMO_XERO_KEY)
                        .context("the state file's Xero keys")?,
                    keys(s.idp_keys, harness::keys::DEMO_IDP_KEY)
                        .context("the state file's identity provider keys")?,
                )
            }
            None => (
                seed::world(&settings, clock.now()),
                hubrise::model::World::seed(&settings),
                idp::model::World::seed(&settings.idp),
                api::idempotency::Store::default(),
                demo(harness::keys::DEMO_XERO_KEY),
                demo(harness::keys::DEMO_IDP_KEY),
            ),
        };
        let capacity = settings.request_log_capacity;
        let shared = Arc::new(Self {
            clock,
            world: Mutex::new(world),
            hubrise: Mutex::new(hubrise),
            idp: Mutex::new(idp_world),
            log: Mutex::new(log::RequestLog::new(capacity)),
            faults: Mutex::new(faults::Faults::default()),
            idempotency: Mutex::new(idempotency),
            counters: Mutex::new(limits::Counters::default()),
            webhooks: webhooks::Outbox::new(settings.webhooks),
            xero_keys: std::sync::RwLock::new(xero_keys),
            idp_keys: std::sync::RwLock::new(idp_keys),
            state: file,
            base_url: OnceLock::new(),
            settings,
        });
        if let Some(f) = &shared.state {
            if loaded {
                tracing::info!(file = %f.path().display(), "state loaded");
            } else {
                shared
                    .persist()
                    .with_context(|| format!("writing the state file {}", f.path().display()))?;
                tracing::info!(file = %f.path().display(), "state file made from the seed");
            }
        }
        Ok(shared)
    }

    /// A sandbox that keeps nothing between runs (tests, benchmarks).
    pub fn new(settings: Settings) -> Arc<Self> {
        let settings = Settings {
            state_file: None,
            ..settings
        };
        Self::open(settings).expect("a sandbox without a state file always starts")
    }

    /// Writes the whole state to the state file, if there is one (see [`state`]).
    pub fn persist(&self) -> std::io::Result<()> {
        let Some(file) = &self.state else {
            return Ok(());
        };
        file.save(|| {
            let idempotency = self
                .idempotency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entries();
            let world = self.world();
            let hubrise = hubrise::world(self);
            let idp = idp::world(self);
            serde_json::to_vec(&state::SnapshotRef {
                format: state::format(),
                clock_offset_ms: self.clock.offset_ms(),
                xero_keys: self.xero_keys().saved(),
                idp_keys: self.idp_keys().saved(),
                world: &world,
                hubrise: &hubrise,
                idp: &idp,
                idempotency,
            })
        })
    }

    pub fn keeps_state(&self) -> bool {
        self.state.is_some()
    }

    /// Xero's signing keys. Never hold the guard across an `.await`.
    pub fn xero_keys(&self) -> std::sync::RwLockReadGuard<'_, harness::keys::KeySet> {
        self.xero_keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The identity provider's signing keys. Never hold the guard across an `.await`.
    pub fn idp_keys(&self) -> std::sync::RwLockReadGuard<'_, harness::keys::KeySet> {
        self.idp_keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Rotates one issuer's keys (`xero` or `idp`); answers the new `kid`.
    pub fn rotate_keys(&self, issuer: &str) -> String {
        let lock = if issuer == "idp" {
            &self.idp_keys
        } else {
            &self.xero_keys
        };
        let kid = lock.write().unwrap_or_else(|e| e.into_inner()).rotate();
        kid
    }

    /// The world, locked. Never hold the guard across an `.await`.
    pub fn world(&self) -> MutexGuard<'_, model::World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// HubRise's world, locked. Never hold the guard across an `.await`.
    pub fn hubrise(&self) -> MutexGuard<'_, hubrise::model::World> {
        hubrise::world(self)
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
    let shared = Shared::open(settings).map_err(std::io::Error::other)?;
    serve_shared(listener, shared, shutdown).await
}

/// Serves an opened sandbox (see [`Shared::open`]) on `listener` until `shutdown` resolves.
pub async fn serve_shared(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
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
        .merge(hubrise::routes())
        .merge(idp::routes())
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
