//! Ensures config churn around `input_file` leaks nothing and loses nothing: 150 reloads
//! (HoldOn(0) → LoadConfig(the same name, alternating options) → Resume) while lines are
//! appended to 20 files in turn leave the process's descriptors and threads where they were after the
//! first cycles, its RSS about flat, and every line delivered exactly once.

use std::time::Duration;

use e2e_tests::file::{
    append, base_detail, file_config, keys, numbered_lines, report, store_logs, Tally,
};
use e2e_tests::session::hold_on_bounded;
use e2e_tests::util::wait_stable;
use e2e_tests::{base, store, wait_until, Session};
use serde_json::json;

const NAME: &str = "file_churn";
const CYCLES: u64 = 150;
const FILES: u64 = 20;
/// Cycles before the baseline is taken (the runtime's threads and caches have started).
const WARM: u64 = 20;
const HOLD: Duration = Duration::from_secs(30);

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_hundred_and_fifty_reloads_leak_no_descriptor_thread_or_memory_and_lose_no_line() {
    let s = Session::start("file-churn");
    let logs = s.dir().path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let detail = base_detail(&[&logs.join("*.log")]);
    let config = |cycle: u64| {
        let mut d = detail.clone();
        // Alternating options: a changed config is a new task object each time.
        d.insert("ScanIntervalMs".into(), json!(100 + (cycle % 2) * 50));
        file_config(d)
    };
    assert_eq!(s.load(NAME, &config(0)), 0, "LoadConfig({NAME})");
    base::resume();
    let mut expected = std::collections::BTreeSet::new();
    let mut baseline = None;
    let mut next = 1;
    for cycle in 1..=CYCLES {
        // A few lines per cycle: the test keeps every log it receives, and that must not be
        // what the RSS measures.
        let f = cycle % FILES;
        let tag = format!("f{f}");
        append(
            &logs.join(format!("{tag}.log")),
            numbered_lines(&tag, next..=next + 1, 40).as_bytes(),
        );
        expected.extend(keys(&tag, next..=next + 1));
        next += 2;
        std::thread::sleep(Duration::from_millis(20));
        hold_on_bounded(0, HOLD).unwrap_or_else(|| panic!("cycle {cycle}: HoldOn(0) hung"));
        assert_eq!(s.load(NAME, &config(cycle)), 0, "cycle {cycle}: LoadConfig");
        base::resume();
        if cycle == WARM {
            // Everything so far delivered: what is held from here on is the steady state.
            assert!(
                wait_until(Duration::from_secs(30), || Tally::of(&store_logs(NAME))
                    .has_all(&expected)),
                "cycle {cycle}: not all lines delivered; {}",
                store::counters_summary()
            );
            baseline = Some((
                count_dir("/proc/self/fd"),
                count_dir("/proc/self/task"),
                rss_kib(),
            ));
        }
    }
    let done = wait_until(Duration::from_secs(60), || {
        Tally::of(&store_logs(NAME)).has_all(&expected)
    });
    wait_stable(Duration::from_secs(1), Duration::from_secs(10), || {
        store::log_count(NAME)
    });
    let (fds0, threads0, rss0) = baseline.expect("baseline taken");
    let (fds, threads, rss) = (
        count_dir("/proc/self/fd"),
        count_dir("/proc/self/task"),
        rss_kib(),
    );
    let tally = Tally::of(&store_logs(NAME));
    s.exit(HOLD);
    assert!(done, "not every line arrived: {}", tally.summary());
    tally.assert_exactly_once(&expected, &format!("after {CYCLES} reloads"), "");
    assert!(
        fds <= fds0 + 2,
        "descriptors grew from {fds0} (cycle {WARM}) to {fds} (cycle {CYCLES})"
    );
    assert!(
        threads <= threads0 + 2,
        "threads grew from {threads0} (cycle {WARM}) to {threads} (cycle {CYCLES})"
    );
    assert!(
        rss <= rss0 + 8 * 1024,
        "RSS grew from {rss0} KiB (cycle {WARM}) to {rss} KiB (cycle {CYCLES})"
    );
    report(
        "file_churn",
        format!(
            "{} lines exactly once; fds {fds0} -> {fds}, threads {threads0} -> {threads}, \
             RSS {rss0} -> {rss} KiB",
            expected.len()
        ),
    );
}
