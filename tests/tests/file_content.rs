//! What `input_file` makes of a file's bytes: lines longer than `MaxLineBytes` (pieces marked
//! `__line_cut__`), multiline records (Java stack traces, the last one flushed by the
//! timeout), GBK files (UTF-8 content), position metadata (`__inode__`, `__file_offset__`),
//! `TailSizeKB` for a file present at the first start, and configs that must be refused
//! (by `validate` and by `LoadConfig`) with the config, the plugin and the field named.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::file::{
    append, base_detail, file_config, inode, keys, numbered_line, numbered_lines, report,
    stderr_end, test_dir, write_config, FileLog, HarnessRun, Tally, INODE_TAG, LINE_CUT_KEY,
    OFFSET_KEY, STOP,
};
use e2e_tests::util::{harness_bin, lib_dir, run_with_timeout};
use e2e_tests::TempDir;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// `MaxLineBytes` 1024 and a 5000-byte line between two short ones: five pieces of at most
/// 1024 bytes, `__line_cut__` "1".."5", in order, concatenated equal to the line; the short
/// lines and a 1000-byte line arrive whole, without `__line_cut__`.
#[test]
fn a_line_longer_than_max_line_bytes_arrives_in_marked_pieces() {
    let (dir, logs) = test_dir("file-long-line");
    let mut d = base_detail(&[&logs.join("*.log")]);
    d.insert("MaxLineBytes".into(), json!(1024));
    let mut run = HarnessRun::start_in(dir.path(), "file_long_line", &file_config(d), &[]);
    let long = numbered_line("long", 1, 5000 - "long-0000001 ".len());
    assert_eq!(long.len(), 5000);
    let near = numbered_line("near", 1, 1000 - "near-0000001 ".len());
    let text = format!(
        "{}\n{long}\n{near}\n{}\n",
        numbered_line("short", 1, 10),
        numbered_line("short", 2, 10)
    );
    append(&logs.join("a.log"), text.as_bytes());
    let long_bytes = |logs: &[FileLog]| -> usize {
        logs.iter()
            .filter(|l| l.content().starts_with("long-") || l.contents.contains_key(LINE_CUT_KEY))
            .map(|l| l.content().len())
            .sum()
    };
    let got = run.wait_for(
        WAIT,
        "the short lines and 5000 bytes of the long line",
        |logs| {
            let t = Tally::of(logs);
            t.counts.contains_key(&("short".into(), 2))
                && t.counts.contains_key(&("near".into(), 1))
                && long_bytes(logs) >= 5000
        },
        |logs| {
            format!(
                "{} logs, {} bytes of the long line",
                logs.len(),
                long_bytes(logs)
            )
        },
    );
    let got = {
        let _ = got;
        run.settle(Duration::from_millis(600))
    };
    let ctx = stderr_end("stderr", &run.stop(STOP).stderr);
    let pieces: Vec<&FileLog> = got
        .iter()
        .filter(|l| l.contents.contains_key(LINE_CUT_KEY))
        .collect();
    let cuts: Vec<&str> = pieces
        .iter()
        .map(|l| l.contents[LINE_CUT_KEY].as_str())
        .collect();
    let sizes: Vec<usize> = pieces.iter().map(|l| l.content().len()).collect();
    assert_eq!(
        cuts,
        ["1", "2", "3", "4", "5"],
        "__line_cut__ of the pieces (sizes {sizes:?})\n{}",
        ctx
    );
    assert!(
        sizes.iter().all(|s| *s <= 1024),
        "piece sizes {sizes:?}\n{}",
        ctx
    );
    let joined: String = pieces.iter().map(|l| l.content()).collect();
    assert!(
        joined == long,
        "the pieces joined ({} bytes, starting {:?}) differ from the line written (5000 bytes)\n{}",
        joined.len(),
        &joined[..joined.len().min(40)],
        ctx
    );
    let whole: Vec<&FileLog> = got
        .iter()
        .filter(|l| !l.contents.contains_key(LINE_CUT_KEY))
        .collect();
    let contents: Vec<String> = whole.iter().map(|l| l.content().to_owned()).collect();
    assert_eq!(
        contents,
        [
            numbered_line("short", 1, 10),
            near.clone(),
            numbered_line("short", 2, 10)
        ],
        "the lines that fit MaxLineBytes\n{}",
        ctx
    );
    report(
        "long_line",
        format!(
            "pieces {cuts:?} sizes {sizes:?}, joined == line: true; whole lines {}",
            whole.len()
        ),
    );
}

