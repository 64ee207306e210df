//! The pairing pages: server-rendered from templates (`templates/pairing/`, escaped by askama),
//! no JavaScript, readable on a phone.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// The pages' one stylesheet, inline (its hash is in the Content-Security-Policy).
pub const STYLE: &str = r#"
* { box-sizing: border-box; }
body { margin: 0; font: 17px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: #f4f6f3; color: #1d2a24; }
header { padding: 16px 20px; font-weight: 700; letter-spacing: .01em; color: #1f6f4a; }
main { max-width: 460px; margin: 8px auto 40px; background: #fff; border-radius: 12px; padding: 28px 24px; box-shadow: 0 2px 12px rgba(0,0,0,.07); }
h1 { font-size: 1.4rem; margin: 0 0 14px; line-height: 1.3; }
p { margin: 0 0 14px; }
label { display: block; font-weight: 600; margin: 12px 0 6px; }
input[type=text] { width: 100%; padding: 12px; font-size: 1.4rem; letter-spacing: .15em; text-transform: uppercase; text-align: center; border: 1px solid #aab8b0; border-radius: 8px; }
.code { font: 700 2rem/1.2 ui-monospace, "SF Mono", Menlo, monospace; letter-spacing: .12em; text-align: center; background: #eef5f0; border-radius: 8px; padding: 14px; margin: 8px 0 18px; }
.device { font-weight: 700; }
.actions { display: flex; gap: 12px; margin-top: 18px; flex-wrap: wrap; }
.actions form { flex: 1; margin: 0; }
button { width: 100%; padding: 13px; font-size: 1rem; border-radius: 8px; border: 1px solid #1f6f4a; cursor: pointer; }
button.primary { background: #1f6f4a; color: #fff; font-weight: 600; }
button.secondary { background: #fff; color: #1f6f4a; }
.org { display: flex; gap: 10px; align-items: center; padding: 12px; border: 1px solid #d6e0da; border-radius: 8px; margin: 8px 0; font-weight: 500; }
.org input { width: 20px; height: 20px; }
.error { background: #fdecea; color: #8a1c12; border-radius: 8px; padding: 10px 12px; }
.warn { background: #fff6e0; color: #6b4a00; border-radius: 8px; padding: 10px 12px; margin: 0 0 14px; }
.warn p:last-child, .error p:last-child { margin: 0; }
.ok { background: #e8f5ec; color: #145c37; border-radius: 8px; padding: 10px 12px; }
.hint { color: #5a6a62; font-size: .92rem; }
"#;

/// The pages' Content-Security-Policy: nothing loads but their own inline style (by its hash), no
/// script at all, forms post only to the proxy (and, from "Continue", on to Xero's login), and no
/// other site may frame them.
pub fn content_security_policy<'a>(authorize: impl IntoIterator<Item = &'a url::Url>) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let style = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    let mut origins: Vec<String> = authorize
        .into_iter()
        .map(|u| u.origin().ascii_serialization())
        .collect();
    origins.sort();
    origins.dedup();
    format!(
        "default-src 'none'; style-src 'sha256-{style}'; img-src 'self' data:; form-action 'self' {}; \
         frame-ancestors 'none'; base-uri 'none'",
        origins.join(" ")
    )
}

/// Sends a rendered page with the headers every pairing page carries.
fn send(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [("cache-control", "no-store"), ("x-frame-options", "DENY")],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a pairing page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something failed on our side.",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "pairing/message.html")]
struct Message<'a> {
    title: &'a str,
    text: &'a str,
    class: &'a str,
}

pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let class = if status.is_success() { "ok" } else { "error" };
    send(status, Message { title, text, class })
}

#[derive(Template)]
#[template(path = "pairing/enter_code.html")]
struct EnterCode<'a> {
    error: Option<&'a str>,
    typed: &'a str,
}

pub fn enter_code(status: StatusCode, error: Option<&str>, typed: &str) -> Response {
    send(status, EnterCode { error, typed })
}

/// What the confirm page shows.
#[derive(Template)]
#[template(path = "pairing/confirm.html")]
pub struct Confirm<'a> {
    pub device_name: &'a str,
    pub code: &'a str,
    pub form_token: &'a str,
    /// The organisation the device is paired with now: its connection id and name.
    pub paired_with: Option<(String, &'a str)>,
    /// The device id is paired, but this pairing was not started by that device: it cannot move.
    pub paired_unproven: bool,
    /// The proxy's cap on connected organisations, when it has reached it.
    pub at_cap: Option<u32>,
    /// Where the device is being connected: the provider's name (`HubRise`) and what a person
    /// chooses there (`organisation`, `location`).
    pub provider: &'a str,
    pub place: &'a str,
}

impl Confirm<'_> {
    fn button(&self) -> String {
        let provider = self.provider;
        match (self.at_cap, &self.paired_with) {
            (Some(_), _) => format!("Continue to {provider} to reconnect"),
            (None, Some(_)) => format!("Continue to {provider} and move"),
            (None, None) => format!("Continue to {provider}"),
        }
    }
}

/// What a person chooses at `provider`: a Xero organisation, a HubRise location.
pub fn place(provider: ledgerlink_wire::Provider) -> &'static str {
    match provider {
        ledgerlink_wire::Provider::Xero => "organisation",
        ledgerlink_wire::Provider::HubRise => "location",
    }
}

pub fn confirm(c: Confirm) -> Response {
    send(StatusCode::OK, c)
}

#[derive(Template)]
#[template(path = "pairing/choose.html")]
struct Choose<'a> {
    device_name: &'a str,
    choice: &'a str,
    tenants: &'a [(String, String)],
}

pub fn choose(device_name: &str, choice: &str, tenants: &[(String, String)]) -> Response {
    send(
        StatusCode::OK,
        Choose {
            device_name,
            choice,
            tenants,
        },
    )
}

#[derive(Template)]
#[template(path = "pairing/still_waiting.html")]
struct StillWaiting<'a> {
    device_name: &'a str,
    code: &'a str,
}

/// A pairing still open with nothing to choose: the device's code leads on.
pub fn still_waiting(device_name: &str, code: &str) -> Response {
    send(StatusCode::OK, StillWaiting { device_name, code })
}

#[derive(Template)]
#[template(path = "pairing/connected.html")]
struct Connected<'a> {
    device_name: &'a str,
    organisation: &'a str,
    moved_from: Option<&'a str>,
    provider: &'a str,
}

pub fn connected(
    device_name: &str,
    organisation: &str,
    moved_from: Option<&str>,
    provider: &str,
) -> Response {
    send(
        StatusCode::OK,
        Connected {
            device_name,
            organisation,
            moved_from,
            provider,
        },
    )
}
