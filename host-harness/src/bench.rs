//! `bench`: push generated log lines (nginx or JSON) through `ProcessLogGroup` and measure until
//! the host has received them all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prost::Message as _;

use crate::cli::{BenchOpts, InputFormat, Scenario};
use crate::host;
use crate::jsonlog::JsonLines;
use crate::libs::{load_for_command, Flavour, Libs};
use crate::nginx::NginxLines;
use crate::proto::{Content, Log, LogGroup};
use crate::run::{data_dir, init_json, loong_init_json, PROJECT};

/// Config name (and logstore) of the bench pipeline.
const CONFIG: &str = "bench";
/// At most this many distinct batches are generated; they are reused cyclically.
const RING_MAX: u64 = 64;
/// Rough bound on the bytes of generated lines kept in the ring.
const RING_BYTES: u64 = 64 << 20;

/// Processors of `--scenario nginx-regex`.
const NGINX_REGEX: &str = include_str!("../scenarios/nginx-regex.json");
/// Processors of `--scenario regex-filter-add` (the filter drops status `^3\d\d$`).
const REGEX_FILTER_ADD: &str = include_str!("../scenarios/regex-filter-add.json");
/// Processors of `--scenario json`.
const JSON: &str = r#"[
  { "type": "processor_json", "detail": { "SourceKey": "content", "ExpandDepth": 0 } }
]"#;

/// The processors of a scenario.
pub fn scenario_processors(s: Scenario) -> Vec<serde_json::Value> {
    let text = match s {
        Scenario::Raw => return Vec::new(),
        Scenario::NginxRegex => NGINX_REGEX,
        Scenario::RegexFilterAdd => REGEX_FILTER_ADD,
        Scenario::Json => JSON,
    };
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Array(a)) => a,
        other => panic!("built-in processors of {}: {other:?}", s.name()),
    }
}

/// Logs the host receives for `work` under scenario `s`.
pub fn scenario_expected(s: Scenario, work: &Workload) -> u64 {
    match s {
        Scenario::RegexFilterAdd => work.events - work.total(|b| b.status_3xx),
        Scenario::Raw | Scenario::NginxRegex | Scenario::Json => work.events,
    }
}

/// The bench pipeline config.
pub fn bench_config(processors: &[serde_json::Value], aggregate_ms: u64) -> String {
    serde_json::json!({
        "global": { "AggregatIntervalMs": aggregate_ms },
        "processors": processors,
        "aggregators": [ { "type": "aggregator_default" } ],
        "flushers": [ { "type": "flusher_sls" } ],
    })
    .to_string()
}

/// One serialized batch.
pub struct Batch {
    /// The serialized `LogGroup`.
    pub data: Vec<u8>,
    /// Bytes of its lines.
    pub line_bytes: u64,
    /// How many of its lines have an HTTP status 3xx (nginx input; 0 for JSON).
    pub status_3xx: u64,
}

/// Pre-serialized input: a ring of full batches and an optional partial last batch.
pub struct Workload {
    /// Serialized full batches.
    pub ring: Vec<Batch>,
    /// Serialized partial last batch.
    pub tail: Option<Batch>,
    /// Number of full batches to send.
    pub full_batches: u64,
    /// Total events sent.
    pub events: u64,
}

/// The line generator of an input format.
enum Lines {
    Nginx(NginxLines),
    Json(JsonLines),
}

impl Lines {
    /// The `i`-th line and whether it has a 3xx status.
    fn line(&mut self, i: u64) -> (String, bool) {
        match self {
            Lines::Nginx(g) => {
                let l = g.line(i);
                (l, (300..400).contains(&g.status()))
            }
            Lines::Json(g) => (g.line(i), false),
        }
    }
}

/// How the batches are serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `sls_logs.LogGroup`, for `ProcessLogGroup`.
    LogGroup,
    /// LoongCollector's `logtail.models.PipelineEventGroup`, for `ProcessPipelineEventGroup`.
    EventGroup,
}

