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

pub fn confirm(device_name: &str, code: &str, form_token: &str) -> Response {
    let hidden = format!(
        "<input type=\"hidden\" name=\"code\" value=\"{}\"><input type=\"hidden\" name=\"form\" value=\"{}\">",
        escape(code),
        escape(form_token)
    );
    page(
        StatusCode::OK,
        "Check the code",
        &format!(
            "<h1>Connect <span class=\"device\">{}</span> to Xero?</h1>\
<p>Check that this code is the one on the device's screen:</p><div class=\"code\">{}</div>\
<p class=\"hint\">If it is not, cancel: someone else may be trying to connect.</p>\
<div class=\"actions\"><form method=\"post\" action=\"/pair/cancel\">{hidden}<button class=\"secondary\" type=\"submit\">Cancel</button></form>\
<form method=\"post\" action=\"/pair/continue\">{hidden}<button id=\"continue\" class=\"primary\" type=\"submit\">Continue to Xero</button></form></div>",
            escape(device_name),
            escape(code)
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

pub fn connected(device_name: &str, organisation: &str) -> Response {
    page(
        StatusCode::OK,
        "Connected",
        &format!(
            "<h1>Connected</h1><p class=\"ok\" role=\"status\"><span class=\"device\">{}</span> now sends to <strong>{}</strong> in Xero.</p>\
<p>You can close this window and go back to the device.</p>",
            escape(device_name),
            escape(organisation)
        ),
    )
}
