//! The HTTP API against bad input, over real TCP connections to a real
//! server (`http::serve`, as `mscribe serve` runs it): oversized bodies
//! with `Content-Length` and chunked, bodies where none is taken, exact
//! paths, long URIs and headers, strict JSON bodies, and history paging
//! with a cursor. The scheduler runs on a virtual clock: nothing fires by
//! itself.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mscribe_scheduler::{
    AttemptEnd, AttemptStart, ExecutionEvent, ExecutionId, ExecutionStatus, ExecutionStore,
    JobConfig, JobContext, JobScheduler, MemoryStore, TokioSpawner, VirtualClock,
};
use mscribe_server::config::Secret;
use mscribe_server::control::{ControlPlane, ControlSettings};
use mscribe_server::health::{HealthChecker, HealthSettings};
use mscribe_server::http::ServerState;
use mscribe_server::metrics::ServerMetrics;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "hardening-token-0123456789abcdef0123";
const LIMIT: u64 = 64 * 1024;

struct Served {
    addr: std::net::SocketAddr,
    store: Arc<MemoryStore>,
    scheduler: JobScheduler,
}

async fn serve() -> Served {
    serve_with(false).await
}

/// A server whose state has a control plane over an in-memory SQLite
/// control store (cancel requests are not waited for).
async fn serve_with_control() -> Served {
    serve_with(true).await
}

async fn serve_with(with_control: bool) -> Served {
    let clock = VirtualClock::at_epoch_2026();
    let store = Arc::new(MemoryStore::new());
    let metrics = ServerMetrics::new();
    let scheduler =
        JobScheduler::builder(Arc::new(clock.clone()), Arc::new(TokioSpawner::current()))
            .store(store.clone())
            .build();
    scheduler
        .register(
            JobConfig::new("quick", |_ctx: JobContext| async { Ok::<_, String>(()) })
                .schedule("0 2 * * *"),
        )
        .unwrap();
    scheduler.start().await.unwrap();
    let health = HealthChecker::new(Vec::new(), Arc::new(clock), HealthSettings::default());
    let control = if with_control {
        let store = mscribe_storage::SqliteStore::open_memory().await.unwrap();
        let settings = ControlSettings { cancel_wait: Duration::ZERO, ..ControlSettings::sqlite() };
        Some(ControlPlane::new(Arc::new(store), scheduler.clone(), settings))
    } else {
        None
    };
    let state = Arc::new(ServerState {
        scheduler: scheduler.clone(),
        health,
        metrics,
        admin_token: Secret::new(TOKEN),
        max_body_bytes: LIMIT,
        control,
        alerts: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mscribe_server::http::serve(listener, state, std::future::pending()));
    Served { addr, store, scheduler }
}

/// A response as read off the socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Value,
    /// Whether the client could write its whole request: a server that
    /// answers and closes without reading the body makes the rest of the
    /// upload fail (a reset), which a client writing first and reading
    /// after sees instead of the answer.
    sent_all: bool,
}

impl Raw {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_else(|| panic!("no JSON error in {self:?}"))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Sends `head` then `body` (concurrently with reading the answer, as a
/// client that streams a large upload does), and reads the answer.
async fn exchange(addr: std::net::SocketAddr, head: String, body: Vec<u8>) -> Raw {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        for chunk in body.chunks(64 * 1024) {
            wr.write_all(chunk).await?;
        }
        wr.flush().await?;
        // Keep the write half open: closing it could end the exchange early.
        Ok::<_, std::io::Error>(wr)
    });
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("reading the answer failed after {} bytes: {e}", buf.len()),
            }
            if let Some(r) = parse(&buf) {
                return r;
            }
        }
        parse(&buf)
            .unwrap_or_else(|| panic!("incomplete answer: {:?}", String::from_utf8_lossy(&buf)))
    };
    let mut r =
        tokio::time::timeout(Duration::from_secs(30), read).await.expect("an answer within 30 s");
    r.sent_all =
        matches!(tokio::time::timeout(Duration::from_secs(5), writer).await, Ok(Ok(Ok(_))));
    r
}

