//! Values that must never be printed: API keys, webhook URLs, tokens, signing secrets.
//!
//! `Secret` wraps a string so that `Debug` and `Display` print `***`; the only way to
//! the value is [`Secret::expose`], which makes every use of a secret easy to audit.

use std::fmt;

/// A string that prints as `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Call only where it is sent on the wire or fed to a MAC.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL that carries a secret (a Slack or Discord webhook, a URL with a token in it).
///
/// `Display` shows only the scheme, host, port and first path segment, then `***`:
/// `https://hooks.slack.com/services/***`. That is enough for an operator to tell
/// targets apart and nothing an attacker could use.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    /// The real URL, only for sending.
    url: reqwest::Url,
    /// What prints: scheme, host and the first path segment, then `***`.
    redacted: String,
}

impl SecretUrl {
    pub fn new(url: reqwest::Url) -> Self {
        let redacted = redact_url(&url);
        SecretUrl { url, redacted }
    }

    /// A URL whose printable form its maker knows better than [`redact_url`] (a Telegram
    /// URL, whose first path segment is the token).
    pub fn with_redacted(url: reqwest::Url, redacted: String) -> Self {
        SecretUrl { url, redacted }
    }

    /// The full URL, for the request itself only.
    pub fn expose(&self) -> &reqwest::Url {
        &self.url
    }

    /// The printable form.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// `scheme://host[:port]/first-segment/***`; user info, the rest of the path, the query
/// and the fragment are dropped.
pub fn redact_url(url: &reqwest::Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    let mut segments = url
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty());
    if let Some(first) = segments.next() {
        out.push('/');
        // A Telegram Bot API path starts with the token itself (`/bot123:AA…/`), in
        // an http target's URL as much as in a telegram target's.
        if first.starts_with("bot") && first.contains(':') {
            out.push_str("bot***");
            return out;
        }
        out.push_str(first);
    }
    let more_path = segments.next().is_some();
    if more_path || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty()
    {
        out.push_str("/***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_telegram_token_in_the_first_segment_is_hidden() {
        let url: reqwest::Url =
            "https://api.telegram.org/bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage"
                .parse()
                .unwrap();
        assert_eq!(redact_url(&url), "https://api.telegram.org/bot***");
    }

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("sk_live_abc");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "sk_live_abc");
    }

    #[test]
    fn webhook_urls_keep_only_what_identifies_the_host() {
        let url = reqwest::Url::parse("https://hooks.slack.com/services/T0/B0/XXXX").unwrap();
        assert_eq!(redact_url(&url), "https://hooks.slack.com/services/***");
        let url = reqwest::Url::parse("http://127.0.0.1:8080/hook?token=abc").unwrap();
        assert_eq!(redact_url(&url), "http://127.0.0.1:8080/hook/***");
        let url = reqwest::Url::parse("http://localhost:9/").unwrap();
        assert_eq!(redact_url(&url), "http://localhost:9");
    }
}
