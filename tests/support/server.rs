//! The relay's HTTP server (`[server]`) and its operator commands, from a test.
//!
//! - [`server_table`]: a `[server]` table on a free loopback port (for
//!   [`RelayConfig::tail`](super::config::RelayConfig::tail)).
//! - [`server_addr`]: the address the latest run listens on, from its
//!   "HTTP server listening" log line (the port is picked by the OS on each run).
//! - [`Http`]: GET and POST against that address, signed `/ingest` posts, `/metrics`
//!   read as numbers, and waits on a status or on metric values (with a deadline).
//! - [`outbox`]: `badger-relay outbox -c CONFIG ...` on a relay's config, and
//!   [`parse_stats`] for what `outbox stats` prints.
//! - [`signal`]: `kill -SIG PID`, for SIGINT and SIGTERM to processes not run by `Relay`.
//!
//! The `/ingest` signature is computed here with `hmac` and `sha2`, independently of
//! the binary's own code, as ScrapeBadger would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::cli::{Cli, CliOutput, cli};
use super::relay::Relay;
use super::wait::poll_until;

/// The `ingest_secret` of test configs: distinctive, so that a test can assert it never
/// shows up in a log line.
pub const INGEST_SECRET: &str = "whk_test_INGESTSECRET_4c2e9a71";

/// `X-Signature-256`, the current header name.
pub const SIGNATURE_HEADER: &str = "X-Signature-256";
/// `X-ScrapeBadger-Signature`, the older header name.
pub const LEGACY_SIGNATURE_HEADER: &str = "X-ScrapeBadger-Signature";

/// The log message the relay writes once its HTTP server is bound.
const LISTENING: &str = "HTTP server listening";

