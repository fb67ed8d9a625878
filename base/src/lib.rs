//! `libPluginBase.so`: the iLogtail 1.x/2.x plugin ABI over the engine (`plugin-engine`).
//!
//! A C/C++ host `dlopen`s this library after `libPluginAdapter.so`, hands it pipeline
//! configs with `LoadConfig` and receives protobuf `LogGroup`s back through the adaptor.
//! This crate is only the layer: the exports ([`ffi`]), the one engine of the process, the
//! allocator, and reaching the adaptor ([`adaptor`]). Everything else is the engine's.
#![allow(non_snake_case)] // the library must be called `libPluginBase.so`
#![warn(unreachable_pub, unused_must_use)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod adaptor;
#[cfg(feature = "mimalloc")]
mod alloc;
pub mod ffi;
pub mod loong;

use engine::{Engine, InitOptions, Settings};
use once_cell::sync::Lazy;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The engine of this process (the ABI has one plugin system per process).
static ENGINE: Lazy<Engine> = Lazy::new(|| {
    Engine::new(Settings {
        name: "plugin".into(),
        host: Arc::new(adaptor::AdaptorHost),
    })
});

/// The process's engine.
pub fn engine() -> &'static Engine {
    &ENGINE
}

/// What the last `InitPluginBase[V2]` asked for, to retry it when it failed.
static INIT_OPTIONS: Mutex<Option<InitOptions>> = Mutex::new(None);

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
    #[serde(rename = "LoongCollectorGoCheckPointFile")]
    checkpoint_file: Option<String>,
    #[serde(rename = "HostIP")]
    host_ip: Option<String>,
    #[serde(rename = "Hostname")]
    hostname: Option<String>,
}

/// `InitPluginBase[V2]`: the checkpoint store's directory from the host's JSON
/// (`<dir>/<LoongCollectorGoCheckPointFile, default go_plugin_checkpoint>`, `dir` the first
/// of `LoongCollectorGoCheckPointDir`, `LoongCollectorDataDir`, `LoongCollectorConfDir`,
/// `LogtailSysConfDir`, else `.`), then the engine; finds the adaptor.
///
/// A LoongCollector 3.x host (its JSON has no `LogtailSysConfDir`) is always told 0: given
/// anything else it calls a NULL pointer on its next try. A failure is then alarmed and
/// logged, and the initialisation is tried again at the next `LoadPipeline`.
fn init(json: Option<&str>) -> Result<(), engine::Error> {
    let loong =
        json.is_some_and(|j| !j.contains("LogtailSysConfDir") && j.contains("LoongCollector"));
    let result = parse_init(json).and_then(|opts| {
        *INIT_OPTIONS.lock().unwrap_or_else(|e| e.into_inner()) = Some(opts.clone());
        adaptor::init();
        engine().init(opts)
    });
    match result {
        Err(_) if loong => {
            tracing::error!("InitPluginBaseV2 failed; returning 0 to the LoongCollector host (it cannot take an error), retrying at the next LoadPipeline");
            engine().stats().alarm(
                engine::stats::AlarmType::CheckpointError,
                engine::stats::Level::Critical,
                "",
                "",
                "the plugin base could not initialise (see its log); it retries when a config is loaded",
            );
            Ok(())
        }
        r => r,
    }
}

/// Tries the initialisation again with the options of the last `InitPluginBase[V2]`.
fn retry_init() {
    let opts = INIT_OPTIONS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(opts) = opts {
        adaptor::init();
        if engine().init(opts).is_ok() {
            tracing::info!("the plugin base is initialised (retried)");
        }
    }
}

/// Our address as the host gave it (empty when it did not).
fn host_ip() -> String {
    INIT_OPTIONS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|o| o.host_ip.clone())
        .unwrap_or_default()
}

fn parse_init(json: Option<&str>) -> Result<InitOptions, engine::Error> {
    let cfg: InitJson = match json.filter(|j| !j.trim().is_empty()) {
        None => InitJson::default(),
        Some(j) => serde_json::from_str(j).map_err(|e| {
            tracing::error!(error = %e, "InitPluginBaseV2: invalid JSON");
            engine::Error::Failed
        })?,
    };
    let file = cfg
        .checkpoint_file
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "go_plugin_checkpoint".into());
    let in_dir = |d: Option<String>| d.map(|d| PathBuf::from(d).join(&file));
    let checkpoint_dir = in_dir(cfg.checkpoint_dir)
        .or_else(|| in_dir(cfg.data_dir))
        .or_else(|| in_dir(cfg.conf_dir))
        .or_else(|| in_dir(cfg.sys_conf_dir))
        .unwrap_or_else(|| PathBuf::from("go_plugin_checkpoint"));
    Ok(InitOptions {
        checkpoint_dir,
        host_ip: cfg.host_ip,
        hostname: cfg.hostname,
    })
}
