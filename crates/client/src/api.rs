//! The proxy's device API, as the device calls it.

use ledgerlink_wire::error::OAuthErrorBody;
use ledgerlink_wire::pairing::{DeviceTokens, PairingRequest, PairingResponse, DEVICE_CODE_GRANT};
use ledgerlink_wire::{ApiError, ConnectionInfo, ErrorCode, Secret, DEFAULT_PUBLIC_CLIENT_ID};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the proxy at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    /// The proxy answered with one of its error codes.
    #[error("{message} ({code})")]
    Api { code: ErrorCode, message: String },
    #[error("the proxy's answer was not understood: {0}")]
    Protocol(String),
}

impl ClientError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub struct ProxyClient {
    http: reqwest::Client,
    base: String,
}

impl ProxyClient {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("ledgerlink/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client builds");
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: e.without_url().to_string(),
        }
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        r: reqwest::Response,
    ) -> Result<T, ClientError> {
        let status = r.status();
        let bytes = r.bytes().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Protocol(e.to_string()));
        }
        if let Ok(e) = serde_json::from_slice::<ApiError>(&bytes) {
            return Err(ClientError::Api {
                code: e.code,
                message: e.message,
            });
        }
        if let Ok(e) = serde_json::from_slice::<OAuthErrorBody>(&bytes) {
            return Err(ClientError::Api {
                code: e.error,
                message: e.error_description.unwrap_or_default(),
            });
        }
        Err(ClientError::Protocol(format!(
            "the proxy answered {status}"
        )))
    }

    pub async fn start_pairing(
        &self,
        device_id: uuid::Uuid,
        device_name: &str,
    ) -> Result<PairingResponse, ClientError> {
        let req = PairingRequest {
            client_id: DEFAULT_PUBLIC_CLIENT_ID.into(),
            device_id,
            device_name: device_name.into(),
            provider: Default::default(),
        };
        let r = self
            .http
            .post(format!("{}/v1/pairings", self.base))
            .json(&req)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.read(r).await
    }

    pub async fn poll(&self, device_code: &Secret) -> Result<DeviceTokens, ClientError> {
        let r = self
            .http
            .post(format!("{}/v1/pairings/token", self.base))
            .form(&[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", device_code.expose()),
                ("client_id", DEFAULT_PUBLIC_CLIENT_ID),
            ])
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.read(r).await
    }

    pub async fn refresh(&self, refresh_token: &Secret) -> Result<DeviceTokens, ClientError> {
        let r = self
            .http
            .post(format!("{}/v1/pairings/token", self.base))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
                ("client_id", DEFAULT_PUBLIC_CLIENT_ID),
            ])
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.read(r).await
    }

    pub async fn connection(&self, access: &Secret) -> Result<ConnectionInfo, ClientError> {
        let r = self
            .http
            .get(format!("{}/v1/connection", self.base))
            .bearer_auth(access.expose())
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.read(r).await
    }
}
