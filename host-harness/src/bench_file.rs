//! `bench --file`: generate a large log file (nginx access-log lines, or Java logs with stack
//! traces), let the base's `input_file` read it from its beginning through the real libraries,
//! and measure until the host has received every record; optionally the same file through
//! Fluent Bit's `tail` → `null` in the same run, for comparison.
//!
//! The file is generated once and kept (with a sidecar `<file>.meta.json` holding its kind,
//! size and record count); later runs with the same kind and `--file-mb` reuse it, so the
//! generator is never part of what is measured.

use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli::BenchOpts;
use crate::footprint::vm_rss_kib;
use crate::host;
use crate::libs::{load_for_command, Flavour, Libs};
use crate::nginx::{civil_from_days, NginxLines};
use crate::rng::SplitMix64;
use crate::run::{data_dir, init_json, PROJECT};

/// Config name (and logstore) of the file bench pipeline.
const CONFIG: &str = "bench_file";
/// `TailSizeKB` of the input: 10 GiB, more than any generated file, so the input reads the
/// file from its beginning.
const TAIL_SIZE_KB: u64 = 10 << 20;
/// `Multiline.StartPattern` of `--multiline`: a record starts with a date.
pub const START_PATTERN: &str = r"\d{4}-\d{2}-\d{2} .*";
/// Bumped whenever the generated content changes, so that older kept files are regenerated.
const GENERATOR_VERSION: u64 = 1;
/// Timestamps of generated records start at 2026-12-01 00:00:00 UTC (fixed: the same options
/// always generate the same file).
pub(crate) const EPOCH_SECS: u64 = 1_796_083_200;
/// Bytes written per `write` call while generating.
const WRITE_CHUNK: usize = 8 << 20;
/// The Fluent Bit next to the repository (`<repo>/../shared/tools/fluent-bit/bin/fluent-bit`).
const DEFAULT_FLUENT_BIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/tools/fluent-bit/bin/fluent-bit"
);

/// What the generated file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One nginx combined access-log line per record (~200 bytes).
    Single,
    /// Java application logs; ~20% of records carry a multi-line stack trace.
    Multiline,
}

impl Kind {
    /// The name used in file names, the sidecar and the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Single => "single",
            Kind::Multiline => "multiline",
        }
    }
}

/// A generated (or reused) log file.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Records in it (lines for [`Kind::Single`], start lines for [`Kind::Multiline`]).
    pub records: u64,
    /// How long generating it took; `None` when an existing file was reused.
    pub generated_in: Option<Duration>,
}

/// The default place of the file: `<temp dir>/plugin-bench-file/<kind>-<mb>MB.log`.
pub fn default_path(kind: Kind, mb: u64) -> PathBuf {
    std::env::temp_dir()
        .join("plugin-bench-file")
        .join(format!("{}-{mb}MB.log", kind.name()))
}

/// The sidecar of `path`: `<path>.meta.json`.
fn sidecar_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".meta.json");
    PathBuf::from(s)
}

/// The sidecar contents describing a file.
fn sidecar_json(kind: Kind, mb: u64, bytes: u64, records: u64) -> serde_json::Value {
    serde_json::json!({
        "kind": kind.name(),
        "file_mb": mb,
        "bytes": bytes,
        "records": records,
        "generator_version": GENERATOR_VERSION,
    })
}

/// The record count of the file at `path` when it was generated for `kind` and `mb` by this
/// generator and still has the size its sidecar records; `None` otherwise.
fn reusable(path: &Path, kind: Kind, mb: u64) -> Option<u64> {
    let text = std::fs::read_to_string(sidecar_path(path)).ok()?;
    let meta: serde_json::Value = serde_json::from_str(&text).ok()?;
    let bytes = meta["bytes"].as_u64()?;
    let records = meta["records"].as_u64()?;
    let same = meta == sidecar_json(kind, mb, bytes, records);
    let len = std::fs::metadata(path).ok()?.len();
    (same && len == bytes).then_some(records)
}

