//! Per-target workers: the outbox's pending deliveries, sent in order, retried on schedule.
//!
//! One worker task per target, so a slow, failing or rate-limited target only ever
//! delays itself. A worker takes its queue in seq order: from the committer's in-memory
//! handoff while it keeps up, from the outbox on disk (never past the durable watermark)
//! after a restart or when it fell behind. It keeps at most `concurrency` deliveries in
//! progress, each attempt a task of its own so one busy target can use every core, and
//! sleeps on a [`Notify`] when it has caught up. The backlog stays on disk, so memory
//! does not grow with an outage.
//!
//! A delivery holds its slot from first attempt until it is delivered or dead: with
//! `concurrency = 1` that is what keeps deliveries landing in arrival order. Its retry
//! state (attempts, next attempt, last error) is written to the outbox after each failure,
//! so a restart resumes the schedule instead of starting over.
//!
//! On shutdown a worker starts nothing new; deliveries waiting for their next attempt
//! stop at once (their state is on disk), attempts in flight are given until the
//! application's drain deadline to finish.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::event::Fields;
use crate::outbox::{Handoff, Outbox, Record, now_ms};
use crate::retry::{self, Verdict};
use crate::shutdown::Shutdown;
use crate::target::{Judgement, Target, unix_now};
use crate::telemetry::{Metrics, error_chain};

/// How many pending deliveries a worker reads ahead from disk.
const READ_AHEAD: usize = 256;

/// Everything a worker and its deliveries share.
pub struct Worker {
    /// The target's index in the config, for metrics.
    pub index: usize,
    pub target: Arc<Target>,
    pub store: Outbox,
    /// Woken by the committer when new deliveries for this target are durable.
    pub wake: Arc<Notify>,
    /// The highest seq known to be on disk.
    pub durable: Arc<AtomicU64>,
    /// Deliveries just made durable, handed over in memory.
    pub handoff: Arc<Handoff>,
    pub metrics: Arc<Metrics>,
}

impl Worker {
    pub async fn run(self, mut shutdown: Shutdown) {
        let this = Arc::new(self);
        let concurrency = this.target.config.concurrency.max(1);
        let mut queue = Queue::new();
        // Each attempt is a task of its own, so the deliveries of one busy target can use
        // every core; the worker only decides what starts when.
        let mut in_flight = tokio::task::JoinSet::new();
        // Which delivery each task carries, to deal with a task that panicked.
        let mut carrying = std::collections::HashMap::new();
        let mut stopping = shutdown.is_triggered();
        loop {
            while !stopping && in_flight.len() < concurrency {
                let Some((seq, record)) = queue.next(&this) else {
                    break;
                };
                let task = in_flight.spawn(deliver(this.clone(), seq, record, shutdown.clone()));
                carrying.insert(task.id(), seq);
            }
            if stopping && in_flight.is_empty() {
                break;
            }
            let idle = queue.buffer.is_empty() && in_flight.len() < concurrency;
            tokio::select! {
                _ = shutdown.wait(), if !stopping => stopping = true,
                Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                    match done {
                        Ok((task, ())) => {
                            carrying.remove(&task);
                        }
                        Err(e) => {
                            if let Some(seq) = carrying.remove(&e.id())
                                && e.is_panic()
                            {
                                this.after_panic(seq, &mut shutdown.clone()).await;
                            }
                        }
                    }
                }
                _ = this.wake.notified(), if !stopping && idle => {}
                _ = tokio::time::sleep(Duration::from_secs(1)), if !stopping && queue.stalled => {}
            }
        }
    }

    fn dead_letter(
        &self,
        seq: u64,
        record: &mut Record,
        id: &str,
        reason: String,
        advice: Option<&str>,
    ) -> bool {
        record.reason = reason;
        let tweet_id = tweet_id(&record.body);
        match self.store.dead_letter(self.target.name(), seq, record) {
            Ok(()) => {
                let m = self.metrics.target(self.index);
                m.dead.inc();
                m.pending.add(-1);
                m.dead_letters.add(1);
                tracing::error!(
                    target = self.target.name(),
                    delivery_id = id,
                    tweet_id,
                    attempt = record.attempts,
                    error = %record.reason,
                    advice = advice.unwrap_or(""),
                    "Delivery dead-lettered; `badger-relay outbox retry` sends it again"
                );
                true
            }
            Err(e) => {
                tracing::error!(target = self.target.name(), delivery_id = id, error = %error_chain(&e), "Cannot dead-letter a delivery; trying again in 1 s");
                false
            }
        }
    }

    /// A delivery's task panicked (a bug). Its slot is free and the queue has moved on, so
    /// leaving it pending would let later deliveries overtake it and leave it untried
    /// until a restart (where it would likely panic again): dead-letter it, loudly.
    async fn after_panic(&self, seq: u64, shutdown: &mut Shutdown) {
        let id = self.store.delivery_id(seq);
        match self.store.get_pending(self.target.name(), seq) {
            Ok(Some(mut record)) => {
                let why = "badger-relay failed while delivering this (a bug: please report it with the log)".to_string();
                self.bury(seq, &mut record, &id, why, None, shutdown).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(target = self.target.name(), delivery_id = %id, error = %error_chain(&e), "A delivery task panicked and its record cannot be read; it stays pending until restart")
            }
        }
    }

    /// Dead-letter, retrying the write until it is stored (or shutdown): the delivery
    /// keeps its slot meanwhile, so later deliveries cannot overtake it.
    async fn bury(
        &self,
        seq: u64,
        record: &mut Record,
        id: &str,
        reason: String,
        advice: Option<&str>,
        shutdown: &mut Shutdown,
    ) {
        while !self.dead_letter(seq, record, id, reason.clone(), advice) {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.wait() => return,
            }
        }
    }
}

