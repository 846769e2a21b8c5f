//! The rows of a [`MemoryStore`](super::MemoryStore), kept compact: a row
//! leaves its job id to its job's entry and its instance id to a table of
//! the store's few instances, boxes its rare fields, and becomes an
//! [`ExecutionRecord`] only when a query reads it. Only running rows are
//! indexed by key: a job's tops tell a new row from one it may hold (both
//! in the sibling module `keys`).

use std::hash::BuildHasher;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use super::keys::{RunningIndex, Tops, key_hash};
use crate::failure::ErrorKind;
use crate::store::{
    AttemptEnd, AttemptStart, ExecutionId, ExecutionRecord, ExecutionStatus, FireKind,
    HistoryPosition, Metrics, SkippedFire, duration_ms,
};

type FxMap<K, V> = std::collections::HashMap<K, V, FxBuildHasher>;

/// The fields that most rows lack (a successful attempt has none of them),
/// boxed so that such a row pays one pointer for them.
#[derive(Debug, Clone, Default, PartialEq)]
struct Rare {
    error: Option<String>,
    result: Option<serde_json::Value>,
    metrics: Option<Metrics>,
}

impl Rare {
    /// The box of an end's fields, `None` when it has none of them.
    fn of_end(e: &AttemptEnd) -> Option<Box<Rare>> {
        if e.error.is_none() && e.result.is_none() && e.metrics.is_none() {
            return None;
        }
        let (error, result, metrics) = (e.error.clone(), e.result.clone(), e.metrics.clone());
        Some(Box::new(Rare { error, result, metrics }))
    }
}

/// No place: the end of a job's list of rows.
const NIL: u32 = u32::MAX;

/// The address of an `Arc`'s string, which identifies it while it lives.
fn address(id: &Arc<str>) -> usize {
    Arc::as_ptr(id).cast::<u8>() as usize
}

/// The hash of an address in [`Rows::job_ptrs`].
fn address_hash(at: usize) -> u64 {
    FxBuildHasher.hash_one(at)
}

/// One row: an [`ExecutionRecord`] without its job id and instance id
/// (their tables hold them).
#[derive(Debug)]
pub(super) struct Row {
    /// The insertion number: [`Rows::all`] lists rows in this order.
    seq: u64,
    /// The run's id, in two halves: a `u128` field would align the row to
    /// 16 bytes and pad it.
    id: [u64; 2],
    /// The duration in milliseconds, when `completed_at` is set.
    duration_ms: u64,
    /// The fencing token, when `fenced`.
    fence: u64,
    scheduled_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    rare: Option<Box<Rare>>,
    /// Its job's place in [`Rows::jobs`].
    job: u32,
    /// Its instance's place in [`Rows::instances`].
    instance: u32,
    /// The place of its job's next newer row, or [`NIL`].
    next: u32,
    attempt: u32,
    status: ExecutionStatus,
    kind: FireKind,
    error_kind: Option<ErrorKind>,
    fenced: bool,
}

impl Row {
    fn execution_id(&self) -> ExecutionId {
        ExecutionId((u128::from(self.id[0]) << 64) | u128::from(self.id[1]))
    }

    fn set_execution_id(&mut self, id: ExecutionId) {
        self.id = split(id);
    }

    fn is(&self, id: [u64; 2], attempt: u32) -> bool {
        self.id == id && self.attempt == attempt
    }

    fn hash(&self) -> u32 {
        key_hash(self.id, self.attempt)
    }

    /// The row's status.
    pub(super) fn status(&self) -> ExecutionStatus {
        self.status
    }

    /// The nominal fire time.
    pub(super) fn scheduled_at(&self) -> DateTime<Utc> {
        self.scheduled_at
    }

    /// What made the fire.
    pub(super) fn kind(&self) -> FireKind {
        self.kind
    }

    /// When the attempt started.
    pub(super) fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// The attempt number.
    pub(super) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the row belongs to this run.
    pub(super) fn of_run(&self, id: ExecutionId) -> bool {
        self.id == split(id)
    }

    /// Its place in the history order.
    pub(super) fn position(&self) -> HistoryPosition {
        HistoryPosition {
            started_at: self.started_at,
            attempt: self.attempt,
            execution_id: self.execution_id(),
        }
    }

    /// Completes the row with an end event, as [`ExecutionRecord::apply_end`].
    fn apply_end(&mut self, e: &AttemptEnd) {
        self.status = e.status;
        self.completed_at = Some(e.completed_at);
        self.duration_ms = duration_ms(e.duration);
        self.rare = Rare::of_end(e);
        self.error_kind = e.error_kind;
    }

