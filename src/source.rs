//! The WebSocket source: one connection to the ScrapeBadger stream, kept alive.
//!
//! - The API key goes in the `api_key` query parameter and nowhere else: every error
//!   text that could carry the URL is scrubbed before it is logged.
//! - Pings are answered by tungstenite on the next read; any frame resets the
//!   `idle_timeout` watchdog, and silence past it means reconnect.
//! - Reconnects back off exponentially with full jitter (backon for the schedule). The
//!   schedule resets once a connection has stayed up for [`HEALTHY_AFTER`], so one flap
//!   does not leave the next outage at the maximum delay.
//! - A 401/403 handshake is an authentication error: logged as such, retried at the
//!   slow end, the process stays up.
//! - Bad frames (too large, binary, not JSON, not an object) are counted and logged,
//!   never fatal. Frames larger than `max_message_size` are dropped by us, not by
//!   tungstenite, so the connection is kept.

use std::time::Duration;

use backon::BackoffBuilder as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};

use crate::config::SourceConfig;
use crate::event::Event;
use crate::intake::Intake;
use crate::shutdown::Shutdown;
use crate::telemetry::Metrics;

/// A connection up this long proves the link healthy: the backoff starts over.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// tungstenite's own limit, far above ours: past it the connection drops (it has to buffer
/// a frame to measure it), so ours is the one users meet.
const HARD_FRAME_LIMIT: usize = 64 * 1024 * 1024;

/// Why a connection ended.
#[derive(Debug)]
enum End {
    Shutdown,
    Idle,
    Closed,
    Error(String),
    /// The pipeline is gone (shutdown): stop reading.
    IntakeClosed,
}

pub struct Source {
    config: SourceConfig,
    intake: Intake,
    metrics: std::sync::Arc<Metrics>,
    connected: tokio::sync::watch::Sender<bool>,
    /// The key as written and as percent-encoded in the URL: what [`Source::scrub`]
    /// removes from error texts. Worked out once, not per error.
    key_forms: Vec<String>,
}

impl Source {
    pub fn new(
        config: SourceConfig,
        intake: Intake,
        metrics: std::sync::Arc<Metrics>,
        connected: tokio::sync::watch::Sender<bool>,
    ) -> Source {
        let mut key_forms = Vec::new();
        if let Some(key) = config
            .api_key
            .as_ref()
            .map(|k| k.expose())
            .filter(|k| !k.is_empty())
        {
            let mut url = reqwest::Url::parse("ws://x/").expect("a static URL");
            url.query_pairs_mut().append_pair("k", key);
            let encoded = url
                .query()
                .unwrap_or("")
                .trim_start_matches("k=")
                .to_string();
            // The longer form first, so a key inside its encoded form is not half-replaced.
            if encoded != key {
                key_forms.push(encoded);
            }
            key_forms.push(key.to_string());
        }
        Source {
            config,
            intake,
            metrics,
            connected,
            key_forms,
        }
    }

    /// The URL with the key, for the connect call only.
    fn url_with_key(&self) -> String {
        let mut url = self.config.url.clone();
        if let Some(key) = &self.config.api_key {
            url.query_pairs_mut().append_pair("api_key", key.expose());
        }
        url.to_string()
    }

