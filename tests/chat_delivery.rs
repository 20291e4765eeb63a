//! Slack and Discord targets as good citizens, seen from local receivers: retry hints
//! honoured in every form, bursts paced by the default rate limits, permanent platform
//! errors dead-lettered after one attempt with advice for the operator, a deleted
//! Discord webhook never called again, the payloads on the wire, and dedupe by tweet.
//!
//! Each test runs the real binary against a [`StreamServer`] and one [`Receiver`] per
//! target. Chat targets default to `concurrency = 1`, whose deliveries land in arrival
//! order (contract), so "no second attempt" is shown without sleeping: once a later
//! event has landed (or been dead-lettered), a retry of an earlier one would have come
//! before it.
//!
//! Timing assertions compare the receiver's arrival instants. The relay starts its
//! pause when it has read an answer, which is after the receiver recorded the request
//! that got that answer, so a relay that honours a hint can never look early here: the
//! gaps are asserted without slack, except where a wall-clock HTTP date is mapped onto
//! the monotonic clock (see that test).

mod support;

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use support::*;

/// The burst test sends 20 events at 1/s: about 19 s of pacing, plus start-up, on two
/// shared cores.
const BURST_DEADLINE: Duration = Duration::from_secs(45);

/// Discord's answer to a request over its rate limit: the hint is only in the body.
const DISCORD_429: &str =
    r#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#;

/// Discord's answer when the webhook was deleted.
const DISCORD_UNKNOWN_WEBHOOK: &str = r#"{"message": "Unknown Webhook", "code": 10015}"#;

/// One chat target named `chat` of `kind` ("slack" or "discord") posting to
/// `receiver`, with every event routed to it.
fn chat_config(stream: &StreamServer, kind: &str, receiver: &Receiver, extra: &str) -> RelayConfig {
    RelayConfig::new(stream)
        .target("chat", kind, &receiver.url(), extra)
        .route(route("all").targets(&["chat"]))
}

/// Gap between two arrivals, for messages and the report.
fn gap(earlier: &Request, later: &Request) -> Duration {
    later.arrived - earlier.arrived
}

#[tokio::test]
async fn slack_429_with_retry_after_seconds_is_not_retried_sooner() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![
        Reply::status(429)
            .header("Retry-After", "2")
            .body("rate_limited"),
    ]);
    let _relay = Relay::start_connected(&chat_config(&stream, "slack", &hook, ""), &stream).await;

    stream.send_event(&tweet_event("10001"));
    let reqs = wait_for_chat_tweet(&hook, "10001", DEADLINE).await;
    assert_eq!(statuses(&reqs), [429, 200], "one retry, then delivered");
    assert_eq!(
        reqs[0].body, reqs[1].body,
        "the retry sends the same message"
    );
    let waited = gap(&reqs[0], &reqs[1]);
    eprintln!("slack Retry-After: 2 -> retried after {waited:?}");
    // The 1/s limit alone would allow a retry after 1 s.
    assert!(
        waited >= Duration::from_secs(2),
        "retried {waited:?} after a 429 with Retry-After: 2"
    );
}

#[tokio::test]
async fn slack_429_with_a_retry_after_http_date_is_not_retried_before_that_date() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let _relay = Relay::start_connected(&chat_config(&stream, "slack", &hook, ""), &stream).await;

    // An HTTP date has whole seconds, so "now + 3 s" written as a date is 2 to 3 s ahead:
    // beyond the 1 s the default 1/s limit would wait anyway. The assertion is against
    // the date itself, not against "3 s after the 429": a relay may rightly retry at the
    // date, which the truncation can bring a second closer.
    let (wall, mono) = (SystemTime::now(), Instant::now());
    let date = httpdate::fmt_http_date(wall + Duration::from_secs(3));
    let not_before = mono
        + httpdate::parse_http_date(&date)
            .unwrap()
            .duration_since(wall)
            .unwrap();
    hook.script(vec![
        Reply::status(429)
            .header("Retry-After", &date)
            .body("rate_limited"),
    ]);
    stream.send_event(&tweet_event("10101"));
    let reqs = wait_for_chat_tweet(&hook, "10101", DEADLINE).await;
    assert_eq!(statuses(&reqs), [429, 200], "one retry, then delivered");
    assert!(not_before > reqs[0].arrived + Duration::from_secs(1));
    eprintln!(
        "slack Retry-After: <date {:?} after the 429> -> retried after {:?}, {:?} after the date",
        not_before - reqs[0].arrived,
        gap(&reqs[0], &reqs[1]),
        reqs[1].arrived.saturating_duration_since(not_before),
    );
    // The only slack is for reading the date on the wall clock and the arrivals on the
    // monotonic one: a few microseconds apart, and the two clocks drift by far less than
    // 10 ms over 3 s unless the wall clock is stepped.
    let slack = Duration::from_millis(10);
    assert!(
        reqs[1].arrived + slack >= not_before,
        "retried {:?} before the Retry-After date {date}",
        not_before - reqs[1].arrived
    );
}

