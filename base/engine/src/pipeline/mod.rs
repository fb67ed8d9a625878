//! One config's pipeline: inputs → serial processors → aggregators → flushers → the host.
//!
//! Stages and their queues, all tasks on the engine's runtime (no thread of its own):
//! - inputs push into the config's [`Feed`], bounded in events (`DefaultLogQueueSize`); the
//!   host pushes into the same feed with `ProcessLog*`; what does not fit goes to the
//!   config's [`Backlog`] on disk and is fed back by a re-feed task;
//! - one processing task runs the processors and aggregators and hands finished log groups
//!   to a queue bounded in groups (`DefaultLogGroupQueueSize`);
//! - one flush task runs the flushers (`flusher_sls` serializes into the config's
//!   [`Outbox`]; a flusher that may block runs on the blocking pool) and waits while the
//!   outbox holds that many groups;
//! - one delivery task ([`crate::outbox::deliver`]) sends the outbox to the host.
//!
//! A config name's feed, backlog and outbox (its [`Lane`]) outlive its instances: a reloaded
//! config's successor continues with them, so nothing queued is lost. Stopping is two-phase
//! so many pipelines stop in parallel: [`Pipeline::begin_stop`] tells inputs to stop, puts a
//! stop marker in the feed and switches the flush and delivery tasks to park or drain;
//! [`Pipeline::finish_stop`] waits for the stages with a deadline. A stage that does not
//! finish in time is left to finish on its own (never aborted): what it holds still lands in
//! the lane. Plugin instances come back from their stages and are reused by the next
//! [`Pipeline::start`], so an input's state (a mock's `Index`) carries over a HoldOn/Resume.

mod backlog;
mod feed;
mod slot;

pub use backlog::{Backlog, SpillBudget};
pub use feed::{Feed, FeedIo, FeedState, PushError, Pushed};

use crate::api::{
    Aggregator, FlushError, Flusher, FlusherControl, Input, InputIo, PluginContext, Processor,
    ServiceInput, Stopping,
};
use crate::blocking::Pool;
use crate::config::{PipelineConfig, PluginSpec};
use crate::event::{EventGroup, LogEvent};
use crate::outbox::{FlushControl, FlushMode, Outbox};
use crate::registry;
use crate::routing::Selection;
use crate::services::Services;
use crate::stats::{self, AlarmType, Level, PluginStats};
use bytes::Bytes;
use feed::Queued;
use slot::Slot;
use std::sync::atomic::Ordering;
use std::sync::Arc;
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

/// What a config name keeps across its instances: the input queue (with its backlog on
/// disk) and the outbox of serialized groups for the host.
#[derive(Clone, Debug)]
pub struct Lane {
    /// Input queue.
    pub feed: Arc<Feed>,
    /// Serialized groups not yet accepted by the host.
    pub outbox: Arc<Outbox>,
}

struct Running {
    stop_tx: watch::Sender<bool>,
    inputs: Vec<(PluginSpec, JoinHandle<InputSlot>)>,
    process: JoinHandle<ProcessStages>,
    flush: JoinHandle<Stage<Box<dyn Flusher>>>,
    mode: FlushMode,
    /// Whether a delivery task sends the outbox.
    delivering: bool,
    /// What the flushers run on their own (flush threads of buffered outputs).
    controls: Vec<Arc<dyn FlusherControl>>,
    /// How they were told to stop (a removal is told once the flush stage ended).
    how: Stopping,
}

/// A loaded config and, while running, its stages.
pub struct Pipeline {
    config: PipelineConfig,
    cx: PluginContext,
    lane: Lane,
    ctl: Arc<FlushControl>,
    stats: Arc<PluginStats>,
    stopped: Option<Plugins>,
    running: Option<Running>,
    /// Identifies this instance's stop markers in the shared feed.
    instance: u64,
    /// Inputs not started by a run that only processes what is queued.
    idle_inputs: Vec<InputSlot>,
    pool: Pool,
}

