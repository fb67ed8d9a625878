//! Buffered delivery for outputs (Fluentd's output plugin model, Heka's disk-buffer cursors).
//!
//! An [`Output`] is wrapped in a [`Flusher`] that, per its `Buffer` options:
//! - **`Mode: none`** writes each group at once and never retries (a failure drops the group,
//!   counted and alarmed);
//! - **`Mode: sync`** (the default) appends each group, encoded once by the output's
//!   [`crate::encode::Format`], to the staged chunk of its chunk key (`tag`, `time` floored to
//!   `Timekey`, any field); a chunk is enqueued when full (`ChunkLimitSize`,
//!   `ChunkLimitRecords`) or by the flush mode (`lazy`, `interval`, `immediate`), and
//!   `FlushThreadCount` threads write the queue, each with its own output instance;
//! - **`Mode: async`** lets the output confirm later ([`Output::try_write`] and [`Commit`]);
//!   a chunk not confirmed within `DelayedCommitTimeoutSecs` is written again.
//!
//! A failed write is retried after an exponential back-off (`RetryWaitMs` × base^n, capped
//! at `RetryMaxIntervalMs`, or the destination's `Retry-After`); while a chunk waits for its
//! retry no other chunk is written (the order holds). After `RetryTimeoutSecs` or
//! `RetryMaxTimes` — or at once for an [`WriteError::Unrecoverable`] chunk — the chunk goes to
//! the `Secondary` output; without one it is dropped, counted and alarmed.
//! [`WriteError::Exit`] rebuilds the output instance and retries the chunk.
//!
//! **Buffers** are in memory or on disk (`Type: file`, one chunk file per chunk, see
//! [`disk`]), bounded by `TotalLimitSize` with an `OverflowAction`: `block` (the default:
//! back-pressure to the inputs), `drop_oldest_chunk` or `drop_newest`, every drop counted and
//! alarmed. **Acknowledgements** ([`crate::ack`]) reach the inputs only once their chunk is
//! delivered, written to the secondary, deliberately dropped, or — for a disk buffer — synced
//! to disk (every `SyncIntervalMs`): an input's offset never runs ahead of what can be
//! recovered. A disk buffer's chunks are re-read after a crash; a chunk file cut short is
//! recovered up to its last complete frame (checksums), the loss reported.
//!
//! The buffer of a config's flusher outlives its instances: a reloaded config's successor (same
//! config name and flusher) takes it over with what it holds, a HoldOn/Resume keeps it, and
//! the buffer of a removed config delivers what it holds in the background before it ends.

mod disk;
mod options;

pub use options::{FlushMode, Kind, Mode, Overflow, Settings};

use crate::ack::Ack;
use crate::api::{
    Build, Chunk, ChunkKey, Commit, DetailError, FlushError, Flusher, FlusherControl, HostQueue,
    Output, PluginContext, Stopping, WriteError,
};
use crate::encode::Format;
use crate::event::EventGroup;
use crate::stats::{AlarmType, Level, PluginStats};
use bytes::Bytes;
use options::KeyPart;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Builds an output from its `detail`.
pub type OutputBuild = Build<Box<dyn Output>>;

/// Where the engine's shared objects list every buffer (for [`exit_all`]).
const ALL_BUFFERS: &str = "buffer/all";

/// The process exits: buffers not in a running pipeline (those of removed configs, still
/// delivering in the background) write until `deadline` and then stop, as a stopping
/// pipeline's do. No flush thread outlives this call by more than one write.
pub fn exit_all(shared: &crate::api::Volatile, deadline: Instant) {
    let Some(all) = shared.get::<Mutex<Vec<std::sync::Weak<Shared>>>>(ALL_BUFFERS) else {
        return;
    };
    let live: Vec<Arc<Shared>> = all
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .collect();
    for s in &live {
        if s.lock().phase != Phase::Ended {
            s.stop(Stopping::Exit { deadline });
        }
    }
    for s in &live {
        s.finish(deadline);
    }
}

/// Longest wait of a flush thread before it looks at the clock again.
const TICK: Duration = Duration::from_millis(200);

/// What a memory chunk reserves when it is created (it grows up to `ChunkLimitSize`).
const INITIAL_CHUNK: usize = 256 << 10;

/// Secondary attempts before a chunk is dropped.
const SECONDARY_ATTEMPTS: u32 = 3;

/// An output to build (again): its factory, its options without the framework's keys, and the
/// context it was configured in.
#[derive(Clone)]
struct OutputSpec {
    build: OutputBuild,
    detail: Value,
    cx: PluginContext,
}

impl OutputSpec {
    fn make(&self) -> Result<Box<dyn Output>, DetailError> {
        (self.build)(&self.detail, &self.cx)
    }
}

/// `detail` without the framework's keys.
fn output_detail(detail: &Value) -> Value {
    let mut d = detail.clone();
    if let Value::Object(o) = &mut d {
        for k in options::FRAMEWORK_KEYS {
            o.remove(k);
        }
    }
    d
}

