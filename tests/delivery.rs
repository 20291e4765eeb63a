//! Delivery, as an http target sees it: which targets get an event, the exact request,
//! retries and what is not retried, isolation between targets, order, and dedupe.
//!
//! Each test runs the real binary against a [`StreamServer`] and one [`Receiver`] per
//! target. "Nothing else arrived" is shown without sleeping: targets run with
//! `concurrency = 1`, whose deliveries land in arrival order (contract), so once a later
//! event has landed, anything that should not have been sent before it would have been.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use support::*;

/// Starts the relay on `cfg` and waits until it is connected to `stream`.
async fn relay(stream: &StreamServer, cfg: &RelayConfig) -> Relay {
    Relay::start_connected(cfg, stream).await
}

fn bodies(reqs: &[Request]) -> Vec<String> {
    reqs.iter().map(Request::body_str).collect()
}

fn ids(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

fn id_set(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

/// Pushes one `tweet_event` per id; returns the frames sent.
fn send_tweets(stream: &StreamServer, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| stream.send_event(&tweet_event(id)))
        .collect()
}

/// Checks the headers every http delivery carries, and the signature when `secret`.
fn assert_standard_headers(req: &Request, secret: Option<&str>) {
    assert_eq!(req.method, "POST", "default method");
    assert_eq!(req.uri, "/hook");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("user-agent"), Some(user_agent().as_str()));
    let id = req.header("webhook-id").expect("a webhook-id header");
    assert!(!id.trim().is_empty(), "an empty webhook-id");
    let ts: u64 = req
        .header("webhook-timestamp")
        .expect("a webhook-timestamp header")
        .parse()
        .expect("webhook-timestamp is integer seconds since the epoch");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        ts.abs_diff(now) <= 300,
        "webhook-timestamp {ts} is far from now ({now})"
    );
    match secret {
        Some(secret) => verify_webhook_signature(req, secret).unwrap(),
        None => assert_eq!(
            req.header("webhook-signature"),
            None,
            "no signing_secret, no signature"
        ),
    }
}

#[tokio::test]
async fn an_event_goes_once_to_each_target_its_routes_name_and_an_unrouted_one_nowhere() {
    let stream = StreamServer::start().await;
    let (a, b, c) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let cfg = RelayConfig::new(&stream)
        .http_target("a", &a, "concurrency = 1")
        .http_target("b", &b, "concurrency = 1")
        .http_target("c", &c, "concurrency = 1")
        // monitors: name or id, case-insensitive, * wildcards.
        .route(
            route("leaders")
                .monitors(&["Tech Leaders", "mon-ai-*"])
                .targets(&["a", "b"]),
        )
        // authors: a leading @ ignored, case-insensitive.
        .route(route("elon").authors(&["@elonmusk"]).targets(&["b", "c"]));
    let _relay = relay(&stream, &cfg).await;

    let both = stream.send_event(&event(
        "1001",
        "mon-tech",
        "Tech Leaders",
        "elonmusk",
        "one",
    ));
    let unrouted = stream.send_event(&event("1002", "mon-food", "Cooking", "chef", "soup"));
    let leaders = stream.send_event(&event("1003", "mon-tech", "tech leaders", "someone", "x"));
    let by_id = stream.send_event(&event("1004", "mon-ai-7", "Renamed", "someone", "y"));
    let elon = stream.send_event(&event("1005", "mon-space", "Space", "ElonMusk", "z"));
    let last = stream.send_event(&event(
        "1006",
        "mon-tech",
        "TECH LEADERS",
        "elonmusk",
        "end",
    ));

    let got_a = a.wait_for_body(&last, DEADLINE).await;
    let got_b = b.wait_for_body(&last, DEADLINE).await;
    let got_c = c.wait_for_body(&last, DEADLINE).await;
    assert_eq!(
        bodies(&got_a),
        [
            both.as_str(),
            leaders.as_str(),
            by_id.as_str(),
            last.as_str()
        ]
    );
    assert_eq!(
        bodies(&got_b),
        [
            both.as_str(),
            leaders.as_str(),
            by_id.as_str(),
            elon.as_str(),
            last.as_str()
        ],
        "b is named by both routes: one delivery per event"
    );
    assert_eq!(
        bodies(&got_c),
        [both.as_str(), elon.as_str(), last.as_str()]
    );
    for got in [&got_a, &got_b, &got_c] {
        assert!(
            !bodies(got).contains(&unrouted),
            "the unrouted event was delivered"
        );
    }
}

