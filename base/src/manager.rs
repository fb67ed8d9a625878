//! The lifecycle state machine behind the exports: configs are loaded while the plugin
//! system is held, run after `Resume`, and are stopped (parking their undelivered data for
//! their successor) by `HoldOn` or `Stop`.
//!
//! One mutex guards the state; exports that only push data (`ProcessLog*`) look up the
//! config's feed under a separate read lock and never wait on the state mutex, so a host
//! thread blocked on back-pressure cannot hold up `HoldOn`.

use crate::config::{self, ConfigError, PipelineConfig};
use crate::context::{HostIdentity, PackIds, PluginContext};
use crate::event::EventGroup;
use crate::host::{self, FlushControl, FlushMode, Payload};
use crate::pipeline::{Feed, Pipeline, PushError};
use crate::store::Store;
use once_cell::sync::Lazy;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

/// Result codes returned by the exports (never reused; see [`Code::describe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum Code {
    /// Success.
    Ok = 0,
    /// Generic failure (what `LoadConfig` returns for any error, as the ABI requires).
    Failed = 1,
    /// A pointer/length argument was invalid (NULL with a length, negative length).
    InvalidArgument = 2,
    /// Text that must be UTF-8 was not.
    InvalidUtf8 = 3,
    /// Bytes were not a valid protobuf message.
    BadProtobuf = 4,
    /// No config of that name is loaded.
    UnknownConfig = 5,
    /// The config is loaded but not running (HoldOn in progress or not resumed).
    NotRunning = 6,
    /// The pipeline stayed full for the whole back-pressure wait.
    Timeout = 7,
    /// `InitPluginBase` has not been called (or failed).
    NotInitialized = 8,
    /// A panic was caught at the boundary.
    Internal = 9,
}

impl Code {
    /// A short description of the code.
    pub const fn describe(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::Failed => "failed",
            Code::InvalidArgument => "invalid pointer or length argument",
            Code::InvalidUtf8 => "argument is not valid UTF-8",
            Code::BadProtobuf => "malformed protobuf",
            Code::UnknownConfig => "unknown config",
            Code::NotRunning => "config is not running",
            Code::Timeout => "pipeline full: back-pressure wait timed out",
            Code::NotInitialized => "InitPluginBase has not been called",
            Code::Internal => "internal error (panic caught)",
        }
    }
}

/// The V2 init JSON (unknown keys ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InitJson {
    #[serde(rename = "LogtailSysConfDir")]
    sys_conf_dir: Option<String>,
    #[serde(rename = "LoongCollectorDataDir")]
    data_dir: Option<String>,
    #[serde(rename = "LoongCollectorConfDir")]
    conf_dir: Option<String>,
    #[serde(rename = "LoongCollectorGoCheckPointDir")]
    checkpoint_dir: Option<String>,
    #[serde(rename = "HostIP")]
    host_ip: Option<String>,
    #[serde(rename = "Hostname")]
    hostname: Option<String>,
}

/// Settings from `LoadGlobalConfig` (first call only; unknown keys ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct Tunables {
    /// Longest `HoldOn(1)` / `Stop(name, 1)` spends delivering before parking the rest.
    #[serde(rename = "HoldOnTimeoutMs")]
    hold_on_timeout_ms: u64,
    /// Longest a `ProcessLog*` call blocks on back-pressure before returning `Timeout`.
    #[serde(rename = "ProcessTimeoutMs")]
    process_timeout_ms: u64,
    /// How often alarms are sent to the host (config `logtail_alarm`).
    #[serde(rename = "AlarmIntervalMs")]
    alarm_interval_ms: u64,
    /// How often statistics are sent (config `shennong_log_profile`).
    #[serde(rename = "StatisticsIntervalMs")]
    statistics_interval_ms: u64,
    /// Checkpoints of a config absent this long are deleted.
    #[serde(rename = "CheckpointTTLSeconds")]
    checkpoint_ttl_seconds: u64,
    #[serde(rename = "HostIP")]
    host_ip: Option<String>,
    #[serde(rename = "Hostname")]
    hostname: Option<String>,
}

impl Default for Tunables {
    fn default() -> Self {
        Self {
            hold_on_timeout_ms: 5000,
            process_timeout_ms: 10_000,
            alarm_interval_ms: 10_000,
            statistics_interval_ms: 60_000,
            checkpoint_ttl_seconds: 3600,
            host_ip: None,
            hostname: None,
        }
    }
}

struct Env {
    host: Arc<HostIdentity>,
    store: Option<Store>,
    rt: tokio::runtime::Handle,
}

