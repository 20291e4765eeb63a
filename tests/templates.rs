//! Templates as their receivers see them: MiniJinja chat templates fed hostile tweets
//! (every way a template can write a value, and none may ping or inject markup), and an
//! http target's `body_template` through the real binary (the rendered body and its
//! Content-Type arrive, signed; a body that is not valid JSON is dead-lettered once,
//! never retried).

mod support;

use std::path::Path;

use badger_relay::config::{
    Config, DiscordOptions, SlackOptions, TargetKind, TeamsOptions, TelegramOptions,
};
use badger_relay::target::{discord, slack, teams, telegram};
use serde_json::{Map, Value, json};
use support::*;

// ---------------------------------------------------------------------------------------
// Chat templates and hostile tweets (payloads, no binary)
// ---------------------------------------------------------------------------------------

/// What a tweet can throw at a chat platform, in its text and in nested fields.
const HOSTILE: &str = concat!(
    "<!channel> <!here> <!everyone> <@U123> <#C123> <!subteam^S1> ",
    "<https://evil.example|click> @everyone @here @channel @Here ",
    "<@&123> <@123> [safe](https://evil.example) <b>bold</b> &amp; a&b ",
    ">ereh!< \u{202E}override"
);

fn hostile_event() -> Map<String, Value> {
    let v = json!({
        "event": "tweet.detected",
        "monitor_name": "Mon <!here>",
        "tweet_id": "1",
        "author_username": "@everyone",
        "tweet_text": HOSTILE,
        "tweet_url": "https://x.com/a/status/1",
        "latency_ms": 5,
        "tweet_data": {
            "lang": "<!channel>",
            "author": {"name": "@here", "followers_count": 10},
            "entities": {"mentions": ["<@U999>", "@everyone"], "urls": ["[x](https://evil.example)"]},
        },
    });
    v.as_object().unwrap().clone()
}

/// Every way a template can write a value: plain, through each text filter, as JSON,
/// nested, in a loop, sliced, joined, concatenated, reversed (`>ereh!<` becomes
/// `<!here>`), and with `default`. Only the literal `Tweet:` and separators are the
/// operator's.
const EVERY_WAY: &str = "Tweet: {{ tweet_text }} | {{ tweet_text | upper }} | {{ tweet_text | lower }} \
    | {{ tweet_text | replace('safe', 'x') }} | {{ tweet_text | tojson }} | {{ tweet_text | truncate(60) }} \
    | {{ tweet_text | title }} | {{ tweet_text | trim }} | {{ tweet_text | reverse }} | {{ tweet_text | string }} \
    | {{ tweet_data | tojson }} | {{ tweet_data }} | {{ tweet_data.lang }} | {{ tweet_data.author.name }} \
    | {% for m in tweet_data.entities.mentions %}{{ m }} {% endfor %}| {{ tweet_data.entities.urls | join(' ') }} \
    | {{ tweet_text[0:20] }} | {{ '<' ~ tweet_data.lang ~ '>' }} | {{ missing | default(author_username) }} \
    | {{ tweet_text | split(' ') | list }} | {{ monitor_name }} | {{ author_username }}";

