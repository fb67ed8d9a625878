//! Loading the two libraries the way an iLogtail host does, and the Go-shaped C types of the
//! base exports.
//!
//! Sequence: `dlopen(adaptor, RTLD_LAZY | RTLD_LOCAL)` → `RegisterLogtailCallBackV2` (falling back
//! to `RegisterLogtailCallBack`) → `dlopen(base, RTLD_LAZY | RTLD_LOCAL)`. The libraries are never
//! closed: base threads may still run when the process exits.

use std::ffi::{c_char, CStr};
use std::fmt;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};

use libloading::os::unix::{Library, RTLD_LAZY, RTLD_LOCAL};

/// File name of the adaptor library.
pub const ADAPTOR_FILE: &str = "libPluginAdapter.so";
/// File name of the base library.
pub const BASE_FILE: &str = "libPluginBase.so";

/// Which host the harness plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavour {
    /// iLogtail 1.x/2.x: `libPluginAdapter.so` / `libPluginBase.so`, 4-argument registration,
    /// `LoadConfig` / `Resume` / `HoldOn`.
    #[default]
    Logtail,
    /// OSS LoongCollector 3.x: `libGoPluginAdapter.so` / `libGoPluginBase.so`, the 3-argument
    /// registration of 3.2+, `LoadPipeline` / `Start` / `Stop` / `StopAllPipelines`.
    Loong,
}

impl Flavour {
    /// The host a command's `--loongcollector` flag asks for.
    pub fn of(loongcollector: bool) -> Self {
        if loongcollector {
            Flavour::Loong
        } else {
            Flavour::Logtail
        }
    }

    fn files(self) -> (&'static str, &'static str) {
        match self {
            Flavour::Logtail => (ADAPTOR_FILE, BASE_FILE),
            Flavour::Loong => ("libGoPluginAdapter.so", "libGoPluginBase.so"),
        }
    }
}

/// How a LoongCollector 3.2+ host declares `RegisterLogtailCallBackV2`.
type RegisterV2LoongFn = unsafe extern "C" fn(IsValidToSendFun, SendPbFun, SendPbV2Fun);
type StartFn = unsafe extern "C" fn(GoString);
type StopFn = unsafe extern "C" fn(GoString, i64);
type GetGoMetricsFn = unsafe extern "C" fn(GoString) -> *mut InnerPluginMetrics;

/// The LoongCollector 3.x exports (all present in a base of that generation).
#[derive(Clone, Copy)]
struct LoongFns {
    load_pipeline: LoadConfigFn,
    start: StartFn,
    stop: StopFn,
    stop_all: HoldOnFn,
    stop_builtin: ResumeFn,
    get_go_metrics: GetGoMetricsFn,
    process_event_group: ProcessLogGroupFn,
}

/// The host's declarations of what `GetGoMetrics` returns (LoongCollector `LogtailPlugin.h`).
#[repr(C)]
struct InnerKeyValue {
    key: *mut c_char,
    value: *mut c_char,
}
#[repr(C)]
struct InnerPluginMetric {
    key_values: *mut *mut InnerKeyValue,
    count: std::ffi::c_int,
}
/// `InnerPluginMetrics`.
#[repr(C)]
pub struct InnerPluginMetrics {
    metrics: *mut *mut InnerPluginMetric,
    count: std::ffi::c_int,
}

pub use wire::callbacks::{
    IsValidToSendFun, PluginCtlCmdFun, RegisterV1Fn, RegisterV2Fn, SendPbFun, SendPbV2Fun,
    VersionFn,
};
pub use wire::go::{GoSlice, GoString};

/// The host's callbacks handed to the adaptor.
#[derive(Clone, Copy)]
pub struct HostCallbacks {
    pub is_valid_to_send: IsValidToSendFun,
    pub send_pb: SendPbFun,
    pub send_pb_v2: SendPbV2Fun,
    pub ctl_cmd: PluginCtlCmdFun,
}

