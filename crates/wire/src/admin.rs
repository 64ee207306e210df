//! The operator API (`/admin/v1/...`): connections with their devices and queues, every device,
//! and every device's documents.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::documents::DocumentView;
use crate::ConnectionStatus;

/// A device as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminDevice {
    pub id: Uuid,
    pub name: String,
    pub paired_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A connected organisation and its devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminConnection {
    pub id: Uuid,
    pub provider: String,
    /// The provider's id of the organisation (a string: not every provider's is a UUID).
    pub tenant_id: String,
    pub tenant_name: String,
    pub status: ConnectionStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub devices: Vec<AdminDevice>,
    /// Its documents by state (`queued`, `sending`, `sent`, `failed`, ...); states with none are
    /// left out.
    #[serde(default)]
    pub queue: BTreeMap<String, u64>,
    /// When one of its documents last reached the provider.
    #[serde(default)]
    pub last_delivered_at: Option<DateTime<Utc>>,
}

/// `GET /admin/v1/connections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminConnectionList {
    pub connections: Vec<AdminConnection>,
}

/// A device, with the organisation it is paired to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminDeviceEntry {
    pub id: Uuid,
    pub name: String,
    pub connection_id: Uuid,
    pub provider: String,
    pub tenant_name: String,
    pub paired_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// When it was unpaired (by itself or an operator); its credentials no longer work.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `GET /admin/v1/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminDeviceList {
    pub devices: Vec<AdminDeviceEntry>,
}

/// A document as the operator sees it: whose it is, and the document as its device sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminDocument {
    pub connection_id: Uuid,
    pub device_id: Uuid,
    pub document: DocumentView,
}

/// `GET /admin/v1/documents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminDocumentList {
    pub documents: Vec<AdminDocument>,
}
