//! What a plugin may touch: its names, the host identity, pack-id sequences and checkpoints.

use crate::stats::{AlarmType, Level, Stats};
use crate::store::Store;
use bytes::Bytes;
use serde::Deserialize;
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// Pipeline-wide settings (`"global"`). Unknown keys are ignored: hosts add their own
/// ([`crate::config::warnings`] lists those no host generation uses).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GlobalConfig {
    /// Interval of metric inputs (`metric_mock`), in milliseconds.
    pub input_interval_ms: u64,
    /// Interval at which aggregators flush partial groups, in milliseconds; 0 flushes them
    /// whenever the pipeline's queue runs empty (no waiting).
    pub aggregat_interval_ms: u64,
    /// Accepted and ignored: flushers deliver each log group as soon as it is ready. In
    /// iLogtail's Go plugin system it only sets `FlusherWrapper.Interval`, which nothing
    /// reads (`addFlusher` in `pluginmanager/plugin_runner_v1.go` and `_v2.go`).
    pub flush_interval_ms: u64,
    /// Capacity of the queue between inputs and processors, in events.
    pub default_log_queue_size: usize,
    /// Capacity of the queue between aggregators and flushers, in log groups.
    pub default_log_group_queue_size: usize,
    /// Write `Time_ns` on sent logs.
    pub enable_timestamp_nanosecond: bool,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            input_interval_ms: 1000,
            aggregat_interval_ms: 3000,
            flush_interval_ms: 3000,
            default_log_queue_size: 10_000,
            default_log_group_queue_size: 4,
            enable_timestamp_nanosecond: false,
        }
    }
}

/// Who we are, from `InitPluginBaseV2` / `LoadGlobalConfig`.
#[derive(Debug, Clone, Default)]
pub struct HostIdentity {
    /// Written as `Source` on every sent group.
    pub ip: String,
    /// Host name.
    pub hostname: String,
}

/// Marks a source whose pack-id prefix is the host's (a NUL cannot start an input's source:
/// config names have none).
const HOST_PREFIX: &[u8] = b"\0host-pack-id\0";

/// Per-config pack-id sequences, one per source, kept across reloads of the config so that
/// a receiver sees gap-free sequences.
#[derive(Debug, Default)]
pub struct PackIds {
    seed: String,
    sources: Mutex<HashMap<Bytes, (String, u64)>>,
}

impl PackIds {
    /// Sequences for one config; `seed` makes prefixes unique per config, host and process.
    pub fn new(seed: String) -> Self {
        Self {
            seed,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// The source of host-fed groups whose pack ids use the host's `pack_id` as their prefix
    /// (LoongCollector 3.x: `__pack_id__ = <packId>-<seq>`, as the Go aggregator writes it).
    pub fn host_prefix_source(pack_id: &str) -> Bytes {
        let mut s = Vec::with_capacity(HOST_PREFIX.len() + pack_id.len());
        s.extend_from_slice(HOST_PREFIX);
        s.extend_from_slice(pack_id.trim_end_matches('-').as_bytes());
        Bytes::from(s)
    }

    /// The last sequence used for each host prefix (see [`PackIds::host_prefix_source`]).
    pub fn host_sequences(&self) -> Vec<(String, u64)> {
        let map = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|(s, _)| s.starts_with(HOST_PREFIX))
            .map(|(_, (prefix, seq))| (prefix.clone(), *seq))
            .collect()
    }

    /// Continues the sequence of host prefix `prefix` after `seq` (an earlier process used
    /// it up to there): a receiver never sees one pack id for two different groups.
    pub fn continue_host(&self, prefix: &str, seq: u64) {
        let mut map = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let e = map
            .entry(Self::host_prefix_source(prefix))
            .or_insert_with(|| (prefix.to_string(), 0));
        e.1 = e.1.max(seq);
    }

    /// The next pack id for `source`: `<prefix>-<seq hex>`, sequences starting at 1; the prefix
    /// is the FNV-64a hex of the seed and the source, or the host's (see
    /// [`PackIds::host_prefix_source`]).
    pub fn next(&self, source: &Bytes) -> String {
        let mut map = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(source.clone()).or_insert_with(|| {
            if let Some(prefix) = source.strip_prefix(HOST_PREFIX) {
                return (String::from_utf8_lossy(prefix).into_owned(), 0);
            }
            let mut h = Fnv64a::new();
            h.write(self.seed.as_bytes());
            h.write(b"\0");
            h.write(source);
            (format!("{:X}", h.finish()), 0)
        });
        entry.1 += 1;
        format!("{}-{:X}", entry.0, entry.1)
    }
}

/// FNV-1a, 64 bit (what the original uses for pack-id prefixes).
#[derive(Debug, Clone, Copy)]
pub struct Fnv64a(u64);

impl Fnv64a {
    /// A fresh hasher.
    pub const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Feeds bytes.
    pub fn write(&mut self, data: &[u8]) {
        for b in data {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv64a {
    fn default() -> Self {
        Self::new()
    }
}

/// In-memory objects and positions kept by key: those of a config survive reloads of the same
/// name (not restarts); those of an engine are shared by all its configs.
#[derive(Default)]
pub struct Volatile {
    positions: Mutex<HashMap<String, u64>>,
    objects: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
}

impl fmt::Debug for Volatile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Volatile").finish_non_exhaustive()
    }
}

impl Volatile {
    /// Positions by key (where an input got to).
    pub fn positions(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.positions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The object kept under `key`, made by `make` when there is none (or one of another type).
    pub fn object<T: Any + Send + Sync>(&self, key: &str, make: impl FnOnce() -> T) -> Arc<T> {
        let mut m = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = m.get(key).cloned().and_then(|o| o.downcast::<T>().ok()) {
            return found;
        }
        let made = Arc::new(make());
        m.insert(key.to_string(), made.clone());
        made
    }

    /// The object kept under `key`, if there is one of type `T`.
    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        let m = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        m.get(key).cloned().and_then(|o| o.downcast::<T>().ok())
    }