    /// Ends a running row as `abandoned` at `now`, with `error`.
    fn abandon(&mut self, now: DateTime<Utc>, error: String) {
        self.status = ExecutionStatus::Abandoned;
        self.completed_at = Some(now);
        self.duration_ms = duration_ms((now - self.started_at).to_std().unwrap_or_default());
        self.rare.get_or_insert_with(Box::default).error = Some(error);
    }
}

fn split(id: ExecutionId) -> [u64; 2] {
    [(id.0 >> 64) as u64, id.0 as u64]
}

/// One job's rows: a list through the rows' `next`, oldest first (no
/// allocation of its own, and the oldest row is dropped in O(1)), and the
/// tops of their keys.
#[derive(Debug)]
struct Job {
    id: Arc<str>,
    head: u32,
    tail: u32,
    len: u32,
    tops: Tops,
}

/// Every row, with what finds them: by job (oldest first), and the running
/// ones by (execution id, attempt).
#[derive(Debug, Default)]
pub(super) struct Rows {
    /// The rows, each in a place that is reused (`free`) once it is dropped.
    slots: Vec<Option<Row>>,
    free: Vec<u32>,
    /// The next insertion number.
    next: u64,
    /// The jobs that have rows, and their places in `jobs` by id and by
    /// the address of the job's `Arc` (the events' own: no string hashed
    /// per event). `job_ptrs` holds each job's place, found by the address
    /// of its `Job::id`, which the job holds, so no other string can have
    /// it. Its entries are the places alone (the address is read from the
    /// job, which the write reads next anyway): at 50,000 jobs the table
    /// is a fifth of a map's size and stays in the core's cache.
    jobs: Vec<Job>,
    job_ids: FxMap<Arc<str>, u32>,
    job_ptrs: HashTable<u32>,
    /// The job of the last row written ([`NIL`] before any). A scheduler
    /// fires its jobs in the same order every round, and a job takes its
    /// place at its first row, so the next row's job is most often the
    /// place after this one: checked first, it spares the lookup in
    /// `job_ptrs` (at 50,000 jobs, two cache misses a row).
    last_job: u32,
    /// The places of the rows in `running`, found by their (execution id,
    /// attempt): an end finds its start here, and the abandonment sweep
    /// does not scan history. Other rows have no index: a job's tops tell
    /// a new key from one it may hold, and only such a key (a duplicate,
    /// or a run's row written out of its order) walks the job's list.
    running: RunningIndex,
    /// The instances that wrote the rows (a few: found by a scan), and the
    /// last one found with the address of its `Arc`, which `instances`
    /// holds, so no other string can have it.
    instances: Vec<Arc<str>>,
    last_instance: Option<(usize, u32)>,
    /// Rows kept per job; `None` keeps every row.
    per_job: Option<usize>,
}

impl Rows {
    /// No rows, keeping `per_job` rows per job (`None`: every row).
    pub(super) fn new(per_job: Option<usize>) -> Self {
        Rows { per_job, last_job: NIL, ..Rows::default() }
    }

    /// The bound per job.
    pub(super) fn per_job(&self) -> Option<usize> {
        self.per_job
    }

    /// How many rows are kept.
    pub(super) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Inserts the `running` row of a start, unless its attempt has a row.
    pub(super) fn start(&mut self, s: &AttemptStart) {
        self.insert(
            (&s.job_id, &s.instance_id),
            s.execution_id,
            s.attempt,
            |_, _| {},
            |seq, job, instance| Row {
                seq,
                id: split(s.execution_id),
                duration_ms: 0,
                fence: s.fence.unwrap_or(0),
                scheduled_at: s.scheduled_at,
                started_at: s.started_at,
                completed_at: None,
                rare: None,
                job,
                instance,
                next: NIL,
                attempt: s.attempt,
                status: ExecutionStatus::Running,
                kind: s.kind,
                error_kind: None,
                fenced: s.fence.is_some(),
            },
        );
    }

    /// Inserts the `skipped` row of a skipped fire, unless it has one.
    pub(super) fn skip(&mut self, s: &SkippedFire) {
        self.insert(
            (&s.job_id, &s.instance_id),
            s.execution_id,
            0,
            |_, _| {},
            |seq, job, instance| Row {
                seq,
                id: split(s.execution_id),
                duration_ms: 0,
                fence: s.fence.unwrap_or(0),
                scheduled_at: s.scheduled_at,
                started_at: s.decided_at,
                completed_at: Some(s.decided_at),
                rare: Some(Box::new(Rare { error: Some(s.reason.clone()), ..Rare::default() })),
                job,
                instance,
                next: NIL,
                attempt: 0,
                status: ExecutionStatus::Skipped,
                kind: s.kind,
                error_kind: None,
                fenced: s.fence.is_some(),
            },
        );
    }

