//! Buffered delivery (`base/engine/src/buffer/`) end to end, through the real libraries and
//! `host-harness run`: `input_file` reads numbered lines, a buffered `flusher_file` (or
//! `flusher_sls` with a disk buffer) delivers them, and the test reads the destination back
//! and counts every number.
//!
//! - `flusher_file` writes every record once: plain JSON lines, and gzip members in files
//!   rotated by size.
//! - A disk buffer survives `kill -9`: a destination that cannot be written (its parent
//!   directory is missing and `Mkdir` is false, so each write fails with ENOENT, a retryable
//!   error) while everything reaches the chunk files; killed; the directory created; the
//!   second run re-sends the chunks and the input does not read the lines again.
//! - A chunk file cut short is recovered up to its last complete frame: exactly the records
//!   of the cut frame are lost, and the alarm says so.
//! - Overflow policies of a small memory buffer in front of a destination down for 3 s:
//!   `drop_newest` and `drop_oldest_chunk` count every record they drop (delivered + the
//!   buffer's `dropped` counter = lines written, and the drop alarms add up to the same
//!   number); `block` drops nothing.
//! - A chunk the destination refuses for good (its parent is a regular file) goes to the
//!   `Secondary` output, once.
//! - `flusher_sls` with `Buffer: {"Type": "file"}` and a host refusing every send for 4 s
//!   delivers every line exactly once; killed (`kill -9`) while the host refuses everything,
//!   the next run delivers every line exactly once from the chunk files.
//!
//! The buffer's counters are read from the statistics the base sends to the host (config
//! `shennong_log_profile`, plugin `<flusher>/buffer`, cumulative), which `host-harness run`
//! prints on stdout (`--stats` makes it report every 500 ms). Each test has its own
//! directory (removed at the end) and harness processes, so they run in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use e2e_tests::util::files_under;
use std::time::{Duration, Instant};

use e2e_tests::file::{
    append, keys, numbered_lines, parse_harness_logs, report, stderr_end, test_dir, write_config,
    FileLog, Finished, HarnessRun, Tally, CONTENT, STOP,
};
use serde_json::{json, Value};

/// The tag of every numbered line.
const TAG: &str = "buf";
/// Lines written per test.
const N: u64 = 20_000;
/// Filler bytes per line (a line is about 40 bytes, its JSON record about 70).
const PAD: usize = 30;
/// `host-harness run` arguments of every run: statistics every 500 ms, the summary on stdout.
const ARGS: &[&str] = &["--stats", "--stats-interval-ms", "500", "--summary-json"];
/// The plugin name of the buffer's counters (`<flusher instance>/buffer`).
const BUFFER_PLUGIN: &str = "flusher_file/0/buffer";
/// Longest wait for a run to deliver what it should.
const DELIVER: Duration = Duration::from_secs(60);

/// A pipeline: `input_file` on `<logs>/*.log` (a file present at the start is read from 0:
/// `TailSizeKB` is larger than any file here), `aggregator_default` with groups of at most
/// `group` logs, and `flusher`.
fn config(logs: &Path, group: u64, flusher: Value) -> String {
    json!({
        "global": {"AggregatIntervalMs": 100},
        "inputs": [{"type": "input_file", "detail": {
            "FilePaths": [logs.join("*.log").display().to_string()],
            "ScanIntervalMs": 200,
            "FlushTimeoutSecs": 1,
            "TailSizeKB": 65_536,
        }}],
        "aggregators": [{"type": "aggregator_default", "detail": {"MaxLogCount": group}}],
        "flushers": [flusher],
    })
    .to_string()
}

/// Short retry waits, so a destination that comes back is written within a second.
fn fast_retries(mut buffer: Value) -> Value {
    buffer["RetryWaitMs"] = json!(200);
    buffer["RetryMaxIntervalMs"] = json!(1000);
    buffer
}

/// A `flusher_file` writing JSON lines to `path` (no placeholders) with `buffer`;
/// `Mkdir: false`, so a missing parent directory makes every write fail (retryably).
fn file_flusher(path: &Path, buffer: Value, more: Value) -> Value {
    let mut detail = json!({
        "FileName": path.display().to_string(),
        "Format": "json",
        "Mkdir": false,
        "Buffer": fast_retries(buffer),
    });
    if let (Value::Object(d), Value::Object(m)) = (&mut detail, more) {
        d.extend(m);
    }
    json!({"type": "flusher_file", "detail": detail})
}

fn first<T: Clone>(v: impl IntoIterator<Item = T>, n: usize) -> Vec<T> {
    v.into_iter().take(n).collect()
}

/// A log with `content` only (what a JSON record of the output carries for the test).
fn content_log(content: &str) -> FileLog {
    FileLog {
        tags: BTreeMap::new(),
        contents: [(CONTENT.to_owned(), content.to_owned())]
            .into_iter()
            .collect(),
    }
}

