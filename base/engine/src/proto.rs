//! `sls_logs.proto` (proto2): the `LogGroup` carried by SendPb and `ProcessLog[Group]`.
//!
//! The prost messages describe the format (and are what tools decode with); the hot paths use
//! [`decode_log_group`] / [`decode_log`], which slice the input buffer instead of copying every
//! string, and [`encode_log_group`], which writes our event model straight to the wire.

use crate::event::{EventGroup, LogEvent};
use bytes::Bytes;
use std::fmt;

pub use wire::sls::{Content, Log, LogGroup, LogTag};

/// Why bytes could not be decoded as a protobuf message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(&'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed protobuf: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// A cursor over one message's bytes that hands out zero-copy slices.
struct Reader<'a> {
    buf: &'a Bytes,
    /// `buf[..end]`.
    data: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a Bytes, start: usize, end: usize) -> Self {
        Self {
            buf,
            data: &buf[..end],
            pos: start,
            end,
        }
    }

    /// The next byte, if any, without consuming it.
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn done(&self) -> bool {
        self.pos >= self.end
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        // Tags fit in one byte, and the lengths of most values and logs in two.
        let data = self.data;
        match data.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            Some(&b) => match data.get(self.pos + 1) {
                Some(&c) if c < 0x80 => {
                    self.pos += 2;
                    Ok(u64::from(b & 0x7f) | u64::from(c) << 7)
                }
                _ => self.varint_slow(),
            },
            None => Err(DecodeError("truncated varint")),
        }
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, DecodeError> {
        let data = self.data;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *data.get(self.pos).ok_or(DecodeError("truncated varint"))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError("varint longer than 10 bytes"))
    }

    #[inline(always)]
    fn key(&mut self) -> Result<(u64, u8), DecodeError> {
        let key = self.varint()?;
        let wire = (key & 7) as u8;
        let field = key >> 3;
        if field == 0 {
            return Err(DecodeError("field number 0"));
        }
        Ok((field, wire))
    }

    /// Reads a length-delimited field's (start, end) range.
    #[inline(always)]
    fn len_range(&mut self) -> Result<(usize, usize), DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError("length overflow"))?;
        let start = self.pos;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.end)
            .ok_or(DecodeError("length past end of message"))?;
        self.pos = end;
        Ok((start, end))
    }

    #[inline(always)]
    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let (s, e) = self.len_range()?;
        Ok(self.buf.slice(s..e))
    }

    #[inline(always)]
    fn fixed32(&mut self) -> Result<u32, DecodeError> {
        let end = self.pos + 4;
        if end > self.end {
            return Err(DecodeError("truncated fixed32"));
        }
        let v = u32::from_le_bytes(self.buf[self.pos..end].try_into().expect("4 bytes"));
        self.pos = end;
        Ok(v)
    }

    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => {
                if self.pos + 8 > self.end {
                    return Err(DecodeError("truncated fixed64"));
                }
                self.pos += 8;
                Ok(())
            }
            WIRE_LEN => self.len_range().map(drop),
            WIRE_FIXED32 => self.fixed32().map(drop),
            _ => Err(DecodeError("unsupported wire type")),
        }
    }

    #[inline(always)]
    fn expect(&self, wire: u8, want: u8) -> Result<(), DecodeError> {
        if wire == want {
            Ok(())
        } else {
            Err(DecodeError("unexpected wire type for field"))
        }
    }
}

