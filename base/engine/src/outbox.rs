//! Delivery to the host: every config name has an [`Outbox`], the ordered queue of log
//! groups serialized by `flusher_sls` and not yet accepted by the host.
//!
//! A [`deliver`] task sends the front of the queue, one payload at a time, retrying with
//! back-off (10 ms doubling, capped at 1 s) while the host refuses. The host's `SendPb` may
//! block for seconds, so each call runs on the engine's pool for blocking calls
//! ([`crate::blocking`]): a stalled host ties up one pooled thread, never a thread per config,
//! and never the delivery of other configs.
//!
//! The outbox outlives the pipeline instances of its config: a reloaded config's successor
//! delivers what its predecessor left, in order, with the same pack ids. While a send is
//! inside the host, the payload is *in flight*: it stays reachable here, so that an exit can
//! persist it too (it is re-sent after a restart unless the host accepts it before the
//! process ends), and a send that fails after its pipeline stopped puts it back in front.
//! Only one task sends for an outbox at a time ([`Outbox::turn`]): a successor waits for a
//! predecessor blocked in the host, which keeps the order.

use crate::ack::Ack;
use crate::api::HostQueue;
use crate::host::Payload;
use crate::services::Services;
use crate::stats::{AlarmType, Level, PluginStats};
use crate::store::Store;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

/// How a pipeline instance treats data it cannot deliver right away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FlushMode {
    /// Deliver, retrying with back-off for as long as it takes.
    Run = 0,
    /// Deliver until the deadline, then leave the rest in the outbox.
    Drain = 1,
    /// Stop delivering: everything not yet delivered stays in the outbox (reload hand-off).
    Park = 2,
}

/// The switch that tells one pipeline instance's flush and delivery tasks how to behave;
/// set by the lifecycle on stop.
#[derive(Debug)]
pub struct FlushControl {
    mode: AtomicU8,
    deadline: Mutex<Option<Instant>>,
    changed: Notify,
    outbox: Arc<Outbox>,
}

impl FlushControl {
    /// A control in `Run` mode for an instance delivering through `outbox`.
    pub fn new(outbox: Arc<Outbox>) -> Self {
        Self {
            mode: AtomicU8::new(FlushMode::Run as u8),
            deadline: Mutex::new(None),
            changed: Notify::new(),
            outbox,
        }
    }

    /// Where this instance's `flusher_sls` puts serialized groups.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Switches mode (with a deadline for `Drain`).
    pub fn set(&self, mode: FlushMode, deadline: Option<Instant>) {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = deadline;
        self.mode.store(mode as u8, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    fn mode(&self) -> FlushMode {
        match self.mode.load(Ordering::SeqCst) {
            0 => FlushMode::Run,
            1 => FlushMode::Drain,
            _ => FlushMode::Park,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the instance is stopping (in any way).
    pub fn stopping(&self) -> bool {
        self.mode() != FlushMode::Run
    }

    /// Whether delivery must stop now: parking, or draining past the deadline.
    pub fn parking(&self) -> bool {
        match self.mode() {
            FlushMode::Run => false,
            FlushMode::Drain => self.deadline().is_some_and(|d| Instant::now() >= d),
            FlushMode::Park => true,
        }
    }

    /// Resolves once [`FlushControl::parking`] holds.
    pub async fn until_parking(&self) {
        self.until(Self::parking).await
    }

    /// Resolves once the instance starts stopping.
    pub async fn until_stopping(&self) {
        self.until(Self::stopping).await
    }

    /// Resolves once `done` holds: re-checked on every mode change and, when draining, at
    /// the deadline.
    async fn until(&self, done: fn(&Self) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(self) {
                return;
            }
            match (self.mode(), self.deadline()) {
                (FlushMode::Drain, Some(d)) => {
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep_until(d.into()) => {}
                    }
                }
                _ => changed.await,
            }
        }
    }
}

/// The payload inside the host's SendPb right now.
struct InFlight {
    payload: Arc<Payload>,
    acks: Vec<Ack>,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Payload>,
    in_flight: Option<InFlight>,
    /// Set by an exit: what is pushed from now on is persisted at once.
    exited: bool,
    /// Set when the config was removed: payloads go to the removed-configs outbox.
    redirect: Option<Arc<Outbox>>,
}

/// The ordered queue of serialized log groups of one config name (see the module docs).
pub struct Outbox {
    inner: Mutex<Inner>,
    changed: Notify,
    /// Held by the task sending for this outbox.
    turn: tokio::sync::Mutex<()>,
    store: Option<Store>,
    svc: Services,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.lock();
        f.debug_struct("Outbox")
            .field("queued", &i.queue.len())
            .field("in_flight", &i.in_flight.is_some())
            .finish()
    }
}

/// What [`Outbox::detach_for_exit`] hands over for persisting.
pub struct Detached {
    /// The queued payloads, in order.
    pub queued: Vec<Payload>,
    /// A copy of the payload inside SendPb (without its acknowledgements), if any.
    pub in_flight: Option<Payload>,
}

/// Total logs in `payloads`.
pub fn logs_in<'a>(payloads: impl IntoIterator<Item = &'a Payload>) -> usize {
    payloads.into_iter().map(|p| p.lines).sum()
}

