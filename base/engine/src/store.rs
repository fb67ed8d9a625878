//! The embedded checkpoint store (sled) opened by `InitPluginBase` under the data directory.
//!
//! Keys of plugin checkpoints follow iLogtail's scheme `<configName>^<key>`. Two more trees
//! keep data for re-sending: log groups the host had not accepted at exit (`undelivered`) and
//! events that could not enter a full pipeline (`backlog`, see [`crate::pipeline::Backlog`]).
//!
//! **Every operation is bounded.** sled runs on one store thread of its own; callers hand it
//! a job and wait at most a stated time for the answer (writes whose result nobody needs —
//! a checkpoint position, a delivered entry's removal — are not waited for at all). A disk
//! that hangs (frozen, or a flush that never returns) stalls that thread only: callers see
//! [`StoreError::Stalled`] at once, and no lock of the engine is held across the I/O.
//!
//! **A damaged store never stops the engine.** When the store cannot be opened or read
//! (a file cut to zero, garbage in its `conf`, a cut snapshot...), the directory is moved
//! aside and a fresh store is opened; [`Opened::recovered`] says what happened so the caller
//! can raise an alarm.

use crate::host::Payload;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tree holding log groups the host had not accepted when the process exited.
const UNDELIVERED: &str = "undelivered";
/// Tree holding when each config was last loaded (seconds since the epoch).
const SEEN: &str = "config_seen";
/// Tree holding events waiting to enter a config's pipeline: `<config> 0xFF <seq BE>`.
const BACKLOG: &str = "backlog";
/// Trees of plugin state kept apart from the checkpoints (keys `<config>^<key>`, removed with
/// the config's checkpoints by [`Store::cleanup`]): a file input's tasks, its instances (one
/// per file) and their committed offsets, as in InLong's agent.
pub const PLUGIN_TREES: &[&str] = &["file_tasks", "file_instances", "file_offsets"];
/// Separates the config name from the sequence in backlog keys (never part of UTF-8 text).
const BACKLOG_SEP: u8 = 0xFF;

/// Jobs queued for the store thread at most; more are refused ([`StoreError::Busy`]).
const QUEUE: usize = 10_000;
/// A job running longer than this means the disk hangs: new callers fail at once.
const STALLED_AFTER: Duration = Duration::from_secs(1);
/// Longest a read waits for the store thread.
pub const READ_WAIT: Duration = Duration::from_secs(1);
/// sled's page cache (its default, 1 GiB, lets the cache grow with every write).
const CACHE_BYTES: u64 = 4 << 20;

/// Why a store operation did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store thread has been inside one operation for too long (a hung disk).
    Stalled,
    /// Too many operations are queued.
    Busy,
    /// No answer within the wait (the operation may still complete later).
    Timeout,
    /// sled reported an error (a full disk, an I/O error...).
    Io(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Stalled => {
                f.write_str("the checkpoint store is stalled (disk not answering)")
            }
            StoreError::Busy => f.write_str("the checkpoint store has too many pending writes"),
            StoreError::Timeout => f.write_str("the checkpoint store did not answer in time"),
            StoreError::Io(e) => write!(f, "checkpoint store error: {e}"),
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

type Job = Box<dyn FnOnce(&sled::Db) + Send>;

struct Inner {
    jobs: Sender<Job>,
    /// When the job running now started (ms after `epoch`, plus one), 0 when idle.
    busy_since: Arc<AtomicU64>,
    epoch: Instant,
    path: PathBuf,
    /// Makes spill keys unique within a process (with the time in front of it).
    seq: AtomicU32,
    /// Set by [`Store::close`]: the thread lets go of the database after the job it runs.
    closing: Arc<AtomicBool>,
    /// Disconnects when the thread has ended (and sled's lock on the directory is released).
    ended: Receiver<()>,
}

/// A handle to the checkpoint store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// What [`Store::open`] found.
#[derive(Debug)]
pub struct Opened {
    /// The store.
    pub store: Store,
    /// Set when the store was damaged: what was moved aside and what that loses.
    pub recovered: Option<String>,
}

fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Opens sled in `dir` and reads every tree once, so that damage shows now (as an error or
/// a caught panic) rather than in the middle of a run.
fn open_checked(dir: &Path) -> Result<sled::Db, String> {
    let opened = catch_unwind(AssertUnwindSafe(|| -> Result<sled::Db, String> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| e.to_string())?;
        for name in db.tree_names() {
            let tree = db.open_tree(&name).map_err(|e| e.to_string())?;
            for entry in tree.iter() {
                entry.map_err(|e| e.to_string())?;
            }
        }
        Ok(db)
    }));
    opened.unwrap_or_else(|p| {
        Err(format!(
            "the store panicked while opening: {}",
            panic_text(p)
        ))
    })
}

