//! `ledgerlink-sandbox`: runs the Xero emulator. The first stdout line is
//! `ledgerlink-sandbox listening on http://HOST:PORT`, then the demo app's credentials.

use anyhow::Context;
use clap::Parser;
use ledgerlink_sandbox::{Secret, Settings};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A faithful local emulator of Xero (identity server and Accounting API) for Ledgerlink's demo and
/// tests. One address serves all of Xero's hosts by their paths. Flags override the TOML file, which
/// overrides the defaults.
#[derive(Debug, Parser)]
#[command(name = "ledgerlink-sandbox", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "LEDGERLINK_SANDBOX_LISTEN",
        default_value = "127.0.0.1:7300"
    )]
    listen: SocketAddr,
    /// A TOML settings file (see docs/sandbox.toml for every key).
    #[arg(long, env = "LEDGERLINK_SANDBOX_CONFIG")]
    config: Option<PathBuf>,
    /// The registered app's client id.
    #[arg(long)]
    client_id: Option<String>,
    /// The registered app's client secret.
    #[arg(long)]
    client_secret: Option<String>,
    /// The key webhooks are signed with.
    #[arg(long)]
    webhook_key: Option<String>,
    /// A redirect URI registered for the app, matched exactly; repeat for several. Replaces the
    /// default (http://127.0.0.1:7400/oauth/xero/callback).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// A redirect URI registered for the HubRise client, matched exactly; repeat for several.
    /// Replaces the default (http://127.0.0.1:7400/oauth/hubrise/callback).
    #[arg(long = "hubrise-redirect-uri")]
    hubrise_redirect_uris: Vec<String>,
    /// A redirect URI of the operators' console at the identity provider; repeat for more.
    /// Replaces the default (http://127.0.0.1:7400/console/callback).
    #[arg(long = "oidc-redirect-uri")]
    oidc_redirect_uris: Vec<String>,
    /// Where the console may return after signing out; repeat for more. Replaces the default
    /// (http://127.0.0.1:7400/console).
    #[arg(long = "oidc-post-logout-redirect-uri")]
    oidc_post_logout_redirect_uris: Vec<String>,
    /// Where the app receives webhooks.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Calls per tenant per window (Xero: 60 a minute).
    #[arg(long)]
    tenant_per_window: Option<u32>,
    /// Calls in flight per tenant (Xero: 5).
    #[arg(long)]
    tenant_concurrent: Option<u32>,
    /// Calls per tenant per UTC day (Xero: 5,000).
    #[arg(long)]
    tenant_per_day: Option<u32>,
    /// Calls per app per window across all tenants (Xero: 10,000 a minute).
    #[arg(long)]
    app_per_window: Option<u32>,
    /// Length of the fixed rate-limit window in seconds (Xero: 60).
    #[arg(long)]
    window_seconds: Option<u32>,
    /// Lift every rate limit (for benchmarks).
    #[arg(long)]
    no_limits: bool,
    /// Access token lifetime in seconds (Xero: 1800).
    #[arg(long)]
    access_token_seconds: Option<i64>,
    /// How long a rotated-out refresh token keeps working, in seconds (Xero: 1800).
    #[arg(long)]
    refresh_grace_seconds: Option<i64>,
    /// An unused refresh token dies after this many days (Xero: 60).
    #[arg(long)]
    refresh_token_days: Option<i64>,
    /// Authorization code lifetime in seconds (default 300).
    #[arg(long)]
    auth_code_seconds: Option<i64>,
    /// How long an Idempotency-Key's first answer is replayed, in seconds (default 360).
    #[arg(long)]
    idempotency_window_seconds: Option<i64>,
    /// First webhook retry delay in milliseconds; each retry doubles it (default 5000).
    #[arg(long)]
    webhook_retry_initial_ms: Option<u64>,
    /// Keep the whole state in this file (written atomically after every change, read at start),
    /// so a restarted sandbox still knows its organisations, grants, tokens and invoices.
    /// `POST /_sandbox/reset` seeds it afresh.
    #[arg(long = "state", env = "LEDGERLINK_SANDBOX_STATE")]
    state_file: Option<PathBuf>,
    /// Log format: `text` or `json`.
    #[arg(long, default_value = "text")]
    log_format: String,
}

