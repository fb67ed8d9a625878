//! The host's callbacks: their C types and the table that holds them.

use std::ffi::{c_char, c_int, c_longlong};
use std::sync::RwLock;

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

/// The callbacks registered by the host, as one consistent set.
#[derive(Clone, Copy, Default)]
pub(crate) struct Callbacks {
    pub(crate) is_valid_to_send: IsValidToSendFun,
    pub(crate) send_pb: SendPbFun,
    pub(crate) send_pb_v2: SendPbV2Fun,
    pub(crate) ctl_cmd: PluginCtlCmdFun,
}

/// The registered set. Only `Copy` values are stored, so nothing can panic while the lock is
/// held and the lock is never poisoned in practice; a poisoned lock is used as it is anyway.
static CALLBACKS: RwLock<Callbacks> = RwLock::new(Callbacks {
    is_valid_to_send: None,
    send_pb: None,
    send_pb_v2: None,
    ctl_cmd: None,
});

/// Replaces the whole set at once, so a caller never sees half of an old and half of a new set.
pub(crate) fn register(callbacks: Callbacks) {
    *CALLBACKS.write().unwrap_or_else(|e| e.into_inner()) = callbacks;
}

/// Copies the current set out of the lock. Call the host only with the copy, never while
/// holding the lock: the host may re-register or call back into us from inside a callback.
pub(crate) fn current() -> Callbacks {
    *CALLBACKS.read().unwrap_or_else(|e| e.into_inner())
}