/// Serialized groups that may wait in the outbox (besides the one inside SendPb) before the
/// flush stage waits: enough to keep the host busy, few enough that groups wait decoded in
/// the queue before it (where a stop still sees them as events) rather than as payloads.
const OUTBOX_ROOM: usize = 1;

/// Time after the deadline for stages to hand back their plugins.
const JOIN_GRACE: Duration = Duration::from_millis(200);

fn build_stage<T>(
    specs: &[PluginSpec],
    cx: &PluginContext,
    build: slot::Build<T>,
) -> Result<Stage<T>, String> {
    specs.iter().map(|s| Slot::build(s, cx, build)).collect()
}

fn build_input(
    spec: &PluginSpec,
    cx: &PluginContext,
) -> Result<Option<Input>, registry::BuildError> {
    registry::input(spec, cx).map(Some)
}

fn drop_alarm(
    cx: &PluginContext,
    slot_stats: &PluginStats,
    plugin: &str,
    events: usize,
    why: &str,
) {
    PluginStats::add(&slot_stats.dropped, events as u64);
    cx.stats.alarm(
        AlarmType::DataDropped,
        Level::Error,
        &cx.config_name,
        plugin,
        format!("dropped {events} events: {why}"),
    );
}

/// Waits for `h` until `by`; `None` (the task left running) when it does not finish.
fn join_by<T>(rt: &Handle, h: &mut JoinHandle<T>, by: Instant) -> Option<Result<T, String>> {
    let by = tokio::time::Instant::from_std(by);
    match rt.block_on(async { tokio::time::timeout_at(by, &mut *h).await }) {
        Ok(r) => Some(r.map_err(|e| e.to_string())),
        Err(_) => None,
    }
}

impl Pipeline {
    /// Builds every plugin of `config`, delivering through `lane` (shared with the previous
    /// and next instances of the same config name).
    ///
    /// # Errors
    /// When a plugin cannot be built (configs are checked first, so this is unexpected).
    pub fn new(
        config: PipelineConfig,
        mut cx: PluginContext,
        lane: Lane,
        svc: &Services,
        instance: u64,
    ) -> Result<Self, String> {
        cx.host_queue = Some(crate::api::HostQueueRef(lane.outbox.clone()));
        let stopped = Plugins {
            inputs: build_stage(&config.inputs, &cx, build_input)?,
            processors: build_stage(&config.processors, &cx, registry::processor)?,
            aggregators: build_stage(&config.aggregators, &cx, registry::aggregator)?,
            flushers: build_stage(&config.flushers, &cx, registry::flusher)?,
        };
        lane.feed.resize(config.global.default_log_queue_size);
        Ok(Self {
            stats: cx.stats.plugin(&cx.config_name, "pipeline"),
            ctl: Arc::new(FlushControl::new(lane.outbox.clone())),
            lane,
            config,
            cx,
            stopped: Some(stopped),
            running: None,
            instance,
            pool: svc.pool.clone(),
            idle_inputs: Vec::new(),
        })
    }

    /// The queues this config name keeps across instances.
    pub fn lane(&self) -> &Lane {
        &self.lane
    }

    /// The context its plugins were built with (names, project, logstore).
    pub fn context(&self) -> &PluginContext {
        &self.cx
    }

    /// Whether the config has inputs (LoongCollector's `<name>/1`) or is fed by the host.
    pub fn has_inputs(&self) -> bool {
        !self.config.inputs.is_empty()
    }

    /// Whether the stages are running.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Starts every stage on `rt`.
    pub fn start(&mut self, rt: &Handle) {
        self.start_stages(rt, true);
    }

