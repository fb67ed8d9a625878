//! LoongCollector 3.x: a `<name>/1` config (Go inputs: an unlimited `service_mock` whose
//! `Fields` carry the generation) modified 60 times as the host drives it (the new config's
//! `LoadPipeline` while the old runs, `Stop(name/1, 0)`, `Start(name/1)`), once with
//! `Stop(name/1, 1)` (a 3.3.5 host whose set of input types changed), while the host refuses a
//! fifth of the sends; then `StopAllPipelines(1)` with the host accepting, then `(0)`. Nothing
//! is lost: every generation's `Index` values arrive as exactly `1..=K`, as many as the
//! pulled `direct` metrics say `service_mock` produced, pack ids have no gaps, a log arrives
//! twice only under the same pack id, and SendPb gets the real name.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use e2e_tests::loong::{self, LoongSession};
use e2e_tests::store::{self, COUNTERS};
use e2e_tests::{analyze_pack_ids, set_send_policy, SendPolicy};
use serde_json::json;

const NAME: &str = "loong_inputs";
const KEY: i64 = 3100;
const CYCLES: u64 = 60;
/// The modification whose `Stop` says the config is removed (`Stop(name/1, 1)`): generation
/// `REMOVED_AT - 1` stops that way, then generation `REMOVED_AT` starts.
const REMOVED_AT: u64 = 30;
const RATE: u64 = 2000;
const AGGREGATE_MS: u64 = 20;
const REJECT_P: f64 = 0.2;
/// The host raises `HOLD_ON_TOO_SLOW_ALARM` when one `Stop` or `StopAllPipelines` takes this
/// long.
const HOLD_ON_TOO_SLOW: Duration = Duration::from_secs(10);
/// How long a call may take before the test gives up on it.
const GIVE_UP: Duration = Duration::from_secs(40);

fn name1() -> String {
    format!("{NAME}/1")
}

/// Generation `gen` as the host emits a config with a Go input and nothing native in front
/// of the Go flusher: everything in `/1`, plugin types `type/<id>`, the host's aggregator.
fn config(gen: u64) -> String {
    json!({
        "global": {
            "EnableProcessorTag": true,
            "EnableTimestampNanosecond": false,
            "UsingOldContentTag": false,
            "AggregatIntervalMs": AGGREGATE_MS,
        },
        "inputs": [{"type": "service_mock/1", "detail": {
            "LogsPerSecond": RATE, "MaxLogCount": 0, "Fields": {"gen": gen.to_string()}}}],
        "aggregators": [{"type": "aggregator_default/2", "detail": {}}],
        "flushers": [{"type": "flusher_sls/3", "detail": {}}],
    })
    .to_string()
}

/// How long generation `gen` runs before it is replaced: 50..=100 ms.
fn run_time(gen: u64) -> Duration {
    Duration::from_millis(50 + (gen * 37) % 51)
}

fn bounded(what: &str, f: impl FnOnce() + Send + 'static) -> Duration {
    let took =
        loong::timed(GIVE_UP, f).unwrap_or_else(|| panic!("{what} did not return in {GIVE_UP:?}"));
    assert!(
        took < HOLD_ON_TOO_SLOW,
        "{what} took {took:?} (the host alarms at {HOLD_ON_TOO_SLOW:?})"
    );
    took
}

/// `out_events_total` of `service_mock` for our config in a `direct` pull (the counts since
/// the previous pull), as the host's `SelfMonitorServer` reads it.
fn produced_since_last_pull() -> u64 {
    let records =
        loong::parse_direct(&loong::get_go_metrics("direct")).expect("well-formed direct records");
    records
        .iter()
        .filter(|r| {
            r.category == "plugin"
                && r.labels.get("pipeline_name").map(String::as_str) == Some(NAME)
                && r.labels.get("plugin_type").map(String::as_str) == Some("service_mock")
        })
        .map(|r| r.counters.get("out_events_total").copied().unwrap_or(0))
        .sum()
}

