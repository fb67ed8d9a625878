//! Ensures a config name with a NUL byte is refused by LoadConfig with a clear error (an
//! alarm naming the problem), and never keeps the other configs from starting.

use std::time::Duration;

use e2e_tests::ffi::GoString;
use e2e_tests::{base, pipeline, service_mock, store, wait_until, Session};
use serde_json::json;

#[test]
fn a_nul_in_a_config_name_is_refused_and_the_others_run() {
    let s = Session::start("bad-config-name");
    assert_eq!(
        base::load_global_config(&json!({"AlarmIntervalMs": 300}).to_string()),
        0
    );
    let config = pipeline(vec![service_mock(1000, 10, json!({"k": "v"}))], vec![]);
    let bad = "nul\0name";
    // SAFETY: all strings are valid for their lengths.
    let rc = unsafe {
        base::raw::load_config(
            GoString::new("p"),
            GoString::new("ls"),
            GoString::new(bad),
            5,
            GoString::new(&config),
        )
    };
    assert_eq!(rc, 1, "LoadConfig accepted a name with a NUL byte");
    assert_eq!(s.load("good_a", &config), 0);
    assert_eq!(s.load("good_b", &config), 0);
    base::resume();
    assert!(
        wait_until(Duration::from_secs(20), || store::log_count("good_a") == 10
            && store::log_count("good_b") == 10),
        "the good configs did not run: {}",
        store::counters_summary()
    );
    assert!(
        wait_until(Duration::from_secs(10), || store::alarms_of(
            "CONFIG_LOAD_ALARM"
        )
        .iter()
        .any(|a| a.get("alarm_message").unwrap_or("").contains("NUL byte"))),
        "no alarm about the NUL byte: {:?}",
        store::alarms()
    );
    // Resuming again (after a HoldOn) repeats nothing bad either.
    base::hold_on(0);
    base::resume();
    s.exit(Duration::from_secs(20));
}
