//! Byte-level entry points for the fuzz targets (`fuzz/`) and their corpus replay
//! (`tests/fuzz_corpus.rs`); not part of the program's API.
//!
//! Each function takes any bytes, runs the real parsers and validators on them and
//! returns normally. A panic is a bug: in the parser, or in a property the entry point
//! checks (asserted here, so that libFuzzer and `cargo test` check the same thing).
//! The input layouts are plain text where they can be, so that seeds are real examples:
//!
//! | entry point     | input                                                           |
//! |-----------------|-----------------------------------------------------------------|
//! | `event_frame`   | a WebSocket text frame                                          |
//! | `ingest`        | one mode byte, then `secret \n signature header value \n body`  |
//! | `config`        | `NAME=value` lines (the environment), a NUL byte, the TOML      |
//! | `retry_after`   | a `Retry-After` header value, or a Discord 429 body             |
//! | `record`        | a stored outbox value                                           |
//! | `routing`       | an event, routed by a fixed config and rendered for its targets |
//! | `chat`          | a template line, then an event, rendered for every platform     |

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::config::{Config, ConfigError, TargetKind};
use crate::event::Event;
use crate::outbox::sled::record::{Record, SharedBody};
use crate::retry::parse_retry_after;
use crate::routes::Router;
use crate::secret::Secret;
use crate::target::{Target, discord, slack};

/// One entry point: any bytes in, a panic only for a bug.
pub type EntryPoint = fn(&[u8]);

/// Every entry point by the name of its fuzz target (and of its corpus directory).
pub const TARGETS: &[(&str, EntryPoint)] = &[
    ("event_frame", event_frame),
    ("ingest", ingest),
    ("config", config),
    ("retry_after", retry_after),
    ("record", record),
    ("routing", routing),
    ("chat", chat),
];

/// The most a parsed `Retry-After` or `retry_after` may ask to wait.
const ONE_DAY: Duration = Duration::from_secs(24 * 3600);

/// A stream frame: `Event::parse`, the routed fields and both dedupe keys.
pub fn event_frame(data: &[u8]) {
    let Ok(event) = Event::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert_eq!(event.raw().as_ref(), data, "an event keeps its bytes");
    let again = Event::parse(Bytes::copy_from_slice(data)).expect("parsing is deterministic");
    assert_eq!(again.fields(), event.fields());
    check_keys(&event);
}

fn check_keys(event: &Event) {
    let _ = event.event_type();
    let (tweet, key) = (event.tweet_key(), event.event_key());
    match &event.fields().tweet_id {
        Some(id) => {
            assert_eq!(tweet, format!("t:{id}"));
            assert!(key.starts_with("e:") && key.ends_with(&format!(":{id}")));
        }
        None => {
            assert!(tweet.starts_with("h:") && tweet.len() == 18, "{tweet}");
            assert_eq!(tweet, key, "an event without a tweet id has one key");
        }
    }
}

/// An `/ingest` request. The mode byte: bit 0 picks the header name (`X-Signature-256` or
/// the older `X-ScrapeBadger-Signature`), bit 1 sends both (the second with the header
/// value from the input), bits 2-3 the signature: 0 the right one, 1 made with another
/// key, 2 the input's header value, 3 the right one with its hex in upper case. The
/// real header selection, `verify` and normalisation run; a body is accepted if and only
/// if the header read carries HMAC-SHA256(secret, body).
pub fn ingest(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let secret = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let given = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();

    let right = sign(secret.as_bytes(), body);
    let sent: Vec<u8> = match (mode >> 2) & 3 {
        0 => right.clone().into_bytes(),
        1 => sign(format!("{secret}-other").as_bytes(), body).into_bytes(),
        2 => given.to_vec(),
        _ => format!("sha256={}", right["sha256=".len()..].to_uppercase()).into_bytes(),
    };
    let names = ["x-signature-256", "x-scrapebadger-signature"];
    let first = names[usize::from(mode & 1)];
    let mut headers = HeaderMap::new();
    let Ok(value) = HeaderValue::from_bytes(&sent) else {
        return;
    };
    headers.insert(first, value);
    if mode & 2 != 0
        && let Ok(other) = HeaderValue::from_bytes(given)
    {
        headers.insert(names[1 - usize::from(mode & 1)], other);
    }

    let header = crate::server::signature(&headers);
    // X-Signature-256 wins when both are present.
    let expected_header = headers.get(names[0]).or_else(|| headers.get(names[1]));
    assert_eq!(header, expected_header.and_then(|v| v.to_str().ok()));
    let accepted = header.is_some_and(|h| crate::server::verify(&Secret::new(&secret), body, h));
    let genuine = header.is_some_and(|h| {
        h.trim()
            .strip_prefix("sha256=")
            .is_some_and(|hex| hex.eq_ignore_ascii_case(&right["sha256=".len()..]))
    });
    assert_eq!(
        accepted, genuine,
        "a signature verifies exactly when it is the body's HMAC under the secret"
    );
    if accepted {
        check_ingest_body(body);
    }
}

