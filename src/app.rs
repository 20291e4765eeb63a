//! The running bridge: builds every part from the config, owns the tasks, reloads the
//! config on request, drains on stop.
//!
//! Start-up order: open the outbox (so a second process fails before touching the
//! network), build targets, start the intake and one worker per target, then the
//! stream. A reload ([`Bridge::reload`]) validates the new file first and changes only
//! what differs (see [`crate::reload`]). Shutdown runs the other way: the source stops
//! reading, the intake stores what it already had, workers let attempts in flight
//! finish until the drain deadline, and the store is flushed once more.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, OutboxBackend};
use crate::delivery::Worker;
use crate::intake::{Intake, Routing, SharedRouting};
use crate::outbox::nats::NatsOutbox;
use crate::outbox::sled::SledOutbox;
use crate::outbox::{Inbox, Outbox, run_intake};
use crate::reload::{Plan, Slots, plan};
use crate::routes::Router;
use crate::server::Handles;
use crate::shutdown::Trigger;
use crate::source::Source;
use crate::target::Target;
use crate::telemetry::{Metrics, error_chain};

/// How long attempts in flight may run on after a stop.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Events waiting for the outbox before the stream reader is held back.
const INTAKE_CAPACITY: usize = 4096;

/// Run until `trigger` fires (the signal handler fires it), then drain. No reloads.
pub async fn run(config: Config, trigger: Arc<Trigger>) -> anyhow::Result<()> {
    let (_keep, reloads) = mpsc::channel(1);
    run_reloading(config, trigger, reloads).await
}

/// [`run`], re-reading the config file each time `reloads` yields (SIGHUP).
pub async fn run_reloading(
    config: Config,
    trigger: Arc<Trigger>,
    reloads: mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    let names: Vec<String> = config.targets.iter().map(|t| t.name.clone()).collect();
    let metrics = Arc::new(Metrics::new(names.iter().cloned()));
    match config.outbox.backend {
        OutboxBackend::Sled => {
            let store = SledOutbox::start(&config, metrics.clone(), trigger.subscribe())?;
            let path = store.store().path().display().to_string();
            run_with(Arc::new(store), &path, config, metrics, trigger, reloads).await
        }
        OutboxBackend::Nats => {
            let store = NatsOutbox::start(&config, metrics.clone(), trigger.subscribe()).await?;
            let place = store.place();
            run_with(Arc::new(store), &place, config, metrics, trigger, reloads).await
        }
    }
}

/// A task with a stop of its own (a worker, the stream reader), so that a reload can
/// stop one without stopping the rest.
struct Stoppable {
    /// Fired to stop it (by a reload, or by the shutdown).
    stop: Trigger,
    /// The task, awaited after the stop.
    task: JoinHandle<()>,
}

impl Stoppable {
    /// Stop and wait, up to the drain deadline (then the task is cut off: an attempt in
    /// flight is retried later, as after a crash).
    async fn stop(self) -> bool {
        self.stop.trigger();
        let abort = self.task.abort_handle();
        match tokio::time::timeout(DRAIN_DEADLINE, self.task).await {
            Ok(_) => true,
            Err(_) => {
                abort.abort();
                false
            }
        }
    }
}

/// Everything a reload may change, on one outbox backend.
struct Bridge<S: Outbox> {
    /// The outbox every worker reads and the intake writes.
    store: Arc<S>,
    /// Counters and gauges.
    metrics: Arc<Metrics>,
    /// The config in force.
    config: Config,
    /// Target names by outbox slot (see [`crate::reload`]).
    slots: Slots,
    /// The routing the intake uses; replaced by a reload.
    routing: SharedRouting,
    /// One worker per slot of a configured target (`None`: a removed target's slot).
    workers: Vec<Option<Stoppable>>,
    /// The stream reader, when `source.api_key` is set.
    source: Option<Stoppable>,
    /// Where events enter, for a restarted stream reader.
    intake: Intake,
    /// The stream's connected flag, for a restarted stream reader.
    connected: watch::Sender<bool>,
}