#[tokio::test]
async fn a_matching_route_with_stop_ends_the_routing() {
    let stream = StreamServer::start().await;
    let (launches, rest) = (Receiver::start().await, Receiver::start().await);
    let cfg = RelayConfig::new(&stream)
        .http_target("launches", &launches, "concurrency = 1")
        .http_target("rest", &rest, "concurrency = 1")
        .route(
            route("launches")
                .text("(?i)launch|announce")
                .targets(&["launches"])
                .stop(),
        )
        .route(route("everything").targets(&["rest"]));
    let _relay = relay(&stream, &cfg).await;

    let l1 = stream.send_event(&event("2001", "m", "M", "a", "We LAUNCH today"));
    let o1 = stream.send_event(&event("2002", "m", "M", "a", "nothing to see"));
    let l2 = stream.send_event(&event("2003", "m", "M", "a", "we announce more"));
    let o2 = stream.send_event(&event("2004", "m", "M", "a", "still nothing"));

    let got_launches = launches.wait_for_body(&l2, DEADLINE).await;
    let got_rest = rest.wait_for_body(&o2, DEADLINE).await;
    assert_eq!(bodies(&got_launches), [l1.as_str(), l2.as_str()]);
    assert_eq!(
        bodies(&got_rest),
        [o1.as_str(), o2.as_str()],
        "stop = true kept launches from 'everything'"
    );
}

/// A frame with unknown fields, odd spacing, escapes, numbers a re-serializer would
/// rewrite (2.50, 1e3, 150.0) and non-ASCII text: the body must be these bytes.
const ODD_FRAME: &str = r#"{ "event" : "tweet.detected",
  "monitor_id":"mon-tech" ,"monitor_name":"Tech Leaders",	"tweet_id":"1234567890",
  "author_username":"elonmusk","tweet_text":"Just announced \u00e9t\u00e9 — été 🚀 \"quoted\" <b>&amp; \ud83d\ude00 a‍b",
  "tweet_url":"https://x.com/elonmusk/status/1234567890",
  "future_field":{"nested":[1,2.50,1e3,null,true],"empty":{}}, "latency_ms":150.0 }"#;

#[tokio::test]
async fn the_http_body_is_the_frame_byte_for_byte_with_standard_webhooks_headers() {
    let stream = StreamServer::start().await;
    let (whsec, raw, unsigned) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let key = b"test-signing-key-0123456789abcdef";
    let whsec_secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    let raw_secret = "plain secret, used as bytes";
    let cfg = RelayConfig::new(&stream)
        .http_target(
            "whsec",
            &whsec,
            &format!(
                "signing_secret = \"{whsec_secret}\"\n\
                 headers = {{ Authorization = \"Bearer tok-123\", X-Custom = \"yes\" }}"
            ),
        )
        .http_target("raw", &raw, &format!("signing_secret = \"{raw_secret}\""))
        .http_target("unsigned", &unsigned, "")
        .route(route("all").targets(&["whsec", "raw", "unsigned"]));
    let _relay = relay(&stream, &cfg).await;

    assert_eq!(stream.send_text(ODD_FRAME), 1);

    for (receiver, secret) in [
        (&whsec, Some(whsec_secret.as_str())),
        (&raw, Some(raw_secret)),
        (&unsigned, None),
    ] {
        let req = receiver.wait_for_requests(1, DEADLINE).await.remove(0);
        assert_eq!(
            req.body_str(),
            ODD_FRAME,
            "the body must be the frame text exactly"
        );
        assert_eq!(&req.body[..], ODD_FRAME.as_bytes());
        assert_standard_headers(&req, secret);
    }
    let req = &whsec.requests()[0];
    assert_eq!(req.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(req.header("x-custom"), Some("yes"));
}

#[tokio::test]
async fn retriable_statuses_are_retried_with_the_same_webhook_id() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![
        Reply::status(500),
        Reply::status(408),
        Reply::status(425),
        Reply::status(503).body("busy"),
    ]);
    let secret = "retry-secret";
    let cfg = RelayConfig::new(&stream)
        .http_target(
            "hook",
            &hook,
            &format!("concurrency = 1\nsigning_secret = \"{secret}\""),
        )
        .route(route("all").targets(&["hook"]));
    let _relay = relay(&stream, &cfg).await;

    let first = stream.send_event(&tweet_event("3001"));
    let reqs = hook.wait_for_requests(5, DEADLINE).await;
    let statuses: Vec<u16> = reqs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 408, 425, 503, 200]);
    let webhook_id = reqs[0].header("webhook-id").unwrap().to_string();
    for req in &reqs {
        assert_eq!(req.body_str(), first);
        assert_eq!(
            req.header("webhook-id"),
            Some(webhook_id.as_str()),
            "webhook-id must be stable across the retries of one delivery"
        );
        assert_standard_headers(req, Some(secret));
    }

    // Delivered once it got its 200: a later event is next, the first is not sent again.
    let second = stream.send_event(&tweet_event("3002"));
    let reqs = hook.wait_for_body(&second, DEADLINE).await;
    assert_eq!(reqs.len(), 6, "{:?}", bodies(&reqs));
    assert_ne!(reqs[5].header("webhook-id"), Some(webhook_id.as_str()));
}

