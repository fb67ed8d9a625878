//! `footprint`: load N configs and measure what they cost the host process: VmRSS and OS
//! threads at each stage, then VmRSS over time while they run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prost::Message as _;

use crate::bench::rusage;
use crate::cli::{FootprintInput, FootprintOpts};
use crate::host::{self, footprint_config_name};
use crate::libs::{load_for_command, Flavour, Libs};
use crate::proto::{Content, Log, LogGroup};
use crate::run::{data_dir, init_json, install_signal_handlers, stop_requested, PROJECT};

/// AggregatIntervalMs of every config: short, so data flows within the warm-up.
const AGGREGATE_MS: u64 = 1000;
/// The `content` of every log.
const CONTENT: &str = "footprint probe line: 127.0.0.1 GET /index.html 200 612";
/// How often waits look at SIGINT/SIGTERM.
const POLL: Duration = Duration::from_millis(50);
/// Bound on InitPluginBaseV2 + all LoadConfig calls.
const LOAD_LIMIT: Duration = Duration::from_secs(600);
/// A stage is measured once the thread count has not changed for this long ...
const SETTLE_QUIET: Duration = Duration::from_millis(300);
/// ... or after this long at most.
const SETTLE_MAX: Duration = Duration::from_secs(3);
/// Bound on HoldOn(1).
const HOLDON_LIMIT: Duration = Duration::from_secs(120);

/// Logs given to ProcessLogGroup (host-fed).
static PUSHED: AtomicU64 = AtomicU64::new(0);
/// ProcessLogGroup calls that did not return 0 (host-fed).
static PUSH_ERRORS: AtomicU64 = AtomicU64::new(0);

/// VmRSS and OS threads of this process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measure {
    pub rss_kib: u64,
    pub threads: u64,
}

/// VmRSS (KiB) from `/proc/self/status`; 0 when unreadable.
pub fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Entries of `/proc/self/task` (OS threads); 0 when unreadable.
pub fn thread_count() -> u64 {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count() as u64)
}

/// OS threads of this process by name (`/proc/self/task/*/comm`).
pub fn threads_by_name() -> std::collections::BTreeMap<String, u64> {
    let mut names = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return names;
    };
    for task in dir.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm"))
            .map_or_else(|_| "?".to_string(), |s| s.trim_end().to_string());
        *names.entry(name).or_insert(0) += 1;
    }
    names
}

/// Measures now.
pub fn measure() -> Measure {
    Measure {
        rss_kib: vm_rss_kib(),
        threads: thread_count(),
    }
}

/// Measures once the thread count has been stable for [`SETTLE_QUIET`] (at most
/// [`SETTLE_MAX`]): threads the base starts in the background after a call returned (the
/// store's I/O threads after InitPluginBaseV2) count to the stage that started them.
fn settled() -> Measure {
    let deadline = Instant::now() + SETTLE_MAX;
    let mut last = measure();
    let mut since = Instant::now();
    while since.elapsed() < SETTLE_QUIET && Instant::now() < deadline {
        std::thread::sleep(POLL);
        let m = measure();
        if m.threads != last.threads {
            since = Instant::now();
        }
        last = m;
    }
    measure()
}

/// One sample after warm-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since Resume.
    pub t_s: f64,
    pub rss_kib: u64,
    pub threads: u64,
    /// Logs delivered so far.
    pub logs: u64,
}

/// What the samples say.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Series {
    pub first: u64,
    pub last: u64,
    pub min: u64,
    pub max: u64,
    pub threads_min: u64,
    pub threads_max: u64,
    /// Seconds from the first to the last sample.
    pub span_s: f64,
    /// Least-squares slope of RSS in KiB per minute (`None` with fewer than 2 samples).
    pub slope_kib_per_min: Option<f64>,
    /// Logs delivered per second between the first and the last sample.
    pub logs_per_s: Option<f64>,
}

