//! The proxy's own cookies (the pairing pages' browser session, the console's sign-in and session):
//! each value a random secret, HttpOnly, SameSite=Lax (so it comes back on the top-level redirect
//! from a provider), and Secure when the public URL is https.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;

use crate::AppState;

/// The cookie `name`'s value, if the browser sent one of ours (a random secret: anything shorter
/// than 32 characters is not).
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, v)| *k == name && v.len() >= 32)
        .map(|(_, v)| v.to_string())
}

/// Sets (or, with `max_age` 0, removes) the cookie `name` for `path`.
pub fn set(
    state: &AppState,
    response: &mut Response,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) {
    let secure = if state.settings.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}
