//! A typed, located view of the parsed TOML document.
//!
//! The schema is read by walking the parser's spanned tree (`toml::de::DeTable`) rather
//! than through `#[derive(Deserialize)]`, for three reasons the contract cares about:
//! serde's type errors quote the offending value (`invalid type: string "https://hooks..."`),
//! which may be a webhook URL or a token; they do not carry the key path
//! (`targets.team-slack.url`); and they cannot say "not valid for a slack target" instead
//! of "unknown field". Here each [`Item`] knows its key path and span, string values are
//! interpolated as they are read, and error messages are built from key names only.

use std::ops::Range;

use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{Problem, closest};
use super::interpolate::{Env, interpolate};

/// One value of the document, with its key path and where it is written.
pub(crate) struct Item<'a, 'i> {
    /// Dotted path from the root, like `targets.team-slack.url` or `routes[1].targets[0]`.
    pub key: String,
    /// Where the key is written (the value itself for array elements): unknown-key and
    /// bad-name errors point here.
    pub key_span: Range<usize>,
    /// Where the value is written: errors about the value point here.
    pub span: Range<usize>,
    /// The parsed value, borrowed from the document.
    value: &'a DeValue<'i>,
}

impl<'a, 'i> Item<'a, 'i> {
    /// A problem with this value.
    pub fn problem(&self, message: impl Into<String>) -> Problem {
        Problem::new(self.span.clone(), &self.key, message)
    }

    /// A problem with this key (its name, or its being here at all).
    pub fn key_problem(&self, message: impl Into<String>) -> Problem {
        Problem::new(self.key_span.clone(), &self.key, message)
    }

    /// A problem at `range`, a byte range of this string value's text (a template's
    /// syntax error). Located exactly when the string is written verbatim in the file
    /// (no escapes, no `${VAR}`), so the file's line and column are the error's own;
    /// otherwise at the value.
    pub fn problem_within(
        &self,
        range: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Problem {
        let span = match (range, self.verbatim_start()) {
            (Some(r), Some(start)) => start + r.start..start + r.end,
            _ => self.span.clone(),
        };
        Problem::new(span, &self.key, message)
    }

    /// Where the text of a string value starts in the file, when the value is that text
    /// byte for byte: the parser borrowed it (no escape sequences), and nothing was
    /// interpolated. The quotes are told apart by what the span adds to the text: one
    /// on each side, three, or three and the line break a multi-line string drops.
    fn verbatim_start(&self) -> Option<usize> {
        let DeValue::String(std::borrow::Cow::Borrowed(s)) = self.value else {
            return None;
        };
        if s.contains('$') {
            return None;
        }
        let opening = match self.span.len().checked_sub(s.len())? {
            2 => 1,
            6 => 3,
            7 => 4,
            8 => 5,
            _ => return None,
        };
        Some(self.span.start + opening)
    }

    /// "expected X, found Y", naming only the TOML type of what was found.
    pub fn expected(&self, what: &str) -> Problem {
        let found = match self.value {
            DeValue::String(_) => "a string",
            DeValue::Integer(_) => "an integer",
            DeValue::Float(_) => "a float",
            DeValue::Boolean(_) => "a boolean",
            DeValue::Datetime(_) => "a date-time",
            DeValue::Array(_) => "an array",
            DeValue::Table(_) => "a table",
        };
        self.problem(format!("expected {what}, found {found}"))
    }

    /// A string value with `${VAR}` references expanded.
    pub fn string(&self, env: Env) -> Result<String, Problem> {
        match self.value {
            DeValue::String(s) => interpolate(s, env).map_err(|e| self.problem(e.to_string())),
            _ => Err(self.expected("a string")),
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self.value, DeValue::String(_))
    }

    pub fn is_integer(&self) -> bool {
        matches!(self.value, DeValue::Integer(_))
    }

    pub fn is_boolean(&self) -> bool {
        matches!(self.value, DeValue::Boolean(_))
    }

    pub fn is_array(&self) -> bool {
        matches!(self.value, DeValue::Array(_))
    }

    pub fn is_table(&self) -> bool {
        matches!(self.value, DeValue::Table(_))
    }

    /// The value of a TOML float (`nan` and `inf` included); `None` for anything else.
    pub fn float(&self) -> Result<Option<f64>, Problem> {
        match self.value {
            DeValue::Float(f) => {
                let text = f.as_str().replace('_', "");
                let f = match text.as_str() {
                    "inf" | "+inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    "nan" | "+nan" | "-nan" => f64::NAN,
                    _ => text
                        .parse()
                        .map_err(|_| self.problem("not a valid float"))?,
                };
                Ok(Some(f))
            }
            _ => Ok(None),
        }
    }

    pub fn integer(&self) -> Result<i64, Problem> {
        match self.value {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| self.problem("integer out of range")),
            _ => Err(self.expected("an integer")),
        }
    }

