//! The command line of `ledgerlink-proxy`, in the library so the binary and test harnesses run the
//! very same code. The first stdout line is `ledgerlink-proxy listening on URL` (the public URL).

use crate::{AppState, Settings, SystemClock};
use anyhow::Context;
use clap::Parser;
use ledgerlink_wire::Secret;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use url::Url;

/// The Ledgerlink comms proxy: owns the Xero client secret and every organisation's tokens, and pairs
/// desktop devices to connected organisations through browser consent. Settings come from defaults,
/// then the TOML file (--config), then environment variables, then flags.
#[derive(Debug, Parser)]
#[command(name = "ledgerlink-proxy", version)]
struct Args {
    /// A TOML settings file (see docs/proxy.toml for every key).
    #[arg(long, env = "LEDGERLINK_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LEDGERLINK_LISTEN")]
    listen: Option<SocketAddr>,
    /// The URL browsers and devices use to reach the proxy. Register `{public-url}/oauth/xero/callback`
    /// as the redirect URI of your Xero app. Default: http:// and the listen address.
    #[arg(long, env = "LEDGERLINK_PUBLIC_URL")]
    public_url: Option<Url>,
    /// Where the proxy keeps its state: a SQLite file path (or sqlite:PATH), or a Postgres URL
    /// (postgres://USER:PASSWORD@HOST:PORT/DATABASE) that several proxies may share. Prefer the
    /// environment variable for a URL with a password: flags show in `ps`.
    #[arg(long, env = "LEDGERLINK_DATABASE", hide_env_values = true)]
    database: Option<crate::settings::Database>,
    /// The Xero app's client id.
    #[arg(long, env = "LEDGERLINK_XERO_CLIENT_ID")]
    xero_client_id: Option<String>,
    /// The Xero app's client secret (prefer the environment variable: flags show in `ps`).
    #[arg(long, env = "LEDGERLINK_XERO_CLIENT_SECRET", hide_env_values = true)]
    xero_client_secret: Option<String>,
    /// One URL that stands in for all of Xero's hosts (the sandbox). Default: the real hosts.
    #[arg(long, env = "LEDGERLINK_XERO_BASE_URL")]
    xero_base_url: Option<Url>,
    /// Xero's authorize URL (overrides --xero-base-url for this endpoint).
    #[arg(long, env = "LEDGERLINK_XERO_AUTHORIZE_URL")]
    xero_authorize_url: Option<Url>,
    /// Xero's token URL.
    #[arg(long, env = "LEDGERLINK_XERO_TOKEN_URL")]
    xero_token_url: Option<Url>,
    /// Xero's revocation URL.
    #[arg(long, env = "LEDGERLINK_XERO_REVOCATION_URL")]
    xero_revocation_url: Option<Url>,
    /// Xero's connections URL.
    #[arg(long, env = "LEDGERLINK_XERO_CONNECTIONS_URL")]
    xero_connections_url: Option<Url>,
    /// Xero's Accounting API base URL.
    #[arg(long, env = "LEDGERLINK_XERO_API_URL")]
    xero_api_url: Option<Url>,
    /// Scopes to ask Xero for, space-separated.
    #[arg(long, env = "LEDGERLINK_XERO_SCOPES")]
    xero_scopes: Option<String>,
    /// Organisations that may be connected at once (the Xero app's cap; 0: none). Default 25.
    #[arg(long, env = "LEDGERLINK_XERO_CONNECTION_CAP")]
    xero_connection_cap: Option<u32>,
    /// The Xero app's webhooks key: signatures of POST /webhooks/xero are checked with it.
    #[arg(long, env = "LEDGERLINK_XERO_WEBHOOK_KEY", hide_env_values = true)]
    xero_webhook_key: Option<String>,
    /// The HubRise client's id (HubRise is offered to devices once its id and secret are set).
    #[arg(long, env = "LEDGERLINK_HUBRISE_CLIENT_ID")]
    hubrise_client_id: Option<String>,
    /// The HubRise client's secret (prefer the environment variable: flags show in `ps`).
    #[arg(long, env = "LEDGERLINK_HUBRISE_CLIENT_SECRET", hide_env_values = true)]
    hubrise_client_secret: Option<String>,
    /// One URL that stands in for both of HubRise's hosts (the sandbox). Default: the real hosts.
    #[arg(long, env = "LEDGERLINK_HUBRISE_BASE_URL")]
    hubrise_base_url: Option<Url>,
    /// A static bearer token for the operator API (/admin/v1/...), for scripts. Prefer the
    /// operators' identity provider (--operators-issuer).
    #[arg(long, env = "LEDGERLINK_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The operators' identity provider's issuer (an OpenID provider; Okta:
    /// https://{domain}/oauth2/default): its access tokens open the operator API.
    #[arg(long, env = "LEDGERLINK_OPERATORS_ISSUER")]
    operators_issuer: Option<Url>,
    /// The operators' console client at the identity provider.
    #[arg(long, env = "LEDGERLINK_OPERATORS_CLIENT_ID")]
    operators_client_id: Option<String>,
    /// The console client's secret (prefer the environment variable: flags show in `ps`).
    #[arg(
        long,
        env = "LEDGERLINK_OPERATORS_CLIENT_SECRET",
        hide_env_values = true
    )]
    operators_client_secret: Option<String>,
    /// A file holding a base64 master key; repeat to add old keys (the first seals new data).
    #[arg(
        long = "master-key-file",
        env = "LEDGERLINK_MASTER_KEY_FILE",
        value_delimiter = ','
    )]
    master_key_files: Vec<PathBuf>,
    /// Development mode: create a master key file (mode 0600) when none exists.
    #[arg(long, env = "LEDGERLINK_DEV")]
    dev: bool,
    /// A public client id devices may pair with; repeat for several (default: ledgerlink-desktop).
    #[arg(
        long = "public-client-id",
        env = "LEDGERLINK_PUBLIC_CLIENT_IDS",
        value_delimiter = ','
    )]
    public_client_ids: Vec<String>,
    /// Code entries allowed per client address per 10 minutes (raise it for tests from 127.0.0.1).
    #[arg(long, env = "LEDGERLINK_MAX_CODE_ATTEMPTS_PER_ADDRESS")]
    max_code_attempts_per_address: Option<u32>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "LEDGERLINK_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// Without a command the proxy serves.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Moves a proxy's state from its SQLite file to an empty Postgres database, ids, device
    /// credentials, queued documents and event cursors unchanged: stop the proxy, run this, start
    /// the proxy (or several) on the Postgres URL. The SQLite file is left as it was.
    Migrate {
        /// The SQLite database: sqlite:PATH or a path.
        #[arg(long)]
        from: crate::settings::Database,
        /// The Postgres database (postgres://USER:PASSWORD@HOST:PORT/DATABASE): prefer the
        /// environment variable, flags show in `ps`.
        #[arg(long, env = "LEDGERLINK_MIGRATE_TO", hide_env_values = true)]
        to: crate::settings::Database,
        /// PEM certificates of a private CA that signs the Postgres server's certificate.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
}