    /// Completes the row of an end's attempt, or inserts the complete row
    /// when its start was not stored.
    pub(super) fn end(&mut self, e: &AttemptEnd) {
        let ended = |rows: &mut Rows, place: u32| {
            let Some(row) = rows.slots[place as usize].as_mut() else { return };
            let was_running = row.status == ExecutionStatus::Running;
            row.apply_end(e);
            let (job, hash) = (row.job, row.hash());
            match (was_running, row.status == ExecutionStatus::Running) {
                (true, false) => rows.running.remove(place, hash),
                (false, true) => rows.running.insert(place, hash),
                _ => {}
            }
            // A running row may have held its job over the bound.
            rows.trim(job);
        };
        self.insert(
            (&e.job_id, &e.instance_id),
            e.execution_id,
            e.attempt,
            ended,
            |seq, job, instance| Row {
                seq,
                id: split(e.execution_id),
                duration_ms: duration_ms(e.duration),
                fence: e.fence.unwrap_or(0),
                scheduled_at: e.scheduled_at,
                started_at: e.started_at,
                completed_at: Some(e.completed_at),
                rare: Rare::of_end(e),
                job,
                instance,
                next: NIL,
                attempt: e.attempt,
                status: e.status,
                kind: e.kind,
                error_kind: e.error_kind,
                fenced: e.fence.is_some(),
            },
        );
    }

    /// Inserts the row `make` builds (from its insertion number, job and
    /// instance) when (`id`, `attempt`) has none; calls `found` with the
    /// place of the row it has otherwise.
    fn insert(
        &mut self,
        (job_id, instance_id): (&Arc<str>, &Arc<str>),
        id: ExecutionId,
        attempt: u32,
        found: impl FnOnce(&mut Rows, u32),
        make: impl FnOnce(u64, u32, u32) -> Row,
    ) {
        let key = split(id);
        let job = self.job(job_id);
        if self.jobs[job as usize].tops.may_hold(key, attempt)
            && let Some(place) = self.find(job, key, attempt)
        {
            return found(self, place);
        }
        let place = match self.free.last() {
            Some(&place) => place,
            None => u32::try_from(self.slots.len())
                .ok()
                .filter(|p| *p != NIL)
                .expect("a memory store holds fewer than 2^32 - 1 rows"),
        };
        self.jobs[job as usize].tops.note(key, attempt);
        let instance = self.instance(instance_id);
        let row = make(self.next, job, instance);
        self.next += 1;
        if row.status == ExecutionStatus::Running {
            self.running.insert(place, key_hash(key, attempt));
        }
        if place as usize == self.slots.len() {
            self.slots.push(Some(row));
        } else {
            self.free.pop();
            self.slots[place as usize] = Some(row);
        }
        self.link(job, place);
        self.trim(job);
    }

    /// The place of the row of (`key`, `attempt`) in `job`, or of a running
    /// row with that key: for a key under the job's tops. A running row is
    /// found by the index; another (a duplicate event, most often of the
    /// job's newest row, or a run's row written out of order) by the list.
    #[inline(never)]
    fn find(&self, job: u32, key: [u64; 2], attempt: u32) -> Option<u32> {
        let hash = key_hash(key, attempt);
        let is = |place: u32| self.get(place).is_some_and(|r| r.is(key, attempt));
        if let Some(place) = self.running.find(hash, is) {
            return Some(place);
        }
        let j = &self.jobs[job as usize];
        if is(j.tail) {
            return Some(j.tail);
        }
        let mut place = j.head;
        while let Some(row) = self.get(place) {
            if row.is(key, attempt) {
                return Some(place);
            }
            place = row.next;
        }
        None
    }

    /// Appends the row at `place` to its job's list.
    fn link(&mut self, job: u32, place: u32) {
        let j = &mut self.jobs[job as usize];
        match j.tail {
            NIL => j.head = place,
            tail => self.slots[tail as usize].as_mut().expect("a listed row").next = place,
        }
        j.tail = place;
        j.len += 1;
    }

    /// The place in `jobs` of the job `id`, added if it has none.
    fn job(&mut self, id: &Arc<str>) -> u32 {
        let at = address(id);
        let jobs = &self.jobs;
        let is = |job: u32| jobs.get(job as usize).is_some_and(|j| address(&j.id) == at);
        let next = self.last_job.wrapping_add(1);
        let job = if is(next) {
            next
        } else if is(self.last_job) {
            self.last_job
        } else {
            match self.job_ptrs.find(address_hash(at), |j| address(&jobs[*j as usize].id) == at) {
                Some(&job) => job,
                None => self.job_by_name(id),
            }
        };
        self.last_job = job;
        job
    }