/// Builds the flusher of output `build` from its `detail` (with `Buffer`, `Retry`,
/// `Concurrency`); `secondary` is the output named by `Secondary.Type` (the registry resolves
/// it) with its options.
///
/// # Errors
/// The problems of the output's options, the buffer's and the secondary's, each naming its
/// field.
pub fn build(
    detail: &Value,
    cx: &PluginContext,
    build: OutputBuild,
    secondary: Option<(OutputBuild, Value)>,
) -> Result<Box<dyn Flusher>, DetailError> {
    let primary = OutputSpec {
        build,
        detail: output_detail(detail),
        cx: cx.detached(),
    };
    let mut errors = Vec::new();
    let output = primary.make().map_err(|e| errors.extend(e.into_all())).ok();
    let delayed = output.as_ref().is_some_and(|o| o.delayed_commit());
    let in_flight = output.as_ref().map_or(16, |o| o.max_in_flight());
    let default_dir = match (&cx.store, &cx.host_queue) {
        (Some(s), _) => Some(
            s.path()
                .with_extension("buffers")
                .join(safe_name(&cx.config_name))
                .join(safe_name(&cx.plugin)),
        ),
        // Checking a config (no engine yet): the engine's data directory will do.
        (None, None) => Some(PathBuf::from("checkpoint.buffers")),
        (None, Some(_)) => None,
    };
    let settings = Settings::parse(detail, delayed, in_flight, default_dir)
        .map_err(|e| errors.extend(e.into_all()))
        .ok();
    let secondary = secondary.and_then(|(b, d)| {
        let spec = OutputSpec {
            build: b,
            detail: d,
            cx: cx.detached(),
        };
        match spec.make() {
            Ok(_) => Some(spec),
            Err(e) => {
                errors.extend(e.into_all().into_iter().map(|mut e| {
                    e.field = format!("Secondary.{}", e.field)
                        .trim_end_matches('.')
                        .into();
                    e
                }));
                None
            }
        }
    });
    let (Some(output), Some(settings)) = (output, settings) else {
        let mut all = errors.into_iter();
        let mut first = all
            .next()
            .unwrap_or_else(|| DetailError::new("", "invalid options"));
        first.more = all.collect();
        return Err(first);
    };
    if let Some(first) = errors.into_iter().next() {
        return Err(first);
    }
    let mut settings = settings;
    settings.require_keys(&output.chunk_keys());
    if detail.pointer("/Buffer/ChunkLimitSize").is_none() {
        if let Some(max) = output.max_chunk_bytes() {
            settings.chunk_bytes = settings.chunk_bytes.min(max.max(1024));
        }
    }
    let format = output.format();
    let name = cx.plugin.to_string();
    if settings.mode == Mode::None {
        return Ok(Box::new(Direct { output, format }));
    }
    let fingerprint = serde_json::to_string(&detail.get("Buffer")).unwrap_or_default();
    let key = format!("buffer\0{}\0{name}", cx.config_name);
    let holder: Arc<Mutex<Option<Arc<Shared>>>> = cx.shared.object(&key, || Mutex::new(None));
    let shared = {
        let mut h = holder.lock().unwrap_or_else(|e| e.into_inner());
        match h.as_ref() {
            Some(s) if s.fingerprint == fingerprint => {
                // A successor (or a restarted instance): take the buffer over with the new
                // output options.
                s.replace_outputs(primary, secondary);
                s.clone()
            }
            other => {
                if let Some(old) = other {
                    // Different buffer options: the old buffer delivers what it holds with its
                    // own outputs and ends.
                    old.stop(Stopping::Remove);
                }
                let s = Shared::new(
                    settings,
                    fingerprint,
                    cx,
                    &name,
                    primary,
                    secondary,
                    Arc::downgrade(&holder),
                );
                let all: Arc<Mutex<Vec<std::sync::Weak<Shared>>>> =
                    cx.shared.object(ALL_BUFFERS, || Mutex::new(Vec::new()));
                let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
                all.retain(|w| w.strong_count() > 0);
                all.push(Arc::downgrade(&s));
                *h = Some(s.clone());
                s
            }
        }
    };
    Ok(Box::new(Buffered {
        shared,
        format,
        scratch: Vec::new(),
    }))
}

fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `Mode: none`: each group written at once, never retried.
struct Direct {
    output: Box<dyn Output>,
    format: Format,
}

impl Flusher for Direct {
    fn flush(&mut self, group: &EventGroup, _host: &dyn HostQueue) -> Result<(), FlushError> {
        // The chunk owns its body (an output may keep it), so it is encoded afresh.
        let mut body = Vec::new();
        let records = self.format.encode(group, &mut body);
        if records == 0 {
            return Ok(());
        }
        let chunk = Chunk {
            id: 0,
            key: ChunkKey::default(),
            ends: vec![body.len()],
            body: Bytes::from(body),
            records,
            created: i64::from(crate::event::now().0),
            retries: 0,
        };
        self.output
            .write(&chunk)
            .map_err(|e| FlushError::GiveUp(e.to_string()))
    }

    fn reads_encoded(&self) -> bool {
        self.format == Format::Protobuf
    }
}

/// A buffered output's flusher: appends groups to the shared buffer.
struct Buffered {
    shared: Arc<Shared>,
    format: Format,
    scratch: Vec<u8>,
}

impl Flusher for Buffered {
    fn flush(&mut self, group: &EventGroup, _host: &dyn HostQueue) -> Result<(), FlushError> {
        if group.is_empty() {
            return Ok(());
        }
        let s = &self.shared;
        for (key, part) in s.split(group) {
            let part = part.as_ref().unwrap_or(group);
            self.scratch.clear();
            let records = self.format.encode(part, &mut self.scratch);
            if records == 0 {
                continue;
            }
            s.append(key, &self.scratch, records, &part.acks)?;
        }
        Ok(())
    }

    fn reads_encoded(&self) -> bool {
        self.format == Format::Protobuf
            && !self
                .shared
                .settings
                .keys
                .iter()
                .any(|k| matches!(k, KeyPart::Field(_)))
    }

    fn control(&self) -> Option<Arc<dyn FlusherControl>> {
        Some(self.shared.clone())
    }
}

