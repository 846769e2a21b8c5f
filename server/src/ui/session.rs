//! The dashboard's logins: a server-side table of sessions (a random id in
//! an HttpOnly, SameSite=Strict cookie; an expiry), each with its CSRF
//! token, which every mutating form carries.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use warp::http::HeaderMap;
use warp::http::header;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "mscribe_session";

/// The cookie of the login form's CSRF token.
pub(crate) const LOGIN_COOKIE: &str = "mscribe_login";

/// The most sessions kept: a login past it drops the one expiring first.
const MAX_SESSIONS: usize = 1000;

/// One login.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The CSRF token of its forms.
    pub(crate) csrf: String,
    expires: Instant,
    /// What the last form did, shown once by the next page.
    flash: Option<Flash>,
}

/// The outcome of a form, shown once on the page it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Flash {
    /// It worked: what happened.
    Ok(String),
    /// It did not: why.
    Error(String),
}

/// The sessions, by id.
#[derive(Debug)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    ttl: Duration,
    secure: bool,
}

/// 32 random bytes as hex; `None` when the system has no randomness.
fn random_hex() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Sessions {
    /// No sessions yet; each lasts `ttl`; the cookie is `Secure` when
    /// `secure`.
    pub(crate) fn new(ttl: Duration, secure: bool) -> Self {
        Sessions { map: Mutex::new(HashMap::new()), ttl, secure }
    }

    /// A new session: its id and its `Set-Cookie` value; `None` without
    /// randomness.
    pub(crate) fn create(&self) -> Option<(String, String)> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        // `ui.session_ttl` is at most 100 years; a `Sessions` built with
        // more lasts as long as the clock can say, with no panic.
        let expires = crate::config::de::deadline(now, self.ttl);
        map.insert(id.clone(), Session { csrf, expires, flash: None });
        let cookie = self.cookie(&id, self.ttl.as_secs());
        Some((id, cookie))
    }

    /// A CSRF token for the login form, before any session, and the
    /// `Set-Cookie` that carries it (a double submit: a page of another
    /// site can neither read the cookie nor send it, `SameSite=Strict`);
    /// `None` without randomness.
    pub(crate) fn login_token(&self) -> Option<(String, String)> {
        let token = random_hex()?;
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{LOGIN_COOKIE}={token}; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
        );
        Some((token, cookie))
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub(crate) fn clear_cookie(&self) -> String {
        self.cookie("", 0)
    }

    /// The live session of the request's cookie.
    pub(crate) fn get(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie_value(headers, COOKIE)?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(&id) {
            Some(s) if s.expires > now => Some((id, s.clone())),
            Some(_) => {
                map.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Keeps `flash` for the session's next page.
    pub(crate) fn set_flash(&self, id: &str, flash: Flash) {
        if let Some(s) = self.map.lock().unwrap_or_else(PoisonError::into_inner).get_mut(id) {
            s.flash = Some(flash);
        }
    }

    /// The session's flash, once.
    pub(crate) fn take_flash(&self, id: &str) -> Option<Flash> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).get_mut(id)?.flash.take()
    }

    /// Ends the session `id`.
    pub(crate) fn remove(&self, id: &str) {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the login form's `given` CSRF token is the one its cookie
/// carries (in constant time).
pub(crate) fn login_csrf_ok(headers: &HeaderMap, given: Option<&str>) -> bool {
    match (cookie_value(headers, LOGIN_COOKIE), given) {
        (Some(cookie), Some(given)) => crate::token::tokens_match(given, &cookie),
        _ => false,
    }
}

/// Whether `given` is the session's CSRF token (in constant time).
pub(crate) fn csrf_ok(session: &Session, given: Option<&str>) -> bool {
    given.is_some_and(|g| crate::token::tokens_match(g, &session.csrf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn with_cookie(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn a_session_lives_until_it_expires_or_is_removed() {
        let s = Sessions::new(Duration::from_secs(60), true);
        let (id, cookie) = s.create().unwrap();
        assert_eq!(id.len(), 64);
        assert!(cookie.contains("HttpOnly; SameSite=Strict; Max-Age=60; Secure"), "{cookie}");
        let (_, sess) = s.get(&with_cookie(&format!("a=b; {COOKIE}={id}"))).unwrap();
        assert!(csrf_ok(&sess, Some(&sess.csrf)));
        assert!(!csrf_ok(&sess, Some("x")));
        assert!(!csrf_ok(&sess, None));
        assert!(s.get(&with_cookie(&format!("{COOKIE}=nope"))).is_none());
        s.set_flash(&id, Flash::Ok("done".into()));
        assert_eq!(s.take_flash(&id), Some(Flash::Ok("done".into())));
        assert_eq!(s.take_flash(&id), None);
        s.remove(&id);
        assert!(s.get(&with_cookie(&format!("{COOKIE}={id}"))).is_none());
        let gone = Sessions::new(Duration::ZERO, false);
        let (id, cookie) = gone.create().unwrap();
        assert!(!cookie.contains("Secure"));
        assert!(gone.get(&with_cookie(&format!("{COOKIE}={id}"))).is_none());
        assert!(gone.clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn a_session_ttl_past_the_clock_never_panics() {
        let s = Sessions::new(Duration::MAX, false);
        let (id, cookie) = s.create().unwrap();
        assert!(cookie.contains(&format!("Max-Age={}", Duration::MAX.as_secs())), "{cookie}");
        assert!(s.get(&with_cookie(&format!("{COOKIE}={id}"))).is_some());
    }
}
