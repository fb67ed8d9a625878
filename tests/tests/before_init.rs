//! Ensures calls made before `InitPluginBase` fail cleanly (or do nothing) and do not stop
//! a later, normal start. This must be the first thing in its process: init is once per process.

use std::time::Duration;

use e2e_tests::base::{self, get_container_meta_is_null};
use e2e_tests::ffi::GoString;
use e2e_tests::proto::{log, now_secs, LogGroup};
use e2e_tests::session::{add_fields, PROJECT};
use e2e_tests::store;
use e2e_tests::util::wait_stable;
use e2e_tests::{pipeline, wait_until, Session};
use prost::Message;
use serde_json::json;

const NAME: &str = "before_init";

#[test]
fn calls_before_init_fail_cleanly_and_do_not_break_a_later_start() {
    let config = pipeline(vec![], vec![add_fields(json!({"env": "test"}))]);
    let t = now_secs();
    let one_log = log(t, &[("msg", "early")]).encode_to_vec();
    let group = LogGroup {
        logs: vec![log(t, &[("msg", "early-group")])],
        ..Default::default()
    }
    .encode_to_vec();

    // Before any init.
    assert_eq!(
        base::load_config(PROJECT, "ls", NAME, 1, &config),
        1,
        "LoadConfig before InitPluginBase must return 1"
    );
    assert_ne!(
        base::process_log(NAME, &one_log, "", "", b""),
        0,
        "ProcessLog before init"
    );
    assert_ne!(
        base::process_log_group(NAME, &group, ""),
        0,
        "ProcessLogGroup before init"
    );
    assert_ne!(
        base::process_raw_log(NAME, b"line", "", ""),
        0,
        "ProcessRawLog before init"
    );
    assert_ne!(
        base::process_raw_log_v2(NAME, b"line", "", "", b"k~=~v"),
        0,
        "ProcessRawLogV2 before init"
    );
    let _ = base::unload_config(PROJECT, "ls", NAME);
    base::ctl_cmd(NAME, 1, "{}");
    base::stop(NAME, 0);
    assert!(
        get_container_meta_is_null(GoString::new("abc")),
        "GetContainerMeta before init"
    );
    assert!(
        base::check_config(NAME, "{").is_some(),
        "CheckConfig(broken) before init"
    );
    base::resume();
    base::hold_on(0);

    // Normal start afterwards.
    let s = Session::start("before-init");
    assert_eq!(base::init_plugin_base(), 0, "a second init must return 0");
    assert_eq!(s.load(NAME, &config), 0, "LoadConfig after init");
    base::resume();
    assert_eq!(
        base::process_log(NAME, &one_log, "", "", b""),
        0,
        "ProcessLog after init"
    );
    assert!(
        wait_until(Duration::from_secs(30), || store::log_count(NAME) >= 1),
        "log not delivered: {}",
        store::counters_summary()
    );
    let n = wait_stable(Duration::from_secs(1), Duration::from_secs(10), || {
        store::log_count(NAME)
    });
    assert_eq!(
        n,
        1,
        "exactly the one log sent after init: {}",
        store::counters_summary()
    );
    s.exit(Duration::from_secs(30));
}
