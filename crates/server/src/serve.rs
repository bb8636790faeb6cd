//! The HTTP/1.1 accept loop: a bounded number of connections, each with a header-read timeout
//! and an idle timeout, keptn-shaped bodies on the errors hyper answers itself, and a lingering
//! close so that a client still sending a refused body reads its answer instead of a reset.
//! (`axum::serve` has none of these: idle sockets that never send a header are kept forever.)

use axum::Router;
use axum::body::Body;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};

/// Limits of the HTTP layer (flags `--max-connections`, `--header-read-timeout`, `--idle-timeout`).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Open connections at most; one more waits a moment for a slot, then is answered 503.
    pub max_connections: usize,
    /// From a connection's start, or the end of its previous response, to a complete request head.
    pub header_read_timeout: Duration,
    /// A connection whose client sends nothing (mid-body) or reads nothing (a response it does not
    /// take) for this long is closed. Handlers that are still working do not count as idle.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// After the server closes its side, how long it keeps reading (and discarding) what a client still
/// sends, so the client reads the answer instead of a reset. Bounded per read and in total.
const LINGER_QUIET: Duration = Duration::from_secs(2);
const LINGER_TOTAL: Duration = Duration::from_secs(10);
/// Connections over the limit waiting for a slot or being answered 503, at most (more are
/// closed at once), and how long they wait.
const MAX_REFUSING: usize = 64;
const SLOT_WAIT: Duration = Duration::from_millis(250);

/// Serves `app` on `listener` until `shutdown` completes, then lets open requests finish.
pub async fn serve(listener: TcpListener, app: Router, limits: HttpLimits, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSING));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors, mostly: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, limits, stop) = (app.clone(), limits.clone(), stop_rx.clone());
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            tokio::spawn(async move {
                serve_connection(stream, app, &limits, stop).await;
                drop(permit);
            });
            continue;
        }
        // At the limit: wait a moment for a slot (one is being freed right now, often), then 503.
        let Ok(waiting) = refusals.clone().try_acquire_owned() else { continue };
        let slots = slots.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(SLOT_WAIT, slots.acquire_owned()).await {
                Ok(Ok(permit)) => {
                    drop(waiting);
                    serve_connection(stream, app, &limits, stop).await;
                    drop(permit);
                }
                _ => {
                    tracing::warn!(%peer, max = limits.max_connections, "connection limit reached; answered 503");
                    refuse(stream).await;
                    drop(waiting);
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it is done: all slots back = all connections closed.
    let _ = slots.acquire_many(limits.max_connections as u32).await;
}

async fn serve_connection(stream: TcpStream, app: Router, limits: &HttpLimits, mut stop: watch::Receiver<bool>) {
    let busy = Arc::new(AtomicUsize::new(0));
    let io = TokioIo::new(Guarded::new(stream, limits.idle_timeout, busy.clone()));
    let idle = limits.idle_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let guard = Busy::enter(&busy);
        let req = req.map(|body| Body::new(tower_http::timeout::TimeoutBody::new(idle, body)));
        let mut app = app.clone();
        async move {
            let resp = tower_service::Service::call(&mut app, req).await;
            drop(guard);
            resp
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Over the connection limit: a short 503, then close (bounded in time).
async fn refuse(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let response = error_response(503, "the server has reached its connection limit (--max-connections); retry later");
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&response).await?;
        stream.shutdown().await?;
        let mut scratch = [0u8; 8192];
        while stream.read(&mut scratch).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// A full HTTP/1.1 response carrying keptn's `{"code","message"}` body; the connection closes after it.
fn error_response(code: u16, message: &str) -> Vec<u8> {
    let status = axum::http::StatusCode::from_u16(code).expect("valid status");
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    format!(
        "HTTP/1.1 {code} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// hyper answers requests it cannot parse itself, with an empty body. Our handlers never send
/// an empty 400/414/431 (every error has a JSON body), so such a head is one of hyper's.
fn replace_parse_error(head: &[u8]) -> Option<Vec<u8>> {
    let code = match head.get(..13)? {
        b"HTTP/1.1 400 " => 400,
        b"HTTP/1.1 414 " => 414,
        b"HTTP/1.1 431 " => 431,
        _ => return None,
    };
    if !head.ends_with(b"\r\n\r\n") || !head.windows(19).any(|w| w.eq_ignore_ascii_case(b"\ncontent-length: 0\r")) {
        return None;
    }
    let message = match code {
        414 => "the request URL is longer than the server accepts (64 KiB); shorten the query",
        431 => "the request headers are larger than the server accepts; send fewer or smaller headers",
        _ => {
            "the request is not valid HTTP/1.1 (a malformed request line or header, e.g. a NUL or control character in a header value)"
        }
    };
    Some(error_response(code, message))
}

/// Whether a write is a response head with `connection: close`.
fn announces_close(buf: &[u8]) -> bool {
    if !buf.starts_with(b"HTTP/1.") {
        return false;
    }
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n").map_or(buf, |end| &buf[..end]);
    head.windows(19).any(|w| w.eq_ignore_ascii_case(b"\r\nconnection: close"))
}

/// Counts the requests of a connection whose handler is still working (not idle time).
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::Relaxed);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket as hyper sees it: idle timeout, rewritten parse-error answers, lingering close.
struct Guarded {
    inner: TcpStream,
    idle: Duration,
    busy: Arc<AtomicUsize>,
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
    /// A replacement being written for hyper's buffer of `claimed` bytes: (bytes, written, claimed).
    replacing: Option<(Vec<u8>, usize, usize)>,
    /// A response said `connection: close` (a refused body may still be on its way): shutting
    /// down lingers. Other closes (timeouts, a client's EOF) need no linger.
    announced_close: bool,
    /// Set once our side is shut down: (deadline of the whole linger).
    lingering: Option<Instant>,
}

impl Guarded {
    fn new(inner: TcpStream, idle: Duration, busy: Arc<AtomicUsize>) -> Guarded {
        let now = Instant::now();
        Guarded {
            inner,
            idle,
            busy,
            last_progress: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
            replacing: None,
            announced_close: false,
            lingering: None,
        }
    }

    fn progressed(&mut self) {
        self.last_progress = Instant::now();
    }

    /// Called when the socket is not ready: an error once nothing moved for `idle` while no
    /// handler was working. The timer is re-armed lazily, not on every byte.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            let now = Instant::now();
            let due = match self.lingering {
                Some(deadline) => deadline.min(self.last_progress + LINGER_QUIET),
                None if self.busy.load(Ordering::Relaxed) > 0 => {
                    self.last_progress = now;
                    now + self.idle
                }
                None => self.last_progress + self.idle,
            };
            if due <= now {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long"));
            }
            self.timer.as_mut().reset(due);
        }
    }

    fn write_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, claimed)) = &mut self.replacing {
            if *written == bytes.len() {
                let claimed = *claimed;
                self.replacing = None;
                return Poll::Ready(Ok(claimed));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            *written += n;
        }
        Poll::Ready(Ok(0))
    }
}

