//! The embedded outbox: every accepted delivery in a sled database, until its target
//! answers 2xx.
//!
//! # Layout
//! One sled tree, so that everything one event writes goes in one atomic batch:
//!
//! ```text
//! m/instance                    8 random bytes, made when the store is created
//! p/<target>\0<seq u64 BE>      pending delivery  (Record)
//! d/<target>\0<seq u64 BE>      dead letter       (Record, with its cause)
//! b/<seq u64 BE>                the body of an event with several deliveries (SharedBody)
//! k/<target>\0<dedupe key>      dedupe mark       (expiry, ms since epoch, u64 BE)
//! ```
//!
//! `seq` comes from sled's persistent id generator, so it grows in arrival order across
//! restarts; a target's pending deliveries read in key order are its queue. Target names
//! are validated to `[A-Za-z0-9_.-]`, so the `\0` separator cannot occur in them.
//!
//! # Invariants
//! - An event's deliveries and its dedupe marks are written in one batch (a whole group's
//!   in one): a crash can never leave a mark without the deliveries it guards (which
//!   would turn a replayed event into a "duplicate" that is never delivered).
//! - A delivery is attempted only after the flush that made it durable: [`SledOutbox`]
//!   keeps the highest durable `seq` (the watermark) and queues never read past it.
//! - A pending record leaves only by `complete` (after a 2xx) or by moving, in one batch,
//!   to a dead letter.
//! - An event with several deliveries has its body written once, under `b/<seq>`, in the
//!   same batch as its records (format 3, no body of their own). The body is removed
//!   after the last of those pending records (completed, dead-lettered or purged; each
//!   target's look at the others is serialised), so a pending record never lacks its
//!   body. A crash (or a failed remove) between the two removes leaves a body nothing
//!   reads; those older than every target's oldest pending delivery are swept when `run`
//!   opens the store and after a reopen. A dead letter keeps a copy of its own.
//! - The delivery id sent as `webhook-id` is derived from the instance and the seq, so it
//!   is stable across retries and restarts and unique across stores.
//! - The pending and dead gauges equal what is stored at every quiet moment
//!   ([`backlog`]: the start-up count and the runtime's own changes never overlap).
//!
//! Only one process may hold the store: a lock file is taken before sled opens, so a
//! second `run` or an `outbox` command gets [`OutboxError::Locked`] instead of a fight.
//!
//! # Files
//! `store.rs` opens the database and holds its reads and writes, `keys.rs` the key
//! layout, `record.rs` a record's bytes, `group.rs` the batch of a group, `committer.rs`
//! a group's way to disk and to the workers, `handoff.rs` the in-memory shortcut from
//! committer to worker, `queue.rs` a worker's ordered reading, `backlog.rs` the gauges,
//! `admin.rs` the `outbox` commands.

mod admin;
mod backlog;
mod committer;
mod group;
mod handoff;
mod health;
mod keys;
mod queue;
pub(crate) mod record;
mod store;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::Notify;

use self::backlog::Backlog;
use self::handoff::Handoff;
use self::health::Health;
pub(crate) use self::health::Limits;
use self::queue::SledQueue;
use self::record::Record;
pub(crate) use self::store::Store;
use super::{Delivery, Enqueued, MarkClock, Outbox, OutboxError, Routed};
use crate::config::Config;
use crate::failure::{DeadLetter, Failure};
use crate::shutdown::Shutdown;
use crate::telemetry::{Metrics, error_chain};

/// How often expired dedupe marks are swept.
const DEDUPE_SWEEP: Duration = Duration::from_secs(600);

/// The running sled outbox. Cheap to clone: every clone is the same store.
#[derive(Clone)]
pub(crate) struct SledOutbox {
    /// Everything the clones share.
    shared: Arc<Shared>,
}

