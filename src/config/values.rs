//! Parsers for the value syntaxes of the config: durations, sizes, rate limits, URLs,
//! templates, signing secrets, target names.
//!
//! Each takes the (already interpolated) string and returns the runtime value or an
//! [`Invalid`] that says what is wrong. None of them puts the input in its message:
//! the caller knows the key and the position, and the input may be a secret.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::error::closest;
use super::{RateLimit, SigningKey, TEMPLATE_FIELDS, Template, TemplatePart};

/// What is wrong with a value, and maybe what was meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// What is wrong with the value.
    pub message: String,
    /// The nearest valid value, when one is close.
    pub suggestion: Option<String>,
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        Invalid {
            message: message.to_owned(),
            suggestion: None,
        }
    }
}

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid {
            message,
            suggestion: None,
        }
    }
}

/// `"500ms"`, `"75s"`, `"5m"`, `"24h"`, `"1h 30m"` (humantime syntax); never zero,
/// since every duration in the config is a timeout, a delay or a window.
pub(crate) fn duration(s: &str) -> Result<Duration, Invalid> {
    let d = humantime::parse_duration(s.trim()).map_err(
        |_| "not a duration: write a number and a unit, like \"500ms\", \"75s\", \"5m\" or \"24h\"",
    )?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

/// `"512B"`, `"64KiB"`, `"1MiB"`, `"1GiB"` (1024-based), `"64KB"`, `"1MB"`, `"1GB"`
/// (1000-based), or a plain number of bytes. Units are case-insensitive; never zero.
pub(crate) fn size(s: &str) -> Result<usize, Invalid> {
    const HINT: &str = "not a size: write a whole number of bytes or a number and a unit, like \"512B\", \"64KiB\" or \"1MiB\"";
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = (&s[..digits], s[digits..].trim());
    let number: u64 = number.parse().map_err(|_| HINT)?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(HINT.into()),
    };
    let bytes = number
        .checked_mul(multiplier)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or("size too large")?;
    bytes_not_zero(bytes)
}

/// A size given as a TOML integer: a number of bytes.
pub(crate) fn size_bytes(n: i64) -> Result<usize, Invalid> {
    let bytes = usize::try_from(n).map_err(|_| "must be a positive number of bytes")?;
    bytes_not_zero(bytes)
}

fn bytes_not_zero(bytes: usize) -> Result<usize, Invalid> {
    if bytes == 0 {
        return Err("must be more than zero bytes".into());
    }
    Ok(bytes)
}

/// `"COUNT/PERIOD"`: `"1/s"`, `"5/2s"`, `"100/m"`, `"10/500ms"`. A period without a
/// number means one of its unit.
pub(crate) fn rate_limit(s: &str) -> Result<RateLimit, Invalid> {
    const HINT: &str =
        "not a rate limit: write COUNT/PERIOD, like \"1/s\", \"5/2s\", \"100/m\" or \"10/500ms\"";
    let (count, per) = s.split_once('/').ok_or(HINT)?;
    let count: u32 = count.trim().parse().map_err(|_| HINT)?;
    if count == 0 {
        return Err("the count must be at least 1".into());
    }
    let per = per.trim();
    let per = if per.starts_with(|c: char| c.is_ascii_digit()) {
        humantime::parse_duration(per)
    } else {
        humantime::parse_duration(&format!("1{per}"))
    }
    .map_err(|_| HINT)?;
    if per.is_zero() {
        return Err("the period must be longer than zero".into());
    }
    Ok(RateLimit { count, per })
}

/// The stream URL: `wss://` or `ws://`, with a host, and without the key in it (the key
/// goes in `api_key`, which is kept secret; the URL is printed).
pub(crate) fn source_url(s: &str) -> Result<reqwest::Url, Invalid> {
    let url = url_with_host(s)?;
    if !matches!(url.scheme(), "wss" | "ws") {
        return Err("must be a wss:// or ws:// URL".into());
    }
    if url.query_pairs().any(|(k, _)| k == "api_key") {
        return Err(
            "must not contain the api_key: set `api_key` instead, which is kept secret".into(),
        );
    }
    Ok(url)
}

