//! The dashboard's stylesheet and script, embedded in the binary
//! (`include_str!`) and served under `/ui/assets/`.

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::layout::secure;

/// The script: live refresh, the jobs filter, confirmations.
const APP_JS: &str = include_str!("assets/app.js");

/// The stylesheet: light and dark, following the system.
const APP_CSS: &str = include_str!("assets/app.css");

/// The asset `name` (`app.js`, `app.css`), or `None`.
pub(crate) fn asset(name: &str) -> Option<Response> {
    let (body, kind) = match name {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut r = warp::http::Response::new(body.into());
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(secure(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_are_embedded() {
        let js = asset("app.js").unwrap();
        assert_eq!(js.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(js.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(asset("app.css").is_some());
        assert!(asset("../mod.rs").is_none());
    }
}
