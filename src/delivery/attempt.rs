//! The life of one delivery: wait for its time and the rate limiter, attempt, record the
//! outcome, repeat until delivered or dead (or shutdown).
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
use crate::target::unix_now;
use crate::telemetry::error_chain;

pub(super) async fn deliver<S: Outbox>(
    w: Arc<Worker<S>>,
    mut d: Delivery<S::Handle>,
    mut shutdown: Shutdown,
) {
    let name = w.target.name();
    let policy = w.target.config.retry;
    let m = w.metrics.target(w.index);
    // The delivery's age by the monotonic clock from here on: the wall clock only says how
    // old it was when taken (across restarts there is nothing else), so a clock set
    // forward during the run cannot age it past `max_age` early.
    let taken = tokio::time::Instant::now();
    let age_at_take = wall_ms().saturating_sub(d.enqueued_ms);
    // The target's last `Retry-After`, known within this run: the one wait that may
    // exceed the backoff. After a restart it is gone and the backoff bounds the wait.
    let mut floor = None;
    loop {
        let wait = retry::wait(&policy, d.attempts, floor, d.next_attempt_ms, wall_ms());
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
            w.bury(&d, &dead, Some(advice), &mut shutdown).await;
            return;
        }
        tokio::select! {
            _ = w.target.limiter.acquire() => {}
            _ = shutdown.wait() => return,
        }
        let request = match w.target.request(&d.id, unix_now(), &d.body) {
            Ok(r) => r,
            Err(e) => {
                let dead = DeadLetter {
                    cause: Cause::Permanent,
                    failure: Failure::Unrenderable { error: e.0 },
                };
                w.bury(&d, &dead, None, &mut shutdown).await;
                return;
            }
        };
        d.attempts += 1;
        let outcome = w.target.send(request).await;
        m.duration.observe(outcome.elapsed);
        let failure = match (outcome.verdict, outcome.failure) {
            (Verdict::Delivered, _) => {
                m.delivered.inc();
                tracing::debug!(target = name, delivery_id = %d.id, attempt = d.attempts, "Delivered");
                w.completed(&d, &mut shutdown).await;
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
                    attempts: d.attempts,
                    enqueued_ms: now.saturating_sub(age),
                };
                retry::next(&policy, tried, floor, now, fastrand::f64())
            }
            _ => Next::Dead(Cause::Permanent),
        };
        match next {
            Next::Dead(cause) => {
                let dead = DeadLetter { cause, failure };
                w.bury(&d, &dead, outcome.advice, &mut shutdown).await;
                return;
            }
            Next::At(at) => {
                d.next_attempt_ms = at;
                if let Err(e) = w.store.retry_at(w.index, &d, &failure).await {
                    tracing::warn!(target = name, delivery_id = %d.id, error = %error_chain(&e), "Could not store the retry schedule");
                }
                m.retried.inc();
                tracing::warn!(
                    target = name,
                    delivery_id = %d.id,
                    tweet_id = tweet_id(&d.body),
                    attempt = d.attempts,
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
fn wall_ms() -> u64 {
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
