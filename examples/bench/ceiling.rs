//! The ceiling: the same stream and receiver joined by the least a relay can be, and the
//! floor with sled: the same forwarder keeping each event in sled the way the relay must.
//!
//! A tokio-tungstenite client reads frames and POSTs each one to every target with
//! reqwest, at most `concurrency` requests in flight per target, doing no routing,
//! dedupe or retry. Without a store ([`Keep::Nothing`]), what it reaches is what this
//! machine can move from the stream server to the receiver at all; the relay's figure is
//! reported as a ratio of it.
//!
//! With [`Keep::Sled`] (issue 13's floor for throughput and latency), every frame is first
//! made durable as the relay's guarantees require at least, and nothing more: frames that
//! arrive together are committed as one group (per event a dedupe lookup and mark, the body
//! once and one small record per target, one `apply_batch`, sled's `flush` and an
//! `fdatasync` of sled's log), the group is sent only after that, and each 2xx removes its
//! target's record (and the body with the last one) without a flush, as the relay does.
//! What is left out is everything the relay adds on top: routing, templates, retry
//! schedules, the handoff and reading back, metrics, the second sync of new blob files.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::Message;

/// The relay's sled cache (`src/outbox/sled/store.rs` `CACHE_BYTES`).
const CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// The relay's largest commit group (`src/outbox/inbox.rs` `GROUP_MAX`).
const GROUP_MAX: usize = 1024;
/// The relay's intake channel (`src/app.rs` `INTAKE_CAPACITY`).
const INTAKE_CAPACITY: usize = 4096;

#[derive(Debug, Default)]
pub struct ForwardStats {
    pub forwarded: AtomicU64,
    pub errors: AtomicU64,
}

/// What the forwarder keeps on disk.
#[derive(Debug, Clone)]
pub enum Keep {
    /// Nothing: the ceiling.
    Nothing,
    /// Every event, in a sled database in this directory: the floor with sled.
    Sled(PathBuf),
}

/// `bench sled-floor DIR STREAM_URL CONCURRENCY TARGET_URL...`: the floor with sled as a
/// process of its own, as the relay is one (its own runtime, CPU time, peak RSS and disk
/// writes, read from `/proc` like the relay's). It forwards until SIGTERM, then exits 0.
pub fn floor_process(args: &[String]) -> anyhow::Result<()> {
    let [dir, stream_url, concurrency, targets @ ..] = args else {
        anyhow::bail!("usage: bench sled-floor DIR STREAM_URL CONCURRENCY TARGET_URL...");
    };
    badger_relay::allocator::return_freed_memory_at_once();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stats = Arc::new(ForwardStats::default());
        let keep = Keep::Sled(PathBuf::from(dir));
        let forward = spawn(
            stream_url.clone(),
            targets.to_vec(),
            concurrency.parse()?,
            stats.clone(),
            keep,
        );
        tokio::select! {
            _ = term.recv() => Ok(()),
            done = forward => {
                done??;
                anyhow::bail!("the stream ended before SIGTERM: {stats:?}")
            }
        }
    })
}

/// The targets' URLs, each with its `concurrency` permits.
type Lanes = Vec<(reqwest::Url, Arc<Semaphore>)>;

/// Connect to `stream_url` and forward until the stream closes; then wait for the
/// requests in flight. The task's result is an error only if it could not connect or the
/// store failed.
pub fn spawn(
    stream_url: String,
    targets: Vec<String>,
    concurrency: usize,
    stats: Arc<ForwardStats>,
    keep: Keep,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()?;
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("{stream_url}?api_key=bench")).await?;
        let lanes: Lanes = targets
            .iter()
            .map(|t| Ok((t.parse()?, Arc::new(Semaphore::new(concurrency)))))
            .collect::<anyhow::Result<_>>()?;
        let sender = Sender {
            client,
            lanes,
            stats,
        };
        match keep {
            Keep::Nothing => {
                let mut in_flight = JoinSet::new();
                while let Some(Ok(message)) = ws.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    sender.send(Bytes::from(text), None, &mut in_flight).await?;
                }
                while in_flight.join_next().await.is_some() {}
            }
            Keep::Sled(dir) => {
                let spool = Arc::new(Spool::open(&dir, sender.lanes.len())?);
                let (tx, rx) = mpsc::channel(INTAKE_CAPACITY);
                let committer = tokio::spawn(commit_and_send(spool, rx, sender));
                let mut seq = 0;
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Text(text) = message {
                        tx.send((seq, Bytes::from(text))).await?;
                        seq += 1;
                    }
                }
                drop(tx);
                committer.await??;
            }
        }
        Ok(())
    })
}

/// The requests to every target: the client, each target's lane, the counters.
struct Sender {
    client: reqwest::Client,
    lanes: Lanes,
    stats: Arc<ForwardStats>,
}