/// Decodes a `Content`/`LogTag` (only checks it with `SKIP`); the flag says whether it had
/// exactly one key and one value and nothing else (so copying its bytes is the same as
/// encoding the pair again).
#[inline(always)]
fn decode_pair<const SKIP: bool>(
    buf: &Bytes,
    start: usize,
    end: usize,
) -> Result<((Bytes, Bytes), bool), DecodeError> {
    let mut r = Reader::new(buf, start, end);
    // The usual shape, checked first: the key (field 1), the value (field 2), nothing else.
    // Whatever fails here fails the same way below.
    if r.peek() == Some((1 << 3) | WIRE_LEN) {
        r.pos += 1;
        let (ks, ke) = r.len_range()?;
        if r.peek() == Some((2 << 3) | WIRE_LEN) {
            r.pos += 1;
            let (vs, ve) = r.len_range()?;
            if r.done() {
                let pair = if SKIP {
                    (Bytes::new(), Bytes::new())
                } else {
                    (buf.slice(ks..ke), buf.slice(vs..ve))
                };
                return Ok((pair, true));
            }
        }
        r.pos = start;
    }
    let (mut key, mut value) = (Bytes::new(), Bytes::new());
    let (mut keys, mut values, mut other) = (0u32, 0u32, false);
    while !r.done() {
        match r.key()? {
            (1, w) => {
                r.expect(w, WIRE_LEN)?;
                if SKIP {
                    r.len_range()?;
                } else {
                    key = r.bytes()?;
                }
                keys += 1;
            }
            (2, w) => {
                r.expect(w, WIRE_LEN)?;
                if SKIP {
                    r.len_range()?;
                } else {
                    value = r.bytes()?;
                }
                values += 1;
            }
            (_, w) => {
                r.skip(w)?;
                other = true;
            }
        }
    }
    if keys == 0 || values == 0 {
        // proto2 `required`: the original's decoder refuses such a message too.
        return Err(DecodeError(
            "a Content or LogTag without its required Key or Value",
        ));
    }
    Ok(((key, value), keys == 1 && values == 1 && !other))
}

/// Decodes one `Log` from `buf[start..end]`.
///
/// The event keeps the log's bytes in `encoded` when they are exactly what
/// [`encode_log_group`] would write for it, up to the lengths' encoding: one time that fits in
/// 32 bits first, then complete contents, then at most one time_ns, nothing else. With `LAZY`
/// such a log is only checked, not decoded: its contents stay in `encoded` (`pending`).
fn decode_log_range<const LAZY: bool>(
    buf: &Bytes,
    start: usize,
    end: usize,
) -> Result<LogEvent, DecodeError> {
    const TIME: u8 = 1;
    const CONTENTS: u8 = 2;
    const AFTER_NS: u8 = 3;
    let mut r = Reader::new(buf, start, end);
    let mut log = LogEvent::default();
    let (mut at, mut same, mut has_time) = (0u8, true, false);
    while !r.done() {
        let field_start = r.pos;
        match r.key()? {
            (1, w) => {
                r.expect(w, WIRE_VARINT)?;
                has_time = true;
                let t = r.varint()?;
                same &= at == 0 && t <= u64::from(u32::MAX);
                at = TIME;
                log.time = t as u32;
            }
            (2, w) => {
                r.expect(w, WIRE_LEN)?;
                let (s, e) = r.len_range()?;
                let (pair, complete) = decode_pair::<LAZY>(buf, s, e)?;
                same &= complete && (at == TIME || at == CONTENTS);
                at = at.max(CONTENTS);
                if !LAZY {
                    log.contents.push(pair);
                }
            }
            (4, w) => {
                r.expect(w, WIRE_FIXED32)?;
                log.time_ns = Some(r.fixed32()?);
                // A pass-through without time_ns cuts off the last 5 bytes: a key written in
                // more than one byte (valid, not canonical) would leave some of it behind.
                same &= (at == TIME || at == CONTENTS) && r.pos - field_start == 5;
                at = AFTER_NS;
            }
            (_, w) => {
                r.skip(w)?;
                same = false;
            }
        }
    }
    if !has_time {
        // proto2 `required`, as above.
        return Err(DecodeError("a Log without its required Time"));
    }
    same &= at != 0;
    if LAZY && !same {
        // Valid, but not sent as it is: decode it for real.
        return decode_log_range::<false>(buf, start, end);
    }
    if same {
        log.encoded = Some(buf.slice(start..end));
        log.pending = LAZY;
    }
    Ok(log)
}

/// Appends the contents of an encoded `Log` the lazy decoder already checked.
pub(crate) fn decode_contents_into(raw: &Bytes, out: &mut Vec<(Bytes, Bytes)>) {
    match decode_log_range::<false>(raw, 0, raw.len()) {
        Ok(log) => out.extend(log.contents),
        Err(e) => debug_assert!(false, "a checked log failed to decode: {e}"),
    }
}