#[tokio::test]
async fn discord_429_with_a_json_retry_after_is_not_retried_sooner() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![
        Reply::status(429)
            .header("Content-Type", "application/json")
            .body(DISCORD_429),
    ]);
    let _relay = Relay::start_connected(&chat_config(&stream, "discord", &hook, ""), &stream).await;

    stream.send_event(&tweet_event("10201"));
    let reqs = wait_for_chat_tweet(&hook, "10201", DEADLINE).await;
    assert_eq!(statuses(&reqs), [429, 200], "one retry, then delivered");
    assert_eq!(reqs[0].body, reqs[1].body);
    let waited = gap(&reqs[0], &reqs[1]);
    eprintln!("discord JSON retry_after 1.5 -> retried after {waited:?}");
    // Discord's default 5/2s limit would allow the retry at once (retry.initial 100ms).
    assert!(
        waited >= Duration::from_millis(1500),
        "retried {waited:?} after a 429 whose body said retry_after 1.5"
    );
}

#[tokio::test]
async fn discord_bucket_at_zero_holds_the_next_request_until_its_reset() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![
        Reply::ok()
            .header("Content-Type", "application/json")
            .header("X-RateLimit-Limit", "5")
            .header("X-RateLimit-Remaining", "0")
            .header("X-RateLimit-Reset-After", "1.5")
            .header("X-RateLimit-Bucket", "abcd1234")
            .body(r#"{"id":"1","type":0}"#),
    ]);
    let _relay = Relay::start_connected(&chat_config(&stream, "discord", &hook, ""), &stream).await;

    // Both at once: without the pause, the 5/2s limit would send the second at once.
    stream.send_event(&tweet_event("10301"));
    stream.send_event(&tweet_event("10302"));
    let reqs = wait_for_chat_tweet(&hook, "10302", DEADLINE).await;
    assert_eq!(chat_tweet_ids(&reqs), ["10301", "10302"]);
    assert_eq!(statuses(&reqs), [200, 200]);
    let waited = gap(&reqs[0], &reqs[1]);
    eprintln!("discord X-RateLimit-Reset-After 1.5 on a 200 -> next request after {waited:?}");
    assert!(
        waited >= Duration::from_millis(1500),
        "the next request came {waited:?} after a 200 that said the bucket resets in 1.5 s"
    );
}

#[tokio::test]
async fn a_burst_to_a_slack_target_is_paced_at_1_per_second_without_a_429() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    // Slack's own limit: one message a second per webhook (429 beyond that).
    hook.throttle(1, Duration::from_secs(1), 1);
    let _relay = Relay::start_connected(&chat_config(&stream, "slack", &hook, ""), &stream).await;

    let ids: Vec<String> = (11000..11020).map(|i| i.to_string()).collect();
    for id in &ids {
        stream.send_event(&tweet_event(id));
    }
    let reqs = wait_for_chat_tweet(&hook, "11019", BURST_DEADLINE).await;

    let spacings: Vec<Duration> = reqs.windows(2).map(|w| gap(&w[0], &w[1])).collect();
    let ms: Vec<u128> = spacings.iter().map(Duration::as_millis).collect();
    let total = gap(&reqs[0], &reqs[reqs.len() - 1]);
    eprintln!(
        "slack burst of 20 at 1/s: {} request(s) over {total:?}; spacings (ms): {ms:?}",
        reqs.len()
    );
    assert_eq!(
        hook.throttled(),
        0,
        "the relay earned 429s from a receiver allowing 1/s; spacings (ms): {ms:?}"
    );
    assert_eq!(
        chat_tweet_ids(&reqs),
        ids,
        "every event once, in order, no retries"
    );
    // Implied by "no 429" (the throttle judges the same arrival instants), and kept as
    // the explicit pacing claim, with 10 ms for timer and scheduling noise.
    let tolerance = Duration::from_millis(10);
    let min = spacings.iter().min().unwrap();
    assert!(
        *min + tolerance >= Duration::from_secs(1),
        "two messages {min:?} apart at 1/s; spacings (ms): {ms:?}"
    );
    // At the configured rate, not far below it: 19 intervals, about 19 s.
    assert!(
        total < Duration::from_secs(19) + Duration::from_millis(19 * 250),
        "20 messages took {total:?}: far slower than 1/s; spacings (ms): {ms:?}"
    );
}

