//! The configuration: the TOML schema of the contract, read and validated once at start-up.
//!
//! This file holds the *runtime* types the rest of the program uses. Everything is
//! already validated: URLs parsed, durations and sizes converted, regexes compiled,
//! route targets resolved to indices into [`Config::targets`]. Nothing is re-parsed per event.
//!
//! Reading a file goes: TOML syntax (`toml`'s parser, keeping every span) →
//! `document.rs` (a typed, located view of that tree) → `schema.rs` (the contract's
//! keys, defaults and checks; `${VAR}` expanded by `interpolate.rs` as each string is
//! read, value syntaxes in `values.rs`) → these types. The first problem found is
//! reported as a [`ConfigError`] naming the file, line, column and key; `summary.rs`
//! writes what `check` prints.

mod document;
mod error;
pub(crate) use error::closest;
mod interpolate;
mod schema;
mod summary;
mod values;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::{Secret, SecretUrl};

pub use error::{ConfigError, Diagnostic};

/// The top-level event fields a Slack or Discord `template` may name as `{field}`.
/// A placeholder outside this list is a config error, so a typo is caught by `check`
/// instead of sending a message with a hole in it.
pub const TEMPLATE_FIELDS: &[&str] = &[
    "event",
    "monitor_id",
    "monitor_name",
    "rule_id",
    "rule_tag",
    "tweet_id",
    "author_username",
    "author_name",
    "tweet_text",
    "tweet_url",
    "tweet_published_at",
    "detected_at",
    "latency_ms",
];

impl Config {
    /// Reads and validates the file at `path`, expanding `${VAR}` from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        // A variable whose value is not UTF-8 counts as unset.
        Config::parse(&text, path, &|name| std::env::var(name).ok())
    }

    /// Validates `text`, the contents of the file at `path` (used in messages only),
    /// expanding `${VAR}` through `env`. An empty text is a valid config: every default.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let doc = toml::de::DeTable::parse(text)
            .map_err(|e| error::Problem::syntax(&e).into_error(text, path))?;
        schema::build(&doc, path, env).map_err(|problem| problem.into_error(text, path))
    }

    /// What `badger-relay check` prints: the source, outbox, server, each target and
    /// each route, with every secret shown as `***` and webhook URLs redacted.
    pub fn summary(&self) -> String {
        summary::render(self)
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, for messages.
    pub path: PathBuf,
    pub source: SourceConfig,
    pub outbox: OutboxConfig,
    /// `None` when the file has no `[server]` table: no HTTP server runs.
    pub server: Option<ServerConfig>,
    /// In file order (of the `[targets.NAME]` headers). A target's index here is its id.
    pub targets: Vec<TargetConfig>,
    /// In file order.
    pub routes: Vec<RouteConfig>,
}

/// `[source]`: the ScrapeBadger WebSocket stream.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The stream URL without the key (`ws://` or `wss://`). Default
    /// `wss://scrapebadger.com/v1/twitter/stream`.
    pub url: reqwest::Url,
    /// Required by `run`; other commands work without it.
    pub api_key: Option<Secret>,
    /// Reconnect after this long without any frame (pings included). Default 75 s.
    pub idle_timeout: Duration,
    /// Frames larger than this are dropped and counted. Default 1 MiB.
    pub max_message_size: usize,
    /// Reconnect backoff: exponential from `initial` to `max`, full jitter. Default 1 s .. 60 s.
    pub reconnect: ReconnectConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectConfig {
    pub initial: Duration,
    pub max: Duration,
}

/// `[outbox]`: where deliveries wait.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// The storage backend: `sled` (the default) or `nats`.
    pub backend: OutboxBackend,
    /// The sled directory, created if missing. Default `./badger-relay-data`, relative
    /// to the working directory. With `backend = "nats"` it holds the local spool.
    pub path: PathBuf,
    /// How long a dedupe key is remembered. Default 24 h.
    pub dedupe_window: Duration,
    /// The default retry policy of every target. Default 1 s .. 5 m, max_age 24 h.
    pub retry: RetryPolicy,
    /// `[outbox.nats]`: set exactly when `backend = "nats"`.
    pub nats: Option<NatsConfig>,
}

/// `[outbox.nats]`: the JetStream that replicas share.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:port` or `tls://host:port`); the client fails over
    /// between them. Required.
    pub urls: Vec<NatsUrl>,
    /// The stream's name (dead letters go to `<stream>_DEAD`). Default `BADGER_RELAY`.
    pub stream: String,
    /// JetStream replication of both streams: 1 for a single server, 3 for a cluster.
    pub replicas: usize,
    /// How the relay proves who it is to the server.
    pub auth: NatsAuth,
    /// How long a delivery handed to a replica stays its own without an ack or an
    /// in-progress signal; then another replica takes it. Default 30 s, at least twice
    /// every target's `timeout`.
    pub ack_wait: Duration,
}