/// The records of JSON-lines `text`. Strict: every line must be a JSON object with a string
/// `content` (else `Err` names the line). Not strict (reading while the output is written):
/// a last line without its newline and lines that do not parse are skipped.
fn json_records(text: &str, strict: bool, what: &str) -> Result<Vec<FileLog>, String> {
    let complete = if strict {
        text
    } else {
        match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        }
    };
    if strict && !complete.is_empty() && !complete.ends_with('\n') {
        return Err(format!("{what}: the last line has no newline"));
    }
    let mut out = Vec::new();
    for (i, line) in complete.lines().enumerate() {
        let parsed = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v[CONTENT].as_str().map(str::to_owned));
        match parsed {
            Some(c) => out.push(content_log(&c)),
            None if strict => {
                return Err(format!(
                    "{what}: line {} is not a JSON record with a content: {:?}",
                    i + 1,
                    e2e_tests::file::truncate(line, 160)
                ))
            }
            None => {}
        }
    }
    Ok(out)
}

/// `path` and its rotated files `<path>.<i>` that exist, oldest first.
fn output_files(path: &Path) -> Vec<PathBuf> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let dir = path.parent().unwrap();
    let mut rolled: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let f = e.file_name().to_string_lossy().into_owned();
            let i = f.strip_prefix(&name)?.strip_prefix('.')?.parse().ok()?;
            Some((i, e.path()))
        })
        .collect();
    rolled.sort();
    let mut files: Vec<PathBuf> = rolled.into_iter().rev().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// Every record in `path` and its rotated files (gzip members when `gzip`). Not strict: what
/// can be read while the files are written (see [`json_records`]).
fn output_records(path: &Path, gzip: bool, strict: bool) -> Result<Vec<FileLog>, String> {
    let mut all = Vec::new();
    for f in output_files(path) {
        let raw = match std::fs::read(&f) {
            Ok(r) => r,
            // Rotated away between the listing and the read: the next poll sees it.
            Err(_) if !strict => continue,
            Err(e) => return Err(format!("read {}: {e}", f.display())),
        };
        let text = if gzip {
            let mut out = Vec::new();
            let r = flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out);
            if let Err(e) = r {
                if strict {
                    return Err(format!(
                        "{}: not a sequence of gzip members: {e}",
                        f.display()
                    ));
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        } else {
            String::from_utf8_lossy(&raw).into_owned()
        };
        all.extend(json_records(&text, strict, &f.display().to_string())?);
    }
    Ok(all)
}

/// Polls the output (see [`output_records`]) until every number of `expected` is in it, then
/// until its record count has not changed for 800 ms. Panics on timeout or when the harness
/// exits first, with what is missing and the end of its stderr.
fn wait_output(
    run: &mut HarnessRun,
    path: &Path,
    gzip: bool,
    expected: &BTreeSet<(String, u64)>,
    what: &str,
) {
    let deadline = Instant::now() + DELIVER;
    loop {
        let got = output_records(path, gzip, false).unwrap_or_default();
        let t = Tally::of(&got);
        if t.has_all(expected) {
            break;
        }
        if !run.running() || Instant::now() >= deadline {
            panic!(
                "{what}: {} ({}); {}\n{}",
                if run.running() {
                    format!("not within {DELIVER:?}")
                } else {
                    "the harness exited first".into()
                },
                path.display(),
                t.exactly_once(expected).err().unwrap_or_default(),
                stderr_end("stderr", &run.stderr())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (mut last, mut since) = (usize::MAX, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let n = output_records(path, gzip, false).map_or(0, |r| r.len());
        if n != last {
            (last, since) = (n, Instant::now());
        } else if since.elapsed() >= Duration::from_millis(800) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops `run` with SIGTERM and asserts it exited with 0.
fn stop_ok(run: HarnessRun, what: &str) -> Finished {
    let fin = run.stop(STOP);
    assert_eq!(
        fin.code,
        Some(0),
        "{what}: the harness exit code\n{}",
        stderr_end("stderr", &fin.stderr)
    );
    fin
}

/// The last counters the base reported for `plugin` of `config` (statistics groups are
/// cumulative), from harness stdout.
fn last_stats(stdout: &str, config: &str, plugin: &str) -> Option<BTreeMap<String, u64>> {
    parse_harness_logs(stdout, "shennong_log_profile")
        .into_iter()
        .rev()
        .find(|l| {
            l.contents.get("config").is_some_and(|c| c == config)
                && l.contents.get("plugin").is_some_and(|p| p == plugin)
        })
        .map(|l| {
            l.contents
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.parse().ok()?)))
                .collect()
        })
}

/// The buffer took and delivered all N records and dropped none.
fn assert_all_through(stats: &Option<BTreeMap<String, u64>>, context: &str) {
    assert_eq!(
        (
            stat(stats, "events_in"),
            stat(stats, "events_out"),
            stat(stats, "dropped")
        ),
        (N, N, 0),
        "the buffer's counters (events_in, events_out, dropped): {stats:?}\n{context}"
    );
}

fn stat(stats: &Option<BTreeMap<String, u64>>, key: &str) -> u64 {
    stats
        .as_ref()
        .and_then(|s| s.get(key).copied())
        .unwrap_or(0)
}

/// The sum of `<n> records dropped: ...` over the alarms the base logged to stderr (each
/// alarm is logged when raised; the `alarm: ` lines of `--stats` are merged ones and are not
/// counted), with how many alarms that was.
fn dropped_in_alarms(stderr: &str) -> (u64, usize) {
    let (mut sum, mut n) = (0, 0);
    for line in stderr.lines().filter(|l| !l.starts_with("alarm: ")) {
        let Some(i) = line.find(" records dropped: ") else {
            continue;
        };
        if let Some(count) = line[..i]
            .rsplit(' ')
            .next()
            .and_then(|c| c.parse::<u64>().ok())
        {
            sum += count;
            n += 1;
        }
    }
    (sum, n)
}

/// One frame of a chunk file.
#[derive(Debug)]
struct Frame {
    /// Its records, as the output's format encoded them (JSON lines here).
    data: Vec<u8>,
    /// The record count in its head.
    records: u32,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn crc32(parts: &[&[u8]]) -> u32 {
    let mut c = flate2::Crc::new();
    for p in parts {
        c.update(p);
    }
    c.sum()
}

/// The complete frames of a chunk file (layout of `base/engine/src/buffer/disk.rs`: header
/// `PBCHUNK1`, u32 key length, key JSON, u32 CRC-32; frames of u32 length, u32 records,
/// u32 CRC-32 of records + data, data), read up to the first short or damaged one. `None`
/// when the header is not (yet) complete.
fn chunk_frames(path: &Path) -> Option<Vec<Frame>> {
    let raw = std::fs::read(path).ok()?;
    if raw.get(..8)? != b"PBCHUNK1" {
        return None;
    }
    let n = u32_at(&raw, 8)? as usize;
    let key = raw.get(12..12 + n)?;
    if u32_at(&raw, 12 + n)? != crc32(&[key]) {
        return None;
    }
    let mut pos = 16 + n;
    let mut frames = Vec::new();
    while let (Some(len), Some(records), Some(crc)) = (
        u32_at(&raw, pos),
        u32_at(&raw, pos + 4),
        u32_at(&raw, pos + 8),
    ) {
        let Some(data) = raw.get(pos + 12..pos + 12 + len as usize) else {
            break;
        };
        if crc32(&[&records.to_le_bytes(), data]) != crc {
            break;
        }
        frames.push(Frame {
            data: data.to_vec(),
            records,
        });
        pos += 12 + len as usize;
    }
    Some(frames)
}

/// The chunk files of a disk buffer, oldest (lowest id) first.
fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "chunk"))
        .collect();
    v.sort();
    v
}

/// The records in the complete frames of every chunk file in `dir`.
fn buffered_records(dir: &Path) -> Vec<FileLog> {
    chunk_files(dir)
        .iter()
        .filter_map(|p| chunk_frames(p))
        .flatten()
        .flat_map(|f| {
            json_records(&String::from_utf8_lossy(&f.data), false, "").unwrap_or_default()
        })
        .collect()
}

/// Polls the chunk files in `dir` until they hold every line of `expected`, then waits 2.5 s:
/// the frames are synced (`SyncIntervalMs` 50), so their acks reach the input, which commits
/// its offset, and the store (flushed every second) writes it.
fn wait_buffered(run: &mut HarnessRun, dir: &Path, expected: &BTreeSet<(String, u64)>) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let t = Tally::of(&buffered_records(dir));
        if t.has_all(expected) {
            break;
        }
        assert!(
            run.running() && Instant::now() < deadline,
            "run 1: the chunk files in {} do not hold every line ({}): {}\n{}",
            dir.display(),
            if run.running() {
                "timeout"
            } else {
                "the harness exited"
            },
            t.exactly_once(expected).err().unwrap_or_default(),
            stderr_end("run 1 stderr", &run.stderr())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(2500));
}