#[tokio::test]
async fn slack_permanent_errors_are_dead_lettered_after_one_attempt_with_advice() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cases: [(u16, &str); 5] = [
        (400, "invalid_payload"),
        (404, "no_service"),
        (403, "invalid_token"),
        (403, "action_prohibited"),
        (410, "channel_is_archived"),
    ];
    hook.script(
        cases
            .iter()
            .map(|(status, code)| Reply::status(*status).body(code))
            .collect(),
    );
    let relay = Relay::start_connected(&chat_config(&stream, "slack", &hook, ""), &stream).await;

    let ids: Vec<String> = (12000..12006).map(|i| i.to_string()).collect();
    for id in &ids {
        stream.send_event(&tweet_event(id));
    }
    // With concurrency 1 (the default), a second attempt at any of the refused ones
    // would land before the last event.
    let reqs = wait_for_chat_tweet(&hook, "12005", DEADLINE).await;
    assert_eq!(
        chat_tweet_ids(&reqs),
        ids,
        "each refused message got exactly one attempt"
    );
    assert_eq!(statuses(&reqs), [400, 404, 403, 403, 410, 200]);

    for (id, (status, code)) in ids.iter().zip(cases) {
        let line = wait_for_dead_letter(&relay, id).await;
        let advice = line["advice"].as_str().unwrap_or_default();
        assert!(
            !advice.trim().is_empty(),
            "{status} {code}: a dead letter without advice: {line}"
        );
        assert!(
            advice.contains(code),
            "{status} {code}: the advice does not name the error: {advice}"
        );
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&status.to_string()) && error.contains(code),
            "{status} {code}: the dead letter does not keep the status and body: {line}"
        );
        assert_eq!(line["attempt"], 1, "{status} {code}: {line}");
    }
}

#[tokio::test]
async fn a_deleted_discord_webhook_is_called_once_and_later_deliveries_are_dead_lettered() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    // Every request would get this: a request after the first would show as a 404 too.
    hook.respond(
        404,
        &[("Content-Type", "application/json")],
        DISCORD_UNKNOWN_WEBHOOK,
    );
    let relay = Relay::start_connected(&chat_config(&stream, "discord", &hook, ""), &stream).await;

    stream.send_event(&tweet_event("13000"));
    let first = wait_for_dead_letter(&relay, "13000").await;
    let advice = first["advice"].as_str().unwrap_or_default();
    assert!(
        !advice.trim().is_empty() && advice.contains("10015"),
        "the 404 Unknown Webhook dead letter should say what to fix: {first}"
    );
    assert_eq!(first["attempt"], 1, "{first}");
    let error = first["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("404") && error.contains("Unknown Webhook"),
        "{first}"
    );
    assert_eq!(statuses(&hook.requests()), [404]);

    let later: Vec<String> = (13001..13005).map(|i| i.to_string()).collect();
    for id in &later {
        stream.send_event(&tweet_event(id));
    }
    // Each of these is dead-lettered instead of sent: once its line is logged, its
    // delivery is over, and no request for it can follow.
    for id in &later {
        let line = wait_for_dead_letter(&relay, id).await;
        assert_eq!(
            line["attempt"], 0,
            "dead-lettered without an attempt: {line}"
        );
        let why = line["error"].as_str().unwrap_or_default();
        assert!(
            why.contains("Discord webhook was deleted") && why.contains("404"),
            "the log should say why tweet {id} was not sent: {line}"
        );
        let advice = line["advice"].as_str().unwrap_or_default();
        assert!(
            advice.contains("new Discord webhook"),
            "the log should say what to do about it: {line}"
        );
    }
    let reqs = hook.requests();
    assert_eq!(
        reqs.len(),
        1,
        "the deleted webhook was called again: {:?}",
        chat_tweet_ids(&reqs)
    );
}

