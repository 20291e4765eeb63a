//! A target of `type = "nats"` against a real nats-server (started by the test, no
//! mock): every delivery published once into the operator's stream, byte-identical,
//! with its webhook-id as the message id; a subject no stream captures, and a server
//! that is down, retried until the message is stored, none lost, none twice.

mod support;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use support::nats::NatsServer;
use support::*;

/// The stream the operator made for the relay's subject.
async fn make_stream(server: &NatsServer) -> jetstream::stream::Stream {
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    js.get_or_create_stream(stream::Config {
        name: "TWEETS".into(),
        subjects: vec!["tweets.>".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("create the stream")
}

/// Waits until the stream holds `n` messages, then returns every one in order.
async fn wait_for_messages(
    stream: &mut jetstream::stream::Stream,
    n: u64,
    deadline: Duration,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let start = Instant::now();
    loop {
        let held = stream.info().await.expect("stream info").state.messages;
        if held >= n {
            break;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {n} messages in the stream; it holds {held}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = stream.info().await.unwrap().state.messages;
    let mut out = Vec::new();
    for seq in 1..=held {
        out.push(stream.get_raw_message(seq).await.expect("a stored message"));
    }
    out
}

fn nats_config(stream: &StreamServer, server: &NatsServer) -> RelayConfig {
    // The support config writes `url = ...`; a nats target takes `subject` and `urls`.
    let toml = format!(
        "[targets.bus]\ntype = \"nats\"\nsubject = \"tweets.detected\"\nurls = [\"{}\"]\ntimeout = \"2s\"\n",
        server.url()
    );
    RelayConfig::new(stream)
        .route(route("all").targets(&["bus"]))
        .tail(&toml)
}

/// The payloads of `messages`, sorted (publishes with concurrency above 1 may overtake
/// each other).
fn sorted_bodies(messages: &[async_nats::jetstream::message::StreamMessage]) -> Vec<String> {
    let mut bodies: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8(m.payload.to_vec()).unwrap())
        .collect();
    bodies.sort();
    bodies
}

fn header<'a>(m: &'a async_nats::jetstream::message::StreamMessage, name: &str) -> &'a str {
    m.headers
        .get(name)
        .map(|v| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn every_delivery_is_published_once_byte_identical_with_its_webhook_id_as_message_id() {
    let server = NatsServer::start();
    let mut tweets = make_stream(&server).await;
    let stream = StreamServer::start().await;
    let _relay = Relay::start_connected(&nats_config(&stream, &server), &stream).await;

    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(stream.send_event(&tweet_event(&format!("{}", 31000 + i))));
    }
    // The same event again: one delivery (dedupe "event"), one message.
    stream.send_event(&tweet_event("31000"));
    let marker = stream.send_event(&tweet_event("31999"));
    sent.push(marker);

    let messages = wait_for_messages(&mut tweets, 31, DEADLINE).await;
    assert_eq!(
        messages.len(),
        31,
        "each delivery once, the repeat not at all"
    );
    // concurrency 4: publishes may overtake each other, so compare as sets.
    let mut bodies: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8(m.payload.to_vec()).unwrap())
        .collect();
    bodies.sort();
    sent.sort();
    assert_eq!(
        bodies, sent,
        "the event bytes exactly as received, each once"
    );
    let mut ids = std::collections::HashSet::new();
    for m in &messages {
        assert_eq!(m.subject.as_str(), "tweets.detected");
        let id = header(m, "webhook-id");
        assert!(id.starts_with("msg_"), "{id}");
        assert_eq!(header(m, "Nats-Msg-Id"), id);
        assert!(header(m, "webhook-timestamp").parse::<u64>().is_ok());
        assert!(ids.insert(id.to_owned()), "a webhook-id used twice: {id}");
    }
}

#[tokio::test]
async fn a_subject_no_stream_captures_is_retried_until_one_does() {
    let server = NatsServer::start();
    let stream = StreamServer::start().await;
    let relay = Relay::start_connected(&nats_config(&stream, &server), &stream).await;

    let body = stream.send_event(&tweet_event("32000"));
    relay
        .wait_for_log_matching("a retry saying which stream is missing", DEADLINE, |l| {
            l.contains("no JetStream stream captures the subject tweets.detected")
        })
        .await;
    let mut tweets = make_stream(&server).await;
    let messages = wait_for_messages(&mut tweets, 1, DEADLINE).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(std::str::from_utf8(&messages[0].payload).unwrap(), body);
}

#[tokio::test]
async fn a_nats_server_that_is_down_delays_deliveries_and_loses_none() {
    let mut server = NatsServer::start();
    let mut tweets = make_stream(&server).await;
    let stream = StreamServer::start().await;
    let relay = Relay::start_connected(&nats_config(&stream, &server), &stream).await;

    let first = stream.send_event(&tweet_event("33000"));
    wait_for_messages(&mut tweets, 1, DEADLINE).await;
    server.kill();
    let mut sent = vec![first];
    for i in 1..6 {
        sent.push(stream.send_event(&tweet_event(&format!("{}", 33000 + i))));
    }
    let line = relay
        .wait_for_log_matching("a failed publish while NATS is down", DEADLINE, |l| {
            l.contains("\"bus\"") && l.contains("WARN")
        })
        .await;
    eprintln!("while NATS was down: {line}");
    server.restart();
    // The stream's file store survived the kill; the client reconnects by itself.
    let client = async_nats::connect(server.url()).await.expect("reconnect");
    let mut tweets = jetstream::new(client)
        .get_stream("TWEETS")
        .await
        .expect("the stream is still there");
    let messages = wait_for_messages(&mut tweets, 6, Duration::from_secs(30)).await;
    sent.sort();
    assert_eq!(
        sorted_bodies(&messages),
        sent,
        "every event once, none lost, none twice"
    );
}

#[tokio::test]
async fn credentials_the_server_refuses_dead_letter_with_advice_and_good_ones_publish() {
    let server = NatsServer::start_with(&["-js", "--user", "relay", "--pass", "s3cret-PASS"]);
    let client =
        async_nats::ConnectOptions::with_user_and_password("relay".into(), "s3cret-PASS".into())
            .connect(server.url())
            .await
            .expect("connect with the right password");
    let mut tweets = jetstream::new(client)
        .get_or_create_stream(stream::Config {
            name: "TWEETS".into(),
            subjects: vec!["tweets.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let stream = StreamServer::start().await;
    let target = |name: &str, password: &str| {
        format!(
            "[targets.{name}]\ntype = \"nats\"\nsubject = \"tweets.{name}\"\nurls = [\"{}\"]\nuser = \"relay\"\npassword = \"{password}\"\ntimeout = \"2s\"\n",
            server.url()
        )
    };
    let config = RelayConfig::new(&stream)
        .route(route("all").targets(&["good", "bad"]))
        .tail(&format!(
            "{}{}",
            target("good", "s3cret-PASS"),
            target("bad", "WRONG-pass-77")
        ));
    let relay = Relay::start_connected(&config, &stream).await;

    let body = stream.send_event(&tweet_event("34000"));
    let messages = wait_for_messages(&mut tweets, 1, DEADLINE).await;
    assert_eq!(messages[0].subject.as_str(), "tweets.good");
    assert_eq!(std::str::from_utf8(&messages[0].payload).unwrap(), body);
    let line = relay
        .wait_for_log_matching("the bad target's dead letter", DEADLINE, |l| {
            l.contains("ERROR") && l.contains("\"bad\"") && l.contains("dead-lettered")
        })
        .await;
    assert!(line.contains("refused the target's credentials"), "{line}");
    for l in relay.logs() {
        assert!(
            !l.contains("WRONG-pass-77") && !l.contains("s3cret-PASS"),
            "a password leaked: {l}"
        );
    }
}
