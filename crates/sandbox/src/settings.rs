//! Every tunable number of the sandbox, in one typed struct: defaults, then a TOML file, then flags.

use crate::harness::secret::Secret;
use serde::Deserialize;
use std::net::SocketAddr;

/// The demo app's registration, printed at start-up so scripts and the proxy can use it.
pub const DEMO_CLIENT_ID: &str = "LEDGERLINKDEMO0000000000000000001";
pub const DEMO_CLIENT_SECRET: &str = "sandbox-demo-secret-3f9a1c7e5b2d4860a1f3c5e7b9d1f2a4";
pub const DEMO_WEBHOOK_KEY: &str = "sandbox-webhook-key-8c2e4a6f0b1d3e5f7a9c";
/// Where the demo proxy listens: its OAuth callback is registered by default.
pub const DEMO_REDIRECT_URI: &str = "http://127.0.0.1:7400/oauth/xero/callback";

/// The demo HubRise client's registration, printed at start-up after Xero's lines.
pub const DEMO_HUBRISE_CLIENT_ID: &str = "ledgerlink-demo.hubrise-sandbox";
pub const DEMO_HUBRISE_CLIENT_SECRET: &str = "sandbox-hubrise-secret-5d8e2b7c9a1f4e60b3c5d7e9";
/// The demo proxy's HubRise callback.
pub const DEMO_HUBRISE_REDIRECT_URI: &str = "http://127.0.0.1:7400/oauth/hubrise/callback";

/// The operators' identity provider: the console's client, printed at start-up after the
/// providers' lines, and a client for scripts (client credentials).
pub const DEMO_OIDC_CLIENT_ID: &str = "0oa1ledgerlinkconsole";
pub const DEMO_OIDC_CLIENT_SECRET: &str = "sandbox-oidc-secret-2b7e9d4a6c1f3e5a7c9b1d3f";
pub const DEMO_OIDC_SCRIPTS_CLIENT_ID: &str = "0oa1ledgerlinkscripts";
pub const DEMO_OIDC_SCRIPTS_CLIENT_SECRET: &str = "sandbox-oidc-scripts-secret-4c6e8a0b2d4f6a8c";
/// The demo proxy's console callback, and where sign-out returns.
pub const DEMO_CONSOLE_REDIRECT_URI: &str = "http://127.0.0.1:7400/console/callback";
pub const DEMO_CONSOLE_SIGNED_OUT_URI: &str = "http://127.0.0.1:7400/console";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub listen: SocketAddr,
    pub client_id: String,
    pub client_secret: Secret,
    pub webhook_key: Secret,
    /// Registered redirect URIs, matched exactly (scheme, host, port, path and query) as Xero does.
    pub redirect_uris: Vec<String>,
    pub webhook_url: Option<String>,
    pub limits: Limits,
    pub tokens: TokenLifetimes,
    pub idempotency_window_seconds: i64,
    pub webhooks: WebhookSettings,
    /// How many received requests the inspection API keeps (oldest dropped first).
    pub request_log_capacity: usize,
    /// Where the whole state is kept between runs (see `state.rs`); none keeps nothing.
    pub state_file: Option<std::path::PathBuf>,
    /// HubRise: the demo client and HubRise's limits.
    pub hubrise: HubRiseSettings,
    /// The operators' identity provider (OpenID Connect, Okta-shaped).
    pub idp: IdpSettings,
}

/// The identity provider's registered clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdpSettings {
    pub client_id: String,
    pub client_secret: Secret,
    /// The console's callbacks, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where sign-out may return to, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    pub scripts_client_id: String,
    pub scripts_client_secret: Secret,
}

impl Default for IdpSettings {
    fn default() -> Self {
        Self {
            client_id: DEMO_OIDC_CLIENT_ID.into(),
            client_secret: Secret::new(DEMO_OIDC_CLIENT_SECRET),
            redirect_uris: vec![DEMO_CONSOLE_REDIRECT_URI.into()],
            post_logout_redirect_uris: vec![DEMO_CONSOLE_SIGNED_OUT_URI.into()],
            scripts_client_id: DEMO_OIDC_SCRIPTS_CLIENT_ID.into(),
            scripts_client_secret: Secret::new(DEMO_OIDC_SCRIPTS_CLIENT_SECRET),
        }
    }
}

/// The emulated HubRise's registered client and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubRiseSettings {
    pub client_id: String,
    pub client_secret: Secret,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    pub limits: HubRiseLimits,
}

