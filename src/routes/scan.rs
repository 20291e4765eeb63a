//! One pass over an event's JSON bytes that picks out the values at the `where` paths.
//!
//! Hand-written rather than a serde `DeserializeSeed` because it is measurably cheaper
//! per event (see BENCHMARKS.md): keys are compared as bytes against the trie without
//! UTF-8 validation, string bodies and skipped subtrees are crossed with `memchr`, and the
//! pass stops as soon as every path has been found. It trusts nothing: any byte it does
//! not expect ends the pass with what it found so far discarded (the event was validated
//! as JSON on arrival, so that does not happen in practice), it never panics, and it
//! recurses only along trie paths (skipped subtrees are crossed with a depth counter), so
//! no input can exhaust the stack.

use std::borrow::Cow;

use super::filter::{Node, Value};

/// Reads the value at every leaf of `root` from `raw` into `values` (indexed by leaf
/// id, all [`Value::Missing`] on entry). `Err` when the bytes are not what JSON allows.
pub(super) fn read<'a>(root: &Node, raw: &'a [u8], values: &mut [Value<'a>]) -> Result<(), ()> {
    let mut scan = Scanner {
        b: raw,
        i: 0,
        left: values.len(),
        values,
    };
    scan.ws();
    match scan.value(root) {
        Ok(()) | Err(Stop::Done) => Ok(()),
        Err(Stop::Bad) => Err(()),
    }
}

/// Why the pass ended early.
enum Stop {
    /// Every path has its value: the rest need not be read.
    Done,
    /// Not JSON.
    Bad,
}

struct Scanner<'a, 'v> {
    /// The event's bytes.
    b: &'a [u8],
    /// The next byte to read.
    i: usize,
    /// Leaves not found yet: at zero the pass stops.
    left: usize,
    /// Per path id: what was found.
    values: &'v mut [Value<'a>],
}

impl<'a> Scanner<'a, '_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Stop> {
        self.ws();
        if self.peek() != Some(byte) {
            return Err(Stop::Bad);
        }
        self.i += 1;
        Ok(())
    }

    fn set(&mut self, node: &Node, value: Value<'a>) -> Result<(), Stop> {
        let Some(id) = node.leaf else { return Ok(()) };
        if matches!(self.values[id], Value::Missing) {
            self.left -= 1;
        }
        self.values[id] = value;
        if self.left == 0 {
            return Err(Stop::Done);
        }
        Ok(())
    }

    /// The value at the cursor, for `node`: descends into an object when paths go on
    /// through it, records it when a path ends here, skips it otherwise.
    fn value(&mut self, node: &Node) -> Result<(), Stop> {
        match self.peek().ok_or(Stop::Bad)? {
            b'{' if !node.children.is_empty() => {
                self.object(node)?;
                self.set(node, Value::Other)
            }
            _ if node.leaf.is_none() => self.skip(),
            b'"' => {
                let (body, escaped) = self.string()?;
                let value = if escaped {
                    // Escapes are rare in the fields routes test: unescape with serde_json.
                    let quoted = &self.b[body.start - 1..=body.end];
                    let s: String = serde_json::from_slice(quoted).map_err(|_| Stop::Bad)?;
                    Value::Str(Cow::Owned(s))
                } else {
                    let s = std::str::from_utf8(&self.b[body]).map_err(|_| Stop::Bad)?;
                    Value::Str(Cow::Borrowed(s))
                };
                self.set(node, value)
            }
            b't' => {
                self.literal(b"true")?;
                self.set(node, Value::Bool(true))
            }
            b'f' => {
                self.literal(b"false")?;
                self.set(node, Value::Bool(false))
            }
            b'n' => {
                self.literal(b"null")?;
                self.set(node, Value::Other)
            }
            b'-' | b'0'..=b'9' => {
                let value = self.number()?;
                self.set(node, value)
            }
            b'[' | b'{' => {
                self.skip()?;
                self.set(node, Value::Other)
            }
            _ => Err(Stop::Bad),
        }
    }

    /// An object at the cursor, its keys matched against `node`'s children.
    fn object(&mut self, node: &Node) -> Result<(), Stop> {
        self.i += 1; // `{`
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(Stop::Bad);
            }
            let (key, escaped) = self.string()?;
            let child = if escaped {
                let quoted = &self.b[key.start - 1..=key.end];
                let key: String = serde_json::from_slice(quoted).map_err(|_| Stop::Bad)?;
                node.child(key.as_bytes())
            } else {
                node.child(&self.b[key])
            };
            self.expect(b':')?;
            self.ws();
            match child {
                Some(child) => self.value(child)?,
                None => self.skip()?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Bad),
            }
        }
    }

    /// A string at the cursor (on its `"`): the range of its body, and whether it has
    /// escapes. The cursor ends after the closing quote.
    fn string(&mut self) -> Result<(std::ops::Range<usize>, bool), Stop> {
        let start = self.i + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            let rest = self.b.get(at..).ok_or(Stop::Bad)?;
            at += quote_or_backslash(rest).ok_or(Stop::Bad)?;
            if self.b[at] == b'"' {
                self.i = at + 1;
                return Ok((start..at, escaped));
            }
            // A backslash and the byte it escapes (`\u` is followed by hex digits only).
            escaped = true;
            at += 2;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Stop> {
        if !self.b[self.i..].starts_with(word) {
            return Err(Stop::Bad);
        }
        self.i += word.len();
        Ok(())
    }

    /// A number at the cursor: integers exactly (as far as an i128 holds them), anything
    /// with a fraction or an exponent as the nearest f64.
    fn number(&mut self) -> Result<Value<'a>, Stop> {
        let start = self.i;
        while matches!(
            self.peek(),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.i += 1;
        }
        // Only ASCII was taken: the slice is valid UTF-8.
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| Stop::Bad)?;
        if !text.contains(['.', 'e', 'E'])
            && let Ok(n) = text.parse::<i128>()
        {
            return Ok(Value::Int(n));
        }
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::Float)
            .ok_or(Stop::Bad)
    }

    /// Crosses the value at the cursor without looking at it.
    fn skip(&mut self) -> Result<(), Stop> {
        match self.peek().ok_or(Stop::Bad)? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek().ok_or(Stop::Bad)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                // A number or a literal: up to the next delimiter.
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.i += 1;
                }
                Ok(())
            }
        }
    }
}

