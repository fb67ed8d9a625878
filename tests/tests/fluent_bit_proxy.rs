//! `host-harness fluent-bit` (the Fluent Bit-style proxy host) against two small C plugins
//! written from the ABI description (tests/fluent-bit/probe_out.c, probe_in.c), compiled here
//! with the system C compiler ($CC, else `cc`): retry and error handling, properties per
//! instance, workers, malformed msgpack, huge records, EventTime edge cases, stack
//! measurement, the input collect loop with pause/resume, and input → chunk file → output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use e2e_tests::util::{harness_bin, repo_root, run_with_timeout, RunOutput, TempDir};
use serde_json::Value;

/// The compiled probes: (output .so, input .so), built once per test process.
fn probes() -> &'static (PathBuf, PathBuf, TempDir) {
    static P: OnceLock<(PathBuf, PathBuf, TempDir)> = OnceLock::new();
    P.get_or_init(|| {
        let dir = TempDir::new("fb-probes");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
        let build = |name: &str| {
            let src = repo_root()
                .join("tests/fluent-bit")
                .join(format!("{name}.c"));
            let so = dir.path().join(format!("lib{name}.so"));
            let out = Command::new(&cc)
                .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
                .arg(&so)
                .arg(&src)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
            assert!(
                out.status.success(),
                "{cc} {}: {}",
                src.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            so
        };
        (build("probe_out"), build("probe_in"), dir)
    })
}

fn harness(args: &[&str]) -> RunOutput {
    run_with_timeout(
        Command::new(harness_bin()).arg("fluent-bit").args(args),
        Duration::from_secs(60),
    )
}

/// Runs ARGS with --json, expects exit code `code`, returns the summary object.
fn summary(args: &[&str], code: i32) -> (Value, RunOutput) {
    let mut a = args.to_vec();
    a.push("--json");
    let out = harness(&a);
    assert_eq!(out.code(), Some(code), "{a:?}\n{}", out.all_output());
    let line = out
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"summary\""))
        .unwrap_or_else(|| panic!("no summary\n{}", out.all_output()));
    let v: Value = serde_json::from_str(line).expect("summary JSON");
    (v["summary"].clone(), out)
}

/// The probe's exit lines: instance id → {key: value}.
fn probe_lines(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.split(' ')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn output_instances_workers_retry_and_properties() {
    let (out_so, _, _) = probes();
    let dir = TempDir::new("fb-out");
    let file = dir.path().join("in.msgpack");
    let report = dir.path().join("probe.txt");
    let g = harness(&[
        "gen",
        s(&file),
        "--records",
        "1000",
        "--layout",
        "mixed",
        "--map32",
        "--group-every",
        "64",
        "--edge-times",
    ]);
    assert_eq!(g.code(), Some(0), "{}", g.all_output());
    let (sum, _) = summary(
        &[
            "output",
            s(out_so),
            "--input",
            s(&file),
            "--chunk-records",
            "100",
            "--instances",
            "2",
            "--workers",
            "2",
            "--retry-delay-ms",
            "5",
            "--tag",
            "probe.tag",
            "-p",
            &format!("out={}", s(&report)),
            "-p",
            "id=first",
            "-p",
            "Match=*",
            "--instance-prop",
            "1:ID=second",
            "--expect-ok",
            "20",
        ],
        0,
    );
    assert_eq!(sum["chunks"], 10);
    assert_eq!(sum["records"], 1000);
    assert_eq!(sum["input"]["group_markers"], 32);
    assert_eq!(sum["flush_threads"], 4);
    // retry_first defaults to 1: the first flush of each instance is retried once.
    assert_eq!(sum["retry"], 2);
    assert_eq!(sum["retried"], 2);
    assert_eq!(sum["dropped"], 0);
    assert_eq!(sum["records_ok"], 2000);
    assert_eq!(sum["callbacks"]["property_lookups"]["match"]["found"], 0);
    assert_eq!(sum["callbacks"]["property_lookups"]["id"]["found"], 2);
    let flush = &sum["stack"]["FLBPluginFlushCtx"];
    assert_eq!(flush["calls"], 22);
    let used = flush["max_used_bytes"].as_u64().unwrap();
    assert!(
        used >= 256 && used < flush["available_bytes"].as_u64().unwrap(),
        "{flush}"
    );
    assert!(flush["available_bytes"].as_u64().unwrap() <= 64 * 1024);

    let mut lines = probe_lines(&report);
    lines.sort_by(|a, b| a["instance"].cmp(&b["instance"]));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["instance"], "first");
    assert_eq!(lines[1]["instance"], "second");
    for l in &lines {
        assert_eq!(l["records"], "1000", "{l:?}");
        assert_eq!(l["markers"], "32", "{l:?}");
        assert_eq!(l["bad"], "0");
        assert_eq!(l["tag"], "probe.tag");
        assert_eq!(l["flushes"], "11");
        assert_eq!((l["registered"].as_str(), l["inits"].as_str()), ("1", "2"));
        assert_eq!(l["pre_runs"], "2");
    }
    assert_eq!(lines.iter().map(|l| l["exits"].as_str()).max(), Some("2"));
}