/// One Java-style record: a timestamped first line, then the exception and `at` lines.
fn java_record(i: u64) -> String {
    let mut r = format!(
        "2024-05-01 12:{:02}:{:02} ERROR rec-{i:07} request failed\n\
         java.lang.IllegalStateException: boom {i}\n\
         \tat com.example.Service.handle(Service.java:42)\n\
         \tat com.example.Server.run(Server.java:7)",
        (i / 60) % 60,
        i % 60
    );
    if i % 2 == 1 {
        r.push_str("\nCaused by: java.io.IOException: disk full\n\t... 2 more");
    }
    r
}

/// The record number of a multiline content (`rec-NNNNNNN` in its first line).
fn record_key(l: &FileLog) -> Option<(String, u64)> {
    let first = l.content().lines().next()?;
    if let Some(p) = first.find("rec-") {
        return Some(("rec".into(), first[p + 4..p + 11].parse().ok()?));
    }
    l.numbered()
}

/// `Multiline.StartPattern` = a timestamp: two lines before the first record arrive as
/// single lines (`UnmatchedContentTreatment` single_line); 30 records arrive each as one log,
/// the lines joined with `\n`, exactly as written; the last record of each batch (nothing
/// follows it) arrives through `FlushTimeoutSecs` 1, within a few seconds.
#[test]
fn java_stack_traces_become_one_log_each_and_the_last_is_flushed_by_the_timeout() {
    let (dir, logs) = test_dir("file-multiline");
    let mut d = base_detail(&[&logs.join("*.log")]);
    d.insert(
        "Multiline".into(),
        json!({
            "StartPattern": r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} .*",
            "UnmatchedContentTreatment": "single_line",
        }),
    );
    let mut run = HarnessRun::start_in(dir.path(), "file_multiline", &file_config(d), &[]);
    let file = logs.join("java.log");
    let mut text = format!(
        "{}\n{}\n",
        numbered_line("orphan", 1, 20),
        numbered_line("orphan", 2, 20)
    );
    for i in 1..=20 {
        text.push_str(&java_record(i));
        text.push('\n');
    }
    let written = Instant::now();
    append(&file, text.as_bytes());
    let mut expected = keys("orphan", 1..=2);
    expected.extend(keys("rec", 1..=20));
    run.wait_all_by(
        &expected,
        Duration::from_secs(15),
        "records 1..=20 (20 by the flush timeout)",
        record_key,
    );
    let first_batch = written.elapsed();
    // A second batch, after the first's last record was flushed.
    let mut text = String::new();
    for i in 21..=30 {
        text.push_str(&java_record(i));
        text.push('\n');
    }
    append(&file, text.as_bytes());
    expected.extend(keys("rec", 21..=30));
    let got = run.wait_all_by(
        &expected,
        Duration::from_secs(15),
        "records 21..=30",
        record_key,
    );
    let t = Tally::by(&got, record_key);
    let fin = run.stop_expecting(&t, &expected, "multiline records");
    let ctx = stderr_end("stderr", &fin.stderr);
    for l in &got {
        let Some((tag, n)) = record_key(l) else {
            continue;
        };
        let want = if tag == "rec" {
            java_record(n)
        } else {
            numbered_line("orphan", n, 20)
        };
        assert!(
            l.content() == want,
            "{tag} {n}: content {:?}, written {want:?}\n{}",
            l.content(),
            ctx
        );
    }
    assert!(
        first_batch < Duration::from_secs(10),
        "the last record took {first_batch:?} (FlushTimeoutSecs 1)"
    );
    report(
        "multiline",
        format!(
            "{} keys expected; received {}; first batch's last record after {first_batch:?}",
            expected.len(),
            t.summary()
        ),
    );
}

/// "中文日志测试，完成" in GBK.
const GBK_TEXT: &[u8] = &[
    0xd6, 0xd0, 0xce, 0xc4, 0xc8, 0xd5, 0xd6, 0xbe, 0xb2, 0xe2, 0xca, 0xd4, 0xa3, 0xac, 0xcd, 0xea,
    0xb3, 0xc9,
];
const UTF8_TEXT: &str = "中文日志测试，完成";