/// Reuses the file at `path` when it fits `kind` and `mb`, else generates it (at least
/// `mb` × 10^6 bytes, whole records only), writing the sidecar last.
///
/// # Errors
/// When the file or its sidecar cannot be written.
pub fn prepare(path: &Path, kind: Kind, mb: u64) -> io::Result<DataFile> {
    if let Some(records) = reusable(path, kind, mb) {
        return Ok(DataFile {
            path: path.to_path_buf(),
            bytes: std::fs::metadata(path)?.len(),
            records,
            generated_in: None,
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let sidecar = sidecar_path(path);
    match std::fs::remove_file(&sidecar) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let t = Instant::now();
    // Written under another name and renamed: an interrupted run never leaves a file that
    // looks complete.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let (bytes, records) = generate(File::create(&tmp)?, kind, mb.saturating_mul(1_000_000))?;
    std::fs::rename(&tmp, path)?;
    let meta = sidecar_json(kind, mb, bytes, records).to_string();
    std::fs::write(&sidecar, meta + "\n")?;
    Ok(DataFile {
        path: path.to_path_buf(),
        bytes,
        records,
        generated_in: Some(t.elapsed()),
    })
}

/// Writes records of `kind` to `out` until at least `min_bytes` are written; returns the bytes
/// and records written. Every record ends with a newline.
///
/// # Errors
/// When writing fails.
pub fn generate<W: io::Write>(out: W, kind: Kind, min_bytes: u64) -> io::Result<(u64, u64)> {
    let mut out = BufWriter::with_capacity(WRITE_CHUNK, out);
    let mut buf = Vec::with_capacity(64 << 10);
    let (mut bytes, mut records) = (0u64, 0u64);
    let mut nginx = NginxLines::new(0x5EED, EPOCH_SECS);
    let mut java = JavaLogs::new(0x5EED, EPOCH_SECS * 1000);
    while bytes < min_bytes {
        buf.clear();
        match kind {
            Kind::Single => {
                buf.extend_from_slice(nginx.line(records).as_bytes());
                buf.push(b'\n');
            }
            Kind::Multiline => java.record(records, &mut buf),
        }
        out.write_all(&buf)?;
        bytes += buf.len() as u64;
        records += 1;
    }
    out.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok((bytes, records))
}

const LEVELS: [&str; 4] = ["INFO", "DEBUG", "WARN", "INFO"];
const CLASSES: [&str; 8] = [
    "order.OrderService",
    "order.OrderController",
    "payment.PaymentGateway",
    "payment.RefundJob",
    "user.SessionManager",
    "user.UserRepository",
    "inventory.StockCache",
    "http.RequestDispatcher",
];
const METHODS: [&str; 8] = [
    "process", "handle", "lookup", "commit", "validate", "invoke", "refresh", "dispatch",
];
const MESSAGES: [&str; 6] = [
    "processed order",
    "cache miss for key",
    "session refreshed for user",
    "payment authorised, amount",
    "stock level below threshold for sku",
    "request completed in ms",
];
const EXCEPTIONS: [&str; 4] = [
    "java.lang.IllegalStateException: order is not in a payable state",
    "java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"name\" is null",
    "java.util.concurrent.TimeoutException: no response from payment gateway after 3000 ms",
    "org.springframework.dao.DataAccessResourceFailureException: unable to acquire JDBC connection",
];
const CAUSES: [&str; 3] = [
    "java.net.SocketTimeoutException: Read timed out",
    "java.io.IOException: Connection reset by peer",
    "java.sql.SQLTransientConnectionException: pool exhausted, request timed out after 30000ms",
];

/// Deterministic Java application logs: `2026-12-01 16:47:36.123 INFO [thread-3]
/// com.example.order.OrderService - message`, and for ~20% of records an `ERROR` line naming
/// an exception followed by 5–30 `\tat ...` frames, sometimes a `Caused by: ...` line with
/// more frames and `\t... N more`. Only first lines start with a date.
pub struct JavaLogs {
    rng: SplitMix64,
    epoch_ms: u64,
}

impl JavaLogs {
    /// A generator seeded with `seed`, timestamps starting at `epoch_ms` (milliseconds).
    pub fn new(seed: u64, epoch_ms: u64) -> Self {
        JavaLogs {
            rng: SplitMix64::new(seed),
            epoch_ms,
        }
    }

    /// Appends record `i` (every line newline-terminated) to `out`.
    pub fn record(&mut self, i: u64, out: &mut Vec<u8>) {
        let r = &mut self.rng;
        let ms = self.epoch_ms + i * 3 + r.below(3);
        let (secs, milli) = (ms / 1000, ms % 1000);
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let s = secs % 86_400;
        let trace = r.below(5) == 0;
        let level = if trace {
            "ERROR"
        } else {
            LEVELS[r.below(LEVELS.len() as u64) as usize]
        };
        let class = CLASSES[r.below(CLASSES.len() as u64) as usize];
        let _ = write!(
            out,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{milli:03} {level} [thread-{}] com.example.{class} - ",
            s / 3600,
            s / 60 % 60,
            s % 60,
            r.below(16),
        );
        if !trace {
            let msg = MESSAGES[r.below(MESSAGES.len() as u64) as usize];
            let _ = writeln!(
                out,
                "{msg} {} (request id {:016x}, tenant t-{})",
                r.below(100_000),
                r.next_u64(),
                r.below(500)
            );
            return;
        }
        let exc = EXCEPTIONS[r.below(EXCEPTIONS.len() as u64) as usize];
        let _ = writeln!(out, "request {:016x} failed: {exc}", r.next_u64());
        let frames = 5 + r.below(26);
        let cause_at = (r.below(3) == 0).then(|| 2 + r.below(frames - 2));
        for f in 0..frames {
            if cause_at == Some(f) {
                let cause = CAUSES[r.below(CAUSES.len() as u64) as usize];
                let _ = writeln!(out, "Caused by: {cause}");
            }
            let class = CLASSES[r.below(CLASSES.len() as u64) as usize];
            let simple = class.rsplit('.').next().unwrap_or(class);
            let method = METHODS[r.below(METHODS.len() as u64) as usize];
            let _ = writeln!(
                out,
                "\tat com.example.{class}.{method}({simple}.java:{})",
                10 + r.below(900)
            );
        }
        if cause_at.is_some() {
            let _ = writeln!(out, "\t... {} more", 3 + r.below(40));
        }
    }
}

/// The pipeline config: `input_file` reading `path` from its beginning (with
/// `Multiline.StartPattern` when `multiline`), `aggregator_default`, `flusher_sls`.
pub fn file_config(path: &Path, multiline: bool, aggregate_ms: u64) -> String {
    let mut detail = serde_json::json!({
        "FilePaths": [path.to_string_lossy()],
        "TailSizeKB": TAIL_SIZE_KB,
        "FlushTimeoutSecs": 1,
    });
    if multiline {
        detail["Multiline"] = serde_json::json!({ "StartPattern": START_PATTERN });
    }
    serde_json::json!({
        "global": { "AggregatIntervalMs": aggregate_ms },
        "inputs": [ { "type": "input_file", "detail": detail } ],
        "aggregators": [ { "type": "aggregator_default" } ],
        "flushers": [ { "type": "flusher_sls" } ],
    })
    .to_string()
}

/// Exits the process unless disarmed (dropped) within `after`: a call into the base that never
/// returns must not hang the caller forever.
pub(crate) struct Watchdog {
    /// Dropping it wakes the watchdog thread, which then returns.
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    pub(crate) fn arm(after: Duration, what: &'static str) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if rx.recv_timeout(after) == Err(mpsc::RecvTimeoutError::Timeout) {
                eprintln!(
                    "harness: error: {what} still running after {:.0} s; exiting",
                    after.as_secs_f64()
                );
                std::process::exit(1);
            }
        });
        Watchdog { _disarm: tx }
    }
}