fn config(kind: &str, template: &str) -> Config {
    let endpoint = match kind {
        "telegram" => {
            "bot_token = \"987654321:AAF3kq8ZrXw9Vb2mNc7LpTGTESTSECRET\"\nchat_id = -1001234567890"
        }
        _ => "url = \"https://example.com/hook\"",
    };
    let toml = format!("[targets.t]\ntype = \"{kind}\"\n{endpoint}\ntemplate = '''{template}'''\n");
    Config::parse(&toml, Path::new("relay.toml"), &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

fn slack_opts(template: &str) -> SlackOptions {
    match &config("slack", template).targets[0].kind {
        TargetKind::Slack(o) => o.clone(),
        _ => unreachable!(),
    }
}

fn discord_opts(template: &str) -> DiscordOptions {
    match &config("discord", template).targets[0].kind {
        TargetKind::Discord(o) => o.clone(),
        _ => unreachable!(),
    }
}

/// `@word` as a whole word, any case.
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

/// Every text of a Slack payload: no `<`-markup but the links to X the message itself
/// makes (the author, the tweet), every `&` an entity, no plain broadcast word.
fn assert_slack_cannot_ping(p: &Value) {
    let mut texts = vec![p["text"].as_str().unwrap().to_owned()];
    for block in p["blocks"].as_array().unwrap() {
        if let Some(t) = block.pointer("/text/text").and_then(Value::as_str) {
            texts.push(t.to_owned());
        }
    }
    for s in &texts {
        for bad in ["<!", "<@", "<#"] {
            assert!(!s.contains(bad), "{bad} reached Slack: {s}");
        }
        for (i, _) in s.match_indices('<') {
            let inner = &s[i + 1..];
            let link = &inner[..inner.find('>').expect("an unclosed <")];
            assert!(
                link.starts_with("https://x.com/"),
                "a link from the tweet: {link}"
            );
            assert!(!link.contains('<'), "a nested < in {link}");
        }
        for (i, _) in s.match_indices('&') {
            assert!(
                ["&amp;", "&lt;", "&gt;"]
                    .iter()
                    .any(|e| s[i..].starts_with(e)),
                "a bare & in {s}"
            );
        }
        assert_eq!(
            plain_broadcast(s, &["here", "channel", "everyone"]),
            None,
            "{s}"
        );
    }
}

#[test]
fn a_slack_template_cannot_make_a_hostile_tweet_ping() {
    let p = slack::payload(&hostile_event(), &slack_opts(EVERY_WAY));
    let text = p["text"].as_str().unwrap();
    assert!(
        text.starts_with("Tweet: &lt;!channel&gt; &lt;!here&gt;"),
        "{text}"
    );
    // The reversed `>ereh!<` is escaped after the filter ran.
    assert!(text.contains("&lt;!here&gt;"), "{text}");
    assert!(
        text.contains("&lt;!CHANNEL&gt;"),
        "upper is escaped too: {text}"
    );
    assert_slack_cannot_ping(&p);
}

#[test]
fn a_slack_templates_literal_markup_is_the_operators_own() {
    let p = slack::payload(
        &hostile_event(),
        &slack_opts("<!here> *{{ author_username }}*: {{ tweet_data.lang }}"),
    );
    assert_eq!(p["text"], "<!here> *@\u{200B}everyone*: &lt;!channel&gt;");
}

#[test]
fn a_discord_template_cannot_make_a_hostile_tweet_ping() {
    let p = discord::payload(&hostile_event(), &discord_opts(EVERY_WAY));
    assert_eq!(p["allowed_mentions"], json!({"parse": []}));
    let content = p["content"].as_str().unwrap();
    assert!(content.starts_with("Tweet: <!channel>"), "{content}");
    assert_eq!(
        plain_broadcast(content, &["everyone", "here"]),
        None,
        "{content}"
    );
    assert!(!content.contains("]("), "a masked link in {content}");
}

fn telegram_opts(template: &str) -> TelegramOptions {
    match &config("telegram", template).targets[0].kind {
        TargetKind::Telegram(o) => o.clone(),
        _ => unreachable!(),
    }
}

fn teams_opts(template: &str) -> TeamsOptions {
    match &config("teams", template).targets[0].kind {
        TargetKind::Teams(o) => o.clone(),
        _ => unreachable!(),
    }
}

#[test]
fn a_telegram_template_cannot_make_a_hostile_tweet_ping_or_add_html() {
    let p = telegram::payload(&hostile_event(), &telegram_opts(EVERY_WAY));
    assert_eq!(p["parse_mode"], "HTML");
    let text = p["text"].as_str().unwrap();
    assert!(text.starts_with("Tweet: &lt;!channel&gt;"), "{text}");
    // The template writes no tag, so none may be in the message.
    assert!(!text.contains('<'), "a tag from a value: {text}");
    for (i, _) in text.match_indices('&') {
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;"]
                .iter()
                .any(|e| text[i..].starts_with(e)),
            "a bare & in {text}"
        );
    }
    for (i, _) in text.match_indices('@') {
        let next = text[i + 1..].bytes().next();
        assert!(
            !next.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "a mention in {text}"
        );
    }
}

#[test]
fn a_teams_template_cannot_make_a_hostile_tweet_into_markdown() {
    let p = teams::payload(&hostile_event(), &teams_opts(EVERY_WAY));
    let card = &p["attachments"][0]["content"];
    assert!(
        card.pointer("/msteams/entities").is_none(),
        "no mention entities: {card}"
    );
    let text = card["body"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "TextBlock")
        .and_then(|b| b["text"].as_str())
        .expect("the template's TextBlock")
        .to_owned();
    assert!(text.starts_with("Tweet: \\<\\!channel\\>"), "{text}");
    // Every markdown character in it came from a value, and is backslash-escaped.
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if matches!(
            c,
            '[' | ']' | '(' | ')' | '<' | '>' | '*' | '_' | '`' | '~' | '#' | '!'
        ) {
            assert!(
                i > 0 && chars[i - 1] == '\\',
                "an unescaped {c:?} in {text}"
            );
        }
    }
}

