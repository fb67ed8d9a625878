//! `libPluginBase.so`: the pipeline engine behind the iLogtail plugin ABI.
//!
//! A C/C++ host `dlopen`s this library after `libPluginAdapter.so`, hands it pipeline
//! configs with `LoadConfig` and receives protobuf `LogGroup`s back through the adaptor.
//! Data flows one way: [`ffi`] → [`manager`] → [`pipeline`] → [`plugins`] → [`host`].
//!
//! The crate is also an rlib so tests and tools can use the engine directly.
#![allow(non_snake_case)] // the library must be called `libPluginBase.so`
#![warn(unreachable_pub, unused_must_use)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod ack;
#[cfg(feature = "mimalloc")]
mod alloc;
pub mod blocking;
pub mod config;
pub mod context;
pub mod event;
pub mod ffi;
pub mod host;
pub mod manager;
pub mod outbox;
pub mod pipeline;
pub mod plugins;
pub mod proto;
pub mod routing;
pub mod runtime;
pub mod stats;
pub mod store;
