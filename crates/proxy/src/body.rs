//! Reading request bodies within bounds: at most `limits.max_body_bytes` (a larger body answers
//! `413 payload_too_large`, before it is read when its `Content-Length` says so), all of it within
//! `server.body_read_timeout_secs` (else `408`), and JSON bodies strictly: a key given twice at any
//! depth, or a key the call does not take, is a `400` that names it.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt;
use ledgerlink_wire::strict::{self, JsonError};
use ledgerlink_wire::ErrorCode;
use serde::de::DeserializeOwned;
use std::time::Duration;

use crate::error::AppError;
use crate::AppState;

/// A request's whole body, read within the proxy's limits.
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

fn too_large(limit: usize) -> AppError {
    AppError::api(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("The body is over {limit} bytes: send fewer documents per request."),
    )
}

impl FromRequest<AppState> for RawBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let limit = state.settings.limits.max_body_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let within = Duration::from_secs(state.settings.server.body_read_timeout_secs.max(1));
        let body = http_body_util::Limited::new(req.into_body(), limit);
        match tokio::time::timeout(within, body.collect()).await {
            Err(_) => Err(AppError::api(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::InvalidRequest,
                format!(
                    "The body did not arrive within {} seconds: send it again.",
                    within.as_secs()
                ),
            )),
            Ok(Ok(collected)) => Ok(Self(collected.to_bytes())),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
            Ok(Err(e)) => Err(AppError::bad_request(format!(
                "The body could not be read: {e}"
            ))),
        }
    }
}

/// A JSON body read strictly into `T` (which should deny unknown fields): duplicates and unknown
/// keys are `400 invalid_request`, naming the key.
#[derive(Debug, Clone)]
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for StrictJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let wants_json = json_content(req.headers());
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        if !wants_json {
            return Err(AppError::api(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::InvalidRequest,
                "Send the body as JSON (Content-Type: application/json).",
            ));
        }
        strict::from_json(&bytes)
            .map(Self)
            .map_err(|e| AppError::bad_request(json_problem(&e)))
    }
}

/// Whether the request says its body is JSON (or says nothing, which is read as JSON).
pub fn json_content(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| {
            let t = t.trim().to_ascii_lowercase();
            t.starts_with("application/json")
                || t.starts_with("application/") && t.contains("+json")
        })
}

/// What a device is told about a body that is not acceptable JSON.
pub fn json_problem(e: &JsonError) -> String {
    match e {
        JsonError::Syntax(why) => format!("The body is not the JSON this call takes: {why}"),
        dup @ JsonError::DuplicateKey { .. } => format!("The body is refused: {dup}."),
    }
}

/// Query parameters read into `T`, refused as `400 invalid_request` (JSON, naming what is wrong)
/// like every other mistake, not axum's plain-text rejection.
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, AppError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Self(q.0))
            .map_err(|e| {
                AppError::bad_request(format!("The query is not valid: {}", e.body_text()))
            })
    }
}