    pub fn boolean(&self) -> Result<bool, Problem> {
        match self.value {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.expected("true or false")),
        }
    }

    /// The elements, keyed `key[0]`, `key[1]`, ...
    pub fn array(&self) -> Result<Vec<Item<'a, 'i>>, Problem> {
        match self.value {
            DeValue::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(n, item)| Item {
                    key: format!("{}[{n}]", self.key),
                    key_span: item.span(),
                    span: item.span(),
                    value: item.get_ref(),
                })
                .collect()),
            _ => Err(self.expected("an array")),
        }
    }

    /// An array of strings, each expanded; each element is returned with its item so
    /// that later checks can point at it.
    pub fn strings(&self, env: Env) -> Result<Vec<(Item<'a, 'i>, String)>, Problem> {
        self.array()?
            .into_iter()
            .map(|item| {
                let s = item.string(env)?;
                Ok((item, s))
            })
            .collect()
    }

    pub fn table(&self) -> Result<Table<'a, 'i>, Problem> {
        match self.value {
            DeValue::Table(table) => Ok(Table::new(self.key.clone(), self.span.clone(), table)),
            _ => Err(self.expected("a table")),
        }
    }
}

/// A table of the document, its entries in file order.
pub(crate) struct Table<'a, 'i> {
    /// Dotted path from the root; empty for the root itself.
    pub key: String,
    /// Its header (`[targets.x]`), inline table or first dotted key: "missing key"
    /// errors point here.
    pub span: Range<usize>,
    /// Its keys and values, in file order (so errors come in file order too).
    entries: Vec<(&'a str, Item<'a, 'i>)>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn root(doc: &'a Spanned<DeTable<'i>>) -> Self {
        Table::new(String::new(), doc.span(), doc.get_ref())
    }

    /// Stands in for a table the file leaves out, so that defaults apply the same way.
    pub fn empty(key: String) -> Self {
        Table {
            key,
            span: 0..0,
            entries: Vec::new(),
        }
    }

    fn new(key: String, span: Range<usize>, table: &'a DeTable<'i>) -> Self {
        let mut entries: Vec<_> = table
            .iter()
            .map(|(name, value)| {
                let item = Item {
                    key: child_key(&key, name.get_ref()),
                    key_span: name.span(),
                    span: value.span(),
                    value: value.get_ref(),
                };
                (name.get_ref().as_ref(), item)
            })
            .collect();
        // The parser's map is sorted by key, not by position; file order matters for
        // targets (their index is their id), headers and messages.
        entries.sort_by_key(|(_, item)| item.key_span.start);
        Table { key, span, entries }
    }

    /// Entries in file order.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, &Item<'a, 'i>)> {
        self.entries.iter().map(|(name, item)| (*name, item))
    }

    pub fn get(&self, name: &str) -> Option<&Item<'a, 'i>> {
        self.entries
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, item)| item)
    }

    /// `f` applied to the value of `name`, when the key is present.
    pub fn opt<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Item<'a, 'i>) -> Result<T, Problem>,
    ) -> Result<Option<T>, Problem> {
        self.get(name).map(f).transpose()
    }

    pub fn require(&self, name: &str, why: &str) -> Result<&Item<'a, 'i>, Problem> {
        self.get(name).ok_or_else(|| {
            Problem::new(
                self.span.clone(),
                &child_key(&self.key, name),
                format!("missing required key ({why})"),
            )
        })
    }

    /// Rejects the first key not in `valid`, suggesting the closest valid one.
    pub fn check_keys(&self, valid: &[&str]) -> Result<(), Problem> {
        match self.entries().find(|(name, _)| !valid.contains(name)) {
            Some((name, item)) => Err(unknown_key(item, name, valid)),
            None => Ok(()),
        }
    }
}

/// "unknown key", with the closest valid key as a suggestion.
pub(crate) fn unknown_key(item: &Item, name: &str, valid: &[&str]) -> Problem {
    item.key_problem("unknown key")
        .suggest(closest(name, valid.iter().copied()))
}

/// `parent.name`, quoting `name` the TOML way when it is not a bare key.
pub(crate) fn child_key(parent: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let name = if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    };
    if parent.is_empty() {
        name
    } else {
        format!("{parent}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_quote_what_is_not_a_bare_key() {
        assert_eq!(child_key("", "source"), "source");
        assert_eq!(child_key("targets", "team-slack"), "targets.team-slack");
        assert_eq!(child_key("targets", "a.b"), "targets.\"a.b\"");
        assert_eq!(child_key("targets", ""), "targets.\"\"");
    }

    #[test]
    fn entries_come_in_file_order() {
        let doc = DeTable::parse("zeta = 1\nalpha = 2\nmid = 3\n").unwrap();
        let root = Table::root(&doc);
        let names: Vec<_> = root.entries().map(|(name, _)| name).collect();
        assert_eq!(names, ["zeta", "alpha", "mid"]);
    }
}