/// A server URL of `[outbox.nats] urls`. User info in it is a secret: it prints as
/// `nats://***@host:port`.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsUrl(pub Secret);

impl std::fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl NatsUrl {
    /// Scheme, host and port; user info replaced by `***`.
    pub fn redacted(&self) -> String {
        let raw = self.0.expose();
        let (scheme, rest) = raw.split_once("://").unwrap_or(("nats", raw));
        match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => format!("{scheme}://{rest}"),
        }
    }
}

/// `[outbox.nats]` authentication: at most one of `credentials`, `token`,
/// `user` + `password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsAuth {
    /// None (or user info in the URLs).
    None,
    /// A `.creds` file (JWT and NKey seed); its path, read at start-up.
    Credentials(PathBuf),
    /// `token = "..."`.
    Token(Secret),
    /// `user = "..."`, `password = "..."`.
    UserPassword { user: String, password: Secret },
}

/// When to try again and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Dead-letter a delivery this long after it was enqueued. Default 24 h.
    pub max_age: Duration,
    /// Dead-letter after this many attempts, when set.
    pub max_attempts: Option<u32>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Default `127.0.0.1:9750`.
    pub listen: SocketAddr,
    /// Enables `POST /ingest` when set.
    pub ingest_secret: Option<Secret>,
}

/// `[targets.NAME]`, with every default filled in.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// The table name: `team-slack` for `[targets.team-slack]`.
    pub name: String,
    /// The endpoint. Webhook URLs are secrets: they print redacted.
    pub url: SecretUrl,
    pub kind: TargetKind,
    /// Deliveries in flight at once. Default 1 for slack and discord, 4 for http.
    pub concurrency: usize,
    /// Proactive limit. Default 1/s for slack, 5/2s for discord, none for http.
    pub rate_limit: Option<RateLimit>,
    /// Per request. Default 10 s.
    pub timeout: Duration,
    /// The target's `retry`, or `[outbox].retry` when it has none.
    pub retry: RetryPolicy,
    /// Default `Tweet` for slack and discord, `Event` for http.
    pub dedupe: DedupeMode,
}

/// `count` requests per `per`: `"1/s"` is {1, 1 s}, `"5/2s"` is {5, 2 s}.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupeMode {
    /// Each tweet id at most once to this target, whatever monitor found it.
    Tweet,
    /// Each (event type, monitor or rule, tweet) at most once.
    Event,
}

/// A target's platform, with the options only it takes.
#[derive(Debug, Clone)]
pub enum TargetKind {
    Slack(SlackOptions),
    Discord(DiscordOptions),
    Http(HttpOptions),
}

impl TargetKind {
    /// Its `type` in the config: `slack`, `discord`, `http`.
    pub fn name(&self) -> &'static str {
        schema::Kind::of(self).name()
    }
}

/// `[outbox] backend`: where deliveries wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxBackend {
    /// The embedded sled store in `path` (the default).
    Sled,
    /// NATS JetStream, shared by replicas, with a local spool in `path`.
    Nats,
}

#[derive(Debug, Clone, Default)]
pub struct SlackOptions {
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub channel: Option<String>,
    pub template: Option<Template>,
}

#[derive(Debug, Clone, Default)]
pub struct DiscordOptions {
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    pub thread_id: Option<String>,
    pub template: Option<Template>,
}

#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub method: HttpMethod,
    /// Configured headers, in file order. Values may hold tokens: they are secrets.
    pub headers: Vec<(String, Secret)>,
    /// Standard Webhooks signing key, already decoded (`whsec_` + base64 → bytes,
    /// anything else → its UTF-8 bytes).
    pub signing_key: Option<SigningKey>,
}

/// HMAC key bytes that print as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(pub Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Post,
    Put,
}

/// A message text with `{field}` placeholders, split once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    /// A top-level event field name.
    Field(String),
}

/// `[[routes]]`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// `name`, or `routes[N]` (0-based, file order) when absent.
    pub name: String,
    /// Patterns matched against monitor_name / monitor_id / rule_tag / rule_id,
    /// case-insensitive, `*` wildcards. Empty: no condition.
    pub monitors: Vec<String>,
    /// Patterns matched against author_username, leading `@` stripped from both sides,
    /// case-insensitive, `*` wildcards. Empty: no condition.
    pub authors: Vec<String>,
    /// Regex on tweet_text.
    pub text: Option<regex::Regex>,
    /// Event types; default `["tweet.detected"]`.
    pub events: Vec<String>,
    /// Indices into [`Config::targets`], without duplicates, in the order written.
    pub targets: Vec<usize>,
    pub stop: bool,
}
