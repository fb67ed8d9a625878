//! Marks `libPluginBase.so` as never unloaded (`-z nodelete`): the engine owns threads
//! (runtime workers, flushers, the reporter) and thread-local allocator state in host
//! threads that call into it, so a host's `dlclose` must not unmap its code under them.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=build.rs");
}
