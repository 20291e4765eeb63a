//! The WebSocket stream server: plays ScrapeBadger's `/v1/twitter/stream` on loopback.
//!
//! It accepts the relay's (or the forwarder's) connection, then the scenario pushes
//! frames through a [`Feed`]: a burst as fast as the client takes them (TCP back-pressure
//! is the only brake), or a steady rate. Incoming frames (close, pongs) are read and
//! dropped by a background task so the connection stays healthy.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::events::stream_event;

/// How many frames are written before a flush in a burst.
const BURST_FLUSH: u64 = 64;

pub struct StreamServer {
    listener: TcpListener,
    pub addr: SocketAddr,
}

impl StreamServer {
    pub async fn bind() -> anyhow::Result<StreamServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        Ok(StreamServer { listener, addr })
    }

    /// The `[source] url` to configure (the client appends `?api_key=...`).
    pub fn url(&self) -> String {
        format!("ws://{}/v1/twitter/stream", self.addr)
    }

    /// Wait (at most `deadline`) for a client and complete the WebSocket handshake.
    pub async fn accept(&self, deadline: Duration) -> anyhow::Result<Feed> {
        let (tcp, _) = tokio::time::timeout(deadline, self.listener.accept())
            .await
            .map_err(|_| anyhow!("no client connected to the stream within {deadline:?}"))??;
        tcp.set_nodelay(true)?;
        let ws = tokio::time::timeout(deadline, tokio_tungstenite::accept_async(tcp))
            .await
            .map_err(|_| anyhow!("WebSocket handshake timed out"))?
            .context("WebSocket handshake")?;
        let (sink, mut incoming) = ws.split();
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = incoming.next().await {} });
        Ok(Feed {
            sink,
            reader,
            buf: String::with_capacity(512),
        })
    }

    /// Accept connections and keep them open without sending anything (a relay that
    /// only drains its backlog still wants a live stream). Ends when the handle is aborted.
    pub fn serve_idle(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = self.listener.accept().await {
                if let Ok(feed) = tokio_tungstenite::accept_async(tcp).await {
                    held.push(feed);
                }
            }
        })
    }
}

/// One accepted connection, ready to carry frames.
pub struct Feed {
    sink: SplitSink<WebSocketStream<TcpStream>, Message>,
    reader: JoinHandle<()>,
    buf: String,
}

/// When a run of frames was written.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// Just before the first frame, ns since the bench's origin.
    pub first_ns: u64,
    /// Just after the last frame was flushed.
    pub last_ns: u64,
}

impl Feed {
    fn frame(&mut self, seq: u64, base: Instant) -> Message {
        stream_event(&mut self.buf, seq, nanos(base));
        Message::text(self.buf.clone())
    }

    /// Write the events `seqs` as fast as the client reads them.
    pub async fn burst(&mut self, seqs: Range<u64>, base: Instant) -> anyhow::Result<Sent> {
        let first_ns = nanos(base);
        for seq in seqs {
            let frame = self.frame(seq, base);
            self.sink.feed(frame).await.context("stream write")?;
            if seq % BURST_FLUSH == BURST_FLUSH - 1 {
                self.sink.flush().await.context("stream write")?;
            }
        }
        self.sink.flush().await.context("stream write")?;
        Ok(Sent {
            first_ns,
            last_ns: nanos(base),
        })
    }

    /// Write the events `seqs` at `rate` per second, each stamped with its send time.
    pub async fn paced(
        &mut self,
        seqs: Range<u64>,
        rate: u64,
        base: Instant,
    ) -> anyhow::Result<Sent> {
        let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let first_ns = nanos(base);
        for seq in seqs {
            ticks.tick().await;
            let frame = self.frame(seq, base);
            self.sink.send(frame).await.context("stream write")?;
        }
        Ok(Sent {
            first_ns,
            last_ns: nanos(base),
        })
    }

    /// Close the connection (the forwarder stops when its stream ends).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.sink.close()).await;
        self.reader.abort();
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// ns since `base`.
pub fn nanos(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}
