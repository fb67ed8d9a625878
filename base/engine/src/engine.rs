//! The lifecycle state machine behind the exports: configs are loaded while the plugin
//! system is held, run after `Resume`, and are stopped (leaving their undelivered data in
//! their [`Lane`] for their successor) by `HoldOn` or `Stop`.
//!
//! One mutex guards the state; exports that only push data (`ProcessLog*`) look up the
//! config's feed under a separate read lock and never wait on the state mutex, so a host
//! thread blocked on back-pressure cannot hold up `HoldOn`. Nothing done under the state
//! mutex waits without a bound: store operations are bounded (see [`crate::store`]) and the
//! host's SendPb is only ever called from delivery tasks.

use crate::api::{HostIdentity, PackIds, PluginContext};
use crate::config::{ConfigError, PipelineConfig};
use crate::event::EventGroup;
use crate::host::{Host, Payload};
use crate::outbox::{self, FlushControl, FlushMode, Outbox};
use crate::pipeline::{Backlog, Feed, FeedState, Lane, Pipeline, PushError, SpillBudget};
use crate::registry;
use crate::services::Services;
use crate::stats::{AlarmType, Level, Stats};
use crate::store::{BacklogSummary, Store};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Why an engine call did not do what was asked (the ABI layers map these to their codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The call failed; the reason was logged and, for configs, alarmed.
    Failed,
    /// No config of that name is loaded.
    UnknownConfig,
    /// The pipeline stayed full for the whole back-pressure wait and the data could not be
    /// kept on disk either (no store, or `SpillLimitMB` used up).
    Timeout,
    /// [`Engine::init`] has not been called (or failed).
    NotInitialized,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::Failed => "failed",
            Error::UnknownConfig => "unknown config",
            Error::Timeout => "pipeline full and the data cannot be kept on disk",
            Error::NotInitialized => "the engine is not initialised",
        })
    }
}

impl std::error::Error for Error {}

/// What an engine is made with.
#[derive(Clone)]
pub struct Settings {
    /// Prefix of its thread names (`plugin` gives `plugin-worker`, `plugin-send`, ...).
    pub name: String,
    /// Where it delivers log groups, alarms and statistics.
    pub host: Arc<dyn Host>,
}

/// What [`Engine::init`] needs: where checkpoints live and who we are.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Directory of the checkpoint store.
    pub checkpoint_dir: PathBuf,
    /// Written as `Source` on sent groups (a `HostIP` tunable wins).
    pub host_ip: Option<String>,
    /// Host name (a `Hostname` tunable wins; default: the kernel's host name).
    pub hostname: Option<String>,
}

/// Engine-wide settings (iLogtail's `LoadGlobalConfig`; first call only; unknown keys
/// ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Tunables {
    /// Longest `HoldOn(1)` / `Stop(name, 1)` spends delivering before parking the rest.
    #[serde(rename = "HoldOnTimeoutMs")]
    pub hold_on_timeout_ms: u64,
    /// Longest a `ProcessLog*` call blocks on back-pressure before returning `Timeout`.
    #[serde(rename = "ProcessTimeoutMs")]
    pub process_timeout_ms: u64,
    /// How often alarms are sent to the host (config `logtail_alarm`).
    #[serde(rename = "AlarmIntervalMs")]
    pub alarm_interval_ms: u64,
    /// How often statistics are sent (config `shennong_log_profile`).
    #[serde(rename = "StatisticsIntervalMs")]
    pub statistics_interval_ms: u64,
    /// Checkpoints of a config absent this long are deleted.
    #[serde(rename = "CheckpointTTLSeconds")]
    pub checkpoint_ttl_seconds: u64,
    /// Disk space for events that could not enter a full, held or exiting pipeline.
    #[serde(rename = "SpillLimitMB")]
    pub spill_limit_mb: u64,
    /// Written as `Source` on sent groups.
    #[serde(rename = "HostIP")]
    pub host_ip: Option<String>,
    /// Host name reported with alarms and statistics.
    #[serde(rename = "Hostname")]
    pub hostname: Option<String>,
}

impl Default for Tunables {
    fn default() -> Self {
        Self {
            hold_on_timeout_ms: 5000,
            process_timeout_ms: 10_000,
            alarm_interval_ms: 10_000,
            statistics_interval_ms: 60_000,
            checkpoint_ttl_seconds: 3600,
            spill_limit_mb: DEFAULT_SPILL_LIMIT_MB,
            host_ip: None,
            hostname: None,
        }
    }
}

/// Default of `SpillLimitMB`.
const DEFAULT_SPILL_LIMIT_MB: u64 = 256;

struct Env {
    host: Arc<HostIdentity>,
    store: Option<Store>,
    svc: Services,
    /// Backlog entries an earlier run left, by config name (taken when the name is loaded).
    backlog_found: HashMap<String, BacklogSummary>,
    /// Pack-id sequences an earlier run saved, by config name (taken when the name is loaded;
    /// read once at init, so that loading a config never waits for the disk).
    pack_seqs_found: HashMap<String, Vec<u8>>,
}

struct ConfigSlot {
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
    volatile: HashMap<String, Arc<crate::api::Volatile>>,
    /// Undelivered data of removed configs (and of the last run), sent after Resume.
    orphans: Option<Arc<Outbox>>,
    /// The control of the task delivering `orphans`, while it runs.
    orphan_ctl: Option<Arc<FlushControl>>,
    /// Configs checked by [`Engine::stage`] and waiting for [`Engine::start`], by name.
    staged: HashMap<String, Staged>,
}

/// A config staged by LoongCollector's `LoadPipeline`: checked, not built, not running.
struct Staged {
    project: String,
    logstore: String,
    logstore_key: i64,
    config: PipelineConfig,
}

