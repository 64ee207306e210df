//! The authorize page: log in, tick the organisations to connect, Allow or Deny. Works with plain
//! form posts; a hidden single-use ticket carries the login to the consent form, and a session
//! cookie spares a person from logging in twice.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::Duration;
use std::sync::Arc;
use uuid::Uuid;

use super::parse_scope;
use crate::harness::forms::{self, form_pairs, param, random_token};
use crate::harness::pages;
use crate::xero::model::{AuthCode, LoginTicket, World};
use crate::Shared;
use askama::Template;

const SESSION_COOKIE: &str = "xero_sandbox_session";
const TICKET_MINUTES: i64 = 10;

/// A validated authorization request.
#[derive(Debug, Clone)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: Vec<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    nonce: Option<String>,
}

impl AuthRequest {
    /// The request, as the hidden fields that carry it through the login and consent forms.
    fn hidden_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("response_type", "code".to_string()),
            ("client_id", self.client_id.clone()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("scope", self.scope.join(" ")),
        ];
        if let Some(s) = &self.state {
            fields.push(("state", s.clone()));
        }
        if let Some(c) = &self.code_challenge {
            fields.push(("code_challenge", c.clone()));
            fields.push(("code_challenge_method", "S256".into()));
        }
        if let Some(n) = &self.nonce {
            fields.push(("nonce", n.clone()));
        }
        fields
    }

    /// Back to the app with `params` (plus `state`): Xero answers a plain 302 Found.
    fn redirect(&self, params: &[(&str, &str)]) -> Response {
        forms::redirect_back(&self.redirect_uri, params, self.state.as_deref())
    }
}

/// Checks the request as Xero does: an unknown client or an unregistered redirect URI gets an error
/// page (never a redirect to an unverified place); other mistakes go back to the app as `error=`.
fn validate(world: &World, pairs: &[(String, String)]) -> Result<AuthRequest, Box<Response>> {
    let client_id = param(pairs, "client_id").unwrap_or_default();
    let Some(app) = world.apps.get(client_id) else {
        return Err(Box::new(pages::error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "Unknown client_id: no app is registered with this client id.",
        )));
    };
    let redirect_uri = param(pairs, "redirect_uri").unwrap_or_default();
    if !app.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(Box::new(pages::error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "Invalid redirect_uri: it does not match any redirect URI registered for this app exactly.",
        )));
    }
    let mut request = AuthRequest {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        scope: Vec::new(),
        state: param(pairs, "state").map(str::to_string),
        code_challenge: None,
        nonce: param(pairs, "nonce")
            .filter(|n| !n.is_empty())
            .map(str::to_string),
    };
    if param(pairs, "response_type") != Some("code") {
        return Err(Box::new(
            request.redirect(&[("error", "unsupported_response_type")]),
        ));
    }
    match parse_scope(param(pairs, "scope").unwrap_or_default()) {
        // Apps registered since granular scopes came in may not ask for a broad one.
        Ok(scope)
            if app.granular_only()
                && scope
                    .iter()
                    .any(|s| crate::xero::model::BROAD_SCOPES.contains(&s.as_str())) =>
        {
            return Err(Box::new(request.redirect(&[
                ("error", "invalid_scope"),
                (
                    "error_description",
                    "This app was created on or after 2 March 2026 and can only request granular scopes",
                ),
            ])))
        }
        Ok(scope) if !scope.is_empty() => request.scope = scope,
        _ => return Err(Box::new(request.redirect(&[("error", "invalid_scope")]))),
    }
    if let Some(challenge) = param(pairs, "code_challenge").filter(|c| !c.is_empty()) {
        let method_ok = param(pairs, "code_challenge_method") == Some("S256");
        if !method_ok || !(43..=128).contains(&challenge.len()) {
            return Err(Box::new(request.redirect(&[("error", "invalid_request")])));
        }
        request.code_challenge = Some(challenge.to_string());
    }
    Ok(request)
}

fn session_user(world: &World, headers: &HeaderMap) -> Option<Uuid> {
    world
        .sessions
        .get(forms::cookie(headers, SESSION_COOKIE)?)
        .copied()
}

pub async fn page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = form_pairs(query.unwrap_or_default().as_bytes());
    let mut world = shared.world();
    let request = match validate(&world, &pairs) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    match session_user(&world, &headers) {
        Some(user) => consent_page(&shared, &mut world, &request, user, None),
        None => login_page(&request, None, ""),
    }
}

