//! The measured runs: throughput, latency and recovery, each through the relay (a
//! separate `badger-relay run` process) or through the in-process forwarder (the ceiling).
//!
//! Every wait is on a condition with a deadline (deliveries counted by the receiver, the
//! relay's own `/metrics`, `outbox stats`), never on a sleep; a relay that exits early
//! fails the run at once with the end of its log.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::Options;
use super::ceiling::{self, ForwardStats, Keep};
use super::nats::NatsServer;
use super::receiver::{Receiver, Tally};
use super::relay::{self, BlackHole, RelayConfig, RelayProcess, TargetSpec};
use super::stream::{Feed, StreamServer, nanos};

/// The relay's normal retry policy in the bench (nothing should fail; if something does,
/// it comes back quickly and shows up as a duplicate-free but slower run).
const RETRY: (&str, &str) = ("100ms", "1s");
/// How long a relay may take to connect to the stream.
const CONNECT_DEADLINE: Duration = Duration::from_secs(20);
/// How long a relay may take to stop after SIGTERM (its drain deadline is 10 s).
const STOP_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pipe {
    /// The relay with its default outbox (sled).
    Relay,
    /// The relay with `[outbox] backend = "nats"` on a local JetStream server.
    Nats,
    /// The in-process forwarder, no disk.
    Ceiling,
    /// The in-process forwarder keeping every event in sled as the relay must at least:
    /// the floor with sled (`ceiling.rs`).
    #[serde(rename = "sled-floor")]
    SledFloor,
}

impl Pipe {
    pub fn name(self) -> &'static str {
        match self {
            Pipe::Relay => "relay",
            Pipe::Nats => "nats",
            Pipe::Ceiling => "ceiling",
            Pipe::SledFloor => "sled-floor",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRun {
    /// First frame sent to last delivery received.
    pub seconds: f64,
    pub deliveries_per_s: f64,
    /// First frame sent to last frame written (how fast the pipe took the stream in).
    pub ingest_seconds: f64,
    pub peak_rss_kib: Option<u64>,
    pub relay: Option<Usage>,
    /// Relay CPU per delivery, in µs.
    pub relay_cpu_us_per_delivery: Option<f64>,
    /// CPU time of the bench process (stream server, receiver, forwarder) during the run.
    pub bench_cpu_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub pipeline: Pipe,
    pub targets: usize,
    pub events: u64,
    /// Expected per run: events × targets.
    pub deliveries: u64,
    /// The median run.
    pub deliveries_per_s: f64,
    pub seconds: f64,
    pub runs: Vec<ThroughputRun>,
    pub duplicates: u64,
    /// Bodies that were not byte for byte what the stream sent, or bad headers.
    pub bad: u64,
    /// Relay deliveries that came without a `webhook-id` header.
    pub missing_webhook_id: u64,
    pub peak_rss_kib: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub pipeline: Pipe,
    pub rate: u64,
    pub seconds: f64,
    pub events: u64,
    /// The first events (the warm-up) are delivered and checked but not in the figures.
    pub warmup_events: u64,
    pub samples: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub bad: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// The slowest deliveries: (seconds into the run when the frame was sent, ms added).
    pub worst: Vec<(f64, f64)>,
    pub peak_rss_kib: Option<u64>,
    pub relay: Option<Usage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub pending: u64,
    /// Filling: the relay takes `pending` events in while its target hangs.
    pub fill_seconds: f64,
    pub fill_events_per_s: f64,
    pub fill_peak_rss_kib: u64,
    pub fill: Usage,
    /// `outbox stats` after the fill relay was killed: pending and dead.
    pub on_disk_pending: u64,
    pub on_disk_dead: u64,
    /// Start of the second relay (spawn) to the first delivery received.
    pub first_delivery_ms: f64,
    /// First to last delivery.
    pub drain_seconds: f64,
    pub drain_per_s: f64,
    /// Spawn to last delivery.
    pub total_seconds: f64,
    pub delivered: u64,
    pub duplicates: u64,
    pub bad: u64,
    pub drain_peak_rss_kib: u64,
    pub drain: Usage,
    /// `outbox stats` after the draining relay stopped (should be 0, 0).
    pub left_pending: u64,
    pub left_dead: u64,
}

/// What a relay process used over its life, read just before it is stopped.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    /// VmHWM.
    pub peak_rss_kib: u64,
    /// User + system CPU time, all threads, start-up included.
    pub cpu_seconds: f64,
    /// Bytes written to storage (`/proc/PID/io` write_bytes).
    pub disk_write_bytes: u64,
}

impl Usage {
    fn of(relay: &RelayProcess) -> anyhow::Result<Usage> {
        Ok(Usage {
            peak_rss_kib: relay.peak_rss_kib()?,
            cpu_seconds: relay.cpu_seconds()?,
            disk_write_bytes: relay.disk_write_bytes()?,
        })
    }

