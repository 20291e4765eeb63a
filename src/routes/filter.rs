//! `where` at run time: reading the fields routes name from the event's bytes, once per
//! event, and testing them.
//!
//! Start-up gathers every path any route (or `unless`) names into one trie ([`Paths`]),
//! each path with a small integer id. Per event, [`Paths::read`] makes one pass over the
//! raw JSON ([`super::scan`]) that descends only into keys on a path and skips everything
//! else; each value found lands in a fixed array indexed by path id, strings borrowed
//! from the bytes (copied only when JSON escapes are in them). No `serde_json::Value` is
//! built, and a router without `where` never reads at all.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::pattern::{fold, glob_match_folding};
use crate::config::{Comparison, Expected, FieldCondition, Number};

/// Up to this many distinct paths (configs name a few), the values of an event live on
/// the stack; more cost one allocation per event.
const INLINE: usize = 8;

/// Every path the routes name, as a trie of object keys.
#[derive(Debug, Clone, Default)]
pub(super) struct Paths {
    /// The top-level object's keys.
    root: Node,
    /// How many distinct paths there are; ids run from 0 to `count - 1`.
    count: usize,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Node {
    /// The id of the path that ends here, if one does.
    pub leaf: Option<usize>,
    /// The keys under this one that some path goes on through. A handful at most, so a
    /// list beats a map.
    pub children: Vec<(Box<str>, Node)>,
}

impl Node {
    /// The child under `key` (the key's bytes as written in the event), if a path goes on
    /// through it.
    pub fn child(&self, key: &[u8]) -> Option<&Node> {
        self.children
            .iter()
            .find(|(k, _)| k.as_bytes() == key)
            .map(|(_, node)| node)
    }
}

impl Paths {
    /// The id of `path`, added to the trie when it is new.
    pub fn id(&mut self, path: &[String]) -> usize {
        let mut node = &mut self.root;
        for segment in path {
            let at = match node.children.iter().position(|(k, _)| **k == **segment) {
                Some(at) => at,
                None => {
                    node.children
                        .push((segment.as_str().into(), Node::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at].1;
        }
        *node.leaf.get_or_insert_with(|| {
            self.count += 1;
            self.count - 1
        })
    }

    /// The value at every path, read from `raw` (a JSON object) in one pass. A path the
    /// event does not have is [`Value::Missing`]; bytes that are not valid JSON (an
    /// event is validated long before this) leave every path missing.
    pub fn read<'a>(&self, raw: &'a [u8]) -> Values<'a> {
        let mut values = if self.count <= INLINE {
            Values::Inline(std::array::from_fn(|_| Value::Missing))
        } else {
            Values::Heap((0..self.count).map(|_| Value::Missing).collect())
        };
        let found = &mut values.as_mut_slice()[..self.count];
        if super::scan::read(&self.root, raw, found).is_err() {
            found.fill_with(|| Value::Missing);
        }
        values
    }
}

/// The values of one event at every path, indexed by path id.
// Large on purpose: it lives on the stack, so that routing allocates nothing per event.
#[allow(clippy::large_enum_variant)]
pub(super) enum Values<'a> {
    Inline([Value<'a>; INLINE]),
    /// More paths than fit on the stack: one allocation per event.
    Heap(Vec<Value<'a>>),
}

impl<'a> Values<'a> {
    fn as_mut_slice(&mut self) -> &mut [Value<'a>] {
        match self {
            Values::Inline(values) => values,
            Values::Heap(values) => values,
        }
    }

    pub fn get(&self, id: usize) -> &Value<'a> {
        match self {
            Values::Inline(values) => &values[id],
            Values::Heap(values) => &values[id],
        }
    }
}

/// What an event holds at a path.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value<'a> {
    Missing,
    Str(Cow<'a, str>),
    /// Any JSON integer (u64 and i64 both fit).
    Int(i128),
    Float(f64),
    Bool(bool),
    /// `null`, an array or an object: no condition matches it.
    Other,
}

/// One `where` entry, compiled: the path's id and the values to accept.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FieldTest {
    /// The path's id in [`Paths`].
    path: usize,
    /// The values it accepts (a list in `where` is ORed).
    any_of: Vec<Expect>,
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Folded once here; the event's string is folded as it is compared.
    Pattern(String),
    Number(Vec<(Comparison, Num)>),
    Bool(bool),
}

/// A configured number, integers kept exact.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl FieldTest {
    pub fn new(condition: &FieldCondition, paths: &mut Paths) -> FieldTest {
        let any_of = condition
            .any_of
            .iter()
            .map(|expected| match expected {
                Expected::Pattern(p) => Expect::Pattern(fold(p).into_owned()),
                Expected::Bool(b) => Expect::Bool(*b),
                Expected::Number(comparisons) => Expect::Number(
                    comparisons
                        .iter()
                        .map(|(op, n)| {
                            let n = match *n {
                                Number::Int(i) => Num::Int(i.into()),
                                Number::Float(f) => Num::Float(f),
                            };
                            (*op, n)
                        })
                        .collect(),
                ),
            })
            .collect();
        FieldTest {
            path: paths.id(&condition.path),
            any_of,
        }
    }

