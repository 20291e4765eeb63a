//! The ceiling: the same stream and receiver joined by the least a relay can be.
//!
//! A tokio-tungstenite client reads frames and POSTs each one to every target with
//! reqwest, at most `concurrency` requests in flight per target, keeping nothing on
//! disk and doing no routing, dedupe or retry. What it reaches is what this machine can
//! move from the stream server to the receiver at all; the relay's figure is reported as
//! a ratio of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Default)]
pub struct ForwardStats {
    pub forwarded: AtomicU64,
    pub errors: AtomicU64,
}

/// Connect to `stream_url` and forward until the stream closes; then wait for the
/// requests in flight. The task's result is an error only if it could not connect.
pub fn spawn(
    stream_url: String,
    targets: Vec<String>,
    concurrency: usize,
    stats: Arc<ForwardStats>,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()?;
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("{stream_url}?api_key=bench")).await?;
        let lanes: Vec<(reqwest::Url, Arc<Semaphore>)> = targets
            .iter()
            .map(|t| Ok((t.parse()?, Arc::new(Semaphore::new(concurrency)))))
            .collect::<anyhow::Result<_>>()?;
        let mut in_flight = tokio::task::JoinSet::new();
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let body = Bytes::from(text);
            for (url, lane) in &lanes {
                let permit = lane.clone().acquire_owned().await?;
                let request = client
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send();
                let stats = stats.clone();
                in_flight.spawn(async move {
                    let ok = matches!(request.await, Ok(r) if r.status().is_success());
                    drop(permit);
                    let counter = if ok { &stats.forwarded } else { &stats.errors };
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }
            // Reap finished requests so the set does not grow with the run.
            while in_flight.try_join_next().is_some() {}
        }
        while in_flight.join_next().await.is_some() {}
        Ok(())
    })
}
