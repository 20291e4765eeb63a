//! Rejections logged at a bounded rate.
//!
//! A flood of bad `/ingest` requests (a sender with the wrong secret retrying, a scanner)
//! must not turn into a flood of log lines: each kind of rejection writes at most one
//! line a second, and that line says how many were left out since the one before.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most one line per this long, per kind.
const EVERY: Duration = Duration::from_secs(1);

/// One kind of rejection's log budget.
#[derive(Debug, Default)]
pub(crate) struct Quiet {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the last line was written.
    last: Option<Instant>,
    /// Rejections not logged since then.
    suppressed: u64,
}

impl Quiet {
    /// `Some(how many were left out since the last line)` when a line may be written
    /// now; `None` when this one is only counted.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if s.last.is_some_and(|t| now.duration_since(t) < EVERY) {
            s.suppressed += 1;
            return None;
        }
        s.last = Some(now);
        Some(std::mem::take(&mut s.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_a_second_and_it_counts_what_was_left_out() {
        let quiet = Quiet::default();
        assert_eq!(quiet.admit(), Some(0), "the first is logged");
        for _ in 0..99 {
            assert_eq!(quiet.admit(), None);
        }
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(quiet.admit(), None, "still within the second");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(quiet.admit(), Some(100), "99 + 1 left out");
        tokio::time::advance(EVERY).await;
        assert_eq!(quiet.admit(), Some(0));
    }
}
