//! The HTTP server (`[server]`): `/healthz`, `/readyz`, `/metrics`, and `POST /ingest`.
//!
//! `/ingest` takes ScrapeBadger's webhook deliveries as a second source. It answers 202
//! only once the event's deliveries are durable in the outbox, so ScrapeBadger keeps
//! retrying anything we did not store. Order of checks: size (413), signature (401, in
//! constant time, before the body is parsed), JSON (400).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;
use crate::event::Event;
use crate::intake::{Accepted, Intake};
use crate::outbox::OutboxError;
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::telemetry::Metrics;
use crate::telemetry::error_chain;

mod listen;
pub(crate) mod normalize;
mod quiet;

/// What the server needs of the running bridge.
#[derive(Clone)]
pub(crate) struct Handles {
    /// Rendered by `/metrics`; `/ingest` counts invalid bodies.
    pub metrics: std::sync::Arc<Metrics>,
    /// Where `/ingest` events go.
    pub intake: Intake,
    /// true while the stream is connected (`/readyz`).
    pub connected: tokio::sync::watch::Receiver<bool>,
    /// true while the outbox takes events (`/readyz`, and `/ingest` answers 503 when not).
    pub accepting: tokio::sync::watch::Receiver<bool>,
    /// true while the outbox's engine is reachable (`/readyz`; always true for sled).
    pub engine: tokio::sync::watch::Receiver<bool>,
}

#[derive(Clone)]
struct AppState {
    /// The bridge's parts.
    handles: Handles,
    /// `/ingest` is served only when set.
    ingest_secret: Option<Secret>,
    /// No stream is configured: readiness is the server's own.
    ingest_only: bool,
    /// Log budgets of the rejections: a flood of bad requests logs one line a second.
    quiet: std::sync::Arc<Rejections>,
}

/// The log budget of each kind of `/ingest` rejection.
#[derive(Debug, Default)]
struct Rejections {
    /// 401: missing or wrong signature.
    signature: quiet::Quiet,
    /// 413 and 400: too large, or not an event.
    body: quiet::Quiet,
}

/// Bind and serve when `[server]` is configured. Binding happens before this returns, so
/// a port in use is a start-up error, not a log line.
pub(crate) async fn start(
    config: &Config,
    handles: Handles,
    shutdown: Shutdown,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(server) = &config.server else {
        return Ok(None);
    };
    let state = AppState {
        handles,
        ingest_secret: server.ingest_secret.clone(),
        ingest_only: config.source.api_key.is_none(),
        quiet: Default::default(),
    };
    let app = router(state, config.source.max_message_size);
    let listener = tokio::net::TcpListener::bind(server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", server.listen))?;
    let local: SocketAddr = listener.local_addr()?;
    tracing::info!(listen = %local, ingest = server.ingest_secret.is_some(), "HTTP server listening");
    Ok(Some(tokio::spawn(listen::serve(listener, app, shutdown))))
}

fn router(state: AppState, max_body: usize) -> Router {
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if state.ingest_secret.is_some() {
        app = app.route(
            "/ingest",
            post(ingest).layer(DefaultBodyLimit::max(max_body)),
        );
    }
    app.with_state(state)
}

async fn readyz(State(s): State<AppState>) -> Response {
    if !*s.handles.accepting.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the outbox cannot store events\n",
        )
            .into_response();
    }
    if !*s.handles.engine.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the outbox engine (NATS) is not connected; events wait in the spool\n",
        )
            .into_response();
    }
    if s.ingest_only || *s.handles.connected.borrow() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "stream not connected\n").into_response()
    }
}

/// The Content-Type of the Prometheus text format 0.0.4, charset included, as the
/// Prometheus client libraries send it.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        s.handles.metrics.render(),
    )
        .into_response()
}

