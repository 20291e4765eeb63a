//! NATS JetStream as a target: each delivery published to a subject, the publish ack
//! standing for the 2xx.
//!
//! The message is the event JSON exactly as received, with the Standard Webhooks
//! headers an http target gets (`webhook-id`, `webhook-timestamp`) and `Nats-Msg-Id` set
//! to the webhook-id, so the stream's duplicate window drops a retry whose first
//! attempt was stored but whose ack was lost: a delivery is stored once however often
//! it is published. A stream must capture the subject (the relay does not create it:
//! its retention and limits are the operator's). Downstream consumers then read from
//! their own stream, at their own pace.
//!
//! The connection is made on the first delivery, not at start-up, so a NATS that is
//! down delays this target's deliveries (retried with backoff like any failure) and
//! nothing else; once made, the client reconnects by itself.

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind};
use tokio::sync::OnceCell;

use super::{Outcome, Request};
use crate::config::{NatsTargetOptions, TargetConfig};
use crate::failure::Failure;
use crate::retry::Verdict;

/// The headers of the published message that come from the request.
const COPIED_HEADERS: [&str; 2] = ["webhook-id", "webhook-timestamp"];

/// One target's connection to its NATS, made on first use.
pub(crate) struct Publisher {
    /// Subject, servers and credentials.
    opts: NatsTargetOptions,
    /// The target's `timeout`: for the connection and for each publish ack.
    timeout: Duration,
    /// The JetStream context, once connected. Left empty while connecting fails, so the
    /// next attempt tries again.
    js: OnceCell<jetstream::Context>,
}

impl Publisher {
    pub(crate) fn new(config: &TargetConfig, opts: &NatsTargetOptions) -> Publisher {
        Publisher {
            opts: opts.clone(),
            timeout: config.timeout,
            js: OnceCell::new(),
        }
    }

    /// Connect, or say why not: credentials the server refuses are the operator's to
    /// fix (dead, with advice); anything else is tried again.
    async fn context(&self) -> Result<&jetstream::Context, Outcome> {
        self.js
            .get_or_try_init(|| async {
                let options = crate::outbox::nats_client_options(&self.opts.auth)
                    .await
                    .map_err(|e| outcome_dead(format!("{e:#}"), ADVICE_CREDENTIALS))?
                    .connection_timeout(self.timeout);
                let urls: Vec<String> = self
                    .opts
                    .urls
                    .iter()
                    .map(|u| u.0.expose().to_owned())
                    .collect();
                let client = options.connect(urls.as_slice()).await.map_err(|e| {
                    let refused = matches!(
                        e.kind(),
                        async_nats::ConnectErrorKind::Authentication
                            | async_nats::ConnectErrorKind::AuthorizationViolation
                    );
                    let error = format!(
                        "cannot connect to NATS ({}): {}",
                        e.kind(),
                        servers(&self.opts)
                    );
                    if refused {
                        outcome_dead(error, ADVICE_CREDENTIALS)
                    } else {
                        outcome_retry(Failure::Unreachable { error })
                    }
                })?;
                Ok(jetstream::new(client))
            })
            .await
    }

    /// Publish one request's body and headers, and wait for the stream's ack.
    pub(crate) async fn publish(&self, request: Request) -> Outcome {
        let started = tokio::time::Instant::now();
        let mut outcome = match self.context().await {
            Ok(js) => self.publish_on(js, request).await,
            Err(outcome) => outcome,
        };
        outcome.elapsed = started.elapsed();
        outcome
    }

    async fn publish_on(&self, js: &jetstream::Context, request: Request) -> Outcome {
        let mut headers = async_nats::HeaderMap::new();
        for name in COPIED_HEADERS {
            if let Some(value) = request.headers.get(name).and_then(|v| v.to_str().ok()) {
                headers.insert(name, value);
            }
        }
        if let Some(id) = request
            .headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
        {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        }
        let subject = self.opts.subject.clone();
        let sent = tokio::time::timeout(self.timeout, async {
            js.publish_with_headers(subject, headers, request.body)
                .await?
                .await
        })
        .await;
        match sent {
            Ok(Ok(_ack)) => Outcome {
                verdict: Verdict::Delivered,
                status: None,
                failure: None,
                advice: None,
                elapsed: Duration::ZERO,
            },
            Err(_) => outcome_retry(Failure::TimedOut {
                after: self.timeout,
            }),
            Ok(Err(e)) => match e.kind() {
                PublishErrorKind::StreamNotFound => outcome_retry(Failure::Unreachable {
                    error: format!(
                        "no JetStream stream captures the subject {} on {}: create one (nats stream add --subjects '{}'); deliveries are retried until it exists",
                        self.opts.subject,
                        servers(&self.opts),
                        self.opts.subject
                    ),
                }),
                PublishErrorKind::MaxPayloadExceeded => outcome_dead(
                    format!("the event is larger than the NATS server's max_payload ({e})"),
                    "raise max_payload in the NATS server's configuration, then `badger-relay outbox retry --target`",
                ),
                PublishErrorKind::TimedOut => outcome_retry(Failure::TimedOut {
                    after: self.timeout,
                }),
                _ => outcome_retry(Failure::Unreachable {
                    error: format!("NATS publish failed: {e}"),
                }),
            },
        }
    }
}

const ADVICE_CREDENTIALS: &str = "the NATS server refused the target's credentials: fix its credentials, token or user/password (or those of [outbox.nats] it shares), restart, then `badger-relay outbox retry --target`";

/// The target's servers, printable (no user info).
fn servers(opts: &NatsTargetOptions) -> String {
    let urls: Vec<String> = opts.urls.iter().map(|u| u.redacted()).collect();
    urls.join(",")
}

fn outcome_retry(failure: Failure) -> Outcome {
    Outcome {
        verdict: Verdict::Retry { floor: None },
        status: None,
        failure: Some(failure),
        advice: None,
        elapsed: Duration::ZERO,
    }
}

fn outcome_dead(error: String, advice: &'static str) -> Outcome {
    Outcome {
        verdict: Verdict::Dead,
        status: None,
        failure: Some(Failure::Unreachable { error }),
        advice: Some(advice),
        elapsed: Duration::ZERO,
    }
}
