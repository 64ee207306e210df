//! Xero: its identity server (`oauth`), its Accounting API (`api`), its webhooks, and what the
//! proxy keeps of each organisation (`timezone`: the zone Xero names, mapped to IANA).

pub mod api;
pub mod oauth;
pub mod timezone;
pub mod webhooks;
