//! `input_file` positions across process restarts and reloads: a `kill -9` mid-file with a
//! host refusing a share of sends, a `kill -9` while the host refuses everything, a graceful
//! restart with files changed while the agent was down, and HoldOn(0) → [LoadConfig] →
//! Resume in-process with the same and a changed config.
//!
//! The restart tests run `host-harness` processes on a data directory of their own; the
//! HoldOn test is the only one that loads the base into this test process.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e_tests::file::{
    append, base_detail, file_config, file_config_with, keys, numbered_lines, report, stderr_end,
    store_logs, test_dir, wait_ready, with_small_groups, write_config, HarnessRun, Tally, Writer,
};
use e2e_tests::session::{add_fields, hold_on_bounded};
use e2e_tests::util::wait_stable;
use e2e_tests::{base, set_send_policy, store, wait_until, SendPolicy, Session};
use serde_json::json;

/// How long the runs of these tests get to exit after SIGTERM: 30 s, more than the other file
/// tests' [`e2e_tests::file::STOP`] (20 s), as these tests were written.
const RESTART_STOP: Duration = Duration::from_secs(30);

fn first_n<T: std::fmt::Debug>(v: impl IntoIterator<Item = T>, n: usize) -> Vec<T> {
    v.into_iter().take(n).collect()
}

/// A 16 MB file (150,000 lines, created once the input runs) read by a harness refusing 30%
/// of sends, killed with SIGKILL 2.5 s after its start (the store has had time to write its
/// state, as in `kill_restart.rs`); 1,000 lines appended while it is down; a second harness on
/// the same data directory, accepting everything. Then: run 2 did not start at line 1 (the
/// committed offset was used), it delivered every line from where it started to the end
/// exactly once (duplicates of run 1 exist only from there on: after the last commit), and
/// every line before that arrived in run 1: nothing is missing.
#[test]
fn kill_9_mid_file_then_restart_resumes_at_the_committed_offset() {
    kill9_scenario(false);
}

/// As above, but the kill comes right after the config's first start (about 1,000 lines
/// delivered, well under a second): whatever the input had recorded durably by then, the
/// restart must neither skip the file's lines nor take the file for one present at the
/// first start (`TailSizeKB`): every line arrives.
#[test]
fn kill_9_right_after_the_first_start_loses_nothing() {
    kill9_scenario(true);
}

