//! Ensures `HoldOn(1)` returns within a bound even when the host rejects every send and
//! the base still holds undelivered data.

use std::time::Duration;

use e2e_tests::session::hold_on_bounded;
use e2e_tests::store::{self, COUNTERS};
use e2e_tests::{base, pipeline, service_mock, set_send_policy, wait_until, SendPolicy, Session};
use serde_json::json;

const EXIT_BOUND: Duration = Duration::from_secs(10);

#[test]
fn hold_on_exit_returns_in_bounded_time_while_the_host_rejects_everything() {
    let s = Session::start("exit-bounded");
    set_send_policy(SendPolicy::reject_all());
    let config = pipeline(
        vec![service_mock(
            20000,
            5000,
            json!({"content": "never accepted"}),
        )],
        vec![],
    );
    assert_eq!(s.load("exit_bounded", &config), 0, "LoadConfig");
    base::resume();
    assert!(
        wait_until(Duration::from_secs(30), || store::get(&COUNTERS.rejected)
            > 0),
        "the base never tried to send: {}",
        store::counters_summary()
    );
    std::thread::sleep(Duration::from_millis(500));

    let took = hold_on_bounded(1, EXIT_BOUND).unwrap_or_else(|| {
        panic!("HoldOn(1) did not return within {EXIT_BOUND:?} while the host rejects")
    });
    eprintln!("HoldOn(1) took {took:?}; {}", store::counters_summary());
    assert_eq!(store::get(&COUNTERS.accepted), 0);
    drop(s);
}