/// The state behind a [`SledOutbox`].
struct Shared {
    /// The database.
    store: Store,
    /// Per target slot (see [`crate::reload`]); a reload that adds targets adds slots.
    slots: std::sync::RwLock<Arc<[Arc<Slot>]>>,
    /// The highest seq known to be on disk: queues never read past it.
    durable: AtomicU64,
    /// How long a dedupe mark holds.
    dedupe_window: Duration,
    /// What marks are written and swept by: immune to wall-clock steps while running.
    mark_clock: MarkClock,
    /// Where the gauges and counters go.
    metrics: Arc<Metrics>,
    /// Keeps the pending and dead gauges exact while the start-up count runs.
    backlog: Backlog,
    /// Whether the store takes events now, and what brings it back.
    health: Health,
}

/// What the outbox keeps per target.
struct Slot {
    /// The target's name: its keys' middle part.
    name: String,
    /// Woken when new deliveries for it are durable.
    wake: Notify,
    /// Where those deliveries are handed over in memory.
    handoff: Handoff,
}

impl SledOutbox {
    /// Open the store in `[outbox] path` for `run`: report deliveries of targets no longer
    /// configured, start counting the backlog for the gauges (in the background: a large
    /// backlog must not delay the first delivery) and the dedupe sweep.
    pub(crate) fn start(
        config: &Config,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Result<SledOutbox, OutboxError> {
        let store = Store::open(&config.outbox.path)?;
        store.sweep_bodies()?;
        let names: Vec<String> = config.targets.iter().map(|t| t.name.clone()).collect();
        for orphan in store
            .targets_with_deliveries()?
            .into_iter()
            .filter(|n| !names.contains(n))
        {
            tracing::warn!(target = %orphan, "The outbox holds deliveries for a target that is no longer configured; they stay until `outbox purge --target`");
        }
        let watermark = store.watermark()?;
        let shared = Arc::new(Shared {
            backlog: Backlog::new(names.len(), watermark),
            slots: std::sync::RwLock::new(names.into_iter().map(Slot::new).collect()),
            durable: AtomicU64::new(watermark),
            dedupe_window: config.outbox.dedupe_window,
            mark_clock: MarkClock::start(),
            metrics,
            store,
            health: Health::new(Limits {
                min_free: config.outbox.min_free,
                max_size: config.outbox.max_size,
            }),
        });
        let outbox = SledOutbox { shared };
        let counting = outbox.clone();
        tokio::task::spawn_blocking(move || counting.count_backlog());
        tokio::spawn(outbox.clone().sweep_dedupe(shutdown.clone()));
        tokio::spawn(outbox.clone().recovery(shutdown));
        outbox.shared.metrics.outbox_writable.set(1);
        Ok(outbox)
    }

    /// The database, for tests and start-up messages.
    pub(crate) fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Count what a previous run left, chunk by chunk, into the gauges (again for the
    /// slots counted already: [`Backlog`] counts each key once).
    fn count_backlog(&self) {
        let s = &self.shared;
        for (index, slot) in s.slots().iter().enumerate() {
            if let Err(e) = s.backlog.count_all(&s.store, index, &slot.name, &s.metrics) {
                tracing::warn!(target = %slot.name, error = %error_chain(&e), "Could not count the outbox backlog; the pending and dead gauges may be low");
            }
        }
    }

    async fn sweep_dedupe(self, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(DEDUPE_SWEEP) => {}
                _ = shutdown.wait() => return,
            }
            let store = self.shared.store.clone();
            let now = self.shared.mark_clock.now_ms();
            match tokio::task::spawn_blocking(move || store.sweep_dedupe(now)).await {
                Ok(Ok(n)) if n > 0 => tracing::debug!(removed = n, "Swept expired dedupe marks"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %error_chain(&e), "Could not sweep dedupe marks")
                }
                _ => {}
            }
        }
    }
}

impl Outbox for SledOutbox {
    type Handle = u64;
    type Queue = SledQueue;

