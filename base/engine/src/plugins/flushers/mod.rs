//! Flusher plugins: one file each.

pub mod file;
pub mod forward;
pub mod http;
// Used by flusher_forward and flusher_syslog.
#[allow(dead_code)]
pub(crate) mod net;
pub mod null;
pub mod sls;
pub mod stdout;
pub(crate) mod template;
