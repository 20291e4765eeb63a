//! Operating it: the HTTP server (`/ingest`, `/healthz`, `/readyz`, `/metrics`),
//! SIGTERM with a slow target, the `outbox` admin commands (dead letter, list, retry,
//! and refusal while `run` holds the store), a damaged outbox, `send-test` and `demo`.
//!
//! Each relay listens on `127.0.0.1:0`; the test reads the port from the run's
//! "HTTP server listening" log line ([`server_addr`]). `/ingest` bodies are signed here,
//! independently of the binary, as ScrapeBadger signs them. "Nothing else arrived" is
//! shown as in `delivery.rs`: targets run with `concurrency = 1`, so once a later event
//! has landed, anything that should not have been sent before it would have been.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::process::{Logs, Process};
use support::server::*;
use support::*;

/// One-shot commands should be quick; this only bounds a hang.
const T: Duration = Duration::from_secs(20);

/// SIGTERM lets attempts in flight run for up to 10 s; the process must be gone by then,
/// with a little room for the flush and the exit.
const SIGTERM_DEADLINE: Duration = Duration::from_secs(12);

/// A stream URL nothing listens on, for configs that never connect.
const CLOSED_STREAM: &str = "ws://127.0.0.1:9/v1/twitter/stream";

/// One http target `hook` (concurrency 1) that every `tweet.detected` event goes to, and
/// a `[server]` with `/ingest`.
/// A wait that covers a few thousand events through a debug build on shared cores.
const LONG_DEADLINE: Duration = Duration::from_secs(60);

fn hook_config(stream: &StreamServer, hook: &Receiver) -> RelayConfig {
    RelayConfig::new(stream)
        .http_target("hook", hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(Some(INGEST_SECRET)))
}

/// ScrapeBadger's webhook body: the stream's event, with the full tweet under `tweet_data`.
fn webhook_body(event: &Value) -> Vec<u8> {
    let mut e = event.clone();
    e["tweet_data"] = json!({
        "id": e["tweet_id"],
        "text": e["tweet_text"],
        "author": { "username": e["author_username"], "followers_count": 1200 },
        "public_metrics": { "like_count": 3, "retweet_count": 1 },
    });
    serde_json::to_vec(&e).unwrap()
}

/// The older webhook body: `"type":"tweet"` with a `tweet{}` object.
fn legacy_body(
    tweet_id: &str,
    monitor_id: &str,
    monitor_name: &str,
    author: &str,
    text: &str,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": "tweet",
        "monitor_id": monitor_id,
        "monitor_name": monitor_name,
        "tweet": {
            "id": tweet_id,
            "text": text,
            "author": { "username": author },
            "created_at": "2026-03-13T12:00:00Z",
        },
    }))
    .unwrap()
}

fn bodies(reqs: &[Request]) -> Vec<String> {
    reqs.iter().map(Request::body_str).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn no_panic(out: &CliOutput) {
    assert!(
        !out.all().contains("panicked"),
        "the command panicked:\n{}",
        out.all()
    );
}

// ---------------------------------------------------------------------------------------
// POST /ingest
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn ingest_accepts_either_signature_header_and_either_body_shape() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    // Both conditions (ANDed) must see the stream's names for a legacy body to route.
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(
            route("leaders")
                .monitors(&["Tech Leaders"])
                .authors(&["elonmusk", "sama", "karpathy"])
                .targets(&["hook"]),
        )
        .tail(&server_table(Some(INGEST_SECRET)));
    let relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;

    let current_a = webhook_body(&tweet_event("61101"));
    let legacy_b = legacy_body("61102", "mon-tech", "Tech Leaders", "sama", "Legacy body");
    let current_c = webhook_body(&tweet_event("61103"));
    let legacy_d = legacy_body("61104", "mon-tech", "Tech Leaders", "karpathy", "Old & new");
    http.ingest_accepted(SIGNATURE_HEADER, &current_a).await;
    http.ingest_accepted(LEGACY_SIGNATURE_HEADER, &legacy_b)
        .await;
    http.ingest_accepted(LEGACY_SIGNATURE_HEADER, &current_c)
        .await;
    http.ingest_accepted(SIGNATURE_HEADER, &legacy_d).await;

    let reqs = hook
        .wait_for_tweet_ids(&set(&["61101", "61102", "61103", "61104"]), DEADLINE)
        .await;
    assert_eq!(
        hook.delivered_tweet_ids(),
        ["61101", "61102", "61103", "61104"],
        "each accepted body delivered once, in the order accepted"
    );
    assert_eq!(
        reqs[0].body.as_ref(),
        current_a.as_slice(),
        "the current shape is passed on byte for byte"
    );
    assert_eq!(reqs[2].body.as_ref(), current_c.as_slice());
    for (req, id, author, text) in [
        (&reqs[1], "61102", "sama", "Legacy body"),
        (&reqs[3], "61104", "karpathy", "Old & new"),
    ] {
        let v = req.json();
        let expect = [
            ("event", "tweet.detected"),
            ("tweet_id", id),
            ("author_username", author),
            ("tweet_text", text),
            ("tweet_published_at", "2026-03-13T12:00:00Z"),
            ("monitor_id", "mon-tech"),
            ("monitor_name", "Tech Leaders"),
        ];
        for (field, want) in expect {
            assert_eq!(
                v[field].as_str(),
                Some(want),
                "legacy body delivered with the stream's field `{field}`: {v}"
            );
        }
    }
    relay.assert_logs_free_of(INGEST_SECRET);
}

