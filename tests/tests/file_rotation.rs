//! `input_file` across the ways a log file is replaced under its reader: rotation by rename
//! while a writer keeps writing, copytruncate, truncation, and a new file that reuses the
//! inode of a deleted one. Every line written must arrive exactly once.
//!
//! Each test runs its own `host-harness run` (own base, own data directory), so the tests of
//! this file may run in parallel.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e_tests::file::{
    append, base_detail, file_config, inode, numbered_lines, report, test_dir, truncate_file,
    wait_ready, write_config, BackgroundWriter, DirIn, HarnessRun, Tally, Writer, STOP,
};
use e2e_tests::TempDir;

const WAIT: Duration = Duration::from_secs(30);
/// How many times the tests under a running writer replace `app.log`.
const ROTATIONS: usize = 4;

/// A new [`test_dir`] named `prefix`, its `logs` directory and `logs/app.log` in it (not
/// created): the file the tests below write, replace and truncate.
fn app_log(prefix: &str) -> (TempDir, PathBuf, PathBuf) {
    let (dir, logs) = test_dir(prefix);
    let app = logs.join("app.log");
    (dir, logs, app)
}

/// Starts config `name` in `dir` ([`HarnessRun::start_in`] with `args`): one `input_file`
/// whose `FilePaths` names only `app`, the file the tests below replace in their ways.
fn start_reading(dir: &TempDir, name: &str, app: &Path, args: &[&str]) -> HarnessRun {
    HarnessRun::start_in(dir.path(), name, &file_config(base_detail(&[app])), args)
}

/// Stops `writer`, waits until every line it wrote arrived, stops `run` and asserts that
/// each arrived exactly once and nothing else did. `<ROTATIONS> <replaced>` (e.g. `4
/// rotations by rename`) names the scenario in the failure messages and in the report
/// `report_as`.
fn expect_every_line_written(
    run: HarnessRun,
    writer: BackgroundWriter,
    replaced: &str,
    report_as: &str,
) {
    let written = writer.stop();
    let what = format!("{ROTATIONS} {replaced}, {} lines written", written.len());
    let (_, t) = run.expect_exactly_once(&written, WAIT, &what);
    report(report_as, format!("{what}; received {}", t.summary()));
}

/// app.log → app.log.1 (→ app.log.2 ...), a new app.log, while a writer thread writes about
/// 4000 lines/s; four rotations 400 ms apart. `FilePaths` names only `app.log`: the lines
/// still unread in a renamed file must be read from it (its open descriptor).
#[test]
fn rotation_by_rename_under_a_running_writer_loses_and_repeats_nothing() {
    let (dir, logs, app) = app_log("file-rotate-rename");
    let writer =
        BackgroundWriter::start(Writer::open(&app, "rot", 60), 20, Duration::from_millis(5));
    let mut run = start_reading(&dir, "file_rotate_rename", &app, &[]);
    run.wait_for(
        WAIT,
        "the first lines of app.log to arrive",
        |l| !l.is_empty(),
        |l| format!("{} logs", l.len()),
    );
    for r in 0..ROTATIONS {
        std::thread::sleep(Duration::from_millis(400));
        let mut w = writer.pause();
        for k in (1..=r).rev() {
            std::fs::rename(
                logs.join(format!("app.log.{k}")),
                logs.join(format!("app.log.{}", k + 1)),
            )
            .unwrap();
        }
        std::fs::rename(&app, logs.join("app.log.1")).unwrap();
        w.reopen();
    }
    std::thread::sleep(Duration::from_millis(400));
    expect_every_line_written(run, writer, "rotations by rename", "rotation_by_rename");
}

/// copytruncate as logrotate does it: copy app.log to app.log.N, truncate app.log to 0, and
/// the application goes on writing (O_APPEND: at the new end, 0). The writer is paused for
/// the copy and the truncation (lines written between them exist nowhere, whatever the
/// reader). What the input must get right: the truncation (the same inode shrinking, then
/// growing again at 2000 lines/s) is noticed, what was not read yet is read from the copy
/// (which `FilePaths` does not name), and the new content from offset 0.
#[test]
fn copytruncate_delivers_every_line_exactly_once() {
    let (dir, logs, app) = app_log("file-copytruncate");
    let writer =
        BackgroundWriter::start(Writer::open(&app, "ct", 60), 10, Duration::from_millis(5));
    let run = start_reading(&dir, "file_copytruncate", &app, &[]);
    for r in 1..=ROTATIONS {
        std::thread::sleep(Duration::from_millis(700));
        // Paused for the copy and the truncation only (what logrotate cannot make atomic):
        // lines not read yet at the truncation are read from the copy.
        let w = writer.pause();
        std::fs::copy(&app, logs.join(format!("app.log.{r}"))).unwrap();
        truncate_file(&app);
        drop(w);
    }
    std::thread::sleep(Duration::from_millis(700));
    expect_every_line_written(run, writer, "copytruncates", "copytruncate");
}

