//! `flusher_otlp`: exports logs with the OpenTelemetry protocol (OTLP), over gRPC
//! (`LogsService/Export`) or HTTP/protobuf (`POST <Endpoint>/v1/logs`), as an [`Output`].
//!
//! **Encoding.** Each group becomes one `ResourceLogs` (built with the published
//! `opentelemetry-proto` prost types) framed as field 1 of `ExportLogsServiceRequest`
//! ([`Format::Custom`], run as groups are buffered): a chunk body *is* an export request, and a
//! write sends its bytes as they are (gRPC through a pass-through tonic codec, no decode and
//! encode again). Per group:
//!
//! - `resource.attributes`: `ResourceAttributes` (static), then the group tags (all but `__pack_id__`, or
//!   those of `TagKeys`): `__hostname__` → `host.name`, `__path__` → `log.file.path`,
//!   `__host_ip__` → `host.ip`, `__inode__` → `log.file.inode`, the topic (`__topic__`) →
//!   `topic` as iLogtail names it; any other tag under its own key;
//! - one `ScopeLogs` with `ScopeName` / `ScopeVersion`;
//! - per event a `LogRecord`: `time_unix_nano` from the event time with its nanoseconds,
//!   `observed_time_unix_nano` when the group was encoded, the body from content `BodyKey`
//!   (`content`, as iLogtail; a string, or bytes when not UTF-8), severity from content
//!   `SeverityKey` (`level`: the text as `severity_text`, mapped to a `SeverityNumber`), every
//!   other content as a string attribute. A record without the `BodyKey` content has no body
//!   (its contents are all attributes). `BodyKey: ""` instead makes the body a kvlist of every
//!   content (except the severity) and sends no attributes: what a receiver that keeps
//!   structured bodies (Fluent Bit puts a kvlist body as the record) expects.
//!
//! **Answers** (as the OTLP specification and the OpenTelemetry Collector's exporters):
//!
//! - gRPC `OK`: written. `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`, `ABORTED`,
//!   `CANCELLED`, `OUT_OF_RANGE`, `DATA_LOSS`, and any failure of the connection (refused,
//!   reset, TLS, no answer within `Timeout`): retried, after the server's `RetryInfo` delay
//!   when it gives one. Any other status (`INVALID_ARGUMENT`, `UNAUTHENTICATED`,
//!   `UNIMPLEMENTED`...): unrecoverable.
//! - HTTP 2xx: written. 429, 502, 503, 504: retried, after `Retry-After`; transport failures:
//!   retried. Any other status: unrecoverable, quoting the server's `Status.message`.
//! - A success with `partial_success.rejected_log_records > 0`: the chunk is written (the
//!   server kept the rest and will not take the others again); the rejected records are
//!   added to the flusher's `dropped` counter and alarmed (`PLUGIN_DATA_DROPPED_ALARM`).
//!
//! **Request size.** A chunk bigger than `MaxRequestBytes` (default 3 MB, under the 4 MiB that
//! gRPC servers and Fluent Bit's `buffer_max_size` accept by default) is sent as several
//! requests cut at group boundaries; when one fails, the retry of that chunk by the same flush
//! thread continues after the groups already accepted. A single group bigger than the limit
//! is sent alone.
//!
//! **Options** (ours, iLogtail-style): `Protocol` (`grpc`, the default, or `http` /
//! `http/protobuf`),
//! `Endpoint`, `Headers`, `Compression` (`none` or `gzip`), `Timeout` (milliseconds as
//! iLogtail's, or a duration text such as `"10s"`; default 10 s: the whole request, connect to
//! answer), `TLS` {`CAFile`, `CertFile`, `KeyFile`, `InsecureSkipVerify`, as `flusher_http`},
//! `ResourceAttributes`, `TagKeys`, `ScopeName`, `ScopeVersion`, `BodyKey`, `SeverityKey`,
//! `MaxRequestBytes`. iLogtail's own layout is accepted too: `Version: v1` and a `Logs`
//! section {`Endpoint`, `Headers`, `Compression`, `Timeout`, and without effect
//! `WaitForReady`, `BalancerName`, `ReadBufferSize`, `WriteBufferSize`, `Retry` (the
//! framework's `Retry` section retries)}; `Metrics` and `Traces` are refused (logs only).
//!
//! gRPC runs on a current-thread tokio runtime owned by the output (one per flush thread,
//! made at the first write), with one HTTP/2 connection through our own rustls (ring)
//! connector; HTTP uses `flusher_http`'s blocking agent.

