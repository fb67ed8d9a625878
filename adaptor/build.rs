//! Gives `libPluginAdapter.so` the SONAME the original adaptor has, so that a base linked
//! against it by name (DT_NEEDED) finds the copy the host already loaded.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libPluginAdapter.so");
    println!("cargo:rerun-if-changed=build.rs");
}
