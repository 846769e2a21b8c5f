//! The planned fires, in due order: one bucket per millisecond in which any
//! is due.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rustc_hash::FxBuildHasher;

use chrono::{DateTime, Utc};

use super::registry::Slot;

/// A planned fire: the job in `slot` is due `sub_ns` nanoseconds into its
/// bucket's millisecond, for the nominal time in its `next_nominal`. `seq`
/// is the job's `generation` when planned: the entry is stale once they
/// differ (the job was paused, re-planned, or unregistered and registered
/// again).
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) seq: u64,
    pub(super) slot: Slot,
    sub_ns: u32,
}

/// The entries due within one millisecond, in due order once `sorted`
/// (ties in the order they were planned).
#[derive(Debug)]
struct Bucket {
    /// The start of the millisecond (the instant at `sub_ns` 0).
    ms: DateTime<Utc>,
    entries: VecDeque<Entry>,
    sorted: bool,
}

impl Bucket {
    #[inline]
    fn push(&mut self, entry: Entry) {
        if self.entries.back().is_some_and(|b| b.sub_ns > entry.sub_ns) {
            self.sorted = false;
        }
        self.entries.push_back(entry);
    }
}

/// The planned fires, one bucket per millisecond in which any is due.
///
/// A burst of fires due at one instant is one bucket drained front to back,
/// so popping it costs neither comparisons nor a walk through a heap of
/// every job. Fires spread over a second (jobs registered one after another
/// on the same interval) share at most a thousand buckets, so each costs a
/// queue push and pop, not a B-tree insertion and removal of its own. Within
/// a bucket, entries arrive in due order almost always (a fire plans the
/// next one interval later); one that does not marks the bucket for a
/// stable sort when it comes to the front. Buckets are keyed by an integer
/// ([`ms_key`]). A push finds its bucket by that key in a hash index (the
/// last bucket without even that): only a new bucket pays the B-tree of
/// the buckets' order. Emptied buckets stay in the slab, their queues kept,
/// for reuse.
#[derive(Debug, Default)]
pub(super) struct Timeline {
    /// Each bucket's place in `slab`, in due order.
    order: BTreeMap<i64, u32>,
    /// The same places by key, for pushes.
    index: HashMap<i64, u32, FxBuildHasher>,
    slab: Vec<Bucket>,
    /// Places in `slab` of emptied buckets.
    free: Vec<u32>,
    /// The key and place of the first bucket, while there is one.
    head: Option<(i64, u32)>,
    /// The key and place of the last bucket, while there is one.
    last: Option<(i64, u32)>,
}

impl Timeline {
    // Inlined into planning, as it was before the scheduler's files were
    // split (a separate function cost a fire about 40 instructions).
    #[inline]
    pub(super) fn push(&mut self, due: DateTime<Utc>, seq: u64, slot: Slot) {
        let ns = due.timestamp_subsec_nanos();
        let sub_ns = ns % 1_000_000;
        let key = ms_key(due);
        let entry = Entry { seq, slot, sub_ns };
        // A fire plans its next one an interval on, mostly past every
        // planned fire: the last bucket is found without a lookup.
        let place = match self.last {
            Some((last, place)) if last == key => place,
            _ => match self.index.get(&key) {
                Some(&place) => place,
                None => return self.open(key, with_subsec(due, ns - sub_ns), entry),
            },
        };
        self.slab[place as usize].push(entry);
    }

    /// Opens the bucket of millisecond `key` (which starts at `ms`) with
    /// its first entry.
    fn open(&mut self, key: i64, ms: DateTime<Utc>, entry: Entry) {
        let place = match self.free.pop() {
            Some(place) => {
                let bucket = &mut self.slab[place as usize];
                bucket.ms = ms;
                bucket.sorted = true;
                bucket.entries.push_back(entry);
                place
            }
            None => {
                let place = u32::try_from(self.slab.len()).expect("fewer than 2^32 buckets");
                self.slab.push(Bucket { ms, entries: VecDeque::from([entry]), sorted: true });
                place
            }
        };
        self.order.insert(key, place);
        self.index.insert(key, place);
        if self.last.is_none_or(|(last, _)| last < key) {
            self.last = Some((key, place));
        }
        if self.head.is_none_or(|(head, _)| key < head) {
            self.head = Some((key, place));
        }
    }

