//! What a reloaded config changes, worked out before anything is touched.
//!
//! [`plan`] compares the running config with a freshly loaded (and so already valid)
//! one. A change that only a restart can apply (`[outbox]`, `[server]`) refuses the
//! whole reload: the running config stays as it is. Anything else becomes a [`Plan`]:
//! which targets were added, removed or changed, and whether the source must reconnect.
//!
//! Targets are compared field by field, secrets included (a rotated webhook URL is a
//! change), but only in memory: nothing here is ever printed except target names.
//!
//! # Target slots
//! The outbox, the metrics and the workers know a target by a slot number. Slots are
//! handed out by name and never taken back for the life of the process: the targets of
//! the config at start get slots 0.., a target added by a reload gets the next free one,
//! and a removed target keeps its slot (its deliveries stay in the outbox under its
//! name), so that a target that comes back finds its queue where it left it. A config's
//! own target index (what its routes name) is mapped to a slot by [`Slots::of`].

use crate::config::{Config, TargetConfig, TargetKind};

/// Why a valid config cannot be applied without a restart.
#[derive(Debug, thiserror::Error)]
#[error("{0} changed, which needs a restart: the reload was refused and the running config kept")]
pub(crate) struct NeedsRestart(pub String);

/// Every target name that ever had a slot, by slot.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots(pub Vec<String>);

impl Slots {
    /// The slot of each target of `config`, by the config's index, adding slots for new
    /// names.
    pub(crate) fn of(&mut self, config: &Config) -> Vec<usize> {
        config
            .targets
            .iter()
            .map(|t| match self.0.iter().position(|n| *n == t.name) {
                Some(slot) => slot,
                None => {
                    self.0.push(t.name.clone());
                    self.0.len() - 1
                }
            })
            .collect()
    }
}

/// What applying a new config does.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Targets only in the new config.
    pub added: Vec<String>,
    /// Targets only in the old config.
    pub removed: Vec<String>,
    /// Targets in both whose settings differ: their workers restart.
    pub changed: Vec<String>,
    /// `[source]` (or the global `[tls]` it trusts) differs: reconnect.
    pub reconnect: bool,
}

/// What `new` changes in `old`, or why it needs a restart.
pub(crate) fn plan(old: &Config, new: &Config) -> Result<Plan, NeedsRestart> {
    let (o, n) = (&old.outbox, &new.outbox);
    if o.backend != n.backend
        || o.path != n.path
        || o.min_free != n.min_free
        || o.max_size != n.max_size
        || o.dedupe_window != n.dedupe_window
    {
        return Err(NeedsRestart("[outbox]".into()));
    }
    match (&old.server, &new.server) {
        (None, None) => {}
        (Some(o), Some(n)) if o.listen != n.listen => {
            return Err(NeedsRestart(format!(
                "[server] listen ({} to {})",
                o.listen, n.listen
            )));
        }
        (Some(o), Some(n)) if o.ingest_secret != n.ingest_secret => {
            return Err(NeedsRestart("[server] ingest_secret".into()));
        }
        (Some(_), Some(_)) => {}
        _ => return Err(NeedsRestart("[server] (added or removed)".into())),
    }
    if old.source.api_key.is_some() != new.source.api_key.is_some() {
        return Err(NeedsRestart(
            "source.api_key (set or unset: whether the stream runs at all)".into(),
        ));
    }
    if o.backend == crate::config::OutboxBackend::Nats {
        let names = |c: &Config| c.targets.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        let (mut before, mut after) = (names(old), names(new));
        before.sort();
        after.sort();
        if before != after {
            return Err(NeedsRestart(
                "the set of targets, with backend = \"nats\" (its consumers are made at start)"
                    .into(),
            ));
        }
    }
    let mut plan = Plan::default();
    for t in &new.targets {
        match old.targets.iter().find(|o| o.name == t.name) {
            None => plan.added.push(t.name.clone()),
            Some(o) if !same_target(o, t) => plan.changed.push(t.name.clone()),
            Some(_) => {}
        }
    }
    plan.removed = old
        .targets
        .iter()
        .filter(|o| !new.targets.iter().any(|t| t.name == o.name))
        .map(|o| o.name.clone())
        .collect();
    let (o, n) = (&old.source, &new.source);
    plan.reconnect = o.url != n.url
        || o.api_key != n.api_key
        || o.idle_timeout != n.idle_timeout
        || o.max_message_size != n.max_message_size
        || o.reconnect != n.reconnect
        || o.proxy != n.proxy
        || o.tls != n.tls;
    Ok(plan)
}

/// Whether a worker built on `a` behaves as one built on `b`.
pub(crate) fn same_target(a: &TargetConfig, b: &TargetConfig) -> bool {
    a.name == b.name
        && a.url == b.url
        && a.concurrency == b.concurrency
        && a.rate_limit == b.rate_limit
        && a.timeout == b.timeout
        && a.retry == b.retry
        && a.dedupe == b.dedupe
        && a.tls == b.tls
        && same_kind(&a.kind, &b.kind)
}

