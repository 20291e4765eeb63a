//! Slack incoming webhooks: the message for one event, and what Slack's refusals mean.
//!
//! The message is a plain `text` (what notifications and screen readers show) plus Block
//! Kit `blocks` (what the channel shows):
//!
//! ```text
//! section   *@author*            linked to https://x.com/author
//! section   the tweet text       (or the rendered template)
//! context   Open on X · Monitor: *name* (or Rule: *tag*) · Detected in 150 ms
//! ```
//!
//! A tweet is hostile input. Slack reads `&`, `<` and `>` as control characters, so every
//! tweet-derived string is escaped before it goes near mrkdwn: a tweet saying
//! `<!channel>` shows those characters and pings no one. Text is cut to Slack's limits
//! (3,000 characters for every text object, 40,000 for `text`) without splitting an
//! escape such as `&amp;` or a `<url|label>` link.
//!
//! `unfurl_links` and `unfurl_media` are always sent (false unless the target turns them
//! on): the message already shows the tweet, and Slack's unfurled X card would repeat it.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use super::chat::{Tweet, close_bidi, defuse_at_words, then, truncate_chars};
use super::template;
use crate::config::SlackOptions;

/// Slack's maximum for the text of any Block Kit text object (section, context element).
const TEXT_OBJECT_MAX: usize = 3_000;
/// Slack truncates a message's top-level `text` beyond this.
const TEXT_MAX: usize = 40_000;
/// Longer author names or monitor names are cut before escaping: nothing shown in a
/// header line needs more, and it keeps those lines far below [`TEXT_OBJECT_MAX`].
const NAME_MAX: usize = 256;
/// Shown when a tweet has no text (a bare retweet, media only). Slack rejects an empty
/// section text.
const NO_TEXT: &str = "_(no text)_";

/// The words Slack may turn into channel-wide notifications when they appear as plain
/// text (`verbatim` is false by default, and Slack then parses "certain mentions").
const BROADCASTS: &[&str] = &["channel", "here", "everyone"];

/// `&`, `<` and `>` as the HTML entities Slack expects, and nothing else escaped (Slack
/// decodes only these three).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// What every tweet-derived string becomes before it enters a Slack text: escaped, with
/// `@here`/`@channel`/`@everyone` defused by a zero-width space (in case Slack's
/// automatic parsing would take the bare words for a broadcast), and with any bidi
/// override it opens closed again.
fn safe(s: &str) -> Cow<'_, str> {
    then(then(close_bidi(s), escape), |s| {
        defuse_at_words(s, BROADCASTS)
    })
}

/// `s` (already mrkdwn) cut to `max` characters with an ellipsis, never inside an
/// entity (`&amp;` stays whole or goes) nor inside a `<...>` link or mention written by
/// the operator in a template.
fn truncate_mrkdwn(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max || s.chars().count() <= max || max == 0 {
        return truncate_chars(s, max);
    }
    let mut idx = super::chat::cut_index(s, max - 1);
    loop {
        let kept = &s[..idx];
        // An opened `<` whose `>` was cut off: drop the whole link.
        if let Some(lt) = kept.rfind('<')
            && !kept[lt..].contains('>')
            && s[lt..].contains('>')
        {
            idx = lt;
            continue;
        }
        // A cut through `&amp;`, `&lt;` or `&gt;`: drop the whole entity.
        if let Some(amp) = kept.rfind('&') {
            let tail = &kept[amp..];
            if ["&amp;", "&lt;", "&gt;"]
                .iter()
                .any(|e| e.len() > tail.len() && e.starts_with(tail))
            {
                idx = amp;
                continue;
            }
        }
        break;
    }
    let mut out = String::with_capacity(idx + 3);
    out.push_str(s[..idx].trim_end());
    out.push(super::chat::ELLIPSIS);
    Cow::Owned(out)
}

