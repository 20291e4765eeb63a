//! The contract's schema: which keys each table takes, their defaults, and how each
//! value becomes its runtime type. Reading stops at the first problem, in this order:
//! top-level keys, `[source]`, `[outbox]`, `[server]`, `[targets.*]` (file order),
//! `[[routes]]` (file order).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde_spanned::Spanned;
use toml::de::DeTable;

use super::burst;
use super::document::{Item, Table, unknown_key};
use super::error::{Problem, closest};
use super::filter;
use super::interpolate::Env;
use super::network;
use super::values::{self, Invalid};
use super::{
    Burst, ChatId, Config, DedupeMode, DiscordOptions, HttpMethod, HttpOptions, Jinja, NatsAuth,
    NatsConfig, NatsTargetOptions, NatsUrl, OutboxBackend, OutboxConfig, RateLimit,
    ReconnectConfig, RetryPolicy, RouteConfig, ServerConfig, SlackOptions, SourceConfig,
    TargetConfig, TargetKind, TeamsOptions, TelegramOptions, Template, TemplatePart,
};
use crate::jinja;
use crate::secret::{Secret, SecretUrl};
use crate::tls::CaFile;

const ROOT_KEYS: &[&str] = &["source", "outbox", "server", "targets", "routes", "tls"];
const SOURCE_KEYS: &[&str] = &[
    "url",
    "api_key",
    "idle_timeout",
    "max_message_size",
    "reconnect",
    "proxy",
];
const RECONNECT_KEYS: &[&str] = &["initial", "max"];
const OUTBOX_KEYS: &[&str] = &[
    "backend",
    "path",
    "dedupe_window",
    "retry",
    "min_free",
    "max_size",
    "nats",
];
const NATS_KEYS: &[&str] = &[
    "urls",
    "stream",
    "replicas",
    "credentials",
    "token",
    "user",
    "password",
    "ack_wait",
];
const RETRY_KEYS: &[&str] = &["initial", "max", "max_age", "max_attempts"];
const SERVER_KEYS: &[&str] = &["listen", "ingest_secret"];
/// Keys every target takes, whatever its type.
const TARGET_KEYS: &[&str] = &[
    "type",
    "concurrency",
    "rate_limit",
    "timeout",
    "retry",
    "dedupe",
    "tls",
];
const SLACK_KEYS: &[&str] = &[
    "url",
    "username",
    "icon_emoji",
    "channel",
    "template",
    "unfurl_links",
    "unfurl_media",
    "digest",
    "stale_after",
    "stale",
];
const DISCORD_KEYS: &[&str] = &[
    "url",
    "username",
    "avatar_url",
    "thread_id",
    "thread_name",
    "suppress_notifications",
    "template",
    "digest",
    "stale_after",
    "stale",
];
const TELEGRAM_KEYS: &[&str] = &[
    "bot_token",
    "chat_id",
    "message_thread_id",
    "api_url",
    "disable_notification",
    "template",
    "digest",
    "stale_after",
    "stale",
];
const TEAMS_KEYS: &[&str] = &["url", "template", "digest", "stale_after", "stale"];
const HTTP_KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "signing_secret",
    "body_template",
    "content_type",
];
const NATS_TARGET_KEYS: &[&str] = &[
    "subject",
    "urls",
    "credentials",
    "token",
    "user",
    "password",
];
const ROUTE_KEYS: &[&str] = &[
    "name", "monitors", "authors", "text", "events", "where", "unless", "targets", "stop",
];

const DEFAULT_SOURCE_URL: &str = "wss://scrapebadger.com/v1/twitter/stream";
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;
const DEFAULT_RECONNECT: ReconnectConfig = ReconnectConfig {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(60),
};
const DEFAULT_OUTBOX_PATH: &str = "./badger-relay-data";
const DEFAULT_MIN_FREE: u64 = 64 << 20;
const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(5 * 60),
    max_age: Duration::from_secs(24 * 3600),
    max_attempts: None,
};
const DEFAULT_NATS_STREAM: &str = "BADGER_RELAY";
const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_LISTEN: &str = "127.0.0.1:9750";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_TELEGRAM_API: &str = "https://api.telegram.org";
const DEFAULT_EVENTS: &[&str] = &["tweet.detected"];
/// Headers badger-relay sets itself; letting a config set them would break the request
/// or forge its Standard Webhooks signature.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Reads the whole document into a [`Config`].
pub(crate) fn build(doc: &Spanned<DeTable<'_>>, path: &Path, env: Env) -> Result<Config, Problem> {
    let root = Table::root(doc);
    root.check_keys(ROOT_KEYS)?;
    let tls = network::global_tls(&root, env)?;
    let source = source(&section(&root, "source")?, &tls, env)?;
    let outbox = outbox(&section(&root, "outbox")?, env)?;
    let server = root.opt("server", |item| server(&item.table()?, env))?;
    let targets = targets(
        &section(&root, "targets")?,
        &outbox.retry,
        outbox.nats.as_ref(),
        &tls,
        env,
    )?;
    check_ack_wait(&root, &outbox, &targets)?;
    let routes = match root.get("routes") {
        Some(item) => routes(item, &targets, env)?,
        None => Vec::new(),
    };
    Ok(Config {
        path: path.to_owned(),
        source,
        outbox,
        server,
        targets,
        routes,
        tls,
    })
}

