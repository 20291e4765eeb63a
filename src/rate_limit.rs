//! A per-target limiter: a proactive token bucket plus a "pause until" the target asked for.
//!
//! Bursts queue here instead of earning 429s; a 429's `Retry-After` or Discord's
//! `X-RateLimit-Reset-After` pauses every request to that target, not just the one that
//! was refused. No lock is held across an await: callers learn how long to wait, sleep,
//! and ask again.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimit;

/// How much slower than the configured rate requests are spaced.
const SAFETY: f64 = 1.02;

#[derive(Debug)]
pub struct RateLimiter {
    /// Shared by the target's attempts; never held across an await.
    state: Mutex<State>,
    /// Time per token; `None` for no proactive limit.
    interval: Option<Duration>,
    /// How many requests may go at once after a quiet spell (the limit's count).
    burst: f64,
}

#[derive(Debug)]
struct State {
    /// Requests that may start now (may go below zero: a debt paid off over time).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    refilled: Instant,
    /// No request before this: the platform asked for a pause (a 429, a dry bucket).
    paused_until: Option<Instant>,
}

impl RateLimiter {
    pub fn new(limit: Option<RateLimit>) -> RateLimiter {
        let burst = limit.map_or(1.0, |l| f64::from(l.count));
        RateLimiter {
            state: Mutex::new(State {
                tokens: burst,
                refilled: Instant::now(),
                paused_until: None,
            }),
            // 2 % slower than the limit: a request's trip to the platform varies (the first
            // one also opens the connection), so two sent exactly 1/rate apart can arrive
            // closer than that and earn the 429 the limiter exists to avoid.
            interval: limit.map(|l| (l.per / l.count).mul_f64(SAFETY)),
            burst,
        }
    }

    /// Take a token now, or say how long to wait before asking again.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let tokens = self.tokens_at(&mut s, now)?;
        if self.interval.is_some() {
            s.tokens = if tokens >= 1.0 { tokens - 1.0 } else { tokens };
            s.refilled = now;
        }
        self.verdict(tokens)
    }

    /// The tokens there are at `now`, or the time left of a pause (which it clears once
    /// over). Only `try_acquire` stores the refill.
    fn tokens_at(&self, s: &mut State, now: Instant) -> Result<f64, Duration> {
        if let Some(until) = s.paused_until {
            if until > now {
                return Err(until - now);
            }
            s.paused_until = None;
        }
        Ok(match self.interval {
            None => f64::INFINITY,
            Some(interval) => {
                let elapsed = now.duration_since(s.refilled);
                (s.tokens + elapsed.as_secs_f64() / interval.as_secs_f64()).min(self.burst)
            }
        })
    }

    /// Go with `tokens` available, or the wait until one is.
    fn verdict(&self, tokens: f64) -> Result<(), Duration> {
        match self.interval {
            Some(interval) if tokens < 1.0 => Err(interval.mul_f64(1.0 - tokens)),
            _ => Ok(()),
        }
    }

    /// How long until a token would be free, without taking one (zero: now). A digest
    /// target asks this to learn whether a delivery would have to wait.
    pub fn wait_time(&self) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.tokens_at(&mut s, Instant::now())
            .and_then(|tokens| self.verdict(tokens))
            .err()
            .unwrap_or(Duration::ZERO)
    }

    /// Wait for a token.
    pub async fn acquire(&self) {
        while let Err(wait) = self.try_acquire() {
            tokio::time::sleep(wait).await;
        }
    }

    /// An answer came back. For a limit of one request per period, the next period starts
    /// now rather than when the request left: the platform saw the request somewhere
    /// between the two, so only this spacing guarantees two requests never arrive closer
    /// than the period (at the cost of the round trip, which is small next to "1/s").
    /// Limits with a burst keep plain token-bucket timing.
    pub fn answered(&self) {
        if self.interval.is_some() && self.burst <= 1.0 {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.tokens = s.tokens.min(0.0);
            s.refilled = Instant::now();
        }
    }

    /// No request before `now + d` (a 429, or a rate-limit bucket that ran dry).
    pub fn pause_for(&self, d: Duration) {
        let now = Instant::now();
        let until = now
            .checked_add(d)
            .unwrap_or(now + Duration::from_secs(86_400));
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.paused_until.is_none_or(|p| p < until) {
            s.paused_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wait_time_says_how_long_without_taking_a_token() {
        let l = RateLimiter::new(Some(RateLimit {
            count: 1,
            per: Duration::from_secs(1),
        }));
        assert_eq!(l.wait_time(), Duration::ZERO);
        assert_eq!(l.wait_time(), Duration::ZERO, "asking took a token");
        l.acquire().await;
        let wait = l.wait_time();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_millis(1020),
            "{wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let wait = l.wait_time();
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(520),
            "{wait:?}"
        );
        l.pause_for(Duration::from_secs(5));
        assert_eq!(l.wait_time(), Duration::from_secs(5));
        assert!(RateLimiter::new(None).wait_time().is_zero());
    }

    #[tokio::test(start_paused = true)]
    async fn one_per_second_spaces_requests() {
        let l = RateLimiter::new(Some(RateLimit {
            count: 1,
            per: Duration::from_secs(1),
        }));
        let start = Instant::now();
        let mut times = vec![];
        for _ in 0..4 {
            l.acquire().await;
            times.push(start.elapsed());
        }
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(999), "{times:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_per_period_counts_from_the_answer() {
        let l = RateLimiter::new(Some(RateLimit {
            count: 1,
            per: Duration::from_secs(1),
        }));
        l.acquire().await;
        let sent = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await; // the round trip
        l.answered();
        l.acquire().await;
        assert!(
            sent.elapsed() >= Duration::from_millis(1300),
            "{:?}",
            sent.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn five_per_two_seconds_allows_a_burst_of_five() {
        let l = RateLimiter::new(Some(RateLimit {
            count: 5,
            per: Duration::from_secs(2),
        }));
        let start = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(1));
        l.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(400));
        assert!(
            start.elapsed() <= Duration::from_millis(420),
            "the safety margin stays small"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_request() {
        let l = RateLimiter::new(None);
        l.acquire().await;
        l.pause_for(Duration::from_secs(2));
        let start = Instant::now();
        l.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(2));
        l.pause_for(Duration::from_secs(5));
        l.pause_for(Duration::from_secs(1));
        assert!(
            l.try_acquire().unwrap_err() > Duration::from_secs(4),
            "a shorter pause does not cut a longer one"
        );
    }
}
