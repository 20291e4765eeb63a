//! The WebSocket client, as the stream server sees it: the handshake carries the key,
//! pings are answered, the client reconnects after a close, a drop, an idle stream, an
//! outage or a 401, and bad frames are survived. In every test the API key (a
//! distinctive string) must never appear in a log line.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// Everything routed to one http target, `hook`.
fn config(stream: &StreamServer, hook: &Receiver) -> RelayConfig {
    RelayConfig::new(stream)
        .http_target("hook", hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]))
}

/// Pushes an event and waits until `hook` has it: the connection works end to end.
async fn assert_delivers(stream: &StreamServer, hook: &Receiver, tweet_id: &str) {
    let sent = stream.send_event(&tweet_event(tweet_id));
    hook.wait_for_body(&sent, DEADLINE).await;
}

#[tokio::test]
async fn the_connection_request_carries_the_api_key() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let relay = Relay::start_connected(&config(&stream, &hook), &stream).await;

    let handshakes = stream.wait_for_connections(1, DEADLINE).await;
    assert_eq!(handshakes[0].path(), "/v1/twitter/stream");
    assert_eq!(
        handshakes[0].query_param("api_key").as_deref(),
        Some(API_KEY)
    );
    assert_delivers(&stream, &hook, "10001").await;
    relay.assert_logs_free_of(API_KEY);
}

#[tokio::test]
async fn pings_are_answered() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let relay = Relay::start_connected(&config(&stream, &hook), &stream).await;

    assert_eq!(stream.send_ping(b"server-ping-1"), 1);
    stream.wait_for_pong_with(b"server-ping-1", DEADLINE).await;
    assert_eq!(stream.send_ping(b"server-ping-2"), 1);
    stream.wait_for_pong_with(b"server-ping-2", DEADLINE).await;
    assert_delivers(&stream, &hook, "10101").await;
    assert_eq!(stream.connections(), 1);
    relay.assert_logs_free_of(API_KEY);
}

#[tokio::test]
async fn the_client_reconnects_after_the_server_closes_or_drops_the_connection() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let relay = Relay::start_connected(&config(&stream, &hook), &stream).await;
    assert_delivers(&stream, &hook, "10201").await;

    stream.close_connections();
    let handshakes = stream.wait_for_connections(2, DEADLINE).await;
    assert_eq!(
        handshakes[1].query_param("api_key").as_deref(),
        Some(API_KEY)
    );
    assert_delivers(&stream, &hook, "10202").await;

    stream.drop_connections();
    stream.wait_for_connections(3, DEADLINE).await;
    assert_delivers(&stream, &hook, "10203").await;
    relay.assert_logs_free_of(API_KEY);
}

#[tokio::test]
async fn the_client_reconnects_after_idle_timeout_of_silence() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    // The server pings every 100 ms, like the real one does every 30 s.
    stream.keepalive(Some(Duration::from_millis(100)));
    let cfg = config(&stream, &hook).idle_timeout("300ms");
    let relay = Relay::start_connected(&cfg, &stream).await;
    assert_delivers(&stream, &hook, "10301").await;

    // Pings are frames: five of them (500 ms, longer than idle_timeout) keep the
    // connection. Each pong shows one was received.
    support::wait::wait_until("5 pongs", DEADLINE, stream.changes(), || {
        let n = stream.pongs().len();
        if n >= 5 {
            Ok(())
        } else {
            Err(format!("{n} pongs"))
        }
    })
    .await;
    assert_eq!(
        stream.connections(),
        1,
        "pings must reset the idle watchdog"
    );

    stream.go_silent();
    let silent_at = Instant::now();
    let handshakes = stream.wait_for_connections(2, DEADLINE).await;
    // The last ping went out at most 100 ms before the silence began.
    let waited = handshakes[1].at - silent_at;
    assert!(
        waited >= Duration::from_millis(150),
        "reconnected {waited:?} after the stream went silent; idle_timeout is 300ms"
    );
    assert_delivers(&stream, &hook, "10302").await;
    relay.assert_logs_free_of(API_KEY);
}

