//! Routing cost: events per second through `Router::route` alone.
//!
//! A plain timing loop (`Instant`, `black_box`) over 1,024 pre-parsed events, realistic
//! ones: one of 200 monitors, one of 500 authors, a tweet-length text. The routes mix
//! what configs hold: monitor names, monitor globs, author lists (with `@` and `*`), and
//! text regexes, with targets spread over 8 targets; no `stop`, so every route is tried.
//! The same loop also times `Event::parse` on the same events, for scale.
//!
//! The `route-where` rows run the same routes with a `where` added to every other one
//! (three kinds: language and retweet flag, a follower range, a top-level latency bound),
//! an eighth of them `where`-only so that every event's fields are read, on the same
//! events carrying a `tweet_data` object as `/ingest` deliveries do.

use std::hint::black_box;
use std::time::{Duration, Instant};

use badger_relay::config::{Comparison, Expected, FieldCondition, Number, RouteConfig};
use badger_relay::event::Event;
use badger_relay::routes::Router;
use bytes::Bytes;
use serde::Serialize;

const MONITOR_POOL: usize = 200;
const AUTHOR_POOL: usize = 500;
const TARGETS: usize = 8;
const EVENTS: usize = 1024;

const KEYWORDS: [&str; 12] = [
    "launch", "announce", "release", "funding", "outage", "acquire", "hiring", "beta", "keynote",
    "earnings", "recall", "patent",
];

const TEXTS: [&str; 6] = [
    "We are excited to announce our new platform, available today for everyone. Read the full post on our blog and tell us what you think!",
    "Quick update on yesterday's outage: root cause found, fix deployed, and a full postmortem will follow this week. Sorry for the trouble.",
    "Thrilled to share that we closed our Series B funding round. Huge thanks to the team, our customers, and our new partners. We're hiring!",
    "Nothing to see here, just a picture of my dog enjoying the sunshine at the park this afternoon. Have a great weekend, everyone.",
    "Keynote starts in 10 minutes: live demos, two product launches and one more thing. Link to the stream in the replies.",
    "Our quarterly earnings call is scheduled for Thursday at 5pm ET. Slides and the webcast will be on the investor relations site.",
];

fn monitor_name(i: usize) -> String {
    format!("Team {i:03} Watchlist")
}

fn author(i: usize) -> String {
    format!("user_{i:03}")
}

/// A realistic event: a monitor, an author and a text from the pools.
pub fn events() -> Vec<Event> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..EVENTS)
        .map(|i| {
            let m = rng.usize(..MONITOR_POOL);
            let a = rng.usize(..AUTHOR_POOL);
            let text = TEXTS[rng.usize(..TEXTS.len())];
            let json = format!(
                r#"{{"event":"tweet.detected","monitor_id":"mon-{m:04}","monitor_name":"{}","tweet_id":"{}","author_username":"{}","tweet_text":"{text}","tweet_url":"https://x.com/{}/status/{}","tweet_published_at":"2026-03-13T12:00:00Z","detected_at":"2026-03-13T12:00:00.150Z","latency_ms":150}}"#,
                monitor_name(m),
                1_900_000_000_000_000_000u64 + i as u64,
                author(a),
                author(a),
                1_900_000_000_000_000_000u64 + i as u64,
            );
            Event::parse(Bytes::from(json)).expect("a valid event")
        })
        .collect()
}

/// `n` routes. With `n = 1`, one route with all three kinds of condition.
pub fn routes(n: usize) -> Vec<RouteConfig> {
    let mut rng = fastrand::Rng::with_seed(42);
    let base = |i: usize| RouteConfig {
        name: format!("route-{i}"),
        events: vec!["tweet.detected".into()],
        targets: vec![i % TARGETS],
        ..RouteConfig::default()
    };
    let regex = |rng: &mut fastrand::Rng| {
        let a = KEYWORDS[rng.usize(..KEYWORDS.len())];
        let b = KEYWORDS[rng.usize(..KEYWORDS.len())];
        Some(regex::Regex::new(&format!("(?i)\\b({a}|{b})")).expect("valid regex"))
    };
    if n == 1 {
        let mut r = base(0);
        r.monitors = vec!["Team 0*".into(), monitor_name(150), "mon-0199".into()];
        r.authors = vec!["@user_0*".into(), author(250), author(499)];
        r.text = regex(&mut rng);
        return vec![r];
    }
    (0..n)
        .map(|i| {
            let mut r = base(i);
            match i % 4 {
                // Monitor names or ids.
                0 => {
                    r.monitors = vec![
                        monitor_name(rng.usize(..MONITOR_POOL)),
                        format!("mon-{:04}", rng.usize(..MONITOR_POOL)),
                    ]
                }
                // Authors, with `@` and a wildcard.
                1 => {
                    r.authors = vec![
                        format!("@{}", author(rng.usize(..AUTHOR_POOL))),
                        author(rng.usize(..AUTHOR_POOL)),
                        format!("user_{}*", rng.usize(..50)),
                    ]
                }
                // A monitor glob and a keyword regex.
                2 => {
                    r.monitors = vec![format!("team {}*", rng.usize(..20))];
                    r.text = regex(&mut rng);
                }
                // Monitor and author.
                _ => {
                    r.monitors = vec![monitor_name(rng.usize(..MONITOR_POOL))];
                    r.authors = vec![
                        author(rng.usize(..AUTHOR_POOL)),
                        author(rng.usize(..AUTHOR_POOL)),
                    ];
                }
            }
            r
        })
        .collect()
}

