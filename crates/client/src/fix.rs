//! Putting a mistake right from the device: send a refused document again, put one aside, or read
//! its history at the proxy. (Correcting a document is saving it again under its `client_ref`: see
//! [`crate::outbox::Outbox::save`].) Each action follows the proxy's rules: a document the proxy
//! never had (pending, rejected) is dealt with here; one it has is asked of it, and its answer is
//! what the outbox then shows.

use ledgerlink_wire::documents::{DiscardRequest, DocumentList, DocumentState, DocumentView};
use reqwest::Method;

use crate::outbox::{Entry, OutboxError};
use crate::sync::{SyncError, Syncer};

impl Syncer {
    /// The proxy's copy of a document of this device, by `client_ref` (with its earlier versions
    /// when `history`). `None` when the proxy does not have it.
    pub async fn proxy_document(
        &self,
        client_ref: &str,
        history: bool,
    ) -> Result<Option<DocumentView>, SyncError> {
        let mut url = reqwest::Url::parse("http://proxy/v1/documents").expect("a valid URL");
        url.query_pairs_mut()
            .append_pair("client_ref", client_ref)
            .append_pair("limit", "1");
        let query = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        let query = &query;
        let list: DocumentList = self
            .authed(|client, creds| async move {
                client
                    .call(Method::GET, query, &creds.access_token, None::<&()>)
                    .await
            })
            .await?;
        let Some(found) = list.documents.into_iter().next() else {
            return Ok(None);
        };
        if !history {
            return Ok(Some(found));
        }
        let path = format!("/v1/documents/{}?history=true", found.id);
        let path = &path;
        self.authed(|client, creds| async move {
            client
                .call(Method::GET, path, &creds.access_token, None::<&()>)
                .await
        })
        .await
        .map(Some)
    }

    /// Sends a refused document again, unchanged: a rejected one (the proxy never had it) goes
    /// to the proxy again now, a failed one is queued again at the proxy. Answers the document as
    /// it is then. While the proxy cannot be reached a rejected one stays saved, to go with the
    /// next sync.
    pub async fn retry(&self, client_ref: &str) -> Result<Entry, SyncError> {
        let entry = self.local(client_ref)?;
        match entry.state {
            DocumentState::Rejected => {
                self.outbox.resend_rejected(client_ref)?;
                match self.upload().await {
                    Ok(_) => {}
                    Err(e) if e.is_transient() => {}
                    Err(e) => return Err(e),
                }
            }
            DocumentState::Failed => {
                let view = self.act(client_ref, "retry", None).await?;
                self.outbox.record(&view)?;
            }
            state => return Err(not_now(client_ref, "sent again", state)),
        }
        self.local(client_ref)
    }

    /// Puts a document aside for good, with the reason (checked as the proxy checks it). One the
    /// proxy never had is put aside here; a failed or queued one at the proxy, which refuses when
    /// it may already be in Xero.
    pub async fn discard(&self, client_ref: &str, reason: &str) -> Result<Entry, SyncError> {
        let entry = self.local(client_ref)?;
        match entry.state {
            DocumentState::Pending | DocumentState::Rejected => {
                return Ok(self.outbox.discard_local(client_ref, reason)?);
            }
            DocumentState::Failed | DocumentState::Queued => {
                let body = DiscardRequest {
                    reason: reason.to_string(),
                };
                let view = self.act(client_ref, "discard", Some(&body)).await?;
                self.outbox.record(&view)?;
            }
            state => return Err(not_now(client_ref, "discarded", state)),
        }
        self.local(client_ref)
    }

    /// Sends the voids asked for on this device to the proxy. A refusal (the proxy knows of a
    /// payment, the invoice is gone) puts the document back to `sent` with the reason; while the
    /// proxy cannot be reached they wait here.
    pub async fn send_voids(&self) -> Result<usize, SyncError> {
        let mut sent = 0;
        for entry in self.outbox.void_requests()? {
            let r = &entry.client_ref;
            match self.act(r, "void", None).await {
                Ok(view) => {
                    self.outbox.void_answered(r, Ok(&view))?;
                    sent += 1;
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(SyncError::Credentials(c)) => return Err(SyncError::Credentials(c)),
                Err(e) => self.outbox.void_answered(r, Err(&e.to_string()))?,
            }
        }
        Ok(sent)
    }

    fn local(&self, client_ref: &str) -> Result<Entry, SyncError> {
        Ok(self
            .outbox
            .get(client_ref)?
            .ok_or_else(|| OutboxError::NotFound(client_ref.to_string()))?)
    }

    /// `POST /v1/documents/{id}/{action}` for the proxy's document of this `client_ref`.
    async fn act(
        &self,
        client_ref: &str,
        action: &str,
        body: Option<&DiscardRequest>,
    ) -> Result<DocumentView, SyncError> {
        let found = self
            .proxy_document(client_ref, false)
            .await?
            .ok_or_else(|| OutboxError::NotFound(client_ref.to_string()))?;
        let path = format!("/v1/documents/{}/{action}", found.id);
        let path = &path;
        self.authed(|client, creds| async move {
            client
                .call(Method::POST, path, &creds.access_token, body)
                .await
        })
        .await
    }
}

fn not_now(client_ref: &str, action: &'static str, state: DocumentState) -> SyncError {
    let why = match state {
        DocumentState::Pending => "it has not reached the proxy yet".to_string(),
        DocumentState::Queued | DocumentState::Sending => "it is on its way to Xero".to_string(),
        DocumentState::Discarded => "it was discarded".to_string(),
        other => format!("it is {} in Xero", other.as_str()),
    };
    SyncError::Outbox(OutboxError::NotNow {
        client_ref: client_ref.to_string(),
        action,
        why,
    })
}
