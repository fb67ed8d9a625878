//! Statistics and alarms.
//!
//! Every plugin instance has a [`PluginStats`] (atomic counters, cheap to bump per group) and
//! every problem worth a human's attention raises an [`Alarm`]. Alarms with the same config,
//! plugin and type are merged (count + last message) until the reporter sends them, so a
//! plugin failing on every event cannot flood the host. Each engine has its own [`Stats`];
//! the reporter ([`crate::report`]) turns them into log groups for the host.

use crate::event::EventGroup;
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
    /// Event groups received (flushers).
    pub groups_in: AtomicU64,
    /// Event groups handed on (inputs, aggregators).
    pub groups_out: AtomicU64,
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

    /// Counts `groups` (events, bytes and groups) as handed on.
    pub fn add_groups_out(&self, groups: &[EventGroup]) {
        self.add_out(sizes(groups));
        Self::add(&self.groups_out, groups.len() as u64);
    }

    /// Counts (events, bytes) as handed on (see [`sizes`]).
    pub fn add_out(&self, (events, bytes): (u64, u64)) {
        Self::add(&self.events_out, events);
        Self::add(&self.bytes_out, bytes);
    }

    /// Every counter by name (`time_ms` in milliseconds; `queue_depth` is a gauge).
    pub fn snapshot(&self) -> [(&'static str, u64); 13] {
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
            ("groups_in", g(&self.groups_in)),
            ("groups_out", g(&self.groups_out)),
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

/// Most counter sets of removed configs kept for a host that pulls (the oldest go first).
const MAX_RETIRED: usize = 10_000;

/// Counter sets by (config, plugin).
pub type CounterSets = Vec<((String, String), Arc<PluginStats>)>;

#[derive(Default)]
struct Registry {
    plugins: BTreeMap<(String, String), Arc<PluginStats>>,
    alarms: BTreeMap<AlarmKey, Alarm>,
    overflow: u64,
    /// Keep the counters of removed configs until the next [`Stats::take_counters`].
    retire: bool,
    retired: std::collections::VecDeque<((String, String), Arc<PluginStats>)>,
}

impl Registry {
    /// Adds one alarm (or `a.count` raises of it), merging with a pending one of its key.
    fn merge(&mut self, a: Alarm) {
        let key = (a.config.clone(), a.plugin.clone(), a.kind);
        if let Some(p) = self.alarms.get_mut(&key) {
            p.count += a.count;
            p.level = p.level.max(a.level);
            p.message = a.message;
            return;
        }
        if self.alarms.len() >= MAX_PENDING_ALARMS {
            self.overflow += a.count;
            return;
        }
        self.alarms.insert(key, a);
    }
}

/// The statistics and alarms of one engine: counters per (config, plugin) and the pending
/// alarms. Cheap to clone (a shared handle).
#[derive(Clone, Default)]
pub struct Stats(Arc<Mutex<Registry>>);

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.lock();
        f.debug_struct("Stats")
            .field("plugins", &r.plugins.len())
            .field("alarms", &r.alarms.len())
            .finish()
    }
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters of `plugin` in `config`, created on first use (kept across restarts and
    /// reloads of the same name).
    pub fn plugin(&self, config: &str, plugin: &str) -> Arc<PluginStats> {
        self.lock()
            .plugins
            .entry((config.to_string(), plugin.to_string()))
            .or_default()
            .clone()
    }

    /// Forgets the counters of a removed config (kept until the next
    /// [`Stats::take_counters`] once a host pulls them: what they counted since the last pull
    /// still reaches it).
    pub fn forget_config(&self, config: &str) {
        let mut r = self.lock();
        let retire = r.retire;
        let mut gone = Vec::new();
        r.plugins.retain(|k, s| {
            let keep = k.0 != config;
            if !keep && retire {
                gone.push((k.clone(), s.clone()));
            }
            keep
        });
        r.retired.extend(gone);
        while r.retired.len() > MAX_RETIRED {
            r.retired.pop_front();
        }
    }

    /// For a host that pulls the counters: every live counter set, and the sets of configs
    /// removed since the last call (from the first call on, removed configs' sets are kept
    /// for the next one).
    pub fn take_counters(&self) -> (CounterSets, CounterSets) {
        let mut r = self.lock();
        r.retire = true;
        let live = r
            .plugins
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        (live, r.retired.drain(..).collect())
    }

    /// How many (config, plugin) counter sets are kept.
    pub fn counter_sets(&self) -> usize {
        self.lock().plugins.len()
    }

    /// Every counter set, by (config, plugin).
    pub fn counters(&self) -> CounterSets {
        self.lock()
            .plugins
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect()
    }

    /// Raises an alarm (also logged).
    pub fn alarm(
        &self,
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
        self.lock().merge(Alarm {
            kind,
            level,
            message,
            config: config.to_string(),
            plugin: plugin.to_string(),
            count: 1,
        });
    }

    /// Takes every pending alarm (and a count of those that did not fit).
    pub fn take_alarms(&self) -> (Vec<Alarm>, u64) {
        let mut r = self.lock();
        let alarms = std::mem::take(&mut r.alarms).into_values().collect();
        (alarms, std::mem::take(&mut r.overflow))
    }

    /// Puts back alarms taken by [`Stats::take_alarms`] that could not be delivered: they
    /// merge with those raised since (counts add up, the newer message wins), so what is kept
    /// stays bounded by the number of distinct alarms.
    pub fn restore_alarms(&self, alarms: Vec<Alarm>, overflow: u64) {
        let mut r = self.lock();
        for mut a in alarms {
            let key = (a.config.clone(), a.plugin.clone(), a.kind);
            if let Some(newer) = r.alarms.get_mut(&key) {
                newer.count += a.count;
                newer.level = newer.level.max(a.level);
                continue;
            }
            a.count = a.count.max(1);
            r.merge(a);
        }
        r.overflow += overflow;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_merge_by_key_and_drain() {
        let s = Stats::default();
        s.alarm(AlarmType::PluginError, Level::Warning, "c", "p/0", "first");
        s.alarm(AlarmType::PluginError, Level::Error, "c", "p/0", "second");
        s.alarm(AlarmType::DataDropped, Level::Error, "c", "p/0", "drop");
        let (alarms, _) = s.take_alarms();
        assert_eq!(alarms.len(), 2);
        let e = alarms
            .iter()
            .find(|a| a.kind == AlarmType::PluginError)
            .unwrap();
        assert_eq!(
            (e.count, e.level, e.message.as_str()),
            (2, Level::Error, "second")
        );
        assert!(s.take_alarms().0.is_empty());
    }

    #[test]
    fn restored_alarms_merge_with_newer_ones() {
        let s = Stats::default();
        s.alarm(AlarmType::SendFailed, Level::Warning, "c", "", "old");
        let (taken, overflow) = s.take_alarms();
        s.alarm(AlarmType::SendFailed, Level::Error, "c", "", "new");
        s.restore_alarms(taken, overflow);
        let (alarms, _) = s.take_alarms();
        assert_eq!(alarms.len(), 1);
        assert_eq!(
            (alarms[0].count, alarms[0].level, alarms[0].message.as_str()),
            (2, Level::Error, "new")
        );
    }

    #[test]
    fn stats_are_shared_per_name_and_forgotten_with_the_config() {
        let s = Stats::default();
        let a = s.plugin("stats-cfg", "x/0");
        PluginStats::add(&a.events_in, 5);
        let b = s.plugin("stats-cfg", "x/0");
        assert_eq!(b.events_in.load(Ordering::Relaxed), 5);
        s.forget_config("stats-cfg");
        assert_eq!(s.counter_sets(), 0);
        assert_eq!(
            s.plugin("stats-cfg", "x/0")
                .events_in
                .load(Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn two_registries_are_independent() {
        let (a, b) = (Stats::default(), Stats::default());
        a.alarm(AlarmType::PluginError, Level::Error, "c", "", "only in a");
        a.plugin("c", "p");
        assert!(b.take_alarms().0.is_empty());
        assert_eq!(b.counter_sets(), 0);
    }
}