/// What a worker will start next, in seq order.
struct Queue {
    /// Read ahead, from the handoff or from disk.
    buffer: VecDeque<(u64, Record)>,
    /// The highest seq taken into `buffer`.
    cursor: Option<u64>,
    /// Reading from disk until caught up with the durable watermark: set at start (a
    /// backlog may be waiting) and whenever the handoff overflowed.
    from_disk: bool,
    /// The last disk read failed: try again on a timer, not only on the next wake-up.
    stalled: bool,
}

impl Queue {
    /// A new worker reads the disk first: a backlog may be waiting from the last run.
    fn new() -> Queue {
        Queue {
            buffer: VecDeque::new(),
            cursor: None,
            from_disk: true,
            stalled: false,
        }
    }

    fn next(&mut self, w: &Worker) -> Option<(u64, Record)> {
        // A page of only unreadable records yields nothing but says more may follow.
        for _ in 0..64 {
            if !self.buffer.is_empty() {
                break;
            }
            self.refill(w);
            if !self.from_disk {
                break;
            }
        }
        self.buffer.pop_front()
    }

    fn refill(&mut self, w: &Worker) {
        self.stalled = false;
        if !self.from_disk && !w.handoff.take(&mut self.buffer, self.cursor) {
            self.from_disk = true;
        }
        if self.from_disk {
            let upto = w.durable.load(Ordering::Acquire);
            match w
                .store
                .scan_pending(w.target.name(), self.cursor, upto, READ_AHEAD)
            {
                Ok(scan) => {
                    // A short read means the disk has nothing more up to the watermark:
                    // from here on the handoff holds everything newer. Counted in keys,
                    // not records, so an unreadable record is stepped over, not taken
                    // for the end of the backlog.
                    self.from_disk = scan.scanned == READ_AHEAD;
                    if scan.last.is_some() {
                        self.cursor = scan.last;
                    }
                    self.buffer.extend(scan.items);
                    return;
                }
                Err(e) => {
                    self.stalled = true;
                    tracing::error!(target = w.target.name(), error = %error_chain(&e), "Cannot read the outbox; trying again in 1 s");
                }
            }
        }
        if let Some((seq, _)) = self.buffer.back() {
            self.cursor = Some(*seq);
        }
    }
}

