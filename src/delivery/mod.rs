//! Per-target workers: each target's deliveries, attempted in order, retried on schedule.
//!
//! One worker task per target, so a slow, failing or rate-limited target only ever
//! delays itself. A worker takes its target's [`Queue`](crate::outbox::Queue) in order and
//! keeps at most `concurrency` deliveries in progress, each a task of its own
//! ([`attempt`]) so one busy target can use every core. The worker only decides what
//! starts when; it is written once against the [`Outbox`] seam, and its tests run on the
//! in-memory store under paused time.
//!
//! A delivery holds its slot from first attempt until it is delivered or dead: with
//! `concurrency = 1` that is what keeps deliveries landing in arrival order. Its retry
//! state is written to the outbox after each failure, so a restart resumes the schedule
//! instead of starting over.
//!
//! On shutdown a worker starts nothing new; deliveries waiting for their next attempt
//! stop at once (their state is stored), attempts in flight are given until the
//! application's drain deadline to finish.

mod attempt;
mod fold;
#[cfg(test)]
mod fold_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use crate::failure::{Cause, DeadLetter, Failure};
use crate::outbox::{Delivery, Outbox, Queue as _};
use crate::shutdown::Shutdown;
use crate::target::Target;
use crate::telemetry::Metrics;

/// Everything a worker and its deliveries share.
pub(crate) struct Worker<S: Outbox> {
    /// The target's index in the config: its id for the store and the metrics.
    pub index: usize,
    /// The target: its client, rate limiter and platform.
    pub target: Arc<Target>,
    /// Where its deliveries wait.
    pub store: Arc<S>,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
}

