//! Plugin traits and the registry: the one table of `name → factory`.
//!
//! To add a plugin: write one file under the folder of its kind with an options struct
//! (`serde`, `deny_unknown_fields`, iLogtail option names) and a `build` function, then add
//! one line to [`REGISTRY`].

use crate::config::{DetailError, PluginSpec};
use crate::context::PluginContext;
use crate::event::EventGroup;
use crate::outbox::FlushControl;
use crate::pipeline::InputIo;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

pub mod aggregators;
pub mod flushers;
pub mod inputs;
pub mod processors;

/// The section a plugin belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Produces events.
    Input,
    /// Transforms groups, serially.
    Processor,
    /// Batches events into log groups with pack ids.
    Aggregator,
    /// Delivers log groups.
    Flusher,
}

impl Kind {
    /// Config section name (`processors`).
    pub const fn section(self) -> &'static str {
        match self {
            Kind::Input => "inputs",
            Kind::Processor => "processors",
            Kind::Aggregator => "aggregators",
            Kind::Flusher => "flushers",
        }
    }

    /// Singular noun (`processor`).
    pub const fn noun(self) -> &'static str {
        match self {
            Kind::Input => "input",
            Kind::Processor => "processor",
            Kind::Aggregator => "aggregator",
            Kind::Flusher => "flusher",
        }
    }
}

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
    fn run<'a>(&'a mut self, io: &'a mut InputIo) -> BoxFuture<'a, Result<(), String>>;
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
    /// `ctl.outbox()` (delivered, retried and handed over on stop by the engine).
    ///
    /// # Errors
    /// [`FlushError::Retry`] to have the same group retried, [`FlushError::GiveUp`] to drop it.
    fn flush(&mut self, group: &EventGroup, ctl: &FlushControl) -> Result<(), FlushError>;

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
}

/// A built plugin instance.
pub enum Plugin {
    /// An input.
    Input(Input),
    /// A processor.
    Processor(Box<dyn Processor>),
    /// An aggregator.
    Aggregator(Box<dyn Aggregator>),
    /// A flusher.
    Flusher(Box<dyn Flusher>),
}

/// Why a plugin could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// No such plugin of that kind.
    Unknown,
    /// Its options are invalid.
    Detail(DetailError),
}

type Factory = fn(&Value, &PluginContext) -> Result<Plugin, DetailError>;

struct Entry {
    name: &'static str,
    kind: Kind,
    factory: Factory,
}

const fn entry(name: &'static str, kind: Kind, factory: Factory) -> Entry {
    Entry {
        name,
        kind,
        factory,
    }
}

/// Every built-in plugin.
static REGISTRY: &[Entry] = &[
    entry("metric_mock", Kind::Input, inputs::metric_mock::build),
    entry("service_mock", Kind::Input, inputs::service_mock::build),
    entry(
        "processor_add_fields",
        Kind::Processor,
        processors::add_fields::build,
    ),
    entry("processor_drop", Kind::Processor, processors::drop::build),
    entry(
        "processor_default",
        Kind::Processor,
        processors::default::build,
    ),
    entry("processor_regex", Kind::Processor, processors::regex::build),
    entry("processor_json", Kind::Processor, processors::json::build),
    entry(
        "processor_split_char",
        Kind::Processor,
        processors::split_char::build,
    ),
    entry(
        "processor_rename",
        Kind::Processor,
        processors::rename::build,
    ),
    entry(
        "processor_filter_regex",
        Kind::Processor,
        processors::filter_regex::build,
    ),
    entry(
        "processor_filter_key_regex",
        Kind::Processor,
        processors::filter_key_regex::build,
    ),
    entry(
        "processor_split_log_string",
        Kind::Processor,
        processors::split_log_string::build,
    ),
    entry(
        "processor_split_log_regex",
        Kind::Processor,
        processors::split_log_regex::build,
    ),
    entry(
        "processor_strptime",
        Kind::Processor,
        processors::strptime::build,
    ),
    entry(
        "processor_gotime",
        Kind::Processor,
        processors::gotime::build,
    ),
    entry(
        "processor_desensitize",
        Kind::Processor,
        processors::desensitize::build,
    ),
    #[cfg(feature = "test-plugins")]
    entry(
        "processor_test_panic",
        Kind::Processor,
        processors::test_panic::build,
    ),
    entry(
        "aggregator_default",
        Kind::Aggregator,
        aggregators::default::build,
    ),
    entry("flusher_sls", Kind::Flusher, flushers::sls::build),
    entry("flusher_stdout", Kind::Flusher, flushers::stdout::build),
];

/// Builds the plugin described by `spec`.
///
/// # Errors
/// [`BuildError::Unknown`] for an unknown type of that kind, [`BuildError::Detail`] for bad options.
pub fn build(spec: &PluginSpec, cx: &PluginContext) -> Result<Plugin, BuildError> {
    let e = REGISTRY
        .iter()
        .find(|e| e.kind == spec.kind && e.name == spec.type_name)
        .ok_or(BuildError::Unknown)?;
    let mut cx = cx.clone();
    cx.plugin = spec.instance_name().into();
    (e.factory)(&spec.detail, &cx).map_err(BuildError::Detail)
}

/// Names of every plugin of `kind`.
pub fn names(kind: Kind) -> Vec<&'static str> {
    REGISTRY
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.name)
        .collect()
}
