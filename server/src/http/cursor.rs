//! History paging: the opaque `cursor` of `GET /jobs/{id}/executions` (and
//! of `mscribe history --cursor`) and the page it selects.
//!
//! Rows come newest first, in the stores' history order: `started_at`, then
//! attempt, then execution id, all descending ([`HistoryPosition`]). A
//! cursor holds the position of the last row of a page, and the next page
//! is the store's [`HistoryQuery::before`] that position: rows sharing a
//! `started_at` are neither skipped nor repeated, rows written meanwhile
//! (newer, so before the cursor) do not shift the pages, and a page deep in
//! a long history costs the store one indexed read like the first.
//!
//! The cursor also carries how many rows came before it and up to it (its
//! fifth field, which earlier servers used as a hint); the position alone
//! decides the page.

use chrono::DateTime;
use mscribe_scheduler::{
    ExecutionId, ExecutionRecord, ExecutionStatus, ExecutionStore, HistoryPosition, HistoryQuery,
};
use warp::http::StatusCode;

use super::reply::ApiError;

const VERSION: &str = "h1";

/// The position after one row in the history's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The last row's position: the next page is the rows older than it.
    position: HistoryPosition,
    /// How many rows of the job (with the query's status) came up to and
    /// including this one, when the cursor was made.
    seen: usize,
}

impl Cursor {
    fn after(r: &ExecutionRecord, seen: usize) -> Self {
        Cursor { position: HistoryPosition::of(r), seen }
    }

