//! Serving the routes over TCP: hyper's HTTP/1.1 connections with a
//! graceful shutdown (as `warp::serve` does), and every answer JSON, also
//! those hyper writes itself before a request reaches the routes (a
//! malformed request line or header: 400; a URI over 64 KiB: 414; over
//! 100 headers or about 400 KiB of them: 431), which hyper sends with an
//! empty body: each connection's writes pass through [`JsonErrors`], which
//! gives exactly those answers a JSON body.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use std::convert::Infallible;

use futures::future::Either;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use warp::Filter;
use warp::reply::Response;

use super::reply::{NO_CACHE, error_response};
use super::{ServerState, routes};

/// Serves [`routes`] on `listener` until `shutdown` completes, then stops
/// accepting and waits for the open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_filter(listener, routes(state), shutdown).await;
}

/// Serves `filter` (the routes, or the routes with the dashboard's in
/// front) as [`serve`] does.
pub async fn serve_filter<F>(
    listener: TcpListener,
    filter: F,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let routes = TowerToHyperService::new(warp::service(filter.clone()));
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            match not_a_path(req.uri()) {
                Some(bad) => Either::Left(std::future::ready(Ok(bad))),
                None => Either::Right(routes.call(req)),
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(JsonErrors::new(stream)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "http connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The 400 for a request whose target has no path: the authority form of
/// CONNECT (`host:port`), or an absolute URI without one. The routes read
/// the path, which such a request lacks (warp panics on it).
fn not_a_path(uri: &warp::http::Uri) -> Option<Response> {
    uri.path_and_query().is_none().then(|| {
        let message =
            format!("request target {:?} is not a path starting with '/'", uri.to_string());
        error_response(warp::http::StatusCode::BAD_REQUEST, message)
    })
}

/// A connection whose automatic error answers from hyper get a JSON body
/// (see the module docs); everything else passes through unchanged.
#[derive(Debug)]
pub(super) struct JsonErrors<S> {
    inner: S,
    /// A rewritten answer still to be written, and how much of it was.
    pending: Vec<u8>,
    written: usize,
}

impl<S> JsonErrors<S> {
    pub(super) fn new(inner: S) -> Self {
        JsonErrors { inner, pending: Vec::new(), written: 0 }
    }
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        if let Some(answer) = with_json_body(buf) {
            this.pending = answer;
            // Written now or at the next flush or shutdown, which hyper
            // calls after an answer.
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What hyper writes after a request it could not parse: the status line,
/// then exactly these headers, then the date, and no body. The routes'
/// answers always start with `content-type`.
const HYPER_HEAD: &str = "connection: close\r\ncontent-length: 0\r\n";

/// `buf` with a JSON body, if it is one of hyper's automatic answers.
fn with_json_body(buf: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(buf).ok()?;
    let (status_line, rest) = text.split_once("\r\n")?;
    let code = status_line.strip_prefix("HTTP/1.")?.get(2..5)?;
    let message = match code {
        "400" => {
            "malformed request: the request line or a header could not be parsed (e.g. an \
                  invalid Content-Length or Transfer-Encoding)"
        }
        "414" => "request URI is over 65534 bytes",
        "431" => "request headers are too large: over 100 headers, or about 400 KiB of them",
        _ => return None,
    };
    let after = rest.strip_prefix(HYPER_HEAD)?;
    if !after.ends_with("\r\n\r\n") || after.matches("\r\n").count() > 2 {
        return None;
    }
    let body = json!({ "error": message }).to_string();
    let head = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncache-control: {NO_CACHE}\r\n\
         connection: close\r\ncontent-length: {}\r\n{after}",
        body.len()
    );
    Some([head.into_bytes(), body.into_bytes()].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_s_own_answers_are_rewritten() {
        let hyper = "HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 21:51:48 GMT\r\n\r\n";
        let out = String::from_utf8(with_json_body(hyper.as_bytes()).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\n")
        );
        assert!(head.contains(&format!("content-length: {}\r\ndate: ", body.len())), "{head}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(body).unwrap()["error"],
            "request URI is over 65534 bytes"
        );
        for other in [
            // The routes' own answers.
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            "HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            // Another status, a body after, or a partial head.
            "HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\nx",
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n",
        ] {
            assert!(with_json_body(other.as_bytes()).is_none(), "{other:?}");
        }
    }
}
