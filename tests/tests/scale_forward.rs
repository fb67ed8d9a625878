//! `flusher_forward` end to end against the real Fluent Bit `forward` input: numbered lines
//! in real files → `input_file` → `flusher_forward` in the real libraries (through
//! `host-harness run`) → Fluent Bit (`-c` a classic config: `forward` input with filesystem
//! storage, `file` output with `Format plain`, one JSON record per line) → its file; every
//! count checked:
//!
//! - each `SendMode` (`Forward`, `PackedForward`, `CompressedPackedForward`): every line
//!   exactly once, with the rough throughput in the report;
//! - `RequireAckResponse` with Fluent Bit's `Shared_Key` and `security.users`: every line
//!   exactly once; a second pipeline with a wrong key delivers nothing and says why;
//! - TLS (a CA and a server certificate made at test time with rcgen): every line exactly
//!   once;
//! - two Fluent Bit servers, one killed with SIGKILL mid-stream and restarted on the same
//!   port and storage: every line at least once across the output files, duplicates counted.
//!
//! Skipped, saying so, without Fluent Bit (`../shared/tools/fluent-bit`, or
//! `$FLUENT_BIT_BIN`). Quiet on success; with `E2E_FILE_REPORT=1` (and `--nocapture`) each
//! test prints what it observed.

use std::collections::BTreeMap;
use std::io::Read;

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use e2e_tests::file::{
    base_detail, parse_numbered, report, stderr_end, tail, test_dir, HarnessRun, Writer, CONTENT,
    STOP,
};
use e2e_tests::fluent_bit_receiver::{
    free_port, make_pki, FluentBitReceiver as FluentBit, Receiver,
};
use e2e_tests::util::{fluent_bit_or_skip, wait_until};
use serde_json::{json, Value};

/// Filler bytes per line.
const PAD: usize = 24;
/// How long a scenario waits for its records.
const WAIT: Duration = Duration::from_secs(60);
/// The tag Fluent Bit receives.
const TAG: &str = "e2e.forward";

/// A pipeline named by the config file: `input_file` on `<logs>/*.log` → `flusher_forward`
/// with `detail`.
fn forward_config(logs: &Path, detail: Value) -> String {
    json!({
        "global": {"AggregatIntervalMs": 100},
        "inputs": [{"type": "input_file", "detail": Value::Object(base_detail(&[&logs.join("*.log")]))}],
        "flushers": [{"type": "flusher_forward", "detail": detail}],
    })
    .to_string()
}

/// Extra lines of Fluent Bit's `forward` input section.
#[derive(Default, Clone)]
struct Input {
    lines: Vec<String>,
}

fn read(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Complete lines in Fluent Bit's output files (cheap: for polling).
fn lines_in(paths: &[&Path]) -> usize {
    paths.iter().map(|p| read(p).matches('\n').count()).sum()
}

/// The counts of `tag`'s numbers in the records of `paths` (a line cut by a kill is
/// skipped).
fn counts(paths: &[&Path], tag: &str) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for p in paths {
        for l in read(p).lines() {
            let Ok(v) = serde_json::from_str::<Value>(l) else {
                continue;
            };
            if let Some((t, n)) = v
                .get(CONTENT)
                .and_then(Value::as_str)
                .and_then(parse_numbered)
            {
                if t == tag {
                    *m.entry(n).or_insert(0) += 1;
                }
            }
        }
    }
    m
}

/// Missing numbers of `1..=n` and duplicated ones (`(number, count)`).
fn missing_and_dups(c: &BTreeMap<u64, usize>, n: u64) -> (Vec<u64>, Vec<(u64, usize)>) {
    let missing = (1..=n).filter(|k| !c.contains_key(k)).collect();
    let dups = c
        .iter()
        .filter(|(_, k)| **k > 1)
        .map(|(n, k)| (*n, *k))
        .collect();
    (missing, dups)
}

