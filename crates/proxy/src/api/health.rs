//! `/healthz` (the process answers) and `/readyz` (its database answers reads and takes writes:
//! `503` while a full disk refuses them, so a load balancer sends devices elsewhere).

use axum::extract::State;
use axum::http::StatusCode;

use crate::store::StoreError;
use crate::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    let health = state.storage.health();
    let ready = async {
        health.ping().await?;
        health.writable().await
    };
    match ready.await {
        Ok(()) => (StatusCode::OK, "ready"),
        // Logged (at most once a minute) by the store.
        Err(StoreError::Unavailable(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable: writes fail",
        ),
        Err(e) => {
            tracing::error!(error = %e, "not ready: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
