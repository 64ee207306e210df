//! Posting a provider's notification to a receiver until it is taken: one attempt now, then
//! retries on the provider's own schedule. Each provider says what answer counts as taken (Xero:
//! `200`; HubRise: anything from `200` to `499`), when to try again and when to give up, and keeps
//! its own log of the attempts.

use std::time::Duration;

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// 1 for the first post.
    pub attempt: u32,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// Why there was no answer (`timed out`, `connection failed`).
    pub error: Option<String>,
    /// Whether the receiver took it: no more attempts follow.
    pub taken: bool,
}

/// Posts `body` with `headers` to `url`; after each attempt the receiver did not take, waits
/// `next_wait(attempts so far)` and tries again, or gives up when it says `None`. `record` hears
/// of every attempt. Whether the receiver took it in the end.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: &str,
    taken: impl Fn(u16) -> bool,
    mut next_wait: impl FnMut(u32) -> Option<Duration>,
    mut record: impl FnMut(Tried),
) -> bool {
    for attempt in 1.. {
        let mut request = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let (status, error) = match request.send().await {
            Ok(r) => (Some(r.status().as_u16()), None),
            Err(e) => (
                None,
                Some(if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    "connection failed".to_string()
                }),
            ),
        };
        let done = status.is_some_and(&taken);
        record(Tried {
            attempt,
            status,
            error,
            taken: done,
        });
        if done {
            return true;
        }
        match next_wait(attempt) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return false,
        }
    }
    false
}
