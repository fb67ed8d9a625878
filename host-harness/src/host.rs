//! The host side of the ABI: the callbacks registered with the adaptor and the state they
//! update. Callbacks run on base threads; nothing may unwind out of them, so each body runs
//! under `catch_unwind`, and locks recover from poisoning.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{c_char, c_int, c_longlong};
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use prost::Message as _;

use crate::libs::HostCallbacks;
use crate::packs::PackTracker;
use crate::proto::{count_logs, group_json_line, LogGroup};
use crate::rng::SplitMix64;

/// `CtlCmd` calls received (any mode).
static CTL_CMDS: AtomicU64 = AtomicU64::new(0);

/// What the send callbacks do with a group; set once before the callbacks are registered.
enum Sink {
    /// `run`: the sleep of `--delay-ms` (taken outside the lock) and the state.
    Run(Option<Duration>, Box<Mutex<RunState>>),
    Bench(BenchCounters),
    Footprint(FootprintCounters),
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// How `run` answers sends.
pub struct RunSettings {
    /// Print nothing per group.
    pub quiet: bool,
    /// Return -1 for the first N sends.
    pub reject_first: u64,
    /// Return -1 with this probability.
    pub reject_rate: f64,
    /// Seed of the rejection PRNG.
    pub seed: u64,
    /// Return -1 for everything during this long after [`mark_started`].
    pub reject_for: Option<Duration>,
    /// Sleep inside every send.
    pub delay: Option<Duration>,
    /// Config names loaded from CONFIG files (others count as `other_*`).
    pub loaded_configs: HashSet<String>,
    /// `--stats`: render statistics and alarm groups to stderr.
    pub stats: bool,
}

/// Counts of one config name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigStats {
    pub groups: u64,
    pub logs: u64,
    pub rejected_sends: u64,
}

/// What `run` has received so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStats {
    /// Groups/logs of the loaded configs.
    pub groups: u64,
    pub logs: u64,
    /// Groups/logs under other config names (alarms, statistics).
    pub other_groups: u64,
    pub other_logs: u64,
    pub rejected_sends: u64,
    pub bad_groups: u64,
    /// Groups whose `lines` argument differed from the number of logs inside.
    pub lines_mismatches: u64,
    pub per_config: BTreeMap<String, ConfigStats>,
    pub duplicate_pack_ids: u64,
    pub pack_id_gaps: u64,
    pub pack_id_prefixes: u64,
    pub missing_pack_ids: u64,
    pub malformed_pack_ids: u64,
    pub ctl_cmds: u64,
}

struct RunState {
    settings: RunSettings,
    rng: SplitMix64,
    sends: u64,
    started: Option<Instant>,
    stats: RunStats,
    packs: PackTracker,
}

impl RunState {
    fn new(settings: RunSettings) -> Self {
        RunState {
            rng: SplitMix64::new(settings.seed),
            settings,
            sends: 0,
            started: None,
            stats: RunStats::default(),
            packs: PackTracker::default(),
        }
    }

    /// Decides whether this send is rejected (counts the send).
    fn reject(&mut self) -> bool {
        let s = &self.settings;
        self.sends += 1;
        if self.sends <= s.reject_first {
            return true;
        }
        if let Some(d) = s.reject_for {
            // Before Resume the window has not started: reject too.
            if !matches!(self.started, Some(t) if t.elapsed() >= d) {
                return true;
            }
        }
        s.reject_rate > 0.0 && self.rng.next_f64() < s.reject_rate
    }

