//! The queue between inputs (or the host) and the processors: bounded by a number of
//! events, so a slow host pushes back on every producer instead of growing memory.
//!
//! A feed belongs to a config *name* and outlives its pipeline instances: data queued while
//! the config is held (between `HoldOn(0)` and `Resume`) or reloaded waits for the next
//! instance, which takes the receiving end once the previous one let go of it. A stop is a
//! marker in the queue: the stopping instance processes what came before it.
//!
//! What cannot enter (the queue stayed full past the host's wait, the config is held, or the
//! process is exiting) is kept in the config's [`Backlog`] on disk instead of being refused.

use super::backlog::Backlog;
use crate::api::{BoxFuture, InputIo, SendError};
use crate::event::EventGroup;
use crate::services::Services;
use crate::stats::{AlarmType, Level, PluginStats};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

/// An entry of the queue.
pub(crate) enum Queued {
    /// A group holding its share of the capacity (`None`: admitted over capacity by an input
    /// that was told to stop while it waited for room).
    Data {
        group: EventGroup,
        _permit: Option<OwnedSemaphorePermit>,
    },
    /// Where the processing stage of instance `id` stops.
    Stop(u64),
}

/// Who may put data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedState {
    /// Running: data waits for room.
    Open,
    /// Held (not running): data that finds room is queued for the next run, the rest goes to
    /// the backlog at once.
    Held,
    /// The process is exiting: data goes to the backlog.
    Exited,
    /// The config is gone: data is refused.
    Removed,
}

/// Where data went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Into the queue.
    Queued,
    /// Into the backlog on disk (processed once there is room).
    Spilled,
}

/// Why data was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushError {
    /// The config was removed.
    Closed,
    /// No room, and it could not be kept on disk either (why).
    Refused(String),
}

/// A config's input queue. Shared (`Arc`) by its instances, its inputs and the host path.
pub struct Feed {
    name: Arc<str>,
    sem: Arc<Semaphore>,
    capacity: AtomicUsize,
    // Boxed: the channel allocates its slots 32 at a time, and an idle config keeps a block.
    tx: mpsc::UnboundedSender<Box<Queued>>,
    pub(crate) rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Box<Queued>>>,
    state: RwLock<FeedState>,
    changed: Notify,
    /// Counters of host-fed data (`ProcessLog*`) and of the queue (plugin `pipeline`).
    stats: Arc<PluginStats>,
    backlog: Option<Arc<Backlog>>,
    svc: Services,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("name", &self.name)
            .field("depth", &self.depth())
            .finish()
    }
}

impl Feed {
    /// A held feed holding at most `capacity` events (a larger group is admitted alone);
    /// `name` is the config's real name (for alarms), `backlog` where overflow goes.
    pub fn new(
        name: Arc<str>,
        capacity: usize,
        stats: Arc<PluginStats>,
        backlog: Option<Arc<Backlog>>,
        svc: &Services,
    ) -> Arc<Self> {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let (tx, rx) = mpsc::unbounded_channel();
        Arc::new(Self {
            name,
            sem: Arc::new(Semaphore::new(capacity)),
            capacity: AtomicUsize::new(capacity),
            tx,
            rx: tokio::sync::Mutex::new(rx),
            state: RwLock::new(FeedState::Held),
            changed: Notify::new(),
            stats,
            backlog,
            svc: svc.clone(),
        })
    }

    /// The backlog behind this feed.
    pub fn backlog(&self) -> Option<&Arc<Backlog>> {
        self.backlog.as_ref()
    }

    /// Changes the capacity (a reloaded config may set another `DefaultLogQueueSize`);
    /// room taken now is given back as it frees.
    pub fn resize(&self, capacity: usize) {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let old = self.capacity.swap(capacity, Ordering::SeqCst);
        if capacity > old {
            self.sem.add_permits(capacity - old);
        } else {
            let mut left = old - capacity;
            left -= self.sem.forget_permits(left);
            // Permits in use now are forgotten as they come back.
            if left > 0 {
                let sem = self.sem.clone();
                self.svc.rt.spawn(async move {
                    if let Ok(p) = sem.acquire_many_owned(left as u32).await {
                        p.forget();
                    }
                });
            }
        }
    }

    /// Events waiting in the queue.
    pub fn depth(&self) -> usize {
        let cap = self.capacity.load(Ordering::Relaxed);
        cap - self.sem.available_permits().min(cap)
    }

    /// Who may put data in now.
    pub fn state(&self) -> FeedState {
        *self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes who may put data in. Once this returns, nothing is queued under the old state.
    pub fn set_state(&self, s: FeedState) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = s;
        self.changed.notify_waiters();
    }

