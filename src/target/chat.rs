//! What the chat targets (Slack, Discord, Telegram, Teams) share.
//!
//! Each is a pure function from an event to a JSON body, so that `route` can print
//! exactly what would be sent and the golden tests can pin it. The helpers below are
//! what the chat platforms share: reading the few fields a message shows, and cutting
//! text to a platform limit.
//!
//! Limits are counted in `char`s (Unicode scalar values). Discord counts code points
//! (its API is Python 3 `len`); Slack only says "characters", and a code point never
//! undercounts UTF-16 for anything but astral characters, which Slack has not been seen
//! to count double. A cut never splits a character and, within a small budget, avoids
//! splitting a grapheme: a letter and its combining marks, an emoji ZWJ sequence, a
//! flag's pair of regional indicators.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// What a cut text ends with: one character, so it fits the budget of any limit.
pub(crate) const ELLIPSIS: char = '…';

/// Zero-width space: invisible, but enough to stop a platform from reading `@everyone`
/// or `](` as markup.
pub(crate) const ZWSP: char = '\u{200B}';

/// How far back a cut may move to keep a grapheme whole. Past this the text is pathological
/// (a wall of combining marks) and a plain character boundary is good enough.
const GRAPHEME_BACKOFF: usize = 32;

/// `s` cut to at most `max` characters, the last being "…" when anything was cut.
///
/// Trailing whitespace before the ellipsis is dropped so the cut reads as one.
pub(crate) fn truncate_chars(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max || s.chars().count() <= max {
        return Cow::Borrowed(s);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let idx = cut_index(s, max - 1);
    let mut out = String::with_capacity(idx + ELLIPSIS.len_utf8());
    out.push_str(s[..idx].trim_end());
    out.push(ELLIPSIS);
    Cow::Owned(out)
}

/// The byte index at which to cut `s` so that at most `keep` characters remain, moved
/// back (within [`GRAPHEME_BACKOFF`]) so the cut does not strand combining marks, split a
/// ZWJ sequence or halve a flag.
pub(crate) fn cut_index(s: &str, keep: usize) -> usize {
    let Some((first, _)) = s.char_indices().nth(keep) else {
        return s.len();
    };
    let mut idx = first;
    for _ in 0..GRAPHEME_BACKOFF {
        if idx == 0 || is_clean_cut(s, idx) {
            return idx;
        }
        idx = s[..idx].char_indices().next_back().map_or(0, |(i, _)| i);
    }
    if is_clean_cut(s, idx) { idx } else { first }
}

/// Whether cutting `s` at byte `idx` (a char boundary) keeps the grapheme before it whole.
fn is_clean_cut(s: &str, idx: usize) -> bool {
    let Some(next) = s[idx..].chars().next() else {
        return true;
    };
    let mut before = s[..idx].chars().rev();
    let prev = before.next();
    if is_grapheme_extender(next) || prev == Some('\u{200D}') {
        return false;
    }
    if is_regional_indicator(next) && prev.is_some_and(is_regional_indicator) {
        // Indicators pair up from the start of their run: an odd run before the cut
        // means the cut falls inside a flag.
        let run = 1 + before.take_while(|&c| is_regional_indicator(c)).count();
        return run % 2 == 0;
    }
    true
}

/// The common characters that attach to the one before them. Not the full Unicode
/// grapheme rules (that needs tables this crate does not carry), but the cases tweets
/// are made of: accents, emoji modifiers and sequences, variation selectors.
fn is_grapheme_extender(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F        // combining diacritical marks
        | 0x0483..=0x0489      // Cyrillic combining marks
        | 0x0591..=0x05BD      // Hebrew points
        | 0x0610..=0x061A | 0x064B..=0x065F | 0x0670  // Arabic marks
        | 0x0900..=0x0903 | 0x093A..=0x094F | 0x0951..=0x0957  // Devanagari signs
        | 0x0E31 | 0x0E34..=0x0E3A | 0x0E47..=0x0E4E  // Thai vowels and tones
        | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF  // combining marks, extended and supplement
        | 0x200C..=0x200D      // zero-width non-joiner and joiner
        | 0x20D0..=0x20FF      // combining marks for symbols (keycaps)
        | 0xFE00..=0xFE0F      // variation selectors (emoji presentation)
        | 0xFE20..=0xFE2F      // combining half marks
        | 0x1F3FB..=0x1F3FF    // emoji skin tone modifiers
        | 0xE0020..=0xE007F    // tag characters (subdivision flags)
        | 0xE0100..=0xE01EF    // variation selectors supplement
    )
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

/// `s` passed through one more text transformation, staying borrowed while nothing
/// changes (the common case: most tweets need no escaping at all).
pub(crate) fn then<'a>(s: Cow<'a, str>, f: fn(&str) -> Cow<'_, str>) -> Cow<'a, str> {
    match s {
        Cow::Borrowed(b) => f(b),
        Cow::Owned(o) => Cow::Owned(f(&o).into_owned()),
    }
}

/// `s` with a zero-width space after every `@` that starts one of `words` (ASCII,
/// case-insensitively, as a whole word), so `@everyone` still reads as itself but no
/// platform takes it for a mention.
pub(crate) fn defuse_at_words<'a>(s: &'a str, words: &[&str]) -> Cow<'a, str> {
    let hits = |i: usize| {
        let rest = &s.as_bytes()[i + 1..];
        words.iter().any(|w| {
            rest.len() >= w.len()
                && rest[..w.len()].eq_ignore_ascii_case(w.as_bytes())
                && rest
                    .get(w.len())
                    .is_none_or(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
        })
    };
    let mut positions = s.match_indices('@').map(|(i, _)| i).filter(|&i| hits(i));
    let Some(first) = positions.next() else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    let mut from = 0;
    for at in std::iter::once(first).chain(positions) {
        out.push_str(&s[from..=at]);
        out.push(ZWSP);
        from = at + 1;
    }
    out.push_str(&s[from..]);
    Cow::Owned(out)
}

