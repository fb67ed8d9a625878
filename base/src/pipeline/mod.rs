//! One running config: inputs → serial processors → aggregators → flushers.
//!
//! Stages and their queues:
//! - inputs run as tasks on the base runtime and push into a [`Feed`] bounded in events
//!   (`DefaultLogQueueSize`); the host pushes into the same feed with `ProcessLog*`;
//! - one processing task runs the processors and aggregators and pushes finished log groups
//!   into a queue bounded in groups (`DefaultLogGroupQueueSize`);
//! - one flush thread per pipeline runs the flushers (they may block in the host's SendPb).
//!
//! Stopping is two-phase so many pipelines stop in parallel: [`Pipeline::begin_stop`] signals
//! inputs and tells the flush stage to park or drain, [`Pipeline::finish_stop`] waits for every
//! stage with a deadline. Plugin instances come back from their stages and are reused by the
//! next [`Pipeline::start`], so an input's state (a mock's `Index`) carries over a HoldOn/Resume.

mod feed;

pub use feed::{Feed, InputIo, PushError};

use crate::config::{PipelineConfig, PluginSpec};
use crate::context::PluginContext;
use crate::event::EventGroup;
use crate::host::{deliver_parked, FlushControl, FlushMode, Payload};
use crate::plugins::{self, Aggregator, Flusher, Input, Plugin, Processor};
use feed::Queued;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

type Stage<T> = Vec<(PluginSpec, T)>;
/// What the processing stage hands back when it ends.
type ProcessStages = (Stage<Box<dyn Processor>>, Stage<Box<dyn Aggregator>>);

/// Plugin instances of a stopped pipeline.
#[derive(Default)]
struct Plugins {
    inputs: Stage<Option<Input>>,
    processors: Stage<Box<dyn Processor>>,
    aggregators: Stage<Box<dyn Aggregator>>,
    flushers: Stage<Box<dyn Flusher>>,
}

struct Running {
    stop_tx: watch::Sender<bool>,
    feed: Option<Feed>,
    inputs: Vec<(PluginSpec, JoinHandle<Option<Input>>)>,
    process: JoinHandle<ProcessStages>,
    flush: std::thread::JoinHandle<Stage<Box<dyn Flusher>>>,
}

/// A loaded config and, while running, its stages.
pub struct Pipeline {
    config: PipelineConfig,
    cx: PluginContext,
    ctl: Arc<FlushControl>,
    stopped: Option<Plugins>,
    running: Option<Running>,
}

/// Extra time after the drain deadline for stages to hand back their plugins.
const JOIN_GRACE: Duration = Duration::from_secs(2);

fn build<T>(
    spec: &PluginSpec,
    cx: &PluginContext,
    pick: fn(Plugin) -> Option<T>,
) -> Result<T, String> {
    match plugins::build(spec, cx) {
        Ok(p) => pick(p).ok_or_else(|| format!("{} is not of its section's kind", spec.location())),
        Err(e) => Err(format!("{}: {e:?}", spec.location())),
    }
}

fn as_input(p: Plugin) -> Option<Input> {
    match p {
        Plugin::Input(i) => Some(i),
        _ => None,
    }
}
fn as_processor(p: Plugin) -> Option<Box<dyn Processor>> {
    match p {
        Plugin::Processor(x) => Some(x),
        _ => None,
    }
}
fn as_aggregator(p: Plugin) -> Option<Box<dyn Aggregator>> {
    match p {
        Plugin::Aggregator(x) => Some(x),
        _ => None,
    }
}
fn as_flusher(p: Plugin) -> Option<Box<dyn Flusher>> {
    match p {
        Plugin::Flusher(x) => Some(x),
        _ => None,
    }
}

fn build_stage<T>(
    specs: &[PluginSpec],
    cx: &PluginContext,
    pick: fn(Plugin) -> Option<T>,
) -> Result<Stage<T>, String> {
    specs
        .iter()
        .map(|s| Ok((s.clone(), build(s, cx, pick)?)))
        .collect()
}