/// The bridge on one outbox backend. `place` says where the outbox is, for the log.
async fn run_with<S: Outbox>(
    store: Arc<S>,
    place: &str,
    config: Config,
    metrics: Arc<Metrics>,
    trigger: Arc<Trigger>,
    mut reloads: mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    let targets = build_targets(&config)?;
    let (inbox, intake_end, close_inbox) = Inbox::new(INTAKE_CAPACITY);
    let intake_task = {
        let store = store.clone();
        tokio::spawn(async move { run_intake(&*store, intake_end).await })
    };

    let mut slots = Slots::default();
    let slot_of = slots.of(&config);
    let routing = Arc::new(RwLock::new(Arc::new(routing(&config, slot_of))));
    let intake = Intake::new(routing.clone(), inbox, metrics.clone());
    let (connected, connected_rx) = watch::channel(false);
    let mut bridge = Bridge {
        store: store.clone(),
        metrics: metrics.clone(),
        config,
        slots,
        routing,
        workers: Vec::new(),
        source: None,
        intake: intake.clone(),
        connected,
    };
    for (slot, target) in targets.into_iter().enumerate() {
        bridge.start_worker(slot, target);
    }
    bridge.start_source();

    let handles = Handles {
        metrics: metrics.clone(),
        intake,
        connected: connected_rx,
        accepting: store.accepting(),
        engine: store.engine_connected(),
    };
    let extra = crate::server::start(&bridge.config, handles, trigger.subscribe()).await?;

    tracing::info!(targets = bridge.config.targets.len(), routes = bridge.config.routes.len(), outbox = %place, "badger-relay running");
    let mut shutdown = trigger.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(()) = reloads.recv() => bridge.reload().await,
        }
    }
    tracing::info!("Shutting down: finishing attempts in flight (up to 10 s)");

    // The stream reader stops at once (its frames so far are queued for the outbox).
    if let Some(source) = bridge.source.take() {
        source.stop().await;
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
    let workers: Vec<Stoppable> = bridge.workers.drain(..).flatten().collect();
    for w in &workers {
        w.stop.trigger();
    }
    let aborts: Vec<_> = workers.iter().map(|w| w.task.abort_handle()).collect();
    let drained = tokio::time::timeout(DRAIN_DEADLINE, async {
        for w in workers {
            let _ = w.task.await;
        }
    })
    .await;
    if drained.is_err() {
        aborts.iter().for_each(|a| a.abort());
        tracing::warn!(
            "Attempts still in flight after 10 s were cut off; they will be retried after restart"
        );
    }
    store.flush().await?;
    tracing::info!("Stopped");
    Ok(())
}

/// A client, rate limiter and platform per configured target, in config order.
fn build_targets(config: &Config) -> anyhow::Result<Vec<Arc<Target>>> {
    config
        .targets
        .iter()
        .map(|t| Target::new(t.clone()).map(Arc::new))
        .collect::<Result<_, _>>()
        .context("cannot build the HTTP client")
}

/// The compiled routing of `config`, its targets in slots `slot_of`.
fn routing(config: &Config, slot_of: Vec<usize>) -> Routing {
    Routing {
        router: Router::new(&config.routes, config.targets.len()),
        dedupe: config.targets.iter().map(|t| t.dedupe).collect(),
        slots: slot_of.into(),
    }
}

impl<S: Outbox> Bridge<S> {
    fn start_worker(&mut self, slot: usize, target: Arc<Target>) {
        let (stop, shutdown) = crate::shutdown::channel();
        let worker = Worker {
            index: slot,
            target,
            store: self.store.clone(),
            metrics: self.metrics.clone(),
        };
        if self.workers.len() <= slot {
            self.workers.resize_with(slot + 1, || None);
        }
        self.workers[slot] = Some(Stoppable {
            stop,
            task: tokio::spawn(worker.run(shutdown)),
        });
    }

