//! The harness every emulated provider stands on: the movable clock, injected faults, rate-limit
//! windows, the request log, the state kept in a file, the HTTP front, the control API's shared
//! calls and the pages' chrome. A provider's own emulation lives beside it (`crate::xero`).

/// The providers emulated, by the names control calls take (`provider`).
pub const PROVIDERS: &[&str] = &["xero", "hubrise"];

pub mod clock;
pub(crate) mod control;
pub(crate) mod faults;
pub(crate) mod forms;
pub(crate) mod hooks;
pub mod keys;
pub(crate) mod limits;
pub(crate) mod log;
pub(crate) mod pages;
pub mod secret;
pub(crate) mod server;
pub(crate) mod state;