/// 20,000 lines through `flusher_file` (memory buffer, the defaults) into one JSON-lines
/// file: every number exactly once, and the buffer's counters agree.
#[test]
fn flusher_file_writes_every_record_once() {
    let (dir, logs) = test_dir("buffered-file-json");
    append(
        &logs.join("app.log"),
        numbered_lines(TAG, 1..=N, PAD).as_bytes(),
    );
    let out = dir.path().join("out").join("app.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let cfg = config(&logs, 1000, file_flusher(&out, json!({}), json!({})));
    let mut run = HarnessRun::start_in(dir.path(), "file_json", &cfg, ARGS);
    let expected = keys(TAG, 1..=N);
    wait_output(&mut run, &out, false, &expected, "flusher_file, JSON");
    let fin = stop_ok(run, "flusher_file, JSON");
    let got = output_records(&out, false, true).unwrap_or_else(|e| panic!("{e}"));
    let t = Tally::of(&got);
    let context = stderr_end("stderr", &fin.stderr);
    t.assert_exactly_once(&expected, "flusher_file, JSON lines", &context);
    let stats = last_stats(&fin.stdout, "file_json", BUFFER_PLUGIN);
    assert_all_through(&stats, &context);
    report("flusher_file_json", t.summary_for(&expected));
}

/// As above with `Compress: gzip`, chunks of at most 16 KiB and `MaxFileSize` 16 KiB (and
/// `MaxFiles` large enough to keep every file): the files are rotated many times, each holds
/// whole gzip members, none is over the limit, and every number is in them exactly once.
#[test]
fn flusher_file_gzip_rotated_by_size_writes_every_record_once() {
    const MAX_FILE: u64 = 16 * 1024;
    let (dir, logs) = test_dir("buffered-file-gzip");
    append(
        &logs.join("app.log"),
        numbered_lines(TAG, 1..=N, PAD).as_bytes(),
    );
    let out = dir.path().join("out").join("app.json.gz");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let cfg = config(
        &logs,
        200,
        file_flusher(
            &out,
            json!({"ChunkLimitSize": 16 * 1024}),
            json!({"Compress": "gzip", "MaxFileSize": MAX_FILE, "MaxFiles": 10_000}),
        ),
    );
    let mut run = HarnessRun::start_in(dir.path(), "file_gzip", &cfg, ARGS);
    let expected = keys(TAG, 1..=N);
    wait_output(
        &mut run,
        &out,
        true,
        &expected,
        "flusher_file, gzip, rotated",
    );
    let fin = stop_ok(run, "flusher_file, gzip, rotated");
    let context = stderr_end("stderr", &fin.stderr);
    let files = output_files(&out);
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .collect();
    assert!(
        files.len() >= 3,
        "expected several rotated files, found {files:?}\n{context}"
    );
    assert!(
        sizes.iter().all(|s| *s <= MAX_FILE),
        "a file is over MaxFileSize ({MAX_FILE}): sizes {sizes:?}\n{context}"
    );
    let lock = PathBuf::from(format!("{}.rotating", out.display()));
    assert!(!lock.exists(), "{} was left behind", lock.display());
    let got = output_records(&out, true, true).unwrap_or_else(|e| panic!("{e}\n{context}"));
    let t = Tally::of(&got);
    t.assert_exactly_once(
        &expected,
        &format!("flusher_file, gzip, {} files", files.len()),
        &context,
    );
    report(
        "flusher_file_gzip",
        format!("{}; {} files", t.summary_for(&expected), files.len()),
    );
}

/// A primary path whose parent is a regular file (ENOTDIR: `WriteError::Unrecoverable`, not
/// retried) with `Secondary: {"Type": "flusher_file", ...}`: every chunk goes to the
/// secondary at once, every number is there exactly once, nothing is dropped.
#[test]
fn unrecoverable_chunks_go_to_the_secondary_once() {
    let (dir, logs) = test_dir("buffered-file-secondary");
    append(
        &logs.join("app.log"),
        numbered_lines(TAG, 1..=N, PAD).as_bytes(),
    );
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"a regular file\n").unwrap();
    let out = blocker.join("app.json");
    let second = dir.path().join("secondary").join("app.json");
    let cfg = config(
        &logs,
        1000,
        file_flusher(
            &out,
            json!({}),
            json!({"Secondary": {"Type": "flusher_file", "FileName": second.display().to_string()}}),
        ),
    );
    let mut run = HarnessRun::start_in(dir.path(), "file_secondary", &cfg, ARGS);
    let expected = keys(TAG, 1..=N);
    wait_output(&mut run, &second, false, &expected, "the secondary");
    let fin = stop_ok(run, "secondary");
    let context = stderr_end("stderr", &fin.stderr);
    let t = Tally::of(&output_records(&second, false, true).unwrap_or_else(|e| panic!("{e}")));
    t.assert_exactly_once(&expected, "the secondary", &context);
    assert_eq!(
        std::fs::read(&blocker).unwrap(),
        b"a regular file\n",
        "the regular file in the way was changed"
    );
    let stats = last_stats(&fin.stdout, "file_secondary", BUFFER_PLUGIN);
    assert_eq!(
        (stat(&stats, "events_out"), stat(&stats, "dropped")),
        (N, 0),
        "the buffer's counters (events_out, dropped): {stats:?}\n{context}"
    );
    assert!(
        fin.stderr.contains("written to the secondary"),
        "no alarm about the secondary\n{context}"
    );
    report(
        "secondary",
        format!(
            "{}; retries {}",
            t.summary_for(&expected),
            stat(&stats, "retries")
        ),
    );
}

