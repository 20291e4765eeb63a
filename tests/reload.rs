//! Config reload on SIGHUP, against the real binary: an invalid file keeps the running
//! config (Alertmanager #2372 reported success for a failed reload), nothing accepted is
//! dropped by a reload (Alertmanager #2146), a target with failed deliveries pending can
//! be pointed at a working URL (Vector #24125), routes and targets change between
//! events, a removed target's deliveries stay in the outbox, `[source]` changes
//! reconnect, `[outbox]` and `[server] listen` changes are refused.
//!
//! Each reload writes the new config over the relay's file, sends `kill -HUP` and waits
//! for the relay's own line about that reload ("Config reloaded" or "Config reload
//! failed/refused"), so every assertion after it sees the reload done.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::server::*;
use support::*;

/// Deliveries through retries and worker restarts on shared cores.
const LONG: Duration = Duration::from_secs(30);

/// A reload log line: applied, failed or refused.
fn is_reload_line(line: &str) -> bool {
    line.contains("Config reloaded")
        || line.contains("Config reload failed")
        || line.contains("Config reload refused")
}

/// Write `config` over the relay's file, SIGHUP it, and wait for its line about this
/// reload; returns that line.
async fn reload(relay: &Relay, config: &RelayConfig) -> String {
    std::fs::write(relay.config_path(), config.render(&relay.outbox_dir())).unwrap();
    let before = relay.logs().iter().filter(|l| is_reload_line(l)).count();
    signal(relay.pid(), "HUP");
    support::wait::poll_until(format!("reload line #{}", before + 1), DEADLINE, || {
        let lines: Vec<String> = relay
            .logs()
            .into_iter()
            .filter(|l| is_reload_line(l))
            .collect();
        lines
            .get(before)
            .cloned()
            .ok_or_else(|| format!("{} reload line(s)", lines.len()))
    })
    .await
}

/// Started, connected, and its signal handlers in place.
async fn start(config: &RelayConfig, stream: &StreamServer) -> Relay {
    let relay = Relay::start_connected(config, stream).await;
    relay.wait_for_log("badger-relay running", DEADLINE).await;
    relay
}

fn ids(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// An event from monitor `monitor`.
fn from(tweet_id: &str, monitor: &str) -> serde_json::Value {
    event(tweet_id, monitor, monitor, "someone", "text")
}

fn field(line: &str, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    v.get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// Alertmanager #2372: a failed reload must not look like a success. The log says the
/// file is invalid with exactly what `check` says about it, the metric counts `invalid`
/// (and no `ok`), the process keeps running and the old routes keep working.
#[tokio::test]
async fn an_invalid_file_is_reported_as_check_reports_it_and_the_running_config_is_kept() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let good = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(None));
    let mut relay = start(&good, &stream).await;
    let http = Http::of(&relay).await;

    let bad = good.clone().route(route("typo").targets(&["hoook"]));
    let line = reload(&relay, &bad).await;
    assert!(line.contains("Config reload failed"), "{line}");
    assert!(line.contains("\"level\":\"ERROR\""), "{line}");
    let check = run_cli(
        cli(&["check", "-c", relay.config_path().to_str().unwrap()]),
        DEADLINE,
    )
    .await;
    check.assert_code(2);
    let said = check
        .stderr
        .trim()
        .trim_start_matches("error: ")
        .to_string();
    assert!(said.contains("hoook"), "check says: {said}");
    assert_eq!(field(&line, "error").as_str(), Some(said.as_str()));
    http.wait_for_metrics(
        &[
            ("badger_relay_config_reloads_total{result=\"invalid\"}", 1.0),
            ("badger_relay_config_reloads_total{result=\"ok\"}", 0.0),
        ],
        DEADLINE,
    )
    .await;
    assert!(relay.is_running());
    stream.send_event(&tweet_event("1"));
    hook.wait_for_tweet_ids(&ids(&["1"]), DEADLINE).await;
}