/// Starts the harness with `detail`, writes `n` lines of `tag` to `<logs>/<tag>.log`, waits
/// until Fluent Bit's `<dir>/out.log` has `n` lines and a bit more (late duplicates would show); checks
/// every line exactly once. Returns the seconds from the write to the last line at Fluent Bit.
fn exactly_once(
    dir: &Path,
    logs: &Path,
    name: &str,
    fb: &FluentBit,
    tag: &str,
    n: u64,
    detail: Value,
) -> f64 {
    // The file is created once the input runs, so it is read from its start whatever its
    // size (`TailSizeKB`).
    let out = &dir.join("out.log");
    let run = HarnessRun::start_in(dir, name, &forward_config(logs, detail), &[]);
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let mut w = Writer::open(&logs.join(format!("{tag}.log")), tag, PAD);
    w.write(n);
    let all = wait_until(WAIT, || lines_in(&[out]) >= n as usize);
    let secs = t0.elapsed().as_secs_f64();
    if all {
        std::thread::sleep(Duration::from_millis(800));
    }
    let c = counts(&[out], tag);
    let harness_err = run.stop(STOP).stderr;
    let (missing, dups) = missing_and_dups(&c, n);
    assert!(
        missing.is_empty() && dups.is_empty() && c.len() == n as usize,
        "{name}: {} of {n} lines arrived; missing {} (first {:?}), {} duplicated (first {:?})\n\
         --- Fluent Bit ---\n{}\n{}",
        c.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        dups.len(),
        &dups[..dups.len().min(10)],
        tail(&fb.log(), 20),
        stderr_end("harness stderr", &harness_err)
    );
    secs
}

/// 50,000 lines (or `E2E_FORWARD_LINES`) in each mode, one Fluent Bit, one output file per mode; every line exactly
/// once. Reports lines / s from the write to the last line in Fluent Bit's file (it
/// flushes every 200 ms; the build profile of the test is the libraries').
/// Fluent Bit with its `forward` input on 127.0.0.1:`port` (chunks under
/// `<dir>/storage-<store>`, the same after a restart) writing `<dir>/<file>`.
fn start_fb(
    bin: &Path,
    dir: &Path,
    label: &str,
    store: &str,
    port: u16,
    file: &str,
    input: &Input,
) -> FluentBit {
    let mut lines = format!("    Name forward\n    Listen 127.0.0.1\n    Port {port}\n");
    for l in &input.lines {
        lines.push_str(&format!("    {l}\n"));
    }
    let storage = dir.join(format!("storage-{store}"));
    let r = Receiver {
        label,
        dir,
        service: "",
        input: &lines,
        storage: &storage,
        file,
        port,
    };
    FluentBit::start(bin, &r)
}

#[test]
fn each_send_mode_delivers_every_line_once() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    // `E2E_FORWARD_LINES` for a longer measurement.
    let n: u64 = std::env::var("E2E_FORWARD_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let mut seen = Vec::new();
    for mode in ["Forward", "PackedForward", "CompressedPackedForward"] {
        let (dir, logs) = test_dir("forward-modes");
        let port = free_port();
        let fb = start_fb(
            &bin,
            dir.path(),
            "fb",
            "fb",
            port,
            "out.log",
            &Input::default(),
        );
        let detail = json!({
            "Host": "127.0.0.1", "Port": port, "SendMode": mode, "Tag": TAG,
            "Buffer": {"ChunkLimitSize": 1 << 20, "FlushIntervalMs": 200, "RetryWaitMs": 200},
        });
        let secs = exactly_once(dir.path(), &logs, "forward_modes", &fb, "m", n, detail);
        fb.stop();
        seen.push(format!(
            "{mode}: {n} lines exactly once in {secs:.2} s ({:.0} lines/s)",
            n as f64 / secs
        ));
    }
    report("each_send_mode_delivers_every_line_once", seen.join("; "));
}

