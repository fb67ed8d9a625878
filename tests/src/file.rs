//! Support for the end-to-end tests of the `input_file` input (`tests/tests/file_*.rs`).
//!
//! - Numbered lines: every test writes lines `<tag>-<n:07> <padding>` and checks, by
//!   counting, that each `(tag, n)` arrived exactly once ([`numbered_line`], [`Tally`];
//!   [`Tally::assert_exactly_once`], [`HarnessRun::stop_expecting`] and
//!   [`HarnessRun::expect_exactly_once`] check it, the failure message ending with the last
//!   lines of the harness's stderr, [`stderr_end`]).
//! - Configs: [`file_config`] builds a pipeline with one `input_file` and `flusher_sls`,
//!   with short intervals so the tests run in seconds ([`base_detail`]).
//! - [`HarnessRun`]: one `host-harness run` process per scenario (its own base, its own data
//!   directory), its stdout (one JSON line per log group) in a file that is read while it
//!   runs; stopped with SIGTERM (HoldOn(1)) or SIGKILL (`kill -9`). Tests of one file can
//!   therefore run in parallel. [`test_dir`] and [`HarnessRun::start_in`] set one up.
//! - [`Writer`] / [`BackgroundWriter`]: append numbered lines to a file, in one `write` per
//!   batch of whole lines (a reader never sees half a line unless a test wants it to).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::util::{harness_bin, lib_dir, TempDir};

/// The content key of every log the input makes.
pub const CONTENT: &str = "content";
/// The group tag naming the file.
pub const PATH_TAG: &str = "__path__";
/// The group tag with the file's inode (`AppendingLogPositionMeta`).
pub const INODE_TAG: &str = "__inode__";
/// The content with the byte offset of the line start (`AppendingLogPositionMeta`).
pub const OFFSET_KEY: &str = "__file_offset__";
/// The content numbering the pieces of a line longer than `MaxLineBytes`.
pub const LINE_CUT_KEY: &str = "__line_cut__";

/// `<tag>-<n:07> ` followed by `pad` bytes of filler (no newline).
pub fn numbered_line(tag: &str, n: u64, pad: usize) -> String {
    let mut s = format!("{tag}-{n:07} ");
    let filler = b"abcdefghijklmnopqrstuvwxyz0123456789";
    s.extend((0..pad).map(|i| filler[(i + n as usize) % filler.len()] as char));
    s
}

/// `numbered_line` for `range`, each followed by `\n`.
pub fn numbered_lines(tag: &str, range: std::ops::RangeInclusive<u64>, pad: usize) -> String {
    let mut s = String::new();
    for n in range {
        s.push_str(&numbered_line(tag, n, pad));
        s.push('\n');
    }
    s
}

/// `(tag, n)` of a line written by [`numbered_line`] (anything after the number is ignored).
pub fn parse_numbered(line: &str) -> Option<(String, u64)> {
    let head = line.split(' ').next()?;
    let (tag, n) = head.rsplit_once('-')?;
    if n.len() != 7 {
        return None;
    }
    Some((tag.to_owned(), n.parse().ok()?))
}

