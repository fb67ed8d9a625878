//! `libPluginAdapter.so`: the small library between an iLogtail host and the plugin base.
//!
//! The host loads this library first and registers its callbacks with
//! [`RegisterLogtailCallBackV2`] (or [`RegisterLogtailCallBack`]). The base later reaches the
//! same loaded copy and calls the `Logtail*` functions, which forward to the host's callbacks.
//! Each `Logtail*` function returns `-1` while its callback is not registered.
//!
//! Thread safety: every export may be called from any thread at any time, including
//! re-registration while calls are in flight. Callback pointers are copied out of their lock
//! before the host is called, so a callback may itself call back into this library.
//!
//! No panic crosses the C boundary: every export runs inside [`panic::ffi_boundary`].
#![allow(non_snake_case)]
#![warn(missing_docs, unreachable_pub, unsafe_op_in_unsafe_fn, unused_must_use)]

mod callbacks;
mod exports;
mod panic;

pub use callbacks::{IsValidToSendFun, PluginCtlCmdFun, SendPbFun, SendPbV2Fun};
pub use exports::{
    LogtailCtlCmd, LogtailIsValidToSend, LogtailSendPb, LogtailSendPbV2, PluginAdapterTrustCtlCmd,
    PluginAdapterVersion, RegisterLogtailCallBack, RegisterLogtailCallBackV2,
    PLUGIN_ADAPTER_VERSION,
};

#[cfg(test)]
mod tests;
