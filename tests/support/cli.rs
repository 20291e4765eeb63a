//! One-shot commands of the binary (`check`, `route`, `run` that must fail fast), with
//! stdin, extra environment and a deadline.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::relay::{RUST_LOG, bin};

/// What a finished command left.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// stdout then stderr, for "it says X somewhere" assertions.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Panics with both streams unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &CliOutput {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit code {code}, got {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics, quoting the stream, if either stream contains `secret`.
    pub fn assert_free_of(&self, secret: &str) -> &CliOutput {
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if let Some(line) = text.lines().find(|l| l.contains(secret)) {
                panic!("{name} carries the secret {secret:?}:\n{line}");
            }
        }
        self
    }
}

/// A command line for the binary under test.
pub struct Cli {
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Variables removed from the inherited environment.
    env_remove: Vec<String>,
    stdin: Option<Vec<u8>>,
    cwd: Option<std::path::PathBuf>,
}

/// `badger-relay ARGS...`; `RUST_LOG` is set to the harness default, stdin is empty.
pub fn cli(args: &[&str]) -> Cli {
    Cli {
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        env_remove: Vec::new(),
        stdin: None,
        cwd: None,
    }
}

impl Cli {
    pub fn env(mut self, key: &str, value: &str) -> Cli {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn env_remove(mut self, key: &str) -> Cli {
        self.env_remove.push(key.to_string());
        self
    }

    pub fn stdin(mut self, input: &str) -> Cli {
        self.stdin = Some(input.as_bytes().to_vec());
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Cli {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Runs it to completion; kills it and panics if it outlives `deadline`.
    pub fn run(self, deadline: Duration) -> CliOutput {
        let mut cmd = Command::new(bin());
        cmd.args(&self.args)
            .env("RUST_LOG", RUST_LOG)
            .env_remove("BADGER_RELAY_CONFIG")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().expect("spawn badger-relay");
        if let Some(input) = self.stdin {
            let mut pipe = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "badger-relay {} still running after {deadline:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.args.join(" "),
                    stdout.join().unwrap(),
                    stderr.join().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        CliOutput {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }
}

fn collect(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}
