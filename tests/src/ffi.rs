//! Go's C types at the boundary, the two dlopened libraries and the base symbol table.
//!
//! The libraries are opened once per process ([`host`]) and never closed: the base owns
//! threads that would crash if its code were unmapped.

use std::ffi::{c_char, c_int, c_longlong, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libloading::os::unix::Library;

use crate::callbacks;
use crate::util::lib_dir;

/// Go's `GoInt64`.
pub type GoInt64 = i64;
/// Go's `GoInt` (64-bit on the supported targets).
pub type GoInt = GoInt64;

/// Go's `GoString`: a borrowed, not NUL-terminated byte string passed by value.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GoString {
    /// First byte (may be NULL when `n == 0`).
    pub p: *const c_char,
    /// Length in bytes.
    pub n: GoInt64,
}

impl GoString {
    /// Borrows `s` for the duration of one call.
    pub fn new(s: &str) -> Self {
        Self::from_bytes(s.as_bytes())
    }

    /// Borrows arbitrary bytes (possibly invalid UTF-8) for one call.
    pub fn from_bytes(b: &[u8]) -> Self {
        GoString {
            p: b.as_ptr().cast(),
            n: b.len() as GoInt64,
        }
    }

    /// Any pointer and length, e.g. NULL with `n > 0` or a negative length.
    pub fn raw(p: *const c_char, n: GoInt64) -> Self {
        GoString { p, n }
    }

    /// NULL pointer with the given length.
    pub fn null(n: GoInt64) -> Self {
        GoString {
            p: std::ptr::null(),
            n,
        }
    }
}

/// Go's `GoSlice` of bytes, borrowed for one call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GoSlice {
    /// First element (may be NULL when `len == 0`).
    pub data: *mut c_void,
    /// Number of bytes.
    pub len: GoInt,
    /// Capacity (the base must not rely on it).
    pub cap: GoInt,
}

impl GoSlice {
    /// Borrows `b` for the duration of one call (`cap == len`).
    pub fn from_bytes(b: &[u8]) -> Self {
        GoSlice {
            data: b.as_ptr() as *mut c_void,
            len: b.len() as GoInt,
            cap: b.len() as GoInt,
        }
    }

    /// Any pointer, length and capacity.
    pub fn raw(data: *mut c_void, len: GoInt, cap: GoInt) -> Self {
        GoSlice { data, len, cap }
    }

    /// NULL data with the given length (and the same capacity).
    pub fn null(len: GoInt) -> Self {
        GoSlice {
            data: std::ptr::null_mut(),
            len,
            cap: len,
        }
    }
}

/// `IsValidToSendFun` of the adaptor ABI.
pub type IsValidToSendFun = unsafe extern "C" fn(c_longlong) -> c_int;
/// `SendPbFun` of the adaptor ABI.
pub type SendPbFun = unsafe extern "C" fn(
    *const c_char,
    c_int,
    *const c_char,
    c_int,
    *mut c_char,
    c_int,
    c_int,
) -> c_int;
/// `SendPbV2Fun` of the adaptor ABI.
pub type SendPbV2Fun = unsafe extern "C" fn(
    *const c_char,
    c_int,
    *const c_char,
    c_int,
    *mut c_char,
    c_int,
    c_int,
    *const c_char,
    c_int,
) -> c_int;
/// `PluginCtlCmdFun` of the adaptor ABI.
pub type PluginCtlCmdFun =
    unsafe extern "C" fn(*const c_char, c_int, c_int, *const c_char, c_int) -> c_int;

type RegisterV1 = unsafe extern "C" fn(IsValidToSendFun, SendPbFun, PluginCtlCmdFun);
type RegisterV2 = unsafe extern "C" fn(IsValidToSendFun, SendPbFun, SendPbV2Fun, PluginCtlCmdFun);
/// How a LoongCollector 3.2+ host declares the V2 registration: one argument fewer.
type RegisterV2Loong = unsafe extern "C" fn(IsValidToSendFun, SendPbFun, SendPbV2Fun);
type AdapterVersionFn = unsafe extern "C" fn() -> c_int;

/// `GoInt InitPluginBase(void)`.
pub type InitPluginBaseFn = unsafe extern "C" fn() -> GoInt;
/// `GoInt InitPluginBaseV2(GoString)` and `GoInt LoadGlobalConfig(GoString)`.
pub type StrToIntFn = unsafe extern "C" fn(GoString) -> GoInt;
/// `GoInt LoadConfig(project, logstore, configName, logstoreKey, json)`.
pub type LoadConfigFn =
    unsafe extern "C" fn(GoString, GoString, GoString, GoInt64, GoString) -> GoInt;
