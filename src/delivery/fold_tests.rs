//! The folding worker (`digest`, `stale`) against the in-memory store, under paused time.

use std::time::{Duration, SystemTime};

use super::tests::{Answer, Rig, rig_of};

/// A tweet by `user{n}` saying `tweet {n}`, published `age` ago.
fn tweet(n: u32, age: Duration) -> String {
    let published = humantime::format_rfc3339_seconds(SystemTime::now() - age);
    format!(
        r#"{{"tweet_id":"{n}","author_username":"user{n}","tweet_text":"tweet {n}","tweet_published_at":"{published}"}}"#
    )
}

fn fresh(n: u32) -> String {
    tweet(n, Duration::ZERO)
}

fn old(n: u32) -> String {
    tweet(n, Duration::from_secs(3 * 3600))
}

/// The Slack messages sent, as JSON.
fn messages(r: &Rig) -> Vec<serde_json::Value> {
    r.bodies()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

/// The text of a message's first block (its heading, for a digest).
fn heading(m: &serde_json::Value) -> String {
    m["blocks"][0]["text"]["text"].as_str().unwrap().to_owned()
}

/// Which `tweet N` texts a message shows, in order.
fn listed(m: &serde_json::Value) -> Vec<u32> {
    let text = m.to_string();
    let mut found: Vec<(usize, u32)> = (0..300)
        .filter_map(|n| {
            text.find(&format!("tweet {n}\""))
                .or_else(|| text.find(&format!("tweet {n} ")))
                .map(|i| (i, n))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

#[tokio::test(start_paused = true)]
async fn a_burst_behind_the_rate_limit_goes_out_as_digests_in_arrival_order() {
    let r = rig_of(
        "slack",
        "rate_limit = \"1/2s\"\ndigest = { max = 5 }",
        vec![],
    );
    r.events_of(0..1, fresh).await;
    r.until("the first alone", |r| r.store.completed(0) == [0])
        .await;
    r.events_of(1..8, fresh).await;
    r.until("all delivered", |r| r.store.completed(0).len() == 8)
        .await;
    assert_eq!(r.store.completed(0), (0..8).collect::<Vec<_>>());
    let m = messages(&r);
    assert_eq!(
        m.len(),
        3,
        "one alone, then a digest of 5 and one of 2: {m:#?}"
    );
    assert_eq!(listed(&m[0]), [0]);
    assert!(
        !heading(&m[0]).contains("new tweet"),
        "the first could go at once"
    );
    assert_eq!(heading(&m[1]), "*5 new tweets*");
    assert_eq!(listed(&m[1]), [1, 2, 3, 4, 5]);
    assert_eq!(heading(&m[2]), "*2 new tweets*");
    assert_eq!(listed(&m[2]), [6, 7]);
    // Still one message per two seconds.
    for pair in r.times().windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(2),
            "{:?}",
            r.times()
        );
    }
    assert_eq!(r.metrics.target(0).delivered.get(), 8);
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn nothing_is_folded_that_could_go_alone() {
    let r = rig_of(
        "slack",
        "rate_limit = \"1/2s\"\ndigest = { max = 5 }",
        vec![],
    );
    for n in 0..3 {
        r.events_of(n..n + 1, fresh).await;
        r.until("delivered", |r| {
            r.store.completed(0).len() == n as usize + 1
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let m = messages(&r);
    assert_eq!(m.len(), 3);
    for (n, m) in m.iter().enumerate() {
        assert_eq!(listed(m), [n as u32]);
        assert!(!heading(m).contains("new tweet"));
    }
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_digest_is_retried_whole_and_dead_letters_whole() {
    let r = rig_of(
        "slack",
        "rate_limit = \"1/2s\"\ndigest = { max = 3 }\nretry = { initial = \"1s\", max = \"2s\" }",
        vec![
            Answer::Status(200),
            Answer::Status(503),
            Answer::Status(200),
            Answer::Status(400),
        ],
    );
    r.events_of(0..1, fresh).await;
    r.until("the first alone", |r| r.store.completed(0) == [0])
        .await;
    r.events_of(1..7, fresh).await;
    r.until("all settled", |r| {
        r.store.completed(0).len() + r.store.dead(0).len() == 7
    })
    .await;
    let m = messages(&r);
    assert_eq!(m.len(), 4, "{m:#?}");
    assert_eq!(m[1], m[2], "the retry is the same digest");
    assert_eq!(listed(&m[1]), [1, 2, 3]);
    assert_eq!(r.store.completed(0), [0, 1, 2, 3]);
    assert_eq!(listed(&m[3]), [4, 5, 6]);
    let dead: Vec<u64> = r.store.dead(0).into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(
        dead,
        [4, 5, 6],
        "the refused digest's deliveries are each dead-lettered"
    );
    let t = r.metrics.target(0);
    assert_eq!(
        (t.retried.get(), t.dead.get(), t.delivered.get()),
        (3, 3, 4)
    );
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_the_deliveries_of_an_unanswered_digest_are_sent_again() {
    let mut r = rig_of(
        "slack",
        "rate_limit = \"1/2s\"\ndigest = { max = 3 }\nretry = { initial = \"10s\", max = \"10s\" }",
        vec![Answer::Status(200), Answer::Status(503)],
    );
    r.events_of(0..1, fresh).await;
    r.until("the first alone", |r| r.store.completed(0) == [0])
        .await;
    r.events_of(1..4, fresh).await;
    r.until("the digest's schedule stored", |r| {
        (1..4).all(|seq| r.store.schedule(0, seq).is_some_and(|s| s.0 == 1))
    })
    .await;
    r.restart().await;
    r.until("all delivered", |r| r.store.completed(0).len() == 4)
        .await;
    let m = messages(&r);
    // The digest, then each of its deliveries on its own schedule, in order.
    let after: Vec<Vec<u32>> = m[2..].iter().map(listed).collect();
    assert_eq!(after, [vec![1], vec![2], vec![3]], "{m:#?}");
    assert_eq!(r.store.completed(0), [0, 1, 2, 3]);
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stale_tweets_are_dropped_and_counted() {
    let r = rig_of("slack", "stale_after = \"15m\"\nstale = \"drop\"", vec![]);
    r.events_of(0..3, old).await;
    r.events_of(3..4, fresh).await;
    r.until("all handled", |r| r.store.completed(0).len() == 4)
        .await;
    let m = messages(&r);
    assert_eq!(m.len(), 1);
    assert_eq!(listed(&m[0]), [3]);
    let t = r.metrics.target(0);
    assert_eq!((t.stale.get(), t.delivered.get()), (3, 1));
    assert!(r.store.pending(0).is_empty());
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stale_tweets_are_folded_into_one_message() {
    let r = rig_of("slack", "stale_after = \"15m\"\nstale = \"digest\"", vec![]);
    r.events_of(0..30, old).await;
    r.events_of(30..31, fresh).await;
    r.until("all delivered", |r| r.store.completed(0).len() == 31)
        .await;
    let m = messages(&r);
    assert_eq!(m.len(), 2, "{m:#?}");
    assert_eq!(
        heading(&m[0]),
        "*30 tweets from while delivery was delayed*"
    );
    assert_eq!(listed(&m[0]), (0..25).collect::<Vec<_>>());
    assert!(m[0].to_string().contains("…and 5 more"));
    assert_eq!(listed(&m[1]), [30]);
    assert!(!heading(&m[1]).contains("delayed"));
    assert_eq!(r.metrics.target(0).delivered.get(), 31);
    r.stop().await;
}
