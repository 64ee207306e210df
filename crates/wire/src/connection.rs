//! The organisation a device is paired to, as the device sees it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    #[default]
    Xero,
    /// HubRise, restaurants' order hub.
    #[serde(rename = "hubrise")]
    HubRise,
}

impl Provider {
    /// Every provider, for routes and settings named after them.
    pub const ALL: &'static [Provider] = &[Provider::Xero, Provider::HubRise];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Xero => "xero",
            Self::HubRise => "hubrise",
        }
    }

    /// How people call it (`Xero`), for pages and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Xero => "Xero",
            Self::HubRise => "HubRise",
        }
    }

    /// The provider a route or a setting names (`xero`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.as_str() == name)
    }
}

/// A connection's health, shown by the desktop next to the organisation's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Tokens work; documents flow.
    Connected,
    /// Xero refused the refresh token (`invalid_grant`): someone must connect Xero again.
    NeedsReconnect,
    /// Disconnected, from Ledgerlink or from Xero's side.
    Disconnected,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::NeedsReconnect => "needs_reconnect",
            Self::Disconnected => "disconnected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "connected" => Some(Self::Connected),
            "needs_reconnect" => Some(Self::NeedsReconnect),
            "disconnected" => Some(Self::Disconnected),
            _ => None,
        }
    }
}

/// `GET /v1/connection`: the organisation, its status, and this device. Also the desktop's health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionInfo {
    pub connection_id: Uuid,
    pub provider: Provider,
    /// The provider's id of the organisation (Xero: the tenant id, a UUID); a string, since other
    /// providers' ids are not UUIDs.
    pub tenant_id: String,
    pub organisation_name: String,
    pub status: ConnectionStatus,
    pub paired_at: DateTime<Utc>,
    /// When the proxy last refreshed the organisation's Xero tokens.
    pub last_refresh_at: Option<DateTime<Utc>>,
    pub device_id: Uuid,
    pub device_name: String,
    /// The organisation's time zone (IANA), once the proxy has read it from Xero: the dates a person
    /// sees are the organisation's local dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The organisation's short code in Xero (for links to its documents there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_code: Option<String>,
    /// Set when Xero's time zone for the organisation is not one Ledgerlink can map: its dates
    /// are then UTC dates, and this says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone_warning: Option<String>,
}

/// `GET /v1/device`: which device these credentials are (no call to Xero).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceInfo {
    pub device_id: Uuid,
    pub device_name: String,
    pub connection_id: Uuid,
    pub paired_at: DateTime<Utc>,
}

/// One device paired with the organisation, as `GET /v1/devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PairedDevice {
    pub device_name: String,
    pub paired_at: DateTime<Utc>,
    /// When it last called the proxy (to the minute); `null` before its first call.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The device asking.
    pub this_device: bool,
}

/// `GET /v1/devices`: every device paired with this device's organisation, the ones that stop
/// when the organisation is disconnected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceList {
    pub devices: Vec<PairedDevice>,
}

/// `DELETE /v1/connection` needs `{"confirm": true}`: it disconnects the organisation for every device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    #[serde(default)]
    pub confirm: bool,
}
