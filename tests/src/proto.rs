//! `sls_logs.proto` (proto2) messages, written with prost derive, plus small builders.

use prost::Message;

/// `message Content { required string Key = 1; required string Value = 2; }`
#[derive(Clone, PartialEq, Message)]
pub struct Content {
    /// Field name.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Field value.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `message Log { required uint32 Time = 1; repeated Content Contents = 2; repeated string Values = 3; optional fixed32 Time_ns = 4; }`
#[derive(Clone, PartialEq, Message)]
pub struct Log {
    /// Seconds since the epoch.
    #[prost(uint32, required, tag = "1")]
    pub time: u32,
    /// Key/value fields.
    #[prost(message, repeated, tag = "2")]
    pub contents: Vec<Content>,
    /// Value-only fields (unused by these tests).
    #[prost(string, repeated, tag = "3")]
    pub values: Vec<String>,
    /// Nanosecond part of the time.
    #[prost(fixed32, optional, tag = "4")]
    pub time_ns: Option<u32>,
}

/// `message LogTag { required string Key = 1; required string Value = 2; }`
#[derive(Clone, PartialEq, Message)]
pub struct LogTag {
    /// Tag name.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Tag value.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `message LogGroup { ... }`
#[derive(Clone, PartialEq, Message)]
pub struct LogGroup {
    /// The logs.
    #[prost(message, repeated, tag = "1")]
    pub logs: Vec<Log>,
    /// The logstore.
    #[prost(string, optional, tag = "2")]
    pub category: Option<String>,
    /// The topic.
    #[prost(string, optional, tag = "3")]
    pub topic: Option<String>,
    /// The source (host IP).
    #[prost(string, optional, tag = "4")]
    pub source: Option<String>,
    /// Machine UUID.
    #[prost(string, optional, tag = "5")]
    pub machine_uuid: Option<String>,
    /// Group tags; the base puts `__pack_id__` last.
    #[prost(message, repeated, tag = "6")]
    pub log_tags: Vec<LogTag>,
}

/// Builds a log with the given time and fields.
pub fn log(time: u32, fields: &[(&str, &str)]) -> Log {
    Log {
        time,
        contents: fields
            .iter()
            .map(|(k, v)| Content {
                key: (*k).to_owned(),
                value: (*v).to_owned(),
            })
            .collect(),
        values: Vec::new(),
        time_ns: None,
    }
}

/// Seconds since the epoch, as the `Time` of a log.
pub fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}
