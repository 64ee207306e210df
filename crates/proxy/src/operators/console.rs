//! `/console`: the operators' console, server-rendered, signed in with the vendor's identity
//! provider by OpenID Connect (the `openidconnect` crate): the authorization code flow with PKCE
//! (S256), `state` and `nonce`, scopes `openid profile email groups`, and the ID token checked
//! (signature under the issuer's published keys, issuer, audience, expiry, nonce).
//!
//! A sign-in under way is a row (its state's hash, bound to this browser by a cookie, its nonce and
//! verifier sealed under the master key) and a signed-in operator a session row behind an HttpOnly,
//! SameSite=Lax cookie (Secure when the public URL is https), both in the database, so any replica
//! serves any step. No token reaches the browser: the ID token stays sealed in the session row, for
//! signing out at the provider. Every form carries the session's CSRF token; the operator API takes
//! the session too, with the token in `X-CSRF-Token` for what changes something.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Duration;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadataWithLogout,
    RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{Operator, Role};
use crate::device::{hash, random_secret};
use crate::store::{OperatorLogin, OperatorSession};
use crate::AppState;

const LOGIN_COOKIE: &str = "ll_console_login";
const SESSION_COOKIE: &str = "ll_console";
/// A sign-in must be finished within this.
const LOGIN_MINUTES: i64 = 10;
/// A session lasts a working day, then the operator signs in again.
const SESSION_HOURS: i64 = 8;

/// The console's client at the provider, as discovered.
pub(crate) type ConsoleClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The provider as the console uses it: its client, and where it signs people out.
pub struct Provider {
    client: ConsoleClient,
    end_session: Option<url::Url>,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/callback", get(callback))
        .route("/console/logout", post(logout))
}

