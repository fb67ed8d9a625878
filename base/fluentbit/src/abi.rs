//! The C types of Fluent Bit's external ("Go proxy") plugin interface, x86_64 layout
//! (see include/ABI.md, "Fluent Bit plugins").
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

/// The call failed: the chunk is dropped (output) or the call is an error.
pub const FLB_ERROR: c_int = 0;
/// Done.
pub const FLB_OK: c_int = 1;
/// Try the same chunk again later.
pub const FLB_RETRY: c_int = 2;

/// `flb_plugin_proxy_def.type` of an input plugin.
pub const TYPE_INPUT: c_int = 1;
/// `flb_plugin_proxy_def.type` of an output plugin.
pub const TYPE_OUTPUT: c_int = 2;
/// `flb_plugin_proxy_def.proxy`: the Go proxy, the one external plugins use.
pub const PROXY_GOLANG: c_int = 11;

/// Log levels of `log_print` (and of the `*_log_check` calls).
pub const LOG_ERROR: c_int = 1;
/// Warning.
pub const LOG_WARN: c_int = 2;
/// Info.
pub const LOG_INFO: c_int = 3;
/// Debug.
pub const LOG_DEBUG: c_int = 4;
/// Trace.
pub const LOG_TRACE: c_int = 5;

/// What `FLBPluginRegister` fills (48 bytes; zeroed by Fluent Bit).
#[repr(C)]
#[derive(Debug)]
pub struct flb_plugin_proxy_def {
    /// [`TYPE_INPUT`] or [`TYPE_OUTPUT`].
    pub type_: c_int,
    /// [`PROXY_GOLANG`].
    pub proxy: c_int,
    /// 0.
    pub flags: c_int,
    /// Copied by Fluent Bit.
    pub name: *mut c_char,
    /// Kept by Fluent Bit: must stay valid.
    pub description: *mut c_char,
    /// 0 (logs).
    pub event_type: c_int,
    /// NULL: any property is accepted.
    pub config_map: *mut c_void,
}

/// `log_print(level, file, line, fmt, ...)`: printf-style.
pub type LogPrintFn = unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, ...);
/// `*_get_property(key, ins)`: a string owned by Fluent Bit, or NULL.
pub type GetPropertyFn = unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char;
/// `*_log_check(ins, level)`: non-zero when `level` is logged for the instance.
pub type LogCheckFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;

/// The host's API table (72 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct flb_api {
    /// Property of an output instance.
    pub output_get_property: Option<GetPropertyFn>,
    /// Property of an input instance.
    pub input_get_property: Option<GetPropertyFn>,
    /// The output instance's cmetrics context.
    pub output_get_cmt_instance: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    /// The input instance's cmetrics context.
    pub input_get_cmt_instance: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    /// Writes a log line through Fluent Bit's logger.
    pub log_print: Option<LogPrintFn>,
    /// Whether an input instance logs `level`.
    pub input_log_check: Option<LogCheckFn>,
    /// Whether an output instance logs `level`.
    pub output_log_check: Option<LogCheckFn>,
    /// Property of a custom instance.
    pub custom_get_property: Option<GetPropertyFn>,
    /// Whether a custom instance logs `level`.
    pub custom_log_check: Option<LogCheckFn>,
}

/// An output instance's context: `remote_context` is ours.
#[repr(C)]
#[derive(Debug)]
pub struct flb_plugin_proxy_context {
    /// Set by `FLBPluginInit`, handed back to every `*Ctx` call.
    pub remote_context: *mut c_void,
    /// Fluent Bit's.
    pub proxy: *mut c_void,
}

/// An input instance's context: `remote_context` (offset 8) is ours.
#[repr(C)]
#[derive(Debug)]
pub struct flb_plugin_input_proxy_context {
    /// Fluent Bit's collector.
    pub coll_fd: c_int,
    /// Set by `FLBPluginInit`.
    pub remote_context: *mut c_void,
    /// Fluent Bit's.
    pub proxy: *mut c_void,
}

/// What `FLBPluginInit` gets for an output instance (the same struct for every instance,
/// its `o_ins` and `context` overwritten before each call).
#[repr(C)]
#[derive(Debug)]
pub struct flbgo_output_plugin {
    /// The plugin's name.
    pub name: *mut c_char,
    /// The host's API.
    pub api: *mut flb_api,
    /// The instance.
    pub o_ins: *mut c_void,
    /// Its proxy context.
    pub context: *mut flb_plugin_proxy_context,
}

/// What `FLBPluginInit` gets for an input instance.
#[repr(C)]
#[derive(Debug)]
pub struct flbgo_input_plugin {
    /// The plugin's name.
    pub name: *mut c_char,
    /// The host's API.
    pub api: *mut flb_api,
    /// The instance.
    pub i_ins: *mut c_void,
    /// Its proxy context.
    pub context: *mut flb_plugin_input_proxy_context,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts_match_fluent_bit_on_x86_64() {
        assert_eq!(size_of::<flb_plugin_proxy_def>(), 48);
        assert_eq!(offset_of!(flb_plugin_proxy_def, name), 16);
        assert_eq!(offset_of!(flb_plugin_proxy_def, description), 24);
        assert_eq!(offset_of!(flb_plugin_proxy_def, event_type), 32);
        assert_eq!(offset_of!(flb_plugin_proxy_def, config_map), 40);
        assert_eq!(size_of::<flb_api>(), 72);
        assert_eq!(offset_of!(flb_api, log_print), 32);
        assert_eq!(offset_of!(flb_api, output_log_check), 48);
        assert_eq!(offset_of!(flbgo_output_plugin, context), 24);
        assert_eq!(
            offset_of!(flb_plugin_input_proxy_context, remote_context),
            8
        );
    }
}