/// `sha256=<hex>` of HMAC-SHA256(key, body), as ScrapeBadger signs.
fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Normalisation: an event comes out, with the stream's field names, or an error.
fn check_ingest_body(body: &[u8]) {
    let Ok(event) = crate::server::normalize::to_event(Bytes::copy_from_slice(body)) else {
        assert!(
            Event::parse(Bytes::copy_from_slice(body)).is_err(),
            "a body the stream would take is taken"
        );
        return;
    };
    check_keys(&event);
    if event.raw().as_ref() != body {
        // Rewritten from the older shape: the stream's names, the tweet kept.
        let map: Map<String, Value> =
            serde_json::from_slice(event.raw()).expect("the rewrite is a JSON object");
        assert_eq!(map.get("event"), Some(&Value::from("tweet.detected")));
        assert!(map.get("tweet_data").is_some_and(Value::is_object));
        assert!(!map.contains_key("type") && !map.contains_key("tweet"));
        assert_eq!(event.event_type(), "tweet.detected");
    }
}

/// A config file and its environment: `Config::parse` with `${...}` expanded from the
/// input's variables only, then what `check` prints and the routes compiled.
pub fn config(data: &[u8]) {
    let (env_part, toml_part) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (&[][..], data),
    };
    let env_text = String::from_utf8_lossy(env_part);
    let vars: Vec<(&str, &str)> = env_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let env = |name: &str| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    };
    let text = String::from_utf8_lossy(toml_part);
    match Config::parse(&text, Path::new("fuzz.toml"), &env) {
        Ok(config) => {
            let _ = config.summary();
            let _ = format!("{config:?}");
            let router = Router::new(&config.routes, config.targets.len());
            for route in &config.routes {
                assert!(route.targets.iter().all(|&t| t < config.targets.len()));
            }
            let event = Event::parse(Bytes::from_static(SAMPLE_EVENT.as_bytes())).unwrap();
            check_routing(&router, &config, &event);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty());
            if let ConfigError::Invalid(d) = &e {
                let lines = text.split('\n').count();
                assert!(d.line >= 1 && d.line <= lines + 1, "{message}");
                assert!(d.column >= 1, "{message}");
            }
        }
    }
}

/// A `Retry-After` header value through `parse_retry_after` (as the header arrives, and
/// as text), and the same bytes as a Discord 429 body through `retry_after_from_body`:
/// never more than a day, and a number of seconds is read as that many.
pub fn retry_after(data: &[u8]) {
    let nows = [
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        UNIX_EPOCH + Duration::from_secs(1 << 40),
    ];
    let text = String::from_utf8_lossy(data);
    let header = HeaderValue::from_bytes(data)
        .ok()
        .and_then(|v| v.to_str().ok().map(str::to_owned));
    for now in nows {
        for value in [Some(text.as_ref()), header.as_deref()]
            .into_iter()
            .flatten()
        {
            if let Some(d) = parse_retry_after(value, now) {
                assert!(d <= ONE_DAY, "{value:?} gave {d:?}");
                if let Ok(secs) = value.trim().parse::<u32>() {
                    assert_eq!(d, Duration::from_secs(secs.into()).min(ONE_DAY));
                }
            }
        }
    }
    if let Some(d) = discord::retry_after_from_body(data) {
        assert!(d <= ONE_DAY, "{d:?}");
    }
}

