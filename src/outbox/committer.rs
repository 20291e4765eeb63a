//! Group commit: the one writer of new deliveries.
//!
//! Sources hand events over a bounded channel (back-pressure: a full outbox slows the
//! stream reader instead of growing memory). The committer takes everything waiting,
//! writes each event's deliveries in its own atomic batch, makes them all durable with a
//! single fsync, then publishes the new durable watermark and wakes the target workers.
//! One fsync per group instead of per event is what lets a durable outbox keep up.
//!
//! Being the only writer of dedupe marks, it can check and set them without a race.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use super::{Group, Handoff, Outbox, OutboxError, Record, now_ms};
use crate::config::DedupeMode;
use crate::event::Event;
use crate::telemetry::Metrics;
use crate::telemetry::error_chain;

/// How many events one fsync may cover at most.
const GROUP_MAX: usize = 1024;

/// One routed event on its way into the outbox.
pub struct Submission {
    pub event: Event,
    /// Target indices, from the router.
    pub targets: Vec<usize>,
    /// Answered once the deliveries are durable (or could not be stored); `None` when the
    /// sender does not wait (the stream reader).
    pub ack: Option<oneshot::Sender<Result<Enqueued, OutboxError>>>,
}

/// What happened to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The event's seq (meaningless when nothing was written).
    pub seq: u64,
    /// Targets that got a delivery.
    pub written: Vec<usize>,
    /// Targets skipped because their dedupe key was seen within the window.
    pub duplicates: Vec<usize>,
}

/// What the committer needs to know of each target.
#[derive(Debug, Clone)]
pub struct TargetSlot {
    pub name: String,
    pub dedupe: DedupeMode,
    /// Woken when new deliveries for this target are durable.
    pub wake: Arc<Notify>,
    /// Where those deliveries are handed over in memory.
    pub handoff: Arc<Handoff>,
}

/// The sending side. Dropping every clone ends the committer after it has written and
/// flushed whatever was already sent.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Submission>,
}

/// Closes the intake at shutdown: what was already sent is still written and flushed,
/// later submissions get [`Closed`], and the committer ends even if a handle is still
/// held somewhere (an HTTP connection that will not finish, say).
pub struct CloseCommitter(oneshot::Sender<()>);

impl CloseCommitter {
    pub fn close(self) {
        let _ = self.0.send(());
    }
}

/// The committer task has stopped (shutdown): the event was not accepted.
#[derive(Debug, thiserror::Error)]
#[error("the outbox is shutting down")]
pub struct Closed;

impl Committer {
    /// Start the committer task. `durable` receives the highest seq known to be on disk.
    pub fn spawn(
        store: Outbox,
        targets: Arc<[TargetSlot]>,
        dedupe_window: Duration,
        durable: Arc<AtomicU64>,
        metrics: Arc<Metrics>,
        capacity: usize,
    ) -> (Committer, CloseCommitter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity);
        let (close, closed) = oneshot::channel();
        let task = tokio::spawn(run(
            store,
            targets,
            dedupe_window,
            durable,
            metrics,
            rx,
            closed,
        ));
        (Committer { tx }, CloseCommitter(close), task)
    }

    /// Hand an event over; waits only for room in the channel.
    pub async fn submit(&self, submission: Submission) -> Result<(), Closed> {
        self.tx.send(submission).await.map_err(|_| Closed)
    }

    /// Hand an event over and wait until its deliveries are durable.
    pub async fn submit_durable(
        &self,
        event: Event,
        targets: Vec<usize>,
    ) -> Result<Result<Enqueued, OutboxError>, Closed> {
        let (ack, done) = oneshot::channel();
        self.submit(Submission {
            event,
            targets,
            ack: Some(ack),
        })
        .await?;
        done.await.map_err(|_| Closed)
    }
}

async fn run(
    store: Outbox,
    targets: Arc<[TargetSlot]>,
    dedupe_window: Duration,
    durable: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Submission>,
    mut close: oneshot::Receiver<()>,
) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    let mut results = Vec::with_capacity(GROUP_MAX);
    let mut touched = vec![false; targets.len()];
    let mut closing = false;
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut group, GROUP_MAX) => n,
            _ = &mut close, if !closing => {
                // Refuse new submissions; keep draining what is queued.
                closing = true;
                rx.close();
                continue;
            }
        };
        if received == 0 {
            break;
        }
        let now = now_ms();
        let mut batch = store.group(dedupe_window, now);
        let mut highest = 0;
        for sub in group.iter() {
            let result = write_one(&mut batch, &targets, sub);
            if let Ok(enq) = &result {
                highest = highest.max(enq.seq);
            }
            results.push(result);
        }
        // One batch and one fsync for the whole group.
        let stored = match batch.commit() {
            Ok(()) => store.flush().await,
            Err(e) => Err(e),
        };
        match &stored {
            Ok(()) => {
                // The watermark first, then the handoff: see handoff.rs.
                durable.fetch_max(highest, Ordering::Release);
                for (sub, enq) in group.iter().zip(&results) {
                    let Ok(enq) = enq else { continue };
                    for &t in &enq.written {
                        touched[t] = true;
                        metrics.target(t).pending.add(1);
                        targets[t]
                            .handoff
                            .push(enq.seq, Record::new(sub.event.raw().clone(), now));
                    }
                    if !enq.duplicates.is_empty() {
                        metrics.events_duplicate.inc();
                    }
                }
                for (t, hit) in touched.iter_mut().enumerate() {
                    if std::mem::take(hit) {
                        targets[t].wake.notify_one();
                    }
                }
            }
            Err(e) => {
                // Part of the group may still reach the disk: have every worker read it
                // rather than trust the handoff.
                for slot in targets.iter() {
                    slot.handoff.mark_incomplete();
                }
                tracing::error!(error = %error_chain(e), events = group.len(), "Could not make accepted events durable; they are not acknowledged");
            }
        }
        for (sub, result) in group.drain(..).zip(results.drain(..)) {
            let result = match (&stored, result) {
                (Ok(()), r) => r,
                (Err(e), _) => Err(OutboxError::Unavailable {
                    path: store.path().to_owned(),
                    detail: error_chain(e),
                }),
            };
            if let (Err(e), None) = (&result, &sub.ack) {
                tracing::error!(error = %error_chain(e), tweet_id = sub.event.fields().tweet_id.as_deref().unwrap_or(""), "Event lost: the outbox could not store it");
            }
            if let Some(ack) = sub.ack {
                let _ = ack.send(result);
            }
        }
    }
    // Every sender is gone: whatever was written has been flushed above.
}

fn write_one(
    batch: &mut Group<'_>,
    targets: &[TargetSlot],
    sub: &Submission,
) -> Result<Enqueued, OutboxError> {
    let mut tweet_key = None;
    let mut event_key = None;
    let keyed: Vec<(&str, String)> = sub
        .targets
        .iter()
        .map(|&t| {
            let slot = &targets[t];
            let key = match slot.dedupe {
                DedupeMode::Tweet => tweet_key
                    .get_or_insert_with(|| sub.event.tweet_key())
                    .clone(),
                DedupeMode::Event => event_key
                    .get_or_insert_with(|| sub.event.event_key())
                    .clone(),
            };
            (slot.name.as_str(), key)
        })
        .collect();
    let (seq, written_pos) = batch.add(sub.event.raw(), &keyed)?;
    let written: Vec<usize> = written_pos.iter().map(|&i| sub.targets[i]).collect();
    let duplicates = sub
        .targets
        .iter()
        .copied()
        .filter(|t| !written.contains(t))
        .collect();
    Ok(Enqueued {
        seq,
        written,
        duplicates,
    })
}
