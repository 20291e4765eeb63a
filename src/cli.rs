//! The one-shot commands: `route` (dry run) and `outbox stats | list | retry | purge`.
//!
//! Each writes its report to the given writer so tests can read it; `main` maps errors
//! to exit codes ([`UsageError`] → 2, anything else → 1).

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;

use crate::config::Config;
use crate::event::Event;
pub use crate::outbox::State;
use crate::outbox::{Admin, Listed};
use crate::routes::Router;
use crate::target::Target;

/// Bad input from the user: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

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
        let request = match target.request("msg_dry_run", crate::target::unix_now(), event.raw()) {
            Ok(request) => request,
            Err(e) => {
                // One target's unrenderable event does not hide what the others get.
                writeln!(out, "\n--- {} ({}): {e}", t.name, t.kind.name())?;
                writeln!(out, "(the delivery would be dead-lettered)")?;
                continue;
            }
        };
        writeln!(
            out,
            "\n--- {} ({}): {} {}",
            t.name,
            t.kind.name(),
            request.method,
            crate::secret::redact_url(&request.url)
        )?;
        if let Some(note) = template_note(&t.kind, event.raw()) {
            writeln!(out, "{note}")?;
        }
        if let Some(content_type) = request
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            writeln!(out, "content-type: {content_type}")?;
        }
        out.write_all(&request.body)?;
        writeln!(out)?;
    }
    Ok(())
}

/// For a chat target whose MiniJinja template fails on this event, or renders nothing,
/// why the body shows the default message instead (a run would log it once).
fn template_note(kind: &crate::config::TargetKind, raw: &[u8]) -> Option<String> {
    let template = kind.chat_template()?;
    let [crate::config::TemplatePart::Jinja(jinja)] = template.parts.as_slice() else {
        return None;
    };
    let event: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(raw).ok()?;
    match jinja.render(&event, crate::jinja::as_is) {
        Err(e) => Some(format!(
            "(the template failed on this event: {e}; the default message is sent)"
        )),
        Ok(text) if text.trim().is_empty() => Some(
            "(the template rendered nothing for this event; the default message is sent)".into(),
        ),
        Ok(_) => None,
    }
}

/// Open the store for an admin command, and check that `--target`, when given, names a
/// target of the config or of the store (a removed target may still hold deliveries).
fn open(config: &Config, target: Option<&str>) -> anyhow::Result<Box<dyn Admin>> {
    let store = crate::outbox::open_admin(&config.outbox)?;
    if target.is_some() {
        check_target(config, &store.targets()?, target)?;
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
        let counts = stats.get(&name).copied().unwrap_or_default();
        let (pending, dead) = (counts.pending, counts.dead);
        let note = if config.targets.iter().any(|t| t.name == name) {
            ""
        } else {
            "  (not in the config)"
        };
        writeln!(out, "{name:<24} {pending:>10} {dead:>10}{note}")?;
    }
    let (place, bytes) = store.size()?;
    writeln!(
        out,
        "outbox size: {:.1} MiB on disk ({place})",
        bytes as f64 / f64::from(1 << 20)
    )?;
    Ok(())
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The noun of a state in the commands' reports.
fn noun(state: State) -> &'static str {
    match state {
        State::Pending => "pending deliveries",
        State::Dead => "dead letters",
    }
}

pub fn outbox_list(
    config: &Config,
    target: Option<&str>,
    state: State,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let store = open(config, target)?;
    let listed = store.list(state, target)?;
    for item in &listed {
        match item {
            Listed::Readable {
                id,
                target,
                attempts,
                enqueued_ms,
                next_attempt_ms,
                reason,
                body,
            } => {
                let tweet = serde_json::from_slice::<crate::event::Fields>(body)
                    .ok()
                    .and_then(|f| f.tweet_id)
                    .unwrap_or_default();
                write!(
                    out,
                    "{id} {target} tweet={tweet} attempts={attempts} enqueued={}",
                    time(*enqueued_ms)
                )?;
                if state == State::Pending && *next_attempt_ms > 0 {
                    write!(out, " next={}", time(*next_attempt_ms))?;
                }
                if let Some(reason) = reason {
                    write!(out, " reason={reason:?}")?;
                }
            }
            Listed::Unreadable { id, target, error } => {
                let reason = format!("{error}: `outbox purge` removes it");
                write!(
                    out,
                    "{id} {target} tweet= attempts=0 enqueued={} reason={reason:?}",
                    time(0)
                )?;
            }
        }
        writeln!(out)?;
    }
    writeln!(out, "{} {}", listed.len(), noun(state))?;
    Ok(())
}

/// `outbox verify`: read every record, write nothing; an error (exit 1) when anything
/// is unreadable, after listing each.
pub fn outbox_verify(config: &Config, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = open(config, None)?;
    let found = store.verify()?;
    for (id, target, why) in &found.unreadable {
        writeln!(out, "unreadable {id} target={target} reason={why:?}")?;
    }
    writeln!(
        out,
        "{} pending deliveries, {} dead letters, {} dedupe marks readable; {} unreadable",
        found.pending,
        found.dead,
        found.marks,
        found.unreadable.len()
    )?;
    if found.unreadable.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "{} unreadable record(s) in the outbox: `outbox list` shows them, `outbox purge` (or \
         `purge --dead`) removes them; see README, \"When the outbox is damaged\"",
        found.unreadable.len()
    )
}

pub fn outbox_retry(
    config: &Config,
    target: Option<&str>,
    ids: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let store = open(config, target)?;
    let moved = store
        .retry(target, ids)?
        .map_err(|bad| UsageError(bad.to_string()))?;
    for (id, t) in &moved {
        writeln!(out, "{id} {t} moved back to pending")?;
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
    state: State,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let store = open(config, target)?;
    let n = store.purge(state, target)?;
    writeln!(out, "{n} {} deleted", noun(state))?;
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
    let event = Bytes::from(crate::sample::sample_event(0).to_string());
    let id = format!("msg_send_test_{:016x}", fastrand::u64(..));
    let request = target.request(&id, crate::target::unix_now(), &event)?;
    writeln!(
        out,
        "sending a sample event to {} ({}): {} {}",
        t.name,
        t.kind.name(),
        request.method,
        t.url
    )?;
    let outcome = target.send(request).await;
    let ok = outcome.verdict == crate::retry::Verdict::Delivered;
    match &outcome.failure {
        None => match outcome.status {
            Some(status) => writeln!(out, "delivered: HTTP {status}")?,
            // A nats target: the publish ack is its 2xx.
            None => writeln!(out, "delivered: JetStream acknowledged it")?,
        },
        Some(failure) => writeln!(
            out,
            "{}: {failure}",
            if ok { "delivered" } else { "failed" }
        )?,
    }
    if let Some(advice) = outcome.advice {
        writeln!(out, "what to fix: {advice}")?;
    }
    Ok(ok)
}
