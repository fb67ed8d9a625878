//! The backlog: events of one config that could not enter its (full, held or exiting)
//! pipeline, kept in order in the checkpoint store until there is room.
//!
//! Real hosts drop whatever a `ProcessLog*` call refuses, so the engine takes data whenever
//! it can: what does not fit is written here (bounded by the engine's [`SpillBudget`],
//! `SpillLimitMB`) and fed back by [`refeed`] in the order it was written. An entry is
//! removed from the store only once everything made from it was delivered (or persisted for
//! re-sending): each re-fed group carries an acknowledgement of its entry (see
//! [`crate::ack`]), so after a crash the entries still on disk are processed again
//! (at-least-once).

use super::feed::Feed;
use crate::ack::AckWindow;
use crate::event::EventGroup;
use crate::services::Services;
use crate::stats::{AlarmType, Level};
use crate::store::{Store, READ_WAIT};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Most bytes of entries read back at once.
const READ_BATCH: usize = 1 << 20;

/// The disk space all backlogs of an engine may use together.
#[derive(Debug)]
pub struct SpillBudget {
    limit: AtomicU64,
    used: AtomicU64,
}

impl SpillBudget {
    /// A budget of `limit` bytes, `used` of them taken already (entries of an earlier run).
    pub fn new(limit: u64, used: u64) -> Arc<Self> {
        Arc::new(Self {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(used),
        })
    }

    /// Changes the limit.
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Counts entries found on disk.
    pub fn add_used(&self, n: u64) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes in use.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: u64) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                (u + n <= limit).then_some(u + n)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

#[derive(Default)]
struct State {
    /// Sequence of the next entry written.
    next_seq: u64,
    /// Entries on disk not read back yet.
    unread: u64,
    /// The last entry read back.
    cursor: Option<u64>,
    /// Groups read back but not queued when a stop came: the next re-feeder sends them first.
    unsent: VecDeque<EventGroup>,
}

/// One config's backlog (see the module docs). Shared by the config's instances.
pub struct Backlog {
    /// The config's key in the store (the name `LoadConfig` was given).
    config: Arc<str>,
    store: Store,
    budget: Arc<SpillBudget>,
    state: Mutex<State>,
    /// Serializes writers, so that entries appear on disk in sequence order.
    write: Mutex<()>,
    /// (seq, bytes) of entries read back and not yet committed.
    read: Arc<Mutex<VecDeque<(u64, u64)>>>,
    window: Arc<AckWindow>,
    available: Notify,
    /// Held by the task feeding this backlog back.
    turn: tokio::sync::Mutex<()>,
    svc: Services,
}

fn encode(group: &EventGroup) -> Vec<u8> {
    let mut out = Vec::with_capacity(group.byte_size() + 64);
    out.push(1); // format version
    out.extend_from_slice(&(group.source.len() as u64).to_le_bytes());
    out.extend_from_slice(&group.source);
    crate::proto::encode_log_group(
        &mut out,
        group,
        &crate::proto::GroupHeader {
            category: "",
            source: "",
            with_time_ns: true,
        },
    );
    out
}

fn decode(raw: Vec<u8>) -> Option<EventGroup> {
    let raw = Bytes::from(raw);
    if raw.first() != Some(&1) || raw.len() < 9 {
        return None;
    }
    let n = usize::try_from(u64::from_le_bytes(raw[1..9].try_into().ok()?)).ok()?;
    let source = raw.get(9..9usize.checked_add(n)?)?;
    let source = Bytes::copy_from_slice(source);
    let mut g = crate::proto::decode_log_group(&raw.slice(9 + n..)).ok()?;
    g.source = source;
    Some(g)
}

