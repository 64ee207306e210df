//! The operator API behind the vendor's identity provider (the sandbox's, Okta-shaped): tokens
//! from it are taken, their groups or scopes decide the role, and every forged or misissued token
//! is refused with 401, leaking nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ledgerlink_e2e::*;
use ledgerlink_sandbox::harness::keys::{KeySet, DEMO_IDP_KEY};
use ledgerlink_sandbox::settings::{DEMO_OIDC_SCRIPTS_CLIENT_ID, DEMO_OIDC_SCRIPTS_CLIENT_SECRET};
use reqwest::Method;
use serde_json::{json, Value};

fn settings_with_operators() -> ledgerlink_proxy::Settings {
    let mut s = settings();
    s.operators.issuer = Some(SANDBOX_IDP.parse().unwrap());
    // These tests present many wrong tokens on purpose.
    s.admin.max_failures_per_address = 1_000;
    s
}

/// A script's token from the identity provider (client credentials) with `scope`.
async fn script_token(world: &World, scope: &str) -> String {
    let answer = reqwest::Client::new()
        .post(format!("{}/oauth2/default/v1/token", world.sandbox_url))
        .basic_auth(
            DEMO_OIDC_SCRIPTS_CLIENT_ID,
            Some(DEMO_OIDC_SCRIPTS_CLIENT_SECRET),
        )
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

async fn admin(world: &World, method: Method, path: &str, token: &str) -> Answer {
    Answer::read(
        reqwest::Client::new()
            .request(method, format!("{}{path}", world.proxy_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn issuer(world: &World) -> String {
    format!("{}/oauth2/default", world.sandbox_url)
}

/// Claims as the identity provider would sign them for a script, now.
fn claims(world: &World, now: i64) -> Value {
    json!({"ver": 1, "jti": "AT.test", "iss": issuer(world), "aud": "api://default",
           "iat": now, "exp": now + 3600, "cid": DEMO_OIDC_SCRIPTS_CLIENT_ID,
           "scp": ["ledgerlink-operators"], "sub": DEMO_OIDC_SCRIPTS_CLIENT_ID})
}

fn keys_fetched(requests: &[Value]) -> usize {
    requests
        .iter()
        .filter(|r| r["path"] == "/oauth2/default/v1/keys")
        .count()
}

#[tokio::test]
async fn the_identity_providers_tokens_open_the_operator_api_and_groups_decide_the_role() {
    let world = World::start_with(settings_with_operators()).await;
    let device = world.device("Till");
    world.pair(&device, &[NZ], None).await;
    let connection = world.connections().await[0].id;

    let viewer = script_token(&world, "ledgerlink-viewers").await;
    let list = admin(&world, Method::GET, "/admin/v1/connections", &viewer).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.json["connections"][0]["id"], connection.to_string());
    // A viewer reads but does not change.
    let refused = admin(
        &world,
        Method::DELETE,
        &format!("/admin/v1/connections/{connection}"),
        &viewer,
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.json["code"], "forbidden");

    let operator = script_token(&world, "ledgerlink-operators").await;
    let done = admin(
        &world,
        Method::DELETE,
        &format!("/admin/v1/connections/{connection}"),
        &operator,
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.json["status"], "disconnected");
}

#[tokio::test]
async fn forged_misissued_and_stale_tokens_are_all_refused_and_nothing_leaks() {
    let world = World::start_with(settings_with_operators()).await;
    let since = world.last_seq().await;
    let now = world.sandbox.shared().clock.now().timestamp();
    // The identity provider's own key (its demo key is public: a test may sign with it, which is
    // how each claim is shown to be checked on its own).
    let idp = KeySet::from_pem(DEMO_IDP_KEY);
    let good = idp.sign(&claims(&world, now));
    let works = admin(&world, Method::GET, "/admin/v1/connections", &good).await;
    assert_eq!(works.status, 200, "the control token works: {}", works.text);

    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let payload = b64(&claims(&world, now));
    let kid = idp.current_kid().to_string();
    // alg: none, unsigned.
    let none = format!(
        "{}.{payload}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid}))
    );
    // HS256 keyed with the issuer's public key (the classic confusion attack): the JWKS's key as
    // PEM and as its raw modulus, either way.
    let jwks = idp.jwks();
    let hs256 = |secret: &[u8]| {
        use hmac::{Hmac, Mac};
        let header = b64(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{header}.{payload}").as_bytes());
        format!(
            "{header}.{payload}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    };
    let public_pem = {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
        rsa::RsaPrivateKey::from_pkcs8_pem(DEMO_IDP_KEY)
            .unwrap()
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
    };
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_string();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims(&world, now);
        change(&mut c);
        idp.sign(&c)
    };
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let mut c = claims(&world, now);
        c["sub"] = json!("someone-else");
        format!("{}.{}.{}", parts[0], b64(&c), parts[2])
    };
    let cases: Vec<(&str, String)> = vec![
        ("alg none", none),
        (
            "HS256 keyed with the public key's PEM",
            hs256(public_pem.as_bytes()),
        ),
        ("HS256 keyed with the modulus", hs256(n.as_bytes())),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.example/oauth2/default")),
        ),
        ("wrong audience", with(&|c| c["aud"] = json!("api://other"))),
        (
            "expired beyond the leeway",
            with(&|c| c["exp"] = json!(now - 61)),
        ),
        (
            "not yet valid beyond the leeway",
            with(&|c| c["nbf"] = json!(now + 120)),
        ),
        ("tampered payload", tampered),
        ("not a JWT", "a.b".into()),
    ];
    for (what, token) in &cases {
        let a = admin(&world, Method::GET, "/admin/v1/connections", token).await;
        assert_eq!(a.status, 401, "{what}: {}", a.text);
        assert_eq!(a.json["code"], "unauthenticated", "{what}");
        assert!(
            !a.text.contains(token.as_str()),
            "{what}: the answer repeats the token"
        );
    }
    // Inside the leeway, expiry and nbf still pass.
    let late = with(&|c| c["exp"] = json!(now - 30));
    assert_eq!(
        admin(&world, Method::GET, "/admin/v1/connections", &late)
            .await
            .status,
        200
    );

    // Unknown kids: twenty tokens signed by a key the issuer never published make one fetch.
    let fetched_before = keys_fetched(&world.sandbox_requests(since).await);
    let mut stranger = idp.clone();
    stranger.rotate();
    let unknown = stranger.sign(&claims(&world, now));
    let answers = futures_util::future::join_all(
        (0..20).map(|_| admin(&world, Method::GET, "/admin/v1/connections", &unknown)),
    )
    .await;
    assert!(answers.iter().all(|a| a.status == 401));
    let fetched = keys_fetched(&world.sandbox_requests(since).await) - fetched_before;
    assert_eq!(
        fetched, 1,
        "twenty tokens with one unknown kid: one fetch of the keys"
    );

    // The issuer rotates its keys: a token under the new key is taken after one fetch.
    let rotated = world
        .control(Method::POST, "/idp/keys/rotate", json!({}))
        .await;
    assert_eq!(rotated.status, 200);
    let before = keys_fetched(&world.sandbox_requests(since).await);
    let fresh = script_token(&world, "ledgerlink-viewers").await;
    let a = admin(&world, Method::GET, "/admin/v1/connections", &fresh).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let again = admin(&world, Method::GET, "/admin/v1/connections", &fresh).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        keys_fetched(&world.sandbox_requests(since).await) - before,
        1,
        "the new key after exactly one fetch"
    );

    // Nothing of any token reached the proxy's log.
    let logs = logs::text();
    for (what, token) in cases
        .iter()
        .chain([("good", good.clone()), ("fresh", fresh)].iter())
    {
        let signature = token.rsplit('.').next().unwrap_or_default();
        assert!(
            signature.len() < 8 || !logs.contains(signature),
            "{what}: a token's signature is in the log"
        );
        assert!(
            !logs.contains(token.as_str()),
            "{what}: a token is in the log"
        );
    }
}

/// The operator's routes as support uses them: find a till's failed document by its contact, send
/// it again or discard it, list and unpair devices. A viewer finds but cannot act.
#[tokio::test]
async fn support_finds_a_failed_document_and_puts_it_right_and_a_viewer_cannot() {
    let world = World::start_with(settings_with_operators()).await;
    let (device, p, _) = crate::corrections::a_refused_invoice(&world).await;
    let viewer = script_token(&world, "ledgerlink-viewers").await;
    let operator = script_token(&world, "ledgerlink-operators").await;

    let found = admin(
        &world,
        Method::GET,
        "/admin/v1/documents?contact=walk&state=failed",
        &viewer,
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let docs = found.json["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{}", found.text);
    assert_eq!(docs[0]["device_id"], device.id.to_string());
    assert_eq!(docs[0]["document"]["client_ref"], "refused-1");
    let id = docs[0]["document"]["id"].as_str().unwrap().to_string();
    let none = admin(
        &world,
        Method::GET,
        "/admin/v1/documents?contact=nobody",
        &viewer,
    )
    .await;
    assert_eq!(none.json["documents"].as_array().unwrap().len(), 0);
    let bad = admin(
        &world,
        Method::GET,
        "/admin/v1/documents?state=lost",
        &viewer,
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text);

    // The connection shows the failure in its queue.
    let list = admin(&world, Method::GET, "/admin/v1/connections", &viewer).await;
    assert_eq!(
        list.json["connections"][0]["queue"]["failed"], 1,
        "{}",
        list.text
    );

    // A viewer cannot retry; an operator can (it fails again: the account code is still wrong).
    let retry = format!("/admin/v1/documents/{id}/retry");
    let refused = admin(&world, Method::POST, &retry, &viewer).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let retried = admin(&world, Method::POST, &retry, &operator).await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.json["state"], "queued");
    let docs = device
        .settle(&p.access, 1, std::time::Duration::from_secs(30))
        .await;
    assert_eq!(docs[0]["state"], "failed");
    // Discard needs a reason, and then puts it aside for good.
    let discard = |token: String, body: Value| {
        let url = format!("{}/admin/v1/documents/{id}/discard", world.proxy_url);
        async move {
            Answer::read(
                reqwest::Client::new()
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let without = discard(operator.clone(), json!({"reason": ""})).await;
    assert_eq!(without.status, 400, "{}", without.text);
    let gone = discard(
        operator.clone(),
        json!({"reason": "entered twice at the till"}),
    )
    .await;
    assert_eq!(gone.status, 200, "{}", gone.text);
    assert_eq!(gone.json["state"], "discarded");

    // Devices: listed with their organisation; unpaired by an operator, after which the till's
    // credentials no longer work.
    let listed = admin(&world, Method::GET, "/admin/v1/devices", &viewer).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["devices"][0]["id"], device.id.to_string());
    let unpair = format!("/admin/v1/devices/{}", device.id);
    assert_eq!(
        admin(&world, Method::DELETE, &unpair, &viewer).await.status,
        403
    );
    assert_eq!(
        admin(&world, Method::DELETE, &unpair, &operator)
            .await
            .status,
        204
    );
    let after = device
        .call(Method::GET, "/v1/connection", &p.access, None)
        .await;
    assert_eq!(after.status, 401, "{}", after.text);
    assert_eq!(
        admin(
            &world,
            Method::DELETE,
            "/admin/v1/devices/not-a-device",
            &operator
        )
        .await
        .status,
        404
    );
}

/// Three replicas answer the operator's connections list alike: queues are read from the
/// database, not from any replica's memory.
#[tokio::test]
async fn three_replicas_answer_the_connections_list_alike() {
    let world = World::start_on(settings_with_operators(), "postgres").await;
    let (device, p, _) = crate::corrections::a_refused_invoice(&world).await;
    device
        .push(
            "invoices",
            &p.access,
            json!([crate::push::invoice("fine-1", "Walk-in")]),
        )
        .await;
    device
        .settle(&p.access, 2, std::time::Duration::from_secs(30))
        .await;
    let (_b, b_url) = world.replica().await;
    let (_c, c_url) = world.replica().await;
    let token = script_token(&world, "ledgerlink-viewers").await;
    let mut answers = Vec::new();
    for url in [world.proxy_url.clone(), b_url, c_url] {
        let a = Answer::read(
            reqwest::Client::new()
                .get(format!("{url}/admin/v1/connections"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 200, "{url}: {}", a.text);
        answers.push(a.json);
    }
    assert_eq!(
        answers[0]["connections"][0]["queue"],
        json!({"failed": 1, "sent": 1})
    );
    assert!(answers[0]["connections"][0]["last_delivered_at"].is_string());
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
}

/// Every form's hidden fields on a page.
fn hidden(page: &str) -> Vec<(String, String)> {
    html::forms(page)
        .into_iter()
        .flat_map(|f| f.hidden)
        .collect()
}

/// A browser's way through the console's sign-in (cookies kept, redirects followed): the console
/// sends it to the identity provider, the person signs in, and the console shows the connections.
struct Browser {
    http: reqwest::Client,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
        }
    }

    /// Opens the console and signs in at the provider's page: the page the browser ends on.
    async fn sign_in(&self, world: &World, user: &str, password: &str) -> (String, String) {
        let page = self
            .http
            .get(format!("{}/console", world.proxy_url))
            .send()
            .await
            .unwrap();
        assert!(
            page.url()
                .path()
                .starts_with("/oauth2/default/v1/authorize"),
            "{}",
            page.url()
        );
        let html = page.text().await.unwrap();
        let mut form = hidden(&html);
        form.push(("username".into(), user.into()));
        form.push(("password".into(), password.into()));
        let landed = self
            .http
            .post(format!("{}/oauth2/default/v1/authorize", world.sandbox_url))
            .form(&form)
            .send()
            .await
            .unwrap();
        let url = landed.url().to_string();
        (url, landed.text().await.unwrap())
    }
}

#[tokio::test]
async fn an_operator_signs_in_to_the_console_sees_the_connections_and_signs_out() {
    let world = World::start_with(settings_with_operators()).await;
    let device = world.device("Till");
    world.pair(&device, &[NZ], None).await;
    let browser = Browser::new();
    let (url, page) = browser.sign_in(&world, "ops@ledgerlink.test", "ops").await;
    assert_eq!(url, format!("{}/console", world.proxy_url), "{page}");
    assert!(
        page.contains("Signed in as Olive Operator (operator)"),
        "{page}"
    );
    assert!(page.contains("Demo Company (NZ)"), "{page}");
    assert!(!page.contains("eyJ"), "no token reaches the browser");

    // Signing out needs the page's CSRF token.
    let forged = browser
        .http
        .post(format!("{}/console/logout", world.proxy_url))
        .form(&[("csrf", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let csrf = hidden(&page)
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .unwrap()
        .1;
    let out = browser
        .http
        .post(format!("{}/console/logout", world.proxy_url))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    // Signed out here and at the provider: back at the console, which asks to sign in again.
    assert!(
        out.url().path().starts_with("/oauth2/default/v1/authorize"),
        "{}",
        out.url()
    );
    assert!(out.text().await.unwrap().contains("Sign in"));
}

#[tokio::test]
async fn a_viewer_signed_in_to_the_console_reads_but_cannot_retry() {
    let world = World::start_with(settings_with_operators()).await;
    let (_device, _p, _) = crate::corrections::a_refused_invoice(&world).await;
    let browser = Browser::new();
    let (_, page) = browser
        .sign_in(&world, "viewer@ledgerlink.test", "viewer")
        .await;
    assert!(page.contains("(viewer)"), "{page}");
    assert!(page.contains("failed 1"), "{page}");
    let csrf = hidden(&page)
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .unwrap()
        .1;
    // The operator API takes the console's session: reading works, retrying is refused.
    let found = browser
        .http
        .get(format!(
            "{}/admin/v1/documents?state=failed",
            world.proxy_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), 200);
    let found: Value = found.json().await.unwrap();
    let id = found["documents"][0]["document"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let retry = browser
        .http
        .post(format!("{}/admin/v1/documents/{id}/retry", world.proxy_url))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 403);

    // An operator's session may, with its CSRF token, and not without it.
    let ops = Browser::new();
    let (_, page) = ops.sign_in(&world, "ops@ledgerlink.test", "ops").await;
    let csrf = hidden(&page)
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .unwrap()
        .1;
    let url = format!("{}/admin/v1/documents/{id}/retry", world.proxy_url);
    assert_eq!(ops.http.post(&url).send().await.unwrap().status(), 403);
    let done = ops
        .http
        .post(&url)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
}

/// A real browser (Debian's Chromium, through chromedriver, headless) signs in to the console as
/// `ops` through the sandbox's identity provider, sees the connections page, and signs out.
#[tokio::test]
async fn chromium_signs_in_to_the_console_as_ops_and_out_again() {
    use fantoccini::{ClientBuilder, Locator};
    let world = World::start_with(settings_with_operators()).await;
    let device = world.device("Front desk");
    world.pair(&device, &[NZ], None).await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    struct Driver(std::process::Child);
    impl Drop for Driver {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _driver = Driver(
        std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "chromedriver starts (apt-get install chromium-driver; ./scripts/test installs it)",
            ),
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not listen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let profile = world.db.parent().unwrap().join("chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox",
            "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,800",
            format!("--user-data-dir={}", profile.display())]}),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with Chromium");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = |name: &'static str| {
        let (c, shots) = (c.clone(), shots.clone());
        async move {
            if let Ok(png) = c.screenshot().await {
                let _ = std::fs::write(shots.join(format!("{name}.png")), png);
            }
        }
    };

    c.goto(&format!("{}/console", world.proxy_url))
        .await
        .unwrap();
    // The identity provider's sign-in page.
    let username = c
        .wait()
        .for_element(Locator::Css("#username"))
        .await
        .unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .starts_with(&format!(
            "{}/oauth2/default/v1/authorize",
            world.sandbox_url
        )));
    shot("1-sign-in").await;
    username.send_keys("ops@ledgerlink.test").await.unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys("ops")
        .await
        .unwrap();
    c.find(Locator::Css("#signin"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Back at the console, signed in.
    let table = c
        .wait()
        .for_element(Locator::Css("#connections"))
        .await
        .unwrap();
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{}/console", world.proxy_url)
    );
    let text = table.text().await.unwrap();
    assert!(
        text.contains("Demo Company (NZ)") && text.contains("connected"),
        "{text}"
    );
    let who = c
        .find(Locator::Css("#who"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(who, "Signed in as Olive Operator (operator)");
    shot("2-connections").await;
    // No token in what the browser holds: its cookies are the session's id only.
    let cookies = c.get_all_cookies().await.unwrap();
    assert!(
        cookies.iter().all(|k| !k.value().starts_with("eyJ")),
        "{cookies:?}"
    );
    assert!(cookies
        .iter()
        .any(|k| k.name() == "ll_console" && k.http_only() == Some(true)));

    c.find(Locator::Css("#signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Signed out here and at the provider: the console asks for a sign-in again.
    c.wait()
        .for_element(Locator::Css("#username"))
        .await
        .unwrap();
    shot("3-signed-out").await;
    assert!(c
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .all(|k| k.name() != "ll_console"));
    c.close().await.unwrap();
}
