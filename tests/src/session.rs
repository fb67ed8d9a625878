//! One initialised base per test process, config JSON helpers and a bounded exit.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::base;
use crate::ffi::host;
use crate::util::TempDir;

/// `HostIP` given to `InitPluginBaseV2`; groups must carry it as `Source`.
pub const HOST_IP: &str = "192.0.2.10";
/// `Hostname` given to `InitPluginBaseV2`.
pub const HOST_NAME: &str = "e2e-host";
/// Project used by [`Session::load`].
pub const PROJECT: &str = "e2e-project";

static NEXT_KEY: AtomicI64 = AtomicI64::new(1000);

/// The base of this process, initialised with `InitPluginBaseV2` on a fresh temp dir (or on
/// a directory that outlives the process, see [`Session::start_in`]).
pub struct Session {
    dir: Option<TempDir>,
    root: std::path::PathBuf,
}

impl Session {
    /// Loads both libraries (registering the callbacks), then `InitPluginBaseV2` with
    /// `LogtailSysConfDir` (and the LoongCollector dirs) inside a new temp dir.
    ///
    /// # Panics
    /// When loading fails or `InitPluginBaseV2` does not return 0.
    pub fn start(name: &str) -> Session {
        let h = host();
        eprintln!(
            "e2e: loaded {} (adapter version {:?}, V2 registration {})",
            h.lib_dir.display(),
            h.adapter_version,
            h.registered_v2
        );
        let dir = TempDir::new(name);
        let root = dir.path().to_path_buf();
        let rc = base::init_plugin_base_v2(&init_json(&root));
        assert_eq!(rc, 0, "InitPluginBaseV2 returned {rc}");
        Session {
            dir: Some(dir),
            root,
        }
    }

    /// As [`Session::start`], on `root` (created if needed, never removed): for scenarios
    /// where a second process continues on the data the first one left.
    ///
    /// # Panics
    /// When loading fails or `InitPluginBaseV2` does not return 0.
    pub fn start_in(root: &std::path::Path) -> Session {
        host();
        std::fs::create_dir_all(root).expect("create the session root");
        let rc = base::init_plugin_base_v2(&init_json(root));
        assert_eq!(rc, 0, "InitPluginBaseV2 returned {rc}");
        Session {
            dir: None,
            root: root.to_path_buf(),
        }
    }

    /// The directory given as `LogtailSysConfDir`.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The temp dir given as `LogtailSysConfDir` (sessions made by [`Session::start`]).
    ///
    /// # Panics
    /// For a session made by [`Session::start_in`].
    pub fn dir(&self) -> &TempDir {
        self.dir.as_ref().expect("a session made by Session::start")
    }

    /// `LoadConfig(PROJECT, logstore_of(name), name, <unique key>, json)`.
    pub fn load(&self, name: &str, json: &str) -> i64 {
        self.load_with_key(name, NEXT_KEY.fetch_add(1, Ordering::SeqCst), json)
    }

    /// `LoadConfig(PROJECT, logstore_of(name), name, key, json)`.
    pub fn load_with_key(&self, name: &str, key: i64, json: &str) -> i64 {
        base::load_config(PROJECT, &logstore_of(name), name, key, json)
    }

    /// `HoldOn(1)` with a deadline, then removes the temp dir. Returns how long HoldOn took.
    ///
    /// # Panics
    /// When `HoldOn(1)` does not return within `timeout`.
    pub fn exit(self, timeout: Duration) -> Duration {
        let took = hold_on_bounded(1, timeout)
            .unwrap_or_else(|| panic!("HoldOn(1) did not return within {timeout:?}"));
        drop(self.dir);
        took
    }
}

/// The JSON for `InitPluginBaseV2` rooted at `d`.
pub fn init_json(d: &std::path::Path) -> String {
    let sub = |s: &str| {
        let p = d.join(s);
        let _ = std::fs::create_dir_all(&p);
        format!("{}/", p.display())
    };
    json!({
        "LogtailSysConfDir": format!("{}/", d.display()),
        "HostIP": HOST_IP,
        "Hostname": HOST_NAME,
        "LoongCollectorConfDir": sub("conf"),
        "LoongCollectorDataDir": sub("data"),
        "LoongCollectorLogDir": sub("log"),
        "LoongCollectorGoCheckPointDir": sub("checkpoint"),
    })
    .to_string()
}

/// The logstore [`Session::load`] uses for config `name`.
pub fn logstore_of(name: &str) -> String {
    format!("{name}-store")
}

/// Runs `HoldOn(flag)` on a helper thread; `Some(elapsed)` when it returned within `timeout`.
/// On timeout the thread is left blocked (the test fails and the process ends).
pub fn hold_on_bounded(flag: i64, timeout: Duration) -> Option<Duration> {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        base::hold_on(flag);
        let _ = tx.send(start.elapsed());
    });
    rx.recv_timeout(timeout).ok()
}

/// A pipeline config: `inputs` and `processors` as given, `flusher_sls` to the host and a
/// short aggregation interval so tests run fast.
pub fn pipeline(inputs: Vec<Value>, processors: Vec<Value>) -> String {
    let mut v = json!({
        "global": {"AggregatIntervalMs": 200},
        "inputs": inputs,
        "processors": processors,
        "flushers": [{"type": "flusher_sls", "detail": {}}],
    });
    if v["inputs"].as_array().is_some_and(|a| a.is_empty()) {
        v.as_object_mut().expect("object").remove("inputs");
    }
    v.to_string()
}

/// A `service_mock` input emitting `max_log_count` logs at `logs_per_second`, each with
/// `fields` plus an `Index` counting from 1.
pub fn service_mock(logs_per_second: u64, max_log_count: u64, fields: Value) -> Value {
    json!({
        "type": "service_mock",
        "detail": {"LogsPerSecond": logs_per_second, "MaxLogCount": max_log_count, "Fields": fields}
    })
}

/// `processor_add_fields` with `fields`.
pub fn add_fields(fields: Value) -> Value {
    json!({"type": "processor_add_fields", "detail": {"Fields": fields}})
}