pub fn decode_log(buf: &Bytes) -> Result<LogEvent, DecodeError> {
    decode_log_range::<false>(buf, 0, buf.len())
}

/// Decodes a serialized `LogGroup` into an [`EventGroup`], slicing `buf`.
///
/// `Category` and `Source` are not kept: the pipeline sets its own on the way out.
///
/// # Errors
/// Returns [`DecodeError`] for malformed protobuf.
pub fn decode_log_group(buf: &Bytes) -> Result<EventGroup, DecodeError> {
    decode_group::<false>(buf)
}

/// Like [`decode_log_group`], but the contents of logs that can be sent on unchanged are only
/// checked, not decoded (see [`LogEvent::decode_contents`]): for pipelines without processors.
///
/// # Errors
/// The same as [`decode_log_group`]: every byte is checked.
pub fn decode_log_group_lazy(buf: &Bytes) -> Result<EventGroup, DecodeError> {
    decode_group::<true>(buf)
}

fn decode_group<const LAZY: bool>(buf: &Bytes) -> Result<EventGroup, DecodeError> {
    let mut events = Vec::new();
    let head = walk_group::<LAZY>(buf, |log| events.push(log))?;
    Ok(EventGroup {
        events,
        tags: head.tags,
        topic: head.topic,
        ..EventGroup::default()
    })
}

