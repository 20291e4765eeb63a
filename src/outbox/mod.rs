//! The outbox seam: where accepted deliveries wait until their target answered 2xx.
//!
//! The rest of the relay sees the outbox through two interfaces, at the level it thinks at:
//!
//! - [`Outbox`], the running store. The intake hands it groups of routed events
//!   ([`Outbox::enqueue`]: durable when it returns); each target's worker takes an
//!   ordered [`Queue`] of [`Delivery`]s and reports back one of three things per delivery:
//!   [`complete`](Outbox::complete) after a 2xx, [`retry_at`](Outbox::retry_at) a time
//!   with the failure, or [`dead_letter`](Outbox::dead_letter). A delivery carries an
//!   opaque handle that only its backend reads, and its `webhook-id`.
//! - [`Admin`], the store at rest, for `outbox stats | list | retry | purge`.
//!
//! Grouping is the same for every backend and lives in `inbox.rs` ([`Inbox`] and
//! [`run_intake`]): submissions queue on a bounded channel (back-pressure on the stream
//! reader), and whatever is waiting is handed to the backend as one group, so one
//! fsync (or one round of publish acks) covers many events.
//!
//! Backends: [`sled`] (embedded, the default; its layout and invariants are in its module
//! doc), [`nats`] (NATS JetStream shared by replicas, with a local spool) and, for unit tests of the delivery worker under paused time, `memory`. Each
//! keeps its own pending/dead gauges exact.

mod fsync;
mod inbox;
pub(crate) mod nats;
pub(crate) mod sled;

pub(crate) use fsync::Synced;
pub(crate) use inbox::{Inbox, run_intake};
pub(crate) use nats::client_options as nats_client_options;

#[cfg(test)]
pub(crate) mod memory;

use std::future::Future;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::event::Event;
use crate::failure::{DeadLetter, Failure};

/// One routed event on its way into the outbox.
#[derive(Debug)]
pub(crate) struct Routed {
    /// The event, its bytes as received.
    pub event: Event,
    /// The targets the routes chose (indices into the config's targets), each with the
    /// dedupe key its `dedupe` mode gives this event.
    pub deliveries: Vec<(usize, String)>,
}

/// What became of a stored event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Enqueued {
    /// Targets that got a delivery.
    pub written: Vec<usize>,
    /// Targets skipped because their dedupe key was seen within the window.
    pub duplicates: Vec<usize>,
}

/// One delivery, as a worker holds it.
#[derive(Debug, Clone)]
pub(crate) struct Delivery<H> {
    /// Where the backend finds it again; opaque to the worker.
    pub handle: H,
    /// Sent as `webhook-id`: stable across retries and restarts.
    pub id: String,
    /// The event JSON exactly as received.
    pub body: Bytes,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the event was accepted, ms since the epoch (for `max_age`).
    pub enqueued_ms: u64,
    /// No attempt before this, ms since the epoch (0: at once).
    pub next_attempt_ms: u64,
}

/// Why the outbox cannot do what was asked. Backend-neutral: the backend's own error is
/// kept as the `source`, and [`OutboxError::is_retriable`] says whether trying again later
/// can help.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the outbox {path} is in use by another badger-relay process (stop `run` first)")]
    Locked { path: PathBuf },
    #[error("cannot open the outbox {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the outbox {path} is damaged or not a badger-relay outbox ({detail}); nothing was \
         deleted: move the directory aside (keep it for inspection) to start empty, or \
         restore it from a backup"
    )]
    Corrupt { path: PathBuf, detail: String },
    /// A read or write failed; what was asked did not happen (or may not have).
    #[error("outbox storage error in {path}")]
    Storage {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A guard stopped the writes: the filesystem is nearly full (`min_free`) or the
    /// outbox reached `max_size`.
    #[error("the outbox {path} is full: {detail}")]
    Full { path: PathBuf, detail: String },
    /// A group could not be made durable; each of its events that waited gets this.
    #[error("the outbox could not store the event: {detail}")]
    Unavailable { detail: String },
    /// The intake is closed (shutdown): the event was not accepted.
    #[error("the outbox is shutting down")]
    Closed,
}

