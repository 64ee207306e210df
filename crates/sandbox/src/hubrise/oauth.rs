//! HubRise's OAuth server: the authorize page (log in, choose the location, allow or deny; plain
//! form posts, a session cookie, a single-use ticket from the login to the consent form), the
//! token endpoint (client by HTTP Basic or in the body; codes single use for ten minutes; the same
//! token again for the same client and location) and revocation.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Duration;
use serde_json::json;
use std::sync::Arc;

use super::model::{Code, Scope, Token, World};
use super::{world, Refusal};
use crate::harness::forms::{self, form_pairs, random_token};
use crate::harness::pages;
use crate::Shared;
use askama::Template;

const SESSION_COOKIE: &str = "hubrise_sandbox_session";
/// Codes live ten minutes; so does the ticket between the login and the consent form.
const CODE_MINUTES: i64 = 10;

const PERMISSIONS: &[&str] = &[
    "orders",
    "customer_list",
    "all_customer_lists",
    "catalog",
    "all_catalogs",
    "inventory",
];

/// Reads HubRise's scope grammar: a comma-separated list of at most one access level
/// (`location[...]` or `account[...]`, holding `orders.write`-like permissions) and the general
/// permission `profile` or `profile_with_email`.
pub fn parse_scope(text: &str) -> Result<Scope, String> {
    let mut level = String::new();
    let mut permissions = Vec::new();
    let mut profile = None;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("scope is required".into());
    }
    while !rest.is_empty() {
        let (item, after) = match rest.find(['[', ',']) {
            Some(i) if rest.as_bytes()[i] == b'[' => {
                let close = rest[i..]
                    .find(']')
                    .ok_or_else(|| format!("'{rest}': an access level is not closed with ]"))?
                    + i;
                (&rest[..=close], &rest[close + 1..])
            }
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let item = item.trim();
        if let Some(inner) = item
            .strip_prefix("location[")
            .or_else(|| item.strip_prefix("account["))
        {
            if !level.is_empty() {
                return Err("at most one access level (location[...] or account[...])".into());
            }
            level = item[..item.find('[').unwrap_or(0)].to_string();
            for p in inner.trim_end_matches(']').split(',').map(str::trim) {
                let ok = p.rsplit_once('.').is_some_and(|(r, a)| {
                    PERMISSIONS.contains(&r) && (a == "read" || a == "write")
                });
                if !ok {
                    return Err(format!("'{p}' is not a permission"));
                }
                permissions.push(p.to_string());
            }
        } else if item == "profile" || item == "profile_with_email" {
            profile = Some(item.to_string());
        } else {
            return Err(format!("'{item}' is not part of HubRise's scope grammar"));
        }
        rest = after.trim_start_matches(',').trim_start();
    }
    Ok(Scope {
        level,
        permissions,
        profile,
    })
}

/// A checked authorization request.
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: Scope,
    scope_text: String,
    state: Option<String>,
}

impl AuthRequest {
    fn hidden_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("client_id", self.client_id.clone()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("scope", self.scope_text.clone()),
        ];
        if let Some(s) = &self.state {
            fields.push(("state", s.clone()));
        }
        fields
    }

    fn redirect(&self, params: &[(&str, &str)]) -> Response {
        forms::redirect_back(&self.redirect_uri, params, self.state.as_deref())
    }
}

/// A parameter HubRise reads: given and not empty.
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    forms::param(pairs, name).filter(|v| !v.is_empty())
}

/// An unknown client, an unregistered redirect URI or a scope HubRise cannot read get an error
/// page: never a redirect to a place not registered.
fn validate(world: &World, pairs: &[(String, String)]) -> Result<AuthRequest, Box<Response>> {
    let client_id = param(pairs, "client_id").unwrap_or_default();
    let Some(client) = world.clients.get(client_id) else {
        return Err(Box::new(pages::error(
            StatusCode::BAD_REQUEST,
            "Unknown client",
            "No app is registered with this client_id.",
        )));
    };
    let redirect_uri = param(pairs, "redirect_uri").unwrap_or_default();
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(Box::new(pages::error(
            StatusCode::BAD_REQUEST,
            "Invalid redirect_uri",
            "The redirect_uri does not match one registered for this app exactly.",
        )));
    }
    let scope_text = param(pairs, "scope").unwrap_or_default();
    let scope = parse_scope(scope_text)
        .map_err(|why| Box::new(pages::error(StatusCode::BAD_REQUEST, "Invalid scope", &why)))?;
    Ok(AuthRequest {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        scope,
        scope_text: scope_text.to_string(),
        state: param(pairs, "state").map(str::to_string),
    })
}

