//! The options of `flusher_kafka_v2`, as iLogtail names them, and what they set in
//! librdkafka's configuration.

use super::record::{Field, HashKey, RecordEncoder, Topic};
use crate::api::prelude::*;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// iLogtail's default `Timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// iLogtail's default `BrokerTimeout`.
const DEFAULT_BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `flusher_kafka_v2`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// `host:port` of the bootstrap brokers.
    #[serde(default)]
    brokers: Vec<String>,
    /// The topic, with placeholders.
    #[serde(default)]
    topic: String,
    /// Kafka protocol version of the brokers (`1.0.0` by default); below 0.10 librdkafka
    /// cannot ask the broker, so it is told.
    #[serde(default)]
    version: Option<String>,
    /// Socket timeout and the time a message may take to be delivered (Go duration).
    #[serde(default)]
    timeout: Option<Value>,
    /// How long the broker waits for the `RequiredACKs` (Go duration). Default 10 s.
    #[serde(default)]
    broker_timeout: Option<Value>,
    /// TCP keep-alive when positive.
    #[serde(default)]
    keep_alive: Option<Value>,
    /// Credentials and TLS.
    #[serde(default)]
    authentication: Authentication,
    /// `random` (default), `roundrobin` or `hash`.
    #[serde(default)]
    partitioner_type: Option<String>,
    /// Metadata refresh.
    #[serde(default)]
    metadata: Metadata,
    /// Largest message (librdkafka `message.max.bytes`).
    #[serde(default)]
    max_message_bytes: Option<i64>,
    /// -1 (all in-sync replicas), 0 (no answer: delivered once sent), 1 (the leader, default).
    #[serde(default, rename = "RequiredACKs", alias = "RequiredAcks")]
    required_acks: Option<i64>,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    #[serde(default)]
    compression: Option<String>,
    /// Codec level (gzip 0-9, lz4 0-12, zstd 1-22); iLogtail's default 4 for gzip.
    #[serde(default)]
    compression_level: Option<i64>,
    /// Requests in flight per broker connection (default 5).
    #[serde(default)]
    max_open_requests: Option<i64>,
    /// librdkafka's retries of a message before it fails (iLogtail default 3, -1: many).
    #[serde(default)]
    max_retries: Option<i64>,
    /// Back-off of those retries.
    #[serde(default)]
    backoff: Backoff,
    /// Messages per produce request (`batch.num.messages`, default 2048).
    #[serde(default)]
    bulk_max_size: Option<i64>,
    /// How long to wait to fill a batch (`linger.ms`); default librdkafka's 5 ms.
    #[serde(default)]
    bulk_flush_frequency: Option<Value>,
    /// No effect: librdkafka has its own queues.
    #[serde(default)]
    chan_buffer_size: Option<i64>,
    /// Headers of every message.
    #[serde(default)]
    headers: Vec<HeaderOption>,
    /// Record format.
    #[serde(default)]
    convert: Convert,
    /// `content.<key>` / `tag.<name>` fields that make the message key (`hash`).
    #[serde(default)]
    hash_keys: Vec<String>,
    /// The first message key is every message's key.
    #[serde(default)]
    hash_once: bool,
    /// Client id, `LogtailPlugin` by default.
    #[serde(default, rename = "ClientID")]
    client_id: Option<String>,
    /// Ours: the idempotent producer when `RequiredACKs` is -1 (default true).
    #[serde(default)]
    idempotent: Option<bool>,
    /// Ours: librdkafka configuration properties, applied after everything else.
    #[serde(default)]
    properties: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Authentication {
    /// SASL/PLAIN credentials.
    plain_text: Option<Credentials>,
    /// SASL with a mechanism.
    #[serde(rename = "SASL", alias = "Sasl")]
    sasl: Option<Sasl>,
    /// TLS, named as iLogtail's `pkg/tlscommon`.
    #[serde(rename = "TLS")]
    tls: Option<Tls>,
    /// Refused: no GSSAPI in this build.
    kerberos: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` (any case); empty: PLAIN.
    #[serde(alias = "SASLMechanism")]
    sasl_mechanism: String,
    username: String,
    password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Tls {
    /// TLS only when true (as iLogtail).
    #[serde(alias = "Enable")]
    enabled: bool,
    /// PEM roots that verify the brokers (default: the system's, probed).
    #[serde(rename = "CAFile")]
    ca_file: String,
    /// PEM client certificate (with `KeyFile`).
    cert_file: String,
    /// PEM key of `CertFile`.
    key_file: String,
    /// Do not verify the brokers' certificates and names.
    insecure_skip_verify: bool,
    /// Refused when set: librdkafka has no such setting.
    min_version: String,
    /// Refused when set.
    max_version: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Metadata {
    /// Accepted (librdkafka retries metadata itself).
    retry: Option<Value>,
    /// `topic.metadata.refresh.interval.ms` (Go duration).
    refresh_frequency: Option<Value>,
    /// Accepted: librdkafka asks only for the topics it uses.
    full: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Backoff {
    /// `retry.backoff.ms` (Go duration).
    init: Option<Value>,
    /// `retry.backoff.max.ms` (Go duration).
    max: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct HeaderOption {
    #[serde(alias = "key")]
    key: String,
    #[serde(alias = "value", default)]
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Convert {
    /// `custom_single` (default) or `custom_single_flatten`.
    protocol: String,
    /// `json` (default).
    encoding: String,
    /// Tag renames (an empty new name drops the tag).
    tag_fields_rename: BTreeMap<String, String>,
    /// Renames of `contents`, `tags`, `time`.
    protocol_fields_rename: BTreeMap<String, String>,
}

/// How the partition of a message is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Partitioner {
    /// librdkafka's (sticky) random partitioner.
    Random,
    /// Ours, over the topic's partitions.
    RoundRobin,
    /// librdkafka's `fnv1a` of the message key.
    Hash,
}

/// What [`build`] makes of the options.
pub(super) struct Settings {
    pub(super) config: ClientConfig,
    pub(super) topic: Topic,
    pub(super) partitioner: Partitioner,
    pub(super) headers: Vec<(String, String)>,
    pub(super) encoder: Arc<RecordEncoder>,
    /// How long a message may take (librdkafka's `message.timeout.ms`).
    pub(super) message_timeout: Duration,
}

pub(super) fn settings(detail: &Value, cx: &PluginContext) -> Result<Settings, DetailError> {
    let o: Options = parse_detail(detail)?;
    let mut c = ClientConfig::new();
    if o.brokers.is_empty() || o.brokers.iter().any(|b| b.trim().is_empty()) {
        return Err(DetailError::new(
            "Brokers",
            "one host:port or more are required",
        ));
    }
    c.set("bootstrap.servers", o.brokers.join(","));
    let renames = &o.convert.tag_fields_rename;
    let topic = Topic::parse(&o.topic, renames).map_err(|e| DetailError::new("Topic", e))?;
    version(&mut c, o.version.as_deref())?;
    let timeout = duration("Timeout", o.timeout.as_ref(), DEFAULT_TIMEOUT)?;
    let broker_timeout = duration(
        "BrokerTimeout",
        o.broker_timeout.as_ref(),
        DEFAULT_BROKER_TIMEOUT,
    )?;
    for (field, d) in [("Timeout", timeout), ("BrokerTimeout", broker_timeout)] {
        if d < Duration::from_millis(10) {
            return Err(DetailError::new(field, "must be at least 10ms"));
        }
    }
    c.set("socket.timeout.ms", millis(timeout));
    c.set("message.timeout.ms", millis(timeout));
    c.set("request.timeout.ms", millis(broker_timeout));
    if duration("KeepAlive", o.keep_alive.as_ref(), Duration::ZERO)? > Duration::ZERO {
        c.set("socket.keepalive.enable", "true");
    }
    authentication(&mut c, &o.authentication)?;
    let partitioner = match o.partitioner_type.as_deref() {
        None | Some("" | "random") => Partitioner::Random,
        Some("roundrobin") => Partitioner::RoundRobin,
        Some("hash") => {
            c.set("partitioner", "fnv1a");
            Partitioner::Hash
        }
        Some(other) => {
            let why = format!("`{other}` is not random, roundrobin or hash");
            return Err(DetailError::new("PartitionerType", why));
        }
    };
    let acks = o.required_acks.unwrap_or(1);
    if !matches!(acks, -1..=1) {
        let why = format!("{acks} is not -1 (all), 0 (none) or 1 (leader)");
        return Err(DetailError::new("RequiredACKs", why));
    }
    c.set("acks", acks.to_string());
    match (o.idempotent, acks) {
        (Some(true), 0 | 1) => {
            let why = "the idempotent producer needs `RequiredACKs: -1`";
            return Err(DetailError::new("Idempotent", why));
        }
        (None | Some(true), -1) => {
            c.set("enable.idempotence", "true");
            // What librdkafka requires of an idempotent producer (checked only when it is
            // made, too late to name the option).
            if o.max_open_requests.is_some_and(|n| n > 5) {
                let why = "at most 5 with the idempotent producer (or `Idempotent: false`)";
                return Err(DetailError::new("MaxOpenRequests", why));
            }
            if o.max_retries == Some(0) {
                let why = "at least 1 with the idempotent producer (or `Idempotent: false`)";
                return Err(DetailError::new("MaxRetries", why));
            }
        }
        _ => {}
    }
    compression(&mut c, o.compression.as_deref(), o.compression_level)?;
    for (field, key, v, min) in [
        (
            "MaxMessageBytes",
            "message.max.bytes",
            o.max_message_bytes,
            1000,
        ),
        (
            "MaxOpenRequests",
            "max.in.flight.requests.per.connection",
            o.max_open_requests,
            1,
        ),
        ("BulkMaxSize", "batch.num.messages", o.bulk_max_size, 1),
    ] {
        match v {
            Some(n) if n < min => {
                return Err(DetailError::new(field, format!("must be at least {min}")))
            }
            Some(n) => {
                c.set(key, n.to_string());
            }
            None => {}
        }
    }
    if o.bulk_max_size.is_none() {
        c.set("batch.num.messages", "2048");
    }
    let retries = match o.max_retries {
        None => 3,
        Some(n) if n < 0 => 1000,
        Some(n) => n,
    };
    c.set("message.send.max.retries", retries.to_string());
    let init = duration(
        "Backoff.Init",
        o.backoff.init.as_ref(),
        Duration::from_secs(1),
    )?;
    let max = duration(
        "Backoff.Max",
        o.backoff.max.as_ref(),
        Duration::from_secs(60),
    )?;
    if max < init {
        return Err(DetailError::new("Backoff.Max", "is less than Backoff.Init"));
    }
    // librdkafka's limits: retry.backoff.ms up to 300 s, its max up to 300 s.
    c.set(
        "retry.backoff.ms",
        millis(init.min(Duration::from_secs(300))),
    );
    c.set(
        "retry.backoff.max.ms",
        millis(max.min(Duration::from_secs(300))),
    );
    if let Some(v) = &o.bulk_flush_frequency {
        let linger = duration("BulkFlushFrequency", Some(v), Duration::ZERO)?;
        c.set("linger.ms", millis(linger));
    }
    let refresh = o.metadata.refresh_frequency.as_ref();
    let refresh = duration(
        "Metadata.RefreshFrequency",
        refresh,
        Duration::from_secs(600),
    )?;
    c.set("topic.metadata.refresh.interval.ms", millis(refresh));
    let _ = (&o.metadata.retry, o.metadata.full, o.chan_buffer_size);
    let client_id = o.client_id.as_deref().unwrap_or("LogtailPlugin");
    c.set("client.id", client_id);
    let headers = o
        .headers
        .iter()
        .filter(|h| !h.key.is_empty())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    let encoder = encoder(&o, partitioner, cx)?;
    for (k, v) in &o.properties {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            _ => {
                let why = "a librdkafka property value is a string, number or bool";
                return Err(DetailError::new(format!("Properties.{k}"), why));
            }
        };
        c.set(k, v);
    }
    let message_timeout = match c.get("message.timeout.ms").map(str::parse::<u64>) {
        Some(Ok(ms)) if ms > 0 => Duration::from_millis(ms),
        _ => timeout,
    };
    // librdkafka checks every name and value here (no threads, no connections).
    if let Err(e) = c.create_native_config() {
        return Err(DetailError::new(config_field(&e, &o), e.to_string()));
    }
    Ok(Settings {
        config: c,
        topic,
        partitioner,
        headers,
        encoder: Arc::new(encoder),
        message_timeout,
    })
}

/// The option to blame for librdkafka's refusal of the configuration.
fn config_field(e: &KafkaError, o: &Options) -> String {
    let text = e.to_string();
    let named = o.properties.keys().find(|k| text.contains(k.as_str()));
    match named {
        Some(k) => format!("Properties.{k}"),
        None if text.contains("compression") => "CompressionLevel".into(),
        None if text.contains("ssl") => "Authentication.TLS".into(),
        None if text.contains("sasl") => "Authentication".into(),
        None => String::new(),
    }
}

fn version(c: &mut ClientConfig, v: Option<&str>) -> Result<(), DetailError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let nums: Vec<Option<u32>> = v.split('.').map(|p| p.parse().ok()).collect();
    if !(3..=4).contains(&nums.len()) || nums.iter().any(Option::is_none) {
        let why = format!("`{v}` is not a Kafka version such as 2.8.0 or 0.10.2.1");
        return Err(DetailError::new("Version", why));
    }
    if nums[0] == Some(0) && nums[1] < Some(10) {
        // These brokers cannot tell their API versions.
        c.set("api.version.request", "false");
        c.set("broker.version.fallback", v);
    }
    Ok(())
}

fn authentication(c: &mut ClientConfig, a: &Authentication) -> Result<(), DetailError> {
    if a.kerberos.is_some() {
        let why = "Kerberos (GSSAPI) is not available in this build";
        return Err(DetailError::new("Authentication.Kerberos", why));
    }
    let mut sasl = false;
    if let Some(p) = a.plain_text.as_ref().filter(|p| !p.username.is_empty()) {
        if p.password.is_empty() {
            let why = "required when Username is set";
            return Err(DetailError::new("Authentication.PlainText.Password", why));
        }
        c.set("sasl.mechanisms", "PLAIN");
        c.set("sasl.username", &p.username);
        c.set("sasl.password", &p.password);
        sasl = true;
    }
    if let Some(s) = &a.sasl {
        for (field, v) in [("Username", &s.username), ("Password", &s.password)] {
            if v.is_empty() {
                return Err(DetailError::new(
                    format!("Authentication.SASL.{field}"),
                    "required",
                ));
            }
        }
        let mechanism = match s.sasl_mechanism.to_ascii_uppercase().as_str() {
            "" | "PLAIN" => "PLAIN",
            "SCRAM-SHA-256" => "SCRAM-SHA-256",
            "SCRAM-SHA-512" => "SCRAM-SHA-512",
            "GSSAPI" => {
                let why = "GSSAPI (Kerberos) is not available in this build";
                return Err(DetailError::new("Authentication.SASL.SaslMechanism", why));
            }
            other => {
                let why = format!("`{other}` is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
                return Err(DetailError::new("Authentication.SASL.SaslMechanism", why));
            }
        };
        c.set("sasl.mechanisms", mechanism);
        c.set("sasl.username", &s.username);
        c.set("sasl.password", &s.password);
        sasl = true;
    }
    let tls = a.tls.as_ref().filter(|t| t.enabled);
    if let Some(t) = tls {
        for (field, v) in [
            ("MinVersion", &t.min_version),
            ("MaxVersion", &t.max_version),
        ] {
            if !v.is_empty() {
                let why = "librdkafka has no such setting (OpenSSL negotiates the version)";
                return Err(DetailError::new(format!("Authentication.TLS.{field}"), why));
            }
        }
        for (field, path) in [
            ("CAFile", &t.ca_file),
            ("CertFile", &t.cert_file),
            ("KeyFile", &t.key_file),
        ] {
            if !path.is_empty() && std::fs::metadata(path).is_err() {
                let why = format!("cannot read `{path}`");
                return Err(DetailError::new(format!("Authentication.TLS.{field}"), why));
            }
        }
        if t.cert_file.is_empty() != t.key_file.is_empty() {
            let why = "CertFile and KeyFile go together";
            return Err(DetailError::new("Authentication.TLS.KeyFile", why));
        }
        let ca = if t.ca_file.is_empty() {
            "probe"
        } else {
            &t.ca_file
        };
        c.set("ssl.ca.location", ca);
        if !t.cert_file.is_empty() {
            c.set("ssl.certificate.location", &t.cert_file);
            c.set("ssl.key.location", &t.key_file);
        }
        if t.insecure_skip_verify {
            c.set("enable.ssl.certificate.verification", "false");
            c.set("ssl.endpoint.identification.algorithm", "none");
        }
    }
    let protocol = match (sasl, tls.is_some()) {
        (false, false) => "plaintext",
        (false, true) => "ssl",
        (true, false) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    c.set("security.protocol", protocol);
    Ok(())
}

fn compression(
    c: &mut ClientConfig,
    codec: Option<&str>,
    level: Option<i64>,
) -> Result<(), DetailError> {
    let codec = codec.unwrap_or("none").to_ascii_lowercase();
    let range = match codec.as_str() {
        "none" | "" => None,
        "gzip" => Some(0..=9),
        "snappy" => None,
        "lz4" => Some(0..=12),
        "zstd" => Some(1..=22),
        other => {
            let why = format!("`{other}` is not none, gzip, snappy, lz4 or zstd");
            return Err(DetailError::new("Compression", why));
        }
    };
    c.set(
        "compression.codec",
        if codec.is_empty() { "none" } else { &codec },
    );
    let level = match (level, codec.as_str()) {
        (Some(l), _) => Some(l),
        // iLogtail's default level, used by gzip only.
        (None, "gzip") => Some(4),
        (None, _) => None,
    };
    match (level, range) {
        (Some(l), Some(r)) if r.contains(&l) => {
            c.set("compression.level", l.to_string());
        }
        (Some(l), Some(r)) => {
            let why = format!("{l} is out of {}..={} for {codec}", r.start(), r.end());
            return Err(DetailError::new("CompressionLevel", why));
        }
        _ => {}
    }
    Ok(())
}

fn encoder(
    o: &Options,
    partitioner: Partitioner,
    cx: &PluginContext,
) -> Result<RecordEncoder, DetailError> {
    let cv = &o.convert;
    let flatten = match cv.protocol.as_str() {
        "" | "custom_single" => false,
        "custom_single_flatten" => true,
        other => {
            let why = format!("`{other}` is not supported (custom_single, custom_single_flatten)");
            return Err(DetailError::new("Convert.Protocol", why));
        }
    };
    if !matches!(cv.encoding.as_str(), "" | "json") {
        let why = format!("`{}` is not supported (json)", cv.encoding);
        return Err(DetailError::new("Convert.Encoding", why));
    }
    for (k, v) in &cv.protocol_fields_rename {
        if !matches!(k.as_str(), "contents" | "tags" | "time") || v.is_empty() {
            let why = format!("`{k}` → `{v}`: only contents, tags and time, to a name");
            return Err(DetailError::new("Convert.ProtocolFieldsRename", why));
        }
    }
    let hash = match partitioner {
        Partitioner::Hash => {
            let mut fields = Vec::new();
            for k in &o.hash_keys {
                let f = if let Some(c) = k.strip_prefix("content.") {
                    Field::Content(c.to_string())
                } else if let Some(t) = k.strip_prefix("tag.") {
                    Field::Tag(t.to_string())
                } else {
                    let why = format!("`{k}` is not content.<key> or tag.<name>");
                    return Err(DetailError::new("HashKeys", why));
                };
                fields.push(f);
            }
            let default = if cx.logstore.is_empty() {
                cx.config_name.to_string()
            } else {
                cx.logstore.to_string()
            };
            Some(HashKey {
                fields,
                default,
                once: o.hash_once,
            })
        }
        _ if !o.hash_keys.is_empty() => {
            let why = "only with `PartitionerType: hash`";
            return Err(DetailError::new("HashKeys", why));
        }
        _ => None,
    };
    Ok(RecordEncoder::new(
        flatten,
        &cv.protocol_fields_rename,
        cv.tag_fields_rename.clone(),
        cx.host.ip.clone(),
        hash,
    ))
}

fn millis(d: Duration) -> String {
    d.as_millis().min(i32::MAX as u128).to_string()
}

/// A Go `time.Duration` option: nanoseconds (how iLogtail's JSON decodes a number) or a
/// duration text such as `"30s"`.
fn duration(field: &str, v: Option<&Value>, default: Duration) -> Result<Duration, DetailError> {
    let bad = |why: String| DetailError::new(field, why);
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(ns) => Ok(Duration::from_nanos(ns)),
            None => Err(bad(format!("{n} is not nanoseconds (Go's time.Duration)"))),
        },
        Some(Value::String(s)) => super::super::http::go_duration(s).map_err(bad),
        Some(other) => Err(bad(format!(
            "expected a duration such as \"30s\", got {other}"
        ))),
    }
}
