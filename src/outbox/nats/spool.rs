//! The local spool: events wait here, on disk, until JetStream acknowledged their
//! deliveries. One sled tree; key = seq (u64 BE, from sled's id generator, so key order
//! is arrival order across restarts), value = one [`Spooled`] event.
//!
//! Value layout: `u16 n`, then n × (`u16 len`, target name, `u16 len`, dedupe key), then
//! `u64 accepted_ms`, then the event's bytes.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::outbox::{OutboxError, Routed, Synced, now_ms};

/// One event in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spooled {
    /// (target name, dedupe key) of each delivery.
    pub deliveries: Vec<(String, String)>,
    /// When it was accepted, ms since the epoch.
    pub accepted_ms: u64,
    /// The event JSON as received.
    pub body: Bytes,
}

/// The spool's database.
#[derive(Clone)]
pub(super) struct Spool {
    /// For `generate_id` and flushes.
    db: sled::Db,
    /// Where it is, for messages.
    path: PathBuf,
    /// The fdatasync that sled's flush leaves out (see fsync.rs).
    synced: Synced,
}

impl Spool {
    pub(super) fn open(dir: &Path) -> Result<Spool, OutboxError> {
        let path = dir.join("spool");
        std::fs::create_dir_all(&path).map_err(|source| OutboxError::Open {
            path: path.clone(),
            source,
        })?;
        let db = sled::Config::new()
            .path(&path)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(source) if source.kind() == std::io::ErrorKind::WouldBlock => {
                    OutboxError::Locked { path: path.clone() }
                }
                sled::Error::Io(source) => OutboxError::Open {
                    path: path.clone(),
                    source,
                },
                other => OutboxError::Corrupt {
                    path: path.clone(),
                    detail: other.to_string(),
                },
            })?;
        let synced = Synced::new(&path);
        Ok(Spool { db, path, synced })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn storage(&self, e: impl std::error::Error + Send + Sync + 'static) -> OutboxError {
        OutboxError::Storage {
            path: self.path.clone(),
            source: Box::new(e),
        }
    }

    /// Store a group's events in one batch and flush. Per event its seq, or `None`
    /// when it has no delivery.
    pub(super) async fn add(
        &self,
        group: &[Routed],
        targets: &[&str],
    ) -> Result<Vec<Option<u64>>, OutboxError> {
        let mut batch = sled::Batch::default();
        let mut seqs = Vec::with_capacity(group.len());
        let accepted_ms = now_ms();
        for routed in group {
            if routed.deliveries.is_empty() {
                seqs.push(None);
                continue;
            }
            // From 1: the publisher's watermark 0 means "nothing published yet".
            let seq = self.db.generate_id().map_err(|e| self.storage(e))? + 1;
            let spooled = Spooled {
                deliveries: routed
                    .deliveries
                    .iter()
                    .map(|(t, key)| (targets[*t].to_owned(), key.clone()))
                    .collect(),
                accepted_ms,
                body: routed.event.raw().clone(),
            };
            batch.insert(&seq.to_be_bytes(), encode(&spooled));
            seqs.push(Some(seq));
        }
        self.db.apply_batch(batch).map_err(|e| self.storage(e))?;
        self.flush().await?;
        Ok(seqs)
    }

    /// Up to `max` events, oldest first.
    pub(super) fn oldest(&self, max: usize) -> Result<Vec<(u64, Spooled)>, OutboxError> {
        let mut out = Vec::new();
        for entry in self.db.iter().take(max) {
            let (key, value) = entry.map_err(|e| self.storage(e))?;
            let seq = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8]));
            match decode(&value) {
                Some(spooled) => out.push((seq, spooled)),
                None => {
                    tracing::error!(seq, spool = %self.path.display(), "A spooled event cannot be read; it is dropped");
                    let _ = self.db.remove(key);
                }
            }
        }
        Ok(out)
    }

    /// Remove events JetStream holds now (no flush: should the removal be lost, a
    /// re-publish is a duplicate the stream drops).
    pub(super) fn remove(&self, seqs: &[u64]) -> Result<(), OutboxError> {
        let mut batch = sled::Batch::default();
        for seq in seqs {
            batch.remove(&seq.to_be_bytes());
        }
        self.db.apply_batch(batch).map_err(|e| self.storage(e))
    }

    pub(super) fn len(&self) -> usize {
        self.db.len()
    }

    /// Make every write so far durable (sled's flush and an fdatasync, off the runtime).
    pub(super) async fn flush(&self) -> Result<(), OutboxError> {
        self.synced
            .flush_async(self.db.clone())
            .await
            .map_err(|e| self.storage(e))
    }
}

fn encode(s: &Spooled) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + s.body.len());
    out.extend_from_slice(&(s.deliveries.len() as u16).to_be_bytes());
    for (target, key) in &s.deliveries {
        for part in [target, key] {
            out.extend_from_slice(&(part.len() as u16).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out.extend_from_slice(&s.accepted_ms.to_be_bytes());
    out.extend_from_slice(&s.body);
    out
}

fn decode(mut b: &[u8]) -> Option<Spooled> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (b.get(..n)?, b.get(n..)?);
        *b = tail;
        Some(head)
    }
    fn u16_of(b: &mut &[u8]) -> Option<usize> {
        Some(u16::from_be_bytes(take(b, 2)?.try_into().ok()?) as usize)
    }
    let n = u16_of(&mut b)?;
    let mut deliveries = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u16_of(&mut b)?;
        let target = String::from_utf8(take(&mut b, len)?.to_vec()).ok()?;
        let len = u16_of(&mut b)?;
        let key = String::from_utf8(take(&mut b, len)?.to_vec()).ok()?;
        deliveries.push((target, key));
    }
    let accepted_ms = u64::from_be_bytes(take(&mut b, 8)?.try_into().ok()?);
    Some(Spooled {
        deliveries,
        accepted_ms,
        body: Bytes::copy_from_slice(b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooled_event_reads_back_as_written_and_garbage_does_not_read() {
        let s = Spooled {
            deliveries: vec![("a.b".into(), "tweet:1".into()), ("c".into(), "".into())],
            accepted_ms: 1_700_000_000_123,
            body: Bytes::from_static(br#"{"tweet_id":"1"}"#),
        };
        assert_eq!(decode(&encode(&s)), Some(s.clone()));
        let bytes = encode(&s);
        assert_eq!(decode(&bytes[..5]), None);
        assert_eq!(decode(&[0xff, 0xff]), None);
    }

    #[tokio::test]
    async fn events_stay_in_order_across_a_reopen_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let event = |n: u32| Routed {
            event: crate::event::Event::parse(Bytes::from(format!("{{\"tweet_id\":\"{n}\"}}")))
                .unwrap(),
            deliveries: vec![(0, format!("k{n}"))],
        };
        let seqs = {
            let spool = Spool::open(dir.path()).unwrap();
            let empty = Routed {
                deliveries: vec![],
                ..event(9)
            };
            spool
                .add(&[event(1), empty, event(2)], &["t"])
                .await
                .unwrap()
        };
        assert!(seqs[1].is_none());
        // sled's flush threads may hold the closed database's file lock a moment longer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let spool = loop {
            match Spool::open(dir.path()) {
                Ok(s) => break s,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("the spool does not reopen: {e}"),
            }
        };
        let oldest = spool.oldest(10).unwrap();
        let keys: Vec<&str> = oldest
            .iter()
            .map(|(_, s)| s.deliveries[0].1.as_str())
            .collect();
        assert_eq!(keys, ["k1", "k2"]);
        spool.remove(&[oldest[0].0]).unwrap();
        assert_eq!(spool.len(), 1);
    }
}