/// `ledgerlink-proxy migrate`: answers what it moved, or why it moved nothing.
async fn migrate(
    from: crate::settings::Database,
    to: crate::settings::Database,
    ca_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    use crate::settings::Database;
    let Database::Sqlite(path) = from else {
        anyhow::bail!("--from must be a SQLite database (sqlite:PATH or a path): moving up starts from SQLite");
    };
    let Database::Postgres(url) = to else {
        anyhow::bail!("--to must be a Postgres URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)");
    };
    if !path.exists() {
        anyhow::bail!(
            "{} does not exist: give the proxy's SQLite file",
            path.display()
        );
    }
    let pool = crate::store::postgres::PoolSettings {
        ca_file,
        ..Default::default()
    };
    let moved = crate::store::moving::sqlite_to_postgres(&path, url.expose(), &pool)
        .await
        .map_err(|e| anyhow::anyhow!("nothing was moved: {e}"))?;
    let mut out = std::io::stdout().lock();
    for (table, rows) in &moved.tables {
        writeln!(out, "{table}: {rows}")?;
    }
    writeln!(out, "last event: {}", moved.last_event)?;
    writeln!(
        out,
        "moved {} to Postgres; start the proxy with that database",
        path.display()
    )?;
    Ok(())
}

impl Args {
    fn settings(self) -> anyhow::Result<Settings> {
        let mut s = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Settings::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("in {}: {e}", path.display()))?
            }
            None => Settings::default(),
        };
        if let Some(v) = self.listen {
            s.listen = v;
            if self.public_url.is_none() && self.config.is_none() {
                s.public_url = Url::parse(&format!("http://{v}"))?;
            }
        }
        if let Some(v) = self.public_url {
            s.public_url = v;
        }
        if let Some(v) = self.database {
            s.database = v;
        }
        let x = &mut s.providers.xero;
        if let Some(v) = self.xero_client_id {
            x.client_id = v;
        }
        if let Some(v) = self.xero_client_secret {
            x.client_secret = Some(Secret::new(v));
        }
        x.base_url = self.xero_base_url.or(x.base_url.take());
        x.authorize_url = self.xero_authorize_url.or(x.authorize_url.take());
        x.token_url = self.xero_token_url.or(x.token_url.take());
        x.revocation_url = self.xero_revocation_url.or(x.revocation_url.take());
        x.connections_url = self.xero_connections_url.or(x.connections_url.take());
        x.api_url = self.xero_api_url.or(x.api_url.take());
        x.scopes = self.xero_scopes.or(x.scopes.take());
        x.connection_cap = self.xero_connection_cap.or(x.connection_cap);
        if let Some(v) = self.xero_webhook_key {
            s.providers.xero.webhook_key = Some(Secret::new(v));
        }
        let h = &mut s.providers.hubrise;
        if let Some(v) = self.hubrise_client_id {
            h.client_id = v;
        }
        if let Some(v) = self.hubrise_client_secret {
            h.client_secret = Some(Secret::new(v));
        }
        h.base_url = self.hubrise_base_url.or(h.base_url.take());
        if let Some(v) = self.admin_token {
            s.admin_token = Some(Secret::new(v));
        }
        let o = &mut s.operators;
        o.issuer = self.operators_issuer.or(o.issuer.take());
        o.client_id = self.operators_client_id.or(o.client_id.take());
        if let Some(v) = self.operators_client_secret {
            o.client_secret = Some(Secret::new(v));
        }
        if let Ok(keys) = std::env::var("LEDGERLINK_MASTER_KEY") {
            s.master_keys = keys
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(Secret::new)
                .collect();
        }
        if !self.master_key_files.is_empty() {
            s.master_key_files = self.master_key_files;
        }
        s.dev |= self.dev;
        if !self.public_client_ids.is_empty() {
            s.public_client_ids = self.public_client_ids;
        }
        if let Some(v) = self.max_code_attempts_per_address {
            s.pairing.max_code_attempts_per_address = v;
        }
        Ok(s)
    }
}