struct ConfigSlot {
    project: String,
    logstore: String,
    logstore_key: i64,
    pipeline: Pipeline,
}

#[derive(Default)]
struct State {
    env: Option<Env>,
    tunables: Tunables,
    global_loaded: bool,
    running: bool,
    configs: BTreeMap<String, ConfigSlot>,
    pack_ids: HashMap<String, Arc<PackIds>>,
    volatile: HashMap<String, Arc<Mutex<HashMap<String, u64>>>>,
    /// Undelivered data of removed configs, sent on the next Resume.
    orphans: Arc<Mutex<VecDeque<Payload>>>,
    orphan_sender: Option<(Arc<FlushControl>, std::thread::JoinHandle<()>)>,
}

/// The process-wide plugin system.
pub struct Manager {
    state: Mutex<State>,
    feeds: RwLock<HashMap<String, Feed>>,
    /// `ProcessTimeoutMs`, readable without the state lock.
    process_wait_ms: AtomicU64,
    /// `AlarmIntervalMs` and `StatisticsIntervalMs`, read by the reporter thread.
    alarm_ms: AtomicU64,
    profile_ms: AtomicU64,
}

static MANAGER: Lazy<Manager> = Lazy::new(|| Manager {
    state: Mutex::new(State::default()),
    feeds: RwLock::new(HashMap::new()),
    process_wait_ms: AtomicU64::new(Tunables::default().process_timeout_ms),
    alarm_ms: AtomicU64::new(Tunables::default().alarm_interval_ms),
    profile_ms: AtomicU64::new(Tunables::default().statistics_interval_ms),
});

/// The process-wide manager.
pub fn get() -> &'static Manager {
    &MANAGER
}

/// How often checkpoints of removed configs are looked at.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

