use super::*;
use crate::config::{Comparison, Expected, FieldCondition, Number};
use crate::routes::pattern::glob_match;
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
        ..RouteConfig::default()
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

#[test]
fn titlecase_letters_match_case_insensitively() {
    // U+01C5 `ǅ` is titlecase: neither upper- nor lowercase, yet it lowercases to `ǆ`.
    let e = r#"{"monitor_name":"ǅemal News","author_username":"ǅemal"}"#;
    for m in ["ǅemal News", "ǄEMAL NEWS", "ǆemal news", "ǅ*", "*news"] {
        assert_eq!(
            targets(vec![route(|r| r.monitors = vec![m.into()])], e),
            vec![0],
            "{m}"
        );
    }
    for a in ["ǅemal", "@ǆEMAL", "ǅ*"] {
        assert_eq!(
            targets(vec![route(|r| r.authors = vec![a.into()])], e),
            vec![0],
            "{a}"
        );
    }
    let upper = r#"{"monitor_name":"ǄEMAL NEWS"}"#;
    assert_eq!(
        targets(
            vec![route(|r| r.monitors = vec!["ǅemal news".into()])],
            upper
        ),
        vec![0]
    );
}

fn condition(path: &str, any_of: Vec<Expected>) -> FieldCondition {
    FieldCondition {
        path: path.split('.').map(str::to_owned).collect(),
        any_of,
    }
}

fn pattern(p: &str) -> Expected {
    Expected::Pattern(p.into())
}

fn at_least(n: i64) -> Expected {
    Expected::Number(vec![(Comparison::Gte, Number::Int(n))])
}

const INGESTED: &str = r#"{"event":"tweet.detected","monitor_name":"Tech Leaders","tweet_id":"1","author_username":"sama","tweet_text":"Giveaway: we launch","tweet_data":{"lang":"en","is_retweet":false,"author":{"followers_count":1500}}}"#;

#[test]
fn where_conditions_are_anded_with_each_other_and_the_other_keys() {
    let contract = || {
        vec![
            condition("tweet_data.lang", vec![pattern("EN")]),
            condition("tweet_data.is_retweet", vec![Expected::Bool(false)]),
            condition("tweet_data.author.followers_count", vec![at_least(1000)]),
        ]
    };
    assert_eq!(
        targets(vec![route(|r| r.fields = contract())], INGESTED),
        vec![0]
    );
    let mut higher = contract();
    higher[2] = condition("tweet_data.author.followers_count", vec![at_least(2000)]);
    assert!(
        targets(vec![route(|r| r.fields = higher)], INGESTED).is_empty(),
        "one condition fails: no match"
    );
    let other_author = route(|r| {
        r.fields = contract();
        r.authors = vec!["elonmusk".into()];
    });
    assert!(
        targets(vec![other_author], INGESTED).is_empty(),
        "where is ANDed with authors"
    );
    let list = route(|r| {
        r.fields = vec![condition(
            "tweet_data.lang",
            vec![pattern("de"), pattern("e*")],
        )]
    });
    assert_eq!(
        targets(vec![list], INGESTED),
        vec![0],
        "values in a list are ORed"
    );
    assert!(
        targets(vec![route(|r| r.fields = contract())], TWEET).is_empty(),
        "missing fields never match"
    );
}

