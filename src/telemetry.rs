//! Logs and metrics, in one place.
//!
//! Logs go to stderr, as text or as one JSON object per line, with stable field names
//! (`target`, `delivery_id`, `tweet_id`, `attempt`, `status`, `error`). ERROR is kept for
//! data loss or for something an operator must fix.
//!
//! Metrics are plain atomics, rendered as Prometheus text by [`Metrics::render`]: the set
//! is small and fixed, and owning it keeps the names in one list and lets tests read
//! counts directly.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Install the global subscriber: `RUST_LOG` (default `info`), to stderr.
///
/// By default sled's own log lines are off: every error sled reports it also returns to
/// the outbox, which says it once, with the path and what it was doing (sled alone logs
/// four ERROR lines for one full disk). `RUST_LOG=info,sled=debug` shows them.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sled=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .try_init(),
    };
}

/// Colour codes only for a person at a terminal: never in a file, a pipe or a journal,
/// and never when `NO_COLOR` is set to anything but the empty string (no-color.org).
fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// "a: b: c" from an error and its sources, for one log field.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds, in seconds, of the delivery duration buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket of `BUCKETS` (not cumulative).
    buckets: [AtomicU64; BUCKETS.len()],
    /// Observations in all.
    count: AtomicU64,
    /// Their sum, in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

/// One target's series.
#[derive(Debug, Default)]
pub struct TargetMetrics {
    /// Deliveries answered 2xx.
    pub delivered: Counter,
    /// Failed attempts that will be retried.
    pub retried: Counter,
    /// Deliveries moved to the dead letters.
    pub dead: Counter,
    /// Deliveries not sent because their tweet was older than `stale_after`
    /// (`stale = "drop"`).
    pub stale: Counter,
    /// Deliveries waiting in the outbox.
    pub pending: Gauge,
    /// Dead letters in the outbox.
    pub dead_letters: Gauge,
    /// Request-to-answer times.
    pub duration: Histogram,
}

/// Every metric the process exposes.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events from the WebSocket.
    pub received_stream: Counter,
    /// Events from `/ingest`.
    pub received_ingest: Counter,
    /// Frames and bodies that are not events.
    pub events_invalid: Counter,
    /// Events some target had seen within the dedupe window.
    pub events_duplicate: Counter,
    /// Events no route matched.
    pub events_unrouted: Counter,
    /// 1 while the stream is connected.
    pub source_connected: Gauge,
    /// Reconnects of the stream.
    pub source_reconnects: Counter,
    /// 1 while the outbox can store events, 0 while it cannot (full or failing disk).
    pub outbox_writable: Gauge,
    /// Set by an outbox on a shared engine (NATS): the two series below are rendered.
    pub engine: std::sync::atomic::AtomicBool,
    /// 1 while the outbox's engine (NATS JetStream) is connected.
    pub engine_connected: Gauge,
    /// Events in the local spool, waiting for the engine to acknowledge them.
    pub spool_pending: Gauge,
    /// Config reloads applied.
    pub reloads_ok: Counter,
    /// Config reloads refused: an invalid file, or a change that needs a restart.
    pub reloads_invalid: Counter,
    /// Per target slot (the config's order at start, then targets added by reloads):
    /// name and series. Grows, never shrinks: a removed target's deliveries may still
    /// be pending, and its gauges say so.
    targets: std::sync::RwLock<Vec<(String, Arc<TargetMetrics>)>>,
}

impl Metrics {
    pub fn new(target_names: impl IntoIterator<Item = String>) -> Metrics {
        Metrics {
            targets: std::sync::RwLock::new(
                target_names
                    .into_iter()
                    .map(|n| (n, Arc::default()))
                    .collect(),
            ),
            ..Metrics::default()
        }
    }

    pub fn target(&self, index: usize) -> Arc<TargetMetrics> {
        self.slots()[index].1.clone()
    }

    /// Series for the slots of `names` beyond those there are (targets added by a
    /// reload; `names` lists every slot, see [`crate::reload`]).
    pub(crate) fn add_targets(&self, names: &[String]) {
        let mut targets = self.targets.write().unwrap_or_else(|e| e.into_inner());
        let have = targets.len();
        targets.extend(names.iter().skip(have).map(|n| (n.clone(), Arc::default())));
    }