impl Pipeline {
    /// Builds every plugin of `config`. `parked` holds undelivered data of a previous
    /// instance of the same config; it is delivered first once this one starts.
    ///
    /// # Errors
    /// When a plugin cannot be built (configs are checked first, so this is unexpected).
    pub fn new(
        config: PipelineConfig,
        cx: PluginContext,
        parked: Arc<Mutex<VecDeque<Payload>>>,
    ) -> Result<Self, String> {
        let stopped = Plugins {
            inputs: build_stage(&config.inputs, &cx, as_input)?
                .into_iter()
                .map(|(s, i)| (s, Some(i)))
                .collect(),
            processors: build_stage(&config.processors, &cx, as_processor)?,
            aggregators: build_stage(&config.aggregators, &cx, as_aggregator)?,
            flushers: build_stage(&config.flushers, &cx, as_flusher)?,
        };
        Ok(Self {
            config,
            cx,
            ctl: Arc::new(FlushControl::new(parked)),
            stopped: Some(stopped),
            running: None,
        })
    }

    /// The config this pipeline runs.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Undelivered data of this config, in order.
    pub fn parked(&self) -> Arc<Mutex<VecDeque<Payload>>> {
        self.ctl.parked.clone()
    }

    /// Whether the stages are running.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The input queue, for host pushes, while running.
    pub fn feed(&self) -> Option<Feed> {
        self.running.as_ref().and_then(|r| r.feed.clone())
    }

    /// Starts every stage on `rt`.
    ///
    /// # Errors
    /// When the flush thread cannot be created.
    pub fn start(&mut self, rt: &Handle) -> Result<(), String> {
        if self.running.is_some() {
            return Ok(());
        }
        let plugins = self.stopped.take().unwrap_or_default();
        let g = &self.config.global;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (feed, rx) = Feed::new(g.default_log_queue_size);
        let (out_tx, out_rx) = mpsc::channel(g.default_log_group_queue_size.max(1));
        self.ctl.set(FlushMode::Run, None);

        let flush = {
            let (ctl, cx, flushers) = (self.ctl.clone(), self.cx.clone(), plugins.flushers);
            std::thread::Builder::new()
                .name(format!("flush-{}", self.config.name))
                .spawn(move || flush_loop(out_rx, flushers, ctl, cx))
                .map_err(|e| format!("cannot start flush thread: {e}"))?
        };
        let interval = Duration::from_millis(g.aggregat_interval_ms.max(1));
        let process = rt.spawn(process_loop(
            rx,
            plugins.processors,
            plugins.aggregators,
            out_tx,
            interval,
            self.cx.clone(),
        ));
        let input_interval = Duration::from_millis(g.input_interval_ms.max(1));
        let mut inputs = Vec::new();
        for (spec, input) in plugins.inputs {
            let input = match input {
                Some(i) => i,
                None => match build(&spec, &self.cx, as_input) {
                    Ok(i) => i,
                    Err(e) => {
                        tracing::error!(config = %self.config.name, error = %e, "cannot rebuild input");
                        continue;
                    }
                },
            };
            let source = format!("{}/{}", self.config.name, spec.instance_name());
            let io = InputIo::new(feed.clone(), stop_rx.clone(), source.into());
            inputs.push((spec, rt.spawn(run_input(input, io, input_interval))));
        }
        self.running = Some(Running {
            stop_tx,
            feed: Some(feed),
            inputs,
            process,
            flush,
        });
        Ok(())
    }

    /// Phase one of a stop: inputs are told to stop, the host feed is closed, and the flush
    /// stage parks (`Park`) or keeps delivering until `deadline` (`Drain`).
    pub fn begin_stop(&mut self, mode: FlushMode, deadline: Instant) {
        if let Some(r) = &mut self.running {
            self.ctl.set(mode, Some(deadline));
            let _ = r.stop_tx.send(true);
            r.feed = None;
        }
    }

