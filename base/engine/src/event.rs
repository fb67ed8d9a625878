//! The data model: log events moving through a pipeline in groups.
//!
//! Keys and values are [`Bytes`]: a value parsed out of a host buffer is a slice of that
//! buffer (a reference count, no copy), and a value a plugin creates owns its bytes.

use bytes::Bytes;

/// One log: a timestamp and ordered key/value contents.
#[derive(Clone, Debug, Default)]
pub struct LogEvent {
    /// Seconds since the Unix epoch.
    pub time: u32,
    /// Nanoseconds within the second, when known.
    pub time_ns: Option<u32>,
    /// Ordered contents; keys are unique when set through [`LogEvent::set`].
    pub contents: Vec<(Bytes, Bytes)>,
    /// The log's protobuf encoding exactly as the host sent it, while the event is unchanged:
    /// the flusher then copies these bytes instead of encoding the contents again. Only the
    /// decoder sets it (for encodings equal to what [`crate::proto::encode_log_group`] writes),
    /// and the pipeline clears it before any processor sees the event; code that changes an
    /// event outside a processor must call [`LogEvent::touch`].
    pub encoded: Option<Bytes>,
    /// The contents are not decoded yet: they are only in `encoded`. Set by
    /// [`crate::proto::decode_log_group_lazy`] for pipelines that send logs on unchanged; the
    /// pipeline calls [`LogEvent::decode_contents`] before anything that reads them.
    pub(crate) pending: bool,
}

/// Events are equal when their time and contents are; `encoded` is a cache of the same data.
impl PartialEq for LogEvent {
    fn eq(&self, other: &Self) -> bool {
        let contents = |e: &Self| {
            let mut e = e.clone();
            e.decode_contents();
            e.contents
        };
        self.time == other.time
            && self.time_ns == other.time_ns
            && if self.pending || other.pending {
                contents(self) == contents(other)
            } else {
                self.contents == other.contents
            }
    }
}

impl Eq for LogEvent {}

impl LogEvent {
    /// An empty event stamped with `time`.
    pub fn new(time: u32) -> Self {
        Self {
            time,
            ..Self::default()
        }
    }

    /// An event whose contents are only in `raw`, a log encoded by
    /// [`crate::proto::encode_log`]: sent as it is, decoded when something reads it.
    pub(crate) fn from_encoded(time: u32, raw: Bytes) -> Self {
        Self {
            time,
            time_ns: None,
            contents: Vec::new(),
            encoded: Some(raw),
            pending: true,
        }
    }

    /// Forgets the original encoding (decoding the contents first): the event is about to
    /// change.
    pub fn touch(&mut self) {
        self.decode_contents();
        self.encoded = None;
    }

