//! Pairing a device to a connected organisation (RFC 8628 shape): the device asks for a pairing and
//! polls; a person confirms the code in a browser, consents at Xero and picks the organisation.

mod browser;
mod pages;
mod throttle;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Duration;
use ledgerlink_wire::pairing::{
    DeviceTokens, PairingRequest, PairingResponse, TokenRequest, DEVICE_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
};
use ledgerlink_wire::{ConnectionStatus, ErrorCode, Provider, Secret};
use rand::Rng;
use uuid::Uuid;

pub use browser::client_address;
pub(crate) use browser::verifier_aad;
pub use throttle::{bucket, Throttle};

use crate::body::RawBody;
use crate::device;
use crate::error::{parse_form_or_json, AppError};
use crate::openapi::BodyRefusals;
use crate::providers::Organisation;
use crate::store::{Approval, ConnectionRow, Consumed, DeviceRow, Pairing, PairingStatus};
use crate::AppState;
use ledgerlink_wire::error::OAuthErrorBody;
use ledgerlink_wire::ApiError;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The device's half of pairing, described in the OpenAPI document.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(token))
}

/// The person's half: HTML pages, each sent with the Content-Security-Policy.
pub fn page_routes(state: &AppState) -> Router<AppState> {
    // Forms may go to every provider's consent page, and nowhere else.
    let consents: Vec<_> = Provider::ALL
        .iter()
        .filter_map(|p| state.consent(*p))
        .collect();
    let csp = axum::http::HeaderValue::from_str(&pages::content_security_policy(
        consents.iter().map(|c| c.authorize_endpoint()),
    ))
    .expect("the policy is ASCII");
    Router::new()
        .route("/pair", get(browser::enter).post(browser::submit))
        .route("/pair/continue", post(browser::continue_to_xero))
        .route("/pair/cancel", post(browser::cancel))
        .route(
            "/pair/organisation",
            get(browser::choice_page).post(browser::choose),
        )
        // `/oauth/xero/callback` for Xero: the URL registered apps already point at.
        .route("/oauth/{provider}/callback", get(browser::callback))
        .layer(axum::middleware::map_response(
            move |mut response: axum::response::Response| {
                let csp = csp.clone();
                async move {
                    response
                        .headers_mut()
                        .insert(axum::http::header::CONTENT_SECURITY_POLICY, csp);
                    response
                }
            },
        ))
}

/// The pairing endpoints' answer when nothing could be stored.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // described, never built
enum Unstored {
    /// `unavailable`: nothing was stored; send the same request again after `Retry-After`.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ApiError),
}