/// An engine: configs, their pipelines and everything they share. Cheap handles are not
/// needed: it is used by reference (the ABI layers keep one in a static).
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("name", &self.inner.settings.name)
            .field(
                "initialized",
                &self.inner.initialized.load(Ordering::SeqCst),
            )
            .finish()
    }
}

struct Inner {
    settings: Settings,
    stats: Stats,
    /// The runtime, once initialised (shut down when the engine is dropped).
    runtime: Mutex<Option<Runtime>>,
    /// Set when the engine is dropped: the reporter ends.
    closed: AtomicBool,
    /// Numbers pipeline instances (their stop markers in a shared feed).
    instances: AtomicU64,
    /// What the plugins of every config of this engine share (one file watcher, say).
    shared: Arc<crate::api::Volatile>,
    state: Mutex<State>,
    feeds: RwLock<HashMap<String, Arc<Feed>>>,
    /// `ProcessTimeoutMs`, readable without the state lock.
    process_wait_ms: AtomicU64,
    /// `AlarmIntervalMs` and `StatisticsIntervalMs`, read by the reporter thread.
    alarm_ms: AtomicU64,
    profile_ms: AtomicU64,
    /// Whether `InitPluginBase` succeeded, readable without the state lock.
    initialized: AtomicBool,
    /// Disk space of every config's backlog (`SpillLimitMB`).
    budget: Arc<SpillBudget>,
    /// The host pulls alarms ([`Engine::set_pulled`]): the reporter no longer sends them.
    pull_alarms: AtomicBool,
    /// The host pulls statistics: the reporter no longer sends them.
    pull_statistics: AtomicBool,
}

/// After `HoldOn(1)`'s delivery deadline, the longest it spends collecting what the stages
/// hold, persisting it, flushing the store and sending the last statistics (the "small
/// stated constant": `HoldOn(1)` returns within `HoldOnTimeoutMs` plus this).
pub const EXIT_GRACE: Duration = Duration::from_millis(1000);
/// Longest dropping an engine waits for its checkpoint store to close.
const STORE_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Longest a stop flushes the store.
const FLUSH_WAIT: Duration = Duration::from_millis(500);
/// Longest the last report at exit waits for the host.
const REPORT_WAIT: Duration = Duration::from_millis(200);

/// The name iLogtail 2.x and 3.x use for a config loaded as `<name>/1` or `<name>/2`: the
/// suffix removed (as `GetRealConfigName` in the original). This name is passed to SendPb and
/// used in statistics, alarms and checkpoint keys; the loaded name stays the config's key.
pub fn real_config_name(name: &str) -> &str {
    match name.strip_suffix("/1").or_else(|| name.strip_suffix("/2")) {
        Some(real) if !real.is_empty() => real,
        _ => name,
    }
}

/// Why a config name cannot be used (`None`: it can).
pub fn invalid_config_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("the config name is empty")
    } else if name.contains('\0') {
        Some("the config name contains a NUL byte")
    } else {
        None
    }
}

/// Checkpoint key of the last pack-id sequence per host prefix of a config.
const PACK_SEQ_KEY: &str = "__host_pack_seq__";

/// Continues `ids`' host-prefix sequences where the last process left them (`raw`, see
/// [`save_pack_sequences`]).
fn continue_pack_sequences(name: &str, raw: &[u8], ids: &PackIds) {
    match serde_json::from_slice::<HashMap<String, u64>>(raw) {
        Ok(m) => m.iter().for_each(|(p, seq)| ids.continue_host(p, *seq)),
        Err(e) => tracing::warn!(config = name, error = %e, "unreadable pack-id sequences"),
    }
}

