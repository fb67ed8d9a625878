//! `flusher_http` behind the buffered-delivery framework, end to end: numbered lines in real
//! files → `input_file` → `flusher_http` in the real libraries (through `host-harness run`) →
//! a real HTTP server on 127.0.0.1, every count checked exactly:
//!
//! - the fault-injecting sink ([`e2e_tests::http_sink`]) answering 503, then 429 with
//!   `Retry-After: 1`, then slowly, then not at all (the connection closed), then 200: every
//!   line arrives exactly once, and no 429'd chunk is sent again sooner than a second later;
//! - a sink answering 400 to everything: with a `Secondary` `flusher_file` every record is in
//!   its file exactly once and nothing at the sink; without one the drops alarmed on stderr
//!   add up to every record;
//! - `Body: json` (an array) and `Convert.Encoding: protobuf` bodies, decoded by the sink;
//! - the real Fluent Bit's `http` input (`../shared/tools/fluent-bit`, or `$FLUENT_BIT_BIN`;
//!   skipped, saying so, when absent), then the same Fluent Bit killed with SIGKILL mid-stream
//!   and restarted on the same port: every line arrives at least once.
//!
//! Quiet on success; with `E2E_FILE_REPORT=1` (and `--nocapture`) each test prints what it
//! observed.

use std::collections::{BTreeMap, BTreeSet};

use std::path::Path;

use std::time::{Duration, Instant};

use e2e_tests::file::{
    base_detail, parse_numbered, report, stderr_end, test_dir, FileLog, HarnessRun, Tally, Writer,
    CONTENT, STOP,
};
use e2e_tests::fluent_bit_receiver::{
    free_port, records as fb_records, FluentBitReceiver as FluentBit, Receiver,
};
use e2e_tests::http_sink::{Behaviour, HttpSink, Request, Script};
use e2e_tests::util::{fluent_bit_or_skip, wait_until};
use serde_json::{json, Value};

/// The tag of the numbered lines.
const TAG: &str = "h";
/// Filler bytes per line.
const PAD: usize = 24;
/// How long a scenario waits for its records.
const WAIT: Duration = Duration::from_secs(30);
/// Arguments of every harness run: statistics every 500 ms (the buffer's counters).
const STATS: [&str; 2] = ["--stats", "--stats-interval-ms=500"];

/// A pipeline: `input_file` on `<logs>/*.log` → `flusher_http` with `detail`.
fn http_config(logs: &Path, detail: Value) -> String {
    json!({
        "global": {"AggregatIntervalMs": 100},
        "inputs": [{"type": "input_file", "detail": Value::Object(base_detail(&[&logs.join("*.log")]))}],
        "flushers": [{"type": "flusher_http", "detail": detail}],
    })
    .to_string()
}

/// Writes lines `TAG-1..=n` to `<logs>/<name>` in one write; returns their keys.
fn write_lines(logs: &Path, name: &str, n: u64) -> BTreeSet<(String, u64)> {
    let mut w = Writer::open(&logs.join(name), TAG, PAD);
    w.write(n);
    w.written()
}

/// A record (a flat JSON object) as a [`FileLog`]: its string fields as contents.
fn as_log(v: &Value) -> FileLog {
    let contents = match v {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| {
                let s = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                (k.clone(), s)
            })
            .collect(),
        other => [(CONTENT.to_owned(), other.to_string())]
            .into_iter()
            .collect(),
    };
    FileLog {
        tags: BTreeMap::new(),
        contents,
    }
}

fn tally(records: &[Value]) -> Tally {
    let logs: Vec<FileLog> = records.iter().map(as_log).collect();
    Tally::of(&logs)
}

/// The numbered line of a record.
fn key_of(v: &Value) -> Option<(String, u64)> {
    v.get(CONTENT)?.as_str().and_then(parse_numbered)
}