/// A fully read file truncated to 0, then fewer lines written than before: the new lines all
/// arrive, the old ones are not read again. With `--stats` (alarms every second) a
/// truncation alarm is expected too; it is checked last, after the lines.
#[test]
fn truncation_then_fewer_lines_delivers_the_new_lines_once() {
    let (dir, _, app) = app_log("file-truncate");
    let mut run = start_reading(&dir, "file_truncate", &app, &["--stats"]);
    wait_ready(&mut run, &app);
    append(&app, numbered_lines("old", 1..=1000, 60).as_bytes());
    let mut expected = e2e_tests::file::keys("old", 1..=1000);
    expected.insert(("ready".into(), 1));
    run.wait_all(&expected, WAIT, "the 1000 lines before the truncation");
    truncate_file(&app);
    std::thread::sleep(Duration::from_millis(500));
    append(&app, numbered_lines("new", 1..=300, 20).as_bytes());
    expected.extend(e2e_tests::file::keys("new", 1..=300));
    let got = run.wait_all(&expected, WAIT, "the 300 lines after the truncation");
    let t = Tally::of(&got);
    // Alarms go out every second with --stats.
    std::thread::sleep(Duration::from_millis(1500));
    let fin = run.stop_expecting(&t, &expected, "truncation");
    let alarms: Vec<&str> = fin
        .stderr
        .lines()
        .filter(|l| l.starts_with("alarm:"))
        .collect();
    assert!(
        alarms.iter().any(|a| a.to_lowercase().contains("truncat")),
        "lines OK, but no alarm mentions the truncation; alarms: {alarms:?}"
    );
    report(
        "truncation",
        format!("{}; alarms {alarms:?}", t.summary_for(&expected)),
    );
}

/// Truncated to 0 and at once (one write) more bytes than the offset already read: the file
/// is larger again before the input looks, so only its identity (the first bytes changed),
/// not its size, tells that it was truncated. The new lines must all arrive.
#[test]
fn truncation_then_more_bytes_than_before_at_once_delivers_the_new_lines() {
    let (dir, _, app) = app_log("file-truncate-more");
    let mut run = start_reading(&dir, "file_truncate_more", &app, &[]);
    append(&app, numbered_lines("old", 1..=500, 60).as_bytes());
    let mut expected = e2e_tests::file::keys("old", 1..=500);
    run.wait_all(&expected, WAIT, "the 500 lines before the truncation");
    let mut f = std::fs::OpenOptions::new().write(true).open(&app).unwrap();
    f.set_len(0).unwrap();
    use std::io::Write;
    f.write_all(numbered_lines("new", 1..=2000, 60).as_bytes())
        .unwrap();
    drop(f);
    expected.extend(e2e_tests::file::keys("new", 1..=2000));
    let what = "truncation then a larger rewrite (2000 lines right after the truncation)";
    let (_, t) = run.expect_exactly_once(&expected, WAIT, what);
    report("truncation_more", t.summary_for(&expected));
}

