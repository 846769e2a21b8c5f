//! The server's HTTP client: one shared reqwest client (rustls, with the
//! webpki and the system's root certificates; no OpenSSL), `http://` and
//! `https://`. Used by the auth probe, by `mscribe health`, by the commands
//! that talk to a running server (`--url`) and by the HTTP jobs.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;

pub use reqwest::Url;

/// The shared client: connections are pooled across requests. Redirects
/// are followed (at most 10); timeouts are per request. It trusts the
/// webpki roots and the system's; system roots that cannot be read leave
/// the webpki ones (logged once). The error says why no client could be
/// built at all.
pub fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let built = CLIENT.get_or_init(|| {
        let builder =
            || reqwest::Client::builder().user_agent(concat!("mscribe/", env!("CARGO_PKG_VERSION")));
        builder()
            .build()
            .or_else(|e| {
                tracing::warn!(error = %e, "HTTP client: the system's root certificates cannot be used; trusting the webpki roots only");
                builder().tls_built_in_native_certs(false).build()
            })
            .map_err(|e| format!("the HTTP client cannot start: {e}"))
    });
    built.as_ref().map_err(Clone::clone)
}

/// Parses an `http://` or `https://` URL with a host and no credentials in
/// it; the error quotes the URL, its password redacted
/// ([`redact_url`](crate::config::redact_url)), and says what is wrong.
pub fn parse_http_url(url: &str) -> Result<Url, String> {
    let shown = || crate::config::redact_url(url);
    let parsed = Url::parse(url.trim()).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => {
            format!("\"{}\" is not an http:// or https:// URL", shown())
        }
        other => format!("\"{}\" is not a valid URL: {other}", shown()),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "\"{}\" is not an http:// or https:// URL (scheme \"{}\")",
            shown(),
            parsed.scheme()
        ));
    }
    if !names_a_host(url, &parsed) {
        return Err(format!("\"{}\" has no host; write {}://HOST/PATH", shown(), parsed.scheme()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "\"{}\": credentials in the URL are not supported; send them in a header",
            shown()
        ));
    }
    Ok(parsed)
}

/// Whether `text`, parsed as `parsed`, has a host, written after
/// `scheme://`: the URL standard reads `http:///status` or `http:status`
/// as host `status`, which is not what was written.
pub(crate) fn names_a_host(text: &str, parsed: &Url) -> bool {
    let after_scheme = text.trim().get(parsed.scheme().len()..).unwrap_or_default();
    let authority = after_scheme.strip_prefix("://").unwrap_or_default();
    parsed.host_str().is_some_and(|h| !h.is_empty())
        && !authority.is_empty()
        && !authority.starts_with(['/', '\\', '?', '#'])
}

/// `host:port` of a URL, as messages name a server.
pub fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// A response: status, headers and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// Sends one request with an empty body and reads the whole response,
/// all within `timeout`.
pub async fn request(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<HttpResponse, String> {
    request_with_body(method, url, headers, None, timeout).await
}

/// Sends one request with `body` (headers such as `content-type` are the
/// caller's) and reads the whole response, all within `timeout`. The error
/// names the server and what failed (no answer in time, no connection, ...).
pub async fn request_with_body(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("invalid HTTP method \"{method}\""))?;
    let mut req = client()?.request(method, url.clone()).timeout(timeout);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let fail = |e: reqwest::Error| describe_error(url, Some(timeout), &e);
    let resp = req.send().await.map_err(fail)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(fail)?;
    Ok(HttpResponse { status, headers, body })
}