    /// The opaque text: base64url of `h1|<started_at ns>|<attempt>|<id>|<seen>`.
    pub(crate) fn encode(&self) -> String {
        let HistoryPosition { started_at, attempt, execution_id } = self.position;
        let nanos = started_at.timestamp_nanos_opt().map(|n| n.to_string()).unwrap_or_else(|| {
            format!("s{}.{}", started_at.timestamp(), started_at.timestamp_subsec_nanos())
        });
        let text =
            format!("{VERSION}|{nanos}|{attempt}|{:032x}|{}", execution_id.as_u128(), self.seen);
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
        // 32 hex digits: `from_str_radix` alone would take a sign too.
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Cursor {
            position: HistoryPosition {
                started_at,
                attempt: attempt.parse().map_err(|_| bad())?,
                execution_id: ExecutionId::from_u128(
                    u128::from_str_radix(id, 16).map_err(|_| bad())?,
                ),
            },
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
/// page when there is one: one read of the store, `limit + 1` rows after
/// the cursor (the row past the page tells whether another follows).
pub(crate) async fn page(
    store: &dyn ExecutionStore,
    job_id: &str,
    limit: usize,
    status: Option<ExecutionStatus>,
    cursor: Option<Cursor>,
) -> Result<(Vec<ExecutionRecord>, Option<Cursor>), ApiError> {
    let mut q = HistoryQuery::new(job_id, limit.saturating_add(1));
    q.status = status;
    q.before = cursor.map(|c| c.position);
    let mut rows = store.history(&q).await.map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("execution store: {e}"))
    })?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let seen = cursor.map_or(0, |c| c.seen).saturating_add(rows.len());
    let next = match (more, rows.last()) {
        (true, Some(last)) => Some(Cursor::after(last, seen)),
        _ => None,
    };
    Ok((rows, next))
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
    use chrono::Utc;
    use mscribe_scheduler::{AttemptStart, ExecutionEvent, FireKind, MemoryStore};
    use std::sync::Mutex;

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
            position: HistoryPosition {
                started_at: DateTime::from_timestamp(1_772_330_400, 123_456_789).unwrap(),
                attempt: 3,
                execution_id: ExecutionId::from_u128(0xabc),
            },
            seen: 40,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        let far = Cursor {
            position: HistoryPosition { started_at: DateTime::<Utc>::MAX_UTC, ..c.position },
            ..c
        };
        assert_eq!(Cursor::decode(&far.encode()).unwrap(), far);
        for bad in ["", "x", "aGVsbG8", &base64url_encode(b"h2|1|1|00|1")] {
            let e = Cursor::decode(bad).unwrap_err();
            assert!(e.message.starts_with("invalid cursor"), "{bad}: {e:?}");
        }
    }

    /// The execution id of a cursor is 32 hex digits: a sign in their
    /// place (which `from_str_radix` takes) makes the cursor invalid.
    #[test]
    fn a_cursor_id_with_a_sign_is_invalid() {
        let id = format!("+{}", "0".repeat(31));
        let e = Cursor::decode(&base64url_encode(format!("h1|1|1|{id}|1").as_bytes()));
        assert!(e.is_err_and(|e| e.message.starts_with("invalid cursor")));
    }

    fn start(id: u128, attempt: u32, secs: i64) -> ExecutionEvent {
        let at = DateTime::from_timestamp(1_772_330_400 + secs, 0).unwrap();
        ExecutionEvent::Started(AttemptStart {
            job_id: "j".into(),
            execution_id: ExecutionId::from_u128(id),
            attempt,
            scheduled_at: at,
            started_at: at,
            instance_id: "i".into(),
            kind: FireKind::Schedule,
            fence: None,
        })
    }

    /// A memory store that records the history queries it answers.
    #[derive(Debug, Default)]
    struct Recording {
        inner: MemoryStore,
        queries: Mutex<Vec<HistoryQuery>>,
    }

    #[async_trait::async_trait]
    impl ExecutionStore for Recording {
        async fn write(&self, events: &[ExecutionEvent]) -> mscribe_scheduler::StoreResult<()> {
            self.inner.write(events).await
        }
        async fn history(
            &self,
            q: &HistoryQuery,
        ) -> mscribe_scheduler::StoreResult<Vec<ExecutionRecord>> {
            self.queries.lock().unwrap().push(q.clone());
            self.inner.history(q).await
        }
        async fn last_fire(
            &self,
            job_id: &str,
        ) -> mscribe_scheduler::StoreResult<Option<DateTime<Utc>>> {
            self.inner.last_fire(job_id).await
        }
        async fn heartbeat(
            &self,
            instance_id: &str,
            now: DateTime<Utc>,
        ) -> mscribe_scheduler::StoreResult<()> {
            self.inner.heartbeat(instance_id, now).await
        }
        async fn mark_abandoned(
            &self,
            own: &str,
            now: DateTime<Utc>,
            stale: std::time::Duration,
        ) -> mscribe_scheduler::StoreResult<Vec<ExecutionRecord>> {
            self.inner.mark_abandoned(own, now, stale).await
        }
        async fn prune(
            &self,
            policy: mscribe_scheduler::PrunePolicy,
        ) -> mscribe_scheduler::StoreResult<u64> {
            self.inner.prune(policy).await
        }
    }

    /// Each page is one read of the store, from the cursor's position:
    /// `limit + 1` rows, the status passed on. Pages put together are the
    /// history, across rows that share a start time.
    #[tokio::test]
    async fn each_page_is_one_store_read_from_the_cursor() {
        let store = Recording::default();
        let mut events = Vec::new();
        for id in 1..=12u128 {
            events.push(start(id, 1, (id as i64) / 4));
            events.push(start(id, 2, (id as i64) / 4));
        }
        store.write(&events).await.unwrap();
        let all = store.inner.history(&HistoryQuery::new("j", 100)).await.unwrap();
        assert_eq!(all.len(), 24);
        for limit in 1..=25 {
            store.queries.lock().unwrap().clear();
            let (mut got, mut cursor, mut reads) = (Vec::new(), None, 0);
            loop {
                let (rows, next) = page(&store, "j", limit, None, cursor).await.unwrap();
                reads += 1;
                got.extend(rows);
                match next {
                    Some(c) => {
                        assert_eq!(c.seen, got.len());
                        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
                        cursor = Some(c);
                    }
                    None => break,
                }
            }
            assert_eq!(got, all, "limit {limit}");
            assert_eq!(reads, 24usize.div_ceil(limit), "limit {limit}");
            let queries = store.queries.lock().unwrap().clone();
            assert_eq!(queries.len(), reads, "one store read a page");
            assert!(queries.iter().all(|q| q.limit == limit + 1 && q.status.is_none()));
            assert_eq!(queries[0].before, None);
            for (q, i) in queries[1..].iter().zip(1..) {
                assert_eq!(q.before, Some(HistoryPosition::of(&all[i * limit - 1])));
            }
        }
        store.queries.lock().unwrap().clear();
        let (rows, _) = page(&store, "j", 3, Some(ExecutionStatus::Running), None).await.unwrap();
        assert_eq!(rows, all[..3]);
        assert_eq!(store.queries.lock().unwrap()[0].status, Some(ExecutionStatus::Running));
    }

    /// A cursor deep in a long history (it used to be refused past 50,000
    /// rows) selects its page like any other, whatever count it carries.
    #[tokio::test]
    async fn a_cursor_deep_in_a_long_history_gets_its_page() {
        let store = MemoryStore::unbounded();
        let events: Vec<_> = (0..60_000u128).map(|id| start(id, 1, (id / 3) as i64)).collect();
        store.write(&events).await.unwrap();
        let all = store.history(&HistoryQuery::new("j", 100_000)).await.unwrap();
        for (deep, seen) in [(55_000, 55_000), (59_990, 0), (59_999, 7)] {
            let cursor = Cursor { position: HistoryPosition::of(&all[deep - 1]), seen };
            let cursor = Cursor::decode(&cursor.encode()).unwrap();
            let (rows, next) = page(&store, "j", 5, None, Some(cursor)).await.unwrap();
            assert_eq!(rows, all[deep..(deep + 5).min(60_000)], "after row {deep}");
            assert_eq!(next.is_some(), deep + 5 < 60_000);
        }
    }
}