    fn deliver(&mut self, config: &str, logstore: &str, pb: &[u8], lines: c_int) -> c_int {
        let ours = self.settings.loaded_configs.contains(config);
        if self.reject() {
            self.stats.rejected_sends += 1;
            self.stats
                .per_config
                .entry(config.to_string())
                .or_default()
                .rejected_sends += 1;
            return -1;
        }
        let group = match LogGroup::decode(pb) {
            Ok(g) => g,
            Err(e) => {
                self.stats.bad_groups += 1;
                // (Unit tests send bad bytes on purpose and check the count.)
                if !cfg!(test) {
                    let _ = writeln!(
                        std::io::stderr(),
                        "harness: error: cannot decode the LogGroup of config {config:?} \
                         ({} bytes): {e}",
                        pb.len()
                    );
                }
                // Accepted (the host copied and dropped it): retrying bad bytes cannot help.
                return 0;
            }
        };
        let n = group.logs.len() as u64;
        if i64::from(lines) != n as i64 {
            self.stats.lines_mismatches += 1;
        }
        let st = &mut self.stats;
        if ours {
            st.groups += 1;
            st.logs += n;
        } else {
            st.other_groups += 1;
            st.other_logs += n;
        }
        let pc = st.per_config.entry(config.to_string()).or_default();
        pc.groups += 1;
        pc.logs += n;
        self.packs.record(group.pack_id());
        if self.settings.stats && !ours {
            if let Some(text) = crate::stats::render(config, &group) {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
        }
        if !self.settings.quiet {
            let mut line = group_json_line(config, logstore, &group);
            line.push('\n');
            // A closed stdout must not fail the send: the host accepted the data.
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
        0
    }
}

/// Counters of `bench` (atomics: the send path stays lock-free).
#[derive(Default)]
struct BenchCounters {
    /// Only groups of this config are counted (alarms and statistics are ignored).
    config: String,
    verify: bool,
    groups: AtomicU64,
    logs: AtomicU64,
    bytes: AtomicU64,
    bad_groups: AtomicU64,
}

/// What `bench` has received so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BenchStats {
    pub groups: u64,
    pub logs: u64,
    pub bytes: u64,
    pub bad_groups: u64,
}

/// Counters of `footprint`: every send is accepted; logs are counted per config `fp_NNNN`.
struct FootprintCounters {
    /// Logs per config; index `i` is config number `i + 1` (allocated up front).
    per_config: Vec<AtomicU64>,
    groups: AtomicU64,
    logs: AtomicU64,
    other_groups: AtomicU64,
    other_logs: AtomicU64,
    bad_groups: AtomicU64,
}

/// What `footprint` has received so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FootprintStats {
    /// Groups/logs of the `fp_*` configs.
    pub groups: u64,
    pub logs: u64,
    /// Groups/logs of other configs (alarms, statistics).
    pub other_groups: u64,
    pub other_logs: u64,
    /// Groups that did not decode.
    pub bad_groups: u64,
    /// `fp_*` configs with at least one log.
    pub configs_delivering: u64,
}

/// Name of `footprint` config number `i` (1-based): `fp_0001`, ...
pub fn footprint_config_name(i: usize) -> String {
    format!("fp_{i:04}")
}