/// The `detail` every file test starts from: `FilePaths`, a 200 ms scan, a 1 s flush
/// timeout. `TailSizeKB` keeps its default (1024): a test's file present at the first start
/// is smaller than that, or is created once the input runs (and is then read from 0).
pub fn base_detail(paths: &[&Path]) -> Map<String, Value> {
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let v = json!({
        "FilePaths": paths,
        "ScanIntervalMs": 200,
        "FlushTimeoutSecs": 1,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// A pipeline config: one `input_file` with `detail`, `flusher_sls`, 100 ms aggregation.
pub fn file_config(detail: Map<String, Value>) -> String {
    file_config_with(detail, vec![])
}

/// [`file_config`] with `processors`.
pub fn file_config_with(detail: Map<String, Value>, processors: Vec<Value>) -> String {
    json!({
        "global": {"AggregatIntervalMs": 100},
        "inputs": [{"type": "input_file", "detail": Value::Object(detail)}],
        "processors": processors,
        "flushers": [{"type": "flusher_sls", "detail": {}}],
    })
    .to_string()
}

/// `config` with `aggregator_default` limited to `max_log_count` logs per group (with a host
/// that sleeps in each send, this bounds the delivery rate).
pub fn with_small_groups(config: &str, max_log_count: u64) -> String {
    let mut v: Value = serde_json::from_str(config).expect("config JSON");
    v["aggregators"] = json!([
        {"type": "aggregator_default", "detail": {"MaxLogCount": max_log_count}}
    ]);
    v.to_string()
}

/// One log as the host received it, with the tags of its group.
#[derive(Clone, Debug, Default)]
pub struct FileLog {
    /// Group tags.
    pub tags: BTreeMap<String, String>,
    /// Contents.
    pub contents: BTreeMap<String, String>,
}

impl FileLog {
    /// The `content` field (empty when absent).
    pub fn content(&self) -> &str {
        self.contents.get(CONTENT).map(String::as_str).unwrap_or("")
    }

    /// The `__path__` tag (empty when absent).
    pub fn path(&self) -> &str {
        self.tags.get(PATH_TAG).map(String::as_str).unwrap_or("")
    }

    /// `(tag, n)` of the content, when it is a numbered line.
    pub fn numbered(&self) -> Option<(String, u64)> {
        parse_numbered(self.content())
    }
}

/// The last statistics in harness stdout of the buffer of `config`'s flusher whose instance
/// name starts with `flusher` (`flusher_http` → `flusher_http/0/buffer`): counter → value.
pub fn buffer_stats(stdout: &str, config: &str, flusher: &str) -> Option<BTreeMap<String, u64>> {
    parse_harness_logs(stdout, "shennong_log_profile")
        .into_iter()
        .rev()
        .find(|l| {
            l.contents.get("config").map(String::as_str) == Some(config)
                && l.contents
                    .get("plugin")
                    .is_some_and(|p| p.starts_with(flusher) && p.ends_with("/buffer"))
        })
        .map(|l| {
            l.contents
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.parse().ok()?)))
                .collect()
        })
}

/// Logs of `config` in harness stdout (one JSON group per line; a cut last line is skipped).
pub fn parse_harness_logs(stdout: &str, config: &str) -> Vec<FileLog> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["config"] != config {
            continue;
        }
        let tags: BTreeMap<String, String> = v["tags"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        for l in v["logs"].as_array().into_iter().flatten() {
            let contents = l["contents"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            out.push(FileLog {
                tags: tags.clone(),
                contents,
            });
        }
    }
    out
}

/// Logs of the in-process store for `config` (sessions driven through [`crate::Session`]).
pub fn store_logs(config: &str) -> Vec<FileLog> {
    crate::store::groups_for(config)
        .into_iter()
        .flat_map(|g| {
            let tags: BTreeMap<String, String> = g
                .group
                .log_tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect();
            g.logs.into_iter().map(move |l| FileLog {
                tags: tags.clone(),
                contents: l.contents.into_iter().collect(),
            })
        })
        .collect()
}

/// How often each key arrived, and the contents that are not numbered lines.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Copies per key.
    pub counts: BTreeMap<(String, u64), usize>,
    /// Contents that did not parse (first ones kept).
    pub unparsed: Vec<String>,
    /// Logs counted.
    pub total: usize,
}

impl Tally {
    /// Counts the numbered contents of `logs` by `(tag, n)`.
    pub fn of(logs: &[FileLog]) -> Tally {
        Tally::by(logs, |l| l.numbered())
    }

    /// Counts `logs` by `key` (`None`: unparsed).
    pub fn by(logs: &[FileLog], key: impl Fn(&FileLog) -> Option<(String, u64)>) -> Tally {
        let mut t = Tally::default();
        for l in logs {
            t.total += 1;
            match key(l) {
                Some(k) => *t.counts.entry(k).or_default() += 1,
                None => {
                    if t.unparsed.len() < 10 {
                        t.unparsed.push(truncate(l.content(), 120));
                    }
                }
            }
        }
        t
    }

    /// Distinct keys received.
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    /// Whether every key of `expected` arrived at least once.
    pub fn has_all(&self, expected: &BTreeSet<(String, u64)>) -> bool {
        expected.iter().all(|k| self.counts.contains_key(k))
    }

