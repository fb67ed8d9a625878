//! The LoongCollector 3.x host: its exports (safe wrappers that read and `free` what the base
//! returns exactly as the host does), its `PipelineEventGroup` protobuf (our own prost
//! messages, independent of the base's) and a session initialised the 3.x way.
//!
//! Call [`LoongSession::start`] first in every test of a binary: it makes the process load
//! `libGoPluginAdapter.so` / `libGoPluginBase.so` and register the callbacks with three
//! arguments, as a 3.2+ host does.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_char, CStr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::export;
use crate::ffi::{self, GoSlice, GoString};
use crate::util::TempDir;

/// `PipelineEventGroup` (proto3, `logtail.models`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PipelineEventGroup {
    /// Metadata (keys: the host's `EventGroupMetaKey` ordinals).
    #[prost(map = "string, bytes", tag = "1")]
    pub metadata: HashMap<String, Vec<u8>>,
    /// Tags.
    #[prost(map = "string, bytes", tag = "2")]
    pub tags: HashMap<String, Vec<u8>>,
    /// Logs.
    #[prost(message, optional, tag = "3")]
    pub logs: Option<LogEvents>,
    /// Metrics.
    #[prost(message, optional, tag = "4")]
    pub metrics: Option<MetricEvents>,
    /// Spans.
    #[prost(message, optional, tag = "5")]
    pub spans: Option<SpanEvents>,
}

/// `LogEvents`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogEvents {
    /// The events.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<LogEvent>,
}

/// `MetricEvents`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricEvents {
    /// The events.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<MetricEvent>,
}

/// `SpanEvents`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanEvents {
    /// The events.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<SpanEvent>,
}

/// `LogEvent.Content`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Content {
    /// Key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// Value.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `LogEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogEvent {
    /// Nanoseconds since the epoch.
    #[prost(uint64, tag = "1")]
    pub timestamp: u64,
    /// Contents.
    #[prost(message, repeated, tag = "2")]
    pub contents: Vec<Content>,
}

/// `MetricEvent` with an `UntypedSingleValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricEvent {
    /// Nanoseconds since the epoch.
    #[prost(uint64, tag = "1")]
    pub timestamp: u64,
    /// Name.
    #[prost(bytes = "vec", tag = "2")]
    pub name: Vec<u8>,
    /// Labels.
    #[prost(map = "string, bytes", tag = "3")]
    pub tags: HashMap<String, Vec<u8>>,
    /// The value.
    #[prost(message, optional, tag = "4")]
    pub value: Option<SingleValue>,
}

/// `UntypedSingleValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SingleValue {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// `SpanEvent` (name only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanEvent {
    /// Nanoseconds since the epoch.
    #[prost(uint64, tag = "1")]
    pub timestamp: u64,
    /// Name.
    #[prost(bytes = "vec", tag = "6")]
    pub name: Vec<u8>,
}

