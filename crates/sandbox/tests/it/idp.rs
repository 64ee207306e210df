//! The operators' identity provider as a sign-in client and a resource server meet it: discovery,
//! the login page, a code with PKCE and a nonce, tokens verified against the published keys (by
//! `jsonwebtoken`, not the sandbox's own code), client credentials, userinfo, sign-out, a key
//! rotation, and what it refuses.

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use ledgerlink_sandbox::settings::{
    DEMO_CONSOLE_REDIRECT_URI, DEMO_OIDC_CLIENT_ID, DEMO_OIDC_CLIENT_SECRET,
    DEMO_OIDC_SCRIPTS_CLIENT_ID, DEMO_OIDC_SCRIPTS_CLIENT_SECRET,
};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use sha2::Digest;

const VERIFIER: &str = "a-pkce-verifier-that-is-long-enough-to-count-0123456789";

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER.as_bytes()))
}

fn query_of(location: &str) -> Vec<(String, String)> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

struct Flow {
    issuer: String,
    authorize: String,
}

async fn discover(env: &Env) -> (Flow, Value) {
    let doc = get_json(env, "/oauth2/default/.well-known/openid-configuration").await;
    assert_eq!(doc.status, 200);
    let issuer = format!("{}/oauth2/default", env.url);
    assert_eq!(doc.body["issuer"], issuer);
    assert_eq!(doc.body["jwks_uri"], format!("{issuer}/v1/keys"));
    assert_eq!(
        doc.body["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let authorize = doc.body["authorization_endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    (Flow { issuer, authorize }, doc.body)
}

async fn get_json(env: &Env, path: &str) -> Answer {
    Answer::read(
        env.http
            .get(format!("{}{path}", env.url))
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn authorize_url(flow: &Flow, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&flow.authorize).unwrap();
    let challenge = challenge();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", DEMO_OIDC_CLIENT_ID)
            .append_pair("redirect_uri", DEMO_CONSOLE_REDIRECT_URI)
            .append_pair("scope", "openid profile email groups")
            .append_pair("state", "st-1")
            .append_pair("nonce", "n-1")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// The login form posted as a browser would (its hidden fields and the credentials): the
/// redirect's `Location` and the session cookie.
async fn sign_in(
    env: &Env,
    page_url: &str,
    user: &str,
    password: &str,
) -> (reqwest::Response, Option<String>) {
    let page = env.http.get(page_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in"), "{html}");
    let mut form: Vec<(String, String)> = Vec::new();
    for chunk in html.split("<input type=\"hidden\" ").skip(1) {
        let attr = |name: &str| {
            let start = chunk.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            let end = start + chunk[start..].find('"').unwrap();
            html_unescape(&chunk[start..end])
        };
        form.push((attr("name"), attr("value")));
    }
    form.push(("username".into(), user.into()));
    form.push(("password".into(), password.into()));
    let answer = env
        .http
        .post(format!("{}/oauth2/default/v1/authorize", env.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    let cookie = answer
        .headers()
        .get(SET_COOKIE)
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
    (answer, cookie)
}

fn html_unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn exchange(env: &Env, code: &str, verifier: &str) -> Answer {
    Answer::read(
        env.http
            .post(format!("{}/oauth2/default/v1/token", env.url))
            .basic_auth(DEMO_OIDC_CLIENT_ID, Some(DEMO_OIDC_CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", DEMO_CONSOLE_REDIRECT_URI),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The claims of `token` verified with the published keys, as a resource server would.
async fn verify(env: &Env, token: &str, audience: &str, issuer: &str) -> Result<Value, String> {
    let keys: JwkSet =
        serde_json::from_value(get_json(env, "/oauth2/default/v1/keys").await.body).unwrap();
    let header = decode_header(token).map_err(|e| e.to_string())?;
    let jwk = keys
        .find(header.kid.as_deref().ok_or("no kid")?)
        .ok_or("unknown kid")?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .map(|t| t.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn ops_signs_in_with_pkce_and_a_nonce_and_the_tokens_verify_against_the_published_keys() {
    let env = start().await;
    let (flow, _) = discover(&env).await;
    let (answer, cookie) = sign_in(
        &env,
        &authorize_url(&flow, &[]),
        "ops@ledgerlink.test",
        "ops",
    )
    .await;
    assert_eq!(answer.status(), 302);
    let location = answer.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        location.starts_with(DEMO_CONSOLE_REDIRECT_URI),
        "{location}"
    );
    let pairs = query_of(&location);
    assert_eq!(get(&pairs, "state"), Some("st-1"));
    let burned = get(&pairs, "code").unwrap().to_string();
    // A wrong verifier is refused, and spends the code.
    let wrong = exchange(&env, &burned, &"x".repeat(43)).await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(exchange(&env, &burned, VERIFIER).await.status, 400);

    // Signed in already: the next authorize goes straight back with a code (single sign-on).
    let cookie = cookie.expect("a session cookie");
    let sso = env
        .http
        .get(authorize_url(&flow, &[]))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(sso.status(), 302);
    let code = get(&query_of(sso.headers()[LOCATION].to_str().unwrap()), "code")
        .unwrap()
        .to_string();
    let tokens = exchange(&env, &code, VERIFIER).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    assert_eq!(tokens.body["token_type"], "Bearer");
    let id = verify(
        &env,
        tokens.body["id_token"].as_str().unwrap(),
        DEMO_OIDC_CLIENT_ID,
        &flow.issuer,
    )
    .await
    .unwrap();
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["email"], "ops@ledgerlink.test");
    assert!(id["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "ledgerlink-operators"));
    let access = tokens.body["access_token"].as_str().unwrap();
    let claims = verify(&env, access, "api://default", &flow.issuer)
        .await
        .unwrap();
    assert_eq!(claims["cid"], DEMO_OIDC_CLIENT_ID);
    assert!(claims["scp"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "groups"));
    // Not for another audience or issuer.
    assert!(verify(&env, access, "api://other", &flow.issuer)
        .await
        .is_err());
    assert!(verify(&env, access, "api://default", "https://elsewhere")
        .await
        .is_err());

    // A code is single use.
    let again = exchange(&env, &code, VERIFIER).await;
    assert_eq!(again.status, 400);

    // Userinfo with the access token.
    let info = Answer::read(
        env.http
            .get(format!("{}/oauth2/default/v1/userinfo", env.url))
            .bearer_auth(access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.body["preferred_username"], "ops@ledgerlink.test");

    // Sign-out ends the single sign-on; it returns to the console only with a hint from its client.
    let id_token = tokens.body["id_token"].as_str().unwrap();
    let back = ledgerlink_sandbox::settings::DEMO_CONSOLE_SIGNED_OUT_URI;
    let stray = env
        .http
        .get(format!("{}/oauth2/default/v1/logout", env.url))
        .query(&[("post_logout_redirect_uri", "https://evil.example/")])
        .query(&[("id_token_hint", id_token)])
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stray.status(), 400);
    let out = env
        .http
        .get(format!("{}/oauth2/default/v1/logout", env.url))
        .query(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", back),
            ("state", "bye"),
        ])
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    assert_eq!(
        out.headers()[LOCATION].to_str().unwrap(),
        format!("{back}?state=bye")
    );
    let after = env
        .http
        .get(authorize_url(&flow, &[]))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200, "the login page again");
}

#[tokio::test]
async fn wrong_passwords_unknown_clients_and_bad_requests_are_refused_as_okta_refuses_them() {
    let env = start().await;
    let (flow, _) = discover(&env).await;
    let (wrong, _) = sign_in(
        &env,
        &authorize_url(&flow, &[]),
        "ops@ledgerlink.test",
        "nope",
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("Unable to sign in"));
    // A deactivated person: the same answer.
    let off = Answer::read(
        env.http
            .put(format!(
                "{}/_sandbox/idp/users/viewer@ledgerlink.test",
                env.url
            ))
            .json(&serde_json::json!({"active": false}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(off.status, 200, "{}", off.text);
    let (inactive, _) = sign_in(
        &env,
        &authorize_url(&flow, &[]),
        "viewer@ledgerlink.test",
        "viewer",
    )
    .await;
    assert_eq!(inactive.status(), 401);

    // An unregistered redirect: an error page, never a redirect.
    let stray = flow.authorize.clone()
        + "?response_type=code&scope=openid&state=s&client_id=0oa1ledgerlinkconsole&redirect_uri=https%3A%2F%2Fevil.example%2Fcb";
    let page = env.http.get(&stray).send().await.unwrap();
    assert_eq!(page.status(), 400);
    // No state, or `plain` PKCE: back with an error.
    let no_state = authorize_url(&flow, &[]).replace("state=st-1", "x=1");
    let a = env.http.get(&no_state).send().await.unwrap();
    assert_eq!(a.status(), 302);
    assert_eq!(
        get(&query_of(a.headers()[LOCATION].to_str().unwrap()), "error"),
        Some("invalid_request")
    );
    let plain = authorize_url(&flow, &[])
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let a = env.http.get(&plain).send().await.unwrap();
    assert_eq!(
        get(&query_of(a.headers()[LOCATION].to_str().unwrap()), "error"),
        Some("invalid_request")
    );

    // The token endpoint: a wrong secret.
    let bad = Answer::read(
        env.http
            .post(format!("{}/oauth2/default/v1/token", env.url))
            .basic_auth(DEMO_OIDC_CLIENT_ID, Some("wrong"))
            .form(&[("grant_type", "authorization_code"), ("code", "x")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (bad.status.as_u16(), bad.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn a_script_gets_a_token_by_client_credentials_and_a_rotation_changes_the_kid() {
    let env = start().await;
    let (flow, _) = discover(&env).await;
    let ask = |scope: &'static str| {
        env.http
            .post(format!("{}/oauth2/default/v1/token", env.url))
            .basic_auth(
                DEMO_OIDC_SCRIPTS_CLIENT_ID,
                Some(DEMO_OIDC_SCRIPTS_CLIENT_SECRET),
            )
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
    };
    let refused = Answer::read(ask("openid").await.unwrap()).await;
    assert_eq!(refused.body["error"], "invalid_scope");
    let token = Answer::read(ask("ledgerlink-viewers").await.unwrap()).await;
    assert_eq!(token.status, 200, "{}", token.text);
    let first = token.body["access_token"].as_str().unwrap().to_string();
    let claims = verify(&env, &first, "api://default", &flow.issuer)
        .await
        .unwrap();
    assert_eq!(claims["scp"], serde_json::json!(["ledgerlink-viewers"]));
    assert!(claims.get("groups").is_none());

    let rotated = Answer::read(
        env.http
            .post(format!("{}/_sandbox/idp/keys/rotate", env.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let kid = rotated.body["kid"].as_str().unwrap().to_string();
    let second = Answer::read(ask("ledgerlink-viewers").await.unwrap())
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        decode_header(&second).unwrap().kid.as_deref(),
        Some(kid.as_str())
    );
    assert_ne!(
        decode_header(&first).unwrap().kid,
        decode_header(&second).unwrap().kid
    );
    // Both verify: the old key is still published.
    assert!(verify(&env, &first, "api://default", &flow.issuer)
        .await
        .is_ok());
    assert!(verify(&env, &second, "api://default", &flow.issuer)
        .await
        .is_ok());
}
