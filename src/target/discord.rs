//! Discord webhooks: the execute-webhook body for one event, its URL, and what Discord's
//! refusals mean.
//!
//! The message is one embed:
//!
//! ```text
//! author       @name, linked to https://x.com/name
//! title        "Open on X", linked to the tweet
//! description  the tweet text
//! footer       Monitor: name (or Rule: tag) · detected in 150 ms
//! timestamp    tweet_published_at
//! ```
//!
//! plus `content` when the target has a `template`, `thread_name` when it posts to a
//! forum channel, and `flags` = SUPPRESS_NOTIFICATIONS when it is set to stay quiet.
//! `allowed_mentions` is always
//! `{"parse": []}`: whatever a tweet says (`@everyone`, `<@&role>`), nobody is pinged.
//! Tweet text is otherwise left as written, with two exceptions: a masked link
//! (`[text](url)`) is plain text on X, and on Discord it would hide where a link goes,
//! so its `](` is split by a zero-width space; and a bidi override left open by a tweet
//! is closed at the end of the tweet's text, so it cannot reverse what follows.
//!
//! Limits are Discord's, counted in code points: description 4,096, footer 2,048,
//! author name and title 256, content 2,000, and 6,000 for all embed text together.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::chat::{Tweet, ZWSP, close_bidi, defuse_at_words, then, truncate_chars};
use super::template;
use crate::config::DiscordOptions;

const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4_096;
const FOOTER_MAX: usize = 2_048;
const AUTHOR_NAME_MAX: usize = 256;
const CONTENT_MAX: usize = 2_000;
/// A thread's (forum post's) name.
const THREAD_NAME_MAX: usize = 100;
/// The title of a new forum post when the target's `thread_name` renders to nothing for
/// an event: Discord refuses an empty one.
const THREAD_NAME_FALLBACK: &str = "New tweet";
/// The message flag SUPPRESS_NOTIFICATIONS (1 << 12): posted without push or desktop
/// notifications.
const SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;
/// Title, description, field names and values, footer text and author name, summed over
/// all embeds of a message.
const EMBED_TOTAL_MAX: usize = 6_000;

/// The embed's colour bar: X's blue, so tweets are recognisable at a glance.
const COLOR: u32 = 0x1D_9B_F0;
/// The title, which is what makes the embed's `url` clickable.
const TITLE: &str = "Open on X";
/// Shown when a tweet has no text: Discord rejects an empty embed.
const NO_TEXT: &str = "*(no text)*";

/// A masked link `[label](url)` made inert: `]\u{200B}(` no longer parses as one, and
/// reads the same.
fn defuse_masked_links(s: &str) -> Cow<'_, str> {
    if s.contains("](") {
        Cow::Owned(s.replace("](", &format!("]{ZWSP}(")))
    } else {
        Cow::Borrowed(s)
    }
}

/// Tweet text bound for the embed: masked links defused, bidi overrides closed.
fn tweet_safe(s: &str) -> Cow<'_, str> {
    then(close_bidi(s), defuse_masked_links)
}

/// A template value bound for `content`: as [`tweet_safe`], and with `@everyone`/`@here`
/// split by a zero-width space, so even a copy of the message without
/// `allowed_mentions` (a forward, an edit by a bot) cannot ping.
fn content_safe(s: &str) -> Cow<'_, str> {
    then(tweet_safe(s), |s| defuse_at_words(s, &["everyone", "here"]))
}

