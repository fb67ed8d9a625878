//! The pipeline engine: the data model, the plugin API and every built-in plugin, pipelines,
//! the lifecycle state machine, checkpoints, statistics and alarms.
//!
//! An engine is a value ([`Engine::new`]): it owns its runtime, its pool for blocking calls,
//! its checkpoint store, its statistics and its alarms, and delivers through a [`host::Host`]
//! that the host layer implements. Two engines in one process are independent. This crate
//! has no C ABI, no global allocator and no process-wide mutable state (the one exception,
//! [`event::config_text`], is a cache of immutable config text).
//!
//! Layers, each using only those below it:
//! - [`ack`], [`event`] ↔ [`proto`], [`stats`], [`backoff`], [`host`] (the delivery trait);
//! - [`store`] (checkpoints, spill, backlog), [`blocking`], [`runtime`];
//! - [`encode`]: event groups to bytes (JSON lines, raw, protobuf, msgpack);
//! - [`api`]: what a plugin sees (traits, context, input IO, the host queue, outputs);
//! - [`buffer`]: buffered delivery for outputs (chunks, memory and disk buffers, retries);
//! - [`patterns`] (Go-compatible regexes), then [`routing`] (`Match`) and [`plugins`];
//! - [`config`] (parsing only) and [`registry`] (name → factory; builds and checks);
//! - [`services`], [`outbox`], [`pipeline`], [`report`];
//! - [`engine`]: the lifecycle (load, replace, remove, hold, resume, stop, exit).
#![warn(unreachable_pub, unused_must_use)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod ack;
pub mod api;
pub mod backoff;
pub mod blocking;
pub mod buffer;
pub mod config;
pub mod encode;
pub mod engine;
pub mod event;
pub mod host;
pub mod outbox;
pub mod patterns;
pub mod pipeline;
pub mod plugins;
pub mod proto;
pub mod registry;
pub mod report;
pub mod routing;
pub mod runtime;
pub mod services;
pub mod stats;
pub mod store;
#[cfg(test)]
mod test_log;

pub use engine::{Engine, Error, InitOptions, Settings, Tunables};
