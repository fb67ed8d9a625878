//! Our own logs go to stderr through `tracing`, filtered by `PLUGIN_BASE_LOG`
//! (default `info`; e.g. `PLUGIN_BASE_LOG=warn`, `off`).
//!
//! Panics inside the library (a plugin that panics is caught, counted, restarted) are logged
//! the same way instead of being printed by the standard hook: the library carries its own
//! copy of `std`, so this hook is ours alone and never the host's.

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
        std::panic::set_hook(Box::new(|info| {
            let thread = std::thread::current();
            tracing::error!(
                thread = thread.name().unwrap_or("?"),
                "caught a panic: {info}"
            );
        }));
    });
}
