//! The fsync that sled's flush leaves out.
//!
//! sled 0.34's `flush` makes its log writes "stable" with `sync_file_range(WAIT_BEFORE |
//! WRITE | WAIT_AFTER)`: the pages reach the device, but the drive's write cache is not
//! flushed and the file's metadata (its size, for a log that grew) is not written, so a
//! power cut or a VM crash can lose what `flush` returned for. Its large values (over a
//! quarter of a segment: leaves holding whole event bodies can get there) go to files
//! under `blobs/` that it never syncs at all. Only its background flusher calls
//! `sync_all`, every 500 ms. `kill -9` is not affected (the kernel keeps the pages), a
//! power loss is.
//!
//! So every flush that an acknowledgement waits on (a group commit before `/ingest`
//! answers 202 or a first attempt, the instance marker, the probe, the admin commands)
//! goes through [`Synced::flush`]: sled's flush, then `fdatasync` of the log, of every blob
//! file not synced yet, and of the directories whose entries changed (the first time:
//! the store's directory, which holds the log's own entry and `conf`).
//!
//! It blocks: [`Synced::flush_async`] runs it off the async runtime (one hop, as sled's
//! own `flush_async` also made).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// sled's flush made durable. Cheap to clone: clones share which files were synced.
#[derive(Clone, Debug)]
pub(crate) struct Synced {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// sled's directory (the one given to `sled::Config::path`).
    dir: PathBuf,
    /// What was synced so far. One flush at a time: two concurrent flushes would only
    /// repeat each other's fdatasyncs.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// sled's log file (`<dir>/db`), opened on the first flush. Dropped after a failed
    /// sync, so the next flush opens it again.
    log: Option<File>,
    /// Whether the store's directory entries (`db`, `conf`, `blobs`) were synced.
    entries_synced: bool,
    /// Blob files already synced; sled writes a blob once and later removes it.
    blobs: HashSet<OsString>,
}

impl Synced {
    /// For the sled database at `dir`.
    pub(crate) fn new(dir: &Path) -> Synced {
        Synced {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                state: Mutex::default(),
            }),
        }
    }

    /// sled's flush, then fdatasync of what it wrote: when this returns `Ok`, everything
    /// written to `db` before the call survives a power loss.
    pub(crate) fn flush(&self, db: &sled::Db) -> Result<(), sled::Error> {
        db.flush()?;
        self.sync().map_err(sled::Error::Io)
    }

    /// [`Synced::flush`] on the blocking pool, for callers on the async runtime.
    pub(crate) async fn flush_async(&self, db: sled::Db) -> Result<(), sled::Error> {
        let synced = self.clone();
        tokio::task::spawn_blocking(move || synced.flush(&db))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    fn sync(&self) -> io::Result<()> {
        let dir = &self.inner.dir;
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let result = sync_files(dir, &mut state);
        if result.is_err() {
            // After a failed fdatasync the kernel may have dropped the dirty pages: what
            // was not synced is not trusted to a later sync of the same handle.
            *state = State::default();
        }
        result
    }
}

fn sync_files(dir: &Path, state: &mut State) -> io::Result<()> {
    let log = match &mut state.log {
        Some(log) => log,
        empty => empty.insert(File::open(dir.join("db"))?),
    };
    log.sync_data()?;
    let blobs_dir = dir.join("blobs");
    let mut blobs_added = false;
    match std::fs::read_dir(&blobs_dir) {
        Ok(entries) => {
            let mut present = HashSet::with_capacity(state.blobs.len());
            for entry in entries {
                let name = entry?.file_name();
                if !state.blobs.contains(&name) {
                    File::open(blobs_dir.join(&name))?.sync_data()?;
                    blobs_added = true;
                }
                present.insert(name);
            }
            state.blobs = present;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => state.blobs.clear(),
        Err(e) => return Err(e),
    }
    if blobs_added {
        sync_dir(&blobs_dir)?;
    }
    if !state.entries_synced {
        if let Ok(conf) = File::open(dir.join("conf")) {
            conf.sync_data()?;
        }
        sync_dir(dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        state.entries_synced = true;
    }
    Ok(())
}

/// fsync a directory: makes its entries (files created or removed in it) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_syncs_the_log_and_every_blob_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = sled::Config::new().path(&path).open().unwrap();
        let synced = Synced::new(&path);
        db.insert(b"small", &[1u8; 10]).unwrap();
        // Over a quarter of sled's 512 KiB segment: written as a blob file.
        db.insert(b"large", vec![7u8; 300 * 1024]).unwrap();
        synced.flush(&db).unwrap();
        let state = synced.inner.state.lock().unwrap();
        assert!(state.log.is_some(), "the log was synced");
        assert!(state.entries_synced, "the directory entries were synced");
        let on_disk: HashSet<OsString> = std::fs::read_dir(path.join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(!on_disk.is_empty(), "the large value went to a blob file");
        assert_eq!(state.blobs, on_disk, "every blob file was synced");
    }

    #[test]
    fn a_flush_whose_log_cannot_be_synced_fails_and_keeps_nothing_as_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = sled::Config::new().path(&path).open().unwrap();
        let synced = Synced::new(&path);
        synced.flush(&db).unwrap();
        // A store whose log cannot be opened (here: a Synced for a directory without
        // one) fails the flush instead of answering as if it were durable.
        let elsewhere = Synced::new(&dir.path().join("missing"));
        let err = elsewhere.flush(&db).unwrap_err();
        assert!(matches!(err, sled::Error::Io(ref e) if e.kind() == io::ErrorKind::NotFound));
        let state = elsewhere.inner.state.lock().unwrap();
        assert!(state.log.is_none() && !state.entries_synced);
    }
}
