//! `ledgerlink-proxy`: the comms proxy. It owns the Xero client secret and every organisation's
//! tokens (encrypted at rest, refreshed single-flight), and pairs desktop devices to connected
//! organisations through browser consent, so a device never holds either.
//!
//! Start it in-process with [`Proxy::start`] (tests bind `127.0.0.1:0`) or run the binary.

pub mod api;
pub mod body;
pub mod cli;
pub mod clock;
pub mod connections;
pub mod cookies;
pub mod crypto;
pub mod delivery;
pub mod device;
pub mod documents;
pub mod error;
pub mod keys;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod operators;
pub mod pairing;
pub mod providers;
pub mod server;
pub mod settings;
pub mod store;
pub mod streams;
pub mod vault;

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub use clock::{Clock, SystemClock};
pub use settings::Settings;

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub storage: store::Storage,
    pub keyring: Arc<crypto::Keyring>,
    pub xero: Arc<providers::xero::oauth::XeroClient>,
    /// HubRise's client, when `[providers.hubrise]` is set up.
    pub hubrise: Option<Arc<providers::hubrise::oauth::HubRiseClient>>,
    pub vault: Arc<vault::Vault>,
    pub clock: Arc<dyn Clock>,
    pub throttle: Arc<pairing::Throttle>,
    /// When each connection was last checked with Xero.
    pub checked: Arc<Mutex<HashMap<Uuid, DateTime<Utc>>>>,
    /// This proxy process among those sharing the database: the holder of its delivery leases.
    pub replica: Uuid,
    /// Wakes the delivery engine when documents arrive.
    pub outbox_ready: Arc<tokio::sync::Notify>,
    /// Wakes event readers (long-poll and SSE) when events are stored.
    pub events_ready: Arc<tokio::sync::Notify>,
    /// Each organisation's accounts and tax rates as last read from Xero, and when.
    pub offers: Arc<Mutex<Offers>>,
    /// Open event feeds per device (capped, and ended with the credentials that opened them).
    pub streams: Arc<streams::Streams>,
    /// Contact searches per (connection, lower-cased query), kept a minute.
    pub contact_searches: Arc<Mutex<ContactSearches>>,
    /// Pushes being checked at once: one per processor. A parsed body takes several times its
    /// size, so eight 4 MiB pushes at once would hold eight times that; in turn they hold two.
    pub intake: Arc<tokio::sync::Semaphore>,
    /// The operators' identity provider, when `[operators] issuer` is set.
    pub operators: Option<Arc<operators::Operators>>,
    /// What `/metrics` reports.
    pub metrics: Arc<metrics::Metrics>,
}

impl AppState {
    /// How a grant of `provider` stays usable (and whether it still reaches an organisation);
    /// `None` when the provider is not set up here.
    pub fn grants(
        &self,
        provider: ledgerlink_wire::Provider,
    ) -> Option<Arc<dyn providers::Grants>> {
        match provider {
            ledgerlink_wire::Provider::Xero => Some(self.xero.clone()),
            ledgerlink_wire::Provider::HubRise => self
                .hubrise
                .clone()
                .map(|h| h as Arc<dyn providers::Grants>),
        }
    }

    /// How a connection to `provider` comes to exist through the person's browser; `None` when
    /// the provider is not set up here.
    pub fn consent(
        &self,
        provider: ledgerlink_wire::Provider,
    ) -> Option<Arc<dyn providers::BrowserConsent>> {
        match provider {
            ledgerlink_wire::Provider::Xero => Some(self.xero.clone()),
            ledgerlink_wire::Provider::HubRise => self
                .hubrise
                .clone()
                .map(|h| h as Arc<dyn providers::BrowserConsent>),
        }
    }
}

/// Contact searches per (connection, query), with the time they were answered.
pub type ContactSearches = HashMap<
    (Uuid, String),
    (
        DateTime<Utc>,
        Vec<ledgerlink_wire::documents::ContactSuggestion>,
    ),
>;

/// What each connection's books hold for mappings, with the time they were read.
pub type Offers = HashMap<Uuid, (DateTime<Utc>, providers::Books)>;

impl AppState {
    /// Opens the database (creating and migrating it; refused when another proxy has it open),
    /// loads the master keys and checks them against it, and builds the Xero client. Fails with a
    /// message that says what to fix.
    pub async fn new(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let problems = settings.problems();
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
        let keyring = Arc::new(keys::load(&settings)?);
        let storage = match &settings.database {
            settings::Database::Sqlite(path) => {
                store::Storage::sqlite(store::SqliteStore::open(path).map_err(|e| match e {
                    store::StoreError::InUse(why) => anyhow::anyhow!("{why}"),
                    other => anyhow::anyhow!("opening the database {}: {other}", path.display()),
                })?)
            }
            settings::Database::Postgres(url) => store::Storage::new(
                store::postgres::PostgresStore::connect(url.expose(), &settings.postgres.pool())
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("the database {} cannot be used: {e}", settings.database)
                    })?,
            ),
        };
        keys::check_database(storage.vault(), &keyring, clock.now()).await?;
        let xero = Arc::new(providers::xero::oauth::XeroClient::new(&settings)?);
        let settings_streams = settings.server.max_event_streams_per_device;
        let hubrise = providers::hubrise::oauth::HubRiseClient::new(&settings)?.map(Arc::new);
        let mut grants: HashMap<String, Arc<dyn providers::Grants>> = HashMap::new();
        grants.insert(
            ledgerlink_wire::Provider::Xero.as_str().into(),
            xero.clone(),
        );
        if let Some(h) = &hubrise {
            grants.insert(
                ledgerlink_wire::Provider::HubRise.as_str().into(),
                h.clone(),
            );
        }
        let metrics = Arc::new(metrics::Metrics::default());
        let vault = Arc::new(
            vault::Vault::new(
                storage.clone(),
                keyring.clone(),
                grants,
                clock.clone(),
                settings.refresh,
            )
            .with_metrics(metrics.clone()),
        );
        let throttle = Arc::new(pairing::Throttle::new(storage.clone()));
        let operators = operators::Operators::new(&settings.operators);
        Ok(Self {
            operators,
            metrics,
            settings: Arc::new(settings),
            storage,
            keyring,
            xero,
            hubrise,
            vault,
            clock,
            throttle,
            checked: Arc::new(Mutex::new(HashMap::new())),
            replica: Uuid::new_v4(),
            outbox_ready: Arc::new(tokio::sync::Notify::new()),
            events_ready: Arc::new(tokio::sync::Notify::new()),
            offers: Arc::default(),
            contact_searches: Arc::default(),
            streams: streams::Streams::new(settings_streams),
            intake: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        })
    }
}

