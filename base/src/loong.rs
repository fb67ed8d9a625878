//! The LoongCollector 3.x generation over the engine (the exports are in `ffi::loong`):
//! which generation drives us, host events → engine events, and the metrics and alarms the
//! host pulls (`GetGoMetrics`, `GetGoAlarms`).

use ::engine::api::PackIds;
use ::engine::config::Kind;
use ::engine::event::{EventGroup, LogEvent};
use ::engine::stats::{Alarm, AlarmType, Level, PluginStats};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use wire::models::{self, MetricValue, PipelineEvents};

use crate::engine;

/// Which host generation drives the library, as its first config call tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// No config call yet.
    Unknown = 0,
    /// iLogtail 1.x/2.x: `LoadConfig`, `HoldOn`, `Resume`.
    Logtail = 1,
    /// LoongCollector 3.x: `LoadPipeline`, `Start`, `StopAllPipelines`.
    Loong = 3,
}

static GENERATION: AtomicU8 = AtomicU8::new(0);

/// `ProcessTimeoutMs` for a LoongCollector 3.x host (the default is 10 s).
pub const LOONG_PROCESS_TIMEOUT_MS: u64 = 3000;

/// Notes the generation of the host from one of its calls (the first one counts). A 3.x
/// host pulls statistics (`GetGoMetrics`), so the engine stops sending them.
pub fn seen(g: Generation) {
    if GENERATION
        .compare_exchange(0, g as u8, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        tracing::info!(generation = ?g, "host generation detected");
        crate::adaptor::trust_ctl_cmd(g == Generation::Logtail);
        if g == Generation::Loong {
            engine().set_pulled(false, true);
            // A 3.x host never calls LoadGlobalConfig; its Stop waits for the config's
            // in-flight ProcessPipelineEventGroup calls and alarms after 10 s, so a call
            // blocked on back-pressure keeps its data on disk after LOONG_PROCESS_TIMEOUT_MS.
            // (Only when no LoadGlobalConfig came first: the first settings win.)
            engine().set_tunables(::engine::Tunables {
                process_timeout_ms: LOONG_PROCESS_TIMEOUT_MS,
                ..Default::default()
            });
        }
    }
}

/// The generation seen so far.
pub fn generation() -> Generation {
    match GENERATION.load(Ordering::Relaxed) {
        1 => Generation::Logtail,
        3 => Generation::Loong,
        _ => Generation::Unknown,
    }
}

/// What a `PipelineEventGroup` becomes.
#[derive(Debug, Default)]
pub struct Converted {
    /// The logs (metrics as metric logs); `None` when the group had none.
    pub group: Option<EventGroup>,
    /// Span events, which have no log layout here: counted and alarmed, not delivered.
    pub spans: usize,
}

fn bytes(v: Vec<u8>) -> Bytes {
    Bytes::from(v)
}

fn key(k: &'static str) -> Bytes {
    Bytes::from_static(k.as_bytes())
}

/// Nanoseconds since the epoch → (seconds, nanoseconds part when non-zero).
fn split_ns(ts: u64) -> (u32, Option<u32>) {
    let secs = u32::try_from(ts / 1_000_000_000).unwrap_or(u32::MAX);
    let ns = (ts % 1_000_000_000) as u32;
    (secs, (ns != 0).then_some(ns))
}

/// A metric value as text (shortest form that reads back the same: `1`, `0.5`).
fn number(v: f64) -> Bytes {
    Bytes::from(format!("{v}"))
}

