//! The device API (`/v1/...`) beyond pairing, the operator API (`/admin/v1/...`) and health.

mod admin;
mod connection;
mod health;

use axum::routing::{delete, get};
use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/v1/connection",
            get(connection::get).delete(connection::disconnect),
        )
        .route(
            "/v1/device",
            get(connection::whoami).delete(connection::unpair),
        )
        .route("/admin/v1/connections", get(admin::list))
        .route("/admin/v1/connections/{id}", delete(admin::disconnect))
}
