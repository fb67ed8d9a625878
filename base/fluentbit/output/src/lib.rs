//! `libpluginrt_fbout.so`: the engine as a Fluent Bit output plugin.
//!
//! ```text
//! fluent-bit -e libpluginrt_fbout.so -i dummy -o pluginrt -p pipeline=/etc/pipeline.json
//! ```
//!
//! Each instance runs the pipeline its `pipeline` property names (a path to an iLogtail-format
//! JSON config, or the JSON itself): processors, aggregators, flushers. A flush decodes the
//! chunk's records into events on a thread of its own (Fluent Bit calls it on a 64 KiB
//! coroutine stack), pushes them into the instance's pipeline and answers
//! - `FLB_OK` once every event of the chunk was delivered by the flushers (or kept on disk by
//!   the engine's backlog, or deliberately dropped with an alarm);
//! - `FLB_RETRY` when the pipeline stayed full or delivery did not finish within
//!   `flush_timeout_ms` (Fluent Bit sends the chunk again: delivery is at least once);
//! - `FLB_ERROR` only for a chunk that is not msgpack records (it never will be).
//!
//! A chunk is already a batch: unless the pipeline sets `global.AggregatIntervalMs`, partial
//! log groups are flushed as soon as the queue runs empty ([`AGGREGATE_MS`] 0) instead of
//! after iLogtail's 3 s.
//!
//! Properties: `pipeline` (required), `pipeline_name` (the config name in statistics and
//! alarms; default `fluentbit-out-<n>`), `flush_timeout_ms` (default 5000), `checkpoint_dir`
//! (the engine's store, read at the first instance; default `./pluginrt-fbout-checkpoint`),
//! `statistics_interval_ms` (how often each plugin's counters are logged, at info; read at
//! the first instance; default 60000).
#![allow(non_snake_case)] // the entry points' names are Fluent Bit's

use bytes::Bytes;
use engine::ack::AckWindow;
use engine::event::EventGroup;
use engine::host::{Host, Payload, Refused};
use engine::{Engine, InitOptions, Settings, Tunables};
use fluentbit::abi::{self, flb_plugin_proxy_def, flbgo_output_plugin};
use fluentbit::{guard, off_stack, property, records};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The name Fluent Bit knows the plugin by (`[OUTPUT] Name pluginrt`).
pub const NAME: &CStr = c"pluginrt";
const DESCRIPTION: &CStr =
    c"iLogtail-compatible processors, aggregators and flushers (Rust plugin runtime)";

/// Group tag holding the Fluent Bit tag of the chunk.
pub const TAG_KEY: &str = "fluentbit_tag";
/// Default of `flush_timeout_ms`.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_millis(5000);

/// The engine of this plugin (one per loaded `.so`; every instance is a config in it).
static ENGINE: OnceLock<Engine> = OnceLock::new();
static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// The engine's host inside Fluent Bit: alarms and statistics become log lines; there is no
/// host queue for `flusher_sls`.
struct LogHost;

impl Host for LogHost {
    fn send(&self, p: &Payload) -> Result<(), Refused> {
        if fluentbit::report_builtin(p) {
            return Ok(());
        }
        tracing::warn!(config = %p.config, "flusher_sls has no destination inside Fluent Bit; give the pipeline a flusher that writes (e.g. flusher_stdout with FileName)");
        Err(Refused(-2))
    }
}

/// One configured output instance.
struct Instance {
    name: String,
    flush_timeout: Duration,
}

/// Fills the plugin's definition.
///
/// # Safety
/// `def` is NULL or Fluent Bit's zeroed definition, writable for the call.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut flb_plugin_proxy_def) -> c_int {
    guard(
        "FLBPluginRegister",
        || -1,
        // SAFETY: forwarded contract.
        || unsafe { fluentbit::register(def, abi::TYPE_OUTPUT, NAME, DESCRIPTION) },
    )
}

fn engine_for(
    checkpoint_dir: String,
    flush_timeout: Duration,
    statistics_ms: Option<u64>,
) -> Result<&'static Engine, String> {
    let e = ENGINE.get_or_init(|| {
        Engine::new(Settings {
            name: "pluginrt-out".into(),
            host: Arc::new(LogHost),
        })
    });
    if !e.is_initialized() {
        e.set_tunables(Tunables {
            // A full pipeline answers FLB_RETRY rather than holding Fluent Bit's thread.
            process_timeout_ms: flush_timeout.as_millis() as u64,
            hold_on_timeout_ms: 3000,
            statistics_interval_ms: statistics_ms
                .unwrap_or(Tunables::default().statistics_interval_ms),
            ..Tunables::default()
        });
        e.init(InitOptions {
            checkpoint_dir: checkpoint_dir.clone().into(),
            host_ip: None,
            hostname: None,
        })
        .map_err(|err| format!("cannot open the checkpoint store {checkpoint_dir}: {err}"))?;
    }
    Ok(e)
}