    /// Numbers of `tag` received, sorted, one entry per copy.
    pub fn numbers_of(&self, tag: &str) -> Vec<u64> {
        self.counts
            .iter()
            .filter(|((t, _), _)| t == tag)
            .flat_map(|((_, n), c)| std::iter::repeat_n(*n, *c))
            .collect()
    }

    /// Compares with `expected`: every key exactly once, nothing else. `Err` describes
    /// missing, duplicated and unexpected keys (counts and the first few of each).
    pub fn exactly_once(&self, expected: &BTreeSet<(String, u64)>) -> Result<(), String> {
        let missing: Vec<&(String, u64)> = expected
            .iter()
            .filter(|k| !self.counts.contains_key(*k))
            .collect();
        let dups: Vec<(&(String, u64), &usize)> =
            self.counts.iter().filter(|(_, c)| **c > 1).collect();
        let extra: Vec<&(String, u64)> = self
            .counts
            .keys()
            .filter(|k| !expected.contains(*k))
            .collect();
        if missing.is_empty() && dups.is_empty() && extra.is_empty() && self.unparsed.is_empty() {
            return Ok(());
        }
        Err(format!(
            "expected {} distinct lines exactly once; received {} logs, {} distinct; \
             missing {} (first {:?}); duplicated {} (first, with copies: {:?}); \
             unexpected {} (first {:?}); not numbered lines (first): {:?}",
            expected.len(),
            self.total,
            self.distinct(),
            missing.len(),
            first(&missing, 8),
            dups.len(),
            first(&dups, 8),
            extra.len(),
            first(&extra, 8),
            self.unparsed
        ))
    }

    /// Panics unless [`Tally::exactly_once`] holds for `expected`. The message is
    /// `<what>: <the problem>`, then `context` on the lines after it (nothing when empty),
    /// e.g. the end of the harness's stderr ([`stderr_end`]).
    #[track_caller]
    pub fn assert_exactly_once(
        &self,
        expected: &BTreeSet<(String, u64)>,
        what: &str,
        context: &str,
    ) {
        if let Err(e) = self.exactly_once(expected) {
            if context.is_empty() {
                panic!("{what}: {e}");
            }
            panic!("{what}: {e}\n{context}");
        }
    }

    /// A one-line summary (logs, distinct, duplicated).
    pub fn summary(&self) -> String {
        let dups: usize = self.counts.values().map(|c| c - 1).sum();
        format!(
            "{} logs, {} distinct, {} duplicate copies",
            self.total,
            self.distinct(),
            dups
        )
    }

    /// `<n> lines expected; received <summary>`: a test's report line ([`report`]).
    pub fn summary_for(&self, expected: &BTreeSet<(String, u64)>) -> String {
        format!(
            "{} lines expected; received {}",
            expected.len(),
            self.summary()
        )
    }
}

fn first<T: std::fmt::Debug>(v: &[T], n: usize) -> Vec<&T> {
    v.iter().take(n).collect()
}

/// `s` cut to at most `max` characters (with `...` when cut).
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}...", s.chars().take(max).collect::<String>())
    }
}

/// `(tag, n)` for every `n` of `range`.
pub fn keys(tag: &str, range: std::ops::RangeInclusive<u64>) -> BTreeSet<(String, u64)> {
    range.map(|n| (tag.to_owned(), n)).collect()
}

/// A [`TempDir`] for one test (named after `prefix`), with a `logs` directory in it for the
/// files the input reads; returns both.
pub fn test_dir(prefix: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(prefix);
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("create {}: {e}", logs.display()));
    (dir, logs)
}

/// How long a harness gets to exit after SIGTERM ([`HarnessRun::stop`]) in the file tests.
pub const STOP: Duration = Duration::from_secs(20);

/// How many lines of a harness's stderr a failure message shows ([`stderr_end`]).
pub const STDERR_LINES: usize = 40;

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// The end of a failure message: a line `--- <label> (end) ---` (`label`: e.g. `stderr`,
/// `run 2 stderr`), then the last [`STDERR_LINES`] lines of `stderr`.
pub fn stderr_end(label: &str, stderr: &str) -> String {
    format!("--- {label} (end) ---\n{}", tail(stderr, STDERR_LINES))
}

