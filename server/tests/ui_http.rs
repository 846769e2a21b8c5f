//! The dashboard over plain HTTP against the real `mscribe serve`: the
//! redirect, wrong methods (405 with `Allow`), the login, the security
//! headers and cookie flags, escaping, CSRF, and `[ui] enabled = false`
//! removing the routes. (The browser tests are in ui_browser.rs.)

mod common;

use std::time::Duration;

use common::{Server, base_env};

/// An answer, redirects not followed.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

/// One request with a form body (when not empty) and a cookie (when not
/// empty); a redirect is answered, not followed.
async fn send(srv: &Server, method: &str, path: &str, cookie: &str, form: &str) -> Answer {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(method, format!("http://{}{path}", srv.addr));
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    if !form.is_empty() {
        req = req.header("content-type", "application/x-www-form-urlencoded").body(form.to_owned());
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    Answer { status, headers, body: r.text().await.unwrap() }
}

fn text(r: &Answer) -> String {
    r.body.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_headers_escaping_and_csrf() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut env = base_env(dir, &format!("sqlite://{}", dir.join("mscribe.db").display()));
    env.push(("MSCRIBE_UI_SECURE_COOKIE".into(), "true".into()));
    let srv = Server::start(dir, &env);
    let token = std::fs::read_to_string(dir.join("data/admin_token")).unwrap().trim().to_owned();

    let r = send(&srv, "GET", "/", "", "").await;
    assert_eq!((r.status, r.headers["location"].to_str().unwrap()), (303, "/ui/"));
    let r = send(&srv, "GET", "/ui/", "", "").await;
    assert_eq!((r.status, r.headers["location"].to_str().unwrap()), (303, "/ui/login"));
    let r = send(&srv, "GET", "/ui/login", "", "").await;
    assert_eq!(r.status, 200);
    // The login form's CSRF token, in the form and in a cookie.
    let login_set = r.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(login_set.contains("Path=/ui/login; HttpOnly; SameSite=Strict"), "{login_set}");
    let login_cookie = login_set.split(';').next().unwrap().to_owned();
    let login_csrf = text(&r)
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert!(!text(&r).contains("<script>"), "an inline script in the page");
    let js = send(&srv, "GET", "/ui/assets/app.js", "", "").await;
    assert_eq!(
        (js.status, js.headers["content-type"].to_str().unwrap()),
        (200, "text/javascript; charset=utf-8")
    );

    // Without the form's CSRF token, or with another, even the right admin
    // token is refused.
    // Another token: the first hex digit changed.
    let other = if login_csrf.starts_with('0') { "1" } else { "0" };
    for (cookie, form) in [
        ("", format!("token={token}")),
        (login_cookie.as_str(), format!("token={token}")),
        (login_cookie.as_str(), format!("csrf={other}{}&token={token}", &login_csrf[1..])),
        ("", format!("csrf={login_csrf}&token={token}")),
    ] {
        let r = send(&srv, "POST", "/ui/login", cookie, &form).await;
        assert_eq!(r.status, 403, "{cookie} {form}");
        assert!(r.headers.get("set-cookie").is_none());
    }
    // A wrong token: 401 and no session; the right one: a session cookie.
    let with_csrf = |t: &str| format!("csrf={login_csrf}&token={t}");
    let r = send(&srv, "POST", "/ui/login", &login_cookie, &with_csrf("wrong")).await;
    assert_eq!(r.status, 401);
    let set = r.headers.get("set-cookie").map(|v| v.to_str().unwrap().to_owned());
    assert!(set.is_some_and(|c| c.starts_with("mscribe_login=")), "only a new login token");
    let r = send(&srv, "POST", "/ui/login", &login_cookie, &with_csrf(&token)).await;
    assert_eq!(r.status, 303);
    let set = r.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly; SameSite=Strict") && set.ends_with("; Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();

    // The jobs page; its CSRF token.
    let page = text(&send(&srv, "GET", "/ui/", &cookie, "").await);
    assert_eq!(page.matches("<tr data-job=").count(), 7, "{page}");
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap();

    // A note with markup is escaped; a form without the token is refused.
    let note = "<script>alert(1)</script>";
    let form = format!("csrf={csrf}&note=%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert_eq!(
        send(&srv, "POST", "/ui/jobs/temp-cleanup/pause", &cookie, "note=x").await.status,
        403
    );
    let r = send(&srv, "POST", "/ui/jobs/temp-cleanup/pause", &cookie, &form).await;
    assert_eq!((r.status, r.headers["location"].to_str().unwrap()), (303, "/ui/jobs/temp-cleanup"));
    let job = text(&send(&srv, "GET", "/ui/jobs/temp-cleanup", &cookie, "").await);
    assert!(job.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{job}");
    assert!(!job.contains(note));
    let (_, v) = srv.json("GET", "/jobs/temp-cleanup", Some(&token)).await;
    assert_eq!(v["pause"]["note"], note);
    // A pause without a note is refused with a message, nothing done.
    let r = send(
        &srv,
        "POST",
        "/ui/jobs/database-backup/pause",
        &cookie,
        &format!("csrf={csrf}&note=+"),
    )
    .await;
    assert_eq!(r.status, 303);
    let job = text(&send(&srv, "GET", "/ui/jobs/database-backup", &cookie, "").await);
    assert!(job.contains("A pause needs a note"), "{job}");
    assert_eq!(srv.json("GET", "/jobs/database-backup", Some(&token)).await.1["paused"], false);

    // Unknown jobs and runs are 404 pages; the API is untouched.
    assert_eq!(send(&srv, "GET", "/ui/jobs/nope", &cookie, "").await.status, 404);
    assert_eq!(send(&srv, "GET", "/ui/jobs/temp-cleanup/runs/nope", &cookie, "").await.status, 404);
    assert_eq!(srv.json("GET", "/jobs", None).await.0, 401);

    // A job defined through the API can be deleted from its page; one of
    // the configuration cannot.
    let def = serde_json::json!({ "kind": "http", "url": "http://127.0.0.1:9/", "schedule": "@every 1h" });
    assert_eq!(srv.send("PUT", "/jobs/hook", &token, &def).await.0, 201);
    let page = text(&send(&srv, "GET", "/ui/jobs/hook", &cookie, "").await);
    assert!(page.contains("id=\"delete\"") && page.contains("<dd>http</dd>"), "{page}");
    let page = text(&send(&srv, "GET", "/ui/jobs/temp-cleanup", &cookie, "").await);
    assert!(!page.contains("id=\"delete\""));
    let r = send(&srv, "POST", "/ui/jobs/hook/delete", &cookie, &format!("csrf={csrf}")).await;
    assert_eq!((r.status, r.headers["location"].to_str().unwrap()), (303, "/ui/"));
    assert_eq!(srv.json("GET", "/jobs/hook", Some(&token)).await.0, 404);
    assert!(text(&send(&srv, "GET", "/ui/", &cookie, "").await).contains("Deleted job hook."));

    // A backfill from its form runs, audited as the API's.
    let to = chrono::Utc::now() - chrono::Duration::minutes(1);
    let from = to - chrono::Duration::minutes(10);
    let form = serde_urlencoded::to_string([
        ("csrf", csrf),
        ("from", &from.to_rfc3339()),
        ("to", &to.to_rfc3339()),
    ])
    .unwrap();
    let r = send(&srv, "POST", "/ui/jobs/health-snapshot/backfill", &cookie, &form).await;
    assert_eq!(r.status, 303);
    let page = text(&send(&srv, "GET", "/ui/jobs/health-snapshot", &cookie, "").await);
    // (Two or three fires: the range may start on a fire.)
    let flash = page.split("Backfill of health-snapshot: ").nth(1).unwrap_or_default();
    assert!(
        flash.starts_with("2 of 2 fires to run (running).") || flash.starts_with("3 of 3"),
        "{page}"
    );
    let (_, audit) = srv.json("GET", "/audit?job=health-snapshot", Some(&token)).await;
    assert_eq!(audit["entries"][0]["action"], "backfill", "{audit}");

    // History a page of 25 at a time, with the API's cursors, and by status.
    for _ in 0..26 {
        let (code, body) = srv.json("POST", "/jobs/log-rotation/trigger", Some(&token)).await;
        assert!(code == 202 || code == 200, "{body}");
    }
    srv.poll("GET", "/jobs/log-rotation/executions?limit=30", Some(&token), |_, v| {
        let rows = v["executions"].as_array().map_or(0, Vec::len);
        rows >= 26 && v["executions"].as_array().unwrap().iter().all(|r| r["status"] != "running")
    })
    .await;
    let first = text(&send(&srv, "GET", "/ui/jobs/log-rotation", &cookie, "").await);
    assert_eq!(first.matches("<tr data-run=").count(), 25, "{first}");
    let next = first.split("<a href=\"").find_map(|s| {
        let (href, rest) = s.split_once('"')?;
        rest.starts_with(" rel=\"next\"").then(|| href.replace("&amp;", "&"))
    });
    let next = next.expect("a link to the next page");
    assert!(next.starts_with("/ui/jobs/log-rotation?cursor="), "{next}");
    let second = text(&send(&srv, "GET", &next, &cookie, "").await);
    let rows = second.matches("<tr data-run=").count();
    assert!((1..=25).contains(&rows), "{second}");
    assert!(second.contains(">Newest</a>"));
    let cancelled =
        text(&send(&srv, "GET", "/ui/jobs/log-rotation?status=cancelled", &cookie, "").await);
    assert!(cancelled.contains("No runs."), "{cancelled}");
    let bad = text(&send(&srv, "GET", "/ui/jobs/log-rotation?status=bogus", &cookie, "").await);
    assert!(bad.contains("the history could not be read"), "{bad}");

    // Logout: the session is gone.
    let r = send(&srv, "POST", "/ui/logout", &cookie, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, 303);
    assert!(r.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let r = send(&srv, "GET", "/ui/", &cookie, "").await;
    assert_eq!((r.status, r.headers["location"].to_str().unwrap()), (303, "/ui/login"));
}

/// A wrong method on a dashboard path is a 405 whose `Allow` lists the
/// path's methods, with or without a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_are_405s_with_allow() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let env = base_env(dir, &format!("sqlite://{}", dir.join("mscribe.db").display()));
    let srv = Server::start(dir, &env);
    for (method, path, allow) in [
        ("PUT", "/ui/", "GET, HEAD"),
        ("DELETE", "/ui/jobs/h1", "GET, HEAD"),
        ("POST", "/ui/jobs/h1", "GET, HEAD"),
        ("PATCH", "/ui/jobs/h1/runs/x", "GET, HEAD"),
        ("PUT", "/ui/audit", "GET, HEAD"),
        ("DELETE", "/ui/assets/app.js", "GET, HEAD"),
        ("PUT", "/ui/login", "GET, HEAD, POST"),
        ("GET", "/ui/logout", "POST"),
        ("GET", "/ui/jobs/h1/trigger", "POST"),
        ("DELETE", "/ui/jobs/h1/runs/x/cancel", "POST"),
    ] {
        let r = send(&srv, method, path, "", "").await;
        let got = r.headers.get("allow").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!((r.status, got.as_deref()), (405, Some(allow)), "{method} {path}");
        assert!(text(&r).contains("Method not allowed"), "{method} {path}");
    }
    // An unknown path is not found, whatever the method.
    assert_eq!(send(&srv, "PUT", "/ui/nope", "", "").await.status, 404);
}

/// `/` and `/ui` redirect a GET or a HEAD to `/ui/`; another method is a
/// 405 with `Allow`, not a redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_and_head_redirect_to_the_dashboard() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let env = base_env(dir, &format!("sqlite://{}", dir.join("mscribe.db").display()));
    let srv = Server::start(dir, &env);
    for path in ["/", "/ui"] {
        for method in ["GET", "HEAD"] {
            let r = send(&srv, method, path, "", "").await;
            let to = r.headers.get("location").map(|v| v.to_str().unwrap().to_owned());
            assert_eq!((r.status, to.as_deref()), (303, Some("/ui/")), "{method} {path}");
        }
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let r = send(&srv, method, path, "", "").await;
            let allow = r.headers.get("allow").map(|v| v.to_str().unwrap().to_owned());
            assert_eq!((r.status, allow.as_deref()), (405, Some("GET, HEAD")), "{method} {path}");
            assert!(r.headers.get("location").is_none(), "{method} {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_the_routes_are_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut env = base_env(dir, &format!("sqlite://{}", dir.join("mscribe.db").display()));
    env.push(("MSCRIBE_UI_ENABLED".into(), "false".into()));
    let srv = Server::start(dir, &env);
    for path in ["/", "/ui", "/ui/", "/ui/login", "/ui/assets/app.js"] {
        let (code, body) = srv.json("GET", path, None).await;
        assert_eq!((code, body["error"].as_str()), (404, Some("not found")), "{path}");
    }
    assert_eq!(srv.json("GET", "/livez", None).await.0, 200);
}
