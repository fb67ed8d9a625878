//! The C functions of `libPluginAdapter.so`.
//!
//! The host calls the two `Register*` functions; the base calls the `Logtail*` functions.

use std::ffi::{c_char, c_int, c_longlong};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::callbacks::{
    self, Callbacks, IsValidToSendFun, PluginCtlCmdFun, SendPbFun, SendPbV2Fun,
};
use crate::panic::ffi_boundary;

/// What [`PluginAdapterVersion`] returns: 300 means "supports `LogtailSendPbV2`".
pub const PLUGIN_ADAPTER_VERSION: c_int = 300;

/// What every `Logtail*` function returns when its callback is not registered (or on an
/// internal failure).
const NOT_REGISTERED: c_int = -1;

/// Returns the adaptor's version: 300, meaning `LogtailSendPbV2` is supported.
#[no_mangle]
pub extern "C" fn PluginAdapterVersion() -> c_int {
    PLUGIN_ADAPTER_VERSION
}

/// Registers the host's callbacks (first generation, without a shard-hash send).
///
/// LoongCollector 3.2+ hosts pass two arguments: `cmdFun` is then garbage, kept but never
/// called (see [`PluginAdapterTrustCtlCmd`]).
///
/// Replaces the whole set registered before, including any `SendPbV2Fun`, which is cleared:
/// `LogtailSendPbV2` then falls back to `sendFun`. Any pointer may be NULL ("not registered").
/// May be called at any time, from any thread, also while other threads are inside a
/// `Logtail*` call (those finish with the callbacks they started with).
#[no_mangle]
pub extern "C" fn RegisterLogtailCallBack(
    checkFun: IsValidToSendFun,
    sendFun: SendPbFun,
    cmdFun: PluginCtlCmdFun,
) {
    ffi_boundary((), || {
        callbacks::register(Callbacks {
            is_valid_to_send: checkFun,
            send_pb: sendFun,
            send_pb_v2: None,
            ctl_cmd: cmdFun,
        })
    })
}

/// Registers the host's callbacks, including the send with a shard hash.
///
/// LoongCollector 3.2+ hosts pass three arguments: `cmdFun` is then garbage, kept but never
/// called (see [`PluginAdapterTrustCtlCmd`]).
///
/// Replaces the whole set registered before. Any pointer may be NULL ("not registered"); with
/// `sendV2Fun` NULL, `LogtailSendPbV2` falls back to `sendFun`. May be called at any time, from
/// any thread, also while other threads are inside a `Logtail*` call.
#[no_mangle]
pub extern "C" fn RegisterLogtailCallBackV2(
    checkFun: IsValidToSendFun,
    sendFun: SendPbFun,
    sendV2Fun: SendPbV2Fun,
    cmdFun: PluginCtlCmdFun,
) {
    ffi_boundary((), || {
        callbacks::register(Callbacks {
            is_valid_to_send: checkFun,
            send_pb: sendFun,
            send_pb_v2: sendV2Fun,
            ctl_cmd: cmdFun,
        })
    })
}

/// Asks the host whether the send queue of `logstoreKey` can take more data.
///
/// Returns the host's answer (`0` = can take more), or `-1` when no callback is registered.
#[no_mangle]
pub extern "C" fn LogtailIsValidToSend(logstoreKey: c_longlong) -> c_int {
    ffi_boundary(NOT_REGISTERED, || {
        match callbacks::current().is_valid_to_send {
            // SAFETY: the host registered this function for exactly this signature.
            Some(check) => unsafe { check(logstoreKey) },
            None => NOT_REGISTERED,
        }
    })
}

/// Hands one serialized `LogGroup` protobuf of `lines` logs to the host.
///
/// Returns the host's answer (`0` accepted, `-1` could not queue, `-2` unknown config), or `-1`
/// when no send callback is registered. The host may block while its queue is full.
///
/// # Safety
///
/// Each pointer must be valid for its size in bytes (or the size 0) for the whole call; the
/// buffers are passed to the host unchanged and only borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn LogtailSendPb(
    configName: *const c_char,
    configNameSize: c_int,
    logstore: *const c_char,
    logstoreSize: c_int,
    pbBuffer: *mut c_char,
    pbSize: c_int,
    lines: c_int,
) -> c_int {
    ffi_boundary(NOT_REGISTERED, || match callbacks::current().send_pb {
        // SAFETY: the host registered this function for exactly this signature; the caller
        // vouches for the pointers, which are passed on unchanged.
        Some(send) => unsafe {
            send(
                configName,
                configNameSize,
                logstore,
                logstoreSize,
                pbBuffer,
                pbSize,
                lines,
            )
        },
        None => NOT_REGISTERED,
    })
}

