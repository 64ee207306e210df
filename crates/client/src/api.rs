//! The proxy's device API, as the device calls it.

use ledgerlink_wire::documents::{BatchResult, DocumentKind, EventPage, Problem};
use ledgerlink_wire::error::OAuthErrorBody;
use ledgerlink_wire::pairing::{DeviceTokens, PairingRequest, PairingResponse, DEVICE_CODE_GRANT};
use ledgerlink_wire::{ApiError, ConnectionInfo, ErrorCode, Secret, DEFAULT_PUBLIC_CLIENT_ID};
use reqwest::Method;
use std::time::Duration;

fn problems_suffix(problems: &[Problem]) -> String {
    if problems.is_empty() {
        String::new()
    } else {
        format!(": {}", crate::outbox::problems_message(problems))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the proxy at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    /// The proxy answered with one of its error codes (and, for a refused body, every problem).
    #[error("{message} ({code}){}", problems_suffix(problems))]
    Api {
        code: ErrorCode,
        message: String,
        problems: Vec<Problem>,
    },
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

    /// The device's credentials no longer work: it must pair again.
    pub fn is_unpaired(&self) -> bool {
        matches!(
            self.code(),
            Some(ErrorCode::DeviceRevoked | ErrorCode::InvalidGrant | ErrorCode::Unauthenticated)
        )
    }

    /// Worth trying again later: the proxy is down, overloaded, or Xero is unavailable behind it.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Api { code, .. } => matches!(
                code,
                ErrorCode::ProviderUnavailable
                    | ErrorCode::Internal
                    | ErrorCode::RateLimited
                    | ErrorCode::Unavailable
            ),
            Self::Protocol(_) => false,
        }
    }
}

/// Why a request got no answer, in words a shop's staff can act on: the common failures by name,
/// anything else as the innermost cause says it (reqwest's own message only says "error sending
/// request"), without the "(os error N)" that means nothing to them.
fn unreachable_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "it did not answer in time".into();
    }
    let mut innermost = e.to_string();
    let mut kind = None;
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        innermost = cause.to_string();
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            kind = Some(io.kind());
        }
        source = cause.source();
    }
    plain_reason(kind, &innermost)
}

fn plain_reason(kind: Option<std::io::ErrorKind>, innermost: &str) -> String {
    use std::io::ErrorKind::*;
    let lower = innermost.to_ascii_lowercase();
    match kind {
        Some(ConnectionRefused) => return "nothing answers at that address".into(),
        Some(ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof) => {
            return "the connection was cut".into()
        }
        Some(TimedOut) => return "it did not answer in time".into(),
        Some(NetworkUnreachable | HostUnreachable | NetworkDown) => {
            return "this computer has no network route to it (check the network)".into()
        }
        _ => {}
    }
    if lower.contains("failed to lookup address")
        || lower.contains("name or service not known")
        || lower.contains("name resolution")
        || lower.contains("no address associated")
    {
        return "its name could not be found (check the address and the network)".into();
    }
    // rustls: the proxy's certificate is the problem, or the secure connection as a whole.
    if lower.starts_with("invalid peer certificate") {
        return format!("its certificate was not accepted ({innermost})");
    }
    if lower.contains("tls") || lower.contains("handshake") || lower.contains("alert") {
        return format!("a secure connection could not be set up ({innermost})");
    }
    match innermost.rfind(" (os error ") {
        Some(at) if innermost.ends_with(')') => innermost[..at].to_string(),
        _ => innermost.to_string(),
    }
}

