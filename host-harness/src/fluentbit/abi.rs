//! The Fluent Bit external-plugin ABI ("Go proxy" plugins), as the host side sees it:
//! the structures (x86_64 layouts of /work/shared/abi/fluent-bit.md), the `struct flb_api`
//! callbacks (properties, log level checks, log_print), and the plugin's entry points looked
//! up with dlsym. Written from the ABI description, independent of any plugin crate.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;

use libloading::os::unix::{Library, Symbol, RTLD_LAZY, RTLD_LOCAL};

pub const FLB_ERROR: c_int = 0;
pub const FLB_OK: c_int = 1;
pub const FLB_RETRY: c_int = 2;

pub const TYPE_INPUT: c_int = 1;
pub const TYPE_OUTPUT: c_int = 2;
pub const PROXY_GOLANG: c_int = 11;

/// `struct flb_plugin_proxy_def`, 48 bytes, zeroed by the host, filled by FLBPluginRegister.
#[repr(C)]
#[derive(Debug)]
pub struct ProxyDef {
    pub type_: c_int,
    pub proxy: c_int,
    pub flags: c_int,
    pub name: *mut c_char,
    pub description: *mut c_char,
    pub event_type: c_int,
    pub config_map: *mut c_void,
}

/// `struct flb_api`, 72 bytes.
#[repr(C)]
pub struct FlbApi {
    pub output_get_property: unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char,
    pub input_get_property: unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char,
    pub output_get_cmt_instance: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    pub input_get_cmt_instance: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    pub log_print: unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, ...),
    pub input_log_check: unsafe extern "C" fn(*mut c_void, c_int) -> c_int,
    pub output_log_check: unsafe extern "C" fn(*mut c_void, c_int) -> c_int,
    pub custom_get_property: unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char,
    pub custom_log_check: unsafe extern "C" fn(*mut c_void, c_int) -> c_int,
}

/// `struct flb_plugin_proxy_context` (outputs): the plugin sets `remote_context` in Init.
#[repr(C)]
pub struct OutputContext {
    pub remote_context: *mut c_void,
    pub proxy: *mut c_void,
}

/// `struct flb_plugin_input_proxy_context`: `coll_fd` at 0, `remote_context` at 8.
#[repr(C)]
pub struct InputContext {
    pub coll_fd: c_int,
    pub remote_context: *mut c_void,
    pub proxy: *mut c_void,
}

/// `struct flbgo_output_plugin` / `flbgo_input_plugin`: name, api, o_ins/i_ins, context at 24;
/// Fluent Bit's private fields (callback pointers) follow: kept zeroed here.
#[repr(C)]
pub struct GoPlugin {
    pub name: *mut c_char,
    pub api: *const FlbApi,
    pub ins: *mut c_void,
    pub context: *mut c_void,
    pub private: [usize; 16],
}

const _: () = {
    assert!(std::mem::size_of::<ProxyDef>() == 48);
    assert!(std::mem::size_of::<FlbApi>() == 72);
    assert!(std::mem::offset_of!(InputContext, remote_context) == 8);
    assert!(std::mem::offset_of!(GoPlugin, context) == 24);
};

extern "C" {
    /// log_shim.c: vsnprintf's, then calls [`harness_fb_log`].
    fn harness_fb_log_print(
        level: c_int,
        file: *const c_char,
        line: c_int,
        fmt: *const c_char,
        ...
    );
}

/// The host's `struct flb_api`, one for the process (Fluent Bit has one too).
pub static API: FlbApi = FlbApi {
    output_get_property: get_property,
    input_get_property: get_property,
    output_get_cmt_instance: get_cmt_instance,
    input_get_cmt_instance: get_cmt_instance,
    log_print: harness_fb_log_print,
    input_log_check: log_check,
    output_log_check: log_check,
    custom_get_property: get_property,
    custom_log_check: log_check,
};

/// Keys Fluent Bit's core consumes: a plugin never sees them through get_property.
const CORE_KEYS: &[&str] = &[
    "match",
    "match_regex",
    "alias",
    "log_level",
    "host",
    "port",
    "retry_limit",
    "workers",
];
const CORE_PREFIXES: &[&str] = &["tls", "net.", "storage."];
const INPUT_CORE_KEYS: &[&str] = &["tag", "listen", "mem_buf_limit", "threaded"];