    /// Marks where instance `id`'s processing stops.
    pub(crate) fn stop_marker(&self, id: u64) {
        let _ = self.tx.send(Box::new(Queued::Stop(id)));
    }

    fn permits(&self, group: &EventGroup) -> u32 {
        let cap = self.capacity.load(Ordering::Relaxed);
        group.len().clamp(1, cap).min(u32::MAX as usize) as u32
    }

    /// Waits for room for `group`.
    pub(crate) async fn room_for(&self, group: &EventGroup) -> OwnedSemaphorePermit {
        let n = self.permits(group);
        // The semaphore is never closed.
        self.sem
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("feed semaphore is never closed")
    }

    /// Queues `group` with the room it holds (or persists it, or refuses it, per the state).
    pub(crate) fn enqueue(
        &self,
        group: EventGroup,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Pushed, PushError> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        match *st {
            FeedState::Removed => Err(PushError::Closed),
            FeedState::Exited => {
                drop(st);
                drop(permit);
                self.spill(group)
            }
            FeedState::Open | FeedState::Held => {
                let n = group.len();
                let sent = self.tx.send(Box::new(Queued::Data {
                    group,
                    _permit: permit,
                }));
                drop(st);
                match sent {
                    Ok(()) => {
                        self.note_depth();
                        Ok(Pushed::Queued)
                    }
                    // The receiver lives as long as the feed: unreachable.
                    Err(_) => Err(PushError::Refused(format!("{n} events: queue gone"))),
                }
            }
        }
    }

    /// Queues `group` for an input, waiting for room; an input told to stop while it waits
    /// (`stopped` resolves) queues it over capacity instead, so that nothing it produced is
    /// dropped.
    pub(crate) async fn send(
        &self,
        group: EventGroup,
        stopped: impl std::future::Future<Output = ()>,
    ) -> Result<Pushed, PushError> {
        match self.state() {
            FeedState::Removed => return Err(PushError::Closed),
            FeedState::Exited => return self.spill(group),
            FeedState::Open | FeedState::Held => {}
        }
        let permit = tokio::select! {
            p = self.room_for(&group) => Some(p),
            _ = stopped => None,
        };
        self.enqueue(group, permit)
    }

    /// Keeps `group` in the backlog.
    fn spill(&self, group: EventGroup) -> Result<Pushed, PushError> {
        let n = group.len() as u64;
        let Some(b) = &self.backlog else {
            return Err(PushError::Refused(
                "no checkpoint store to keep it in".into(),
            ));
        };
        b.spill(&group).map_err(PushError::Refused)?;
        PluginStats::add(&self.stats.spilled, n);
        Ok(Pushed::Spilled)
    }

    fn note_depth(&self) {
        self.stats
            .queue_depth
            .store(self.depth() as u64, Ordering::Relaxed);
    }

    /// Queues `group` from a thread outside the runtime (the host's): when the queue is full,
    /// waits at most `wait` for room (not at all while held), then keeps the group in the
    /// backlog on disk.
    ///
    /// # Errors
    /// [`PushError::Closed`] for a removed config; [`PushError::Refused`] when the group could
    /// neither be queued nor kept on disk (an alarm says so, with the count).
    pub fn push_from_host(&self, group: EventGroup, wait: Duration) -> Result<Pushed, PushError> {
        let (events, bytes) = (group.len() as u64, group.byte_size() as u64);
        let n = self.permits(&group);
        let permit = match self.sem.clone().try_acquire_many_owned(n) {
            Ok(p) => Some(p),
            Err(_) if self.state() != FeedState::Open => None,
            // The timer must be created inside the runtime's context, hence the async block.
            Err(_) => self.svc.rt.block_on(async {
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    let changed = self.changed.notified();
                    tokio::pin!(changed);
                    changed.as_mut().enable();
                    if self.state() != FeedState::Open {
                        return None;
                    }
                    tokio::select! {
                        p = self.sem.clone().acquire_many_owned(n) => return p.ok(),
                        _ = tokio::time::sleep_until(deadline) => return None,
                        _ = changed => {}
                    }
                }
            }),
        };
        let outcome = match permit {
            Some(p) => self.enqueue(group, Some(p)),
            None if self.state() == FeedState::Removed => Err(PushError::Closed),
            None => self.spill(group),
        };
        match &outcome {
            Ok(_) => {
                PluginStats::add(&self.stats.events_in, events);
                PluginStats::add(&self.stats.bytes_in, bytes);
            }
            Err(PushError::Refused(why)) => {
                PluginStats::add(&self.stats.dropped, events);
                self.svc.stats.alarm(
                    AlarmType::DataDropped,
                    Level::Error,
                    &self.name,
                    "pipeline",
                    format!("refused {events} logs from the host: the pipeline is full and they cannot be kept on disk ({why})"),
                );
            }
            Err(PushError::Closed) => {}
        }
        if outcome == Ok(Pushed::Spilled) {
            self.svc.stats.alarm(
                AlarmType::DataSpilled,
                Level::Warning,
                &self.name,
                "pipeline",
                format!("{events} logs from the host were kept on disk: the pipeline was full or not running (they are processed once there is room)"),
            );
        }
        outcome
    }
}