type InitV2Fn = unsafe extern "C" fn(GoString) -> i64;
type LoadGlobalConfigFn = unsafe extern "C" fn(GoString) -> i64;
type LoadConfigFn = unsafe extern "C" fn(GoString, GoString, GoString, i64, GoString) -> i64;
type HoldOnFn = unsafe extern "C" fn(i64);
type ResumeFn = unsafe extern "C" fn();
type ProcessLogGroupFn = unsafe extern "C" fn(GoString, GoSlice, GoString) -> i64;
type CheckConfigFn = unsafe extern "C" fn(GoString, GoString) -> *mut c_char;

/// Why the libraries could not be used (exit code 2).
#[derive(Debug)]
pub enum LoadError {
    /// `dlopen` failed.
    Open {
        role: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// A required export is missing.
    Symbol { path: PathBuf, name: &'static str },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Open { role, path, reason } => {
                let missing = if path.exists() {
                    ""
                } else {
                    " (file not found)"
                };
                write!(
                    f,
                    "error: cannot load the {role} library {}{missing}: {reason}\n\
                     Build the libraries with `cargo build --release` (they land in target/release/) \
                     or `cargo build` (target/debug/),\n\
                     then run the harness from there or pass --lib-dir DIR (or set PLUGIN_LIB_DIR=DIR).",
                    path.display()
                )
            }
            LoadError::Symbol { path, name } => write!(
                f,
                "error: {} does not export `{name}`; is it an iLogtail plugin library of the \
                 1.x/2.x generation? Rebuild with `cargo build --release`.",
                path.display()
            ),
        }
    }
}

