//! The command line: parse arguments, load the config, run a command, map errors to exit
//! codes (0 success, 1 runtime failure, 2 bad usage or invalid config).

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use badger_relay::allocator::return_freed_memory_at_once;
use badger_relay::config::Config;
use badger_relay::telemetry::{self, LogFormat};
use badger_relay::{cli, shutdown};

/// mimalloc instead of the system allocator: sled allocates and frees a node copy on most
/// writes, and glibc's malloc spent a fifth of the relay's CPU doing it (BENCHMARKS.md).
/// Built without transparent huge pages (`no_thp`): with them, the idle RSS was 4x larger.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "badger-relay",
    version,
    about = "Relay ScrapeBadger tweet events to Slack, Discord and HTTP webhooks, durably"
)]
struct Args {
    /// Config file [default: $BADGER_RELAY_CONFIG, then ./badger-relay.toml]
    #[arg(short, long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge until SIGINT/SIGTERM (SIGHUP reloads the config)
    Run,
    /// Validate the config (env vars included) and print a summary
    Check,
    /// Dry run: which routes match an event, which targets get it, and the exact bodies
    Route {
        /// Event JSON file; stdin when absent or "-"
        event: Option<PathBuf>,
    },
    /// Deliver one sample event to TARGET now and print the outcome (exit 0 on 2xx)
    SendTest {
        /// The target's name, as in [targets.NAME]
        target: String,
    },
    /// Inspect and repair the outbox (while `run` is stopped)
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Run the whole pipeline with no account and no config: a simulated stream, a
    /// receiver that prints what Slack, Discord and HTTP targets get, an outbox in a temp dir
    Demo,
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Pending and dead-lettered deliveries per target
    Stats,
    /// One line per delivery
    List {
        #[arg(long)]
        target: Option<String>,
        /// Dead letters instead of pending deliveries
        #[arg(long)]
        dead: bool,
    },
    /// Move dead letters back to pending
    Retry {
        #[arg(long)]
        target: Option<String>,
        /// Delivery ids (as `list` prints them); all dead letters when none
        ids: Vec<String>,
    },
    /// Read and decode every record, writing nothing; exit 1 if any is unreadable
    Verify,
    /// Delete deliveries (pending ones, or dead letters with --dead); prints the count
    Purge {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        dead: bool,
    },
}

fn main() -> ExitCode {
    return_freed_memory_at_once();
    let args = Args::parse();
    telemetry::init_logging(args.log_format);
    if let Command::Demo = args.command {
        return match tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(badger_relay::demo::run()))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let path = args
        .config
        .clone()
        .or_else(|| std::env::var_os("BADGER_RELAY_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("badger-relay.toml"));
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            return ExitCode::from(2);
        }
    };
    let result = match args.command {
        Command::Demo => unreachable!("handled above"),
        Command::Check => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            write!(out, "{}", config.summary())
                .and_then(|()| writeln!(out, "config OK: {}", path.display()))
                .map_err(anyhow::Error::from)
        }
        Command::Route { event } => {
            read_event(event).and_then(|raw| cli::route(&config, raw, &mut std::io::stdout()))
        }
        Command::Run => {
            let ingest_only = config
                .server
                .as_ref()
                .is_some_and(|s| s.ingest_secret.is_some());
            if config.source.api_key.is_none() && !ingest_only {
                eprintln!(
                    "error: {}: source.api_key is required by `run` (for example api_key = \"${{SCRAPEBADGER_API_KEY}}\"), unless [server] ingest_secret makes /ingest the only source",
                    path.display()
                );
                return ExitCode::from(2);
            }
            run(config)
        }
        Command::SendTest { target } => {
            let sent = tokio::runtime::Runtime::new()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(cli::send_test(&config, &target, &mut std::io::stdout()))
                });
            match sent {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(1),
                Err(e) => Err(e),
            }
        }
        Command::Outbox { command } => {
            let out = &mut std::io::stdout();
            match command {
                OutboxCommand::Stats => cli::outbox_stats(&config, out),
                OutboxCommand::List { target, dead } => {
                    cli::outbox_list(&config, target.as_deref(), state(dead), out)
                }
                OutboxCommand::Retry { target, ids } => {
                    cli::outbox_retry(&config, target.as_deref(), &ids, out)
                }
                OutboxCommand::Verify => cli::outbox_verify(&config, out),
                OutboxCommand::Purge { target, dead } => {
                    cli::outbox_purge(&config, target.as_deref(), state(dead), out)
                }
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<cli::UsageError>() {
                Some(_) => ExitCode::from(2),
                None => ExitCode::from(1),
            }
        }
    }
}

/// `--dead` names the dead letters; without it, the pending deliveries.
fn state(dead: bool) -> cli::State {
    if dead {
        cli::State::Dead
    } else {
        cli::State::Pending
    }
}

fn read_event(path: Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(p) if p.as_os_str() != "-" => std::fs::read(&p)
            .map_err(|e| cli::UsageError(format!("cannot read {}: {e}", p.display())).into()),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            Ok(buf)
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let (trigger, _) = shutdown::channel();
        let trigger = std::sync::Arc::new(trigger);
        let signals = trigger.clone();
        // Installed before the bridge starts: SIGHUP's default action is to exit.
        let reloads = reload_requests()?;
        tokio::spawn(async move {
            wait_for_signal().await;
            signals.trigger();
            // A second signal means "now": everything accepted is already on disk, so
            // stopping here is as safe as a crash, and is what an operator asked for.
            wait_for_signal().await;
            tracing::warn!("Second signal: exiting without waiting for attempts in flight");
            std::process::exit(1);
        });
        badger_relay::app::run_reloading(config, trigger, reloads).await
    });
    // Blocking jobs (a backlog count, a dedupe sweep) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// One message per SIGHUP. The channel holds one: SIGHUPs that come while a reload is
/// waiting to start are folded into it (it reads the file as it is by then).
fn reload_requests() -> anyhow::Result<tokio::sync::mpsc::Receiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the config");
            let _ = tx.try_send(());
        }
    });
    Ok(rx)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("can install a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use badger_relay::allocator::MI_OPTION_PURGE_DELAY;

    /// Resident set of this process, KiB.
    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Option 15 is mimalloc's purge delay (its default, 1,000 ms in mimalloc 3, is read
    /// back before it is set), and once set, 64 MiB freed in sled-sized blocks leave the
    /// resident set at once, not a second later.
    #[test]
    fn freed_memory_leaves_the_resident_set_at_once() {
        // SAFETY: reads an integer option of the allocator.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(default, 1000, "option 15 is not mimalloc 3's purge_delay");
        return_freed_memory_at_once();
        let before = rss_kib();
        let blocks: Vec<Vec<u8>> = (0..128).map(|_| vec![1u8; 512 * 1024]).collect();
        let held = rss_kib();
        assert!(held >= before + 48 * 1024, "{before} -> {held} KiB");
        drop(blocks);
        let after = rss_kib();
        assert!(
            after + 32 * 1024 <= held,
            "freed but resident: {held} -> {after} KiB"
        );
    }
}
