//! The browser half of pairing: enter (or follow) the code, check it, continue to Xero, come back
//! through the callback, pick the organisation. Every step is bound to the browser by a cookie.

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Duration;
use ledgerlink_wire::Secret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::pages;
use crate::device::{hash, random_secret};
use crate::store::{OAuthState, Pairing, PendingChoice};
use crate::xero::{TokenError, XeroConnection};
use crate::AppState;

const COOKIE: &str = "ll_browser";

/// The browser's session id (from its cookie), and the cookie to set if it had none.
struct Browser {
    id: String,
    new: bool,
}

impl Browser {
    fn from(headers: &HeaderMap) -> Self {
        let existing = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, v)| *k == COOKIE && v.len() >= 32)
            .map(|(_, v)| v.to_string());
        match existing {
            Some(id) => Self { id, new: false },
            None => Self {
                id: random_secret(),
                new: true,
            },
        }
    }

    fn hash(&self) -> Vec<u8> {
        hash(&self.id)
    }

    /// Adds the session cookie to a response when the browser had none. `SameSite=Lax` so it comes
    /// back on the top-level redirect from Xero.
    fn finish(&self, state: &AppState, mut response: Response) -> Response {
        if self.new {
            let secure = if state.settings.public_url.scheme() == "https" {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600{secure}",
                self.id
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        response
    }
}

fn wrong_code_message(state: &AppState) -> String {
    format!(
        "That code is not valid. Check the code on the device: codes are 8 letters and expire after {} minutes.",
        state.settings.pairing.expires_in_secs.div_ceil(60)
    )
}

/// The client's address for throttling: the peer, or the left-most `X-Forwarded-For` entry when the
/// proxy is configured to sit behind a trusted reverse proxy.
pub fn client_address(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if state.settings.pairing.trust_forwarded_for {
        if let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            return ip;
        }
    }
    peer.ip()
}

/// Checks a typed code against the throttles and the store. Unknown, expired and used codes get the
/// same answer.
async fn check_code(
    state: &AppState,
    browser: &Browser,
    address: IpAddr,
    typed: &str,
) -> Result<Pairing, Response> {
    let settings = state.settings.pairing;
    let session = browser.hash();
    if state.throttle.session_locked(&session, &settings) {
        return Err(pages::message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong codes",
            "Code entry is locked in this browser after too many wrong codes. Start a new pairing on the device.",
        ));
    }
    let now = state.clock.now();
    if !state.throttle.address_attempt(address, now, &settings) {
        return Err(pages::message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many codes were tried from this network. Wait a few minutes and try again.",
        ));
    }
    let wrong = |state: &AppState| {
        state.throttle.record_wrong(&session, &settings);
        pages::enter_code(
            StatusCode::BAD_REQUEST,
            Some(&wrong_code_message(state)),
            typed,
        )
    };
    let Some(code) = super::normalize(typed) else {
        return Err(wrong(state));
    };
    let found = state
        .storage
        .call(move |s| s.pairing_by_user_code(&code))
        .await
        .map_err(|e| internal(&e))?;
    match found {
        Some(p) if p.is_open(now) => Ok(p),
        _ => Err(wrong(state)),
    }
}

/// A single-use mark (a sign-in link, an organisation choice): `None` when this request took it,
/// else the page to answer.
fn first_use<E: std::fmt::Display>(taken: Result<bool, E>, title: &str) -> Option<Response> {
    match taken {
        Ok(true) => None,
        Ok(false) => Some(pages::message(StatusCode::BAD_REQUEST, title, START_AGAIN)),
        Err(e) => Some(internal(&e)),
    }
}

fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "pairing page failed");
    pages::message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Something failed on our side. Start again from the device.",
    )
}

