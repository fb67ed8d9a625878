//! Ensures the `host-harness` binary delivers a config end to end (`run`) and that
//! `validate` accepts a good config and names config, plugin and field for bad ones.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use e2e_tests::util::{harness_bin, lib_dir, run_with_timeout, RunOutput};
use e2e_tests::{pipeline, service_mock, TempDir};
use serde_json::{json, Value};

const N: u64 = 3000;

fn harness() -> PathBuf {
    harness_bin()
}

fn harness_cmd() -> Command {
    let mut c = Command::new(harness());
    c.env("PLUGIN_LIB_DIR", lib_dir());
    c
}

/// The `summary` object of the last stdout line shaped `{"summary": {..}}`.
fn summary(out: &RunOutput) -> Value {
    out.stdout
        .lines()
        .rev()
        .find_map(|l| match serde_json::from_str::<Value>(l.trim()) {
            Ok(Value::Object(mut m)) => m.remove("summary").filter(Value::is_object),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no JSON summary in harness output\n{}", out.all_output()))
}

#[test]
fn run_delivers_expected_logs_with_clean_pack_ids() {
    let dir = TempDir::new("harness-run");
    let config = pipeline(
        vec![service_mock(20000, N, json!({"content": "via harness"}))],
        vec![],
    );
    let file = dir.write("harness_run.json", &config);
    let out = run_with_timeout(
        harness_cmd()
            .args(["run", "--quiet", "--summary-json", "--expect-logs"])
            .arg(N.to_string())
            .args(["--duration", "30"])
            .arg(&file),
        Duration::from_secs(90),
    );
    assert_eq!(
        out.code(),
        Some(0),
        "host-harness run failed\n{}",
        out.all_output()
    );
    let s = summary(&out);
    assert_eq!(s["logs"].as_u64(), Some(N), "summary {s}");
    assert_eq!(s["duplicate_pack_ids"].as_u64(), Some(0), "summary {s}");
    assert_eq!(s["pack_id_gaps"].as_u64(), Some(0), "summary {s}");
}

/// `run --loongcollector`: the 3.x file names and calls, reloads as 3.x modifies (LoadPipeline
/// while running, Stop(name, 0), Start), and the pulled counters summed as the host does.
#[test]
fn run_as_loongcollector_reloads_and_pulls_metrics() {
    let dir = TempDir::new("harness-loong");
    let config = pipeline(
        vec![service_mock(2000, N, json!({"content": "via 3.x"}))],
        vec![],
    );
    let file = dir.write("harness_loong.json", &config);
    let out = run_with_timeout(
        harness_cmd()
            .env("PLUGIN_BASE_LOG", "warn")
            .args(["run", "--loongcollector", "--quiet", "--summary-json"])
            .args(["--reload-every", "0.1", "--expect-logs"])
            .arg(N.to_string())
            .args(["--duration", "30"])
            .arg(&file),
        Duration::from_secs(90),
    );
    assert_eq!(out.code(), Some(0), "{}", out.all_output());
    let s = summary(&out);
    assert_eq!(s["logs"].as_u64(), Some(N), "summary {s}");
    assert_eq!(s["pack_id_gaps"].as_u64(), Some(0), "summary {s}");
    assert!(s["reloads"].as_u64() > Some(0), "summary {s}");
    let all = out.all_output();
    assert!(all.contains("libGoPluginBase.so"), "{all}");
    assert!(
        all.contains(&format!("harness_loong/flusher_sls/in_events_total={N}")),
        "the pulled counters sum to what was delivered: {all}"
    );
}

/// `bench`, as an iLogtail host (`ProcessLogGroup`) and as a LoongCollector host
/// (`ProcessPipelineEventGroup` on the Go-named libraries): every event arrives, verified.
#[test]
fn bench_delivers_every_event_through_both_host_generations() {
    for flavour in [None, Some("--loongcollector")] {
        let out = run_with_timeout(
            harness_cmd()
                .env("PLUGIN_BASE_LOG", "warn")
                .arg("bench")
                .args(flavour)
                .args(["--scenario", "nginx-regex", "--events", "20000", "--verify"])
                .arg("--json"),
            Duration::from_secs(120),
        );
        assert_eq!(out.code(), Some(0), "{flavour:?}: {}", out.all_output());
        let line = out.stdout.lines().last().unwrap_or_default();
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(
            v["received_logs"].as_u64(),
            Some(20_000),
            "{flavour:?}: {v}"
        );
        assert_eq!(v["bad_groups"].as_u64(), Some(0), "{flavour:?}: {v}");
        let host = if flavour.is_some() {
            "loongcollector"
        } else {
            "ilogtail"
        };
        assert_eq!(v["host"].as_str(), Some(host), "{v}");
    }
}

/// `bench --file`: the harness generates a small log file, the base's `input_file` reads it
/// from the beginning, and the host receives exactly one log per generated line; a second run
/// reuses the kept file (same record count, nothing generated).
#[test]
fn bench_file_delivers_every_line_of_the_generated_file() {
    let dir = TempDir::new("harness-bench-file");
    let file = dir.path().join("single-8MB.log");
    let mut expected = None;
    for round in 0..2 {
        let out = run_with_timeout(
            harness_cmd()
                .env("PLUGIN_BASE_LOG", "warn")
                .args(["bench", "--file", "--json"])
                .args(["--file-mb", "8", "--timeout", "60"])
                .arg("--keep-file")
                .arg(&file),
            Duration::from_secs(120),
        );
        assert_eq!(out.code(), Some(0), "round {round}: {}", out.all_output());
        let line = out.stdout.lines().last().unwrap_or_default();
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let want = v["expected_logs"].as_u64().expect("expected_logs");
        assert!(want > 30_000, "8 MB of ~200-byte lines: {v}");
        assert_eq!(v["received_logs"].as_u64(), Some(want), "{v}");
        assert_eq!(v["bad_groups"].as_u64(), Some(0), "{v}");
        assert!(v["file_mb"].as_f64().is_some_and(|mb| mb >= 8.0), "{v}");
        assert!(v["mb_per_cpu_s"].as_f64().is_some_and(|r| r > 0.0), "{v}");
        assert_eq!(v["generated"].as_bool(), Some(round == 0), "{v}");
        let first = *expected.get_or_insert(want);
        assert_eq!(first, want, "the kept file is reused");
    }
}

#[test]
fn validate_accepts_a_good_config() {
    let dir = TempDir::new("harness-validate-ok");
    let config = pipeline(
        vec![service_mock(100, 10, json!({"content": "x"}))],
        vec![json!({"type": "processor_add_fields", "detail": {"Fields": {"env": "test"}}})],
    );
    let file = dir.write("harness_good.json", &config);
    let out = run_with_timeout(
        harness_cmd().arg("validate").arg(&file),
        Duration::from_secs(60),
    );
    assert_eq!(
        out.code(),
        Some(0),
        "validate rejected a good config\n{}",
        out.all_output()
    );
}

/// Runs `validate` on `config` saved as `<name>.json`; expects failure mentioning every `needles`.
fn expect_invalid(name: &str, config: &str, needles: &[&str]) {
    let dir = TempDir::new("harness-validate-bad");
    let file = dir.write(&format!("{name}.json"), config);
    let out = run_with_timeout(
        harness_cmd().arg("validate").arg(&file),
        Duration::from_secs(60),
    );
    assert!(
        out.status.is_some(),
        "validate did not finish for {name}\n{}",
        out.all_output()
    );
    assert_ne!(
        out.code(),
        Some(0),
        "validate accepted {name}: {config}\n{}",
        out.all_output()
    );
    let all = out.all_output();
    for n in needles {
        assert!(
            all.contains(n),
            "validate output for {name} does not mention {n:?}\n{all}"
        );
    }
}

#[test]
fn validate_rejects_an_unknown_plugin_type() {
    let config = pipeline(vec![json!({"type": "service_mockk", "detail": {}})], vec![]);
    expect_invalid(
        "bad_unknown_plugin",
        &config,
        &["bad_unknown_plugin", "service_mockk"],
    );
}

#[test]
fn validate_rejects_an_unknown_detail_field() {
    let config = pipeline(
        vec![service_mock(100, 10, json!({"content": "x"}))],
        vec![
            json!({"type": "processor_add_fields", "detail": {"Fields": {"a": "b"}, "NoSuchOption": true}}),
        ],
    );
    expect_invalid(
        "bad_unknown_field",
        &config,
        &["bad_unknown_field", "processor_add_fields", "NoSuchOption"],
    );
}

#[test]
fn validate_rejects_an_ill_typed_detail_field() {
    let config = pipeline(
        vec![
            json!({"type": "service_mock", "detail": {"LogsPerSecond": 100, "MaxLogCount": "lots", "Fields": {}}}),
        ],
        vec![],
    );
    expect_invalid(
        "bad_field_type",
        &config,
        &["bad_field_type", "service_mock", "MaxLogCount"],
    );
}

#[test]
fn validate_rejects_broken_json() {
    expect_invalid(
        "bad_broken_json",
        r#"{"inputs": [{"type": "service_mock", "detail": {"#,
        &["bad_broken_json"],
    );
}

#[test]
fn validate_rejects_an_unknown_top_level_key_and_lists_every_error_of_a_plugin() {
    let config = json!({
        "inputz": [],
        "processors": [{"type": "processor_regex", "detail": {"Keys": "a", "Bogus": 1}}],
    })
    .to_string();
    let pre = r#"config "bad_strict": plugin processors[0] (processor_regex): field"#;
    expect_invalid(
        "bad_strict",
        &config,
        &[
            r#"config "bad_strict": field "inputz": unknown top-level key (did you mean `inputs`?)"#,
            &format!(r#"{pre} "detail.Keys": invalid type"#),
            &format!(r#"{pre} "detail.Bogus": unknown field"#),
            &format!(r#"{pre} "detail": missing field `Regex`"#),
        ],
    );
}

#[test]
fn validate_warns_about_global_keys_no_host_uses_and_still_accepts_the_config() {
    let dir = TempDir::new("harness-validate-warn");
    let config = json!({
        "global": {"StructureType": "v1", "TopicType": "none", "HostIP": "1.2.3.4",
                   "MyOwnKey": 1, "AggregatIntervalMs": 200},
        "inputs": [service_mock(100, 10, json!({"content": "x"}))],
        "flushers": [{"type": "flusher_stdout"}],
    })
    .to_string();
    let file = dir.write("warned.json", &config);
    let out = run_with_timeout(
        harness_cmd().arg("validate").arg(&file),
        Duration::from_secs(60),
    );
    assert_eq!(
        out.code(),
        Some(0),
        "warnings must not make a config invalid\n{}",
        out.all_output()
    );
    let shown = file.display().to_string();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                r#"{shown}: warning: config "warned": field "global.MyOwnKey": unknown global key: no host generation uses it (ignored)"#
            ),
            format!("OK {shown}"),
        ],
        "{}",
        out.all_output()
    );
}
