//! Bursts and stale tweets on chat targets, seen from a local receiver: a burst behind
//! a 1/2s limit arrives as digests (every tweet once, in order, never faster than the
//! limit); tweets that went stale while the target was down arrive as "while delivery
//! was delayed" messages or are dropped and counted.

mod support;

use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::server::*;
use support::*;

/// A burst of 30 at one message per 2 s folds into 4 messages or so: about 8 s.
const BURST_DEADLINE: Duration = Duration::from_secs(40);

/// A `tweet.detected` event for tweet `id`, published `age` ago.
fn aged_event(id: &str, age: Duration) -> Value {
    let mut e = tweet_event(id);
    let at = humantime::format_rfc3339_seconds(SystemTime::now() - age).to_string();
    e["tweet_published_at"] = at.clone().into();
    e["detected_at"] = at.into();
    e
}

fn fresh(id: &str) -> Value {
    aged_event(id, Duration::ZERO)
}

fn hours_old(id: &str) -> Value {
    aged_event(id, Duration::from_secs(2 * 3600))
}

/// The tweets a message links to (`.../status/ID`), in the order it lists them.
fn linked_ids(req: &Request) -> Vec<String> {
    let body = req.body_str();
    body.match_indices("/status/")
        .map(|(at, m)| {
            body[at + m.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|id| !id.is_empty())
        .collect()
}

/// The first block's text of a Slack message: a digest's heading.
fn heading(req: &Request) -> String {
    req.json()["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn slack(stream: &StreamServer, hook: &Receiver, extra: &str) -> RelayConfig {
    RelayConfig::new(stream)
        .target("chat", "slack", &hook.url(), extra)
        .route(route("all").targets(&["chat"]))
        .tail(&server_table(None))
}

#[tokio::test]
async fn a_burst_behind_the_rate_limit_arrives_as_digests_each_tweet_once_in_order() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    // The receiver allows one message per 2 s, as the target is told.
    hook.throttle(1, Duration::from_secs(2), 2);
    let cfg = slack(
        &stream,
        &hook,
        "rate_limit = \"1/2s\"\ndigest = { max = 10 }",
    );
    let relay = Relay::start_connected(&cfg, &stream).await;

    let ids: Vec<String> = (31000..31030).map(|i| i.to_string()).collect();
    for id in &ids {
        stream.send_event(&fresh(id));
    }
    let reqs = hook
        .wait_until("all 30 tweets delivered", BURST_DEADLINE, |reqs| {
            reqs.iter()
                .filter(|r| r.is_success())
                .map(|r| linked_ids(r).len())
                .sum::<usize>()
                >= 30
        })
        .await;
    let delivered: Vec<&Request> = reqs.iter().filter(|r| r.is_success()).collect();
    let shown: Vec<String> = delivered.iter().flat_map(|r| linked_ids(r)).collect();
    let headings: Vec<String> = delivered.iter().map(|r| heading(r)).collect();
    eprintln!(
        "30 tweets at 1/2s with digest max 10: {} messages: {headings:?}",
        delivered.len()
    );
    assert_eq!(shown, ids, "every tweet once, in arrival order");
    assert_eq!(hook.throttled(), 0, "never faster than the limit");
    assert!(
        delivered.len() <= 5,
        "30 tweets folded into at most 5 messages, got {}",
        delivered.len()
    );
    // Only the first could go at once; every later message is a digest of what waited.
    for (r, h) in delivered.iter().zip(&headings).skip(1) {
        let n = linked_ids(r).len();
        assert!((2..=10).contains(&n), "{h}: {n} tweets");
        assert_eq!(*h, format!("*{n} new tweets*"));
    }
    let http = Http::of(&relay).await;
    http.wait_for_metrics(
        &[(
            "badger_relay_deliveries_total{target=\"chat\",outcome=\"delivered\"}",
            30.0,
        )],
        DEADLINE,
    )
    .await;
}

#[tokio::test]
async fn tweets_gone_stale_while_the_target_was_down_arrive_as_one_delayed_message() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.down().await;
    let cfg = slack(
        &stream,
        &hook,
        "stale_after = \"15m\"\nstale = \"digest\"\nretry = { initial = \"200ms\", max = \"500ms\" }",
    );
    let relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;

    let old: Vec<String> = (32000..32012).map(|i| i.to_string()).collect();
    for id in &old {
        stream.send_event(&hours_old(id));
    }
    for id in ["32100", "32101"] {
        stream.send_event(&fresh(id));
    }
    http.wait_for_metrics(
        &[("badger_relay_outbox_pending{target=\"chat\"}", 14.0)],
        DEADLINE,
    )
    .await;
    hook.up().await;

    let reqs = hook
        .wait_for_tweet_ids_in_messages(&["32101"], DEADLINE)
        .await;
    let delivered: Vec<&Request> = reqs.iter().filter(|r| r.is_success()).collect();
    let delayed: Vec<&&Request> = delivered
        .iter()
        .filter(|r| heading(r).contains("from while delivery was delayed"))
        .collect();
    let folded: Vec<String> = delayed.iter().flat_map(|r| linked_ids(r)).collect();
    assert_eq!(
        folded, old,
        "each stale tweet once, in order, in delayed messages"
    );
    assert!(
        delayed.len() <= 2,
        "12 stale tweets in one or two messages (the first fold is made while events still arrive), got {}",
        delayed.len()
    );
    let singles: Vec<Vec<String>> = delivered
        .iter()
        .filter(|r| !heading(r).contains("delayed"))
        .map(|r| linked_ids(r))
        .collect();
    assert_eq!(
        singles,
        [vec!["32100".to_owned()], vec!["32101".to_owned()]],
        "fresh tweets as themselves"
    );
}

#[tokio::test]
async fn stale_tweets_can_be_dropped_and_counted() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = slack(&stream, &hook, "stale_after = \"15m\"\nstale = \"drop\"");
    let relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;
    for id in ["33000", "33001", "33002"] {
        stream.send_event(&hours_old(id));
    }
    stream.send_event(&fresh("33100"));
    let reqs = hook
        .wait_for_tweet_ids_in_messages(&["33100"], DEADLINE)
        .await;
    http.wait_for_metrics(
        &[
            (
                "badger_relay_deliveries_total{target=\"chat\",outcome=\"stale\"}",
                3.0,
            ),
            (
                "badger_relay_deliveries_total{target=\"chat\",outcome=\"delivered\"}",
                1.0,
            ),
            ("badger_relay_outbox_pending{target=\"chat\"}", 0.0),
        ],
        DEADLINE,
    )
    .await;
    let shown: Vec<String> = reqs.iter().flat_map(linked_ids).collect();
    assert_eq!(shown, ["33100"], "the stale ones are not sent");
}

