//! The Slack, Discord, Telegram and Teams message bodies, pinned by golden files and
//! checked against each platform's limits.
//!
//! Each case renders one event for every platform and compares the result with
//! `tests/golden/{slack,discord,telegram,teams}_{case}.json`. After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test chat_payloads` and read the diff before committing.
//! Invisible characters (zero-width, bidi controls) are written as `\uXXXX` escapes in
//! the goldens so a reviewer can see them.
//!
//! Every payload, golden or generated, also goes through a validator that knows the
//! platforms' limits and what must never get through from a tweet.

use std::fmt::Write as _;
use std::path::PathBuf;

use badger_relay::config::{
    ChatId, Config, DiscordOptions, SlackOptions, TargetKind, TeamsOptions, TelegramOptions,
    Template, TemplatePart,
};
use badger_relay::target::{discord, slack, teams, telegram};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------
// The events
// ---------------------------------------------------------------------------------------

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// The example event of the contract.
fn ordinary() -> Map<String, Value> {
    object(json!({
        "event": "tweet.detected",
        "monitor_id": "abc-123",
        "monitor_name": "Tech Leaders",
        "tweet_id": "1234567890",
        "author_username": "elonmusk",
        "tweet_text": "Just announced...",
        "tweet_url": "https://x.com/elonmusk/status/1234567890",
        "tweet_published_at": "2026-03-13T12:00:00Z",
        "detected_at": "2026-03-13T12:00:00.150Z",
        "latency_ms": 150
    }))
}

/// Everything a tweet can throw at a chat platform.
const HOSTILE_TEXT: &str = concat!(
    "<!channel> <!here> <!everyone> <@U123> <#C123> <!subteam^S1> ",
    "<https://evil.example|click> <http://evil.example> ",
    "@everyone @here @channel @Here @EVERYONE <@&123> <@123> <#456> ",
    "[https://x.com/safe](https://evil.example) ",
    "&amp; &lt;b&gt; a&b<c>d ",
    "zero\u{200B}width\u{200C}non\u{200D}joiner\u{2060}word\u{FEFF}bom ",
    "\u{202E}evil override\u{202C} \u{2067}isolate\u{2069} ",
    "👨\u{200D}👩\u{200D}👧\u{200D}👦 🏳\u{FE0F}\u{200D}🌈 🇺🇦 👍🏽 ",
    "*bold* _it_ ~strike~ `code` ```block``` ||spoiler||\n",
    "> quote\n# heading\n-# subtext \u{202E}unterminated override"
);

fn hostile() -> Map<String, Value> {
    object(json!({
        "event": "tweet.detected",
        "monitor_id": "m-<1>",
        "monitor_name": "Tech <Leaders> & @here",
        "tweet_id": "1234567891",
        // A valid handle that spells a broadcast.
        "author_username": "@here",
        "tweet_text": HOSTILE_TEXT,
        // `|` would end a Slack link's URL early; `<` `>` are encoded by URL parsing.
        "tweet_url": "https://x.com/here/status/1234567891?s=20&t=a|<!channel>",
        "tweet_published_at": "2026-03-13T12:00:00Z<script>",
        "detected_at": "2026-03-13T12:00:00.150Z",
        "latency_ms": -5
    }))
}

/// A 10,000-character tweet (X allows 25,000 for long posts) made of the characters
/// that make cutting hard: entities-to-be, multi-byte characters, an emoji sequence.
fn long_text() -> String {
    let unit = "Tom & Jerry <3 café 👨\u{200D}👩\u{200D}👧 日本語 ";
    unit.chars().cycle().take(10_000).collect()
}

fn long() -> Map<String, Value> {
    let mut event = ordinary();
    event.insert("tweet_text".into(), long_text().into());
    event
}

/// A filter-rule event: `rule_id`/`rule_tag` instead of the monitor fields.
fn rule() -> Map<String, Value> {
    object(json!({
        "event": "tweet.detected",
        "rule_id": "rule-42",
        "rule_tag": "launches",
        "tweet_id": "1900000000000000001",
        "author_username": "sama",
        "tweet_text": "We are launching something new today.\nMore soon: https://t.co/abc123",
        "tweet_url": "https://x.com/sama/status/1900000000000000001",
        "tweet_published_at": "2026-03-13T12:00:00.000+01:00",
        "detected_at": "2026-03-13T11:00:02.300Z",
        "latency_ms": 2300
    }))
}

/// Most fields missing, the rest of the wrong type: the message must still make sense.
fn missing() -> Map<String, Value> {
    object(json!({
        "event": "tweet.detected",
        "tweet_id": 1234567890,
        "author_username": null,
        "tweet_text": "",
        "monitor_name": 42.5,
        "latency_ms": "150"
    }))
}