#[derive(Clone)]
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

    /// The proxy's URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: unreachable_reason(&e.without_url()),
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
                problems: e.problems,
            });
        }
        if let Ok(e) = serde_json::from_slice::<OAuthErrorBody>(&bytes) {
            return Err(ClientError::Api {
                code: e.error,
                message: e.error_description.unwrap_or_default(),
                problems: Vec::new(),
            });
        }
        if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            // A gateway in front of the proxy (or the proxy restarting): try again later.
            return Err(ClientError::Unreachable {
                url: self.base.clone(),
                reason: format!("it answered {status}"),
            });
        }
        Err(ClientError::Protocol(format!(
            "the proxy answered {status}"
        )))
    }

    /// Starts pairing; a device paired now sends its access token (`current`), which lets the
    /// pairing move it to another organisation.
    pub async fn start_pairing(
        &self,
        device_id: uuid::Uuid,
        device_name: &str,
        provider: ledgerlink_wire::Provider,
        current: Option<&Secret>,
    ) -> Result<PairingResponse, ClientError> {
        let req = PairingRequest {
            client_id: DEFAULT_PUBLIC_CLIENT_ID.into(),
            device_id,
            device_name: device_name.into(),
            provider,
        };
        let mut request = self.http.post(format!("{}/v1/pairings", self.base));
        if let Some(token) = current {
            request = request.bearer_auth(token.expose());
        }
        let r = request
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
        self.call(Method::GET, "/v1/connection", access, None::<&()>)
            .await
    }

    /// An authenticated call to the device API, answering the JSON body.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        access: &Secret,
        body: Option<&(impl serde::Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(access.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let r = request.send().await.map_err(|e| self.unreachable(e))?;
        self.read(r).await
    }

    /// Pushes a batch of one kind. A `422` still carries the batch's answer (the accepted documents
    /// are stored all the same), so both `202` and `422` answer `Ok`.
    pub async fn push(
        &self,
        access: &Secret,
        kind: DocumentKind,
        documents: &[serde_json::Value],
    ) -> Result<BatchResult, ClientError> {
        let (path, key) = match kind {
            DocumentKind::Invoice => ("/v1/invoices", "invoices"),
            DocumentKind::Payment => ("/v1/payments", "payments"),
            DocumentKind::Shift => ("/v1/shifts", "shifts"),
            DocumentKind::CreditNote => ("/v1/credit-notes", "credit_notes"),
            DocumentKind::Order => ("/v1/orders", "orders"),
        };
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(access.expose())
            .json(&serde_json::json!({ key: documents }))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if r.status() == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
            let bytes = r.bytes().await.map_err(|e| self.unreachable(e))?;
            if let Ok(result) = serde_json::from_slice::<BatchResult>(&bytes) {
                return Ok(result);
            }
            let e: ApiError =
                serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))?;
            return Err(ClientError::Api {
                code: e.code,
                message: e.message,
                problems: Vec::new(),
            });
        }
        self.read(r).await
    }

    /// The events after `after`, waiting up to `wait` seconds for one when there are none yet.
    pub async fn events(
        &self,
        access: &Secret,
        after: i64,
        wait: u64,
    ) -> Result<EventPage, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/events?after={after}&wait={wait}"),
            access,
            None::<&()>,
        )
        .await
    }

    /// Deletes something (`/v1/device`, `/v1/connection?confirm=true`); `204` answers `Ok`.
    pub async fn delete(&self, access: &Secret, path: &str) -> Result<(), ClientError> {
        let r = self
            .http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(access.expose())
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if r.status().is_success() {
            return Ok(());
        }
        self.read::<serde_json::Value>(r).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn common_failures_are_named_in_plain_words() {
        assert_eq!(
            plain_reason(
                Some(ErrorKind::ConnectionRefused),
                "Connection refused (os error 111)"
            ),
            "nothing answers at that address"
        );
        assert_eq!(
            plain_reason(
                Some(ErrorKind::ConnectionReset),
                "Connection reset by peer (os error 104)"
            ),
            "the connection was cut"
        );
        assert!(plain_reason(
            None,
            "failed to lookup address information: Name or service not known"
        )
        .starts_with("its name could not be found"));
        let tls = plain_reason(None, "invalid peer certificate: UnknownIssuer");
        assert!(
            tls.starts_with("its certificate was not accepted") && tls.contains("UnknownIssuer"),
            "{tls}"
        );
        let tls = plain_reason(None, "peer is incompatible: ServerDoesNotSupportTls12Or13");
        assert!(
            tls.starts_with("a secure connection could not be set up"),
            "{tls}"
        );
        // rustls's "invalid dns name" is about the address as written, not a lookup.
        assert!(!plain_reason(None, "invalid dns name").starts_with("its name could not be found"));
        assert_eq!(
            plain_reason(Some(ErrorKind::Other), "something odd (os error 5)"),
            "something odd"
        );
    }
}