impl Backlog {
    /// The backlog of `config`; `found` is what an earlier run left on disk.
    pub fn new(
        config: Arc<str>,
        store: Store,
        budget: Arc<SpillBudget>,
        found: Option<&crate::store::BacklogSummary>,
        svc: &Services,
    ) -> Arc<Self> {
        let read: Arc<Mutex<VecDeque<(u64, u64)>>> = Arc::default();
        let window = {
            let (store, config, read, budget) =
                (store.clone(), config.clone(), read.clone(), budget.clone());
            AckWindow::new(move |seq| {
                store.backlog_remove_through(&config, seq);
                let mut r = read.lock().unwrap_or_else(|e| e.into_inner());
                while r.front().is_some_and(|(s, _)| *s <= seq) {
                    if let Some((_, bytes)) = r.pop_front() {
                        budget.give_back(bytes);
                    }
                }
            })
        };
        Arc::new(Self {
            state: Mutex::new(State {
                next_seq: found.map_or(1, |f| f.last_seq + 1),
                unread: found.map_or(0, |f| f.entries),
                ..State::default()
            }),
            config,
            store,
            budget,
            write: Mutex::new(()),
            read,
            window,
            available: Notify::new(),
            turn: tokio::sync::Mutex::new(()),
            svc: svc.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The config is gone: what was read back and not processed stays on disk (its
    /// acknowledgements no longer remove entries).
    pub fn abandon(&self) {
        self.window.abandon();
        self.lock().unsent.clear();
    }

    /// Entries waiting (on disk or read back and not queued yet).
    pub fn waiting(&self) -> u64 {
        let s = self.lock();
        s.unread + s.unsent.len() as u64
    }

    /// Writes `group` as the newest entry.
    ///
    /// # Errors
    /// Why it could not be kept (budget used up, store error); nothing was written then.
    pub fn spill(&self, group: &EventGroup) -> Result<(), String> {
        let bytes = encode(group);
        let n = bytes.len() as u64;
        if !self.budget.try_take(n) {
            return Err(format!(
                "the disk space for events waiting for a full pipeline (SpillLimitMB) is used up ({} bytes)",
                self.budget.used()
            ));
        }
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let seq = self.lock().next_seq;
        if let Err(e) = self.store.backlog_put(&self.config, seq, bytes, READ_WAIT) {
            self.budget.give_back(n);
            return Err(e.to_string());
        }
        {
            let mut s = self.lock();
            s.next_seq = seq + 1;
            s.unread += 1;
        }
        self.available.notify_waiters();
        Ok(())
    }

    /// Reads back the next entries (each group carrying the acknowledgement of its entry).
    fn read_next(&self) -> Vec<EventGroup> {
        let cursor = self.lock().cursor;
        let entries = match self.store.backlog_read(&self.config, cursor, READ_BATCH) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(config = %self.config, error = %e, "cannot read the backlog; trying again later");
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(entries.len());
        for (seq, raw) in entries {
            let bytes = raw.len() as u64;
            self.read
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back((seq, bytes));
            let ack = self.window.track(seq);
            {
                let mut s = self.lock();
                s.cursor = Some(seq);
                s.unread = s.unread.saturating_sub(1);
            }
            match decode(raw) {
                Some(mut g) => {
                    g.acks.push(ack);
                    out.push(g);
                }
                // Dropping the acknowledgement removes the entry.
                None => self.svc.stats.alarm(
                    AlarmType::DataDropped,
                    Level::Error,
                    &self.config,
                    "pipeline",
                    format!("an unreadable backlog entry ({bytes} bytes) was removed"),
                ),
            }
        }
        out
    }
}

/// Feeds `backlog` into `feed`, oldest first, while there is room, until `stop` is set.
/// Groups read back but not queued when the stop comes are kept for the next run.
pub(crate) async fn refeed(
    backlog: Arc<Backlog>,
    feed: Arc<Feed>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let _turn = tokio::select! {
        t = backlog.turn.lock() => t,
        _ = stop.wait_for(|s| *s) => return,
    };
    loop {
        let available = backlog.available.notified();
        tokio::pin!(available);
        available.as_mut().enable();
        if *stop.borrow() {
            return;
        }
        let mut batch: VecDeque<EventGroup> = std::mem::take(&mut backlog.lock().unsent);
        if batch.is_empty() {
            if backlog.lock().unread == 0 {
                tokio::select! {
                    _ = available => continue,
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            let b = backlog.clone();
            batch = backlog
                .svc
                .pool
                .run(move || b.read_next())
                .await
                .unwrap_or_default()
                .into();
            if batch.is_empty() {
                // The store did not answer: try again a little later.
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                continue;
            }
        }
        while let Some(g) = batch.pop_front() {
            let permit = tokio::select! {
                p = feed.room_for(&g) => p,
                _ = stop.wait_for(|s| *s) => {
                    batch.push_front(g);
                    let mut s = backlog.lock();
                    batch.extend(s.unsent.drain(..));
                    s.unsent = batch;
                    return;
                }
            };
            if let Err(e) = feed.enqueue(g, Some(permit)) {
                tracing::error!(error = ?e, "a backlog entry could not be queued");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LogEvent;

    #[test]
    fn entries_round_trip_with_source_tags_topic_and_times() {
        let mut g = EventGroup::new(Bytes::from_static(b"host:ABC"));
        let mut e = LogEvent::new(7);
        e.time_ns = Some(9);
        e.contents
            .push((Bytes::from_static(b"k"), Bytes::from_static(b"v")));
        g.events.push(e);
        g.tags
            .push((Bytes::from_static(b"t"), Bytes::from_static(b"1")));
        g.topic = Bytes::from_static(b"topic");
        let back = decode(encode(&g)).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.source, g.source);
        assert_eq!(back.events[0].time_ns, Some(9));
        assert!(decode(vec![1, 200]).is_none());
        assert!(decode(vec![2; 20]).is_none());
    }

    #[test]
    fn the_budget_refuses_past_its_limit() {
        let b = SpillBudget::new(100, 30);
        assert!(b.try_take(70));
        assert!(!b.try_take(1));
        b.give_back(50);
        assert!(b.try_take(50));
        assert_eq!(b.used(), 100);
    }
}
