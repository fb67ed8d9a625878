//! Config churn does not grow an engine: counters of removed configs leave the statistics
//! registry (they were reported forever before, `forget_config` never being called).
//!
//! A binary of its own, with one test, so that its counting allocator measures this engine
//! alone.

mod common;

use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts the bytes live on the heap.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to `System`, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const CYCLES: usize = 10_000;
/// LoongCollector cycles (each starts and stops two pipeline instances).
const LOONG_CYCLES: usize = 2_000;
/// Counter sets an idle engine keeps (the removed-configs delivery's).
const BASE_SETS: usize = 1;
/// Heap growth allowed over the measured cycles. Each forgotten config kept four counter
/// sets (~230 bytes each): 10,000 cycles grew the heap by ~9 MB.
const MAX_GROWTH: isize = 512 << 10;

#[test]
fn removed_configs_leave_the_statistics_registry() {
    let dir = TempDir::new("churn");
    let host = Recorder::new(true);
    let e = engine("churn", host.clone(), &dir);
    // Running configs removed by Stop(name, true), after delivering.
    e.resume().unwrap();
    for i in 0..20 {
        e.hold_on(false);
        let name = format!("run-{i}");
        load(&e, &name, &fed("r"));
        e.resume().unwrap();
        push_seq(&e, &name, 1, 1, 5);
        assert!(wait_until(WAIT, || host.log_count(&name) == 5));
        e.stop(&name, true).unwrap();
    }
    e.hold_on(false);
    assert!(
        e.stats().counter_sets() <= BASE_SETS,
        "{} counter sets after 20 run-and-stop cycles",
        e.stats().counter_sets()
    );

    // Loaded and removed while held, each under a name of its own.
    let config = fed("c");
    let mut before = 0;
    for i in 0..CYCLES {
        if i == 100 {
            // After warm-up (buffers, pools and caches at their working size).
            before = LIVE.load(Ordering::Relaxed);
        }
        let name = format!("churn-{i}");
        load(&e, &name, &config);
        assert!(e.stats().counter_sets() > BASE_SETS);
        e.load_config("", "", &name, 1, "").unwrap();
    }
    let growth = LIVE.load(Ordering::Relaxed) - before;
    assert!(
        e.stats().counter_sets() <= BASE_SETS,
        "{} counter sets after {CYCLES} load/remove cycles",
        e.stats().counter_sets()
    );
    assert!(
        growth < MAX_GROWTH,
        "the heap grew by {growth} bytes over {} load/remove cycles",
        CYCLES - 100
    );
    assert!(e.config_names().is_empty());

    // LoongCollector's add / modify / remove: staged, started, replaced, removed by
    // Stop(name, true), each config under a name of its own (and a staged config dropped).
    let mut before = 0;
    for i in 0..LOONG_CYCLES {
        if i == 100 {
            before = LIVE.load(Ordering::Relaxed);
        }
        let name = format!("loong-{i}/2");
        e.stage("proj", "ls", &name, 1, &config).unwrap();
        e.start(&name).unwrap();
        e.stage("proj", "ls", &name, 1, &fed("d")).unwrap();
        e.stop(&name, false).unwrap();
        e.start(&name).unwrap();
        e.stage("proj", "ls", &format!("never-{i}/2"), 1, &config)
            .unwrap();
        e.unstage(&format!("never-{i}/2")).unwrap();
        e.stop(&name, true).unwrap();
    }
    let growth = LIVE.load(Ordering::Relaxed) - before;
    eprintln!(
        "heap growth over {} 3.x add/modify/remove cycles: {growth} bytes",
        LOONG_CYCLES - 100
    );
    assert!(
        e.stats().counter_sets() <= BASE_SETS,
        "{} counter sets after {LOONG_CYCLES} 3.x add/modify/remove cycles",
        e.stats().counter_sets()
    );
    assert!(
        growth < MAX_GROWTH,
        "the heap grew by {growth} bytes over {} 3.x add/modify/remove cycles",
        LOONG_CYCLES - 100
    );
    assert!(e.config_names().is_empty());
}
