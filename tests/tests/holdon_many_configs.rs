//! HoldOn latency with 100 running configs: HoldOn(0) with an accepting host, HoldOn(0) and
//! HoldOn(1) with a host that rejects every send (`HoldOnTimeoutMs` 2000) are all bounded.
//! Then the host accepts again: everything parked or spilled is delivered after a Resume,
//! so every config's every generation arrives as `Index` 1..=K without pack-id gaps.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e_tests::session::hold_on_bounded;
use e2e_tests::store::{self, COUNTERS};
use e2e_tests::util::wait_stable;
use e2e_tests::{analyze_pack_ids, base, pipeline, service_mock, set_send_policy, wait_until};
use e2e_tests::{SendPolicy, Session};
use serde_json::json;

const CONFIGS: usize = 100;
const RATE: u64 = 50;
const HOLD_ON_TIMEOUT_MS: u64 = 2000;
const HOLD_ON_0_LIMIT: Duration = Duration::from_secs(5);
const HOLD_ON_1_LIMIT: Duration = Duration::from_millis(HOLD_ON_TIMEOUT_MS + 5000);
/// Logs each config's last generation produces (then it stops).
const LAST_GEN_LOGS: u64 = 20;

fn name(i: usize) -> String {
    format!("many_{i:03}")
}

fn load_all(s: &Session, gen: &str, max: u64) {
    for i in 0..CONFIGS {
        let c = pipeline(vec![service_mock(RATE, max, json!({"gen": gen}))], vec![]);
        assert_eq!(s.load(&name(i), &c), 0, "LoadConfig({}) gen {gen}", name(i));
    }
}