/// A chunk being appended to.
struct Staged {
    id: u64,
    key: ChunkKey,
    /// The records (memory buffer only: a file buffer's are in the file).
    body: Vec<u8>,
    ends: Vec<usize>,
    records: usize,
    bytes: usize,
    created: i64,
    born: Instant,
    acks: Vec<Ack>,
    file: Option<disk::ChunkFile>,
    /// Acks of frames not yet synced to disk.
    unsynced: Vec<Ack>,
}

/// A chunk waiting to be written (or being written).
struct Queued {
    chunk: Chunk,
    bytes: usize,
    acks: Vec<Ack>,
    path: Option<PathBuf>,
    file: Option<Arc<File>>,
    unsynced: Vec<Ack>,
    first_failure: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Built, never started (nothing on disk read yet).
    New,
    Running,
    Parked,
    /// Delivering until the deadline (exit) or until empty (removal).
    Draining(Option<Instant>),
    /// Ended (removed and delivered, or exited).
    Ended,
}

struct InFlight {
    q: Queued,
    deadline: Instant,
    token: u64,
}

struct State {
    phase: Phase,
    threads: usize,
    staged: Vec<Staged>,
    queue: VecDeque<Queued>,
    /// Chunks a thread is writing (sync mode).
    writing: usize,
    inflight: HashMap<u64, InFlight>,
    bytes: usize,
    next_id: u64,
    next_token: u64,
    /// No chunk is written before this (a retry is waiting).
    retry_at: Option<Instant>,
    last_sync: Instant,
    generation: u64,
    primary: OutputSpec,
    secondary: Option<OutputSpec>,
    dir_ready: bool,
}

/// The buffer of one flusher of one config (shared by its successive instances).
struct Shared {
    settings: Settings,
    fingerprint: String,
    cx: PluginContext,
    name: String,
    stats: Arc<PluginStats>,
    config_tag: Bytes,
    state: Mutex<State>,
    work: Condvar,
    room: Condvar,
    /// Where the engine keeps this buffer for the config's successors (weak: the holder
    /// holds the buffer, not the other way round, or a buffer built only to check a config
    /// would keep itself alive).
    holder: std::sync::Weak<Mutex<Option<Arc<Shared>>>>,
    me: std::sync::Weak<Shared>,
}

/// What a flush thread does next.
enum Step {
    Sync(Vec<(Arc<File>, Vec<Ack>)>),
    Write(Box<Queued>),
    Wait(Duration),
    Exit,
}

