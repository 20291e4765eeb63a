//! What to do after an attempt: a pure decision, tested case by case.
//!
//! Retried: connection errors, timeouts, 408, 425, 429 and 5xx. A `Retry-After` (seconds
//! or HTTP date) or Discord's JSON `retry_after` is a floor under the next attempt.
//! Dead-lettered: every other non-2xx, and anything past the policy's `max_age` or
//! `max_attempts`. The schedule itself lives in the outbox record, not in a sleeping task.

use std::time::{Duration, SystemTime};

use crate::config::RetryPolicy;
use crate::failure::Cause;

/// How one attempt ended, as far as the decision needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The target answered.
    Response {
        status: u16,
        /// The server's "not before" hint, already parsed (header or body).
        retry_after: Option<Duration>,
    },
    /// No answer: the request timed out.
    Timeout,
    /// No answer: connect, TLS or I/O failure.
    Transport,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again, not before `floor` when the server gave one.
    Retry {
        floor: Option<Duration>,
    },
    /// Never try again.
    Dead,
}

/// The one place that says which answers are worth another attempt.
pub fn classify(result: &AttemptResult) -> Verdict {
    match *result {
        AttemptResult::Response {
            status,
            retry_after,
        } => match status {
            200..=299 => Verdict::Delivered,
            408 | 425 | 429 | 500..=599 => Verdict::Retry { floor: retry_after },
            _ => Verdict::Dead,
        },
        AttemptResult::Timeout | AttemptResult::Transport => Verdict::Retry { floor: None },
    }
}

/// The delay before attempt `attempts + 1`, after `attempts` failures (≥ 1): exponential
/// from `initial`, capped at `max`, with jitter in the upper half so that retries of a
/// burst spread out but never come sooner than half the nominal delay (nor `initial`).
#[cfg(test)]
fn backoff(policy: &RetryPolicy, attempts: u32) -> Duration {
    backoff_at(policy, attempts, fastrand::f64())
}

/// [`backoff`] with the jitter given: `unit` in `[0, 1]` picks the point in the upper half.
fn backoff_at(policy: &RetryPolicy, attempts: u32, unit: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(32);
    let nominal = policy
        .initial
        .saturating_mul(1u32 << exp.min(31))
        .min(policy.max)
        .max(policy.initial.min(policy.max));
    let half = nominal / 2;
    let jitter = half.mul_f64(unit.clamp(0.0, 1.0));
    (half + jitter).max(policy.initial.min(nominal))
}

/// How long a delivery that has made `attempts` attempts may still wait from `now_ms` for
/// its stored `next_attempt_ms`: never longer than the most [`next`] could have given it
/// (the policy's nominal backoff, or the target's `floor` when one is known), so that a
/// schedule written while the wall clock was fast is not honoured once it is corrected.
/// `attempts` 0 (never tried) waits for nothing longer than the first backoff either.
pub(crate) fn wait(
    policy: &RetryPolicy,
    attempts: u32,
    floor: Option<Duration>,
    next_attempt_ms: u64,
    now_ms: u64,
) -> Duration {
    let stored = Duration::from_millis(next_attempt_ms.saturating_sub(now_ms));
    let bound = backoff_at(policy, attempts.max(1), 1.0).max(floor.unwrap_or_default());
    stored.min(bound)
}

/// What a delivery's history says about its next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tried {
    /// Attempts made so far, the failed one included.
    pub attempts: u32,
    /// When the delivery was accepted, ms since the epoch (for `max_age`).
    pub enqueued_ms: u64,
}

/// When a failed delivery is attempted next, or that it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Not before this instant, ms since the epoch.
    At(u64),
    /// Give up: dead-letter it.
    Dead(Cause),
}