/// Like `LogtailSendPb`, plus the group's shard hash (may be empty).
///
/// Uses the host's `SendPbV2Fun`; when only a `SendPbFun` is registered, falls back to it and
/// drops the hash. Returns `-1` when neither is registered.
///
/// # Safety
///
/// As for `LogtailSendPb`; `shardHash` must be valid for `shardHashSize` bytes (or the size 0).
#[no_mangle]
pub unsafe extern "C" fn LogtailSendPbV2(
    configName: *const c_char,
    configNameSize: c_int,
    logstore: *const c_char,
    logstoreSize: c_int,
    pbBuffer: *mut c_char,
    pbSize: c_int,
    lines: c_int,
    shardHash: *const c_char,
    shardHashSize: c_int,
) -> c_int {
    ffi_boundary(NOT_REGISTERED, || {
        let registered = callbacks::current();
        // SAFETY: the host registered these functions for exactly these signatures; the caller
        // vouches for the pointers, which are passed on unchanged.
        unsafe {
            match (registered.send_pb_v2, registered.send_pb) {
                (Some(send_v2), _) => send_v2(
                    configName,
                    configNameSize,
                    logstore,
                    logstoreSize,
                    pbBuffer,
                    pbSize,
                    lines,
                    shardHash,
                    shardHashSize,
                ),
                (None, Some(send)) => send(
                    configName,
                    configNameSize,
                    logstore,
                    logstoreSize,
                    pbBuffer,
                    pbSize,
                    lines,
                ),
                (None, None) => NOT_REGISTERED,
            }
        }
    })
}

/// Whether the host's generation passes a command callback (see [`PluginAdapterTrustCtlCmd`]).
static CTL_CMD_TRUSTED: AtomicBool = AtomicBool::new(false);

/// Tells the adaptor whether the host in use passes the command callback, so that
/// [`LogtailCtlCmd`] may call it (`trusted != 0`) or must not (`0`, the default).
///
/// iLogtail 1.x/2.x and LoongCollector 3.0–3.1 register `cmdFun`; LoongCollector 3.2+ calls
/// the same `Register*` functions with one argument fewer, and what arrives as `cmdFun` is
/// whatever the register held (on x86-64 and AArch64 alike): calling it would jump anywhere.
/// Only the base can tell the generations apart (by the host's first config call), so it says
/// so here; until then, and for 3.x hosts, the command callback is never called.
#[no_mangle]
pub extern "C" fn PluginAdapterTrustCtlCmd(trusted: c_int) {
    CTL_CMD_TRUSTED.store(trusted != 0, Ordering::SeqCst);
}

/// Passes a plugin command to the host (container file collection: `optId` 1 update file,
/// 2 remove file, 3 update all, 4 stop file).
///
/// Returns the host's answer, or `-1` when no command callback is registered or the host's
/// generation is not known to pass one ([`PluginAdapterTrustCtlCmd`]).
///
/// # Safety
///
/// `configName` and `params` must be valid for their sizes in bytes (or the size 0) for the
/// whole call.
#[no_mangle]
pub unsafe extern "C" fn LogtailCtlCmd(
    configName: *const c_char,
    configNameSize: c_int,
    optId: c_int,
    params: *const c_char,
    paramsLen: c_int,
) -> c_int {
    if !CTL_CMD_TRUSTED.load(Ordering::SeqCst) {
        return NOT_REGISTERED;
    }
    ffi_boundary(NOT_REGISTERED, || match callbacks::current().ctl_cmd {
        // SAFETY: the host registered this function for exactly this signature; the caller
        // vouches for the pointers, which are passed on unchanged.
        Some(cmd) => unsafe { cmd(configName, configNameSize, optId, params, paramsLen) },
        None => NOT_REGISTERED,
    })
}
