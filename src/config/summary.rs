//! What `badger-relay check` prints: what the config will do, every secret masked.
//!
//! Durations, sizes and rates are written back in the config's own syntax (`75s`,
//! `1MiB`, `5/2s`) so a line can be pasted into the file.

use std::fmt::Write as _;
use std::time::Duration;

use super::{
    ChatId, Config, DedupeMode, Exclusion, HttpMethod, RateLimit, RetryPolicy, RouteConfig,
    SourceConfig, TargetConfig, TargetKind,
};
use crate::secret::redact_url;

pub(crate) fn render(config: &Config) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_summary(&mut out, config);
    out
}

fn write_summary(out: &mut String, c: &Config) -> std::fmt::Result {
    writeln!(out, "config: {}", c.path.display())?;

    let s = &c.source;
    writeln!(out, "source: {}", source_url(s))?;
    if s.api_key.is_none() {
        writeln!(out, "  api_key: not set (required by run)")?;
    }
    writeln!(
        out,
        "  idle_timeout {}, max_message_size {}, reconnect {}..{}",
        duration(s.idle_timeout),
        size(s.max_message_size),
        duration(s.reconnect.initial),
        duration(s.reconnect.max),
    )?;
    if let Some(proxy) = &s.proxy {
        writeln!(out, "  proxy: {proxy} (from {})", proxy.origin)?;
    }
    if !c.tls.is_empty() {
        writeln!(out, "tls: bundled roots + {}", ca_files(c.tls.iter()))?;
    }

    writeln!(out, "outbox: {}", c.outbox.path.display())?;
    writeln!(
        out,
        "  dedupe_window {}, {}",
        duration(c.outbox.dedupe_window),
        retry(&c.outbox.retry)
    )?;
    writeln!(
        out,
        "  min_free {}, max_size {}",
        match c.outbox.min_free {
            0 => "off".to_string(),
            n => size(n as usize),
        },
        c.outbox
            .max_size
            .map_or_else(|| "none".to_string(), |n| size(n as usize))
    )?;
    if let Some(nats) = &c.outbox.nats {
        let urls: Vec<String> = nats.urls.iter().map(|u| u.redacted()).collect();
        let auth = match &nats.auth {
            super::NatsAuth::None => "none".to_owned(),
            super::NatsAuth::Credentials(path) => format!("credentials {}", path.display()),
            super::NatsAuth::Token(_) => "token=***".to_owned(),
            super::NatsAuth::UserPassword { user, .. } => format!("user {user}, password=***"),
        };
        writeln!(
            out,
            "  nats: {} stream {} (dead letters {}_DEAD), replicas {}, ack_wait {}, auth {auth}; local spool in the path above",
            urls.join(", "),
            nats.stream,
            nats.stream,
            nats.replicas,
            duration(nats.ack_wait),
        )?;
    }

    match &c.server {
        Some(server) => {
            let ingest = if server.ingest_secret.is_some() {
                "POST /ingest enabled (ingest_secret=***)"
            } else {
                "POST /ingest disabled (no ingest_secret)"
            };
            writeln!(out, "server: {}, {ingest}", server.listen)?;
        }
        None => writeln!(out, "server: none (no [server] table)")?,
    }

    writeln!(out, "targets: {}", c.targets.len())?;
    for target in &c.targets {
        write_target(out, target)?;
    }

    writeln!(out, "routes: {}", c.routes.len())?;
    for route in &c.routes {
        write_route(out, route, &c.targets)?;
    }
    if c.routes.is_empty() {
        writeln!(out, "  (no routes: every event is dropped)")?;
    }
    Ok(())
}

/// The stream URL as `run` will connect to it, with every query value (the key
/// included) masked and no user info.
fn source_url(s: &SourceConfig) -> String {
    let url = &s.url;
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        let _ = write!(out, ":{port}");
    }
    out.push_str(url.path());
    let mut params: Vec<String> = url.query_pairs().map(|(k, _)| format!("{k}=***")).collect();
    if s.api_key.is_some() {
        params.push("api_key=***".to_owned());
    }
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