/// What run 1 of a disk-buffer test leaves for run 2.
struct KilledRun {
    cfg: PathBuf,
    out: PathBuf,
    buf: PathBuf,
    data: PathBuf,
    fin1: Finished,
}

/// Run 1 of the disk-buffer tests: `N` lines in a file present at the start; groups of at
/// most `group` logs; a file buffer in `<dir>/buf` (chunks of at most 64 KiB, synced every
/// 50 ms) in front of a `flusher_file` whose parent directory is missing (every write fails
/// with ENOENT and is retried). Once the chunk files hold every line and the acks had time to
/// be synced and committed, `kill -9`.
fn disk_buffer_run1(dir: &Path, logs: &Path, name: &str, group: u64) -> KilledRun {
    append(
        &logs.join("app.log"),
        numbered_lines(TAG, 1..=N, PAD).as_bytes(),
    );
    let out = dir.join("out").join("app.json");
    let buf = dir.join("buf");
    let buffer = json!({
        "Type": "file",
        "Path": buf.display().to_string(),
        "SyncIntervalMs": 50,
        "ChunkLimitSize": 64 * 1024,
    });
    let cfg = write_config(
        dir,
        name,
        &config(logs, group, file_flusher(&out, buffer, json!({}))),
    );
    let data = dir.join("data");
    let mut run1 = HarnessRun::start(dir, "run1", &data, &cfg, ARGS);
    wait_buffered(&mut run1, &buf, &keys(TAG, 1..=N));
    let fin1 = run1.kill9();
    assert!(
        !out.parent().unwrap().exists(),
        "run 1 created {} (Mkdir is false)",
        out.parent().unwrap().display()
    );
    assert!(
        fin1.stderr.contains("failed, retrying"),
        "run 1 did not report a failed write\n{}",
        stderr_end("run 1 stderr", &fin1.stderr)
    );
    KilledRun {
        cfg,
        out,
        buf,
        data,
        fin1,
    }
}

