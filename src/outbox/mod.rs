//! The durable outbox: every accepted delivery, on disk, until its target answers 2xx.
//!
//! # Layout
//! One sled tree, so that everything one event writes goes in one atomic batch:
//!
//! ```text
//! m/instance                    8 random bytes, made when the store is created
//! p/<target>\0<seq u64 BE>      pending delivery  (Record)
//! d/<target>\0<seq u64 BE>      dead letter       (Record, reason set)
//! k/<target>\0<dedupe key>      dedupe mark       (expiry, ms since epoch, u64 BE)
//! ```
//!
//! `seq` comes from sled's persistent id generator, so it grows in arrival order across
//! restarts; a target's pending deliveries read in key order are its queue. Target names
//! are validated to `[A-Za-z0-9_.-]`, so the `\0` separator cannot occur in them.
//!
//! # Invariants
//! - An event's deliveries and its dedupe marks are written in one batch: a crash can
//!   never leave a mark without the deliveries it guards (which would turn a replayed
//!   event into a "duplicate" that is never delivered).
//! - A delivery is attempted only after the flush that made it durable (the committer
//!   publishes the highest durable `seq`; workers never read past it).
//! - A pending record leaves only by `complete` (after a 2xx) or by moving, in one batch,
//!   to a dead letter.
//! - The delivery id sent as `webhook-id` is derived from the instance and the seq, so it
//!   is stable across retries and restarts and unique across stores.
//!
//! Only one process may hold the store: a lock file is taken before sled opens, so a
//! second `run` or an `outbox` command gets [`OutboxError::Locked`] instead of a fight.

mod committer;
mod handoff;
mod record;

pub use committer::{CloseCommitter, Closed, Committer, Enqueued, Submission, TargetSlot};
pub use handoff::Handoff;
pub use record::Record;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// sled's page cache: small, because the backlog is meant to live on disk, not in RAM.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

const LOCK_FILE: &str = "badger-relay.lock";

/// Why the store cannot be used. Every variant names the path, so the operator knows
/// which directory to look at.
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
    /// A group could not be written or flushed; each of its events gets this.
    #[error("the outbox {path} could not store the event: {detail}")]
    Unavailable { path: PathBuf, detail: String },
    #[error("outbox storage error in {path}")]
    Storage {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
}

/// Where a delivery sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Dead,
}

impl State {
    fn prefix(self) -> u8 {
        match self {
            State::Pending => b'p',
            State::Dead => b'd',
        }
    }
}

/// What [`Outbox::scan_pending`] found.
#[derive(Debug)]
pub struct Scan {
    pub items: Vec<(u64, Record)>,
    /// Keys looked at, readable or not.
    pub scanned: usize,
    /// The seq of the last key looked at.
    pub last: Option<u64>,
}

/// A delivery read back from the store.
#[derive(Debug, Clone)]
pub struct Stored {
    pub target: String,
    pub seq: u64,
    pub state: State,
    /// False for a record this version cannot decode (`record` is then a placeholder).
    pub readable: bool,
    pub record: Record,
}

/// The store. Cheap to clone: every clone is the same open database.
#[derive(Clone)]
pub struct Outbox {
    db: sled::Db,
    path: PathBuf,
    instance: u64,
    /// Held for the life of the store: the advisory lock that keeps a second process out.
    _lock: std::sync::Arc<File>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("path", &self.path).finish()
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn key(state: State, target: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + target.len() + 1 + 8);
    k.push(state.prefix());
    k.push(b'/');
    k.extend_from_slice(target.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn target_prefix(state: State, target: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + target.len() + 1);
    k.push(state.prefix());
    k.push(b'/');
    k.extend_from_slice(target.as_bytes());
    k.push(0);
    k
}

fn dedupe_key(target: &str, dedupe: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + target.len() + 1 + dedupe.len());
    k.extend_from_slice(b"k/");
    k.extend_from_slice(target.as_bytes());
    k.push(0);
    k.extend_from_slice(dedupe.as_bytes());
    k
}

