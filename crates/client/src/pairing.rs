//! Pairing from the device's side (RFC 8628): ask for a code, show it, poll at the interval the
//! proxy asks for (five seconds more after each `slow_down`), stop on `access_denied` or
//! `expired_token` with a clear message.

use chrono::Utc;
use ledgerlink_wire::pairing::{DeviceTokens, PairingResponse};
use ledgerlink_wire::ErrorCode;
use std::time::Duration;

use crate::api::{ClientError, ProxyClient};
use crate::credentials::Credentials;
use crate::identity::Identity;

#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("the person cancelled connecting in the browser")]
    Denied,
    #[error("the code expired before it was used: run the pairing again")]
    Expired,
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl PairError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Denied => "access_denied",
            Self::Expired => "expired_token",
            Self::Client(ClientError::Api { code, .. }) => code.as_str(),
            Self::Client(ClientError::Unreachable { .. }) => "proxy_unreachable",
            Self::Client(ClientError::Protocol(_)) => "protocol",
        }
    }
}

/// A finished pairing: the device's new credentials, and the organisation it moved from, if the
/// pairing moved it.
pub struct Paired {
    pub credentials: Credentials,
    pub moved_from: Option<String>,
}

/// Pairs the device: `show` is called once with the code to display. `current` are the device's
/// credentials while it is paired (with this proxy): sent as proof that the device itself asks,
/// so the person may move it to another organisation.
pub async fn pair(
    client: &ProxyClient,
    proxy_url: &str,
    identity: &Identity,
    current: Option<&Credentials>,
    provider: ledgerlink_wire::Provider,
    show: impl FnOnce(&PairingResponse),
) -> Result<Paired, PairError> {
    let (id, name) = (identity.device_id, identity.device_name.as_str());
    let token = current.map(|c| &c.access_token);
    let (started, proved) = match client.start_pairing(id, name, provider, token).await {
        // The device's credentials no longer work (unpaired, disconnected): there is nothing to
        // move it from, so it pairs as a new device.
        Err(e) if token.is_some() && is_stale(&e) => {
            (client.start_pairing(id, name, provider, None).await?, false)
        }
        other => (other?, token.is_some()),
    };
    let before = current.filter(|_| proved).map(|c| {
        (
            c.connection.tenant_id.clone(),
            c.connection.organisation_name.clone(),
        )
    });
    show(&started);
    let mut interval = Duration::from_secs(started.interval.clamp(1, 60));
    let expires = tokio::time::Instant::now() + Duration::from_secs(started.expires_in.min(86_400));
    loop {
        tokio::time::sleep(interval).await;
        match client.poll(&started.device_code).await {
            Ok(tokens) => {
                let credentials = credentials(proxy_url, tokens);
                let moved_from = before
                    .filter(|(tenant, _)| *tenant != credentials.connection.tenant_id)
                    .map(|(_, name)| name);
                return Ok(Paired {
                    credentials,
                    moved_from,
                });
            }
            // A blip (the proxy restarting, a gateway's 502): keep polling until the code expires.
            Err(e) if e.is_transient() && tokio::time::Instant::now() < expires => {}
            Err(e) if e.is_transient() => return Err(PairError::Expired),
            Err(e) => match e.code() {
                Some(ErrorCode::AuthorizationPending) => {}
                Some(ErrorCode::SlowDown) => interval += Duration::from_secs(5),
                Some(ErrorCode::AccessDenied) => return Err(PairError::Denied),
                Some(ErrorCode::ExpiredToken) => return Err(PairError::Expired),
                _ => return Err(e.into()),
            },
        }
    }
}

fn is_stale(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(
            ErrorCode::Unauthenticated
                | ErrorCode::DeviceRevoked
                | ErrorCode::Disconnected
                | ErrorCode::TokenExpired
        )
    )
}

pub fn credentials(proxy_url: &str, tokens: DeviceTokens) -> Credentials {
    Credentials {
        proxy_url: proxy_url.to_string(),
        expires_at: Utc::now()
            + chrono::Duration::seconds(tokens.expires_in.min(86_400 * 365) as i64),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        connection: tokens.connection,
    }
}
