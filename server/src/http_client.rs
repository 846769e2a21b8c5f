//! A minimal HTTP/1.1 client over hyper (which warp already brings): one
//! request per connection, plain `http://` only. Used by the auth probe, by
//! `mscribe health` and by the commands that talk to a running server
//! (`--url`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// A parsed `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// The host name or address.
    pub host: String,
    /// The port (default 80).
    pub port: u16,
    /// The path and query, at least `/`.
    pub path: String,
}

impl HttpUrl {
    /// `host:port`, as used for the `Host` header and in messages.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

/// Parses an `http://` URL. `https://` is refused with an explanation: the
/// server carries no TLS client, to keep its build small.
pub fn parse_http_url(url: &str) -> Result<HttpUrl, String> {
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", _)) => {
            return Err(format!(
                "\"{url}\": https is not supported (mscribe has no TLS client); \
                 use an http:// address, e.g. an internal endpoint or a local proxy"
            ));
        }
        _ => return Err(format!("\"{url}\" is not an http:// URL")),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    if authority.contains('@') {
        return Err(format!("\"{url}\": credentials in the URL are not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) =
            v6.split_once(']').ok_or_else(|| format!("\"{url}\": unclosed [ in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("\"{url}\": invalid port \"{p}\""))?,
            None => 80,
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => {
                (h.to_owned(), p.parse().map_err(|_| format!("\"{url}\": invalid port \"{p}\""))?)
            }
            None => (authority.to_owned(), 80),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    Ok(HttpUrl { host, port, path })
}

/// A response: status, headers and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: hyper::HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// Sends one request with an empty body and reads the whole response,
/// all within `timeout`.
pub async fn request(
    method: &str,
    url: &HttpUrl,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<HttpResponse, String> {
    request_with_body(method, url, headers, None, timeout).await
}

/// Sends one request with `body` (sent with `Content-Length`; headers such
/// as `content-type` are the caller's) and reads the whole response, all
/// within `timeout`.
pub async fn request_with_body(
    method: &str,
    url: &HttpUrl,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    match tokio::time::timeout(timeout, request_inner(method, url, headers, body)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer from {} within {timeout:?}", url.authority())),
    }
}

async fn request_inner(
    method: &str,
    url: &HttpUrl,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
) -> Result<HttpResponse, String> {
    let stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", url.authority()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {} failed: {e}", url.authority()))?;
    let conn = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "http client connection ended with an error");
        }
    });
    let mut req = Request::builder()
        .method(method)
        .uri(url.path.as_str())
        .header(hyper::header::HOST, url.authority())
        .header(hyper::header::USER_AGENT, concat!("mscribe/", env!("CARGO_PKG_VERSION")));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req =
        req.body(Full::new(body.unwrap_or_default())).map_err(|e| format!("bad request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request to {} failed: {e}", url.authority()))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the response of {} failed: {e}", url.authority()))?
        .to_bytes();
    conn.abort();
    Ok(HttpResponse { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls() {
        let u = parse_http_url("http://auth.internal:9000/health?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("auth.internal", 9000, "/health?x=1")
        );
        assert_eq!(u.to_string(), "http://auth.internal:9000/health?x=1");
        let u = parse_http_url("http://127.0.0.1").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = parse_http_url("http://[::1]:81/h").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.authority()), ("::1", 81, "[::1]:81".to_owned()));
        assert!(parse_http_url("https://x/").unwrap_err().contains("https is not supported"));
        assert!(parse_http_url("ftp://x/").is_err());
        assert!(parse_http_url("http://:80/").is_err());
        assert!(parse_http_url("http://h:port/").is_err());
        assert!(parse_http_url("http://u:p@h/").is_err());
    }
}
