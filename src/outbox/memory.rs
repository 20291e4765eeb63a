//! An outbox in memory, for unit tests of the delivery worker under paused time.
//!
//! It keeps the contract of the seam (order per target, dedupe marks within a window,
//! retry state, dead letters, exact gauges) with none of the durability, and it can be
//! told to fail its writes, so the worker's handling of a failing store is testable too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Delivery, Enqueued, Outbox, OutboxError, Queue, Routed};
use crate::failure::{DeadLetter, Failure};
use crate::telemetry::Metrics;

/// The store. Share it with `Arc`.
pub(crate) struct MemoryOutbox {
    /// Everything stored, under one lock.
    inner: Mutex<Inner>,
    /// Per target: woken when a delivery is added. Grows with `targets_changed`.
    wake: std::sync::RwLock<Vec<Arc<Notify>>>,
    /// While set, every write fails with a storage error.
    failing: AtomicBool,
    /// `false` while writes fail.
    accepting: tokio::sync::watch::Sender<bool>,
    /// How long a dedupe mark holds (by tokio's clock, so paused time moves it).
    dedupe_window: Duration,
    /// Where the gauges go.
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Inner {
    /// The next seq.
    next_seq: u64,
    /// Per target: pending deliveries by seq.
    pending: Vec<BTreeMap<u64, Delivery<u64>>>,
    /// Per target: dead letters by seq, with why.
    dead: Vec<BTreeMap<u64, (Delivery<u64>, DeadLetter)>>,
    /// Per target: the last failure stored by `retry_at`.
    failures: Vec<HashMap<u64, Failure>>,
    /// (target, dedupe key) → when the mark expires.
    marks: HashMap<(usize, String), tokio::time::Instant>,
    /// Per target: seqs completed, in completion order.
    completed: Vec<Vec<u64>>,
}

impl MemoryOutbox {
    pub(crate) fn new(targets: usize, dedupe_window: Duration, metrics: Arc<Metrics>) -> Self {
        MemoryOutbox {
            inner: Mutex::new(Inner {
                pending: vec![BTreeMap::new(); targets],
                dead: vec![BTreeMap::new(); targets],
                failures: vec![HashMap::new(); targets],
                completed: vec![Vec::new(); targets],
                ..Inner::default()
            }),
            wake: std::sync::RwLock::new((0..targets).map(|_| Arc::default()).collect()),
            failing: AtomicBool::new(false),
            accepting: tokio::sync::watch::Sender::new(true),
            dedupe_window,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make every later write fail (or work again).
    pub(crate) fn fail_writes(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
        self.accepting.send_replace(!failing);
    }

    fn check_writable(&self) -> Result<(), OutboxError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(OutboxError::Storage {
                path: "(memory)".into(),
                source: "writes are failing on cue".into(),
            });
        }
        Ok(())
    }

    /// Seqs completed for `target`, in completion order.
    pub(crate) fn completed(&self, target: usize) -> Vec<u64> {
        self.lock().completed[target].clone()
    }

    /// Seqs pending for `target`.
    pub(crate) fn pending(&self, target: usize) -> Vec<u64> {
        self.lock().pending[target].keys().copied().collect()
    }

    /// A pending delivery's stored state: attempts, next attempt and last failure.
    pub(crate) fn schedule(&self, target: usize, seq: u64) -> Option<(u32, u64, Option<Failure>)> {
        let inner = self.lock();
        let d = inner.pending[target].get(&seq)?;
        Some((
            d.attempts,
            d.next_attempt_ms,
            inner.failures[target].get(&seq).cloned(),
        ))
    }

    /// Dead letters of `target`: seq and why.
    pub(crate) fn dead(&self, target: usize) -> Vec<(u64, DeadLetter)> {
        self.lock().dead[target]
            .iter()
            .map(|(seq, (_, why))| (*seq, why.clone()))
            .collect()
    }
}

impl Outbox for MemoryOutbox {
    type Handle = u64;
    type Queue = MemoryQueue;

