//! The report: every figure as JSON, and a table of the figures next to the goals.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::Options;
use super::routing::RoutingResult;
use super::scenarios::{Latency, Pipe, Recovery, Throughput};

/// Where the figures were taken.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    pub memory_mib: u64,
    /// `/proc/loadavg` when the bench started: the cores are shared, a busy neighbour
    /// shows up here.
    pub loadavg_start: String,
    pub loadavg_end: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
                .unwrap_or_default(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            memory_mib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib / 1024),
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
        }
    }
}

/// Peak RSS of the relay in one run.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRow {
    pub run: String,
    pub peak_rss_mib: f64,
}

/// The relay's throughput as a share of the forwarder's.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub targets: usize,
    pub relay_per_s: f64,
    pub ceiling_per_s: f64,
    pub ratio: f64,
    /// The forwarder keeping events in sled (`--only ceiling`): the floor with sled, as
    /// a ratio of the ceiling, and the relay as a ratio of it.
    pub sled_floor_per_s: Option<f64>,
    pub sled_floor_ratio: Option<f64>,
    pub relay_per_sled_floor: Option<f64>,
}

/// One goal of the issue, and where the figure stands.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub name: String,
    pub figure: f64,
    pub unit: &'static str,
    /// `>=` or `<=`.
    pub op: &'static str,
    pub goal: f64,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: String,
    pub seconds: f64,
    pub machine: Machine,
    pub options: Options,
    pub routing: Vec<RoutingResult>,
    pub throughput: Vec<Throughput>,
    pub ratios: Vec<Ratio>,
    pub latency: Vec<Latency>,
    pub recovery: Vec<Recovery>,
    pub memory: Vec<MemoryRow>,
    pub goals: Vec<Goal>,
    pub errors: Vec<String>,
}

const MIB: f64 = 1024.0;