use super::http::{self as http_flusher, Tls};
use crate::api::prelude::*;
use crate::encode::{with_contents, Encoder};
use crate::stats::{PluginStats, Stats};
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

mod grpc;

/// Default `Timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle HTTP connection is kept.
const DEFAULT_IDLE: Duration = Duration::from_secs(90);
/// Default `MaxRequestBytes`.
const DEFAULT_MAX_REQUEST: usize = 3_000_000;
/// How much of an error answer is quoted.
const QUOTED: usize = 200;
/// How much of an HTTP answer is read.
const READ_LIMIT: u64 = 64 * 1024;

/// Options of `flusher_otlp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// iLogtail's protocol version: only `v1`.
    #[serde(default)]
    version: Option<String>,
    /// iLogtail's logs section (instead of the flat `Endpoint`, `Headers`...).
    #[serde(default)]
    logs: Option<Logs>,
    /// Refused: only logs are exported.
    #[serde(default)]
    metrics: Option<Value>,
    /// Refused: only logs are exported.
    #[serde(default)]
    traces: Option<Value>,
    /// `grpc` (default) or `http` (HTTP/protobuf).
    #[serde(default)]
    protocol: Option<String>,
    /// gRPC: `http://host:port`, `https://host:port` or `host:port` (plaintext); HTTP: a URL
    /// to which `/v1/logs` is appended (unless it already ends with it).
    #[serde(default)]
    endpoint: Option<String>,
    /// Request headers (gRPC metadata).
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    /// `none` (default) or `gzip`.
    #[serde(default)]
    compression: Option<String>,
    /// Milliseconds, or a duration text (`"10s"`); the whole request.
    #[serde(default)]
    timeout: Option<Value>,
    /// TLS for `https://` endpoints (`flusher_http`'s, iLogtail's `tlscommon` names).
    #[serde(default, rename = "TLS")]
    tls: Tls,
    /// Static resource attributes, written first.
    #[serde(default)]
    resource_attributes: BTreeMap<String, String>,
    /// The group tags sent as resource attributes (by their tag key; `__topic__` for the
    /// topic); absent: all of them.
    #[serde(default)]
    tag_keys: Option<Vec<String>>,
    /// `InstrumentationScope.name`.
    #[serde(default)]
    scope_name: String,
    /// `InstrumentationScope.version`.
    #[serde(default)]
    scope_version: String,
    /// The content that becomes the body (default `content`); `""`: the body is a kvlist of
    /// all contents.
    #[serde(default = "content_key")]
    body_key: String,
    /// The content that becomes the severity (default `level`); `""`: none.
    #[serde(default = "level_key")]
    severity_key: String,
    /// The largest request sent (a bigger chunk is cut at group boundaries).
    #[serde(default)]
    max_request_bytes: Option<u64>,
}

fn content_key() -> String {
    "content".into()
}

fn level_key() -> String {
    "level".into()
}

/// iLogtail's `helper.GrpcClientConfig` (the `Logs` section).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Logs {
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    compression: Option<String>,
    /// Milliseconds.
    #[serde(default)]
    timeout: Option<Value>,
    /// No effect: a connection that is not ready fails the request, which is retried.
    #[serde(default)]
    wait_for_ready: bool,
    /// No effect: one connection per flush thread.
    #[serde(default)]
    balancer_name: String,
    /// No effect.
    #[serde(default)]
    read_buffer_size: i64,
    /// No effect.
    #[serde(default)]
    write_buffer_size: i64,
    /// No effect: the framework's `Retry` section retries.
    #[serde(default)]
    retry: Option<Value>,
}

