//! How a [`MemoryStore`](super::MemoryStore) finds a row by its key, the
//! run's (execution id, attempt): the tops that tell a new key from the
//! job's entry alone, and the index of the running rows.

use hashbrown::HashTable;

/// The hash of a row's key. The scheduler numbers its runs one after
/// another, and writes their rows in about that order: sixteen consecutive
/// run numbers (with the same high half and attempt) hash to sixteen
/// consecutive buckets, so a burst's rows probe and fill the index a
/// cache line at a time (a group's 16 control bytes, two lines of
/// entries) instead of one line each. The rest is a multiply-xor of the
/// words (the `Fx` step), of which the product's high half, its best
/// mixed bits, is kept.
pub(super) fn key_hash(id: [u64; 2], attempt: u32) -> u32 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let block = ((id[0] ^ u64::from(attempt)).wrapping_mul(K) ^ (id[1] >> 4)).wrapping_mul(K);
    ((block >> 32) as u32 & !15) | (id[1] as u32 & 15)
}

/// The running rows' index's hash of a 32-bit key hash: the table takes its bucket
/// from the low bits (the key hash itself) and its tag from the top ones,
/// mixed so that the sixteen keys of a block seldom share a tag.
fn table_hash(hash: u32) -> u64 {
    (u64::from(hash.wrapping_mul(0x9e37_79b9)) << 32) | u64::from(hash)
}

/// An entry of the running rows' index: a row's place and its key's hash, kept here
/// so that growing the index reads no row (at 50,000 jobs each read is a
/// cache miss), and a probe reads a row only when the whole hash matches.
#[derive(Debug, Clone, Copy)]
struct Indexed {
    place: u32,
    hash: u32,
}

impl Indexed {
    fn hash(&self) -> u64 {
        table_hash(self.hash)
    }
}

/// The places of the running rows, found by their key's hash: an end
/// finds its start here, and the abandonment sweep lists them.
#[derive(Debug, Default)]
pub(super) struct RunningIndex(HashTable<Indexed>);

impl RunningIndex {
    /// Indexes the running row at `place`, whose key hashes to `hash`.
    pub(super) fn insert(&mut self, place: u32, hash: u32) {
        self.0.insert_unique(table_hash(hash), Indexed { place, hash }, Indexed::hash);
    }

    /// Drops the entry of the row at `place`, whose key hashes to `hash`.
    pub(super) fn remove(&mut self, place: u32, hash: u32) {
        if let Ok(entry) = self.0.find_entry(table_hash(hash), |e| e.place == place) {
            entry.remove();
        }
    }

    /// The place of an indexed row whose key hashes to `hash` and that `is`
    /// accepts (the row's key compared in the row).
    pub(super) fn find(&self, hash: u32, is: impl Fn(u32) -> bool) -> Option<u32> {
        self.0.find(table_hash(hash), |e| e.hash == hash && is(e.place)).map(|e| e.place)
    }

    /// The places of the running rows, in no order.
    pub(super) fn places(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().map(|e| e.place)
    }

    /// Forgets every row.
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }
}

/// The greatest key (a run id's low half, then the attempt) that a job
/// holds under one high half of the run ids (one instance's), among its
/// skipped fires' rows (attempt 0) or among its runs' (attempt 1 and up).
/// The two are apart so that a fire skipped while a run waits to retry
/// does not put the retry's key under the top: the skip takes a newer id.
#[derive(Debug, Clone, Copy)]
pub(super) struct Top {
    high: u64,
    low: u64,
    attempt: u32,
    skipped: bool,
}

impl Top {
    fn of(key: [u64; 2], attempt: u32) -> Self {
        Top { high: key[0], low: key[1], attempt, skipped: attempt == 0 }
    }

    /// Whether the key is of this top's high half and kind of row.
    fn is_for(&self, key: [u64; 2], attempt: u32) -> bool {
        self.high == key[0] && self.skipped == (attempt == 0)
    }

    /// Whether a key of this top's half and kind is at or under the top.
    fn covers(&self, key: [u64; 2], attempt: u32) -> bool {
        (key[1], attempt) <= (self.low, self.attempt)
    }

    fn raise(&mut self, key: [u64; 2], attempt: u32) {
        if !self.covers(key, attempt) {
            (self.low, self.attempt) = (key[1], attempt);
        }
    }
}

/// A job's tops, one per high half of the run ids of its rows and kind of
/// row: a key above its top, or without one, has no row in the job.
/// The scheduler numbers its runs upwards, so a write learns that nearly
/// every event is new from the job's entry alone, without an index of
/// every row (at 50,000 jobs, an index's line a row that no core has read
/// for a round: 40% of a row's write on real memory).
#[derive(Debug, Clone, Default)]
pub(super) enum Tops {
    #[default]
    None,
    One(Top),
    /// Several instances wrote the job's rows (a store they share).
    Many(Vec<Top>),
}

impl Tops {
    /// Whether the job may hold a row of (`key`, `attempt`).
    pub(super) fn may_hold(&self, key: [u64; 2], attempt: u32) -> bool {
        let covers = |t: &Top| t.is_for(key, attempt) && t.covers(key, attempt);
        match self {
            Tops::None => false,
            Tops::One(t) => covers(t),
            Tops::Many(ts) => ts.iter().any(covers),
        }
    }

    /// Notes that the job holds a row of (`key`, `attempt`).
    pub(super) fn note(&mut self, key: [u64; 2], attempt: u32) {
        match self {
            Tops::None => *self = Tops::One(Top::of(key, attempt)),
            Tops::One(t) if t.is_for(key, attempt) => t.raise(key, attempt),
            Tops::One(t) => *self = Tops::Many(vec![*t, Top::of(key, attempt)]),
            Tops::Many(ts) => match ts.iter_mut().find(|t| t.is_for(key, attempt)) {
                Some(t) => t.raise(key, attempt),
                None => ts.push(Top::of(key, attempt)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Tops, key_hash};

    #[test]
    fn a_retry_after_a_skipped_fire_is_known_new() {
        // Run 5 fails; while it waits to retry, the job's next fire is
        // skipped under id 6. The retry (5, 2) is new, and known to be so
        // without a walk of the job's rows; (5, 1) and the skip may be held.
        let mut tops = Tops::default();
        let key = |run: u64| [0x5eed, run];
        tops.note(key(5), 1);
        tops.note(key(6), 0);
        assert!(!tops.may_hold(key(5), 2));
        assert!(tops.may_hold(key(5), 1));
        assert!(tops.may_hold(key(6), 0));
        assert!(tops.may_hold(key(4), 0), "a skip under the skips' top");
        assert!(!tops.may_hold(key(7), 0));
        assert!(!tops.may_hold([0x5eee, 1], 1), "another instance's run");
    }

    #[test]
    fn sixteen_consecutive_runs_hash_to_consecutive_buckets() {
        let instance = 0x5eed_u64 << 40;
        for first in [0u64, 16, 1 << 20, u64::MAX - 15] {
            let h: Vec<u32> = (0..16).map(|i| key_hash([instance, first + i], 1)).collect();
            assert!(h.windows(2).all(|w| w[1] == w[0] + 1), "{h:?}");
        }
        // Another block, another attempt or another instance: another place.
        assert_ne!(key_hash([instance, 0], 1) >> 4, key_hash([instance, 16], 1) >> 4);
        assert_ne!(key_hash([instance, 0], 1), key_hash([instance, 0], 2));
        assert_ne!(key_hash([instance, 0], 1), key_hash([instance + 1, 0], 1));
    }
}
