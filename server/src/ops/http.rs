//! The `http` jobs: one request (`method`, `url`, `headers`, `body`) through
//! the shared client (`http_client`, rustls), its status checked against
//! `expect_status`; the status and the first 64 KiB of the body recorded.
//!
//! `${VAR}` in headers and body is taken from the server's environment at
//! each run; a variable that is not set is a permanent error naming it.
//! Expanded values are never logged nor recorded. Network errors, 5xx,
//! 408 and 429 are transient (retried per `retry`); other statuses that are
//! not expected are permanent. The attempt's `timeout` cuts the request
//! (the run is then `timed_out`, and retried). With `[telemetry]` (feature
//! `otel`) the request carries its attempt's W3C `traceparent`, unless the
//! job's `headers` set one.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{CancellationToken, JobContext};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use super::{OpsJob, OpsOutcome};
use crate::config::{ExpectStatus, HTTP_BODY_LIMIT, HttpOptions, expand};
use crate::http_client::{client, describe_error, parse_http_url};

/// Where `${VAR}` values come from.
type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// An `http` job: job `id` with its options.
#[derive(Clone)]
pub struct HttpJob {
    id: String,
    options: HttpOptions,
    env: EnvLookup,
}

impl std::fmt::Debug for HttpJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpJob")
            .field("id", &self.id)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl HttpJob {
    /// Job `id` sending the request `options` describe (checked by the
    /// configuration); `${VAR}` from the process environment.
    pub fn new(id: &str, options: HttpOptions) -> Self {
        HttpJob { id: id.to_owned(), options, env: Arc::new(|name| std::env::var(name).ok()) }
    }

    /// The same, with `${VAR}` taken from `env` instead.
    pub fn with_env(
        mut self,
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env = Arc::new(env);
        self
    }

    /// Sends the request once; `cancel` abandons it.
    pub async fn execute(&self, cancel: &CancellationToken) -> OpsOutcome {
        let o = &self.options;
        let mut data = json!({ "method": o.method.to_ascii_uppercase(), "url": o.url });
        let client = match client() {
            Ok(c) => c,
            Err(e) => return OpsOutcome::failed(data, e),
        };
        let request = match self.request(client) {
            Ok(r) => r,
            Err(e) => return OpsOutcome::failed_permanently(data, e),
        };
        let url = request.url().clone();
        let exchange = async {
            let resp = client.execute(request).await?;
            let status = resp.status();
            let (body, total) = read_start(resp, HTTP_BODY_LIMIT).await?;
            Ok::<_, reqwest::Error>((status, body, total))
        };
        let answer = tokio::select! {
            a = exchange => a,
            () = cancel.cancelled() => {
                return OpsOutcome::failed(data, "cancelled before the answer was read");
            }
        };
        let (status, body, truncated) = match answer {
            Ok(a) => a,
            Err(e) => return OpsOutcome::failed(data, describe_error(&url, None, &e)),
        };
        let code = status.as_u16();
        data["status"] = json!(code);
        data["body"] = json!(String::from_utf8_lossy(&body));
        data["body_truncated"] = json!(truncated);
        if o.expect_status.matches(code) {
            return OpsOutcome::ok(data);
        }
        let why = format!(
            "answered {code}{}; expected {}",
            status.canonical_reason().map(|r| format!(" {r}")).unwrap_or_default(),
            describe_expected(&o.expect_status)
        );
        if status.is_server_error() || code == 429 || code == 408 {
            OpsOutcome::failed(data, why)
        } else {
            OpsOutcome::failed_permanently(data, why)
        }
    }

    /// The request, with `${VAR}` expanded; an error names the header or
    /// the body and the variable, never a value.
    fn request(&self, client: &reqwest::Client) -> Result<reqwest::Request, String> {
        let o = &self.options;
        let url = parse_http_url(&o.url).map_err(|e| format!("url: {e}"))?;
        let method = reqwest::Method::from_bytes(o.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("method: \"{}\" is not an HTTP method", o.method))?;
        let mut headers = HeaderMap::new();
        for (name, template) in &o.headers {
            let value =
                expand(template, |v| (self.env)(v)).map_err(|e| format!("header {name}: {e}"))?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("\"{name}\" is not a valid header name"))?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                format!("header {name}: its value (after ${{VAR}} expansion) is not a valid header value")
            })?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        // The attempt's trace context (exported with `[telemetry]`).
        crate::telemetry::inject_traceparent(&mut headers);
        let mut req = client.request(method, url).headers(headers);
        if let Some(body) = &o.body {
            req = req.body(expand(body, |v| (self.env)(v)).map_err(|e| format!("body: {e}"))?);
        }
        req.build().map_err(|e| format!("the request cannot be built: {e}"))
    }
}

#[async_trait]
impl OpsJob for HttpJob {
    async fn run_at(&self, _now: DateTime<Utc>) -> OpsOutcome {
        self.execute(&CancellationToken::new()).await
    }

    async fn run(&self, ctx: &JobContext) -> OpsOutcome {
        self.execute(&ctx.cancel).await
    }
}

