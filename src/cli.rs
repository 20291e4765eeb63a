//! The one-shot commands: `route` (dry run) and `outbox stats | list | retry | purge`.
//!
//! Each writes its report to the given writer so tests can read it; `main` maps errors
//! to exit codes ([`UsageError`] → 2, anything else → 1).

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;

use crate::config::{Config, TargetKind};
use crate::event::Event;
use crate::outbox::{Outbox, State};
use crate::routes::Router;
use crate::target::Target;

/// Bad input from the user: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn kind_name(kind: &TargetKind) -> &'static str {
    match kind {
        TargetKind::Slack(_) => "slack",
        TargetKind::Discord(_) => "discord",
        TargetKind::Http(_) => "http",
    }
}

/// `route`: the matching routes, the targets, and the exact request each target would get.
pub fn route(config: &Config, raw: Vec<u8>, out: &mut dyn Write) -> anyhow::Result<()> {
    let event =
        Event::parse(Bytes::from(raw)).map_err(|e| UsageError(format!("the event is {e}")))?;
    let routing = Router::new(&config.routes, config.targets.len()).route(&event);
    let names = |idx: &[usize], f: &dyn Fn(usize) -> String| {
        idx.iter().map(|&i| f(i)).collect::<Vec<_>>().join(", ")
    };
    writeln!(
        out,
        "event: {} (tweet_id {})",
        event.event_type(),
        event.fields().tweet_id.as_deref().unwrap_or("none")
    )?;
    if !routing.excluded.is_empty() {
        let excluded = names(&routing.excluded, &|i| config.routes[i].name.clone());
        writeln!(out, "excluded by unless: {excluded}")?;
    }
    if routing.targets.is_empty() {
        writeln!(
            out,
            "routes: none match; the event would be dropped (counted as unrouted)"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "routes: {}",
        names(&routing.routes, &|i| config.routes[i].name.clone())
    )?;
    writeln!(
        out,
        "targets: {}",
        names(&routing.targets, &|i| config.targets[i].name.clone())
    )?;
    for &i in &routing.targets {
        let t = &config.targets[i];
        let target = Target::new(t.clone()).context("cannot build the HTTP client")?;
        let request = target.request("msg_dry_run", crate::target::unix_now(), event.raw())?;
        writeln!(
            out,
            "\n--- {} ({}): {} {}",
            t.name,
            kind_name(&t.kind),
            request.method,
            crate::secret::redact_url(&request.url)
        )?;
        out.write_all(&request.body)?;
        writeln!(out)?;
    }
    Ok(())
}

/// Open the store for an admin command, and check that `--target`, when given, names a
/// target of the config or of the store (a removed target may still hold deliveries).
fn open(config: &Config, target: Option<&str>) -> anyhow::Result<Outbox> {
    let store = Outbox::open(&config.outbox.path)?;
    if target.is_some() {
        check_target(config, &store.targets_with_deliveries()?, target)?;
    }
    Ok(store)
}

fn check_target(
    config: &Config,
    store_targets: &[String],
    target: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(t) = target {
        let known =
            config.targets.iter().any(|c| c.name == t) || store_targets.iter().any(|s| s == t);
        if !known {
            return Err(
                UsageError(format!("no target named `{t}` in the config or the outbox")).into(),
            );
        }
    }
    Ok(())
}

pub fn outbox_stats(config: &Config, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = open(config, None)?;
    let stats = store.stats()?;
    writeln!(out, "{:<24} {:>10} {:>10}", "TARGET", "PENDING", "DEAD")?;
    let mut names: Vec<String> = config.targets.iter().map(|t| t.name.clone()).collect();
    names.extend(
        stats
            .keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    for name in names {
        let (pending, dead) = stats.get(&name).copied().unwrap_or_default();
        let note = if config.targets.iter().any(|t| t.name == name) {
            ""
        } else {
            "  (not in the config)"
        };
        writeln!(out, "{name:<24} {pending:>10} {dead:>10}{note}")?;
    }
    Ok(())
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

pub fn outbox_list(
    config: &Config,
    target: Option<&str>,
    dead: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let store = open(config, target)?;
    let state = if dead { State::Dead } else { State::Pending };
    let mut n = 0;
    for item in store.list(state, target) {
        let d = item?;
        let tweet = serde_json::from_slice::<crate::event::Fields>(&d.record.body)
            .ok()
            .and_then(|f| f.tweet_id)
            .unwrap_or_default();
        write!(
            out,
            "{} {} tweet={} attempts={} enqueued={}",
            store.delivery_id(d.seq),
            d.target,
            tweet,
            d.record.attempts,
            time(d.record.enqueued_ms)
        )?;
        if !dead && d.record.next_attempt_ms > 0 {
            write!(out, " next={}", time(d.record.next_attempt_ms))?;
        }
        if !d.record.reason.is_empty() {
            write!(out, " reason={:?}", d.record.reason)?;
        }
        writeln!(out)?;
        n += 1;
    }
    writeln!(
        out,
        "{n} {}",
        if dead {
            "dead letters"
        } else {
            "pending deliveries"
        }
    )?;
    Ok(())
}

pub fn outbox_retry(
    config: &Config,
    target: Option<&str>,
    ids: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let store = open(config, target)?;
    let seqs = ids
        .iter()
        .map(|id| {
            store.parse_delivery_id(id).ok_or_else(|| {
                UsageError(format!(
                    "`{id}` is not a delivery id (see `outbox list --dead`)"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let moved = store.retry_dead(target, &seqs)?;
    for (t, seq) in &moved {
        writeln!(out, "{} {t} moved back to pending", store.delivery_id(*seq))?;
    }
    writeln!(
        out,
        "{} dead letters moved back to pending; `run` delivers them",
        moved.len()
    )?;
    Ok(())
}

pub fn outbox_purge(
    config: &Config,
    target: Option<&str>,
    dead: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let store = open(config, target)?;
    let state = if dead { State::Dead } else { State::Pending };
    let n = store.purge(state, target)?;
    writeln!(
        out,
        "{n} {} deleted",
        if dead {
            "dead letters"
        } else {
            "pending deliveries"
        }
    )?;
    Ok(())
}

/// `send-test`: one realistic sample event to one target, now, bypassing routes and the
/// outbox. Prints the status and the platform's answer; 2xx is success.
pub async fn send_test(config: &Config, name: &str, out: &mut dyn Write) -> anyhow::Result<bool> {
    let Some(t) = config.targets.iter().find(|t| t.name == name) else {
        let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        let hint = crate::config::closest(name, names.iter().copied())
            .map(|n| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        return Err(UsageError(format!("no target named `{name}`{hint}")).into());
    };
    let target = Target::new(t.clone()).context("cannot build the HTTP client")?;
    let event = Bytes::from(crate::demo::sample_event(0).to_string());
    let id = format!("msg_send_test_{:016x}", fastrand::u64(..));
    let request = target.request(&id, crate::target::unix_now(), &event)?;
    writeln!(
        out,
        "sending a sample event to {} ({}): {} {}",
        t.name,
        kind_name(&t.kind),
        request.method,
        t.url
    )?;
    let answer = target.send(request).await;
    let judgement = target.judge(&answer);
    let ok = judgement.verdict == crate::retry::Verdict::Delivered;
    writeln!(
        out,
        "{}: {}",
        if ok { "delivered" } else { "failed" },
        judgement.reason
    )?;
    if let Some(advice) = judgement.advice {
        writeln!(out, "what to fix: {advice}")?;
    }
    Ok(ok)
}