fn kill9_scenario(early: bool) {
    let (dir, logs) = test_dir("file-kill9");
    let file = logs.join("big.log");
    const N: u64 = 150_000;
    const MORE: u64 = 1_000;
    let cfg = write_config(
        dir.path(),
        "file_kill9",
        &with_small_groups(&file_config(base_detail(&[&logs.join("*.log")])), 200),
    );
    let data = dir.path().join("data");
    // Groups of at most 200 lines and a host sleeping 5 ms in each send: at most 40,000
    // lines/s, so the kill comes mid-file.
    let mut run1 = HarnessRun::start(
        dir.path(),
        "run1",
        &data,
        &cfg,
        &["--reject-rate", "0.3", "--seed", "3", "--delay-ms", "5"],
    );
    // Created once the input runs: read from 0 whatever its size.
    wait_ready(&mut run1, &logs.join("ready.log"));
    let mut w = Writer::open(&file, "big", 90);
    for _ in 0..(N / 10_000) {
        w.write(10_000);
    }
    let enough = if early { 1000 } else { 5000 };
    run1.wait_for(
        Duration::from_secs(30),
        &format!("run 1 to deliver {enough} lines"),
        |l| l.len() >= enough,
        |l| format!("{} logs", l.len()),
    );
    if !early {
        std::thread::sleep(Duration::from_millis(2500).saturating_sub(run1.elapsed()));
    }
    let run1_lived = run1.elapsed();
    let fin1 = run1.kill9();
    let got1 = e2e_tests::file::parse_harness_logs(&fin1.stdout, "file_kill9");
    let t1 = Tally::of(&got1);
    let n1 = t1.numbers_of("big");
    assert!(
        (n1.len() as u64) < N,
        "run 1 delivered the whole file ({}) before the kill: make the file larger",
        n1.len()
    );
    w.write(MORE);
    let total = N + MORE;

    let run2 = HarnessRun::start(dir.path(), "run2", &data, &cfg, &[]);
    let have1: BTreeSet<u64> = n1.iter().copied().collect();
    // Until run 1 + run 2 cover every line, or run 2 has delivered nothing new for 3 s (it
    // will not: the test then reports what is missing), at most 90 s.
    let covered = |l: &[e2e_tests::file::FileLog]| {
        let t2 = Tally::of(l);
        (1..=total).all(|n| have1.contains(&n) || t2.counts.contains_key(&("big".into(), n)))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let (mut last, mut since) = (0, std::time::Instant::now());
    loop {
        let l = run2.logs();
        if covered(&l) || std::time::Instant::now() >= deadline {
            break;
        }
        if l.len() != last {
            (last, since) = (l.len(), std::time::Instant::now());
        } else if last > 0 && since.elapsed() >= Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let got2 = run2.settle(Duration::from_millis(800));
    let fin2 = run2.stop(RESTART_STOP);
    // (The marker line may come again: it is not part of the check.)
    let got2: Vec<_> = got2
        .into_iter()
        .filter(|l| l.numbered().is_some_and(|(t, _)| t == "big"))
        .collect();
    let t2 = Tally::of(&got2);
    let n2 = t2.numbers_of("big");
    let min2 = *n2.first().expect("run 2 delivered something");
    let max1 = n1.last().copied().unwrap_or(0);
    let dup1: Vec<u64> = t1
        .counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|((_, n), _)| *n)
        .collect();
    let overlap: Vec<u64> = n2.iter().filter(|n| have1.contains(n)).copied().collect();
    let lost: Vec<u64> = (1..min2).filter(|n| !have1.contains(n)).collect();
    let facts = format!(
        "run 1 (killed after {run1_lived:?}) delivered {} lines (max {max1}, {} duplicated within run 1); run 2 resumed at \
         line {min2} and delivered {} lines; {} lines in both runs; {} lines before {min2} \
         missing from run 1 (first {:?})\n{}",
        n1.len(),
        dup1.len(),
        n2.len(),
        overlap.len(),
        lost.len(),
        first_n(&lost, 8),
        stderr_end("run 2 stderr", &fin2.stderr)
    );
    assert!(
        early || min2 > 1,
        "run 2 started from line 1: the checkpoint was not used; {facts}"
    );
    assert!(
        lost.is_empty(),
        "lines delivered by neither run (run 2 started past lines run 1 had not delivered); {facts}"
    );
    assert!(
        dup1.is_empty(),
        "run 1 delivered lines twice: {:?}; {facts}",
        first_n(&dup1, 8)
    );
    t2.assert_exactly_once(
        &keys("big", min2..=total),
        &format!("run 2 must deliver {min2}..={total} exactly once"),
        &facts,
    );
    report(
        if early { "kill9_early" } else { "kill9" },
        facts.split("\n---").next().unwrap_or_default(),
    );
}

/// A harness that refuses every send is killed (SIGKILL) 3 s after the start of a 10,000
/// line file (750 KB: under the default `TailSizeKB`, so read from 0); a second harness, accepting, must deliver the whole file from line 1 exactly
/// once: while nothing was accepted, no offset may have been committed.
#[test]
fn kill_9_while_the_host_refuses_everything_commits_nothing() {
    let (dir, logs) = test_dir("file-kill-rejecting");
    let file = logs.join("app.log");
    const N: u64 = 10_000;
    append(&file, numbered_lines("rej", 1..=N, 60).as_bytes());
    let cfg = write_config(
        dir.path(),
        "file_kill_rejecting",
        &file_config(base_detail(&[&file])),
    );
    let data = dir.path().join("data");
    let mut run1 = HarnessRun::start(dir.path(), "run1", &data, &cfg, &["--reject-for", "100"]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        run1.running(),
        "run 1 exited early:\n{}",
        run1.stderr_tail(30)
    );
    let fin1 = run1.kill9();
    let got1 = e2e_tests::file::parse_harness_logs(&fin1.stdout, "file_kill_rejecting");
    assert!(
        got1.is_empty(),
        "run 1 delivered {} logs to a host refusing all",
        got1.len()
    );

    let mut run2 = HarnessRun::start(dir.path(), "run2", &data, &cfg, &[]);
    let expected = keys("rej", 1..=N);
    let got2 = run2.wait_all(
        &expected,
        Duration::from_secs(60),
        "run 2 to deliver the whole file",
    );
    let fin2 = run2.stop(RESTART_STOP);
    let t2 = Tally::of(&got2);
    t2.assert_exactly_once(
        &expected,
        "after a kill while the host refused everything",
        &stderr_end("run 2 stderr", &fin2.stderr),
    );
    report(
        "kill9_rejecting",
        format!("run 1 delivered 0; run 2: {} of {N} expected", t2.summary()),
    );
}

/// SIGTERM (HoldOn(1)) with everything delivered; while the harness is down, 1,000 lines
/// are appended to the known file and a new 1.6 MB file appears (more than the default
/// `TailSizeKB`: a file of a config that already ran is read from 0 all the same). The second run delivers exactly
/// the new lines: nothing of run 1 again, nothing lost.
#[test]
fn graceful_restart_continues_exactly_once_and_reads_files_created_while_down() {
    let (dir, logs) = test_dir("file-graceful");
    let d = base_detail(&[&logs.join("*.log")]);
    let cfg = write_config(dir.path(), "file_graceful", &file_config(d));
    let data = dir.path().join("data");
    let mut run1 = HarnessRun::start(dir.path(), "run1", &data, &cfg, &[]);
    let app = logs.join("app.log");
    wait_ready(&mut run1, &logs.join("ready.log"));
    let mut w = Writer::open(&app, "app", 60);
    w.write(2000);
    let mut expected1 = w.written();
    expected1.insert(("ready".into(), 1));
    let got1 = run1.wait_all(&expected1, Duration::from_secs(30), "run 1's lines");
    let fin1 = run1.stop(RESTART_STOP);
    assert_eq!(
        fin1.code,
        Some(0),
        "run 1 exit\n{}",
        stderr_end("run 1 stderr", &fin1.stderr)
    );
    let got1 = {
        let all = e2e_tests::file::parse_harness_logs(&fin1.stdout, "file_graceful");
        assert!(all.len() >= got1.len());
        all
    };

    w.write(1000);
    append(
        &logs.join("new.log"),
        numbered_lines("new", 1..=16_000, 90).as_bytes(),
    );
    let mut expected2 = keys("app", 2001..=3000);
    expected2.extend(keys("new", 1..=16_000));
    let mut run2 = HarnessRun::start(dir.path(), "run2", &data, &cfg, &[]);
    let got2 = run2.wait_all(&expected2, Duration::from_secs(30), "run 2's lines");
    let fin2 = run2.stop(RESTART_STOP);
    let mut all = got1.clone();
    all.extend(got2.iter().cloned());
    let mut expected = expected1.clone();
    expected.extend(expected2.iter().cloned());
    let runs = format!(
        "run 1: {}; run 2: {}",
        Tally::of(&got1).summary(),
        Tally::of(&got2).summary()
    );
    Tally::of(&all).assert_exactly_once(
        &expected,
        &format!("graceful restart ({runs})"),
        &stderr_end("run 2 stderr", &fin2.stderr),
    );
    report(
        "graceful_restart",
        format!("{runs}; {} expected in all", expected.len()),
    );
}

const HOLD: Duration = Duration::from_secs(30);

fn hold_on(flag: i64) {
    hold_on_bounded(flag, HOLD)
        .unwrap_or_else(|| panic!("HoldOn({flag}) did not return within {HOLD:?}"));
}

/// In-process: a 5 MB file (written once the input runs) being read is paused three times mid-file — HoldOn(0) → Resume;
/// HoldOn(0) → LoadConfig(the same config) → Resume; HoldOn(0) → LoadConfig(a changed config:
/// another ScanIntervalMs and a processor) → Resume — with lines appended while held and
/// after. Every line arrives exactly once.
#[test]
fn holdon_resume_and_reloads_mid_file_lose_and_repeat_nothing() {
    const NAME: &str = "file_holdon";
    let s = Session::start("file-holdon");
    let logs = s.dir().path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let file = logs.join("app.log");
    let total_at_start = 60_000;
    let detail = base_detail(&[&logs.join("*.log")]);
    // Groups of at most 100 lines and a host sleeping 10 ms in each send (until the last
    // Resume): at most 10,000 lines/s, so each HoldOn comes mid-file.
    set_send_policy(SendPolicy::delay(10));
    let cfg1 = with_small_groups(&file_config(detail.clone()), 100);
    let mut changed = detail.clone();
    changed.insert("ScanIntervalMs".into(), json!(300));
    let cfg2 = with_small_groups(
        &file_config_with(changed, vec![add_fields(json!({"gen": "changed"}))]),
        100,
    );
    assert_eq!(s.load(NAME, &cfg1), 0, "LoadConfig({NAME})");
    base::resume();
    // Written once the input runs (its marker arrived): larger than the default
    // TailSizeKB, but a file that appears later is read from 0.
    append(&logs.join("ready.log"), b"ready-0000001 marker\n");
    assert!(
        wait_until(Duration::from_secs(20), || store_logs(NAME)
            .iter()
            .any(|l| l.content().starts_with("ready-"))),
        "the marker line did not arrive: {}",
        store::counters_summary()
    );
    let mut w = Writer::open(&file, "hold", 70);
    for _ in 0..6 {
        w.write(10_000);
    }

    let count = || Tally::of(&store_logs(NAME)).total;
    let mut phases = Vec::new();
    for (phase, reload) in [
        ("pause", None),
        ("same config", Some(&cfg1)),
        ("changed config", Some(&cfg2)),
    ] {
        let target = count() + 8_000;
        assert!(
            wait_until(Duration::from_secs(60), || count() >= target),
            "{phase}: only {} logs delivered (waiting for {target}); {}",
            count(),
            store::counters_summary()
        );
        hold_on(0);
        let at_hold = count();
        phases.push((phase, at_hold));
        assert!(
            (at_hold as u64) < total_at_start,
            "{phase}: the whole file was delivered before HoldOn ({at_hold}): make it larger"
        );
        w.write(500);
        if let Some(cfg) = reload {
            assert_eq!(s.load(NAME, cfg), 0, "{phase}: LoadConfig after HoldOn(0)");
        }
        base::resume();
    }
    w.write(500);
    set_send_policy(SendPolicy::accept());
    let mut expected = w.written();
    expected.insert(("ready".into(), 1));
    let done = wait_until(Duration::from_secs(90), || {
        Tally::of(&store_logs(NAME)).has_all(&expected)
    });
    wait_stable(Duration::from_secs(1), Duration::from_secs(10), || {
        store::log_count(NAME)
    });
    let got = store_logs(NAME);
    let t = Tally::of(&got);
    let gen_changed = got
        .iter()
        .filter(|l| l.contents.get("gen").is_some_and(|g| g == "changed"))
        .count();
    s.exit(HOLD);
    t.assert_exactly_once(
        &expected,
        &format!(
            "HoldOn/Resume mid-file (delivered at each HoldOn: {phases:?}; all arrived: {done})"
        ),
        "",
    );
    assert!(
        gen_changed > 0,
        "no log went through the changed config's processor (gen=changed)"
    );
    report("holdon", format!("delivered at each HoldOn: {phases:?}; {} expected; received {}; {gen_changed} through the changed config", expected.len(), t.summary()));
}