/// How requests are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    Http,
}

/// What is left of the options once checked.
struct Checked {
    protocol: Protocol,
    endpoint: String,
    headers: Vec<(String, String)>,
    gzip: bool,
    timeout: Duration,
    max_request: usize,
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Output>, DetailError> {
    let o: Options = parse_detail(detail)?;
    let checked = check(&o)?;
    let encoder = Arc::new(OtlpEncoder::new(&o)?);
    let transport = match checked.protocol {
        Protocol::Grpc => Transport::Grpc(Box::new(grpc::Grpc::new(
            &checked.endpoint,
            &checked.headers,
            checked.gzip,
            checked.timeout,
            &o.tls,
        )?)),
        Protocol::Http => Transport::Http(HttpSend::new(&checked, &o.tls)?),
    };
    Ok(Box::new(OtlpOutput {
        transport,
        format: Format::Custom(encoder),
        max_request: checked.max_request,
        sent: None,
        drops: Drops {
            counter: cx.stats.plugin(&cx.config_name, &cx.plugin),
            stats: cx.stats.clone(),
            config: cx.config_name.clone(),
            plugin: cx.plugin.clone(),
        },
    }))
}

/// Checks the transport options (merging iLogtail's `Logs` section).
fn check(o: &Options) -> Result<Checked, DetailError> {
    if !matches!(o.version.as_deref(), None | Some("v1")) {
        return Err(DetailError::new("Version", "only v1"));
    }
    for (field, set) in [
        ("Metrics", o.metrics.is_some()),
        ("Traces", o.traces.is_some()),
    ] {
        if set {
            return Err(DetailError::new(field, "only logs are exported (use Logs)"));
        }
    }
    let logs = o.logs.as_ref();
    if let Some(l) = logs {
        let _ = (
            l.wait_for_ready,
            &l.balancer_name,
            l.read_buffer_size,
            l.write_buffer_size,
            &l.retry,
        );
    }
    // One of the flat option and its `Logs.` twin.
    fn pick<'a, T>(
        name: &str,
        flat: &'a Option<T>,
        nested: Option<&'a Option<T>>,
    ) -> Result<(String, Option<&'a T>), DetailError> {
        match (flat.as_ref(), nested.and_then(Option::as_ref)) {
            (Some(_), Some(_)) => Err(DetailError::new(
                format!("Logs.{name}"),
                format!("set either {name} or Logs.{name}"),
            )),
            (Some(v), None) => Ok((name.to_string(), Some(v))),
            (None, Some(v)) => Ok((format!("Logs.{name}"), Some(v))),
            (None, None) => Ok((name.to_string(), None)),
        }
    }
    let protocol = match o.protocol.as_deref() {
        None | Some("grpc") => Protocol::Grpc,
        Some("http") | Some("http/protobuf") => Protocol::Http,
        Some(other) => {
            let why = format!("`{other}` is not grpc or http");
            return Err(DetailError::new("Protocol", why));
        }
    };
    let (field, endpoint) = pick("Endpoint", &o.endpoint, logs.map(|l| &l.endpoint))?;
    let endpoint = endpoint.map(String::as_str).unwrap_or("");
    let endpoint = match protocol {
        Protocol::Grpc => grpc::endpoint(endpoint).map_err(|why| DetailError::new(&field, why))?,
        Protocol::Http => http_url(endpoint).map_err(|why| DetailError::new(&field, why))?,
    };
    let (field, headers) = pick("Headers", &o.headers, logs.map(|l| &l.headers))?;
    let headers = headers.cloned().unwrap_or_default();
    for (k, v) in &headers {
        let bad = |why: &str| DetailError::new(format!("{field}.{k}"), why.to_string());
        ureq::http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| bad("not a valid header name"))?;
        ureq::http::HeaderValue::from_str(v).map_err(|_| bad("not a valid header value"))?;
        if protocol == Protocol::Grpc && (k.starts_with("grpc-") || k.starts_with(':')) {
            return Err(bad("reserved by gRPC"));
        }
    }
    let headers = headers.into_iter().collect();
    let (field, compression) = pick("Compression", &o.compression, logs.map(|l| &l.compression))?;
    let gzip = match compression.map(String::as_str) {
        None | Some("" | "none") => false,
        Some("gzip") => true,
        Some(other) => {
            let why = format!("`{other}` is not supported (none, gzip)");
            return Err(DetailError::new(field, why));
        }
    };
    let (field, timeout) = pick("Timeout", &o.timeout, logs.map(|l| &l.timeout))?;
    let timeout = milliseconds(&field, timeout)?;
    let max_request = match o.max_request_bytes {
        None => DEFAULT_MAX_REQUEST,
        Some(n) if n >= 1024 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            let why = format!("{n} bytes is too small (at least 1024)");
            return Err(DetailError::new("MaxRequestBytes", why));
        }
    };
    Ok(Checked {
        protocol,
        endpoint,
        headers,
        gzip,
        timeout,
        max_request,
    })
}

