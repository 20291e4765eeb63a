//! The worker of a target that folds (`digest`, `stale`): one message at a time, and
//! what piled up behind it folded into fewer messages.
//!
//! - **Digest.** When a delivery's turn comes and the rate limiter would make it wait,
//!   the worker keeps taking what arrives while it waits, up to `digest.max`; when the
//!   token comes, two or more go out as one message, one goes out as itself. A delivery
//!   that can go at once always goes alone: nothing is folded that did not have to wait.
//! - **Stale.** A delivery whose tweet is older than `stale_after` when its turn comes is
//!   dropped (counted `outcome="stale"`), or folded with the stale ones queued right
//!   behind it into one "N tweets from while delivery was delayed" message.
//!
//! Every folded delivery stays pending in the store until its message was answered 2xx,
//! so a crash before that sends each again after the restart (as part of a digest or on
//! its own): at least once for every delivery, as for single messages.

use std::sync::Arc;
use std::time::Duration;

use super::Worker;
use super::attempt::{self, Unit};
use crate::config::StaleAction;
use crate::outbox::{Delivery, Outbox, Queue};
use crate::shutdown::Shutdown;
use crate::target::digest::Heading;

/// How long "what is already waiting" may take to come from the queue: enough for a
/// read ahead from disk, short next to any rate limit. Only stale folds use it: a
/// digest gathers for as long as the rate limiter makes its first delivery wait.
const ALREADY_WAITING: Duration = Duration::from_millis(50);

/// The most stale deliveries one message folds. A long outage's backlog goes out as a
/// few messages of this many rather than one that holds the whole backlog in memory.
const STALE_FOLD_MAX: usize = 200;