/// Least-squares slope of `y` over `x`; `None` with fewer than 2 distinct `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Summarizes the samples (all zero when there are none).
pub fn series(samples: &[Sample]) -> Series {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Series::default();
    };
    let rss = samples.iter().map(|s| s.rss_kib);
    let threads = samples.iter().map(|s| s.threads);
    let span_s = last.t_s - first.t_s;
    let points: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.t_s / 60.0, s.rss_kib as f64))
        .collect();
    Series {
        first: first.rss_kib,
        last: last.rss_kib,
        min: rss.clone().min().unwrap_or(0),
        max: rss.max().unwrap_or(0),
        threads_min: threads.clone().min().unwrap_or(0),
        threads_max: threads.max().unwrap_or(0),
        span_s,
        slope_kib_per_min: slope(&points),
        logs_per_s: (span_s > 0.0).then(|| (last.logs - first.logs) as f64 / span_s),
    }
}

/// The JSON of config `name`.
pub fn config_json(input: FootprintInput, rate: u64) -> String {
    let mut v = serde_json::json!({
        "global": { "AggregatIntervalMs": AGGREGATE_MS },
        "flushers": [ { "type": "flusher_sls" } ],
    });
    if input == FootprintInput::Mock {
        v["inputs"] = serde_json::json!([{
            "type": "service_mock",
            "detail": {
                "LogsPerSecond": rate,
                "MaxLogCount": 0,
                "Fields": { "content": CONTENT },
            },
        }]);
    }
    v.to_string()
}

