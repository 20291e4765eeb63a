//! A target's deliveries: one durable pull consumer per target, shared by every
//! replica. Each message handed to the worker carries its [`NatsHandle`], which acks or
//! NAKs it, and sends in-progress signals every `ack_wait / 3` while the worker holds it.
//!
//! The consumer pins one client (JetStream 2.11's pinned-client priority group): the
//! server hands a target's deliveries to one replica only, while the others wait on
//! standby. So the target's `rate_limit` and a `Retry-After` pause, which a replica
//! keeps in memory, hold for the target as a whole. When the pinned replica dies (stops
//! pulling for `ack_wait`), the pin moves to a standby replica, which also takes over the
//! deliveries the dead one held once their `ack_wait` runs out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{self, pull};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use super::names;
use super::{Shared, unavailable};
use crate::outbox::{Delivery, OutboxError, Queue, now_ms};

/// A target's deliveries as the worker reads them.
pub(crate) struct NatsQueue {
    /// From the task that pulls the consumer.
    rx: mpsc::Receiver<Delivery<NatsHandle>>,
}

impl NatsQueue {
    /// Start pulling target `target`'s consumer.
    pub(super) fn start(s: Arc<Shared>, target: usize) -> NatsQueue {
        // One waiting hand-over: what the consumer gives out is bounded by
        // `max_ack_pending` anyway.
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(pull(s, target, tx));
        NatsQueue { rx }
    }
}

impl Queue for NatsQueue {
    type Handle = NatsHandle;

    async fn next(&mut self) -> Delivery<NatsHandle> {
        match self.rx.recv().await {
            Some(d) => d,
            // The puller stopped (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }
}

/// The priority group every replica pulls a target's consumer in.
const GROUP: &str = "relay";

/// The consumer of a target, created or brought up to date.
async fn ensure_consumer(
    s: &Shared,
    target: &str,
    concurrency: usize,
) -> Result<consumer::Consumer<pull::Config>, String> {
    let stream =
        s.js.get_stream(&s.names.stream)
            .await
            .map_err(|e| e.to_string())?;
    let name = names::consumer(target);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        name: Some(name),
        description: Some(format!("badger-relay deliveries to {target}")),
        filter_subject: s.names.subject(target),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: s.config.ack_wait,
        max_ack_pending: concurrency as i64,
        // Dead letters are the relay's decision: never the server's.
        max_deliver: -1,
        deliver_policy: consumer::DeliverPolicy::All,
        priority_policy: consumer::PriorityPolicy::PinnedClient,
        priority_groups: vec![GROUP.to_owned()],
        // A dead replica's pin moves after this; its deliveries after `ack_wait` too.
        priority_timeout: s.config.ack_wait,
        ..Default::default()
    };
    stream
        .create_consumer(config)
        .await
        .map_err(|e| e.to_string())
}

/// Pull the consumer into the worker's queue until shutdown, re-creating the
/// subscription after any error (the client reconnects on its own).
async fn pull(s: Arc<Shared>, target: usize, tx: mpsc::Sender<Delivery<NatsHandle>>) {
    let (name, concurrency) = s.targets[target].clone();
    let mut shutdown = s.shutdown.clone();
    let mut delay = Duration::from_millis(250);
    loop {
        let consumer = match ensure_consumer(&s, &name, concurrency).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(target = %name, error = %e, retry_in_ms = delay.as_millis() as u64, "Cannot open the JetStream consumer; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // Pull requests renew well within `priority_timeout`, so a live replica keeps
        // its pin between them.
        let expires =
            (s.config.ack_wait / 3).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let mut messages = match consumer
            .stream()
            .group(GROUP)
            .max_messages_per_batch(concurrency)
            .heartbeat(expires / 2)
            .expires(expires)
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(target = %name, error = %e, "Cannot pull from the JetStream consumer; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => return,
                }
                continue;
            }
        };
        delay = Duration::from_millis(250);
        // A pull stream opened before the server went away can wait on requests the
        // restarted server never saw: subscribe again whenever the connection comes back.
        let mut connected = s.connected.subscribe();
        connected.mark_unchanged();
        loop {
            let next = tokio::select! {
                m = messages.next() => m,
                changed = connected.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let up = *connected.borrow_and_update();
                    if up {
                        tracing::debug!(target = %name, "Connected to NATS again; subscribing again");
                        break;
                    }
                    continue;
                }
                _ = shutdown.wait() => return,
            };
            match next {
                Some(Ok(message)) => {
                    let Some(d) = delivery(&s, message) else {
                        continue;
                    };
                    if tx.send(d).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(target = %name, error = %e, "JetStream pull interrupted; subscribing again");
                    break;
                }
                None => break,
            }
        }
    }
}