impl Default for HubRiseSettings {
    fn default() -> Self {
        Self {
            client_id: DEMO_HUBRISE_CLIENT_ID.into(),
            client_secret: Secret::new(DEMO_HUBRISE_CLIENT_SECRET),
            redirect_uris: vec![DEMO_HUBRISE_REDIRECT_URI.into()],
            limits: HubRiseLimits::default(),
        }
    }
}

/// HubRise's limits per connection (a client and a location), in clock-aligned windows: a minute,
/// an hour and a day, all scaled by `minute_seconds` (60: real time) so a test can make them short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubRiseLimits {
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_day: u32,
    /// Heavy reads (order lists, catalogs, customer lists) a minute.
    pub heavy_per_minute: u32,
    /// How long the "minute" is, in seconds; an hour is 60 of them and a day 1,440.
    pub minute_seconds: u32,
}

impl Default for HubRiseLimits {
    fn default() -> Self {
        Self {
            per_minute: 500,
            per_hour: 2_500,
            per_day: 10_000,
            heavy_per_minute: 10,
            minute_seconds: 60,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7300)),
            client_id: DEMO_CLIENT_ID.to_string(),
            client_secret: Secret::new(DEMO_CLIENT_SECRET),
            webhook_key: Secret::new(DEMO_WEBHOOK_KEY),
            redirect_uris: vec![DEMO_REDIRECT_URI.to_string()],
            webhook_url: None,
            limits: Limits::default(),
            tokens: TokenLifetimes::default(),
            idempotency_window_seconds: 360,
            webhooks: WebhookSettings::default(),
            request_log_capacity: 100_000,
            state_file: None,
            hubrise: HubRiseSettings::default(),
            idp: IdpSettings::default(),
        }
    }
}

/// Xero's rate limits. Windows are fixed (not sliding): window N covers `[N*len, (N+1)*len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub tenant_per_window: u32,
    pub tenant_concurrent: u32,
    pub tenant_per_day: u32,
    pub app_per_window: u32,
    pub window_seconds: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tenant_per_window: 60,
            tenant_concurrent: 5,
            tenant_per_day: 5_000,
            app_per_window: 10_000,
            window_seconds: 60,
        }
    }
}

impl Limits {
    /// Limits high enough never to bite: for benchmarks and the demo's stress runs.
    pub fn lifted() -> Self {
        Self {
            tenant_per_window: u32::MAX,
            tenant_concurrent: u32::MAX,
            tenant_per_day: u32::MAX,
            app_per_window: u32::MAX,
            window_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenLifetimes {
    pub access_token_seconds: i64,
    /// How long a rotated-out refresh token keeps working (repeatedly) after its first rotation.
    pub refresh_grace_seconds: i64,
    /// An unused refresh token dies after this long.
    pub refresh_token_days: i64,
    pub auth_code_seconds: i64,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            access_token_seconds: 1800,
            refresh_grace_seconds: 1800,
            refresh_token_days: 60,
            auth_code_seconds: 300,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Delay before the first retry of a failed delivery; each retry doubles it (decreasing frequency).
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Stop retrying a delivery after this long (Xero: 24 hours).
    pub give_up_after_seconds: u64,
    /// A receiver must answer within this (Xero: 5 seconds).
    pub timeout_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            retry_initial_ms: 5_000,
            retry_max_ms: 3_600_000,
            give_up_after_seconds: 86_400,
            timeout_ms: 5_000,
        }
    }
}

impl Settings {
    /// Reads a TOML file over the defaults; unknown keys are an error that names them.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_file_is_the_defaults() {
        let sample = Settings::from_toml(include_str!("../../../docs/sandbox.toml")).unwrap();
        let defaults = Settings::default();
        assert_eq!(sample.listen, defaults.listen);
        assert_eq!(sample.client_id, defaults.client_id);
        assert_eq!(sample.client_secret, defaults.client_secret);
        assert_eq!(sample.redirect_uris, defaults.redirect_uris);
        assert_eq!(sample.limits, defaults.limits);
        assert_eq!(
            sample.tokens.refresh_token_days,
            defaults.tokens.refresh_token_days
        );
        assert_eq!(sample.webhooks.timeout_ms, defaults.webhooks.timeout_ms);
        assert_eq!(sample.hubrise.client_id, defaults.hubrise.client_id);
        assert_eq!(sample.hubrise.client_secret, defaults.hubrise.client_secret);
        assert_eq!(sample.hubrise.redirect_uris, defaults.hubrise.redirect_uris);
        assert_eq!(sample.hubrise.limits, defaults.hubrise.limits);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Settings::from_toml("[limits]\nper_minute = 3\n").unwrap_err();
        assert!(err.to_string().contains("per_minute"), "{err}");
    }
}
