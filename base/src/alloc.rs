//! The engine's allocator: mimalloc (feature `mimalloc`, on by default).
//!
//! On the host-fed path one thread decodes (allocates) and another encodes and frees. With
//! glibc's malloc those frees go back to the allocating thread's arena under its lock, and the
//! two threads spent up to a third of their time in futex calls on that lock. mimalloc frees
//! across threads without a lock. It only serves what Rust code in this library allocates;
//! memory handed to the host (see `ffi::malloc_text`) still comes from the C `malloc`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs when the library is loaded, before any allocation: arenas are committed on demand
/// instead of eagerly, which keeps the resident size of an idle engine at a few MiB
/// (eager commit made the bench's peak RSS 75 MiB instead of 31 MiB at the same speed).
/// `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still wins.
/// Freed memory goes back to the OS after 50 ms instead of mimalloc 3's default 1 s: at a
/// million events per second a second of garbage is tens of MiB of resident memory (the
/// regex-filter-add bench peaked at 82–85 MiB, 61 MiB with 50 ms, at the same speed; 10 ms
/// cost a third of the throughput). `MIMALLOC_PURGE_DELAY` in the environment still wins.
///
/// The constants are the positions in mimalloc 3's `mi_option_t` (the -sys crate has none).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const PURGE_DELAY_MS: std::ffi::c_long = 250;

extern "C" fn configure() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        // SAFETY: setting an option is always allowed; it takes effect for arenas created later.
        unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) };
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: as above.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

#[used]
#[link_section = ".init_array"]
static CONFIGURE: extern "C" fn() = configure;
