//! The shutdown signal every loop selects on.
//!
//! A `watch` channel rather than a global flag: each task holds a [`Shutdown`] and awaits
//! [`Shutdown::wait`] next to its real work, so a stop reaches every wait at once.

use tokio::sync::watch;

/// Held by whoever decides to stop (the signal handler, a test).
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// Held by every loop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is triggered (at once if it already was). A dropped
    /// trigger counts as a shutdown.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