/// A stored outbox value: `Record::decode` and `SharedBody::decode` never panic, and a
/// decoded record encodes to something that decodes to it again.
pub fn record(data: &[u8]) {
    if let Ok(shared) = SharedBody::decode(data) {
        let names: Vec<&str> = shared.targets.iter().map(String::as_str).collect();
        let encoded = SharedBody::encode(&names, &shared.body).expect("decoded names fit");
        let again = SharedBody::decode(&encoded);
        assert_eq!(again.as_ref(), Ok(&shared), "a shared body round-trips");
    }
    let Ok(record) = Record::decode(data) else {
        return;
    };
    let encoded = record.encode();
    let again = Record::decode(&encoded).expect("an encoded record decodes");
    assert_eq!(again, record, "encode → decode gives the record back");
}

/// The config `routing` runs every event through: every kind of condition and target.
const ROUTING_CONFIG: &str = r#"
[targets.slack]
type = "slack"
url = "http://127.0.0.1:9/slack"
template = "{author_username} posted: {tweet_text} ({monitor_name}, {latency_ms} ms)"
[targets.discord]
type = "discord"
url = "http://127.0.0.1:9/discord?x=1"
thread_id = "42"
template = "{author_username} posted: {tweet_text}"
[targets.plain-slack]
type = "slack"
url = "http://127.0.0.1:9/slack2"
[targets.plain-discord]
type = "discord"
url = "http://127.0.0.1:9/discord2"
[targets.telegram]
type = "telegram"
bot_token = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
chat_id = -1001234567890
api_url = "http://127.0.0.1:9"
[targets.teams]
type = "teams"
url = "http://127.0.0.1:9/workflows/1/triggers/manual/paths/invoke?sig=x"
[targets.http]
type = "http"
url = "http://127.0.0.1:9/http"
signing_secret = "whsec_c2VjcmV0LWtleS1mb3ItZnV6emluZw=="
headers = { Authorization = "Bearer token" }
[targets.put]
type = "http"
url = "http://127.0.0.1:9/put"
method = "PUT"

[[routes]]
name = "exact"
monitors = ["Tech Leaders", "mon-tech"]
targets = ["slack", "http"]
[[routes]]
name = "wildcards"
monitors = ["*news*", "rule-*"]
authors = ["@sama", "elon*", "*bot"]
targets = ["discord", "slack"]
[[routes]]
name = "text"
text = "(?i)launch|announce|\\bAI\\b"
events = ["tweet.detected", "tweet.deleted"]
targets = ["plain-slack", "plain-discord", "telegram", "teams"]
[[routes]]
name = "stopper"
authors = ["stop*"]
targets = ["put"]
stop = true
[[routes]]
name = "all"
events = ["tweet.detected", "monitor.error"]
targets = ["http", "put"]
"#;

/// A `tweet.detected` event in the shape of ScrapeBadger's docs.
const SAMPLE_EVENT: &str = r#"{"event":"tweet.detected","monitor_id":"mon-tech","monitor_name":"Tech Leaders","tweet_id":"1","author_username":"elonmusk","tweet_text":"We launch today","tweet_url":"https://x.com/elonmusk/status/1","latency_ms":150}"#;

/// The routing config, compiled once, with its targets built.
fn routing_setup() -> &'static (Config, Router, Vec<Target>) {
    static SETUP: OnceLock<(Config, Router, Vec<Target>)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let config = Config::parse(ROUTING_CONFIG, Path::new("routing.toml"), &|_| None)
            .expect("the routing config is valid");
        let router = Router::new(&config.routes, config.targets.len());
        let targets = config
            .targets
            .iter()
            .map(|t| Target::new(t.clone()).expect("a target builds"))
            .collect();
        (config, router, targets)
    })
}

