//! `flusher_syslog` end to end: numbered lines in real files → `input_file` →
//! `flusher_syslog` in the real libraries (through `host-harness run`) → the real Fluent Bit
//! (`../shared/tools/fluent-bit`, or `$FLUENT_BIT_BIN`; skipped, saying so, when absent),
//! whose `file` output the test counts:
//!
//! - RFC 5424, octet counting over TCP into its `syslog` input (`Mode tcp`, `Format
//!   octet_counting`, the stock `syslog-rfc5424` parser): every line exactly once; then Fluent
//!   Bit killed with SIGKILL mid-stream and restarted on the same port: every line at least
//!   once, duplicates counted and reported;
//! - the same over TLS (certificates made at test time with rcgen): exactly once;
//! - RFC 3164, newline framing, into its `syslog` input (`syslog-rfc3164` parser), and RFC
//!   5424 with newline framing into its `tcp` input (`Format none`): exactly once;
//! - RFC 5424 over UDP into its `syslog` input (`Mode udp`) at a modest rate: what arrived is
//!   counted and reported (UDP may lose; on loopback all is expected, at least 99% required),
//!   never a duplicate.
//!
//! The parsers are Fluent Bit's stock definitions of `conf/parsers.conf`, written to a file
//! for the test. Quiet on success; with `E2E_FILE_REPORT=1` (and `--nocapture`) each test
//! prints what it observed, with a rough rate into Fluent Bit.

use std::collections::BTreeMap;

use std::path::Path;

use std::time::{Duration, Instant};

use e2e_tests::file::{
    base_detail, parse_numbered, report, stderr_end, tail, test_dir, HarnessRun, Writer, STOP,
};
use e2e_tests::fluent_bit_receiver::{
    free_port, make_pki, records as fb_records, FluentBitReceiver as FluentBit, Receiver,
};
use e2e_tests::util::{fluent_bit_or_skip, wait_until};
use serde_json::{json, Value};

/// Filler bytes per line.
const PAD: usize = 24;
/// How long a scenario waits for its records.
const WAIT: Duration = Duration::from_secs(40);
/// Arguments of every harness run: statistics every 500 ms (the buffer's counters).
const STATS: [&str; 2] = ["--stats", "--stats-interval-ms=500"];

/// Fluent Bit's stock syslog parsers (`conf/parsers.conf`).
const PARSERS: &str = r#"[PARSER]
    Name        syslog-rfc5424
    Format      regex
    Regex       ^\<(?<pri>[0-9]{1,5})\>1 (?<time>[^ ]+) (?<host>[^ ]+) (?<ident>[^ ]+) (?<pid>[-0-9]+) (?<msgid>[^ ]+) (?<extradata>(\[(.*?)\]|-)) (?<message>.+)$
    Time_Key    time
    Time_Format %Y-%m-%dT%H:%M:%S.%L%z
    Time_Keep   On

[PARSER]
    Name        syslog-rfc3164
    Format      regex
    Regex       /^\<(?<pri>[0-9]+)\>(?<time>[^ ]* {1,2}[^ ]* [^ ]*) (?<host>[^ ]*) (?<ident>[a-zA-Z0-9_\/\.\-]*)(?:\[(?<pid>[0-9]+)\])?(?:[^\:]*\:)? *(?<message>.*)$/
    Time_Key    time
    Time_Format %b %d %H:%M:%S
    Time_Keep   On
"#;

/// A pipeline: `input_file` on `<logs>/*.log` → `flusher_syslog` with `detail` (small
/// chunks, often, quick retries).
fn syslog_config(logs: &Path, mut detail: Value) -> String {
    detail["Buffer"] = json!({"ChunkLimitSize": 16 * 1024, "FlushIntervalMs": 100,
        "RetryWaitMs": 100, "RetryMaxIntervalMs": 1000});
    json!({
        "global": {"AggregatIntervalMs": 100},
        "inputs": [{"type": "input_file", "detail": Value::Object(base_detail(&[&logs.join("*.log")]))}],
        "flushers": [{"type": "flusher_syslog", "detail": detail}],
    })
    .to_string()
}

/// The numbered line in `text`: the first word `<letters>-<7 digits>`.
fn numbered_in(text: &str) -> Option<(String, u64)> {
    text.match_indices(' ')
        .map(|(i, _)| i + 1)
        .chain([0])
        .filter_map(|i| parse_numbered(&text[i..]))
        .find(|(t, _)| !t.is_empty() && t.bytes().all(|b| b.is_ascii_lowercase()))
}

