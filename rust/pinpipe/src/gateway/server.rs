//! The gateway's HTTP/1.1 server: connections, their limits and timeouts, and the guarantee that
//! every reply — including the ones the HTTP layer gives before the app sees a request — carries
//! the REST proxy's JSON error envelope.
//!
//! - At most `max_connections` connections are open. When a new one arrives at the limit, the
//!   connection idle the longest (no request in flight: silent, half-sent headers, or a
//!   keep-alive between requests) is closed to make room; if every connection is busy, the new
//!   one gets a 503 and is closed. So silent connections cannot lock good clients out.
//! - A connection that has not sent a complete request head within `idle_timeout` (from accept,
//!   or from the end of its previous response) is closed.
//! - A request body must arrive within `body_timeout`, and it is always read (or, past the size
//!   limit, drained) before the reply, so keep-alive clients never see a reset after an error.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::{ApiError, State};

/// Limits of the HTTP layer (from the gateway config).
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// How long a connection asked to close may take to finish its reply.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// One open connection, as the accept loop sees it.
struct Conn {
    /// Requests being answered now.
    active: AtomicUsize,
    /// Asked to close (evicted): no longer a candidate.
    closing: AtomicBool,
    /// When the connection last became idle (accepted, or finished a request).
    idle_since: Mutex<Instant>,
    close: tokio::sync::Notify,
}

#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    emptied: tokio::sync::Notify,
}

impl Registry {
    fn len(&self) -> usize {
        self.conns.lock().expect("connection registry").len()
    }

    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            active: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
            close: tokio::sync::Notify::new(),
        });
        self.conns.lock().expect("connection registry").insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        let mut conns = self.conns.lock().expect("connection registry");
        conns.remove(&id);
        if conns.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// Asks the connection idle the longest to close. False if every connection is busy.
    fn evict_idle(&self) -> bool {
        let conns = self.conns.lock().expect("connection registry");
        let oldest = conns
            .values()
            .filter(|c| c.active.load(Ordering::Acquire) == 0 && !c.closing.load(Ordering::Acquire))
            .min_by_key(|c| *c.idle_since.lock().expect("idle time"));
        match oldest {
            Some(conn) => {
                conn.closing.store(true, Ordering::Release);
                conn.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn close_all(&self) {
        for conn in self.conns.lock().expect("connection registry").values() {
            conn.close.notify_one();
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        // The app enforces the documented limits with JSON replies; the HTTP layer's own limits
        // sit above them (and its replies are rewritten into the envelope as well).
        .max_headers(limits.max_headers.saturating_mul(4).max(100))
        .max_buf_size((limits.max_header_bytes.saturating_mul(4)).max(1024 * 1024))
        .writev(false);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    let mut accept_errors = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (EMFILE) or a connection reset before accept: keep
                    // serving the connections we have and try again shortly.
                    accept_errors += 1;
                    if accept_errors.is_power_of_two() {
                        tracing::warn!(error = %e, count = accept_errors, "cannot accept a connection");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        if registry.len() >= limits.max_connections && !registry.evict_idle() {
            tracing::debug!(%peer, "connection limit reached and every connection busy; refusing");
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        }
        let (id, conn) = registry.add();
        let registry = registry.clone();
        let router = router.clone();
        let http = http.clone();
        tokio::spawn(async move {
            serve_connection(&http, stream, router, &conn).await;
            registry.remove(id);
        });
    }
    registry.close_all();
    if registry.len() > 0 {
        let emptied = registry.emptied.notified();
        if registry.len() > 0 {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, emptied).await;
        }
    }
    Ok(())
}

async fn serve_connection(
    http: &hyper::server::conn::http1::Builder,
    stream: TcpStream,
    router: Router,
    conn: &Arc<Conn>,
) {
    let tracker = conn.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let tracker = tracker.clone();
        tracker.active.fetch_add(1, Ordering::AcqRel);
        let reply = router.clone().oneshot(request.map(Body::new));
        async move {
            let response = reply.await;
            *tracker.idle_since.lock().expect("idle time") = Instant::now();
            tracker.active.fetch_sub(1, Ordering::AcqRel);
            response
        }
    });
    let connection = http.serve_connection(TokioIo::new(EnvelopeIo::new(stream)), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = conn.close.notified() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, connection).await;
        }
    }
}

/// Answers a connection over the limit with a 503 and closes it.
async fn refuse(mut stream: TcpStream, limit: usize) {
    let reply = envelope_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        50301,
        &format!("the gateway holds its limit of {limit} connections, all busy; retry shortly"),
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(&reply).await?;
        stream.shutdown().await
    })
    .await;
}