/// A route change applies from the next event: after the reload, events of the old
/// route go to the other target, and a new route is in force.
#[tokio::test]
async fn a_route_change_takes_effect_for_the_next_event() {
    let stream = StreamServer::start().await;
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    let base = RelayConfig::new(&stream)
        .http_target("a", &a, "concurrency = 1")
        .http_target("b", &b, "concurrency = 1")
        .tail(&server_table(None));
    let before = base.clone().route(route("all").targets(&["a"]));
    let relay = start(&before, &stream).await;
    stream.send_event(&from("1", "m"));
    a.wait_for_tweet_ids(&ids(&["1"]), DEADLINE).await;

    let after = base
        .route(route("late").monitors(&["late"]).targets(&["a"]).stop())
        .route(route("all").targets(&["b"]));
    let line = reload(&relay, &after).await;
    assert!(line.contains("Config reloaded"), "{line}");
    assert_eq!(field(&line, "routes"), 2);
    stream.send_event(&from("2", "m"));
    b.wait_for_tweet_ids(&ids(&["2"]), DEADLINE).await;
    stream.send_event(&from("3", "late"));
    a.wait_for_tweet_ids(&ids(&["1", "3"]), DEADLINE).await;
    // `a` has concurrency 1 and got 3 after the reload: 2, sent before 3, would be in
    // between if the old routes had taken it.
    assert_eq!(a.delivered_tweet_ids(), ["1", "3"]);
    assert_eq!(b.delivered_tweet_ids(), ["2"]);
    let http = Http::of(&relay).await;
    http.wait_for_metrics(
        &[("badger_relay_config_reloads_total{result=\"ok\"}", 1.0)],
        DEADLINE,
    )
    .await;
}

/// Vector #24125: a target whose deliveries are failing can be reloaded. Its url is
/// changed to a working receiver and the pending deliveries arrive there, in order.
#[tokio::test]
async fn a_target_with_failing_deliveries_pending_is_reloaded_onto_a_working_url() {
    let stream = StreamServer::start().await;
    let broken = Receiver::start().await;
    broken.respond(500, &[], "down");
    let working = Receiver::start().await;
    let at = |r: &Receiver| {
        RelayConfig::new(&stream)
            .http_target("hook", r, "concurrency = 1")
            .route(route("all").targets(&["hook"]))
    };
    let relay = start(&at(&broken), &stream).await;
    for id in ["1", "2", "3"] {
        stream.send_event(&tweet_event(id));
    }
    broken.wait_for_requests(3, DEADLINE).await;

    let line = reload(&relay, &at(&working)).await;
    assert!(line.contains("targets changed: hook"), "{line}");
    working
        .wait_for_tweet_ids(&ids(&["1", "2", "3"]), LONG)
        .await;
    assert_eq!(working.delivered_tweet_ids(), ["1", "2", "3"]);
    assert!(broken.delivered_tweet_ids().is_empty());
}

/// Alertmanager #2146: a reload must not drop what was accepted. Events keep coming
/// while the target's worker is restarted (its options changed) and while deliveries
/// are held by a slow receiver: every one arrives.
#[tokio::test]
async fn a_reload_drops_neither_events_in_flight_nor_pending_deliveries() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.stall_for(Duration::from_millis(50));
    let with = |extra: &str| {
        RelayConfig::new(&stream)
            .http_target("hook", &hook, extra)
            .route(route("all").targets(&["hook"]))
    };
    let relay = start(&with("concurrency = 1"), &stream).await;
    let all: Vec<String> = (0..60).map(|i| format!("t{i}")).collect();
    for id in &all[..30] {
        stream.send_event(&tweet_event(id));
    }
    // Some delivered, most still pending behind the slow receiver.
    hook.wait_for_requests(2, DEADLINE).await;
    let new = with("concurrency = 2\ntimeout = \"9s\"");
    std::fs::write(relay.config_path(), new.render(&relay.outbox_dir())).unwrap();
    signal(relay.pid(), "HUP");
    for id in &all[30..] {
        stream.send_event(&tweet_event(id));
    }
    let line = relay.wait_for_log("Config reloaded", DEADLINE).await;
    assert!(line.contains("targets changed: hook"), "{line}");
    let want: BTreeSet<String> = all.iter().cloned().collect();
    hook.wait_for_tweet_ids(&want, LONG).await;
    let got: BTreeSet<String> = hook.delivered_tweet_ids().into_iter().collect();
    assert_eq!(got, want);
}