/// [`events`] with the full tweet under `tweet_data`, as `/ingest` deliveries carry it.
pub fn ingested_events() -> Vec<Event> {
    let mut rng = fastrand::Rng::with_seed(9);
    let langs = ["en", "en", "en", "de", "ja", "es"];
    events()
        .iter()
        .map(|e| {
            let raw = std::str::from_utf8(e.raw()).expect("UTF-8");
            let data = format!(
                r#","tweet_data":{{"id":"{}","lang":"{}","is_retweet":{},"is_reply":{},"retweet_count":{},"author":{{"username":"x","followers_count":{},"verified":{}}},"entities":{{"hashtags":["ai","launch"],"urls":[]}}}}}}"#,
                e.fields().tweet_id.as_deref().unwrap_or(""),
                langs[rng.usize(..langs.len())],
                rng.u8(..4) == 0,
                rng.u8(..5) == 0,
                rng.u32(..500),
                rng.u32(..200_000),
                rng.bool(),
            );
            let json = format!("{}{data}", &raw[..raw.len() - 1]);
            Event::parse(Bytes::from(json)).expect("a valid event")
        })
        .collect()
}

/// [`routes`] with a `where` on every other route; every eighth is `where` only.
pub fn routes_with_where(n: usize) -> Vec<RouteConfig> {
    let field = |path: &str, any_of: Vec<Expected>| FieldCondition {
        path: path.split('.').map(str::to_owned).collect(),
        any_of,
    };
    let number = |ops: &[(Comparison, i64)]| {
        Expected::Number(ops.iter().map(|&(op, n)| (op, Number::Int(n))).collect())
    };
    let mut routes = routes(n);
    for (i, r) in routes.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
        r.fields = match (i / 2) % 3 {
            0 => vec![
                field(
                    "tweet_data.lang",
                    vec![
                        Expected::Pattern("en".into()),
                        Expected::Pattern("de".into()),
                    ],
                ),
                field("tweet_data.is_retweet", vec![Expected::Bool(false)]),
            ],
            1 => vec![field(
                "tweet_data.author.followers_count",
                vec![number(&[
                    (Comparison::Gte, 1_000),
                    (Comparison::Lt, 100_000),
                ])],
            )],
            _ => vec![field("latency_ms", vec![number(&[(Comparison::Lte, 500)])])],
        };
        if i % 8 == 0 {
            r.monitors.clear();
            r.authors.clear();
            r.text = None;
        }
    }
    routes
}

#[derive(Debug, Clone, Serialize)]
pub struct RoutingResult {
    /// `parse` for the `Event::parse` row, `route-where` for [`routes_with_where`],
    /// else `route`.
    pub stage: &'static str,
    pub routes: usize,
    pub events_per_s: f64,
    pub ns_per_event: f64,
    /// Targets per event on average (how much of the config matched).
    pub targets_per_event: f64,
}

/// Repeat `f` over the events until `budget` has passed; events per second.
fn time_loop(budget: Duration, mut f: impl FnMut() -> usize) -> (f64, f64) {
    f(); // warm-up
    let start = Instant::now();
    let mut events = 0u64;
    loop {
        events += f() as u64;
        if start.elapsed() >= budget {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    (events as f64 / secs, secs * 1e9 / events as f64)
}

/// Times `router` over `events`.
fn time_router(
    stage: &'static str,
    n: usize,
    router: &Router,
    events: &[Event],
    budget: Duration,
) -> RoutingResult {
    let matched: usize = events.iter().map(|e| router.route(e).targets.len()).sum();
    let (events_per_s, ns_per_event) = time_loop(budget, || {
        for e in events {
            black_box(router.route(black_box(e)));
        }
        events.len()
    });
    RoutingResult {
        stage,
        routes: n,
        events_per_s,
        ns_per_event,
        targets_per_event: matched as f64 / events.len() as f64,
    }
}

pub fn run(route_counts: &[usize], budget: Duration) -> Vec<RoutingResult> {
    let events = events();
    let ingested = ingested_events();
    let mut out = Vec::new();
    for &n in route_counts {
        let router = Router::new(&routes(n), TARGETS);
        out.push(time_router("route", n, &router, &events, budget));
        if n > 1 {
            let router = Router::new(&routes_with_where(n), TARGETS);
            out.push(time_router("route-where", n, &router, &ingested, budget));
        }
    }
    let raw: Vec<Bytes> = events.iter().map(|e| e.raw().clone()).collect();
    let (events_per_s, ns_per_event) = time_loop(budget, || {
        for r in &raw {
            let _ = black_box(Event::parse(black_box(r.clone())));
        }
        raw.len()
    });
    out.push(RoutingResult {
        stage: "parse",
        routes: 0,
        events_per_s,
        ns_per_event,
        targets_per_event: 0.0,
    });
    out
}
