//! Every setting of the proxy in one typed struct: defaults, then a TOML file, then environment
//! variables and flags (the binary layers them; see `docs/proxy.toml`).

use ledgerlink_wire::{Provider, Secret};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use url::Url;

/// Xero's real hosts.
pub const XERO_AUTHORIZE_URL: &str = "https://login.xero.com/identity/connect/authorize";
pub const XERO_TOKEN_URL: &str = "https://identity.xero.com/connect/token";
pub const XERO_REVOCATION_URL: &str = "https://identity.xero.com/connect/revocation";
pub const XERO_CONNECTIONS_URL: &str = "https://api.xero.com/connections";
pub const XERO_API_URL: &str = "https://api.xero.com/api.xro/2.0";
/// The least an invoice, payment, shift and refund pusher needs, `offline_access` for refresh
/// included. Granular scopes: Xero refuses the broad `accounting.transactions` (`invalid_scope`) to
/// every app registered since 2 March 2026, and apps registered before must move by September 2027.
pub const DEFAULT_SCOPES: &str = "offline_access accounting.invoices accounting.payments accounting.contacts accounting.settings.read";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub listen: SocketAddr,
    /// What browsers and devices use to reach the proxy; a provider's OAuth callback is
    /// `{public_url}/oauth/{provider}/callback`.
    pub public_url: Url,
    /// Where the proxy keeps its state: a SQLite file (`sqlite:PATH`, or a bare path), or a
    /// Postgres database (`postgres://...`) that several proxies may share.
    pub database: Database,
    /// The Postgres pool, when `database` is Postgres.
    pub postgres: PostgresSettings,
    /// How proxies sharing a database divide the work.
    pub cluster: ClusterSettings,
    /// One section per provider: `[providers.xero]`.
    pub providers: ProviderSettings,
    /// The section's name before the provider seam (`[xero]`): read by `from_toml` into
    /// `providers.xero` (with a warning), so always `None` after it.
    #[serde(rename = "xero")]
    #[doc(hidden)]
    pub legacy_xero: Option<XeroSettings>,
    /// What the settings file still says the old way, each with what to write instead.
    #[serde(skip)]
    pub deprecations: Vec<String>,
    /// Bearer token of the operator API (`/admin/v1/...`); the admin API is off without one.
    pub admin_token: Option<Secret>,
    /// Files holding base64 master keys; the first seals new data, all open old data.
    pub master_key_files: Vec<PathBuf>,
    /// Base64 master keys given directly (`LEDGERLINK_MASTER_KEY`, comma-separated); they come first.
    pub master_keys: Vec<Secret>,
    /// Development mode: creates a master key file (mode 0600) when none exists.
    pub dev: bool,
    /// Public client ids a device may start a pairing with.
    pub public_client_ids: Vec<String>,
    pub pairing: PairingSettings,
    pub devices: DeviceSettings,
    pub refresh: RefreshSettings,
    pub delivery: DeliverySettings,
    pub server: ServerSettings,
    pub limits: LimitsSettings,
    pub admin: AdminSettings,
    /// The vendor's identity provider, for operators (`/console`, `/admin/v1`).
    pub operators: OperatorSettings,
}

/// `[operators]`: the vendor's OpenID provider. Without an issuer, operators use the static
/// `admin_token` only.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorSettings {
    /// The issuer, exactly as its tokens name it (Okta: `https://{domain}/oauth2/default`); its
    /// discovery document is `{issuer}/.well-known/openid-configuration`.
    pub issuer: Option<Url>,
    /// The console's client at the provider (a web application with a secret).
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// The `aud` access tokens for the operator API must carry (Okta's default server:
    /// `api://default`).
    pub audience: String,
    /// Groups (or a script token's scopes) that may read.
    pub viewer_groups: Vec<String>,
    /// Groups (or scopes) that may also change things: unpair, disconnect, retry, discard.
    pub operator_groups: Vec<String>,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            client_id: None,
            client_secret: None,
            audience: "api://default".into(),
            viewer_groups: vec!["ledgerlink-viewers".into()],
            operator_groups: vec!["ledgerlink-operators".into()],
        }
    }
}