/// A metric in iLogtail's metric-log layout (`helper.NewMetricLog`): `__name__`,
/// `__labels__` (`k#$#v|k#$#v`, sorted by key), `__time_nano__`, `__value__`. A multi-value
/// metric is one log with its labels and each named value as contents (as the host's own
/// SLS serializer writes it).
fn metric_log(m: models::MetricEvent) -> LogEvent {
    let (time, time_ns) = split_ns(m.timestamp);
    let mut e = LogEvent::new(time);
    e.time_ns = time_ns;
    let time_nano = key_value_time(m.timestamp);
    let mut tags: Vec<(String, Vec<u8>)> = m.tags.into_iter().collect();
    tags.sort();
    match m.value {
        Some(MetricValue::UntypedMultiDoubleValues(values)) => {
            e.contents.push((key("__time_nano__"), time_nano));
            for (k, v) in tags {
                e.contents.push((Bytes::from(k), bytes(v)));
            }
            let mut values: Vec<_> = values.values.into_iter().collect();
            values.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in values {
                e.contents.push((Bytes::from(k), number(v.value)));
            }
        }
        single => {
            let value = match single {
                Some(MetricValue::UntypedSingleValue(v)) => v.value,
                _ => 0.0,
            };
            let mut labels = Vec::new();
            for (i, (k, v)) in tags.iter().enumerate() {
                if i > 0 {
                    labels.push(b'|');
                }
                labels.extend_from_slice(k.as_bytes());
                labels.extend_from_slice(b"#$#");
                labels.extend_from_slice(v);
            }
            e.contents.push((key("__name__"), bytes(m.name)));
            e.contents.push((key("__labels__"), bytes(labels)));
            e.contents.push((key("__time_nano__"), time_nano));
            e.contents.push((key("__value__"), number(value)));
        }
    }
    e
}

fn key_value_time(ts: u64) -> Bytes {
    Bytes::from(ts.to_string())
}

/// Turns a host group into engine events: logs with every content in order (time from the
/// nanosecond timestamp), metrics as metric logs, the group's `__topic__` tag as the topic and
/// its other tags as tags. `Metadata` is not written to the logs (as in the Go original, where
/// it only reaches the aggregator's context); its source id is what the host's `packId`
/// already hashes. `pack_id` becomes the prefix of the groups' `__pack_id__`.
pub fn convert(g: models::PipelineEventGroup, pack_id: &str) -> Converted {
    let mut out = EventGroup::new(PackIds::host_prefix_source(pack_id));
    let mut tags: Vec<(String, Vec<u8>)> = g.tags.into_iter().collect();
    tags.sort();
    for (k, v) in tags {
        if k == "__topic__" {
            out.topic = bytes(v);
        } else {
            out.tags.push((Bytes::from(k), bytes(v)));
        }
    }
    let mut spans = 0;
    match g.events {
        Some(PipelineEvents::Logs(logs)) => {
            out.events.reserve(logs.events.len());
            for l in logs.events {
                let (time, time_ns) = split_ns(l.timestamp);
                let mut e = LogEvent::new(time);
                e.time_ns = time_ns;
                e.contents = l.contents.into_iter().map(|c| (c.key, c.value)).collect();
                out.events.push(e);
            }
        }
        Some(PipelineEvents::Metrics(metrics)) => {
            out.events = metrics.events.into_iter().map(metric_log).collect();
        }
        Some(PipelineEvents::Spans(s)) => spans = s.events.len(),
        None => {}
    }
    Converted {
        group: (!out.events.is_empty()).then_some(out),
        spans,
    }
}