impl OutboxError {
    /// Whether the same request may succeed later (a failing disk may recover; a lock
    /// is released when the other process stops), as opposed to a store that is damaged
    /// or shut.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            OutboxError::Storage { .. }
                | OutboxError::Full { .. }
                | OutboxError::Unavailable { .. }
                | OutboxError::Locked { .. }
        )
    }
}

/// The running store, as the intake and the delivery workers use it.
pub(crate) trait Outbox: Send + Sync + 'static {
    /// Where a delivery lives in this backend.
    type Handle: Clone + Send + Sync + std::fmt::Debug + 'static;
    /// One target's ordered deliveries.
    type Queue: Queue<Handle = Self::Handle>;

    /// Store a group of routed events: when this returns `Ok`, every delivery in it is
    /// durable and on its way to its worker. One result per event, in order. An event's
    /// deliveries and its dedupe marks are stored together or not at all.
    fn enqueue(
        &self,
        group: &[Routed],
    ) -> impl Future<Output = Result<Vec<Enqueued>, OutboxError>> + Send;

    /// Target `target`'s deliveries, in arrival order. Called once per worker: a worker
    /// restarted by a reload calls it again, after the old one ended, and the new queue
    /// starts from the oldest pending delivery.
    fn queue(self: std::sync::Arc<Self>, target: usize) -> Self::Queue;

    /// The target answered 2xx: the delivery leaves the outbox.
    fn complete(
        &self,
        target: usize,
        delivery: &Delivery<Self::Handle>,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// The attempt failed and another is due at `delivery.next_attempt_ms`: store the
    /// schedule (attempts, next attempt, failure) so a restart resumes it.
    fn retry_at(
        &self,
        target: usize,
        delivery: &Delivery<Self::Handle>,
        failure: &Failure,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// Give up on the delivery: it moves to the dead letters, with why.
    fn dead_letter(
        &self,
        target: usize,
        delivery: &Delivery<Self::Handle>,
        dead: &DeadLetter,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// Make every change so far durable (after the drain, before exit).
    fn flush(&self) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// Whether the store takes events now: `false` while it cannot store them (a full
    /// or failing disk, an unreachable engine with a full spool). While it is `false` the
    /// stream reader stops reading, `/ingest` answers 503 and `/readyz` 503.
    fn accepting(&self) -> tokio::sync::watch::Receiver<bool>;

    /// Whether the backend gives a delivery back to a queue after [`Outbox::retry_at`]
    /// (a shared engine redelivers it when it is due, perhaps to another replica), so
    /// the worker lets go of it instead of waiting for the next attempt itself.
    fn redelivers(&self) -> bool {
        false
    }

    /// Whether the engine behind the store is reachable (`/readyz` answers 503 while
    /// it is not, though the store may still take events). Embedded stores: always.
    fn engine_connected(&self) -> tokio::sync::watch::Receiver<bool> {
        tokio::sync::watch::channel(true).1
    }
    /// A reload changed the targets: `names` lists every target slot by index, the
    /// ones there were first (slots are never taken back or renumbered; see
    /// [`crate::reload`]). The store makes room for the new ones.
    fn targets_changed(&self, names: &[String]);
}

/// One target's deliveries, in order.
pub(crate) trait Queue: Send + 'static {
    /// The backend's handle type.
    type Handle;

    /// The next delivery, waiting until there is one. Cancel-safe: dropping the future
    /// loses no delivery (a worker selects on it next to its other work).
    fn next(&mut self) -> impl Future<Output = Delivery<Self::Handle>> + Send;
}

/// Where a delivery sits, for the admin commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Dead,
}

/// A delivery as `outbox list` shows it.
#[derive(Debug, Clone)]
pub(crate) enum Listed {
    /// A record this version can read.
    Readable {
        /// Its `webhook-id`.
        id: String,
        /// The target's name.
        target: String,
        /// Attempts made.
        attempts: u32,
        /// Accepted at, ms since the epoch.
        enqueued_ms: u64,
        /// Next attempt at, ms since the epoch (0: none scheduled).
        next_attempt_ms: u64,
        /// The last failure, or for a dead letter why it was given up on.
        reason: Option<String>,
        /// The event, for its tweet id.
        body: Bytes,
    },
    /// A record this version cannot decode: listed so that it can be seen and purged.
    Unreadable {
        /// Its `webhook-id`.
        id: String,
        /// The target's name.
        target: String,
        /// What is wrong with it.
        error: String,
    },
}

