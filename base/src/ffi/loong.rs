//! The base exports of the LoongCollector 3.x generation (`libGoPluginBase.so`): per-config
//! `LoadPipeline` / `Start` / `Stop` / `UnloadPipeline`, `StopAllPipelines`,
//! `StopBuiltInModules`, `ProcessPipelineEventGroup`, and the metrics, alarms and container
//! lists the host pulls, in `malloc`ed memory the host releases with `free`.
//!
//! `Stop`, `ProcessLog`, `ProcessLogGroup`, `LoadGlobalConfig`, `InitPluginBase[V2]` and
//! `GetContainerMeta` are shared with 1.x/2.x (`exports`): no name has two signatures.

use super::{guard, malloc_text, reject, Code, GoArg, GoInt, GoInt64, GoSlice, GoString};
use crate::engine;
use crate::loong::{self, Generation, PulledAlarm, Record};
use std::ffi::{c_char, c_int};

/// One key and value of a pulled metric record (`malloc`ed, NUL-terminated).
#[repr(C)]
#[derive(Debug)]
pub struct InnerKeyValue {
    /// Key.
    pub key: *mut c_char,
    /// Value.
    pub value: *mut c_char,
}

/// One pulled metric record: `count` key-values.
#[repr(C)]
#[derive(Debug)]
pub struct InnerPluginMetric {
    /// The key-values.
    pub keyValues: *mut *mut InnerKeyValue,
    /// How many.
    pub count: c_int,
}

/// What `GetGoMetrics` returns: `count` records.
#[repr(C)]
#[derive(Debug)]
pub struct InnerPluginMetrics {
    /// The records.
    pub metrics: *mut *mut InnerPluginMetric,
    /// How many.
    pub count: c_int,
}

/// One pulled alarm (strings `malloc`ed, NUL-terminated, never NULL).
#[repr(C)]
#[derive(Debug)]
pub struct InnerGoAlarm {
    /// `PLUGIN_DATA_DROPPED_ALARM`, …
    pub alarmType: *mut c_char,
    /// `"1"` warning, `"2"` error, `"3"` critical.
    pub alarmLevel: *mut c_char,
    /// The last message.
    pub alarmMessage: *mut c_char,
    /// Project of the config ("" for process-wide alarms).
    pub projectName: *mut c_char,
    /// Logstore of the config.
    pub category: *mut c_char,
    /// Config name (without `/1`, `/2`).
    pub config: *mut c_char,
    /// Raised this many times since the last pull (≥ 1).
    pub count: c_int,
}

/// What `GetGoAlarms` returns: `count` alarms.
#[repr(C)]
#[derive(Debug)]
pub struct InnerGoAlarms {
    /// The alarms.
    pub alarms: *mut *mut InnerGoAlarm,
    /// How many.
    pub count: c_int,
}

/// A serialized protobuf handed to the host; `{NULL, 0}` is "nothing". Released only with
/// `FreeSelfMonitorPB(data)`.
#[repr(C)]
#[derive(Debug)]
pub struct PBBuffer {
    /// The bytes (`malloc`ed).
    pub data: *mut c_char,
    /// How many.
    pub size: usize,
}

/// `malloc(size_of::<T>())` holding `v`; NULL when out of memory.
fn malloc_value<T>(v: T) -> *mut T {
    // SAFETY: plain allocation of the size of T; checked for NULL below.
    let p = unsafe { libc::malloc(std::mem::size_of::<T>()) }.cast::<T>();
    if !p.is_null() {
        // SAFETY: p is valid, suitably aligned (malloc's alignment covers these structs).
        unsafe { p.write(v) };
    }
    p
}

/// A `malloc`ed array of `items` (NULL for none, or when out of memory, with the items freed
/// by `free_item`).
fn malloc_array<T>(items: Vec<*mut T>, free_item: fn(*mut T)) -> (*mut *mut T, c_int) {
    if items.is_empty() {
        return (std::ptr::null_mut(), 0);
    }
    let n = items.len().min(c_int::MAX as usize);
    // SAFETY: plain allocation; checked below.
    let p = unsafe { libc::malloc(n * std::mem::size_of::<*mut T>()) }.cast::<*mut T>();
    if p.is_null() {
        items.into_iter().for_each(free_item);
        return (std::ptr::null_mut(), 0);
    }
    for (i, it) in items.into_iter().enumerate() {
        if i < n {
            // SAFETY: i < n slots were allocated.
            unsafe { p.add(i).write(it) };
        } else {
            free_item(it);
        }
    }
    (p, n as c_int)
}

