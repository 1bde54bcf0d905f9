//! Counters the run waits on: subscribers connected, failed, and complete (every expected event
//! received). Each subscriber touches them a few times in its life, never per event.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Progress is shared by the run and every subscriber task.
#[derive(Debug, Default)]
pub struct Progress {
    connected: AtomicUsize,
    failed: AtomicUsize,
    complete: AtomicUsize,
    changed: Notify,
}

impl Progress {
    /// Subscriber_connected counts a subscriber whose stream started.
    pub fn subscriber_connected(&self) {
        self.connected.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// Subscriber_failed counts a subscriber that could not connect.
    pub fn subscriber_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// Subscriber_complete counts a subscriber that received every expected event.
    pub fn subscriber_complete(&self) {
        self.complete.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// Connected is how many subscribers connected so far.
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Failed is how many subscribers could not connect.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// Complete is how many subscribers received every expected event.
    pub fn complete(&self) -> usize {
        self.complete.load(Ordering::Relaxed)
    }

    /// Wait_until returns true once `done` holds, or false when `limit` passes first.
    pub async fn wait_until(&self, limit: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            if done(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done(self);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_the_condition_or_gives_up_at_the_limit() {
        let progress = Progress::default();
        progress.subscriber_connected();
        progress.subscriber_failed();
        assert!(
            progress
                .wait_until(Duration::from_secs(1), |p| p.connected() + p.failed() == 2)
                .await
        );
        assert!(
            !progress
                .wait_until(Duration::from_millis(20), |p| p.complete() == 1)
                .await
        );
    }
}
