//! The shared outbox: deliveries wait in NATS JetStream, where several replicas take
//! them from one durable consumer per target.
//!
//! # Flow
//! `enqueue` writes each event into the local spool (a sled tree in `[outbox] path`,
//! flushed: durable when it returns). The publisher (`publish.rs`) sends every
//! (event, target) delivery of the spool to the stream, in spool order, and removes an
//! event from the spool once JetStream acknowledged all its deliveries; `enqueue` waits
//! for that (up to [`PUBLISH_WAIT`]) while the engine is connected. While NATS is
//! unreachable events wait in the spool and are published when it is back.
//! Each target's worker reads its consumer (`consume.rs`) and answers per delivery:
//! `complete` acks, `retry_at` NAKs with the delay until the next attempt (the server
//! redelivers it then, maybe to another replica), `dead_letter` publishes a copy to the
//! dead-letter stream and then acks.
//!
//! # Names
//! ```text
//! stream        <stream>                 subjects <stream>.d.<token>     Limits retention
//! dead letters  <stream>_DEAD            subjects <stream>_DEAD.d.<token>
//! consumer      <token> on <stream>      durable, pull, explicit ack, filter <stream>.d.<token>
//! message id    <target>:<dedupe key>    Nats-Msg-Id of a delivery
//! ```
//! `<token>` is the target's name with every character other than a letter, digit or
//! `-` written as `_XX` (its hex byte), so it contains no `.`, `*` or `>` and maps back.
//!
//! # Invariants
//! - Every (event, target) delivery has one message id, so the copies two replicas
//!   publish, a re-publish after reconnect, the same tweet from two monitors and the
//!   same event by `/ingest` are one message within the duplicate window
//!   (`duplicate_window` = `dedupe_window`).
//! - Limits retention with `discard = new` and a `max_age` longer than the dedupe window
//!   and every `retry.max_age`: nothing but age removes a message, and no age removes
//!   one that is still pending. (A work-queue stream forgets its dedupe ids on restart.)
//! - An event leaves the spool only after JetStream acknowledged all its deliveries.
//! - The webhook-id (header `Badger-Id`) is derived from the stream and the message id,
//!   so every replica and every retry sends the same one.
//! - One consumer per target, `max_ack_pending` = `concurrency`: with `concurrency = 1`
//!   one delivery is out at a time across replicas, which keeps arrival order. A
//!   delivery held longer than `ack_wait / 3` gets in-progress signals.
//! - Dead letters are decided by the relay (attempts, age), never by `max_deliver`.
//!
//! # Files
//! `connect.rs` the connection (auth, version and JetStream checks) and the health probe
//! behind `engine_connected` and the gauges, `names.rs` names,
//! headers and ids, `spool.rs` the local spool, `publish.rs` the streams and the
//! publisher, `consume.rs` a target's consumer and its deliveries, `admin.rs` the
//! `outbox` commands.

mod admin;
mod connect;
mod consume;
mod names;
mod publish;
mod spool;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::{Notify, watch};

pub(crate) use self::admin::NatsAdmin;
pub(crate) use self::connect::client_options;
use self::consume::{NatsHandle, NatsQueue};
use self::names::Names;
use self::spool::Spool;
use super::{Delivery, Enqueued, Outbox, OutboxError, Routed};
use crate::config::{Config, NatsConfig};
use crate::failure::{DeadLetter, Failure};
use crate::shutdown::Shutdown;
use crate::telemetry::Metrics;

/// How long `enqueue` waits for JetStream's acks before it answers from the spool alone.
const PUBLISH_WAIT: Duration = Duration::from_secs(10);

/// The running NATS outbox. Cheap to clone.
#[derive(Clone)]
pub(crate) struct NatsOutbox {
    /// Everything the clones share.
    shared: Arc<Shared>,
}

/// The state behind a [`NatsOutbox`].
struct Shared {
    /// The JetStream context on the one connection.
    js: jetstream::Context,
    /// Stream, subject and consumer names.
    names: Names,
    /// `[outbox.nats]`.
    config: NatsConfig,
    /// Per configured target, by index: its name and `concurrency`.
    targets: Vec<(String, usize)>,
    /// Events not yet acknowledged by JetStream.
    spool: Spool,
    /// The highest spool seq whose deliveries JetStream acknowledged.
    published: watch::Sender<u64>,
    /// Per spool seq (up to `published`): targets JetStream called a duplicate.
    duplicates: Mutex<HashMap<u64, Vec<usize>>>,
    /// Wakes the publisher when the spool has something new.
    wake: Notify,
    /// Whether the connection to NATS is up.
    connected: watch::Sender<bool>,
    /// Whether the spool takes events.
    accepting: watch::Sender<bool>,
    /// Gauges and counters.
    metrics: Arc<Metrics>,
    /// Stops the background tasks.
    shutdown: Shutdown,
}

