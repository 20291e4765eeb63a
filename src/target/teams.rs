//! Microsoft Teams Workflows webhooks: the message for one event (one Adaptive Card), and
//! what the Workflows endpoint's refusals mean.
//!
//! The card (version 1.4, which Teams renders everywhere):
//!
//! ```text
//! RichTextBlock  @author (bold, opens https://x.com/author)
//! RichTextBlock  the tweet text                  (or a TextBlock: the rendered template)
//! RichTextBlock  Monitor: name · 2026-03-13T12:00:00Z · Detected in 150 ms   (subtle)
//! action         Open on X
//! ```
//!
//! A tweet is hostile input. Everything tweet-derived goes into `TextRun`s, which Adaptive
//! Cards never read as markdown, so a tweet cannot bold, link or hide anything; and Teams
//! mentions exist only through a card's `msteams.entities`, which this card never has, so
//! nothing in a tweet can mention anyone. A `template`'s output is markdown (its literal
//! text is the operator's own); the values in it are markdown-escaped.
//!
//! Teams refuses a message over 28 KB: the tweet text is cut until the whole JSON body is
//! under [`PAYLOAD_MAX`].

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use super::chat::{Tweet, close_bidi, then, truncate_chars};
use super::template;
use crate::config::TeamsOptions;

/// The most bytes of JSON a message may have: Teams' 28 KB, with room for the request's
/// own framing and Workflows' wrapping.
pub const PAYLOAD_MAX: usize = 27_000;
/// Where cutting the tweet text starts: far more than a tweet, far less than the limit.
const TEXT_START: usize = 8_000;
/// Author and monitor names are cut to this.
const NAME_MAX: usize = 128;
/// Shown when a tweet has no text.
const NO_TEXT: &str = "(no text)";

/// A markdown character escaped with a backslash (CommonMark's escape, which Teams' card
/// markdown follows), so a value in a template shows as written.
fn is_markdown(c: char) -> bool {
    matches!(
        c,
        '\\' | '*' | '_' | '~' | '`' | '[' | ']' | '(' | ')' | '#' | '>' | '<' | '!' | '|'
    )
}

/// A value for a template's markdown: every markdown character backslash-escaped, and a
/// list marker at the start of a line (`- `, `+ `, `1. `) escaped too.
pub fn escape(s: &str) -> Cow<'_, str> {
    let needs = s.chars().any(is_markdown)
        || s.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with(['-', '+']) || l.starts_with(|c: char| c.is_ascii_digit())
        });
    if !needs {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut line_start = true;
    let mut digits = false;
    for c in s.chars() {
        if is_markdown(c) || (line_start && matches!(c, '-' | '+')) || (digits && c == '.') {
            out.push('\\');
        }
        digits = (line_start || digits) && c.is_ascii_digit();
        line_start = c == '\n' || (line_start && c == ' ');
        out.push(c);
    }
    Cow::Owned(out)
}

/// A template value: bidi closed, markdown-escaped.
fn safe(s: &str) -> Cow<'_, str> {
    then(close_bidi(s), escape)
}

/// Plain text for a `TextRun`: never markdown, so only bidi needs closing.
fn plain(s: &str, max: usize) -> String {
    close_bidi(&truncate_chars(s, max)).into_owned()
}

/// A line of `TextRun`s.
fn runs(inlines: Vec<Value>) -> Value {
    json!({"type": "RichTextBlock", "inlines": inlines})
}

fn run(text: &str) -> Value {
    json!({"type": "TextRun", "text": text})
}

fn open_url(url: &reqwest::Url) -> Value {
    json!({"type": "Action.OpenUrl", "url": url.as_str()})
}

/// The Workflows body for `event`: one Adaptive Card, under [`PAYLOAD_MAX`].
pub fn payload(event: &Map<String, Value>, opts: &TeamsOptions) -> Value {
    let tweet = Tweet::from_event(event);
    let rendered = template::message(opts.template.as_ref(), event, safe);
    let mut budget = TEXT_START;
    loop {
        let message = card_message(&tweet, rendered.as_deref(), budget);
        if budget == 0 || json_len(&message) <= PAYLOAD_MAX {
            return message;
        }
        budget /= 2;
    }
}

