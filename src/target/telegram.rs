//! Telegram bots: the `sendMessage` call for one event, and what the Bot API's refusals
//! mean.
//!
//! The message is Telegram HTML (`parse_mode = "HTML"`):
//!
//! ```text
//! <b><a href="https://x.com/author">@author</a></b> · Monitor: name
//! the tweet text                       (or the rendered template)
//!
//! <a href="https://x.com/…/status/…">Open on X</a> · Detected in 150 ms
//! ```
//!
//! A tweet is hostile input. Telegram reads `<`, `>` and `&` as markup, so every
//! tweet-derived string is escaped: a tweet saying `<a href="tg://user?id=1">` shows those
//! characters. Telegram turns a plain `@name` into a mention, which notifies that user
//! when they are in the chat, so every `@` before a name in a tweet-derived string gets a
//! zero-width space after it: it reads the same and mentions nobody.
//!
//! Telegram's limit is 4,096 characters of text *after* the HTML is parsed, counted in
//! UTF-16 code units (its entity offsets are); the message is cut to that, never inside a
//! tag or an entity, and tags left open by the cut are closed again.
//!
//! The bot token is part of the URL, which is a secret (`https://api.telegram.org/bot***`).

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::chat::{Tweet, ZWSP, close_bidi, then, truncate_chars};
use super::template;
use crate::config::{ChatId, TelegramOptions};

/// `sendMessage`'s limit on `text` after entity parsing, in UTF-16 code units.
pub const TEXT_MAX: usize = 4_096;
/// Author and monitor names are cut to this before escaping.
const NAME_MAX: usize = 128;
/// Shown when a tweet has no text.
const NO_TEXT: &str = "<i>(no text)</i>";
/// Room kept for the bidi controls [`close_bidi`] may append after a cut.
const BIDI_RESERVE: usize = 8;

/// `&`, `<`, `>` and `"` as HTML entities: the three Telegram requires, and `"` so a value
/// is as safe inside an attribute as in text. Telegram decodes all four.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` with a zero-width space after every `@` that starts a name (`@` followed by a
/// letter, digit or `_`), so Telegram makes no mention of it.
pub fn defuse_mentions(s: &str) -> Cow<'_, str> {
    let starts_name = |i: usize| {
        s.as_bytes()
            .get(i + 1)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if !s.match_indices('@').any(|(i, _)| starts_name(i)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut from = 0;
    for (at, _) in s.match_indices('@').filter(|&(i, _)| starts_name(i)) {
        out.push_str(&s[from..=at]);
        out.push(ZWSP);
        from = at + 1;
    }
    out.push_str(&s[from..]);
    Cow::Owned(out)
}

/// Rendered template HTML with every mention in its text defused, the operator's own
/// included: a literal `@` followed by a value (`@{{ author_username }}`) would otherwise
/// mention whoever has that name. Tags are left alone, so a deliberate
/// `<a href="tg://user?id=…">` still notifies that one user.
fn defuse_outside_tags(html: &str) -> Cow<'_, str> {
    if !html.contains('@') {
        return Cow::Borrowed(html);
    }
    let mut out = String::with_capacity(html.len() + 8);
    let mut rest = html;
    while !rest.is_empty() {
        let text_end = rest.find('<').unwrap_or(rest.len());
        out.push_str(&defuse_mentions(&rest[..text_end]));
        rest = &rest[text_end..];
        let tag_end = rest.find('>').map_or(rest.len(), |i| i + 1);
        out.push_str(&rest[..tag_end]);
        rest = &rest[tag_end..];
    }
    Cow::Owned(out)
}

/// A template's value: bidi overrides closed, HTML-escaped. Its mentions are defused by
/// [`defuse_outside_tags`] on the rendered text as a whole (the layout's strings go
/// through [`safe_cut`], which does all three).
fn template_value(s: &str) -> Cow<'_, str> {
    then(close_bidi(s), escape)
}