    pub fn matches(&self, values: &Values<'_>) -> bool {
        let value = values.get(self.path);
        self.any_of.iter().any(|expect| match (expect, value) {
            (Expect::Pattern(p), Value::Str(s)) => glob_match_folding(p, s),
            (Expect::Bool(b), Value::Bool(v)) => b == v,
            (Expect::Number(comparisons), Value::Int(v)) => {
                holds(comparisons, |n| compare(Num::Int(*v), n))
            }
            (Expect::Number(comparisons), Value::Float(v)) => {
                holds(comparisons, |n| compare(Num::Float(*v), n))
            }
            _ => false,
        })
    }
}

/// Every comparison holds, `cmp` giving how the field compares with each number.
fn holds(comparisons: &[(Comparison, Num)], cmp: impl Fn(Num) -> Option<Ordering>) -> bool {
    comparisons.iter().all(|&(op, n)| {
        cmp(n).is_some_and(|o| match op {
            Comparison::Eq => o == Ordering::Equal,
            Comparison::Gt => o == Ordering::Greater,
            Comparison::Gte => o != Ordering::Less,
            Comparison::Lt => o == Ordering::Less,
            Comparison::Lte => o != Ordering::Greater,
        })
    })
}

/// Exact numeric order, also between an integer and a float (no rounding of large
/// integers to f64). `None` only for a NaN, which JSON cannot hold.
fn compare(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
        (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b),
        (Num::Int(a), Num::Float(b)) => int_float(a, b),
        (Num::Float(a), Num::Int(b)) => int_float(b, a).map(Ordering::reverse),
    }
}

