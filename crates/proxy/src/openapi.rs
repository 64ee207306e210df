//! The API described as OpenAPI 3.1, served at `/v1/openapi.json`. The paths come from the
//! `#[utoipa::path]` annotations on the handlers as they are routed (`utoipa_axum`), and the schemas
//! from the wire types those handlers take and return, so the description cannot drift from what
//! the server answers; this module adds only the document's header and its security schemes.

use ledgerlink_wire::ApiError;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Security;

impl Modify for Security {
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
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from the operators' identity provider ([operators] issuer; RS256, audience [operators] audience), or the static admin token (--admin-token)"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ledgerlink API",
        version = "1",
        description = "What a desktop app or the CLI sends to the Ledgerlink comms proxy (`/v1`), and the operator API (`/admin/v1`). Amounts are exact decimals, written as strings. Errors are `{code, message}` with stable codes; the pairing endpoints answer in OAuth's `{error, error_description}`."
    ),
    components(schemas(
        ledgerlink_wire::ApiError,
        ledgerlink_wire::error::OAuthErrorBody,
        ledgerlink_wire::ErrorCode
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// What every call made with a device's credentials may answer besides its own outcomes.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // described, never built: the errors are `AppError`s
pub enum DeviceRefusals {
    /// `unauthenticated`, `token_expired` (refresh it), `device_revoked` or `disconnected` (pair
    /// again).
    #[response(status = 401)]
    Unauthenticated(ApiError),
    /// `unavailable`: nothing was stored, send the same request again after `Retry-After`; or
    /// `provider_unavailable`: Xero could not be reached.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ApiError),
}

/// What every call that takes a body may answer about the body itself.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum BodyRefusals {
    /// `invalid_request`: the body did not arrive within `server.body_read_timeout_secs`.
    #[response(status = 408)]
    TooSlow(ApiError),
    /// `payload_too_large`: over `limits.max_body_bytes`; send fewer documents per request.
    #[response(status = 413)]
    TooLarge(ApiError),
    /// `invalid_request`: the body must be JSON.
    #[response(status = 415)]
    NotJson(ApiError),
}

/// The whole description, collected from the routes.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, api) = crate::api_routes().split_for_parts();
    api
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_routed_operation_is_described_with_its_answers() {
        let doc = serde_json::to_value(super::document()).unwrap();
        if let Ok(path) = std::env::var("LEDGERLINK_DUMP_OPENAPI") {
            std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        }
        let paths = doc["paths"].as_object().unwrap();
        for (path, methods) in [
            ("/v1/pairings", &["post"][..]),
            ("/v1/pairings/token", &["post"]),
            ("/v1/connection", &["get", "delete"]),
            ("/v1/device", &["get", "delete"]),
            ("/v1/invoices", &["post"]),
            ("/v1/payments", &["post"]),
            ("/v1/shifts", &["post"]),
            ("/v1/credit-notes", &["post"]),
            ("/v1/documents", &["get"]),
            ("/v1/documents/{id}", &["get"]),
            ("/v1/documents/{id}/retry", &["post"]),
            ("/v1/documents/{id}/discard", &["post"]),
            ("/v1/documents/{id}/void", &["post"]),
            ("/v1/events", &["get"]),
            ("/v1/mappings", &["get", "put"]),
            ("/v1/contacts", &["get"]),
            ("/v1/devices", &["get"]),
            ("/admin/v1/connections", &["get"]),
            ("/admin/v1/connections/{id}", &["delete"]),
        ] {
            for method in methods {
                let op = &paths[path][method];
                assert!(op.is_object(), "{method} {path} is not described");
                assert!(
                    op["responses"].as_object().unwrap().len() >= 2,
                    "{method} {path} describes its errors too"
                );
            }
        }
        // Xero's names for a document's ids stay, marked deprecated beside the provider's.
        let view = &doc["components"]["schemas"]["DocumentView"]["properties"];
        assert_eq!(view["xero_id"]["deprecated"], true, "{view}");
        assert_eq!(view["xero_number"]["deprecated"], true);
        assert!(view["provider_id"].is_object() && view["provider_number"].is_object());
        // The answers that were free JSON are wire types now.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "MappingsAnswer",
            "EventPage",
            "DeviceInfo",
            "DeviceList",
            "AdminConnectionList",
        ] {
            assert!(schemas.contains_key(name), "{name} is described");
        }
    }
}
