//! Flusher plugins: one file each.

pub mod file;
pub mod http;
// Used by flusher_forward and flusher_syslog, which land next.
#[allow(dead_code)]
pub(crate) mod net;
pub mod null;
pub mod sls;
pub mod stdout;
pub mod syslog;
pub(crate) mod template;