/// `Timeout`: milliseconds as a number (iLogtail's), or a duration text.
fn milliseconds(field: &str, v: Option<&Value>) -> Result<Duration, DetailError> {
    let d = match v {
        None | Some(Value::Null) => return Ok(DEFAULT_TIMEOUT),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(ms) => Duration::from_millis(ms),
            None => {
                let why = format!("{n} is not a number of milliseconds");
                return Err(DetailError::new(field, why));
            }
        },
        Some(Value::String(s)) => {
            http_flusher::go_duration(s).map_err(|why| DetailError::new(field, why))?
        }
        Some(other) => {
            let why = format!("expected milliseconds or a duration such as \"10s\", got {other}");
            return Err(DetailError::new(field, why));
        }
    };
    if d.is_zero() {
        return Err(DetailError::new(field, "must be positive"));
    }
    Ok(d)
}

/// The `/v1/logs` URL of an HTTP `Endpoint`.
fn http_url(endpoint: &str) -> Result<String, String> {
    if endpoint.is_empty() {
        return Err("is required".into());
    }
    let uri = ureq::http::Uri::try_from(endpoint).map_err(|e| format!("`{endpoint}`: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{endpoint}` is not an http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{endpoint}` has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("`{endpoint}` has a query"));
    }
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/logs") {
        Ok(base.to_string())
    } else {
        Ok(format!("{base}/v1/logs"))
    }
}

/// The [`Format::Custom`] encoder: a group → one framed `ResourceLogs`.
#[derive(Debug)]
struct OtlpEncoder {
    key: String,
    resource: Vec<KeyValue>,
    /// `None`: every tag.
    tag_keys: Option<Vec<Bytes>>,
    scope: InstrumentationScope,
    /// `None`: the body is a kvlist of all contents.
    body_key: Option<Bytes>,
    severity_key: Option<Bytes>,
}

