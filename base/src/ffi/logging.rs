//! Our own logs go to stderr through `tracing`, filtered by `PLUGIN_BASE_LOG`
//! (default `info`; e.g. `PLUGIN_BASE_LOG=warn`).

use std::sync::Once;

static INIT: Once = Once::new();

/// Installs the subscriber once (if the process has none yet).
pub(super) fn init() {
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("PLUGIN_BASE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_target(false)
            .try_init();
    });
}
