//! `libpluginrt_fbin.so`: the engine's inputs and processors as a Fluent Bit input plugin.
//!
//! ```text
//! fluent-bit -e libpluginrt_fbin.so -i pluginrt_input -p pipeline=/etc/pipeline.json -o stdout
//! ```
//!
//! Each instance runs the pipeline its `pipeline` property names (its inputs, processors and
//! aggregator; the default `flusher_sls` delivers to Fluent Bit). Delivered log groups become
//! msgpack records (`[[EventTime, {}], {contents}]`, time exact to the nanosecond) in the
//! instance's queue, bounded by `buffer_max_bytes` (default 8 MiB): when it is full, or while
//! Fluent Bit has paused the input (`FLBPluginInputPause`), delivery is refused and retried, so
//! the engine's back-pressure reaches our inputs and nothing is dropped. An input's position
//! (a checkpoint) is committed only once Fluent Bit has taken the records made before it, so
//! records still queued when Fluent Bit exits are produced again after a restart. Fluent Bit's collect
//! timer (about once a second) takes at most `collect_max_bytes` (default 4 MiB) per call.
//!
//! Properties: `pipeline` (required), `pipeline_name` (default `fluentbit-in-<n>`),
//! `buffer_max_bytes`, `collect_max_bytes`, `checkpoint_dir` (the engine's store, read at the
//! first instance; default `./pluginrt-fbin-checkpoint`).
#![allow(non_snake_case)] // the entry points' names are Fluent Bit's

use engine::ack::Ack;
use engine::host::{Host, Payload, Refused};
use engine::{Engine, InitOptions, Settings};
use fluentbit::abi::{self, flb_plugin_proxy_def, flbgo_input_plugin};
use fluentbit::{guard, property, records};
use prost::Message;
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

/// The name Fluent Bit knows the plugin by (`[INPUT] Name pluginrt_input`).
pub const NAME: &CStr = c"pluginrt_input";
const DESCRIPTION: &CStr = c"iLogtail-compatible inputs and processors (Rust plugin runtime)";

/// Defaults of `buffer_max_bytes` and `collect_max_bytes`.
pub const DEFAULT_BUFFER_MAX: usize = 8 << 20;
/// Default of `collect_max_bytes`.
pub const DEFAULT_COLLECT_MAX: usize = 4 << 20;

static ENGINE: OnceLock<Engine> = OnceLock::new();
static INSTANCES: AtomicU64 = AtomicU64::new(0);
/// Set while Fluent Bit has paused the input.
static PAUSED: AtomicBool = AtomicBool::new(false);
/// Each instance's queue, by config name.
static QUEUES: OnceLock<RwLock<HashMap<String, Arc<Queue>>>> = OnceLock::new();

fn queues() -> &'static RwLock<HashMap<String, Arc<Queue>>> {
    QUEUES.get_or_init(Default::default)
}

/// One delivered group waiting for a collect call: (sequence number, its records, its
/// acknowledgements).
type Part = (u64, Vec<u8>, Vec<Ack>);

/// Encoded records waiting for Fluent Bit's collect call, one buffer per delivered group, with
/// the group's acknowledgements: an input's position is committed only once Fluent Bit took
/// the records (not when they entered this queue).
struct Queue {
    parts: Mutex<VecDeque<Part>>,
    /// Sequence number of the last group pushed.
    pushed: AtomicU64,
    bytes: AtomicU64,
    limit: usize,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Part>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes whole groups' records, at most `max` bytes (at least one group), with their
    /// acknowledgements (to drop once Fluent Bit has the records).
    fn take(&self, max: usize) -> (Vec<u8>, Vec<Ack>) {
        let mut parts = self.lock();
        let (mut out, mut acks) = (Vec::new(), Vec::new());
        while let Some((_, front, _)) = parts.front() {
            if !out.is_empty() && out.len() + front.len() > max {
                break;
            }
            let (_, part, a) = parts.pop_front().unwrap_or_default();
            out.extend_from_slice(&part);
            acks.extend(a);
        }
        self.bytes.fetch_sub(out.len() as u64, Ordering::SeqCst);
        (out, acks)
    }

    /// At exit: what Fluent Bit never took is not committed (its acknowledgements are
    /// forgotten, not dropped), so the inputs produce it again after a restart.
    fn abandon(&self) -> u64 {
        let parts = std::mem::take(&mut *self.lock());
        let left = self.bytes.swap(0, Ordering::SeqCst);
        for (_, _, acks) in parts {
            std::mem::forget(acks);
        }
        left
    }
}

/// The engine's host inside Fluent Bit: groups go to the instance's queue; alarms and
/// statistics become log lines.
struct QueueHost;

impl Host for QueueHost {
    fn can_send(&self, _key: i64) -> bool {
        !PAUSED.load(Ordering::SeqCst)
    }

