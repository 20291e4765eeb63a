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

use crate::config::RouteConfig;
use crate::event::Event;

/// The compiled routes.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
    target_count: usize,
}

#[derive(Debug, Clone)]
struct Route {
    monitors: Vec<Pattern>,
    authors: Vec<Pattern>,
    text: Option<regex::Regex>,
    events: Vec<String>,
    targets: Vec<usize>,
    stop: bool,
}

/// A lowercased pattern; `*` matches any run of characters.
#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    Glob(String),
}

impl Pattern {
    fn new(raw: &str, strip_at: bool) -> Pattern {
        let raw = if strip_at {
            raw.strip_prefix('@').unwrap_or(raw)
        } else {
            raw
        };
        let lower = raw.to_lowercase();
        if lower.contains('*') {
            Pattern::Glob(lower)
        } else {
            Pattern::Exact(lower)
        }
    }

    /// `value` is already lowercased.
    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(p) => p == value,
            Pattern::Glob(p) => glob_match(p, value),
        }
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
    event_type: &'a str,
    monitors: [Option<String>; 4],
    author: Option<String>,
    text: Option<&'a str>,
}

impl<'a> Subject<'a> {
    fn new(event: &'a Event) -> Self {
        let f = event.fields();
        let lower = |s: &Option<String>| s.as_deref().map(str::to_lowercase);
        Subject {
            event_type: event.event_type(),
            monitors: [
                lower(&f.monitor_name),
                lower(&f.monitor_id),
                lower(&f.rule_tag),
                lower(&f.rule_id),
            ],
            author: f
                .author_username
                .as_deref()
                .map(|a| a.strip_prefix('@').unwrap_or(a).to_lowercase()),
            text: f.tweet_text.as_deref(),
        }
    }
}

impl Route {
    fn matches(&self, s: &Subject<'_>) -> bool {
        if !self.events.iter().any(|e| e == s.event_type) {
            return false;
        }
        if !self.monitors.is_empty() {
            let hit = s
                .monitors
                .iter()
                .flatten()
                .any(|value| self.monitors.iter().any(|p| p.matches(value)));
            if !hit {
                return false;
            }
        }
        if !self.authors.is_empty() {
            match &s.author {
                Some(a) if self.authors.iter().any(|p| p.matches(a)) => {}
                _ => return false,
            }
        }
        if let Some(re) = &self.text {
            match s.text {
                Some(t) if re.is_match(t) => {}
                _ => return false,
            }
        }
        true
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
        let routes = routes
            .iter()
            .map(|r| Route {
                monitors: r.monitors.iter().map(|m| Pattern::new(m, false)).collect(),
                authors: r.authors.iter().map(|a| Pattern::new(a, true)).collect(),
                text: r.text.clone(),
                events: r.events.clone(),
                targets: r.targets.clone(),
                stop: r.stop,
            })
            .collect();
        Router {
            routes,
            target_count,
        }
    }

    /// Walk the routes for one event.
    pub fn route(&self, event: &Event) -> Routing {
        let subject = Subject::new(event);
        let mut out = Routing::default();
        let mut seen = vec![false; self.target_count];
        for (i, route) in self.routes.iter().enumerate() {
            if !route.matches(&subject) {
                continue;
            }
            out.routes.push(i);
            for &t in &route.targets {
                if !std::mem::replace(&mut seen[t], true) {
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
}