/// The retry schedule after a retriable failure at `now_ms`, as a pure function: the
/// policy's backoff (with the jitter point `unit` in `[0, 1]`), never before the target's
/// `floor` (`Retry-After`), never past `max_age`: one last attempt at the deadline rather
/// than none, unless the target itself asked to wait past it.
pub(crate) fn next(
    policy: &RetryPolicy,
    tried: Tried,
    floor: Option<Duration>,
    now_ms: u64,
    unit: f64,
) -> Next {
    let age = Duration::from_millis(now_ms.saturating_sub(tried.enqueued_ms));
    if exhausted(policy, age, tried.attempts) {
        return Next::Dead(Cause::Exhausted {
            attempts: tried.attempts,
            age,
        });
    }
    let delay = backoff_at(policy, tried.attempts, unit).max(floor.unwrap_or_default());
    let deadline = tried.enqueued_ms.saturating_add(millis(policy.max_age));
    let at = now_ms.saturating_add(millis(delay));
    if at <= deadline {
        return Next::At(at);
    }
    if floor.is_some_and(|f| now_ms.saturating_add(millis(f)) > deadline) {
        return Next::Dead(Cause::WaitPastMaxAge {
            max_age: policy.max_age,
        });
    }
    Next::At(deadline)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a delivery has used up its policy: older than `max_age`, or `max_attempts` made.
pub fn exhausted(policy: &RetryPolicy, age: Duration, attempts: u32) -> bool {
    age >= policy.max_age || policy.max_attempts.is_some_and(|max| attempts >= max)
}

/// Parse a `Retry-After` value: delay-seconds (integer, or a float as some servers send)
/// or an HTTP date. Absurd values are capped at one day so a broken header cannot park a
/// target forever.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(24 * 3600);
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(CAP.as_secs_f64())));
        }
        return None;
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO).min(CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_written_a_day_fast_waits_no_longer_than_its_backoff() {
        let p = policy();
        let now = 1_700_000_000_000;
        let day = 86_400_000;
        // Third attempt: nominal backoff 4 s, whatever the stored time says.
        assert_eq!(wait(&p, 2, None, now + day, now), Duration::from_secs(2));
        assert_eq!(wait(&p, 3, None, now + day, now), Duration::from_secs(4));
        assert_eq!(wait(&p, 30, None, now + day, now), Duration::from_secs(60));
        // A known Retry-After floor is honoured up to itself.
        let floor = Some(Duration::from_secs(600));
        assert_eq!(wait(&p, 1, floor, now + day, now), Duration::from_secs(600));
        // A schedule within the bound is kept as it is; a past one waits for nothing.
        assert_eq!(
            wait(&p, 3, None, now + 1500, now),
            Duration::from_millis(1500)
        );
        assert_eq!(wait(&p, 3, None, now - 5, now), Duration::ZERO);
        // Never tried: at most the first backoff.
        assert_eq!(wait(&p, 0, None, now + day, now), Duration::from_secs(1));
    }

    #[test]
    fn every_schedule_next_gives_is_within_the_wait_bound() {
        let p = policy();
        let now = 1_700_000_000_000;
        for attempts in 1..40 {
            for unit in [0.0, 0.5, 1.0] {
                let tried = Tried {
                    attempts,
                    enqueued_ms: now - 1000,
                };
                if let Next::At(at) = next(&p, tried, None, now, unit) {
                    assert_eq!(
                        wait(&p, attempts, None, at, now),
                        Duration::from_millis(at - now),
                        "{attempts} {unit}"
                    );
                }
            }
        }
    }

    fn status(status: u16) -> Verdict {
        classify(&AttemptResult::Response {
            status,
            retry_after: None,
        })
    }

    #[test]
    fn success_is_any_2xx() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(status(s), Verdict::Delivered, "{s}");
        }
    }

    #[test]
    fn transient_answers_are_retried() {
        for s in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(status(s), Verdict::Retry { floor: None }, "{s}");
        }
        assert_eq!(
            classify(&AttemptResult::Timeout),
            Verdict::Retry { floor: None }
        );
        assert_eq!(
            classify(&AttemptResult::Transport),
            Verdict::Retry { floor: None }
        );
    }

    #[test]
    fn other_answers_are_dead_letters() {
        for s in [100, 301, 304, 400, 401, 403, 404, 405, 410, 413, 422] {
            assert_eq!(status(s), Verdict::Dead, "{s}");
        }
    }

    #[test]
    fn retry_after_is_kept_as_a_floor() {
        let r = AttemptResult::Response {
            status: 429,
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            classify(&r),
            Verdict::Retry {
                floor: Some(Duration::from_secs(2))
            }
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 1.5 ", now),
            Some(Duration::from_millis(1500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(
            parse_retry_after("1e30", now),
            Some(Duration::from_secs(86_400))
        );
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
            max_attempts: None,
        }
    }

    #[test]
    fn backoff_grows_and_stays_in_bounds() {
        let p = policy();
        for attempts in 1..100 {
            let nominal = Duration::from_secs(1u64 << (attempts - 1).min(10)).min(p.max);
            for _ in 0..20 {
                let d = backoff(&p, attempts);
                assert!(d >= p.initial, "{attempts}: {d:?}");
                assert!(
                    d >= nominal / 2 && d <= nominal,
                    "{attempts}: {d:?} vs {nominal:?}"
                );
            }
        }
        assert!(backoff(&p, 0) <= Duration::from_secs(1));
    }

    const T0: u64 = 1_700_000_000_000;

    fn tried(attempts: u32) -> Tried {
        Tried {
            attempts,
            enqueued_ms: T0,
        }
    }

    #[test]
    fn next_waits_the_backoff_from_now() {
        let p = policy();
        // attempt 3 failed 10 s after enqueue: nominal 4 s, jitter point 0 = half of it.
        assert_eq!(
            next(&p, tried(3), None, T0 + 10_000, 0.0),
            Next::At(T0 + 12_000)
        );
        assert_eq!(
            next(&p, tried(3), None, T0 + 10_000, 1.0),
            Next::At(T0 + 14_000)
        );
    }

    #[test]
    fn next_never_comes_before_the_targets_floor() {
        let p = policy();
        assert_eq!(
            next(&p, tried(1), Some(Duration::from_secs(30)), T0, 1.0),
            Next::At(T0 + 30_000)
        );
    }

    #[test]
    fn next_is_dead_when_the_policy_ran_out() {
        let mut p = policy();
        let late = T0 + 3_600_000;
        assert_eq!(
            next(&p, tried(7), None, late, 0.5),
            Next::Dead(Cause::Exhausted {
                attempts: 7,
                age: Duration::from_secs(3600)
            })
        );
        p.max_attempts = Some(2);
        assert!(matches!(
            next(&p, tried(2), None, T0 + 1, 0.5),
            Next::Dead(Cause::Exhausted { attempts: 2, .. })
        ));
    }

    #[test]
    fn next_makes_one_last_attempt_at_the_deadline() {
        let p = policy();
        // 59 min 59 s in, backoff would pass the hour: one attempt at the deadline.
        let now = T0 + 3_599_000;
        assert_eq!(next(&p, tried(1), None, now, 1.0), Next::At(T0 + 3_600_000));
    }

    #[test]
    fn next_is_dead_when_the_target_asks_to_wait_past_max_age() {
        let p = policy();
        let now = T0 + 3_500_000;
        assert_eq!(
            next(&p, tried(1), Some(Duration::from_secs(200)), now, 0.0),
            Next::Dead(Cause::WaitPastMaxAge {
                max_age: Duration::from_secs(3600)
            })
        );
    }

    #[test]
    fn exhausted_by_age_or_attempts() {
        let mut p = policy();
        assert!(!exhausted(&p, Duration::from_secs(10), 1000));
        assert!(exhausted(&p, Duration::from_secs(3600), 1));
        p.max_attempts = Some(3);
        assert!(!exhausted(&p, Duration::ZERO, 2));
        assert!(exhausted(&p, Duration::ZERO, 3));
    }
}
