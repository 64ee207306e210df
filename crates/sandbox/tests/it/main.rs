//! The sandbox's integration tests: one binary (fast to link), one module per area. Each test starts
//! its own sandbox on 127.0.0.1:0 and talks to it over HTTP as a client of Xero would.

mod accounting;
mod binary;
mod common;
mod control;
mod credit_notes;
mod hubrise;
mod identity;
mod idp;
mod limits;
mod schemas;
mod webhooks;
