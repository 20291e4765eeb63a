//! Where events enter the pipeline: route, key for dedupe, hand to the outbox.
//!
//! Shared by the WebSocket source (which does not wait: back-pressure comes from the
//! bounded inbox) and `/ingest` (which answers 202 only once the deliveries are durable).
//! Dedupe keys are worked out here, from each target's `dedupe` mode, so the store only
//! sees (target, key) pairs and never routing types.

use std::sync::{Arc, RwLock};

use crate::config::DedupeMode;
use crate::event::Event;
use crate::outbox::{Inbox, OutboxError, Routed};
use crate::routes::Router;
use crate::telemetry::Metrics;

/// The compiled routing of one config: swapped whole by a reload, between events.
pub(crate) struct Routing {
    /// The compiled routes; they name targets by their index in the config.
    pub router: Router,
    /// Each target's dedupe mode, by config index.
    pub dedupe: Box<[DedupeMode]>,
    /// Each target's outbox slot, by config index (see [`crate::reload`]).
    pub slots: Box<[usize]>,
}

/// The routing in use; a reload replaces the `Arc` inside. An event takes a clone of the
/// `Arc` (no allocation) and routes on it, so it sees one config from start to end.
pub(crate) type SharedRouting = Arc<RwLock<Arc<Routing>>>;

#[derive(Clone)]
pub(crate) struct Intake {
    /// The compiled routes, dedupe modes and slots in use.
    routing: SharedRouting,
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
    pub(crate) fn new(routing: SharedRouting, inbox: Inbox, metrics: Arc<Metrics>) -> Intake {
        Intake {
            routing,
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
        let routing = self
            .routing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let targets = routing.router.route(&event).targets;
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
                let key = match routing.dedupe[t] {
                    DedupeMode::Tweet => tweet_key.get_or_insert_with(|| event.tweet_key()),
                    DedupeMode::Event => event_key.get_or_insert_with(|| event.event_key()),
                };
                (routing.slots[t], key.clone())
            })
            .collect();
        Some(Routed { event, deliveries })
    }
}