/// A complete response with a `Content-Length` body, if `buf` holds one.
fn parse(buf: &[u8]) -> Option<Raw> {
    let text = String::from_utf8_lossy(buf);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok())?;
    if rest.len() < len {
        return None;
    }
    let body = serde_json::from_str(&rest[..len]).unwrap_or(Value::String(rest[..len].to_owned()));
    Some(Raw { status, head: head.to_owned(), body, sent_all: false })
}

fn request(method: &str, path: &str, extra: &[&str]) -> String {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {TOKEN}\r\n");
    for h in extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

async fn send(s: &Served, method: &str, path: &str, body: &str) -> Raw {
    let len = format!("content-length: {}", body.len());
    let ct = "content-type: application/json";
    exchange(s.addr, request(method, path, &[&len, ct]), body.as_bytes().to_vec()).await
}

fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

const TEN_MB: usize = 10 * 1024 * 1024;

#[tokio::test]
async fn ten_megabytes_with_content_length_get_a_json_413_not_a_reset() {
    let s = serve().await;
    let head = request("POST", "/jobs/quick/pause", &[&format!("content-length: {TEN_MB}")]);
    let r = exchange(s.addr, head, vec![b'x'; TEN_MB]).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.sent_all, "the server read the upload before answering");
    assert_eq!(
        r.error(),
        format!("request body of {TEN_MB} bytes is over the limit of {LIMIT} bytes")
    );
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(!s.scheduler.job("quick").unwrap().paused, "nothing was done");
}

#[tokio::test]
async fn ten_megabytes_chunked_get_a_json_413_not_a_reset() {
    let s = serve().await;
    let head = request("POST", "/jobs/quick/pause", &["transfer-encoding: chunked"]);
    let r = exchange(s.addr, head, chunked(&vec![b'x'; TEN_MB], 100_000)).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.sent_all, "the server read the upload before answering");
    assert_eq!(r.error(), format!("request body is over the limit of {LIMIT} bytes"));
    // Just over the limit, chunked, on a route that takes no body: 413 too.
    let head = request("GET", "/jobs", &["transfer-encoding: chunked"]);
    let r = exchange(s.addr, head, chunked(&vec![b'{'; LIMIT as usize + 1], 4096)).await;
    assert_eq!(
        (r.status, r.error()),
        (413, &*format!("request body is over the limit of {LIMIT} bytes"))
    );
    // At the limit: read, then refused for its content.
    let head = request("POST", "/jobs/quick/pause", &["transfer-encoding: chunked"]);
    let r = exchange(s.addr, head, chunked(&vec![b' '; LIMIT as usize], 4096)).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn a_body_where_none_is_taken_is_a_400_naming_the_endpoint() {
    let s = serve().await;
    for (method, path) in [
        ("GET", "/jobs"),
        ("GET", "/jobs/quick"),
        ("GET", "/jobs/quick/executions"),
        ("POST", "/jobs/quick/trigger"),
        ("POST", "/jobs/quick/resume"),
        ("GET", "/livez"),
    ] {
        let r = send(&s, method, path, "{}").await;
        assert_eq!(r.status, 400, "{method} {path}: {r:?}");
        assert_eq!(r.error(), format!("{method} {path} takes no request body; got 2 bytes"));
    }
    // Chunked counts too.
    let head = request("POST", "/jobs/quick/trigger", &["transfer-encoding: chunked"]);
    let r = exchange(s.addr, head, chunked(b"hello", 2)).await;
    assert_eq!(
        (r.status, r.error()),
        (400, "POST /jobs/quick/trigger takes no request body; got 5 bytes")
    );
    // An empty body is no body.
    assert_eq!(send(&s, "POST", "/jobs/quick/resume", "").await.status, 200);
    assert!(s.store.is_empty(), "nothing ran");
}