/// Fluent Bit with `Shared_Key`, `Self_Hostname` and a user: acks, the handshake, every line
/// exactly once. A pipeline with a wrong key delivers nothing (its lines stay buffered).
#[test]
fn acks_with_a_shared_key_and_a_user_deliver_every_line_once() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: u64 = 20_000;
    let (dir, logs) = test_dir("forward-secure");
    let port = free_port();
    let input = Input {
        lines: vec![
            "Shared_Key s3cret".into(),
            "Self_Hostname fb-server".into(),
            "security.users alice pw1".into(),
        ],
    };
    let fb = start_fb(&bin, dir.path(), "fb", "fb", port, "out.log", &input);
    let out = dir.path().join("out.log");
    let detail = |key: &str| {
        json!({
            "Host": "127.0.0.1", "Port": port, "Tag": TAG, "RequireAckResponse": true,
            "SharedKey": key, "SelfHostname": "e2e-client", "Username": "alice", "Password": "pw1",
            "Buffer": {"ChunkLimitSize": 256 * 1024, "FlushIntervalMs": 200, "RetryWaitMs": 200},
        })
    };
    let secs = exactly_once(
        dir.path(),
        &logs,
        "forward_secure",
        &fb,
        "s",
        N,
        detail("s3cret"),
    );
    // A wrong key: nothing arrives.
    let (dir2, logs2) = test_dir("forward-wrong-key");
    let mut w = Writer::open(&logs2.join("w.log"), "w", PAD);
    w.write(1000);
    let run = HarnessRun::start_in(
        dir2.path(),
        "forward_wrong_key",
        &forward_config(&logs2, detail("nope")),
        &[],
    );
    std::thread::sleep(Duration::from_secs(4));
    let wrong = counts(&[&out], "w").len();
    let harness_err = run.stop(STOP).stderr;
    let fb_log = fb.stop();
    assert_eq!(wrong, 0, "lines sent with a wrong key arrived");
    assert!(
        fb_log.contains("shared_key mismatch"),
        "Fluent Bit did not see the wrong key:\n{}\n{}",
        tail(&fb_log, 20),
        stderr_end("harness stderr", &harness_err)
    );
    report(
        "acks_with_a_shared_key_and_a_user_deliver_every_line_once",
        format!("{N} lines exactly once in {secs:.2} s with acks + shared key + user; wrong key: 0 of 1000 arrived, Fluent Bit logged the mismatch"),
    );
}

/// Fluent Bit's forward input over TLS with a certificate of a CA made here; ours checks it
/// with `TLS.CAFile` and acks: every line exactly once.
#[test]
fn tls_delivers_every_line_once() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: u64 = 20_000;
    let (dir, logs) = test_dir("forward-tls");
    let _ = make_pki(dir.path());
    let pem = |f: &str| dir.path().join(f).display().to_string();
    let port = free_port();
    let input = Input {
        lines: vec![
            "tls on".into(),
            "tls.verify off".into(),
            format!("tls.crt_file {}", pem("server.pem")),
            format!("tls.key_file {}", pem("server.key")),
        ],
    };
    let fb = start_fb(&bin, dir.path(), "fb", "fb", port, "out.log", &input);
    let detail = json!({
        "Host": "127.0.0.1", "Port": port, "Tag": TAG,
        "TLS": {"Enabled": true, "CAFile": pem("ca.pem"), "ServerName": "localhost"},
        "Buffer": {"ChunkLimitSize": 256 * 1024, "FlushIntervalMs": 200, "RetryWaitMs": 200},
    });
    let secs = exactly_once(dir.path(), &logs, "forward_tls", &fb, "t", N, detail);
    fb.stop();
    report(
        "tls_delivers_every_line_once",
        format!("{N} lines exactly once over TLS (CAFile, ServerName localhost) in {secs:.2} s"),
    );
}

