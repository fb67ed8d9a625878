//! Outputs: flushers that write chunks of encoded records to a destination (a file, an HTTP
//! endpoint), buffered, retried and committed by the framework in [`crate::buffer`]
//! (Fluentd's output model).
//!
//! A plugin author writes an [`Output`]: how to encode a group into a chunk's bytes
//! ([`Output::format`]) and how to write a chunk ([`Output::write`], or [`Output::try_write`]
//! for a destination that confirms later). The framework cuts groups into chunks by the
//! config's chunk keys, keeps them in memory or on disk, flushes them by the flush mode,
//! retries with back-off, hands a chunk that cannot be written to the `Secondary`, and tells
//! the inputs (through their acknowledgements) once a chunk is delivered or durably on disk.

use crate::encode::Format;
use bytes::Bytes;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why an output did not write a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Try the same chunk again later (Heka's RetryMessage): after `after` when the
    /// destination said when (HTTP `Retry-After`), else after the configured back-off.
    Retry {
        /// What went wrong.
        why: String,
        /// When the destination asked to be retried, if it did.
        after: Option<Duration>,
    },
    /// This chunk can never be written here (an HTTP 4xx, a record the destination refuses):
    /// it goes to the `Secondary` at once, or is dropped, counted and alarmed without one.
    Unrecoverable(String),
    /// The output instance is broken (Heka's PluginExit): it is rebuilt after a back-off and
    /// the chunk is retried with the new instance.
    Exit(String),
}

impl WriteError {
    /// A retry with the configured back-off.
    pub fn retry(why: impl Into<String>) -> Self {
        Self::Retry {
            why: why.into(),
            after: None,
        }
    }

    /// What went wrong.
    pub fn why(&self) -> &str {
        match self {
            Self::Retry { why, .. } | Self::Unrecoverable(why) | Self::Exit(why) => why,
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.why())
    }
}

/// The values a chunk was cut by (its chunk keys), for placeholders in destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    /// The group's tag, when `tag` is a chunk key.
    pub tag: Option<Bytes>,
    /// Start of the time window (unix seconds, a multiple of `Timekey`), when `time` is a
    /// chunk key.
    pub time: Option<i64>,
    /// `(name, value)` of each field chunk key, in the order of `ChunkKeys` (an absent field
    /// has an empty value).
    pub fields: Vec<(Arc<str>, Bytes)>,
}

impl ChunkKey {
    /// The value of placeholder `name` (`tag` or a field chunk key).
    pub fn value(&self, name: &str) -> Option<&[u8]> {
        if name == "tag" {
            return self.tag.as_deref();
        }
        self.fields
            .iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// A batch of encoded records with the same chunk key, written to the destination as one.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Unique within the buffer (and across restarts for a disk buffer).
    pub id: u64,
    /// The chunk key values.
    pub key: ChunkKey,
    /// The records, encoded by the output's [`Format`] one after another.
    pub body: Bytes,
    /// End offset in `body` of each appended group (the records of one group are never split
    /// across chunks): for an output that sends groups one by one.
    pub ends: Vec<usize>,
    /// Number of records (events) in `body`.
    pub records: usize,
    /// When the chunk was created (unix seconds).
    pub created: i64,
    /// How many times a write of it failed so far.
    pub retries: u32,
}

impl Chunk {
    /// The bytes of each appended group, in order.
    pub fn groups(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let s = &self.body[start..end];
            start = end;
            s
        })
    }
}

/// Handed to [`Output::try_write`]: tells the framework that the destination confirmed the
/// chunk ([`Commit::commit`]) or refused it ([`Commit::rollback`], retried). One that is
/// dropped without either is rolled back; one not answered within `DelayedCommitTimeout` is
/// retried (the first answer after that is ignored).
pub struct Commit {
    done: Option<Answer>,
}

/// What a [`Commit`] calls with the outcome.
type Answer = Box<dyn FnOnce(Result<(), WriteError>) + Send>;

impl Commit {
    /// A commit that calls `f` with the outcome.
    pub fn new(f: impl FnOnce(Result<(), WriteError>) + Send + 'static) -> Self {
        Self {
            done: Some(Box::new(f)),
        }
    }

    /// The destination confirmed the chunk.
    pub fn commit(mut self) {
        if let Some(f) = self.done.take() {
            f(Ok(()));
        }
    }

    /// The destination refused the chunk.
    pub fn rollback(mut self, why: WriteError) {
        if let Some(f) = self.done.take() {
            f(Err(why));
        }
    }
}

impl Drop for Commit {
    fn drop(&mut self) {
        if let Some(f) = self.done.take() {
            f(Err(WriteError::retry(
                "the output dropped the chunk unanswered",
            )));
        }
    }
}

impl fmt::Debug for Commit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Commit")
    }
}

/// A destination that chunks are written to. Each flush thread has its own instance, built
/// by the plugin's factory, so `write` may block (bounded by the output's own timeouts).
pub trait Output: Send {
    /// How groups are encoded into chunk bodies.
    fn format(&self) -> Format;

    /// Writes one chunk (sync buffered mode; non-buffered mode writes each group's chunk at
    /// once and does not retry).
    ///
    /// # Errors
    /// See [`WriteError`].
    fn write(&mut self, chunk: &Chunk) -> Result<(), WriteError>;

    /// Starts writing one chunk whose delivery the destination confirms later (async
    /// buffered mode with delayed commit): `commit` is answered once it does. The default
    /// writes synchronously and commits.
    ///
    /// # Errors
    /// See [`WriteError`]; an error here is the same as a rollback.
    fn try_write(&mut self, chunk: &Chunk, commit: Commit) -> Result<(), WriteError> {
        self.write(chunk)?;
        commit.commit();
        Ok(())
    }

    /// Whether this output confirms later (then `Mode` defaults to `async`).
    fn delayed_commit(&self) -> bool {
        false
    }

    /// The default `MaxInFlight`: chunks written and awaiting confirmation (async mode).
    fn max_in_flight(&self) -> usize {
        16
    }

    /// Chunk keys this output needs whatever `Buffer.ChunkKeys` says (`tag` for a protocol
    /// that sends one tag per message, the fields of a topic template or a partition key):
    /// added after the configured ones. `time` is not allowed here (it needs `Timekey`).
    fn chunk_keys(&self) -> Vec<String> {
        Vec::new()
    }

    /// The largest chunk (bytes) the destination takes as one message, when it has a limit
    /// (Fluent Bit's `forward` input: 6 MB by default): `Buffer.ChunkLimitSize` defaults to
    /// it instead of 8 MiB; a configured `ChunkLimitSize` stays as given.
    fn max_chunk_bytes(&self) -> Option<usize> {
        None
    }
}
