//! LoongCollector 3.x: 100 config modifications while host threads feed
//! `ProcessPipelineEventGroup`, each as the host drives it (the new config's `LoadPipeline`
//! while the old runs, `Stop(name, 0)` with the feeders paused, `Start`). Every log fed
//! arrives through SendPb under the real name, with `__pack_id__ = <host packId>-<seq>`;
//! no gap in any pack-id sequence, and a log arrives twice only under a repeated pack id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use e2e_tests::loong::{self, host_fed_pipeline, LoongSession};
use e2e_tests::store;
use e2e_tests::{analyze_pack_ids, wait_until};
use serde_json::json;

const NAME: &str = "modify";
const CYCLES: u64 = 100;
const FEEDERS: u64 = 2;
const GROUP: u64 = 20;

fn config(gen: u64) -> String {
    host_fed_pipeline(
        vec![
            json!({"type": "processor_regex/3", "detail": {
                "SourceKey": "content", "Regex": "(\\w+)=(\\d+)", "Keys": ["word", "n"]}}),
            json!({"type": "processor_add_fields/4", "detail": {"Fields": {"gen": gen.to_string()}}}),
        ],
        20,
    )
}

/// The host's pause of a pipeline's queue around its `Stop` … `Start` (no `Process*` call for
/// it overlaps them).
#[derive(Default)]
struct Gate {
    paused: Mutex<(bool, u64)>,
    cv: Condvar,
}

impl Gate {
    fn enter(&self) {
        let mut g = self.paused.lock().unwrap();
        while g.0 {
            g = self.cv.wait(g).unwrap();
        }
        g.1 += 1;
    }
    fn leave(&self) {
        self.paused.lock().unwrap().1 -= 1;
        self.cv.notify_all();
    }
    fn pause(&self) {
        let mut g = self.paused.lock().unwrap();
        g.0 = true;
        while g.1 > 0 {
            g = self.cv.wait(g).unwrap();
        }
    }
    fn open(&self) {
        self.paused.lock().unwrap().0 = false;
        self.cv.notify_all();
    }
}

#[test]
fn every_log_fed_during_a_hundred_modifications_arrives() {
    let s = LoongSession::start("loong-modify");
    let name2 = format!("{NAME}/2");
    assert_eq!(s.load(&name2, 7, &config(0)), 0);
    loong::start(&name2);

    let gate = Arc::new(Gate::default());
    let stop = Arc::new(AtomicBool::new(false));
    let fed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let feeders: Vec<_> = (0..FEEDERS)
        .map(|f| {
            let (gate, stop, fed, refused, name2) = (
                gate.clone(),
                stop.clone(),
                fed.clone(),
                refused.clone(),
                name2.clone(),
            );
            std::thread::spawn(move || {
                let source = format!("/var/log/app-{f}.log");
                let pack = loong::host_pack_id(&source);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let logs: Vec<Vec<(&str, String)>> = (0..GROUP)
                        .map(|i| vec![("content", format!("f{f}={}", seq + i + 1))])
                        .collect();
                    let pb = loong::log_group("app", &source, &logs);
                    gate.enter();
                    let rc = loong::process_event_group(&name2, &pb, &pack);
                    gate.leave();
                    if rc == 0 {
                        seq += GROUP;
                        fed.fetch_add(GROUP, Ordering::Relaxed);
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                (f, seq)
            })
        })
        .collect();

    let mut stops = Vec::new();
    for gen in 1..=CYCLES {
        std::thread::sleep(Duration::from_millis(20 + gen % 17));
        // Modify: the new config is loaded while the old one runs, then old Stop, new Start.
        assert_eq!(s.load(&name2, 7, &config(gen)), 0, "LoadPipeline gen {gen}");
        gate.pause();
        let t = Instant::now();
        loong::stop(&name2, false);
        stops.push(t.elapsed());
        loong::start(&name2);
        gate.open();
    }
    stop.store(true, Ordering::Relaxed);
    let sent: BTreeMap<u64, u64> = feeders.into_iter().map(|h| h.join().unwrap()).collect();
    let total: u64 = sent.values().sum();
    assert!(
        wait_until(Duration::from_secs(30), || store::log_count(NAME) as u64
            >= total),
        "only {} of {total} logs arrived",
        store::log_count(NAME)
    );
    let exit1 = loong::timed(Duration::from_secs(30), || loong::stop_all(true)).expect("bounded");
    let exit0 = loong::timed(Duration::from_secs(30), || loong::stop_all(false)).expect("bounded");
    stops.sort();

    // Every (feeder, n) arrived; a repeat only under a pack id seen twice.
    let groups = store::groups_for(NAME);
    assert!(
        groups.iter().all(|g| g.config == NAME),
        "SendPb gets the real name"
    );
    let mut seen: BTreeMap<(u64, u64), BTreeSet<String>> = BTreeMap::new();
    let mut pack_uses: BTreeMap<String, usize> = BTreeMap::new();
    for g in &groups {
        let pack = g.pack_id.clone().unwrap_or_default();
        *pack_uses.entry(pack.clone()).or_default() += 1;
        for l in &g.logs {
            let word = l.get("word").expect("processor_regex ran");
            let f: u64 = word.trim_start_matches('f').parse().unwrap();
            let n: u64 = l.get("n").unwrap().parse().unwrap();
            assert!(l.get("gen").is_some(), "processor_add_fields ran");
            seen.entry((f, n)).or_default().insert(pack.clone());
        }
    }
    for (&f, &count) in &sent {
        for n in 1..=count {
            assert!(
                seen.contains_key(&(f, n)),
                "log {n} of feeder {f} is missing"
            );
        }
    }
    let report = analyze_pack_ids(&groups);
    assert_eq!(report.gaps(), 0, "{report}");
    for (pack, uses) in &pack_uses {
        if *uses > 1 {
            eprintln!("pack id {pack} repeated {uses}x");
        }
    }
    for f in 0..FEEDERS {
        let prefix = loong::host_pack_id(&format!("/var/log/app-{f}.log"));
        assert!(
            report.prefixes.contains_key(&prefix),
            "the host's packId {prefix} is the pack-id prefix: {report}"
        );
    }
    let logs_received: usize = groups.iter().map(|g| g.logs.len()).sum();
    eprintln!(
        "{CYCLES} modify cycles: {total} logs fed ({} refused calls), {logs_received} received; \
         Stop(name, 0) median {:?} max {:?}; StopAllPipelines(1) {exit1:?}, (0) {exit0:?}",
        refused.load(Ordering::Relaxed),
        stops[stops.len() / 2],
        stops[stops.len() - 1]
    );
    loong::stop_builtin_modules();
    s.close();
}