    /// Whether the contents are still only in `encoded`.
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// Decodes contents left in `encoded` by the lazy decoder (a no-op otherwise).
    pub fn decode_contents(&mut self) {
        if std::mem::take(&mut self.pending) {
            if let Some(raw) = &self.encoded {
                crate::proto::decode_contents_into(raw, &mut self.contents);
            }
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        debug_assert!(!self.pending, "contents read before decode_contents");
        self.contents
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`, replacing an existing value in place.
    pub fn set(&mut self, key: Bytes, value: Bytes) {
        self.touch();
        match self.contents.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.contents.push((key, value)),
        }
    }

    /// Removes every content named `key`; returns the first removed value.
    pub fn remove(&mut self, key: &[u8]) -> Option<Bytes> {
        self.touch();
        let mut removed = None;
        self.contents.retain(|(k, v)| {
            if k.as_ref() == key {
                removed.get_or_insert_with(|| v.clone());
                false
            } else {
                true
            }
        });
        removed
    }

    /// Approximate serialized size in bytes (used for group size limits).
    pub fn byte_size(&self) -> usize {
        if let (true, Some(raw)) = (self.pending, &self.encoded) {
            return raw.len() + 4;
        }
        self.contents
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>()
            + 12
    }
}

/// A batch of events that share tags, topic and source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventGroup {
    /// The events, in arrival order.
    pub events: Vec<LogEvent>,
    /// Group tags (`LogTag`s); an aggregated group ends with `__pack_id__`.
    pub tags: Vec<(Bytes, Bytes)>,
    /// Topic of the group (empty when none).
    pub topic: Bytes,
    /// Where the events came from (an input plugin, or the host's pack id prefix);
    /// aggregators keep one pack-id sequence per source.
    pub source: Bytes,
    /// Acknowledgements of the inputs that produced these events (see [`crate::ack`]).
    pub acks: Vec<crate::ack::Ack>,
}

impl EventGroup {
    /// An empty group from `source`.
    pub fn new(source: Bytes) -> Self {
        Self {
            source,
            ..Self::default()
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the group has no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Approximate serialized size of the events (see [`LogEvent::byte_size`]).
    pub fn byte_size(&self) -> usize {
        self.events.iter().map(LogEvent::byte_size).sum()
    }

    /// Decodes the contents of every event the lazy decoder left encoded.
    pub fn decode_contents(&mut self) {
        self.events.iter_mut().for_each(LogEvent::decode_contents);
    }

    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &[u8]) -> Option<&Bytes> {
        self.tags
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| v)
    }
}

/// `Bytes` for text written in a config (a field name, a value to add): shared without a
/// reference count. Every event a processor touches carries such names; as ordinary `Bytes`
/// each clone and drop would update one counter, from the processing thread and the flush
/// thread at once (about 15 % of the nginx-regex scenario went to that contention).
///
/// Each distinct text is kept for the life of the process (reloading a config with the same
/// names reuses them), at most [`CONFIG_TEXT_LIMIT`] bytes in all; past that, an ordinary copy.
pub fn config_text(text: &[u8]) -> Bytes {
    use std::collections::HashSet;
    use std::sync::Mutex;
    /// The kept texts and their total size.
    type Kept = (HashSet<&'static [u8]>, usize);
    static TEXTS: once_cell::sync::Lazy<Mutex<Kept>> = once_cell::sync::Lazy::new(Mutex::default);
    let mut guard = TEXTS.lock().unwrap_or_else(|e| e.into_inner());
    let (texts, total) = &mut *guard;
    if let Some(&kept) = texts.get(text) {
        return Bytes::from_static(kept);
    }
    if *total + text.len() > CONFIG_TEXT_LIMIT {
        return Bytes::copy_from_slice(text);
    }
    let kept: &'static [u8] = Box::leak(text.to_vec().into_boxed_slice());
    texts.insert(kept);
    *total += kept.len();
    Bytes::from_static(kept)
}

/// How many bytes of distinct config text [`config_text`] keeps at most.
pub const CONFIG_TEXT_LIMIT: usize = 1 << 20;

#[cfg(test)]
mod config_text_tests {
    use super::*;

    #[test]
    fn config_text_is_shared_and_bounded() {
        let a = config_text(b"config_text_tests.key");
        let b = config_text(b"config_text_tests.key");
        assert_eq!(a, b);
        assert_eq!(a.as_ptr(), b.as_ptr(), "one kept copy");
        // Past the limit, texts are ordinary copies (and still equal to what was asked).
        let big = vec![b'x'; CONFIG_TEXT_LIMIT + 1];
        let c = config_text(&big);
        assert_eq!(c.as_ref(), &big[..]);
        assert_ne!(c.as_ptr(), config_text(&big).as_ptr());
    }
}

/// Current time as (seconds, nanoseconds) since the Unix epoch.
pub fn now() -> (u32, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as u32, d.subsec_nanos())
}

/// Parses host tags of the form `k1~=~v1^^^k2~=~v2`.
///
/// Pairs without `~=~` are kept with an empty value; empty pairs are skipped.
pub fn parse_tags(raw: &Bytes) -> Vec<(Bytes, Bytes)> {
    const PAIR: &[u8] = b"^^^";
    const KV: &[u8] = b"~=~";
    let mut tags = Vec::new();
    let mut rest = 0usize;
    let data = raw.as_ref();
    while rest <= data.len() {
        let end = find(&data[rest..], PAIR).map_or(data.len(), |i| rest + i);
        let pair = &data[rest..end];
        if !pair.is_empty() {
            match find(pair, KV) {
                Some(i) => tags.push((
                    raw.slice(rest..rest + i),
                    raw.slice(rest + i + KV.len()..end),
                )),
                None => tags.push((raw.slice(rest..end), Bytes::new())),
            }
        }
        rest = end + PAIR.len();
    }
    tags
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_pairs_and_edge_cases() {
        let t = parse_tags(&Bytes::from_static(b"k1~=~v1^^^k2~=~v2"));
        assert_eq!(
            t,
            vec![
                (Bytes::from_static(b"k1"), Bytes::from_static(b"v1")),
                (Bytes::from_static(b"k2"), Bytes::from_static(b"v2"))
            ]
        );
        assert!(parse_tags(&Bytes::new()).is_empty());
        let t = parse_tags(&Bytes::from_static(b"^^^a^^^b~=~^^^"));
        assert_eq!(t.len(), 2);
        assert_eq!(t[0], (Bytes::from_static(b"a"), Bytes::new()));
        assert_eq!(t[1], (Bytes::from_static(b"b"), Bytes::new()));
    }

    #[test]
    fn set_replaces_and_remove_removes_all() {
        let mut e = LogEvent::new(1);
        e.set(Bytes::from_static(b"a"), Bytes::from_static(b"1"));
        e.set(Bytes::from_static(b"a"), Bytes::from_static(b"2"));
        assert_eq!(e.contents.len(), 1);
        assert_eq!(e.get(b"a").unwrap().as_ref(), b"2");
        e.contents
            .push((Bytes::from_static(b"a"), Bytes::from_static(b"3")));
        assert_eq!(e.remove(b"a").unwrap().as_ref(), b"2");
        assert!(e.contents.is_empty());
    }
}
