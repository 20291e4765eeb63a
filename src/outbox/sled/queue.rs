//! A worker's ordered reading of its target's deliveries.
//!
//! While the worker keeps up, deliveries come from the committer's in-memory handoff;
//! after a restart (a backlog may be waiting), after the handoff overflowed, or after a
//! group whose flush failed, they are read from disk, never past the durable watermark,
//! until the disk has nothing more. The backlog stays on disk, so memory does not grow
//! with an outage.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{SledOutbox, delivery};
use crate::outbox::{Delivery, Queue};
use crate::telemetry::error_chain;

/// How many pending deliveries are read ahead from disk at once.
const READ_AHEAD: usize = 256;

/// How long to wait before reading again after a failed disk read.
const READ_RETRY: Duration = Duration::from_secs(1);

/// One target's queue. See the module doc.
pub(crate) struct SledQueue {
    /// The store and the target's slot.
    outbox: SledOutbox,
    /// The target's slot: its name, wake-up and handoff.
    slot: std::sync::Arc<super::Slot>,
    /// Read ahead, from the handoff or from disk, in seq order.
    buffer: VecDeque<Delivery<u64>>,
    /// The highest seq taken into `buffer`.
    cursor: Option<u64>,
    /// Reading from disk until caught up with the durable watermark: set at start (a
    /// backlog may be waiting) and whenever the handoff was incomplete.
    from_disk: bool,
    /// The last disk read failed, and when it was logged: one line per failing stretch,
    /// not one per retry.
    failing: bool,
}

impl SledQueue {
    /// A new queue reads the disk first: a backlog may be waiting from the last run.
    pub(super) fn new(outbox: SledOutbox, target: usize) -> SledQueue {
        SledQueue {
            slot: outbox.shared.slot(target),
            outbox,
            buffer: VecDeque::new(),
            cursor: None,
            from_disk: true,
            failing: false,
        }
    }

    /// Fill `buffer` from the handoff or the disk. `Err` when the disk read failed.
    async fn refill(&mut self) -> Result<(), crate::outbox::OutboxError> {
        let s = &self.outbox.shared;
        let slot = &self.slot;
        if !self.from_disk && !slot.handoff.take(&mut self.buffer, self.cursor) {
            self.from_disk = true;
        }
        if !self.from_disk {
            if let Some(d) = self.buffer.back() {
                self.cursor = Some(d.handle);
            }
            return Ok(());
        }
        let upto = s.durable.load(Ordering::Acquire);
        let (store, name, after) = (s.store.clone(), slot.name.clone(), self.cursor);
        let scan =
            tokio::task::spawn_blocking(move || store.scan_pending(&name, after, upto, READ_AHEAD))
                .await
                .expect("a disk read does not panic")?;
        // A short read means the disk has nothing more up to the watermark: from here on
        // the handoff holds everything newer. Counted in keys, not records, so an
        // unreadable record is stepped over, not taken for the end of the backlog.
        self.from_disk = scan.scanned == READ_AHEAD;
        if scan.last.is_some() {
            self.cursor = scan.last;
        }
        self.buffer.extend(
            scan.items
                .into_iter()
                .map(|(seq, record)| delivery(&s.store, seq, record)),
        );
        Ok(())
    }
}

impl Queue for SledQueue {
    type Handle = u64;

    async fn next(&mut self) -> Delivery<u64> {
        loop {
            if let Some(d) = self.buffer.pop_front() {
                return d;
            }
            match self.refill().await {
                Ok(()) => {
                    if self.failing {
                        self.failing = false;
                        tracing::info!(target = %self.slot.name, "Reading the outbox works again");
                    }
                    if !self.buffer.is_empty() || self.from_disk {
                        continue;
                    }
                }
                Err(e) => {
                    let e = self.outbox.failed("reading deliveries", e);
                    // A warning: `failed` has logged the episode's one ERROR (a read
                    // fails when sled's write error is sticky, until the store reopens).
                    if !std::mem::replace(&mut self.failing, true) {
                        tracing::warn!(target = %self.slot.name, error = %error_chain(&e), "Cannot read the outbox; trying again every second");
                    }
                    tokio::time::sleep(READ_RETRY).await;
                    continue;
                }
            }
            // Caught up: wait for the committer (a wake-up that came meanwhile is kept
            // as a permit, so none is missed).
            self.slot.wake.notified().await;
        }
    }
}