    fn send(&self, p: &Payload) -> Result<(), Refused> {
        if fluentbit::report_builtin(p) {
            return Ok(());
        }
        if PAUSED.load(Ordering::SeqCst) {
            return Err(Refused(-1));
        }
        let q = queues()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&*p.config)
            .cloned();
        let Some(q) = q else {
            return Err(Refused(-2));
        };
        if q.bytes.load(Ordering::SeqCst) as usize >= q.limit {
            return Err(Refused(-1));
        }
        let Ok(g) = wire::sls::LogGroup::decode(p.data.as_slice()) else {
            tracing::error!(config = %p.config, "an undecodable log group from the pipeline");
            return Err(Refused(-3));
        };
        let mut buf = Vec::with_capacity(p.data.len() + 16 * g.logs.len());
        records::encode_log_group(&mut buf, &g);
        q.bytes.fetch_add(buf.len() as u64, Ordering::SeqCst);
        let seq = q.pushed.fetch_add(1, Ordering::SeqCst) + 1;
        q.lock().push_back((seq, buf, Vec::new()));
        Ok(())
    }

    /// The acknowledgements of the group [`QueueHost::send`] just queued wait with its records
    /// until Fluent Bit collects them (one delivery at a time per config, so the last group
    /// queued is that one; if it was collected already, they are dropped now).
    fn accepted(&self, p: &Payload, acks: Vec<Ack>) {
        let q = queues()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&*p.config)
            .cloned();
        let Some(q) = q else { return };
        let mut parts = q.lock();
        match parts.back_mut() {
            Some((seq, _, held)) if *seq == q.pushed.load(Ordering::SeqCst) => held.extend(acks),
            _ => drop(acks),
        }
    }
}

/// One configured input instance.
struct Instance {
    name: String,
    queue: Arc<Queue>,
    collect_max: usize,
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
        || unsafe { fluentbit::register(def, abi::TYPE_INPUT, NAME, DESCRIPTION) },
    )
}

fn size_prop(v: Option<String>, key: &str, default: usize) -> Result<usize, String> {
    match v {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("property {key}: {v:?} is not a positive integer")),
        },
    }
}

/// # Safety
/// `p` is the plugin struct of the instance being initialised.
unsafe fn init(p: &flbgo_input_plugin) -> Result<Instance, String> {
    // SAFETY: `api` is valid for the plugin's life.
    let get = unsafe { p.api.as_ref() }.and_then(|a| a.input_get_property);
    // SAFETY: the instance is the one Fluent Bit handed with this getter.
    let prop = |k: &str| unsafe { property(get, p.i_ins, k) };
    let n = INSTANCES.fetch_add(1, Ordering::SeqCst);
    let name = prop("pipeline_name").unwrap_or_else(|| format!("fluentbit-in-{n}"));
    let buffer_max = size_prop(
        prop("buffer_max_bytes"),
        "buffer_max_bytes",
        DEFAULT_BUFFER_MAX,
    )?;
    let collect_max = size_prop(
        prop("collect_max_bytes"),
        "collect_max_bytes",
        DEFAULT_COLLECT_MAX,
    )?;
    let json = fluentbit::pipeline_json(prop("pipeline"))?;
    let config = fluentbit::check_pipeline(&name, &json)?;
    if config.inputs.is_empty() {
        return Err(format!(
            "config \"{name}\": an input plugin's pipeline needs inputs"
        ));
    }
    let e = ENGINE.get_or_init(|| {
        Engine::new(Settings {
            name: "pluginrt-in".into(),
            host: Arc::new(QueueHost),
        })
    });
    let dir = prop("checkpoint_dir").unwrap_or_else(|| "pluginrt-fbin-checkpoint".into());
    e.init(InitOptions {
        checkpoint_dir: dir.clone().into(),
        host_ip: None,
        hostname: None,
    })
    .map_err(|err| format!("cannot open the checkpoint store {dir}: {err}"))?;
    let queue = Arc::new(Queue {
        parts: Mutex::new(VecDeque::new()),
        pushed: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        limit: buffer_max,
    });
    queues().write().unwrap_or_else(|e| e.into_inner()).insert(
        engine::engine::real_config_name(&name).to_string(),
        queue.clone(),
    );
    fluentbit::start_pipeline(e, &name, &json)?;
    Ok(Instance {
        name,
        queue,
        collect_max,
    })
}

#[no_mangle]
pub extern "C" fn FLBPluginInit(plugin: *mut c_void) -> c_int {
    guard(
        "FLBPluginInit",
        || 0,
        || {
            // SAFETY: Fluent Bit hands its flbgo_input_plugin for this instance.
            let Some(p) = (unsafe { plugin.cast::<flbgo_input_plugin>().as_ref() }) else {
                return 0;
            };
            // SAFETY: as above.
            let api = unsafe { p.api.as_ref() };
            // SAFETY: the instance is the one Fluent Bit handed with this API.
            let level =
                unsafe { fluentbit::instance_level(api.and_then(|a| a.input_log_check), p.i_ins) };
            fluentbit::log::install(api.and_then(|a| a.log_print), level);
            // SAFETY: as above.
            match unsafe { init(p) } {
                Ok(inst) => {
                    tracing::info!(pipeline = %inst.name, "pluginrt input instance started");
                    // SAFETY: the context is Fluent Bit's for this instance.
                    match unsafe { p.context.as_mut() } {
                        Some(cx) => {
                            cx.remote_context = Box::into_raw(Box::new(inst)).cast();
                            1
                        }
                        None => 0,
                    }
                }
                Err(why) => {
                    tracing::error!("pluginrt input cannot start: {why}");
                    0
                }
            }
        },
    )
}

