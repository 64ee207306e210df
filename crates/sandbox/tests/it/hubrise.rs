//! HubRise, as a client of HubRise sees it: the authorize pages, the token and revocation
//! endpoints, the location and its orders, the limits, and every refusal HubRise makes, in its
//! `{error_type, message, errors[]}` shape.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

const CLIENT: &str = ledgerlink_sandbox::settings::DEMO_HUBRISE_CLIENT_ID;
const SECRET: &str = ledgerlink_sandbox::settings::DEMO_HUBRISE_CLIENT_SECRET;
const CALLBACK: &str = ledgerlink_sandbox::settings::DEMO_HUBRISE_REDIRECT_URI;
const PARIS: &str = "b7m3k-0";
const LYON: &str = "b7m3k-1";
const ORDERS: &str = "location[orders.write]";

/// A HubRise client of a sandbox (in-process, or a process of its own).
trait Hub {
    fn base(&self) -> &str;
    fn client(&self) -> &reqwest::Client;

    async fn hubrise(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut r = self
            .client()
            .request(method, format!("{}/v1{path}", self.base()))
            .header("x-access-token", token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        Answer::read(r.send().await.unwrap()).await
    }

    /// Logs in on the authorize page and answers the consent page.
    async fn consent_page(&self, scope: &str) -> Answer {
        let mut form = authorize_query(scope);
        form.extend([
            ("action", "login".to_string()),
            ("email", USER.to_string()),
            ("password", "demo".to_string()),
        ]);
        let r = self
            .client()
            .post(format!("{}/oauth2/v1/authorize", self.base()))
            .form(&form)
            .send()
            .await
            .unwrap();
        Answer::read(r).await
    }

    /// Through the pages to `location`: the redirect's `Location`.
    async fn allow(&self, scope: &str, location: &str, action: &str) -> String {
        let page = self.consent_page(scope).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let ticket = page
            .text
            .split("name=\"ticket\" value=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .expect("the consent page carries a ticket")
            .to_string();
        let mut form = authorize_query(scope);
        form.extend([
            ("ticket", ticket),
            ("location_id", location.to_string()),
            ("action", action.to_string()),
        ]);
        let r = self
            .client()
            .post(format!("{}/oauth2/v1/authorize", self.base()))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        r.headers()["location"].to_str().unwrap().to_string()
    }

    async fn code(&self, scope: &str, location: &str) -> String {
        let back = self.allow(scope, location, "allow").await;
        assert!(back.starts_with(CALLBACK), "{back}");
        let url = url::Url::parse(&back).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "s-123");
        q["code"].clone()
    }

    async fn exchange(&self, code: &str, secret: &str) -> Answer {
        let r = self
            .client()
            .post(format!("{}/oauth2/v1/token", self.base()))
            .basic_auth(CLIENT, Some(secret))
            .form(&[("code", code)])
            .send()
            .await
            .unwrap();
        Answer::read(r).await
    }

    async fn connect(&self, scope: &str, location: &str) -> String {
        let code = self.code(scope, location).await;
        let t = self.exchange(&code, SECRET).await;
        assert_eq!(t.status, 200, "{}", t.text);
        t.body["access_token"].as_str().unwrap().to_string()
    }
}

impl Hub for Env {
    fn base(&self) -> &str {
        &self.url
    }
    fn client(&self) -> &reqwest::Client {
        &self.http
    }
}

/// A sandbox running as a process of its own.
struct Remote {
    url: String,
    http: reqwest::Client,
}

impl Hub for Remote {
    fn base(&self) -> &str {
        &self.url
    }
    fn client(&self) -> &reqwest::Client {
        &self.http
    }
}

/// The authorize page's query for `scope`.
fn authorize_query(scope: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", CLIENT.into()),
        ("redirect_uri", CALLBACK.into()),
        ("scope", scope.into()),
        ("state", "s-123".into()),
    ]
}

fn order(private_ref: &str) -> Value {
    json!({"status": "completed", "private_ref": private_ref, "service_type": "eat_in",
        "items": [{"product_name": "Croque monsieur", "price": "8.90 EUR", "quantity": "2", "tax_rate": "10.0",
                   "options": [{"name": "Extra cheese", "price": "1.00 EUR"}]}],
        "charges": [{"name": "Service", "price": "2.00 EUR"}],
        "discounts": [{"name": "Loyalty", "price_off": "1.50 EUR"}],
        "payments": [{"name": "Card", "amount": "20.30 EUR"}]})
}