/// The card with the tweet's text (or the template's) cut to `budget` characters.
fn card_message(tweet: &Tweet, rendered: Option<&str>, budget: usize) -> Value {
    let mut body = Vec::new();
    if let Some(author) = tweet.author {
        let mut name = run(&plain(&format!("@{author}"), NAME_MAX));
        name["weight"] = "Bolder".into();
        if let Some(url) = &tweet.profile_url {
            name["selectAction"] = open_url(url);
        }
        body.push(runs(vec![name]));
    }
    body.push(match rendered {
        Some(r) => json!({"type": "TextBlock", "text": truncate_chars(r, budget), "wrap": true}),
        None => runs(vec![run(&tweet
            .text
            .map_or_else(|| NO_TEXT.to_owned(), |t| plain(t, budget)))]),
    });
    let mut about = Vec::new();
    if let Some(source) = &tweet.source {
        about.push(format!(
            "{}: {}",
            source.kind(),
            plain(source.name(), NAME_MAX)
        ));
    }
    if let Some(at) = tweet.published_at {
        about.push(at.to_owned());
    }
    if let Some(latency) = &tweet.latency {
        about.push(format!("Detected in {latency}"));
    }
    if !about.is_empty() {
        let mut line = run(&about.join(" · "));
        line["isSubtle"] = true.into();
        line["size"] = "Small".into();
        body.push(runs(vec![line]));
    }
    let actions = tweet
        .url
        .iter()
        .map(|url| {
            let mut action = open_url(url);
            action["title"] = "Open on X".into();
            action
        })
        .collect();
    message(body, actions)
}

/// The Workflows body listing several tweets in one card (see [`super::digest`]):
///
/// ```text
/// TextBlock      3 new tweets (bold)
/// RichTextBlock  @author: the tweet text, cut · Open          (one per tweet; Open links)
/// TextBlock      …and 7 more                                   (a long stale fold)
/// ```
pub(crate) fn digest_payload(
    heading: super::digest::Heading,
    events: &[Map<String, Value>],
) -> Value {
    let tweets: Vec<Tweet> = events
        .iter()
        .take(super::digest::LISTED_MAX)
        .map(Tweet::from_event)
        .collect();
    let mut budget = super::digest::ITEM_TEXT_MAX;
    loop {
        let mut body = vec![json!({
            "type": "TextBlock",
            "text": heading.text(events.len()),
            "weight": "Bolder",
            "wrap": true,
        })];
        for tweet in &tweets {
            let mut inlines = Vec::new();
            if let Some(author) = tweet.author {
                let mut name = run(&plain(&format!("@{author}"), 40));
                name["weight"] = "Bolder".into();
                inlines.push(name);
            }
            if let Some(text) = tweet.text.filter(|_| budget > 1) {
                let sep = if inlines.is_empty() { "" } else { ": " };
                inlines.push(run(&format!(
                    "{sep}{}",
                    plain(&text.replace('\n', " "), budget)
                )));
            }
            if let Some(url) = &tweet.url {
                let mut open = run(" · Open");
                open["selectAction"] = open_url(url);
                open["color"] = "Accent".into();
                inlines.push(open);
            }
            if inlines.is_empty() {
                inlines.push(run(NO_TEXT));
            }
            body.push(runs(inlines));
        }
        if let Some(rest) = super::digest::rest(events.len()) {
            body.push(json!({"type": "TextBlock", "text": rest, "isSubtle": true}));
        }
        let message = message(body, Vec::new());
        if budget == 0 || json_len(&message) <= PAYLOAD_MAX {
            return message;
        }
        budget /= 2;
    }
}