fn session_user(world: &World, headers: &HeaderMap) -> Option<String> {
    world
        .sessions
        .get(forms::cookie(headers, SESSION_COOKIE)?)
        .cloned()
}

pub async fn page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = form_pairs(query.unwrap_or_default().as_bytes());
    let mut world = world(&shared);
    let request = match validate(&world, &pairs) {
        Ok(r) => r,
        Err(page) => return *page,
    };
    match session_user(&world, &headers) {
        Some(email) => consent_page(&shared, &mut world, &request, &email, None),
        None => login_page(&request, None, ""),
    }
}

pub async fn submit(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let pairs = form_pairs(&body);
    let mut world = world(&shared);
    let request = match validate(&world, &pairs) {
        Ok(r) => r,
        Err(page) => return *page,
    };
    let now = shared.clock.now();
    match param(&pairs, "action") {
        Some("login") => {
            let email = param(&pairs, "email").unwrap_or_default();
            let password = param(&pairs, "password").unwrap_or_default();
            let known = world
                .users
                .iter()
                .any(|u| u.email.eq_ignore_ascii_case(email) && u.password.expose() == password);
            if !known {
                return login_page(&request, Some("Invalid email or password."), email);
            }
            let email = email.to_ascii_lowercase();
            let session = random_token();
            world.sessions.insert(session.clone(), email.clone());
            let mut response = consent_page(&shared, &mut world, &request, &email, None);
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax"
            )) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Some(action @ ("allow" | "deny")) => {
            let ticket = param(&pairs, "ticket").unwrap_or_default();
            let email = match world.tickets.remove(ticket) {
                Some((email, issued)) if now < issued + Duration::minutes(CODE_MINUTES) => email,
                _ => return login_page(&request, Some("Your session expired. Log in again."), ""),
            };
            if action == "deny" {
                return request.redirect(&[("error", "access_denied")]);
            }
            let chosen = param(&pairs, "location_id").unwrap_or_default();
            if !world.locations_of(&email).iter().any(|l| l.id == chosen) {
                return consent_page(
                    &shared,
                    &mut world,
                    &request,
                    &email,
                    Some("Choose the location to connect."),
                );
            }
            let code = random_token();
            world.codes.insert(
                code.clone(),
                Code {
                    client_id: request.client_id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    location_id: chosen.to_string(),
                    scope: request.scope.clone(),
                    issued: now,
                    used: false,
                },
            );
            request.redirect(&[("code", &code)])
        }
        _ => login_page(&request, Some("Choose Allow or Deny."), ""),
    }
}

#[derive(Template)]
#[template(path = "hubrise/login.html")]
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

#[derive(Template)]
#[template(path = "hubrise/consent.html")]
struct ConsentPage<'a> {
    client_name: &'a str,
    error: Option<&'a str>,
    permissions: Vec<String>,
    fields: Vec<(&'static str, String)>,
    ticket: &'a str,
    locations: Vec<(String, String)>,
}