#[tokio::test]
async fn paths_are_exact() {
    let s = serve().await;
    for path in [
        "/jobs//quick",
        "/jobs/quick/",
        "//jobs/quick",
        "/jobs//executions",
        "/jobs/quick//executions",
    ] {
        let r = send(&s, "GET", path, "").await;
        assert_eq!((r.status, r.error()), (404, "not found"), "{path}");
    }
    assert_eq!(send(&s, "GET", "/jobs/quick", "").await.status, 200);
    assert_eq!(send(&s, "GET", "/jobs/qu%69ck", "").await.status, 200, "percent-decoded");
    let r = send(&s, "GET", "/jobs/%ff", "").await;
    assert_eq!((r.status, r.error()), (400, "invalid percent-encoding in path segment \"%ff\""));
    // Two hex digits, not a sign and one.
    let r = send(&s, "GET", "/jobs/%+9", "").await;
    assert_eq!((r.status, r.error()), (400, "invalid percent-encoding in path segment \"%+9\""));
    let r = send(&s, "GET", "/jobs?x=1", "").await;
    assert_eq!((r.status, r.error()), (400, "GET /jobs takes no query string; got \"x=1\""));
}

/// Every query-parameter error of every route names the parameter in
/// `"field"`, whatever its status.
#[tokio::test]
async fn query_parameter_errors_name_the_parameter() {
    let s = serve_with_control().await;
    for (path, code, field) in [
        ("/jobs/quick/executions?limit=0", 422, "limit"),
        ("/jobs/quick/executions?limit=abc", 400, "limit"),
        ("/jobs/quick/executions?status=bogus", 422, "status"),
        ("/jobs/quick/executions?cursor=zz", 400, "cursor"),
        ("/jobs/quick/executions?page=2", 400, "page"),
        ("/jobs/quick/executions?limit=1&limit=2", 400, "limit"),
        ("/audit?limit=0", 422, "limit"),
        ("/audit?before=x", 400, "before"),
        ("/audit?job=", 400, "job"),
        ("/audit?color=red", 400, "color"),
        ("/alerts?limit=0", 422, "limit"),
        ("/alerts?limit=abc", 400, "limit"),
        ("/alerts?before=x", 400, "before"),
        ("/alerts?colour=red", 400, "colour"),
        ("/alerts?job=a&job=b", 400, "job"),
        ("/jobs/quick/upcoming?n=0", 400, "n"),
        ("/jobs?x=1", 400, "x"),
    ] {
        let r = send(&s, "GET", path, "").await;
        assert_eq!((r.status, r.body["field"].as_str()), (code, Some(field)), "{path}: {r:?}");
    }
}

#[tokio::test]
async fn long_uris_and_headers_get_json_errors() {
    let s = serve().await;
    // Over the server's limit, under hyper's: the server's 414.
    let path = format!("/jobs/{}", "a".repeat(9000));
    let r = send(&s, "GET", &path, "").await;
    assert_eq!(r.status, 414, "{r:?}");
    assert_eq!(r.error(), "request path and query of 9006 bytes are over the limit of 8192 bytes");
    let r =
        send(&s, "GET", &format!("/jobs/quick/executions?cursor={}", "a".repeat(8200)), "").await;
    assert_eq!(r.status, 414, "{r:?}");
    // Just under: an ordinary 404.
    let path = format!("/jobs/{}", "a".repeat(8000));
    let r = send(&s, "GET", &path, "").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.error().starts_with("unknown job \"aaa"));
}

