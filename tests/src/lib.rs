//! End-to-end test support: an in-process iLogtail-like host that drives the REAL
//! `libPluginAdapter.so` and `libPluginBase.so` through `dlopen`.
//!
//! The host follows the sequence a real agent uses: open the adaptor with
//! `RTLD_LAZY` (local), register the `IsValidToSend` / `SendPb` / `SendPbV2` / `CtlCmd`
//! callbacks, then open the base. Everything the base sends back is decoded and kept in a
//! global store ([`store`]) that the scenario tests in `tests/` query.
//!
//! `InitPluginBase` runs once per process and `HoldOn` is global, so every scenario that
//! drives the lifecycle lives in its own integration test file (one process each).
//!
//! Modules:
//! - [`ffi`]: Go's C types, the dlopened libraries and the base symbol table.
//! - [`file`]: the `input_file` tests: numbered lines, writers, harness runs, counting.
//! - [`http_sink`]: a fault-injecting HTTP sink for the `flusher_http` tests.
//! - [`fluent_bit_receiver`]: the real Fluent Bit as a receiver, counted through its file output.
//! - [`libs`]: the libraries and the harness the tests load, built from the current tree.
//! - [`base`]: safe wrappers (`&str` / `&[u8]`) over every base export.
//! - [`callbacks`]: the host callbacks and the configurable send policy.
//! - [`engine_log`]: the base's log, captured in a file and shown when a test fails.
//! - [`store`]: what the host accepted (log groups, counters).
//! - [`proto`]: `sls_logs` protobuf messages (prost derive).
//! - [`analysis`]: pack-id and `Index` sequence analysis.
//! - [`session`]: one initialised base per process, config helpers, bounded exit.
//! - [`loong`]: the LoongCollector 3.x host: its exports, its protobuf, its session.
//! - [`util`]: paths, temp dirs, waiting, RSS, subprocesses with a deadline.

#![warn(missing_docs, unreachable_pub, unsafe_op_in_unsafe_fn, unused_must_use)]

pub mod analysis;
pub mod base;
pub mod callbacks;
pub mod engine_log;
pub mod ffi;
pub mod file;
pub mod fluent_bit_receiver;
pub mod http_sink;
pub mod libs;
pub mod loong;
pub mod proto;
pub mod session;
pub mod store;
pub mod util;

pub use analysis::{analyze_indexes, analyze_pack_ids, IndexReport, PackIdReport};
pub use callbacks::{set_send_policy, SendPolicy};
pub use session::{pipeline, service_mock, Session, HOST_IP, HOST_NAME};
pub use store::{ReceivedGroup, ReceivedLog};
pub use util::{vm_rss_kib, wait_until, TempDir};
