//! Flusher plugins: one file each.

pub mod sls;
pub mod stdout;
