//! The authorization server's endpoints: discovery, keys, authorize (the login page, a session
//! cookie for single sign-on), token, userinfo and logout.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use super::model::{Code, Session, World};
use super::{issuer, world};
use crate::harness::forms::{self, form_pairs, param, random_token};
use crate::harness::pages;
use crate::Shared;

const SESSION_COOKIE: &str = "idp_sandbox_session";
/// Okta's authorization codes live a minute.
const CODE_SECONDS: i64 = 60;
/// Access and ID tokens live an hour (Okta's default).
const TOKEN_SECONDS: i64 = 3600;
/// The audience of access tokens (Okta's default authorization server's).
pub const AUDIENCE: &str = "api://default";
/// The standard scopes a person's sign-in may ask for.
const SIGN_IN_SCOPES: &[&str] = &["openid", "profile", "email", "groups"];

/// `GET /oauth2/default/.well-known/openid-configuration`.
pub async fn configuration(State(shared): State<Arc<Shared>>) -> Response {
    let issuer = issuer(&shared);
    let mut scopes: Vec<String> = SIGN_IN_SCOPES.iter().map(|s| s.to_string()).collect();
    for client in world(&shared).clients.values() {
        for s in &client.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
    }
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/v1/authorize"),
        "token_endpoint": format!("{issuer}/v1/token"),
        "userinfo_endpoint": format!("{issuer}/v1/userinfo"),
        "jwks_uri": format!("{issuer}/v1/keys"),
        "end_session_endpoint": format!("{issuer}/v1/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": ["iss", "sub", "aud", "iat", "exp", "auth_time", "nonce", "name",
            "email", "email_verified", "preferred_username", "groups"],
        "code_challenge_methods_supported": ["S256"],
        "request_parameter_supported": false,
    }))
    .into_response()
}

/// `GET /oauth2/default/v1/keys`: the signing keys (after a rotation, the one before as well).
pub async fn keys(State(shared): State<Arc<Shared>>) -> Response {
    let mut r = Json(shared.idp_keys().jwks()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600, must-revalidate"),
    );
    r
}

/// A validated authorization request.
#[derive(Debug, Clone)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: Vec<String>,
    state: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt: Option<String>,
}

impl AuthRequest {
    fn hidden_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("response_type", "code".to_string()),
            ("client_id", self.client_id.clone()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("scope", self.scope.join(" ")),
            ("state", self.state.clone()),
        ];
        if let Some(n) = &self.nonce {
            fields.push(("nonce", n.clone()));
        }
        if let Some(c) = &self.code_challenge {
            fields.push(("code_challenge", c.clone()));
            fields.push(("code_challenge_method", "S256".into()));
        }
        fields
    }

    fn redirect(&self, params: &[(&str, &str)]) -> Response {
        forms::redirect_back(&self.redirect_uri, params, Some(&self.state))
    }
}

#[derive(Template)]
#[template(path = "idp/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    detail: &'a str,
}

fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    pages::page(status, &ErrorPage { title, detail })
}

