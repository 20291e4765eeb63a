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
const TELEGRAM_TOKEN: &str = "123456789:TGSECRET_AAHdqTcvCH1vGWJxfSeofS";
const TEAMS_URL: &str = "https://prod-1.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=TEAMSSIG_3f8a";
const SECRETS: &[&str] = &[
    "TGSECRET_AAHdqTcvCH1vGWJxfSeofS",
    "TEAMSSIG_3f8a",
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
        "TELEGRAM_BOT_TOKEN" => TELEGRAM_TOKEN,
        "TEAMS_WEBHOOK_URL" => TEAMS_URL,
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
fn a_plain_signing_secret_is_flagged_for_a_warning_in_check() {
    let c = parse(&http_target(
        "signing_secret = \"${WORKFLOW_SIGNING_SECRET}\"\n",
    ));
    let TargetKind::Http(o) = &c.targets[0].kind else {
        panic!("http")
    };
    assert!(o.plain_signing_secret);
    let summary = c.summary();
    assert_no_secret(&summary);
    assert!(
        summary.contains(
            "    warning: signing_secret does not start with `whsec_`, so its text is the HMAC key; \
             Standard Webhooks libraries read a secret string as base64 and will not verify these signatures."
        ),
        "{summary}"
    );

    let c = parse(&http_target("signing_secret = \"whsec_aGVsbG8=\"\n"));
    let TargetKind::Http(o) = &c.targets[0].kind else {
        panic!("http")
    };
    assert!(!o.plain_signing_secret);
    assert!(!c.summary().contains("warning"), "{}", c.summary());
    assert!(!parse(&http_target("")).summary().contains("warning"));
}

// ---------------------------------------------------------------------------------
// Slack and Discord options

fn discord_target(extra: &str) -> String {
    format!(
        "[targets.d]\ntype = \"discord\"\nurl = \"https://discord.com/api/webhooks/1/x\"\n{extra}"
    )
}

#[test]
fn slack_unfurling_is_off_unless_turned_on() {
    let TargetKind::Slack(o) = &parse(&slack_target("")).targets[0].kind else {
        panic!("slack")
    };
    assert!(!o.unfurl_links && !o.unfurl_media);
    let c = parse(&slack_target("unfurl_links = true\nunfurl_media = true\n"));
    let TargetKind::Slack(o) = &c.targets[0].kind else {
        panic!("slack")
    };
    assert!(o.unfurl_links && o.unfurl_media);
    assert!(
        c.summary().contains("unfurl_links, unfurl_media"),
        "{}",
        c.summary()
    );
    assert_eq!(
        error(&slack_target("unfurl_links = \"yes\"\n")),
        "relay.toml:4:16: targets.t.unfurl_links: expected true or false, found a string"
    );
}

#[test]
fn discord_usernames_discord_refuses_are_config_errors() {
    let cases = [
        (
            "username = \"\"",
            "Discord refuses an empty username (remove the key to use the webhook's own name)",
        ),
        (
            "username = \"   \"",
            "Discord refuses an empty username (remove the key to use the webhook's own name)",
        ),
        (
            "username = \"My Discord alerts\"",
            "Discord refuses a username containing \"discord\"",
        ),
        (
            "username = \"DISCORD\"",
            "Discord refuses a username containing \"discord\"",
        ),
        (
            "username = \"Clyde bot\"",
            "Discord refuses a username containing \"clyde\"",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(
            error(&discord_target(&format!("{line}\n"))),
            format!("relay.toml:4:12: targets.d.username: {message}"),
            "{line}"
        );
    }
    let long = "é".repeat(81);
    assert_eq!(
        error(&discord_target(&format!("username = \"{long}\"\n"))),
        "relay.toml:4:12: targets.d.username: Discord refuses a username longer than 80 characters (this one has 81)"
    );
    // 80 characters (not bytes) is fine, and surrounding spaces are Discord's to trim.
    let ok = "é".repeat(80);
    let c = parse(&discord_target(&format!("username = \" {ok} \"\n")));
    let TargetKind::Discord(o) = &c.targets[0].kind else {
        panic!("discord")
    };
    assert_eq!(o.username.as_deref(), Some(ok.as_str()));
}

#[test]
fn discord_thread_name_and_suppress_notifications() {
    let c = parse(&discord_target(
        "thread_name = \"@{author_username}: {tweet_text}\"\nsuppress_notifications = true\n",
    ));
    let TargetKind::Discord(o) = &c.targets[0].kind else {
        panic!("discord")
    };
    assert!(o.suppress_notifications);
    assert_eq!(
        o.thread_name.as_ref().unwrap().parts,
        [
            TemplatePart::Literal("@".into()),
            TemplatePart::Field("author_username".into()),
            TemplatePart::Literal(": ".into()),
            TemplatePart::Field("tweet_text".into()),
        ]
    );
    let summary = c.summary();
    assert!(
        summary.contains("thread_name (a new forum post per tweet), suppress_notifications"),
        "{summary}"
    );
    let TargetKind::Discord(o) = &parse(&discord_target("")).targets[0].kind else {
        panic!("discord")
    };
    assert!(o.thread_name.is_none() && !o.suppress_notifications);

    assert_eq!(
        error(&discord_target(
            "thread_id = \"1\"\nthread_name = \"Tweets\"\n"
        )),
        "relay.toml:5:1: targets.d.thread_name: cannot be set together with thread_id: thread_id posts into an existing thread, thread_name opens a new forum post for each tweet"
    );
    assert!(
        error(&discord_target("thread_name = \"{autor}\"\n"))
            .starts_with("relay.toml:4:15: targets.d.thread_name: unknown placeholder `{autor}`")
    );
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

fn telegram_target(extra: &str) -> String {
    format!("[targets.t]\ntype = \"telegram\"\nbot_token = \"${{TELEGRAM_BOT_TOKEN}}\"\n{extra}")
}

#[test]
fn a_telegram_target_builds_its_url_from_the_token_and_never_shows_it() {
    let c = parse(&telegram_target("chat_id = -1001234567890\n"));
    let t = &c.targets[0];
    assert_eq!(
        t.url.expose().as_str(),
        format!("https://api.telegram.org/bot{TELEGRAM_TOKEN}/sendMessage")
    );
    assert_eq!(t.url.redacted(), "https://api.telegram.org/bot***");
    let TargetKind::Telegram(o) = &t.kind else {
        panic!("{:?}", t.kind)
    };
    assert_eq!(o.chat_id, ChatId::Id(-1_001_234_567_890));
    assert_eq!((o.message_thread_id, o.disable_notification), (None, false));
    // A chat target's defaults: one at a time, 1/s, each tweet once.
    assert_eq!(t.concurrency, 1);
    assert_eq!(
        t.rate_limit,
        Some(RateLimit {
            count: 1,
            per: secs(1)
        })
    );
    assert_eq!(t.dedupe, DedupeMode::Tweet);
    assert_no_secret(&format!("{t:?}"));
    assert_no_secret(&c.summary());

    let c = parse(&telegram_target(
        "chat_id = \"@my_channel\"\nmessage_thread_id = 7\ndisable_notification = true\napi_url = \"http://127.0.0.1:8081/\"\n",
    ));
    let t = &c.targets[0];
    assert_eq!(
        t.url.expose().as_str(),
        format!("http://127.0.0.1:8081/bot{TELEGRAM_TOKEN}/sendMessage")
    );
    assert_eq!(t.url.redacted(), "http://127.0.0.1:8081/bot***");
    let TargetKind::Telegram(o) = &t.kind else {
        panic!()
    };
    assert_eq!(o.chat_id, ChatId::Username("@my_channel".into()));
    assert_eq!(
        (o.message_thread_id, o.disable_notification),
        (Some(7), true)
    );
    // A numeric id written as a string is still a numeric id.
    let c = parse(&telegram_target("chat_id = \"-42\"\n"));
    let TargetKind::Telegram(o) = &c.targets[0].kind else {
        panic!()
    };
    assert_eq!(o.chat_id, ChatId::Id(-42));
}

#[test]
fn telegram_mistakes_are_config_errors_without_the_token() {
    assert_eq!(
        error(&telegram_target("")),
        "relay.toml:1:1: targets.t.chat_id: missing required key (the chat to post to: a numeric id (-100… for channels and supergroups) or \"@channelname\")"
    );
    assert_eq!(
        error(&telegram_target("chat_id = \"my channel\"\n")),
        "relay.toml:4:11: targets.t.chat_id: must be a numeric chat id (like -1001234567890) or a public channel's \"@username\""
    );
    assert_eq!(
        error(&telegram_target(
            "chat_id = 1\nurl = \"https://api.telegram.org/x\"\n"
        )),
        "relay.toml:5:1: targets.t.url: a telegram target has no url: set `bot_token` and `chat_id` (and `api_url` for a Bot API server of your own)"
    );
    assert_eq!(
        error(&telegram_target("chat_id = 1\nmessage_thread_id = 0\n")),
        "relay.toml:5:21: targets.t.message_thread_id: must be a positive topic id"
    );
    // A token missing its secret half (or pasted with the "bot" prefix) is named, not shown.
    for bad in [
        "123456789",
        "bot123456789:TGSECRET_AAHdqTcvCH1vGWJxfSeofS",
        "123:short",
    ] {
        let text =
            format!("[targets.t]\ntype = \"telegram\"\nbot_token = \"{bad}\"\nchat_id = 1\n");
        let message = error(&text);
        assert!(message.contains("is not a Telegram bot token"), "{message}");
        assert!(!message.contains(bad), "{message}");
    }
    assert_eq!(
        error("[targets.t]\ntype = \"telegram\"\nchat_id = 1\n"),
        "relay.toml:1:1: targets.t.bot_token: missing required key (the token @BotFather gave the bot)"
    );
    assert_eq!(
        error(&telegram_target("chat_id = 1\nusername = \"x\"\n")),
        "relay.toml:5:1: targets.t.username: not valid for a telegram target (only slack and discord targets take it)"
    );
}

#[test]
fn a_teams_target_defaults_to_4_per_second_and_hides_its_signature() {
    let c = parse("[targets.t]\ntype = \"teams\"\nurl = \"${TEAMS_WEBHOOK_URL}\"\n");
    let t = &c.targets[0];
    assert!(matches!(t.kind, TargetKind::Teams(_)));
    assert_eq!(
        t.rate_limit,
        Some(RateLimit {
            count: 4,
            per: secs(1)
        })
    );
    assert_eq!((t.concurrency, t.dedupe), (1, DedupeMode::Tweet));
    assert_eq!(
        t.url.redacted(),
        "https://prod-1.westus.logic.azure.com/workflows/***"
    );
    assert_no_secret(&c.summary());
    assert_eq!(
        error("[targets.t]\ntype = \"teams\"\nurl = \"https://x.example/\"\nmethod = \"PUT\"\n"),
        "relay.toml:4:1: targets.t.method: not valid for a teams target (only http targets take it)"
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
        "relay.toml:4:1: targets.t.template: not valid for an http target (only slack, discord, telegram and teams targets take it)"
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
        "relay.toml:2:8: targets.t.type: unknown target type: expected `slack`, `discord`, `telegram`, `teams`, `http` or `nats` (did you mean `slack`?)"
    );
    assert_eq!(
        error("[targets.t]\nurl = \"https://x.example/\"\n"),
        "relay.toml:1:1: targets.t.type: missing required key (`slack`, `discord`, `telegram`, `teams`, `http` or `nats`)"
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
  min_free 64MiB, max_size none
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
    warning: signing_secret does not start with `whsec_`, so its text is the HMAC key; \
Standard Webhooks libraries read a secret string as base64 and will not verify these signatures. \
Use a `whsec_` secret for them, or verify with plain HMAC (see the README, \"Verifying signatures\")
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
    // The network variables (proxies, SSL_CERT_FILE) are left unset: they name files and
    // proxies, not strings the file interpolates.
    let env = |name: &str| {
        let network = name.to_ascii_uppercase().ends_with("_PROXY") || name == "SSL_CERT_FILE";
        (!network).then(|| format!("dummy-{}", name.to_lowercase()))
    };
    let env_with_urls = |name: &str| match name {
        "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T/B/X".to_owned()),
        "DISCORD_WEBHOOK_URL" => Some("https://discord.com/api/webhooks/1/x".to_owned()),
        "TELEGRAM_BOT_TOKEN" => Some(TELEGRAM_TOKEN.to_owned()),
        "TEAMS_WEBHOOK_URL" => Some(TEAMS_URL.to_owned()),
        _ => env(name),
    };
    let text = include_str!("../../config.example.toml");
    let config = Config::parse(text, Path::new("config.example.toml"), &env_with_urls)
        .unwrap_or_else(|e| panic!("config.example.toml: {e}"));
    assert_eq!(config.targets.len(), 5);
    assert!(matches!(config.targets[3].kind, TargetKind::Telegram(_)));
    assert!(matches!(config.targets[4].kind, TargetKind::Teams(_)));
    assert_eq!(config.routes.len(), 2);
    assert!(config.server.is_some());

    // The optional settings shown commented out (`# key = value`) must be valid too.
    let setting = regex::Regex::new(r"(?m)^# ([a-z_]+ = )").unwrap();
    let uncommented = setting.replace_all(text, "$1");
    assert!(uncommented.matches('\n').count() == text.matches('\n').count());
    assert_ne!(uncommented, text);
    // The example's CA bundle path, pointed at a real CA made here.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("internal-ca.pem");
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
    assert!(uncommented.contains("\"/etc/ssl/internal-ca.pem\""));
    let uncommented = uncommented.replace("/etc/ssl/internal-ca.pem", ca.to_str().unwrap());
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
    assert!(config.source.proxy.is_some());
    assert_eq!(config.tls.len(), 1);
    assert_eq!(config.targets[2].tls.len(), 2);
    assert!(o.suppress_notifications);
    let TargetKind::Slack(o) = &config.targets[0].kind else {
        panic!("slack")
    };
    assert!(o.unfurl_links && o.unfurl_media);
    let TargetKind::Telegram(o) = &config.targets[3].kind else {
        panic!("telegram")
    };
    assert!(o.message_thread_id.is_some() && o.disable_notification && o.template.is_some());
    assert_eq!(config.targets[3].url.expose().host_str(), Some("127.0.0.1"));
    let TargetKind::Teams(o) = &config.targets[4].kind else {
        panic!("teams")
    };
    assert!(o.template.is_some());
    assert_eq!(config.routes[1].fields.len(), 3, "the where example");
    assert!(config.routes[1].unless.is_some(), "the unless example");
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
// Secrets from files

#[test]
fn file_references_give_the_content_and_name_path_and_key_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api_key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let c = parse(&format!(
        "[source]\napi_key = \"${{file:{}}}\"\n",
        key_file.display()
    ));
    assert_eq!(c.source.api_key.as_ref().unwrap().expose(), API_KEY);

    let missing = dir.path().join("slack_url");
    let e = error(&format!(
        "[targets.s]\ntype = \"slack\"\nurl = \"${{file:{}}}\"\n",
        missing.display()
    ));
    assert_eq!(
        e,
        format!(
            "relay.toml:3:7: targets.s.url: cannot read the file `{}` of `${{file:...}}`: no such file",
            missing.display()
        )
    );

    // A file with a second newline still holds a line break: refused, content not shown.
    std::fs::write(&key_file, format!("{API_KEY}\n\n")).unwrap();
    let e = error(&format!(
        "[source]\napi_key = \"${{file:{}}}\"\n",
        key_file.display()
    ));
    assert!(e.contains("source.api_key: contains a line break"), "{e}");
}

#[test]
fn the_outbox_guards_default_to_64mib_free_and_no_cap_and_take_sizes() {
    let c = parse("");
    assert_eq!((c.outbox.min_free, c.outbox.max_size), (64 << 20, None));
    let c = parse("[outbox]\nmin_free = \"16MiB\"\nmax_size = \"2GiB\"\n");
    assert_eq!(
        (c.outbox.min_free, c.outbox.max_size),
        (16 << 20, Some(2 << 30))
    );
    for off in ["0", "\"0\"", "\"0B\"", "\"0MiB\""] {
        let c = parse(&format!("[outbox]\nmin_free = {off}\n"));
        assert_eq!(c.outbox.min_free, 0, "{off}");
    }
    let e = error("[outbox]\nmax_size = \"lots\"\n");
    assert!(
        e.contains("outbox.max_size") && e.contains("not a size"),
        "{e}"
    );
    let e = error("[outbox]\nmax_size = 0\n");
    assert!(e.contains("outbox.max_size"), "{e}");
}

// ---------------------------------------------------------------------------------
// Routes: `where` and `unless`

/// A route with `line` (TOML) after its targets, under one slack target `t`: the line
/// is line 6 of the file.
fn route_with(line: &str) -> String {
    format!(
        "{}[[routes]]\ntargets = [\"t\"]\n{line}\n",
        slack_target("")
    )
}

#[test]
fn where_reads_paths_and_each_kind_of_value() {
    let c = parse(&route_with(
        r#"where = { "tweet_data.lang" = ["en", "${LANG:-de}"], "tweet_data.is_retweet" = false, "tweet_data.author.followers_count" = { gte = 1000, lt = 1e6 }, latency_ms = 150, score = [0.5, { lte = -2 }] }"#,
    ));
    let r = &c.routes[0];
    let paths: Vec<String> = r.fields.iter().map(|f| f.path.join("/")).collect();
    assert_eq!(
        paths,
        [
            "tweet_data/lang",
            "tweet_data/is_retweet",
            "tweet_data/author/followers_count",
            "latency_ms",
            "score"
        ],
        "file order, split at the dots"
    );
    assert_eq!(
        r.fields[0].any_of,
        [
            Expected::Pattern("en".into()),
            Expected::Pattern("de".into())
        ],
        "strings are interpolated"
    );
    assert_eq!(r.fields[1].any_of, [Expected::Bool(false)]);
    assert_eq!(
        r.fields[2].any_of,
        [Expected::Number(vec![
            (Comparison::Gte, Number::Int(1000)),
            (Comparison::Lt, Number::Float(1e6))
        ])]
    );
    assert_eq!(
        r.fields[3].any_of,
        [Expected::Number(vec![(Comparison::Eq, Number::Int(150))])]
    );
    assert_eq!(
        r.fields[4].any_of,
        [
            Expected::Number(vec![(Comparison::Eq, Number::Float(0.5))]),
            Expected::Number(vec![(Comparison::Lte, Number::Int(-2))])
        ]
    );
    assert!(r.unless.is_none());
    assert!(
        c.summary().contains(
            "where tweet_data.lang = \"en\" or = \"de\", where tweet_data.is_retweet = false, where tweet_data.author.followers_count >= 1000 and < 1000000.0, where latency_ms = 150, where score = 0.5 or <= -2, events [\"tweet.detected\"] -> t"
        ),
        "{}",
        c.summary()
    );
}

#[test]
fn unless_reads_the_route_condition_keys_and_events_has_no_default() {
    let c = parse(&route_with(
        r#"unless = { monitors = ["Spam*"], authors = ["*bot"], text = "(?i)giveaway", where = { "tweet_data.is_reply" = true } }"#,
    ));
    let u = c.routes[0].unless.as_ref().expect("an unless");
    assert_eq!(u.monitors, ["Spam*"]);
    assert_eq!(u.authors, ["*bot"]);
    assert_eq!(u.text.as_ref().map(|r| r.as_str()), Some("(?i)giveaway"));
    assert!(
        u.events.is_empty(),
        "no default: it must not exclude every tweet"
    );
    assert_eq!(u.fields[0].path, ["tweet_data", "is_reply"]);
    assert_eq!(
        c.routes[0].events,
        ["tweet.detected"],
        "the route keeps its own"
    );
    assert!(
        c.summary().contains(
            "unless any of (monitors [\"Spam*\"]; authors [\"*bot\"]; text /(?i)giveaway/; where tweet_data.is_reply = true) -> t"
        ),
        "{}",
        c.summary()
    );
    let c = parse(&route_with(r#"unless = { events = ["monitor.paused"] }"#));
    assert_eq!(
        c.routes[0].unless.as_ref().unwrap().events,
        ["monitor.paused"]
    );
}

#[test]
fn where_errors() {
    let cases = [
        (
            r#"where = { "tweet_data.followers" = { gtx = 1 } }"#,
            "relay.toml:6:38: routes[0].where.\"tweet_data.followers\".gtx: unknown operator: expected `gt`, `gte`, `lt` or `lte` (with a number) (did you mean `gt`?)",
        ),
        (
            r#"where = { tweet_data.lang = "en" }"#,
            "relay.toml:6:22: routes[0].where.tweet_data.lang: unknown operator: expected `gt`, `gte`, `lt` or `lte` (with a number); to name a nested field, quote the whole path, like \"tweet_data.lang\" = \"en\"",
        ),
        (
            r#"where = { "tweet_data..lang" = "en" }"#,
            "relay.toml:6:11: routes[0].where.\"tweet_data..lang\": a field path must not have an empty part (`..`): write object keys separated by dots, like \"tweet_data.author.followers_count\"",
        ),
        (
            r#"where = { ".lang" = "en" }"#,
            "relay.toml:6:11: routes[0].where.\".lang\": a field path must not start or end with a dot: write object keys separated by dots, like \"tweet_data.author.followers_count\"",
        ),
        (
            r#"where = { "tweet_data." = "en" }"#,
            "relay.toml:6:11: routes[0].where.\"tweet_data.\": a field path must not start or end with a dot: write object keys separated by dots, like \"tweet_data.author.followers_count\"",
        ),
        (
            r#"where = { "" = "en" }"#,
            "relay.toml:6:11: routes[0].where.\"\": an empty field path: write object keys separated by dots, like \"tweet_data.lang\"",
        ),
        (
            r#"where = { count = { gte = "1000" } }"#,
            "relay.toml:6:27: routes[0].where.count.gte: `gte` compares numbers: expected a number, found a string (write it without quotes)",
        ),
        (
            r#"where = { count = { gt = "10*" } }"#,
            "relay.toml:6:26: routes[0].where.count.gt: `gt` compares numbers, and `*` wildcards apply to strings only: expected a number, found a string",
        ),
        (
            r#"where = { count = { lt = true } }"#,
            "relay.toml:6:26: routes[0].where.count.lt: expected a number (`lt` compares numbers), found a boolean",
        ),
        (
            r#"where = { count = { lt = nan } }"#,
            "relay.toml:6:26: routes[0].where.count.lt: must be a finite number (not nan or inf)",
        ),
        (
            r#"where = {}"#,
            "relay.toml:6:9: routes[0].where: an empty table: name a field and its value, like { \"tweet_data.lang\" = \"en\" } (or remove the key)",
        ),
        (
            r#"where = { count = {} }"#,
            "relay.toml:6:19: routes[0].where.count: an empty table: write an operator and a number, like { gte = 1000 }",
        ),
        (
            r#"where = { lang = [] }"#,
            "relay.toml:6:18: routes[0].where.lang: an empty list matches no event: list the values to accept",
        ),
        (
            r#"where = { lang = [["en"]] }"#,
            "relay.toml:6:19: routes[0].where.lang[0]: a list of values cannot hold another list: write the values in one list",
        ),
        (
            r#"where = { at = 2026-03-13 }"#,
            "relay.toml:6:16: routes[0].where.at: expected a string, a number, true or false, a table like { gte = 1000 }, or a list of them, found a date-time",
        ),
        (
            r#"where = "lang""#,
            "relay.toml:6:9: routes[0].where: expected a table, found a string",
        ),
        (
            r#"where = { lang = "${NOPE}" }"#,
            "relay.toml:6:18: routes[0].where.lang: environment variable `NOPE` is not set (write `${NOPE:-default}` to give a default)",
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(error(&route_with(line)), expected, "{line}");
    }
}

#[test]
fn unless_errors() {
    let cases = [
        (
            r#"unless = {}"#,
            "relay.toml:6:10: routes[0].unless: an empty table excludes nothing: name what to exclude, like { authors = [\"*bot\"] } (or remove the key)",
        ),
        (
            r#"unless = { author = ["x"] }"#,
            "relay.toml:6:12: routes[0].unless.author: unknown key (did you mean `authors`?)",
        ),
        (
            r#"unless = { targets = ["t"] }"#,
            "relay.toml:6:12: routes[0].unless.targets: not a condition: `unless` takes `monitors`, `authors`, `text`, `events` and `where`",
        ),
        (
            r#"unless = { events = [] }"#,
            "relay.toml:6:21: routes[0].unless.events: an empty list excludes nothing (remove the key)",
        ),
        (
            r#"unless = { authors = [""] }"#,
            "relay.toml:6:23: routes[0].unless.authors[0]: must not be empty",
        ),
        (
            r#"unless = { text = "giveaway(" }"#,
            "relay.toml:6:19: routes[0].unless.text: invalid regex: regex parse error:\n    giveaway(\n            ^\nerror: unclosed group",
        ),
        (
            r#"unless = { where = { n = { gte = "x" } } }"#,
            "relay.toml:6:34: routes[0].unless.where.n.gte: `gte` compares numbers: expected a number, found a string (write it without quotes)",
        ),
        (
            r#"unless = ["x"]"#,
            "relay.toml:6:10: routes[0].unless: expected a table, found an array",
        ),
        (
            r#"wher = { lang = "en" }"#,
            "relay.toml:6:1: routes[0].wher: unknown key (did you mean `where`?)",
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(error(&route_with(line)), expected, "{line}");
    }
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

// ---------------------------------------------------------------------------------
// Bursts and stale tweets

#[test]
fn digest_and_stale_are_read_for_chat_targets() {
    let c = parse(&slack_target(
        "digest = { max = 10 }\nstale_after = \"15m\"\nstale = \"digest\"\n",
    ));
    let burst = c.targets[0].burst;
    assert_eq!(burst.digest, Some(10));
    assert_eq!(
        burst.stale,
        Some(Stale {
            after: Duration::from_secs(900),
            action: StaleAction::Digest
        })
    );
    let c = parse(&slack_target("stale_after = \"1h\"\nstale = \"send\"\n"));
    assert_eq!(c.targets[0].burst, Burst::default(), "send is off");
    assert!(!c.targets[0].burst.folds());
    let c = parse(&format!(
        "{}\nstale_after = \"1h\"\nstale = \"drop\"\n",
        slack_target("").replace("slack", "discord")
    ));
    assert_eq!(c.targets[0].burst.stale.unwrap().action, StaleAction::Drop);
    let summary = super::summary::render(&c);
    assert!(
        summary.contains("tweets older than 1h dropped"),
        "{summary}"
    );
}

#[test]
fn digest_and_stale_mistakes_are_config_errors() {
    assert_eq!(
        error(&http_target("digest = { max = 5 }\n")),
        "relay.toml:4:1: targets.t.digest: not valid for an http target (only slack, discord, telegram and teams targets take it)"
    );
    assert_eq!(
        error(&slack_target("digest = { max = 1 }\n")),
        "relay.toml:4:18: targets.t.digest.max: must be between 2 and 25"
    );
    assert_eq!(
        error(&slack_target("digest = { most = 5 }\n")),
        "relay.toml:4:12: targets.t.digest.most: unknown key"
    );
    assert_eq!(
        error(&slack_target("stale = \"digest\"\n")),
        "relay.toml:4:1: targets.t.stale: needs `stale_after` too: the age past which a tweet counts as stale (like \"15m\")"
    );
    assert_eq!(
        error(&slack_target("stale_after = \"15m\"\nstale = \"dorp\"\n")),
        "relay.toml:5:9: targets.t.stale: unknown stale action: expected `digest`, `drop` or `send` (did you mean `drop`?)"
    );
    assert_eq!(
        error(&slack_target("digest = { max = 5 }\nconcurrency = 2\n")),
        "relay.toml:5:15: targets.t.concurrency: must be 1 on a target with `digest` or `stale`: such a target sends one message at a time and folds what waits behind it"
    );
}

fn nats_target(extra: &str) -> String {
    format!("[targets.t]\ntype = \"nats\"\nsubject = \"tweets.detected\"\n{extra}")
}

#[test]
fn a_nats_target_publishes_to_its_own_servers_with_its_own_secrets() {
    let c = parse(&nats_target(
        "urls = [\"nats://bus:4222\", \"tls://bus-2:4222\"]\ntoken = \"${WORKFLOW_TOKEN}\"\n",
    ));
    let t = &c.targets[0];
    let TargetKind::Nats(o) = &t.kind else {
        panic!("{:?}", t.kind)
    };
    assert_eq!(o.subject, "tweets.detected");
    assert_eq!(o.urls.len(), 2);
    assert_eq!(o.auth, NatsAuth::Token(Secret::new(WORKFLOW_TOKEN)));
    assert_eq!(t.url.redacted(), "nats://bus:4222/tweets.detected");
    // The contract's defaults for nats targets: 4 in flight, no rate limit, each event once.
    assert_eq!(
        (t.concurrency, t.rate_limit, t.dedupe),
        (4, None, DedupeMode::Event)
    );
    assert_no_secret(&format!("{t:?}"));
    assert_no_secret(&c.summary());
}

#[test]
fn a_nats_target_without_urls_uses_the_outbox_servers_and_credentials() {
    let c = parse(&format!(
        "{}{}",
        nats_outbox(
            "urls = [\"nats://n1:4222\"]\nuser = \"relay\"\npassword = \"${WORKFLOW_TOKEN}\"\n"
        ),
        nats_target("")
    ));
    let TargetKind::Nats(o) = &c.targets[0].kind else {
        panic!()
    };
    assert_eq!(o.urls, c.outbox.nats.as_ref().unwrap().urls);
    assert_eq!(o.auth, c.outbox.nats.as_ref().unwrap().auth);
}

#[test]
fn nats_target_mistakes_are_config_errors() {
    assert_eq!(
        error(&nats_target("")),
        "relay.toml:3:1: targets.t.subject: a nats target needs `urls` = [\"nats://host:4222\"] (or [outbox] backend = \"nats\", whose servers it then uses)"
    );
    for bad in ["tweets.*", "tweets.>", "two words", "trailing.", ""] {
        let text = format!(
            "[targets.t]\ntype = \"nats\"\nsubject = \"{bad}\"\nurls = [\"nats://n:4222\"]\n"
        );
        assert!(
            error(&text).contains("must be a NATS subject to publish to"),
            "{bad:?}: {}",
            error(&text)
        );
    }
    assert_eq!(
        error(&nats_target("url = \"nats://n:4222\"\n")),
        "relay.toml:4:1: targets.t.url: a nats target has no url: set `subject`, and `urls` = [\"nats://host:4222\"] unless it uses [outbox.nats]'s servers"
    );
    assert_eq!(
        error(&format!(
            "{}{}",
            nats_outbox("urls = [\"nats://n1:4222\"]\n"),
            nats_target("token = \"x\"\n")
        )),
        "relay.toml:8:1: targets.t.token: credentials of its own need `urls` of its own: without `urls` a nats target uses [outbox.nats]'s servers and credentials"
    );
    assert!(
        error(&nats_target("urls = [\"http://n:4222\"]\n")).contains("expected a NATS server URL")
    );
    assert!(
        error(&nats_target(
            "urls = [\"nats://n:4222\"]\ndigest = { max = 5 }\n"
        ))
        .contains("not valid for a nats target")
    );
}
