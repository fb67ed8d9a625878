//! Ensures data the host pushes is taken whenever it can be (real hosts drop whatever a
//! `ProcessLog*` call refuses):
//! - into a config that is loaded but held (before the first Resume, between HoldOn(0) and
//!   Resume, across a reload): queued for its next run;
//! - into a config whose pipeline stays full past `ProcessTimeoutMs` (the host's SendPb is
//!   blocked): kept on disk and processed once there is room;
//! - refused (code 7) only when the disk budget `SpillLimitMB` is used up, with an alarm
//!   giving the count; every accepted log is delivered exactly once, no refused one is.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e_tests::callbacks::{sends_blocked_now, stall_config};
use e2e_tests::proto::{log, now_secs, LogGroup};
use e2e_tests::util::wait_stable;
use e2e_tests::{base, store, wait_until, Session};
use prost::Message;
use serde_json::json;

const PROCESS_TIMEOUT_MS: u64 = 200;

fn host_fed(queue: u64) -> String {
    json!({
        "global": {"AggregatIntervalMs": 100, "DefaultLogQueueSize": queue,
                   "DefaultLogGroupQueueSize": 1},
    })
    .to_string()
}

/// A group of `n` logs numbered from `first`, each with `pad` bytes of padding.
fn group(first: usize, n: usize, pad: usize) -> Vec<u8> {
    let t = now_secs();
    let padding = "x".repeat(pad);
    LogGroup {
        logs: (first..first + n)
            .map(|i| log(t, &[("seq", &i.to_string()), ("pad", &padding)]))
            .collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn seqs(config: &str) -> (BTreeSet<usize>, usize) {
    let logs = store::logs_for(config);
    let n = logs.len();
    (
        logs.iter()
            .filter_map(|(l, _)| l.get("seq")?.parse().ok())
            .collect(),
        n,
    )
}

fn delivered_exactly(config: &str, accepted: &BTreeSet<usize>) {
    let n = wait_stable(Duration::from_secs(2), Duration::from_secs(60), || {
        seqs(config).1
    });
    let (got, _) = seqs(config);
    let missing: Vec<_> = accepted.difference(&got).take(10).collect();
    let extra: Vec<_> = got.difference(accepted).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && n == accepted.len(),
        "{config}: {} accepted, {} delivered ({n} logs); missing {missing:?}, not accepted but delivered {extra:?}; {}",
        accepted.len(),
        got.len(),
        store::counters_summary()
    );
}

#[test]
fn pushes_are_taken_while_held_and_when_full_and_refused_only_past_the_disk_budget() {
    let s = Session::start("held-and-full");
    assert_eq!(
        base::load_global_config(
            &json!({"ProcessTimeoutMs": PROCESS_TIMEOUT_MS, "SpillLimitMB": 1, "AlarmIntervalMs": 300})
                .to_string()
        ),
        0
    );

    // 1. Held: before the first Resume, then between HoldOn(0) and a reload's Resume.
    const HELD: &str = "held";
    let mut accepted = BTreeSet::new();
    assert_eq!(s.load(HELD, &host_fed(1000)), 0);
    for k in 0..10 {
        assert_eq!(
            base::process_log_group(HELD, &group(k * 10, 10, 10), "A1-1"),
            0,
            "before Resume"
        );
        accepted.extend(k * 10..k * 10 + 10);
    }
    base::resume();
    delivered_exactly(HELD, &accepted);
    base::hold_on(0);
    for k in 10..20 {
        let t = Instant::now();
        assert_eq!(
            base::process_log_group(HELD, &group(k * 10, 10, 10), "A1-2"),
            0,
            "while held"
        );
        assert!(
            t.elapsed() < Duration::from_millis(PROCESS_TIMEOUT_MS),
            "a push while held waited"
        );
        accepted.extend(k * 10..k * 10 + 10);
    }
    assert_eq!(s.load(HELD, &host_fed(1000)), 0, "reload");
    base::resume();
    delivered_exactly(HELD, &accepted);

    // 2. Full past ProcessTimeoutMs (the host's SendPb blocks): kept on disk, all delivered.
    const FULL: &str = "full";
    assert_eq!(
        base::load_config("p", "full-store", FULL, 9001, &host_fed(50)),
        1,
        "LoadConfig is refused while running"
    );
    base::hold_on(0);
    assert_eq!(s.load(FULL, &host_fed(50)), 0);
    base::resume();
    stall_config(FULL, true);
    let mut accepted = BTreeSet::new();
    assert_eq!(
        base::process_log_group(FULL, &group(10_000, 10, 100), "B2-0"),
        0
    );
    accepted.extend(10_000..10_010);
    assert!(
        wait_until(Duration::from_secs(10), || sends_blocked_now() >= 1),
        "the host was not blocked"
    );
    // Paced, so that the aggregator hands groups on and the queues behind the host fill.
    for k in 0..30 {
        assert_eq!(
            base::process_log_group(FULL, &group(k * 50, 50, 100), "B2-1"),
            0,
            "push {k}"
        );
        accepted.extend(k * 50..k * 50 + 50);
        std::thread::sleep(Duration::from_millis(20));
    }
    let spilled_alarms = || store::alarms_of("PLUGIN_DATA_SPILLED_ALARM");
    stall_config(FULL, false);
    delivered_exactly(FULL, &accepted);
    assert!(
        wait_until(Duration::from_secs(5), || spilled_alarms()
            .iter()
            .any(|a| a.get("config") == Some(FULL))),
        "nothing was kept on disk, or no alarm said so: {:?}",
        store::alarms()
    );

    // 3. The disk budget (1 MB) runs out: refused with 7 and an alarm with the count.
    const QUOTA: &str = "quota";
    base::hold_on(0);
    assert_eq!(s.load(QUOTA, &host_fed(50)), 0);
    base::resume();
    stall_config(QUOTA, true);
    let (mut accepted, mut refused) = (BTreeSet::new(), 0usize);
    assert_eq!(
        base::process_log_group(QUOTA, &group(100_000, 10, 100), "C3-0"),
        0
    );
    accepted.extend(100_000..100_010);
    assert!(
        wait_until(Duration::from_secs(10), || sends_blocked_now() >= 1),
        "the host was not blocked"
    );
    for k in 0..40 {
        // ~100 KB per call: the budget holds about ten of them.
        match base::process_log_group(QUOTA, &group(k * 100, 100, 1000), "C3-1") {
            0 => accepted.extend(k * 100..k * 100 + 100),
            7 => refused += 100,
            rc => panic!("push {k} returned {rc}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(refused > 0, "the budget never ran out");
    assert!(accepted.len() >= 500, "only {} accepted", accepted.len());
    stall_config(QUOTA, false);
    delivered_exactly(QUOTA, &accepted);
    assert!(
        wait_until(Duration::from_secs(5), || store::alarms_of(
            "PLUGIN_DATA_DROPPED_ALARM"
        )
        .iter()
        .any(|a| a.get("config") == Some(QUOTA)
            && a.get("alarm_message")
                .unwrap_or("")
                .contains("refused 100 logs"))),
        "no alarm with the refused count: {:?}",
        store::alarms()
    );
    eprintln!(
        "held_and_full: quota run accepted {} logs, refused {refused} (SpillLimitMB 1)",
        accepted.len()
    );
    s.exit(Duration::from_secs(20));
}