/// How long `s` is for Telegram's limit: UTF-16 code units.
fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Plain (not yet escaped) text cut to `max` UTF-16 code units, "…" included.
fn truncate_utf16(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max || utf16_len(s) <= max {
        return Cow::Borrowed(s);
    }
    // The most characters whose UTF-16 length, with the one-unit ellipsis, fits.
    let mut units = 0;
    let keep = s
        .chars()
        .take_while(|c| {
            units += c.len_utf16();
            units < max
        })
        .count();
    truncate_chars(s, keep + 1)
}

/// A tweet-derived string for the message: defused, cut to `max` UTF-16 units of what
/// Telegram will show, bidi closed, escaped.
fn safe_cut(s: &str, max: usize) -> String {
    let defused = defuse_mentions(s);
    let cut = truncate_utf16(&defused, max.saturating_sub(BIDI_RESERVE));
    escape(&close_bidi(&cut)).into_owned()
}

/// Telegram HTML cut to `max` UTF-16 units of visible text, with "…" where it was cut:
/// never inside a tag or an entity, and every tag open at the cut closed after it. This
/// is what keeps an operator's template (whose tags are its own) within the limit.
pub fn truncate_html(s: &str, max: usize) -> Cow<'_, str> {
    if visible_len(s) <= max {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut open: Vec<&str> = Vec::new();
    let mut shown = 0;
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '<'
            && let Some(end) = rest.find('>')
        {
            let tag = &rest[..=end];
            let name = tag_name(tag);
            if tag.starts_with("</") {
                if let Some(pos) = open.iter().rposition(|t| *t == name) {
                    open.truncate(pos);
                }
            } else if !tag.ends_with("/>") && !name.is_empty() {
                open.push(name);
            }
            out.push_str(tag);
            rest = &rest[end + 1..];
            continue;
        }
        let (piece, width) = match rest.find(';').filter(|_| c == '&') {
            Some(end) if end <= 10 => (&rest[..=end], 1),
            _ => (&rest[..c.len_utf8()], c.len_utf16()),
        };
        if shown + width > max.saturating_sub(1) {
            break;
        }
        shown += width;
        out.push_str(piece);
        rest = &rest[piece.len()..];
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push(super::chat::ELLIPSIS);
    for name in open.iter().rev() {
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
    Cow::Owned(out)
}

/// `<a href="…">` → `a`, `</b>` → `b`.
fn tag_name(tag: &str) -> &str {
    let inner = tag.trim_start_matches('<').trim_start_matches('/');
    let end = inner
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '-')
        .unwrap_or(inner.len());
    &inner[..end]
}

/// The UTF-16 length of what Telegram shows of HTML: tags count nothing, an entity one.
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '<'
            && let Some(end) = rest.find('>')
        {
            rest = &rest[end + 1..];
            continue;
        }
        if c == '&'
            && let Some(end) = rest.find(';').filter(|&e| e <= 10)
        {
            n += 1;
            rest = &rest[end + 1..];
            continue;
        }
        n += c.len_utf16();
        rest = &rest[c.len_utf8()..];
    }
    n
}

/// An `<a href>` to a URL the message makes itself (X profile and status links).
fn link(url: &reqwest::Url, label: &str) -> String {
    format!("<a href=\"{}\">{label}</a>", escape(url.as_str()))
}

/// The `sendMessage` body for `event`.
///
/// With a `template`, its rendered text (values escaped and defused, literal text as
/// written) is the whole message; a template that renders to nothing but whitespace
/// falls back to the built-in layout.
pub fn payload(event: &Map<String, Value>, opts: &TelegramOptions) -> Value {
    // Values are escaped here and every mention (the template's own `@` next to a
    // value too) is defused on the whole text below.
    let rendered = template::message(opts.template.as_ref(), event, template_value);
    let text = match rendered {
        Some(r) => truncate_html(&defuse_outside_tags(&r), TEXT_MAX).into_owned(),
        None => layout(&Tweet::from_event(event)),
    };
    message(text, opts)
}