/// A log group as the host sends it: `logs` logs with `fields` and `content`, group tag
/// `__topic__`, metadata `SOURCE_ID` (25).
pub fn log_group(topic: &str, source_id: &str, logs: &[Vec<(&str, String)>]) -> Vec<u8> {
    use prost::Message;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    PipelineEventGroup {
        metadata: [("25".to_string(), source_id.as_bytes().to_vec())].into(),
        tags: [("__topic__".to_string(), topic.as_bytes().to_vec())].into(),
        logs: Some(LogEvents {
            events: logs
                .iter()
                .map(|kv| LogEvent {
                    timestamp: now,
                    contents: kv
                        .iter()
                        .map(|(k, v)| Content {
                            key: k.as_bytes().to_vec(),
                            value: v.as_bytes().to_vec(),
                        })
                        .collect(),
                })
                .collect(),
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The host's pack id of a source: FNV-1a 64 of its bytes (read as signed `char`, as on
/// x86-64), uppercase hex without leading zeros (`HashString` + `ToHexString`).
pub fn host_pack_id(source_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in source_id.bytes() {
        h ^= b as i8 as i64 as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:X}")
}

fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the base returns NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// `LoadPipeline(project, logstore, name, key, json)`.
pub fn load_pipeline(project: &str, logstore: &str, name: &str, key: i64, json: &str) -> i64 {
    // SAFETY: the strings outlive the call.
    unsafe {
        export!(LoadPipeline)(
            GoString::new(project),
            GoString::new(logstore),
            GoString::new(name),
            key,
            GoString::new(json),
        )
    }
}

/// `UnloadPipeline(name)`.
pub fn unload_pipeline(name: &str) -> i64 {
    // SAFETY: as above.
    unsafe { export!(UnloadPipeline)(GoString::new(name)) }
}

/// `Start(name)`.
pub fn start(name: &str) {
    // SAFETY: as above.
    unsafe { export!(Start)(GoString::new(name)) }
}

/// `Stop(name, removed)`.
pub fn stop(name: &str, removed: bool) {
    crate::base::stop(name, i64::from(removed));
}

/// `StopAllPipelines(flag)`.
pub fn stop_all(with_inputs: bool) {
    // SAFETY: plain integer.
    unsafe { export!(StopAllPipelines)(i64::from(with_inputs)) }
}

/// `StopBuiltInModules()`.
pub fn stop_builtin_modules() {
    // SAFETY: no arguments.
    unsafe { export!(StopBuiltInModules)() }
}

/// Runs `f` on another thread and returns how long it took, or `None` after `timeout`.
pub fn timed(timeout: Duration, f: impl FnOnce() + Send + 'static) -> Option<Duration> {
    let (tx, rx) = mpsc::channel();
    let t = Instant::now();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(t.elapsed());
    });
    rx.recv_timeout(timeout).ok()
}

/// `ProcessPipelineEventGroup(name, bytes, packId)`.
pub fn process_event_group(name: &str, pb: &[u8], pack_id: &str) -> i64 {
    // SAFETY: as above.
    unsafe {
        export!(ProcessPipelineEventGroup)(
            GoString::new(name),
            GoSlice::from_bytes(pb),
            GoString::new(pack_id),
        )
    }
}

/// Reads a metrics result the way `LogtailPlugin::GetGoMetrics` does (a NULL record is an
/// empty map; duplicate keys keep the first) and frees every part with `free`.
///
/// # Safety
/// `m` must be NULL or what `GetGoMetrics` / `GetPipelineMetrics` returned.
pub unsafe fn read_metrics(m: *mut ffi::InnerPluginMetrics) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    if m.is_null() {
        return out;
    }
    // SAFETY: the layout the host reads; every part malloc'ed by the base.
    unsafe {
        for i in 0..(*m).count as usize {
            let mut item = BTreeMap::new();
            let pm = *(*m).metrics.add(i);
            if !pm.is_null() {
                for j in 0..(*pm).count as usize {
                    let kv = *(*pm).keyValues.add(j);
                    if !kv.is_null() {
                        item.entry(text((*kv).key)).or_insert(text((*kv).value));
                        libc::free((*kv).key.cast());
                        libc::free((*kv).value.cast());
                        libc::free(kv.cast());
                    }
                }
                libc::free((*pm).keyValues.cast());
                libc::free(pm.cast());
            }
            out.push(item);
        }
        libc::free((*m).metrics.cast());
        libc::free(m.cast());
    }
    out
}

/// `GetGoMetrics(type)`, read and freed as the host does.
pub fn get_go_metrics(metric_type: &str) -> Vec<BTreeMap<String, String>> {
    // SAFETY: the string outlives the call; the result is what GetGoMetrics returned.
    unsafe { read_metrics(export!(GetGoMetrics)(GoString::new(metric_type))) }
}

/// A `direct` record as `SelfMonitorMetricEvent` reads it: (category, labels, counters,
/// gauges).
#[derive(Clone, Debug, Default)]
pub struct DirectRecord {
    /// `metric_category`.
    pub category: String,
    /// String labels (the category removed).
    pub labels: BTreeMap<String, String>,
    /// Counters (`stod` of the string values; 0 when bad).
    pub counters: BTreeMap<String, u64>,
    /// Gauges.
    pub gauges: BTreeMap<String, f64>,
}

/// Parses `direct` records as the host does; a missing `labels`, `counters` or `gauges` key
/// (which makes the host throw `std::out_of_range`) is an error.
pub fn parse_direct(records: &[BTreeMap<String, String>]) -> Result<Vec<DirectRecord>, String> {
    records
        .iter()
        .map(|r| {
            let get = |k: &str| -> Result<serde_json::Map<String, Value>, String> {
                let s = r
                    .get(k)
                    .ok_or_else(|| format!("record without {k:?}: {r:?}"))?;
                match serde_json::from_str(s) {
                    Ok(Value::Object(m)) => Ok(m),
                    _ => Err(format!("{k} is not a JSON object: {s}")),
                }
            };
            let mut labels = get("labels")?;
            let category = labels
                .remove("metric_category")
                .and_then(|v| v.as_str().map(String::from))
                .ok_or_else(|| format!("labels without metric_category: {r:?}"))?;
            let counters = get("counters")?
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_str()?.parse::<f64>().unwrap_or(0.0) as u64)))
                .collect();
            let gauges = get("gauges")?
                .into_iter()
                .filter_map(|(k, v)| {
                    let x = v.as_f64().or_else(|| v.as_str()?.parse().ok())?;
                    Some((k, x))
                })
                .collect();
            Ok(DirectRecord {
                category,
                labels: labels
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
                    .collect(),
                counters,
                gauges,
            })
        })
        .collect()
}

