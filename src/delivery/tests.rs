//! The worker against the in-memory store, with scripted answers, under paused time:
//! order, retry schedule, `Retry-After`, dead letters, a failing store, shutdown.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};

use super::Worker;
use crate::config::Config;
use crate::event::Event;
use crate::failure::{Cause, Failure};
use crate::outbox::memory::MemoryOutbox;
use crate::outbox::{Outbox, Routed};
use crate::shutdown::{Shutdown, Trigger};
use crate::target::{Request, Target};
use crate::telemetry::Metrics;

/// One scripted answer.
#[derive(Clone)]
pub(super) enum Answer {
    Status(u16),
    /// 429 with this `Retry-After` (seconds).
    Throttled(u64),
    Refused,
}

/// A target of `type = "http"` with `extra` TOML lines, answered by `answers` in turn
/// (then 200s); records each request's body and when (by tokio's clock) it came.
pub(super) struct Rig {
    /// The worker's store.
    pub(super) store: Arc<MemoryOutbox>,
    /// The worker's metrics.
    pub(super) metrics: Arc<Metrics>,
    /// Every request: when (tokio's clock) and its body.
    seen: Arc<Mutex<Vec<(tokio::time::Instant, Bytes)>>>,
    /// Stops the worker.
    trigger: Trigger,
    /// The worker task.
    worker: tokio::task::JoinHandle<()>,
    /// The target, kept to start a new worker on the same store (a restart).
    target: Arc<Target>,
}

fn rig(extra: &str, answers: Vec<Answer>) -> Rig {
    rig_of("http", extra, answers)
}

/// [`rig`] for a target of type `kind`.
pub(super) fn rig_of(kind: &str, extra: &str, answers: Vec<Answer>) -> Rig {
    let text = format!(
        "[targets.hook]\ntype = \"{kind}\"\nurl = \"http://127.0.0.1:9/hook\"\n{extra}\n\n[[routes]]\nname = \"all\"\ntargets = [\"hook\"]\n"
    );
    let config = Config::parse(&text, std::path::Path::new("test.toml"), &|_| None).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script_seen = seen.clone();
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let script: Arc<crate::target::Script> = Arc::new(move |req: Request| {
        script_seen
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), req.body.clone()));
        let answer = answers.lock().unwrap().pop_front();
        Box::pin(async move {
            // A round trip takes a little time, by the paused clock.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let mut headers = HeaderMap::new();
            match answer.unwrap_or(Answer::Status(200)) {
                Answer::Status(s) => Ok((s, headers, Vec::new())),
                Answer::Throttled(secs) => {
                    headers.insert("retry-after", HeaderValue::from(secs));
                    Ok((429, headers, Vec::new()))
                }
                Answer::Refused => Err(Failure::Unreachable {
                    error: "connection refused".into(),
                }),
            }
        })
    });
    let target = Arc::new(Target::scripted(config.targets[0].clone(), script));
    let metrics = Arc::new(Metrics::new(["hook".to_string()]));
    let store = Arc::new(MemoryOutbox::new(
        1,
        Duration::from_secs(3600),
        metrics.clone(),
    ));
    let (trigger, shutdown): (Trigger, Shutdown) = crate::shutdown::channel();
    let worker = Worker {
        index: 0,
        target: target.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
    };
    let worker = tokio::spawn(worker.run(shutdown));
    Rig {
        store,
        metrics,
        seen,
        trigger,
        worker,
        target,
    }
}

impl Rig {
    /// Enqueue events `from..to` (`{"tweet_id":"N"}`), each its own dedupe key.
    async fn events(&self, range: std::ops::Range<u32>) {
        self.events_of(range, |n| format!("{{\"tweet_id\":\"{n}\"}}"))
            .await;
    }

    /// Enqueue events `from..to` with bodies made by `body`, each its own dedupe key.
    pub(super) async fn events_of(
        &self,
        range: std::ops::Range<u32>,
        body: impl Fn(u32) -> String,
    ) {
        let group: Vec<Routed> = range
            .map(|n| Routed {
                event: Event::parse(Bytes::from(body(n))).unwrap(),
                deliveries: vec![(0, format!("k{n}"))],
            })
            .collect();
        self.store.enqueue(&group).await.unwrap();
    }

    /// Advance the paused clock until `done` holds (or a minute of test time passed).
    pub(super) async fn until(&self, what: &str, done: impl Fn(&Rig) -> bool) {
        for _ in 0..60_000 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!(
            "gave up waiting for {what}: bodies {:?}, completed {:?}, dead {:?}",
            self.bodies(),
            self.store.completed(0),
            self.store.dead(0)
        );
    }