/// `FileEncoding` gbk: 200 lines with Chinese text in GBK arrive as UTF-8, byte-exact.
#[test]
fn a_gbk_file_arrives_as_utf8() {
    let (dir, logs) = test_dir("file-gbk");
    let mut d = base_detail(&[&logs.join("*.log")]);
    d.insert("FileEncoding".into(), json!("gbk"));
    let run = HarnessRun::start_in(dir.path(), "file_gbk", &file_config(d), &[]);
    let mut bytes = Vec::new();
    for n in 1..=200u64 {
        bytes.extend_from_slice(format!("gbk-{n:07} ").as_bytes());
        bytes.extend_from_slice(GBK_TEXT);
        bytes.extend_from_slice(format!(" {n}\n").as_bytes());
    }
    append(&logs.join("gbk.log"), &bytes);
    let expected = keys("gbk", 1..=200);
    let (got, t) = run.expect_exactly_once(&expected, WAIT, "GBK lines");
    let bad: Vec<&str> = got
        .iter()
        .filter(|l| {
            let (_, n) = l.numbered().unwrap();
            l.content() != format!("gbk-{n:07} {UTF8_TEXT} {n}")
        })
        .map(|l| l.content())
        .take(3)
        .collect();
    assert!(
        bad.is_empty(),
        "lines not decoded to the UTF-8 text {UTF8_TEXT:?}: {bad:?}"
    );
    report(
        "gbk",
        format!(
            "200 lines; received {}; e.g. {:?}",
            t.summary(),
            got[0].content()
        ),
    );
}

/// `AppendingLogPositionMeta`: the group tag `__inode__` is the file's inode and each log's
/// `__file_offset__` the byte offset of its line in the file (lines of varied lengths, in
/// two appends).
#[test]
fn position_meta_gives_the_inode_and_each_lines_offset() {
    let (dir, logs) = test_dir("file-position");
    let mut d = base_detail(&[&logs.join("*.log")]);
    d.insert("AppendingLogPositionMeta".into(), json!(true));
    let run = HarnessRun::start_in(dir.path(), "file_position", &file_config(d), &[]);
    let file = logs.join("pos.log");
    let mut offsets = std::collections::BTreeMap::new();
    let mut at = 0u64;
    for part in [1..=150u64, 151..=300] {
        let mut s = String::new();
        for n in part {
            let line = numbered_line("pos", n, (n as usize * 7) % 90);
            offsets.insert(n, at);
            at += line.len() as u64 + 1;
            s.push_str(&line);
            s.push('\n');
        }
        append(&file, s.as_bytes());
        std::thread::sleep(Duration::from_millis(300));
    }
    let ino = inode(&file).to_string();
    let expected = keys("pos", 1..=300);
    let (got, t) = run.expect_exactly_once(&expected, WAIT, "position meta lines");
    let wrong: Vec<String> = got
        .iter()
        .filter_map(|l| {
            let (_, n) = l.numbered()?;
            let off = l.contents.get(OFFSET_KEY).map(String::as_str);
            let tag = l.tags.get(INODE_TAG).map(String::as_str);
            let want = offsets[&n].to_string();
            (off != Some(want.as_str()) || tag != Some(ino.as_str())).then(|| {
                format!("line {n}: {OFFSET_KEY}={off:?} (want {want}), {INODE_TAG}={tag:?} (want {ino})")
            })
        })
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "position metadata: {wrong:#?}");
    report(
        "position_meta",
        format!(
            "300 lines; received {}; inode {ino}; offsets all right",
            t.summary()
        ),
    );
}

