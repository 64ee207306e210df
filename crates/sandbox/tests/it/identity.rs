//! The identity server as an OAuth client and a person in a browser meet it: consent through the HTML
//! forms, codes, PKCE, refresh rotation, revocation and connections.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::common::*;
use ledgerlink_sandbox::harness::keys::decode_unverified;

const VERIFIER: &str = "a-very-long-pkce-code-verifier-of-more-than-43-characters-0123456789";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_query(state: &str, scope: &str, redirect: &str) -> Vec<(String, String)> {
    vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), CLIENT_ID.into()),
        ("redirect_uri".into(), redirect.into()),
        ("scope".into(), scope.into()),
        ("state".into(), state.into()),
        ("code_challenge".into(), challenge(VERIFIER)),
        ("code_challenge_method".into(), "S256".into()),
    ]
}

const SCOPE: &str = "openid profile email offline_access accounting.transactions accounting.contacts accounting.settings.read";

/// The value of a hidden field on a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} on page: {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_string()
}

fn location_params(a: &Answer) -> Vec<(String, String)> {
    let location = a.header("location").expect("a redirect");
    let url = url::Url::parse(location).unwrap();
    assert_eq!(
        format!("{}{}", url.origin().ascii_serialization(), url.path()),
        REDIRECT
    );
    url.query_pairs().into_owned().collect()
}

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Posts a form to the authorize endpoint, as the login and consent pages do.
async fn submit(env: &Env, form: &[(String, String)]) -> Answer {
    Answer::read(
        env.http
            .post(format!("{}/identity/connect/authorize", env.url))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Logs in through the form and returns the consent page's text.
async fn login(env: &Env, query: &[(String, String)]) -> String {
    let page = env
        .http
        .get(format!("{}/identity/connect/authorize", env.url))
        .query(query)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Log in to Xero") && page.contains("name=\"password\""));

    let mut form = query.to_vec();
    form.push(("action".into(), "login".into()));
    form.push(("email".into(), USER.into()));
    form.push(("password".into(), "wrong".into()));
    let wrong = submit(env, &form).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("email or password is incorrect"));

    form.pop();
    form.push(("password".into(), "demo".into()));
    let consent = submit(env, &form).await;
    assert_eq!(consent.status, 200);
    assert!(consent
        .header("set-cookie")
        .is_some_and(|c| c.contains("HttpOnly")));
    consent.text
}

async fn decide(
    env: &Env,
    query: &[(String, String)],
    consent: &str,
    action: &str,
    tenants: &[uuid::Uuid],
) -> Answer {
    let mut form = query.to_vec();
    form.push(("ticket".into(), hidden(consent, "ticket")));
    form.push(("action".into(), action.into()));
    for t in tenants {
        form.push(("tenant".into(), t.to_string()));
    }
    submit(env, &form).await
}

/// Consents to `tenants` through the forms and exchanges the code: the whole browser flow.
async fn consent_and_exchange(env: &Env, tenants: &[uuid::Uuid]) -> (Tokens, String) {
    let query = authorize_query("st-1", SCOPE, REDIRECT);
    let consent = login(env, &query).await;
    let allowed = decide(env, &query, &consent, "allow", tenants).await;
    assert_eq!(allowed.status, 302, "{}", allowed.text);
    let params = location_params(&allowed);
    assert_eq!(get(&params, "state"), Some("st-1"));
    let code = get(&params, "code").expect("a code").to_string();
    let a = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    (Tokens::from(a.body), code)
}

