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
mod slot;

pub use feed::{Feed, InputIo, PushError};

use crate::config::{PipelineConfig, PluginSpec};
use crate::context::PluginContext;
use crate::event::{EventGroup, LogEvent};
use crate::host::{deliver_parked, FlushControl, FlushMode, Payload};
use crate::plugins::{Aggregator, FlushError, Flusher, Input, Plugin, Processor};
use crate::routing::Selection;
use crate::stats::{self, AlarmType, Level, PluginStats};
use bytes::Bytes;
use feed::Queued;
use slot::{backoff, Slot};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

type Stage<T> = Vec<Slot<T>>;
/// What the processing stage hands back when it ends.
type ProcessStages = (Stage<Box<dyn Processor>>, Stage<Box<dyn Aggregator>>);
/// An input's slot; the plugin is `None` while it is being restarted.
type InputSlot = Slot<Option<Input>>;

/// Plugin instances of a stopped pipeline.
#[derive(Default)]
struct Plugins {
    inputs: Vec<InputSlot>,
    processors: Stage<Box<dyn Processor>>,
    aggregators: Stage<Box<dyn Aggregator>>,
    flushers: Stage<Box<dyn Flusher>>,
}

struct Running {
    stop_tx: watch::Sender<bool>,
    feed: Option<Feed>,
    inputs: Vec<(PluginSpec, JoinHandle<InputSlot>)>,
    process: JoinHandle<ProcessStages>,
    flush: std::thread::JoinHandle<Stage<Box<dyn Flusher>>>,
}

/// A loaded config and, while running, its stages.
pub struct Pipeline {
    config: PipelineConfig,
    cx: PluginContext,
    ctl: Arc<FlushControl>,
    stats: Arc<PluginStats>,
    stopped: Option<Plugins>,
    running: Option<Running>,
}

/// Extra time after the drain deadline for stages to hand back their plugins.
const JOIN_GRACE: Duration = Duration::from_secs(2);

