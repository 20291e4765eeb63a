//! Waiting on a condition with a deadline, woken by change notifications.
//!
//! Every recorder in the harness (requests, connections, log lines) owns a [`Changes`]
//! and bumps it when it records something. [`wait_until`] re-checks its condition on
//! every bump (and at least every 20 ms, for conditions nothing bumps, such as a process
//! exiting), and panics at the deadline with what it waited for and what it last saw.

use std::fmt::Display;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// A change counter that waiters can subscribe to. Bumping is synchronous, so plain
/// threads (the log readers) can bump it too.
#[derive(Debug)]
pub struct Changes(watch::Sender<u64>);

impl Default for Changes {
    fn default() -> Self {
        Changes(watch::Sender::new(0))
    }
}

impl Changes {
    pub fn bump(&self) {
        self.0.send_modify(|v| *v += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// The longest a waiter sleeps between two checks when nothing is bumped.
const POLL: Duration = Duration::from_millis(20);

/// Checks `probe` until it returns `Ok`, re-checking on each change of `changes`.
///
/// `probe` returns `Err(what it saw)` while the condition does not hold; at the deadline
/// the test panics with `what` and that description.
pub async fn wait_until<T>(
    what: impl Display,
    deadline: Duration,
    changes: &Changes,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let mut rx = changes.subscribe();
    let start = Instant::now();
    let end = start + deadline;
    loop {
        rx.borrow_and_update();
        let seen = match probe() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        let now = Instant::now();
        if now >= end {
            panic!(
                "timed out after {:.1?} waiting for {what}\n  saw: {seen}",
                now - start
            );
        }
        let nap = (end - now).min(POLL);
        if let Ok(Err(_)) = tokio::time::timeout(nap, rx.changed()).await {
            // Sender gone: nothing will bump any more, fall back to polling.
            tokio::time::sleep(nap).await;
        }
    }
}

/// Like [`wait_until`] without a change source: polls every few milliseconds.
pub async fn poll_until<T>(
    what: impl Display,
    deadline: Duration,
    probe: impl FnMut() -> Result<T, String>,
) -> T {
    let changes = Changes::default();
    wait_until(what, deadline, &changes, probe).await
}

/// Shortens a long description for a panic message: the first and last few items.
pub fn summarize<I>(items: I, keep: usize) -> String
where
    I: IntoIterator,
    I::Item: std::fmt::Debug,
    I::IntoIter: ExactSizeIterator + DoubleEndedIterator + Clone,
{
    let items = items.into_iter();
    let len = items.len();
    if len <= 2 * keep {
        return format!("{:?}", items.collect::<Vec<_>>());
    }
    let first: Vec<_> = items.clone().take(keep).collect();
    let mut last: Vec<_> = items.rev().take(keep).collect();
    last.reverse();
    format!("{len} items: {first:?} ... {last:?}")
}