/// An ordinary event with extra fields, for the templates.
fn templated() -> Map<String, Value> {
    let mut event = ordinary();
    event.insert(
        "tweet_text".into(),
        "Launch day! <!channel> & [details](https://evil.example) @everyone".into(),
    );
    event.insert("tags".into(), json!(["ai", "launch"]));
    event.insert("verified".into(), json!(true));
    event
}

// ---------------------------------------------------------------------------------------
// The options
// ---------------------------------------------------------------------------------------

/// `"a {b} c"` → literal `a `, field `b`, literal ` c`: enough of the config syntax for
/// the tests (the real parser lives with the config).
fn template(text: &str) -> Template {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}').expect("unclosed placeholder");
        if open > 0 {
            parts.push(TemplatePart::Literal(rest[..open].to_owned()));
        }
        parts.push(TemplatePart::Field(rest[open + 1..close].to_owned()));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest.to_owned()));
    }
    Template { parts }
}

/// The four chat platforms, each with a MiniJinja `template` (nested fields, a
/// condition, a loop, filters), compiled by the real config loader.
fn jinja_options() -> Options {
    let text = r#"
[targets.s]
type = "slack"
url = "https://hooks.slack.com/services/x"
template = '''*{{ author_username | upper }}* ({{ tweet_data.author.followers_count | default("?") }} followers{% if tweet_data.author.verified %}, verified{% endif %}){% for t in tags %} #{{ t }}{% endfor %}: {{ tweet_text | truncate(40) }} <{{ tweet_url }}|open>'''
[targets.d]
type = "discord"
url = "https://discord.com/api/webhooks/1/x"
template = '''**@{{ author_username }}** [{{ tweet_data.lang | default("?") | upper }}]{% for t in tags %} #{{ t }}{% endfor %}: {{ tweet_text | replace("Launch", "LAUNCH") }}'''
[targets.t]
type = "telegram"
bot_token = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
chat_id = -1001234567890
template = '''<b>{{ author_username }}</b>{% if tweet_data.author.followers_count > 1000 %} (big account){% endif %}
{{ tweet_text }}
{{ tags | join(", ") }} · <a href="{{ tweet_url }}">open</a>'''
[targets.m]
type = "teams"
url = "https://prod-1.westus.logic.azure.com/workflows/x"
template = '''**{{ author_username }}** on {{ monitor_name }}: {{ tweet_text | lower }}{% for t in tags %} #{{ t }}{% endfor %}'''
[[routes]]
name = "all"
targets = ["s", "d", "t", "m"]
"#;
    let config = Config::parse(text, std::path::Path::new("jinja.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut opts = Options::default();
    for t in config.targets {
        match t.kind {
            TargetKind::Slack(o) => opts.slack = o,
            TargetKind::Discord(o) => opts.discord = o,
            TargetKind::Telegram(o) => opts.telegram = Some(o),
            TargetKind::Teams(o) => opts.teams = o,
            other => panic!("{other:?}"),
        }
    }
    opts
}

/// [`templated`] with the full tweet under `tweet_data`, as `/ingest` deliveries carry it.
fn ingested() -> Map<String, Value> {
    let mut event = templated();
    event.insert(
        "tweet_data".into(),
        json!({"lang": "en", "author": {"followers_count": 12000, "verified": true}}),
    );
    event
}

fn slack_templated() -> SlackOptions {
    SlackOptions {
        username: Some("Tweet alerts".into()),
        icon_emoji: Some(":bird:".into()),
        channel: Some("#tweets".into()),
        template: Some(template(
            "*New from @{author_username}* ({monitor_name}, {latency_ms} ms, verified: {verified}, \
             tags {tags}{nothing}):\n{tweet_text}\n<{tweet_url}|Open the tweet>",
        )),
        ..SlackOptions::default()
    }
}

fn discord_templated() -> DiscordOptions {
    DiscordOptions {
        username: Some("Tweet alerts".into()),
        avatar_url: Some("https://example.com/bird.png".into()),
        thread_id: Some("1100000000000000000".into()),
        template: Some(template(
            "**@{author_username}** via {monitor_name} ({latency_ms} ms, tags {tags}{nothing}): {tweet_text}",
        )),
        ..DiscordOptions::default()
    }
}

fn telegram_plain() -> TelegramOptions {
    TelegramOptions {
        chat_id: ChatId::Id(-1_001_234_567_890),
        ..TelegramOptions::default()
    }
}

fn telegram_templated() -> TelegramOptions {
    TelegramOptions {
        chat_id: ChatId::Username("@tweets".into()),
        message_thread_id: Some(7),
        disable_notification: true,
        template: Some(template(
            "<b>New from @{author_username}</b> ({monitor_name}, {latency_ms} ms, tags {tags}{nothing}):\n{tweet_text}\n<a href=\"{tweet_url}\">Open the tweet</a>",
        )),
    }
}

fn teams_templated() -> TeamsOptions {
    TeamsOptions {
        template: Some(template(
            "**@{author_username}** via {monitor_name} ({latency_ms} ms, tags {tags}{nothing}): {tweet_text}",
        )),
    }
}

// ---------------------------------------------------------------------------------------
// The golden files
// ---------------------------------------------------------------------------------------

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"))
}

/// Characters a reviewer cannot see, written as JSON escapes in the goldens.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn golden_text(value: &Value) -> String {
    let mut out = visible(&serde_json::to_string_pretty(value).unwrap());
    out.push('\n');
    out
}