#[tokio::test]
async fn pause_bodies_are_parsed_strictly() {
    let s = serve().await;
    let ep = "POST /jobs/quick/pause";
    for (body, error) in [
        (
            r#"{"note": 5}"#,
            format!(
                "{ep}: field \"note\": invalid type: integer `5`, expected a string at line 1 column 10"
            ),
        ),
        (
            r#"{"note": "x", "until": 3}"#,
            format!(
                "{ep}: field \"until\": unknown field `until`, expected `note` at line 1 column 21"
            ),
        ),
        (
            r#"{"note": "x""#,
            format!("{ep}: invalid JSON body: EOF while parsing an object at line 1 column 12"),
        ),
        (r#"["x"]"#, format!("{ep}: invalid JSON body: expected an object {{...}}")),
        (
            r#"{"note": ""}"#,
            format!("{ep}: field \"note\" is empty; leave it out or say why the job is paused"),
        ),
        (
            &format!(r#"{{"note": "{}"}}"#, "n".repeat(1001)),
            format!("{ep}: field \"note\" has 1001 characters, over the limit of 1000"),
        ),
    ] {
        let r = send(&s, "POST", "/jobs/quick/pause", body).await;
        assert_eq!((r.status, r.error()), (400, error.as_str()), "{body}");
        assert!(!s.scheduler.job("quick").unwrap().paused);
    }
    let r = send(&s, "POST", "/jobs/quick/pause", r#"{"note": "disk replacement"}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["paused"], true);
    assert_eq!(send(&s, "POST", "/jobs/quick/resume", "").await.body["paused"], false);
    let r = send(&s, "POST", "/jobs/nope/pause", r#"{"note": "x"}"#).await;
    assert_eq!((r.status, r.error()), (404, "unknown job \"nope\""));
}

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_772_330_400 + s, 0).unwrap()
}

fn finished(id: u128, attempt: u32, started: DateTime<Utc>) -> ExecutionEvent {
    ExecutionEvent::Finished(AttemptEnd {
        job_id: "quick".into(),
        execution_id: ExecutionId::from_u128(id),
        attempt,
        scheduled_at: started,
        started_at: started,
        instance_id: "i".into(),
        status: ExecutionStatus::Succeeded,
        completed_at: started,
        duration: Duration::ZERO,
        error: None,
        error_kind: None,
        result: None,
        metrics: None,
        kind: mscribe_scheduler::FireKind::Schedule,
        fence: None,
        ends_run: true,
    })
}

/// Every page of the history at `limit`, following `next_cursor`.
async fn pages(s: &Served, limit: usize, extra: &str) -> Vec<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/jobs/quick/executions?limit={limit}{extra}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = send(s, "GET", &path, "").await;
        assert_eq!(r.status, 200, "{r:?}");
        out.push(
            r.body["executions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (e["execution_id"].as_str().unwrap().to_owned(), e["attempt"].as_u64().unwrap())
                })
                .collect(),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
        assert!(out.len() < 100, "no end");
    }
}

#[tokio::test]
async fn history_pages_with_a_cursor_across_equal_start_times() {
    let s = serve().await;
    // 3 runs alone, then 4 runs sharing one start time, 2 attempts of one
    // run at the same instant, 2 more alone: 11 rows.
    let mut events = vec![finished(1, 1, at(0)), finished(2, 1, at(10)), finished(3, 1, at(20))];
    for id in 4..8 {
        events.push(finished(id, 1, at(30)));
    }
    events.push(finished(8, 1, at(40)));
    events.push(finished(8, 2, at(40)));
    events.push(finished(9, 1, at(50)));
    events.push(finished(10, 1, at(60)));
    s.store.write(&events).await.unwrap();
    let all = pages(&s, 1000, "").await;
    assert_eq!(all.len(), 1);
    let all = all[0].clone();
    assert_eq!(all.len(), 11);
    for limit in 1..=11 {
        let got = pages(&s, limit, "").await;
        assert_eq!(got.len(), 11usize.div_ceil(limit), "limit {limit}");
        assert!(got.iter().all(|p| p.len() <= limit && !p.is_empty()));
        assert_eq!(got.concat(), all, "limit {limit}: every row once, in order");
    }
    // With a status filter.
    s.store
        .write(&[ExecutionEvent::Started(AttemptStart {
            job_id: "quick".into(),
            execution_id: ExecutionId::from_u128(11),
            attempt: 1,
            scheduled_at: at(30),
            started_at: at(30),
            instance_id: "i".into(),
            kind: mscribe_scheduler::FireKind::Schedule,
            fence: None,
        })])
        .await
        .unwrap();
    let running = pages(&s, 1, "&status=running").await;
    assert_eq!(running.concat().len(), 1);
    assert_eq!(pages(&s, 2, "&status=succeeded").await.concat(), all);
}