/// The message envelope Workflows' "Post to a channel when a webhook request is
/// received" flow expects: one attachment holding the card.
fn message(body: Vec<Value>, actions: Vec<Value>) -> Value {
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    });
    if !actions.is_empty() {
        card["actions"] = actions.into();
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// The Workflows endpoint's answer: the generic HTTP reading (it throttles with 429 and
/// `Retry-After`), advice for its permanent errors, and the classic Office 365
/// connector's habit of answering 200 with the error of the Teams call in the body.
pub(crate) fn interpret(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> super::Reply {
    let mut reply = super::Reply::from_status(status, headers);
    if (200..300).contains(&status)
        && String::from_utf8_lossy(body).contains("returned HTTP error 429")
    {
        reply.verdict = crate::retry::Verdict::Retry { floor: None };
    }
    reply.advice = diagnose(status, body);
    reply
}

/// For an answer the workflow will give again however often it is retried, what the
/// operator must change. Errors come as `{"error": {"code": "...", "message": "..."}}`.
pub fn diagnose(status: u16, body: &[u8]) -> Option<&'static str> {
    if !(400..500).contains(&status) || matches!(status, 408 | 425 | 429) {
        return None;
    }
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/code")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    Some(match (status, code.as_str()) {
        (_, "WorkflowTriggerIsNotEnabled" | "FlowDisabled" | "WorkflowNotEnabled") => {
            "the Teams workflow is turned off: turn it on in Power Automate, then `badger-relay outbox retry --target`"
        }
        (_, "DirectApiAuthorizationRequired" | "MisMatchingOAuthClaims") | (401 | 403, _) => {
            "the workflow refused the request (its URL's sig is wrong, or the trigger requires sign-in): copy the workflow's URL again, with \"Anyone\" allowed to trigger it, and update the target's url"
        }
        (_, "WorkflowNotFound" | "TriggerNotFound") | (404, _) => {
            "the Teams workflow was deleted or the URL is incomplete: copy the workflow's HTTP POST URL again and update the target's url"
        }
        (_, "TriggerInputSchemaMismatch" | "InvalidTemplate") => {
            "the workflow expects another message shape: create it from the template \"Post to a channel when a webhook request is received\", which takes an Adaptive Card"
        }
        (413, _) => {
            "Teams refused the message as too large: report it as a badger-relay bug with the dead letter; no configuration change will fix it"
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
    fn template_values_lose_their_markdown() {
        assert_eq!(
            escape("**bold** [x](https://evil.example) `c`"),
            r"\*\*bold\*\* \[x\]\(https://evil.example\) \`c\`"
        );
        assert_eq!(
            escape("- item\n1. two\nplain 3.5"),
            "\\- item\n1\\. two\nplain 3.5"
        );
        assert!(matches!(escape("plain words, 3.5"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_huge_tweet_is_cut_under_the_limit() {
        let text = "\u{0001}\"".repeat(20_000); // JSON-escapes to 8 bytes a pair
        let event = json!({"tweet_text": text, "tweet_id": "1", "author_username": "a"});
        let p = payload(event.as_object().unwrap(), &TeamsOptions::default());
        assert!(json_len(&p) <= PAYLOAD_MAX, "{}", json_len(&p));
        assert!(
            p.pointer("/attachments/0/content/body/1/inlines/0/text")
                .is_some()
        );
    }

    #[test]
    fn permanent_errors_are_dead_with_advice_and_throttling_is_retried() {
        let off = br#"{"error":{"code":"WorkflowTriggerIsNotEnabled","message":"The workflow is disabled."}}"#;
        let reply = interpret(400, &HeaderMap::new(), off);
        assert_eq!(reply.verdict, Verdict::Dead);
        assert!(reply.advice.unwrap().contains("turned off"));
        for (status, hint) in [(401, "sig"), (403, "sig"), (404, "deleted"), (413, "bug")] {
            let reply = interpret(status, &HeaderMap::new(), b"");
            assert_eq!(reply.verdict, Verdict::Dead, "{status}");
            assert!(reply.advice.unwrap().contains(hint), "{status}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        let reply = interpret(429, &headers, b"");
        assert_eq!(
            reply.verdict,
            Verdict::Retry {
                floor: Some(std::time::Duration::from_secs(3))
            }
        );
        assert_eq!(reply.advice, None);
        let quirk = interpret(
            200,
            &HeaderMap::new(),
            b"Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0",
        );
        assert!(matches!(quirk.verdict, Verdict::Retry { .. }));
        assert_eq!(
            interpret(202, &HeaderMap::new(), b"").verdict,
            Verdict::Delivered
        );
    }
}