    /// Phase two: waits for every stage (bounded by `deadline` plus a short grace) and keeps
    /// their plugins for the next start. A stage that does not finish is abandoned and its
    /// plugins are rebuilt from the config next time.
    pub fn finish_stop(&mut self, rt: &Handle, deadline: Instant) {
        let Some(r) = self.running.take() else { return };
        let join_by = tokio::time::Instant::from_std(deadline + JOIN_GRACE);
        let name = &self.config.name;
        let mut plugins = Plugins::default();
        for (spec, mut h) in r.inputs {
            let got = rt.block_on(async { tokio::time::timeout_at(join_by, &mut h).await });
            let input = match got {
                Ok(Ok(i)) => i,
                Ok(Err(e)) => {
                    tracing::error!(config = %name, plugin = %spec.location(), error = %e, "input failed; it will be rebuilt");
                    None
                }
                Err(_) => {
                    tracing::error!(config = %name, plugin = %spec.location(), "input did not stop in time; aborted, it will be rebuilt");
                    h.abort();
                    None
                }
            };
            plugins.inputs.push((spec, input));
        }
        drop(r.stop_tx);
        let mut process = r.process;
        match rt.block_on(async { tokio::time::timeout_at(join_by, &mut process).await }) {
            Ok(Ok((p, a))) => {
                plugins.processors = p;
                plugins.aggregators = a;
            }
            other => {
                if other.is_err() {
                    process.abort();
                }
                tracing::error!(config = %name, "processing stage did not finish in time; events inside it are lost and its plugins will be rebuilt");
            }
        }
        let join_by = deadline + JOIN_GRACE;
        while !r.flush.is_finished() && Instant::now() < join_by {
            std::thread::sleep(Duration::from_millis(2));
        }
        if r.flush.is_finished() {
            match r.flush.join() {
                Ok(f) => plugins.flushers = f,
                Err(_) => tracing::error!(config = %name, "flush stage panicked"),
            }
        } else {
            tracing::error!(config = %name, "flush stage is blocked in the host; leaving it behind (what it holds will be parked when the host returns)");
        }
        // Rebuild whatever a stage did not hand back.
        let rebuild = |specs: &[PluginSpec], have: usize| have != specs.len();
        let cx = &self.cx;
        let refill = |plugins: &mut Plugins| -> Result<(), String> {
            if rebuild(&self.config.processors, plugins.processors.len())
                || rebuild(&self.config.aggregators, plugins.aggregators.len())
            {
                plugins.processors = build_stage(&self.config.processors, cx, as_processor)?;
                plugins.aggregators = build_stage(&self.config.aggregators, cx, as_aggregator)?;
            }
            if rebuild(&self.config.flushers, plugins.flushers.len()) {
                plugins.flushers = build_stage(&self.config.flushers, cx, as_flusher)?;
            }
            Ok(())
        };
        if let Err(e) = refill(&mut plugins) {
            tracing::error!(config = %name, error = %e, "cannot rebuild plugins");
        }
        self.stopped = Some(plugins);
    }

    /// Number of parked log groups and logs.
    pub fn parked_counts(&self) -> (usize, usize) {
        let q = self.ctl.lock_parked();
        (q.len(), q.iter().map(|p| p.lines).sum())
    }
}

async fn run_input(input: Input, mut io: InputIo, interval: Duration) -> Option<Input> {
    match input {
        Input::Metric(mut m) => {
            let start = tokio::time::Instant::now() + interval;
            let mut tick = tokio::time::interval_at(start, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = io.stopped() => break,
                    _ = tick.tick() => {}
                }
                let mut g = EventGroup::new(io.source().clone());
                match m.collect(&mut g) {
                    Ok(()) if !g.is_empty() => {
                        if io.send(g).await.is_err() {
                            break;
                        }
                    }
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(source = ?io.source(), error = %e, "input collect failed")
                    }
                }
            }
            Some(Input::Metric(m))
        }
        Input::Service(mut s) => {
            if let Err(e) = s.run(&mut io).await {
                tracing::warn!(source = ?io.source(), error = %e, "service input ended with an error");
            }
            Some(Input::Service(s))
        }
    }
}

