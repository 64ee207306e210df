//! HubRise's side of a connection: the consent in the person's browser (no PKCE: HubRise's
//! authorize takes none), the code exchanged with the client's credentials by HTTP Basic (never in
//! the till), the location the token reaches, and revocation. The token never expires and there
//! is no refresh token; `device_id` is never sent, so every till of a location shares its one
//! token (and unpairing one till never revokes it).

use futures_util::future::BoxFuture;
use ledgerlink_wire::Secret;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use url::Url;

use crate::providers::{
    BrowserConsent, ConsentError, Grant, Grants, Organisation, Profile, TokenError, Tokens,
};
use crate::settings::{HubRiseEndpoints, Settings};

pub struct HubRiseClient {
    client_id: String,
    client_secret: Secret,
    redirect_uri: Url,
    scope: String,
    endpoints: HubRiseEndpoints,
    http: reqwest::Client,
}

impl HubRiseClient {
    /// The client, when `[providers.hubrise]` has a client id and secret (`None`: HubRise is not
    /// offered here).
    pub fn new(settings: &Settings) -> anyhow::Result<Option<Self>> {
        let h = &settings.providers.hubrise;
        let Some(secret) = h.client_secret.clone().filter(|_| h.configured()) else {
            return Ok(None);
        };
        // Never follow a redirect with the client's credentials.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(h.timeout_secs.unwrap_or(30).max(1)))
            .user_agent(concat!("ledgerlink-proxy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Self {
            client_id: h.client_id.clone(),
            client_secret: secret,
            redirect_uri: settings.callback_url_for(ledgerlink_wire::Provider::HubRise),
            scope: h.scope().to_string(),
            endpoints: h.endpoints()?,
            http,
        }))
    }

    pub fn endpoints(&self) -> &HubRiseEndpoints {
        &self.endpoints
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET /location` with the token: the location it reaches (`Err(InvalidGrant)`: refused).
    pub async fn location(&self, access: &Secret) -> Result<Value, TokenError> {
        let url = format!(
            "{}/location",
            self.endpoints.api.as_str().trim_end_matches('/')
        );
        let response = self
            .http
            .get(url)
            .header("x-access-token", access.expose())
            .send()
            .await
            .map_err(|e| TokenError::Transient(format!("GET /location: {}", e.without_url())))?;
        match response.status() {
            s if s.is_success() => response
                .json()
                .await
                .map_err(|e| TokenError::Transient(format!("GET /location: {}", e.without_url()))),
            StatusCode::UNAUTHORIZED => Err(TokenError::InvalidGrant),
            s => Err(TokenError::Transient(format!("GET /location answered {s}"))),
        }
    }

    /// A token call's refusal in the caller's terms: HubRise's own message when it gave one.
    async fn refusal(response: reqwest::Response, what: &str) -> TokenError {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["message"].as_str().unwrap_or("no message").to_string();
        match status {
            StatusCode::BAD_REQUEST => TokenError::InvalidGrant,
            StatusCode::UNAUTHORIZED => TokenError::Rejected(format!(
                "{what}: HubRise refused this Ledgerlink's client credentials ({message})"
            )),
            s => TokenError::Transient(format!("{what} answered {s}: {message}")),
        }
    }
}

impl BrowserConsent for HubRiseClient {
    fn authorize_url(&self) -> (Url, Secret, Secret) {
        let state = Secret::new(crate::device::random_secret());
        let mut url = self.endpoints.authorize.clone();
        url.query_pairs_mut()
            .append_pair("redirect_uri", self.redirect_uri.as_str())
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", &self.scope)
            .append_pair("state", state.expose());
        // HubRise's authorize takes no PKCE challenge: the verifier kept is never sent.
        (url, state, Secret::new(crate::device::random_secret()))
    }

    fn authorize_endpoint(&self) -> &Url {
        &self.endpoints.authorize
    }

    fn exchange<'a>(
        &'a self,
        code: &'a str,
        _verifier: &'a Secret,
    ) -> BoxFuture<'a, Result<Tokens, TokenError>> {
        Box::pin(async move {
            let response = self
                .http
                .post(self.endpoints.token.clone())
                .basic_auth(&self.client_id, Some(self.client_secret.expose()))
                .form(&[("code", code)])
                .send()
                .await
                .map_err(|e| TokenError::Transient(format!("token: {}", e.without_url())))?;
            if !response.status().is_success() {
                return Err(Self::refusal(response, "token").await);
            }
            let body: Value = response
                .json()
                .await
                .map_err(|e| TokenError::Transient(format!("token: {}", e.without_url())))?;
            let access = body["access_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| TokenError::Transient("token: no access_token".into()))?;
            Ok(Tokens {
                access_token: Secret::new(access),
                refresh_token: None,
                expires_in: None,
                scope: self.scope.clone(),
                consent_id: None,
            })
        })
    }

    /// The one location the token reaches (`GET /location`).
    fn organisations<'a>(
        &'a self,
        tokens: &'a Tokens,
    ) -> BoxFuture<'a, Result<Vec<Organisation>, ConsentError>> {
        Box::pin(async move {
            let location = self.location(&tokens.access_token).await?;
            let id = location["id"].as_str().unwrap_or_default();
            if id.is_empty() {
                return Err(ConsentError::Unidentified(
                    "HubRise did not say which location was chosen. Start again.".into(),
                ));
            }
            let name = location["name"].as_str().unwrap_or(id);
            let name = match location["account"]["name"].as_str() {
                Some(account) => format!("{account} – {name}"),
                None => name.to_string(),
            };
            Ok(vec![Organisation {
                tenant_id: id.to_string(),
                name,
                link_id: None,
            }])
        })
    }

    /// `POST /callback`: HubRise posts the location's order updates to `url` (one callback per
    /// connection; setting it again replaces it, so connecting a location again is harmless).
    fn subscribe<'a>(
        &'a self,
        access: &'a Secret,
        url: &'a Url,
    ) -> BoxFuture<'a, Result<(), TokenError>> {
        Box::pin(async move {
            let endpoint = format!(
                "{}/callback",
                self.endpoints.api.as_str().trim_end_matches('/')
            );
            let response = self
                .http
                .post(endpoint)
                .header("x-access-token", access.expose())
                .json(&serde_json::json!({"url": url.as_str(), "events": {"order": ["update"]}}))
                .send()
                .await
                .map_err(|e| {
                    TokenError::Transient(format!("POST /callback: {}", e.without_url()))
                })?;
            match response.status() {
                s if s.is_success() => Ok(()),
                StatusCode::UNAUTHORIZED => Err(TokenError::InvalidGrant),
                s => {
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    Err(TokenError::Transient(format!(
                        "POST /callback answered {s}: {}",
                        body["message"].as_str().unwrap_or("no message")
                    )))
                }
            }
        })
    }

    /// Nothing to let go for one location: its token is the location's, shared by its tills.
    fn release<'a>(
        &'a self,
        _access: &'a Secret,
        _organisation: &'a Organisation,
    ) -> BoxFuture<'a, Result<bool, TokenError>> {
        Box::pin(async { Ok(false) })
    }
}

impl Grants for HubRiseClient {
    fn kind(&self) -> Grant {
        <super::HubRise as Profile>::GRANT
    }

    /// A static token has nothing to refresh with: refused, it needs connecting again.
    fn refresh<'a>(&'a self, _token: &'a Secret) -> BoxFuture<'a, Result<Tokens, TokenError>> {
        Box::pin(async { Err(TokenError::InvalidGrant) })
    }

    /// `POST /oauth2/v1/revoke` (HTTP Basic, `token=...`).
    fn revoke<'a>(&'a self, token: &'a Secret) -> BoxFuture<'a, Result<(), TokenError>> {
        Box::pin(async move {
            let response = self
                .http
                .post(self.endpoints.revoke.clone())
                .basic_auth(&self.client_id, Some(self.client_secret.expose()))
                .form(&[("token", token.expose())])
                .send()
                .await
                .map_err(|e| TokenError::Transient(format!("revoke: {}", e.without_url())))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(Self::refusal(response, "revoke").await)
            }
        })
    }

    /// The token still reaches the location (`GET /location` answers it).
    fn reaches<'a>(
        &'a self,
        access: &'a Secret,
        tenant_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, TokenError>> {
        Box::pin(async move {
            let location = self.location(access).await?;
            Ok(location["id"].as_str() == Some(tenant_id))
        })
    }
}
