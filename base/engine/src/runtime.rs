//! The tokio runtime of an engine: two workers, named after the engine.

use tokio::runtime::Runtime;

/// A runtime for one engine (`name` prefixes its threads).
///
/// # Panics
/// If the OS refuses to create threads (the ABI layers turn this into an error code).
pub fn build(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Blocking calls go to crate::blocking; this only bounds tokio's own use.
        .max_blocking_threads(4)
        .thread_name(format!("{name}-worker"))
        .enable_time()
        .build()
        .expect("create the engine runtime")
}