/// The table `name` of the root, or an empty one when the file leaves it out.
fn section<'a, 'i>(root: &Table<'a, 'i>, name: &str) -> Result<Table<'a, 'i>, Problem> {
    match root.get(name) {
        Some(item) => item.table(),
        None => Ok(Table::empty(name.to_owned())),
    }
}

fn source(t: &Table, tls: &[CaFile], env: Env) -> Result<SourceConfig, Problem> {
    t.check_keys(SOURCE_KEYS)?;
    let url = match t.opt("url", |item| parse(item, env, values::source_url))? {
        Some(url) => url,
        None => reqwest::Url::parse(DEFAULT_SOURCE_URL).expect("the default stream URL is valid"),
    };
    // An empty key (`"${SCRAPEBADGER_API_KEY:-}"`) means "not set", so one file serves
    // both `run` and the commands that need no key.
    let api_key = t
        .opt("api_key", |item| secret(item, env))?
        .filter(|key| !key.is_empty())
        .map(Secret::new);
    let idle_timeout = t.opt("idle_timeout", |item| duration(item, env))?;
    let max_message_size = t.opt("max_message_size", |item| size(item, env))?;
    let reconnect = match t.get("reconnect") {
        Some(item) => reconnect(item, env)?,
        None => DEFAULT_RECONNECT,
    };
    let proxy = network::source_proxy(t, &url, env)?;
    Ok(SourceConfig {
        proxy,
        tls: tls.to_vec(),
        url,
        api_key,
        idle_timeout: idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
        max_message_size: max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE),
        reconnect,
    })
}

fn reconnect(item: &Item, env: Env) -> Result<ReconnectConfig, Problem> {
    let t = item.table()?;
    t.check_keys(RECONNECT_KEYS)?;
    let initial = t.opt("initial", |item| duration(item, env))?;
    let max = t.opt("max", |item| duration(item, env))?;
    let reconnect = ReconnectConfig {
        initial: initial.unwrap_or(DEFAULT_RECONNECT.initial),
        max: max.unwrap_or(DEFAULT_RECONNECT.max),
    };
    check_initial_le_max(&t, reconnect.initial, reconnect.max, "")?;
    Ok(reconnect)
}

fn outbox(t: &Table, env: Env) -> Result<OutboxConfig, Problem> {
    t.check_keys(OUTBOX_KEYS)?;
    let backend = t.opt("backend", |item| {
        let backends = [("sled", OutboxBackend::Sled), ("nats", OutboxBackend::Nats)];
        parse(item, env, |s| {
            values::choice(s, "outbox backend", &backends)
        })
    })?;
    let path = t.opt("path", |item| {
        let path = item.string(env)?;
        if path.is_empty() {
            return Err(item.problem("must not be empty"));
        }
        Ok(PathBuf::from(path))
    })?;
    let dedupe_window = t.opt("dedupe_window", |item| duration(item, env))?;
    let retry = match t.get("retry") {
        Some(item) => retry(item, &DEFAULT_RETRY, "", env)?,
        None => DEFAULT_RETRY,
    };
    let min_free = t.opt("min_free", |item| size_or_zero(item, env))?;
    let max_size = t.opt("max_size", |item| size(item, env))?;
    let backend = backend.unwrap_or(OutboxBackend::Sled);
    let nats = match (backend, t.get("nats")) {
        (OutboxBackend::Nats, Some(item)) => Some(nats(&item.table()?, env)?),
        (OutboxBackend::Nats, None) => {
            return Err(Problem::new(
                t.span.clone(),
                "outbox.nats",
                "backend = \"nats\" needs an [outbox.nats] table with `urls`",
            ));
        }
        (OutboxBackend::Sled, Some(item)) => {
            return Err(item.key_problem(
                "[outbox.nats] is only read with backend = \"nats\" (the backend here is sled)",
            ));
        }
        (OutboxBackend::Sled, None) => None,
    };
    Ok(OutboxConfig {
        backend,
        path: path.unwrap_or_else(|| PathBuf::from(DEFAULT_OUTBOX_PATH)),
        dedupe_window: dedupe_window.unwrap_or(DEFAULT_DEDUPE_WINDOW),
        min_free: min_free.map_or(DEFAULT_MIN_FREE, |n| n as u64),
        max_size: max_size.map(|n| n as u64),
        retry,
        nats,
    })
}

/// `[outbox.nats]`.
fn nats(t: &Table, env: Env) -> Result<NatsConfig, Problem> {
    t.check_keys(NATS_KEYS)?;
    let urls_item = t.require("urls", "the NATS servers, like [\"nats://127.0.0.1:4222\"]")?;
    let mut urls = Vec::new();
    for (item, url) in urls_item.strings(env)? {
        urls.push(nats_url(&item, &url)?);
    }
    if urls.is_empty() {
        return Err(urls_item.problem("must name at least one server"));
    }
    let stream = t.opt("stream", |item| {
        let s = item.string(env)?;
        if s.is_empty() || s.len() > 200 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(item.problem(
                "a stream name may use only letters, digits, `_` and `-` (NATS refuses `.`, `*`, `>` and spaces)",
            ));
        }
        Ok(s)
    })?;
    let replicas = t.opt("replicas", |item| {
        let n = item.integer()?;
        usize::try_from(n)
            .ok()
            .filter(|n| (1..=5).contains(n))
            .ok_or_else(|| item.problem("must be a whole number from 1 to 5 (JetStream's limit)"))
    })?;
    let auth = nats_auth(t, env)?;
    let ack_wait = t.opt("ack_wait", |item| duration(item, env))?;
    Ok(NatsConfig {
        urls,
        stream: stream.unwrap_or_else(|| DEFAULT_NATS_STREAM.to_owned()),
        replicas: replicas.unwrap_or(1),
        auth,
        ack_wait: ack_wait.unwrap_or(DEFAULT_ACK_WAIT),
    })
}

