//! The `*` patterns of `monitors`, `authors` and `where` strings, and the case folding
//! they compare with.
//!
//! Folding maps every character to its Unicode lowercase, one character at a time, with
//! the final sigma `ς` read as `σ`. The same function folds the pattern (once, at
//! start-up) and the event's value (per event), so that a titlecase letter such as `ǅ`
//! (U+01C5, neither upper- nor lowercase) folds the same way on both sides.

use std::borrow::Cow;

/// The folded form of one character: usually one character, sometimes more (`İ`).
type Folded = std::iter::Map<std::char::ToLowercase, fn(char) -> char>;

fn fold_char(c: char) -> Folded {
    fn sigma(c: char) -> char {
        if c == 'ς' { 'σ' } else { c }
    }
    c.to_lowercase().map(sigma as fn(char) -> char)
}

/// Whether folding changes `c`.
fn changes(c: char) -> bool {
    let mut folded = fold_char(c);
    folded.next() != Some(c) || folded.next().is_some()
}

/// `s` case-folded, without allocating when folding changes nothing (ids, most names).
pub(crate) fn fold(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        };
    }
    if s.chars().any(changes) {
        Cow::Owned(s.chars().flat_map(fold_char).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// Room for one folded event value on the stack: monitor names and usernames fit.
pub(crate) const FOLD_INLINE: usize = 64;

/// [`fold`] without allocating: a changed string is written into `buf` when it fits
/// (routing folds a few event values per event, and most names have a capital).
pub(crate) fn fold_in<'a>(s: &'a str, buf: &'a mut [u8; FOLD_INLINE]) -> Cow<'a, str> {
    if s.is_ascii() {
        if !s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Cow::Borrowed(s);
        }
        let Some(out) = buf.get_mut(..s.len()) else {
            return Cow::Owned(s.to_ascii_lowercase());
        };
        out.copy_from_slice(s.as_bytes());
        out.make_ascii_lowercase();
        return match std::str::from_utf8(out) {
            Ok(folded) => Cow::Borrowed(folded),
            Err(_) => fold(s),
        };
    }
    if !s.chars().any(changes) {
        return Cow::Borrowed(s);
    }
    let mut len = 0;
    for c in s.chars().flat_map(fold_char) {
        let Some(room) = buf.get_mut(len..len + c.len_utf8()) else {
            return fold(s);
        };
        c.encode_utf8(room);
        len += c.len_utf8();
    }
    match std::str::from_utf8(&buf[..len]) {
        Ok(folded) => Cow::Borrowed(folded),
        Err(_) => fold(s),
    }
}

/// A folded `*` pattern sorted into its shape once, at start-up, so that the shapes
/// configs use (`user_*`, `*bot`, `*news*`) cost one comparison per event instead of a
/// walk of the general matcher (the walk was a quarter of routing's time in the bench).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Glob {
    /// No `*`: the whole value.
    Exact(Box<str>),
    /// `abc*`.
    Prefix(Box<str>),
    /// `*abc`.
    Suffix(Box<str>),
    /// `*abc*`.
    Contains(Box<str>),
    /// `*` alone (or several).
    Any,
    /// Stars inside: [`glob_match`].
    General(Box<str>),
}

impl Glob {
    /// The shape of `folded` (a pattern already case-folded).
    pub(crate) fn new(folded: &str) -> Glob {
        let inner = folded.trim_matches('*');
        let (lead, trail) = (folded.starts_with('*'), folded.ends_with('*'));
        if inner.is_empty() {
            return if folded.is_empty() {
                Glob::Exact("".into())
            } else {
                Glob::Any
            };
        }
        if inner.contains('*') {
            return Glob::General(folded.into());
        }
        match (lead, trail) {
            (false, false) => Glob::Exact(inner.into()),
            (false, true) => Glob::Prefix(inner.into()),
            (true, false) => Glob::Suffix(inner.into()),
            (true, true) => Glob::Contains(inner.into()),
        }
    }

    /// Whether the folded `text` matches: the same answer as [`glob_match`].
    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Glob::Exact(s) => text == &**s,
            Glob::Prefix(s) => text.starts_with(&**s),
            Glob::Suffix(s) => text.ends_with(&**s),
            Glob::Contains(s) => memchr::memmem::find(text.as_bytes(), s.as_bytes()).is_some(),
            Glob::Any => true,
            Glob::General(p) => glob_match(p, text),
        }
    }
}

/// `*`-only glob matching of two already folded strings, linear-time with single-star
/// backtracking.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // Let the last star swallow one more byte. Byte-wise is safe for UTF-8: a
            // literal can only match starting at the same byte sequence.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// [`glob_match`] of a folded pattern against a text that is folded on the fly, so
/// that no copy of the text is made (a `where` string borrowed from the event's bytes).
pub(crate) fn glob_match_folding(pattern: &str, text: &str) -> bool {
    if text.is_ascii() {
        glob_chars(
            pattern.chars(),
            text.bytes().map(|b| char::from(b.to_ascii_lowercase())),
        )
    } else {
        glob_chars(
            pattern.chars(),
            text.chars().flat_map(fold_char as fn(char) -> Folded),
        )
    }
}