/// The 0-based slot of a `footprint` config name among `n` configs.
fn footprint_slot(config: &str, n: usize) -> Option<usize> {
    let digits = config.strip_prefix("fp_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: usize = digits.parse().ok()?;
    (1..=n).contains(&i).then(|| i - 1)
}

impl FootprintCounters {
    fn new(configs: usize) -> Self {
        FootprintCounters {
            per_config: (0..configs).map(|_| AtomicU64::new(0)).collect(),
            groups: AtomicU64::new(0),
            logs: AtomicU64::new(0),
            other_groups: AtomicU64::new(0),
            other_logs: AtomicU64::new(0),
            bad_groups: AtomicU64::new(0),
        }
    }

    fn deliver(&self, config: &str, pb: &[u8]) -> c_int {
        let Some(n) = count_logs(pb) else {
            self.bad_groups.fetch_add(1, Ordering::Relaxed);
            let _ = writeln!(
                std::io::stderr(),
                "harness: error: cannot decode a LogGroup of config {config:?} ({} bytes)",
                pb.len()
            );
            return 0;
        };
        match footprint_slot(config, self.per_config.len()) {
            Some(i) => {
                self.per_config[i].fetch_add(n, Ordering::Relaxed);
                self.groups.fetch_add(1, Ordering::Relaxed);
                self.logs.fetch_add(n, Ordering::Relaxed);
            }
            None => {
                self.other_groups.fetch_add(1, Ordering::Relaxed);
                self.other_logs.fetch_add(n, Ordering::Relaxed);
            }
        }
        0
    }

    fn stats(&self) -> FootprintStats {
        FootprintStats {
            groups: self.groups.load(Ordering::Relaxed),
            logs: self.logs.load(Ordering::Relaxed),
            other_groups: self.other_groups.load(Ordering::Relaxed),
            other_logs: self.other_logs.load(Ordering::Relaxed),
            bad_groups: self.bad_groups.load(Ordering::Relaxed),
            configs_delivering: self
                .per_config
                .iter()
                .filter(|c| c.load(Ordering::Relaxed) > 0)
                .count() as u64,
        }
    }
}

/// Puts the callbacks in `footprint` mode for configs `fp_0001..` up to `configs`. Call
/// once, before [`callbacks`] are registered.
pub fn install_footprint(configs: usize) {
    let _ = SINK.set(Sink::Footprint(FootprintCounters::new(configs)));
}

/// A snapshot of the `footprint` counters.
pub fn footprint_stats() -> FootprintStats {
    match SINK.get() {
        Some(Sink::Footprint(c)) => c.stats(),
        _ => FootprintStats::default(),
    }
}

/// Puts the callbacks in `run` mode. Call once, before [`callbacks`] are registered.
pub fn install_run(settings: RunSettings) {
    let delay = settings.delay;
    let _ = SINK.set(Sink::Run(
        delay,
        Box::new(Mutex::new(RunState::new(settings))),
    ));
}

/// Puts the callbacks in `bench` mode. Call once, before [`callbacks`] are registered.
pub fn install_bench(config: &str, verify: bool) {
    let _ = SINK.set(Sink::Bench(BenchCounters {
        config: config.to_string(),
        verify,
        ..BenchCounters::default()
    }));
}

fn run_state() -> Option<MutexGuard<'static, RunState>> {
    match SINK.get()? {
        Sink::Run(_, m) => Some(m.lock().unwrap_or_else(|e| e.into_inner())),
        Sink::Bench(_) | Sink::Footprint(_) => None,
    }
}

/// Starts the `--reject-for` window (call right before `Resume`).
pub fn mark_started() {
    if let Some(mut s) = run_state() {
        s.started = Some(Instant::now());
    }
}

/// Logs received so far by the loaded configs (`run` mode).
pub fn run_logs() -> u64 {
    run_state().map_or(0, |s| s.stats.logs)
}

/// A snapshot of everything `run` counted.
pub fn run_stats() -> RunStats {
    let Some(s) = run_state() else {
        return RunStats::default();
    };
    let mut st = s.stats.clone();
    st.duplicate_pack_ids = s.packs.duplicates();
    st.pack_id_gaps = s.packs.gaps();
    st.pack_id_prefixes = s.packs.prefixes() as u64;
    st.missing_pack_ids = s.packs.missing;
    st.malformed_pack_ids = s.packs.malformed;
    st.ctl_cmds = CTL_CMDS.load(Ordering::Relaxed);
    st
}

/// A snapshot of the `bench` counters.
pub fn bench_stats() -> BenchStats {
    match SINK.get() {
        Some(Sink::Bench(c)) => BenchStats {
            groups: c.groups.load(Ordering::Acquire),
            logs: c.logs.load(Ordering::Acquire),
            bytes: c.bytes.load(Ordering::Acquire),
            bad_groups: c.bad_groups.load(Ordering::Acquire),
        },
        _ => BenchStats::default(),
    }
}

/// The callbacks to register with the adaptor.
pub fn callbacks() -> HostCallbacks {
    HostCallbacks {
        is_valid_to_send: Some(is_valid_to_send),
        send_pb: Some(send_pb),
        send_pb_v2: Some(send_pb_v2),
        ctl_cmd: Some(ctl_cmd),
    }
}

