//! The plugin API: everything a plugin may use, and nothing of how the engine runs it.
//!
//! A plugin is built from its `detail` options and a [`PluginContext`]; it sees events
//! ([`crate::event`]), these traits, the context (names, checkpoints, alarms) and, for
//! inputs, an [`InputIo`]; flushers to the host hand serialized groups to a [`HostQueue`].
//! It never sees config parsing, pipeline internals, the lifecycle or host delivery.
//! A new plugin file starts with `use crate::api::prelude::*;`.

mod context;
mod output;
pub mod prelude;

pub use crate::ack::{Ack, AckWindow};
pub use crate::host::Payload;
pub use crate::stats::{AlarmType, Level, PluginStats, Stats};
pub use context::{
    Fnv64a, GlobalConfig, HostIdentity, HostQueueRef, PackIds, PluginContext, Volatile,
};
pub use output::{Chunk, ChunkKey, Commit, Output, WriteError};

use crate::event::EventGroup;
use bytes::Bytes;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An input polled every `InputIntervalMs` (`metric_*`).
pub trait MetricInput: Send {
    /// Appends this interval's events to `group`.
    ///
    /// # Errors
    /// A message describing the failure (the interval is skipped).
    fn collect(&mut self, group: &mut EventGroup) -> Result<(), String>;
}

/// An input that runs until told to stop (`service_*`).
pub trait ServiceInput: Send {
    /// Produces events into `io` until `io.stopped()` resolves. The same instance is run
    /// again after `Resume`, so state kept in `self` carries over.
    fn run<'a>(&'a mut self, io: &'a mut dyn InputIo) -> BoxFuture<'a, Result<(), String>>;
}

/// Either kind of input.
pub enum Input {
    /// Polled on an interval.
    Metric(Box<dyn MetricInput>),
    /// Runs on its own.
    Service(Box<dyn ServiceInput>),
}

/// Transforms a group in place (drop, add, or rewrite events).
pub trait Processor: Send {
    /// Processes one group.
    fn process(&mut self, group: &mut EventGroup);
}

/// Batches events into log groups ready to send.
pub trait Aggregator: Send {
    /// Adds a processed group; full log groups are pushed to `out`.
    fn add(&mut self, group: EventGroup, out: &mut Vec<EventGroup>);
    /// Pushes every partial log group to `out` (on the interval and at stop).
    fn flush(&mut self, out: &mut Vec<EventGroup>);

    /// Whether the aggregator handles events whose contents are still only in their original
    /// encoding (see [`Flusher::reads_encoded`]); if not, the pipeline decodes them first.
    fn reads_encoded(&self) -> bool {
        false
    }
}

/// Why a flusher did not deliver a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushError {
    /// Try the same group again later (retried with exponential back-off capped at 1 s).
    Retry(String),
    /// Give up on this group (its events are counted as dropped and an alarm is raised).
    GiveUp(String),
}

/// Delivers log groups somewhere.
pub trait Flusher: Send {
    /// Delivers one log group. A flusher to the host puts the serialized group in
    /// `host` (delivered, retried and handed over on stop by the engine).
    ///
    /// # Errors
    /// [`FlushError::Retry`] to have the same group retried, [`FlushError::GiveUp`] to drop it.
    fn flush(&mut self, group: &EventGroup, host: &dyn HostQueue) -> Result<(), FlushError>;

    /// Whether [`Flusher::flush`] may block (on I/O): then the flush stage calls it on the
    /// runtime's blocking pool. A flusher that says `false` is called on the runtime itself
    /// and must return quickly (it should not ask for retries either: the back-off would wait
    /// there).
    fn may_block(&self) -> bool {
        true
    }

    /// Whether the flusher handles events whose contents are still only in their original
    /// encoding ([`crate::event::LogEvent::is_pending`]); if not, the pipeline decodes them
    /// before calling [`Flusher::flush`].
    fn reads_encoded(&self) -> bool {
        false
    }

    /// The handle through which the pipeline starts and stops what the flusher runs on its
    /// own (the flush threads of a buffered output); `None` for a flusher without any.
    fn control(&self) -> Option<Arc<dyn FlusherControl>> {
        None
    }
}