impl Outbox {
    /// An empty outbox; `store` persists what is pushed after an exit.
    pub fn new(store: Option<Store>, svc: &Services) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
            turn: tokio::sync::Mutex::new(()),
            store,
            svc: svc.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Payloads waiting (not counting the one in flight).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether nothing is queued and nothing is inside the host.
    pub fn is_idle(&self) -> bool {
        let i = self.lock();
        i.queue.is_empty() && i.in_flight.is_none()
    }

    /// (groups, logs) waiting, the one in flight included.
    pub fn counts(&self) -> (usize, usize) {
        let i = self.lock();
        let flying = i.in_flight.as_ref().map(|f| f.payload.lines);
        (
            i.queue.len() + usize::from(flying.is_some()),
            logs_in(&i.queue) + flying.unwrap_or(0),
        )
    }

    /// Appends a payload (persisting it at once after an exit; forwarding it after the
    /// config was removed).
    pub fn push(&self, mut p: Payload) {
        let mut i = self.lock();
        if let Some(to) = i.redirect.clone() {
            drop(i);
            to.push(p);
            return;
        }
        if i.exited && p.spill_key.is_none() {
            drop(i);
            persist_late(self.store.as_ref(), &self.svc, &mut p);
            i = self.lock();
        }
        i.queue.push_back(p);
        drop(i);
        self.changed.notify_waiters();
    }

    /// Appends payloads in order (see [`Outbox::push`]).
    pub fn extend(&self, ps: impl IntoIterator<Item = Payload>) {
        ps.into_iter().for_each(|p| self.push(p));
    }