/// A target endpoint: `https://` or `http://`, with a host.
pub(crate) fn http_url(s: &str) -> Result<reqwest::Url, Invalid> {
    let url = url_with_host(s)?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be an https:// or http:// URL".into());
    }
    Ok(url)
}

fn url_with_host(s: &str) -> Result<reqwest::Url, Invalid> {
    // url's parse errors ("invalid port number", "relative URL without a base") name the
    // kind of fault, never the input, so they are safe to show.
    let url = reqwest::Url::parse(s.trim()).map_err(|e| format!("not a valid URL: {e}"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("not a valid URL: it has no host".into());
    }
    Ok(url)
}

/// A bot token as @BotFather issues it: the bot's numeric id, `:`, and a secret of
/// letters, digits, `_` and `-` (35 characters today; not fixed by Telegram).
pub(crate) fn is_telegram_token(s: &str) -> bool {
    let Some((id, key)) = s.split_once(':') else {
        return false;
    };
    !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && key.len() >= 20
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// A subject to publish to: `.`-separated tokens of letters, digits, `_` and `-` (what
/// NATS accepts for a published subject, less the characters that are trouble in a
/// stream's filter: no wildcard, no space).
pub(crate) fn is_nats_subject(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        })
}

/// Target names become storage keys in the outbox, so they are kept to `[A-Za-z0-9_.-]+`.
pub(crate) fn is_target_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The longest webhook name Discord accepts, in characters.
const DISCORD_USERNAME_MAX: usize = 80;

/// A webhook `username` Discord accepts: 1 to 80 characters once Discord has trimmed the
/// surrounding whitespace, and neither "discord" nor "clyde" in it, in any case. Discord
/// answers any other name with a 400 for every message, which would dead-letter them all.
pub(crate) fn discord_username(s: &str) -> Result<&str, Invalid> {
    let name = s.trim();
    let len = name.chars().count();
    if len == 0 {
        return Err(
            "Discord refuses an empty username (remove the key to use the webhook's own name)"
                .into(),
        );
    }
    if len > DISCORD_USERNAME_MAX {
        return Err(format!(
            "Discord refuses a username longer than {DISCORD_USERNAME_MAX} characters (this one has {len})"
        )
        .into());
    }
    let lower = name.to_lowercase();
    for word in ["discord", "clyde"] {
        if lower.contains(word) {
            return Err(format!("Discord refuses a username containing \"{word}\"").into());
        }
    }
    Ok(name)
}

/// `whsec_` + base64 → the decoded bytes (Standard Webhooks style); anything else →
/// its UTF-8 bytes. Base64 padding is optional, since secrets get copied without it.
pub(crate) fn signing_key(s: &str) -> Result<SigningKey, Invalid> {
    let bytes = match s.strip_prefix("whsec_") {
        Some(encoded) => {
            let engine = GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                GeneralPurposeConfig::new()
                    .with_decode_padding_mode(DecodePaddingMode::Indifferent),
            );
            // The decoder's error names the offending byte and offset: not shown.
            engine
                .decode(encoded)
                .map_err(|_| "not valid base64 after the `whsec_` prefix")?
        }
        None => s.as_bytes().to_vec(),
    };
    if bytes.is_empty() {
        return Err("must not be empty (remove the key to send unsigned requests)".into());
    }
    Ok(SigningKey(bytes))
}

