//! The browser half of pairing: enter (or follow) the code, check it, continue to Xero, come back
//! through the callback, pick the organisation. Every step is bound to the browser by a cookie.

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Duration;
use ledgerlink_wire::{Provider, Secret};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::pages;
use super::Finished;
use crate::device::{hash, random_secret};
use crate::providers::{ConsentError, Organisation, TokenError};
use crate::store::{ConnectionRow, OAuthState, Pairing, PairingStatus, PendingChoice};
use crate::AppState;

const COOKIE: &str = "ll_browser";

/// The browser's session id (from its cookie), and the cookie to set if it had none.
struct Browser {
    id: String,
    new: bool,
}

impl Browser {
    fn from(headers: &HeaderMap) -> Self {
        match crate::cookies::read(headers, COOKIE) {
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
            crate::cookies::set(state, &mut response, COOKIE, &self.id, "/", 3600);
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
    let locked = state.throttle.session_locked(&session, &settings).await;
    if locked.map_err(|e| internal(&e))? {
        return Err(pages::message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong codes",
            "Code entry is locked in this browser after too many wrong codes. Start a new pairing on the device.",
        ));
    }
    let now = state.clock.now();
    let allowed = state
        .throttle
        .address_attempt(address, now, &settings)
        .await;
    if !allowed.map_err(|e| internal(&e))? {
        return Err(pages::message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many codes were tried from this network. Wait a few minutes and try again.",
        ));
    }
    let wrong = || async {
        if let Err(e) = state.throttle.record_wrong(&session, now).await {
            return internal(&e);
        }
        pages::enter_code(
            StatusCode::BAD_REQUEST,
            Some(&wrong_code_message(state)),
            typed,
        )
    };
    let Some(code) = super::normalize(typed) else {
        return Err(wrong().await);
    };
    let found = state
        .storage
        .pairing()
        .pairing_by_user_code(&code)
        .await
        .map_err(|e| internal(&e))?;
    match found {
        Some(p) if p.is_open(now) => Ok(p),
        _ => Err(wrong().await),
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

/// The organisation the pairing's device is paired with now (its connection id and name), if any.
async fn paired_now(state: &AppState, p: &Pairing) -> Result<Option<(Uuid, String)>, Response> {
    let device = state
        .storage
        .devices()
        .device(p.device_id)
        .await
        .map_err(|e| internal(&e))?
        .filter(|d| d.revoked_at.is_none());
    let Some(device) = device else {
        return Ok(None);
    };
    let found = state
        .storage
        .connections()
        .connection(device.connection_id)
        .await
        .map_err(|e| internal(&e))?;
    Ok(found.map(|c| (c.id, c.tenant_name)))
}

/// The confirm page, saying beforehand what the proxy already knows will happen: the device moves
/// from the organisation it is paired with, or only an organisation already connected can be
/// chosen because the proxy has its cap of connected organisations.
async fn confirm_page(state: &AppState, browser: &Browser, p: &Pairing) -> Response {
    let paired = match paired_now(state, p).await {
        Ok(paired) => paired,
        Err(page) => return page,
    };
    let provider = Provider::parse(&p.provider).unwrap_or_default();
    // The cap on connected organisations is Xero's (an uncertified app's 25).
    let cap = match provider {
        Provider::Xero => state.settings.providers.xero.connection_cap(),
        Provider::HubRise => None,
    };
    let at_cap = match cap {
        Some(cap) => match state.storage.pairing().connected_count("xero").await {
            Ok(n) if n >= cap => Some(cap),
            Ok(_) => None,
            Err(e) => return internal(&e),
        },
        None => None,
    };
    // Moving is offered only to a pairing the device itself started; for any other under a paired
    // device's id, the page names no organisation and the device can only be reconnected.
    let unproven = paired
        .as_ref()
        .is_some_and(|(id, _)| p.moves_from != Some(*id));
    let paired = paired.filter(|(id, _)| p.moves_from == Some(*id));
    pages::confirm(pages::Confirm {
        device_name: &p.device_name,
        code: &super::display(&p.user_code),
        form_token: &form_token(browser, p.id),
        paired_with: paired
            .as_ref()
            .map(|(id, name)| (id.to_string(), name.as_str())),
        paired_unproven: unproven,
        at_cap,
        provider: provider.name(),
        place: pages::place(provider),
    })
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
    /// The connection the confirm page said the device moves from (continue only).
    #[serde(default)]
    moving: String,
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
            Ok(p) => confirm_page(&state, &browser, &p).await,
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
        Ok(p) => confirm_page(&state, &browser, &p).await,
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
    let response = match state.storage.pairing().deny_pairing(p.id, now).await {
        Ok(true) => {
            crate::metrics::Metrics::count(&state.metrics.pairings, &p.provider, "denied");
            pages::message(
                StatusCode::OK,
                "Cancelled",
                "Nothing was connected. The device has been told.",
            )
        }
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
    // A paired device that asked to move moves only once the person saw that it would, for the
    // organisation it is paired with now; otherwise the page is shown again.
    match paired_now(&state, &pairing).await {
        Ok(Some((id, _))) if pairing.moves_from == Some(id) && form.moving != id.to_string() => {
            let page = confirm_page(&state, &browser, &pairing).await;
            return browser.finish(&state, page);
        }
        Ok(_) => {}
        Err(page) => return browser.finish(&state, page),
    }
    let Some(provider) = Provider::parse(&pairing.provider) else {
        return browser.finish(
            &state,
            internal(&"a pairing for a provider this proxy does not know"),
        );
    };
    let Some(consent) = state.consent(provider) else {
        return browser.finish(
            &state,
            pages::message(
                StatusCode::NOT_FOUND,
                "Not offered here",
                &format!(
                    "This Ledgerlink is not set up for {}. {START_AGAIN}",
                    provider.name()
                ),
            ),
        );
    };
    let (url, oauth_state, verifier) = consent.authorize_url();
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
    if let Err(e) = state.storage.pairing().insert_oauth_state(&row).await {
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

/// `GET /oauth/{provider}/callback`: back from the provider's consent (Xero's:
/// `/oauth/xero/callback`).
pub async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(provider) = Provider::parse(&provider) else {
        return pages::message(
            StatusCode::NOT_FOUND,
            "Not a provider here",
            &format!("This Ledgerlink does not connect '{provider}'. {START_AGAIN}"),
        );
    };
    let name = provider.name();
    let browser = Browser::from(&headers);
    if browser.new {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Finish in the same browser",
            &format!("This browser did not start connecting {name}. Finish in the browser where you entered the device's code."),
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
    let stored = match state.storage.pairing().oauth_state(&lookup).await {
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
        // A reload, or Back: the same browser sees where its pairing got to.
        if stored.browser_hash == browser.hash() {
            return where_it_got_to(&state, &browser, stored.pairing_id).await;
        }
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
    let taken = state.storage.pairing().mark_state_used(&mark, now).await;
    if let Some(page) = first_use(taken, "Sign-in link already used") {
        return page;
    }
    let pairing_id = stored.pairing_id;
    let pairing = match state.storage.pairing().pairing(pairing_id).await {
        Ok(Some(p)) if p.is_open(now) && p.provider == provider.as_str() => p,
        Ok(_) => return over(),
        Err(e) => return internal(&e),
    };
    if let Some(error) = q.error {
        if error == "access_denied" {
            return match state.storage.pairing().deny_pairing(pairing_id, now).await {
                Ok(true) => {
                    crate::metrics::Metrics::count(
                        &state.metrics.pairings,
                        provider.as_str(),
                        "denied",
                    );
                    pages::message(
                        StatusCode::OK,
                        "Not connected",
                        &format!("You chose not to give access in {name}, so nothing was connected. The device has been told."),
                    )
                }
                Ok(false) => over(),
                Err(e) => internal(&e),
            };
        }
        let detail = q.error_description.unwrap_or_default();
        if error == "invalid_scope" {
            // The operator's setting, not the person's doing: say so, and log it for them.
            tracing::warn!(provider = %provider.as_str(), scopes = %state.settings.providers.xero.scopes(), detail = %detail, "the provider refused the scopes this proxy asks for");
            return pages::message(
                StatusCode::BAD_GATEWAY,
                &format!("{name} did not connect"),
                &format!("{name} refused the access this Ledgerlink asks for ({detail}). Whoever runs it needs to change its {name} scopes (apps made since March 2026 may only ask for granular ones); nothing was connected."),
            );
        }
        return pages::message(
            StatusCode::BAD_GATEWAY,
            &format!("{name} did not connect"),
            &format!("{name} said: {error} {detail}. {START_AGAIN}"),
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
    let Some(consent) = state.consent(provider) else {
        return over();
    };
    let tokens = match consent.exchange(&code, &verifier).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "code exchange failed");
            let why = match e {
                TokenError::InvalidGrant => "the sign-in expired or was already used".to_string(),
                other => other.to_string(),
            };
            return pages::message(
                StatusCode::BAD_GATEWAY,
                &format!("{name} did not connect"),
                &format!("{name} refused the sign-in ({why}). {START_AGAIN}"),
            );
        }
    };
    // The organisations of *this* consent, never "the first" of all the user's connections.
    let tenants = match consent.organisations(&tokens).await {
        Ok(t) => t,
        Err(ConsentError::Unidentified(why)) => {
            return pages::message(
                StatusCode::BAD_GATEWAY,
                &format!("{name} did not connect"),
                &why,
            );
        }
        Err(ConsentError::Token(e)) => {
            return pages::message(
                StatusCode::BAD_GATEWAY,
                &format!("{name} did not connect"),
                &format!("Could not read the organisations: {e}. {START_AGAIN}"),
            );
        }
    };
    let token_set = match state.vault.store(provider, &tokens).await {
        Ok(id) => id,
        Err(e) => return internal(&e),
    };
    match tenants.as_slice() {
        [] => {
            let _ = state.vault.delete(token_set).await;
            pages::message(
                StatusCode::BAD_REQUEST,
                "No organisation chosen",
                &format!("The {name} consent did not include an organisation. Start again and tick the organisation to connect."),
            )
        }
        [one] => connected(&state, &pairing, token_set, one).await,
        several => {
            let row = PendingChoice {
                // An opaque handle: the choice is bound to this browser's cookie, not to it.
                id_hash: hash(&random_secret()),
                pairing_id: pairing.id,
                browser_hash: browser.hash(),
                token_set_id: token_set,
                tenants: several.to_vec(),
                expires_at: now + Duration::seconds(state.settings.pairing.state_ttl_secs as i64),
                used_at: None,
            };
            let redirect = to_chooser(&row);
            if let Err(e) = state.storage.pairing().insert_choice(&row).await {
                let _ = state.vault.delete(token_set).await;
                return internal(&e);
            }
            // Shown at its own address, so a reload shows it again (or where it got to).
            redirect
        }
    }
}

/// Finishes the pairing with `tenant` and says how it went.
async fn connected(
    state: &AppState,
    pairing: &Pairing,
    token_set: Uuid,
    tenant: &Organisation,
) -> Response {
    let name = Provider::parse(&pairing.provider).map_or("the provider", Provider::name);
    match super::finish(state, pairing, token_set, tenant).await {
        Ok(Finished::Connected {
            connection,
            moved_from,
        }) => {
            subscribe(state, &connection).await;
            pages::connected(
                &pairing.device_name,
                &connection.tenant_name,
                moved_from.as_deref(),
                name,
            )
        }
        Ok(Finished::NotPending) => over(),
        Ok(Finished::NotMoved(organisation)) => pages::message(
            StatusCode::CONFLICT,
            "The device was not moved",
            &format!(
                "{organisation} is not connected: {} is paired with another organisation, and only a pairing started on the device itself can move it. \
                 Press Connect on the device to move it, or unpair it first. To reconnect it to its own organisation, open the link from the device again and choose that one.",
                pairing.device_name
            ),
        ),
        Ok(Finished::AtCap(cap)) => pages::message(
            StatusCode::FORBIDDEN,
            "Not connected: the limit is reached",
            &format!(
                "{} is not connected: this Ledgerlink already has its limit of {cap} connected {name} organisations. \
                 To add it, ask whoever runs Ledgerlink to disconnect an organisation no longer used, or to raise the limit. \
                 An organisation already connected can still be chosen: open the link from the device again and choose that one.",
                tenant.name
            ),
        ),
        Err(e) => {
            let _ = state.vault.delete(token_set).await;
            internal(&e)
        }
    }
}

/// Asks the provider to notify this proxy of the new connection's changes. The connection works
/// without them, so a failure is logged, not shown: connecting again asks again.
async fn subscribe(state: &AppState, connection: &ConnectionRow) {
    let Some(provider) = Provider::parse(&connection.provider) else {
        return;
    };
    let (Some(consent), Some(token_set)) = (state.consent(provider), connection.token_set_id)
    else {
        return;
    };
    let url = state.settings.webhook_url_for(provider);
    let outcome = match state.vault.access_token(token_set).await {
        Ok(access) => consent
            .subscribe(&access, &url)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = outcome {
        tracing::warn!(connection = %connection.id, provider = provider.as_str(), error = %e,
            "the provider was not asked to send its notifications: the device will not hear of changes made there until the organisation is connected again");
    }
}

#[derive(Deserialize)]
pub struct ChoiceForm {
    #[serde(default)]
    choice: String,
    tenant: Option<String>,
}

fn choice_handle(c: &PendingChoice) -> String {
    URL_SAFE_NO_PAD.encode(&c.id_hash)
}

async fn chooser(state: &AppState, c: &PendingChoice) -> Response {
    let pairing_id = c.pairing_id;
    let name = match state.storage.pairing().pairing(pairing_id).await {
        Ok(Some(p)) => p.device_name,
        _ => String::from("the device"),
    };
    let list: Vec<(String, String)> = c
        .tenants
        .iter()
        .map(|t| (t.tenant_id.clone(), t.name.clone()))
        .collect();
    pages::choose(&name, &choice_handle(c), &list)
}

/// Where a pairing got to, for the browser that ran it: the chooser again while the choice is
/// open, else the outcome (connected, or not). A reload never dead-ends.
async fn where_it_got_to(state: &AppState, browser: &Browser, pairing_id: Uuid) -> Response {
    let now = state.clock.now();
    let browser_hash = browser.hash();
    let store = state.storage.pairing();
    let found = async {
        Ok::<_, crate::store::StoreError>((
            store.pairing(pairing_id).await?,
            store.latest_choice(&browser_hash, Some(pairing_id)).await?,
        ))
    };
    let (pairing, choice) = match found.await {
        Ok(found) => found,
        Err(e) => return internal(&e),
    };
    let Some(pairing) = pairing else {
        return over();
    };
    if pairing.is_open(now) {
        if let Some(c) = choice.filter(|c| c.used_at.is_none() && now < c.expires_at) {
            return to_chooser(&c);
        }
        // Still open with nothing to choose (Xero's answer is still being read, or an
        // organisation was refused): the device's code leads on from here.
        return pages::still_waiting(&pairing.device_name, &super::display(&pairing.user_code));
    }
    match (pairing.status, pairing.connection_id) {
        (PairingStatus::Approved | PairingStatus::Consumed, Some(connection)) => {
            let from = pairing.moves_from.filter(|f| *f != connection);
            let store = state.storage.connections();
            let names = async {
                let to = store.connection(connection).await?.map(|c| c.tenant_name);
                let from = match from {
                    Some(f) => store.connection(f).await?.map(|c| c.tenant_name),
                    None => None,
                };
                Ok::<_, crate::store::StoreError>((to, from))
            }
            .await;
            match names {
                Ok((Some(to), from)) => pages::connected(
                    &pairing.device_name,
                    &to,
                    from.as_deref(),
                    Provider::parse(&pairing.provider).map_or("the provider", Provider::name),
                ),
                Ok((None, _)) => over(),
                Err(e) => internal(&e),
            }
        }
        (PairingStatus::Denied, _) => pages::message(
            StatusCode::OK,
            "Not connected",
            "Nothing was connected: the pairing was cancelled. The device has been told.",
        ),
        _ => over(),
    }
}

/// The chooser's own address, with the choice's handle, so two pairings in one browser each keep
/// theirs (the choice is bound to the browser's cookie all the same).
fn to_chooser(c: &PendingChoice) -> Response {
    let location = format!("/pair/organisation?c={}", choice_handle(c));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

#[derive(Deserialize)]
pub struct ChoiceQuery {
    c: Option<String>,
}

/// `GET /pair/organisation[?c=HANDLE]`: the organisation chooser of this browser's consent (after
/// a consent that covered several), or where the pairing got to once the choice is made.
pub async fn choice_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ChoiceQuery>,
) -> Response {
    let browser = Browser::from(&headers);
    if browser.new {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Finish in the same browser",
            "This browser has no organisation to choose. Finish in the browser where you entered the device's code.",
        );
    }
    let browser_hash = browser.hash();
    let handle = q.c.and_then(|c| URL_SAFE_NO_PAD.decode(c.as_bytes()).ok());
    let store = state.storage.pairing();
    let found = match handle {
        Some(h) => store
            .choice(&h)
            .await
            .map(|c| c.filter(|c| c.browser_hash == browser_hash)),
        None => store.latest_choice(&browser_hash, None).await,
    };
    let found = match found {
        Ok(c) => c,
        Err(e) => return internal(&e),
    };
    let Some(choice) = found else {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Nothing to choose here",
            START_AGAIN,
        );
    };
    if choice.used_at.is_some() {
        return where_it_got_to(&state, &browser, choice.pairing_id).await;
    }
    if state.clock.now() >= choice.expires_at {
        return pages::message(StatusCode::BAD_REQUEST, "This choice expired", START_AGAIN);
    }
    chooser(&state, &choice).await
}

/// `POST /pair/organisation`: the organisation picked from a consent that covered several.
pub async fn choose(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ChoiceForm>,
) -> Response {
    let browser = Browser::from(&headers);
    let now = state.clock.now();
    let cross_site =
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site");
    if browser.new || cross_site {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Finish in the same browser",
            START_AGAIN,
        );
    }
    let Ok(lookup) = URL_SAFE_NO_PAD.decode(form.choice.as_bytes()) else {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "This choice is not valid",
            START_AGAIN,
        );
    };
    let stored = match state.storage.pairing().choice(&lookup).await {
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
    if stored.browser_hash != browser.hash() {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Finish in the same browser",
            START_AGAIN,
        );
    }
    if stored.used_at.is_some() {
        // Sent again (a reload of the answer): say where it got to.
        return where_it_got_to(&state, &browser, stored.pairing_id).await;
    }
    if now >= stored.expires_at {
        return pages::message(StatusCode::BAD_REQUEST, "This choice expired", START_AGAIN);
    }
    let picked = form
        .tenant
        .and_then(|id| stored.tenants.iter().find(|t| t.tenant_id == id).cloned());
    let Some(picked) = picked else {
        // Nothing spent: show the choice again.
        return chooser(&state, &stored).await;
    };
    let mark = stored.id_hash.clone();
    let taken = state.storage.pairing().mark_choice_used(&mark, now).await;
    match taken {
        Ok(true) => {}
        Ok(false) => return where_it_got_to(&state, &browser, stored.pairing_id).await,
        Err(e) => return internal(&e),
    }
    let pairing_id = stored.pairing_id;
    let pairing = match state.storage.pairing().pairing(pairing_id).await {
        Ok(Some(p)) if p.is_open(now) => p,
        Ok(_) => {
            let _ = state.vault.delete(stored.token_set_id).await;
            return over();
        }
        Err(e) => return internal(&e),
    };
    connected(&state, &pairing, stored.token_set_id, &picked).await
}