    /// Waits until fewer than `cap` payloads are queued, or `ctl`'s instance is stopping.
    pub async fn wait_room(&self, cap: usize, ctl: &FlushControl) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.len() < cap || ctl.stopping() {
                return;
            }
            tokio::select! {
                _ = changed => {}
                _ = ctl.until_stopping() => return,
            }
        }
    }

    /// An empty buffer to serialize the next payload into: a delivered payload's, when there
    /// is one. Serializing into a warm buffer instead of a fresh allocation each time avoids
    /// the page faults of large allocations freed on another thread (three times as many
    /// faults, and ~10 % of the CPU of the regex-filter-add bench, before).
    pub fn buffer(&self) -> Vec<u8> {
        // Shared by every outbox of the engine.
        self.svc.buffer()
    }

    /// Takes every queued payload, in order (a removed config's data).
    pub fn take_all(&self) -> Vec<Payload> {
        let taken: Vec<Payload> = self.lock().queue.drain(..).collect();
        self.changed.notify_waiters();
        taken
    }

    /// From now on, payloads pushed here (and a failed in-flight one) go to `to`.
    pub fn redirect_to(&self, to: Arc<Outbox>) {
        self.lock().redirect = Some(to);
    }

    /// Marks the outbox exited (later pushes are persisted at once) and takes what it holds
    /// for persisting; [`Outbox::reattach`] puts it back once persisted.
    pub fn detach_for_exit(&self) -> Detached {
        let mut i = self.lock();
        i.exited = true;
        Detached {
            queued: i.queue.drain(..).collect(),
            in_flight: i.in_flight.as_ref().map(|f| Payload {
                acks: Vec::new(),
                ..(*f.payload).clone()
            }),
        }
    }

    /// Puts back what [`Outbox::detach_for_exit`] took, in front, after persisting:
    /// `persisted` tells whether the store has it (then the acknowledgements are released, so
    /// inputs may commit past it). `in_flight_key` is the store key of the in-flight copy.
    pub fn reattach(
        &self,
        mut queued: Vec<Payload>,
        in_flight_key: Option<Vec<u8>>,
        persisted: bool,
    ) {
        let mut i = self.lock();
        if persisted {
            queued.iter_mut().for_each(|p| p.acks.clear());
        }
        if let (Some(f), Some(key)) = (i.in_flight.as_mut(), in_flight_key) {
            if persisted {
                f.acks.clear();
            }
            // The payload is shared with the sending thread: record the key on a copy that
            // replaces it when the send ends.
            let mut copy = (*f.payload).clone();
            copy.spill_key = Some(key);
            f.payload = Arc::new(copy);
        }
        for p in queued.into_iter().rev() {
            i.queue.push_front(p);
        }
    }

    /// Undoes [`Outbox::detach_for_exit`]'s mark (the host resumed instead of exiting).
    pub fn resume(&self) {
        self.lock().exited = false;
    }

    /// Moves the front payload in flight; returns it to send.
    fn begin_send(&self) -> Option<Arc<Payload>> {
        let mut i = self.lock();
        if i.in_flight.is_some() {
            return None;
        }
        let mut p = i.queue.pop_front()?;
        let acks = std::mem::take(&mut p.acks);
        let payload = Arc::new(p);
        i.in_flight = Some(InFlight {
            payload: payload.clone(),
            acks,
        });
        Some(payload)
    }

    /// Ends the in-flight send: accepted payloads are forgotten (and removed from the store
    /// when persisted there); refused ones go back in front.
    fn end_send(&self, accepted: bool) {
        let mut i = self.lock();
        let Some(f) = i.in_flight.take() else { return };
        if accepted {
            let InFlight { payload, acks } = f;
            let key = payload.spill_key.clone();
            drop(i);
            // The host drops the acknowledgements (committing the inputs' positions), or keeps
            // them while the data waits in a queue of its own.
            self.svc.host.accepted(&payload, acks);
            if let Ok(p) = Arc::try_unwrap(payload) {
                self.svc.recycle(p.data);
            }
            if let (Some(s), Some(k)) = (&self.store, key) {
                s.unspill(&k);
            }
            self.changed.notify_waiters();
            return;
        }
        let mut p = Arc::try_unwrap(f.payload).unwrap_or_else(|shared| (*shared).clone());
        p.acks = f.acks;
        match i.redirect.clone() {
            Some(to) => {
                drop(i);
                to.push(p);
            }
            None => {
                i.queue.push_front(p);
                drop(i);
            }
        }
        self.changed.notify_waiters();
    }
}

impl HostQueue for Outbox {
    fn buffer(&self) -> Vec<u8> {
        Outbox::buffer(self)
    }

    fn push(&self, payload: Payload) {
        Outbox::push(self, payload)
    }
}

/// Persists a payload pushed after the exit spill; alarms when it cannot.
fn persist_late(store: Option<&Store>, svc: &Services, p: &mut Payload) {
    let outcome = match store {
        Some(s) => s
            .spill(std::slice::from_mut(p), crate::store::READ_WAIT)
            .map_err(|e| e.to_string()),
        None => Err("no checkpoint store".into()),
    };
    match outcome {
        Ok(_) => p.acks.clear(),
        Err(e) => svc.stats.alarm(
            AlarmType::DataDropped,
            Level::Error,
            &p.config,
            "flusher_sls",
            format!(
                "a log group of {} logs finished processing after the exit and cannot be kept for re-sending ({e}): it is lost",
                p.lines
            ),
        ),
    }
}

/// What one attempt at the host gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Accepted,
    /// `IsValidToSend` said the host's queue is full.
    NotValid,
    /// SendPb returned this code.
    Refused(i32),
}

