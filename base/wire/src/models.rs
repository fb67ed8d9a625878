//! LoongCollector's `logtail.models` protobuf (proto3, `protobuf_public/models/*.proto`): the
//! `PipelineEventGroup` a 3.x host hands to `ProcessPipelineEventGroup`, and that the
//! self-monitoring `*PB` exports return.

use std::collections::HashMap;

/// `message PipelineEventGroup`
#[derive(Clone, PartialEq, prost::Message)]
pub struct PipelineEventGroup {
    /// Group metadata; keys are the decimal ordinals of the host's `EventGroupMetaKey`.
    #[prost(map = "string, bytes", tag = "1")]
    pub metadata: HashMap<String, Vec<u8>>,
    /// Group tags (`__topic__` included).
    #[prost(map = "string, bytes", tag = "2")]
    pub tags: HashMap<String, Vec<u8>>,
    /// The events, all of one type.
    #[prost(oneof = "PipelineEvents", tags = "3, 4, 5")]
    pub events: Option<PipelineEvents>,
}

/// `oneof PipelineEvents`
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PipelineEvents {
    /// Log events.
    #[prost(message, tag = "3")]
    Logs(LogEvents),
    /// Metric events.
    #[prost(message, tag = "4")]
    Metrics(MetricEvents),
    /// Span events.
    #[prost(message, tag = "5")]
    Spans(SpanEvents),
}

/// `message LogEvents`
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogEvents {
    /// The logs.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<LogEvent>,
}

/// `message MetricEvents`
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricEvents {
    /// The metrics.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<MetricEvent>,
}

/// `message SpanEvents`: only counted (spans have no log layout here); the fields are not
/// decoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanEvents {
    /// The spans.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<SpanEvent>,
}

/// `message SpanEvent`, fields skipped.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanEvent {
    /// Nanoseconds since the epoch.
    #[prost(uint64, tag = "1")]
    pub timestamp: u64,
}

/// `message LogEvent.Content`. Decoded from a `Bytes` buffer, key and value are slices of it
/// (no copy).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Content {
    /// Field name.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: prost::bytes::Bytes,
    /// Field value.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: prost::bytes::Bytes,
}

/// `message LogEvent`
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogEvent {
    /// Nanoseconds since the epoch (0: none).
    #[prost(uint64, tag = "1")]
    pub timestamp: u64,
    /// Contents in order.
    #[prost(message, repeated, tag = "2")]
    pub contents: Vec<Content>,
    /// Level.
    #[prost(bytes = "vec", tag = "3")]
    pub level: Vec<u8>,
    /// Offset in the file it was read from.
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    /// Size before parsing.
    #[prost(uint64, tag = "5")]
    pub raw_size: u64,
}

/// `enum UntypedValueMetricType`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum UntypedValueMetricType {
    /// A counter.
    MetricTypeCounter = 0,
    /// A gauge.
    MetricTypeGauge = 1,
}

/// `message UntypedSingleValue`
#[derive(Clone, PartialEq, prost::Message)]
pub struct UntypedSingleValue {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// `message UntypedMultiDoubleValue`
#[derive(Clone, PartialEq, prost::Message)]
pub struct UntypedMultiDoubleValue {
    /// Counter or gauge.
    #[prost(enumeration = "UntypedValueMetricType", tag = "1")]
    pub metric_type: i32,
    /// The value.
    #[prost(double, tag = "2")]
    pub value: f64,
}

/// `message UntypedMultiDoubleValues`
#[derive(Clone, PartialEq, prost::Message)]
pub struct UntypedMultiDoubleValues {
    /// Values by name.
    #[prost(map = "string, message", tag = "1")]
    pub values: HashMap<String, UntypedMultiDoubleValue>,
}

/// `oneof Value` of a metric.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MetricValue {
    /// One value.
    #[prost(message, tag = "4")]
    UntypedSingleValue(UntypedSingleValue),
    /// Several named values.
    #[prost(message, tag = "6")]
    UntypedMultiDoubleValues(UntypedMultiDoubleValues),
}

/// `message MetricEvent`
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricEvent {
    /// Nanoseconds since the epoch.
    #[prost(uint64, tag = "1")]
    pub timestamp: u64,
    /// Metric name.
    #[prost(bytes = "vec", tag = "2")]
    pub name: Vec<u8>,
    /// Labels.
    #[prost(map = "string, bytes", tag = "3")]
    pub tags: HashMap<String, Vec<u8>>,
    /// The value(s).
    #[prost(oneof = "MetricValue", tags = "4, 6")]
    pub value: Option<MetricValue>,
    /// Metadata.
    #[prost(map = "string, bytes", tag = "5")]
    pub metadata: HashMap<String, Vec<u8>>,
}
