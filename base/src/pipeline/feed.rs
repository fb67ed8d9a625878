//! The queue between inputs (or the host) and the processors: bounded by a number of
//! events, so a slow host pushes back on every producer instead of growing memory.

use crate::event::EventGroup;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

/// A group waiting for the processors, holding its share of the queue's capacity.
pub(crate) struct Queued {
    pub(crate) group: EventGroup,
    pub(crate) _permit: OwnedSemaphorePermit,
}

/// Why data was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The pipeline is stopping or gone.
    Closed,
    /// The queue stayed full for the whole wait.
    Timeout,
}

/// Sending side of a pipeline's input queue. Cheap to clone.
#[derive(Clone)]
pub struct Feed {
    sem: Arc<Semaphore>,
    capacity: usize,
    tx: mpsc::UnboundedSender<Queued>,
}

impl Feed {
    /// A queue holding at most `capacity` events (a larger group is admitted alone).
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::UnboundedReceiver<Queued>) {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let (tx, rx) = mpsc::unbounded_channel();
        let sem = Arc::new(Semaphore::new(capacity));
        (Self { sem, capacity, tx }, rx)
    }

    fn permits(&self, group: &EventGroup) -> u32 {
        group.len().clamp(1, self.capacity).min(u32::MAX as usize) as u32
    }

    /// Queues `group`, waiting for room.
    ///
    /// # Errors
    /// [`PushError::Closed`] when the processors are gone.
    pub async fn send(&self, group: EventGroup) -> Result<(), PushError> {
        let n = self.permits(&group);
        let permit = self
            .sem
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| PushError::Closed)?;
        self.tx
            .send(Queued {
                group,
                _permit: permit,
            })
            .map_err(|_| PushError::Closed)
    }

    /// Queues `group` from a thread outside the runtime (the host's), blocking at most `wait`.
    ///
    /// # Errors
    /// [`PushError::Timeout`] when no room appeared in time, [`PushError::Closed`] when the
    /// processors are gone.
    pub fn send_blocking(
        &self,
        group: EventGroup,
        wait: Duration,
        rt: &Handle,
    ) -> Result<(), PushError> {
        if self.tx.is_closed() {
            return Err(PushError::Closed);
        }
        let n = self.permits(&group);
        let permit = match self.sem.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(PushError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => rt
                .block_on(tokio::time::timeout(
                    wait,
                    self.sem.clone().acquire_many_owned(n),
                ))
                .map_err(|_| PushError::Timeout)?
                .map_err(|_| PushError::Closed)?,
        };
        self.tx
            .send(Queued {
                group,
                _permit: permit,
            })
            .map_err(|_| PushError::Closed)
    }
}

/// What an input task gets: a way to send, a stop signal, and its source name.
pub struct InputIo {
    feed: Feed,
    stop: watch::Receiver<bool>,
    source: bytes::Bytes,
}

impl InputIo {
    pub(crate) fn new(feed: Feed, stop: watch::Receiver<bool>, source: bytes::Bytes) -> Self {
        Self { feed, stop, source }
    }

    /// Sends a group to the processors, waiting while the queue is full (back-pressure).
    ///
    /// # Errors
    /// [`PushError::Closed`] when the pipeline's processors are gone.
    pub async fn send(&mut self, group: EventGroup) -> Result<(), PushError> {
        self.feed.send(group).await
    }

    /// Resolves once the pipeline asks its inputs to stop.
    pub async fn stopped(&mut self) {
        // An error means the pipeline is gone: that is a stop too.
        let _ = self.stop.wait_for(|s| *s).await;
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// The source key for groups of this input (pack ids are numbered per source).
    pub fn source(&self) -> &bytes::Bytes {
        &self.source
    }
}
