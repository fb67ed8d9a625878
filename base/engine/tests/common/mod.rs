//! Shared helpers of the in-process lifecycle tests: a recording [`Host`] that can be told to
//! refuse, engines on their own temporary checkpoint directories, config builders, host-fed
//! groups, and checks of what reached the host (exact `seq`/`Index` sets, pack ids in order).
//!
//! Everything waits with deadlines ([`wait_until`]); nothing asserts after a fixed sleep.
#![allow(dead_code)]

use bytes::Bytes;
use engine::event::{EventGroup, LogEvent};
use engine::host::{Host, Payload, Refused};
use engine::stats::PluginStats;
use engine::{Engine, InitOptions, Settings, Tunables};
use prost::Message;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wire::sls::LogGroup;

/// Config name of alarm groups (`engine::report::ALARM_CONFIG`).
pub use engine::report::{ALARM_CONFIG, PROFILE_CONFIG};

/// Longest any condition is waited for: far above what a passing run needs.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `cond` every few milliseconds until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One payload as the host saw it, decoded.
#[derive(Debug, Clone)]
pub struct Sent {
    pub config: String,
    pub logstore: String,
    pub lines: usize,
    pub group: LogGroup,
}

impl Sent {
    /// The value of the `__pack_id__` tag, if it is the last tag.
    pub fn pack_id(&self) -> Option<&str> {
        self.group
            .log_tags
            .last()
            .filter(|t| t.key == "__pack_id__")
            .map(|t| t.value.as_str())
    }
}

/// A host that records what it accepts (and what it refuses) and accepts only while
/// [`Recorder::set_accept`] says so.
#[derive(Debug)]
pub struct Recorder {
    accept: AtomicBool,
    /// Configs refused even while accepting (as a 2.x host refuses names it does not know).
    refuse_configs: Mutex<Vec<String>>,
    sent: Mutex<Vec<Sent>>,
    refused: Mutex<Vec<Sent>>,
    refusals: AtomicU64,
}

impl Recorder {
    pub fn new(accept: bool) -> Arc<Self> {
        Arc::new(Self {
            accept: AtomicBool::new(accept),
            refuse_configs: Mutex::new(Vec::new()),
            sent: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
            refusals: AtomicU64::new(0),
        })
    }

    pub fn set_accept(&self, accept: bool) {
        self.accept.store(accept, Ordering::SeqCst);
    }

    /// Refuses payloads for `config` whatever [`Recorder::set_accept`] says.
    pub fn refuse_config(&self, config: &str) {
        self.refuse_configs.lock().unwrap().push(config.to_string());
    }

