//! Ensures `CheckConfig` does not leak on a successful call: 100,000 checks of a valid config
//! through the real `libPluginBase.so` leave the RSS of the process (nearly) where it was.
//!
//! The old export `malloc`ed its panic-default text ("internal error while checking the
//! config", 41 bytes: a 64-byte malloc chunk) before running the body and dropped it when
//! no panic happened: 100,000 calls grew the RSS by about 6–8 MB. The default is now made
//! only when a panic is caught.

use e2e_tests::ffi::host;
use e2e_tests::session::add_fields;
use e2e_tests::{base, pipeline, service_mock, vm_rss_kib};
use serde_json::json;

const WARM_UP: usize = 5_000;
const CALLS: usize = 100_000;
/// Allowed growth over the measured calls (the old leak was ≥ 6,400 KiB).
const MAX_GROWTH_KIB: u64 = 2 * 1024;

#[test]
fn check_config_of_a_valid_config_does_not_grow_the_rss() {
    host();
    let config = pipeline(
        vec![service_mock(10, 10, json!({"content": "x"}))],
        vec![add_fields(json!({"env": "test"}))],
    );
    let check = |n: usize| {
        for i in 0..n {
            if let Some(err) = base::check_config("leak_check", &config) {
                panic!("CheckConfig call {i} rejected the valid config: {err}");
            }
        }
    };
    check(WARM_UP);
    let before = vm_rss_kib().expect("VmRSS from /proc/self/status");
    check(CALLS);
    let after = vm_rss_kib().expect("VmRSS from /proc/self/status");
    let growth = after.saturating_sub(before);
    eprintln!(
        "RSS before {before} KiB, after {CALLS} CheckConfig calls {after} KiB (+{growth} KiB)"
    );
    assert!(
        growth < MAX_GROWTH_KIB,
        "RSS grew by {growth} KiB over {CALLS} successful CheckConfig calls \
         ({before} -> {after} KiB; limit {MAX_GROWTH_KIB} KiB): CheckConfig leaks \
         (about {} bytes a call)",
        growth * 1024 / CALLS as u64
    );
}