/// How a pipeline instance stops (see [`FlusherControl::stop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopping {
    /// Stop writing after the current writes; keep everything for the next start or the
    /// config's successor (HoldOn, reload).
    Park,
    /// Keep writing until `deadline` (flushing what is staged), then stop: the process exits.
    Exit {
        /// When to give up.
        deadline: Instant,
    },
    /// The config is gone: deliver everything in the background, then end.
    Remove,
}

/// What a flusher runs besides [`Flusher::flush`], started and stopped with the pipeline.
pub trait FlusherControl: Send + Sync {
    /// The pipeline starts (again).
    fn run(&self);
    /// The pipeline begins to stop.
    fn stop(&self, how: Stopping);
    /// The pipeline finishes stopping: waits (up to `deadline`) for what [`Stopping::Exit`]
    /// asked, then settles what remains.
    fn finish(&self, deadline: Instant);
}

/// Why an input's group was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The config was removed: the input should end.
    Closed,
    /// The process is exiting and the group cannot be kept on disk.
    Refused(String),
}

/// What an input gets from the engine: a way to send, a stop signal, and its source name.
pub trait InputIo: Send {
    /// Sends a group to the processors, waiting while the queue is full (back-pressure).
    /// Once the pipeline asks its inputs to stop, the group is queued for the next run
    /// without waiting (nothing an input produced is dropped).
    ///
    /// # Errors
    /// [`SendError::Closed`] when the config was removed; [`SendError::Refused`] when the
    /// process is exiting and the group cannot be kept on disk.
    fn send(&mut self, group: EventGroup) -> BoxFuture<'_, Result<(), SendError>>;

    /// Resolves once the pipeline asks its inputs to stop.
    fn stopped(&mut self) -> BoxFuture<'_, ()>;

    /// Whether a stop was requested.
    fn is_stopped(&self) -> bool;

    /// The source key for groups of this input (pack ids are numbered per source).
    fn source(&self) -> &Bytes;
}

/// Where a flusher to the host puts serialized log groups: the engine delivers them in
/// order, retries what the host refuses and hands them over on stop.
pub trait HostQueue: Sync {
    /// An empty buffer to serialize into (a reused one when there is one).
    fn buffer(&self) -> Vec<u8>;
    /// Queues a payload for the host.
    fn push(&self, payload: Payload);
}

/// Builds a plugin of type `T` from its `detail` options.
pub type Build<T> = fn(&Value, &PluginContext) -> Result<T, DetailError>;

/// The factory of a plugin: its kind is the variant.
#[derive(Clone, Copy)]
pub enum Factory {
    /// Builds an input.
    Input(Build<Input>),
    /// Builds a processor.
    Processor(Build<Box<dyn Processor>>),
    /// Builds an aggregator.
    Aggregator(Build<Box<dyn Aggregator>>),
    /// Builds a flusher.
    Flusher(Build<Box<dyn Flusher>>),
    /// Builds an output: a flusher whose chunks the framework buffers, retries and commits
    /// ([`crate::buffer`]); built once per flush thread.
    Output(Build<Box<dyn Output>>),
}

/// A problem inside one plugin's `detail`, before the config and plugin are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailError {
    /// Path of the offending field inside `detail` (empty for the object itself).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// Further problems found in the same `detail` by [`parse_detail`] (each with an empty
    /// `more`); the config check reports them all.
    pub more: Vec<DetailError>,
}

impl DetailError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            more: Vec::new(),
        }
    }

    /// This error and every further one, in the order they were found.
    pub fn into_all(mut self) -> Vec<DetailError> {
        let more = std::mem::take(&mut self.more);
        let mut all = Vec::with_capacity(1 + more.len());
        all.push(self);
        all.extend(more.into_iter().flat_map(DetailError::into_all));
        all
    }
}

/// At most this many problems are reported for one plugin's `detail`.
pub const MAX_DETAIL_ERRORS: usize = 16;

