//! The end-to-end harness: a real sandbox and a real proxy on 127.0.0.1:0, a device client speaking
//! the proxy's device API, and a "browser" (an HTTP client with cookies) that fills in the HTML forms
//! of both, as a person would. The proxy's clock is the sandbox's, so moving the sandbox's clock moves
//! both.

pub mod html;
pub mod logs;

use ledgerlink_proxy::{Clock, Proxy, Settings};
use ledgerlink_sandbox::seed::{DEMO_NZ_TENANT_ID, DEMO_UK_TENANT_ID};
use ledgerlink_sandbox::Sandbox;
use ledgerlink_wire::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

pub const NZ: Uuid = DEMO_NZ_TENANT_ID;
pub const UK: Uuid = DEMO_UK_TENANT_ID;
pub const CLIENT_ID: &str = ledgerlink_sandbox::settings::DEMO_CLIENT_ID;
pub const CLIENT_SECRET: &str = ledgerlink_sandbox::settings::DEMO_CLIENT_SECRET;
pub const HUBRISE_CLIENT_ID: &str = ledgerlink_sandbox::settings::DEMO_HUBRISE_CLIENT_ID;
pub const HUBRISE_CLIENT_SECRET: &str = ledgerlink_sandbox::settings::DEMO_HUBRISE_CLIENT_SECRET;
/// The demo HubRise account's locations.
pub const PARIS: &str = "b7m3k-0";
pub const LYON: &str = "b7m3k-1";

/// An `[operators] issuer` a world replaces with its sandbox's identity provider (and the
/// console's client there, its callback registered): `settings.operators.issuer =
/// Some(SANDBOX_IDP.parse()?)`.
pub const SANDBOX_IDP: &str = "http://sandbox-idp.invalid/";

/// The proxy reads the sandbox's clock.
pub struct SandboxClock(pub Arc<ledgerlink_sandbox::Shared>);

impl Clock for SandboxClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.clock.now()
    }
}

/// An answer: status, headers, body text and JSON (Null when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Answer {
    pub async fn read(r: reqwest::Response) -> Self {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            json,
        }
    }

    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("a redirect")
    }

    pub fn code(&self) -> &str {
        self.json["code"]
            .as_str()
            .or_else(|| self.json["error"].as_str())
            .unwrap_or_default()
    }
}

pub struct World {
    pub sandbox: Sandbox,
    pub proxy: Proxy,
    /// What the proxy was started with (master key included), to start it again.
    pub proxy_settings: Settings,
    pub sandbox_url: String,
    pub proxy_url: String,
    /// The SQLite file, when the proxy is on SQLite (see [`backend`]).
    pub db: PathBuf,
    /// Every body any client of this world received, to prove what never appears in one.
    pub seen: Arc<std::sync::Mutex<Vec<String>>>,
    http: reqwest::Client,
    _dir: TempDir,
    /// The proxy's own Postgres database, when it is on Postgres: dropped last, after the proxy.
    _pg: Option<ledgerlink_proxy::store::postgres::testing::TestDatabase>,
}

/// Which database the worlds' proxies use: `LEDGERLINK_E2E_BACKEND=postgres` for a database of
/// each world's own on the test PostgreSQL (`scripts/test` runs the pairing, push, fault and crash
/// tests so, after the whole suite on SQLite); SQLite otherwise.
pub fn backend() -> &'static str {
    match std::env::var("LEDGERLINK_E2E_BACKEND").as_deref() {
        Ok("postgres") => "postgres",
        Ok("sqlite") | Err(_) => "sqlite",
        Ok(other) => panic!("LEDGERLINK_E2E_BACKEND={other}: use sqlite or postgres"),
    }
}

