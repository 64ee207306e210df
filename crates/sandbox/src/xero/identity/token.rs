//! `POST /connect/token` (authorization_code and refresh_token grants) and `POST /connect/revocation`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Duration;
use std::sync::Arc;
use uuid::Uuid;

use super::{authenticate_client, code_expired, issue_tokens, pkce_matches, OAuthError};
use crate::xero::model::Grant;
use crate::Shared;

use crate::harness::forms::form_pairs;

fn get<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

pub async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = form_pairs(&body);
    match exchange(&shared, &headers, &form) {
        Ok(tokens) => (
            [("cache-control", "no-store"), ("pragma", "no-cache")],
            Json(tokens),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

fn exchange(
    shared: &Shared,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<super::TokenResponse, OAuthError> {
    let mut world = shared.world();
    let client_id = authenticate_client(&world, headers, form)?;
    let now = shared.clock.now();
    match get(form, "grant_type") {
        Some("authorization_code") => {
            let code = get(form, "code").ok_or(OAuthError::InvalidRequest)?;
            let redirect_uri = get(form, "redirect_uri").ok_or(OAuthError::InvalidRequest)?;
            let Some(record) = world.codes.get_mut(code) else {
                return Err(OAuthError::InvalidGrant);
            };
            if record.used {
                // A replayed code: refuse it and revoke what it already gave (RFC 6749 §4.1.2).
                let issued = record.grant_id;
                if let Some(grant) = issued {
                    world.revoke_grant(grant);
                }
                return Err(OAuthError::InvalidGrant);
            }
            if record.client_id != client_id
                || record.redirect_uri != redirect_uri
                || code_expired(record.issued, now, shared.settings.tokens.auth_code_seconds)
            {
                return Err(OAuthError::InvalidGrant);
            }
            if let Some(challenge) = &record.code_challenge {
                match get(form, "code_verifier") {
                    Some(v) if (43..=128).contains(&v.len()) && pkce_matches(v, challenge) => {}
                    _ => return Err(OAuthError::InvalidGrant),
                }
            }
            record.used = true;
            let grant = Grant {
                id: Uuid::new_v4(),
                client_id,
                user_id: record.user_id,
                scope: record.scope.clone(),
                auth_event_id: record.auth_event_id,
                tenant_ids: record.tenant_ids.clone(),
                created: now,
                revoked: false,
            };
            record.grant_id = Some(grant.id);
            let nonce = record.nonce.clone();
            let grant_id = grant.id;
            world.grants.insert(grant_id, grant);
            Ok(issue_tokens(shared, &mut world, grant_id, nonce.as_deref()))
        }
        Some("refresh_token") => {
            let token = get(form, "refresh_token").ok_or(OAuthError::InvalidRequest)?;
            let tokens = shared.settings.tokens;
            let record = world
                .refresh_tokens
                .get(token)
                .cloned()
                .ok_or(OAuthError::InvalidGrant)?;
            let grant = world
                .grants
                .get(&record.grant_id)
                .filter(|g| !g.revoked && g.client_id == client_id)
                .cloned()
                .ok_or(OAuthError::InvalidGrant)?;
            let alive = match record.rotated {
                Some(rotated) => now < rotated + Duration::seconds(tokens.refresh_grace_seconds),
                None => now < record.issued + Duration::days(tokens.refresh_token_days),
            };
            if !alive {
                world.refresh_tokens.remove(token);
                return Err(OAuthError::InvalidGrant);
            }
            if let Some(scope) = get(form, "scope") {
                let asked = super::parse_scope(scope).map_err(|_| OAuthError::InvalidScope)?;
                if asked.iter().any(|s| !grant.scope.contains(s)) {
                    return Err(OAuthError::InvalidScope);
                }
            }
            if let Some(r) = world.refresh_tokens.get_mut(token) {
                r.rotated.get_or_insert(now);
            }
            Ok(issue_tokens(shared, &mut world, grant.id, None))
        }
        Some(_) => Err(OAuthError::UnsupportedGrantType),
        None => Err(OAuthError::InvalidRequest),
    }
}

/// Revokes a refresh token and the grant behind it. Unknown tokens answer `200` too (RFC 7009).
pub async fn revocation(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form_pairs(&body);
    let mut world = shared.world();
    let client_id = match authenticate_client(&world, &headers, &form) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let Some(token) = get(&form, "token") else {
        return OAuthError::InvalidRequest.into_response();
    };
    let grant = world
        .refresh_tokens
        .get(token)
        .map(|r| r.grant_id)
        .filter(|g| {
            world
                .grants
                .get(g)
                .is_some_and(|g| g.client_id == client_id)
        });
    if let Some(grant) = grant {
        world.revoke_grant(grant);
    }
    StatusCode::OK.into_response()
}