/// A URL as the target of a `<url|label>` link: `|` would end the URL early, so it is
/// percent-encoded; `&` is escaped like any text (Slack decodes it). `<`, `>` and spaces
/// never survive URL parsing unencoded.
fn link_target(url: &reqwest::Url) -> String {
    escape(&url.as_str().replace('|', "%7C")).into_owned()
}

/// A Block Kit `mrkdwn` text object, cut to [`TEXT_OBJECT_MAX`]: every text object of
/// the message is made here, so none can exceed Slack's limit (Slack rejects the whole
/// message with `invalid_blocks` if one does).
fn mrkdwn(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": truncate_mrkdwn(text, TEXT_OBJECT_MAX)})
}

/// The "Open on X" link, to the tweet's own URL when the link fits in a text object,
/// else to its short status URL. A URL cannot be cut without breaking it, so when
/// neither fits (no tweet id, a name that long) there is no link.
fn open_on_x(tweet: &Tweet) -> Option<String> {
    [&tweet.url, &tweet.status_url]
        .into_iter()
        .flatten()
        .map(|url| format!("<{}|Open on X>", link_target(url)))
        .find(|link| link.chars().count() <= TEXT_OBJECT_MAX)
}

/// The incoming-webhook body for `event`.
///
/// With a `template`, its rendered text (values escaped, literal text as written)
/// replaces both the `text` fallback and the tweet text section; a template that renders
/// to nothing but whitespace falls back to the default message.
pub fn payload(event: &Map<String, Value>, opts: &SlackOptions) -> Value {
    let tweet = Tweet::from_event(event);
    let rendered = template::message(opts.template.as_ref(), event, safe);

    // The `@` goes on before escaping, so an author named `here` cannot make `@here`.
    let author = tweet
        .author
        .map(|a| safe(&format!("@{}", truncate_chars(a, NAME_MAX))).into_owned());
    let source = tweet.source.as_ref().map(|s| {
        let name = safe(&truncate_chars(s.name(), NAME_MAX)).into_owned();
        (s.kind(), name)
    });
    let tweet_text = tweet.text.map(safe);

    let (fallback, body) = match &rendered {
        Some(r) => (r.clone(), r.clone()),
        None => {
            let who = author.as_deref().unwrap_or("New tweet");
            let from = source
                .as_ref()
                .map_or(String::new(), |(_, name)| format!(" ({name})"));
            let text = tweet_text.as_deref().unwrap_or("(no text)");
            (
                format!("{who}{from}: {text}"),
                tweet_text.as_deref().unwrap_or(NO_TEXT).to_owned(),
            )
        }
    };

    let mut blocks = Vec::new();
    if let Some(author) = &author {
        let line = match &tweet.profile_url {
            Some(url) => format!("*<{}|{author}>*", link_target(url)),
            None => format!("*{author}*"),
        };
        blocks.push(json!({"type": "section", "text": mrkdwn(&line)}));
    }
    blocks.push(json!({"type": "section", "text": mrkdwn(&body)}));

    let mut context = Vec::new();
    if let Some(link) = open_on_x(&tweet) {
        context.push(mrkdwn(&link));
    }
    if let Some((kind, name)) = &source {
        context.push(mrkdwn(&format!("{kind}: *{name}*")));
    }
    if let Some(latency) = &tweet.latency {
        context.push(mrkdwn(&format!("Detected in {latency}")));
    }
    if !context.is_empty() {
        blocks.push(json!({"type": "context", "elements": context}));
    }

    message(&fallback, blocks, opts)
}