/// A disk buffer in front of a destination that cannot be written holds every line when
/// the agent is killed with SIGKILL; with the destination fixed, the next run on the same data
/// directory and buffer delivers every line, and none twice: the input committed only what
/// was synced to the chunk files, and did not read it again.
#[test]
fn disk_buffer_survives_kill_9() {
    let (dir, logs) = test_dir("buffered-file-kill9");
    let k = disk_buffer_run1(dir.path(), &logs, "disk_kill9", 1000);
    let chunks = chunk_files(&k.buf).len();
    std::fs::create_dir_all(k.out.parent().unwrap()).unwrap();
    let mut run2 = HarnessRun::start(dir.path(), "run2", &k.data, &k.cfg, ARGS);
    let expected = keys(TAG, 1..=N);
    wait_output(&mut run2, &k.out, false, &expected, "run 2 after kill -9");
    let fin2 = stop_ok(run2, "run 2 after kill -9");
    let got = output_records(&k.out, false, true).unwrap_or_else(|e| panic!("{e}"));
    let t = Tally::of(&got);
    let dups: Vec<(u64, usize)> = t
        .counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|((_, n), c)| (*n, *c))
        .collect();
    let missing: Vec<u64> = (1..=N)
        .filter(|n| !t.counts.contains_key(&(TAG.to_owned(), *n)))
        .collect();
    let facts = format!(
        "{chunks} chunk files at the kill; run 2 wrote {}; {} missing (first {:?}); {} \
         duplicated (first, with copies: {:?}); unparsed {:?}\n{}\n{}",
        t.summary(),
        missing.len(),
        first(missing.iter().copied(), 8),
        dups.len(),
        first(dups.iter().copied(), 8),
        t.unparsed,
        stderr_end("run 1 stderr", &k.fin1.stderr),
        stderr_end("run 2 stderr", &fin2.stderr)
    );
    assert!(
        missing.is_empty() && t.unparsed.is_empty(),
        "lines lost across kill -9: {facts}"
    );
    // Every line was synced to the chunk files (and its offset committed) before the kill:
    // none may come twice.
    assert!(dups.is_empty(), "lines delivered twice: {facts}");
    assert_eq!(t.distinct() as u64, N, "{facts}");
    assert!(
        fin2.stderr
            .contains("re-sending chunks left by the previous run"),
        "run 2 did not report re-sending the chunks: {facts}"
    );
    assert!(
        chunk_files(&k.buf).is_empty(),
        "chunk files left after delivery: {:?}",
        chunk_files(&k.buf)
    );
    report(
        "disk_kill9",
        format!("{chunks} chunks; {}", t.summary_for(&expected)),
    );
}

