//! Shared test plumbing: a running sandbox, tokens, and a small Accounting API client.

use ledgerlink_sandbox::seed::{DEMO_NZ_TENANT_ID, DEMO_UK_TENANT_ID};
use ledgerlink_sandbox::{Sandbox, Settings};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

pub const CLIENT_ID: &str = ledgerlink_sandbox::settings::DEMO_CLIENT_ID;
pub const CLIENT_SECRET: &str = ledgerlink_sandbox::settings::DEMO_CLIENT_SECRET;
pub const REDIRECT: &str = "http://127.0.0.1:7400/oauth/xero/callback";
pub const USER: &str = "demo@ledgerlink.test";
pub const NZ: Uuid = DEMO_NZ_TENANT_ID;
pub const UK: Uuid = DEMO_UK_TENANT_ID;

pub struct Env {
    /// Kept for the test's duration: dropping it stops the sandbox.
    pub _sandbox: Sandbox,
    pub url: String,
    pub http: reqwest::Client,
}

pub fn settings() -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Settings::default()
    }
}

pub async fn start() -> Env {
    start_with(settings()).await
}

pub async fn start_with(settings: Settings) -> Env {
    let sandbox = Sandbox::start(settings).await.expect("sandbox starts");
    let url = sandbox.url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Env {
        _sandbox: sandbox,
        url,
        http,
    }
}

/// A token set as the token endpoint returns it.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub grant_id: Option<String>,
    pub raw: Value,
}

impl Tokens {
    pub fn from(raw: Value) -> Self {
        Self {
            access: raw["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
            refresh: raw["refresh_token"].as_str().map(str::to_string),
            grant_id: raw["grant_id"].as_str().map(str::to_string),
            raw,
        }
    }
}

/// The answer to one call: status, headers and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub async fn read(r: reqwest::Response) -> Self {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `ValidationErrors[].Message` of every element, in order.
    pub fn messages(&self) -> Vec<String> {
        let elements = self.body["Elements"]
            .as_array()
            .or_else(|| self.body["Invoices"].as_array())
            .or_else(|| self.body["Payments"].as_array())
            .or_else(|| self.body["Contacts"].as_array())
            .or_else(|| self.body["CreditNotes"].as_array())
            .or_else(|| self.body["Allocations"].as_array())
            .cloned()
            .unwrap_or_default();
        elements
            .iter()
            .flat_map(|e| {
                e["ValidationErrors"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|m| m["Message"].as_str().map(str::to_string))
            .collect()
    }
}

impl Env {
    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Answer {
        let r = self
            .http
            .request(method, format!("{}/_sandbox{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        Answer::read(r).await
    }

    /// Tokens for the demo user, as if they consented (all organisations unless told).
    pub async fn grant(&self, tenants: Option<&[Uuid]>, scope: Option<&str>) -> Tokens {
        let mut body = json!({"client_id": CLIENT_ID, "user": USER});
        if let Some(t) = tenants {
            body["tenant_ids"] = json!(t);
        }
        if let Some(s) = scope {
            body["scope"] = json!(s);
        }
        let a = self.control(reqwest::Method::POST, "/grants", body).await;
        assert_eq!(a.status, 200, "grant: {}", a.text);
        Tokens::from(a.body)
    }

    pub async fn api(&self, tenant: Uuid) -> Api<'_> {
        let tokens = self.grant(None, None).await;
        Api {
            env: self,
            token: tokens.access,
            tenant,
        }
    }

    pub async fn advance(&self, seconds: i64) {
        let a = self
            .control(
                reqwest::Method::POST,
                "/clock",
                json!({"advance_seconds": seconds}),
            )
            .await;
        assert_eq!(a.status, 200);
    }

    pub async fn set_limits(&self, limits: Value) {
        let a = self.control(reqwest::Method::PUT, "/limits", limits).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }

    pub async fn fault(&self, rule: Value) {
        let a = self.control(reqwest::Method::POST, "/faults", rule).await;
        assert_eq!(a.status, 201, "{}", a.text);
    }

    /// The token endpoint, with client auth by HTTP Basic.
    pub async fn token(&self, form: &[(&str, &str)]) -> Answer {
        let r = self
            .http
            .post(format!("{}/connect/token", self.url))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(form)
            .send()
            .await
            .unwrap();
        Answer::read(r).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }
}

/// An Accounting API client for one tenant.
pub struct Api<'a> {
    pub env: &'a Env,
    pub token: String,
    pub tenant: Uuid,
}

impl Api<'_> {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.env
            .http
            .request(method, format!("{}/api.xro/2.0/{path}", self.env.url))
            .bearer_auth(&self.token)
            .header("xero-tenant-id", self.tenant.to_string())
            .header("accept", "application/json")
    }

    pub async fn get(&self, path: &str) -> Answer {
        Answer::read(
            self.request(reqwest::Method::GET, path)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        Answer::read(
            self.request(reqwest::Method::PUT, path)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        Answer::read(
            self.request(reqwest::Method::POST, path)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

/// A valid sales invoice to the named contact, one line of `qty` × `unit` to account 200.
pub fn invoice(contact: &str, qty: &str, unit: &str) -> Value {
    json!({
        "Type": "ACCREC",
        "Contact": {"Name": contact},
        "Date": "2026-11-20",
        "DueDate": "2026-12-20",
        "Status": "AUTHORISED",
        "LineAmountTypes": "Exclusive",
        "LineItems": [{
            "Description": "Widget",
            "Quantity": serde_json::from_str::<Value>(qty).unwrap(),
            "UnitAmount": serde_json::from_str::<Value>(unit).unwrap(),
            "AccountCode": "200",
            "TaxType": "OUTPUT2",
        }],
    })
}

/// A valid customer credit note to the named contact: one line of `qty` × `unit` to account 200.
pub fn credit_note(contact: &str, qty: &str, unit: &str) -> Value {
    let mut c = invoice(contact, qty, unit);
    c["Type"] = json!("ACCRECCREDIT");
    c.as_object_mut().unwrap().remove("DueDate");
    c
}

/// A JSON number's exact text: amounts compare as the digits Xero sent.
pub fn dec(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        other => panic!("expected a number, got {other}"),
    }
}
