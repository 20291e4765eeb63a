//! The sled database under the outbox: open (lock, damage checks), the key layout, and
//! the reads and writes the runtime and the admin commands are built from. The layout
//! and its invariants are in the [module doc](super).

use super::keys::{body_key, key, parse_key, prefix, target_prefix};
use super::record::{CorruptRecord, Record, SharedBody};
use crate::outbox::{OutboxError, State, Synced};
use std::fs::File;
use std::path::{Path, PathBuf};

/// How many locks serialise the removal of shared bodies (see `Store::bodies`).
const BODY_LOCKS: usize = 64;

/// sled's page cache: small, because the backlog is meant to live on disk, not in RAM.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

const LOCK_FILE: &str = "badger-relay.lock";

/// What [`Store::scan_pending`] found.
#[derive(Debug)]
pub(crate) struct Scan {
    /// The readable records, in seq order.
    pub items: Vec<(u64, Record)>,
    /// Keys looked at, readable or not.
    pub scanned: usize,
    /// The seq of the last key looked at.
    pub last: Option<u64>,
}

/// What [`Store::scanned`] made of one record a scan found.
#[derive(Debug)]
pub(crate) enum ScannedRecord {
    /// Pending, with its body.
    Pending(Record),
    /// Removed since the iterator read it (completed, dead-lettered or purged).
    Gone,
    /// Still there and unreadable.
    Unreadable(CorruptRecord),
}

/// A delivery read back from the store.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// Its target's name.
    pub target: String,
    /// Its seq (the event's).
    pub seq: u64,
    /// The record, or why this version cannot read it.
    pub record: Result<Record, CorruptRecord>,
}

/// The store. Cheap to clone: every clone is the same open database.
#[derive(Clone)]
pub(crate) struct Store {
    /// The sled tree holding everything (see the layout). Behind a lock because it is
    /// replaced by [`Store::reopen`] after a storage error (sled keeps its first I/O
    /// error and returns it from every later call of that database); `None` while that
    /// happens.
    db: std::sync::Arc<std::sync::RwLock<Option<sled::Db>>>,
    /// The outbox directory, for messages.
    path: PathBuf,
    /// Random, made with the store: the first half of every delivery id.
    instance: u64,
    /// Held for the life of the store: the advisory lock that keeps a second process out.
    _lock: std::sync::Arc<File>,
    /// The fdatasync that sled's flush leaves out (see fsync.rs): every flush goes
    /// through it.
    synced: Synced,
    /// Held while a target that has just removed its record of an event with a shared
    /// body looks for the event's other records, one lock per seq modulo
    /// [`BODY_LOCKS`] (so targets finishing different events do not wait on each
    /// other): whoever looks last must see that it is the last, and remove the body.
    /// Without it, two targets finishing the same event at once could each see the
    /// other's record still there and leave the body behind.
    bodies: std::sync::Arc<[std::sync::Mutex<()>; BODY_LOCKS]>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Open (or create) the store at `path`.
    pub(crate) fn open(path: &Path) -> Result<Store, OutboxError> {
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
        let synced = Synced::new(&path.join("db"));
        let storage = |source: sled::Error| OutboxError::Storage {
            path: path.to_owned(),
            source: Box::new(source),
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
                synced.flush(&db).map_err(storage)?;
                id
            }
        };
        Ok(Store {
            db: std::sync::Arc::new(std::sync::RwLock::new(Some(db))),
            path: path.to_owned(),
            instance,
            _lock: std::sync::Arc::new(lock),
            synced,
            bodies: std::sync::Arc::new(std::array::from_fn(|_| Default::default())),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open database (a cheap clone), or a storage error while it is being reopened.
    pub(super) fn db(&self) -> Result<sled::Db, OutboxError> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| OutboxError::Storage {
                path: self.path.clone(),
                source: "the outbox is being reopened after a storage error".into(),
            })
    }

