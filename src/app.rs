//! The running bridge: builds every part from the config, owns the tasks, drains on stop.
//!
//! Start-up order: open the outbox (so a second process fails before touching the
//! network), build targets, start the intake and one worker per target, then the
//! stream. Shutdown runs the other way: the source stops reading, the intake stores what
//! it already had, workers let attempts in flight finish until the drain deadline, and
//! the store is flushed once more.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::{Config, OutboxBackend};
use crate::delivery::Worker;
use crate::intake::Intake;
use crate::outbox::nats::NatsOutbox;
use crate::outbox::sled::SledOutbox;
use crate::outbox::{Inbox, Outbox, run_intake};
use crate::routes::Router;
use crate::server::Handles;
use crate::shutdown::Trigger;
use crate::source::Source;
use crate::target::Target;
use crate::telemetry::Metrics;

/// How long attempts in flight may run on after a stop.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Events waiting for the outbox before the stream reader is held back.
const INTAKE_CAPACITY: usize = 4096;

/// Run until `trigger` fires (the signal handler fires it), then drain.
pub async fn run(config: Config, trigger: Arc<Trigger>) -> anyhow::Result<()> {
    let names: Vec<String> = config.targets.iter().map(|t| t.name.clone()).collect();
    let metrics = Arc::new(Metrics::new(names.iter().cloned()));
    match config.outbox.backend {
        OutboxBackend::Sled => {
            let store = SledOutbox::start(&config, metrics.clone(), trigger.subscribe())?;
            let path = store.store().path().display().to_string();
            run_with(Arc::new(store), &path, config, metrics, trigger).await
        }
        OutboxBackend::Nats => {
            let store = NatsOutbox::start(&config, metrics.clone(), trigger.subscribe()).await?;
            let place = store.place();
            run_with(Arc::new(store), &place, config, metrics, trigger).await
        }
    }
}

/// The bridge on one outbox backend. `place` says where the outbox is, for the log.
async fn run_with<S: Outbox>(
    store: Arc<S>,
    place: &str,
    config: Config,
    metrics: Arc<Metrics>,
    trigger: Arc<Trigger>,
) -> anyhow::Result<()> {
    let targets: Vec<Arc<Target>> = config
        .targets
        .iter()
        .map(|t| Target::new(t.clone()).map(Arc::new))
        .collect::<Result<_, _>>()
        .context("cannot build the HTTP client")?;

    let (inbox, intake_end, close_inbox) = Inbox::new(INTAKE_CAPACITY);
    let intake_task = {
        let store = store.clone();
        tokio::spawn(async move { run_intake(&*store, intake_end).await })
    };

    let mut workers = tokio::task::JoinSet::new();
    for (index, target) in targets.iter().enumerate() {
        let worker = Worker {
            index,
            target: target.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
        };
        workers.spawn(worker.run(trigger.subscribe()));
    }

    let router = Arc::new(Router::new(&config.routes, config.targets.len()));
    let dedupe = config.targets.iter().map(|t| t.dedupe).collect();
    let intake = Intake::new(router, dedupe, inbox, metrics.clone());
    let (connected_tx, connected_rx) = tokio::sync::watch::channel(false);
    // Without an API key only `/ingest` feeds the pipeline (`main` checks that it is set).
    let source_task = config.source.api_key.is_some().then(|| {
        let source = Source::new(
            config.source.clone(),
            intake.clone(),
            metrics.clone(),
            connected_tx,
            store.accepting(),
        );
        tokio::spawn(source.run(trigger.subscribe()))
    });

    let handles = Handles {
        metrics: metrics.clone(),
        intake,
        connected: connected_rx,
        accepting: store.accepting(),
        engine: store.engine_connected(),
    };
    let extra = crate::server::start(&config, handles, trigger.subscribe()).await?;

    tracing::info!(targets = targets.len(), routes = config.routes.len(), outbox = %place, "badger-relay running");
    trigger.subscribe().wait().await;
    tracing::info!("Shutting down: finishing attempts in flight (up to 10 s)");

    // The stream reader stops at once (its frames so far are queued for the outbox).
    if let Some(task) = source_task {
        let _ = task.await;
    }
    // Then the intake closes: what is queued is stored and flushed, and a late /ingest
    // gets 503 (ScrapeBadger retries it) instead of holding us up.
    close_inbox.close();
    let _ = intake_task.await;
    if let Some(server) = extra {
        // Graceful, but a client that never finishes its request cannot hold the exit.
        if tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .is_err()
        {
            tracing::warn!("HTTP connections still open after 2 s were dropped");
        }
    }
    let drained = tokio::time::timeout(DRAIN_DEADLINE, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        workers.abort_all();
        tracing::warn!(
            "Attempts still in flight after 10 s were cut off; they will be retried after restart"
        );
    }
    store.flush().await?;
    tracing::info!("Stopped");
    Ok(())
}