/// One pulled metric record: the host's string map (`labels`, `counters`, `gauges`, each a
/// JSON object).
pub type Record = Vec<(&'static str, String)>;

/// Counters already reported, per (config, plugin): the host sums what it pulls, so each pull
/// reports what was counted since the last one. The `Arc` tells a counter set that was
/// recreated (a config removed and added again) from the one reported before.
type Reported = HashMap<(String, String), (Arc<PluginStats>, [u64; 13])>;

static REPORTED: Mutex<Option<Reported>> = Mutex::new(None);

/// The host's counter names for one of our counter sets, by what the plugin is.
fn counter_names(kind: Option<Kind>) -> &'static [(&'static str, &'static str)] {
    match kind {
        Some(Kind::Input) => &[
            ("out_events_total", "events_out"),
            ("out_event_groups_total", "groups_out"),
            ("out_size_bytes", "bytes_out"),
        ],
        Some(Kind::Processor) => &[
            ("in_events_total", "events_in"),
            ("in_size_bytes", "bytes_in"),
            ("out_events_total", "events_out"),
            ("out_size_bytes", "bytes_out"),
            ("total_process_time_ms", "time_ms"),
        ],
        Some(Kind::Aggregator) => &[
            ("in_events_total", "events_in"),
            ("in_size_bytes", "bytes_in"),
            ("out_events_total", "events_out"),
            ("out_event_groups_total", "groups_out"),
            ("out_size_bytes", "bytes_out"),
        ],
        Some(Kind::Flusher) => &[
            ("in_events_total", "events_in"),
            ("in_event_groups_total", "groups_in"),
            ("in_size_bytes", "bytes_in"),
            ("total_delay_ms", "time_ms"),
            ("out_events_total", "events_out"),
            ("out_size_bytes", "bytes_out"),
        ],
        // The config's own queue (`pipeline`) and the removed configs' delivery.
        None => &[
            ("in_events_total", "events_in"),
            ("in_size_bytes", "bytes_in"),
            ("out_events_total", "events_out"),
            ("out_size_bytes", "bytes_out"),
            ("spilled_events_total", "spilled"),
        ],
    }
}

/// Counters every record has besides its kind's.
const COMMON: &[(&str, &str)] = &[
    ("discarded_events_total", "dropped"),
    ("errors_total", "errors"),
    ("retries_total", "retries"),
    ("restarts_total", "restarts"),
];

fn json_object<'a>(pairs: impl Iterator<Item = (&'a str, String)>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// `GetGoMetrics("direct")`: one record per plugin instance (and per config queue), category
/// `plugin`, labelled as the host's own plugin metrics are, with the counts since the last
/// pull.
pub fn direct_records() -> Vec<Record> {
    let labels_of = Labels::now();
    let (live, retired) = engine().stats().take_counters();
    let mut guard = REPORTED.lock().unwrap_or_else(|e| e.into_inner());
    let reported = guard.get_or_insert_with(HashMap::new);
    let mut next: Reported = HashMap::with_capacity(live.len());
    let mut records = Vec::with_capacity(live.len() + retired.len());
    // The sets of removed configs first (their last counts, then never again), so that a
    // live set of the same name is the one remembered.
    let n_retired = retired.len();
    for (i, ((config, plugin), stats)) in retired.into_iter().chain(live).enumerate() {
        let now = stats.snapshot();
        let values: [u64; 13] = std::array::from_fn(|i| now[i].1);
        let before = match reported.remove(&(config.clone(), plugin.clone())) {
            Some((s, v)) if Arc::ptr_eq(&s, &stats) => v,
            _ => [0; 13],
        };
        let delta = |name: &str| {
            now.iter()
                .position(|(n, _)| *n == name)
                .map_or(0, |i| values[i].saturating_sub(before[i]))
        };
        let (plugin_type, plugin_id) = plugin.split_once('/').unwrap_or((&plugin, ""));
        let kind = ::engine::registry::kind_of(plugin_type);
        let (project, logstore) = labels_of.of(&config);
        let labels = json_object(
            [
                ("metric_category", "plugin".to_string()),
                ("project", project),
                ("logstore", logstore),
                ("pipeline_name", config.clone()),
                ("plugin_type", plugin_type.to_string()),
                ("plugin_id", plugin_id.to_string()),
            ]
            .into_iter(),
        );
        let counters = json_object(
            counter_names(kind)
                .iter()
                .chain(COMMON)
                .map(|(host, ours)| (*host, delta(ours).to_string())),
        );
        let gauges = json_object(std::iter::once((
            "queue_depth",
            stats
                .queue_depth
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        )));
        records.push(vec![
            ("labels", labels),
            ("counters", counters),
            ("gauges", gauges),
        ]);
        if i >= n_retired {
            next.insert((config, plugin), (stats, values));
        }
    }
    *reported = next;
    records
}

