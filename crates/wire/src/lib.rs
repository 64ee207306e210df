//! The device ⇄ proxy API: what a desktop app or the CLI sends to the comms proxy and what it gets
//! back. Plain serde types only (no HTTP framework), so the proxy, the client core and the UI share
//! one definition of every field and every error code.

pub mod admin;
pub mod connection;
pub mod error;
pub mod pairing;
#[cfg(feature = "openapi")]
pub mod schema;
pub mod secret;
pub mod strict;

pub use connection::{
    ConnectionInfo, ConnectionStatus, DeviceInfo, DeviceList, PairedDevice, Provider,
};
pub use error::{ApiError, ErrorCode};
pub use secret::Secret;

/// The API version in every path (`/v1/...`).
pub const API_VERSION: &str = "v1";

/// The public client id the desktop app and the CLI send when they start a pairing.
pub const DEFAULT_PUBLIC_CLIENT_ID: &str = "ledgerlink-desktop";
pub mod documents;
pub mod money;
pub mod totals;
pub mod validate;