/// Whether the core consumes `key` (lower case) for a plugin of this kind.
pub fn is_core_key(key: &str, input: bool) -> bool {
    CORE_KEYS.contains(&key)
        || CORE_PREFIXES.iter().any(|p| key.starts_with(p))
        || (input && INPUT_CORE_KEYS.contains(&key))
}

/// `${VAR}` expanded from the environment (an unset variable expands to nothing).
pub fn expand_env(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find('}') {
            Some(end) => {
                let name = &rest[start + 2..start + 2 + end];
                out.push_str(&std::env::var(name).unwrap_or_default());
                rest = &rest[start + 2 + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// One configured instance: what `o_ins` / `i_ins` points at.
pub struct Instance {
    /// Lower-case key → expanded value, as get_property returns it (core keys left out).
    props: Vec<(String, CString)>,
}

impl Instance {
    /// `props` as given on the command line (`key=value`, later wins); core keys dropped.
    pub fn new(input: bool, props: &[(String, String)]) -> Box<Instance> {
        let mut kept: Vec<(String, CString)> = Vec::new();
        for (k, v) in props {
            let key = k.to_ascii_lowercase();
            if is_core_key(&key, input) {
                continue;
            }
            let value = CString::new(expand_env(v).replace('\0', "")).expect("no NUL");
            kept.retain(|(old, _)| *old != key);
            kept.push((key, value));
        }
        let b = Box::new(Instance { props: kept });
        lock(&LIVE).insert(&*b as *const Instance as usize);
        b
    }

    pub fn ptr(&self) -> *mut c_void {
        self as *const Instance as *mut c_void
    }

    /// What get_property returns for `key` (any case).
    pub fn get(&self, key: &str) -> Option<&CStr> {
        let key = key.to_ascii_lowercase();
        self.props
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_c_str())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        lock(&LIVE).remove(&(self as *const Instance as usize));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Addresses of live [`Instance`]s: a callback given anything else is reported, not followed.
static LIVE: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());
/// Property keys plugins asked for, with (instance, found).
static LOOKUPS: Mutex<BTreeMap<String, (u64, u64)>> = Mutex::new(BTreeMap::new());
/// Callbacks given an unknown instance pointer or a NULL key.
pub static BAD_CALLBACKS: AtomicU64 = AtomicU64::new(0);
pub static CMT_CALLS: AtomicU64 = AtomicU64::new(0);
/// Messages per level 1..=5 (index 0: out-of-range levels).
static LOG_COUNTS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
/// The configured log level: log_check allows levels <= this; log_print prints them.
pub static LOG_LEVEL: AtomicI32 = AtomicI32::new(3);

pub const LEVEL_NAMES: [&str; 6] = ["other", "error", "warn", "info", "debug", "trace"];

fn known(ins: *mut c_void) -> Option<&'static Instance> {
    if lock(&LIVE).contains(&(ins as usize)) {
        // SAFETY: a live Instance (boxed; removed from LIVE before it is dropped, and the run
        // keeps every instance alive until after the plugin is unloaded from use).
        Some(unsafe { &*(ins as *const Instance) })
    } else {
        None
    }
}

unsafe extern "C" fn get_property(key: *const c_char, ins: *mut c_void) -> *const c_char {
    let Some(inst) = known(ins) else {
        BAD_CALLBACKS.fetch_add(1, Ordering::Relaxed);
        eprintln!("fluent-bit: get_property with an unknown instance pointer {ins:p}");
        return std::ptr::null();
    };
    if key.is_null() {
        BAD_CALLBACKS.fetch_add(1, Ordering::Relaxed);
        return std::ptr::null();
    }
    // SAFETY: the plugin passes a NUL-terminated key.
    let key = unsafe { CStr::from_ptr(key) }
        .to_string_lossy()
        .to_ascii_lowercase();
    let found = inst.get(&key);
    let mut l = lock(&LOOKUPS);
    let e = l.entry(key).or_default();
    e.0 += 1;
    e.1 += u64::from(found.is_some());
    found.map_or(std::ptr::null(), |v| v.as_ptr())
}

unsafe extern "C" fn get_cmt_instance(_ins: *mut c_void) -> *mut c_void {
    // No CMetrics context in the harness.
    CMT_CALLS.fetch_add(1, Ordering::Relaxed);
    std::ptr::null_mut()
}

unsafe extern "C" fn log_check(ins: *mut c_void, level: c_int) -> c_int {
    if known(ins).is_none() {
        BAD_CALLBACKS.fetch_add(1, Ordering::Relaxed);
    }
    c_int::from(level <= LOG_LEVEL.load(Ordering::Relaxed))
}

/// Called by log_shim.c with the formatted message.
///
/// # Safety
/// `file` and `msg` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn harness_fb_log(
    level: c_int,
    file: *const c_char,
    line: c_int,
    msg: *const c_char,
) {
    let i = usize::try_from(level).ok().filter(|l| (1..=5).contains(l));
    LOG_COUNTS[i.unwrap_or(0)].fetch_add(1, Ordering::Relaxed);
    if level > LOG_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: NUL-terminated (see above).
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    eprintln!(
        "fluent-bit: [{}] {}:{}: {}",
        LEVEL_NAMES[i.unwrap_or(0)],
        text(file),
        line,
        text(msg)
    );
}

/// The callbacks' counters for the summary.
pub fn callback_report() -> serde_json::Value {
    let logs: serde_json::Map<String, serde_json::Value> = LEVEL_NAMES
        .iter()
        .zip(LOG_COUNTS.iter())
        .map(|(n, c)| (n.to_string(), c.load(Ordering::Relaxed).into()))
        .collect();
    let lookups: serde_json::Map<String, serde_json::Value> = lock(&LOOKUPS)
        .iter()
        .map(|(k, (n, found))| (k.clone(), serde_json::json!({"calls": n, "found": found})))
        .collect();
    serde_json::json!({
        "log_messages": logs,
        "property_lookups": lookups,
        "cmt_instance_calls": CMT_CALLS.load(Ordering::Relaxed),
        "bad_callback_args": BAD_CALLBACKS.load(Ordering::Relaxed),
    })
}

type FnI = unsafe extern "C" fn(c_int) -> c_int;
type FnV = unsafe extern "C" fn();
type FnVI = unsafe extern "C" fn(c_int);
type FnDef = unsafe extern "C" fn(*mut ProxyDef) -> c_int;
type FnUnreg = unsafe extern "C" fn(*mut ProxyDef);
type FnPtr = unsafe extern "C" fn(*mut c_void) -> c_int;
type FnFlushCtx = unsafe extern "C" fn(*mut c_void, *const c_void, usize, *mut c_char) -> c_int;
type FnFlush = unsafe extern "C" fn(*const c_void, usize, *const c_char) -> c_int;
type FnExit = unsafe extern "C" fn() -> c_int;
type FnCollectCtx = unsafe extern "C" fn(*mut c_void, *mut *mut c_void, *mut usize) -> c_int;
type FnCollect = unsafe extern "C" fn(*mut *mut c_void, *mut usize) -> c_int;
type FnCleanupCtx = unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int;

/// A plugin `.so` and its entry points (absent ones `None`).
pub struct Plugin {
    pub path: String,
    pub pre_register: Option<FnI>,
    pub register: FnDef,
    pub init: FnPtr,
    pub unregister: Option<FnUnreg>,
    pub exit_ctx: Option<FnPtr>,
    pub exit: Option<FnExit>,
    pub flush_ctx: Option<FnFlushCtx>,
    pub flush: Option<FnFlush>,
    pub output_pre_run: Option<FnI>,
    pub output_pre_exit: Option<FnVI>,
    pub collect_ctx: Option<FnCollectCtx>,
    pub collect: Option<FnCollect>,
    pub cleanup_ctx: Option<FnCleanupCtx>,
    pub cleanup: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    pub pause: Option<FnV>,
    pub resume: Option<FnV>,
    pub input_pre_run: Option<FnI>,
    pub input_pre_exit: Option<FnVI>,
    /// Kept loaded for the whole process (never dlclosed: plugin threads may still run).
    _lib: &'static Library,
}

// SAFETY: function pointers into a library that stays loaded.
unsafe impl Send for Plugin {}
unsafe impl Sync for Plugin {}

impl Plugin {
    /// dlopen(path, RTLD_LAZY | RTLD_LOCAL) like Fluent Bit, and dlsym of the entry points.
    pub fn open(path: &Path) -> Result<Plugin, String> {
        let base = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if base.starts_with("flb-") {
            return Err(format!(
                "{}: a basename starting with `flb-` selects Fluent Bit's other loader",
                path.display()
            ));
        }
        // A bare file name that exists is that file, not a search of the library path.
        let local;
        let path = if path.exists() && path.parent() == Some(Path::new("")) {
            local = Path::new(".").join(path);
            local.as_path()
        } else {
            path
        };
        // SAFETY: loading a plugin runs its initialisers; that is what is asked for.
        let lib = unsafe { Library::open(Some(path), RTLD_LAZY | RTLD_LOCAL) }
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        let lib: &'static Library = Box::leak(Box::new(lib));
        fn sym<T: Copy>(lib: &'static Library, name: &str) -> Option<T> {
            // SAFETY: the type is the one the ABI gives the symbol.
            unsafe { lib.get::<T>(name.as_bytes()) }
                .ok()
                .map(|s: Symbol<T>| *s)
        }
        let missing = |name: &str| format!("{}: no {name} exported", path.display());
        Ok(Plugin {
            path: path.display().to_string(),
            pre_register: sym(lib, "FLBPluginPreRegister"),
            register: sym(lib, "FLBPluginRegister").ok_or_else(|| missing("FLBPluginRegister"))?,
            init: sym(lib, "FLBPluginInit").ok_or_else(|| missing("FLBPluginInit"))?,
            unregister: sym(lib, "FLBPluginUnregister"),
            exit_ctx: sym(lib, "FLBPluginExitCtx"),
            exit: sym(lib, "FLBPluginExit"),
            flush_ctx: sym(lib, "FLBPluginFlushCtx"),
            flush: sym(lib, "FLBPluginFlush"),
            output_pre_run: sym(lib, "FLBPluginOutputPreRun"),
            output_pre_exit: sym(lib, "FLBPluginOutputPreExit"),
            collect_ctx: sym(lib, "FLBPluginInputCallbackCtx"),
            collect: sym(lib, "FLBPluginInputCallback"),
            cleanup_ctx: sym(lib, "FLBPluginInputCleanupCallbackCtx"),
            cleanup: sym(lib, "FLBPluginInputCleanupCallback"),
            pause: sym(lib, "FLBPluginInputPause"),
            resume: sym(lib, "FLBPluginInputResume"),
            input_pre_run: sym(lib, "FLBPluginInputPreRun"),
            input_pre_exit: sym(lib, "FLBPluginInputPreExit"),
            _lib: lib,
        })
    }

    /// Which entry points the plugin exports (for the summary).
    pub fn exports(&self) -> Vec<&'static str> {
        let mut v = vec!["FLBPluginRegister", "FLBPluginInit"];
        let opt: [(&'static str, bool); 17] = [
            ("FLBPluginPreRegister", self.pre_register.is_some()),
            ("FLBPluginUnregister", self.unregister.is_some()),
            ("FLBPluginExitCtx", self.exit_ctx.is_some()),
            ("FLBPluginExit", self.exit.is_some()),
            ("FLBPluginFlushCtx", self.flush_ctx.is_some()),
            ("FLBPluginFlush", self.flush.is_some()),
            ("FLBPluginOutputPreRun", self.output_pre_run.is_some()),
            ("FLBPluginOutputPreExit", self.output_pre_exit.is_some()),
            ("FLBPluginInputCallbackCtx", self.collect_ctx.is_some()),
            ("FLBPluginInputCallback", self.collect.is_some()),
            (
                "FLBPluginInputCleanupCallbackCtx",
                self.cleanup_ctx.is_some(),
            ),
            ("FLBPluginInputCleanupCallback", self.cleanup.is_some()),
            ("FLBPluginInputPause", self.pause.is_some()),
            ("FLBPluginInputResume", self.resume.is_some()),
            ("FLBPluginInputPreRun", self.input_pre_run.is_some()),
            ("FLBPluginInputPreExit", self.input_pre_exit.is_some()),
            ("", false),
        ];
        v.extend(opt.iter().filter(|(_, b)| *b).map(|(n, _)| *n));
        v
    }
}

/// What FLBPluginRegister filled in.
#[derive(Debug, Clone)]
pub struct Registered {
    pub type_: c_int,
    pub name: String,
    pub description: String,
    pub event_type: c_int,
    pub flags: c_int,
}

/// Reads a C string the plugin owns (NULL → None).
///
/// # Safety
/// `p` is NULL or NUL-terminated.
pub unsafe fn c_str(p: *const c_char) -> Option<String> {
    // SAFETY: see above.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Checks the filled def: proxy 11, the expected type, a name.
pub fn check_def(def: &ProxyDef, want_type: c_int) -> Result<Registered, String> {
    if def.proxy != PROXY_GOLANG {
        return Err(format!(
            "FLBPluginRegister set proxy = {} (must be {PROXY_GOLANG})",
            def.proxy
        ));
    }
    // SAFETY: the plugin's strings, NULL or NUL-terminated.
    let name = unsafe { c_str(def.name) }.ok_or("FLBPluginRegister left name NULL")?;
    let description = unsafe { c_str(def.description) }.unwrap_or_default();
    if def.type_ != want_type {
        let kind = |t| match t {
            TYPE_INPUT => "input".to_string(),
            TYPE_OUTPUT => "output".to_string(),
            3 => "custom".to_string(),
            t => format!("unknown ({t})"),
        };
        return Err(format!(
            "plugin {name:?} registers as {} but is run as {}",
            kind(def.type_),
            kind(want_type)
        ));
    }
    Ok(Registered {
        type_: def.type_,
        name,
        description,
        event_type: def.event_type,
        flags: def.flags,
    })
}

/// A value moved to another thread as it is (raw pointers, plugin contexts): the proxy host
/// hands them between its engine and flush threads exactly as Fluent Bit does.
pub struct Unshared<T>(pub T);
// SAFETY: see above; the plugin ABI allows calls from any host thread.
unsafe impl<T> Send for Unshared<T> {}
unsafe impl<T> Sync for Unshared<T> {}

impl<T: Copy> Unshared<T> {
    /// The value (a method, so that a closure captures the whole wrapper, not the field).
    pub fn get(&self) -> T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_case_insensitive_expanded_and_hide_core_keys() {
        std::env::set_var("HARNESS_FB_TEST_VAR", "expanded");
        let props = vec![
            (
                "Pipeline".to_string(),
                "a-${HARNESS_FB_TEST_VAR}-${HARNESS_FB_UNSET}".to_string(),
            ),
            ("match".to_string(), "*".to_string()),
            ("tls.verify".to_string(), "off".to_string()),
            ("Tag".to_string(), "t".to_string()),
            (
                "pipeline".to_string(),
                "later-${HARNESS_FB_TEST_VAR}".to_string(),
            ),
        ];
        let out = Instance::new(false, &props);
        assert_eq!(
            out.get("PIPELINE").unwrap().to_str().unwrap(),
            "later-expanded"
        );
        assert!(out.get("match").is_none());
        assert!(out.get("tls.verify").is_none());
        assert_eq!(out.get("tag").unwrap().to_str().unwrap(), "t");
        let inp = Instance::new(true, &props);
        assert!(inp.get("tag").is_none());

        let key = CString::new("PiPeLiNe").unwrap();
        // SAFETY: a live instance and a NUL-terminated key.
        let v = unsafe { get_property(key.as_ptr(), out.ptr()) };
        assert_eq!(unsafe { c_str(v) }.unwrap(), "later-expanded");
        let bogus = 8usize as *mut c_void;
        assert!(unsafe { get_property(key.as_ptr(), bogus) }.is_null());
        assert!(BAD_CALLBACKS.load(Ordering::Relaxed) >= 1);
        assert_eq!(expand_env("x${unterminated"), "x${unterminated");
    }

    #[test]
    fn log_print_formats_through_the_c_shim() {
        let before = LOG_COUNTS[1].load(Ordering::Relaxed);
        let fmt = CString::new("n=%d s=%s").unwrap();
        let s = CString::new("x").unwrap();
        // SAFETY: a printf format with matching arguments.
        unsafe {
            (API.log_print)(
                1,
                std::ptr::null(),
                7,
                fmt.as_ptr(),
                42 as c_int,
                s.as_ptr(),
            )
        };
        assert_eq!(LOG_COUNTS[1].load(Ordering::Relaxed), before + 1);
    }
}
