//! The HTTP/1 server: accepts connections up to a maximum and serves each with hyper, closing
//! those that trickle their request head or sit idle.
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout never fires and a client
//! could hold a connection (and its memory) forever by sending one byte now and then. hyper's
//! own timeout also starts as soon as the previous response is written, so on its own it would
//! close idle keep-alive connections as early as trickled heads; a watchdog per connection
//! tells the two apart: the head clock starts at the request's first byte, the idle clock at
//! the last byte in either direction. Slow bodies are the router's (`body_deadline`: a 408).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::config::HttpServerSettings;

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the connections to finish their requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // A permit per connection: past the maximum, accept() is not called and new connections
    // wait in the kernel's backlog.
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_seen) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let closing = closing_seen.clone();
        tokio::spawn(async move {
            serve_connection(stream, remote, router, limits, closing).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Every permit back: every connection has ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = connections.acquire_many(all).await;
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: HttpServerSettings,
    mut closing: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        requests.request_started();
        request.extensions_mut().insert(ConnectInfo(remote));
        let router = router.clone();
        let requests = requests.clone();
        async move {
            let response = router.oneshot(request.map(axum::body::Body::new)).await;
            requests.request_ended();
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // A backstop only: the watchdog below closes slow heads and idle connections first.
        .header_read_timeout(limits.header_timeout + limits.idle_timeout)
        .keep_alive(true);
    let mut connection = std::pin::pin!(builder.serve_connection(io, service));
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut watchdog = tokio::time::interval(tick);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, %remote, "connection ended with an error");
                }
                return;
            }
            _ = closing.wait_for(|closing| *closing), if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = watchdog.tick() => {
                if let Some(why) = activity.overdue(&limits) {
                    tracing::debug!(%remote, why, "closing the connection");
                    // Dropping the connection closes the socket.
                    return;
                }
            }
        }
    }
}

/// What a connection is doing, written by its socket and its requests, read by its watchdog.
struct Activity {
    started: Instant,
    /// Milliseconds since `started` of the last byte read or written.
    last_io: AtomicU64,
    /// Milliseconds since `started`, plus one, of the first byte of a request head not yet
    /// complete; 0 when none is being read.
    head_started: AtomicU64,
    /// Requests whose head has arrived and whose handler has not answered yet.
    in_request: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_io: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            in_request: AtomicUsize::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn read(&self) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_request.load(Ordering::Relaxed) == 0 {
            let _ = self.head_started.compare_exchange(
                0,
                now + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn wrote(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.in_request.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
    }

    fn request_ended(&self) {
        self.in_request.fetch_sub(1, Ordering::Relaxed);
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    /// Why the connection should be closed now, if it should.
    fn overdue(&self, limits: &HttpServerSettings) -> Option<&'static str> {
        if self.in_request.load(Ordering::Relaxed) > 0 {
            // The request's body has its own deadline, and the handler its own bounds.
            return None;
        }
        let now = self.now();
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let head_started = self.head_started.load(Ordering::Relaxed);
        if head_started > 0 {
            let since = now.saturating_sub(head_started - 1);
            return (since > millis(limits.header_timeout))
                .then_some("the request head took longer than CBH_HTTP_HEADER_TIMEOUT");
        }
        let idle = now.saturating_sub(self.last_io.load(Ordering::Relaxed));
        (idle > millis(limits.idle_timeout)).then_some("idle past CBH_HTTP_IDLE_TIMEOUT")
    }
}

/// A socket that reports its traffic to the connection's `Activity`.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
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
            self.activity.wrote();
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