/// The first `limit` bytes of the body, and whether there was more (the
/// rest is not read).
async fn read_start(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// `a 2xx status`, `200 or 204`.
fn describe_expected(e: &ExpectStatus) -> String {
    match e {
        ExpectStatus::Any2xx => "a 2xx status".to_owned(),
        ExpectStatus::OneOf(codes) => {
            codes.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use super::*;
    use warp::Filter;

    /// A local server: `/status/<code>` answers that code with a body of
    /// 100 KiB for 200, `/echo` answers the request's `x-token` header and
    /// body.
    async fn server() -> SocketAddr {
        let status = warp::path!("status" / u16).map(|code: u16| {
            let body = if code == 200 { "x".repeat(100 * 1024) } else { format!("code {code}") };
            warp::reply::with_status(body, warp::http::StatusCode::from_u16(code).unwrap())
        });
        let echo = warp::path("echo")
            .and(warp::header::optional::<String>("x-token"))
            .and(warp::body::bytes())
            .map(|t: Option<String>, b: bytes::Bytes| {
                format!("{}|{}", t.unwrap_or_default(), String::from_utf8_lossy(&b))
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(status.or(echo)).incoming(listener).run());
        addr
    }

    fn job(url: String, f: impl FnOnce(&mut HttpOptions)) -> HttpJob {
        let mut o = HttpOptions { url, ..HttpOptions::default() };
        f(&mut o);
        HttpJob::new("t", o).with_env(|k| (k == "TOKEN").then(|| "s3cret".to_owned()))
    }

    async fn run(j: &HttpJob) -> OpsOutcome {
        j.execute(&CancellationToken::new()).await
    }

    #[tokio::test]
    async fn statuses_map_to_success_transient_and_permanent() {
        let addr = server().await;
        let at = |code: u16| format!("http://{addr}/status/{code}");
        let ok = run(&job(at(200), |_| {})).await;
        assert_eq!(ok.error, None);
        assert_eq!(ok.data["status"], 200);
        assert_eq!(ok.data["body"].as_str().unwrap().len(), HTTP_BODY_LIMIT);
        assert_eq!(ok.data["body_truncated"], true);

        for (code, permanent) in
            [(500, false), (503, false), (429, false), (408, false), (404, true), (401, true)]
        {
            let o = run(&job(at(code), |_| {})).await;
            assert_eq!(o.permanent, permanent, "{code}: {:?}", o.error);
            assert_eq!(o.data["status"], code);
            assert_eq!(o.data["body"], format!("code {code}"));
        }
        let o = run(&job(at(404), |_| {})).await;
        assert_eq!(o.error.as_deref(), Some("answered 404 Not Found; expected a 2xx status"));
        // An expected 404 is a success; an unexpected 2xx a permanent failure.
        let o = run(&job(at(404), |o| o.expect_status = ExpectStatus::OneOf(vec![404]))).await;
        assert_eq!(o.error, None);
        let o = run(&job(at(201), |o| o.expect_status = ExpectStatus::OneOf(vec![200, 204]))).await;
        assert_eq!(o.error.as_deref(), Some("answered 201 Created; expected 200 or 204"));
        assert!(o.permanent);
    }

    #[tokio::test]
    async fn variables_are_expanded_and_a_missing_one_is_named() {
        let addr = server().await;
        let url = format!("http://{addr}/echo");
        let o = run(&job(url.clone(), |o| {
            o.method = "post".into();
            o.headers = BTreeMap::from([("x-token".to_owned(), "Bearer ${TOKEN}".to_owned())]);
            o.body = Some("{\"t\": \"${TOKEN}\", \"lit\": \"$${NOT}\"}".into());
        }))
        .await;
        assert_eq!(o.error, None);
        assert_eq!(o.data["body"], "Bearer s3cret|{\"t\": \"s3cret\", \"lit\": \"${NOT}\"}");
        assert_eq!(o.data["method"], "POST");

        let o = run(&job(url, |o| {
            o.headers = BTreeMap::from([("x-token".to_owned(), "${MISSING_VAR}".to_owned())]);
        }))
        .await;
        assert!(o.permanent);
        assert_eq!(
            o.error.as_deref(),
            Some(
                "header x-token: environment variable MISSING_VAR is not set (used as ${MISSING_VAR})"
            )
        );
        // The job's Debug shows neither header values nor the body.
        let j = job("http://h/".into(), |o| {
            o.headers = BTreeMap::from([("authorization".to_owned(), "Bearer literal".to_owned())]);
            o.body = Some("secret body".into());
        });
        let debug = format!("{j:?}");
        assert!(!debug.contains("literal") && !debug.contains("secret body"), "{debug}");
    }

    #[tokio::test]
    async fn a_closed_port_is_transient_over_http_and_https() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        for scheme in ["http", "https"] {
            let o = run(&job(format!("{scheme}://127.0.0.1:{port}/"), |_| {})).await;
            assert!(!o.permanent, "{scheme}: {:?}", o.error);
            let e = o.error.unwrap();
            assert!(e.starts_with(&format!("cannot connect to 127.0.0.1:{port}")), "{e}");
        }
    }
}