/// A reqwest error as one line naming the server: no answer within
/// `timeout` (the request's, if it had one), no connection, or the error
/// with its causes.
pub fn describe_error(url: &Url, timeout: Option<Duration>, e: &reqwest::Error) -> String {
    let server = authority(url);
    if e.is_timeout() {
        return match timeout {
            Some(t) => format!("no answer from {server} within {}", humantime::format_duration(t)),
            None => format!("no answer from {server} in time"),
        };
    }
    // The causes say what failed; reqwest's own line only repeats the URL.
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    let text = if causes.is_empty() { e.to_string() } else { causes.join(": ") };
    if e.is_connect() {
        format!("cannot connect to {server}: {text}")
    } else {
        format!("request to {server} failed: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_and_https_urls() {
        let u = parse_http_url("http://auth.internal:9000/health?x=1").unwrap();
        assert_eq!(
            (u.host_str(), u.port_or_known_default(), u.path(), u.query()),
            (Some("auth.internal"), Some(9000), "/health", Some("x=1"))
        );
        assert_eq!(u.as_str(), "http://auth.internal:9000/health?x=1");
        let u = parse_http_url("http://127.0.0.1").unwrap();
        assert_eq!((u.port_or_known_default(), u.path()), (Some(80), "/"));
        let u = parse_http_url("http://[::1]:81/h").unwrap();
        assert_eq!(authority(&u), "[::1]:81");
        let u = parse_http_url("https://example.test/hook").unwrap();
        assert_eq!((u.scheme(), authority(&u)), ("https", "example.test:443".to_owned()));

        let err = |u: &str| parse_http_url(u).unwrap_err();
        assert_eq!(
            err("ftp://x/"),
            "\"ftp://x/\" is not an http:// or https:// URL (scheme \"ftp\")"
        );
        assert_eq!(
            err("localhost:8080"),
            "\"localhost:8080\" is not an http:// or https:// URL (scheme \"localhost\")"
        );
        assert_eq!(err("/health"), "\"/health\" is not an http:// or https:// URL");
        assert_eq!(err("http://:80/"), "\"http://:80/\" is not a valid URL: empty host");
        assert_eq!(
            err("http://h:port/"),
            "\"http://h:port/\" is not a valid URL: invalid port number"
        );
        assert_eq!(
            err("https://u:p@h/"),
            "\"https://u:REDACTED@h/\": credentials in the URL are not supported; send them in a \
             header"
        );
    }

    #[test]
    fn a_url_without_a_host_is_refused_not_read_as_a_path() {
        // The URL standard would take the first path segment as the host
        // (`http:///status/200` calls host `status`): refused instead.
        for url in [
            "http:///status/200",
            "https:///h",
            "http:/status/200",
            "http:status",
            "HTTP:///x",
            "http:\\\\h/x",
        ] {
            let e = parse_http_url(url).unwrap_err();
            assert!(e.contains("has no host; write http"), "{url}: {e}");
        }
        let u = parse_http_url("HTTP://Example.test/x").unwrap();
        assert_eq!(u.host_str(), Some("example.test"));
        assert!(parse_http_url(" http://h/x").is_ok());
    }

    #[test]
    fn url_errors_redact_the_password() {
        let err = |u: &str| parse_http_url(u).unwrap_err();
        for (url, shown) in [
            (
                "http://u:SECRETAUTH11@127.0.0.1:1/x",
                "\"http://u:REDACTED@127.0.0.1:1/x\": credentials",
            ),
            (
                "ftp://u:SECRET@h/?password=SECRET",
                "\"ftp://u:REDACTED@h/?password=REDACTED\" is not",
            ),
            ("http://u:SECRET@h:port/", "\"http://u:REDACTED@h:port/\" is not a valid URL"),
            ("http://u:SECRET@/x", "\"http://u:REDACTED@/x\" is not a valid URL"),
        ] {
            let e = err(url);
            assert!(!e.contains("SECRET"), "{e}");
            assert!(e.starts_with(shown), "{e}");
        }
    }

    /// An https URL is accepted, and a server that does not answer is a
    /// connection error naming it (here: a closed port on the loopback).
    #[tokio::test]
    async fn https_needs_no_openssl_and_a_closed_port_is_a_connect_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = parse_http_url(&format!("https://127.0.0.1:{port}/")).unwrap();
        let e = request("GET", &url, &[], Duration::from_secs(5)).await.unwrap_err();
        assert!(e.starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")), "{e}");
    }
}
