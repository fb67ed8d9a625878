//! What a plugin file needs: `use crate::api::prelude::*;`.

pub use super::{
    parse_detail, Aggregator, AlarmType, BoxFuture, Chunk, ChunkKey, Commit, DetailError,
    FlushError, Flusher, HostQueue, Input, InputIo, Level, MetricInput, Output, Payload,
    PluginContext, Processor, ServiceInput, WriteError,
};
pub use crate::encode::Format;
pub use crate::event::{config_text, now, EventGroup, LogEvent};
pub use bytes::Bytes;
pub use serde::Deserialize;
pub use serde_json::Value;