    /// Starts the stages; without `full`, only those that process what the feed holds (no
    /// inputs, no re-feeding of the backlog, no delivery: the outbox is persisted or handed
    /// elsewhere by the caller).
    fn start_stages(&mut self, rt: &Handle, full: bool) {
        if self.running.is_some() {
            return;
        }
        let plugins = self.stopped.take().unwrap_or_default();
        let g = &self.config.global;
        let (stop_tx, stop_rx) = watch::channel(false);
        let cap = g.default_log_group_queue_size.max(1);
        let (out_tx, out_rx) = mpsc::channel(cap);
        self.ctl.set(FlushMode::Run, None);
        self.lane.outbox.resume();
        let controls: Vec<Arc<dyn FlusherControl>> = plugins
            .flushers
            .iter()
            .filter_map(|s| s.plugin.control())
            .collect();
        for c in &controls {
            c.run();
        }
        let flush = rt.spawn(flush_loop(
            out_rx,
            plugins.flushers,
            self.ctl.clone(),
            self.cx.clone(),
            self.stats.clone(),
            self.pool.clone(),
        ));
        if full {
            rt.spawn(crate::outbox::deliver(
                self.lane.outbox.clone(),
                self.ctl.clone(),
                self.stats.clone(),
            ));
        }
        // 0: no timer; partial groups are flushed whenever the queue runs empty.
        let interval =
            (g.aggregat_interval_ms > 0).then(|| Duration::from_millis(g.aggregat_interval_ms));
        let process = rt.spawn(process_loop(
            self.lane.feed.clone(),
            self.instance,
            plugins.processors,
            plugins.aggregators,
            out_tx,
            interval,
            self.cx.clone(),
            self.ctl.clone(),
        ));
        if let (Some(b), true) = (self.lane.feed.backlog(), full) {
            rt.spawn(backlog::refeed(
                b.clone(),
                self.lane.feed.clone(),
                stop_rx.clone(),
            ));
        }
        let input_interval = Duration::from_millis(g.input_interval_ms.max(1));
        let mut inputs = Vec::new();
        let (run, keep): (Vec<_>, Vec<_>) = if full {
            (plugins.inputs, Vec::new())
        } else {
            (Vec::new(), plugins.inputs)
        };
        for slot in run {
            let source = format!("{}/{}", self.config.name, slot.name);
            let io = FeedIo::new(
                self.lane.feed.clone(),
                stop_rx.clone(),
                source.into(),
                slot.stats.clone(),
            );
            let spec = slot.spec.clone();
            let cx = self.cx.clone();
            inputs.push((spec, rt.spawn(run_input(slot, io, input_interval, cx))));
        }
        self.lane.feed.set_state(FeedState::Open);
        self.idle_inputs = keep;
        self.running = Some(Running {
            stop_tx,
            inputs,
            process,
            flush,
            mode: FlushMode::Run,
            delivering: full,
            controls,
            how: Stopping::Park,
        });
    }

    /// Phase one of a stop: inputs are told to stop, the feed gets this instance's stop
    /// marker (after `state` is set: `Held` keeps taking data for the next run, `Exited`
    /// persists it, `Removed` refuses it), and the flush stage parks (`Park`) or keeps
    /// delivering until `deadline` (`Drain`).
    pub fn begin_stop(&mut self, mode: FlushMode, deadline: Instant, state: FeedState) {
        if let Some(r) = &mut self.running {
            r.mode = mode;
            self.ctl.set(mode, Some(deadline));
            let _ = r.stop_tx.send(true);
            self.lane.feed.set_state(state);
            self.lane.feed.stop_marker(self.instance);
            r.how = stopping(state, deadline);
            // A removed config's buffers keep delivering while the stages end, and are told
            // once the flush stage handed them its last group (finish_stop).
            if r.how != Stopping::Remove {
                for c in &r.controls {
                    c.stop(r.how);
                }
            }
        }
    }

