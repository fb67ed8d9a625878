//! What the host accepted from the base: decoded log groups and counters.
//!
//! Filled by the callbacks in [`crate::callbacks`] on base threads; read by the tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::proto::LogGroup;

/// One log as received: time and fields in order.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedLog {
    /// `Time` of the log.
    pub time: u32,
    /// `Contents` as (key, value) pairs.
    pub contents: Vec<(String, String)>,
}

impl ReceivedLog {
    /// First value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.contents
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The service_mock `Index` field parsed as a number.
    pub fn index(&self) -> Option<u64> {
        self.get("Index").and_then(|v| v.parse().ok())
    }
}

/// One accepted `SendPb` / `SendPbV2` call.
#[derive(Clone, Debug)]
pub struct ReceivedGroup {
    /// Config name argument.
    pub config: String,
    /// Logstore argument.
    pub logstore: String,
    /// `lines` argument.
    pub lines: i32,
    /// Shard hash (V2 only).
    pub shard_hash: Option<String>,
    /// Value of the `__pack_id__` tag, wherever it is.
    pub pack_id: Option<String>,
    /// Whether `__pack_id__` is the last tag.
    pub pack_id_is_last: bool,
    /// Decoded logs.
    pub logs: Vec<ReceivedLog>,
    /// The decoded group (logs included).
    pub group: LogGroup,
}

impl ReceivedGroup {
    /// Value of group tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.group
            .log_tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// One `CtlCmd` callback call.
#[derive(Clone, Debug)]
pub struct ReceivedCtlCmd {
    /// Config name argument.
    pub config: String,
    /// Command id.
    pub opt_id: i32,
    /// Parameters (lossy UTF-8).
    pub params: String,
}

/// Everything recorded.
#[derive(Default)]
pub struct Store {
    /// Accepted groups in arrival order.
    pub groups: Vec<ReceivedGroup>,
    /// Accepted log count per config name.
    pub logs_per_config: HashMap<String, usize>,
    /// Pack ids of rejected sends, with how often each was rejected.
    pub rejected_pack_ids: HashMap<String, u64>,
    /// CtlCmd callbacks.
    pub ctl_cmds: Vec<ReceivedCtlCmd>,
    /// Config names answered -2 (unknown to a 2.x-like host), with how often.
    pub unknown_config_names: HashMap<String, u64>,
}

static STORE: Mutex<Option<Store>> = Mutex::new(None);

/// Locks the store (recovering from poisoning: a failed assertion elsewhere must not hide data).
pub fn lock() -> MutexGuard<'static, Option<Store>> {
    STORE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the store.
pub fn with<R>(f: impl FnOnce(&mut Store) -> R) -> R {
    let mut g = lock();
    f(g.get_or_insert_with(Store::default))
}

/// Accepted log count for `config`.
pub fn log_count(config: &str) -> usize {
    with(|s| s.logs_per_config.get(config).copied().unwrap_or(0))
}

/// Clones of the accepted groups of `config`.
pub fn groups_for(config: &str) -> Vec<ReceivedGroup> {
    with(|s| {
        s.groups
            .iter()
            .filter(|g| g.config == config)
            .cloned()
            .collect()
    })
}

/// Clones of the accepted logs of `config`, each with the pack id of its group.
pub fn logs_for(config: &str) -> Vec<(ReceivedLog, Option<String>)> {
    with(|s| {
        s.groups
            .iter()
            .filter(|g| g.config == config)
            .flat_map(|g| g.logs.iter().map(move |l| (l.clone(), g.pack_id.clone())))
            .collect()
    })
}

/// Config names that delivered anything, with their log counts (for diagnostics).
pub fn configs_seen() -> Vec<(String, usize)> {
    let mut v: Vec<_> = with(|s| {
        s.logs_per_config
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    });
    v.sort();
    v
}

/// Monotonic counters, updated lock-free by the callbacks.
#[derive(Default)]
pub struct Counters {
    /// `SendPb` calls.
    pub send_pb_calls: AtomicU64,
    /// `SendPbV2` calls.
    pub send_pb_v2_calls: AtomicU64,
    /// Sends answered 0.
    pub accepted: AtomicU64,
    /// Sends answered -1 by the policy.
    pub rejected: AtomicU64,
    /// Logs in accepted groups.
    pub accepted_logs: AtomicU64,
    /// Accepted buffers that did not decode as a `LogGroup`.
    pub decode_errors: AtomicU64,
    /// Sends with NULL / negative arguments.
    pub bad_send_args: AtomicU64,
    /// Accepted groups whose `lines` argument differs from the number of logs.
    pub lines_mismatch: AtomicU64,
    /// `IsValidToSend` calls.
    pub is_valid_calls: AtomicU64,
    /// `CtlCmd` calls.
    pub ctl_cmd_calls: AtomicU64,
    /// Panics caught inside our callbacks (a bug in this crate).
    pub callback_panics: AtomicU64,
    /// Sends answered -2 because the config name is unknown to the host.
    pub unknown_config: AtomicU64,
}

/// The process-wide counters.
pub static COUNTERS: Counters = Counters {
    send_pb_calls: AtomicU64::new(0),
    send_pb_v2_calls: AtomicU64::new(0),
    accepted: AtomicU64::new(0),
    rejected: AtomicU64::new(0),
    accepted_logs: AtomicU64::new(0),
    decode_errors: AtomicU64::new(0),
    bad_send_args: AtomicU64::new(0),
    lines_mismatch: AtomicU64::new(0),
    is_valid_calls: AtomicU64::new(0),
    ctl_cmd_calls: AtomicU64::new(0),
    callback_panics: AtomicU64::new(0),
    unknown_config: AtomicU64::new(0),
};

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::SeqCst)
}

/// A one-line summary of the counters for failure messages.
pub fn counters_summary() -> String {
    let c = &COUNTERS;
    format!(
        "send_pb={} send_pb_v2={} accepted={} rejected={} accepted_logs={} decode_errors={} \
         bad_send_args={} lines_mismatch={} is_valid={} ctl_cmd={} callback_panics={} unknown_config={} configs={:?}",
        get(&c.send_pb_calls),
        get(&c.send_pb_v2_calls),
        get(&c.accepted),
        get(&c.rejected),
        get(&c.accepted_logs),
        get(&c.decode_errors),
        get(&c.bad_send_args),
        get(&c.lines_mismatch),
        get(&c.is_valid_calls),
        get(&c.ctl_cmd_calls),
        get(&c.callback_panics),
        get(&c.unknown_config),
        configs_seen(),
    )
}

/// Every alarm delivered so far (the logs of config `logtail_alarm`).
pub fn alarms() -> Vec<ReceivedLog> {
    logs_for("logtail_alarm")
        .into_iter()
        .map(|(l, _)| l)
        .collect()
}

/// Alarms of type `kind` (`PLUGIN_DATA_DROPPED_ALARM`, ...) delivered so far.
pub fn alarms_of(kind: &str) -> Vec<ReceivedLog> {
    alarms()
        .into_iter()
        .filter(|a| a.get("alarm_type") == Some(kind))
        .collect()
}