    /// [`job`](Self::job) for an `Arc` not seen before: a new job, or
    /// another `Arc` of a known one (the job was registered again, or the
    /// events were decoded), which becomes the one known by address.
    #[cold]
    fn job_by_name(&mut self, id: &Arc<str>) -> u32 {
        let job = match self.job_ids.get(&**id) {
            Some(&job) => {
                let old = std::mem::replace(&mut self.jobs[job as usize].id, id.clone());
                if let Ok(entry) =
                    self.job_ptrs.find_entry(address_hash(address(&old)), |j| *j == job)
                {
                    entry.remove();
                }
                job
            }
            None => {
                let job = u32::try_from(self.jobs.len()).expect("fewer than 2^32 jobs");
                self.jobs.push(Job {
                    id: id.clone(),
                    head: NIL,
                    tail: NIL,
                    len: 0,
                    tops: Tops::None,
                });
                self.job_ids.insert(id.clone(), job);
                job
            }
        };
        let jobs = &self.jobs;
        self.job_ptrs.insert_unique(address_hash(address(id)), job, |j| {
            address_hash(address(&jobs[*j as usize].id))
        });
        job
    }

    /// The place in `instances` of the instance `id`, added if it has none.
    /// One instance writes nearly every row, so the last one found is
    /// checked first, by address.
    #[inline]
    fn instance(&mut self, id: &Arc<str>) -> u32 {
        match self.last_instance {
            Some((at, instance)) if at == address(id) => instance,
            _ => self.instance_by_name(id),
        }
    }

    /// [`instance`](Self::instance) for another `Arc` than the last one:
    /// the table keeps this one, so that its address stays its own.
    #[cold]
    fn instance_by_name(&mut self, id: &Arc<str>) -> u32 {
        let instance = match self.instances.iter().position(|i| **i == **id) {
            Some(at) => {
                self.instances[at] = id.clone();
                at
            }
            None => {
                self.instances.push(id.clone());
                self.instances.len() - 1
            }
        };
        let instance = u32::try_from(instance).expect("fewer than 2^32 instances");
        self.last_instance = Some((address(id), instance));
        instance
    }

    /// The instance id of a row.
    fn instance_id(&self, row: &Row) -> &str {
        &self.instances[row.instance as usize]
    }

    /// Drops a job's oldest finished rows while it has more than the bound,
    /// freeing their places. Running rows stay: a job running more runs at
    /// once than the bound keeps them all until they end.
    #[inline]
    fn trim(&mut self, job: u32) {
        let Some(max) = self.per_job else { return };
        if self.jobs[job as usize].len as usize > max {
            self.trim_to(job, max);
        }
    }

    /// [`trim`](Self::trim) of a job over the bound (out of line: a job
    /// under its bound does not pay for the call).
    #[inline(never)]
    fn trim_to(&mut self, job: u32, max: usize) {
        while self.jobs[job as usize].len as usize > max {
            // The oldest finished row, the row before it, and what the
            // list needs of it (read in place: the row is dropped there).
            let (mut before, mut place) = (NIL, self.jobs[job as usize].head);
            let next = loop {
                let Some(row) = self.get(place) else { return };
                if row.status.is_final() {
                    break row.next;
                }
                (before, place) = (place, row.next);
            };
            self.slots[place as usize] = None;
            let j = &mut self.jobs[job as usize];
            match before {
                NIL => j.head = next,
                before => self.slots[before as usize].as_mut().expect("a listed row").next = next,
            }
            if j.tail == place {
                j.tail = before;
            }
            // A finished row has no index entry.
            j.len -= 1;
            self.free.push(place);
        }
    }

    /// The row at `place`, if any.
    fn get(&self, place: u32) -> Option<&Row> {
        self.slots.get(place as usize).and_then(Option::as_ref)
    }

