//! The device side of Ledgerlink, shared by the desktop app and the `ledgerlink` CLI: the device's
//! identity, its credentials (the OS keychain or a file readable by the user only), the proxy API
//! client, pairing (RFC 8628: show the code, open the browser, poll at the interval the proxy asks
//! for), documents with Xero's totals, the local outbox that keeps working offline, and the sync
//! loop that sends it and mirrors the proxy's events.

pub mod advice;
pub mod api;
pub mod app;
pub mod cli;
pub mod credentials;
pub mod documents;
pub mod fix;
pub mod identity;
pub mod outbox;
pub mod pairing;
pub mod pin;
pub mod sync;