/// The incoming-webhook body listing several tweets in one message (see
/// [`super::digest`]):
///
/// ```text
/// section   *3 new tweets*
/// section   *@author*: the tweet text, cut · <url|Open on X>     (one per tweet)
/// context   …and 7 more                                          (a long stale fold)
/// ```
pub(crate) fn digest_payload(
    heading: super::digest::Heading,
    events: &[Map<String, Value>],
    opts: &SlackOptions,
) -> Value {
    let title = heading.text(events.len());
    let mut blocks = vec![json!({"type": "section", "text": mrkdwn(&format!("*{title}*"))})];
    let mut authors = Vec::new();
    for event in events.iter().take(super::digest::LISTED_MAX) {
        let tweet = Tweet::from_event(event);
        let author = tweet
            .author
            .map(|a| safe(&format!("@{}", truncate_chars(a, NAME_MAX))).into_owned());
        let text = tweet
            .text
            .map(|t| safe(&truncate_chars(t, super::digest::ITEM_TEXT_MAX)).into_owned());
        let mut line = match (&author, &text) {
            (Some(a), Some(t)) => format!("*{a}*: {t}"),
            (Some(a), None) => format!("*{a}*"),
            (None, Some(t)) => t.clone(),
            (None, None) => NO_TEXT.to_owned(),
        };
        if let Some(link) = open_on_x(&tweet) {
            line.push_str(" · ");
            line.push_str(&link);
        }
        if let Some(a) = author
            && !authors.contains(&a)
        {
            authors.push(a);
        }
        blocks.push(json!({"type": "section", "text": mrkdwn(&line)}));
    }
    if let Some(rest) = super::digest::rest(events.len()) {
        blocks.push(json!({"type": "context", "elements": [mrkdwn(&rest)]}));
    }
    let fallback = if authors.is_empty() {
        title
    } else {
        format!("{title}: {}", authors.join(", "))
    };
    message(&fallback, blocks, opts)
}

/// A message: its `text` fallback (cut to Slack's limit), its blocks, and the target's
/// own options, the same on every message.
fn message(fallback: &str, blocks: Vec<Value>, opts: &SlackOptions) -> Value {
    let mut body = Map::new();
    body.insert(
        "text".into(),
        truncate_mrkdwn(fallback, TEXT_MAX).into_owned().into(),
    );
    body.insert("blocks".into(), blocks.into());
    for (key, value) in [
        ("username", &opts.username),
        ("icon_emoji", &opts.icon_emoji),
        ("channel", &opts.channel),
    ] {
        if let Some(v) = value {
            body.insert(key.into(), v.clone().into());
        }
    }
    // Always sent, so Slack's own default (links unfurled) never applies: the message
    // already shows the tweet, and an X card under it would show it twice.
    body.insert("unfurl_links".into(), opts.unfurl_links.into());
    body.insert("unfurl_media".into(), opts.unfurl_media.into());
    Value::Object(body)
}

