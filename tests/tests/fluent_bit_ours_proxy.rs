//! Our Fluent Bit plugins (`libpluginrt_fbout.so`, `libpluginrt_fbin.so`, built from this tree)
//! through `host-harness fluent-bit`, the Fluent Bit-style proxy host: both record layouts,
//! EventTime edge cases, group markers and map32 records arriving exactly once with their
//! times; malformed msgpack answered with FLB_ERROR while the plugin keeps working; records of
//! 4 MB; a full pipeline (our input → a chunk file → our output) with counts checked; and the
//! stack each entry point uses on a 64 KiB stack, as Fluent Bit's coroutines have.

use e2e_tests::util::{fluent_bit_plugin, harness_bin, run_with_timeout, TempDir};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `host-harness fluent-bit ARGS --json`, expects exit 0, returns the summary.
fn summary(args: &[&str]) -> Value {
    let mut cmd = Command::new(harness_bin());
    cmd.arg("fluent-bit").args(args).arg("--json");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert_eq!(out.code(), Some(0), "{args:?}\n{}", out.all_output());
    let line = out
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"summary\""))
        .unwrap_or_else(|| panic!("no summary\n{}", out.all_output()));
    serde_json::from_str::<Value>(line).unwrap()["summary"].clone()
}

fn pipeline(dir: &TempDir, out: &Path) -> String {
    let json = serde_json::json!({
        "processors": [{"type": "processor_add_fields", "detail": {"Fields": {"via": "pluginrt"}}}],
        "flushers": [{"type": "flusher_stdout", "detail": {"FileName": s(out)}}]
    });
    let p = dir.write("pipeline.json", &json.to_string());
    format!("pipeline={}", s(&p))
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_layout_time_and_marker_arrives_once_on_a_64_kib_stack() {
    let dir = TempDir::new("fbp-out");
    let out = dir.path().join("out.jsonl");
    let ckpt = format!("checkpoint_dir={}", s(&dir.path().join("ckpt")));
    let sum = summary(&[
        "output",
        s(&fluent_bit_plugin(true)),
        "-p",
        &pipeline(&dir, &out),
        "-p",
        &ckpt,
        "--generate",
        "12000",
        "--layout",
        "mixed",
        "--edge-times",
        "--group-every",
        "100",
        "--map32",
        "--stack-kib",
        "64",
    ]);
    assert_eq!(
        (sum["retry"].as_u64(), sum["error"].as_u64()),
        (Some(0), Some(0)),
        "{sum}"
    );
    let got = lines(&out);
    assert_eq!(got.len(), 12_000, "exactly once");
    // The generator cycles through six edge times; each arrives as often as it was sent
    // (a legacy float time is exact to the microsecond only).
    let mut times: BTreeMap<u64, usize> = BTreeMap::new();
    for r in &got {
        assert_eq!(r["via"], "pluginrt");
        *times.entry(r["__time__"].as_u64().unwrap()).or_default() += 1;
    }
    for edge in [0u64, 1, 0x7FFF_FFFF, 0x8000_0000] {
        assert!(times.get(&edge).copied().unwrap_or(0) >= 1000, "{times:?}");
    }
    // The flush entry point stays shallow on Fluent Bit's 64 KiB coroutine stack.
    let flush = &sum["stack"]["FLBPluginFlushCtx"];
    assert_eq!(flush["at_least"], false, "{flush}");
    assert!(
        flush["max_used_bytes"].as_u64().unwrap() < 16 * 1024,
        "{flush}"
    );
}

#[test]
fn malformed_chunks_are_errors_and_huge_records_pass() {
    let dir = TempDir::new("fbp-bad");
    let out = dir.path().join("out.jsonl");
    let ckpt = format!("checkpoint_dir={}", s(&dir.path().join("ckpt")));
    let good = dir.path().join("good.msgpack");
    let mut cmd = Command::new(harness_bin());
    cmd.args(["fluent-bit", "gen", s(&good), "--records", "10"]);
    assert_eq!(
        run_with_timeout(&mut cmd, Duration::from_secs(30)).code(),
        Some(0)
    );
    // Ten good records, then a map32 claiming four billion entries, cut short: one chunk.
    let mut bad = std::fs::read(&good).unwrap();
    bad.extend_from_slice(&[
        0x92, 0xd7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xdf, 0xff, 0xff, 0xff, 0xff,
    ]);
    let bad_file = dir.path().join("bad.msgpack");
    std::fs::write(&bad_file, &bad).unwrap();
    let plugin = fluent_bit_plugin(true);
    let pipe = pipeline(&dir, &out);
    let sum = summary(&[
        "output",
        s(&plugin),
        "-p",
        &pipe,
        "-p",
        &ckpt,
        "--input",
        s(&bad_file),
        "--raw",
    ]);
    assert_eq!(
        (sum["ok"].as_u64(), sum["error"].as_u64()),
        (Some(0), Some(1)),
        "{sum}"
    );
    assert!(
        lines(&out).is_empty(),
        "nothing of an undecodable chunk is delivered"
    );
    // Split by the host into records: the good ones arrive, the broken tail is an error.
    let sum = summary(&[
        "output",
        s(&plugin),
        "-p",
        &pipe,
        "-p",
        &ckpt,
        "--input",
        s(&bad_file),
    ]);
    assert_eq!(
        (sum["ok"].as_u64(), sum["error"].as_u64()),
        (Some(1), Some(1)),
        "{sum}"
    );
    assert_eq!(lines(&out).len(), 10);
    // Three records of 4 MB each.
    std::fs::remove_file(&out).unwrap();
    let sum = summary(&[
        "output",
        s(&plugin),
        "-p",
        &pipe,
        "-p",
        &ckpt,
        "--generate",
        "3",
        "--record-bytes",
        "4000000",
    ]);
    assert_eq!(sum["ok"].as_u64(), sum["chunks"].as_u64(), "{sum}");
    let got = lines(&out);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.to_string().len() > 3_900_000));
}

