//! The HTTP receiver: plays the webhook targets on loopback (`POST /NAME`, answers 200).
//!
//! For each request it records the arrival time, checks that the body is byte for byte
//! the frame the stream sent (and that the Standard Webhooks id and the JSON content
//! type are there), and marks the event's seq in a per-target bitset, which counts
//! unique deliveries and duplicates without a lock. In latency mode it also keeps
//! (seq, arrival − sent) pairs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::events::check_body;
use super::stream::nanos;

pub struct Receiver {
    pub addr: SocketAddr,
    pub state: Arc<Tally>,
    task: JoinHandle<()>,
}

/// What the receiver saw.
pub struct Tally {
    base: Instant,
    names: Vec<String>,
    targets: Vec<TargetTally>,
    /// Every unique delivery, all targets together.
    pub unique: AtomicU64,
    pub duplicates: AtomicU64,
    /// Requests whose body was not the frame sent, or missing headers, or an unknown path.
    pub bad: AtomicU64,
    /// Requests carrying a Standard Webhooks `webhook-id` (the relay sends one on every
    /// delivery; the forwarder of the ceiling run does not).
    pub with_webhook_id: AtomicU64,
    /// Arrival of the first and of the last unique delivery, ns since the bench's origin.
    pub first_ns: AtomicU64,
    pub last_ns: AtomicU64,
    latencies: Option<Mutex<Vec<(u64, u64)>>>,
}

struct TargetTally {
    seen: Vec<AtomicU64>,
    unique: AtomicU64,
}

impl Receiver {
    /// Serve on `listener` for `names` (the URL path is the target name); seqs must be
    /// below `capacity`.
    pub fn start(
        listener: TcpListener,
        names: &[String],
        capacity: u64,
        base: Instant,
        record_latency: bool,
    ) -> anyhow::Result<Receiver> {
        let addr = listener.local_addr()?;
        let words = capacity.div_ceil(64) as usize;
        let state = Arc::new(Tally {
            base,
            names: names.to_vec(),
            targets: names
                .iter()
                .map(|_| TargetTally {
                    seen: (0..words).map(|_| AtomicU64::new(0)).collect(),
                    unique: AtomicU64::new(0),
                })
                .collect(),
            unique: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            bad: AtomicU64::new(0),
            with_webhook_id: AtomicU64::new(0),
            first_ns: AtomicU64::new(u64::MAX),
            last_ns: AtomicU64::new(0),
            latencies: record_latency.then(|| Mutex::new(Vec::with_capacity(1 << 16))),
        });
        let app = axum::Router::new()
            .route("/{target}", axum::routing::post(handle))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { addr, state, task })
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tally {
    pub fn unique(&self) -> u64 {
        self.unique.load(Ordering::Acquire)
    }

    /// (seq, added latency in ns) for every unique delivery, in latency mode.
    pub fn latencies(&self) -> Vec<(u64, u64)> {
        self.latencies
            .as_ref()
            .map(|l| l.lock().unwrap().clone())
            .unwrap_or_default()
    }

    fn record(&self, name: &str, headers: &HeaderMap, body: &[u8]) {
        let now = nanos(self.base);
        let bad = || {
            self.bad.fetch_add(1, Ordering::Relaxed);
        };
        let Some(index) = self.names.iter().position(|n| n == name) else {
            return bad();
        };
        let json = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !json {
            return bad();
        }
        if headers.contains_key("webhook-id") {
            self.with_webhook_id.fetch_add(1, Ordering::Relaxed);
        }
        let mut scratch = String::with_capacity(512);
        let Some(probe) = check_body(body, &mut scratch) else {
            return bad();
        };
        let target = &self.targets[index];
        let word = (probe.bench_seq / 64) as usize;
        let Some(cell) = target.seen.get(word) else {
            return bad();
        };
        let bit = 1u64 << (probe.bench_seq % 64);
        if cell.fetch_or(bit, Ordering::AcqRel) & bit != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(l) = &self.latencies {
            l.lock()
                .unwrap()
                .push((probe.bench_seq, now.saturating_sub(probe.sent_ns)));
        }
        self.first_ns.fetch_min(now, Ordering::AcqRel);
        self.last_ns.fetch_max(now, Ordering::AcqRel);
        target.unique.fetch_add(1, Ordering::AcqRel);
        self.unique.fetch_add(1, Ordering::AcqRel);
    }
}

async fn handle(
    State(tally): State<Arc<Tally>>,
    Path(target): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    tally.record(&target, &headers, &body);
    StatusCode::OK
}
