//! Aggregator plugins: one file each.

pub mod default;
