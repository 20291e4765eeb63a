//! The WebSocket source: one connection to the ScrapeBadger stream, kept alive.
//!
//! - The API key goes in the `api_key` query parameter and nowhere else: every error
//!   text that could carry the URL is scrubbed before it is logged.
//! - Pings are answered by tungstenite on the next read; any frame resets the
//!   `idle_timeout` watchdog, and silence past it means reconnect.
//! - Reconnects back off exponentially with full jitter (backon for the schedule). The
//!   schedule resets once a connection has stayed up for [`HEALTHY_AFTER`], so one flap
//!   does not leave the next outage at the maximum delay.
//! - A 401/403 handshake is an authentication error: logged as such, retried between
//!   `reconnect.max / 2` and `reconnect.max` (never at once), the process stays up.
//! - TLS is rustls with the bundled roots plus the config's CA files ([`crate::tls`]);
//!   a configured or environment proxy is crossed with HTTP CONNECT ([`crate::proxy`]).
//! - Bad frames (too large, binary, not JSON, not an object) are counted and logged,
//!   never fatal. Frames larger than `max_message_size` are dropped by us, not by
//!   tungstenite, so the connection is kept.

use std::time::Duration;

use backon::BackoffBuilder as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

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
    /// Whether the outbox takes events: while it does not, nothing is read.
    accepting: tokio::sync::watch::Receiver<bool>,
    /// The key as written and as percent-encoded in the URL: what [`Source::scrub`]
    /// removes from error texts. Worked out once, not per error.
    key_forms: Vec<String>,
    /// rustls with the bundled roots and the config's CA files, built once here.
    tls: std::sync::Arc<rustls::ClientConfig>,
}

/// Why a connection attempt failed.
#[derive(Debug)]
enum ConnectError {
    /// The proxy would not open a tunnel (its message never holds its credentials).
    Proxy(crate::proxy::ProxyError),
    /// TCP, TLS or the WebSocket handshake failed (a 401/403 is one of these).
    Ws(tungstenite::Error),
}

/// Keys this long are masked wherever they appear; shorter ones only where they stand
/// as a value (`api_key=...`), since two letters also occur inside ordinary words.
const MASK_ANYWHERE_FROM: usize = 8;

