//! Xero's OpenID Connect discovery document, its signing keys and userinfo. The document names
//! Xero's real URLs, as Xero's does: a client reaches them by routing `identity.xero.com`,
//! `login.xero.com` and `api.xero.com` to the sandbox, below its HTTP library (a hosts entry and a
//! TLS terminator in front of the sandbox would do the same), and each is served here at its path.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

use super::{verify_bearer, Unauthorized, XERO_ISSUER};
use crate::Shared;

/// `GET /.well-known/openid-configuration`.
pub async fn configuration() -> Response {
    let document = json!({
        "issuer": XERO_ISSUER,
        "jwks_uri": format!("{XERO_ISSUER}/.well-known/openid-configuration/jwks"),
        "authorization_endpoint": "https://login.xero.com/identity/connect/authorize",
        "token_endpoint": format!("{XERO_ISSUER}/connect/token"),
        "userinfo_endpoint": format!("{XERO_ISSUER}/connect/userinfo"),
        "end_session_endpoint": "https://login.xero.com/identity/connect/endsession",
        "revocation_endpoint": format!("{XERO_ISSUER}/connect/revocation"),
        "scopes_supported": super::KNOWN_SCOPES,
        "claims_supported": ["sub", "email", "given_name", "family_name", "xero_userid",
            "global_session_id", "sid", "auth_time", "nonce"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "request_parameter_supported": false,
    });
    cached(Json(document).into_response())
}

/// `GET /.well-known/openid-configuration/jwks`: the keys tokens are signed with (after a
/// rotation, the one before as well).
pub async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    let keys = shared.xero_keys().jwks();
    cached(Json(keys).into_response())
}

/// `GET /connect/userinfo` with an access token: who granted it.
pub async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let caller = match verify_bearer(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return www_authenticate(e),
    };
    let world = shared.world();
    let user = world.user(caller.user_id);
    Json(json!({
        "sub": caller.user_id.simple().to_string(),
        "xero_userid": caller.user_id,
        "email": user.map(|u| u.email.clone()),
        "given_name": user.map(|u| u.first_name.clone()),
        "family_name": user.map(|u| u.last_name.clone()),
    }))
    .into_response()
}

/// A protected resource's 401 (RFC 6750): the problem body Xero's API gives, and the header.
fn www_authenticate(e: Unauthorized) -> Response {
    let mut r = e.into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer error="invalid_token""#),
    );
    r
}

/// Published documents may be cached for a while; a client still fetches the keys again when it
/// meets a `kid` it does not know.
fn cached(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}