/// Where the proxy keeps its state.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file, created and migrated on start; one proxy process at a time.
    Sqlite(PathBuf),
    /// A Postgres database (`postgres://` or `postgresql://`), migrated on start; shared by any
    /// number of proxies. Its URL may hold a password: it never reaches a log.
    Postgres(Secret),
}

impl std::str::FromStr for Database {
    type Err = String;

    /// `postgres://...` or `postgresql://...`: Postgres; `sqlite:PATH` or a bare path: SQLite.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(
                "the database is empty: give a file path, sqlite:PATH or postgres://...".into(),
            );
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(Secret::new(text)));
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err("sqlite: needs a path (sqlite:/var/lib/ledgerlink/proxy.db)".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "'{scheme}://' is not a database this proxy uses: give postgres://..., sqlite:PATH or a file path"
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(text)))
    }
}

impl<'de> Deserialize<'de> for Database {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Database {
    /// What a message may name: the path, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => match Url::parse(url.expose()) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    write!(f, "{u}")
                }
                Err(_) => f.write_str("a postgres:// URL that does not read"),
            },
        }
    }
}

/// The Postgres connection pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSettings {
    /// Connections each proxy keeps at most.
    pub pool_size: usize,
    /// How long a call waits for a free connection (or a new one to open) before it answers
    /// `503 unavailable`.
    pub timeout_secs: u64,
    /// PEM certificates of a private CA that signs the server's certificate (besides the Mozilla
    /// roots). TLS itself is asked for in the URL: `?sslmode=require`.
    pub ca_file: Option<PathBuf>,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            pool_size: 16,
            timeout_secs: 5,
            ca_file: None,
        }
    }
}

impl PostgresSettings {
    pub fn pool(&self) -> crate::store::postgres::PoolSettings {
        crate::store::postgres::PoolSettings {
            size: self.pool_size.max(1),
            timeout: std::time::Duration::from_secs(self.timeout_secs.max(1)),
            ca_file: self.ca_file.clone(),
        }
    }
}

/// How proxies sharing one database divide the work: each connection's delivery is leased to one
/// of them at a time.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// How long a delivery lease lasts unless renewed (renewed every third of it). A proxy that
    /// stops without letting go holds its connections this long before another takes them.
    pub lease_secs: f64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self { lease_secs: 15.0 }
    }
}

impl ClusterSettings {
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.lease_secs)
    }
}

/// What one client may hold of the proxy's connections and time.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// A request's headers must arrive within this many seconds (slow or half-sent requests are
    /// cut off).
    pub header_read_timeout_secs: u64,
    /// A connection with no request in flight is closed after this many seconds.
    pub idle_timeout_secs: u64,
    /// A request's whole body must arrive within this many seconds.
    pub body_read_timeout_secs: u64,
    /// Open connections one client address may hold (IPv6: one /64); more are closed as they are
    /// accepted. Behind a reverse proxy every connection comes from its address: raise this, or set
    /// 0 for no limit, and let the reverse proxy limit clients.
    pub max_connections_per_address: usize,
    /// Event feeds (`GET /v1/events`) one device may hold open at once; one more answers `429`.
    pub max_event_streams_per_device: usize,
    /// The longest a long-poll of the event feed waits (a device may ask for up to 60 s; lower
    /// this behind a load balancer that cuts requests idle for less).
    pub long_poll_max_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 5,
            idle_timeout_secs: 60,
            body_read_timeout_secs: 30,
            max_connections_per_address: 256,
            max_event_streams_per_device: 8,
            long_poll_max_secs: 60,
        }
    }
}

/// How large a pushed document may be: derived from Xero's, so nothing is accepted that could only
/// fail there (and no request can make the proxy hold much more than it must).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// Lines in one document. The default keeps any one document's Xero JSON under Xero's 3.5 MB
    /// request limit in the worst case: a line whose 4,000-character description is all 4-byte
    /// characters takes 16,000 bytes, its codes (10 and 40 characters, 4 bytes each) 200, its
    /// amounts and keys about 110: 16,310 bytes; 200 lines are 3,262,000 bytes, and the invoice's
    /// other fields (a 255-character reference, contact, dates) stay under 2,000.
    pub max_lines_per_document: usize,
    /// Bytes in one request body; a larger one answers `413 payload_too_large`. 4 MiB: one
    /// document at the line limit, or a batch of smaller ones.
    pub max_body_bytes: usize,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            max_lines_per_document: ledgerlink_wire::validate::DEFAULT_MAX_LINES,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The operator API's guard against guessing its token.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Wrong tokens one client address may present per window; after that every call from it
    /// answers `429` until the window turns.
    pub max_failures_per_address: u32,
    pub window_secs: u64,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            max_failures_per_address: 10,
            window_secs: 600,
        }
    }
}

