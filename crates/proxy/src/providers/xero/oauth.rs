//! Xero's side: the OAuth client (the `oauth2` crate; PKCE S256; no redirect following) and the few
//! identity calls the proxy makes (connections). Tokens come and go as [`Secret`]s; nothing here logs
//! one, and error texts never carry one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ledgerlink_wire::Secret;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use serde::Deserialize;
use std::time::Duration;
use url::Url;
use uuid::Uuid;

pub use crate::providers::TokenError;
use crate::providers::{
    BrowserConsent, ConsentError, Grant, Grants, Organisation, Profile, Tokens,
};
use crate::settings::{Settings, XeroEndpoints};
use futures_util::future::BoxFuture;

type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// A token set as Xero hands it over.
#[derive(Debug, Clone)]
pub struct XeroTokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub expires_in: u64,
    pub scope: String,
}

impl XeroTokens {
    /// The consent this token set came from (`authentication_event_id` in the access token JWT).
    /// Read without verifying the signature: the token came straight from Xero over TLS.
    pub fn auth_event_id(&self) -> Option<Uuid> {
        let payload = self.access_token.expose().split('.').nth(1)?;
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        claims["authentication_event_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
    }
}

impl From<XeroTokens> for Tokens {
    fn from(t: XeroTokens) -> Self {
        let consent_id = t.auth_event_id();
        Tokens {
            access_token: t.access_token,
            refresh_token: Some(t.refresh_token),
            expires_in: Some(t.expires_in),
            scope: t.scope,
            consent_id,
        }
    }
}

impl BrowserConsent for XeroClient {
    fn authorize_url(&self) -> (Url, Secret, Secret) {
        XeroClient::authorize_url(self)
    }

    fn authorize_endpoint(&self) -> &Url {
        &self.endpoints().authorize
    }

    fn exchange<'a>(
        &'a self,
        code: &'a str,
        verifier: &'a Secret,
    ) -> BoxFuture<'a, Result<Tokens, TokenError>> {
        Box::pin(async move { self.exchange_code(code, verifier).await.map(Tokens::from) })
    }

    /// The connections Xero made for this consent (`GET /connections?authEventId=`), named by
    /// the `authentication_event_id` in the access token.
    fn organisations<'a>(
        &'a self,
        tokens: &'a Tokens,
    ) -> BoxFuture<'a, Result<Vec<Organisation>, ConsentError>> {
        Box::pin(async move {
            let Some(consent) = tokens.consent_id else {
                return Err(ConsentError::Unidentified(
                    "Xero's answer did not say which consent it was, so the organisation cannot be picked safely. Start again.".into(),
                ));
            };
            let connections = self
                .connections(&tokens.access_token, Some(consent))
                .await?;
            Ok(connections
                .iter()
                .map(|c| Organisation {
                    tenant_id: c.tenant_id.to_string(),
                    name: c.tenant_name.clone(),
                    link_id: Some(c.id),
                })
                .collect())
        })
    }

    fn release<'a>(
        &'a self,
        access: &'a Secret,
        organisation: &'a Organisation,
    ) -> BoxFuture<'a, Result<bool, TokenError>> {
        Box::pin(async move {
            match organisation.link_id {
                Some(id) => Ok(self.delete_connection(access, id).await? == Deleted::Yes),
                None => Ok(false),
            }
        })
    }
}

impl Grants for XeroClient {
    fn kind(&self) -> Grant {
        <super::Xero as Profile>::GRANT
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a Secret,
    ) -> BoxFuture<'a, Result<Tokens, TokenError>> {
        Box::pin(async move {
            XeroClient::refresh(self, refresh_token)
                .await
                .map(Tokens::from)
        })
    }

    fn revoke<'a>(&'a self, token: &'a Secret) -> BoxFuture<'a, Result<(), TokenError>> {
        Box::pin(XeroClient::revoke(self, token))
    }

    /// The organisation is among the grant's connections (`GET /connections`); a `401` or `403`
    /// there is `InvalidGrant`.
    fn reaches<'a>(
        &'a self,
        access: &'a Secret,
        tenant_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, TokenError>> {
        Box::pin(async move {
            let listed = self.connections(access, None).await?;
            Ok(listed.iter().any(|c| c.tenant_id.to_string() == tenant_id))
        })
    }
}

/// One of Xero's connections (an organisation the token set may call).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct XeroConnection {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    #[serde(default)]
    pub tenant_type: String,
    pub auth_event_id: Option<Uuid>,
}

/// What `DELETE /connections/{id}` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Yes,
    /// 404: already gone.
    NotThere,
    /// 401/403: this token set may not (any more).
    Refused,
}

pub struct XeroClient {
    oauth: OAuthClient,
    client_id: String,
    client_secret: Secret,
    http: reqwest::Client,
    endpoints: XeroEndpoints,
    scopes: Vec<String>,
}

