//! History paging: the opaque `cursor` of `GET /jobs/{id}/executions` and
//! the page it selects.
//!
//! Rows come newest first, ordered by `(started_at, attempt, execution_id)`
//! descending (the stores' order). A cursor holds the key of the last row
//! of a page, so the next page is the rows strictly after it in that order:
//! rows sharing a `started_at` are neither skipped nor repeated, and rows
//! written meanwhile (newer, so before the cursor) do not shift the pages.
//!
//! The stores' [`HistoryQuery`] has no position yet, so the server reads
//! the newest rows up to the cursor and past it. The cursor also carries
//! how many rows came before it (a hint, so that one read usually
//! suffices); the key alone decides the page. The key's three fields are
//! what a `HistoryQuery::before` would take once the stores page
//! themselves, and the text stays the same then.

use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    ExecutionId, ExecutionRecord, ExecutionStatus, ExecutionStore, HistoryQuery,
};
use warp::http::StatusCode;

use super::reply::ApiError;

/// The deepest a page may start, in rows, while the server pages over the
/// store's newest rows.
pub(crate) const MAX_SCAN_ROWS: usize = 50_000;

const VERSION: &str = "h1";

/// The position after one row in the history's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    started_at: DateTime<Utc>,
    attempt: u32,
    execution_id: ExecutionId,
    /// How many rows of the job (with the query's status) came up to and
    /// including this one, when the cursor was made.
    seen: usize,
}

impl Cursor {
    fn after(r: &ExecutionRecord, seen: usize) -> Self {
        Cursor { started_at: r.started_at, attempt: r.attempt, execution_id: r.execution_id, seen }
    }

    /// Whether `r` comes after this position (is older in the order).
    fn precedes(&self, r: &ExecutionRecord) -> bool {
        (r.started_at, r.attempt, r.execution_id)
            < (self.started_at, self.attempt, self.execution_id)
    }

    /// The opaque text: base64url of `h1|<started_at ns>|<attempt>|<id>|<seen>`.
    pub(crate) fn encode(&self) -> String {
        let nanos =
            self.started_at.timestamp_nanos_opt().map(|n| n.to_string()).unwrap_or_else(|| {
                format!(
                    "s{}.{}",
                    self.started_at.timestamp(),
                    self.started_at.timestamp_subsec_nanos()
                )
            });
        let text = format!(
            "{VERSION}|{nanos}|{}|{:032x}|{}",
            self.attempt,
            self.execution_id.as_u128(),
            self.seen
        );
        base64url_encode(text.as_bytes())
    }

    /// Parses [`encode`](Self::encode)'s text; a 400 naming the cursor
    /// otherwise.
    pub(crate) fn decode(s: &str) -> Result<Cursor, ApiError> {
        let bad = || {
            ApiError::bad_request(format!(
                "invalid cursor \"{}\": pass the next_cursor of a previous page unchanged",
                truncate(s, 80)
            ))
        };
        let bytes = base64url_decode(s).ok_or_else(bad)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
        let parts: Vec<&str> = text.split('|').collect();
        let [VERSION, at, attempt, id, seen] = parts.as_slice() else { return Err(bad()) };
        let started_at = match at.strip_prefix('s') {
            Some(rest) => {
                let (secs, nanos) = rest.split_once('.').ok_or_else(bad)?;
                DateTime::from_timestamp(
                    secs.parse().map_err(|_| bad())?,
                    nanos.parse().map_err(|_| bad())?,
                )
                .ok_or_else(bad)?
            }
            None => DateTime::from_timestamp_nanos(at.parse().map_err(|_| bad())?),
        };
        if id.len() != 32 {
            return Err(bad());
        }
        Ok(Cursor {
            started_at,
            attempt: attempt.parse().map_err(|_| bad())?,
            execution_id: ExecutionId::from_u128(u128::from_str_radix(id, 16).map_err(|_| bad())?),
            seen: seen.parse().map_err(|_| bad())?,
        })
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

/// One page of a job's history, newest first, and the cursor of the next
/// page when there is one.
pub(crate) async fn page(
    store: &dyn ExecutionStore,
    job_id: &str,
    limit: usize,
    status: Option<ExecutionStatus>,
    cursor: Option<Cursor>,
) -> Result<(Vec<ExecutionRecord>, Option<Cursor>), ApiError> {
    // One row past the page tells whether another page follows; rows
    // written since the cursor was made come before it: room for as many.
    let mut fetch = match cursor {
        None => limit + 1,
        Some(c) => c.seen.saturating_add(2 * limit + 1),
    }
    .min(MAX_SCAN_ROWS + limit + 1);
    loop {
        let mut q = HistoryQuery::new(job_id, fetch);
        q.status = status;
        let rows = store.history(&q).await.map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("execution store: {e}"))
        })?;
        let exhausted = rows.len() < fetch;
        let start = match cursor {
            None => 0,
            Some(c) => rows.iter().position(|r| c.precedes(r)).unwrap_or(rows.len()),
        };
        let after = rows.len() - start;
        if after > limit || exhausted {
            let more = after > limit;
            let mut rows = rows;
            rows.truncate(start + limit);
            let next = match (more, rows.last()) {
                (true, Some(last)) => Some(Cursor::after(last, rows.len())),
                _ => None,
            };
            rows.drain(..start);
            return Ok((rows, next));
        }
        if fetch > MAX_SCAN_ROWS {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "cursor is more than {MAX_SCAN_ROWS} rows deep; the server pages only so far \
                     into a job's history (narrow it with status=)"
                ),
            ));
        }
        fetch = fetch.saturating_mul(2).min(MAX_SCAN_ROWS + limit + 1);
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 4 == 1 || s.len() > 1024 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.as_bytes().chunks(4) {
        let mut n: u32 = 0;
        for (i, c) in chunk.iter().enumerate() {
            let v = ALPHABET.iter().position(|a| a == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips() {
        for s in ["", "a", "ab", "abc", "abcd", "h1|1772330400000000000|2|00ff|17"] {
            let e = base64url_encode(s.as_bytes());
            assert!(!e.contains('='));
            assert_eq!(base64url_decode(&e).unwrap(), s.as_bytes(), "{s} -> {e}");
        }
        assert!(base64url_decode("a").is_none());
        assert!(base64url_decode("a+b/").is_none());
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_name_themselves() {
        let c = Cursor {
            started_at: DateTime::from_timestamp(1_772_330_400, 123_456_789).unwrap(),
            attempt: 3,
            execution_id: ExecutionId::from_u128(0xabc),
            seen: 40,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        let far = Cursor { started_at: DateTime::<Utc>::MAX_UTC, ..c };
        assert_eq!(Cursor::decode(&far.encode()).unwrap(), far);
        for bad in ["", "x", "aGVsbG8", &base64url_encode(b"h2|1|1|00|1")] {
            let e = Cursor::decode(bad).unwrap_err();
            assert!(e.message.starts_with("invalid cursor"), "{bad}: {e:?}");
        }
    }
}