/// How integer `i` compares with float `f`.
fn int_float(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    // Beyond ±2^127 no i128 reaches; inside, the integral part converts exactly.
    const LIMIT: f64 = 1.7014118346046923e38; // 2^127
    if f >= LIMIT {
        return Some(Ordering::Less);
    }
    if f < -LIMIT {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    Some(i.cmp(&(whole as i128)).then_with(|| {
        if f > whole {
            Ordering::Less
        } else if f < whole {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths_of(list: &[&str]) -> (Paths, Vec<usize>) {
        let mut paths = Paths::default();
        let ids = list
            .iter()
            .map(|p| paths.id(&p.split('.').map(str::to_owned).collect::<Vec<_>>()))
            .collect();
        (paths, ids)
    }

    #[test]
    fn the_walk_finds_each_path_and_nothing_else() {
        let (paths, ids) = paths_of(&[
            "lang",
            "tweet_data.author.followers_count",
            "tweet_data.is_retweet",
            "tweet_data.author",
            "missing.deep",
            "tweet_data.text",
            "lang",
            "big",
            "neg",
            "null",
            "list",
        ]);
        assert_eq!(
            ids,
            [0, 1, 2, 3, 4, 5, 0, 6, 7, 8, 9],
            "one id per distinct path"
        );
        let raw = br#"{"lang":"EN","x":{"lang":"no"},"tweet_data":{"is_retweet":false,"author":{"followers_count":1200.5,"name":"a"},"text":"a \"quoted\" word"},"big":18446744073709551615,"neg":-3,"null":null,"list":[1,{"a":2}],"missing":1}"#;
        let values = paths.read(raw);
        let got: Vec<Value> = (0..10).map(|i| values.get(i).clone()).collect();
        assert_eq!(
            got,
            [
                Value::Str(Cow::Borrowed("EN")),
                Value::Float(1200.5),
                Value::Bool(false),
                Value::Other,
                Value::Missing,
                Value::Str(Cow::Owned("a \"quoted\" word".into())),
                Value::Int(u64::MAX.into()),
                Value::Int(-3),
                Value::Other,
                Value::Other,
            ]
        );
        assert!(
            matches!(values.get(0), Value::Str(Cow::Borrowed(_))),
            "strings without escapes are borrowed from the bytes"
        );
        assert!(
            matches!(values, Values::Heap(_)),
            "10 paths: more than INLINE"
        );
    }

    #[test]
    fn few_paths_stay_on_the_stack_many_go_to_the_heap() {
        let list: Vec<String> = (0..INLINE + 4).map(|i| format!("k{i}")).collect();
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        let (few, _) = paths_of(&refs[..INLINE]);
        let values = few.read(br#"{"k0":1}"#);
        assert!(matches!(values, Values::Inline(_)));
        assert_eq!(values.get(0), &Value::Int(1));
        let (many, _) = paths_of(&refs);
        let last = INLINE + 3;
        let whole = format!(r#"{{"k{last}":true}}"#);
        let values = many.read(whole.as_bytes());
        assert!(matches!(values, Values::Heap(_)));
        assert_eq!(values.get(last), &Value::Bool(true));
        let cut = format!(r#"{{"k{last}":true"#);
        let values = many.read(cut.as_bytes());
        assert_eq!(
            values.get(last),
            &Value::Missing,
            "broken bytes: nothing found"
        );
    }

    fn test(path: &str, any_of: Vec<Expected>) -> (FieldTest, Paths) {
        let mut paths = Paths::default();
        let condition = FieldCondition {
            path: path.split('.').map(str::to_owned).collect(),
            any_of,
        };
        (FieldTest::new(&condition, &mut paths), paths)
    }

    fn check(t: &(FieldTest, Paths), json: &str) -> bool {
        t.0.matches(&t.1.read(json.as_bytes()))
    }

    #[test]
    fn strings_compare_case_insensitively_with_wildcards_and_lists_are_ored() {
        let t = test(
            "d.lang",
            vec![
                Expected::Pattern("EN".into()),
                Expected::Pattern("d*".into()),
            ],
        );
        for (json, expected) in [
            (r#"{"d":{"lang":"en"}}"#, true),
            (r#"{"d":{"lang":"En"}}"#, true),
            (r#"{"d":{"lang":"de"}}"#, true),
            (r#"{"d":{"lang":"DA"}}"#, true),
            (r#"{"d":{"lang":"fr"}}"#, false),
            (r#"{"d":{"lang":"e\u006e"}}"#, true),
            (r#"{"d":{}}"#, false),
            (r#"{"lang":"en"}"#, false),
            (r#"{"d":"en"}"#, false),
            (r#"{"d":{"lang":["en"]}}"#, false),
            (r#"{"d":{"lang":null}}"#, false),
            (r#"{"d":{"lang":1}}"#, false),
        ] {
            assert_eq!(check(&t, json), expected, "{json}");
        }
        let digits = test("id", vec![Expected::Pattern("19*".into())]);
        assert!(check(&digits, r#"{"id":"1900"}"#));
        assert!(
            !check(&digits, r#"{"id":1900}"#),
            "a string pattern never matches a number"
        );
    }

    #[test]
    fn numbers_compare_with_each_operator_exactly() {
        let n = |op, v| Expected::Number(vec![(op, v)]);
        let cases: &[(Expected, &[(&str, bool)])] = &[
            (
                n(Comparison::Eq, Number::Int(1000)),
                &[
                    ("1000", true),
                    ("1000.0", true),
                    ("999", false),
                    ("1000.5", false),
                ],
            ),
            (
                n(Comparison::Gt, Number::Int(1000)),
                &[
                    ("1001", true),
                    ("1000", false),
                    ("1000.01", true),
                    ("-5", false),
                ],
            ),
            (
                n(Comparison::Gte, Number::Int(1000)),
                &[("1000", true), ("999.99", false), ("1e4", true)],
            ),
            (
                n(Comparison::Lt, Number::Float(0.5)),
                &[("0", true), ("0.5", false), ("-1", true), ("1", false)],
            ),
            (
                n(Comparison::Lte, Number::Float(0.5)),
                &[("0.5", true), ("0.50001", false)],
            ),
            (
                n(Comparison::Gt, Number::Int(i64::MAX)),
                &[
                    ("18446744073709551615", true),
                    ("9223372036854775807", false),
                ],
            ),
            (
                n(Comparison::Eq, Number::Int(9_007_199_254_740_993)),
                &[("9007199254740993", true), ("9007199254740992", false)],
            ),
            (
                n(Comparison::Lt, Number::Int(1)),
                &[("\"0\"", false), ("true", false), ("null", false)],
            ),
        ];
        for (expected, values) in cases {
            let t = test("n", vec![expected.clone()]);
            for (value, result) in *values {
                assert_eq!(
                    check(&t, &format!(r#"{{"n":{value}}}"#)),
                    *result,
                    "{expected:?} on {value}"
                );
            }
            assert!(!check(&t, "{}"), "a missing field never matches");
        }
        let range = test(
            "n",
            vec![Expected::Number(vec![
                (Comparison::Gte, Number::Int(10)),
                (Comparison::Lt, Number::Int(20)),
            ])],
        );
        for (v, result) in [("9", false), ("10", true), ("19.9", true), ("20", false)] {
            assert_eq!(check(&range, &format!(r#"{{"n":{v}}}"#)), result, "{v}");
        }
    }

    #[test]
    fn booleans_compare_exactly() {
        let t = test("b", vec![Expected::Bool(false)]);
        assert!(check(&t, r#"{"b":false}"#));
        for other in ["true", "0", "\"false\"", "null"] {
            assert!(!check(&t, &format!(r#"{{"b":{other}}}"#)), "{other}");
        }
        assert!(!check(&t, "{}"));
    }

    #[test]
    fn integer_and_float_order_is_exact() {
        assert_eq!(int_float(3, 3.0), Some(Ordering::Equal));
        assert_eq!(int_float(3, 3.5), Some(Ordering::Less));
        assert_eq!(int_float(-3, -3.5), Some(Ordering::Greater));
        assert_eq!(int_float(i128::MAX, 1e39), Some(Ordering::Less));
        assert_eq!(int_float(i128::MIN, -1e39), Some(Ordering::Greater));
        // 2^53 + 1 is not a float: the integer is one above the float 2^53.
        assert_eq!(
            int_float(9_007_199_254_740_993, 9_007_199_254_740_992.0),
            Some(Ordering::Greater)
        );
        assert_eq!(int_float(1, f64::NAN), None);
    }
}
