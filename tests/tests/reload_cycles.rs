//! Ensures 100 quick reloads (HoldOn(0) → LoadConfig(same name, new `gen`) → Resume) of a
//! steadily producing `service_mock`, while the host rejects a fifth of the sends, lose
//! nothing: every generation's `Index` values arrive as exactly `1..=K`, pack ids have no
//! gaps, and a log arrives twice only inside a group resent under the same pack id.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use e2e_tests::session::hold_on_bounded;
use e2e_tests::store::{self, COUNTERS};
use e2e_tests::{analyze_pack_ids, base, pipeline, service_mock, set_send_policy};
use e2e_tests::{SendPolicy, Session};
use serde_json::json;

const NAME: &str = "reload_cycles";
const CYCLES: u64 = 100;
const RATE: u64 = 2000;
const AGGREGATE_MS: u64 = 20;
const REJECT_P: f64 = 0.2;
/// Bound on one HoldOn(0) of the cycle (it parks, it must not wait for the host).
const HOLD_ON_0_LIMIT: Duration = Duration::from_secs(5);
/// `HoldOnTimeoutMs` for the final drain.
const DRAIN_TIMEOUT_MS: u64 = 30_000;

fn config(gen: u64) -> String {
    // MaxLogCount 0 = unlimited.
    let p = pipeline(
        vec![service_mock(RATE, 0, json!({"gen": gen.to_string()}))],
        vec![],
    );
    // Aggregate faster than a cycle lasts, so groups are sent (and rejected) mid-cycle too,
    // not only handed over at HoldOn(0).
    let mut v: serde_json::Value = serde_json::from_str(&p).expect("pipeline JSON");
    v["global"]["AggregatIntervalMs"] = json!(AGGREGATE_MS);
    v.to_string()
}

/// How long generation `gen` runs before the next HoldOn(0): 50..=100 ms.
fn run_time(gen: u64) -> Duration {
    Duration::from_millis(50 + (gen * 37) % 51)
}

#[test]
fn a_hundred_reloads_under_rejection_lose_nothing() {
    let s = Session::start("reload-cycles");
    assert_eq!(
        base::load_global_config(&json!({ "HoldOnTimeoutMs": DRAIN_TIMEOUT_MS }).to_string()),
        0
    );
    set_send_policy(SendPolicy::reject_with_probability(REJECT_P));
    assert_eq!(s.load(NAME, &config(0)), 0, "LoadConfig(gen 0)");
    base::resume();

    let start = Instant::now();
    let mut hold_times = Vec::with_capacity(CYCLES as usize);
    for gen in 1..=CYCLES {
        std::thread::sleep(run_time(gen - 1));
        let took = hold_on_bounded(0, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("HoldOn(0) of cycle {gen} did not return within 60 s"));
        hold_times.push(took);
        assert_eq!(s.load(NAME, &config(gen)), 0, "LoadConfig(gen {gen})");
        base::resume();
    }
    std::thread::sleep(run_time(CYCLES));
    let cycles_took = start.elapsed();
    let rejected = store::get(&COUNTERS.rejected);
    set_send_policy(SendPolicy::accept());
    let drain = hold_on_bounded(1, Duration::from_millis(DRAIN_TIMEOUT_MS + 30_000))
        .expect("HoldOn(1) did not return in time");

    hold_times.sort();
    let max_hold = *hold_times.last().expect("cycles ran");
    eprintln!(
        "{CYCLES} cycles in {cycles_took:?}; HoldOn(0) median {:?} max {max_hold:?}; \
         final HoldOn(1) {drain:?}; {rejected} sends rejected during the cycles",
        hold_times[hold_times.len() / 2]
    );

    // (gen, Index) → pack ids it arrived under, and how often.
    let logs = store::logs_for(NAME);
    let mut packs: BTreeMap<(u64, u64), BTreeSet<Option<String>>> = BTreeMap::new();
    let mut copies: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for (l, pack_id) in &logs {
        let gen: u64 = l
            .get("gen")
            .and_then(|g| g.parse().ok())
            .unwrap_or_else(|| panic!("log without a numeric gen: {l:?}"));
        let i = l
            .index()
            .unwrap_or_else(|| panic!("log without Index: {l:?}"));
        packs.entry((gen, i)).or_default().insert(pack_id.clone());
        *copies.entry((gen, i)).or_default() += 1;
    }
    let mut per_gen: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (gen, i) in packs.keys() {
        per_gen.entry(*gen).or_default().insert(*i);
    }
    let delivered = logs.len();
    let distinct = packs.len();
    let duplicated = delivered - distinct;
    let p = analyze_pack_ids(&store::groups_for(NAME));
    eprintln!(
        "delivered {delivered} logs, {distinct} distinct (gen, Index), {duplicated} duplicates; \
         {p}; {}",
        store::counters_summary()
    );

    // The statistics sent at HoldOn(1) count what the inputs produced, over every instance.
    let produced = produced_by_service_mock(NAME);
    eprintln!("service_mock events_out over all generations (statistics): {produced:?}");
    assert_eq!(
        produced,
        Some(distinct as u64),
        "distinct (gen, Index) delivered vs produced by service_mock (last statistics)"
    );

    let missing_gens: Vec<u64> = (0..=CYCLES).filter(|g| !per_gen.contains_key(g)).collect();
    assert!(
        missing_gens.is_empty(),
        "generations with no log at all: {missing_gens:?}"
    );
    let extra_gens: Vec<u64> = per_gen.keys().copied().filter(|g| *g > CYCLES).collect();
    assert!(extra_gens.is_empty(), "unknown generations {extra_gens:?}");
    let gaps = e2e_tests::analysis::incomplete_generations(&per_gen);
    assert!(
        gaps.is_empty(),
        "generations whose Index values are not exactly 1..=K (gen, K, distinct, first missing): {:?}",
        gaps.iter().take(10).collect::<Vec<_>>()
    );
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
    assert_eq!(p.gaps(), 0, "pack-id gaps: {p}");
    assert_eq!(p.without_pack_id, 0, "{p}");
    assert!(p.malformed.is_empty(), "{p}");
    assert_eq!(store::get(&COUNTERS.decode_errors), 0);
    assert_eq!(store::get(&COUNTERS.lines_mismatch), 0);
    assert!(rejected > 0, "the host never rejected anything");
    assert!(
        max_hold < HOLD_ON_0_LIMIT,
        "a HoldOn(0) took {max_hold:?} (limit {HOLD_ON_0_LIMIT:?})"
    );
    drop(s);
}

/// `events_out` of `service_mock/*` for `config` in the last statistics log received.
fn produced_by_service_mock(config: &str) -> Option<u64> {
    store::groups_for("shennong_log_profile")
        .iter()
        .flat_map(|g| g.logs.iter())
        .rev()
        .find(|l| {
            l.get("config") == Some(config)
                && l.get("plugin")
                    .is_some_and(|p| p.starts_with("service_mock"))
        })
        .and_then(|l| l.get("events_out").and_then(|v| v.parse().ok()))
}
