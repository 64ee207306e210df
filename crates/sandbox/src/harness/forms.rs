//! What every emulated consent page needs: form and query pairs, a session cookie's value, the
//! redirect back to the app with its parameters and `state`, and random tokens.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// `a=1&b=2` (a form body or a query string), decoded.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// The first value of `name`, as given (empty included).
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The value of the cookie `name` the browser sent, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(header::COOKIE)?
        .to_str()
        .ok()?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A plain `302 Found` back to `redirect_uri` with `params` (and `state` when the app sent one).
pub fn redirect_back(redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Response {
    let mut url = redirect_uri.to_string();
    url.push(if url.contains('?') { '&' } else { '?' });
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    ser.extend_pairs(params);
    if let Some(s) = state {
        ser.append_pair("state", s);
    }
    url.push_str(&ser.finish());
    (StatusCode::FOUND, [(header::LOCATION, url)]).into_response()
}

/// 32 random bytes in hex: codes, tokens, tickets, sessions.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
