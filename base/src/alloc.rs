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
/// `mi_option_arena_eager_commit` in mimalloc 3's `mi_option_t` (the -sys crate has no constant).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

extern "C" fn configure() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        // SAFETY: setting an option is always allowed; it takes effect for arenas created later.
        unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) };
    }
}

#[used]
#[link_section = ".init_array"]
static CONFIGURE: extern "C" fn() = configure;
