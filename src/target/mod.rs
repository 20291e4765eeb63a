//! Targets: turning a stored delivery into a request, and its answer into an [`Outcome`].
//!
//! One [`Target`] per `[targets.NAME]`, holding its HTTP client (connections are reused
//! per target), its rate limiter, and what the platform told us (a Discord webhook that
//! answered 404 is not called again until restart).
//!
//! Each platform has one file that knows everything about it: `render` makes its request
//! from an event, `interpret` reads its answer (status, headers, body) into a [`Reply`].
//! This file holds what they share and the two `match`es that pick the platform, so a new
//! platform is a new file and one variant of [`TargetKind`].

mod chat;
pub(crate) mod digest;
pub mod discord;
pub mod http;
mod nats;
pub mod slack;
pub mod teams;
pub mod telegram;
pub mod template;

#[cfg(test)]
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{TargetConfig, TargetKind};
use crate::failure::Failure;
use crate::rate_limit::RateLimiter;
use crate::retry::{self, AttemptResult, Verdict};

/// The most of a response body kept for a dead letter or a log line.
pub const BODY_EXCERPT: usize = 1024;

/// `User-Agent` on every request.
pub const USER_AGENT: &str = concat!("badger-relay/", env!("CARGO_PKG_VERSION"));

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// POST, or PUT where an http target says so.
    pub method: reqwest::Method,
    /// Where it goes (a secret: the URL may carry a token).
    pub url: reqwest::Url,
    /// Content-Type, the platform's and the configured headers.
    pub headers: HeaderMap,
    /// Exactly what is sent.
    pub body: Bytes,
}

/// What a platform's answer means, as the platform's own file reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// Delivered, retry (not before a floor), or dead.
    pub verdict: Verdict,
    /// Hold every delivery of this target this long (a 429's wait, a drained bucket).
    pub pause: Option<Duration>,
    /// The platform said this webhook no longer exists: stop calling it.
    pub gone: bool,
    /// What the operator must fix, for permanent platform errors.
    pub advice: Option<&'static str>,
}

impl Reply {
    /// The generic HTTP reading of an answer: [`retry::classify`] on the status, a
    /// `Retry-After` header as the floor, and a 429 holding the whole target. Platforms
    /// start from this and add what they know.
    pub(crate) fn from_status(status: u16, headers: &HeaderMap) -> Reply {
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let verdict = retry::classify(&AttemptResult::Response {
            status,
            retry_after,
        });
        Reply {
            verdict,
            pause: if status == 429 { retry_after } else { None },
            gone: false,
            advice: None,
        }
    }
}

impl Reply {
    /// No retry before `wait` (a platform's own hint, as Discord's and Telegram's 429
    /// bodies give it), and the whole target held that long: the longer of it and what
    /// the headers said.
    pub(crate) fn wait_at_least(&mut self, wait: Duration) {
        let floor = match self.verdict {
            Verdict::Retry { floor } => floor.max(Some(wait)),
            _ => Some(wait),
        };
        self.verdict = Verdict::Retry { floor };
        self.pause = floor;
    }
}

/// A wait in seconds read from a JSON answer at `pointer` (Discord's `/retry_after`,
/// Telegram's `/parameters/retry_after`), with the same one-day cap as a `Retry-After`
/// header: a broken value must not park the target for weeks.
pub(crate) fn body_wait(body: &[u8], pointer: &str) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let secs = value.pointer(pointer)?.as_f64()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(secs.min(86_400.0)).ok()
}

/// How one attempt ended, with what the worker and the logs need.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Delivered, retry (not before a floor), or dead.
    pub verdict: Verdict,
    /// The HTTP status, when the target answered.
    pub status: Option<u16>,
    /// What went wrong; `None` when delivered.
    pub failure: Option<Failure>,
    /// What the operator must fix, for permanent platform errors.
    pub advice: Option<&'static str>,
    /// From sending the request to reading the answer.
    pub elapsed: Duration,
}

/// The payload could not be made (a chat target fed an event that is not an object, an
/// http target's `body_template` that fails or does not make JSON).
#[derive(Debug, thiserror::Error)]
#[error("cannot render the event for this target: {0}")]
pub struct RenderError(pub(crate) String);