impl Shared {
    fn new(
        settings: Settings,
        fingerprint: String,
        cx: &PluginContext,
        name: &str,
        primary: OutputSpec,
        secondary: Option<OutputSpec>,
        holder: std::sync::Weak<Mutex<Option<Arc<Shared>>>>,
    ) -> Arc<Self> {
        let stats = cx.stats.plugin(&cx.config_name, &format!("{name}/buffer"));
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            settings,
            fingerprint,
            cx: cx.detached(),
            name: name.to_string(),
            stats,
            config_tag: Bytes::from(cx.config_name.to_string()),
            state: Mutex::new(State {
                phase: Phase::New,
                threads: 0,
                staged: Vec::new(),
                queue: VecDeque::new(),
                writing: 0,
                inflight: HashMap::new(),
                bytes: 0,
                next_id: 1,
                next_token: 1,
                retry_at: None,
                last_sync: Instant::now(),
                generation: 0,
                primary,
                secondary,
                dir_ready: false,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            holder,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn alarm(&self, kind: AlarmType, level: Level, msg: String) {
        self.cx
            .stats
            .alarm(kind, level, &self.cx.config_name, &self.name, msg);
    }

    fn replace_outputs(&self, primary: OutputSpec, secondary: Option<OutputSpec>) {
        let mut st = self.lock();
        st.primary = primary;
        st.secondary = secondary;
        st.generation += 1;
    }

    /// The chunk key of each part of `group` (`None`: the whole group).
    fn split(&self, group: &EventGroup) -> Vec<(ChunkKey, Option<EventGroup>)> {
        let keys = &self.settings.keys;
        let tag = || {
            self.settings
                .tag_keys
                .iter()
                .find_map(|k| group.tag(k))
                .cloned()
                .unwrap_or_else(|| self.config_tag.clone())
        };
        if keys.iter().all(|k| *k == KeyPart::Tag) {
            let key = ChunkKey {
                tag: (!keys.is_empty()).then(tag),
                ..ChunkKey::default()
            };
            return vec![(key, None)];
        }
        let mut parts: Vec<(ChunkKey, EventGroup)> = Vec::new();
        let group_tag = keys.contains(&KeyPart::Tag).then(tag);
        for e in &group.events {
            let mut key = ChunkKey {
                tag: group_tag.clone(),
                ..ChunkKey::default()
            };
            for k in keys {
                match k {
                    KeyPart::Tag => {}
                    KeyPart::Time => {
                        let t = self.settings.timekey.max(1);
                        key.time = Some((i64::from(e.time)).div_euclid(t) * t);
                    }
                    KeyPart::Field(name) => {
                        let v = match name.strip_prefix("__tag__:") {
                            Some(t) => group.tag(t.as_bytes()),
                            None => e.get(name.as_bytes()),
                        };
                        key.fields
                            .push((name.clone(), v.cloned().unwrap_or_default()));
                    }
                }
            }
            match parts.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.events.push(e.clone()),
                None => {
                    let mut g = EventGroup {
                        events: Vec::new(),
                        tags: group.tags.clone(),
                        topic: group.topic.clone(),
                        source: group.source.clone(),
                        acks: group.acks.clone(),
                    };
                    g.events.push(e.clone());
                    parts.push((key, g));
                }
            }
        }
        if parts.len() == 1 {
            let (k, _) = parts.pop().expect("one part");
            return vec![(k, None)];
        }
        parts.into_iter().map(|(k, g)| (k, Some(g))).collect()
    }

    /// Whether a producer must not wait for room (the pipeline is stopping).
    fn must_not_wait(phase: Phase) -> bool {
        !matches!(phase, Phase::Running | Phase::New)
    }

    /// Appends one encoded group to the staged chunk of `key`.
    fn append(
        &self,
        key: ChunkKey,
        data: &[u8],
        records: usize,
        acks: &[Ack],
    ) -> Result<(), FlushError> {
        let set = &self.settings;
        let file = set.kind == Kind::File;
        let size = data.len() + if file { 12 } else { 0 };
        let mut st = self.lock();
        if st.phase == Phase::Ended || (st.phase == Phase::Draining(None) && st.threads == 0) {
            // A group after the buffer ended (a stage that finished late): deliver it too.
            st.phase = Phase::Draining(None);
            if let Some(me) = self.me.upgrade() {
                me.spawn_threads(&mut st);
            }
        }
        // Room: the overflow policy.
        while st.bytes + size > set.total_bytes && st.bytes > 0 {
            if Self::must_not_wait(st.phase) {
                break;
            }
            match set.overflow {
                Overflow::Block => {
                    st = self
                        .room
                        .wait_timeout(st, TICK)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                Overflow::DropNewest => {
                    drop(st);
                    self.dropped(records, "the buffer is full (OverflowAction drop_newest)");
                    return Ok(());
                }
                Overflow::DropOldestChunk => {
                    let Some(q) = st.queue.pop_front().or_else(|| {
                        // Nothing queued: seal the oldest staged chunk and drop it.
                        let i = (0..st.staged.len()).min_by_key(|&i| st.staged[i].id)?;
                        let s = st.staged.swap_remove(i);
                        Some(self.seal(s))
                    }) else {
                        break;
                    };
                    st.bytes -= q.bytes;
                    drop(st);
                    self.discard(q, "the buffer is full (OverflowAction drop_oldest_chunk)");
                    st = self.lock();
                }
            }
        }
        if file && !st.dir_ready {
            self.prepare_dir(&mut st)
                .map_err(|e| FlushError::Retry(format!("disk buffer: {e}")))?;
        }
        let i = match st.staged.iter().position(|s| s.key == key) {
            Some(i)
                if (st.staged[i].bytes + size > set.chunk_bytes)
                    || (set.chunk_records > 0
                        && st.staged[i].records + records > set.chunk_records) =>
            {
                let s = st.staged.swap_remove(i);
                let q = self.seal(s);
                st.queue.push_back(q);
                self.work.notify_one();
                None
            }
            found => found,
        };
        let i = match i {
            Some(i) => i,
            None => {
                let id = st.next_id;
                st.next_id += 1;
                let created = i64::from(crate::event::now().0);
                let f = match (file, &set.path) {
                    (true, Some(dir)) => Some(
                        disk::ChunkFile::create(dir, id, &key, created).map_err(|e| {
                            FlushError::Retry(format!(
                                "cannot create a chunk file in {}: {e}",
                                dir.display()
                            ))
                        })?,
                    ),
                    _ => None,
                };
                st.staged.push(Staged {
                    id,
                    key,
                    body: if file {
                        Vec::new()
                    } else {
                        Vec::with_capacity(set.chunk_bytes.min(INITIAL_CHUNK))
                    },
                    ends: Vec::new(),
                    records: 0,
                    bytes: 0,
                    created,
                    born: Instant::now(),
                    acks: Vec::new(),
                    file: f,
                    unsynced: Vec::new(),
                });
                st.staged.len() - 1
            }
        };
        let s = &mut st.staged[i];
        if let Some(f) = &mut s.file {
            if let Err(e) = f.append(data, records) {
                // What reached the file stays readable up to its last complete frame; later
                // groups go to a new chunk.
                let s = st.staged.swap_remove(i);
                let q = self.seal(s);
                st.queue.push_back(q);
                self.work.notify_one();
                return Err(FlushError::Retry(format!("cannot write a chunk file: {e}")));
            }
            s.unsynced.extend(acks.iter().cloned());
        } else {
            s.body.extend_from_slice(data);
            s.acks.extend(acks.iter().cloned());
        }
        s.bytes += size;
        s.records += records;
        s.ends.push(if file { 0 } else { s.body.len() });
        st.bytes += size;
        PluginStats::add(&self.stats.events_in, records as u64);
        PluginStats::add(&self.stats.bytes_in, data.len() as u64);
        let full = {
            let s = &st.staged[i];
            s.bytes >= set.chunk_bytes || (set.chunk_records > 0 && s.records >= set.chunk_records)
        };
        if full || set.flush == FlushMode::Immediate {
            let s = st.staged.swap_remove(i);
            let q = self.seal(s);
            st.queue.push_back(q);
            self.work.notify_one();
        }
        self.set_depth(&st);
        Ok(())
    }

    /// Reads the chunks a previous run left on disk (once, before the first write).
    fn prepare_dir(&self, st: &mut State) -> std::io::Result<()> {
        let Some(dir) = &self.settings.path else {
            return Ok(());
        };
        std::fs::create_dir_all(dir)?;
        let mut recovered = 0usize;
        for path in disk::list(dir)? {
            match disk::recover(&path) {
                Ok(Some(r)) => {
                    if r.lost_bytes > 0 {
                        let lost = match r.lost_records {
                            Some(n) => {
                                PluginStats::add(&self.stats.dropped, u64::from(n));
                                format!("{n} records")
                            }
                            None => "an unknown number of records".into(),
                        };
                        self.alarm(
                            AlarmType::DataDropped,
                            Level::Error,
                            format!(
                                "chunk file {} was cut short (a crash?): {} records recovered, {lost} lost in the last {} bytes",
                                path.display(),
                                r.records,
                                r.lost_bytes
                            ),
                        );
                    }
                    st.next_id = st.next_id.max(r.id + 1);
                    if r.records == 0 {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    let bytes = r.body.len() + 12 * r.ends.len();
                    recovered += r.records;
                    st.bytes += bytes;
                    st.queue.push_back(Queued {
                        chunk: Chunk {
                            id: r.id,
                            key: r.key,
                            body: Bytes::new(),
                            ends: Vec::new(),
                            records: r.records,
                            created: r.created,
                            retries: 0,
                        },
                        bytes,
                        acks: Vec::new(),
                        path: Some(path),
                        file: None,
                        unsynced: Vec::new(),
                        first_failure: None,
                    });
                }
                Ok(None) => {
                    self.alarm(
                        AlarmType::DataDropped,
                        Level::Error,
                        format!(
                            "chunk file {} has no readable header; it is moved aside",
                            path.display()
                        ),
                    );
                    let _ = std::fs::rename(&path, path.with_extension("damaged"));
                }
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("cannot read {}: {e}", path.display()),
                    ))
                }
            }
        }
        if recovered > 0 {
            tracing::info!(config = %self.cx.config_name, plugin = %self.name, records = recovered, "disk buffer: re-sending chunks left by the previous run");
        }
        st.dir_ready = true;
        Ok(())
    }

    /// A staged chunk, closed for appends and ready to write.
    fn seal(&self, s: Staged) -> Queued {
        let (path, file) = match s.file {
            Some(f) => (Some(f.path), Some(f.file)),
            None => (None, None),
        };
        Queued {
            chunk: Chunk {
                id: s.id,
                key: s.key,
                body: Bytes::from(s.body),
                ends: s.ends,
                records: s.records,
                created: s.created,
                retries: 0,
            },
            bytes: s.bytes,
            acks: s.acks,
            path,
            file,
            unsynced: s.unsynced,
            first_failure: None,
        }
    }

    fn dropped(&self, records: usize, why: &str) {
        PluginStats::add(&self.stats.dropped, records as u64);
        self.alarm(
            AlarmType::DataDropped,
            Level::Error,
            format!("{records} records dropped: {why}"),
        );
    }

    /// Drops a chunk taken out of the buffer deliberately (counted and alarmed; its acks
    /// are done) and frees its room.
    fn drop_chunk(&self, q: Queued, why: &str) {
        let bytes = q.bytes;
        self.discard(q, why);
        let mut st = self.lock();
        st.bytes -= bytes;
        self.set_depth(&st);
        drop(st);
        self.room.notify_all();
    }

    fn set_depth(&self, st: &State) {
        self.stats.queue_depth.store(
            (st.queue.len() + st.inflight.len() + st.writing) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Drops a chunk deliberately (counted and alarmed): its acks are done.
    fn discard(&self, q: Queued, why: &str) {
        self.dropped(q.chunk.records, why);
        self.forget_file(&q);
    }

    fn forget_file(&self, q: &Queued) {
        if let Some(p) = &q.path {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Moves staged chunks that are due to the queue.
    fn seal_due(&self, st: &mut State, all: bool) {
        let set = &self.settings;
        let now = Instant::now();
        let wall = i64::from(crate::event::now().0);
        let mut i = 0;
        while i < st.staged.len() {
            let s = &st.staged[i];
            let due = all
                || match set.flush {
                    FlushMode::Interval | FlushMode::Default => {
                        now.duration_since(s.born) >= set.interval
                    }
                    FlushMode::Lazy => s
                        .key
                        .time
                        .is_some_and(|t| wall >= t + set.timekey + set.timekey_wait),
                    FlushMode::Immediate => true,
                };
            if due {
                let s = st.staged.swap_remove(i);
                let q = self.seal(s);
                st.queue.push_back(q);
            } else {
                i += 1;
            }
        }
    }

    /// When the next staged chunk falls due.
    fn next_due(&self, st: &State) -> Duration {
        let set = &self.settings;
        let wall = i64::from(crate::event::now().0);
        st.staged
            .iter()
            .map(|s| match set.flush {
                FlushMode::Lazy => s.key.time.map_or(TICK, |t| {
                    Duration::from_secs((t + set.timekey + set.timekey_wait - wall).max(0) as u64)
                }),
                _ => set.interval.saturating_sub(s.born.elapsed()),
            })
            .min()
            .unwrap_or(TICK)
            .min(TICK)
    }

    /// The acks waiting for a sync, and the files to sync, when a sync is due.
    fn take_unsynced(&self, st: &mut State, force: bool) -> Vec<(Arc<File>, Vec<Ack>)> {
        if self.settings.kind != Kind::File
            || (!force && st.last_sync.elapsed() < self.settings.sync_interval)
        {
            return Vec::new();
        }
        st.last_sync = Instant::now();
        let mut out = Vec::new();
        for s in &mut st.staged {
            if let (Some(f), false) = (&s.file, s.unsynced.is_empty()) {
                out.push((f.file.clone(), std::mem::take(&mut s.unsynced)));
            }
        }
        for q in st.queue.iter_mut() {
            if let (Some(f), false) = (&q.file, q.unsynced.is_empty()) {
                out.push((f.clone(), std::mem::take(&mut q.unsynced)));
            }
        }
        out
    }

    /// Syncs files and then lets their acks go (the data is durable).
    fn sync(&self, files: Vec<(Arc<File>, Vec<Ack>)>) {
        let mut dir_synced = false;
        for (f, acks) in files {
            match f.sync_data() {
                Ok(()) => {
                    if !dir_synced {
                        if let Some(d) = &self.settings.path {
                            disk::sync_dir(d);
                        }
                        dir_synced = true;
                    }
                    drop(acks)
                }
                Err(e) => {
                    // Not durable: the acks wait for delivery instead.
                    self.alarm(
                        AlarmType::PluginError,
                        Level::Error,
                        format!("cannot sync a chunk file: {e}; its inputs wait for delivery"),
                    );
                    let mut st = self.lock();
                    if let Some(q) = st.queue.front_mut() {
                        q.acks.extend(acks);
                    } else if let Some(s) = st.staged.first_mut() {
                        s.acks.extend(acks);
                    }
                }
            }
        }
    }

    fn next_step(&self, st: &mut State) -> Step {
        let now = Instant::now();
        if st.phase == Phase::Parked || st.phase == Phase::Ended {
            return Step::Exit;
        }
        let draining = matches!(st.phase, Phase::Draining(_));
        if let Phase::Draining(Some(d)) = st.phase {
            if now >= d {
                return Step::Exit;
            }
        }
        self.seal_due(
            st,
            draining && (self.settings.flush_at_shutdown || st.phase == Phase::Draining(None)),
        );
        let files = self.take_unsynced(st, draining);
        if !files.is_empty() {
            return Step::Sync(files);
        }
        // Confirmations that did not come in time: write again.
        let expired: Vec<u64> = st
            .inflight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(f) = st.inflight.remove(&id) {
                let mut q = f.q;
                q.chunk.retries += 1;
                PluginStats::add(&self.stats.retries, 1);
                self.alarm(
                    AlarmType::SendFailed,
                    Level::Warning,
                    format!(
                        "chunk {} was not confirmed within {:?}; it is written again",
                        q.chunk.id, self.settings.commit_timeout
                    ),
                );
                st.queue.push_front(q);
            }
        }
        if let Some(at) = st.retry_at {
            if at > now {
                return Step::Wait((at - now).min(TICK));
            }
            st.retry_at = None;
        }
        let room =
            self.settings.mode != Mode::Async || st.inflight.len() < self.settings.max_in_flight;
        if room {
            if let Some(q) = st.queue.pop_front() {
                st.writing += 1;
                return Step::Write(Box::new(q));
            }
        }
        if draining
            && st.queue.is_empty()
            && st.inflight.is_empty()
            && st.writing == 0
            && (st.staged.is_empty()
                || !self.settings.flush_at_shutdown && st.phase != Phase::Draining(None))
        {
            return Step::Exit;
        }
        let mut wait = self.next_due(st);
        if let Some(f) = st.inflight.values().map(|f| f.deadline).min() {
            wait = wait.min(f.saturating_duration_since(now));
        }
        if self.settings.kind == Kind::File {
            wait = wait.min(self.settings.sync_interval);
        }
        Step::Wait(wait.max(Duration::from_millis(1)))
    }

    /// A flush thread.
    fn thread(self: Arc<Self>) {
        let mut output: Option<(u64, Box<dyn Output>)> = None;
        let mut secondary: Option<(u64, Box<dyn Output>)> = None;
        let mut failures = 0u32;
        loop {
            let mut st = self.lock();
            let step = self.next_step(&mut st);
            match step {
                Step::Exit => {
                    st.threads -= 1;
                    let last = st.threads == 0;
                    let removed = last && st.phase == Phase::Draining(None);
                    drop(st);
                    self.work.notify_all();
                    if removed {
                        self.end_removed();
                    }
                    return;
                }
                Step::Wait(d) => {
                    let _ = self.work.wait_timeout(st, d);
                }
                Step::Sync(files) => {
                    drop(st);
                    self.sync(files);
                }
                Step::Write(q) => {
                    let generation = st.generation;
                    let spec = st.primary.clone();
                    let sec = st.secondary.clone();
                    drop(st);
                    let mut q = *q;
                    if output.as_ref().is_none_or(|(g, _)| *g != generation) {
                        match spec.make() {
                            Ok(o) => output = Some((generation, o)),
                            Err(e) => {
                                failures += 1;
                                self.alarm(
                                    AlarmType::PluginError,
                                    Level::Error,
                                    format!("cannot build the output: {}", e.message),
                                );
                                self.requeue(q, crate::backoff::delay(failures));
                                continue;
                            }
                        }
                    }
                    if let Err(e) = self.load(&mut q) {
                        self.finish_write();
                        self.drop_chunk(q, &format!("its chunk file cannot be read: {e}"));
                        continue;
                    }
                    // Acks still waiting for a sync go now: once out of the queue (being
                    // written, or awaiting a confirmation) the periodic sync does not see it.
                    if let (Some(f), false) = (&q.file, q.unsynced.is_empty()) {
                        let acks = std::mem::take(&mut q.unsynced);
                        self.sync(vec![(f.clone(), acks)]);
                    }
                    let out = &mut output.as_mut().expect("built above").1;
                    if self.settings.mode == Mode::Async {
                        self.start_async(q, out.as_mut());
                        continue;
                    }
                    let r = catch(|| out.write(&q.chunk));
                    match r {
                        Ok(()) => {
                            failures = 0;
                            self.finish_write();
                            self.delivered(q);
                        }
                        Err(e) => {
                            if matches!(e, WriteError::Exit(_)) {
                                output = None;
                            }
                            self.finish_write();
                            let sec = sec.map(|s| (generation, s));
                            self.failed(q, e, sec, &mut secondary);
                        }
                    }
                }
            }
        }
    }

    fn finish_write(&self) {
        let mut st = self.lock();
        st.writing -= 1;
        drop(st);
        self.work.notify_all();
    }

    /// Reads a recovered chunk's records from its file.
    fn load(&self, q: &mut Queued) -> std::io::Result<()> {
        if self.settings.kind != Kind::File || !q.chunk.body.is_empty() {
            return Ok(());
        }
        let Some(path) = &q.path else {
            return Ok(());
        };
        match disk::recover(path)? {
            Some(r) => {
                q.chunk.body = Bytes::from(r.body);
                q.chunk.ends = r.ends;
                q.chunk.records = r.records;
                Ok(())
            }
            None => Err(std::io::Error::other("its header is unreadable")),
        }
    }

    /// A chunk reached its destination (or its secondary).
    fn delivered(&self, q: Queued) {
        PluginStats::add(&self.stats.events_out, q.chunk.records as u64);
        PluginStats::add(&self.stats.bytes_out, q.chunk.body.len() as u64);
        self.forget_file(&q);
        {
            let mut st = self.lock();
            st.bytes -= q.bytes;
            self.set_depth(&st);
        }
        // The acks go last: the chunk is gone from the disk before an input may commit past it.
        drop(q);
        self.room.notify_all();
        self.work.notify_all();
    }

    /// Puts a chunk back in front, to be written after `wait`.
    fn requeue(&self, q: Queued, wait: Duration) {
        let mut st = self.lock();
        st.writing = st.writing.saturating_sub(1);
        Self::retry_after(&mut st, wait);
        st.queue.push_front(q);
        drop(st);
        self.work.notify_all();
    }

    /// Nothing is written for `wait` (or longer, when a wait already runs: a destination's
    /// `Retry-After` is not cut short by another thread's shorter back-off).
    fn retry_after(st: &mut State, wait: Duration) {
        let until = Instant::now() + wait;
        st.retry_at = Some(st.retry_at.map_or(until, |t| t.max(until)));
    }

    fn give_up(&self, q: &Queued) -> bool {
        let s = &self.settings;
        if s.retry_forever {
            return false;
        }
        s.retry_max_times.is_some_and(|m| q.chunk.retries > m)
            || q.first_failure
                .is_some_and(|t| t.elapsed() >= s.retry_timeout)
    }

    /// A write failed: retry, or hand the chunk to the secondary.
    fn failed(
        &self,
        mut q: Queued,
        e: WriteError,
        sec: Option<(u64, OutputSpec)>,
        secondary: &mut Option<(u64, Box<dyn Output>)>,
    ) {
        q.chunk.retries += 1;
        q.first_failure.get_or_insert_with(Instant::now);
        let give_up = matches!(e, WriteError::Unrecoverable(_)) || self.give_up(&q);
        if !give_up {
            PluginStats::add(&self.stats.retries, 1);
            if q.chunk.retries == 1 {
                self.alarm(
                    AlarmType::SendFailed,
                    Level::Warning,
                    format!("writing chunk {} failed, retrying: {e}", q.chunk.id),
                );
            }
            let wait = match &e {
                WriteError::Retry { after: Some(a), .. } => *a,
                _ => self
                    .settings
                    .backoff(q.chunk.retries, q.chunk.id ^ u64::from(q.chunk.retries)),
            };
            let mut st = self.lock();
            Self::retry_after(&mut st, wait);
            st.queue.push_front(q);
            drop(st);
            self.work.notify_all();
            return;
        }
        PluginStats::add(&self.stats.errors, 1);
        let why = match &e {
            WriteError::Unrecoverable(w) => format!("the destination refused it: {w}"),
            other => format!("{} failed writes, the last: {other}", q.chunk.retries),
        };
        let Some((generation, spec)) = sec else {
            self.drop_chunk(q, &format!("{why} (no Secondary)"));
            return;
        };
        for attempt in 1..=SECONDARY_ATTEMPTS {
            if secondary.as_ref().is_none_or(|(g, _)| *g != generation) {
                match spec.make() {
                    Ok(o) => *secondary = Some((generation, o)),
                    Err(err) => {
                        self.alarm(
                            AlarmType::PluginError,
                            Level::Error,
                            format!("cannot build the secondary: {}", err.message),
                        );
                        break;
                    }
                }
            }
            let out = &mut secondary.as_mut().expect("built above").1;
            match catch(|| out.write(&q.chunk)) {
                Ok(()) => {
                    self.alarm(
                        AlarmType::SendFailed,
                        Level::Warning,
                        format!(
                            "chunk {} ({} records) written to the secondary: {why}",
                            q.chunk.id, q.chunk.records
                        ),
                    );
                    self.delivered(q);
                    return;
                }
                Err(err) => {
                    if attempt == SECONDARY_ATTEMPTS {
                        self.drop_chunk(q, &format!("{why}; the secondary failed too: {err}"));
                        return;
                    }
                    std::thread::sleep(self.settings.backoff(attempt, q.chunk.id));
                }
            }
        }
        self.drop_chunk(q, &format!("{why}; no secondary could be built"));
    }

    /// Async mode: the output starts the write; the commit answers later.
    fn start_async(self: &Arc<Self>, q: Queued, out: &mut dyn Output) {
        let (id, token, chunk) = {
            let mut st = self.lock();
            let token = st.next_token;
            st.next_token += 1;
            let chunk = q.chunk.clone();
            let id = chunk.id;
            st.writing -= 1;
            st.inflight.insert(
                id,
                InFlight {
                    q,
                    deadline: Instant::now() + self.settings.commit_timeout,
                    token,
                },
            );
            (id, token, chunk)
        };
        let me = Arc::downgrade(self);
        let commit = Commit::new(move |r| {
            if let Some(s) = me.upgrade() {
                s.answer(id, token, r);
            }
        });
        if let Err(e) = catch(|| out.try_write(&chunk, commit)) {
            self.answer(id, token, Err(e));
        }
    }

    /// The destination's answer about an async chunk.
    fn answer(&self, id: u64, token: u64, r: Result<(), WriteError>) {
        let q = {
            let mut st = self.lock();
            match st.inflight.get(&id) {
                Some(f) if f.token == token => st.inflight.remove(&id).map(|f| f.q),
                _ => None,
            }
        };
        let Some(q) = q else {
            return;
        };
        match r {
            Ok(()) => self.delivered(q),
            Err(e) => {
                let sec = self.lock().secondary.clone().map(|s| (u64::MAX, s));
                let mut none = None;
                self.failed(q, e, sec, &mut none);
            }
        }
    }

    /// Spawns flush threads up to `FlushThreadCount`.
    fn spawn_threads(self: &Arc<Self>, st: &mut State) {
        while st.threads < self.settings.threads {
            let me = self.clone();
            let name = format!("flush-{}", st.threads);
            match std::thread::Builder::new()
                .name(name)
                .spawn(move || me.thread())
            {
                Ok(_) => st.threads += 1,
                Err(e) => {
                    self.alarm(
                        AlarmType::PluginError,
                        Level::Critical,
                        format!("cannot start a flush thread: {e}"),
                    );
                    break;
                }
            }
        }
    }

    /// The removed config's buffer delivered everything: forget it.
    fn end_removed(&self) {
        let mut st = self.lock();
        if st.phase != Phase::Draining(None) {
            return;
        }
        st.phase = Phase::Ended;
        drop(st);
        let Some(holder) = self.holder.upgrade() else {
            return;
        };
        let mut h = holder.lock().unwrap_or_else(|e| e.into_inner());
        if h.as_ref().is_some_and(|s| std::ptr::eq(&**s, self)) {
            *h = None;
        }
    }
}

/// Runs a write, turning a panic of the output into an `Exit` (the instance is rebuilt).
fn catch<R>(f: impl FnOnce() -> Result<R, WriteError>) -> Result<R, WriteError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(WriteError::Exit(format!("the output panicked: {msg}")))
        }
    }
}

impl FlusherControl for Shared {
    fn run(&self) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let mut st = self.lock();
        if st.phase == Phase::Ended {
            return;
        }
        if self.settings.kind == Kind::File && !st.dir_ready {
            if let Err(e) = self.prepare_dir(&mut st) {
                self.alarm(
                    AlarmType::PluginError,
                    Level::Error,
                    format!("disk buffer: {e}; retried on the next write"),
                );
            }
        }
        st.phase = Phase::Running;
        me.spawn_threads(&mut st);
        drop(st);
        self.work.notify_all();
    }