/// Tries to open a store that failed to open with `error` without losing its data: sled's
/// `conf` (its settings, rewritten on open) and its snapshots (rebuilt from the log) can be
/// set aside. Returns the store and what was done, or `None` when it stays unreadable (the
/// files set aside are put back, so the whole directory can be moved aside as it was).
fn repair(dir: &Path, error: &str) -> Option<(sled::Db, String)> {
    if error.contains("cut to zero") {
        return None;
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let snapshots: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("snap."))
        })
        .collect();
    const CONF: &str = "its settings file `conf` was";
    let steps: [(&str, Vec<PathBuf>); 2] = [
        (CONF, vec![dir.join("conf")]),
        ("its snapshot files were", snapshots),
    ];
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (what, files) in steps {
        let files: Vec<PathBuf> = files.into_iter().filter(|f| f.exists()).collect();
        if files.is_empty() {
            continue;
        }
        for f in files {
            // A name sled does not read (it takes every `snap.*` file for a snapshot).
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned())?;
            let to = dir.join(format!("damaged-{secs}.{name}"));
            if std::fs::rename(&f, &to).is_ok() {
                moved.push((f, to));
            }
        }
        if let Ok(db) = open_checked(dir) {
            let kept = match what {
                CONF => "nothing was lost".to_string(),
                _ => format!(
                    "the store was rebuilt from its log ({} entries kept); what only the snapshot held is lost",
                    count_entries(&db)
                ),
            };
            let note = format!(
                "the checkpoint store in {} could not be opened ({error}); {what} set aside \
                 (kept next to it as damaged-{secs}.*): {kept}",
                dir.display()
            );
            return Some((db, note));
        }
    }
    for (from, to) in moved.iter().rev() {
        let _ = std::fs::rename(to, from);
    }
    None
}

fn count_entries(db: &sled::Db) -> usize {
    db.tree_names()
        .iter()
        .filter_map(|n| db.open_tree(n).ok())
        .map(|t| t.len())
        .sum()
}

/// Whether an open failure means another process holds the store (not damage).
fn is_lock_conflict(error: &str) -> bool {
    error.contains("acquire lock") || error.contains("WouldBlock")
}

/// Moves `dir` aside to `<dir>.damaged-<secs>[-n]`; returns where it went.
fn move_aside(dir: &Path) -> Result<PathBuf, String> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let base = dir
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string();
    for n in 0..100 {
        let to = PathBuf::from(if n == 0 {
            format!("{base}.damaged-{secs}")
        } else {
            format!("{base}.damaged-{secs}-{n}")
        });
        if to.exists() {
            continue;
        }
        return std::fs::rename(dir, &to)
            .map(|()| to.clone())
            .map_err(|e| format!("cannot move {} to {}: {e}", dir.display(), to.display()));
    }
    Err(format!(
        "cannot find a name to move {} aside",
        dir.display()
    ))
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

fn encode_payload(p: &Payload) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.data.len() + 64);
    out.push(1); // format version
    put_bytes(&mut out, p.config.as_bytes());
    put_bytes(&mut out, p.logstore.as_bytes());
    out.extend_from_slice(&p.logstore_key.to_le_bytes());
    out.extend_from_slice(&(p.lines as u64).to_le_bytes());
    match &p.shard_hash {
        Some(h) => {
            out.push(1);
            put_bytes(&mut out, h.as_bytes());
        }
        None => out.push(0),
    }
    put_bytes(&mut out, &p.data);
    out
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }
    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

fn decode_payload(v: &[u8], key: Vec<u8>) -> Option<Payload> {
    let mut c = Cursor(v);
    if c.take(1)? != [1] {
        return None;
    }
    let config = c.text()?;
    let logstore = c.text()?;
    let logstore_key = c.u64()? as i64;
    let lines = usize::try_from(c.u64()?).ok()?;
    let shard_hash = match c.take(1)?[0] {
        1 => Some(c.text()?),
        _ => None,
    };
    let data = c.bytes()?.to_vec();
    Some(Payload {
        config: config.into(),
        logstore: logstore.into(),
        logstore_key,
        data,
        lines,
        shard_hash,
        spill_key: Some(key),
        acks: Vec::new(),
    })
}

fn backlog_prefix(config: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(config.len() + 1);
    k.extend_from_slice(config.as_bytes());
    k.push(BACKLOG_SEP);
    k
}

