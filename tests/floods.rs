//! Floods on the HTTP server (issue 9, point 4, in part): a flood of badly signed
//! `/ingest` requests is answered 401 each, logged at a bounded rate (one line a second,
//! saying how many it left out), and the stream's deliveries flow meanwhile.

mod support;

use std::time::Instant;

use support::server::*;
use support::*;

/// A relay taking the stream and `/ingest`, with one catch-all http target.
async fn relay_with_ingest() -> (StreamServer, Receiver, Relay) {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "")
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(Some(INGEST_SECRET)));
    let relay = Relay::start_connected(&cfg, &stream).await;
    (stream, hook, relay)
}

#[tokio::test]
async fn a_flood_of_bad_signatures_is_logged_at_a_bounded_rate_while_deliveries_flow() {
    const FLOOD: usize = 600;
    let (stream, hook, relay) = relay_with_ingest().await;
    let http = Http::of(&relay).await;

    let started = Instant::now();
    let body = serde_json::to_vec(&tweet_event("80000")).unwrap();
    let flood = {
        let http = Http::of(&relay).await;
        tokio::spawn(async move {
            let mut statuses = Vec::with_capacity(FLOOD);
            for _ in 0..FLOOD {
                let a = http
                    .post("/ingest", &[(SIGNATURE_HEADER, "sha256=00")], body.clone())
                    .await;
                statuses.push(a.status);
            }
            statuses
        })
    };
    let ids: std::collections::BTreeSet<String> = (80001..80021).map(|i| i.to_string()).collect();
    for id in &ids {
        stream.send_event(&tweet_event(id));
    }
    hook.wait_for_tweet_ids(&ids, DEADLINE).await;
    let statuses = flood.await.expect("the flood task");
    assert!(statuses.iter().all(|&s| s == 401), "{statuses:?}");

    let signature_lines = || -> Vec<String> {
        relay
            .logs()
            .into_iter()
            .filter(|l| l.contains("missing or wrong signature"))
            .collect()
    };
    let account = || {
        let lines = signature_lines();
        let suppressed: usize = lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON log line");
                v["suppressed"].as_u64().expect("a suppressed count") as usize
            })
            .sum();
        (lines, suppressed)
    };
    // Bad requests go on, one every 100 ms, until the lines account for every rejection:
    // each line counts what was left out since the one before, so the first line after
    // the flood settles the count.
    let mut probes = 0;
    let lines = loop {
        let (lines, suppressed) = account();
        if lines.len() + suppressed == FLOOD + probes {
            break lines;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{} lines saying {suppressed} left out, for {} rejections",
            lines.len(),
            FLOOD + probes
        );
        let a = http
            .post(
                "/ingest",
                &[(SIGNATURE_HEADER, "sha256=00")],
                b"{}".to_vec(),
            )
            .await;
        assert_eq!(a.status, 401);
        probes += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // One line a second at most (the first at once).
    let took = started.elapsed();
    let allowed = took.as_secs() as usize + 2;
    assert!(
        lines.len() <= allowed,
        "{} lines for {} rejections in {took:?} (at most {allowed}):\n{}",
        lines.len(),
        FLOOD + probes,
        lines.join("\n")
    );
    relay.assert_logs_free_of(INGEST_SECRET);
}

