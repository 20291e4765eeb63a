//! The harness on its own: the mock stream server driven by a tokio-tungstenite client,
//! the receiver driven by reqwest, the process capture driven by a shell script. These
//! pass before the relay exists, so a failure in the contract tests is the relay's.

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::process::{Logs, Process};
use support::sign::sign;
use support::*;
use tokio_tungstenite::tungstenite::{Bytes, Message};

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(stream: &StreamServer, key: &str) -> Client {
    let url = format!("{}?api_key={key}", stream.ws_url());
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect to the stream server");
    ws
}

/// The next data or close frame (control frames are answered by tungstenite and skipped).
async fn next_frame(ws: &mut Client) -> Option<Message> {
    let deadline = Duration::from_secs(5);
    tokio::time::timeout(deadline, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return Some(m),
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("a frame within 5 s")
}

/// Reads (answering pings) for `window`; returns the data frames seen.
async fn frames_during(ws: &mut Client, window: Duration) -> Vec<Message> {
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(window, async {
        while let Some(Ok(m)) = ws.next().await {
            seen.push(m);
        }
    })
    .await;
    seen
}

#[tokio::test]
async fn stream_server_records_the_handshake_and_pushes_frames_in_order() {
    let stream = StreamServer::start().await;
    assert!(stream.ws_url().starts_with("ws://127.0.0.1:"));
    assert!(stream.ws_url().ends_with("/v1/twitter/stream"));

    let mut ws = connect(&stream, "k-123").await;
    let handshakes = stream.wait_for_connections(1, DEADLINE).await;
    assert_eq!(handshakes.len(), 1);
    assert_eq!(handshakes[0].path(), "/v1/twitter/stream");
    assert_eq!(
        handshakes[0].query_param("api_key").as_deref(),
        Some("k-123")
    );
    assert!(handshakes[0].accepted);
    assert_eq!(stream.open_connections(), 1);

    assert_eq!(stream.send_text("one"), 1);
    let sent = stream.send_event(&tweet_event("42"));
    assert_eq!(stream.send_binary(&[0xff, 0x00, 0xfe]), 1);

    assert_eq!(next_frame(&mut ws).await, Some(Message::text("one")));
    assert_eq!(next_frame(&mut ws).await, Some(Message::text(sent.clone())));
    assert_eq!(
        next_frame(&mut ws).await,
        Some(Message::binary(vec![0xff, 0x00, 0xfe]))
    );
    assert_eq!(tweet_id(sent.as_bytes()).as_deref(), Some("42"));

    ws.send(Message::text("from client")).await.unwrap();
    support::wait::wait_until("the client's text", DEADLINE, stream.changes(), || {
        let texts = stream.client_texts();
        if texts == ["from client"] {
            Ok(())
        } else {
            Err(format!("{texts:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn stream_server_sees_pongs_and_keepalive_pings_go_out() {
    let stream = StreamServer::start().await;
    let mut ws = connect(&stream, "k").await;
    stream.wait_for_connections(1, DEADLINE).await;

    assert_eq!(stream.send_ping(b"are-you-there"), 1);
    // The client answers pings while it reads.
    let reader = tokio::spawn(async move {
        let mut pings = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Ping(p) = m {
                pings.push(p);
                if pings.len() >= 3 {
                    break;
                }
            }
        }
        pings
    });
    stream.wait_for_pong_with(b"are-you-there", DEADLINE).await;
    assert_eq!(stream.wait_for_pong(DEADLINE).await, b"are-you-there");

    stream.keepalive(Some(Duration::from_millis(30)));
    let pings = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("keepalive pings within 5 s")
        .unwrap();
    assert_eq!(pings[0], Bytes::from_static(b"are-you-there"));
    assert_eq!(pings[1], Bytes::from_static(b"keepalive"));
}

#[tokio::test]
async fn stream_server_counts_client_pings() {
    let stream = StreamServer::start().await;
    let mut ws = connect(&stream, "k").await;
    stream.wait_for_connections(1, DEADLINE).await;
    ws.send(Message::Ping(Bytes::from_static(b"c1")))
        .await
        .unwrap();
    // The server answers with a pong carrying the same payload.
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Pong(p))) = ws.next().await {
                return p;
            }
        }
    })
    .await
    .expect("a pong from the server");
    assert_eq!(pong, Bytes::from_static(b"c1"));
    assert_eq!(stream.client_pings(), 1);
}