/// Reads `path` to its end (not measured), so that both readers find it in the page cache;
/// returns how long that took.
///
/// # Errors
/// When the file cannot be read.
pub(crate) fn warm_page_cache(path: &Path) -> io::Result<Duration> {
    use std::io::Read as _;
    let t = Instant::now();
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(t.elapsed())
}

/// VmHWM (peak VmRSS, KiB) from `/proc/self/status`; `None` when unreadable.
pub(crate) fn vm_hwm_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
}

/// Resets VmHWM to the current RSS (`/proc/self/clear_refs` = 5); `false` when not possible.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU time over a part of the run.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Cpu {
    pub(crate) user_s: f64,
    pub(crate) sys_s: f64,
}

impl Cpu {
    pub(crate) fn total(self) -> f64 {
        self.user_s + self.sys_s
    }

    pub(crate) fn minus(self, earlier: Cpu) -> Cpu {
        Cpu {
            user_s: self.user_s - earlier.user_s,
            sys_s: self.sys_s - earlier.sys_s,
        }
    }
}

/// `getrusage(who)`: user and system CPU time, and ru_maxrss (KiB).
pub(crate) fn usage(who: libc::c_int) -> (Cpu, u64) {
    // SAFETY: getrusage fills the zeroed struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = Cpu {
        user_s: secs(ru.ru_utime),
        sys_s: secs(ru.ru_stime),
    };
    (cpu, u64::try_from(ru.ru_maxrss).unwrap_or(0))
}