impl Source {
    pub fn new(
        config: SourceConfig,
        intake: Intake,
        metrics: std::sync::Arc<Metrics>,
        connected: tokio::sync::watch::Sender<bool>,
        accepting: tokio::sync::watch::Receiver<bool>,
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
        let tls = crate::tls::stream_config(&config.tls);
        Source {
            config,
            intake,
            metrics,
            connected,
            accepting,
            key_forms,
            tls,
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

    /// Remove the key from a text bound for a log line: wherever it is the value of
    /// `api_key=` (or of a header, `: KEY`), and anywhere at all when it is long enough
    /// not to be mistaken for part of a word.
    fn scrub(&self, text: String) -> String {
        self.key_forms
            .iter()
            .fold(text, |t, form| scrub_key(&t, form))
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
            let connect = self.connect(ws_config);
            let connected = tokio::select! {
                r = tokio::time::timeout(self.config.idle_timeout, connect) => r,
                _ = shutdown.wait() => break,
            };
            let mut delay = backoff.next().unwrap_or(self.config.reconnect.max);
            let mut refused = false;
            match connected {
                Ok(Ok(ws)) => {
                    match &self.config.proxy {
                        Some(proxy) => {
                            tracing::info!(url = %shown_url, proxy = %proxy, "Connected to the stream")
                        }
                        None => tracing::info!(url = %shown_url, "Connected to the stream"),
                    }
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
                Ok(Err(ConnectError::Ws(tungstenite::Error::Http(response))))
                    if matches!(response.status().as_u16(), 401 | 403) =>
                {
                    tracing::error!(
                        status = response.status().as_u16(),
                        "The stream refused the API key (authentication error): check source.api_key; retrying slowly"
                    );
                    refused = true;
                }
                Ok(Err(ConnectError::Ws(e))) => {
                    let error = self.scrub(crate::telemetry::error_chain(&e));
                    match untrusted_issuer(&e) {
                        true => {
                            tracing::warn!(error = %error, advice = UNTRUSTED_ADVICE, "Cannot connect to the stream")
                        }
                        false => tracing::warn!(error = %error, "Cannot connect to the stream"),
                    }
                }
                Ok(Err(ConnectError::Proxy(e))) => {
                    let error = self.scrub(crate::telemetry::error_chain(&e));
                    tracing::warn!(error = %error, "Cannot connect to the stream through the proxy")
                }
                Err(_) => tracing::warn!("Connecting to the stream timed out"),
            }
            let delay = reconnect_delay(delay, refused, self.config.reconnect.max, fastrand::f64());
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait() => break,
            }
        }
        self.set_connected(false);
    }

    /// One connection: straight to the stream, or through a tunnel of the proxy; TLS
    /// (for `wss://`) with our own rustls config either way.
    async fn connect(
        &self,
        ws_config: WebSocketConfig,
    ) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, ConnectError> {
        let connector = Some(Connector::Rustls(self.tls.clone()));
        let request = self.url_with_key();
        let Some(proxy) = &self.config.proxy else {
            return tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(ws_config),
                false,
                connector,
            )
            .await
            .map(|(ws, _)| ws)
            .map_err(ConnectError::Ws);
        };
        let url = &self.config.url;
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(443);
        let tcp = crate::proxy::connect(proxy, host, port)
            .await
            .map_err(ConnectError::Proxy)?;
        tokio_tungstenite::client_async_tls_with_config(request, tcp, Some(ws_config), connector)
            .await
            .map(|(ws, _)| ws)
            .map_err(ConnectError::Ws)
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
        let mut accepting = self.accepting.clone();
        loop {
            let refusing = !*accepting.borrow_and_update();
            if refusing {
                // The outbox cannot store (a full or failing disk): stop reading until it
                // can. What was read is held by the intake; the server may close an
                // unread connection, and then we reconnect.
                let open_again = async {
                    let _ = accepting.wait_for(|a| *a).await;
                };
                tokio::select! {
                    _ = open_again => {}
                    _ = shutdown.wait() => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                        return End::Shutdown;
                    }
                }
            }
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

/// What to do about a certificate from an unknown CA.
const UNTRUSTED_ADVICE: &str = "the stream's certificate is issued by a CA the relay does not trust (an internal CA, a TLS-inspecting proxy): add it with [tls] ca_file or SSL_CERT_FILE";

/// Whether the TLS handshake failed because no trusted root issued the certificate.
fn untrusted_issuer(e: &tungstenite::Error) -> bool {
    use rustls::{CertificateError, Error as TlsError};
    let rustls_error = match e {
        tungstenite::Error::Tls(tungstenite::error::TlsError::Rustls(e)) => Some(&**e),
        tungstenite::Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref()),
        _ => None,
    };
    matches!(
        rustls_error,
        Some(TlsError::InvalidCertificate(
            CertificateError::UnknownIssuer
        ))
    )
}

/// How long to wait before the next connection attempt. `next` is the exponential
/// schedule's delay; `r` is uniform in [0, 1). Full jitter (anywhere from zero to `next`)
/// spreads reconnecting clients; after an authentication error the wait is between
/// `max / 2` and `max`, so a bad key is never retried at once.
fn reconnect_delay(next: Duration, auth_error: bool, max: Duration, r: f64) -> Duration {
    let r = r.clamp(0.0, 1.0);
    if auth_error {
        max / 2 + (max / 2).mul_f64(r)
    } else {
        next.mul_f64(r)
    }
}

/// `text` with `key` masked as [`Source::scrub`] describes.
fn scrub_key(text: &str, key: &str) -> String {
    if key.is_empty() {
        return text.to_owned();
    }
    if key.chars().count() >= MASK_ANYWHERE_FROM {
        return text.replace(key, "***");
    }
    // A value stands after `=` (a query parameter) or `: ` (a header) and ends where a
    // character that cannot be part of a query value or a token does.
    let is_value_char = |c: char| c.is_ascii_alphanumeric() || "-._~%+".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in text.match_indices(key) {
        let (before, after) = (&text[..at], &text[at + key.len()..]);
        let starts_value = before.ends_with("api_key=") || before.ends_with(": ");
        let ends_value = !after.chars().next().is_some_and(is_value_char);
        if starts_value && ends_value {
            out.push_str(&text[copied..at]);
            out.push_str("***");
            copied = at + key.len();
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authentication_error_waits_between_half_max_and_max() {
        let max = Duration::from_secs(60);
        let next = Duration::from_millis(50);
        for r in [0.0, 0.25, 0.5, 0.999, 1.0] {
            let d = reconnect_delay(next, true, max, r);
            assert!(d >= max / 2 && d <= max, "r = {r}: {d:?}");
        }
        assert_eq!(reconnect_delay(next, true, max, 0.0), max / 2);
        // Any other failure: full jitter of the schedule's delay.
        assert_eq!(reconnect_delay(next, false, max, 0.0), Duration::ZERO);
        assert_eq!(reconnect_delay(next, false, max, 0.5), next / 2);
        assert!(reconnect_delay(next, false, max, 0.999) < next);
    }

    #[test]
    fn a_short_key_is_masked_only_where_it_is_a_value() {
        let text = "invalid peer certificate: UnknownIssuer; url ws://h/s?api_key=k&x=1";
        assert_eq!(
            scrub_key(text, "k"),
            "invalid peer certificate: UnknownIssuer; url ws://h/s?api_key=***&x=1"
        );
        assert_eq!(scrub_key("api_key=nk kn", "kn"), "api_key=nk kn");
        assert_eq!(
            scrub_key("x-api-key: ab, api_key=ab", "ab"),
            "x-api-key: ***, api_key=***"
        );
        assert_eq!(scrub_key("api_key=abc", "ab"), "api_key=abc");
        // A long key goes wherever it is.
        assert_eq!(
            scrub_key(
                "echo sk_live_12345678 and api_key=sk_live_12345678",
                "sk_live_12345678"
            ),
            "echo *** and api_key=***"
        );
    }
}