/// The whole life of one delivery: wait for its time and the rate limiter, attempt,
/// record the outcome, repeat until delivered or dead (or shutdown).
async fn deliver(w: Arc<Worker>, seq: u64, mut record: Record, mut shutdown: Shutdown) {
    let id = w.store.delivery_id(seq);
    let policy = w.target.config.retry;
    loop {
        let now = now_ms();
        if record.next_attempt_ms > now {
            let wait = Duration::from_millis(record.next_attempt_ms - now);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => return,
            }
        }
        if let Some((why, advice)) = w.target.gone() {
            w.bury(
                seq,
                &mut record,
                &id,
                why.to_string(),
                Some(advice),
                &mut shutdown,
            )
            .await;
            return;
        }
        tokio::select! {
            _ = w.target.limiter.acquire() => {}
            _ = shutdown.wait() => return,
        }
        let request = match w.target.request(&id, unix_now(), &record.body) {
            Ok(r) => r,
            Err(e) => {
                w.bury(seq, &mut record, &id, e.to_string(), None, &mut shutdown)
                    .await;
                return;
            }
        };
        record.attempts += 1;
        let answer = w.target.send(request).await;
        let m = w.metrics.target(w.index);
        m.duration.observe(answer.elapsed);
        let Judgement {
            verdict,
            reason,
            advice,
        } = w.target.judge(&answer);
        let status = match answer.result {
            retry::AttemptResult::Response { status, .. } => status,
            _ => 0,
        };
        match verdict {
            Verdict::Delivered => {
                if let Err(e) = w.store.complete(w.target.name(), seq) {
                    tracing::warn!(target = w.target.name(), delivery_id = %id, error = %error_chain(&e), "Delivered, but could not remove it from the outbox; it may be sent again");
                }
                m.delivered.inc();
                m.pending.add(-1);
                tracing::debug!(target = w.target.name(), delivery_id = %id, attempt = record.attempts, status, "Delivered");
                return;
            }
            Verdict::Dead => {
                w.bury(seq, &mut record, &id, reason, advice, &mut shutdown)
                    .await;
                return;
            }
            Verdict::Retry { floor } => {
                let now = now_ms();
                let age = Duration::from_millis(now.saturating_sub(record.enqueued_ms));
                if retry::exhausted(&policy, age, record.attempts) {
                    let why = format!(
                        "gave up after {} attempts over {}: {reason}",
                        record.attempts,
                        humantime::format_duration(Duration::from_secs(age.as_secs()))
                    );
                    w.bury(seq, &mut record, &id, why, advice, &mut shutdown)
                        .await;
                    return;
                }
                let delay = retry::backoff(&policy, record.attempts).max(floor.unwrap_or_default());
                let deadline = record
                    .enqueued_ms
                    .saturating_add(u64::try_from(policy.max_age.as_millis()).unwrap_or(u64::MAX));
                let mut next =
                    now.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                if next > deadline {
                    if floor.is_some_and(|f| now.saturating_add(f.as_millis() as u64) > deadline) {
                        let why = format!(
                            "the target asked to wait past max_age ({}): {reason}",
                            humantime::format_duration(policy.max_age)
                        );
                        w.bury(seq, &mut record, &id, why, advice, &mut shutdown)
                            .await;
                        return;
                    }
                    // One last attempt when the age limit is reached, not never.
                    next = deadline;
                }
                record.next_attempt_ms = next;
                record.reason = reason;
                if let Err(e) = w.store.reschedule(w.target.name(), seq, &record) {
                    tracing::warn!(target = w.target.name(), delivery_id = %id, error = %error_chain(&e), "Could not store the retry schedule");
                }
                m.retried.inc();
                tracing::warn!(
                    target = w.target.name(),
                    delivery_id = %id,
                    tweet_id = tweet_id(&record.body),
                    attempt = record.attempts,
                    status,
                    error = %record.reason,
                    retry_in_ms = delay.as_millis() as u64,
                    "Delivery failed; will retry"
                );
            }
        }
    }
}

/// The tweet id of a stored event, for log lines (only on the failure path).
fn tweet_id(body: &[u8]) -> String {
    serde_json::from_slice::<Fields>(body)
        .ok()
        .and_then(|f| f.tweet_id)
        .unwrap_or_default()
}
