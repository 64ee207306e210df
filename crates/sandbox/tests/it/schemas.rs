//! Response bodies against Xero's official OpenAPI files in `../shared/reference/xero/` (read in
//! place, never copied): every field the sandbox sends must be one the schema names, with the type,
//! enum value, uuid or `/Date(...)/` form the schema gives.

use reqwest::Method;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::OnceLock;
use yaml_rust2::{Yaml, YamlLoader};

use crate::common::*;

fn reference_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("LEDGERLINK_SHARED_DIR") {
        return PathBuf::from(dir).join("reference/xero");
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/xero");
    assert!(
        dir.is_dir(),
        "Xero's OpenAPI files are not at {}: check out ../shared beside the repository or set LEDGERLINK_SHARED_DIR",
        dir.display()
    );
    dir
}

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(r) => r.parse::<f64>().map(|f| json!(f)).unwrap_or(Value::Null),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect::<Map<_, _>>(),
        ),
        _ => Value::Null,
    }
}

fn load(file: &str) -> Value {
    let text = std::fs::read_to_string(reference_dir().join(file)).expect("read the OpenAPI file");
    to_json(&YamlLoader::load_from_str(&text).expect("valid YAML")[0])
}

fn spec(file: &str) -> &'static Value {
    static ACCOUNTING: OnceLock<Value> = OnceLock::new();
    static IDENTITY: OnceLock<Value> = OnceLock::new();
    static WEBHOOKS: OnceLock<Value> = OnceLock::new();
    let cell = match file {
        "xero_accounting.yaml" => &ACCOUNTING,
        "xero-identity.yaml" => &IDENTITY,
        _ => &WEBHOOKS,
    };
    cell.get_or_init(|| load(file))
}

/// Checks `value` against `#/components/schemas/{name}` of `file`; the envelope fields Xero adds
/// around every collection are allowed at the top. Returns every mismatch with its path.
pub fn mismatches(file: &str, name: &str, value: &Value) -> Vec<String> {
    let spec = spec(file);
    let schema = &spec["components"]["schemas"][name];
    assert!(!schema.is_null(), "{file} has no schema {name}");
    let mut errors = Vec::new();
    let envelope = ["Id", "Status", "ProviderName", "DateTimeUTC"];
    check(spec, schema, value, name, &envelope, &mut errors);
    errors
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> (&'a Value, Option<String>) {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap().to_string();
            (&spec["components"]["schemas"][name.as_str()], Some(name))
        }
        None => (schema, None),
    }
}

fn check(
    spec: &Value,
    schema: &Value,
    value: &Value,
    path: &str,
    extra: &[&str],
    errors: &mut Vec<String>,
) {
    let (schema, name) = resolve(spec, schema);
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            check(spec, s, value, path, extra, errors);
        }
        return;
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let consts: Vec<&Value> = options.iter().filter_map(|o| o.get("const")).collect();
        if !consts.is_empty() && !consts.contains(&value) {
            errors.push(format!("{path}: {value} is not one of {consts:?}"));
        }
    }
    let kind = schema["type"]
        .as_str()
        .unwrap_or(if schema["properties"].is_object() {
            "object"
        } else {
            ""
        });
    match kind {
        "string" => {
            let Some(s) = value.as_str() else {
                errors.push(format!("{path}: expected a string, got {value}"));
                return;
            };
            if let Some(options) = schema["enum"].as_array() {
                if !options.iter().any(|o| o.as_str() == Some(s)) {
                    errors.push(format!("{path}: '{s}' is not in the schema's enum"));
                }
            }
            if schema["format"] == "uuid" && uuid::Uuid::parse_str(s).is_err() {
                errors.push(format!("{path}: '{s}' is not a uuid"));
            }
            if schema["x-is-msdate"] == true || schema["x-is-msdate-time"] == true {
                let ok = s.starts_with("/Date(") && s.ends_with(")/");
                if !ok {
                    errors.push(format!("{path}: '{s}' is not a /Date(ms+0000)/ date"));
                }
            }
        }
        "number" | "integer" => {
            if !value.is_number() {
                errors.push(format!("{path}: expected a number, got {value}"));
            } else if kind == "integer" && value.to_string().contains('.') {
                errors.push(format!("{path}: expected an integer, got {value}"));
            }
        }
        "boolean" if !value.is_boolean() => {
            errors.push(format!("{path}: expected a boolean, got {value}"));
        }
        "array" => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(
                        spec,
                        &schema["items"],
                        item,
                        &format!("{path}[{i}]"),
                        &[],
                        errors,
                    );
                }
            }
            None => errors.push(format!("{path}: expected an array, got {value}")),
        },
        "object" => {
            let Some(map) = value.as_object() else {
                errors.push(format!("{path}: expected an object, got {value}"));
                return;
            };
            let props = schema["properties"].as_object();
            // Xero echoes the whole failed document in a validation error's Elements.
            let open = name.as_deref() == Some("Element");
            for (key, v) in map {
                match props.and_then(|p| p.get(key)) {
                    Some(sub) => check(spec, sub, v, &format!("{path}.{key}"), &[], errors),
                    None if open || extra.contains(&key.as_str()) || props.is_none() => {}
                    None => errors.push(format!("{path}.{key}: not a field of the schema")),
                }
            }
        }
        _ => {}
    }
}