/// Deserializes a plugin's `detail` into its typed options, tracking the field path.
///
/// Every problem is reported, not only the first: after an error the offending field is
/// taken out of a copy of `detail` (an unknown or ill-typed field is dropped; an error inside
/// an array or a missing field drops the enclosing field) and the copy is deserialized again,
/// up to [`MAX_DETAIL_ERRORS`] times. A "missing field" caused by such a removal is not
/// reported.
///
/// # Errors
/// A [`DetailError`] naming the unknown, missing or ill-typed field, with the further
/// problems in [`DetailError::more`].
pub fn parse_detail<T: serde::de::DeserializeOwned>(detail: &Value) -> Result<T, DetailError> {
    let mut e = match serde_path_to_error::deserialize::<_, T>(detail) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let mut work = detail.clone();
    let mut removed: Vec<Vec<String>> = Vec::new();
    let mut found: Vec<DetailError> = Vec::new();
    loop {
        let path = object_path(e.path());
        let field = field_text(&e.path().to_string(), &e.inner().to_string());
        let message = e.into_inner().to_string();
        let (target, record) = match (path, missing_field_name(&message)) {
            // Not a path into `detail` we can edit (inside an enum, say): stop after this one.
            (None, _) => (None, true),
            (Some(mut p), Some(name)) => {
                // The object at `p` lacks `name`: drop the object; report the error unless
                // it is the consequence of an earlier removal.
                let mut full = p.clone();
                full.push(name.to_string());
                let ours = removed.contains(&full);
                trim_to_field(&mut p);
                (Some(p), !ours)
            }
            (Some(mut p), None) => {
                if let Some(name) = unknown_field_name(&message) {
                    if p.last().map(String::as_str) != Some(name) {
                        p.push(name.to_string());
                    }
                }
                trim_to_field(&mut p);
                (Some(p), true)
            }
        };
        if record {
            let err = DetailError::new(field, message);
            if found.contains(&err) {
                break;
            }
            found.push(err);
        }
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            break;
        };
        if found.len() >= MAX_DETAIL_ERRORS || !remove(&mut work, &target) {
            break;
        }
        removed.push(target);
        match serde_path_to_error::deserialize::<_, T>(&work) {
            Ok(_) => break,
            Err(next) => e = next,
        }
    }
    let mut found = found.into_iter();
    let mut first = found
        .next()
        .unwrap_or_else(|| DetailError::new("", "invalid options"));
    first.more = found.collect();
    Err(first)
}

/// The keys of `path`, or `None` when it has a segment that is not an object key or an
/// array index (indices are kept as their decimal text).
fn object_path(path: &serde_path_to_error::Path) -> Option<Vec<String>> {
    use serde_path_to_error::Segment;
    let mut keys = Vec::new();
    for seg in path.iter() {
        match seg {
            Segment::Map { key } => keys.push(key.clone()),
            Segment::Seq { index } => keys.push(format!("[{index}]")),
            Segment::Enum { .. } | Segment::Unknown => return None,
        }
    }
    Some(keys)
}

/// Cuts trailing array indices: an element cannot be dropped without renumbering the others,
/// so the whole field holding the array goes.
fn trim_to_field(path: &mut Vec<String>) {
    while path.last().is_some_and(|k| k.starts_with('[')) {
        path.pop();
    }
}

/// The `field` of a [`DetailError`] from serde_path_to_error's path text and the message:
/// for `unknown field `X``, serde names the field in the message only; name it in the path.
fn field_text(path: &str, message: &str) -> String {
    match (path, unknown_field_name(message)) {
        (".", Some(name)) => name.to_string(),
        (".", None) => String::new(),
        (p, Some(name)) if !p.ends_with(name) => format!("{p}.{name}"),
        (p, _) => p.to_string(),
    }
}

/// Removes the value at `path` from `root`; whether there was one.
fn remove(root: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = root;
    for k in parents {
        cur = match (cur, k.strip_prefix('[').and_then(|i| i.strip_suffix(']'))) {
            (Value::Array(a), Some(i)) => {
                match i.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                    Some(v) => v,
                    None => return false,
                }
            }
            (Value::Object(o), None) => match o.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match cur {
        Value::Object(o) => o.remove(last).is_some(),
        _ => false,
    }
}

fn missing_field_name(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("missing field `")?;
    rest.split('`').next()
}

fn unknown_field_name(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split('`').next()
}