    /// Phase two: waits for every stage (bounded by `deadline` plus a short grace) and keeps
    /// their plugins for the next start; when draining, also until the outbox is delivered
    /// (or the deadline passed). A stage that does not finish is left to finish on its own
    /// (what it holds still reaches the lane) and its plugins are rebuilt next time.
    pub fn finish_stop(&mut self, rt: &Handle, deadline: Instant) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        let by = deadline + JOIN_GRACE;
        let name = self.cx.config_name.clone();
        let mut plugins = Plugins {
            inputs: std::mem::take(&mut self.idle_inputs),
            ..Plugins::default()
        };
        for (spec, mut h) in r.inputs {
            match join_by(rt, &mut h, by) {
                Some(Ok(slot)) => plugins.inputs.push(slot),
                Some(Err(e)) => {
                    tracing::error!(config = %name, plugin = %spec.location(), error = %e, "input task failed; it will be rebuilt");
                }
                None => {
                    tracing::warn!(config = %name, plugin = %spec.location(), "input did not stop in time; it finishes on its own and will be rebuilt");
                }
            }
        }
        drop(r.stop_tx);
        match join_by(rt, &mut r.process, by) {
            Some(Ok((p, a))) => {
                plugins.processors = p;
                plugins.aggregators = a;
            }
            Some(Err(e)) => {
                tracing::error!(config = %name, error = %e, "processing stage failed");
            }
            None => self.cx.stats.alarm(
                AlarmType::PluginError,
                Level::Warning,
                &name,
                "pipeline",
                "the processing stage did not finish in time; it finishes on its own and what it holds is delivered (or kept for re-sending) then",
            ),
        }
        match join_by(rt, &mut r.flush, by) {
            Some(Ok(f)) => plugins.flushers = f,
            Some(Err(e)) => tracing::error!(config = %name, error = %e, "flush stage failed"),
            None => self.cx.stats.alarm(
                AlarmType::PluginError,
                Level::Warning,
                &name,
                "pipeline",
                "the flush stage did not finish in time (a flusher is blocked); it finishes on its own",
            ),
        }
        for c in &r.controls {
            if r.how == Stopping::Remove {
                c.stop(Stopping::Remove);
            }
            c.finish(deadline);
        }
        if r.mode == FlushMode::Drain && r.delivering {
            while !self.lane.outbox.is_idle() && !self.ctl.parking() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        // Whatever is still undelivered stays in the outbox.
        self.ctl.set(FlushMode::Park, None);
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
                    plugins.inputs.push(Slot::build(spec, cx, build_input)?);
                }
            }
        }
        if plugins.processors.len() != c.processors.len()
            || plugins.aggregators.len() != c.aggregators.len()
        {
            plugins.processors = build_stage(&c.processors, cx, registry::processor)?;
            plugins.aggregators = build_stage(&c.aggregators, cx, registry::aggregator)?;
        }
        if plugins.flushers.len() != c.flushers.len() {
            plugins.flushers = build_stage(&c.flushers, cx, registry::flusher)?;
        }
        Ok(())
    }

    /// Processes what the feed holds with this (stopped) pipeline's plugins, without inputs
    /// or delivery, so that queued data of a config that is removed (`state` `Removed`) or
    /// that never ran before the exit (`Exited`) reaches its outbox; bounded by `deadline`.
    pub fn process_remaining(&mut self, rt: &Handle, deadline: Instant, state: FeedState) {
        if self.running.is_some() || self.lane.feed.depth() == 0 {
            self.lane.feed.set_state(state);
            if self.running.is_none() {
                // Held with nothing queued: its buffered flushers still hold data.
                self.stop_held_flushers(state, deadline);
            }
            return;
        }
        self.start_stages(rt, false);
        self.begin_stop(FlushMode::Drain, deadline, state);
        self.finish_stop(rt, deadline);
    }
}

