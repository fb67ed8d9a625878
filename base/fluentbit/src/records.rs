//! Fluent Bit records (msgpack) to engine events and back.
//!
//! A chunk is msgpack objects one after another, one per record, in either layout:
//! `[[EventTime, {metadata}], {record}]` (current) or `[time, {record}]` (legacy), where the
//! time is an `EventTime` (ext type 0: big-endian u32 seconds, u32 nanoseconds), an unsigned
//! integer or a float. Group markers (current layout, seconds `0xFFFFFFFF` / `0xFFFFFFFE`)
//! are skipped.
//!
//! A record becomes a [`LogEvent`]: each key a content; string values as they are (sliced
//! from the chunk, not copied); numbers, booleans and nil as text; maps and arrays as JSON
//! text; the time exact to the nanosecond.

use bytes::Bytes;
use engine::event::LogEvent;
use rmpv::ValueRef;
use std::io::Write;
use wire::sls::LogGroup;

/// Deepest nesting decoded inside a record (deeper records are not decodable).
pub const MAX_DEPTH: usize = 256;

/// Seconds of the group start and end markers.
const GROUP_START: u32 = 0xFFFF_FFFF;
const GROUP_END: u32 = 0xFFFF_FFFE;

/// Why a chunk cannot be decoded (it never will be: Fluent Bit should drop it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadChunk {
    /// Byte offset of the record that could not be decoded.
    pub offset: usize,
    /// What was wrong.
    pub why: String,
}

impl std::fmt::Display for BadChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record at byte {}: {}", self.offset, self.why)
    }
}

/// What a chunk held.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The records, in order.
    pub events: Vec<LogEvent>,
    /// Group markers skipped.
    pub markers: usize,
}

/// Decodes every record of `chunk`.
///
/// The common shapes (an array of two, a time, a map of strings and scalars) are read in
/// place with no allocation but the event's own; any other value (a nested map or array, an
/// unusual time) is decoded with `rmpv`.
///
/// # Errors
/// [`BadChunk`] when some record is not msgpack of either layout.
pub fn decode(chunk: &Bytes) -> Result<Decoded, BadChunk> {
    let mut out = Decoded::default();
    let mut c = Cursor { chunk, pos: 0 };
    while c.pos < chunk.len() {
        let offset = c.pos;
        let bad = |why: String| BadChunk { offset, why };
        match c.array_len() {
            Some(2) => {}
            Some(n) => return Err(bad(format!("a record is an array of 2, got {n} items"))),
            None => {
                let v = c.value().map_err(bad)?;
                return Err(bad(format!("a record is an array, got {}", kind(&v))));
            }
        }
        // `[EventTime, {metadata}]` or a bare time. Group markers exist only in the current
        // layout: a legacy record whose (float) time rounds to a marker's seconds is a record.
        let current = c
            .peek()
            .is_some_and(|b| matches!(b, 0x90..=0x9f | 0xdc | 0xdd));
        let time = match c.array_len() {
            Some(n) => {
                if n == 0 {
                    return Err(bad("bad record time (an empty array)".into()));
                }
                let t = c.time().map_err(bad)?;
                for _ in 1..n {
                    // Usually the empty metadata map.
                    if c.peek() == Some(0x80) {
                        c.pos += 1;
                    } else {
                        c.value().map_err(bad)?;
                    }
                }
                t
            }
            None => c.time().map_err(bad)?,
        };
        let fields = match c.map_len() {
            Some(n) => n,
            None => {
                let v = c.value().map_err(bad)?;
                return Err(bad(format!("a record body is a map, got {}", kind(&v))));
            }
        };
        if current && (time.0 == GROUP_START || time.0 == GROUP_END) {
            for _ in 0..fields * 2 {
                c.value().map_err(bad)?;
            }
            out.markers += 1;
            continue;
        }
        let mut e = LogEvent::new(time.0);
        e.time_ns = Some(time.1);
        // A length is only a claim: each field takes at least two bytes of what is left.
        e.contents.reserve(fields.min((chunk.len() - c.pos) / 2));
        for _ in 0..fields {
            let k = c.text().map_err(bad)?;
            let v = c.text().map_err(bad)?;
            e.contents.push((k, v));
        }
        out.events.push(e);
    }
    Ok(out)
}

