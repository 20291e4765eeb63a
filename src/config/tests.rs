//! Whole-file tests of the loader: defaults, every kind of error with its exact message
//! and position, interpolation, secret hygiene, and the contract's and the shipped
//! example configs.

use std::path::Path;
use std::time::Duration;

use super::*;

const PATH: &str = "relay.toml";

/// Distinctive secret values: no error message or summary may ever contain one.
const API_KEY: &str = "sk_live_APIKEY_7f3a";
const SLACK_URL: &str = "https://hooks.slack.com/services/T0AAA/B0BBB/SLACKTOKEN_9c1d";
const DISCORD_URL: &str = "https://discord.com/api/webhooks/123456/DISCORDTOKEN_4e2b";
const WORKFLOW_TOKEN: &str = "WORKFLOWTOKEN_8d5e";
const SIGNING_SECRET: &str = "SIGNINGSECRET_2a6f";
const INGEST_SECRET: &str = "INGESTSECRET_5b7c";
const SECRETS: &[&str] = &[
    API_KEY,
    "SLACKTOKEN_9c1d",
    "DISCORDTOKEN_4e2b",
    WORKFLOW_TOKEN,
    SIGNING_SECRET,
    INGEST_SECRET,
];

fn test_env(name: &str) -> Option<String> {
    let value = match name {
        "SCRAPEBADGER_API_KEY" => API_KEY,
        "SLACK_WEBHOOK_URL" => SLACK_URL,
        "DISCORD_WEBHOOK_URL" => DISCORD_URL,
        "WORKFLOW_TOKEN" => WORKFLOW_TOKEN,
        "WORKFLOW_SIGNING_SECRET" => SIGNING_SECRET,
        "SCRAPEBADGER_WEBHOOK_SECRET" => INGEST_SECRET,
        "EMPTY" => "",
        _ => return None,
    };
    Some(value.to_owned())
}

