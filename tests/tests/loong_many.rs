//! LoongCollector 3.x with 100 configs under load: 50 `<name>/1` with a producing
//! `service_mock`, 50 `<name>/2` fed by two host threads. Each `Stop` (modify and remove)
//! and both `StopAllPipelines` calls stay far below the host's 10 s `HOLD_ON_TOO_SLOW`
//! alarm, and everything produced or fed arrives (counted per config).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use e2e_tests::loong::{self, host_fed_pipeline, LoongSession};
use e2e_tests::{pipeline, service_mock, store};
use serde_json::json;

const CONFIGS: usize = 50;
const RATE: u64 = 200;
/// The host raises HOLD_ON_TOO_SLOW_ALARM for a `Stop` or `StopAllPipelines` of 10 s or more.
const HOST_ALARM: Duration = Duration::from_secs(10);

fn input_config(i: usize, gen: u64) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&pipeline(
        vec![service_mock(
            RATE,
            0,
            json!({"cfg": i.to_string(), "gen": gen.to_string()}),
        )],
        vec![],
    ))
    .unwrap();
    v["global"]["AggregatIntervalMs"] = json!(50);
    v.to_string()
}

fn fed_config(gen: u64) -> String {
    host_fed_pipeline(
        vec![
            json!({"type": "processor_add_fields/2", "detail": {"Fields": {"gen": gen.to_string()}}}),
        ],
        50,
    )
}

#[test]
fn a_hundred_configs_stop_in_bounded_time_and_lose_nothing() {
    let s = LoongSession::start("loong-many");
    let inputs: Vec<String> = (0..CONFIGS).map(|i| format!("in{i}/1")).collect();
    let fed: Vec<String> = (0..CONFIGS).map(|i| format!("fed{i}/2")).collect();
    for (i, n) in inputs.iter().enumerate() {
        assert_eq!(s.load(n, i as i64, &input_config(i, 0)), 0, "{n}");
        loong::start(n);
    }
    for (i, n) in fed.iter().enumerate() {
        assert_eq!(s.load(n, 100 + i as i64, &fed_config(0)), 0, "{n}");
        loong::start(n);
    }

    // Two host processing threads over the 50 `/2` configs (paused per config while the
    // main thread stops and starts it, as the host does).
    let paused: Arc<RwLock<BTreeSet<usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let feeders: Vec<_> = (0..2)
        .map(|t| {
            let (paused, stop, fed) = (paused.clone(), stop.clone(), fed.clone());
            std::thread::spawn(move || {
                let mut sent: BTreeMap<usize, u64> = BTreeMap::new();
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for (i, n) in fed.iter().enumerate().filter(|(i, _)| i % 2 == t) {
                        let guard = paused.read().unwrap();
                        if guard.contains(&i) {
                            continue;
                        }
                        let logs: Vec<Vec<(&str, String)>> = (0..10)
                            .map(|k| vec![("content", format!("{i}:{}", round * 10 + k))])
                            .collect();
                        let src = format!("/logs/{i}");
                        let pb = loong::log_group("t", &src, &logs);
                        if loong::process_event_group(n, &pb, &loong::host_pack_id(&src)) == 0 {
                            *sent.entry(i).or_default() += 10;
                        }
                        drop(guard);
                    }
                    round += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
                sent
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(2));
    // Modify ten configs of each kind, and remove one of each for good.
    let mut stops = Vec::new();
    for i in 0..10 {
        assert_eq!(s.load(&inputs[i], i as i64, &input_config(i, 1)), 0);
        let t = Instant::now();
        loong::stop(&inputs[i], false);
        stops.push(t.elapsed());
        loong::start(&inputs[i]);

        assert_eq!(s.load(&fed[i], 100 + i as i64, &fed_config(1)), 0);
        paused.write().unwrap().insert(i);
        let t = Instant::now();
        loong::stop(&fed[i], false);
        stops.push(t.elapsed());
        loong::start(&fed[i]);
        paused.write().unwrap().remove(&i);
    }
    let t = Instant::now();
    loong::stop(&inputs[CONFIGS - 1], true);
    let remove_input = t.elapsed();
    paused.write().unwrap().insert(CONFIGS - 1);
    let t = Instant::now();
    loong::stop(&fed[CONFIGS - 1], true);
    let remove_fed = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));

    stop.store(true, Ordering::Relaxed);
    let mut sent: BTreeMap<usize, u64> = BTreeMap::new();
    for f in feeders {
        sent.extend(f.join().unwrap());
    }
    // Exit as the host does, under load (the inputs still produce until StopAllPipelines(1)).
    let exit1 = loong::timed(HOST_ALARM * 3, || loong::stop_all(true)).expect("returned");
    let exit0 = loong::timed(HOST_ALARM * 3, || loong::stop_all(false)).expect("returned");
    loong::stop_builtin_modules();
    stops.sort();
    let max_stop = *stops.last().unwrap();

    // Every host-fed log arrived.
    let total_fed: u64 = sent.values().sum();
    let mut missing = Vec::new();
    for (&i, &n) in &sent {
        let got: BTreeSet<String> = store::logs_for(&format!("fed{i}"))
            .into_iter()
            .filter_map(|(l, _)| l.get("content").map(String::from))
            .collect();
        if (got.len() as u64) < n {
            missing.push((i, n, got.len()));
        }
    }
    assert!(missing.is_empty(), "(config, fed, arrived): {missing:?}");
    // Every produced log of every input config arrived: per (config, gen), Index 1..=K.
    let mut produced = 0u64;
    let mut gaps = Vec::new();
    for i in 0..CONFIGS {
        let mut per_gen: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for (l, _) in store::logs_for(&format!("in{i}")) {
            let gen = l.get("gen").unwrap_or_default().to_string();
            per_gen
                .entry(gen)
                .or_default()
                .insert(l.index().expect("Index"));
        }
        produced += per_gen.values().map(|idx| idx.len() as u64).sum::<u64>();
        for (gen, k, distinct, _) in e2e_tests::analysis::incomplete_generations(&per_gen) {
            gaps.push((i, gen, k, distinct));
        }
    }
    assert!(
        gaps.is_empty(),
        "(config, gen, max Index, distinct): {gaps:?}"
    );
    assert!(produced > 0 && total_fed > 0);
    eprintln!(
        "100 configs: {total_fed} logs fed, {produced} produced by inputs, all arrived; \
         Stop(name, 0) median {:?} max {max_stop:?}; Stop(name, 1) /1 {remove_input:?}, \
         /2 {remove_fed:?}; StopAllPipelines(1) {exit1:?}, StopAllPipelines(0) {exit0:?}",
        stops[stops.len() / 2]
    );
    for (what, took) in [
        ("Stop(name, 0)", max_stop),
        ("Stop(name, 1) of a /1", remove_input),
        ("Stop(name, 1) of a /2", remove_fed),
        ("StopAllPipelines(1)", exit1),
        ("StopAllPipelines(0)", exit0),
    ] {
        assert!(took < HOST_ALARM, "{what} took {took:?}");
    }
    s.close();
}