/// A serialized LogGroup of `n` logs stamped `time`.
fn host_fed_group(n: u64, time: u32) -> Vec<u8> {
    LogGroup {
        logs: (0..n)
            .map(|_| Log {
                time,
                contents: vec![Content {
                    key: "content".to_string(),
                    value: CONTENT.to_string(),
                }],
                values: Vec::new(),
                time_ns: None,
            })
            .collect(),
        ..LogGroup::default()
    }
    .encode_to_vec()
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// Exits the process when an armed limit passes before it is disarmed.
struct Watchdog(Sender<Option<(Duration, &'static str)>>);

impl Watchdog {
    fn start() -> Watchdog {
        let (tx, rx) = mpsc::channel::<Option<(Duration, &'static str)>>();
        std::thread::spawn(move || {
            while let Ok(msg) = rx.recv() {
                let Some((limit, what)) = msg else { continue };
                match rx.recv_timeout(limit) {
                    Ok(_) => {}
                    Err(RecvTimeoutError::Timeout) => {
                        eprintln!(
                            "harness: error: {what} did not return within {:.0} s; exiting",
                            limit.as_secs_f64()
                        );
                        std::process::exit(1);
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        Watchdog(tx)
    }

    fn arm(&self, limit: Duration, what: &'static str) {
        let _ = self.0.send(Some((limit, what)));
    }

    fn disarm(&self) {
        let _ = self.0.send(None);
    }
}

/// The host-fed thread: started before the first measurement, pushing from Resume on.
struct Pusher {
    go: Option<Sender<Instant>>,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Pusher {
    fn start(libs: &'static Libs, names: Arc<Vec<String>>, rate: u64) -> Result<Pusher, String> {
        let process = libs.process_fn(false).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel::<Instant>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = std::thread::spawn(move || {
            let Ok(mut next) = rx.recv() else { return };
            let mut round = 0u64;
            while !stopped.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep((next - now).min(POLL));
                    continue;
                }
                let group = host_fed_group(rate, unix_now());
                for (i, name) in names.iter().enumerate() {
                    let pack_id = format!("{:016X}-{round:X}", 0xF007_0000_0000_0000u64 | i as u64);
                    let rc = process(name, &group, &pack_id);
                    if rc == 0 {
                        PUSHED.fetch_add(rate, Ordering::Relaxed);
                    } else if PUSH_ERRORS.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("harness: error: ProcessLogGroup({name}) returned {rc}");
                    }
                    if stopped.load(Ordering::Relaxed) {
                        return;
                    }
                }
                round += 1;
                // One round per second; a round that overran starts the next one at once,
                // without catching up on the rounds missed.
                next = (next + Duration::from_secs(1)).max(Instant::now());
            }
        });
        Ok(Pusher {
            go: Some(tx),
            stop,
            handle,
        })
    }

    fn go(&mut self, at: Instant) {
        if let Some(tx) = self.go.take() {
            let _ = tx.send(at);
        }
    }

    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.go);
        let _ = self.handle.join();
    }
}

/// Sleeps until `at` or a signal; returns false on a signal.
fn sleep_until(at: Instant) -> bool {
    loop {
        if stop_requested() {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        std::thread::sleep((at - now).min(POLL));
    }
}

/// Runs the `footprint` command; returns the exit code.
pub fn run(o: FootprintOpts) -> i32 {
    let (dir, ours) = match data_dir(o.data_dir.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("harness: error: {e}");
            return 1;
        }
    };
    let code = run_in(&o, &dir);
    if ours {
        let _ = std::fs::remove_dir_all(&dir);
    }
    code
}

fn run_in(o: &FootprintOpts, dir: &std::path::Path) -> i32 {
    host::install_footprint(o.configs);
    install_signal_handlers();
    let Some(libs) = load_for_command(o.lib_dir.as_deref(), Flavour::Logtail) else {
        return 2;
    };
    let libs: &'static Libs = Box::leak(Box::new(libs));
    // The harness's own share (names, threads) exists before the first measurement.
    let names: Arc<Vec<String>> = Arc::new((1..=o.configs).map(footprint_config_name).collect());
    let config = config_json(o.input, o.rate);
    let expected_samples = (o.duration.saturating_sub(o.warmup).as_secs_f64()
        / o.sample_every.as_secs_f64())
    .min(1e6) as usize
        + 2;
    let mut samples = Vec::with_capacity(expected_samples);
    let watchdog = Watchdog::start();
    let mut pusher = if o.input == FootprintInput::HostFed && o.rate > 0 {
        match Pusher::start(libs, names.clone(), o.rate) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        }
    } else {
        None
    };

    let before_init = measure();
    watchdog.arm(LOAD_LIMIT, "InitPluginBaseV2 or LoadConfig");
    let rc = libs.init_v2(&init_json(dir));
    if rc != 0 {
        eprintln!("harness: error: InitPluginBaseV2 returned {rc}");
        return 1;
    }
    let after_init = settled();
    let t = Instant::now();
    for (i, name) in names.iter().enumerate() {
        let rc = libs.load_config(PROJECT, name, name, i as i64 + 1, &config);
        if rc != 0 {
            eprintln!("harness: error: LoadConfig({name}) returned {rc}: {config}");
            return 1;
        }
    }
    let load_ms = t.elapsed().as_millis() as u64;
    watchdog.disarm();
    let after_load = settled();

    let resumed = Instant::now();
    libs.resume();
    if let Some(p) = pusher.as_mut() {
        p.go(resumed);
    }
    let take = |samples: &mut Vec<Sample>| {
        let m = measure();
        let s = Sample {
            t_s: resumed.elapsed().as_secs_f64(),
            rss_kib: m.rss_kib,
            threads: m.threads,
            logs: host::footprint_stats().logs,
        };
        if !o.quiet {
            eprintln!(
                "footprint: t={:.1}s rss={:.1} MiB threads={} logs={}",
                s.t_s,
                s.rss_kib as f64 / 1024.0,
                s.threads,
                s.logs
            );
        }
        samples.push(s);
    };
    let mut signalled = !sleep_until(resumed + o.warmup);
    let cpu0 = rusage().0;
    take(&mut samples);
    let after_warmup = Measure {
        rss_kib: samples[0].rss_kib,
        threads: samples[0].threads,
    };
    let end = resumed + o.duration;
    let mut k = 1u32;
    while !signalled && Instant::now() < end {
        let at = (resumed + o.warmup + o.sample_every * k).min(end);
        signalled = !sleep_until(at);
        take(&mut samples);
        k += 1;
    }
    let cpu_s = rusage().0 - cpu0;
    let names_last_sample = threads_by_name();
    if signalled {
        eprintln!("harness: signal received, stopping");
    }
    if let Some(p) = pusher {
        p.finish();
    }

    watchdog.arm(HOLDON_LIMIT, "HoldOn(1)");
    let t = Instant::now();
    libs.hold_on(1);
    let holdon_ms = t.elapsed().as_millis() as u64;
    watchdog.disarm();
    let after_holdon = measure();
    let names_after_holdon = threads_by_name();

    let stages = Stages {
        before_init,
        after_init,
        after_load,
        after_warmup,
        after_holdon,
    };
    let got = host::footprint_stats();
    let mut figures = report(o, &stages, &samples, &got, load_ms, holdon_ms, cpu_s);
    figures["threads_by_name_last_sample"] = serde_json::json!(names_last_sample);
    figures["threads_by_name_after_holdon"] = serde_json::json!(names_after_holdon);
    if o.json {
        println!("{figures}");
    } else {
        print_report(&figures);
    }
    let push_errors = PUSH_ERRORS.load(Ordering::Relaxed);
    i32::from(got.bad_groups > 0 || push_errors > 0)
}

/// The measurements at each stage.
pub struct Stages {
    pub before_init: Measure,
    pub after_init: Measure,
    pub after_load: Measure,
    pub after_warmup: Measure,
    pub after_holdon: Measure,
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The report as one JSON object (field names documented in FOOTPRINT_HELP).
pub fn report(
    o: &FootprintOpts,
    st: &Stages,
    samples: &[Sample],
    got: &host::FootprintStats,
    load_ms: u64,
    holdon_ms: u64,
    cpu_s: f64,
) -> serde_json::Value {
    let n = o.configs as f64;
    let per = |m: &Measure| round((m.rss_kib as f64 - st.after_init.rss_kib as f64) / n, 2);
    let added = |m: &Measure| m.threads as i64 - st.after_init.threads as i64;
    let s = series(samples);
    let cpu_pct = (s.span_s > 0.0).then(|| round(cpu_s / s.span_s * 100.0, 1));
    let mut r = serde_json::json!({
        "configs": o.configs,
        "input": o.input.name(),
        "rate": o.rate,
        "duration_s": o.duration.as_secs_f64(),
        "warmup_s": o.warmup.as_secs_f64(),
        "sample_every_s": o.sample_every.as_secs_f64(),
        "load_ms": load_ms,
        "rss_before_init_kib": st.before_init.rss_kib,
        "rss_after_init_kib": st.after_init.rss_kib,
        "rss_after_load_kib": st.after_load.rss_kib,
        "rss_after_warmup_kib": st.after_warmup.rss_kib,
        "rss_after_holdon_kib": st.after_holdon.rss_kib,
        "threads_before_init": st.before_init.threads,
        "threads_after_init": st.after_init.threads,
        "threads_after_load": st.after_load.threads,
        "threads_after_warmup": st.after_warmup.threads,
        "threads_after_holdon": st.after_holdon.threads,
        "per_config_kib": per(&st.after_warmup),
        "per_config_loaded_kib": per(&st.after_load),
        "threads_added_after_load": added(&st.after_load),
        "threads_added_after_warmup": added(&st.after_warmup),
    });
    // Two halves: one json! of every field exceeds the macro recursion limit.
    let more = serde_json::json!({
        "sample_count": samples.len(),
        "sampled_s": round(s.span_s, 3),
        "rss_first_kib": s.first,
        "rss_last_kib": s.last,
        "rss_min_kib": s.min,
        "rss_max_kib": s.max,
        "rss_growth_kib": s.last as i64 - s.first as i64,
        "rss_slope_kib_per_min": s.slope_kib_per_min.map(|x| round(x, 1)),
        "threads_min": s.threads_min,
        "threads_max": s.threads_max,
        "cpu_s": round(cpu_s, 3),
        "cpu_pct": cpu_pct,
        "logs_delivered": got.logs,
        "logs_per_s": s.logs_per_s.map(|x| round(x, 1)),
        "expected_logs_per_s": o.configs as u64 * o.rate,
        "configs_delivering": got.configs_delivering,
        "groups_delivered": got.groups,
        "bad_groups": got.bad_groups,
        "other_groups": got.other_groups,
        "other_logs": got.other_logs,
        "logs_pushed": PUSHED.load(Ordering::Relaxed),
        "push_errors": PUSH_ERRORS.load(Ordering::Relaxed),
        "holdon_ms": holdon_ms,
        "samples": samples.iter().map(|s| serde_json::json!({
            "t_s": round(s.t_s, 3),
            "rss_kib": s.rss_kib,
            "threads": s.threads,
            "logs": s.logs,
        })).collect::<Vec<_>>(),
    });
    if let (Some(a), serde_json::Value::Object(b)) = (r.as_object_mut(), more) {
        a.extend(b);
    }
    r
}

fn mib(v: &serde_json::Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_string(), |k| format!("{:.1}", k / 1024.0))
}

fn print_report(f: &serde_json::Value) {
    let g = |k: &str| match &f[k] {
        serde_json::Value::Null => "-".to_string(),
        v => v.to_string(),
    };
    let signed = |k: &str| match f[k].as_f64() {
        Some(x) if x > 0.0 => format!("+{}", g(k)),
        _ => g(k),
    };
    println!(
        "configs:            {} (input {}, {} logs/s each; warm-up {} s, duration {} s, a sample every {} s)",
        g("configs"),
        f["input"].as_str().unwrap_or("-"),
        g("rate"),
        g("warmup_s"),
        g("duration_s"),
        g("sample_every_s")
    );
    println!("                    RSS MiB   threads");
    for (label, stage) in [
        ("before init", "before_init"),
        ("after init", "after_init"),
        ("after load", "after_load"),
        ("after warm-up", "after_warmup"),
        ("after HoldOn(1)", "after_holdon"),
    ] {
        println!(
            "  {label:<17} {:>7}   {:>7}",
            mib(&f[format!("rss_{stage}_kib")]),
            g(&format!("threads_{stage}"))
        );
    }
    println!(
        "loading:            {} ms for {} LoadConfig calls",
        g("load_ms"),
        g("configs")
    );
    println!(
        "per config:         {} KiB running (after warm-up - after init) / configs; {} KiB loaded, before Resume",
        g("per_config_kib"),
        g("per_config_loaded_kib")
    );
    println!(
        "threads added:      {} after load, {} after warm-up (vs after init); {}..{} over the samples",
        signed("threads_added_after_load"),
        signed("threads_added_after_warmup"),
        g("threads_min"),
        g("threads_max")
    );
    println!(
        "RSS after warm-up:  first {} last {} min {} max {} MiB ({} samples over {} s)",
        mib(&f["rss_first_kib"]),
        mib(&f["rss_last_kib"]),
        mib(&f["rss_min_kib"]),
        mib(&f["rss_max_kib"]),
        g("sample_count"),
        g("sampled_s")
    );
    println!(
        "RSS growth:         {} KiB (last - first), slope {} KiB/min",
        signed("rss_growth_kib"),
        signed("rss_slope_kib_per_min")
    );
    println!(
        "cpu (user+sys):     {} s over the sampled period ({} % of one core)",
        g("cpu_s"),
        g("cpu_pct")
    );
    println!(
        "delivered:          {} logs in {} groups from {} configs; {} logs/s sampled, {} expected",
        g("logs_delivered"),
        g("groups_delivered"),
        g("configs_delivering"),
        g("logs_per_s"),
        g("expected_logs_per_s")
    );
    if f["input"] == "host-fed" {
        println!(
            "pushed:             {} logs with ProcessLogGroup, {} errors",
            g("logs_pushed"),
            g("push_errors")
        );
    }
    println!(
        "other configs:      {} groups, {} logs (alarms, statistics); {} bad groups",
        g("other_groups"),
        g("other_logs"),
        g("bad_groups")
    );
    println!("HoldOn(1):          {} ms", g("holdon_ms"));
    for (label, key) in [
        ("threads at the end:", "threads_by_name_last_sample"),
        ("after HoldOn(1):", "threads_by_name_after_holdon"),
    ] {
        if let Some(m) = f[key].as_object() {
            let list: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("{label:<19} {}", list.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::FOOTPRINT_HELP;
    use crate::proto::count_logs;

    fn sample(t_s: f64, rss_kib: u64, threads: u64, logs: u64) -> Sample {
        Sample {
            t_s,
            rss_kib,
            threads,
            logs,
        }
    }

    #[test]
    fn slope_is_least_squares() {
        assert_eq!(slope(&[]), None);
        assert_eq!(slope(&[(1.0, 5.0)]), None);
        assert_eq!(slope(&[(1.0, 5.0), (1.0, 7.0)]), None);
        let s = slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((s - 2.0).abs() < 1e-9, "{s}");
        // Noise around a flat line: slope near 0.
        let s = slope(&[(0.0, 10.0), (1.0, 12.0), (2.0, 10.0), (3.0, 12.0)]).unwrap();
        assert!((s - 0.4).abs() < 1e-9, "{s}");
    }

    #[test]
    fn series_of_samples() {
        assert_eq!(series(&[]), Series::default());
        let one = series(&[sample(10.0, 100, 5, 7)]);
        assert_eq!(
            (one.first, one.last, one.min, one.max),
            (100, 100, 100, 100)
        );
        assert_eq!((one.slope_kib_per_min, one.logs_per_s), (None, None));
        let s = series(&[
            sample(10.0, 1000, 6, 100),
            sample(40.0, 900, 7, 400),
            sample(70.0, 1300, 6, 700),
        ]);
        assert_eq!((s.first, s.last, s.min, s.max), (1000, 1300, 900, 1300));
        assert_eq!((s.threads_min, s.threads_max), (6, 7));
        assert_eq!(s.span_s, 60.0);
        // x in minutes: 1/6, 2/3, 7/6 → slope 300 KiB per minute.
        assert!((s.slope_kib_per_min.unwrap() - 300.0).abs() < 1e-6);
        assert_eq!(s.logs_per_s, Some(10.0));
    }

    #[test]
    fn configs_are_mock_or_flusher_only() {
        let v: serde_json::Value =
            serde_json::from_str(&config_json(FootprintInput::Mock, 3)).unwrap();
        assert_eq!(v["global"]["AggregatIntervalMs"], 1000);
        let input = &v["inputs"][0];
        assert_eq!(input["type"], "service_mock");
        assert_eq!(input["detail"]["LogsPerSecond"], 3);
        assert_eq!(input["detail"]["MaxLogCount"], 0);
        assert_eq!(input["detail"]["Fields"]["content"], CONTENT);
        assert_eq!(v["flushers"][0]["type"], "flusher_sls");
        let v: serde_json::Value =
            serde_json::from_str(&config_json(FootprintInput::HostFed, 0)).unwrap();
        assert!(v.get("inputs").is_none());
        assert_eq!(v["flushers"][0]["type"], "flusher_sls");
        assert_eq!(count_logs(&host_fed_group(5, 1)), Some(5));
    }

    #[test]
    fn measure_reads_proc() {
        let m = measure();
        assert!(m.rss_kib > 0 && m.threads >= 1, "{m:?}");
        let names = threads_by_name();
        assert!(names.values().sum::<u64>() >= 1, "{names:?}");
    }

    #[test]
    fn every_report_field_is_documented() {
        let m = |rss_kib, threads| Measure { rss_kib, threads };
        let st = Stages {
            before_init: m(3000, 2),
            after_init: m(5000, 6),
            after_load: m(25000, 7),
            after_warmup: m(45000, 8),
            after_holdon: m(44000, 5),
        };
        let o = FootprintOpts::default();
        let samples = [sample(10.0, 45000, 8, 10), sample(20.0, 45100, 8, 20)];
        let got = host::FootprintStats {
            logs: 20,
            ..Default::default()
        };
        let mut r = report(&o, &st, &samples, &got, 12, 34, 1.5);
        assert_eq!(r["per_config_kib"], 40.0);
        assert_eq!(r["per_config_loaded_kib"], 20.0);
        assert_eq!(r["threads_added_after_load"], 1);
        assert_eq!(r["threads_added_after_warmup"], 2);
        assert_eq!(r["rss_growth_kib"], 100);
        assert_eq!(r["rss_slope_kib_per_min"], 600.0);
        assert_eq!(r["cpu_pct"], 15.0);
        assert_eq!(r["logs_per_s"], 1.0);
        assert_eq!(r["expected_logs_per_s"], 1000);
        assert_eq!(r["samples"][1]["rss_kib"], 45100);
        r["threads_by_name_last_sample"] = serde_json::json!({});
        r["threads_by_name_after_holdon"] = serde_json::json!({});
        for key in r.as_object().unwrap().keys() {
            assert!(FOOTPRINT_HELP.contains(key.as_str()), "{key} not in help");
        }
        for key in r["samples"][0].as_object().unwrap().keys() {
            assert!(FOOTPRINT_HELP.contains(&format!("\"{key}\"")), "{key}");
        }
    }
}