/// The token the confirm page's forms carry: unforgeable without this browser's secret cookie, so a
/// form posted from another site (which cannot read it) cannot skip the "check the code" step.
fn form_token(browser: &Browser, pairing: Uuid) -> String {
    let digest = Sha256::new()
        .chain_update(b"ledgerlink:confirm:")
        .chain_update(browser.id.as_bytes())
        .chain_update(pairing.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// Whether a confirm-page form came from the confirm page, in this browser.
fn form_ok(browser: &Browser, headers: &HeaderMap, pairing: &Pairing, token: &str) -> bool {
    let cross_site =
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site");
    let expected = form_token(browser, pairing.id);
    !browser.new && !cross_site && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
}

fn form_refused() -> Response {
    pages::message(
        StatusCode::FORBIDDEN,
        "Open the link from the device again",
        "This form did not come from the page that shows the device's code. Open the link (or scan the QR code) from the device again.",
    )
}

fn confirm_page(browser: &Browser, p: &Pairing) -> Response {
    pages::confirm(
        &p.device_name,
        &super::display(&p.user_code),
        &form_token(browser, p.id),
    )
}

#[derive(Deserialize)]
pub struct CodeQuery {
    code: Option<String>,
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
    /// The confirm page's form token (continue and cancel only).
    #[serde(default)]
    form: String,
}

/// `GET /pair[?code=XXXX-XXXX]` (the code is in the link a device shows as a QR code).
pub async fn enter(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<CodeQuery>,
) -> Response {
    let browser = Browser::from(&headers);
    let response = match q.code.filter(|c| !c.trim().is_empty()) {
        Some(code) => match check_code(
            &state,
            &browser,
            client_address(&state, peer, &headers),
            &code,
        )
        .await
        {
            Ok(p) => confirm_page(&browser, &p),
            Err(page) => page,
        },
        None => pages::enter_code(StatusCode::OK, None, ""),
    };
    browser.finish(&state, response)
}

/// `POST /pair`: a typed code.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let browser = Browser::from(&headers);
    let response = match check_code(
        &state,
        &browser,
        client_address(&state, peer, &headers),
        &form.code,
    )
    .await
    {
        Ok(p) => confirm_page(&browser, &p),
        Err(page) => page,
    };
    browser.finish(&state, response)
}

/// The pairing a confirm-page form (Continue or Cancel) is about: its code checked like any typed
/// code, and the form proven to come from the confirm page in this browser.
async fn confirmed(
    state: &AppState,
    browser: &Browser,
    peer: SocketAddr,
    headers: &HeaderMap,
    form: &CodeForm,
) -> Result<Pairing, Response> {
    let pairing = check_code(
        state,
        browser,
        client_address(state, peer, headers),
        &form.code,
    )
    .await?;
    if !form_ok(browser, headers, &pairing, &form.form) {
        return Err(form_refused());
    }
    Ok(pairing)
}

/// `POST /pair/cancel`: the person says no; the device's next poll gets `access_denied`.
pub async fn cancel(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let browser = Browser::from(&headers);
    let p = match confirmed(&state, &browser, peer, &headers, &form).await {
        Ok(p) => p,
        Err(page) => return browser.finish(&state, page),
    };
    let now = state.clock.now();
    let response = match state.storage.call(move |s| s.deny_pairing(p.id, now)).await {
        Ok(true) => pages::message(
            StatusCode::OK,
            "Cancelled",
            "Nothing was connected. The device has been told.",
        ),
        Ok(false) => pages::message(StatusCode::CONFLICT, "This pairing is over", START_AGAIN),
        Err(e) => internal(&e),
    };
    browser.finish(&state, response)
}

/// `POST /pair/continue`: start the authorization code flow (state + PKCE), bound to this browser.
pub async fn continue_to_xero(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let browser = Browser::from(&headers);
    let pairing = match confirmed(&state, &browser, peer, &headers, &form).await {
        Ok(p) => p,
        Err(page) => return browser.finish(&state, page),
    };
    let (url, oauth_state, verifier) = state.xero.authorize_url();
    let state_hash = hash(oauth_state.expose());
    let now = state.clock.now();
    let row = OAuthState {
        verifier: state
            .keyring
            .seal(&verifier_aad(&state_hash), verifier.expose().as_bytes()),
        state_hash,
        pairing_id: pairing.id,
        browser_hash: browser.hash(),
        created_at: now,
        expires_at: now + Duration::seconds(state.settings.pairing.state_ttl_secs as i64),
        used_at: None,
    };
    if let Err(e) = state
        .storage
        .call(move |s| s.insert_oauth_state(&row))
        .await
    {
        return browser.finish(&state, internal(&e));
    }
    let response = (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string())]).into_response();
    browser.finish(&state, response)
}

