//! The connection to NATS: authentication, the server version (2.11 or newer) and
//! JetStream. A problem the config causes (credentials refused, no JetStream, an old
//! server) ends start-up with exit code 2; a server that is down is waited for.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event};
use tokio::sync::watch;

use crate::cli::UsageError;
use crate::config::{NatsAuth, NatsConfig};
use crate::telemetry::Metrics;

/// The oldest server with what this backend relies on (pinned consumers, consumer
/// pause, and config fields an older one would silently ignore).
const MIN_VERSION: (u64, u64) = (2, 11);

/// How long start-up waits for JetStream to answer before it calls it not enabled.
const JETSTREAM_WAIT: Duration = Duration::from_secs(5);

/// Connect, waiting with backoff while no server answers. Keeps `connected` and the
/// `engine_connected` gauge up to date for the life of the client.
pub(super) async fn connect(
    config: &NatsConfig,
    connected: watch::Sender<bool>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<async_nats::Client> {
    // A credentials file that cannot be read is a config problem: say so before waiting.
    client_options(&config.auth).await?;
    let mut delay = Duration::from_millis(250);
    loop {
        match try_connect(config, connected.clone(), metrics.clone()).await {
            Ok(client) => {
                connected.send_replace(true);
                metrics.engine_connected.set(1);
                check_server(&client, config).await?;
                return Ok(client);
            }
            Err(e) if is_config_problem(e.kind()) => {
                return Err(UsageError(format!(
                    "NATS refused the connection ({}): check [outbox.nats] credentials, token or user/password",
                    e.kind()
                ))
                .into());
            }
            Err(e) => {
                tracing::warn!(servers = %servers(config), error = %e, retry_in_ms = delay.as_millis() as u64, "Cannot reach NATS; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// The configured servers, printable (no user info).
pub(super) fn servers(config: &NatsConfig) -> String {
    let urls: Vec<String> = config.urls.iter().map(|u| u.redacted()).collect();
    urls.join(",")
}

fn is_config_problem(kind: ConnectErrorKind) -> bool {
    matches!(
        kind,
        ConnectErrorKind::Authentication
            | ConnectErrorKind::AuthorizationViolation
            | ConnectErrorKind::ServerParse
    )
}

/// The connect options for `auth` (of `[outbox.nats]` or of a nats target): the
/// credentials, and reconnecting for ever once connected.
pub(crate) async fn client_options(auth: &NatsAuth) -> anyhow::Result<ConnectOptions> {
    let options =
        match auth {
            NatsAuth::None => ConnectOptions::new(),
            NatsAuth::Credentials(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| {
                    UsageError(format!(
                        "NATS credentials: cannot read the credentials file {}: {e}",
                        path.display()
                    ))
                })?,
            NatsAuth::Token(token) => ConnectOptions::with_token(token.expose().to_owned()),
            NatsAuth::UserPassword { user, password } => {
                ConnectOptions::with_user_and_password(user.clone(), password.expose().to_owned())
            }
        };
    Ok(options
        .name("badger-relay")
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None))
}

async fn try_connect(
    config: &NatsConfig,
    connected: watch::Sender<bool>,
    metrics: Arc<Metrics>,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let options = match client_options(&config.auth).await {
        Ok(o) => o,
        Err(e) => {
            // Only an unreadable credentials file fails here: report it as a config error.
            tracing::error!(error = %e, "Cannot use the NATS credentials");
            return Err(async_nats::ConnectError::new(
                ConnectErrorKind::Authentication,
            ));
        }
    };
    let urls: Vec<String> = config
        .urls
        .iter()
        .map(|u| u.0.expose().to_owned())
        .collect();
    options
        .event_callback(move |event| {
            let connected = connected.clone();
            let metrics = metrics.clone();
            async move {
                match event {
                    Event::Connected => {
                        tracing::info!("Connected to NATS");
                        connected.send_replace(true);
                        metrics.engine_connected.set(1);
                    }
                    Event::Disconnected => {
                        tracing::warn!(
                            "Disconnected from NATS; events wait in the spool until it is back"
                        );
                        connected.send_replace(false);
                        metrics.engine_connected.set(0);
                    }
                    other => tracing::debug!(event = %other, "NATS client event"),
                }
            }
        })
        .connect(urls.as_slice())
        .await
}

/// The server is new enough and has JetStream.
async fn check_server(client: &async_nats::Client, config: &NatsConfig) -> anyhow::Result<()> {
    let version = client.server_info().version;
    if !at_least(&version, MIN_VERSION) {
        return Err(UsageError(format!(
            "NATS server {} ({}) is too old: badger-relay needs nats-server {}.{} or newer",
            version,
            servers(config),
            MIN_VERSION.0,
            MIN_VERSION.1
        ))
        .into());
    }
    let js = async_nats::jetstream::new(client.clone());
    // A cluster that is still electing its meta leader answers "unavailable" for a
    // moment: only a JetStream that stays silent for JETSTREAM_WAIT is "not enabled".
    let started = tokio::time::Instant::now();
    let mut answer = js.query_account().await;
    while answer.is_err() && started.elapsed() < JETSTREAM_WAIT {
        tokio::time::sleep(Duration::from_millis(250)).await;
        answer = js.query_account().await;
    }
    if let Err(e) = answer {
        return Err(UsageError(format!(
            "JetStream is not available on the NATS server at {} ({e}): start nats-server with JetStream enabled (-js, or `jetstream {{}}` in its config) and give the account JetStream access",
            servers(config)
        ))
        .into());
    }
    Ok(())
}

/// Whether `version` ("2.15.1", "2.11.0-beta.2") is at least `min`.
fn at_least(version: &str, min: (u64, u64)) -> bool {
    let mut parts = version
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
}

/// How often the engine is probed (a JetStream account request) and the gauges read.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Keep `connected` true only while JetStream answers: a server that hangs (SIGSTOP, a
/// partition) keeps the TCP connection open, so the client's own events do not say
/// it. Also refresh the pending and dead gauges from the streams, every 5 probes.
pub(super) async fn watch_health(s: std::sync::Arc<super::Shared>) {
    let mut shutdown = s.shutdown.clone();
    let mut round = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PROBE_EVERY) => {}
            _ = shutdown.wait() => return,
        }
        let up = matches!(
            tokio::time::timeout(Duration::from_secs(2), s.js.query_account()).await,
            Ok(Ok(_))
        );
        if *s.connected.borrow() != up {
            if up {
                tracing::info!("JetStream answers again");
            } else {
                tracing::warn!("JetStream does not answer; events wait in the spool until it does");
            }
            s.connected.send_replace(up);
            s.metrics.engine_connected.set(i64::from(up));
        }
        round += 1;
        if up && round % 5 == 1 {
            refresh_gauges(&s).await;
        }
    }
}

/// The pending and dead gauges from the consumers and the dead-letter stream (shared by
/// every replica, so every replica shows the target's totals).
async fn refresh_gauges(s: &super::Shared) {
    let Ok(stream) = s.js.get_stream(&s.names.stream).await else {
        return;
    };
    for (index, (name, _)) in s.targets.iter().enumerate() {
        if let Ok(info) = stream.consumer_info(super::names::consumer(name)).await {
            let pending = info.num_pending + info.num_ack_pending as u64;
            s.metrics.target(index).pending.set(pending as i64);
        }
    }
    let Ok(dead) = s.js.get_stream(&s.names.dead).await else {
        return;
    };
    let Ok(mut subjects) = dead.info_with_subjects(">").await else {
        return;
    };
    let mut counts = std::collections::HashMap::new();
    use futures_util::StreamExt as _;
    while let Some(Ok((subject, n))) = subjects.next().await {
        counts.insert(subject, n);
    }
    for (index, (name, _)) in s.targets.iter().enumerate() {
        let n = counts
            .get(&s.names.dead_subject(name))
            .copied()
            .unwrap_or(0);
        s.metrics.target(index).dead_letters.set(n as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(at_least("2.15.1", (2, 11)));
        assert!(at_least("2.11.0-beta.2", (2, 11)));
        assert!(at_least("3.0.0", (2, 11)));
        assert!(!at_least("2.9.10", (2, 11)));
        assert!(!at_least("2.10.24", (2, 11)));
        assert!(!at_least("", (2, 11)));
    }
}
