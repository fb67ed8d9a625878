//! Acknowledgements: an input's position (a file offset, a mock's `Index`) is committed only
//! after the host accepted every group produced before it — a sliding window of acks, as in
//! InLong and Vector's end-to-end acknowledgements.
//!
//! An input attaches an [`Ack`] to each group it produces. Clones travel with the events
//! (through processors and aggregators, into every log group that holds some of them, and
//! into the payload parked or sent to the host). When the last clone is dropped — the data
//! was accepted by the host, persisted for re-sending, or deliberately dropped with an alarm —
//! the entry is done, and the window commits the highest position before which everything is
//! done.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

type Commit = Box<dyn Fn(u64) + Send + Sync>;

/// An input's window of produced-but-unacknowledged positions.
pub struct AckWindow {
    state: Mutex<State>,
    on_commit: Commit,
}

#[derive(Default)]
struct State {
    /// Set by [`AckWindow::abandon`]: nothing is committed any more.
    abandoned: bool,
    next_seq: u64,
    /// (seq, position, done), in production order.
    pending: VecDeque<(u64, u64, bool)>,
    committed: Option<u64>,
}

impl fmt::Debug for AckWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("AckWindow")
            .field("pending", &s.pending.len())
            .field("committed", &s.committed)
            .finish()
    }
}

impl AckWindow {
    /// A window that calls `on_commit(position)` whenever the committed position advances.
    pub fn new(on_commit: impl Fn(u64) + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            on_commit: Box::new(on_commit),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers data up to `position` (produced now, after everything tracked before).
    pub fn track(self: &Arc<Self>, position: u64) -> Ack {
        let mut s = self.lock();
        let seq = s.next_seq;
        s.next_seq += 1;
        s.pending.push_back((seq, position, false));
        Ack(Arc::new(AckInner {
            window: self.clone(),
            seq,
        }))
    }

    /// The last committed position.
    pub fn committed(&self) -> Option<u64> {
        self.lock().committed
    }

    /// Stops committing: acknowledgements done from now on are forgotten (the owner is gone
    /// and what they stand for must not count as delivered).
    pub fn abandon(&self) {
        let mut s = self.lock();
        s.abandoned = true;
        s.pending.clear();
    }

    /// Positions tracked but not yet committed.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    fn done(&self, seq: u64) {
        let advanced = {
            let mut s = self.lock();
            if s.abandoned {
                return;
            }
            let Some(front) = s.pending.front().map(|e| e.0) else {
                return;
            };
            if let Some(e) = s.pending.get_mut((seq - front) as usize) {
                e.2 = true;
            }
            let mut last = None;
            while s.pending.front().is_some_and(|e| e.2) {
                last = s.pending.pop_front().map(|e| e.1);
            }
            if last.is_some() {
                s.committed = last;
            }
            last
        };
        if let Some(p) = advanced {
            (self.on_commit)(p);
        }
    }
}

struct AckInner {
    window: Arc<AckWindow>,
    seq: u64,
}

impl Drop for AckInner {
    fn drop(&mut self) {
        self.window.done(self.seq);
    }
}

/// A handle on one tracked position; done when its last clone is dropped.
#[derive(Clone)]
pub struct Ack(Arc<AckInner>);

impl Ack {
    /// The data this ack stands for is lost (a memory buffer at exit): its input commits
    /// nothing more in this process, so that it reads the data again after a restart.
    pub fn lose(self) {
        self.0.window.abandon();
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ack({})", self.0.seq)
    }
}

impl PartialEq for Ack {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Ack {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn commits_only_the_contiguous_prefix() {
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        let w = AckWindow::new(move |p| s.store(p, Ordering::SeqCst));
        let a = w.track(10);
        let b = w.track(20);
        let c = w.track(30);
        let b2 = b.clone();
        drop(b);
        drop(c);
        assert_eq!(w.committed(), None, "10 still pending");
        drop(a);
        assert_eq!(w.committed(), Some(10), "20 still held by a clone");
        drop(b2);
        assert_eq!(w.committed(), Some(30));
        assert_eq!(seen.load(Ordering::SeqCst), 30);
        assert_eq!(w.pending(), 0);
    }
}
