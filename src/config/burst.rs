//! A chat target's `digest`, `stale_after` and `stale` keys: how it copes with a backlog.
//!
//! Both are about what a channel sees after deliveries piled up (a burst behind a 1/s
//! rate limit, an outage): folding them into fewer messages instead of queueing dozens
//! of alerts, and not posting an hour-old tweet as if it were breaking.

use super::document::{Item, Table};
use super::error::Problem;
use super::interpolate::Env;
use super::{Burst, Stale, StaleAction, values};

/// The most tweets one digest lists: every platform's message fits this many with
/// their text cut to a readable length (Slack's 50 blocks, Discord's 4,096-character
/// description, Telegram's 4,096 characters, Teams' 28 KB).
pub(crate) const DIGEST_MAX: usize = 25;

/// Reads `digest`, `stale_after` and `stale` (in each chat kind's list of keys). `concurrency` is the target's own key, if set: a
/// folding target sends one message at a time (a digest is made of what waits behind
/// the one in flight), so more is refused rather than silently ignored.
pub(super) fn burst(
    t: &Table,
    env: Env,
    concurrency: Option<(&Item, usize)>,
) -> Result<Burst, Problem> {
    let digest = t.opt("digest", digest)?;
    let after = t.opt("stale_after", |item| {
        let d = super::schema::duration(item, env)?;
        if d.is_zero() {
            return Err(item.problem("must be longer than 0s"));
        }
        Ok(d)
    })?;
    let action = t.opt("stale", |item| {
        let actions = [
            ("digest", Some(StaleAction::Digest)),
            ("drop", Some(StaleAction::Drop)),
            ("send", None),
        ];
        let s = item.string(env)?;
        values::choice(&s, "stale action", &actions)
            .map_err(|invalid| item.problem(invalid.message).suggest(invalid.suggestion))
    })?;
    let stale = match (action.flatten(), after) {
        (Some(action), Some(after)) => Some(Stale { after, action }),
        (Some(_), None) => {
            let item = t.get("stale").expect("read above");
            return Err(item.key_problem(
                "needs `stale_after` too: the age past which a tweet counts as stale (like \"15m\")",
            ));
        }
        (None, _) => None,
    };
    let burst = Burst { digest, stale };
    if let Some((item, n)) = concurrency
        && n > 1
        && burst.folds()
    {
        return Err(item.problem(
            "must be 1 on a target with `digest` or `stale`: such a target sends one message at a time and folds what waits behind it",
        ));
    }
    Ok(burst)
}

/// `digest = { max = N }`.
fn digest(item: &Item) -> Result<usize, Problem> {
    let t = item.table()?;
    t.check_keys(&["max"])?;
    let max = t.require("max", "how many tweets one digest message may list")?;
    let n = max.integer()?;
    usize::try_from(n)
        .ok()
        .filter(|n| (2..=DIGEST_MAX).contains(n))
        .ok_or_else(|| max.problem(format!("must be between 2 and {DIGEST_MAX}")))
}

impl Burst {
    /// Whether the target folds deliveries at all (and so runs one message at a time).
    pub fn folds(&self) -> bool {
        self.digest.is_some() || self.stale.is_some()
    }
}

/// Shown by `check`: "digest of up to 10, stale after 15m: digest".
pub(super) fn describe(burst: &Burst) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(max) = burst.digest {
        parts.push(format!("digest of up to {max}"));
    }
    if let Some(stale) = &burst.stale {
        let action = match stale.action {
            StaleAction::Digest => "folded into one message",
            StaleAction::Drop => "dropped",
        };
        parts.push(format!(
            "tweets older than {} {action}",
            super::summary::duration(stale.after)
        ));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}