impl Report {
    pub fn new(opts: &Options, machine: Machine) -> Report {
        Report {
            started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            seconds: 0.0,
            machine,
            options: opts.clone(),
            routing: Vec::new(),
            throughput: Vec::new(),
            ratios: Vec::new(),
            latency: Vec::new(),
            recovery: Vec::new(),
            memory: Vec::new(),
            goals: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn throughput_of(&self, pipe: Pipe, targets: usize) -> Option<&Throughput> {
        self.throughput
            .iter()
            .find(|t| t.pipeline == pipe && t.targets == targets)
    }

    /// Derive the memory rows, the ratios and the goals from the runs.
    pub fn finish(&mut self, took: Duration) {
        self.seconds = took.as_secs_f64();
        self.machine.loadavg_end = loadavg();
        for t in self.throughput.iter().filter(|t| t.pipeline == Pipe::Relay) {
            if let Some(kib) = t.peak_rss_kib {
                self.memory.push(MemoryRow {
                    run: format!("throughput, {} target(s), {} events", t.targets, t.events),
                    peak_rss_mib: kib as f64 / MIB,
                });
            }
        }
        for l in self.latency.iter().filter(|l| l.pipeline == Pipe::Relay) {
            if let Some(kib) = l.peak_rss_kib {
                self.memory.push(MemoryRow {
                    run: format!("latency, {}/s", l.rate),
                    peak_rss_mib: kib as f64 / MIB,
                });
            }
        }
        for r in &self.recovery {
            self.memory.push(MemoryRow {
                run: format!("taking in {} while the target is down", r.pending),
                peak_rss_mib: r.fill_peak_rss_kib as f64 / MIB,
            });
            self.memory.push(MemoryRow {
                run: format!("draining {} pending", r.pending),
                peak_rss_mib: r.drain_peak_rss_kib as f64 / MIB,
            });
        }
        for targets in [1, 3] {
            if let (Some(r), Some(c)) = (
                self.throughput_of(Pipe::Relay, targets),
                self.throughput_of(Pipe::Ceiling, targets),
            ) {
                let floor = self
                    .throughput_of(Pipe::SledFloor, targets)
                    .map(|f| f.deliveries_per_s);
                self.ratios.push(Ratio {
                    targets,
                    relay_per_s: r.deliveries_per_s,
                    ceiling_per_s: c.deliveries_per_s,
                    ratio: r.deliveries_per_s / c.deliveries_per_s,
                    sled_floor_per_s: floor,
                    sled_floor_ratio: floor.map(|f| f / c.deliveries_per_s),
                    relay_per_sled_floor: floor.map(|f| r.deliveries_per_s / f),
                });
            }
        }
        self.goals = self.goals();
    }

    fn goals(&self) -> Vec<Goal> {
        let mut goals = Vec::new();
        let mut push = |name: String, figure: f64, unit, op, goal: f64| {
            let met = if op == ">=" {
                figure >= goal
            } else {
                figure <= goal
            };
            goals.push(Goal {
                name,
                figure,
                unit,
                op,
                goal,
                met,
            });
        };
        for targets in [1, 3] {
            if let Some(t) = self.throughput_of(Pipe::Relay, targets) {
                push(
                    format!("throughput, {targets} target(s)"),
                    t.deliveries_per_s,
                    "deliveries/s",
                    ">=",
                    30_000.0,
                );
            }
        }
        for r in &self.ratios {
            push(
                format!("relay / ceiling, {} target(s)", r.targets),
                r.ratio,
                "",
                ">=",
                0.6,
            );
        }
        if let Some(l) = self.latency.iter().find(|l| l.pipeline == Pipe::Relay) {
            push(
                format!("added latency p50 at {}/s", l.rate),
                l.p50_ms,
                "ms",
                "<=",
                0.6,
            );
            push(
                format!("added latency p99 at {}/s", l.rate),
                l.p99_ms,
                "ms",
                "<=",
                1.5,
            );
        }
        if let Some(r) = self
            .recovery
            .iter()
            .find(|r| r.pending == self.options.pending)
        {
            push(
                format!("recovery: first delivery, {} pending", r.pending),
                r.first_delivery_ms / 1e3,
                "s",
                "<=",
                0.5,
            );
            push(
                format!("recovery: drain, {} pending", r.pending),
                r.drain_per_s,
                "deliveries/s",
                ">=",
                30_000.0,
            );
        }
        // The nats backend (issue 10): against sled measured in the same run.
        if let Some(n) = self.throughput_of(Pipe::Nats, 1) {
            push(
                "nats backend: throughput, 1 target".into(),
                n.deliveries_per_s,
                "deliveries/s",
                ">=",
                10_000.0,
            );
            if let Some(s) = self.throughput_of(Pipe::Relay, 1) {
                push(
                    "nats backend / sled, 1 target".into(),
                    n.deliveries_per_s / s.deliveries_per_s,
                    "",
                    ">=",
                    0.5,
                );
            }
            if let Some(kib) = n.peak_rss_kib {
                push(
                    "nats backend: peak RSS, throughput".into(),
                    kib as f64 / MIB,
                    "MiB",
                    "<=",
                    40.0,
                );
            }
        }
        if let Some(l) = self.latency.iter().find(|l| l.pipeline == Pipe::Nats) {
            push(
                format!("nats backend: added latency p50 at {}/s", l.rate),
                l.p50_ms,
                "ms",
                "<=",
                2.0,
            );
            push(
                format!("nats backend: added latency p99 at {}/s", l.rate),
                l.p99_ms,
                "ms",
                "<=",
                5.0,
            );
        }
        let throughput_rss = self
            .throughput
            .iter()
            .filter(|t| t.pipeline == Pipe::Relay)
            .filter_map(|t| t.peak_rss_kib)
            .max();
        if let Some(kib) = throughput_rss {
            push(
                "peak RSS, throughput runs".into(),
                kib as f64 / MIB,
                "MiB",
                "<=",
                30.0,
            );
        }
        if let Some(big) = self.options.memory_pending
            && let Some(r) = self.recovery.iter().find(|r| r.pending == big)
        {
            push(
                format!("peak RSS, {big} pending (taking in, draining)"),
                r.fill_peak_rss_kib.max(r.drain_peak_rss_kib) as f64 / MIB,
                "MiB",
                "<=",
                64.0,
            );
        }
        if let Some(r) = self
            .routing
            .iter()
            .find(|r| r.stage == "route" && r.routes == 100)
        {
            push(
                "routing, 100 routes".into(),
                r.events_per_s,
                "events/s",
                ">=",
                1_000_000.0,
            );
        }
        if let Some(r) = self
            .routing
            .iter()
            .find(|r| r.stage == "route-where" && r.routes == 100)
        {
            push(
                "routing, 100 routes, where on 50".into(),
                r.events_per_s,
                "events/s",
                ">=",
                1_000_000.0,
            );
        }
        goals
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "badger-relay bench, {} ({} cores, {}), load {} -> {}, {:.0} s",
            self.started_at, m.cores, m.cpu, m.loadavg_start, m.loadavg_end, self.seconds
        );
        let _ = writeln!(
            s,
            "relay: {}, http targets with concurrency = {}",
            self.options.relay.display(),
            self.options.concurrency
        );
        if !self.routing.is_empty() {
            let _ = writeln!(
                s,
                "\nROUTING (one thread)          events/s      ns/event   targets/event"
            );
            for r in &self.routing {
                let what = match r.stage {
                    "parse" => "Event::parse".to_string(),
                    "route-where" => format!("route, {}, where on half", r.routes),
                    _ => format!("route, {} route(s)", r.routes),
                };
                let _ = writeln!(
                    s,
                    "  {what:<26} {:>12}  {:>10.0}   {:>6.2}",
                    thousands(r.events_per_s),
                    r.ns_per_event,
                    r.targets_per_event
                );
            }
        }
        if !self.throughput.is_empty() {
            let _ = writeln!(
                s,
                "\nTHROUGHPUT                       deliveries/s   seconds   stream taken in   relay CPU/delivery   runs (deliveries/s)"
            );
            for t in &self.throughput {
                let runs: Vec<String> = t
                    .runs
                    .iter()
                    .map(|r| thousands(r.deliveries_per_s))
                    .collect();
                let median = t
                    .runs
                    .iter()
                    .find(|r| r.deliveries_per_s == t.deliveries_per_s);
                let cpu = median
                    .and_then(|r| r.relay_cpu_us_per_delivery)
                    .map_or("-".to_string(), |us| format!("{us:.0} µs"));
                let _ = writeln!(
                    s,
                    "  {:<7} {} target(s), {:>7} events {:>10}   {:>7.2}   {:>13.2} s   {cpu:>18}   {}{}",
                    t.pipeline.name(),
                    t.targets,
                    thousands(t.events as f64),
                    thousands(t.deliveries_per_s),
                    t.seconds,
                    median.map_or(0.0, |r| r.ingest_seconds),
                    runs.join(" "),
                    flags(t.duplicates, t.bad, t.missing_webhook_id)
                );
            }
            for r in &self.ratios {
                let _ = writeln!(
                    s,
                    "  relay / ceiling, {} target(s): {:.2}{}",
                    r.targets,
                    r.ratio,
                    match (r.sled_floor_ratio, r.relay_per_sled_floor) {
                        (Some(f), Some(rf)) =>
                            format!("; sled floor / ceiling {f:.2}; relay / sled floor {rf:.2}"),
                        _ => String::new(),
                    }
                );
            }
        }
        if !self.latency.is_empty() {
            let _ = writeln!(
                s,
                "\nADDED LATENCY (ms)           p50      p90      p99      max     mean   samples"
            );
            for l in &self.latency {
                let _ = writeln!(
                    s,
                    "  {:<7} at {:>4}/s, {:>4.1} s{:>7.3}  {:>7.3}  {:>7.3}  {:>7.3}  {:>7.3}   {}{}",
                    l.pipeline.name(),
                    l.rate,
                    l.seconds,
                    l.p50_ms,
                    l.p90_ms,
                    l.p99_ms,
                    l.max_ms,
                    l.mean_ms,
                    l.samples,
                    flags(l.duplicates, l.bad, 0)
                );
            }
        }
        if !self.recovery.is_empty() {
            let _ = writeln!(
                s,
                "\nRECOVERY     taken in at   on disk   first delivery   drain/s    drained in   left"
            );
            for r in &self.recovery {
                let _ = writeln!(
                    s,
                    "  {:>9}  {:>9}/s  {:>9}   {:>9.0} ms   {:>9}   {:>8.2} s   {} pending{}",
                    thousands(r.pending as f64),
                    thousands(r.fill_events_per_s),
                    thousands(r.on_disk_pending as f64),
                    r.first_delivery_ms,
                    thousands(r.drain_per_s),
                    r.total_seconds,
                    r.left_pending,
                    flags(r.duplicates, r.bad, 0)
                );
            }
        }
        if !self.memory.is_empty() {
            let _ = writeln!(s, "\nPEAK RSS OF THE RELAY (VmHWM)");
            for r in &self.memory {
                let _ = writeln!(s, "  {:<48} {:>7.1} MiB", r.run, r.peak_rss_mib);
            }
        }
        if !self.goals.is_empty() {
            let _ = writeln!(s, "\nGOALS");
            for g in &self.goals {
                let verdict = if g.met {
                    "met".to_string()
                } else {
                    let off = (g.figure / g.goal - 1.0) * 100.0;
                    format!("MISSED ({off:+.0}%)")
                };
                let _ = writeln!(
                    s,
                    "  {:<46} {:>12} {:<12} {} {:<10} {verdict}",
                    g.name,
                    figure(g.figure),
                    g.unit,
                    g.op,
                    figure(g.goal),
                );
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\nERRORS");
            for e in &self.errors {
                let _ = writeln!(s, "  {e}");
            }
        }
        s
    }
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn flags(duplicates: u64, bad: u64, missing_id: u64) -> String {
    let mut out = String::new();
    if duplicates > 0 {
        let _ = write!(out, "  [{duplicates} duplicates]");
    }
    if bad > 0 {
        let _ = write!(out, "  [{bad} bad bodies]");
    }
    if missing_id > 0 {
        let _ = write!(out, "  [{missing_id} without webhook-id]");
    }
    out
}

fn figure(v: f64) -> String {
    if v >= 1000.0 {
        thousands(v)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// 1234567.8 → "1,234,568".
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
