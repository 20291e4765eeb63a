//! The relay under test: the real `badger-relay` binary, run as a separate process.
//!
//! The bench writes a config (contract TOML) into a temp dir, starts `badger-relay run`
//! with its log in that dir, reads its peak RSS from `/proc/PID/status` (VmHWM) just
//! before stopping it, and reads the outbox back with `badger-relay outbox stats`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// One http target of a generated config.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub name: String,
    pub url: String,
}

/// What varies between the configs the bench writes.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub stream_url: String,
    pub outbox: PathBuf,
    /// `[server] listen`, for `/metrics`.
    pub server: SocketAddr,
    pub targets: Vec<TargetSpec>,
    pub concurrency: usize,
    /// Per-request timeout of every target.
    pub timeout: &'static str,
    /// `[outbox] retry` initial and max.
    pub retry: (&'static str, &'static str),
    /// `[outbox] backend = "nats"` on this server; sled when `None`.
    pub nats_url: Option<String>,
}

impl RelayConfig {
    pub fn toml(&self) -> String {
        let mut s = format!(
            r#"# Written by the badger-relay bench (examples/bench).
[source]
url = "{stream}"
api_key = "bench"
idle_timeout = "10m"
reconnect = {{ initial = "100ms", max = "1s" }}

[outbox]
path = {outbox:?}
retry = {{ initial = "{ri}", max = "{rm}" }}
{nats}
[server]
listen = "{server}"
"#,
            stream = self.stream_url,
            outbox = self.outbox.display().to_string(),
            ri = self.retry.0,
            rm = self.retry.1,
            server = self.server,
            // ack_wait: the contract's default, twice the bench's 10 s timeout and more.
            nats = self.nats_url.as_ref().map_or(String::new(), |url| format!(
                "backend = \"nats\"\n[outbox.nats]\nurls = [\"{url}\"]\nack_wait = \"30s\"\n"
            )),
        );
        for t in &self.targets {
            s.push_str(&format!(
                "\n[targets.{name}]\ntype = \"http\"\nurl = \"{url}\"\nconcurrency = {c}\ntimeout = \"{timeout}\"\n",
                name = t.name,
                url = t.url,
                c = self.concurrency,
                timeout = self.timeout,
            ));
        }
        let names: Vec<String> = self
            .targets
            .iter()
            .map(|t| format!("{:?}", t.name))
            .collect();
        s.push_str(&format!(
            "\n[[routes]]\nname = \"everything\"\ntargets = [{}]\n",
            names.join(", ")
        ));
        s
    }
}

/// A free loopback port (bound, then released: the relay binds it a moment later).
pub async fn free_port() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    Ok(l.local_addr()?)
}

pub struct RelayProcess {
    /// The JetStream server of a nats-backend run, stopped with the relay.
    pub nats: Option<super::nats::NatsServer>,
    child: Child,
    pid: u32,
    log: PathBuf,
    metrics_url: String,
}

impl RelayProcess {
    /// Write `config` to `dir/badger-relay.toml` and start `bin run` on it.
    pub async fn spawn(bin: &Path, dir: &Path, config: &RelayConfig) -> anyhow::Result<Self> {
        let path = dir.join("badger-relay.toml");
        std::fs::write(&path, config.toml())?;
        let mut command = Command::new(bin);
        command
            .arg("run")
            .arg("-c")
            .arg(&path)
            .env("RUST_LOG", "info");
        let metrics_url = format!("http://{}/metrics", config.server);
        Self::start(command, &dir.join("relay.log"), metrics_url)
            .with_context(|| format!("cannot start {}", bin.display()))
    }

    /// The floor with sled (`exe sled-floor`, the bench binary) in `dir`, forwarding
    /// `stream_url` to `targets`: measured as a relay is.
    pub async fn spawn_floor(
        exe: &Path,
        dir: &Path,
        stream_url: &str,
        targets: &[String],
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(exe);
        command
            .arg("sled-floor")
            .arg(dir)
            .arg(stream_url)
            .arg(concurrency.to_string())
            .args(targets);
        Self::start(command, &dir.join("floor.log"), String::new())
            .context("cannot start the sled floor")
    }

