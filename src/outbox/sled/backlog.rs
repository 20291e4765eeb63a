//! Exact pending and dead gauges, with a backlog counted in the background.
//!
//! At start-up the store may hold a large backlog; counting it must not delay the first
//! delivery, so it is counted while the workers already deliver and the committer adds.
//! Done naively, the two overlap: a delivery removed before the count reached it is
//! subtracted but never counted, one dead-lettered behind the count is counted twice.
//!
//! So the count and the runtime agree on who counts what. Seqs at or above the start-up
//! watermark are new: the runtime counts them. Below it, the count walks each target's
//! keys in seq order, a chunk at a time, under the target's lock, remembering how far it
//! got; a removal or a move to the dead letters takes the same lock and changes the gauges
//! only for seqs the count already passed (the count will not see the others).

use std::sync::{Arc, Mutex, RwLock};

use super::keys::key;
use super::store::Store;
use crate::outbox::{OutboxError, State};
use crate::telemetry::Metrics;

/// Keys counted per lock hold.
const CHUNK: usize = 1024;

/// The counting state of every target. See the module doc.
pub(crate) struct Backlog {
    /// Seqs below this existed before this run; the count covers them.
    watermark: u64,
    /// Keys counted per lock hold.
    chunk: usize,
    /// Per target slot; grows when a reload adds a target.
    targets: RwLock<Vec<Arc<Mutex<Counted>>>>,
}

/// How far the count of one target got.
#[derive(Debug, Default, Clone, Copy)]
struct Counted {
    /// Pending keys counted: every seq up to this one (`None`: none yet).
    pending: Option<u64>,
    /// Dead-letter keys counted: likewise.
    dead: Option<u64>,
}

impl Counted {
    fn get(&self, state: State) -> Option<u64> {
        match state {
            State::Pending => self.pending,
            State::Dead => self.dead,
        }
    }

    fn set(&mut self, state: State, seq: u64) {
        match state {
            State::Pending => self.pending = Some(seq),
            State::Dead => self.dead = Some(seq),
        }
    }
}

impl Backlog {
    pub(crate) fn new(targets: usize, watermark: u64) -> Backlog {
        Backlog::with_chunk(targets, watermark, CHUNK)
    }

    /// [`Backlog::new`] counting `chunk` keys per lock hold (tests use tiny chunks).
    pub(crate) fn with_chunk(targets: usize, watermark: u64, chunk: usize) -> Backlog {
        Backlog {
            watermark,
            chunk,
            targets: RwLock::new((0..targets).map(|_| Arc::default()).collect()),
        }
    }

    /// Room for `targets` slots (a reload added targets). A new slot's keys below the
    /// watermark (a target configured again after a run without it) are counted by
    /// [`Backlog::count_all`], as at start-up.
    pub(crate) fn grow(&self, targets: usize) {
        let mut all = self.targets.write().unwrap_or_else(|e| e.into_inner());
        while all.len() < targets {
            all.push(Arc::default());
        }
    }

    /// The counting state of `target`, for the caller to lock.
    fn state(&self, target: usize) -> Arc<Mutex<Counted>> {
        self.targets.read().unwrap_or_else(|e| e.into_inner())[target].clone()
    }

    /// Whether a key of `seq` in `state` is in the gauge already.
    fn counted(&self, c: &Counted, state: State, seq: u64) -> bool {
        seq >= self.watermark || c.get(state).is_some_and(|upto| seq <= upto)
    }

    /// A new delivery was made durable (its seq is above the watermark).
    pub(crate) fn added(&self, target: usize, metrics: &Metrics) {
        metrics.target(target).pending.add(1);
    }

    /// Remove a pending delivery with `write`, and count it out if it was counted in.
    pub(crate) fn removed(
        &self,
        target: usize,
        seq: u64,
        metrics: &Metrics,
        write: impl FnOnce() -> Result<(), OutboxError>,
    ) -> Result<(), OutboxError> {
        let state = self.state(target);
        let c = state.lock().unwrap_or_else(|e| e.into_inner());
        write()?;
        if self.counted(&c, State::Pending, seq) {
            metrics.target(target).pending.add(-1);
        }
        Ok(())
    }

    /// Move a pending delivery to the dead letters with `write`, and move it in the gauges.
    pub(crate) fn buried(
        &self,
        target: usize,
        seq: u64,
        metrics: &Metrics,
        write: impl FnOnce() -> Result<(), OutboxError>,
    ) -> Result<(), OutboxError> {
        let state = self.state(target);
        let c = state.lock().unwrap_or_else(|e| e.into_inner());
        write()?;
        let m = metrics.target(target);
        if self.counted(&c, State::Pending, seq) {
            m.pending.add(-1);
        }
        if self.counted(&c, State::Dead, seq) {
            m.dead_letters.add(1);
        }
        Ok(())
    }

    /// Count one chunk of `target`'s keys in `state` below the watermark. Returns whether
    /// the count of that state is complete.
    pub(crate) fn count_step(
        &self,
        store: &Store,
        target: usize,
        name: &str,
        state: State,
        metrics: &Metrics,
    ) -> Result<bool, OutboxError> {
        if self.watermark == 0 {
            return Ok(true);
        }
        let counted = self.state(target);
        let mut c = counted.lock().unwrap_or_else(|e| e.into_inner());
        let from = match c.get(state) {
            Some(upto) if upto.saturating_add(1) >= self.watermark => return Ok(true),
            Some(upto) => key(state, name, upto + 1),
            None => key(state, name, 0),
        };
        let end = key(state, name, self.watermark - 1);
        let (seen, last) = store.count_keys(from, end, self.chunk)?;
        let done = seen < self.chunk;
        c.set(state, if done { self.watermark - 1 } else { last });
        let m = metrics.target(target);
        match state {
            State::Pending => m.pending.add(seen as i64),
            State::Dead => m.dead_letters.add(seen as i64),
        }
        Ok(done)
    }

    /// Count all of `target`'s backlog.
    pub(crate) fn count_all(
        &self,
        store: &Store,
        target: usize,
        name: &str,
        metrics: &Metrics,
    ) -> Result<(), OutboxError> {
        for state in [State::Pending, State::Dead] {
            while !self.count_step(store, target, name, state, metrics)? {}
        }
        Ok(())
    }
}