#[tokio::test]
async fn ingest_rejects_bad_signatures_oversized_and_malformed_bodies_and_stores_nothing() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = hook_config(&stream, &hook).max_message_size("1KiB");
    let mut relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;

    // A valid event each time: were any of these stored, it would be delivered or pending.
    let body = webhook_body(&tweet_event("61201"));
    let good = sign_ingest(INGEST_SECRET, &body);
    let wrong_secret = sign_ingest("not-the-secret", &body);
    let other_body = sign_ingest(INGEST_SECRET, &webhook_body(&tweet_event("61299")));
    let truncated = good[..good.len() - 2].to_string();
    let unsigned: [(&str, &str); 0] = [];
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no signature", unsigned.to_vec()),
        (
            "another secret, current header",
            vec![(SIGNATURE_HEADER, wrong_secret.as_str())],
        ),
        (
            "another secret, older header",
            vec![(LEGACY_SIGNATURE_HEADER, wrong_secret.as_str())],
        ),
        (
            "the signature of another body",
            vec![(SIGNATURE_HEADER, other_body.as_str())],
        ),
        (
            "a truncated signature",
            vec![(SIGNATURE_HEADER, truncated.as_str())],
        ),
        ("not hex", vec![(SIGNATURE_HEADER, "sha256=zzzz")]),
        ("empty", vec![(SIGNATURE_HEADER, "")]),
        (
            "the right signature under another header",
            vec![("X-Hub-Signature-256", good.as_str())],
        ),
    ];
    for (what, headers) in cases {
        let a = http.post("/ingest", &headers, body.clone()).await;
        assert_eq!(a.status, 401, "{what}: {a:?}");
    }

    let big = webhook_body(&event(
        "61202",
        "mon-tech",
        "Tech Leaders",
        "elonmusk",
        &"x".repeat(2048),
    ));
    assert!(big.len() > 1024);
    let a = http.ingest(SIGNATURE_HEADER, &big).await;
    assert_eq!(a.status, 413, "a body over max_message_size: {a:?}");

    for bad in [
        "not json {",
        "",
        "[1,2,3]",
        r#"{"event":"tweet.detected","tweet_id":"61203""#,
    ] {
        let a = http.ingest(SIGNATURE_HEADER, bad.as_bytes()).await;
        assert_eq!(a.status, 400, "bad JSON {bad:?}: {a:?}");
    }

    assert_eq!(http.get("/healthz").await.status, 200, "still healthy");
    assert!(relay.is_running(), "bad input must not crash the process");
    http.metrics().await.assert(&[
        ("badger_relay_events_received_total{source=\"ingest\"}", 0.0),
        (
            "badger_relay_deliveries_total{target=\"hook\",outcome=\"delivered\"}",
            0.0,
        ),
    ]);

    relay.terminate();
    let status = relay.wait_exit(SIGTERM_DEADLINE).await;
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0, got {status}");
    let stats = outbox_stats(&relay).await;
    assert_eq!(
        stats.get("hook"),
        Some(&(0, 0)),
        "nothing stored: {stats:?}"
    );
    assert!(
        hook.requests().is_empty(),
        "nothing delivered: {:?}",
        bodies(&hook.requests())
    );
    relay.assert_logs_free_of(INGEST_SECRET);
}

/// Contract, Security: bad `/ingest` bodies are counted (and logged once), like bad
/// frames. An oversized body is one, a malformed one another.
#[tokio::test]
async fn oversized_and_malformed_ingest_bodies_are_counted_as_invalid() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = hook_config(&stream, &hook).max_message_size("1KiB");
    let relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;

    let big = webhook_body(&event(
        "61301",
        "mon-tech",
        "Tech Leaders",
        "elonmusk",
        &"x".repeat(2048),
    ));
    assert_eq!(http.ingest(SIGNATURE_HEADER, &big).await.status, 413);
    assert_eq!(
        http.ingest(SIGNATURE_HEADER, b"not json {").await.status,
        400
    );
    http.wait_for_metrics(&[("badger_relay_events_invalid_total", 2.0)], DEADLINE)
        .await;
}

#[tokio::test]
async fn an_ingest_202_is_durable_kill_9_right_after_loses_nothing() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start_down().await;
    let mut relay = Relay::start_connected(&hook_config(&stream, &hook), &stream).await;
    let http = Http::of(&relay).await;

    let body = webhook_body(&tweet_event("61401"));
    http.ingest_accepted(SIGNATURE_HEADER, &body).await;
    relay.kill();

    hook.up().await;
    relay.restart_connected(&stream).await;
    let reqs = hook.wait_for_tweet_ids(&set(&["61401"]), DEADLINE).await;
    assert_eq!(reqs.last().unwrap().body.as_ref(), body.as_slice());
}