/// The refresh-token calls among the sandbox's `requests` (`World::sandbox_requests`), each with
/// the status it was answered.
pub fn refresh_calls(requests: &[Value]) -> Vec<Option<u64>> {
    requests
        .iter()
        .filter(|r| {
            r["path"] == "/connect/token"
                && r["body"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("grant_type=refresh_token")
        })
        .map(|r| r["status"].as_u64())
        .collect()
}

/// `pid` and every process below it (Linux `/proc`): the desktop app and WebKit's processes.
pub fn process_family(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The parent is the second field after the command name in parentheses.
        let after = &stat[stat.rfind(')').unwrap_or(0) + 1..];
        if let Some(ppid) = after
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok())
        {
            parents.push((p, ppid));
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// The proxy binary running as a process of its own; killed (SIGKILL) when dropped.
pub struct ProxyProcess {
    pub child: std::process::Child,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Proxy settings for tests: code-entry throttles raised (every test browser is 127.0.0.1) and
/// delivery paced for a sandbox whose limits are lifted (pacing itself is measured by the delivery
/// benchmark, not here).
pub fn settings() -> Settings {
    let mut s = Settings::default();
    s.pairing.max_code_attempts_per_address = 10_000;
    s.pairing.max_pairings_per_address = 10_000;
    s.delivery.tenant_per_window = 60_000;
    // A proxy stopped mid-round (a test's restart) holds its connections this long.
    s.cluster.lease_secs = 2.0;
    s
}

impl World {
    pub async fn start() -> Self {
        Self::start_with(settings()).await
    }

    pub async fn start_with(settings: Settings) -> Self {
        Self::start_on(settings, backend()).await
    }

    /// [`World::start_with`] on `backend` (`sqlite` or `postgres`) whatever the run's.
    pub async fn start_on(mut settings: Settings, backend: &str) -> Self {
        logs::capture();
        // The proxy's address first: HubRise's client is registered with its callback.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_url = format!("http://{}", listener.local_addr().unwrap());
        let mut sandbox_settings = ledgerlink_sandbox::Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        };
        sandbox_settings.hubrise.redirect_uris =
            vec![format!("{proxy_url}/oauth/hubrise/callback")];
        let sandbox = Sandbox::start(sandbox_settings).await.unwrap();
        let sandbox_url = sandbox.url();
        let dir = TempDir(std::env::temp_dir().join(format!("ll-e2e-{}", Uuid::new_v4())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let db = dir.0.join("proxy.db");

        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let lifted = json!({"tenant_per_window": 1_000_000, "tenant_per_day": 1_000_000, "app_per_window": 1_000_000});
        let r = http
            .put(format!("{sandbox_url}/_sandbox/limits"))
            .json(&lifted)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let callback = format!("{proxy_url}/oauth/xero/callback");
        let r = http
            .put(format!("{sandbox_url}/_sandbox/apps/{CLIENT_ID}"))
            .json(&json!({"redirect_uris": [callback]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        settings.listen = listener.local_addr().unwrap();
        settings.public_url = url::Url::parse(&proxy_url).unwrap();
        let pg = match backend {
            // A test that brings its own database keeps it.
            _ if matches!(
                settings.database,
                ledgerlink_proxy::settings::Database::Postgres(_)
            ) =>
            {
                None
            }
            "postgres" => {
                let pg = ledgerlink_proxy::store::postgres::testing::TestDatabase::migrated().await;
                settings.database =
                    ledgerlink_proxy::settings::Database::Postgres(Secret::new(pg.url()));
                Some(pg)
            }
            _ => {
                settings.database = ledgerlink_proxy::settings::Database::Sqlite(db.clone());
                None
            }
        };
        settings.providers.xero.client_id = CLIENT_ID.into();
        settings.providers.xero.client_secret = Some(Secret::new(CLIENT_SECRET));
        settings.providers.xero.base_url = Some(url::Url::parse(&sandbox_url).unwrap());
        settings.providers.hubrise.client_id = HUBRISE_CLIENT_ID.into();
        settings.providers.hubrise.client_secret = Some(Secret::new(HUBRISE_CLIENT_SECRET));
        settings.providers.hubrise.base_url = Some(url::Url::parse(&sandbox_url).unwrap());
        settings.master_keys = vec![Secret::new(
            ledgerlink_proxy::crypto::MasterKey::generate_base64(),
        )];
        if settings
            .operators
            .issuer
            .as_ref()
            .is_some_and(|u| u.as_str() == SANDBOX_IDP)
        {
            use ledgerlink_sandbox::settings::{DEMO_OIDC_CLIENT_ID, DEMO_OIDC_CLIENT_SECRET};
            settings.operators.issuer =
                Some(url::Url::parse(&format!("{sandbox_url}/oauth2/default")).unwrap());
            settings.operators.client_id = Some(DEMO_OIDC_CLIENT_ID.into());
            settings.operators.client_secret = Some(Secret::new(DEMO_OIDC_CLIENT_SECRET));
            let r = http
                .put(format!(
                    "{sandbox_url}/_sandbox/idp/clients/{DEMO_OIDC_CLIENT_ID}"
                ))
                .json(
                    &json!({"redirect_uris": [format!("{proxy_url}/console/callback")],
                              "post_logout_redirect_uris": [format!("{proxy_url}/console")]}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let clock = Arc::new(SandboxClock(sandbox.shared().clone()));
        let proxy = Proxy::start(listener, settings.clone(), clock)
            .await
            .unwrap();
        Self {
            sandbox,
            proxy,
            proxy_settings: settings,
            sandbox_url,
            proxy_url,
            db,
            seen: Arc::default(),
            http,
            _dir: dir,
            _pg: pg,
        }
    }

    /// Kills the proxy mid-whatever (its tasks aborted, as a crash would) and starts it again on the
    /// same address, database and keys.
    /// A connection of the test's own to the proxy's Postgres database (a Postgres world only).
    pub async fn postgres(&self) -> tokio_postgres::Client {
        let ledgerlink_proxy::settings::Database::Postgres(url) = &self.proxy_settings.database
        else {
            panic!("the world's proxy is on SQLite");
        };
        let (client, connection) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Another proxy process on the world's database and settings, on a port of its own (behind
    /// a reverse proxy, replicas share the public URL, which stays the first's): answers it and
    /// its URL. Only a Postgres world can have more than one.
    pub async fn replica(&self) -> (Proxy, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut settings = self.proxy_settings.clone();
        settings.listen = listener.local_addr().unwrap();
        let clock = Arc::new(SandboxClock(self.sandbox.shared().clone()));
        let proxy = Proxy::start(listener, settings, clock).await.unwrap();
        (proxy, url)
    }

    pub async fn restart_proxy(&mut self) {
        self.stop_proxy().await;
        self.start_proxy().await;
    }

    /// A world whose sandbox sends Xero's webhooks to the proxy (signed with the demo key, the
    /// intent-to-receive check passed), so "paid in Xero" reaches devices.
    pub async fn start_with_webhooks(mut settings: Settings) -> Self {
        settings.providers.xero.webhook_key =
            Some(Secret::new(ledgerlink_sandbox::settings::DEMO_WEBHOOK_KEY));
        let world = Self::start_with(settings).await;
        let hook = format!("{}/webhooks/xero", world.proxy_url);
        let r = world
            .control(
                Method::PUT,
                &format!("/apps/{CLIENT_ID}"),
                json!({"webhook_url": hook}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let intent = world
            .control(Method::POST, "/webhooks/intent", json!({}))
            .await;
        assert_eq!(
            intent.json,
            json!({"ok": true, "good_signature_status": 200, "bad_signature_status": 401})
        );
        world
    }

    /// Everything the proxy's database holds, as bytes, to prove what never appears there in clear:
    /// the SQLite file with its WAL, or every value of every table of the Postgres database (byte
    /// strings as their raw bytes).
    pub async fn stored_bytes(&self) -> Vec<u8> {
        match &self.proxy_settings.database {
            ledgerlink_proxy::settings::Database::Sqlite(path) => {
                let mut out = std::fs::read(path).unwrap();
                for suffix in ["-wal", "-shm"] {
                    if let Ok(bytes) = std::fs::read(format!("{}{suffix}", path.display())) {
                        out.extend(bytes);
                    }
                }
                out
            }
            ledgerlink_proxy::settings::Database::Postgres(_) => {
                let client = self.postgres().await;
                let columns = client
                    .query(
                        "SELECT table_name, column_name, data_type FROM information_schema.columns
                         WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
                        &[],
                    )
                    .await
                    .unwrap();
                let mut out = Vec::new();
                for c in &columns {
                    let (table, column, kind): (String, String, String) =
                        (c.get(0), c.get(1), c.get(2));
                    let value = if kind == "bytea" {
                        format!("encode(\"{column}\", 'escape')")
                    } else {
                        format!("\"{column}\"::text")
                    };
                    for row in client
                        .query(&format!("SELECT {value} FROM \"{table}\""), &[])
                        .await
                        .unwrap()
                    {
                        if let Some(text) = row.get::<_, Option<String>>(0) {
                            out.extend(text.into_bytes());
                            out.push(b'\n');
                        }
                    }
                }
                assert!(
                    !out.is_empty(),
                    "the database holds nothing: the check proves nothing"
                );
                out
            }
        }
    }

    /// How many rows the proxy's database holds in `table` (one of its own tables' names).
    pub async fn count_rows(&self, table: &str) -> i64 {
        assert!(
            table.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "a table's name: {table}"
        );
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match &self.proxy_settings.database {
            ledgerlink_proxy::settings::Database::Sqlite(path) => {
                let db = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .unwrap();
                db.query_row(&sql, [], |r| r.get(0)).unwrap()
            }
            ledgerlink_proxy::settings::Database::Postgres(_) => {
                let client = self.postgres().await;
                client.query_one(&sql, &[]).await.unwrap().get(0)
            }
        }
    }

    /// Kills the proxy: its address answers nothing until [`World::start_proxy`].
    pub async fn stop_proxy(&mut self) {
        self.proxy.kill().await;
    }

    /// The proxy binary `bin` as a real process on this world's address, database and keys (the
    /// in-process proxy must be stopped first: one process per database), with the settings file
    /// `config` and its log appended to `log`. Answers once it listens.
    pub fn spawn_proxy(
        &self,
        bin: &str,
        config: &std::path::Path,
        log: &std::path::Path,
    ) -> ProxyProcess {
        self.spawn_proxy_on(bin, config, log, self.proxy_settings.listen)
    }

    /// [`World::spawn_proxy`] listening on `listen` (a replica of its own, on a Postgres world).
    pub fn spawn_proxy_on(
        &self,
        bin: &str,
        config: &std::path::Path,
        log: &std::path::Path,
        listen: std::net::SocketAddr,
    ) -> ProxyProcess {
        use std::io::BufRead;
        let s = &self.proxy_settings;
        let mut child = std::process::Command::new(bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LEDGERLINK_XERO_CLIENT_SECRET", CLIENT_SECRET)
            .env("LEDGERLINK_MASTER_KEY", s.master_keys[0].expose())
            .arg("--config")
            .arg(config)
            .args([
                "--listen",
                &listen.to_string(),
                "--public-url",
                &self.proxy_url,
                "--xero-client-id",
                CLIENT_ID,
            ])
            .args(["--xero-base-url", &self.sandbox_url])
            // A Postgres URL by the environment, as a deployment gives it (flags show in `ps`).
            .env(
                "LEDGERLINK_DATABASE",
                match &s.database {
                    ledgerlink_proxy::settings::Database::Postgres(url) => url.expose().to_string(),
                    ledgerlink_proxy::settings::Database::Sqlite(path) => {
                        path.display().to_string()
                    }
                },
            )
            .stdout(std::process::Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(
            first.starts_with("ledgerlink-proxy listening on"),
            "the proxy did not start: {first:?} (log: {})",
            log.display()
        );
        ProxyProcess { child }
    }

    /// Starts the proxy again on its address, database and keys.
    pub async fn start_proxy(&mut self) {
        let addr = self.proxy.addr();
        let clock = Arc::new(SandboxClock(self.sandbox.shared().clone()));
        self.proxy = Proxy::start(rebind(addr).await, self.proxy_settings.clone(), clock)
            .await
            .unwrap();
    }

    /// `GET /api.xro/2.0/{path}` on the sandbox as Demo Company (NZ), with a token of its own: what
    /// Xero really holds, whatever the proxy says.
    pub async fn xero_get(&self, path: &str) -> Value {
        let grant = self
            .control(
                Method::POST,
                "/grants",
                json!({"client_id": CLIENT_ID, "user": "demo@ledgerlink.test", "tenant_ids": [NZ]}),
            )
            .await;
        let token = grant.json["access_token"].as_str().unwrap().to_string();
        let r = self
            .http
            .get(format!("{}/api.xro/2.0/{path}", self.sandbox_url))
            .bearer_auth(&token)
            .header("xero-tenant-id", NZ.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    fn record(&self, a: &Answer) {
        self.seen.lock().unwrap().push(a.text.clone());
    }

    pub async fn control(&self, method: Method, path: &str, body: Value) -> Answer {
        let r = self
            .http
            .request(method, format!("{}/_sandbox{path}", self.sandbox_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        Answer::read(r).await
    }

    /// Waits (bounded) until the sandbox has seen a call to `path` whose connection was dropped (an
    /// injected lost answer).
    pub async fn wait_for_lost_call(&self, since: u64, path: &str) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self
            .sandbox_requests(since)
            .await
            .iter()
            .any(|r| r["path"] == path && r["status"].is_null())
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the lost call to {path} never happened"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Moves the sandbox's clock, and with it the proxy's.
    pub async fn advance(&self, seconds: i64) {
        let a = self
            .control(Method::POST, "/clock", json!({"advance_seconds": seconds}))
            .await;
        assert_eq!(a.status, 200);
    }

    /// Someone removes the app from `tenant` in Xero (its connection deleted through another
    /// consent of the demo user, one that covers the UK organisation).
    pub async fn remove_at_xero(&self, tenant: Uuid) {
        let grant = self
            .control(
                Method::POST,
                "/grants",
                json!({"client_id": CLIENT_ID, "user": "demo@ledgerlink.test", "tenant_ids": [UK]}),
            )
            .await;
        let token = grant.json["access_token"].as_str().unwrap().to_string();
        let list: Value = self
            .http
            .get(format!("{}/connections", self.sandbox_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = list
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["tenantId"] == tenant.to_string())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = self
            .http
            .delete(format!("{}/connections/{id}", self.sandbox_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    /// Requests the sandbox received since `seq`, as `(method, path, status)`.
    pub async fn sandbox_requests(&self, since: u64) -> Vec<Value> {
        let a = self
            .control(Method::GET, &format!("/requests?since={since}"), json!({}))
            .await;
        a.json["requests"].as_array().cloned().unwrap_or_default()
    }

    /// `n` organisations to connect: the demo's NZ one and `n - 1` more made in the sandbox (NZ
    /// books, so the same account codes and tax types work in each).
    pub async fn organisations(&self, n: usize) -> Vec<Uuid> {
        let mut tenants = vec![NZ];
        for i in 1..n {
            let made = self
                .control(
                    Method::POST,
                    "/tenants",
                    json!({"name": format!("Shop {i}"), "country": "NZ"}),
                )
                .await;
            assert_eq!(made.status, 201, "{}", made.text);
            tenants.push(made.json["tenant_id"].as_str().unwrap().parse().unwrap());
        }
        tenants
    }

    pub async fn last_seq(&self) -> u64 {
        self.sandbox_requests(0)
            .await
            .last()
            .and_then(|r| r["seq"].as_u64())
            .unwrap_or(0)
    }

    pub fn device(&self, name: &str) -> Device {
        self.device_with_id(name, Uuid::new_v4())
    }

    /// A device claiming `id` (ids are the device's own choice).
    pub fn device_with_id(&self, name: &str, id: Uuid) -> Device {
        Device {
            id,
            name: name.into(),
            http: self.http.clone(),
            url: self.proxy_url.clone(),
            seen: self.seen.clone(),
        }
    }

    pub fn browser(&self) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            seen: self.seen.clone(),
        }
    }

    /// The proxy's connections, from its own store.
    pub async fn connections(&self) -> Vec<ledgerlink_proxy::store::ConnectionRow> {
        self.proxy
            .state()
            .storage
            .connections()
            .connections()
            .await
            .unwrap()
    }

    pub async fn admin(&self, method: Method, path: &str, token: &str) -> Answer {
        let r = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.proxy_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let a = Answer::read(r).await;
        self.record(&a);
        a
    }

    /// A full pairing: the device asks, the person consents ticking `tick` (and picking `pick` when
    /// several), the device collects its credentials.
    pub async fn pair(&self, device: &Device, tick: &[Uuid], pick: Option<Uuid>) -> Paired {
        let started = device.start().await;
        assert_eq!(started.status, 200, "{}", started.text);
        let browser = self.browser();
        let page = browser
            .consent(
                started.json["verification_uri_complete"].as_str().unwrap(),
                tick,
                true,
            )
            .await;
        let page = match pick {
            Some(tenant) => browser.pick(&self.proxy_url, &page, tenant).await,
            None => page,
        };
        assert!(
            page.text.contains("Connected"),
            "the pairing did not finish: {}",
            page.text
        );
        self.advance(5).await;
        let tokens = device
            .poll(started.json["device_code"].as_str().unwrap())
            .await;
        assert_eq!(tokens.status, 200, "{}", tokens.text);
        Paired::from(&tokens.json)
    }

    /// A full pairing with HubRise: the device asks for HubRise, the person logs in at HubRise and
    /// chooses `location`, the device collects its credentials.
    pub async fn pair_hubrise(&self, device: &Device, location: &str) -> Paired {
        let started = device.start_for("hubrise").await;
        assert_eq!(started.status, 200, "{}", started.text);
        let page = self
            .browser()
            .hubrise_consent(
                started.json["verification_uri_complete"].as_str().unwrap(),
                location,
                true,
            )
            .await;
        assert!(page.text.contains("Connected"), "{}", page.text);
        self.advance(5).await;
        let tokens = device
            .poll(started.json["device_code"].as_str().unwrap())
            .await;
        assert_eq!(tokens.status, 200, "{}", tokens.text);
        Paired::from(&tokens.json)
    }
}

/// A device's credentials and what it was told about its connection.
#[derive(Debug, Clone)]
pub struct Paired {
    pub access: String,
    pub refresh: String,
    pub connection: Value,
}

impl Paired {
    pub fn from(json: &Value) -> Self {
        Self {
            access: json["access_token"].as_str().unwrap().into(),
            refresh: json["refresh_token"].as_str().unwrap().into(),
            connection: json["connection"].clone(),
        }
    }
}

/// A pairing a device started: the link it shows, the code it polls with.
pub struct Started {
    pub link: String,
    pub device_code: String,
}

/// The device side, speaking the proxy's device API.
pub struct Device {
    pub id: Uuid,
    pub name: String,
    http: reqwest::Client,
    url: String,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Device {
    /// The same device talking to the proxy at `url` (another replica).
    pub fn via(&self, url: &str) -> Device {
        Device {
            id: self.id,
            name: self.name.clone(),
            http: self.http.clone(),
            url: url.to_string(),
            seen: self.seen.clone(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let a = Answer::read(req.send().await.unwrap()).await;
        self.seen.lock().unwrap().push(a.text.clone());
        a
    }

    pub async fn start(&self) -> Answer {
        self.start_as(None).await
    }

    /// Starts pairing (with the device's access token when it asks to move): the link it shows
    /// and the code it polls with.
    pub async fn begin(&self, current: Option<&str>) -> Started {
        let a = self.start_as(current).await;
        assert_eq!(a.status, 200, "{}", a.text);
        Started {
            link: a.json["verification_uri_complete"].as_str().unwrap().into(),
            device_code: a.json["device_code"].as_str().unwrap().into(),
        }
    }

    /// Polls once for a pairing begun with `begin`, after its interval.
    pub async fn poll_after(&self, world: &World, started: &Started) -> Answer {
        world.advance(5).await;
        self.poll(&started.device_code).await
    }

    /// Starts pairing with `provider` (`xero`, `hubrise`).
    pub async fn start_for(&self, provider: &str) -> Answer {
        self.send(
            self.http
                .post(format!("{}/v1/pairings", self.url))
                .json(&json!({
                    "client_id": "ledgerlink-desktop",
                    "device_id": self.id,
                    "device_name": self.name,
                    "provider": provider,
                })),
        )
        .await
    }

    /// Starts pairing; a paired device sends its access token (`current`) to be allowed to move.
    pub async fn start_as(&self, current: Option<&str>) -> Answer {
        let mut req = self.http.post(format!("{}/v1/pairings", self.url));
        if let Some(token) = current {
            req = req.bearer_auth(token);
        }
        self.send(req.json(&json!({
            "client_id": "ledgerlink-desktop",
            "device_id": self.id,
            "device_name": self.name,
            "provider": "xero",
        })))
        .await
    }

    pub async fn poll(&self, device_code: &str) -> Answer {
        self.send(
            self.http
                .post(format!("{}/v1/pairings/token", self.url))
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", device_code),
                    ("client_id", "ledgerlink-desktop"),
                ]),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.send(
            self.http
                .post(format!("{}/v1/pairings/token", self.url))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                    ("client_id", "ledgerlink-desktop"),
                ]),
        )
        .await
    }

    /// Waits (bounded by `within`) until at least `expected` documents exist and none is queued or
    /// sending; answers them (newest first, at most 1,000).
    pub async fn settle(
        &self,
        token: &str,
        expected: usize,
        within: std::time::Duration,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let list = self
                .call(Method::GET, "/v1/documents?limit=1000", token, None)
                .await;
            let docs = list.json["documents"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let busy = docs
                .iter()
                .filter(|d| d["state"] == "queued" || d["state"] == "sending")
                .count();
            if docs.len() >= expected && busy == 0 {
                return docs;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{busy} of {} documents still moving after {within:?}",
                docs.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// A batch push: `POST /v1/{kind}` with `{kind: items}` (`kind` is `invoices`, `payments` or
    /// `shifts`).
    pub async fn push(&self, kind: &str, token: &str, items: impl Into<Value>) -> Answer {
        self.call(
            Method::POST,
            &format!("/v1/{kind}"),
            token,
            Some(json!({ kind: items.into() })),
        )
        .await
    }

    /// [`Device::call`], or `None` when the proxy cannot be reached (a replica being restarted).
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Option<Answer> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let a = Answer::read(req.send().await.ok()?).await;
        self.seen.lock().unwrap().push(a.text.clone());
        Some(a)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

/// A person's browser: keeps cookies, follows nothing by itself.
pub struct Browser {
    pub http: reqwest::Client,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Browser {
    /// A browser of its own (not a world's): for servers the test did not start itself.
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            seen: Default::default(),
        }
    }

    pub async fn get(&self, url: &str) -> Answer {
        let a = Answer::read(self.http.get(url).send().await.unwrap()).await;
        self.seen.lock().unwrap().push(a.text.clone());
        a
    }

    pub async fn post(&self, url: &str, form: &[(String, String)]) -> Answer {
        let a = Answer::read(self.http.post(url).form(form).send().await.unwrap()).await;
        self.seen.lock().unwrap().push(a.text.clone());
        a
    }

    /// Submits the form of `page` whose action ends with `action`, with extra fields.
    pub async fn submit(
        &self,
        base: &str,
        page: &Answer,
        action: &str,
        extra: &[(&str, &str)],
    ) -> Answer {
        let form = html::forms(&page.text)
            .into_iter()
            .find(|f| f.action.ends_with(action))
            .unwrap_or_else(|| panic!("no form posting to {action} on: {}", page.text));
        let mut fields = form.hidden.clone();
        fields.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let url = if form.action.starts_with("http") {
            form.action.clone()
        } else {
            format!("{base}{}", form.action)
        };
        self.post(&url, &fields).await
    }

    /// From the device's link to Xero's consent and back: opens the link, continues to Xero, logs in,
    /// ticks `tick`, allows (or denies), and follows the redirect back to the proxy. Answers the
    /// proxy's page.
    pub async fn consent(&self, link: &str, tick: &[Uuid], allow: bool) -> Answer {
        let proxy = origin(link);
        let callback = self.consent_redirect(link, tick, allow).await;
        let page = self.get(&callback).await;
        if page.status == 303 {
            // A consent of several organisations: the chooser is at its own address.
            return self.get(&format!("{proxy}{}", page.location())).await;
        }
        page
    }

    /// Like `consent`, but stops at Xero's redirect: answers the proxy's callback URL.
    pub async fn consent_redirect(&self, link: &str, tick: &[Uuid], allow: bool) -> String {
        let (sandbox, consent) = self.to_consent(link).await;
        assert_eq!(consent.status, 200, "{}", consent.text);
        let back = self.decide(&sandbox, &consent, tick, allow).await;
        assert_eq!(back.status, 302, "{}", back.text);
        back.location().to_string()
    }

    /// From the device's link to Xero's consent page: opens the link, continues to Xero and logs
    /// in. Answers Xero's origin and its consent page.
    pub async fn to_consent(&self, link: &str) -> (String, Answer) {
        let proxy = origin(link);
        let confirm = self.get(link).await;
        assert_eq!(confirm.status, 200, "{}", confirm.text);
        let to_xero = self.submit(&proxy, &confirm, "/pair/continue", &[]).await;
        assert_eq!(to_xero.status, 303, "{}", to_xero.text);
        let authorize = to_xero.location().to_string();
        let sandbox = origin(&authorize);
        let login = self.get(&authorize).await;
        assert_eq!(login.status, 200, "{}", login.text);
        let consent = self
            .submit(
                &sandbox,
                &login,
                "/identity/connect/authorize",
                &[
                    ("action", "login"),
                    ("email", "demo@ledgerlink.test"),
                    ("password", "demo"),
                ],
            )
            .await;
        (sandbox, consent)
    }

    /// Ticks `tick` on Xero's consent page and allows (or denies): answers Xero's answer.
    pub async fn decide(
        &self,
        sandbox: &str,
        consent: &Answer,
        tick: &[Uuid],
        allow: bool,
    ) -> Answer {
        let mut extra: Vec<(&str, String)> =
            tick.iter().map(|t| ("tenant", t.to_string())).collect();
        extra.push(("action", if allow { "allow".into() } else { "deny".into() }));
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.submit(sandbox, consent, "/identity/connect/authorize", &extra)
            .await
    }

    /// From the device's link through HubRise's pages and back: opens the link, continues to
    /// HubRise, logs in, chooses `location` and allows (or denies). Answers the proxy's page.
    pub async fn hubrise_consent(&self, link: &str, location: &str, allow: bool) -> Answer {
        let proxy = origin(link);
        let confirm = self.get(link).await;
        assert_eq!(confirm.status, 200, "{}", confirm.text);
        // The proxy's page names where the device is going, never Xero.
        assert!(
            confirm.text.contains("to HubRise?") && confirm.text.contains("Continue to HubRise"),
            "{}",
            confirm.text
        );
        assert!(!confirm.text.contains("Xero"), "{}", confirm.text);
        let onward = self.submit(&proxy, &confirm, "/pair/continue", &[]).await;
        assert_eq!(onward.status, 303, "{}", onward.text);
        let authorize = onward.location().to_string();
        let hubrise = origin(&authorize);
        let login = self.get(&authorize).await;
        assert_eq!(login.status, 200, "{}", login.text);
        assert!(login.text.contains("Log in to HubRise"), "{}", login.text);
        let consent = self
            .submit(
                &hubrise,
                &login,
                "/oauth2/v1/authorize",
                &[
                    ("action", "login"),
                    ("email", "demo@ledgerlink.test"),
                    ("password", "demo"),
                ],
            )
            .await;
        assert_eq!(consent.status, 200, "{}", consent.text);
        let action = if allow { "allow" } else { "deny" };
        let back = self
            .submit(
                &hubrise,
                &consent,
                "/oauth2/v1/authorize",
                &[("location_id", location), ("action", action)],
            )
            .await;
        assert_eq!(back.status, 302, "{}", back.text);
        self.get(back.location()).await
    }

    /// Picks `tenant` on the proxy's organisation picker.
    pub async fn pick(&self, proxy: &str, page: &Answer, tenant: Uuid) -> Answer {
        assert!(
            page.text.contains("Which organisation"),
            "no picker: {}",
            page.text
        );
        self.submit(
            proxy,
            page,
            "/pair/organisation",
            &[("tenant", &tenant.to_string())],
        )
        .await
    }
}

/// Binds `addr` again (the old listener may take a moment to let go).
async fn rebind(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("could not bind {addr} again");
}

pub fn origin(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    u.origin().ascii_serialization()
}