/// Project and logstore of configs given to `LoadPipeline`, by real name: alarms about a
/// config that failed to load carry them too (the host picks the alarm's destination by them).
static SEEN_LABELS: Mutex<Option<HashMap<String, (String, String)>>> = Mutex::new(None);
/// Most names remembered (a host cycling through ever new names clears the memory).
const MAX_SEEN_LABELS: usize = 100_000;

/// Remembers the project and logstore `LoadPipeline` got for config `name`.
pub fn note_labels(name: &str, project: &str, logstore: &str) {
    let mut g = SEEN_LABELS.lock().unwrap_or_else(|e| e.into_inner());
    let m = g.get_or_insert_with(HashMap::new);
    if m.len() >= MAX_SEEN_LABELS {
        m.clear();
    }
    let real = ::engine::engine::real_config_name(name).to_string();
    m.insert(real, (project.to_string(), logstore.to_string()));
}

/// Project and logstore by real config name: the loaded configs', else what `LoadPipeline`
/// was given (looked up per name: nothing is copied).
struct Labels {
    loaded: HashMap<String, (String, String)>,
    seen: std::sync::MutexGuard<'static, Option<HashMap<String, (String, String)>>>,
}

impl Labels {
    fn now() -> Self {
        Labels {
            loaded: engine().config_labels(),
            seen: SEEN_LABELS.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    fn of(&self, config: &str) -> (String, String) {
        self.loaded
            .get(config)
            .or_else(|| self.seen.as_ref()?.get(config))
            .cloned()
            .unwrap_or_default()
    }
}

/// `GetGoMetrics("cpp_provided")`: the library's memory (what its allocator holds, in MiB)
/// and its threads, as the host's `go_memory_used_mb` and `go_routines_total`.
pub fn cpp_provided() -> Record {
    vec![
        ("go_memory_used_mb", (heap_bytes() >> 20).to_string()),
        ("go_routines_total", own_threads().to_string()),
    ]
}

/// Bytes the library's allocator has committed (the process's RSS without mimalloc).
fn heap_bytes() -> usize {
    #[cfg(feature = "mimalloc")]
    {
        let mut v = [0usize; 8];
        let [a, b, c, d, e, f, g, h] = &mut v;
        // SAFETY: every pointer is a valid, writable usize.
        unsafe { libmimalloc_sys::mi_process_info(a, b, c, d, e, f, g, h) };
        v[5]
    }
    #[cfg(not(feature = "mimalloc"))]
    {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
            .map_or(0, |pages| pages * 4096)
    }
}

/// Threads the library started (named `plugin-…`).
fn own_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.starts_with("plugin-"))
        .count()
}

/// One alarm as `GetGoAlarms` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledAlarm {
    /// `PLUGIN_DATA_DROPPED_ALARM`, …
    pub kind: &'static str,
    /// `"1"` warning, `"2"` error, `"3"` critical.
    pub level: String,
    /// The last message (naming the plugin when the alarm is about one).
    pub message: String,
    /// Project of the config.
    pub project: String,
    /// Logstore of the config.
    pub logstore: String,
    /// Config (real name).
    pub config: String,
    /// Raised this many times since the last pull.
    pub count: i32,
}