/// What our side of the run measured.
#[derive(Debug, Default)]
struct Ours {
    /// Why the run did not complete (loading failed, timed out, wrong count).
    error: Option<String>,
    wall_s: f64,
    /// CPU of the whole process (every thread: the base's and the harness's).
    cpu: Cpu,
    /// Peak RSS during the run (VmHWM after a reset), or the process's ru_maxrss.
    peak_rss_kib: u64,
    /// Whether `peak_rss_kib` covers the run only.
    peak_is_run_only: bool,
    rss_before_kib: u64,
    rss_after_kib: u64,
    stats: host::BenchStats,
    /// Logs received up to the end of the timed part.
    received_timed: u64,
    /// Whether the timed part ran (the config loaded).
    measured: bool,
    holdon_ms: u64,
}

/// Loads the file config, resumes and waits for `expect` logs; times it.
fn run_ours(o: &BenchOpts, libs: &Libs, config: &str, dir: &Path, expect: u64) -> Ours {
    let mut r = Ours::default();
    let rc = libs.init_v2(&init_json(dir));
    if rc != 0 {
        r.error = Some(format!("InitPluginBaseV2 returned {rc}"));
        return r;
    }
    let _watchdog = Watchdog::arm(o.timeout + Duration::from_secs(10), "the file bench");
    r.peak_is_run_only = reset_peak_rss();
    r.rss_before_kib = vm_rss_kib();
    let (cpu0, _) = usage(libc::RUSAGE_SELF);
    let t0 = Instant::now();
    if libs.load_config(PROJECT, CONFIG, CONFIG, 1, config) != 0 {
        eprintln!("harness: the file bench config: {config}");
        r.error = Some("LoadConfig failed (the base logged why, above)".to_string());
        return r;
    }
    libs.resume();
    let mut timed_out = false;
    while host::bench_stats().logs < expect {
        if t0.elapsed() >= o.timeout {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    r.wall_s = t0.elapsed().as_secs_f64();
    r.measured = true;
    let (cpu1, maxrss_kib) = usage(libc::RUSAGE_SELF);
    r.cpu = cpu1.minus(cpu0);
    r.rss_after_kib = vm_rss_kib();
    r.peak_rss_kib = match vm_hwm_kib() {
        Some(k) if r.peak_is_run_only => k,
        _ => maxrss_kib,
    };
    r.received_timed = host::bench_stats().logs;
    let t = Instant::now();
    libs.hold_on(1);
    r.holdon_ms = t.elapsed().as_millis() as u64;
    // Counted after HoldOn(1): logs sent twice would show here.
    r.stats = host::bench_stats();
    r.error = if timed_out {
        Some(format!(
            "timed out after {:.1} s: the host received {} of {expect} logs",
            o.timeout.as_secs_f64(),
            r.received_timed
        ))
    } else if r.stats.logs != expect {
        Some(format!(
            "the host received {} logs, expected exactly {expect}",
            r.stats.logs
        ))
    } else if r.stats.bad_groups > 0 {
        Some(format!("{} groups did not decode", r.stats.bad_groups))
    } else {
        None
    };
    r
}

/// The Fluent Bit to run: `given`, else `$FLUENT_BIT_BIN`, else the one next to the
/// repository; canonical when it exists.
pub fn fluent_bit_path(given: Option<&Path>) -> PathBuf {
    let p = match (given, std::env::var_os("FLUENT_BIT_BIN")) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_FLUENT_BIT),
    };
    std::fs::canonicalize(&p).unwrap_or(p)
}

/// The arguments Fluent Bit is run with: `tail` from the head of `file` to its end (no
/// offset database), `-p multiline.parser=java` when `multiline`, into `null`.
///
/// `file_cache_advise=off`: by default `tail` calls `posix_fadvise(POSIX_FADV_DONTNEED)` on
/// the file, so it reads it from the disk rather than the page cache (3x its CPU seconds on a
/// 1 GB file here) and leaves it cold for the next reader; ours reads a warm page cache.
pub fn fluent_bit_args(file: &Path, multiline: bool) -> Vec<String> {
    let mut a: Vec<String> = ["-q", "-i", "tail", "-p"]
        .map(String::from)
        .into_iter()
        .collect();
    a.push(format!("path={}", file.display()));
    for p in [
        "read_from_head=true",
        "exit_on_eof=true",
        "file_cache_advise=off",
    ] {
        a.extend(["-p".to_string(), p.to_string()]);
    }
    if multiline {
        a.extend(["-p".to_string(), "multiline.parser=java".to_string()]);
    }
    a.extend(["-o", "null", "-f", "1"].map(String::from));
    a
}

