//! Processor plugins: one file each.

pub mod add_fields;
pub mod default;
pub mod drop;
#[cfg(feature = "test-plugins")]
pub mod test_panic;