/// `TailSizeKB` 100 on a 330 KB file present at the first start: reading starts at the first
/// line start at or after size - 100 KiB (nothing before it, every line from it, once), and
/// lines appended later all arrive.
#[test]
fn a_file_present_at_the_first_start_is_read_from_its_last_tail_size_kb() {
    let (dir, logs) = test_dir("file-tail-size");
    let file = logs.join("big.log");
    let mut starts = Vec::new();
    let mut at = 0u64;
    let mut s = String::new();
    for n in 1..=3000u64 {
        let line = numbered_line("tail", n, 97);
        starts.push((n, at));
        at += line.len() as u64 + 1;
        s.push_str(&line);
        s.push('\n');
    }
    append(&file, s.as_bytes());
    let size = at;
    let from = size - 100 * 1024;
    let &(k, k_at) = starts.iter().find(|(_, o)| *o >= from).unwrap();
    // When `from` falls exactly on a line start, either that line or the next is a fair start.
    let firsts: Vec<u64> = if k_at == from {
        vec![k, k + 1]
    } else {
        vec![k]
    };
    let mut d = base_detail(&[&logs.join("*.log")]);
    d.insert("TailSizeKB".into(), json!(100));
    let mut run = HarnessRun::start_in(dir.path(), "file_tail_size", &file_config(d), &[]);
    let mut expected = keys("tail", k + 1..=3000);
    run.wait_all(&expected, WAIT, "the last 100 KiB of the file");
    append(&file, numbered_lines("tail", 3001..=3100, 97).as_bytes());
    expected.extend(keys("tail", 3001..=3100));
    let got = run.wait_all(&expected, WAIT, "the lines appended after the start");
    let ctx = stderr_end("stderr", &run.stop(STOP).stderr);
    let t = Tally::of(&got);
    let nums = t.numbers_of("tail");
    let first = nums.first().copied();
    assert!(
        first.is_some_and(|f| firsts.contains(&f)),
        "first line delivered {first:?}; expected {firsts:?} (size {size}, size - 100 KiB = {from}, \
         line {k} starts at {k_at})\n{ctx}"
    );
    t.assert_exactly_once(&keys("tail", first.unwrap()..=3100), "tail lines", &ctx);
    report(
        "tail_size",
        format!(
            "first line {first:?} (expected {firsts:?}), {}",
            t.summary()
        ),
    );
}

fn harness_cmd() -> Command {
    let mut c = Command::new(harness_bin());
    c.env("PLUGIN_LIB_DIR", lib_dir());
    c.env("PLUGIN_BASE_LOG", "warn");
    c
}

/// Writes `detail` as config `name`, runs `validate` and `run` on it: both must fail, and
/// each output must name the config, `input_file` and `field`.
fn expect_refused(name: &str, detail: Value, field: &str) {
    let dir = TempDir::new("file-bad-config");
    let config = json!({
        "global": {"AggregatIntervalMs": 100},
        "inputs": [{"type": "input_file", "detail": detail}],
        "flushers": [{"type": "flusher_sls", "detail": {}}],
    })
    .to_string();
    let file = write_config(dir.path(), name, &config);
    let v = run_with_timeout(
        harness_cmd().arg("validate").arg(&file),
        Duration::from_secs(60),
    );
    let r = run_with_timeout(
        harness_cmd()
            .args(["run", "--duration", "2"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg(&file),
        Duration::from_secs(60),
    );
    for (what, out) in [("validate", &v), ("run (LoadConfig)", &r)] {
        let all = out.all_output();
        assert!(
            out.status.is_some() && out.code() != Some(0),
            "{what} accepted {name}: {config}\n{all}"
        );
        for needle in [&format!("config \"{name}\"") as &str, "input_file", field] {
            assert!(
                all.contains(needle),
                "{what} output for {name} ({config}) does not mention {needle:?}\n{all}"
            );
        }
    }
}

#[test]
fn a_config_without_file_paths_is_refused() {
    expect_refused(
        "file_bad_nopaths",
        json!({"ScanIntervalMs": 200}),
        "FilePaths",
    );
}

#[test]
fn a_relative_file_path_is_refused() {
    expect_refused(
        "file_bad_relative",
        json!({"FilePaths": ["logs/*.log"]}),
        "FilePaths",
    );
}

#[test]
fn a_bad_start_pattern_is_refused() {
    let abs = std::env::temp_dir().join("x/*.log");
    expect_refused(
        "file_bad_regex",
        json!({"FilePaths": [abs], "Multiline": {"StartPattern": "(unclosed [a-"}}),
        "StartPattern",
    );
}

#[test]
fn an_unknown_encoding_is_refused() {
    let abs = std::env::temp_dir().join("x/*.log");
    expect_refused(
        "file_bad_encoding",
        json!({"FilePaths": [abs], "FileEncoding": "latin1"}),
        "FileEncoding",
    );
}

#[test]
fn a_misspelt_option_is_refused() {
    let abs = std::env::temp_dir().join("x/*.log");
    expect_refused(
        "file_bad_option",
        json!({"FilePaths": [abs], "MaxDirSearchDepht": 2}),
        "MaxDirSearchDepht",
    );
}
