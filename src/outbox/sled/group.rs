//! Events written together: one atomic sled batch for a whole group of events.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;

use super::keys::{body_key, dedupe_key, key};
use super::record::{Record, SharedBody};
use super::store::Store;
use crate::outbox::{OutboxError, State};

impl Store {
    /// Write one event's deliveries, as [`Group::add`] does, in a group of its own.
    #[cfg(test)]
    pub(crate) fn enqueue(
        &self,
        body: &Bytes,
        targets: &[(&str, String)],
        dedupe_window: Duration,
        now_ms: u64,
    ) -> Result<(u64, Vec<usize>), OutboxError> {
        let mut group = self.group(dedupe_window, now_ms, now_ms);
        let written = group.add(body, targets)?;
        group.commit()?;
        Ok(written)
    }

    /// Start a group of events to be written in one atomic batch.
    ///
    /// sled writes every batch to its log with a system call of its own, so one batch per
    /// group, not per event, is what makes group commit pay. One batch for the whole group
    /// also keeps the invariant (an event's marks never without its deliveries) with room
    /// to spare: the group is all or nothing.
    ///
    /// `now_ms` is the wall clock, for the records' accepted time; `marks_ms` the clock
    /// dedupe marks are set and read by ([`MarkClock`](crate::outbox::MarkClock)).
    pub(crate) fn group(&self, dedupe_window: Duration, now_ms: u64, marks_ms: u64) -> Group<'_> {
        Group {
            store: self,
            batch: ::sled::Batch::default(),
            marks: std::collections::HashSet::new(),
            expiry: marks_ms
                .saturating_add(u64::try_from(dedupe_window.as_millis()).unwrap_or(u64::MAX))
                .to_be_bytes(),
            marks_ms,
            now_ms,
        }
    }
}

/// Events being written together: see [`Store::group`].
pub(crate) struct Group<'a> {
    /// Where the batch goes.
    store: &'a Store,
    /// Every write of the group so far.
    batch: ::sled::Batch,
    /// Dedupe marks set earlier in this group, not yet visible to `get`.
    marks: HashSet<Vec<u8>>,
    /// What each mark set now holds: when it expires, ms since the epoch, big-endian.
    expiry: [u8; 8],
    /// The marks' clock reading: marks that expired before this do not hold.
    marks_ms: u64,
    /// The wall clock: each record's accepted time.
    now_ms: u64,
}

impl Group<'_> {
    /// Add one event's deliveries for the targets whose dedupe key is not marked within
    /// the window (on disk or earlier in this group), with their marks. `targets` holds
    /// (target name, dedupe key). Returns the event's seq and the positions in `targets`
    /// that got a delivery.
    pub(crate) fn add<K: AsRef<str>>(
        &mut self,
        body: &Bytes,
        targets: &[(&str, K)],
    ) -> Result<(u64, Vec<usize>), OutboxError> {
        let store = self.store;
        // Everything that can fail comes first, so a failed event leaves nothing of
        // itself in the group's batch.
        let mut written = Vec::with_capacity(targets.len());
        let mut marks = Vec::with_capacity(targets.len());
        for (i, (target, dedupe)) in targets.iter().enumerate() {
            let mark = dedupe_key(target, dedupe.as_ref());
            if self.marks.contains(&mark) || marks.contains(&mark) {
                continue;
            }
            if let Some(v) = store.db()?.get(&mark).map_err(|e| store.storage(e))? {
                let until = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
                if until > self.marks_ms {
                    continue;
                }
            }
            written.push(i);
            marks.push(mark);
        }
        if written.is_empty() {
            return Ok((0, written));
        }
        let seq = store.db()?.generate_id().map_err(|e| store.storage(e))?;
        // With several deliveries the body is written once, beside small records.
        let names: Vec<&str> = written.iter().map(|&i| targets[i].0).collect();
        let shared = (names.len() > 1)
            .then(|| SharedBody::encode(&names, body))
            .flatten();
        let record = match shared {
            Some(shared) => {
                self.batch.insert(&body_key(seq), shared);
                Record::new_shared(self.now_ms)
            }
            None => Record::new(body.clone(), self.now_ms),
        }
        .encode();
        for (&i, mark) in written.iter().zip(marks) {
            self.batch
                .insert(key(State::Pending, targets[i].0, seq), record.as_slice());
            self.batch.insert(mark.as_slice(), &self.expiry);
            self.marks.insert(mark);
        }
        Ok((seq, written))
    }

    /// Write the group in one atomic batch. Not yet durable: call [`Store::flush`].
    pub(crate) fn commit(self) -> Result<(), OutboxError> {
        // Every delivery written sets a mark: no marks, nothing to write.
        if self.marks.is_empty() {
            return Ok(());
        }
        self.store
            .db()?
            .apply_batch(self.batch)
            .map_err(|e| self.store.storage(e))
    }
}