/// Two Fluent Bit servers of equal weight, acks on; 20,000 lines written over about four
/// seconds; the first server is killed with SIGKILL once a quarter of them arrived and
/// started again 2 s later on the same port and storage (it recovers what it acked but had
/// not written yet). Every line arrives at least once across the output files; duplicates
/// (a chunk the killed server took but could not ack is sent again) are counted and
/// reported.
#[test]
fn fail_over_between_two_fluent_bits_loses_nothing() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: u64 = 20_000;
    let (dir, logs) = test_dir("forward-failover");
    let (p1, p2) = (free_port(), free_port());
    let d = dir.path();
    let fb1 = start_fb(&bin, d, "fb1", "fb1", p1, "out-1.log", &Input::default());
    let fb2 = start_fb(&bin, d, "fb2", "fb2", p2, "out-2.log", &Input::default());
    let outs = [
        d.join("out-1.log"),
        d.join("out-1b.log"),
        d.join("out-2.log"),
    ];
    let all = || -> Vec<&Path> { outs.iter().map(PathBuf::as_path).collect() };
    let detail = json!({
        "Servers": [{"Host": "127.0.0.1", "Port": p1}, {"Host": "127.0.0.1", "Port": p2}],
        "Tag": TAG, "RequireAckResponse": true, "HeartbeatInterval": "500ms",
        "ConnectTimeout": 2, "AckResponseTimeout": 10,
        // Small chunks often: several are in flight (and in the killed server's buffer)
        // when the kill comes.
        "Buffer": {"ChunkLimitSize": 16 * 1024, "FlushIntervalMs": 100, "RetryWaitMs": 100,
            "RetryMaxIntervalMs": 1000},
    });
    let run = HarnessRun::start_in(d, "forward_failover", &forward_config(&logs, detail), &[]);
    let writer = {
        let path = logs.join("f.log");
        std::thread::spawn(move || {
            let mut w = Writer::open(&path, "f", PAD);
            while w.next <= N {
                w.write(250.min(N + 1 - w.next));
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let quarter = wait_until(WAIT, || lines_in(&all()) >= N as usize / 4);
    let at_kill = (lines_in(&[&outs[0]]), lines_in(&[&outs[2]]));
    let log1 = fb1.kill9();
    assert!(
        quarter,
        "a quarter of the lines did not arrive:\n{}",
        tail(&log1, 20)
    );
    std::thread::sleep(Duration::from_secs(2));
    let fb1 = start_fb(&bin, d, "fb1b", "fb1", p1, "out-1b.log", &Input::default());
    writer.join().expect("writer");
    let complete = wait_until(WAIT, || counts(&all(), "f").len() >= N as usize);
    std::thread::sleep(Duration::from_secs(1));
    let after_restart = lines_in(&[&outs[1]]);
    let c = counts(&all(), "f");
    let harness_err = run.stop(STOP).stderr;
    let (log1b, log2) = (fb1.stop(), fb2.stop());
    let (missing, dups) = missing_and_dups(&c, N);
    let per_file: Vec<usize> = outs
        .iter()
        .map(|p| counts(&[p], "f").values().sum())
        .collect();
    assert!(
        complete && missing.is_empty(),
        "after the SIGKILL and restart: {} of {N} lines arrived, missing {} (first {:?}); \
         {} duplicated; per file {per_file:?}\n--- fb1 (killed) ---\n{}\n--- fb1 restarted ---\n{}\n\
         --- fb2 ---\n{}\n{}",
        c.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        dups.len(),
        tail(&log1, 15),
        tail(&log1b, 15),
        tail(&log2, 15),
        stderr_end("harness stderr", &harness_err)
    );
    report(
        "fail_over_between_two_fluent_bits_loses_nothing",
        format!(
            "{N} lines: all arrived; {} duplicated (first {:?}); at the kill fb1 had {} and fb2 {} lines; \
             records per file [fb1, fb1 restarted, fb2] = {per_file:?} (fb1 restarted wrote {after_restart}, \
             backlog chunks it registered from its storage: {})",
            dups.len(),
            &dups[..dups.len().min(5)],
            at_kill.0,
            at_kill.1,
            log1b.matches("] register ").count()
        ),
    );
}