/// Parses the command line and runs the proxy until SIGTERM or Ctrl-C.
pub fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format.as_str() {
        "json" => logs.json().init(),
        "text" => logs.init(),
        other => anyhow::bail!("--log-format must be text or json, not '{other}'"),
    }

    if let Some(Command::Migrate { from, to, ca_file }) = args.command {
        return migrate(from, to, ca_file).await;
    }
    crate::server::raise_open_files_limit();
    let settings = args.settings()?;
    for warning in &settings.deprecations {
        tracing::warn!("{warning}");
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let mut settings = settings;
    let addr = listener.local_addr()?;
    if settings.listen.port() == 0 && settings.public_url.port() == Some(0) {
        settings.public_url = Url::parse(&format!("http://{addr}"))?;
    }
    let callback = settings.callback_url();
    let hubrise_callback = settings
        .providers
        .hubrise
        .configured()
        .then(|| settings.callback_url_for(ledgerlink_wire::Provider::HubRise));
    let public = settings.public_url.to_string();
    let state = AppState::new(settings, Arc::new(SystemClock)).await?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "ledgerlink-proxy listening on {}",
            public.trim_end_matches('/')
        );
        let _ = writeln!(out, "xero_redirect_uri: {callback}");
        if let Some(hubrise) = &hubrise_callback {
            let _ = writeln!(out, "hubrise_redirect_uri: {hubrise}");
        }
        let _ = out.flush();
    }
    if state.settings.admin_token.is_some() && !state.settings.dev {
        tracing::warn!("a static admin token is set: anyone holding it is an operator, and it is never rotated. Prefer the operators' identity provider ([operators] issuer) and keep the token for scripts that cannot use it");
    }
    if let Some(issuer) = &state.settings.operators.issuer {
        tracing::info!(%issuer, "operators sign in with this identity provider");
    }
    tracing::info!(%addr, replica = %state.replica, "proxy ready");
    crate::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("proxy stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