#[tokio::test]
async fn stream_server_refuses_handshakes_with_401_then_accepts_again() {
    let stream = StreamServer::start().await;
    stream.reject_handshakes(Some(401));
    let url = format!("{}?api_key=bad", stream.ws_url());
    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401)
        }
        other => panic!("expected an HTTP 401 refusal, got {:?}", other.map(|_| ())),
    }
    let handshakes = stream.wait_for_handshakes(1, DEADLINE).await;
    assert!(!handshakes[0].accepted);
    assert_eq!(stream.connections(), 0);

    stream.reject_handshakes(None);
    let _ws = connect(&stream, "good").await;
    let accepted = stream.wait_for_connections(1, DEADLINE).await;
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].query_param("api_key").as_deref(), Some("good"));
    assert_eq!(stream.handshakes().len(), 2);
}

#[tokio::test]
async fn stream_server_closes_and_drops_connections() {
    let stream = StreamServer::start().await;
    let mut ws = connect(&stream, "k").await;
    stream.wait_for_connections(1, DEADLINE).await;
    stream.close_connections();
    match next_frame(&mut ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
    support::wait::wait_until(
        "no open connection",
        DEADLINE,
        stream.changes(),
        || match stream.open_connections() {
            0 => Ok(()),
            n => Err(format!("{n} open")),
        },
    )
    .await;

    let mut ws = connect(&stream, "k").await;
    stream.wait_for_connections(2, DEADLINE).await;
    stream.drop_connections();
    // No close frame: the stream just ends (or errors).
    assert_eq!(next_frame(&mut ws).await, None);
}

#[tokio::test]
async fn silent_connection_sends_nothing_and_answers_no_ping() {
    let stream = StreamServer::start().await;
    let mut ws = connect(&stream, "k").await;
    stream.wait_for_connections(1, DEADLINE).await;
    stream.go_silent();
    assert_eq!(
        stream.send_text("dropped"),
        0,
        "silent connections take no frames"
    );
    ws.send(Message::Ping(Bytes::from_static(b"hello?")))
        .await
        .unwrap();
    // Silence can only be observed over a window.
    let seen = frames_during(&mut ws, Duration::from_millis(300)).await;
    assert!(seen.is_empty(), "a silent server sent {seen:?}");
    assert_eq!(stream.open_connections(), 1, "the socket stays open");

    // A new connection is not silent.
    let mut ws2 = connect(&stream, "k").await;
    stream.wait_for_connections(2, DEADLINE).await;
    assert_eq!(stream.send_text("to the new one"), 1);
    assert_eq!(
        next_frame(&mut ws2).await,
        Some(Message::text("to the new one"))
    );
}

#[tokio::test]
async fn stream_server_stops_and_listens_again_on_the_same_port() {
    let stream = StreamServer::start().await;
    let url = stream.ws_url();
    let mut ws = connect(&stream, "k").await;
    stream.wait_for_connections(1, DEADLINE).await;

    stream.stop().await;
    assert_eq!(next_frame(&mut ws).await, None, "open connections are cut");
    let refused = tokio_tungstenite::connect_async(format!("{url}?api_key=k")).await;
    assert!(refused.is_err(), "connecting to a stopped server must fail");

    stream.restart().await;
    assert_eq!(stream.ws_url(), url);
    let mut ws = connect(&stream, "k").await;
    stream.wait_for_connections(2, DEADLINE).await;
    stream.send_text("back");
    assert_eq!(next_frame(&mut ws).await, Some(Message::text("back")));
}

#[tokio::test]
async fn receiver_records_method_uri_headers_body_and_arrival() {
    let receiver = Receiver::start().await;
    assert!(receiver.url().starts_with("http://127.0.0.1:"));
    assert!(receiver.url().ends_with("/hook"));
    let http = reqwest::Client::new();
    let before = Instant::now();
    let resp = http
        .post(receiver.url())
        .header("content-type", "application/json")
        .header("X-Custom", "Yes")
        .body("{\"a\": \"é\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http
        .put(format!("{}?wait=true", receiver.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let reqs = receiver.wait_for_requests(2, DEADLINE).await;
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].uri, "/hook");
    assert_eq!(reqs[0].header("Content-Type"), Some("application/json"));
    assert_eq!(reqs[0].header("x-custom"), Some("Yes"));
    assert_eq!(reqs[0].body_str(), "{\"a\": \"é\"}");
    assert_eq!(reqs[0].json()["a"], "é");
    assert!(reqs[0].arrived >= before && reqs[1].arrived >= reqs[0].arrived);
    assert_eq!(reqs[1].method, "PUT");
    assert_eq!(reqs[1].uri, "/hook?wait=true");
    assert_eq!(reqs[1].status, 200);
}

#[tokio::test]
async fn receiver_plays_a_script_then_its_fixed_reply() {
    let receiver = Receiver::start().await;
    let http = reqwest::Client::new();
    receiver.respond(503, &[("x-why", "maintenance")], "later");
    receiver.script(vec![
        Reply::status(500),
        Reply::status(429).header("Retry-After", "2"),
        Reply::status(404).body("no such hook"),
    ]);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let resp = http.post(receiver.url()).body("x").send().await.unwrap();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let why = resp
            .headers()
            .get("x-why")
            .map(|v| v.to_str().unwrap().to_string());
        seen.push((
            resp.status().as_u16(),
            retry_after,
            why,
            resp.text().await.unwrap(),
        ));
    }
    assert_eq!(
        seen,
        vec![
            (500, None, None, String::new()),
            (429, Some("2".into()), None, String::new()),
            (404, None, None, "no such hook".into()),
            (503, None, Some("maintenance".into()), "later".into()),
            (503, None, Some("maintenance".into()), "later".into()),
        ]
    );
    let statuses: Vec<u16> = receiver.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 429, 404, 503, 503]);

    receiver.always_ok();
    let resp = http.post(receiver.url()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn receiver_stalls_until_released_and_for_a_duration() {
    let receiver = Receiver::start().await;
    receiver.stall();
    let url = receiver.url();
    let held = tokio::spawn(async move {
        let resp = reqwest::Client::new()
            .post(url)
            .body("held")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), Instant::now())
    });
    let reqs = receiver.wait_for_requests(1, DEADLINE).await;
    assert_eq!(reqs[0].body_str(), "held");
    assert!(!held.is_finished(), "the response is held");
    let released_at = Instant::now();
    receiver.release();
    let (status, answered_at) = held.await.unwrap();
    assert_eq!(status, 200);
    assert!(answered_at >= released_at);

    receiver.stall_for(Duration::from_millis(200));
    let start = Instant::now();
    let resp = reqwest::Client::new()
        .post(receiver.url())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn receiver_throttles_with_429_and_retry_after() {
    let receiver = Receiver::start().await;
    receiver.throttle(2, Duration::from_secs(5), 3);
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let resp = http.post(receiver.url()).send().await.unwrap();
        if resp.status() == 429 {
            assert_eq!(resp.headers()["retry-after"], "3");
        }
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429, 429]);
    assert_eq!(receiver.throttled(), 3);

    // The window slides: after `per`, requests pass again.
    receiver.throttle(1, Duration::from_millis(200), 1);
    let first = http.post(receiver.url()).send().await.unwrap().status();
    let second = http.post(receiver.url()).send().await.unwrap().status();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let third = http.post(receiver.url()).send().await.unwrap().status();
    assert_eq!(
        (first.as_u16(), second.as_u16(), third.as_u16()),
        (200, 429, 200)
    );
}

