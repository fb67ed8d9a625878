//! `flusher_otlp` end to end: numbered lines in real files → `input_file` → `flusher_otlp` in
//! the real libraries (through `host-harness run`) → the real Fluent Bit's `opentelemetry`
//! input (gRPC and OTLP/HTTP on one port; `../shared/tools/fluent-bit`, or `$FLUENT_BIT_BIN`;
//! skipped, saying so, when absent) → its `file` output (`Format plain`: the record, whose
//! `log` is the OTLP body), counted:
//!
//! - over gRPC, then over HTTP/protobuf: every line arrives exactly once;
//! - over each protocol, Fluent Bit killed with SIGKILL mid-stream and started again on the
//!   same port: every line arrives at least once (the duplicates are counted and reported:
//!   what was in flight at the kill is sent again).
//!
//! Quiet on success; with `E2E_FILE_REPORT=1` (and `--nocapture`) each test prints what it
//! observed, with a rough throughput.

use std::collections::BTreeMap;
use std::io::Read;

use std::path::Path;

use std::time::{Duration, Instant};

use e2e_tests::file::{
    base_detail, parse_numbered, report, stderr_end, test_dir, HarnessRun, Writer, STOP,
};
use e2e_tests::fluent_bit_receiver::{free_port, FluentBitReceiver as FluentBit, Receiver};
use e2e_tests::util::{fluent_bit_or_skip, wait_until};
use serde_json::{json, Value};

/// Filler bytes per line.
const PAD: usize = 24;
/// How long a scenario waits for its records.
const WAIT: Duration = Duration::from_secs(60);
/// Arguments of every harness run: statistics every 500 ms (the buffer's counters).
const STATS: [&str; 2] = ["--stats", "--stats-interval-ms=500"];

/// A pipeline: `input_file` on `<logs>/*.log` → `flusher_otlp` with `detail`.
fn otlp_config(logs: &Path, detail: Value) -> String {
    json!({
        "global": {"AggregatIntervalMs": 100},
        "inputs": [{"type": "input_file", "detail": Value::Object(base_detail(&[&logs.join("*.log")]))}],
        "flushers": [{"type": "flusher_otlp", "detail": detail}],
    })
    .to_string()
}

/// The flusher's options for `protocol` towards Fluent Bit on `port`.
fn otlp_detail(protocol: &str, port: u16, buffer: Value) -> Value {
    let endpoint = match protocol {
        "grpc" => format!("127.0.0.1:{port}"),
        _ => format!("http://127.0.0.1:{port}"),
    };
    json!({
        "Protocol": protocol,
        "Endpoint": endpoint,
        "Timeout": "5s",
        "ResourceAttributes": {"service.name": "scale-otlp"},
        "Buffer": buffer,
    })
}

/// The last statistics of the buffer of `config`'s `flusher_otlp` (counter name → value).
fn buffer_stats(run: &HarnessRun, config: &str) -> BTreeMap<String, u64> {
    e2e_tests::file::buffer_stats(&run.stdout(), config, "flusher_otlp").unwrap_or_default()
}

/// The counts of `tag`'s numbers in the records of Fluent Bit's `file` output (`Format
/// plain`: one JSON object per line, the OTLP string body under `log`; a line cut by a kill
/// is skipped).
fn counts_in(paths: &[&Path], tag: &str) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for path in paths {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(path) {
            let _ = f.read_to_string(&mut s);
        }
        for v in s
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            let Some((t, n)) = v
                .get("log")
                .and_then(Value::as_str)
                .and_then(parse_numbered)
            else {
                continue;
            };
            if t == tag {
                *m.entry(n).or_insert(0) += 1;
            }
        }
    }
    m
}

