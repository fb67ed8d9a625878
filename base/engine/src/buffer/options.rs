//! The `Buffer` options of an output (Fluentd's `<buffer>` section, in our config's style),
//! and iLogtail's `Retry` / `Concurrency` where a flusher has them.

use crate::api::{parse_detail, DetailError};
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How an output delivers (Fluentd's three modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Write each group at once, no buffer, no retry: a failure drops it (counted).
    None,
    /// Chunks written by a flush thread; a failed write is retried by the framework.
    Sync,
    /// The output starts a write and commits (or rolls back) the chunk when the destination
    /// confirms; chunks not confirmed within `DelayedCommitTimeoutSecs` are retried.
    Async,
}

/// Where chunks are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// In memory: lost at exit (the inputs' offsets then stay before them).
    Memory,
    /// One file per chunk under `Path`: survives a crash (`disk` is accepted too).
    #[serde(alias = "disk")]
    File,
}

/// When staged chunks are enqueued for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushMode {
    /// `lazy` with a `time` chunk key, else `interval`.
    Default,
    /// When full, or (time chunks) once `Timekey` + `TimekeyWaitSecs` passed.
    Lazy,
    /// When full, or `FlushIntervalMs` after the chunk was created.
    Interval,
    /// After every append.
    Immediate,
}

/// What happens to a group that does not fit in `TotalLimitSize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Wait for room: back-pressure to the inputs.
    Block,
    /// Drop the oldest queued chunk (counted and alarmed) to make room.
    DropOldestChunk,
    /// Drop the incoming group (counted and alarmed).
    DropNewest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct BufferOptions {
    mode: Option<Mode>,
    r#type: Kind,
    path: String,
    chunk_keys: Vec<String>,
    tag_key: Option<String>,
    timekey: u64,
    timekey_wait_secs: u64,
    chunk_limit_size: u64,
    chunk_limit_records: u64,
    total_limit_size: Option<u64>,
    flush_mode: FlushMode,
    flush_interval_ms: u64,
    flush_thread_count: Option<usize>,
    flush_at_shutdown: Option<bool>,
    overflow_action: Overflow,
    sync_interval_ms: u64,
    retry_wait_ms: u64,
    retry_max_interval_ms: u64,
    retry_exponential_backoff_base: f64,
    retry_randomize: bool,
    retry_timeout_secs: u64,
    retry_max_times: Option<u32>,
    retry_forever: bool,
    delayed_commit_timeout_secs: u64,
    max_in_flight: Option<usize>,
}

impl Default for BufferOptions {
    fn default() -> Self {
        Self {
            mode: None,
            r#type: Kind::Memory,
            path: String::new(),
            chunk_keys: Vec::new(),
            tag_key: None,
            timekey: 0,
            timekey_wait_secs: 10,
            chunk_limit_size: 8 << 20,
            chunk_limit_records: 0,
            total_limit_size: None,
            flush_mode: FlushMode::Default,
            flush_interval_ms: 1000,
            flush_thread_count: None,
            flush_at_shutdown: None,
            overflow_action: Overflow::Block,
            sync_interval_ms: 100,
            retry_wait_ms: 1000,
            retry_max_interval_ms: 10_000,
            retry_exponential_backoff_base: 2.0,
            retry_randomize: true,
            retry_timeout_secs: 72 * 3600,
            retry_max_times: None,
            retry_forever: false,
            delayed_commit_timeout_secs: 60,
            max_in_flight: None,
        }
    }
}

/// iLogtail's `Retry` of `flusher_http`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct IlogtailRetry {
    enable: bool,
    max_retry_times: u32,
    /// A Go duration (`1s`, `500ms`) or milliseconds.
    initial_delay: Value,
    max_delay: Value,
}

impl Default for IlogtailRetry {
    fn default() -> Self {
        Self {
            enable: true,
            max_retry_times: 3,
            initial_delay: Value::Null,
            max_delay: Value::Null,
        }
    }
}

/// A chunk key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyPart {
    /// The group's tag (`TagKey`).
    Tag,
    /// The event's time, floored to `Timekey`.
    Time,
    /// A content field of the event, or a group tag written `__tag__:<key>`.
    Field(Arc<str>),
}

