//! What the Fluent Bit plugins (`base/fluentbit/output`, `base/fluentbit/input`) share: the
//! proxy interface's C types ([`abi`]), msgpack records ↔ events ([`records`]), logging
//! through Fluent Bit ([`log`]), reading properties, running work off Fluent Bit's 64 KiB
//! coroutine stacks ([`off_stack`]), catching panics at the boundary ([`guard`]) and turning
//! the engine's alarms and statistics into Fluent Bit log lines ([`report_builtin`]).

pub mod abi;
pub mod log;
pub mod records;

use engine::config::PipelineConfig;
use engine::host::Payload;
use engine::Engine;
use prost::Message;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::Duration;

/// Stack of the threads that decode and push (Fluent Bit's own coroutine has 64 KiB).
pub const WORK_STACK: usize = 2 << 20;

/// Reads property `key` of an instance with the host's getter (`None` when unset or empty).
///
/// # Safety
/// `ins` must be the instance Fluent Bit handed with `get`.
pub unsafe fn property(
    get: Option<abi::GetPropertyFn>,
    ins: *mut c_void,
    key: &str,
) -> Option<String> {
    let get = get?;
    let key = CString::new(key).ok()?;
    // SAFETY: forwarded contract; the result is owned by Fluent Bit and copied at once.
    let p: *const c_char = unsafe { get(key.as_ptr(), ins) };
    if p.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string owned by Fluent Bit, valid for this call.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    (!s.trim().is_empty()).then_some(s)
}

type Job = Box<dyn FnOnce() + Send>;

/// Idle work threads, each waiting for its next job (at most [`MAX_IDLE`] are kept).
static IDLE: Mutex<Vec<crossbeam_channel::Sender<Job>>> = Mutex::new(Vec::new());
const MAX_IDLE: usize = 16;

/// A thread that runs jobs until it is no longer wanted as an idle one.
fn spawn_worker(name: &str) -> Option<crossbeam_channel::Sender<Job>> {
    let (tx, rx) = crossbeam_channel::bounded::<Job>(1);
    let me = tx.clone();
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(WORK_STACK)
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
                let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() >= MAX_IDLE {
                    return;
                }
                idle.push(me.clone());
            }
        })
        .ok()?;
    Some(tx)
}

/// Runs `f` on a work thread (a normal stack, not the caller's coroutine stack: an idle one
/// when there is one) and waits at most `wait` for it. `None` when no thread could start, `f`
/// panicked or did not finish in time.
pub fn off_stack<R: Send + 'static>(
    name: &str,
    wait: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let job: Job = Box::new(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(r.ok());
    });
    let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let worker = idle.or_else(|| spawn_worker(name));
    let Some(worker) = worker else {
        tracing::error!("cannot start a thread for {name}");
        return None;
    };
    if worker.send(job).is_err() {
        return None;
    }
    rx.recv_timeout(wait).ok().flatten()
}

/// Runs an entry point's body, turning a panic into `on_panic()` and an error log.
pub fn guard<T>(entry: &'static str, on_panic: impl FnOnce() -> T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(e) => {
            let msg = e
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(entry, panic = %msg, "panic caught at the Fluent Bit boundary");
            on_panic()
        }
    }
}

/// Logs the engine's alarm and statistics groups as Fluent Bit log lines (alarms at warn or
/// error, one line per plugin's counters at info); `false` when `p` is not one of them.
pub fn report_builtin(p: &Payload) -> bool {
    let builtin = [engine::report::ALARM_CONFIG, engine::report::PROFILE_CONFIG];
    if !builtin.contains(&&*p.config) {
        return false;
    }
    let Ok(g) = wire::sls::LogGroup::decode(p.data.as_slice()) else {
        return true;
    };
    for log in &g.logs {
        let fields: Vec<String> = log
            .contents
            .iter()
            .filter(|c| !matches!(c.key.as_str(), "ip" | "hostname"))
            .map(|c| format!("{}={}", c.key, c.value))
            .collect();
        let line = fields.join(" ");
        if &*p.config == engine::report::PROFILE_CONFIG {
            tracing::info!("statistics: {line}");
        } else if log
            .contents
            .iter()
            .any(|c| c.key == "alarm_level" && c.value == "1")
        {
            tracing::warn!("alarm: {line}");
        } else {
            tracing::error!("alarm: {line}");
        }
    }
    true
}

/// Fills a plugin definition: `type_` is [`abi::TYPE_INPUT`] or [`abi::TYPE_OUTPUT`]; the
/// strings are static (Fluent Bit copies the name and keeps the description). Returns 0, or
/// -1 for a NULL definition.
///
/// # Safety
/// `def` is NULL or Fluent Bit's zeroed definition, writable for the call.
pub unsafe fn register(
    def: *mut abi::flb_plugin_proxy_def,
    type_: std::ffi::c_int,
    name: &'static CStr,
    description: &'static CStr,
) -> std::ffi::c_int {
    // SAFETY: forwarded contract.
    let Some(d) = (unsafe { def.as_mut() }) else {
        return -1;
    };
    d.type_ = type_;
    d.proxy = abi::PROXY_GOLANG;
    d.flags = 0;
    d.name = name.as_ptr().cast_mut();
    d.description = description.as_ptr().cast_mut();
    d.event_type = 0;
    d.config_map = std::ptr::null_mut();
    0
}

/// The most verbose level `check(ins, level)` says the instance logs (1 error … 5 trace;
/// info without a check function).
///
/// # Safety
/// `ins` is the instance Fluent Bit handed with `check`.
pub unsafe fn instance_level(check: Option<abi::LogCheckFn>, ins: *mut c_void) -> std::ffi::c_int {
    let Some(check) = check else {
        return abi::LOG_INFO;
    };
    (abi::LOG_ERROR..=abi::LOG_TRACE)
        .rev()
        // SAFETY: forwarded contract.
        .find(|l| unsafe { check(ins, *l) } != 0)
        .unwrap_or(abi::LOG_ERROR)
}

/// The pipeline config the `pipeline` property names: the JSON itself, or a file to read.
///
/// # Errors
/// A message naming the property when it is unset or the file cannot be read.
pub fn pipeline_json(spec: Option<String>) -> Result<String, String> {
    let spec = spec
        .ok_or("property pipeline is required (a path to a pipeline config, or the JSON itself)")?;
    if spec.trim_start().starts_with('{') {
        return Ok(spec);
    }
    std::fs::read_to_string(spec.trim())
        .map_err(|e| format!("property pipeline: cannot read {}: {e}", spec.trim()))
}

/// Checks config `name`: every problem, each naming config, plugin and field, in one message.
///
/// # Errors
/// The problems, joined.
pub fn check_pipeline(name: &str, json: &str) -> Result<PipelineConfig, String> {
    Engine::check_config(name, json).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Loads config `name` into `e` and runs it (holding the engine's other configs for the
/// moment it takes, as iLogtail's reload does).
///
/// # Errors
/// Why it did not load or start.
pub fn start_pipeline(e: &Engine, name: &str, json: &str) -> Result<(), String> {
    e.hold_on(false);
    let loaded = e.load_config("fluentbit", name, name, -1, json);
    let resumed = e.resume();
    loaded.map_err(|err| format!("config \"{name}\" did not load: {err}"))?;
    resumed.map_err(|err| format!("the engine did not resume: {err}"))
}
