//! The real `badger-relay` binary running `run` on a test config.
//!
//! The config and the outbox live in a temp dir the `Relay` owns, so that a restart
//! (after `kill`, `terminate` or an exit) runs on the same config and the same outbox.
//! stdout and stderr lines of every run are captured, in one buffer, for waits and for
//! the secret-hygiene assertions. On a failing test, dropping the relay prints the last
//! log lines to the test's output.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::config::RelayConfig;
use super::process::{Logs, Process};
use super::stream::StreamServer;
use super::wait::wait_until;

/// The binary built with these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_badger-relay");

/// The binary under test: [`BIN`], or `$BADGER_RELAY_BIN` when set (to hold another
/// build, say a release one or another branch's, to this contract).
pub fn bin() -> std::path::PathBuf {
    std::env::var_os("BADGER_RELAY_BIN")
        .map(Into::into)
        .unwrap_or_else(|| BIN.into())
}

/// `RUST_LOG` for every run: the relay's own debug lines, `info` for its dependencies
/// but sled (off, as the relay's default has it: the outbox reports what sled says).
pub const RUST_LOG: &str = "badger_relay=debug,info,sled=off";

pub struct Relay {
    /// Holds `badger-relay.toml` and `outbox/`; removed on drop.
    dir: TempDir,
    config_path: PathBuf,
    /// Added to the child's environment (`${VAR}` in the config, ...).
    env: Vec<(String, String)>,
    logs: Arc<Logs>,
    /// The current run; `None` before the first start.
    process: Option<Process>,
    /// How many times it was started.
    runs: usize,
}

impl Relay {
    /// Writes `config` (outbox in the temp dir) and starts `run`.
    pub fn start(config: &RelayConfig) -> Relay {
        Relay::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &RelayConfig, env: &[(&str, &str)]) -> Relay {
        let mut relay = Relay::prepare(config, env);
        relay.spawn();
        relay
    }

    /// Starts and waits until it has opened one more connection to `stream`.
    pub async fn start_connected(config: &RelayConfig, stream: &StreamServer) -> Relay {
        let before = stream.connections();
        let mut relay = Relay::start(config);
        relay.wait_connected(stream, before).await;
        relay
    }

    /// Writes the config without starting anything.
    pub fn prepare(config: &RelayConfig, env: &[(&str, &str)]) -> Relay {
        let dir = tempfile::Builder::new()
            .prefix("badger-relay-test-")
            .tempdir()
            .expect("create a temp dir");
        let config_path = dir.path().join("badger-relay.toml");
        let outbox = dir.path().join("outbox");
        std::fs::write(&config_path, config.render(&outbox)).expect("write the config");
        Relay {
            dir,
            config_path,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            logs: Arc::new(Logs::default()),
            process: None,
            runs: 0,
        }
    }

    /// Replaces the extra environment of the runs to come (a restart without a fake clock).
    pub fn set_env(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Starts `run` again with the same config and outbox (the previous run must have
    /// exited or been killed; a running one is killed first).
    pub fn restart(&mut self) {
        if let Some(mut old) = self.process.take() {
            old.kill();
        }
        self.spawn();
    }

    /// Restarts and waits until it has opened one more connection to `stream`.
    pub async fn restart_connected(&mut self, stream: &StreamServer) {
        let before = stream.connections();
        self.restart();
        self.wait_connected(stream, before).await;
    }

    /// Waits until `stream` has accepted more than `before` connections; fails at once,
    /// with the log tail, if the relay exits meanwhile.
    pub async fn wait_connected(&mut self, stream: &StreamServer, before: usize) {
        let what = format!("badger-relay to open stream connection #{}", before + 1);
        let logs = self.logs.clone();
        let process = self.process.as_mut().expect("the relay was started");
        wait_until(what, super::DEADLINE, stream.changes(), || {
            if stream.connections() > before {
                return Ok(());
            }
            if let Some(status) = process.try_status() {
                panic!(
                    "badger-relay exited ({status}) before connecting to the stream; \
                     log tail:\n{}",
                    logs.tail(30)
                );
            }
            Err(format!(
                "{} connection(s), handshakes: {:?}",
                stream.connections(),
                stream
                    .handshakes()
                    .iter()
                    .map(|h| (h.accepted, h.path().to_string()))
                    .collect::<Vec<_>>()
            ))
        })
        .await
    }

    fn spawn(&mut self) {
        self.runs += 1;
        let config = self.config_path.to_str().unwrap().to_string();
        let mut env = vec![("RUST_LOG".to_string(), RUST_LOG.to_string())];
        env.extend(self.env.iter().cloned());
        let process = Process::spawn(
            &bin(),
            &["run", "-c", &config, "--log-format", "json"],
            self.dir.path(),
            &env,
            &self.logs,
        );
        self.process = Some(process);
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    /// How many times the binary was started.
    pub fn runs(&self) -> usize {
        self.runs
    }

    pub fn pid(&self) -> u32 {
        self.process().pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.process_mut().is_running()
    }

    /// Every captured stdout and stderr line, of every run, in arrival order.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lines()
    }

    /// Waits for a log line containing `needle`; returns it.
    pub async fn wait_for_log(&self, needle: &str, deadline: Duration) -> String {
        self.logs
            .wait_for(format!("a log line containing {needle:?}"), deadline, |l| {
                l.contains(needle)
            })
            .await
    }

    /// Waits for a log line for which `matches` holds; returns it.
    pub async fn wait_for_log_matching(
        &self,
        what: &str,
        deadline: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        self.logs.wait_for(what, deadline, matches).await
    }

    /// Panics, quoting the line, if any captured line contains `secret`.
    pub fn assert_logs_free_of(&self, secret: &str) {
        let lines = self.logs();
        if let Some(line) = lines.iter().find(|l| l.contains(secret)) {
            panic!("a log line carries the secret {secret:?}:\n{line}");
        }
    }

    /// SIGKILL now (as `kill -9` would), and reap.
    pub fn kill(&mut self) -> ExitStatus {
        self.process_mut().kill()
    }

    /// SIGTERM; see [`Relay::wait_exit`].
    pub fn terminate(&mut self) {
        self.process_mut().terminate();
    }

    /// Waits until the current run exits.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let logs = self.logs.clone();
        let process = self.process.as_mut().expect("the relay was started");
        process.wait_exit(deadline, &logs).await
    }

    fn process(&self) -> &Process {
        self.process.as_ref().expect("the relay was started")
    }

    fn process_mut(&mut self) -> &mut Process {
        self.process.as_mut().expect("the relay was started")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- badger-relay log ({} run(s), last 150 lines) ----\n{}\n---- end of log ----",
                self.runs,
                self.logs.tail(150)
            );
        }
    }
}