/// As above, with groups of at most 100 logs (one frame each); before run 2 the newest chunk
/// file loses its last 3 bytes. Run 2 reports the file "cut short", delivers every other
/// line exactly once, and loses exactly the records of that last frame (a contiguous run of
/// numbers, at most one group).
#[test]
fn a_chunk_file_cut_short_is_recovered_up_to_its_last_complete_frame() {
    const GROUP: u64 = 100;
    let (dir, logs) = test_dir("buffered-file-cut");
    let k = disk_buffer_run1(dir.path(), &logs, "disk_cut", GROUP);
    let files = chunk_files(&k.buf);
    let newest = files.last().expect("chunk files after run 1").clone();
    let frames = chunk_frames(&newest).expect("the newest chunk file has a header");
    let last = frames.last().expect("the newest chunk file has a frame");
    let lost_records = json_records(&String::from_utf8_lossy(&last.data), true, "last frame")
        .unwrap_or_else(|e| panic!("{e}"));
    let lost: Vec<u64> = Tally::of(&lost_records).numbers_of(TAG);
    assert_eq!(
        lost.len(),
        last.records as usize,
        "the last frame's record count"
    );
    assert!(
        !lost.is_empty() && lost.len() as u64 <= GROUP && lost.windows(2).all(|w| w[1] == w[0] + 1),
        "the last frame of {} holds {lost:?}: expected one run of consecutive numbers, at \
         most {GROUP}",
        newest.display()
    );
    let size = std::fs::metadata(&newest).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .and_then(|f| f.set_len(size - 3))
        .unwrap_or_else(|e| panic!("truncate {}: {e}", newest.display()));

    std::fs::create_dir_all(k.out.parent().unwrap()).unwrap();
    let mut run2 = HarnessRun::start(dir.path(), "run2", &k.data, &k.cfg, ARGS);
    let lost_set: BTreeSet<u64> = lost.iter().copied().collect();
    let expected: BTreeSet<(String, u64)> = (1..=N)
        .filter(|n| !lost_set.contains(n))
        .map(|n| (TAG.to_owned(), n))
        .collect();
    wait_output(
        &mut run2,
        &k.out,
        false,
        &expected,
        "run 2 after a cut chunk file",
    );
    let fin2 = stop_ok(run2, "run 2 after a cut chunk file");
    let context = format!(
        "{} chunk files at the kill; the newest, {}, had {} frames; its last frame held {}..={} \
         ({} records)\n{}",
        files.len(),
        newest.display(),
        frames.len(),
        lost[0],
        lost[lost.len() - 1],
        lost.len(),
        stderr_end("run 2 stderr", &fin2.stderr)
    );
    let got = output_records(&k.out, false, true).unwrap_or_else(|e| panic!("{e}"));
    let t = Tally::of(&got);
    // Exactly the lines of the cut frame are missing; everything else arrived once.
    t.assert_exactly_once(
        &expected,
        "run 2 must deliver every line but those of the cut frame, once",
        &context,
    );
    assert_eq!(
        t.distinct() as u64 + lost.len() as u64,
        N,
        "delivered + lost: {context}"
    );
    let alarm = fin2
        .stderr
        .lines()
        .find(|l| l.contains("was cut short"))
        .unwrap_or_else(|| panic!("no \"was cut short\" alarm: {context}"));
    assert!(
        alarm.contains(&newest.display().to_string()),
        "the alarm does not name {}: {alarm}",
        newest.display()
    );
    let stats2 = last_stats(&fin2.stdout, "disk_cut", BUFFER_PLUGIN);
    // The cut frame's header survived: its records are counted as dropped, and named.
    assert_eq!(
        stat(&stats2, "dropped"),
        lost.len() as u64,
        "run 2 counts the cut frame's records as dropped: {context}"
    );
    assert!(
        alarm.contains(&format!("{} records lost", lost.len())),
        "the alarm does not count the lost records: {alarm}"
    );
    report(
        "disk_cut",
        format!(
            "{} delivered, {} lost (the cut frame of {} records); run 2's buffer counters: \
             events_in {} events_out {} dropped {}; alarm: {alarm}",
            t.distinct(),
            lost.len(),
            last.records,
            stat(&stats2, "events_in"),
            stat(&stats2, "events_out"),
            stat(&stats2, "dropped"),
        ),
    );
}

/// What an overflow scenario ended with.
struct Overflowed {
    delivered: Tally,
    dropped: u64,
    alarm_sum: u64,
    alarms: usize,
    context: String,
}

