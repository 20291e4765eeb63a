//! The configuration: the TOML schema of the contract, read and validated once at start-up.
//!
//! This file holds the *runtime* types the rest of the program uses. Everything is
//! already validated: URLs parsed, durations and sizes converted, regexes compiled,
//! route targets resolved to indices into [`Config::targets`]. Nothing is re-parsed per event.
//!
//! Reading a file goes: TOML syntax (`toml`'s parser, keeping every span) →
//! `document.rs` (a typed, located view of that tree) → `schema.rs` (the contract's
//! keys, defaults and checks; `${VAR}` and `${file:...}` expanded by `interpolate.rs` as
//! each string is read, value syntaxes in `values.rs`, `[tls]` CA files and the stream's
//! proxy in `network.rs`) → these types. The first problem found is
//! reported as a [`ConfigError`] naming the file, line, column and key; `summary.rs`
//! writes what `check` prints.

mod burst;
mod document;
mod error;
pub(crate) use error::closest;
mod filter;
mod interpolate;
mod network;
mod schema;
mod summary;
mod values;

#[cfg(test)]
mod template_tests;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::jinja::Jinja;
use crate::proxy::Proxy;
use crate::secret::{Secret, SecretUrl};
use crate::tls::CaFile;

pub(crate) use burst::DIGEST_MAX;
pub use error::{ConfigError, Diagnostic};
pub use filter::{Comparison, Exclusion, Expected, FieldCondition, Number};

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
    /// Where events come from: the stream.
    pub source: SourceConfig,
    /// Where deliveries wait.
    pub outbox: OutboxConfig,
    /// `None` when the file has no `[server]` table: no HTTP server runs.
    pub server: Option<ServerConfig>,
    /// In file order (of the `[targets.NAME]` headers). A target's index here is its id.
    pub targets: Vec<TargetConfig>,
    /// In file order.
    pub routes: Vec<RouteConfig>,
    /// `[tls] ca_file`, then `SSL_CERT_FILE`: trusted by the stream and every target on
    /// top of the bundled roots (each also holds them in its own `tls`).
    pub tls: Vec<CaFile>,
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
    /// The HTTP proxy the stream connects through (`[source] proxy`, else the proxy
    /// environment variables and `NO_PROXY`); `None`: direct.
    pub proxy: Option<Proxy>,
    /// CA bundles trusted on top of the bundled roots: the global ones of [`Config::tls`].
    pub tls: Vec<CaFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectConfig {
    /// The first wait after a dropped connection.
    pub initial: Duration,
    /// The longest wait; an authentication error waits between half of it and it.
    pub max: Duration,
}

/// `[outbox]`: where deliveries wait.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// The storage backend: `sled` (the default) or `nats`.
    pub backend: OutboxBackend,
    /// Stop taking events when the outbox's filesystem has less free than this, in
    /// bytes (0: no guard). Default 64 MiB: room for what is in flight and for sled's
    /// own housekeeping, so a full disk never catches a write halfway.
    pub min_free: u64,
    /// Stop taking events when the outbox takes this much on disk. Default: no cap.
    pub max_size: Option<u64>,
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
    /// The wait after the first failure; it doubles after each one.
    pub initial: Duration,
    /// The longest wait between two attempts.
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
    /// The platform and the options only it takes.
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
    /// CA bundles trusted on top of the bundled roots: the global ones of
    /// [`Config::tls`], then the target's own `tls.ca_file`.
    pub tls: Vec<CaFile>,
    /// `digest` and `stale`: what a chat target does with a backlog. Off for http.
    pub burst: Burst,
}

/// How a chat target folds what piled up behind its rate limit or an outage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Burst {
    /// `digest = { max = N }`: up to N deliveries waiting behind the rate limit go out
    /// as one message.
    pub digest: Option<usize>,
    /// `stale_after` with `stale = "digest" | "drop"`; `None` sends stale tweets as any.
    pub stale: Option<Stale>,
}

/// What happens to a tweet older than `after` when its turn comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale {
    /// Age (from `tweet_published_at`, else `detected_at`) past which a tweet is stale.
    pub after: Duration,
    /// Fold the stale ones into one message, or drop them.
    pub action: StaleAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleAction {
    /// One "N tweets from while delivery was delayed" message.
    Digest,
    /// Not sent; counted as `outcome="stale"`.
    Drop,
}

/// `count` requests per `per`: `"1/s"` is {1, 1 s}, `"5/2s"` is {5, 2 s}.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period (also the burst after a quiet spell).
    pub count: u32,
    /// The period.
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
    Telegram(TelegramOptions),
    Teams(TeamsOptions),
    Http(HttpOptions),
    Nats(NatsTargetOptions),
}

impl TargetKind {
    /// Its `type` in the config: `slack`, `discord`, `telegram`, `teams`, `http`, `nats`.
    pub fn name(&self) -> &'static str {
        schema::Kind::of(self).name()
    }

    /// A chat target's `template`, if it has one.
    pub fn chat_template(&self) -> Option<&Template> {
        match self {
            TargetKind::Slack(o) => o.template.as_ref(),
            TargetKind::Discord(o) => o.template.as_ref(),
            TargetKind::Telegram(o) => o.template.as_ref(),
            TargetKind::Teams(o) => o.template.as_ref(),
            TargetKind::Http(_) | TargetKind::Nats(_) => None,
        }
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
    /// The name shown for the message (legacy webhooks only: app webhooks ignore it).
    pub username: Option<String>,
    /// The icon shown for the message (legacy webhooks only).
    pub icon_emoji: Option<String>,
    /// The channel to post to instead of the webhook's own (legacy webhooks only).
    pub channel: Option<String>,
    /// The message text, replacing the built-in layout's tweet text: MiniJinja, or the
    /// older `{field}` form.
    pub template: Option<Template>,
    /// Whether Slack may unfurl the links in the message. Default false: the message
    /// already shows the tweet, and an unfurled X card would show it a second time.
    pub unfurl_links: bool,
    /// Whether Slack may unfurl media links (images, video). Default false, as
    /// `unfurl_links`.
    pub unfurl_media: bool,
}