/// An event routed by a fixed config (exact, wildcard, author, regex, event-type and
/// `stop` routes), then the exact request of every target it goes to: an http body is
/// the event's bytes, a chat body keeps the platform's limits and pings no one.
pub fn routing(data: &[u8]) {
    let Ok(event) = Event::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let (config, router, targets) = routing_setup();
    let routed = check_routing(router, config, &event);
    for t in routed {
        let Ok(request) = targets[t].request("msg_fuzz", 1_700_000_000, event.raw()) else {
            continue;
        };
        match &config.targets[t].kind {
            TargetKind::Http(_) | TargetKind::Nats(_) => {
                assert_eq!(request.body.as_ref(), data)
            }
            TargetKind::Slack(_) => check_slack(&json_body(&request.body), true),
            TargetKind::Discord(_) => check_discord(&json_body(&request.body), true),
            TargetKind::Telegram(_) => check_telegram(&json_body(&request.body)),
            TargetKind::Teams(_) => check_teams(&request.body),
        }
    }
}

/// The routing walk's own promises; returns the targets.
fn check_routing(router: &Router, config: &Config, event: &Event) -> Vec<usize> {
    let routing = router.route(event);
    assert!(routing.routes.windows(2).all(|w| w[0] < w[1]), "file order");
    for (n, &r) in routing.routes.iter().enumerate() {
        let route = &config.routes[r];
        assert!(route.events.iter().any(|e| e == event.event_type()));
        if route.stop {
            assert_eq!(n + 1, routing.routes.len(), "a stop route ends the walk");
        }
    }
    let mut named: Vec<usize> = Vec::new();
    for &r in &routing.routes {
        for &t in &config.routes[r].targets {
            if !named.contains(&t) {
                named.push(t);
            }
        }
    }
    assert_eq!(
        routing.targets, named,
        "each target once, in the order named"
    );
    routing.targets
}

/// A template (the first line) and an event (the rest), rendered for Slack and Discord
/// through the real config (the template compiled as `check` would) and payload code.
///
/// A line without braces is also tried as one MiniJinja expression, `{{ line }}`: every
/// character of that output is a value, so none may ping (whatever filter, loop or
/// slice the line applies). And inside the quotes of an http `body_template`
/// (`{"t": "{{ line }}"}`): a body that renders must be JSON with that one key, so no
/// value can end the string and inject keys.
pub fn chat(data: &[u8]) {
    let (line, event) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) => (&data[..nl], &data[nl + 1..]),
        None => (data, &[][..]),
    };
    let template = String::from_utf8_lossy(line).into_owned();
    let Ok(map) = serde_json::from_slice::<Map<String, Value>>(event) else {
        return;
    };
    let (slack_opts, discord_opts) = chat_options(&template);
    let untemplated = slack_opts.template.is_none();
    check_slack(&slack::payload(&map, &slack_opts), untemplated);
    check_discord(&discord::payload(&map, &discord_opts), untemplated);

    if template.contains(['{', '}']) {
        return;
    }
    let wrapped = format!("{{{{ {template} }}}}");
    let (slack_opts, discord_opts) = chat_options(&wrapped);
    check_slack(&slack::payload(&map, &slack_opts), true);
    check_discord(&discord::payload(&map, &discord_opts), true);
    if let Some((telegram_opts, teams_opts)) = more_chat_options(&wrapped) {
        check_telegram(&crate::target::telegram::payload(&map, &telegram_opts));
        check_teams_values(&crate::target::teams::payload(&map, &teams_opts));
    }
    check_json_body(&format!("{{\"t\": \"{{{{ {template} }}}}\"}}"), event);
}

/// The options of a telegram and a teams target whose `template` is `template`, when
/// `check` takes it.
fn more_chat_options(
    template: &str,
) -> Option<(crate::config::TelegramOptions, crate::config::TeamsOptions)> {
    let text = "[targets.t]\ntype = \"telegram\"\nbot_token = \"123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\"\n\
                chat_id = -1001234567890\ntemplate = \"${T}\"\n\
                [targets.m]\ntype = \"teams\"\nurl = \"http://127.0.0.1:9/m\"\ntemplate = \"${T}\"\n";
    let env = |name: &str| (name == "T").then(|| template.to_owned());
    let config = Config::parse(text, Path::new("chat.toml"), &env).ok()?;
    match (&config.targets[0].kind, &config.targets[1].kind) {
        (TargetKind::Telegram(t), TargetKind::Teams(m)) => Some((t.clone(), m.clone())),
        _ => unreachable!("the config names a telegram and a teams target"),
    }
}