/// `s` with every bidi embedding, override or isolate it leaves open closed at its end,
/// so a tweet's right-to-left override stays inside the tweet's own text and cannot
/// reverse what the message shows after it (a template's literal text, a footer).
/// The tweet itself displays exactly as before. Open controls end with their paragraph,
/// so only those after the last line break count.
pub(crate) fn close_bidi(s: &str) -> Cow<'_, str> {
    if !s.contains(|c| {
        ('\u{202A}'..='\u{202E}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)
    }) {
        return Cow::Borrowed(s);
    }
    let (mut embeddings, mut isolates) = (0usize, 0usize);
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\u{2029}' => (embeddings, isolates) = (0, 0),
            '\u{202A}' | '\u{202B}' | '\u{202D}' | '\u{202E}' => embeddings += 1,
            '\u{202C}' => embeddings = embeddings.saturating_sub(1),
            '\u{2066}' | '\u{2067}' | '\u{2068}' => isolates += 1,
            '\u{2069}' => isolates = isolates.saturating_sub(1),
            _ => {}
        }
    }
    if embeddings == 0 && isolates == 0 {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 3 * (embeddings + isolates));
    out.push_str(s);
    // Isolates first: a pop-directional-isolate also ends the embeddings opened inside it.
    out.extend(std::iter::repeat_n('\u{2069}', isolates));
    out.extend(std::iter::repeat_n('\u{202C}', embeddings));
    Cow::Owned(out)
}