/// The counts of `tag`'s numbers in `records` (the syslog input's `message`, the tcp
/// input's `log`).
fn counts_of(records: &[Value], tag: &str) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        let text = r
            .get("message")
            .or_else(|| r.get("log"))
            .and_then(Value::as_str);
        if let Some((t, n)) = text.and_then(numbered_in) {
            if t == tag {
                *m.entry(n).or_insert(0) += 1;
            }
        }
    }
    m
}

/// The last statistics of the buffer of `config`'s `flusher_syslog` (counter name → value).
fn buffer_stats(run: &HarnessRun, config: &str) -> BTreeMap<String, u64> {
    e2e_tests::file::buffer_stats(&run.stdout(), config, "flusher_syslog").unwrap_or_default()
}

/// The flusher detail for Fluent Bit on `port` (the header fields its parsers expect).
fn flusher(port: u16, extra: Value) -> Value {
    let mut d = json!({"Address": format!("127.0.0.1:{port}"), "HostnamePreset": "e2e-host",
        "AppnamePreset": "e2e", "ProcidPreset": "7", "TimeoutMs": 5000});
    for (k, v) in extra.as_object().expect("an object") {
        d[k] = v.clone();
    }
    d
}

/// Writes `n` lines tagged `tag` into `<logs>/<tag>.log`, waits until Fluent Bit's `out` has
/// each of them, then 800 ms more (late duplicates would show); returns the counts and how
/// long it took from the start of `run` (`None` when not all arrived within [`WAIT`]).
fn deliver(logs: &Path, out: &Path, tag: &str, n: u64) -> (BTreeMap<u64, usize>, Option<Duration>) {
    let t0 = Instant::now();
    let mut w = Writer::open(&logs.join(format!("{tag}.log")), tag, PAD);
    w.write(n);
    let all = wait_until(WAIT, || {
        counts_of(&fb_records(out), tag).len() >= n as usize
    });
    let took = all.then(|| t0.elapsed());
    if all {
        std::thread::sleep(Duration::from_millis(800));
    }
    (counts_of(&fb_records(out), tag), took)
}

/// Fails unless `counts` holds `1..=n` exactly once each.
fn assert_exactly_once(
    what: &str,
    counts: &BTreeMap<u64, usize>,
    n: u64,
    ctx: impl Fn() -> String,
) {
    let total: usize = counts.values().sum();
    let missing = (1..=n).filter(|k| !counts.contains_key(k)).count();
    let dups = counts.values().filter(|&&c| c > 1).count();
    assert!(
        missing == 0 && dups == 0 && total == n as usize,
        "{what}: {} distinct of {n} lines, {total} records, {missing} missing, {dups} duplicated \
         (exactly once expected)\n{}",
        counts.len(),
        ctx()
    );
}

fn rate(n: u64, took: Option<Duration>) -> String {
    match took {
        Some(d) => format!(
            "{n} lines in {:.2} s (~{:.0}/s)",
            d.as_secs_f64(),
            n as f64 / d.as_secs_f64()
        ),
        None => "not all arrived".into(),
    }
}

fn syslog_input(port: u16, mode: &str, parser: &str, extra: &str) -> String {
    format!(
        "    Name syslog\n    Listen 127.0.0.1\n    Port {port}\n    Mode {mode}\n    Parser {parser}\n{extra}"
    )
}

/// 10,000 lines as RFC 5424, octet counting over TCP → Fluent Bit's `syslog` input: each line
/// exactly once. Then 10,000 more lines over about four seconds; Fluent Bit is killed with
/// SIGKILL once half of them arrived and started again on the same port 2 s later: across
/// both output files every line arrived at least once (what was in flight at the kill may be
/// sent again: duplicates are counted and reported).
/// Fluent Bit with the `[INPUT]` lines `input` (its `Port` line names the port) and the
/// syslog parsers, writing `<dir>/<file>`.
fn start_fb(bin: &Path, dir: &Path, label: &str, input: &str, file: &str) -> FluentBit {
    let parsers = dir.join("parsers.conf");
    std::fs::write(&parsers, PARSERS).unwrap();
    let service = format!("    Parsers_File {}\n", parsers.display());
    let port = input
        .lines()
        .find_map(|l| l.trim().strip_prefix("Port "))
        .and_then(|p| p.trim().parse::<u16>().ok())
        .expect("a Port line");
    let storage = dir.join("fb-storage");
    let r = Receiver {
        label,
        dir,
        service: &service,
        input,
        storage: &storage,
        file,
        port,
    };
    FluentBit::start(bin, &r)
}