/// What a page needs: the one stylesheet, and no script.
const STYLE: &str = r#"
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: #f4f6f3; color: #1d2a24; }
header { display: flex; justify-content: space-between; align-items: center; padding: 12px 20px; background: #1f6f4a; color: #fff; }
header form { margin: 0; }
header button { background: #fff; color: #1f6f4a; border: 0; border-radius: 6px; padding: 6px 12px; cursor: pointer; }
main { max-width: 1100px; margin: 20px auto; background: #fff; border-radius: 10px; padding: 20px 24px; box-shadow: 0 2px 12px rgba(0,0,0,.07); }
h1 { font-size: 1.3rem; margin: 0 0 14px; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 8px 10px; border-bottom: 1px solid #e2e8e4; vertical-align: top; }
th { font-size: .85rem; color: #5a6a62; font-weight: 600; }
.status-connected { color: #145c37; }
.status-needs_reconnect, .status-disconnected { color: #8a1c12; font-weight: 600; }
.error { background: #fdecea; color: #8a1c12; border-radius: 8px; padding: 10px 12px; }
.hint { color: #5a6a62; font-size: .9rem; }
"#;

/// A page with its headers: no script, its own style only, not framed; its forms post to the
/// proxy, and (signing out) on to `form_to`, the identity provider (a browser holds a form's
/// redirect to the same rule).
fn send(status: StatusCode, page: impl Template, form_to: Option<String>) -> Response {
    match page.render() {
        Ok(html) => {
            use base64::Engine;
            use sha2::{Digest, Sha256};
            let style = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
            let to = form_to.map(|o| format!(" {o}")).unwrap_or_default();
            let csp = format!(
                "default-src 'none'; style-src 'sha256-{style}'; form-action 'self'{to}; frame-ancestors 'none'; base-uri 'none'"
            );
            (
                status,
                [
                    ("cache-control", "no-store".to_string()),
                    ("x-frame-options", "DENY".to_string()),
                    ("content-security-policy", csp),
                    ("referrer-policy", "no-referrer".to_string()),
                ],
                Html(html),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "a console page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something failed on our side.",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct Message<'a> {
    style: &'a str,
    title: &'a str,
    text: &'a str,
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    send(
        status,
        Message {
            style: STYLE,
            title,
            text,
        },
        None,
    )
}

struct Row {
    provider: String,
    organisation: String,
    status: String,
    devices: usize,
    queue: String,
    last_delivery: String,
}

#[derive(Template)]
#[template(path = "console/connections.html")]
struct Connections<'a> {
    style: &'a str,
    name: &'a str,
    role: &'a str,
    csrf: &'a str,
    rows: Vec<Row>,
}

/// The session cookie is the operator API's credential too, so it goes to every path; the sign-in
/// cookie only to the console's.
fn set_cookie(state: &AppState, response: &mut Response, name: &str, value: &str, max_age: i64) {
    let path = if name == SESSION_COOKIE {
        "/"
    } else {
        "/console"
    };
    crate::cookies::set(state, response, name, value, path, max_age);
}

/// The signed-in operator's session, if the browser has a live one.
pub(crate) async fn session(state: &AppState, headers: &HeaderMap) -> Option<OperatorSession> {
    let id = crate::cookies::read(headers, SESSION_COOKIE)?;
    let now = state.clock.now();
    match state.storage.operators().session(&hash(&id), now).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "console: a session cannot be read");
            None
        }
    }
}

/// The operator behind a console session, for the operator API: for anything that changes
/// something (`need` is the operator role), the session's CSRF token must come as `X-CSRF-Token`.
pub(crate) async fn session_operator(
    state: &AppState,
    headers: &HeaderMap,
    need: Role,
) -> Option<Result<Operator, &'static str>> {
    let s = session(state, headers).await?;
    if need == Role::Operator {
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(s.csrf.as_bytes())) {
            return Some(Err("send the console's CSRF token as X-CSRF-Token"));
        }
    }
    let role = if s.role == "operator" {
        Role::Operator
    } else {
        Role::Viewer
    };
    Some(Ok(Operator {
        subject: s.subject,
        role,
    }))
}

/// The provider, discovered on first use (the proxy starts while it is down).
async fn provider(state: &AppState) -> Result<&Provider, Response> {
    let unavailable = |why: String| {
        tracing::warn!(error = %why, "console: the identity provider cannot be used");
        message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            "The identity provider cannot be reached just now. Try again in a moment.",
        )
    };
    let Some(ops) = &state.operators else {
        return Err(message(
            StatusCode::NOT_FOUND,
            "The console is off",
            "This Ledgerlink has no identity provider for operators ([operators] issuer).",
        ));
    };
    let (Some(client_id), Some(secret)) = (
        ops.settings.client_id.clone(),
        ops.settings.client_secret.clone(),
    ) else {
        return Err(message(
            StatusCode::NOT_FOUND,
            "The console is off",
            "Set [operators] client_id and client_secret (the console's client at the identity provider).",
        ));
    };
    ops.console
        .get_or_try_init(|| async {
            let issuer = IssuerUrl::new(
                ops.settings
                    .issuer
                    .as_ref()
                    .map(|u| u.as_str().trim_end_matches('/').to_string())
                    .unwrap_or_default(),
            )
            .map_err(|e| e.to_string())?;
            // One read of the discovery document: its core metadata and the end-session
            // endpoint (RP-Initiated Logout) together.
            let metadata = ProviderMetadataWithLogout::discover_async(issuer, &ops.http)
                .await
                .map_err(|e| e.to_string())?;
            let end_session = metadata
                .additional_metadata()
                .end_session_endpoint
                .as_ref()
                .map(|u| u.url().clone());
            let redirect = RedirectUrl::new(format!(
                "{}/console/callback",
                state.settings.public_url.as_str().trim_end_matches('/')
            ))
            .map_err(|e| e.to_string())?;
            let client = CoreClient::from_provider_metadata(
                metadata,
                ClientId::new(client_id),
                Some(ClientSecret::new(secret.expose().to_string())),
            )
            .set_redirect_uri(redirect);
            Ok::<_, String>(Provider {
                client,
                end_session,
            })
        })
        .await
        .map_err(unavailable)
}

/// What a sign-in under way keeps, sealed.
#[derive(Serialize, Deserialize)]
struct Pending {
    nonce: String,
    verifier: String,
}

const LOGIN_AAD: &[u8] = b"ledgerlink operator login";
const SESSION_AAD: &[u8] = b"ledgerlink operator session";

/// `GET /console`: the connections, or the way to the provider's sign-in.
async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(s) = session(&state, &headers).await {
        return connections(&state, &s).await;
    }
    let provider = match provider(&state).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = provider
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("groups".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = random_secret();
    let pending = Pending {
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
    };
    let sealed = state.keyring.seal(
        LOGIN_AAD,
        &serde_json::to_vec(&pending).expect("two strings serialize"),
    );
    let login = OperatorLogin {
        state_hash: hash(csrf.secret()),
        browser_hash: hash(&browser),
        sealed,
        expires_at: state.clock.now() + Duration::minutes(LOGIN_MINUTES),
    };
    if let Err(e) = state.storage.operators().put_login(&login).await {
        tracing::warn!(error = %e, "console: a sign-in cannot be recorded");
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            "Ledgerlink cannot record the sign-in just now. Try again in a moment.",
        );
    }
    let mut r = Redirect::to(url.as_str()).into_response();
    set_cookie(&state, &mut r, LOGIN_COOKIE, &browser, LOGIN_MINUTES * 60);
    r
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

const START_AGAIN: &str =
    "This sign-in is over or was not begun in this browser. Open the console again to sign in.";

/// `GET /console/callback`: the provider's answer. The code is exchanged with the verifier, the ID
/// token checked, and a session begun for someone whose groups give them a role.
async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let now = state.clock.now();
    let Some(given_state) = q.state.filter(|s| !s.is_empty()) else {
        return message(StatusCode::BAD_REQUEST, "Not signed in", START_AGAIN);
    };
    let login = match state
        .storage
        .operators()
        .take_login(&hash(&given_state), now)
        .await
    {
        Ok(Some(l)) => l,
        Ok(None) => return message(StatusCode::BAD_REQUEST, "Not signed in", START_AGAIN),
        Err(e) => {
            tracing::warn!(error = %e, "console: a sign-in cannot be read");
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable",
                "Ledgerlink cannot read the sign-in just now. Open the console again in a moment.",
            );
        }
    };
    let same_browser = crate::cookies::read(&headers, LOGIN_COOKIE)
        .is_some_and(|b| bool::from(hash(&b).ct_eq(&login.browser_hash)));
    if !same_browser {
        return message(StatusCode::BAD_REQUEST, "Not signed in", START_AGAIN);
    }
    if let Some(error) = q.error {
        let why = q.error_description.unwrap_or(error);
        return message(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            &format!("The identity provider did not sign you in: {why}"),
        );
    }
    let Some(code) = q.code else {
        return message(StatusCode::BAD_REQUEST, "Not signed in", START_AGAIN);
    };
    let Some(pending) = state
        .keyring
        .open(LOGIN_AAD, &login.sealed)
        .ok()
        .and_then(|p| serde_json::from_slice::<Pending>(&p).ok())
    else {
        return message(StatusCode::BAD_REQUEST, "Not signed in", START_AGAIN);
    };
    let provider = match provider(&state).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let Some(ops) = &state.operators else {
        return message(StatusCode::NOT_FOUND, "The console is off", "");
    };
    let refused = |why: String| {
        tracing::warn!(error = %why, "console: a sign-in was refused");
        message(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "The identity provider's answer could not be checked. Open the console again to sign in.",
        )
    };
    let exchange = match provider.client.exchange_code(AuthorizationCode::new(code)) {
        Ok(e) => e,
        Err(e) => return refused(e.to_string()),
    };
    let tokens = match exchange
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
        .request_async(&ops.http)
        .await
    {
        Ok(t) => t,
        Err(e) => return refused(e.to_string()),
    };
    let Some(id_token) = tokens.id_token() else {
        return refused("no ID token".into());
    };
    let verifier = provider.client.id_token_verifier();
    let claims = match id_token.claims(&verifier, &Nonce::new(pending.nonce)) {
        Ok(c) => c.clone(),
        Err(e) => return refused(e.to_string()),
    };
    // The groups: a claim the core claims do not name, read from the token just verified.
    let raw = id_token.to_string();
    let groups: Vec<String> = raw
        .split('.')
        .nth(1)
        .and_then(|p| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
        .and_then(|v| serde_json::from_value(v["groups"].clone()).ok())
        .unwrap_or_default();
    let subject = claims.subject().as_str().to_string();
    let Some(role) = ops.role_of_names(&groups) else {
        tracing::warn!(%subject, "console: signed in, but no group gives a role here");
        return message(
            StatusCode::FORBIDDEN,
            "No access",
            "You are signed in, but none of your groups gives you access to this console. Ask whoever runs Ledgerlink to add you to its operators' or viewers' group.",
        );
    };
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_string())
        .or_else(|| claims.email().map(|e| e.as_str().to_string()))
        .unwrap_or_else(|| subject.clone());
    let id = random_secret();
    let session = OperatorSession {
        id_hash: hash(&id),
        subject: subject.clone(),
        name,
        role: match role {
            Role::Operator => "operator".into(),
            Role::Viewer => "viewer".into(),
        },
        csrf: random_secret(),
        sealed_id_token: state.keyring.seal(SESSION_AAD, raw.as_bytes()),
        created_at: now,
        expires_at: now + Duration::hours(SESSION_HOURS),
    };
    if let Err(e) = state.storage.operators().put_session(&session).await {
        tracing::warn!(error = %e, "console: a session cannot be recorded");
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            "Ledgerlink cannot record the sign-in just now. Open the console again in a moment.",
        );
    }
    tracing::info!(%subject, role = %session.role, "console: an operator signed in");
    let mut r = Redirect::to("/console").into_response();
    set_cookie(&state, &mut r, SESSION_COOKIE, &id, SESSION_HOURS * 3600);
    set_cookie(&state, &mut r, LOGIN_COOKIE, "", 0);
    r
}

async fn connections(state: &AppState, s: &OperatorSession) -> Response {
    let listed = match crate::api::admin::connection_list(state).await {
        Ok(l) => l,
        Err(_) => {
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "Ledgerlink cannot read its database just now. Try again in a moment.",
            )
        }
    };
    let rows = listed
        .into_iter()
        .map(|c| {
            let queue = c
                .queue
                .iter()
                .map(|(state, n)| format!("{state} {n}"))
                .collect::<Vec<_>>()
                .join(" · ");
            Row {
                provider: c.provider,
                organisation: c.tenant_name,
                status: c.status.as_str().to_string(),
                devices: c.devices.iter().filter(|d| d.revoked_at.is_none()).count(),
                queue: if queue.is_empty() {
                    "empty".into()
                } else {
                    queue
                },
                last_delivery: c
                    .last_delivered_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "never".into()),
            }
        })
        .collect();
    send(
        StatusCode::OK,
        Connections {
            style: STYLE,
            name: &s.name,
            role: &s.role,
            csrf: &s.csrf,
            rows,
        },
        state
            .settings
            .operators
            .issuer
            .as_ref()
            .map(|u| u.origin().ascii_serialization()),
    )
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/logout`: ends the session here, then at the provider, which sends the browser
/// back to the console.
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let Some(s) = session(&state, &headers).await else {
        return Redirect::to("/console").into_response();
    };
    if !bool::from(form.csrf.as_bytes().ct_eq(s.csrf.as_bytes())) {
        return message(
            StatusCode::FORBIDDEN,
            "Not signed out",
            "The form was not the console's own. Sign out from the console's page.",
        );
    }
    let ended = state.storage.operators().end_session(&s.id_hash).await;
    if let Err(e) = &ended {
        tracing::warn!(error = %e, "console: a session cannot be ended");
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not signed out",
            "Ledgerlink cannot end the session just now. Try again in a moment.",
        );
    }
    tracing::info!(subject = %s.subject, "console: an operator signed out");
    let back = format!(
        "{}/console",
        state.settings.public_url.as_str().trim_end_matches('/')
    );
    let at_provider = match provider(&state).await {
        Ok(p) => p.end_session.clone(),
        Err(_) => None,
    };
    let id_token = state
        .keyring
        .open(SESSION_AAD, &s.sealed_id_token)
        .ok()
        .and_then(|t| String::from_utf8(t).ok());
    let mut r = match (at_provider, id_token) {
        (Some(mut url), Some(hint)) => {
            url.query_pairs_mut()
                .append_pair("id_token_hint", &hint)
                .append_pair("post_logout_redirect_uri", &back)
                .append_pair("state", &random_secret());
            Redirect::to(url.as_str()).into_response()
        }
        _ => message(
            StatusCode::OK,
            "Signed out",
            "You have signed out of the console.",
        ),
    };
    set_cookie(&state, &mut r, SESSION_COOKIE, "", 0);
    r
}