    /// The first bucket's key and place, its entries sorted.
    #[inline]
    fn first(&mut self) -> Option<(i64, u32)> {
        let (key, place) = self.head?;
        let bucket = &mut self.slab[place as usize];
        if !bucket.sorted {
            bucket.entries.make_contiguous().sort_by_key(|e| e.sub_ns);
            bucket.sorted = true;
        }
        Some((key, place))
    }

    /// The earliest due instant.
    pub(super) fn next_due(&mut self) -> Option<DateTime<Utc>> {
        let (_, place) = self.first()?;
        let bucket = &self.slab[place as usize];
        Some(at(bucket.ms, bucket.entries.front().expect("buckets are never empty").sub_ns))
    }

    /// The earliest entry, if it is due at or before `now`, with its instant.
    pub(super) fn pop_due(&mut self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, Entry)> {
        let (key, place) = self.first()?;
        let bucket = &mut self.slab[place as usize];
        let due = at(bucket.ms, bucket.entries.front().expect("buckets are never empty").sub_ns);
        if due > now {
            return None;
        }
        let entry = bucket.entries.pop_front().expect("buckets are never empty");
        if bucket.entries.is_empty() {
            self.order.pop_first();
            self.index.remove(&key);
            self.free.push(place);
            self.head = self.order.first_key_value().map(|(&k, &p)| (k, p));
            if self.head.is_none() {
                self.last = None;
            }
        }
        Some((due, entry))
    }

    pub(super) fn clear(&mut self) {
        for (_, place) in std::mem::take(&mut self.order) {
            self.slab[place as usize].entries.clear();
            self.free.push(place);
        }
        self.index.clear();
        self.head = None;
        self.last = None;
    }
}

/// The millisecond of `t` as an integer in the order of the instants: its
/// second times 2,000 plus its millisecond, which reaches 1,999 within a
/// leap second (chrono's leap second is the same second with a fraction of
/// one second or more). The seconds chrono holds fit with room to spare.
fn ms_key(t: DateTime<Utc>) -> i64 {
    t.timestamp() * 2000 + i64::from(t.timestamp_subsec_millis())
}

/// The instant `sub_ns` nanoseconds into the millisecond `ms`.
fn at(ms: DateTime<Utc>, sub_ns: u32) -> DateTime<Utc> {
    if sub_ns == 0 {
        return ms;
    }
    with_subsec(ms, ms.timestamp_subsec_nanos() + sub_ns)
}