pub async fn submit(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let pairs = form_pairs(&body);
    let mut world = shared.world();
    let request = match validate(&world, &pairs) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    match param(&pairs, "action") {
        Some("login") => {
            let email = param(&pairs, "email").unwrap_or_default();
            let password = param(&pairs, "password").unwrap_or_default();
            let user = world
                .user_by_email(email)
                .filter(|u| u.password.expose() == password)
                .map(|u| u.id);
            match user {
                None => login_page(
                    &request,
                    Some("Your email or password is incorrect. Check them and try again."),
                    email,
                ),
                Some(user) => {
                    let session = random_token();
                    world.sessions.insert(session.clone(), user);
                    let mut response = consent_page(&shared, &mut world, &request, user, None);
                    if let Ok(v) = HeaderValue::from_str(&format!(
                        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax"
                    )) {
                        response.headers_mut().append(header::SET_COOKIE, v);
                    }
                    response
                }
            }
        }
        Some(action @ ("allow" | "deny")) => {
            let now = shared.clock.now();
            let ticket = param(&pairs, "ticket").unwrap_or_default();
            let user = match world.tickets.remove(ticket) {
                Some(t) if now < t.issued + Duration::minutes(TICKET_MINUTES) => t.user_id,
                _ => {
                    return login_page(
                        &request,
                        Some("Your sign-in expired. Log in again to continue."),
                        "",
                    )
                }
            };
            if action == "deny" {
                return request.redirect(&[("error", "access_denied")]);
            }
            let chosen: Vec<Uuid> = pairs
                .iter()
                .filter(|(k, _)| k == "tenant")
                .filter_map(|(_, v)| Uuid::parse_str(v).ok())
                .collect();
            let allowed = |id: &Uuid| world.tenant(*id).is_some_and(|t| t.members.contains(&user));
            if chosen.is_empty() || !chosen.iter().all(allowed) {
                return consent_page(
                    &shared,
                    &mut world,
                    &request,
                    user,
                    Some("Select at least one organisation to connect."),
                );
            }
            // Xero refuses, on its own consent page, an organisation beyond the app's cap; ones
            // already connected may always be chosen again.
            if let Some(cap) = world
                .apps
                .get(&request.client_id)
                .and_then(|a| a.connection_cap())
            {
                let connected = world.connected_tenants(&request.client_id);
                let new = chosen.iter().filter(|t| !connected.contains(t)).count();
                if connected.len() + new > cap {
                    let refusal = cap_refusal(&world, &request.client_id, cap);
                    return consent_page(&shared, &mut world, &request, user, Some(&refusal));
                }
            }
            let auth_event_id = Uuid::new_v4();
            world.connect(&request.client_id, user, &chosen, auth_event_id, now);
            let code = random_token();
            world.codes.insert(
                code.clone(),
                AuthCode {
                    client_id: request.client_id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    code_challenge: request.code_challenge.clone(),
                    nonce: request.nonce.clone(),
                    user_id: user,
                    scope: request.scope.clone(),
                    tenant_ids: chosen,
                    auth_event_id,
                    issued: now,
                    used: false,
                    grant_id: None,
                },
            );
            let scope = request.scope.join(" ");
            let session_state = Uuid::new_v4().simple().to_string();
            request.redirect(&[
                ("code", &code),
                ("scope", &scope),
                ("session_state", &session_state),
            ])
        }
        _ => login_page(&request, Some("Choose Allow access or Cancel."), ""),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    fields: Vec<(&'static str, String)>,
    error: Option<&'a str>,
    email: &'a str,
}

fn login_page(request: &AuthRequest, error: Option<&str>, email: &str) -> Response {
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    pages::page(
        status,
        &LoginPage {
            fields: request.hidden_fields(),
            error,
            email,
        },
    )
}

fn scope_text(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "offline_access" => "Keep access while you are offline",
        "accounting.transactions" | "accounting.invoices" => "View and manage your invoices",
        "accounting.payments" => "View and manage your payments",
        "accounting.contacts" => "View and manage your contacts",
        "accounting.settings" | "accounting.settings.read" => "View your organisation settings",
        "openid" | "profile" | "email" => "View your name and email address",
        _ => return None,
    })
}

fn consent_page(
    shared: &Shared,
    world: &mut World,
    request: &AuthRequest,
    user: Uuid,
    error: Option<&str>,
) -> Response {
    let now = shared.clock.now();
    world
        .tickets
        .retain(|_, t| now < t.issued + Duration::minutes(TICKET_MINUTES));
    let ticket = random_token();
    world.tickets.insert(
        ticket.clone(),
        LoginTicket {
            user_id: user,
            issued: now,
        },
    );
    let app_name = world
        .apps
        .get(&request.client_id)
        .map(|a| a.name.clone())
        .unwrap_or_default();
    let connected = world.connected_tenants(&request.client_id);
    let cap = world
        .apps
        .get(&request.client_id)
        .and_then(|a| a.connection_cap());
    let at_cap = cap.filter(|&c| connected.len() >= c);
    let orgs: Vec<Org> = world
        .tenants
        .iter()
        .filter(|t| t.members.contains(&user))
        .map(|t| Org {
            id: t.id,
            name: t.name.clone(),
            blocked: at_cap.is_some() && !connected.contains(&t.id),
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    // At the cap the page explains it even before anything is chosen.
    let error = match (error, at_cap) {
        (Some(e), _) => Some(e.to_string()),
        (None, Some(cap)) => Some(cap_refusal(world, &request.client_id, cap)),
        (None, None) => None,
    };
    let mut scopes: Vec<&str> = request.scope.iter().filter_map(|s| scope_text(s)).collect();
    scopes.dedup();
    pages::page(
        status,
        &ConsentPage {
            app_name: &app_name,
            error: error.as_deref(),
            scopes,
            fields: request.hidden_fields(),
            ticket: &ticket,
            orgs,
        },
    )
}

struct Org {
    id: Uuid,
    name: String,
    /// Not connected yet while the app is at its cap.
    blocked: bool,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    app_name: &'a str,
    error: Option<&'a str>,
    scopes: Vec<&'static str>,
    fields: Vec<(&'static str, String)>,
    ticket: &'a str,
    orgs: Vec<Org>,
}

/// Xero's refusal at an app's connection cap.
fn cap_refusal(world: &World, client_id: &str, cap: usize) -> String {
    let name = world
        .apps
        .get(client_id)
        .map(|a| a.name.as_str())
        .unwrap_or("This app");
    format!(
        "{name} has reached its limit of {cap} connected organisations, so it can't be connected to another one. \
         Organisations already connected to it can still be chosen."
    )
}