/// The checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub(crate) mode: Mode,
    pub(crate) kind: Kind,
    pub(crate) path: Option<PathBuf>,
    pub(crate) keys: Vec<KeyPart>,
    /// The group tags tried, in order, for the `tag` chunk key.
    pub(crate) tag_keys: Vec<bytes::Bytes>,
    pub(crate) timekey: i64,
    pub(crate) timekey_wait: i64,
    pub(crate) chunk_bytes: usize,
    pub(crate) chunk_records: usize,
    pub(crate) total_bytes: usize,
    pub(crate) flush: FlushMode,
    pub(crate) interval: Duration,
    pub(crate) threads: usize,
    pub(crate) flush_at_shutdown: bool,
    pub(crate) overflow: Overflow,
    pub(crate) sync_interval: Duration,
    pub(crate) retry_wait: Duration,
    pub(crate) retry_max_interval: Duration,
    pub(crate) retry_base: f64,
    pub(crate) retry_randomize: bool,
    pub(crate) retry_timeout: Duration,
    pub(crate) retry_max_times: Option<u32>,
    pub(crate) retry_forever: bool,
    pub(crate) commit_timeout: Duration,
    pub(crate) max_in_flight: usize,
}

/// A Go duration (`"1s"`, `"500ms"`, `"2m"`), or a number of milliseconds.
fn duration(v: &Value) -> Result<Option<Duration>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .map(|ms| Some(Duration::from_millis(ms)))
            .ok_or_else(|| format!("expected milliseconds, found {n}")),
        Value::String(s) => {
            let s = s.trim();
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let n: f64 = num
                .parse()
                .map_err(|_| format!("expected a duration such as \"1s\", found {s:?}"))?;
            let secs = match unit {
                "ns" => n / 1e9,
                "us" | "µs" => n / 1e6,
                "ms" | "" => n / 1e3,
                "s" => n,
                "m" => n * 60.0,
                "h" => n * 3600.0,
                _ => return Err(format!("unknown duration unit in {s:?}")),
            };
            Ok(Some(Duration::from_secs_f64(secs)))
        }
        other => Err(format!("expected a duration, found {other}")),
    }
}

/// The keys of an output's `detail` that the framework reads.
pub(crate) const FRAMEWORK_KEYS: [&str; 4] = ["Buffer", "Secondary", "Retry", "Concurrency"];

impl Settings {
    /// Adds the chunk keys an output needs ([`crate::api::Output::chunk_keys`]) that the
    /// config did not give (`time` is ignored: it needs `Timekey`).
    pub(crate) fn require_keys(&mut self, names: &[String]) {
        for n in names {
            let part = match n.as_str() {
                "tag" => KeyPart::Tag,
                "time" | "" => continue,
                f => KeyPart::Field(f.into()),
            };
            if !self.keys.contains(&part) {
                self.keys.push(part);
            }
        }
    }