#[test]
fn a_template_that_fails_on_an_event_sends_the_default_message() {
    // A loop over a number is a render error on this event only.
    let opts = slack_opts("{% for x in latency_ms %}{{ x }}{% endfor %}");
    let p = slack::payload(&hostile_event(), &opts);
    let default = slack::payload(&hostile_event(), &SlackOptions::default());
    assert_eq!(p, default);
    let opts = discord_opts("{% for x in latency_ms %}{{ x }}{% endfor %}");
    let p = discord::payload(&hostile_event(), &opts);
    assert!(
        p.get("content").is_none(),
        "no content, the embed as usual: {p}"
    );
    assert_eq!(
        p["embeds"],
        discord::payload(&hostile_event(), &DiscordOptions::default())["embeds"]
    );
}

#[test]
fn the_older_form_is_unchanged() {
    let p = slack::payload(
        &hostile_event(),
        &slack_opts("{author_username}: {tweet_text}"),
    );
    assert!(
        p["text"]
            .as_str()
            .unwrap()
            .starts_with("@\u{200B}everyone: &lt;!channel&gt;"),
        "{}",
        p["text"]
    );
}

// ---------------------------------------------------------------------------------------
// body_template through the binary
// ---------------------------------------------------------------------------------------

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn a_body_template_is_what_the_http_target_receives_signed_with_its_content_type() {
    let stream = StreamServer::start().await;
    let (json_hook, text_hook) = (Receiver::start().await, Receiver::start().await);
    let body = r#"{"text": "{{ tweet_text }}", "by": {{ author_username | tojson }}, "lang": {{ tweet_data.lang | default("?") | tojson }}, "followers": {{ tweet_data.author.followers_count | default(0) }}, "data": {{ tweet_data | tojson }}}"#;
    let cfg = RelayConfig::new(&stream)
        .http_target(
            "json",
            &json_hook,
            &format!("concurrency = 1\nsigning_secret = \"{SECRET}\"\nbody_template = '''{body}'''"),
        )
        .http_target(
            "text",
            &text_hook,
            "concurrency = 1\ncontent_type = \"text/plain; charset=utf-8\"\nbody_template = \"{{ author_username }} wrote: {{ tweet_text }}\"",
        )
        .route(route("all").targets(&["json", "text"]));
    let _relay = Relay::start_connected(&cfg, &stream).await;

    let mut event = tweet_event("8001");
    let hostile = "\"}, \"admin\": true, \"x\": {\"y\": \"\\";
    event["tweet_text"] = hostile.into();
    event["tweet_data"] = json!({"lang": "en", "author": {"followers_count": 1200}});
    stream.send_event(&event);

    let req = &json_hook.wait_for_requests(1, DEADLINE).await[0];
    assert_eq!(req.header("content-type"), Some("application/json"));
    verify_webhook_signature(req, SECRET).expect("the signature covers the rendered body");
    assert_eq!(
        req.json(),
        json!({
            "text": hostile,
            "by": "elonmusk",
            "lang": "en",
            "followers": 1200,
            "data": {"lang": "en", "author": {"followers_count": 1200}},
        })
    );

    let req = &text_hook.wait_for_requests(1, DEADLINE).await[0];
    assert_eq!(
        req.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(req.body_str(), format!("elonmusk wrote: {hostile}"));
}

#[tokio::test]
async fn a_body_that_is_not_valid_json_is_dead_lettered_once_with_the_reason() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    // Without `tojson` or a default, a missing number leaves `"n": }`.
    let cfg = RelayConfig::new(&stream)
        .http_target(
            "hook",
            &hook,
            "concurrency = 1\nbody_template = '{\"id\": \"{{ tweet_id }}\", \"n\": {{ latency_ms }}}'",
        )
        .route(route("all").targets(&["hook"]));
    let relay = Relay::start_connected(&cfg, &stream).await;

    let mut broken = tweet_event("8101");
    broken.as_object_mut().unwrap().remove("latency_ms");
    stream.send_event(&broken);
    stream.send_event(&tweet_event("8102"));

    let reqs = hook.wait_for_requests(1, DEADLINE).await;
    assert_eq!(reqs[0].json(), json!({"id": "8102", "n": 150}));
    let line = relay
        .wait_for_log_matching("the dead letter of 8101", DEADLINE, |l| {
            l.contains("\"level\":\"ERROR\"") && l.contains("did not render valid JSON")
        })
        .await;
    assert!(
        line.contains("tojson"),
        "the advice is in the reason: {line}"
    );
    // The worker took 8102 after burying 8101: nothing of 8101 was ever sent or retried.
    assert_eq!(hook.requests().len(), 1, "{:?}", hook.bodies());
}