/// A valid event whose text is full of Unicode that trips naive code: right-to-left
/// override, combining accent, a ZWJ family, CJK, a NUL escape, an escaped surrogate
/// pair, an astral character written raw.
fn odd_unicode_event() -> String {
    let text = "\u{202e}txet desrever\u{202c} e\u{301} \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467} \
                \u{6f22}\u{5b57} \\u0000 \\ud83d\\ude00 \u{1d54f}";
    format!(
        r#"{{"event":"tweet.detected","monitor_id":"mon-tech","monitor_name":"Tech Leaders","tweet_id":"10402","author_username":"elonmusk","tweet_text":"{text}","tweet_url":"https://x.com/elonmusk/status/10402"}}"#
    )
}

#[tokio::test]
async fn bad_frames_are_survived_and_the_next_good_event_is_delivered() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = config(&stream, &hook).max_message_size("1KiB");
    let mut relay = Relay::start_connected(&cfg, &stream).await;

    let oversized = event(
        "10401",
        "mon-tech",
        "Tech Leaders",
        "elonmusk",
        &"x".repeat(2048),
    );
    assert!(oversized.to_string().len() > 1024);

    stream.send_text("not json {");
    stream.send_text("[1,2,3]");
    stream.send_text("42");
    stream.send_text("\"just a string\"");
    stream.send_text("null");
    stream.send_binary(&[0xff, 0xfe, 0x00, b'{']);
    stream.send_event(&oversized);
    let odd = odd_unicode_event();
    serde_json::from_str::<serde_json::Value>(&odd).expect("the odd event is valid JSON");
    stream.send_text(&odd);
    // Truncated, with a lone surrogate escape inside.
    stream.send_text(r#"{"event":"tweet.detected","tweet_id":"10403","tweet_text":"\ud800"#);
    stream.send_text("");
    let good = stream.send_event(&tweet_event("10404"));

    let got = hook.wait_for_body(&good, DEADLINE).await;
    let got: Vec<String> = got.iter().map(Request::body_str).collect();
    assert_eq!(
        got,
        [odd.as_str(), good.as_str()],
        "only the two valid events are delivered, byte for byte (the oversized one is dropped)"
    );
    assert!(relay.is_running(), "bad input must not crash the process");
    assert_eq!(
        stream.connections(),
        1,
        "bad and oversized frames are dropped, the connection kept"
    );
    relay.assert_logs_free_of(API_KEY);
}

/// A log line at WARN or ERROR (JSON format) about authentication.
fn is_auth_error(line: &str) -> bool {
    let lower = line.to_lowercase();
    let serious = line.contains(r#""level":"WARN""#) || line.contains(r#""level":"ERROR""#);
    serious
        && (lower.contains("401") || lower.contains("unauthori") || lower.contains("authenticat"))
}

#[tokio::test]
async fn a_401_keeps_the_process_up_logs_an_auth_error_and_it_connects_once_accepted() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    stream.reject_handshakes(Some(401));
    let mut relay = Relay::start(&config(&stream, &hook));

    let refused = stream.wait_for_handshakes(2, DEADLINE).await;
    assert!(refused.iter().all(|h| !h.accepted));
    relay
        .wait_for_log_matching(
            "a WARN/ERROR log line about authentication (401)",
            DEADLINE,
            is_auth_error,
        )
        .await;
    assert!(relay.is_running(), "a 401 must not end the process");

    stream.reject_handshakes(None);
    relay.wait_connected(&stream, 0).await;
    assert_delivers(&stream, &hook, "10501").await;
    relay.assert_logs_free_of(API_KEY);
}

#[tokio::test]
async fn the_client_reconnects_when_the_stream_goes_away_and_comes_back() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let mut relay = Relay::start_connected(&config(&stream, &hook), &stream).await;
    assert_delivers(&stream, &hook, "10601").await;

    stream.stop().await;
    // The outage itself: long enough for several refused attempts (backoff 50..200 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        relay.is_running(),
        "refused connections must not end the process"
    );
    stream.restart().await;
    stream.wait_for_connections(2, DEADLINE).await;
    assert_delivers(&stream, &hook, "10602").await;
    relay.assert_logs_free_of(API_KEY);
}