#[derive(Debug, Clone, Default)]
pub struct DiscordOptions {
    /// Checked against Discord's rules for webhook names at start-up, so a name Discord
    /// refuses is a config error rather than a dead letter per tweet.
    pub username: Option<String>,
    /// The avatar shown for the message.
    pub avatar_url: Option<String>,
    /// Post into this thread of the webhook's channel.
    pub thread_id: Option<String>,
    /// For a webhook of a forum (or media) channel: each tweet opens a new post with
    /// this title, filled from the event like `template` (either form). Discord refuses a
    /// message to a forum that names neither a thread nor a new post's title. Never set
    /// together with `thread_id`.
    pub thread_name: Option<Template>,
    /// Send with Discord's SUPPRESS_NOTIFICATIONS flag: the message is posted, but
    /// nobody gets a push or desktop notification for it (a busy channel stays quiet).
    pub suppress_notifications: bool,
    /// The message `content` above the embed: MiniJinja, or the older `{field}` form.
    pub template: Option<Template>,
}

/// `[targets.NAME]` with `type = "telegram"`. The bot token is not here: it is part of
/// the request URL (`{api_url}/bot{token}/sendMessage`), which is a secret and prints as
/// `https://api.telegram.org/bot***`.
#[derive(Debug, Clone, Default)]
pub struct TelegramOptions {
    /// Where messages go: a numeric chat id (`-1001234567890` for a channel or supergroup)
    /// or a public `@channelusername`, as JSON it is sent as.
    pub chat_id: ChatId,
    /// Post into this topic of a forum supergroup.
    pub message_thread_id: Option<i64>,
    /// Send silently: the message arrives without a notification sound.
    pub disable_notification: bool,
    /// The message text (Telegram HTML), replacing the built-in layout.
    pub template: Option<Template>,
}

/// A Telegram `chat_id`: Telegram takes an integer or an `@username` string, and a
/// numeric id sent as a string is accepted too, but the config keeps what was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatId {
    Id(i64),
    Username(String),
}

impl Default for ChatId {
    fn default() -> Self {
        ChatId::Id(0)
    }
}

/// `[targets.NAME]` with `type = "teams"`: a Microsoft Teams Workflows webhook.
#[derive(Debug, Clone, Default)]
pub struct TeamsOptions {
    /// The card's main text (Adaptive Card markdown), replacing the tweet text.
    pub template: Option<Template>,
}

/// `[targets.NAME]` with `type = "nats"`: deliveries published into JetStream.
#[derive(Debug, Clone)]
pub struct NatsTargetOptions {
    /// Where each delivery is published. A JetStream stream must capture it.
    pub subject: String,
    /// The target's own `urls`, or `[outbox.nats]`'s when it has none.
    pub urls: Vec<NatsUrl>,
    /// The target's own credentials, token or user/password; with no `urls` of its
    /// own, `[outbox.nats]`'s.
    pub auth: NatsAuth,
}

#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// POST (the default) or PUT.
    pub method: HttpMethod,
    /// Configured headers, in file order. Values may hold tokens: they are secrets.
    pub headers: Vec<(String, Secret)>,
    /// Standard Webhooks signing key, already decoded (`whsec_` + base64 → bytes,
    /// anything else → its UTF-8 bytes).
    pub signing_key: Option<SigningKey>,
    /// The `signing_secret` did not start with `whsec_`, so its UTF-8 bytes are the key.
    /// Kept so that `check` can warn: Standard Webhooks libraries read a string secret
    /// as base64, and with this one they would fail to verify.
    pub plain_signing_secret: bool,
    /// `body_template`: the request body is this template filled from the event instead
    /// of the event bytes. Its [`Output`](crate::jinja::Output) says whether the body
    /// must be JSON (then it is checked before sending).
    pub body_template: Option<Jinja>,
    /// `content_type`: the body's `Content-Type` when `body_template` is set. Default
    /// `application/json`.
    pub content_type: Option<String>,
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

/// A message text, prepared once at start-up: either the older form, split into
/// literals and `{field}` placeholders, or one MiniJinja template (a text with `{{` or
/// `{%`), compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Literal text and `{field}` placeholders in order; or a single [`TemplatePart::Jinja`].
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    /// A top-level event field name.
    Field(String),
    /// A compiled MiniJinja template: the whole template when it is one.
    Jinja(Jinja),
}

/// `[[routes]]`.
#[derive(Debug, Clone, Default)]
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
    /// `where`: conditions on any field of the event by its dotted path, ANDed with each
    /// other and the keys above. Empty: no condition.
    pub fields: Vec<FieldCondition>,
    /// `unless`: what excludes an event the conditions above let through.
    pub unless: Option<Exclusion>,
    /// Indices into [`Config::targets`], without duplicates, in the order written.
    pub targets: Vec<usize>,
    /// A match ends the walk: later routes are not tried.
    pub stop: bool,
}
