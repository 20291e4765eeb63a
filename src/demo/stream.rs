//! The demo's simulated ScrapeBadger stream on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::SinkExt as _;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::sample::sample_event;

/// The simulated stream: a realistic event about every 1.5 s to whoever connects.
pub(super) async fn serve_stream(listener: TcpListener) {
    let counter = Arc::new(AtomicU64::new(0));
    while let Ok((tcp, _)) = listener.accept().await {
        let counter = counter.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if ws
                    .send(Message::text(sample_event(n).to_string()))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
        });
    }
}