#[test]
fn our_input_through_a_chunk_file_into_our_output() {
    let dir = TempDir::new("fbp-pipe");
    const N: u64 = 5000;
    let input_pipe = dir.write(
        "in.json",
        &serde_json::json!({"inputs": [{"type": "service_mock", "detail": {
            "Fields": {"msg": "hi"}, "MaxLogCount": N, "LogsPerSecond": 50_000}}]})
        .to_string(),
    );
    let chunk = dir.path().join("collected.msgpack");
    let sum = summary(&[
        "input",
        s(&fluent_bit_plugin(false)),
        "-p",
        &format!("pipeline={}", s(&input_pipe)),
        "-p",
        &format!("checkpoint_dir={}", s(&dir.path().join("ckpt-in"))),
        "--collect-ms",
        "50",
        "--expect-records",
        &N.to_string(),
        "--pause-after",
        "2",
        "--pause-for",
        "0.3",
        "--out-msgpack",
        s(&chunk),
        "--quiet",
        "--stack-kib",
        "64",
    ]);
    assert_eq!(sum["records"].as_u64(), Some(N), "{sum}");
    assert_eq!(sum["pauses"], 1);
    assert_eq!(sum["cleanups"], sum["buffers"]);
    let collect = &sum["stack"]["FLBPluginInputCallbackCtx"];
    assert!(
        collect["max_used_bytes"].as_u64().unwrap() < 16 * 1024,
        "{collect}"
    );
    let out = dir.path().join("out.jsonl");
    let sum = summary(&[
        "output",
        s(&fluent_bit_plugin(true)),
        "-p",
        &pipeline(&dir, &out),
        "-p",
        &format!("checkpoint_dir={}", s(&dir.path().join("ckpt-out"))),
        "--input",
        s(&chunk),
    ]);
    assert_eq!(sum["error"].as_u64(), Some(0), "{sum}");
    let got = lines(&out);
    let idx: std::collections::BTreeSet<String> = got
        .iter()
        .map(|r| {
            assert_eq!(
                (r["msg"].as_str(), r["via"].as_str()),
                (Some("hi"), Some("pluginrt"))
            );
            r["Index"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!((got.len() as u64, idx.len() as u64), (N, N), "exactly once");
}

#[test]
fn records_fluent_bit_never_collected_are_produced_again_after_a_restart() {
    let dir = TempDir::new("fbp-restart");
    const N: u64 = 20_000;
    let pipe = dir.write(
        "in.json",
        &serde_json::json!({"inputs": [{"type": "service_mock", "detail": {
            "Fields": {"m": "x"}, "MaxLogCount": N, "LogsPerSecond": 200_000}}]})
        .to_string(),
    );
    let ckpt = format!("checkpoint_dir={}", s(&dir.path().join("ckpt")));
    let pipe = format!("pipeline={}", s(&pipe));
    let plugin = fluent_bit_plugin(false);
    let run = |out: &Path, until: &[&str]| {
        let mut args = vec![
            "input",
            s(&plugin),
            "-p",
            &pipe,
            "-p",
            &ckpt,
            "-p",
            "collect_max_bytes=20000",
            "--out",
            s(out),
        ];
        args.extend_from_slice(until);
        let _ = summary(&args);
        std::fs::read_to_string(out)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["record"]["Index"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .collect::<Vec<u64>>()
    };
    // The first run stops after a few collect calls, with most records still queued for
    // Fluent Bit (they were produced, but never handed over).
    let first = run(
        &dir.path().join("r1.jsonl"),
        &["--collect-ms", "100", "--expect-records", "3000"],
    );
    let second = run(
        &dir.path().join("r2.jsonl"),
        &["--collect-ms", "20", "--duration", "6"],
    );
    let all: std::collections::BTreeSet<u64> = first.iter().chain(&second).copied().collect();
    let missing: Vec<u64> = (1..=N).filter(|i| !all.contains(i)).take(5).collect();
    assert!(
        missing.is_empty(),
        "first run {} records (up to {:?}), second from {:?}: missing e.g. {missing:?}",
        first.len(),
        first.iter().max(),
        second.iter().min()
    );
}
