//! Concurrency stress: two host threads push logs (ProcessLog and ProcessLogGroup) into a
//! host-fed config while a third thread reloads it (HoldOn(0) → LoadConfig → Resume) over
//! and over. Every log whose call returned 0 must reach the host at least once, no log whose
//! call failed may appear, nothing deadlocks (a watchdog aborts the process after a bound).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::proto::{log, now_secs, LogGroup};
use e2e_tests::session::{add_fields, hold_on_bounded};
use e2e_tests::store::{self, COUNTERS};
use e2e_tests::{analyze_pack_ids, base, pipeline, Session};
use prost::Message;
use serde_json::json;

const NAME: &str = "stress_fed";
/// How long the reload thread cycles.
const RELOAD_FOR: Duration = Duration::from_secs(15);
/// The whole test must finish within this, or the process is aborted.
const WATCHDOG: Duration = Duration::from_secs(120);
/// Logs per ProcessLogGroup call.
const GROUP_SIZE: usize = 20;
const DRAIN_TIMEOUT_MS: u64 = 30_000;

/// Aborts the process when the test has not finished within `limit` (a deadlock).
fn watchdog(limit: Duration, done: Arc<AtomicBool>, phase: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "stress: WATCHDOG: test still running after {limit:?} (phase {}): deadlock? aborting; {}",
            phase.load(Ordering::SeqCst),
            store::counters_summary()
        );
        std::process::abort();
    });
}

/// Return codes of one pusher thread: accepted ids and how often each code came back.
struct Pushed {
    accepted: Vec<String>,
    refused: Vec<String>,
    codes: BTreeMap<i64, u64>,
}