    /// The rows of one job, oldest first.
    pub(super) fn of_job<'a>(&'a self, job_id: &str) -> impl Iterator<Item = &'a Row> + 'a {
        let head = self.job_ids.get(job_id).map_or(NIL, |j| self.jobs[*j as usize].head);
        std::iter::successors(self.get(head), |r| self.get(r.next))
    }

    /// The record of a row, as the store's queries answer it.
    pub(super) fn record(&self, row: &Row) -> ExecutionRecord {
        let rare = row.rare.as_deref();
        ExecutionRecord {
            job_id: String::from(&*self.jobs[row.job as usize].id),
            execution_id: row.execution_id(),
            attempt: row.attempt,
            status: row.status,
            scheduled_at: row.scheduled_at,
            started_at: row.started_at,
            completed_at: row.completed_at,
            duration_ms: row.completed_at.map(|_| row.duration_ms),
            error: rare.and_then(|r| r.error.clone()),
            error_kind: row.error_kind,
            result: rare.and_then(|r| r.result.clone()),
            metrics: rare.and_then(|r| r.metrics.clone()),
            instance_id: String::from(self.instance_id(row)),
            kind: row.kind,
            fence: row.fenced.then_some(row.fence),
        }
    }

    /// Every row's record, in insertion order.
    pub(super) fn all(&self) -> Vec<ExecutionRecord> {
        let mut rows: Vec<&Row> = self.slots.iter().flatten().collect();
        rows.sort_unstable_by_key(|r| r.seq);
        rows.into_iter().map(|r| self.record(r)).collect()
    }

    /// The instance ids of the running rows.
    pub(super) fn running_instances(&self) -> impl Iterator<Item = &str> + '_ {
        self.running.places().filter_map(|p| self.get(p)).map(|r| self.instance_id(r))
    }

    /// Marks `abandoned` each running row whose instance `alive` says is
    /// gone, with `error(instance)`; their records, in place order.
    pub(super) fn abandon(
        &mut self,
        now: DateTime<Utc>,
        alive: impl Fn(&str) -> bool,
        error: impl Fn(&str) -> String,
    ) -> Vec<ExecutionRecord> {
        let mut changed = Vec::new();
        let mut running: Vec<u32> = self.running.places().collect();
        running.sort_unstable();
        for place in running {
            let Rows { slots, instances, running, .. } = &mut *self;
            let Some(row) = slots.get_mut(place as usize).and_then(Option::as_mut) else {
                continue;
            };
            let instance = &*instances[row.instance as usize];
            if alive(instance) {
                continue;
            }
            row.abandon(now, error(instance));
            running.remove(place, row.hash());
            let row = self.get(place).expect("the row just abandoned");
            changed.push(self.record(row));
        }
        changed
    }

    /// Moves the rows of run `old` to run `new`, marking a running one
    /// `abandoned` with `error`: the last attempt the run recorded (0 for
    /// none), and whether it had rows.
    pub(super) fn retake(
        &mut self,
        old: ExecutionId,
        new: ExecutionId,
        now: DateTime<Utc>,
        error: impl Fn() -> String,
    ) -> (u32, bool) {
        let old_key = split(old);
        let places: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|p| self.get(*p).is_some_and(|r| r.id == old_key))
            .collect();
        let mut last = 0;
        for &place in &places {
            let Rows { slots, jobs, running, .. } = self;
            let Some(row) = slots[place as usize].as_mut() else { continue };
            last = last.max(row.attempt);
            if row.status == ExecutionStatus::Running {
                running.remove(place, row.hash());
                row.abandon(now, error());
            }
            row.set_execution_id(new);
            jobs[row.job as usize].tops.note(row.id, row.attempt);
        }
        (last, !places.is_empty())
    }

    /// Drops the finished rows `pruned` selects, and rebuilds the indexes:
    /// how many were dropped.
    pub(super) fn prune(&mut self, pruned: impl Fn(&Row) -> bool) -> u64 {
        let mut removed = 0;
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(&pruned) {
                *slot = None;
                removed += 1;
            }
        }
        self.reindex();
        removed
    }

    /// Rebuilds the indexes from `slots`, in insertion order; a job left
    /// without rows loses its entry.
    fn reindex(&mut self) {
        let mut live: Vec<(u64, u32)> = Vec::new();
        self.free.clear();
        for (place, slot) in self.slots.iter().enumerate() {
            match slot {
                Some(row) => live.push((row.seq, place as u32)),
                None => self.free.push(place as u32),
            }
        }
        live.sort_unstable();
        let old_jobs = std::mem::take(&mut self.jobs);
        self.last_job = NIL;
        self.job_ids.clear();
        self.job_ptrs.clear();
        self.running.clear();
        for (_, place) in live {
            let old_job = self.slots[place as usize].as_ref().expect("live").job;
            let job = self.job(&old_jobs[old_job as usize].id);
            let row = self.slots[place as usize].as_mut().expect("live");
            (row.job, row.next) = (job, NIL);
            self.link(job, place);
            let Rows { slots, jobs, running, .. } = self;
            let row = slots[place as usize].as_ref().expect("live");
            jobs[job as usize].tops.note(row.id, row.attempt);
            if row.status == ExecutionStatus::Running {
                running.insert(place, row.hash());
            }
        }
    }
}