#[test]
fn syslog_tcp_into_fluent_bit_exactly_once_and_across_a_kill() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: u64 = 10_000;
    let (dir, logs) = test_dir("syslog-tcp");
    let port = free_port();
    let (out1, out2) = (dir.path().join("out-1.log"), dir.path().join("out-2.log"));
    let input = syslog_input(port, "tcp", "syslog-rfc5424", "    Format octet_counting\n");
    let fb = start_fb(&bin, dir.path(), "fb-1", &input, "out-1.log");
    let config = syslog_config(&logs, flusher(port, json!({"Mode": "tcp"})));
    let run = HarnessRun::start_in(dir.path(), "syslog_tcp", &config, &STATS);
    let (a, took) = deliver(&logs, &out1, "a", N);
    assert_exactly_once("first pass", &a, N, || {
        format!(
            "--- Fluent Bit ---\n{}\n{}",
            tail(&fb.log(), 20),
            stderr_end("harness stderr", &run.stderr())
        )
    });

    // Mid-stream: 250 lines every 100 ms; SIGKILL once half arrived, restart after 2 s.
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
    let half = wait_until(WAIT, || {
        counts_of(&fb_records(&out1), "b").len() >= N as usize / 2
    });
    let at_kill = counts_of(&fb_records(&out1), "b").len();
    let log1 = fb.kill9();
    assert!(
        half,
        "half of the lines did not arrive ({at_kill}):\n{log1}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let fb = start_fb(&bin, dir.path(), "fb-2", &input, "out-2.log");
    writer.join().expect("writer");
    let both = || {
        let mut c = counts_of(&fb_records(&out1), "b");
        for (n, k) in counts_of(&fb_records(&out2), "b") {
            *c.entry(n).or_insert(0) += k;
        }
        c
    };
    let complete = wait_until(WAIT, || both().len() >= N as usize);
    std::thread::sleep(Duration::from_millis(800));
    let b = both();
    let stats = buffer_stats(&run, "syslog_tcp");
    let harness_err = run.stop(STOP).stderr;
    let log2 = fb.stop();
    let missing: Vec<u64> = (1..=N).filter(|n| !b.contains_key(n)).collect();
    let dups: usize = b.values().filter(|&&c| c > 1).map(|c| c - 1).sum();
    let (in1, in2) = (
        counts_of(&fb_records(&out1), "b").values().sum::<usize>(),
        counts_of(&fb_records(&out2), "b").values().sum::<usize>(),
    );
    assert!(
        complete && missing.is_empty(),
        "after the SIGKILL and restart: {} of {N} lines arrived, missing {} (first {:?}); \
         {dups} duplicates; {in1} records in out-1.log, {in2} in out-2.log\n\
         --- Fluent Bit 1 (end) ---\n{}\n--- Fluent Bit 2 (end) ---\n{}\n{}",
        b.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        tail(&log1, 20),
        tail(&log2, 20),
        stderr_end("harness stderr", &harness_err)
    );
    report(
        "syslog_tcp_into_fluent_bit_exactly_once_and_across_a_kill",
        format!(
            "first pass: {} distinct, {} records, {}; kill at {at_kill} distinct; after the \
             restart: {} distinct, {in1} records in out-1.log + {in2} in out-2.log, {dups} \
             duplicates; buffer retries {}; buffer stats {stats:?}",
            a.len(),
            a.values().sum::<usize>(),
            rate(N, took),
            b.len(),
            stats.get("retries").copied().unwrap_or(0),
        ),
    );
}

/// 5,000 lines as RFC 5424, octet counting over TLS (our CA, verified) → Fluent Bit's
/// `syslog` input with `tls on`: each line exactly once.
#[test]
fn syslog_tls_into_fluent_bit_exactly_once() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: u64 = 5_000;
    let (dir, logs) = test_dir("syslog-tls");
    let (ca, cert, key) = make_pki(dir.path());
    let port = free_port();
    let out = dir.path().join("out.log");
    let tls = format!(
        "    Format octet_counting\n    tls on\n    tls.verify off\n    tls.crt_file {}\n    tls.key_file {}\n",
        cert.display(),
        key.display()
    );
    let fb = start_fb(
        &bin,
        dir.path(),
        "fb",
        &syslog_input(port, "tcp", "syslog-rfc5424", &tls),
        "out.log",
    );
    let detail = flusher(
        port,
        json!({"Mode": "tls", "TLS": {"CAFile": ca.display().to_string(), "ServerName": "localhost"}}),
    );
    let run = HarnessRun::start_in(
        dir.path(),
        "syslog_tls",
        &syslog_config(&logs, detail),
        &STATS,
    );
    let (a, took) = deliver(&logs, &out, "t", N);
    assert_exactly_once("TLS", &a, N, || {
        format!(
            "--- Fluent Bit ---\n{}\n{}",
            tail(&fb.log(), 20),
            stderr_end("harness stderr", &run.stderr())
        )
    });
    let stats = buffer_stats(&run, "syslog_tls");
    let _ = run.stop(STOP);
    fb.stop();
    report(
        "syslog_tls_into_fluent_bit_exactly_once",
        format!(
            "{} distinct, {}; buffer stats {stats:?}",
            a.len(),
            rate(N, took)
        ),
    );
}

