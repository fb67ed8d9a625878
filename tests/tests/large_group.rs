//! Ensures a `LogGroup` too large to hold decoded at once (over 4 MiB: it is checked in full,
//! then decoded and queued in pieces) is taken all or nothing: a valid one arrives complete,
//! each log once, with its topic and tags; one cut short anywhere is refused (code 4) and
//! nothing of it is delivered.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e_tests::proto::{log, now_secs, LogGroup, LogTag};
use e2e_tests::util::wait_stable;
use e2e_tests::{base, store, Session};
use prost::Message;
use serde_json::json;

const NAME: &str = "large_group";
const LOGS: usize = 60_000;

#[test]
fn a_large_log_group_is_taken_whole_or_refused_whole() {
    let s = Session::start("large-group");
    let config = json!({"global": {"AggregatIntervalMs": 200}}).to_string();
    assert_eq!(s.load(NAME, &config), 0);
    base::resume();
    let t = now_secs();
    let pad = "p".repeat(80);
    let group = LogGroup {
        logs: (0..LOGS)
            .map(|i| log(t, &[("seq", &i.to_string()), ("pad", &pad)]))
            .collect(),
        topic: Some("big".into()),
        log_tags: vec![LogTag {
            key: "origin".into(),
            value: "large".into(),
        }],
        ..Default::default()
    };
    let bytes = group.encode_to_vec();
    assert!(bytes.len() > 4 << 20, "{} bytes", bytes.len());
    // Cut inside the last log: refused, nothing queued.
    assert_eq!(
        base::process_log_group(NAME, &bytes[..bytes.len() - 40], "BIG-1"),
        4
    );
    assert_eq!(base::process_log_group(NAME, &bytes, "BIG-2"), 0);
    let n = wait_stable(Duration::from_secs(2), Duration::from_secs(60), || {
        store::log_count(NAME)
    });
    let groups = store::groups_for(NAME);
    let seqs: BTreeSet<usize> = groups
        .iter()
        .flat_map(|g| g.logs.iter().filter_map(|l| l.get("seq")?.parse().ok()))
        .collect();
    assert_eq!(n, LOGS, "delivered {n} logs, {} distinct", seqs.len());
    assert_eq!(seqs.len(), LOGS);
    assert!(groups
        .iter()
        .all(|g| g.group.topic.as_deref() == Some("big") && g.tag("origin") == Some("large")));
    s.exit(Duration::from_secs(20));
}
