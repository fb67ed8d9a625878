//! The task of one `input_file`: discovery, the instances, their reading and their end.

use super::instance::{
    Buffers, FileId, Fingerprint, Instance, Read, Saved, Tracker, INSTANCES, OFFSETS,
};
use super::options::Settings;
use super::watch::{DirWatcher, WatchHub};
use crate::api::prelude::*;
use crate::stats::PluginStats;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tree of tasks: whether a task ran before.
const TASKS: &str = "file_tasks";
/// Most files one scan collects.
const MAX_FILES: usize = 100_000;
/// How often open files are checked for new data when no notification came.
const POLL: Duration = Duration::from_millis(250);
/// Longest wait for the store to write a task's first state.
const FIRST_FLUSH: Duration = Duration::from_secs(2);
/// Entries of a directory looked at for the copy of a truncated file, at most.
const COPY_SEARCH: usize = 10_000;

/// One `input_file` of a config.
pub(super) struct FileTask {
    s: Settings,
    cx: PluginContext,
    stats: Arc<PluginStats>,
    files: BTreeMap<FileId, Instance>,
    /// Saved state of files not found again yet (read from the store at the first run).
    restored: HashMap<FileId, Saved>,
    started: bool,
    /// Files found by the next scan start `TailSizeKB` before their end (a task that never
    /// ran before, at its first scan).
    tail_next_scan: bool,
    watcher: Option<DirWatcher>,
    wake: Arc<tokio::sync::Notify>,
    last_scan: Option<Instant>,
    buffers: Buffers,
}

impl FileTask {
    /// A task of `s`, not started.
    pub(super) fn new(s: Settings, cx: &PluginContext) -> Self {
        Self {
            s,
            stats: cx.stats.plugin(&cx.config_name, &cx.plugin),
            cx: cx.clone(),
            files: BTreeMap::new(),
            restored: HashMap::new(),
            started: false,
            tail_next_scan: false,
            watcher: None,
            wake: Arc::new(tokio::sync::Notify::new()),
            last_scan: None,
            buffers: Buffers::default(),
        }
    }

    fn key(&self, id: FileId) -> String {
        format!("{}|{}:{}", self.cx.plugin, id.dev, id.ino)
    }

    /// First run: what the store remembers, the watcher.
    fn start(&mut self) {
        self.started = true;
        let task_key = self.cx.plugin.to_string();
        let known = self.cx.tree_list(TASKS).iter().any(|(k, _)| *k == task_key);
        if !known {
            let since = now().0.to_string();
            let _ = self.cx.tree_save(TASKS, &task_key, since.as_bytes());
        }
        self.tail_next_scan = !known;
        let prefix = format!("{}|", self.cx.plugin);
        for tree in [INSTANCES, OFFSETS] {
            for (k, v) in self.cx.tree_list(tree) {
                if !k.starts_with(&prefix) {
                    continue;
                }
                if let Ok(saved) = serde_json::from_slice::<Saved>(&v) {
                    // Offsets come second and win over where reading first started.
                    self.restored.insert(saved.id(), saved);
                }
            }
        }
        // One inotify instance and thread for every input_file of the engine.
        let hub = self.cx.shared.object("input_file/watch", || {
            HubSlot(WatchHub::new().map(Arc::new))
        });
        match &hub.0 {
            Ok(h) => self.watcher = Some(DirWatcher::new(h.clone(), self.wake.clone())),
            Err(e) => tracing::warn!(config = %self.cx.config_name, error = %e,
                "no change notification for input_file; relying on the scan"),
        }
    }