impl NatsOutbox {
    /// Open the spool, connect (waiting for a server that is down, failing at once on
    /// a config problem), make sure both streams exist, and start the publisher.
    pub(crate) async fn start(
        config: &Config,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> anyhow::Result<NatsOutbox> {
        let nats = config
            .outbox
            .nats
            .clone()
            .expect("backend = \"nats\" comes with [outbox.nats]");
        let spool = Spool::open(&config.outbox.path)?;
        let connected = watch::Sender::new(false);
        metrics
            .engine
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let client = connect::connect(&nats, connected.clone(), metrics.clone()).await?;
        let js = jetstream::new(client);
        let names = Names::new(&nats.stream);
        publish::ensure_streams(&js, &names, &config.outbox, &config.targets, nats.replicas)
            .await?;
        let pending = spool.len() as i64;
        metrics.spool_pending.set(pending);
        if pending > 0 {
            tracing::info!(
                events = pending,
                "The spool holds events from a previous run; publishing them"
            );
        }
        let shared = Arc::new(Shared {
            js,
            names,
            targets: config
                .targets
                .iter()
                .map(|t| (t.name.clone(), t.concurrency.max(1)))
                .collect(),
            config: nats,
            spool,
            published: watch::Sender::new(0),
            duplicates: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            connected,
            accepting: watch::Sender::new(true),
            metrics,
            shutdown,
        });
        let outbox = NatsOutbox { shared };
        tokio::spawn(publish::run(outbox.shared.clone()));
        tokio::spawn(connect::watch_health(outbox.shared.clone()));
        Ok(outbox)
    }

    /// Where the outbox is, for the start-up line.
    pub(crate) fn place(&self) -> String {
        let s = &self.shared;
        let urls: Vec<String> = s.config.urls.iter().map(|u| u.redacted()).collect();
        format!(
            "nats {} stream {} (spool {})",
            urls.join(","),
            s.names.stream,
            s.spool.path().display()
        )
    }
}

impl Outbox for NatsOutbox {
    type Handle = NatsHandle;
    type Queue = NatsQueue;

    async fn enqueue(&self, group: &[Routed]) -> Result<Vec<Enqueued>, OutboxError> {
        let s = &self.shared;
        let names: Vec<&str> = s.targets.iter().map(|(n, _)| n.as_str()).collect();
        let seqs = s.spool.add(group, &names).await?;
        let added = seqs.iter().flatten().count() as i64;
        s.metrics.spool_pending.add(added);
        s.wake.notify_one();
        let last = seqs.iter().flatten().max().copied();
        if let Some(last) = last
            && *s.connected.borrow()
        {
            let mut published = s.published.subscribe();
            // Answer once JetStream holds them; else the spool holds them (durable too).
            let _ = tokio::time::timeout(PUBLISH_WAIT, published.wait_for(|p| *p >= last)).await;
        }
        let mut duplicates = s.duplicates.lock().unwrap_or_else(|e| e.into_inner());
        Ok(group
            .iter()
            .zip(seqs)
            .map(|(routed, seq)| {
                let dup = seq
                    .and_then(|seq| duplicates.remove(&seq))
                    .unwrap_or_default();
                Enqueued {
                    written: routed
                        .deliveries
                        .iter()
                        .map(|(t, _)| *t)
                        .filter(|t| !dup.contains(t))
                        .collect(),
                    duplicates: dup,
                }
            })
            .collect())
    }

    fn queue(self: Arc<Self>, target: usize) -> NatsQueue {
        NatsQueue::start(self.shared.clone(), target)
    }

    async fn complete(&self, _target: usize, d: &Delivery<NatsHandle>) -> Result<(), OutboxError> {
        d.handle.ack().await
    }

    async fn retry_at(
        &self,
        _target: usize,
        d: &Delivery<NatsHandle>,
        _failure: &Failure,
    ) -> Result<(), OutboxError> {
        let delay = d.next_attempt_ms.saturating_sub(super::now_ms());
        d.handle.nak(Duration::from_millis(delay)).await
    }

    async fn dead_letter(
        &self,
        target: usize,
        d: &Delivery<NatsHandle>,
        dead: &DeadLetter,
    ) -> Result<(), OutboxError> {
        let s = &self.shared;
        publish::dead_letter(&s.js, &s.names, &s.targets[target].0, d, dead).await?;
        d.handle.ack().await
    }

    async fn flush(&self) -> Result<(), OutboxError> {
        self.shared.spool.flush().await
    }

    /// Nothing to do: a reload that adds or removes targets is refused with this
    /// backend (its consumers are made at start), so the slots never change here.
    fn targets_changed(&self, _names: &[String]) {}

    fn accepting(&self) -> watch::Receiver<bool> {
        self.shared.accepting.subscribe()
    }

    fn redelivers(&self) -> bool {
        true
    }

    fn engine_connected(&self) -> watch::Receiver<bool> {
        self.shared.connected.subscribe()
    }
}

/// A JetStream failure as the seam's error: retriable (the engine may come back).
fn unavailable(what: &str, e: impl std::fmt::Display) -> OutboxError {
    OutboxError::Unavailable {
        detail: format!("{what}: {e}"),
    }
}
