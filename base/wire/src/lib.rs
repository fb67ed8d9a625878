//! The one definition of every type that crosses a boundary between the host, the adaptor,
//! the base and the tools: Go's C types ([`go`]), the C types of the host's callbacks
//! ([`callbacks`]) the `sls_logs.proto` messages ([`sls`]) and LoongCollector's
//! `PipelineEventGroup` ([`models`]).
//!
//! The engine, both ABI libraries and the harness use these. The end-to-end tests keep their
//! own decoder (`tests/src/proto.rs`) on purpose, so a mistake here cannot hide itself.
#![warn(missing_docs)]

pub mod callbacks;
pub mod go;
pub mod models;
pub mod sls;
