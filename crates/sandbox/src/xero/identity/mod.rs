//! Xero's identity server: the authorize page, the token and revocation endpoints, connections,
//! and its OpenID Connect parts: the discovery document naming Xero's real URLs (each served here
//! at its path, for a client that routes Xero's hosts to the sandbox), the JWKS, and userinfo.
//! Access and ID tokens are RS256 JWTs under a key of that JWKS, `iss` Xero's.

mod authorize;
mod connections;
mod discovery;
mod token;

/// Xero's issuer, as its tokens and discovery document name it.
pub const XERO_ISSUER: &str = "https://identity.xero.com";

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::xero::model::World;
use crate::Shared;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/identity/connect/authorize",
            get(authorize::page).post(authorize::submit),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::configuration),
        )
        .route(
            "/.well-known/openid-configuration/jwks",
            get(discovery::jwks),
        )
        .route("/connect/userinfo", get(discovery::userinfo))
        .route("/connect/token", post(token::token))
        .route("/connect/revocation", post(token::revocation))
        .route("/connections", get(connections::list))
        .route("/connections/{id}", delete(connections::remove))
}

/// Scopes an app may ask for. Anything else answers `invalid_scope`.
pub const KNOWN_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "offline_access",
    "accounting.transactions",
    "accounting.transactions.read",
    "accounting.invoices",
    "accounting.invoices.read",
    "accounting.payments",
    "accounting.payments.read",
    "accounting.contacts",
    "accounting.contacts.read",
    "accounting.settings",
    "accounting.settings.read",
    "accounting.reports.read",
    "accounting.journals.read",
    "accounting.attachments",
    "accounting.attachments.read",
];

pub fn parse_scope(text: &str) -> Result<Vec<String>, String> {
    let scopes: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    match scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        Some(bad) => Err(bad.clone()),
        None => Ok(scopes),
    }
}

/// An OAuth error answer: `400 {"error": "..."}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthError {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    InvalidScope,
}

impl OAuthError {
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": self.code() })),
        )
            .into_response()
    }
}

/// The app's credentials, from HTTP Basic (xero-node) or the form body (xero-python); the secret is
/// compared in constant time.
pub fn authenticate_client(
    world: &World,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<String, OAuthError> {
    let from_form = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (client_id, secret) = match headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        }) {
        Some(encoded) => {
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(OAuthError::InvalidClient)?;
            let (id, secret) = decoded.split_once(':').ok_or(OAuthError::InvalidClient)?;
            (id.to_string(), secret.to_string())
        }
        None => (
            from_form("client_id").ok_or(OAuthError::InvalidClient)?,
            from_form("client_secret").ok_or(OAuthError::InvalidClient)?,
        ),
    };
    let app = world
        .apps
        .get(&client_id)
        .ok_or(OAuthError::InvalidClient)?;
    if bool::from(
        app.client_secret
            .expose()
            .as_bytes()
            .ct_eq(secret.as_bytes()),
    ) {
        Ok(client_id)
    } else {
        Err(OAuthError::InvalidClient)
    }
}

/// The token endpoint's success answer.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub access_token: String,
    pub expires_in: i64,
    pub token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// Issues an access token (and a refresh token when `offline_access` was granted, and an ID token,
