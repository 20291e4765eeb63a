//! Where events enter the pipeline: route, then hand to the outbox.
//!
//! Shared by the WebSocket source (which does not wait: back-pressure comes from the
//! bounded channel) and `/ingest` (which answers 202 only once the deliveries are durable).

use std::sync::Arc;

use crate::event::Event;
use crate::outbox::{Committer, Enqueued, OutboxError, Submission};
use crate::routes::Router;
use crate::telemetry::Metrics;

pub use crate::outbox::Closed;

#[derive(Clone)]
pub struct Intake {
    router: Arc<Router>,
    committer: Committer,
    metrics: Arc<Metrics>,
}

/// What became of an event.
#[derive(Debug)]
pub enum Accepted {
    /// No route matched: counted and dropped.
    Unrouted,
    /// Handed to the outbox (stream: not yet durable; ingest: durable, see [`Enqueued`]).
    Queued(Option<Enqueued>),
}

impl Intake {
    pub fn new(router: Arc<Router>, committer: Committer, metrics: Arc<Metrics>) -> Intake {
        Intake {
            router,
            committer,
            metrics,
        }
    }

    /// An event from the stream: route it and queue it without waiting for the disk.
    pub async fn from_stream(&self, event: Event) -> Result<Accepted, Closed> {
        self.metrics.received_stream.inc();
        let targets = self.router.route(&event).targets;
        if targets.is_empty() {
            self.unrouted(&event);
            return Ok(Accepted::Unrouted);
        }
        self.committer
            .submit(Submission {
                event,
                targets,
                ack: None,
            })
            .await?;
        Ok(Accepted::Queued(None))
    }

    /// An event from `/ingest`: route it and wait until its deliveries are durable.
    pub async fn from_ingest(&self, event: Event) -> Result<Result<Accepted, OutboxError>, Closed> {
        self.metrics.received_ingest.inc();
        let targets = self.router.route(&event).targets;
        if targets.is_empty() {
            self.unrouted(&event);
            return Ok(Ok(Accepted::Unrouted));
        }
        Ok(self
            .committer
            .submit_durable(event, targets)
            .await?
            .map(|e| Accepted::Queued(Some(e))))
    }

    fn unrouted(&self, event: &Event) {
        self.metrics.events_unrouted.inc();
        tracing::debug!(
            tweet_id = event.fields().tweet_id.as_deref().unwrap_or(""),
            event = event.event_type(),
            "No route matched; event dropped"
        );
    }
}