/// Reads msgpack in place.
struct Cursor<'a> {
    chunk: &'a Bytes,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.chunk.get(self.pos).copied()
    }

    fn be(&self, at: usize, n: usize) -> Option<usize> {
        let b = self.chunk.get(at..at + n)?;
        Some(b.iter().fold(0usize, |acc, x| (acc << 8) | usize::from(*x)))
    }

    /// The length of an array at the cursor (consumed), or `None` (nothing consumed).
    fn array_len(&mut self) -> Option<usize> {
        let (len, head) = match rmp::Marker::from_u8(self.peek()?) {
            rmp::Marker::FixArray(n) => (usize::from(n), 1),
            rmp::Marker::Array16 => (self.be(self.pos + 1, 2)?, 3),
            rmp::Marker::Array32 => (self.be(self.pos + 1, 4)?, 5),
            _ => return None,
        };
        self.pos += head;
        Some(len)
    }

    /// The length of a map at the cursor (consumed), or `None` (nothing consumed).
    fn map_len(&mut self) -> Option<usize> {
        let (len, head) = match rmp::Marker::from_u8(self.peek()?) {
            rmp::Marker::FixMap(n) => (usize::from(n), 1),
            rmp::Marker::Map16 => (self.be(self.pos + 1, 2)?, 3),
            rmp::Marker::Map32 => (self.be(self.pos + 1, 4)?, 5),
            _ => return None,
        };
        self.pos += head;
        Some(len)
    }

    /// A string or binary at the cursor, sliced from the chunk (consumed).
    fn bytes(&mut self) -> Option<Bytes> {
        let (len, head) = match rmp::Marker::from_u8(self.peek()?) {
            rmp::Marker::FixStr(n) => (usize::from(n), 1),
            rmp::Marker::Str8 | rmp::Marker::Bin8 => (self.be(self.pos + 1, 1)?, 2),
            rmp::Marker::Str16 | rmp::Marker::Bin16 => (self.be(self.pos + 1, 2)?, 3),
            rmp::Marker::Str32 | rmp::Marker::Bin32 => (self.be(self.pos + 1, 4)?, 5),
            _ => return None,
        };
        let start = self.pos + head;
        let end = start.checked_add(len).filter(|e| *e <= self.chunk.len())?;
        self.pos = end;
        Some(self.chunk.slice(start..end))
    }

    /// Any value at the cursor, decoded with `rmpv` (consumed).
    fn value(&mut self) -> Result<ValueRef<'_>, String> {
        let mut rest = &self.chunk[self.pos..];
        let before = rest.len();
        let v = rmpv::decode::read_value_ref_with_max_depth(&mut rest, MAX_DEPTH)
            .map_err(|e| format!("not msgpack: {e}"))?;
        self.pos += before - rest.len();
        Ok(v)
    }

    /// A key or value as content bytes (see [`text`]).
    fn text(&mut self) -> Result<Bytes, String> {
        if let Some(b) = self.bytes() {
            return Ok(b);
        }
        let chunk = self.chunk;
        let v = self.value()?;
        Ok(text(chunk, &v))
    }

    /// A record time at the cursor (consumed).
    fn time(&mut self) -> Result<(u32, u32), String> {
        // The common case: fixext8 of type 0.
        if self.peek() == Some(0xd7) && self.chunk.get(self.pos + 1) == Some(&0) {
            let at = self.pos + 2;
            if let (Some(s), Some(ns)) = (self.be(at, 4), self.be(at + 4, 4)) {
                self.pos += 10;
                return Ok((s as u32, ns as u32));
            }
        }
        let v = self.value()?;
        time_of(&v).ok_or_else(|| format!("bad record time {}", kind(&v)))
    }
}