/// A `[server]` table listening on a free loopback port, with `/ingest` when
/// `ingest_secret` is set.
pub fn server_table(ingest_secret: Option<&str>) -> String {
    let mut t = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
    if let Some(secret) = ingest_secret {
        t.push_str(&format!("ingest_secret = {}\n", super::config::s(secret)));
    }
    t
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, as ScrapeBadger signs a webhook delivery.
pub fn sign_ingest(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// The address in a JSON "HTTP server listening" line (`"listen":"127.0.0.1:PORT"`).
pub fn listen_addr(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("message")?.as_str()? != LISTENING {
        return None;
    }
    value.get("listen")?.as_str()?.parse().ok()
}

/// Waits until the relay's latest run has logged that its HTTP server listens; returns
/// the address. Each run binds a fresh port, so the run's own line is the one taken:
/// the `runs()`-th such line.
pub async fn server_addr(relay: &Relay) -> SocketAddr {
    let runs = relay.runs();
    poll_until(
        format!("the HTTP server of run #{runs} to log {LISTENING:?}"),
        super::DEADLINE,
        || {
            let lines = relay.logs();
            let addrs: Vec<SocketAddr> = lines.iter().filter_map(|l| listen_addr(l)).collect();
            if addrs.len() >= runs {
                Ok(addrs[runs - 1])
            } else {
                Err(format!(
                    "{} listening line(s); the last log lines:\n{}",
                    addrs.len(),
                    lines[lines.len().saturating_sub(15)..].join("\n")
                ))
            }
        },
    )
    .await
}

/// An HTTP answer: status and body text.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// Its `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

/// A client for the relay's HTTP server.
pub struct Http {
    client: reqwest::Client,
    base: String,
}

/// Every request is bounded, so a hung server fails the test instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("build a reqwest client");
        Http {
            client,
            base: format!("http://{addr}"),
        }
    }

    /// Waits for the relay's latest run to listen, then a client for it.
    pub async fn of(relay: &Relay) -> Http {
        Http::new(server_addr(relay).await)
    }

    pub async fn get(&self, path: &str) -> Answer {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        answer(resp).await
    }

    /// POST with these headers and this body, as is.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        answer(resp).await
    }

    /// POST `/ingest`, signed with [`INGEST_SECRET`] under `header`, with a delivery id.
    pub async fn ingest(&self, header: &str, body: &[u8]) -> Answer {
        let signature = sign_ingest(INGEST_SECRET, body);
        self.post(
            "/ingest",
            &[
                (header, signature.as_str()),
                ("X-Delivery-Id", "dlv_test_0001"),
            ],
            body.to_vec(),
        )
        .await
    }

    /// [`Http::ingest`], asserting the 202.
    pub async fn ingest_accepted(&self, header: &str, body: &[u8]) {
        let a = self.ingest(header, body).await;
        assert_eq!(
            a.status,
            202,
            "POST /ingest ({header}) of {} answered {a:?}",
            String::from_utf8_lossy(body)
        );
    }

    /// `GET /metrics`, parsed.
    pub async fn metrics(&self) -> Metrics {
        let a = self.get("/metrics").await;
        assert_eq!(a.status, 200, "GET /metrics answered {a:?}");
        Metrics(a.body)
    }

    /// Polls `path` until it answers `status`; panics at the deadline with the last answer.
    pub async fn wait_for_status(&self, path: &str, status: u16, deadline: Duration) -> Answer {
        let start = Instant::now();
        loop {
            let a = self.get(path).await;
            if a.status == status {
                return a;
            }
            if start.elapsed() >= deadline {
                panic!(
                    "timed out after {:.1?} waiting for GET {path} to answer {status}\n  last: {a:?}",
                    start.elapsed()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `/metrics` until every `(series, value)` holds; returns the metrics.
    /// At the deadline, panics with the series that differ.
    pub async fn wait_for_metrics(&self, expected: &[(&str, f64)], deadline: Duration) -> Metrics {
        let start = Instant::now();
        loop {
            let m = self.metrics().await;
            let wrong = m.differences(expected);
            if wrong.is_empty() {
                return m;
            }
            if start.elapsed() >= deadline {
                panic!(
                    "timed out after {:.1?} waiting for metrics\n  differ: {}\n--- /metrics ---\n{}",
                    start.elapsed(),
                    wrong.join("\n          "),
                    m.0
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.text().await.unwrap_or_default();
    Answer {
        status,
        body,
        retry_after,
    }
}

/// A `/metrics` page.
#[derive(Debug, Clone)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of one series, written exactly as in the exposition
    /// (`badger_relay_events_received_total{source="stream"}`).
    pub fn get(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
    }

    /// `series = got (want value)` for each expectation that does not hold.
    pub fn differences(&self, expected: &[(&str, f64)]) -> Vec<String> {
        expected
            .iter()
            .filter_map(|(series, want)| match self.get(series) {
                Some(got) if got == *want => None,
                Some(got) => Some(format!("{series} = {got} (want {want})")),
                None => Some(format!("{series} missing (want {want})")),
            })
            .collect()
    }

    /// Panics with every differing series and the page.
    pub fn assert(&self, expected: &[(&str, f64)]) {
        let wrong = self.differences(expected);
        assert!(
            wrong.is_empty(),
            "metrics differ:\n  {}\n--- /metrics ---\n{}",
            wrong.join("\n  "),
            self.0
        );
    }
}

/// Runs a one-shot command off the async runtime (the test's stream server and
/// receivers keep serving meanwhile).
pub async fn run_cli(cmd: Cli, deadline: Duration) -> CliOutput {
    tokio::task::spawn_blocking(move || cmd.run(deadline))
        .await
        .expect("the command's thread panicked")
}

/// `badger-relay outbox -c CONFIG ARGS...` on the relay's config.
pub async fn outbox(relay: &Relay, args: &[&str]) -> CliOutput {
    let config = relay
        .config_path()
        .to_str()
        .expect("a UTF-8 path")
        .to_string();
    let mut all = vec!["outbox", "-c", config.as_str()];
    all.extend_from_slice(args);
    run_cli(cli(&all), super::DEADLINE).await
}

/// What `outbox stats` prints: target → (pending, dead).
pub fn parse_stats(stdout: &str) -> BTreeMap<String, (u64, u64)> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let pending = words.next()?.parse().ok()?;
            let dead = words.next()?.parse().ok()?;
            Some((name.to_string(), (pending, dead)))
        })
        .collect()
}

/// `outbox stats` on the relay's config (which must not be running); asserts exit 0.
pub async fn outbox_stats(relay: &Relay) -> BTreeMap<String, (u64, u64)> {
    let out = outbox(relay, &["stats"]).await;
    out.assert_code(0);
    parse_stats(&out.stdout)
}

/// `kill -SIG PID` (`sig`: "INT", "TERM", ...).
pub fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed: {status}");
}