pub fn assert_fits(file: &str, name: &str, value: &Value) {
    let errors = mismatches(file, name, value);
    assert!(
        errors.is_empty(),
        "{name} does not follow {file}:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_validator_catches_wrong_casing_types_and_enums() {
    let wrong = json!({"Invoices": [{"InvoiceId": "x", "Total": "12", "Status": "OPEN", "Date": "2024-01-01"}]});
    let errors = mismatches("xero_accounting.yaml", "Invoices", &wrong);
    assert!(
        errors.iter().any(|e| e.contains("InvoiceId: not a field")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Total: expected a number")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("'OPEN' is not in the schema's enum")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("is not a /Date(ms+0000)/ date")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn accounting_responses_follow_the_official_schemas() {
    let env = start().await;
    let api = env.api(NZ).await;
    let file = "xero_accounting.yaml";
    assert_fits(file, "Organisations", &api.get("Organisation").await.body);
    assert_fits(file, "Accounts", &api.get("Accounts").await.body);
    assert_fits(file, "TaxRates", &api.get("TaxRates").await.body);

    let contact = api
        .put(
            "Contacts",
            json!({"Name": "Schema Ltd", "ContactNumber": "S-1", "EmailAddress": "s@x.test"}),
        )
        .await;
    assert_fits(file, "Contacts", &contact.body);
    assert_fits(file, "Contacts", &api.get("Contacts?page=1").await.body);

    let mut bad = invoice("Schema Ltd", "1", "10");
    bad["LineItems"][0]["AccountCode"] = json!("999");
    let mixed = api
        .put(
            "Invoices?summarizeErrors=false",
            json!({"Invoices": [invoice("Schema Ltd", "2", "12.5"), bad.clone()]}),
        )
        .await;
    assert_eq!(mixed.status, 200);
    assert_fits(file, "Invoices", &mixed.body);
    let summarized = api.put("Invoices", json!({"Invoices": [bad]})).await;
    assert_eq!(summarized.status, 400);
    assert_fits(file, "Error", &summarized.body);

    let id = mixed.body["Invoices"][0]["InvoiceID"].as_str().unwrap();
    let payment = api
        .put(
            "Payments",
            json!({"Invoice": {"InvoiceID": id}, "Account": {"Code": "090"}, "Amount": 5}),
        )
        .await;
    assert_eq!(payment.status, 200, "{}", payment.text);
    assert_fits(file, "Payments", &payment.body);
    assert_fits(file, "Payments", &api.get("Payments").await.body);
    assert_fits(
        file,
        "Invoices",
        &api.get(&format!("Invoices/{id}")).await.body,
    );
    assert_fits(
        file,
        "Invoices",
        &api.get("Invoices?page=1&pageSize=10").await.body,
    );
}

#[tokio::test]
async fn identity_responses_follow_the_official_schemas() {
    let env = start().await;
    let tokens = env.grant(None, None).await;
    let refreshed = env.refresh(tokens.refresh.as_deref().unwrap()).await;
    let mut token = refreshed.body.clone();
    token.as_object_mut().unwrap().remove("scope"); // Xero sends it too; the spec leaves it out.
    assert_fits("xero-identity.yaml", "AccessToken", &token);
    let conns = env
        .http
        .get(format!("{}/connections", env.url))
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    let conns: Value = conns.json().await.unwrap();
    for c in conns.as_array().unwrap() {
        assert_fits("xero-identity.yaml", "Connection", c);
    }
    let _ = env.control(Method::GET, "/clock", json!({})).await;
}

/// Used by the webhook tests on what a receiver got.
pub fn assert_webhook_fits(payload: &Value) {
    // XERO-FACTS: the intent-to-receive payload has sequences 0, below the spec's minimum; events
    // carry the real ones.
    assert_fits("xero-webhooks.yaml", "WebhookEvent", payload);
}