/// `GoInt UnloadConfig(project, logstore, configName)`.
pub type UnloadConfigFn = unsafe extern "C" fn(GoString, GoString, GoString) -> GoInt;
/// `void HoldOn(GoInt exitFlag)`.
pub type HoldOnFn = unsafe extern "C" fn(GoInt);
/// `void Resume(void)`.
pub type ResumeFn = unsafe extern "C" fn();
/// `void Stop(GoString configName, GoInt removedFlag)`.
pub type StopFn = unsafe extern "C" fn(GoString, GoInt);
/// `GoInt ProcessRawLog(configName, rawLog, packId, topic)`.
pub type ProcessRawLogFn = unsafe extern "C" fn(GoString, GoSlice, GoString, GoString) -> GoInt;
/// `GoInt ProcessRawLogV2(...)` and `GoInt ProcessLog(...)`: (configName, data, packId, topic, tags).
pub type ProcessWithTagsFn =
    unsafe extern "C" fn(GoString, GoSlice, GoString, GoString, GoSlice) -> GoInt;
/// `GoInt ProcessLogGroup(configName, serializedLogGroup, packId)`.
pub type ProcessLogGroupFn = unsafe extern "C" fn(GoString, GoSlice, GoString) -> GoInt;
/// `void CtlCmd(configName, cmdId, detail)`.
pub type CtlCmdFn = unsafe extern "C" fn(GoString, GoInt, GoString);
/// `struct containerMeta *GetContainerMeta(GoString containerId)`.
pub type GetContainerMetaFn = unsafe extern "C" fn(GoString) -> *mut c_void;
/// `char *CheckConfig(GoString configName, GoString json)` (ours; freed with libc `free`).
pub type CheckConfigFn = unsafe extern "C" fn(GoString, GoString) -> *mut c_char;

/// `GoInt LoadPipeline(project, logstore, configName, logstoreKey, pipelineJson)`.
pub type LoadPipelineFn = LoadConfigFn;
/// `void StopAllPipelines(GoInt)`, `void StopBuiltInModules(void)`.
pub type StopAllFn = unsafe extern "C" fn(GoInt);
/// `void Start(GoString)`.
pub type StartFn = unsafe extern "C" fn(GoString);
/// `InnerPluginMetrics *GetGoMetrics(GoString)`.
pub type GetGoMetricsFn = unsafe extern "C" fn(GoString) -> *mut InnerPluginMetrics;
/// `InnerGoAlarms *GetGoAlarms(void)`.
pub type GetGoAlarmsFn = unsafe extern "C" fn() -> *mut InnerGoAlarms;
/// `char *GetAllContainers(void)`, `char *GetDiffContainers(void)`.
pub type GetTextFn = unsafe extern "C" fn() -> *mut c_char;
/// `PBBuffer GetGoSelfMonitorAlarmsPB(void)`.
pub type GetPbFn = unsafe extern "C" fn() -> PBBuffer;
/// `PBBuffer GetGoSelfMonitorMetricsPB(GoString)`.
pub type GetPbOfFn = unsafe extern "C" fn(GoString) -> PBBuffer;
/// `void FreeSelfMonitorPB(char *)`.
pub type FreePbFn = unsafe extern "C" fn(*mut c_char);

/// The host's declarations of the pulled structures (LoongCollector `LogtailPlugin.h`).
#[allow(missing_docs, non_snake_case)]
#[repr(C)]
pub struct InnerKeyValue {
    pub key: *mut c_char,
    pub value: *mut c_char,
}
#[allow(missing_docs, non_snake_case)]
#[repr(C)]
pub struct InnerPluginMetric {
    pub keyValues: *mut *mut InnerKeyValue,
    pub count: c_int,
}
#[allow(missing_docs)]
#[repr(C)]
pub struct InnerPluginMetrics {
    pub metrics: *mut *mut InnerPluginMetric,
    pub count: c_int,
}
#[allow(missing_docs, non_snake_case)]
#[repr(C)]
pub struct InnerGoAlarm {
    pub alarmType: *mut c_char,
    pub alarmLevel: *mut c_char,
    pub alarmMessage: *mut c_char,
    pub projectName: *mut c_char,
    pub category: *mut c_char,
    pub config: *mut c_char,
    pub count: c_int,
}
#[allow(missing_docs)]
#[repr(C)]
pub struct InnerGoAlarms {
    pub alarms: *mut *mut InnerGoAlarm,
    pub count: c_int,
}
#[allow(missing_docs)]
#[repr(C)]
pub struct PBBuffer {
    pub data: *mut c_char,
    pub size: usize,
}

/// Which host this process plays (chosen before the libraries are loaded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// iLogtail 1.x/2.x: `libPluginAdapter.so` + `libPluginBase.so`, the 4-argument
    /// registration with a command callback.
    Logtail,
    /// LoongCollector 3.2+: `libGoPluginAdapter.so` + `libGoPluginBase.so`, the 3-argument
    /// registration (the command slot is whatever the register holds).
    Loong,
    /// A corp LoongCollector 3.2+ build: as [`Generation::Loong`], with the 1.x file names.
    LoongCorp,
}