    async fn enqueue(&self, group: &[Routed]) -> Result<Vec<Enqueued>, OutboxError> {
        self.check_writable()?;
        let now = tokio::time::Instant::now();
        let wall = super::now_ms();
        let mut inner = self.lock();
        let mut results = Vec::with_capacity(group.len());
        for routed in group {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let mut enqueued = Enqueued::default();
            for (t, key) in &routed.deliveries {
                let mark = (*t, key.clone());
                if inner.marks.get(&mark).is_some_and(|until| *until > now) {
                    enqueued.duplicates.push(*t);
                    continue;
                }
                inner.marks.insert(mark, now + self.dedupe_window);
                inner.pending[*t].insert(
                    seq,
                    Delivery {
                        handle: seq,
                        id: format!("msg_mem_{seq}"),
                        body: routed.event.raw().clone(),
                        attempts: 0,
                        enqueued_ms: wall,
                        next_attempt_ms: 0,
                    },
                );
                self.metrics.target(*t).pending.add(1);
                enqueued.written.push(*t);
                self.wake(*t).notify_one();
            }
            results.push(enqueued);
        }
        Ok(results)
    }

    fn queue(self: Arc<Self>, target: usize) -> MemoryQueue {
        MemoryQueue {
            store: self,
            target,
            cursor: None,
        }
    }

    async fn complete(&self, target: usize, d: &Delivery<u64>) -> Result<(), OutboxError> {
        self.check_writable()?;
        let mut inner = self.lock();
        if inner.pending[target].remove(&d.handle).is_some() {
            self.metrics.target(target).pending.add(-1);
        }
        inner.completed[target].push(d.handle);
        Ok(())
    }

    async fn retry_at(
        &self,
        target: usize,
        d: &Delivery<u64>,
        failure: &Failure,
    ) -> Result<(), OutboxError> {
        self.check_writable()?;
        let mut inner = self.lock();
        if let Some(stored) = inner.pending[target].get_mut(&d.handle) {
            stored.attempts = d.attempts;
            stored.next_attempt_ms = d.next_attempt_ms;
        }
        inner.failures[target].insert(d.handle, failure.clone());
        Ok(())
    }

    async fn dead_letter(
        &self,
        target: usize,
        d: &Delivery<u64>,
        dead: &DeadLetter,
    ) -> Result<(), OutboxError> {
        self.check_writable()?;
        let mut inner = self.lock();
        if inner.pending[target].remove(&d.handle).is_some() {
            self.metrics.target(target).pending.add(-1);
        }
        inner.dead[target].insert(d.handle, (d.clone(), dead.clone()));
        self.metrics.target(target).dead_letters.add(1);
        Ok(())
    }

    async fn flush(&self) -> Result<(), OutboxError> {
        Ok(())
    }

    fn accepting(&self) -> tokio::sync::watch::Receiver<bool> {
        self.accepting.subscribe()
    }

    fn targets_changed(&self, names: &[String]) {
        let mut inner = self.lock();
        let mut wake = self.wake.write().unwrap_or_else(|e| e.into_inner());
        while wake.len() < names.len() {
            wake.push(Arc::default());
            inner.pending.push(BTreeMap::new());
            inner.dead.push(BTreeMap::new());
            inner.failures.push(HashMap::new());
            inner.completed.push(Vec::new());
        }
    }
}

impl MemoryOutbox {
    /// The wake-up of `target`.
    fn wake(&self, target: usize) -> Arc<Notify> {
        self.wake.read().unwrap_or_else(|e| e.into_inner())[target].clone()
    }
}

/// One target's pending deliveries, in seq order.
pub(crate) struct MemoryQueue {
    /// The store.
    store: Arc<MemoryOutbox>,
    /// The target's index.
    target: usize,
    /// The last seq handed out.
    cursor: Option<u64>,
}

impl Queue for MemoryQueue {
    type Handle = u64;

    async fn next(&mut self) -> Delivery<u64> {
        loop {
            let from = self.cursor.map_or(0, |c| c + 1);
            let found = self.store.lock().pending[self.target]
                .range(from..)
                .next()
                .map(|(_, d)| d.clone());
            if let Some(d) = found {
                self.cursor = Some(d.handle);
                return d;
            }
            self.store.wake(self.target).notified().await;
        }
    }
}
