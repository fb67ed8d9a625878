//! The C types of the callbacks an iLogtail host registers on `libPluginAdapter.so`
//! (`RegisterLogtailCallBack[V2]`), and of the adaptor's forwarding functions the base calls.
//! `None` is a NULL pointer: "not registered".
#![allow(non_snake_case)] // the C parameter names

use std::ffi::{c_char, c_int, c_longlong};

/// Asks the host whether the send queue of `logstoreKey` can take more data.
/// Returns `0` when it can; key `-1` is always valid. NULL means "not registered".
pub type IsValidToSendFun = Option<unsafe extern "C" fn(logstoreKey: c_longlong) -> c_int>;

/// Hands one serialized `LogGroup` protobuf to the host.
///
/// Returns `0` when the host accepted (copied) the buffer, `-1` when it could not queue it,
/// `-2` when the config is unknown to the host. The host may block while its queue is full.
/// Every pointer is borrowed for the call only. NULL means "not registered".
pub type SendPbFun = Option<
    unsafe extern "C" fn(
        configName: *const c_char,
        configNameSize: c_int,
        logstore: *const c_char,
        logstoreSize: c_int,
        pbBuffer: *mut c_char,
        pbSize: c_int,
        lines: c_int,
    ) -> c_int,
>;

/// Like [`SendPbFun`], plus the shard hash of the group (`__shardhash__`), which may be empty.
/// NULL means "not registered".
pub type SendPbV2Fun = Option<
    unsafe extern "C" fn(
        configName: *const c_char,
        configNameSize: c_int,
        logstore: *const c_char,
        logstoreSize: c_int,
        pbBuffer: *mut c_char,
        pbSize: c_int,
        lines: c_int,
        shardHash: *const c_char,
        shardHashSize: c_int,
    ) -> c_int,
>;

/// Passes a plugin command to the host (container file collection: 1 update file,
/// 2 remove file, 3 update all, 4 stop file). NULL means "not registered".
pub type PluginCtlCmdFun = Option<
    unsafe extern "C" fn(
        configName: *const c_char,
        configNameSize: c_int,
        optId: c_int,
        params: *const c_char,
        paramsLen: c_int,
    ) -> c_int,
>;

/// `RegisterLogtailCallBackV2` (adaptor export).
pub type RegisterV2Fn =
    unsafe extern "C" fn(IsValidToSendFun, SendPbFun, SendPbV2Fun, PluginCtlCmdFun);
/// `RegisterLogtailCallBack` (adaptor export).
pub type RegisterV1Fn = unsafe extern "C" fn(IsValidToSendFun, SendPbFun, PluginCtlCmdFun);
/// `PluginAdapterVersion` (adaptor export).
pub type VersionFn = unsafe extern "C" fn() -> c_int;