/// The algorithm of [`glob_match`] over characters: an iterator clone is a saved position.
fn glob_chars<P, T>(mut p: P, mut t: T) -> bool
where
    P: Iterator<Item = char> + Clone,
    T: Iterator<Item = char> + Clone,
{
    // The pattern just after the last star, and the text where that star's match ends.
    let mut star: Option<(P, T)> = None;
    loop {
        let mut next_t = t.clone();
        let Some(tc) = next_t.next() else { break };
        let mut next_p = p.clone();
        match next_p.next() {
            Some('*') => {
                p = next_p;
                star = Some((p.clone(), t.clone()));
            }
            Some(pc) if pc == tc => {
                p = next_p;
                t = next_t;
            }
            _ => match &mut star {
                Some((sp, st)) => {
                    // Let the last star swallow one more character.
                    st.next();
                    p = sp.clone();
                    t = st.clone();
                }
                None => return false,
            },
        }
    }
    p.all(|c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both matchers, on a pattern folded as the router folds it.
    fn both(pattern: &str, text: &str) -> bool {
        let pattern = fold(pattern);
        let a = glob_match(&pattern, &fold(text));
        let b = glob_match_folding(&pattern, text);
        assert_eq!(a, b, "the two matchers disagree on {pattern:?} / {text:?}");
        a
    }

    #[test]
    fn each_glob_shape_answers_as_the_general_matcher() {
        let patterns = [
            "", "*", "**", "a", "ab", "a*", "ab**", "*b", "**ab", "*a*", "*ab*", "a*b", "*a*b*",
            "é*", "*ü*", "ab*ab",
        ];
        let texts = [
            "", "a", "b", "ab", "ba", "aab", "abab", "xaby", "é", "éa", "mü", "abxab",
        ];
        for p in patterns {
            let glob = Glob::new(p);
            for t in texts {
                assert_eq!(
                    glob.matches(t),
                    glob_match(p, t),
                    "{p:?} ({glob:?}) / {t:?}"
                );
            }
        }
        assert_eq!(Glob::new("user_*"), Glob::Prefix("user_".into()));
        assert_eq!(Glob::new("*bot"), Glob::Suffix("bot".into()));
        assert_eq!(Glob::new("*news*"), Glob::Contains("news".into()));
        assert_eq!(Glob::new("a*b"), Glob::General("a*b".into()));
    }

    #[test]
    fn both_matchers_on_edge_cases() {
        for (p, t, expected) in [
            ("*", "", true),
            ("a*b*c", "AxXbYyC", true),
            ("a**", "A", true),
            ("a*b", "acbd", false),
            ("*b", "abab", true),
            ("É*", "éa", true),
            ("", "a", false),
            ("", "", true),
            ("*ß*", "STRASSE", false),
            ("*ü*", "MÜNCHEN", true),
            ("en", "EN", true),
            ("en", "e", false),
            ("e", "en", false),
        ] {
            assert_eq!(both(p, t), expected, "{p:?} / {t:?}");
        }
    }

    #[test]
    fn titlecase_and_other_uncased_changes_fold_on_both_sides() {
        // U+01C4 Ǆ (upper), U+01C5 ǅ (title), U+01C6 ǆ (lower): one letter.
        for pattern in ["Ǆemal", "ǅemal", "ǆemal", "ǅ*"] {
            for text in ["Ǆemal", "ǅemal", "ǆemal", "ǅEMAL"] {
                assert!(both(pattern, text), "{pattern:?} / {text:?}");
            }
        }
        assert_eq!(fold("ǅ"), "ǆ");
        assert_eq!(fold("ΟΔΟΣ"), fold("οδος"), "final sigma");
        assert!(matches!(fold("already lower é"), Cow::Borrowed(_)));
        assert!(matches!(fold("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn folding_in_a_buffer_equals_folding() {
        let long = "Ü".repeat(40);
        for s in [
            "plain",
            "Team 001 Watchlist",
            "ÜBER News",
            "ǅemal",
            "İstanbul",
            &long,
            &"A".repeat(65),
        ] {
            let mut buf = [0u8; FOLD_INLINE];
            assert_eq!(fold_in(s, &mut buf), fold(s), "{s}");
        }
        let mut buf = [0u8; FOLD_INLINE];
        assert!(
            matches!(fold_in("Team 001", &mut buf), Cow::Borrowed(_)),
            "no allocation"
        );
    }

    #[test]
    fn the_folding_matcher_agrees_with_folding_first() {
        let mut rng = fastrand::Rng::with_seed(11);
        let alphabet = ['a', 'B', 'é', 'É', 'ǅ', 'ǆ', 'İ', 'i', '*', 'Σ', 'ς'];
        let word = |rng: &mut fastrand::Rng, max: usize| -> String {
            (0..rng.usize(0..=max))
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect()
        };
        for _ in 0..5_000 {
            let pattern = word(&mut rng, 5);
            let text: String = word(&mut rng, 6).replace('*', "");
            both(&pattern, &text);
        }
    }
}