/// with the authorization request's `nonce`, when `openid` was) for a grant.
pub fn issue_tokens(
    shared: &Shared,
    world: &mut World,
    grant_id: Uuid,
    nonce: Option<&str>,
) -> TokenResponse {
    let now = shared.clock.now();
    let grant = world.grants[&grant_id].clone();
    let lifetime = shared.settings.tokens.access_token_seconds;
    let issuer = XERO_ISSUER;
    let claims = json!({
        "nbf": now.timestamp(),
        "exp": now.timestamp() + lifetime,
        "iss": issuer,
        "aud": format!("{issuer}/resources"),
        "client_id": grant.client_id,
        "sub": grant.user_id.simple().to_string(),
        "auth_time": grant.created.timestamp(),
        "xero_userid": grant.user_id,
        "global_session_id": grant.id.simple().to_string(),
        "sid": grant.id,
        "jti": Uuid::new_v4().simple().to_string(),
        "authentication_event_id": grant.auth_event_id,
        "scope": grant.scope,
    });
    let keys = shared.xero_keys();
    let access_token = keys.sign(&claims);
    let id_token = grant.scope.iter().any(|s| s == "openid").then(|| {
        let user = world.user(grant.user_id);
        let mut claims = json!({
            "nbf": now.timestamp(),
            "exp": now.timestamp() + 300,
            "iss": issuer,
            "aud": grant.client_id,
            "iat": now.timestamp(),
            "auth_time": grant.created.timestamp(),
            "sub": grant.user_id.simple().to_string(),
            "xero_userid": grant.user_id,
            "email": user.map(|u| u.email.clone()),
            "given_name": user.map(|u| u.first_name.clone()),
            "family_name": user.map(|u| u.last_name.clone()),
            "global_session_id": grant.id.simple().to_string(),
            "sid": grant.id.simple().to_string(),
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        keys.sign(&claims)
    });
    drop(keys);
    let refresh_token = grant.scope.iter().any(|s| s == "offline_access").then(|| {
        let token = random_token();
        world.refresh_tokens.insert(
            token.clone(),
            crate::xero::model::RefreshRecord {
                grant_id,
                issued: now,
                rotated: None,
            },
        );
        token
    });
    TokenResponse {
        id_token,
        access_token,
        expires_in: lifetime,
        token_type: "Bearer",
        refresh_token,
        scope: grant.scope.join(" "),
    }
}

/// 256 bits from the OS CSPRNG, as 64 hex characters (the shape of Xero's refresh tokens).
pub use crate::harness::forms::random_token;

/// What a verified access token says.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: String,
    pub user_id: Uuid,
    pub grant_id: Uuid,
    pub auth_event_id: Uuid,
    pub scope: Vec<String>,
}

impl Caller {
    pub fn has_any_scope(&self, wanted: &[&str]) -> bool {
        self.scope.iter().any(|s| wanted.contains(&s.as_str()))
    }
}

/// Why an API call's bearer token was refused: answered as Xero's `401` problem JSON.
#[derive(Debug)]
pub enum Unauthorized {
    Unsuccessful,
    Expired(DateTime<Utc>),
}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let detail = match self {
            Self::Unsuccessful => "AuthenticationUnsuccessful".to_string(),
            Self::Expired(at) => format!(
                "TokenExpired: token expired at {}",
                at.format("%m/%d/%Y %H:%M:%S")
            ),
        };
        problem(StatusCode::UNAUTHORIZED, "Unauthorized", &detail)
    }
}

/// Xero's problem JSON (`Type`, `Title`, `Status`, `Detail`, `Instance`, `Extensions`).
pub fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        Json(json!({
            "Type": null,
            "Title": title,
            "Status": status.as_u16(),
            "Detail": detail,
            "Instance": Uuid::new_v4(),
            "Extensions": {},
        })),
    )
        .into_response()
}

/// Checks the `Authorization: Bearer` header: signature, expiry, and that its grant still stands.
pub fn verify_bearer(shared: &Shared, headers: &HeaderMap) -> Result<Caller, Unauthorized> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or(Unauthorized::Unsuccessful)?;
    let claims = shared
        .xero_keys()
        .verify(token.trim())
        .filter(|c| c["iss"] == XERO_ISSUER && c["aud"] == format!("{XERO_ISSUER}/resources"))
        .ok_or(Unauthorized::Unsuccessful)?;
    let exp = claims["exp"].as_i64().ok_or(Unauthorized::Unsuccessful)?;
    let exp = Utc
        .timestamp_opt(exp, 0)
        .single()
        .ok_or(Unauthorized::Unsuccessful)?;
    if shared.clock.now() >= exp {
        return Err(Unauthorized::Expired(exp));
    }
    let uuid = |name: &str| {
        claims[name]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or(Unauthorized::Unsuccessful)
    };
    let caller = Caller {
        client_id: claims["client_id"].as_str().unwrap_or_default().to_string(),
        user_id: uuid("xero_userid")?,
        grant_id: uuid("sid")?,
        auth_event_id: uuid("authentication_event_id")?,
        scope: claims["scope"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let world = shared.world();
    match world.grants.get(&caller.grant_id) {
        Some(g) if !g.revoked => Ok(caller),
        _ => Err(Unauthorized::Unsuccessful),
    }
}

/// PKCE S256: `BASE64URL(SHA256(verifier)) == challenge`.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use sha2::Digest;
    let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

pub fn code_expired(issued: DateTime<Utc>, now: DateTime<Utc>, seconds: i64) -> bool {
    now >= issued + Duration::seconds(seconds)
}