/// 50,000 lines (or `E2E_OTLP_LINES`) written as fast as possible once the harness runs →
/// `protocol` → one Fluent Bit: exactly that many records, each line once; reports how long
/// they took.
fn exactly_once(protocol: &str) {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    // `E2E_OTLP_LINES` for a bigger run (a rough throughput figure).
    let n: u64 = std::env::var("E2E_OTLP_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let (dir, logs) = test_dir(&format!("otlp-{protocol}"));
    let port = free_port();
    let out = dir.path().join("out.log");
    let fb = start_fb(&bin, dir.path(), "fb", port, "out.log");
    let config = otlp_config(&logs, otlp_detail(protocol, port, json!({})));
    let name = format!("otlp_{protocol}");
    let mut run = HarnessRun::start_in(dir.path(), &name, &config, &STATS);
    // Written once the input runs (a file present at its start is tailed: `TailSizeKB`).
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let mut w = Writer::open(&logs.join("a.log"), "a", PAD);
    while w.next <= n {
        w.write(10_000.min(n + 1 - w.next));
    }
    // Lines in the output, cheaply (the records are parsed once all are there).
    let lines = || std::fs::read(&out).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
    let all = wait_until(WAIT, || lines() >= n as usize || !run.running());
    let took = started.elapsed();
    if all {
        // Late duplicates would show.
        std::thread::sleep(Duration::from_millis(800));
    }
    let a = counts_in(&[&out], "a");
    let total: usize = a.values().sum();
    let stats = buffer_stats(&run, &name);
    let harness_err = run.stop(STOP).stderr;
    let log = fb.stop();
    assert!(
        all && total == n as usize && a.len() == n as usize,
        "{protocol}: Fluent Bit's output has {} distinct of {n} lines, {total} records (exactly \
         once expected)\n--- Fluent Bit ---\n{}\n{}",
        a.len(),
        e2e_tests::file::tail(&log, 30),
        stderr_end("harness stderr", &harness_err)
    );
    report(
        &format!("fluent_bit_otlp_{protocol}_exactly_once"),
        format!(
            "{n} lines, {total} records, {} distinct, all in {took:?} from the first write \
             (~{:.0} lines/s, {} B/line); buffer stats {stats:?}",
            a.len(),
            n as f64 / took.as_secs_f64(),
            PAD + 11
        ),
    );
}

/// 10,000 lines written over about four seconds → `protocol` → Fluent Bit, killed with
/// SIGKILL once about half of them arrived and started again on the same port 2 s later:
/// across both output files every line arrived at least once.
fn kill_and_restart(protocol: &str) {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: u64 = 10_000;
    let (dir, logs) = test_dir(&format!("otlp-kill-{protocol}"));
    let port = free_port();
    let (out1, out2) = (dir.path().join("out-1.log"), dir.path().join("out-2.log"));
    let fb = start_fb(&bin, dir.path(), "fb-1", port, "out-1.log");
    // Small chunks often: requests are in flight (and records in Fluent Bit's buffer, not yet
    // in its file) when the kill comes.
    let buffer = json!({"ChunkLimitSize": 16 * 1024, "FlushIntervalMs": 100, "RetryWaitMs": 100,
        "RetryMaxIntervalMs": 1000});
    let name = format!("otlp_kill_{protocol}");
    let config = otlp_config(&logs, otlp_detail(protocol, port, buffer));
    let run = HarnessRun::start_in(dir.path(), &name, &config, &STATS);
    let writer = {
        let path = logs.join("b.log");
        std::thread::spawn(move || {
            let mut w = Writer::open(&path, "b", PAD);
            while w.next <= N {
                w.write(250.min(N + 1 - w.next));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let half = wait_until(WAIT, || counts_in(&[&out1], "b").len() >= N as usize / 2);
    let at_kill = counts_in(&[&out1], "b").len();
    let log1 = fb.kill9();
    assert!(
        half,
        "{protocol}: half of the lines did not arrive ({at_kill}):\n{log1}\n{}",
        stderr_end("harness stderr", &run.stderr())
    );
    std::thread::sleep(Duration::from_secs(2));
    let fb = start_fb(&bin, dir.path(), "fb-2", port, "out-2.log");
    writer.join().expect("writer");
    let complete = wait_until(WAIT, || counts_in(&[&out1, &out2], "b").len() >= N as usize);
    std::thread::sleep(Duration::from_millis(800));
    let b = counts_in(&[&out1, &out2], "b");
    let stats = buffer_stats(&run, &name);
    let harness_err = run.stop(STOP).stderr;
    let log2 = fb.stop();
    let missing: Vec<u64> = (1..=N).filter(|n| !b.contains_key(n)).collect();
    let dups: usize = b.values().filter(|c| **c > 1).map(|c| c - 1).sum();
    let (in1, in2) = (
        counts_in(&[&out1], "b").values().sum::<usize>(),
        counts_in(&[&out2], "b").values().sum::<usize>(),
    );
    assert!(
        complete && missing.is_empty(),
        "{protocol}: after the SIGKILL and restart: {} of {N} lines arrived, missing {} (first \
         {:?}); {dups} duplicates; {in1} records in out-1.log, {in2} in out-2.log\n\
         --- Fluent Bit 1 (end) ---\n{}\n--- Fluent Bit 2 (end) ---\n{}\n{}",
        b.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        e2e_tests::file::tail(&log1, 20),
        e2e_tests::file::tail(&log2, 20),
        stderr_end("harness stderr", &harness_err)
    );
    report(
        &format!("fluent_bit_otlp_{protocol}_kill_and_restart"),
        format!(
            "kill at {at_kill} distinct; after the restart: {} distinct of {N}, {in1} records \
             in out-1.log + {in2} in out-2.log, {dups} duplicate records; buffer stats \
             {stats:?}; backlog chunks Fluent Bit 2 recovered from its storage: {}",
            b.len(),
            log2.matches("flush backlog chunk").count()
        ),
    );
}

/// Fluent Bit with its `opentelemetry` input on 127.0.0.1:`port` writing `<dir>/<file>`.
fn start_fb(bin: &Path, dir: &Path, label: &str, port: u16, file: &str) -> FluentBit {
    let input = format!("    Name opentelemetry\n    Listen 127.0.0.1\n    Port {port}\n");
    let storage = dir.join("fb-storage");
    let r = Receiver {
        label,
        dir,
        service: "",
        input: &input,
        storage: &storage,
        file,
        port,
    };
    FluentBit::start(bin, &r)
}

#[test]
fn fluent_bit_otlp_grpc_exactly_once() {
    exactly_once("grpc");
}

#[test]
fn fluent_bit_otlp_http_exactly_once() {
    exactly_once("http");
}

#[test]
fn fluent_bit_otlp_grpc_kill_and_restart() {
    kill_and_restart("grpc");
}

#[test]
fn fluent_bit_otlp_http_kill_and_restart() {
    kill_and_restart("http");
}