/// Pending and dead deliveries of one target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Waiting for delivery.
    pub pending: u64,
    /// Dead letters.
    pub dead: u64,
}

/// The store at rest, for `outbox stats | list | retry | purge`.
pub(crate) trait Admin {
    /// Counts per target name (targets no longer configured included).
    fn stats(&self) -> Result<std::collections::BTreeMap<String, Counts>, OutboxError>;
    /// Every delivery in `state`, optionally of one target, in order.
    fn list(&self, state: State, target: Option<&str>) -> Result<Vec<Listed>, OutboxError>;
    /// Move dead letters back to pending with a fresh retry budget: all of them, those
    /// of one target, or those with the given ids. Returns (id, target) of each moved.
    /// An id this store did not make is a [`BadId`] error, not a silent no-op.
    fn retry(
        &self,
        target: Option<&str>,
        ids: &[String],
    ) -> Result<Result<Vec<(String, String)>, BadId>, OutboxError>;
    /// Delete deliveries in `state`. Returns the count.
    fn purge(&self, state: State, target: Option<&str>) -> Result<u64, OutboxError>;
    /// Target names that have deliveries.
    fn targets(&self) -> Result<Vec<String>, OutboxError>;
    /// Where the outbox is and how much it takes on disk, for `outbox stats`.
    fn size(&self) -> Result<(String, u64), OutboxError>;
    /// Read and decode everything stored, writing nothing: for `outbox verify`.
    fn verify(&self) -> Result<Verified, OutboxError>;
}

/// What `outbox verify` found.
#[derive(Debug, Default)]
pub(crate) struct Verified {
    /// Readable pending deliveries.
    pub pending: u64,
    /// Readable dead letters.
    pub dead: u64,
    /// Readable dedupe marks.
    pub marks: u64,
    /// What could not be read: (delivery id or key, target, why). Empty: all is well.
    pub unreadable: Vec<(String, String, String)>,
}

/// A delivery id given to `outbox retry` that this store cannot have made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadId {
    #[error("`{0}` is not a delivery id (see `outbox list --dead`)")]
    Malformed(String),
    #[error(
        "`{0}` was made by another outbox (its instance part differs from this one's); \
         run `outbox list --dead` against this config's outbox for its ids"
    )]
    ForeignStore(String),
}

/// Open the configured store at rest for an admin command. Fails with
/// [`OutboxError::Locked`] while `run` holds it.
pub(crate) fn open_admin(
    config: &crate::config::OutboxConfig,
) -> Result<Box<dyn Admin>, OutboxError> {
    match config.backend {
        crate::config::OutboxBackend::Sled => Ok(Box::new(sled::Store::open(&config.path)?)),
        crate::config::OutboxBackend::Nats => Ok(Box::new(nats::NatsAdmin::open(config)?)),
    }
}

/// The clock of dedupe marks: the wall clock read once, when the outbox opened, then
/// advanced by the monotonic clock. A wall-clock step while the relay runs (NTP fixing a
/// clock that was a day fast, a VM resumed from a snapshot) neither expires every mark at
/// once (a step forward past `dedupe_window` would let every repeat through) nor keeps
/// them a day too long. Marks must outlive a restart, so they hold wall-clock instants;
/// a step between two runs moves them by that step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MarkClock {
    /// The wall clock when the outbox opened, ms since the epoch.
    wall_ms: u64,
    /// The monotonic clock at that moment.
    since: std::time::Instant,
}

impl MarkClock {
    pub(crate) fn start() -> MarkClock {
        MarkClock {
            wall_ms: now_ms(),
            since: std::time::Instant::now(),
        }
    }

    /// Now, ms since the epoch, as the marks count it.
    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.wall_ms.saturating_add(elapsed)
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}