/// A removed target's worker stops; its deliveries stay in the outbox, the log says how
/// many and where to see them, and they are delivered when it is configured again.
#[tokio::test]
async fn a_removed_target_keeps_its_deliveries_and_gets_them_when_it_returns() {
    let stream = StreamServer::start().await;
    let broken = Receiver::start().await;
    broken.respond(500, &[], "down");
    let (other, working) = (Receiver::start().await, Receiver::start().await);
    let both = |a: &Receiver| {
        RelayConfig::new(&stream)
            .http_target("a", a, "concurrency = 1")
            .http_target("b", &other, "concurrency = 1")
            .route(route("all").targets(&["a", "b"]))
    };
    let relay = start(&both(&broken), &stream).await;
    stream.send_event(&tweet_event("1"));
    stream.send_event(&tweet_event("2"));
    broken.wait_for_requests(2, DEADLINE).await;
    other.wait_for_tweet_ids(&ids(&["1", "2"]), DEADLINE).await;

    let without = RelayConfig::new(&stream)
        .http_target("b", &other, "concurrency = 1")
        .route(route("all").targets(&["b"]));
    let line = reload(&relay, &without).await;
    assert!(line.contains("targets removed: a"), "{line}");
    let warn = relay.wait_for_log("Target removed", DEADLINE).await;
    assert_eq!(field(&warn, "target"), "a");
    assert_eq!(field(&warn, "pending"), 2);
    assert!(warn.contains("outbox stats"), "{warn}");
    let tried = broken.requests().len();
    stream.send_event(&tweet_event("3"));
    other
        .wait_for_tweet_ids(&ids(&["1", "2", "3"]), DEADLINE)
        .await;
    assert_eq!(
        broken.requests().len(),
        tried,
        "a stopped worker kept trying"
    );

    let line = reload(&relay, &both(&working)).await;
    assert!(line.contains("targets added: a"), "{line}");
    working.wait_for_tweet_ids(&ids(&["1", "2"]), LONG).await;
    // 3 came while `a` was not configured: not routed to it. 4 comes after 1 and 2
    // (concurrency 1), so 3 would be in between had it been stored for `a`.
    stream.send_event(&tweet_event("4"));
    working
        .wait_for_tweet_ids(&ids(&["1", "2", "4"]), LONG)
        .await;
    assert_eq!(working.delivered_tweet_ids(), ["1", "2", "4"]);
}

/// A removed target's deliveries are in `outbox stats` after the run.
#[tokio::test]
async fn a_removed_targets_deliveries_are_in_outbox_stats() {
    let stream = StreamServer::start().await;
    let broken = Receiver::start().await;
    broken.respond(500, &[], "down");
    let other = Receiver::start().await;
    let config = RelayConfig::new(&stream)
        .http_target("gone", &broken, "concurrency = 1")
        .http_target("kept", &other, "concurrency = 1")
        .route(route("all").targets(&["gone", "kept"]));
    let mut relay = start(&config, &stream).await;
    for id in ["1", "2", "3"] {
        stream.send_event(&tweet_event(id));
    }
    broken.wait_for_requests(3, DEADLINE).await;
    let without = RelayConfig::new(&stream)
        .http_target("kept", &other, "concurrency = 1")
        .route(route("all").targets(&["kept"]));
    reload(&relay, &without).await;
    relay.wait_for_log("Target removed", DEADLINE).await;
    relay.terminate();
    assert!(relay.wait_exit(DEADLINE).await.success());
    let stats = outbox_stats(&relay).await;
    assert_eq!(stats.get("gone"), Some(&(3, 0)), "{stats:?}");
}