/// A Teams card whose template is one value: its markdown `TextBlock` has no markdown
/// character that is not backslash-escaped (a `\` escapes the character after it).
fn check_teams_values(body: &Value) {
    let card = &body["attachments"][0]["content"];
    assert!(card.pointer("/msteams/entities").is_none(), "no mentions");
    for block in card["body"].as_array().expect("a body") {
        let Some(text) = block.get("text").and_then(Value::as_str) else {
            continue;
        };
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                chars.next();
                continue;
            }
            assert!(
                !matches!(
                    c,
                    '*' | '_' | '~' | '`' | '[' | ']' | '(' | ')' | '<' | '>' | '!' | '#'
                ),
                "an unescaped {c:?} from a value in {text}"
            );
        }
    }
}

/// The options of a slack and a discord target whose `template` is `template`; the
/// defaults when `check` rejects it (then it never reaches a payload).
fn chat_options(template: &str) -> (crate::config::SlackOptions, crate::config::DiscordOptions) {
    let text = "[targets.s]\ntype = \"slack\"\nurl = \"http://127.0.0.1:9/s\"\ntemplate = \"${T}\"\n\
                [targets.d]\ntype = \"discord\"\nurl = \"http://127.0.0.1:9/d\"\ntemplate = \"${T}\"\n";
    let env = |name: &str| (name == "T").then(|| template.to_owned());
    match Config::parse(text, Path::new("chat.toml"), &env) {
        Ok(config) => match (&config.targets[0].kind, &config.targets[1].kind) {
            (TargetKind::Slack(s), TargetKind::Discord(d)) => (s.clone(), d.clone()),
            _ => unreachable!("the config names a slack and a discord target"),
        },
        Err(_) => Default::default(),
    }
}

/// `body_template` (a JSON object with one key `t`) rendered for `event`: when it
/// renders at all, it is that object and nothing more.
fn check_json_body(body_template: &str, event: &[u8]) {
    let text =
        "[targets.h]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/h\"\nbody_template = \"${T}\"\n";
    let env = |name: &str| (name == "T").then(|| body_template.to_owned());
    let Ok(config) = Config::parse(text, Path::new("http.toml"), &env) else {
        return;
    };
    let TargetKind::Http(opts) = &config.targets[0].kind else {
        unreachable!("the config names an http target")
    };
    let template = opts.body_template.as_ref().expect("a body_template");
    if let Ok(body) = crate::target::http::render_body(template, &Bytes::copy_from_slice(event)) {
        let value: Value = serde_json::from_str(&body).expect("a rendered JSON body parses");
        let object = value.as_object().expect("the template's object");
        assert!(
            object.len() == 1 && object["t"].is_string(),
            "a value injected JSON: {body}"
        );
    }
}

fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("a chat body is JSON")
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Whether `s` holds one of `words` (`@here`, ...) as a whole word (ASCII,
/// case-insensitively), which a platform could take for a broadcast.
fn pings(s: &str, words: &[&str]) -> bool {
    let lower = s.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    words.iter().any(|word| {
        lower.match_indices(word).any(|(i, _)| {
            bytes
                .get(i + word.len())
                .is_none_or(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
        })
    })
}

/// Slack's broadcasts.
const SLACK_BROADCASTS: &[&str] = &["@here", "@channel", "@everyone"];
/// Discord's (it has no `@channel`).
const DISCORD_BROADCASTS: &[&str] = &["@here", "@everyone"];

/// `s` without the URL of each `<url|label>` link: a `@here` in a URL is not a
/// mention (tweet text cannot open a link: its `<` is escaped).
fn without_link_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_url = false;
    for c in s.chars() {
        match c {
            '<' => in_url = true,
            '|' | '>' if in_url => in_url = false,
            _ if in_url => {}
            c => out.push(c),
        }
    }
    out
}

/// Slack's limits (3,000 characters a text object, 40,000 the fallback text); when the
/// template's literal text is the fixed one, no broadcast and no `<!...>` mention.
fn check_slack(body: &Value, no_markup_in_template: bool) {
    let text = &body["text"];
    assert!(text.is_string() && chars(text) <= 40_000);
    let blocks = body["blocks"].as_array().expect("blocks");
    let mut texts = vec![text];
    for block in blocks {
        if let Some(t) = block.get("text") {
            texts.push(&t["text"]);
        }
        for e in block
            .get("elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            texts.push(&e["text"]);
        }
    }
    for t in &texts[1..] {
        assert!(t.is_string() && chars(t) <= 3_000, "{t}");
    }
    if no_markup_in_template {
        for t in texts {
            let s = t.as_str().unwrap_or_default();
            assert!(
                !s.contains("<!") && !s.contains("<@") && !s.contains("<#"),
                "{s}"
            );
            assert!(!pings(&without_link_urls(s), SLACK_BROADCASTS), "{s}");
        }
    }
}

/// Telegram's limit (4,096 UTF-16 units of visible text) and HTML whose every `<` is a
/// tag the layout makes, every `&` an entity, and no `@` starting a mention.
fn check_telegram(body: &Value) {
    assert_eq!(body["parse_mode"], "HTML");
    let text = body["text"].as_str().expect("a text");
    let mut visible = 0;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let end = rest.find('>').expect("a closed tag");
            let tag = &rest[..=end];
            // Links go to the tweet's own http(s) `tweet_url` or to x.com; the URL is
            // escaped, so it cannot end the attribute or the tag early.
            let link = tag
                .strip_prefix("<a href=\"http")
                .and_then(|t| t.strip_suffix("\">"));
            assert!(
                ["<b>", "</b>", "<i>", "</i>", "</a>"].contains(&tag)
                    || link.is_some_and(|url| !url.contains(['"', '<'])),
                "a tag the layout does not make: {tag}"
            );
            rest = &rest[end + 1..];
            continue;
        }
        if c == '&' {
            let entity = ["&amp;", "&lt;", "&gt;", "&quot;"]
                .into_iter()
                .find(|e| rest.starts_with(e))
                .unwrap_or_else(|| panic!("a bare & in {text}"));
            visible += 1;
            rest = &rest[entity.len()..];
            continue;
        }
        if c == '@' {
            let next = rest[1..].bytes().next();
            assert!(
                !next.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "a mention in {text}"
            );
        }
        visible += c.len_utf16();
        rest = &rest[c.len_utf8()..];
    }
    assert!(visible <= 4_096, "{visible} UTF-16 units");
}

/// Teams' 28 KB, one Adaptive Card 1.4, tweet text only in `TextRun`s (never markdown).
fn check_teams(body: &[u8]) {
    assert!(body.len() <= 28 * 1024, "{} bytes", body.len());
    let v = json_body(body);
    let card = &v["attachments"][0]["content"];
    assert_eq!(card["version"], "1.4");
    for block in card["body"].as_array().expect("a body") {
        assert_eq!(
            block["type"], "RichTextBlock",
            "untemplated: text in TextRuns only"
        );
    }
}

/// Discord's limits (content 2,000; title and author 256; description 4,096; footer
/// 2,048; all embed text 6,000), mentions off; when the template's literal text is the
/// fixed one, no `@everyone`/`@here` in the content.
fn check_discord(body: &Value, no_markup_in_template: bool) {
    assert_eq!(body["allowed_mentions"], serde_json::json!({"parse": []}));
    let content = &body["content"];
    assert!(chars(content) <= 2_000);
    if no_markup_in_template {
        assert!(
            !pings(content.as_str().unwrap_or_default(), DISCORD_BROADCASTS),
            "{content}"
        );
    }
    let embed = &body["embeds"][0];
    let (title, description) = (chars(&embed["title"]), chars(&embed["description"]));
    let (footer, author) = (
        chars(&embed["footer"]["text"]),
        chars(&embed["author"]["name"]),
    );
    assert!(title <= 256 && author <= 256 && footer <= 2_048 && description <= 4_096);
    assert!(description >= 1, "Discord rejects an empty embed");
    assert!(title + description + footer + author <= 6_000);
}
