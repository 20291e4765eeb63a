//! The life of one message: wait for its time and the rate limiter, attempt, record the
//! outcome, repeat until delivered or dead (or shutdown).
//!
//! A message carries one delivery, or several folded into a digest ([`Unit`]); each of
//! them shares the message's fate: delivered together, retried on the same schedule
//! (stored for each, so a restart resumes it), dead-lettered together.
//!
//! What an answer means comes from the target ([`Target::send`](crate::target::Target)
//! returns an [`Outcome`](crate::target::Outcome)); when the next attempt is due comes
//! from [`retry::next`], a pure function. This file only sequences them and tells the
//! store.

use std::sync::Arc;

use super::{Worker, tweet_id};
use crate::failure::{Cause, DeadLetter, Failure};
use crate::outbox::{Delivery, Outbox, now_ms};

use crate::retry::{self, Next, Tried, Verdict};
use crate::shutdown::Shutdown;
use crate::target::digest::Heading;
use crate::target::unix_now;
use crate::telemetry::error_chain;

/// What one message carries.
#[derive(Debug, Clone)]
pub(super) struct Unit<H> {
    /// In arrival order; never empty. The first one's schedule is the message's.
    pub deliveries: Vec<Delivery<H>>,
    /// `None`: the one delivery's own message. `Some`: one digest of all of them.
    pub digest: Option<Heading>,
}

impl<H> Unit<H> {
    /// A delivery sent as its own message.
    pub(super) fn one(d: Delivery<H>) -> Unit<H> {
        Unit {
            deliveries: vec![d],
            digest: None,
        }
    }
}

pub(super) async fn deliver<S: Outbox>(
    w: Arc<Worker<S>>,
    mut unit: Unit<S::Handle>,
    mut shutdown: Shutdown,
) {
    let name = w.target.name();
    let policy = w.target.config.retry;
    let m = w.metrics.target(w.index);
    let n = unit.deliveries.len();
    // The message's age by the monotonic clock from here on: the wall clock only says how
    // old it was when taken (across restarts there is nothing else), so a clock set
    // forward during the run cannot age it past `max_age` early.
    let taken = tokio::time::Instant::now();
    let age_at_take = wall_ms().saturating_sub(unit.deliveries[0].enqueued_ms);
    // The target's last `Retry-After`, known within this run: the one wait that may
    // exceed the backoff. After a restart it is gone and the backoff bounds the wait.
    let mut floor = None;
    loop {
        let head = &unit.deliveries[0];
        let wait = retry::wait(
            &policy,
            head.attempts,
            floor,
            head.next_attempt_ms,
            wall_ms(),
        );
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => return,
            }
        }
        if let Some((failure, advice)) = w.target.gone() {
            let dead = DeadLetter {
                cause: Cause::Permanent,
                failure,
            };
            w.bury_all(&unit, &dead, Some(advice), &mut shutdown).await;
            return;
        }
        tokio::select! {
            _ = w.target.limiter.acquire() => {}
            _ = shutdown.wait() => return,
        }
        let request = match unit.digest {
            None => w.target.request(&head.id, unix_now(), &head.body),
            Some(heading) => {
                let bodies: Vec<_> = unit.deliveries.iter().map(|d| d.body.clone()).collect();
                w.target.digest_request(heading, &bodies)
            }
        };
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                let dead = DeadLetter {
                    cause: Cause::Permanent,
                    failure: Failure::Unrenderable { error: e.0 },
                };
                w.bury_all(&unit, &dead, None, &mut shutdown).await;
                return;
            }
        };
        for d in &mut unit.deliveries {
            d.attempts += 1;
        }
        let attempts = unit.deliveries[0].attempts;
        let outcome = w.target.send(request).await;
        m.duration.observe(outcome.elapsed);
        let failure = match (outcome.verdict, outcome.failure) {
            (Verdict::Delivered, _) => {
                m.delivered.add(n as u64);
                if unit.digest.is_some() {
                    tracing::info!(
                        target = name,
                        deliveries = n,
                        attempt = attempts,
                        "Delivered a digest"
                    );
                } else {
                    tracing::debug!(target = name, delivery_id = %unit.deliveries[0].id, attempt = attempts, "Delivered");
                }
                for d in &unit.deliveries {
                    w.completed(d, &mut shutdown).await;
                }
                return;
            }
            (_, Some(failure)) => failure,
            // A verdict other than delivered always comes with its failure; should one
            // ever not, say so rather than invent a status.
            (_, None) => Failure::Recorded("the target's answer was not a success".into()),
        };
        let next = match outcome.verdict {
            Verdict::Retry { floor: asked } => {
                floor = asked;
                let now = wall_ms();
                let age = age_at_take.saturating_add(retry::millis(taken.elapsed()));
                let tried = Tried {
                    attempts,
                    enqueued_ms: now.saturating_sub(age),
                };
                retry::next(&policy, tried, floor, now, fastrand::f64())
            }
            _ => Next::Dead(Cause::Permanent),
        };
        match next {
            Next::Dead(cause) => {
                let dead = DeadLetter { cause, failure };
                w.bury_all(&unit, &dead, outcome.advice, &mut shutdown)
                    .await;
                return;
            }
            Next::At(at) => {
                for d in &mut unit.deliveries {
                    d.next_attempt_ms = at;
                    if let Err(e) = w.store.retry_at(w.index, d, &failure).await {
                        tracing::warn!(target = name, delivery_id = %d.id, error = %error_chain(&e), "Could not store the retry schedule");
                    }
                }
                m.retried.add(n as u64);
                let head = &unit.deliveries[0];
                tracing::warn!(
                    target = name,
                    delivery_id = %head.id,
                    tweet_id = tweet_id(&head.body),
                    deliveries = n,
                    attempt = attempts,
                    status = failure.status(),
                    error = %failure,
                    retry_in_ms = at.saturating_sub(wall_ms()),
                    "Delivery failed; will retry"
                );
                // A shared engine hands it back when it is due (maybe to another replica).
                if w.store.redelivers() {
                    return;
                }
            }
        }
    }
}

/// The wall clock the schedule is read and written by: [`now_ms`], shifted in tests by
/// [`SKEW_MS`] to step it without touching the machine's clock.
pub(super) fn wall_ms() -> u64 {
    #[cfg(test)]
    {
        now_ms().saturating_add_signed(SKEW_MS.with(std::cell::Cell::get))
    }
    #[cfg(not(test))]
    {
        now_ms()
    }
}

#[cfg(test)]
thread_local! {
    /// How far the worker's wall clock is off, in ms (the worker tests run on one thread).
    pub(super) static SKEW_MS: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}