/// With `dedupe = "event"` the key is (event type, monitor, tweet id); with `"tweet"`,
/// the tweet id alone. Whether an event comes by WebSocket or by `/ingest`, and in
/// which body shape, does not change either key.
#[tokio::test]
async fn the_same_tweet_by_websocket_and_by_ingest_is_delivered_once_per_target() {
    let stream = StreamServer::start().await;
    let by_tweet = Receiver::start().await;
    let by_event = Receiver::start().await;
    let cfg = RelayConfig::new(&stream)
        .http_target("by-tweet", &by_tweet, "concurrency = 1\ndedupe = \"tweet\"")
        .http_target("by-event", &by_event, "concurrency = 1\ndedupe = \"event\"")
        .route(route("all").targets(&["by-tweet", "by-event"]))
        .tail(&server_table(Some(INGEST_SECRET)));
    let relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;

    // 62001: WebSocket first, then /ingest in both shapes, same monitor.
    let ws_first = stream.send_event(&tweet_event("62001"));
    by_tweet.wait_for_body(&ws_first, DEADLINE).await;
    by_event.wait_for_body(&ws_first, DEADLINE).await;
    http.ingest_accepted(SIGNATURE_HEADER, &webhook_body(&tweet_event("62001")))
        .await;
    http.ingest_accepted(
        LEGACY_SIGNATURE_HEADER,
        &legacy_body(
            "62001",
            "mon-tech",
            "Tech Leaders",
            "elonmusk",
            "Tweet number 62001",
        ),
    )
    .await;

    // 62002: /ingest first (202: stored), then the WebSocket.
    let ingest_first = webhook_body(&tweet_event("62002"));
    http.ingest_accepted(SIGNATURE_HEADER, &ingest_first).await;
    stream.send_event(&tweet_event("62002"));

    // 62001 again, found by another monitor: a new event, the same tweet.
    let other_monitor = webhook_body(&event(
        "62001",
        "mon-other",
        "Other Monitor",
        "elonmusk",
        "Tweet number 62001",
    ));
    http.ingest_accepted(SIGNATURE_HEADER, &other_monitor).await;

    let last = stream.send_event(&tweet_event("62003"));
    let got_tweet = by_tweet.wait_for_body(&last, DEADLINE).await;
    let got_event = by_event.wait_for_body(&last, DEADLINE).await;

    assert_eq!(
        bodies(&got_tweet),
        [
            ws_first.clone(),
            String::from_utf8(ingest_first.clone()).unwrap(),
            last.clone()
        ],
        "dedupe = \"tweet\": each tweet once, whichever way it came first"
    );
    assert_eq!(
        bodies(&got_event),
        [
            ws_first,
            String::from_utf8(ingest_first).unwrap(),
            String::from_utf8(other_monitor).unwrap(),
            last
        ],
        "dedupe = \"event\": each (monitor, tweet) once, whichever way it came"
    );
    // Skipped for at least one target: 62001 by /ingest twice, 62002 by WebSocket, and
    // 62001 from the other monitor (for by-tweet).
    http.wait_for_metrics(
        &[
            ("badger_relay_events_duplicate_total", 4.0),
            ("badger_relay_events_received_total{source=\"stream\"}", 3.0),
            ("badger_relay_events_received_total{source=\"ingest\"}", 4.0),
        ],
        DEADLINE,
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// /healthz, /readyz, /metrics
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn readyz_follows_the_stream_connection_and_healthz_stays_200() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(None));
    let relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;

    http.wait_for_status("/readyz", 200, DEADLINE).await;
    assert_eq!(http.get("/healthz").await.status, 200);
    http.metrics()
        .await
        .assert(&[("badger_relay_source_connected", 1.0)]);

    stream.stop().await;
    http.wait_for_status("/readyz", 503, DEADLINE).await;
    assert_eq!(
        http.get("/healthz").await.status,
        200,
        "healthy while the stream is away: the process runs and the outbox is open"
    );
    http.wait_for_metrics(&[("badger_relay_source_connected", 0.0)], DEADLINE)
        .await;

    stream.restart().await;
    http.wait_for_status("/readyz", 200, DEADLINE).await;
    assert_eq!(http.get("/healthz").await.status, 200);
    let m = http
        .wait_for_metrics(&[("badger_relay_source_connected", 1.0)], DEADLINE)
        .await;
    let reconnects = m.get("badger_relay_source_reconnects_total").unwrap();
    assert!(reconnects >= 1.0, "reconnects_total = {reconnects}");

    // No ingest_secret: no /ingest. Then the reconnected stream still delivers.
    let body = webhook_body(&tweet_event("63001"));
    let signature = sign_ingest(INGEST_SECRET, &body);
    let a = http
        .post("/ingest", &[(SIGNATURE_HEADER, signature.as_str())], body)
        .await;
    assert!(
        matches!(a.status, 404 | 405),
        "/ingest without ingest_secret: {a:?}"
    );
    let after = stream.send_event(&tweet_event("63002"));
    let reqs = hook.wait_for_body(&after, DEADLINE).await;
    assert_eq!(bodies(&reqs), [after]);
}

#[tokio::test]
async fn readyz_is_200_when_ingest_is_the_only_source() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = hook_config(&stream, &hook).api_key(None);
    let relay = Relay::start(&cfg);
    let http = Http::of(&relay).await;

    http.wait_for_status("/readyz", 200, DEADLINE).await;
    let body = webhook_body(&tweet_event("63101"));
    http.ingest_accepted(SIGNATURE_HEADER, &body).await;
    let reqs = hook.wait_for_tweet_ids(&set(&["63101"]), DEADLINE).await;
    assert_eq!(reqs[0].body.as_ref(), body.as_slice());
    assert!(
        stream.handshakes().is_empty(),
        "no api_key: no stream connection"
    );
}