fn assert_refusal(a: &Answer, status: u16, error_type: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.body["error_type"], error_type, "{}", a.text);
    assert!(a.body["message"].is_string(), "{}", a.text);
}

/// The fields a 422 names.
fn fields(a: &Answer) -> Vec<String> {
    assert_refusal(a, 422, "unprocessable_entity");
    a.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_location_is_connected_through_the_pages_and_its_token_never_changes() {
    let env = start().await;
    let page = env
        .http
        .get(format!("{}/oauth2/v1/authorize", env.url))
        .query(&authorize_query(ORDERS))
        .send()
        .await
        .unwrap();
    let page = Answer::read(page).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Log in to HubRise"), "{}", page.text);
    assert!(!page.text.contains("<script"), "usable without JavaScript");
    let consent = env.consent_page(ORDERS).await;
    assert!(
        consent.text.contains("Demo Bistro – Paris"),
        "{}",
        consent.text
    );
    assert!(consent.text.contains("Demo Bistro – Lyon"));

    let code = env.code(ORDERS, PARIS).await;
    let t = env.exchange(&code, SECRET).await;
    assert_eq!(t.status, 200, "{}", t.text);
    for field in [
        "access_token",
        "account_id",
        "location_id",
        "account_name",
        "location_name",
    ] {
        assert!(t.body[field].is_string(), "{field}: {}", t.text);
    }
    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["location_id"], PARIS);
    assert_eq!(t.body["location_name"], "Paris");
    assert!(t.body.get("refresh_token").is_none() && t.body.get("expires_in").is_none());
    let token = t.body["access_token"].as_str().unwrap();
    let location = env.hubrise(Method::GET, "/location", token, None).await;
    assert_eq!(location.status, 200, "{}", location.text);
    assert_eq!(location.body["currency"], "EUR");
    assert_eq!(location.body["name"], "Paris");

    // The same client and location get the same token again; another location its own.
    assert_eq!(env.connect(ORDERS, PARIS).await, token);
    assert_ne!(env.connect(ORDERS, LYON).await, token);
    // A year on, it still answers: HubRise's tokens never expire.
    env.control(
        Method::POST,
        "/clock",
        json!({"advance_seconds": 365 * 86_400}),
    )
    .await;
    let later = env.hubrise(Method::GET, "/location", token, None).await;
    assert_eq!(later.status, 200);
}

