//! Wrappers over every base export.
//!
//! The safe functions take `&str` / `&[u8]` and borrow them for the call only, as a host does.
//! The [`raw`] module takes [`GoString`] / [`GoSlice`] values built from any pointer and
//! length, so tests can pass NULL with a length, negative lengths and so on.

use std::ffi::CStr;

use crate::export;
use crate::ffi::{GoSlice, GoString};

/// Unsafe pass-through calls with raw Go values.
///
/// # Safety
/// Every function forwards its arguments unchanged. Pointers that are non-NULL must be
/// valid for the given length when the length is positive; the point of these functions is
/// to hand the base NULL pointers and nonsense lengths that it must reject.
#[allow(missing_docs)]
pub mod raw {
    use std::ffi::{c_char, c_void};

    use crate::export;
    use crate::ffi::{GoInt, GoInt64, GoSlice, GoString};

    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn init_plugin_base_v2(json: GoString) -> GoInt {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(InitPluginBaseV2)(json) }
    }

    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn load_global_config(json: GoString) -> GoInt {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(LoadGlobalConfig)(json) }
    }

    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn load_config(
        project: GoString,
        logstore: GoString,
        config_name: GoString,
        logstore_key: GoInt64,
        json: GoString,
    ) -> GoInt {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(LoadConfig)(project, logstore, config_name, logstore_key, json) }
    }

    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn unload_config(project: GoString, logstore: GoString, name: GoString) -> GoInt {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(UnloadConfig)(project, logstore, name) }
    }

    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn stop(config_name: GoString, removed_flag: GoInt) {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(Stop)(config_name, removed_flag) }
    }

    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn process_raw_log(
        config_name: GoString,
        raw_log: GoSlice,
        pack_id: GoString,
        topic: GoString,
    ) -> GoInt {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(ProcessRawLog)(config_name, raw_log, pack_id, topic) }
    }

    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn process_raw_log_v2(
        config_name: GoString,
        raw_log: GoSlice,
        pack_id: GoString,
        topic: GoString,
        tags: GoSlice,
    ) -> GoInt {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(ProcessRawLogV2)(config_name, raw_log, pack_id, topic, tags) }
    }

    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn process_log(
        config_name: GoString,
        log: GoSlice,
        pack_id: GoString,
        topic: GoString,
        tags: GoSlice,
    ) -> GoInt {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(ProcessLog)(config_name, log, pack_id, topic, tags) }
    }

    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn process_log_group(
        config_name: GoString,
        log_group: GoSlice,
        pack_id: GoString,
    ) -> GoInt {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(ProcessLogGroup)(config_name, log_group, pack_id) }
    }

    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn ctl_cmd(config_name: GoString, cmd_id: GoInt, detail: GoString) {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(CtlCmd)(config_name, cmd_id, detail) }
    }

    /// Returns the raw pointer; the caller decides whether to free it (see [`super::get_container_meta_is_null`]).
    ///
    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn get_container_meta(container_id: GoString) -> *mut c_void {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(GetContainerMeta)(container_id) }
    }

    /// Returns the raw message pointer (NULL = valid); free it with `libc::free`.
    ///
    /// # Safety
    /// See the [module docs](self).
    pub unsafe fn check_config(config_name: GoString, json: GoString) -> *mut c_char {
        // SAFETY: forwarded per the module contract.
        unsafe { export!(CheckConfig)(config_name, json) }
    }
}

/// `InitPluginBase()`.
pub fn init_plugin_base() -> i64 {
    // SAFETY: no arguments.
    unsafe { export!(InitPluginBase)() }
}

/// `InitPluginBaseV2(json)`.
pub fn init_plugin_base_v2(json: &str) -> i64 {
    // SAFETY: `json` outlives the call.
    unsafe { raw::init_plugin_base_v2(GoString::new(json)) }
}

/// `LoadGlobalConfig(json)`.
pub fn load_global_config(json: &str) -> i64 {
    // SAFETY: `json` outlives the call.
    unsafe { raw::load_global_config(GoString::new(json)) }
}

/// `LoadConfig(project, logstore, configName, logstoreKey, json)`: 0 ok, 1 error.
pub fn load_config(project: &str, logstore: &str, name: &str, key: i64, json: &str) -> i64 {
    // SAFETY: all borrowed values outlive the call.
    unsafe {
        raw::load_config(
            GoString::new(project),
            GoString::new(logstore),
            GoString::new(name),
            key,
            GoString::new(json),
        )
    }
}