/// The directory to load the libraries from: `--lib-dir`, else `$PLUGIN_LIB_DIR`, else the
/// directory of the running executable.
pub fn resolve_lib_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("PLUGIN_LIB_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Loads the libraries for a command, from `--lib-dir` or where [`resolve_lib_dir`] says, as
/// `flavour`, with the harness's host callbacks; prints why not (the command then exits 2).
pub fn load_for_command(lib_dir: Option<&Path>, flavour: Flavour) -> Option<Libs> {
    match Libs::load_as(&resolve_lib_dir(lib_dir), crate::host::callbacks(), flavour) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// Both libraries, loaded and kept open for the life of the process.
pub struct Libs {
    pub adaptor_path: PathBuf,
    pub base_path: PathBuf,
    /// `PluginAdapterVersion()` when exported.
    pub adaptor_version: Option<i32>,
    /// Whether the callbacks went through `RegisterLogtailCallBackV2`.
    pub registered_v2: bool,
    init_v2: InitV2Fn,
    load_global_config: Option<LoadGlobalConfigFn>,
    load_config: LoadConfigFn,
    hold_on: HoldOnFn,
    resume: ResumeFn,
    process_log_group: Option<ProcessLogGroupFn>,
    check_config: Option<CheckConfigFn>,
    check_config_warnings: Option<CheckConfigFn>,
    loong: Option<LoongFns>,
    _adaptor: ManuallyDrop<Library>,
    _base: ManuallyDrop<Library>,
}

fn open(role: &'static str, path: &Path) -> Result<Library, LoadError> {
    // SAFETY: loading a library runs its initialisers; these are the project's own libraries,
    // loaded exactly as the hosts that embed them do.
    unsafe { Library::open(Some(path), RTLD_LAZY | RTLD_LOCAL) }.map_err(|e| LoadError::Open {
        role,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Looks `name` up in `lib`, copying the function pointer out.
///
/// # Safety
///
/// `F` must be the exact function pointer type of the export.
unsafe fn sym<F: Copy>(lib: &Library, name: &'static str) -> Option<F> {
    let mut z = name.as_bytes().to_vec();
    z.push(0);
    // SAFETY: the caller guarantees the type; the library is never unloaded.
    unsafe { lib.get::<F>(&z).ok().map(|s| *s) }
}

fn required<F: Copy>(lib: &Library, path: &Path, name: &'static str) -> Result<F, LoadError> {
    // SAFETY: each call site names the type documented for `name` in include/ABI.md and the headers.
    unsafe { sym::<F>(lib, name) }.ok_or_else(|| LoadError::Symbol {
        path: path.to_path_buf(),
        name,
    })
}

impl Libs {
    /// Loads the libraries as the `flavour` of host does (file names, registration, the
    /// exports it looks up).
    ///
    /// # Errors
    ///
    /// [`LoadError`] when a library is missing or lacks a required export.
    pub fn load_as(
        dir: &Path,
        callbacks: HostCallbacks,
        flavour: Flavour,
    ) -> Result<Libs, LoadError> {
        let (adaptor_file, base_file) = flavour.files();
        let adaptor_path = dir.join(adaptor_file);
        let base_path = dir.join(base_file);
        let adaptor = open("adaptor", &adaptor_path)?;
        // SAFETY: types from the ABI document.
        let adaptor_version = unsafe { sym::<VersionFn>(&adaptor, "PluginAdapterVersion") }
            // SAFETY: `int PluginAdapterVersion(void)` has no preconditions.
            .map(|f| unsafe { f() });
        // SAFETY: types from the ABI document.
        let v2 = unsafe { sym::<RegisterV2Fn>(&adaptor, "RegisterLogtailCallBackV2") };
        // SAFETY: as above; a 3.2+ host's declaration of the same export (one argument fewer).
        let v2_loong = unsafe { sym::<RegisterV2LoongFn>(&adaptor, "RegisterLogtailCallBackV2") };
        let registered_v2 = if let (Flavour::Loong, Some(register)) = (flavour, v2_loong) {
            // SAFETY: the callbacks live for the whole process.
            unsafe {
                register(
                    callbacks.is_valid_to_send,
                    callbacks.send_pb,
                    callbacks.send_pb_v2,
                )
            };
            true
        } else if let Some(register) = v2 {
            // SAFETY: the callbacks are `extern "C"` functions living for the whole process.
            unsafe {
                register(
                    callbacks.is_valid_to_send,
                    callbacks.send_pb,
                    callbacks.send_pb_v2,
                    callbacks.ctl_cmd,
                )
            };
            true
        } else {
            let register: RegisterV1Fn =
                required(&adaptor, &adaptor_path, "RegisterLogtailCallBack")?;
            // SAFETY: as above.
            unsafe {
                register(
                    callbacks.is_valid_to_send,
                    callbacks.send_pb,
                    callbacks.ctl_cmd,
                )
            };
            false
        };
        let base = open("base", &base_path)?;
        let p = &base_path;
        let loong = match flavour {
            Flavour::Logtail => None,
            Flavour::Loong => Some(LoongFns {
                load_pipeline: required(&base, p, "LoadPipeline")?,
                start: required(&base, p, "Start")?,
                stop: required(&base, p, "Stop")?,
                stop_all: required(&base, p, "StopAllPipelines")?,
                stop_builtin: required(&base, p, "StopBuiltInModules")?,
                get_go_metrics: required(&base, p, "GetGoMetrics")?,
                process_event_group: required(&base, p, "ProcessPipelineEventGroup")?,
            }),
        };
        Ok(Libs {
            loong,
            init_v2: required(&base, p, "InitPluginBaseV2")?,
            // SAFETY: types from the ABI document.
            load_global_config: unsafe { sym(&base, "LoadGlobalConfig") },
            load_config: required(&base, p, "LoadConfig")?,
            hold_on: required(&base, p, "HoldOn")?,
            resume: required(&base, p, "Resume")?,
            // SAFETY: types from the ABI document.
            process_log_group: unsafe { sym(&base, "ProcessLogGroup") },
            // SAFETY: `CheckConfig` is documented in notes/common.md.
            check_config: unsafe { sym(&base, "CheckConfig") },
            // SAFETY: same type as `CheckConfig` (include/plugin_base.h); absent in older bases.
            check_config_warnings: unsafe { sym(&base, "CheckConfigWarnings") },
            adaptor_version,
            registered_v2,
            adaptor_path,
            base_path,
            _adaptor: ManuallyDrop::new(adaptor),
            _base: ManuallyDrop::new(base),
        })
    }

    /// One line describing what was loaded, for stderr.
    pub fn describe(&self) -> String {
        format!(
            "adaptor {} (version {}, callbacks {}), base {}",
            self.adaptor_path.display(),
            self.adaptor_version
                .map_or_else(|| "unknown".to_string(), |v| v.to_string()),
            if self.registered_v2 { "V2" } else { "V1" },
            self.base_path.display()
        )
    }

    /// `InitPluginBaseV2(json)`: 0 on success.
    pub fn init_v2(&self, json: &str) -> i64 {
        // SAFETY: the GoString borrows `json` for the call only, as the ABI allows.
        unsafe { (self.init_v2)(GoString::new(json)) }
    }

    /// `LoadGlobalConfig(json)`: 0 on success (the base applies only its first call).
    ///
    /// # Errors
    ///
    /// [`LoadError::Symbol`] when the base lacks the export.
    pub fn load_global_config(&self, json: &str) -> Result<i64, LoadError> {
        let f = self.load_global_config.ok_or_else(|| LoadError::Symbol {
            path: self.base_path.clone(),
            name: "LoadGlobalConfig",
        })?;
        // SAFETY: the GoString borrows `json` for the call only, as the ABI allows.
        Ok(unsafe { f(GoString::new(json)) })
    }

    /// `LoadConfig(project, logstore, configName, logstoreKey, json)`: 0 on success.
    pub fn load_config(
        &self,
        project: &str,
        logstore: &str,
        name: &str,
        key: i64,
        json: &str,
    ) -> i64 {
        // SAFETY: every argument is borrowed for the call only.
        unsafe {
            (self.load_config)(
                GoString::new(project),
                GoString::new(logstore),
                GoString::new(name),
                key,
                GoString::new(json),
            )
        }
    }

    fn loong(&self) -> LoongFns {
        self.loong
            .expect("the libraries were loaded as a LoongCollector 3.x host")
    }

    /// `LoadPipeline(project, logstore, configName, logstoreKey, json)`: 0 on success.
    ///
    /// # Panics
    /// When not loaded as [`Flavour::Loong`].
    pub fn load_pipeline(
        &self,
        project: &str,
        logstore: &str,
        name: &str,
        key: i64,
        json: &str,
    ) -> i64 {
        // SAFETY: every argument is borrowed for the call only.
        unsafe {
            (self.loong().load_pipeline)(
                GoString::new(project),
                GoString::new(logstore),
                GoString::new(name),
                key,
                GoString::new(json),
            )
        }
    }

    /// `Start(configName)`.
    pub fn start(&self, name: &str) {
        // SAFETY: borrowed for the call only.
        unsafe { (self.loong().start)(GoString::new(name)) }
    }

    /// `Stop(configName, removedFlag)`.
    pub fn stop(&self, name: &str, removed: bool) {
        // SAFETY: borrowed for the call only.
        unsafe { (self.loong().stop)(GoString::new(name), i64::from(removed)) }
    }

    /// `StopAllPipelines(withInputFlag)`.
    pub fn stop_all(&self, with_inputs: bool) {
        // SAFETY: no pointers.
        unsafe { (self.loong().stop_all)(i64::from(with_inputs)) }
    }

    /// `StopBuiltInModules()`.
    pub fn stop_builtin(&self) {
        // SAFETY: no arguments.
        unsafe { (self.loong().stop_builtin)() }
    }

    /// `GetGoMetrics(type)`, read and freed as the host does: one string map per record.
    pub fn go_metrics(&self, metric_type: &str) -> Vec<Vec<(String, String)>> {
        let text = |p: *const c_char| {
            if p.is_null() {
                String::new()
            } else {
                // SAFETY: NUL-terminated strings from the base.
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        let mut out = Vec::new();
        // SAFETY: borrowed for the call; every part of the result is malloc'ed by the base
        // and freed here, in the host's order.
        unsafe {
            let m = (self.loong().get_go_metrics)(GoString::new(metric_type));
            if m.is_null() {
                return out;
            }
            for i in 0..(*m).count as usize {
                let r = *(*m).metrics.add(i);
                let mut rec = Vec::new();
                if !r.is_null() {
                    for j in 0..(*r).count as usize {
                        let kv = *(*r).key_values.add(j);
                        if !kv.is_null() {
                            rec.push((text((*kv).key), text((*kv).value)));
                            libc::free((*kv).key.cast());
                            libc::free((*kv).value.cast());
                            libc::free(kv.cast());
                        }
                    }
                    libc::free((*r).key_values.cast());
                    libc::free(r.cast());
                }
                out.push(rec);
            }
            libc::free((*m).metrics.cast());
            libc::free(m.cast());
        }
        out
    }

    /// `HoldOn(exitFlag)`.
    pub fn hold_on(&self, exit_flag: i64) {
        // SAFETY: no pointers are involved.
        unsafe { (self.hold_on)(exit_flag) }
    }

    /// `Resume()`.
    pub fn resume(&self) {
        // SAFETY: no arguments.
        unsafe { (self.resume)() }
    }

    /// `ProcessLogGroup(configName, serializedLogGroup, packId)` (or, with `event_group`,
    /// `ProcessPipelineEventGroup(configName, pbBytes, packId)`): 0 on success.
    ///
    /// # Errors
    ///
    /// [`LoadError::Symbol`] when the base lacks the export.
    pub fn process_fn(
        &self,
        event_group: bool,
    ) -> Result<impl Fn(&str, &[u8], &str) -> i64 + Sync + '_, LoadError> {
        let (f, name) = if event_group {
            (
                self.loong.map(|l| l.process_event_group),
                "ProcessPipelineEventGroup",
            )
        } else {
            (self.process_log_group, "ProcessLogGroup")
        };
        let f = f.ok_or_else(|| LoadError::Symbol {
            path: self.base_path.clone(),
            name,
        })?;
        Ok(move |config: &str, group: &[u8], pack_id: &str| {
            // SAFETY: all arguments are borrowed for the call only; the base does not keep them.
            unsafe {
                f(
                    GoString::new(config),
                    GoSlice::new(group),
                    GoString::new(pack_id),
                )
            }
        })
    }

    /// `CheckConfig(configName, json)`: `Ok(None)` when valid, `Ok(Some(errors))` otherwise.
    ///
    /// # Errors
    ///
    /// [`LoadError::Symbol`] when the base lacks the export.
    pub fn check_config(&self, name: &str, json: &str) -> Result<Option<String>, LoadError> {
        let f = self.check_config.ok_or_else(|| LoadError::Symbol {
            path: self.base_path.clone(),
            name: "CheckConfig",
        })?;
        Ok(call_text_export(f, name, json))
    }

    /// `CheckConfigWarnings(configName, json)`: `None` when there is nothing to report (or
    /// the base is older than the export).
    pub fn check_config_warnings(&self, name: &str, json: &str) -> Option<String> {
        call_text_export(self.check_config_warnings?, name, json)
    }
}

/// Calls an export returning NULL or a `malloc`ed text, which is copied and freed.
fn call_text_export(f: CheckConfigFn, name: &str, json: &str) -> Option<String> {
    // SAFETY: arguments borrowed for the call only.
    let text = unsafe { f(GoString::new(name), GoString::new(json)) };
    if text.is_null() {
        return None;
    }
    // SAFETY: a non-NULL result is a malloc'd NUL-terminated string we now own; it is
    // copied, then released with libc free() as the exports' contract says.
    unsafe {
        let s = CStr::from_ptr(text).to_string_lossy().into_owned();
        libc::free(text.cast());
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_types_have_go_layout() {
        assert_eq!(std::mem::size_of::<GoString>(), 16);
        assert_eq!(std::mem::size_of::<GoSlice>(), 24);
        let s = GoString::new("abc");
        assert_eq!(s.n, 3);
        let b = GoSlice::new(b"hello");
        assert_eq!((b.len, b.cap), (5, 5));
    }

    #[test]
    fn missing_library_message_names_path_and_build() {
        let dir = Path::new("/nonexistent-harness-dir");
        let err = Libs::load_as(dir, crate::host::callbacks(), Flavour::Logtail)
            .err()
            .expect("must fail");
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent-harness-dir/libPluginAdapter.so"),
            "{text}"
        );
        assert!(text.contains("cargo build --release"), "{text}");
        assert!(text.contains("file not found"), "{text}");
    }

    #[test]
    fn lib_dir_flag_wins() {
        assert_eq!(resolve_lib_dir(Some(Path::new("/x"))), PathBuf::from("/x"));
    }
}
