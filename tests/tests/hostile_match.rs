//! Ensures a `Match` condition cannot take the host down however long it is: chains of
//! 100,000 `&&` / `||` terms on an aggregator and on a flusher are loaded, route every event
//! correctly and are unloaded at exit, and nesting beyond the documented 64 levels (100,000
//! `!` or `(`) is a config error, not a crash.

use std::time::Duration;

use e2e_tests::proto::{log, now_secs, LogGroup};
use e2e_tests::store;
use e2e_tests::util::wait_stable;
use e2e_tests::{base, wait_until, Session};
use prost::Message;
use serde_json::json;

const CONFIG: &str = "hostile_match";
const TERMS: usize = 100_000;

/// `Fields[seq] {cmp} 'n<i>'` for 100,000 values of `i` that no event has, joined by `op`.
fn chain(op: &str, cmp: &str) -> String {
    (0..TERMS)
        .map(|i| format!("Fields[seq] {cmp} 'n{i}'"))
        .collect::<Vec<_>>()
        .join(op)
}

#[test]
fn long_match_conditions_are_not_fatal() {
    let s = Session::start("hostile-match");

    for deep in ["!".repeat(TERMS) + "TRUE", "(".repeat(TERMS) + "TRUE"] {
        let config = json!({"flushers": [{"type": "flusher_sls", "Match": deep}]}).to_string();
        let text = base::check_config("hostile_match_deep", &config).expect("must be rejected");
        assert!(text.contains("nested deeper than 64 levels"), "{text}");
        assert_ne!(s.load("hostile_match_deep", &config), 0);
    }

    // Errors through the aggregator (`&&` chain, every term true), then only those of them
    // whose seq is even through the flusher (`||` chain, every term false, and one more).
    let aggregator = format!("Fields[level] == 'error' && {}", chain(" && ", "!="));
    let flusher = format!("{} || Fields[even] == 'yes'", chain(" || ", "=="));
    let config = json!({
        "global": {"AggregatIntervalMs": 200},
        "aggregators": [{"type": "aggregator_default", "Match": aggregator}],
        "flushers": [{"type": "flusher_sls", "Match": flusher}]
    })
    .to_string();
    assert!(config.len() > 4_000_000);
    assert_eq!(s.load(CONFIG, &config), 0, "LoadConfig({CONFIG})");
    base::resume();

    let t = now_secs();
    let logs = (0..100)
        .map(|i| {
            let level = if i % 4 < 2 { "error" } else { "info" };
            let even = if i % 2 == 0 { "yes" } else { "no" };
            log(
                t,
                &[("level", level), ("seq", &i.to_string()), ("even", even)],
            )
        })
        .collect();
    let group = LogGroup {
        logs,
        ..Default::default()
    };
    let rc = base::process_log_group(CONFIG, &group.encode_to_vec(), "ABCDEF0123456789-1");
    assert_eq!(rc, 0, "ProcessLogGroup");
    let expected: Vec<String> = (0..100)
        .filter(|i| i % 4 == 0)
        .map(|i| i.to_string())
        .collect();
    let done = wait_until(Duration::from_secs(60), || {
        store::log_count(CONFIG) >= expected.len()
    });
    let got = wait_stable(Duration::from_secs(1), Duration::from_secs(10), || {
        store::log_count(CONFIG)
    });
    assert!(done, "delivered {got}; {}", store::counters_summary());
    let mut seqs: Vec<String> = store::logs_for(CONFIG)
        .iter()
        .filter_map(|(l, _)| l.get("seq").map(str::to_owned))
        .collect();
    seqs.sort_by_key(|s| s.parse::<u32>().unwrap_or(u32::MAX));
    assert_eq!(seqs, expected);
    s.exit(Duration::from_secs(60));
}