/// How long a client has to send an `/ingest` body once its head is in: a body trickled
/// slower than this (slowloris) is answered 408 and the connection freed.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn ingest(State(s): State<AppState>, request: Request) -> Response {
    let Some(secret) = &s.ingest_secret else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !*s.handles.accepting.borrow() {
        // Nothing can be stored: ask ScrapeBadger to come back, before reading the body.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "the outbox cannot store events now, retry later\n",
        )
            .into_response();
    }
    let headers = request.headers().clone();
    let body: Result<Bytes, BytesRejection> =
        match tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(request, &s)).await {
            Ok(body) => body,
            Err(_) => {
                if let Some(suppressed) = s.quiet.body.admit() {
                    tracing::warn!(
                        suppressed,
                        timeout_s = BODY_TIMEOUT.as_secs(),
                        "Rejected an /ingest body: it did not arrive in time"
                    );
                }
                return (
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive in time\n",
                )
                    .into_response();
            }
        };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            // Over max_message_size (or a broken upload): counted and logged like an
            // oversized stream frame. The signature cannot be checked without the body.
            s.handles.metrics.events_invalid.inc();
            if let Some(suppressed) = s.quiet.body.admit() {
                tracing::warn!(status = rejection.status().as_u16(), error = %rejection.body_text(), suppressed, "Rejected an /ingest body");
            }
            return rejection.into_response();
        }
    };
    if !signature(&headers).is_some_and(|sig| verify(secret, &body, sig)) {
        if let Some(suppressed) = s.quiet.signature.admit() {
            tracing::warn!(
                suppressed,
                "Rejected an /ingest request: missing or wrong signature"
            );
        }
        return (StatusCode::UNAUTHORIZED, "bad signature\n").into_response();
    }
    let event = match normalize::to_event(body) {
        Ok(e) => e,
        Err(e) => {
            s.handles.metrics.events_invalid.inc();
            if let Some(suppressed) = s.quiet.body.admit() {
                tracing::warn!(error = %e, suppressed, "Rejected an /ingest body");
            }
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    store(&s, event).await
}

async fn store(s: &AppState, event: Event) -> Response {
    match s.handles.intake.ingested(event).await {
        Ok(Accepted::Stored | Accepted::Offered | Accepted::Unrouted) => {
            (StatusCode::ACCEPTED, "accepted\n").into_response()
        }
        Err(OutboxError::Closed) => {
            (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
        }
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "Could not store an /ingest event; asking the sender to retry");
            (StatusCode::SERVICE_UNAVAILABLE, "not stored, retry later\n").into_response()
        }
    }
}

/// The signature header: `X-Signature-256`, or the older `X-ScrapeBadger-Signature`.
pub(crate) fn signature(headers: &HeaderMap) -> Option<&str> {
    ["x-signature-256", "x-scrapebadger-signature"]
        .iter()
        .find_map(|h| headers.get(*h))
        .and_then(|v| v.to_str().ok())
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body), compared in constant time.
pub(crate) fn verify(secret: &Secret, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| crate::escape::hex_byte(s.get(i..i + 2)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sha256=<hex>` for a body, as ScrapeBadger signs it.
    fn sign_ingest(secret: &str, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    #[test]
    fn signatures_verify_and_reject() {
        let secret = Secret::new("s3cret");
        let body = br#"{"tweet_id":"1"}"#;
        let good = sign_ingest("s3cret", body);
        assert!(verify(&secret, body, &good));
        assert!(verify(&secret, body, &format!(" {good} ")));
        assert!(!verify(&secret, b"{}", &good), "another body");
        assert!(
            !verify(&Secret::new("other"), body, &good),
            "another secret"
        );
        assert!(
            !verify(&secret, body, good.trim_start_matches("sha256=")),
            "no prefix"
        );
        assert!(!verify(&secret, body, "sha256=zz"));
        assert!(!verify(&secret, body, "sha256=abc"));
        let signed = good.replacen("sha256=0", "sha256=+", 1);
        if signed != good {
            assert!(!verify(&secret, body, &signed), "a sign is not a hex digit");
        }
        assert!(!verify(&secret, body, &good[..good.len() - 2]), "truncated");
    }
}