#[tokio::test]
async fn no_retry_before_retry_after_seconds() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![Reply::status(429).header("Retry-After", "2")]);
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "")
        .route(route("all").targets(&["hook"]));
    let _relay = relay(&stream, &cfg).await;

    let sent = stream.send_event(&tweet_event("4001"));
    let reqs = hook.wait_for_requests(2, DEADLINE).await;
    assert_eq!(bodies(&reqs[..2]), [sent.as_str(), sent.as_str()]);
    assert_eq!((reqs[0].status, reqs[1].status), (429, 200));
    let gap = reqs[1].arrived - reqs[0].arrived;
    assert!(
        gap >= Duration::from_secs(2),
        "retried {gap:?} after a 429 with Retry-After: 2 (retry.initial is 100ms)"
    );
}

#[tokio::test]
async fn no_retry_before_a_retry_after_http_date() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "")
        .route(route("all").targets(&["hook"]));
    let _relay = relay(&stream, &cfg).await;

    // An HTTP date has whole seconds: 3 s from now is at least 2 s from the answer.
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3));
    hook.script(vec![Reply::status(503).header("Retry-After", &date)]);
    let sent = stream.send_event(&tweet_event("4101"));
    let reqs = hook.wait_for_requests(2, DEADLINE).await;
    assert_eq!(bodies(&reqs[..2]), [sent.as_str(), sent.as_str()]);
    let gap = reqs[1].arrived - reqs[0].arrived;
    assert!(
        gap >= Duration::from_secs(2),
        "retried {gap:?} after Retry-After: {date}"
    );
}

#[tokio::test]
async fn other_4xx_are_dead_lettered_after_one_attempt() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![
        Reply::status(404).body("unknown webhook"),
        Reply::status(400).body("invalid_payload"),
        Reply::status(410),
    ]);
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]));
    let _relay = relay(&stream, &cfg).await;

    let not_found = stream.send_event(&tweet_event("5001"));
    let reqs = hook.wait_for_requests(1, DEADLINE).await;
    assert_eq!(reqs[0].status, 404);

    let bad = stream.send_event(&tweet_event("5002"));
    let gone = stream.send_event(&tweet_event("5003"));
    let fine = stream.send_event(&tweet_event("5004"));
    // With concurrency 1 a retried 404 would land before the later events.
    let reqs = hook.wait_for_body(&fine, DEADLINE).await;
    assert_eq!(
        bodies(&reqs),
        [
            not_found.as_str(),
            bad.as_str(),
            gone.as_str(),
            fine.as_str()
        ],
        "each 4xx gets exactly one attempt and the worker moves on"
    );
    let statuses: Vec<u16> = reqs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 400, 410, 200]);
}

#[tokio::test]
async fn a_failing_target_does_not_delay_a_healthy_one() {
    let stream = StreamServer::start().await;
    let (failing, healthy) = (Receiver::start().await, Receiver::start().await);
    failing.respond(500, &[], "down for maintenance");
    let cfg = RelayConfig::new(&stream)
        .http_target("failing", &failing, "concurrency = 1")
        .http_target("healthy", &healthy, "concurrency = 1")
        .route(route("all").targets(&["failing", "healthy"]));
    let _relay = relay(&stream, &cfg).await;

    let ids = ids(6000..6020);
    let sent = send_tweets(&stream, &ids);
    let got = healthy.wait_for_tweet_ids(&id_set(&ids), DEADLINE).await;
    assert_eq!(
        bodies(&got),
        sent,
        "the healthy target got every event, in order"
    );
    let failed = failing.requests();
    assert!(!failed.is_empty(), "the failing target was tried meanwhile");
    assert!(failed.iter().all(|r| r.status == 500));
}

