//! Request bodies: read with a cap whatever their framing (`Content-Length`
//! or chunked), the excess drained so that the client reads the 413 instead
//! of a reset connection, and parsed strictly as JSON (unknown fields, wrong
//! types and malformed text are refused naming the field).

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::http::{HeaderMap, header};

use super::reply::ApiError;

/// How much of an oversized body is read and thrown away before the 413,
/// so that a client still writing it reads the answer rather than a reset.
/// A larger body is answered at once (the client may then see the reset).
pub(super) const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// How long an oversized body is drained at most.
pub(super) const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// The request's body: at most `limit` bytes, else a 413 (JSON) after
/// draining what the client still sends (up to [`DRAIN_MAX_BYTES`] within
/// [`DRAIN_MAX_TIME`]). A declared `Content-Length` over the limit is
/// answered without reading when the client waits for `100 Continue`.
pub(super) async fn read_body<S, B>(
    headers: &HeaderMap,
    body: S,
    limit: u64,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let declared = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => {
            let text = v.to_str().unwrap_or("");
            match text.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(ApiError::bad_request(format!(
                        "invalid content-length \"{}\"",
                        String::from_utf8_lossy(v.as_bytes())
                    )));
                }
            }
        }
    };
    let too_large = |n: Option<u64>| {
        ApiError::too_large(match n {
            Some(n) => format!("request body of {n} bytes is over the limit of {limit} bytes"),
            None => format!("request body is over the limit of {limit} bytes"),
        })
    };
    if let Some(n) = declared
        && n > limit
    {
        let expects_continue = headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !expects_continue && n <= DRAIN_MAX_BYTES {
            drain(body).await;
        }
        return Err(too_large(Some(n)));
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if (buf.len() + chunk.remaining()) as u64 > limit {
            drain(body).await;
            return Err(too_large(None));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

/// Reads and discards the rest of a body, bounded in bytes and time.
pub(super) async fn drain<S, B>(body: S)
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let work = async {
        let mut seen: u64 = 0;
        while let Some(Ok(chunk)) = body.next().await {
            seen += chunk.remaining() as u64;
            if seen > DRAIN_MAX_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, work).await;
}

/// Parses a JSON body strictly into `T` (whose fields should be
/// `deny_unknown_fields`): a malformed body, a value of the wrong type or an
/// unknown field is a 400 naming the field and what `endpoint` expects; the
/// body must be a JSON object.
pub(super) fn parse_json<T: DeserializeOwned>(body: &[u8], endpoint: &str) -> Result<T, ApiError> {
    // serde reads a struct from an array too; a body is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(format!(
            "{endpoint}: invalid JSON body: expected an object {{...}}"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let syntax = !matches!(inner.classify(), serde_json::error::Category::Data);
        if syntax || path.is_empty() || path == "." || path == "?" {
            let e = ApiError::bad_request(format!("{endpoint}: invalid JSON body: {inner}"));
            match (syntax, named_field(&inner.to_string())) {
                (false, Some(f)) => e.with_field(f),
                _ => e,
            }
        } else {
            ApiError::bad_request(format!("{endpoint}: field \"{path}\": {inner}")).with_field(path)
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(format!("{endpoint}: invalid JSON body: trailing characters: {e}"))
    })?;
    Ok(value)
}

/// The field serde names in an unknown or missing field error
/// (``unknown field `x`, expected ...``, ``missing field `x` ``).
fn named_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split_once('`').map(|(f, _)| f.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Note {
        note: Option<String>,
    }

    #[test]
    fn strict_json_names_the_field() {
        let e = parse_json::<Note>(br#"{"note": 5}"#, "POST /jobs/x/pause").unwrap_err();
        assert!(e.message.starts_with("POST /jobs/x/pause: field \"note\": invalid type"), "{e:?}");
        assert_eq!(e.field.as_deref(), Some("note"));
        let e = parse_json::<Note>(br#"{"nope": 1}"#, "E").unwrap_err();
        assert!(e.message.contains("unknown field `nope`"), "{e:?}");
        assert_eq!(e.field.as_deref(), Some("nope"));
        let e = parse_json::<Note>(br#"{"note": "a""#, "E").unwrap_err();
        assert!(e.message.contains("invalid JSON body"), "{e:?}");
        let e = parse_json::<Note>(br#"{"note": "a"} x"#, "E").unwrap_err();
        assert!(e.message.contains("trailing characters"), "{e:?}");
        assert_eq!(
            parse_json::<Note>(br#" {"note": "a"} "#, "E").unwrap().note.as_deref(),
            Some("a")
        );
    }
}