/// `credentials`, `token` or `user` + `password` (at most one way), in `[outbox.nats]`
/// or a nats target.
fn nats_auth(t: &Table, env: Env) -> Result<NatsAuth, Problem> {
    let credentials = t.opt("credentials", |item| non_empty(item, env))?;
    let token = t.opt("token", |item| secret(item, env))?;
    let user = t.opt("user", |item| non_empty(item, env))?;
    let password = t.opt("password", |item| secret(item, env))?;
    Ok(match (credentials, token, user, password) {
        (None, None, None, None) => NatsAuth::None,
        (Some(path), None, None, None) => NatsAuth::Credentials(PathBuf::from(path)),
        (None, Some(token), None, None) => NatsAuth::Token(Secret::new(token)),
        (None, None, Some(user), Some(password)) => NatsAuth::UserPassword {
            user,
            password: Secret::new(password),
        },
        (None, None, Some(_), None) => {
            return Err(t
                .get("user")
                .expect("present")
                .problem("`user` needs a `password`"));
        }
        (None, None, None, Some(_)) => {
            return Err(t
                .get("password")
                .expect("present")
                .problem("`password` needs a `user`"));
        }
        _ => {
            let second = ["token", "user", "password"]
                .into_iter()
                .rev()
                .find_map(|k| t.get(k))
                .expect("two ways were given");
            return Err(second.key_problem(
                "give one way to authenticate: `credentials`, `token`, or `user` + `password`",
            ));
        }
    })
}

/// One of `urls`: `nats://`, `tls://` or a bare `host:port`, with a host.
fn nats_url(item: &Item, url: &str) -> Result<NatsUrl, Problem> {
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("nats://{url}")
    };
    let parsed = reqwest::Url::parse(&full).ok().filter(|u| {
        matches!(u.scheme(), "nats" | "tls") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    if parsed.is_none() {
        return Err(item.problem(
            "expected a NATS server URL like \"nats://127.0.0.1:4222\" (schemes nats:// and tls://)",
        ));
    }
    Ok(NatsUrl(Secret::new(full)))
}

/// With `backend = "nats"`, a delivery must not be handed to a second replica while its
/// first attempt can still be running: `ack_wait` is at least twice every `timeout`.
fn check_ack_wait(
    root: &Table,
    outbox: &OutboxConfig,
    targets: &[TargetConfig],
) -> Result<(), Problem> {
    let Some(nats) = &outbox.nats else {
        return Ok(());
    };
    let Some(target) = targets.iter().find(|t| t.timeout * 2 > nats.ack_wait) else {
        return Ok(());
    };
    let message = format!(
        "ack_wait ({}) must be at least twice the timeout of every target; target `{}` has timeout {}: raise ack_wait to {} or lower that timeout",
        humantime::format_duration(nats.ack_wait),
        target.name,
        humantime::format_duration(target.timeout),
        humantime::format_duration(target.timeout * 2),
    );
    let nats_table = root
        .get("outbox")
        .and_then(|o| o.table().ok())
        .and_then(|o| o.get("nats").and_then(|n| n.table().ok()));
    Err(match nats_table {
        Some(t) => match t.get("ack_wait") {
            Some(item) => item.problem(message),
            None => Problem::new(t.span.clone(), "outbox.nats.ack_wait", message),
        },
        None => Problem::new(0..0, "outbox.nats.ack_wait", message),
    })
}

/// A `retry` table; keys it leaves out come from `base`. `base_name` names where `base`
/// comes from in messages (empty for the built-in defaults).
fn retry(
    item: &Item,
    base: &RetryPolicy,
    base_name: &str,
    env: Env,
) -> Result<RetryPolicy, Problem> {
    let t = item.table()?;
    t.check_keys(RETRY_KEYS)?;
    let initial = t.opt("initial", |item| duration(item, env))?;
    let max = t.opt("max", |item| duration(item, env))?;
    let max_age = t.opt("max_age", |item| duration(item, env))?;
    let max_attempts = t.opt("max_attempts", |item| {
        let n = item.integer()?;
        u32::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| item.problem("must be a whole number from 1 to 4294967295"))
    })?;
    let policy = RetryPolicy {
        initial: initial.unwrap_or(base.initial),
        max: max.unwrap_or(base.max),
        max_age: max_age.unwrap_or(base.max_age),
        max_attempts: max_attempts.or(base.max_attempts),
    };
    check_initial_le_max(&t, policy.initial, policy.max, base_name)?;
    Ok(policy)
}

