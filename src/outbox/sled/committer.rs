//! A group's way into the store: one batch, one fsync, then the workers.
//!
//! [`run_intake`](crate::outbox::run_intake) hands over everything waiting as one group.
//! Each event's deliveries and dedupe marks go into one sled batch for the whole group,
//! made durable with a single flush; then the durable watermark moves, the deliveries are
//! handed to their workers in memory and the workers are woken. One fsync per group
//! instead of per event is what lets a durable outbox keep up.
//!
//! The intake is the only writer of dedupe marks, so they are checked and set without a
//! race.

use std::sync::atomic::Ordering;

use super::group::Group;
use super::record::Record;
use super::{SledOutbox, delivery};
use crate::outbox::{Enqueued, OutboxError, Routed, now_ms};

impl SledOutbox {
    /// Store a group: see [`Outbox::enqueue`](crate::outbox::Outbox::enqueue).
    pub(super) async fn commit(&self, group: &[Routed]) -> Result<Vec<Enqueued>, OutboxError> {
        let s = &self.shared;
        if let Err(e) = self.check_guards() {
            return Err(self.failed("checking the outbox's free space", e));
        }
        let now = now_ms();
        let mut batch = s.store.group(s.dedupe_window, now, s.mark_clock.now_ms());
        let mut written = Vec::with_capacity(group.len());
        let mut highest = 0;
        // A failed read (of a dedupe mark) fails the whole group before anything is
        // written: it means the disk is failing, and the batch would fail anyway.
        let stored = (|| {
            for routed in group {
                let (seq, enqueued) = self.write_one(&mut batch, routed)?;
                highest = highest.max(seq);
                written.push((seq, enqueued));
            }
            batch.commit()
        })();
        let stored = match stored {
            Ok(()) => s.store.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            // Part of the group may still reach the disk: have every worker read it
            // rather than trust the handoff.
            return Err(self.failed("storing events", e));
        }
        // The watermark first, then the handoff: see handoff.rs.
        s.durable.fetch_max(highest, Ordering::Release);
        let slots = s.slots();
        let mut touched = vec![false; slots.len()];
        let mut results = Vec::with_capacity(group.len());
        for (routed, (seq, enqueued)) in group.iter().zip(written) {
            for &t in &enqueued.written {
                touched[t] = true;
                s.backlog.added(t, &s.metrics);
                let record = Record::new(routed.event.raw().clone(), now);
                slots[t].handoff.push(delivery(&s.store, seq, record));
            }
            if !enqueued.duplicates.is_empty() {
                s.metrics.events_duplicate.inc();
            }
            results.push(enqueued);
        }
        for (slot, hit) in slots.iter().zip(touched) {
            if hit {
                slot.wake.notify_one();
            }
        }
        Ok(results)
    }

    /// Add one event to the batch: a delivery per target whose dedupe key is not marked.
    fn write_one(
        &self,
        batch: &mut Group<'_>,
        routed: &Routed,
    ) -> Result<(u64, Enqueued), OutboxError> {
        let slots = self.shared.slots();
        let keyed: Vec<(&str, &str)> = routed
            .deliveries
            .iter()
            .map(|(t, key)| (slots[*t].name.as_str(), key.as_str()))
            .collect();
        let (seq, positions) = batch.add(routed.event.raw(), &keyed)?;
        let written: Vec<usize> = positions.iter().map(|&i| routed.deliveries[i].0).collect();
        let duplicates = routed
            .deliveries
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| !written.contains(t))
            .collect();
        Ok((
            seq,
            Enqueued {
                written,
                duplicates,
            },
        ))
    }
}