/// Checks the request as Okta does: an unknown client or an unregistered redirect URI gets an
/// error page (never a redirect to an unverified place); other mistakes go back as `error=`.
fn validate(world: &World, pairs: &[(String, String)]) -> Result<AuthRequest, Box<Response>> {
    let client_id = param(pairs, "client_id").unwrap_or_default();
    let Some(client) = world
        .clients
        .get(client_id)
        .filter(|c| c.grant_types.iter().any(|g| g == "authorization_code"))
    else {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "The client_id is not one of this authorization server's sign-in clients.",
        )));
    };
    let redirect_uri = param(pairs, "redirect_uri").unwrap_or_default();
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The 'redirect_uri' parameter must be a Login redirect URI in the client app settings.",
        )));
    }
    let Some(state) = param(pairs, "state").filter(|s| !s.is_empty()) else {
        return Err(Box::new(forms::redirect_back(
            redirect_uri,
            &[
                ("error", "invalid_request"),
                (
                    "error_description",
                    "The authentication request has an invalid 'state' parameter.",
                ),
            ],
            None,
        )));
    };
    let mut request = AuthRequest {
        client_id: client_id.into(),
        redirect_uri: redirect_uri.into(),
        scope: Vec::new(),
        state: state.into(),
        nonce: param(pairs, "nonce")
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        code_challenge: None,
        prompt: param(pairs, "prompt").map(str::to_string),
    };
    if param(pairs, "response_type") != Some("code") {
        return Err(Box::new(request.redirect(&[
            ("error", "unsupported_response_type"),
            (
                "error_description",
                "The response type is not supported by the authorization server.",
            ),
        ])));
    }
    let scope: Vec<String> = param(pairs, "scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if !scope.iter().any(|s| s == "openid")
        || scope.iter().any(|s| !SIGN_IN_SCOPES.contains(&s.as_str()))
    {
        return Err(Box::new(request.redirect(&[
            ("error", "invalid_scope"),
            (
                "error_description",
                "The authorization server does not support the requested scope, or 'openid' is missing.",
            ),
        ])));
    }
    request.scope = scope;
    if let Some(challenge) = param(pairs, "code_challenge").filter(|c| !c.is_empty()) {
        if param(pairs, "code_challenge_method") != Some("S256")
            || !(43..=128).contains(&challenge.len())
        {
            return Err(Box::new(request.redirect(&[
                ("error", "invalid_request"),
                (
                    "error_description",
                    "PKCE code challenge method must be S256 and the challenge 43 to 128 characters.",
                ),
            ])));
        }
        request.code_challenge = Some(challenge.into());
    }
    match request.prompt.as_deref() {
        None | Some("login") | Some("none") => Ok(request),
        Some(_) => Err(Box::new(request.redirect(&[
            ("error", "invalid_request"),
            (
                "error_description",
                "The 'prompt' parameter is not supported.",
            ),
        ]))),
    }
}

#[derive(Template)]
#[template(path = "idp/login.html")]
struct LoginPage<'a> {
    fields: Vec<(&'static str, String)>,
    username: &'a str,
    error: Option<&'a str>,
}

