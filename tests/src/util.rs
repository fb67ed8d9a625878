//! Paths, temporary directories, waiting with a deadline, RSS, subprocesses with a deadline.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::libs;

/// The workspace root (`<CARGO_MANIFEST_DIR>/..`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where `libPluginAdapter.so`, `libPluginBase.so` and `host-harness` are: env
/// `PLUGIN_LIB_DIR` as it is, else the output of the build of the current tree that the
/// first call of the process runs (see [`crate::libs`]).
///
/// # Panics
/// When that build fails.
pub fn lib_dir() -> PathBuf {
    match libs::override_dir() {
        Some(d) => d,
        None => libs::built().dir.clone(),
    }
}

/// A Fluent Bit plugin built from the current tree (`libpluginrt_fbout.so` or
/// `libpluginrt_fbin.so`), or the file of that name in `PLUGIN_LIB_DIR`.
///
/// # Panics
/// When the build fails.
pub fn fluent_bit_plugin(output: bool) -> PathBuf {
    let file = if output {
        "libpluginrt_fbout.so"
    } else {
        "libpluginrt_fbin.so"
    };
    match libs::override_dir() {
        Some(d) => d.join(file),
        None if output => libs::built().fb_output.clone(),
        None => libs::built().fb_input.clone(),
    }
}

/// The real Fluent Bit to test the plugins in: `$FLUENT_BIT_BIN`, else
/// `<repo>/../shared/tools/fluent-bit/bin/fluent-bit`; `None` when it is absent.
pub fn fluent_bit_bin() -> Option<PathBuf> {
    let p = match std::env::var_os("FLUENT_BIT_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join("../shared/tools/fluent-bit/bin/fluent-bit"),
    };
    p.is_file().then_some(p)
}

/// [`fluent_bit_bin`], saying on stderr that the test is skipped when there is none.
pub fn fluent_bit_or_skip() -> Option<PathBuf> {
    let bin = fluent_bit_bin();
    if bin.is_none() {
        eprintln!(
            "skipped: no Fluent Bit at ../shared/tools/fluent-bit/bin/fluent-bit (set FLUENT_BIT_BIN)"
        );
    }
    bin
}

/// The `host-harness` binary next to the libraries of [`lib_dir`].
///
/// # Panics
/// When the build fails, or `PLUGIN_LIB_DIR` has no `host-harness`.
pub fn harness_bin() -> PathBuf {
    let Some(dir) = libs::override_dir() else {
        return libs::built().harness.clone();
    };
    let p = dir.join("host-harness");
    assert!(
        p.exists(),
        "{} does not exist ({}={} names a directory without the harness)",
        p.display(),
        libs::LIB_DIR_ENV,
        dir.display()
    );
    p
}

/// A directory under `std::env::temp_dir()`, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl TempDir {
    /// Creates `e2e-<prefix>-<pid>-<nanos>-<seq>`.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new(prefix: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "e2e-{prefix}-{}-{nanos}-{}",
            std::process::id(),
            TEMP_SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Polls `pred` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `value()` has not changed for `quiet` (or `timeout` passes); returns the last value.
pub fn wait_stable<T: PartialEq>(
    quiet: Duration,
    timeout: Duration,
    mut value: impl FnMut() -> T,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut last = value();
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let v = value();
        if v != last {
            last = v;
            since = Instant::now();
        } else if since.elapsed() >= quiet || Instant::now() >= deadline {
            return last;
        }
    }
}

/// `VmRSS` of this process in KiB, from `/proc/self/status`.
pub fn vm_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Result of [`run_with_timeout`].
#[derive(Debug)]
pub struct RunOutput {
    /// Exit status, `None` when killed at the deadline.
    pub status: Option<ExitStatus>,
    /// Captured stdout (lossy UTF-8).
    pub stdout: String,
    /// Captured stderr (lossy UTF-8).
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl RunOutput {
    /// Exit code, `None` when killed or ended by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// stdout and stderr together, for searching and for failure messages.
    pub fn all_output(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with piped output; kills it (by its pid) when it outlives `timeout`.
///
/// # Panics
/// When the command cannot be spawned.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> RunOutput {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    RunOutput {
        status,
        stdout,
        stderr,
        elapsed: start.elapsed(),
    }
}

/// Environment variable that tells a test function it runs as the child of
/// [`run_test_in_child`] (its value names the role).
pub const CHILD_ROLE: &str = "E2E_CHILD_ROLE";

/// The role given by [`run_test_in_child`], when this process is such a child.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok().filter(|r| !r.is_empty())
}

/// Runs test `name` of the current test binary alone in a new process, with
/// [`CHILD_ROLE`]` = role` and `env` set: for scenarios that need a second host process
/// (a restart after exit), each with its own base. The child test returns at once unless it
/// finds its role. The child loads the libraries of this process ([`lib_dir`], passed as
/// `PLUGIN_LIB_DIR` unless `env` sets it) and builds nothing.
pub fn run_test_in_child(
    name: &str,
    role: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> RunOutput {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, role)
        .env(libs::LIB_DIR_ENV, lib_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(&mut cmd, timeout)
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}