/// Backoff grows from `initial` to `max`; the other way round is a mistake.
fn check_initial_le_max(
    t: &Table,
    initial: Duration,
    max: Duration,
    base_name: &str,
) -> Result<(), Problem> {
    if initial <= max {
        return Ok(());
    }
    let inherited = |key: &str| {
        if t.get(key).is_some() || base_name.is_empty() {
            String::new()
        } else {
            format!(", from {base_name}")
        }
    };
    let message = format!(
        "`initial` ({}{}) must not be longer than `max` ({}{})",
        super::summary::duration(initial),
        inherited("initial"),
        super::summary::duration(max),
        inherited("max"),
    );
    // Point at whichever of the two this table sets, `initial` first.
    let item = t.get("initial").or_else(|| t.get("max"));
    Err(match item {
        Some(item) => item.problem(message),
        None => Problem::new(t.span.clone(), &t.key, message),
    })
}

fn server(t: &Table, env: Env) -> Result<ServerConfig, Problem> {
    t.check_keys(SERVER_KEYS)?;
    let listen = t.opt("listen", |item| {
        let s = item.string(env)?;
        s.trim().parse::<SocketAddr>().map_err(|_| {
            item.problem("not a socket address: write an IP address and a port, like \"127.0.0.1:9750\" or \"[::1]:9750\" (host names are not accepted)")
        })
    })?;
    let ingest_secret = t.opt("ingest_secret", |item| {
        let secret = secret(item, env)?;
        if secret.is_empty() {
            return Err(item.problem("must not be empty (remove the key to disable POST /ingest)"));
        }
        Ok(Secret::new(secret))
    })?;
    Ok(ServerConfig {
        listen: listen.unwrap_or_else(|| {
            DEFAULT_LISTEN
                .parse()
                .expect("the default listen address is valid")
        }),
        ingest_secret,
    })
}

fn targets(
    t: &Table,
    outbox_retry: &RetryPolicy,
    outbox_nats: Option<&NatsConfig>,
    tls: &[CaFile],
    env: Env,
) -> Result<Vec<TargetConfig>, Problem> {
    t.entries()
        .map(|(name, item)| {
            if !values::is_target_name(name) {
                return Err(item.key_problem(
                    "target names may use only letters, digits, `_`, `.` and `-` (they become storage keys)",
                ));
            }
            target(name, &item.table()?, outbox_retry, outbox_nats, tls, env)
        })
        .collect()
}

/// The kinds of target, and the options only each kind takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Slack,
    Discord,
    Telegram,
    Teams,
    Http,
    Nats,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Slack,
        Kind::Discord,
        Kind::Telegram,
        Kind::Teams,
        Kind::Http,
        Kind::Nats,
    ];

    /// The kind of a built target: the other direction of [`Kind::name`].
    pub(super) fn of(kind: &TargetKind) -> Kind {
        match kind {
            TargetKind::Slack(_) => Kind::Slack,
            TargetKind::Discord(_) => Kind::Discord,
            TargetKind::Telegram(_) => Kind::Telegram,
            TargetKind::Teams(_) => Kind::Teams,
            TargetKind::Http(_) => Kind::Http,
            TargetKind::Nats(_) => Kind::Nats,
        }
    }

    /// The `type` value, the one place a kind is named.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Discord => "discord",
            Kind::Telegram => "telegram",
            Kind::Teams => "teams",
            Kind::Http => "http",
            Kind::Nats => "nats",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Slack => SLACK_KEYS,
            Kind::Discord => DISCORD_KEYS,
            Kind::Telegram => TELEGRAM_KEYS,
            Kind::Teams => TEAMS_KEYS,
            Kind::Http => HTTP_KEYS,
            Kind::Nats => NATS_TARGET_KEYS,
        }
    }

    /// What a target of this kind has instead of a `url`, if anything: said when a
    /// `url` is given to it.
    fn instead_of_url(self) -> Option<&'static str> {
        match self {
            Kind::Telegram => Some(
                "a telegram target has no url: set `bot_token` and `chat_id` (and `api_url` for a Bot API server of your own)",
            ),
            Kind::Nats => Some(
                "a nats target has no url: set `subject`, and `urls` = [\"nats://host:4222\"] unless it uses [outbox.nats]'s servers",
            ),
            _ => None,
        }
    }

    /// "a slack target", "an http target".
    fn with_article(self) -> String {
        match self {
            Kind::Http => "an http".to_owned(),
            kind => format!("a {}", kind.name()),
        }
    }
}