/// Slowloris: connections that send their request head a byte at a time, and ones that
/// say nothing at all, are closed by the relay once the head's deadline (10 s) has passed;
/// the stream's deliveries flow meanwhile.
#[tokio::test]
async fn request_heads_sent_too_slowly_are_cut_off_at_their_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SLOW: usize = 50;
    /// The relay's header timeout (README, "HTTP server").
    const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    let (stream, hook, relay) = relay_with_ingest().await;
    let addr = server_addr(&relay).await;

    let started = Instant::now();
    let mut clients = Vec::new();
    for n in 0..SLOW {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        clients.push(tokio::spawn(async move {
            let (mut rd, mut wr) = tcp.into_split();
            // Half trickle a head that never ends; half send nothing.
            let head = b"POST /ingest HTTP/1.1\r\nHost: relay\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            let mut sent = 0;
            let mut buf = [0u8; 256];
            loop {
                let trickle = async {
                    if n % 2 == 0 && sent < head.len() {
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                        wr.write_all(&head[sent..sent + 1]).await.is_ok()
                    } else {
                        std::future::pending::<bool>().await
                    }
                };
                tokio::select! {
                    read = rd.read(&mut buf) => {
                        // Closed (or reset) by the relay: whatever it says, nothing is
                        // served for an unfinished head.
                        match read {
                            Ok(0) | Err(_) => return started.elapsed(),
                            Ok(_) => continue,
                        }
                    }
                    wrote = trickle => {
                        if !wrote {
                            return started.elapsed();
                        }
                        sent += 1;
                    }
                }
            }
        }));
    }

    let ids: std::collections::BTreeSet<String> = (81001..81021).map(|i| i.to_string()).collect();
    for id in &ids {
        stream.send_event(&tweet_event(id));
    }
    hook.wait_for_tweet_ids(&ids, DEADLINE).await;
    assert!(
        started.elapsed() < HEADER_TIMEOUT,
        "the deliveries waited for the slow clients"
    );

    for client in clients {
        let closed_after = tokio::time::timeout(DEADLINE, client)
            .await
            .expect("the relay never closed a slow connection")
            .expect("the client task");
        assert!(
            closed_after >= HEADER_TIMEOUT - std::time::Duration::from_millis(500)
                && closed_after < HEADER_TIMEOUT * 2,
            "a slow connection was closed after {closed_after:?}; its deadline is {HEADER_TIMEOUT:?}"
        );
    }
    // And the server still serves a normal request.
    let http = Http::of(&relay).await;
    assert_eq!(http.get("/healthz").await.status, 200);
}

/// A slow body: the head of an `/ingest` request comes at once, its body never
/// finishes. The relay answers 408 once the body's deadline (30 s) has passed, and
/// stores nothing.
#[tokio::test]
async fn an_ingest_body_sent_too_slowly_is_answered_408_at_its_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// The relay's body timeout (README, "HTTP server").
    const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
    let (_stream, hook, relay) = relay_with_ingest().await;
    let addr = server_addr(&relay).await;

    let body = serde_json::to_vec(&tweet_event("82000")).unwrap();
    let signature = sign_ingest(INGEST_SECRET, &body);
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /ingest HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n\
         {SIGNATURE_HEADER}: {signature}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body[..10]).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    let read = tokio::time::timeout(BODY_TIMEOUT + DEADLINE, async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled body");
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        took >= BODY_TIMEOUT - std::time::Duration::from_millis(500)
            && took < BODY_TIMEOUT + std::time::Duration::from_secs(10),
        "answered after {took:?}; the deadline is {BODY_TIMEOUT:?}"
    );
    // The relay still takes the same tweet whole, and it was not stored before.
    let http = Http::of(&relay).await;
    http.ingest_accepted(SIGNATURE_HEADER, &body).await;
    hook.wait_for_tweet_ids(&["82000".to_string()].into(), DEADLINE)
        .await;
    assert_eq!(hook.requests().len(), 1);
}

/// Oversized heads: too many header lines, or one huge header, are refused with 431
/// before any body is read, and the server goes on serving.
#[tokio::test]
async fn oversized_request_heads_are_refused_with_431() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_stream, hook, relay) = relay_with_ingest().await;
    let addr = server_addr(&relay).await;

    let many: String = (0..200).map(|i| format!("X-Filler-{i}: x\r\n")).collect();
    // Over hyper's ~400 KB head buffer.
    let huge = format!("X-Huge: {}\r\n", "a".repeat(512 << 10));
    for extra in [many, huge] {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut rd, mut wr) = tcp.into_split();
        let head =
            format!("POST /ingest HTTP/1.1\r\nHost: relay\r\n{extra}Content-Length: 2\r\n\r\n{{}}");
        let size = head.len();
        // Written while the answer is read: the relay answers (and closes) before it
        // has read all of it, and a reset must not overtake the answer.
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(head.as_bytes()).await;
            wr
        });
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(DEADLINE, rd.read_to_end(&mut answer)).await;
        drop(writer.await);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "a head of {size} bytes was answered {:?}",
            answer.lines().next()
        );
    }
    let http = Http::of(&relay).await;
    assert_eq!(http.get("/healthz").await.status, 200);
    assert!(hook.requests().is_empty());
}
