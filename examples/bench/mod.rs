//! The benchmark of issue 5, shared by `examples/bench.rs` (the command) and
//! `tests/bench_smoke.rs` (the same code on a tiny N, so it cannot rot).
//!
//! On loopback, in this process: a WebSocket stream server ([`stream`]) and an HTTP
//! receiver ([`receiver`]). Between them either the real `badger-relay` binary as a
//! separate process ([`relay`]) or a minimal in-process forwarder ([`ceiling`]).
//! [`scenarios`] runs throughput, latency and recovery through them; [`routing`] times
//! the route matcher alone; [`report`] renders the table and the goals.

pub mod ceiling;
pub mod events;
pub mod nats;
pub mod receiver;
pub mod relay;
pub mod report;
pub mod routing;
pub mod scenarios;
pub mod stream;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use report::{Machine, Report};
use scenarios::{Bench, Pipe};

/// A part of the bench (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Throughput,
    Latency,
    Recovery,
    Memory,
    Ceiling,
    Routing,
}

impl Mode {
    pub const ALL: [Mode; 6] = [
        Mode::Routing,
        Mode::Throughput,
        Mode::Ceiling,
        Mode::Latency,
        Mode::Recovery,
        Mode::Memory,
    ];

    pub fn parse(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown mode {s:?}: expected throughput, latency, recovery, memory, ceiling or routing")
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Throughput => "throughput",
            Mode::Latency => "latency",
            Mode::Recovery => "recovery",
            Mode::Memory => "memory",
            Mode::Ceiling => "ceiling",
            Mode::Routing => "routing",
        }
    }
}

/// Everything a bench run is told.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// The `badger-relay` binary under test.
    pub relay: PathBuf,
    /// Events per throughput run.
    pub events: u64,
    /// Throughput runs per configuration (the median is reported).
    pub repeat: usize,
    /// Latency run: events per second, for how long, and how much of the start is warm-up.
    pub latency_rate: u64,
    pub latency_secs: f64,
    pub warmup_secs: f64,
    /// Recovery run: deliveries pending on disk.
    pub pending: u64,
    /// Memory run: deliveries pending on disk (`None`: no such run).
    pub memory_pending: Option<u64>,
    /// `concurrency` of every http target (and of the forwarder).
    pub concurrency: usize,
    /// Time per routing case.
    pub routing_secs: f64,
    /// Route counts of the routing micro-benchmark.
    pub routing_routes: Vec<usize>,
    /// What to run; every mode when empty.
    pub modes: Vec<Mode>,
    /// A nats-server binary: the throughput and latency runs are then also made with
    /// `[outbox] backend = "nats"` on a fresh JetStream server, beside sled.
    pub nats_server: Option<PathBuf>,
    /// The program started as `PROGRAM sled-floor ...` for the floor with sled: the
    /// bench binary itself. `None` runs the floor in this process instead (the smoke
    /// test, which has no bench binary to start; it then has no CPU or RSS figures).
    pub floor_exe: Option<PathBuf>,
}

impl Options {
    /// The figures of BENCHMARKS.md.
    pub fn full(relay: PathBuf) -> Options {
        Options {
            relay,
            events: 50_000,
            repeat: 3,
            latency_rate: 200,
            latency_secs: 20.0,
            warmup_secs: 1.0,
            pending: 100_000,
            memory_pending: Some(1_000_000),
            concurrency: 16,
            routing_secs: 1.0,
            routing_routes: vec![1, 100, 1_000],
            modes: Vec::new(),
            nats_server: None,
            floor_exe: std::env::current_exe().ok(),
        }
    }

    /// A smoke run: tiny sizes, no 1M run.
    pub fn quick(relay: PathBuf) -> Options {
        Options {
            events: 2_000,
            repeat: 1,
            latency_secs: 2.0,
            warmup_secs: 0.25,
            pending: 5_000,
            memory_pending: None,
            routing_secs: 0.2,
            ..Options::full(relay)
        }
    }

    pub fn runs(&self, mode: Mode) -> bool {
        self.modes.is_empty() || self.modes.contains(&mode)
    }
}

/// A progress line on stderr (stdout carries the table and the JSON).
pub fn progress(line: &str) {
    eprintln!("{line}");
}

/// Run what `opts` asks for. A part that fails is reported in `errors` and the rest
/// still runs; only a failure to set up at all is an `Err`.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut report = Report::new(opts, Machine::probe());
    let mut bench = Bench::new(opts)?;
    let fail = |report: &mut Report, what: &str, e: anyhow::Error| {
        progress(&format!("  FAILED: {what}: {e:#}"));
        report.errors.push(format!("{what}: {e:#}"));
    };

    if opts.runs(Mode::Routing) {
        progress("routing: Router::route alone");
        let budget = Duration::from_secs_f64(opts.routing_secs);
        let routes = opts.routing_routes.clone();
        // A plain CPU loop: off the async workers.
        report.routing = tokio::task::spawn_blocking(move || routing::run(&routes, budget)).await?;
        for r in &report.routing {
            progress(&format!(
                "  {} ({} routes): {:.0} events/s, {:.0} ns/event",
                r.stage, r.routes, r.events_per_s, r.ns_per_event
            ));
        }
    }
    let nats = opts.nats_server.is_some();
    for (mode, pipe) in [
        (Mode::Throughput, Pipe::Relay),
        (Mode::Throughput, Pipe::Nats),
        (Mode::Ceiling, Pipe::Ceiling),
        (Mode::Ceiling, Pipe::SledFloor),
    ] {
        if !opts.runs(mode) || (pipe == Pipe::Nats && !nats) {
            continue;
        }
        for targets in [1, 3] {
            progress(&format!(
                "throughput: {} events through the {}, {targets} target(s)",
                opts.events,
                pipe.name()
            ));
            match bench.throughput(pipe, targets).await {
                Ok(t) => report.throughput.push(t),
                Err(e) => fail(
                    &mut report,
                    &format!("throughput {} {targets}t", pipe.name()),
                    e,
                ),
            }
        }
    }
    for (mode, pipe) in [
        (Mode::Latency, Pipe::Relay),
        (Mode::Latency, Pipe::Nats),
        (Mode::Ceiling, Pipe::Ceiling),
        (Mode::Ceiling, Pipe::SledFloor),
    ] {
        if !opts.runs(mode) || (pipe == Pipe::Nats && !nats) {
            continue;
        }
        progress(&format!(
            "latency: {}/s for {} s through the {}",
            opts.latency_rate,
            opts.latency_secs,
            pipe.name()
        ));
        match bench.latency(pipe).await {
            Ok(l) => report.latency.push(l),
            Err(e) => fail(&mut report, &format!("latency {}", pipe.name()), e),
        }
    }
    let mut backlogs = Vec::new();
    if opts.runs(Mode::Recovery) {
        backlogs.push(opts.pending);
    }
    if opts.runs(Mode::Memory) {
        backlogs.extend(opts.memory_pending);
    }
    for pending in backlogs {
        progress(&format!(
            "recovery: {pending} deliveries pending on disk, then restart"
        ));
        match bench.recovery(pending).await {
            Ok(r) => report.recovery.push(r),
            Err(e) => fail(&mut report, &format!("recovery {pending}"), e),
        }
    }
    report.finish(started.elapsed());
    Ok(report)
}