#[tokio::test]
async fn rows_written_between_pages_do_not_shift_them() {
    let s = serve().await;
    let events: Vec<_> = (1..=6).map(|i| finished(i, 1, at(i as i64 * 10))).collect();
    s.store.write(&events).await.unwrap();
    let r = send(&s, "GET", "/jobs/quick/executions?limit=2", "").await;
    let ids = |r: &Raw| -> Vec<String> {
        r.body["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["execution_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = ids(&r);
    assert_eq!(
        first,
        [ExecutionId::from_u128(6).to_string(), ExecutionId::from_u128(5).to_string()]
    );
    // Ten newer rows arrive.
    let newer: Vec<_> = (100..110).map(|i| finished(i, 1, at(1000 + i as i64))).collect();
    s.store.write(&newer).await.unwrap();
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = send(&s, "GET", &format!("/jobs/quick/executions?limit=2&cursor={cursor}"), "").await;
    assert_eq!(
        ids(&r),
        [ExecutionId::from_u128(4).to_string(), ExecutionId::from_u128(3).to_string()]
    );
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = send(&s, "GET", &format!("/jobs/quick/executions?limit=5&cursor={cursor}"), "").await;
    assert_eq!(
        ids(&r),
        [ExecutionId::from_u128(2).to_string(), ExecutionId::from_u128(1).to_string()]
    );
    assert_eq!(r.body["next_cursor"], Value::Null);
    // A bad cursor names itself.
    let r = send(&s, "GET", "/jobs/quick/executions?cursor=bm9wZQ", "").await;
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("invalid cursor \"bm9wZQ\""), "{r:?}");
}

#[tokio::test]
async fn control_routes_go_through_the_control_plane() {
    let s = serve_with_control().await;
    let r = send(&s, "POST", "/jobs/quick/pause", r#"{"note": "disk replacement"}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (r.body["paused"].as_bool(), r.body["pause"]["note"].as_str()),
        (Some(true), Some("disk replacement"))
    );
    assert_eq!(r.body["pause"]["source"], "api");
    assert!(s.scheduler.job("quick").unwrap().paused);
    let r = send(&s, "GET", "/jobs", "").await;
    assert_eq!(r.body["jobs"][0]["pause"]["note"], "disk replacement");
    let r = send(&s, "POST", "/jobs/quick/pause", "{\"note\": \"a\\u0000b\"}").await;
    assert_eq!(
        (r.status, r.error()),
        (400, "POST /jobs/quick/pause: field \"note\": note contains a NUL character")
    );
    let r = send(&s, "POST", "/jobs/quick/resume", "").await;
    assert_eq!(
        (r.status, r.body["paused"].as_bool(), &r.body["pause"]),
        (200, Some(false), &Value::Null)
    );
    let r = send(&s, "POST", "/jobs/quick/trigger", "").await;
    assert_eq!((r.status, r.body["outcome"].as_str()), (202, Some("started")), "{r:?}");
    assert!(r.body["trigger_id"].is_i64(), "{r:?}");
    let r = send(&s, "POST", "/jobs/nope/pause", "").await;
    assert_eq!((r.status, r.error()), (404, "unknown job \"nope\""));

    // Cancel: a bad id names itself; a run this lone instance does not
    // have runs nowhere (404).
    let r = send(&s, "POST", "/executions/xyz/cancel", "").await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid execution id \"xyz\": expected 32 hex digits, hyphens allowed")
    );
    let r = send(&s, "POST", "/executions/00000000-0000-0000-0000-00000000002a/cancel", "").await;
    assert_eq!(
        (r.status, r.error()),
        (404, "execution 00000000-0000-0000-0000-00000000002a: no instance runs this execution")
    );
    let r = send(&s, "POST", "/executions/00000000-0000-0000-0000-00000000002a/cancel", "{}").await;
    assert_eq!(r.status, 400, "a cancel takes no body");

    // The audit log, newest first, a page at a time.
    let r = send(&s, "GET", "/audit", "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let actions: Vec<&str> = r.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["cancel", "trigger", "resume", "pause"]);
    assert_eq!(r.body["entries"][3]["note"], "disk replacement");
    assert_eq!(r.body["next_before"], Value::Null);
    let mut seen = Vec::new();
    let mut path = "/audit?limit=1".to_owned();
    loop {
        let r = send(&s, "GET", &path, "").await;
        // A full page has a next_before; the page after the last is empty.
        let Some(action) = r.body["entries"][0]["action"].as_str() else { break };
        seen.push(action.to_owned());
        match r.body["next_before"].as_i64() {
            Some(b) => path = format!("/audit?limit=1&before={b}"),
            None => break,
        }
        assert!(seen.len() < 10);
    }
    assert_eq!(seen, ["cancel", "trigger", "resume", "pause"]);
    let r = send(&s, "GET", "/audit?job=quick", "").await;
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 3);
    for (path, code, error) in [
        ("/audit?limit=0", 422, "limit must be between 1 and 1000, got 0"),
        (
            "/audit?color=red",
            400,
            "unknown query parameter \"color\"; expected limit, job or before",
        ),
        ("/audit?before=x", 400, "before must be an audit id (an integer), got \"x\""),
    ] {
        let r = send(&s, "GET", path, "").await;
        assert_eq!((r.status, r.error()), (code, error), "{path}");
    }
}

