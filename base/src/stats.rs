//! Statistics and alarms.
//!
//! Every plugin instance has a [`PluginStats`] (atomic counters, cheap to bump per group) and
//! every problem worth a human's attention raises an [`Alarm`]. Alarms with the same config,
//! plugin and type are merged (count + last message) until the reporter sends them, so a
//! plugin failing on every event cannot flood the host. The reporter delivers both to the
//! host as ordinary log groups from two built-in configs, as the original did: alarms as
//! config `logtail_alarm`, statistics as config `shennong_log_profile` with logstore
//! `logtail_plugin_profile`.

use crate::event::EventGroup;
use once_cell::sync::Lazy;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of one plugin instance (or of a pipeline's queues).
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Events received.
    pub events_in: AtomicU64,
    /// Events handed on (or delivered, for flushers).
    pub events_out: AtomicU64,
    /// Bytes received: the size of the events' keys and values, about their serialized size
    /// (see [`crate::event::LogEvent::byte_size`]).
    pub bytes_in: AtomicU64,
    /// Bytes handed on (delivered, for flushers), measured as `bytes_in`.
    pub bytes_out: AtomicU64,
    /// Events dropped (each drop also raises an alarm).
    pub dropped: AtomicU64,
    /// Errors (failed calls, panics).
    pub errors: AtomicU64,
    /// Retries (refused sends, retried batches).
    pub retries: AtomicU64,
    /// Restarts after a failure.
    pub restarts: AtomicU64,
    /// Time spent inside the plugin, in nanoseconds.
    pub time_ns: AtomicU64,
    /// Gauge: events or groups waiting in the queue in front of it.
    pub queue_depth: AtomicU64,
    /// Events kept on disk because the pipeline was full, held or exiting (plugin
    /// `pipeline`; processed once there is room).
    pub spilled: AtomicU64,
}

/// (events, bytes) of `groups` (bytes as [`EventGroup::byte_size`]).
pub fn sizes<'a>(groups: impl IntoIterator<Item = &'a EventGroup>) -> (u64, u64) {
    groups.into_iter().fold((0, 0), |(n, b), g| {
        (n + g.len() as u64, b + g.byte_size() as u64)
    })
}

impl PluginStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts (events, bytes) as received (see [`sizes`]).
    pub fn add_in(&self, (events, bytes): (u64, u64)) {
        Self::add(&self.events_in, events);
        Self::add(&self.bytes_in, bytes);
    }

    /// Counts (events, bytes) as handed on (see [`sizes`]).
    pub fn add_out(&self, (events, bytes): (u64, u64)) {
        Self::add(&self.events_out, events);
        Self::add(&self.bytes_out, bytes);
    }

    fn snapshot(&self) -> [(&'static str, u64); 11] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("events_in", g(&self.events_in)),
            ("events_out", g(&self.events_out)),
            ("bytes_in", g(&self.bytes_in)),
            ("bytes_out", g(&self.bytes_out)),
            ("dropped", g(&self.dropped)),
            ("errors", g(&self.errors)),
            ("retries", g(&self.retries)),
            ("restarts", g(&self.restarts)),
            ("time_ms", g(&self.time_ns) / 1_000_000),
            ("queue_depth", g(&self.queue_depth)),
            ("spilled", g(&self.spilled)),
        ]
    }
}

/// Severity of an alarm (iLogtail's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Worth knowing.
    Warning = 1,
    /// Data or function lost.
    Error = 2,
    /// The plugin system cannot do its job.
    Critical = 3,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Warning => "1",
            Level::Error => "2",
            Level::Critical => "3",
        })
    }
}

/// One kind of alarm: a fixed type name, so every component reports the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlarmType {
    /// Events were dropped.
    DataDropped,
    /// Events were kept on disk because their pipeline could not take them.
    DataSpilled,
    /// A plugin panicked.
    PluginPanic,
    /// A plugin returned an error.
    PluginError,
    /// A plugin was restarted after failures.
    PluginRestart,
    /// A plugin failed too often and was disabled.
    PluginDisabled,
    /// The host refused data for a while (it is retried).
    SendFailed,
    /// Something could not be persisted or read back.
    CheckpointError,
    /// A config failed to load.
    ConfigError,
    /// A plugin-specific alarm with iLogtail's name (`REGEX_UNMATCHED_ALARM`, ...).
    Plugin(&'static str),
}

