//! The providers a connection can be to, one module each: how a connection comes to exist there,
//! how its grant stays usable, how a call is authorised and what its answer says about quota,
//! webhooks, and how documents become calls. What is generic (outbox, bundling, idempotency,
//! pacing, events) stays outside, in `delivery`, `documents` and `store`.
//!
//! Xero is the first. A new provider is a module beside it (`providers/NAME/`), a name in
//! `ledgerlink_wire::Provider`, a `[providers.NAME]` settings section and its routes
//! (`/oauth/NAME/callback`, `/webhooks/NAME`).

pub mod xero;
