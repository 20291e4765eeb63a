//! Why a delivery is not delivered (yet): typed, stored in the outbox, printed for people.
//!
//! A [`Failure`] is what went wrong with the last attempt (or why none was made); a
//! [`Cause`] is why a dead letter was given up on. Both are stored with the delivery, so
//! `outbox list` can say why, and rendered to the same sentences the logs use. Keeping
//! them typed, not as strings, is what lets a log line carry the `status` as a field and
//! lets a later version read what an earlier one stored.

use std::fmt;
use std::time::Duration;

/// What went wrong with a delivery's last attempt, or why it was not attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The target answered with a status that is not 2xx.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The first KiB of the answer, lossy UTF-8 (may be empty).
        body: String,
    },
    /// No answer within the target's `timeout`.
    TimedOut {
        /// The timeout that ran out.
        after: Duration,
    },
    /// No answer at all: connect, TLS or I/O failure (the text never holds the URL).
    Unreachable {
        /// The transport error, as a readable chain.
        error: String,
    },
    /// The request could not be made from the event (a chat target fed a non-object).
    Unrenderable {
        /// Why rendering failed.
        error: String,
    },
    /// Not sent: the platform said earlier that the webhook no longer exists.
    TargetGone {
        /// The platform's verdict in a sentence.
        why: String,
    },
    /// badger-relay itself failed while delivering it (a panic: a bug).
    Internal,
    /// Stored by a version that kept failures as text (record format 1).
    Recorded(String),
}

impl Failure {
    /// The HTTP status, when the target answered.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Failure::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Rejected { status, body } if body.is_empty() => write!(f, "HTTP {status}"),
            Failure::Rejected { status, body } => write!(f, "HTTP {status}: {body}"),
            Failure::TimedOut { after } => write!(f, "timeout after {after:?}"),
            Failure::Unreachable { error } => f.write_str(error),
            Failure::Unrenderable { error } => {
                write!(f, "cannot render the event for this target: {error}")
            }
            Failure::TargetGone { why } => write!(f, "not sent: {why}"),
            Failure::Internal => f.write_str(
                "badger-relay failed while delivering this (a bug: please report it with the log)",
            ),
            Failure::Recorded(text) => f.write_str(text),
        }
    }
}

/// Why a delivery was moved to the dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The failure itself is final (a 4xx, a deleted webhook, an event that cannot be rendered).
    Permanent,
    /// The retry policy ran out (`max_age` or `max_attempts`).
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// How long after it was accepted it was given up on.
        age: Duration,
    },
    /// The target asked for a wait (`Retry-After`) that ends past `max_age`.
    WaitPastMaxAge {
        /// The policy's `max_age`, for the sentence.
        max_age: Duration,
    },
}

/// A dead letter's full reason: why it was given up on, and the last failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetter {
    /// Why it was given up on.
    pub cause: Cause,
    /// The last failure.
    pub failure: Failure,
}

impl fmt::Display for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cause {
            Cause::Permanent => write!(f, "{}", self.failure),
            Cause::Exhausted { attempts, age } => write!(
                f,
                "gave up after {attempts} attempts over {}: {}",
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                self.failure
            ),
            Cause::WaitPastMaxAge { max_age } => write!(
                f,
                "the target asked to wait past max_age ({}): {}",
                humantime::format_duration(max_age),
                self.failure
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_the_ones_the_logs_always_used() {
        let rejected = Failure::Rejected {
            status: 503,
            body: "busy".into(),
        };
        assert_eq!(rejected.to_string(), "HTTP 503: busy");
        assert_eq!(rejected.status(), Some(503));
        let bare = Failure::Rejected {
            status: 404,
            body: String::new(),
        };
        assert_eq!(bare.to_string(), "HTTP 404");
        let timeout = Failure::TimedOut {
            after: Duration::from_millis(500),
        };
        assert_eq!(timeout.to_string(), "timeout after 500ms");
        assert_eq!(timeout.status(), None);
        let dead = DeadLetter {
            cause: Cause::Exhausted {
                attempts: 3,
                age: Duration::from_millis(61_500),
            },
            failure: rejected.clone(),
        };
        assert_eq!(
            dead.to_string(),
            "gave up after 3 attempts over 1m 1s: HTTP 503: busy"
        );
        let wait = DeadLetter {
            cause: Cause::WaitPastMaxAge {
                max_age: Duration::from_secs(60),
            },
            failure: bare,
        };
        assert_eq!(
            wait.to_string(),
            "the target asked to wait past max_age (1m): HTTP 404"
        );
    }
}
