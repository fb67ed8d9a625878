//! `sls_logs.proto` (proto2): the `LogGroup` carried by SendPb and `ProcessLog[Group]`.
//!
//! The prost messages describe the format (and are what tools decode with); the hot paths use
//! [`decode_log_group`] / [`decode_log`], which slice the input buffer instead of copying every
//! string, and [`encode_log_group`], which writes our event model straight to the wire.

use crate::event::{EventGroup, LogEvent};
use bytes::Bytes;
use std::fmt;

/// `message Content { required string Key = 1; required string Value = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Content {
    /// Field name.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Field value.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `message Log`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Log {
    /// Seconds since the epoch.
    #[prost(uint32, required, tag = "1")]
    pub time: u32,
    /// Key/value contents.
    #[prost(message, repeated, tag = "2")]
    pub contents: Vec<Content>,
    /// Values without keys (unused by iLogtail hosts; decoded and ignored by us).
    #[prost(string, repeated, tag = "3")]
    pub values: Vec<String>,
    /// Nanoseconds within the second.
    #[prost(fixed32, optional, tag = "4")]
    pub time_ns: Option<u32>,
}

/// `message LogTag { required string Key = 1; required string Value = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogTag {
    /// Tag name.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Tag value.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `message LogGroup`
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogGroup {
    /// The logs.
    #[prost(message, repeated, tag = "1")]
    pub logs: Vec<Log>,
    /// The logstore.
    #[prost(string, optional, tag = "2")]
    pub category: Option<String>,
    /// Topic.
    #[prost(string, optional, tag = "3")]
    pub topic: Option<String>,
    /// Host IP.
    #[prost(string, optional, tag = "4")]
    pub source: Option<String>,
    /// Machine UUID.
    #[prost(string, optional, tag = "5")]
    pub machine_uuid: Option<String>,
    /// Tags; groups we send end with `__pack_id__`.
    #[prost(message, repeated, tag = "6")]
    pub log_tags: Vec<LogTag>,
}

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
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a Bytes, start: usize, end: usize) -> Self {
        Self {
            buf,
            pos: start,
            end,
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.end
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let data = &self.buf[..self.end];
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

    /// Reads a field key: (field number, wire type).
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

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let (s, e) = self.len_range()?;
        Ok(self.buf.slice(s..e))
    }

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

    fn expect(&self, wire: u8, want: u8) -> Result<(), DecodeError> {
        if wire == want {
            Ok(())
        } else {
            Err(DecodeError("unexpected wire type for field"))
        }
    }
}

fn decode_pair(buf: &Bytes, start: usize, end: usize) -> Result<(Bytes, Bytes), DecodeError> {
    let mut r = Reader::new(buf, start, end);
    let (mut key, mut value) = (Bytes::new(), Bytes::new());
    while !r.done() {
        match r.key()? {
            (1, w) => {
                r.expect(w, WIRE_LEN)?;
                key = r.bytes()?;
            }
            (2, w) => {
                r.expect(w, WIRE_LEN)?;
                value = r.bytes()?;
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((key, value))
}

fn decode_log_range(buf: &Bytes, start: usize, end: usize) -> Result<LogEvent, DecodeError> {
    let mut r = Reader::new(buf, start, end);
    let mut log = LogEvent::default();
    while !r.done() {
        match r.key()? {
            (1, w) => {
                r.expect(w, WIRE_VARINT)?;
                log.time = r.varint()? as u32;
            }
            (2, w) => {
                r.expect(w, WIRE_LEN)?;
                let (s, e) = r.len_range()?;
                log.contents.push(decode_pair(buf, s, e)?);
            }
            (4, w) => {
                r.expect(w, WIRE_FIXED32)?;
                log.time_ns = Some(r.fixed32()?);
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(log)
}

/// Decodes one serialized `Log`, slicing `buf` for keys and values.
///
/// # Errors
/// Returns [`DecodeError`] for malformed protobuf.
pub fn decode_log(buf: &Bytes) -> Result<LogEvent, DecodeError> {
    decode_log_range(buf, 0, buf.len())
}

/// Decodes a serialized `LogGroup` into an [`EventGroup`], slicing `buf`.
///
/// `Category` and `Source` are not kept: the pipeline sets its own on the way out.
///
/// # Errors
/// Returns [`DecodeError`] for malformed protobuf.
pub fn decode_log_group(buf: &Bytes) -> Result<EventGroup, DecodeError> {
    let mut r = Reader::new(buf, 0, buf.len());
    let mut group = EventGroup::default();
    while !r.done() {
        match r.key()? {
            (1, w) => {
                r.expect(w, WIRE_LEN)?;
                let (s, e) = r.len_range()?;
                group.events.push(decode_log_range(buf, s, e)?);
            }
            (3, w) => {
                r.expect(w, WIRE_LEN)?;
                group.topic = r.bytes()?;
            }
            (6, w) => {
                r.expect(w, WIRE_LEN)?;
                let (s, e) = r.len_range()?;
                group.tags.push(decode_pair(buf, s, e)?);
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(group)
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

fn log_len(log: &LogEvent, with_time_ns: bool) -> usize {
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

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let full = sample().encode_to_vec();
        for cut in 0..full.len() {
            let _ = decode_log_group(&Bytes::copy_from_slice(&full[..cut]));
        }
        for bad in [
            &[0xffu8; 12][..],
            &[0x0a, 0x7f, 1][..],
            &[0x00][..],
            &[0x0b][..],
        ] {
            assert!(decode_log_group(&Bytes::copy_from_slice(bad)).is_err());
        }
        assert!(decode_log(&Bytes::from_static(&[0x12, 0x05, 0x0a])).is_err());
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