impl Sender {
    /// POST `body` to every target, waiting for a permit of each; with `done`, each 2xx
    /// completes that target's delivery in the spool.
    async fn send(
        &self,
        body: Bytes,
        done: Option<(&Arc<Spool>, Arc<Event>)>,
        in_flight: &mut JoinSet<()>,
    ) -> anyhow::Result<()> {
        for (target, (url, lane)) in self.lanes.iter().enumerate() {
            let permit = lane.clone().acquire_owned().await?;
            let request = self
                .client
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send();
            let stats = self.stats.clone();
            let done = done
                .as_ref()
                .map(|(spool, e)| (Arc::clone(spool), e.clone()));
            in_flight.spawn(async move {
                let ok = matches!(request.await, Ok(r) if r.status().is_success());
                // The relay removes a delivered record on the worker, without a flush.
                let kept = match (ok, done) {
                    (true, Some((spool, event))) => spool.complete(&event, target),
                    _ => Ok(()),
                };
                drop(permit);
                let counter = if ok && kept.is_ok() {
                    &stats.forwarded
                } else {
                    &stats.errors
                };
                counter.fetch_add(1, Ordering::Relaxed);
            });
        }
        // Reap finished requests so the set does not grow with the run.
        while in_flight.try_join_next().is_some() {}
        Ok(())
    }
}

/// Commit what has arrived as one group and hand it to the sender, until the stream ends:
/// as in the relay, the next group is committed while the last one is being sent.
async fn commit_and_send(
    spool: Arc<Spool>,
    mut rx: mpsc::Receiver<(u64, Bytes)>,
    sender: Sender,
) -> anyhow::Result<()> {
    let (committed, mut to_send) = mpsc::unbounded_channel::<Vec<(Bytes, Arc<Event>)>>();
    let sending = {
        let spool = spool.clone();
        tokio::spawn(async move {
            let mut in_flight = JoinSet::new();
            while let Some(events) = to_send.recv().await {
                for (body, event) in events {
                    sender
                        .send(body, Some((&spool, event)), &mut in_flight)
                        .await?;
                }
            }
            while in_flight.join_next().await.is_some() {}
            anyhow::Ok(())
        })
    };
    let mut group = Vec::with_capacity(GROUP_MAX);
    while rx.recv_many(&mut group, GROUP_MAX).await > 0 {
        let committing = spool.clone();
        let events = tokio::task::spawn_blocking(move || committing.commit(group)).await??;
        committed.send(events)?;
        group = Vec::with_capacity(GROUP_MAX);
    }
    drop(committed);
    sending.await?
}

/// An event in the spool: its sequence number and how many targets still have it.
struct Event {
    seq: u64,
    left: AtomicUsize,
}

/// sled, configured as the relay configures it, with the relay's key layout
/// (`src/outbox/sled/keys.rs`): per delivery a pending record `p/<target>\0<seq>` and a
/// dedupe mark `k/<target>\0<key>`; with one target the body is in the record, with
/// several it is written once as `b/<seq>` and the records are small.
struct Spool {
    db: sled::Db,
    /// sled's log file, `fdatasync`ed after each group's flush.
    log: std::fs::File,
    /// The targets' names as in the relay's keys: `t1`, `t2`...
    targets: Vec<String>,
}

/// A pending record's fixed part in the relay (`record.rs` `FIXED`: version, attempts,
/// due, accepted).
const RECORD_HEADER: usize = 1 + 4 + 8 + 8;

impl Spool {
    fn open(dir: &std::path::Path, targets: usize) -> anyhow::Result<Spool> {
        let path = dir.join("db");
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let log = std::fs::File::open(path.join("db"))?;
        let targets = (1..=targets).map(|i| format!("t{i}")).collect();
        Ok(Spool { db, log, targets })
    }

    /// One group: per delivery a dedupe lookup, a mark and a record, the body once; one
    /// batch, sled's flush, `fdatasync` of the log.
    fn commit(&self, group: Vec<(u64, Bytes)>) -> anyhow::Result<Vec<(Bytes, Arc<Event>)>> {
        let mut batch = sled::Batch::default();
        let mut events = Vec::with_capacity(group.len());
        let expires = u64::MAX.to_be_bytes();
        for (n, body) in group {
            let seq = self.db.generate_id()?;
            let shared = self.targets.len() > 1;
            let mut record = vec![0u8; RECORD_HEADER];
            if shared {
                batch.insert(&key(b"b/", None, seq)[..], &body[..]);
            } else {
                record.extend_from_slice(&body);
            }
            for target in &self.targets {
                let mark = key(b"k/", Some(target), n);
                anyhow::ensure!(self.db.get(&mark)?.is_none(), "event {n} seen twice");
                batch.insert(mark, &expires);
                batch.insert(key(b"p/", Some(target), seq), &record[..]);
            }
            let left = AtomicUsize::new(self.targets.len());
            events.push((body, Arc::new(Event { seq, left })));
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        self.log.sync_data()?;
        Ok(events)
    }

    /// Target number `target` has `event`: its record goes, and a shared body with the
    /// last one.
    fn complete(&self, event: &Event, target: usize) -> sled::Result<()> {
        self.db
            .remove(key(b"p/", Some(&self.targets[target]), event.seq))?;
        if event.left.fetch_sub(1, Ordering::AcqRel) == 1 && self.targets.len() > 1 {
            self.db.remove(key(b"b/", None, event.seq))?;
        }
        Ok(())
    }
}

/// `kind`, then the target's name and a NUL when there is one, then `seq` big-endian.
/// A mark's key ends in the event's number, where the relay's ends in its dedupe key.
fn key(kind: &[u8; 2], target: Option<&str>, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + target.map_or(0, |t| t.len() + 1) + 8);
    key.extend_from_slice(kind);
    if let Some(t) = target {
        key.extend_from_slice(t.as_bytes());
        key.push(0);
    }
    key.extend_from_slice(&seq.to_be_bytes());
    key
}