impl OtlpEncoder {
    fn new(o: &Options) -> Result<Self, DetailError> {
        if let Some(keys) = &o.tag_keys {
            if let Some(i) = keys.iter().position(String::is_empty) {
                return Err(DetailError::new(format!("TagKeys[{i}]"), "is empty"));
            }
        }
        if !o.body_key.is_empty() && o.body_key == o.severity_key {
            let why = "is the same content as BodyKey";
            return Err(DetailError::new("SeverityKey", why));
        }
        let key = serde_json::json!({
            "resource": o.resource_attributes,
            "tags": o.tag_keys,
            "scope": [o.scope_name, o.scope_version],
            "body": o.body_key,
            "severity": o.severity_key,
        });
        let nonempty = |s: &str| (!s.is_empty()).then(|| Bytes::copy_from_slice(s.as_bytes()));
        Ok(Self {
            key: format!("otlp/v1 {key}"),
            resource: o
                .resource_attributes
                .iter()
                .map(|(k, v)| string_kv(k.clone(), v.clone()))
                .collect(),
            tag_keys: o.tag_keys.as_ref().map(|keys| {
                keys.iter()
                    .map(|k| Bytes::copy_from_slice(k.as_bytes()))
                    .collect()
            }),
            scope: InstrumentationScope {
                name: o.scope_name.clone(),
                version: o.scope_version.clone(),
                ..InstrumentationScope::default()
            },
            body_key: nonempty(&o.body_key),
            severity_key: nonempty(&o.severity_key),
        })
    }

    /// Whether group tag `key` becomes a resource attribute: those of `TagKeys`, else every
    /// tag but the pack id (`__pack_id__`, the agent's own bookkeeping).
    fn wants_tag(&self, key: &[u8]) -> bool {
        match &self.tag_keys {
            Some(keys) => keys.iter().any(|k| k.as_ref() == key),
            None => key != b"__pack_id__",
        }
    }

    /// The group as a `ResourceLogs`, observed at `observed` (unix nanoseconds).
    fn resource_logs(&self, group: &EventGroup, observed: u64) -> ResourceLogs {
        let mut attributes = self.resource.clone();
        for (k, v) in &group.tags {
            if self.wants_tag(k) {
                attributes.push(KeyValue {
                    key: tag_attribute(k),
                    value: Some(text_value(v)),
                });
            }
        }
        if !group.topic.is_empty() && self.wants_tag(b"__topic__") {
            attributes.push(KeyValue {
                key: "topic".into(),
                value: Some(text_value(&group.topic)),
            });
        }
        let log_records = group
            .events
            .iter()
            .map(|e| with_contents(e, |contents| self.record(e, contents, observed)))
            .collect();
        ResourceLogs {
            resource: Some(Resource {
                attributes,
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(self.scope.clone()),
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }
    }

    fn record(&self, e: &LogEvent, contents: &[(Bytes, Bytes)], observed: u64) -> LogRecord {
        let time = u64::from(e.time) * 1_000_000_000 + u64::from(e.time_ns.unwrap_or(0));
        let mut r = LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: observed,
            ..LogRecord::default()
        };
        let mut kvlist = Vec::new();
        for (k, v) in contents {
            if self.severity_key.as_ref().is_some_and(|s| s == k) {
                r.severity_text = String::from_utf8_lossy(v).into_owned();
                r.severity_number = severity_number(v) as i32;
                continue;
            }
            match &self.body_key {
                Some(b) if b == k => r.body = Some(text_value(v)),
                Some(_) => r.attributes.push(KeyValue {
                    key: String::from_utf8_lossy(k).into_owned(),
                    value: Some(text_value(v)),
                }),
                None => kvlist.push(KeyValue {
                    key: String::from_utf8_lossy(k).into_owned(),
                    value: Some(text_value(v)),
                }),
            }
        }
        if self.body_key.is_none() {
            r.body = Some(AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: kvlist,
                })),
            });
        }
        r
    }
}

impl Encoder for OtlpEncoder {
    fn key(&self) -> &str {
        &self.key
    }

    fn encode(&self, group: &EventGroup, out: &mut Vec<u8>) -> usize {
        if group.is_empty() {
            return 0;
        }
        let observed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let rl = self.resource_logs(group, observed);
        out.reserve(rl.encoded_len() + 11);
        out.push(0x0a); // ExportLogsServiceRequest.resource_logs: field 1, length-delimited
                        // Writing to a Vec that has room cannot fail.
        let _ = rl.encode_length_delimited(out);
        group.len()
    }
}

