//! The device API described as OpenAPI 3.1, generated from the wire types, served at
//! `/v1/openapi.json`. The functions below only carry the path descriptions; the handlers live with
//! their modules.

use axum::routing::get;
use axum::{Json, Router};
use ledgerlink_wire::connection::DisconnectRequest;
use ledgerlink_wire::documents::{
    BatchResult, DocumentList, DocumentView, EventPage, InvoiceBatch, Mappings, PaymentBatch,
    ShiftBatch,
};
use ledgerlink_wire::error::OAuthErrorBody;
use ledgerlink_wire::pairing::{DeviceTokens, PairingRequest, PairingResponse, TokenRequest};
use ledgerlink_wire::{ApiError, ConnectionInfo};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/v1/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}

struct DeviceToken;

impl Modify for DeviceToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "device",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The device's access token from /v1/pairings/token"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Ledgerlink device API", version = "1", description = "What a desktop app or the CLI sends to the Ledgerlink comms proxy. Amounts are exact decimals, written as strings."),
    paths(pairings, pairings_token, connection_get, connection_delete, device_delete, invoices, payments, shifts, documents, document, events, mappings_get, mappings_put),
    components(schemas(ApiError, OAuthErrorBody)),
    modifiers(&DeviceToken)
)]
pub struct ApiDoc;

#[utoipa::path(post, path = "/v1/pairings", request_body = PairingRequest, tag = "pairing",
    responses((status = 200, body = PairingResponse), (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody)))]
#[allow(dead_code)]
fn pairings() {}

#[utoipa::path(post, path = "/v1/pairings/token", request_body = TokenRequest, tag = "pairing",
    description = "Poll with the device code (RFC 8628), or rotate the refresh token.",
    responses((status = 200, body = DeviceTokens), (status = 400, description = "authorization_pending, slow_down, access_denied, expired_token, invalid_grant, ...", body = OAuthErrorBody)))]
#[allow(dead_code)]
fn pairings_token() {}

#[utoipa::path(get, path = "/v1/connection", tag = "connection", security(("device" = [])),
    responses((status = 200, body = ConnectionInfo), (status = 401, body = ApiError)))]
#[allow(dead_code)]
fn connection_get() {}

#[utoipa::path(delete, path = "/v1/connection", tag = "connection", security(("device" = [])), request_body = DisconnectRequest,
    responses((status = 200, body = ConnectionInfo), (status = 400, description = "confirmation_required", body = ApiError)))]
#[allow(dead_code)]
fn connection_delete() {}

#[utoipa::path(delete, path = "/v1/device", tag = "connection", security(("device" = [])), responses((status = 204, description = "Unpaired")))]
#[allow(dead_code)]
fn device_delete() {}

#[utoipa::path(post, path = "/v1/invoices", tag = "documents", security(("device" = [])), request_body = InvoiceBatch,
    responses((status = 202, description = "All accepted", body = BatchResult), (status = 422, description = "Some refused; the rest accepted", body = BatchResult)))]
#[allow(dead_code)]
fn invoices() {}

#[utoipa::path(post, path = "/v1/payments", tag = "documents", security(("device" = [])), request_body = PaymentBatch,
    responses((status = 202, body = BatchResult), (status = 422, body = BatchResult)))]
#[allow(dead_code)]
fn payments() {}

#[utoipa::path(post, path = "/v1/shifts", tag = "documents", security(("device" = [])), request_body = ShiftBatch,
    responses((status = 202, body = BatchResult), (status = 422, body = BatchResult)))]
#[allow(dead_code)]
fn shifts() {}

#[utoipa::path(get, path = "/v1/documents", tag = "documents", security(("device" = [])),
    params(("state" = Option<String>, Query), ("kind" = Option<String>, Query), ("client_ref" = Option<String>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = DocumentList)))]
#[allow(dead_code)]
fn documents() {}

#[utoipa::path(get, path = "/v1/documents/{id}", tag = "documents", security(("device" = [])), params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = DocumentView), (status = 404, body = ApiError)))]
#[allow(dead_code)]
fn document() {}

#[utoipa::path(get, path = "/v1/events", tag = "documents", security(("device" = [])),
    description = "Long-poll with `wait`, or send `Accept: text/event-stream` for Server-Sent Events (resumes from `Last-Event-ID`).",
    params(("after" = Option<i64>, Query), ("wait" = Option<u32>, Query)),
    responses((status = 200, body = EventPage)))]
#[allow(dead_code)]
fn events() {}

#[utoipa::path(get, path = "/v1/mappings", tag = "mappings", security(("device" = [])), responses((status = 200, body = Mappings)))]
#[allow(dead_code)]
fn mappings_get() {}

#[utoipa::path(put, path = "/v1/mappings", tag = "mappings", security(("device" = [])), request_body = Mappings,
    responses((status = 200, body = Mappings), (status = 422, body = ApiError)))]
#[allow(dead_code)]
fn mappings_put() {}