    /// Scans the globs: new files become instances, files no longer found are gone.
    fn scan(&mut self) {
        self.last_scan = Some(Instant::now());
        let scan = self.s.matcher.scan(MAX_FILES);
        if scan.truncated {
            self.cx.alarm(
                AlarmType::Plugin("FILE_READER_EXCEED_ALARM"),
                Level::Warning,
                format!("more than {MAX_FILES} files match; the rest are not collected"),
            );
        }
        if let Some(w) = &mut self.watcher {
            w.sync(&scan.dirs);
        }
        let mut seen = HashSet::new();
        for path in scan.files {
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let id = FileId::of(&meta);
            if !seen.insert(id) {
                continue;
            }
            match self.files.get_mut(&id) {
                Some(inst) if inst.path != path => {
                    if path_id(&inst.path) != Some(id) {
                        inst.rename(path);
                    }
                    inst.gone = false;
                }
                Some(inst) => inst.gone = false,
                None => self.discover(path, &meta, id),
            }
        }
        for inst in self.files.values_mut() {
            if !seen.contains(&inst.id) && path_id(&inst.path) != Some(inst.id) {
                inst.gone = true;
            }
        }
        if std::mem::take(&mut self.tail_next_scan) {
            // A crash before these rows reach the disk would apply TailSizeKB again at the
            // next start, skipping what was written since: flush them now, once per task.
            if let Err(e) = self.cx.flush_store(FIRST_FLUSH) {
                if self.cx.store.is_some() {
                    self.cx.alarm(
                        AlarmType::CheckpointError,
                        Level::Error,
                        format!("cannot flush the first state of the task: {e}"),
                    );
                }
            }
        }
        if !self.restored.is_empty() {
            self.recover_rotated();
        }
    }

    /// Files remembered from the last run that the first scan did not find: one renamed
    /// next to its old path while we were stopped is read to its end; the rows of the others
    /// are removed.
    fn recover_rotated(&mut self) {
        let restored: Vec<Saved> = self.restored.drain().map(|(_, s)| s).collect();
        let mut by_dir: HashMap<PathBuf, Vec<Saved>> = HashMap::new();
        for saved in restored {
            let dir = Path::new(&saved.path).parent().map(Path::to_path_buf);
            by_dir
                .entry(dir.unwrap_or_default())
                .or_default()
                .push(saved);
        }
        for (dir, saved) in by_dir {
            let mut found: HashMap<FileId, PathBuf> = HashMap::new();
            if let Ok(entries) = fs::read_dir(&dir) {
                for e in entries.filter_map(Result::ok).take(COPY_SEARCH) {
                    if let Ok(m) = e.metadata() {
                        if m.is_file() {
                            found.insert(FileId::of(&m), e.path());
                        }
                    }
                }
            }
            for sv in saved {
                let key = self.key(sv.id());
                let resumed = found.get(&sv.id()).and_then(|p| {
                    let file = File::open(p).ok()?;
                    let size = file.metadata().ok()?.len();
                    sv.fp.check(&file, size).ok()??;
                    Some((p.clone(), file))
                });
                match resumed {
                    Some((path, file)) if !self.files.contains_key(&sv.id()) => {
                        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                        let tracker = match self.predecessor(&key) {
                            Some(t)
                                if matches!(t.fingerprint().check(&file, size), Ok(Some(_))) =>
                            {
                                t
                            }
                            _ => self.fresh_tracker(&key, sv.clone()),
                        };
                        let fp = sv.fp;
                        let mut inst = Instance::new(&self.s, sv.id(), fp, path, None, tracker);
                        inst.gone = true;
                        self.attach(&mut inst, file);
                        self.files.insert(sv.id(), inst);
                    }
                    _ => {
                        self.cx.tree_remove(OFFSETS, &key);
                        self.cx.tree_remove(INSTANCES, &key);
                    }
                }
            }
        }
    }

    /// The tracker a predecessor of this config (a reload) used for the file stored under
    /// `key`: it holds the acknowledgements of what that predecessor read.
    fn predecessor(&self, key: &str) -> Option<Arc<Tracker>> {
        self.cx
            .volatile
            .get::<TrackerSlot>(&slot(key))
            .map(|t| t.0.clone())
    }

    /// A new tracker for `saved` under `key`, saved now and kept for a successor.
    fn fresh_tracker(&self, key: &str, saved: Saved) -> Arc<Tracker> {
        let t = Tracker::new(&self.cx, key.to_string(), saved);
        t.persist();
        self.keep(key, t.clone());
        t
    }