/// The built-in layout: header, the tweet text cut to what is left of the limit, footer.
fn layout(tweet: &Tweet) -> String {
    let mut header = String::new();
    if let Some(author) = tweet.author {
        let name = safe_cut(
            &format!("@{}", truncate_chars(author, NAME_MAX)),
            NAME_MAX + 8,
        );
        header.push_str("<b>");
        match &tweet.profile_url {
            Some(url) => header.push_str(&link(url, &name)),
            None => header.push_str(&name),
        }
        header.push_str("</b>");
    }
    if let Some(source) = &tweet.source {
        let name = safe_cut(source.name(), NAME_MAX);
        if !header.is_empty() {
            header.push_str(" · ");
        }
        header.push_str(&format!("{}: {name}", source.kind()));
    }

    let mut footer = Vec::new();
    if let Some(url) = &tweet.url {
        footer.push(link(url, "Open on X"));
    }
    if let Some(latency) = &tweet.latency {
        footer.push(format!("Detected in {latency}"));
    }
    let footer = footer.join(" · ");

    // Two line breaks around the text, one after the header.
    let used = visible_len(&header) + visible_len(&footer) + 3;
    let body = match tweet.text {
        Some(text) => safe_cut(text, TEXT_MAX.saturating_sub(used)),
        None => NO_TEXT.to_owned(),
    };
    let mut out = String::new();
    for part in [header.as_str(), body.as_str()] {
        if !part.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(part);
        }
    }
    if !footer.is_empty() {
        out.push_str("\n\n");
        out.push_str(&footer);
    }
    // The parts were sized to fit; this only guards the sum.
    truncate_html(&out, TEXT_MAX).into_owned()
}

/// The `sendMessage` body listing several tweets in one message (see [`super::digest`]):
///
/// ```text
/// <b>3 new tweets</b>
/// • <b>@author</b>: the tweet text, cut · <a href="…">Open</a>     (one per tweet)
/// …and 7 more                                                   (a long stale fold)
/// ```
///
/// Each tweet's text gets an equal share of the 4,096 characters, at most
/// [`super::digest::ITEM_TEXT_MAX`], so every tweet folded in is listed.
pub(crate) fn digest_payload(
    heading: super::digest::Heading,
    events: &[Map<String, Value>],
    opts: &TelegramOptions,
) -> Value {
    let title = format!("<b>{}</b>", escape(&heading.text(events.len())));
    let rest = super::digest::rest(events.len());
    let listed = events.len().clamp(1, super::digest::LISTED_MAX);
    let fixed = visible_len(&title) + rest.as_deref().map_or(0, |r| utf16_len(r) + 1);
    let share = TEXT_MAX.saturating_sub(fixed) / listed;
    let mut lines = vec![title];
    for event in events.iter().take(super::digest::LISTED_MAX) {
        let tweet = Tweet::from_event(event);
        let mut line = String::from("\n• ");
        if let Some(author) = tweet.author {
            let name = safe_cut(&format!("@{}", truncate_chars(author, 40)), 48);
            line.push_str(&format!("<b>{name}</b>"));
        }
        let open = tweet.url.as_ref().map(|url| link(url, "Open"));
        // What the line shows besides the text: "• ", ": ", " · Open".
        let overhead = visible_len(&line) + 2 + if open.is_some() { 7 } else { 0 };
        let budget = share
            .saturating_sub(overhead)
            .min(super::digest::ITEM_TEXT_MAX);
        if let Some(text) = tweet.text.filter(|_| budget > 1) {
            if tweet.author.is_some() {
                line.push_str(": ");
            }
            line.push_str(&safe_cut(&text.replace('\n', " "), budget));
        }
        if let Some(open) = open {
            line.push_str(" · ");
            line.push_str(&open);
        }
        lines.push(line);
    }
    if let Some(rest) = rest {
        lines.push(format!("\n{}", escape(&rest)));
    }
    message(truncate_html(&lines.concat(), TEXT_MAX).into_owned(), opts)
}