/// The last statistics of the buffer of `config`'s `flusher_http` (counter name → value).
fn buffer_stats(run: &HarnessRun, config: &str) -> Option<BTreeMap<String, u64>> {
    e2e_tests::file::buffer_stats(&run.stdout(), config, "flusher_http")
}

/// Waits until the buffer's statistics show `events_out + dropped >= n`; returns the last.
fn wait_buffer_stats(run: &HarnessRun, config: &str, n: u64) -> BTreeMap<String, u64> {
    let done = |s: &BTreeMap<String, u64>| {
        s.get("events_out").copied().unwrap_or(0) + s.get("dropped").copied().unwrap_or(0) >= n
    };
    let mut last = None;
    wait_until(Duration::from_secs(10), || {
        last = buffer_stats(run, config);
        last.as_ref().is_some_and(done)
    });
    last.unwrap_or_default()
}

fn stat(s: &BTreeMap<String, u64>, k: &str) -> u64 {
    s.get(k).copied().unwrap_or(0)
}

/// Waits until the sink accepted every key of `expected`, then until its count has been
/// still for 800 ms (late duplicates would show). Panics on timeout with the tally and the
/// end of the harness's stderr.
fn wait_sink(
    sink: &HttpSink,
    run: &HarnessRun,
    expected: &BTreeSet<(String, u64)>,
    what: &str,
) -> Vec<Value> {
    let ok = wait_until(WAIT, || tally(&sink.records()).has_all(expected));
    if !ok {
        let t = tally(&sink.records());
        panic!(
            "{what}: not every line arrived within {WAIT:?}: {}; {} requests\n{}",
            t.exactly_once(expected)
                .err()
                .unwrap_or_else(|| t.summary()),
            sink.requests(),
            stderr_end("stderr", &run.stderr())
        );
    }
    let mut last = sink.record_count();
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(800) {
        std::thread::sleep(Duration::from_millis(50));
        let now = sink.record_count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    sink.records()
}

/// The first numbered line of a request: the chunk it carried (a retry carries the same).
fn chunk_of(r: &Request) -> Option<(String, u64)> {
    r.records.first().and_then(key_of)
}

/// 20,000 lines, gzipped ndjson, two flush threads, 64 KiB chunks; the sink answers 503 three
/// times, then 503 and 429 with `Retry-After: 1` in turn three times each (a concurrent 503's
/// short back-off must not cut the 429's wait short), 300 ms late three times (the client's
/// `Timeout` is 10 s: these are successes, not duplicates), closes the connection without an
/// answer three times, then 200. Every line arrives exactly once; each 429'd chunk is sent
/// again no sooner than 1 s after the 429; the buffer counts one retry per failed request.
/// Fluent Bit with its `http` input on 127.0.0.1:`port` writing `<dir>/<file>`.
fn start_fb(bin: &Path, dir: &Path, label: &str, port: u16, file: &str) -> FluentBit {
    let input = format!("    Name http\n    Listen 127.0.0.1\n    Port {port}\n");
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
fn http_sink_faults_lose_nothing() {
    const N: u64 = 20_000;
    let (dir, logs) = test_dir("http-faults");
    let (fail, throttle, slow, dropped) = (6, 3, 3, 3);
    let mut steps = Vec::new();
    steps.extend(std::iter::repeat_n(Behaviour::Fail(503), fail - throttle));
    for _ in 0..throttle {
        steps.push(Behaviour::Fail(503));
        steps.push(Behaviour::RetryAfter(1));
    }
    steps.extend(std::iter::repeat_n(
        Behaviour::Delay(Duration::from_millis(300)),
        slow,
    ));
    steps.extend(std::iter::repeat_n(Behaviour::Drop, dropped));
    let sink = HttpSink::start(Script::steps(steps));
    let config = http_config(
        &logs,
        json!({
            "RemoteURL": sink.url(),
            "Body": "ndjson",
            "Compression": "gzip",
            "Concurrency": 2,
            "Timeout": "10s",
            "Buffer": {"ChunkLimitSize": 64 * 1024, "RetryWaitMs": 50, "RetryMaxIntervalMs": 500},
        }),
    );
    let expected = write_lines(&logs, "app.log", N);
    let run = HarnessRun::start_in(dir.path(), "http_faults", &config, &STATS);
    let records = wait_sink(&sink, &run, &expected, "faults");
    let stats = wait_buffer_stats(&run, "http_faults", N);
    let ctx = stderr_end("stderr", &run.stderr());
    let fin = run.stop(STOP);
    let t = tally(&records);
    t.assert_exactly_once(
        &expected,
        "every line exactly once through the faults",
        &ctx,
    );

    let reqs = sink.received();
    let count = |s: Option<u16>| reqs.iter().filter(|r| r.status == s).count();
    let failed = reqs
        .iter()
        .filter(|r| !r.status.is_some_and(|s| (200..300).contains(&s)))
        .count();
    assert_eq!(
        (count(Some(503)), count(Some(429)), count(None)),
        (fail, throttle, dropped),
        "the script's failures were all used ({} requests)\n{ctx}",
        reqs.len()
    );
    for r in &reqs {
        assert_eq!(
            r.header("content-encoding"),
            Some("gzip"),
            "{} {}",
            r.method,
            r.target
        );
    }
    // Each 429'd chunk: its next attempt (the next request carrying the same first line).
    let mut gaps = Vec::new();
    for (i, r) in reqs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == Some(429))
    {
        let chunk = chunk_of(r);
        let again = reqs[i + 1..].iter().find(|q| chunk_of(q) == chunk);
        let Some(again) = again else {
            panic!("the chunk starting at {chunk:?} answered 429 was never sent again\n{ctx}");
        };
        gaps.push(again.received_at.duration_since(r.received_at));
    }
    let timeline: Vec<String> = reqs
        .iter()
        .map(|r| {
            format!(
                "{:?}@{}ms:{:?}",
                chunk_of(r).map(|(_, n)| n),
                r.received_at
                    .duration_since(reqs[0].received_at)
                    .as_millis(),
                r.status
            )
        })
        .take(40)
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_secs(1)),
        "a chunk answered 429 with Retry-After: 1 was sent again sooner: gaps {gaps:?}; \
         requests (first line, arrival, status): {timeline:?}\n{ctx}"
    );
    assert_eq!(
        (stat(&stats, "events_out"), stat(&stats, "dropped")),
        (N, 0),
        "buffer statistics {stats:?}\n{ctx}"
    );
    assert_eq!(
        stat(&stats, "retries"),
        failed as u64,
        "one retry per failed request (statistics {stats:?})\n{ctx}"
    );
    report(
        "http_sink_faults_lose_nothing",
        format!(
            "{}; {} requests ({} failed: 503 x{}, 429 x{}, dropped x{}), {} connections; \
             429 → next attempt of the same chunk: {gaps:?}; buffer stats {stats:?}; exit {:?}; \
             requests (first line, arrival, status): {timeline:?}",
            t.summary_for(&expected),
            reqs.len(),
            failed,
            count(Some(503)),
            count(Some(429)),
            count(None),
            sink.connections(),
            fin.code
        ),
    );
}