#[tokio::test]
async fn consent_through_the_html_forms_connects_only_the_ticked_organisation() {
    let env = start().await;
    let query = authorize_query("st-1", SCOPE, REDIRECT);
    let consent = login(&env, &query).await;
    assert!(consent.contains("Demo Company (NZ)") && consent.contains("Demo Company (UK)"));
    assert!(consent.contains("type=\"checkbox\" name=\"tenant\""));

    // Allow with nothing ticked: the page says so and nobody is redirected.
    let none = decide(&env, &query, &consent, "allow", &[]).await;
    assert_eq!(none.status, 400);
    assert!(none.text.contains("Select at least one organisation"));

    let (tokens, _) = consent_and_exchange(&env, &[NZ]).await;
    assert_eq!(tokens.raw["token_type"], "Bearer");
    assert_eq!(tokens.raw["expires_in"], 1800);
    assert!(
        tokens.raw["id_token"].is_string(),
        "openid scope gives an id_token"
    );
    assert!(
        tokens.refresh.is_some(),
        "offline_access gives a refresh token"
    );

    let claims = decode_unverified(&tokens.access).unwrap();
    for claim in [
        "exp",
        "xero_userid",
        "authentication_event_id",
        "client_id",
        "scope",
    ] {
        assert!(
            !claims[claim].is_null(),
            "access token lacks {claim}: {claims}"
        );
    }
    assert_eq!(claims["client_id"], CLIENT_ID);
    let auth_event = claims["authentication_event_id"]
        .as_str()
        .unwrap()
        .to_string();

    // A second consent (the UK one) gets its own auth event; filtering picks this consent's tenants.
    let (uk_tokens, _) = consent_and_exchange(&env, &[UK]).await;
    let uk_event = decode_unverified(&uk_tokens.access).unwrap()["authentication_event_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(auth_event, uk_event);
    let all = Answer::read(
        env.http
            .get(format!("{}/connections", env.url))
            .bearer_auth(&tokens.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(all.body.as_array().unwrap().len(), 2);
    let mine = Answer::read(
        env.http
            .get(format!("{}/connections?authEventId={auth_event}", env.url))
            .bearer_auth(&tokens.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mine = mine.body.as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["tenantId"], NZ.to_string());
    assert_eq!(mine[0]["tenantName"], "Demo Company (NZ)");
    assert_eq!(mine[0]["tenantType"], "ORGANISATION");
    assert_eq!(mine[0]["authEventId"], auth_event);
}

#[tokio::test]
async fn a_logged_in_browser_goes_straight_to_consent() {
    let env = start().await;
    let jar = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let query = authorize_query("s", SCOPE, REDIRECT);
    let mut form = query.clone();
    form.extend([
        ("action".into(), "login".into()),
        ("email".into(), USER.into()),
        ("password".into(), "demo".into()),
    ]);
    let first = jar
        .post(format!("{}/identity/connect/authorize", env.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let again = jar
        .get(format!("{}/identity/connect/authorize", env.url))
        .query(&query)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(again.contains("Allow access") && !again.contains("name=\"password\""));
}

#[tokio::test]
async fn deny_redirects_with_access_denied_and_the_state() {
    let env = start().await;
    let query = authorize_query("deny-state", SCOPE, REDIRECT);
    let consent = login(&env, &query).await;
    let denied = decide(&env, &query, &consent, "deny", &[]).await;
    assert_eq!(denied.status, 302);
    let params = location_params(&denied);
    assert_eq!(get(&params, "error"), Some("access_denied"));
    assert_eq!(get(&params, "state"), Some("deny-state"));
    assert_eq!(get(&params, "code"), None);
}

#[tokio::test]
async fn redirect_uris_match_exactly_and_bad_requests_never_redirect_elsewhere() {
    let env = start().await;
    for bad in [
        format!("{REDIRECT}/"),
        REDIRECT.replace("127.0.0.1", "localhost"),
        format!("{REDIRECT}?x=1"),
    ] {
        let a = Answer::read(
            env.http
                .get(format!("{}/identity/connect/authorize", env.url))
                .query(&authorize_query("s", SCOPE, &bad))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 400, "{bad} must be refused");
        assert!(a.header("location").is_none());
        assert!(a.text.contains("Invalid redirect_uri"));
    }
    let mut unknown_client = authorize_query("s", SCOPE, REDIRECT);
    unknown_client[1].1 = "NOPE".into();
    let a = env
        .http
        .get(format!("{}/identity/connect/authorize", env.url))
        .query(&unknown_client)
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 400);

    // A mistake the app can be told about goes back to it as error=.
    let a = Answer::read(
        env.http
            .get(format!("{}/identity/connect/authorize", env.url))
            .query(&authorize_query(
                "s",
                "offline_access accounting.everything",
                REDIRECT,
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(get(&location_params(&a), "error"), Some("invalid_scope"));

    // A newly registered redirect URI is accepted at once.
    let extra = "http://127.0.0.1:9999/cb";
    let r = env
        .control(
            Method::PUT,
            &format!("/apps/{CLIENT_ID}"),
            json!({"redirect_uris": [REDIRECT, extra]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let a = env
        .http
        .get(format!("{}/identity/connect/authorize", env.url))
        .query(&authorize_query("s", SCOPE, extra))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 200);
}

#[tokio::test]
async fn a_code_is_single_use_and_replaying_it_revokes_what_it_gave() {
    let env = start().await;
    let (tokens, code) = consent_and_exchange(&env, &[NZ]).await;
    let api = Api {
        env: &env,
        token: tokens.access.clone(),
        tenant: NZ,
    };
    assert_eq!(api.get("Organisation").await.status, 200);
    let again = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["error"], "invalid_grant");
    assert_eq!(
        api.get("Organisation").await.status,
        401,
        "the first exchange's tokens are revoked"
    );
}

async fn fresh_code(env: &Env) -> String {
    let query = authorize_query("s", SCOPE, REDIRECT);
    let consent = login(env, &query).await;
    let allowed = decide(env, &query, &consent, "allow", &[NZ]).await;
    get(&location_params(&allowed), "code").unwrap().to_string()
}

#[tokio::test]
async fn a_code_expires_after_five_minutes() {
    let env = start().await;
    let code = fresh_code(&env).await;
    env.advance(301).await;
    let a = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(a.body["error"], "invalid_grant");
}

#[tokio::test]
async fn pkce_verifier_must_match_the_challenge() {
    let env = start().await;
    let code = fresh_code(&env).await;
    let wrong = "another-verifier-that-is-long-enough-to-be-valid-0123456789abcdef";
    let a = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", wrong),
        ])
        .await;
    assert_eq!(a.body["error"], "invalid_grant");
    let missing = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .await;
    assert_eq!(missing.body["error"], "invalid_grant");
    // The code is bound to its redirect URI too.
    let other_redirect = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:1/cb"),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(other_redirect.body["error"], "invalid_grant");
    let right = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(
        right.status, 200,
        "failed attempts do not burn the code: {}",
        right.text
    );
}

#[tokio::test]
async fn token_endpoint_errors_are_in_oauth_form() {
    let env = start().await;
    let tokens = env.grant(None, None).await;
    let refresh = tokens.refresh.unwrap();

    // Client auth in the form body (xero-python) works as well as Basic.
    let body_auth = Answer::read(
        env.http
            .post(format!("{}/connect/token", env.url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body_auth.status, 200, "{}", body_auth.text);

    let bad_secret = Answer::read(
        env.http
            .post(format!("{}/connect/token", env.url))
            .basic_auth(CLIENT_ID, Some("wrong"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (
            bad_secret.status.as_u16(),
            bad_secret.body["error"].as_str()
        ),
        (400, Some("invalid_client"))
    );
    assert_eq!(
        env.token(&[("grant_type", "password")]).await.body["error"],
        "unsupported_grant_type"
    );
    assert_eq!(
        env.token(&[("grant_type", "authorization_code")])
            .await
            .body["error"],
        "invalid_request"
    );
    assert_eq!(env.token(&[]).await.body["error"], "invalid_request");
    let new_refresh = body_auth.body["refresh_token"].as_str().unwrap();
    let broader = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", new_refresh),
            ("scope", "accounting.transactions accounting.journals.read"),
        ])
        .await;
    assert_eq!(broader.body["error"], "invalid_scope");
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_has_a_grace_period() {
    let env = start().await;
    let first = env.grant(None, None).await.refresh.unwrap();
    let a = env.refresh(&first).await;
    assert_eq!(a.status, 200);
    let second = a.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first, "refresh tokens rotate on every use");

    // Within 30 minutes the rotated-out token still works, repeatedly.
    env.advance(20 * 60).await;
    assert_eq!(env.refresh(&first).await.status, 200);
    assert_eq!(env.refresh(&first).await.status, 200);
    // After the grace period it is dead; the current one still works.
    env.advance(11 * 60).await;
    let stale = env.refresh(&first).await;
    assert_eq!(
        (stale.status.as_u16(), stale.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(env.refresh(&second).await.status, 200);
}

#[tokio::test]
async fn an_unused_refresh_token_dies_after_sixty_days() {
    let env = start().await;
    let kept = env.grant(None, None).await.refresh.unwrap();
    let soon = env.grant(None, None).await.refresh.unwrap();
    env.advance(59 * 86_400).await;
    assert_eq!(env.refresh(&soon).await.status, 200);
    env.advance(86_400 + 1).await;
    assert_eq!(env.refresh(&kept).await.body["error"], "invalid_grant");
}

#[tokio::test]
async fn access_tokens_expire_after_thirty_minutes_with_xeros_401() {
    let env = start().await;
    let api = env.api(NZ).await;
    assert_eq!(api.get("Organisation").await.status, 200);
    env.advance(1800).await;
    let a = api.get("Organisation").await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["Title"], "Unauthorized");
    assert!(a.body["Detail"]
        .as_str()
        .unwrap()
        .starts_with("TokenExpired: token expired at"));
}

#[tokio::test]
async fn revocation_kills_the_refresh_token_its_grant_and_its_connections() {
    let env = start().await;
    let tokens = env.grant(Some(&[NZ]), None).await;
    let refresh = tokens.refresh.clone().unwrap();
    let r = env
        .http
        .post(format!("{}/connect/revocation", env.url))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.refresh(&refresh).await.body["error"], "invalid_grant");
    let api = Api {
        env: &env,
        token: tokens.access.clone(),
        tenant: NZ,
    };
    assert_eq!(api.get("Organisation").await.status, 401);
    let other = env.grant(Some(&[UK]), None).await;
    let conns = Answer::read(
        env.http
            .get(format!("{}/connections", env.url))
            .bearer_auth(&other.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ids: Vec<_> = conns
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tenantId"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!(UK.to_string())],
        "the revoked grant's connection is gone"
    );
}

#[tokio::test]
async fn connections_can_be_deleted_once_and_the_tenant_is_then_forbidden() {
    let env = start().await;
    let tokens = env.grant(None, None).await;
    // One SDK calls /Connections: the path is matched case-insensitively.
    let list = Answer::read(
        env.http
            .get(format!("{}/Connections", env.url))
            .bearer_auth(&tokens.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list.status, 200);
    let nz = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["tenantId"] == NZ.to_string())
        .unwrap()
        .clone();
    let id = nz["id"].as_str().unwrap();
    assert_ne!(id, NZ.to_string(), "a connection id is not the tenant id");
    let del = |id: String| {
        let env = &env;
        let token = tokens.access.clone();
        async move {
            env.http
                .delete(format!("{}/connections/{id}", env.url))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        del(NZ.to_string()).await,
        404,
        "deleting by tenant id is a 404"
    );
    assert_eq!(del(id.to_string()).await, 204);
    assert_eq!(del(id.to_string()).await, 404);
    let api = Api {
        env: &env,
        token: tokens.access.clone(),
        tenant: NZ,
    };
    let a = api.get("Organisation").await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body["Detail"], "AuthenticationUnsuccessful");
    let no_token = env
        .http
        .get(format!("{}/connections", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
}

#[tokio::test]
async fn an_app_made_since_march_2026_gets_granular_scopes_only() {
    let env = start().await;
    let made = env
        .control(
            Method::POST,
            "/apps",
            json!({"redirect_uris": [REDIRECT], "created_at": "2026-04-01", "name": "New till app"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let client_id = made.body["client_id"].as_str().unwrap().to_string();
    assert!(made.body["client_secret"].as_str().unwrap().len() >= 32);
    assert_eq!(made.body["certified"], false);
    assert_eq!(made.body["tier"], "starter");
    let ask = |scope: &str| {
        let mut q = authorize_query("s", scope, REDIRECT);
        q[1].1 = client_id.clone();
        q
    };
    let broad = Answer::read(
        env.http
            .get(format!("{}/identity/connect/authorize", env.url))
            .query(&ask(SCOPE))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let params = location_params(&broad);
    assert_eq!(
        get(&params, "error"),
        Some("invalid_scope"),
        "{}",
        broad.text
    );
    assert!(get(&params, "error_description")
        .unwrap()
        .contains("granular"));
    let granular = env
        .http
        .get(format!("{}/identity/connect/authorize", env.url))
        .query(&ask(
            "openid offline_access accounting.invoices accounting.payments accounting.contacts accounting.settings.read",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(granular.status(), 200, "the login page");
    // The seeded demo app predates the rule: its broad scope still works.
    let demo = env
        .http
        .get(format!("{}/identity/connect/authorize", env.url))
        .query(&authorize_query("s", SCOPE, REDIRECT))
        .send()
        .await
        .unwrap();
    assert_eq!(demo.status(), 200);
    // Tiers are Xero's names.
    let bad = env
        .control(
            Method::PUT,
            &format!("/apps/{client_id}"),
            json!({"tier": "gold"}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let certified = env
        .control(
            Method::PUT,
            &format!("/apps/{client_id}"),
            json!({"certified": true, "tier": "core"}),
        )
        .await;
    assert_eq!(certified.body["tier"], "core");
    assert_eq!(certified.body["certified"], true);
}

#[tokio::test]
async fn at_an_apps_connection_cap_the_consent_page_refuses_new_organisations_only() {
    let env = start().await;
    // The seeded app is uncertified: 25 organisations.
    let demo = env
        .control(Method::PUT, &format!("/apps/{CLIENT_ID}"), json!({}))
        .await;
    assert_eq!(demo.body["connection_cap"], 25, "{}", demo.text);
    // A certified Starter app may connect five.
    let made = env
        .control(
            Method::POST,
            "/apps",
            json!({"redirect_uris": [REDIRECT], "certified": true, "tier": "starter", "name": "Small till app"}),
        )
        .await;
    assert_eq!(made.body["connection_cap"], 5, "{}", made.text);
    let client_id = made.body["client_id"].as_str().unwrap().to_string();
    let mut tenants = vec![NZ, UK];
    for i in 0..4 {
        let t = env
            .control(
                Method::POST,
                "/tenants",
                json!({"name": format!("Shop {i}"), "country": "NZ"}),
            )
            .await;
        tenants.push(t.body["tenant_id"].as_str().unwrap().parse().unwrap());
    }
    let query = {
        let mut q = authorize_query("s", "offline_access accounting.invoices", REDIRECT);
        q[1].1 = client_id.clone();
        q
    };
    let consent = login(&env, &query).await;
    assert!(!consent.contains("limit of"), "below the cap: no refusal");
    let five = decide(&env, &query, &consent, "allow", &tenants[..5]).await;
    assert_eq!(five.status, 302, "{}", five.text);

    // At the cap: Xero's refusal on the page, the sixth organisation disabled, nothing redirected.
    let consent = login(&env, &query).await;
    assert!(consent.contains("has reached its limit of 5 connected organisations"));
    let sixth = tenants[5].to_string();
    let box_of = |page: &str, id: &str| {
        let at = page.find(&format!("value=\"{id}\"")).unwrap();
        page[at..].split('>').next().unwrap().to_string()
    };
    assert!(box_of(&consent, &sixth).contains("disabled"));
    assert!(!box_of(&consent, &NZ.to_string()).contains("disabled"));
    let refused = decide(&env, &query, &consent, "allow", &tenants[4..6]).await;
    assert_eq!(refused.status, 400);
    assert!(refused.header("location").is_none());
    assert!(refused.text.contains("has reached its limit of 5"));
    // One already connected may always be chosen again.
    let again = decide(&env, &query, &refused.text, "allow", &[NZ]).await;
    assert_eq!(again.status, 302, "{}", again.text);
    // Certified on a bigger tier, the sixth connects.
    env.control(
        Method::PUT,
        &format!("/apps/{client_id}"),
        json!({"tier": "core"}),
    )
    .await;
    let consent = login(&env, &query).await;
    let now = decide(&env, &query, &consent, "allow", &tenants[5..6]).await;
    assert_eq!(now.status, 302, "{}", now.text);
}

#[tokio::test]
async fn names_on_the_consent_page_are_text_never_markup() {
    let env = start().await;
    let made = env
        .control(
            Method::POST,
            "/tenants",
            json!({"name": "<script>alert('x')</script> & Co", "country": "NZ"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let consent = login(&env, &authorize_query("s", SCOPE, REDIRECT)).await;
    assert!(!consent.contains("<script>"), "{consent}");
    assert!(
        consent.contains("&#60;script&#62;") || consent.contains("&lt;script&gt;"),
        "{consent}"
    );
}

/// An OpenID client library that is not ours (`openidconnect`) meets the sandbox as Xero: it
/// discovers `https://identity.xero.com`, sends a person through the authorize page, exchanges the
/// code and verifies the ID token's RS256 signature against the JWKS the discovery names, and its
/// nonce. Its HTTP goes to the sandbox for every Xero host, as a hosts entry and a TLS terminator
/// would send it.
#[tokio::test]
async fn an_openid_client_that_is_not_ours_discovers_xero_completes_a_code_flow_and_verifies_the_id_token(
) {
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
    use openidconnect::{
        AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
        RedirectUrl, Scope, TokenResponse,
    };
    let env = start().await;
    let sandbox = env.url.clone();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let http = {
        let seen = seen.clone();
        move |request: openidconnect::HttpRequest| {
            let (client, sandbox, seen) = (plain.clone(), sandbox.clone(), seen.clone());
            async move {
                let url = url::Url::parse(&request.uri().to_string()).unwrap();
                let host = url.host_str().unwrap_or_default().to_string();
                assert!(
                    ["identity.xero.com", "login.xero.com", "api.xero.com"]
                        .contains(&host.as_str()),
                    "the client went to {host}"
                );
                seen.lock().unwrap().push(format!("{host}{}", url.path()));
                let to = format!(
                    "{sandbox}{}{}",
                    url.path(),
                    url.query().map(|q| format!("?{q}")).unwrap_or_default()
                );
                let mut r = client
                    .request(request.method().clone(), to)
                    .body(request.body().clone());
                for (k, v) in request.headers() {
                    r = r.header(k, v);
                }
                let answer = r.send().await?;
                let mut response = openidconnect::http::Response::builder().status(answer.status());
                for (k, v) in answer.headers() {
                    response = response.header(k, v);
                }
                let body = answer.bytes().await?.to_vec();
                Ok::<_, reqwest::Error>(response.body(body).unwrap())
            }
        }
    };
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new("https://identity.xero.com".into()).unwrap(),
        &http,
    )
    .await
    .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(CLIENT_ID.into()),
        Some(ClientSecret::new(CLIENT_SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .add_scope(Scope::new("accounting.transactions".into()))
        .set_pkce_challenge(challenge)
        .url();
    assert_eq!(authorize.host_str(), Some("login.xero.com"));

    // A person logs in and allows, through the sandbox's pages.
    let query: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    let consent = login(&env, &query).await;
    let allowed = decide(&env, &query, &consent, "allow", &[NZ]).await;
    assert_eq!(allowed.status, 302, "{}", allowed.text);
    let params = location_params(&allowed);
    assert_eq!(get(&params, "state"), Some(state.secret().as_str()));
    let code = get(&params, "code").unwrap().to_string();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("the ID token verifies: RS256 under a published kid, Xero's issuer, our nonce");
    assert_eq!(claims.issuer().as_str(), "https://identity.xero.com");
    assert_eq!(claims.email().map(|e| e.as_str()), Some(USER));
    // A nonce other than ours is refused.
    assert!(id_token
        .claims(&client.id_token_verifier(), &Nonce::new("another".into()))
        .is_err());
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&"identity.xero.com/.well-known/openid-configuration/jwks".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"identity.xero.com/connect/token".to_string()),
        "{seen:?}"
    );
}