#[tokio::test]
async fn a_stalled_target_does_not_delay_a_healthy_one() {
    let stream = StreamServer::start().await;
    let (stalled, healthy) = (Receiver::start().await, Receiver::start().await);
    stalled.stall();
    let cfg = RelayConfig::new(&stream)
        // Longer than the test: the stalled requests stay in flight throughout.
        .http_target("stalled", &stalled, "timeout = \"60s\"")
        .http_target("healthy", &healthy, "")
        .route(route("all").targets(&["stalled", "healthy"]));
    let _relay = relay(&stream, &cfg).await;

    let ids = ids(6100..6120);
    send_tweets(&stream, &ids);
    stalled.wait_for_requests(1, DEADLINE).await;
    healthy.wait_for_tweet_ids(&id_set(&ids), DEADLINE).await;
    let in_flight = stalled.requests().len();
    assert!(
        (1..=4).contains(&in_flight),
        "the stalled target holds at most its concurrency (4 for http): {in_flight}"
    );

    // And once it answers, it catches up.
    stalled.release();
    stalled.wait_for_tweet_ids(&id_set(&ids), DEADLINE).await;
}

#[tokio::test]
async fn with_concurrency_1_deliveries_land_in_arrival_order_through_retries() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![
        Reply::ok(),
        Reply::ok(),
        Reply::status(500),
        Reply::status(503),
        Reply::ok(),
        Reply::status(502),
    ]);
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]));
    let _relay = relay(&stream, &cfg).await;

    let ids = ids(7000..7025);
    let sent = send_tweets(&stream, &ids);
    let reqs = hook.wait_for_tweet_ids(&id_set(&ids), DEADLINE).await;
    assert_eq!(
        hook.delivered_bodies(),
        sent,
        "2xx deliveries in arrival order, each once"
    );
    let attempts: Vec<usize> = reqs
        .iter()
        .map(|r| sent.iter().position(|s| *s == r.body_str()).unwrap())
        .collect();
    assert!(
        attempts.windows(2).all(|w| w[0] <= w[1]),
        "attempts started out of order: {attempts:?}"
    );
}

#[tokio::test]
async fn dedupe_tweet_sends_a_tweet_once_and_dedupe_event_once_per_monitor() {
    let stream = StreamServer::start().await;
    let (per_tweet, per_event) = (Receiver::start().await, Receiver::start().await);
    let cfg = RelayConfig::new(&stream)
        .http_target(
            "per-tweet",
            &per_tweet,
            "concurrency = 1\ndedupe = \"tweet\"",
        )
        .http_target(
            "per-event",
            &per_event,
            "concurrency = 1\ndedupe = \"event\"",
        )
        .route(route("all").targets(&["per-tweet", "per-event"]));
    let _relay = relay(&stream, &cfg).await;

    let tech = stream.send_event(&event("8001", "mon-tech", "Tech Leaders", "sama", "hi"));
    let ai = stream.send_event(&event("8001", "mon-ai", "AI Watch", "sama", "hi"));
    let next = stream.send_event(&event("8002", "mon-tech", "Tech Leaders", "sama", "next"));

    let got = per_tweet.wait_for_body(&next, DEADLINE).await;
    assert_eq!(
        bodies(&got),
        [tech.as_str(), next.as_str()],
        "one delivery per tweet id"
    );
    let got = per_event.wait_for_body(&next, DEADLINE).await;
    assert_eq!(
        bodies(&got),
        [tech.as_str(), ai.as_str(), next.as_str()],
        "one delivery per monitor's event"
    );
}

#[tokio::test]
async fn the_same_event_again_after_a_reconnect_is_delivered_once() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]));
    let _relay = relay(&stream, &cfg).await;

    let event = stream.send_event(&tweet_event("9001"));
    hook.wait_for_body(&event, DEADLINE).await;

    stream.close_connections();
    stream.wait_for_connections(2, DEADLINE).await;
    assert_eq!(
        stream.send_text(&event),
        1,
        "replayed on the new connection"
    );
    let next = stream.send_event(&tweet_event("9002"));
    let got = hook.wait_for_body(&next, DEADLINE).await;
    assert_eq!(bodies(&got), [event.as_str(), next.as_str()]);
}

#[tokio::test]
async fn a_throttling_target_gets_everything_and_no_attempt_precedes_its_retry_after() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.throttle(3, Duration::from_secs(1), 1);
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]));
    let _relay = relay(&stream, &cfg).await;

    let ids = ids(9100..9108);
    let sent = send_tweets(&stream, &ids);
    let reqs = hook.wait_for_tweet_ids(&id_set(&ids), DEADLINE).await;
    assert_eq!(hook.delivered_bodies(), sent);
    assert!(hook.throttled() >= 1, "the test did not hit the throttle");
    for pair in reqs.windows(2) {
        if pair[0].status == 429 {
            let gap = pair[1].arrived - pair[0].arrived;
            assert!(
                gap >= Duration::from_secs(1),
                "an attempt {gap:?} after a 429 with Retry-After: 1"
            );
        }
    }
}

