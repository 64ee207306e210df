//! End-to-end: the Xero sandbox and the proxy running together on loopback; a device and a browser
//! drive them over plain HTTP, as the desktop app and a person would.

mod cli;
mod cli_fix;
mod connection_cap;
mod corrections;
mod crash;
mod hardening;
mod hubrise;
mod moving;
mod moving_up;
mod operators;
mod pairing;
mod push;
mod push_faults;
mod readme;
mod refresh;
mod refunds;
mod replicas;
mod security;
mod storage;
mod strict_input;
mod upgrade;
mod voids;
mod xero_2026;
