//! The operators' identity provider, Okta-shaped (`../shared/reference/OIDC-FACTS.md`): a custom
//! authorization server at `{sandbox}/oauth2/default` with discovery, its JWKS (`/v1/keys`),
//! authorize with a login page, token (authorization code with PKCE, client credentials),
//! userinfo and sign-out (`/v1/logout`). ID and access tokens are RS256 JWTs under a published
//! `kid`; access tokens are for the audience `api://default` and carry `scp`, and `groups` when
//! the `groups` scope was granted. It refuses what Okta refuses: an unknown client or redirect, a
//! missing `state`, a PKCE method other than S256, a code used twice or late, a wrong verifier.
//!
//! Seeded: `ops@ledgerlink.test` / `ops` in `ledgerlink-operators`, `viewer@ledgerlink.test` /
//! `viewer` in `ledgerlink-viewers`, the console's client and a client for scripts.

pub(crate) mod control;
pub mod model;
mod oauth;

use axum::routing::get;
use axum::Router;
use std::sync::{Arc, MutexGuard};

use crate::Shared;

/// Where the authorization server lives on the sandbox.
pub const PATH: &str = "/oauth2/default";

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/oauth2/default/.well-known/openid-configuration",
            get(oauth::configuration),
        )
        .route("/oauth2/default/v1/keys", get(oauth::keys))
        .route(
            "/oauth2/default/v1/authorize",
            get(oauth::authorize).post(oauth::login),
        )
        .route(
            "/oauth2/default/v1/token",
            axum::routing::post(oauth::token),
        )
        .route("/oauth2/default/v1/userinfo", get(oauth::userinfo))
        .route("/oauth2/default/v1/logout", get(oauth::logout))
}

/// Whether a request path is the identity provider's (for the request log).
pub fn owns(path: &str) -> bool {
    path.starts_with("/oauth2/default/")
}

/// The identity provider's issuer on this sandbox.
pub fn issuer(shared: &Shared) -> String {
    format!("{}{PATH}", shared.base_url())
}

/// The identity provider's world, locked. Never hold the guard across an `.await`.
pub fn world(shared: &Shared) -> MutexGuard<'_, model::World> {
    shared.idp.lock().unwrap_or_else(|e| e.into_inner())
}