/// 5,000 lines as RFC 3164 with newline framing → Fluent Bit's `syslog` input
/// (`syslog-rfc3164`), and 5,000 as RFC 5424 with newline framing → its `tcp` input (`Format
/// none`, a record per line): each line exactly once in each.
#[test]
fn syslog_newline_framing_into_fluent_bit_syslog_and_tcp_inputs() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: u64 = 5_000;
    let mut seen = Vec::new();
    for (name, input_of, extra) in [
        (
            "rfc3164 → syslog input",
            (|port: u16| syslog_input(port, "tcp", "syslog-rfc3164", "")) as fn(u16) -> String,
            json!({"Format": "rfc3164"}),
        ),
        (
            "rfc5424 non-transparent → tcp input",
            |port: u16| {
                format!("    Name tcp\n    Listen 127.0.0.1\n    Port {port}\n    Format none\n")
            },
            json!({"Framing": "non-transparent"}),
        ),
    ] {
        let (dir, logs) = test_dir("syslog-newline");
        let port = free_port();
        let out = dir.path().join("out.log");
        let fb = start_fb(&bin, dir.path(), "fb", &input_of(port), "out.log");
        let config = syslog_config(&logs, flusher(port, extra));
        let run = HarnessRun::start_in(dir.path(), "syslog_newline", &config, &STATS);
        let (a, took) = deliver(&logs, &out, "n", N);
        assert_exactly_once(name, &a, N, || {
            format!(
                "--- Fluent Bit ---\n{}\nfirst records: {:?}\n{}",
                tail(&fb.log(), 20),
                &fb_records(&out)[..fb_records(&out).len().min(2)],
                stderr_end("harness stderr", &run.stderr())
            )
        });
        let sample = fb_records(&out).into_iter().next();
        let _ = run.stop(STOP);
        fb.stop();
        seen.push(format!(
            "{name}: {} distinct, {}; a record: {sample:?}",
            a.len(),
            rate(N, took)
        ));
    }
    report(
        "syslog_newline_framing_into_fluent_bit_syslog_and_tcp_inputs",
        seen.join("; "),
    );
}

/// 5,000 lines as RFC 5424 over UDP, 500 every 100 ms → Fluent Bit's `syslog` input in `Mode
/// udp`: counts what arrived (at least 99%: loopback at this rate loses nothing in practice),
/// never a duplicate.
#[test]
fn syslog_udp_into_fluent_bit() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: u64 = 5_000;
    let (dir, logs) = test_dir("syslog-udp");
    let port = free_port();
    let out = dir.path().join("out.log");
    let input = syslog_input(
        port,
        "udp",
        "syslog-rfc5424",
        "    receive_buffer_size 4M\n",
    );
    let fb = start_fb(&bin, dir.path(), "fb", &input, "out.log");
    let config = syslog_config(&logs, flusher(port, json!({"Mode": "udp"})));
    let run = HarnessRun::start_in(dir.path(), "syslog_udp", &config, &STATS);
    let t0 = Instant::now();
    let mut w = Writer::open(&logs.join("u.log"), "u", PAD);
    while w.next <= N {
        w.write(500.min(N + 1 - w.next));
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = wait_until(Duration::from_secs(15), || {
        counts_of(&fb_records(&out), "u").len() >= N as usize
    });
    let took = all.then(|| t0.elapsed());
    // What is still on its way (or lost) has time to show.
    std::thread::sleep(Duration::from_millis(if all { 800 } else { 3000 }));
    let u = counts_of(&fb_records(&out), "u");
    let stats = buffer_stats(&run, "syslog_udp");
    let harness_err = run.stop(STOP).stderr;
    let log = fb.stop();
    let dups = u.values().filter(|&&c| c > 1).count();
    let got = u.len() as u64;
    assert!(
        got * 100 >= N * 99 && dups == 0,
        "UDP: {got} distinct of {N} lines arrived, {dups} duplicated\n--- Fluent Bit ---\n{}\n{}",
        tail(&log, 20),
        stderr_end("harness stderr", &harness_err)
    );
    report(
        "syslog_udp_into_fluent_bit",
        format!(
            "{got} of {N} lines arrived ({} lost), {dups} duplicated, {}; buffer stats {stats:?}",
            N - got,
            rate(N, took)
        ),
    );
}