fn backlog_key(config: &str, seq: u64) -> Vec<u8> {
    let mut k = backlog_prefix(config);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn split_backlog_key(k: &[u8]) -> Option<(&str, u64)> {
    let i = k.iter().position(|b| *b == BACKLOG_SEP)?;
    let seq = u64::from_be_bytes(k[i + 1..].try_into().ok()?);
    Some((std::str::from_utf8(&k[..i]).ok()?, seq))
}

/// What the backlog tree holds for one config (see [`Store::backlog_summary`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BacklogSummary {
    /// Entries.
    pub entries: u64,
    /// Bytes of their values.
    pub bytes: u64,
    /// Highest sequence number in use.
    pub last_seq: u64,
}

impl Store {
    /// Opens (or creates) the store in `dir`. A damaged store is moved aside and replaced by
    /// an empty one ([`Opened::recovered`] says so).
    ///
    /// # Errors
    /// When the directory cannot be created, the store is held by another process, or even
    /// a fresh store cannot be opened.
    pub fn open(dir: &Path) -> Result<Opened, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create checkpoint dir {}: {e}", dir.display()))?;
        // sled silently starts empty on a log file cut to zero bytes: that is damage too.
        let cut_to_zero = dir.join("conf").exists()
            && std::fs::metadata(dir.join("db")).is_ok_and(|m| m.len() == 0);
        let checked = if cut_to_zero {
            Err("its log file `db` is empty (cut to zero bytes)".to_string())
        } else {
            open_checked(dir)
        };
        let (db, recovered) = match checked {
            Ok(db) => (db, None),
            Err(e) if is_lock_conflict(&e) => {
                return Err(format!(
                    "cannot open checkpoint store {}: {e}",
                    dir.display()
                ))
            }
            Err(e) => match repair(dir, &e) {
                Some((db, note)) => (db, Some(note)),
                None => {
                    let bytes = dir_bytes(dir);
                    let moved = move_aside(dir)?;
                    std::fs::create_dir_all(dir).map_err(|e| {
                        format!("cannot create checkpoint dir {}: {e}", dir.display())
                    })?;
                    let db = open_checked(dir).map_err(|e2| {
                        format!(
                            "checkpoint store {} was damaged ({e}) and a fresh one cannot be opened: {e2}",
                            dir.display()
                        )
                    })?;
                    let note = format!(
                        "the checkpoint store in {} was damaged ({e}); it was moved aside to {} ({bytes} bytes) \
                         and an empty store was started: the input positions and the undelivered log groups \
                         kept in it are lost to this process (the moved directory is left for inspection)",
                        dir.display(),
                        moved.display()
                    );
                    (db, Some(note))
                }
            },
        };
        Ok(Opened {
            store: Self::start(db, dir),
            recovered,
        })
    }

    fn start(db: sled::Db, dir: &Path) -> Store {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = bounded(QUEUE);
        let busy_since = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let busy = busy_since.clone();
        let closing = Arc::new(AtomicBool::new(false));
        let (ended_tx, ended) = bounded::<()>(0);
        let stop = closing.clone();
        let spawned = std::thread::Builder::new()
            .name("plugin-store".into())
            .spawn(move || {
                let _ended = ended_tx;
                for job in rx {
                    busy.store(epoch.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
                    // A job that panics (sled on damaged data) must not end the thread.
                    let _ = catch_unwind(AssertUnwindSafe(|| job(&db)));
                    busy.store(0, Ordering::SeqCst);
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                // `db` (and with it the directory's lock) goes before `_ended` says so.
                drop(db);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the checkpoint store thread; the store is unavailable");
        }
        Store {
            inner: Arc::new(Inner {
                jobs: tx,
                busy_since,
                epoch,
                path: dir.to_path_buf(),
                seq: AtomicU32::new(0),
                closing,
                ended,
            }),
        }
    }

    /// Closes the store for every handle: the thread finishes the job it runs, lets go of
    /// the database (and of the directory's lock), and later operations fail. Waits at most
    /// `wait` for that; `false` when the thread did not end in time (stuck on the disk).
    pub fn close(&self, wait: Duration) -> bool {
        self.inner.closing.store(true, Ordering::SeqCst);
        // Wakes an idle thread (a full queue means it is busy and sees the flag soon).
        let _ = self.inner.jobs.try_send(Box::new(|_| {}));
        matches!(
            self.inner.ended.recv_timeout(wait),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        )
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the store thread has been stuck in one operation for longer than
    /// [`STALLED_AFTER`].
    pub fn stalled(&self) -> bool {
        let since = self.inner.busy_since.load(Ordering::SeqCst);
        since != 0
            && self.inner.epoch.elapsed().as_millis() as u64 + 1 - since
                > STALLED_AFTER.as_millis() as u64
    }

    /// Queues `f` without waiting for it.
    fn post(&self, f: impl FnOnce(&sled::Db) + Send + 'static) -> Result<(), StoreError> {
        if self.stalled() {
            return Err(StoreError::Stalled);
        }
        self.inner.jobs.try_send(Box::new(f)).map_err(|e| match e {
            TrySendError::Full(_) => StoreError::Busy,
            TrySendError::Disconnected(_) => StoreError::Io("the store thread is gone".into()),
        })
    }

    /// Runs `f` on the store thread and waits at most `wait` for its result.
    fn call<R: Send + 'static>(
        &self,
        wait: Duration,
        f: impl FnOnce(&sled::Db) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = bounded(1);
        self.post(move |db| {
            let _ = tx.send(f(db));
        })?;
        match rx.recv_timeout(wait) {
            Ok(r) => r,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if self.stalled() => {
                Err(StoreError::Stalled)
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(StoreError::Timeout),
            // The job panicked (its sender was dropped unanswered).
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                Err(StoreError::Io("the store failed on this operation".into()))
            }
        }
    }

    fn key(config: &str, key: &str) -> Vec<u8> {
        format!("{config}^{key}").into_bytes()
    }

    /// Saves `value` under `<config>^<key>` (queued: returns before it is written).
    ///
    /// # Errors
    /// When the store is stalled or too busy to queue the write.
    pub fn save(&self, config: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let (k, v) = (Self::key(config, key), value.to_vec());
        self.post(move |db| {
            if let Err(e) = db.insert(k, v) {
                tracing::error!(error = %e, "cannot save a checkpoint");
            }
        })
    }

    /// Reads `<config>^<key>` (None when absent, or when the store does not answer within
    /// [`READ_WAIT`]).
    pub fn get(&self, config: &str, key: &str) -> Option<Vec<u8>> {
        let k = Self::key(config, key);
        self.call(READ_WAIT, move |db| Ok(db.get(k)?.map(|v| v.to_vec())))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read a checkpoint");
                None
            })
    }

    /// Saves `value` under `<config>^<key>` in the plugin tree `tree` (one of
    /// [`PLUGIN_TREES`]; queued: returns before it is written).
    ///
    /// # Errors
    /// When the store is stalled or too busy to queue the write.
    pub fn tree_save(
        &self,
        tree: &'static str,
        config: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        debug_assert!(PLUGIN_TREES.contains(&tree));
        let (k, v) = (Self::key(config, key), value.to_vec());
        self.post(move |db| {
            if let Err(e) = db.open_tree(tree).and_then(|t| t.insert(k, v)) {
                tracing::error!(error = %e, tree, "cannot save plugin state");
            }
        })
    }

    /// Removes `<config>^<key>` from the plugin tree `tree` (queued).
    ///
    /// # Errors
    /// When the store is stalled or too busy to queue the removal.
    pub fn tree_remove(
        &self,
        tree: &'static str,
        config: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        let k = Self::key(config, key);
        self.post(move |db| {
            if let Err(e) = db.open_tree(tree).and_then(|t| t.remove(k)) {
                tracing::error!(error = %e, tree, "cannot remove plugin state");
            }
        })
    }

    /// Every `(key, value)` of `config` in the plugin tree `tree` whose key starts with
    /// `prefix` (waits at most `wait`).
    ///
    /// # Errors
    /// When the store does not answer in time or cannot be read.
    pub fn tree_list(
        &self,
        tree: &'static str,
        config: &str,
        prefix: &str,
        wait: Duration,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let start = Self::key(config, prefix);
        let skip = config.len() + 1;
        self.call(wait, move |db| {
            let mut out = Vec::new();
            for entry in db.open_tree(tree)?.scan_prefix(&start) {
                let (k, v) = entry?;
                let key = String::from_utf8_lossy(&k[skip..]).into_owned();
                out.push((key, v.to_vec()));
            }
            Ok(out)
        })
    }

    /// Every `<config>^<key>` value, by config (one scan; waits at most `wait`).
    ///
    /// # Errors
    /// When the store does not answer in time or cannot be read.
    pub fn get_all(
        &self,
        key: &str,
        wait: Duration,
    ) -> Result<std::collections::HashMap<String, Vec<u8>>, StoreError> {
        let suffix = format!("^{key}").into_bytes();
        self.call(wait, move |db| {
            let mut out = std::collections::HashMap::new();
            for entry in db.iter() {
                let (k, v) = entry?;
                if let Some(config) = k.strip_suffix(suffix.as_slice()) {
                    out.insert(String::from_utf8_lossy(config).into_owned(), v.to_vec());
                }
            }
            Ok(out)
        })
    }

    /// A key for a spilled payload: the time (so that entries read back oldest first) and a
    /// per-process counter.
    fn spill_key(&self) -> Vec<u8> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let mut k = nanos.to_be_bytes().to_vec();
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }

    /// Persists payloads the host has not accepted (each gets its store key, also when the
    /// write does not complete in time, so that a later delivery removes a late write), and
    /// flushes them to disk; waits at most `wait`.
    ///
    /// # Errors
    /// When the write or the flush fails or does not complete within `wait`.
    pub fn spill(&self, payloads: &mut [Payload], wait: Duration) -> Result<usize, StoreError> {
        let mut entries = Vec::new();
        for p in payloads.iter_mut().filter(|p| p.spill_key.is_none()) {
            let key = self.spill_key();
            entries.push((key.clone(), encode_payload(p)));
            p.spill_key = Some(key);
        }
        let n = entries.len();
        if n == 0 {
            return Ok(0);
        }
        self.call(wait, move |db| {
            let tree = db.open_tree(UNDELIVERED)?;
            let mut batch = sled::Batch::default();
            for (k, v) in entries {
                batch.insert(k, v);
            }
            tree.apply_batch(batch)?;
            tree.flush()?;
            Ok(n)
        })
    }

    /// Payloads persisted by an earlier process, oldest first.
    pub fn spilled(&self) -> Vec<Payload> {
        let read = self.call(Duration::from_secs(30), |db| {
            let tree = db.open_tree(UNDELIVERED)?;
            let mut out = Vec::new();
            for entry in tree.iter() {
                let (k, v) = entry?;
                match decode_payload(&v, k.to_vec()) {
                    Some(p) => out.push(p),
                    None => tracing::error!(
                        "skipping an unreadable undelivered entry in the checkpoint store"
                    ),
                }
            }
            Ok(out)
        });
        read.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the undelivered log groups of the last run");
            Vec::new()
        })
    }

    /// Forgets a persisted payload once the host accepted it (queued).
    pub fn unspill(&self, key: &[u8]) {
        let key = key.to_vec();
        let queued = self.post(move |db| {
            let removed = db.open_tree(UNDELIVERED).and_then(|t| t.remove(key));
            if let Err(e) = removed {
                tracing::error!(error = %e, "cannot remove a delivered entry from the store");
            }
        });
        if let Err(e) = queued {
            tracing::error!(error = %e, "cannot remove a delivered entry from the store; it will be sent again after a restart");
        }
    }

    /// Records that `configs` are loaded now (`now` in seconds since the epoch); queued.
    pub fn mark_seen(&self, configs: Vec<String>, now: u64) {
        let _ = self.post(move |db| {
            if let Ok(seen) = db.open_tree(SEEN) {
                for c in configs {
                    let _ = seen.insert(c.as_bytes(), &now.to_be_bytes());
                }
            }
        });
    }

    /// Deletes the checkpoints and backlog of every config not in `loaded` that has not been
    /// seen for more than `ttl_secs`. Configs with checkpoints but no record yet start their
    /// clock now. Returns the number of keys deleted.
    ///
    /// # Errors
    /// When the store does not answer within `wait`.
    pub fn cleanup(
        &self,
        loaded: std::collections::HashSet<String>,
        ttl_secs: u64,
        now: u64,
        wait: Duration,
    ) -> Result<usize, StoreError> {
        self.call(wait, move |db| Ok(cleanup(db, &loaded, ttl_secs, now)))
    }

    /// Writes everything to disk, waiting at most `wait`.
    ///
    /// # Errors
    /// When the flush fails or does not complete in time.
    pub fn flush(&self, wait: Duration) -> Result<(), StoreError> {
        self.call(wait, |db| db.flush().map(drop).map_err(StoreError::from))
    }

    /// Appends one backlog entry of `config` under `seq`, waiting at most `wait` for it to be
    /// written (it reaches the disk with sled's next flush, within a second).
    ///
    /// # Errors
    /// When the write fails or does not complete in time.
    pub fn backlog_put(
        &self,
        config: &str,
        seq: u64,
        value: Vec<u8>,
        wait: Duration,
    ) -> Result<(), StoreError> {
        let key = backlog_key(config, seq);
        self.call(wait, move |db| {
            db.open_tree(BACKLOG)?.insert(key, value)?;
            Ok(())
        })
    }

    /// Backlog entries of `config` after `after` (all when `None`), oldest first, up to
    /// `max_bytes` (at least one entry).
    ///
    /// # Errors
    /// When the store does not answer within [`READ_WAIT`].
    pub fn backlog_read(
        &self,
        config: &str,
        after: Option<u64>,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let prefix = backlog_prefix(config);
        let start = backlog_key(config, after.map_or(0, |a| a.saturating_add(1)));
        self.call(READ_WAIT, move |db| {
            let tree = db.open_tree(BACKLOG)?;
            let mut out = Vec::new();
            let mut bytes = 0;
            for entry in tree.range(start..) {
                let (k, v) = entry?;
                if !k.starts_with(&prefix) || bytes >= max_bytes {
                    break;
                }
                if let Some((_, seq)) = split_backlog_key(&k) {
                    bytes += v.len();
                    out.push((seq, v.to_vec()));
                }
            }
            Ok(out)
        })
    }

    /// Removes the backlog entries of `config` up to and including `seq` (queued).
    pub fn backlog_remove_through(&self, config: &str, seq: u64) {
        let (prefix, end) = (backlog_prefix(config), backlog_key(config, seq));
        let queued = self.post(move |db| {
            let removed = db.open_tree(BACKLOG).and_then(|tree| {
                for entry in tree.range(prefix..=end) {
                    tree.remove(entry?.0)?;
                }
                Ok(())
            });
            if let Err(e) = removed {
                tracing::error!(error = %e, "cannot remove delivered backlog entries; they will be processed again after a restart");
            }
        });
        if let Err(e) = queued {
            tracing::error!(error = %e, "cannot remove delivered backlog entries; they will be processed again after a restart");
        }
    }

    /// What the backlog holds, per config.
    ///
    /// # Errors
    /// When the store does not answer within 30 s.
    pub fn backlog_summary(
        &self,
    ) -> Result<std::collections::HashMap<String, BacklogSummary>, StoreError> {
        self.call(Duration::from_secs(30), |db| {
            let mut out = std::collections::HashMap::<String, BacklogSummary>::new();
            for entry in db.open_tree(BACKLOG)?.iter() {
                let (k, v) = entry?;
                if let Some((config, seq)) = split_backlog_key(&k) {
                    let s = out.entry(config.to_string()).or_default();
                    s.entries += 1;
                    s.bytes += v.len() as u64;
                    s.last_seq = s.last_seq.max(seq);
                }
            }
            Ok(out)
        })
    }
}