    /// Keeps `t` as the tracker of `key` for a successor of this config.
    fn keep(&self, key: &str, t: Arc<Tracker>) {
        let name = slot(key);
        self.cx.volatile.remove_object(&name);
        self.cx.volatile.object(&name, move || TrackerSlot(t));
    }

    /// A file found for the first time in this run.
    fn discover(&mut self, path: PathBuf, meta: &fs::Metadata, id: FileId) {
        let Ok(file) = File::open(&path) else {
            return;
        };
        // The descriptor opened now may be another file if the path was replaced since.
        let Ok(meta2) = file.metadata() else {
            return;
        };
        if FileId::of(&meta2) != id {
            return;
        }
        let size = meta2.len().max(meta.len());
        let Ok(fp) = Fingerprint::read(&file, size) else {
            return;
        };
        let key = self.key(id);
        let predecessor = self.predecessor(&key);
        let restored = self.restored.remove(&id);
        // What this inode held when last seen: by a predecessor (newer), or in the store.
        let known = match (&predecessor, &restored) {
            (Some(t), _) => Some((t.fingerprint(), t.read_to())),
            (None, Some(r)) => Some((r.fp, r.offset)),
            (None, None) => None,
        };
        let same = known
            .is_some_and(|(kfp, at)| at <= size && matches!(kfp.check(&file, size), Ok(Some(_))));
        let tracker = match (same, predecessor, restored) {
            (true, Some(t), _) => t,
            (true, None, Some(mut r)) => {
                r.path = path.to_string_lossy().into_owned();
                self.fresh_tracker(&key, r)
            }
            (_, predecessor, _) => {
                // New content: a new file, a reused inode, or a file truncated while we did
                // not look (the rest of its old content may be in a copy next to it).
                if let Some((kfp, at)) = known {
                    self.adopt_copy(&path, kfp, at, predecessor);
                }
                let start = match known {
                    None if self.tail_next_scan => tail_start(&file, size, self.s.tail_bytes),
                    _ => 0,
                };
                let saved = Saved {
                    path: path.to_string_lossy().into_owned(),
                    dev: id.dev,
                    ino: id.ino,
                    fp,
                    offset: start,
                };
                let text = serde_json::to_vec(&saved).unwrap_or_default();
                let _ = self.cx.tree_save(INSTANCES, &key, &text);
                self.fresh_tracker(&key, saved)
            }
        };
        let mut inst = Instance::new(&self.s, id, fp, path, None, tracker);
        self.attach(&mut inst, file);
        self.files.insert(id, inst);
    }

    /// Descriptors held (against `MaxOpenFiles`).
    fn open_files(&self) -> usize {
        self.files.values().filter(|i| i.file.is_some()).count()
    }

    /// Gives `inst` its descriptor when the budget allows (else it is opened later).
    fn attach(&mut self, inst: &mut Instance, file: File) {
        if self.open_files() < self.s.max_open_files || self.make_room() {
            inst.file = Some(file);
        }
    }

    /// Closes the least recently active idle file to make room for another; whether one was.
    fn make_room(&mut self) -> bool {
        let victim = self
            .files
            .values()
            .filter(|i| i.file.is_some() && i.at_eof && !i.gone && !i.has_partial())
            .min_by_key(|i| i.last_data)
            .map(|i| i.id);
        match victim.and_then(|id| self.files.get_mut(&id)) {
            Some(inst) => {
                inst.close();
                true
            }
            None => false,
        }
    }