impl AsyncRead for Guarded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                this.check_idle(cx)?;
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none()
            && let Some(replacement) = replace_parse_error(buf)
        {
            this.replacing = Some((replacement, 0, buf.len()));
        }
        this.announced_close |= this.replacing.is_some() || announces_close(buf);
        let result = if this.replacing.is_some() {
            this.write_replacement(cx)
        } else {
            Pin::new(&mut this.inner).poll_write(cx, buf)
        };
        match result {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.check_idle(cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => {
                this.check_idle(cx)?;
                Poll::Pending
            }
            ready => ready,
        }
    }

    /// Closes our side, then reads and discards what the client still sends (a body the server
    /// refused, pipelined requests) until it closes too, bounded by `LINGER_*`.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.announced_close {
            return Pin::new(&mut this.inner).poll_shutdown(cx);
        }
        if this.lingering.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            let now = Instant::now();
            this.lingering = Some(now + LINGER_TOTAL);
            this.last_progress = now;
            this.timer.as_mut().reset(now + LINGER_QUIET);
        }
        let deadline = this.lingering.expect("set above");
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() && Instant::now() < deadline => this.progressed(),
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return match this.check_idle(cx) {
                        Ok(()) => Poll::Pending,
                        Err(_) => Poll::Ready(Ok(())),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::replace_parse_error;

    #[test]
    fn only_hyper_s_empty_parse_error_answers_are_replaced() {
        let hyper_414 =
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 12:00:00 GMT\r\n\r\n";
        let replaced = String::from_utf8(replace_parse_error(hyper_414).expect("replaced")).unwrap();
        assert!(replaced.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{replaced}");
        assert!(replaced.contains("connection: close\r\n"), "{replaced}");
        let body: serde_json::Value = serde_json::from_str(replaced.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["code"], 414);
        // Our own errors have bodies, other statuses are not parse errors.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n";
        assert!(replace_parse_error(ours).is_none());
        assert!(replace_parse_error(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replace_parse_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}").is_none());
    }

    #[test]
    fn close_is_seen_in_the_head_only() {
        use super::announces_close;
        assert!(announces_close(b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\ncontent-length: 2\r\n\r\n{}"));
        assert!(!announces_close(b"HTTP/1.1 200 OK\r\ncontent-length: 19\r\n\r\n\r\nconnection: close"));
        assert!(!announces_close(b"{\"a\":\"\r\nconnection: close\"}"));
    }
}