/// Deletes a fully read file and creates a new one that gets the same inode (checked with
/// `MetadataExt::ino`; creation is retried until the filesystem reuses it), then writes more
/// bytes into it than the old file had: every line of the new file arrives (an input that
/// knew files by inode alone would resume at the old offset and skip its start).
fn inode_reuse(same_name: bool) {
    // The two variants one at a time: each one's file creations could take the other's inode.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, logs) = test_dir("file-inode-reuse");
    let name = if same_name { "same" } else { "renamed" };
    let mut detail = base_detail(&[&logs.join("*.log")]);
    detail.insert("CloseInactiveSecs".into(), serde_json::json!(1));
    let cfg = write_config(
        dir.path(),
        &format!("file_inode_reuse_{name}"),
        &file_config(detail),
    );
    // The data directory (the store's files) on another filesystem when there is one, so
    // that its new files do not take the freed inode.
    let shm = std::path::Path::new("/dev/shm");
    let data_tmp = shm
        .is_dir()
        .then(|| DirIn::new(shm, "file-inode-reuse-data"));
    let data = data_tmp
        .as_ref()
        .map(|d| d.path().to_path_buf())
        .unwrap_or_else(|| dir.path().join("data"));
    let mut run = HarnessRun::start(dir.path(), "run", &data, &cfg, &[]);
    let a = logs.join("a.log");
    append(&a, numbered_lines("first", 1..=300, 60).as_bytes());
    let mut expected = e2e_tests::file::keys("first", 1..=300);
    run.wait_all(&expected, WAIT, "the lines of the first file");
    let old = inode(&a);
    std::fs::remove_file(&a).unwrap();
    let b = if same_name {
        a.clone()
    } else {
        logs.join("b.log")
    };
    // The inode is free only once the input closed the deleted file (it has read it to the
    // end), and another file may take it first: retry for up to 10 s.
    let mut reused = false;
    for _ in 0..100 {
        std::fs::File::create(&b).unwrap();
        if inode(&b) == old {
            reused = true;
            break;
        }
        std::fs::remove_file(&b).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    if !reused {
        let held: Vec<String> = run
            .pid()
            .and_then(|p| std::fs::read_dir(format!("/proc/{p}/fd")).ok())
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|p| p.display().to_string())
            .filter(|p| p.contains("deleted") || p.contains("a.log"))
            .collect();
        eprintln!(
            "SKIPPED (harness holds {held:?}): the filesystem of {} did not reuse inode {old} within 10 s",
            logs.display()
        );
        let _ = run.stop(STOP);
        return;
    }
    append(&b, numbered_lines("second", 1..=1000, 60).as_bytes());
    expected.extend(e2e_tests::file::keys("second", 1..=1000));
    let reuse = format!(
        "inode {old} reused by {} ({})",
        b.display(),
        if same_name { "same name" } else { "new name" }
    );
    let (_, t) = run.expect_exactly_once(&expected, WAIT, &reuse);
    report(
        &format!("inode_reuse_{name}"),
        format!("{reuse}; {}", t.summary_for(&expected)),
    );
}

#[test]
fn a_new_file_reusing_a_deleted_files_inode_is_read_from_its_start() {
    inode_reuse(false);
}

#[test]
fn a_recreated_file_with_the_same_name_and_inode_is_read_from_its_start() {
    inode_reuse(true);
}

/// Two files whose first 20 lines (4 KiB) are identical, then different lines: both are
/// delivered whole (an input that identified files by their first bytes would take the
/// second for the first).
#[test]
fn two_files_with_identical_first_lines_are_both_delivered() {
    let (dir, logs) = test_dir("file-same-head");
    let config = file_config(base_detail(&[&logs.join("*.log")]));
    let head = numbered_lines("head", 1..=20, 200);
    let mut run = HarnessRun::start_in(dir.path(), "file_same_head", &config, &[]);
    // One before the other: the second appears while the first is known.
    let a = logs.join("a.log");
    append(
        &a,
        format!("{head}{}", numbered_lines("a", 1..=200, 40)).as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(600));
    let b = logs.join("b.log");
    append(
        &b,
        format!("{head}{}", numbered_lines("b", 1..=300, 40)).as_bytes(),
    );
    // Key: file name + tag + number (the head lines are the same in both).
    let key = |l: &e2e_tests::file::FileLog| {
        let (tag, n) = l.numbered()?;
        let file = std::path::Path::new(l.path())
            .file_name()?
            .to_string_lossy()
            .into_owned();
        Some((format!("{file}:{tag}"), n))
    };
    let mut expected: BTreeSet<(String, u64)> = BTreeSet::new();
    for (file, tag, n) in [("a.log", "a", 200), ("b.log", "b", 300)] {
        expected.extend((1..=20).map(|i| (format!("{file}:head"), i)));
        expected.extend((1..=n).map(|i| (format!("{file}:{tag}"), i)));
    }
    let got = run.wait_all_by(&expected, WAIT, "both files whole (keyed by __path__)", key);
    let t = Tally::by(&got, key);
    run.stop_expecting(
        &t,
        &expected,
        "identical first lines (keys are <file of __path__>:<tag>)",
    );
    report("identical_first_lines", t.summary_for(&expected));
}
