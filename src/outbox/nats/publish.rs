//! The streams, and the way from the spool into them.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage, stream};

use super::names::{self, Names};
use super::spool::Spooled;
use super::{Shared, consume::NatsHandle, unavailable};
use crate::config::{OutboxConfig, TargetConfig};
use crate::failure::DeadLetter;
use crate::outbox::{Delivery, OutboxError};
use crate::telemetry::error_chain;

/// Spooled events published per round.
const ROUND: usize = 1024;

/// Create both streams when missing. `max_age` outlasts the dedupe window and every
/// target's `retry.max_age`, so age never removes a delivery that is still pending.
pub(super) async fn ensure_streams(
    js: &jetstream::Context,
    names: &Names,
    outbox: &OutboxConfig,
    targets: &[TargetConfig],
    replicas: usize,
) -> anyhow::Result<()> {
    let longest = targets
        .iter()
        .map(|t| t.retry.max_age)
        .chain([outbox.retry.max_age, outbox.dedupe_window])
        .max()
        .unwrap_or_default();
    let max_age = longest * 2 + Duration::from_secs(3600);
    let deliveries = stream::Config {
        name: names.stream.clone(),
        subjects: vec![format!("{}.d.*", names.stream)],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        duplicate_window: outbox.dedupe_window,
        max_age,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        allow_direct: true,
        description: Some("badger-relay deliveries, one subject per target".into()),
        ..Default::default()
    };
    let dead = stream::Config {
        name: names.dead.clone(),
        subjects: vec![format!("{}.d.*", names.dead)],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        allow_direct: true,
        description: Some("badger-relay dead letters, until `outbox retry` or `purge`".into()),
        ..Default::default()
    };
    for config in [deliveries, dead] {
        let name = config.name.clone();
        js.get_or_create_stream(config).await.map_err(|e| {
            anyhow::anyhow!("cannot create or open the JetStream stream {name}: {e}")
        })?;
    }
    Ok(())
}

/// The publisher: publish the spool's events in order, remove each once all its
/// deliveries are acknowledged, until shutdown. A failed round is tried again (message
/// ids make a re-publish harmless).
pub(super) async fn run(s: Arc<Shared>) {
    let mut shutdown = s.shutdown.clone();
    let mut delay = Duration::from_millis(100);
    loop {
        let batch = match s.spool.oldest(ROUND) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "Cannot read the spool");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = s.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.wait() => return,
            }
            continue;
        }
        match publish_round(&s, &batch).await {
            Ok(()) => delay = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(error = %e, events = batch.len(), retry_in_ms = delay.as_millis() as u64, "Cannot publish spooled events to JetStream yet; they stay in the spool");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Publish one round: every delivery first (in order, pipelined), then wait for acks.
async fn publish_round(s: &Shared, batch: &[(u64, Spooled)]) -> Result<(), String> {
    let mut acks: Vec<(u64, usize, PublishAckFuture)> = Vec::new();
    for (seq, spooled) in batch {
        for (target, key) in &spooled.deliveries {
            let msg_id = names::msg_id(target, key);
            let mut headers = HeaderMap::new();
            headers.insert(names::ID, s.names.webhook_id(&msg_id).as_str());
            headers.insert(names::TARGET, target.as_str());
            headers.insert(names::ACCEPTED, spooled.accepted_ms.to_string().as_str());
            let message = PublishMessage::build()
                .payload(spooled.body.clone())
                .headers(headers)
                .message_id(&msg_id);
            let ack =
                s.js.send_publish(s.names.subject(target), message)
                    .await
                    .map_err(|e| e.to_string())?;
            let index = s
                .targets
                .iter()
                .position(|(n, _)| n == target)
                .unwrap_or(usize::MAX);
            acks.push((*seq, index, ack));
        }
    }
    let mut duplicates: Vec<(u64, usize)> = Vec::new();
    for (seq, index, ack) in acks {
        let ack = ack.await.map_err(|e| e.to_string())?;
        if ack.duplicate {
            duplicates.push((seq, index));
        }
    }
    let seqs: Vec<u64> = batch.iter().map(|(seq, _)| *seq).collect();
    s.spool.remove(&seqs).map_err(|e| error_chain(&e))?;
    s.metrics.spool_pending.add(-(seqs.len() as i64));
    {
        let mut map = s.duplicates.lock().unwrap_or_else(|e| e.into_inner());
        // Entries of events whose `enqueue` stopped waiting are never taken: bound them.
        if map.len() > 10_000 {
            map.clear();
        }
        for (seq, index) in duplicates {
            map.entry(seq).or_default().push(index);
        }
    }
    if let Some(last) = seqs.last() {
        s.published.send_replace(*last);
    }
    Ok(())
}

/// Publish a dead letter (the event, with why) and wait for its ack.
pub(super) async fn dead_letter(
    js: &jetstream::Context,
    names: &Names,
    target: &str,
    d: &Delivery<NatsHandle>,
    dead: &DeadLetter,
) -> Result<(), OutboxError> {
    let mut headers = HeaderMap::new();
    headers.insert(names::ID, d.id.as_str());
    headers.insert(names::TARGET, target);
    headers.insert(names::ACCEPTED, d.enqueued_ms.to_string().as_str());
    headers.insert(names::ATTEMPTS, d.attempts.to_string().as_str());
    headers.insert(
        names::REASON,
        dead.to_string().replace(['\r', '\n'], " ").as_str(),
    );
    headers.insert(names::MSG_ID, d.handle.msg_id().as_str());
    let message = PublishMessage::build()
        .payload(d.body.clone())
        .headers(headers)
        .message_id(format!(
            "dead:{}:{}",
            d.handle.stream_seq(),
            d.handle.delivered()
        ));
    js.send_publish(names.dead_subject(target), message)
        .await
        .map_err(|e| unavailable("cannot publish the dead letter", e))?
        .await
        .map_err(|e| unavailable("the dead letter was not acknowledged", e))?;
    Ok(())
}