/// Slack's answer: the generic HTTP reading, plus advice for its permanent errors.
pub(crate) fn interpret(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> super::Reply {
    super::Reply {
        advice: diagnose(status, body),
        ..super::Reply::from_status(status, headers)
    }
}

/// For a response Slack will give again however often it is retried, what the operator
/// must change; `None` for success, throttling, server trouble and anything unknown.
///
/// Incoming webhooks answer errors with a short plain-text code (`no_service`), sometimes
/// as JSON `{"error": "..."}` from newer endpoints; both are read.
pub fn diagnose(status: u16, body: &[u8]) -> Option<&'static str> {
    if !(400..500).contains(&status) || matches!(status, 408 | 425 | 429) {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let code = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| text.split_whitespace().next().unwrap_or("").to_owned());
    Some(match code.as_str() {
        "no_service" => {
            "the Slack webhook was revoked or never existed (no_service): create a new incoming webhook and update the target's url"
        }
        "no_service_id" => {
            "the Slack webhook URL is incomplete (no_service_id): copy the whole webhook URL again and update the target's url"
        }
        "invalid_token" => {
            "the Slack webhook URL's token is not valid (invalid_token): copy the webhook URL again, or create a new webhook, and update the target's url"
        }
        "no_team" => {
            "the Slack workspace of this webhook no longer exists (no_team): create a webhook in an existing workspace and update the target's url"
        }
        "team_disabled" => {
            "the Slack workspace of this webhook was disabled (team_disabled): create a webhook in an active workspace and update the target's url"
        }
        "channel_is_archived" => {
            "the webhook's Slack channel is archived (channel_is_archived): unarchive it, or create a webhook for another channel and update the target's url"
        }
        "channel_not_found" => {
            "the Slack channel does not exist or the webhook cannot post there (channel_not_found): fix or remove the target's channel option, or create a new webhook"
        }
        "user_not_found" => {
            "the user named in the target's channel option does not exist in Slack (user_not_found): fix or remove the channel option"
        }
        "action_prohibited" => {
            "the Slack workspace forbids this webhook from posting here (action_prohibited): ask a workspace admin to lift the restriction, or use a webhook for another channel"
        }
        "posting_to_general_channel_denied" => {
            "only admins may post to this Slack channel (posting_to_general_channel_denied): use a webhook for another channel, or ask an admin to allow posting"
        }
        "invalid_blocks" | "invalid_blocks_format" => {
            "Slack rejected the message blocks (invalid_blocks): check the target's template for markup Slack refuses; otherwise report it as a badger-relay bug with the dead letter"
        }
        "invalid_payload"
        | "no_text"
        | "missing_text_or_fallback_or_attachments"
        | "too_many_attachments" => {
            "Slack could not accept the message body (invalid_payload): report it as a badger-relay bug with the dead letter; no configuration change will fix it"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Template, TemplatePart};

    fn event(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_url_too_long_for_a_text_object_is_left_out() {
        let long = format!("https://x.com/a/status/1?q={}", "x".repeat(TEXT_OBJECT_MAX));
        for (url, shown) in [(long, false), ("https://x.com/a/status/1".into(), true)] {
            let p = payload(&event(json!({"tweet_url": url})), &SlackOptions::default());
            let context = p["blocks"].as_array().unwrap().last().unwrap();
            let texts = context["elements"].as_array().map_or(vec![], |e| {
                e.iter()
                    .map(|t| t["text"].as_str().unwrap().to_owned())
                    .collect()
            });
            assert!(texts.iter().all(|t| t.chars().count() <= TEXT_OBJECT_MAX));
            assert_eq!(
                texts.iter().any(|t| t.contains("Open on X")),
                shown,
                "{url}"
            );
        }
    }

    #[test]
    fn escape_only_the_three_control_characters() {
        assert_eq!(
            escape("<!channel> & <@U123> \"q\" 'a' é"),
            "&lt;!channel&gt; &amp; &lt;@U123&gt; \"q\" 'a' é"
        );
        assert!(matches!(escape("plain *bold*"), Cow::Borrowed(_)));
        // Escaping is not idempotent, and must not be: "&amp;" in a tweet is shown as typed.
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn safe_defuses_broadcast_words() {
        assert_eq!(
            safe("@here & @Channel, @everyone!"),
            "@\u{200B}here &amp; @\u{200B}Channel, @\u{200B}everyone!"
        );
    }

    #[test]
    fn mrkdwn_cut_never_splits_an_entity() {
        // For each cut position, the escaped text of a string full of '&' must end in a
        // whole entity or a plain character, and stay within the limit.
        let escaped = escape(&"a&b<c>d".repeat(20)).into_owned();
        for max in 1..80 {
            let cut = truncate_mrkdwn(&escaped, max);
            assert!(cut.chars().count() <= max, "max {max}: {cut}");
            let body = cut.strip_suffix('…').unwrap_or(&cut);
            if let Some(amp) = body.rfind('&') {
                let tail = &body[amp..];
                assert!(
                    tail.starts_with("&amp;")
                        || tail.starts_with("&lt;")
                        || tail.starts_with("&gt;"),
                    "max {max}: split entity in {cut:?}"
                );
            }
        }
    }

    #[test]
    fn mrkdwn_cut_right_before_and_inside_an_entity() {
        // "abc&amp;" is 8 characters; cutting to 6 keeps 5 before the ellipsis, which
        // would end in "&a": the entity goes whole.
        assert_eq!(truncate_mrkdwn("abc&amp;def", 6), "abc…");
        assert_eq!(truncate_mrkdwn("abc&amp;def", 9), "abc&amp;…");
        assert_eq!(truncate_mrkdwn("abc&lt;def", 7), "abc…");
        assert_eq!(truncate_mrkdwn("abc&lt;def", 8), "abc&lt;…");
        // Short enough: untouched.
        assert_eq!(truncate_mrkdwn("abc&amp;", 8), "abc&amp;");
    }

    #[test]
    fn mrkdwn_cut_drops_a_link_it_would_split() {
        let s = "see <https://x.com/a/status/1|the tweet> now";
        assert_eq!(truncate_mrkdwn(s, 20), "see…");
        assert_eq!(
            truncate_mrkdwn(s, 44),
            "see <https://x.com/a/status/1|the tweet> now"
        );
        assert_eq!(
            truncate_mrkdwn(s, 42),
            "see <https://x.com/a/status/1|the tweet>…"
        );
        // An unclosed `<` from a template literal is plain text: cut as usual.
        assert_eq!(truncate_mrkdwn("a < b and more", 8), "a < b a…");
    }

    #[test]
    fn mrkdwn_cut_counts_multibyte_characters() {
        let s = "é".repeat(3_100);
        let cut = truncate_mrkdwn(&s, TEXT_OBJECT_MAX);
        assert_eq!(cut.chars().count(), TEXT_OBJECT_MAX);
        assert!(cut.ends_with("é…"));
    }

    #[test]
    fn link_targets_cannot_break_out() {
        let url = reqwest::Url::parse("https://x.com/a|b?q=1&r=<2>").unwrap();
        assert_eq!(link_target(&url), "https://x.com/a%7Cb?q=1&amp;r=%3C2%3E");
    }

    #[test]
    fn options_are_passed_through() {
        let opts = SlackOptions {
            username: Some("Tweets".into()),
            icon_emoji: Some(":bird:".into()),
            channel: Some("#alerts".into()),
            ..SlackOptions::default()
        };
        let p = payload(&event(json!({"tweet_text": "hi"})), &opts);
        assert_eq!(p["username"], "Tweets");
        assert_eq!(p["icon_emoji"], ":bird:");
        assert_eq!(p["channel"], "#alerts");
        let p = payload(&event(json!({})), &SlackOptions::default());
        assert!(p.get("username").is_none() && p.get("channel").is_none());
    }

    /// Every Block Kit text object of `p`, as text.
    fn text_objects(p: &Value) -> Vec<&str> {
        let mut out = Vec::new();
        for block in p["blocks"].as_array().unwrap() {
            if let Some(t) = block.pointer("/text/text") {
                out.push(t.as_str().unwrap());
            }
            for e in block["elements"].as_array().into_iter().flatten() {
                out.push(e["text"].as_str().unwrap());
            }
        }
        out
    }

    #[test]
    fn every_text_object_is_cut_a_long_tweet_url_included() {
        // A 5,014-character tweet_url made a 5,026-character context element.
        let long_url = format!("https://x.com/a/status/1?{}", "q".repeat(4_989));
        assert_eq!(long_url.len(), 5_014);
        let p = payload(
            &event(
                json!({"tweet_url": long_url, "tweet_id": "1", "author_username": "a",
                          "monitor_name": "m".repeat(5_000), "tweet_text": "&".repeat(5_000)}),
            ),
            &SlackOptions::default(),
        );
        let texts = text_objects(&p);
        assert!(texts.len() >= 4, "{texts:?}");
        for t in &texts {
            assert!(
                t.chars().count() <= TEXT_OBJECT_MAX,
                "{}",
                t.chars().count()
            );
        }
        // The link is not cut (that would break it): it goes to the tweet's short URL.
        assert!(texts.contains(&"<https://x.com/a/status/1|Open on X>"));

        // With no short URL to fall back on, there is no link rather than a broken one.
        let p = payload(
            &event(
                json!({"tweet_url": format!("https://x.com/a?{}", "q".repeat(5_000)),
                          "latency_ms": 5}),
            ),
            &SlackOptions::default(),
        );
        let texts = text_objects(&p);
        assert!(!texts.iter().any(|t| t.contains("Open on X")), "{texts:?}");
        assert!(texts.contains(&"Detected in 5 ms"));
    }

    #[test]
    fn a_tweet_url_that_fits_is_linked_as_it_is() {
        let url = format!("https://x.com/a/status/1?{}", "q".repeat(2_900));
        let p = payload(
            &event(json!({"tweet_url": url, "tweet_id": "1"})),
            &SlackOptions::default(),
        );
        assert!(text_objects(&p).contains(&format!("<{url}|Open on X>").as_str()));
    }

    #[test]
    fn unfurling_is_always_set_and_off_by_default() {
        let p = payload(
            &event(json!({"tweet_text": "hi"})),
            &SlackOptions::default(),
        );
        assert_eq!(p["unfurl_links"], false);
        assert_eq!(p["unfurl_media"], false);
        let opts = SlackOptions {
            unfurl_links: true,
            unfurl_media: true,
            ..SlackOptions::default()
        };
        let p = payload(&event(json!({})), &opts);
        assert_eq!(
            (&p["unfurl_links"], &p["unfurl_media"]),
            (&json!(true), &json!(true))
        );
    }

    #[test]
    fn blank_template_falls_back_to_the_default_message() {
        let opts = SlackOptions {
            template: Some(Template {
                parts: vec![TemplatePart::Field("missing".into())],
            }),
            ..SlackOptions::default()
        };
        let p = payload(&event(json!({"tweet_text": "hello"})), &opts);
        assert_eq!(p["text"], "New tweet: hello");
        assert_eq!(p["blocks"][0]["text"]["text"], "hello");
    }

    #[test]
    fn diagnose_known_permanent_errors() {
        let cases: &[(u16, &[u8], &str)] = &[
            (404, b"no_service", "(no_service)"),
            (400, b"no_service", "(no_service)"),
            (400, b"no_service_id", "(no_service_id)"),
            (403, b"invalid_token", "(invalid_token)"),
            (400, b"invalid_token", "(invalid_token)"),
            (404, b"no_team", "(no_team)"),
            (404, b"team_disabled", "(team_disabled)"),
            (410, b"channel_is_archived", "(channel_is_archived)"),
            (404, b"channel_not_found", "(channel_not_found)"),
            (400, b"user_not_found", "(user_not_found)"),
            (403, b"action_prohibited", "(action_prohibited)"),
            (
                403,
                b"posting_to_general_channel_denied",
                "(posting_to_general_channel_denied)",
            ),
            (400, b"invalid_payload", "(invalid_payload)"),
            (400, b"invalid_blocks", "(invalid_blocks)"),
            (400, b"no_text\n", "(invalid_payload)"),
            (
                400,
                br#"{"ok":false,"error":"invalid_blocks"}"#,
                "(invalid_blocks)",
            ),
        ];
        for &(status, body, needle) in cases {
            let d = diagnose(status, body).unwrap_or_else(|| panic!("{status} {body:?}"));
            assert!(d.contains(needle), "{status} {body:?}: {d}");
            assert!(!d.contains('\n'), "one line: {d}");
        }
    }

    #[test]
    fn diagnose_leaves_transient_and_unknown_responses_alone() {
        assert_eq!(diagnose(200, b"ok"), None);
        assert_eq!(diagnose(429, b"rate_limited"), None);
        assert_eq!(diagnose(500, b"rollup_error"), None);
        assert_eq!(diagnose(503, b"no_service"), None);
        assert_eq!(diagnose(408, b"no_service"), None);
        assert_eq!(diagnose(400, b"something_new"), None);
        assert_eq!(diagnose(404, b""), None);
        assert_eq!(diagnose(404, &[0xff, 0xfe]), None);
    }
}