#[test]
fn an_entry_repeated_across_routes_is_compiled_once_and_tested_once_per_event() {
    let english = || condition("tweet_data.lang", vec![pattern("en")]);
    let routes: Vec<RouteConfig> = (0..3)
        .map(|i| {
            let mut r = RouteConfig {
                name: format!("r{i}"),
                events: vec!["tweet.detected".into()],
                targets: vec![i],
                fields: vec![english()],
                ..RouteConfig::default()
            };
            if i == 2 {
                r.unless = unless(|u| u.fields = vec![english()]);
            }
            r
        })
        .collect();
    let router = Router::new(&routes, 3);
    assert_eq!(router.tests.len(), 1, "one distinct entry");
    assert_eq!(router.route(&event(INGESTED)).targets, vec![0, 1]);
    assert_eq!(router.route(&event(INGESTED)).excluded, vec![2]);
    // The result belongs to the event, not the router: the next one is tested afresh.
    let german = INGESTED.replace(r#""lang":"en""#, r#""lang":"de""#);
    assert!(router.route(&event(&german)).targets.is_empty());
    assert_eq!(router.route(&event(INGESTED)).targets, vec![0, 1]);
}

#[test]
fn where_reads_top_level_fields_too() {
    let r = route(|r| r.fields = vec![condition("monitor_name", vec![pattern("tech *")])]);
    assert_eq!(targets(vec![r], TWEET), vec![0]);
    let r = route(|r| r.fields = vec![condition("monitor_name", vec![pattern("tech")])]);
    assert!(targets(vec![r], TWEET).is_empty());
}

fn unless(f: impl FnOnce(&mut Exclusion)) -> Option<Exclusion> {
    let mut u = Exclusion::default();
    f(&mut u);
    Some(u)
}

#[test]
fn unless_excludes_what_any_one_of_its_conditions_matches() {
    let bots_or_giveaways = || {
        unless(|u| {
            u.authors = vec!["*bot".into()];
            u.text = Some(regex::Regex::new("(?i)giveaway").unwrap());
        })
    };
    let r = || route(|r| r.unless = bots_or_giveaways());
    assert!(targets(vec![r()], INGESTED).is_empty(), "a giveaway text");
    let bot = r#"{"author_username":"@NewsBot","tweet_text":"hello"}"#;
    assert!(targets(vec![r()], bot).is_empty(), "a bot author");
    let plain = r#"{"author_username":"sama","tweet_text":"hello"}"#;
    assert_eq!(targets(vec![r()], plain), vec![0], "neither: kept");
    assert_eq!(
        targets(vec![r()], "{}"),
        vec![0],
        "no author and no text exclude nothing"
    );

    let monitors = route(|r| r.unless = unless(|u| u.monitors = vec!["TECH*".into()]));
    assert!(targets(vec![monitors], TWEET).is_empty());
    let exact = route(|r| r.unless = unless(|u| u.monitors = vec!["abc-123".into()]));
    assert!(targets(vec![exact], TWEET).is_empty(), "by monitor id");
    let fields = route(|r| {
        r.unless = unless(|u| {
            u.fields = vec![
                condition("tweet_data.lang", vec![pattern("en")]),
                condition("tweet_data.author.followers_count", vec![at_least(10_000)]),
            ]
        })
    });
    assert_eq!(
        targets(vec![fields.clone()], INGESTED),
        vec![0],
        "unless.where excludes only when all its conditions hold"
    );
    let mut small = fields;
    small.unless.as_mut().unwrap().fields[1] =
        condition("tweet_data.author.followers_count", vec![at_least(1000)]);
    assert!(targets(vec![small], INGESTED).is_empty());
    let missing = route(|r| {
        r.unless = unless(|u| {
            u.fields = vec![condition(
                "tweet_data.is_reply",
                vec![Expected::Bool(false)],
            )]
        })
    });
    assert_eq!(
        targets(vec![missing], INGESTED),
        vec![0],
        "a missing field does not exclude"
    );
}

#[test]
fn unless_without_events_excludes_no_event_type() {
    let r = route(|r| r.unless = unless(|u| u.authors = vec!["nobody".into()]));
    assert_eq!(targets(vec![r], TWEET), vec![0]);
    let paused = r#"{"event":"monitor.paused"}"#;
    let r = || {
        route(|r| {
            r.events = vec!["tweet.detected".into(), "monitor.paused".into()];
            r.unless = unless(|u| u.events = vec!["monitor.paused".into()]);
        })
    };
    assert!(targets(vec![r()], paused).is_empty());
    assert_eq!(targets(vec![r()], TWEET), vec![0]);
}

#[test]
fn an_excluded_route_adds_nothing_and_does_not_stop_the_walk() {
    let routes = vec![
        route(|r| {
            r.stop = true;
            r.unless = unless(|u| u.authors = vec!["sama".into()]);
        }),
        route(|r| r.targets = vec![1]),
    ];
    let routing = Router::new(&routes, 8).route(&event(INGESTED));
    assert_eq!(routing.routes, vec![1]);
    assert_eq!(routing.targets, vec![1]);
    assert_eq!(routing.excluded, vec![0]);
    let other = r#"{"author_username":"karpathy"}"#;
    let routing = Router::new(&routes, 8).route(&event(other));
    assert_eq!((routing.routes, routing.excluded), (vec![0], vec![]));
}

/// `value` matches `pattern` as the contract says: lowercase both, `*` for any run.
fn like(pattern: &str, value: &str) -> bool {
    glob_match(&pattern.to_lowercase(), &value.to_lowercase())
}

fn monitors_match(patterns: &[String], f: &crate::event::Fields) -> bool {
    [&f.monitor_name, &f.monitor_id, &f.rule_tag, &f.rule_id]
        .iter()
        .filter_map(|v| v.as_deref())
        .any(|v| patterns.iter().any(|p| like(p, v)))
}

fn authors_match(patterns: &[String], f: &crate::event::Fields) -> bool {
    let author = f
        .author_username
        .as_deref()
        .map(|a| a.trim_start_matches('@').to_string());
    author.as_deref().is_some_and(|a| {
        patterns
            .iter()
            .any(|p| like(p.strip_prefix('@').unwrap_or(p), a))
    })
}

/// A `where` entry on the event as a `serde_json::Value`, compared in f64.
fn field_matches(c: &FieldCondition, json: &serde_json::Value) -> bool {
    let mut v = json;
    for segment in &c.path {
        match v.get(segment) {
            Some(inner) => v = inner,
            None => return false,
        }
    }
    c.any_of.iter().any(|expected| match (expected, v) {
        (Expected::Pattern(p), serde_json::Value::String(s)) => like(p, s),
        (Expected::Bool(b), serde_json::Value::Bool(x)) => b == x,
        (Expected::Number(comparisons), serde_json::Value::Number(n)) => {
            let n = n.as_f64().unwrap();
            comparisons.iter().all(|(op, c)| {
                let c = match c {
                    Number::Int(i) => *i as f64,
                    Number::Float(f) => *f,
                };
                match op {
                    Comparison::Eq => n == c,
                    Comparison::Gt => n > c,
                    Comparison::Gte => n >= c,
                    Comparison::Lt => n < c,
                    Comparison::Lte => n <= c,
                }
            })
        }
        _ => false,
    })
}

/// The contract's rules, written as plainly as possible, to hold the indexed matcher to.
fn reference(routes: &[RouteConfig], e: &Event) -> Vec<usize> {
    let f = e.fields();
    let json: serde_json::Value = serde_json::from_slice(e.raw()).unwrap();
    let text_match = |re: &regex::Regex| f.tweet_text.as_deref().is_some_and(|t| re.is_match(t));
    let mut out = vec![];
    for r in routes {
        let events_ok = r.events.iter().any(|t| t == e.event_type());
        let monitors_ok = r.monitors.is_empty() || monitors_match(&r.monitors, f);
        let authors_ok = r.authors.is_empty() || authors_match(&r.authors, f);
        let text_ok = r.text.as_ref().is_none_or(text_match);
        let fields_ok = r.fields.iter().all(|c| field_matches(c, &json));
        let excluded = r.unless.as_ref().is_some_and(|u| {
            u.events.iter().any(|t| t == e.event_type())
                || (!u.monitors.is_empty() && monitors_match(&u.monitors, f))
                || (!u.authors.is_empty() && authors_match(&u.authors, f))
                || u.text.as_ref().is_some_and(text_match)
                || (!u.fields.is_empty() && u.fields.iter().all(|c| field_matches(c, &json)))
        });
        if events_ok && monitors_ok && authors_ok && text_ok && fields_ok && !excluded {
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

/// Random `where` entries over the paths [`random_event`] fills.
fn random_fields(rng: &mut fastrand::Rng, max: usize) -> Vec<FieldCondition> {
    let paths = [
        "lang",
        "tweet_data.lang",
        "tweet_data.is_retweet",
        "tweet_data.author.followers_count",
        "tweet_data.author",
        "latency_ms",
    ];
    let patterns = ["en", "E*", "*e*", "de", "é*", "*"];
    let numbers = [
        Number::Int(0),
        Number::Int(100),
        Number::Int(1000),
        Number::Float(1000.5),
        Number::Int(-1),
    ];
    let ops = [
        Comparison::Eq,
        Comparison::Gt,
        Comparison::Gte,
        Comparison::Lt,
        Comparison::Lte,
    ];
    (0..rng.usize(0..=max))
        .map(|_| {
            let any_of = (0..rng.usize(1..3))
                .map(|_| match rng.u8(..3) {
                    0 => pattern(patterns[rng.usize(..patterns.len())]),
                    1 => Expected::Bool(rng.bool()),
                    _ => Expected::Number(
                        (0..rng.usize(1..3))
                            .map(|_| {
                                (
                                    ops[rng.usize(..ops.len())],
                                    numbers[rng.usize(..numbers.len())],
                                )
                            })
                            .collect(),
                    ),
                })
                .collect();
            condition(paths[rng.usize(..paths.len())], any_of)
        })
        .collect()
}

/// Fields for `where` to find, each of several types or missing.
fn random_tweet_data(
    rng: &mut fastrand::Rng,
    obj: &mut serde_json::Map<String, serde_json::Value>,
) {
    use serde_json::json;
    let langs = [
        json!("en"),
        json!("EN"),
        json!("de"),
        json!("él"),
        json!(5),
        json!(null),
    ];
    let counts = [
        json!(0),
        json!(100),
        json!(1000),
        json!(1000.5),
        json!(-1),
        json!("1000"),
        json!(5e3),
    ];
    let flags = [json!(true), json!(false), json!("false")];
    let pick =
        |rng: &mut fastrand::Rng, from: &[serde_json::Value]| from[rng.usize(..from.len())].clone();
    if rng.bool() {
        obj.insert("lang".into(), pick(rng, &langs));
    }
    if rng.u8(..3) > 0 {
        obj.insert("latency_ms".into(), pick(rng, &counts));
    }
    if rng.u8(..4) > 0 {
        let mut data = serde_json::Map::new();
        data.insert("noise".into(), json!({"lang": "en", "list": [1, "x"]}));
        if rng.u8(..4) > 0 {
            data.insert("lang".into(), pick(rng, &langs));
        }
        if rng.u8(..4) > 0 {
            data.insert("is_retweet".into(), pick(rng, &flags));
        }
        match rng.u8(..4) {
            0 => {}
            1 => {
                data.insert("author".into(), json!("someone"));
            }
            _ => {
                data.insert(
                    "author".into(),
                    json!({"followers_count": pick(rng, &counts), "name": "n"}),
                );
            }
        }
        obj.insert("tweet_data".into(), serde_json::Value::Object(data));
    }
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
    let mut excluded = 0;
    let mut matched_with_where = 0;
    for round in 0..300 {
        // Up to 24 routes: both sides of INDEX_PREFIXES_FROM (prefix patterns matched
        // in turn, or looked up in the index); every tenth round 60 to 300, so that the
        // candidate bits span several words and, past 256 routes, the heap.
        let count = if round % 10 == 0 {
            rng.usize(60..300)
        } else {
            rng.usize(1..24)
        };
        let routes: Vec<RouteConfig> = (0..count)
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
                fields: if rng.bool() {
                    random_fields(&mut rng, 3)
                } else {
                    vec![]
                },
                unless: (rng.u8(..3) == 0).then(|| Exclusion {
                    monitors: pick(&mut rng, &monitors, 1),
                    authors: pick(&mut rng, &authors, 1),
                    text: (rng.u8(..3) == 0)
                        .then(|| regex::Regex::new(texts[rng.usize(..texts.len())]).unwrap()),
                    events: pick(&mut rng, &types[1..], 1),
                    fields: random_fields(&mut rng, 2),
                }),
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
            random_tweet_data(&mut rng, &mut obj);
            let e = event(&serde_json::Value::Object(obj).to_string());
            let routing = router.route(&e);
            assert_eq!(
                routing.targets,
                reference(&routes, &e),
                "round {round}: {:?} with {routes:#?}",
                e.raw()
            );
            excluded += routing.excluded.len();
            matched_with_where += routing
                .routes
                .iter()
                .filter(|&&r| !routes[r].fields.is_empty())
                .count();
        }
    }
    // The check means something only if both new keys decided some outcomes.
    assert!(excluded > 50, "only {excluded} exclusions");
    assert!(
        matched_with_where > 20,
        "only {matched_with_where} matches through where"
    );
}
