//! The host's callbacks: their C types and the table that holds them.

use std::sync::RwLock;

pub use wire::callbacks::{IsValidToSendFun, PluginCtlCmdFun, SendPbFun, SendPbV2Fun};

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