fn target(
    name: &str,
    t: &Table,
    outbox_retry: &RetryPolicy,
    outbox_nats: Option<&NatsConfig>,
    global_tls: &[CaFile],
    env: Env,
) -> Result<TargetConfig, Problem> {
    let type_item = t.require(
        "type",
        "`slack`, `discord`, `telegram`, `teams`, `http` or `nats`",
    )?;
    let kinds = Kind::ALL.map(|k| (k.name(), k));
    let kind = parse(type_item, env, |s| values::choice(s, "target type", &kinds))?;
    for (key, item) in t.entries() {
        if TARGET_KEYS.contains(&key) || kind.keys().contains(&key) {
            continue;
        }
        if let Some(instead) = kind.instead_of_url().filter(|_| key == "url") {
            return Err(item.key_problem(instead));
        }
        let takers: Vec<&str> = Kind::ALL
            .into_iter()
            .filter(|k| k.keys().contains(&key))
            .map(Kind::name)
            .collect();
        if let Some((last, others)) = takers.split_last() {
            let takers = if others.is_empty() {
                (*last).to_owned()
            } else {
                format!("{} and {last}", others.join(", "))
            };
            return Err(item.key_problem(format!(
                "not valid for {} target (only {takers} targets take it)",
                kind.with_article(),
            )));
        }
        let valid: Vec<&str> = TARGET_KEYS.iter().chain(kind.keys()).copied().collect();
        return Err(unknown_key(item, key, &valid));
    }

    let concurrency = t.opt("concurrency", |item| {
        let n = item.integer()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| item.problem("must be at least 1"))
    })?;
    let rate_limit = t.opt("rate_limit", |item| parse(item, env, values::rate_limit))?;
    let timeout = t.opt("timeout", |item| duration(item, env))?;
    let retry = match t.get("retry") {
        Some(item) => retry(item, outbox_retry, "[outbox].retry", env)?,
        None => *outbox_retry,
    };
    let dedupe = t.opt("dedupe", |item| {
        let modes = [("tweet", DedupeMode::Tweet), ("event", DedupeMode::Event)];
        parse(item, env, |s| values::choice(s, "dedupe mode", &modes))
    })?;

    // Defaults follow each platform's documented webhook limits: Slack about one
    // message a second, Discord five per two seconds; HTTP endpoints are ours to size.
    let (kind, default_concurrency, default_rate, default_dedupe) = match kind {
        Kind::Slack => (
            TargetKind::Slack(slack(t, env)?),
            1,
            Some(RateLimit {
                count: 1,
                per: Duration::from_secs(1),
            }),
            DedupeMode::Tweet,
        ),
        Kind::Discord => (
            TargetKind::Discord(discord(t, env)?),
            1,
            Some(RateLimit {
                count: 5,
                per: Duration::from_secs(2),
            }),
            DedupeMode::Tweet,
        ),
        // Telegram allows a bot about one message a second in one chat (and 20 a
        // minute in a group); Teams' Workflows webhooks are documented at 4 a second.
        Kind::Telegram => (
            TargetKind::Telegram(telegram(t, env)?),
            1,
            Some(RateLimit {
                count: 1,
                per: Duration::from_secs(1),
            }),
            DedupeMode::Tweet,
        ),
        Kind::Teams => (
            TargetKind::Teams(TeamsOptions {
                template: t.opt("template", |item| chat_template(item, env))?,
            }),
            1,
            Some(RateLimit {
                count: 4,
                per: Duration::from_secs(1),
            }),
            DedupeMode::Tweet,
        ),
        Kind::Http => (TargetKind::Http(http(t, env)?), 4, None, DedupeMode::Event),
        Kind::Nats => (
            TargetKind::Nats(nats_target(t, outbox_nats, env)?),
            4,
            None,
            DedupeMode::Event,
        ),
    };
    // Where requests go: a webhook `url`, or made from what the kind has instead.
    let url = match &kind {
        TargetKind::Telegram(_) => telegram_url(t, env)?,
        TargetKind::Nats(opts) => nats_target_url(opts),
        _ => SecretUrl::new(parse(
            t.require("url", "the endpoint to deliver to")?,
            env,
            values::http_url,
        )?),
    };
    let burst = match kind {
        TargetKind::Http(_) | TargetKind::Nats(_) => Burst::default(),
        _ => burst::burst(t, env, t.get("concurrency").zip(concurrency))?,
    };
    let mut tls = global_tls.to_vec();
    if let Some(item) = t.get("tls") {
        tls.extend(network::target_tls(item, env)?);
    }
    Ok(TargetConfig {
        tls,
        name: name.to_owned(),
        url,
        kind,
        concurrency: concurrency.unwrap_or(default_concurrency),
        rate_limit: rate_limit.or(default_rate),
        timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
        retry,
        dedupe: dedupe.unwrap_or(default_dedupe),
        burst,
    })
}

fn slack(t: &Table, env: Env) -> Result<SlackOptions, Problem> {
    Ok(SlackOptions {
        username: t.opt("username", |item| item.string(env))?,
        icon_emoji: t.opt("icon_emoji", |item| item.string(env))?,
        channel: t.opt("channel", |item| item.string(env))?,
        template: t.opt("template", |item| chat_template(item, env))?,
        unfurl_links: t.opt("unfurl_links", Item::boolean)?.unwrap_or(false),
        unfurl_media: t.opt("unfurl_media", Item::boolean)?.unwrap_or(false),
    })
}

