//! A stepped wall clock, on the real binary: libfaketime (Debian's `faketime` package,
//! `LD_PRELOAD`ed) sets the relay's wall clock a day fast; the monotonic clock (tokio's
//! timers) is left alone (`DONT_FAKE_MONOTONIC=1`). Without the library the test fails
//! and says how to install it; it never skips.

mod support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use support::server::*;
use support::*;

/// Where Debian's `libfaketime` puts the preload library.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The environment that runs the relay a day fast by the wall clock only.
fn a_day_fast() -> [(&'static str, &'static str); 4] {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime package (apt-get install faketime); \
         .ci/run does"
    );
    [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", "+1d"),
        ("FAKETIME_NO_CACHE", "1"),
        ("DONT_FAKE_MONOTONIC", "1"),
    ]
}

#[tokio::test]
async fn a_retry_scheduled_while_the_clock_was_a_day_fast_comes_within_its_backoff() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.respond(503, &[], "down");
    let cfg = RelayConfig::new(&stream)
        .retry("10s", "10s")
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]));
    let mut relay = Relay::prepare(&cfg, &a_day_fast());
    let before = stream.connections();
    relay.restart();
    relay.wait_connected(&stream, before).await;

    let first = stream.send_event(&tweet_event("90001"));
    stream.send_event(&tweet_event("90002"));
    hook.wait_for_body(&first, DEADLINE).await;
    relay
        .wait_for_log("Delivery failed; will retry", DEADLINE)
        .await;
    relay.terminate();
    relay.wait_exit(DEADLINE).await;

    // The schedule was written by the fast clock: about a day from the real now.
    let list = outbox(&relay, &["list"]).await;
    list.assert_code(0);
    let next = list
        .stdout
        .lines()
        .find(|l| l.contains("tweet=90001"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("next=")))
        .unwrap_or_else(|| panic!("no schedule for 90001 in {}", list.stdout));
    let next = humantime::parse_rfc3339(next).expect("an RFC 3339 time");
    let ahead = next.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(
        ahead > Duration::from_secs(23 * 3600),
        "libfaketime did not set the clock forward: next attempt {ahead:?} from now"
    );

    // The clock is corrected and the relay restarts: the retry comes within its backoff
    // (10 s), not a day later, and the delivery behind it (concurrency 1) follows.
    relay.set_env(&[]);
    hook.always_ok();
    let restarted = Instant::now();
    relay.restart_connected(&stream).await;
    let ids = ["90001", "90002"].map(String::from).into();
    hook.wait_for_tweet_ids(&ids, Duration::from_secs(60)).await;
    let took = restarted.elapsed();
    assert!(
        took < Duration::from_secs(25),
        "retried {took:?} after the restart; its backoff is 10 s"
    );
}

/// A wall clock stepped a day and more forward while the relay runs (NTP correcting a
/// clock, a VM resumed): the dedupe marks set before the step still hold, so a repeat of
/// a delivered tweet is not delivered again. The marks count time from the wall clock at
/// start-up plus the monotonic clock, which the step does not move.
#[tokio::test]
async fn a_clock_stepped_forward_while_running_keeps_the_dedupe_marks() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime package (apt-get install faketime); \
         .ci/run does"
    );
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]));
    // libfaketime reads the offset from this file at every clock call.
    let offset = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(offset.path(), "+0\n").unwrap();
    let offset_path = offset.path().to_str().unwrap().to_string();
    let env = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", offset_path.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        ("DONT_FAKE_MONOTONIC", "1"),
    ];
    let mut relay = Relay::prepare(&cfg, &env);
    let before = stream.connections();
    relay.restart();
    relay.wait_connected(&stream, before).await;

    stream.send_event(&tweet_event("91001"));
    hook.wait_for_tweet_ids(&["91001".to_string()].into(), DEADLINE)
        .await;

    // Two days forward (the default dedupe window is far shorter); the relay's log
    // timestamps show when it sees the step.
    std::fs::write(offset.path(), "+2d\n").unwrap();
    let stepped =
        humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(2 * 86_400)).to_string();
    let stepped_day = &stepped[..10];
    stream.send_text("not an event");
    relay
        .wait_for_log_matching(
            &format!("a log line stamped {stepped_day} (the stepped clock)"),
            DEADLINE,
            |l| l.contains("Ignored a frame") && l.contains(stepped_day),
        )
        .await;

    stream.send_event(&tweet_event("91001"));
    stream.send_event(&tweet_event("91002"));
    hook.wait_for_tweet_ids(&["91001", "91002"].map(String::from).into(), DEADLINE)
        .await;
    // Anything of 91001's repeat would have come before 91002 (one ordered target).
    let repeats = hook.bodies().iter().filter(|b| b.contains("91001")).count();
    assert_eq!(
        repeats, 1,
        "the repeat of 91001 after the clock step was delivered again"
    );
}