fn default_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Manager {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `InitPluginBase[V2]`: once only; opens the checkpoint store and finds the adaptor.
    pub fn init(&'static self, json: Option<&str>) -> Code {
        let mut st = self.lock();
        if st.env.is_some() {
            return Code::Ok;
        }
        let cfg: InitJson = match json.filter(|j| !j.trim().is_empty()) {
            None => InitJson::default(),
            Some(j) => match serde_json::from_str(j) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "InitPluginBaseV2: invalid JSON");
                    return Code::Failed;
                }
            },
        };
        let dir = cfg
            .checkpoint_dir
            .map(PathBuf::from)
            .or_else(|| {
                cfg.data_dir
                    .map(|d| PathBuf::from(d).join("go_plugin_checkpoint"))
            })
            .or_else(|| {
                cfg.conf_dir
                    .map(|d| PathBuf::from(d).join("go_plugin_checkpoint"))
            })
            .or_else(|| {
                cfg.sys_conf_dir
                    .map(|d| PathBuf::from(d).join("go_plugin_checkpoint"))
            })
            .unwrap_or_else(|| PathBuf::from("go_plugin_checkpoint"));
        let store = match Store::open(&dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "InitPluginBase: cannot open the checkpoint store");
                return Code::Failed;
            }
        };
        host::init();
        let spilled = store.spilled();
        if !spilled.is_empty() {
            tracing::info!(
                groups = spilled.len(),
                logs = spilled.iter().map(|p| p.lines).sum::<usize>(),
                "re-sending log groups the host had not accepted before the last exit"
            );
            st.orphans
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(spilled);
        }
        let t = &st.tunables;
        let host = HostIdentity {
            ip: t.host_ip.clone().or(cfg.host_ip).unwrap_or_default(),
            hostname: t
                .hostname
                .clone()
                .or(cfg.hostname)
                .unwrap_or_else(default_hostname),
        };
        tracing::info!(checkpoint = %dir.display(), ip = %host.ip, hostname = %host.hostname, "plugin base initialised");
        let host = Arc::new(host);
        self.start_reporter(host.clone());
        st.env = Some(Env {
            host,
            store: Some(store),
            rt: crate::runtime::handle(),
        });
        Code::Ok
    }

    /// Sends alarms every `AlarmIntervalMs` and statistics every `StatisticsIntervalMs`.
    fn start_reporter(&'static self, host: Arc<HostIdentity>) {
        let spawned = std::thread::Builder::new()
            .name("plugin-reporter".into())
            .spawn(move || {
                let (mut last_alarm, mut last_profile) = (Instant::now(), Instant::now());
                let mut last_maintenance = Instant::now();
                loop {
                    if last_maintenance.elapsed() >= MAINTENANCE_EVERY {
                        self.maintain_checkpoints();
                        last_maintenance = Instant::now();
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    let alarm_every = Duration::from_millis(self.alarm_ms.load(Ordering::Relaxed));
                    let profile_every =
                        Duration::from_millis(self.profile_ms.load(Ordering::Relaxed));
                    let profile_due = last_profile.elapsed() >= profile_every;
                    if last_alarm.elapsed() >= alarm_every || profile_due {
                        crate::stats::report(&host, profile_due, 5);
                        last_alarm = Instant::now();
                        if profile_due {
                            last_profile = Instant::now();
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the statistics and alarm reporter");
        }
    }

    /// Marks loaded configs as seen and deletes checkpoints of long-gone ones. Skipped when
    /// the state is busy (a HoldOn in progress): it runs again a minute later.
    fn maintain_checkpoints(&self) {
        let Ok(st) = self.state.try_lock() else {
            return;
        };
        let Some(store) = st.env.as_ref().and_then(|e| e.store.clone()) else {
            return;
        };
        let loaded: std::collections::HashSet<String> = st.configs.keys().cloned().collect();
        let ttl = st.tunables.checkpoint_ttl_seconds;
        drop(st);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        store.mark_seen(loaded.iter().map(String::as_str), now);
        store.cleanup(&loaded, ttl, now);
    }

    /// `LoadGlobalConfig`: applied on the first call only.
    pub fn load_global(&self, json: &str) -> Code {
        let mut st = self.lock();
        let t: Tunables = match serde_json::from_str(json) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "LoadGlobalConfig: invalid JSON");
                return Code::Failed;
            }
        };
        if st.global_loaded {
            return Code::Ok;
        }
        st.global_loaded = true;
        self.process_wait_ms
            .store(t.process_timeout_ms, Ordering::Relaxed);
        self.alarm_ms
            .store(t.alarm_interval_ms.max(100), Ordering::Relaxed);
        self.profile_ms
            .store(t.statistics_interval_ms.max(100), Ordering::Relaxed);
        st.tunables = t;
        Code::Ok
    }

    /// `LoadConfig`: load, replace (same name) or remove (empty JSON) a config while held.
    pub fn load_config(
        &self,
        project: &str,
        logstore: &str,
        name: &str,
        logstore_key: i64,
        json: &str,
    ) -> Code {
        let mut st = self.lock();
        let Some((host, store)) = st.env.as_ref().map(|e| (e.host.clone(), e.store.clone())) else {
            tracing::error!(config = name, "LoadConfig before InitPluginBase");
            return Code::Failed;
        };
        if st.running {
            tracing::error!(
                config = name,
                "LoadConfig is accepted only while the plugin system is held (call HoldOn(0) first)"
            );
            return Code::Failed;
        }
        if name.is_empty() {
            tracing::error!("LoadConfig: empty config name");
            return Code::Failed;
        }
        if json.trim().is_empty() {
            if let Some(old) = st.configs.remove(name) {
                let moved: Vec<Payload> = old
                    .pipeline
                    .parked()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain(..)
                    .collect();
                Self::adopt_orphans(&st, moved);
                st.pack_ids.remove(name);
                st.volatile.remove(name);
                tracing::info!(config = name, "config removed");
            }
            return Code::Ok;
        }
        let config = match config::parse(name, json) {
            Ok(c) => c,
            Err(errors) => {
                for e in &errors {
                    crate::stats::alarm(
                        crate::stats::AlarmType::ConfigError,
                        crate::stats::Level::Error,
                        name,
                        e.plugin.as_deref().unwrap_or(""),
                        format!("LoadConfig failed: {e}"),
                    );
                }
                return Code::Failed;
            }
        };
        let pack_ids = st
            .pack_ids
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(PackIds::new(format!(
                    "{name}\0{}\0{}",
                    host.ip,
                    now_nanos()
                )))
            })
            .clone();
        let cx = PluginContext {
            config_name: name.into(),
            project: project.into(),
            logstore: logstore.into(),
            logstore_key,
            host,
            pack_ids,
            global: config.global.clone(),
            store,
            plugin: "".into(),
            volatile: st.volatile.entry(name.to_string()).or_default().clone(),
        };
        // A replaced config hands its undelivered data to its successor.
        let parked = st
            .configs
            .get(name)
            .map(|s| s.pipeline.parked())
            .unwrap_or_default();
        let pipeline = match Pipeline::new(config, cx, parked) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(config = name, error = %e, "LoadConfig failed");
                return Code::Failed;
            }
        };
        let replaced = st
            .configs
            .insert(
                name.to_string(),
                ConfigSlot {
                    project: project.to_string(),
                    logstore: logstore.to_string(),
                    logstore_key,
                    pipeline,
                },
            )
            .is_some();
        tracing::info!(config = name, replaced, "config loaded");
        Code::Ok
    }

    /// `UnloadConfig`: removes a config while held.
    pub fn unload_config(&self, name: &str) -> Code {
        if self.lock().running {
            tracing::error!(config = name, "UnloadConfig while running");
            return Code::Failed;
        }
        if !self.lock().configs.contains_key(name) {
            return Code::UnknownConfig;
        }
        self.load_config("", "", name, -1, "")
    }

    fn stop_pipelines(&self, st: &mut State, names: &[String], mode: FlushMode) {
        let Some(env) = &st.env else { return };
        let rt = env.rt.clone();
        let timeout = Duration::from_millis(st.tunables.hold_on_timeout_ms);
        let deadline = Instant::now() + timeout;
        {
            let mut feeds = self.feeds.write().unwrap_or_else(|e| e.into_inner());
            for n in names {
                feeds.remove(n);
            }
        }
        let mut stopping = Vec::new();
        for n in names {
            if let Some(s) = st.configs.get_mut(n) {
                if s.pipeline.is_running() {
                    s.pipeline.begin_stop(mode, deadline);
                    stopping.push(n.clone());
                }
            }
        }
        for n in &stopping {
            if let Some(s) = st.configs.get_mut(n) {
                s.pipeline.finish_stop(&rt, deadline);
                let (groups, logs) = s.pipeline.parked_counts();
                if groups > 0 {
                    tracing::info!(config = %n, groups, logs, "undelivered data parked for the next run");
                }
            }
        }
    }

    fn stop_orphan_sender(st: &mut State) {
        if let Some((ctl, h)) = st.orphan_sender.take() {
            ctl.set(FlushMode::Park, None);
            let _ = h.join();
        }
    }

    /// `HoldOn(exitFlag)`: stops every running config within a bounded time.
    pub fn hold_on(&self, exit: bool) {
        let started = Instant::now();
        let mut st = self.lock();
        let names: Vec<String> = st.configs.keys().cloned().collect();
        let mode = if exit {
            FlushMode::Drain
        } else {
            FlushMode::Park
        };
        self.stop_pipelines(&mut st, &names, mode);
        Self::stop_orphan_sender(&mut st);
        st.running = false;
        if exit {
            Self::spill_undelivered(&mut st);
        }
        // Checkpoints (including positions committed by the spill above) reach the disk.
        if let Some(store) = st.env.as_ref().and_then(|e| e.store.as_ref()) {
            store.flush();
        }
        if exit {
            if let Some(env) = &st.env {
                crate::stats::report(&env.host, true, 1);
            }
        }
        tracing::info!(
            exit,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "HoldOn done"
        );
    }

    /// Takes over the undelivered data of a removed config: persisted at once (so a crash
    /// cannot lose it) and sent by the removed-data sender after the next Resume.
    fn adopt_orphans(st: &State, mut moved: Vec<Payload>) {
        if moved.is_empty() {
            return;
        }
        if let Some(store) = st.env.as_ref().and_then(|e| e.store.as_ref()) {
            match store.spill(&mut moved) {
                Ok(_) => moved.iter_mut().for_each(|p| p.acks.clear()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot persist a removed config's undelivered data; it is kept in memory")
                }
            }
        }
        st.orphans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(moved);
    }

    /// At exit: moves every undelivered group (parked by pipelines or left by removed configs)
    /// into the store, so the next process start re-sends it with the same pack ids.
    fn spill_undelivered(st: &mut State) {
        let mut all: Vec<Payload> = Vec::new();
        for s in st.configs.values() {
            let parked = s.pipeline.parked();
            let mut q = parked.lock().unwrap_or_else(|e| e.into_inner());
            all.extend(q.drain(..));
        }
        let orphans = st.orphans.clone();
        let mut q = orphans.lock().unwrap_or_else(|e| e.into_inner());
        all.extend(q.drain(..));
        if all.is_empty() {
            return;
        }
        let logs: usize = all.iter().map(|p| p.lines).sum();
        match st.env.as_ref().and_then(|e| e.store.as_ref()) {
            Some(store) => match store.spill(&mut all) {
                Ok(n) => {
                    // Persisted: the inputs may commit past these groups now.
                    for p in &mut all {
                        p.acks.clear();
                    }
                    tracing::warn!(
                    groups = all.len(),
                    logs,
                    newly_persisted = n,
                    "the host did not accept these log groups before exit; kept in the checkpoint store and re-sent after the next start"
                    )
                }
                Err(e) => {
                    tracing::error!(groups = all.len(), logs, error = %e, "cannot persist undelivered log groups at exit: they are lost")
                }
            },
            None => tracing::error!(
                groups = all.len(),
                logs,
                "no checkpoint store: undelivered log groups are lost at exit"
            ),
        }
        // Kept in memory too, in case the host resumes instead of exiting.
        q.extend(all);
    }

    /// `Resume`: starts every loaded config (and delivery of removed configs' data).
    pub fn resume(&self) -> Code {
        let mut st = self.lock();
        let Some((rt, store)) = st.env.as_ref().map(|e| (e.rt.clone(), e.store.clone())) else {
            tracing::error!("Resume before InitPluginBase");
            return Code::NotInitialized;
        };
        if st.running {
            return Code::Ok;
        }
        let mut feeds = HashMap::new();
        for (name, slot) in st.configs.iter_mut() {
            match slot.pipeline.start(&rt) {
                Ok(()) => {
                    if let Some(f) = slot.pipeline.feed() {
                        feeds.insert(name.clone(), f);
                    }
                }
                Err(e) => tracing::error!(config = %name, error = %e, "cannot start config"),
            }
        }
        *self.feeds.write().unwrap_or_else(|e| e.into_inner()) = feeds;
        let has_orphans = !st
            .orphans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if has_orphans {
            let ctl = Arc::new(FlushControl::new(st.orphans.clone()));
            let c = ctl.clone();
            match std::thread::Builder::new()
                .name("flush-removed".into())
                .spawn(move || {
                    host::deliver_parked_then(&c, |p| {
                        if let (Some(s), Some(k)) = (&store, &p.spill_key) {
                            s.unspill(k);
                        }
                    });
                }) {
                Ok(h) => st.orphan_sender = Some((ctl, h)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start delivery of removed configs' data")
                }
            }
        }
        st.running = true;
        tracing::info!(configs = st.configs.len(), "resumed");
        Code::Ok
    }

    /// `Stop(configName, removedFlag)`: stops one config; removed configs deliver within the
    /// bound and their rest is sent later by the removed-data sender.
    pub fn stop(&self, name: &str, removed: bool) -> Code {
        let mut st = self.lock();
        if !st.configs.contains_key(name) {
            return Code::UnknownConfig;
        }
        let mode = if removed {
            FlushMode::Drain
        } else {
            FlushMode::Park
        };
        self.stop_pipelines(&mut st, &[name.to_string()], mode);
        if removed {
            if let Some(old) = st.configs.remove(name) {
                let moved: Vec<Payload> = old
                    .pipeline
                    .parked()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain(..)
                    .collect();
                Self::adopt_orphans(&st, moved);
            }
            st.pack_ids.remove(name);
            st.volatile.remove(name);
        }
        Code::Ok
    }

    /// Pushes a host-fed group into `name`'s processors, blocking (bounded) on back-pressure.
    pub fn push(&self, name: &str, group: EventGroup) -> Code {
        let feed = self
            .feeds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        let Some(feed) = feed else {
            // Never wait behind a HoldOn in progress: the config is not running then.
            let Ok(st) = self.state.try_lock() else {
                return Code::NotRunning;
            };
            return if st.env.is_none() {
                Code::NotInitialized
            } else if st.configs.contains_key(name) {
                Code::NotRunning
            } else {
                Code::UnknownConfig
            };
        };
        let wait = Duration::from_millis(self.process_wait_ms.load(Ordering::Relaxed));
        match feed.send_blocking(group, wait, &crate::runtime::handle()) {
            Ok(()) => Code::Ok,
            Err(PushError::Closed) => Code::NotRunning,
            Err(PushError::Timeout) => {
                tracing::warn!(
                    config = name,
                    "ProcessLog: pipeline stayed full; returning Timeout to the host"
                );
                Code::Timeout
            }
        }
    }

    /// Whether `InitPluginBase` succeeded.
    pub fn initialized(&self) -> bool {
        self.lock().env.is_some()
    }

    /// Checks a config without loading it.
    pub fn check(name: &str, json: &str) -> Result<PipelineConfig, Vec<ConfigError>> {
        config::parse(name, json)
    }

    /// Names of loaded configs with (project, logstore, key, running).
    pub fn configs(&self) -> Vec<(String, String, String, i64, bool)> {
        self.lock()
            .configs
            .iter()
            .map(|(n, s)| {
                (
                    n.clone(),
                    s.project.clone(),
                    s.logstore.clone(),
                    s.logstore_key,
                    s.pipeline.is_running(),
                )
            })
            .collect()
    }
}