/// Default `global.AggregatIntervalMs` of an output instance's pipeline: 0, partial log groups
/// are flushed as soon as the pipeline's queue runs empty. A flush waits for its chunk's events
/// to be delivered, and a chunk is already a batch, so waiting for iLogtail's 3 s would only
/// hold Fluent Bit up (a pipeline that sets the key keeps it).
pub const AGGREGATE_MS: u64 = 0;

/// `json` with [`AGGREGATE_MS`] as `global.AggregatIntervalMs` unless it sets one (text that
/// is not a JSON object is left for the config check to report).
fn with_short_aggregation(json: String) -> String {
    let Ok(serde_json::Value::Object(mut root)) = serde_json::from_str::<serde_json::Value>(&json)
    else {
        return json;
    };
    let global = root
        .entry("global")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    match global {
        serde_json::Value::Object(g) => {
            g.entry("AggregatIntervalMs").or_insert(AGGREGATE_MS.into());
        }
        _ => return json,
    }
    serde_json::Value::Object(root).to_string()
}

/// Reads the instance's properties and loads its pipeline; the error names the property
/// or every config problem.
///
/// # Safety
/// `p` is the plugin struct of the instance being initialised.
unsafe fn init(p: &flbgo_output_plugin) -> Result<Instance, String> {
    // SAFETY: `api` is valid for the plugin's life.
    let get = unsafe { p.api.as_ref() }.and_then(|a| a.output_get_property);
    // SAFETY: the instance is the one Fluent Bit handed with this getter.
    let prop = |k: &str| unsafe { property(get, p.o_ins, k) };
    let n = INSTANCES.fetch_add(1, Ordering::SeqCst);
    let name = prop("pipeline_name").unwrap_or_else(|| format!("fluentbit-out-{n}"));
    let flush_timeout = match prop("flush_timeout_ms") {
        None => DEFAULT_FLUSH_TIMEOUT,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                return Err(format!(
                    "property flush_timeout_ms: {v:?} is not a positive integer"
                ))
            }
        },
    };
    let json = fluentbit::pipeline_json(prop("pipeline"))?;
    let json = with_short_aggregation(json);
    let config = fluentbit::check_pipeline(&name, &json)?;
    if config.flushers.iter().all(|f| f.type_name == "flusher_sls") {
        return Err(format!(
            "config \"{name}\": inside Fluent Bit the pipeline needs a flusher that writes somewhere (e.g. flusher_stdout with FileName); flusher_sls has no destination here"
        ));
    }
    let dir = prop("checkpoint_dir").unwrap_or_else(|| "pluginrt-fbout-checkpoint".into());
    let statistics_ms =
        match prop("statistics_interval_ms") {
            None => None,
            Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
                format!("property statistics_interval_ms: {v:?} is not an integer")
            })?),
        };
    let e = engine_for(dir, flush_timeout, statistics_ms)?;
    fluentbit::start_pipeline(e, &name, &json)?;
    Ok(Instance {
        name,
        flush_timeout,
    })
}

#[no_mangle]
pub extern "C" fn FLBPluginInit(plugin: *mut c_void) -> c_int {
    guard(
        "FLBPluginInit",
        || 0,
        || {
            // SAFETY: Fluent Bit hands its flbgo_output_plugin for this instance.
            let Some(p) = (unsafe { plugin.cast::<flbgo_output_plugin>().as_ref() }) else {
                return 0;
            };
            // SAFETY: `api` is valid for the plugin's life; the instance is Fluent Bit's.
            let level = unsafe {
                fluentbit::instance_level(p.api.as_ref().and_then(|a| a.output_log_check), p.o_ins)
            };
            fluentbit::log::install(
                // SAFETY: as above.
                unsafe { p.api.as_ref() }.and_then(|a| a.log_print),
                level,
            );
            // SAFETY: as above.
            match unsafe { init(p) } {
                Ok(inst) => {
                    tracing::info!(pipeline = %inst.name, "pluginrt output instance started");
                    // SAFETY: the context is Fluent Bit's for this instance; we own what we put in.
                    match unsafe { p.context.as_mut() } {
                        Some(cx) => {
                            cx.remote_context = Box::into_raw(Box::new(inst)).cast();
                            1
                        }
                        None => 0,
                    }
                }
                Err(why) => {
                    tracing::error!("pluginrt output cannot start: {why}");
                    0
                }
            }
        },
    )
}

/// Decodes, pushes and waits for delivery (on a thread of its own).
fn flush(name: &str, timeout: Duration, data: Bytes, tag: String) -> c_int {
    let Some(e) = ENGINE.get() else {
        return abi::FLB_RETRY;
    };
    let decoded = match records::decode(&data) {
        Ok(d) => d,
        Err(bad) => {
            tracing::error!(
                pipeline = name,
                "dropping a chunk that is not Fluent Bit records: {bad}"
            );
            return abi::FLB_ERROR;
        }
    };
    if decoded.events.is_empty() {
        return abi::FLB_OK;
    }
    let deadline = Instant::now() + timeout;
    let (done_tx, done) = crossbeam_channel::bounded(1);
    let window = AckWindow::new(move |_| {
        let _ = done_tx.try_send(());
    });
    let mut group = EventGroup::new(Bytes::from(tag.clone()));
    group
        .tags
        .push((Bytes::from_static(TAG_KEY.as_bytes()), Bytes::from(tag)));
    group.events = decoded.events;
    group.acks.push(window.track(1));
    match e.push(name, std::iter::once(group)) {
        Ok(()) => {}
        Err(err) => {
            tracing::warn!(pipeline = name, error = %err, "the pipeline did not take the chunk; Fluent Bit retries it");
            return abi::FLB_RETRY;
        }
    }
    match done.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(()) => abi::FLB_OK,
        Err(_) => {
            tracing::warn!(
                pipeline = name,
                "the chunk was not delivered within flush_timeout_ms; Fluent Bit retries it"
            );
            abi::FLB_RETRY
        }
    }
}