/// A `sendMessage` body: the text and the target's own options, the same on every message.
fn message(text: String, opts: &TelegramOptions) -> Value {
    let mut body = Map::new();
    body.insert(
        "chat_id".into(),
        match &opts.chat_id {
            ChatId::Id(id) => json!(id),
            ChatId::Username(name) => json!(name),
        },
    );
    body.insert("text".into(), text.into());
    body.insert("parse_mode".into(), "HTML".into());
    // The message already shows the tweet; a preview of its link would show it twice.
    body.insert("link_preview_options".into(), json!({"is_disabled": true}));
    if let Some(topic) = opts.message_thread_id {
        body.insert("message_thread_id".into(), topic.into());
    }
    if opts.disable_notification {
        body.insert("disable_notification".into(), true.into());
    }
    Value::Object(body)
}

/// The Bot API's answer: the generic HTTP reading, a 429's `parameters.retry_after`
/// (the Bot API sends no `Retry-After` header) holding the whole target, and advice.
pub(crate) fn interpret(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> super::Reply {
    let mut reply = super::Reply::from_status(status, headers);
    if status == 429
        && let Some(wait) = retry_after_from_body(body)
    {
        reply.wait_at_least(wait);
    }
    reply.advice = diagnose(status, body);
    reply
}

/// `parameters.retry_after` (whole seconds) of an error body, capped at a day like a
/// `Retry-After` header.
pub fn retry_after_from_body(body: &[u8]) -> Option<Duration> {
    super::body_wait(body, "/parameters/retry_after")
}

/// For an answer the Bot API will give again however often it is retried, what the
/// operator must change; `None` for success, throttling, server trouble and anything
/// unknown. The Bot API explains errors in `description` ("Bad Request: chat not
/// found"), which is read case-insensitively; `error_code` is the status again.
pub fn diagnose(status: u16, body: &[u8]) -> Option<&'static str> {
    if !(400..500).contains(&status) || matches!(status, 408 | 425 | 429) {
        return None;
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let description = json
        .as_ref()
        .and_then(|v| v.get("description"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let says = |s: &str| description.contains(s);
    let migrated = json
        .as_ref()
        .and_then(|v| v.pointer("/parameters/migrate_to_chat_id"))
        .is_some();
    Some(match status {
        _ if migrated || says("upgraded to a supergroup") => {
            "the Telegram group became a supergroup with a new id (parameters.migrate_to_chat_id in the dead letter's response): set the target's chat_id to it, then `badger-relay outbox retry --target`"
        }
        _ if says("chat not found") => {
            "Telegram cannot find the target's chat_id (chat not found): check the id (channels and supergroups start with -100) and that the bot was added to the chat"
        }
        _ if says("bot was blocked by the user") => {
            "the user blocked the bot (bot was blocked by the user): they must unblock it (or /start it again), then `badger-relay outbox retry --target`"
        }
        _ if says("bot was kicked") => {
            "the bot was removed from the chat (bot was kicked): add it back, then `badger-relay outbox retry --target`"
        }
        _ if says("not a member") => {
            "the bot is not a member of the chat (for a channel: an administrator allowed to post): add it, then `badger-relay outbox retry --target`"
        }
        _ if says("not enough rights") || says("have no rights") => {
            "the bot may not post in this chat (not enough rights): give it permission to send messages"
        }
        _ if says("user is deactivated") => {
            "the Telegram account of this chat was deleted (user is deactivated): change the target's chat_id or remove the target"
        }
        _ if says("thread not found") || says("topic_closed") || says("topic closed") => {
            "the target's message_thread_id names no open topic of this chat: fix or remove message_thread_id"
        }
        _ if says("can't parse entities") => {
            "Telegram could not read the message's HTML (can't parse entities): use only Telegram's tags (b, i, u, s, a, code, pre, blockquote, tg-spoiler) in the target's template and close each one"
        }
        _ if says("message is too long") || says("text is too long") => {
            "Telegram refused the message as too long: report it as a badger-relay bug with the dead letter; no configuration change will fix it"
        }
        401 => {
            "Telegram refused the bot token (401 Unauthorized): it was revoked or mistyped; copy it from @BotFather again and update the target's bot_token"
        }
        404 => {
            "the Bot API answered 404 Not Found: the bot token is incomplete or api_url does not point at a Bot API server; check both"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Verdict;
    use reqwest::header::HeaderMap;

    #[test]
    fn mentions_are_defused_and_emails_keep_reading_the_same() {
        assert_eq!(
            defuse_mentions("hi @bob and @_x, a@b.c, @ alone, @"),
            "hi @\u{200B}bob and @\u{200B}_x, a@\u{200B}b.c, @ alone, @"
        );
        assert!(matches!(defuse_mentions("no at here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_template_cannot_join_an_at_sign_and_a_name_into_a_mention() {
        assert_eq!(
            defuse_outside_tags("<b>@elonmusk</b> <a href=\"mailto:a@b.c\">@x</a>"),
            "<b>@\u{200B}elonmusk</b> <a href=\"mailto:a@b.c\">@\u{200B}x</a>"
        );
    }

    #[test]
    fn html_cut_counts_visible_utf16_and_closes_tags() {
        let s = "<b>ab&amp;cd</b><i>efgh</i>";
        assert_eq!(visible_len(s), 9);
        assert_eq!(truncate_html(s, 9), s);
        // Six visible units: five kept, then the ellipsis; the <b> is closed.
        assert_eq!(truncate_html(s, 6), "<b>ab&amp;cd</b><i>…</i>");
        assert_eq!(truncate_html(s, 4), "<b>ab&amp;…</b>");
        // An astral character is two units and is never split.
        assert_eq!(truncate_html("😀😀😀", 4), "😀…");
        assert_eq!(visible_len("😀"), 2);
    }

    #[test]
    fn plain_text_is_cut_in_utf16_units() {
        let s: String = "😀".repeat(10);
        let cut = truncate_utf16(&s, 7);
        assert_eq!(cut, "😀😀😀…");
        assert!(utf16_len(&cut) <= 7);
        assert_eq!(truncate_utf16("short", 7), "short");
    }

    #[test]
    fn a_429_waits_for_the_bodys_retry_after_and_holds_the_target() {
        let body = br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#;
        let reply = interpret(429, &HeaderMap::new(), body);
        assert_eq!(
            reply.verdict,
            Verdict::Retry {
                floor: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(reply.pause, Some(Duration::from_secs(7)));
        assert_eq!(reply.advice, None);
    }

    #[test]
    fn documented_permanent_errors_are_dead_with_advice() {
        let cases: &[(u16, &str, &str)] = &[
            (400, "Bad Request: chat not found", "chat_id"),
            (403, "Forbidden: bot was blocked by the user", "unblock"),
            (
                403,
                "Forbidden: bot was kicked from the group chat",
                "add it back",
            ),
            (
                403,
                "Forbidden: bot is not a member of the channel chat",
                "member",
            ),
            (
                400,
                "Bad Request: can't parse entities: Unsupported start tag \"x\"",
                "tags",
            ),
            (
                400,
                "Bad Request: message thread not found",
                "message_thread_id",
            ),
            (401, "Unauthorized", "bot_token"),
            (404, "Not Found", "api_url"),
        ];
        for &(status, description, hint) in cases {
            let body = json!({"ok": false, "error_code": status, "description": description});
            let reply = interpret(status, &HeaderMap::new(), body.to_string().as_bytes());
            assert_eq!(reply.verdict, Verdict::Dead, "{description}");
            let advice = reply
                .advice
                .unwrap_or_else(|| panic!("no advice for {description}"));
            assert!(advice.contains(hint), "{description}: {advice}");
        }
        let migrated = br#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234567890}}"#;
        let reply = interpret(400, &HeaderMap::new(), migrated);
        assert!(reply.advice.unwrap().contains("migrate_to_chat_id"));
    }

    #[test]
    fn server_trouble_is_retried_without_advice() {
        let reply = interpret(
            502,
            &HeaderMap::new(),
            br#"{"ok":false,"error_code":502,"description":"Bad Gateway"}"#,
        );
        assert!(matches!(reply.verdict, Verdict::Retry { .. }));
        assert_eq!(reply.advice, None);
        assert_eq!(
            interpret(200, &HeaderMap::new(), br#"{"ok":true}"#).verdict,
            Verdict::Delivered
        );
    }
}
