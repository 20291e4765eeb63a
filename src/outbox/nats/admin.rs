//! `outbox stats | list | retry | purge` against the streams, while replicas run.
//!
//! Pending deliveries of a target are the messages of its subject after its consumer's
//! ack floor (with `concurrency` above 1 a message acked out of order may still be
//! listed until the floor passes it); dead letters are the messages of the dead-letter
//! stream. `retry` republishes a dead letter with a fresh message id (the old one is
//! still in the duplicate window) and the same `webhook-id`, then deletes the dead copy.

use std::collections::BTreeMap;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage, stream::DirectGetErrorKind};

use super::names::{self, Names};
use crate::config::OutboxConfig;
use crate::outbox::{Admin, BadId, Counts, Listed, OutboxError, State, now_ms};

/// The streams at rest, for one command.
pub(crate) struct NatsAdmin {
    /// Runs the client: the commands are synchronous.
    runtime: tokio::runtime::Runtime,
    /// JetStream on one connection.
    js: jetstream::Context,
    /// Stream and subject names.
    names: Names,
}

/// One message of a subject, as read for the commands.
struct Stored {
    /// Its sequence in its stream.
    seq: u64,
    /// The target its subject names.
    target: String,
    /// Its headers.
    headers: HeaderMap,
    /// The event.
    body: bytes::Bytes,
}

fn failed(e: impl std::fmt::Display) -> OutboxError {
    OutboxError::Unavailable {
        detail: e.to_string(),
    }
}