    /// Start `command` with its output appended to `log`.
    fn start(mut command: Command, log: &Path, metrics_url: String) -> anyhow::Result<Self> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or_else(|| anyhow!("it exited at once"))?;
        Ok(RelayProcess {
            nats: None,
            child,
            pid,
            log: log.to_path_buf(),
            metrics_url,
        })
    }

    /// Fail (with the end of its log) if the relay has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the relay exited early ({status}); its log ends with:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Peak resident set size so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmHWM in /proc/{}/status", self.pid))
    }

    /// CPU time used so far (user + system, all threads), in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }

    /// Bytes the process has caused to be written to storage so far (`write_bytes` of
    /// `/proc/PID/io`): with the bytes accepted, the outbox's write amplification.
    pub fn disk_write_bytes(&self) -> anyhow::Result<u64> {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.pid))?;
        io.lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow!("no write_bytes in /proc/{}/io", self.pid))
    }

    /// The sum of `badger_relay_outbox_pending` over targets, from `/metrics`; `None`
    /// while the server is not up yet.
    pub async fn pending(&self, http: &reqwest::Client) -> Option<u64> {
        let text = http
            .get(&self.metrics_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(
            text.lines()
                .filter(|l| l.starts_with("badger_relay_outbox_pending{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
                .sum::<i64>()
                .max(0) as u64,
        )
    }

    /// SIGTERM, then wait for a clean exit (the relay drains for up to 10 s); SIGKILL
    /// after `deadline`. Fails unless it exited 0.
    pub async fn terminate(mut self, deadline: Duration) -> anyhow::Result<()> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        if !sent.success() {
            bail!("could not signal the relay (pid {})", self.pid);
        }
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!(
                        "the relay stopped with {status}; its log ends with:\n{}",
                        self.log_tail()
                    );
                }
                Ok(())
            }
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("the relay did not stop within {deadline:?} of SIGTERM")
            }
        }
    }

    /// SIGKILL (a crash), and wait for the process to be gone.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// utime + stime of `/proc/PID/stat` (or `/proc/self/stat`), in seconds. Clock ticks
/// are 1/100 s on Linux (USER_HZ), whatever the kernel's HZ.
pub fn cpu_seconds(stat_path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(stat_path)?;
    // The command name may hold spaces: the fields that follow start after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("odd {stat_path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the file, utime 14 and stime 15.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i - 3)
            .ok_or_else(|| anyhow!("short {stat_path}"))?
            .parse()?)
    };
    Ok((ticks(14)? + ticks(15)?) as f64 / 100.0)
}

/// This process's CPU time so far, in seconds.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds("/proc/self/stat").unwrap_or(0.0)
}

pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `badger-relay outbox -c CONFIG stats`: (pending, dead) per target.
pub async fn outbox_stats(bin: &Path, dir: &Path) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let out = Command::new(bin)
        .args(["outbox", "-c"])
        .arg(dir.join("badger-relay.toml"))
        .arg("stats")
        .env("RUST_LOG", "warn")
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "outbox stats failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let mut stats = BTreeMap::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // Target rows only: the size line after the table has no counts.
        if let [name, pending, dead, ..] = cols[..]
            && let (Ok(pending), Ok(dead)) = (pending.parse(), dead.parse())
        {
            stats.insert(name.to_string(), (pending, dead));
        }
    }
    Ok(stats)
}

/// A target that is down in the worst way: it accepts connections and never answers.
/// Requests to it hang (until the target's timeout), so the relay attempts nothing else
/// and writes no retry schedule: its backlog stays as it was accepted.
pub struct BlackHole {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl BlackHole {
    pub async fn start() -> anyhow::Result<BlackHole> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tcp);
            }
        });
        Ok(BlackHole { addr, task })
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}