    /// Every accepted payload of `config`, in the order the host took them.
    pub fn sent(&self, config: &str) -> Vec<Sent> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.config == config)
            .cloned()
            .collect()
    }

    /// Every accepted payload, any config.
    pub fn all_sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    /// Every refused payload of `config`, in order.
    pub fn refused(&self, config: &str) -> Vec<Sent> {
        self.refused
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.config == config)
            .cloned()
            .collect()
    }

    /// How many sends were refused (any config).
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::SeqCst)
    }

    /// Logs accepted for `config`.
    pub fn log_count(&self, config: &str) -> usize {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.config == config)
            .map(|s| s.group.logs.len())
            .sum()
    }

    /// Accepted data groups of `config` (the statistics and alarm configs aside).
    pub fn data_configs(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.config != ALARM_CONFIG && s.config != PROFILE_CONFIG)
            .map(|s| s.config.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

impl Host for Recorder {
    fn send(&self, p: &Payload) -> Result<(), Refused> {
        let group = LogGroup::decode(p.data.as_slice()).expect("the engine sent a valid LogGroup");
        assert_eq!(group.logs.len(), p.lines, "lines argument of {}", p.config);
        let s = Sent {
            config: p.config.to_string(),
            logstore: p.logstore.to_string(),
            lines: p.lines,
            group,
        };
        let refused_name = self.refuse_configs.lock().unwrap().contains(&s.config);
        if self.accept.load(Ordering::SeqCst) && !refused_name {
            self.sent.lock().unwrap().push(s);
            Ok(())
        } else {
            self.refusals.fetch_add(1, Ordering::SeqCst);
            self.refused.lock().unwrap().push(s);
            Err(Refused(if refused_name { -2 } else { -1 }))
        }
    }
}

/// A checkpoint directory of its own, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let p = std::env::temp_dir().join(format!(
            "engine-lifecycle-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Small bounds so every lifecycle step takes milliseconds.
pub fn fast() -> Tunables {
    Tunables {
        hold_on_timeout_ms: 500,
        process_timeout_ms: 1000,
        alarm_interval_ms: 100,
        statistics_interval_ms: 3_600_000,
        ..Tunables::default()
    }
}

/// A new engine delivering to `host`, with `tunables`, initialised on `dir`.
pub fn engine_with(name: &str, host: Arc<Recorder>, dir: &TempDir, tunables: Tunables) -> Engine {
    let e = Engine::new(Settings {
        name: name.into(),
        host,
    });
    e.set_tunables(tunables);
    let opts = InitOptions {
        checkpoint_dir: dir.path().to_path_buf(),
        host_ip: Some("10.0.0.1".into()),
        hostname: Some("lifecycle-test".into()),
    };
    // Dropping an engine closes its store before it returns: the next one opens at once.
    e.init(opts)
        .unwrap_or_else(|err| panic!("init on {}: {err}", dir.path().display()));
    e
}

/// [`engine_with`] the [`fast`] tunables.
pub fn engine(name: &str, host: Arc<Recorder>, dir: &TempDir) -> Engine {
    engine_with(name, host, dir, fast())
}

/// Loads `name` (logstore `<name>_store`, key 1).
pub fn load(e: &Engine, name: &str, json: &str) {
    e.load_config("proj", &logstore_of(name), name, 1, json)
        .unwrap_or_else(|err| panic!("LoadConfig({name}): {err}"));
}

pub fn logstore_of(name: &str) -> String {
    format!("{}_store", engine::engine::real_config_name(name))
}

/// A host-fed config: `processor_add_fields` writes `gen`, then `flusher_sls`.
pub fn fed(gen: &str) -> String {
    json!({
        "global": {"AggregatIntervalMs": 30},
        "processors": [{"type": "processor_add_fields", "detail": {"Fields": {"gen": gen}}}],
        "flushers": [{"type": "flusher_sls", "detail": {}}],
    })
    .to_string()
}

/// A config with a `service_mock` input producing `max` logs (`Index` 1..) at `rate` per
/// second, each with `gen`.
pub fn mock(rate: u64, max: u64, gen: &str) -> String {
    json!({
        "global": {"AggregatIntervalMs": 30},
        "inputs": [{"type": "service_mock", "detail": {
            "LogsPerSecond": rate, "MaxLogCount": max, "Fields": {"gen": gen}}}],
        "flushers": [{"type": "flusher_sls", "detail": {}}],
    })
    .to_string()
}

/// A host-fed group from source `host:<prefix>` of logs with `seq` `from..from + n`.
pub fn group(prefix: &str, from: u64, n: u64) -> EventGroup {
    let (t, _) = engine::event::now();
    let mut g = EventGroup::new(Bytes::from(format!("host:{prefix}")));
    for i in from..from + n {
        let mut e = LogEvent::new(t);
        e.contents.push((
            Bytes::from_static(b"content"),
            Bytes::from(format!("line {i}")),
        ));
        e.contents
            .push((Bytes::from_static(b"seq"), Bytes::from(i.to_string())));
        g.events.push(e);
    }
    g
}

/// Pushes `count` groups of `per` logs, `seq` numbered from `first`.
pub fn push_seq(e: &Engine, name: &str, first: u64, count: u64, per: u64) {
    for k in 0..count {
        e.push(name, std::iter::once(group("AB12", first + k * per, per)))
            .unwrap_or_else(|err| panic!("push({name}): {err}"));
    }
}

/// The value of `key` in a log.
pub fn field<'a>(log: &'a wire::sls::Log, key: &str) -> Option<&'a str> {
    log.contents
        .iter()
        .find(|c| c.key == key)
        .map(|c| c.value.as_str())
}