// ---------------------------------------------------------------------------------------
// `route` shows what each template renders
// ---------------------------------------------------------------------------------------

#[test]
fn route_shows_each_rendered_message_and_what_cannot_be_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("badger-relay.toml");
    std::fs::write(
        &path,
        r#"
[targets.chat]
type = "slack"
url = "https://hooks.slack.com/services/T0/B0/SECRETTOKEN"
template = "*{{ author_username | upper }}* in {{ tweet_data.lang | default('?') }}: {{ tweet_text }}"

[targets.broken-chat]
type = "discord"
url = "https://discord.com/api/webhooks/1/SECRETTOKEN"
template = "{% for x in latency_ms %}{{ x }}{% endfor %}"

[targets.body]
type = "http"
url = "https://example.com/hook"
content_type = "text/plain"
body_template = "{{ author_username }}: {{ tweet_text }}"

[targets.bad-json]
type = "http"
url = "https://example.com/other"
body_template = '{"n": {{ missing }}}'

[[routes]]
targets = ["chat", "broken-chat", "body", "bad-json"]
"#,
    )
    .unwrap();
    let event = r#"{"event":"tweet.detected","tweet_id":"5","author_username":"sama","tweet_text":"hi <!here>","latency_ms":3,"tweet_data":{"lang":"en"}}"#;
    let out = cli(&["route", "-c", path.to_str().unwrap()])
        .stdin(event)
        .run(DEADLINE);
    out.assert_code(0).assert_free_of("SECRETTOKEN");
    let stdout = &out.stdout;
    assert!(
        stdout.contains(r#""text":"*SAMA* in en: hi &lt;!here&gt;""#),
        "the Slack text as rendered:\n{stdout}"
    );
    assert!(
        stdout.contains("(the template failed on this event: "),
        "why Discord gets the default message:\n{stdout}"
    );
    assert!(
        stdout.contains("content-type: text/plain\nsama: hi <!here>\n"),
        "the http body as rendered, with its type:\n{stdout}"
    );
    assert!(
        stdout.contains("--- bad-json (http): cannot render the event for this target: the body_template did not render valid JSON"),
        "{stdout}"
    );
}
