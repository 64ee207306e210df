//! The HTTP front: accepts connections, applies injected faults, records the inspection log, and
//! hands requests to the router. A dropped connection is a real one: the service fails and hyper
//! closes the socket without an answer.

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, Uri};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

use crate::harness::faults::{FaultRule, Phase};
use crate::harness::log::{redact_body, redact_headers, Entry};
use crate::Shared;

/// Xero refuses bodies over 10 MB; so does the sandbox.
const MAX_BODY: usize = 10 * 1024 * 1024;

/// The fault layer asks the API to hold its concurrency slot this long before processing, as a slow
/// Xero does.
#[derive(Debug, Clone, Copy)]
pub struct InjectedLatency(pub Duration);

#[derive(Debug)]
pub struct DroppedConnection;

impl std::fmt::Display for DroppedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DroppedConnection {}

pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let router = crate::router(shared.clone());
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let router = router.clone();
                let service = hyper::service::service_fn(move |req| {
                    handle(shared.clone(), router.clone(), req)
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; stopping anyway");
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    router: Router,
    req: Request<Incoming>,
) -> Result<Response<Body>, DroppedConnection> {
    let (mut parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body over 10 MB",
            ));
        }
    };
    normalize_path(&mut parts.uri);
    let path = parts.uri.path().to_string();
    let control = path == "/_sandbox" || path.starts_with("/_sandbox/");
    let method = parts.method.to_string();

    let provider = if crate::hubrise::owns(&path) {
        "hubrise"
    } else if crate::idp::owns(&path) {
        "idp"
    } else {
        "xero"
    };
    let fault = if control {
        None
    } else {
        shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(provider, &method, &path)
    };
    let mut entry = (!control).then(|| Entry {
        seq: 0,
        provider,
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_string),
        tenant_id: parts
            .headers
            .get("xero-tenant-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        headers: redact_headers(&parts.headers),
        body: redact_body(
            parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            &bytes,
        ),
        status: None,
    });
    let record = |entry: &mut Option<Entry>, status: Option<u16>| {
        if let Some(mut e) = entry.take() {
            e.status = status;
            shared.log.lock().unwrap_or_else(|e| e.into_inner()).push(e);
        }
    };

    if let Some(rule) = fault.as_ref().filter(|r| r.phase == Phase::Before) {
        if rule.latency_ms > 0 {
            let latency = Duration::from_millis(rule.latency_ms);
            if path.to_ascii_lowercase().starts_with("/api.xro/") {
                parts.extensions.insert(InjectedLatency(latency));
            } else {
                tokio::time::sleep(latency).await;
            }
        }
        if rule.drop {
            record(&mut entry, None);
            return Err(DroppedConnection);
        }
        if let Some(status) = rule.status {
            record(&mut entry, Some(status));
            return Ok(fault_response(rule, status));
        }
    }

    let request = Request::from_parts(parts, Body::from(bytes));
    let mut response = match router.oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    // With `--state`, whatever this request changed is on disk before anyone hears of it. The
    // identity pages change things on GET too (a login's ticket); the API's reads change nothing.
    let may_change =
        !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS") || path.starts_with("/identity/");
    if may_change && shared.keeps_state() {
        let s = shared.clone();
        let saved = tokio::task::spawn_blocking(move || s.persist())
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        if let Err(e) = saved {
            tracing::error!(error = %e, "the state file could not be written");
            response = plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the sandbox could not write its state file (see its log)",
            );
        }
    }

    if let Some(rule) = fault.as_ref().filter(|r| r.phase == Phase::After) {
        // The request was processed; what the client sees is late, lost or replaced.
        tokio::time::sleep(Duration::from_millis(rule.latency_ms)).await;
        if rule.drop {
            record(&mut entry, None);
            return Err(DroppedConnection);
        }
        if let Some(status) = rule.status {
            response = fault_response(rule, status);
        }
    }
    record(&mut entry, Some(response.status().as_u16()));
    Ok(response)
}

/// One SDK calls `/Connections`, another `/connections`; Xero answers both. Accounting resource
/// names are matched case-insensitively by the API dispatcher itself.
fn normalize_path(uri: &mut Uri) {
    let path = uri.path();
    if path.len() >= 12
        && path[..12].eq_ignore_ascii_case("/connections")
        && !path.starts_with("/connections")
    {
        let fixed = format!(
            "/connections{}{}",
            &path[12..],
            uri.query().map(|q| format!("?{q}")).unwrap_or_default()
        );
        if let Ok(u) = fixed.parse() {
            *uri = u;
        }
    }
}

fn fault_response(rule: &FaultRule, status: u16) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({
        "Title": status.canonical_reason().unwrap_or("Error"),
        "Status": status.as_u16(),
        "Detail": "Injected by the sandbox's fault rules",
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(secs) = rule.retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}
