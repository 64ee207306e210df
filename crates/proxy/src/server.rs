//! The HTTP front of the proxy. It accepts connections itself (rather than through `axum::serve`)
//! so that no client can hold its file descriptors:
//!
//! - at most `max_connections_per_address` open connections per client address (IPv6 by /64);
//!   more are closed as they are accepted;
//! - a request's headers must arrive within `header_read_timeout_secs` (from the connection's
//!   start, or from the first byte of a later request);
//! - a connection with no request in flight closes after `idle_timeout_secs`;
//! - running out of file descriptors slows the accept loop down instead of spinning it.
//!
//! hyper has one timer for the first two (its header-read timer also runs while a keep-alive
//! connection waits for its next request), so both are kept here, in a wrapper around the socket
//! that knows from the service when a request is in flight. A request's body has its own bound
//! (see `crate::body`).

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::logs::Every;
use crate::settings::ServerSettings;

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish (10 s at
/// most).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Our own timers (below) replace hyper's, which would also cut idle keep-alive connections.
    builder.http1().header_read_timeout(None);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = Arc::new(OpenConnections::new(limits.max_connections_per_address));
    let accept_trouble = Every::minute();
    // Owned here, so a server that is dropped (a killed proxy) takes its connections with it.
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors (EMFILE) or the like: the connection waits in the
                    // backlog; try again shortly instead of spinning.
                    if accept_trouble.due() {
                        tracing::warn!(error = %e, "cannot accept connections; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = open.take(peer.ip()) else {
            // Dropping the stream closes it: the address holds its share already.
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Mutex::new(Activity::new()));
        let io = Timed::new(stream, activity.clone(), &limits);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let busy = Busy::start(activity.clone());
            let answer = app.clone().oneshot(req.map(Body::new));
            async move {
                let response = answer.await.unwrap_or_else(|never| match never {});
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| Body::new(Guarded { body, _busy: busy })),
                )
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            let _slot = slot;
            let _ = conn.await;
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; stopping anyway");
        }
    }
    Ok(())
}

/// Open connections per client address (IPv6 counted by /64, one customer's network).
struct OpenConnections {
    limit: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
    refused: Every,
}

/// One open connection's place in [`OpenConnections`]; given back when dropped.
struct Slot {
    owner: Arc<OpenConnections>,
    address: IpAddr,
}