impl Pipeline {
    /// Tells the buffered flushers of a pipeline that is not running that its config is
    /// removed (they deliver in the background) or that the process exits.
    fn stop_held_flushers(&self, state: FeedState, deadline: Instant) {
        let how = stopping(state, deadline);
        if how == Stopping::Park {
            return;
        }
        let flushers = self.stopped.as_ref().map(|p| p.flushers.as_slice());
        for c in flushers
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.plugin.control())
        {
            c.stop(how);
            c.finish(deadline);
        }
    }
}

/// What a feed state means for the buffered flushers.
fn stopping(state: FeedState, deadline: Instant) -> Stopping {
    match state {
        FeedState::Exited => Stopping::Exit { deadline },
        FeedState::Removed => Stopping::Remove,
        FeedState::Open | FeedState::Held => Stopping::Park,
    }
}

/// Waits `d`, or less if the pipeline is stopping.
async fn pause(io: &mut FeedIo, d: Duration) {
    tokio::select! {
        _ = io.wait_stop() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

async fn run_input(
    mut slot: InputSlot,
    mut io: FeedIo,
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
                    _ = io.wait_stop() => break,
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
                        cx.stats.alarm(
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
    mut s: Box<dyn ServiceInput>,
    mut io: FeedIo,
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

/// Hands what is left in the feed before instance `id`'s marker back to the feed (after an
/// exit's deadline this persists it; for a removed config it is dropped with an alarm).
async fn hand_back_rest(
    rx: &mut mpsc::UnboundedReceiver<Box<Queued>>,
    feed: &Feed,
    id: u64,
    cx: &PluginContext,
) {
    let stats = cx.stats.plugin(&cx.config_name, "pipeline");
    while let Some(q) = rx.recv().await {
        match *q {
            Queued::Stop(i) if i == id => return,
            Queued::Stop(_) => {}
            Queued::Data { group, .. } => {
                let n = group.len();
                if let Err(e) = feed.enqueue(group, None) {
                    drop_alarm(
                        cx,
                        &stats,
                        "pipeline",
                        n,
                        &format!("not processed before the stop's deadline and not kept ({e:?})"),
                    );
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn process_loop(
    feed: Arc<Feed>,
    instance: u64,
    mut processors: Stage<Box<dyn Processor>>,
    mut aggregators: Stage<Box<dyn Aggregator>>,
    out_tx: mpsc::Sender<Box<EventGroup>>,
    interval: Option<Duration>,
    cx: PluginContext,
    ctl: Arc<FlushControl>,
) -> ProcessStages {
    // A predecessor of the same config still holding the queue finishes first.
    let mut rx = feed.rx.lock().await;
    // Without an interval the timer never fires (a day is as good as never).
    let every = interval.unwrap_or(Duration::from_secs(86_400));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut out = Vec::new();
    loop {
        if ctl.stopping() && ctl.parking() {
            // Draining past the deadline: what is left is not processed in time.
            hand_back_rest(&mut rx, &feed, instance, &cx).await;
            break;
        }
        let queued = tokio::select! {
            q = rx.recv() => match q { Some(q) => q, None => break },
            _ = tick.tick() => {
                flush_aggregators(&mut aggregators, &mut out, &cx).await;
                send_all(&mut out, &out_tx, &cx).await;
                continue;
            }
        };
        let (mut group, permit) = match *queued {
            Queued::Stop(id) if id == instance => break,
            // A marker of an instance that stopped before it got the queue.
            Queued::Stop(_) => continue,
            Queued::Data { group, _permit } => (group, _permit),
        };
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
        drop(permit);
        if interval.is_none() && rx.is_empty() {
            flush_aggregators(&mut aggregators, &mut out, &cx).await;
        }
        send_all(&mut out, &out_tx, &cx).await;
    }
    drop(rx);
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
            Ok(()) => slot.stats.add_groups_out(&out[before..]),
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
            Ok(()) => slot.stats.add_groups_out(&out[before..]),
            Err(panic) => {
                if let Some(d) = slot.fail(cx, true, &panic) {
                    tokio::time::sleep(d).await;
                    slot.restart(cx);
                }
            }
        }
    }
}

/// Groups travel boxed: the channel allocates its slots 32 at a time, per config.
async fn send_all(
    out: &mut Vec<EventGroup>,
    tx: &mpsc::Sender<Box<EventGroup>>,
    cx: &PluginContext,
) {
    for g in out.drain(..) {
        let n = g.len();
        if tx.send(Box::new(g)).await.is_err() {
            let s = cx.stats.plugin(&cx.config_name, "pipeline");
            drop_alarm(cx, &s, "pipeline", n, "the flush stage is gone");
        }
    }
}

async fn flush_loop(
    mut rx: mpsc::Receiver<Box<EventGroup>>,
    mut flushers: Stage<Box<dyn Flusher>>,
    ctl: Arc<FlushControl>,
    cx: PluginContext,
    pipeline_stats: Arc<PluginStats>,
    pool: Pool,
) -> Stage<Box<dyn Flusher>> {
    let inline = flushers.iter().all(|s| !s.plugin.may_block());
    // A buffered flusher fills the outbox from its own threads (and bounds what it puts
    // there): its back-pressure is its buffer's limit, so the flush stage does not wait for
    // the outbox unless a flusher pushes there directly.
    let direct = flushers.iter().any(|s| s.plugin.control().is_none());
    while let Some(boxed) = rx.recv().await {
        let mut group = *boxed;
        // Back-pressure: while running, the outbox holds at most OUTBOX_ROOM waiting groups.
        if direct {
            ctl.outbox().wait_room(OUTBOX_ROOM, &ctl).await;
        }
        if flushers
            .iter()
            .any(|s| s.spec.matcher.is_some() || !s.plugin.reads_encoded())
        {
            group.decode_contents();
        }
        if inline {
            flush_group(&mut flushers, &mut group, &ctl, &cx);
        } else {
            let (c, x) = (ctl.clone(), cx.clone());
            let ran = pool
                .run(move || {
                    flush_group(&mut flushers, &mut group, &c, &x);
                    flushers
                })
                .await;
            match ran {
                Some(f) => flushers = f,
                None => {
                    tracing::error!(config = %cx.config_name, "flush stage failed");
                    return Vec::new();
                }
            }
        }
        pipeline_stats
            .queue_depth
            .store(ctl.outbox().len() as u64, Ordering::Relaxed);
    }
    flushers
}

/// Hands `group` to every flusher (each with its `Match`).
fn flush_group(
    flushers: &mut Stage<Box<dyn Flusher>>,
    group: &mut EventGroup,
    ctl: &FlushControl,
    cx: &PluginContext,
) {
    for slot in flushers.iter_mut() {
        let Some(m) = slot.spec.matcher.as_deref() else {
            flush_one(slot, group, ctl, cx);
            continue;
        };
        match m.select(group) {
            Selection::Nothing => {}
            Selection::Some(mut filtered) => {
                let id = routed_pack_id(cx, &filtered, &slot.name);
                swap_pack_id(&mut filtered, id);
                flush_one(slot, &filtered, ctl, cx);
            }
            Selection::All => {
                // Renumbered in place (and restored) rather than copying the group.
                let id = routed_pack_id(cx, group, &slot.name);
                let original = swap_pack_id(group, id);
                flush_one(slot, group, ctl, cx);
                swap_pack_id(group, original);
            }
        }
    }
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
    PluginStats::add(&slot.stats.groups_in, 1);
    let mut attempt = 0u32;
    loop {
        match slot.call(|f| f.flush(group, &**ctl.outbox())) {
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
                    cx.stats.alarm(
                        AlarmType::PluginError,
                        Level::Warning,
                        &cx.config_name,
                        &slot.name,
                        format!("retrying a group: {why}"),
                    );
                }
                std::thread::sleep(crate::backoff::delay(attempt));
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