/// The parts of an event a chat message shows, read and checked once.
///
/// Every field may be missing or of the wrong type (the contract says so); each is then
/// `None` and the message leaves that part out rather than failing.
#[derive(Debug, Default)]
pub(crate) struct Tweet<'a> {
    /// `author_username` without a leading `@`.
    pub author: Option<&'a str>,
    /// `https://x.com/NAME`, only when the name is a well-formed X handle, so a strange
    /// name can never bend the link.
    pub profile_url: Option<reqwest::Url>,
    /// `tweet_text`, when it holds more than whitespace.
    pub text: Option<&'a str>,
    /// `tweet_url` when it is an http(s) URL; else one built from a numeric `tweet_id`,
    /// so a message can still link to the tweet.
    pub url: Option<reqwest::Url>,
    /// `https://x.com/NAME/status/ID` from a numeric `tweet_id`: a short link to the
    /// same tweet, for when `url` (a `tweet_url` with a long query) is too long to link.
    pub status_url: Option<reqwest::Url>,
    /// Which monitor or filter rule found the tweet.
    pub source: Option<Source<'a>>,
    /// `latency_ms` in words: "150 ms", "2.5 s".
    pub latency: Option<String>,
    /// `tweet_published_at`, only when shaped like ISO-8601 (Discord rejects the whole
    /// message over a bad timestamp).
    pub published_at: Option<&'a str>,
}

/// The monitor, or for filter-rule events the rule, that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source<'a> {
    Monitor(Cow<'a, str>),
    Rule(Cow<'a, str>),
}

impl Source<'_> {
    /// "Monitor" or "Rule", to put before the name.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Monitor(_) => "Monitor",
            Source::Rule(_) => "Rule",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Source::Monitor(n) | Source::Rule(n) => n,
        }
    }
}

impl<'a> Tweet<'a> {
    pub fn from_event(event: &'a Map<String, Value>) -> Self {
        let author = str_field(event, "author_username")
            .map(|a| a.trim().trim_start_matches('@'))
            .filter(|a| !a.is_empty());
        let profile_url = author
            .filter(|a| is_x_handle(a))
            .and_then(|a| reqwest::Url::parse(&format!("https://x.com/{a}")).ok());
        let text = str_field(event, "tweet_text").filter(|t| !t.trim().is_empty());
        let status_url = status_url(event, author);
        let url = str_field(event, "tweet_url")
            .and_then(web_url)
            .or_else(|| status_url.clone());
        let source = scalar_field(event, "monitor_name")
            .or_else(|| scalar_field(event, "monitor_id"))
            .map(Source::Monitor)
            .or_else(|| {
                scalar_field(event, "rule_tag")
                    .or_else(|| scalar_field(event, "rule_id"))
                    .map(Source::Rule)
            });
        let latency = event
            .get("latency_ms")
            .and_then(Value::as_f64)
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(format_latency);
        let published_at = str_field(event, "tweet_published_at").filter(|t| is_iso8601(t));
        Tweet {
            author,
            profile_url,
            text,
            url,
            status_url,
            source,
            latency,
            published_at,
        }
    }
}

fn str_field<'a>(event: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    event.get(key).and_then(Value::as_str)
}

/// A string or number field as non-blank text (ids may arrive as either).
fn scalar_field<'a>(event: &'a Map<String, Value>, key: &str) -> Option<Cow<'a, str>> {
    match event.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(Cow::Borrowed(s.trim())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// An absolute http(s) URL with a host, or nothing: a `javascript:` or relative "URL"
/// must not become a link, and Discord rejects a message whose embed URL is malformed.
fn web_url(s: &str) -> Option<reqwest::Url> {
    let url = reqwest::Url::parse(s.trim()).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host_str().is_some()).then_some(url)
}

/// `https://x.com/NAME/status/ID` (`i` for an unknown or odd name, which X redirects).
fn status_url(event: &Map<String, Value>, author: Option<&str>) -> Option<reqwest::Url> {
    let id = scalar_field(event, "tweet_id")?;
    if !id.bytes().all(|b| b.is_ascii_digit()) || id.len() > 25 {
        return None;
    }
    let name = author.filter(|a| is_x_handle(a)).unwrap_or("i");
    reqwest::Url::parse(&format!("https://x.com/{name}/status/{id}")).ok()
}

