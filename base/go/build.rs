//! Link arguments of `libGoPluginBase.so`, as for `libPluginBase.so` (see `base/build.rs`):
//! never unloaded, SONAME equal to the file name the host opens.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libGoPluginBase.so");
    println!("cargo:rerun-if-changed=build.rs");
}
