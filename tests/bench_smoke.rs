//! The benchmark's own code (examples/bench), run end to end on a tiny N against the
//! debug binary, so that it cannot rot. It asserts that every part completes and that
//! every delivery is reported (exactly once, byte for byte), never a timing.

#[path = "../examples/bench/mod.rs"]
#[allow(dead_code)]
mod bench;
// support/mod.rs allows dead code itself; repeating it here is clippy's
// duplicated_attributes.
mod support;

use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_runs_and_reports_every_delivery() {
    let opts = bench::Options {
        relay: PathBuf::from(env!("CARGO_BIN_EXE_badger-relay")),
        events: 300,
        repeat: 1,
        latency_rate: 200,
        latency_secs: 0.5,
        warmup_secs: 0.05,
        pending: 400,
        memory_pending: None,
        concurrency: 4,
        routing_secs: 0.01,
        routing_routes: vec![1, 100],
        modes: Vec::new(),
        // The nats backend too (a real nats-server; `.ci/run` installs it).
        nats_server: Some(support::nats::bin()),
        // No bench binary here: the floor with sled runs in this process.
        floor_exe: None,
    };
    let report = bench::run(&opts).await.expect("the bench sets up");
    let table = report.table();
    println!("{table}");
    assert!(report.errors.is_empty(), "{:#?}", report.errors);

    // Routing: each route count, 100 again with `where` on half, and the parse row.
    assert_eq!(report.routing.len(), 4);
    assert!(report.routing.iter().all(|r| r.events_per_s > 0.0));

    // Throughput: relay (sled), relay (nats), ceiling and the floor with sled, 1 and 3
    // targets, every delivery once, intact.
    assert_eq!(report.throughput.len(), 8);
    for t in &report.throughput {
        assert_eq!(t.deliveries, 300 * t.targets as u64);
        assert_eq!(t.runs.len(), 1);
        assert!(t.deliveries_per_s > 0.0);
        assert_eq!(
            (t.duplicates, t.bad, t.missing_webhook_id),
            (0, 0, 0),
            "{t:?}"
        );
    }
    assert_eq!(report.ratios.len(), 2);
    assert!(
        report
            .ratios
            .iter()
            .all(|r| r.sled_floor_ratio.is_some() && r.relay_per_sled_floor.is_some()),
        "{:?}",
        report.ratios
    );

    // Latency: relay (sled), relay (nats), ceiling and the floor with sled, every event
    // delivered, the warm-up left out.
    assert_eq!(report.latency.len(), 4);
    for l in &report.latency {
        assert_eq!(l.delivered, 100, "{l:?}");
        assert_eq!(l.samples, 100 - l.warmup_events);
        assert_eq!((l.duplicates, l.bad), (0, 0));
        assert!(l.p50_ms <= l.p99_ms && l.p99_ms <= l.max_ms);
    }

    // Recovery: the whole backlog on disk, then delivered, and nothing left.
    assert_eq!(report.recovery.len(), 1);
    let r = &report.recovery[0];
    assert_eq!(
        (r.on_disk_pending, r.on_disk_dead, r.delivered),
        (400, 0, 400)
    );
    assert_eq!(
        (r.duplicates, r.bad, r.left_pending, r.left_dead),
        (0, 0, 0, 0)
    );

    // Memory: one row per relay run with a peak RSS.
    assert_eq!(report.memory.len(), 2 + 1 + 2);
    assert!(report.memory.iter().all(|m| m.peak_rss_mib > 0.0));

    // The report renders, and names every goal it could check.
    assert!(table.contains("GOALS"));
    assert!(serde_json::to_string(&report).is_ok());
    assert!(!report.goals.is_empty());
}