/// Frees what [`malloc_array`] made: each of the `count` items with `free_item`, then the
/// array.
fn free_array<T>(p: *mut *mut T, count: c_int, free_item: fn(*mut T)) {
    if p.is_null() {
        return;
    }
    for i in 0..count.max(0) as usize {
        // SAFETY: `count` slots were written by `malloc_array`.
        free_item(unsafe { *p.add(i) });
    }
    // SAFETY: malloc'ed by `malloc_array`.
    unsafe { libc::free(p.cast()) };
}

fn free_kv(kv: *mut InnerKeyValue) {
    if kv.is_null() {
        return;
    }
    // SAFETY: built by `malloc_value` with `malloc_text` strings.
    unsafe {
        libc::free((*kv).key.cast());
        libc::free((*kv).value.cast());
        libc::free(kv.cast());
    }
}

fn free_record(m: *mut InnerPluginMetric) {
    if m.is_null() {
        return;
    }
    // SAFETY: built by `record` below.
    unsafe {
        free_array((*m).keyValues, (*m).count, free_kv);
        libc::free(m.cast());
    }
}

fn free_alarm(a: *mut InnerGoAlarm) {
    if a.is_null() {
        return;
    }
    // SAFETY: built by `alarm` below.
    unsafe {
        let a = &*a;
        for s in [
            a.alarmType,
            a.alarmLevel,
            a.alarmMessage,
            a.projectName,
            a.category,
            a.config,
        ] {
            libc::free(s.cast());
        }
    }
    // SAFETY: as above.
    unsafe { libc::free(a.cast()) };
}

/// A record as the host reads it; a key or value that cannot be allocated drops the pair
/// (never a NULL string, which the host would read).
fn record(r: Record) -> *mut InnerPluginMetric {
    let kvs = r
        .into_iter()
        .filter_map(|(k, v)| {
            let (key, value) = (malloc_text(k), malloc_text(&v));
            if key.is_null() || value.is_null() {
                // SAFETY: free(NULL) is a no-op.
                unsafe { libc::free(key.cast()) };
                // SAFETY: as above.
                unsafe { libc::free(value.cast()) };
                return None;
            }
            Some(malloc_value(InnerKeyValue { key, value })).filter(|p| !p.is_null())
        })
        .collect();
    let (keyValues, count) = malloc_array(kvs, free_kv);
    let m = malloc_value(InnerPluginMetric { keyValues, count });
    if m.is_null() {
        free_array(keyValues, count, free_kv);
    }
    m
}

fn metrics(records: Vec<Record>) -> *mut InnerPluginMetrics {
    // A record that cannot be allocated is left out: a NULL record would be an empty map to
    // the host, and an empty `direct` record makes it throw.
    let items = records
        .into_iter()
        .map(record)
        .filter(|p| !p.is_null())
        .collect();
    let (metrics, count) = malloc_array(items, free_record);
    let root = malloc_value(InnerPluginMetrics { metrics, count });
    if root.is_null() {
        free_array(metrics, count, free_record);
    }
    root
}

fn alarm(a: PulledAlarm) -> *mut InnerGoAlarm {
    let strings = [
        malloc_text(a.kind),
        malloc_text(&a.level),
        malloc_text(&a.message),
        malloc_text(&a.project),
        malloc_text(&a.logstore),
        malloc_text(&a.config),
    ];
    let v = InnerGoAlarm {
        alarmType: strings[0],
        alarmLevel: strings[1],
        alarmMessage: strings[2],
        projectName: strings[3],
        category: strings[4],
        config: strings[5],
        count: a.count,
    };
    let p = malloc_value(v);
    if p.is_null() {
        for s in strings {
            // SAFETY: malloc'ed or NULL.
            unsafe { libc::free(s.cast()) };
        }
    }
    p
}