    /// Reopens a closed instance whose file has data past its position.
    fn reopen(&mut self, id: FileId) -> bool {
        let Some(inst) = self.files.get(&id) else {
            return false;
        };
        if inst.file.is_some() || inst.finished {
            return false;
        }
        let (position, gone) = (inst.position(), inst.gone);
        let path = inst.path.clone();
        let Ok(file) = File::open(&path) else {
            if let Some(i) = self.files.get_mut(&id).filter(|i| i.gone) {
                i.finished = true;
            }
            return false;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        if FileId::of(&meta) != id {
            // The path leads elsewhere now: this file is gone (the scan finds the new one),
            // and closed, it cannot be read any more.
            if let Some(i) = self.files.get_mut(&id) {
                i.gone = true;
                i.finished = true;
            }
            return false;
        }
        if meta.len() == position && !gone {
            return false;
        }
        if self.open_files() >= self.s.max_open_files && !self.make_room() {
            return false;
        }
        if let Some(i) = self.files.get_mut(&id) {
            i.file = Some(file);
            return true;
        }
        false
    }

    /// One pass over the instances: reads each once; the groups to send.
    fn read_round(
        &mut self,
        source: &Bytes,
        modified: &HashSet<FileId>,
        poll: bool,
    ) -> Vec<EventGroup> {
        let mut out = Vec::new();
        let mut ids: std::collections::VecDeque<FileId> = self.files.keys().copied().collect();
        let mut again = 0;
        while let Some(id) = ids.pop_front() {
            let Some((closed, at_eof)) = self.files.get(&id).map(|i| (i.file.is_none(), i.at_eof))
            else {
                continue;
            };
            let looked_at = poll || modified.contains(&id);
            if closed && !(looked_at && self.reopen(id)) {
                continue;
            }
            // A file read to its end is looked at again when notified or polled, not on every
            // round another file's reading makes.
            if !closed && at_eof && !looked_at {
                continue;
            }
            let Some(inst) = self.files.get_mut(&id) else {
                continue;
            };
            let read = inst.read(&self.s, source, false, &mut self.buffers);
            if inst.discarded > 0 {
                let n = std::mem::take(&mut inst.discarded);
                PluginStats::add(&self.stats.dropped, n);
                self.cx.alarm(
                    AlarmType::DataDropped,
                    Level::Warning,
                    format!(
                        "{n} lines of {} matched no multi-line pattern and were discarded \
                         (UnmatchedContentTreatment discard)",
                        inst.path.display()
                    ),
                );
            }
            match read {
                Ok(Read::Group(g)) => {
                    if g.is_empty() {
                        continue;
                    }
                    out.push(g);
                }
                Ok(Read::Idle) => {}
                Ok(Read::Truncated(at)) => {
                    // Read the new content (and the copy, when there is one) in this round.
                    if let Some(copy) = self.truncated(id, at) {
                        ids.push_front(copy);
                    }
                    if again < 16 {
                        again += 1;
                        ids.push_back(id);
                    }
                }
                Err(e) => {
                    PluginStats::add(&self.stats.errors, 1);
                    self.cx.alarm(
                        AlarmType::Plugin("READ_LOG_FAIL_ALARM"),
                        Level::Error,
                        format!("cannot read {}: {e}", inst.path.display()),
                    );
                    inst.close();
                }
            }
        }
        out
    }

    /// `id` was truncated (or rewritten in place) after reading to `at`: the rest of the old
    /// content is read from its copy when one is next to it (copytruncate), and reading
    /// starts over at 0.
    fn truncated(&mut self, id: FileId, at: u64) -> Option<FileId> {
        let inst = self.files.get(&id)?;
        let (path, old_fp, done) = (inst.path.clone(), inst.fp, inst.tracker.read_to());
        let old = inst.tracker.clone();
        let fp = inst
            .file
            .as_ref()
            .and_then(|f| Fingerprint::read(f, f.metadata().map(|m| m.len()).unwrap_or(0)).ok())
            .unwrap_or(Fingerprint { len: 0, hash: 0 });
        let copied = self.adopt_copy(&path, old_fp, done, Some(old));
        self.cx.alarm(
            AlarmType::Plugin("LOG_TRUNCATE_ALARM"),
            Level::Warning,
            format!(
                "{} was truncated after {at} bytes had been read; reading starts over at 0{}",
                path.display(),
                if copied.is_some() {
                    " (the rest of the old content is read from its copy)"
                } else {
                    ""
                }
            ),
        );
        let inst = self.files.get_mut(&id)?;
        if copied.is_none() {
            inst.restart(&self.s, fp);
            return None;
        }
        // The old tracker went with the content to the copy: start over with a new one.
        let saved = Saved {
            path: path.to_string_lossy().into_owned(),
            dev: id.dev,
            ino: id.ino,
            fp,
            offset: 0,
        };
        let fresh = self.fresh_tracker(&self.key(id), saved);
        self.files.get_mut(&id)?.start_over(&self.s, fp, fresh);
        copied
    }

    /// Reads the rest of a truncated file (it began with `fp`; `done` bytes of it were read)
    /// from its copy next to `path`, when there is one: the copy's id. `old` is the tracker
    /// of the old content, with what is in flight: it goes with the content to the copy.
    fn adopt_copy(
        &mut self,
        path: &Path,
        fp: Fingerprint,
        done: u64,
        old: Option<Arc<Tracker>>,
    ) -> Option<FileId> {
        let (cpath, file, cid) = self.find_copy(path, fp, done)?;
        let ckey = self.key(cid);
        let tracker = match old {
            Some(t) => {
                t.moved(ckey.clone(), &cpath, cid);
                self.keep(&ckey, t.clone());
                t
            }
            None => {
                // A copy found in the last run continues where it got to.
                let offset = self
                    .restored
                    .remove(&cid)
                    .filter(|r| r.fp == fp && r.offset >= done)
                    .map_or(done, |r| r.offset);
                let saved = Saved {
                    path: cpath.to_string_lossy().into_owned(),
                    dev: cid.dev,
                    ino: cid.ino,
                    fp,
                    offset,
                };
                self.fresh_tracker(&ckey, saved)
            }
        };
        let mut copy = Instance::new(&self.s, cid, fp, cpath, None, tracker);
        copy.gone = true;
        self.attach(&mut copy, file);
        self.files.insert(cid, copy);
        Some(cid)
    }

    /// A file next to `path`, not collected yet, that begins like the truncated file did and
    /// holds at least `done` bytes: its copy.
    fn find_copy(
        &self,
        path: &Path,
        fp: Fingerprint,
        done: u64,
    ) -> Option<(PathBuf, File, FileId)> {
        let dir = path.parent()?;
        for e in fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .take(COPY_SEARCH)
        {
            let Ok(m) = e.metadata() else { continue };
            let id = FileId::of(&m);
            if !m.is_file() || m.len() < done || self.files.contains_key(&id) || m.len() == 0 {
                continue;
            }
            let Ok(file) = File::open(e.path()) else {
                continue;
            };
            if matches!(fp.check(&file, m.len()), Ok(Some(_))) {
                return Some((e.path(), file, id));
            }
        }
        None
    }

    /// Flushes what waits for a timeout, closes idle files and ends the instances whose files
    /// are gone and read to their end; returns the groups flushed.
    fn housekeeping(&mut self, source: &Bytes) -> Vec<EventGroup> {
        let mut out = Vec::new();
        let mut ended = Vec::new();
        let mut reopen = Vec::new();
        let mut dormant = Vec::new();
        for inst in self.files.values_mut() {
            let idle = inst.last_data.elapsed();
            let open_idle = inst.file.is_some() && inst.at_eof && idle >= self.s.close_inactive;
            if open_idle && inst.gone {
                // Rotated or deleted, read to its end and quiet: the last record goes now.
                if let Ok(Read::Group(g)) = inst.read(&self.s, source, true, &mut self.buffers) {
                    if !g.is_empty() {
                        out.push(g);
                    }
                }
                inst.close();
                inst.finished = true;
            } else if open_idle && !inst.has_partial() {
                inst.close();
            }
            if inst.gone && inst.file.is_none() && !inst.finished {
                reopen.push(inst.id);
            }
            if inst.finished && inst.tracker.pending() == 0 {
                ended.push(inst.id);
            } else if inst.file.is_none()
                && !inst.gone
                && !inst.has_partial()
                && idle >= self.s.instance_idle
                && inst.tracker.pending() == 0
            {
                dormant.push(inst.id);
            }
        }
        for id in dormant {
            // Idle past the limit: the instance ends, its state (a few bytes) waits for the
            // file to be found again by a scan, like state read from the store.
            if let Some(inst) = self.files.remove(&id) {
                self.restored.insert(id, inst.tracker.saved());
                self.cx.volatile.remove_object(&slot(&self.key(id)));
            }
        }
        for id in reopen {
            // A gone file waiting for a descriptor (or closed while idle before it went).
            self.reopen(id);
        }
        for id in ended {
            if let Some(inst) = self.files.remove(&id) {
                inst.tracker.forget();
                self.cx.volatile.remove_object(&slot(&self.key(id)));
            }
        }
        out
    }

    async fn send_all(&self, io: &mut dyn InputIo, groups: Vec<EventGroup>) -> Result<(), String> {
        for g in groups {
            if io.send(g).await.is_err() {
                return Err("pipeline closed".into());
            }
        }
        Ok(())
    }

    /// One step: discovery when due (or when notification says so, or `force_scan`), one
    /// read of every instance, then housekeeping. The groups to send.
    pub(super) fn step(&mut self, source: &Bytes, poll: bool, force_scan: bool) -> Vec<EventGroup> {
        if !self.started {
            self.start();
        }
        let changes = self
            .watcher
            .as_ref()
            .map(DirWatcher::take)
            .unwrap_or_default();
        let scan_due = self
            .last_scan
            .is_none_or(|t| t.elapsed() >= self.s.scan_interval);
        if changes.rescan || scan_due || force_scan {
            self.scan();
        }
        let mut modified = HashSet::new();
        for p in &changes.modified {
            let Ok(meta) = fs::metadata(p) else { continue };
            let id = FileId::of(&meta);
            if !self.files.contains_key(&id) && meta.is_file() && self.s.matcher.matches(p) {
                self.discover(p.clone(), &meta, id);
            }
            modified.insert(id);
        }
        let mut groups = self.read_round(source, &modified, poll);
        groups.extend(self.housekeeping(source));
        groups
    }

    async fn run_loop(&mut self, io: &mut dyn InputIo) -> Result<(), String> {
        let source = io.source().clone();
        let mut last_poll = Instant::now();
        loop {
            if io.is_stopped() {
                return Ok(());
            }
            let poll = last_poll.elapsed() >= POLL;
            if poll {
                last_poll = Instant::now();
            }
            let groups = self.step(&source, poll, false);
            let progressed = !groups.is_empty();
            self.send_all(io, groups).await?;
            if progressed {
                continue;
            }
            let wait = POLL.min(
                self.s
                    .scan_interval
                    .saturating_sub(self.last_scan.map_or(Duration::ZERO, |t| t.elapsed())),
            );
            tokio::select! {
                _ = io.stopped() => return Ok(()),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            }
        }
    }
}

/// The engine's file watcher, or why there is none (kept in the engine's shared objects).
struct HubSlot(Result<Arc<WatchHub>, String>);

/// Keeps a tracker in the config's volatile state (a named type, so it can be found again).
struct TrackerSlot(Arc<Tracker>);

/// The name of the tracker of `key` in the config's volatile state.
fn slot(key: &str) -> String {
    format!("input_file|{key}")
}

impl ServiceInput for FileTask {
    fn run<'a>(&'a mut self, io: &'a mut dyn InputIo) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.run_loop(io))
    }
}

/// The identity of what `path` leads to now.
fn path_id(path: &Path) -> Option<FileId> {
    fs::metadata(path).ok().map(|m| FileId::of(&m))
}

/// Where a file of `size` bytes first seen at a task's first start is read from: `tail`
/// bytes before its end, moved on to the start of the next line.
fn tail_start(file: &File, size: u64, tail: u64) -> u64 {
    if size <= tail {
        return 0;
    }
    let mut at = size - tail;
    // The byte before `at` ends a line: `at` is a line start already.
    let mut buf = vec![0u8; 64 * 1024];
    let mut probe = at - 1;
    loop {
        let n = match file.read_at(&mut buf, probe) {
            Ok(0) | Err(_) => return size,
            Ok(n) => n,
        };
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            at = probe + i as u64 + 1;
            return at.min(size);
        }
        probe += n as u64;
        if probe >= size {
            return size;
        }
    }
}

#[cfg(test)]
impl FileTask {
    /// Instances in memory.
    pub(super) fn instances(&self) -> usize {
        self.files.len()
    }
}