#[tokio::test]
async fn metrics_count_what_was_received_delivered_dropped_and_dead_lettered() {
    let stream = StreamServer::start().await;
    let good = Receiver::start().await;
    let gone = Receiver::start().await;
    gone.respond(404, &[], "no such hook");
    let cfg = RelayConfig::new(&stream)
        .http_target("good", &good, "concurrency = 1")
        .http_target("gone", &gone, "concurrency = 1")
        .route(route("tech").monitors(&["Tech Leaders"]).targets(&["good"]))
        .route(route("ghost").authors(&["ghost"]).targets(&["gone"]))
        .tail(&server_table(Some(INGEST_SECRET)));
    let relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;

    // By WebSocket: 3 routed to good, 1 bad frame, 1 unrouted, 1 to the 404 target.
    for id in ["64001", "64002", "64003"] {
        stream.send_event(&tweet_event(id));
    }
    stream.send_text("not json {");
    stream.send_event(&event("64004", "mon-food", "Cooking", "chef", "soup"));
    stream.send_event(&event("64005", "mon-x", "Nowhere", "ghost", "boo"));
    // By /ingest: 2 routed to good.
    for id in ["64006", "64007"] {
        http.ingest_accepted(SIGNATURE_HEADER, &webhook_body(&tweet_event(id)))
            .await;
    }

    good.wait_for_tweet_ids(
        &set(&["64001", "64002", "64003", "64006", "64007"]),
        DEADLINE,
    )
    .await;
    gone.wait_for_requests(1, DEADLINE).await;
    let m = http
        .wait_for_metrics(
            &[
                (
                    "badger_relay_deliveries_total{target=\"good\",outcome=\"delivered\"}",
                    5.0,
                ),
                (
                    "badger_relay_deliveries_total{target=\"gone\",outcome=\"dead\"}",
                    1.0,
                ),
                ("badger_relay_outbox_dead{target=\"gone\"}", 1.0),
                // A delivery is counted when its 2xx arrives and leaves the
                // gauge when the outbox has committed its removal, a moment
                // later: wait for both.
                ("badger_relay_outbox_pending{target=\"good\"}", 0.0),
            ],
            DEADLINE,
        )
        .await;
    m.assert(&[
        ("badger_relay_events_received_total{source=\"stream\"}", 5.0),
        ("badger_relay_events_received_total{source=\"ingest\"}", 2.0),
        ("badger_relay_events_invalid_total", 1.0),
        ("badger_relay_events_unrouted_total", 1.0),
        ("badger_relay_events_duplicate_total", 0.0),
        (
            "badger_relay_deliveries_total{target=\"good\",outcome=\"retried\"}",
            0.0,
        ),
        (
            "badger_relay_deliveries_total{target=\"good\",outcome=\"dead\"}",
            0.0,
        ),
        (
            "badger_relay_deliveries_total{target=\"gone\",outcome=\"delivered\"}",
            0.0,
        ),
        (
            "badger_relay_deliveries_total{target=\"gone\",outcome=\"retried\"}",
            0.0,
        ),
        (
            "badger_relay_delivery_duration_seconds_count{target=\"good\"}",
            5.0,
        ),
        ("badger_relay_outbox_pending{target=\"good\"}", 0.0),
        ("badger_relay_outbox_pending{target=\"gone\"}", 0.0),
        ("badger_relay_outbox_dead{target=\"good\"}", 0.0),
        ("badger_relay_source_connected", 1.0),
    ]);
    assert_eq!(gone.requests().len(), 1, "a 404 is not retried");
    relay.assert_logs_free_of(INGEST_SECRET);
}

/// After a restart with a backlog, the start-up count of what is on disk runs while new
/// events arrive and workers deliver; the pending and dead gauges must still equal
/// `outbox stats` once it is quiet (they drifted when the count and the runtime both
/// counted the same deliveries: events that arrived during the count were counted twice).
#[tokio::test]
async fn gauges_equal_outbox_stats_after_a_restart_with_a_backlog() {
    const N: u32 = 10_000;
    const M: u32 = 300;
    let stream = StreamServer::start().await;
    let hook = Receiver::start_down().await;
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 16")
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(None));
    let mut relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;
    for i in 0..N {
        stream.send_event(&tweet_event(&(70_000 + i).to_string()));
    }
    let pending = "badger_relay_outbox_pending{target=\"hook\"}";
    http.wait_for_metrics(&[(pending, f64::from(N))], LONG_DEADLINE)
        .await;
    relay.terminate();
    assert_eq!(relay.wait_exit(SIGTERM_DEADLINE).await.code(), Some(0));

    // Restart with the target still down; new events arrive while the backlog is counted.
    relay.restart_connected(&stream).await;
    for i in 0..M {
        stream.send_event(&tweet_event(&(90_000 + i).to_string()));
    }
    let http = Http::of(&relay).await;
    http.wait_for_metrics(
        &[
            (
                "badger_relay_events_received_total{source=\"stream\"}",
                f64::from(M),
            ),
            (pending, f64::from(N + M)),
        ],
        LONG_DEADLINE,
    )
    .await;

    // Then every delivery is refused: all of them move to the dead letters.
    hook.respond(404, &[], "no such hook");
    hook.up().await;
    let m = http
        .wait_for_metrics(
            &[(
                "badger_relay_deliveries_total{target=\"hook\",outcome=\"dead\"}",
                f64::from(N + M),
            )],
            LONG_DEADLINE,
        )
        .await;
    m.assert(&[
        (pending, 0.0),
        (
            "badger_relay_outbox_dead{target=\"hook\"}",
            f64::from(N + M),
        ),
    ]);
    relay.terminate();
    assert_eq!(relay.wait_exit(SIGTERM_DEADLINE).await.code(), Some(0));
    assert_eq!(
        outbox_stats(&relay).await.get("hook"),
        Some(&(0, u64::from(N + M)))
    );
}

