//! The queue between inputs (or the host) and the processors: bounded by a number of
//! events, so a slow host pushes back on every producer instead of growing memory.

use crate::event::EventGroup;
use crate::stats::PluginStats;
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
    /// Counters of host-fed data (`ProcessLog*`) and of the queue.
    stats: Arc<PluginStats>,
}

impl Feed {
    /// A queue holding at most `capacity` events (a larger group is admitted alone).
    pub(crate) fn new(
        capacity: usize,
        stats: Arc<PluginStats>,
    ) -> (Self, mpsc::UnboundedReceiver<Queued>) {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let (tx, rx) = mpsc::unbounded_channel();
        let sem = Arc::new(Semaphore::new(capacity));
        (
            Self {
                sem,
                capacity,
                tx,
                stats,
            },
            rx,
        )
    }

    /// Events waiting in the queue.
    pub fn depth(&self) -> usize {
        self.capacity - self.sem.available_permits().min(self.capacity)
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
            .map_err(|_| PushError::Closed)?;
        self.note_depth();
        Ok(())
    }

    fn note_depth(&self) {
        self.stats
            .queue_depth
            .store(self.depth() as u64, std::sync::atomic::Ordering::Relaxed);
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
        let (events, bytes) = (group.len() as u64, group.byte_size() as u64);
        let permit = match self.sem.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(PushError::Closed),
            // The timer must be created inside the runtime's context, hence the async block.
            Err(tokio::sync::TryAcquireError::NoPermits) => rt
                .block_on(async {
                    tokio::time::timeout(wait, self.sem.clone().acquire_many_owned(n)).await
                })
                .map_err(|_| PushError::Timeout)?
                .map_err(|_| PushError::Closed)?,
        };
        self.tx
            .send(Queued {
                group,
                _permit: permit,
            })
            .map_err(|_| PushError::Closed)?;
        PluginStats::add(&self.stats.events_in, events);
        PluginStats::add(&self.stats.bytes_in, bytes);
        self.note_depth();
        Ok(())
    }
}

/// What an input task gets: a way to send, a stop signal, and its source name.
#[derive(Clone)]
pub struct InputIo {
    feed: Feed,
    stop: watch::Receiver<bool>,
    source: bytes::Bytes,
    stats: Arc<PluginStats>,
}

impl InputIo {
    pub(crate) fn new(
        feed: Feed,
        stop: watch::Receiver<bool>,
        source: bytes::Bytes,
        stats: Arc<PluginStats>,
    ) -> Self {
        Self {
            feed,
            stop,
            source,
            stats,
        }
    }

    /// Sends a group to the processors, waiting while the queue is full (back-pressure).
    ///
    /// # Errors
    /// [`PushError::Closed`] when the pipeline's processors are gone.
    pub async fn send(&mut self, group: EventGroup) -> Result<(), PushError> {
        let (n, bytes) = (group.len() as u64, group.byte_size() as u64);
        self.feed.send(group).await?;
        PluginStats::add(&self.stats.events_out, n);
        PluginStats::add(&self.stats.bytes_out, bytes);
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LogEvent;

    fn group(n: usize) -> EventGroup {
        let mut g = EventGroup::default();
        g.events.resize(n, LogEvent::default());
        g
    }

    #[test]
    fn host_thread_blocks_then_times_out_on_a_full_queue_and_resumes_when_drained() {
        let rt = crate::runtime::handle();
        let (feed, mut rx) = Feed::new(10, Arc::default());
        feed.send_blocking(group(10), Duration::from_millis(10), &rt)
            .unwrap();
        let t = std::time::Instant::now();
        assert_eq!(
            feed.send_blocking(group(1), Duration::from_millis(50), &rt),
            Err(PushError::Timeout)
        );
        assert!(t.elapsed() >= Duration::from_millis(50));
        // Drain from the "processor" side on another thread while the host waits.
        let drain = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            let q = rx.blocking_recv().unwrap();
            assert_eq!(q.group.len(), 10);
            drop(q);
            rx
        });
        feed.send_blocking(group(5), Duration::from_secs(5), &rt)
            .unwrap();
        let mut rx = drain.join().unwrap();
        assert_eq!(rx.blocking_recv().unwrap().group.len(), 5);
        drop(rx);
        assert_eq!(
            feed.send_blocking(group(1), Duration::from_millis(10), &rt),
            Err(PushError::Closed)
        );
    }

    #[test]
    fn a_group_larger_than_the_queue_is_admitted_alone() {
        let rt = crate::runtime::handle();
        let (feed, _rx) = Feed::new(4, Arc::default());
        feed.send_blocking(group(100), Duration::from_millis(10), &rt)
            .unwrap();
        assert_eq!(
            feed.send_blocking(group(1), Duration::from_millis(10), &rt),
            Err(PushError::Timeout)
        );
    }
}