impl AlarmType {
    /// Fixed name reported to the host.
    pub const fn name(self) -> &'static str {
        match self {
            AlarmType::DataDropped => "PLUGIN_DATA_DROPPED_ALARM",
            AlarmType::DataSpilled => "PLUGIN_DATA_SPILLED_ALARM",
            AlarmType::PluginPanic => "PLUGIN_PANIC_ALARM",
            AlarmType::PluginError => "PLUGIN_ERROR_ALARM",
            AlarmType::PluginRestart => "PLUGIN_RESTART_ALARM",
            AlarmType::PluginDisabled => "PLUGIN_DISABLED_ALARM",
            AlarmType::SendFailed => "SEND_DATA_FAIL_ALARM",
            AlarmType::CheckpointError => "CHECKPOINT_ALARM",
            AlarmType::ConfigError => "CONFIG_LOAD_ALARM",
            AlarmType::Plugin(name) => name,
        }
    }
}

/// An alarm as reported: merged by (config, plugin, type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    /// Type.
    pub kind: AlarmType,
    /// Highest level seen.
    pub level: Level,
    /// Last message.
    pub message: String,
    /// Config name ("" for process-wide alarms).
    pub config: String,
    /// Plugin instance name ("" when not about one plugin).
    pub plugin: String,
    /// How many times it was raised since the last report.
    pub count: u64,
}

type AlarmKey = (String, String, AlarmType);

/// Most distinct alarms kept between two reports; more are counted, not kept.
const MAX_PENDING_ALARMS: usize = 1000;

#[derive(Default)]
struct Registry {
    plugins: BTreeMap<(String, String), Arc<PluginStats>>,
    alarms: BTreeMap<AlarmKey, Alarm>,
    overflow: u64,
}

static REGISTRY: Lazy<Mutex<Registry>> = Lazy::new(|| Mutex::new(Registry::default()));

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The counters of `plugin` in `config`, created on first use (kept across restarts and
/// reloads of the same name).
pub fn plugin_stats(config: &str, plugin: &str) -> Arc<PluginStats> {
    registry()
        .plugins
        .entry((config.to_string(), plugin.to_string()))
        .or_default()
        .clone()
}

/// Forgets the counters of a removed config.
pub fn forget_config(config: &str) {
    registry().plugins.retain(|(c, _), _| c != config);
}

/// Raises an alarm (also logged).
pub fn alarm(
    kind: AlarmType,
    level: Level,
    config: &str,
    plugin: &str,
    message: impl Into<String>,
) {
    let message = message.into();
    match level {
        Level::Warning => tracing::warn!(alarm = kind.name(), config, plugin, "{message}"),
        _ => tracing::error!(alarm = kind.name(), config, plugin, "{message}"),
    }
    let mut r = registry();
    let key = (config.to_string(), plugin.to_string(), kind);
    if let Some(a) = r.alarms.get_mut(&key) {
        a.count += 1;
        a.level = a.level.max(level);
        a.message = message;
        return;
    }
    if r.alarms.len() >= MAX_PENDING_ALARMS {
        r.overflow += 1;
        return;
    }
    r.alarms.insert(
        key,
        Alarm {
            kind,
            level,
            message,
            config: config.to_string(),
            plugin: plugin.to_string(),
            count: 1,
        },
    );
}

/// Takes every pending alarm (and a note of how many did not fit).
pub fn take_alarms() -> (Vec<Alarm>, u64) {
    let mut r = registry();
    let alarms = std::mem::take(&mut r.alarms).into_values().collect();
    (alarms, std::mem::take(&mut r.overflow))
}

/// Config name of alarm groups sent to the host.
pub const ALARM_CONFIG: &str = "logtail_alarm";
/// Config name of statistics groups sent to the host.
pub const PROFILE_CONFIG: &str = "shennong_log_profile";
/// Logstore of statistics groups.
pub const PROFILE_LOGSTORE: &str = "logtail_plugin_profile";

fn kv(k: &'static str, v: impl Into<bytes::Bytes>) -> (bytes::Bytes, bytes::Bytes) {
    (bytes::Bytes::from_static(k.as_bytes()), v.into())
}

/// Builds the alarm log group (None when there is nothing to report).
pub fn alarm_group(host: &crate::context::HostIdentity) -> Option<crate::event::EventGroup> {
    let (alarms, overflow) = take_alarms();
    if alarms.is_empty() && overflow == 0 {
        return None;
    }
    let t = crate::event::now().0;
    let mut g = crate::event::EventGroup::default();
    for a in alarms {
        let mut e = crate::event::LogEvent::new(t);
        e.contents = vec![
            kv("alarm_type", a.kind.name()),
            kv("alarm_level", a.level.to_string()),
            kv("alarm_message", a.message),
            kv("alarm_count", a.count.to_string()),
            kv("config", a.config),
            kv("plugin", a.plugin),
            kv("ip", host.ip.clone()),
            kv("hostname", host.hostname.clone()),
        ];
        g.events.push(e);
    }
    if overflow > 0 {
        let mut e = crate::event::LogEvent::new(t);
        e.contents = vec![
            kv("alarm_type", "ALARM_OVERFLOW_ALARM"),
            kv("alarm_level", Level::Error.to_string()),
            kv(
                "alarm_message",
                format!("{overflow} alarms were not kept: too many distinct alarms"),
            ),
            kv("alarm_count", overflow.to_string()),
        ];
        g.events.push(e);
    }
    Some(g)
}

/// Most plugins per statistics group: with a thousand configs, one group of every plugin
/// was a transient +6 MiB each `StatisticsIntervalMs`.
const PROFILE_CHUNK: usize = 256;

/// The statistics log groups: one log per plugin with its counters, at most
/// [`PROFILE_CHUNK`] per group, each built when the previous one has been handed on.
pub fn profile_groups(
    host: &crate::context::HostIdentity,
) -> impl Iterator<Item = crate::event::EventGroup> + '_ {
    let handles: Vec<((String, String), Arc<PluginStats>)> = registry()
        .plugins
        .iter()
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect();
    let t = crate::event::now().0;
    let mut at = 0;
    std::iter::from_fn(move || {
        let chunk = handles.get(at..(at + PROFILE_CHUNK).min(handles.len()))?;
        if chunk.is_empty() {
            return None;
        }
        at += chunk.len();
        let mut g = crate::event::EventGroup::default();
        for ((config, plugin), stats) in chunk {
            let mut e = crate::event::LogEvent::new(t);
            e.contents.push(kv("config", config.clone()));
            e.contents.push(kv("plugin", plugin.clone()));
            for (k, v) in stats.snapshot() {
                e.contents.push(kv(k, v.to_string()));
            }
            e.contents.push(kv("ip", host.ip.clone()));
            e.contents.push(kv("hostname", host.hostname.clone()));
            g.events.push(e);
        }
        Some(g)
    })
}