/// One alarm as `LogtailPlugin::GetGoAlarms` reads it.
#[derive(Clone, Debug, Default)]
pub struct PulledAlarm {
    /// alarmType.
    pub kind: String,
    /// alarmLevel.
    pub level: String,
    /// alarmMessage.
    pub message: String,
    /// projectName.
    pub project: String,
    /// category.
    pub logstore: String,
    /// config.
    pub config: String,
    /// count.
    pub count: i32,
}

/// `GetGoAlarms()`, read and freed as the host does.
///
/// # Panics
/// When the result, an alarm or one of its strings is NULL (the base promises none).
pub fn get_go_alarms() -> Vec<PulledAlarm> {
    // SAFETY: no arguments; the result's parts are malloc'ed by the base.
    unsafe {
        let a = export!(GetGoAlarms)();
        assert!(!a.is_null(), "GetGoAlarms returned NULL");
        let mut out = Vec::new();
        for i in 0..(*a).count as usize {
            let x = *(*a).alarms.add(i);
            assert!(!x.is_null(), "GetGoAlarms: alarm {i} is NULL");
            let x = &*x;
            for (what, p) in [
                ("alarmType", x.alarmType),
                ("alarmLevel", x.alarmLevel),
                ("alarmMessage", x.alarmMessage),
                ("projectName", x.projectName),
                ("category", x.category),
                ("config", x.config),
            ] {
                assert!(!p.is_null(), "GetGoAlarms: {what} of alarm {i} is NULL");
            }
            out.push(PulledAlarm {
                kind: text(x.alarmType),
                level: text(x.alarmLevel),
                message: text(x.alarmMessage),
                project: text(x.projectName),
                logstore: text(x.category),
                config: text(x.config),
                count: x.count,
            });
            for s in [
                x.alarmType,
                x.alarmLevel,
                x.alarmMessage,
                x.projectName,
                x.category,
                x.config,
            ] {
                libc::free(s.cast());
            }
            libc::free((x as *const ffi::InnerGoAlarm).cast_mut().cast());
        }
        libc::free((*a).alarms.cast());
        libc::free(a.cast());
        out
    }
}