fn login_page(request: &AuthRequest, username: &str, error: Option<&str>) -> Response {
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut r = pages::page(
        status,
        &LoginPage {
            fields: request.hidden_fields(),
            username,
            error,
        },
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A code for `email`, and the redirect that carries it.
fn code_for(
    world: &mut World,
    request: &AuthRequest,
    email: &str,
    auth_time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Response {
    let code = random_token();
    world.codes.insert(
        code.clone(),
        Code {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            email: email.into(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time,
            issued: now,
            used: false,
        },
    );
    request.redirect(&[("code", &code)])
}

/// `GET /oauth2/default/v1/authorize`: the login page, or straight back with a code when the
/// browser is signed in already (single sign-on) and no new login was asked for.
pub async fn authorize(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = form_pairs(query.unwrap_or_default().as_bytes());
    let now = shared.clock.now();
    let mut world = world(&shared);
    let request = match validate(&world, &pairs) {
        Ok(r) => r,
        Err(page) => return *page,
    };
    let session = forms::cookie(&headers, SESSION_COOKIE)
        .and_then(|sid| world.sessions.get(sid))
        .filter(|s| world.users.get(&s.email).is_some_and(|u| u.active))
        .cloned();
    match (session, request.prompt.as_deref()) {
        (Some(s), None | Some("none")) => {
            code_for(&mut world, &request, &s.email, s.authenticated, now)
        }
        (None, Some("none")) => request.redirect(&[
            ("error", "login_required"),
            (
                "error_description",
                "The client specified not to prompt, but the user is not logged in.",
            ),
        ]),
        _ => login_page(&request, "", None),
    }
}

/// `POST /oauth2/default/v1/authorize`: the login form. Wrong credentials and a deactivated
/// person get the same answer.
pub async fn login(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let pairs = form_pairs(&body);
    let now = shared.clock.now();
    let mut world = world(&shared);
    let request = match validate(&world, &pairs) {
        Ok(r) => r,
        Err(page) => return *page,
    };
    let username = param(&pairs, "username").unwrap_or_default().trim();
    let password = param(&pairs, "password").unwrap_or_default();
    let email = username.to_ascii_lowercase();
    let ok = world.users.get(&email).is_some_and(|u| {
        u.active && bool::from(u.password.expose().as_bytes().ct_eq(password.as_bytes()))
    });
    if !ok {
        return login_page(&request, username, Some("Unable to sign in"));
    }
    let sid = random_token();
    world.sessions.insert(
        sid.clone(),
        Session {
            email: email.clone(),
            authenticated: now,
        },
    );
    let mut r = code_for(&mut world, &request, &email, now, now);
    let cookie = format!(
        "{SESSION_COOKIE}={sid}; Path={}; HttpOnly; SameSite=Lax",
        super::PATH
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("a token is a valid header value"),
    );
    r
}

/// An OAuth error from the token endpoint.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The client a token call authenticates as: HTTP Basic (each part form-urlencoded, RFC 6749
/// 2.3.1), or `client_id` and `client_secret` in the body.
fn authenticate_client(
    world: &World,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Option<String> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let (id, secret) = match basic {
        Some(encoded) => {
            let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
            let (id, secret) = decoded.split_once(':')?;
            let plain = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            (plain(id)?, plain(secret)?)
        }
        None => (
            param(form, "client_id")?.to_string(),
            param(form, "client_secret")?.to_string(),
        ),
    };
    let client = world.clients.get(&id)?;
    bool::from(
        client
            .client_secret
            .expose()
            .as_bytes()
            .ct_eq(secret.as_bytes()),
    )
    .then_some(id)
}

/// `POST /oauth2/default/v1/token`.
pub async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = form_pairs(&body);
    let now = shared.clock.now();
    let issuer = issuer(&shared);
    let mut world = world(&shared);
    let Some(client_id) = authenticate_client(&world, &headers, &form) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed. Either the client or the client credentials are invalid.",
        );
    };
    let client = world.clients[&client_id].clone();
    let grant_type = param(&form, "grant_type").unwrap_or_default();
    if !client.grant_types.iter().any(|g| g == grant_type) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "The client is not authorized to use the provided grant type.",
        );
    }
    let keys = shared.idp_keys();
    let token_id = |prefix: &str| format!("{prefix}.{}", &random_token()[..43]);
    match grant_type {
        "authorization_code" => {
            let code = param(&form, "code").unwrap_or_default();
            let redirect_uri = param(&form, "redirect_uri").unwrap_or_default();
            let invalid = || {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The authorization code is invalid or has expired.",
                )
            };
            let Some(record) = world.codes.get_mut(code) else {
                return invalid();
            };
            let expired = now >= record.issued + Duration::seconds(CODE_SECONDS);
            if record.used
                || expired
                || record.client_id != client_id
                || record.redirect_uri != redirect_uri
            {
                record.used = true;
                return invalid();
            }
            if let Some(challenge) = &record.code_challenge {
                let verified = param(&form, "code_verifier").is_some_and(|v| {
                    (43..=128).contains(&v.len())
                        && crate::xero::identity::pkce_matches(v, challenge)
                });
                if !verified {
                    // Spent: a code that met a wrong verifier may be in the wrong hands.
                    record.used = true;
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "PKCE verification failed.",
                    );
                }
            }
            record.used = true;
            let record = record.clone();
            let Some(user) = world.users.get(&record.email).filter(|u| u.active).cloned() else {
                return invalid();
            };
            let groups = record.scope.iter().any(|s| s == "groups");
            let mut access = json!({
                "ver": 1, "jti": token_id("AT"), "iss": issuer, "aud": AUDIENCE,
                "iat": now.timestamp(), "exp": now.timestamp() + TOKEN_SECONDS,
                "cid": client_id, "uid": user.id, "scp": record.scope,
                "auth_time": record.auth_time.timestamp(), "sub": user.email,
            });
            let mut id = json!({
                "sub": user.id, "name": user.name, "email": user.email, "email_verified": true,
                "ver": 1, "iss": issuer, "aud": client_id, "iat": now.timestamp(),
                "exp": now.timestamp() + TOKEN_SECONDS, "jti": token_id("ID"), "amr": ["pwd"],
                "idp": "00osandboxledgerlink", "preferred_username": user.email,
                "auth_time": record.auth_time.timestamp(),
            });
            if groups {
                access["groups"] = json!(user.groups);
                id["groups"] = json!(user.groups);
            }
            if let Some(nonce) = &record.nonce {
                id["nonce"] = json!(nonce);
            }
            token_answer(json!({
                "token_type": "Bearer",
                "expires_in": TOKEN_SECONDS,
                "access_token": keys.sign(&access),
                "scope": record.scope.join(" "),
                "id_token": keys.sign(&id),
            }))
        }
        "client_credentials" => {
            let scope: Vec<String> = param(&form, "scope")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if scope.is_empty() || scope.iter().any(|s| !client.scopes.contains(s)) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "The authorization server does not support the requested scope.",
                );
            }
            let access = json!({
                "ver": 1, "jti": token_id("AT"), "iss": issuer, "aud": AUDIENCE,
                "iat": now.timestamp(), "exp": now.timestamp() + TOKEN_SECONDS,
                "cid": client_id, "scp": scope, "sub": client_id,
            });
            token_answer(json!({
                "token_type": "Bearer",
                "expires_in": TOKEN_SECONDS,
                "access_token": keys.sign(&access),
                "scope": scope.join(" "),
            }))
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        ),
    }
}

