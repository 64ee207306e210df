//! Xero, emulated: its identity server (`identity`: authorize and consent pages, tokens,
//! connections), its Accounting API (`api`, with `where` filters and its JSON conventions), its
//! webhooks, the organisations' books (`model`, seeded by `seed`), its totals rule, and its
//! control calls. A second provider is a module beside this one, on the same harness.

pub mod api;
pub(crate) mod control;
pub mod identity;
pub mod model;
pub mod seed;
pub mod totals;
pub(crate) mod webhooks;
pub(crate) mod where_filter;
pub mod xjson;