static GENERATION: OnceLock<Generation> = OnceLock::new();

/// Makes this process a LoongCollector 3.x host (call before anything loads the libraries).
///
/// # Panics
/// When the libraries were already loaded as another generation.
pub fn play_loongcollector() {
    let g = *GENERATION.get_or_init(|| Generation::Loong);
    assert_ne!(
        g,
        Generation::Logtail,
        "the libraries were loaded as iLogtail 1.x/2.x already"
    );
}

/// Makes this process a corp LoongCollector 3.x host: the 3.x calls on `libPluginAdapter.so`
/// and `libPluginBase.so` (call before anything loads the libraries).
///
/// # Panics
/// When the libraries were already loaded as another host.
pub fn play_loongcollector_corp() {
    let g = *GENERATION.get_or_init(|| Generation::LoongCorp);
    assert_eq!(
        g,
        Generation::LoongCorp,
        "the libraries were loaded as another host already"
    );
}

/// Every base export, resolved once. A missing symbol is `None` and fails the call that needs it.
#[allow(non_snake_case, missing_docs)]
#[derive(Clone, Copy)]
pub struct BaseApi {
    pub InitPluginBase: Option<InitPluginBaseFn>,
    pub InitPluginBaseV2: Option<StrToIntFn>,
    pub LoadGlobalConfig: Option<StrToIntFn>,
    pub LoadConfig: Option<LoadConfigFn>,
    pub UnloadConfig: Option<UnloadConfigFn>,
    pub HoldOn: Option<HoldOnFn>,
    pub Resume: Option<ResumeFn>,
    pub Stop: Option<StopFn>,
    pub ProcessRawLog: Option<ProcessRawLogFn>,
    pub ProcessRawLogV2: Option<ProcessWithTagsFn>,
    pub ProcessLog: Option<ProcessWithTagsFn>,
    pub ProcessLogGroup: Option<ProcessLogGroupFn>,
    pub CtlCmd: Option<CtlCmdFn>,
    pub GetContainerMeta: Option<GetContainerMetaFn>,
    pub CheckConfig: Option<CheckConfigFn>,
    pub LoadPipeline: Option<LoadPipelineFn>,
    pub UnloadPipeline: Option<StrToIntFn>,
    pub Start: Option<StartFn>,
    pub StopAllPipelines: Option<StopAllFn>,
    pub StopBuiltInModules: Option<ResumeFn>,
    pub ProcessPipelineEventGroup: Option<ProcessLogGroupFn>,
    pub GetGoMetrics: Option<GetGoMetricsFn>,
    pub GetPipelineMetrics: Option<unsafe extern "C" fn() -> *mut InnerPluginMetrics>,
    pub GetGoAlarms: Option<GetGoAlarmsFn>,
    pub GetAllContainers: Option<GetTextFn>,
    pub GetDiffContainers: Option<GetTextFn>,
    pub GetGoSelfMonitorAlarmsPB: Option<GetPbFn>,
    pub GetGoSelfMonitorMetricsPB: Option<GetPbOfFn>,
    pub FreeSelfMonitorPB: Option<FreePbFn>,
}

/// The loaded adaptor and base. Lives for the whole process.
pub struct Host {
    /// Directory both libraries were loaded from.
    pub lib_dir: PathBuf,
    /// Resolved base exports.
    pub api: BaseApi,
    /// `PluginAdapterVersion()` of the adaptor, if exported.
    pub adapter_version: Option<i32>,
    /// Whether `RegisterLogtailCallBackV2` was used (else `RegisterLogtailCallBack`).
    pub registered_v2: bool,
    /// The host generation played.
    pub generation: Generation,
    _adaptor: Library,
    _base: Library,
}

static HOST: OnceLock<Host> = OnceLock::new();

/// Loads the libraries like an iLogtail host (once per process) and returns them.
///
/// # Panics
/// When a library cannot be opened or the adaptor has no registration function.
pub fn host() -> &'static Host {
    HOST.get_or_init(|| Host::load(&lib_dir()))
}

fn open(path: &Path) -> Library {
    // SAFETY: opening our own libraries; their initialisers are trusted test subjects.
    unsafe { Library::open(Some(path), libc::RTLD_LAZY | libc::RTLD_LOCAL) }
        .unwrap_or_else(|e| panic!("cannot dlopen {}: {e}", path.display()))
}

fn sym<T: Copy>(lib: &Library, name: &str) -> Option<T> {
    let mut cname = name.as_bytes().to_vec();
    cname.push(0);
    // SAFETY: `T` is the documented C signature of `name`.
    unsafe { lib.get::<T>(&cname) }.ok().map(|s| *s)
}