    async fn enqueue(&self, group: &[Routed]) -> Result<Vec<Enqueued>, OutboxError> {
        self.commit(group).await
    }

    fn queue(self: Arc<Self>, target: usize) -> SledQueue {
        SledQueue::new((*self).clone(), target)
    }

    async fn complete(&self, target: usize, d: &Delivery<u64>) -> Result<(), OutboxError> {
        let s = &self.shared;
        let slot = s.slot(target);
        let name = &slot.name;
        s.backlog
            .removed(target, d.handle, &s.metrics, || {
                s.store.complete(name, d.handle)
            })
            .map_err(|e| self.failed("removing a delivered delivery", e))
    }

    async fn retry_at(
        &self,
        target: usize,
        d: &Delivery<u64>,
        failure: &Failure,
    ) -> Result<(), OutboxError> {
        let s = &self.shared;
        let record = record(d, failure.clone(), None);
        s.store
            .reschedule(&s.slot(target).name, d.handle, &record)
            .map_err(|e| self.failed("storing a retry schedule", e))
    }

    async fn dead_letter(
        &self,
        target: usize,
        d: &Delivery<u64>,
        dead: &DeadLetter,
    ) -> Result<(), OutboxError> {
        let s = &self.shared;
        let record = record(d, dead.failure.clone(), Some(dead.cause));
        let slot = s.slot(target);
        let name = &slot.name;
        s.backlog
            .buried(target, d.handle, &s.metrics, || {
                s.store.dead_letter(name, d.handle, &record)
            })
            .map_err(|e| self.failed("storing a dead letter", e))
    }

    async fn flush(&self) -> Result<(), OutboxError> {
        self.shared.store.flush().await
    }

    fn accepting(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shared.health.accepting.subscribe()
    }

    fn targets_changed(&self, names: &[String]) {
        let s = &self.shared;
        let grew = {
            let mut slots = s.slots.write().unwrap_or_else(|e| e.into_inner());
            let have = slots.len();
            if names.len() <= have {
                return;
            }
            let grown: Arc<[Arc<Slot>]> = slots
                .iter()
                .cloned()
                .chain(names[have..].iter().cloned().map(Slot::new))
                .collect();
            *slots = grown;
            have
        };
        s.backlog.grow(names.len());
        tracing::debug!(
            slots = names.len(),
            new = names.len() - grew,
            "Outbox slots added for new targets"
        );
        // A new target's name may hold deliveries from an earlier run: count them.
        let counting = self.clone();
        tokio::task::spawn_blocking(move || counting.count_backlog());
    }
}

impl Shared {
    /// Every slot, as of now.
    fn slots(&self) -> Arc<[Arc<Slot>]> {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The slot of `target`.
    fn slot(&self, target: usize) -> Arc<Slot> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())[target].clone()
    }
}

impl Slot {
    fn new(name: String) -> Arc<Slot> {
        Arc::new(Slot {
            name,
            wake: Notify::new(),
            handoff: Handoff::default(),
        })
    }
}

/// The record of a delivery after a failed attempt: its schedule, the failure, and for
/// a dead letter why it was given up on.
fn record(d: &Delivery<u64>, failure: Failure, cause: Option<crate::failure::Cause>) -> Record {
    Record {
        attempts: d.attempts,
        enqueued_ms: d.enqueued_ms,
        next_attempt_ms: d.next_attempt_ms,
        failure: Some(failure),
        cause,
        body: d.body.clone(),
        // The store keeps a shared body shared when it reschedules (it reads how the
        // record was stored) and gives a dead letter its own copy.
        shared: false,
    }
}

/// A delivery as a worker holds it, from its record.
fn delivery(store: &Store, seq: u64, record: Record) -> Delivery<u64> {
    Delivery {
        handle: seq,
        id: store.delivery_id(seq),
        body: record.body,
        attempts: record.attempts,
        enqueued_ms: record.enqueued_ms,
        next_attempt_ms: record.next_attempt_ms,
    }
}