// ---------------------------------------------------------------------------------------
// SIGTERM with a slow target
// ---------------------------------------------------------------------------------------

fn slow_config(stream: &StreamServer, target: &Receiver) -> RelayConfig {
    RelayConfig::new(stream)
        .http_target("slow", target, "concurrency = 1\ntimeout = \"30s\"")
        .route(route("all").targets(&["slow"]))
}

/// SIGTERM while the target holds its answer for 2 s. The attempt may finish before the
/// exit (then it is not sent again) or be cut off (then it is still pending and sent
/// after a restart, with the same webhook-id); either way nothing is lost, and the
/// process exits 0 within the drain deadline.
#[tokio::test]
async fn sigterm_with_a_slow_target_exits_0_in_time_and_loses_nothing() {
    let stream = StreamServer::start().await;
    let target = Receiver::start().await;
    target.stall_for(Duration::from_secs(2));
    let mut relay = Relay::start_connected(&slow_config(&stream, &target), &stream).await;

    let first = stream.send_event(&tweet_event("65001"));
    let reqs = target.wait_for_requests(1, DEADLINE).await;
    let webhook_id = reqs[0].header("webhook-id").unwrap().to_string();
    let sent = Instant::now();
    relay.terminate();
    let status = relay.wait_exit(SIGTERM_DEADLINE).await;
    eprintln!("exited {:.1?} after SIGTERM", sent.elapsed());
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0, got {status}");

    let stats = outbox_stats(&relay).await;
    target.always_ok();
    match stats.get("slow") {
        Some((0, 0)) => {
            // It finished before the exit: the 200 was recorded, no resend.
            relay.restart_connected(&stream).await;
            let next = stream.send_event(&tweet_event("65002"));
            let reqs = target.wait_for_body(&next, DEADLINE).await;
            assert_eq!(
                bodies(&reqs),
                [first, next],
                "a completed delivery is not sent again"
            );
        }
        Some((1, 0)) => {
            // Cut off: still pending, delivered after the restart.
            relay.restart_connected(&stream).await;
            let reqs = target.wait_for_requests(2, DEADLINE).await;
            assert_eq!(reqs[1].body_str(), first);
            assert_eq!(reqs[1].header("webhook-id"), Some(webhook_id.as_str()));
            assert_eq!(reqs[1].status, 200);
        }
        other => panic!("after SIGTERM the outbox holds {other:?} for `slow`: {stats:?}"),
    }
}

/// The target never answers: the attempt is cut off at the drain deadline, the process
/// still exits 0 in time, and the delivery is sent again after a restart.
#[tokio::test]
async fn sigterm_cuts_off_an_attempt_that_outlasts_the_drain_and_it_is_sent_after_restart() {
    let stream = StreamServer::start().await;
    let target = Receiver::start().await;
    target.stall();
    let mut relay = Relay::start_connected(&slow_config(&stream, &target), &stream).await;

    let first = stream.send_event(&tweet_event("65101"));
    let reqs = target.wait_for_requests(1, DEADLINE).await;
    let webhook_id = reqs[0].header("webhook-id").unwrap().to_string();
    let sent = Instant::now();
    relay.terminate();
    let status = relay.wait_exit(SIGTERM_DEADLINE).await;
    eprintln!("exited {:.1?} after SIGTERM", sent.elapsed());
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0, got {status}");
    assert_eq!(
        outbox_stats(&relay).await.get("slow"),
        Some(&(1, 0)),
        "the unanswered delivery is still pending"
    );

    target.release();
    relay.restart_connected(&stream).await;
    let reqs = target.wait_for_requests(2, DEADLINE).await;
    assert_eq!(reqs[1].body_str(), first);
    assert_eq!(
        reqs[1].header("webhook-id"),
        Some(webhook_id.as_str()),
        "the same delivery, the same webhook-id"
    );
    relay.terminate();
    assert_eq!(relay.wait_exit(SIGTERM_DEADLINE).await.code(), Some(0));
    assert_eq!(outbox_stats(&relay).await.get("slow"), Some(&(0, 0)));
}

// ---------------------------------------------------------------------------------------
// outbox admin commands
// ---------------------------------------------------------------------------------------

/// The `msg_...` lines of `outbox list`.
fn delivery_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.starts_with("msg_"))
        .map(str::to_string)
        .collect()
}