/// `GetAllContainers()` / `GetDiffContainers()` as the host reads them (`std::string(res)`,
/// which a NULL crashes), freed.
pub fn get_containers(all: bool) -> Option<String> {
    // SAFETY: no arguments; the result is malloc'ed.
    unsafe {
        let p = if all {
            export!(GetAllContainers)()
        } else {
            export!(GetDiffContainers)()
        };
        if p.is_null() {
            return None;
        }
        let s = text(p);
        libc::free(p.cast());
        Some(s)
    }
}

/// The project every 3.x test config uses.
pub const PROJECT: &str = "loong-project";

/// The base of this process, initialised as a LoongCollector 3.x host does.
pub struct LoongSession {
    dir: Option<TempDir>,
    root: std::path::PathBuf,
}

impl LoongSession {
    /// Loads `libGoPluginAdapter.so` (3-argument registration) and `libGoPluginBase.so`,
    /// then `InitPluginBaseV2` with the 3.x keys in a new temp dir.
    ///
    /// # Panics
    /// When loading fails or `InitPluginBaseV2` does not return 0.
    pub fn start(name: &str) -> LoongSession {
        let dir = TempDir::new(name);
        let root = dir.path().to_path_buf();
        Self::init(&root);
        LoongSession {
            dir: Some(dir),
            root,
        }
    }

    /// As [`LoongSession::start`] on `root`, which outlives the process.
    ///
    /// # Panics
    /// As [`LoongSession::start`].
    pub fn start_in(root: &std::path::Path) -> LoongSession {
        std::fs::create_dir_all(root).expect("create the session root");
        Self::init(root);
        LoongSession {
            dir: None,
            root: root.to_path_buf(),
        }
    }

    fn init(root: &std::path::Path) {
        ffi::play_loongcollector();
        let h = ffi::host();
        assert_ne!(h.generation, ffi::Generation::Logtail);
        let rc = crate::base::init_plugin_base_v2(&init_json(root));
        assert_eq!(rc, 0, "InitPluginBaseV2 returned {rc}");
    }

    /// The data directory.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// `LoadPipeline(PROJECT, <real name>-store, name, key, json)`.
    pub fn load(&self, name: &str, key: i64, json: &str) -> i64 {
        let real = name.trim_end_matches("/1").trim_end_matches("/2");
        load_pipeline(PROJECT, &format!("{real}-store"), name, key, json)
    }

    /// Removes the temp dir (after the caller stopped everything).
    pub fn close(self) {
        drop(self.dir);
    }
}

/// The `InitPluginBaseV2` JSON of a 3.x host (no `LogtailSysConfDir`) rooted at `d`.
pub fn init_json(d: &std::path::Path) -> String {
    let sub = |s: &str| format!("{}/{s}/", d.display());
    json!({
        "LoongCollectorConfDir": sub("conf"),
        "LoongCollectorLogConfDir": sub("conf"),
        "LoongCollectorLogDir": sub("log"),
        "LoongCollectorDataDir": sub("data"),
        "LoongCollectorThirdPartyDir": sub("thirdparty"),
        "LoongCollectorGoCheckPointDir": sub("data"),
        "LoongCollectorGoCheckPointFile": "go_plugin_checkpoint",
        "LoongCollectorPluginLogName": "go_plugin.LOG",
        "LoongCollectorVersionTag": "loongcollector_version",
        "HostIP": crate::HOST_IP,
        "Hostname": crate::HOST_NAME,
        "EnableSlsMetricsFormat": true,
    })
    .to_string()
}

/// A `/2` pipeline as the host emits it: `processors` (Go processors with `type/id` names),
/// `aggregator_default` and a Go `flusher_sls` that hands groups back.
pub fn host_fed_pipeline(processors: Vec<Value>, aggregate_ms: u64) -> String {
    json!({
        "global": {
            "DefaultLogQueueSize": 10,
            "EnableProcessorTag": true,
            "EnableTimestampNanosecond": false,
            "UsingOldContentTag": false,
            "AggregatIntervalMs": aggregate_ms,
        },
        "processors": processors,
        "aggregators": [{"type": "aggregator_default/90", "detail": {}}],
        "flushers": [{"type": "flusher_sls/91", "detail": {}}],
    })
    .to_string()
}
