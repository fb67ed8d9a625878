//! Ensures a host that refuses every send for a while loses nothing and costs bounded memory:
//! rejected groups are retried (same pack id) until accepted, and RSS stays flat meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use e2e_tests::store::{self, COUNTERS};
use e2e_tests::util::wait_stable;
use e2e_tests::{analyze_pack_ids, base, pipeline, service_mock, set_send_policy, vm_rss_kib};
use e2e_tests::{wait_until, SendPolicy, Session};
use serde_json::json;

const NAME: &str = "rejecting_host";
const N: u64 = 20000;
const REJECT_FOR: Duration = Duration::from_secs(3);
const WARM_UP: Duration = Duration::from_millis(500);
const MAX_RSS_GROWTH_KIB: u64 = 30 * 1024;

#[test]
fn nothing_is_lost_and_memory_stays_flat_while_the_host_rejects() {
    let s = Session::start("rejecting-host");
    set_send_policy(SendPolicy::reject_all());
    let config = pipeline(
        vec![service_mock(
            50000,
            N,
            json!({"content": "retry me please"}),
        )],
        vec![],
    );
    assert_eq!(s.load(NAME, &config), 0, "LoadConfig({NAME})");
    base::resume();

    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < REJECT_FOR {
        if start.elapsed() >= WARM_UP {
            samples.push(vm_rss_kib().expect("VmRSS readable"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let rejected = store::get(&COUNTERS.rejected);
    let accepted_while_rejecting = store::get(&COUNTERS.accepted);
    set_send_policy(SendPolicy::accept());

    let (min, max) = (samples.iter().min().copied(), samples.iter().max().copied());
    eprintln!(
        "rejection stretch: {rejected} sends rejected, RSS KiB min={min:?} max={max:?} over {} samples",
        samples.len()
    );
    assert!(
        rejected > 0,
        "the base never tried to send while the host rejected"
    );
    assert_eq!(accepted_while_rejecting, 0);
    let growth = max.unwrap_or(0) - min.unwrap_or(0);
    assert!(
        growth < MAX_RSS_GROWTH_KIB,
        "RSS grew by {growth} KiB while the host rejected (samples {samples:?})"
    );

    let distinct = || -> usize {
        store::logs_for(NAME)
            .iter()
            .filter_map(|(l, _)| l.index())
            .collect::<BTreeSet<_>>()
            .len()
    };
    let done = wait_until(Duration::from_secs(90), || distinct() as u64 >= N);
    wait_stable(Duration::from_secs(1), Duration::from_secs(10), || {
        store::log_count(NAME)
    });
    let logs = store::logs_for(NAME);
    let mut by_index: BTreeMap<u64, BTreeSet<Option<String>>> = BTreeMap::new();
    let mut copies: BTreeMap<u64, usize> = BTreeMap::new();
    for (l, pack_id) in &logs {
        let i = l
            .index()
            .unwrap_or_else(|| panic!("log without Index: {l:?}"));
        by_index.entry(i).or_default().insert(pack_id.clone());
        *copies.entry(i).or_default() += 1;
    }
    assert!(
        done,
        "only {} of {N} distinct Index values after the host started accepting; {}",
        by_index.len(),
        store::counters_summary()
    );
    let expected: BTreeSet<u64> = (1..=N).collect();
    let got: BTreeSet<u64> = by_index.keys().copied().collect();
    let missing: Vec<_> = expected.difference(&got).take(10).collect();
    let extra: Vec<_> = got.difference(&expected).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "Index values: missing {missing:?} extra {extra:?}"
    );
    // A log received twice must come in a group resent under the same pack id.
    let bad: Vec<_> = copies
        .iter()
        .filter(|(i, n)| **n > 1 && by_index[i].len() > 1)
        .take(10)
        .map(|(i, n)| (i, n, &by_index[i]))
        .collect();
    assert!(
        bad.is_empty(),
        "logs duplicated under different pack ids: {bad:?}"
    );

    let p = analyze_pack_ids(&store::groups_for(NAME));
    eprintln!(
        "{p}; rejected pack ids {}; {}",
        store::with(|s| s.rejected_pack_ids.len()),
        store::counters_summary()
    );
    assert_eq!(
        p.gaps(),
        0,
        "accepted pack ids have gaps (a retried group got a new pack id?): {p}"
    );
    s.exit(Duration::from_secs(30));
}
