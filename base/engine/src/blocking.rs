//! A small pool of threads for calls that may block: the host's `SendPb` and flushers that
//! write. It grows only when calls are actually stuck, never with the number of configs.
//!
//! Two threads serve ordinary calls (a SendPb that answers at once costs microseconds, so a
//! burst from a thousand configs just queues). When a call has waited [`GROW_AFTER`] without
//! starting while every thread is busy and none has finished a call for as long — the host is
//! blocking inside SendPb for some configs — one more thread is started (at most one per
//! [`GROW_AFTER`]), up to [`MAX_THREADS`]: a config blocked in the host ties up one thread,
//! and the others keep being served. Threads beyond the first two end after [`KEEP_ALIVE`]
//! without work.

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Threads kept even when idle.
const CORE_THREADS: usize = 2;
/// Most threads at once (a host blocking in SendPb for more configs than this at the same
/// time makes the rest wait their turn).
pub const MAX_THREADS: usize = 256;
/// How long a call may wait to start, with every thread busy, before a thread is added.
pub const GROW_AFTER: Duration = Duration::from_millis(50);
/// Idle time after which a thread beyond the core ones ends.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

/// What the pool's threads share (not the sender: once every [`Pool`] handle is gone the
/// channel disconnects and the threads end).
struct Shared {
    rx: Receiver<Job>,
    threads: AtomicUsize,
    idle: AtomicUsize,
    /// When a call last finished, and when the pool last grew (ms after `epoch`).
    progress_ms: AtomicU64,
    grew_ms: AtomicU64,
    epoch: Instant,
    thread_name: String,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether the threads are stuck (none idle, none finished a call lately) and this caller
    /// may add one: the pool did not grow lately, and no other caller claimed it first.
    fn claim_growth(&self) -> bool {
        let (now, lately) = (self.now_ms(), GROW_AFTER.as_millis() as u64);
        let grew = self.grew_ms.load(Ordering::SeqCst);
        self.idle.load(Ordering::SeqCst) == 0
            && now.saturating_sub(self.progress_ms.load(Ordering::SeqCst)) >= lately
            && now.saturating_sub(grew) >= lately
            && self
                .grew_ms
                .compare_exchange(grew, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }
}

/// One engine's pool of threads for blocking calls. Cheap to clone; the threads end once
/// every handle is dropped.
#[derive(Clone)]
pub struct Pool {
    tx: Sender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads())
            .finish()
    }
}

impl Pool {
    /// A pool without threads yet (they start with the first call); `name` prefixes the
    /// threads' names (`<name>-send`).
    pub fn new(name: &str) -> Self {
        let (tx, rx) = unbounded();
        Self {
            tx,
            shared: Arc::new(Shared {
                rx,
                threads: AtomicUsize::new(0),
                idle: AtomicUsize::new(0),
                progress_ms: AtomicU64::new(0),
                grew_ms: AtomicU64::new(0),
                epoch: Instant::now(),
                thread_name: format!("{name}-send"),
            }),
        }
    }

    /// Threads of the pool right now.
    pub fn threads(&self) -> usize {
        self.shared.threads.load(Ordering::SeqCst)
    }

    /// Runs `f` on the pool and waits for it without blocking the runtime. `None` when `f`
    /// panicked (the panic is caught on the pool thread).
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let pool = &self.shared;
        if pool.threads.load(Ordering::SeqCst) < CORE_THREADS {
            spawn_thread(pool);
        }
        let started = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let s = started.clone();
        let job: Job = Box::new(move || {
            s.store(true, Ordering::SeqCst);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r.ok());
        });
        self.tx.send(job).ok()?;
        loop {
            tokio::select! {
                r = &mut rx => return r.ok().flatten(),
                _ = tokio::time::sleep(GROW_AFTER) => {
                    // Still waiting to start, and every thread is stuck in a call.
                    if !started.load(Ordering::SeqCst) && pool.claim_growth() {
                        spawn_thread(pool);
                    }
                }
            }
        }
    }
}

fn spawn_thread(pool: &Arc<Shared>) {
    let n = pool.threads.fetch_add(1, Ordering::SeqCst);
    if n >= MAX_THREADS {
        pool.threads.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let p = pool.clone();
    let spawned = std::thread::Builder::new()
        .name(pool.thread_name.clone())
        .stack_size(256 << 10)
        .spawn(move || loop {
            p.idle.fetch_add(1, Ordering::SeqCst);
            let job = p.rx.recv_timeout(KEEP_ALIVE);
            p.idle.fetch_sub(1, Ordering::SeqCst);
            match job {
                Ok(job) => {
                    job();
                    p.progress_ms.store(p.now_ms(), Ordering::SeqCst);
                }
                Err(RecvTimeoutError::Timeout) => {
                    let mut n = p.threads.load(Ordering::SeqCst);
                    // Only threads beyond the core ones end, one at a time.
                    while n > CORE_THREADS {
                        match p.threads.compare_exchange(
                            n,
                            n - 1,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        ) {
                            Ok(_) => return,
                            Err(now) => n = now,
                        }
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        });
    if let Err(e) = spawned {
        pool.threads.fetch_sub(1, Ordering::SeqCst);
        tracing::error!(error = %e, "cannot start a thread for blocking calls");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    #[test]
    fn stuck_calls_grow_the_pool_and_others_still_run() {
        let rt = crate::runtime::build("blocking-test");
        let pool = Pool::new("test");
        let (release, wait) = bounded::<()>(0);
        let inside = Arc::new(AtomicUsize::new(0));
        let stuck: Vec<_> = (0..4)
            .map(|_| {
                let (w, n) = (wait.clone(), inside.clone());
                {
                    let pool = pool.clone();
                    rt.spawn(async move {
                        pool.run(move || {
                            n.fetch_add(1, Ordering::SeqCst);
                            let _ = w.recv();
                        })
                        .await
                    })
                }
            })
            .collect();
        // Every stuck call gets a thread of its own, and another call still runs.
        let t = std::time::Instant::now();
        while inside.load(Ordering::SeqCst) < 4 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            inside.load(Ordering::SeqCst),
            4,
            "{} threads",
            pool.threads()
        );
        let t = std::time::Instant::now();
        let answer = rt.block_on(pool.run(|| 42));
        assert_eq!(answer, Some(42));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(pool.threads() >= 5, "{} threads", pool.threads());
        drop(release);
        for h in stuck {
            rt.block_on(h).unwrap();
        }
        assert_eq!(rt.block_on(pool.run(|| panic!("caught"))), None::<()>);
    }
}
