//! `sls_logs.proto` (proto2): the `LogGroup` carried by SendPb and `ProcessLog[Group]`, as
//! prost messages (the engine's hot paths decode and encode it without them, see
//! `engine::proto`; these describe the format and are what tools decode with).

/// `message Content { required string Key = 1; required string Value = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Content {
    /// Field name.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Field value.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `message Log`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Log {
    /// Seconds since the epoch.
    #[prost(uint32, required, tag = "1")]
    pub time: u32,
    /// Key/value contents.
    #[prost(message, repeated, tag = "2")]
    pub contents: Vec<Content>,
    /// Values without keys (unused by iLogtail hosts; decoded and ignored by us).
    #[prost(string, repeated, tag = "3")]
    pub values: Vec<String>,
    /// Nanoseconds within the second.
    #[prost(fixed32, optional, tag = "4")]
    pub time_ns: Option<u32>,
}

/// `message LogTag { required string Key = 1; required string Value = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogTag {
    /// Tag name.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Tag value.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `message LogGroup`
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogGroup {
    /// The logs.
    #[prost(message, repeated, tag = "1")]
    pub logs: Vec<Log>,
    /// The logstore.
    #[prost(string, optional, tag = "2")]
    pub category: Option<String>,
    /// Topic.
    #[prost(string, optional, tag = "3")]
    pub topic: Option<String>,
    /// Host IP.
    #[prost(string, optional, tag = "4")]
    pub source: Option<String>,
    /// Machine UUID.
    #[prost(string, optional, tag = "5")]
    pub machine_uuid: Option<String>,
    /// Tags; groups we send end with `__pack_id__`.
    #[prost(message, repeated, tag = "6")]
    pub log_tags: Vec<LogTag>,
}

/// Name of the tag carrying the pack id (the last tag of every group the engine sends).
pub const PACK_ID_TAG: &str = "__pack_id__";

impl LogGroup {
    /// The value of the last `__pack_id__` tag.
    pub fn pack_id(&self) -> Option<&str> {
        self.log_tags
            .iter()
            .rev()
            .find(|t| t.key == PACK_ID_TAG)
            .map(|t| t.value.as_str())
    }
}
