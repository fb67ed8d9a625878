//! Ensures a host that blocks inside SendPb for longer than `HoldOnTimeoutMs` (allowed by
//! the ABI: its queue is full) loses nothing, on reload and on exit:
//! - reload: `HoldOn(0)` returns at once, and once the host unblocks, every log the input
//!   produced (before and after the reload) arrives;
//! - exit: `HoldOn(1)` returns within `HoldOnTimeoutMs` plus a small constant, and a new
//!   process on the same data directory delivers every log the first one produced (it never
//!   got one accepted), including the group that was inside SendPb.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e_tests::callbacks::{sends_blocked_now, stall_all_sends};
use e2e_tests::session::hold_on_bounded;
use e2e_tests::util::{child_role, run_test_in_child, wait_stable};
use e2e_tests::{base, pipeline, service_mock, store, wait_until, Session, TempDir};
use serde_json::{json, Value};

const HOLD_ON_TIMEOUT_MS: u64 = 800;

fn config(total: u64) -> String {
    let mut v: Value = serde_json::from_str(&pipeline(
        vec![service_mock(20_000, total, json!({"content": "stalled"}))],
        vec![],
    ))
    .unwrap();
    v["global"]["DefaultLogQueueSize"] = json!(1000);
    v["global"]["DefaultLogGroupQueueSize"] = json!(2);
    v["global"]["AggregatIntervalMs"] = json!(100);
    v.to_string()
}

fn indexes(config: &str) -> (BTreeSet<u64>, usize) {
    let logs = store::logs_for(config);
    let n = logs.len();
    (logs.iter().filter_map(|(l, _)| l.index()).collect(), n)
}

fn missing(got: &BTreeSet<u64>, total: u64) -> Vec<u64> {
    (1..=total).filter(|i| !got.contains(i)).collect()
}

#[test]
fn reload_while_send_pb_is_stalled_loses_nothing() {
    const NAME: &str = "stalled_reload";
    const TOTAL: u64 = 5600;
    let s = Session::start("stalled-reload");
    assert_eq!(
        base::load_global_config(&json!({"HoldOnTimeoutMs": HOLD_ON_TIMEOUT_MS}).to_string()),
        0
    );
    stall_all_sends(true);
    assert_eq!(s.load(NAME, &config(TOTAL)), 0);
    base::resume();
    assert!(
        wait_until(Duration::from_secs(20), || sends_blocked_now() >= 1),
        "no send reached the host"
    );
    // Let the queues behind the blocked send fill up.
    std::thread::sleep(Duration::from_millis(1500));

    let took = hold_on_bounded(0, Duration::from_secs(10)).expect("HoldOn(0) returned");
    assert_eq!(s.load(NAME, &config(TOTAL)), 0, "reload");
    base::resume();
    std::thread::sleep(Duration::from_millis(300));
    stall_all_sends(false);

    let n = wait_stable(Duration::from_secs(3), Duration::from_secs(60), || {
        indexes(NAME).1
    });
    let (got, _) = indexes(NAME);
    let lost = missing(&got, TOTAL);
    eprintln!(
        "stalled reload: HoldOn(0) took {took:?}; {} distinct of {TOTAL} delivered ({n} logs), {} missing",
        got.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} of {TOTAL} logs never arrived after the host unblocked, e.g. {:?}; {}",
        lost.len(),
        &lost[..lost.len().min(10)],
        store::counters_summary()
    );
    assert!(
        took < Duration::from_millis(HOLD_ON_TIMEOUT_MS + 1000),
        "HoldOn(0) took {took:?} with SendPb blocked"
    );
    s.exit(Duration::from_secs(20));
}

const EXIT_NAME: &str = "stalled_exit";
const EXIT_TOTAL: u64 = 4000;

/// The two host processes of the exit scenario (run by `exit_while_send_pb_is_stalled...`).
#[test]
fn exit_child() {
    let Some(role) = child_role() else { return };
    let root = std::path::PathBuf::from(std::env::var("E2E_ROOT").expect("E2E_ROOT"));
    let s = Session::start_in(&root);
    assert_eq!(
        base::load_global_config(&json!({"HoldOnTimeoutMs": HOLD_ON_TIMEOUT_MS}).to_string()),
        0
    );
    match role.as_str() {
        "stall" => {
            stall_all_sends(true);
            assert_eq!(s.load(EXIT_NAME, &config(EXIT_TOTAL)), 0);
            base::resume();
            assert!(
                wait_until(Duration::from_secs(20), || sends_blocked_now() >= 1),
                "no send reached the host"
            );
            std::thread::sleep(Duration::from_millis(1500));
            let start = Instant::now();
            base::hold_on(1);
            println!("HOLD_ON_MS {}", start.elapsed().as_millis());
            println!("ACCEPTED {}", store::get(&store::COUNTERS.accepted_logs));
            // Exit with the send still blocked inside the host.
            std::process::exit(0);
        }
        "resume" => {
            assert_eq!(s.load(EXIT_NAME, &config(EXIT_TOTAL)), 0);
            base::resume();
            wait_stable(Duration::from_secs(3), Duration::from_secs(60), || {
                indexes(EXIT_NAME).1
            });
            let (got, n) = indexes(EXIT_NAME);
            println!("DELIVERED {n}");
            println!(
                "MISSING {}",
                serde_json::to_string(&missing(&got, EXIT_TOTAL)).unwrap()
            );
            base::hold_on(1);
            std::process::exit(0);
        }
        other => panic!("unknown role {other}"),
    }
}

/// The value printed after `name ` (the child's lines may follow the test harness's own text).
fn field<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    let at = out.find(&format!("{name} "))?;
    out[at + name.len() + 1..].lines().next()
}

#[test]
fn exit_while_send_pb_is_stalled_loses_nothing_across_a_restart() {
    let dir = TempDir::new("stalled-exit");
    let root = dir.path().display().to_string();
    let env = [("E2E_ROOT", root.as_str()), ("PLUGIN_BASE_LOG", "off")];
    let run1 = run_test_in_child("exit_child", "stall", &env, Duration::from_secs(60));
    assert_eq!(run1.code(), Some(0), "run 1: {}", run1.all_output());
    let hold_on_ms: u64 = field(&run1.stdout, "HOLD_ON_MS")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("run 1 printed no HoldOn time: {}", run1.all_output()));
    assert_eq!(
        field(&run1.stdout, "ACCEPTED"),
        Some("0"),
        "the host accepted nothing"
    );

    let run2 = run_test_in_child("exit_child", "resume", &env, Duration::from_secs(90));
    assert_eq!(run2.code(), Some(0), "run 2: {}", run2.all_output());
    let lost: Vec<u64> = field(&run2.stdout, "MISSING")
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_else(|| panic!("run 2 printed nothing: {}", run2.all_output()));
    eprintln!(
        "stalled exit: HoldOn(1) took {hold_on_ms} ms (HoldOnTimeoutMs {HOLD_ON_TIMEOUT_MS}); \
         run 2 delivered {} logs, {} of {EXIT_TOTAL} missing",
        field(&run2.stdout, "DELIVERED").unwrap_or("?"),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} of {EXIT_TOTAL} logs never arrived after the restart, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        hold_on_ms < HOLD_ON_TIMEOUT_MS + 1000,
        "HoldOn(1) took {hold_on_ms} ms with SendPb blocked (bound {HOLD_ON_TIMEOUT_MS} ms + 1 s)"
    );
}
