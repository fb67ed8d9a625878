//! The built-in plugins, one file each under the folder of their kind. Each file has an
//! options struct (`serde`, `deny_unknown_fields`, iLogtail option names) and a `build`
//! function; [`crate::registry`] lists them.

pub mod aggregators;
pub mod flushers;
pub mod inputs;
pub mod processors;