fn write_target(out: &mut String, t: &TargetConfig) -> std::fmt::Result {
    let kind = t.kind.name();
    writeln!(out, "  {}: {kind} {}", t.name, t.url.redacted())?;
    let rate = t.rate_limit.map_or_else(|| "none".to_owned(), rate_limit);
    let dedupe = match t.dedupe {
        DedupeMode::Tweet => "tweet",
        DedupeMode::Event => "event",
    };
    writeln!(
        out,
        "    concurrency {}, rate_limit {rate}, timeout {}, dedupe {dedupe}, {}",
        t.concurrency,
        duration(t.timeout),
        retry(&t.retry),
    )?;

    let mut options: Vec<String> = Vec::new();
    match &t.kind {
        TargetKind::Slack(o) => {
            option(&mut options, "username", &o.username);
            option(&mut options, "icon_emoji", &o.icon_emoji);
            option(&mut options, "channel", &o.channel);
            for (name, on) in [
                ("unfurl_links", o.unfurl_links),
                ("unfurl_media", o.unfurl_media),
            ] {
                if on {
                    options.push(name.to_owned());
                }
            }
        }
        TargetKind::Discord(o) => {
            option(&mut options, "username", &o.username);
            if let Some(avatar) = &o.avatar_url {
                // Avatar URLs can be signed CDN links: shown like webhook URLs.
                let shown = reqwest::Url::parse(avatar)
                    .map_or_else(|_| "***".to_owned(), |u| redact_url(&u));
                options.push(format!("avatar_url {shown}"));
            }
            option(&mut options, "thread_id", &o.thread_id);
            if o.thread_name.is_some() {
                options.push("thread_name (a new forum post per tweet)".to_owned());
            }
            if o.suppress_notifications {
                options.push("suppress_notifications".to_owned());
            }
        }
        TargetKind::Telegram(o) => {
            options.push(match &o.chat_id {
                ChatId::Id(id) => format!("chat_id {id}"),
                ChatId::Username(name) => format!("chat_id {name}"),
            });
            if let Some(topic) = o.message_thread_id {
                options.push(format!("message_thread_id {topic}"));
            }
            if o.disable_notification {
                options.push("disable_notification".to_owned());
            }
        }
        TargetKind::Teams(_) => {}
        TargetKind::Nats(o) => {
            options.push(format!("subject {}", o.subject));
            let urls: Vec<String> = o.urls.iter().map(|u| u.redacted()).collect();
            options.push(format!("servers {}", urls.join(",")));
        }
        TargetKind::Http(o) => {
            options.push(
                match o.method {
                    HttpMethod::Post => "method POST",
                    HttpMethod::Put => "method PUT",
                }
                .to_owned(),
            );
            if !o.headers.is_empty() {
                let names: Vec<String> = o
                    .headers
                    .iter()
                    .map(|(name, _)| format!("{name}=***"))
                    .collect();
                options.push(format!("headers {}", names.join(", ")));
            }
            options.push(
                if o.signing_key.is_some() {
                    "signed (signing_secret=***)"
                } else {
                    "unsigned"
                }
                .to_owned(),
            );
            if o.body_template.is_some() {
                let content_type = o.content_type.as_deref().unwrap_or("application/json");
                options.push(format!("body_template ({content_type})"));
            }
        }
    }
    if t.kind.chat_template().is_some() {
        options.push("custom template".to_owned());
    }
    options.extend(super::burst::describe(&t.burst));
    if !options.is_empty() {
        writeln!(out, "    {}", options.join(", "))?;
    }
    let own = t.tls.iter().filter(|f| f.origin.starts_with("targets."));
    if own.clone().next().is_some() {
        writeln!(out, "    tls: also trusts {}", ca_files(own))?;
    }
    if let TargetKind::Http(o) = &t.kind
        && o.plain_signing_secret
    {
        writeln!(out, "    {PLAIN_SECRET_WARNING}")?;
    }
    if let TargetKind::Http(o) = &t.kind
        && let Some(warning) = o.body_template.as_ref().and_then(body_template_warning)
    {
        writeln!(out, "    {warning}")?;
    }
    Ok(())
}

/// A `body_template` that cannot make a body of the sample stream event (which, like
/// every stream event, has no `tweet_data`): the same would happen to real deliveries,
/// dead-lettered one by one, so `check` says it before any is.
fn body_template_warning(template: &crate::config::Jinja) -> Option<String> {
    let event = bytes::Bytes::from(crate::sample::sample_event(0).to_string());
    let error = crate::target::http::render_body(template, &event).err()?;
    Some(format!(
        "warning: for a sample stream event, {}; such deliveries would be dead-lettered (try `badger-relay route` with a real event)",
        error.0
    ))
}

