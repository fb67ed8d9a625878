//! SONAME `libGoPluginAdapter.so`: the name an OSS LoongCollector 3.x host opens.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libGoPluginAdapter.so");
    println!("cargo:rerun-if-changed=build.rs");
}