/// The amounts in the drop alarms of `stderr` (`<n> records dropped: ...` lines of the
/// engine's log; the `alarm:` lines of `--stats` merge alarms and are left out).
fn dropped_in_alarms(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter(|l| !l.starts_with("alarm:"))
        .filter_map(|l| {
            let (before, _) = l.split_once(" records dropped: ")?;
            let digits: String = before
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            digits.parse().ok()
        })
        .collect()
}

/// A sink answering 400 to everything (unrecoverable: no retry). With a `Secondary`
/// `flusher_file`, every record is in its file exactly once, as the primary's JSON lines, and
/// the sink accepted nothing; without one, the `records dropped` alarms add up to every record
/// and so does the buffer's `dropped` counter.
#[test]
fn http_4xx_goes_to_the_secondary() {
    const N: u64 = 10_000;
    let (dir, logs) = test_dir("http-4xx");
    let failed_log = dir.path().join("failed.log");
    let buffer = json!({"ChunkLimitSize": 64 * 1024, "RetryWaitMs": 50});
    // With a secondary.
    let sink = HttpSink::start(Script::always(Behaviour::Fail(400)));
    let config = http_config(
        &logs,
        json!({
            "RemoteURL": sink.url(),
            "Buffer": buffer,
            "Secondary": {"Type": "flusher_file", "FilePath": failed_log.to_str().unwrap()},
        }),
    );
    let expected = write_lines(&logs, "app.log", N);
    let run = HarnessRun::start_in(dir.path(), "http_4xx", &config, &STATS);
    let file_records = || -> Vec<Value> {
        std::fs::read_to_string(&failed_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    wait_until(WAIT, || tally(&file_records()).has_all(&expected));
    let stats = wait_buffer_stats(&run, "http_4xx", N);
    std::thread::sleep(Duration::from_millis(500));
    let stderr = run.stop(STOP).stderr;
    let ctx = stderr_end("stderr", &stderr);
    let got = file_records();
    let t = tally(&got);
    t.assert_exactly_once(&expected, "every record in the secondary's file once", &ctx);
    let text = std::fs::read_to_string(&failed_log).unwrap_or_default();
    assert_eq!(
        text.lines().count(),
        N as usize,
        "one JSON line per record in {}\n{ctx}",
        failed_log.display()
    );
    assert!(
        got.iter().all(|r| r.get("__time__").is_some()),
        "the primary's JSON format (with __time__): {:?}",
        got.first()
    );
    let secondary_alarms = stderr
        .lines()
        .filter(|l| !l.starts_with("alarm:") && l.contains("written to the secondary"))
        .count();
    let reqs = sink.received();
    assert_eq!(sink.record_count(), 0, "the sink accepted nothing");
    assert!(
        !reqs.is_empty() && reqs.iter().all(|r| r.status == Some(400)),
        "{} requests",
        reqs.len()
    );
    assert_eq!(
        reqs.len(),
        secondary_alarms,
        "each chunk tried once (400 is not retried), then written to the secondary\n{ctx}"
    );
    let sent: usize = reqs.iter().map(|r| r.records.len()).sum();
    assert_eq!(sent, N as usize, "records sent to the sink\n{ctx}");
    assert_eq!(
        (stat(&stats, "events_out"), stat(&stats, "dropped")),
        (N, 0),
        "buffer statistics {stats:?}\n{ctx}"
    );
    let with_secondary = format!(
        "{}; {} requests (all 400), {} 'written to the secondary' alarms; stats {stats:?}",
        t.summary_for(&expected),
        reqs.len(),
        secondary_alarms
    );
    drop(sink);

    // Without a secondary: dropped, counted and alarmed.
    let (dir, logs) = test_dir("http-4xx-drop");
    let sink = HttpSink::start(Script::always(Behaviour::Fail(400)));
    let config = http_config(&logs, json!({"RemoteURL": sink.url(), "Buffer": buffer}));
    write_lines(&logs, "app.log", N);
    let run = HarnessRun::start_in(dir.path(), "http_4xx_drop", &config, &STATS);
    let sent = || -> usize { sink.received().iter().map(|r| r.records.len()).sum() };
    wait_until(WAIT, || sent() >= N as usize);
    let stats = wait_buffer_stats(&run, "http_4xx_drop", N);
    wait_until(Duration::from_secs(5), || {
        dropped_in_alarms(&run.stderr()).iter().sum::<u64>() >= N
    });
    std::thread::sleep(Duration::from_millis(300));
    let stderr = run.stop(STOP).stderr;
    let ctx = stderr_end("stderr", &stderr);
    let drops = dropped_in_alarms(&stderr);
    let total: u64 = drops.iter().sum();
    assert_eq!(sink.record_count(), 0, "the sink accepted nothing");
    assert_eq!(sent(), N as usize, "records sent to the sink\n{ctx}");
    assert_eq!(
        total,
        N,
        "the 'records dropped' alarms add up to every record ({} alarms: {drops:?})\n{ctx}",
        drops.len()
    );
    assert_eq!(
        drops.len(),
        sink.requests(),
        "one drop alarm per refused chunk\n{ctx}"
    );
    assert_eq!(
        (stat(&stats, "events_out"), stat(&stats, "dropped")),
        (0, N),
        "buffer statistics {stats:?}\n{ctx}"
    );
    report(
        "http_4xx_goes_to_the_secondary",
        format!(
            "with a secondary: {with_secondary}; without: {} requests, {} drop alarms summing to {total}; stats {stats:?}",
            sink.requests(),
            drops.len()
        ),
    );
}

/// `Body: json` (an array per request) and `Convert.Encoding: protobuf` (a `LogGroupList`),
/// both decoded by the sink: exactly N records each, every request of the content type asked.
#[test]
fn http_json_and_protobuf_bodies() {
    const N: u64 = 10_000;
    let cases = [
        ("json", json!({"Body": "json"}), "application/json"),
        (
            "protobuf",
            json!({"Convert": {"Encoding": "protobuf"}}),
            "application/x-protobuf",
        ),
    ];
    let mut runs = Vec::new();
    for (name, extra, _) in &cases {
        let (dir, logs) = test_dir(&format!("http-body-{name}"));
        let sink = HttpSink::start(Script::default());
        let mut detail = json!({
            "RemoteURL": sink.url(),
            "Buffer": {"ChunkLimitSize": 128 * 1024},
        });
        for (k, v) in extra.as_object().unwrap() {
            detail[k] = v.clone();
        }
        let expected = write_lines(&logs, "app.log", N);
        let config_name = format!("http_body_{name}");
        let run = HarnessRun::start_in(
            dir.path(),
            &config_name,
            &http_config(&logs, detail),
            &STATS,
        );
        runs.push((dir, sink, run, expected, config_name));
    }
    let mut seen = Vec::new();
    for ((name, _, content_type), (_dir, sink, run, expected, config_name)) in
        cases.iter().zip(runs)
    {
        let records = wait_sink(&sink, &run, &expected, name);
        let stats = wait_buffer_stats(&run, &config_name, N);
        let ctx = stderr_end("stderr", &run.stderr());
        run.stop(STOP);
        let t = tally(&records);
        t.assert_exactly_once(&expected, &format!("Body {name}"), &ctx);
        let reqs = sink.received();
        for r in &reqs {
            assert_eq!(
                r.header("content-type"),
                Some(*content_type),
                "Body {name}: a request's content type"
            );
            assert_eq!(r.status, Some(200));
        }
        if *name == "json" {
            assert!(
                reqs.iter().all(|r| r.body.first() == Some(&b'[')),
                "Body json: every body is an array"
            );
        }
        assert_eq!(
            (stat(&stats, "events_out"), stat(&stats, "retries")),
            (N, 0),
            "{name}: buffer statistics {stats:?}\n{ctx}"
        );
        seen.push(format!(
            "{name}: {} in {} requests",
            t.summary_for(&expected),
            reqs.len()
        ));
    }
    report("http_json_and_protobuf_bodies", seen.join("; "));
}

/// The counts of `tag`'s numbers in `records`.
fn counts_of(records: &[Value], tag: &str) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for (t, n) in records.iter().filter_map(key_of) {
        if t == tag {
            *m.entry(n).or_insert(0) += 1;
        }
    }
    m
}

/// 10,000 lines → `flusher_http` (`Body: json`) → Fluent Bit's `http` input → its `file`
/// output: exactly 10,000 records, each line once. Then 10,000 more lines written over about
/// four seconds; Fluent Bit is killed with SIGKILL once about half of them arrived and started
/// again on the same port 2 s later: across both output files every line arrived at least
/// once (duplicates are possible: what was in flight at the kill is sent again).
#[test]
fn fluent_bit_http_input_receives_everything() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: u64 = 10_000;
    let (dir, logs) = test_dir("http-fluent-bit");
    let port = free_port();
    let (out1, out2) = (dir.path().join("out-1.log"), dir.path().join("out-2.log"));
    let fb = start_fb(&bin, dir.path(), "fb-1", port, "out-1.log");
    let config = http_config(
        &logs,
        json!({
            "RemoteURL": format!("http://127.0.0.1:{port}/app.log"),
            "Body": "json",
            "Timeout": "5s",
            // Small chunks often: requests are in flight (and records in Fluent Bit's
            // buffer, not yet in its file) when the kill comes.
            "Buffer": {"ChunkLimitSize": 16 * 1024, "FlushIntervalMs": 100, "RetryWaitMs": 100,
                "RetryMaxIntervalMs": 1000},
        }),
    );
    let mut first = Writer::open(&logs.join("a.log"), "a", PAD);
    first.write(N);
    let run = HarnessRun::start_in(dir.path(), "http_fluent_bit", &config, &STATS);
    let all_a = wait_until(WAIT, || {
        counts_of(&fb_records(&out1), "a").len() >= N as usize
    });
    if all_a {
        // Late duplicates would show.
        std::thread::sleep(Duration::from_millis(800));
    }
    let a = counts_of(&fb_records(&out1), "a");
    let a_total: usize = a.values().sum();
    assert!(
        all_a && a_total == N as usize,
        "Fluent Bit's output has {} distinct of {N} lines, {a_total} records (exactly once expected)\n\
         --- Fluent Bit ---\n{}\n{}",
        a.len(),
        fb.log(),
        stderr_end("harness stderr", &run.stderr())
    );

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
    let fb = start_fb(&bin, dir.path(), "fb-2", port, "out-2.log");
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
    let stats = buffer_stats(&run, "http_fluent_bit").unwrap_or_default();
    let harness_err = run.stop(STOP).stderr;
    let log2 = fb.stop();
    let missing: Vec<u64> = (1..=N).filter(|n| !b.contains_key(n)).collect();
    let dups: Vec<(u64, usize)> = b
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, c)| (*n, *c))
        .collect();
    let (in1, in2) = (
        counts_of(&fb_records(&out1), "b").values().sum::<usize>(),
        counts_of(&fb_records(&out2), "b").values().sum::<usize>(),
    );
    assert!(
        complete && missing.is_empty(),
        "after the SIGKILL and restart: {} of {N} lines arrived, missing {} (first {:?}); \
         {} duplicated (first {:?}); {in1} records in out-1.log, {in2} in out-2.log\n\
         --- Fluent Bit 1 (end) ---\n{}\n--- Fluent Bit 2 (end) ---\n{}\n{}",
        b.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        dups.len(),
        &dups[..dups.len().min(10)],
        e2e_tests::file::tail(&log1, 20),
        e2e_tests::file::tail(&log2, 20),
        stderr_end("harness stderr", &harness_err)
    );
    report(
        "fluent_bit_http_input_receives_everything",
        format!(
            "first pass: {} distinct, {a_total} records; kill at {at_kill} distinct; after the restart: \
             {} distinct, {in1} records in out-1.log + {in2} in out-2.log, {} duplicated lines; \
             buffer stats {stats:?}; backlog chunks Fluent Bit 2 recovered from its storage: {}",
            a.len(),
            b.len(),
            dups.len(),
            log2.matches("flush backlog chunk").count()
        ),
    );
}