impl<S: Outbox> Worker<S> {
    /// Deliver until shutdown, then let attempts in flight finish (the caller bounds that).
    pub(crate) async fn run(self, mut shutdown: Shutdown) {
        let this = Arc::new(self);
        let concurrency = this.target.config.concurrency.max(1);
        let mut queue = this.store.clone().queue(this.index);
        if this.target.config.burst.folds() {
            return fold::run(this, queue, shutdown).await;
        }
        let mut in_flight = tokio::task::JoinSet::new();
        // Which delivery each task carries, to deal with a task that panicked.
        let mut carrying = HashMap::new();
        let mut stopping = shutdown.is_triggered();
        loop {
            if stopping && in_flight.is_empty() {
                return;
            }
            tokio::select! {
                _ = shutdown.wait(), if !stopping => stopping = true,
                d = queue.next(), if !stopping && in_flight.len() < concurrency => {
                    let unit = attempt::Unit::one(d);
                    let task = in_flight.spawn(attempt::deliver(this.clone(), unit.clone(), shutdown.clone()));
                    carrying.insert(task.id(), unit);
                }
                Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                    match done {
                        Ok((task, ())) => {
                            carrying.remove(&task);
                        }
                        Err(e) => {
                            if let Some(unit) = carrying.remove(&e.id())
                                && e.is_panic()
                            {
                                this.after_panic(unit, &mut shutdown.clone()).await;
                            }
                        }
                    }
                }
            }
        }
    }

    /// A delivery's task panicked (a bug). Its slot is free and the queue has moved on, so
    /// leaving it pending would let later deliveries overtake it and leave it untried
    /// until a restart (where it would likely panic again): dead-letter it, loudly.
    async fn after_panic(&self, unit: attempt::Unit<S::Handle>, shutdown: &mut Shutdown) {
        let dead = DeadLetter {
            cause: Cause::Permanent,
            failure: Failure::Internal,
        };
        self.bury_all(&unit, &dead, None, shutdown).await;
    }

    /// Dead-letter every delivery of a message, in order.
    async fn bury_all(
        &self,
        unit: &attempt::Unit<S::Handle>,
        dead: &DeadLetter,
        advice: Option<&str>,
        shutdown: &mut Shutdown,
    ) {
        for d in &unit.deliveries {
            self.bury(d, dead, advice, shutdown).await;
        }
    }

    /// Remove a delivered delivery from the store, retrying until it is removed (or
    /// shutdown): the delivery keeps its slot meanwhile, so with `concurrency = 1`
    /// nothing later lands before the store knows this one is done, and a restart does
    /// not send it again behind later ones.
    async fn completed(&self, d: &Delivery<S::Handle>, shutdown: &mut Shutdown) {
        let name = self.target.name();
        loop {
            match self.store.complete(self.index, d).await {
                Ok(()) => return,
                // An engine that redelivers what was not acknowledged (NATS after a
                // restart cannot take an ack for a message it handed out before) will
                // send it again on its own: holding the slot would only stall the target.
                Err(e) if self.store.redelivers() => {
                    tracing::warn!(target = name, delivery_id = %d.id, error = %crate::telemetry::error_chain(&e), "Delivered, but the outbox could not record it; the engine will hand it out again (one duplicate)");
                    return;
                }
                Err(e) if e.is_retriable() => {
                    tracing::debug!(target = name, delivery_id = %d.id, error = %crate::telemetry::error_chain(&e), "Delivered, but the outbox cannot record it yet; trying again in 1 s");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = shutdown.wait() => {
                            tracing::warn!(target = name, delivery_id = %d.id, "Delivered, but the outbox could not record it before shutdown; it will be sent again after restart");
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(target = name, delivery_id = %d.id, error = %crate::telemetry::error_chain(&e), "Delivered, but could not remove it from the outbox; it may be sent again");
                    return;
                }
            }
        }
    }

    /// Dead-letter, retrying the write until it is stored (or shutdown): the delivery
    /// keeps its slot meanwhile, so later deliveries cannot overtake it.
    async fn bury(
        &self,
        d: &Delivery<S::Handle>,
        dead: &DeadLetter,
        advice: Option<&str>,
        shutdown: &mut Shutdown,
    ) {
        let name = self.target.name();
        loop {
            match self.store.dead_letter(self.index, d, dead).await {
                Ok(()) => break,
                Err(e) if !e.is_retriable() => {
                    tracing::error!(target = name, delivery_id = %d.id, error = %crate::telemetry::error_chain(&e), "Cannot dead-letter a delivery; it stays pending and is tried again after a restart");
                    return;
                }
                Err(e) => {
                    tracing::error!(target = name, delivery_id = %d.id, error = %crate::telemetry::error_chain(&e), "Cannot dead-letter a delivery; trying again in 1 s");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = shutdown.wait() => return,
                    }
                }
            }
        }
        self.metrics.target(self.index).dead.inc();
        let advice = advice.map_or_else(|| generic_advice(dead, name), str::to_owned);
        tracing::error!(
            target = name,
            delivery_id = %d.id,
            tweet_id = tweet_id(&d.body),
            attempt = d.attempts,
            status = dead.failure.status(),
            error = %dead,
            advice = %advice,
            "Delivery dead-lettered; `badger-relay outbox retry` sends it again"
        );
    }
}

/// What to do about a dead letter when the platform gave no advice of its own.
fn generic_advice(dead: &DeadLetter, target: &str) -> String {
    let then = format!("then `badger-relay outbox retry --target {target}` sends it again");
    match (&dead.cause, &dead.failure) {
        (Cause::Exhausted { .. } | Cause::WaitPastMaxAge { .. }, _) => format!(
            "the target kept failing until its retry policy ran out: check that it is up and reachable, {then}"
        ),
        (_, Failure::Rejected { status, .. }) => format!(
            "the endpoint refused the delivery with HTTP {status}, which is not retried: fix the endpoint or the target's url, headers or signing secret, {then}"
        ),
        (_, Failure::Unrenderable { .. }) => format!(
            "the event cannot be made into this target's message: check the target's template or send such events to an http target, {then}"
        ),
        (_, Failure::Internal) => {
            format!("report the log lines around this one as a bug, {then}")
        }
        _ => format!("fix what the error says, {then}"),
    }
}

/// The tweet id of a stored event, for log lines (only on the failure path).
fn tweet_id(body: &[u8]) -> String {
    serde_json::from_slice::<crate::event::Fields>(body)
        .ok()
        .and_then(|f| f.tweet_id)
        .unwrap_or_default()
}
