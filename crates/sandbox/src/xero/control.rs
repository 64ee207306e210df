//! Xero's control calls under `/_sandbox/` (and `/_sandbox/xero/`): grants made without a
//! browser, organisations, apps (redirect URIs, webhook URL, tier), contacts removed as if by a
//! person in Xero, webhooks (the intent-to-receive check, deliveries), an invoice paid in Xero.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

use crate::harness::control::{body, fail, Answer};
use crate::xero::identity::issue_tokens;
use crate::xero::model::{Country, Grant};
use crate::xero::webhooks::Event;
use crate::Shared;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/grants", post(create_grant))
        .route("/grants/{id}/revoke", post(revoke_grant))
        .route("/tenants", post(create_tenant))
        .route("/tenants/{tenant}/contacts/{id}", delete(remove_contact))
        .route("/apps", post(create_app))
        .route("/apps/{client_id}", put(update_app))
        .route("/webhooks/intent", post(webhook_intent))
        .route("/webhooks/deliveries", get(webhook_deliveries))
        .route("/invoices/{id}/pay", post(pay_invoice))
        .route("/keys/rotate", post(rotate_keys))
}

/// `POST /_sandbox/keys/rotate`: Xero's identity server signs with a new key from now on; the
/// one before stays in its JWKS.
async fn rotate_keys(State(shared): State<Arc<Shared>>) -> Answer {
    let kid = shared.rotate_keys("xero");
    let _ = shared.persist();
    Ok(Json(json!({ "kid": kid })).into_response())
}

const DEFAULT_SCOPE: &str =
    "openid profile email offline_access accounting.transactions accounting.contacts accounting.settings.read";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRequest {
    client_id: String,
    user: String,
    tenant_ids: Option<Vec<Uuid>>,
    scope: Option<String>,
}

async fn create_grant(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Answer {
    let req: GrantRequest = body(&bytes)?;
    let scope =
        match crate::xero::identity::parse_scope(req.scope.as_deref().unwrap_or(DEFAULT_SCOPE)) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    "scope must name at least one scope",
                ))
            }
            Err(bad) => {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    format!("unknown scope '{bad}'"),
                ))
            }
        };
    let mut world = shared.world();
    if !world.apps.contains_key(&req.client_id) {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("no app with client_id '{}'", req.client_id),
        ));
    }
    let Some(user) = world.user_by_email(&req.user).map(|u| u.id) else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("no user '{}'", req.user),
        ));
    };
    let members: Vec<Uuid> = world
        .tenants
        .iter()
        .filter(|t| t.members.contains(&user))
        .map(|t| t.id)
        .collect();
    let tenant_ids = req.tenant_ids.unwrap_or_else(|| members.clone());
    if let Some(bad) = tenant_ids.iter().find(|t| !members.contains(t)) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("tenant {bad} is not one of {}'s organisations", req.user),
        ));
    }
    if tenant_ids.is_empty() {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "tenant_ids must name at least one organisation",
        ));
    }
    let now = shared.clock.now();
    let auth_event_id = Uuid::new_v4();
    world.connect(&req.client_id, user, &tenant_ids, auth_event_id, now);
    let grant = Grant {
        id: Uuid::new_v4(),
        client_id: req.client_id,
        user_id: user,
        scope,
        auth_event_id,
        tenant_ids,
        created: now,
        revoked: false,
    };
    let grant_id = grant.id;
    world.grants.insert(grant_id, grant);
    let tokens = issue_tokens(&shared, &mut world, grant_id, None);
    let mut out = serde_json::to_value(tokens).expect("token responses serialize");
    out["grant_id"] = json!(grant_id);
    out["auth_event_id"] = json!(auth_event_id);
    Ok(Json(out).into_response())
}

