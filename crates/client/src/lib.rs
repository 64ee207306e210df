//! The device side of Ledgerlink, shared by the desktop app and the `ledgerlink` CLI: the device's
//! identity, its credentials (kept readable by the user only), the proxy API client, and pairing
//! (RFC 8628: show the code, open the browser, poll at the interval the proxy asks for).

pub mod api;
pub mod cli;
pub mod credentials;
pub mod identity;
pub mod pairing;