/// How fast the delivery engine calls Xero: Xero's limits, which the engine stays under.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Calls per organisation per window (Xero: 60 a minute).
    pub tenant_per_window: u32,
    /// Calls per app per window across all organisations (Xero: 10,000 a minute).
    pub app_per_window: u32,
    /// The fixed window's length in seconds (Xero: 60).
    pub window_secs: u64,
    /// How long Xero replays an `Idempotency-Key`'s answer (about 6 minutes; kept a little
    /// shorter). A bundle with an unknown outcome older than this is looked up before it is resent.
    pub replay_window_secs: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            tenant_per_window: 60,
            app_per_window: 10_000,
            window_secs: 60,
            replay_window_secs: 300,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            public_url: Url::parse("http://127.0.0.1:7400").expect("a valid URL"),
            database: Database::Sqlite(PathBuf::from("ledgerlink-proxy.db")),
            postgres: PostgresSettings::default(),
            cluster: ClusterSettings::default(),
            providers: ProviderSettings::default(),
            legacy_xero: None,
            deprecations: Vec::new(),
            admin_token: None,
            master_key_files: Vec::new(),
            master_keys: Vec::new(),
            dev: false,
            public_client_ids: vec![ledgerlink_wire::DEFAULT_PUBLIC_CLIENT_ID.to_string()],
            pairing: PairingSettings::default(),
            devices: DeviceSettings::default(),
            refresh: RefreshSettings::default(),
            delivery: DeliverySettings::default(),
            server: ServerSettings::default(),
            limits: LimitsSettings::default(),
            admin: AdminSettings::default(),
            operators: OperatorSettings::default(),
        }
    }
}

/// Each provider's settings (`[providers.NAME]`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderSettings {
    pub xero: XeroSettings,
    pub hubrise: HubRiseSettings,
}

impl ProviderSettings {
    /// The most organisations of `provider` this proxy connects (`None`: no cap).
    pub fn connection_cap(&self, provider: ledgerlink_wire::Provider) -> Option<u32> {
        match provider {
            ledgerlink_wire::Provider::Xero => self.xero.connection_cap(),
            // One connection per location; HubRise sets no cap on them.
            ledgerlink_wire::Provider::HubRise => None,
        }
    }
}

/// HubRise's real hosts: its OAuth server and its API.
pub const HUBRISE_MANAGER_URL: &str = "https://manager.hubrise.com";
pub const HUBRISE_API_URL: &str = "https://api.hubrise.com/v1";
/// What a till needs of a location: to create (and so read) its orders.
pub const HUBRISE_DEFAULT_SCOPE: &str = "location[orders.write]";

/// `[providers.hubrise]`: HubRise is offered to devices once a client id and secret are set.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct HubRiseSettings {
    /// The HubRise client's id (empty: HubRise is not offered).
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// One URL standing in for both of HubRise's hosts (the sandbox). Default: the real hosts.
    pub base_url: Option<Url>,
    /// The scope to ask for (default `location[orders.write]`).
    pub scope: Option<String>,
    /// How long one call to HubRise may take before it counts as lost.
    pub timeout_secs: Option<u64>,
    /// HubRise's limits per connection (its published ones unless a test scales them).
    pub limits: HubRiseLimits,
}

/// HubRise's limits per connection, in clock-aligned windows: a minute, an hour (60 minutes) and a
/// day (1,440), and heavy reads (order lists) a minute. `minute_secs` scales all three windows
/// together for tests and benchmarks against a sandbox scaled the same way.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HubRiseLimits {
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_day: u32,
    pub heavy_per_minute: u32,
    pub minute_secs: u64,
}

impl Default for HubRiseLimits {
    fn default() -> Self {
        Self {
            per_minute: 500,
            per_hour: 2_500,
            per_day: 10_000,
            heavy_per_minute: 10,
            minute_secs: 60,
        }
    }
}

