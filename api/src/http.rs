//! What one client may take of the server: connections (a cap), time to send its headers (a
//! header-read timeout, so slowloris clients are cut off), time for a whole request (408
//! problem+json), and the request id it names (kept only when it fits).

use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;
use std::sync::PoisonError;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tower::ServiceExt;

use crate::config::HttpSettings;
use crate::error::ApiError;
use crate::request::REQUEST_ID;

/// The longest `X-Request-Id` kept; a longer one, or one with other than printable ASCII, is
/// replaced with a generated id (it ends up in the metadata of every event appended).
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// Serves `app` on `listener` until `stop` fires, then lets requests in flight finish.
///
/// At most `max_connections` connections are served at once: the next is accepted only when
/// one ends, so clients beyond the cap wait in the listen backlog instead of taking memory and
/// tasks. A client must send a request's headers within `header_read_timeout_ms` (also while
/// a kept-alive connection idles between requests), or its connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &HttpSettings,
    stop: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let mut connection = hyper::server::conn::http1::Builder::new();
    connection
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(
            settings.header_read_timeout_ms.max(1),
        ));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(std::io::Error::other)?,
            _ = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let served = graceful.watch(connection.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = served.await {
                tracing::debug!(peer = %peer, error = %error, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// 408 `request_timeout` (problem+json) for a request not answered within `limit`, its body
/// upload included.
pub async fn request_timeout(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}

/// How much of a request body left unread by its answer is read before answering, and for how
/// long at most.
const DRAIN_LIMIT_BYTES: usize = 128 * 1024;
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// A request body the middleware below keeps a hold on while the route reads it.
struct SharedBody(Arc<std::sync::Mutex<Body>>);

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut body = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .size_hint()
    }
}

/// Reads what the route left of the request body before its answer goes out. An answer given
/// before the body was read (401, 404, 405, 413, a refused task) makes hyper close the
/// connection with the body unread; the client's remaining bytes then meet a TCP reset, which
/// can destroy the answer before the client reads it. Bounded by size and time: a client that
/// sends more, or slower, gets its answer and the close anyway.
pub async fn drain_unread_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let shared = Arc::new(std::sync::Mutex::new(body));
    let response = next
        .run(Request::from_parts(
            parts,
            Body::new(SharedBody(shared.clone())),
        ))
        .await;
    let mut rest = std::mem::take(&mut *shared.lock().unwrap_or_else(PoisonError::into_inner));
    let mut drained = 0usize;
    let drain = async {
        while !rest.is_end_stream() && drained <= DRAIN_LIMIT_BYTES {
            match std::future::poll_fn(|cx| Pin::new(&mut rest).poll_frame(cx)).await {
                Some(Ok(frame)) => {
                    drained += frame.data_ref().map_or(0, Bytes::len);
                }
                Some(Err(_)) | None => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_WAIT, drain).await;
    response
}

fn fits(request_id: &HeaderValue) -> bool {
    let bytes = request_id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_CHARS
        && bytes.iter().all(|byte| byte.is_ascii_graphic())
}

/// Drops an `X-Request-Id` that does not fit (too long, not printable ASCII, or given more
/// than once), so the request gets a generated one instead.
pub async fn fit_request_id(mut request: Request, next: Next) -> Response {
    let headers = request.headers_mut();
    let given: Vec<&HeaderValue> = headers.get_all(REQUEST_ID).iter().collect();
    if !given.is_empty() && (given.len() > 1 || !given.iter().all(|value| fits(value))) {
        headers.remove(REQUEST_ID);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_fits_when_short_and_printable() {
        assert!(fits(&HeaderValue::from_static("client-id-42")));
        assert!(!fits(&HeaderValue::from_static("with space")));
        assert!(!fits(&HeaderValue::from_static("tab\there")));
        let long = "r".repeat(MAX_REQUEST_ID_CHARS + 1);
        assert!(!fits(&HeaderValue::from_str(&long).expect("value")));
        assert!(!fits(
            &HeaderValue::from_bytes("idé".as_bytes()).expect("value")
        ));
    }
}