/// What an input task gets ([`InputIo`]): the feed, a stop signal and its source name.
#[derive(Clone)]
pub struct FeedIo {
    feed: Arc<Feed>,
    stop: tokio::sync::watch::Receiver<bool>,
    source: bytes::Bytes,
    stats: Arc<PluginStats>,
}

impl FeedIo {
    pub(crate) fn new(
        feed: Arc<Feed>,
        stop: tokio::sync::watch::Receiver<bool>,
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

    /// Resolves once the pipeline asks its inputs to stop.
    pub(crate) async fn wait_stop(&mut self) {
        // An error means the pipeline is gone: that is a stop too.
        let _ = self.stop.wait_for(|s| *s).await;
    }
}

impl InputIo for FeedIo {
    fn send(&mut self, group: EventGroup) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            let (n, bytes) = (group.len() as u64, group.byte_size() as u64);
            let mut stop = self.stop.clone();
            self.feed
                .send(group, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
                .map_err(|e| match e {
                    PushError::Closed => SendError::Closed,
                    PushError::Refused(why) => SendError::Refused(why),
                })?;
            PluginStats::add(&self.stats.events_out, n);
            PluginStats::add(&self.stats.bytes_out, bytes);
            PluginStats::add(&self.stats.groups_out, 1);
            Ok(())
        })
    }

    fn stopped(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(self.wait_stop())
    }

    fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }

    fn source(&self) -> &bytes::Bytes {
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

    fn feed(cap: usize) -> Arc<Feed> {
        let f = Feed::new(
            "feed-test".into(),
            cap,
            Arc::default(),
            None,
            &crate::services::for_tests(),
        );
        f.set_state(FeedState::Open);
        f
    }

    fn recv(f: &Feed) -> Option<usize> {
        match *f.rx.try_lock().ok()?.try_recv().ok()? {
            Queued::Data { group, .. } => Some(group.len()),
            Queued::Stop(_) => None,
        }
    }

    #[test]
    fn host_thread_blocks_then_is_refused_without_a_backlog_and_resumes_when_drained() {
        let f = feed(10);
        f.push_from_host(group(10), Duration::from_millis(10))
            .unwrap();
        let t = std::time::Instant::now();
        assert!(matches!(
            f.push_from_host(group(1), Duration::from_millis(50)),
            Err(PushError::Refused(_))
        ));
        assert!(t.elapsed() >= Duration::from_millis(50));
        // Drain from the "processor" side on another thread while the host waits.
        let f2 = f.clone();
        let drain = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            assert_eq!(recv(&f2), Some(10));
        });
        f.push_from_host(group(5), Duration::from_secs(5)).unwrap();
        drain.join().unwrap();
        assert_eq!(recv(&f), Some(5));
    }

    #[test]
    fn a_group_larger_than_the_queue_is_admitted_alone() {
        let f = feed(4);
        f.push_from_host(group(100), Duration::from_millis(10))
            .unwrap();
        assert!(f
            .push_from_host(group(1), Duration::from_millis(10))
            .is_err());
    }

    #[test]
    fn a_held_feed_queues_what_fits_without_waiting_and_a_removed_one_refuses() {
        let f = feed(4);
        f.set_state(FeedState::Held);
        f.push_from_host(group(3), Duration::from_secs(5)).unwrap();
        let t = std::time::Instant::now();
        assert!(f.push_from_host(group(3), Duration::from_secs(5)).is_err());
        assert!(t.elapsed() < Duration::from_secs(1), "no wait while held");
        f.set_state(FeedState::Removed);
        assert_eq!(
            f.push_from_host(group(1), Duration::from_secs(5)),
            Err(PushError::Closed)
        );
    }

    #[test]
    fn resize_changes_the_room() {
        let f = feed(4);
        f.resize(8);
        f.push_from_host(group(8), Duration::from_millis(10))
            .unwrap();
        assert_eq!(f.depth(), 8);
        assert_eq!(recv(&f), Some(8));
        f.resize(2);
        assert!(
            f.push_from_host(group(3), Duration::from_millis(10))
                .is_ok(),
            "larger than the queue: admitted alone"
        );
        assert!(f
            .push_from_host(group(1), Duration::from_millis(10))
            .is_err());
    }
}