/// A `host-harness run` of one config file, its output going to files in `dir`.
pub struct HarnessRun {
    child: Option<Child>,
    config: String,
    out: PathBuf,
    err: PathBuf,
    started: Instant,
}

/// What a finished run left.
#[derive(Debug)]
pub struct Finished {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl HarnessRun {
    /// Starts `host-harness run --data-dir DATA ARGS.. CONFIG_FILE` (with a 120 s
    /// `--duration` as a safety net); stdout and stderr go to `<dir>/<label>.out|.err`.
    /// The config name is the file stem.
    pub fn start(dir: &Path, label: &str, data: &Path, config_file: &Path, args: &[&str]) -> Self {
        let out = dir.join(format!("{label}.out"));
        let err = dir.join(format!("{label}.err"));
        let child = Command::new(harness_bin())
            .env("PLUGIN_LIB_DIR", lib_dir())
            .env(
                "PLUGIN_BASE_LOG",
                std::env::var("PLUGIN_BASE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .arg("run")
            .args(["--duration", "120"])
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .arg(config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::from(File::create(&out).expect("create stdout file")))
            .stderr(Stdio::from(File::create(&err).expect("create stderr file")))
            .spawn()
            .expect("start host-harness");
        let config = config_file
            .file_stem()
            .expect("config file has a stem")
            .to_string_lossy()
            .into_owned();
        HarnessRun {
            child: Some(child),
            config,
            out,
            err,
            started: Instant::now(),
        }
    }

    /// Writes `config` to `<dir>/<name>.json` ([`write_config`]) and starts it with `args`
    /// ([`HarnessRun::start`]: label `run`, data directory `<dir>/data`).
    pub fn start_in(dir: &Path, name: &str, config: &str, args: &[&str]) -> Self {
        let config_file = write_config(dir, name, config);
        Self::start(dir, "run", &dir.join("data"), &config_file, args)
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The logs of our config received so far.
    pub fn logs(&self) -> Vec<FileLog> {
        parse_harness_logs(&self.stdout(), &self.config)
    }

    /// The stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// The last `n` lines of stderr, for failure messages.
    pub fn stderr_tail(&self, n: usize) -> String {
        tail(&self.stderr(), n)
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Number of open file descriptors of the process (`/proc/PID/fd`).
    pub fn open_fds(&self) -> Option<usize> {
        let pid = self.pid()?;
        Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
    }

    /// Polls the received logs until `pred` holds or `timeout` passes. Panics with `what`,
    /// `describe(logs)` and the end of stderr on timeout, or when the process exits first.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&[FileLog]) -> bool,
        describe: impl Fn(&[FileLog]) -> String,
    ) -> Vec<FileLog> {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.logs();
            if pred(&logs) {
                return logs;
            }
            if !self.running() {
                let logs = self.logs();
                if pred(&logs) {
                    return logs;
                }
                panic!(
                    "{what}: the harness exited before that ({}); {}\n--- harness stderr (end) ---\n{}",
                    self.child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten())
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                    describe(&logs),
                    self.stderr_tail(60)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: not within {timeout:?}; {}\n--- harness stderr (end) ---\n{}",
                    describe(&logs),
                    self.stderr_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every key of `expected` arrived (see [`HarnessRun::wait_for`]), then
    /// until the count has not changed for `settle` (late duplicates would show).
    pub fn wait_all(
        &mut self,
        expected: &BTreeSet<(String, u64)>,
        timeout: Duration,
        what: &str,
    ) -> Vec<FileLog> {
        self.wait_all_by(expected, timeout, what, |l| l.numbered())
    }

    /// [`HarnessRun::wait_all`] with a key function.
    pub fn wait_all_by(
        &mut self,
        expected: &BTreeSet<(String, u64)>,
        timeout: Duration,
        what: &str,
        key: impl Fn(&FileLog) -> Option<(String, u64)> + Copy,
    ) -> Vec<FileLog> {
        self.wait_for(
            timeout,
            what,
            |logs| Tally::by(logs, key).has_all(expected),
            |logs| {
                let t = Tally::by(logs, key);
                t.exactly_once(expected)
                    .err()
                    .unwrap_or_else(|| t.summary())
            },
        );
        self.settle(Duration::from_millis(600))
    }

    /// Waits until the number of received logs has not changed for `quiet` (at most 10 s).
    pub fn settle(&self, quiet: Duration) -> Vec<FileLog> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = self.logs();
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.logs();
            if now.len() != last.len() {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet || Instant::now() >= deadline {
                return now;
            }
        }
    }

    /// SIGTERM (the harness calls HoldOn(1)), then waits up to `timeout` for the exit.
    ///
    /// # Panics
    /// When the process does not exit in time (it is then killed).
    pub fn stop(mut self, timeout: Duration) -> Finished {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling our own child by pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break None,
            }
        };
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the harness did not exit within {timeout:?} of SIGTERM\n--- stderr (end) ---\n{}",
                self.stderr_tail(60)
            );
        }
        Finished {
            code: status.and_then(|s| s.code()),
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }

    /// Stops the run ([`HarnessRun::stop`] with [`STOP`]), then asserts that `tally` (of
    /// the logs it delivered) counts every key of `expected` exactly once: on failure the
    /// message is `what`, the problem and the end of the run's stderr
    /// ([`Tally::assert_exactly_once`], [`stderr_end`]). Returns what the run left.
    #[track_caller]
    pub fn stop_expecting(
        self,
        tally: &Tally,
        expected: &BTreeSet<(String, u64)>,
        what: &str,
    ) -> Finished {
        let fin = self.stop(STOP);
        tally.assert_exactly_once(expected, what, &stderr_end("stderr", &fin.stderr));
        fin
    }

    /// Waits (up to `timeout`) until every key of `expected` arrived ([`HarnessRun::wait_all`]),
    /// then stops the run and asserts that each arrived exactly once and nothing else did
    /// ([`HarnessRun::stop_expecting`]); `what` names the scenario in the failure messages.
    /// Returns the logs received and their [`Tally`].
    #[track_caller]
    pub fn expect_exactly_once(
        mut self,
        expected: &BTreeSet<(String, u64)>,
        timeout: Duration,
        what: &str,
    ) -> (Vec<FileLog>, Tally) {
        let waiting_for = format!("{what}: the {} lines expected", expected.len());
        let got = self.wait_all(expected, timeout, &waiting_for);
        let tally = Tally::of(&got);
        self.stop_expecting(&tally, expected, what);
        (got, tally)
    }

    /// `kill -9`, then the output it left.
    pub fn kill9(mut self) -> Finished {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
        Finished {
            code: None,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for HarnessRun {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Writes `config` to `<dir>/<name>.json` and returns the path.
pub fn write_config(dir: &Path, name: &str, config: &str) -> PathBuf {
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, config).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

/// Appends `bytes` to `path` in one write (creating the file).
pub fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(bytes)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Truncates `path` to 0 bytes (as copytruncate does), keeping the file (and its inode).
pub fn truncate_file(path: &Path) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(0))
        .unwrap_or_else(|e| panic!("truncate {}: {e}", path.display()));
}

/// Appends numbered lines of `tag` to one file, numbering on from where it stopped.
pub struct Writer {
    /// The tag of the lines.
    pub tag: String,
    /// Padding bytes per line.
    pub pad: usize,
    /// The next number to write.
    pub next: u64,
    /// The file, opened with `O_APPEND` (a truncation makes the next write land at 0).
    pub file: File,
    /// Its path.
    pub path: PathBuf,
}

impl Writer {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path, tag: &str, pad: usize) -> Writer {
        Writer {
            tag: tag.to_owned(),
            pad,
            next: 1,
            file: open_append(path),
            path: path.to_path_buf(),
        }
    }

    /// Writes the next `n` lines in one `write`; returns the last number written.
    pub fn write(&mut self, n: u64) -> u64 {
        let last = self.next + n - 1;
        let s = numbered_lines(&self.tag, self.next..=last, self.pad);
        self.file
            .write_all(s.as_bytes())
            .unwrap_or_else(|e| panic!("write {}: {e}", self.path.display()));
        self.next = last + 1;
        last
    }

    /// Reopens the path (after the file there was renamed away).
    pub fn reopen(&mut self) {
        self.file = open_append(&self.path);
    }

    /// The numbers written so far.
    pub fn written(&self) -> BTreeSet<(String, u64)> {
        keys(&self.tag, 1..=self.next - 1)
    }
}

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// A [`Writer`] on a thread: `batch` lines every `every`, until stopped. Locking it
/// ([`BackgroundWriter::pause`]) pauses it (and gives access to the writer, to reopen).
pub struct BackgroundWriter {
    state: Arc<Mutex<Writer>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl BackgroundWriter {
    /// Starts writing.
    pub fn start(w: Writer, batch: u64, every: Duration) -> BackgroundWriter {
        let state = Arc::new(Mutex::new(w));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                s.lock().unwrap_or_else(|e| e.into_inner()).write(batch);
                std::thread::sleep(every);
            }
        });
        BackgroundWriter {
            state,
            stop,
            handle: Some(handle),
        }
    }

