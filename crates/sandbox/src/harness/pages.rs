//! Server-rendered HTML from templates (`templates/`, escaped by askama): the login and consent
//! pages a person (or a browser test) clicks through, and error pages. No JavaScript; readable on
//! a phone.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// The pages' one stylesheet, inline.
pub const STYLE: &str = r#"
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

pub fn page(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a sandbox page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    detail: &'a str,
}

/// An error page for requests that cannot be redirected back (unknown client, bad redirect URI).
pub fn error(status: StatusCode, title: &str, detail: &str) -> Response {
    page(status, &ErrorPage { title, detail })
}

#[derive(Template)]
#[template(path = "index.html")]
struct Index<'a> {
    base_url: &'a str,
    client_id: &'a str,
}

pub fn index(base_url: &str, client_id: &str) -> String {
    Index {
        base_url,
        client_id,
    }
    .render()
    .unwrap_or_default()
}
