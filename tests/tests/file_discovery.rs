//! How `input_file` finds files: 1000 small files appearing at once with `MaxOpenFiles` 64
//! (all read, the descriptor limit kept), files in subdirectories created after the start
//! (`**` up to `MaxDirSearchDepth`), and the three exclusion lists.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e_tests::file::{
    append, base_detail, file_config, keys, numbered_lines, report, test_dir, wait_ready, FileLog,
    HarnessRun, Tally,
};
use serde_json::json;

/// `(tag, n)` when the `__path__` tag's file stem is the tag; `("WRONG_PATH:<path>", n)`
/// otherwise, so a line reported under another file shows as unexpected.
fn key_checking_path(l: &FileLog) -> Option<(String, u64)> {
    let (tag, n) = l.numbered()?;
    let stem = Path::new(l.path())
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if tag == "ready" || stem == tag {
        Some((tag, n))
    } else {
        Some((format!("WRONG_PATH:{}:{tag}", l.path()), n))
    }
}

/// Waits (30 s at most) until every key of `expected` arrived under its own file
/// ([`key_checking_path`]), then 1.5 s more: time for a file that must not be read to show
/// up, were it (wrongly) read. Then stops the run and asserts that the keys of `expected`
/// arrived exactly once and nothing else did; `what` names the scenario in the failure
/// messages. Returns the tally.
fn expect_exactly(mut run: HarnessRun, expected: &BTreeSet<(String, u64)>, what: &str) -> Tally {
    run.wait_all_by(
        expected,
        Duration::from_secs(30),
        &format!("{what}: the {} lines expected", expected.len()),
        key_checking_path,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let t = Tally::by(&run.logs(), key_checking_path);
    run.stop_expecting(&t, expected, what);
    t
}

/// 1000 files of 10 lines created at once in a watched directory, `MaxOpenFiles` 64: every
/// line of every file arrives once, under its own `__path__`, and the harness process never
/// holds more than 64 descriptors above what it held before the files appeared.
#[test]
fn a_thousand_small_files_at_once_are_all_read_within_max_open_files() {
    let (dir, logs) = test_dir("file-many");
    let mut d = base_detail(&[&logs.join("*.log")]);
    d.insert("MaxOpenFiles".into(), json!(64));
    let mut run = HarnessRun::start_in(dir.path(), "file_many", &file_config(d), &[]);
    wait_ready(&mut run, &logs.join("ready.log"));
    std::thread::sleep(Duration::from_millis(300));
    let baseline = run.open_fds().expect("/proc/PID/fd readable");
    let mut expected: BTreeSet<(String, u64)> = BTreeSet::new();
    expected.insert(("ready".into(), 1));
    let t0 = Instant::now();
    for f in 0..1000 {
        let tag = format!("f{f:04}");
        std::fs::write(
            logs.join(format!("{tag}.log")),
            numbered_lines(&tag, 1..=10, 30),
        )
        .unwrap();
        expected.extend(keys(&tag, 1..=10));
    }
    let created = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut max_fds = baseline;
    let got = loop {
        if let Some(n) = run.open_fds() {
            max_fds = max_fds.max(n);
        }
        let logs = run.logs();
        let t = Tally::by(&logs, key_checking_path);
        if t.has_all(&expected) {
            break run.settle(Duration::from_millis(600));
        }
        if Instant::now() >= deadline || !run.running() {
            panic!(
                "1000 files: not all lines within 45 s of their creation ({created:?} to create); \
                 {}; descriptors: baseline {baseline}, max {max_fds}\n--- stderr (end) ---\n{}",
                t.exactly_once(&expected).err().unwrap_or_default(),
                run.stderr_tail(40)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    let t = Tally::by(&got, key_checking_path);
    run.stop_expecting(&t, &expected, &format!("1000 files ({took:?})"));
    assert!(
        max_fds <= baseline + 64 + 2,
        "MaxOpenFiles 64: the harness held up to {max_fds} descriptors, {baseline} before the \
         files appeared (+{})",
        max_fds - baseline
    );
    report(
        "thousand_files",
        format!(
            "{} in {took:?}; fds baseline {baseline}, max {max_fds}",
            t.summary_for(&expected)
        ),
    );
}

/// `logs/**/*.log`, `MaxDirSearchDepth` 3: directories created after the start, 1, 2 and 3
/// levels deep, each with a file written at once and appended to 300 ms later: every line
/// arrives; a file 4 levels deep never does.
#[test]
fn files_in_subdirectories_created_after_the_start_are_found() {
    let (dir, logs) = test_dir("file-subdirs");
    std::fs::create_dir_all(logs.join("existing")).unwrap();
    let mut d = base_detail(&[&logs.join("**").join("*.log")]);
    d.insert("MaxDirSearchDepth".into(), json!(3));
    let mut run = HarnessRun::start_in(dir.path(), "file_subdirs", &file_config(d), &[]);
    wait_ready(&mut run, &logs.join("existing").join("ready.log"));
    let files = [
        ("one", logs.join("new1")),
        ("two", logs.join("new1").join("new2")),
        ("three", logs.join("n1").join("n2").join("n3")),
        ("deep", logs.join("d1").join("d2").join("d3").join("d4")),
    ];
    for (tag, sub) in &files {
        std::fs::create_dir_all(sub).unwrap();
        append(
            &sub.join(format!("{tag}.log")),
            numbered_lines(tag, 1..=50, 30).as_bytes(),
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    for (tag, sub) in &files {
        append(
            &sub.join(format!("{tag}.log")),
            numbered_lines(tag, 51..=100, 30).as_bytes(),
        );
    }
    let mut expected = keys("ready", 1..=1);
    for tag in ["one", "two", "three"] {
        expected.extend(keys(tag, 1..=100));
    }
    let t = expect_exactly(
        run,
        &expected,
        "new subdirectories (\"deep\" is 4 levels down, beyond MaxDirSearchDepth 3)",
    );
    report("subdirs", t.summary_for(&expected));
}

/// `logs/*/*.log` with `ExcludeFilePaths` (one full path), `ExcludeFiles` (a name glob) and
/// `ExcludeDirs` (a directory glob): only the files none of them matches are read.
#[test]
fn excluded_files_and_directories_are_not_read() {
    let (dir, logs) = test_dir("file-exclude");
    for sub in ["sub", "top", "private_a"] {
        std::fs::create_dir_all(logs.join(sub)).unwrap();
    }
    let mut d = base_detail(&[&logs.join("*").join("*.log")]);
    d.insert(
        "ExcludeFilePaths".into(),
        json!([logs.join("sub").join("skipme.log")]),
    );
    d.insert("ExcludeFiles".into(), json!(["*debug.log"]));
    d.insert("ExcludeDirs".into(), json!([logs.join("private*")]));
    let mut run = HarnessRun::start_in(dir.path(), "file_exclude", &file_config(d), &[]);
    wait_ready(&mut run, &logs.join("sub").join("ready.log"));
    let files = [
        ("keep", logs.join("sub")),
        ("also", logs.join("top")),
        ("skipme", logs.join("sub")),
        ("xdebug", logs.join("sub")),
        ("private", logs.join("private_a")),
    ];
    for (tag, sub) in &files {
        append(
            &sub.join(format!("{tag}.log")),
            numbered_lines(tag, 1..=40, 30).as_bytes(),
        );
    }
    let mut expected = keys("ready", 1..=1);
    expected.extend(keys("keep", 1..=40));
    expected.extend(keys("also", 1..=40));
    let t = expect_exactly(
        run,
        &expected,
        "exclusions (skipme: ExcludeFilePaths, xdebug: ExcludeFiles, private: ExcludeDirs)",
    );
    report("exclusions", t.summary_for(&expected));
}
