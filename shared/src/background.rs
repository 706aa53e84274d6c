//! A node's long-lived background tasks, all started and stopped one way:
//! spawned on one [`TaskTracker`], told to stop by one
//! [`CancellationToken`], and awaited (within a grace) when the node shuts
//! down, so none is cut off mid-write and none outlives the node.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The background tasks of one node.
#[derive(Clone, Default)]
pub struct Background {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    /// No tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` until it returns. A task that loops must also end when
    /// [`Background::stopping`] completes.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// The signal every looping task selects on.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Tells every task to stop and waits for them, at most `grace`.
    /// Returns whether they all ended in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        let ended = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        if !ended {
            tracing::warn!(
                left = self.tracker.len(),
                "background tasks still running at shutdown"
            );
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_stops_and_awaits_every_task() {
        let background = Background::new();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..3 {
            let stop = background.stopping();
            let done = done_tx.clone();
            background.spawn(async move {
                stop.cancelled().await;
                let _ = done.send(n);
            });
        }
        assert!(background.shutdown(Duration::from_secs(5)).await);
        let mut ended: Vec<i32> = std::iter::from_fn(|| done_rx.try_recv().ok()).collect();
        ended.sort();
        assert_eq!(ended, [0, 1, 2]);
    }

    #[tokio::test]
    async fn a_task_that_will_not_stop_is_reported_after_the_grace() {
        let background = Background::new();
        background.spawn(std::future::pending());
        assert!(!background.shutdown(Duration::from_millis(50)).await);
    }
}