/// Checks every byte of a `LogGroup`, handing each decoded log to `on_log`; returns the rest.
fn walk_group<const LAZY: bool>(
    buf: &Bytes,
    mut on_log: impl FnMut(LogEvent),
) -> Result<GroupHead, DecodeError> {
    let mut r = Reader::new(buf, 0, buf.len());
    let mut head = GroupHead::default();
    while !r.done() {
        match r.key()? {
            (1, w) => {
                r.expect(w, WIRE_LEN)?;
                let (s, e) = r.len_range()?;
                on_log(decode_log_range::<LAZY>(buf, s, e)?);
                head.logs += 1;
            }
            (3, w) => {
                r.expect(w, WIRE_LEN)?;
                head.topic = r.bytes()?;
            }
            (6, w) => {
                r.expect(w, WIRE_LEN)?;
                let (s, e) = r.len_range()?;
                head.tags.push(decode_pair::<false>(buf, s, e)?.0);
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(head)
}

/// What [`check_log_group`] keeps of a `LogGroup`: everything but its logs.
#[derive(Debug, Clone, Default)]
pub struct GroupHead {
    /// `Topic` (empty when none).
    pub topic: Bytes,
    /// `LogTags`, in order.
    pub tags: Vec<(Bytes, Bytes)>,
    /// Number of logs.
    pub logs: usize,
}

/// Checks every byte of a serialized `LogGroup` exactly as [`decode_log_group_lazy`] does,
/// keeping only its topic, tags and log count (nothing per log): for groups too large to
/// hold decoded at once, which are then decoded piece by piece with [`log_chunks`].
///
/// # Errors
/// The same as [`decode_log_group`].
pub fn check_log_group(buf: &Bytes) -> Result<GroupHead, DecodeError> {
    walk_group::<true>(buf, drop)
}

/// The logs of a `LogGroup` that [`check_log_group`] accepted, at most `max` at a time, decoded
/// as [`decode_log_group_lazy`] does (a log that fails here, impossible after the check, ends
/// the chunks early).
pub fn log_chunks(buf: Bytes, max: usize) -> LogChunks {
    LogChunks {
        buf,
        pos: 0,
        max: max.max(1),
    }
}

/// Iterator of [`log_chunks`].
#[derive(Debug)]
pub struct LogChunks {
    buf: Bytes,
    pos: usize,
    max: usize,
}

impl Iterator for LogChunks {
    type Item = Vec<LogEvent>;

    fn next(&mut self) -> Option<Vec<LogEvent>> {
        let buf = &self.buf;
        let mut r = Reader::new(buf, self.pos, buf.len());
        let mut chunk = Vec::with_capacity(self.max);
        while chunk.len() < self.max && !r.done() {
            let Ok((field, w)) = r.key() else {
                r.pos = r.end;
                break;
            };
            let next = if field == 1 && w == WIRE_LEN {
                r.len_range()
                    .and_then(|(s, e)| decode_log_range::<true>(buf, s, e))
                    .map(Some)
            } else {
                r.skip(w).map(|()| None)
            };
            match next {
                Ok(Some(log)) => chunk.push(log),
                Ok(None) => {}
                Err(_) => {
                    r.pos = r.end;
                    break;
                }
            }
        }
        self.pos = r.pos;
        (!chunk.is_empty()).then_some(chunk)
    }
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn put_bytes_field(out: &mut Vec<u8>, tag: u8, data: &[u8]) {
    out.push((tag << 3) | WIRE_LEN);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn pair_len(k: &[u8], v: &[u8]) -> usize {
    bytes_field_len(k.len()) + bytes_field_len(v.len())
}

fn put_pair(out: &mut Vec<u8>, tag: u8, k: &[u8], v: &[u8]) {
    out.push((tag << 3) | WIRE_LEN);
    put_varint(out, pair_len(k, v) as u64);
    put_bytes_field(out, 1, k);
    put_bytes_field(out, 2, v);
}

/// Appends the encoding of one log (`Time`, then `contents` in order, no `Time_ns`) exactly as
/// [`encode_log_group`] writes it, without the length prefix: what an input that produces
/// logs ready to send puts in [`LogEvent::encoded`] (see [`LogEvent::from_encoded`]).
pub(crate) fn encode_log(out: &mut Vec<u8>, time: u32, contents: &[(&[u8], &[u8])]) {
    out.push(1 << 3);
    put_varint(out, u64::from(time));
    for (k, v) in contents {
        put_pair(out, 2, k, v);
    }
}

/// The original encoding of `log`, when it can be sent as it is. Its time_ns is the last
/// field (see [`decode_log_range`]), so a flusher that leaves time_ns out cuts it off.
#[inline(always)]
fn passthrough(log: &LogEvent, with_time_ns: bool) -> Option<&[u8]> {
    let raw = log.encoded.as_ref()?;
    match log.time_ns {
        Some(_) if !with_time_ns => raw.get(..raw.len().saturating_sub(5)),
        _ => Some(raw),
    }
}

fn log_len(log: &LogEvent, with_time_ns: bool) -> usize {
    if let Some(raw) = passthrough(log, with_time_ns) {
        return raw.len();
    }
    let mut n = 1 + varint_len(u64::from(log.time));
    for (k, v) in &log.contents {
        let p = pair_len(k, v);
        n += 1 + varint_len(p as u64) + p;
    }
    if with_time_ns && log.time_ns.is_some() {
        n += 5;
    }
    n
}

/// What a flusher stamps on a group it sends.
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupHeader<'a> {
    /// `Category`: the logstore.
    pub category: &'a str,
    /// `Source`: the host IP.
    pub source: &'a str,
    /// Whether to write `Time_ns`.
    pub with_time_ns: bool,
}

/// Serializes `group` as a `LogGroup`, appending to `out`.
///
/// `Topic` is written when the group has one; tags are written in order (an aggregated group's
/// last tag is `__pack_id__`).
pub fn encode_log_group(out: &mut Vec<u8>, group: &EventGroup, header: &GroupHeader<'_>) {
    // Each log's size is needed twice (for the reservation and its length prefix): once.
    let lens: Vec<usize> = group
        .events
        .iter()
        .map(|l| log_len(l, header.with_time_ns))
        .collect();
    let total: usize = lens.iter().map(|&n| bytes_field_len(n)).sum();
    out.reserve(
        total
            + 64
            + group
                .tags
                .iter()
                .map(|(k, v)| k.len() + v.len() + 8)
                .sum::<usize>(),
    );
    for (log, &len) in group.events.iter().zip(&lens) {
        out.push((1 << 3) | WIRE_LEN);
        put_varint(out, len as u64);
        if let Some(raw) = passthrough(log, header.with_time_ns) {
            out.extend_from_slice(raw);
            continue;
        }
        out.push(1 << 3);
        put_varint(out, u64::from(log.time));
        for (k, v) in &log.contents {
            put_pair(out, 2, k, v);
        }
        if let (true, Some(ns)) = (header.with_time_ns, log.time_ns) {
            out.push((4 << 3) | WIRE_FIXED32);
            out.extend_from_slice(&ns.to_le_bytes());
        }
    }
    if !header.category.is_empty() {
        put_bytes_field(out, 2, header.category.as_bytes());
    }
    if !group.topic.is_empty() {
        put_bytes_field(out, 3, &group.topic);
    }
    if !header.source.is_empty() {
        put_bytes_field(out, 4, header.source.as_bytes());
    }
    for (k, v) in &group.tags {
        put_pair(out, 6, k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn logs_encoded_by_an_input_are_sent_as_they_are_and_decode_to_their_contents() {
        let mut raw = Vec::new();
        encode_log(
            &mut raw,
            1_700_000_000,
            &[(b"content", b"hello"), (b"k", b"v")],
        );
        let mut e = LogEvent::from_encoded(1_700_000_000, Bytes::from(raw));
        let group = EventGroup {
            events: vec![e.clone()],
            ..EventGroup::default()
        };
        let mut out = Vec::new();
        encode_log_group(&mut out, &group, &GroupHeader::default());
        let back = LogGroup::decode(out.as_slice()).unwrap();
        assert_eq!(back.logs[0].time, 1_700_000_000);
        assert_eq!(back.logs[0].contents[1].value, "v");
        e.decode_contents();
        assert_eq!(e.get(b"content").map(|v| v.as_ref()), Some(&b"hello"[..]));
    }

    #[test]
    fn a_time_ns_key_written_in_two_bytes_is_re_encoded_not_cut() {
        // Found by fuzzing: Time (12), then Time_ns under the key 0x25 written as `a5 00`.
        let input = Bytes::from_static(&[10, 8, 8, 12, 0xa5, 0, 0, 0xcd, 0, 38]);
        let group = decode_log_group(&input).unwrap();
        assert_eq!(group.events[0].time, 12);
        assert!(group.events[0].encoded.is_none(), "kept for pass-through");
        let mut out = Vec::new();
        encode_log_group(&mut out, &group, &GroupHeader::default());
        let back = decode_log_group(&Bytes::from(out)).unwrap();
        assert_eq!(back.events[0].time, 12);
        assert_eq!(back.events[0].time_ns, None);
    }

    fn sample() -> LogGroup {
        LogGroup {
            logs: vec![
                Log {
                    time: 1_700_000_000,
                    contents: vec![
                        Content {
                            key: "content".into(),
                            value: "GET / 200".into(),
                        },
                        Content {
                            key: "empty".into(),
                            value: String::new(),
                        },
                    ],
                    values: vec![],
                    time_ns: Some(123),
                },
                Log {
                    time: 5,
                    contents: vec![],
                    values: vec![],
                    time_ns: None,
                },
            ],
            category: Some("store".into()),
            topic: Some("t".into()),
            source: Some("1.2.3.4".into()),
            machine_uuid: None,
            log_tags: vec![LogTag {
                key: "__pack_id__".into(),
                value: "ABC-1".into(),
            }],
        }
    }

    #[test]
    fn zero_copy_decode_matches_prost() {
        let bytes = Bytes::from(sample().encode_to_vec());
        let g = decode_log_group(&bytes).unwrap();
        assert_eq!(g.events.len(), 2);
        assert_eq!(g.events[0].time, 1_700_000_000);
        assert_eq!(g.events[0].time_ns, Some(123));
        assert_eq!(g.events[0].get(b"content").unwrap().as_ref(), b"GET / 200");
        assert_eq!(g.topic.as_ref(), b"t");
        assert_eq!(g.tags[0].1.as_ref(), b"ABC-1");
    }

    #[test]
    fn encode_roundtrips_through_prost() {
        let bytes = Bytes::from(sample().encode_to_vec());
        let g = decode_log_group(&bytes).unwrap();
        let mut out = Vec::new();
        encode_log_group(
            &mut out,
            &g,
            &GroupHeader {
                category: "store",
                source: "1.2.3.4",
                with_time_ns: true,
            },
        );
        let back = LogGroup::decode(out.as_slice()).unwrap();
        assert_eq!(back, sample());
        out.clear();
        encode_log_group(&mut out, &g, &GroupHeader::default());
        let back = LogGroup::decode(out.as_slice()).unwrap();
        assert_eq!(back.logs[0].time_ns, None);
        assert_eq!(back.category, None);
    }

    /// Hand-written `Log` messages: (bytes, whether they can be sent on as they are).
    fn odd_logs() -> Vec<(Vec<u8>, bool)> {
        let content = |k: &[u8], v: &[u8]| {
            let mut c = Vec::new();
            put_bytes_field(&mut c, 1, k);
            put_bytes_field(&mut c, 2, v);
            let mut out = vec![0x12, c.len() as u8];
            out.extend(c);
            out
        };
        let time = vec![0x08, 0x05];
        let ns = vec![0x25, 1, 0, 0, 0];
        let cat = |parts: &[&[u8]]| parts.concat();
        vec![
            (
                cat(&[&time, &content(b"a", b"1"), &content(b"b", b"")]),
                true,
            ),
            (cat(&[&time, &content(b"a", b"1"), &ns]), true),
            (cat(&[&time]), true),
            // Contents before the time, time_ns before contents, twice a time: order differs.
            (cat(&[&content(b"a", b"1"), &time]), false),
            (cat(&[&time, &ns, &content(b"a", b"1")]), false),
            (cat(&[&time, &time]), false),
            // The deprecated `Values` field, a time over 32 bits.
            (cat(&[&time, &[0x1a, 0x01, b'v']]), false),
            (vec![0x08, 0x80, 0x80, 0x80, 0x80, 0x10], false),
        ]
    }

    #[test]
    fn a_checked_group_decodes_in_chunks_as_in_one_piece() {
        let mut g = sample();
        for i in 0..10 {
            g.logs.push(Log {
                time: 100 + i,
                contents: vec![Content {
                    key: "i".into(),
                    value: i.to_string(),
                }],
                values: vec![],
                time_ns: (i % 2 == 0).then_some(i),
            });
        }
        let buf = Bytes::from(g.encode_to_vec());
        let whole = decode_log_group_lazy(&buf).unwrap();
        let head = check_log_group(&buf).unwrap();
        assert_eq!(head.logs, whole.len());
        assert_eq!(
            (head.topic.clone(), head.tags.clone()),
            (whole.topic.clone(), whole.tags.clone())
        );
        let chunks: Vec<Vec<LogEvent>> = log_chunks(buf.clone(), 3).collect();
        assert!(chunks.iter().all(|c| c.len() <= 3));
        assert_eq!(chunks.concat(), whole.events);
        // What fails the whole decode fails the check too.
        let mut cut = buf.to_vec();
        cut.truncate(cut.len() - 3);
        assert!(check_log_group(&Bytes::from(cut)).is_err());
    }

    #[test]
    fn required_fields_must_be_present_as_in_the_original() {
        let content = |c: &[u8]| {
            let mut out = vec![0x12, c.len() as u8];
            out.extend(c);
            out
        };
        let time = [0x08, 0x05];
        let bad: [Vec<u8>; 4] = [
            // No time at all.
            content(&[0x0a, 0x01, b'k', 0x12, 0x01, b'v']),
            // A content without a value, one without a key.
            [&time[..], &content(&[0x0a, 0x01, b'k'])].concat(),
            [&time[..], &content(&[0x12, 0x01, b'v'])].concat(),
            // An empty content.
            [&time[..], &content(&[])].concat(),
        ];
        for log in &bad {
            let buf = group_of(log);
            assert!(decode_log_group(&buf).is_err(), "{log:x?}");
            assert!(decode_log_group_lazy(&buf).is_err(), "{log:x?}");
            assert!(
                decode_log(&Bytes::copy_from_slice(log)).is_err(),
                "{log:x?}"
            );
        }
        // A tag without its value.
        let mut g = Vec::new();
        put_bytes_field(&mut g, 1, &time);
        g.extend_from_slice(&[0x32, 0x03, 0x0a, 0x01, b'k']);
        let g = Bytes::from(g);
        assert!(decode_log_group(&g).is_err());
        assert!(decode_log_group_lazy(&g).is_err());
    }

    fn group_of(log: &[u8]) -> Bytes {
        let mut g = Vec::new();
        put_bytes_field(&mut g, 1, log);
        put_bytes_field(&mut g, 3, b"topic");
        Bytes::from(g)
    }

    #[test]
    fn lazy_decode_sends_the_same_logs_as_a_full_decode() {
        for (log, same) in odd_logs() {
            let buf = group_of(&log);
            let eager = decode_log_group(&buf).unwrap();
            let lazy = decode_log_group_lazy(&buf).unwrap();
            assert_eq!(lazy.events[0].is_pending(), same, "{log:x?}");
            assert_eq!(eager.events[0].encoded.is_some(), same, "{log:x?}");
            assert_eq!(lazy, eager, "{log:x?}");
            for with_time_ns in [true, false] {
                let header = GroupHeader {
                    with_time_ns,
                    ..GroupHeader::default()
                };
                let mut fresh = eager.clone();
                fresh.events.iter_mut().for_each(LogEvent::touch);
                let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
                encode_log_group(&mut a, &lazy, &header);
                encode_log_group(&mut b, &eager, &header);
                encode_log_group(&mut c, &fresh, &header);
                let decoded = LogGroup::decode(c.as_slice()).unwrap();
                assert_eq!(LogGroup::decode(a.as_slice()).unwrap(), decoded, "{log:x?}");
                assert_eq!(LogGroup::decode(b.as_slice()).unwrap(), decoded, "{log:x?}");
                if same {
                    // Byte for byte what encoding the decoded log writes.
                    assert_eq!(a, c, "{log:x?}");
                }
                assert!(with_time_ns || decoded.logs[0].time_ns.is_none());
            }
        }
    }

    #[test]
    fn lazy_events_decode_on_demand_and_forget_their_bytes_when_changed() {
        let bytes = Bytes::from(sample().encode_to_vec());
        let mut g = decode_log_group_lazy(&bytes).unwrap();
        assert!(g.events.iter().all(LogEvent::is_pending));
        assert!(g.events[0].contents.is_empty());
        assert_eq!(
            g.events[0].byte_size(),
            g.events[0].encoded.as_ref().unwrap().len() + 4
        );
        g.decode_contents();
        assert!(!g.events.iter().any(LogEvent::is_pending));
        assert_eq!(g.events[0].get(b"content").unwrap().as_ref(), b"GET / 200");
        assert!(g.events[0].encoded.is_some());
        g.events[0].set(Bytes::from_static(b"x"), Bytes::from_static(b"y"));
        assert!(g.events[0].encoded.is_none());
        let mut out = Vec::new();
        encode_log_group(&mut out, &g, &GroupHeader::default());
        let back = LogGroup::decode(out.as_slice()).unwrap();
        assert_eq!(back.logs[0].contents.len(), 3);
        assert_eq!(back.logs[0].contents[2].key, "x");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let full = sample().encode_to_vec();
        for cut in 0..full.len() {
            let cut = Bytes::copy_from_slice(&full[..cut]);
            // Checking without decoding rejects exactly what decoding rejects.
            assert_eq!(
                decode_log_group(&cut).is_ok(),
                decode_log_group_lazy(&cut).is_ok()
            );
        }
        for bad in [
            &[0xffu8; 12][..],
            &[0x0a, 0x7f, 1][..],
            &[0x00][..],
            &[0x0b][..],
        ] {
            assert!(decode_log_group(&Bytes::copy_from_slice(bad)).is_err());
            assert!(decode_log_group_lazy(&Bytes::copy_from_slice(bad)).is_err());
        }
        assert!(decode_log(&Bytes::from_static(&[0x12, 0x05, 0x0a])).is_err());
        // A well-framed log whose content is broken inside is rejected without decoding too.
        let inner = group_of(&[0x08, 0x05, 0x12, 0x02, 0x0a, 0x05]);
        assert!(decode_log_group(&inner).is_err());
        assert!(decode_log_group_lazy(&inner).is_err());
    }

    #[test]
    fn varint_len_is_exact() {
        for v in [
            0u64,
            1,
            127,
            128,
            16383,
            16384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }
}