impl XeroClient {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let endpoints = settings.providers.xero.endpoints()?;
        let secret = settings
            .providers
            .xero
            .client_secret
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the Xero client secret is not set"))?;
        let oauth = BasicClient::new(ClientId::new(settings.providers.xero.client_id.clone()))
            .set_client_secret(ClientSecret::new(secret.expose().to_string()))
            .set_auth_uri(AuthUrl::from_url(endpoints.authorize.clone()))
            .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
            .set_redirect_uri(RedirectUrl::from_url(settings.callback_url()));
        // Following a redirect from an OAuth endpoint would hand our client credentials to wherever
        // it points (SSRF): never.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(
                settings.providers.xero.timeout_secs.unwrap_or(30).max(1),
            ))
            .user_agent(concat!("ledgerlink-proxy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            oauth,
            client_id: settings.providers.xero.client_id.clone(),
            client_secret: secret.clone(),
            http,
            endpoints,
            scopes: settings
                .providers
                .xero
                .scopes()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        })
    }

    pub fn endpoints(&self) -> &XeroEndpoints {
        &self.endpoints
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Where to send the browser, with a fresh `state` and PKCE S256 challenge. Answers the URL, the
    /// state and the verifier to keep.
    pub fn authorize_url(&self) -> (Url, Secret, Secret) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .oauth
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        (
            url,
            Secret::new(state.secret().clone()),
            Secret::new(verifier.secret().clone()),
        )
    }

    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &Secret,
    ) -> Result<XeroTokens, TokenError> {
        let response = self
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_string()))
            .request_async(&self.http)
            .await;
        tokens(response)
    }

    pub async fn refresh(&self, refresh_token: &Secret) -> Result<XeroTokens, TokenError> {
        let token = RefreshToken::new(refresh_token.expose().to_string());
        let response = self
            .oauth
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await;
        tokens(response)
    }

    /// Revokes a refresh token (and with it the grant and its connections at Xero), RFC 7009. Sent by
    /// hand: the oauth2 crate refuses a revocation URL that is not HTTPS, and the sandbox is plain
    /// HTTP on loopback.
    pub async fn revoke(&self, refresh_token: &Secret) -> Result<(), TokenError> {
        let response = self
            .http
            .post(self.endpoints.revocation.clone())
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .form(&[
                ("token", refresh_token.expose()),
                ("token_type_hint", "refresh_token"),
            ])
            .send()
            .await
            .map_err(|e| TokenError::Transient(format!("revocation: {}", e.without_url())))?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            400..=499 => Err(TokenError::Rejected(format!(
                "revocation answered {}",
                response.status()
            ))),
            _ => Err(TokenError::Transient(format!(
                "revocation answered {}",
                response.status()
            ))),
        }
    }

    /// `GET /connections[?authEventId=]`.
    pub async fn connections(
        &self,
        access_token: &Secret,
        auth_event: Option<Uuid>,
    ) -> Result<Vec<XeroConnection>, TokenError> {
        let mut url = self.endpoints.connections.clone();
        if let Some(id) = auth_event {
            url.query_pairs_mut()
                .append_pair("authEventId", &id.to_string());
        }
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token.expose())
            .send()
            .await
            .map_err(|e| TokenError::Transient(format!("GET /connections: {}", e.without_url())))?;
        let status = response.status();
        if status == 401 || status == 403 {
            return Err(TokenError::InvalidGrant);
        }
        if !status.is_success() {
            return Err(TokenError::Transient(format!(
                "GET /connections answered {status}"
            )));
        }
        response
            .json()
            .await
            .map_err(|e| TokenError::Transient(format!("GET /connections: {}", e.without_url())))
    }

    /// `DELETE /connections/{id}`.
    pub async fn delete_connection(
        &self,
        access_token: &Secret,
        id: Uuid,
    ) -> Result<Deleted, TokenError> {
        let url = format!(
            "{}/{id}",
            self.endpoints.connections.as_str().trim_end_matches('/')
        );
        let response = self
            .http
            .delete(url)
            .bearer_auth(access_token.expose())
            .send()
            .await
            .map_err(|e| {
                TokenError::Transient(format!("DELETE /connections: {}", e.without_url()))
            })?;
        match response.status().as_u16() {
            200..=299 => Ok(Deleted::Yes),
            404 => Ok(Deleted::NotThere),
            401 | 403 => Ok(Deleted::Refused),
            other => Err(TokenError::Transient(format!(
                "DELETE /connections answered {other}"
            ))),
        }
    }
}

type TokenResult = Result<
    oauth2::basic::BasicTokenResponse,
    RequestTokenError<oauth2::HttpClientError<reqwest::Error>, oauth2::basic::BasicErrorResponse>,
>;

fn tokens(response: TokenResult) -> Result<XeroTokens, TokenError> {
    match response {
        Ok(t) => {
            let refresh = t.refresh_token().ok_or_else(|| {
                TokenError::Rejected(
                    "Xero sent no refresh token: is offline_access among the scopes?".into(),
                )
            })?;
            Ok(XeroTokens {
                access_token: Secret::new(t.access_token().secret().clone()),
                refresh_token: Secret::new(refresh.secret().clone()),
                expires_in: t.expires_in().map_or(1800, |d| d.as_secs()),
                scope: t
                    .scopes()
                    .map(|s| {
                        s.iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default(),
            })
        }
        Err(RequestTokenError::ServerResponse(r)) => match r.error() {
            BasicErrorResponseType::InvalidGrant => Err(TokenError::InvalidGrant),
            other => Err(TokenError::Rejected(other.to_string())),
        },
        Err(other) => Err(TokenError::Transient(describe(&other))),
    }
}

/// An oauth2 error as text that carries no credential (request bodies are never included).
fn describe<E: std::error::Error>(e: &E) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
