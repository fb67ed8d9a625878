//! Flusher plugins: one file each.

pub mod null;
pub mod sls;
pub mod stdout;
