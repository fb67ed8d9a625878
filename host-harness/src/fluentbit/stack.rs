//! Stack use of plugin entry points, measured by painting.
//!
//! Fluent Bit runs flush on a 64 KiB coroutine stack without a guard page. The harness runs
//! each such call on a thread whose whole stack is that size (std's `stack_size`, with glibc's
//! guard page below it, so an overflow faults instead of corrupting the heap). Before a call,
//! [`Probe::measure`] fills the unused part of the stack below the current stack pointer with a
//! known pattern; after it, the lowest word no longer holding the pattern is the high-water
//! mark: `sp at the call - that address` is what the entry point (and everything it called,
//! host callbacks included) used. `available` is `sp at the call - the stack's lowest usable
//! byte`: what the call had (a 64 KiB thread gives a bit less than 64 KiB: glibc keeps the
//! thread's TLS and descriptor at the top of the block, and std's thread start has frames).

use std::collections::BTreeMap;

const PATTERN: u64 = 0xA55A_5AA5_C33C_3CC3;
/// Left unpainted right below the stack pointer (the painting function's own use).
const MARGIN: usize = 256;
/// Left unpainted above the lowest usable byte.
const LOW_MARGIN: usize = 64;

/// The current thread's stack bounds, for painting.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    low: usize,
    /// Paint at most this many bytes below the stack pointer (big stacks: control calls).
    limit: usize,
}

/// One measured call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Use {
    /// Bytes below the stack pointer at the call that the call wrote.
    pub used: usize,
    /// Bytes that were available below the stack pointer at the call.
    pub available: usize,
    /// The call reached the lowest painted word: `used` is a lower bound.
    pub saturated: bool,
}

#[inline(always)]
fn stack_pointer() -> usize {
    let sp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads rsp.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reads sp.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let x = 0u8;
        sp = std::ptr::addr_of!(x) as usize;
    }
    sp
}

impl Probe {
    /// The calling thread's stack; paint at most `limit` bytes per call.
    pub fn current(limit: usize) -> Probe {
        // SAFETY: pthread_getattr_np on the current thread fills the attr; destroyed after.
        let low = unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                0
            } else {
                let mut addr: *mut libc::c_void = std::ptr::null_mut();
                let mut size: libc::size_t = 0;
                let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
                libc::pthread_attr_destroy(&mut attr);
                if r == 0 {
                    addr as usize
                } else {
                    0
                }
            }
        };
        Probe { low, limit }
    }

    /// Runs `f` and measures the stack it used (no measurement when the bounds are unknown).
    #[inline(never)]
    pub fn measure<R>(&self, f: impl FnOnce() -> R) -> (R, Use) {
        let sp = stack_pointer();
        if self.low == 0 || sp <= self.low + MARGIN + LOW_MARGIN {
            return (f(), Use::default());
        }
        let available = sp - self.low;
        let hi = (sp - MARGIN) & !7;
        let lo = ((self.low + LOW_MARGIN).max(sp.saturating_sub(self.limit)) + 7) & !7;
        let mut p = lo;
        while p < hi {
            // SAFETY: [lo, hi) is this thread's stack below the stack pointer (unused now).
            unsafe { std::ptr::write_volatile(p as *mut u64, PATTERN) };
            p += 8;
        }
        let r = std::hint::black_box(f());
        let mut q = lo;
        // SAFETY: as above; reads what the call left.
        while q < hi && unsafe { std::ptr::read_volatile(q as *const u64) } == PATTERN {
            q += 8;
        }
        let used = sp - q;
        (
            r,
            Use {
                used,
                available,
                saturated: q == lo && lo > self.low + LOW_MARGIN,
            },
        )
    }
}

/// The largest use per entry point.
#[derive(Debug, Default, Clone)]
pub struct Table(pub BTreeMap<&'static str, Entry>);

#[derive(Debug, Default, Clone, Copy)]
pub struct Entry {
    pub calls: u64,
    pub max_used: usize,
    pub min_available: usize,
    pub saturated: bool,
}

impl Table {
    pub fn add(&mut self, name: &'static str, u: Use) {
        let e = self.0.entry(name).or_default();
        if e.calls == 0 || u.available < e.min_available {
            e.min_available = u.available;
        }
        e.calls += 1;
        e.max_used = e.max_used.max(u.used);
        e.saturated |= u.saturated;
    }

    pub fn merge(&mut self, other: &Table) {
        for (name, o) in &other.0 {
            let e = self.0.entry(name).or_default();
            if e.calls == 0 || o.min_available < e.min_available {
                e.min_available = o.min_available;
            }
            e.calls += o.calls;
            e.max_used = e.max_used.max(o.max_used);
            e.saturated |= o.saturated;
        }
    }

    pub fn json(&self) -> serde_json::Value {
        self.0
            .iter()
            .map(|(k, e)| {
                (
                    k.to_string(),
                    serde_json::json!({
                        "calls": e.calls,
                        "max_used_bytes": e.max_used,
                        "available_bytes": e.min_available,
                        "at_least": e.saturated,
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

type Job = Box<dyn FnOnce(&Probe) + Send>;

/// A thread with a stack of `stack_bytes` that runs jobs (and measures them) one at a time:
/// the harness's "engine thread" for the calls Fluent Bit makes outside coroutines.
pub struct Executor {
    tx: Option<std::sync::mpsc::Sender<Job>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Executor {
    pub fn new(name: &str, stack_bytes: usize, paint_limit: usize) -> Executor {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .stack_size(stack_bytes)
            .spawn(move || {
                let probe = Probe::current(paint_limit);
                while let Ok(job) = rx.recv() {
                    job(&probe);
                }
            })
            .expect("spawn an executor thread");
        Executor {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Runs `f` on the executor's thread, measured; waits for it.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> (R, Use) {
        let (rtx, rrx) = std::sync::mpsc::channel();
        let job = Box::new(move |p: &Probe| {
            let _ = rtx.send(p.measure(f));
        });
        self.tx
            .as_ref()
            .expect("executor running")
            .send(job)
            .expect("executor thread alive");
        rrx.recv().expect("executor thread finished the job")
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn burn(n: usize) -> u64 {
        let mut buf = [0u8; 8192];
        for (i, b) in buf.iter_mut().enumerate().take(n) {
            *b = i as u8;
        }
        std::hint::black_box(&buf);
        buf.iter().map(|&b| u64::from(b)).sum()
    }

    #[test]
    fn painting_finds_the_high_water_mark() {
        let ex = Executor::new("probe-test", 64 * 1024, usize::MAX);
        let (_, small) = ex.run(|| 1 + 1);
        let (_, big) = ex.run(|| burn(8192));
        assert!(
            small.available > 40 * 1024 && small.available <= 64 * 1024,
            "{small:?}"
        );
        assert!(small.used < 2048, "{small:?}");
        assert!(big.used >= 8192 && big.used < 16 * 1024, "{big:?}");
        assert!(!big.saturated);
        let mut t = Table::default();
        t.add("a", small);
        t.add("a", big);
        assert_eq!(t.0["a"].calls, 2);
        assert_eq!(t.0["a"].max_used, big.used);
    }
}