fn kind(v: &ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Nil => "nil",
        ValueRef::Boolean(_) => "a boolean",
        ValueRef::Integer(_) => "an integer",
        ValueRef::F32(_) | ValueRef::F64(_) => "a float",
        ValueRef::String(_) => "a string",
        ValueRef::Binary(_) => "binary",
        ValueRef::Array(_) => "an array",
        ValueRef::Map(_) => "a map",
        ValueRef::Ext(..) => "an ext value",
    }
}

/// (seconds, nanoseconds) of a record time.
fn time_of(v: &ValueRef<'_>) -> Option<(u32, u32)> {
    match v {
        ValueRef::Ext(0, b) if b.len() == 8 => Some((
            u32::from_be_bytes(b[0..4].try_into().ok()?),
            u32::from_be_bytes(b[4..8].try_into().ok()?),
        )),
        // A negative integer is no time (group markers exist only as EventTime).
        ValueRef::Integer(i) => Some((u32::try_from(i.as_u64()?).ok()?, 0)),
        ValueRef::F64(f) if f.is_finite() && *f >= 0.0 && *f < 4_294_967_296.0 => {
            let secs = f.trunc();
            let nanos = ((f - secs) * 1e9).round().min(999_999_999.0);
            Some((secs as u32, nanos as u32))
        }
        ValueRef::F32(f) => time_of(&ValueRef::F64(f64::from(*f))),
        _ => None,
    }
}

/// A key or value as content bytes: strings and binary as they are (zero-copy), scalars as
/// text, maps and arrays as JSON.
fn text(chunk: &Bytes, v: &ValueRef<'_>) -> Bytes {
    match v {
        ValueRef::String(s) => chunk.slice_ref(s.as_bytes()),
        ValueRef::Binary(b) => chunk.slice_ref(b),
        ValueRef::Nil => Bytes::new(),
        ValueRef::Boolean(b) => Bytes::from_static(if *b { b"true" } else { b"false" }),
        ValueRef::Integer(i) => Bytes::from(i.to_string()),
        ValueRef::F32(f) => Bytes::from(f.to_string()),
        ValueRef::F64(f) => Bytes::from(f.to_string()),
        other => Bytes::from(json(other).to_string()),
    }
}

fn json(v: &ValueRef<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        ValueRef::Nil => J::Null,
        ValueRef::Boolean(b) => J::Bool(*b),
        ValueRef::Integer(i) => i
            .as_i64()
            .map(J::from)
            .or_else(|| i.as_u64().map(J::from))
            .unwrap_or(J::Null),
        ValueRef::F32(f) => J::from(f64::from(*f)),
        ValueRef::F64(f) => J::from(*f),
        ValueRef::String(s) => J::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        ValueRef::Binary(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        ValueRef::Array(a) => J::Array(a.iter().map(json).collect()),
        ValueRef::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| {
                    // A key that is itself a map or an array is named by its kind: rendering
                    // it as JSON text would escape the text of keys within keys once per level
                    // (exponential in the nesting).
                    let key = match k {
                        ValueRef::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                        ValueRef::Binary(b) => String::from_utf8_lossy(b).into_owned(),
                        ValueRef::Map(_) | ValueRef::Array(_) | ValueRef::Ext(..) => {
                            format!("<{}>", kind(k))
                        }
                        scalar => json(scalar).to_string(),
                    };
                    (key, json(v))
                })
                .collect(),
        ),
        ValueRef::Ext(t, b) => J::String(format!("ext{t}:{}", hex(b))),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Appends one record in the current layout: `[[EventTime, {}], {contents}]`.
pub fn encode_record<'a>(
    out: &mut Vec<u8>,
    secs: u32,
    nanos: u32,
    contents: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
) {
    use rmp::encode as w;
    // Writing into a Vec cannot fail.
    let _ = w::write_array_len(out, 2);
    let _ = w::write_array_len(out, 2);
    let _ = w::write_ext_meta(out, 8, 0);
    let _ = out.write_all(&secs.to_be_bytes());
    let _ = out.write_all(&nanos.to_be_bytes());
    let _ = w::write_map_len(out, 0);
    let _ = w::write_map_len(out, contents.len() as u32);
    for (k, v) in contents {
        let _ = w::write_str_len(out, k.len() as u32);
        out.extend_from_slice(k);
        let _ = w::write_str_len(out, v.len() as u32);
        out.extend_from_slice(v);
    }
}

