//! The tokio runtime owned by the base library, created on first use and never torn down
//! (the host process owns our lifetime; worker threads end with it).

use once_cell::sync::OnceCell;
use tokio::runtime::{Handle, Runtime};

static RUNTIME: OnceCell<Runtime> = OnceCell::new();

/// Handle to the base runtime, creating it on first call.
///
/// # Panics
/// If the OS refuses to create threads (the export guard turns this into an error code).
pub fn handle() -> Handle {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                // Blocking calls go to crate::blocking; this only bounds tokio's own use.
                .max_blocking_threads(4)
                .thread_name("plugin-worker")
                .enable_time()
                .build()
                .expect("create plugin runtime")
        })
        .handle()
        .clone()
}