pub(crate) fn verifier_aad(state_hash: &[u8]) -> Vec<u8> {
    let mut aad = b"ledgerlink:pkce_verifier:".to_vec();
    aad.extend_from_slice(state_hash);
    aad
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

const START_AGAIN: &str = "Start again from the device: it will show a new code.";

fn over() -> Response {
    pages::message(StatusCode::BAD_REQUEST, "This pairing is over", START_AGAIN)
}

/// `GET /oauth/xero/callback`: back from Xero.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let browser = Browser::from(&headers);
    if browser.new {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Finish in the same browser",
            "This browser did not start connecting Xero. Finish in the browser where you entered the device's code.",
        );
    }
    let Some(state_param) = q.state.filter(|s| !s.is_empty()) else {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Sign-in link not valid",
            START_AGAIN,
        );
    };
    let state_hash = hash(&state_param);
    let now = state.clock.now();
    let lookup = state_hash.clone();
    let stored = match state.storage.call(move |s| s.oauth_state(&lookup)).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "Sign-in link not valid",
                START_AGAIN,
            )
        }
        Err(e) => return internal(&e),
    };
    if stored.used_at.is_some() {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Sign-in link already used",
            START_AGAIN,
        );
    }
    if now >= stored.expires_at {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Sign-in took too long",
            START_AGAIN,
        );
    }
    // Checked before the state is spent: a stranger's request must not burn the owner's state.
    if stored.browser_hash != browser.hash() {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Finish in the same browser",
            "This sign-in was started in another browser. Finish in the browser where you entered the device's code.",
        );
    }
    let mark = state_hash.clone();
    let taken = state
        .storage
        .call(move |s| s.mark_state_used(&mark, now))
        .await;
    if let Some(page) = first_use(taken, "Sign-in link already used") {
        return page;
    }
    let pairing_id = stored.pairing_id;
    let pairing = match state.storage.call(move |s| s.pairing(pairing_id)).await {
        Ok(Some(p)) if p.is_open(now) => p,
        Ok(_) => return over(),
        Err(e) => return internal(&e),
    };
    if let Some(error) = q.error {
        if error == "access_denied" {
            return match state.storage.call(move |s| s.deny_pairing(pairing_id, now)).await {
                Ok(true) => pages::message(
                    StatusCode::OK,
                    "Not connected",
                    "You chose not to give access in Xero, so nothing was connected. The device has been told.",
                ),
                Ok(false) => over(),
                Err(e) => internal(&e),
            };
        }
        let detail = q.error_description.unwrap_or_default();
        if error == "invalid_scope" {
            // The operator's setting, not the person's doing: say so, and log it for them.
            tracing::warn!(scopes = %state.settings.xero.scopes(), detail = %detail, "Xero refused the scopes this proxy asks for");
            return pages::message(
                StatusCode::BAD_GATEWAY,
                "Xero did not connect",
                &format!("Xero refused the access this Ledgerlink asks for ({detail}). Whoever runs it needs to change its Xero scopes (apps made since March 2026 may only ask for granular ones); nothing was connected."),
            );
        }
        return pages::message(
            StatusCode::BAD_GATEWAY,
            "Xero did not connect",
            &format!("Xero said: {error} {detail}. {START_AGAIN}"),
        );
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Sign-in link not valid",
            START_AGAIN,
        );
    };
    let verifier = match state
        .keyring
        .open(&verifier_aad(&state_hash), &stored.verifier)
    {
        Ok(v) => Secret::new(String::from_utf8_lossy(&v).into_owned()),
        Err(e) => return internal(&e),
    };
    let tokens = match state.xero.exchange_code(&code, &verifier).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "code exchange failed");
            let why = match e {
                TokenError::InvalidGrant => "the sign-in expired or was already used".to_string(),
                other => other.to_string(),
            };
            return pages::message(
                StatusCode::BAD_GATEWAY,
                "Xero did not connect",
                &format!("Xero refused the sign-in ({why}). {START_AGAIN}"),
            );
        }
    };
    let Some(auth_event) = tokens.auth_event_id() else {
        return pages::message(
            StatusCode::BAD_GATEWAY,
            "Xero did not connect",
            "Xero's answer did not say which consent it was, so the organisation cannot be picked safely. Start again.",
        );
    };
    let token_set = match state.vault.store(&tokens).await {
        Ok(id) => id,
        Err(e) => return internal(&e),
    };
    // The organisations of *this* consent, never "the first" of all the user's connections.
    let tenants = match state
        .xero
        .connections(&tokens.access_token, Some(auth_event))
        .await
    {
        Ok(t) => t,
        Err(e) => {
            let _ = state.vault.delete(token_set).await;
            return pages::message(
                StatusCode::BAD_GATEWAY,
                "Xero did not connect",
                &format!("Could not read the organisations: {e}. {START_AGAIN}"),
            );
        }
    };
    match tenants.as_slice() {
        [] => {
            let _ = state.vault.delete(token_set).await;
            pages::message(
                StatusCode::BAD_REQUEST,
                "No organisation chosen",
                "The Xero consent did not include an organisation. Start again and tick the organisation to connect.",
            )
        }
        [one] => connected(&state, &pairing, token_set, one).await,
        several => {
            let choice = random_secret();
            let list: Vec<(String, String)> = several
                .iter()
                .map(|t| (t.tenant_id.to_string(), t.tenant_name.clone()))
                .collect();
            let row = PendingChoice {
                id_hash: hash(&choice),
                pairing_id: pairing.id,
                browser_hash: browser.hash(),
                token_set_id: token_set,
                tenants: serde_json::to_string(
                    &several.iter().map(Tenant::from).collect::<Vec<_>>(),
                )
                .expect("tenants serialize"),
                expires_at: now + Duration::seconds(state.settings.pairing.state_ttl_secs as i64),
                used_at: None,
            };
            if let Err(e) = state.storage.call(move |s| s.insert_choice(&row)).await {
                let _ = state.vault.delete(token_set).await;
                return internal(&e);
            }
            pages::choose(&pairing.device_name, &choice, &list)
        }
    }
}

