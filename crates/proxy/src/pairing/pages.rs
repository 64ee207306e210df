//! The pairing pages: server-rendered, no JavaScript, readable on a phone.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
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
pub fn content_security_policy(authorize: &url::Url) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let style = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{style}'; img-src 'self' data:; form-action 'self' {}; \
         frame-ancestors 'none'; base-uri 'none'",
        authorize.origin().ascii_serialization()
    )
}

pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\">\
<title>{} · Ledgerlink</title><style>{STYLE}</style></head>\
<body><header>Ledgerlink</header><main>{body}</main></body></html>",
        escape(title)
    );
    (
        status,
        [("cache-control", "no-store"), ("x-frame-options", "DENY")],
        Html(html),
    )
        .into_response()
}

pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let class = if status.is_success() { "ok" } else { "error" };
    page(
        status,
        title,
        &format!(
            "<h1>{}</h1><p class=\"{class}\" role=\"status\">{}</p>",
            escape(title),
            escape(text)
        ),
    )
}

pub fn enter_code(status: StatusCode, error: Option<&str>, typed: &str) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        status,
        "Connect a device",
        &format!(
            "<h1>Connect a device to Xero</h1>{error}<p>Enter the code shown on the device (the till or front desk).</p>\
<form method=\"post\" action=\"/pair\"><label for=\"code\">Code</label>\
<input id=\"code\" type=\"text\" name=\"code\" value=\"{}\" placeholder=\"XXXX-XXXX\" autocomplete=\"off\" autocapitalize=\"characters\" maxlength=\"20\" required autofocus>\
<div class=\"actions\"><button class=\"primary\" type=\"submit\">Next</button></div></form>",
            escape(typed)
        ),
    )
}

/// What the confirm page shows.
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
}

pub fn confirm(c: &Confirm) -> Response {
    let moving = c
        .paired_with
        .as_ref()
        .map(|(id, _)| {
            format!(
                "<input type=\"hidden\" name=\"moving\" value=\"{}\">",
                escape(id)
            )
        })
        .unwrap_or_default();
    let hidden = format!(
        "<input type=\"hidden\" name=\"code\" value=\"{}\"><input type=\"hidden\" name=\"form\" value=\"{}\">",
        escape(c.code),
        escape(c.form_token)
    );
    let device = format!("<span class=\"device\">{}</span>", escape(c.device_name));
    let moves = c
        .paired_with
        .as_ref()
        .map(|(_, org)| {
            let org = format!("<strong>{}</strong>", escape(org));
            format!(
                "<div class=\"warn\" id=\"moving\" role=\"alert\"><p>{device} is already connected to {org}.</p>\
<p>If you choose another organisation in Xero, the device moves there: what it sends from now on goes to the organisation you choose, \
documents it already sent stay with {org} (any still waiting are still delivered there), and its old sign-in stops working. \
Choosing {org} again only reconnects it.</p></div>"
            )
        })
        .unwrap_or_default();
    let unproven = if c.paired_unproven {
        "<div class=\"warn\" id=\"paired\" role=\"alert\"><p>A device with this id is already paired with an organisation. \
Continuing can only reconnect it to that organisation: to move it to another one, press Connect on the device itself, or unpair it first.</p></div>"
    } else {
        ""
    };
    let cap = c
        .at_cap
        .map(|cap| {
            format!(
                "<div class=\"error\" id=\"cap\" role=\"alert\"><p><strong>No new organisation can be connected.</strong> \
This Ledgerlink already has its limit of {cap} connected Xero organisations.</p>\
<p>You can still reconnect an organisation that is already connected: choose that one in Xero. To connect a new one, \
ask whoever runs Ledgerlink to disconnect an organisation no longer used, or to raise the limit.</p></div>"
            )
        })
        .unwrap_or_default();
    let button = match (c.at_cap, &c.paired_with) {
        (Some(_), _) => "Continue to Xero to reconnect",
        (None, Some(_)) => "Continue to Xero and move",
        (None, None) => "Continue to Xero",
    };
    page(
        StatusCode::OK,
        "Check the code",
        &format!(
            "<h1>Connect {device} to Xero?</h1>\
<p>Check that this code is the one on the device's screen:</p><div class=\"code\">{}</div>\
<p class=\"hint\">If it is not, cancel: someone else may be trying to connect.</p>{moves}{unproven}{cap}\
<div class=\"actions\"><form method=\"post\" action=\"/pair/cancel\">{hidden}<button class=\"secondary\" type=\"submit\">Cancel</button></form>\
<form method=\"post\" action=\"/pair/continue\">{hidden}{moving}<button id=\"continue\" class=\"primary\" type=\"submit\">{button}</button></form></div>",
            escape(c.code)
        ),
    )
}

pub fn choose(device_name: &str, choice: &str, tenants: &[(String, String)]) -> Response {
    let options: String = tenants
        .iter()
        .enumerate()
        .map(|(i, (id, name))| {
            format!(
                "<label class=\"org\"><input type=\"radio\" name=\"tenant\" value=\"{}\"{}> {}</label>",
                escape(id),
                if i == 0 { " required" } else { "" },
                escape(name)
            )
        })
        .collect();
    page(
        StatusCode::OK,
        "Choose the organisation",
        &format!(
            "<h1>Which organisation should <span class=\"device\">{}</span> send to?</h1>\
<form method=\"post\" action=\"/pair/organisation\"><input type=\"hidden\" name=\"choice\" value=\"{}\">{options}\
<div class=\"actions\"><button class=\"primary\" type=\"submit\">Connect</button></div></form>",
            escape(device_name),
            escape(choice)
        ),
    )
}

/// A pairing still open with nothing to choose: the device's code leads on.
pub fn still_waiting(device_name: &str, code: &str) -> Response {
    let link = format!("/pair?code={code}");
    page(
        StatusCode::OK,
        "Not connected yet",
        &format!(
            "<h1>Not connected yet</h1><p><span class=\"device\">{}</span> is still waiting to be connected.</p>\
<p><a id=\"continue-code\" href=\"{}\">Continue with the device's code {}</a> to choose the organisation again.</p>",
            escape(device_name),
            escape(&link),
            escape(code)
        ),
    )
}

pub fn connected(device_name: &str, organisation: &str, moved_from: Option<&str>) -> Response {
    let moved = moved_from
        .map(|from| {
            format!(
                "<p id=\"moved\">It moved from <strong>{}</strong>: documents it already sent stay there, and any still waiting are still delivered there.</p>",
                escape(from)
            )
        })
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "Connected",
        &format!(
            "<h1>Connected</h1><p class=\"ok\" role=\"status\"><span class=\"device\">{}</span> now sends to <strong>{}</strong> in Xero.</p>{moved}\
<p>You can close this window and go back to the device.</p>",
            escape(device_name),
            escape(organisation)
        ),
    )
}