/// Runs `f` on a plugin; on panic, logs it and replaces the plugin with a fresh instance.
fn guarded<T, R>(
    slot: &mut (PluginSpec, T),
    cx: &PluginContext,
    pick: fn(Plugin) -> Option<T>,
    f: impl FnOnce(&mut T) -> R,
) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(|| f(&mut slot.1))) {
        Ok(r) => Some(r),
        Err(_) => {
            tracing::error!(config = %cx.config_name, plugin = %slot.0.location(), "plugin panicked; restarting it");
            match build(&slot.0, cx, pick) {
                Ok(fresh) => slot.1 = fresh,
                Err(e) => {
                    tracing::error!(config = %cx.config_name, error = %e, "cannot restart plugin")
                }
            }
            None
        }
    }
}

async fn process_loop(
    mut rx: mpsc::UnboundedReceiver<Queued>,
    mut processors: Stage<Box<dyn Processor>>,
    mut aggregators: Stage<Box<dyn Aggregator>>,
    out_tx: mpsc::Sender<EventGroup>,
    interval: Duration,
    cx: PluginContext,
) -> ProcessStages {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut out = Vec::new();
    loop {
        let queued = tokio::select! {
            q = rx.recv() => match q { Some(q) => q, None => break },
            _ = tick.tick() => {
                for a in &mut aggregators {
                    guarded(a, &cx, as_aggregator, |a| a.flush(&mut out));
                }
                send_all(&mut out, &out_tx, &cx).await;
                continue;
            }
        };
        let Queued { mut group, _permit } = queued;
        let events = group.len();
        let mut ok = true;
        for p in &mut processors {
            if guarded(p, &cx, as_processor, |p| p.process(&mut group)).is_none() {
                tracing::error!(config = %cx.config_name, plugin = %p.0.location(), events, "dropped the group a plugin panicked on");
                ok = false;
                break;
            }
        }
        if ok && !group.is_empty() {
            let last = aggregators.len().saturating_sub(1);
            let mut group = Some(group);
            for (i, a) in aggregators.iter_mut().enumerate() {
                let g = if i == last {
                    group.take().unwrap_or_default()
                } else {
                    group.clone().unwrap_or_default()
                };
                guarded(a, &cx, as_aggregator, |a| a.add(g, &mut out));
            }
        }
        drop(_permit);
        send_all(&mut out, &out_tx, &cx).await;
    }
    for a in &mut aggregators {
        guarded(a, &cx, as_aggregator, |a| a.flush(&mut out));
    }
    send_all(&mut out, &out_tx, &cx).await;
    (processors, aggregators)
}

async fn send_all(out: &mut Vec<EventGroup>, tx: &mpsc::Sender<EventGroup>, cx: &PluginContext) {
    for g in out.drain(..) {
        if tx.send(g).await.is_err() {
            tracing::error!(config = %cx.config_name, "flush stage is gone; a log group was lost");
        }
    }
}

fn flush_loop(
    mut rx: mpsc::Receiver<EventGroup>,
    mut flushers: Stage<Box<dyn Flusher>>,
    ctl: Arc<FlushControl>,
    cx: PluginContext,
) -> Stage<Box<dyn Flusher>> {
    let resent = deliver_parked(&ctl);
    if resent > 0 {
        tracing::info!(config = %cx.config_name, groups = resent, "delivered data handed over from the previous run");
    }
    while let Some(group) = rx.blocking_recv() {
        if !ctl.lock_parked().is_empty() {
            // Earlier data is still waiting: keep the order by delivering it first.
            deliver_parked(&ctl);
        }
        for f in &mut flushers {
            let r = guarded(f, &cx, as_flusher, |f| f.flush(&group, &ctl));
            if let Some(Err(e)) = r {
                tracing::error!(config = %cx.config_name, plugin = %f.0.location(), error = %e, "flusher failed");
            }
        }
    }
    flushers
}
