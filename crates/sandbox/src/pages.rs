//! Server-rendered HTML: the login and consent pages a person (or a browser test) clicks through,
//! and error pages. No JavaScript; readable on a phone.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and attribute values.
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
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: #f2f5f8; color: #1e2a35; }
header { background: #13b5ea; color: #fff; padding: 14px 20px; font-weight: 600; letter-spacing: .02em; }
header small { font-weight: 400; opacity: .85; margin-left: 8px; }
main { max-width: 440px; margin: 32px auto; background: #fff; border-radius: 10px; padding: 28px 24px; box-shadow: 0 2px 10px rgba(0,0,0,.08); }
h1 { font-size: 1.35rem; margin: 0 0 12px; }
p { margin: 0 0 14px; }
label { display: block; font-weight: 600; margin: 14px 0 4px; }
input[type=email], input[type=password], input[type=text] { width: 100%; padding: 10px 12px; font-size: 1rem; border: 1px solid #b8c4ce; border-radius: 6px; }
fieldset { border: 1px solid #dbe2e8; border-radius: 8px; padding: 8px 14px; margin: 16px 0; }
legend { font-weight: 600; padding: 0 6px; }
.org { display: flex; align-items: center; gap: 10px; padding: 10px 0; font-weight: 400; margin: 0; }
.org input { width: 20px; height: 20px; }
.org.disabled { color: #8a969c; }
ul.scopes { padding-left: 20px; margin: 0 0 10px; color: #44525e; }
.actions { display: flex; gap: 12px; margin-top: 20px; }
/* Allow comes first in the form (Enter submits it) but sits on the right. */
.actions.reverse { flex-direction: row-reverse; }
button { flex: 1; padding: 12px; font-size: 1rem; border-radius: 6px; border: 1px solid #13b5ea; cursor: pointer; }
button.primary { background: #13b5ea; color: #fff; font-weight: 600; }
button.secondary { background: #fff; color: #0f7fa8; }
.error { background: #fdecea; color: #8a1c12; border-radius: 6px; padding: 10px 12px; margin-bottom: 14px; }
.hint { color: #5d6b77; font-size: .9rem; }
code { background: #eef2f5; padding: 1px 5px; border-radius: 4px; }
"#;

pub fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{} · Xero sandbox</title><style>{STYLE}</style></head>\
<body><header>xero <small>sandbox · ledgerlink</small></header><main>{body}</main></body></html>",
        escape(title)
    )
}

pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (status, Html(layout(title, body))).into_response()
}

/// An error page for requests that cannot be redirected back (unknown client, bad redirect URI).
pub fn error(status: StatusCode, title: &str, detail: &str) -> Response {
    page(
        status,
        title,
        &format!(
            "<h1>{}</h1><p class=\"error\">{}</p>",
            escape(title),
            escape(detail)
        ),
    )
}

/// Hidden form fields that carry the authorization request through the login and consent forms.
pub fn hidden(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            )
        })
        .collect()
}

pub fn index(base_url: &str, client_id: &str) -> String {
    layout(
        "Sandbox",
        &format!(
            "<h1>Xero sandbox</h1><p>A local emulator of Xero's identity server and Accounting API \
for Ledgerlink's demo and tests.</p><p>Demo login: <code>demo@ledgerlink.test</code> / <code>demo</code></p>\
<p class=\"hint\">Client id <code>{}</code>. Control API under <code>{}/_sandbox/</code>.</p>",
            escape(client_id),
            escape(base_url)
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