/// A memory buffer of 64 KiB (chunks of at most 16 KiB, one per group: `FlushMode`
/// immediate) with `OverflowAction` `policy`, in front of a `flusher_file` whose parent
/// directory appears 3 s after the start. Waits until the buffer has accounted for every
/// line (delivered + dropped, from its counters), stops, and reads everything back.
fn overflow_scenario(policy: &str, name: &str) -> Overflowed {
    let (dir, logs) = test_dir(&format!("buffered-overflow-{policy}"));
    append(
        &logs.join("app.log"),
        numbered_lines(TAG, 1..=N, PAD).as_bytes(),
    );
    let out = dir.path().join("out").join("app.json");
    let buffer = json!({
        "Type": "memory",
        "TotalLimitSize": 64 * 1024,
        "ChunkLimitSize": 16 * 1024,
        "FlushMode": "immediate",
        "OverflowAction": policy,
    });
    let cfg = config(&logs, 100, file_flusher(&out, buffer, json!({})));
    let mut run = HarnessRun::start_in(dir.path(), name, &cfg, ARGS);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !out.exists(),
        "{policy}: {} was written while its directory did not exist",
        out.display()
    );
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    // Until delivered + dropped covers every line and stays so for 1 s.
    let deadline = Instant::now() + DELIVER;
    let mut since: Option<Instant> = None;
    loop {
        let stats = last_stats(&run.stdout(), name, BUFFER_PLUGIN);
        let delivered = Tally::of(&output_records(&out, false, false).unwrap_or_default());
        let accounted = delivered.distinct() as u64 + stat(&stats, "dropped");
        if accounted >= N && stat(&stats, "events_out") as usize == delivered.total {
            let s = *since.get_or_insert_with(Instant::now);
            if s.elapsed() >= Duration::from_secs(1) {
                break;
            }
        } else {
            since = None;
        }
        assert!(
            run.running() && Instant::now() < deadline,
            "{policy}: delivered {} + dropped {} != {N} ({}); buffer counters {stats:?}\n{}",
            delivered.distinct(),
            stat(&stats, "dropped"),
            if run.running() {
                "timeout"
            } else {
                "the harness exited"
            },
            stderr_end("stderr", &run.stderr())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let fin = stop_ok(run, policy);
    let stats = last_stats(&fin.stdout, name, BUFFER_PLUGIN);
    let delivered = Tally::of(&output_records(&out, false, true).unwrap_or_else(|e| panic!("{e}")));
    let (alarm_sum, alarms) = dropped_in_alarms(&fin.stderr);
    let context = format!(
        "{policy}: output {}; buffer counters {stats:?}; {alarms} drop alarms for {alarm_sum} \
         records\n{}",
        delivered.summary(),
        stderr_end("stderr", &fin.stderr)
    );
    Overflowed {
        dropped: stat(&stats, "dropped"),
        delivered,
        alarm_sum,
        alarms,
        context,
    }
}

/// Checks an overflow policy that drops: what was delivered came once, delivered + dropped
/// is every line, something was dropped, the drop alarms add up to the counter, and line
/// `kept` (the first for `drop_newest`, the last for `drop_oldest_chunk`) was not dropped.
fn assert_drops_counted(o: &Overflowed, policy: &str, kept: u64) {
    let t = &o.delivered;
    let dups = t.counts.values().filter(|c| **c > 1).count();
    let extra = t
        .counts
        .keys()
        .filter(|(tag, n)| tag != TAG || *n < 1 || *n > N)
        .count();
    assert!(
        dups == 0 && extra == 0 && t.unparsed.is_empty(),
        "{policy}: {dups} lines delivered twice, {extra} unexpected; {}",
        o.context
    );
    assert_eq!(
        t.distinct() as u64 + o.dropped,
        N,
        "{policy}: delivered + dropped must be every line; {}",
        o.context
    );
    assert!(o.dropped > 0, "{policy}: nothing dropped; {}", o.context);
    assert!(
        t.counts.contains_key(&(TAG.to_owned(), kept)),
        "{policy}: line {kept} was dropped (delivered runs {:?}); {}",
        runs(&t.numbers_of(TAG)),
        o.context
    );
    assert_eq!(
        o.alarm_sum, o.dropped,
        "{policy}: the drop alarms do not add up to the dropped counter; {}",
        o.context
    );
    report(
        policy,
        format!(
            "delivered {} (runs {:?}), dropped {} ({} alarms)",
            t.distinct(),
            runs(&t.numbers_of(TAG)),
            o.dropped,
            o.alarms
        ),
    );
}

/// Sorted distinct numbers as runs of consecutive ones, `(first, last)`.
fn runs(numbers: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &n in numbers {
        match out.last_mut() {
            Some((_, last)) if n == *last + 1 => *last = n,
            Some((_, last)) if n == *last => {}
            _ => out.push((n, n)),
        }
    }
    out
}

/// `OverflowAction: drop_newest`: the groups that do not fit are dropped, every one counted.
#[test]
fn overflow_drop_newest_counts_every_drop() {
    let o = overflow_scenario("drop_newest", "overflow_newest");
    // The chunks already in the buffer stay: line 1 is delivered.
    assert_drops_counted(&o, "drop_newest", 1);
}

/// `OverflowAction: drop_oldest_chunk`: the oldest chunks make room, every one counted.
#[test]
fn overflow_drop_oldest_chunk_counts_every_drop() {
    let o = overflow_scenario("drop_oldest_chunk", "overflow_oldest");
    // The last group always finds room: line N is delivered.
    assert_drops_counted(&o, "drop_oldest_chunk", N);
}

/// `OverflowAction: block` (the default): back-pressure, nothing dropped, every line once.
#[test]
fn overflow_block_drops_nothing() {
    let o = overflow_scenario("block", "overflow_block");
    o.delivered
        .assert_exactly_once(&keys(TAG, 1..=N), "block", &o.context);
    assert_eq!((o.dropped, o.alarm_sum), (0, 0), "block: {}", o.context);
    report(
        "block",
        format!("delivered {}, dropped 0", o.delivered.distinct()),
    );
}

/// `flusher_sls` with a disk buffer (`Buffer: {"Type": "file"}`, in the data directory) and
/// a host refusing every send for the first 4 s: every line reaches the host exactly once.
#[test]
fn host_down_with_a_disk_buffer_in_flusher_sls_loses_nothing() {
    let (dir, logs) = test_dir("buffered-sls");
    append(
        &logs.join("app.log"),
        numbered_lines(TAG, 1..=N, PAD).as_bytes(),
    );
    let flusher = json!({"type": "flusher_sls", "detail": {
        "Buffer": fast_retries(json!({"Type": "file", "SyncIntervalMs": 50})),
    }});
    let cfg = config(&logs, 1000, flusher);
    let mut args = ARGS.to_vec();
    args.extend(["--reject-for", "4"]);
    let mut run = HarnessRun::start_in(dir.path(), "sls_disk", &cfg, &args);
    let expected = keys(TAG, 1..=N);
    let got = run.wait_all(
        &expected,
        DELIVER,
        "flusher_sls with a disk buffer: every line",
    );
    let fin = stop_ok(run, "flusher_sls with a disk buffer");
    let context = stderr_end("stderr", &fin.stderr);
    let t = Tally::of(&got);
    t.assert_exactly_once(&expected, "flusher_sls with a disk buffer", &context);
    let summary = fin
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("summary").cloned())
        .unwrap_or_else(|| panic!("no summary on stdout\n{context}"));
    let rejected = summary["per_config"]["sls_disk"]["rejected_sends"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        rejected > 0,
        "the host refused no send of sls_disk (summary {summary})\n{context}"
    );
    let stats = last_stats(&fin.stdout, "sls_disk", "flusher_sls/0/buffer");
    assert_all_through(&stats, &context);
    let buffers = dir.path().join("data");
    let left: Vec<PathBuf> = files_under(&buffers)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "chunk"))
        .collect();
    assert!(left.is_empty(), "chunk files left after delivery: {left:?}");
    report(
        "sls_disk",
        format!("{}; {rejected} sends refused", t.summary_for(&expected)),
    );
}