#[tokio::test]
async fn receiver_goes_down_and_comes_back_on_the_same_port() {
    let receiver = Receiver::start().await;
    let url = receiver.url();
    // One client, so that its pooled keep-alive connection is exercised too.
    let http = reqwest::Client::new();
    assert_eq!(http.post(&url).send().await.unwrap().status(), 200);

    receiver.down().await;
    assert!(!receiver.is_up());
    for _ in 0..3 {
        let err = http
            .post(&url)
            .send()
            .await
            .expect_err("the receiver is down");
        assert!(
            err.is_connect() || err.is_request(),
            "unexpected error kind: {err}"
        );
    }
    assert_eq!(receiver.requests().len(), 1, "nothing arrives while down");

    receiver.up().await;
    assert_eq!(receiver.url(), url);
    assert_eq!(http.post(&url).send().await.unwrap().status(), 200);
    assert_eq!(receiver.requests().len(), 2);
}

#[tokio::test]
async fn receiver_down_cuts_a_held_request() {
    let receiver = Receiver::start().await;
    receiver.stall();
    let url = receiver.url();
    let held = tokio::spawn(async move { reqwest::Client::new().post(url).send().await });
    receiver.wait_for_requests(1, DEADLINE).await;
    receiver.down().await;
    let result = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("the held request ends when the receiver goes down")
        .unwrap();
    assert!(result.is_err(), "a cut request fails, got {result:?}");
}

#[tokio::test]
async fn receiver_start_down_refuses_then_up_records() {
    let receiver = Receiver::start_down().await;
    let http = reqwest::Client::new();
    assert!(http.post(receiver.url()).send().await.is_err());
    receiver.up().await;
    http.post(receiver.url())
        .body("{\"tweet_id\":\"7\"}")
        .send()
        .await
        .unwrap();
    let reqs = receiver
        .wait_for_tweet_ids(&["7".to_string()].into(), DEADLINE)
        .await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(receiver.delivered_tweet_ids(), ["7"]);
}

#[tokio::test]
#[should_panic(expected = "timed out after")]
async fn a_wait_past_its_deadline_fails_and_says_what_it_saw() {
    let receiver = Receiver::start().await;
    reqwest::Client::new()
        .post(receiver.url())
        .body("only one")
        .send()
        .await
        .unwrap();
    receiver
        .wait_for_requests(2, Duration::from_millis(300))
        .await;
}