fn attempt(host: &dyn crate::host::Host, p: &Payload) -> Attempt {
    if !host.can_send(p.logstore_key) {
        return Attempt::NotValid;
    }
    match host.send(p) {
        Ok(()) => Attempt::Accepted,
        Err(crate::host::Refused(rc)) => Attempt::Refused(rc),
    }
}

/// Sends `outbox`'s payloads in order until `ctl` says to park (see the module docs).
/// `stats` counts the retries.
pub async fn deliver(outbox: Arc<Outbox>, ctl: Arc<FlushControl>, stats: Arc<PluginStats>) {
    let _turn = tokio::select! {
        t = outbox.turn.lock() => t,
        _ = ctl.until_parking() => return,
    };
    let mut retries = 0;
    let mut warned = false;
    loop {
        if ctl.parking() {
            return;
        }
        let changed = outbox.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let Some(p) = outbox.begin_send() else {
            tokio::select! {
                _ = changed => continue,
                _ = ctl.until_parking() => return,
            }
        };
        let (config, lines) = (p.config.clone(), p.lines);
        let host = outbox.svc.host.clone();
        let outcome = outbox
            .svc
            .pool
            .run(move || attempt(&*host, &p))
            .await
            .unwrap_or(Attempt::Refused(-3));
        outbox.end_send(outcome == Attempt::Accepted);
        if outcome == Attempt::Accepted {
            retries = 0;
            warned = false;
            continue;
        }
        PluginStats::add(&stats.retries, 1);
        if let (Attempt::Refused(rc), false) = (outcome, warned) {
            outbox.svc.stats.alarm(
                AlarmType::SendFailed,
                Level::Warning,
                &config,
                "flusher_sls",
                format!("the host refused a log group of {lines} logs (SendPb returned {rc}); retrying with back-off"),
            );
            warned = true;
        }
        retries += 1;
        tokio::select! {
            _ = tokio::time::sleep(crate::backoff::delay(retries)) => {}
            _ = ctl.until_parking() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: usize) -> Payload {
        Payload {
            config: "outbox-test".into(),
            logstore: "ls".into(),
            logstore_key: -1,
            data: vec![0; 4],
            lines: n,
            shard_hash: None,
            spill_key: None,
            acks: Vec::new(),
        }
    }

    #[test]
    fn a_refused_in_flight_payload_goes_back_in_front() {
        let ob = Outbox::new(None, &crate::services::for_tests());
        ob.extend([payload(1), payload(2)]);
        let p = ob.begin_send().unwrap();
        assert_eq!(p.lines, 1);
        assert!(ob.begin_send().is_none(), "one send at a time");
        assert_eq!(ob.counts(), (2, 3));
        drop(p);
        ob.end_send(false);
        assert_eq!(ob.lock().queue.front().unwrap().lines, 1);
        let _p = ob.begin_send().unwrap();
        ob.end_send(true);
        assert_eq!(ob.counts(), (1, 2));
    }

    #[test]
    fn exit_detaches_queue_and_a_copy_of_the_in_flight_payload() {
        let ob = Outbox::new(None, &crate::services::for_tests());
        ob.extend([payload(1), payload(2), payload(3)]);
        let _flying = ob.begin_send().unwrap();
        let d = ob.detach_for_exit();
        assert_eq!(d.queued.len(), 2);
        assert_eq!(d.in_flight.as_ref().unwrap().lines, 1);
        ob.reattach(d.queued, Some(b"k".to_vec()), true);
        // The send fails after the exit: the payload comes back with its store key.
        ob.end_send(false);
        let i = ob.lock();
        assert_eq!(i.queue.len(), 3);
        assert_eq!(i.queue[0].spill_key.as_deref(), Some(&b"k"[..]));
    }

    #[test]
    fn a_removed_configs_outbox_forwards_pushes_and_failed_sends() {
        let ob = Outbox::new(None, &crate::services::for_tests());
        let orphans = Outbox::new(None, &crate::services::for_tests());
        ob.push(payload(1));
        let _f = ob.begin_send().unwrap();
        orphans.extend(ob.take_all());
        ob.redirect_to(orphans.clone());
        ob.push(payload(2));
        ob.end_send(false);
        assert_eq!(orphans.counts(), (2, 3));
        assert!(ob.is_idle());
    }
}
