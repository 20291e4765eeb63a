//! Routing: which targets an event goes to.
//!
//! The rules of the contract, compiled once at start-up from `[[routes]]`:
//! - a route's conditions are ANDed, the values in one list ORed; no condition matches all;
//! - `monitors` matches `monitor_name`, `monitor_id`, `rule_tag` or `rule_id`, and
//!   `authors` matches `author_username` with a leading `@` ignored on both sides, both
//!   case-insensitively with `*` wildcards;
//! - `text` is a regex on `tweet_text` (an event without text does not match it);
//! - `events` lists event types, `["tweet.detected"]` by default;
//! - routes are tried in file order, each match adds its targets, a matching route with
//!   `stop = true` ends the walk; a target appears once however many routes name it.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::config::RouteConfig;
use crate::event::Event;

/// The compiled routes.
///
/// Matching is organised so that 100 routes cost little more per event than a few: exact
/// monitor and author patterns live in hash maps that say, per event, which routes they
/// satisfy; event types become small integers; all `text` regexes run as one set. Only
/// wildcard patterns are tried route by route.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
    target_count: usize,
    /// Every route's `text` regex in one set: an event's text is scanned once for all of
    /// them (lazily, only when a route gets as far as its text condition), instead of once
    /// per route. `None` past regex's size limit: then each route runs its own.
    texts: Option<regex::RegexSet>,
    /// The distinct event types routes name; a route holds indices into this list.
    event_types: Vec<String>,
    /// Exact lowercased monitor patterns, and the routes that name each.
    monitor_index: HashMap<String, Vec<usize>>,
    /// Exact lowercased author patterns (no `@`), and the routes that name each.
    author_index: HashMap<String, Vec<usize>>,
}

#[derive(Debug, Clone)]
struct Route {
    monitors: Condition,
    authors: Condition,
    /// This route's regex, and its index in [`Router::texts`].
    text: Option<(usize, regex::Regex)>,
    /// Indices into [`Router::event_types`].
    events: Vec<usize>,
    targets: Vec<usize>,
    stop: bool,
}

/// A `monitors` or `authors` condition. Its exact patterns are in the router's index;
/// what stays here are the wildcard ones.
#[derive(Debug, Clone)]
enum Condition {
    /// No condition: any value, or none, matches.
    Any,
    /// Lowercased patterns with `*`.
    Patterns { globs: Vec<String> },
}

/// Split one list of patterns into the index (exact) and the route's globs.
fn condition(
    patterns: &[String],
    strip_at: bool,
    route: usize,
    index: &mut HashMap<String, Vec<usize>>,
) -> Condition {
    if patterns.is_empty() {
        return Condition::Any;
    }
    let mut globs = Vec::new();
    for raw in patterns {
        let raw = if strip_at {
            raw.strip_prefix('@').unwrap_or(raw)
        } else {
            raw.as_str()
        };
        let lower = raw.to_lowercase();
        if lower.contains('*') {
            globs.push(lower);
        } else {
            let routes = index.entry(lower).or_default();
            if routes.last() != Some(&route) {
                routes.push(route);
            }
        }
    }
    Condition::Patterns { globs }
}

/// Which routes the exact patterns of an event's values satisfy.
#[derive(Default)]
struct Hits(Vec<u64>);

impl Hits {
    fn of<'v>(
        index: &HashMap<String, Vec<usize>>,
        values: impl Iterator<Item = &'v str>,
        routes: usize,
    ) -> Hits {
        let mut hits = Hits::default();
        if index.is_empty() {
            return hits;
        }
        for value in values {
            if let Some(found) = index.get(value) {
                if hits.0.is_empty() {
                    hits.0 = vec![0; routes.div_ceil(64)];
                }
                for &r in found {
                    hits.0[r / 64] |= 1 << (r % 64);
                }
            }
        }
        hits
    }

    fn contains(&self, route: usize) -> bool {
        self.0
            .get(route / 64)
            .is_some_and(|w| w & (1 << (route % 64)) != 0)
    }
}

