//! Device credentials: opaque random tokens, stored only as hashes. The access token lives about an
//! hour; the refresh token rotates on every use, and a rotated-out one used again revokes the device,
//! unless it comes within a few seconds of its rotation (two processes of one device racing), when it
//! gets the same new pair.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use ledgerlink_wire::{ConnectionInfo, ConnectionStatus, ErrorCode, Provider, Secret};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use uuid::Uuid;

use crate::error::AppError;
use crate::store::{ConnectionRow, DeviceRow, DeviceTokenRow, TokenKind};
use crate::AppState;

const ACCESS_PREFIX: &str = "lla_";
const REFRESH_PREFIX: &str = "llr_";

/// 256 random bits from the OS-seeded CSPRNG, base64url.
pub fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A random token with a prefix that says what it is (so a leaked one is recognisable by secret
/// scanners).
fn new_token(prefix: &str) -> Secret {
    Secret::new(format!("{prefix}{}", random_secret()))
}

pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A pair just made: the only moment the proxy holds the tokens in the clear.
#[derive(Clone, Serialize, Deserialize)]
pub struct Issued {
    access_token: String,
    refresh_token: String,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Issued {
    pub fn access(&self) -> Secret {
        Secret::new(self.access_token.clone())
    }

    pub fn refresh(&self) -> Secret {
        Secret::new(self.refresh_token.clone())
    }

    pub fn expires_in(&self, now: DateTime<Utc>) -> u64 {
        (self.expires_at - now).num_seconds().max(0) as u64
    }
}

/// A fresh pair for `device` and the rows that store its hashes.
pub fn issue(
    state: &AppState,
    device: Uuid,
    now: DateTime<Utc>,
) -> (Issued, DeviceTokenRow, DeviceTokenRow) {
    let access = new_token(ACCESS_PREFIX);
    let refresh = new_token(REFRESH_PREFIX);
    let expires_at = now + Duration::seconds(state.settings.devices.access_token_secs as i64);
    let row = |token: &Secret, kind, expires_at| DeviceTokenRow {
        hash: hash(token.expose()),
        device_id: device,
        kind,
        created_at: now,
        expires_at,
        rotated_at: None,
        successor: None,
        revoked_at: None,
    };
    let access_row = row(&access, TokenKind::Access, Some(expires_at));
    let refresh_row = row(&refresh, TokenKind::Refresh, None);
    (
        Issued {
            access_token: access.expose().to_string(),
            refresh_token: refresh.expose().to_string(),
            expires_at,
        },
        access_row,
        refresh_row,
    )
}

pub(crate) fn successor_aad(old_hash: &[u8]) -> Vec<u8> {
    let mut aad = b"ledgerlink:device_successor:".to_vec();
    aad.extend_from_slice(old_hash);
    aad
}

fn invalid_grant(message: &str) -> AppError {
    AppError::oauth(ErrorCode::InvalidGrant, message)
}

/// Rotates a refresh token: the new pair, and the device it belongs to.
pub async fn refresh(
    state: &AppState,
    token: &Secret,
    client_id: &str,
) -> Result<(Issued, DeviceRow), AppError> {
    let old_hash = hash(token.expose());
    for _ in 0..2 {
        let lookup = old_hash.clone();
        let row = state
            .storage
            .devices()
            .device_token(&lookup)
            .await?
            .filter(|r| r.kind == TokenKind::Refresh)
            .ok_or_else(|| invalid_grant("Unknown refresh token: pair the device again."))?;
        let device_id = row.device_id;
        let device = state
            .storage
            .devices()
            .device(device_id)
            .await?
            .ok_or_else(|| invalid_grant("Unknown device: pair it again."))?;
        if device.client_id != client_id {
            return Err(AppError::oauth(
                ErrorCode::InvalidClient,
                "This refresh token belongs to another client.",
            ));
        }
        if row.revoked_at.is_some() || device.revoked_at.is_some() {
            return Err(invalid_grant("This device was unpaired: pair it again."));
        }
        let now = state.clock.now();
        if let Some(rotated) = row.rotated_at {
            let grace = Duration::seconds(state.settings.devices.refresh_reuse_grace_secs as i64);
            if now - rotated <= grace {
                if let Some(successor) = &row.successor {
                    let json = state
                        .keyring
                        .open(&successor_aad(&old_hash), successor)
                        .map_err(AppError::internal)?;
                    let issued: Issued =
                        serde_json::from_slice(&json).map_err(AppError::internal)?;
                    return Ok((issued, device));
                }
            }
            // A refresh token used again after it was replaced: it may have been stolen. Cut the
            // device off; its owner pairs again.
            tracing::warn!(device = %device.id, "a rotated-out refresh token was reused; revoking the device");
            state
                .storage
                .devices()
                .revoke_device(device_id, now)
                .await?;
            state.streams.end([device_id]);
            return Err(invalid_grant(
                "This refresh token was already used, so the device was unpaired for safety: pair it again.",
            ));
        }
        let (issued, access_row, refresh_row) = issue(state, device.id, now);
        let successor = state.keyring.seal(
            &successor_aad(&old_hash),
            &serde_json::to_vec(&issued).expect("tokens serialize"),
        );
        let lookup = old_hash.clone();
        let rotated = state
            .storage
            .devices()
            .rotate_refresh(&lookup, &successor, &access_row, &refresh_row, now)
            .await?;
        if rotated {
            return Ok((issued, device));
        }
        // Another process of the device rotated it between our read and write: go round once more
        // and take the successor it stored.
    }
    Err(invalid_grant(
        "The refresh token could not be rotated: pair the device again.",
    ))
}

/// An authenticated device, from its bearer access token. The connection comes from the token,
/// never from anything the device sends.
#[derive(Debug, Clone)]
pub struct DeviceAuth {
    pub device: DeviceRow,
    pub connection: ConnectionRow,
    /// When the access token presented runs out.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The token of an `Authorization: Bearer ...` header (the scheme in any case, RFC 7235).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthenticated(code: ErrorCode, message: &str) -> AppError {
    AppError::api(StatusCode::UNAUTHORIZED, code, message)
}

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            unauthenticated(
                ErrorCode::Unauthenticated,
                "Send the device's access token as `Authorization: Bearer ...`.",
            )
        })?;
        authenticate(state, token).await
    }
}