#[test]
fn modifying_a_config_with_inputs_sixty_times_loses_nothing() {
    let s = LoongSession::start("loong-inputs");
    // The host's SelfMonitorServer pulls alarms from the start (every 3 s).
    let _ = loong::get_go_alarms();
    set_send_policy(SendPolicy::reject_with_probability(REJECT_P));
    assert_eq!(s.load(&name1(), KEY, &config(0)), 0, "LoadPipeline(gen 0)");
    loong::start(&name1());
    // Counted from here: the metrics pulled before the removal cover generations up to then.
    let _ = produced_since_last_pull();

    let start = Instant::now();
    let mut stops = Vec::with_capacity(CYCLES as usize);
    let mut removed_stop = Duration::ZERO;
    let mut produced_before_removal = 0;
    for gen in 1..=CYCLES {
        std::thread::sleep(run_time(gen - 1));
        // Modify: the new config is loaded while the old one runs, then old Stop, new Start.
        assert_eq!(
            s.load(&name1(), KEY, &config(gen)),
            0,
            "LoadPipeline(gen {gen})"
        );
        let removed = gen == REMOVED_AT;
        if removed {
            // The counters of a removed config go with it: what they say up to now.
            produced_before_removal = produced_since_last_pull();
        }
        let took = bounded(&format!("Stop(gen {}, {removed})", gen - 1), move || {
            loong::stop(&name1(), removed)
        });
        if removed {
            removed_stop = took;
        } else {
            stops.push(took);
        }
        loong::start(&name1());
    }
    std::thread::sleep(run_time(CYCLES));
    let cycles_took = start.elapsed();
    let rejected = store::get(&COUNTERS.rejected);
    set_send_policy(SendPolicy::accept());
    let exit1 = bounded("StopAllPipelines(1)", || loong::stop_all(true));
    let after_exit1 = store::log_count(NAME);
    let exit0 = bounded("StopAllPipelines(0)", || loong::stop_all(false));
    let produced_after_removal = produced_since_last_pull();
    let builtin = bounded("StopBuiltInModules", loong::stop_builtin_modules);

    // (gen, Index) → the pack ids it arrived under, and how often.
    let groups = store::groups_for(NAME);
    let mut packs: BTreeMap<(u64, u64), BTreeSet<Option<String>>> = BTreeMap::new();
    let mut copies: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for g in &groups {
        for l in &g.logs {
            let gen: u64 = l
                .get("gen")
                .and_then(|g| g.parse().ok())
                .unwrap_or_else(|| panic!("log without a numeric gen: {l:?}"));
            let i = l
                .index()
                .unwrap_or_else(|| panic!("log without Index: {l:?}"));
            packs.entry((gen, i)).or_default().insert(g.pack_id.clone());
            *copies.entry((gen, i)).or_default() += 1;
        }
    }
    let mut per_gen: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (gen, i) in packs.keys() {
        per_gen.entry(*gen).or_default().insert(*i);
    }
    let delivered: usize = copies.values().sum();
    let distinct = packs.len() as u64;
    let distinct_before: u64 = per_gen
        .range(..REMOVED_AT)
        .map(|(_, v)| v.len() as u64)
        .sum();
    let distinct_after = distinct - distinct_before;
    let report = analyze_pack_ids(&groups);
    stops.sort();
    eprintln!(
        "{CYCLES} modify cycles of {NAME}/1 in {cycles_took:?}: Stop(name/1, 0) median {:?} max \
         {:?}, Stop(name/1, 1) {removed_stop:?}; {rejected} sends refused; StopAllPipelines(1) \
         {exit1:?} ({after_exit1} logs in by then), (0) {exit0:?}, StopBuiltInModules {builtin:?}",
        stops[stops.len() / 2],
        stops[stops.len() - 1]
    );
    eprintln!(
        "delivered {delivered} logs, {distinct} distinct (gen, Index), {} duplicates; \
         service_mock produced (pulled metrics) >= {produced_before_removal} before the removal \
         (delivered {distinct_before}), {produced_after_removal} after (delivered \
         {distinct_after}); {report}",
        delivered as u64 - distinct
    );

    // SendPb got the real name and the config's logstore.
    let seen = store::configs_seen();
    assert!(
        seen.iter().all(|(c, _)| !c.ends_with("/1")),
        "SendPb got a suffixed name: {seen:?}"
    );
    let wrong_store: Vec<_> = groups
        .iter()
        .filter(|g| g.logstore != format!("{NAME}-store"))
        .map(|g| g.logstore.clone())
        .take(5)
        .collect();
    assert!(wrong_store.is_empty(), "logstores {wrong_store:?}");

    // Every generation delivered exactly 1..=K.
    let missing_gens: Vec<u64> = (0..=CYCLES).filter(|g| !per_gen.contains_key(g)).collect();
    assert!(
        missing_gens.is_empty(),
        "generations with no log at all: {missing_gens:?}"
    );
    let extra_gens: Vec<u64> = per_gen.keys().copied().filter(|g| *g > CYCLES).collect();
    assert!(extra_gens.is_empty(), "unknown generations {extra_gens:?}");
    let holes = e2e_tests::analysis::incomplete_generations(&per_gen);
    assert!(
        holes.is_empty(),
        "generations whose Index values are not exactly 1..=K (gen, K, distinct, first \
         missing): {:?}",
        holes.iter().take(10).collect::<Vec<_>>()
    );
    // ... and as many as service_mock produced: no tail lost either. The generations after the
    // removal are counted exactly; those before it up to the pull just before the removal.
    assert_eq!(
        distinct_after, produced_after_removal,
        "distinct (gen, Index) of generations {REMOVED_AT}..={CYCLES} delivered vs produced"
    );
    assert!(
        distinct_before >= produced_before_removal,
        "generations 0..{REMOVED_AT}: {distinct_before} distinct delivered, but \
         {produced_before_removal} produced"
    );
    assert!(
        produced_before_removal > 0 && produced_after_removal > 0,
        "the metrics counted nothing"
    );
    // A log arrives twice only when its group was re-sent under the same pack id.
    let bad: Vec<_> = copies
        .iter()
        .filter(|(k, n)| **n > 1 && packs[k].len() > 1)
        .take(10)
        .map(|(k, n)| (k, n, &packs[k]))
        .collect();
    assert!(
        bad.is_empty(),
        "logs duplicated under different pack ids: {bad:?}"
    );
    // Pack ids: every sequence complete from 1.
    assert_eq!(report.gaps(), 0, "pack-id gaps: {report}");
    assert_eq!(report.without_pack_id, 0, "{report}");
    assert_eq!(report.not_last, 0, "{report}");
    assert!(report.malformed.is_empty(), "{report}");
    let late_start: Vec<_> = report
        .prefixes
        .iter()
        .filter(|(_, p)| p.min != 1)
        .map(|(prefix, p)| (prefix, p.min))
        .collect();
    assert!(
        late_start.is_empty(),
        "pack-id sequences not starting at 1: {late_start:?}; {report}"
    );
    assert_eq!(store::get(&COUNTERS.decode_errors), 0);
    assert_eq!(store::get(&COUNTERS.lines_mismatch), 0);
    assert!(rejected > 0, "the host never refused anything");
    assert_eq!(
        store::log_count(NAME),
        after_exit1,
        "logs arrived after StopAllPipelines(1) returned (it had accepted everything)"
    );
    s.close();
}
