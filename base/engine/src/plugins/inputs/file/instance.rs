//! One matched file (an *instance* of the task, in InLong's words): its identity, its reader
//! and its checkpoint.
//!
//! **Identity** is device + inode + a fingerprint of the first [`FP_BYTES`] bytes (fewer while
//! the file is shorter; the fingerprint grows with the file). The inode tells two files with
//! the same first lines apart; the fingerprint tells a reused inode, or a file truncated and
//! written again, from the file we knew.
//!
//! **Offsets.** Records are cut from the read buffer ([`super::split`]); each group carries an
//! acknowledgement of the offset just past its last record. The checkpoint (tree
//! `file_offsets`) advances to the end of the longest prefix of groups the host accepted
//! ([`crate::ack`]); bytes read but not yet cut into records (an incomplete last line, the
//! multi-line record being built) are read again after a restart.

use super::options::{Settings, CUT_KEY};
use super::split::{Record, Splitter};
use crate::api::prelude::*;
use crate::api::{Ack, AckWindow, Fnv64a};
use bytes::BytesMut;
use serde::Serialize;
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

/// Bytes of a file's beginning its fingerprint covers (at most).
pub(super) const FP_BYTES: u64 = 1024;
/// Bytes read from a file at once.
pub(super) const CHUNK: usize = 512 * 1024;
/// Tree of instances: where each file was first read from.
pub(super) const INSTANCES: &str = "file_instances";
/// Tree of committed offsets.
pub(super) const OFFSETS: &str = "file_offsets";

/// Device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct FileId {
    /// `st_dev`.
    pub(super) dev: u64,
    /// `st_ino`.
    pub(super) ino: u64,
}

impl FileId {
    /// The identity of what `meta` describes.
    pub(super) fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A hash of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Fingerprint {
    /// Bytes covered.
    pub(super) len: u32,
    /// FNV-1a of them.
    pub(super) hash: u64,
}

impl Fingerprint {
    fn of(data: &[u8]) -> Self {
        let mut h = Fnv64a::new();
        h.write(data);
        Self {
            len: data.len() as u32,
            hash: h.finish(),
        }
    }

    /// Reads the first bytes of `file` (up to [`FP_BYTES`], at most `size`): the fingerprint
    /// of them.
    pub(super) fn read(file: &File, size: u64) -> io::Result<Self> {
        let mut buf = vec![0; size.min(FP_BYTES) as usize];
        let n = read_full(file, &mut buf, 0)?;
        Ok(Self::of(&buf[..n]))
    }

    /// Whether `file` still begins with the bytes this fingerprint covers; when it does and
    /// is longer now, the fingerprint covering more of it.
    pub(super) fn check(&self, file: &File, size: u64) -> io::Result<Option<Self>> {
        if size < u64::from(self.len) {
            return Ok(None);
        }
        let mut buf = vec![0; size.min(FP_BYTES) as usize];
        let n = read_full(file, &mut buf, 0)?;
        if n < self.len as usize || Self::of(&buf[..self.len as usize]) != *self {
            return Ok(None);
        }
        Ok(Some(Self::of(&buf[..n])))
    }
}

/// Reads into `buf` at `offset` until it is full or the file ends; the bytes read.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What the store keeps of a file (trees `file_instances` and `file_offsets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Saved {
    /// Last path the file was seen under.
    pub(super) path: String,
    /// Device.
    pub(super) dev: u64,
    /// Inode.
    pub(super) ino: u64,
    /// Fingerprint.
    pub(super) fp: Fingerprint,
    /// Offset: where reading started (instances) or everything before is delivered (offsets).
    pub(super) offset: u64,
}

impl Saved {
    /// The file's identity.
    pub(super) fn id(&self) -> FileId {
        FileId {
            dev: self.dev,
            ino: self.ino,
        }
    }
}