fn discord(t: &Table, env: Env) -> Result<DiscordOptions, Problem> {
    let thread_name = t.opt("thread_name", |item| chat_template(item, env))?;
    if let (Some(_), Some(item), Some(_)) = (&thread_name, t.get("thread_name"), t.get("thread_id"))
    {
        return Err(item.key_problem(
            "cannot be set together with thread_id: thread_id posts into an existing thread, thread_name opens a new forum post for each tweet",
        ));
    }
    Ok(DiscordOptions {
        username: t.opt("username", |item| {
            parse(item, env, |s| {
                values::discord_username(s).map(str::to_owned)
            })
        })?,
        avatar_url: t.opt("avatar_url", |item| {
            parse(item, env, |s| {
                values::http_url(s).map(|_| s.trim().to_owned())
            })
        })?,
        thread_id: t.opt("thread_id", |item| {
            let id = item.string(env)?;
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(item.problem("must be a Discord thread id (digits only)"));
            }
            Ok(id)
        })?,
        thread_name,
        suppress_notifications: t
            .opt("suppress_notifications", Item::boolean)?
            .unwrap_or(false),
        template: t.opt("template", |item| chat_template(item, env))?,
    })
}

/// A chat target's `template` (or a Discord `thread_name`): a MiniJinja template when it
/// has `{{` or `{%`, else the older `{field}` form.
fn chat_template(item: &Item, env: Env) -> Result<Template, Problem> {
    let s = item.string(env)?;
    if !jinja::is_jinja(&s) {
        return values::template(&s)
            .map_err(|invalid| item.problem(invalid.message).suggest(invalid.suggestion));
    }
    let compiled = compile_template(item, &s, jinja::Output::Chat)?;
    Ok(Template {
        parts: vec![TemplatePart::Jinja(compiled)],
    })
}

/// Compiles a MiniJinja template, its errors located in the file where they can be.
fn compile_template(item: &Item, s: &str, output: jinja::Output) -> Result<Jinja, Problem> {
    jinja::compile(s, output)
        .map(|compiled| compiled.for_key(&item.key))
        .map_err(|e| item.problem_within(e.range, e.message))
}

/// `{api_url}/bot{bot_token}/sendMessage`, the one URL a telegram target calls. It holds
/// the token, so it prints as `{api_url}/bot***`.
fn telegram_url(t: &Table, env: Env) -> Result<SecretUrl, Problem> {
    let item = t.require("bot_token", "the token @BotFather gave the bot")?;
    let token = secret(item, env)?;
    if !values::is_telegram_token(&token) {
        // The value is never shown: a wrong token is still mostly the real one.
        return Err(item.problem(
            "is not a Telegram bot token (digits, `:`, then letters, digits, `_` and `-`, as @BotFather shows it)",
        ));
    }
    let api = match t.get("api_url") {
        Some(item) => parse(item, env, values::http_url)?,
        None => DEFAULT_TELEGRAM_API
            .parse()
            .expect("the default Bot API URL is valid"),
    };
    let base = api.as_str().trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{base}/bot{token}/sendMessage"))
        .map_err(|_| item.problem("does not make a valid URL with `api_url`"))?;
    // What prints is the API's origin only: an `api_url` may carry credentials too.
    let origin = match api.port() {
        Some(port) => format!("{}://{}:{port}", api.scheme(), api.host_str().unwrap_or("")),
        None => format!("{}://{}", api.scheme(), api.host_str().unwrap_or("")),
    };
    Ok(SecretUrl::with_redacted(url, format!("{origin}/bot***")))
}

fn telegram(t: &Table, env: Env) -> Result<TelegramOptions, Problem> {
    let item = t.require(
        "chat_id",
        "the chat to post to: a numeric id (-100… for channels and supergroups) or \"@channelname\"",
    )?;
    let chat_id = match item.integer() {
        Ok(id) => ChatId::Id(id),
        Err(_) => {
            let s = item.string(env)?;
            let s = s.trim();
            if let Ok(id) = s.parse::<i64>() {
                ChatId::Id(id)
            } else if s.len() > 1
                && s.starts_with('@')
                && s[1..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                ChatId::Username(s.to_owned())
            } else {
                return Err(item.problem(
                    "must be a numeric chat id (like -1001234567890) or a public channel's \"@username\"",
                ));
            }
        }
    };
    Ok(TelegramOptions {
        chat_id,
        message_thread_id: t.opt("message_thread_id", |item| {
            let n = item.integer()?;
            if n < 1 {
                return Err(item.problem("must be a positive topic id"));
            }
            Ok(n)
        })?,
        disable_notification: t
            .opt("disable_notification", Item::boolean)?
            .unwrap_or(false),
        template: t.opt("template", |item| chat_template(item, env))?,
    })
}

/// A nats target's subject, servers and credentials. With no `urls` of its own it
/// publishes to `[outbox.nats]`'s servers with their credentials.
fn nats_target(
    t: &Table,
    outbox_nats: Option<&NatsConfig>,
    env: Env,
) -> Result<NatsTargetOptions, Problem> {
    let item = t.require("subject", "the NATS subject to publish each delivery to")?;
    let subject = item.string(env)?;
    if !values::is_nats_subject(&subject) {
        return Err(item.problem(
            "must be a NATS subject to publish to: tokens of letters, digits, `_` and `-` separated by `.` (no spaces, no `*` or `>` wildcards)",
        ));
    }
    let own_auth = nats_auth(t, env)?;
    match t.get("urls") {
        Some(urls_item) => {
            let mut urls = Vec::new();
            for (item, url) in urls_item.strings(env)? {
                urls.push(nats_url(&item, &url)?);
            }
            if urls.is_empty() {
                return Err(urls_item.problem("must name at least one server"));
            }
            Ok(NatsTargetOptions {
                subject,
                urls,
                auth: own_auth,
            })
        }
        None => {
            let Some(outbox) = outbox_nats else {
                return Err(item.key_problem(
                    "a nats target needs `urls` = [\"nats://host:4222\"] (or [outbox] backend = \"nats\", whose servers it then uses)",
                ));
            };
            if !matches!(own_auth, NatsAuth::None) {
                let key = ["credentials", "token", "user", "password"]
                    .into_iter()
                    .find_map(|k| t.get(k))
                    .expect("some credential was given");
                return Err(key.key_problem(
                    "credentials of its own need `urls` of its own: without `urls` a nats target uses [outbox.nats]'s servers and credentials",
                ));
            }
            Ok(NatsTargetOptions {
                subject,
                urls: outbox.urls.clone(),
                auth: outbox.auth.clone(),
            })
        }
    }
}

