//! Ensures configs loaded the way the iLogtail 2.0 core loads them, as `<name>/1` (with the
//! inputs) and `<name>/2` (fed by the host), reach a host that knows only `<name>`: like the
//! 2.x core, the test host answers -2 ("can not find config") to any other name. SendPb,
//! alarms and statistics carry the real name.

use std::time::Duration;

use e2e_tests::callbacks::set_known_configs;
use e2e_tests::proto::{log, now_secs, LogGroup};
use e2e_tests::store::{self, COUNTERS};
use e2e_tests::util::wait_stable;
use e2e_tests::{base, service_mock, wait_until, Session};
use prost::Message;
use serde_json::json;

const REAL: &str = "web";
const MOCK_LOGS: u64 = 30;
const PUSHED: usize = 40;

#[test]
fn suffixed_configs_deliver_under_their_real_name() {
    let s = Session::start("ilogtail2-names");
    set_known_configs(Some(&[REAL, "logtail_alarm", "shennong_log_profile"]));
    assert_eq!(
        base::load_global_config(
            &json!({"AlarmIntervalMs": 300, "StatisticsIntervalMs": 500}).to_string()
        ),
        0
    );
    let with_inputs = json!({
        "global": {"AggregatIntervalMs": 200},
        "inputs": [service_mock(1000, MOCK_LOGS, json!({"part": "1"}))],
    });
    // The host-fed half parses lines and warns (an alarm) about those that do not match.
    let host_fed = json!({
        "global": {"AggregatIntervalMs": 200},
        "processors": [{"type": "processor_regex", "detail": {
            "SourceKey": "content", "Regex": "^(\\d+) (.*)$", "Keys": ["n", "msg"]}}],
    });
    assert_eq!(s.load(&format!("{REAL}/1"), &with_inputs.to_string()), 0);
    assert_eq!(s.load(&format!("{REAL}/2"), &host_fed.to_string()), 0);
    base::resume();
    let t = now_secs();
    let group = LogGroup {
        logs: (0..PUSHED)
            .map(|i| {
                let line = if i == 0 {
                    "no number here".to_string()
                } else {
                    format!("{i} pushed")
                };
                log(t, &[("content", &line)])
            })
            .collect(),
        ..Default::default()
    };
    assert_eq!(
        base::process_log_group(&format!("{REAL}/2"), &group.encode_to_vec(), "AB12-1"),
        0
    );
    let want = MOCK_LOGS as usize + PUSHED;
    let got = wait_stable(Duration::from_secs(2), Duration::from_secs(30), || {
        store::log_count(REAL)
    });
    assert_eq!(
        got,
        want,
        "logs delivered under {REAL:?}; names the host refused: {:?}; {}",
        store::with(|s| s.unknown_config_names.clone()),
        store::counters_summary()
    );
    assert_eq!(
        store::get(&COUNTERS.unknown_config),
        0,
        "a suffixed name reached SendPb"
    );

    // Alarms and statistics name the real config.
    assert!(
        wait_until(Duration::from_secs(10), || {
            store::alarms_of("REGEX_UNMATCHED_ALARM")
                .iter()
                .any(|a| a.get("config") == Some(REAL))
        }),
        "no REGEX_UNMATCHED_ALARM for {REAL:?}: {:?}",
        store::alarms()
    );
    assert!(
        store::alarms()
            .iter()
            .all(|a| !a.get("config").unwrap_or("").ends_with("/2")),
        "{:?}",
        store::alarms()
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            store::logs_for("shennong_log_profile")
                .iter()
                .any(|(l, _)| {
                    l.get("config") == Some(REAL) && l.get("plugin") == Some("processor_regex/0")
                })
        }),
        "no statistics for {REAL:?}"
    );
    assert!(store::logs_for("shennong_log_profile")
        .iter()
        .all(|(l, _)| !l.get("config").unwrap_or("").ends_with("/1")
            && !l.get("config").unwrap_or("").ends_with("/2")));
    s.exit(Duration::from_secs(20));
}