/// Borrows `n` bytes at `p`; empty for NULL or a non-positive length.
///
/// # Safety
///
/// When `p` is not NULL and `n > 0`, `p` must point at `n` readable bytes for `'a`.
unsafe fn raw<'a>(p: *const c_char, n: c_int) -> &'a [u8] {
    if p.is_null() || n <= 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(p.cast(), n as usize) }
}

fn guarded(what: &str, f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        let _ = writeln!(std::io::stderr(), "harness: bug: panic inside {what}");
        -1
    })
}

fn on_send(config: &[u8], logstore: &[u8], pb: &[u8], lines: c_int) -> c_int {
    let config = String::from_utf8_lossy(config);
    let logstore = String::from_utf8_lossy(logstore);
    match SINK.get() {
        Some(Sink::Run(delay, m)) => {
            if let Some(d) = delay {
                std::thread::sleep(*d);
            }
            let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
            s.deliver(&config, &logstore, pb, lines)
        }
        Some(Sink::Bench(c)) if *config != *c.config => 0,
        Some(Sink::Bench(c)) => {
            let n = if c.verify {
                LogGroup::decode(pb).ok().map(|g| g.logs.len() as u64)
            } else {
                count_logs(pb)
            };
            match n {
                Some(n) => {
                    c.bytes.fetch_add(pb.len() as u64, Ordering::Relaxed);
                    c.groups.fetch_add(1, Ordering::Relaxed);
                    c.logs.fetch_add(n, Ordering::Release);
                }
                None => {
                    c.bad_groups.fetch_add(1, Ordering::Relaxed);
                    let _ = writeln!(
                        std::io::stderr(),
                        "harness: error: cannot decode a LogGroup of config {config:?} ({} bytes)",
                        pb.len()
                    );
                }
            }
            0
        }
        Some(Sink::Footprint(c)) => c.deliver(&config, pb),
        None => 0,
    }
}

extern "C" fn is_valid_to_send(_logstore_key: c_longlong) -> c_int {
    0
}

extern "C" fn send_pb(
    config: *const c_char,
    config_len: c_int,
    logstore: *const c_char,
    logstore_len: c_int,
    pb: *mut c_char,
    pb_len: c_int,
    lines: c_int,
) -> c_int {
    guarded("SendPb", || {
        // SAFETY: the adaptor passes pointer/length pairs valid for the call.
        let (c, l, b) = unsafe {
            (
                raw(config, config_len),
                raw(logstore, logstore_len),
                raw(pb, pb_len),
            )
        };
        on_send(c, l, b, lines)
    })
}

#[allow(clippy::too_many_arguments)]
extern "C" fn send_pb_v2(
    config: *const c_char,
    config_len: c_int,
    logstore: *const c_char,
    logstore_len: c_int,
    pb: *mut c_char,
    pb_len: c_int,
    lines: c_int,
    _shard_hash: *const c_char,
    _shard_hash_len: c_int,
) -> c_int {
    send_pb(
        config,
        config_len,
        logstore,
        logstore_len,
        pb,
        pb_len,
        lines,
    )
}