/// HoldOn(flag), measured; panics when it does not return within a minute.
fn hold_on(flag: i64, what: &str) -> Duration {
    let took = hold_on_bounded(flag, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{what}: HoldOn({flag}) did not return within 60 s"));
    eprintln!("many_configs: {what}: HoldOn({flag}) took {took:?}");
    took
}

#[test]
fn hold_on_is_bounded_with_a_hundred_configs_and_a_rejecting_host() {
    let s = Session::start("holdon-many");
    assert_eq!(
        base::load_global_config(&json!({"HoldOnTimeoutMs": HOLD_ON_TIMEOUT_MS}).to_string()),
        0
    );
    // 1. Gen 1 runs with an accepting host.
    load_all(&s, "1", 0);
    base::resume();
    assert!(
        wait_until(Duration::from_secs(30), || (0..CONFIGS)
            .all(|i| store::log_count(&name(i)) > 0)),
        "not every config delivered: {}",
        store::counters_summary()
    );
    let h0_accepting = hold_on(0, "accepting host");

    // 2. Reload as gen 2, then the host rejects everything.
    load_all(&s, "2", 0);
    base::resume();
    std::thread::sleep(Duration::from_millis(500));
    set_send_policy(SendPolicy::reject_all());
    let accepted_before = store::get(&COUNTERS.accepted);
    std::thread::sleep(Duration::from_millis(1500));
    let h0_rejecting = hold_on(0, "rejecting host");

    // 3. Resume (same instances), still rejecting, then HoldOn(1).
    base::resume();
    std::thread::sleep(Duration::from_secs(1));
    let h1_rejecting = hold_on(1, "rejecting host");
    let rejected = store::get(&COUNTERS.rejected);
    let accepted_while_rejecting = store::get(&COUNTERS.accepted) - accepted_before;

    // 4. The host accepts again; a last generation (LAST_GEN_LOGS each) is loaded and the
    //    spilled data is sent after Resume.
    set_send_policy(SendPolicy::accept());
    load_all(&s, "3", LAST_GEN_LOGS);
    base::resume();
    let complete = |gen: &str| {
        (0..CONFIGS).all(|i| {
            store::logs_for(&name(i))
                .iter()
                .filter(|(l, _)| l.get("gen") == Some(gen))
                .count() as u64
                >= LAST_GEN_LOGS
        })
    };
    let last_done = wait_until(Duration::from_secs(60), || complete("3"));
    let total = wait_stable(Duration::from_secs(2), Duration::from_secs(30), || {
        store::get(&COUNTERS.accepted_logs)
    });
    let h1_final = hold_on(1, "accepting host, final");
    eprintln!(
        "many_configs: HoldOn(0) accepting {h0_accepting:?}, HoldOn(0) rejecting {h0_rejecting:?}, \
         HoldOn(1) rejecting {h1_rejecting:?} (HoldOnTimeoutMs {HOLD_ON_TIMEOUT_MS}), final HoldOn(1) \
         {h1_final:?}; {rejected} sends rejected, {accepted_while_rejecting} accepted while rejecting; \
         {total} logs accepted in all"
    );
    assert!(
        h0_accepting < HOLD_ON_0_LIMIT,
        "HoldOn(0), accepting: {h0_accepting:?}"
    );
    assert!(
        h0_rejecting < HOLD_ON_0_LIMIT,
        "HoldOn(0), rejecting: {h0_rejecting:?}"
    );
    assert!(
        h1_rejecting < HOLD_ON_1_LIMIT,
        "HoldOn(1), rejecting: {h1_rejecting:?}"
    );
    assert!(rejected > 0, "the host never rejected a send");
    assert_eq!(
        accepted_while_rejecting, 0,
        "the policy was reject-all meanwhile"
    );
    assert!(
        last_done,
        "gen 3 incomplete after the host accepted again; {}",
        store::counters_summary()
    );

    // Per config: every generation is exactly 1..=K (gen 3: exactly LAST_GEN_LOGS), a log
    // arrives twice only under one pack id, no pack-id gaps.
    let mut problems = Vec::new();
    let mut delivered = 0usize;
    let mut duplicated = 0usize;
    for i in 0..CONFIGS {
        let n = name(i);
        let logs = store::logs_for(&n);
        delivered += logs.len();
        let mut packs: BTreeMap<(String, u64), BTreeSet<Option<String>>> = BTreeMap::new();
        let mut copies = 0usize;
        for (l, pack_id) in &logs {
            let key = (
                l.get("gen").unwrap_or("?").to_owned(),
                l.index().unwrap_or(0),
            );
            copies += 1;
            packs.entry(key).or_default().insert(pack_id.clone());
        }
        duplicated += copies - packs.len();
        let mut per_gen: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
        for (gen, idx) in packs.keys() {
            per_gen.entry(gen.as_str()).or_default().insert(*idx);
        }
        if per_gen.keys().copied().collect::<Vec<_>>() != ["1", "2", "3"] {
            problems.push(format!(
                "{n}: generations {:?}",
                per_gen.keys().collect::<Vec<_>>()
            ));
        }
        for (gen, idx) in &per_gen {
            let k = *idx.last().unwrap_or(&0);
            if idx.first() != Some(&1) || idx.len() as u64 != k {
                let missing: Vec<u64> = (1..=k).filter(|i| !idx.contains(i)).take(5).collect();
                problems.push(format!(
                    "{n} gen {gen}: {} distinct, max {k}, missing {missing:?}",
                    idx.len()
                ));
            }
            if *gen == "3" && k != LAST_GEN_LOGS {
                problems.push(format!(
                    "{n} gen 3: max Index {k}, expected {LAST_GEN_LOGS}"
                ));
            }
        }
        let produced = produced_by_service_mock(&n);
        if produced != Some(packs.len() as u64) {
            problems.push(format!(
                "{n}: {} distinct (gen, Index) delivered, service_mock events_out {produced:?}",
                packs.len()
            ));
        }
        if let Some((k, p)) = packs.iter().find(|(_, p)| p.len() > 1) {
            problems.push(format!("{n}: {k:?} arrived under pack ids {p:?}"));
        }
        let p = analyze_pack_ids(&store::groups_for(&n));
        if p.gaps() != 0 || p.without_pack_id != 0 {
            problems.push(format!("{n}: {p}"));
        }
    }
    eprintln!(
        "many_configs: delivered {delivered} logs over {CONFIGS} configs, {duplicated} duplicates"
    );
    assert!(
        problems.is_empty(),
        "{} problems, first: {:#?}",
        problems.len(),
        problems.iter().take(10).collect::<Vec<_>>()
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