impl Host {
    fn load(dir: &Path) -> Host {
        // The base logs every alarm (many tests raise them on purpose): into a file, shown
        // only when a test fails.
        crate::engine_log::route(dir);
        let generation = *GENERATION.get_or_init(|| Generation::Logtail);
        let (adaptor_file, base_file) = match generation {
            Generation::Logtail | Generation::LoongCorp => {
                ("libPluginAdapter.so", "libPluginBase.so")
            }
            Generation::Loong => ("libGoPluginAdapter.so", "libGoPluginBase.so"),
        };
        let adaptor = open(&dir.join(adaptor_file));
        let v2: Option<RegisterV2> = sym(&adaptor, "RegisterLogtailCallBackV2");
        let registered_v2 = v2.is_some();
        // SAFETY: the callbacks match the adaptor ABI and live for the whole process.
        unsafe {
            if generation != Generation::Logtail {
                // As a 3.2+ host declares it: three arguments.
                let register: RegisterV2Loong = sym(&adaptor, "RegisterLogtailCallBackV2")
                    .expect("adaptor exports RegisterLogtailCallBackV2");
                register(
                    callbacks::is_valid_to_send,
                    callbacks::send_pb,
                    callbacks::send_pb_v2,
                );
            } else if let Some(register) = v2 {
                register(
                    callbacks::is_valid_to_send,
                    callbacks::send_pb,
                    callbacks::send_pb_v2,
                    callbacks::ctl_cmd,
                );
            } else {
                let register: RegisterV1 = sym(&adaptor, "RegisterLogtailCallBack").expect(
                    "adaptor exports neither RegisterLogtailCallBackV2 nor RegisterLogtailCallBack",
                );
                register(
                    callbacks::is_valid_to_send,
                    callbacks::send_pb,
                    callbacks::ctl_cmd,
                );
            }
        }
        let adapter_version = sym::<AdapterVersionFn>(&adaptor, "PluginAdapterVersion")
            // SAFETY: no arguments, returns an int.
            .map(|f| unsafe { f() });
        let base = open(&dir.join(base_file));
        let api = BaseApi {
            InitPluginBase: sym(&base, "InitPluginBase"),
            InitPluginBaseV2: sym(&base, "InitPluginBaseV2"),
            LoadGlobalConfig: sym(&base, "LoadGlobalConfig"),
            LoadConfig: sym(&base, "LoadConfig"),
            UnloadConfig: sym(&base, "UnloadConfig"),
            HoldOn: sym(&base, "HoldOn"),
            Resume: sym(&base, "Resume"),
            Stop: sym(&base, "Stop"),
            ProcessRawLog: sym(&base, "ProcessRawLog"),
            ProcessRawLogV2: sym(&base, "ProcessRawLogV2"),
            ProcessLog: sym(&base, "ProcessLog"),
            ProcessLogGroup: sym(&base, "ProcessLogGroup"),
            CtlCmd: sym(&base, "CtlCmd"),
            GetContainerMeta: sym(&base, "GetContainerMeta"),
            CheckConfig: sym(&base, "CheckConfig"),
            LoadPipeline: sym(&base, "LoadPipeline"),
            UnloadPipeline: sym(&base, "UnloadPipeline"),
            Start: sym(&base, "Start"),
            StopAllPipelines: sym(&base, "StopAllPipelines"),
            StopBuiltInModules: sym(&base, "StopBuiltInModules"),
            ProcessPipelineEventGroup: sym(&base, "ProcessPipelineEventGroup"),
            GetGoMetrics: sym(&base, "GetGoMetrics"),
            GetPipelineMetrics: sym(&base, "GetPipelineMetrics"),
            GetGoAlarms: sym(&base, "GetGoAlarms"),
            GetAllContainers: sym(&base, "GetAllContainers"),
            GetDiffContainers: sym(&base, "GetDiffContainers"),
            GetGoSelfMonitorAlarmsPB: sym(&base, "GetGoSelfMonitorAlarmsPB"),
            GetGoSelfMonitorMetricsPB: sym(&base, "GetGoSelfMonitorMetricsPB"),
            FreeSelfMonitorPB: sym(&base, "FreeSelfMonitorPB"),
        };
        Host {
            lib_dir: dir.to_path_buf(),
            api,
            adapter_version,
            registered_v2,
            generation,
            _adaptor: adaptor,
            _base: base,
        }
    }
}

/// The base symbol table of the process-wide [`host`].
pub fn api() -> &'static BaseApi {
    &host().api
}

/// Unwraps a symbol of [`BaseApi`] with a readable panic when the base does not export it.
#[macro_export]
macro_rules! export {
    ($name:ident) => {
        $crate::ffi::api()
            .$name
            .unwrap_or_else(|| panic!("libPluginBase.so does not export {}", stringify!($name)))
    };
}