/// An event for two targets stores its body once; the dead letter of one keeps its own
/// copy after the other's delivery took the shared body, and `outbox retry` sends it
/// byte for byte.
#[tokio::test]
async fn a_dead_letter_of_an_event_for_two_targets_is_retried_with_its_body() {
    let stream = StreamServer::start().await;
    let (orders, audit) = (Receiver::start().await, Receiver::start().await);
    orders.respond(404, &[], "no such hook");
    let cfg = RelayConfig::new(&stream)
        .http_target("orders", &orders, "concurrency = 1")
        .http_target("audit", &audit, "")
        .route(route("all").targets(&["orders", "audit"]))
        .tail(&server_table(None));
    let mut relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;

    let frame = stream.send_event(&tweet_event("66101"));
    http.wait_for_metrics(
        &[
            ("badger_relay_outbox_dead{target=\"orders\"}", 1.0),
            ("badger_relay_outbox_pending{target=\"audit\"}", 0.0),
            (
                "badger_relay_deliveries_total{target=\"audit\",outcome=\"delivered\"}",
                1.0,
            ),
        ],
        DEADLINE,
    )
    .await;
    relay.terminate();
    assert_eq!(relay.wait_exit(SIGTERM_DEADLINE).await.code(), Some(0));
    let stats = outbox_stats(&relay).await;
    assert_eq!(
        (stats.get("orders"), stats.get("audit")),
        (Some(&(0, 1)), Some(&(0, 0)))
    );
    outbox(&relay, &["verify"]).await.assert_code(0);

    orders.always_ok();
    outbox(&relay, &["retry", "--target", "orders"])
        .await
        .assert_code(0);
    relay.restart_connected(&stream).await;
    let reqs = orders
        .wait_until("the retried delivery answered 200", DEADLINE, |r| {
            r.iter().any(|q| q.is_success())
        })
        .await;
    assert_eq!(reqs.last().unwrap().body_str(), frame);
    assert_eq!(audit.delivered_bodies(), vec![frame]);
}

/// `outbox purge --target T` deletes T's pending deliveries, prints the count and leaves
/// every other target's: here the other delivery of the same event, whose body the two
/// shared, is still sent byte for byte after a restart.
#[tokio::test]
async fn purging_one_target_keeps_the_other_targets_delivery_of_the_same_event() {
    let stream = StreamServer::start().await;
    let (orders, audit) = (Receiver::start().await, Receiver::start().await);
    for down in [&orders, &audit] {
        down.respond(503, &[], "down");
    }
    // Their retries wait a few seconds: the relay is stopped before, and after the
    // restart audit's comes soon.
    let later = "retry = { initial = \"3s\", max = \"3s\" }";
    let cfg = RelayConfig::new(&stream)
        .http_target("orders", &orders, later)
        .http_target("audit", &audit, later)
        .route(route("all").targets(&["orders", "audit"]))
        .tail(&server_table(None));
    let mut relay = Relay::start_connected(&cfg, &stream).await;
    let frame = stream.send_event(&tweet_event("66201"));
    orders.wait_for_requests(1, DEADLINE).await;
    audit.wait_for_requests(1, DEADLINE).await;
    relay.terminate();
    assert_eq!(relay.wait_exit(SIGTERM_DEADLINE).await.code(), Some(0));
    let stats = outbox_stats(&relay).await;
    assert_eq!(
        (stats.get("orders"), stats.get("audit")),
        (Some(&(1, 0)), Some(&(1, 0)))
    );

    let purged = outbox(&relay, &["purge", "--target", "orders"]).await;
    purged.assert_code(0);
    assert!(purged.stdout.contains('1'), "{}", purged.all());
    let stats = outbox_stats(&relay).await;
    assert_eq!(
        (stats.get("orders"), stats.get("audit")),
        (Some(&(0, 0)), Some(&(1, 0))),
        "only orders' delivery went"
    );
    let verified = outbox(&relay, &["verify"]).await;
    verified.assert_code(0);

    audit.always_ok();
    relay.restart_connected(&stream).await;
    let reqs = audit.wait_for_requests(2, DEADLINE).await;
    assert_eq!(reqs[1].body_str(), frame);
    relay.terminate();
    assert_eq!(relay.wait_exit(SIGTERM_DEADLINE).await.code(), Some(0));
    assert_eq!(orders.requests().len(), 1, "nothing more to orders");
    assert_eq!(outbox_stats(&relay).await.get("audit"), Some(&(0, 0)));
}