/// `group` as LoongCollector serializes it for `ProcessPipelineEventGroup` (timestamps in
/// ns, the source in metadata 25).
fn as_event_group(group: &LogGroup) -> Vec<u8> {
    use wire::models;
    let events = group
        .logs
        .iter()
        .map(|l| models::LogEvent {
            timestamp: u64::from(l.time) * 1_000_000_000,
            contents: l
                .contents
                .iter()
                .map(|c| models::Content {
                    key: c.key.clone().into(),
                    value: c.value.clone().into(),
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    models::PipelineEventGroup {
        metadata: [("25".to_string(), b"/var/log/bench.log".to_vec())].into(),
        events: Some(models::PipelineEvents::Logs(models::LogEvents { events })),
        ..Default::default()
    }
    .encode_to_vec()
}

fn serialize(lines: &mut Lines, first: u64, n: u64, time: u32, wire: Wire) -> Batch {
    let mut line_bytes = 0;
    let mut status_3xx = 0;
    let logs = (first..first + n)
        .map(|i| {
            let (line, is_3xx) = lines.line(i);
            line_bytes += line.len() as u64;
            status_3xx += u64::from(is_3xx);
            Log {
                time,
                contents: vec![Content {
                    key: "content".to_string(),
                    value: line,
                }],
                values: Vec::new(),
                time_ns: None,
            }
        })
        .collect();
    let group = LogGroup {
        logs,
        ..LogGroup::default()
    };
    Batch {
        data: match wire {
            Wire::LogGroup => group.encode_to_vec(),
            Wire::EventGroup => as_event_group(&group),
        },
        line_bytes,
        status_3xx,
    }
}

impl Workload {
    /// Generates the batches for `events` events of `batch` logs each.
    pub fn generate(
        events: u64,
        batch: u64,
        time: u32,
        input: InputFormat,
        wire: Wire,
    ) -> Workload {
        let full_batches = events / batch;
        let tail_len = events % batch;
        let per_line = match input {
            InputFormat::Nginx => 200,
            InputFormat::Json => 250,
        };
        let ring_len = (RING_BYTES / (batch * per_line))
            .clamp(1, RING_MAX)
            .min(full_batches);
        let mut lines = match input {
            InputFormat::Nginx => Lines::Nginx(NginxLines::new(0x5EED, u64::from(time))),
            InputFormat::Json => Lines::Json(JsonLines::new(0x5EED, u64::from(time))),
        };
        let ring = (0..ring_len)
            .map(|j| serialize(&mut lines, j * batch, batch, time, wire))
            .collect();
        let tail = (tail_len > 0)
            .then(|| serialize(&mut lines, full_batches * batch, tail_len, time, wire));
        Workload {
            ring,
            tail,
            full_batches,
            events,
        }
    }

    /// Total calls to make.
    pub fn calls(&self) -> u64 {
        self.full_batches + u64::from(self.tail.is_some())
    }

    /// The serialized group of call `k`.
    pub fn group(&self, k: u64) -> &[u8] {
        if k < self.full_batches {
            &self.ring[(k % self.ring.len() as u64) as usize].data
        } else {
            &self.tail.as_ref().expect("k < calls()").data
        }
    }

    /// Sum of `f` over every batch that will be sent (ring batches counted as often as sent).
    pub fn total(&self, f: impl Fn(&Batch) -> u64) -> u64 {
        let r = self.ring.len() as u64;
        let ring_total: u64 = self.ring.iter().map(&f).sum();
        let total = match self.full_batches.checked_div(r) {
            Some(rounds) => {
                rounds * ring_total
                    + self.ring[..(self.full_batches % r) as usize]
                        .iter()
                        .map(&f)
                        .sum::<u64>()
            }
            None => 0,
        };
        total + self.tail.as_ref().map_or(0, f)
    }

    /// Bytes of all lines that will be sent.
    pub fn line_bytes(&self) -> u64 {
        self.total(|b| b.line_bytes)
    }
}

/// User + system CPU seconds and peak RSS (KiB) of this process.
pub fn rusage() -> (f64, i64) {
    // SAFETY: getrusage fills the zeroed struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_maxrss as i64)
}

fn read_processors(path: &std::path::Path) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(a)) => Ok(a),
        Ok(_) => Err(format!(
            "{}: expected a JSON array of processor entries",
            path.display()
        )),
        Err(e) => Err(format!("{}: not valid JSON: {e}", path.display())),
    }
}

/// Runs the `bench` command; returns the exit code.
pub fn run(o: BenchOpts) -> i32 {
    let processors = match (o.scenario, o.processors.as_deref()) {
        (Some(s), _) => scenario_processors(s),
        (None, path) => match path.map(read_processors).transpose() {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => {
                eprintln!("harness: error: {e}");
                return 1;
            }
        },
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let gen_start = Instant::now();
    let wire = if o.loongcollector {
        Wire::EventGroup
    } else {
        Wire::LogGroup
    };
    let work = Workload::generate(o.events, o.batch as u64, now, o.input, wire);
    if !o.json {
        eprintln!(
            "harness: generated {} distinct batches of {} {} logs in {:.2} s",
            work.ring.len() + usize::from(work.tail.is_some()),
            o.batch,
            o.input.name(),
            gen_start.elapsed().as_secs_f64()
        );
    }
    host::install_bench(CONFIG, o.verify);
    let Some(libs) = load_for_command(o.lib_dir.as_deref(), Flavour::of(o.loongcollector)) else {
        return 2;
    };
    let process = match libs.process_fn(o.loongcollector) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let (dir, ours) = match data_dir(o.data_dir.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("harness: error: {e}");
            return 1;
        }
    };
    let code = timed(&o, &libs, &process, &work, &processors, &dir);
    if ours {
        let _ = std::fs::remove_dir_all(&dir);
    }
    code
}

/// Loads the bench config, pushes the workload and reports; returns the exit code.
fn timed(
    o: &BenchOpts,
    libs: &Libs,
    process: &(dyn Fn(&str, &[u8], &str) -> i64 + Sync),
    work: &Workload,
    processors: &[serde_json::Value],
    dir: &std::path::Path,
) -> i32 {
    let line_bytes = work.line_bytes();
    let expect = o
        .expect_logs
        .or_else(|| o.scenario.map(|s| scenario_expected(s, work)))
        .unwrap_or(o.events);
    let loong = o.loongcollector;
    let rc = libs.init_v2(&if loong {
        loong_init_json(dir)
    } else {
        init_json(dir)
    });
    if rc != 0 {
        eprintln!("harness: error: InitPluginBaseV2 returned {rc}");
        return 1;
    }
    let config = bench_config(processors, o.aggregate_ms);
    // A 3.x host feeds `<name>/2`; SendPb gets the real name either way.
    let name = if loong {
        format!("{CONFIG}/2")
    } else {
        CONFIG.to_string()
    };
    let loaded = if loong {
        libs.load_pipeline(PROJECT, CONFIG, &name, 1, &config)
    } else {
        libs.load_config(PROJECT, CONFIG, CONFIG, 1, &config)
    };
    if loaded != 0 {
        eprintln!("harness: error: loading the bench config failed: {config}");
        return 1;
    }
    if loong {
        libs.start(&name);
    } else {
        libs.resume();
    }

    let failed = AtomicBool::new(false);
    let calls = work.calls();
    let threads = o.threads as u64;
    let (cpu0, _) = rusage();
    let t0 = Instant::now();
    spawn_watchdog(o.timeout + Duration::from_secs(10));
    std::thread::scope(|s| {
        for t in 0..threads {
            let (failed, name) = (&failed, &name);
            s.spawn(move || {
                let prefix = 0xBE4C_0000_0000_0000u64 | t;
                let mut seq = 0u64;
                let mut k = t;
                while k < calls && !failed.load(Ordering::Relaxed) {
                    // A 3.x host's pack id is the hash of the source; 1.x's carries a sequence.
                    let pack_id = if loong {
                        format!("{prefix:016X}")
                    } else {
                        format!("{prefix:016X}-{seq:X}")
                    };
                    let rc = process(name, work.group(k), &pack_id);
                    if rc != 0 {
                        eprintln!(
                            "harness: error: the data call returned {rc} (call {k}); aborting"
                        );
                        failed.store(true, Ordering::Relaxed);
                    }
                    seq += 1;
                    k += threads;
                }
            });
        }
    });
    if failed.load(Ordering::Relaxed) {
        return 1;
    }
    let pushed = t0.elapsed();
    let mut timed_out = false;
    while host::bench_stats().logs < expect {
        if t0.elapsed() >= o.timeout {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let wall = t0.elapsed().as_secs_f64();
    let (cpu1, _) = rusage();
    let got = host::bench_stats();
    let t = Instant::now();
    if loong {
        libs.stop_all(true);
        libs.stop_all(false);
        libs.stop_builtin();
    } else {
        libs.hold_on(1);
    }
    let holdon_ms = t.elapsed().as_millis() as u64;
    let (_, maxrss_kib) = rusage();
    if timed_out {
        eprintln!(
            "harness: error: timed out after {:.1} s: the host received {} of {expect} logs",
            o.timeout.as_secs_f64(),
            got.logs
        );
        return 1;
    }
    let cpu = cpu1 - cpu0;
    let mb = line_bytes as f64 / 1e6;
    let ev = o.events as f64;
    let figures = serde_json::json!({
        "scenario": o.scenario.map(Scenario::name),
        "host": if loong { "loongcollector" } else { "ilogtail" },
        "input": o.input.name(),
        "events": o.events,
        "expected_logs": expect,
        "batch": o.batch,
        "threads": o.threads,
        "processors": processors.len(),
        "input_mb": round(mb, 3),
        "wall_s": round(wall, 4),
        "push_s": round(pushed.as_secs_f64(), 4),
        "events_per_s": (ev / wall).round() as u64,
        "mb_per_s": round(mb / wall, 2),
        "cpu_s": round(cpu, 3),
        "cpu_s_per_million_events": round(cpu / (ev / 1e6), 3),
        "mb_per_cpu_s": round(mb / cpu.max(1e-9), 2),
        "peak_rss_mib": round(maxrss_kib as f64 / 1024.0, 1),
        "received_logs": got.logs,
        "received_groups": got.groups,
        "received_mb": round(got.bytes as f64 / 1e6, 3),
        "bad_groups": got.bad_groups,
        "holdon_ms": holdon_ms,
    });
    if o.json {
        println!("{figures}");
    } else {
        print_table(&figures);
    }
    i32::from(got.bad_groups > 0)
}

/// Exits the process when the bench is still running `after` from now (a ProcessLogGroup
/// that never returns, or a HoldOn(1) that hangs, must not hang the caller forever).
fn spawn_watchdog(after: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        eprintln!(
            "harness: error: bench still running after {:.0} s (ProcessLogGroup or HoldOn blocked); exiting",
            after.as_secs_f64()
        );
        std::process::exit(1);
    });
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn print_table(f: &serde_json::Value) {
    let g = |k: &str| f[k].to_string();
    println!(
        "scenario:               {} ({} input, {} logs expected)",
        f["scenario"].as_str().unwrap_or("-"),
        f["input"].as_str().unwrap_or("-"),
        g("expected_logs")
    );
    println!(
        "events:                 {} (batch {}, {} host threads, {} processors)",
        g("events"),
        g("batch"),
        g("threads"),
        g("processors")
    );
    println!("input:                  {} MB of lines", g("input_mb"));
    println!(
        "wall:                   {} s (pushing took {} s)",
        g("wall_s"),
        g("push_s")
    );
    println!(
        "throughput:             {} events/s, {} MB/s",
        g("events_per_s"),
        g("mb_per_s")
    );
    println!("cpu (user+sys):         {} s", g("cpu_s"));
    println!(
        "cpu per million events: {} s",
        g("cpu_s_per_million_events")
    );
    println!("MB per cpu-second:      {}", g("mb_per_cpu_s"));
    println!("peak RSS:               {} MiB", g("peak_rss_mib"));
    println!(
        "received:               {} logs in {} groups, {} MB protobuf, {} bad groups",
        g("received_logs"),
        g("received_groups"),
        g("received_mb"),
        g("bad_groups")
    );
    println!("HoldOn(1):              {} ms", g("holdon_ms"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::count_logs;

    #[test]
    fn workload_covers_every_event_with_a_bounded_ring() {
        let w = Workload::generate(
            10_050,
            100,
            1_700_000_000,
            InputFormat::Nginx,
            Wire::LogGroup,
        );
        assert_eq!(w.full_batches, 100);
        assert_eq!(w.ring.len(), 64);
        assert_eq!(w.calls(), 101);
        let total: u64 = (0..w.calls())
            .map(|k| count_logs(w.group(k)).unwrap())
            .sum();
        assert_eq!(total, 10_050);
        let first = LogGroup::decode(w.group(0)).unwrap();
        assert_eq!(first.logs[0].contents[0].key, "content");
        assert_eq!(first.logs[0].time, 1_700_000_000);
        assert_eq!(w.group(0), w.group(64));
        assert_ne!(w.group(0), w.group(1));
        let per_line = w.line_bytes() / 10_050;
        assert!((150..260).contains(&per_line), "{per_line}");
    }

    #[test]
    fn small_and_exact_workloads() {
        let w = Workload::generate(5, 1024, 1, InputFormat::Nginx, Wire::LogGroup);
        assert_eq!((w.full_batches, w.ring.len(), w.calls()), (0, 0, 1));
        assert_eq!(count_logs(w.group(0)), Some(5));
        let w = Workload::generate(2048, 1024, 1, InputFormat::Nginx, Wire::LogGroup);
        assert_eq!((w.ring.len(), w.calls()), (2, 2));
        assert!(w.tail.is_none());
    }

    #[test]
    fn json_workload() {
        let w = Workload::generate(
            3_000,
            1000,
            1_700_000_000,
            InputFormat::Json,
            Wire::LogGroup,
        );
        assert_eq!((w.ring.len(), w.calls()), (3, 3));
        let g = LogGroup::decode(w.group(1)).unwrap();
        assert_eq!(g.logs.len(), 1000);
        for log in &g.logs {
            let v: serde_json::Value = serde_json::from_str(&log.contents[0].value).unwrap();
            assert!(v["request"]["status"].is_u64());
        }
        let per_line = w.line_bytes() / 3_000;
        assert!((230..=270).contains(&per_line), "{per_line}");
        assert_eq!(w.total(|b| b.status_3xx), 0);
        assert_eq!(scenario_expected(Scenario::Json, &w), 3_000);
    }

    #[test]
    fn filter_scenario_expects_exactly_the_non_3xx_lines() {
        // 130 full batches over a ring of 64, plus a tail: ring batches count once per send.
        let w = Workload::generate(
            13_050,
            100,
            1_700_000_000,
            InputFormat::Nginx,
            Wire::LogGroup,
        );
        assert_eq!((w.ring.len(), w.calls()), (64, 131));
        let mut kept = 0u64;
        for k in 0..w.calls() {
            let g = LogGroup::decode(w.group(k)).unwrap();
            kept += g
                .logs
                .iter()
                .filter(|l| {
                    let status = l.contents[0].value.split('"').nth(2).unwrap();
                    !status.trim_start().starts_with('3')
                })
                .count() as u64;
        }
        assert_eq!(scenario_expected(Scenario::RegexFilterAdd, &w), kept);
        let dropped = 13_050 - kept;
        assert!((800..2_200).contains(&dropped), "{dropped}");
        for s in [Scenario::Raw, Scenario::NginxRegex] {
            assert_eq!(scenario_expected(s, &w), 13_050);
        }
    }

    #[test]
    fn scenario_processors_are_built_in() {
        assert!(scenario_processors(Scenario::Raw).is_empty());
        let types = |s| {
            scenario_processors(s)
                .iter()
                .map(|p| p["type"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(types(Scenario::NginxRegex), ["processor_regex"]);
        assert_eq!(
            types(Scenario::RegexFilterAdd),
            [
                "processor_regex",
                "processor_filter_regex",
                "processor_add_fields"
            ]
        );
        let f = &scenario_processors(Scenario::RegexFilterAdd)[1];
        assert_eq!(f["detail"]["Exclude"]["status"], "^3\\d\\d$");
        let j = &scenario_processors(Scenario::Json)[0];
        assert_eq!(j["type"], "processor_json");
        assert_eq!(j["detail"]["ExpandDepth"], 0);
    }

    #[test]
    fn config_shape() {
        let p = vec![serde_json::json!({"type": "processor_drop", "detail": {"DropKeys": ["x"]}})];
        let v: serde_json::Value = serde_json::from_str(&bench_config(&p, 1000)).unwrap();
        assert_eq!(v["global"]["AggregatIntervalMs"], 1000);
        assert_eq!(v["processors"][0]["type"], "processor_drop");
        assert_eq!(v["aggregators"][0]["type"], "aggregator_default");
        assert_eq!(v["flushers"][0]["type"], "flusher_sls");
        assert!(v.get("inputs").is_none());
    }
}