    /// Holds the writer: nothing is written until the guard is dropped.
    pub fn pause(&self) -> MutexGuard<'_, Writer> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the thread; returns every key written.
    pub fn stop(mut self) -> BTreeSet<(String, u64)> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().expect("writer thread");
        }
        self.pause().written()
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Environment variable: when set, the file tests print what they observed on success
/// (run with `--nocapture`); otherwise a passing test prints nothing.
pub const REPORT_ENV: &str = "E2E_FILE_REPORT";

/// Prints `test: msg` to stderr when [`REPORT_ENV`] is set.
pub fn report(test: &str, msg: impl std::fmt::Display) {
    if std::env::var_os(REPORT_ENV).is_some_and(|v| !v.is_empty()) {
        eprintln!("report {test}: {msg}");
    }
}

/// A directory `<parent>/e2e-<prefix>-<pid>-<nanos>`, removed on drop (for a data directory
/// on another filesystem than the temp dir).
pub struct DirIn(PathBuf);

impl DirIn {
    /// Creates it.
    pub fn new(parent: &Path, prefix: &str) -> DirIn {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = parent.join(format!("e2e-{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        DirIn(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DirIn {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The inode of `path`.
pub fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .ino()
}

/// Creates a marker file `path` with one line `ready-0000001 ...` and waits until the run
/// delivered it: the input is running and watching (its first scan is done).
pub fn wait_ready(run: &mut HarnessRun, path: &Path) {
    append(
        path,
        format!("{}\n", numbered_line("ready", 1, 8)).as_bytes(),
    );
    run.wait_for(
        Duration::from_secs(20),
        &format!("the marker line of {} to arrive", path.display()),
        |logs| {
            logs.iter()
                .any(|l| l.content().starts_with("ready-0000001"))
        },
        |logs| format!("{} logs so far", logs.len()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_lines_parse_back() {
        let l = numbered_line("app-x", 42, 10);
        assert_eq!(parse_numbered(&l), Some(("app-x".to_owned(), 42)));
        assert_eq!(l.len(), "app-x-0000042 ".len() + 10);
        assert_eq!(parse_numbered("no number"), None);
        let t = Tally::by(
            &[FileLog {
                tags: BTreeMap::new(),
                contents: [(CONTENT.to_owned(), l)].into_iter().collect(),
            }],
            |l| l.numbered(),
        );
        assert!(t.exactly_once(&keys("app-x", 42..=42)).is_ok());
        assert!(t.exactly_once(&keys("app-x", 41..=42)).is_err());
        t.assert_exactly_once(&keys("app-x", 42..=42), "one line", "context");
    }

    #[test]
    #[should_panic(
        expected = "two lines: expected 2 distinct lines exactly once; received 1 \
                               logs, 1 distinct; missing 1 (first [(\"t\", 1)])"
    )]
    fn assert_exactly_once_names_what_and_the_problem() {
        let log = FileLog {
            tags: BTreeMap::new(),
            contents: [(CONTENT.to_owned(), numbered_line("t", 2, 4))]
                .into_iter()
                .collect(),
        };
        let stderr = (1..=50).map(|i| format!("line {i}\n")).collect::<String>();
        let end = stderr_end("stderr", &stderr);
        assert!(end.starts_with("--- stderr (end) ---\nline 11\n") && end.ends_with("line 50"));
        Tally::of(&[log]).assert_exactly_once(&keys("t", 1..=2), "two lines", &end);
    }
}
