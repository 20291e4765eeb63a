//! Targets: turning a stored delivery into a request, and its answer into a judgement.
//!
//! One [`Target`] per `[targets.NAME]`, holding its HTTP client (connections are reused
//! per target), its rate limiter, and what the platform told us (a Discord webhook that
//! answered 404 is not called again until restart). The payload formats live in
//! `http.rs`, `slack.rs` and `discord.rs`; this file holds what they share.

mod chat;
pub mod discord;
pub mod http;
pub mod slack;
pub mod template;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{HttpMethod, TargetConfig, TargetKind};
use crate::rate_limit::RateLimiter;
use crate::retry::{self, AttemptResult, Verdict};

/// The most of a response body kept for a dead letter or a log line.
pub const BODY_EXCERPT: usize = 1024;

/// `User-Agent` on every request.
pub const USER_AGENT: &str = concat!("badger-relay/", env!("CARGO_PKG_VERSION"));

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How one attempt ended, with what the judgement and the logs need.
#[derive(Debug, Clone)]
pub struct Answer {
    pub result: AttemptResult,
    /// The first [`BODY_EXCERPT`] bytes of the response body, lossy UTF-8.
    pub body: String,
    /// The transport error, without the URL (it may hold a token).
    pub error: Option<String>,
    /// Discord's bucket ran dry: wait this long before the next request.
    pub bucket_reset: Option<Duration>,
    pub elapsed: Duration,
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// For logs and dead letters: `HTTP 503: <body excerpt>`, `timeout`, ...
    pub reason: String,
    /// What the operator must fix, for permanent platform errors.
    pub advice: Option<&'static str>,
}

/// The payload could not be made (a chat target fed an event that is not an object).
#[derive(Debug, thiserror::Error)]
#[error("cannot render the event for this target: {0}")]
pub struct RenderError(String);

pub struct Target {
    pub config: TargetConfig,
    client: reqwest::Client,
    pub limiter: RateLimiter,
    /// What every request carries: `Content-Type` and, for http targets, the configured
    /// headers, built once here rather than per delivery. Values are marked sensitive so
    /// no debug print of a request shows a token.
    base_headers: HeaderMap,
    /// Set when the platform said the webhook no longer exists.
    gone: AtomicBool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.config.name)
            .field("url", &self.config.url)
            .finish()
    }
}