#[tokio::test]
async fn a_dead_letter_is_listed_retried_and_delivered_after_restart() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.respond(404, &[], "no such hook");
    let cfg = RelayConfig::new(&stream)
        .http_target("orders", &hook, "concurrency = 1")
        .route(route("all").targets(&["orders"]))
        .tail(&server_table(None));
    let mut relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;

    let frame = stream.send_event(&tweet_event("66001"));
    http.wait_for_metrics(
        &[
            ("badger_relay_outbox_dead{target=\"orders\"}", 1.0),
            (
                "badger_relay_deliveries_total{target=\"orders\",outcome=\"dead\"}",
                1.0,
            ),
        ],
        DEADLINE,
    )
    .await;
    let first = hook.requests();
    assert_eq!(first.len(), 1, "a 404 is not retried");
    let webhook_id = first[0].header("webhook-id").unwrap().to_string();

    relay.terminate();
    assert_eq!(relay.wait_exit(SIGTERM_DEADLINE).await.code(), Some(0));
    assert_eq!(outbox_stats(&relay).await.get("orders"), Some(&(0, 1)));

    let out = outbox(&relay, &["list", "--dead"]).await;
    out.assert_code(0);
    let lines = delivery_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "one dead letter:\n{}", out.stdout);
    let line = &lines[0];
    let words: Vec<&str> = line.split_whitespace().collect();
    let id = words[0];
    let hex = id.strip_prefix("msg_").unwrap();
    assert!(
        hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "the id is msg_<32 hex>: {line}"
    );
    assert_eq!(words[1], "orders", "then the target: {line}");
    assert!(line.contains("tweet=66001"), "the tweet id: {line}");
    assert!(line.contains("attempts=1"), "one attempt: {line}");
    assert!(
        line.contains("404") && line.contains("no such hook"),
        "the reason: the status and the answer: {line}"
    );
    assert_eq!(
        id, webhook_id,
        "the listed id is the webhook-id the target saw"
    );
    let pending = outbox(&relay, &["list"]).await;
    pending.assert_code(0);
    assert!(
        delivery_lines(&pending.stdout).is_empty(),
        "{}",
        pending.stdout
    );

    hook.always_ok();
    let out = outbox(&relay, &["retry", id]).await;
    out.assert_code(0);
    no_panic(&out);
    assert_eq!(outbox_stats(&relay).await.get("orders"), Some(&(1, 0)));
    let pending = outbox(&relay, &["list", "--target", "orders"]).await;
    pending.assert_code(0);
    let listed = delivery_lines(&pending.stdout);
    assert_eq!(listed.len(), 1, "{}", pending.stdout);
    assert!(
        listed[0].starts_with(id),
        "a retried delivery keeps its id: {}",
        listed[0]
    );

    relay.restart_connected(&stream).await;
    let reqs = hook
        .wait_until("the retried delivery answered 200", DEADLINE, |r| {
            r.iter().any(|q| q.is_success())
        })
        .await;
    assert_eq!(reqs.len(), 2, "{:?}", bodies(&reqs));
    assert_eq!(reqs[1].body_str(), frame);
    assert_eq!(reqs[1].header("webhook-id"), Some(id));

    // The delivered letter left the outbox.
    let http = Http::of(&relay).await;
    http.wait_for_metrics(
        &[(
            "badger_relay_deliveries_total{target=\"orders\",outcome=\"delivered\"}",
            1.0,
        )],
        DEADLINE,
    )
    .await;
    relay.terminate();
    assert_eq!(relay.wait_exit(SIGTERM_DEADLINE).await.code(), Some(0));
    assert_eq!(outbox_stats(&relay).await.get("orders"), Some(&(0, 0)));
    let dead = outbox(&relay, &["list", "--dead"]).await;
    dead.assert_code(0);
    assert!(delivery_lines(&dead.stdout).is_empty(), "{}", dead.stdout);
}

#[tokio::test]
async fn outbox_commands_and_a_second_run_are_refused_while_run_holds_the_store() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let mut relay = Relay::start_connected(&hook_config(&stream, &hook), &stream).await;
    let a = stream.send_event(&tweet_event("67001"));
    hook.wait_for_body(&a, DEADLINE).await;

    let outbox_path = relay.outbox_dir().display().to_string();
    for args in [
        &["stats"][..],
        &["list"],
        &["list", "--dead"],
        &["retry"],
        &["purge"],
        &["purge", "--dead"],
    ] {
        let out = outbox(&relay, args).await;
        out.assert_code(1);
        no_panic(&out);
        assert!(
            out.stderr
                .contains("in use by another badger-relay process"),
            "outbox {args:?}: a clear message:\n{}",
            out.all()
        );
        assert!(
            out.stderr.contains(&outbox_path),
            "outbox {args:?}: the message names the outbox:\n{}",
            out.all()
        );
    }

    let config = relay.config_path().to_str().unwrap().to_string();
    let second = run_cli(cli(&["run", "-c", &config]), T).await;
    second.assert_code(1);
    no_panic(&second);
    assert!(
        second
            .stderr
            .contains("in use by another badger-relay process"),
        "a second run:\n{}",
        second.all()
    );

    assert!(relay.is_running(), "the running relay is untouched");
    let b = stream.send_event(&tweet_event("67002"));
    let reqs = hook.wait_for_body(&b, DEADLINE).await;
    assert_eq!(bodies(&reqs), [a, b], "and it still delivers");

    relay.terminate();
    assert_eq!(relay.wait_exit(SIGTERM_DEADLINE).await.code(), Some(0));
    assert_eq!(outbox_stats(&relay).await.get("hook"), Some(&(0, 0)));
}

#[tokio::test]
async fn an_outbox_path_that_is_a_file_is_reported_by_path_without_a_panic() {
    let cfg = RelayConfig::for_url(CLOSED_STREAM)
        .target("hook", "http", "http://127.0.0.1:9/hook", "")
        .route(route("all").targets(&["hook"]));
    let relay = Relay::prepare(&cfg, &[]);
    let path = relay.outbox_dir();
    std::fs::write(&path, "not an outbox\n").unwrap();
    let shown = path.display().to_string();
    let config = relay.config_path().to_str().unwrap().to_string();

    for args in [
        &["outbox", "stats"][..],
        &["outbox", "list", "--dead"],
        &["outbox", "retry"],
        &["outbox", "purge"],
        &["run"],
    ] {
        let mut all = args.to_vec();
        all.extend(["-c", config.as_str()]);
        let out = run_cli(cli(&all), T).await;
        out.assert_code(1);
        no_panic(&out);
        assert!(
            out.stderr.contains(&shown),
            "{args:?}: the message names the path:\n{}",
            out.all()
        );
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "not an outbox\n",
        "the file is left alone"
    );
}