trait InMessages {
    /// Waits until a message linking each of `ids` was answered 2xx.
    async fn wait_for_tweet_ids_in_messages(
        &self,
        ids: &[&str],
        deadline: Duration,
    ) -> Vec<Request>;
}

impl InMessages for Receiver {
    async fn wait_for_tweet_ids_in_messages(
        &self,
        ids: &[&str],
        deadline: Duration,
    ) -> Vec<Request> {
        self.wait_until(format!("{ids:?} delivered"), deadline, |reqs| {
            ids.iter().all(|id| {
                reqs.iter()
                    .any(|r| r.is_success() && linked_ids(r).iter().any(|l| l == id))
            })
        })
        .await
    }
}

#[tokio::test]
async fn telegram_and_teams_fold_a_burst_into_digests_each_tweet_once_in_order() {
    let stream = StreamServer::start().await;
    let (api, hook) = (Receiver::start().await, Receiver::start().await);
    for r in [&api, &hook] {
        r.throttle(1, Duration::from_secs(2), 2);
    }
    let folding = "rate_limit = \"1/2s\"\ndigest = { max = 10 }";
    let cfg = RelayConfig::new(&stream)
        .target(
            "tg",
            "telegram",
            &api.url(),
            &format!(
                "bot_token = \"123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\"\nchat_id = 1\n{folding}"
            ),
        )
        .target("teams", "teams", &hook.url(), folding)
        .route(route("all").targets(&["tg", "teams"]));
    let _relay = Relay::start_connected(&cfg, &stream).await;

    let ids: Vec<String> = (32000..32012).map(|i| i.to_string()).collect();
    for id in &ids {
        stream.send_event(&fresh(id));
    }
    for (name, receiver) in [("telegram", &api), ("teams", &hook)] {
        let reqs = receiver
            .wait_until(format!("all 12 tweets at {name}"), BURST_DEADLINE, |reqs| {
                reqs.iter().map(|r| linked_ids(r).len()).sum::<usize>() >= 12
            })
            .await;
        let shown: Vec<String> = reqs.iter().flat_map(linked_ids).collect();
        eprintln!(
            "{name}: 12 tweets at 1/2s with digest max 10: {} messages",
            reqs.len()
        );
        assert_eq!(shown, ids, "{name}: every tweet once, in arrival order");
        assert_eq!(
            receiver.throttled(),
            0,
            "{name}: never faster than the limit"
        );
        assert!(reqs.len() <= 3, "{name}: {} messages", reqs.len());
        assert!(
            reqs[1].body_str().contains("new tweets"),
            "{name}: the second message is a digest: {}",
            reqs[1].body_str()
        );
    }
}
