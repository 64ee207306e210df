//! The operator API (`/admin/v1/...`): connections and the devices paired to them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
}

/// `GET /admin/v1/connections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminConnectionList {
    pub connections: Vec<AdminConnection>,
}