/// `flusher_sls` with a disk buffer at `Path`, the host refusing every send: the lines reach
/// the chunk files (their frames' record counts add up to every line), then `kill -9`. A
/// second run on the same data directory, the host accepting, delivers every line exactly
/// once: the chunks are re-sent, and the input (which committed what was synced) reads none
/// again.
#[test]
fn flusher_sls_disk_buffer_survives_kill_9_while_the_host_refuses() {
    let (dir, logs) = test_dir("buffered-sls-kill9");
    append(
        &logs.join("app.log"),
        numbered_lines(TAG, 1..=N, PAD).as_bytes(),
    );
    let buf = dir.path().join("buf");
    let flusher = json!({"type": "flusher_sls", "detail": {
        "Buffer": fast_retries(json!({
            "Type": "file",
            "Path": buf.display().to_string(),
            "SyncIntervalMs": 50,
            "ChunkLimitSize": 64 * 1024,
        })),
    }});
    let cfg = write_config(dir.path(), "sls_kill9", &config(&logs, 1000, flusher));
    let data = dir.path().join("data");
    let mut args = ARGS.to_vec();
    args.extend(["--reject-for", "100"]);
    let mut run1 = HarnessRun::start(dir.path(), "run1", &data, &cfg, &args);
    let records = |buf: &Path| -> u64 {
        chunk_files(buf)
            .iter()
            .filter_map(|p| chunk_frames(p))
            .flatten()
            .map(|f| u64::from(f.records))
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    while records(&buf) < N {
        assert!(
            run1.running() && Instant::now() < deadline,
            "run 1: the chunk files hold {} records, not {N}\n{}",
            records(&buf),
            stderr_end("run 1 stderr", &run1.stderr())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Synced, committed, and the store flushed (see `wait_buffered`).
    std::thread::sleep(Duration::from_millis(2500));
    let in_chunks = records(&buf);
    let chunks = chunk_files(&buf).len();
    let fin1 = run1.kill9();
    let got1 = parse_harness_logs(&fin1.stdout, "sls_kill9");
    assert!(
        got1.is_empty(),
        "run 1 delivered {} logs to a host refusing all",
        got1.len()
    );
    let mut run2 = HarnessRun::start(dir.path(), "run2", &data, &cfg, ARGS);
    let expected = keys(TAG, 1..=N);
    run2.wait_all(&expected, DELIVER, "run 2: every line");
    // Late copies would show.
    let got = run2.settle(Duration::from_millis(1500));
    let fin2 = stop_ok(run2, "run 2");
    let t = Tally::of(&got);
    let dup_runs = runs(
        &t.counts
            .iter()
            .filter(|(_, c)| **c > 1)
            .map(|((_, n), _)| *n)
            .collect::<Vec<_>>(),
    );
    let facts = format!(
        "{chunks} chunk files holding {in_chunks} records at the kill; run 2 delivered {}; \
         duplicated runs {dup_runs:?}\n{}\n{}",
        t.summary(),
        stderr_end("run 1 stderr", &fin1.stderr),
        stderr_end("run 2 stderr", &fin2.stderr)
    );
    let missing: Vec<u64> = (1..=N)
        .filter(|n| !t.counts.contains_key(&(TAG.to_owned(), *n)))
        .collect();
    assert!(
        missing.is_empty() && t.unparsed.is_empty(),
        "lines lost: {} (first {:?}); {facts}",
        missing.len(),
        first(missing.iter().copied(), 8)
    );
    assert!(
        chunk_files(&buf).is_empty(),
        "chunk files left after delivery: {:?}",
        chunk_files(&buf)
    );
    // Every frame was synced before the kill, so the input had committed every line (the
    // buffer's contract: a disk buffer lets acknowledgements go once synced): run 2 must
    // re-send the chunks only, not read the file again.
    t.assert_exactly_once(
        &expected,
        "flusher_sls, disk buffer, kill -9 while the host refused everything: each line once",
        &facts,
    );
    report(
        "sls_kill9",
        format!(
            "{chunks} chunks, {in_chunks} records at the kill; {}",
            t.summary_for(&expected)
        ),
    );
}