    /// Close the database and open it again from what is on disk: the only way to clear
    /// sled's sticky I/O error, and to drop whatever a failed batch left in memory only.
    /// Fails (and is tried again later) while another clone of the old database is still
    /// in use, since sled locks its files. The store must be the same one.
    pub(crate) fn reopen(&self) -> Result<(), OutboxError> {
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        drop(slot.take());
        let db = open_sled(&self.path)?;
        let marker = db
            .get(b"m/instance")
            .map_err(|e| self.storage(e))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes);
        if marker != Some(self.instance) {
            return Err(OutboxError::Corrupt {
                path: self.path.clone(),
                detail: "its data did not come back after a storage error".into(),
            });
        }
        *slot = Some(db);
        Ok(())
    }

    /// Write and flush a probe key: whether the store can store right now.
    pub(crate) fn probe(&self) -> Result<(), OutboxError> {
        let db = self.db()?;
        db.insert(b"m/probe", &crate::outbox::now_ms().to_be_bytes())
            .map_err(|e| self.storage(e))?;
        self.synced.flush(&db).map_err(|e| self.storage(e))
    }

    /// The outbox's size on disk, as sled counts its files.
    pub(crate) fn size_on_disk(&self) -> Result<u64, OutboxError> {
        self.db()?.size_on_disk().map_err(|e| self.storage(e))
    }

    pub(super) fn storage(&self, source: sled::Error) -> OutboxError {
        OutboxError::Storage {
            path: self.path.clone(),
            source: Box::new(source),
        }
    }

    /// The id a target sees in `webhook-id`: stable for a delivery, unique across stores.
    pub(crate) fn delivery_id(&self, seq: u64) -> String {
        format!("msg_{:016x}{:016x}", self.instance, seq)
    }

    /// The seq inside a delivery id printed by `outbox list` (the full id, or the bare
    /// seq in decimal). A full id whose instance half is not this store's is refused:
    /// its seq would name some other delivery here.
    pub(crate) fn parse_delivery_id(&self, id: &str) -> Result<u64, crate::outbox::BadId> {
        use crate::outbox::BadId;
        let malformed = || BadId::Malformed(id.to_owned());
        let Some(hex) = id.strip_prefix("msg_") else {
            return id.parse().map_err(|_| malformed());
        };
        if hex.len() != 32 || !hex.is_ascii() {
            return Err(malformed());
        }
        let instance = u64::from_str_radix(&hex[..16], 16).map_err(|_| malformed())?;
        let seq = u64::from_str_radix(&hex[16..], 16).map_err(|_| malformed())?;
        if instance != self.instance {
            return Err(BadId::ForeignStore(id.to_owned()));
        }
        Ok(seq)
    }

    /// Make every write so far durable (sled's flush and an fdatasync, off the runtime).
    pub async fn flush(&self) -> Result<(), OutboxError> {
        let db = self.db()?;
        self.synced
            .flush_async(db)
            .await
            .map_err(|e| self.storage(e))
    }

    /// Blocking flush, for shutdown and admin commands.
    pub(crate) fn flush_blocking(&self) -> Result<(), OutboxError> {
        let db = self.db()?;
        self.synced.flush(&db).map_err(|e| self.storage(e))
    }

    #[cfg(test)]
    /// Up to `limit` pending deliveries of `target` with `after < seq <= upto`, in order.
    pub(crate) fn pending(
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
    pub(crate) fn scan_pending(
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
        let db = self.db()?;
        for item in db.range(start..=end).take(limit) {
            let (k, v) = item.map_err(|e| self.storage(e))?;
            scan.scanned += 1;
            let Some((_, _, seq)) = parse_key(&k) else {
                continue;
            };
            scan.last = Some(seq);
            match self.scanned(&db, &k, seq, &v)? {
                ScannedRecord::Pending(r) => scan.items.push((seq, r)),
                ScannedRecord::Gone => {
                    tracing::debug!(
                        target = target,
                        seq,
                        "A delivery read back was completed meanwhile"
                    );
                }
                ScannedRecord::Unreadable(e) => {
                    // Left in place (nothing is deleted silently): `outbox list` shows it
                    // and `outbox purge` removes it.
                    tracing::error!(target = target, seq, error = %e, "Skipping an unreadable delivery record");
                }
            }
        }
        Ok(scan)
    }

    /// One pending record as a scan found it: readable, unreadable, or gone since.
    ///
    /// sled's iterators are not snapshots (one serves the rest of a leaf from a copy it
    /// took), so a scan can hand over a record that a completion has removed since, and
    /// with it, if it was the event's last delivery, the shared body. That record is
    /// not unreadable: it is done. Only a record still there when its body is found
    /// missing is reported as unreadable.
    pub(super) fn scanned(
        &self,
        db: &sled::Db,
        k: &[u8],
        seq: u64,
        value: &[u8],
    ) -> Result<ScannedRecord, OutboxError> {
        Ok(match self.readable(db, seq, value)? {
            Ok(r) => ScannedRecord::Pending(r),
            Err(_) if !db.contains_key(k).map_err(|e| self.storage(e))? => ScannedRecord::Gone,
            Err(e) => ScannedRecord::Unreadable(e),
        })
    }

    /// A stored pending or dead value as a record with its body: a format-3 record's
    /// comes from the event's shared body, and is unreadable if that is missing.
    ///
    /// `db` is the caller's: a scan must read the body from the same database as the
    /// record (and must not wait on the store's lock while its iterator holds sled's).
    pub(super) fn readable(
        &self,
        db: &sled::Db,
        seq: u64,
        value: &[u8],
    ) -> Result<Result<Record, CorruptRecord>, OutboxError> {
        let mut record = match Record::decode(value) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if record.shared {
            let Some(v) = db.get(body_key(seq)).map_err(|e| self.storage(e))? else {
                return Ok(Err(CorruptRecord::new("its shared body is missing")));
            };
            // The names are only walked past: a read needs the body alone.
            match SharedBody::targets(&v) {
                Ok((_, at)) => record.body = bytes::Bytes::copy_from_slice(&v[at..]),
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(record))
    }

    /// The target answered 2xx: the delivery leaves the outbox (and its event's shared
    /// body with it, if it was the last to read it).
    pub(crate) fn complete(&self, target: &str, seq: u64) -> Result<(), OutboxError> {
        self.leave_pending(target, seq, None)
    }

    /// Remove `target`'s pending record of `seq` (in one batch with `dead`, its dead
    /// letter, if it has one), then the event's shared body if no other target's
    /// pending record reads it any more.
    ///
    /// Plain removes, not a batch: sled 0.34's `apply_batch` takes its global write lock
    /// and seals a batch in the log: one per delivery cost 2.5 times the CPU and 20 to
    /// 50 times the disk writes of a remove (bench, 50k events). The price: a crash
    /// between the last record's remove and its body's leaves the body behind, unread;
    /// [`Store::sweep_bodies`] removes it later.
    fn leave_pending(
        &self,
        target: &str,
        seq: u64,
        dead: Option<&Record>,
    ) -> Result<(), OutboxError> {
        let db = self.db()?;
        let storage = |e| self.storage(e);
        let pending = key(State::Pending, target, seq);
        let body = body_key(seq);
        let leave = || match dead {
            Some(record) => Self::bury(&db, &pending, target, seq, record),
            None => db.remove(&pending).map(drop),
        };
        // An event with one delivery has no shared body: no lock, one read.
        let Some(stored) = db.get(body).map_err(storage)? else {
            return leave().map_err(storage);
        };
        leave().map_err(storage)?;
        // An unreadable body is kept, for `outbox verify` to name.
        let Ok((names, _)) = SharedBody::targets(&stored) else {
            return Ok(());
        };
        // Each target removes its record before it takes the lock, so whichever looks
        // last, in the lock's order, sees every other record gone. After a crash sled
        // recovers a prefix of its log, in the order the writes took effect, so a store
        // that lost a record's remove has lost the body's remove that came after it.
        let _last = self.bodies[(seq % BODY_LOCKS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for other in names.into_iter().filter(|&n| n != target) {
            if db
                .contains_key(key(State::Pending, other, seq))
                .map_err(storage)?
            {
                return Ok(());
            }
        }
        db.remove(body).map_err(storage)?;
        Ok(())
    }

    /// Move `pending` to the dead letters, in one batch.
    fn bury(
        db: &sled::Db,
        pending: &[u8],
        target: &str,
        seq: u64,
        record: &Record,
    ) -> Result<(), sled::Error> {
        let mut batch = sled::Batch::default();
        batch.remove(pending);
        batch.insert(key(State::Dead, target, seq), record.encode());
        db.apply_batch(batch)
    }

    /// Remove the shared bodies no pending record can read: those below the lowest
    /// pending seq of every target (all of them when nothing is pending), and say how
    /// many went. Run when `run` opens the store and after a reopen, it clears what a
    /// crash (or a failed remove) between a last delivery and its body's removal left;
    /// one left above some target's oldest pending delivery goes at a later sweep.
    ///
    /// Nothing is swept when a malformed pending key hides which targets have deliveries
    /// (`outbox verify` names it): a body one of them still reads must not go.
    pub(super) fn sweep_bodies(&self) -> Result<u64, OutboxError> {
        let (oldest, complete) = self.oldest_per_target(State::Pending)?;
        if !complete {
            return Ok(0);
        }
        let lowest = oldest.into_iter().map(|(_, seq)| seq).min();
        let db = self.db()?;
        let storage = |e| self.storage(e);
        let mut swept = 0;
        let upto = lowest.map(body_key);
        let below = match &upto {
            Some(upto) => db.range(&b"b/"[..]..&upto[..]),
            None => db.scan_prefix(b"b/"),
        };
        for k in below.keys() {
            db.remove(k.map_err(storage)?).map_err(storage)?;
            swept += 1;
        }
        if swept > 0 {
            tracing::info!(swept, "Removed event bodies that no pending delivery reads");
        }
        Ok(swept)
    }

    /// Store the retry state (attempts, next attempt, last error) of a pending delivery.
    /// A record whose body is shared stays so: the body is not written again.
    pub(crate) fn reschedule(
        &self,
        target: &str,
        seq: u64,
        record: &Record,
    ) -> Result<(), OutboxError> {
        let db = self.db()?;
        let k = key(State::Pending, target, seq);
        let was = db.get(&k).map_err(|e| self.storage(e))?;
        let shared = was.is_some_and(|v| Record::is_shared(&v));
        let record = Record {
            shared,
            ..record.clone()
        };
        db.insert(k, record.encode())
            .map(drop)
            .map_err(|e| self.storage(e))
    }

    /// Move a pending delivery to the dead letters, in one batch. Not flushed at once:
    /// after a crash it is at worst pending again and gets one more attempt. A dead
    /// letter keeps its own copy of the body: it may outlive the event's other
    /// deliveries by days, and `outbox retry` moves it back on its own.
    pub(crate) fn dead_letter(
        &self,
        target: &str,
        seq: u64,
        record: &Record,
    ) -> Result<(), OutboxError> {
        let dead = Record {
            shared: false,
            ..record.clone()
        };
        self.leave_pending(target, seq, Some(&dead))
    }

    /// Every delivery in `state`, optionally of one target, in key order.
    pub(crate) fn list(
        &self,
        state: State,
        target: Option<&str>,
    ) -> impl Iterator<Item = Result<Stored, OutboxError>> + '_ {
        let prefix = match target {
            Some(t) => target_prefix(state, t),
            None => vec![prefix(state), b'/'],
        };
        let (items, failed) = match self.db() {
            Ok(db) => (Some((db.scan_prefix(prefix), db)), None),
            Err(e) => (None, Some(Err(e))),
        };
        failed
            .into_iter()
            .chain(items.into_iter().flat_map(move |(items, db)| {
                items.filter_map(move |item| {
                    let (k, v) = match item {
                        Ok(kv) => kv,
                        Err(e) => return Some(Err(self.storage(e))),
                    };
                    let (_, target, seq) = parse_key(&k)?;
                    // An unreadable record is listed (so it can be seen and purged), not fatal.
                    Some(self.readable(&db, seq, &v).map(|record| Stored {
                        target: target.to_owned(),
                        seq,
                        record,
                    }))
                })
            }))
    }

    /// Count up to `limit` keys in `from..=end`: how many, and the seq of the last.
    pub(crate) fn count_keys(
        &self,
        from: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    ) -> Result<(usize, u64), OutboxError> {
        let (mut n, mut last) = (0, 0);
        for item in self.db()?.range(from..=end).keys().take(limit) {
            let k = item.map_err(|e| self.storage(e))?;
            n += 1;
            if let Some((_, _, seq)) = parse_key(&k) {
                last = seq;
            }
        }
        Ok((n, last))
    }

    /// Count pending and dead deliveries per target name.
    pub(crate) fn stats(
        &self,
    ) -> Result<std::collections::BTreeMap<String, (u64, u64)>, OutboxError> {
        let mut out = std::collections::BTreeMap::<String, (u64, u64)>::new();
        for prefix in [b"p/", b"d/"] {
            for item in self.db()?.scan_prefix(prefix) {
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

    /// Move dead letters back to pending with a fresh retry budget: all of them, those of
    /// one target, or those with the given seqs (an event's deliveries to several targets
    /// share its seq: `target` narrows it). Returns what moved. Unreadable records stay.
    pub(crate) fn retry_dead(
        &self,
        target: Option<&str>,
        seqs: &[u64],
    ) -> Result<Vec<(String, u64)>, OutboxError> {
        let now = crate::outbox::now_ms();
        let mut moved = Vec::new();
        let dead: Vec<Stored> = self.list(State::Dead, target).collect::<Result<_, _>>()?;
        for d in dead {
            let Ok(record) = d.record else { continue };
            if !seqs.is_empty() && !seqs.contains(&d.seq) {
                continue;
            }
            let fresh = Record::new(record.body, now);
            let mut batch = sled::Batch::default();
            batch.remove(key(State::Dead, &d.target, d.seq));
            batch.insert(key(State::Pending, &d.target, d.seq), fresh.encode());
            self.db()?.apply_batch(batch).map_err(|e| self.storage(e))?;
            moved.push((d.target, d.seq));
        }
        self.flush_blocking()?;
        Ok(moved)
    }

    /// Delete deliveries (dead letters with `dead`, else pending ones, with the shared
    /// bodies no pending record reads any more). Returns the count.
    pub(crate) fn purge(&self, state: State, target: Option<&str>) -> Result<u64, OutboxError> {
        let keys: Vec<(String, u64)> = self
            .list(state, target)
            .map(|s| s.map(|s| (s.target, s.seq)))
            .collect::<Result<_, _>>()?;
        for (target, seq) in &keys {
            match state {
                State::Pending => self.leave_pending(target, *seq, None)?,
                State::Dead => {
                    self.db()?
                        .remove(key(state, target, *seq))
                        .map_err(|e| self.storage(e))?;
                }
            }
        }
        self.flush_blocking()?;
        Ok(keys.len() as u64)
    }

    /// Remove dedupe marks that expired before `now_ms`. Returns how many.
    pub(crate) fn sweep_dedupe(&self, now_ms: u64) -> Result<u64, OutboxError> {
        let mut removed = 0;
        for item in self.db()?.scan_prefix(b"k/") {
            let (k, v) = item.map_err(|e| self.storage(e))?;
            let until = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
            if until <= now_ms {
                // Compare-and-swap so a mark refreshed meanwhile is kept.
                if let Ok(Ok(())) = self.db()?.compare_and_swap(&k, Some(v), None::<&[u8]>) {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// A seq greater than every seq already stored: where the durable watermark starts,
    /// since whatever a previous run left on disk is already durable.
    pub(crate) fn watermark(&self) -> Result<u64, OutboxError> {
        self.db()?.generate_id().map_err(|e| self.storage(e))
    }

    /// Target names that have pending or dead deliveries: one seek per target found, not
    /// a scan of every delivery (start-up must not wait on a large backlog).
    pub(crate) fn targets_with_deliveries(&self) -> Result<Vec<String>, OutboxError> {
        let mut names = std::collections::BTreeSet::new();
        for state in [State::Pending, State::Dead] {
            let (oldest, _) = self.oldest_per_target(state)?;
            names.extend(oldest.into_iter().map(|(t, _)| t));
        }
        Ok(names.into_iter().collect())
    }

    /// Each target with a delivery in `state`, with its lowest seq there: one seek per
    /// target, since a target's keys are in seq order. The flag is false when a
    /// malformed key ended the walk early: then the list may be missing targets.
    fn oldest_per_target(&self, state: State) -> Result<(Vec<(String, u64)>, bool), OutboxError> {
        let mut oldest = Vec::new();
        let mut from = vec![prefix(state), b'/'];
        let end = vec![prefix(state), b'/' + 1];
        while let Some(item) = self.db()?.range(from.clone()..end.clone()).next() {
            let (k, _) = item.map_err(|e| self.storage(e))?;
            let Some((_, target, seq)) = parse_key(&k) else {
                return Ok((oldest, false));
            };
            oldest.push((target.to_owned(), seq));
            // Past every key of this target: its prefix with the separator bumped.
            from = target_prefix(state, target);
            *from.last_mut().expect("a prefix ends with its separator") = 1;
        }
        Ok((oldest, true))
    }
}

/// Open sled with a capped cache. sled reports a damaged store as an error (or, for
/// some corruptions, panics inside recovery): both become [`OutboxError::Corrupt`].
/// How long opening waits for this process's previous sled instance to release its lock.
const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn open_sled(path: &Path) -> Result<sled::Db, OutboxError> {
    let config = sled::Config::new()
        .path(path.join("db"))
        .cache_capacity(CACHE_BYTES);
    let open = || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    let mut result = open();
    // The store's own lock is held, so no other process or store has these files: a
    // sled lock still taken is this process's previous `Db` (a reopen after a full
    // disk, a store just dropped) whose background flusher has not let go yet. It
    // does within its flush interval.
    let deadline = std::time::Instant::now() + SLED_LOCK_WAIT;
    while matches!(&result, Ok(Err(sled::Error::Io(e))) if e.to_string().contains("could not acquire lock"))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
        result = open();
    }
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