/// How a target's requests travel.
enum Client {
    /// Over the network, connections reused per target.
    Http(reqwest::Client),
    /// Published into JetStream (a nats target), connected on first use.
    Nats(Box<nats::Publisher>),
    /// Answered by a script (unit tests).
    #[cfg(test)]
    Scripted(Arc<Script>),
}

/// A scripted exchange: the answer (status, headers, body) or the transport failure.
#[cfg(test)]
pub(crate) type Script = dyn Fn(
        Request,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(u16, HeaderMap, Vec<u8>), Failure>> + Send>,
    > + Send
    + Sync;

/// What a platform's `render` returns: method, URL, body and the headers it adds.
pub(crate) type Rendered = (reqwest::Method, reqwest::Url, Bytes, HeaderMap);

pub struct Target {
    /// The validated `[targets.NAME]` table.
    pub config: TargetConfig,
    /// How requests travel: HTTP, or in unit tests a script.
    client: Client,
    /// Requests per period, and pauses the platform asked for.
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
        let client = match &config.kind {
            TargetKind::Nats(opts) => Client::Nats(Box::new(nats::Publisher::new(&config, opts))),
            _ => Client::Http(http_client(&config)?),
        };
        Ok(Target {
            limiter: RateLimiter::new(config.rate_limit),
            base_headers: base_headers(&config),
            config,
            client,
            gone: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// A target's HTTP client: connections reused per target, no redirects, its TLS roots.
fn http_client(config: &TargetConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(10)))
        .pool_max_idle_per_host(config.concurrency.max(1))
        // A redirect would re-send the payload somewhere the operator did not name.
        .redirect(reqwest::redirect::Policy::none())
        // The bundled roots plus the config's CA files; proxies still come from the
        // environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY), as reqwest reads them.
        .use_preconfigured_tls(crate::tls::http_config(&config.tls))
        .build()
}

/// What every request of a target carries, built once: `Content-Type` (an http target's
/// `content_type` for its `body_template`, else JSON) and an http target's configured
/// headers. Values are marked sensitive so no debug print of a request shows a token.
fn base_headers(config: &TargetConfig) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let content_type = match &config.kind {
        TargetKind::Http(opts) => opts.content_type.as_deref(),
        _ => None,
    };
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        // The config validated it; one that does not parse falls back, not sent broken.
        content_type
            .and_then(|c| HeaderValue::from_str(c).ok())
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    if let TargetKind::Http(opts) = &config.kind {
        for (name, value) in &opts.headers {
            // The config validated both; a pair that does not parse is left out, not sent broken.
            if let (Ok(n), Ok(mut v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.expose()),
            ) {
                v.set_sensitive(true);
                headers.insert(n, v);
            }
        }
    }
    headers
}

impl Target {
    /// Why this target must not be called again, if the platform said so, and what the
    /// operator must do.
    pub(crate) fn gone(&self) -> Option<(Failure, &'static str)> {
        self.gone.load(Ordering::Relaxed).then(|| {
            (
                Failure::TargetGone {
                    why: "the Discord webhook was deleted (it answered 404 Unknown Webhook); Discord asks clients to stop calling it".into(),
                },
                "create a new Discord webhook, update the target's url, restart, then `badger-relay outbox retry --target` to send these",
            )
        })
    }

    /// The exact request for one delivery. `timestamp` is seconds since the epoch.
    pub fn request(
        &self,
        delivery_id: &str,
        timestamp: u64,
        event: &Bytes,
    ) -> Result<Request, RenderError> {
        let url = self.config.url.expose();
        let rendered = match &self.config.kind {
            TargetKind::Http(opts) => http::render(opts, url, delivery_id, timestamp, event)?,
            TargetKind::Slack(opts) => {
                post_json(url.clone(), &slack::payload(&parse_object(event)?, opts))?
            }
            TargetKind::Discord(opts) => discord::render(opts, url, &parse_object(event)?)?,
            TargetKind::Telegram(opts) => {
                post_json(url.clone(), &telegram::payload(&parse_object(event)?, opts))?
            }
            TargetKind::Teams(opts) => {
                post_json(url.clone(), &teams::payload(&parse_object(event)?, opts))?
            }
            TargetKind::Nats(_) => (
                reqwest::Method::from_bytes(b"PUBLISH").expect("a valid method token"),
                url.clone(),
                event.clone(),
                http::webhook_headers(delivery_id, timestamp),
            ),
        };
        Ok(self.finish(rendered))
    }

    /// A platform's rendering as the request to send: the target's own headers first,
    /// then the platform's.
    fn finish(&self, (method, url, body, extra): Rendered) -> Request {
        let mut headers = self.base_headers.clone();
        headers.extend(extra);
        Request {
            method,
            url,
            headers,
            body,
        }
    }

    /// The request for one message listing several deliveries' tweets (a digest, or a
    /// fold of stale tweets). Only chat targets fold; `check` refuses `digest` and
    /// `stale` elsewhere, so an http target here is a bug, reported as unrenderable.
    pub(crate) fn digest_request(
        &self,
        heading: digest::Heading,
        bodies: &[Bytes],
    ) -> Result<Request, RenderError> {
        let url = self.config.url.expose();
        let events = digest::events(bodies);
        let rendered = match &self.config.kind {
            TargetKind::Slack(opts) => {
                post_json(url.clone(), &slack::digest_payload(heading, &events, opts))?
            }
            TargetKind::Discord(opts) => post_json(
                discord::request_url(url, opts),
                &discord::digest_payload(heading, &events, opts),
            )?,
            TargetKind::Telegram(opts) => post_json(
                url.clone(),
                &telegram::digest_payload(heading, &events, opts),
            )?,
            TargetKind::Teams(_) => {
                post_json(url.clone(), &teams::digest_payload(heading, &events))?
            }
            TargetKind::Http(_) | TargetKind::Nats(_) => {
                return Err(RenderError(format!(
                    "{} target cannot fold deliveries",
                    self.config.kind.name()
                )));
            }
        };
        Ok(self.finish(rendered))
    }

    /// What this target's platform makes of an answer.
    fn interpret(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Reply {
        match &self.config.kind {
            TargetKind::Http(_) | TargetKind::Nats(_) => Reply::from_status(status, headers),
            TargetKind::Slack(_) => slack::interpret(status, headers, body),
            TargetKind::Discord(_) => discord::interpret(status, headers, body),
            TargetKind::Telegram(_) => telegram::interpret(status, headers, body),
            TargetKind::Teams(_) => teams::interpret(status, headers, body),
        }
    }

    /// A target whose requests are answered by `script` instead of the network, for
    /// unit tests of the delivery worker under paused time.
    #[cfg(test)]
    pub(crate) fn scripted(config: TargetConfig, script: Arc<Script>) -> Target {
        Target {
            limiter: RateLimiter::new(config.rate_limit),
            config,
            client: Client::Scripted(script),
            base_headers: HeaderMap::new(),
            gone: AtomicBool::new(false),
        }
    }

    /// Send a request and read the answer: status, headers and the body's first KiB.
    async fn exchange(&self, request: Request) -> Result<(u16, HeaderMap, Vec<u8>), Failure> {
        let client = match &self.client {
            Client::Http(client) => client,
            // `send` publishes a nats target's requests itself.
            Client::Nats(_) => return Err(Failure::Internal),
            #[cfg(test)]
            Client::Scripted(script) => return script(request).await,
        };
        let sent = client
            .request(request.method, request.url)
            .headers(request.headers)
            .body(request.body)
            .send()
            .await;
        let response = sent.map_err(|e| {
            if e.is_timeout() {
                Failure::TimedOut {
                    after: self.config.timeout,
                }
            } else {
                Failure::Unreachable {
                    error: crate::telemetry::error_chain(&e.without_url()),
                }
            }
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // The status decides, whether or not the body could be read: a body that broke
        // off is judged as an empty one (a Discord 404 still means the webhook is gone).
        let body = read_excerpt(response).await.unwrap_or_default();
        Ok((status, headers, body))
    }

    /// Send one request, read the answer and judge it; what the answer says about the
    /// target as a whole (a pause, a deleted webhook) is applied here.
    pub(crate) async fn send(&self, request: Request) -> Outcome {
        if let Client::Nats(publisher) = &self.client {
            let outcome = publisher.publish(request).await;
            self.limiter.answered();
            return outcome;
        }
        let started = tokio::time::Instant::now();
        let exchanged = self.exchange(request).await;
        // An answer came (or the attempt ended): a one-per-period limit counts from here.
        self.limiter.answered();
        let (status, headers, body) = match exchanged {
            Ok(answer) => answer,
            Err(failure) => {
                let result = match failure {
                    Failure::TimedOut { .. } => AttemptResult::Timeout,
                    _ => AttemptResult::Transport,
                };
                return Outcome {
                    verdict: retry::classify(&result),
                    status: None,
                    failure: Some(failure),
                    advice: None,
                    elapsed: started.elapsed(),
                };
            }
        };
        let reply = self.interpret(status, &headers, &body);
        if let Some(pause) = reply.pause {
            self.limiter.pause_for(pause);
        }
        if reply.gone {
            self.gone.store(true, Ordering::Relaxed);
        }
        let failure = (reply.verdict != Verdict::Delivered).then(|| Failure::Rejected {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        Outcome {
            verdict: reply.verdict,
            status: Some(status),
            failure,
            advice: reply.advice,
            elapsed: started.elapsed(),
        }
    }
}

/// A chat platform's request: its JSON payload POSTed to `url`.
pub(crate) fn post_json(
    url: reqwest::Url,
    payload: &serde_json::Value,
) -> Result<Rendered, RenderError> {
    let body = serde_json::to_vec(payload).map_err(|e| RenderError(e.to_string()))?;
    Ok((
        reqwest::Method::POST,
        url,
        Bytes::from(body),
        HeaderMap::new(),
    ))
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

/// Seconds since the epoch, for `webhook-timestamp`.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::config::Config;

    /// One request answered with `head` and a body cut off after `sent` of its bytes.
    async fn broken_answer(head: &'static str) -> reqwest::Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 64 * 1024];
            let _ = tcp.read(&mut buf).await;
            tcp.write_all(head.as_bytes()).await.unwrap();
            // Then hang up mid-body.
        });
        format!("http://{addr}/api/webhooks/1/abc").parse().unwrap()
    }

    fn target(kind: &str, url: &reqwest::Url) -> Target {
        let text = format!(
            "[targets.t]\ntype = \"{kind}\"\nurl = \"{url}\"\n\n[[routes]]\nname = \"all\"\ntargets = [\"t\"]\n"
        );
        let config = Config::parse(&text, std::path::Path::new("t.toml"), &|_| None).unwrap();
        Target::new(config.targets[0].clone()).unwrap()
    }

    #[tokio::test]
    async fn the_status_decides_when_the_body_of_an_error_breaks_off() {
        let url = broken_answer(
            "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"code\": 100",
        )
        .await;
        let t = target("discord", &url);
        let event = Bytes::from_static(br#"{"tweet_id":"1","tweet_text":"hi"}"#);
        let outcome = t.send(t.request("msg_1", 0, &event).unwrap()).await;
        assert_eq!(outcome.status, Some(404));
        assert_eq!(outcome.verdict, Verdict::Dead, "{outcome:?}");
        assert!(
            t.gone().is_some(),
            "a Discord 404 marks the webhook gone even when its body broke off"
        );
    }

    #[tokio::test]
    async fn a_retriable_status_stays_retriable_when_its_body_breaks_off() {
        let url = broken_answer(
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\ncontent-length: 50\r\n\r\nbusy",
        )
        .await;
        let t = target("http", &url);
        let outcome = t
            .send(t.request("msg_1", 0, &Bytes::from_static(b"{}")).unwrap())
            .await;
        assert_eq!(outcome.status, Some(503));
        assert_eq!(
            outcome.verdict,
            Verdict::Retry {
                floor: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            outcome.failure,
            Some(Failure::Rejected { status: 503, .. })
        ));
    }
}