/// Past `max_attempts` a delivery is dead-lettered: exactly that many attempts, an ERROR
/// line that says it gave up, and the worker moves on to the next event.
#[tokio::test]
async fn a_delivery_that_keeps_failing_is_dead_lettered_after_max_attempts() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![
        Reply::status(503),
        Reply::status(503),
        Reply::status(503),
    ]);
    let cfg = RelayConfig::new(&stream)
        .http_target(
            "hook",
            &hook,
            "concurrency = 1\nretry = { initial = \"20ms\", max = \"50ms\", max_attempts = 3 }",
        )
        .route(route("all").targets(&["hook"]));
    let relay = relay(&stream, &cfg).await;

    let doomed = stream.send_event(&tweet_event("7001"));
    let next = stream.send_event(&tweet_event("7002"));
    let reqs = hook.wait_for_body(&next, DEADLINE).await;
    assert_eq!(
        bodies(&reqs),
        [
            doomed.as_str(),
            doomed.as_str(),
            doomed.as_str(),
            next.as_str()
        ],
        "three attempts, then the next event"
    );
    let line = relay
        .wait_for_log_matching("the dead letter of 7001", DEADLINE, |l| {
            l.contains("\"level\":\"ERROR\"")
                && l.contains("7001")
                && l.contains("gave up after 3 attempts")
        })
        .await;
    assert!(line.contains("503"), "the last error is kept: {line}");
}

/// Past `max_age` (counted from when the event was accepted) a delivery is dead-lettered
/// even though attempts remain.
#[tokio::test]
async fn a_delivery_older_than_max_age_is_dead_lettered() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.respond(500, &[], "still down");
    let cfg = RelayConfig::new(&stream)
        .http_target(
            "hook",
            &hook,
            "concurrency = 1\nretry = { initial = \"50ms\", max = \"100ms\", max_age = \"400ms\" }",
        )
        .route(route("all").targets(&["hook"]));
    let relay = relay(&stream, &cfg).await;

    stream.send_event(&tweet_event("7101"));
    let line = relay
        .wait_for_log_matching("the dead letter of 7101", DEADLINE, |l| {
            l.contains("\"level\":\"ERROR\"") && l.contains("7101") && l.contains("gave up after")
        })
        .await;
    let reqs = hook.requests();
    assert!(
        reqs.len() >= 2,
        "it was retried until then: {} attempts",
        reqs.len()
    );
    let span = reqs.last().unwrap().arrived - reqs[0].arrived;
    assert!(
        span >= Duration::from_millis(300),
        "attempts spread over the age limit: {span:?}; {line}"
    );
    let count = reqs.len();
    hook.always_ok();
    let next = stream.send_event(&tweet_event("7102"));
    let reqs = hook.wait_for_body(&next, DEADLINE).await;
    assert_eq!(reqs.len(), count + 1, "no attempt after the dead letter");
}

/// `method = "PUT"` sends PUT, with the same body and headers as a POST would carry.
#[tokio::test]
async fn an_http_target_with_method_put_gets_a_put() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "method = \"PUT\"")
        .route(route("all").targets(&["hook"]));
    let _relay = relay(&stream, &cfg).await;

    let sent = stream.send_event(&tweet_event("7201"));
    let reqs = hook.wait_for_body(&sent, DEADLINE).await;
    assert_eq!(reqs[0].method, "PUT");
    assert!(reqs[0].header("webhook-id").is_some());
}

/// A request that outlives the target's `timeout` is a timeout, and timeouts are
/// retried: the same delivery comes again, with the same webhook-id, and lands.
#[tokio::test]
async fn a_timed_out_attempt_is_retried_with_the_same_webhook_id() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![Reply::ok().held_for(Duration::from_secs(3))]);
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1\ntimeout = \"300ms\"")
        .route(route("all").targets(&["hook"]));
    let relay = relay(&stream, &cfg).await;

    let sent = stream.send_event(&tweet_event("7301"));
    let reqs = hook
        .wait_until("a second attempt after the timeout", DEADLINE, |r| {
            r.len() >= 2
        })
        .await;
    assert_eq!(bodies(&reqs[..2]), [sent.as_str(), sent.as_str()]);
    assert_eq!(reqs[0].header("webhook-id"), reqs[1].header("webhook-id"));
    relay
        .wait_for_log_matching("the timeout logged as a retry", DEADLINE, |l| {
            l.contains("7301") && l.contains("timeout") && l.contains("will retry")
        })
        .await;
}
