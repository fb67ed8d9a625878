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

use engine::{Engine, InitOptions, Settings};
use once_cell::sync::Lazy;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

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

/// `InitPluginBase[V2]`: the checkpoint directory from the host's JSON (the first of
/// `LoongCollectorGoCheckPointDir`, `<LoongCollectorDataDir|ConfDir|LogtailSysConfDir>/go_plugin_checkpoint`,
/// `./go_plugin_checkpoint`), then the engine; finds the adaptor.
fn init(json: Option<&str>) -> Result<(), engine::Error> {
    let cfg: InitJson = match json.filter(|j| !j.trim().is_empty()) {
        None => InitJson::default(),
        Some(j) => serde_json::from_str(j).map_err(|e| {
            tracing::error!(error = %e, "InitPluginBaseV2: invalid JSON");
            engine::Error::Failed
        })?,
    };
    let in_dir = |d: Option<String>| d.map(|d| PathBuf::from(d).join("go_plugin_checkpoint"));
    let checkpoint_dir = cfg
        .checkpoint_dir
        .map(PathBuf::from)
        .or_else(|| in_dir(cfg.data_dir))
        .or_else(|| in_dir(cfg.conf_dir))
        .or_else(|| in_dir(cfg.sys_conf_dir))
        .unwrap_or_else(|| PathBuf::from("go_plugin_checkpoint"));
    adaptor::init();
    engine().init(InitOptions {
        checkpoint_dir,
        host_ip: cfg.host_ip,
        hostname: cfg.hostname,
    })
}