    fn describe(&self, items: u64) -> String {
        format!(
            "relay peak RSS {:.1} MiB, CPU {:.2} s ({:.0} µs each), disk writes {:.0} MiB ({:.1} KiB each)",
            self.peak_rss_kib as f64 / 1024.0,
            self.cpu_seconds,
            self.cpu_seconds * 1e6 / items.max(1) as f64,
            self.disk_write_bytes as f64 / 1048576.0,
            self.disk_write_bytes as f64 / 1024.0 / items.max(1) as f64
        )
    }
}

/// A pipe being measured.
enum Running {
    Relay(Box<RelayProcess>),
    Ceiling(JoinHandle<anyhow::Result<()>>, Arc<ForwardStats>),
}

impl Running {
    fn check(&mut self) -> anyhow::Result<()> {
        match self {
            Running::Relay(r) => r.check_alive(),
            Running::Ceiling(task, _) if task.is_finished() => {
                bail!("the forwarder stopped early")
            }
            Running::Ceiling(..) => Ok(()),
        }
    }

    fn into_relay(self) -> RelayProcess {
        match self {
            Running::Relay(r) => *r,
            Running::Ceiling(..) => panic!("not a relay"),
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Running::Relay(r) => r.log_tail(),
            Running::Ceiling(_, stats) => format!("forwarder: {stats:?}"),
        }
    }

    /// Stop the pipe; what the relay used, read just before.
    async fn finish(self, feed: Feed) -> anyhow::Result<Option<Usage>> {
        match self {
            Running::Relay(r) => {
                let usage = Usage::of(&r)?;
                r.terminate(STOP_DEADLINE).await?;
                drop(feed);
                Ok(Some(usage))
            }
            Running::Ceiling(task, _) => {
                feed.close().await;
                tokio::time::timeout(STOP_DEADLINE, task)
                    .await
                    .map_err(|_| anyhow!("the forwarder did not stop"))???;
                Ok(None)
            }
        }
    }
}

pub struct Bench<'a> {
    pub opts: &'a Options,
    /// The clock origin of every `*_ns` figure (sent_ns in frames, arrivals).
    pub base: Instant,
    root: tempfile::TempDir,
    http: reqwest::Client,
    runs: u32,
}

pub fn target_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("t{i}")).collect()
}

fn secs(from_ns: u64, to_ns: u64) -> f64 {
    to_ns.saturating_sub(from_ns) as f64 / 1e9
}