#[tokio::test]
async fn deny_goes_back_with_access_denied_and_a_bad_request_never_leaves_hubrise() {
    let env = start().await;
    let back = env.allow(ORDERS, PARIS, "deny").await;
    assert!(
        back.contains("error=access_denied") && back.contains("state=s-123"),
        "{back}"
    );
    for (name, value) in [
        ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
        ("client_id", "someone-else"),
        ("scope", "location[orders.delete]"),
    ] {
        let mut q = authorize_query(ORDERS);
        q.retain(|(k, _)| *k != name);
        q.push((name, value.into()));
        let r = env
            .http
            .get(format!("{}/oauth2/v1/authorize", env.url))
            .query(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{name}");
        assert!(r.headers().get("location").is_none(), "{name}: no redirect");
    }
}

#[tokio::test]
async fn codes_are_single_use_live_ten_minutes_and_need_the_clients_credentials() {
    let env = start().await;
    let code = env.code(ORDERS, PARIS).await;
    let wrong = env.exchange(&code, "not-the-secret").await;
    assert_refusal(&wrong, 401, "unauthorized");
    assert_eq!(env.exchange(&code, SECRET).await.status, 200);
    assert_refusal(&env.exchange(&code, SECRET).await, 400, "bad_request");

    let late = env.code(ORDERS, PARIS).await;
    env.control(Method::POST, "/clock", json!({"advance_seconds": 601}))
        .await;
    assert_refusal(&env.exchange(&late, SECRET).await, 400, "bad_request");

    // The client in the body: the older way, still accepted.
    let code = env.code(ORDERS, PARIS).await;
    let r = env
        .http
        .post(format!("{}/oauth2/v1/token", env.url))
        .form(&[
            ("code", code.as_str()),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_order_gets_ids_a_total_and_is_found_again_by_its_private_ref() {
    let env = start().await;
    let token = env.connect(ORDERS, PARIS).await;
    let made = env
        .hubrise(
            Method::POST,
            "/location/orders",
            &token,
            Some(order("LL-a1")),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    let id = made.body["id"].as_str().unwrap().to_string();
    // (8.90 + 1.00) × 2 + 2.00 − 1.50
    assert_eq!(made.body["total"], "20.30 EUR");
    assert_eq!(made.body["location_id"], PARIS);
    assert!(
        made.body["created_at"]
            .as_str()
            .unwrap()
            .ends_with("+01:00"),
        "{}",
        made.body["created_at"]
    );
    for list in ["items", "charges", "payments", "discounts"] {
        assert!(made.body[list][0]["id"].is_string(), "{list}");
    }
    // No idempotency key: the same order sent again is a second order.
    let again = env
        .hubrise(
            Method::POST,
            &format!("/locations/{PARIS}/orders"),
            &token,
            Some(order("LL-a1")),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_ne!(again.body["id"], made.body["id"]);

    let one = env
        .hubrise(Method::GET, &format!("/location/orders/{id}"), &token, None)
        .await;
    assert_eq!(one.body, made.body);
    let found = env
        .hubrise(
            Method::GET,
            "/location/orders?private_ref=LL-a1",
            &token,
            None,
        )
        .await;
    assert_eq!(found.body.as_array().unwrap().len(), 2);
    let none = env
        .hubrise(
            Method::GET,
            "/location/orders?private_ref=LL-zz",
            &token,
            None,
        )
        .await;
    assert_eq!(none.body, json!([]));

    let cancelled = env
        .hubrise(
            Method::PATCH,
            &format!("/location/orders/{id}"),
            &token,
            Some(json!({"status": "cancelled"})),
        )
        .await;
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.text);
    let by_status = env
        .hubrise(
            Method::GET,
            "/location/orders?status=cancelled",
            &token,
            None,
        )
        .await;
    assert_eq!(by_status.body.as_array().unwrap().len(), 1);
    let edit = env
        .hubrise(
            Method::PATCH,
            &format!("/location/orders/{id}"),
            &token,
            Some(json!({"items": []})),
        )
        .await;
    assert_eq!(fields(&edit), ["items"]);

    // Lyon's token does not reach Paris's orders.
    let lyon = env.connect(ORDERS, LYON).await;
    let elsewhere = env
        .hubrise(
            Method::GET,
            &format!("/locations/{PARIS}/orders/{id}"),
            &lyon,
            None,
        )
        .await;
    assert_refusal(&elsewhere, 403, "forbidden");
    let missing = env
        .hubrise(Method::GET, &format!("/location/orders/{id}"), &lyon, None)
        .await;
    assert_refusal(&missing, 404, "not_found");
}

#[tokio::test]
async fn lists_page_with_x_cursor_next() {
    let env = start().await;
    let token = env.connect(ORDERS, PARIS).await;
    for i in 0..3 {
        let made = env
            .hubrise(
                Method::POST,
                "/location/orders",
                &token,
                Some(order(&format!("p{i}"))),
            )
            .await;
        assert_eq!(made.status, 200);
    }
    let first = env
        .hubrise(Method::GET, "/location/orders?count=2", &token, None)
        .await;
    assert_eq!(first.body.as_array().unwrap().len(), 2);
    assert_eq!(first.body[0]["private_ref"], "p2", "newest first");
    let cursor = first
        .header("x-cursor-next")
        .expect("a next page")
        .to_string();
    let second = env
        .hubrise(
            Method::GET,
            &format!("/location/orders?count=2&cursor={cursor}"),
            &token,
            None,
        )
        .await;
    assert_eq!(second.body.as_array().unwrap().len(), 1);
    assert!(second.header("x-cursor-next").is_none());
    let too_many = env
        .hubrise(Method::GET, "/location/orders?count=101", &token, None)
        .await;
    assert_eq!(fields(&too_many), ["count"]);
}

#[tokio::test]
async fn hubrise_refuses_what_hubrise_refuses() {
    let env = start().await;
    let token = env.connect(ORDERS, PARIS).await;
    let refused = |change: fn(&mut Value)| {
        let mut o = order("bad");
        change(&mut o);
        o
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            refused(|o| drop(o.as_object_mut().unwrap().remove("status"))),
            "status",
        ),
        (refused(|o| o["status"] = json!("eaten")), "status"),
        (
            refused(|o| o["items"][0]["price"] = json!("8.9 EUR")),
            "items[0].price",
        ),
        (
            refused(|o| o["items"][0]["price"] = json!(8.9)),
            "items[0].price",
        ),
        (
            refused(|o| o["payments"][0]["amount"] = json!("20.30 GBP")),
            "payments[0].amount",
        ),
        (
            refused(|o| o["items"][0]["quantity"] = json!(2)),
            "items[0].quantity",
        ),
        (
            refused(|o| o["items"][0]["tax_rate"] = json!(10.0)),
            "items[0].tax_rate",
        ),
        (
            refused(|o| o["charges"][0]["price"] = json!("2 EUR")),
            "charges[0].price",
        ),
        (
            refused(|o| o["service_type"] = json!("drive_through")),
            "service_type",
        ),
    ];
    for (body, field) in cases {
        let a = env
            .hubrise(Method::POST, "/location/orders", &token, Some(body))
            .await;
        assert_eq!(fields(&a), [field], "{}", a.text);
    }
    let all = env
        .control(
            Method::GET,
            &format!("/hubrise/orders?location_id={PARIS}"),
            json!({}),
        )
        .await;
    assert_eq!(all.body["orders"], json!([]), "nothing refused was kept");

    // A scope that does not cover the call.
    let catalog = env.connect("location[catalog.read]", PARIS).await;
    let a = env
        .hubrise(Method::POST, "/location/orders", &catalog, Some(order("x")))
        .await;
    assert_refusal(&a, 403, "forbidden");
    let a = env
        .hubrise(Method::GET, "/location/orders", &catalog, None)
        .await;
    assert_refusal(&a, 403, "forbidden");
    let read_only = env.connect("location[orders.read]", PARIS).await;
    let a = env
        .hubrise(
            Method::POST,
            "/location/orders",
            &read_only,
            Some(order("x")),
        )
        .await;
    assert_refusal(&a, 403, "forbidden");
    assert_eq!(
        env.hubrise(Method::GET, "/location/orders", &read_only, None)
            .await
            .status,
        200
    );
    // No token, or one HubRise never gave.
    assert_refusal(
        &env.hubrise(Method::GET, "/location", "", None).await,
        401,
        "unauthorized",
    );
    assert_refusal(
        &env.hubrise(Method::GET, "/location", "made-up", None).await,
        401,
        "unauthorized",
    );
}

#[tokio::test]
async fn the_eleventh_list_in_a_minute_waits_for_the_next_and_limits_scale() {
    let env = start().await;
    let token = env.connect(ORDERS, PARIS).await;
    // Start at a minute's beginning so all eleven fall in one window.
    let now = env.control(Method::GET, "/clock", json!({})).await;
    let t = chrono::DateTime::parse_from_rfc3339(now.body["now"].as_str().unwrap()).unwrap();
    let into_minute = t.timestamp().rem_euclid(60);
    env.control(
        Method::POST,
        "/clock",
        json!({"advance_seconds": 60 - into_minute}),
    )
    .await;
    for i in 0..10 {
        let a = env
            .hubrise(Method::GET, "/location/orders", &token, None)
            .await;
        assert_eq!(a.status, 200, "list {i}: {}", a.text);
    }
    let eleventh = env
        .hubrise(Method::GET, "/location/orders", &token, None)
        .await;
    assert_refusal(&eleventh, 429, "too_many_requests");
    let wait: i64 = eleventh.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Light calls still go; the next minute lists again.
    assert_eq!(
        env.hubrise(Method::GET, "/location", &token, None)
            .await
            .status,
        200
    );
    env.control(Method::POST, "/clock", json!({"advance_seconds": wait}))
        .await;
    assert_eq!(
        env.hubrise(Method::GET, "/location/orders", &token, None)
            .await
            .status,
        200
    );

    // Scaled: three calls a 2-second "minute" (ten calls in a row cross at most one boundary,
    // so one window sees more than three).
    let l = env
        .control(
            Method::PUT,
            "/hubrise/limits",
            json!({"per_minute": 3, "minute_seconds": 2}),
        )
        .await;
    assert_eq!(l.body["per_minute"], 3, "{}", l.text);
    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.push(
            env.hubrise(Method::GET, "/location", &token, None)
                .await
                .status
                .as_u16(),
        );
    }
    assert!(answers.contains(&429), "{answers:?}");
    let bad = env
        .control(Method::PUT, "/hubrise/limits", json!({"per_minut": 3}))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

#[tokio::test]
async fn a_revoked_token_answers_401_and_requests_are_logged_as_hubrises() {
    let env = start().await;
    let since = env.control(Method::GET, "/requests", json!({})).await;
    let since = since.body["requests"].as_array().map_or(0, Vec::len);
    let token = env.connect(ORDERS, PARIS).await;
    let wrong = env
        .http
        .post(format!("{}/oauth2/v1/revoke", env.url))
        .basic_auth(CLIENT, Some("nope"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let r = env
        .http
        .post(format!("{}/oauth2/v1/revoke", env.url))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_refusal(
        &env.hubrise(Method::GET, "/location", &token, None).await,
        401,
        "unauthorized",
    );
    // Connecting again gives a new token; a user revoking it in HubRise ends that one too.
    let again = env.connect(ORDERS, PARIS).await;
    assert_ne!(again, token);
    let revoked = env
        .control(
            Method::POST,
            "/hubrise/tokens/revoke",
            json!({"location_id": PARIS}),
        )
        .await;
    assert_eq!(revoked.body["revoked"], 1, "{}", revoked.text);
    assert_eq!(
        env.hubrise(Method::GET, "/location", &again, None)
            .await
            .status,
        401
    );

    let log = env.control(Method::GET, "/requests", json!({})).await;
    let ours: Vec<&Value> = log.body["requests"].as_array().unwrap()[since..]
        .iter()
        .collect();
    assert!(!ours.is_empty());
    for entry in ours {
        assert_eq!(entry["provider"], "hubrise", "{entry}");
        assert!(
            !entry.to_string().contains(SECRET),
            "the client secret is never logged"
        );
    }
}

#[tokio::test]
async fn a_state_file_keeps_hubrises_tokens_and_orders_across_a_kill_9() {
    let dir = std::env::temp_dir().join(format!("sandbox-hubrise-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (url, first) = crate::binary::with_state(&file);
    let hub = Remote { url, http };
    let token = hub.connect(ORDERS, PARIS).await;
    let made = hub
        .hubrise(
            Method::POST,
            "/location/orders",
            &token,
            Some(order("kept")),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    drop(first); // kill -9
    let (url, _second) = crate::binary::with_state(&file);
    let hub = Remote { url, ..hub };
    let found = hub
        .hubrise(
            Method::GET,
            "/location/orders?private_ref=kept",
            &token,
            None,
        )
        .await;
    assert_eq!(found.status, 200, "the token still works: {}", found.text);
    assert_eq!(found.body[0]["id"], made.body["id"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A callback receiver on 127.0.0.1:0: answers `answers` in turn (the last one from then on) and
/// hands over each post as (body, whether the signature is the client secret's, when).
async fn callback_receiver(
    answers: Vec<u16>,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(Value, bool, std::time::Instant)>,
) {
    use axum::http::HeaderMap;
    use hmac::{Hmac, Mac};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hubrise",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (tx, seen, answers) = (tx.clone(), seen.clone(), answers.clone());
            async move {
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(&body);
                let expected = hex::encode(mac.finalize().into_bytes());
                let good = headers
                    .get("x-hubrise-hmac-sha256")
                    .and_then(|v| v.to_str().ok())
                    == Some(expected.as_str());
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = tx.send((body, good, std::time::Instant::now()));
                let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let status = answers[n.min(answers.len() - 1)];
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hubrise", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

async fn next_post(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(Value, bool, std::time::Instant)>,
) -> (Value, bool, std::time::Instant) {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("a callback arrives within 10 s")
        .expect("receiver alive")
}

#[tokio::test]
async fn an_order_changed_by_someone_else_reaches_the_callback_signed_and_is_retried_until_taken() {
    let env = start().await;
    // A "minute" of one second: the retries come a second, then two, after the first post.
    env.control(Method::PUT, "/hubrise/limits", json!({"minute_seconds": 1}))
        .await;
    let token = env.connect(ORDERS, PARIS).await;
    let (url, mut rx) = callback_receiver(vec![500, 503, 200]).await;
    let set = env
        .hubrise(
            Method::POST,
            "/callback",
            &token,
            Some(json!({"url": url, "events": {"order": ["create", "update"]}})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    let read = env.hubrise(Method::GET, "/callback", &token, None).await;
    assert_eq!(read.body["url"], url.as_str(), "{}", read.text);
    assert_eq!(read.body["events"]["order"], json!(["create", "update"]));

    // Our own order: no event (a client never hears of what it did itself).
    let made = env
        .hubrise(
            Method::POST,
            "/location/orders",
            &token,
            Some(order("ours-1")),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    let id = made.body["id"].as_str().unwrap().to_string();
    // Cancelled in HubRise's back office.
    let changed = env
        .control(
            Method::POST,
            &format!("/hubrise/orders/{id}/status"),
            json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);

    let (first, good, t1) = next_post(&mut rx).await;
    assert!(good, "signed with the client secret, in hex");
    assert_eq!(first["resource_type"], "order");
    assert_eq!(first["event_type"], "update");
    assert_eq!(first["order_id"], id.as_str());
    assert_eq!(first["location_id"], PARIS);
    assert_eq!(first["account_id"], "b7m3k");
    assert_eq!(first["previous_state"]["status"], "completed");
    assert_eq!(first["new_state"]["status"], "cancelled");
    assert!(
        first["created_at"].as_str().unwrap().ends_with("+01:00")
            || first["created_at"].as_str().unwrap().ends_with("+02:00")
    );
    let (second, _, t2) = next_post(&mut rx).await;
    let (third, _, t3) = next_post(&mut rx).await;
    assert_eq!(second["id"], first["id"], "a retry is the same event");
    assert_eq!(third["id"], first["id"]);
    assert!(
        t2 - t1 >= std::time::Duration::from_millis(900),
        "{:?}",
        t2 - t1
    );
    assert!(
        t3 - t2 >= std::time::Duration::from_millis(1_900),
        "{:?}",
        t3 - t2
    );

    // Taken: no longer held, and the attempts are on record.
    let view = env
        .control(Method::GET, "/hubrise/callbacks", json!({}))
        .await;
    let attempts = view.body["attempts"].as_array().unwrap();
    let statuses: Vec<_> = attempts
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 503, 200], "{}", view.text);
    assert_eq!(attempts[2]["acknowledged"], true);
    let held = env
        .hubrise(Method::GET, "/callback/events", &token, None)
        .await;
    assert_eq!(held.body, json!([]), "{}", held.text);
    // Nothing more comes.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(1_500), rx.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_404_acknowledges_and_a_passive_callback_is_polled_then_deleted() {
    let env = start().await;
    let token = env.connect(ORDERS, PARIS).await;
    // Any answer from 200 to 499 acknowledges.
    let (url, mut rx) = callback_receiver(vec![404]).await;
    env.hubrise(
        Method::POST,
        "/callback",
        &token,
        Some(json!({"url": url, "events": {"order": ["update"]}})),
    )
    .await;
    let made = env
        .hubrise(
            Method::POST,
            "/location/orders",
            &token,
            Some(order("ours-2")),
        )
        .await;
    let id = made.body["id"].as_str().unwrap().to_string();
    let status = |s: &str| json!({"status": s});
    env.control(
        Method::POST,
        &format!("/hubrise/orders/{id}/status"),
        status("accepted"),
    )
    .await;
    next_post(&mut rx).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let view = env
        .control(Method::GET, "/hubrise/callbacks", json!({}))
        .await;
    assert_eq!(
        view.body["attempts"].as_array().unwrap().len(),
        1,
        "{}",
        view.text
    );
    assert_eq!(view.body["events"], json!([]), "{}", view.text);

    // Passive: recorded, polled, deleted.
    let passive = env
        .hubrise(
            Method::POST,
            "/callback",
            &token,
            Some(json!({"url": null, "events": {"order": ["create", "update"]}})),
        )
        .await;
    assert_eq!(passive.status, 200, "{}", passive.text);
    assert_eq!(passive.body["url"], Value::Null);
    env.control(
        Method::POST,
        &format!("/hubrise/orders/{id}/status"),
        status("in_delivery"),
    )
    .await;
    let held = env
        .hubrise(Method::GET, "/callback/events", &token, None)
        .await;
    let events = held.body.as_array().unwrap();
    assert_eq!(events.len(), 1, "{}", held.text);
    assert_eq!(events[0]["new_state"]["status"], "in_delivery");
    let event_id = events[0]["id"].as_str().unwrap();
    let one = env
        .hubrise(
            Method::GET,
            &format!("/callback/events/{event_id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(one.body["id"], event_id);
    let gone = env
        .hubrise(
            Method::DELETE,
            &format!("/callback/events/{event_id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(gone.status, 200, "{}", gone.text);
    let held = env
        .hubrise(Method::GET, "/callback/events", &token, None)
        .await;
    assert_eq!(held.body, json!([]));
    let again = env
        .hubrise(
            Method::GET,
            &format!("/callback/events/{event_id}"),
            &token,
            None,
        )
        .await;
    assert_refusal(&again, 404, "not_found");

    // Removed: nothing is set, nothing is held.
    let removed = env.hubrise(Method::DELETE, "/callback", &token, None).await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_refusal(
        &env.hubrise(Method::GET, "/callback", &token, None).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn hubrise_refuses_a_callback_it_would_refuse() {
    let env = start().await;
    let token = env.connect(ORDERS, PARIS).await;
    let post = |body: Value| env.hubrise(Method::POST, "/callback", &token, Some(body));
    assert_eq!(
        fields(&post(json!({"url": "http://127.0.0.1:9/x"})).await),
        ["events"]
    );
    assert_eq!(
        fields(&post(json!({"url": "ftp://x", "events": {"order": ["create"]}})).await),
        ["url"]
    );
    assert_eq!(
        fields(&post(json!({"events": {"order": ["delete"]}})).await),
        ["events.order"]
    );
    assert_eq!(
        fields(&post(json!({"events": {"orders": ["create"]}})).await),
        ["events.orders"]
    );
    assert_eq!(
        fields(&post(json!({"events": {"order": ["create"]}, "secret": "x"})).await),
        ["secret"]
    );
    // The scope covers orders only.
    assert_refusal(
        &post(json!({"events": {"customer": ["create"]}})).await,
        403,
        "forbidden",
    );
    assert_refusal(
        &env.hubrise(Method::GET, "/callback", &token, None).await,
        404,
        "not_found",
    );
    assert_refusal(
        &env.hubrise(Method::GET, "/callback", "not-a-token", None)
            .await,
        401,
        "unauthorized",
    );
}

#[tokio::test]
async fn limits_and_faults_take_a_provider() {
    let env = start().await;
    let token = env.connect(ORDERS, PARIS).await;
    let set = env
        .control(
            Method::PUT,
            "/limits",
            json!({"provider": "hubrise", "heavy_per_minute": 1}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["heavy_per_minute"], 1);
    let read = env
        .control(Method::GET, "/limits?provider=hubrise", json!({}))
        .await;
    assert_eq!(read.body["heavy_per_minute"], 1, "{}", read.text);
    assert_eq!(read.body["per_minute"], 500);
    // Xero's are untouched, and still the default.
    let xero = env.control(Method::GET, "/limits", json!({})).await;
    assert_eq!(xero.body["tenant_per_window"], 60, "{}", xero.text);
    for bad in [
        json!({"provider": "myob", "per_minute": 1}),
        json!({"provider": 7}),
        json!({"provider": "hubrise", "tenant_per_window": 1}),
    ] {
        let refused = env.control(Method::PUT, "/limits", bad).await;
        assert_eq!(refused.status, 400, "{}", refused.text);
    }

    // A fault for HubRise leaves Xero alone.
    let added = env
        .control(
            Method::POST,
            "/faults",
            json!({"provider": "hubrise", "status": 503}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let hub = env.hubrise(Method::GET, "/location", &token, None).await;
    assert_eq!(hub.status, 503);
    let api = env.api(NZ).await;
    assert_eq!(api.get("Organisation").await.status, 200);
    let wrong = env
        .control(
            Method::POST,
            "/faults",
            json!({"provider": "myob", "status": 503}),
        )
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.text);
}