#[test]
fn concurrent_process_log_and_reloads_lose_nothing_and_do_not_deadlock() {
    let done = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicU64::new(0));
    watchdog(WATCHDOG, done.clone(), phase.clone());

    let s = Arc::new(Session::start("stress"));
    assert_eq!(
        base::load_global_config(
            &json!({"HoldOnTimeoutMs": DRAIN_TIMEOUT_MS, "ProcessTimeoutMs": 1000}).to_string()
        ),
        0
    );
    let config = pipeline(vec![], vec![add_fields(json!({"env": "stress"}))]);
    assert_eq!(s.load(NAME, &config), 0, "LoadConfig({NAME})");
    base::resume();
    phase.store(1, Ordering::SeqCst);

    let stop = Arc::new(AtomicBool::new(false));
    let single = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut p = Pushed {
                accepted: Vec::new(),
                refused: Vec::new(),
                codes: BTreeMap::new(),
            };
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let uid = format!("l-{n}");
                n += 1;
                let bytes = log(now_secs(), &[("uid", &uid)]).encode_to_vec();
                let rc = base::process_log(NAME, &bytes, "", "stress", b"via~=~log");
                *p.codes.entry(rc).or_default() += 1;
                if rc == 0 {
                    p.accepted.push(uid);
                } else {
                    p.refused.push(uid);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            p
        })
    };
    let grouped = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut p = Pushed {
                accepted: Vec::new(),
                refused: Vec::new(),
                codes: BTreeMap::new(),
            };
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let uids: Vec<String> = (0..GROUP_SIZE).map(|j| format!("g-{n}-{j}")).collect();
                n += 1;
                let t = now_secs();
                let g = LogGroup {
                    logs: uids.iter().map(|u| log(t, &[("uid", u)])).collect(),
                    topic: Some("stress".into()),
                    ..Default::default()
                };
                let rc = base::process_log_group(NAME, &g.encode_to_vec(), "");
                *p.codes.entry(rc).or_default() += 1;
                if rc == 0 {
                    p.accepted.extend(uids);
                } else {
                    p.refused.extend(uids);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            p
        })
    };
    let reloader = {
        let s = s.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut holds = Vec::new();
            let mut i = 0u64;
            while start.elapsed() < RELOAD_FOR {
                std::thread::sleep(Duration::from_millis(10 + (i * 7) % 40));
                let took = hold_on_bounded(0, Duration::from_secs(30))
                    .unwrap_or_else(|| panic!("HoldOn(0) #{i} did not return within 30 s"));
                holds.push(took);
                assert_eq!(s.load(NAME, &config), 0, "LoadConfig #{i}");
                base::resume();
                i += 1;
            }
            holds
        })
    };

    let mut holds = reloader.join().expect("reload thread");
    phase.store(2, Ordering::SeqCst);
    // Let the pushers run a little against the last instance, then stop them.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let single = single.join().expect("ProcessLog thread");
    let grouped = grouped.join().expect("ProcessLogGroup thread");
    phase.store(3, Ordering::SeqCst);
    let drain = hold_on_bounded(1, Duration::from_millis(DRAIN_TIMEOUT_MS + 30_000))
        .expect("HoldOn(1) did not return in time");
    phase.store(4, Ordering::SeqCst);

    holds.sort();
    let accepted: HashSet<&str> = single
        .accepted
        .iter()
        .chain(grouped.accepted.iter())
        .map(String::as_str)
        .collect();
    let refused: HashSet<&str> = single
        .refused
        .iter()
        .chain(grouped.refused.iter())
        .map(String::as_str)
        .collect();
    let mut arrived: HashMap<String, usize> = HashMap::new();
    let mut without_uid = 0usize;
    let mut without_env = 0usize;
    let groups = store::groups_for(NAME);
    for g in &groups {
        for l in &g.logs {
            match l.get("uid") {
                Some(u) => *arrived.entry(u.to_owned()).or_default() += 1,
                None => without_uid += 1,
            }
            if l.get("env") != Some("stress") {
                without_env += 1;
            }
        }
    }
    let delivered: usize = arrived.values().sum();
    let duplicated = delivered - arrived.len();
    let missing: Vec<&&str> = accepted
        .iter()
        .filter(|u| !arrived.contains_key(**u))
        .take(10)
        .collect();
    let n_missing = accepted
        .iter()
        .filter(|u| !arrived.contains_key(**u))
        .count();
    let invented: Vec<&String> = arrived
        .keys()
        .filter(|u| !accepted.contains(u.as_str()))
        .take(10)
        .collect();
    let invented_refused = arrived
        .keys()
        .filter(|u| refused.contains(u.as_str()))
        .count();
    let p = analyze_pack_ids(&groups);
    eprintln!(
        "stress: {} reloads, HoldOn(0) median {:?} max {:?}; final HoldOn(1) {drain:?}; \
         ProcessLog codes {:?}, ProcessLogGroup codes {:?}; accepted {} logs, refused {}; \
         delivered {delivered} ({} distinct, {duplicated} duplicates); missing {n_missing}; \
         {p}; {}",
        holds.len(),
        holds.get(holds.len() / 2),
        holds.last(),
        single.codes,
        grouped.codes,
        accepted.len(),
        refused.len(),
        arrived.len(),
        store::counters_summary()
    );
    assert!(
        holds.len() >= 50,
        "only {} reload cycles ran in {RELOAD_FOR:?}",
        holds.len()
    );
    assert!(
        single.codes.get(&0).copied().unwrap_or(0) > 100
            && grouped.codes.get(&0).copied().unwrap_or(0) > 100,
        "too few accepted calls to mean anything: {:?} {:?}",
        single.codes,
        grouped.codes
    );
    assert_eq!(without_uid, 0, "logs without uid arrived");
    assert_eq!(without_env, 0, "logs without the processor's field arrived");
    assert!(
        missing.is_empty(),
        "{n_missing} of {} accepted logs never arrived (first: {missing:?})",
        accepted.len()
    );
    assert!(
        invented.is_empty(),
        "logs arrived that no call accepted ({invented_refused} of them were refused): {invented:?}"
    );
    assert_eq!(arrived.len(), accepted.len());
    assert_eq!(p.gaps(), 0, "pack-id gaps: {p}");
    assert_eq!(store::get(&COUNTERS.decode_errors), 0);
    done.store(true, Ordering::SeqCst);
}
