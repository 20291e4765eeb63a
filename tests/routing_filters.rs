//! `where` and `unless` on routes, through the real binary: which receiver gets which
//! event (over the stream and over `/ingest`, whose events carry the full tweet under
//! `tweet_data`), what `route` prints for an event a filter lets through or excludes,
//! and the config errors `check` gives for bad filters.
//!
//! "Nothing else arrived" is shown without sleeping: targets run with `concurrency = 1`,
//! whose deliveries land in arrival order, and each test ends with an event every
//! receiver gets; once it has landed, anything that should not have been sent before it
//! would have been.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const T: Duration = Duration::from_secs(30);

/// A stream event with a `tweet_data` object, as `/ingest` deliveries carry it.
fn ingested(
    id: &str,
    author: &str,
    text: &str,
    lang: &str,
    retweet: bool,
    followers: u64,
) -> Value {
    let mut e = event(id, "mon-tech", "Tech Leaders", author, text);
    e["tweet_data"] = json!({
        "id": id,
        "lang": lang,
        "is_retweet": retweet,
        "author": { "username": author, "followers_count": followers },
    });
    e
}

fn bodies(reqs: &[Request]) -> Vec<String> {
    reqs.iter().map(Request::body_str).collect()
}

/// The routes of the README's worked example.
fn filter_routes(cfg: RelayConfig) -> RelayConfig {
    cfg.route(
        route("english-reach")
            .targets(&["reach"])
            .extra(r#"where = { "tweet_data.lang" = ["en", "en-*"], "tweet_data.is_retweet" = false, "tweet_data.author.followers_count" = { gte = 1000 } }"#),
    )
    .route(
        route("no-bots")
            .monitors(&["Tech*"])
            .targets(&["clean"])
            .extra(r#"unless = { authors = ["*bot"], text = "(?i)giveaway" }"#),
    )
    .route(route("everything").targets(&["all"]))
}

#[tokio::test]
async fn where_and_unless_decide_which_receiver_gets_which_event() {
    let stream = StreamServer::start().await;
    let (reach, clean, all) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let cfg = filter_routes(
        RelayConfig::new(&stream)
            .http_target("reach", &reach, "concurrency = 1")
            .http_target("clean", &clean, "concurrency = 1")
            .http_target("all", &all, "concurrency = 1"),
    );
    let _relay = Relay::start_connected(&cfg, &stream).await;

    let big_en = stream.send_event(&ingested("1", "sama", "Hello", "EN", false, 5_000));
    let small = stream.send_event(&ingested("2", "sama", "Hello", "en", false, 999));
    let retweet = stream.send_event(&ingested("3", "sama", "Hello", "en", true, 5_000));
    let german = stream.send_event(&ingested("4", "sama", "Hallo", "de", false, 5_000));
    let en_gb = stream.send_event(&ingested("5", "sama", "Hi", "en-GB", false, 1_000));
    let bot = stream.send_event(&ingested("6", "NewsBot", "News", "en", false, 50_000));
    let giveaway = stream.send_event(&ingested("7", "sama", "A GIVEAWAY!", "fr", false, 10));
    // A stream event: no tweet_data, so `where` cannot match it; `unless` lets it through.
    let plain = stream.send_event(&event("8", "mon-tech", "Tech Leaders", "karpathy", "x"));
    let odd_types = {
        let mut e = ingested("9", "sama", "Hello", "en", false, 0);
        e["tweet_data"]["author"]["followers_count"] = json!("5000");
        e["tweet_data"]["is_retweet"] = json!("false");
        stream.send_event(&e)
    };
    let last = stream.send_event(&ingested("10", "sama", "end", "en", false, 1_000_000));

    let got_reach = reach.wait_for_body(&last, DEADLINE).await;
    let got_clean = clean.wait_for_body(&last, DEADLINE).await;
    let got_all = all.wait_for_body(&last, DEADLINE).await;
    assert_eq!(
        bodies(&got_reach),
        [big_en.as_str(), en_gb.as_str(), bot.as_str(), last.as_str()],
        "english, not a retweet, at least 1000 followers (strings case-insensitive, `*`)"
    );
    assert_eq!(
        bodies(&got_clean),
        [
            big_en.as_str(),
            small.as_str(),
            retweet.as_str(),
            german.as_str(),
            en_gb.as_str(),
            plain.as_str(),
            odd_types.as_str(),
            last.as_str()
        ],
        "all but the bot and the giveaway"
    );
    assert_eq!(
        bodies(&got_all),
        [
            big_en.as_str(),
            small.as_str(),
            retweet.as_str(),
            german.as_str(),
            en_gb.as_str(),
            bot.as_str(),
            giveaway.as_str(),
            plain.as_str(),
            odd_types.as_str(),
            last.as_str()
        ],
        "a route without conditions takes everything"
    );
}

#[tokio::test]
async fn where_applies_to_ingested_webhook_events() {
    use support::server::{Http, INGEST_SECRET, SIGNATURE_HEADER, server_table};
    let stream = StreamServer::start().await;
    let reach = Receiver::start().await;
    let all = Receiver::start().await;
    let cfg = RelayConfig::new(&stream)
        .http_target("reach", &reach, "concurrency = 1")
        .http_target("all", &all, "concurrency = 1")
        .route(
            route("big")
                .targets(&["reach"])
                .extra(r#"where = { "tweet_data.author.followers_count" = { gt = 1000 } }"#),
        )
        .route(route("everything").targets(&["all"]))
        .tail(&server_table(Some(INGEST_SECRET)));
    let relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;

    // Posted one after the other: each is accepted before the next is sent, so with
    // `concurrency = 1` a routed 21 would land at `reach` before 22 does.
    for (id, followers) in [("21", 10), ("22", 1_001)] {
        let body = ingested(id, "sama", "hello", "en", false, followers).to_string();
        http.ingest_accepted(SIGNATURE_HEADER, body.as_bytes())
            .await;
    }
    let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
    let got_all = all.wait_for_tweet_ids(&ids(&["21", "22"]), DEADLINE).await;
    let got_reach = reach.wait_for_tweet_ids(&ids(&["22"]), DEADLINE).await;
    assert_eq!(got_all.len(), 2);
    assert_eq!(
        got_reach
            .iter()
            .filter_map(Request::tweet_id)
            .collect::<Vec<_>>(),
        ["22"],
        "only the author with more than 1000 followers"
    );
}

/// A config file for the one-shot commands, with the worked example's routes.
fn route_config(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let unreachable = "http://127.0.0.1:9/hook";
    let cfg = filter_routes(
        RelayConfig::for_url("ws://127.0.0.1:9/stream")
            .target("reach", "http", unreachable, "")
            .target("clean", "http", unreachable, "")
            .target("all", "http", unreachable, ""),
    );
    let path = dir.path().join("badger-relay.toml");
    std::fs::write(&path, cfg.render(&dir.path().join("outbox"))).unwrap();
    path
}

#[test]
fn route_shows_what_where_lets_through_and_what_unless_excludes() {
    let dir = tempfile::tempdir().unwrap();
    let path = route_config(&dir);
    let path = path.to_str().unwrap();

    let matched = ingested("31", "sama", "Hello", "en", false, 2_000).to_string();
    let out = cli(&["route", "-c", path]).stdin(&matched).run(T);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("routes: english-reach, no-bots, everything\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("targets: reach, clean, all\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("excluded"), "{}", out.stdout);

    let bot = ingested("32", "NewsBot", "Hello", "de", false, 2_000).to_string();
    let out = cli(&["route", "-c", path]).stdin(&bot).run(T);
    out.assert_code(0);
    assert!(
        out.stdout.contains("excluded by unless: no-bots\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("routes: everything\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("targets: all\n"), "{}", out.stdout);
    assert!(out.stdout.contains(&bot), "the body is the event as given");
}

#[test]
fn check_shows_the_filters_and_rejects_bad_ones_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = route_config(&dir);
    let out = cli(&["check", "-c", path.to_str().unwrap()]).run(T);
    out.assert_code(0);
    assert!(
        out.stdout.contains(
            "english-reach: where tweet_data.lang = \"en\" or = \"en-*\", where tweet_data.is_retweet = false, where tweet_data.author.followers_count >= 1000, events [\"tweet.detected\"] -> reach"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "no-bots: monitors [\"Tech*\"], events [\"tweet.detected\"], unless any of (authors [\"*bot\"]; text /(?i)giveaway/) -> clean"
        ),
        "{}",
        out.stdout
    );

    let text = std::fs::read_to_string(&path).unwrap();
    let bad = text.replace("{ gte = 1000 }", "{ gtx = 1000 }");
    assert_ne!(bad, text);
    std::fs::write(&path, &bad).unwrap();
    let line = bad
        .lines()
        .position(|l| l.contains("gtx"))
        .expect("the line")
        + 1;
    let column = bad.lines().nth(line - 1).unwrap().find("gtx").unwrap() + 1;
    let out = cli(&["check", "-c", path.to_str().unwrap()]).run(T);
    out.assert_code(2);
    let expected = format!(
        "{}:{line}:{column}: routes[0].where.\"tweet_data.author.followers_count\".gtx: unknown operator: expected `gt`, `gte`, `lt` or `lte` (with a number) (did you mean `gt`?)",
        path.display()
    );
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
}