extern "C" fn ctl_cmd(
    _config: *const c_char,
    _config_len: c_int,
    _opt_id: c_int,
    _params: *const c_char,
    _params_len: c_int,
) -> c_int {
    CTL_CMDS.fetch_add(1, Ordering::Relaxed);
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Content, Log, LogTag};

    fn settings() -> RunSettings {
        RunSettings {
            quiet: true,
            reject_first: 0,
            reject_rate: 0.0,
            seed: 1,
            reject_for: None,
            delay: None,
            loaded_configs: ["cfg".to_string()].into(),
            stats: false,
        }
    }

    fn group(n: usize, pack: &str) -> Vec<u8> {
        LogGroup {
            logs: (0..n)
                .map(|i| Log {
                    time: 1,
                    contents: vec![Content {
                        key: "Index".into(),
                        value: i.to_string(),
                    }],
                    values: vec![],
                    time_ns: None,
                })
                .collect(),
            log_tags: vec![LogTag {
                key: "__pack_id__".into(),
                value: pack.into(),
            }],
            ..LogGroup::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn counts_groups_logs_packs_and_rejects() {
        let mut s = RunState::new(RunSettings {
            reject_first: 1,
            ..settings()
        });
        s.started = Some(Instant::now());
        assert_eq!(s.deliver("cfg", "ls", &group(3, "A-1"), 3), -1);
        assert_eq!(s.deliver("cfg", "ls", &group(3, "A-1"), 3), 0);
        assert_eq!(s.deliver("cfg", "ls", &group(2, "A-3"), 1), 0);
        assert_eq!(s.deliver("cfg", "ls", &group(2, "A-3"), 2), 0);
        assert_eq!(s.deliver("logtail_alarm", "x", &group(1, "B-0"), 1), 0);
        assert_eq!(s.deliver("cfg", "ls", b"\xff\xff\xff", 1), 0);
        let st = &s.stats;
        assert_eq!(
            (st.groups, st.logs, st.other_groups, st.other_logs),
            (3, 7, 1, 1)
        );
        assert_eq!(
            (st.rejected_sends, st.bad_groups, st.lines_mismatches),
            (1, 1, 1)
        );
        assert_eq!(st.per_config["cfg"].rejected_sends, 1);
        assert_eq!(s.packs.duplicates(), 1);
        assert_eq!(s.packs.gaps(), 1);
    }

    #[test]
    fn reject_rate_is_deterministic_and_reject_for_expires() {
        let decisions = |seed| {
            let mut s = RunState::new(RunSettings {
                reject_rate: 0.5,
                seed,
                ..settings()
            });
            (0..64).map(|_| s.reject()).collect::<Vec<bool>>()
        };
        assert_eq!(decisions(3), decisions(3));
        assert_ne!(decisions(3), decisions(4));
        let mut s = RunState::new(RunSettings {
            reject_for: Some(Duration::from_millis(30)),
            ..settings()
        });
        assert!(s.reject(), "rejects before Resume");
        s.started = Some(Instant::now());
        assert!(s.reject());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!s.reject());
    }

    #[test]
    fn footprint_counts_its_configs_apart_from_the_others() {
        assert_eq!(footprint_config_name(1), "fp_0001");
        assert_eq!(footprint_config_name(12345), "fp_12345");
        assert_eq!(footprint_slot("fp_0001", 3), Some(0));
        assert_eq!(footprint_slot("fp_0003", 3), Some(2));
        for bad in [
            "fp_0004",
            "fp_0000",
            "fp_",
            "fp_+1",
            "fp_1x",
            "logtail_alarm",
            "fp1",
        ] {
            assert_eq!(footprint_slot(bad, 3), None, "{bad}");
        }
        let c = FootprintCounters::new(3);
        assert_eq!(c.deliver("fp_0001", &group(3, "A-1")), 0);
        assert_eq!(c.deliver("fp_0001", &group(2, "A-2")), 0);
        assert_eq!(c.deliver("fp_0003", &group(1, "B-1")), 0);
        assert_eq!(c.deliver("shennong_log_profile", &group(4, "C-1")), 0);
        assert_eq!(c.deliver("logtail_alarm", &group(1, "D-1")), 0);
        assert_eq!(
            c.stats(),
            FootprintStats {
                groups: 3,
                logs: 6,
                other_groups: 2,
                other_logs: 5,
                bad_groups: 0,
                configs_delivering: 2,
            }
        );
    }

    #[test]
    fn callbacks_survive_null_pointers_without_a_sink() {
        let rc = send_pb(
            std::ptr::null(),
            5,
            std::ptr::null(),
            -1,
            std::ptr::null_mut(),
            9,
            0,
        );
        assert_eq!(rc, 0);
        assert_eq!(is_valid_to_send(-1), 0);
    }
}