/// The routes the OpenAPI document describes: the device API and the operator API, each handler
/// carrying its own description.
pub fn api_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa::OpenApi;
    utoipa_axum::router::OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(pairing::api_routes())
        .merge(api::routes())
        .merge(documents::routes())
}

/// Every route of the proxy.
pub fn router(state: AppState) -> axum::Router {
    let (api, description) = api_routes().split_for_parts();
    let description = Arc::new(description);
    axum::Router::new()
        .merge(api)
        .merge(pairing::page_routes(&state))
        .merge(providers::webhook_routes())
        .merge(operators::console::routes())
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || {
                let description = description.clone();
                async move { axum::Json(description.as_ref().clone()) }
            }),
        )
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish. Runs the idle refresher
/// and the delivery engine alongside.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Aborted when this future ends or is dropped (a killed server takes its workers with it).
    let _idle = AbortOnDrop(tokio::spawn(idle_refresher(state.clone())));
    let _reprobe = AbortOnDrop(tokio::spawn(reprober(state.clone())));
    let _release = AbortOnDrop(tokio::spawn(memory_releaser(state.clone())));
    let _wakeups = AbortOnDrop(tokio::spawn(hear_other_proxies(state.clone())));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut delivery = AbortOnDrop(tokio::spawn(delivery::run(state.clone(), stop.clone())));
    let limits = state.settings.server;
    let served = server::serve(listener, router(state), limits, shutdown).await;
    // Stopping, not killed: the delivery leases are let go with their pacing, so another proxy
    // carries on at once rather than when they run out.
    stop.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut delivery.0).await;
    served
}

/// Wakes this proxy's event readers and delivery engine when another proxy sharing the database
/// records events or queues documents (its own wake them directly too).
async fn hear_other_proxies(state: AppState) {
    let (events, outbox) = (state.events_ready.clone(), state.outbox_ready.clone());
    let wake = Arc::new(move |w: store::Wakeup| match w {
        store::Wakeup::Events => events.notify_waiters(),
        store::Wakeup::Outbox => outbox.notify_one(),
    });
    state.storage.wakeups().listen(wake).await;
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Refreshes token sets nobody used for a while, so Xero never drops one for being unused, and sweeps
/// away pairings and credentials that can no longer be used.
async fn idle_refresher(state: AppState) {
    let every = std::time::Duration::from_secs(state.settings.refresh.idle_check_secs.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let n = state.vault.refresh_idle().await;
        if n > 0 {
            tracing::info!(refreshed = n, "refreshed idle token sets");
        }
        let now = state.clock.now();
        let (short, long) = (
            now - chrono::Duration::days(1),
            now - chrono::Duration::days(30),
        );
        match state.storage.health().sweep(short, long).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "swept expired pairings and credentials"),
            Err(e) => tracing::error!(error = %e, "sweeping failed"),
        }
    }
}

/// Gives back the database's page caches once it has been quiet for half a minute, so the memory
/// of a burst goes back to the system (docs/BENCHMARKS.md, "Proxy memory").
async fn memory_releaser(state: AppState) {
    let quiet = std::time::Duration::from_secs(30);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Ok(true) = state.storage.health().release_memory(quiet).await {
            tracing::debug!("released the database's page caches");
        }
    }
}

/// Every `refresh.reprobe_secs`, asks Xero again about connections parked by refused API calls.
async fn reprober(state: AppState) {
    let every = std::time::Duration::from_secs(state.settings.refresh.reprobe_secs.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let n = connections::reprobe(&state).await;
        if n > 0 {
            tracing::info!(recovered = n, "connections recovered by the re-probe");
        }
    }
}

/// A running proxy: its address, its state, and a handle that stops it.
pub struct Proxy {
    addr: SocketAddr,
    state: Option<AppState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Proxy {
    /// Serves on a listener the caller bound (so it can put the address in `public_url` first).
    pub async fn start(
        listener: tokio::net::TcpListener,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let state = AppState::new(settings, clock).await?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            state: Some(state),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The running proxy's state. Panics after [`Proxy::kill`].
    pub fn state(&self) -> &AppState {
        self.state.as_ref().expect("the proxy is running")
    }

    /// Ends the server and its workers at once, mid-request if need be (as a crash would), and waits
    /// until they are gone and the database is closed (its lock let go, as the kernel does for a
    /// killed process), so a new proxy can open it.
    pub async fn kill(&mut self) {
        self.shutdown.take();
        let Some(state) = self.state.take() else {
            return;
        };
        let store = state.storage.downgrade();
        drop(state);
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        // Aborted tasks let go of the store as the runtime drops them; a blocking call under way
        // finishes first.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.strong_count() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the killed proxy still holds its database after 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
