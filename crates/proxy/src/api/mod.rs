//! The device API (`/v1/...`) beyond pairing and documents, the operator API (`/admin/v1/...`)
//! and health.

pub(crate) mod admin;
mod connection;
mod health;

use axum::routing::get;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(crate::metrics::scrape))
        .routes(routes!(connection::get, connection::disconnect))
        .routes(routes!(connection::whoami, connection::unpair))
        .routes(routes!(connection::devices))
        .routes(routes!(admin::list))
        .routes(routes!(admin::disconnect))
        .routes(routes!(admin::devices))
        .routes(routes!(admin::unpair_device))
        .routes(routes!(admin::documents))
        .routes(routes!(admin::retry))
        .routes(routes!(admin::discard))
}