impl<'a> Bench<'a> {
    pub fn new(opts: &'a Options) -> anyhow::Result<Bench<'a>> {
        Ok(Bench {
            opts,
            base: Instant::now(),
            root: tempfile::Builder::new()
                .prefix("badger-relay-bench-")
                .tempdir()?,
            http: reqwest::Client::new(),
            runs: 0,
        })
    }

    /// A fresh directory for one relay run (its config, log and outbox).
    fn dir(&mut self, name: &str) -> anyhow::Result<PathBuf> {
        self.runs += 1;
        let dir = self.root.path().join(format!("{:02}-{name}", self.runs));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Generous but bounded: 30 s plus 0.5 ms per delivery (a pipe slower than
    /// 2,000 deliveries/s is broken, not slow).
    fn deadline(deliveries: u64) -> Duration {
        Duration::from_secs(30) + Duration::from_micros(deliveries * 500)
    }

    fn relay_config(
        &self,
        dir: &std::path::Path,
        stream_url: String,
        server: std::net::SocketAddr,
        targets: Vec<TargetSpec>,
    ) -> RelayConfig {
        RelayConfig {
            stream_url,
            outbox: dir.join("outbox"),
            server,
            targets,
            concurrency: self.opts.concurrency,
            timeout: "10s",
            retry: RETRY,
            nats_url: None,
        }
    }

    async fn start(
        &mut self,
        pipe: Pipe,
        label: &str,
        stream: &StreamServer,
        targets: Vec<TargetSpec>,
    ) -> anyhow::Result<Running> {
        Ok(match (pipe, self.opts.floor_exe.clone()) {
            (Pipe::Relay | Pipe::Nats, _) => {
                let dir = self.dir(label)?;
                let mut config =
                    self.relay_config(&dir, stream.url(), relay::free_port().await?, targets);
                let nats = match (pipe, &self.opts.nats_server) {
                    (Pipe::Nats, Some(bin)) => Some(NatsServer::start(bin, &dir).await?),
                    (Pipe::Nats, None) => bail!("the nats runs need --nats-server"),
                    _ => None,
                };
                config.nats_url = nats.as_ref().map(|n| n.url.clone());
                let mut relay = RelayProcess::spawn(&self.opts.relay, &dir, &config).await?;
                relay.nats = nats;
                Running::Relay(Box::new(relay))
            }
            (Pipe::SledFloor, Some(exe)) => {
                let dir = self.dir(label)?;
                let urls: Vec<String> = targets.into_iter().map(|t| t.url).collect();
                let floor = RelayProcess::spawn_floor(
                    &exe,
                    &dir,
                    &stream.url(),
                    &urls,
                    self.opts.concurrency,
                )
                .await?;
                Running::Relay(Box::new(floor))
            }
            (Pipe::Ceiling | Pipe::SledFloor, _) => {
                let keep = match pipe {
                    Pipe::SledFloor => Keep::Sled(self.dir(label)?),
                    _ => Keep::Nothing,
                };
                let stats = Arc::new(ForwardStats::default());
                let urls = targets.into_iter().map(|t| t.url).collect();
                let task = ceiling::spawn(
                    stream.url(),
                    urls,
                    self.opts.concurrency,
                    stats.clone(),
                    keep,
                );
                Running::Ceiling(task, stats)
            }
        })
    }

    async fn accept(stream: &StreamServer, running: &mut Running) -> anyhow::Result<Feed> {
        match stream.accept(CONNECT_DEADLINE).await {
            Ok(feed) => Ok(feed),
            Err(e) => {
                running.check()?;
                Err(e.context(format!("log:\n{}", running.log_tail())))
            }
        }
    }

    /// Wait until the receiver has `expected` unique deliveries.
    async fn wait_delivered(
        tally: &Tally,
        expected: u64,
        running: &mut Running,
    ) -> anyhow::Result<()> {
        let deadline = Self::deadline(expected);
        let start = Instant::now();
        let mut checked = Instant::now();
        while tally.unique() < expected {
            if checked.elapsed() >= Duration::from_millis(200) {
                running.check()?;
                checked = Instant::now();
            }
            if start.elapsed() > deadline {
                bail!(
                    "only {} of {expected} deliveries within {deadline:?}; log:\n{}",
                    tally.unique(),
                    running.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// `events` pushed as fast as the pipe takes them, to `targets` targets, `repeat` times.
    pub async fn throughput(&mut self, pipe: Pipe, targets: usize) -> anyhow::Result<Throughput> {
        let n = self.opts.events;
        let expected = n * targets as u64;
        let names = target_names(targets);
        let mut runs = Vec::new();
        let (mut duplicates, mut bad, mut missing_id) = (0, 0, 0);
        for _ in 0..self.opts.repeat.max(1) {
            let stream = StreamServer::bind().await?;
            let rx = Receiver::start(
                TcpListener::bind("127.0.0.1:0").await?,
                &names,
                n,
                self.base,
                false,
            )?;
            let specs = names
                .iter()
                .map(|name| TargetSpec {
                    name: name.clone(),
                    url: rx.url(name),
                })
                .collect();
            let label = format!("throughput-{}-{targets}t", pipe.name());
            let mut running = self.start(pipe, &label, &stream, specs).await?;
            let mut feed = Self::accept(&stream, &mut running).await?;
            let bench_cpu = relay::own_cpu_seconds();
            let sent = feed.burst(0..n, self.base).await?;
            Self::wait_delivered(&rx.state, expected, &mut running).await?;
            let bench_cpu = relay::own_cpu_seconds() - bench_cpu;
            let usage = running.finish(feed).await?;
            let t = &rx.state;
            let took = secs(sent.first_ns, t.last_ns.load(Ordering::Acquire));
            let run_duplicates = t.duplicates.load(Ordering::Acquire);
            duplicates += run_duplicates;
            bad += t.bad.load(Ordering::Acquire);
            if !matches!(pipe, Pipe::Ceiling | Pipe::SledFloor) {
                let with_id = t.with_webhook_id.load(Ordering::Acquire);
                missing_id += (t.unique() + run_duplicates).saturating_sub(with_id);
            }
            let run = ThroughputRun {
                seconds: took,
                deliveries_per_s: expected as f64 / took,
                ingest_seconds: secs(sent.first_ns, sent.last_ns),
                peak_rss_kib: usage.map(|u| u.peak_rss_kib),
                relay: usage,
                relay_cpu_us_per_delivery: usage.map(|u| u.cpu_seconds * 1e6 / expected as f64),
                bench_cpu_seconds: bench_cpu,
            };
            super::progress(&format!(
                "  {} {targets} target(s): {expected} deliveries in {:.2} s = {:.0}/s (stream taken in {:.2} s){}, bench CPU {:.2} s",
                pipe.name(),
                run.seconds,
                run.deliveries_per_s,
                run.ingest_seconds,
                usage
                    .map(|u| format!(", {}", u.describe(expected)))
                    .unwrap_or_default(),
                bench_cpu,
            ));
            runs.push(run);
            rx.stop();
        }
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by(|&a, &b| {
            runs[a]
                .deliveries_per_s
                .total_cmp(&runs[b].deliveries_per_s)
        });
        let median = &runs[order[order.len() / 2]];
        Ok(Throughput {
            pipeline: pipe,
            targets,
            events: n,
            deliveries: expected,
            deliveries_per_s: median.deliveries_per_s,
            seconds: median.seconds,
            peak_rss_kib: runs.iter().filter_map(|r| r.peak_rss_kib).max(),
            runs,
            duplicates,
            bad,
            missing_webhook_id: missing_id,
        })
    }

    /// A steady `latency_rate` events/s for `latency_secs`, 1 target; the time each
    /// delivery arrived after its frame was sent.
    pub async fn latency(&mut self, pipe: Pipe) -> anyhow::Result<Latency> {
        let rate = self.opts.latency_rate;
        let total = ((rate as f64 * self.opts.latency_secs).round() as u64).max(1);
        let warmup = ((rate as f64 * self.opts.warmup_secs).round() as u64).min(total - 1);
        let names = target_names(1);
        let stream = StreamServer::bind().await?;
        let rx = Receiver::start(
            TcpListener::bind("127.0.0.1:0").await?,
            &names,
            total,
            self.base,
            true,
        )?;
        let specs = vec![TargetSpec {
            name: names[0].clone(),
            url: rx.url(&names[0]),
        }];
        let label = format!("latency-{}", pipe.name());
        let mut running = self.start(pipe, &label, &stream, specs).await?;
        let mut feed = Self::accept(&stream, &mut running).await?;
        let sent = feed.paced(0..total, rate, self.base).await?;
        Self::wait_delivered(&rx.state, total, &mut running).await?;
        let usage = running.finish(feed).await?;
        let t = &rx.state;
        let mut samples: Vec<(u64, u64)> = t
            .latencies()
            .into_iter()
            .filter(|&(seq, _)| seq >= warmup)
            .collect();
        samples.sort_unstable_by_key(|&(_, ns)| std::cmp::Reverse(ns));
        let worst = samples
            .iter()
            .take(10)
            .map(|&(seq, ns)| (seq as f64 / rate as f64, ns as f64 / 1e6))
            .collect();
        let mut added: Vec<u64> = samples.into_iter().map(|(_, ns)| ns).collect();
        added.sort_unstable();
        let pct = |p: f64| {
            let rank = ((p * added.len() as f64).ceil() as usize).clamp(1, added.len());
            added[rank - 1] as f64 / 1e6
        };
        let result = Latency {
            pipeline: pipe,
            rate,
            seconds: secs(sent.first_ns, sent.last_ns),
            events: total,
            warmup_events: warmup,
            samples: added.len() as u64,
            delivered: t.unique(),
            duplicates: t.duplicates.load(Ordering::Acquire),
            bad: t.bad.load(Ordering::Acquire),
            p50_ms: pct(0.50),
            p90_ms: pct(0.90),
            p99_ms: pct(0.99),
            max_ms: added.last().map_or(0.0, |&m| m as f64 / 1e6),
            mean_ms: added.iter().sum::<u64>() as f64 / added.len().max(1) as f64 / 1e6,
            worst,
            peak_rss_kib: usage.map(|u| u.peak_rss_kib),
            relay: usage,
        };
        super::progress(&format!(
            "  {} at {rate}/s: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {} events; slowest (s into the run, ms): {}",
            pipe.name(),
            result.p50_ms,
            result.p90_ms,
            result.p99_ms,
            result.max_ms,
            result.samples,
            result
                .worst
                .iter()
                .map(|(at, ms)| format!("{at:.2}:{ms:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        rx.stop();
        Ok(result)
    }

    /// `pending` deliveries left on disk by a relay whose target was down, then a fresh
    /// relay and a live receiver: time to the first delivery, and the drain rate.
    ///
    /// The fill relay's target is a [`BlackHole`] (accepts, never answers), so it attempts
    /// at most `concurrency` deliveries, which hang, and writes no retry schedule (a
    /// refused connection would park each attempted delivery for `retry.initial`, and a
    /// parked delivery holds one of the target's concurrency slots after the restart
    /// too). Once its `/metrics` shows every delivery durable (the pending gauge counts
    /// only flushed deliveries), it is killed with SIGKILL (a crash: SIGTERM would wait
    /// 10 s for the hanging attempts), and `outbox stats` must show them all.
    pub async fn recovery(&mut self, pending: u64) -> anyhow::Result<Recovery> {
        let names = target_names(1);
        let dir = self.dir(&format!("recovery-{pending}"))?;

        // 1. Fill.
        let hole = BlackHole::start().await?;
        let stream = StreamServer::bind().await?;
        let mut config = self.relay_config(
            &dir,
            stream.url(),
            relay::free_port().await?,
            vec![TargetSpec {
                name: names[0].clone(),
                url: format!("http://{}/{}", hole.addr, names[0]),
            }],
        );
        config.timeout = "1h";
        config.retry = ("1h", "1h");
        let relay = RelayProcess::spawn(&self.opts.relay, &dir, &config).await?;
        let mut running = Running::Relay(Box::new(relay));
        let mut feed = Self::accept(&stream, &mut running).await?;
        let mut relay = running.into_relay();
        let sent = feed.burst(0..pending, self.base).await?;
        let deadline = Self::deadline(pending);
        let mut last_seen = 0;
        loop {
            relay.check_alive()?;
            if let Some(p) = relay.pending(&self.http).await {
                last_seen = p;
                if p >= pending {
                    break;
                }
            }
            if nanos(self.base) - sent.first_ns > deadline.as_nanos() as u64 {
                bail!(
                    "only {last_seen} of {pending} deliveries durable within {deadline:?}; log:\n{}",
                    relay.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let durable_ns = nanos(self.base);
        let fill = Usage::of(&relay)?;
        relay.kill().await?;
        drop(feed);
        drop(hole);
        let fill_seconds = secs(sent.first_ns, durable_ns);
        let stats = relay::outbox_stats(&self.opts.relay, &dir).await?;
        let (on_disk_pending, on_disk_dead) = stats.get(&names[0]).copied().unwrap_or_default();
        super::progress(&format!(
            "  filled {pending} in {fill_seconds:.2} s ({:.0}/s; {}); outbox stats: {on_disk_pending} pending, {on_disk_dead} dead",
            pending as f64 / fill_seconds,
            fill.describe(pending)
        ));
        if on_disk_pending != pending {
            bail!("outbox stats shows {on_disk_pending} pending, expected {pending}");
        }

        // 2. Drain: the receiver is up, a fresh relay starts on the same outbox.
        let rx = Receiver::start(
            TcpListener::bind("127.0.0.1:0").await?,
            &names,
            pending,
            self.base,
            false,
        )?;
        let idle_stream = StreamServer::bind().await?;
        let config = self.relay_config(
            &dir,
            idle_stream.url(),
            relay::free_port().await?,
            vec![TargetSpec {
                name: names[0].clone(),
                url: rx.url(&names[0]),
            }],
        );
        let idle = idle_stream.serve_idle();
        let start_ns = nanos(self.base);
        let relay = RelayProcess::spawn(&self.opts.relay, &dir, &config).await?;
        let mut running = Running::Relay(Box::new(relay));
        Self::wait_delivered(&rx.state, pending, &mut running).await?;
        let relay = running.into_relay();
        let drain = Usage::of(&relay)?;
        relay.terminate(STOP_DEADLINE).await?;
        idle.abort();
        let left = relay::outbox_stats(&self.opts.relay, &dir).await?;
        let (left_pending, left_dead) = left.get(&names[0]).copied().unwrap_or_default();
        let t = &rx.state;
        let first = t.first_ns.load(Ordering::Acquire);
        let last = t.last_ns.load(Ordering::Acquire);
        let result = Recovery {
            pending,
            fill_seconds,
            fill_events_per_s: pending as f64 / fill_seconds,
            fill_peak_rss_kib: fill.peak_rss_kib,
            fill,
            on_disk_pending,
            on_disk_dead,
            first_delivery_ms: secs(start_ns, first) * 1e3,
            drain_seconds: secs(first, last),
            drain_per_s: pending as f64 / secs(first, last).max(1e-9),
            total_seconds: secs(start_ns, last),
            delivered: t.unique(),
            duplicates: t.duplicates.load(Ordering::Acquire),
            bad: t.bad.load(Ordering::Acquire),
            drain_peak_rss_kib: drain.peak_rss_kib,
            drain,
            left_pending,
            left_dead,
        };
        super::progress(&format!(
            "  drained {pending}: first delivery {:.0} ms after start, {:.0}/s, all in {:.2} s ({}); left: {left_pending} pending, {left_dead} dead",
            result.first_delivery_ms,
            result.drain_per_s,
            result.total_seconds,
            drain.describe(pending)
        ));
        rx.stop();
        // The outbox of a 1M run is large: free the disk now.
        std::fs::remove_dir_all(&dir).context("removing the run's outbox")?;
        Ok(result)
    }
}