impl Args {
    fn settings(self) -> anyhow::Result<Settings> {
        let mut s = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Settings::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => Settings::default(),
        };
        s.listen = self.listen;
        if let Some(v) = self.client_id {
            s.client_id = v;
        }
        if let Some(v) = self.client_secret {
            s.client_secret = Secret::new(v);
        }
        if let Some(v) = self.webhook_key {
            s.webhook_key = Secret::new(v);
        }
        if !self.redirect_uris.is_empty() {
            s.redirect_uris = self.redirect_uris;
        }
        if self.webhook_url.is_some() {
            s.webhook_url = self.webhook_url;
        }
        if !self.hubrise_redirect_uris.is_empty() {
            s.hubrise.redirect_uris = self.hubrise_redirect_uris;
        }
        if !self.oidc_redirect_uris.is_empty() {
            s.idp.redirect_uris = self.oidc_redirect_uris;
        }
        if !self.oidc_post_logout_redirect_uris.is_empty() {
            s.idp.post_logout_redirect_uris = self.oidc_post_logout_redirect_uris;
        }
        if self.state_file.is_some() {
            s.state_file = self.state_file;
        }
        if self.no_limits {
            s.limits = ledgerlink_sandbox::Limits::lifted();
        }
        let l = &mut s.limits;
        l.tenant_per_window = self.tenant_per_window.unwrap_or(l.tenant_per_window);
        l.tenant_concurrent = self.tenant_concurrent.unwrap_or(l.tenant_concurrent);
        l.tenant_per_day = self.tenant_per_day.unwrap_or(l.tenant_per_day);
        l.app_per_window = self.app_per_window.unwrap_or(l.app_per_window);
        l.window_seconds = self.window_seconds.unwrap_or(l.window_seconds);
        anyhow::ensure!(l.window_seconds > 0, "--window-seconds must be at least 1");
        let t = &mut s.tokens;
        t.access_token_seconds = self.access_token_seconds.unwrap_or(t.access_token_seconds);
        t.refresh_grace_seconds = self
            .refresh_grace_seconds
            .unwrap_or(t.refresh_grace_seconds);
        t.refresh_token_days = self.refresh_token_days.unwrap_or(t.refresh_token_days);
        t.auth_code_seconds = self.auth_code_seconds.unwrap_or(t.auth_code_seconds);
        s.idempotency_window_seconds = self
            .idempotency_window_seconds
            .unwrap_or(s.idempotency_window_seconds);
        s.webhooks.retry_initial_ms = self
            .webhook_retry_initial_ms
            .unwrap_or(s.webhooks.retry_initial_ms);
        for uri in s
            .redirect_uris
            .iter()
            .chain(s.webhook_url.iter())
            .chain(s.hubrise.redirect_uris.iter())
        {
            url::Url::parse(uri).with_context(|| format!("'{uri}' is not an absolute URL"))?;
        }
        Ok(s)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let json_logs = match args.log_format.as_str() {
        "json" => true,
        "text" => false,
        other => anyhow::bail!("--log-format must be text or json, not '{other}'"),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json_logs {
        logs.json().init();
    } else {
        logs.init();
    }

    let settings = args.settings()?;
    // The state (seeded, or read back from --state) before anything is printed: a state file that
    // cannot be read stops the start, and once the first line is out the file exists.
    let shared = ledgerlink_sandbox::Shared::open(settings.clone())?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    // A reader may stop after the first line (`| head -1`): a closed stdout must not stop the sandbox.
    let banner = |out: &mut dyn Write| -> std::io::Result<()> {
        writeln!(out, "ledgerlink-sandbox listening on http://{addr}")?;
        writeln!(out, "client_id: {}", settings.client_id)?;
        writeln!(out, "client_secret: {}", settings.client_secret.expose())?;
        writeln!(out, "webhook_key: {}", settings.webhook_key.expose())?;
        for uri in &settings.redirect_uris {
            writeln!(out, "redirect_uri: {uri}")?;
        }
        writeln!(
            out,
            "user: {} / {}",
            ledgerlink_sandbox::seed::DEMO_USER_EMAIL,
            ledgerlink_sandbox::seed::DEMO_USER_PASSWORD
        )?;
        // Other providers after Xero's lines, prefixed with their names.
        writeln!(out, "hubrise_client_id: {}", settings.hubrise.client_id)?;
        writeln!(
            out,
            "hubrise_client_secret: {}",
            settings.hubrise.client_secret.expose()
        )?;
        for uri in &settings.hubrise.redirect_uris {
            writeln!(out, "hubrise_redirect_uri: {uri}")?;
        }
        // The operators' identity provider: its issuer and the console's client.
        writeln!(
            out,
            "oidc_issuer: http://{addr}{}",
            ledgerlink_sandbox::idp::PATH
        )?;
        writeln!(out, "oidc_client_id: {}", settings.idp.client_id)?;
        writeln!(
            out,
            "oidc_client_secret: {}",
            settings.idp.client_secret.expose()
        )?;
        for uri in &settings.idp.redirect_uris {
            writeln!(out, "oidc_redirect_uri: {uri}")?;
        }
        writeln!(
            out,
            "oidc_users: ops@ledgerlink.test / ops, viewer@ledgerlink.test / viewer"
        )?;
        out.flush()
    };
    if let Err(e) = banner(&mut std::io::stdout().lock()) {
        tracing::debug!(error = %e, "stdout closed while printing the banner");
    }
    tracing::info!(%addr, "sandbox ready");
    ledgerlink_sandbox::serve_shared(listener, shared, shutdown_signal()).await?;
    tracing::info!("sandbox stopped");
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
