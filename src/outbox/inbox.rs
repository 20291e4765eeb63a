//! The outbox's intake, the same for every backend: submissions queue on a bounded
//! channel (back-pressure on the stream reader), and whatever is waiting is handed to the
//! backend as one group, so one fsync (or one round of publish acks) covers many events.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Enqueued, Outbox, OutboxError, Routed};
use crate::telemetry::error_chain;

/// How many events one group (one fsync) may cover at most.
const GROUP_MAX: usize = 1024;

/// One event waiting in the inbox, with whoever waits for it.
struct Submission {
    /// The event and its deliveries.
    routed: Routed,
    /// Answered once stored (or not); `None` when the sender does not wait.
    ack: Option<oneshot::Sender<Result<Enqueued, OutboxError>>>,
}

/// The sending side of the outbox's intake. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Inbox {
    /// To [`run_intake`].
    tx: mpsc::Sender<Submission>,
}

/// Closes the intake at shutdown: what was already sent is still stored, later
/// submissions get [`OutboxError::Closed`], and the intake ends even if an [`Inbox`] is
/// still held somewhere (an HTTP connection that will not finish, say).
pub(crate) struct CloseInbox(oneshot::Sender<()>);

impl CloseInbox {
    pub(crate) fn close(self) {
        let _ = self.0.send(());
    }
}

impl Inbox {
    /// An inbox holding up to `capacity` events before senders wait, the receiving end for
    /// [`run_intake`], and its closer.
    pub(crate) fn new(capacity: usize) -> (Inbox, IntakeEnd, CloseInbox) {
        let (tx, rx) = mpsc::channel(capacity);
        let (close, closed) = oneshot::channel();
        (Inbox { tx }, IntakeEnd { rx, closed }, CloseInbox(close))
    }

    /// Hand an event over; waits only for room (the stream reader: it must not wait for
    /// the disk). A failure to store it is logged by the intake.
    pub(crate) async fn offer(&self, routed: Routed) -> Result<(), OutboxError> {
        self.tx
            .send(Submission { routed, ack: None })
            .await
            .map_err(|_| OutboxError::Closed)
    }

    /// Hand an event over and wait until its deliveries are durable.
    pub(crate) async fn enqueue(&self, routed: Routed) -> Result<Enqueued, OutboxError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Submission {
                routed,
                ack: Some(ack),
            })
            .await
            .map_err(|_| OutboxError::Closed)?;
        done.await.map_err(|_| OutboxError::Closed)?
    }
}

/// The receiving end of an [`Inbox`].
pub(crate) struct IntakeEnd {
    /// Submissions, in arrival order.
    rx: mpsc::Receiver<Submission>,
    /// Fires when [`CloseInbox::close`] is called.
    closed: oneshot::Receiver<()>,
}

/// How long events from the stream are held, after the intake was closed, for an
/// outbox that cannot store them before they are given up.
const CLOSING_GRACE: Duration = Duration::from_secs(10);