/// Sends a built-in group to the host, retrying briefly; these are best effort (a failure
/// is logged, since an alarm about alarms could not be delivered either).
pub fn send_builtin(
    config: &'static str,
    logstore: &'static str,
    group: &crate::event::EventGroup,
    host: &crate::context::HostIdentity,
    attempts: u32,
) -> bool {
    let mut data = Vec::new();
    crate::proto::encode_log_group(
        &mut data,
        group,
        &crate::proto::GroupHeader {
            category: logstore,
            source: &host.ip,
            with_time_ns: false,
        },
    );
    let p = crate::host::Payload {
        config: config.into(),
        logstore: logstore.into(),
        logstore_key: -1,
        data,
        lines: group.len(),
        shard_hash: None,
        spill_key: None,
        acks: Vec::new(),
    };
    for attempt in 0..attempts {
        if crate::host::send(&p) == crate::host::SEND_OK {
            return true;
        }
        if attempt + 1 < attempts {
            std::thread::sleep(std::time::Duration::from_millis(20 << attempt));
        }
    }
    tracing::error!(
        config,
        logs = group.len(),
        "the host refused a built-in log group; dropped"
    );
    false
}

/// Sends pending alarms and, when `with_profile`, the statistics, trying each send up to
/// `attempts` times (one at exit, so `HoldOn(1)` stays within its bound).
pub fn report(host: &crate::context::HostIdentity, with_profile: bool, attempts: u32) {
    if let Some(g) = alarm_group(host) {
        send_builtin(ALARM_CONFIG, ALARM_CONFIG, &g, host, attempts);
    }
    if with_profile {
        for g in profile_groups(host) {
            if !send_builtin(PROFILE_CONFIG, PROFILE_LOGSTORE, &g, host, attempts) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_merge_by_key_and_drain() {
        alarm(
            AlarmType::PluginError,
            Level::Warning,
            "merge-cfg",
            "p/0",
            "first",
        );
        alarm(
            AlarmType::PluginError,
            Level::Error,
            "merge-cfg",
            "p/0",
            "second",
        );
        alarm(
            AlarmType::DataDropped,
            Level::Error,
            "merge-cfg",
            "p/0",
            "drop",
        );
        let (alarms, _) = take_alarms();
        let mine: Vec<_> = alarms.iter().filter(|a| a.config == "merge-cfg").collect();
        assert_eq!(mine.len(), 2);
        let e = mine
            .iter()
            .find(|a| a.kind == AlarmType::PluginError)
            .unwrap();
        assert_eq!(
            (e.count, e.level, e.message.as_str()),
            (2, Level::Error, "second")
        );
        assert!(take_alarms().0.iter().all(|a| a.config != "merge-cfg"));
    }

    #[test]
    fn stats_are_shared_per_name() {
        let a = plugin_stats("stats-cfg", "x/0");
        PluginStats::add(&a.events_in, 5);
        let b = plugin_stats("stats-cfg", "x/0");
        assert_eq!(b.events_in.load(Ordering::Relaxed), 5);
        forget_config("stats-cfg");
        assert_eq!(
            plugin_stats("stats-cfg", "x/0")
                .events_in
                .load(Ordering::Relaxed),
            0
        );
    }
}