/// `*`-only glob matching, linear-time with single-star backtracking.
fn glob_match(pattern: &str, text: &str) -> bool {
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

/// The event's routed fields, lowercased once per event rather than once per route.
struct Subject<'a> {
    /// Index of the event's type in [`Router::event_types`]; `None`: no route wants it.
    event_type: Option<usize>,
    monitor_hits: Hits,
    author_hits: Hits,
    monitors: [Option<Cow<'a, str>>; 4],
    author: Option<Cow<'a, str>>,
    text: Option<&'a str>,
    /// Which of the router's text regexes match, computed on first need.
    text_matches: std::cell::OnceCell<regex::SetMatches>,
}

/// Lowercase without allocating when there is nothing to change (ids, most usernames).
fn lower(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

impl<'a> Subject<'a> {
    fn new(event: &'a Event, router: &Router) -> Self {
        let f = event.fields();
        let field = |s: &'a Option<String>| s.as_deref().map(lower);
        let monitors = [
            field(&f.monitor_name),
            field(&f.monitor_id),
            field(&f.rule_tag),
            field(&f.rule_id),
        ];
        let author = f
            .author_username
            .as_deref()
            .map(|a| lower(a.strip_prefix('@').unwrap_or(a)));
        let n = router.routes.len();
        Subject {
            event_type: router
                .event_types
                .iter()
                .position(|t| t == event.event_type()),
            monitor_hits: Hits::of(
                &router.monitor_index,
                monitors.iter().flatten().map(|m| m.as_ref()),
                n,
            ),
            author_hits: Hits::of(&router.author_index, author.iter().map(|a| a.as_ref()), n),
            monitors,
            author,
            text: f.tweet_text.as_deref(),
            text_matches: std::cell::OnceCell::new(),
        }
    }

    fn text_matches(
        &self,
        set: Option<&regex::RegexSet>,
        (index, re): &(usize, regex::Regex),
    ) -> bool {
        let Some(text) = self.text else { return false };
        match set {
            Some(set) => self
                .text_matches
                .get_or_init(|| set.matches(text))
                .matched(*index),
            None => re.is_match(text),
        }
    }
}

impl Route {
    fn matches(&self, index: usize, s: &Subject<'_>, texts: Option<&regex::RegexSet>) -> bool {
        if !s.event_type.is_some_and(|t| self.events.contains(&t)) {
            return false;
        }
        if let Condition::Patterns { globs } = &self.monitors {
            let hit = s.monitor_hits.contains(index)
                || s.monitors
                    .iter()
                    .flatten()
                    .any(|v| globs.iter().any(|g| glob_match(g, v)));
            if !hit {
                return false;
            }
        }
        if let Condition::Patterns { globs } = &self.authors {
            let hit = s.author_hits.contains(index)
                || s.author
                    .as_ref()
                    .is_some_and(|a| globs.iter().any(|g| glob_match(g, a)));
            if !hit {
                return false;
            }
        }
        if let Some(text) = &self.text {
            return s.text_matches(texts, text);
        }
        true
    }
}

/// Targets already chosen for an event: bits on the stack for up to 256 targets.
enum TargetSet {
    Small([u64; 4]),
    Large(Vec<bool>),
}

impl TargetSet {
    fn new(n: usize) -> Self {
        if n <= 256 {
            TargetSet::Small([0; 4])
        } else {
            TargetSet::Large(vec![false; n])
        }
    }

    /// True when `t` was not in the set yet.
    fn insert(&mut self, t: usize) -> bool {
        match self {
            TargetSet::Small(bits) => {
                let (word, bit) = (t / 64, 1u64 << (t % 64));
                let new = bits[word] & bit == 0;
                bits[word] |= bit;
                new
            }
            TargetSet::Large(seen) => !std::mem::replace(&mut seen[t], true),
        }
    }
}

/// The outcome of routing one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// Indices of the routes that matched, in file order.
    pub routes: Vec<usize>,
    /// Indices of the targets, each once, in the order routes named them.
    pub targets: Vec<usize>,
}

impl Router {
    pub fn new(routes: &[RouteConfig], target_count: usize) -> Router {
        let mut patterns = Vec::new();
        let mut event_types: Vec<String> = Vec::new();
        let mut monitor_index = HashMap::new();
        let mut author_index = HashMap::new();
        let routes = routes
            .iter()
            .enumerate()
            .map(|(i, r)| Route {
                monitors: condition(&r.monitors, false, i, &mut monitor_index),
                authors: condition(&r.authors, true, i, &mut author_index),
                text: r.text.as_ref().map(|re| {
                    patterns.push(re.as_str().to_owned());
                    (patterns.len() - 1, re.clone())
                }),
                events: r
                    .events
                    .iter()
                    .map(|e| match event_types.iter().position(|t| t == e) {
                        Some(p) => p,
                        None => {
                            event_types.push(e.clone());
                            event_types.len() - 1
                        }
                    })
                    .collect(),
                targets: r.targets.clone(),
                stop: r.stop,
            })
            .collect();
        // Each pattern compiled on its own in the config; a set of them can still pass
        // regex's size limit, and then each route checks its own regex.
        let texts = regex::RegexSet::new(&patterns).ok();
        Router {
            routes,
            target_count,
            texts,
            event_types,
            monitor_index,
            author_index,
        }
    }

    /// Walk the routes for one event.
    pub fn route(&self, event: &Event) -> Routing {
        let subject = Subject::new(event, self);
        let mut out = Routing::default();
        let mut seen = TargetSet::new(self.target_count);
        for (i, route) in self.routes.iter().enumerate() {
            if !route.matches(i, &subject, self.texts.as_ref()) {
                continue;
            }
            out.routes.push(i);
            for &t in &route.targets {
                if seen.insert(t) {
                    out.targets.push(t);
                }
            }
            if route.stop {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn route(f: impl FnOnce(&mut RouteConfig)) -> RouteConfig {
        let mut r = RouteConfig {
            name: "r".into(),
            monitors: vec![],
            authors: vec![],
            text: None,
            events: vec!["tweet.detected".into()],
            targets: vec![0],
            stop: false,
        };
        f(&mut r);
        r
    }

    fn event(json: &str) -> Event {
        Event::parse(Bytes::copy_from_slice(json.as_bytes())).unwrap()
    }

    fn targets(routes: Vec<RouteConfig>, json: &str) -> Vec<usize> {
        Router::new(&routes, 8).route(&event(json)).targets
    }

    const TWEET: &str = r#"{"event":"tweet.detected","monitor_id":"abc-123","monitor_name":"Tech Leaders","tweet_id":"1","author_username":"ElonMusk","tweet_text":"We LAUNCH today"}"#;

    #[test]
    fn a_route_without_conditions_matches_every_tweet() {
        assert_eq!(targets(vec![route(|_| {})], TWEET), vec![0]);
        assert_eq!(
            targets(vec![route(|_| {})], "{}"),
            vec![0],
            "no type means tweet.detected"
        );
    }

    #[test]
    fn monitors_match_name_or_id_case_insensitively() {
        for m in [
            "Tech Leaders",
            "tech leaders",
            "ABC-123",
            "tech*",
            "*lead*",
            "*",
        ] {
            assert_eq!(
                targets(vec![route(|r| r.monitors = vec![m.into()])], TWEET),
                vec![0],
                "{m}"
            );
        }
        for m in ["Tech", "abc", "leaders*", "x*"] {
            assert!(
                targets(vec![route(|r| r.monitors = vec![m.into()])], TWEET).is_empty(),
                "{m}"
            );
        }
    }

    #[test]
    fn monitors_match_filter_rule_tag_or_id() {
        let e = r#"{"rule_id":"r-9","rule_tag":"AI news","tweet_id":"1"}"#;
        assert_eq!(
            targets(vec![route(|r| r.monitors = vec!["ai NEWS".into()])], e),
            vec![0]
        );
        assert_eq!(
            targets(vec![route(|r| r.monitors = vec!["R-9".into()])], e),
            vec![0]
        );
        assert!(targets(vec![route(|r| r.monitors = vec!["other".into()])], e).is_empty());
    }

    #[test]
    fn authors_ignore_at_and_case() {
        for a in ["elonmusk", "@elonmusk", "@ELONMUSK", "elon*", "@*musk"] {
            assert_eq!(
                targets(vec![route(|r| r.authors = vec![a.into()])], TWEET),
                vec![0],
                "{a}"
            );
        }
        let at = r#"{"author_username":"@sama"}"#;
        assert_eq!(
            targets(vec![route(|r| r.authors = vec!["sama".into()])], at),
            vec![0]
        );
        assert!(targets(vec![route(|r| r.authors = vec!["elon".into()])], TWEET).is_empty());
        assert!(
            targets(vec![route(|r| r.authors = vec!["x".into()])], "{}").is_empty(),
            "no author, no match"
        );
    }

    #[test]
    fn values_in_a_list_are_ored() {
        let r = route(|r| r.authors = vec!["nobody".into(), "elonmusk".into()]);
        assert_eq!(targets(vec![r], TWEET), vec![0]);
    }

    #[test]
    fn conditions_are_anded() {
        let both = route(|r| {
            r.authors = vec!["elonmusk".into()];
            r.monitors = vec!["Other".into()];
        });
        assert!(targets(vec![both], TWEET).is_empty());
    }

    #[test]
    fn text_is_a_regex_on_tweet_text() {
        let re = |s: &str| Some(regex::Regex::new(s).unwrap());
        assert_eq!(
            targets(vec![route(|r| r.text = re("(?i)launch|announce"))], TWEET),
            vec![0]
        );
        assert!(
            targets(vec![route(|r| r.text = re("launch"))], TWEET).is_empty(),
            "regex is case-sensitive unless (?i)"
        );
        assert!(
            targets(vec![route(|r| r.text = re(".*"))], "{}").is_empty(),
            "no text, no match"
        );
    }

    #[test]
    fn events_default_to_tweet_detected() {
        let other = r#"{"event":"monitor.paused"}"#;
        assert!(targets(vec![route(|_| {})], other).is_empty());
        let r = route(|r| r.events = vec!["monitor.paused".into()]);
        assert_eq!(targets(vec![r], other), vec![0]);
    }

    #[test]
    fn routes_add_targets_in_order_until_stop() {
        let routes = vec![
            route(|r| r.targets = vec![2, 0]),
            route(|r| {
                r.targets = vec![0, 1];
                r.stop = true;
            }),
            route(|r| r.targets = vec![3]),
        ];
        let routing = Router::new(&routes, 8).route(&event(TWEET));
        assert_eq!(
            routing.targets,
            vec![2, 0, 1],
            "one delivery per target, stop honoured"
        );
        assert_eq!(routing.routes, vec![0, 1]);
    }

    #[test]
    fn stop_only_applies_when_its_route_matches() {
        let routes = vec![
            route(|r| {
                r.authors = vec!["nobody".into()];
                r.stop = true;
            }),
            route(|r| r.targets = vec![1]),
        ];
        assert_eq!(targets(routes, TWEET), vec![1]);
    }

    #[test]
    fn unrouted_events_get_no_targets() {
        let r = route(|r| r.monitors = vec!["nope".into()]);
        assert_eq!(
            Router::new(&[r], 1).route(&event(TWEET)),
            Routing::default()
        );
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(glob_match("a**", "a"));
        assert!(!glob_match("a*b", "acbd"));
        assert!(glob_match("*b", "abab"));
        assert!(glob_match("é*", "éa"));
        assert!(!glob_match("", "a"));
    }

    #[test]
    fn unicode_case_folding() {
        let e = r#"{"monitor_name":"ÜBER News"}"#;
        assert_eq!(
            targets(vec![route(|r| r.monitors = vec!["über news".into()])], e),
            vec![0]
        );
    }

    /// The contract's rules, written as plainly as possible, to hold the indexed matcher to.
    fn reference(routes: &[RouteConfig], e: &Event) -> Vec<usize> {
        let f = e.fields();
        let like =
            |pattern: &str, value: &str| glob_match(&pattern.to_lowercase(), &value.to_lowercase());
        let mut out = vec![];
        for r in routes {
            let events_ok = r.events.iter().any(|t| t == e.event_type());
            let monitor_values = [&f.monitor_name, &f.monitor_id, &f.rule_tag, &f.rule_id];
            let monitors_ok = r.monitors.is_empty()
                || monitor_values
                    .iter()
                    .filter_map(|v| v.as_deref())
                    .any(|v| r.monitors.iter().any(|p| like(p, v)));
            let author = f
                .author_username
                .as_deref()
                .map(|a| a.trim_start_matches('@').to_string());
            let authors_ok = r.authors.is_empty()
                || author.as_deref().is_some_and(|a| {
                    r.authors
                        .iter()
                        .any(|p| like(p.strip_prefix('@').unwrap_or(p), a))
                });
            let text_ok = match (&r.text, f.tweet_text.as_deref()) {
                (None, _) => true,
                (Some(re), Some(t)) => re.is_match(t),
                (Some(_), None) => false,
            };
            if events_ok && monitors_ok && authors_ok && text_ok {
                for &t in &r.targets {
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
                if r.stop {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn the_indexed_matcher_agrees_with_the_plain_rules() {
        let mut rng = fastrand::Rng::with_seed(7);
        let monitors = [
            "Tech", "tech", "AI Labs", "mon-1", "MON-2", "ai*", "*labs", "t*h", "rule-x",
        ];
        let authors = ["sama", "@Sama", "elon*", "@*musk", "karpathy", "ÉLODIE"];
        let texts = ["launch", "(?i)ANNOUNCE", "^We", "rocket|model"];
        let types = ["tweet.detected", "monitor.paused"];
        let pick = |rng: &mut fastrand::Rng, from: &[&str], max: usize| -> Vec<String> {
            (0..rng.usize(0..=max))
                .map(|_| from[rng.usize(..from.len())].to_string())
                .collect()
        };
        for round in 0..300 {
            let routes: Vec<RouteConfig> = (0..rng.usize(1..12))
                .map(|i| RouteConfig {
                    name: format!("r{i}"),
                    monitors: pick(&mut rng, &monitors, 3),
                    authors: pick(&mut rng, &authors, 2),
                    text: rng
                        .bool()
                        .then(|| regex::Regex::new(texts[rng.usize(..texts.len())]).unwrap()),
                    events: if rng.u8(..4) == 0 {
                        pick(&mut rng, &types, 2)
                    } else {
                        vec![types[0].into()]
                    },
                    targets: (0..rng.usize(1..3)).map(|_| rng.usize(..5)).collect(),
                    stop: rng.u8(..6) == 0,
                })
                .collect();
            let router = Router::new(&routes, 5);
            for _ in 0..20 {
                let mut obj = serde_json::Map::new();
                let mut put = |k: &str, v: &str| {
                    obj.insert(k.into(), serde_json::Value::String(v.into()));
                };
                let values = [
                    "Tech", "AI LABS", "mon-1", "mon-2", "Techh", "rule-x", "élodie",
                ];
                if rng.bool() {
                    put("monitor_name", values[rng.usize(..values.len())]);
                }
                if rng.bool() {
                    put("monitor_id", values[rng.usize(..values.len())]);
                }
                if rng.u8(..4) == 0 {
                    put("rule_tag", values[rng.usize(..values.len())]);
                }
                let who = ["sama", "@SAMA", "elonmusk", "Karpathy", "élodie", "x"];
                if rng.u8(..5) > 0 {
                    put("author_username", who[rng.usize(..who.len())]);
                }
                let said = ["We launch a model", "announce: rocket", "nothing", ""];
                if rng.u8(..5) > 0 {
                    put("tweet_text", said[rng.usize(..said.len())]);
                }
                if rng.u8(..5) == 0 {
                    put("event", types[rng.usize(..types.len())]);
                }
                let e = event(&serde_json::Value::Object(obj).to_string());
                assert_eq!(
                    router.route(&e).targets,
                    reference(&routes, &e),
                    "round {round}: {:?} with {routes:#?}",
                    e.raw()
                );
            }
        }
    }
}
