//! Where events enter the pipeline: route, key for dedupe, hand to the outbox.
//!
//! Shared by the WebSocket source (which does not wait: back-pressure comes from the
//! bounded inbox) and `/ingest` (which answers 202 only once the deliveries are durable).
//! Dedupe keys are worked out here, from each target's `dedupe` mode, so the store only
//! sees (target, key) pairs and never routing types.

use std::sync::Arc;

use crate::config::DedupeMode;
use crate::event::Event;
use crate::outbox::{Inbox, OutboxError, Routed};
use crate::routes::Router;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub(crate) struct Intake {
    /// The compiled routes.
    router: Arc<Router>,
    /// Each target's dedupe mode, by index.
    dedupe: Arc<[DedupeMode]>,
    /// The outbox's intake.
    inbox: Inbox,
    /// Received and unrouted counters.
    metrics: Arc<Metrics>,
}

/// What became of an event.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// No route matched: counted and dropped.
    Unrouted,
    /// In the outbox's hands, not yet durable (from the stream).
    Offered,
    /// Durable (from `/ingest`), or a duplicate of something that is.
    Stored,
}

impl Intake {
    pub(crate) fn new(
        router: Arc<Router>,
        dedupe: Arc<[DedupeMode]>,
        inbox: Inbox,
        metrics: Arc<Metrics>,
    ) -> Intake {
        Intake {
            router,
            dedupe,
            inbox,
            metrics,
        }
    }

    /// An event from the stream: route it and queue it without waiting for the disk.
    pub(crate) async fn streamed(&self, event: Event) -> Result<Accepted, OutboxError> {
        self.metrics.received_stream.inc();
        let Some(routed) = self.route(event) else {
            return Ok(Accepted::Unrouted);
        };
        self.inbox.offer(routed).await?;
        Ok(Accepted::Offered)
    }

    /// An event from `/ingest`: route it and wait until its deliveries are durable.
    pub(crate) async fn ingested(&self, event: Event) -> Result<Accepted, OutboxError> {
        self.metrics.received_ingest.inc();
        let Some(routed) = self.route(event) else {
            return Ok(Accepted::Unrouted);
        };
        self.inbox.enqueue(routed).await.map(|_| Accepted::Stored)
    }

    /// The event with its targets and their dedupe keys; `None` when no route matched.
    fn route(&self, event: Event) -> Option<Routed> {
        let targets = self.router.route(&event).targets;
        if targets.is_empty() {
            self.metrics.events_unrouted.inc();
            tracing::debug!(
                tweet_id = event.fields().tweet_id.as_deref().unwrap_or(""),
                event = event.event_type(),
                "No route matched; event dropped"
            );
            return None;
        }
        let (mut tweet_key, mut event_key) = (None, None);
        let deliveries = targets
            .into_iter()
            .map(|t| {
                let key = match self.dedupe[t] {
                    DedupeMode::Tweet => tweet_key.get_or_insert_with(|| event.tweet_key()),
                    DedupeMode::Event => event_key.get_or_insert_with(|| event.event_key()),
                };
                (t, key.clone())
            })
            .collect();
        Some(Routed { event, deliveries })
    }
}