/// # Safety
/// Fluent Bit's contract: `ctx` is what `FLBPluginInit` set, `data` holds `size` bytes and
/// `tag` is NUL-terminated, all valid for the call only.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginFlushCtx(
    ctx: *mut c_void,
    data: *const c_void,
    size: usize,
    tag: *const c_char,
) -> c_int {
    guard(
        "FLBPluginFlushCtx",
        || abi::FLB_RETRY,
        || {
            // SAFETY: set by FLBPluginInit, freed only by FLBPluginExitCtx.
            let Some(inst) = (unsafe { ctx.cast::<Instance>().as_ref() }) else {
                return abi::FLB_ERROR;
            };
            if data.is_null() && size > 0 {
                return abi::FLB_ERROR;
            }
            let bytes = if size == 0 {
                Bytes::new()
            } else {
                // SAFETY: `data` holds `size` bytes for the call; copied before returning.
                Bytes::copy_from_slice(unsafe {
                    std::slice::from_raw_parts(data.cast::<u8>(), size)
                })
            };
            let tag = if tag.is_null() {
                String::new()
            } else {
                // SAFETY: NUL-terminated for the call; copied.
                unsafe { CStr::from_ptr(tag) }
                    .to_string_lossy()
                    .into_owned()
            };
            let (name, timeout) = (inst.name.clone(), inst.flush_timeout);
            // The work runs off Fluent Bit's coroutine stack; the wait is bounded by the flush
            // timeout (plus a margin for the decode).
            off_stack(
                "pluginrt-flush",
                timeout + Duration::from_secs(2),
                move || flush(&name, timeout, bytes, tag),
            )
            .unwrap_or(abi::FLB_RETRY)
        },
    )
}

/// The counters of config `name` that say what it received from Fluent Bit (`pipeline`) and
/// what its flushers delivered; the handles stay readable after the config is removed.
fn counters(e: &Engine, name: &str) -> Vec<(bool, Arc<engine::stats::PluginStats>)> {
    e.stats()
        .counters()
        .into_iter()
        .filter(|((config, plugin), _)| {
            config == name && (plugin == "pipeline" || plugin.starts_with("flusher_"))
        })
        .map(|((_, plugin), s)| (plugin == "pipeline", s))
        .collect()
}

/// (received, delivered) from [`counters`].
fn counts(handles: &[(bool, Arc<engine::stats::PluginStats>)]) -> (u64, u64) {
    handles.iter().fold((0, 0), |(r, d), (pipeline, s)| {
        if *pipeline {
            (r + s.events_in.load(Ordering::Relaxed), d)
        } else {
            (r, d + s.events_out.load(Ordering::Relaxed))
        }
    })
}

/// Stops the instance: what its pipeline holds is delivered within the engine's stop bound.
///
/// # Safety
/// `ctx` is what `FLBPluginInit` set; it is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginExitCtx(ctx: *mut c_void) -> c_int {
    guard(
        "FLBPluginExitCtx",
        || abi::FLB_ERROR,
        || {
            if ctx.is_null() {
                return abi::FLB_OK;
            }
            // SAFETY: created by FLBPluginInit with Box::into_raw; Fluent Bit calls this once.
            let inst = unsafe { Box::from_raw(ctx.cast::<Instance>()) };
            if let Some(e) = ENGINE.get() {
                let name = inst.name.clone();
                let stopped = off_stack("pluginrt-exit", Duration::from_secs(10), move || {
                    // The handles outlive the removal, which forgets the config's counters.
                    let handles = counters(e, &name);
                    let _ = e.stop(&name, true);
                    counts(&handles)
                });
                match stopped {
                    None => {
                        tracing::warn!(pipeline = %inst.name, "the pipeline did not stop in time")
                    }
                    Some((received, delivered)) => tracing::info!(
                        pipeline = %inst.name,
                        received,
                        delivered,
                        "pluginrt output instance stopped"
                    ),
                }
            }
            abi::FLB_OK
        },
    )
}

/// Before the exit (or a hot reload): nothing to do, each instance drains in its exit.
#[no_mangle]
pub extern "C" fn FLBPluginOutputPreExit(_by_hot_reload: c_int) {}

/// Nothing was allocated for the definition (its strings are static).
#[no_mangle]
pub extern "C" fn FLBPluginUnregister(_def: *mut flb_plugin_proxy_def) {}
