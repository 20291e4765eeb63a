//! Floods on the HTTP server (issue 9, point 4, in part): a flood of badly signed
//! `/ingest` requests is answered 401 each, logged at a bounded rate (one line a second,
//! saying how many it left out), and the stream's deliveries flow meanwhile.

mod support;

use std::time::Instant;

use support::server::*;
use support::*;

#[tokio::test]
async fn a_flood_of_bad_signatures_is_logged_at_a_bounded_rate_while_deliveries_flow() {
    const FLOOD: usize = 600;
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "")
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(Some(INGEST_SECRET)));
    let relay = Relay::start_connected(&cfg, &stream).await;
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
