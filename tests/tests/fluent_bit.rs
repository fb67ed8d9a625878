//! Our Fluent Bit plugins inside the real Fluent Bit (`../shared/tools/fluent-bit`, or
//! `$FLUENT_BIT_BIN`): `tail` of a numbered file → our output plugin → a file flusher, every
//! record exactly once with its fields and time; two instances with different pipelines;
//! `workers 2`; a destination too slow for `flush_timeout_ms` (the FLB_RETRY path) losing
//! nothing; each Fluent Bit tag to its own file through `flusher_file` (`${tag}`); our input
//! plugin → Fluent Bit's `file` output with counts checked. Skipped, saying
//! so, when that Fluent Bit is absent (a clone without `../shared`).

use e2e_tests::util::{fluent_bit_or_skip, fluent_bit_plugin, wait_until, TempDir};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

struct FluentBit {
    child: Child,
    log: PathBuf,
}

impl FluentBit {
    /// Starts Fluent Bit with `conf` (classic format) and our plugins loaded with `-e`.
    fn start(bin: &Path, dir: &TempDir, conf: &str, plugins: &[PathBuf]) -> FluentBit {
        Self::start_with(bin, dir, conf, plugins, &[])
    }

    /// [`FluentBit::start`] with extra command-line arguments.
    fn start_with(
        bin: &Path,
        dir: &TempDir,
        conf: &str,
        plugins: &[PathBuf],
        args: &[&str],
    ) -> FluentBit {
        let conf_path = dir.write("fluent-bit.conf", conf);
        let log = dir.path().join("fluent-bit.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(args);
        for p in plugins {
            cmd.arg("-e").arg(p);
        }
        cmd.arg("-c").arg(&conf_path);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        FluentBit { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, then waits for the exit (Fluent Bit's grace is set to 1 s); returns the log.
    fn stop(mut self) -> String {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let exited = wait_until(Duration::from_secs(20), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("Fluent Bit did not exit on SIGTERM:\n{}", self.log());
        }
        self.log()
    }
}

impl Drop for FluentBit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SERVICE: &str = "[SERVICE]\n    Flush 0.2\n    Grace 1\n    Log_Level info\n    scheduler.base 1\n    scheduler.cap 2\n";

/// A Fluent Bit config running `pipeline` (written to `dir` as `pipeline.json`) in our input
/// plugin with tag `tag`, its records going to Fluent Bit's `file` output; returns the config
/// and the output file (`<dir>/out.txt`).
fn pluginrt_input_to_file(dir: &TempDir, tag: &str, pipeline: &Value) -> (String, PathBuf) {
    let pipeline = dir.write("pipeline.json", &pipeline.to_string());
    let conf = format!(
        "{SERVICE}[INPUT]\n    Name pluginrt_input\n    Tag {tag}\n    pipeline {}\n    checkpoint_dir {}\n\
         [OUTPUT]\n    Name file\n    Match {tag}\n    Path {}\n    File out.txt\n",
        pipeline.display(),
        dir.path().join("ckpt").display(),
        dir.path().display()
    );
    (conf, dir.path().join("out.txt"))
}

/// JSON lines of `path` (none when it does not exist yet).
fn lines(path: &Path) -> Vec<Value> {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s.lines()
        .filter(|l| l.ends_with('}'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn numbered(dir: &TempDir, name: &str, n: usize) -> PathBuf {
    let text: String = (1..=n).map(|i| format!("line number {i}\n")).collect();
    dir.write(name, &text)
}

fn regex_pipeline(out: &Path, extra: &str) -> String {
    serde_json::json!({
        "processors": [
            {"type": "processor_regex", "detail": {"SourceKey": "log", "Regex": "line number (\\d+)", "Keys": ["n"], "KeepSource": true}},
            {"type": "processor_add_fields", "detail": {"Fields": {"via": extra}}}
        ],
        "flushers": [{"type": "flusher_stdout", "detail": {"FileName": out.to_str().unwrap(), "Tags": true}}]
    })
    .to_string()
}

/// Parses Fluent Bit's `file` output (`tag: [sec.nsec, {record}]`) into (record, time).
fn fb_file_records(path: &Path) -> Vec<(Value, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(": [")?;
            let (time, rec) = rest.split_once(", ")?;
            let rec: Value = serde_json::from_str(rec.strip_suffix(']')?).ok()?;
            Some((rec, time.to_string()))
        })
        .collect()
}

#[test]
fn tail_through_our_output_plugin_arrives_exactly_once_with_fields_and_time() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: usize = 20_000;
    let dir = TempDir::new("fb-out");
    let input = numbered(&dir, "in.log", N);
    let ours = dir.path().join("ours.jsonl");
    let pipeline = dir.write("pipeline.json", &regex_pipeline(&ours, "one"));
    let conf = format!(
        "{SERVICE}[INPUT]\n    Name tail\n    Path {}\n    Read_from_Head true\n    Tag numbered\n\
         [OUTPUT]\n    Name pluginrt\n    Match numbered\n    Retry_Limit False\n    pipeline {}\n    checkpoint_dir {}\n\
         [OUTPUT]\n    Name file\n    Match numbered\n    Path {}\n    File theirs.txt\n",
        input.display(),
        pipeline.display(),
        dir.path().join("ckpt").display(),
        dir.path().display()
    );
    let fb = FluentBit::start(&bin, &dir, &conf, &[fluent_bit_plugin(true)]);
    let arrived = wait_until(WAIT, || lines(&ours).len() >= N);
    let log = fb.stop();
    assert!(
        arrived,
        "{} of {N} records arrived:\n{log}",
        lines(&ours).len()
    );
    let got = lines(&ours);
    assert_eq!(got.len(), N, "exactly once:\n{log}");
    let mut seen = BTreeSet::new();
    let mut by_n: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &got {
        let n = r["n"].as_str().unwrap().to_string();
        assert_eq!(r["log"], format!("line number {n}"), "{r}");
        assert_eq!(r["via"], "one");
        assert_eq!(r["__tag__:fluentbit_tag"], "numbered");
        by_n.insert(
            n.clone(),
            (
                r["__time__"].as_u64().unwrap(),
                r["__time_ns__"].as_u64().unwrap(),
            ),
        );
        assert!(seen.insert(n), "duplicate {r}");
    }
    let want: BTreeSet<String> = (1..=N).map(|i| i.to_string()).collect();
    assert_eq!(seen, want);
    // The time of every record is the one Fluent Bit gave it (its own file output prints
    // `sec.nsec` with nine digits).
    let theirs = fb_file_records(&dir.path().join("theirs.txt"));
    assert_eq!(theirs.len(), N, "Fluent Bit's own output");
    for (rec, time) in theirs {
        let n = rec["log"]
            .as_str()
            .unwrap()
            .trim_start_matches("line number ")
            .to_string();
        let (s, ns) = by_n[&n];
        assert_eq!(time, format!("{s}.{ns:09}"), "time of record {n}");
    }
}

/// Two `tail` inputs with tags `app` and `web` → our output plugin (`Match *`) whose
/// pipeline ends in `flusher_file` with a memory buffer cut by `tag` and `FilePath`
/// `out-${tag}.json`: each tag's records land in its own file, each exactly once (a flush is
/// acknowledged to Fluent Bit once its chunk was written).
#[test]
fn our_output_plugin_writes_each_fluent_bit_tag_to_its_own_file() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: usize = 10_000;
    let dir = TempDir::new("fb-out-by-tag");
    let app = numbered(&dir, "app.log", N);
    let web = numbered(&dir, "web.log", N / 2);
    let pattern = dir.path().join("out-${tag}.json");
    let pipeline = serde_json::json!({
        "flushers": [{"type": "flusher_file", "detail": {
            "FilePath": pattern.to_str().unwrap(),
            "Buffer": {"ChunkKeys": ["tag"], "FlushIntervalMs": 200}}}]
    });
    let pipeline = dir.write("pipeline.json", &pipeline.to_string());
    let conf = format!(
        "{SERVICE}[INPUT]\n    Name tail\n    Path {}\n    Read_from_Head true\n    Tag app\n\
         [INPUT]\n    Name tail\n    Path {}\n    Read_from_Head true\n    Tag web\n\
         [OUTPUT]\n    Name pluginrt\n    Match *\n    Retry_Limit False\n    pipeline {}\n    checkpoint_dir {}\n",
        app.display(),
        web.display(),
        pipeline.display(),
        dir.path().join("ckpt").display(),
    );
    let fb = FluentBit::start(&bin, &dir, &conf, &[fluent_bit_plugin(true)]);
    let (app_out, web_out) = (
        dir.path().join("out-app.json"),
        dir.path().join("out-web.json"),
    );
    let arrived = wait_until(WAIT, || {
        lines(&app_out).len() >= N && lines(&web_out).len() >= N / 2
    });
    let log = fb.stop();
    assert!(
        arrived,
        "app {} of {N}, web {} of {}:\n{log}",
        lines(&app_out).len(),
        lines(&web_out).len(),
        N / 2
    );
    for (out, n) in [(&app_out, N), (&web_out, N / 2)] {
        let got: BTreeSet<String> = lines(out)
            .iter()
            .map(|r| r["log"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            lines(out).len(),
            n,
            "{}: exactly once:\n{log}",
            out.display()
        );
        let want: BTreeSet<String> = (1..=n).map(|i| format!("line number {i}")).collect();
        assert_eq!(got, want, "{}", out.display());
    }
}

#[test]
fn two_instances_with_their_own_pipelines_and_two_workers() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: usize = 5_000;
    let dir = TempDir::new("fb-two");
    let (a_in, b_in) = (numbered(&dir, "a.log", N), numbered(&dir, "b.log", N));
    let (a_out, b_out) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let (a_pipe, b_pipe) = (
        dir.write("a.json", &regex_pipeline(&a_out, "a")),
        dir.write("b.json", &regex_pipeline(&b_out, "b")),
    );
    let conf = format!(
        "{SERVICE}[INPUT]\n    Name tail\n    Path {}\n    Read_from_Head true\n    Tag a\n\
         [INPUT]\n    Name tail\n    Path {}\n    Read_from_Head true\n    Tag b\n\
         [OUTPUT]\n    Name pluginrt\n    Match a\n    Retry_Limit False\n    pipeline {}\n    pipeline_name pipe-a\n    checkpoint_dir {}\n\
         [OUTPUT]\n    Name pluginrt\n    Match b\n    Workers 2\n    Retry_Limit False\n    pipeline {}\n    pipeline_name pipe-b\n",
        a_in.display(),
        b_in.display(),
        a_pipe.display(),
        dir.path().join("ckpt").display(),
        b_pipe.display(),
    );
    let fb = FluentBit::start(&bin, &dir, &conf, &[fluent_bit_plugin(true)]);
    let arrived = wait_until(WAIT, || {
        lines(&a_out).len() >= N && lines(&b_out).len() >= N
    });
    let log = fb.stop();
    assert!(
        arrived,
        "a {} b {} of {N}:\n{log}",
        lines(&a_out).len(),
        lines(&b_out).len()
    );
    for (out, via, tag) in [(&a_out, "a", "a"), (&b_out, "b", "b")] {
        let got = lines(out);
        let ns: BTreeSet<String> = got
            .iter()
            .map(|r| {
                assert_eq!(
                    (r["via"].as_str(), r["__tag__:fluentbit_tag"].as_str()),
                    (Some(via), Some(tag))
                );
                r["n"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!((got.len(), ns.len()), (N, N), "{via}: exactly once");
    }
}

#[test]
fn a_destination_slower_than_the_flush_timeout_is_retried_and_nothing_is_lost() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: usize = 3_000;
    let dir = TempDir::new("fb-slow");
    let input = numbered(&dir, "in.log", N);
    let fifo = dir.path().join("slow.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: creating a FIFO at a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // A reader that takes 8 KiB every 20 ms: the flusher blocks on the full pipe, chunks miss
    // the 200 ms flush timeout and Fluent Bit retries them.
    let read = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let (fifo, read) = (fifo.clone(), read.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::File::open(&fifo).unwrap();
            let mut buf = [0u8; 8192];
            loop {
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read.lock().unwrap().extend_from_slice(&buf[..n]),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let numbers = || -> BTreeSet<String> {
        let text = String::from_utf8_lossy(&read.lock().unwrap()).into_owned();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|r| r["n"].as_str().map(str::to_string))
            .collect()
    };
    let pipeline = dir.write("pipeline.json", &regex_pipeline(&fifo, "slow"));
    let conf = format!(
        "{SERVICE}[INPUT]\n    Name tail\n    Path {}\n    Read_from_Head true\n    Tag slow\n\
         [OUTPUT]\n    Name pluginrt\n    Match slow\n    Retry_Limit False\n    flush_timeout_ms 200\n    pipeline {}\n    checkpoint_dir {}\n",
        input.display(),
        pipeline.display(),
        dir.path().join("ckpt").display()
    );
    let fb = FluentBit::start(&bin, &dir, &conf, &[fluent_bit_plugin(true)]);
    let retried = wait_until(WAIT, || fb.log().contains("retries it"));
    let complete = wait_until(WAIT, || numbers().len() >= N);
    let log = fb.stop();
    let _ = reader.join();
    assert!(retried, "the slow path (FLB_RETRY) was not taken:\n{log}");
    let want: BTreeSet<String> = (1..=N).map(|i| i.to_string()).collect();
    let ns = numbers();
    let missing: Vec<_> = want.difference(&ns).take(5).collect();
    assert!(
        complete && missing.is_empty(),
        "missing {} records, e.g. {missing:?}:\n{log}",
        want.len() - ns.len()
    );
}

#[test]
fn our_input_plugin_feeds_fluent_bit_with_every_record() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: usize = 7_000;
    let dir = TempDir::new("fb-in");
    let (conf, out) = pluginrt_input_to_file(
        &dir,
        "mock",
        &serde_json::json!({
            "inputs": [{"type": "service_mock", "detail": {"Fields": {"msg": "hello"}, "MaxLogCount": N, "LogsPerSecond": 20_000}}],
            "processors": [{"type": "processor_add_fields", "detail": {"Fields": {"stage": "ours"}}}]
        }),
    );
    let fb = FluentBit::start(&bin, &dir, &conf, &[fluent_bit_plugin(false)]);
    let arrived = wait_until(WAIT, || fb_file_records(&out).len() >= N);
    let log = fb.stop();
    let got = fb_file_records(&out);
    assert!(arrived, "{} of {N}:\n{log}", got.len());
    let idx: BTreeSet<u64> = got
        .iter()
        .map(|(r, _)| {
            assert_eq!(
                (r["msg"].as_str(), r["stage"].as_str()),
                (Some("hello"), Some("ours")),
                "{r}"
            );
            r["Index"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!((got.len(), idx.len()), (N, N), "exactly once");
    assert_eq!(idx.iter().next_back(), Some(&(N as u64)));
}

#[test]
fn a_hot_reload_loses_nothing_in_flight() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: usize = 30_000;
    let dir = TempDir::new("fb-reload");
    let input = dir.path().join("in.log");
    std::fs::write(&input, "").unwrap();
    let ours = dir.path().join("ours.jsonl");
    let pipeline = dir.write("pipeline.json", &regex_pipeline(&ours, "reload"));
    let conf = format!(
        "{SERVICE}[INPUT]\n    Name tail\n    Path {}\n    DB {}\n    Read_from_Head true\n    Refresh_Interval 1\n    Tag numbered\n\
         [OUTPUT]\n    Name pluginrt\n    Match numbered\n    Retry_Limit False\n    pipeline {}\n    checkpoint_dir {}\n",
        input.display(),
        dir.path().join("tail.db").display(),
        pipeline.display(),
        dir.path().join("ckpt").display()
    );
    let fb = FluentBit::start_with(&bin, &dir, &conf, &[fluent_bit_plugin(true)], &["-Y"]);
    // The lines are written over about three seconds; the reload comes in the middle.
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&input)
                .unwrap();
            for i in 1..=N {
                writeln!(f, "line number {i}").unwrap();
                if i % 1000 == 0 {
                    f.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };
    let started = wait_until(WAIT, || lines(&ours).len() >= N / 4);
    fb.signal(libc::SIGHUP);
    writer.join().unwrap();
    let complete = wait_until(WAIT, || {
        let ns: BTreeSet<String> = lines(&ours)
            .iter()
            .filter_map(|r| r["n"].as_str().map(str::to_string))
            .collect();
        ns.len() >= N
    });
    let text = fb.stop();
    assert!(started, "nothing arrived before the reload:\n{text}");
    assert!(
        text.contains("successful reload"),
        "Fluent Bit did not reload:\n{text}"
    );
    let ns: BTreeSet<String> = lines(&ours)
        .iter()
        .filter_map(|r| r["n"].as_str().map(str::to_string))
        .collect();
    assert!(
        complete,
        "{} of {N} distinct records after the reload:\n{text}",
        ns.len()
    );
}

#[test]
fn input_file_inside_fluent_bit_delivers_every_line_once_and_resumes_after_a_restart() {
    let Some(bin) = fluent_bit_or_skip() else {
        return;
    };
    const N: usize = 20_000;
    let dir = TempDir::new("fb-in-file");
    let log_file = numbered(&dir, "app.log", N);
    let (conf, out) = pluginrt_input_to_file(
        &dir,
        "files",
        &serde_json::json!({
            "inputs": [{"type": "input_file", "detail": {
                "FilePaths": [log_file.to_str().unwrap()], "ScanIntervalMs": 100}}],
        }),
    );
    let numbers = |recs: &[(Value, String)]| -> Vec<u64> {
        recs.iter()
            .map(|(r, _)| {
                let line = r["content"].as_str().unwrap_or_else(|| panic!("{r}"));
                line.trim_start_matches("line number ").parse().unwrap()
            })
            .collect()
    };
    let fb = FluentBit::start(&bin, &dir, &conf, &[fluent_bit_plugin(false)]);
    let arrived = wait_until(WAIT, || fb_file_records(&out).len() >= N);
    let log = fb.stop();
    let first = fb_file_records(&out);
    assert!(arrived, "{} of {N}:\n{log}", first.len());
    assert_eq!(
        first[0].0["__tag__:__path__"].as_str(),
        log_file.to_str(),
        "{:?}",
        first[0]
    );
    // Lines written while Fluent Bit is down arrive after its restart, and only they.
    let more: String = (N + 1..=N + 500)
        .map(|i| format!("line number {i}\n"))
        .collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log_file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, more.as_bytes()))
        .unwrap();
    let fb = FluentBit::start(&bin, &dir, &conf, &[fluent_bit_plugin(false)]);
    let arrived = wait_until(WAIT, || fb_file_records(&out).len() >= N + 500);
    // A little longer: a restart from 0 would show as more records.
    std::thread::sleep(Duration::from_millis(500));
    let log = fb.stop();
    let got = numbers(&fb_file_records(&out));
    assert!(arrived, "{} of {}:\n{log}", got.len(), N + 500);
    let unique: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(
        (got.len(), unique.len()),
        (N + 500, N + 500),
        "every line exactly once across the restart"
    );
    assert_eq!(unique.iter().next_back(), Some(&((N + 500) as u64)));
}