/// Consonants only: no vowels (no words), no look-alikes (no 0/O, 1/I).
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Eight characters drawn uniformly (rejection sampling inside `random_range`) from a CSPRNG.
pub fn new_user_code() -> String {
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// What a person typed, as a stored code: case and punctuation ignored. `None` if it cannot be one.
pub fn normalize(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == 8 && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// `XXXX-XXXX`.
pub fn display(code: &str) -> String {
    format!("{}-{}", &code[..4], &code[4..])
}

/// Starts pairing a device (RFC 8628 device authorization request). A device already paired that
/// wants to move to another organisation sends its own access token (`Authorization: Bearer`): only
/// a pairing started that way may move it.
#[utoipa::path(post, path = "/v1/pairings", tag = "pairing",
    request_body(content(
        (PairingRequest = "application/json"),
        (PairingRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The codes to show and to poll with", body = PairingResponse),
        (status = 400, description = "invalid_request: the request is not valid (says what)", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: an unknown public client id; or the bearer token sent is not this device's live access token (`unauthenticated`, `token_expired`, `device_revoked`, `disconnected`)", body = OAuthErrorBody),
        (status = 429, description = "rate_limited: too many pairings from this network", body = OAuthErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        Unstored,
        BodyRefusals,
    ))]
async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<PairingResponse>, AppError> {
    let req: PairingRequest = parse_form_or_json(&headers, &body).map_err(|e| {
        AppError::oauth(
            ErrorCode::InvalidRequest,
            format!("The pairing request is not valid: {e}"),
        )
    })?;
    if !state.settings.public_client_ids.contains(&req.client_id) {
        return Err(AppError::oauth(
            ErrorCode::InvalidClient,
            format!("Unknown client_id '{}'.", req.client_id),
        ));
    }
    if state.consent(req.provider).is_none() {
        return Err(AppError::oauth(
            ErrorCode::InvalidRequest,
            format!(
                "This Ledgerlink is not set up for {}: ask whoever runs it to set [providers.{}] (its client id and secret).",
                req.provider.name(),
                req.provider.as_str()
            ),
        ));
    }
    let name = req.device_name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::oauth(
            ErrorCode::InvalidRequest,
            "device_name must be 1 to 100 characters.",
        ));
    }
    // The name is shown to the person who approves the pairing: nothing may make it read as
    // something it is not (a right-to-left override turns "Front counter" around).
    if let Some(c) = ledgerlink_wire::strict::forbidden_in_name(&req.device_name) {
        return Err(AppError::oauth(
            ErrorCode::InvalidRequest,
            format!(
                "device_name must not contain control or bidirectional formatting characters: remove {}.",
                ledgerlink_wire::strict::code_point(c)
            ),
        ));
    }
    if req.device_id.is_nil() {
        return Err(AppError::oauth(
            ErrorCode::InvalidRequest,
            "device_id must be the device's own UUID, not the nil UUID.",
        ));
    }
    // A paired device asking to pair again proves it with its own credentials: only then may the
    // pairing move it from the organisation it is paired with (a device id alone is no proof).
    let moves_from = match device::bearer(&headers) {
        Some(token) => {
            // Refused in the pairing endpoints' own (OAuth) shape, with the device API's code.
            let auth = device::authenticate(&state, token)
                .await
                .map_err(|e| match e {
                    AppError::Api(status, body) => AppError::OAuth(
                        status,
                        OAuthErrorBody {
                            error: body.code,
                            error_description: Some(body.message),
                        },
                        None,
                    ),
                    other => other,
                })?;
            if auth.device.id != req.device_id {
                return Err(AppError::oauth(
                    ErrorCode::InvalidRequest,
                    "The bearer token belongs to another device: send this device's own token, or none.",
                ));
            }
            Some(auth.device.connection_id)
        }
        None => None,
    };
    let now = state.clock.now();
    let address = browser::client_address(&state, peer, &headers);
    if !state
        .throttle
        .pairing_started(address, now, &state.settings.pairing)
        .await?
    {
        return Err(AppError::oauth_rate_limited(
            "Too many pairings were started from this network: wait a few minutes.",
            Throttle::retry_after(now, &state.settings.pairing),
        ));
    }
    let device_code = Secret::new(crate::device::random_secret());
    let settings = state.settings.pairing;
    let mut pairing = Pairing {
        id: Uuid::new_v4(),
        device_code_hash: device::hash(device_code.expose()),
        user_code: String::new(),
        client_id: req.client_id,
        device_id: req.device_id,
        device_name: name,
        provider: req.provider.as_str().to_string(),
        status: PairingStatus::Pending,
        connection_id: None,
        created_at: now,
        expires_at: now + Duration::seconds(settings.expires_in_secs as i64),
        interval_secs: settings.interval_secs as i64,
        last_poll_at: None,
        moves_from,
    };
    // A live pairing never shares its code with another: draw again on the (rare) clash.
    let store = state.storage.pairing();
    let stored = loop {
        pairing.user_code = new_user_code();
        let clash = store
            .pairing_by_user_code(&pairing.user_code)
            .await?
            .is_some_and(|p| p.expires_at > now);
        if !clash {
            store.insert_pairing(&pairing).await?;
            break pairing;
        }
    };
    let verification_uri = state
        .settings
        .public_url
        .join("pair")
        .map_err(AppError::internal)?;
    let mut complete = verification_uri.clone();
    complete
        .query_pairs_mut()
        .append_pair("code", &display(&stored.user_code));
    tracing::info!(pairing = %stored.id, device = %stored.device_id, "pairing started");
    Ok(Json(PairingResponse {
        device_code,
        user_code: display(&stored.user_code),
        verification_uri: verification_uri.to_string(),
        verification_uri_complete: complete.to_string(),
        expires_in: settings.expires_in_secs,
        interval: settings.interval_secs,
    }))
}

/// Polls for the device's credentials with the device code (RFC 8628), or rotates them with the
/// refresh token.
#[utoipa::path(post, path = "/v1/pairings/token", tag = "pairing",
    request_body(content(
        (TokenRequest = "application/json"),
        (TokenRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The device's credentials", body = DeviceTokens),
        (status = 400, description = "authorization_pending, slow_down, access_denied, expired_token, invalid_grant, invalid_request, unsupported_grant_type, device_id_in_use", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: the code or token belongs to another client", body = OAuthErrorBody),
        Unstored,
        BodyRefusals,
    ))]
async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    match exchange(&state, &headers, &body).await {
        Ok(tokens) => ([("cache-control", "no-store")], Json(tokens)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn exchange(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<DeviceTokens, AppError> {
    let req: TokenRequest = parse_form_or_json(headers, body).map_err(|e| {
        AppError::oauth(
            ErrorCode::InvalidRequest,
            format!("The token request is not valid: {e}"),
        )
    })?;
    match req.grant_type.as_str() {
        DEVICE_CODE_GRANT => {
            let code = req
                .device_code
                .ok_or_else(|| AppError::oauth(ErrorCode::InvalidRequest, "device_code is required."))?;
            poll(state, &code, req.client_id.as_deref()).await
        }
        REFRESH_TOKEN_GRANT => {
            let token = req
                .refresh_token
                .ok_or_else(|| AppError::oauth(ErrorCode::InvalidRequest, "refresh_token is required."))?;
            let client_id = req
                .client_id
                .ok_or_else(|| AppError::oauth(ErrorCode::InvalidRequest, "client_id is required."))?;
            let (issued, device) = device::refresh(state, &token, &client_id).await?;
            tokens_for(state, issued, &device).await
        }
        other => Err(AppError::oauth(
            ErrorCode::UnsupportedGrantType,
            format!("grant_type '{other}' is not supported: use '{DEVICE_CODE_GRANT}' or 'refresh_token'."),
        )),
    }
}

async fn tokens_for(
    state: &AppState,
    issued: device::Issued,
    device: &DeviceRow,
) -> Result<DeviceTokens, AppError> {
    let connection_id = device.connection_id;
    let connection = state
        .storage
        .connections()
        .connection(connection_id)
        .await?
        .ok_or_else(|| AppError::internal("a paired device has no connection"))?;
    let info = device::connection_info(state, device, &connection).await?;
    let now = state.clock.now();
    Ok(DeviceTokens {
        access_token: issued.access(),
        token_type: "Bearer".into(),
        expires_in: issued.expires_in(now),
        refresh_token: issued.refresh(),
        connection: info,
    })
}

/// One poll of the device (RFC 8628 §3.4-3.5).
async fn poll(
    state: &AppState,
    code: &Secret,
    client_id: Option<&str>,
) -> Result<DeviceTokens, AppError> {
    let h = device::hash(code.expose());
    let mut pairing = state
        .storage
        .pairing()
        .pairing_by_device_code(&h)
        .await?
        .ok_or_else(|| {
            AppError::oauth(
                ErrorCode::InvalidGrant,
                "Unknown device_code: start a new pairing.",
            )
        })?;
    match client_id {
        None => {
            return Err(AppError::oauth(
                ErrorCode::InvalidRequest,
                "client_id is required (RFC 8628 §3.4).",
            ))
        }
        Some(c) if c != pairing.client_id => {
            return Err(AppError::oauth(
                ErrorCode::InvalidClient,
                "This device_code belongs to another client.",
            ))
        }
        Some(_) => {}
    }
    let now = state.clock.now();
    if pairing.status == PairingStatus::Consumed {
        return Err(AppError::oauth(
            ErrorCode::InvalidGrant,
            "This device_code was already used: start a new pairing.",
        ));
    }
    if now >= pairing.expires_at {
        return Err(AppError::oauth(
            ErrorCode::ExpiredToken,
            "The pairing expired before it was approved: start a new one.",
        ));
    }
    let too_fast = pairing
        .last_poll_at
        .is_some_and(|last| now - last < Duration::seconds(pairing.interval_secs));
    if too_fast {
        pairing.interval_secs += 5;
    }
    let (id, interval) = (pairing.id, pairing.interval_secs);
    state
        .storage
        .pairing()
        .record_poll(id, now, interval)
        .await?;
    if too_fast {
        return Err(AppError::oauth(
            ErrorCode::SlowDown,
            format!(
                "Polling too fast: wait {} seconds between polls.",
                pairing.interval_secs
            ),
        ));
    }
    match pairing.status {
        PairingStatus::Pending => Err(AppError::oauth(
            ErrorCode::AuthorizationPending,
            "Waiting for the person to finish in the browser.",
        )),
        PairingStatus::Denied => Err(AppError::oauth(
            ErrorCode::AccessDenied,
            format!(
                "The person cancelled connecting {}.",
                ledgerlink_wire::Provider::parse(&pairing.provider)
                    .map_or("the provider", |p| p.name())
            ),
        )),
        PairingStatus::Consumed => Err(AppError::oauth(
            ErrorCode::InvalidGrant,
            "This device_code was already used.",
        )),
        PairingStatus::Approved => {
            let connection_id = pairing
                .connection_id
                .ok_or_else(|| AppError::internal("an approved pairing has no connection"))?;
            let device = DeviceRow {
                id: pairing.device_id,
                name: pairing.device_name.clone(),
                client_id: pairing.client_id.clone(),
                connection_id,
                paired_at: now,
                revoked_at: None,
                last_seen_at: None,
            };
            // Everything the answer needs is read before the device code is spent, so a failure
            // after it cannot lose the only copy of the new credentials.
            let connection = state
                .storage
                .connections()
                .connection(connection_id)
                .await?
                .ok_or_else(|| AppError::internal("an approved pairing has no connection"))?;
            let info = device::connection_info(state, &device, &connection).await?;
            let (issued, access, refresh) = device::issue(state, device.id, now);
            let stored = device.clone();
            let pairing_id = pairing.id;
            let outcome = state
                .storage
                .pairing()
                .consume_pairing(pairing_id, &stored, &access, &refresh)
                .await?;
            match outcome {
                Consumed::Paired => crate::metrics::Metrics::count(
                    &state.metrics.pairings,
                    &pairing.provider,
                    "paired",
                ),
                Consumed::NotApproved => {
                    return Err(AppError::oauth(ErrorCode::InvalidGrant, "This device_code was already used."))
                }
                Consumed::DeviceInUse => {
                    return Err(AppError::oauth(
                        ErrorCode::DeviceIdInUse,
                        "This device id is paired with another organisation: unpair it there first, or pair under a new device id.",
                    ))
                }
            }
            // Feeds opened with the device's earlier credentials end with them.
            state.streams.end([device.id]);
            tracing::info!(device = %device.id, connection = %connection_id, "device paired");
            Ok(DeviceTokens {
                access_token: issued.access(),
                token_type: "Bearer".into(),
                expires_in: issued.expires_in(now),
                refresh_token: issued.refresh(),
                connection: info,
            })
        }
    }
}

/// How finishing a pairing went, for the page the person sees.
pub(crate) enum Finished {
    /// Connected; `moved_from` names the organisation the device was moved from, if it was.
    Connected {
        connection: ConnectionRow,
        moved_from: Option<String>,
    },
    /// The pairing is no longer pending (cancelled, expired, or finished in another tab).
    NotPending,
    /// The organisation is new and the proxy already has its cap of connected organisations.
    AtCap(u32),
    /// Not connected: the device is paired with another organisation and this pairing was not
    /// started by the device itself, so it stays where it is. The pairing stays open (its own
    /// organisation can still be chosen).
    NotMoved(String),
}

/// The consent is done and the organisation chosen: make (or refresh) the connection and approve the
/// pairing, in one transaction. Unless it finishes, nothing changed and the new token set is
/// forgotten; an organisation refused at the cap is disconnected at Xero again.
async fn finish(
    state: &AppState,
    pairing: &Pairing,
    token_set: Uuid,
    tenant: &Organisation,
) -> Result<Finished, AppError> {
    let now = state.clock.now();
    let provider = Provider::parse(&pairing.provider)
        .ok_or_else(|| AppError::internal("a pairing for a provider this proxy does not know"))?;
    let row = ConnectionRow {
        id: Uuid::new_v4(),
        provider: provider.as_str().into(),
        tenant_id: tenant.tenant_id.clone(),
        tenant_name: tenant.name.clone(),
        xero_connection_id: tenant.link_id,
        token_set_id: Some(token_set),
        status: ConnectionStatus::Connected,
        status_reason: None,
        created_at: now,
        updated_at: now,
    };
    let pairing_id = pairing.id;
    let cap = state.settings.providers.connection_cap(provider);
    let approved = state
        .storage
        .pairing()
        .approve_pairing(pairing_id, &row, cap, now)
        .await?;
    let (connection, replaced) = match approved {
        Approval::Approved(connection, replaced) => (connection, replaced),
        Approval::NotPending => {
            state.vault.delete(token_set).await?;
            return Ok(Finished::NotPending);
        }
        Approval::DeviceElsewhere => {
            state.vault.delete(token_set).await?;
            return Ok(Finished::NotMoved(tenant.name.clone()));
        }
        Approval::AtCap(cap) => {
            // The provider connected it on its side (Xero's own cap may be higher): take that
            // back, so the organisation does not count against the app's allowance for nothing.
            match state.vault.access_token(token_set).await {
                Ok(access) => {
                    let released = match state.consent(provider) {
                        Some(consent) => consent.release(&access, tenant).await.map(|_| ()),
                        None => Ok(()),
                    };
                    if let Err(e) = released {
                        tracing::warn!(error = %e, "could not remove a connection refused at the cap");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not remove a connection refused at the cap")
                }
            }
            state.vault.delete(token_set).await?;
            tracing::warn!(
                cap,
                "a new organisation was refused: the connection cap is reached"
            );
            return Ok(Finished::AtCap(cap));
        }
    };
    // Approved and committed: from here on nothing may fail the pairing (or forget the token set
    // the connection now uses); what is left is tidying and telling, best effort.
    if let Some(old) = replaced {
        // The old token set is still valid at Xero, but revoking it there would remove this very
        // organisation's connection; it is simply forgotten once nothing uses it.
        match state.storage.connections().connections_using(old).await {
            Ok(users) if users.is_empty() => {
                if let Err(e) = state.vault.delete(old).await {
                    tracing::warn!(error = %e, "could not forget a replaced token set; the sweep will");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not check a replaced token set"),
        }
    }
    let moved_from = match pairing.moves_from.filter(|from| *from != connection.id) {
        Some(from) => match state.storage.connections().connection(from).await {
            Ok(c) => c.map(|c| c.tenant_name),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the organisation a device moved from");
                None
            }
        },
        None => None,
    };
    tracing::info!(connection = %connection.id, tenant = %connection.tenant_id, "organisation connected");
    // The organisation's time zone and short code, read once now so the device has them from its
    // first answer (its local dates, its links into Xero). Not worth holding the page for: a slow
    // or failed read is tried again when a shift needs the zone.
    let read = crate::providers::read_organisation(state, &connection);
    match tokio::time::timeout(std::time::Duration::from_secs(5), read).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(connection = %connection.id, error = %e, "could not read the organisation; it is read again when needed")
        }
        Err(_) => {
            tracing::warn!(connection = %connection.id, "reading the organisation took too long; it is read again when needed")
        }
    }
    Ok(Finished::Connected {
        connection,
        moved_from,
    })
}