/// Take whatever is waiting in the inbox as one group and store it, until the inbox is
/// closed and drained. Each submission is answered with its own result.
///
/// When the store cannot store a group, the `/ingest` submissions in it are answered
/// at once (their senders retry), and the stream's events are held and stored again as
/// soon as the store takes events (checked at least every second): nothing the relay read
/// from the stream is dropped for a full or failing disk. Meanwhile the inbox fills and
/// the stream reader waits for room (it also stops reading while the store refuses).
pub(crate) async fn run_intake<S: Outbox>(store: &S, end: IntakeEnd) {
    let IntakeEnd { mut rx, mut closed } = end;
    let mut subs: Vec<Submission> = Vec::with_capacity(GROUP_MAX);
    let mut group: Vec<Routed> = Vec::with_capacity(GROUP_MAX);
    let mut acks = Vec::with_capacity(GROUP_MAX);
    let mut accepting = store.accepting();
    let mut closing: Option<tokio::time::Instant> = None;
    // Events from the stream are being held for a store that cannot store them.
    let mut holding = false;
    loop {
        if group.is_empty() {
            let received = tokio::select! {
                n = rx.recv_many(&mut subs, GROUP_MAX) => n,
                _ = &mut closed, if closing.is_none() => {
                    // Refuse new submissions; keep draining what is queued.
                    closing = Some(tokio::time::Instant::now());
                    rx.close();
                    continue;
                }
            };
            if received == 0 {
                return;
            }
            for sub in subs.drain(..) {
                group.push(sub.routed);
                acks.push(sub.ack);
            }
        }
        match store.enqueue(&group).await {
            Ok(results) => {
                for (ack, result) in acks.drain(..).zip(results) {
                    if let Some(ack) = ack {
                        let _ = ack.send(Ok(result));
                    }
                }
                if std::mem::take(&mut holding) {
                    tracing::info!(
                        events = group.len(),
                        "Stored the events held from the stream"
                    );
                }
                group.clear();
            }
            Err(e) => {
                hold_stream_events(&mut group, &mut acks, &e);
                if group.is_empty() {
                    continue;
                }
                if !std::mem::replace(&mut holding, true) {
                    tracing::warn!(
                        from_stream = group.len(),
                        error = %error_chain(&e),
                        "Holding events from the stream until the outbox can store them"
                    );
                }
                let given_up = closing.is_some_and(|at| at.elapsed() >= CLOSING_GRACE);
                if given_up {
                    tracing::error!(
                        events = group.len(),
                        error = %error_chain(&e),
                        "Events from the stream could not be stored before shutdown; they are missing"
                    );
                    group.clear();
                    acks.clear();
                    continue;
                }
                // Try again once the store takes events again (not before: after a write
                // error sled still answers reads from memory, the failed batch's dedupe
                // marks included, until the store has reopened it), or in a second when
                // the store does not say it refuses.
                if *accepting.borrow_and_update() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                } else {
                    let grace = match closing {
                        Some(at) => CLOSING_GRACE.saturating_sub(at.elapsed()),
                        None => Duration::from_secs(24 * 3600),
                    };
                    let open_again = async {
                        let _ = accepting.wait_for(|a| *a).await;
                    };
                    tokio::select! {
                        _ = tokio::time::timeout(grace, open_again) => {}
                        _ = &mut closed, if closing.is_none() => {
                            closing = Some(tokio::time::Instant::now());
                            rx.close();
                        }
                    }
                }
            }
        }
    }
}

/// After a failed group: answer its `/ingest` submissions (their senders retry) and keep
/// its stream events for the next try.
fn hold_stream_events(
    group: &mut Vec<Routed>,
    acks: &mut Vec<Option<oneshot::Sender<Result<Enqueued, OutboxError>>>>,
    e: &OutboxError,
) {
    let detail = error_chain(e);
    let mut kept = Vec::with_capacity(group.len());
    for (routed, ack) in group.drain(..).zip(acks.drain(..)) {
        match ack {
            Some(ack) => {
                let _ = ack.send(Err(OutboxError::Unavailable {
                    detail: detail.clone(),
                }));
            }
            None => kept.push(routed),
        }
    }
    acks.extend(kept.iter().map(|_| None));
    *group = kept;
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::event::Event;
    use crate::outbox::memory::MemoryOutbox;
    use crate::telemetry::Metrics;

    fn routed(n: u32) -> Routed {
        Routed {
            event: Event::parse(Bytes::from(format!("{{\"tweet_id\":\"{n}\"}}"))).unwrap(),
            deliveries: vec![(0, format!("k{n}"))],
        }
    }

    /// Log lines, as text, for the assertions on what a failed group says.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn events_from_the_stream_are_held_while_the_store_cannot_store_them() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let metrics = Arc::new(Metrics::new(["t".to_string()]));
        let store = Arc::new(MemoryOutbox::new(1, Duration::from_secs(60), metrics));
        store.fail_writes(true);
        let (inbox, end, close) = Inbox::new(16);
        // Three from the stream and one that waits, all in one group.
        for n in 0..3 {
            inbox.offer(routed(n)).await.unwrap();
        }
        let waiting = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.enqueue(routed(3)).await }
        });
        tokio::task::yield_now().await;
        let intake = tokio::spawn({
            let store = store.clone();
            async move { run_intake(&*store, end).await }
        });
        // The one that waits is told to come back; the stream's are held.
        let answer = waiting.await.unwrap();
        assert!(
            matches!(&answer, Err(e @ OutboxError::Unavailable { .. }) if e.is_retriable()),
            "{answer:?}"
        );
        assert!(store.pending(0).is_empty());
        // The store recovers: the held events are stored, in order.
        store.fail_writes(false);
        for _ in 0..200 {
            if store.pending(0).len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.pending(0), vec![0, 1, 2], "the held events, stored");
        close.close();
        drop(inbox);
        intake.await.unwrap();

        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let warns: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warns.len(), 1, "one line for the episode: {text}");
        assert!(warns[0].contains("from_stream=3"), "{}", warns[0]);
        assert!(!text.contains("ERROR"), "{text}");
        assert!(
            !text.contains("lost") && !text.contains("missing"),
            "{text}"
        );
    }
}