fn token_answer(body: Value) -> Response {
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// The claims of a token this server signed and that is still valid now.
fn verified(shared: &Shared, token: &str) -> Option<Value> {
    let claims = shared.idp_keys().verify(token)?;
    let fresh = claims["exp"]
        .as_i64()
        .is_some_and(|exp| shared.clock.now().timestamp() < exp);
    (claims["iss"] == issuer(shared) && fresh).then_some(claims)
}

/// `GET /oauth2/default/v1/userinfo` with an access token.
pub async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let claims = token.and_then(|t| verified(&shared, t.trim()));
    let world = world(&shared);
    let user = claims.as_ref().and_then(|c| {
        world
            .users
            .values()
            .find(|u| Some(u.id.as_str()) == c["uid"].as_str() && u.active)
    });
    let (Some(claims), Some(user)) = (claims.as_ref(), user) else {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token", "error_description": "The access token is invalid."})),
        )
            .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer authorization_uri="", error="invalid_token""#),
        );
        return r;
    };
    let mut info = json!({
        "sub": user.id, "name": user.name, "email": user.email, "email_verified": true,
        "preferred_username": user.email,
    });
    if claims["scp"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s == "groups"))
    {
        info["groups"] = json!(user.groups);
    }
    Json(info).into_response()
}

#[derive(Template)]
#[template(path = "idp/signed_out.html")]
struct SignedOut;

/// `GET /oauth2/default/v1/logout?id_token_hint=&post_logout_redirect_uri=&state=`: ends the
/// browser's session here, then returns to the client when it named a registered place.
pub async fn logout(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = form_pairs(query.unwrap_or_default().as_bytes());
    // The hint may have expired; its signature and issuer still say which client asks.
    let hint = param(&pairs, "id_token_hint")
        .and_then(|t| shared.idp_keys().verify(t))
        .filter(|c| c["iss"] == issuer(&shared));
    let back = param(&pairs, "post_logout_redirect_uri").filter(|u| !u.is_empty());
    let mut world = world(&shared);
    let target = match back {
        None => None,
        Some(uri) => {
            let client = hint
                .as_ref()
                .and_then(|c| c["aud"].as_str())
                .and_then(|aud| world.clients.get(aud));
            match client {
                Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => Some(uri),
                _ => {
                    return error_page(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "The 'post_logout_redirect_uri' must be a sign-out redirect URI of the client the 'id_token_hint' was issued to.",
                    )
                }
            }
        }
    };
    if let Some(sid) = forms::cookie(&headers, SESSION_COOKIE) {
        world.sessions.remove(sid);
    }
    let mut r = match target {
        Some(uri) => match param(&pairs, "state") {
            Some(state) => forms::redirect_back(uri, &[], Some(state)),
            None => (StatusCode::FOUND, [(header::LOCATION, uri.to_string())]).into_response(),
        },
        None => pages::page(StatusCode::OK, &SignedOut),
    };
    let clear = format!(
        "{SESSION_COOKIE}=; Path={}; HttpOnly; SameSite=Lax; Max-Age=0",
        super::PATH
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&clear).expect("a valid header value"),
    );
    r
}
