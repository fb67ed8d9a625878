//! Input plugins: one file each.

pub mod file;
pub mod metric_mock;
pub mod service_mock;

use crate::event::{config_text, LogEvent};
use bytes::Bytes;
use std::collections::BTreeMap;

/// Converts an options map into reusable `Bytes` pairs (sorted by key for stable output).
pub(crate) fn pairs(map: &BTreeMap<String, String>) -> Vec<(Bytes, Bytes)> {
    map.iter()
        .map(|(k, v)| (config_text(k.as_bytes()), config_text(v.as_bytes())))
        .collect()
}

/// A mock log: the fixed fields plus `Index`.
pub(crate) fn mock_event(time: u32, fields: &[(Bytes, Bytes)], index: u64) -> LogEvent {
    let mut e = LogEvent::new(time);
    e.contents.reserve(fields.len() + 1);
    e.contents.extend(fields.iter().cloned());
    e.set(Bytes::from_static(b"Index"), Bytes::from(index.to_string()));
    e
}