/// `UnloadConfig(project, logstore, configName)`.
pub fn unload_config(project: &str, logstore: &str, name: &str) -> i64 {
    // SAFETY: all borrowed values outlive the call.
    unsafe {
        raw::unload_config(
            GoString::new(project),
            GoString::new(logstore),
            GoString::new(name),
        )
    }
}

/// `HoldOn(exitFlag)`; may block. See [`crate::session::hold_on_bounded`] for a version with a deadline.
pub fn hold_on(exit_flag: i64) {
    // SAFETY: plain integer argument.
    unsafe { export!(HoldOn)(exit_flag) }
}

/// `Resume()`.
pub fn resume() {
    // SAFETY: no arguments.
    unsafe { export!(Resume)() }
}

/// `Stop(configName, removedFlag)`.
pub fn stop(name: &str, removed_flag: i64) {
    // SAFETY: `name` outlives the call.
    unsafe { raw::stop(GoString::new(name), removed_flag) }
}

/// `ProcessRawLog(configName, rawLog, packId, topic)`: 0 ok.
pub fn process_raw_log(name: &str, raw_log: &[u8], pack_id: &str, topic: &str) -> i64 {
    // SAFETY: all borrowed values outlive the call.
    unsafe {
        raw::process_raw_log(
            GoString::new(name),
            GoSlice::from_bytes(raw_log),
            GoString::new(pack_id),
            GoString::new(topic),
        )
    }
}

/// `ProcessRawLogV2(configName, rawLog, packId, topic, tags)`: 0 ok. Tags are `k~=~v^^^k2~=~v2`.
pub fn process_raw_log_v2(
    name: &str,
    raw_log: &[u8],
    pack_id: &str,
    topic: &str,
    tags: &[u8],
) -> i64 {
    // SAFETY: all borrowed values outlive the call.
    unsafe {
        raw::process_raw_log_v2(
            GoString::new(name),
            GoSlice::from_bytes(raw_log),
            GoString::new(pack_id),
            GoString::new(topic),
            GoSlice::from_bytes(tags),
        )
    }
}

/// `ProcessLog(configName, serializedLog, packId, topic, tags)`: 0 ok.
pub fn process_log(name: &str, log: &[u8], pack_id: &str, topic: &str, tags: &[u8]) -> i64 {
    // SAFETY: all borrowed values outlive the call.
    unsafe {
        raw::process_log(
            GoString::new(name),
            GoSlice::from_bytes(log),
            GoString::new(pack_id),
            GoString::new(topic),
            GoSlice::from_bytes(tags),
        )
    }
}

/// `ProcessLogGroup(configName, serializedLogGroup, packId)`: 0 ok.
pub fn process_log_group(name: &str, log_group: &[u8], pack_id: &str) -> i64 {
    // SAFETY: all borrowed values outlive the call.
    unsafe {
        raw::process_log_group(
            GoString::new(name),
            GoSlice::from_bytes(log_group),
            GoString::new(pack_id),
        )
    }
}

/// `CtlCmd(configName, cmdId, detail)`.
pub fn ctl_cmd(name: &str, cmd_id: i64, detail: &str) {
    // SAFETY: all borrowed values outlive the call.
    unsafe { raw::ctl_cmd(GoString::new(name), cmd_id, GoString::new(detail)) }
}

/// `GetContainerMeta(containerId) == NULL`. A non-NULL result is leaked (its layout is
/// the host's `containerMeta`, which these tests never need to read).
pub fn get_container_meta_is_null(container_id: GoString) -> bool {
    // SAFETY: raw pass-through; the tests build `container_id` deliberately.
    unsafe { raw::get_container_meta(container_id) }.is_null()
}

/// `CheckConfig(configName, json)`: `None` when valid, else the error text (freed here with libc `free`).
pub fn check_config(name: &str, json: &str) -> Option<String> {
    // SAFETY: both strings outlive the call.
    unsafe { check_config_raw(GoString::new(name), GoString::new(json)) }
}

/// `CheckConfig` with raw Go strings; frees the returned text with libc `free`.
///
/// # Safety
/// Same as [`raw`]: non-NULL pointers must be valid for positive lengths.
pub unsafe fn check_config_raw(name: GoString, json: GoString) -> Option<String> {
    // SAFETY: forwarded per the caller's contract.
    let p = unsafe { raw::check_config(name, json) };
    if p.is_null() {
        return None;
    }
    // SAFETY: the ABI says the result is a malloc'd NUL-terminated string owned by the caller.
    let text = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: allocated with libc malloc by the base, freed exactly once.
    unsafe { libc::free(p.cast()) };
    Some(text)
}
