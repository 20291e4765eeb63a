//! A full or failing disk: stop taking events, say so once, try again every second.
//!
//! Every storage error of the runtime comes through [`SledOutbox::failed`]: the first one
//! of an episode logs one ERROR line (what failed, where), turns `accepting` off (the
//! stream reader stops reading, `/ingest` and `/readyz` answer 503, the writable gauge
//! reads 0) and sends every worker to the disk. The recovery task then tries every second:
//! sled keeps its first I/O error and returns it from every later call, so after a write
//! error the database is closed and opened again from what is on disk (which also drops
//! whatever a failed batch left in memory only: dedupe marks without their deliveries);
//! then a probe write and flush, then the `min_free` and `max_size` guards. When all pass,
//! `accepting` is on again and the workers are woken.
//!
//! The guards are checked before each group is written (at most every 250 ms) and every
//! second meanwhile, so the relay stops taking events before the filesystem is full, not
//! after, and says so even while no event arrives.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::SledOutbox;
use crate::outbox::OutboxError;
use crate::shutdown::Shutdown;
use crate::telemetry::error_chain;

/// How often the guards are looked at while writing.
const GUARD_EVERY: Duration = Duration::from_millis(250);

/// How often recovery is tried.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The outbox's limits, from `[outbox]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Stop taking events when the filesystem has less free than this (0: no guard).
    pub min_free: u64,
    /// Stop taking events when the outbox is this large on disk.
    pub max_size: Option<u64>,
}

/// What the outbox knows about its own health.
pub(super) struct Health {
    /// Whether the store takes events now; watched by the source and the server.
    pub accepting: tokio::sync::watch::Sender<bool>,
    /// A write failed: the database must be reopened before it is trusted again.
    pub needs_reopen: std::sync::atomic::AtomicBool,
    /// The limits.
    pub limits: Limits,
    /// When the guards were last found fine.
    pub guards_ok_at: Mutex<Option<Instant>>,
    /// When the current episode began, for the recovery line.
    pub since: Mutex<Option<Instant>>,
}

impl Health {
    pub(super) fn new(limits: Limits) -> Health {
        Health {
            accepting: tokio::sync::watch::Sender::new(true),
            needs_reopen: std::sync::atomic::AtomicBool::new(false),
            limits,
            guards_ok_at: Mutex::new(None),
            since: Mutex::new(None),
        }
    }
}

impl SledOutbox {
    /// A storage operation failed (`during` says which): see the module doc. Returns the
    /// error for the caller to pass on.
    pub(super) fn failed(&self, during: &str, e: OutboxError) -> OutboxError {
        let s = &self.shared;
        if !matches!(e, OutboxError::Full { .. }) {
            s.health
                .needs_reopen
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        for slot in s.slots().iter() {
            slot.handoff.mark_incomplete();
        }
        if s.health.accepting.send_replace(false) {
            *s.health.since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            s.metrics.outbox_writable.set(0);
            tracing::error!(
                outbox = %s.store.path().display(),
                during,
                error = %error_chain(&e),
                "The outbox cannot store events: stopped taking them (stream paused, /ingest answers 503); trying again every second"
            );
        }
        e
    }

    /// The `min_free` and `max_size` guards, looked at no more than every 250 ms.
    pub(super) fn check_guards(&self) -> Result<(), OutboxError> {
        let h = &self.shared.health;
        let mut ok_at = h.guards_ok_at.lock().unwrap_or_else(|p| p.into_inner());
        if ok_at.is_some_and(|t| t.elapsed() < GUARD_EVERY) {
            return Ok(());
        }
        self.guards_now()?;
        *ok_at = Some(Instant::now());
        Ok(())
    }

    /// The guards, looked at now.
    fn guards_now(&self) -> Result<(), OutboxError> {
        let s = &self.shared;
        let limits = s.health.limits;
        let full = |detail: String| OutboxError::Full {
            path: s.store.path().to_owned(),
            detail,
        };
        if limits.min_free > 0 {
            let free = free_space(s.store.path()).map_err(|e| OutboxError::Storage {
                path: s.store.path().to_owned(),
                source: Box::new(e),
            })?;
            if free < limits.min_free {
                return Err(full(format!(
                    "{} free on its filesystem, less than min_free ({})",
                    mib(free),
                    mib(limits.min_free)
                )));
            }
        }
        if let Some(max) = limits.max_size {
            let size = s.store.size_on_disk()?;
            if size >= max {
                return Err(full(format!(
                    "it takes {} on disk, max_size is {}",
                    mib(size),
                    mib(max)
                )));
            }
        }
        Ok(())
    }

    /// Try to get back to storing, once. See the module doc.
    fn recover(&self) -> Result<(), OutboxError> {
        let s = &self.shared;
        let reopen = s
            .health
            .needs_reopen
            .load(std::sync::atomic::Ordering::SeqCst);
        if reopen {
            s.store.reopen()?;
            // Everything the reopened store holds came from disk, so it is durable: a
            // group whose flush failed but whose batch landed is now readable by the
            // workers (its events are duplicates when the intake retries them, so no
            // later commit would move the watermark past it).
            s.durable
                .fetch_max(s.store.watermark()?, std::sync::atomic::Ordering::Release);
            s.health
                .needs_reopen
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
        if let Err(e) = s.store.probe() {
            s.health
                .needs_reopen
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(e);
        }
        if reopen {
            // A body whose removal failed with the store is left behind: sweep it now,
            // as at start-up. Not needed to take events again, so a failure only waits
            // for the next start.
            if let Err(e) = s.store.sweep_bodies() {
                tracing::warn!(
                    error = %error_chain(&e),
                    "Could not remove event bodies that no pending delivery reads; the next start will"
                );
            }
        }
        self.guards_now()
    }

    /// Whenever the store stops taking events, try every second to recover.
    pub(super) async fn recovery(self, mut shutdown: Shutdown) {
        let mut accepting = self.shared.health.accepting.subscribe();
        loop {
            // While it takes events, the guards are also looked at every second: the
            // outbox grows without new events too (retry schedules, sled's own log), and
            // `/readyz` and the gauge must say so before the next event is refused.
            loop {
                tokio::select! {
                    _ = accepting.wait_for(|a| !*a) => break,
                    _ = tokio::time::sleep(RETRY_EVERY) => {}
                    _ = shutdown.wait() => return,
                }
                let this = self.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || this.check_guards()).await {
                    self.failed("checking the outbox's free space", e);
                }
            }
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_EVERY) => {}
                    _ = shutdown.wait() => return,
                }
                let this = self.clone();
                let tried = tokio::task::spawn_blocking(move || this.recover()).await;
                match tried {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %error_chain(&e), "The outbox cannot store events yet")
                    }
                    Err(_) => {}
                }
            }
            let s = &self.shared;
            let since = s
                .health
                .since
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            s.metrics.outbox_writable.set(1);
            s.health.accepting.send_replace(true);
            tracing::info!(
                outbox = %s.store.path().display(),
                after_s = since.map_or(0, |t| t.elapsed().as_secs()),
                "The outbox stores events again; taking events again"
            );
            for slot in s.slots().iter() {
                slot.wake.notify_one();
            }
        }
    }
}

/// Bytes free for an unprivileged writer on the filesystem holding `path`.
fn free_space(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` a buffer statvfs fills in.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled in `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// A size for a log line: `12.3 MiB`.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_space_reads_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        assert!(super::free_space(dir.path()).unwrap() > 0);
        assert!(super::free_space(std::path::Path::new("/no/such/dir")).is_err());
    }
}
