//! One message for several tweets: a digest of a burst that waited behind the target's
//! rate limit, or the tweets that went stale during an outage.
//!
//! What the platforms share is here: the heading, how many tweets a message lists, how
//! long each tweet's text may be, and the events read once. Each platform file lays the
//! list out its own way (`slack::digest_payload`, `discord::digest_payload`,
//! `telegram::digest_payload`, `teams::digest_payload`) with the
//! same escaping as its single message, so a digest can no more ping anyone than a
//! single tweet can. A target's `template` does not apply: it shapes one tweet's message.

use bytes::Bytes;
use serde_json::{Map, Value};

/// What a digest message says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heading {
    /// Deliveries that waited behind the rate limit: "3 new tweets".
    Burst,
    /// Tweets older than `stale_after` when their turn came: "12 tweets from while
    /// delivery was delayed".
    Delayed,
}

impl Heading {
    /// The heading for `n` tweets, plain text (no markup: each platform adds its own).
    pub(crate) fn text(self, n: usize) -> String {
        let tweets = if n == 1 { "tweet" } else { "tweets" };
        match self {
            Heading::Burst => format!("{n} new {tweets}"),
            Heading::Delayed => format!("{n} {tweets} from while delivery was delayed"),
        }
    }
}

/// The most tweets a message lists one by one; the rest are counted in one line. As
/// many as a `digest` may hold, so only a stale fold (which takes a whole backlog) has
/// a rest.
pub(crate) const LISTED_MAX: usize = crate::config::DIGEST_MAX;

/// Each listed tweet's text is cut to this many characters: a digest is a glance at
/// what happened, each tweet one click away.
pub(crate) const ITEM_TEXT_MAX: usize = 280;

/// The events of a digest, parsed once. An event that is not a JSON object (no chat
/// target receives one; the intake checks) is listed as an empty tweet rather than
/// failing the whole digest.
pub(crate) fn events(bodies: &[Bytes]) -> Vec<Map<String, Value>> {
    bodies
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap_or_default())
        .collect()
}

/// "…and 7 more" for tweets folded in but not listed, if any.
pub(crate) fn rest(total: usize) -> Option<String> {
    (total > LISTED_MAX).then(|| format!("…and {} more", total - LISTED_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_count_their_tweets() {
        assert_eq!(Heading::Burst.text(3), "3 new tweets");
        assert_eq!(Heading::Burst.text(1), "1 new tweet");
        assert_eq!(
            Heading::Delayed.text(12),
            "12 tweets from while delivery was delayed"
        );
    }

    #[test]
    fn only_a_fold_longer_than_a_listing_has_a_rest() {
        assert_eq!(rest(LISTED_MAX), None);
        assert_eq!(rest(LISTED_MAX + 7).as_deref(), Some("…and 7 more"));
    }

    fn hostile(n: usize) -> Vec<Map<String, Value>> {
        (0..n)
            .map(|i| {
                serde_json::json!({
                    "tweet_id": format!("{}", 1000 + i),
                    "author_username": "here",
                    "tweet_text": "<!channel> @everyone <@&123> [click](https://evil.example) ".repeat(40),
                    "tweet_url": format!("https://x.com/here/status/{}", 1000 + i),
                })
                .as_object()
                .unwrap()
                .clone()
            })
            .collect()
    }

    #[test]
    fn a_slack_digest_pings_no_one_and_fits_slacks_limits() {
        let body = crate::target::slack::digest_payload(
            Heading::Burst,
            &hostile(LISTED_MAX),
            &Default::default(),
        );
        let text = body.to_string();
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(!text.contains("@here") && !text.contains("@everyone"));
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(
            blocks.len(),
            1 + LISTED_MAX,
            "a heading and one block a tweet"
        );
        assert_eq!(blocks[0]["text"]["text"], "*25 new tweets*");
        for b in blocks {
            assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 3000);
        }
        assert!(
            blocks[1]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("<https://x.com/here/status/1000|Open on X>")
        );
    }

    #[test]
    fn a_discord_digest_pings_no_one_and_fits_discords_limits() {
        let events = hostile(LISTED_MAX + 3);
        let body =
            crate::target::discord::digest_payload(Heading::Delayed, &events, &Default::default());
        assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
        let embed = &body["embeds"][0];
        assert_eq!(embed["title"], "28 tweets from while delivery was delayed");
        let description = embed["description"].as_str().unwrap();
        assert!(description.chars().count() <= 4096);
        assert!(
            !description.contains("](https://evil"),
            "masked links defused"
        );
        assert_eq!(description.lines().count(), LISTED_MAX + 1);
        assert!(description.ends_with("…and 3 more"));
        assert!(
            description
                .lines()
                .next()
                .unwrap()
                .starts_with("**@here**: ")
        );
    }

    #[test]
    fn a_telegram_digest_lists_every_tweet_within_4096_and_mentions_no_one() {
        let events = hostile(LISTED_MAX + 3);
        let body =
            crate::target::telegram::digest_payload(Heading::Delayed, &events, &Default::default());
        assert_eq!(body["parse_mode"], "HTML");
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("<b>28 tweets from while delivery was delayed</b>\n• "),
            "{text}"
        );
        assert!(!text.contains("<!channel>") && !text.contains("<@&"));
        assert!(!text.contains("@everyone") && !text.contains("@here"));
        assert_eq!(text.lines().count(), 1 + LISTED_MAX + 1, "{text}");
        assert!(text.ends_with("…and 3 more"));
        // Every listed tweet keeps its link, and some of its text.
        for i in 0..LISTED_MAX {
            assert!(text.contains(&format!("https://x.com/here/status/{}", 1000 + i)));
        }
        assert!(text.lines().nth(1).unwrap().contains(": &lt;!channel&gt;"));
        let visible: usize = {
            let mut plain = String::new();
            let mut in_tag = false;
            for c in text.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' if in_tag => in_tag = false,
                    c if !in_tag => plain.push(c),
                    _ => {}
                }
            }
            let plain = plain
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
                .replace("&quot;", "\"");
            plain.encode_utf16().count()
        };
        assert!(visible <= 4096, "{visible}");
    }

    #[test]
    fn a_teams_digest_is_one_card_under_28kb_with_a_line_per_tweet() {
        let events = hostile(LISTED_MAX);
        let body = crate::target::teams::digest_payload(Heading::Burst, &events);
        assert!(body.to_string().len() <= crate::target::teams::PAYLOAD_MAX);
        let card = &body["attachments"][0]["content"];
        assert_eq!(card["version"], "1.4");
        let blocks = card["body"].as_array().unwrap();
        assert_eq!(blocks.len(), 1 + LISTED_MAX);
        assert_eq!(blocks[0]["text"], "25 new tweets");
        let first = &blocks[1]["inlines"];
        assert_eq!(first[0]["text"], "@here");
        assert_eq!(
            first[2]["selectAction"]["url"],
            "https://x.com/here/status/1000"
        );
    }

    #[test]
    fn an_event_that_is_not_an_object_is_an_empty_tweet() {
        let parsed = events(&[Bytes::from_static(b"[1]"), Bytes::from_static(b"{\"a\":1}")]);
        assert!(parsed[0].is_empty());
        assert_eq!(parsed[1]["a"], 1);
    }
}