/// What a nats target prints as its URL (and `route` shows): the first server and the
/// subject, `nats://host:4222/subject`, without user info.
fn nats_target_url(opts: &NatsTargetOptions) -> SecretUrl {
    let first = opts.urls[0].0.expose();
    let mut url = reqwest::Url::parse(first).expect("nats_url checked it parses");
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_path(&opts.subject);
    url.set_query(None);
    let shown = format!("{}/{}", opts.urls[0].redacted(), opts.subject);
    SecretUrl::with_redacted(url, shown)
}

fn http(t: &Table, env: Env) -> Result<HttpOptions, Problem> {
    let method = t.opt("method", |item| {
        let methods = [("POST", HttpMethod::Post), ("PUT", HttpMethod::Put)];
        parse(item, env, |s| {
            values::choice(&s.to_ascii_uppercase(), "method", &methods)
        })
    })?;
    let headers = match t.get("headers") {
        Some(item) => headers(&item.table()?, env)?,
        None => Vec::new(),
    };
    let mut plain_signing_secret = false;
    let signing_key = t.opt("signing_secret", |item| {
        let secret = secret(item, env)?;
        plain_signing_secret = !secret.starts_with("whsec_");
        values::signing_key(&secret).map_err(|invalid| item.problem(invalid.message))
    })?;
    let content_type = t.opt("content_type", |item| {
        let value = non_empty(item, env)?;
        if !value.contains('/') || HeaderValue::from_str(&value).is_err() {
            return Err(item.problem(
                "must be a media type like \"application/json\" or \"text/plain; charset=utf-8\"",
            ));
        }
        Ok(value)
    })?;
    if let (Some(_), Some(item)) = (&content_type, t.get("content_type")) {
        if t.get("body_template").is_none() {
            return Err(item.key_problem(
                "needs body_template: without one the body is the event JSON as received, sent as application/json",
            ));
        }
        if headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            return Err(item.key_problem(
                "cannot be set together with a Content-Type in headers: set it in one place",
            ));
        }
    }
    let json = content_type.as_deref().is_none_or(is_json_media_type);
    let body_template = t.opt("body_template", |item| {
        let s = non_empty(item, env)?;
        let output = if json {
            jinja::Output::JsonBody
        } else {
            jinja::Output::TextBody
        };
        compile_template(item, &s, output)
    })?;
    Ok(HttpOptions {
        method: method.unwrap_or(HttpMethod::Post),
        headers,
        signing_key,
        plain_signing_secret,
        body_template,
        content_type,
    })
}

/// `application/json`, `text/json` or any `+json` type, parameters aside: a body that
/// must parse as JSON.
fn is_json_media_type(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// Header names are keys of the file and may be shown; values may be tokens and never are.
fn headers(t: &Table, env: Env) -> Result<Vec<(String, Secret)>, Problem> {
    let mut seen: Vec<HeaderName> = Vec::new();
    let mut headers = Vec::new();
    for (name, item) in t.entries() {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| item.key_problem(format!("`{name}` is not a valid HTTP header name")))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(item.key_problem(format!(
                "header `{name}` is set by badger-relay and cannot be configured"
            )));
        }
        if seen.contains(&header) {
            return Err(item.key_problem(format!(
                "header `{name}` is set twice (header names are case-insensitive)"
            )));
        }
        let value = item.string(env)?;
        if HeaderValue::from_str(&value).is_err() {
            return Err(item.problem(format!(
                "the value of header `{name}` is not a valid HTTP header value (visible ASCII only, no line breaks)"
            )));
        }
        seen.push(header);
        headers.push((name.to_owned(), Secret::new(value)));
    }
    Ok(headers)
}

fn routes(item: &Item, targets: &[TargetConfig], env: Env) -> Result<Vec<RouteConfig>, Problem> {
    let elements = item
        .array()
        .map_err(|_| item.expected("an array of tables (`[[routes]]`)"))?;
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut routes = Vec::with_capacity(elements.len());
    for (n, element) in elements.iter().enumerate() {
        let route = route(n, element, targets, env)?;
        if let Some(first) = names.insert(route.name.clone(), n) {
            let t = element.table()?;
            let message = format!("duplicate route name (routes[{first}] has it too)");
            return Err(match t.get("name") {
                Some(name) => name.problem(message),
                None => element.problem(message),
            });
        }
        routes.push(route);
    }
    Ok(routes)
}