/// The device and connection an access token stands for, or why it stands for none (expired,
/// revoked, its organisation disconnected).
pub async fn authenticate(state: &AppState, token: &str) -> Result<DeviceAuth, AppError> {
    let h = hash(token);
    let row = state
        .storage
        .devices()
        .device_token(&h)
        .await?
        .filter(|r| r.kind == TokenKind::Access)
        .ok_or_else(|| {
            unauthenticated(
                ErrorCode::Unauthenticated,
                "Unknown access token: refresh it or pair the device again.",
            )
        })?;
    let device_id = row.device_id;
    let device = state.storage.devices().device(device_id).await?;
    let connection = match &device {
        Some(d) => {
            state
                .storage
                .connections()
                .connection(d.connection_id)
                .await?
        }
        None => None,
    };
    let (Some(device), Some(connection)) = (device, connection) else {
        return Err(unauthenticated(
            ErrorCode::DeviceRevoked,
            "This device is not paired: pair it again.",
        ));
    };
    if row.revoked_at.is_some() || device.revoked_at.is_some() {
        if connection.status == ConnectionStatus::Disconnected {
            return Err(unauthenticated(
                ErrorCode::Disconnected,
                "The organisation was disconnected from Xero: connect Xero again to pair this device.",
            ));
        }
        return Err(unauthenticated(
            ErrorCode::DeviceRevoked,
            "This device was unpaired: pair it again.",
        ));
    }
    let now = state.clock.now();
    if row.expires_at.is_some_and(|e| now >= e) {
        return Err(unauthenticated(
            ErrorCode::TokenExpired,
            "The access token expired: refresh it.",
        ));
    }
    // Last seen to the minute: not a write on every request.
    if device
        .last_seen_at
        .is_none_or(|t| now - t > chrono::Duration::seconds(60))
    {
        let seen = device.id;
        state.storage.devices().touch_device(seen, now).await?;
    }
    Ok(DeviceAuth {
        device,
        connection,
        expires_at: row.expires_at,
    })
}

/// The device's view of its connection.
pub async fn connection_info(
    state: &AppState,
    device: &DeviceRow,
    connection: &ConnectionRow,
) -> Result<ConnectionInfo, AppError> {
    let last_refresh_at = match connection.token_set_id {
        Some(ts) => state
            .storage
            .vault()
            .token_set(ts)
            .await?
            .map(|t| t.last_refresh_at.unwrap_or(t.created_at)),
        None => None,
    };
    let id = connection.id;
    let org = state.storage.connections().organisation(id).await?;
    let timezone_warning = org
        .as_ref()
        .filter(|o| {
            // Only Xero names zones its own way; another provider's zone is IANA already.
            !o.xero_timezone.is_empty()
                && crate::providers::xero::timezone::from_xero(&o.xero_timezone).is_none()
        })
        .map(|o| {
            format!(
                "Xero's time zone for the organisation, '{}', is not one Ledgerlink knows: its documents are dated in UTC.",
                o.xero_timezone
            )
        });
    Ok(ConnectionInfo {
        timezone_warning,
        timezone: org.as_ref().map(|o| o.timezone.clone()),
        short_code: org.and_then(|o| o.short_code),
        connection_id: connection.id,
        provider: Provider::parse(&connection.provider).unwrap_or_default(),
        tenant_id: connection.tenant_id.clone(),
        organisation_name: connection.tenant_name.clone(),
        status: connection.status,
        paired_at: device.paired_at,
        last_refresh_at,
        device_id: device.id,
        device_name: device.name.clone(),
    })
}