impl OpenConnections {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            counts: Mutex::new(HashMap::new()),
            refused: Every::minute(),
        }
    }

    /// A slot for one more connection from `address`, or `None` when it holds its limit (0: no
    /// limit).
    fn take(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        let address = crate::pairing::bucket(address);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(address).or_insert(0);
        if self.limit > 0 && *n >= self.limit {
            if self.refused.due() {
                tracing::warn!(%address, open = *n, "refusing connections: this address holds its limit (server.max_connections_per_address)");
            }
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: self.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// What a connection is doing, as its timers see it.
#[derive(Debug)]
struct Activity {
    /// Requests being answered (their response bodies not yet finished).
    busy: usize,
    /// When the current wait began: the connection's start, the end of the last answer, or the
    /// first byte of the next request.
    since: Instant,
    /// A byte of the next request has arrived.
    reading: bool,
    /// At least one request was answered (so a quiet connection is idle, not slow).
    answered: bool,
    /// The reader that last found nothing to read while a request was in flight: woken when the
    /// answer is done, so it reads again and the idle timer starts (hyper itself only comes back
    /// to read when the socket has something).
    reader: Option<std::task::Waker>,
}

impl Activity {
    fn new() -> Self {
        Self {
            busy: 0,
            since: Instant::now(),
            reading: false,
            answered: false,
            reader: None,
        }
    }

    /// When the connection must close if nothing changes; `None` while a request is in flight.
    fn deadline(&self, header: Duration, idle: Duration) -> Option<Instant> {
        if self.busy > 0 {
            return None;
        }
        let wait = if self.answered && !self.reading {
            idle
        } else {
            header
        };
        Some(self.since + wait)
    }

    fn received(&mut self) {
        if self.busy == 0 && !self.reading {
            self.reading = true;
            // A new connection's headers are due from its start; a later request's from its
            // first byte.
            if self.answered {
                self.since = Instant::now();
            }
        }
    }
}

/// Marks a request in flight until the body of its answer is finished (or dropped).
struct Busy(Arc<Mutex<Activity>>);

impl Busy {
    fn start(activity: Arc<Mutex<Activity>>) -> Self {
        {
            let mut a = activity.lock().unwrap_or_else(|e| e.into_inner());
            a.busy += 1;
        }
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut a = self.0.lock().unwrap_or_else(|e| e.into_inner());
        a.busy = a.busy.saturating_sub(1);
        if a.busy == 0 {
            a.answered = true;
            a.reading = false;
            a.since = Instant::now();
            if let Some(reader) = a.reader.take() {
                reader.wake();
            }
        }
    }
}

/// A response body that keeps its request marked in flight while it is being sent.
struct Guarded {
    body: Body,
    _busy: Busy,
}

impl HttpBody for Guarded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A socket whose reads fail with `TimedOut` once the connection has waited too long for a
/// request's headers or sat idle too long between requests.
struct Timed<S> {
    inner: S,
    activity: Arc<Mutex<Activity>>,
    header: Duration,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<S> Timed<S> {
    fn new(inner: S, activity: Arc<Mutex<Activity>>, limits: &ServerSettings) -> Self {
        Self {
            inner,
            activity,
            header: Duration::from_secs(limits.header_read_timeout_secs.max(1)),
            idle: Duration::from_secs(limits.idle_timeout_secs.max(1)),
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .received();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = {
                    let mut a = this.activity.lock().unwrap_or_else(|e| e.into_inner());
                    let deadline = a.deadline(this.header, this.idle);
                    if deadline.is_none() {
                        a.reader = Some(cx.waker().clone());
                    }
                    deadline
                };
                let Some(deadline) = deadline else {
                    return Poll::Pending;
                };
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client was too slow to send a request",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Raises this process's soft limit on open files to its hard limit (systemd's default soft limit
/// of 1,024 is low for a server), and logs both.
pub fn raise_open_files_limit() {
    #[cfg(unix)]
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, hard)) => match rlimit::increase_nofile_limit(hard) {
            Ok(now) => tracing::info!(soft_before = soft, soft = now, hard, "open files limit"),
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open files limit")
            }
        },
        Err(e) => tracing::warn!(error = %e, "cannot read the open files limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_address: usize) -> ServerSettings {
        ServerSettings {
            header_read_timeout_secs: 1,
            idle_timeout_secs: 2,
            max_connections_per_address: per_address,
            ..ServerSettings::default()
        }
    }

    #[test]
    fn an_address_holds_at_most_its_limit_and_gets_slots_back() {
        let open = Arc::new(OpenConnections::new(2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = open.take(a).unwrap();
        let _second = open.take(a).unwrap();
        assert!(open.take(a).is_none());
        assert!(open.take(b).is_some(), "other addresses are not affected");
        drop(first);
        assert!(open.take(a).is_some());
        let unlimited = Arc::new(OpenConnections::new(0));
        let slots: Vec<_> = (0..1000).map(|_| unlimited.take(a).unwrap()).collect();
        assert_eq!(slots.len(), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn headers_are_due_from_the_start_and_idle_time_runs_between_requests() {
        let header = Duration::from_secs(5);
        let idle = Duration::from_secs(60);
        let activity = Arc::new(Mutex::new(Activity::new()));
        let start = Instant::now();
        let deadline = |a: &Arc<Mutex<Activity>>| a.lock().unwrap().deadline(header, idle);
        assert_eq!(deadline(&activity), Some(start + header));
        tokio::time::advance(Duration::from_secs(2)).await;
        activity.lock().unwrap().received();
        assert_eq!(
            deadline(&activity),
            Some(start + header),
            "a first request's bytes do not buy more time"
        );
        let busy = Busy::start(activity.clone());
        assert_eq!(deadline(&activity), None, "no timer while answering");
        tokio::time::advance(Duration::from_secs(300)).await;
        drop(busy);
        let answered = Instant::now();
        assert_eq!(deadline(&activity), Some(answered + idle));
        tokio::time::advance(Duration::from_secs(30)).await;
        activity.lock().unwrap().received();
        assert_eq!(
            deadline(&activity),
            Some(Instant::now() + header),
            "the next request's headers are due from its first byte"
        );
    }

    #[tokio::test]
    async fn a_half_sent_request_is_cut_and_an_idle_connection_closed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, limits(0), async move {
            let _ = rx.await;
        }));
        // Headers never finished: closed after the header timeout (1 s).
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        // A keep-alive connection answers, then closes after the idle timeout (2 s), not the
        // header timeout.
        let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 1024];
        let n = kept.read(&mut answer).await.unwrap();
        assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
        let answered = std::time::Instant::now();
        let mut rest = Vec::new();
        let _ = kept.read_to_end(&mut rest).await;
        let idle = answered.elapsed();
        assert!(
            idle >= Duration::from_millis(1800) && idle < Duration::from_secs(6),
            "{idle:?}"
        );
        let _ = tx.send(());
        server.await.unwrap().unwrap();
    }
}