fn string_kv(key: String, value: String) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
    }
}

/// A string value, or bytes when `v` is not UTF-8.
fn text_value(v: &[u8]) -> AnyValue {
    let value = match std::str::from_utf8(v) {
        Ok(s) => any_value::Value::StringValue(s.to_string()),
        Err(_) => any_value::Value::BytesValue(v.to_vec()),
    };
    AnyValue { value: Some(value) }
}

/// The resource attribute of a group tag: the semantic-convention names of iLogtail's tags.
fn tag_attribute(key: &[u8]) -> String {
    match key {
        b"__hostname__" => "host.name".into(),
        b"__path__" => "log.file.path".into(),
        b"__host_ip__" | b"__hostip__" => "host.ip".into(),
        b"__inode__" => "log.file.inode".into(),
        b"__topic__" => "topic".into(),
        other => String::from_utf8_lossy(other).into_owned(),
    }
}

/// The `SeverityNumber` of a level text (case-insensitive; syslog, log4j, Go, glog names).
fn severity_number(text: &[u8]) -> SeverityNumber {
    let t = String::from_utf8_lossy(text).trim().to_ascii_lowercase();
    match t.as_str() {
        "trace" | "t" | "finest" | "finer" => SeverityNumber::Trace,
        "debug" | "d" | "dbg" | "fine" => SeverityNumber::Debug,
        "info" | "i" | "information" | "informational" | "notice" | "config" => {
            SeverityNumber::Info
        }
        "warn" | "w" | "warning" => SeverityNumber::Warn,
        "error" | "e" | "err" | "severe" => SeverityNumber::Error,
        "fatal" | "f" | "critical" | "crit" | "alert" | "emerg" | "emergency" | "panic" => {
            SeverityNumber::Fatal
        }
        _ => SeverityNumber::Unspecified,
    }
}

/// Where the records a server rejected (partial success) are counted and alarmed.
struct Drops {
    counter: Arc<PluginStats>,
    stats: Stats,
    config: Arc<str>,
    plugin: Arc<str>,
}

impl Drops {
    fn rejected(&self, answer: &ExportLogsServiceResponse, to: &str) {
        let Some(p) = &answer.partial_success else {
            return;
        };
        if p.rejected_log_records <= 0 {
            return;
        }
        let n = p.rejected_log_records as u64;
        PluginStats::add(&self.counter.dropped, n);
        self.stats.alarm(
            AlarmType::DataDropped,
            Level::Error,
            &self.config,
            &self.plugin,
            format!(
                "{n} records dropped: {to} rejected them (partial success): {}",
                p.error_message
            ),
        );
    }
}

enum Transport {
    Grpc(Box<grpc::Grpc>),
    Http(HttpSend),
}

struct OtlpOutput {
    transport: Transport,
    format: Format,
    max_request: usize,
    /// `(chunk id, body length, offset)`: the groups of a chunk before `offset` were
    /// accepted when a later request of it failed.
    sent: Option<(u64, usize, usize)>,
    drops: Drops,
}

impl OtlpOutput {
    /// Where the next request of `chunk` ends: after as many whole groups from `start` as
    /// fit `max_request` (at least one).
    fn request_end(chunk: &Chunk, start: usize, max: usize) -> usize {
        let mut end = start;
        for &e in chunk.ends.iter().filter(|&&e| e > start) {
            if end > start && e - start > max {
                break;
            }
            end = e;
        }
        if end == start {
            chunk.body.len()
        } else {
            end
        }
    }
}

impl Output for OtlpOutput {
    fn format(&self) -> Format {
        self.format.clone()
    }

    /// A chunk is one request when it can be (it is cut at group boundaries otherwise).
    fn max_chunk_bytes(&self) -> Option<usize> {
        Some(self.max_request)
    }