fn parse(text: &str) -> Config {
    match Config::parse(text, Path::new(PATH), &test_env) {
        Ok(config) => config,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// The error for `text`, checked to hold no secret.
fn error(text: &str) -> String {
    let e =
        Config::parse(text, Path::new(PATH), &test_env).expect_err("the config should be rejected");
    let message = e.to_string();
    assert_no_secret(&message);
    message
}

fn assert_no_secret(s: &str) {
    for secret in SECRETS {
        assert!(!s.contains(secret), "a secret leaked: {s}");
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn slack_target(extra: &str) -> String {
    format!("[targets.t]\ntype = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\n{extra}")
}

fn http_target(extra: &str) -> String {
    format!("[targets.t]\ntype = \"http\"\nurl = \"https://example.com/hook\"\n{extra}")
}

// ---------------------------------------------------------------------------------
// Defaults

#[test]
fn an_empty_file_gets_every_default() {
    let c = parse("");
    assert_eq!(c.path, Path::new(PATH));
    assert_eq!(
        c.source.url.as_str(),
        "wss://scrapebadger.com/v1/twitter/stream"
    );
    assert!(c.source.api_key.is_none());
    assert_eq!(c.source.idle_timeout, secs(75));
    assert_eq!(c.source.max_message_size, 1 << 20);
    assert_eq!(
        c.source.reconnect,
        ReconnectConfig {
            initial: secs(1),
            max: secs(60)
        }
    );
    assert_eq!(c.outbox.path, Path::new("./badger-relay-data"));
    assert_eq!(c.outbox.dedupe_window, secs(24 * 3600));
    assert_eq!(
        c.outbox.retry,
        RetryPolicy {
            initial: secs(1),
            max: secs(300),
            max_age: secs(24 * 3600),
            max_attempts: None
        }
    );
    assert!(c.server.is_none());
    assert!(c.targets.is_empty());
    assert!(c.routes.is_empty());
}

#[test]
fn an_empty_server_table_listens_on_loopback_without_ingest() {
    let server = parse("[server]\n").server.expect("server");
    assert_eq!(server.listen, "127.0.0.1:9750".parse().unwrap());
    assert!(server.ingest_secret.is_none());
}

#[test]
fn each_target_type_has_its_own_defaults() {
    let c = parse(
        "[targets.s]\ntype = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\n\
         [targets.d]\ntype = \"discord\"\nurl = \"https://discord.com/api/webhooks/1/x\"\n\
         [targets.h]\ntype = \"http\"\nurl = \"https://example.com/hook\"\n",
    );
    let [s, d, h] = &c.targets[..] else {
        panic!("three targets")
    };

    assert_eq!(
        (s.concurrency, s.dedupe, s.timeout),
        (1, DedupeMode::Tweet, secs(10))
    );
    assert_eq!(
        s.rate_limit,
        Some(RateLimit {
            count: 1,
            per: secs(1)
        })
    );
    assert_eq!(s.retry, c.outbox.retry);
    let TargetKind::Slack(o) = &s.kind else {
        panic!("slack")
    };
    assert!(
        o.username.is_none()
            && o.icon_emoji.is_none()
            && o.channel.is_none()
            && o.template.is_none()
    );

    assert_eq!(
        (d.concurrency, d.dedupe, d.timeout),
        (1, DedupeMode::Tweet, secs(10))
    );
    assert_eq!(
        d.rate_limit,
        Some(RateLimit {
            count: 5,
            per: secs(2)
        })
    );
    let TargetKind::Discord(o) = &d.kind else {
        panic!("discord")
    };
    assert!(
        o.username.is_none()
            && o.avatar_url.is_none()
            && o.thread_id.is_none()
            && o.template.is_none()
    );

    assert_eq!(
        (h.concurrency, h.dedupe, h.timeout),
        (4, DedupeMode::Event, secs(10))
    );
    assert_eq!(h.rate_limit, None);
    let TargetKind::Http(o) = &h.kind else {
        panic!("http")
    };
    assert_eq!(o.method, HttpMethod::Post);
    assert!(o.headers.is_empty() && o.signing_key.is_none());
}

#[test]
fn route_defaults() {
    let c = parse(&slack_target(
        "[[routes]]\ntargets = [\"t\"]\n[[routes]]\nname = \"named\"\ntargets = [\"t\"]\n",
    ));
    let r = &c.routes[0];
    assert_eq!(r.name, "routes[0]");
    assert!(r.monitors.is_empty() && r.authors.is_empty() && r.text.is_none());
    assert_eq!(r.events, ["tweet.detected"]);
    assert_eq!(r.targets, [0]);
    assert!(!r.stop);
    assert_eq!(c.routes[1].name, "named");
}

// ---------------------------------------------------------------------------------
// Every option, set

#[test]
fn every_option_can_be_set() {
    let c = parse(
        r##"
[source]
url = "ws://127.0.0.1:9000/stream"
api_key = "literal-key"
idle_timeout = "2s"
max_message_size = 65536
reconnect = { initial = "100ms", max = "5s" }

[outbox]
path = "/var/lib/relay"
dedupe_window = "1h"
retry = { initial = "2s", max = "10m", max_age = "48h", max_attempts = 12 }

[server]
listen = "[::1]:8080"
ingest_secret = "literal-secret"

[targets.s]
type = "slack"
url = "https://hooks.slack.com/services/x"
username = "Bot"
icon_emoji = ":bird:"
channel = "#alerts"
template = "{author_username}: {tweet_url}"
concurrency = 2
rate_limit = "10/m"
timeout = "3s"
dedupe = "event"

[targets.d]
type = "discord"
url = "https://discord.com/api/webhooks/1/x"
username = "Bot"
avatar_url = "https://example.com/a.png"
thread_id = "123456789"
template = "{tweet_text}"

[targets.h]
type = "http"
url = "http://localhost:8080/hook"
method = "put"
headers = { "X-Token" = "abc", Authorization = "Bearer x" }
signing_secret = "whsec_aGVsbG8="
dedupe = "tweet"
rate_limit = "100/2s"

[[routes]]
name = "all"
monitors = ["Tech*", "abc-123"]
authors = ["@sama"]
text = "(?i)launch"
events = ["tweet.detected", "tweet.deleted"]
targets = ["h", "s"]
stop = true
"##,
    );
    let s = &c.source;
    assert_eq!(s.url.as_str(), "ws://127.0.0.1:9000/stream");
    assert_eq!(s.api_key.as_ref().unwrap().expose(), "literal-key");
    assert_eq!((s.idle_timeout, s.max_message_size), (secs(2), 65536));
    assert_eq!(
        s.reconnect,
        ReconnectConfig {
            initial: Duration::from_millis(100),
            max: secs(5)
        }
    );
    assert_eq!(c.outbox.path, Path::new("/var/lib/relay"));
    assert_eq!(c.outbox.dedupe_window, secs(3600));
    assert_eq!(
        c.outbox.retry,
        RetryPolicy {
            initial: secs(2),
            max: secs(600),
            max_age: secs(48 * 3600),
            max_attempts: Some(12)
        }
    );
    let server = c.server.as_ref().unwrap();
    assert_eq!(server.listen, "[::1]:8080".parse().unwrap());
    assert_eq!(
        server.ingest_secret.as_ref().unwrap().expose(),
        "literal-secret"
    );

    let [ts, td, th] = &c.targets[..] else {
        panic!("three targets")
    };
    assert_eq!(
        (ts.concurrency, ts.timeout, ts.dedupe),
        (2, secs(3), DedupeMode::Event)
    );
    assert_eq!(
        ts.rate_limit,
        Some(RateLimit {
            count: 10,
            per: secs(60)
        })
    );
    let TargetKind::Slack(o) = &ts.kind else {
        panic!("slack")
    };
    assert_eq!(o.username.as_deref(), Some("Bot"));
    assert_eq!(o.icon_emoji.as_deref(), Some(":bird:"));
    assert_eq!(o.channel.as_deref(), Some("#alerts"));
    assert_eq!(
        o.template.as_ref().unwrap().parts,
        [
            TemplatePart::Field("author_username".into()),
            TemplatePart::Literal(": ".into()),
            TemplatePart::Field("tweet_url".into()),
        ]
    );
    let TargetKind::Discord(o) = &td.kind else {
        panic!("discord")
    };
    assert_eq!(o.username.as_deref(), Some("Bot"));
    assert_eq!(o.avatar_url.as_deref(), Some("https://example.com/a.png"));
    assert_eq!(o.thread_id.as_deref(), Some("123456789"));
    assert_eq!(
        o.template.as_ref().unwrap().parts,
        [TemplatePart::Field("tweet_text".into())]
    );
    assert_eq!(th.url.expose().as_str(), "http://localhost:8080/hook");
    assert_eq!(th.dedupe, DedupeMode::Tweet);
    assert_eq!(
        th.rate_limit,
        Some(RateLimit {
            count: 100,
            per: secs(2)
        })
    );
    let TargetKind::Http(o) = &th.kind else {
        panic!("http")
    };
    assert_eq!(o.method, HttpMethod::Put);
    // File order, not the parser's sorted order.
    let headers: Vec<_> = o
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    assert_eq!(headers, [("X-Token", "abc"), ("Authorization", "Bearer x")]);
    assert_eq!(o.signing_key, Some(SigningKey(b"hello".to_vec())));

    let r = &c.routes[0];
    assert_eq!(r.name, "all");
    assert_eq!(r.monitors, ["Tech*", "abc-123"]);
    assert_eq!(r.authors, ["@sama"]);
    assert_eq!(r.text.as_ref().unwrap().as_str(), "(?i)launch");
    assert_eq!(r.events, ["tweet.detected", "tweet.deleted"]);
    assert_eq!(r.targets, [2, 0]);
    assert!(r.stop);
}

#[test]
fn sizes_also_take_units_and_methods_any_case() {
    let c = parse("[source]\nmax_message_size = \"64KiB\"\n");
    assert_eq!(c.source.max_message_size, 64 * 1024);
    let c = parse(&http_target("method = \"Post\"\n"));
    let TargetKind::Http(o) = &c.targets[0].kind else {
        panic!("http")
    };
    assert_eq!(o.method, HttpMethod::Post);
}

#[test]
fn signing_secrets_without_prefix_are_raw_bytes() {
    let c = parse(&http_target("signing_secret = \"plain secret\"\n"));
    let TargetKind::Http(o) = &c.targets[0].kind else {
        panic!("http")
    };
    assert_eq!(o.signing_key, Some(SigningKey(b"plain secret".to_vec())));
}

#[test]
fn an_empty_api_key_counts_as_not_set() {
    let c = parse("[source]\napi_key = \"${SCRAPEBADGER_API_KEY_UNSET:-}\"\n");
    assert!(c.source.api_key.is_none());
    assert!(c.summary().contains("api_key: not set (required by run)"));
}

// ---------------------------------------------------------------------------------
// Retry policies

#[test]
fn a_target_retry_overrides_the_outbox_retry_key_by_key() {
    let c = parse(&slack_target(
        "retry = { max = \"1m\", max_attempts = 3 }\n\
         [outbox]\nretry = { initial = \"2s\", max = \"10m\", max_age = \"1h\" }\n",
    ));
    assert_eq!(
        c.targets[0].retry,
        RetryPolicy {
            initial: secs(2),
            max: secs(60),
            max_age: secs(3600),
            max_attempts: Some(3)
        }
    );
    assert_eq!(c.outbox.retry.max_attempts, None);
}

#[test]
fn a_target_without_retry_takes_the_outbox_retry() {
    let c = parse(&slack_target("[outbox]\nretry = { max_attempts = 7 }\n"));
    assert_eq!(
        c.targets[0].retry,
        RetryPolicy {
            max_attempts: Some(7),
            ..c.outbox.retry
        }
    );
    assert_eq!(c.targets[0].retry.max, secs(300));
}

#[test]
fn retry_initial_longer_than_max_is_an_error() {
    assert_eq!(
        error("[outbox]\nretry = { initial = \"10m\" }\n"),
        "relay.toml:2:21: outbox.retry.initial: `initial` (10m) must not be longer than `max` (5m)"
    );
    assert_eq!(
        error(&slack_target("retry = { max = \"500ms\" }\n")),
        "relay.toml:4:17: targets.t.retry.max: `initial` (1s, from [outbox].retry) must not be longer than `max` (500ms)"
    );
    assert_eq!(
        error("[source]\nreconnect = { initial = \"2m\", max = \"1m\" }\n"),
        "relay.toml:2:25: source.reconnect.initial: `initial` (2m) must not be longer than `max` (1m)"
    );
    assert_eq!(
        error("[outbox.retry]\nmax_attempts = 0\n"),
        "relay.toml:2:16: outbox.retry.max_attempts: must be a whole number from 1 to 4294967295"
    );
}

// ---------------------------------------------------------------------------------
// Targets and routes: order and resolution

#[test]
fn targets_keep_file_order_and_routes_resolve_to_indices_without_duplicates() {
    let c = parse(
        r#"
[targets.zulu]
type = "http"
url = "https://example.com/z"

[targets.alpha]
type = "http"
url = "https://example.com/a"

[targets.mike]
type = "http"
url = "https://example.com/m"

[[routes]]
targets = ["mike", "zulu", "mike", "alpha", "zulu"]

[[routes]]
name = "second"
targets = ["alpha"]
"#,
    );
    let names: Vec<_> = c.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["zulu", "alpha", "mike"]);
    assert_eq!(c.routes[0].targets, [2, 0, 1]);
    assert_eq!(c.routes[1].targets, [1]);
    let route_names: Vec<_> = c.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(route_names, ["routes[0]", "second"]);
}

#[test]
fn route_errors() {
    let base = slack_target("");
    assert_eq!(
        error(&format!("{base}[[routes]]\ntargets = [\"tt\", \"nope\"]\n")),
        "relay.toml:5:12: routes[0].targets[0]: no target named `tt` (did you mean `t`?)"
    );
    assert_eq!(
        error(&format!(
            "{base}[[routes]]\ntargets = [\"t\", \"elsewhere\"]\n"
        )),
        "relay.toml:5:17: routes[0].targets[1]: no target named `elsewhere`"
    );
    assert_eq!(
        error(&format!("{base}[[routes]]\nname = \"x\"\n")),
        "relay.toml:4:1: routes[0].targets: missing required key (a route needs at least one target)"
    );
    assert_eq!(
        error(&format!("{base}[[routes]]\ntargets = []\n")),
        "relay.toml:5:11: routes[0].targets: a route needs at least one target"
    );
    assert_eq!(
        error(&format!(
            "{base}[[routes]]\nname = \"a\"\ntargets = [\"t\"]\n[[routes]]\nname = \"a\"\ntargets = [\"t\"]\n"
        )),
        "relay.toml:8:8: routes[1].name: duplicate route name (routes[0] has it too)"
    );
    assert_eq!(
        error(&format!(
            "{base}[[routes]]\ntargets = [\"t\"]\ntext = \"launch(\"\n"
        )),
        "relay.toml:6:8: routes[0].text: invalid regex: regex parse error:\n    launch(\n          ^\nerror: unclosed group"
    );
    assert_eq!(
        error(&format!(
            "{base}[[routes]]\ntargets = [\"t\"]\nmonitor = [\"x\"]\n"
        )),
        "relay.toml:6:1: routes[0].monitor: unknown key (did you mean `monitors`?)"
    );
    assert_eq!(
        error(&format!(
            "{base}[[routes]]\ntargets = [\"t\"]\nauthors = [\"a\", 1]\n"
        )),
        "relay.toml:6:17: routes[0].authors[1]: expected a string, found an integer"
    );
    assert_eq!(
        error(&format!(
            "{base}[[routes]]\ntargets = [\"t\"]\nevents = []\n"
        )),
        "relay.toml:6:10: routes[0].events: an empty list matches no event (remove the key for the default, [\"tweet.detected\"])"
    );
    assert_eq!(
        error(&format!(
            "{base}[[routes]]\ntargets = [\"t\"]\nstop = \"yes\"\n"
        )),
        "relay.toml:6:8: routes[0].stop: expected true or false, found a string"
    );
    assert_eq!(
        error(&format!("{base}[routes]\ntargets = [\"t\"]\n")),
        "relay.toml:4:1: routes: expected an array of tables (`[[routes]]`), found a table"
    );
}

// ---------------------------------------------------------------------------------
// Errors: keys, types, values

#[test]
fn error_display_is_path_line_column_key_message_suggestion() {
    let e = Config::parse(
        "[source]\nurll = \"wss://x\"\n",
        Path::new("conf/relay.toml"),
        &test_env,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "conf/relay.toml:2:1: source.urll: unknown key (did you mean `url`?)"
    );
    let d = e.diagnostic().expect("a diagnostic");
    assert_eq!((d.line, d.column), (2, 1));
    assert_eq!(d.key.as_deref(), Some("source.urll"));
    assert_eq!(d.message, "unknown key");
    assert_eq!(d.suggestion.as_deref(), Some("url"));
    assert_eq!(d.span, 9..13);
    assert_eq!(e.path(), Path::new("conf/relay.toml"));
}

#[test]
fn toml_syntax_errors_are_located_without_quoting_the_line() {
    let message = error(&format!("[source]\napi_key = \"{API_KEY}\n"));
    assert!(message.starts_with("relay.toml:2:"), "{message}");
    assert!(message.contains("invalid TOML"), "{message}");
    assert_eq!(
        error("[source]\nurl = \"wss://a\"\nurl = \"wss://b\"\n"),
        "relay.toml:3:1: invalid TOML: duplicate key"
    );
}

#[test]
fn unknown_keys_anywhere_are_errors_with_suggestions() {
    assert_eq!(
        error("[sources]\n"),
        "relay.toml:1:2: sources: unknown key (did you mean `source`?)"
    );
    assert_eq!(
        error("[[route]]\n"),
        "relay.toml:1:3: route: unknown key (did you mean `routes`?)"
    );
    assert_eq!(error("colour = 1\n"), "relay.toml:1:1: colour: unknown key");
    assert_eq!(
        error("[source]\nreconnect = { inital = \"1s\" }\n"),
        "relay.toml:2:15: source.reconnect.inital: unknown key (did you mean `initial`?)"
    );
    assert_eq!(
        error("[outbox]\ndedupe-window = \"1h\"\n"),
        "relay.toml:2:1: outbox.dedupe-window: unknown key (did you mean `dedupe_window`?)"
    );
    assert_eq!(
        error("[server]\nlisten_addr = \"127.0.0.1:1\"\n"),
        "relay.toml:2:1: server.listen_addr: unknown key (did you mean `listen`?)"
    );
    assert_eq!(
        error(&slack_target("timout = \"1s\"\n")),
        "relay.toml:4:1: targets.t.timout: unknown key (did you mean `timeout`?)"
    );
    assert_eq!(
        error(&slack_target(
            "retry = { max_age = \"1h\", max_attempt = 3 }\n"
        )),
        "relay.toml:4:27: targets.t.retry.max_attempt: unknown key (did you mean `max_attempts`?)"
    );
}

#[test]
fn options_of_another_target_type_are_named_as_such() {
    assert_eq!(
        error(&slack_target("signing_secret = \"x\"\n")),
        "relay.toml:4:1: targets.t.signing_secret: not valid for a slack target (only http targets take it)"
    );
    assert_eq!(
        error(&http_target("template = \"{tweet_url}\"\n")),
        "relay.toml:4:1: targets.t.template: not valid for an http target (only slack and discord targets take it)"
    );
    assert_eq!(
        error(&slack_target("thread_id = \"1\"\n")),
        "relay.toml:4:1: targets.t.thread_id: not valid for a slack target (only discord targets take it)"
    );
}

#[test]
fn target_errors() {
    assert_eq!(
        error("[targets.t]\ntype = \"slak\"\n"),
        "relay.toml:2:8: targets.t.type: unknown target type: expected `slack`, `discord` or `http` (did you mean `slack`?)"
    );
    assert_eq!(
        error("[targets.t]\nurl = \"https://x.example/\"\n"),
        "relay.toml:1:1: targets.t.type: missing required key (`slack`, `discord` or `http`)"
    );
    assert_eq!(
        error("[targets.t]\ntype = \"http\"\n"),
        "relay.toml:1:1: targets.t.url: missing required key (the endpoint to deliver to)"
    );
    assert_eq!(
        error("[targets.\"team slack\"]\ntype = \"http\"\n"),
        "relay.toml:1:10: targets.\"team slack\": target names may use only letters, digits, `_`, `.` and `-` (they become storage keys)"
    );
    assert_eq!(
        error(&slack_target("concurrency = 0\n")),
        "relay.toml:4:15: targets.t.concurrency: must be at least 1"
    );
    assert_eq!(
        error(&slack_target("concurrency = \"4\"\n")),
        "relay.toml:4:15: targets.t.concurrency: expected an integer, found a string"
    );
    assert_eq!(
        error(&slack_target("dedupe = \"tweets\"\n")),
        "relay.toml:4:10: targets.t.dedupe: unknown dedupe mode: expected `tweet` or `event` (did you mean `tweet`?)"
    );
    assert_eq!(
        error(&http_target("method = \"GET\"\n")),
        "relay.toml:4:10: targets.t.method: unknown method: expected `POST` or `PUT`"
    );
    assert_eq!(
        error(&slack_target("template = \"{author_usrname} wrote\"\n")),
        format!(
            "relay.toml:4:12: targets.t.template: unknown placeholder `{{author_usrname}}` (known: {}) (did you mean `{{author_username}}`?)",
            TEMPLATE_FIELDS.join(", ")
        )
    );
    assert_eq!(
        error(&slack_target("template = \"{tweet_url\"\n")),
        "relay.toml:4:12: targets.t.template: `{` is not closed by `}` (write `{{` for a literal brace)"
    );
    assert_eq!(
        error("targets = 3\n"),
        "relay.toml:1:11: targets: expected a table, found an integer"
    );
}

#[test]
fn bad_durations_sizes_and_rates_are_errors() {
    assert_eq!(
        error("[source]\nidle_timeout = \"75 parsecs\"\n"),
        "relay.toml:2:16: source.idle_timeout: not a duration: write a number and a unit, like \"500ms\", \"75s\", \"5m\" or \"24h\""
    );
    assert_eq!(
        error("[source]\nidle_timeout = 75\n"),
        "relay.toml:2:16: source.idle_timeout: expected a duration with a unit, like \"10s\" or \"500ms\", found a bare number"
    );
    assert_eq!(
        error("[source]\nidle_timeout = true\n"),
        "relay.toml:2:16: source.idle_timeout: expected a duration like \"10s\" or \"500ms\", found a boolean"
    );
    assert_eq!(
        error("[outbox]\ndedupe_window = \"0s\"\n"),
        "relay.toml:2:17: outbox.dedupe_window: must be longer than zero"
    );
    assert_eq!(
        error("[source]\nmax_message_size = \"1 megabyte\"\n"),
        "relay.toml:2:20: source.max_message_size: not a size: write a whole number of bytes or a number and a unit, like \"512B\", \"64KiB\" or \"1MiB\""
    );
    assert_eq!(
        error("[source]\nmax_message_size = 0\n"),
        "relay.toml:2:20: source.max_message_size: must be more than zero bytes"
    );
    assert_eq!(
        error(&slack_target("rate_limit = \"fast\"\n")),
        "relay.toml:4:14: targets.t.rate_limit: not a rate limit: write COUNT/PERIOD, like \"1/s\", \"5/2s\", \"100/m\" or \"10/500ms\""
    );
    assert_eq!(
        error(&slack_target("rate_limit = \"0/s\"\n")),
        "relay.toml:4:14: targets.t.rate_limit: the count must be at least 1"
    );
    assert_eq!(
        error(&slack_target("timeout = \"0ms\"\n")),
        "relay.toml:4:11: targets.t.timeout: must be longer than zero"
    );
}

#[test]
fn bad_addresses_and_urls_are_errors() {
    assert_eq!(
        error("[server]\nlisten = \"localhost:9750\"\n"),
        "relay.toml:2:10: server.listen: not a socket address: write an IP address and a port, like \"127.0.0.1:9750\" or \"[::1]:9750\" (host names are not accepted)"
    );
    assert_eq!(
        error("[source]\nurl = \"https://scrapebadger.com/v1/twitter/stream\"\n"),
        "relay.toml:2:7: source.url: must be a wss:// or ws:// URL"
    );
    assert_eq!(
        error(&format!(
            "[source]\nurl = \"wss://scrapebadger.com/v1/twitter/stream?api_key={API_KEY}\"\n"
        )),
        "relay.toml:2:7: source.url: must not contain the api_key: set `api_key` instead, which is kept secret"
    );
    assert_eq!(
        error(
            "[targets.t]\ntype = \"slack\"\nurl = \"wss://hooks.slack.com/services/T/B/SLACKTOKEN_9c1d\"\n"
        ),
        "relay.toml:3:7: targets.t.url: must be an https:// or http:// URL"
    );
    assert_eq!(
        error(
            "[targets.t]\ntype = \"slack\"\nurl = \"hooks.slack.com/services/T/B/SLACKTOKEN_9c1d\"\n"
        ),
        "relay.toml:3:7: targets.t.url: not a valid URL: relative URL without a base"
    );
    assert_eq!(
        error(&slack_target("").replace(
            "https://hooks.slack.com/services/x",
            "https://hooks.slack.com:99999/SLACKTOKEN_9c1d"
        )),
        "relay.toml:3:7: targets.t.url: not a valid URL: invalid port number"
    );
    assert_eq!(
        error(
            "[targets.d]\ntype = \"discord\"\nurl = \"https://discord.com/api/webhooks/1/x\"\nthread_id = \"abc\"\n"
        ),
        "relay.toml:4:13: targets.d.thread_id: must be a Discord thread id (digits only)"
    );
}

#[test]
fn header_errors_name_the_header_never_its_value() {
    assert_eq!(
        error(&http_target(
            "headers = { \"Bad Header\" = \"WORKFLOWTOKEN_8d5e\" }\n"
        )),
        "relay.toml:4:13: targets.t.headers.\"Bad Header\": `Bad Header` is not a valid HTTP header name"
    );
    assert_eq!(
        error(&http_target(
            "[targets.t.headers]\nAuthorization = \"Bearer ${WORKFLOW_TOKEN}\\n\"\n"
        )),
        "relay.toml:5:17: targets.t.headers.Authorization: the value of header `Authorization` is not a valid HTTP header value (visible ASCII only, no line breaks)"
    );
    assert_eq!(
        error(&http_target("headers = { webhook-signature = \"v1,x\" }\n")),
        "relay.toml:4:13: targets.t.headers.webhook-signature: header `webhook-signature` is set by badger-relay and cannot be configured"
    );
    assert_eq!(
        error(&http_target("headers = { X-A = \"1\", x-a = \"2\" }\n")),
        "relay.toml:4:24: targets.t.headers.x-a: header `x-a` is set twice (header names are case-insensitive)"
    );
    assert_eq!(
        error(&http_target("headers = { X-A = 1 }\n")),
        "relay.toml:4:19: targets.t.headers.X-A: expected a string, found an integer"
    );
}

#[test]
fn secret_errors_never_show_the_secret() {
    assert_eq!(
        error(&http_target(
            "signing_secret = \"whsec_SIGNINGSECRET_2a6f!\"\n"
        )),
        "relay.toml:4:18: targets.t.signing_secret: not valid base64 after the `whsec_` prefix"
    );
    assert_eq!(
        error(&http_target("signing_secret = \"${EMPTY}\"\n")),
        "relay.toml:4:18: targets.t.signing_secret: must not be empty (remove the key to send unsigned requests)"
    );
    assert_eq!(
        error("[server]\ningest_secret = \"\"\n"),
        "relay.toml:2:17: server.ingest_secret: must not be empty (remove the key to disable POST /ingest)"
    );
    let env = |name: &str| (name == "KEY").then(|| format!("{API_KEY}\n"));
    for text in [
        "[source]\napi_key = \"${KEY}\"\n",
        "[server]\ningest_secret = \"${KEY}\"\n",
        "[targets.t]\ntype = \"http\"\nurl = \"https://x.example/\"\nsigning_secret = \"${KEY}\"\n",
    ] {
        let e = Config::parse(text, Path::new(PATH), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a trailing newline from a secrets file?"), "{e}");
        assert_no_secret(&e);
    }
    assert_eq!(
        error("[server]\ningest_secret = 5\n"),
        "relay.toml:2:17: server.ingest_secret: expected a string, found an integer"
    );
}

// ---------------------------------------------------------------------------------
// Interpolation

#[test]
fn interpolation_everywhere_strings_are() {
    let c = parse(
        r#"
[source]
api_key = "${SCRAPEBADGER_API_KEY}"
idle_timeout = "${IDLE:-90s}"

[outbox]
path = "${DATA_DIR:-/data}/relay"
retry = { max = "${RETRY_MAX:-2m}" }

[targets.w]
type = "${TYPE:-http}"
url = "https://example.com/hook?cost=$$5"
headers = { Authorization = "Bearer ${WORKFLOW_TOKEN}", X-Env = "${ENVIRONMENT:-prod}" }

[[routes]]
name = "r-${ENVIRONMENT:-prod}"
monitors = ["${MONITOR:-Tech Leaders}", "$${literal}"]
text = "price \\$$\\d+"
targets = ["${TARGET:-w}"]
"#,
    );
    assert_eq!(c.source.api_key.as_ref().unwrap().expose(), API_KEY);
    assert_eq!(c.source.idle_timeout, secs(90));
    assert_eq!(c.outbox.path, Path::new("/data/relay"));
    assert_eq!(c.outbox.retry.max, secs(120));
    let t = &c.targets[0];
    assert_eq!(t.url.expose().as_str(), "https://example.com/hook?cost=$5");
    let TargetKind::Http(o) = &t.kind else {
        panic!("http")
    };
    let headers: Vec<_> = o
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    assert_eq!(
        headers,
        [
            ("Authorization", format!("Bearer {WORKFLOW_TOKEN}").as_str()),
            ("X-Env", "prod")
        ]
    );
    let r = &c.routes[0];
    assert_eq!(r.name, "r-prod");
    assert_eq!(r.monitors, ["Tech Leaders", "${literal}"]);
    assert_eq!(r.text.as_ref().unwrap().as_str(), "price \\$\\d+");
    assert_eq!(r.targets, [0]);
}

#[test]
fn an_interpolated_value_cannot_inject_toml() {
    let env =
        |name: &str| (name == "NAME").then(|| "x\"\n[server]\nlisten = \"0.0.0.0:1".to_owned());
    let c = Config::parse(
        "[[routes]]\nname = \"${NAME}\"\ntargets = []\n",
        Path::new(PATH),
        &env,
    );
    // The value stays one string; the route is rejected for its empty targets, and no
    // [server] table appeared.
    let e = c.unwrap_err().to_string();
    assert_eq!(
        e,
        "relay.toml:3:11: routes[0].targets: a route needs at least one target"
    );
    let c = Config::parse("[outbox]\npath = \"${NAME}\"\n", Path::new(PATH), &env).unwrap();
    assert!(c.server.is_none());
    assert!(c.outbox.path.to_str().unwrap().contains("[server]"));
}

#[test]
fn a_missing_variable_names_the_variable_and_the_key() {
    assert_eq!(
        error("[targets.t]\ntype = \"slack\"\nurl = \"${SLACK_URL_UNSET}\"\n"),
        "relay.toml:3:7: targets.t.url: environment variable `SLACK_URL_UNSET` is not set (write `${SLACK_URL_UNSET:-default}` to give a default)"
    );
    assert_eq!(
        error(&http_target(
            "headers = { Authorization = \"Bearer ${TOKEN_UNSET}\" }\n"
        )),
        "relay.toml:4:29: targets.t.headers.Authorization: environment variable `TOKEN_UNSET` is not set (write `${TOKEN_UNSET:-default}` to give a default)"
    );
    assert_eq!(
        error(&slack_target(
            "[[routes]]\ntargets = [\"t\", \"${T_UNSET}\"]\n"
        )),
        "relay.toml:5:17: routes[0].targets[1]: environment variable `T_UNSET` is not set (write `${T_UNSET:-default}` to give a default)"
    );
    assert_eq!(
        error("[source]\napi_key = \"${SCRAPEBADGER_API_KEY\"\n"),
        "relay.toml:2:11: source.api_key: `${` is not closed by `}` (write `$$` for a literal `$`)"
    );
    assert_eq!(
        error("[outbox]\npath = \"${DATA DIR}\"\n"),
        "relay.toml:2:8: outbox.path: `${...}` must hold a variable name (letters, digits, `_`, not starting with a digit), optionally followed by `:-default` (write `$$` for a literal `$`)"
    );
}

// ---------------------------------------------------------------------------------
// The contract's example, the shipped example, the summary and secret hygiene

/// Copied from CONTRACT.md, "Configuration (TOML)".
const CONTRACT_EXAMPLE: &str = r#"
[source]
url = "wss://scrapebadger.com/v1/twitter/stream"   # the default
api_key = "${SCRAPEBADGER_API_KEY}"                   # required by `run`
idle_timeout = "75s"          # no frame at all (pings included) for this long: reconnect
max_message_size = "1MiB"     # larger frames are dropped and counted, the connection kept
reconnect = { initial = "1s", max = "60s" }           # exponential, full jitter

[outbox]
path = "./badger-relay-data"  # sled directory, created if missing
dedupe_window = "24h"
retry = { initial = "1s", max = "5m", max_age = "24h" }   # max_attempts = N also accepted

[server]                      # optional: absent = no HTTP server
listen = "127.0.0.1:9750"
ingest_secret = "${SCRAPEBADGER_WEBHOOK_SECRET}"          # optional: enables POST /ingest

[targets.team-slack]
type = "slack"
url = "${SLACK_WEBHOOK_URL}"

[targets.ops-discord]
type = "discord"
url = "${DISCORD_WEBHOOK_URL}"
username = "Tweet alerts"     # optional

[targets.workflow]
type = "http"
url = "https://example.com/hooks/tweets"
headers = { Authorization = "Bearer ${WORKFLOW_TOKEN}" }
signing_secret = "${WORKFLOW_SIGNING_SECRET}"             # optional
timeout = "10s"

[[routes]]
name = "tech-leaders"
monitors = ["Tech Leaders"]
targets = ["team-slack", "workflow"]

[[routes]]
name = "launches"
authors = ["elonmusk", "@sama"]
text = "(?i)launch|announce"
targets = ["ops-discord"]
stop = true
"#;

#[test]
fn the_contract_example_parses_to_what_it_says() {
    let c = parse(CONTRACT_EXAMPLE);
    assert_eq!(
        c.source.url.as_str(),
        "wss://scrapebadger.com/v1/twitter/stream"
    );
    assert_eq!(c.source.api_key.as_ref().unwrap().expose(), API_KEY);
    assert_eq!(c.source.idle_timeout, secs(75));
    assert_eq!(c.source.max_message_size, 1 << 20);
    assert_eq!(
        c.source.reconnect,
        ReconnectConfig {
            initial: secs(1),
            max: secs(60)
        }
    );
    assert_eq!(c.outbox.path, Path::new("./badger-relay-data"));
    assert_eq!(c.outbox.dedupe_window, secs(86_400));
    assert_eq!(
        c.outbox.retry,
        RetryPolicy {
            initial: secs(1),
            max: secs(300),
            max_age: secs(86_400),
            max_attempts: None
        }
    );
    let server = c.server.as_ref().unwrap();
    assert_eq!(server.listen, "127.0.0.1:9750".parse().unwrap());
    assert_eq!(
        server.ingest_secret.as_ref().unwrap().expose(),
        INGEST_SECRET
    );

    let names: Vec<_> = c.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["team-slack", "ops-discord", "workflow"]);
    let [slack, discord, workflow] = &c.targets[..] else {
        panic!("three targets")
    };
    assert_eq!(slack.url.expose().as_str(), SLACK_URL);
    assert!(matches!(slack.kind, TargetKind::Slack(_)));
    assert_eq!(discord.url.expose().as_str(), DISCORD_URL);
    let TargetKind::Discord(o) = &discord.kind else {
        panic!("discord")
    };
    assert_eq!(o.username.as_deref(), Some("Tweet alerts"));
    assert_eq!(
        workflow.url.expose().as_str(),
        "https://example.com/hooks/tweets"
    );
    assert_eq!(workflow.timeout, secs(10));
    let TargetKind::Http(o) = &workflow.kind else {
        panic!("http")
    };
    assert_eq!(o.headers.len(), 1);
    assert_eq!(o.headers[0].0, "Authorization");
    assert_eq!(o.headers[0].1.expose(), format!("Bearer {WORKFLOW_TOKEN}"));
    assert_eq!(
        o.signing_key,
        Some(SigningKey(SIGNING_SECRET.as_bytes().to_vec()))
    );

    let [leaders, launches] = &c.routes[..] else {
        panic!("two routes")
    };
    assert_eq!(leaders.name, "tech-leaders");
    assert_eq!(leaders.monitors, ["Tech Leaders"]);
    assert_eq!(leaders.targets, [0, 2]);
    assert!(!leaders.stop);
    assert_eq!(launches.name, "launches");
    assert_eq!(launches.authors, ["elonmusk", "@sama"]);
    assert!(launches.text.as_ref().unwrap().is_match("We LAUNCH today"));
    assert_eq!(launches.targets, [1]);
    assert!(launches.stop);
}

#[test]
fn the_summary_shows_everything_but_secrets() {
    let summary = parse(CONTRACT_EXAMPLE).summary();
    assert_no_secret(&summary);
    let expected = "\
config: relay.toml
source: wss://scrapebadger.com/v1/twitter/stream?api_key=***
  idle_timeout 75s, max_message_size 1MiB, reconnect 1s..1m
outbox: ./badger-relay-data
  dedupe_window 24h, retry 1s..5m, max_age 24h
server: 127.0.0.1:9750, POST /ingest enabled (ingest_secret=***)
targets: 3
  team-slack: slack https://hooks.slack.com/services/***
    concurrency 1, rate_limit 1/s, timeout 10s, dedupe tweet, retry 1s..5m, max_age 24h
  ops-discord: discord https://discord.com/api/***
    concurrency 1, rate_limit 5/2s, timeout 10s, dedupe tweet, retry 1s..5m, max_age 24h
    username \"Tweet alerts\"
  workflow: http https://example.com/hooks/***
    concurrency 4, rate_limit none, timeout 10s, dedupe event, retry 1s..5m, max_age 24h
    method POST, headers Authorization=***, signed (signing_secret=***)
routes: 2
  tech-leaders: monitors [\"Tech Leaders\"], events [\"tweet.detected\"] -> team-slack, workflow
  launches: authors [\"elonmusk\", \"@sama\"], text /(?i)launch|announce/, events [\"tweet.detected\"] -> ops-discord (stop)
";
    assert_eq!(summary, expected);
}

#[test]
fn the_summary_says_when_the_key_is_missing_and_there_is_no_server() {
    let summary = parse("[source]\nurl = \"ws://127.0.0.1:9000/stream?region=eu\"\n").summary();
    assert!(
        summary.contains("source: ws://127.0.0.1:9000/stream?region=***\n"),
        "{summary}"
    );
    assert!(
        summary.contains("  api_key: not set (required by run)\n"),
        "{summary}"
    );
    assert!(
        summary.contains("server: none (no [server] table)\n"),
        "{summary}"
    );
    assert!(
        summary.contains("routes: 0\n  (no routes: every event is dropped)\n"),
        "{summary}"
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let config = parse(CONTRACT_EXAMPLE);
    assert_no_secret(&format!("{config:?}"));
}

#[test]
fn the_shipped_example_config_parses() {
    let env = |name: &str| Some(format!("dummy-{}", name.to_lowercase()));
    let env_with_urls = |name: &str| match name {
        "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T/B/X".to_owned()),
        "DISCORD_WEBHOOK_URL" => Some("https://discord.com/api/webhooks/1/x".to_owned()),
        _ => env(name),
    };
    let text = include_str!("../../config.example.toml");
    let config = Config::parse(text, Path::new("config.example.toml"), &env_with_urls)
        .unwrap_or_else(|e| panic!("config.example.toml: {e}"));
    assert_eq!(config.targets.len(), 3);
    assert_eq!(config.routes.len(), 2);
    assert!(config.server.is_some());

    // The optional settings shown commented out (`# key = value`) must be valid too.
    let setting = regex::Regex::new(r"(?m)^# ([a-z_]+ = )").unwrap();
    let uncommented = setting.replace_all(text, "$1");
    assert!(uncommented.matches('\n').count() == text.matches('\n').count());
    assert_ne!(uncommented, text);
    let config = Config::parse(
        &uncommented,
        Path::new("config.example.toml"),
        &env_with_urls,
    )
    .unwrap_or_else(|e| panic!("config.example.toml, optional settings uncommented: {e}"));
    assert_eq!(config.outbox.retry.max_attempts, Some(20));
    let TargetKind::Discord(o) = &config.targets[1].kind else {
        panic!("discord")
    };
    assert!(o.thread_id.is_some() && o.avatar_url.is_some() && o.template.is_some());
}

// ---------------------------------------------------------------------------------
// Loading from disk

#[test]
fn load_reads_the_file_and_names_it_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let e = Config::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert_eq!(
        e.to_string(),
        format!("{}: cannot read the config file", missing.display())
    );
    assert!(std::error::Error::source(&e).is_some());

    let file = dir.path().join("relay.toml");
    std::fs::write(&file, "[outbox]\npath = \"/x\"\n[source]\nurl = 5\n").unwrap();
    let e = Config::load(&file).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:4:7: source.url: expected a string, found an integer",
            file.display()
        )
    );

    std::fs::write(&file, "[outbox]\npath = \"/x\"\n").unwrap();
    assert_eq!(Config::load(&file).unwrap().outbox.path, Path::new("/x"));
}

// ---------------------------------------------------------------------------------
// [outbox] backend = "nats"

fn nats_outbox(nats: &str) -> String {
    format!("[outbox]\nbackend = \"nats\"\n[outbox.nats]\n{nats}")
}

#[test]
fn the_nats_backend_takes_its_defaults() {
    let c = parse(&nats_outbox("urls = [\"nats://127.0.0.1:4222\"]\n"));
    assert_eq!(c.outbox.backend, super::OutboxBackend::Nats);
    let nats = c.outbox.nats.expect("[outbox.nats] is read");
    assert_eq!(nats.stream, "BADGER_RELAY");
    assert_eq!(nats.replicas, 1);
    assert_eq!(nats.ack_wait, secs(30));
    assert_eq!(nats.auth, super::NatsAuth::None);
    assert_eq!(nats.urls[0].redacted(), "nats://127.0.0.1:4222");
}

#[test]
fn the_nats_backend_reads_every_option_and_keeps_its_secrets() {
    let c = parse(&format!(
        "{}{}",
        nats_outbox(
            "urls = [\"nats://relay:${WORKFLOW_TOKEN}@n1:4222\", \"tls://n2:4222\", \"n3:4222\"]\n\
             stream = \"RELAY_prod-1\"\nreplicas = 3\nack_wait = \"1m\"\n\
             user = \"relay\"\npassword = \"${WORKFLOW_TOKEN}\"\n"
        ),
        slack_target("")
    ));
    let nats = c.outbox.nats.clone().unwrap();
    assert_eq!(nats.stream, "RELAY_prod-1");
    assert_eq!(nats.replicas, 3);
    assert_eq!(nats.ack_wait, secs(60));
    let urls: Vec<String> = nats.urls.iter().map(|u| u.redacted()).collect();
    assert_eq!(
        urls,
        ["nats://***@n1:4222", "tls://n2:4222", "nats://n3:4222"]
    );
    match &nats.auth {
        super::NatsAuth::UserPassword { user, password } => {
            assert_eq!(user, "relay");
            assert_eq!(password.expose(), WORKFLOW_TOKEN);
        }
        other => panic!("{other:?}"),
    }
    let summary = c.summary();
    assert!(summary.contains("stream RELAY_prod-1"), "{summary}");
    assert!(summary.contains("password=***"), "{summary}");
    assert_no_secret(&summary);
    assert_no_secret(&format!("{:?}", c.outbox));

    let token = parse(&nats_outbox(
        "urls = [\"nats://n1\"]\ntoken = \"${WORKFLOW_TOKEN}\"\n",
    ));
    assert!(
        matches!(token.outbox.nats.unwrap().auth, super::NatsAuth::Token(t) if t.expose() == WORKFLOW_TOKEN)
    );
    let creds = parse(&nats_outbox(
        "urls = [\"nats://n1\"]\ncredentials = \"/run/secrets/relay.creds\"\n",
    ));
    assert_eq!(
        creds.outbox.nats.unwrap().auth,
        super::NatsAuth::Credentials("/run/secrets/relay.creds".into())
    );
}

#[test]
fn nats_backend_errors() {
    assert_eq!(
        error("[outbox]\nbackend = \"nats\"\n"),
        "relay.toml:1:1: outbox.nats: backend = \"nats\" needs an [outbox.nats] table with `urls`"
    );
    assert!(
        error("[outbox.nats]\nurls = [\"nats://n1\"]\n")
            .contains("only read with backend = \"nats\""),
    );
    assert!(
        error(&nats_outbox("stream = \"X\"\n")).contains("outbox.nats.urls: missing required key")
    );
    assert!(error(&nats_outbox("urls = []\n")).contains("must name at least one server"));
    assert!(
        error(&nats_outbox("urls = [\"http://n1:4222\"]\n")).contains("expected a NATS server URL")
    );
    assert!(
        error(&nats_outbox("urls = [\"nats://n1\"]\nstream = \"A.B\"\n"))
            .contains("outbox.nats.stream: a stream name may use only")
    );
    assert!(
        error(&nats_outbox("urls = [\"nats://n1\"]\nreplicas = 7\n"))
            .contains("outbox.nats.replicas: must be a whole number from 1 to 5")
    );
    assert!(
        error(&nats_outbox("urls = [\"nats://n1\"]\ntoken = \"${WORKFLOW_TOKEN}\"\nuser = \"u\"\npassword = \"p\"\n"))
            .contains("give one way to authenticate")
    );
    assert!(
        error(&nats_outbox("urls = [\"nats://n1\"]\nuser = \"u\"\n"))
            .contains("`user` needs a `password`")
    );
    assert!(
        error(&nats_outbox("urls = [\"nats://n1\"]\nacks_wait = \"1m\"\n")).contains("unknown key")
    );
}

#[test]
fn ack_wait_must_be_twice_every_target_timeout() {
    let e = error(&format!(
        "{}{}",
        nats_outbox("urls = [\"nats://n1\"]\nack_wait = \"15s\"\n"),
        slack_target("timeout = \"10s\"\n")
    ));
    assert!(
        e.contains("outbox.nats.ack_wait: ack_wait (15s) must be at least twice"),
        "{e}"
    );
    assert!(e.contains("target `t` has timeout 10s"), "{e}");
    // The default 30 s against a 20 s timeout, located at the table.
    let e = error(&format!(
        "{}{}",
        nats_outbox("urls = [\"nats://n1\"]\n"),
        slack_target("timeout = \"20s\"\n")
    ));
    assert!(
        e.contains("ack_wait (30s)") && e.contains("raise ack_wait to 40s"),
        "{e}"
    );
    // Exactly twice is fine; sled ignores it.
    parse(&format!(
        "{}{}",
        nats_outbox("urls = [\"nats://n1\"]\nack_wait = \"20s\"\n"),
        slack_target("timeout = \"10s\"\n")
    ));
    parse(&slack_target("timeout = \"1m\"\n"));
}
