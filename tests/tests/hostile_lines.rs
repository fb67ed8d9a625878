//! Ensures a hostile log line cannot take the host down: deeply nested JSON (7,000 levels of
//! `{"a":`, of `[`, and of both mixed) pushed through `processor_json` with its default options
//! (and with `ExpandArray`) is delivered, expanded down to the documented depth limit with the
//! rest kept as its JSON text, and raises `PROCESSOR_JSON_DEPTH_ALARM`, while the process and
//! the lines after it carry on.

use std::time::Duration;

use e2e_tests::store;
use e2e_tests::util::wait_stable;
use e2e_tests::{base, pipeline, wait_until, ReceivedLog, Session};
use serde_json::json;

/// Default options (`SourceKey` is required): connector `_`, source kept.
const DEFAULTS: &str = "hostile_json_defaults";
/// `ExpandArray`, source removed after a successful parse.
const ARRAYS: &str = "hostile_json_arrays";
/// Levels `processor_json` expands at most (README, `processor_json`).
const LIMIT: usize = 128;
/// Nesting of the hostile lines: far beyond what a 2 MiB worker stack survives unbounded.
const LEVELS: usize = 7000;

fn nested_objects() -> String {
    format!("{}1{}", r#"{"a":"#.repeat(LEVELS), "}".repeat(LEVELS))
}

fn nested_arrays() -> String {
    format!(r#"{{"a":{}1{}}}"#, "[".repeat(LEVELS), "]".repeat(LEVELS))
}

/// `{"a":[{"a":[ ... [1] ... ]}]}`: objects inside arrays inside objects, `n` objects deep.
fn mixed_of(n: usize) -> String {
    format!("{}1{}", r#"{"a":["#.repeat(n), "]}".repeat(n))
}

fn mixed() -> String {
    mixed_of(LEVELS / 2)
}

/// The delivered log of `config` whose field `key` is `value`.
fn delivered(config: &str, key: &str, value: &str) -> Option<ReceivedLog> {
    store::logs_for(config)
        .into_iter()
        .map(|(l, _)| l)
        .find(|l| l.get(key) == Some(value))
}

fn depth_alarm_seen(config: &str) -> bool {
    store::groups_for("logtail_alarm").iter().any(|g| {
        g.logs.iter().any(|l| {
            l.get("alarm_type") == Some("PROCESSOR_JSON_DEPTH_ALARM")
                && l.get("config") == Some(config)
                && l.get("plugin") == Some("processor_json")
        })
    })
}

#[test]
fn deeply_nested_json_lines_are_delivered_not_fatal() {
    let s = Session::start("hostile-lines");
    assert_eq!(base::load_global_config(r#"{"AlarmIntervalMs": 200}"#), 0);
    let defaults = pipeline(
        vec![],
        vec![json!({"type": "processor_json", "detail": {"SourceKey": "content"}})],
    );
    let arrays = pipeline(
        vec![],
        vec![json!({"type": "processor_json", "detail": {
            "SourceKey": "content", "ExpandArray": true, "KeepSource": false,
            "IgnoreFirstConnector": true}})],
    );
    assert_eq!(s.load(DEFAULTS, &defaults), 0, "LoadConfig({DEFAULTS})");
    assert_eq!(s.load(ARRAYS, &arrays), 0, "LoadConfig({ARRAYS})");
    base::resume();

    let objects = nested_objects();
    assert!(objects.len() > 40_000, "the 42 KB line of the report");
    let top_array = format!("{}{}", "[".repeat(LEVELS), "]".repeat(LEVELS));
    let lines = [
        objects.clone(),
        nested_arrays(),
        mixed(),
        top_array.clone(),
        r#"{"after":"ok"}"#.to_string(),
    ];
    for config in [DEFAULTS, ARRAYS] {
        for (i, line) in lines.iter().enumerate() {
            let rc = base::process_raw_log(config, line.as_bytes(), "", "t");
            assert_eq!(rc, 0, "ProcessRawLog #{i} to {config}");
        }
    }
    let n = lines.len();
    let done = wait_until(Duration::from_secs(60), || {
        store::log_count(DEFAULTS) >= n && store::log_count(ARRAYS) >= n
    });
    let got = wait_stable(Duration::from_secs(1), Duration::from_secs(10), || {
        (store::log_count(DEFAULTS), store::log_count(ARRAYS))
    });
    assert!(
        done,
        "delivered {got:?} of {n} each; {}",
        store::counters_summary()
    );
    assert_eq!(got, (n, n), "{}", store::counters_summary());

    // Defaults: the source stays; the nested objects are expanded to the limit and the
    // object at the limit is one field holding its JSON text.
    let l = delivered(DEFAULTS, "content", &objects).expect("the nested-objects line");
    assert_eq!(l.contents.len(), 2, "content + one field");
    let (key, value) = &l.contents[1];
    assert_eq!(*key, "_a".repeat(LIMIT));
    let rest = LEVELS - LIMIT;
    assert_eq!(
        *value,
        format!("{}1{}", r#"{"a":"#.repeat(rest), "}".repeat(rest))
    );
    // Arrays are not expanded by default: one field with the array's text.
    let arr = nested_arrays();
    let l = delivered(DEFAULTS, "content", &arr).expect("the nested-arrays line");
    assert_eq!(l.get("_a"), Some(&arr[5..arr.len() - 1]));
    let mixed_line = mixed();
    let l = delivered(DEFAULTS, "content", &mixed_line).expect("the mixed line");
    assert_eq!(l.get("_a"), Some(&mixed_line[5..mixed_line.len() - 1]));
    // Not an object: a parse error, the source is kept.
    let l = delivered(DEFAULTS, "content", &top_array).expect("the top-level array line");
    assert_eq!(l.contents.len(), 1);
    assert!(delivered(DEFAULTS, "_after", "ok").is_some());

    // ExpandArray: every object level of the mixed line counts; the source is removed.
    let logs = store::logs_for(ARRAYS);
    let expanded: Vec<&ReceivedLog> = logs
        .iter()
        .map(|(l, _)| l)
        .filter(|l| l.get("content").is_none())
        .collect();
    let l = expanded
        .iter()
        .find(|l| l.contents.iter().any(|(k, _)| k.starts_with("a_a")))
        .expect("the nested-objects line");
    assert_eq!(l.contents.len(), 1);
    assert_eq!(l.contents[0].0, format!("a{}", "_a".repeat(LIMIT - 1)));
    assert_eq!(l.contents[0].1, value.as_str());
    // Object number LIMIT holds the rest: its array, as text.
    let mixed_key = format!("a{}", "[0]_a".repeat(LIMIT - 1));
    let l = expanded
        .iter()
        .find(|l| l.get(&mixed_key).is_some())
        .unwrap_or_else(|| panic!("no field {mixed_key:?} in {ARRAYS}"));
    assert_eq!(l.contents.len(), 1);
    let inner = mixed_of(LEVELS / 2 - LIMIT);
    assert_eq!(l.get(&mixed_key), Some(format!("[{inner}]").as_str()));
    // Nested arrays stay JSON text, as in iLogtail: no depth involved.
    assert!(expanded.iter().any(|l| l
        .get("a[0]")
        .is_some_and(|v| v.starts_with("[[") && v.len() > LEVELS)));
    assert!(delivered(ARRAYS, "after", "ok").is_some());

    for config in [DEFAULTS, ARRAYS] {
        assert!(
            wait_until(Duration::from_secs(20), || depth_alarm_seen(config)),
            "no PROCESSOR_JSON_DEPTH_ALARM for {config}; alarms: {:?}",
            store::groups_for("logtail_alarm")
                .iter()
                .flat_map(|g| g.logs.iter().map(|l| l.contents.clone()))
                .collect::<Vec<_>>()
        );
    }
    s.exit(Duration::from_secs(30));
}