/// A target added by a reload gets a worker, and its series in /metrics.
#[tokio::test]
async fn an_added_target_gets_a_worker_and_its_metrics() {
    let stream = StreamServer::start().await;
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    let one = RelayConfig::new(&stream)
        .http_target("a", &a, "concurrency = 1")
        .route(route("all").targets(&["a"]))
        .tail(&server_table(None));
    let relay = start(&one, &stream).await;
    let two = RelayConfig::new(&stream)
        .http_target("b", &b, "concurrency = 1")
        .http_target("a", &a, "concurrency = 1")
        .route(route("all").targets(&["a", "b"]))
        .tail(&server_table(None));
    let line = reload(&relay, &two).await;
    assert!(line.contains("targets added: b"), "{line}");
    stream.send_event(&tweet_event("1"));
    a.wait_for_tweet_ids(&ids(&["1"]), DEADLINE).await;
    b.wait_for_tweet_ids(&ids(&["1"]), DEADLINE).await;
    Http::of(&relay)
        .await
        .wait_for_metrics(
            &[
                (
                    "badger_relay_deliveries_total{target=\"b\",outcome=\"delivered\"}",
                    1.0,
                ),
                (
                    "badger_relay_deliveries_total{target=\"a\",outcome=\"delivered\"}",
                    1.0,
                ),
            ],
            DEADLINE,
        )
        .await;
}

/// An unchanged `[source]` keeps its connection through a reload; a changed one
/// reconnects with the new settings.
#[tokio::test]
async fn a_changed_source_reconnects_and_an_unchanged_one_stays_connected() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let config = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]));
    let relay = start(&config, &stream).await;

    let line = reload(
        &relay,
        &config.clone().route(route("more").targets(&["hook"])),
    )
    .await;
    assert_eq!(field(&line, "source_reconnect"), false);
    stream.send_event(&tweet_event("1"));
    hook.wait_for_tweet_ids(&ids(&["1"]), DEADLINE).await;
    assert_eq!(stream.connections(), 1);

    let line = reload(&relay, &config.clone().idle_timeout("45s")).await;
    assert!(line.contains("source reconnects"), "{line}");
    stream.wait_for_connections(2, DEADLINE).await;
    stream.send_event(&tweet_event("2"));
    hook.wait_for_tweet_ids(&ids(&["1", "2"]), DEADLINE).await;
}

/// An `[outbox]` change needs a restart: the reload is refused whole (its route change
/// too), the log says so, and the metric counts it as not applied.
#[tokio::test]
async fn an_outbox_change_is_refused_and_nothing_of_that_reload_applies() {
    let stream = StreamServer::start().await;
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    let config = RelayConfig::new(&stream)
        .http_target("a", &a, "concurrency = 1")
        .http_target("b", &b, "concurrency = 1")
        .route(route("all").targets(&["a"]))
        .tail(&server_table(None));
    let mut relay = start(&config, &stream).await;
    let http = Http::of(&relay).await;

    let mut changed = config.clone();
    changed.outbox_extra = "dedupe_window = \"1h\"".into();
    changed.routes = vec![route("all").targets(&["b"])];
    let line = reload(&relay, &changed).await;
    assert!(line.contains("Config reload refused"), "{line}");
    assert!(
        line.contains("[outbox] changed, which needs a restart"),
        "{line}"
    );
    assert!(line.contains("running config kept"), "{line}");
    http.wait_for_metrics(
        &[
            ("badger_relay_config_reloads_total{result=\"invalid\"}", 1.0),
            ("badger_relay_config_reloads_total{result=\"ok\"}", 0.0),
        ],
        DEADLINE,
    )
    .await;
    stream.send_event(&tweet_event("1"));
    a.wait_for_tweet_ids(&ids(&["1"]), DEADLINE).await;
    assert!(b.requests().is_empty());
    assert!(relay.is_running());
}

/// A `[server] listen` change needs a restart too.
#[tokio::test]
async fn a_listen_change_is_refused_as_needing_a_restart() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let config = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(None));
    let relay = start(&config, &stream).await;
    let moved = config.clone().tail("[server]\nlisten = \"127.0.0.1:1\"\n");
    let line = reload(&relay, &moved).await;
    assert!(line.contains("Config reload refused"), "{line}");
    assert!(line.contains("[server] listen"), "{line}");
    assert!(line.contains("needs a restart"), "{line}");
    let http = Http::of(&relay).await;
    http.wait_for_status("/healthz", 200, DEADLINE).await;
    stream.send_event(&tweet_event("1"));
    hook.wait_for_tweet_ids(&ids(&["1"]), DEADLINE).await;
    relay.assert_logs_free_of(API_KEY);
}
