//! Our own logs go to stderr through `tracing`, filtered by `PLUGIN_BASE_LOG`
//! (default `info`; e.g. `PLUGIN_BASE_LOG=warn`, `off`). With `PLUGIN_BASE_LOG_FILE=PATH`
//! they are appended to `PATH` instead (one `write` per line, so several processes may share
//! the file; when it cannot be opened, stderr is used and says so).
//!
//! Panics inside the library (a plugin that panics is caught, counted, restarted) are logged
//! the same way instead of being printed by the standard hook: the library carries its own
//! copy of `std`, so this hook is ours alone and never the host's. Nothing is printed to
//! stderr for them and no backtrace is taken, whatever `RUST_BACKTRACE` says.

use std::sync::{Arc, Once};

use tracing_subscriber::fmt::writer::BoxMakeWriter;

static INIT: Once = Once::new();

/// Environment variable naming the filter.
const FILTER_ENV: &str = "PLUGIN_BASE_LOG";
/// Environment variable naming a file the logs are appended to instead of stderr.
const FILE_ENV: &str = "PLUGIN_BASE_LOG_FILE";

/// Installs the subscriber once (if the process has none yet).
pub(super) fn init() {
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env(FILTER_ENV)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let (writer, file_error) = writer();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(false)
            .with_target(false)
            .try_init();
        if let Some((path, e)) = file_error {
            tracing::warn!("cannot open {FILE_ENV}={path}: {e}; logging to stderr");
        }
        std::panic::set_hook(Box::new(|info| {
            let thread = std::thread::current();
            tracing::error!(
                thread = thread.name().unwrap_or("?"),
                "caught a panic: {info}"
            );
        }));
    });
}

/// The file of `PLUGIN_BASE_LOG_FILE` (opened for appending), else stderr; with the reason
/// when the file was named but could not be opened.
fn writer() -> (BoxMakeWriter, Option<(String, std::io::Error)>) {
    let Some(path) = std::env::var_os(FILE_ENV).filter(|p| !p.is_empty()) else {
        return (BoxMakeWriter::new(std::io::stderr), None);
    };
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(f) => (BoxMakeWriter::new(Arc::new(f)), None),
        Err(e) => (
            BoxMakeWriter::new(std::io::stderr),
            Some((path.to_string_lossy().into_owned(), e)),
        ),
    }
}