fn consent_page(
    shared: &Shared,
    world: &mut World,
    request: &AuthRequest,
    email: &str,
    error: Option<&str>,
) -> Response {
    let now = shared.clock.now();
    world
        .tickets
        .retain(|_, (_, issued)| now < *issued + Duration::minutes(CODE_MINUTES));
    let ticket = random_token();
    world
        .tickets
        .insert(ticket.clone(), (email.to_string(), now));
    let client_name = world
        .clients
        .get(&request.client_id)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let locations = world
        .locations_of(email)
        .iter()
        .map(|l| {
            let account = world.account(&l.account_id).map_or("", |a| a.name.as_str());
            (l.id.clone(), format!("{account} – {}", l.name))
        })
        .collect();
    let permissions = request
        .scope
        .permissions
        .iter()
        .map(|p| match p.rsplit_once('.') {
            Some((r, "write")) => format!("Read and change your {}", r.replace('_', " ")),
            Some((r, _)) => format!("Read your {}", r.replace('_', " ")),
            None => p.clone(),
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    pages::page(
        status,
        &ConsentPage {
            client_name: &client_name,
            error,
            permissions,
            fields: request.hidden_fields(),
            ticket: &ticket,
            locations,
        },
    )
}

/// The client a token or revocation call authenticates as: HTTP Basic, or (the older way, still
/// accepted) `client_id` and `client_secret` in the body.
fn client(
    world: &World,
    headers: &HeaderMap,
    form: &[(String, String)],
    body_allowed: bool,
) -> Result<String, Refusal> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(i, p)| (i.to_string(), p.to_string()))
        });
    let given = basic.or_else(|| {
        body_allowed
            .then(|| {
                Some((
                    param(form, "client_id")?.to_string(),
                    param(form, "client_secret")?.to_string(),
                ))
            })
            .flatten()
    });
    match given {
        Some((id, secret))
            if world
                .clients
                .get(&id)
                .is_some_and(|c| c.secret.expose() == secret) =>
        {
            Ok(id)
        }
        _ => Err(Refusal::unauthorized("Invalid client credentials")),
    }
}

/// `POST /oauth2/v1/token` with `code`.
pub async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let form = form_pairs(&body);
    let mut world = world(&shared);
    let client_id = client(&world, &headers, &form, true)?;
    let now = shared.clock.now();
    let refused = || {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The code is invalid, expired or already used",
        )
    };
    let code_text = param(&form, "code").unwrap_or_default();
    let code = match world.codes.get_mut(code_text) {
        Some(c)
            if !c.used
                && c.client_id == client_id
                && now < c.issued + Duration::minutes(CODE_MINUTES) =>
        {
            c.used = true;
            c.clone()
        }
        _ => return Err(refused()),
    };
    // The same client and location always get the same token (no device_id here), until revoked.
    let existing = world
        .tokens
        .iter()
        .find(|(_, t)| {
            !t.revoked
                && t.client_id == client_id
                && t.location_id == code.location_id
                && t.scope == code.scope
        })
        .map(|(k, _)| k.clone());
    let access_token = existing.unwrap_or_else(|| {
        let t = random_token();
        world.tokens.insert(
            t.clone(),
            Token {
                client_id: client_id.clone(),
                location_id: code.location_id.clone(),
                scope: code.scope.clone(),
                revoked: false,
            },
        );
        t
    });
    let location = world
        .location(&code.location_id)
        .cloned()
        .ok_or_else(refused)?;
    let account_name = world
        .account(&location.account_id)
        .map(|a| a.name.clone())
        .unwrap_or_default();
    Ok(Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "account_id": location.account_id,
        "location_id": location.id,
        "catalog_id": null,
        "customer_list_id": null,
        "account_name": account_name,
        "location_name": location.name,
        "catalog_name": null,
        "customer_list_name": null,
    }))
    .into_response())
}

/// `POST /oauth2/v1/revoke` (HTTP Basic, `token=...`): 200, the token answers 401 from then on.
pub async fn revoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let form = form_pairs(&body);
    let mut world = world(&shared);
    let client_id = client(&world, &headers, &form, false)?;
    if let Some(t) = world
        .tokens
        .get_mut(param(&form, "token").unwrap_or_default())
        .filter(|t| t.client_id == client_id)
    {
        t.revoked = true;
    }
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_grammar_is_read_as_hubrise_writes_it() {
        let s = parse_scope("location[orders.write,customer_list.write,catalog.read]").unwrap();
        assert_eq!(s.level, "location");
        assert_eq!(
            s.permissions,
            ["orders.write", "customer_list.write", "catalog.read"]
        );
        let s = parse_scope("account[customer_list.read],profile").unwrap();
        assert_eq!(s.level, "account");
        assert_eq!(s.profile.as_deref(), Some("profile"));
        assert!(s.allows("customer_list", false));
        assert!(!s.allows("customer_list", true));
        assert!(!s.allows("orders", false));
    }

    #[test]
    fn what_the_grammar_does_not_have_is_refused() {
        for bad in [
            "",
            "location[orders.delete]",
            "location[orders.write],account[orders.read]",
            "location[orders.write",
            "orders.write",
            "location[menus.read]",
        ] {
            assert!(parse_scope(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