impl NatsAdmin {
    /// Connect (once, without waiting for a server that is down).
    pub(crate) fn open(config: &OutboxConfig) -> Result<NatsAdmin, OutboxError> {
        let nats = config
            .nats
            .clone()
            .ok_or_else(|| OutboxError::Unavailable {
                detail: "backend = \"nats\" needs [outbox.nats]".into(),
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(failed)?;
        let js = runtime.block_on(async {
            let options = super::connect::client_options(&nats.auth)
                .await
                .map_err(|e| failed(format!("{e:#}")))?;
            let urls: Vec<String> = nats.urls.iter().map(|u| u.0.expose().to_owned()).collect();
            let client = options
                .retry_on_initial_connect()
                .max_reconnects(Some(3))
                .connect(urls.as_slice())
                .await
                .map_err(|e| {
                    failed(format!(
                        "cannot connect to NATS at {}: {e}",
                        super::connect::servers(&nats)
                    ))
                })?;
            Ok::<_, OutboxError>(jetstream::new(client))
        })?;
        Ok(NatsAdmin {
            runtime,
            js,
            names: Names::new(&nats.stream),
        })
    }

    /// Target names with a consumer or a dead letter.
    async fn target_names(&self) -> Result<Vec<String>, OutboxError> {
        let mut out = std::collections::BTreeSet::new();
        let stream = self
            .js
            .get_stream(&self.names.stream)
            .await
            .map_err(failed)?;
        let mut consumers = stream.consumer_names();
        use futures_util::StreamExt as _;
        while let Some(name) = consumers.next().await {
            if let Some(t) = names::untoken(&name.map_err(failed)?) {
                out.insert(t);
            }
        }
        for (subject, _) in self.subject_counts(&self.names.dead).await? {
            if let Some(t) = self.names.target_of(&subject) {
                out.insert(t);
            }
        }
        Ok(out.into_iter().collect())
    }

    async fn subject_counts(&self, stream: &str) -> Result<Vec<(String, usize)>, OutboxError> {
        let stream = self.js.get_stream(stream).await.map_err(failed)?;
        let info = stream.info_with_subjects(">").await.map_err(failed)?;
        use futures_util::StreamExt as _;
        let mut info = info;
        let mut out = Vec::new();
        while let Some(entry) = info.next().await {
            out.push(entry.map_err(failed)?);
        }
        Ok(out)
    }

    /// A target's pending count and ack floor.
    async fn pending(&self, target: &str) -> Result<(u64, u64), OutboxError> {
        let stream = self
            .js
            .get_stream(&self.names.stream)
            .await
            .map_err(failed)?;
        match stream.consumer_info(names::consumer(target)).await {
            Ok(info) => Ok((
                info.num_pending + info.num_ack_pending as u64,
                info.ack_floor.stream_sequence,
            )),
            Err(_) => Ok((0, u64::MAX)),
        }
    }

    /// Every message of `subject` in `stream` from sequence `from`.
    async fn read(
        &self,
        stream: &str,
        subject: &str,
        from: u64,
    ) -> Result<Vec<Stored>, OutboxError> {
        let stream = self.js.get_stream(stream).await.map_err(failed)?;
        let mut out = Vec::new();
        let mut seq = from.max(1);
        loop {
            match stream.direct_get_next_for_subject(subject, Some(seq)).await {
                Ok(m) => {
                    seq = m.sequence + 1;
                    out.push(Stored {
                        seq: m.sequence,
                        target: self.names.target_of(m.subject.as_str()).unwrap_or_default(),
                        headers: m.headers,
                        body: m.payload,
                    });
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(failed(e)),
            }
        }
    }

    async fn chosen(&self, target: Option<&str>) -> Result<Vec<String>, OutboxError> {
        Ok(match target {
            Some(t) => vec![t.to_owned()],
            None => self.target_names().await?,
        })
    }

    async fn list_async(
        &self,
        state: State,
        target: Option<&str>,
    ) -> Result<Vec<Listed>, OutboxError> {
        let mut out = Vec::new();
        for t in self.chosen(target).await? {
            let stored = match state {
                State::Pending => {
                    let (count, floor) = self.pending(&t).await?;
                    if count == 0 {
                        continue;
                    }
                    self.read(&self.names.stream, &self.names.subject(&t), floor + 1)
                        .await?
                }
                State::Dead => {
                    self.read(&self.names.dead, &self.names.dead_subject(&t), 1)
                        .await?
                }
            };
            out.extend(stored.into_iter().map(|m| listed(&m)));
        }
        Ok(out)
    }

    async fn retry_async(
        &self,
        target: Option<&str>,
        ids: &[String],
    ) -> Result<Result<Vec<(String, String)>, BadId>, OutboxError> {
        if let Some(bad) = ids.iter().find(|id| !id.starts_with("msg_js")) {
            return Ok(Err(BadId::Malformed(bad.clone())));
        }
        let dead_stream = self.js.get_stream(&self.names.dead).await.map_err(failed)?;
        let mut moved = Vec::new();
        for t in self.chosen(target).await? {
            for m in self
                .read(&self.names.dead, &self.names.dead_subject(&t), 1)
                .await?
            {
                let id = header(&m.headers, names::ID);
                if !ids.is_empty() && !ids.contains(&id) {
                    continue;
                }
                let old = header(&m.headers, names::MSG_ID);
                let mut headers = HeaderMap::new();
                headers.insert(names::ID, id.as_str());
                headers.insert(names::TARGET, m.target.as_str());
                // A fresh retry budget: max_age counts from now.
                headers.insert(names::ACCEPTED, now_ms().to_string().as_str());
                let message = PublishMessage::build()
                    .payload(m.body.clone())
                    .headers(headers)
                    .message_id(format!("{old}:retry:{}:{}", m.seq, now_ms()));
                self.js
                    .send_publish(self.names.subject(&m.target), message)
                    .await
                    .map_err(failed)?
                    .await
                    .map_err(failed)?;
                dead_stream.delete_message(m.seq).await.map_err(failed)?;
                moved.push((id, m.target.clone()));
            }
        }
        Ok(Ok(moved))
    }

    async fn purge_async(&self, state: State, target: Option<&str>) -> Result<u64, OutboxError> {
        let mut total = 0;
        for t in self.chosen(target).await? {
            match state {
                State::Pending => {
                    let (count, _) = self.pending(&t).await?;
                    let stream = self
                        .js
                        .get_stream(&self.names.stream)
                        .await
                        .map_err(failed)?;
                    stream
                        .purge()
                        .filter(self.names.subject(&t))
                        .await
                        .map_err(failed)?;
                    total += count;
                }
                State::Dead => {
                    let stream = self.js.get_stream(&self.names.dead).await.map_err(failed)?;
                    let purged = stream
                        .purge()
                        .filter(self.names.dead_subject(&t))
                        .await
                        .map_err(failed)?;
                    total += purged.purged;
                }
            }
        }
        Ok(total)
    }

    async fn stats_async(&self) -> Result<BTreeMap<String, Counts>, OutboxError> {
        let mut out = BTreeMap::new();
        let dead: Vec<(String, usize)> = self.subject_counts(&self.names.dead).await?;
        for t in self.target_names().await? {
            let (pending, _) = self.pending(&t).await?;
            let subject = self.names.dead_subject(&t);
            let dead = dead
                .iter()
                .find(|(s, _)| *s == subject)
                .map_or(0, |(_, n)| *n as u64);
            out.insert(t, Counts { pending, dead });
        }
        Ok(out)
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

fn listed(m: &Stored) -> Listed {
    let reason = Some(header(&m.headers, names::REASON)).filter(|r| !r.is_empty());
    Listed::Readable {
        id: header(&m.headers, names::ID),
        target: m.target.clone(),
        attempts: header(&m.headers, names::ATTEMPTS).parse().unwrap_or(0),
        enqueued_ms: header(&m.headers, names::ACCEPTED).parse().unwrap_or(0),
        next_attempt_ms: 0,
        reason,
        body: m.body.clone(),
    }
}

impl Admin for NatsAdmin {
    fn stats(&self) -> Result<BTreeMap<String, Counts>, OutboxError> {
        self.runtime.block_on(self.stats_async())
    }

    fn list(&self, state: State, target: Option<&str>) -> Result<Vec<Listed>, OutboxError> {
        self.runtime.block_on(self.list_async(state, target))
    }

    fn retry(
        &self,
        target: Option<&str>,
        ids: &[String],
    ) -> Result<Result<Vec<(String, String)>, BadId>, OutboxError> {
        self.runtime.block_on(self.retry_async(target, ids))
    }

    fn purge(&self, state: State, target: Option<&str>) -> Result<u64, OutboxError> {
        self.runtime.block_on(self.purge_async(state, target))
    }

    fn targets(&self) -> Result<Vec<String>, OutboxError> {
        self.runtime.block_on(self.target_names())
    }

    /// JetStream keeps its own store's integrity; what the relay can check is that every
    /// message lists (its headers read) in both streams. No dedupe marks: the stream's
    /// duplicate window holds them.
    fn verify(&self) -> Result<crate::outbox::Verified, OutboxError> {
        let pending = self.list(State::Pending, None)?.len() as u64;
        let dead = self.list(State::Dead, None)?.len() as u64;
        Ok(crate::outbox::Verified {
            pending,
            dead,
            marks: 0,
            unreadable: Vec::new(),
        })
    }

    fn size(&self) -> Result<(String, u64), OutboxError> {
        self.runtime.block_on(async {
            let mut bytes = 0;
            for name in [&self.names.stream, &self.names.dead] {
                let mut stream = self.js.get_stream(name).await.map_err(failed)?;
                bytes += stream.info().await.map_err(failed)?.state.bytes;
            }
            Ok((
                format!(
                    "JetStream streams {} and {}",
                    self.names.stream, self.names.dead
                ),
                bytes,
            ))
        })
    }
}