    fn slots(&self) -> std::sync::RwLockReadGuard<'_, Vec<(String, Arc<TargetMetrics>)>> {
        self.targets.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Prometheus text exposition format 0.0.4. Target names are validated to
    /// `[A-Za-z0-9_.-]` at start-up, so they need no escaping as label values.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "badger_relay_events_received_total",
            "counter",
            "Events received, by source.",
        );
        let _ = writeln!(
            out,
            "badger_relay_events_received_total{{source=\"stream\"}} {}",
            self.received_stream.get()
        );
        let _ = writeln!(
            out,
            "badger_relay_events_received_total{{source=\"ingest\"}} {}",
            self.received_ingest.get()
        );
        simple(
            &mut out,
            "badger_relay_events_invalid_total",
            "counter",
            "Frames or bodies that were not a valid event.",
            self.events_invalid.get() as i64,
        );
        simple(
            &mut out,
            "badger_relay_events_duplicate_total",
            "counter",
            "Events skipped for at least one target as a duplicate within the dedupe window.",
            self.events_duplicate.get() as i64,
        );
        simple(
            &mut out,
            "badger_relay_events_unrouted_total",
            "counter",
            "Events no route matched.",
            self.events_unrouted.get() as i64,
        );
        simple(
            &mut out,
            "badger_relay_source_connected",
            "gauge",
            "1 while the stream is connected.",
            self.source_connected.get(),
        );
        simple(
            &mut out,
            "badger_relay_source_reconnects_total",
            "counter",
            "Stream reconnects.",
            self.source_reconnects.get() as i64,
        );
        simple(
            &mut out,
            "badger_relay_outbox_writable",
            "gauge",
            "1 while the outbox can store events, 0 while it cannot (full or failing disk).",
            self.outbox_writable.get(),
        );
        header(
            &mut out,
            "badger_relay_config_reloads_total",
            "counter",
            "Config reloads (SIGHUP), by result: ok (applied) or invalid (kept the running config).",
        );
        for (result, n) in [("ok", &self.reloads_ok), ("invalid", &self.reloads_invalid)] {
            let _ = writeln!(
                out,
                "badger_relay_config_reloads_total{{result=\"{result}\"}} {}",
                n.get()
            );
        }

        header(
            &mut out,
            "badger_relay_deliveries_total",
            "counter",
            "Delivery attempts by outcome.",
        );
        for (name, t) in self.slots().iter() {
            for (outcome, c) in [
                ("delivered", &t.delivered),
                ("retried", &t.retried),
                ("dead", &t.dead),
                ("stale", &t.stale),
            ] {
                let _ = writeln!(
                    out,
                    "badger_relay_deliveries_total{{target=\"{name}\",outcome=\"{outcome}\"}} {}",
                    c.get()
                );
            }
        }
        header(
            &mut out,
            "badger_relay_delivery_duration_seconds",
            "histogram",
            "Time from sending a request to its answer.",
        );
        for (name, t) in self.slots().iter() {
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += t.duration.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "badger_relay_delivery_duration_seconds_bucket{{target=\"{name}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = t.duration.count.load(Ordering::Relaxed);
            let sum = t.duration.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "badger_relay_delivery_duration_seconds_bucket{{target=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "badger_relay_delivery_duration_seconds_sum{{target=\"{name}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "badger_relay_delivery_duration_seconds_count{{target=\"{name}\"}} {count}"
            );
        }
        header(
            &mut out,
            "badger_relay_outbox_pending",
            "gauge",
            "Deliveries waiting in the outbox.",
        );
        for (name, t) in self.slots().iter() {
            let _ = writeln!(
                out,
                "badger_relay_outbox_pending{{target=\"{name}\"}} {}",
                t.pending.get()
            );
        }
        header(
            &mut out,
            "badger_relay_outbox_dead",
            "gauge",
            "Dead letters in the outbox.",
        );
        for (name, t) in self.slots().iter() {
            let _ = writeln!(
                out,
                "badger_relay_outbox_dead{{target=\"{name}\"}} {}",
                t.dead_letters.get()
            );
        }
        if self.engine.load(Ordering::Relaxed) {
            simple(
                &mut out,
                "badger_relay_engine_connected",
                "gauge",
                "1 while the outbox's engine (NATS JetStream) is connected.",
                self.engine_connected.get(),
            );
            simple(
                &mut out,
                "badger_relay_spool_pending",
                "gauge",
                "Events in the local spool waiting for the engine to acknowledge them.",
                self.spool_pending.get(),
            );
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn simple(out: &mut String, name: &str, kind: &str, help: &str, value: i64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
        assert!(!colour(false, Some("1".into())));
    }

    #[test]
    fn renders_every_contract_metric() {
        let m = Metrics::new(["slack".to_string()]);
        m.received_stream.add(3);
        m.target(0).delivered.add(2);
        m.target(0)
            .duration
            .observe(std::time::Duration::from_millis(3));
        let text = m.render();
        for needle in [
            "badger_relay_events_received_total{source=\"stream\"} 3",
            "badger_relay_events_received_total{source=\"ingest\"} 0",
            "badger_relay_events_invalid_total 0",
            "badger_relay_events_duplicate_total 0",
            "badger_relay_events_unrouted_total 0",
            "badger_relay_deliveries_total{target=\"slack\",outcome=\"delivered\"} 2",
            "badger_relay_deliveries_total{target=\"slack\",outcome=\"dead\"} 0",
            "badger_relay_delivery_duration_seconds_bucket{target=\"slack\",le=\"0.005\"} 1",
            "badger_relay_delivery_duration_seconds_count{target=\"slack\"} 1",
            "badger_relay_outbox_pending{target=\"slack\"} 0",
            "badger_relay_outbox_dead{target=\"slack\"} 0",
            "badger_relay_source_connected 0",
            "badger_relay_source_reconnects_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