/// The checkpoint of one file: one per file and config, shared by the readers of successive
/// configs of the same name (a reload hands the window over with the data in flight).
pub(super) struct Tracker {
    cx: PluginContext,
    me: Weak<Tracker>,
    state: Mutex<TrackerState>,
}

struct TrackerState {
    /// Where it is stored (`<plugin>|<dev>:<ino>`).
    key: String,
    /// Bumped when the file was truncated: commits of earlier content are ignored.
    generation: u64,
    saved: Saved,
    window: Arc<AckWindow>,
    /// End of what the last reader cut into records (where a successor continues).
    read_to: u64,
}

impl Tracker {
    /// A tracker for `saved`, stored under `key`.
    pub(super) fn new(cx: &PluginContext, key: String, saved: Saved) -> Arc<Self> {
        Arc::new_cyclic(|me: &Weak<Tracker>| {
            let read_to = saved.offset;
            Tracker {
                // Kept in the config's volatile objects: a context holding them would never
                // be freed.
                cx: cx.detached(),
                me: me.clone(),
                state: Mutex::new(TrackerState {
                    key,
                    generation: 0,
                    saved,
                    window: Self::window(me.clone(), 0),
                    read_to,
                }),
            }
        })
    }

    fn window(me: Weak<Tracker>, generation: u64) -> Arc<AckWindow> {
        AckWindow::new(move |offset| {
            if let Some(t) = me.upgrade() {
                t.commit(generation, offset);
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn commit(&self, generation: u64, offset: u64) {
        let mut s = self.lock();
        if s.generation != generation || offset < s.saved.offset {
            return;
        }
        s.saved.offset = offset;
        self.save(&s);
    }

    fn save(&self, s: &TrackerState) {
        let saved = &s.saved;
        let text = serde_json::to_vec(saved).unwrap_or_default();
        if let Err(e) = self.cx.tree_save(OFFSETS, &s.key, &text) {
            if self.cx.store.is_some() {
                self.cx.alarm(
                    AlarmType::CheckpointError,
                    Level::Error,
                    format!("cannot save the offset of {}: {e}", saved.path),
                );
            }
        }
    }

    /// Tracks the data up to `offset` (cut into records), returning its acknowledgement.
    pub(super) fn track(&self, offset: u64, fp: Fingerprint) -> Ack {
        let mut s = self.lock();
        s.read_to = offset;
        if s.saved.fp != fp {
            // The fingerprint grew with the file: saved at once (at most a few times per
            // file), so that a restart can tell this content from what replaces it.
            s.saved.fp = fp;
            self.save(&s);
        }
        s.window.track(offset)
    }

    /// Where reading continues.
    pub(super) fn read_to(&self) -> u64 {
        self.lock().read_to
    }

    /// The content was replaced (truncated): commits of what was read before no longer count,
    /// and the checkpoint restarts at 0 with the new fingerprint.
    pub(super) fn restart(&self, fp: Fingerprint) {
        let old = {
            let mut s = self.lock();
            s.generation += 1;
            s.saved.offset = 0;
            s.saved.fp = fp;
            s.read_to = 0;
            self.save(&s);
            let window = Self::window(self.me.clone(), s.generation);
            std::mem::replace(&mut s.window, window)
        };
        // Outside the lock: acknowledgements of the old window may complete now.
        drop(old);
    }

    /// Saves the checkpoint as it stands (a file first read: its start is committed).
    pub(super) fn persist(&self) {
        let s = self.lock();
        self.save(&s);
    }

    /// The content now lives in another file (the copy of a file truncated by
    /// copytruncate): what was read and what is in flight count for it from now on.
    pub(super) fn moved(&self, key: String, path: &Path, id: FileId) {
        let mut s = self.lock();
        s.key = key;
        s.saved.path = path.to_string_lossy().into_owned();
        s.saved.dev = id.dev;
        s.saved.ino = id.ino;
        self.save(&s);
    }

    /// What the store holds for the file (its committed offset).
    pub(super) fn saved(&self) -> Saved {
        self.lock().saved.clone()
    }

    /// The fingerprint of the content being tracked.
    pub(super) fn fingerprint(&self) -> Fingerprint {
        self.lock().saved.fp
    }

    /// Notes the file's current path (after a rename).
    pub(super) fn set_path(&self, path: &Path) {
        self.lock().saved.path = path.to_string_lossy().into_owned();
    }

    /// Offsets tracked but not yet acknowledged.
    pub(super) fn pending(&self) -> usize {
        self.lock().window.pending()
    }

    /// Forgets the file in the store (it is gone and everything read was delivered).
    pub(super) fn forget(&self) {
        let key = self.lock().key.clone();
        self.cx.tree_remove(OFFSETS, &key);
        self.cx.tree_remove(INSTANCES, &key);
    }
}

/// One open (or closed-while-idle) file of the task.
pub(super) struct Instance {
    /// Identity.
    pub(super) id: FileId,
    /// Current fingerprint.
    pub(super) fp: Fingerprint,
    /// Path it was found under (updated after a rename that keeps it matched).
    pub(super) path: PathBuf,
    path_text: Bytes,
    inode_text: Bytes,
    /// The open descriptor (None while closed for being idle or over the budget).
    pub(super) file: Option<File>,
    /// File offset of `carry[0]`: everything before was cut into records.
    done: u64,
    /// Bytes read but not cut into records yet.
    carry: Vec<u8>,
    splitter: Splitter,
    records: Vec<Record>,
    /// The checkpoint.
    pub(super) tracker: Arc<Tracker>,
    /// Last time new bytes were read.
    pub(super) last_data: Instant,
    /// Lines dropped by `UnmatchedContentTreatment: discard` and not reported yet.
    pub(super) discarded: u64,
    discarded_seen: u64,
    /// The path no longer leads to this file (renamed away or deleted): read to the end, then
    /// close.
    pub(super) gone: bool,
    /// Gone and read to its end (or no longer readable): the instance ends once what was read
    /// is delivered.
    pub(super) finished: bool,
    /// The last read reached the end of the file.
    pub(super) at_eof: bool,
    /// Modification time at the last read: a file rewritten to the same size is checked.
    mtime: (i64, i64),
}

/// What reading an instance gave.
pub(super) enum Read {
    /// Records (possibly an empty group when only skipped bytes were consumed).
    Group(EventGroup),
    /// Nothing new.
    Idle,
    /// The file is shorter than what was read, or its first bytes changed: truncated (or
    /// replaced in place). Carries where reading had got to.
    Truncated(u64),
}

impl Instance {
    /// An instance reading `file` (found at `path`) from the tracker's position.
    pub(super) fn new(
        s: &Settings,
        id: FileId,
        fp: Fingerprint,
        path: PathBuf,
        file: Option<File>,
        tracker: Arc<Tracker>,
    ) -> Self {
        let done = tracker.read_to();
        Self {
            id,
            fp,
            path_text: Bytes::from(path.to_string_lossy().into_owned()),
            inode_text: Bytes::from(id.ino.to_string()),
            path,
            file,
            done,
            carry: Vec::new(),
            splitter: Splitter::new(s.split.clone()),
            records: Vec::new(),
            tracker,
            last_data: Instant::now(),
            discarded: 0,
            discarded_seen: 0,
            gone: false,
            finished: false,
            at_eof: false,
            mtime: (0, 0),
        }
    }

    /// Renames the instance (the file kept its identity under a new path).
    pub(super) fn rename(&mut self, path: PathBuf) {
        self.path_text = Bytes::from(path.to_string_lossy().into_owned());
        self.tracker.set_path(&path);
        self.path = path;
    }

    /// The offset reading continues from.
    pub(super) fn position(&self) -> u64 {
        self.done + self.carry.len() as u64
    }

    /// Whether records are waiting for more data (an incomplete last line or record).
    pub(super) fn has_partial(&self) -> bool {
        !self.carry.is_empty()
    }

    /// Starts over at offset 0 with a new tracker (the old one went with the content to
    /// its copy).
    pub(super) fn start_over(&mut self, s: &Settings, fp: Fingerprint, tracker: Arc<Tracker>) {
        self.reset(s, fp);
        self.tracker = tracker;
    }

    /// Starts over at offset 0 (after a truncation).
    pub(super) fn restart(&mut self, s: &Settings, fp: Fingerprint) {
        self.reset(s, fp);
        self.tracker.restart(fp);
    }

    /// Forgets what was read: reading starts at 0 of content with fingerprint `fp`.
    fn reset(&mut self, s: &Settings, fp: Fingerprint) {
        self.fp = fp;
        self.at_eof = false;
        self.done = 0;
        self.carry.clear();
        self.splitter = Splitter::new(s.split.clone());
        self.discarded_seen = 0;
    }

    /// Reads what the file has past the position (at most [`CHUNK`] bytes) and cuts it into
    /// records; with `flush`, also the incomplete tail (the file is being closed, or the
    /// flush timeout passed).
    ///
    /// # Errors
    /// An I/O error of the open file.
    pub(super) fn read(
        &mut self,
        s: &Settings,
        source: &Bytes,
        flush: bool,
        buffers: &mut Buffers,
    ) -> io::Result<Read> {
        let Some(file) = &self.file else {
            return Ok(Read::Idle);
        };
        let meta = file.metadata()?;
        let size = meta.len();
        let pos = self.position();
        if size < pos {
            return Ok(Read::Truncated(pos));
        }
        let mtime = (meta.mtime(), meta.mtime_nsec());
        let changed = std::mem::replace(&mut self.mtime, mtime) != mtime;
        if size == pos && changed && pos > 0 && self.fp.check(file, size)?.is_none() {
            return Ok(Read::Truncated(pos));
        }
        if size == pos {
            self.at_eof = true;
            if (flush || self.last_data.elapsed() >= s.flush_timeout) && self.has_partial() {
                let data = Bytes::from(std::mem::take(&mut self.carry));
                return Ok(Read::Group(self.cut(s, source, data, true)));
            }
            return Ok(Read::Idle);
        }
        match self.fp.check(file, size)? {
            Some(fp) => self.fp = fp,
            None => return Ok(Read::Truncated(pos)),
        }
        let want = ((size - pos) as usize).min(CHUNK);
        let kept = self.carry.len();
        let mut buf = buffers.take(kept + want);
        buf[..kept].copy_from_slice(&self.carry);
        let n = read_full(file, &mut buf[kept..], pos)?;
        buf.truncate(kept + n);
        self.carry.clear();
        self.last_data = Instant::now();
        self.at_eof = pos + n as u64 >= size;
        let data = buf.freeze();
        buffers.keep(&data);
        Ok(Read::Group(self.cut(s, source, data, flush && self.at_eof)))
    }

    /// Cuts `data` (starting at `self.done`) into records: a group of them, with the
    /// acknowledgement of the offset past the last one; keeps the rest as the carry.
    fn cut(&mut self, s: &Settings, source: &Bytes, data: Bytes, flush: bool) -> EventGroup {
        self.records.clear();
        let used = self.splitter.split(&data, flush, &mut self.records);
        let (lines, _) = self.splitter.discarded();
        self.discarded += lines - self.discarded_seen;
        self.discarded_seen = lines;
        let base = self.done;
        let mut g = EventGroup::new(source.clone());
        if let Some(t) = &s.path_tag {
            g.tags.push((t.clone(), self.path_text.clone()));
        }
        if let Some(t) = &s.inode_tag {
            g.tags.push((t.clone(), self.inode_text.clone()));
        }
        let (text, ranges) = if s.gbk {
            transcode(&data, &self.records)
        } else {
            (data.clone(), Vec::new())
        };
        // Each log is encoded once, here, as the flusher to the host writes it: the pipeline
        // sends it on as it is (or decodes it for a processor that reads it). One buffer per
        // read holds them all; no allocation per log.
        let time = now().0;
        let cut_key = CUT_KEY.as_bytes();
        let mut enc = Vec::with_capacity(text.len() + self.records.len() * 24);
        let mut spans = Vec::with_capacity(self.records.len());
        let (mut offset, mut piece) = (String::new(), String::new());
        for (i, r) in self.records.iter().enumerate() {
            let (a, b) = ranges.get(i).copied().unwrap_or((r.start, r.end));
            let mut contents: [(&[u8], &[u8]); 3] =
                [(b"content", &text[a..b]), (b"", b""), (b"", b"")];
            let mut n = 1;
            if let Some(k) = &s.offset_key {
                offset.clear();
                let _ = write!(offset, "{}", base + r.start as u64);
                contents[n] = (k, offset.as_bytes());
                n += 1;
            }
            if r.cut > 0 {
                piece.clear();
                let _ = write!(piece, "{}", r.cut);
                contents[n] = (cut_key, piece.as_bytes());
                n += 1;
            }
            let start = enc.len();
            crate::proto::encode_log(&mut enc, time, &contents[..n]);
            spans.push((start, enc.len()));
        }
        let enc = Bytes::from(enc);
        g.events.reserve_exact(spans.len());
        g.events.extend(
            spans
                .into_iter()
                .map(|(a, b)| LogEvent::from_encoded(time, enc.slice(a..b))),
        );
        self.done = base + used as u64;
        self.carry.clear();
        self.carry.extend_from_slice(&data[used..]);
        g.acks.push(self.tracker.track(self.done, self.fp));
        g
    }

    /// Closes the descriptor (the instance stays known) and gives back its scratch memory.
    pub(super) fn close(&mut self) {
        self.file = None;
        self.records = Vec::new();
        self.carry.shrink_to_fit();
    }
}

/// Read buffers kept for reuse: one is taken again once every record cut from it was
/// dropped (delivered), which spares allocating and zeroing half a megabyte per read.
#[derive(Default)]
pub(super) struct Buffers(Vec<Bytes>);

/// Buffers a task keeps for reuse, at most.
const KEPT_BUFFERS: usize = 4;

impl Buffers {
    /// A buffer of `len` bytes (their contents are whatever was there).
    fn take(&mut self, len: usize) -> BytesMut {
        let mut i = 0;
        while i < self.0.len() {
            match self.0.swap_remove(i).try_into_mut() {
                Ok(mut m) if m.capacity() >= len => {
                    if m.len() >= len {
                        m.truncate(len);
                    } else {
                        m.resize(len, 0);
                    }
                    return m;
                }
                // Too small: dropped.
                Ok(_) => {}
                Err(still_used) => {
                    self.0.push(still_used);
                    let last = self.0.len() - 1;
                    self.0.swap(i, last);
                    i += 1;
                }
            }
        }
        let mut m = BytesMut::with_capacity(len.max(CHUNK));
        m.resize(len, 0);
        m
    }

    /// Keeps `data` for reuse (when fewer than [`KEPT_BUFFERS`] are kept).
    fn keep(&mut self, data: &Bytes) {
        if self.0.len() < KEPT_BUFFERS {
            self.0.push(data.clone());
        }
    }
}

/// Transcodes the GBK `records` of `raw` into one UTF-8 buffer: it and their ranges in it.
fn transcode(raw: &Bytes, records: &[Record]) -> (Bytes, Vec<(usize, usize)>) {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 2);
    let mut ranges = Vec::with_capacity(records.len());
    for r in records {
        let start = out.len();
        super::encoding::gbk_to_utf8(&raw[r.start..r.end], &mut out);
        ranges.push((start, out.len()));
    }
    (Bytes::from(out), ranges)
}