/// `GetGoAlarms`: every alarm raised since the last pull (from now on the engine no longer
/// sends alarms through SendPb).
pub fn pull_alarms() -> Vec<PulledAlarm> {
    engine().set_pulled(true, false);
    let (alarms, overflow) = engine().stats().take_alarms();
    let labels_of = Labels::now();
    let mut out: Vec<PulledAlarm> = alarms
        .into_iter()
        .map(|a: Alarm| {
            let (project, logstore) = labels_of.of(&a.config);
            let message = if a.plugin.is_empty() || a.message.contains(&a.plugin) {
                a.message
            } else {
                format!("{}: {}", a.plugin, a.message)
            };
            PulledAlarm {
                kind: a.kind.name(),
                level: a.level.to_string(),
                message,
                project,
                logstore,
                config: a.config,
                count: i32::try_from(a.count).unwrap_or(i32::MAX).max(1),
            }
        })
        .collect();
    if overflow > 0 {
        out.push(PulledAlarm {
            kind: "ALARM_OVERFLOW_ALARM",
            level: Level::Error.to_string(),
            message: format!("{overflow} alarms were not kept: too many distinct alarms"),
            project: String::new(),
            logstore: String::new(),
            config: String::new(),
            count: i32::try_from(overflow).unwrap_or(i32::MAX),
        });
    }
    out
}

/// Counts and alarms span events a config was given: this runtime has no span layout.
pub fn refuse_spans(config: &str, spans: usize) {
    let real = ::engine::engine::real_config_name(config);
    let stats = engine().stats();
    PluginStats::add(&stats.plugin(real, "pipeline").dropped, spans as u64);
    stats.alarm(
        AlarmType::DataDropped,
        Level::Error,
        real,
        "pipeline",
        format!("dropped {spans} span events from the host: span events are not supported by this runtime (only logs and metrics)"),
    );
}