/// A store with deliveries in it whose log was damaged (32 bytes overwritten near its
/// start): `outbox stats` and `run` refuse it, naming the path, without a panic, and
/// leave it as it was, so that the advice they give ("move it aside ... or restore it
/// from a backup") still has something intact to move aside.
#[tokio::test]
async fn a_damaged_store_is_refused_every_time_and_never_restarted_empty() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start_down().await;
    let mut relay = Relay::start_connected(&hook_config(&stream, &hook), &stream).await;
    let http = Http::of(&relay).await;
    for i in 0..20 {
        let id = format!("{}", 68000 + i);
        http.ingest_accepted(SIGNATURE_HEADER, &webhook_body(&tweet_event(&id)))
            .await;
    }
    relay.terminate();
    assert_eq!(relay.wait_exit(SIGTERM_DEADLINE).await.code(), Some(0));
    assert_eq!(outbox_stats(&relay).await.get("hook"), Some(&(20, 0)));

    let log = relay.outbox_dir().join("db").join("db");
    let mut bytes = std::fs::read(&log).expect("sled's log file");
    bytes[100..132].copy_from_slice(&[b'X'; 32]);
    std::fs::write(&log, &bytes).unwrap();
    let shown = relay.outbox_dir().display().to_string();
    let config = relay.config_path().to_str().unwrap().to_string();

    // sled 0.34 has no read-only open: its recovery may rewrite the damaged tail of the
    // log before it reports the damage. What must hold: every attempt is refused with the
    // path and no panic, the files stay, and no attempt "heals" the store into an empty
    // one that would hide the pending deliveries.
    for args in [
        &["outbox", "stats"][..],
        &["run"],
        &["outbox", "stats"],
        &["run"],
    ] {
        let mut all = args.to_vec();
        all.extend(["-c", config.as_str()]);
        let out = run_cli(cli(&all), T).await;
        out.assert_code(1);
        no_panic(&out);
        assert!(
            out.stderr.contains(&shown) && out.stderr.contains("damaged"),
            "{args:?}: the message names the path and the damage:\n{}",
            out.all()
        );
        assert!(log.exists(), "{args:?}: the log file is still there");
    }
    assert!(
        hook.requests().is_empty(),
        "nothing was sent from a damaged store"
    );
}

// ---------------------------------------------------------------------------------------
// send-test and demo
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn send_test_prints_delivered_on_2xx_and_failed_on_404() {
    let hook = Receiver::start().await;
    let cfg = RelayConfig::for_url(CLOSED_STREAM).http_target("hook", &hook, "");
    let relay = Relay::prepare(&cfg, &[]);
    let config = relay.config_path().to_str().unwrap().to_string();

    let out = run_cli(cli(&["send-test", "-c", &config, "hook"]), T).await;
    out.assert_code(0);
    assert!(out.stdout.contains("delivered"), "{}", out.all());
    let reqs = hook.wait_for_requests(1, DEADLINE).await;
    assert!(
        reqs[0].tweet_id().is_some(),
        "a sample event: {}",
        reqs[0].body_str()
    );

    hook.respond(404, &[], "no such hook");
    let out = run_cli(cli(&["send-test", "-c", &config, "hook"]), T).await;
    out.assert_code(1);
    assert!(out.stdout.contains("failed"), "{}", out.all());
    assert!(out.stdout.contains("404"), "the status: {}", out.all());
    no_panic(&out);
    assert_eq!(hook.requests().len(), 2);
    assert!(
        !relay.outbox_dir().exists(),
        "send-test bypasses the outbox"
    );
}

#[tokio::test]
async fn demo_prints_slack_discord_and_http_deliveries_and_exits_0_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Arc::new(Logs::default());
    let env = [("RUST_LOG".to_string(), "warn".to_string())];
    let started = Instant::now();
    let mut demo = Process::spawn(&support::relay::bin(), &["demo"], dir.path(), &env, &logs);

    let within = Duration::from_secs(10);
    for marker in ["┌ Slack", "┌ Discord", "┌ HTTP POST"] {
        let left = within.saturating_sub(started.elapsed());
        logs.wait_for(format!("a line starting {marker:?}"), left, |l| {
            l.starts_with(marker)
        })
        .await;
    }
    eprintln!(
        "all three target types shown after {:.1?}",
        started.elapsed()
    );

    signal(demo.pid(), "INT");
    let status = demo.wait_exit(DEADLINE, &logs).await;
    assert_eq!(status.code(), Some(0), "SIGINT exits 0, got {status}");
    let lines = logs.lines();
    assert!(
        !lines.iter().any(|l| l.contains("panicked")),
        "{}",
        logs.tail(40)
    );
}

/// A client that starts an `/ingest` request and never finishes it cannot hold the exit:
/// SIGTERM still ends the relay with 0 well within the deadline, and what was accepted
/// before is delivered after restart.
#[tokio::test]
async fn sigterm_is_not_held_up_by_an_unfinished_ingest_request() {
    use tokio::io::AsyncWriteExt as _;
    let stream = StreamServer::start().await;
    let hook = Receiver::start_down().await;
    let mut relay = Relay::start_connected(&hook_config(&stream, &hook), &stream).await;
    let http = Http::of(&relay).await;
    http.ingest_accepted(SIGNATURE_HEADER, &webhook_body(&tweet_event("69001")))
        .await;

    let addr = server_addr(&relay).await;
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /ingest HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"tweet_id\":")
        .await
        .unwrap();
    // The server has the request's head once it answers nothing and keeps the socket:
    // wait for /healthz to show the server is serving, then stop.
    assert_eq!(http.get("/healthz").await.status, 200);

    let started = Instant::now();
    relay.terminate();
    assert_eq!(relay.wait_exit(SIGTERM_DEADLINE).await.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "exit took {:?}",
        started.elapsed()
    );
    drop(stalled);

    hook.up().await;
    relay.restart_connected(&stream).await;
    hook.wait_for_tweet_ids(&["69001".to_string()].into_iter().collect(), DEADLINE)
        .await;
}