/// The first `"` or `\\` in `s`. Most strings are short keys and values: eight bytes at
/// a time in a register find their end with fewer instructions than setting up a vector
/// search, which takes over for long ones (a tweet's text).
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit set in each byte of `x` that is zero; the lowest one flagged is exact.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut i = 0;
    while i < 32 {
        let Some(chunk) = s.get(i..i + 8) else { break };
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let found = zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(i + found.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    memchr::memchr2(b'"', b'\\', &s[i..]).map(|at| i + at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::filter::Paths;
    use serde_json::{Value as Json, json};

    /// What a path holds, read the slow way from a parsed `serde_json::Value`.
    fn expected<'j>(doc: &'j Json, path: &[String]) -> Value<'j> {
        let mut v = doc;
        for segment in path {
            match v.get(segment) {
                Some(inner) if v.is_object() => v = inner,
                _ => return Value::Missing,
            }
        }
        match v {
            Json::String(s) => Value::Str(Cow::Borrowed(s)),
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Value::Int(i.into()),
                (_, Some(u)) => Value::Int(u.into()),
                _ => Value::Float(n.as_f64().unwrap()),
            },
            _ => Value::Other,
        }
    }

    fn random_json(rng: &mut fastrand::Rng, depth: usize) -> Json {
        let keys = ["a", "b", "lang", "é", "k\"q", "x\\y", "tab\t", "a.b"];
        let strings = [
            "en",
            "EN",
            "with \"quotes\"",
            "\\",
            "ünï",
            "\u{1F680}",
            "",
            "{[,:]}",
        ];
        match rng.u8(..if depth == 0 { 5 } else { 7 }) {
            0 => json!(strings[rng.usize(..strings.len())]),
            1 => json!(rng.bool()),
            2 => json!(null),
            3 => [
                json!(rng.i64(..)),
                json!(rng.u64(..)),
                json!(-0.5),
                json!(1e300),
                json!(0),
            ][rng.usize(..5)]
            .clone(),
            4 => json!(rng.f64() * 1000.0),
            5 => Json::Array(
                (0..rng.usize(..4))
                    .map(|_| random_json(rng, depth - 1))
                    .collect(),
            ),
            _ => Json::Object(
                (0..rng.usize(..5))
                    .map(|_| {
                        (
                            keys[rng.usize(..keys.len())].to_string(),
                            random_json(rng, depth - 1),
                        )
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn the_scan_agrees_with_serde_json_on_random_documents() {
        let mut rng = fastrand::Rng::with_seed(3);
        let segments = ["a", "b", "lang", "é", "k\"q", "x\\y", "a.b"];
        for round in 0..3_000 {
            let mut doc = random_json(&mut rng, 4);
            if !doc.is_object() {
                doc = json!({ "a": doc });
            }
            let mut paths = Paths::default();
            let list: Vec<Vec<String>> = (0..rng.usize(1..6))
                .map(|_| {
                    (0..rng.usize(1..4))
                        .map(|_| segments[rng.usize(..segments.len())].to_string())
                        .collect()
                })
                .collect();
            let ids: Vec<usize> = list.iter().map(|p| paths.id(p)).collect();
            let text = if rng.bool() {
                serde_json::to_string(&doc).unwrap()
            } else {
                serde_json::to_string_pretty(&doc).unwrap()
            };
            let values = paths.read(text.as_bytes());
            for (path, id) in list.iter().zip(ids) {
                assert_eq!(
                    values.get(id),
                    &expected(&doc, path),
                    "round {round}: {path:?} in {text}"
                );
            }
        }
    }

    #[test]
    fn broken_bytes_never_panic_and_find_nothing() {
        let mut paths = Paths::default();
        let deep = paths.id(&["a".into(), "b".into()]);
        let last = paths.id(&["z".into()]);
        let doc =
            br#"{"a": {"x": [1, "s\"}", {"y": null}], "b": "v\u00e9"}, "n": -1.5e3, "z": true}"#;
        let whole = paths.read(doc);
        assert_eq!(whole.get(deep), &Value::Str(Cow::Owned("vé".into())));
        assert_eq!(whole.get(last), &Value::Bool(true));
        // Cut anywhere before `true` is complete: nothing found (the scan stops once
        // every path is found, so a cut after it changes nothing).
        let complete = doc.windows(4).position(|w| w == b"true").unwrap() + 4;
        for end in 0..doc.len() {
            let cut = paths.read(&doc[..end]);
            if end < complete {
                assert_eq!(cut.get(last), &Value::Missing, "cut at {end}");
                assert_eq!(cut.get(deep), &Value::Missing, "cut at {end}");
            } else {
                assert_eq!(cut.get(last), &Value::Bool(true), "cut at {end}");
            }
        }
        for junk in [
            &b"[1,2]"[..],
            b"\"s\"",
            b"{\"a\":}",
            b"{\"a\" 1}",
            b"{\"z\":tru}",
            b"\xff",
            b"{\"a\":{\"b\":\"\xff\"}}",
        ] {
            let values = paths.read(junk);
            assert_eq!(values.get(deep), &Value::Missing, "{junk:?}");
        }
    }

    #[test]
    fn the_word_search_finds_what_memchr_finds() {
        let mut rng = fastrand::Rng::with_seed(5);
        let bytes = [
            b'a',
            b'"',
            b'\\',
            0x00,
            0x22 ^ 0x80,
            0x5c ^ 0x01,
            0xff,
            b'b',
        ];
        for _ in 0..20_000 {
            let s: Vec<u8> = (0..rng.usize(0..70))
                .map(|_| {
                    if rng.u8(..8) == 0 {
                        bytes[rng.usize(..bytes.len())]
                    } else {
                        b'x'
                    }
                })
                .collect();
            assert_eq!(
                quote_or_backslash(&s),
                memchr::memchr2(b'"', b'\\', &s),
                "{s:?}"
            );
        }
    }

    #[test]
    fn the_scan_stops_once_every_path_is_found() {
        let mut paths = Paths::default();
        let id = paths.id(&["a".into()]);
        // Everything after `a` is broken: reading stopped before it.
        let values = paths.read(br#"{"a": 1, "b": ][ nonsense"#);
        assert_eq!(values.get(id), &Value::Int(1));
    }
}