async fn revoke_grant(State(shared): State<Arc<Shared>>, Path(id): Path<Uuid>) -> Answer {
    if shared.world().revoke_grant(id) {
        Ok(Json(json!({"revoked": id})).into_response())
    } else {
        Err(fail(StatusCode::NOT_FOUND, format!("no grant {id}")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantRequest {
    name: String,
    country: String,
    user: Option<String>,
    /// Xero's name of its time zone (`CHATHAMISLANDSSTANDARDTIME`): capitals only, as Xero
    /// writes them. Default: the country's (`NEWZEALANDSTANDARDTIME`, `GMTSTANDARDTIME`).
    timezone: Option<String>,
}

async fn create_tenant(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Answer {
    let req: TenantRequest = body(&bytes)?;
    let Some(country) = Country::parse(&req.country) else {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("country '{}' is not supported; use NZ or UK", req.country),
        ));
    };
    if req.name.trim().is_empty() {
        return Err(fail(StatusCode::BAD_REQUEST, "name must not be empty"));
    }
    if let Some(tz) = req.timezone.as_deref() {
        if tz.is_empty() || !tz.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("timezone '{tz}' is not a Xero time zone name: capital letters only, e.g. NEWZEALANDSTANDARDTIME"),
            ));
        }
    }
    let mut world = shared.world();
    let email = req
        .user
        .as_deref()
        .unwrap_or(crate::xero::seed::DEMO_USER_EMAIL);
    let Some(user) = world.user_by_email(email).map(|u| u.id) else {
        return Err(fail(StatusCode::NOT_FOUND, format!("no user '{email}'")));
    };
    let id = Uuid::new_v4();
    let mut tenant =
        crate::xero::seed::tenant(id, req.name.trim(), country, user, shared.clock.now());
    tenant.timezone = req.timezone;
    world.tenants.push(tenant);
    Ok((
        StatusCode::CREATED,
        Json(json!({"tenant_id": id, "name": req.name.trim(), "country": country.version(), "currency": country.currency()})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppPatch {
    redirect_uris: Option<Vec<String>>,
    /// An empty string removes the webhook.
    webhook_url: Option<String>,
    created_at: Option<chrono::NaiveDate>,
    certified: Option<bool>,
    tier: Option<String>,
}

const TIERS: &[&str] = &["starter", "core", "plus", "advanced", "enterprise"];

/// What an app is told about itself (its secret only when it is made).
fn app_view(app: &crate::xero::model::App) -> serde_json::Value {
    json!({
        "client_id": app.client_id,
        "redirect_uris": app.redirect_uris,
        "webhook_url": app.webhook_url,
        "created_at": app.created_at,
        "certified": app.certified,
        "tier": app.tier,
        "connection_cap": app.connection_cap(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApp {
    client_id: Option<String>,
    name: Option<String>,
    redirect_uris: Vec<String>,
    webhook_url: Option<String>,
    created_at: Option<chrono::NaiveDate>,
    #[serde(default)]
    certified: bool,
    tier: Option<String>,
}

/// `POST /_sandbox/apps`: registers another app (a developer's second app, say one made after the
/// granular-scopes rule); answers its credentials.
async fn create_app(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Answer {
    let req: NewApp = body(&bytes)?;
    if let Some(bad) = req
        .redirect_uris
        .iter()
        .chain(req.webhook_url.iter())
        .find(|u| url::Url::parse(u).is_err())
    {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("'{bad}' is not an absolute URL"),
        ));
    }
    let tier = req.tier.unwrap_or_else(|| "starter".into());
    if !TIERS.contains(&tier.as_str()) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("tier must be one of {}", TIERS.join(", ")),
        ));
    }
    let client_id = req
        .client_id
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string().to_uppercase());
    let secret = crate::xero::identity::random_token();
    let app = crate::xero::model::App {
        client_id: client_id.clone(),
        client_secret: crate::Secret::new(secret.clone()),
        name: req.name.unwrap_or_else(|| "Another app".into()),
        redirect_uris: req.redirect_uris,
        webhook_url: req.webhook_url,
        webhook_key: crate::Secret::new(crate::xero::identity::random_token()),
        created_at: req
            .created_at
            .unwrap_or_else(|| shared.clock.now().date_naive()),
        certified: req.certified,
        tier,
    };
    let mut world = shared.world();
    if world.apps.contains_key(&client_id) {
        return Err(fail(
            StatusCode::CONFLICT,
            format!("an app with client_id '{client_id}' exists"),
        ));
    }
    let mut view = app_view(&app);
    view["client_secret"] = json!(secret);
    view["webhook_key"] = json!(app.webhook_key.expose());
    world.apps.insert(client_id, app);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn update_app(
    State(shared): State<Arc<Shared>>,
    Path(client_id): Path<String>,
    bytes: Bytes,
) -> Answer {
    let patch: AppPatch = body(&bytes)?;
    if let Some(bad) = patch
        .redirect_uris
        .iter()
        .flatten()
        .chain(patch.webhook_url.iter().filter(|u| !u.is_empty()))
        .find(|u| url::Url::parse(u).is_err())
    {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("'{bad}' is not an absolute URL"),
        ));
    }
    let mut world = shared.world();
    let Some(app) = world.apps.get_mut(&client_id) else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("no app with client_id '{client_id}'"),
        ));
    };
    if let Some(uris) = patch.redirect_uris {
        app.redirect_uris = uris;
    }
    if let Some(url) = patch.webhook_url {
        app.webhook_url = (!url.is_empty()).then_some(url);
    }
    if let Some(d) = patch.created_at {
        app.created_at = d;
    }
    if let Some(c) = patch.certified {
        app.certified = c;
    }
    if let Some(t) = patch.tier {
        if !TIERS.contains(&t.as_str()) {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("tier must be one of {}", TIERS.join(", ")),
            ));
        }
        app.tier = t;
    }
    Ok(Json(app_view(app)).into_response())
}