pub(super) async fn run<S: Outbox>(
    w: Arc<Worker<S>>,
    mut queue: impl Queue<Handle = S::Handle>,
    mut shutdown: Shutdown,
) {
    let burst = w.target.config.burst;
    let stale_after = |d: &Delivery<S::Handle>| stale_action(&burst, &d.body);
    // A delivery taken from the queue that did not belong in the last fold: the next turn.
    let mut carried = None;
    while !shutdown.is_triggered() {
        let d = match carried.take() {
            Some(d) => d,
            None => tokio::select! {
                d = queue.next() => d,
                _ = shutdown.wait() => return,
            },
        };
        let unit = match stale_after(&d) {
            Some(StaleAction::Drop) => {
                w.drop_stale(&d, &mut shutdown).await;
                continue;
            }
            Some(StaleAction::Digest) => {
                let mut fold = vec![d];
                while fold.len() < STALE_FOLD_MAX {
                    let next = tokio::select! {
                        next = tokio::time::timeout(ALREADY_WAITING, queue.next()) => next,
                        _ = shutdown.wait() => return,
                    };
                    match next {
                        Ok(next) if stale_after(&next).is_some() => fold.push(next),
                        Ok(next) => {
                            carried = Some(next);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                Unit {
                    deliveries: fold,
                    digest: Some(Heading::Delayed),
                }
            }
            None => match burst.digest {
                // A delivery tried before (a restart) keeps its own schedule and goes alone.
                Some(max) if d.attempts == 0 => {
                    let Some(unit) = gather(&w, &mut queue, d, max, &mut shutdown).await else {
                        return;
                    };
                    unit
                }
                _ => Unit::one(d),
            },
        };
        // Its own task, as in the plain worker: a bug that panics in one message
        // dead-letters that message instead of ending the target's worker.
        let task = tokio::spawn(attempt::deliver(w.clone(), unit.clone(), shutdown.clone()));
        if let Err(e) = task.await
            && e.is_panic()
        {
            w.after_panic(unit, &mut shutdown).await;
        }
    }
}

/// `first` and what arrives while the rate limiter makes it wait, up to `max`: a digest
/// of them, or `first` alone when nothing came (or it need not wait). `None` on shutdown.
async fn gather<S: Outbox>(
    w: &Worker<S>,
    queue: &mut impl Queue<Handle = S::Handle>,
    first: Delivery<S::Handle>,
    max: usize,
    shutdown: &mut Shutdown,
) -> Option<Unit<S::Handle>> {
    let wait = w.target.limiter.wait_time();
    let mut batch = vec![first];
    if !wait.is_zero() {
        let until = tokio::time::Instant::now() + wait;
        while batch.len() < max {
            tokio::select! {
                next = queue.next() => {
                    let action = stale_action(&w.target.config.burst, &next.body);
                    if action == Some(StaleAction::Drop) {
                        w.drop_stale(&next, shutdown).await;
                    } else {
                        batch.push(next);
                    }
                }
                _ = tokio::time::sleep_until(until) => break,
                _ = shutdown.wait() => return None,
            }
        }
    }
    Some(if batch.len() == 1 {
        Unit::one(batch.remove(0))
    } else {
        Unit {
            deliveries: batch,
            digest: Some(Heading::Burst),
        }
    })
}

impl<S: Outbox> Worker<S> {
    /// A stale delivery with `stale = "drop"`: counted, logged, and removed from the
    /// store as if delivered (it will not be sent, now or after a restart).
    async fn drop_stale(&self, d: &Delivery<S::Handle>, shutdown: &mut Shutdown) {
        self.metrics.target(self.index).stale.inc();
        tracing::info!(target = self.target.name(), delivery_id = %d.id, tweet_id = super::tweet_id(&d.body), "Dropped a stale tweet (older than stale_after)");
        self.completed(d, shutdown).await;
    }
}

/// What `burst` says to do with the delivery of `body` now: `None` when the target
/// has no stale rule or the tweet is not stale.
fn stale_action(burst: &crate::config::Burst, body: &[u8]) -> Option<StaleAction> {
    burst
        .stale
        .filter(|s| is_stale(body, s.after, attempt::wall_ms()))
        .map(|s| s.action)
}

/// Whether the tweet in `body` is older than `after` at `now_ms`, by its
/// `tweet_published_at`, else its `detected_at`. A tweet with neither (or neither
/// readable) is never stale: when in doubt, it is sent.
pub(crate) fn is_stale(body: &[u8], after: Duration, now_ms: u64) -> bool {
    #[derive(serde::Deserialize)]
    struct Times {
        tweet_published_at: Option<serde_json::Value>,
        detected_at: Option<serde_json::Value>,
    }
    let Ok(times) = serde_json::from_slice::<Times>(body) else {
        return false;
    };
    let at = [times.tweet_published_at, times.detected_at]
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str().and_then(epoch_ms));
    at.is_some_and(|at| now_ms.saturating_sub(at) > crate::retry::millis(after))
}

/// An RFC 3339 time (`2026-03-13T12:00:00Z`, `...00.150Z`, `...00+02:00`) in ms since
/// the epoch.
fn epoch_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    // humantime reads UTC only; an explicit offset is applied here.
    let (base, offset_s) = match s.len().checked_sub(6).map(|i| (i, s.as_bytes()[i])) {
        Some((i, sign @ (b'+' | b'-'))) if s.as_bytes()[i + 3] == b':' => {
            let h: i64 = s.get(i + 1..i + 3)?.parse().ok()?;
            let m: i64 = s.get(i + 4..)?.parse().ok()?;
            let sign = if sign == b'+' { 1 } else { -1 };
            (&s[..i], sign * (h * 3600 + m * 60))
        }
        _ => (s, 0),
    };
    let t = humantime::parse_rfc3339_weak(base).ok()?;
    let ms = i64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()?;
    u64::try_from(ms - offset_s * 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_utc_with_or_without_an_offset() {
        let noon = 1_773_403_200_000; // 2026-03-13T12:00:00Z
        assert_eq!(epoch_ms("2026-03-13T12:00:00Z"), Some(noon));
        assert_eq!(epoch_ms("2026-03-13T12:00:00.150Z"), Some(noon + 150));
        assert_eq!(epoch_ms("2026-03-13T14:00:00+02:00"), Some(noon));
        assert_eq!(epoch_ms("2026-03-13T07:30:00-04:30"), Some(noon));
        assert_eq!(epoch_ms("yesterday"), None);
        assert_eq!(epoch_ms("2026-03-13T12:00:00+0x:00"), None);
    }

    #[test]
    fn staleness_goes_by_publication_then_detection() {
        let noon = 1_773_403_200_000;
        let hour = Duration::from_secs(3600);
        let both = br#"{"tweet_published_at":"2026-03-13T10:00:00Z","detected_at":"2026-03-13T11:59:00Z"}"#;
        assert!(is_stale(both, hour, noon), "published two hours ago");
        let detected = br#"{"detected_at":"2026-03-13T10:00:00Z"}"#;
        assert!(is_stale(detected, hour, noon));
        assert!(!is_stale(detected, 3 * hour, noon));
        let future = br#"{"tweet_published_at":"2026-03-13T13:00:00Z"}"#;
        assert!(!is_stale(future, hour, noon), "a clock behind the tweet's");
        for unknown in [
            &br#"{"tweet_published_at":5}"#[..],
            b"{}",
            b"[1]",
            b"not json",
        ] {
            assert!(!is_stale(unknown, hour, noon));
        }
    }
}