fn cleanup(
    db: &sled::Db,
    loaded: &std::collections::HashSet<String>,
    ttl_secs: u64,
    now: u64,
) -> usize {
    let Ok(seen) = db.open_tree(SEEN) else {
        return 0;
    };
    let backlog = db.open_tree(BACKLOG).ok();
    let mut owners = std::collections::BTreeSet::new();
    for (k, _) in db.iter().filter_map(Result::ok) {
        if let Some(i) = k.iter().position(|b| *b == b'^') {
            owners.insert(k[..i].to_vec());
        }
    }
    if let Some(b) = &backlog {
        for (k, _) in b.iter().filter_map(Result::ok) {
            if let Some((config, _)) = split_backlog_key(&k) {
                owners.insert(config.as_bytes().to_vec());
            }
        }
    }
    let plugin_trees: Vec<sled::Tree> = PLUGIN_TREES
        .iter()
        .filter_map(|t| db.open_tree(t).ok())
        .collect();
    for t in &plugin_trees {
        for (k, _) in t.iter().filter_map(Result::ok) {
            if let Some(i) = k.iter().position(|b| *b == b'^') {
                owners.insert(k[..i].to_vec());
            }
        }
    }
    let mut deleted = 0;
    for owner in owners {
        let name = String::from_utf8_lossy(&owner).into_owned();
        if loaded.contains(&name) {
            continue;
        }
        let last = seen
            .get(&owner)
            .ok()
            .flatten()
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes));
        match last {
            None => {
                let _ = seen.insert(&owner, &now.to_be_bytes());
            }
            Some(t) if now.saturating_sub(t) > ttl_secs => {
                let mut prefix = owner.clone();
                prefix.push(b'^');
                for (k, _) in db.scan_prefix(&prefix).filter_map(Result::ok) {
                    if db.remove(k).is_ok() {
                        deleted += 1;
                    }
                }
                for t in &plugin_trees {
                    for (k, _) in t.scan_prefix(&prefix).filter_map(Result::ok) {
                        if t.remove(k).is_ok() {
                            deleted += 1;
                        }
                    }
                }
                if let Some(b) = &backlog {
                    let mut prefix = owner.clone();
                    prefix.push(BACKLOG_SEP);
                    for (k, _) in b.scan_prefix(&prefix).filter_map(Result::ok) {
                        if b.remove(k).is_ok() {
                            deleted += 1;
                        }
                    }
                }
                let _ = seen.remove(&owner);
                tracing::info!(config = %name, "removed checkpoints of a config absent for longer than CheckpointTTLSeconds");
            }
            Some(_) => {}
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("pb-{name}-{}-{nanos}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Closes the store and opens it again.
    fn reopen(s: Store, dir: &Path) -> Store {
        assert!(s.close(WAIT), "the store thread ends");
        drop(s);
        let start = Instant::now();
        loop {
            match Store::open(dir) {
                Ok(o) => return o.store,
                Err(e) if start.elapsed() < Duration::from_secs(5) => {
                    assert!(is_lock_conflict(&e), "{e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn save_get_flush_reopen() {
        let dir = temp("store");
        let s = Store::open(&dir).unwrap().store;
        s.save("cfg", "offset", b"42").unwrap();
        assert_eq!(s.get("cfg", "offset").as_deref(), Some(&b"42"[..]));
        assert_eq!(s.get("other", "offset"), None);
        s.flush(WAIT).unwrap();
        let s = reopen(s, &dir);
        assert_eq!(s.get("cfg", "offset").as_deref(), Some(&b"42"[..]));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cleanup_removes_only_configs_absent_past_the_ttl() {
        let dir = temp("cleanup");
        let s = Store::open(&dir).unwrap().store;
        for c in ["live", "old", "recent", "unknown"] {
            s.save(c, "offset", b"1").unwrap();
        }
        s.backlog_put("old", 1, b"x".to_vec(), WAIT).unwrap();
        s.mark_seen(vec!["old".into()], 1000);
        s.mark_seen(vec!["recent".into()], 9000);
        let loaded: std::collections::HashSet<String> = ["live".to_string()].into();
        assert_eq!(
            s.cleanup(loaded.clone(), 3600, 10_000, WAIT).unwrap(),
            2,
            "only `old` is past the TTL (its checkpoint and its backlog entry)"
        );
        assert!(s.get("old", "offset").is_none());
        assert!(s.backlog_read("old", None, 1 << 20).unwrap().is_empty());
        for c in ["live", "recent", "unknown"] {
            assert!(s.get(c, "offset").is_some(), "{c} kept");
        }
        // `unknown` started its clock at 10_000: gone once the TTL has passed since then.
        assert_eq!(s.cleanup(loaded, 3600, 13_700, WAIT).unwrap(), 2);
        assert!(s.get("live", "offset").is_some());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn plugin_trees_are_listed_by_config_and_cleaned_up_with_it() {
        let dir = temp("trees");
        let s = Store::open(&dir).unwrap().store;
        s.tree_save("file_offsets", "old", "a", b"1").unwrap();
        s.tree_save("file_offsets", "old", "b", b"2").unwrap();
        s.tree_save("file_instances", "live", "a", b"3").unwrap();
        s.tree_save("file_offsets", "oldest", "a", b"4").unwrap();
        let listed = s.tree_list("file_offsets", "old", "", WAIT).unwrap();
        assert_eq!(
            listed,
            vec![
                ("a".to_string(), b"1".to_vec()),
                ("b".to_string(), b"2".to_vec())
            ],
            "`oldest` shares the prefix `old` but not the separator"
        );
        s.tree_remove("file_offsets", "old", "a").unwrap();
        assert_eq!(
            s.tree_list("file_offsets", "old", "", WAIT).unwrap().len(),
            1
        );
        s.mark_seen(vec!["old".into(), "oldest".into()], 1000);
        let loaded: std::collections::HashSet<String> = ["live".to_string()].into();
        assert_eq!(s.cleanup(loaded, 3600, 10_000, WAIT).unwrap(), 2);
        assert!(s
            .tree_list("file_offsets", "old", "", WAIT)
            .unwrap()
            .is_empty());
        assert_eq!(
            s.tree_list("file_instances", "live", "", WAIT)
                .unwrap()
                .len(),
            1
        );
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn payload(i: u8) -> Payload {
        Payload {
            config: "cfg".into(),
            logstore: "ls".into(),
            logstore_key: -1,
            data: vec![i; 10],
            lines: 3,
            shard_hash: (i == 2).then(|| "h".to_string()),
            spill_key: None,
            acks: Vec::new(),
        }
    }

    #[test]
    fn spilled_payloads_survive_a_reopen_until_unspilled() {
        let dir = temp("spill");
        let s = Store::open(&dir).unwrap().store;
        let mut ps = vec![payload(1), payload(2)];
        assert_eq!(s.spill(&mut ps, WAIT).unwrap(), 2);
        assert_eq!(s.spill(&mut ps, WAIT).unwrap(), 0, "already persisted");
        let s = reopen(s, &dir);
        let back = s.spilled();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].data, vec![1; 10], "oldest first");
        assert_eq!(back[1].shard_hash.as_deref(), Some("h"));
        s.unspill(back[0].spill_key.as_ref().unwrap());
        assert_eq!(s.spilled().len(), 1);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn backlog_entries_read_in_order_and_removed_through_a_sequence() {
        let dir = temp("backlog");
        let s = Store::open(&dir).unwrap().store;
        for seq in 1..=5u64 {
            s.backlog_put("a", seq, vec![seq as u8; 100], WAIT).unwrap();
        }
        s.backlog_put("ab", 1, vec![9], WAIT).unwrap();
        let all = s.backlog_read("a", None, 1 << 20).unwrap();
        assert_eq!(all.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        let some = s.backlog_read("a", Some(2), 150).unwrap();
        assert_eq!(
            some.iter().map(|e| e.0).collect::<Vec<_>>(),
            [3, 4],
            "bounded by bytes"
        );
        s.backlog_remove_through("a", 3);
        let left = s.backlog_read("a", None, 1 << 20).unwrap();
        assert_eq!(left.iter().map(|e| e.0).collect::<Vec<_>>(), [4, 5]);
        let sum = s.backlog_summary().unwrap();
        assert_eq!(
            sum["a"],
            BacklogSummary {
                entries: 2,
                bytes: 200,
                last_seq: 5
            }
        );
        assert_eq!(sum["ab"].entries, 1);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stuck_store_thread_makes_calls_fail_fast_instead_of_blocking() {
        let dir = temp("stuck");
        let s = Store::open(&dir).unwrap().store;
        let (release, wait_release) = bounded::<()>(1);
        s.post(move |_| {
            let _ = wait_release.recv();
        })
        .unwrap();
        let t = Instant::now();
        assert_eq!(
            s.flush(Duration::from_millis(200)),
            Err(StoreError::Timeout)
        );
        assert!(t.elapsed() < Duration::from_millis(500));
        std::thread::sleep(STALLED_AFTER + Duration::from_millis(100));
        let t = Instant::now();
        assert_eq!(s.save("c", "k", b"v"), Err(StoreError::Stalled));
        assert_eq!(s.get("c", "k"), None);
        let mut ps = vec![payload(1)];
        assert_eq!(s.spill(&mut ps, WAIT), Err(StoreError::Stalled));
        assert!(t.elapsed() < Duration::from_millis(100), "no call waited");
        release.send(()).unwrap();
        let t = Instant::now();
        while s.stalled() && t.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            s.flush(WAIT).is_ok(),
            "the store recovers once the disk answers"
        );
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn damaged(name: &str, damage: impl Fn(&Path)) {
        let dir = temp(name);
        let s = Store::open(&dir).unwrap().store;
        s.save("cfg", "offset", b"42").unwrap();
        let mut ps = vec![payload(1)];
        s.spill(&mut ps, WAIT).unwrap();
        s.flush(WAIT).unwrap();
        assert!(reopen(s, &dir).close(WAIT), "the store thread ends");
        damage(&dir);
        let o = Store::open(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let note = o
            .recovered
            .unwrap_or_else(|| panic!("{name}: damage not noticed"));
        if note.contains("nothing was lost") {
            assert_eq!(
                o.store.get("cfg", "offset").as_deref(),
                Some(&b"42"[..]),
                "{note}"
            );
            assert_eq!(o.store.spilled().len(), 1, "{note}");
        } else if note.contains("rebuilt from its log") {
            // Whatever the log still holds is readable; the note says how much.
            assert!(note.contains("entries"), "{note}");
        } else {
            assert!(note.contains("moved aside"), "{note}");
            assert_eq!(o.store.get("cfg", "offset"), None, "a fresh store");
        }
        o.store.save("cfg", "offset", b"43").unwrap();
        assert_eq!(o.store.get("cfg", "offset").as_deref(), Some(&b"43"[..]));
        drop(o.store);
        let parent = dir.parent().unwrap().to_path_buf();
        let stem = dir.file_name().unwrap().to_string_lossy().into_owned();
        for e in std::fs::read_dir(parent).unwrap().filter_map(Result::ok) {
            if e.file_name().to_string_lossy().starts_with(&stem) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    #[test]
    fn a_damaged_store_is_repaired_or_moved_aside_and_replaced() {
        damaged("cut-db", |d| {
            std::fs::File::create(d.join("db")).unwrap();
        });
        damaged("garbage-log", |d| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(d.join("db"))
                .unwrap();
            use std::io::Write;
            (&f).write_all(&[0xAB; 4096]).unwrap();
        });
        damaged("bad-conf", |d| {
            std::fs::write(d.join("conf"), b"\x00garbage\xff not a sled config").unwrap();
        });
        damaged("cut-snapshot", |d| {
            // Cut the snapshots in half (a small store may have none yet: then leave one cut
            // short, as a crash while writing it would).
            let snaps: Vec<PathBuf> = std::fs::read_dir(d)
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("snap.")
                })
                .collect();
            for s in &snaps {
                let len = std::fs::metadata(s).unwrap().len();
                let f = std::fs::OpenOptions::new().write(true).open(s).unwrap();
                f.set_len(len / 2).unwrap();
            }
            if snaps.is_empty() {
                std::fs::write(d.join("snap.0000000000000400"), [0x5A; 40]).unwrap();
            }
        });
    }
}