    pub(super) fn bodies(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    pub(super) fn times(&self) -> Vec<tokio::time::Instant> {
        self.seen.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }

    /// Stop the worker and start a new one on the same store and target, as a restart.
    pub(super) async fn restart(&mut self) {
        let (trigger, shutdown) = crate::shutdown::channel();
        std::mem::replace(&mut self.trigger, trigger).trigger();
        let worker = Worker {
            index: 0,
            target: self.target.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
        };
        let old = std::mem::replace(&mut self.worker, tokio::spawn(worker.run(shutdown)));
        tokio::time::timeout(Duration::from_secs(30), old)
            .await
            .expect("the worker stops after shutdown")
            .unwrap();
    }

    pub(super) async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.worker)
            .await
            .expect("the worker stops after shutdown")
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn delivers_in_arrival_order_and_empties_the_store() {
    let r = rig("concurrency = 1", vec![Answer::Status(503)]);
    r.events(0..5).await;
    r.until("5 deliveries", |r| r.store.completed(0).len() == 5)
        .await;
    // The first failed once: with one slot, nothing overtook it.
    assert_eq!(r.store.completed(0), vec![0, 1, 2, 3, 4]);
    assert_eq!(
        r.bodies()[..2],
        [r#"{"tweet_id":"0"}"#, r#"{"tweet_id":"0"}"#]
    );
    assert!(r.store.pending(0).is_empty());
    let m = r.metrics.target(0);
    assert_eq!((m.delivered.get(), m.pending.get()), (5, 0));
    assert_eq!(m.retried.get(), 1);
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_retried_after_its_backoff_and_the_schedule_is_stored() {
    let r = rig(
        "retry = { initial = \"2s\", max = \"10s\" }",
        vec![Answer::Status(503)],
    );
    r.events(0..1).await;
    r.until("the first attempt", |r| r.bodies().len() == 1)
        .await;
    r.until("the schedule stored", |r| {
        r.store.schedule(0, 0).is_some_and(|s| s.0 == 1)
    })
    .await;
    let (attempts, next, failure) = r.store.schedule(0, 0).unwrap();
    assert_eq!(attempts, 1);
    assert!(
        next > crate::outbox::now_ms(),
        "the next attempt is in the future"
    );
    assert_eq!(
        failure,
        Some(Failure::Rejected {
            status: 503,
            body: String::new()
        })
    );
    r.until("the retry delivered", |r| r.store.completed(0) == [0])
        .await;
    let t = r.times();
    let gap = t[1] - t[0];
    // First backoff: the upper half of `initial`, never less than `initial`.
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(3), "retried after {gap:?}");
    assert_eq!(r.metrics.target(0).retried.get(), 1);
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_holds_the_next_attempt_and_the_whole_target() {
    let r = rig("concurrency = 2", vec![Answer::Throttled(30)]);
    r.events(0..1).await;
    r.until("the 429 answered", |r| {
        r.store.schedule(0, 0).is_some_and(|s| s.0 == 1)
    })
    .await;
    // While the target is paused, a new delivery waits too.
    r.events(1..2).await;
    r.until("both delivered", |r| r.store.completed(0).len() == 2)
        .await;
    let t = r.times();
    assert!(
        t[1] - t[0] >= Duration::from_secs(30),
        "an attempt came {:?} after a Retry-After of 30 s",
        t[1] - t[0]
    );
    assert!(t[2] - t[0] >= Duration::from_secs(30));
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_4xx_is_dead_lettered_at_once_and_the_next_delivery_goes_on() {
    let r = rig("", vec![Answer::Status(404)]);
    r.events(0..2).await;
    r.until("the second delivered", |r| r.store.completed(0) == [1])
        .await;
    let dead = r.store.dead(0);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, 0);
    assert_eq!(dead[0].1.cause, Cause::Permanent);
    assert_eq!(dead[0].1.failure.status(), Some(404));
    let m = r.metrics.target(0);
    assert_eq!(
        (m.dead.get(), m.dead_letters.get(), m.pending.get()),
        (1, 1, 0)
    );
    assert_eq!(r.bodies().len(), 2, "one attempt each");
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_policy_running_out_is_a_dead_letter_with_its_cause() {
    let r = rig(
        "retry = { initial = \"1s\", max = \"1s\", max_attempts = 3 }",
        vec![Answer::Refused, Answer::Refused, Answer::Refused],
    );
    r.events(0..1).await;
    r.until("dead", |r| r.store.dead(0).len() == 1).await;
    let (_, dead) = &r.store.dead(0)[0];
    assert!(
        matches!(dead.cause, Cause::Exhausted { attempts: 3, .. }),
        "{dead:?}"
    );
    assert!(
        dead.to_string().starts_with("gave up after 3 attempts"),
        "{dead}"
    );
    assert_eq!(r.bodies().len(), 3);
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_keeps_the_slot_so_nothing_overtakes_a_dead_letter() {
    let r = rig("concurrency = 1", vec![Answer::Status(400)]);
    r.events(0..2).await;
    r.store.fail_writes(true);
    r.until("the first attempt", |r| r.bodies().len() == 1)
        .await;
    // The dead-letter write fails: with concurrency 1 the second delivery must wait.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        r.bodies().len(),
        1,
        "a later delivery overtook the failing one"
    );
    r.store.fail_writes(false);
    r.until("the second delivered", |r| r.store.completed(0) == [1])
        .await;
    assert_eq!(r.store.dead(0).len(), 1);
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_a_delivery_waiting_for_its_retry_and_keeps_it_pending() {
    let r = rig(
        "retry = { initial = \"1h\", max = \"1h\" }",
        vec![Answer::Status(500)],
    );
    r.events(0..1).await;
    r.until("the schedule stored", |r| {
        r.store.schedule(0, 0).is_some_and(|s| s.0 == 1)
    })
    .await;
    let store = r.store.clone();
    r.stop().await;
    assert_eq!(store.pending(0), vec![0], "still pending, for the next run");
    assert!(store.completed(0).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_delivery_the_store_cannot_mark_done_keeps_its_slot_until_it_can() {
    let r = rig("concurrency = 1", vec![]);
    r.events(0..2).await;
    r.store.fail_writes(true);
    r.until("the first attempt", |r| !r.bodies().is_empty())
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        r.bodies().len(),
        1,
        "the second was sent before the store knew the first was delivered"
    );
    assert!(r.store.completed(0).is_empty());
    r.store.fail_writes(false);
    r.until("both recorded", |r| r.store.completed(0) == [0, 1])
        .await;
    assert_eq!(r.bodies().len(), 2, "the first was not sent again");
    r.stop().await;
}

/// Sets the worker's wall clock `ms` off (see `attempt::SKEW_MS`).
fn skew(ms: i64) {
    super::attempt::SKEW_MS.with(|s| s.set(ms));
}

const DAY_MS: i64 = 86_400_000;

#[tokio::test(start_paused = true)]
async fn a_retry_scheduled_a_day_fast_waits_only_its_backoff_once_the_clock_is_corrected() {
    let mut rig = rig(
        "concurrency = 1\nretry = { initial = \"10s\", max = \"10s\", max_age = \"7d\" }",
        vec![Answer::Status(503)],
    );
    skew(DAY_MS);
    rig.events(0..2).await;
    rig.until("the first attempt", |r| r.times().len() == 1)
        .await;
    // Written by the fast clock: a day and 10 s from the real now.
    rig.until("the schedule stored", |r| {
        r.store.schedule(0, 0).is_some_and(|(a, _, _)| a == 1)
    })
    .await;
    let (_, at, _) = rig.store.schedule(0, 0).unwrap();
    assert!(at > crate::outbox::now_ms() + 86_000_000, "stored at {at}");
    // The clock is corrected, the relay restarts: the retry comes within its backoff,
    // and the delivery behind it (concurrency 1) is not held for a day.
    skew(0);
    rig.restart().await;
    let restarted = tokio::time::Instant::now();
    rig.until("both delivered", |r| r.store.completed(0).len() == 2)
        .await;
    let retried = rig.times()[1];
    assert!(
        retried.duration_since(restarted) <= Duration::from_secs(10),
        "retried {:?} after the restart",
        retried.duration_since(restarted)
    );
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_clock_set_forward_in_a_run_does_not_age_a_delivery_past_max_age() {
    let rig = rig(
        "retry = { initial = \"1s\", max = \"1s\", max_age = \"1h\" }",
        vec![Answer::Status(503), Answer::Status(503)],
    );
    rig.events(0..1).await;
    rig.until("the first attempt", |r| r.times().len() == 1)
        .await;
    // Two hours forward by the wall clock, a second or so by the monotonic one.
    skew(2 * 3_600_000);
    rig.until("delivered", |r| r.store.completed(0).len() == 1)
        .await;
    assert!(
        rig.store.dead(0).is_empty(),
        "dead: {:?}",
        rig.store.dead(0)
    );
    assert_eq!(rig.times().len(), 3);
    skew(0);
    rig.stop().await;
}