fn route(
    n: usize,
    element: &Item,
    targets: &[TargetConfig],
    env: Env,
) -> Result<RouteConfig, Problem> {
    let t = element.table()?;
    t.check_keys(ROUTE_KEYS)?;
    let name = t.opt("name", |item| non_empty(item, env))?;
    let monitors = t.opt("monitors", |item| non_empty_strings(item, env))?;
    let authors = t.opt("authors", |item| non_empty_strings(item, env))?;
    let text = t.opt("text", |item| text_regex(item, env))?;
    let events = t.opt("events", |item| {
        let events = non_empty_strings(item, env)?;
        if events.is_empty() {
            return Err(item.problem("an empty list matches no event (remove the key for the default, [\"tweet.detected\"])"));
        }
        Ok(events)
    })?;
    let fields = t.opt("where", |item| filter::where_table(item, env))?;
    let unless = t.opt("unless", |item| {
        filter::unless(item, env, non_empty_strings, text_regex)
    })?;
    let stop = t.opt("stop", Item::boolean)?;

    let targets_item = t.require("targets", "a route needs at least one target")?;
    let names = targets_item.strings(env)?;
    if names.is_empty() {
        return Err(targets_item.problem("a route needs at least one target"));
    }
    let mut indices = Vec::with_capacity(names.len());
    for (item, name) in &names {
        let index = targets
            .iter()
            .position(|t| t.name == *name)
            .ok_or_else(|| {
                item.problem(format!("no target named `{name}`"))
                    .suggest(closest(name, targets.iter().map(|t| t.name.as_str())))
            })?;
        // A target gets one delivery per event, however often a route names it.
        if !indices.contains(&index) {
            indices.push(index);
        }
    }

    Ok(RouteConfig {
        name: name.unwrap_or_else(|| format!("routes[{n}]")),
        monitors: monitors.unwrap_or_default(),
        authors: authors.unwrap_or_default(),
        text,
        events: events.unwrap_or_else(|| DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect()),
        fields: fields.unwrap_or_default(),
        unless,
        targets: indices,
        stop: stop.unwrap_or(false),
    })
}

/// A route's (or an `unless`'s) `text`.
fn text_regex(item: &Item, env: Env) -> Result<regex::Regex, Problem> {
    let pattern = item.string(env)?;
    // regex's message shows the pattern and a caret under the fault: a pattern is
    // routing logic, not a secret.
    regex::Regex::new(&pattern).map_err(|e| item.problem(format!("invalid regex: {e}")))
}

/// Reads a string and parses it with `f`, locating `f`'s complaint at the value.
fn parse<T>(
    item: &Item,
    env: Env,
    f: impl FnOnce(&str) -> Result<T, Invalid>,
) -> Result<T, Problem> {
    let s = item.string(env)?;
    f(&s).map_err(|invalid| item.problem(invalid.message).suggest(invalid.suggestion))
}

pub(super) fn duration(item: &Item, env: Env) -> Result<Duration, Problem> {
    if item.is_integer() {
        return Err(item.problem(
            "expected a duration with a unit, like \"10s\" or \"500ms\", found a bare number",
        ));
    }
    if !item.is_string() {
        return Err(item.expected("a duration like \"10s\" or \"500ms\""));
    }
    parse(item, env, values::duration)
}

/// [`size`], where zero (`0`, `"0"`, `"0B"`) is allowed and turns a guard off.
fn size_or_zero(item: &Item, env: Env) -> Result<usize, Problem> {
    if item.is_integer() && item.integer()? == 0 {
        return Ok(0);
    }
    if item.is_string() {
        let s = item.string(env)?;
        let digits = s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic());
        if !digits.trim().is_empty() && digits.trim().bytes().all(|b| b == b'0') {
            return Ok(0);
        }
    }
    size(item, env)
}

/// A size string, or an integer number of bytes.
fn size(item: &Item, env: Env) -> Result<usize, Problem> {
    if item.is_integer() {
        let n = item.integer()?;
        return values::size_bytes(n).map_err(|invalid| item.problem(invalid.message));
    }
    if !item.is_string() {
        return Err(item.expected("a size like \"1MiB\" or a whole number of bytes"));
    }
    parse(item, env, values::size)
}

/// A string that is a secret. A line break or other control character in one is
/// almost always a trailing newline from a secrets file, which would fail every
/// request (or every signature check) at run time; it is refused here instead.
fn secret(item: &Item, env: Env) -> Result<String, Problem> {
    let secret = item.string(env)?;
    if secret.chars().any(char::is_control) {
        return Err(item.problem(
            "contains a line break or another control character (a trailing newline from a secrets file?)",
        ));
    }
    Ok(secret)
}

fn non_empty(item: &Item, env: Env) -> Result<String, Problem> {
    let s = item.string(env)?;
    if s.is_empty() {
        return Err(item.problem("must not be empty"));
    }
    Ok(s)
}

fn non_empty_strings(item: &Item, env: Env) -> Result<Vec<String>, Problem> {
    item.strings(env)?
        .into_iter()
        .map(|(item, s)| {
            if s.is_empty() {
                return Err(item.problem("must not be empty"));
            }
            Ok(s)
        })
        .collect()
}