    /// Forgets the object kept under `key`.
    pub fn remove_object(&self, key: &str) {
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Everything a plugin instance knows about where it runs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PluginContext {
    /// Config name (`LoadConfig`'s `configName`).
    pub config_name: Arc<str>,
    /// Project of the config.
    pub project: Arc<str>,
    /// Logstore: `Category` of sent groups and SendPb's logstore argument.
    pub logstore: Arc<str>,
    /// Key for `IsValidToSend`.
    pub logstore_key: i64,
    /// Host identity.
    pub host: Arc<HostIdentity>,
    /// Pack-id sequences of this config.
    pub pack_ids: Arc<PackIds>,
    /// Pipeline-wide settings.
    pub global: GlobalConfig,
    /// Checkpoint store, when the base was initialised with one.
    pub store: Option<Store>,
    /// The plugin instance this context was built for (`type/id` or `type/index`).
    pub plugin: Arc<str>,
    /// In-memory state of this config that survives reloads of the same name (not restarts):
    /// where an input got to, so its successor continues instead of starting over.
    pub volatile: Arc<Volatile>,
    /// Objects the plugins of every config of the engine share (one file watcher for all
    /// `input_file`s, say); kept as long as the engine.
    pub shared: Arc<Volatile>,
    /// Statistics and alarms of the engine running the plugin.
    pub stats: Stats,
    /// The config's queue to the host (`None` when validating): for a flusher that hands
    /// groups to the host from a thread of its own (`flusher_sls` with a disk buffer).
    pub host_queue: Option<HostQueueRef>,
}

/// A shared handle on a config's queue to the host.
#[derive(Clone)]
pub struct HostQueueRef(pub Arc<dyn super::HostQueue + Send + Sync>);

impl std::fmt::Debug for HostQueueRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostQueueRef")
    }
}

impl PluginContext {
    /// A context for validating a config without running it.
    pub fn for_check(config_name: &str) -> Self {
        Self {
            config_name: config_name.into(),
            project: "".into(),
            logstore: "".into(),
            logstore_key: -1,
            host: Arc::default(),
            pack_ids: Arc::default(),
            global: GlobalConfig::default(),
            store: None,
            plugin: "".into(),
            volatile: Arc::default(),
            shared: Arc::default(),
            stats: Stats::default(),
            host_queue: None,
        }
    }

    /// A copy without the config's volatile objects and the engine's shared ones: for state
    /// kept inside them (a tracker kept across reloads), which would otherwise keep itself
    /// alive through its own context.
    pub fn detached(&self) -> Self {
        Self {
            volatile: Arc::default(),
            shared: Arc::default(),
            ..self.clone()
        }
    }

