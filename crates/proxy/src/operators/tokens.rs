//! The operator API as a resource server: access tokens from the vendor's identity provider (JWTs),
//! checked as `../shared/reference/OIDC-FACTS.md` says. RS256 only (`none` and HMAC algorithms are
//! refused before any key is looked at, so the public key can never serve as an HMAC secret); the
//! `kid` must be in the issuer's JWKS; `iss` exactly the configured issuer, `aud` the configured
//! audience, `exp` and `nbf` checked with 60 seconds of leeway.
//!
//! The JWKS is cached for as long as its `Cache-Control: max-age` says (an hour when it says
//! nothing, a day at most), so a key the issuer withdrew stops being trusted. A token whose `kid`
//! is not in it makes one fetch (the issuer may have rotated its keys), and only one per unknown
//! `kid`, and no more than ten a minute in all: a stream of tokens with made-up `kid`s cannot turn
//! the proxy against its identity provider. When the keys are stale and the issuer cannot be
//! reached, the keys last fetched still serve (an outage at the provider does not lock operators
//! out), and the failure is logged.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Leeway for `exp` and `nbf`, for clocks that disagree a little.
const LEEWAY_SECS: u64 = 60;
/// Fetches of the JWKS in any minute, at most.
const FETCHES_PER_MINUTE: usize = 10;
/// How long an unknown `kid` is remembered as such (no new fetch for it meanwhile).
const UNKNOWN_KID_SECS: u64 = 300;
/// How long keys are kept when the issuer's answer says nothing, and at most.
const DEFAULT_KEYS_SECS: u64 = 3600;
const MAX_KEYS_SECS: u64 = 86_400;

/// Why a token was refused. The caller answers 401 whatever it is, and logs only this, never the
/// token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("not a JWT")]
    Malformed,
    #[error("signed with {0}, not RS256")]
    Algorithm(String),
    #[error("no kid")]
    NoKid,
    #[error("kid not among the issuer's keys")]
    UnknownKid,
    #[error("the issuer's keys cannot be fetched: {0}")]
    Keys(String),
    #[error("{0}")]
    Invalid(String),
}

/// What the operator API reads of a token.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// The person's groups (Okta: with the `groups` scope).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The scopes granted: an array (Okta) or a space-separated string (RFC 9068).
    #[serde(default, deserialize_with = "scopes")]
    pub scp: Vec<String>,
    #[serde(default)]
    pub cid: Option<String>,
    pub exp: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
}

fn scopes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(l) => l,
        Either::Text(t) => t.split_whitespace().map(str::to_string).collect(),
    })
}

struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    /// Until when `by_kid` may be used without asking again.
    fresh_until: Option<Instant>,
    /// Unknown `kid`s already fetched for, and when.
    unknown: HashMap<String, Instant>,
    /// When the JWKS was fetched, the last minute's worth.
    fetches: VecDeque<Instant>,
}

/// Checks access tokens of one issuer for one audience.
pub struct Verifier {
    issuer: String,
    audience: String,
    /// From the issuer's discovery document, read when first needed (the provider may be down
    /// when the proxy starts; the proxy starts anyway).
    jwks_uri: tokio::sync::OnceCell<url::Url>,
    http: reqwest::Client,
    keys: Mutex<Keys>,
}

impl Verifier {
    pub fn new(issuer: &str, audience: &str, http: reqwest::Client) -> Self {
        Self {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            jwks_uri: tokio::sync::OnceCell::new(),
            http,
            keys: Mutex::new(Keys {
                by_kid: HashMap::new(),
                fresh_until: None,
                unknown: HashMap::new(),
                fetches: VecDeque::new(),
            }),
        }
    }

    /// How many times the JWKS was fetched in the last minute (for tests and metrics).
    pub async fn recent_fetches(&self) -> usize {
        let mut keys = self.keys.lock().await;
        forget_old(&mut keys.fetches);
        keys.fetches.len()
    }