/// `tls.ca_file /etc/ssl/ca.pem (2 certificates)`, comma-separated.
fn ca_files<'f>(files: impl Iterator<Item = &'f crate::tls::CaFile>) -> String {
    files
        .map(|f| {
            let skipped = if f.skipped > 0 {
                format!(", {} skipped: not a valid CA certificate", f.skipped)
            } else {
                String::new()
            };
            let n = f.certs.len();
            let plural = if n == 1 { "" } else { "s" };
            format!(
                "{} {} ({n} certificate{plural}{skipped})",
                f.origin,
                f.path.display()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Said under an http target whose `signing_secret` is not a `whsec_` one.
const PLAIN_SECRET_WARNING: &str = "warning: signing_secret does not start with `whsec_`, so its text is the HMAC key; \
     Standard Webhooks libraries read a secret string as base64 and will not verify these signatures. \
     Use a `whsec_` secret for them, or verify with plain HMAC (see the README, \"Verifying signatures\")";

fn option(options: &mut Vec<String>, name: &str, value: &Option<String>) {
    if let Some(value) = value {
        options.push(format!("{name} {value:?}"));
    }
}

fn write_route(out: &mut String, r: &RouteConfig, targets: &[TargetConfig]) -> std::fmt::Result {
    let mut conditions: Vec<String> = Vec::new();
    if !r.monitors.is_empty() {
        conditions.push(format!("monitors {:?}", r.monitors));
    }
    if !r.authors.is_empty() {
        conditions.push(format!("authors {:?}", r.authors));
    }
    if let Some(text) = &r.text {
        conditions.push(format!("text /{}/", text.as_str()));
    }
    for field in &r.fields {
        conditions.push(format!("where {field}"));
    }
    conditions.push(format!("events {:?}", r.events));
    if let Some(unless) = &r.unless {
        conditions.push(format!("unless any of ({})", exclusion(unless)));
    }
    let names: Vec<&str> = r
        .targets
        .iter()
        .filter_map(|&i| targets.get(i).map(|t| t.name.as_str()))
        .collect();
    let stop = if r.stop { " (stop)" } else { "" };
    writeln!(
        out,
        "  {}: {} -> {}{stop}",
        r.name,
        conditions.join(", "),
        names.join(", ")
    )
}

/// `authors ["*bot"]; text /giveaway/`: the conditions of an `unless`, any of which excludes.
fn exclusion(u: &Exclusion) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !u.monitors.is_empty() {
        parts.push(format!("monitors {:?}", u.monitors));
    }
    if !u.authors.is_empty() {
        parts.push(format!("authors {:?}", u.authors));
    }
    if let Some(text) = &u.text {
        parts.push(format!("text /{}/", text.as_str()));
    }
    if !u.events.is_empty() {
        parts.push(format!("events {:?}", u.events));
    }
    if !u.fields.is_empty() {
        let fields: Vec<String> = u.fields.iter().map(ToString::to_string).collect();
        parts.push(format!("where {}", fields.join(" and ")));
    }
    parts.join("; ")
}

fn retry(r: &RetryPolicy) -> String {
    let mut s = format!(
        "retry {}..{}, max_age {}",
        duration(r.initial),
        duration(r.max),
        duration(r.max_age)
    );
    if let Some(n) = r.max_attempts {
        let _ = write!(s, ", max_attempts {n}");
    }
    s
}

fn rate_limit(r: RateLimit) -> String {
    match r.per.as_secs() {
        1 | 60 | 3600 if r.per.subsec_nanos() == 0 => {
            let unit = match r.per.as_secs() {
                1 => "s",
                60 => "m",
                _ => "h",
            };
            format!("{}/{unit}", r.count)
        }
        _ => format!("{}/{}", r.count, duration(r.per)),
    }
}

/// The largest whole unit: `500ms`, `75s`, `5m`, `24h`.
pub(crate) fn duration(d: Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return humantime::format_duration(d).to_string();
    }
    if d.subsec_millis() != 0 || d.is_zero() {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// The largest whole binary unit: `512B`, `64KiB`, `1MiB`.
fn size(bytes: usize) -> String {
    const UNITS: &[(usize, &str)] = &[(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= *unit && bytes.is_multiple_of(*unit) {
            return format!("{}{name}", bytes / unit);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_sizes_and_rates_print_in_config_syntax() {
        assert_eq!(duration(Duration::from_millis(500)), "500ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::from_secs(75)), "75s");
        assert_eq!(duration(Duration::from_secs(300)), "5m");
        assert_eq!(duration(Duration::from_secs(86_400)), "24h");
        assert_eq!(size(512), "512B");
        assert_eq!(size(64 * 1024), "64KiB");
        assert_eq!(size(1 << 20), "1MiB");
        assert_eq!(size(1_000_000), "1000000B");
        let rate = |count, per| RateLimit { count, per };
        assert_eq!(rate_limit(rate(1, Duration::from_secs(1))), "1/s");
        assert_eq!(rate_limit(rate(5, Duration::from_secs(2))), "5/2s");
        assert_eq!(rate_limit(rate(100, Duration::from_secs(60))), "100/m");
        assert_eq!(rate_limit(rate(10, Duration::from_millis(500))), "10/500ms");
    }
}