/// JSON text with the invisible characters escaped.
fn visible(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 64);
    for c in json.chars() {
        if is_invisible(c) {
            write!(out, "\\u{:04X}", c as u32).unwrap();
        } else {
            out.push(c);
        }
    }
    out
}

/// The first place two JSON values differ, as a path, for a readable failure.
fn first_difference(path: &str, want: &Value, got: &Value) -> Option<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for key in w.keys().chain(g.keys()) {
                let p = format!("{path}.{key}");
                match (w.get(key), g.get(key)) {
                    (Some(a), Some(b)) => {
                        if let Some(d) = first_difference(&p, a, b) {
                            return Some(d);
                        }
                    }
                    (a, b) => return Some(format!("{p}: golden {a:?}, got {b:?}")),
                }
            }
            None
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .find_map(|(i, (a, b))| first_difference(&format!("{path}[{i}]"), a, b)),
        _ if want == got => None,
        _ => Some(format!(
            "{path}:\n  golden {}\n  got    {}",
            visible(&want.to_string()),
            visible(&got.to_string())
        )),
    }
}

fn check_golden(name: &str, value: &Value) {
    let path = golden_path(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, golden_text(value)).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `UPDATE_GOLDEN=1 cargo test --test chat_payloads` to create it",
            path.display()
        )
    });
    let want: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    if let Some(diff) = first_difference("$", &want, value) {
        panic!(
            "{} differs from the golden file at {diff}\n\
             If the change is intended, run `UPDATE_GOLDEN=1 cargo test --test chat_payloads` \
             and review the diff.",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// The validators
// ---------------------------------------------------------------------------------------

fn chars(v: &Value) -> usize {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .chars()
        .count()
}

/// A broadcast word written as plain text (`@here`, any case, as a whole word).
fn plain_broadcast(s: &str, words: &[&str]) -> Option<String> {
    let lower = s.to_lowercase();
    for word in words {
        let needle = format!("@{word}");
        for (i, _) in lower.match_indices(&needle) {
            let next = lower[i + needle.len()..].chars().next();
            if !next.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                return Some(s[i..].chars().take(20).collect());
            }
        }
    }
    None
}

/// Slack's limits, and no markup from a tweet: every `&` starts one of the three
/// entities, every `<` starts a link to one of `links` (the URLs the message itself
/// links to), so no `<!…>`, `<@…>`, `<#…>` or `<http…>` from a tweet survives, and no
/// plain `@here`/`@channel`/`@everyone` is left for Slack's automatic parsing.
fn validate_slack(p: &Value, links: &[&str]) {
    // Always sent, so Slack's default (unfurl) never applies unless the target asks.
    assert!(p["unfurl_links"].is_boolean(), "unfurl_links");
    assert!(p["unfurl_media"].is_boolean(), "unfurl_media");
    let text = &p["text"];
    assert!((1..=40_000).contains(&chars(text)), "text length");
    let blocks = p["blocks"].as_array().expect("blocks");
    assert!((1..=50).contains(&blocks.len()), "block count");
    let mut texts = vec![text.as_str().unwrap()];
    for block in blocks {
        match block["type"].as_str() {
            Some("section") => {
                assert_eq!(block["text"]["type"], "mrkdwn");
                assert!(
                    (1..=3_000).contains(&chars(&block["text"]["text"])),
                    "section text length {}",
                    chars(&block["text"]["text"])
                );
                texts.push(block["text"]["text"].as_str().unwrap());
            }
            Some("context") => {
                let elements = block["elements"].as_array().expect("elements");
                assert!((1..=10).contains(&elements.len()), "context elements");
                for e in elements {
                    assert_eq!(e["type"], "mrkdwn");
                    assert!((1..=3_000).contains(&chars(&e["text"])), "context length");
                    texts.push(e["text"].as_str().unwrap());
                }
            }
            other => panic!("unexpected block type {other:?}"),
        }
    }
    for s in texts {
        for (i, _) in s.match_indices('&') {
            let rest = &s[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "bare & in Slack text: {:?}",
                rest.chars().take(20).collect::<String>()
            );
        }
        for bad in ["<!", "<@", "<#"] {
            assert!(!s.contains(bad), "{bad} in Slack text: {s:?}");
        }
        for (i, _) in s.match_indices('<') {
            let inner = &s[i + 1..];
            let end = inner.find('>').expect("unclosed < in Slack text");
            let url = inner[..end].split('|').next().unwrap();
            assert!(
                links.contains(&url),
                "link to {url:?} is not one the message makes"
            );
            assert!(!inner[..end].contains('<'), "nested < in a link");
        }
        assert_eq!(
            plain_broadcast(s, &["here", "channel", "everyone"]),
            None,
            "plain broadcast in {s:?}"
        );
    }
}

/// Discord's limits, no pings, and valid URLs and timestamps (Discord rejects the whole
/// message over a bad one).
fn validate_discord(p: &Value) {
    assert_eq!(p["allowed_mentions"], json!({"parse": []}));
    if let Some(name) = p.get("thread_name") {
        let n = chars(name);
        assert!((1..=100).contains(&n), "thread_name length {n}");
        assert!(
            !name.as_str().unwrap().contains('\n'),
            "thread_name on one line"
        );
    }
    if let Some(flags) = p.get("flags") {
        // Only SUPPRESS_NOTIFICATIONS may be set by a webhook message (and SUPPRESS_EMBEDS,
        // which would hide the embed).
        assert_eq!(flags, 4096, "flags");
    }
    if let Some(content) = p.get("content") {
        assert!((1..=2_000).contains(&chars(content)), "content length");
        assert_eq!(
            plain_broadcast(content.as_str().unwrap(), &["everyone", "here"]),
            None
        );
        assert!(!content.as_str().unwrap().contains("]("), "masked link");
    }
    let embeds = p["embeds"].as_array().expect("embeds");
    assert!((1..=10).contains(&embeds.len()));
    let mut total = 0;
    for embed in embeds {
        let limited = [
            ("/title", 256),
            ("/description", 4_096),
            ("/footer/text", 2_048),
            ("/author/name", 256),
        ];
        for (pointer, max) in limited {
            if let Some(v) = embed.pointer(pointer) {
                let n = chars(v);
                assert!((1..=max).contains(&n), "{pointer} length {n}");
                total += n;
            }
        }
        assert!(embed.get("fields").is_none());
        let description = embed["description"].as_str().expect("a description");
        assert!(!description.contains("]("), "masked link in description");
        for pointer in ["/url", "/author/url"] {
            if let Some(url) = embed.pointer(pointer) {
                let url = reqwest::Url::parse(url.as_str().unwrap()).expect("valid URL");
                assert!(matches!(url.scheme(), "http" | "https"));
            }
        }
        if let Some(ts) = embed.get("timestamp") {
            let ts = ts.as_str().unwrap();
            assert!(
                ts.len() >= 20 && ts.as_bytes()[10] == b'T' && ts.is_ascii(),
                "timestamp {ts:?}"
            );
        }
    }
    assert!(total <= 6_000, "embed total {total}");
}

/// Telegram: at most 4,096 UTF-16 units of visible text, only the tags the layout (or the
/// test's template) makes, every `&` an entity, and no `@` that starts a mention.
fn validate_telegram(p: &Value) {
    assert_eq!(p["parse_mode"], "HTML");
    assert_eq!(p["link_preview_options"], json!({"is_disabled": true}));
    assert!(p["chat_id"].is_i64() || p["chat_id"].as_str().is_some_and(|c| c.starts_with('@')));
    let text = p["text"].as_str().expect("a text");
    let mut visible = 0;
    let mut open = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest.find('>').expect("a closed tag");
                let tag = &rest[..=end];
                match tag {
                    "<b>" | "<i>" => open.push(&tag[1..2]),
                    "</b>" | "</i>" | "</a>" => {
                        assert_eq!(open.pop(), Some(&tag[2..3]), "tags nest: {text}")
                    }
                    _ => {
                        let href = tag
                            .strip_prefix("<a href=\"")
                            .and_then(|t| t.strip_suffix("\">"))
                            .unwrap_or_else(|| panic!("a tag the message must not have: {tag}"));
                        assert!(href.starts_with("https://x.com/"), "{href}");
                        assert!(!href.contains('"') && !href.contains('<'), "{href}");
                        open.push("a");
                    }
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let entity = ["&amp;", "&lt;", "&gt;", "&quot;"]
                    .into_iter()
                    .find(|e| rest.starts_with(e))
                    .unwrap_or_else(|| panic!("a bare & in {text}"));
                visible += 1;
                rest = &rest[entity.len()..];
            }
            _ => {
                if c == '@' {
                    let next = rest[1..].bytes().next();
                    assert!(
                        !next.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_'),
                        "a mention in {text:?}"
                    );
                }
                visible += c.len_utf16();
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    assert!(open.is_empty(), "tags left open: {open:?}");
    assert!((1..=4_096).contains(&visible), "{visible} UTF-16 units");
}

/// Teams: one Adaptive Card 1.4 in a message under 28 KB; tweet text only in `TextRun`s
/// (never markdown) unless a template's `TextBlock` holds it, escaped.
fn validate_teams(p: &Value, templated: bool) {
    let bytes = serde_json::to_vec(p).unwrap().len();
    assert!(bytes <= 27_000, "{bytes} bytes");
    assert_eq!(p["type"], "message");
    let attachments = p["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        attachments[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachments[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert!(
        card.get("msteams")
            .and_then(|m| m.get("entities"))
            .is_none(),
        "no mentions"
    );
    for block in card["body"].as_array().expect("a body") {
        match block["type"].as_str() {
            Some("RichTextBlock") => {
                for inline in block["inlines"].as_array().expect("inlines") {
                    assert_eq!(inline["type"], "TextRun");
                    assert!(!inline["text"].as_str().unwrap().is_empty());
                }
            }
            Some("TextBlock") => {
                assert!(
                    templated,
                    "a TextBlock (markdown) outside a template: {block}"
                );
                let text = block["text"].as_str().unwrap();
                assert!(!text.contains("](http"), "a markdown link: {text}");
            }
            other => panic!("unexpected block {other:?}"),
        }
    }
    for action in card["actions"].as_array().into_iter().flatten() {
        assert_eq!(action["type"], "Action.OpenUrl");
        assert!(
            action["url"]
                .as_str()
                .unwrap()
                .starts_with("https://x.com/")
        );
    }
}

// ---------------------------------------------------------------------------------------
// The golden cases
// ---------------------------------------------------------------------------------------

/// What a case renders with on each platform.
#[derive(Default)]
struct Options {
    slack: SlackOptions,
    discord: DiscordOptions,
    telegram: Option<TelegramOptions>,
    teams: TeamsOptions,
}

fn case(name: &str, event: Map<String, Value>, opts: Options, slack_links: &[&str]) {
    let s = slack::payload(&event, &opts.slack);
    validate_slack(&s, slack_links);
    check_golden(&format!("slack_{name}"), &s);
    let d = discord::payload(&event, &opts.discord);
    validate_discord(&d);
    check_golden(&format!("discord_{name}"), &d);
    let t = telegram::payload(&event, &opts.telegram.unwrap_or_else(telegram_plain));
    validate_telegram(&t);
    check_golden(&format!("telegram_{name}"), &t);
    let templated = opts.teams.template.is_some();
    let m = teams::payload(&event, &opts.teams);
    validate_teams(&m, templated);
    check_golden(&format!("teams_{name}"), &m);
}

const ELON: &[&str] = &[
    "https://x.com/elonmusk",
    "https://x.com/elonmusk/status/1234567890",
];

#[test]
fn golden_ordinary() {
    case("ordinary", ordinary(), Options::default(), ELON);
}

#[test]
fn golden_hostile() {
    case(
        "hostile",
        hostile(),
        Options::default(),
        &[
            "https://x.com/here",
            "https://x.com/here/status/1234567891?s=20&amp;t=a%7C%3C!channel%3E",
        ],
    );
}

#[test]
fn golden_long() {
    case("long", long(), Options::default(), ELON);
}

#[test]
fn golden_rule() {
    case(
        "rule",
        rule(),
        Options::default(),
        &[
            "https://x.com/sama",
            "https://x.com/sama/status/1900000000000000001",
        ],
    );
}

#[test]
fn golden_missing() {
    case(
        "missing",
        missing(),
        Options::default(),
        &["https://x.com/i/status/1234567890"],
    );
}

#[test]
fn golden_jinja() {
    case("jinja", ingested(), jinja_options(), ELON);
}

#[test]
fn golden_templated() {
    case(
        "templated",
        templated(),
        Options {
            slack: slack_templated(),
            discord: discord_templated(),
            telegram: Some(telegram_templated()),
            teams: teams_templated(),
        },
        ELON,
    );
}

// ---------------------------------------------------------------------------------------
// Properties beyond the goldens
// ---------------------------------------------------------------------------------------

#[test]
fn hostile_tweet_text_is_shown_not_obeyed() {
    let s = slack::payload(&hostile(), &SlackOptions::default());
    let section = s["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(section.starts_with("&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; &lt;@U123&gt;"));
    assert!(section.contains("&lt;https://evil.example|click&gt;"));
    // Text that looked escaped already is shown as typed.
    assert!(section.contains("&amp;amp; &amp;lt;b&amp;gt; a&amp;b&lt;c&gt;d"));
    // The author named "here" does not become `@here`.
    assert_eq!(
        s["blocks"][0]["text"]["text"],
        "*<https://x.com/here|@\u{200B}here>*"
    );

    let d = discord::payload(&hostile(), &DiscordOptions::default());
    let description = d["embeds"][0]["description"].as_str().unwrap();
    // Discord text is left as written (pings are off), except masked links.
    assert!(description.contains("@everyone @here"));
    assert!(description.contains("[https://x.com/safe]\u{200B}(https://evil.example)"));
    assert!(
        d["embeds"][0].get("timestamp").is_none(),
        "bad timestamp dropped"
    );

    // An override the tweet leaves open is closed where the tweet's text ends, so it
    // cannot reverse the template text that follows.
    let opts = SlackOptions {
        template: Some(template("{tweet_text} via {monitor_id}")),
        ..SlackOptions::default()
    };
    let s = slack::payload(&hostile(), &opts);
    assert!(
        s["text"]
            .as_str()
            .unwrap()
            .ends_with("\u{202E}unterminated override\u{202C} via m-&lt;1&gt;")
    );
    let opts = DiscordOptions {
        template: Some(template("{tweet_text} via {monitor_id}")),
        ..DiscordOptions::default()
    };
    let d = discord::payload(&hostile(), &opts);
    assert!(
        d["content"]
            .as_str()
            .unwrap()
            .ends_with("\u{202E}unterminated override\u{202C} via m-<1>")
    );
}

#[test]
fn telegram_shows_hostile_text_escaped_and_mentions_nobody() {
    let t = telegram::payload(&hostile(), &telegram_plain());
    let text = t["text"].as_str().unwrap();
    // The author named "here" is linked, and its `@` cannot start a mention.
    assert!(
        text.starts_with("<b><a href=\"https://x.com/here\">@\u{200B}here</a></b>"),
        "{text}"
    );
    assert!(text.contains("&lt;!channel&gt;"));
    assert!(text.contains("@\u{200B}everyone @\u{200B}here"));
    assert!(text.contains("&amp;amp; &amp;lt;b&amp;gt; a&amp;b&lt;c&gt;d"));
    // The tweet's open override is closed before the footer.
    assert!(
        text.contains("\u{202E}unterminated override\u{202C}\n\n<a href="),
        "{text}"
    );

    let m = teams::payload(&hostile(), &TeamsOptions::default());
    let body = &m["attachments"][0]["content"]["body"];
    // Tweet text is a TextRun: shown exactly as written, markdown and all.
    assert!(
        body[1]["inlines"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("<!channel> <!here>")
    );
    let m = teams::payload(&templated(), &teams_templated());
    assert_eq!(
        m["attachments"][0]["content"]["body"][1]["text"],
        "**@elonmusk** via Tech Leaders (150 ms, tags \\[\"ai\",\"launch\"\\]): \
         Launch day\\! \\<\\!channel\\> & \\[details\\]\\(https://evil.example\\) @everyone"
    );
}

#[test]
fn long_tweet_is_cut_at_each_limit() {
    let text = long_text();
    assert_eq!(text.chars().count(), 10_000);

    let s = slack::payload(&long(), &SlackOptions::default());
    let section = s["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(section.ends_with('…'));
    assert!(section.chars().count() <= 3_000);
    // Nearly all of the budget is used: only a split entity or grapheme is given back.
    assert!(
        section.chars().count() > 2_990,
        "{}",
        section.chars().count()
    );
    // The fallback text carries the whole tweet (escaped), well under 40,000.
    assert!(!s["text"].as_str().unwrap().ends_with('…'));

    let d = discord::payload(&long(), &DiscordOptions::default());
    let description = d["embeds"][0]["description"].as_str().unwrap();
    assert!(description.ends_with('…'));
    let n = description.chars().count();
    assert!((4_080..=4_096).contains(&n), "{n}");
    assert!(text.starts_with(description.trim_end_matches('…')));

    // Telegram counts UTF-16 units of what it shows: the limit is used, not passed.
    let t = telegram::payload(&long(), &telegram_plain());
    validate_telegram(&t);
    assert!(t["text"].as_str().unwrap().contains('…'));
    let m = teams::payload(&long(), &TeamsOptions::default());
    let shown = m["attachments"][0]["content"]["body"][1]["inlines"][0]["text"]
        .as_str()
        .unwrap();
    assert!(shown.ends_with('…') && text.starts_with(shown.trim_end_matches('…')));
}

#[test]
fn slack_template_escapes_values_and_keeps_literal_markup() {
    let s = slack::payload(&templated(), &slack_templated());
    let text = s["text"].as_str().unwrap();
    assert_eq!(
        text,
        "*New from @elonmusk* (Tech Leaders, 150 ms, verified: true, tags [\"ai\",\"launch\"]):\n\
         Launch day! &lt;!channel&gt; &amp; [details](https://evil.example) @\u{200B}everyone\n\
         <https://x.com/elonmusk/status/1234567890|Open the tweet>"
    );
    assert_eq!(s["blocks"][1]["text"]["text"], text);
}

#[test]
fn discord_template_goes_to_content() {
    let d = discord::payload(&templated(), &discord_templated());
    assert_eq!(
        d["content"],
        "**@elonmusk** via Tech Leaders (150 ms, tags [\"ai\",\"launch\"]): \
         Launch day! <!channel> & [details]\u{200B}(https://evil.example) @\u{200B}everyone"
    );
    assert_eq!(d["username"], "Tweet alerts");
    assert_eq!(d["avatar_url"], "https://example.com/bird.png");
    // thread_id belongs in the URL, not the body.
    assert!(d.get("thread_id").is_none());
    let url = discord::request_url(
        &reqwest::Url::parse("https://discord.com/api/webhooks/1/t").unwrap(),
        &discord_templated(),
    );
    assert_eq!(
        url.as_str(),
        "https://discord.com/api/webhooks/1/t?wait=true&thread_id=1100000000000000000"
    );
}

#[test]
fn degenerate_events_still_make_valid_messages() {
    let long_name = "n".repeat(5_000);
    let events = [
        json!({}),
        json!({"tweet_text": null, "author_username": 5, "tweet_url": ["x"], "latency_ms": {}}),
        json!({"tweet_text": " \n ", "monitor_name": "", "rule_tag": "r"}),
        json!({"tweet_text": "x", "author_username": long_name, "monitor_name": long_name,
               "latency_ms": 1e300, "tweet_id": "12ab"}),
        json!({"tweet_text": "&".repeat(5_000), "monitor_name": "<".repeat(5_000)}),
    ];
    for event in events {
        let event = object(event);
        validate_slack(&slack::payload(&event, &SlackOptions::default()), &[]);
        validate_discord(&discord::payload(&event, &DiscordOptions::default()));
        validate_telegram(&telegram::payload(&event, &telegram_plain()));
        validate_teams(&teams::payload(&event, &TeamsOptions::default()), false);
    }
}

#[test]
fn templates_at_the_limits() {
    let slack_opts = SlackOptions {
        template: Some(template("<!here> {tweet_text} <{tweet_url}|link>")),
        ..SlackOptions::default()
    };
    let discord_opts = DiscordOptions {
        template: Some(template("**New:** {tweet_text}")),
        ..DiscordOptions::default()
    };
    for n in [0, 1, 1_990, 1_995, 2_000, 2_990, 2_995, 3_000, 50_000] {
        let mut event = ordinary();
        event.insert("tweet_text".into(), "&<".repeat(n / 2).into());
        let s = slack::payload(&event, &slack_opts);
        for block in s["blocks"].as_array().unwrap() {
            if let Some(t) = block.pointer("/text/text") {
                assert!(chars(t) <= 3_000);
            }
        }
        assert!(chars(&s["text"]) <= 40_000);
        let d = discord::payload(&event, &discord_opts);
        validate_discord(&d);
        validate_telegram(&telegram::payload(&event, &telegram_templated()));
        validate_teams(&teams::payload(&event, &teams_templated()), true);
    }
}

/// Random text from the characters that make escaping and cutting hard, at lengths
/// around every limit: each payload must pass the validators.
#[test]
fn random_hostile_text_always_validates() {
    const PIECES: &[&str] = &[
        "a", "b", " ", "\n", "&", "<", ">", ";", "|", "!", "@", "#", "[", "](", ")", "here",
        "channel", "everyone", "amp", "lt", "http://", "é", "日", "\u{301}", "\u{200D}", "👨",
        "👩", "🇫", "🇷", "👍", "🏽", "\u{FE0F}", "\u{202E}", "\u{200B}", "*", "_", "~", "`",
    ];
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let targets = [
        10, 255, 256, 257, 1_999, 2_000, 2_001, 2_999, 3_000, 3_001, 4_095, 4_096, 4_097, 6_000,
        12_000,
    ];
    for round in 0..150 {
        let len = targets[round % targets.len()] + rng.usize(0..8);
        let mut text = String::new();
        while text.chars().count() < len {
            text.push_str(PIECES[rng.usize(0..PIECES.len())]);
        }
        let name: String = (0..rng.usize(1..3_000))
            .map(|_| PIECES[rng.usize(0..PIECES.len())])
            .collect();
        let event = object(json!({
            "author_username": "a",
            "tweet_text": text,
            "tweet_url": "https://x.com/a/status/1",
            "monitor_name": name,
            "latency_ms": rng.u32(..),
            "tweet_published_at": "2026-03-13T12:00:00Z",
        }));
        validate_slack(
            &slack::payload(&event, &SlackOptions::default()),
            &["https://x.com/a", "https://x.com/a/status/1"],
        );
        let opts = DiscordOptions {
            template: Some(template("{tweet_text} {monitor_name}")),
            thread_name: Some(template("{monitor_name}")),
            ..DiscordOptions::default()
        };
        validate_discord(&discord::payload(&event, &opts));
        let opts = SlackOptions {
            template: Some(template("{tweet_text}")),
            ..SlackOptions::default()
        };
        validate_slack(
            &slack::payload(&event, &opts),
            &["https://x.com/a", "https://x.com/a/status/1"],
        );
        validate_telegram(&telegram::payload(&event, &telegram_plain()));
        let opts = TelegramOptions {
            template: Some(template("<b>{monitor_name}</b> {tweet_text}")),
            ..telegram_plain()
        };
        validate_telegram(&telegram::payload(&event, &opts));
        validate_teams(&teams::payload(&event, &TeamsOptions::default()), false);
        validate_teams(&teams::payload(&event, &teams_templated()), true);
    }
}

/// A `tweet_url` of 5,014 characters (tracking parameters, say) used to make a
/// 5,026-character context element, over Slack's 3,000 for any text object.
#[test]
fn a_huge_tweet_url_never_makes_a_text_object_too_long() {
    let mut event = ordinary();
    let url = format!(
        "https://x.com/elonmusk/status/1234567890?s={}",
        "q".repeat(4_971)
    );
    assert_eq!(url.chars().count(), 5_014);
    event.insert("tweet_url".into(), url.into());
    let s = slack::payload(&event, &SlackOptions::default());
    // The validator holds every text object to 3,000; the link goes to the short
    // status URL built from the tweet id.
    validate_slack(&s, ELON);
    assert_eq!(
        s["blocks"][2]["elements"][0]["text"],
        "<https://x.com/elonmusk/status/1234567890|Open on X>"
    );
    validate_discord(&discord::payload(&event, &DiscordOptions::default()));
}

#[test]
fn slack_unfurling_is_off_by_default_and_can_be_turned_on() {
    let s = slack::payload(&ordinary(), &SlackOptions::default());
    assert_eq!(
        (&s["unfurl_links"], &s["unfurl_media"]),
        (&json!(false), &json!(false))
    );
    let opts = SlackOptions {
        unfurl_links: true,
        ..SlackOptions::default()
    };
    let s = slack::payload(&ordinary(), &opts);
    validate_slack(&s, ELON);
    assert_eq!(
        (&s["unfurl_links"], &s["unfurl_media"]),
        (&json!(true), &json!(false))
    );
}

/// A forum channel's webhook: every tweet opens a post titled from the event, posted
/// silently. Titles are held to Discord's 100 characters on one line.
#[test]
fn discord_forum_posts_and_silent_messages_validate() {
    let opts = DiscordOptions {
        thread_name: Some(template("@{author_username}: {tweet_text}")),
        suppress_notifications: true,
        ..DiscordOptions::default()
    };
    let d = discord::payload(&ordinary(), &opts);
    validate_discord(&d);
    assert_eq!(d["thread_name"], "@elonmusk: Just announced...");
    assert_eq!(d["flags"], 4096);
    for event in [long(), hostile(), missing(), rule()] {
        validate_discord(&discord::payload(&event, &opts));
    }
    let d = discord::payload(&long(), &opts);
    assert!(d["thread_name"].as_str().unwrap().ends_with('…'));
    // A title never carries a line break.
    assert_eq!(
        discord::payload(&rule(), &opts)["thread_name"],
        "@sama: We are launching something new today. More soon: https://t.co/abc123"
    );
}
