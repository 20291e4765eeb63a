//! Deliveries handed from the committer to a worker in memory, so a worker that keeps up
//! does not read back from disk what was written a moment ago.
//!
//! The disk stays the source of truth: the handoff is bounded, and when it overflows it
//! says so, and the worker reads from disk until it has caught up. The committer pushes
//! only after the flush and after publishing the durable watermark, so whatever the
//! worker drops from a handoff it found incomplete is already visible to its disk read.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::outbox::Delivery;

/// Deliveries held per target before the handoff gives up and the disk takes over.
const HANDOFF_MAX: usize = 1024;

/// One target's deliveries just made durable, waiting for its worker.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    /// Locked by the committer to push and by the worker's queue to take.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// In seq order.
    queue: VecDeque<Delivery<u64>>,
    /// Some delivery was not handed over (the queue was full).
    overflowed: bool,
}

impl Handoff {
    /// Called by the committer, in seq order, after the flush.
    pub(crate) fn push(&self, delivery: Delivery<u64>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.queue.len() < HANDOFF_MAX {
            inner.queue.push_back(delivery);
        } else {
            inner.overflowed = true;
        }
    }

    /// Something was written that may not have been handed over (a failed group whose
    /// writes may still reach the disk): the worker must read the disk.
    pub(crate) fn mark_incomplete(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .overflowed = true;
    }

    /// Move everything newer than `after` into `into`. Returns false, and empties the
    /// handoff, when something was not handed over: the caller must read the disk.
    pub(crate) fn take(&self, into: &mut VecDeque<Delivery<u64>>, after: Option<u64>) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if std::mem::take(&mut inner.overflowed) {
            inner.queue.clear();
            return false;
        }
        into.extend(
            inner
                .queue
                .drain(..)
                .filter(|d| after.is_none_or(|a| d.handle > a)),
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rec(seq: u64) -> Delivery<u64> {
        Delivery {
            handle: seq,
            id: format!("msg_{seq}"),
            body: Bytes::from_static(b"{}"),
            attempts: 0,
            enqueued_ms: 0,
            next_attempt_ms: 0,
        }
    }

    #[test]
    fn hands_over_in_order_and_skips_what_was_read_from_disk() {
        let h = Handoff::default();
        for seq in 1..=5 {
            h.push(rec(seq));
        }
        let mut out = VecDeque::new();
        assert!(h.take(&mut out, Some(2)));
        assert_eq!(
            out.iter().map(|d| d.handle).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert!(h.take(&mut out, Some(5)));
        assert_eq!(out.len(), 3, "nothing twice");
    }

    #[test]
    fn an_overflow_sends_the_worker_to_disk_once() {
        let h = Handoff::default();
        for seq in 0..(HANDOFF_MAX as u64 + 10) {
            h.push(rec(seq));
        }
        let mut out = VecDeque::new();
        assert!(!h.take(&mut out, None));
        assert!(out.is_empty());
        h.push(rec(5000));
        assert!(h.take(&mut out, Some(4999)));
        assert_eq!(out.len(), 1);
    }
}
