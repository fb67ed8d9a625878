//! The panic boundary every export runs inside.

/// Runs `body`; if it panics, returns `on_panic` instead of unwinding into the host.
///
/// The panic message is still printed by the panic hook, which is the only trace we can leave:
/// the adaptor has no logger of its own.
pub(crate) fn ffi_boundary<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(on_panic)
}