#[test]
fn signature_matches_the_standard_webhooks_test_vector() {
    // From the Standard Webhooks specification's examples.
    let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let sig = sign(
        &key,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        br#"{"test": 2432232314}"#,
    );
    assert_eq!(sig, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert_eq!(signing_key("plain"), b"plain");
}

#[test]
fn signature_verification_accepts_a_good_and_rejects_a_bad_request() {
    let body = bytes::Bytes::from_static(b"{\"x\":1}");
    let mut req = Request {
        method: "POST".into(),
        uri: "/hook".into(),
        headers: vec![
            ("webhook-id".into(), "msg_1".into()),
            ("webhook-timestamp".into(), "1700000000".into()),
        ],
        body,
        arrived: Instant::now(),
        status: 200,
    };
    let good = sign(b"secret", "msg_1", "1700000000", b"{\"x\":1}");
    req.headers
        .push(("webhook-signature".into(), format!("v1,bogus v1,{good}")));
    assert_eq!(verify_webhook_signature(&req, "secret"), Ok(()));
    assert!(verify_webhook_signature(&req, "other").is_err());
    req.body = bytes::Bytes::from_static(b"{\"x\":2}");
    assert!(verify_webhook_signature(&req, "secret").is_err());
}

#[test]
fn config_renders_valid_toml_with_the_test_timings() {
    let cfg = RelayConfig::for_url("ws://127.0.0.1:9/v1/twitter/stream")
        .max_message_size("1KiB")
        .target(
            "a",
            "http",
            "http://127.0.0.1:1/hook",
            "concurrency = 1\nsigning_secret = \"s\"",
        )
        .target("b", "http", "http://127.0.0.1:2/hook", "")
        .route(
            route("r1")
                .monitors(&["Tech Leaders"])
                .authors(&["@sama"])
                .text("(?i)launch")
                .targets(&["a", "b"])
                .stop(),
        )
        .route(route("all").targets(&["b"]));
    let text = cfg.render(std::path::Path::new("/tmp/x \"y\"/outbox"));
    let parsed: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed["source"]["api_key"].as_str(), Some(API_KEY));
    assert_eq!(parsed["source"]["idle_timeout"].as_str(), Some("60s"));
    assert_eq!(parsed["source"]["max_message_size"].as_str(), Some("1KiB"));
    assert_eq!(
        parsed["source"]["reconnect"]["initial"].as_str(),
        Some("50ms")
    );
    assert_eq!(
        parsed["outbox"]["path"].as_str(),
        Some("/tmp/x \"y\"/outbox")
    );
    assert_eq!(parsed["outbox"]["retry"]["max"].as_str(), Some("500ms"));
    assert_eq!(parsed["targets"]["a"]["concurrency"].as_integer(), Some(1));
    assert_eq!(parsed["targets"]["b"]["type"].as_str(), Some("http"));
    let routes = parsed["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0]["stop"].as_bool(), Some(true));
    assert_eq!(routes[0]["authors"][0].as_str(), Some("@sama"));
    assert!(routes[1].get("monitors").is_none());

    let no_key = RelayConfig::for_url("ws://127.0.0.1:9/").api_key(None);
    let parsed: toml::Table = toml::from_str(&no_key.render(std::path::Path::new("/o"))).unwrap();
    assert!(parsed["source"].get("api_key").is_none());
}

const SCRIPT: &str = r#"
echo "out: started"
echo "err: started" >&2
trap 'echo "got TERM"; exit 0' TERM
while true; do sleep 0.02; done
"#;

#[tokio::test]
async fn process_capture_sigterm_and_sigkill() {
    let logs = std::sync::Arc::new(Logs::default());
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::spawn(
        std::path::Path::new("/bin/sh"),
        &["-c", SCRIPT],
        dir.path(),
        &[],
        &logs,
    );
    logs.wait_for("stdout line", DEADLINE, |l| l == "out: started")
        .await;
    logs.wait_for("stderr line", DEADLINE, |l| l == "err: started")
        .await;
    assert!(p.is_running());
    p.terminate();
    logs.wait_for("the TERM trap", DEADLINE, |l| l == "got TERM")
        .await;
    let status = p.wait_exit(DEADLINE, &logs).await;
    assert_eq!(status.code(), Some(0));

    let mut p = Process::spawn(
        std::path::Path::new("/bin/sh"),
        &["-c", SCRIPT],
        dir.path(),
        &[],
        &logs,
    );
    logs.wait_for("second run", DEADLINE, |l| l == "out: started")
        .await;
    let status = p.kill();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));
    assert!(!p.is_running());
}