/// Saves the host-prefix sequences of config `name`: the host's pack id is the same after a
/// restart (it hashes the file), so the next process continues the sequences instead of
/// giving a receiver the ids of groups it has already seen (and of groups re-sent from the
/// store) for other data.
/// Returns what was saved (None: no host prefix).
fn save_pack_sequences(store: Option<&Store>, name: &str, ids: &PackIds) -> Option<Vec<u8>> {
    let seqs: HashMap<String, u64> = ids.host_sequences().into_iter().collect();
    if seqs.is_empty() {
        return None;
    }
    let json = serde_json::to_vec(&seqs).unwrap_or_default();
    if let Some(store) = store {
        if let Err(e) = store.save(name, PACK_SEQ_KEY, &json) {
            tracing::warn!(config = name, error = %e, "cannot save the pack-id sequences");
        }
    }
    Some(json)
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

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the checkpoint store and starts the runtime and the reporter; once only.
    fn init(self: &Arc<Self>, opts: InitOptions) -> Result<(), Error> {
        let mut st = self.lock();
        if st.env.is_some() {
            return Ok(());
        }
        let dir = opts.checkpoint_dir;
        let opened = match Store::open(&dir) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the checkpoint store");
                return Err(Error::Failed);
            }
        };
        if let Some(note) = &opened.recovered {
            self.stats.alarm(
                AlarmType::CheckpointError,
                Level::Critical,
                "",
                "",
                note.clone(),
            );
        }
        let store = opened.store;
        let runtime = crate::runtime::build(&self.settings.name);
        let svc = Services::new(
            runtime.handle().clone(),
            self.settings.host.clone(),
            self.stats.clone(),
            &self.settings.name,
        );
        *self.runtime.lock().unwrap_or_else(|e| e.into_inner()) = Some(runtime);
        let orphans = Outbox::new(Some(store.clone()), &svc);
        let spilled = store.spilled();
        if !spilled.is_empty() {
            tracing::info!(
                groups = spilled.len(),
                logs = outbox::logs_in(&spilled),
                "re-sending log groups the host had not accepted before the last exit"
            );
            orphans.extend(spilled);
        }
        let backlog_found = store.backlog_summary().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the backlog of the last run");
            HashMap::new()
        });
        self.budget
            .add_used(backlog_found.values().map(|b| b.bytes).sum());
        let pack_seqs_found = store
            .get_all(PACK_SEQ_KEY, Duration::from_secs(5))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the pack-id sequences of the last run");
                HashMap::new()
            });
        let t = &st.tunables;
        let host = HostIdentity {
            ip: t.host_ip.clone().or(opts.host_ip).unwrap_or_default(),
            hostname: t
                .hostname
                .clone()
                .or(opts.hostname)
                .unwrap_or_else(default_hostname),
        };
        tracing::info!(checkpoint = %dir.display(), ip = %host.ip, hostname = %host.hostname, "engine initialised");
        let host = Arc::new(host);
        self.start_reporter(host.clone());
        st.orphans = Some(orphans);
        st.env = Some(Env {
            host,
            store: Some(store),
            svc,
            backlog_found,
            pack_seqs_found,
        });
        self.initialized.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Sends alarms every `AlarmIntervalMs` and statistics every `StatisticsIntervalMs`.
    fn start_reporter(self: &Arc<Self>, host: Arc<HostIdentity>) {
        let me: Weak<Inner> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name(format!("{}-reporter", self.settings.name))
            .spawn(move || {
                let (mut last_alarm, mut last_profile) = (Instant::now(), Instant::now());
                let mut last_maintenance = Instant::now();
                loop {
                    std::thread::sleep(Duration::from_millis(100));
                    // The engine is gone (or going): the reporter ends with it.
                    let Some(this) = me.upgrade().filter(|i| !i.closed.load(Ordering::SeqCst))
                    else {
                        return;
                    };
                    if last_maintenance.elapsed() >= MAINTENANCE_EVERY {
                        this.maintain_checkpoints();
                        last_maintenance = Instant::now();
                    }
                    let alarm_every = Duration::from_millis(this.alarm_ms.load(Ordering::Relaxed));
                    let profile_every =
                        Duration::from_millis(this.profile_ms.load(Ordering::Relaxed));
                    let profile_due = last_profile.elapsed() >= profile_every;
                    if last_alarm.elapsed() >= alarm_every || profile_due {
                        let sink = this.settings.host.clone();
                        let stats = this.stats.clone();
                        let what = this.pushed(profile_due);
                        drop(this);
                        crate::report::report(&*sink, &host, &stats, what, 5);
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
        store.mark_seen(loaded.iter().cloned().collect(), now);
        if let Err(e) = store.cleanup(loaded, ttl, now, Duration::from_secs(5)) {
            tracing::warn!(error = %e, "checkpoint cleanup did not run");
        }
    }

    fn set_tunables(&self, t: Tunables) {
        let mut st = self.lock();
        if st.global_loaded {
            return;
        }
        st.global_loaded = true;
        self.process_wait_ms
            .store(t.process_timeout_ms, Ordering::Relaxed);
        self.alarm_ms
            .store(t.alarm_interval_ms.max(100), Ordering::Relaxed);
        self.profile_ms
            .store(t.statistics_interval_ms.max(100), Ordering::Relaxed);
        self.budget
            .set_limit(t.spill_limit_mb.saturating_mul(1 << 20));
        st.tunables = t;
    }

    /// A new lane (feed, backlog, outbox) for config `name`.
    fn new_lane(&self, st: &mut State, name: &str, real: &str, queue_size: usize) -> Lane {
        let env = st.env.as_mut().expect("initialised");
        let backlog = env.store.clone().map(|s| {
            Backlog::new(
                name.into(),
                s,
                self.budget.clone(),
                env.backlog_found.remove(name).as_ref(),
                &env.svc,
            )
        });
        Lane {
            feed: Feed::new(
                real.into(),
                queue_size,
                self.stats.plugin(real, "pipeline"),
                backlog,
                &env.svc,
            ),
            outbox: Outbox::new(env.store.clone(), &env.svc),
        }
    }

    /// Whether a config may be loaded now under `name` (`export` names the call in messages).
    fn check_loadable(&self, st: &State, export: &str, name: &str) -> Result<(), Error> {
        if st.env.is_none() {
            tracing::error!(
                config = name,
                "{export}: a config was loaded before the engine was initialised"
            );
            return Err(Error::Failed);
        }
        if let Some(why) = invalid_config_name(name) {
            tracing::error!(config = %name.escape_debug(), "{export}: {why}");
            self.stats.alarm(
                AlarmType::ConfigError,
                Level::Error,
                &name.escape_debug().to_string(),
                "",
                format!("{export} failed: config {:?}: {why}", name),
            );
            return Err(Error::Failed);
        }
        Ok(())
    }

    /// Checks `json` as config `name`; every problem is alarmed.
    fn parse(&self, export: &str, name: &str, json: &str) -> Result<PipelineConfig, Error> {
        registry::parse_config(name, json).map_err(|errors| {
            for e in &errors {
                self.stats.alarm(
                    AlarmType::ConfigError,
                    Level::Error,
                    real_config_name(name),
                    e.plugin.as_deref().unwrap_or(""),
                    format!("{export} failed: {e}"),
                );
            }
            Error::Failed
        })
    }

    /// Builds the pipeline of `config` as config `name`, on the lane of the loaded config of
    /// that name when there is one (so that it takes over that config's queued data).
    fn build_pipeline(
        &self,
        st: &mut State,
        project: &str,
        logstore: &str,
        name: &str,
        logstore_key: i64,
        config: PipelineConfig,
    ) -> Result<Pipeline, Error> {
        let Some(env) = st.env.as_mut() else {
            return Err(Error::NotInitialized);
        };
        let (host, store, svc) = (env.host.clone(), env.store.clone(), env.svc.clone());
        let saved = env.pack_seqs_found.remove(name);
        let real = real_config_name(name);
        let pack_ids = st
            .pack_ids
            .entry(name.to_string())
            .or_insert_with(|| {
                let ids = PackIds::new(format!("{name}\0{}\0{}", host.ip, now_nanos()));
                if let Some(raw) = &saved {
                    continue_pack_sequences(name, raw, &ids);
                }
                Arc::new(ids)
            })
            .clone();
        let cx = PluginContext {
            config_name: real.into(),
            project: project.into(),
            logstore: logstore.into(),
            logstore_key,
            host,
            pack_ids,
            global: config.global.clone(),
            store,
            plugin: "".into(),
            volatile: st.volatile.entry(name.to_string()).or_default().clone(),
            shared: self.shared.clone(),
            stats: self.stats.clone(),
            host_queue: None,
        };
        let lane = match st.configs.get(name) {
            Some(s) => s.pipeline.lane().clone(),
            None => self.new_lane(st, name, real, config.global.default_log_queue_size),
        };
        let instance = self.instances.fetch_add(1, Ordering::Relaxed);
        Pipeline::new(config, cx, lane, &svc, instance).map_err(|e| {
            tracing::error!(config = name, error = %e, "cannot build the config's plugins");
            Error::Failed
        })
    }

    /// Makes `pipeline` the loaded config `name` (replacing the one of that name, whose lane
    /// it already shares); returns whether one was replaced.
    fn install(&self, st: &mut State, name: &str, pipeline: Pipeline) -> bool {
        let feed = pipeline.lane().feed.clone();
        let replaced = st
            .configs
            .insert(name.to_string(), ConfigSlot { pipeline })
            .is_some();
        self.feeds
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), feed);
        replaced
    }

    /// `LoadConfig`: load, replace (same name) or remove (empty JSON) a config while held.
    fn load_config(
        &self,
        project: &str,
        logstore: &str,
        name: &str,
        logstore_key: i64,
        json: &str,
    ) -> Result<(), Error> {
        let mut st = self.lock();
        self.check_loadable(&st, "LoadConfig", name)?;
        if st.running {
            tracing::error!(
                config = name,
                "LoadConfig is accepted only while the plugin system is held (call HoldOn(0) first)"
            );
            return Err(Error::Failed);
        }
        if json.trim().is_empty() {
            if st.configs.contains_key(name) {
                self.remove_config(&mut st, name);
                tracing::info!(config = name, "config removed");
            }
            return Ok(());
        }
        let config = self.parse("LoadConfig", name, json)?;
        // A replaced config hands its queues to its successor.
        let pipeline =
            self.build_pipeline(&mut st, project, logstore, name, logstore_key, config)?;
        let replaced = self.install(&mut st, name, pipeline);
        tracing::info!(config = name, replaced, "config loaded");
        Ok(())
    }

    /// `LoadPipeline` (LoongCollector 3.x): checks config `name` and stages it for
    /// [`Inner::start_config`], replacing what was staged under that name; whatever runs is
    /// untouched. An empty `json` removes the loaded config of that name.
    fn stage(
        &self,
        project: &str,
        logstore: &str,
        name: &str,
        logstore_key: i64,
        json: &str,
    ) -> Result<(), Error> {
        let mut st = self.lock();
        self.check_loadable(&st, "LoadPipeline", name)?;
        if json.trim().is_empty() {
            st.staged.remove(name);
            if st.configs.contains_key(name) {
                self.remove_config(&mut st, name);
                tracing::info!(config = name, "config removed");
            }
            return Ok(());
        }
        let config = self.parse("LoadPipeline", name, json)?;
        let staged = Staged {
            project: project.into(),
            logstore: logstore.into(),
            logstore_key,
            config,
        };
        let replaced = st.staged.insert(name.to_string(), staged).is_some();
        tracing::info!(config = name, replaced, "config staged");
        Ok(())
    }

    /// `UnloadPipeline`: forgets what is staged under `name`.
    fn unstage(&self, name: &str) -> Result<(), Error> {
        match self.lock().staged.remove(name) {
            Some(_) => Ok(()),
            None => Err(Error::UnknownConfig),
        }
    }

    /// `Start` (LoongCollector 3.x): the config staged under `name` replaces the loaded one of
    /// that name (which is stopped first if the host did not stop it), taking over its queued
    /// and undelivered data, and runs. Without a staged config, a stopped config of that name
    /// runs again.
    fn start_config(&self, name: &str) -> Result<(), Error> {
        let mut st = self.lock();
        let Some(rt) = st.env.as_ref().map(|e| e.svc.rt.clone()) else {
            tracing::error!(config = name, "Start before the engine was initialised");
            return Err(Error::NotInitialized);
        };
        if let Some(staged) = st.staged.remove(name) {
            if st
                .configs
                .get(name)
                .is_some_and(|s| s.pipeline.is_running())
            {
                let deadline = Self::deadline(&st);
                let names = [name.to_string()];
                self.stop_pipelines(&mut st, &names, FlushMode::Park, FeedState::Held, deadline);
            }
            let Staged {
                project,
                logstore,
                logstore_key,
                config,
            } = staged;
            let pipeline =
                self.build_pipeline(&mut st, &project, &logstore, name, logstore_key, config)?;
            let replaced = self.install(&mut st, name, pipeline);
            tracing::info!(config = name, replaced, "staged config installed");
        }
        self.deliver_orphans(&mut st, &rt);
        let Some(slot) = st.configs.get_mut(name) else {
            tracing::warn!(config = name, "Start: no such config staged or loaded");
            return Err(Error::UnknownConfig);
        };
        self.start_slot(name, slot, &rt);
        Ok(())
    }

    /// Starts one config's stages; a config that fails to start is alarmed.
    fn start_slot(&self, name: &str, slot: &mut ConfigSlot, rt: &tokio::runtime::Handle) {
        if slot.pipeline.is_running() {
            return;
        }
        let started =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slot.pipeline.start(rt)));
        if let Err(p) = started {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            self.stats.alarm(
                AlarmType::PluginError,
                Level::Critical,
                real_config_name(name),
                "",
                format!("config {name:?} cannot start ({why}); the other configs run"),
            );
        }
    }

    /// Starts delivering removed configs' data (and the last run's), unless it runs.
    fn deliver_orphans(&self, st: &mut State, rt: &tokio::runtime::Handle) {
        if st.orphan_ctl.is_some() {
            return;
        }
        if let Some(orphans) = st.orphans.clone() {
            orphans.resume();
            let ctl = Arc::new(FlushControl::new(orphans.clone()));
            rt.spawn(outbox::deliver(
                orphans,
                ctl.clone(),
                self.stats.plugin("", "removed_configs"),
            ));
            st.orphan_ctl = Some(ctl);
        }
    }

    /// `StopAllPipelines(1)`: stops every running config that has inputs, delivering what
    /// they hold until `HoldOnTimeoutMs`; what is left is persisted by `StopAllPipelines(0)`.
    /// `StopAllPipelines(0)`: as `HoldOn(1)` for every config.
    fn stop_all(&self, with_inputs: bool) {
        if !with_inputs {
            return self.hold_on(true);
        }
        let started = Instant::now();
        let mut st = self.lock();
        let names: Vec<String> = st
            .configs
            .iter()
            .filter(|(_, s)| s.pipeline.is_running() && s.pipeline.has_inputs())
            .map(|(n, _)| n.clone())
            .collect();
        let deadline = Self::deadline(&st);
        self.stop_pipelines(
            &mut st,
            &names,
            FlushMode::Drain,
            FeedState::Exited,
            deadline,
        );
        tracing::info!(
            configs = names.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "configs with inputs stopped"
        );
    }

    /// `StopBuiltInModules`: the checkpoints reach the disk (bounded).
    fn stop_builtin(&self) {
        let store = self.lock().env.as_ref().and_then(|e| e.store.clone());
        if let Some(store) = store {
            if let Err(e) = store.flush(FLUSH_WAIT) {
                tracing::warn!(error = %e, "StopBuiltInModules: checkpoints not flushed");
            }
        }
    }

    /// `UnloadConfig`: removes a config while held.
    fn unload_config(&self, name: &str) -> Result<(), Error> {
        if self.lock().running {
            tracing::error!(config = name, "UnloadConfig while running");
            return Err(Error::Failed);
        }
        if !self.lock().configs.contains_key(name) {
            return Err(Error::UnknownConfig);
        }
        self.load_config("", "", name, -1, "")
    }

    fn deadline(st: &State) -> Instant {
        Instant::now() + Duration::from_millis(st.tunables.hold_on_timeout_ms)
    }

    /// Removes config `name`: what it still holds is processed and delivered within
    /// `HoldOnTimeoutMs` (when it runs), and the rest is persisted at once and sent by the
    /// removed-configs delivery after the next Resume.
    fn remove_config(&self, st: &mut State, name: &str) {
        let deadline = Self::deadline(st);
        self.feeds
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let Some(mut old) = st.configs.remove(name) else {
            return;
        };
        let Some(rt) = st.env.as_ref().map(|e| e.svc.rt.clone()) else {
            return;
        };
        if old.pipeline.is_running() {
            old.pipeline
                .begin_stop(FlushMode::Drain, deadline, FeedState::Removed);
            old.pipeline.finish_stop(&rt, deadline);
        } else {
            old.pipeline
                .process_remaining(&rt, deadline, FeedState::Removed);
        }
        let lane = old.pipeline.lane().clone();
        lane.feed.set_state(FeedState::Removed);
        if let Some(b) = lane.feed.backlog() {
            // What it read back and did not process stays on disk.
            b.abandon();
        }
        if let Some(orphans) = st.orphans.clone() {
            let moved = lane.outbox.take_all();
            lane.outbox.redirect_to(orphans.clone());
            Self::adopt_orphans(st, &orphans, moved);
        }
        let left = lane.feed.backlog().map_or(0, |b| b.waiting());
        if left > 0 {
            self.stats.alarm(
                AlarmType::DataDropped,
                Level::Warning,
                real_config_name(name),
                "pipeline",
                format!("config removed with {left} groups of events waiting on disk: they are processed if a config of this name is loaded again within CheckpointTTLSeconds, else deleted"),
            );
        }
        if let (Some(ids), Some(env)) = (st.pack_ids.remove(name), st.env.as_mut()) {
            // Kept for a config of this name loaded again in this process, too.
            if let Some(saved) = save_pack_sequences(env.store.as_ref(), name, &ids) {
                env.pack_seqs_found.insert(name.to_string(), saved);
            }
        }
        st.volatile.remove(name);
        // Counters go with the config (unless its other half, `/1` or `/2`, is still loaded).
        let real = real_config_name(name);
        if !st.configs.keys().any(|n| real_config_name(n) == real) {
            self.stats.forget_config(real);
        }
    }

    /// Takes over the undelivered data of a removed config: persisted at once (so a crash
    /// cannot lose it) and sent by the removed-configs delivery after the next Resume.
    fn adopt_orphans(st: &State, orphans: &Outbox, mut moved: Vec<Payload>) {
        if moved.is_empty() {
            return;
        }
        if let Some(store) = st.env.as_ref().and_then(|e| e.store.as_ref()) {
            match store.spill(&mut moved, crate::store::READ_WAIT) {
                Ok(_) => moved.iter_mut().for_each(|p| p.acks.clear()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot persist a removed config's undelivered data; it is kept in memory")
                }
            }
        }
        orphans.extend(moved);
    }

    /// Two-phase stop of the running configs in `names` (many stop in parallel).
    fn stop_pipelines(
        &self,
        st: &mut State,
        names: &[String],
        mode: FlushMode,
        state: FeedState,
        deadline: Instant,
    ) {
        let Some(rt) = st.env.as_ref().map(|e| e.svc.rt.clone()) else {
            return;
        };
        let mut stopping = Vec::new();
        for n in names {
            if let Some(s) = st.configs.get_mut(n) {
                if s.pipeline.is_running() {
                    s.pipeline.begin_stop(mode, deadline, state);
                    stopping.push(n.clone());
                } else if state == FeedState::Exited {
                    // Data pushed while held into a config that never ran again.
                    s.pipeline.process_remaining(&rt, deadline, state);
                } else {
                    s.pipeline.lane().feed.set_state(state);
                }
            }
        }
        for n in &stopping {
            if let Some(s) = st.configs.get_mut(n) {
                s.pipeline.finish_stop(&rt, deadline);
                let (groups, logs) = s.pipeline.lane().outbox.counts();
                if groups > 0 {
                    tracing::info!(config = %n, groups, logs, "undelivered data kept for the next run");
                }
            }
        }
    }

    /// `HoldOn(exitFlag)`: stops every running config within a bounded time.
    fn hold_on(&self, exit: bool) {
        let started = Instant::now();
        let mut st = self.lock();
        let names: Vec<String> = st.configs.keys().cloned().collect();
        let deadline = Self::deadline(&st);
        let (mode, state) = if exit {
            (FlushMode::Drain, FeedState::Exited)
        } else {
            (FlushMode::Park, FeedState::Held)
        };
        if let Some(ctl) = &st.orphan_ctl {
            ctl.set(mode, Some(deadline));
        }
        self.stop_pipelines(&mut st, &names, mode, state, deadline);
        if exit {
            crate::buffer::exit_all(&self.shared, deadline);
        }
        if let (Some(ctl), Some(orphans)) = (st.orphan_ctl.take(), st.orphans.clone()) {
            if exit {
                while !orphans.is_idle() && !ctl.parking() {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            ctl.set(FlushMode::Park, None);
        }
        st.running = false;
        // Past the deadline, every step (the stages' hand-back included) shares the grace.
        let grace_end = deadline + EXIT_GRACE;
        let left = || grace_end.saturating_duration_since(Instant::now());
        if exit {
            self.spill_undelivered(&st, left());
            let store = st.env.as_ref().and_then(|e| e.store.as_ref());
            for (name, ids) in &st.pack_ids {
                save_pack_sequences(store, name, ids);
            }
        }
        // Checkpoints (including positions committed by the spill above) reach the disk.
        if let Some(store) = st.env.as_ref().and_then(|e| e.store.as_ref()) {
            let wait = if exit {
                left().min(FLUSH_WAIT)
            } else {
                FLUSH_WAIT
            };
            if let Err(e) = store.flush(wait) {
                self.stats.alarm(
                    AlarmType::CheckpointError,
                    Level::Error,
                    "",
                    "",
                    format!("HoldOn could not write the checkpoints to disk: {e}"),
                );
            }
        }
        if exit {
            if let Some(env) = &st.env {
                self.last_report(env.host.clone(), left().min(REPORT_WAIT));
            }
        }
        tracing::info!(
            exit,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "HoldOn done"
        );
    }

    /// What a report sends: alarms and (when `profile_due`) statistics, each unless the host
    /// pulls it.
    fn pushed(&self, profile_due: bool) -> crate::report::Sections {
        crate::report::Sections {
            alarms: !self.pull_alarms.load(Ordering::Relaxed),
            statistics: profile_due && !self.pull_statistics.load(Ordering::Relaxed),
        }
    }

    /// Sends the last alarms and statistics, waiting at most `wait` for the host.
    fn last_report(&self, host: Arc<HostIdentity>, wait: Duration) {
        let what = self.pushed(true);
        if !what.alarms && !what.statistics {
            return;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (sink, stats) = (self.settings.host.clone(), self.stats.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("{}-last-report", self.settings.name))
            .spawn(move || {
                crate::report::report(&*sink, &host, &stats, what, 1);
                let _ = tx.send(());
            });
        if spawned.is_ok() && rx.recv_timeout(wait).is_err() {
            tracing::warn!("the host did not take the last statistics in time");
        }
    }

    /// At exit: persists every undelivered group (of running configs, of removed ones, and
    /// the one inside SendPb) in one write, so the next process start re-sends it with the
    /// same pack ids; waits at most `wait`. A failure is alarmed with what is lost.
    fn spill_undelivered(&self, st: &State, wait: Duration) {
        let outboxes: Vec<Arc<Outbox>> = st
            .configs
            .values()
            .map(|s| s.pipeline.lane().outbox.clone())
            .chain(st.orphans.clone())
            .collect();
        let mut all: Vec<Payload> = Vec::new();
        let mut parts = Vec::new();
        for ob in &outboxes {
            let d = ob.detach_for_exit();
            parts.push((d.queued.len(), d.in_flight.is_some()));
            all.extend(d.queued);
            all.extend(d.in_flight);
        }
        if all.is_empty() {
            return;
        }
        let (groups, logs) = (all.len(), outbox::logs_in(&all));
        let result = match st.env.as_ref().and_then(|e| e.store.as_ref()) {
            Some(store) => store.spill(&mut all, wait).map_err(|e| e.to_string()),
            None => Err("no checkpoint store".into()),
        };
        match &result {
            Ok(_) => tracing::warn!(
                groups,
                logs,
                "the host did not accept these log groups before exit; kept in the checkpoint store and re-sent after the next start"
            ),
            Err(e) => self.stats.alarm(
                AlarmType::DataDropped,
                Level::Critical,
                "",
                "",
                format!("cannot persist {groups} undelivered log groups ({logs} logs) at exit ({e}): they are lost unless their inputs produce them again"),
            ),
        }
        // Kept in memory too, in case the host resumes instead of exiting.
        let mut rest = all.into_iter();
        for (ob, (queued, flying)) in outboxes.iter().zip(parts) {
            let mine: Vec<Payload> = rest.by_ref().take(queued).collect();
            let key = if flying {
                rest.next().and_then(|p| p.spill_key)
            } else {
                None
            };
            ob.reattach(mine, key, result.is_ok());
        }
    }

    /// `Resume`: starts every loaded config (and delivery of removed configs' data). A config
    /// that fails to start is alarmed and skipped; the others start.
    fn resume(&self) -> Result<(), Error> {
        let mut st = self.lock();
        let Some(rt) = st.env.as_ref().map(|e| e.svc.rt.clone()) else {
            tracing::error!("Resume before the engine was initialised");
            return Err(Error::NotInitialized);
        };
        if st.running {
            return Ok(());
        }
        for (name, slot) in st.configs.iter_mut() {
            self.start_slot(name, slot, &rt);
        }
        self.deliver_orphans(&mut st, &rt);
        st.running = true;
        tracing::info!(configs = st.configs.len(), "resumed");
        Ok(())
    }

    /// `Stop(configName, removedFlag)`: stops one config; removed configs deliver within the
    /// bound and their rest is sent later by the removed-configs delivery.
    fn stop(&self, name: &str, removed: bool) -> Result<(), Error> {
        let mut st = self.lock();
        if !st.configs.contains_key(name) {
            return Err(Error::UnknownConfig);
        }
        if removed {
            self.remove_config(&mut st, name);
        } else {
            let deadline = Self::deadline(&st);
            self.stop_pipelines(
                &mut st,
                &[name.to_string()],
                FlushMode::Park,
                FeedState::Held,
                deadline,
            );
        }
        Ok(())
    }

    /// Pushes host-fed groups (one call's data) into `name`'s processors, blocking (bounded
    /// by `ProcessTimeoutMs` for the whole call) on back-pressure; what does not fit is kept
    /// on disk.
    fn push(&self, name: &str, groups: impl Iterator<Item = EventGroup>) -> Result<(), Error> {
        let feed = self
            .feeds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        let Some(feed) = feed else {
            return Err(if self.initialized.load(Ordering::SeqCst) {
                Error::UnknownConfig
            } else {
                Error::NotInitialized
            });
        };
        let deadline =
            Instant::now() + Duration::from_millis(self.process_wait_ms.load(Ordering::Relaxed));
        let mut outcome = Ok(());
        for g in groups {
            let wait = deadline.saturating_duration_since(Instant::now());
            match feed.push_from_host(g, wait) {
                Ok(_) => {}
                Err(PushError::Closed) => return Err(Error::UnknownConfig),
                Err(PushError::Refused(_)) => outcome = Err(Error::Timeout),
            }
        }
        outcome
    }
}

impl Engine {
    /// A new engine: nothing runs until [`Engine::init`].
    pub fn new(settings: Settings) -> Self {
        let t = Tunables::default();
        Self {
            inner: Arc::new(Inner {
                settings,
                stats: Stats::default(),
                runtime: Mutex::new(None),
                closed: AtomicBool::new(false),
                instances: AtomicU64::new(1),
                shared: Arc::default(),
                state: Mutex::new(State::default()),
                feeds: RwLock::new(HashMap::new()),
                process_wait_ms: AtomicU64::new(t.process_timeout_ms),
                alarm_ms: AtomicU64::new(t.alarm_interval_ms),
                profile_ms: AtomicU64::new(t.statistics_interval_ms),
                initialized: AtomicBool::new(false),
                budget: SpillBudget::new(DEFAULT_SPILL_LIMIT_MB << 20, 0),
                pull_alarms: AtomicBool::new(false),
                pull_statistics: AtomicBool::new(false),
            }),
        }
    }

    /// Opens the checkpoint store, starts the runtime and the reporter (later calls do
    /// nothing).
    ///
    /// # Errors
    /// [`Error::Failed`] when the store cannot be opened.
    pub fn init(&self, opts: InitOptions) -> Result<(), Error> {
        self.inner.init(opts)
    }

    /// Whether [`Engine::init`] succeeded.
    pub fn is_initialized(&self) -> bool {
        self.inner.initialized.load(Ordering::SeqCst)
    }

    /// Engine-wide settings; only the first call counts (as iLogtail's `LoadGlobalConfig`).
    pub fn set_tunables(&self, t: Tunables) {
        self.inner.set_tunables(t)
    }

    /// Loads config `name` (or replaces the loaded one of that name, which hands its queued
    /// data to its successor) while the engine is held. An empty `json` removes it.
    ///
    /// # Errors
    /// [`Error::Failed`] for a bad name or config (each problem is alarmed), when not
    /// initialised or while running.
    pub fn load_config(
        &self,
        project: &str,
        logstore: &str,
        name: &str,
        logstore_key: i64,
        json: &str,
    ) -> Result<(), Error> {
        self.inner
            .load_config(project, logstore, name, logstore_key, json)
    }

    /// Removes config `name` while held.
    ///
    /// # Errors
    /// [`Error::UnknownConfig`] when it is not loaded, [`Error::Failed`] while running.
    pub fn unload_config(&self, name: &str) -> Result<(), Error> {
        self.inner.unload_config(name)
    }

    /// Stops every running config within `HoldOnTimeoutMs`: their undelivered data stays
    /// in their lanes for the next run (`exit == false`) or is persisted for the next process
    /// (`exit == true`, which also flushes checkpoints and sends the last report).
    pub fn hold_on(&self, exit: bool) {
        self.inner.hold_on(exit)
    }

    /// Starts every loaded config (a config that fails to start is alarmed and skipped).
    ///
    /// # Errors
    /// [`Error::NotInitialized`] before [`Engine::init`].
    pub fn resume(&self) -> Result<(), Error> {
        self.inner.resume()
    }

    /// Stops one config; a `removed` one is gone afterwards (its undelivered data is
    /// delivered later by the removed-configs delivery).
    ///
    /// # Errors
    /// [`Error::UnknownConfig`] when it is not loaded.
    pub fn stop(&self, name: &str, removed: bool) -> Result<(), Error> {
        self.inner.stop(name, removed)
    }

    /// LoongCollector's `LoadPipeline`: checks config `name` and stages it for
    /// [`Engine::start`] (replacing what was staged under that name); the running config of
    /// that name is untouched. An empty `json` removes the config of that name.
    ///
    /// # Errors
    /// [`Error::Failed`] for a bad name or config (each problem is alarmed) or when not
    /// initialised.
    pub fn stage(
        &self,
        project: &str,
        logstore: &str,
        name: &str,
        logstore_key: i64,
        json: &str,
    ) -> Result<(), Error> {
        self.inner
            .stage(project, logstore, name, logstore_key, json)
    }

    /// Forgets the config staged under `name` (LoongCollector's `UnloadPipeline`).
    ///
    /// # Errors
    /// [`Error::UnknownConfig`] when nothing is staged under that name.
    pub fn unstage(&self, name: &str) -> Result<(), Error> {
        self.inner.unstage(name)
    }

    /// Runs the config staged under `name` in place of the loaded config of that name (which
    /// is stopped first if it still runs), taking over its queued and undelivered data; with
    /// nothing staged, runs the stopped config of that name again (LoongCollector's `Start`).
    ///
    /// # Errors
    /// [`Error::UnknownConfig`] when nothing is staged or loaded under that name,
    /// [`Error::NotInitialized`], or [`Error::Failed`] when its plugins cannot be built.
    pub fn start(&self, name: &str) -> Result<(), Error> {
        self.inner.start_config(name)
    }

    /// LoongCollector's `StopAllPipelines`: `with_inputs` stops the configs with inputs
    /// (delivering until `HoldOnTimeoutMs`); otherwise every config stops as with
    /// `hold_on(true)` (what is undelivered is persisted for the next process).
    pub fn stop_all(&self, with_inputs: bool) {
        self.inner.stop_all(with_inputs)
    }

    /// LoongCollector's `StopBuiltInModules`: checkpoints reach the disk (bounded).
    pub fn stop_builtin(&self) {
        self.inner.stop_builtin()
    }

    /// The host pulls alarms and/or statistics itself from now on: the reporter stops sending
    /// those parts (a `false` leaves the part as it is).
    pub fn set_pulled(&self, alarms: bool, statistics: bool) {
        if alarms {
            self.inner.pull_alarms.store(true, Ordering::Relaxed);
        }
        if statistics {
            self.inner.pull_statistics.store(true, Ordering::Relaxed);
        }
    }

    /// Project and logstore of each loaded config, by real name (what metrics and alarms
    /// pulled by a host are labelled with).
    pub fn config_labels(&self) -> HashMap<String, (String, String)> {
        self.inner
            .lock()
            .configs
            .values()
            .map(|s| {
                let cx = s.pipeline.context();
                (
                    cx.config_name.to_string(),
                    (cx.project.to_string(), cx.logstore.to_string()),
                )
            })
            .collect()
    }

    /// Pushes host-fed groups into `name`'s processors, waiting (at most
    /// `ProcessTimeoutMs` for the whole call) on back-pressure; what does not fit is kept on
    /// disk.
    ///
    /// # Errors
    /// [`Error::UnknownConfig`], [`Error::NotInitialized`], or [`Error::Timeout`] when some
    /// data could be neither queued nor kept.
    pub fn push(&self, name: &str, groups: impl Iterator<Item = EventGroup>) -> Result<(), Error> {
        self.inner.push(name, groups)
    }

    /// Checks a config without loading it: every problem, each naming config, plugin and
    /// field.
    ///
    /// # Errors
    /// Every problem found.
    pub fn check_config(name: &str, json: &str) -> Result<PipelineConfig, Vec<ConfigError>> {
        registry::parse_config(name, json)
    }

    /// The engine's statistics and alarms.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Names of the loaded configs.
    pub fn config_names(&self) -> Vec<String> {
        self.inner.lock().configs.keys().cloned().collect()
    }
}

impl Drop for Engine {
    /// Ends the reporter, closes the checkpoint store (within a second) and shuts the
    /// runtime down without waiting for its tasks (a host that wants its data delivered calls
    /// [`Engine::hold_on`] first).
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        // The checkpoint directory is free again when the engine is gone (bounded: a store
        // stuck on the disk is left to end on its own).
        let store = self.inner.lock().env.as_ref().and_then(|e| e.store.clone());
        if let Some(store) = store {
            if !store.close(STORE_CLOSE_WAIT) {
                tracing::warn!("the checkpoint store did not close in time");
            }
        }
        let rt = self
            .inner
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rt) = rt {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_names_drop_the_2x_suffixes() {
        assert_eq!(real_config_name("web/1"), "web");
        assert_eq!(real_config_name("web/2"), "web");
        assert_eq!(real_config_name("web/3"), "web/3");
        assert_eq!(real_config_name("web"), "web");
        assert_eq!(real_config_name("/1"), "/1", "nothing would be left");
        assert_eq!(real_config_name("a/b/2"), "a/b");
    }

    #[test]
    fn names_with_nul_are_invalid() {
        assert!(invalid_config_name("a\0b").is_some());
        assert!(invalid_config_name("").is_some());
        assert!(invalid_config_name("ok/2").is_none());
    }
}
