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
//! Grouping is the same for every backend and lives here ([`Inbox`] and
//! [`run_intake`]): submissions queue on a bounded channel (back-pressure on the stream
//! reader), and whatever is waiting is handed to the backend as one group, so one
//! fsync (or one round of publish acks) covers many events.
//!
//! Backends: [`sled`] (embedded, the default; its layout and invariants are in its module
//! doc) and, for unit tests of the delivery worker under paused time, `memory`. Each
//! keeps its own pending/dead gauges exact.

pub(crate) mod sled;

#[cfg(test)]
pub(crate) mod memory;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::event::Event;
use crate::failure::{DeadLetter, Failure};
use crate::telemetry::error_chain;

/// How many events one group (one fsync) may cover at most.
const GROUP_MAX: usize = 1024;

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

    /// Target `target`'s deliveries, in arrival order. Called once per target.
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
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// One event waiting in the inbox, with whoever waits for it.
struct Submission {
    /// The event and its deliveries.
    routed: Routed,
    /// Answered once stored (or not); `None` when the sender does not wait.
    ack: Option<oneshot::Sender<Result<Enqueued, OutboxError>>>,
}

/// The sending side of the outbox's intake. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Inbox {
    /// To [`run_intake`].
    tx: mpsc::Sender<Submission>,
}

/// Closes the intake at shutdown: what was already sent is still stored, later
/// submissions get [`OutboxError::Closed`], and the intake ends even if an [`Inbox`] is
/// still held somewhere (an HTTP connection that will not finish, say).
pub(crate) struct CloseInbox(oneshot::Sender<()>);

impl CloseInbox {
    pub(crate) fn close(self) {
        let _ = self.0.send(());
    }
}

impl Inbox {
    /// An inbox holding up to `capacity` events before senders wait, the receiving end for
    /// [`run_intake`], and its closer.
    pub(crate) fn new(capacity: usize) -> (Inbox, IntakeEnd, CloseInbox) {
        let (tx, rx) = mpsc::channel(capacity);
        let (close, closed) = oneshot::channel();
        (Inbox { tx }, IntakeEnd { rx, closed }, CloseInbox(close))
    }

    /// Hand an event over; waits only for room (the stream reader: it must not wait for
    /// the disk). A failure to store it is logged by the intake.
    pub(crate) async fn offer(&self, routed: Routed) -> Result<(), OutboxError> {
        self.tx
            .send(Submission { routed, ack: None })
            .await
            .map_err(|_| OutboxError::Closed)
    }

    /// Hand an event over and wait until its deliveries are durable.
    pub(crate) async fn enqueue(&self, routed: Routed) -> Result<Enqueued, OutboxError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Submission {
                routed,
                ack: Some(ack),
            })
            .await
            .map_err(|_| OutboxError::Closed)?;
        done.await.map_err(|_| OutboxError::Closed)?
    }
}

/// The receiving end of an [`Inbox`].
pub(crate) struct IntakeEnd {
    /// Submissions, in arrival order.
    rx: mpsc::Receiver<Submission>,
    /// Fires when [`CloseInbox::close`] is called.
    closed: oneshot::Receiver<()>,
}

/// How long events from the stream are held, after the intake was closed, for an
/// outbox that cannot store them before they are given up.
const CLOSING_GRACE: Duration = Duration::from_secs(10);