/// What the Fluent Bit child measured.
#[derive(Debug, Default)]
struct FluentBit {
    path: PathBuf,
    version: String,
    args: Vec<String>,
    /// Why its figures cannot be trusted (did not start, killed at the timeout, failed before
    /// reading the whole file).
    error: Option<String>,
    /// A failure after it had read the whole file (its figures stand).
    warning: Option<String>,
    /// Whether it ran to its exit (else it did not start or was killed at the timeout).
    exited: bool,
    exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    signal: Option<i32>,
    /// The largest offset of its descriptor of the file seen while it ran (polled from
    /// `/proc/<pid>/fdinfo`).
    read_offset: u64,
    wall_s: f64,
    cpu: Cpu,
    peak_rss_kib: u64,
}

/// Finds the descriptor of `file` in process `pid` (trying `known` first) and its offset.
fn fd_offset(pid: u32, file: &Path, known: &mut Option<String>) -> Option<u64> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let is_file = |fd: &str| std::fs::read_link(proc.join("fd").join(fd)).is_ok_and(|l| l == file);
    if !known.as_deref().is_some_and(is_file) {
        *known = std::fs::read_dir(proc.join("fd"))
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|fd| is_file(fd));
    }
    let info = std::fs::read_to_string(proc.join("fdinfo").join(known.as_deref()?)).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("pos:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs Fluent Bit on `file` (`bytes` long, an absolute path) as a child and measures it: its
/// CPU from the RUSAGE_CHILDREN delta around the wait (it is the only child waited for in
/// between), how far it read from its file descriptor's offset, polled every 10 ms.
fn run_fluent_bit(
    path: PathBuf,
    file: &Path,
    bytes: u64,
    multiline: bool,
    timeout: Duration,
    log: &Path,
) -> FluentBit {
    let mut fb = FluentBit {
        args: fluent_bit_args(file, multiline),
        ..FluentBit::default()
    };
    fb.version = Command::new(&path)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let stderr = match File::create(log) {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    };
    let (cpu0, _) = usage(libc::RUSAGE_CHILDREN);
    let t0 = Instant::now();
    let child = Command::new(&path)
        .args(&fb.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn();
    fb.path = path;
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            fb.error = Some(format!("cannot start {}: {e}", fb.path.display()));
            return fb;
        }
    };
    let mut fd = None;
    let status = loop {
        if let Some(pos) = fd_offset(child.id(), file, &mut fd) {
            fb.read_offset = fb.read_offset.max(pos);
        }
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if t0.elapsed() < timeout => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    fb.wall_s = t0.elapsed().as_secs_f64();
    // RUSAGE_CHILDREN covers the children waited for: the version query and this run;
    // ru_maxrss is the largest of them, this run.
    let (cpu1, maxrss) = usage(libc::RUSAGE_CHILDREN);
    fb.cpu = cpu1.minus(cpu0);
    fb.peak_rss_kib = maxrss;
    let Some(status) = status else {
        fb.error = Some(format!(
            "Fluent Bit did not exit within {:.0} s (killed; it had read {} of {bytes} bytes)",
            timeout.as_secs_f64(),
            fb.read_offset
        ));
        return fb;
    };
    use std::os::unix::process::ExitStatusExt as _;
    fb.exited = true;
    fb.exit_code = status.code();
    fb.signal = status.signal();
    if !status.success() {
        let output = std::fs::read_to_string(log).unwrap_or_default();
        let first = output.lines().next().unwrap_or_default();
        let msg = format!("Fluent Bit exited with {status}: {first}");
        if fb.read_offset >= bytes {
            fb.warning = Some(format!("{msg} (after reading the whole file)"));
        } else {
            fb.error = Some(format!("{msg} (after {} of {bytes} bytes)", fb.read_offset));
        }
    }
    fb
}

/// Runs `bench --file`; returns the exit code.
pub fn run(o: BenchOpts) -> i32 {
    let kind = if o.multiline {
        Kind::Multiline
    } else {
        Kind::Single
    };
    let path = o
        .keep_file
        .clone()
        .unwrap_or_else(|| default_path(kind, o.file_mb));
    let file = match prepare(&path, kind, o.file_mb) {
        // Absolute: Fluent Bit's descriptor of it is recognised by this path.
        Ok(f) => DataFile {
            path: std::fs::canonicalize(&f.path).unwrap_or(f.path),
            ..f
        },
        Err(e) => {
            eprintln!("harness: error: cannot write {}: {e}", path.display());
            return 1;
        }
    };
    if !o.json {
        match file.generated_in {
            Some(d) => eprintln!(
                "harness: generated {} ({:.1} MB, {} {} records) in {:.2} s",
                file.path.display(),
                file.bytes as f64 / 1e6,
                file.records,
                kind.name(),
                d.as_secs_f64()
            ),
            None => eprintln!(
                "harness: reusing {} ({:.1} MB, {} {} records)",
                file.path.display(),
                file.bytes as f64 / 1e6,
                file.records,
                kind.name()
            ),
        }
    }
    match warm_page_cache(&file.path) {
        Ok(d) if !o.json => eprintln!(
            "harness: read it once into the page cache in {:.2} s (not measured)",
            d.as_secs_f64()
        ),
        Ok(_) => {}
        Err(e) => {
            eprintln!("harness: error: cannot read {}: {e}", file.path.display());
            return 1;
        }
    }
    host::install_bench(CONFIG, o.verify);
    let Some(libs) = load_for_command(o.lib_dir.as_deref(), Flavour::Logtail) else {
        return 2;
    };
    let (dir, remove_dir) = match data_dir(o.data_dir.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("harness: error: {e}");
            return 1;
        }
    };
    let config = file_config(&file.path, o.multiline, o.aggregate_ms);
    let ours = run_ours(&o, &libs, &config, &dir, file.records);
    let fb = o.fluent_bit.as_ref().map(|given| {
        run_fluent_bit(
            fluent_bit_path(given.as_deref()),
            &file.path,
            file.bytes,
            o.multiline,
            o.timeout,
            &dir.join("fluent-bit.stderr"),
        )
    });
    if remove_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let figures = report(&file, kind, &ours, fb.as_ref());
    if o.json {
        println!("{figures}");
    } else {
        print_table(&figures);
    }
    let mut code = 0;
    for e in [
        ours.error.as_ref(),
        fb.as_ref().and_then(|f| f.error.as_ref()),
    ]
    .into_iter()
    .flatten()
    {
        eprintln!("harness: error: {e}");
        code = 1;
    }
    if let Some(w) = fb.as_ref().and_then(|f| f.warning.as_ref()) {
        eprintln!("harness: warning: {w}");
    }
    code
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

pub(crate) fn mib(kib: u64) -> f64 {
    round(kib as f64 / 1024.0, 1)
}

/// `mb / secs`, or null when nothing was measured.
fn per(mb: f64, secs: f64) -> serde_json::Value {
    if secs > 0.0 {
        serde_json::json!(round(mb / secs, 1))
    } else {
        serde_json::Value::Null
    }
}

/// The figures of a run as one JSON object (what `--json` prints). Figures that were not
/// measured (the config did not load, Fluent Bit did not run) are null.
fn report(file: &DataFile, kind: Kind, ours: &Ours, fb: Option<&FluentBit>) -> serde_json::Value {
    use serde_json::{json, Value};
    let mb = file.bytes as f64 / 1e6;
    let m = ours.measured;
    let when = |ok: bool, v: Value| if ok { v } else { Value::Null };
    let fb_json = fb.map(|f| {
        let ran = f.exited;
        json!({
            "path": f.path.to_string_lossy(),
            "version": f.version,
            "args": f.args,
            "exit_code": f.exit_code,
            "signal": f.signal,
            "read_bytes": f.read_offset,
            "wall_s": when(ran, json!(round(f.wall_s, 3))),
            "cpu_s": when(ran, json!(round(f.cpu.total(), 3))),
            "user_s": when(ran, json!(round(f.cpu.user_s, 3))),
            "sys_s": when(ran, json!(round(f.cpu.sys_s, 3))),
            "mb_per_cpu_s": when(ran, per(mb, f.cpu.total())),
            "mb_per_s": when(ran, per(mb, f.wall_s)),
            "peak_rss_mib": when(ran, json!(mib(f.peak_rss_kib))),
            "error": f.error,
            "warning": f.warning,
        })
    });
    let ratio = match fb {
        Some(f) if ours.error.is_none() && f.error.is_none() && ours.cpu.total() > 0.0 => {
            json!(round(f.cpu.total() / ours.cpu.total(), 2))
        }
        _ => Value::Null,
    };
    let growth = (ours.rss_after_kib as f64 - ours.rss_before_kib as f64) / 1024.0;
    json!({
        "bench": "file",
        "kind": kind.name(),
        "file": file.path.to_string_lossy(),
        "file_mb": round(mb, 3),
        "generated": file.generated_in.is_some(),
        "generate_s": file.generated_in.map(|d| round(d.as_secs_f64(), 2)),
        "expected_logs": file.records,
        "received_logs": ours.stats.logs,
        "received_groups": ours.stats.groups,
        "bad_groups": ours.stats.bad_groups,
        "wall_s": when(m, json!(round(ours.wall_s, 3))),
        "cpu_s": when(m, json!(round(ours.cpu.total(), 3))),
        "user_s": when(m, json!(round(ours.cpu.user_s, 3))),
        "sys_s": when(m, json!(round(ours.cpu.sys_s, 3))),
        "mb_per_cpu_s": when(m, per(mb, ours.cpu.total())),
        "mb_per_s": when(m, per(mb, ours.wall_s)),
        "peak_rss_mib": when(m, json!(mib(ours.peak_rss_kib))),
        "peak_rss_is_run_only": ours.peak_is_run_only,
        "rss_before_mib": when(m, json!(mib(ours.rss_before_kib))),
        "rss_after_mib": when(m, json!(mib(ours.rss_after_kib))),
        "rss_growth_mib": when(m, json!(round(growth, 1))),
        "holdon_ms": when(m, json!(ours.holdon_ms)),
        "error": ours.error,
        "fluent_bit": fb_json,
        "ratio_mb_per_cpu_s": ratio,
    })
}

/// Prints the figures of [`report`] as a table (`-` for what was not measured).
fn print_table(f: &serde_json::Value) {
    let g = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    println!(
        "file:                   {} ({} MB, {} {} records{})",
        g(&f["file"]),
        g(&f["file_mb"]),
        g(&f["expected_logs"]),
        g(&f["kind"]),
        match f["generate_s"].as_f64() {
            Some(s) => format!(", generated in {s} s"),
            None => ", reused".to_string(),
        }
    );
    if let Some(e) = f["error"].as_str() {
        println!("ours:                   FAILED: {e}");
    }
    println!(
        "ours: wall / cpu:       {} s / {} s (user {} + sys {}, whole process)",
        g(&f["wall_s"]),
        g(&f["cpu_s"]),
        g(&f["user_s"]),
        g(&f["sys_s"])
    );
    println!(
        "ours: throughput:       {} MB per cpu-second, {} MB/s",
        g(&f["mb_per_cpu_s"]),
        g(&f["mb_per_s"])
    );
    println!(
        "ours: RSS:              peak {} MiB{}; {} -> {} MiB over the run ({} MiB)",
        g(&f["peak_rss_mib"]),
        if f["peak_rss_is_run_only"] == true {
            " during the run"
        } else {
            " (process lifetime)"
        },
        g(&f["rss_before_mib"]),
        g(&f["rss_after_mib"]),
        g(&f["rss_growth_mib"])
    );
    println!(
        "ours: received:         {} of {} logs in {} groups, {} bad groups; HoldOn(1) {} ms",
        g(&f["received_logs"]),
        g(&f["expected_logs"]),
        g(&f["received_groups"]),
        g(&f["bad_groups"]),
        g(&f["holdon_ms"])
    );
    let fb = &f["fluent_bit"];
    if fb.is_null() {
        return;
    }
    println!(
        "fluent bit:             {} ({})",
        g(&fb["path"]),
        g(&fb["version"])
    );
    if let Some(e) = fb["error"].as_str() {
        println!("fluent bit:             FAILED: {e}");
    }
    if let Some(w) = fb["warning"].as_str() {
        println!("fluent bit:             warning: {w}");
    }
    println!(
        "fluent bit: wall / cpu: {} s / {} s (user {} + sys {}), peak RSS {} MiB",
        g(&fb["wall_s"]),
        g(&fb["cpu_s"]),
        g(&fb["user_s"]),
        g(&fb["sys_s"]),
        g(&fb["peak_rss_mib"])
    );
    println!(
        "fluent bit: throughput: {} MB per cpu-second, {} MB/s",
        g(&fb["mb_per_cpu_s"]),
        g(&fb["mb_per_s"])
    );
    println!(
        "ours / fluent bit:      {}x MB per cpu-second",
        g(&f["ratio_mb_per_cpu_s"])
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_file_is_whole_nginx_lines() {
        let mut out = Vec::new();
        let (bytes, records) = generate(&mut out, Kind::Single, 100_000).unwrap();
        assert_eq!(bytes, out.len() as u64);
        assert!((100_000..100_400).contains(&bytes), "{bytes}");
        assert_eq!(out.last(), Some(&b'\n'));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count() as u64, records);
        let avg = bytes / records;
        assert!((150..=250).contains(&avg), "{avg}");
        assert!(text.starts_with(|c: char| c.is_ascii_digit()));
    }

    #[test]
    fn multiline_records_start_with_a_date_and_only_there() {
        let mut out = Vec::new();
        let (bytes, records) = generate(&mut out, Kind::Multiline, 2_000_000).unwrap();
        assert_eq!(bytes, out.len() as u64);
        let text = String::from_utf8(out).unwrap();
        let start = regex_lite_start;
        let starts = text.lines().filter(|l| start(l)).count() as u64;
        assert_eq!(starts, records);
        let traces = text.lines().filter(|l| l.contains(" ERROR ")).count() as f64;
        let share = traces / records as f64;
        assert!((0.17..0.23).contains(&share), "{share}");
        assert!(text.lines().any(|l| l.starts_with("Caused by: ")));
        assert!(text.lines().any(|l| l.starts_with("\t... ")));
        // Every trace has 5..=30 frames.
        for block in text.split("ERROR").skip(1) {
            let frames = block
                .lines()
                .take_while(|l| !start(l))
                .filter(|l| l.starts_with("\tat "))
                .count();
            assert!((5..=30).contains(&frames), "{frames}: {block}");
        }
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("2026-12-01 00:00:00."), "{first}");
        assert!(
            first.contains(" [thread-") && first.contains(" com.example."),
            "{first}"
        );
    }

    /// `\d{4}-\d{2}-\d{2} ` at the start of a line (what START_PATTERN matches).
    fn regex_lite_start(l: &str) -> bool {
        let b = l.as_bytes();
        b.len() > 11
            && [0, 1, 2, 3, 5, 6, 8, 9]
                .iter()
                .all(|&i| b[i].is_ascii_digit())
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b' '
    }

    #[test]
    fn generated_files_are_reused_only_when_they_fit() {
        let dir = std::env::temp_dir().join(format!("bench-file-unit-{}", std::process::id()));
        let path = dir.join("f.log");
        let a = prepare(&path, Kind::Single, 1).unwrap();
        assert!(a.generated_in.is_some() && a.bytes >= 1_000_000);
        let b = prepare(&path, Kind::Single, 1).unwrap();
        assert_eq!(
            (b.generated_in, b.bytes, b.records),
            (None, a.bytes, a.records)
        );
        // Another kind, or a file that changed size, is generated anew.
        let c = prepare(&path, Kind::Multiline, 1).unwrap();
        assert!(c.generated_in.is_some());
        std::fs::write(&path, "x\n").unwrap();
        let d = prepare(&path, Kind::Multiline, 1).unwrap();
        assert!(d.generated_in.is_some());
        assert_eq!((d.bytes, d.records), (c.bytes, c.records));
        assert!(!dir.join("f.log.partial").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_and_fluent_bit_arguments() {
        let v: serde_json::Value =
            serde_json::from_str(&file_config(Path::new("/t/a.log"), true, 100)).unwrap();
        let d = &v["inputs"][0]["detail"];
        assert_eq!(v["inputs"][0]["type"], "input_file");
        assert_eq!(d["FilePaths"][0], "/t/a.log");
        assert_eq!(d["TailSizeKB"], 10_485_760);
        assert_eq!(d["FlushTimeoutSecs"], 1);
        assert_eq!(d["Multiline"]["StartPattern"], r"\d{4}-\d{2}-\d{2} .*");
        assert_eq!(v["aggregators"][0]["type"], "aggregator_default");
        assert_eq!(v["flushers"][0]["type"], "flusher_sls");
        let v: serde_json::Value =
            serde_json::from_str(&file_config(Path::new("/t/a.log"), false, 100)).unwrap();
        assert!(v["inputs"][0]["detail"].get("Multiline").is_none());
        let a = fluent_bit_args(Path::new("/t/a.log"), true).join(" ");
        assert_eq!(
            a,
            "-q -i tail -p path=/t/a.log -p read_from_head=true -p exit_on_eof=true \
             -p file_cache_advise=off -p multiline.parser=java -o null -f 1"
        );
        assert!(!fluent_bit_args(Path::new("/t/a.log"), false)
            .join(" ")
            .contains("multiline"));
        assert_eq!(
            fluent_bit_path(Some(Path::new("/x/fb"))),
            Path::new("/x/fb")
        );
    }
}