    /// Start the stream reader on the config in force (without an API key only `/ingest`
    /// feeds the pipeline; `main` checks that it is set).
    fn start_source(&mut self) {
        if self.config.source.api_key.is_none() {
            return;
        }
        let (stop, shutdown) = crate::shutdown::channel();
        let source = Source::new(
            self.config.source.clone(),
            self.intake.clone(),
            self.metrics.clone(),
            self.connected.clone(),
            self.store.accepting(),
        );
        self.source = Some(Stoppable {
            stop,
            task: tokio::spawn(source.run(shutdown)),
        });
    }

    /// Re-read the config file and apply it, or keep the running config and say why.
    async fn reload(&mut self) {
        let path = self.config.path.clone();
        let new = match Config::load(&path) {
            Ok(new) => new,
            Err(e) => {
                self.metrics.reloads_invalid.inc();
                let error = format!("{:#}", anyhow::Error::from(e));
                tracing::error!(config = %path.display(), error = %error, "Config reload failed: the file is invalid; the running config is kept");
                return;
            }
        };
        let plan = match plan(&self.config, &new) {
            Ok(plan) => plan,
            Err(e) => {
                self.metrics.reloads_invalid.inc();
                tracing::error!(config = %path.display(), error = %e, "Config reload refused; the running config is kept");
                return;
            }
        };
        // Everything that can fail is done before anything is touched.
        let built = match build_targets(&new) {
            Ok(built) => built,
            Err(e) => {
                self.metrics.reloads_invalid.inc();
                tracing::error!(config = %path.display(), error = %error_chain(&*e), "Config reload failed; the running config is kept");
                return;
            }
        };
        self.apply(new, plan, built).await;
        self.metrics.reloads_ok.inc();
    }

    /// Apply a validated config: see the module doc of [`crate::reload`].
    async fn apply(&mut self, new: Config, plan: Plan, built: Vec<Arc<Target>>) {
        let slot_of = self.slots.of(&new);
        self.metrics.add_targets(&self.slots.0);
        self.store.targets_changed(&self.slots.0);
        // Changed and removed targets stop first (attempts in flight finish), so that no
        // delivery is attempted by two workers; their queues stay in the outbox.
        let stopping: Vec<(usize, Stoppable)> = plan
            .changed
            .iter()
            .chain(&plan.removed)
            .filter_map(|name| {
                let slot = self.slots.0.iter().position(|n| n == name)?;
                Some((slot, self.workers.get_mut(slot)?.take()?))
            })
            .collect();
        for (_, w) in &stopping {
            w.stop.trigger();
        }
        for (slot, w) in stopping {
            if !w.stop().await {
                tracing::warn!(target = %self.slots.0[slot], "Attempts still in flight after 10 s were cut off by the reload; they will be retried");
            }
        }
        // New routes take effect from the next event.
        let routes = new.routes.len();
        *self.routing.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(routing(&new, slot_of.clone()));
        for (index, target) in built.into_iter().enumerate() {
            let name = &new.targets[index].name;
            if plan.added.contains(name) || plan.changed.contains(name) {
                self.start_worker(slot_of[index], target);
            }
        }
        for name in &plan.removed {
            let slot = self.slots.0.iter().position(|n| n == name);
            let pending = slot.map_or(0, |s| self.metrics.target(s).pending.get());
            tracing::warn!(target = %name, pending, "Target removed from the config: its pending deliveries stay in the outbox (`badger-relay outbox stats` shows them) until it is configured again or they are purged (`outbox purge --target`)");
        }
        let old_source = std::mem::replace(&mut self.config, new);
        if plan.reconnect {
            if let Some(source) = self.source.take() {
                source.stop().await;
            }
            self.start_source();
        }
        drop(old_source);
        tracing::info!(
            targets = self.config.targets.len(),
            added = plan.added.len(),
            removed = plan.removed.len(),
            changed = plan.changed.len(),
            routes,
            source_reconnect = plan.reconnect,
            "Config reloaded: {plan}"
        );
    }
}
