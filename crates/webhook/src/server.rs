//! The HTTP server both binaries run: hyper's HTTP/1 connections with limits that
//! `axum::serve` does not set (it runs hyper without a timer, so even hyper's own header timeout
//! is inert).
//!
//! - **Header timeout:** a client must send a request's whole head within
//!   `INBOX_HTTP_HEADER_TIMEOUT_MS`, including the next request on a kept-alive connection, so
//!   a slow-loris connection (or an idle kept-alive one) is closed instead of held forever.
//! - **Idle timeout:** a connection on which no byte moves either way for
//!   `INBOX_HTTP_IDLE_TIMEOUT_MS` is closed (an event stream's heartbeat keeps a live one busy).
//! - **Request timeout:** a non-streaming request, body upload included, gets
//!   `INBOX_HTTP_REQUEST_TIMEOUT_MS` (applied by the routers, which know which routes stream).
//! - **Connection cap:** past `INBOX_MAX_CONNECTIONS` open connections in this process, a new
//!   one is closed as soon as it is accepted. The cap is per process.
//!
//! Every connection is served without Nagle's algorithm: event streams write small frames as
//! events happen, and with Nagle on a frame written while the previous one is unacknowledged
//! waits for the client's delayed ACK (up to 40 ms on Linux, once the whole p99 of fan-out).
//! Graceful shutdown lets in-flight requests finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::IntoResponse;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Transport limits, from `INBOX_HTTP_*` and `INBOX_MAX_CONNECTIONS` or flags.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct HttpLimits {
    /// Milliseconds a client has to send a request's head (and, on a kept-alive connection,
    /// the next one) before the connection is closed.
    #[arg(long, env = "INBOX_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,

    /// Milliseconds without a byte moving either way after which a connection is closed.
    #[arg(long, env = "INBOX_HTTP_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,

    /// Milliseconds a non-streaming request may take, reading its body included.
    #[arg(long, env = "INBOX_HTTP_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// Open connections this process serves at most; more are closed on accept.
    #[arg(long, env = "INBOX_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            request_timeout_ms: 30_000,
            max_connections: 20_000,
        }
    }
}

impl HttpLimits {
    /// The request timeout, for the routers' timeout layer.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

/// `router` with every request's handling, reading its body included, bounded by `timeout`:
/// past it the answer is 503 `unavailable` (the client may retry). A streaming response's body
/// is not bounded: only producing its head is.
pub fn with_request_timeout(router: Router, timeout: Duration) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| async move {
            match tokio::time::timeout(timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => {
                    tracing::warn!(?timeout, "a request took longer than its timeout");
                    let body = serde_json::json!({"error": {
                        "code": "unavailable",
                        "message": "The request took too long and was stopped; retry shortly."
                    }});
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(body),
                    )
                        .into_response()
                }
            }
        },
    ))
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves, then lets in-flight
/// requests finish (open event streams are ended by their own shutdown signal).
///
/// # Errors
/// Never for a failed accept (logged, then retried); the signature leaves room for set-up
/// failures.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let header_timeout = Duration::from_millis(limits.header_timeout_ms.max(1));
    let idle_timeout = Duration::from_millis(limits.idle_timeout_ms.max(1));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    // One route table shared by every connection (see `inbox_api::serve`).
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::debug!("connection refused: the process serves its maximum already");
            drop(stream);
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("could not set TCP_NODELAY on a connection: {e}");
        }
        let activity = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: Arc::clone(&activity),
            started,
        });
        let connection = graceful.watch(builder.serve_connection(io, service.clone()));
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                () = idle(&activity, started, idle_timeout) => {
                    tracing::debug!("closing a connection idle for {idle_timeout:?}");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Resolves once nothing has moved on the connection for `timeout`.
async fn idle(activity: &AtomicU64, started: Instant, timeout: Duration) {
    loop {
        let last = Duration::from_millis(activity.load(Ordering::Relaxed));
        let quiet = started.elapsed().saturating_sub(last);
        if quiet >= timeout {
            return;
        }
        tokio::time::sleep(timeout - quiet).await;
    }
}

/// A connection that records when a byte last moved, in milliseconds since `started`.
struct Watched {
    inner: TcpStream,
    activity: Arc<AtomicU64>,
    started: Instant,
}

impl Watched {
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.store(now, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Generous: only guards against a hang, never asserts a speed.
    const GUARD: Duration = Duration::from_secs(20);

    async fn start(limits: HttpLimits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = with_request_timeout(
            Router::new()
                .route("/", get(|| async { "ok" }))
                .route("/never", get(std::future::pending::<&'static str>)),
            limits.request_timeout(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, limits, async {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// `GET path` on a connection of its own; the whole answer.
    async fn fetch(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .expect("write");
        let mut answer = String::new();
        tokio::time::timeout(GUARD, stream.read_to_string(&mut answer))
            .await
            .expect("answered")
            .expect("read");
        answer
    }

    /// Waits until the server closes the connection; panics if it never does.
    async fn closed_by_server(stream: &mut TcpStream) {
        let mut buf = [0_u8; 256];
        loop {
            let read = tokio::time::timeout(GUARD, stream.read(&mut buf))
                .await
                .expect("the server closed the connection");
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    #[tokio::test]
    async fn a_slow_loris_is_closed_after_the_header_timeout_while_others_are_served() {
        let (addr, _stop) = start(HttpLimits {
            header_timeout_ms: 300,
            ..HttpLimits::default()
        })
        .await;
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            .await
            .expect("write");
        assert!(fetch(addr, "/").await.ends_with("ok"), "others are served");
        closed_by_server(&mut slow).await;
    }

    #[tokio::test]
    async fn a_connection_with_nothing_moving_is_closed_after_the_idle_timeout() {
        let (addr, _stop) = start(HttpLimits {
            header_timeout_ms: 600_000,
            idle_timeout_ms: 300,
            ..HttpLimits::default()
        })
        .await;
        let mut quiet = TcpStream::connect(addr).await.expect("connect");
        closed_by_server(&mut quiet).await;
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_on_accept() {
        let (addr, _stop) = start(HttpLimits {
            max_connections: 2,
            ..HttpLimits::default()
        })
        .await;
        let first = TcpStream::connect(addr).await.expect("connect");
        let _second = TcpStream::connect(addr).await.expect("connect");
        let mut third = TcpStream::connect(addr).await.expect("connect");
        closed_by_server(&mut third).await;
        drop(first);
        // The freed place is taken again (the server notices the close on its own schedule).
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            // A connection closed on accept answers nothing: the read ends empty.
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let _ = stream
                .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .await;
            let mut answer = String::new();
            let _ = tokio::time::timeout(GUARD, stream.read_to_string(&mut answer)).await;
            if answer.ends_with("ok") {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "a place frees up");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_request_past_its_timeout_is_answered_503() {
        let (addr, _stop) = start(HttpLimits {
            request_timeout_ms: 200,
            ..HttpLimits::default()
        })
        .await;
        let answer = fetch(addr, "/never").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("\"unavailable\""), "{answer}");
    }
}
