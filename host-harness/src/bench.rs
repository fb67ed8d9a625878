//! `bench`: push generated nginx lines through `ProcessLogGroup` and measure until the host has
//! received them all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prost::Message as _;

use crate::cli::BenchOpts;
use crate::host;
use crate::libs::{resolve_lib_dir, Libs};
use crate::nginx::NginxLines;
use crate::proto::{Content, Log, LogGroup};
use crate::run::{data_dir, init_json, PROJECT};

/// Config name (and logstore) of the bench pipeline.
const CONFIG: &str = "bench";
/// At most this many distinct batches are generated; they are reused cyclically.
const RING_MAX: u64 = 64;
/// Rough bound on the bytes of generated lines kept in the ring.
const RING_BYTES: u64 = 64 << 20;

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

/// Pre-serialized input: a ring of full batches and an optional partial last batch.
pub struct Workload {
    /// Serialized full batches, with the bytes of their lines.
    pub ring: Vec<(Vec<u8>, u64)>,
    /// Serialized partial last batch, with the bytes of its lines.
    pub tail: Option<(Vec<u8>, u64)>,
    /// Number of full batches to send.
    pub full_batches: u64,
}

fn serialize(lines: &mut NginxLines, first: u64, n: u64, time: u32) -> (Vec<u8>, u64) {
    let mut bytes = 0;
    let logs = (first..first + n)
        .map(|i| {
            let line = lines.line(i);
            bytes += line.len() as u64;
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
    (group.encode_to_vec(), bytes)
}

impl Workload {
    /// Generates the batches for `events` events of `batch` logs each.
    pub fn generate(events: u64, batch: u64, time: u32) -> Workload {
        let full_batches = events / batch;
        let tail_len = events % batch;
        let ring_len = (RING_BYTES / (batch * 200))
            .clamp(1, RING_MAX)
            .min(full_batches);
        let mut lines = NginxLines::new(0x5EED, u64::from(time));
        let ring = (0..ring_len)
            .map(|j| serialize(&mut lines, j * batch, batch, time))
            .collect();
        let tail =
            (tail_len > 0).then(|| serialize(&mut lines, full_batches * batch, tail_len, time));
        Workload {
            ring,
            tail,
            full_batches,
        }
    }

    /// Total calls to make.
    pub fn calls(&self) -> u64 {
        self.full_batches + u64::from(self.tail.is_some())
    }

    /// The serialized group of call `k`.
    pub fn group(&self, k: u64) -> &[u8] {
        if k < self.full_batches {
            &self.ring[(k % self.ring.len() as u64) as usize].0
        } else {
            &self.tail.as_ref().expect("k < calls()").0
        }
    }

    /// Bytes of all lines that will be sent.
    pub fn line_bytes(&self) -> u64 {
        let r = self.ring.len() as u64;
        let ring_total: u64 = self.ring.iter().map(|(_, b)| b).sum();
        let total = match self.full_batches.checked_div(r) {
            Some(rounds) => {
                rounds * ring_total
                    + self.ring[..(self.full_batches % r) as usize]
                        .iter()
                        .map(|(_, b)| b)
                        .sum::<u64>()
            }
            None => 0,
        };
        total + self.tail.as_ref().map_or(0, |(_, b)| *b)
    }
}

/// User + system CPU seconds and peak RSS (KiB) of this process.
fn rusage() -> (f64, i64) {
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
    let processors = match o.processors.as_deref().map(read_processors).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => {
            eprintln!("harness: error: {e}");
            return 1;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let gen_start = Instant::now();
    let work = Workload::generate(o.events, o.batch as u64, now);
    if !o.json {
        eprintln!(
            "harness: generated {} distinct batches of {} logs in {:.2} s",
            work.ring.len() + usize::from(work.tail.is_some()),
            o.batch,
            gen_start.elapsed().as_secs_f64()
        );
    }
    host::install_bench(CONFIG, o.verify);
    let libs = match Libs::load(&resolve_lib_dir(o.lib_dir.as_deref()), host::callbacks()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let process = match libs.process_log_group_fn() {
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
    let expect = o.expect_logs.unwrap_or(o.events);
    let rc = libs.init_v2(&init_json(dir));
    if rc != 0 {
        eprintln!("harness: error: InitPluginBaseV2 returned {rc}");
        return 1;
    }
    let config = bench_config(processors, o.aggregate_ms);
    if libs.load_config(PROJECT, CONFIG, CONFIG, 1, &config) != 0 {
        eprintln!("harness: error: LoadConfig of the bench config failed: {config}");
        return 1;
    }
    libs.resume();

    let failed = AtomicBool::new(false);
    let calls = work.calls();
    let threads = o.threads as u64;
    let (cpu0, _) = rusage();
    let t0 = Instant::now();
    spawn_watchdog(o.timeout + Duration::from_secs(10));
    std::thread::scope(|s| {
        for t in 0..threads {
            let failed = &failed;
            s.spawn(move || {
                let prefix = 0xBE4C_0000_0000_0000u64 | t;
                let mut seq = 0u64;
                let mut k = t;
                while k < calls && !failed.load(Ordering::Relaxed) {
                    let pack_id = format!("{prefix:016X}-{seq:X}");
                    let rc = process(CONFIG, work.group(k), &pack_id);
                    if rc != 0 {
                        eprintln!(
                            "harness: error: ProcessLogGroup returned {rc} (call {k}); aborting"
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
    libs.hold_on(1);
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
        "events": o.events,
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
        let w = Workload::generate(10_050, 100, 1_700_000_000);
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
        let w = Workload::generate(5, 1024, 1);
        assert_eq!((w.full_batches, w.ring.len(), w.calls()), (0, 0, 1));
        assert_eq!(count_logs(w.group(0)), Some(5));
        let w = Workload::generate(2048, 1024, 1);
        assert_eq!((w.ring.len(), w.calls()), (2, 2));
        assert!(w.tail.is_none());
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
