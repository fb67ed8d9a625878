//! Ensures every log a `service_mock` input produces reaches the host exactly once, with the
//! processors applied, the group metadata a host expects, and clean `__pack_id__` sequences.

use std::time::Duration;

use e2e_tests::session::{add_fields, logstore_of};
use e2e_tests::store::{self, COUNTERS};
use e2e_tests::util::wait_stable;
use e2e_tests::{analyze_indexes, analyze_pack_ids, base, pipeline, service_mock, wait_until};
use e2e_tests::{Session, HOST_IP};
use serde_json::json;

const MAIN: &str = "delivery_main";
const DROP: &str = "delivery_drop";
const N: u64 = 5000;
const N_DROP: u64 = 1000;

#[test]
fn every_produced_log_is_delivered_exactly_once_with_processors_applied() {
    let s = Session::start("delivery");
    let main = pipeline(
        vec![service_mock(
            20000,
            N,
            json!({"content": "hello", "app": "e2e"}),
        )],
        vec![add_fields(json!({"env": "test"}))],
    );
    let drop = pipeline(
        vec![service_mock(
            20000,
            N_DROP,
            json!({"content": "bye", "app": "e2e"}),
        )],
        vec![json!({"type": "processor_drop", "detail": {"DropKeys": ["app"]}})],
    );
    assert_eq!(s.load(MAIN, &main), 0, "LoadConfig({MAIN}) failed");
    assert_eq!(s.load(DROP, &drop), 0, "LoadConfig({DROP}) failed");
    base::resume();

    let done = wait_until(Duration::from_secs(90), || {
        store::log_count(MAIN) as u64 >= N && store::log_count(DROP) as u64 >= N_DROP
    });
    // Give the base a moment to send anything extra (duplicates) it might still hold.
    let settled = wait_stable(Duration::from_secs(1), Duration::from_secs(10), || {
        (store::log_count(MAIN), store::log_count(DROP))
    });
    assert!(
        done,
        "timed out: {MAIN} delivered {}/{N}, {DROP} delivered {}/{N_DROP}; {}",
        settled.0,
        settled.1,
        store::counters_summary()
    );
    assert_eq!(settled.0 as u64, N, "{MAIN}: {}", store::counters_summary());
    assert_eq!(
        settled.1 as u64,
        N_DROP,
        "{DROP}: {}",
        store::counters_summary()
    );

    // Every log of MAIN carries the mock fields, the added field and an Index 1..=N.
    let groups = store::groups_for(MAIN);
    let logs: Vec<_> = groups.iter().flat_map(|g| g.logs.iter()).collect();
    for l in &logs {
        assert_eq!(l.get("content"), Some("hello"), "log {l:?}");
        assert_eq!(l.get("app"), Some("e2e"), "log {l:?}");
        assert_eq!(l.get("env"), Some("test"), "log {l:?}");
        assert!(l.index().is_some(), "log without a numeric Index: {l:?}");
    }
    let idx = analyze_indexes(logs.iter().copied());
    assert!(idx.is_exactly_one_to(N), "{MAIN}: {idx}");
    assert!(idx.duplicates.is_empty(), "{MAIN}: {idx}");

    // Group metadata.
    for (name, gs) in [(MAIN, &groups), (DROP, &store::groups_for(DROP))] {
        for g in gs.iter() {
            assert_eq!(g.logstore, logstore_of(name), "logstore argument of SendPb");
            assert_eq!(
                g.group.category.as_deref(),
                Some(logstore_of(name).as_str())
            );
            assert_eq!(
                g.group.source.as_deref(),
                Some(HOST_IP),
                "Source of a {name} group"
            );
            assert_eq!(g.lines as usize, g.logs.len(), "lines argument of SendPb");
            assert!(
                g.pack_id_is_last,
                "__pack_id__ is not the last tag: {:?}",
                g.group.log_tags
            );
        }
        let p = analyze_pack_ids(gs.iter());
        assert!(p.is_clean(), "{name}: {p}");
    }

    // processor_drop removed `app` and nothing else.
    let drop_logs = store::logs_for(DROP);
    for (l, _) in &drop_logs {
        assert_eq!(l.get("app"), None, "processor_drop left `app`: {l:?}");
        assert_eq!(l.get("content"), Some("bye"), "log {l:?}");
    }
    let idx = analyze_indexes(drop_logs.iter().map(|(l, _)| l));
    assert!(idx.is_exactly_one_to(N_DROP), "{DROP}: {idx}");

    assert_eq!(store::get(&COUNTERS.decode_errors), 0);
    assert_eq!(store::get(&COUNTERS.lines_mismatch), 0);
    let took = s.exit(Duration::from_secs(30));
    eprintln!("HoldOn(1) took {took:?}; {}", store::counters_summary());
}
