//! Link arguments of `libPluginBase.so`:
//!
//! - `-z nodelete`: the library is never unloaded. The engine owns threads (runtime workers,
//!   flushers, the reporter) and thread-local allocator state in host threads that call into
//!   it, so a host's `dlclose` must not unmap its code under them.
//! - SONAME `libPluginBase.so`, the file name the hosts open, as the adaptor has its own.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libPluginBase.so");
    println!("cargo:rerun-if-changed=build.rs");
}