    fn stop(&self, how: Stopping) {
        let mut st = self.lock();
        if st.phase == Phase::Ended {
            return;
        }
        st.phase = match how {
            Stopping::Park => Phase::Parked,
            Stopping::Exit { deadline } => Phase::Draining(Some(deadline)),
            Stopping::Remove => Phase::Draining(None),
        };
        if how != Stopping::Park {
            // Threads deliver (everything, or until the deadline), then end; started if none
            // runs (a held config's buffer).
            if let Some(me) = self.me.upgrade() {
                me.spawn_threads(&mut st);
            }
        }
        drop(st);
        self.work.notify_all();
        self.room.notify_all();
    }

    fn finish(&self, deadline: Instant) {
        let mut st = self.lock();
        if !matches!(st.phase, Phase::Draining(Some(_))) {
            return;
        }
        // The flush stage has ended: what it appended after the threads ran dry is written
        // too, while there is time.
        let left =
            !st.queue.is_empty() || (!st.staged.is_empty() && self.settings.flush_at_shutdown);
        if left && st.threads == 0 && Instant::now() < deadline {
            if let Some(me) = self.me.upgrade() {
                me.spawn_threads(&mut st);
            }
        }
        while st.threads > 0 && Instant::now() < deadline {
            st = self
                .work
                .wait_timeout(st, Duration::from_millis(5))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        // The process exits: a disk buffer syncs what it holds (its inputs may commit);
        // a memory buffer loses what it holds, and its inputs must read it again.
        if self.settings.kind == Kind::File {
            let files = self.take_unsynced(&mut st, true);
            drop(st);
            self.sync(files);
            return;
        }
        let mut lost = 0usize;
        let mut acks = Vec::new();
        for s in st.staged.drain(..) {
            lost += s.records;
            acks.extend(s.acks);
        }
        for q in st.queue.drain(..) {
            lost += q.chunk.records;
            acks.extend(q.acks);
        }
        for (_, f) in st.inflight.drain() {
            lost += f.q.chunk.records;
            acks.extend(f.q.acks);
        }
        st.bytes = 0;
        st.phase = Phase::Ended;
        drop(st);
        for a in acks {
            a.lose();
        }
        if lost > 0 {
            self.dropped(
                lost,
                "the process exits with them in the memory buffer (inputs with offsets read them again after the restart)",
            );
        }
    }
}

#[cfg(test)]
mod tests;
