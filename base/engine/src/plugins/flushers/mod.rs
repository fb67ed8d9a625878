//! Flusher plugins: one file each.

pub mod file;
pub mod http;
pub mod kafka;
pub mod null;
pub mod sls;
pub mod stdout;
pub(crate) mod template;