/// Hands Fluent Bit what is ready (at most `collect_max_bytes`), in a `malloc`ed buffer it
/// frees with [`FLBPluginInputCleanupCallbackCtx`] (or libc `free`).
///
/// # Safety
/// Fluent Bit's contract: `ctx` is what `FLBPluginInit` set; `data` and `size` are writable.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginInputCallbackCtx(
    ctx: *mut c_void,
    data: *mut *mut c_void,
    size: *mut usize,
) -> c_int {
    guard(
        "FLBPluginInputCallbackCtx",
        || -1,
        || {
            if data.is_null() || size.is_null() {
                return -1;
            }
            // SAFETY: writable for the call.
            unsafe {
                *data = std::ptr::null_mut();
                *size = 0;
            }
            // SAFETY: set by FLBPluginInit, freed only by FLBPluginExitCtx.
            let Some(inst) = (unsafe { ctx.cast::<Instance>().as_ref() }) else {
                return -1;
            };
            let (out, acks) = inst.queue.take(inst.collect_max);
            if out.is_empty() {
                return abi::FLB_OK;
            }
            // SAFETY: plain allocation, checked below; Fluent Bit frees it.
            let p = unsafe { libc::malloc(out.len()) };
            if p.is_null() {
                tracing::error!("out of memory handing {} bytes to Fluent Bit", out.len());
                // Put it back in front: nothing is dropped.
                inst.queue
                    .bytes
                    .fetch_add(out.len() as u64, Ordering::SeqCst);
                inst.queue.lock().push_front((0, out, acks));
                return -1;
            }
            // SAFETY: `p` has room for `out.len()` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(out.as_ptr(), p.cast::<u8>(), out.len());
                *data = p;
                *size = out.len();
            }
            // Fluent Bit has the records: the inputs' positions may now be committed.
            drop(acks);
            abi::FLB_OK
        },
    )
}

/// Frees a buffer handed by [`FLBPluginInputCallbackCtx`].
///
/// # Safety
/// `data` is NULL or a buffer this library handed to Fluent Bit.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginInputCleanupCallbackCtx(
    _ctx: *mut c_void,
    data: *mut c_void,
) -> c_int {
    // SAFETY: allocated with libc malloc by FLBPluginInputCallbackCtx.
    unsafe { libc::free(data) };
    0
}

/// Fluent Bit paused the input (its buffer is full): our delivery is refused and retried, so
/// the inputs are back-pressured.
#[no_mangle]
pub extern "C" fn FLBPluginInputPause() {
    PAUSED.store(true, Ordering::SeqCst);
}

/// Fluent Bit resumed the input.
#[no_mangle]
pub extern "C" fn FLBPluginInputResume() {
    PAUSED.store(false, Ordering::SeqCst);
}

/// Stops the instance (for a Fluent Bit that calls the `Ctx` form; see [`FLBPluginExit`]).
/// Records queued for Fluent Bit and not collected are reported; their inputs' positions
/// are not committed, so a restart produces them again.
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
            let real = engine::engine::real_config_name(&inst.name).to_string();
            let mine = queues()
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&real);
            if mine.is_some() {
                stop_instance(&inst.name, &inst.queue);
            }
            abi::FLB_OK
        },
    )
}

/// Stops every input instance. Fluent Bit calls this (once per input instance) rather than
/// [`FLBPluginExitCtx`]: `proxy_go_input_destroy` in its `src/proxy/go/go.c` looks up only
/// `FLBPluginExit` for inputs. The first call stops them all; later ones find nothing left.
#[no_mangle]
pub extern "C" fn FLBPluginExit() -> c_int {
    guard(
        "FLBPluginExit",
        || abi::FLB_ERROR,
        || {
            let all: Vec<(String, Arc<Queue>)> = queues()
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .collect();
            for (name, queue) in all {
                stop_instance(&name, &queue);
            }
            abi::FLB_OK
        },
    )
}

/// Stops config `name` (delivering what it holds within the engine's stop bound) and reports
/// records still waiting for a collect call.
fn stop_instance(name: &str, queue: &Queue) {
    if let Some(e) = ENGINE.get() {
        let n = name.to_string();
        let _ = fluentbit::off_stack("pluginrt-exit", Duration::from_secs(10), move || {
            let _ = e.stop(&n, true);
        });
    }
    let left = queue.abandon();
    if left > 0 {
        tracing::warn!(pipeline = %name, bytes = left, "records queued for Fluent Bit were not collected before the exit; their inputs' positions were not committed, so they are produced again after a restart");
    }
    tracing::info!(pipeline = %name, "pluginrt input instance stopped");
}

/// Nothing was allocated for the definition (its strings are static).
#[no_mangle]
pub extern "C" fn FLBPluginUnregister(_def: *mut flb_plugin_proxy_def) {}