    /// Raises an alarm about this plugin (merged with alarms of the same type until reported).
    pub fn alarm(&self, kind: AlarmType, level: Level, message: impl Into<String>) {
        self.stats
            .alarm(kind, level, &self.config_name, &self.plugin, message);
    }

    /// Saves a serde object as JSON under `<config>^<key>`.
    ///
    /// # Errors
    /// When serialization or the store fails.
    pub fn save_object<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), String> {
        let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        self.save_checkpoint(key, &bytes)
    }

    /// Reads an object saved with [`PluginContext::save_object`] (None when absent or unreadable).
    pub fn get_object<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        serde_json::from_slice(&self.get_checkpoint(key)?).ok()
    }

    /// A window of acknowledgements whose committed position is saved as checkpoint `key`
    /// (see [`crate::ack`]).
    pub fn ack_window(&self, key: &str) -> Arc<crate::ack::AckWindow> {
        let cx = self.clone();
        let key = key.to_string();
        crate::ack::AckWindow::new(move |position| {
            if let Err(e) = cx.save_object(&key, &position) {
                cx.alarm(
                    AlarmType::CheckpointError,
                    Level::Error,
                    format!("cannot save checkpoint {key}: {e}"),
                );
            }
        })
    }

    /// Saves a checkpoint under `<config>^<key>`.
    ///
    /// # Errors
    /// When no store is open or the write fails.
    pub fn save_checkpoint(&self, key: &str, value: &[u8]) -> Result<(), String> {
        match &self.store {
            Some(s) => s
                .save(&self.config_name, key, value)
                .map_err(|e| e.to_string()),
            None => Err("no checkpoint store".into()),
        }
    }

    /// Saves `value` under `<config>^<key>` in the plugin tree `tree` (queued).
    ///
    /// # Errors
    /// When no store is open or the write cannot be queued.
    pub fn tree_save(&self, tree: &'static str, key: &str, value: &[u8]) -> Result<(), String> {
        match &self.store {
            Some(s) => s
                .tree_save(tree, &self.config_name, key, value)
                .map_err(|e| e.to_string()),
            None => Err("no checkpoint store".into()),
        }
    }

    /// Removes `<config>^<key>` from the plugin tree `tree` (queued; a no-op without a store).
    pub fn tree_remove(&self, tree: &'static str, key: &str) {
        if let Some(s) = &self.store {
            if let Err(e) = s.tree_remove(tree, &self.config_name, key) {
                tracing::warn!(error = %e, tree, key, "cannot remove plugin state");
            }
        }
    }

    /// Every `(key, value)` of this config in the plugin tree `tree` (empty without a store or
    /// when it does not answer within [`crate::store::READ_WAIT`]).
    pub fn tree_list(&self, tree: &'static str) -> Vec<(String, Vec<u8>)> {
        let Some(s) = &self.store else {
            return Vec::new();
        };
        s.tree_list(tree, &self.config_name, "", crate::store::READ_WAIT)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, tree, "cannot read plugin state");
                Vec::new()
            })
    }

    /// Writes everything saved so far to disk, waiting at most `wait` (for state that must
    /// survive a crash right after it was saved: that a task has started, say).
    ///
    /// # Errors
    /// When no store is open, or the flush fails or does not complete in time.
    pub fn flush_store(&self, wait: std::time::Duration) -> Result<(), String> {
        match &self.store {
            Some(s) => s.flush(wait).map_err(|e| e.to_string()),
            None => Err("no checkpoint store".into()),
        }
    }

    /// Reads a checkpoint saved by [`PluginContext::save_checkpoint`].
    pub fn get_checkpoint(&self, key: &str) -> Option<Vec<u8>> {
        self.store.as_ref()?.get(&self.config_name, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_ids_count_per_source_in_hex() {
        let p = PackIds::new("cfg".into());
        let a = Bytes::from_static(b"a");
        let ids: Vec<String> = (0..17).map(|_| p.next(&a)).collect();
        let (prefix, seq) = ids[16].split_once('-').unwrap();
        assert_eq!(seq, "11");
        assert!(ids.iter().all(|i| i.starts_with(prefix)));
        let other = p.next(&Bytes::from_static(b"b"));
        assert!(other.ends_with("-1") && !other.starts_with(prefix));
    }

    #[test]
    fn fnv64a_known_vector() {
        let mut h = Fnv64a::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63dc4c8601ec8c);
    }
}
