//! Ensures at-least-once delivery across a `kill -9` of the host process: a host (the
//! harness) is killed mid-stream while it refuses a share of sends; a new process on the same
//! data directory continues from the input's committed checkpoint, so every `Index` produced
//! before the kill is delivered, and the checkpoint really was used (no start from 1).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e_tests::util::{lib_dir, run_with_timeout};
use e2e_tests::TempDir;
use serde_json::{json, Value};

const CONFIG: &str = "kill_restart";

/// Index values of every log of our config in harness JSON lines.
fn indexes(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["config"] == CONFIG)
        .flat_map(|v| {
            v["logs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|l| l["contents"]["Index"].as_str()?.parse().ok())
        })
        .collect()
}

#[test]
fn everything_produced_before_a_kill_9_is_delivered_after_restart() {
    let dir = TempDir::new("kill-restart");
    let data = dir.path().join("data");
    let config = json!({
        "global": {"AggregatIntervalMs": 200},
        "inputs": [{"type": "service_mock", "detail": {
            "LogsPerSecond": 3000, "MaxLogCount": 0, "Fields": {"content": "k"}}}],
    });
    let file = dir.write(&format!("{CONFIG}.json"), &config.to_string());
    let harness = lib_dir().join("host-harness");
    let out1 = dir.path().join("run1.out");
    let err1 = dir.path().join("run1.err");

    // Run 1: refuses 30% of sends, killed with SIGKILL after 2.5 s.
    let mut child = Command::new(&harness)
        .env("PLUGIN_LIB_DIR", lib_dir())
        .env("PLUGIN_BASE_LOG", "warn")
        .args([
            "run",
            "--reject-rate",
            "0.3",
            "--seed",
            "3",
            "--duration",
            "60",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg(&file)
        .stdout(Stdio::from(std::fs::File::create(&out1).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err1).unwrap()))
        .spawn()
        .expect("start harness");
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().expect("kill -9");
    child.wait().unwrap();
    let first = indexes(&std::fs::read_to_string(&out1).unwrap());
    let stderr1 = || std::fs::read_to_string(&err1).unwrap_or_default();
    let max1 = *first
        .iter()
        .max()
        .unwrap_or_else(|| panic!("run 1 delivered nothing; its stderr:\n{}", stderr1()));
    assert!(
        first.len() > 1000,
        "run 1 delivered only {}; its stderr:\n{}",
        first.len(),
        stderr1()
    );

    // Run 2: same data directory, host accepting everything.
    let run2 = run_with_timeout(
        Command::new(&harness)
            .env("PLUGIN_LIB_DIR", lib_dir())
            .env("PLUGIN_BASE_LOG", "warn")
            .args(["run", "--duration", "3"])
            .arg("--data-dir")
            .arg(&data)
            .arg(&file),
        Duration::from_secs(60),
    );
    assert_eq!(run2.code(), Some(0), "{}", run2.all_output());
    let second = indexes(&run2.stdout);
    let min2 = *second.iter().min().expect("run 2 delivered something");
    assert!(
        min2 > 1,
        "run 2 started from Index 1: the checkpoint was not used"
    );
    assert!(
        min2 <= max1 + 1,
        "run 2 started at {min2}, after run 1's last delivered {max1}: a gap"
    );

    let all: BTreeSet<u64> = first.iter().chain(&second).copied().collect();
    let top = *all.iter().max().unwrap();
    let missing: Vec<u64> = (1..=top).filter(|i| !all.contains(i)).take(10).collect();
    assert!(
        missing.is_empty(),
        "Index values never delivered: {missing:?} (run 1 up to {max1}, run 2 from {min2})"
    );
    let duplicates = first.len() + second.len() - all.len();
    eprintln!(
        "kill -9 test: run 1 delivered {} logs (max Index {max1}); run 2 resumed at Index {min2} and delivered {}; {} duplicates (at-least-once), 0 missing of 1..={top}",
        first.len(),
        second.len(),
        duplicates
    );
}