/// Splits a message template into literals and `{field}` placeholders; `{{` and `}}`
/// are literal braces. Placeholders must name a field of [`TEMPLATE_FIELDS`].
pub(crate) fn template(s: &str) -> Result<Template, Invalid> {
    if s.is_empty() {
        return Err("must not be empty (remove the key to use the default message)".into());
    }
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = s;
    while let Some(at) = rest.find(['{', '}']) {
        literal.push_str(&rest[..at]);
        let brace = &rest[at..];
        if let Some(tail) = brace.strip_prefix("{{") {
            literal.push('{');
            rest = tail;
        } else if let Some(tail) = brace.strip_prefix("}}") {
            literal.push('}');
            rest = tail;
        } else if brace.starts_with('}') {
            return Err("unmatched `}` (write `}}` for a literal brace)".into());
        } else {
            let body = &brace[1..];
            let close = body
                .find('}')
                .ok_or("`{` is not closed by `}` (write `{{` for a literal brace)")?;
            let field = &body[..close];
            if !TEMPLATE_FIELDS.contains(&field) {
                return Err(Invalid {
                    message: format!(
                        "unknown placeholder `{{{field}}}` (known: {})",
                        TEMPLATE_FIELDS.join(", ")
                    ),
                    suggestion: closest(field, TEMPLATE_FIELDS.iter().copied())
                        .map(|f| format!("{{{f}}}")),
                });
            }
            if !literal.is_empty() {
                parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
            }
            parts.push(TemplatePart::Field(field.to_owned()));
            rest = &body[close + 1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    Ok(Template { parts })
}

/// The value paired with `s` in `choices`, matched exactly; otherwise a message listing
/// the names and suggesting the closest.
pub(crate) fn choice<T: Copy>(s: &str, what: &str, choices: &[(&str, T)]) -> Result<T, Invalid> {
    match choices.iter().find(|(name, _)| *name == s) {
        Some((_, value)) => Ok(*value),
        None => {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            Err(Invalid {
                message: format!("unknown {what}: expected {}", list(&names)),
                suggestion: closest(s, names.iter().copied()).map(str::to_owned),
            })
        }
    }
}

/// "`a`, `b` or `c`".
fn list(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn durations_are_humane_and_never_zero() {
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("75s").unwrap(), secs(75));
        assert_eq!(duration("5m").unwrap(), secs(300));
        assert_eq!(duration("24h").unwrap(), secs(86_400));
        assert_eq!(duration("1h 30m").unwrap(), secs(5_400));
        assert!(
            duration("75")
                .unwrap_err()
                .message
                .contains("not a duration")
        );
        assert!(duration("soon").is_err());
        assert!(duration("").is_err());
        assert!(
            duration("0s")
                .unwrap_err()
                .message
                .contains("longer than zero")
        );
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(size("512B").unwrap(), 512);
        assert_eq!(size("512").unwrap(), 512);
        assert_eq!(size("64KiB").unwrap(), 64 * 1024);
        assert_eq!(size("1MiB").unwrap(), 1 << 20);
        assert_eq!(size("1 mib").unwrap(), 1 << 20);
        assert_eq!(size("2GiB").unwrap(), 2 << 30);
        assert_eq!(size("64KB").unwrap(), 64_000);
        assert_eq!(size("1MB").unwrap(), 1_000_000);
        assert!(size("1.5MiB").is_err());
        assert!(size("1XB").is_err());
        assert!(size("MiB").is_err());
        assert!(size("0KiB").unwrap_err().message.contains("more than zero"));
        assert!(size("99999999999999999999GiB").is_err());
        assert_eq!(size_bytes(1024).unwrap(), 1024);
        assert!(size_bytes(0).is_err());
        assert!(size_bytes(-1).is_err());
    }

    #[test]
    fn rate_limits_are_count_per_period() {
        let rate = |count, per| RateLimit { count, per };
        assert_eq!(rate_limit("1/s").unwrap(), rate(1, secs(1)));
        assert_eq!(rate_limit("5/2s").unwrap(), rate(5, secs(2)));
        assert_eq!(rate_limit("100/m").unwrap(), rate(100, secs(60)));
        assert_eq!(
            rate_limit("10/500ms").unwrap(),
            rate(10, Duration::from_millis(500))
        );
        assert_eq!(rate_limit(" 3 / h ").unwrap(), rate(3, secs(3_600)));
        assert!(
            rate_limit("0/s")
                .unwrap_err()
                .message
                .contains("at least 1")
        );
        assert!(
            rate_limit("1/0s")
                .unwrap_err()
                .message
                .contains("longer than zero")
        );
        assert!(rate_limit("5").is_err());
        assert!(rate_limit("-1/s").is_err());
        assert!(rate_limit("x/s").is_err());
        assert!(rate_limit("1/fortnight").is_err());
    }

    #[test]
    fn urls_are_checked_by_scheme_and_never_quoted() {
        assert!(source_url("wss://scrapebadger.com/v1/twitter/stream").is_ok());
        assert!(source_url("ws://127.0.0.1:9000/").is_ok());
        let e = source_url("https://scrapebadger.com/v1/twitter/stream").unwrap_err();
        assert!(e.message.contains("wss:// or ws://"));
        let e = source_url("wss://x.example/stream?api_key=sk_SECRET").unwrap_err();
        assert!(e.message.contains("api_key") && !e.message.contains("sk_SECRET"));
        assert!(http_url("https://hooks.slack.com/services/T/B/X").is_ok());
        assert!(http_url("http://localhost:8080/hook").is_ok());
        for bad in [
            "ftp://host/x",
            "hooks.slack.com/services/T/B/SECRET",
            "https://",
            "https://host:99999/SECRET",
            "mailto:SECRET@x",
        ] {
            let e = http_url(bad).unwrap_err();
            assert!(!e.message.contains("SECRET"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn target_names_are_storage_safe() {
        for ok in ["team-slack", "a.b_c-9", "X"] {
            assert!(is_target_name(ok), "{ok}");
        }
        for bad in ["", "team slack", "a/b", "é", "a:b"] {
            assert!(!is_target_name(bad), "{bad}");
        }
    }

    #[test]
    fn signing_secrets_decode_whsec_and_take_others_as_bytes() {
        assert_eq!(
            signing_key("whsec_aGVsbG8=").unwrap(),
            SigningKey(b"hello".to_vec())
        );
        assert_eq!(
            signing_key("whsec_aGVsbG8").unwrap(),
            SigningKey(b"hello".to_vec())
        );
        assert_eq!(
            signing_key("plain-secret").unwrap(),
            SigningKey(b"plain-secret".to_vec())
        );
        let e = signing_key("whsec_not*base64").unwrap_err();
        assert!(e.message.contains("base64") && !e.message.contains("not*base64"));
        assert!(signing_key("").is_err());
        assert!(signing_key("whsec_").is_err());
    }

    #[test]
    fn templates_split_into_literals_and_fields() {
        let t = template("New tweet by @{author_username}: {tweet_url} {{raw}}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                TemplatePart::Literal("New tweet by @".into()),
                TemplatePart::Field("author_username".into()),
                TemplatePart::Literal(": ".into()),
                TemplatePart::Field("tweet_url".into()),
                TemplatePart::Literal(" {raw}".into()),
            ]
        );
        assert_eq!(
            template("{event}").unwrap().parts,
            vec![TemplatePart::Field("event".into())]
        );
        let e = template("by {author_usrname}").unwrap_err();
        assert!(e.message.contains("unknown placeholder `{author_usrname}`"));
        assert_eq!(e.suggestion.as_deref(), Some("{author_username}"));
        assert!(
            template("{tweet_url")
                .unwrap_err()
                .message
                .contains("not closed")
        );
        assert!(
            template("a } b")
                .unwrap_err()
                .message
                .contains("unmatched `}`")
        );
        assert!(template("{}").is_err());
        assert!(template("").is_err());
    }

    #[test]
    fn choices_list_the_options_and_suggest_one() {
        let kinds = [("slack", 1), ("discord", 2), ("http", 3)];
        let e = choice("slak", "target type", &kinds).unwrap_err();
        assert_eq!(
            e.message,
            "unknown target type: expected `slack`, `discord` or `http`"
        );
        assert_eq!(e.suggestion.as_deref(), Some("slack"));
        assert_eq!(choice("http", "target type", &kinds).unwrap(), 3);
        let e = choice("x", "mode", &[("only", ())]).unwrap_err();
        assert_eq!(e.message, "unknown mode: expected `only`");
        assert_eq!(e.suggestion, None);
    }
}
