//! The running bridge: builds every part from the config, owns the tasks, drains on stop.
//!
//! Start-up order: open the outbox (so a second process fails before touching the
//! network), build targets, start the committer and one worker per target, then the
//! stream. Shutdown runs the other way: the source stops reading, the committer writes
//! and flushes what it already had, workers let attempts in flight finish until the
//! drain deadline, and the store is flushed once more.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::Notify;

use crate::config::Config;
use crate::delivery::Worker;
use crate::intake::Intake;
use crate::outbox::{Committer, Handoff, Outbox, State, TargetSlot, now_ms};
use crate::routes::Router;
use crate::shutdown::{Shutdown, Trigger};
use crate::source::Source;
use crate::target::Target;
use crate::telemetry::Metrics;
use crate::telemetry::error_chain;

/// How long attempts in flight may run on after a stop.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Events waiting for the committer before the stream reader is held back.
const INTAKE_CAPACITY: usize = 4096;

/// How often expired dedupe marks are swept.
const DEDUPE_SWEEP: Duration = Duration::from_secs(600);

/// The parts a running bridge exposes to the HTTP server and to tests.
#[derive(Clone)]
pub struct Handles {
    pub metrics: Arc<Metrics>,
    pub intake: Intake,
    /// true while the stream is connected.
    pub connected: tokio::sync::watch::Receiver<bool>,
}

/// Run until `trigger` fires (the signal handler fires it), then drain.
pub async fn run(config: Config, trigger: Arc<Trigger>) -> anyhow::Result<()> {
    let store = Outbox::open(&config.outbox.path)?;
    let names: Vec<String> = config.targets.iter().map(|t| t.name.clone()).collect();
    for orphan in store
        .targets_with_deliveries()?
        .into_iter()
        .filter(|n| !names.contains(n))
    {
        tracing::warn!(target = %orphan, "The outbox holds deliveries for a target that is no longer configured; they stay until `outbox purge --target`");
    }
    let metrics = Arc::new(Metrics::new(names.iter().cloned()));
    count_backlog(&store, &names, &metrics);

    let targets: Vec<Arc<Target>> = config
        .targets
        .iter()
        .map(|t| Target::new(t.clone()).map(Arc::new))
        .collect::<Result<_, _>>()
        .context("cannot build the HTTP client")?;
    let slots: Arc<[TargetSlot]> = config
        .targets
        .iter()
        .map(|t| TargetSlot {
            name: t.name.clone(),
            dedupe: t.dedupe,
            wake: Arc::new(Notify::new()),
            handoff: Arc::new(Handoff::default()),
        })
        .collect();
    let durable = Arc::new(AtomicU64::new(store.watermark()?));
    let (committer, close_committer, committer_task) = Committer::spawn(
        store.clone(),
        slots.clone(),
        config.outbox.dedupe_window,
        durable.clone(),
        metrics.clone(),
        INTAKE_CAPACITY,
    );

    let mut workers = tokio::task::JoinSet::new();
    for (index, target) in targets.iter().enumerate() {
        let worker = Worker {
            index,
            target: target.clone(),
            store: store.clone(),
            wake: slots[index].wake.clone(),
            handoff: slots[index].handoff.clone(),
            durable: durable.clone(),
            metrics: metrics.clone(),
        };
        workers.spawn(worker.run(trigger.subscribe()));
    }

    let router = Arc::new(Router::new(&config.routes, config.targets.len()));
    let intake = Intake::new(router, committer, metrics.clone());
    let (connected_tx, connected_rx) = tokio::sync::watch::channel(false);
    // Without an API key only `/ingest` feeds the pipeline (`main` checks that it is set).
    let source_task = config.source.api_key.is_some().then(|| {
        let source = Source::new(
            config.source.clone(),
            intake.clone(),
            metrics.clone(),
            connected_tx,
        );
        tokio::spawn(source.run(trigger.subscribe()))
    });
    let sweeper = tokio::spawn(sweep_dedupe(store.clone(), trigger.subscribe()));

    let handles = Handles {
        metrics: metrics.clone(),
        intake,
        connected: connected_rx,
    };
    let extra = crate::server::start(&config, handles.clone(), trigger.subscribe()).await?;
    drop(handles);

    tracing::info!(targets = names.len(), routes = config.routes.len(), outbox = %store.path().display(), "badger-relay running");
    trigger.subscribe().wait().await;
    tracing::info!("Shutting down: finishing attempts in flight (up to 10 s)");

    // The stream reader stops at once (its frames so far are queued for the committer).
    if let Some(task) = source_task {
        let _ = task.await;
    }
    // Then the intake closes: the committer writes and flushes what is queued and ends,
    // and a late /ingest gets 503 (ScrapeBadger retries it) instead of holding us up.
    close_committer.close();
    let _ = committer_task.await;
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
    sweeper.abort();
    store.flush_blocking()?;
    tracing::info!("Stopped");
    Ok(())
}

/// Start the gauges from what is already on disk, in the background: counting a large
/// backlog must not delay the first delivery.
fn count_backlog(store: &Outbox, names: &[String], metrics: &Arc<Metrics>) {
    let (store, names, metrics) = (store.clone(), names.to_vec(), metrics.clone());
    tokio::task::spawn_blocking(move || {
        for (i, name) in names.iter().enumerate() {
            metrics
                .target(i)
                .pending
                .add(store.count(State::Pending, name) as i64);
            metrics
                .target(i)
                .dead_letters
                .add(store.count(State::Dead, name) as i64);
        }
    });
}

async fn sweep_dedupe(store: Outbox, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(DEDUPE_SWEEP) => {}
            _ = shutdown.wait() => return,
        }
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.sweep_dedupe(now_ms())).await {
            Ok(Ok(n)) if n > 0 => tracing::debug!(removed = n, "Swept expired dedupe marks"),
            Ok(Err(e)) => tracing::warn!(error = %error_chain(&e), "Could not sweep dedupe marks"),
            _ => {}
        }
    }
}