/// A tweet that tries to ping everyone on both platforms.
const HOSTILE_TEXT: &str = "<!channel> wake up @everyone @here <@U123> & <b>bold</b>";

#[tokio::test]
async fn chat_payloads_on_the_wire_are_json_with_blocks_or_embeds_and_defused_text() {
    let stream = StreamServer::start().await;
    let (slack, discord) = (Receiver::start().await, Receiver::start().await);
    let cfg = RelayConfig::new(&stream)
        .target("slack", "slack", &slack.url(), "")
        .target("discord", "discord", &discord.url(), "")
        .route(route("all").targets(&["slack", "discord"]));
    let _relay = Relay::start_connected(&cfg, &stream).await;

    stream.send_event(&event(
        "14001",
        "mon-tech",
        "Tech Leaders",
        "elonmusk",
        HOSTILE_TEXT,
    ));
    let s = slack.wait_for_requests(1, DEADLINE).await.remove(0);
    let d = discord.wait_for_requests(1, DEADLINE).await.remove(0);

    for req in [&s, &d] {
        assert_eq!(req.method, "POST");
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("user-agent"), Some(user_agent().as_str()));
        assert_eq!(chat_tweet_id(req).as_deref(), Some("14001"));
    }

    // Slack: a text fallback and blocks, the tweet's control characters escaped.
    assert_eq!(s.uri, "/hook", "slack posts to the webhook URL as given");
    let body = s.json();
    assert!(
        body["text"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    let blocks = body["blocks"].as_array().expect("slack blocks");
    assert!(!blocks.is_empty(), "{body}");
    let texts: Vec<&str> = blocks
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("&lt;!channel&gt;")
            && t.contains("&lt;@U123&gt;")
            && t.contains("&amp;")),
        "the tweet text should arrive escaped: {texts:?}"
    );
    let raw = s.body_str();
    for forbidden in ["<!channel>", "<@U123>", "<b>"] {
        assert!(
            !raw.contains(forbidden),
            "{forbidden} reached Slack unescaped: {raw}"
        );
    }

    // Discord: ?wait=true, one embed, and no mention can ping.
    assert_eq!(d.uri, "/hook?wait=true");
    let body = d.json();
    let embeds = body["embeds"].as_array().expect("discord embeds");
    assert_eq!(embeds.len(), 1, "{body}");
    assert_eq!(body["allowed_mentions"], json!({ "parse": [] }));
    let description = embeds[0]["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("wake up"),
        "the tweet text is the embed's description: {body}"
    );
}

#[tokio::test]
async fn the_same_tweet_from_two_monitors_reaches_a_chat_target_once() {
    let stream = StreamServer::start().await;
    let (slack, discord) = (Receiver::start().await, Receiver::start().await);
    // No dedupe option: "tweet" is the default for chat targets.
    let cfg = RelayConfig::new(&stream)
        .target("slack", "slack", &slack.url(), "")
        .target("discord", "discord", &discord.url(), "")
        .route(route("all").targets(&["slack", "discord"]));
    let _relay = Relay::start_connected(&cfg, &stream).await;

    stream.send_event(&event("15001", "mon-tech", "Tech Leaders", "sama", "hi"));
    stream.send_event(&event("15001", "mon-ai", "AI Watch", "sama", "hi"));
    stream.send_event(&event("15002", "mon-tech", "Tech Leaders", "sama", "next"));

    // With concurrency 1, a second message for 15001 would land before 15002's.
    for receiver in [&slack, &discord] {
        let reqs = wait_for_chat_tweet(receiver, "15002", DEADLINE).await;
        assert_eq!(
            chat_tweet_ids(&reqs),
            ["15001", "15002"],
            "one message per tweet id"
        );
        assert!(
            reqs[0].body_str().contains("Tech Leaders") && !reqs[0].body_str().contains("AI Watch"),
            "the first monitor's event is the one sent: {}",
            reqs[0].body_str()
        );
    }
}