fn as_input(p: Plugin) -> Option<Option<Input>> {
    match p {
        Plugin::Input(i) => Some(Some(i)),
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
    specs.iter().map(|s| Slot::build(s, cx, pick)).collect()
}

fn drop_alarm(
    cx: &PluginContext,
    slot_stats: &PluginStats,
    plugin: &str,
    events: usize,
    why: &str,
) {
    PluginStats::add(&slot_stats.dropped, events as u64);
    stats::alarm(
        AlarmType::DataDropped,
        Level::Error,
        &cx.config_name,
        plugin,
        format!("dropped {events} events: {why}"),
    );
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
            inputs: build_stage(&config.inputs, &cx, as_input)?,
            processors: build_stage(&config.processors, &cx, as_processor)?,
            aggregators: build_stage(&config.aggregators, &cx, as_aggregator)?,
            flushers: build_stage(&config.flushers, &cx, as_flusher)?,
        };
        Ok(Self {
            stats: stats::plugin_stats(&cx.config_name, "pipeline"),
            ctl: Arc::new(FlushControl::new(parked)),
            config,
            cx,
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
        let (feed, rx) = Feed::new(g.default_log_queue_size, self.stats.clone());
        let (out_tx, out_rx) = mpsc::channel(g.default_log_group_queue_size.max(1));
        self.ctl.set(FlushMode::Run, None);

        let flush = {
            let (ctl, cx, flushers) = (self.ctl.clone(), self.cx.clone(), plugins.flushers);
            let stats = self.stats.clone();
            std::thread::Builder::new()
                .name(format!("flush-{}", self.config.name))
                .spawn(move || flush_loop(out_rx, flushers, ctl, cx, stats))
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
        for slot in plugins.inputs {
            let source = format!("{}/{}", self.config.name, slot.name);
            let io = InputIo::new(
                feed.clone(),
                stop_rx.clone(),
                source.into(),
                slot.stats.clone(),
            );
            let spec = slot.spec.clone();
            let cx = self.cx.clone();
            inputs.push((spec, rt.spawn(run_input(slot, io, input_interval, cx))));
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
        let name = self.config.name.clone();
        let mut plugins = Plugins::default();
        for (spec, mut h) in r.inputs {
            let got = rt.block_on(async { tokio::time::timeout_at(join_by, &mut h).await });
            match got {
                Ok(Ok(slot)) => plugins.inputs.push(slot),
                Ok(Err(e)) => {
                    tracing::error!(config = %name, plugin = %spec.location(), error = %e, "input task failed; it will be rebuilt");
                }
                Err(_) => {
                    tracing::error!(config = %name, plugin = %spec.location(), "input did not stop in time; aborted, it will be rebuilt");
                    h.abort();
                }
            }
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
                stats::alarm(
                    AlarmType::DataDropped,
                    Level::Critical,
                    &name,
                    "pipeline",
                    "processing stage did not finish in time; events inside it are lost",
                );
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
        if let Err(e) = self.refill(&mut plugins) {
            tracing::error!(config = %name, error = %e, "cannot rebuild plugins");
        }
        self.stopped = Some(plugins);
    }

    /// Rebuilds whatever a stage did not hand back.
    fn refill(&self, plugins: &mut Plugins) -> Result<(), String> {
        let (c, cx) = (&self.config, &self.cx);
        if plugins.inputs.len() != c.inputs.len() {
            let have: Vec<String> = plugins.inputs.iter().map(|s| s.name.clone()).collect();
            for spec in &c.inputs {
                if !have.contains(&spec.instance_name()) {
                    plugins.inputs.push(Slot::build(spec, cx, as_input)?);
                }
            }
        }
        if plugins.processors.len() != c.processors.len()
            || plugins.aggregators.len() != c.aggregators.len()
        {
            plugins.processors = build_stage(&c.processors, cx, as_processor)?;
            plugins.aggregators = build_stage(&c.aggregators, cx, as_aggregator)?;
        }
        if plugins.flushers.len() != c.flushers.len() {
            plugins.flushers = build_stage(&c.flushers, cx, as_flusher)?;
        }
        Ok(())
    }

    /// Number of parked log groups and logs.
    pub fn parked_counts(&self) -> (usize, usize) {
        let q = self.ctl.lock_parked();
        (q.len(), q.iter().map(|p| p.lines).sum())
    }
}

/// Waits `d`, or less if the pipeline is stopping.
async fn pause(io: &mut InputIo, d: Duration) {
    tokio::select! {
        _ = io.stopped() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

async fn run_input(
    mut slot: InputSlot,
    mut io: InputIo,
    interval: Duration,
    cx: PluginContext,
) -> InputSlot {
    if slot.plugin.is_none() && !slot.disabled {
        slot.restart(&cx);
    }
    match slot.plugin.take() {
        Some(Input::Service(s)) => run_service(slot, s, io, cx).await,
        Some(metric) => {
            slot.plugin = Some(metric);
            let start = tokio::time::Instant::now() + interval;
            let mut tick = tokio::time::interval_at(start, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !slot.disabled {
                tokio::select! {
                    _ = io.stopped() => break,
                    _ = tick.tick() => {}
                }
                let mut g = EventGroup::new(io.source().clone());
                let r = slot.call(|p| match p {
                    Some(Input::Metric(m)) => m.collect(&mut g),
                    _ => Ok(()),
                });
                match r {
                    Ok(Ok(())) if !g.is_empty() => {
                        if io.send(g).await.is_err() {
                            break;
                        }
                    }
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        PluginStats::add(&slot.stats.errors, 1);
                        stats::alarm(
                            AlarmType::PluginError,
                            Level::Warning,
                            &cx.config_name,
                            &slot.name,
                            format!("collect failed: {e}"),
                        );
                    }
                    Err(panic) => {
                        if let Some(d) = slot.fail(&cx, true, &panic) {
                            pause(&mut io, d).await;
                            slot.restart(&cx);
                        }
                    }
                }
            }
            slot
        }
        None => slot,
    }
}

async fn run_service(
    mut slot: InputSlot,
    mut s: Box<dyn crate::plugins::ServiceInput>,
    mut io: InputIo,
    cx: PluginContext,
) -> InputSlot {
    loop {
        // The input runs in its own task so that a panic is caught and reported.
        let mut task_io = io.clone();
        let h = tokio::spawn(async move {
            let r = s.run(&mut task_io).await;
            (s, r)
        });
        let why = match h.await {
            Ok((back, Ok(()))) => {
                slot.plugin = Some(Input::Service(back));
                return slot;
            }
            Ok((back, Err(e))) => {
                s = back;
                if io.is_stopped() {
                    slot.plugin = Some(Input::Service(s));
                    return slot;
                }
                match slot.fail(&cx, false, &e) {
                    Some(d) => pause(&mut io, d).await,
                    None => {
                        slot.plugin = Some(Input::Service(s));
                        return slot;
                    }
                }
                PluginStats::add(&slot.stats.restarts, 1);
                continue;
            }
            Err(e) => e.to_string(),
        };
        // Panicked: the instance is gone; restart a fresh one after the back-off.
        match slot.fail(&cx, true, &why) {
            Some(d) => pause(&mut io, d).await,
            None => return slot,
        }
        if io.is_stopped() {
            return slot;
        }
        slot.restart(&cx);
        match slot.plugin.take() {
            Some(Input::Service(fresh)) => s = fresh,
            other => {
                slot.plugin = other;
                return slot;
            }
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
                flush_aggregators(&mut aggregators, &mut out, &cx).await;
                send_all(&mut out, &out_tx, &cx).await;
                continue;
            }
        };
        let Queued { mut group, _permit } = queued;
        let mut alive = true;
        if processors.iter().any(|s| !s.disabled) {
            // Processors change events through their public fields: the host's encoding
            // of an event is only reused when no processor saw it.
            group.events.iter_mut().for_each(LogEvent::touch);
        } else if aggregators
            .iter()
            .any(|s| s.spec.matcher.is_some() || !s.plugin.reads_encoded())
        {
            group.decode_contents();
        }
        // What one stage hands on is what the next receives: each size is computed once.
        let mut size = None;
        for slot in processors.iter_mut().filter(|s| !s.disabled) {
            let n = group.len();
            slot.stats
                .add_in(*size.get_or_insert_with(|| stats::sizes([&group])));
            match slot.call(|p| p.process(&mut group)) {
                Ok(()) => slot.stats.add_out(*size.insert(stats::sizes([&group]))),
                Err(panic) => {
                    drop_alarm(
                        &cx,
                        &slot.stats,
                        &slot.name,
                        n,
                        "the processor panicked on their group",
                    );
                    if let Some(d) = slot.fail(&cx, true, &panic) {
                        tokio::time::sleep(d).await;
                        slot.restart(&cx);
                    }
                    alive = false;
                    break;
                }
            }
        }
        if alive && !group.is_empty() {
            aggregate(&mut aggregators, group, size, &mut out, &cx).await;
        }
        drop(_permit);
        send_all(&mut out, &out_tx, &cx).await;
    }
    flush_aggregators(&mut aggregators, &mut out, &cx).await;
    send_all(&mut out, &out_tx, &cx).await;
    (processors, aggregators)
}

/// `size` is `stats::sizes` of `group`, when already known.
async fn aggregate(
    aggregators: &mut Stage<Box<dyn Aggregator>>,
    group: EventGroup,
    size: Option<(u64, u64)>,
    out: &mut Vec<EventGroup>,
    cx: &PluginContext,
) {
    let live: Vec<usize> = (0..aggregators.len())
        .filter(|i| !aggregators[*i].disabled)
        .collect();
    if live.is_empty() {
        tracing::error!(config = %cx.config_name, "every aggregator is disabled");
        return;
    }
    let mut group = Some(group);
    for (k, &i) in live.iter().enumerate() {
        let slot = &mut aggregators[i];
        // An aggregator with a `Match` gets only the events it selects (see [`crate::routing`]).
        let routed = match (slot.spec.matcher.as_deref(), &group) {
            (Some(m), Some(g)) => m.select(g),
            _ => Selection::All,
        };
        let (g, g_size) = match routed {
            Selection::Nothing => continue,
            Selection::Some(filtered) => (filtered, None),
            Selection::All if k + 1 == live.len() => (group.take().unwrap_or_default(), size),
            Selection::All => (group.clone().unwrap_or_default(), size),
        };
        let n = g.len();
        slot.stats
            .add_in(g_size.unwrap_or_else(|| stats::sizes([&g])));
        let before = out.len();
        match slot.call(|a| a.add(g, out)) {
            Ok(()) => slot.stats.add_out(stats::sizes(&out[before..])),
            Err(panic) => {
                drop_alarm(
                    cx,
                    &slot.stats,
                    &slot.name,
                    n,
                    "the aggregator panicked (and what it buffered is lost)",
                );
                if let Some(d) = slot.fail(cx, true, &panic) {
                    tokio::time::sleep(d).await;
                    slot.restart(cx);
                }
            }
        }
    }
}

async fn flush_aggregators(
    aggregators: &mut Stage<Box<dyn Aggregator>>,
    out: &mut Vec<EventGroup>,
    cx: &PluginContext,
) {
    for slot in aggregators.iter_mut().filter(|s| !s.disabled) {
        let before = out.len();
        match slot.call(|a| a.flush(out)) {
            Ok(()) => slot.stats.add_out(stats::sizes(&out[before..])),
            Err(panic) => {
                if let Some(d) = slot.fail(cx, true, &panic) {
                    tokio::time::sleep(d).await;
                    slot.restart(cx);
                }
            }
        }
    }
}

async fn send_all(out: &mut Vec<EventGroup>, tx: &mpsc::Sender<EventGroup>, cx: &PluginContext) {
    for g in out.drain(..) {
        let n = g.len();
        if tx.send(g).await.is_err() {
            let s = stats::plugin_stats(&cx.config_name, "pipeline");
            drop_alarm(cx, &s, "pipeline", n, "the flush stage is gone");
        }
    }
}

fn flush_loop(
    mut rx: mpsc::Receiver<EventGroup>,
    mut flushers: Stage<Box<dyn Flusher>>,
    ctl: Arc<FlushControl>,
    cx: PluginContext,
    pipeline_stats: Arc<PluginStats>,
) -> Stage<Box<dyn Flusher>> {
    let resent = deliver_parked(&ctl);
    if resent > 0 {
        tracing::info!(config = %cx.config_name, groups = resent, "delivered data handed over from the previous run");
    }
    while let Some(mut group) = rx.blocking_recv() {
        if flushers
            .iter()
            .any(|s| s.spec.matcher.is_some() || !s.plugin.reads_encoded())
        {
            group.decode_contents();
        }
        if !ctl.lock_parked().is_empty() {
            // Earlier data is still waiting: keep the order by delivering it first.
            deliver_parked(&ctl);
        }
        for slot in flushers.iter_mut() {
            let Some(m) = slot.spec.matcher.as_deref() else {
                flush_one(slot, &group, &ctl, &cx);
                continue;
            };
            match m.select(&group) {
                Selection::Nothing => {}
                Selection::Some(mut filtered) => {
                    let id = routed_pack_id(&cx, &filtered, &slot.name);
                    swap_pack_id(&mut filtered, id);
                    flush_one(slot, &filtered, &ctl, &cx);
                }
                Selection::All => {
                    // Renumbered in place (and restored) rather than copying the group.
                    let id = routed_pack_id(&cx, &group, &slot.name);
                    let original = swap_pack_id(&mut group, id);
                    flush_one(slot, &group, &ctl, &cx);
                    swap_pack_id(&mut group, original);
                }
            }
        }
        let parked = ctl.lock_parked().len() as u64;
        pipeline_stats
            .queue_depth
            .store(parked, std::sync::atomic::Ordering::Relaxed);
    }
    flushers
}

/// The pack id a flusher with a `Match` sends `group` under, if the group has one.
///
/// Such a flusher skips whole groups, so it numbers what it sends in a sequence of its own
/// (kept with the config's other sequences, so across reloads too): its receiver sees no gap
/// where groups went elsewhere, and no id of the unfiltered sequence twice.
fn routed_pack_id(cx: &PluginContext, group: &EventGroup, flusher: &str) -> Option<Bytes> {
    match group.tags.last() {
        Some((k, _)) if k.as_ref() == b"__pack_id__" => {
            let mut key = Vec::with_capacity(group.source.len() + flusher.len() + 8);
            key.extend_from_slice(&group.source);
            key.extend_from_slice(b"\0route\0");
            key.extend_from_slice(flusher.as_bytes());
            Some(Bytes::from(cx.pack_ids.next(&Bytes::from(key))))
        }
        _ => None,
    }
}

/// Replaces the value of the trailing `__pack_id__` tag with `id` (if both exist); returns
/// the value it replaced.
fn swap_pack_id(group: &mut EventGroup, id: Option<Bytes>) -> Option<Bytes> {
    let id = id?;
    match group.tags.last_mut() {
        Some((k, v)) if k.as_ref() == b"__pack_id__" => Some(std::mem::replace(v, id)),
        _ => None,
    }
}

/// Hands `group` to one flusher, applying retry and the failure policy.
fn flush_one(
    slot: &mut Slot<Box<dyn Flusher>>,
    group: &EventGroup,
    ctl: &FlushControl,
    cx: &PluginContext,
) {
    let n = group.len();
    if slot.disabled {
        drop_alarm(cx, &slot.stats, &slot.name, n, "the flusher is disabled");
        return;
    }
    let size = stats::sizes([group]);
    slot.stats.add_in(size);
    let mut attempt = 0u32;
    loop {
        match slot.call(|f| f.flush(group, ctl)) {
            Ok(Ok(())) => {
                slot.stats.add_out(size);
                return;
            }
            Ok(Err(FlushError::Retry(why))) => {
                PluginStats::add(&slot.stats.retries, 1);
                if ctl.parking() {
                    drop_alarm(
                        cx,
                        &slot.stats,
                        &slot.name,
                        n,
                        &format!("stopping while the flusher asked to retry ({why})"),
                    );
                    return;
                }
                attempt += 1;
                if attempt == 1 {
                    stats::alarm(
                        AlarmType::PluginError,
                        Level::Warning,
                        &cx.config_name,
                        &slot.name,
                        format!("retrying a group: {why}"),
                    );
                }
                std::thread::sleep(backoff(attempt));
            }
            Ok(Err(FlushError::GiveUp(why))) => {
                PluginStats::add(&slot.stats.errors, 1);
                drop_alarm(
                    cx,
                    &slot.stats,
                    &slot.name,
                    n,
                    &format!("the flusher gave up: {why}"),
                );
                return;
            }
            Err(panic) => match slot.fail(cx, true, &panic) {
                Some(d) => {
                    std::thread::sleep(d);
                    slot.restart(cx);
                }
                None => {
                    drop_alarm(cx, &slot.stats, &slot.name, n, "the flusher was disabled");
                    return;
                }
            },
        }
    }
}