/// `DELETE /_sandbox/tenants/{tenant}/contacts/{id}`: the contact is gone from the organisation,
/// as after a reset of the organisation or a merge of contacts; documents keep its id.
async fn remove_contact(
    State(shared): State<Arc<Shared>>,
    Path((tenant, id)): Path<(Uuid, Uuid)>,
) -> Answer {
    let mut world = shared.world();
    let Some(t) = world.tenant_mut(tenant) else {
        return Err(fail(StatusCode::NOT_FOUND, format!("no tenant {tenant}")));
    };
    let before = t.contacts.len();
    t.contacts.retain(|c| c.id != id);
    if t.contacts.len() == before {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("no contact {id} in tenant {tenant}"),
        ));
    }
    t.contact_by_id = t
        .contacts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentRequest {
    client_id: Option<String>,
}

async fn webhook_intent(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Answer {
    let req: IntentRequest = body(&bytes)?;
    let client_id = req
        .client_id
        .unwrap_or_else(|| shared.settings.client_id.clone());
    let (url, key) = {
        let world = shared.world();
        let Some(app) = world.apps.get(&client_id) else {
            return Err(fail(
                StatusCode::NOT_FOUND,
                format!("no app with client_id '{client_id}'"),
            ));
        };
        let Some(url) = app.webhook_url.clone() else {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "the app has no webhook URL; set one with PUT /_sandbox/apps/{client_id}",
            ));
        };
        (url, app.webhook_key.clone())
    };
    let (good, bad) = shared.webhooks.intent(&url, &key).await;
    Ok(Json(json!({
        "ok": good == Some(200) && bad == Some(401),
        "good_signature_status": good,
        "bad_signature_status": bad,
    }))
    .into_response())
}

async fn webhook_deliveries(State(shared): State<Arc<Shared>>) -> Answer {
    Ok(Json(json!({ "deliveries": shared.webhooks.attempts() })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayRequest {
    amount: Option<Decimal>,
}

/// A customer paying in Xero: the invoice is paid (in full unless `amount` says otherwise) into the
/// organisation's first bank account, and the webhook fires.
async fn pay_invoice(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<Uuid>,
    bytes: Bytes,
) -> Answer {
    let req: PayRequest = body(&bytes)?;
    let now = shared.clock.now();
    let (tenant_id, out) = {
        let mut world = shared.world();
        let Some(tenant) = world
            .tenants
            .iter_mut()
            .find(|t| t.invoice_by_id.contains_key(&id))
        else {
            return Err(fail(StatusCode::NOT_FOUND, format!("no invoice {id}")));
        };
        let index = tenant.invoice_by_id[&id];
        let inv = &tenant.invoices[index];
        if inv.status != "AUTHORISED" {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!(
                    "invoice {id} is {}; only AUTHORISED invoices can be paid",
                    inv.status
                ),
            ));
        }
        let amount = req.amount.unwrap_or(inv.amount_due);
        if amount <= Decimal::ZERO || amount > inv.amount_due {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!(
                    "amount must be above 0 and at most the amount due ({})",
                    inv.amount_due
                ),
            ));
        }
        let Some(bank) = tenant
            .accounts
            .iter()
            .find(|a| a.kind == "BANK" && a.is_active())
            .map(|a| a.id)
        else {
            return Err(fail(
                StatusCode::CONFLICT,
                "the organisation has no active bank account",
            ));
        };
        let payment = crate::xero::api::payments_record(tenant, index, bank, amount, now);
        let out = json!({
            "invoice": crate::xero::api::render::invoice(tenant, &tenant.invoices[index]),
            "payment": crate::xero::api::render::payment(tenant, &payment),
        });
        (tenant.id, out)
    };
    let targets = crate::xero::webhooks::targets(&shared.world(), tenant_id);
    shared.webhooks.emit(
        targets,
        tenant_id,
        shared.base_url(),
        &[Event::invoice("UPDATE", id)],
        now,
    );
    Ok(Json(out).into_response())
}
