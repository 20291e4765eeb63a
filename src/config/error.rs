//! What went wrong with a config file, and exactly where.
//!
//! Every problem found while reading the file is a [`Problem`] (a byte span, a key path,
//! a message and maybe a suggestion). Only at the end, with the file's text at hand, is it
//! turned into a [`ConfigError`] carrying 1-based line and column. Messages are written
//! by this module's callers from fixed text and key names: they never quote a URL, a
//! header value, a key or a secret, because they end up in logs.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. The cause is kept as the error's `source`, so print
    /// the chain (`{:#}` with anyhow) to see it.
    #[error("{}: cannot read the config file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error(transparent)]
    Invalid(Box<Diagnostic>),
}

impl ConfigError {
    /// The config file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Read { path, .. } => path,
            ConfigError::Invalid(d) => &d.path,
        }
    }

    /// Where and what, for an invalid file; `None` for a read error.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid(d) => Some(d),
        }
    }
}

/// One problem in a config file, located for a human and for tools.
///
/// Displays as `{path}:{line}:{column}: {key}: {message}`, then
/// `` (did you mean `{suggestion}`?)`` when there is a close valid name. TOML syntax
/// errors come before any key is known: they display without the `{key}: ` part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostic {
    /// The config file.
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters (not bytes) from the start of the line.
    pub column: usize,
    /// Byte range in the file, for tools that underline.
    pub span: Range<usize>,
    /// Dotted key path, like `targets.team-slack.url` or `routes[1].targets[0]`; `None`
    /// for TOML syntax errors.
    pub key: Option<String>,
    /// What is wrong (never the offending value when it could be a secret).
    pub message: String,
    /// The nearest valid name, when one is close to what was written.
    pub suggestion: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.path.display(), self.line, self.column)?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(suggestion) = &self.suggestion {
            write!(f, " (did you mean `{suggestion}`?)")?;
        }
        Ok(())
    }
}

/// A problem found while walking the document, before line and column are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Byte range in the file that the problem is about.
    pub span: Range<usize>,
    /// The dotted key, when known (`targets.x.url`); syntax errors have none.
    pub key: Option<String>,
    /// What is wrong, as a sentence fragment.
    pub message: String,
    /// The nearest valid name, when one is close.
    pub suggestion: Option<String>,
}

impl Problem {
    pub fn new(span: Range<usize>, key: &str, message: impl Into<String>) -> Self {
        Problem {
            span,
            key: Some(key.to_owned()),
            message: message.into(),
            suggestion: None,
        }
    }

    /// A TOML syntax error. Only `message()` is used: the error's `Display` quotes the
    /// offending line of the file, which may hold a secret.
    pub fn syntax(error: &toml::de::Error) -> Self {
        Problem {
            span: error.span().unwrap_or(0..0),
            key: None,
            message: format!("invalid TOML: {}", error.message()),
            suggestion: None,
        }
    }

    pub fn suggest(mut self, suggestion: Option<impl Into<String>>) -> Self {
        self.suggestion = suggestion.map(Into::into);
        self
    }

    /// Locates the problem in `text`, the file it was found in.
    pub fn into_error(self, text: &str, path: &Path) -> ConfigError {
        let (line, column) = line_column(text, self.span.start);
        ConfigError::Invalid(Box::new(Diagnostic {
            path: path.to_owned(),
            line,
            column,
            span: self.span,
            key: self.key,
            message: self.message,
            suggestion: self.suggestion,
        }))
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The candidate closest to `word`, if it is close enough to be what was meant.
///
/// Case is ignored. A candidate is close when up to a third of the longer word differs
/// (at least one edit), which catches typos (`urll`), swapped letters (`headres`) and
/// `-` for `_`, or when one word starts with the other (`listen_addr`, `rate`), without
/// suggesting unrelated names. The fewest edits win.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .filter_map(|c| {
            let candidate = c.to_lowercase();
            let distance = strsim::damerau_levenshtein(&word, &candidate);
            let (shorter, longer) = if word.len() <= candidate.len() {
                (&word, &candidate)
            } else {
                (&candidate, &word)
            };
            let few_edits = distance <= (longer.chars().count() / 3).max(1);
            let prefix = shorter.chars().count() >= 3 && longer.starts_with(shorter.as_str());
            (few_edits || prefix).then_some((distance, c))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // `=` after the two-byte `é` and a space: byte 10, character column 4.
        assert_eq!(line_column(text, 10), (2, 4));
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let keys = ["url", "api_key", "idle_timeout", "headers"];
        assert_eq!(closest("urll", keys), Some("url"));
        assert_eq!(closest("api-key", keys), Some("api_key"));
        assert_eq!(closest("URL", keys), Some("url"));
        assert_eq!(closest("headres", keys), Some("headers"));
        assert_eq!(closest("idle_timout", keys), Some("idle_timeout"));
        assert_eq!(closest("header", keys), Some("headers"));
        assert_eq!(closest("api", keys), Some("api_key"));
        assert_eq!(closest("url_of_the_stream", keys), Some("url"));
        assert_eq!(closest("color", keys), None);
        assert_eq!(closest("x", keys), None);
    }
}
