//! A per-target limiter: a sliding window of the last requests, plus a "pause until" the
//! target asked for.
//!
//! `rate_limit = "N/period"` means what it says: never more than N requests in any
//! window of that period. A token bucket (N at once, then one every period/N) would let
//! up to 2N-1 through in one window, which a platform counting per window (Telegram's 20
//! a minute in a group, Teams' 4 a second) answers with 429s. So the limiter remembers
//! when its last N requests went, and the next may go one period after the oldest.
//!
//! Bursts queue here instead of earning 429s; a 429's `Retry-After` or Discord's
//! `X-RateLimit-Reset-After` pauses every request to that target, not just the one that
//! was refused. No lock is held across an await: callers learn how long to wait, sleep,
//! and ask again.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimit;

/// How much longer than the configured period the window is.
const SAFETY: f64 = 1.02;

#[derive(Debug)]
pub struct RateLimiter {
    /// Shared by the target's attempts; never held across an await.
    state: Mutex<State>,
    /// The window and how many requests it holds; `None` for no proactive limit.
    limit: Option<Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    /// Requests allowed in any one window (also the burst after a quiet spell).
    count: usize,
    /// The period, 2 % longer: a request's trip to the platform varies (the first one
    /// also opens the connection), so two sent exactly a period apart can arrive closer
    /// than that and earn the 429 the limiter exists to avoid.
    length: Duration,
}

#[derive(Debug)]
struct State {
    /// When the last `count` requests went (oldest first); for a limit of one per
    /// period, when the last one was answered.
    sent: VecDeque<Instant>,
    /// No request before this: the platform asked for a pause (a 429, a dry bucket).
    paused_until: Option<Instant>,
}

impl RateLimiter {
    pub fn new(limit: Option<RateLimit>) -> RateLimiter {
        let limit = limit.map(|l| Window {
            count: usize::try_from(l.count).unwrap_or(usize::MAX).max(1),
            length: l.per.mul_f64(SAFETY),
        });
        RateLimiter {
            state: Mutex::new(State {
                // Grows to `count` at most, and only as fast as requests go.
                sent: VecDeque::with_capacity(limit.map_or(0, |l| l.count.min(64))),
                paused_until: None,
            }),
            limit,
        }
    }

    /// Take a slot in the window now, or say how long to wait before asking again.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.wait_at(&mut s, now)?;
        if let Some(limit) = self.limit {
            if s.sent.len() >= limit.count {
                s.sent.pop_front();
            }
            s.sent.push_back(now);
        }
        Ok(())
    }

    /// Zero wait at `now`, or the time left of a pause (which it clears once over) or
    /// until the oldest request of a full window leaves it.
    fn wait_at(&self, s: &mut State, now: Instant) -> Result<(), Duration> {
        if let Some(until) = s.paused_until {
            if until > now {
                return Err(until - now);
            }
            s.paused_until = None;
        }
        match (self.limit, s.sent.front()) {
            (Some(limit), Some(&oldest)) if s.sent.len() >= limit.count => {
                let free = oldest + limit.length;
                if free > now { Err(free - now) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    /// How long until a request could go, without taking a slot (zero: now). A digest
    /// target asks this to learn whether a delivery would have to wait.
    pub fn wait_time(&self) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.wait_at(&mut s, Instant::now())
            .err()
            .unwrap_or(Duration::ZERO)
    }

    /// Wait for a slot.
    pub async fn acquire(&self) {
        while let Err(wait) = self.try_acquire() {
            tokio::time::sleep(wait).await;
        }
    }

    /// An answer came back. For a limit of one request per period, the next period starts
    /// now rather than when the request left: the platform saw the request somewhere
    /// between the two, so only this spacing guarantees two requests never arrive closer
    /// than the period (at the cost of the round trip, which is small next to "1/s").
    /// Limits of several per period count from when each request left.
    pub fn answered(&self) {
        if self.limit.is_some_and(|l| l.count == 1) {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(last) = s.sent.back_mut() {
                *last = Instant::now();
            }
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
    async fn five_per_two_seconds_allows_a_burst_of_five_and_never_six_in_a_window() {
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
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert!(
            start.elapsed() <= Duration::from_millis(2_040),
            "the safety margin stays small"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_of_the_period_ever_holds_more_than_the_count() {
        let l = RateLimiter::new(Some(RateLimit {
            count: 4,
            per: Duration::from_secs(1),
        }));
        let start = Instant::now();
        let mut times = Vec::new();
        for i in 0..40u64 {
            // Requests come unevenly: bursts, then gaps.
            if i % 7 == 0 {
                tokio::time::sleep(Duration::from_millis(130 * (i % 3))).await;
            }
            l.acquire().await;
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(in_window <= 4, "{in_window} requests within 1 s of {t:?}");
        }
        // And not slower than the limit: 40 at 4 a second is 9 full windows after the
        // first 4 (9 × 1.02 s), plus at most the 780 ms the requests themselves paused.
        assert!(
            times[39] <= Duration::from_millis(9_180 + 780),
            "{:?}",
            times[39]
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