/// A complete HTTP/1.1 reply with the JSON envelope, closing the connection.
fn envelope_reply(status: StatusCode, code: u32, message: &str) -> Vec<u8> {
    let body = serde_json::json!({"error_code": code, "message": message}).to_string();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/vnd.kafka.v2+json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        out.push_str("retry-after: 1\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

/// If `buf` is exactly a bodiless error reply of the HTTP layer (a request it could not parse:
/// bad Content-Length, URI or header section too large, header timeout), the same reply with the
/// JSON envelope. The app never sends an error without a body, so nothing else matches.
fn rewrite_bare_error(buf: &[u8]) -> Option<Vec<u8>> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let status: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    if status < 400 {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    if end != buf.len() {
        return None;
    }
    let head = String::from_utf8_lossy(buf).to_ascii_lowercase();
    if !head.contains("\r\ncontent-length: 0\r\n") || head.contains("\r\ncontent-type:") {
        return None;
    }
    let status = StatusCode::from_u16(status).ok()?;
    let message = match status.as_u16() {
        400 => "malformed HTTP request: the request line, a header or Content-Length could not be parsed".to_string(),
        408 => "the request head did not arrive in time".to_string(),
        414 => "request URI too long".to_string(),
        431 => "request header section too large or too many header fields".to_string(),
        505 => "HTTP version not supported: use HTTP/1.1".to_string(),
        _ => format!("HTTP {} {}", status.as_u16(), status.canonical_reason().unwrap_or("")),
    };
    Some(envelope_reply(status, status.as_u16() as u32, &message))
}

/// The connection's socket, with the HTTP layer's bodiless error replies rewritten on their way
/// out (see [`rewrite_bare_error`]). Writes are never vectored, so a reply head arrives whole.
struct EnvelopeIo {
    inner: TcpStream,
    pending: Vec<u8>,
    sent: usize,
}

impl EnvelopeIo {
    fn new(inner: TcpStream) -> Self {
        EnvelopeIo { inner, pending: Vec::new(), sent: 0 }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for EnvelopeIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for EnvelopeIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        if let Some(reply) = rewrite_bare_error(buf) {
            this.pending = reply;
            // Taken whole; what the socket does not take now goes out on the next write or flush.
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Request guard, in front of every route: checks the URI and header limits, and reads the whole
/// body (within `body_timeout` and `max_body_bytes`) before the route answers, so that whatever
/// the answer, the connection is left at a request boundary and stays usable.
pub(crate) async fn guard(AxumState(state): AxumState<Arc<State>>, request: Request, next: Next) -> Response {
    let limits = &state.limits;
    let (parts, body) = request.into_parts();
    let declared =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        // Take (and drop) what the client is sending, up to a cap, so it reads the 413 rather
        // than a broken pipe; then close, since the rest of the body may still be coming.
        let cap = limits.max_body_bytes.saturating_mul(4).max(32 * 1024 * 1024);
        let drain = async {
            let mut stream = body.into_data_stream();
            let mut seen = 0usize;
            while let Some(Ok(chunk)) = stream.next().await {
                seen += chunk.len();
                if seen > cap {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(limits.body_timeout, drain).await;
        return closing(ApiError::too_large(limits.max_body_bytes));
    }
    let bytes = match tokio::time::timeout(limits.body_timeout, read_body(body, limits.max_body_bytes)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return closing(e),
        Err(_) => {
            return closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                408,
                format!("the request body did not arrive within {} s", limits.body_timeout.as_secs_f64()),
            ))
        }
    };
    let uri_len = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            414,
            format!("request URI of {uri_len} bytes is longer than the limit of {} bytes", limits.max_uri_bytes),
        )
        .into_response();
    }
    let header_bytes: usize = parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if parts.headers.len() > limits.max_headers || header_bytes > limits.max_header_bytes {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            431,
            format!(
                "request has {} header fields of {header_bytes} bytes; the limits are {} fields and {} bytes",
                parts.headers.len(),
                limits.max_headers,
                limits.max_header_bytes
            ),
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// The whole body, or 413 past `max` bytes (a chunked body has no declared length).
async fn read_body(body: Body, max: usize) -> Result<bytes::Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::malformed(format!("cannot read the request body: {e}")))?;
        if out.len() + chunk.len() > max {
            return Err(ApiError::too_large(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// An error reply that also closes the connection.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_errors_of_the_http_layer_are_rewritten() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(rewrite_bare_error(bare).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error_code"], 431);
        assert!(out.contains(&format!("content-length: {}\r\n", body.len())));
        // An app reply (a body, a content type) and a success pass through.
        let app = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert!(rewrite_bare_error(app).is_none());
        assert!(rewrite_bare_error(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite_bare_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
    }
}
