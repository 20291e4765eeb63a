//! The route keys that filter on any field (`where`) and exclude (`unless`): their
//! config types and how they are read.
//!
//! ```toml
//! where = { "tweet_data.lang" = ["en", "de"], "tweet_data.is_retweet" = false,
//!           "tweet_data.author.followers_count" = { gte = 1000 } }
//! unless = { authors = ["*bot"], text = "(?i)giveaway" }
//! ```
//!
//! Everything a user can get wrong is refused here, at start-up, with the key and the
//! position: a bad path, an unknown operator, a number operator given a string, an empty
//! table or list. At run time a condition can only match or not match.

use std::fmt;

use super::document::{Item, unknown_key};
use super::error::{Problem, closest};
use super::interpolate::Env;

/// The keys `unless` takes: a route's conditions, nothing else.
const UNLESS_KEYS: &[&str] = &["monitors", "authors", "text", "events", "where"];
const OPERATORS: &[(&str, Comparison)] = &[
    ("gt", Comparison::Gt),
    ("gte", Comparison::Gte),
    ("lt", Comparison::Lt),
    ("lte", Comparison::Lte),
];

/// One entry of `where`: a field of the event, found by its dotted path, and the values
/// it may have. A field that is missing, or of another JSON type than every value
/// listed, does not match.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldCondition {
    /// The path split at its dots: `["tweet_data", "lang"]` for `"tweet_data.lang"`.
    pub path: Vec<String>,
    /// The values the field may have: a list in the file is ORed, a single value is a
    /// list of one. Never empty.
    pub any_of: Vec<Expected>,
}

/// One value a field may have.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// A string pattern, as written: compared case-insensitively, `*` a wildcard. Only
    /// a JSON string matches it (a number never does, however it prints).
    Pattern(String),
    /// A number and every comparison in it: `{ gte = 1000, lt = 5000 }` is a range, a
    /// bare `1000` is `[(Eq, 1000)]`. Only a JSON number matches it. Never empty.
    Number(Vec<(Comparison, Number)>),
    /// Only the JSON boolean of that value matches.
    Bool(bool),
}

/// How a field's number must compare with the configured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A number as written in the file: TOML integers stay exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    /// Always finite: `nan` and `inf` are refused.
    Float(f64),
}

/// `unless`: the route does not match an event that any one of these matches. Each is
/// read as on a route, with one difference: `events` has no default (absent, it excludes
/// nothing; as on a route it would exclude every `tweet.detected`).
#[derive(Debug, Clone, Default)]
pub struct Exclusion {
    /// Excludes events whose monitor or rule matches one of these (as `monitors`).
    pub monitors: Vec<String>,
    /// Excludes events whose author matches one of these (as `authors`).
    pub authors: Vec<String>,
    /// Excludes events whose text matches (an event without text is not excluded).
    pub text: Option<regex::Regex>,
    /// Excludes events of these types; empty: no exclusion by type.
    pub events: Vec<String>,
    /// Excludes events for which every one of these holds (as `where`, ANDed).
    pub fields: Vec<FieldCondition>,
}

impl Exclusion {
    /// True when it names nothing to exclude (never after [`unless`]).
    pub fn is_empty(&self) -> bool {
        self.monitors.is_empty()
            && self.authors.is_empty()
            && self.text.is_none()
            && self.events.is_empty()
            && self.fields.is_empty()
    }
}

/// The route's `where` table.
pub(super) fn where_table(item: &Item, env: Env) -> Result<Vec<FieldCondition>, Problem> {
    let t = item.table()?;
    let mut conditions = Vec::new();
    for (key, value) in t.entries() {
        let path = path(key).map_err(|why| value.key_problem(why))?;
        conditions.push(FieldCondition {
            path,
            any_of: expected_values(value, env)?,
        });
    }
    if conditions.is_empty() {
        return Err(item.problem(
            "an empty table: name a field and its value, like { \"tweet_data.lang\" = \"en\" } (or remove the key)",
        ));
    }
    Ok(conditions)
}

/// A dotted path into the event: object keys separated by `.`, none of them empty.
fn path(key: &str) -> Result<Vec<String>, &'static str> {
    if key.is_empty() {
        return Err(
            "an empty field path: write object keys separated by dots, like \"tweet_data.lang\"",
        );
    }
    if key.starts_with('.') || key.ends_with('.') {
        return Err(
            "a field path must not start or end with a dot: write object keys separated by dots, like \"tweet_data.author.followers_count\"",
        );
    }
    let segments: Vec<String> = key.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(
            "a field path must not have an empty part (`..`): write object keys separated by dots, like \"tweet_data.author.followers_count\"",
        );
    }
    if segments.iter().any(|s| s.trim() != s) {
        return Err("a part of a field path must not start or end with a space");
    }
    Ok(segments)
}

/// A value of `where`, or a list of them (ORed).
fn expected_values(item: &Item, env: Env) -> Result<Vec<Expected>, Problem> {
    if !item.is_array() {
        return Ok(vec![expected(item, env)?]);
    }
    let elements = item.array()?;
    if elements.is_empty() {
        return Err(item.problem("an empty list matches no event: list the values to accept"));
    }
    elements
        .iter()
        .map(|element| {
            if element.is_array() {
                return Err(element.problem(
                    "a list of values cannot hold another list: write the values in one list",
                ));
            }
            expected(element, env)
        })
        .collect()
}

