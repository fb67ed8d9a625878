//! Runs `host-harness footprint` as a subprocess (mock inputs, then host-fed) and checks what
//! is deterministic: it succeeds, the mock inputs deliver, and loading configs does not start
//! threads (configs are tasks on the base's shared runtime, not a thread each). Memory figures
//! are printed (visible with --nocapture), never asserted: they belong in benchmarks.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use e2e_tests::util::{harness_bin, lib_dir, run_with_timeout, RunOutput};
use serde_json::Value;

/// Threads a stage may add over "after init" (a handful of shared helpers, not one per config).
const MAX_ADDED_THREADS: i64 = 8;

/// The mock run both mock tests measure: 200 configs at 1 log/s, 4 s with a 2 s warm-up.
const MOCK_200: &[&str] = &[
    "--configs",
    "200",
    "--rate",
    "1",
    "--duration",
    "4",
    "--warmup",
    "2",
];

fn harness() -> PathBuf {
    harness_bin()
}

/// Runs `host-harness footprint ARGS --json` and returns the JSON object it printed.
fn footprint(args: &[&str]) -> Value {
    let out: RunOutput = run_with_timeout(
        Command::new(harness())
            .env("PLUGIN_LIB_DIR", lib_dir())
            .env("PLUGIN_BASE_LOG", "warn")
            .arg("footprint")
            .args(args)
            .arg("--json"),
        Duration::from_secs(120),
    );
    assert_eq!(
        out.code(),
        Some(0),
        "host-harness footprint {args:?} failed\n{}",
        out.all_output()
    );
    let line = out.stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e})\n{}", out.all_output()));
    assert!(v.is_object(), "{v}");
    v
}

fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("field {key} missing or not an integer in {v}"))
}

fn print_figures(what: &str, v: &Value) {
    eprintln!(
        "footprint {what}: {} configs, {} KiB per config running ({} KiB loaded); threads \
         {} before init, {} after init, {} after load, {} after warm-up, {}..{} sampled, {} after \
         HoldOn(1); RSS growth {} KiB over {} s; {} logs delivered",
        v["configs"],
        v["per_config_kib"],
        v["per_config_loaded_kib"],
        v["threads_before_init"],
        v["threads_after_init"],
        v["threads_after_load"],
        v["threads_after_warmup"],
        v["threads_min"],
        v["threads_max"],
        v["threads_after_holdon"],
        v["rss_growth_kib"],
        v["sampled_s"],
        v["logs_delivered"],
    );
}

#[test]
fn mock_configs_deliver_without_a_thread_each() {
    let v = footprint(MOCK_200);
    print_figures("mock", &v);
    assert_eq!(v["input"], "mock", "{v}");
    assert_eq!(int(&v, "configs"), 200, "{v}");
    assert!(int(&v, "logs_delivered") > 0, "no logs delivered: {v}");
    assert!(int(&v, "configs_delivering") > 0, "{v}");
    assert_eq!(int(&v, "bad_groups"), 0, "{v}");
    assert!(int(&v, "rss_after_init_kib") > 0, "{v}");
    assert!(int(&v, "sample_count") >= 2, "{v}");
    few_threads_added(
        &v,
        "loading 200 configs",
        int(&v, "threads_added_after_load"),
    );
}

/// Fails when `added` (threads over the count after init) is more than a few.
fn few_threads_added(v: &Value, what: &str, added: i64) {
    assert!(
        added <= MAX_ADDED_THREADS,
        "{what} added {added} threads: {v}"
    );
}

/// The same bound once the configs run and send, also after HoldOn(1) flushed them all (with
/// tokio's blocking pool for SendPb, 200 configs added up to ~140 threads: a thread for every
/// send in flight at the same moment).
#[test]
fn running_configs_add_no_more_than_a_few_threads() {
    let v = footprint(MOCK_200);
    print_figures("mock (running)", &v);
    let init = int(&v, "threads_after_init");
    few_threads_added(&v, "warm-up", int(&v, "threads_added_after_warmup"));
    few_threads_added(&v, "sampling", int(&v, "threads_max") - init);
    few_threads_added(&v, "HoldOn(1)", int(&v, "threads_after_holdon") - init);
}

#[test]
fn host_fed_configs_deliver_what_the_host_pushes() {
    let v = footprint(&[
        "--input",
        "host-fed",
        "--configs",
        "50",
        "--rate",
        "2",
        "--duration",
        "4",
        "--warmup",
        "2",
    ]);
    print_figures("host-fed", &v);
    assert_eq!(v["input"], "host-fed", "{v}");
    assert!(int(&v, "logs_pushed") > 0, "{v}");
    assert_eq!(int(&v, "push_errors"), 0, "{v}");
    assert_eq!(int(&v, "bad_groups"), 0, "{v}");
    // HoldOn(1) flushes what was pushed: every pushed log arrives.
    assert_eq!(
        int(&v, "logs_delivered"),
        int(&v, "logs_pushed"),
        "pushed logs not all delivered: {v}"
    );
    few_threads_added(
        &v,
        "loading 50 configs",
        int(&v, "threads_added_after_load"),
    );
}

#[test]
fn idle_host_fed_configs_start_no_threads() {
    let v = footprint(&[
        "--input",
        "host-fed",
        "--rate",
        "0",
        "--configs",
        "100",
        "--duration",
        "3",
        "--warmup",
        "1",
    ]);
    print_figures("host-fed idle", &v);
    assert_eq!(int(&v, "logs_pushed"), 0, "{v}");
    assert_eq!(int(&v, "logs_delivered"), 0, "{v}");
    for key in ["threads_added_after_load", "threads_added_after_warmup"] {
        few_threads_added(&v, key, int(&v, key));
    }
}