/// Take whatever is waiting in the inbox as one group and store it, until the inbox is
/// closed and drained. Each submission is answered with its own result.
///
/// When the store cannot store a group, the `/ingest` submissions in it are answered
/// at once (their senders retry), and the stream's events are held and stored again as
/// soon as the store takes events (checked at least every second): nothing the relay read
/// from the stream is dropped for a full or failing disk. Meanwhile the inbox fills and
/// the stream reader waits for room (it also stops reading while the store refuses).
pub(crate) async fn run_intake<S: Outbox>(store: &S, end: IntakeEnd) {
    let IntakeEnd { mut rx, mut closed } = end;
    let mut subs: Vec<Submission> = Vec::with_capacity(GROUP_MAX);
    let mut group: Vec<Routed> = Vec::with_capacity(GROUP_MAX);
    let mut acks = Vec::with_capacity(GROUP_MAX);
    let mut accepting = store.accepting();
    let mut closing: Option<tokio::time::Instant> = None;
    // Events from the stream are being held for a store that cannot store them.
    let mut holding = false;
    loop {
        if group.is_empty() {
            let received = tokio::select! {
                n = rx.recv_many(&mut subs, GROUP_MAX) => n,
                _ = &mut closed, if closing.is_none() => {
                    // Refuse new submissions; keep draining what is queued.
                    closing = Some(tokio::time::Instant::now());
                    rx.close();
                    continue;
                }
            };
            if received == 0 {
                return;
            }
            for sub in subs.drain(..) {
                group.push(sub.routed);
                acks.push(sub.ack);
            }
        }
        match store.enqueue(&group).await {
            Ok(results) => {
                for (ack, result) in acks.drain(..).zip(results) {
                    if let Some(ack) = ack {
                        let _ = ack.send(Ok(result));
                    }
                }
                if std::mem::take(&mut holding) {
                    tracing::info!(
                        events = group.len(),
                        "Stored the events held from the stream"
                    );
                }
                group.clear();
            }
            Err(e) => {
                hold_stream_events(&mut group, &mut acks, &e);
                if group.is_empty() {
                    continue;
                }
                if !std::mem::replace(&mut holding, true) {
                    tracing::warn!(
                        from_stream = group.len(),
                        error = %error_chain(&e),
                        "Holding events from the stream until the outbox can store them"
                    );
                }
                let given_up = closing.is_some_and(|at| at.elapsed() >= CLOSING_GRACE);
                if given_up {
                    tracing::error!(
                        events = group.len(),
                        error = %error_chain(&e),
                        "Events from the stream could not be stored before shutdown; they are missing"
                    );
                    group.clear();
                    acks.clear();
                    continue;
                }
                // Try again when the store takes events again, or in a second.
                tokio::select! {
                    _ = accepting.wait_for(|a| *a) => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// After a failed group: answer its `/ingest` submissions (their senders retry) and keep
/// its stream events for the next try.
fn hold_stream_events(
    group: &mut Vec<Routed>,
    acks: &mut Vec<Option<oneshot::Sender<Result<Enqueued, OutboxError>>>>,
    e: &OutboxError,
) {
    let detail = error_chain(e);
    let mut kept = Vec::with_capacity(group.len());
    for (routed, ack) in group.drain(..).zip(acks.drain(..)) {
        match ack {
            Some(ack) => {
                let _ = ack.send(Err(OutboxError::Unavailable {
                    detail: detail.clone(),
                }));
            }
            None => kept.push(routed),
        }
    }
    acks.extend(kept.iter().map(|_| None));
    *group = kept;
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;

    use super::memory::MemoryOutbox;
    use super::*;
    use crate::telemetry::Metrics;

    fn routed(n: u32) -> Routed {
        Routed {
            event: Event::parse(Bytes::from(format!("{{\"tweet_id\":\"{n}\"}}"))).unwrap(),
            deliveries: vec![(0, format!("k{n}"))],
        }
    }

    /// Log lines, as text, for the assertions on what a failed group says.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn events_from_the_stream_are_held_while_the_store_cannot_store_them() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let metrics = Arc::new(Metrics::new(["t".to_string()]));
        let store = Arc::new(MemoryOutbox::new(1, Duration::from_secs(60), metrics));
        store.fail_writes(true);
        let (inbox, end, close) = Inbox::new(16);
        // Three from the stream and one that waits, all in one group.
        for n in 0..3 {
            inbox.offer(routed(n)).await.unwrap();
        }
        let waiting = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.enqueue(routed(3)).await }
        });
        tokio::task::yield_now().await;
        let intake = tokio::spawn({
            let store = store.clone();
            async move { run_intake(&*store, end).await }
        });
        // The one that waits is told to come back; the stream's are held.
        let answer = waiting.await.unwrap();
        assert!(
            matches!(&answer, Err(e @ OutboxError::Unavailable { .. }) if e.is_retriable()),
            "{answer:?}"
        );
        assert!(store.pending(0).is_empty());
        // The store recovers: the held events are stored, in order.
        store.fail_writes(false);
        for _ in 0..200 {
            if store.pending(0).len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.pending(0), vec![0, 1, 2], "the held events, stored");
        close.close();
        drop(inbox);
        intake.await.unwrap();

        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let warns: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warns.len(), 1, "one line for the episode: {text}");
        assert!(warns[0].contains("from_stream=3"), "{}", warns[0]);
        assert!(!text.contains("ERROR"), "{text}");
        assert!(
            !text.contains("lost") && !text.contains("missing"),
            "{text}"
        );
    }
}