    /// Remove every trace of the key from a text bound for a log line.
    fn scrub(&self, text: String) -> String {
        self.key_forms
            .iter()
            .fold(text, |t, form| t.replace(form.as_str(), "***"))
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.config.reconnect.initial)
            .with_max_delay(self.config.reconnect.max)
            .without_max_times()
            .build()
    }

    pub async fn run(self, mut shutdown: Shutdown) {
        // The configured URL never holds the key (the config refuses `api_key=` in it).
        let shown_url = format!("{}?api_key=***", self.config.url);
        let mut backoff = self.backoff();
        let mut first = true;
        while !shutdown.is_triggered() {
            if !first {
                self.metrics.source_reconnects.inc();
            }
            first = false;
            let ws_config = WebSocketConfig::default()
                .max_message_size(Some(HARD_FRAME_LIMIT.max(self.config.max_message_size)))
                .max_frame_size(Some(HARD_FRAME_LIMIT.max(self.config.max_message_size)));
            let connect = tokio_tungstenite::connect_async_with_config(
                self.url_with_key(),
                Some(ws_config),
                false,
            );
            let connected = tokio::select! {
                r = tokio::time::timeout(self.config.idle_timeout, connect) => r,
                _ = shutdown.wait() => break,
            };
            let mut delay = backoff.next().unwrap_or(self.config.reconnect.max);
            match connected {
                Ok(Ok((ws, _))) => {
                    tracing::info!(url = %shown_url, "Connected to the stream");
                    self.set_connected(true);
                    let since = Instant::now();
                    let end = self.read(ws, &mut shutdown).await;
                    self.set_connected(false);
                    if since.elapsed() >= HEALTHY_AFTER {
                        backoff = self.backoff();
                        delay = backoff.next().unwrap_or(self.config.reconnect.initial);
                    }
                    match end {
                        End::Shutdown | End::IntakeClosed => break,
                        End::Idle => {
                            tracing::warn!(idle_timeout = ?self.config.idle_timeout, "No frame from the stream within idle_timeout; reconnecting")
                        }
                        End::Closed => {
                            tracing::warn!("The stream closed the connection; reconnecting")
                        }
                        End::Error(e) => {
                            tracing::warn!(error = %e, "Stream connection failed; reconnecting")
                        }
                    }
                }
                Ok(Err(tungstenite::Error::Http(response)))
                    if matches!(response.status().as_u16(), 401 | 403) =>
                {
                    tracing::error!(
                        status = response.status().as_u16(),
                        "The stream refused the API key (authentication error): check source.api_key; retrying slowly"
                    );
                    delay = self.config.reconnect.max;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %self.scrub(e.to_string()), "Cannot connect to the stream")
                }
                Err(_) => tracing::warn!("Connecting to the stream timed out"),
            }
            // Full jitter: anywhere between zero and the exponential delay.
            let delay = delay.mul_f64(fastrand::f64());
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait() => break,
            }
        }
        self.set_connected(false);
    }

    fn set_connected(&self, up: bool) {
        self.metrics.source_connected.set(i64::from(up));
        self.connected.send_replace(up);
    }

    async fn read<S>(
        &self,
        mut ws: tokio_tungstenite::WebSocketStream<S>,
        shutdown: &mut Shutdown,
    ) -> End
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        loop {
            let next = tokio::select! {
                n = tokio::time::timeout(self.config.idle_timeout, ws.next()) => n,
                _ = shutdown.wait() => {
                    // A polite close, but a peer that does not read cannot hold the exit.
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    return End::Shutdown;
                }
            };
            let message = match next {
                Err(_) => return End::Idle,
                Ok(None) => return End::Closed,
                Ok(Some(Err(e))) => return End::Error(self.scrub(e.to_string())),
                Ok(Some(Ok(m))) => m,
            };
            match message {
                Message::Text(text) => {
                    if self.accept(Bytes::from(text)).await.is_err() {
                        return End::IntakeClosed;
                    }
                }
                Message::Binary(data) => {
                    self.metrics.events_invalid.inc();
                    tracing::warn!(bytes = data.len(), "Ignored a binary frame from the stream");
                }
                Message::Close(_) => {
                    // Let tungstenite finish the closing handshake; the stream ends next.
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    async fn accept(&self, bytes: Bytes) -> Result<(), crate::outbox::OutboxError> {
        if bytes.len() > self.config.max_message_size {
            self.metrics.events_invalid.inc();
            tracing::warn!(
                bytes = bytes.len(),
                max_message_size = self.config.max_message_size,
                "Dropped a frame larger than max_message_size"
            );
            return Ok(());
        }
        match Event::parse(bytes) {
            Ok(event) => self.intake.streamed(event).await.map(drop),
            Err(e) => {
                self.metrics.events_invalid.inc();
                tracing::warn!(error = %e, "Ignored a frame that is not an event");
                Ok(())
            }
        }
    }
}