/// Finishes the pairing with `tenant` and says how it went.
async fn connected(
    state: &AppState,
    pairing: &Pairing,
    token_set: Uuid,
    tenant: &XeroConnection,
) -> Response {
    match super::finish(state, pairing, token_set, tenant).await {
        Ok(Some(c)) => pages::connected(&pairing.device_name, &c.tenant_name),
        Ok(None) => over(),
        Err(e) => {
            let _ = state.vault.delete(token_set).await;
            internal(&e)
        }
    }
}

/// An organisation on offer, as kept while the person chooses.
#[derive(serde::Serialize, Deserialize)]
struct Tenant {
    tenant_id: Uuid,
    tenant_name: String,
    xero_connection_id: Uuid,
}

impl From<&XeroConnection> for Tenant {
    fn from(c: &XeroConnection) -> Self {
        Self {
            tenant_id: c.tenant_id,
            tenant_name: c.tenant_name.clone(),
            xero_connection_id: c.id,
        }
    }
}

#[derive(Deserialize)]
pub struct ChoiceForm {
    #[serde(default)]
    choice: String,
    tenant: Option<String>,
}

/// `POST /pair/organisation`: the organisation picked from a consent that covered several.
pub async fn choose(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ChoiceForm>,
) -> Response {
    let browser = Browser::from(&headers);
    let now = state.clock.now();
    let lookup = hash(&form.choice);
    let stored = match state.storage.call(move |s| s.choice(&lookup)).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "This choice is not valid",
                START_AGAIN,
            )
        }
        Err(e) => return internal(&e),
    };
    if stored.used_at.is_some() || now >= stored.expires_at {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "This choice was already made or expired",
            START_AGAIN,
        );
    }
    if browser.new || stored.browser_hash != browser.hash() {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Finish in the same browser",
            START_AGAIN,
        );
    }
    let tenants: Vec<Tenant> = match serde_json::from_str(&stored.tenants) {
        Ok(t) => t,
        Err(e) => return internal(&e),
    };
    let picked = form
        .tenant
        .and_then(|t| Uuid::parse_str(&t).ok())
        .and_then(|id| tenants.iter().find(|t| t.tenant_id == id));
    let Some(picked) = picked else {
        // Nothing spent: show the choice again.
        let pairing_id = stored.pairing_id;
        let name = match state.storage.call(move |s| s.pairing(pairing_id)).await {
            Ok(Some(p)) => p.device_name,
            _ => String::from("the device"),
        };
        let list: Vec<(String, String)> = tenants
            .iter()
            .map(|t| (t.tenant_id.to_string(), t.tenant_name.clone()))
            .collect();
        return pages::choose(&name, &form.choice, &list);
    };
    let mark = hash(&form.choice);
    let taken = state
        .storage
        .call(move |s| s.mark_choice_used(&mark, now))
        .await;
    if let Some(page) = first_use(taken, "This choice was already made") {
        return page;
    }
    let pairing_id = stored.pairing_id;
    let pairing = match state.storage.call(move |s| s.pairing(pairing_id)).await {
        Ok(Some(p)) if p.is_open(now) => p,
        Ok(_) => {
            let _ = state.vault.delete(stored.token_set_id).await;
            return over();
        }
        Err(e) => return internal(&e),
    };
    let tenant = XeroConnection {
        id: picked.xero_connection_id,
        tenant_id: picked.tenant_id,
        tenant_name: picked.tenant_name.clone(),
        tenant_type: "ORGANISATION".into(),
        auth_event_id: None,
    };
    connected(&state, &pairing, stored.token_set_id, &tenant).await
}