    fn write(&mut self, chunk: &Chunk) -> Result<(), WriteError> {
        let len = chunk.body.len();
        let mut start = match self.sent.take() {
            Some((id, l, at)) if chunk.retries > 0 && id == chunk.id && l == len => at,
            _ => 0,
        };
        while start < len {
            let end = Self::request_end(chunk, start, self.max_request);
            let body = chunk.body.slice(start..end);
            let sent = match &mut self.transport {
                Transport::Grpc(g) => g.send(body),
                Transport::Http(h) => h.send(&body),
            };
            match sent {
                Ok((answer, to)) => self.drops.rejected(&answer, &to),
                Err(e) => {
                    if start > 0 {
                        self.sent = Some((chunk.id, len, start));
                    }
                    return Err(e);
                }
            }
            start = end;
        }
        Ok(())
    }
}

/// OTLP/HTTP with protobuf bodies.
struct HttpSend {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    gzip: bool,
    timeout: Duration,
    zipped: Vec<u8>,
}

impl HttpSend {
    fn new(c: &Checked, tls: &Tls) -> Result<Self, DetailError> {
        let config = http_flusher::tls_config(tls)?;
        let mut headers = vec![(
            "Content-Type".to_string(),
            "application/x-protobuf".to_string(),
        )];
        if c.gzip {
            headers.push(("Content-Encoding".into(), "gzip".into()));
        }
        for (k, v) in &c.headers {
            let ours = ["content-type", "content-encoding"];
            if ours.iter().any(|o| k.eq_ignore_ascii_case(o)) {
                let why = "set by the flusher (see Compression)";
                return Err(DetailError::new(format!("Headers.{k}"), why));
            }
            headers.push((k.clone(), v.clone()));
        }
        Ok(Self {
            agent: http_flusher::agent(&c.endpoint, c.timeout, DEFAULT_IDLE, config),
            url: c.endpoint.clone(),
            headers,
            gzip: c.gzip,
            timeout: c.timeout,
            zipped: Vec::new(),
        })
    }

    fn send(&mut self, body: &[u8]) -> Result<(ExportLogsServiceResponse, String), WriteError> {
        let payload: &[u8] = if self.gzip {
            self.zipped.clear();
            let mut z = GzEncoder::new(
                std::mem::take(&mut self.zipped),
                flate2::Compression::fast(),
            );
            let done = z.write_all(body).and_then(|()| z.finish());
            self.zipped = done.map_err(|e| WriteError::Exit(format!("gzip: {e}")))?;
            &self.zipped
        } else {
            body
        };
        let mut req = self.agent.post(&self.url);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let url = &self.url;
        let mut resp = req
            .send(payload)
            .map_err(|e| http_flusher::failed(e, url, self.timeout))?;
        let status = resp.status().as_u16();
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| http_flusher::retry_after(v, chrono::Utc::now().timestamp()));
        let text = resp
            .body_mut()
            .with_config()
            .limit(READ_LIMIT)
            .read_to_vec()
            .unwrap_or_default();
        http_answer(status, after, &text, url).map(|a| (a, format!("POST {url}")))
    }
}

/// What an OTLP/HTTP answer means.
fn http_answer(
    status: u16,
    after: Option<Duration>,
    body: &[u8],
    url: &str,
) -> Result<ExportLogsServiceResponse, WriteError> {
    if (200..300).contains(&status) {
        // An empty or undecodable body is a full success.
        return Ok(ExportLogsServiceResponse::decode(body).unwrap_or_default());
    }
    let message = match grpc::RpcStatus::decode(body) {
        Ok(s) if !s.message.is_empty() => s.message,
        _ => String::from_utf8_lossy(&body[..body.len().min(QUOTED)]).into_owned(),
    };
    let why = format!("POST {url}: HTTP {status}: {message}");
    match status {
        429 | 502 | 503 | 504 => Err(WriteError::Retry { why, after }),
        _ => Err(WriteError::Unrecoverable(why)),
    }
}

#[cfg(test)]
mod tests;