/// The execute-webhook body for `event` (send it to [`request_url`]).
pub fn payload(event: &Map<String, Value>, opts: &DiscordOptions) -> Value {
    let tweet = Tweet::from_event(event);
    let mut embed = Map::new();
    // Characters counted against EMBED_TOTAL_MAX so far.
    let mut used = 0;

    if let Some(author) = tweet.author {
        let name = format!("@{}", close_bidi(author));
        let name = truncate_chars(&name, AUTHOR_NAME_MAX).into_owned();
        used += name.chars().count();
        let mut obj = Map::new();
        obj.insert("name".into(), name.into());
        if let Some(url) = &tweet.profile_url {
            obj.insert("url".into(), url.as_str().into());
        }
        embed.insert("author".into(), obj.into());
    }
    if let Some(url) = &tweet.url {
        let title = truncate_chars(TITLE, TITLE_MAX);
        used += title.chars().count();
        embed.insert("title".into(), title.into_owned().into());
        embed.insert("url".into(), url.as_str().into());
    }
    let footer = [
        tweet
            .source
            .as_ref()
            .map(|s| format!("{}: {}", s.kind(), close_bidi(s.name()))),
        tweet.latency.as_ref().map(|l| format!("detected in {l}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ");
    if !footer.is_empty() {
        let footer = truncate_chars(&footer, FOOTER_MAX).into_owned();
        used += footer.chars().count();
        embed.insert("footer".into(), json!({ "text": footer }));
    }
    if let Some(ts) = tweet.published_at {
        embed.insert("timestamp".into(), ts.into());
    }
    embed.insert("color".into(), COLOR.into());

    // The description gets whatever the 6,000 total leaves, up to its own limit. The
    // other parts are bounded (256 + 256 + 2,048), so at least 3,440 remain.
    let budget = DESCRIPTION_MAX.min(EMBED_TOTAL_MAX.saturating_sub(used));
    let text = tweet.text.map_or(Cow::Borrowed(NO_TEXT), tweet_safe);
    embed.insert(
        "description".into(),
        truncate_chars(&text, budget).into_owned().into(),
    );

    let mut body = Map::new();
    if let Some(content) = template::message(opts.template.as_ref(), event, content_safe) {
        body.insert(
            "content".into(),
            truncate_chars(&content, CONTENT_MAX).into_owned().into(),
        );
    }
    sender(&mut body, embed, opts);
    if let Some(t) = &opts.thread_name {
        body.insert("thread_name".into(), thread_name(t, event).into());
    }
    if opts.suppress_notifications {
        body.insert("flags".into(), SUPPRESS_NOTIFICATIONS.into());
    }
    Value::Object(body)
}

/// The execute-webhook body listing several tweets in one embed (see
/// [`super::digest`]): the heading as its title, one line per tweet in the description
/// (`**@author**: text · [Open on X](<url>)`), cut to what the embed limits leave.
pub(crate) fn digest_payload(
    heading: super::digest::Heading,
    events: &[Map<String, Value>],
    opts: &DiscordOptions,
) -> Value {
    let title = truncate_chars(&heading.text(events.len()), TITLE_MAX).into_owned();
    let listed = events.len().clamp(1, super::digest::LISTED_MAX);
    let rest = super::digest::rest(events.len());
    // Each line gets an even share of the description, so the last tweet is not the one
    // cut away; a line over its share is cut, never dropped.
    let budget = DESCRIPTION_MAX
        .min(EMBED_TOTAL_MAX - title.chars().count())
        .saturating_sub(rest.as_ref().map_or(0, |r| r.chars().count() + 2));
    let share = budget / listed - 1;
    let mut lines = Vec::new();
    for event in events.iter().take(super::digest::LISTED_MAX) {
        let tweet = Tweet::from_event(event);
        let mut line = String::new();
        if let Some(author) = tweet.author {
            line.push_str(&format!(
                "**@{}**: ",
                then(tweet_safe(author), escape_markdown)
            ));
        }
        let link = tweet
            .url
            .as_ref()
            .map(|u| format!(" · [Open on X](<{u}>)"))
            .filter(|l| l.chars().count() < share / 2)
            .unwrap_or_default();
        let text = tweet.text.map_or(Cow::Borrowed(NO_TEXT), tweet_safe);
        let room = share.saturating_sub(line.chars().count() + link.chars().count());
        let room = room.min(super::digest::ITEM_TEXT_MAX);
        line.push_str(&truncate_chars(&text.replace('\n', " "), room));
        line.push_str(&link);
        lines.push(truncate_chars(&line, share).into_owned());
    }
    lines.extend(rest);
    let mut embed = Map::new();
    embed.insert("title".into(), title.clone().into());
    embed.insert("description".into(), lines.join("\n").into());
    embed.insert("color".into(), COLOR.into());
    let mut body = Map::new();
    sender(&mut body, embed, opts);
    if opts.thread_name.is_some() {
        // A forum channel needs a title for the post the digest opens.
        body.insert(
            "thread_name".into(),
            truncate_chars(&title, THREAD_NAME_MAX).into_owned().into(),
        );
    }
    if opts.suppress_notifications {
        body.insert("flags".into(), SUPPRESS_NOTIFICATIONS.into());
    }
    Value::Object(body)
}

/// What every message carries besides its text: the one embed, no mentions parsed
/// (nobody is pinged, whatever the embed says), and the target's name and avatar.
fn sender(body: &mut Map<String, Value>, embed: Map<String, Value>, opts: &DiscordOptions) {
    body.insert("embeds".into(), json!([embed]));
    body.insert("allowed_mentions".into(), json!({ "parse": [] }));
    if let Some(username) = &opts.username {
        body.insert("username".into(), username.clone().into());
    }
    if let Some(avatar_url) = &opts.avatar_url {
        body.insert("avatar_url".into(), avatar_url.clone().into());
    }
}

/// A name shown in bold: Discord markdown's own characters escaped, so an X handle
/// such as `__init__` stays a name and cannot end the bold early.
fn escape_markdown(s: &str) -> Cow<'_, str> {
    if !s.contains(['*', '_', '~', '`', '|', '\\']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(c, '*' | '_' | '~' | '`' | '|' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// The title of the forum post a message opens: the target's `thread_name` filled in,
/// on one line (a title has no line breaks), bidi overrides closed, cut to Discord's 100.
/// Titles show no markdown and ping nobody, so nothing else needs defusing.
fn thread_name(t: &crate::config::Template, event: &Map<String, Value>) -> String {
    fn as_is(s: &str) -> Cow<'_, str> {
        Cow::Borrowed(s)
    }
    let rendered = template::render(t, event, as_is);
    let one_line = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return THREAD_NAME_FALLBACK.to_owned();
    }
    // Closed after the lines were joined (a line break no longer ends what it opened)
    // and after the cut, with room kept for the closing characters.
    let cut = truncate_chars(&one_line, THREAD_NAME_MAX);
    let closers = close_bidi(&cut).chars().count() - cut.chars().count();
    let cut = truncate_chars(&one_line, THREAD_NAME_MAX.saturating_sub(closers));
    let name = close_bidi(&cut);
    if name.trim().is_empty() {
        return THREAD_NAME_FALLBACK.to_owned();
    }
    name.into_owned()
}

/// The webhook URL to POST to: `base` with `wait=true` (so Discord answers with the
/// message, or with an error we can act on, instead of a bare 204) and the target's
/// `thread_id`, keeping any other query parameters the operator's URL carries. A `wait`
/// already in `base`, or a `thread_id` when the target sets its own, is replaced.
pub fn request_url(base: &reqwest::Url, opts: &DiscordOptions) -> reqwest::Url {
    let thread_id = opts
        .thread_id
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let replaced = |key: &str| key == "wait" || (thread_id.is_some() && key == "thread_id");
    let mut url = base.clone();
    if url.query_pairs().any(|(k, _)| replaced(&k)) {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !replaced(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("wait", "true");
        if let Some(id) = thread_id {
            query.append_pair("thread_id", id);
        }
    }
    url
}

/// The request: an execute-webhook payload with one embed, to `?wait=true`.
pub(crate) fn render(
    opts: &DiscordOptions,
    url: &reqwest::Url,
    event: &Map<String, Value>,
) -> Result<super::Rendered, super::RenderError> {
    super::post_json(request_url(url, opts), &payload(event, opts))
}

/// Discord's answer: the generic HTTP reading, with the 429 body's precise `retry_after`,
/// a drained rate-limit bucket (`X-RateLimit-Remaining: 0`) holding the target until
/// `X-RateLimit-Reset-After`, a deleted webhook marking the target gone, and advice.
pub(crate) fn interpret(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> super::Reply {
    let mut reply = super::Reply::from_status(status, headers);
    if status == 429
        && let Some(precise) = retry_after_from_body(body)
    {
        reply.wait_at_least(precise);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("x-ratelimit-remaining") == Some("0") {
        let reset = header("x-ratelimit-reset-after")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(3600.0)));
        reply.pause = reply.pause.max(reset);
    }
    reply.gone = !(200..300).contains(&status) && webhook_deleted(status, body);
    reply.advice = diagnose(status, body);
    reply
}

/// The `retry_after` (seconds, fractional) of a Discord 429 body, which is more precise
/// than the `Retry-After` header's whole seconds.
pub fn retry_after_from_body(body: &[u8]) -> Option<Duration> {
    super::body_wait(body, "/retry_after")
}

/// For a response Discord will give again however often it is retried, what the
/// operator must change; `None` for success, throttling, server trouble and anything
/// unknown.
///
/// Discord's error body is `{"code": N, "message": "...", "errors": {...}}`; the code is
/// more specific than the status (a 404 may be the webhook or the thread), so it is
/// read first.
/// Whether the answer says the webhook itself is gone (404 Unknown Webhook, code 10015,
/// or a bare 404), as opposed to a 404 about something else such as a wrong `thread_id`
/// (10003). Only then must the webhook not be called again.
pub fn webhook_deleted(status: u16, body: &[u8]) -> bool {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(Value::as_u64));
    matches!((status, code), (_, Some(10015)) | (404, None | Some(0)))
}

pub fn diagnose(status: u16, body: &[u8]) -> Option<&'static str> {
    if !(400..500).contains(&status) || matches!(status, 408 | 425 | 429) {
        return None;
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let code = json
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_u64);
    let invalid_field = |field: &str| {
        json.as_ref()
            .and_then(|v| v.get("errors"))
            .and_then(|e| e.get(field))
            .is_some()
    };
    Some(match (status, code) {
        (_, Some(10015)) | (404, None | Some(0)) => {
            "the Discord webhook was deleted or never existed (Unknown Webhook, 10015): create a new webhook and update the target's url"
        }
        (_, Some(50027)) | (401, _) => {
            "the Discord webhook token is wrong (Invalid Webhook Token, 50027): copy the whole webhook URL again and update the target's url"
        }
        (_, Some(10003)) => {
            "the target's thread_id names no thread this webhook can post to (Unknown Channel, 10003): fix or remove the target's thread_id"
        }
        (_, Some(50083)) => {
            "the Discord thread is archived (50083): unarchive it, or point the target's thread_id at an open thread"
        }
        (_, Some(160005)) => {
            "the Discord thread is locked (Thread is locked, 160005): unlock it, or point the target's thread_id at another thread"
        }
        (_, Some(220001)) => {
            "the webhook posts to a forum channel, which needs a thread (220001): set the target's thread_id to a post in that forum"
        }
        (_, Some(50001 | 50013)) | (403, _) => {
            "the Discord webhook may not post in this channel or thread (Missing Access): check the channel's permissions and the target's thread_id"
        }
        (_, Some(50035)) if invalid_field("username") => {
            "Discord refused the target's username (Invalid Form Body, 50035): use 1 to 80 characters without \"discord\" or \"clyde\""
        }
        (_, Some(50035)) if invalid_field("thread_id") => {
            "Discord refused the target's thread_id (Invalid Form Body, 50035): use the thread's numeric id"
        }
        (_, Some(50035)) if invalid_field("avatar_url") => {
            "Discord refused the target's avatar_url (Invalid Form Body, 50035): use a public http(s) image URL"
        }
        (_, Some(50035 | 50006 | 50109 | 40005)) | (413, _) => {
            "Discord could not accept the message body (Invalid Form Body): report it as a badger-relay bug with the dead letter; no configuration change will fix it"
        }
        (_, Some(200000 | 240000)) => {
            "Discord's moderation blocked this tweet's content (AutoMod or harmful-link filter): nothing to change in badger-relay; adjust the server's AutoMod rules if the tweet should pass"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    fn thread(id: &str) -> DiscordOptions {
        DiscordOptions {
            thread_id: Some(id.into()),
            ..DiscordOptions::default()
        }
    }

    #[test]
    fn request_url_adds_wait() {
        let base = url("https://discord.com/api/webhooks/1/tok");
        assert_eq!(
            request_url(&base, &DiscordOptions::default()).as_str(),
            "https://discord.com/api/webhooks/1/tok?wait=true"
        );
    }

    #[test]
    fn request_url_adds_thread_id() {
        let base = url("https://discord.com/api/webhooks/1/tok");
        assert_eq!(
            request_url(&base, &thread("987")).as_str(),
            "https://discord.com/api/webhooks/1/tok?wait=true&thread_id=987"
        );
        // Blank means unset.
        assert_eq!(
            request_url(&base, &thread("  ")).as_str(),
            "https://discord.com/api/webhooks/1/tok?wait=true"
        );
    }

    #[test]
    fn request_url_keeps_other_query_parameters() {
        let base = url("https://discord.com/api/webhooks/1/tok?with_components=true");
        assert_eq!(
            request_url(&base, &thread("5")).as_str(),
            "https://discord.com/api/webhooks/1/tok?with_components=true&wait=true&thread_id=5"
        );
    }

    #[test]
    fn request_url_replaces_wait_and_a_configured_thread() {
        let base = url("https://discord.com/api/webhooks/1/tok?wait=false&thread_id=1&x=y");
        assert_eq!(
            request_url(&base, &thread("2")).as_str(),
            "https://discord.com/api/webhooks/1/tok?x=y&wait=true&thread_id=2"
        );
        // Without a thread_id option, the URL's own thread_id stays.
        assert_eq!(
            request_url(&base, &DiscordOptions::default()).as_str(),
            "https://discord.com/api/webhooks/1/tok?thread_id=1&x=y&wait=true"
        );
    }

    #[test]
    fn request_url_encodes_the_thread_id() {
        let base = url("https://discord.com/api/webhooks/1/tok");
        assert_eq!(
            request_url(&base, &thread("1&wait=false")).as_str(),
            "https://discord.com/api/webhooks/1/tok?wait=true&thread_id=1%26wait%3Dfalse"
        );
    }

    #[test]
    fn retry_after_reads_fractional_seconds() {
        let body =
            br#"{"message": "You are being rate limited.", "retry_after": 0.622, "global": false}"#;
        assert_eq!(
            retry_after_from_body(body),
            Some(Duration::from_secs_f64(0.622))
        );
        assert_eq!(
            retry_after_from_body(br#"{"retry_after": 3}"#),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn retry_after_ignores_anything_else() {
        for body in [
            &b""[..],
            b"not json",
            b"[]",
            br#"{"retry_after": "1.5"}"#,
            br#"{"retry_after": -1}"#,
            br#"{"retry_after": null}"#,
            br#"{"message": "x"}"#,
        ] {
            assert_eq!(retry_after_from_body(body), None, "{body:?}");
        }
    }

    #[test]
    fn a_huge_retry_after_is_capped_at_a_day() {
        assert_eq!(
            retry_after_from_body(br#"{"retry_after": 1e30}"#),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn only_an_unknown_webhook_counts_as_deleted() {
        assert!(webhook_deleted(
            404,
            br#"{"message": "Unknown Webhook", "code": 10015}"#
        ));
        assert!(webhook_deleted(404, b""));
        assert!(webhook_deleted(404, b"<html>not found</html>"));
        assert!(!webhook_deleted(
            404,
            br#"{"message": "Unknown Channel", "code": 10003}"#
        ));
        assert!(!webhook_deleted(400, br#"{"code": 50035}"#));
        assert!(!webhook_deleted(200, b"{}"));
    }

    #[test]
    fn diagnose_known_permanent_errors() {
        let cases: &[(u16, &[u8], &str)] = &[
            (404, br#"{"message": "Unknown Webhook", "code": 10015}"#, "10015"),
            (404, b"", "10015"),
            (404, br#"{"message": "404: Not Found", "code": 0}"#, "10015"),
            (401, br#"{"message": "Invalid Webhook Token", "code": 50027}"#, "50027"),
            (401, b"", "50027"),
            (404, br#"{"message": "Unknown Channel", "code": 10003}"#, "10003"),
            (400, br#"{"message": "Thread is archived", "code": 50083}"#, "50083"),
            (403, br#"{"message": "Thread is locked", "code": 160005}"#, "160005"),
            (400, br#"{"code": 220001, "message": "forum"}"#, "220001"),
            (403, br#"{"message": "Missing Access", "code": 50001}"#, "Missing Access"),
            (
                400,
                br#"{"code": 50035, "errors": {"username": {"_errors": [{"code": "USERNAME_INVALID_CONTAINS"}]}}, "message": "Invalid Form Body"}"#,
                "username",
            ),
            (
                400,
                br#"{"code": 50035, "errors": {"avatar_url": {}}, "message": "Invalid Form Body"}"#,
                "avatar_url",
            ),
            (
                400,
                br#"{"code": 50035, "errors": {"thread_id": {"_errors": [{"code": "NUMBER_TYPE_COERCE"}]}}, "message": "Invalid Form Body"}"#,
                "thread_id",
            ),
            (
                400,
                br#"{"code": 50035, "errors": {"embeds": {}}, "message": "Invalid Form Body"}"#,
                "bug",
            ),
            (400, br#"{"code": 50006, "message": "Cannot send an empty message"}"#, "bug"),
            (413, b"", "bug"),
            (400, br#"{"code": 240000, "message": "blocked"}"#, "moderation"),
        ];
        for &(status, body, needle) in cases {
            let d = diagnose(status, body)
                .unwrap_or_else(|| panic!("{status} {}", String::from_utf8_lossy(body)));
            assert!(d.contains(needle), "{status}: {d}");
            assert!(!d.contains('\n'), "one line: {d}");
        }
    }

    #[test]
    fn diagnose_leaves_transient_and_unknown_responses_alone() {
        assert_eq!(diagnose(200, b"{}"), None);
        assert_eq!(diagnose(204, b""), None);
        assert_eq!(
            diagnose(
                429,
                br#"{"retry_after": 1.0, "code": 0, "message": "rate limited"}"#
            ),
            None
        );
        assert_eq!(diagnose(500, b""), None);
        assert_eq!(diagnose(502, br#"{"code": 10015}"#), None);
        assert_eq!(
            diagnose(400, br#"{"code": 12345678, "message": "new"}"#),
            None
        );
        assert_eq!(diagnose(400, b"<html>bad request</html>"), None);
    }

    #[test]
    fn footer_is_not_reversed_by_an_open_override_in_a_name() {
        let event = serde_json::json!({"monitor_name": "abc\u{202E}", "latency_ms": 5});
        let p = payload(event.as_object().unwrap(), &DiscordOptions::default());
        assert_eq!(
            p["embeds"][0]["footer"]["text"],
            "Monitor: abc\u{202E}\u{202C} · detected in 5 ms"
        );
    }

    #[test]
    fn masked_links_are_defused() {
        assert_eq!(
            defuse_masked_links("[https://x.com](https://evil.example)"),
            "[https://x.com]\u{200B}(https://evil.example)"
        );
        assert!(matches!(defuse_masked_links("[a] (b)"), Cow::Borrowed(_)));
    }

    #[test]
    fn content_values_cannot_ping_even_without_allowed_mentions() {
        assert_eq!(
            content_safe("@everyone look [here](https://e.x) @here"),
            "@\u{200B}everyone look [here]\u{200B}(https://e.x) @\u{200B}here"
        );
    }

    fn name_template(text: &str) -> crate::config::Template {
        use crate::config::{Template, TemplatePart};
        let parts = match text.split_once("{author_username}") {
            Some((a, b)) => vec![
                TemplatePart::Literal(a.into()),
                TemplatePart::Field("author_username".into()),
                TemplatePart::Literal(b.into()),
            ],
            None => vec![TemplatePart::Literal(text.into())],
        };
        Template { parts }
    }

    #[test]
    fn thread_name_opens_a_forum_post_titled_from_the_event() {
        let opts = DiscordOptions {
            thread_name: Some(name_template("Tweet by @{author_username}")),
            ..DiscordOptions::default()
        };
        let p = payload(
            serde_json::json!({"author_username": "sama"})
                .as_object()
                .unwrap(),
            &opts,
        );
        assert_eq!(p["thread_name"], "Tweet by @sama");
        // One line, an override closed, cut to 100, never empty.
        let event = serde_json::json!({"author_username": "a\nb \u{202E}c"});
        let p = payload(event.as_object().unwrap(), &opts);
        assert_eq!(p["thread_name"], "Tweet by @a b \u{202E}c\u{202C}");
        let event = serde_json::json!({"author_username": "x".repeat(300)});
        let name = payload(event.as_object().unwrap(), &opts)["thread_name"].clone();
        assert_eq!(name.as_str().unwrap().chars().count(), THREAD_NAME_MAX);
        let opts = DiscordOptions {
            thread_name: Some(name_template("{author_username}")),
            ..DiscordOptions::default()
        };
        assert_eq!(
            payload(&Map::new(), &opts)["thread_name"],
            THREAD_NAME_FALLBACK
        );
        // Without the option, no thread_name at all.
        assert!(
            payload(&Map::new(), &DiscordOptions::default())
                .get("thread_name")
                .is_none()
        );
    }

    #[test]
    fn suppress_notifications_sets_the_flag() {
        let opts = DiscordOptions {
            suppress_notifications: true,
            ..DiscordOptions::default()
        };
        assert_eq!(payload(&Map::new(), &opts)["flags"], 4096);
        assert!(
            payload(&Map::new(), &DiscordOptions::default())
                .get("flags")
                .is_none()
        );
    }

    #[test]
    fn embed_always_has_a_description_and_allowed_mentions() {
        let p = payload(&Map::new(), &DiscordOptions::default());
        assert_eq!(p["embeds"][0]["description"], NO_TEXT);
        assert_eq!(p["allowed_mentions"], json!({"parse": []}));
        assert!(p.get("content").is_none());
    }
}