#[test]
fn output_retry_exhausted_and_errors_drop_chunks() {
    let (out_so, _, _) = probes();
    let (sum, _) = summary(
        &[
            "output",
            s(out_so),
            "--generate",
            "30",
            "--chunk-records",
            "10",
            "--retry-limit",
            "1",
            "--retry-delay-ms",
            "1",
            "-p",
            "retry_first=100",
            "--expect-ok",
            "0",
        ],
        0,
    );
    assert_eq!(sum["chunks"], 3);
    assert_eq!(sum["flush_calls"], 6);
    assert_eq!(sum["retry"], 6);
    assert_eq!(sum["retry_exhausted"], 3);
    assert_eq!(sum["dropped"], 3);

    let (sum, _) = summary(
        &[
            "output",
            s(out_so),
            "--generate",
            "30",
            "--chunk-records",
            "10",
            "-p",
            "retry_first=0",
            "-p",
            "fail_all=1",
        ],
        0,
    );
    assert_eq!(
        (sum["error"].as_u64(), sum["dropped"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(sum["ok"], 0);
    // --expect-ok not met: exit code 1.
    summary(
        &["output", s(out_so), "--generate", "5", "--expect-ok", "2"],
        1,
    );
}

#[test]
fn output_malformed_huge_and_edge_time_chunks() {
    let (out_so, _, _) = probes();
    let dir = TempDir::new("fb-odd");
    let report = dir.path().join("probe.txt");
    // Ten good records, then a map32 claiming 4 billion entries, cut short.
    let file = dir.path().join("good.msgpack");
    let g = harness(&["gen", s(&file), "--records", "10", "--edge-times"]);
    assert_eq!(g.code(), Some(0), "{}", g.all_output());
    let mut bad = std::fs::read(&file).unwrap();
    bad.extend_from_slice(&[
        0x92, 0xd7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xdf, 0xff, 0xff, 0xff, 0xff,
    ]);
    let bad_file = dir.path().join("bad.msgpack");
    std::fs::write(&bad_file, &bad).unwrap();
    let out = format!("out={}", s(&report));
    let (sum, _) = summary(
        &[
            "output",
            s(out_so),
            "--input",
            s(&bad_file),
            "-p",
            &out,
            "-p",
            "retry_first=0",
        ],
        0,
    );
    assert_eq!(sum["input"]["records"], 10);
    assert_eq!(sum["input"]["malformed_at"], bad.len() - 16);
    assert_eq!(sum["chunks"], 2);
    let l = &probe_lines(&report)[0];
    assert_eq!(
        (l["records"].as_str(), l["bad"].as_str()),
        ("10", "1"),
        "{l:?}"
    );

    // --raw: the same bytes as one chunk.
    std::fs::remove_file(&report).unwrap();
    let (sum, _) = summary(
        &[
            "output",
            s(out_so),
            "--input",
            s(&bad_file),
            "--raw",
            "-p",
            &out,
            "-p",
            "retry_first=0",
        ],
        0,
    );
    assert_eq!(sum["chunks"], 1);
    assert_eq!(probe_lines(&report)[0]["bad"], "1");

    // Huge records: 3 of 4 MB each, in one chunk.
    std::fs::remove_file(&report).unwrap();
    let (sum, _) = summary(
        &[
            "output",
            s(out_so),
            "--generate",
            "3",
            "--record-bytes",
            "4000000",
            "--layout",
            "legacy",
            "-p",
            &out,
            "-p",
            "retry_first=0",
        ],
        0,
    );
    assert!(sum["bytes"].as_u64().unwrap() > 11_900_000, "{sum}");
    assert_eq!(probe_lines(&report)[0]["records"], "3");
}

#[test]
fn output_stack_use_is_measured() {
    let (out_so, _, _) = probes();
    let (sum, _) = summary(
        &[
            "output",
            s(out_so),
            "--generate",
            "10",
            "-p",
            "stack_bytes=20000",
        ],
        0,
    );
    let f = &sum["stack"]["FLBPluginFlushCtx"];
    let used = f["max_used_bytes"].as_u64().unwrap();
    assert!((20_000..40_000).contains(&used), "{f}");
    let (sum, _) = summary(
        &[
            "output",
            s(out_so),
            "--generate",
            "10",
            "--stack-kib",
            "512",
            "-p",
            "stack_bytes=300000",
        ],
        0,
    );
    let f = &sum["stack"]["FLBPluginFlushCtx"];
    assert!(f["max_used_bytes"].as_u64().unwrap() >= 300_000, "{f}");
    assert!(f["available_bytes"].as_u64().unwrap() > 400_000, "{f}");
    assert_eq!(f["at_least"], false);
}

#[test]
fn input_collect_pause_resume_and_pipeline_to_output() {
    let (out_so, in_so, _) = probes();
    let dir = TempDir::new("fb-in");
    let jsonl = dir.path().join("records.jsonl");
    let chunk = dir.path().join("collected.msgpack");
    let (sum, out) = summary(
        &[
            "input",
            s(in_so),
            "--collect-ms",
            "20",
            "--expect-records",
            "10",
            "--pause-after",
            "2",
            "--pause-for",
            "0.2",
            "--out",
            s(&jsonl),
            "--out-msgpack",
            s(&chunk),
            "-p",
            "tag=invisible",
            "-p",
            "empty_every=3",
        ],
        0,
    );
    assert!(sum["records"].as_u64().unwrap() >= 10, "{sum}");
    assert_eq!(sum["pauses"], 1);
    assert!(sum["skipped_while_paused"].as_u64().unwrap() >= 3, "{sum}");
    assert!(sum["empty_calls"].as_u64().unwrap() >= 1, "{sum}");
    assert_eq!(sum["cleanups"], sum["buffers"]);
    assert_eq!(sum["group_markers"], sum["buffers"]);
    assert_eq!(sum["malformed_buffers"], 0);
    assert_eq!(
        sum["callbacks"]["log_messages"]["error"], 0,
        "collect ran while paused"
    );
    assert_eq!(sum["callbacks"]["log_messages"]["info"], 2);
    assert_eq!(sum["callbacks"]["property_lookups"]["tag"]["found"], 0);
    assert!(
        sum["stack"]["FLBPluginInputCallbackCtx"]["calls"]
            .as_u64()
            .unwrap()
            >= 5
    );
    assert!(sum["stack"]["FLBPluginInputPause"].is_object());
    assert!(out.stderr.contains("paused") && out.stderr.contains("resumed"));

    let lines: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, sum["records"].as_u64().unwrap());
    assert_eq!(
        lines[0]["time"],
        serde_json::json!([1_700_000_000u64, 999_999_999u64])
    );
    assert_eq!(lines[0]["time_type"], "event_time");
    assert_eq!(lines[0]["record"]["message"], "hello");
    assert_eq!(lines[1]["time_type"], "uint");
    assert_eq!(lines[1]["layout"], "legacy");
    assert_eq!(lines[1]["record"], serde_json::json!({"message": "legacy"}));

    // The full pipeline: what the input plugin produced, through the output plugin.
    let report = dir.path().join("probe.txt");
    let (o, _) = summary(
        &[
            "output",
            s(out_so),
            "--input",
            s(&chunk),
            "--chunk-records",
            "3",
            "-p",
            &format!("out={}", s(&report)),
        ],
        0,
    );
    assert_eq!(o["records"], sum["records"]);
    assert_eq!(o["dropped"], 0);
    let l = &probe_lines(&report)[0];
    assert_eq!(l["records"], sum["records"].to_string());
    assert_eq!(l["markers"], sum["group_markers"].to_string());

    // Malformed buffers are counted, the records before the break still delivered.
    let (sum, _) = summary(
        &[
            "input",
            s(in_so),
            "--collect-ms",
            "10",
            "--duration",
            "0.3",
            "--quiet",
            "-p",
            "malformed=1",
        ],
        0,
    );
    assert!(sum["malformed_buffers"].as_u64().unwrap() >= 1, "{sum}");
    assert_eq!(sum["malformed_buffers"], sum["buffers"]);
    assert_eq!(
        sum["records"].as_u64(),
        sum["buffers"].as_u64().map(|b| 2 * b)
    );
    // --expect-records not met in time: exit code 1.
    summary(
        &[
            "input",
            s(in_so),
            "--collect-ms",
            "50",
            "--duration",
            "0.2",
            "--quiet",
            "--expect-records",
            "1000",
        ],
        1,
    );
}

#[test]
fn plugin_type_and_missing_files_are_errors() {
    let (out_so, in_so, _) = probes();
    let out = harness(&["input", s(out_so), "--duration", "0.1"]);
    assert_eq!(out.code(), Some(1), "{}", out.all_output());
    assert!(
        out.stderr
            .contains("registers as output but is run as input"),
        "{}",
        out.all_output()
    );
    let out = harness(&["output", s(in_so), "--generate", "1"]);
    assert_eq!(out.code(), Some(1));
    let out = harness(&["output", "/nonexistent/libx.so", "--generate", "1"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("cannot load"), "{}", out.all_output());
}
