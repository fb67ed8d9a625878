//! Ensures data the host pushes (ProcessLogGroup, ProcessLog, ProcessRawLog, ProcessRawLogV2)
//! goes through the processors and comes back, every log exactly once, with its tags.

use std::time::Duration;

use e2e_tests::proto::{log, now_secs, LogGroup, LogTag};
use e2e_tests::session::add_fields;
use e2e_tests::store;
use e2e_tests::util::wait_stable;
use e2e_tests::{base, pipeline, wait_until, Session};
use prost::Message;
use serde_json::json;

const NAME: &str = "host_fed";
const M_GROUP: usize = 300;
const M_LOG: usize = 50;
const M_RAW: usize = 40;
const M_RAW_V2: usize = 40;

#[test]
fn host_fed_logs_are_processed_and_delivered_exactly_once() {
    let s = Session::start("host-fed");
    let config = pipeline(vec![], vec![add_fields(json!({"env": "test"}))]);
    assert_eq!(s.load(NAME, &config), 0, "LoadConfig({NAME}) failed");
    base::resume();

    // ProcessLogGroup: one group of M_GROUP logs.
    let t = now_secs();
    let group = LogGroup {
        logs: (0..M_GROUP)
            .map(|i| log(t, &[("src", "group"), ("seq", &i.to_string())]))
            .collect(),
        topic: Some("group-topic".into()),
        log_tags: vec![LogTag {
            key: "origin".into(),
            value: "pg".into(),
        }],
        ..Default::default()
    };
    let rc = base::process_log_group(NAME, &group.encode_to_vec(), "ABCDEF0123456789-1");
    assert_eq!(rc, 0, "ProcessLogGroup");

    // ProcessLog: M_LOG single logs with tags.
    for i in 0..M_LOG {
        let bytes = log(t, &[("src", "log"), ("seq", &i.to_string())]).encode_to_vec();
        let rc = base::process_log(
            NAME,
            &bytes,
            &format!("ABCDEF0123456789-{:x}", i + 2),
            "log-topic",
            b"k1~=~v1^^^k2~=~v2",
        );
        assert_eq!(rc, 0, "ProcessLog #{i}");
    }

    // ProcessRawLog and ProcessRawLogV2: the raw line becomes field `content`.
    for i in 0..M_RAW {
        let rc = base::process_raw_log(NAME, format!("raw line {i}").as_bytes(), "", "raw-topic");
        assert_eq!(rc, 0, "ProcessRawLog #{i}");
    }
    for i in 0..M_RAW_V2 {
        let rc = base::process_raw_log_v2(
            NAME,
            format!("rawv2 line {i}").as_bytes(),
            "",
            "rawv2-topic",
            b"k3~=~v3",
        );
        assert_eq!(rc, 0, "ProcessRawLogV2 #{i}");
    }

    let total = M_GROUP + M_LOG + M_RAW + M_RAW_V2;
    let done = wait_until(Duration::from_secs(60), || store::log_count(NAME) >= total);
    let got = wait_stable(Duration::from_secs(1), Duration::from_secs(10), || {
        store::log_count(NAME)
    });
    assert!(
        done,
        "timed out: {got}/{total}; {}",
        store::counters_summary()
    );
    assert_eq!(got, total, "{}", store::counters_summary());

    let groups = store::groups_for(NAME);
    let mut group_seqs = Vec::new();
    let mut log_seqs = Vec::new();
    let mut raw = Vec::new();
    let mut raw_v2 = Vec::new();
    for g in &groups {
        for l in &g.logs {
            assert_eq!(
                l.get("env"),
                Some("test"),
                "processor_add_fields missing: {l:?}"
            );
            match (l.get("src"), l.get("content")) {
                (Some("group"), _) => group_seqs.push(l.get("seq").unwrap_or("").to_owned()),
                (Some("log"), _) => {
                    log_seqs.push(l.get("seq").unwrap_or("").to_owned());
                    assert_eq!(
                        g.tag("k1"),
                        Some("v1"),
                        "ProcessLog tags: {:?}",
                        g.group.log_tags
                    );
                    assert_eq!(
                        g.tag("k2"),
                        Some("v2"),
                        "ProcessLog tags: {:?}",
                        g.group.log_tags
                    );
                }
                (None, Some(c)) if c.starts_with("rawv2 line ") => {
                    raw_v2.push(c.to_owned());
                    assert_eq!(
                        g.tag("k3"),
                        Some("v3"),
                        "ProcessRawLogV2 tags: {:?}",
                        g.group.log_tags
                    );
                }
                (None, Some(c)) if c.starts_with("raw line ") => raw.push(c.to_owned()),
                _ => panic!("unexpected log {l:?}"),
            }
        }
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let expect = |n: usize, f: &dyn Fn(usize) -> String| sorted((0..n).map(f).collect());
    assert_eq!(
        sorted(group_seqs),
        expect(M_GROUP, &|i| i.to_string()),
        "ProcessLogGroup logs"
    );
    assert_eq!(
        sorted(log_seqs),
        expect(M_LOG, &|i| i.to_string()),
        "ProcessLog logs"
    );
    assert_eq!(
        sorted(raw),
        expect(M_RAW, &|i| format!("raw line {i}")),
        "ProcessRawLog logs"
    );
    assert_eq!(
        sorted(raw_v2),
        expect(M_RAW_V2, &|i| format!("rawv2 line {i}")),
        "ProcessRawLogV2 logs"
    );
    s.exit(Duration::from_secs(30));
}