/// Numeric `key` of every log in `sent` whose `gen` is `gen` (any gen when `None`), sorted.
pub fn numbers(sent: &[Sent], key: &str, gen: Option<&str>) -> Vec<u64> {
    let mut v: Vec<u64> = sent
        .iter()
        .flat_map(|s| s.group.logs.iter())
        .filter(|l| match gen {
            Some(g) => field(l, "gen") == Some(g),
            None => true,
        })
        .map(|l| {
            field(l, key)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("log without a numeric {key}: {l:?}"))
        })
        .collect();
    v.sort_unstable();
    v
}

/// Asserts `got` (sorted) is exactly `from..=to`: nothing lost, nothing twice.
pub fn assert_exactly(got: &[u64], from: u64, to: u64, what: &str) {
    let want: Vec<u64> = (from..=to).collect();
    if got != want.as_slice() {
        let mut dups = got.to_vec();
        dups.dedup();
        let missing: Vec<u64> = want
            .iter()
            .filter(|w| got.binary_search(w).is_err())
            .copied()
            .take(10)
            .collect();
        panic!(
            "{what}: {} logs, want {} ({from}..={to}); {} duplicated, missing (first 10) {missing:?}",
            got.len(),
            want.len(),
            got.len() - dups.len(),
        );
    }
}

/// Every accepted group's pack id, per prefix, in the order the host took them.
pub fn pack_ids(sent: &[Sent]) -> BTreeMap<String, Vec<u64>> {
    let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for s in sent {
        let id = s
            .pack_id()
            .unwrap_or_else(|| panic!("group without a last __pack_id__: {:?}", s.group.log_tags));
        let (prefix, seq) = id.rsplit_once('-').expect("<prefix>-<seq>");
        let seq = u64::from_str_radix(seq, 16).expect("hex sequence");
        m.entry(prefix.to_string()).or_default().push(seq);
    }
    m
}

/// Asserts each prefix's pack ids arrived as 1, 2, 3, ... (no gap, no duplicate, in order);
/// returns the number of prefixes.
pub fn assert_pack_ids_in_order(sent: &[Sent], what: &str) -> usize {
    let m = pack_ids(sent);
    for (prefix, seqs) in &m {
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, &want, "{what}: pack ids of prefix {prefix}");
    }
    m.len()
}

/// The sum of one counter over `config`'s plugins whose name starts with `plugin`.
pub fn counter(e: &Engine, config: &str, plugin: &str, c: fn(&PluginStats) -> &AtomicU64) -> u64 {
    e.stats()
        .counters()
        .iter()
        .filter(|((cf, p), _)| cf == config && p.starts_with(plugin))
        .map(|(_, s)| c(s).load(Ordering::Relaxed))
        .sum()
}

/// Events the flusher of `config` handed on (serialized into its outbox).
pub fn flushed(e: &Engine, config: &str) -> u64 {
    counter(e, config, "flusher_sls", |s| &s.events_out)
}

/// Events the processor of a [`fed`] config handed on (they carry its `gen`, whatever
/// happens to them later).
pub fn processed(e: &Engine, config: &str) -> u64 {
    counter(e, config, "processor_add_fields", |s| &s.events_out)
}

/// Events the `service_mock` input of a [`mock`] config produced.
pub fn produced(e: &Engine, config: &str) -> u64 {
    counter(e, config, "service_mock", |s| &s.events_out)
}

/// Alarm logs accepted by the host, as (type, config, count) per log.
pub fn alarms(host: &Recorder) -> Vec<(String, String, u64, String)> {
    host.sent(ALARM_CONFIG)
        .iter()
        .flat_map(|s| s.group.logs.clone())
        .map(|l| {
            (
                field(&l, "alarm_type").unwrap_or("").to_string(),
                field(&l, "config").unwrap_or("").to_string(),
                field(&l, "alarm_count")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
                field(&l, "alarm_message").unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Parses a JSON config value (for tests that build their own).
pub fn text(v: Value) -> String {
    v.to_string()
}