/// Appends every log of a `LogGroup` as records (see [`encode_record`]); returns how many.
/// The group's tags (an input's `__path__`, say) become fields `__tag__:<key>` of each record,
/// as iLogtail shows them; the aggregator's `__pack_id__` is left out.
pub fn encode_log_group(out: &mut Vec<u8>, g: &LogGroup) -> usize {
    let tags: Vec<(String, &[u8])> = g
        .log_tags
        .iter()
        .filter(|t| t.key != "__pack_id__")
        .map(|t| (format!("__tag__:{}", t.key), t.value.as_bytes()))
        .collect();
    for log in &g.logs {
        let contents = log
            .contents
            .iter()
            .map(|c| (c.key.as_bytes(), c.value.as_bytes()));
        let tagged = tags.iter().map(|(k, v)| (k.as_bytes(), *v));
        let all: Vec<(&[u8], &[u8])> = contents.chain(tagged).collect();
        encode_record(out, log.time, log.time_ns.unwrap_or(0), all.into_iter());
    }
    g.logs.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext_time(out: &mut Vec<u8>, s: u32, ns: u32) {
        rmp::encode::write_ext_meta(out, 8, 0).unwrap();
        out.extend_from_slice(&s.to_be_bytes());
        out.extend_from_slice(&ns.to_be_bytes());
    }

    #[test]
    fn the_documented_dummy_record_decodes_exactly() {
        let mut b = vec![
            0x92, 0x92, 0xd7, 0x00, 0x6b, 0x02, 0xd2, 0x8a, 0x0c, 0xe1, 0x14, 0x8c, 0x80, 0x82,
            0xa7,
        ];
        b.extend_from_slice(b"message");
        b.push(0xa5);
        b.extend_from_slice(b"hello");
        b.push(0xa1);
        b.extend_from_slice(b"n");
        b.push(0x2a);
        let d = decode(&Bytes::from(b)).unwrap();
        assert_eq!(d.events.len(), 1);
        let e = &d.events[0];
        assert_eq!((e.time, e.time_ns), (0x6b02d28a, Some(0x0ce1148c)));
        assert_eq!(
            e.contents[0],
            (Bytes::from("message"), Bytes::from("hello"))
        );
        assert_eq!(e.contents[1], (Bytes::from("n"), Bytes::from("42")));
    }

    #[test]
    fn legacy_and_current_layouts_mix_and_markers_are_skipped() {
        let mut b = Vec::new();
        // Group start marker.
        rmp::encode::write_array_len(&mut b, 2).unwrap();
        rmp::encode::write_array_len(&mut b, 2).unwrap();
        ext_time(&mut b, GROUP_START, 0);
        rmp::encode::write_map_len(&mut b, 0).unwrap();
        rmp::encode::write_map_len(&mut b, 0).unwrap();
        // Legacy with an integer time and a float time.
        rmp::encode::write_array_len(&mut b, 2).unwrap();
        rmp::encode::write_uint(&mut b, 1_700_000_000).unwrap();
        rmp::encode::write_map_len(&mut b, 1).unwrap();
        rmp::encode::write_str(&mut b, "a").unwrap();
        rmp::encode::write_str(&mut b, "1").unwrap();
        rmp::encode::write_array_len(&mut b, 2).unwrap();
        rmp::encode::write_f64(&mut b, 1_700_000_001.25).unwrap();
        rmp::encode::write_map_len(&mut b, 1).unwrap();
        rmp::encode::write_str(&mut b, "nested").unwrap();
        rmp::encode::write_map_len(&mut b, 1).unwrap();
        rmp::encode::write_str(&mut b, "x").unwrap();
        rmp::encode::write_array_len(&mut b, 2).unwrap();
        rmp::encode::write_sint(&mut b, -3).unwrap();
        rmp::encode::write_bool(&mut b, true).unwrap();
        // A legacy record whose float time rounds to a marker's seconds is still a record.
        rmp::encode::write_array_len(&mut b, 2).unwrap();
        rmp::encode::write_f64(&mut b, 4_294_967_293.999_999_999).unwrap();
        rmp::encode::write_map_len(&mut b, 0).unwrap();
        // Current layout, map32 with one entry (what tail writes).
        encode_record(&mut b, 5, 999_999_999, [(&b"k"[..], &b"v"[..])].into_iter());
        let d = decode(&Bytes::from(b)).unwrap();
        assert_eq!(d.markers, 1);
        assert_eq!(d.events.len(), 4);
        assert_eq!(d.events[2].time, GROUP_END, "a record, not a marker");
        assert_eq!(
            (d.events[0].time, d.events[0].time_ns),
            (1_700_000_000, Some(0))
        );
        assert_eq!(
            (d.events[1].time, d.events[1].time_ns),
            (1_700_000_001, Some(250_000_000))
        );
        assert_eq!(d.events[1].contents[0].1, Bytes::from(r#"{"x":[-3,true]}"#));
        assert_eq!(
            (d.events[3].time, d.events[3].time_ns),
            (5, Some(999_999_999))
        );
    }

    #[test]
    fn undecodable_chunks_name_the_record() {
        for (bytes, why) in [
            (&b"\xc1"[..], "an array"),
            (&b"\x92\x01"[..], "not msgpack"),
            (&b"\x01"[..], "an array"),
            (&b"\x93\x01\x80\x80"[..], "array of 2"),
            (&b"\x92\xa1x\x80"[..], "bad record time"),
            (&b"\x92\x01\x01"[..], "body is a map"),
            // A negative integer is no time (markers exist only as EventTime).
            (&b"\x92\xff\x80"[..], "bad record time"),
        ] {
            let e = decode(&Bytes::copy_from_slice(bytes)).unwrap_err();
            assert!(e.why.contains(why), "{bytes:?}: {e}");
        }
        // A map claiming billions of fields in a few bytes is refused without allocating them.
        let e = decode(&Bytes::from_static(&[
            0x92, 0x3b, 0xdf, 0xdf, 0x92, 0xdf, 0xdf, 0xd4,
        ]))
        .unwrap_err();
        assert!(e.why.contains("not msgpack"), "{e}");
        for claim in [
            &[0x92u8, 0x3b, 0xdd, 0xff, 0xff, 0xff, 0xff][..],
            &[0x92, 0x3b, 0x81, 0xa1, b'k', 0xdd, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(decode(&Bytes::copy_from_slice(claim)).is_err());
        }
        // Maps as keys of maps, nested: named by their kind, not escaped once per level.
        let mut keys = vec![0x92, 0x01, 0x81, 0xa1, b'k'];
        keys.extend(vec![0x81; 60]);
        keys.extend(vec![0xc0; 61]);
        let d = decode(&Bytes::from(keys)).unwrap();
        assert!(
            d.events[0].contents[0].1.len() < 64,
            "{:?}",
            d.events[0].contents[0].1
        );
        // Nesting beyond MAX_DEPTH is refused without exhausting the stack.
        let mut deep = vec![0x92, 0x01, 0x81, 0xa1, b'k'];
        deep.extend(vec![0x91; 100_000]);
        deep.push(0x01);
        assert!(decode(&Bytes::from(deep)).is_err());
    }

    #[test]
    fn encoded_groups_decode_back() {
        use wire::sls::{Content, Log};
        let g = LogGroup {
            logs: vec![Log {
                time: 7,
                contents: vec![Content {
                    key: "k".into(),
                    value: "v".into(),
                }],
                values: vec![],
                time_ns: Some(9),
            }],
            ..LogGroup::default()
        };
        let mut b = Vec::new();
        assert_eq!(encode_log_group(&mut b, &g), 1);
        let d = decode(&Bytes::from(b)).unwrap();
        assert_eq!((d.events[0].time, d.events[0].time_ns), (7, Some(9)));
        assert_eq!(
            d.events[0].contents,
            vec![(Bytes::from("k"), Bytes::from("v"))]
        );
    }
}
