//! Flusher plugins: one file each.

pub mod file;
pub mod forward;
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
pub(crate) mod net;
pub mod null;
pub mod otlp;
pub mod sls;
pub mod stdout;
pub mod syslog;
pub(crate) mod template;