/// Split `p/<target>\0<seq>` into its parts.
fn parse_key(k: &[u8]) -> Option<(State, &str, u64)> {
    let state = match k.first()? {
        b'p' => State::Pending,
        b'd' => State::Dead,
        _ => return None,
    };
    let rest = k.get(2..)?;
    let nul = rest.iter().position(|&b| b == 0)?;
    let target = std::str::from_utf8(&rest[..nul]).ok()?;
    let seq = u64::from_be_bytes(rest.get(nul + 1..)?.try_into().ok()?);
    Some((state, target, seq))
}

impl Outbox {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<Outbox, OutboxError> {
        let open_err = |source| OutboxError::Open {
            path: path.to_owned(),
            source,
        };
        if path.exists() && !path.is_dir() {
            return Err(OutboxError::Corrupt {
                path: path.to_owned(),
                detail: "the path is a file, not a directory".into(),
            });
        }
        std::fs::create_dir_all(path).map_err(open_err)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK_FILE))
            .map_err(open_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OutboxError::Locked {
                    path: path.to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(open_err(e)),
        }
        // A store we created always holds `m/instance` (written and flushed first). If its
        // files exist but the marker does not come back, sled "recovered" a damaged log
        // as empty: refuse, rather than start fresh and hide the pending deliveries.
        let existed = path.join("db").join("db").exists();
        let db = open_sled(path)?;
        let storage = |source| OutboxError::Storage {
            path: path.to_owned(),
            source,
        };
        let instance = match db.get(b"m/instance").map_err(storage)? {
            Some(v) if v.len() == 8 => u64::from_be_bytes(v.as_ref().try_into().unwrap()),
            Some(_) => {
                return Err(OutboxError::Corrupt {
                    path: path.to_owned(),
                    detail: "bad instance marker".into(),
                });
            }
            None if existed => {
                return Err(OutboxError::Corrupt {
                    path: path.to_owned(),
                    detail: "its data could not be recovered".into(),
                });
            }
            None => {
                let id = fastrand::u64(..);
                db.insert(b"m/instance", &id.to_be_bytes())
                    .map_err(storage)?;
                db.flush().map_err(storage)?;
                id
            }
        };
        Ok(Outbox {
            db,
            path: path.to_owned(),
            instance,
            _lock: std::sync::Arc::new(lock),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn storage(&self, source: sled::Error) -> OutboxError {
        OutboxError::Storage {
            path: self.path.clone(),
            source,
        }
    }

    /// The id a target sees in `webhook-id`: stable for a delivery, unique across stores.
    pub fn delivery_id(&self, seq: u64) -> String {
        format!("msg_{:016x}{:016x}", self.instance, seq)
    }

    /// The seq inside a delivery id printed by `outbox list` (either the full id or the seq).
    pub fn parse_delivery_id(&self, id: &str) -> Option<u64> {
        let hex = id.strip_prefix("msg_").unwrap_or(id);
        match hex.len() {
            32 => u64::from_str_radix(hex.get(16..)?, 16).ok(),
            _ => hex.parse().ok(),
        }
    }

    /// Write one event's deliveries, as [`Group::add`] does, in a group of its own.
    pub fn enqueue(
        &self,
        body: &Bytes,
        targets: &[(&str, String)],
        dedupe_window: Duration,
        now_ms: u64,
    ) -> Result<(u64, Vec<usize>), OutboxError> {
        let mut group = self.group(dedupe_window, now_ms);
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
    pub fn group(&self, dedupe_window: Duration, now_ms: u64) -> Group<'_> {
        Group {
            store: self,
            batch: sled::Batch::default(),
            marks: std::collections::HashSet::new(),
            expiry: now_ms
                .saturating_add(u64::try_from(dedupe_window.as_millis()).unwrap_or(u64::MAX))
                .to_be_bytes(),
            now_ms,
        }
    }

    /// Make every write so far durable (fsync).
    pub async fn flush(&self) -> Result<(), OutboxError> {
        self.db
            .flush_async()
            .await
            .map(drop)
            .map_err(|e| self.storage(e))
    }

    /// Blocking flush, for shutdown and admin commands.
    pub fn flush_blocking(&self) -> Result<(), OutboxError> {
        self.db.flush().map(drop).map_err(|e| self.storage(e))
    }

    /// Up to `limit` pending deliveries of `target` with `after < seq <= upto`, in order.
    pub fn pending(
        &self,
        target: &str,
        after: Option<u64>,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Record)>, OutboxError> {
        Ok(self.scan_pending(target, after, upto, limit)?.items)
    }

    /// [`Outbox::pending`], saying also how many keys were looked at and the last seq
    /// among them, so that a reader can tell "caught up" from "skipped an unreadable
    /// record" and move past it.
    pub fn scan_pending(
        &self,
        target: &str,
        after: Option<u64>,
        upto: u64,
        limit: usize,
    ) -> Result<Scan, OutboxError> {
        let mut scan = Scan {
            items: Vec::new(),
            scanned: 0,
            last: None,
        };
        let start = match after {
            Some(u64::MAX) => return Ok(scan),
            Some(s) => key(State::Pending, target, s + 1),
            None => target_prefix(State::Pending, target),
        };
        let end = key(State::Pending, target, upto);
        if start > end {
            return Ok(scan);
        }
        for item in self.db.range(start..=end).take(limit) {
            let (k, v) = item.map_err(|e| self.storage(e))?;
            scan.scanned += 1;
            let Some((_, _, seq)) = parse_key(&k) else {
                continue;
            };
            scan.last = Some(seq);
            match Record::decode(&v) {
                Ok(r) => scan.items.push((seq, r)),
                Err(e) => {
                    // Left in place (nothing is deleted silently): `outbox list` shows it
                    // and `outbox purge` removes it.
                    tracing::error!(target = target, seq, error = %e, "Skipping an unreadable delivery record");
                }
            }
        }
        Ok(scan)
    }

    /// One pending delivery, if it is there and readable.
    pub fn get_pending(&self, target: &str, seq: u64) -> Result<Option<Record>, OutboxError> {
        let value = self
            .db
            .get(key(State::Pending, target, seq))
            .map_err(|e| self.storage(e))?;
        Ok(value.and_then(|v| Record::decode(&v).ok()))
    }

    /// The target answered 2xx: the delivery leaves the outbox.
    pub fn complete(&self, target: &str, seq: u64) -> Result<(), OutboxError> {
        self.db
            .remove(key(State::Pending, target, seq))
            .map(drop)
            .map_err(|e| self.storage(e))
    }

    /// Store the retry state (attempts, next attempt, last error) of a pending delivery.
    pub fn reschedule(&self, target: &str, seq: u64, record: &Record) -> Result<(), OutboxError> {
        self.db
            .insert(key(State::Pending, target, seq), record.encode())
            .map(drop)
            .map_err(|e| self.storage(e))
    }

    /// Move a pending delivery to the dead letters, in one batch. Not flushed at once:
    /// after a crash it is at worst pending again and gets one more attempt.
    pub fn dead_letter(&self, target: &str, seq: u64, record: &Record) -> Result<(), OutboxError> {
        let mut batch = sled::Batch::default();
        batch.remove(key(State::Pending, target, seq));
        batch.insert(key(State::Dead, target, seq), record.encode());
        self.db.apply_batch(batch).map_err(|e| self.storage(e))?;
        Ok(())
    }

    /// Every delivery in `state`, optionally of one target, in key order.
    pub fn list(
        &self,
        state: State,
        target: Option<&str>,
    ) -> impl Iterator<Item = Result<Stored, OutboxError>> + '_ {
        let prefix = match target {
            Some(t) => target_prefix(state, t),
            None => vec![state.prefix(), b'/'],
        };
        self.db.scan_prefix(prefix).filter_map(move |item| {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => return Some(Err(self.storage(e))),
            };
            let (state, target, seq) = parse_key(&k)?;
            // An unreadable record is listed (so it can be seen and purged), not fatal.
            let readable = Record::decode(&v).is_ok();
            let record = Record::decode(&v).unwrap_or_else(|e| Record {
                attempts: 0,
                enqueued_ms: 0,
                next_attempt_ms: 0,
                reason: format!("{e}: `outbox purge` removes it"),
                body: Bytes::new(),
            });
            Some(Ok(Stored {
                target: target.to_owned(),
                seq,
                state,
                readable,
                record,
            }))
        })
    }

    /// Count pending and dead deliveries per target name.
    pub fn stats(&self) -> Result<std::collections::BTreeMap<String, (u64, u64)>, OutboxError> {
        let mut out = std::collections::BTreeMap::<String, (u64, u64)>::new();
        for prefix in [b"p/", b"d/"] {
            for item in self.db.scan_prefix(prefix) {
                let (k, _) = item.map_err(|e| self.storage(e))?;
                if let Some((state, target, _)) = parse_key(&k) {
                    let entry = out.entry(target.to_owned()).or_default();
                    match state {
                        State::Pending => entry.0 += 1,
                        State::Dead => entry.1 += 1,
                    }
                }
            }
        }
        Ok(out)
    }

    /// Count the pending deliveries of one target (start-up gauges).
    pub fn count(&self, state: State, target: &str) -> u64 {
        self.db
            .scan_prefix(target_prefix(state, target))
            .keys()
            .count() as u64
    }

    /// Move dead letters back to pending with a fresh retry budget: all of them, those of
    /// one target, or those with the given seqs (an event's deliveries to several targets
    /// share its seq: `target` narrows it). Returns what moved. Unreadable records stay.
    pub fn retry_dead(
        &self,
        target: Option<&str>,
        seqs: &[u64],
    ) -> Result<Vec<(String, u64)>, OutboxError> {
        let now = now_ms();
        let mut moved = Vec::new();
        let dead: Vec<Stored> = self.list(State::Dead, target).collect::<Result<_, _>>()?;
        for d in dead {
            if !d.readable || (!seqs.is_empty() && !seqs.contains(&d.seq)) {
                continue;
            }
            let fresh = Record {
                attempts: 0,
                enqueued_ms: now,
                next_attempt_ms: 0,
                reason: String::new(),
                body: d.record.body,
            };
            let mut batch = sled::Batch::default();
            batch.remove(key(State::Dead, &d.target, d.seq));
            batch.insert(key(State::Pending, &d.target, d.seq), fresh.encode());
            self.db.apply_batch(batch).map_err(|e| self.storage(e))?;
            moved.push((d.target, d.seq));
        }
        self.flush_blocking()?;
        Ok(moved)
    }

    /// Delete deliveries (dead letters with `dead`, else pending ones). Returns the count.
    pub fn purge(&self, state: State, target: Option<&str>) -> Result<u64, OutboxError> {
        let keys: Vec<Vec<u8>> = self
            .list(state, target)
            .map(|s| s.map(|s| key(s.state, &s.target, s.seq)))
            .collect::<Result<_, _>>()?;
        for k in &keys {
            self.db.remove(k).map_err(|e| self.storage(e))?;
        }
        self.flush_blocking()?;
        Ok(keys.len() as u64)
    }

    /// Remove dedupe marks that expired before `now_ms`. Returns how many.
    pub fn sweep_dedupe(&self, now_ms: u64) -> Result<u64, OutboxError> {
        let mut removed = 0;
        for item in self.db.scan_prefix(b"k/") {
            let (k, v) = item.map_err(|e| self.storage(e))?;
            let until = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
            if until <= now_ms {
                // Compare-and-swap so a mark refreshed meanwhile is kept.
                if let Ok(Ok(())) = self.db.compare_and_swap(&k, Some(v), None::<&[u8]>) {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// A seq greater than every seq already stored: where the durable watermark starts,
    /// since whatever a previous run left on disk is already durable.
    pub fn watermark(&self) -> Result<u64, OutboxError> {
        self.db.generate_id().map_err(|e| self.storage(e))
    }

    /// Target names that have pending or dead deliveries: one seek per target found, not
    /// a scan of every delivery (start-up must not wait on a large backlog).
    pub fn targets_with_deliveries(&self) -> Result<Vec<String>, OutboxError> {
        let mut names = std::collections::BTreeSet::new();
        for state in [State::Pending, State::Dead] {
            let mut from = vec![state.prefix(), b'/'];
            let end = vec![state.prefix(), b'/' + 1];
            while let Some(item) = self.db.range(from.clone()..end.clone()).next() {
                let (k, _) = item.map_err(|e| self.storage(e))?;
                let Some((_, target, _)) = parse_key(&k) else {
                    break;
                };
                names.insert(target.to_owned());
                // Past every key of this target: its prefix with the separator bumped.
                from = target_prefix(state, target);
                *from.last_mut().expect("a prefix ends with its separator") = 1;
            }
        }
        Ok(names.into_iter().collect())
    }
}

/// Events being written together: see [`Outbox::group`].
pub struct Group<'a> {
    store: &'a Outbox,
    batch: sled::Batch,
    /// Dedupe marks set earlier in this group, not yet visible to `get`.
    marks: std::collections::HashSet<Vec<u8>>,
    expiry: [u8; 8],
    now_ms: u64,
}

impl Group<'_> {
    /// Add one event's deliveries for the targets whose dedupe key is not marked within
    /// the window (on disk or earlier in this group), with their marks. `targets` holds
    /// (target name, dedupe key). Returns the event's seq and the positions in `targets`
    /// that got a delivery.
    pub fn add(
        &mut self,
        body: &Bytes,
        targets: &[(&str, String)],
    ) -> Result<(u64, Vec<usize>), OutboxError> {
        let store = self.store;
        // Everything that can fail comes first, so a failed event leaves nothing of
        // itself in the group's batch.
        let mut written = Vec::with_capacity(targets.len());
        let mut marks = Vec::with_capacity(targets.len());
        for (i, (target, dedupe)) in targets.iter().enumerate() {
            let mark = dedupe_key(target, dedupe);
            if self.marks.contains(&mark) || marks.contains(&mark) {
                continue;
            }
            if let Some(v) = store.db.get(&mark).map_err(|e| store.storage(e))? {
                let until = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
                if until > self.now_ms {
                    continue;
                }
            }
            written.push(i);
            marks.push(mark);
        }
        if written.is_empty() {
            return Ok((0, written));
        }
        let seq = store.db.generate_id().map_err(|e| store.storage(e))?;
        let record = Record::new(body.clone(), self.now_ms).encode();
        for (&i, mark) in written.iter().zip(marks) {
            self.batch
                .insert(key(State::Pending, targets[i].0, seq), record.as_slice());
            self.batch.insert(mark.as_slice(), &self.expiry);
            self.marks.insert(mark);
        }
        Ok((seq, written))
    }

    /// Write the group in one atomic batch. Not yet durable: call [`Outbox::flush`].
    pub fn commit(self) -> Result<(), OutboxError> {
        // Every delivery written sets a mark: no marks, nothing to write.
        if self.marks.is_empty() {
            return Ok(());
        }
        self.store
            .db
            .apply_batch(self.batch)
            .map_err(|e| self.store.storage(e))
    }
}

/// Open sled with a capped cache. sled reports a damaged store as an error (or, for
/// some corruptions, panics inside recovery): both become [`OutboxError::Corrupt`].
fn open_sled(path: &Path) -> Result<sled::Db, OutboxError> {
    let config = sled::Config::new()
        .path(path.join("db"))
        .cache_capacity(CACHE_BYTES);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    match result {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(e))) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(OutboxError::Open {
                path: path.to_owned(),
                source: e,
            })
        }
        Ok(Err(sled::Error::Io(e))) => Err(OutboxError::Open {
            path: path.to_owned(),
            source: e,
        }),
        Ok(Err(e)) => Err(OutboxError::Corrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        }),
        Err(_) => Err(OutboxError::Corrupt {
            path: path.to_owned(),
            detail: "recovery failed".into(),
        }),
    }
}

#[cfg(test)]
mod tests;
