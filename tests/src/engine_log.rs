//! The log of the loaded base: captured in a file, shown only when a test fails.
//!
//! `libPluginBase.so` logs through its own `tracing` subscriber (filter `PLUGIN_BASE_LOG`,
//! destination `PLUGIN_BASE_LOG_FILE`, else stderr). Its threads are not the test's, so
//! libtest cannot capture what it writes to stderr. When the first test of a process loads
//! the libraries ([`crate::ffi::host`]), [`route`] therefore sends that log to
//!
//! ```text
//! <target-dir>/e2e-logs/<test binary name>.log      (emptied when the process starts)
//! ```
//!
//! at level `info`, and installs a panic hook in the test process that, after the usual
//! panic message, prints the end of that file ([`TAIL_LINES`] lines, with the path of the
//! whole file). The hook runs on the panicking thread, so for a failing test the log is part
//! of that test's captured output, and libtest shows it with the failure; a test that passes
//! shows nothing. Child processes started with [`crate::util::run_test_in_child`] inherit
//! both variables and append to the same file (their own hook does not print it: the parent
//! shows it when it fails on the child's result).
//!
//! A `libPluginBase.so` from `PLUGIN_LIB_DIR` that predates `PLUGIN_BASE_LOG_FILE` (its file
//! does not contain the name) would log to stderr: its log is off instead.
//!
//! Overrides:
//! - `PLUGIN_BASE_LOG=LEVEL` alone: the base logs to stderr, live, as in production
//!   (nothing is captured);
//! - `PLUGIN_BASE_LOG_FILE=PATH` (with or without `PLUGIN_BASE_LOG`, default `info`): that
//!   file is used (and not emptied) and its end is shown for a failure.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::libs::{override_dir, Layout};
use crate::util::child_role;

/// The filter of the base's log.
pub const FILTER_ENV: &str = "PLUGIN_BASE_LOG";
/// The file the base appends its log to instead of stderr.
pub const FILE_ENV: &str = "PLUGIN_BASE_LOG_FILE";
/// Level of the captured log.
pub const CAPTURE_LEVEL: &str = "info";
/// How many lines of the end of the log a failure shows.
pub const TAIL_LINES: usize = 200;

static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
/// How far earlier failures of this process have shown the log (to show each line once).
static SHOWN: AtomicU64 = AtomicU64::new(0);

/// Routes the base's log before the base is loaded (see the [module docs](self)); once per
/// process. Returns the file the log goes to, `None` when it goes to stderr.
pub fn route(lib_dir: &Path) -> Option<&'static Path> {
    FILE.get_or_init(|| {
        let file = choose(lib_dir);
        if let Some(f) = &file {
            if child_role().is_none() {
                install_hook(f.clone());
            }
        }
        file
    })
    .as_deref()
}

/// The captured log file of this process, when [`route`] chose one.
pub fn file() -> Option<&'static Path> {
    FILE.get().and_then(|f| f.as_deref())
}

fn choose(lib_dir: &Path) -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(f) = var(FILE_ENV) {
        if var(FILTER_ENV).is_none() {
            std::env::set_var(FILTER_ENV, CAPTURE_LEVEL);
        }
        return Some(PathBuf::from(f));
    }
    if var(FILTER_ENV).is_some() {
        return None;
    }
    if override_dir().is_some() && !knows_the_file_variable(&lib_dir.join("libPluginBase.so")) {
        std::env::set_var(FILTER_ENV, "off");
        return None;
    }
    let path = default_path();
    let made = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, ""));
    match made {
        Ok(()) => {
            std::env::set_var(FILTER_ENV, CAPTURE_LEVEL);
            std::env::set_var(FILE_ENV, &path);
            Some(path)
        }
        Err(e) => {
            // Nowhere to capture: stay quiet rather than flood the output of passing tests.
            eprintln!(
                "e2e: cannot create {} ({e}); the base's log is off",
                path.display()
            );
            std::env::set_var(FILTER_ENV, "off");
            None
        }
    }
}

/// Whether the library at `so` reads `PLUGIN_BASE_LOG_FILE` (its file contains the name).
fn knows_the_file_variable(so: &Path) -> bool {
    let needle = FILE_ENV.as_bytes();
    std::fs::read(so).is_ok_and(|b| b.windows(needle.len()).any(|w| w[0] == b'P' && w == needle))
}

/// `<target-dir>/e2e-logs/<test binary name without cargo's hash>.log`.
fn default_path() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(Path::file_stem)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "e2e".into());
    let name = match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name.to_owned()
        }
        _ => stem,
    };
    Layout::current()
        .target_dir
        .join("e2e-logs")
        .join(format!("{name}.log"))
}

fn install_hook(path: PathBuf) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        eprint!("{}", tail_since_last_shown(&path));
    }));
}

/// The end of the log not shown yet (at most [`TAIL_LINES`] lines), framed, or `""`.
fn tail_since_last_shown(path: &Path) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let end = f.seek(SeekFrom::End(0)).unwrap_or(0);
    let from = SHOWN.fetch_max(end, Ordering::SeqCst).min(end);
    if from == end {
        return String::new();
    }
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.take(end - from).read_to_end(&mut bytes).is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let skipped = lines.len().saturating_sub(TAIL_LINES);
    let mut out = format!(
        "--- log of libPluginBase.so ({}{} lines; all of it: {}) ---\n",
        if skipped > 0 { "last " } else { "" },
        lines.len() - skipped,
        path.display()
    );
    for l in &lines[skipped..] {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str("--- end of the log of libPluginBase.so ---\n");
    out
}