/// Where each HubRise endpoint is.
#[derive(Debug, Clone)]
pub struct HubRiseEndpoints {
    pub authorize: Url,
    pub token: Url,
    pub revoke: Url,
    pub api: Url,
}

impl HubRiseSettings {
    /// Whether devices may pair with HubRise here.
    pub fn configured(&self) -> bool {
        !self.client_id.is_empty() && self.client_secret.is_some()
    }

    pub fn endpoints(&self) -> Result<HubRiseEndpoints, url::ParseError> {
        let (manager, api) = match &self.base_url {
            Some(base) => {
                let base = base.as_str().trim_end_matches('/').to_string();
                (base.clone(), format!("{base}/v1"))
            }
            None => (HUBRISE_MANAGER_URL.to_string(), HUBRISE_API_URL.to_string()),
        };
        Ok(HubRiseEndpoints {
            authorize: Url::parse(&format!("{manager}/oauth2/v1/authorize"))?,
            token: Url::parse(&format!("{manager}/oauth2/v1/token"))?,
            revoke: Url::parse(&format!("{manager}/oauth2/v1/revoke"))?,
            api: Url::parse(&api)?,
        })
    }

    pub fn scope(&self) -> &str {
        self.scope.as_deref().unwrap_or(HUBRISE_DEFAULT_SCOPE)
    }
}

/// An uncertified Xero app's cap on connected organisations.
pub const DEFAULT_CONNECTION_CAP: u32 = 25;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct XeroSettings {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// One URL standing in for all of Xero's hosts (the sandbox). Each endpoint below overrides it.
    pub base_url: Option<Url>,
    pub authorize_url: Option<Url>,
    pub token_url: Option<Url>,
    pub revocation_url: Option<Url>,
    pub connections_url: Option<Url>,
    pub api_url: Option<Url>,
    /// Space-separated scopes to ask for.
    pub scopes: Option<String>,
    /// The key Xero signs webhooks with (the app's "webhooks key"); webhooks are refused without it.
    pub webhook_key: Option<Secret>,
    /// How long one call to Xero may take before it counts as lost (its outcome unknown).
    pub timeout_secs: Option<u64>,
    /// How many organisations may be connected at once: the Xero app's own cap (25 until Xero
    /// certifies it, then its tier's). `0` means no cap (an Enterprise app). Default 25.
    pub connection_cap: Option<u32>,
}

/// Where each Xero endpoint is.
#[derive(Debug, Clone)]
pub struct XeroEndpoints {
    pub authorize: Url,
    pub token: Url,
    pub revocation: Url,
    pub connections: Url,
    pub api: Url,
}

impl XeroSettings {
    pub fn endpoints(&self) -> Result<XeroEndpoints, url::ParseError> {
        let pick = |own: &Option<Url>, path: &str, real: &str| -> Result<Url, url::ParseError> {
            match (own, &self.base_url) {
                (Some(u), _) => Ok(u.clone()),
                (None, Some(base)) => {
                    Url::parse(&format!("{}{path}", base.as_str().trim_end_matches('/')))
                }
                (None, None) => Url::parse(real),
            }
        };
        Ok(XeroEndpoints {
            authorize: pick(
                &self.authorize_url,
                "/identity/connect/authorize",
                XERO_AUTHORIZE_URL,
            )?,
            token: pick(&self.token_url, "/connect/token", XERO_TOKEN_URL)?,
            revocation: pick(
                &self.revocation_url,
                "/connect/revocation",
                XERO_REVOCATION_URL,
            )?,
            connections: pick(&self.connections_url, "/connections", XERO_CONNECTIONS_URL)?,
            api: pick(&self.api_url, "/api.xro/2.0", XERO_API_URL)?,
        })
    }

    /// The cap on connected organisations, `None` when there is none.
    pub fn connection_cap(&self) -> Option<u32> {
        match self.connection_cap.unwrap_or(DEFAULT_CONNECTION_CAP) {
            0 => None,
            n => Some(n),
        }
    }