    /// The token's claims, if it is one of the issuer's for this audience and valid at `now`
    /// (the proxy's clock, which tests move).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Claims, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(Refusal::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(Refusal::NoKid)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Times are checked below, on the proxy's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|t| t.claims)
            .map_err(|e| Refusal::Invalid(e.to_string()))?;
        let leeway = LEEWAY_SECS as i64;
        if claims.exp < now - leeway {
            return Err(Refusal::Invalid("expired".into()));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + leeway) {
            return Err(Refusal::Invalid("not valid yet".into()));
        }
        Ok(claims)
    }

    /// The key for `kid`: cached, or fetched once when it is new to us.
    async fn key(&self, kid: &str) -> Result<DecodingKey, Refusal> {
        // One caller at a time past this point: twenty tokens with the same new kid wait for
        // one fetch rather than make twenty.
        let mut keys = self.keys.lock().await;
        let now = Instant::now();
        let fresh = keys.fresh_until.is_some_and(|t| now < t);
        if let (true, Some(k)) = (fresh, keys.by_kid.get(kid)) {
            return Ok(k.clone());
        }
        keys.unknown
            .retain(|_, at| now.duration_since(*at) < Duration::from_secs(UNKNOWN_KID_SECS));
        forget_old(&mut keys.fetches);
        let cached = keys.by_kid.get(kid).cloned();
        if (fresh && keys.unknown.contains_key(kid)) || keys.fetches.len() >= FETCHES_PER_MINUTE {
            // Stale keys still serve while fetching is held back.
            return cached.ok_or(Refusal::UnknownKid);
        }
        keys.fetches.push_back(now);
        let fetched = self.fetch().await;
        let (set, max_age) = match fetched {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(error = %e, issuer = %self.issuer, "operators: the issuer's keys could not be fetched");
                return cached.ok_or(Refusal::Keys(e));
            }
        };
        keys.fresh_until = Some(now + max_age);
        keys.by_kid.clear();
        for jwk in &set.keys {
            let (Some(id), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk))
            else {
                continue;
            };
            keys.by_kid.insert(id, key);
        }
        match keys.by_kid.get(kid) {
            Some(k) => Ok(k.clone()),
            None => {
                keys.unknown.insert(kid.to_string(), now);
                Err(Refusal::UnknownKid)
            }
        }
    }

    /// The issuer's `jwks_uri`, from its discovery document, which must name the same issuer.
    async fn jwks_uri(&self) -> Result<&url::Url, String> {
        self.jwks_uri
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let answer = self
                    .http
                    .get(&url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                if !answer.status().is_success() {
                    return Err(format!("{url} answered {}", answer.status()));
                }
                let doc: serde_json::Value = answer
                    .json()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                if doc["issuer"] != self.issuer.as_str() {
                    return Err(format!(
                        "{url} names the issuer {}, not {}",
                        doc["issuer"], self.issuer
                    ));
                }
                doc["jwks_uri"]
                    .as_str()
                    .and_then(|u| url::Url::parse(u).ok())
                    .ok_or_else(|| format!("{url} names no jwks_uri"))
            })
            .await
    }

    /// The issuer's keys, and how long they may be kept.
    async fn fetch(&self) -> Result<(JwkSet, Duration), String> {
        let uri = self.jwks_uri().await?.clone();
        let answer = self
            .http
            .get(uri)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !answer.status().is_success() {
            return Err(format!("answered {}", answer.status()));
        }
        let max_age = answer
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_KEYS_SECS)
            .min(MAX_KEYS_SECS);
        let set = answer
            .json::<JwkSet>()
            .await
            .map_err(|e| e.without_url().to_string())?;
        Ok((set, Duration::from_secs(max_age)))
    }
}

/// `max-age` of a Cache-Control value (`no-store` and `no-cache` mean 0).
fn max_age(value: &str) -> Option<u64> {
    value.split(',').map(str::trim).find_map(|d| {
        let d = d.to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            Some(0)
        } else {
            d.strip_prefix("max-age=")?.trim_matches('"').parse().ok()
        }
    })
}

fn forget_old(fetches: &mut VecDeque<Instant>) {
    while fetches
        .front()
        .is_some_and(|t| t.elapsed() >= Duration::from_secs(60))
    {
        fetches.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_says_how_long_keys_keep() {
        assert_eq!(max_age("max-age=3600, must-revalidate"), Some(3600));
        assert_eq!(max_age("public, MAX-AGE=60"), Some(60));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("public"), None);
    }
}