/// The delivery a message carries, with its handle.
fn delivery(s: &Shared, message: jetstream::Message) -> Option<Delivery<NatsHandle>> {
    let (stream_seq, delivered) = match message.info() {
        Ok(info) => (info.stream_sequence, info.delivered),
        Err(e) => {
            tracing::warn!(error = %e, "A JetStream message without delivery info; skipped");
            return None;
        }
    };
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let msg_id = header("Nats-Msg-Id").unwrap_or_default();
    let id = header(names::ID).unwrap_or_else(|| s.names.webhook_id(&msg_id));
    let enqueued_ms = header(names::ACCEPTED)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(now_ms);
    let body = message.payload.clone();
    Some(Delivery {
        handle: NatsHandle::new(message, msg_id, stream_seq, delivered, s.config.ack_wait),
        id,
        body,
        attempts: delivered.saturating_sub(1).clamp(0, u32::MAX as i64) as u32,
        enqueued_ms,
        next_attempt_ms: 0,
    })
}

/// Where a delivery lives in JetStream: its message, for ack, NAK and progress.
#[derive(Clone)]
pub(crate) struct NatsHandle(Arc<Held>);

/// A message a worker holds.
struct Held {
    /// The message (its reply subject is how acks find it).
    message: jetstream::Message,
    /// Its `Nats-Msg-Id`, for the dead letter.
    msg_id: String,
    /// Its sequence in the stream.
    stream_seq: u64,
    /// How many times it was handed out.
    delivered: i64,
    /// Sends in-progress signals while it is held.
    ticker: tokio::task::AbortHandle,
    /// Acked or NAKed: nothing to do when the last clone goes.
    settled: AtomicBool,
}

impl std::fmt::Debug for NatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsHandle(seq {})", self.0.stream_seq)
    }
}

impl NatsHandle {
    fn new(
        message: jetstream::Message,
        msg_id: String,
        stream_seq: u64,
        delivered: i64,
        ack_wait: Duration,
    ) -> NatsHandle {
        let progress = message.clone();
        let every = (ack_wait / 3).max(Duration::from_millis(100));
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = progress.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %e, "Could not send an in-progress signal");
                }
            }
        })
        .abort_handle();
        NatsHandle(Arc::new(Held {
            message,
            msg_id,
            stream_seq,
            delivered,
            ticker,
            settled: AtomicBool::new(false),
        }))
    }

    pub(super) fn msg_id(&self) -> String {
        self.0.msg_id.clone()
    }

    pub(super) fn stream_seq(&self) -> u64 {
        self.0.stream_seq
    }

    pub(super) fn delivered(&self) -> i64 {
        self.0.delivered
    }

    fn settle(&self) {
        self.0.ticker.abort();
        self.0.settled.store(true, Ordering::SeqCst);
    }

    /// Delivered or dead-lettered: it leaves the consumer. Waits for the server's
    /// confirmation, so a lost ack is an error the worker logs, not a silent repost.
    pub(super) async fn ack(&self) -> Result<(), OutboxError> {
        self.settle();
        self.0
            .message
            .double_ack()
            .await
            .map_err(|e| unavailable("cannot acknowledge the delivery to JetStream", e))
    }

    /// Give it back, to be handed out again after `delay` (to any replica).
    pub(super) async fn nak(&self, delay: Duration) -> Result<(), OutboxError> {
        self.settle();
        self.0
            .message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|e| unavailable("cannot give the delivery back to JetStream", e))
    }
}

impl Drop for Held {
    /// A worker let go of it without an answer (shutdown while it waited): give it back
    /// at once so another replica need not wait for `ack_wait`.
    fn drop(&mut self) {
        self.ticker.abort();
        if !self.settled.load(Ordering::SeqCst)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let message = self.message.clone();
            runtime.spawn(async move {
                let _ = message.ack_with(AckKind::Nak(None)).await;
            });
        }
    }
}
