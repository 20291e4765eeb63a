//! Replicas on NATS JetStream (`[outbox] backend = "nats"`), against real nats-server
//! processes this file starts (tests/support/nats.rs): two relays on one stream of
//! events post each (event, target) once; a replica killed mid-burst loses nothing; NATS
//! killed and restarted while events arrive loses nothing (and `/readyz` says 503
//! meanwhile); `concurrency = 1` keeps arrival order across replicas; a 429's
//! `Retry-After` holds both replicas; a dead letter is listed and retried by the CLI;
//! and config problems (no JetStream, wrong credentials) end start-up with exit 2.

mod support;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use support::nats::NatsServer;
use support::server::*;
use support::*;

/// A wait that covers hundreds of events through debug builds on shared cores.
const LONG: Duration = Duration::from_secs(60);

/// `[outbox] backend = "nats"` lines for `server`.
fn nats_outbox(server: &NatsServer, extra: &str) -> String {
    format!(
        "backend = \"nats\"\n[outbox.nats]\nurls = [{}]\nack_wait = \"4s\"\n{extra}",
        support::config::s(&server.url())
    )
}

/// One http target `hook` (`target_extra`), every event routed to it, `/ingest` on.
fn replica_config(
    stream: &StreamServer,
    nats: &NatsServer,
    hook: &Receiver,
    target_extra: &str,
) -> RelayConfig {
    let mut config = RelayConfig::new(stream)
        .http_target("hook", hook, &format!("timeout = \"2s\"\n{target_extra}"))
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(Some(INGEST_SECRET)));
    config.outbox_extra = nats_outbox(nats, "");
    config
}

/// Two replicas of `config`, both connected to `stream`.
async fn two_replicas(config: &RelayConfig, stream: &StreamServer) -> (Relay, Relay) {
    let a = Relay::start_connected(config, stream).await;
    let b = Relay::start_connected(config, stream).await;
    (a, b)
}

/// How many times each tweet id was delivered (2xx).
fn counts(hook: &Receiver) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for id in hook.delivered_tweet_ids() {
        *out.entry(id).or_insert(0) += 1;
    }
    out
}

