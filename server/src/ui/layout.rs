//! The frame of every dashboard page (header, navigation, the stylesheet
//! and script), the security headers of every answer, and the small pieces
//! pages share: times, statuses, run marks, forms' CSRF fields.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::session::Flash;

/// The Content-Security-Policy of every dashboard answer: no inline script
/// or style, nothing from elsewhere, never framed.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The navigation's entries: path and label.
const NAV: [(&str, &str); 4] =
    [("/ui/", "Jobs"), ("/ui/audit", "Audit"), ("/ui/alerts", "Alerts"), ("/ui/health", "Health")];

/// Adds the security headers every dashboard answer has.
pub(crate) fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    r
}

/// An HTML answer.
pub(crate) fn html_response(status: StatusCode, body: Markup) -> Response {
    let mut r = warp::http::Response::new(body.into_string().into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure(r)
}

/// A 303 to `location` (after a form, or to the login), with a cookie to
/// set if any.
pub(crate) fn redirect(location: &str, set_cookie: Option<&str>) -> Response {
    let mut r = warp::http::Response::new("".into());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    secure(r)
}

/// A whole page: `title`, the navigation with `current` marked (none on
/// the login page), a logout form when `csrf` is given, and `content`.
pub(crate) fn page(title: &str, current: &str, csrf: Option<&str>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · mscribe" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/ui/assets/app.css";
                script src="/ui/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/" { "mscribe" }
                    @if let Some(token) = csrf {
                        nav {
                            @for (href, label) in NAV {
                                a href=(href) class=[(href == current).then_some("current")] { (label) }
                            }
                        }
                        form method="post" action="/ui/logout" {
                            (csrf_field(token))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// The hidden CSRF field of a mutating form.
pub(crate) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// The last form's outcome, if any.
pub(crate) fn flash(f: Option<&Flash>) -> Markup {
    html! {
        @match f {
            Some(Flash::Error(e)) => div.flash.error role="alert" { (e) },
            Some(Flash::Ok(m)) => div.flash.ok role="status" { (m) },
            None => {},
        }
    }
}

/// "in 5 min" or "3 h ago" from `now`.
pub(crate) fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let a = secs.unsigned_abs();
    if a < 5 {
        return "just now".to_owned();
    }
    let span = if a < 60 {
        format!("{a} s")
    } else if a < 3600 {
        format!("{} min", a / 60)
    } else if a < 48 * 3600 {
        format!("{} h {} min", a / 3600, (a % 3600) / 60)
    } else {
        format!("{} days", a / 86400)
    };
    if secs >= 0 { format!("in {span}") } else { format!("{span} ago") }
}

/// A time as `2026-12-06 02:00:00 UTC` with its relative form beside it.
pub(crate) fn when(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    match t {
        None => html! { span.muted { "—" } },
        Some(t) => html! {
            time datetime=(t.to_rfc3339()) title=(t.to_rfc3339()) {
                (t.format("%Y-%m-%d %H:%M:%S UTC")) " "
                span.muted.small { "(" (relative(t, now)) ")" }
            }
        },
    }
}

/// A status as a coloured badge.
pub(crate) fn badge(status: &str) -> Markup {
    html! { span class=(format!("badge t-{status}")) { (status) } }
}

/// A JSON value pretty-printed (escaped by maud).
pub(crate) fn pretty(v: &serde_json::Value) -> Markup {
    html! { pre { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

/// Percent-encodes a path segment or query value.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_and_encoding() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").unwrap().to_utc();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert_eq!(relative(at("2026-12-06T12:00:30Z"), now), "in 30 s");
        assert_eq!(relative(at("2026-12-06T12:00:03Z"), now), "just now");
        assert_eq!(relative(at("2026-12-06T11:55:00Z"), now), "5 min ago");
        assert_eq!(relative(at("2026-12-07T02:00:00Z"), now), "in 14 h 0 min");
        assert_eq!(relative(at("2026-12-01T12:00:00Z"), now), "5 days ago");
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn user_strings_are_escaped() {
        let p = page("<t>", "/ui/", Some("tok\""), html! { p { "<script>alert(1)</script>" } });
        let s = p.into_string();
        assert!(s.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{s}");
        assert!(s.contains("&lt;t&gt;"));
        assert!(!s.contains("tok\"\""));
    }
}
