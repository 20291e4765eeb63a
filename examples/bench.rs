//! The reproducible benchmark (issue 5): `cargo run --release --example bench -- [FLAGS]`.
//!
//! Runs the real release `badger-relay` binary between a WebSocket stream server and an
//! HTTP receiver on loopback, and reports throughput, added latency, recovery, peak RSS,
//! the machine's ceiling and the routing cost, as a table and as JSON (stdout and
//! `target/bench/latest.json`). Progress goes to stderr. See BENCHMARKS.md.
//!
//! The relay binary is built first with `cargo build --release --bin badger-relay`
//! (a no-op when it is up to date) unless `--relay PATH` names one.

#[path = "bench/mod.rs"]
mod harness;

use std::path::PathBuf;

use clap::Parser;

use harness::{Mode, Options};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Benchmark badger-relay on loopback (see BENCHMARKS.md)"
)]
struct Args {
    /// Events per throughput run [default: 50000; 2000 with --quick]
    #[arg(long)]
    events: Option<u64>,
    /// A smoke run: 2,000 events, 2 s of latency, 5,000 pending, no 1M run
    #[arg(long)]
    quick: bool,
    /// Run only these parts (comma-separated): throughput, latency, recovery, memory,
    /// ceiling, routing
    #[arg(long, value_delimiter = ',', value_parser = Mode::parse)]
    only: Vec<Mode>,
    /// Where to write the JSON report [default: target/bench/latest.json]
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// The badger-relay binary to measure (then nothing is built)
    #[arg(long, value_name = "PATH")]
    relay: Option<PathBuf>,
    /// `concurrency` of every http target (and of the forwarder)
    #[arg(long)]
    concurrency: Option<usize>,
    /// Throughput runs per configuration; the median is reported [default: 3; 1 with --quick]
    #[arg(long)]
    repeat: Option<usize>,
    /// Deliveries pending on disk in the recovery run [default: 100000; 5000 with --quick]
    #[arg(long)]
    pending: Option<u64>,
    /// Deliveries pending on disk in the memory run; 0 for none [default: 1000000; none with --quick]
    #[arg(long)]
    memory_pending: Option<u64>,
    /// Seconds of the steady 200 events/s latency run [default: 20; 2 with --quick]
    #[arg(long)]
    latency_secs: Option<f64>,
    /// Seconds per routing case [default: 1; 0.2 with --quick]
    #[arg(long)]
    routing_secs: Option<f64>,
    /// Route counts of the routing cases (comma-separated); each count above 1 is also
    /// run with `where` on half of its routes [default: 1,100,1000]
    #[arg(long, value_delimiter = ',')]
    routing_routes: Vec<usize>,
    /// A nats-server binary (2.11 or newer): the throughput and latency runs are also
    /// made with `[outbox] backend = "nats"`, beside sled, in the same run
    #[arg(long, value_name = "PATH")]
    nats_server: Option<PathBuf>,
}

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// As in the relay, so that the floor with sled (`bench sled-floor`, a child process) has
/// the relay's allocator; the in-process forwarder and receivers use it too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("sled-floor") {
        return harness::ceiling::floor_process(&argv[1..]);
    }
    let args = Args::parse();
    let relay = match args.relay {
        Some(path) => path,
        None => build_relay()?,
    };
    anyhow::ensure!(
        relay.is_file(),
        "no relay binary at {}: build it with `cargo build --release --bin badger-relay`",
        relay.display()
    );
    let mut opts = if args.quick {
        Options::quick(relay)
    } else {
        Options::full(relay)
    };
    opts.modes = args.only;
    opts.nats_server = args.nats_server;
    if let Some(n) = args.events {
        opts.events = n.max(1);
    }
    if let Some(c) = args.concurrency {
        opts.concurrency = c.max(1);
    }
    if let Some(r) = args.repeat {
        opts.repeat = r.max(1);
    }
    if let Some(p) = args.pending {
        opts.pending = p.max(1);
    }
    if let Some(p) = args.memory_pending {
        opts.memory_pending = (p > 0).then_some(p);
    }
    if let Some(s) = args.latency_secs {
        opts.latency_secs = s.max(0.1);
    }
    if let Some(s) = args.routing_secs {
        opts.routing_secs = s.max(0.01);
    }
    if !args.routing_routes.is_empty() {
        opts.routing_routes = args.routing_routes.iter().map(|&n| n.max(1)).collect();
    }

    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(harness::run(&opts))?;

    let json = serde_json::to_string_pretty(&report)?;
    let path = args
        .json
        .unwrap_or_else(|| PathBuf::from(MANIFEST_DIR).join("target/bench/latest.json"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, format!("{json}\n"))?;
    println!("{}", report.table());
    println!("{json}");
    eprintln!("JSON report written to {}", path.display());
    if !report.errors.is_empty() {
        anyhow::bail!("{} part(s) of the bench failed", report.errors.len());
    }
    Ok(())
}

/// `cargo build --release --bin badger-relay`, with the cargo that runs this example.
fn build_relay() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the relay: cargo build --release --bin badger-relay");
    let mut command = std::process::Command::new(cargo);
    command
        .args(["build", "--release", "--bin", "badger-relay"])
        .current_dir(MANIFEST_DIR);
    // `cargo run` gives this process the package's CARGO_PKG_* and CARGO_MANIFEST_*
    // variables. ring's build script declares `rerun-if-env-changed` on some of them, so
    // a nested cargo that still has them would rebuild ring (and everything above it)
    // here, and the next `cargo run` would rebuild it back: minutes per run.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name.as_ref(),
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            command.env_remove(name.as_ref());
        }
    }
    let status = command.status()?;
    anyhow::ensure!(status.success(), "building the relay failed");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(MANIFEST_DIR).join("target"));
    Ok(target_dir.join("release/badger-relay"))
}