/// Platform options: their `Debug` form is complete but redacts secrets, so the secret
/// parts (an http target's headers and signing key) are compared on their own.
fn same_kind(a: &TargetKind, b: &TargetKind) -> bool {
    if format!("{a:?}") != format!("{b:?}") {
        return false;
    }
    match (a, b) {
        (TargetKind::Http(a), TargetKind::Http(b)) => {
            a.headers == b.headers && a.signing_key == b.signing_key
        }
        _ => true,
    }
}

impl std::fmt::Display for Plan {
    /// `targets added [a], removed [b], changed [c]; source reconnects`, or what is left.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (what, names) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if !names.is_empty() {
                parts.push(format!("targets {what}: {}", names.join(", ")));
            }
        }
        if self.reconnect {
            parts.push("source reconnects".into());
        }
        if parts.is_empty() {
            parts.push("no target or source change".into());
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        let env = |_: &str| None;
        Config::parse(text, std::path::Path::new("t.toml"), &env).expect("a valid config")
    }

    /// Two http targets `a` and `b` (`a` with `a_extra`), a route to both, and `tail`.
    fn config(a_extra: &str, tail: &str) -> Config {
        parse(&format!(
            "[targets.a]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/a\"\n{a_extra}\n\
             [targets.b]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/b\"\n\
             [[routes]]\ntargets = [\"a\", \"b\"]\n{tail}"
        ))
    }

    #[test]
    fn an_identical_file_changes_nothing() {
        let plan = plan(&config("", ""), &config("", "")).unwrap();
        assert_eq!(plan, Plan::default());
        assert_eq!(plan.to_string(), "no target or source change");
    }

    #[test]
    fn secrets_are_compared_though_they_print_redacted() {
        let old = config("headers = { Authorization = \"Bearer one\" }", "");
        let new = config("headers = { Authorization = \"Bearer two\" }", "");
        assert_eq!(plan(&old, &new).unwrap().changed, ["a"]);
        let old = config("signing_secret = \"whsec_b25l\"", "");
        let new = config("signing_secret = \"whsec_dHdv\"", "");
        assert_eq!(plan(&old, &new).unwrap().changed, ["a"]);
        let new = parse(
            "[targets.a]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/other\"\n\
             [targets.b]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/b\"\n\
             [[routes]]\ntargets = [\"a\", \"b\"]\n",
        );
        assert_eq!(plan(&config("", ""), &new).unwrap().changed, ["a"]);
    }

    #[test]
    fn options_and_limits_are_changes_and_reordering_is_not() {
        for extra in [
            "concurrency = 7",
            "rate_limit = \"3/s\"",
            "timeout = \"3s\"",
            "method = \"PUT\"",
            "retry = { initial = \"2s\" }",
            "dedupe = \"tweet\"",
        ] {
            let p = plan(&config("", ""), &config(extra, "")).unwrap();
            assert_eq!(p.changed, ["a"], "{extra}");
        }
        let reordered = parse(
            "[targets.b]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/b\"\n\
             [targets.a]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/a\"\n\
             [[routes]]\ntargets = [\"b\"]\n",
        );
        assert_eq!(plan(&config("", ""), &reordered).unwrap(), Plan::default());
    }

    #[test]
    fn added_and_removed_targets_and_a_changed_source() {
        let old = config("", "");
        let new = parse(
            "[source]\nidle_timeout = \"30s\"\n\
             [targets.a]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/a\"\n\
             [targets.c]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/c\"\n\
             [[routes]]\ntargets = [\"a\", \"c\"]\n",
        );
        let p = plan(&old, &new).unwrap();
        assert_eq!((p.added, p.removed), (vec!["c".into()], vec!["b".into()]));
        assert!(p.reconnect);
    }

    #[test]
    fn outbox_and_server_changes_need_a_restart() {
        let e = plan(
            &config("", ""),
            &config("", "[outbox]\ndedupe_window = \"1h\"\n"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("[outbox] changed, which needs a restart")
        );
        // `[outbox] retry` is each target's default: applied, not refused.
        let p = plan(
            &config("", ""),
            &config("", "[outbox]\nretry = { initial = \"3s\" }\n"),
        )
        .unwrap();
        assert_eq!(p.changed, ["a", "b"]);
        let server = |listen: &str| config("", &format!("[server]\nlisten = \"{listen}\"\n"));
        let e = plan(&server("127.0.0.1:1"), &server("127.0.0.1:2")).unwrap_err();
        assert!(
            e.to_string()
                .contains("[server] listen (127.0.0.1:1 to 127.0.0.1:2)")
        );
        assert!(plan(&config("", ""), &server("127.0.0.1:1")).is_err());
    }

    #[test]
    fn slots_are_kept_by_name_and_new_names_get_new_ones() {
        let mut slots = Slots::default();
        assert_eq!(slots.of(&config("", "")), [0, 1]);
        let reordered_with_new = parse(
            "[targets.c]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/c\"\n\
             [targets.a]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/a\"\n\
             [[routes]]\ntargets = [\"a\"]\n",
        );
        assert_eq!(slots.of(&reordered_with_new), [2, 0]);
        assert_eq!(slots.of(&config("", "")), [0, 1]);
        assert_eq!(slots.0, ["a", "b", "c"]);
    }
}