fn set_of(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

fn ids(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|n| format!("7{n:05}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_post_each_event_once_including_repeats_and_ingest_copies() {
    let nats = NatsServer::start();
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let config = replica_config(&stream, &nats, &hook, "concurrency = 4");
    let (a, b) = two_replicas(&config, &stream).await;

    let tweets = ids(0..30);
    for id in &tweets {
        stream.send_event(&tweet_event(id));
    }
    // The same event twice more, and a copy of one through /ingest of each replica.
    stream.send_event(&tweet_event(&tweets[0]));
    stream.send_event(&tweet_event(&tweets[1]));
    let copy = serde_json::to_vec(&tweet_event(&tweets[2])).unwrap();
    Http::of(&a)
        .await
        .ingest_accepted(SIGNATURE_HEADER, &copy)
        .await;
    Http::of(&b)
        .await
        .ingest_accepted(SIGNATURE_HEADER, &copy)
        .await;
    // A last event, so "nothing more arrived" is seen after it landed.
    let last = "799999".to_string();
    stream.send_event(&tweet_event(&last));

    let mut all = tweets.clone();
    all.push(last);
    hook.wait_for_tweet_ids(&set_of(&all), LONG).await;
    // Anything posted twice would have been posted by now: both replicas are idle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = counts(&hook);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "posted more than once: {twice:?}");
    assert_eq!(counts.len(), all.len());
    // One webhook-id per delivery, whoever posted it.
    let webhook_ids: std::collections::BTreeSet<String> = hook
        .requests()
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();
    assert_eq!(webhook_ids.len(), all.len());
    // Both replicas did part of the work.
    let metrics_a = Http::of(&a).await.metrics().await;
    let metrics_b = Http::of(&b).await.metrics().await;
    let by = |m: &Metrics| {
        m.get("badger_relay_deliveries_total{target=\"hook\",outcome=\"delivered\"}")
            .unwrap_or(0.0)
    };
    assert_eq!(by(&metrics_a) + by(&metrics_b), all.len() as f64);
    assert_eq!(metrics_a.get("badger_relay_engine_connected"), Some(1.0));
    assert_eq!(metrics_a.get("badger_relay_spool_pending"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_burst_loses_nothing_and_repeats_at_most_its_in_flight() {
    let nats = NatsServer::start();
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let concurrency = 4;
    let config = replica_config(
        &stream,
        &nats,
        &hook,
        &format!("concurrency = {concurrency}"),
    );
    let (mut a, _b) = two_replicas(&config, &stream).await;
    // Each post takes 30 ms, so both replicas hold deliveries in flight mid-burst.
    hook.stall_for(Duration::from_millis(30));

    let tweets = ids(0..300);
    for id in &tweets {
        stream.send_event(&tweet_event(id));
    }
    hook.wait_until("100 deliveries", LONG, |reqs| reqs.len() >= 100)
        .await;
    a.kill();
    let killed = std::time::Instant::now();
    hook.wait_for_tweet_ids(&set_of(&tweets), LONG).await;
    let all_delivered = killed.elapsed();
    // Takeover: the first request that arrives after the kill, past what the killed
    // replica had already put on the wire (within 100 ms). When the survivor held the
    // pin all along, that is its next request, at once.
    let taken_over = hook
        .requests()
        .iter()
        .map(|r| r.arrived.saturating_duration_since(killed))
        .find(|gap| *gap > Duration::from_millis(100))
        .unwrap_or_default();
    let counts = counts(&hook);
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9 of one replica mid-burst: {duplicates} duplicates, taken over {taken_over:.1?} after the kill, all delivered after {all_delivered:.1?} (ack_wait 4s = the pin's priority_timeout)"
    );
    // The contract: taken over within ack_wait (the pin moves at priority_timeout =
    // ack_wait), plus a pull request's renewal and a debug build on two shared cores.
    assert!(
        taken_over <= Duration::from_secs(4 + 3),
        "the target was taken over {taken_over:?} after the kill, ack_wait is 4 s"
    );
    assert_eq!(counts.len(), tweets.len());
    assert!(
        duplicates <= concurrency,
        "{duplicates} duplicates, more than the {concurrency} the killed replica could hold"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_restarted_while_events_arrive_loses_nothing() {
    let mut nats = NatsServer::start();
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let config = replica_config(&stream, &nats, &hook, "concurrency = 2");
    let relay = Relay::start_connected(&config, &stream).await;
    let http = Http::of(&relay).await;
    http.wait_for_status("/readyz", 200, DEADLINE).await;

    let before = ids(0..20);
    for id in &before {
        stream.send_event(&tweet_event(id));
    }
    hook.wait_for_tweet_ids(&set_of(&before), LONG).await;

    nats.kill();
    http.wait_for_status("/readyz", 503, DEADLINE).await;
    let during = ids(100..140);
    for id in &during {
        stream.send_event(&tweet_event(id));
    }
    // /ingest still answers 202: the spool holds it.
    let copy = serde_json::to_vec(&tweet_event("7200000")).unwrap();
    http.ingest_accepted(SIGNATURE_HEADER, &copy).await;
    let m = http.metrics().await;
    assert_eq!(m.get("badger_relay_engine_connected"), Some(0.0));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(http.get("/readyz").await.status, 503);

    nats.restart();
    http.wait_for_status("/readyz", 200, LONG).await;
    let mut all = before.clone();
    all.extend(during);
    all.push("7200000".into());
    hook.wait_for_tweet_ids(&set_of(&all), LONG).await;
    http.wait_for_metrics(&[("badger_relay_spool_pending", 0.0)], DEADLINE)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_stopped_with_sigstop_while_events_arrive_loses_nothing() {
    let nats = NatsServer::start();
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let config = replica_config(&stream, &nats, &hook, "concurrency = 2");
    let relay = Relay::start_connected(&config, &stream).await;
    let http = Http::of(&relay).await;
    http.wait_for_status("/readyz", 200, DEADLINE).await;

    nats.pause(true);
    let during = ids(0..30);
    for id in &during {
        stream.send_event(&tweet_event(id));
    }
    // The TCP connection stays open; the probe notices that JetStream does not answer.
    http.wait_for_status("/readyz", 503, DEADLINE).await;
    let m = http.metrics().await;
    assert!(
        m.get("badger_relay_spool_pending").unwrap_or(0.0) > 0.0,
        "{}",
        m.0
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        hook.requests().is_empty(),
        "nothing can be delivered while NATS hangs"
    );
    nats.pause(false);
    hook.wait_for_tweet_ids(&set_of(&during), LONG).await;
    http.wait_for_status("/readyz", 200, DEADLINE).await;
    let counts = counts(&hook);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_held_longer_than_ack_wait_stays_with_its_replica() {
    // 1 request per 3 s and concurrency 3: the third delivery waits ~6 s at the rate
    // limiter, longer than ack_wait (4 s); in-progress signals keep it from being
    // handed out again (which would post it twice).
    let nats = NatsServer::start();
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let config = replica_config(
        &stream,
        &nats,
        &hook,
        "concurrency = 3\nrate_limit = \"1/3s\"",
    );
    let _relay = Relay::start_connected(&config, &stream).await;
    let tweets = ids(0..3);
    for id in &tweets {
        stream.send_event(&tweet_event(id));
    }
    hook.wait_for_tweet_ids(&set_of(&tweets), LONG).await;
    // A redelivery after ack_wait would land within another 3 s slot.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let counts = counts(&hook);
    assert!(counts.values().all(|n| *n == 1), "posted twice: {counts:?}");
    assert_eq!(hook.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_one_keeps_arrival_order_across_two_replicas() {
    let nats = NatsServer::start();
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    // The first attempt fails: the retry (a NAK with delay) still holds the target's
    // one slot, so nothing overtakes it.
    hook.script(vec![Reply::status(503)]);
    let config = replica_config(&stream, &nats, &hook, "concurrency = 1");
    let (_a, _b) = two_replicas(&config, &stream).await;
    let tweets = ids(0..40);
    for id in &tweets {
        stream.send_event(&tweet_event(id));
    }
    hook.wait_for_tweet_ids(&set_of(&tweets), LONG).await;
    assert_eq!(hook.delivered_tweet_ids(), tweets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_holds_both_replicas() {
    let nats = NatsServer::start();
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![Reply::status(429).header("Retry-After", "2")]);
    let config = replica_config(&stream, &nats, &hook, "concurrency = 1");
    let (_a, _b) = two_replicas(&config, &stream).await;
    stream.send_event(&tweet_event("730001"));
    let reqs = hook.wait_for_requests(2, LONG).await;
    let gap = reqs[1].arrived.duration_since(reqs[0].arrived);
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    assert_eq!(reqs[0].header("webhook-id"), reqs[1].header("webhook-id"));
    assert!(reqs[1].is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_for_the_target_across_two_replicas() {
    let nats = NatsServer::start();
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    // The platform allows 2 a second and answers 429 beyond: two replicas each keeping
    // the limit to themselves would send up to 4.
    hook.throttle(2, Duration::from_secs(1), 1);
    let config = replica_config(
        &stream,
        &nats,
        &hook,
        "concurrency = 4\nrate_limit = \"2/s\"",
    );
    let (_a, _b) = two_replicas(&config, &stream).await;
    let tweets = ids(100..116);
    for id in &tweets {
        stream.send_event(&tweet_event(id));
    }
    hook.wait_for_tweet_ids(&set_of(&tweets), LONG).await;
    let reqs = hook.requests();
    let total = reqs[reqs.len() - 1].arrived - reqs[0].arrived;
    eprintln!(
        "16 events at 2/s through two replicas: {} requests over {total:?}, {} answered 429",
        reqs.len(),
        hook.throttled()
    );
    assert_eq!(
        hook.throttled(),
        0,
        "the two replicas together exceeded 2/s"
    );
    assert_eq!(counts(&hook).values().sum::<usize>(), tweets.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_holds_the_whole_target_across_replicas_with_concurrency_above_one() {
    let nats = NatsServer::start();
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    // Each answer takes 100 ms, so deliveries are in flight from both replicas when the
    // sixth is refused.
    hook.stall_for(Duration::from_millis(100));
    let held = Duration::from_millis(100);
    let mut replies = vec![Reply::ok().held_for(held); 5];
    replies.push(Reply::status(429).header("Retry-After", "2").held_for(held));
    hook.script(replies);
    let config = replica_config(&stream, &nats, &hook, "concurrency = 4");
    let (_a, _b) = two_replicas(&config, &stream).await;
    let tweets = ids(200..224);
    for id in &tweets {
        stream.send_event(&tweet_event(id));
    }
    hook.wait_for_tweet_ids(&set_of(&tweets), LONG).await;
    let reqs = hook.requests();
    let refused = reqs
        .iter()
        .find(|r| r.status == 429)
        .expect("the 429")
        .arrived;
    // Requests already on their way when the 429 was answered arrive with it; every
    // later one, from either replica, waits out the 2 s.
    let early: Vec<Duration> = reqs
        .iter()
        .map(|r| r.arrived.saturating_duration_since(refused))
        .filter(|gap| *gap > Duration::from_millis(200) && *gap < Duration::from_secs(2))
        .collect();
    assert!(
        early.is_empty(),
        "requests {early:?} after the 429 with Retry-After: 2"
    );
    assert_eq!(counts(&hook).len(), tweets.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_is_dead_lettered_listed_and_retried_by_the_cli_while_replicas_run() {
    let nats = NatsServer::start();
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![Reply::status(404)]);
    let config = replica_config(&stream, &nats, &hook, "concurrency = 1");
    let (a, b) = two_replicas(&config, &stream).await;
    stream.send_event(&tweet_event("740001"));
    // Whichever replica buried it, both show the target's dead letter in the gauge.
    for relay in [&a, &b] {
        Http::of(relay)
            .await
            .wait_for_metrics(&[("badger_relay_outbox_dead{target=\"hook\"}", 1.0)], LONG)
            .await;
    }

    let listed = outbox(&a, &["list", "--dead"]).await;
    listed.assert_code(0);
    assert!(listed.stdout.contains("740001"), "{}", listed.all());
    let stats = outbox(&a, &["stats"]).await;
    stats.assert_code(0);
    assert_eq!(
        parse_stats(&stats.stdout).get("hook"),
        Some(&(0, 1)),
        "{}",
        stats.all()
    );

    let retried = outbox(&a, &["retry", "--target", "hook"]).await;
    retried.assert_code(0);
    hook.wait_for_tweet_ids(&set_of(&["740001".to_string()]), LONG)
        .await;
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("webhook-id"), reqs[1].header("webhook-id"));
    let stats = outbox(&a, &["stats"]).await;
    assert_eq!(
        parse_stats(&stats.stdout).get("hook"),
        Some(&(0, 0)),
        "{}",
        stats.all()
    );
    let purged = outbox(&a, &["purge", "--dead"]).await;
    purged.assert_code(0);
    assert!(purged.stdout.contains('0'), "{}", purged.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_losing_the_stream_leader_mid_burst_loses_nothing() {
    let mut cluster = support::nats::NatsCluster::start().await;
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let mut config = replica_config(&stream, &cluster.nodes[0], &hook, "concurrency = 4");
    config.outbox_extra = format!(
        "backend = \"nats\"\n[outbox.nats]\nurls = {}\nreplicas = 3\nack_wait = \"4s\"\n",
        cluster.urls_toml()
    );
    let (_a, _b) = two_replicas(&config, &stream).await;
    let leader = cluster.stream_leader("BADGER_RELAY", DEADLINE).await;

    let tweets = ids(0..200);
    for (i, id) in tweets.iter().enumerate() {
        stream.send_event(&tweet_event(id));
        if i == 60 {
            cluster.nodes[leader].kill();
        }
    }
    let start = std::time::Instant::now();
    hook.wait_for_tweet_ids(&set_of(&tweets), LONG).await;
    let counts = counts(&hook);
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "stream leader n{leader} killed mid-burst: all {} delivered {:.1?} after the burst, {duplicates} duplicates",
        tweets.len(),
        start.elapsed()
    );
    assert_eq!(counts.len(), tweets.len());
}

/// Runs `run` on `config` and waits for it to exit; its code and logs.
async fn run_to_exit(config: &RelayConfig) -> (Option<i32>, String) {
    let mut relay = Relay::start(config);
    let status = relay.wait_exit(DEADLINE).await;
    (status.code(), relay.logs().join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_problems_with_the_server_end_start_up_with_exit_2() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;

    // No JetStream.
    let plain = NatsServer::start_with(&[]);
    let (code, logs) = run_to_exit(&replica_config(&stream, &plain, &hook, "")).await;
    assert_eq!(code, Some(2), "{logs}");
    assert!(logs.contains("JetStream is not available"), "{logs}");

    // Wrong password: the message names the problem, never the password.
    let guarded = NatsServer::start_with(&["-js", "--user", "relay", "--pass", "right-pass-9f1"]);
    let mut config = replica_config(&stream, &guarded, &hook, "");
    config.outbox_extra = nats_outbox(
        &guarded,
        "user = \"relay\"\npassword = \"wrong-pass-3c7\"\n",
    );
    let (code, logs) = run_to_exit(&config).await;
    assert_eq!(code, Some(2), "{logs}");
    assert!(logs.contains("NATS refused the connection"), "{logs}");
    assert!(!logs.contains("wrong-pass-3c7"), "{logs}");

    // The right one works: `check` passes and the relay gets ready.
    config.outbox_extra = nats_outbox(
        &guarded,
        "user = \"relay\"\npassword = \"right-pass-9f1\"\n",
    );
    let relay = Relay::start_connected(&config, &stream).await;
    Http::of(&relay)
        .await
        .wait_for_status("/readyz", 200, DEADLINE)
        .await;

    // ack_wait shorter than twice a timeout: `check` says which target, exit 2.
    let mut short = replica_config(&stream, &guarded, &hook, "");
    short.outbox_extra = format!(
        "{}\n",
        nats_outbox(&guarded, "").replace("ack_wait = \"4s\"", "ack_wait = \"3s\"")
    );
    let probe = Relay::prepare(&short, &[]);
    let out = run_cli(
        cli(&["check", "-c", probe.config_path().to_str().unwrap()]),
        DEADLINE,
    )
    .await;
    out.assert_code(2);
    assert!(
        out.all().contains("target `hook` has timeout 2s"),
        "{}",
        out.all()
    );
}