impl Target {
    pub fn new(config: TargetConfig) -> Result<Target, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(config.concurrency.max(1))
            // A redirect would re-send the payload somewhere the operator did not name.
            .redirect(reqwest::redirect::Policy::none())
            // The bundled roots plus the config's CA files; proxies still come from the
            // environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY), as reqwest reads them.
            .use_preconfigured_tls(crate::tls::http_config(&config.tls))
            .build()?;
        let mut base_headers = HeaderMap::new();
        base_headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let TargetKind::Http(opts) = &config.kind {
            for (name, value) in &opts.headers {
                // The config validated both; a pair that does not parse is left out, not sent broken.
                if let (Ok(n), Ok(mut v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value.expose()),
                ) {
                    v.set_sensitive(true);
                    base_headers.insert(n, v);
                }
            }
        }
        Ok(Target {
            limiter: RateLimiter::new(config.rate_limit),
            config,
            client,
            base_headers,
            gone: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Why this target must not be called again, if the platform said so: the reason
    /// for the dead letter, and what the operator must do.
    pub fn gone(&self) -> Option<(&'static str, &'static str)> {
        self.gone.load(Ordering::Relaxed).then_some((
            "not sent: the Discord webhook was deleted (it answered 404 Unknown Webhook); Discord asks clients to stop calling it",
            "create a new Discord webhook, update the target's url, restart, then `badger-relay outbox retry --target` to send these",
        ))
    }

    /// The exact request for one delivery. `timestamp` is seconds since the epoch.
    pub fn request(
        &self,
        delivery_id: &str,
        timestamp: u64,
        event: &Bytes,
    ) -> Result<Request, RenderError> {
        let mut headers = self.base_headers.clone();
        let (method, url, body) = match &self.config.kind {
            TargetKind::Http(opts) => {
                let method = match opts.method {
                    HttpMethod::Post => reqwest::Method::POST,
                    HttpMethod::Put => reqwest::Method::PUT,
                };
                let id = HeaderValue::from_str(delivery_id).expect("delivery ids are ASCII");
                headers.insert(HeaderName::from_static("webhook-id"), id);
                headers.insert(
                    HeaderName::from_static("webhook-timestamp"),
                    HeaderValue::from(timestamp),
                );
                if let Some(key) = &opts.signing_key {
                    let sig = http::sign(&key.0, delivery_id, timestamp, event);
                    headers.insert(
                        HeaderName::from_static("webhook-signature"),
                        HeaderValue::from_str(&sig).expect("base64 is ASCII"),
                    );
                }
                (method, self.config.url.expose().clone(), event.clone())
            }
            TargetKind::Slack(opts) => {
                let map = parse_object(event)?;
                let body = serde_json::to_vec(&slack::payload(&map, opts))
                    .map_err(|e| RenderError(e.to_string()))?;
                (
                    reqwest::Method::POST,
                    self.config.url.expose().clone(),
                    Bytes::from(body),
                )
            }
            TargetKind::Discord(opts) => {
                let map = parse_object(event)?;
                let body = serde_json::to_vec(&discord::payload(&map, opts))
                    .map_err(|e| RenderError(e.to_string()))?;
                (
                    reqwest::Method::POST,
                    discord::request_url(self.config.url.expose(), opts),
                    Bytes::from(body),
                )
            }
        };
        Ok(Request {
            method,
            url,
            headers,
            body,
        })
    }

    /// Send one request and read what the target answered.
    pub async fn send(&self, request: Request) -> Answer {
        let started = tokio::time::Instant::now();
        let sent = self
            .client
            .request(request.method, request.url)
            .headers(request.headers)
            .body(request.body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return transport_failure(e, started.elapsed()),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match read_excerpt(response).await {
            Ok(b) => b,
            Err(e) if status / 100 != 2 => return transport_failure(e, started.elapsed()),
            // A 2xx whose body broke off is still a 2xx: the target took the delivery.
            Err(_) => Vec::new(),
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let mut retry_after =
            header("retry-after").and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let mut bucket_reset = None;
        if let TargetKind::Discord(_) = self.config.kind {
            if status == 429 {
                retry_after = retry_after.max(discord::retry_after_from_body(&body));
            }
            if header("x-ratelimit-remaining") == Some("0") {
                bucket_reset = header("x-ratelimit-reset-after")
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s.min(3600.0)));
            }
        }
        Answer {
            result: AttemptResult::Response {
                status,
                retry_after,
            },
            body: String::from_utf8_lossy(&body).into_owned(),
            error: None,
            bucket_reset,
            elapsed: started.elapsed(),
        }
    }

    /// Decide what an answer means for this target, and apply what it says about the
    /// target as a whole (pauses, a deleted webhook).
    pub fn judge(&self, answer: &Answer) -> Judgement {
        self.limiter.answered();
        if let Some(reset) = answer.bucket_reset {
            self.limiter.pause_for(reset);
        }
        let verdict = retry::classify(&answer.result);
        let (reason, advice) = match answer.result {
            AttemptResult::Response {
                status,
                retry_after,
            } => {
                if let (429, Some(floor)) = (status, retry_after) {
                    self.limiter.pause_for(floor);
                }
                let advice = match &self.config.kind {
                    TargetKind::Slack(_) => slack::diagnose(status, answer.body.as_bytes()),
                    TargetKind::Discord(_) => {
                        if discord::webhook_deleted(status, answer.body.as_bytes()) {
                            self.gone.store(true, Ordering::Relaxed);
                        }
                        discord::diagnose(status, answer.body.as_bytes())
                    }
                    TargetKind::Http(_) => None,
                };
                let reason = if answer.body.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {}", answer.body)
                };
                (reason, advice)
            }
            AttemptResult::Timeout => (format!("timeout after {:?}", self.config.timeout), None),
            AttemptResult::Transport => (
                answer
                    .error
                    .clone()
                    .unwrap_or_else(|| "connection failed".into()),
                None,
            ),
        };
        Judgement {
            verdict,
            reason,
            advice,
        }
    }
}

fn parse_object(event: &Bytes) -> Result<serde_json::Map<String, serde_json::Value>, RenderError> {
    serde_json::from_slice(event).map_err(|e| RenderError(e.to_string()))
}

/// Read at most [`BODY_EXCERPT`] bytes of the body; the rest is not waited for.
async fn read_excerpt(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = BODY_EXCERPT - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= BODY_EXCERPT {
            break;
        }
    }
    Ok(out)
}

fn transport_failure(e: reqwest::Error, elapsed: Duration) -> Answer {
    let result = if e.is_timeout() {
        AttemptResult::Timeout
    } else {
        AttemptResult::Transport
    };
    Answer {
        result,
        body: String::new(),
        error: Some(crate::telemetry::error_chain(&e.without_url())),
        bucket_reset: None,
        elapsed,
    }
}

/// Seconds since the epoch, for `webhook-timestamp`.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