/// One value: a string pattern, a number, a boolean or a table of comparisons.
fn expected(item: &Item, env: Env) -> Result<Expected, Problem> {
    if item.is_string() {
        return Ok(Expected::Pattern(item.string(env)?));
    }
    if let Some(number) = number(item)? {
        return Ok(Expected::Number(vec![(Comparison::Eq, number)]));
    }
    if item.is_boolean() {
        return Ok(Expected::Bool(item.boolean()?));
    }
    if !item.is_table() {
        return Err(item.expected(
            "a string, a number, true or false, a table like { gte = 1000 }, or a list of them",
        ));
    }
    let t = item.table()?;
    let mut comparisons = Vec::new();
    for (key, value) in t.entries() {
        let Some((_, op)) = OPERATORS.iter().find(|(name, _)| *name == key) else {
            let names = OPERATORS.iter().map(|(name, _)| *name);
            let suggestion = closest(key, names.clone());
            let mut message =
                "unknown operator: expected `gt`, `gte`, `lt` or `lte` (with a number)".to_owned();
            if suggestion.is_none() {
                message.push_str(
                    "; to name a nested field, quote the whole path, like \"tweet_data.lang\" = \"en\"",
                );
            }
            return Err(value.key_problem(message).suggest(suggestion));
        };
        let Some(n) = number(value)? else {
            let message = if value.is_string() && value.string(env)?.contains('*') {
                format!(
                    "`{key}` compares numbers, and `*` wildcards apply to strings only: expected a number, found a string"
                )
            } else if value.is_string() {
                format!(
                    "`{key}` compares numbers: expected a number, found a string (write it without quotes)"
                )
            } else {
                return Err(value.expected(&format!("a number (`{key}` compares numbers)")));
            };
            return Err(value.problem(message));
        };
        comparisons.push((*op, n));
    }
    if comparisons.is_empty() {
        return Err(
            item.problem("an empty table: write an operator and a number, like { gte = 1000 }")
        );
    }
    Ok(Expected::Number(comparisons))
}

/// The number `item` holds, `None` when it is not a number.
fn number(item: &Item) -> Result<Option<Number>, Problem> {
    if item.is_integer() {
        return Ok(Some(Number::Int(item.integer()?)));
    }
    match item.float()? {
        Some(f) if f.is_finite() => Ok(Some(Number::Float(f))),
        Some(_) => Err(item.problem("must be a finite number (not nan or inf)")),
        None => Ok(None),
    }
}

/// The route's `unless` table. `strings` and `regex` read lists and `text` as the
/// route's own keys are read.
pub(super) fn unless(
    item: &Item,
    env: Env,
    strings: impl Fn(&Item, Env) -> Result<Vec<String>, Problem>,
    regex: impl Fn(&Item, Env) -> Result<regex::Regex, Problem>,
) -> Result<Exclusion, Problem> {
    let t = item.table()?;
    for (key, value) in t.entries() {
        if UNLESS_KEYS.contains(&key) {
            continue;
        }
        if matches!(key, "name" | "targets" | "stop" | "unless") {
            return Err(value.key_problem(
                "not a condition: `unless` takes `monitors`, `authors`, `text`, `events` and `where`",
            ));
        }
        return Err(unknown_key(value, key, UNLESS_KEYS));
    }
    let list = |key: &str| {
        t.opt(key, |item| {
            let values = strings(item, env)?;
            if values.is_empty() {
                return Err(item.problem("an empty list excludes nothing (remove the key)"));
            }
            Ok(values)
        })
    };
    let exclusion = Exclusion {
        monitors: list("monitors")?.unwrap_or_default(),
        authors: list("authors")?.unwrap_or_default(),
        text: t.opt("text", |item| regex(item, env))?,
        events: list("events")?.unwrap_or_default(),
        fields: t
            .opt("where", |item| where_table(item, env))?
            .unwrap_or_default(),
    };
    if exclusion.is_empty() {
        return Err(item.problem(
            "an empty table excludes nothing: name what to exclude, like { authors = [\"*bot\"] } (or remove the key)",
        ));
    }
    Ok(exclusion)
}

impl fmt::Display for FieldCondition {
    /// `tweet_data.lang = "en" or = "de"`, `followers_count >= 1000 and < 5000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path.join("."))?;
        for (i, expected) in self.any_of.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { " or " })?;
            match expected {
                Expected::Pattern(p) => write!(f, "= {p:?}")?,
                Expected::Bool(b) => write!(f, "= {b}")?,
                Expected::Number(comparisons) => {
                    for (j, (op, n)) in comparisons.iter().enumerate() {
                        if j > 0 {
                            f.write_str(" and ")?;
                        }
                        let op = match op {
                            Comparison::Eq => "=",
                            Comparison::Gt => ">",
                            Comparison::Gte => ">=",
                            Comparison::Lt => "<",
                            Comparison::Lte => "<=",
                        };
                        match n {
                            Number::Int(n) => write!(f, "{op} {n}")?,
                            Number::Float(n) => write!(f, "{op} {n:?}")?,
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_at_dots_and_refuse_empty_parts() {
        assert_eq!(path("lang").unwrap(), ["lang"]);
        assert_eq!(
            path("tweet_data.author.followers_count").unwrap(),
            ["tweet_data", "author", "followers_count"]
        );
        for bad in ["", ".lang", "lang.", "a..b", ".", "a. b"] {
            assert!(path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn conditions_display_as_the_summary_shows_them() {
        let c = FieldCondition {
            path: vec!["a".into(), "b".into()],
            any_of: vec![
                Expected::Pattern("en".into()),
                Expected::Number(vec![
                    (Comparison::Gte, Number::Int(1000)),
                    (Comparison::Lt, Number::Float(2.5)),
                ]),
                Expected::Bool(false),
            ],
        };
        assert_eq!(
            c.to_string(),
            "a.b = \"en\" or >= 1000 and < 2.5 or = false"
        );
    }
}