/// Reads the `LoadPipeline`-style text arguments, naming the one that is wrong.
///
/// # Safety
/// Each GoString must be valid for the duration of the call.
unsafe fn texts<'a, const N: usize>(
    args: [(&'static str, &GoString); N],
) -> Result<[&'a str; N], (&'static str, Code)> {
    let mut out = [""; N];
    for (i, (name, s)) in args.into_iter().enumerate() {
        // SAFETY: forwarded contract (the texts are used within the call).
        out[i] = unsafe { s.text() }.map_err(|c| (name, c))?;
    }
    Ok(out)
}

/// Retries `InitPluginBaseV2` when it failed (a 3.x host calls it only once, and must be
/// given 0: see [`crate::init`]).
fn ensure_initialized() {
    if !engine().is_initialized() {
        crate::retry_init();
    }
}

/// Checks and stages pipeline config `configName` (`<name>/1` with inputs, `<name>/2` fed by
/// the host): nothing runs until `Start(configName)`, and the running config of that name is
/// untouched; a later `LoadPipeline` of the same name replaces what is staged. SendPb,
/// statistics and alarms use the name without `/1`, `/2`. An empty `pipelineJson` removes the
/// config of that name. Returns 0, or 1 on any error (each problem is logged and alarmed
/// naming the config, the plugin and the field).
#[no_mangle]
pub extern "C" fn LoadPipeline(
    project: GoString,
    logstore: GoString,
    configName: GoString,
    logstoreKey: GoInt64,
    pipelineJson: GoString,
) -> GoInt {
    guard(
        "LoadPipeline",
        || 1,
        || {
            loong::seen(Generation::Loong);
            ensure_initialized();
            // SAFETY: the host passes valid GoStrings for the duration of the call.
            let args = unsafe {
                texts([
                    ("project", &project),
                    ("logstore", &logstore),
                    ("configName", &configName),
                    ("pipelineJson", &pipelineJson),
                ])
            };
            match args {
                Ok([p, l, n, j]) => {
                    loong::note_labels(n, p, l);
                    GoInt::from(engine().stage(p, l, n, logstoreKey, j).is_err())
                }
                Err((arg, c)) => {
                    reject("LoadPipeline", arg, c);
                    1
                }
            }
        },
    )
}

/// Forgets the config staged under `configName` (one that was loaded and will not be
/// started). Returns 0, or 1 when nothing is staged under that name or the name is invalid.
#[no_mangle]
pub extern "C" fn UnloadPipeline(configName: GoString) -> GoInt {
    guard(
        "UnloadPipeline",
        || 1,
        || {
            // SAFETY: valid for the call.
            match unsafe { configName.text() } {
                Ok(n) => match engine().unstage(n) {
                    Ok(()) => 0,
                    Err(_) => {
                        tracing::warn!(config = n, "UnloadPipeline: nothing staged");
                        1
                    }
                },
                Err(c) => {
                    reject("UnloadPipeline", "configName", c);
                    1
                }
            }
        },
    )
}

/// Runs the config staged under `configName`, in place of the one of that name (stopped first
/// if the host did not `Stop` it): the new config takes over the queued and undelivered data
/// of the old. With nothing staged, a stopped config of that name runs again. Returns in
/// milliseconds (bounded by `HoldOnTimeoutMs` when it has to stop the old one itself).
#[no_mangle]
pub extern "C" fn Start(configName: GoString) {
    guard(
        "Start",
        || (),
        || {
            loong::seen(Generation::Loong);
            // SAFETY: valid for the call.
            match unsafe { configName.text() } {
                Ok(n) => {
                    if let Err(e) = engine().start(n) {
                        tracing::warn!(config = n, error = %e, "Start failed");
                    }
                }
                Err(c) => {
                    reject("Start", "configName", c);
                }
            }
        },
    )
}

/// Exit: `withInputFlag != 0` stops every config with inputs (`<name>/1`), delivering what
/// they hold until `HoldOnTimeoutMs` (default 5 s); `withInputFlag == 0` stops the rest as
/// `HoldOn(1)` does: delivery until `HoldOnTimeoutMs`, then everything undelivered (of every
/// config) is persisted and re-sent after the next start, and checkpoints are flushed. Each
/// call returns within `HoldOnTimeoutMs` + 1 s, even with SendPb or the disk blocked.
#[no_mangle]
pub extern "C" fn StopAllPipelines(withInputFlag: GoInt) {
    guard(
        "StopAllPipelines",
        || (),
        || {
            loong::seen(Generation::Loong);
            engine().stop_all(withInputFlag != 0)
        },
    )
}

/// Flushes the checkpoints (bounded); the metrics and alarms can still be pulled after it.
#[no_mangle]
pub extern "C" fn StopBuiltInModules() {
    guard("StopBuiltInModules", || (), || engine().stop_builtin())
}

/// Pushes one serialized `logtail.models.PipelineEventGroup` into the processors of the
/// running config `configName` (`<name>/2`): logs with all their contents, metrics as metric
/// logs (`__name__`, `__labels__`, `__time_nano__`, `__value__`), the `__topic__` tag as the
/// topic; span events are counted and alarmed as unsupported. `packId` prefixes the groups'
/// `__pack_id__` (`<packId>-<seq>`). Blocks while the pipeline is full (at most
/// `ProcessTimeoutMs`), then keeps the data on disk. Safe from several threads at once.
/// Returns 0, or a non-zero code (unknown config 5, malformed protobuf 4, …).
#[no_mangle]
pub extern "C" fn ProcessPipelineEventGroup(
    configName: GoString,
    pbBytes: GoSlice,
    packId: GoString,
) -> GoInt {
    const EXPORT: &str = "ProcessPipelineEventGroup";
    guard(
        EXPORT,
        || Code::Internal as GoInt,
        || {
            use prost::Message;
            // SAFETY: the host passes valid arguments for the duration of the call.
            let checked = unsafe { texts([("configName", &configName), ("packId", &packId)]) };
            let [name, pack] = match checked {
                Ok(t) => t,
                Err((arg, c)) => return reject(EXPORT, arg, c) as GoInt,
            };
            // SAFETY: as above.
            let buf = match unsafe { pbBytes.bytes() } {
                Ok(b) => b,
                Err(c) => return reject(EXPORT, "pbBytes", c) as GoInt,
            };
            // One copy of the host's buffer; the contents are slices of it.
            let group = match wire::models::PipelineEventGroup::decode(
                bytes::Bytes::copy_from_slice(buf),
            ) {
                Ok(g) => g,
                Err(e) => {
                    tracing::debug!(config = name, error = %e, "{EXPORT}: malformed protobuf");
                    return reject(EXPORT, "pbBytes", Code::BadProtobuf) as GoInt;
                }
            };
            let converted = loong::convert(group, pack);
            if converted.spans > 0 {
                loong::refuse_spans(name, converted.spans);
            }
            let Some(g) = converted.group else {
                return Code::Ok as GoInt;
            };
            let code = Code::from(engine().push(name, std::iter::once(g)));
            if code != Code::Ok {
                tracing::debug!(config = name, error = code.describe(), "push refused");
            }
            code as GoInt
        },
    )
}

/// The library's metrics, pulled by the host (released with `free` on every part).
/// `"direct"`: one record per plugin instance with keys `labels`, `counters`, `gauges` (JSON
/// objects; labels `metric_category` = `plugin`, `project`, `logstore`, `pipeline_name`,
/// `plugin_type`, `plugin_id`; counters are the counts since the previous `direct` pull, as
/// decimal strings). `"cpp_provided"`: one record, `go_memory_used_mb` and
/// `go_routines_total`. Any other type: no records. Never NULL unless out of memory.
#[no_mangle]
pub extern "C" fn GetGoMetrics(metricType: GoString) -> *mut InnerPluginMetrics {
    guard("GetGoMetrics", std::ptr::null_mut, || {
        loong::seen(Generation::Loong);
        // SAFETY: valid for the call.
        let records = match unsafe { metricType.bytes() } {
            Ok(b"direct") => loong::direct_records(),
            Ok(b"cpp_provided") => vec![loong::cpp_provided()],
            Ok(_) => Vec::new(),
            Err(c) => {
                reject("GetGoMetrics", "metricType", c);
                Vec::new()
            }
        };
        metrics(records)
    })
}

/// iLogtail 1.8.8's pull of the plugin metrics: the `GetGoMetrics("direct")` records.
#[no_mangle]
pub extern "C" fn GetPipelineMetrics() -> *mut InnerPluginMetrics {
    guard("GetPipelineMetrics", std::ptr::null_mut, || {
        metrics(loong::direct_records())
    })
}

/// The alarms raised since the last pull, one per (config, plugin, type) with its count
/// (released with `free` on every part). From the first call on, alarms are no longer sent
/// through SendPb (`logtail_alarm`). Never NULL unless out of memory.
#[no_mangle]
pub extern "C" fn GetGoAlarms() -> *mut InnerGoAlarms {
    guard("GetGoAlarms", std::ptr::null_mut, || {
        let items = loong::pull_alarms()
            .into_iter()
            .map(alarm)
            .filter(|p| !p.is_null())
            .collect();
        let (alarms, count) = malloc_array(items, free_alarm);
        let root = malloc_value(InnerGoAlarms { alarms, count });
        if root.is_null() {
            free_array(alarms, count, free_alarm);
        }
        root
    })
}

/// Every container known (`{"All":[]}`: this runtime does no container discovery), as a
/// `malloc`ed NUL-terminated JSON text for the host to `free`; never NULL unless out of memory.
#[no_mangle]
pub extern "C" fn GetAllContainers() -> *mut c_char {
    guard(
        "GetAllContainers",
        || malloc_text(r#"{"All":[]}"#),
        || malloc_text(r#"{"All":[]}"#),
    )
}

/// Container changes since the last call: `""` (nothing changed; this runtime does no
/// container discovery), `malloc`ed for the host to `free`; never NULL unless out of memory.
#[no_mangle]
pub extern "C" fn GetDiffContainers() -> *mut c_char {
    guard("GetDiffContainers", || malloc_text(""), || malloc_text(""))
}

fn pb_buffer(bytes: Vec<u8>) -> PBBuffer {
    let empty = PBBuffer {
        data: std::ptr::null_mut(),
        size: 0,
    };
    if bytes.is_empty() {
        return empty;
    }
    // SAFETY: plain allocation; checked below.
    let p = unsafe { libc::malloc(bytes.len()) }.cast::<u8>();
    if p.is_null() {
        return empty;
    }
    // SAFETY: p has room for bytes.len() bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    PBBuffer {
        data: p.cast(),
        size: bytes.len(),
    }
}

/// The alarms since the last pull as a `PipelineEventGroup` (one log per alarm); release
/// `data` with `FreeSelfMonitorPB`. `{NULL, 0}` when there is none.
#[no_mangle]
pub extern "C" fn GetGoSelfMonitorAlarmsPB() -> PBBuffer {
    let none = || PBBuffer {
        data: std::ptr::null_mut(),
        size: 0,
    };
    guard("GetGoSelfMonitorAlarmsPB", none, || {
        let ip = crate::host_ip();
        pb_buffer(loong::alarms_pb(&ip))
    })
}

/// The metrics of `metricType` (as `GetGoMetrics`) as a `PipelineEventGroup` of metric events;
/// release `data` with `FreeSelfMonitorPB`. `{NULL, 0}` when there is none.
#[no_mangle]
pub extern "C" fn GetGoSelfMonitorMetricsPB(metricType: GoString) -> PBBuffer {
    let none = || PBBuffer {
        data: std::ptr::null_mut(),
        size: 0,
    };
    guard("GetGoSelfMonitorMetricsPB", none, || {
        // SAFETY: valid for the call.
        let records = match unsafe { metricType.bytes() } {
            Ok(b"direct") => loong::direct_records(),
            Ok(b"cpp_provided") => vec![loong::cpp_provided()],
            _ => return pb_buffer(Vec::new()),
        };
        pb_buffer(loong::metrics_pb(records))
    })
}

/// Releases what `GetGoSelfMonitor*PB` returned (NULL is fine).
///
/// # Safety
/// `data` must be NULL or a `data` those functions returned, not yet released.
#[no_mangle]
pub unsafe extern "C" fn FreeSelfMonitorPB(data: *mut c_char) {
    // SAFETY: malloc'ed by `pb_buffer` (or NULL).
    guard(
        "FreeSelfMonitorPB",
        || (),
        || unsafe { libc::free(data.cast()) },
    )
}