    /// Reads `Buffer`, iLogtail's `Retry` and `Concurrency` from an output's `detail`.
    /// `delayed` tells whether the output confirms later (the default mode is then async);
    /// `in_flight` is the output's default `MaxInFlight`; `default_dir` is where a file
    /// buffer goes without `Path`.
    ///
    /// # Errors
    /// Every problem, each naming its field (`Buffer.<field>`, `Retry.<field>`).
    pub fn parse(
        detail: &Value,
        delayed: bool,
        in_flight: usize,
        default_dir: Option<PathBuf>,
    ) -> Result<Settings, DetailError> {
        let mut errors: Vec<DetailError> = Vec::new();
        let nested = |name: &str, e: DetailError| {
            e.into_all()
                .into_iter()
                .map(|mut e| {
                    e.field = if e.field.is_empty() {
                        name.to_string()
                    } else {
                        format!("{name}.{}", e.field)
                    };
                    e
                })
                .collect::<Vec<_>>()
        };
        let b = match detail.get("Buffer") {
            None => BufferOptions::default(),
            Some(v) => parse_detail::<BufferOptions>(v).unwrap_or_else(|e| {
                errors.extend(nested("Buffer", e));
                BufferOptions::default()
            }),
        };
        let retry = match detail.get("Retry") {
            None => None,
            Some(v) => match parse_detail::<IlogtailRetry>(v) {
                Ok(r) => Some(r),
                Err(e) => {
                    errors.extend(nested("Retry", e));
                    None
                }
            },
        };
        let concurrency = match detail.get("Concurrency") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=64).contains(&n) => Some(n as usize),
                _ => {
                    errors.push(DetailError::new(
                        "Concurrency",
                        format!("expected a number of concurrent sends from 1 to 64, found {v}"),
                    ));
                    None
                }
            },
        };
        let mut err = |field: &str, msg: String| {
            errors.push(DetailError::new(format!("Buffer.{field}"), msg));
        };
        let mut keys = Vec::new();
        for k in &b.chunk_keys {
            let part = match k.as_str() {
                "tag" => KeyPart::Tag,
                "time" => KeyPart::Time,
                "" => {
                    err("ChunkKeys", "an empty chunk key".into());
                    continue;
                }
                f => KeyPart::Field(f.into()),
            };
            if keys.contains(&part) {
                err("ChunkKeys", format!("chunk key {k:?} given twice"));
            }
            keys.push(part);
        }
        let timed = keys.contains(&KeyPart::Time);
        if timed && b.timekey == 0 {
            err(
                "Timekey",
                "the chunk key \"time\" needs Timekey, the length of a time window in seconds"
                    .into(),
            );
        }
        if !timed && b.timekey > 0 {
            err(
                "Timekey",
                "Timekey is set but \"time\" is not among ChunkKeys".into(),
            );
        }
        if b.chunk_limit_size < 1024 {
            err(
                "ChunkLimitSize",
                format!("{} bytes is too small (at least 1024)", b.chunk_limit_size),
            );
        }
        let total = b.total_limit_size.unwrap_or(match b.r#type {
            Kind::Memory => 64 << 20,
            Kind::File => 4 << 30,
        });
        if total < b.chunk_limit_size {
            err(
                "TotalLimitSize",
                format!(
                    "{total} bytes is smaller than ChunkLimitSize ({})",
                    b.chunk_limit_size
                ),
            );
        }
        let threads = b.flush_thread_count.or(concurrency).unwrap_or(1);
        if !(1..=64).contains(&threads) {
            err(
                "FlushThreadCount",
                format!("{threads} threads; expected 1 to 64"),
            );
        }
        if b.flush_interval_ms == 0 {
            err(
                "FlushIntervalMs",
                "0 ms; use FlushMode \"immediate\" to flush after every group".into(),
            );
        }
        if !(b.retry_exponential_backoff_base >= 1.0 && b.retry_exponential_backoff_base <= 100.0) {
            err(
                "RetryExponentialBackoffBase",
                format!(
                    "{} is out of range (1 to 100)",
                    b.retry_exponential_backoff_base
                ),
            );
        }
        if b.max_in_flight == Some(0) {
            err("MaxInFlight", "0 chunks in flight; at least 1".into());
        }
        let mode = b
            .mode
            .unwrap_or(if delayed { Mode::Async } else { Mode::Sync });
        let path = match (b.r#type, b.path.is_empty()) {
            (Kind::Memory, false) => {
                err(
                    "Path",
                    "a path is only for Type \"file\" (the buffer is in memory)".into(),
                );
                None
            }
            (Kind::Memory, true) => None,
            (Kind::File, false) if !b.path.starts_with('/') => {
                err("Path", format!("{:?} is not an absolute path", b.path));
                None
            }
            (Kind::File, false) => Some(PathBuf::from(&b.path)),
            (Kind::File, true) => match default_dir {
                Some(d) => Some(d),
                None => {
                    err(
                        "Path",
                        "a file buffer needs Path when the engine has no data directory".into(),
                    );
                    None
                }
            },
        };
        if mode == Mode::None
            && detail
                .get("Buffer")
                .is_some_and(|v| v.get("Type").is_some())
        {
            err(
                "Mode",
                "Mode \"none\" writes each group at once and keeps no buffer; remove Type".into(),
            );
        }
        let mut retry_wait = Duration::from_millis(b.retry_wait_ms);
        let mut retry_max_interval = Duration::from_millis(b.retry_max_interval_ms);
        let mut retry_max_times = b.retry_max_times;
        if let Some(r) = retry {
            let buffer = detail.get("Buffer");
            let has = |k: &str| buffer.is_some_and(|v| v.get(k).is_some());
            if !r.enable && !has("RetryMaxTimes") {
                retry_max_times = Some(0);
            } else if !has("RetryMaxTimes") {
                retry_max_times = Some(r.max_retry_times);
            }
            match duration(&r.initial_delay) {
                Ok(Some(d)) if !has("RetryWaitMs") => retry_wait = d,
                Ok(_) => {}
                Err(e) => errors.push(DetailError::new("Retry.InitialDelay", e)),
            }
            match duration(&r.max_delay) {
                Ok(Some(d)) if !has("RetryMaxIntervalMs") => retry_max_interval = d,
                Ok(_) => {}
                Err(e) => errors.push(DetailError::new("Retry.MaxDelay", e)),
            }
        }
        let mut errors = errors.into_iter();
        if let Some(mut first) = errors.next() {
            first.more = errors.collect();
            return Err(first);
        }
        Ok(Settings {
            mode,
            kind: b.r#type,
            path,
            keys,
            tag_keys: match b.tag_key {
                Some(k) => vec![k.into_bytes().into()],
                // Ours, then the Fluent Bit tag our output plugin puts on each group.
                None => vec![
                    bytes::Bytes::from_static(b"__tag__"),
                    bytes::Bytes::from_static(b"fluentbit_tag"),
                ],
            },
            timekey: b.timekey as i64,
            timekey_wait: b.timekey_wait_secs as i64,
            chunk_bytes: b.chunk_limit_size as usize,
            chunk_records: b.chunk_limit_records as usize,
            total_bytes: total as usize,
            flush: match b.flush_mode {
                FlushMode::Default if timed => FlushMode::Lazy,
                FlushMode::Default => FlushMode::Interval,
                m => m,
            },
            interval: Duration::from_millis(b.flush_interval_ms.max(1)),
            threads,
            flush_at_shutdown: b.flush_at_shutdown.unwrap_or(b.r#type == Kind::Memory),
            overflow: b.overflow_action,
            sync_interval: Duration::from_millis(b.sync_interval_ms.clamp(1, 10_000)),
            retry_wait: retry_wait.max(Duration::from_millis(1)),
            retry_max_interval: retry_max_interval.max(Duration::from_millis(1)),
            retry_base: b.retry_exponential_backoff_base,
            retry_randomize: b.retry_randomize,
            retry_timeout: Duration::from_secs(b.retry_timeout_secs),
            retry_max_times,
            retry_forever: b.retry_forever,
            commit_timeout: Duration::from_secs(b.delayed_commit_timeout_secs.max(1)),
            max_in_flight: b.max_in_flight.unwrap_or(in_flight).max(1),
        })
    }

    /// The wait before retry number `n` (1-based): `RetryWaitMs` × base^(n-1), capped at
    /// `RetryMaxIntervalMs`, with ±12.5 % jitter when `RetryRandomize`.
    pub(crate) fn backoff(&self, n: u32, jitter_seed: u64) -> Duration {
        let exp = self.retry_base.powi(n.saturating_sub(1).min(64) as i32);
        let base = self.retry_wait.as_secs_f64() * exp;
        let mut secs = base.min(self.retry_max_interval.as_secs_f64());
        if self.retry_randomize {
            // A cheap hash of the seed to [-1, 1).
            let h = jitter_seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(17);
            let unit = (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            secs *= 1.0 + 0.125 * unit;
        }
        Duration::from_secs_f64(secs.max(0.001))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(v: Value) -> Vec<String> {
        match Settings::parse(&v, false, 16, None) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_all().into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn defaults_are_a_memory_buffer_flushed_every_second() {
        let s = Settings::parse(&json!({}), false, 16, None).unwrap();
        assert_eq!(
            (s.mode, s.kind, s.flush),
            (Mode::Sync, Kind::Memory, FlushMode::Interval)
        );
        assert_eq!(s.overflow, Overflow::Block);
        assert!(s.flush_at_shutdown);
        let s = Settings::parse(&json!({}), true, 16, None).unwrap();
        assert_eq!(s.mode, Mode::Async);
    }

    #[test]
    fn every_problem_names_its_field() {
        let e = errors(
            json!({"Buffer": {"ChunkKeys": ["time", "time"], "ChunkLimitSize": 10,
            "Type": "file", "Nope": 1}, "Concurrency": 0}),
        );
        assert!(e.contains(&"Buffer.Nope".to_string()), "{e:?}");
        let e = errors(
            json!({"Buffer": {"ChunkKeys": ["time", "time"], "ChunkLimitSize": 10,
            "Type": "file"}, "Concurrency": 0}),
        );
        for f in [
            "Concurrency",
            "Buffer.ChunkKeys",
            "Buffer.Timekey",
            "Buffer.ChunkLimitSize",
            "Buffer.Path",
        ] {
            assert!(e.contains(&f.to_string()), "{f} missing from {e:?}");
        }
        assert_eq!(
            errors(json!({"Buffer": {"OverflowAction": "explode"}})),
            ["Buffer.OverflowAction"]
        );
        assert_eq!(
            errors(json!({"Retry": {"InitialDelay": "5 parsecs"}})),
            ["Retry.InitialDelay"]
        );
    }

    #[test]
    fn ilogtail_retry_maps_to_the_framework() {
        let s = Settings::parse(
            &json!({"Retry": {"MaxRetryTimes": 5, "InitialDelay": "200ms", "MaxDelay": "3s"}, "Concurrency": 4}),
            false,
            16,
            None,
        )
        .unwrap();
        assert_eq!(s.retry_max_times, Some(5));
        assert_eq!(s.retry_wait, Duration::from_millis(200));
        assert_eq!(s.retry_max_interval, Duration::from_secs(3));
        assert_eq!(s.threads, 4);
        let s = Settings::parse(&json!({"Retry": {"Enable": false}}), false, 16, None).unwrap();
        assert_eq!(s.retry_max_times, Some(0));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut s = Settings::parse(
            &json!({"Buffer": {"RetryRandomize": false}}),
            false,
            16,
            None,
        )
        .unwrap();
        assert_eq!(s.backoff(1, 0), Duration::from_secs(1));
        assert_eq!(s.backoff(3, 0), Duration::from_secs(4));
        assert_eq!(s.backoff(30, 0), Duration::from_secs(10));
        s.retry_randomize = true;
        let d = s.backoff(2, 12345).as_secs_f64();
        assert!((1.75..=2.25).contains(&d), "{d}");
    }
}
