//! Ensures a plugin that panics on every batch neither takes the process down nor disturbs
//! a healthy config running next to it: it is restarted with back-off, then disabled after
//! `MaxRetries` with an alarm delivered to the host as config `logtail_alarm` (while the rest
//! of its config keeps running), statistics arrive as `shennong_log_profile`, and exit still
//! completes.

use std::collections::HashMap;
use std::time::Duration;

use e2e_tests::session::add_fields;
use e2e_tests::store;
use e2e_tests::util::wait_stable;
use e2e_tests::Session;
use e2e_tests::{analyze_indexes, analyze_pack_ids, base, pipeline, service_mock, wait_until};
use serde_json::json;

const BAD: &str = "panic_plugin_bad";
const HEALTHY: &str = "panic_plugin_healthy";
const N: u64 = 3000;

#[test]
fn a_panicking_processor_does_not_hurt_the_process_or_other_configs() {
    let s = Session::start("panic-plugin");
    assert_eq!(
        base::load_global_config(r#"{"AlarmIntervalMs": 200, "StatisticsIntervalMs": 300}"#),
        0
    );
    let bad = pipeline(
        vec![service_mock(
            1000,
            1_000_000_000,
            json!({"content": "boom"}),
        )],
        vec![json!({"type": "processor_test_panic", "detail": {}, "MaxRetries": 2})],
    );
    let healthy = pipeline(
        vec![service_mock(5000, N, json!({"content": "fine"}))],
        vec![add_fields(json!({"env": "test"}))],
    );
    assert_eq!(
        s.load(BAD, &bad),
        0,
        "LoadConfig({BAD}) (needs --features base/test-plugins)"
    );
    assert_eq!(s.load(HEALTHY, &healthy), 0, "LoadConfig({HEALTHY})");
    base::resume();

    let done = wait_until(Duration::from_secs(90), || {
        store::log_count(HEALTHY) as u64 >= N
    });
    let n = wait_stable(Duration::from_secs(1), Duration::from_secs(10), || {
        store::log_count(HEALTHY)
    });
    assert!(
        done,
        "healthy config delivered {n}/{N}; {}",
        store::counters_summary()
    );
    assert_eq!(n as u64, N, "{}", store::counters_summary());
    let logs = store::logs_for(HEALTHY);
    assert!(logs.iter().all(|(l, _)| l.get("env") == Some("test")));
    let idx = analyze_indexes(logs.iter().map(|(l, _)| l));
    assert!(idx.is_exactly_one_to(N), "{idx}");
    let p = analyze_pack_ids(&store::groups_for(HEALTHY));
    assert!(p.is_clean(), "{p}");

    // The panicking processor is disabled after 1 + MaxRetries failures, with an alarm...
    let alarm_seen = |kind: &str| {
        store::groups_for("logtail_alarm").iter().any(|g| {
            g.logs.iter().any(|l| {
                l.get("alarm_type") == Some(kind)
                    && l.get("config") == Some(BAD)
                    && l.get("plugin") == Some("processor_test_panic/0")
            })
        })
    };
    assert!(
        wait_until(Duration::from_secs(20), || alarm_seen(
            "PLUGIN_DISABLED_ALARM"
        )),
        "no PLUGIN_DISABLED_ALARM for {BAD}; {}",
        store::counters_summary()
    );
    assert!(alarm_seen("PLUGIN_PANIC_ALARM") && alarm_seen("PLUGIN_DATA_DROPPED_ALARM"));
    // ...and the rest of its config keeps running: its input's logs now reach the host.
    assert!(
        wait_until(Duration::from_secs(20), || store::log_count(BAD) > 0),
        "{BAD} delivered nothing after its processor was disabled"
    );
    // Statistics name every plugin of the healthy config with its counters: all N logs went
    // through processor_add_fields (which made them bigger) and were delivered by the flusher.
    let latest = |plugin: &str| -> HashMap<String, u64> {
        let groups = store::groups_for("shennong_log_profile");
        let log = groups
            .iter()
            .flat_map(|g| &g.logs)
            .rfind(|l| l.get("config") == Some(HEALTHY) && l.get("plugin") == Some(plugin));
        log.map(|l| {
            l.contents
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default()
    };
    let healthy_counters = || {
        let (p, f) = (latest("processor_add_fields/0"), latest("flusher_sls/0"));
        let get = |m: &HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        let ok = get(&p, "events_in") == N
            && get(&p, "events_out") == N
            && get(&p, "bytes_in") > N * 10
            && get(&p, "bytes_out") > get(&p, "bytes_in")
            && get(&f, "events_out") == N
            && get(&f, "bytes_out") > N * 10;
        (ok, p, f)
    };
    assert!(
        wait_until(Duration::from_secs(20), || healthy_counters().0),
        "statistics of {HEALTHY} (processor, flusher): {:?}",
        healthy_counters()
    );
    eprintln!(
        "{BAD} delivered {} logs; alarms: {:?}",
        store::log_count(BAD),
        store::groups_for("logtail_alarm")
            .iter()
            .flat_map(|g| g.logs.iter().map(|l| l.contents.clone()))
            .take(5)
            .collect::<Vec<_>>()
    );
    let took = s.exit(Duration::from_secs(30));
    eprintln!("HoldOn(1) took {took:?}");
}
