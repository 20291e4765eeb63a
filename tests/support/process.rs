//! A child process whose stdout and stderr lines are captured as they come.
//!
//! [`Relay`](super::relay::Relay) runs the real binary through this; the self-test runs
//! a shell script through it to check the capture, SIGTERM and SIGKILL handling.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wait::{Changes, poll_until, wait_until};

/// Lines from every run of a process, shared with the reader threads.
#[derive(Default)]
pub struct Logs {
    lines: Mutex<Vec<String>>,
    changes: Changes,
}

impl Logs {
    pub fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
        self.changes.bump();
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The last `n` lines joined, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap();
        let start = lines.len().saturating_sub(n);
        lines[start..].join("\n")
    }

    pub async fn wait_for(
        &self,
        what: impl std::fmt::Display,
        deadline: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        wait_until(what, deadline, &self.changes, || {
            let lines = self.lines.lock().unwrap();
            match lines.iter().find(|l| matches(l)) {
                Some(line) => Ok(line.clone()),
                None => Err(format!(
                    "{} line(s), the last ones:\n{}",
                    lines.len(),
                    lines[lines.len().saturating_sub(20)..].join("\n")
                )),
            }
        })
        .await
    }
}

/// A running (or exited) child with its output going to a [`Logs`].
pub struct Process {
    child: Child,
    /// Exit status once seen: `try_wait` reaps only once.
    status: Option<ExitStatus>,
}

impl Process {
    /// Spawns `program args` in `cwd` with `env` added; stdin is empty.
    pub fn spawn(
        program: &Path,
        args: &[&str],
        cwd: &Path,
        env: &[(String, String)],
        logs: &Arc<Logs>,
    ) -> Process {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        pump(child.stdout.take().unwrap(), logs.clone());
        pump(child.stderr.take().unwrap(), logs.clone());
        Process {
            child,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// SIGKILL, then reap. A no-op if it already exited.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.try_status() {
            return status;
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait after SIGKILL");
        self.status = Some(status);
        status
    }

    /// SIGTERM, through `kill -TERM PID` (no libc binding is declared in this crate).
    pub fn terminate(&mut self) {
        if !self.is_running() {
            return;
        }
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.pid()
        );
    }

    /// Waits until it exits; returns its status.
    pub async fn wait_exit(&mut self, deadline: Duration, logs: &Logs) -> ExitStatus {
        let pid = self.pid();
        poll_until(format!("process {pid} to exit"), deadline, || {
            self.try_status()
                .ok_or_else(|| format!("still running; log tail:\n{}", logs.tail(20)))
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads lines in a thread (a killed child's pipes still end, at EOF), lossy UTF-8.
fn pump(stream: impl Read + Send + 'static, logs: Arc<Logs>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    logs.push(String::from_utf8_lossy(&buf).into_owned());
                }
            }
        }
    });
}