#[tokio::test]
async fn without_a_control_plane_cancel_and_audit_are_404() {
    let s = serve().await;
    let r = send(&s, "GET", "/audit", "").await;
    assert_eq!(
        (r.status, r.error()),
        (404, "the audit log needs the control plane, which this server has not")
    );
    let r = send(&s, "POST", "/executions/00000000-0000-0000-0000-00000000002a/cancel", "").await;
    assert_eq!(r.status, 404);
    // Pause and resume act on the local scheduler.
    assert_eq!(send(&s, "POST", "/jobs/quick/pause", "").await.body["paused"], true);
}

#[tokio::test]
async fn what_hyper_refuses_itself_is_json_too() {
    let s = serve().await;
    let check = |r: Raw, code: u16, error: &str| {
        assert_eq!((r.status, r.error()), (code, error), "{r:?}");
        assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
        assert_eq!(r.header("connection").as_deref(), Some("close"));
    };
    let path = format!("/jobs/{}", "a".repeat(70_000));
    check(send(&s, "GET", &path, "").await, 414, "request URI is over 65534 bytes");
    let big = format!("x-big: {}", "b".repeat(500_000));
    let too_large = "request headers are too large: over 100 headers, or about 400 KiB of them";
    check(exchange(s.addr, request("GET", "/jobs", &[&big]), Vec::new()).await, 431, too_large);
    let many: Vec<String> = (0..120).map(|i| format!("x-h{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    check(exchange(s.addr, request("GET", "/jobs", &many), Vec::new()).await, 431, too_large);
    let r = exchange(
        s.addr,
        "GET /jobs HTTP/1.1\r\nhost: x\r\ncontent-length: zz\r\n\r\n".into(),
        Vec::new(),
    )
    .await;
    check(
        r,
        400,
        "malformed request: the request line or a header could not be parsed (e.g. an invalid \
         Content-Length or Transfer-Encoding)",
    );
    // The routes' own answers pass unchanged.
    let r = send(&s, "GET", "/nope", "").await;
    assert_eq!((r.status, r.error()), (404, "not found"));
}

/// A request target that is not a path (authority form, as CONNECT sends,
/// or a bare word) is a JSON 400 naming it:
/// the routes read the path, and warp panics on a request without one.
#[tokio::test]
async fn a_request_target_that_is_not_a_path_is_a_400_naming_it() {
    let s = serve().await;
    for (method, target) in [("CONNECT", "example.com:80"), ("GET", "jobs"), ("GET", "a:b")] {
        let r = exchange(s.addr, request(method, target, &[]), Vec::new()).await;
        assert_eq!(r.status, 400, "{method} {target}: {r:?}");
        assert!(r.error().contains(&format!("{target:?}")), "{method} {target}: {r:?}");
    }
    // An absolute URI with a path is routed by its path.
    let r = exchange(s.addr, request("GET", "http://example.com/livez", &[]), Vec::new()).await;
    assert_eq!(r.status, 200, "{r:?}");
    // The server still answers.
    assert_eq!(send(&s, "GET", "/nope", "").await.status, 404);
}