/// X handles are 1 to 15 letters, digits and underscores; older accounts and other
/// sources may be longer, so allow up to 50.
fn is_x_handle(s: &str) -> bool {
    (1..=50).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn format_latency(ms: f64) -> String {
    if ms < 1_000.0 {
        format!("{} ms", ms.round() as u64)
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1_000.0)
    } else {
        let secs = (ms / 1_000.0).round() as u64;
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, with plausible field ranges. Loose on
/// purpose (no calendar), strict enough that Discord will parse what passes.
fn is_iso8601(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let date_time = (|| {
        let ok = b.len() >= 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':';
        let (_, mo, d, h, mi, se) = (
            num(0..4)?,
            num(5..7)?,
            num(8..10)?,
            num(11..13)?,
            num(14..16)?,
            num(17..19)?,
        );
        Some(ok && (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && se <= 60)
    })();
    if date_time != Some(true) {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return false;
        }
        rest = &frac[digits..];
    }
    match rest {
        b"Z" => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
                && (*h1 - b'0') * 10 + (*h2 - b'0') < 24
                && (*m1 - b'0') * 10 + (*m2 - b'0') < 60
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_text_is_borrowed_unchanged() {
        assert!(matches!(truncate_chars("héllo", 5), Cow::Borrowed("héllo")));
        assert_eq!(truncate_chars("", 0), "");
    }

    #[test]
    fn cut_counts_chars_not_bytes() {
        // Five two-byte characters: 10 bytes, 5 chars.
        assert_eq!(truncate_chars("ééééé", 5), "ééééé");
        assert_eq!(truncate_chars("éééééé", 5), "éééé…");
        assert_eq!(truncate_chars("日本語のテキスト", 4), "日本語…");
        assert_eq!(truncate_chars("abc", 1), "…");
        assert_eq!(truncate_chars("abc", 0), "");
    }

    #[test]
    fn cut_result_never_exceeds_the_limit() {
        let s = "a😀é日\u{301}👨\u{200D}👩\u{200D}👧🇫🇷 ".repeat(50);
        for max in 0..120 {
            let cut = truncate_chars(&s, max);
            assert!(cut.chars().count() <= max, "max {max}: {cut:?}");
        }
    }

    #[test]
    fn cut_drops_trailing_space_before_ellipsis() {
        assert_eq!(truncate_chars("one two three", 5), "one…");
    }

    #[test]
    fn cut_keeps_combining_marks_with_their_letter() {
        // "e" + combining acute: cutting between them would leave a bare "e".
        let s = "cafe\u{301} noir";
        assert_eq!(truncate_chars(s, 5), "caf…");
    }

    #[test]
    fn cut_never_splits_an_emoji_zwj_sequence() {
        let family = "👨\u{200D}👩\u{200D}👧";
        let s = format!("ab{family}cd");
        for max in 3..=7 {
            let cut = truncate_chars(&s, max);
            assert!(cut == "ab…" || cut.contains(family), "max {max}: {cut:?}");
            assert!(!cut.contains("\u{200D}…"), "{cut:?}");
        }
    }

    #[test]
    fn cut_never_halves_a_flag() {
        let s = "🇫🇷🇩🇪🇯🇵";
        assert_eq!(truncate_chars(s, 4), "🇫🇷…");
        assert_eq!(truncate_chars(s, 3), "🇫🇷…");
        assert_eq!(truncate_chars(s, 2), "…");
    }

    #[test]
    fn cut_keeps_skin_tone_with_its_emoji() {
        let s = "ab👍🏽cd";
        assert_eq!(truncate_chars(s, 4), "ab…");
        assert_eq!(truncate_chars(s, 5), "ab👍🏽…");
    }

    #[test]
    fn a_wall_of_combining_marks_still_gets_cut() {
        // One grapheme of 101 chars: a short cut drops it whole...
        let s = format!("a{}", "\u{301}".repeat(100));
        assert_eq!(truncate_chars(&s, 10), "…");
        // ...but past the backoff budget a plain character boundary is accepted rather
        // than searching the whole text.
        let cut = truncate_chars(&s, 60);
        assert_eq!(cut.chars().count(), 60);
    }

    #[test]
    fn defuse_inserts_zero_width_space_only_in_whole_words() {
        let s = "@everyone @Here @hereford me@here. @channel";
        assert_eq!(
            defuse_at_words(s, &["everyone", "here"]),
            "@\u{200B}everyone @\u{200B}Here @hereford me@\u{200B}here. @channel"
        );
        assert!(matches!(
            defuse_at_words("no mentions", &["here"]),
            Cow::Borrowed(_)
        ));
        assert_eq!(defuse_at_words("@", &["here"]), "@");
    }

    #[test]
    fn open_bidi_controls_are_closed_at_the_end() {
        assert!(matches!(close_bidi("plain"), Cow::Borrowed(_)));
        // Balanced: untouched.
        assert!(matches!(
            close_bidi("a\u{202E}b\u{202C}c"),
            Cow::Borrowed(_)
        ));
        assert_eq!(close_bidi("a\u{202E}bc"), "a\u{202E}bc\u{202C}");
        assert_eq!(
            close_bidi("\u{202B}x\u{2067}y"),
            "\u{202B}x\u{2067}y\u{2069}\u{202C}"
        );
        // A stray closer does not count against a later opener.
        assert_eq!(close_bidi("\u{202C}\u{202E}z"), "\u{202C}\u{202E}z\u{202C}");
        // A line break ends the paragraph, and the controls opened in it.
        assert!(matches!(close_bidi("\u{202E}a\nb"), Cow::Borrowed(_)));
    }

    #[test]
    fn tweet_fields_are_read_leniently() {
        let event = json!({
            "author_username": "@elonmusk",
            "tweet_text": "  ",
            "tweet_url": "javascript:alert(1)",
            "tweet_id": 1234567890,
            "rule_id": 42,
            "latency_ms": 2500,
            "tweet_published_at": "yesterday",
        });
        let t = Tweet::from_event(event.as_object().unwrap());
        assert_eq!(t.author, Some("elonmusk"));
        assert_eq!(t.profile_url.unwrap().as_str(), "https://x.com/elonmusk");
        assert_eq!(t.text, None);
        assert_eq!(
            t.url.unwrap().as_str(),
            "https://x.com/elonmusk/status/1234567890"
        );
        assert_eq!(t.source, Some(Source::Rule("42".into())));
        assert_eq!(t.latency.as_deref(), Some("2.5 s"));
        assert_eq!(t.published_at, None);
    }

    #[test]
    fn odd_author_names_get_no_profile_link() {
        let event = json!({"author_username": "<!channel>"});
        let t = Tweet::from_event(event.as_object().unwrap());
        assert_eq!(t.author, Some("<!channel>"));
        assert!(t.profile_url.is_none());
    }

    #[test]
    fn latency_reads_naturally() {
        assert_eq!(format_latency(0.0), "0 ms");
        assert_eq!(format_latency(150.4), "150 ms");
        assert_eq!(format_latency(12_345.0), "12.3 s");
        assert_eq!(format_latency(125_000.0), "2 min 5 s");
    }

    #[test]
    fn iso8601_shape() {
        for ok in [
            "2026-03-13T12:00:00Z",
            "2026-03-13T12:00:00.150Z",
            "2026-03-13T12:00:00+05:30",
            "2026-03-13T23:59:60.123456789-08:00",
        ] {
            assert!(is_iso8601(ok), "{ok}");
        }
        for bad in [
            "",
            "2026-03-13",
            "2026-03-13 12:00:00Z",
            "2026-13-13T12:00:00Z",
            "2026-03-13T12:00:00",
            "2026-03-13T12:00:00.Z",
            "2026-03-13T12:00:00+0530",
            "2026-03-13T12:00:00Zjunk",
            "２０２６-03-13T12:00:00Z",
        ] {
            assert!(!is_iso8601(bad), "{bad}");
        }
    }
}