/// `t` with its fraction of a second set to `ns` (which stays within the
/// second, or the leap second, that `t` is in). On the naive UTC time: the
/// zone-aware `with_nanosecond` converts to local time and back.
fn with_subsec(t: DateTime<Utc>, ns: u32) -> DateTime<Utc> {
    use chrono::Timelike;
    t.naive_utc().with_nanosecond(ns).map_or(t, |n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[test]
    fn timeline_keys_follow_the_instants_through_a_leap_second() {
        use chrono::NaiveDate;
        let day = NaiveDate::from_ymd_opt(2016, 12, 31).unwrap();
        let t = |h, m, s, ms| day.and_hms_milli_opt(h, m, s, ms).unwrap().and_utc();
        let instants = [
            t(23, 59, 58, 999),
            t(23, 59, 59, 0),
            t(23, 59, 59, 999),
            t(23, 59, 59, 1_000), // the leap second
            t(23, 59, 59, 1_999),
            NaiveDate::from_ymd_opt(2017, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc(),
            DateTime::<Utc>::MAX_UTC,
        ];
        for w in instants.windows(2) {
            assert!(w[0] < w[1] && ms_key(w[0]) < ms_key(w[1]), "{} then {}", w[0], w[1]);
        }
        assert!(ms_key(DateTime::<Utc>::MIN_UTC) < ms_key(instants[0]));
        let mut timeline = Timeline::default();
        for (seq, due) in instants.iter().rev().enumerate() {
            timeline.push(*due, seq as u64, 0);
        }
        let popped: Vec<_> = std::iter::from_fn(|| timeline.pop_due(DateTime::<Utc>::MAX_UTC))
            .map(|(d, _)| d)
            .collect();
        assert_eq!(popped, instants);
    }

    #[test]
    fn a_cleared_timeline_pops_only_what_was_planned_after_in_due_order() {
        let base = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc();
        let ms = |n: i64| base + chrono::Duration::milliseconds(n);
        let mut timeline = Timeline::default();
        for (seq, n) in [30, 10, 20, 10, 40].into_iter().enumerate() {
            timeline.push(ms(n), seq as u64, 0);
        }
        assert_eq!(timeline.pop_due(ms(10)).map(|(d, e)| (d, e.seq)), Some((ms(10), 1)));
        timeline.clear();
        assert_eq!(timeline.next_due(), None);
        assert!(timeline.pop_due(ms(1_000)).is_none());
        // The emptied buckets are reused, out of order and within one.
        for (seq, n) in [25, 5, 25, 15].into_iter().enumerate() {
            timeline.push(ms(n) + chrono::Duration::microseconds(seq as i64), 10 + seq as u64, 0);
        }
        timeline.push(ms(25), 20, 0);
        let popped: Vec<u64> =
            std::iter::from_fn(|| timeline.pop_due(ms(1_000))).map(|(_, e)| e.seq).collect();
        assert_eq!(popped, [11, 13, 10, 20, 12], "ties in planning order");
        assert_eq!(timeline.next_due(), None);
    }

    proptest! {
        /// The timeline pops entries in due order, ties in planning order,
        /// and only those due by `now`, whatever the order of the pushes
        /// (within a millisecond, across milliseconds, into the bucket being
        /// drained), against a sorted list as the model.
        #[test]
        fn timeline_pops_in_due_order(
            ops in proptest::collection::vec((any::<bool>(), 0i64..3_000_000, 0u8..4), 1..300),
        ) {
            let base = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc();
            let ns = |n: i64| base + chrono::Duration::nanoseconds(n);
            let mut timeline = Timeline::default();
            let mut model: Vec<(DateTime<Utc>, u64)> = Vec::new();
            let mut now = 0i64;
            for (seq, (pop, offset, step)) in ops.into_iter().enumerate() {
                let seq = seq as u64;
                if pop {
                    // Time moves forward by a sub-millisecond step or more.
                    now += offset / 3 * i64::from(step) / 3;
                    let got = timeline.pop_due(ns(now)).map(|(due, e)| (due, e.seq));
                    let want = (!model.is_empty() && model[0].0 <= ns(now)).then(|| model.remove(0));
                    prop_assert_eq!(got, want);
                } else {
                    // Ties are common: round half the offsets to the millisecond.
                    let offset = if step % 2 == 0 { offset / 1_000_000 * 1_000_000 } else { offset };
                    let due = ns(now + offset);
                    timeline.push(due, seq, 0);
                    let at = model.partition_point(|(d, _)| *d <= due);
                    model.insert(at, (due, seq));
                }
                prop_assert_eq!(timeline.next_due(), model.first().map(|(d, _)| *d));
            }
            let far = ns(now + 10_000_000);
            while let Some((due, e)) = timeline.pop_due(far) {
                prop_assert_eq!((due, e.seq), model.remove(0));
            }
            prop_assert!(model.is_empty());
        }
    }
}