/// The self-monitoring alarms as a `PipelineEventGroup` (`GetGoSelfMonitorAlarmsPB`): one
/// log per alarm with `alarm_type, alarm_level, alarm_message, alarm_count, ip, os, ver` and,
/// when not empty, `project_name, category, config`.
pub fn alarms_pb(ip: &str) -> Vec<u8> {
    use prost::Message;
    let alarms = pull_alarms();
    let (t, _) = ::engine::event::now();
    let kv = |k: &str, v: &str| models::Content {
        key: Bytes::copy_from_slice(k.as_bytes()),
        value: Bytes::copy_from_slice(v.as_bytes()),
    };
    let events = alarms
        .into_iter()
        .map(|a| {
            let mut contents = vec![
                kv("alarm_type", a.kind),
                kv("alarm_level", &a.level),
                kv("alarm_message", &a.message),
                kv("alarm_count", &a.count.to_string()),
                kv("ip", ip),
                kv("os", std::env::consts::OS),
                kv("ver", env!("CARGO_PKG_VERSION")),
            ];
            for (k, v) in [
                ("project_name", &a.project),
                ("category", &a.logstore),
                ("config", &a.config),
            ] {
                if !v.is_empty() {
                    contents.push(kv(k, v));
                }
            }
            models::LogEvent {
                timestamp: u64::from(t) * 1_000_000_000,
                contents,
                ..Default::default()
            }
        })
        .collect();
    models::PipelineEventGroup {
        events: Some(PipelineEvents::Logs(models::LogEvents { events })),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The metrics as a `PipelineEventGroup` (`GetGoSelfMonitorMetricsPB`): one metric per
/// record, named by its category, labels as tags, counters and gauges as typed values.
pub fn metrics_pb(records: Vec<Record>) -> Vec<u8> {
    use models::{UntypedMultiDoubleValue, UntypedMultiDoubleValues, UntypedValueMetricType};
    use prost::Message;
    let (t, _) = ::engine::event::now();
    let parse = |s: &str| -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(s).unwrap_or_default()
    };
    let events = records
        .into_iter()
        .map(|r| {
            let field = |k: &str| r.iter().find(|(n, _)| *n == k).map(|(_, v)| parse(v));
            let mut labels = field("labels").unwrap_or_default();
            let name = labels
                .remove("metric_category")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut values = HashMap::new();
            for (part, kind) in [
                ("counters", UntypedValueMetricType::MetricTypeCounter),
                ("gauges", UntypedValueMetricType::MetricTypeGauge),
            ] {
                for (k, v) in field(part).unwrap_or_default() {
                    let value = v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0.0);
                    values.insert(
                        k,
                        UntypedMultiDoubleValue {
                            metric_type: kind as i32,
                            value,
                        },
                    );
                }
            }
            models::MetricEvent {
                timestamp: u64::from(t) * 1_000_000_000,
                name: name.into_bytes(),
                tags: labels
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.as_str()?.as_bytes().to_vec())))
                    .collect(),
                value: Some(MetricValue::UntypedMultiDoubleValues(
                    UntypedMultiDoubleValues { values },
                )),
                metadata: HashMap::new(),
            }
        })
        .collect();
    models::PipelineEventGroup {
        events: Some(PipelineEvents::Metrics(models::MetricEvents { events })),
        ..Default::default()
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn log(ts: u64, kv: &[(&str, &str)]) -> models::LogEvent {
        models::LogEvent {
            timestamp: ts,
            contents: kv
                .iter()
                .map(|(k, v)| models::Content {
                    key: Bytes::copy_from_slice(k.as_bytes()),
                    value: Bytes::copy_from_slice(v.as_bytes()),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn logs_keep_contents_time_tags_and_topic() {
        let g = models::PipelineEventGroup {
            tags: [
                ("__topic__".to_string(), b"t1".to_vec()),
                ("host".to_string(), b"h".to_vec()),
            ]
            .into(),
            metadata: [("25".to_string(), b"src".to_vec())].into(),
            events: Some(PipelineEvents::Logs(models::LogEvents {
                events: vec![log(
                    1_700_000_000_123_000_000,
                    &[("content", "a b"), ("x", "1")],
                )],
            })),
        };
        let g = models::PipelineEventGroup::decode(&*g.encode_to_vec()).unwrap();
        let c = convert(g, "ABC");
        let out = c.group.unwrap();
        assert_eq!(c.spans, 0);
        assert_eq!(&out.topic[..], b"t1");
        assert_eq!(out.tags, vec![(key("host"), Bytes::from_static(b"h"))]);
        let e = &out.events[0];
        assert_eq!((e.time, e.time_ns), (1_700_000_000, Some(123_000_000)));
        assert_eq!(e.contents[1], (key("x"), Bytes::from_static(b"1")));
        let ids = PackIds::default();
        assert_eq!(ids.next(&out.source), "ABC-1");
        assert_eq!(ids.next(&out.source), "ABC-2");
    }

    #[test]
    fn metrics_become_metric_logs_and_spans_are_counted() {
        let m = models::MetricEvent {
            timestamp: 5_000_000_001,
            name: b"cpu".to_vec(),
            tags: [
                ("z".to_string(), b"2".to_vec()),
                ("a".to_string(), b"1".to_vec()),
            ]
            .into(),
            value: Some(MetricValue::UntypedSingleValue(
                models::UntypedSingleValue { value: 0.5 },
            )),
            metadata: HashMap::new(),
        };
        let g = models::PipelineEventGroup {
            events: Some(PipelineEvents::Metrics(models::MetricEvents {
                events: vec![m],
            })),
            ..Default::default()
        };
        let e = &convert(g, "P").group.unwrap().events[0];
        let text: Vec<(String, String)> = e
            .contents
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into(),
                    String::from_utf8_lossy(v).into(),
                )
            })
            .collect();
        assert_eq!(
            text,
            [
                ("__name__", "cpu"),
                ("__labels__", "a#$#1|z#$#2"),
                ("__time_nano__", "5000000001"),
                ("__value__", "0.5")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let spans = models::PipelineEventGroup {
            events: Some(PipelineEvents::Spans(models::SpanEvents {
                events: vec![models::SpanEvent { timestamp: 1 }; 3],
            })),
            ..Default::default()
        };
        let c = convert(spans, "P");
        assert!(c.group.is_none());
        assert_eq!(c.spans, 3);
    }
}
