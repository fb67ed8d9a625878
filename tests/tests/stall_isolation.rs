//! Ensures one config whose host queue is full does not hold up the others: while the host
//! blocks inside SendPb for some configs and says "not valid to send" for another, a healthy
//! config keeps delivering at its rate; once the host recovers, the blocked configs deliver
//! everything they produced (no loss). Delivery runs on a shared pool, not a thread per config.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e_tests::callbacks::{sends_blocked_now, set_key_invalid, stall_config};
use e2e_tests::util::wait_stable;
use e2e_tests::{base, pipeline, service_mock, store, wait_until, Session};
use serde_json::json;

const STALLED: usize = 20;
const RATE: u64 = 500;
const TOTAL: u64 = 3000;

fn stalled(i: usize) -> String {
    format!("iso_stalled_{i:02}")
}

fn indexes(config: &str) -> BTreeSet<u64> {
    store::logs_for(config)
        .iter()
        .filter_map(|(l, _)| l.index())
        .collect()
}

#[test]
fn a_config_blocked_in_the_host_does_not_stall_the_others() {
    let s = Session::start("stall-isolation");
    let config = pipeline(vec![service_mock(RATE, TOTAL, json!({"k": "v"}))], vec![]);
    for i in 0..STALLED {
        stall_config(&stalled(i), true);
        assert_eq!(s.load(&stalled(i), &config), 0);
    }
    const NOT_VALID_KEY: i64 = 424_242;
    set_key_invalid(NOT_VALID_KEY, true);
    assert_eq!(s.load_with_key("iso_not_valid", NOT_VALID_KEY, &config), 0);
    assert_eq!(s.load("iso_healthy", &config), 0);
    base::resume();
    assert!(
        wait_until(Duration::from_secs(20), || sends_blocked_now()
            >= STALLED as u64),
        "only {} of {STALLED} configs are blocked in SendPb",
        sends_blocked_now()
    );
    // The healthy config delivers at its rate meanwhile.
    let t = Instant::now();
    let before = store::log_count("iso_healthy");
    std::thread::sleep(Duration::from_secs(2));
    let during = store::log_count("iso_healthy") - before;
    let expected = (RATE as f64 * t.elapsed().as_secs_f64()) as usize;
    eprintln!(
        "stall_isolation: {STALLED} configs blocked in SendPb, one refused by IsValidToSend; \
         the healthy one delivered {during} logs in {:?} (rate {RATE}/s)",
        t.elapsed()
    );
    assert!(
        during * 2 >= expected,
        "the healthy config delivered {during} logs in {:?}, expected about {expected}",
        t.elapsed()
    );
    assert_eq!(
        store::log_count("iso_not_valid"),
        0,
        "IsValidToSend was ignored"
    );

    // The host recovers: nothing the blocked configs produced is lost.
    for i in 0..STALLED {
        stall_config(&stalled(i), false);
    }
    set_key_invalid(NOT_VALID_KEY, false);
    let names: Vec<String> = (0..STALLED)
        .map(stalled)
        .chain(["iso_not_valid".into(), "iso_healthy".into()])
        .collect();
    wait_stable(Duration::from_secs(2), Duration::from_secs(60), || {
        names.iter().map(|n| store::log_count(n)).sum::<usize>()
    });
    for n in &names {
        let got = indexes(n);
        let missing: Vec<u64> = (1..=TOTAL).filter(|i| !got.contains(i)).take(5).collect();
        assert!(missing.is_empty(), "{n}: missing {missing:?}");
    }
    s.exit(Duration::from_secs(20));
}
