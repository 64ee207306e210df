//! Injected faults: answer a status, add latency, or drop the connection, before the request is
//! processed (`before`) or after it was processed and its answer is lost or late (`after`: the
//! unknown-outcome case a client must reconcile).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Before,
    After,
}

/// One rule, as posted to `POST /_sandbox/faults`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Only requests to this provider (`xero`, `hubrise`); none: any.
    pub provider: Option<String>,
    pub method: Option<String>,
    pub path_prefix: Option<String>,
    pub status: Option<u16>,
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub drop: bool,
    #[serde(default)]
    pub phase: Phase,
    /// Applies to the next `count` matching requests...
    pub count: Option<u64>,
    /// ...or to this fraction of them (0..=1). Neither: every matching request until cleared.
    pub rate: Option<f64>,
    /// `Retry-After` to send with an injected `429` or `503`.
    pub retry_after: Option<u64>,
}

impl FaultRule {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.provider {
            if !crate::harness::PROVIDERS.contains(&p.as_str()) {
                return Err(format!(
                    "`provider` must be one of {}, got '{p}'",
                    crate::harness::PROVIDERS.join(", ")
                ));
            }
        }
        if self.count.is_some() && self.rate.is_some() {
            return Err("give either `count` or `rate`, not both".into());
        }
        if let Some(rate) = self.rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("`rate` must be between 0 and 1, got {rate}"));
            }
        }
        if let Some(status) = self.status {
            if !(100..=599).contains(&status) {
                return Err(format!(
                    "`status` must be an HTTP status (100-599), got {status}"
                ));
            }
        }
        if self.status.is_none() && !self.drop && self.latency_ms == 0 {
            return Err("a fault needs at least one of `status`, `drop` or `latency_ms`".into());
        }
        if self.status.is_some() && self.drop {
            return Err(
                "`status` and `drop` exclude each other: a dropped connection has no status".into(),
            );
        }
        Ok(())
    }

    fn matches(&self, provider: &str, method: &str, path: &str) -> bool {
        self.provider.as_deref().is_none_or(|p| p == provider)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path_prefix.as_deref().is_none_or(|p| {
                path.to_ascii_lowercase()
                    .starts_with(&p.to_ascii_lowercase())
            })
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<FaultRule>,
}

impl Faults {
    pub fn add(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The first rule that fires for this request, spending one of its `count`.
    pub fn take(&mut self, provider: &str, method: &str, path: &str) -> Option<FaultRule> {
        let index = self.rules.iter().position(|r| {
            r.matches(provider, method, path)
                && r.rate.is_none_or(|rate| rand::random::<f64>() < rate)
        })?;
        let rule = self.rules[index].clone();
        if let Some(count) = &mut self.rules[index].count {
            *count -= 1;
            if *count == 0 {
                self.rules.remove(index);
            }
        }
        Some(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> FaultRule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn count_is_spent_then_the_rule_is_gone() {
        let mut f = Faults::default();
        f.add(rule(r#"{"path_prefix":"/api.xro","status":503,"count":2}"#));
        assert!(f.take("xero", "GET", "/api.xro/2.0/Invoices").is_some());
        assert!(f.take("xero", "GET", "/connections").is_none());
        assert!(f.take("xero", "PUT", "/API.XRO/2.0/Invoices").is_some());
        assert!(f.take("xero", "GET", "/api.xro/2.0/Invoices").is_none());
    }

    #[test]
    fn a_rule_naming_a_provider_fires_for_its_requests_only() {
        let mut f = Faults::default();
        f.add(rule(r#"{"provider":"hubrise","status":500}"#));
        assert!(f.take("xero", "GET", "/api.xro/2.0/Invoices").is_none());
        assert!(f.take("hubrise", "POST", "/v1/location/orders").is_some());
        assert!(rule(r#"{"provider":"myob","status":500}"#)
            .validate()
            .is_err());
    }

    #[test]
    fn nonsense_rules_are_refused_with_a_reason() {
        assert!(rule(r#"{"status":503,"count":1,"rate":0.5}"#)
            .validate()
            .is_err());
        assert!(rule(r#"{"count":1}"#).validate().is_err());
        assert!(rule(r#"{"status":503,"drop":true}"#).validate().is_err());
    }
}
