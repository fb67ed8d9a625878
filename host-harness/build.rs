//! Compiles the C half of `host-harness fluent-bit`: the variadic `log_print` callback of
//! Fluent Bit's `struct flb_api` (a printf-style C function; stable Rust cannot define one).

fn main() {
    println!("cargo:rerun-if-changed=src/fluentbit/log_shim.c");
    cc::Build::new()
        .file("src/fluentbit/log_shim.c")
        .warnings(true)
        .extra_warnings(true)
        .compile("fluentbit_log_shim");
}