    pub fn scopes(&self) -> &str {
        self.scopes.as_deref().unwrap_or(DEFAULT_SCOPES)
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairingSettings {
    /// How long a pairing (and its user code) lives: RFC 8628 suggests 600-900 s.
    pub expires_in_secs: u64,
    /// Seconds between polls; a faster poll gets `slow_down` and 5 more seconds.
    pub interval_secs: u64,
    /// Wrong code entries that lock code entry for a browser session.
    pub max_wrong_codes_per_session: u32,
    /// Code entries (right or wrong) allowed per client address per window.
    pub max_code_attempts_per_address: u32,
    pub address_window_secs: u64,
    /// New pairings allowed per client address per window.
    pub max_pairings_per_address: u32,
    /// Behind a reverse proxy: count the left-most `X-Forwarded-For` address instead of the peer.
    /// Only turn on when that proxy sets the header (and strips any the client sent).
    pub trust_forwarded_for: bool,
    /// How long a "Continue to Xero" stays good (the OAuth `state`).
    pub state_ttl_secs: u64,
}

impl Default for PairingSettings {
    fn default() -> Self {
        Self {
            expires_in_secs: 900,
            interval_secs: 5,
            max_wrong_codes_per_session: 5,
            max_code_attempts_per_address: 30,
            address_window_secs: 600,
            max_pairings_per_address: 30,
            trust_forwarded_for: false,
            state_ttl_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceSettings {
    pub access_token_secs: u64,
    /// A rotated-out refresh token used again within this many seconds (two processes of one device
    /// racing) gets the current pair; later, it revokes the device.
    pub refresh_reuse_grace_secs: u64,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            access_token_secs: 3600,
            refresh_reuse_grace_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefreshSettings {
    /// Refresh an access token this long before it expires.
    pub ahead_secs: u64,
    /// Refresh a token set nobody used for this many days (Xero drops unused refresh tokens at 60).
    pub idle_refresh_days: u64,
    /// How often the idle refresher looks.
    pub idle_check_secs: u64,
    /// Attempts for one refresh when Xero cannot be reached or its answer is lost.
    pub attempts: u32,
    /// How often a connection parked because Xero refused its API calls (while the refresh
    /// worked) is probed again with `GET /Organisation`.
    pub reprobe_secs: u64,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        Self {
            ahead_secs: 300,
            idle_refresh_days: 30,
            idle_check_secs: 3600,
            attempts: 4,
            reprobe_secs: 300,
        }
    }
}

impl Settings {
    /// Reads a settings file. A `[xero]` section (the name before `[providers.xero]`) is still
    /// taken, and said in `deprecations`; both at once is refused (which one would be meant?).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let mut s: Settings = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(old) = s.legacy_xero.take() {
            let has_new = toml::from_str::<toml::Table>(text)
                .ok()
                .and_then(|t| t.get("providers")?.get("xero").cloned())
                .is_some();
            if has_new {
                return Err(
                    "both [xero] and [providers.xero] are set: keep only [providers.xero]".into(),
                );
            }
            s.providers.xero = old;
            s.deprecations.push(
                "the [xero] section is deprecated: rename it [providers.xero] (the settings are the same)".into(),
            );
        }
        Ok(s)
    }

    /// The redirect URI to register with Xero.
    pub fn callback_url(&self) -> Url {
        self.callback_url_for(Provider::Xero)
    }

    /// Where `provider` sends the person back after consent (`{public_url}/oauth/NAME/callback`).
    pub fn callback_url_for(&self, provider: Provider) -> Url {
        self.public_url
            .join(&format!("oauth/{}/callback", provider.as_str()))
            .expect("a path joins onto a base URL")
    }

    /// Where `provider` posts its notifications (`{public_url}/webhooks/NAME`).
    pub fn webhook_url_for(&self, provider: Provider) -> Url {
        self.public_url
            .join(&format!("webhooks/{}", provider.as_str()))
            .expect("a path joins onto a base URL")
    }

    /// Problems that stop the proxy from starting, each saying what to fix.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if matches!(self.database, Database::Postgres(_))
            && self.dev
            && self.master_keys.is_empty()
            && self.master_key_files.is_empty()
        {
            out.push("with a Postgres database, --dev needs --master-key-file (or LEDGERLINK_MASTER_KEY): every proxy sharing it must use the same key, so none may make its own".into());
        }
        if self.providers.xero.client_id.trim().is_empty() {
            out.push("--xero-client-id (LEDGERLINK_XERO_CLIENT_ID) is required".into());
        }
        if self.providers.xero.client_secret.is_none() {
            out.push("--xero-client-secret (LEDGERLINK_XERO_CLIENT_SECRET) is required".into());
        }
        if let Err(e) = self.providers.xero.endpoints() {
            out.push(format!("a Xero URL is not valid: {e}"));
        }
        if self.public_client_ids.is_empty() {
            out.push("at least one public client id is needed".into());
        }
        if !(60..=3600).contains(&self.pairing.expires_in_secs) {
            out.push("pairing.expires_in_secs must be between 60 and 3600".into());
        }
        if !(0.3..=3600.0).contains(&self.cluster.lease_secs) {
            out.push("cluster.lease_secs must be between 0.3 and 3600 (15 is the default)".into());
        }
        if self.pairing.interval_secs == 0 {
            out.push("pairing.interval_secs must be at least 1".into());
        }
        if self.server.max_event_streams_per_device == 0 {
            out.push("server.max_event_streams_per_device must be at least 1".into());
        }
        if self.limits.max_lines_per_document == 0 {
            out.push("limits.max_lines_per_document must be at least 1".into());
        }
        if self.limits.max_body_bytes < 64 * 1024 {
            out.push("limits.max_body_bytes must be at least 65536".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_base_url_stands_in_for_every_xero_host_and_each_can_be_overridden() {
        let mut x = XeroSettings {
            base_url: Some(Url::parse("http://127.0.0.1:7300/").unwrap()),
            ..Default::default()
        };
        let e = x.endpoints().unwrap();
        assert_eq!(e.token.as_str(), "http://127.0.0.1:7300/connect/token");
        assert_eq!(e.api.as_str(), "http://127.0.0.1:7300/api.xro/2.0");
        x.token_url = Some(Url::parse("http://127.0.0.1:9/t").unwrap());
        assert_eq!(
            x.endpoints().unwrap().token.as_str(),
            "http://127.0.0.1:9/t"
        );
        let real = XeroSettings::default().endpoints().unwrap();
        assert_eq!(real.authorize.as_str(), XERO_AUTHORIZE_URL);
    }

    #[test]
    fn the_callback_is_under_the_public_url() {
        let s = Settings {
            public_url: Url::parse("https://ll.example.com/").unwrap(),
            ..Default::default()
        };
        assert_eq!(
            s.callback_url().as_str(),
            "https://ll.example.com/oauth/xero/callback"
        );
    }

    #[test]
    fn the_database_is_a_postgres_url_a_sqlite_path_or_a_bare_path() {
        let parse = |t: &str| t.parse::<Database>();
        assert!(matches!(
            parse("postgres://u:p@127.0.0.1:5432/ll"),
            Ok(Database::Postgres(_))
        ));
        assert!(matches!(
            parse("postgresql://127.0.0.1/ll"),
            Ok(Database::Postgres(_))
        ));
        assert!(
            matches!(parse("sqlite:/var/lib/ll/proxy.db"), Ok(Database::Sqlite(p)) if p == std::path::Path::new("/var/lib/ll/proxy.db"))
        );
        assert!(
            matches!(parse("proxy.db"), Ok(Database::Sqlite(p)) if p == std::path::Path::new("proxy.db"))
        );
        for bad in ["", "sqlite:", "mysql://x/y"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // A password never shows in what a message names.
        let shown = parse("postgres://ll:hunter2@db:5432/ll")
            .unwrap()
            .to_string();
        assert!(
            !shown.contains("hunter2") && shown.contains("db:5432"),
            "{shown}"
        );
        assert!(
            !format!("{:?}", parse("postgres://ll:hunter2@db/ll").unwrap()).contains("hunter2")
        );
        // With Postgres, --dev needs a key every replica shares.
        let s = Settings {
            database: parse("postgres://db/ll").unwrap(),
            dev: true,
            ..Settings::default()
        };
        assert!(
            s.problems().iter().any(|p| p.contains("--master-key-file")),
            "{:?}",
            s.problems()
        );
    }

    #[test]
    fn the_sample_file_parses() {
        let s = Settings::from_toml(include_str!("../../../docs/proxy.toml")).unwrap();
        assert_eq!(s.pairing.interval_secs, 5);
        // It says what the defaults are.
        assert_eq!(s.providers.hubrise.limits, HubRiseLimits::default());
    }
}
