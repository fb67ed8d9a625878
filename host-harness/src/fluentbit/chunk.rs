//! Fluent Bit msgpack chunks: records one after another (no outer array), each
//! `[[EventTime, {metadata}], {record}]` (current) or `[time, {record}]` (legacy: EventTime,
//! uint or float64); group markers (EventTime seconds 0xFFFFFFFF start, 0xFFFFFFFE end) are
//! skipped. `rmp` writes exact encodings (map32, ext 0); `rmpv` decodes anything, bounded
//! (its pre-allocation is capped and nesting depth limited, so hostile input cannot make it
//! allocate what a length prefix claims).

use std::io::Cursor;

use rmpv::Value;

use crate::cli::FbLayout;

pub const GROUP_START: u32 = 0xFFFF_FFFF;
pub const GROUP_END: u32 = 0xFFFF_FFFE;

/// What `generate` writes.
#[derive(Debug, Clone, PartialEq)]
pub struct GenSpec {
    pub records: u64,
    pub layout: FbLayout,
    /// Approximate encoded size of a record (its `message` is padded to reach it).
    pub record_bytes: usize,
    /// Maps as map32 (what the tail input writes), else the smallest encoding.
    pub map32: bool,
    /// Wrap every N records in group start/end markers (0: none).
    pub group_every: u64,
    /// Times cycle through edge cases (0, nanoseconds 999999999, 0xFFFFFFFD seconds, ..).
    pub edge_times: bool,
    /// Seconds of the first record.
    pub start_sec: u32,
}

impl Default for GenSpec {
    fn default() -> Self {
        GenSpec {
            records: 1,
            layout: FbLayout::Current,
            record_bytes: 100,
            map32: false,
            group_every: 0,
            edge_times: false,
            start_sec: 1_700_000_000,
        }
    }
}

/// How a record's time was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    EventTime,
    Uint,
    Int,
    Float,
}

impl TimeKind {
    pub fn name(self) -> &'static str {
        match self {
            TimeKind::EventTime => "event_time",
            TimeKind::Uint => "uint",
            TimeKind::Int => "int",
            TimeKind::Float => "float",
        }
    }
}

fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) {
    r.expect("writing msgpack to a Vec");
}

fn map_len(out: &mut Vec<u8>, n: u32, map32: bool) {
    if map32 {
        out.push(0xdf);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        ok(rmp::encode::write_map_len(out, n));
    }
}

fn str(out: &mut Vec<u8>, s: &str) {
    ok(rmp::encode::write_str(out, s));
}

/// EventTime: ext type 0, 8 bytes (BE u32 seconds, BE u32 nanoseconds), as fixext8.
pub fn event_time(out: &mut Vec<u8>, sec: u32, nsec: u32) {
    out.extend_from_slice(&[0xd7, 0x00]);
    out.extend_from_slice(&sec.to_be_bytes());
    out.extend_from_slice(&nsec.to_be_bytes());
}

/// Time of record `i`: (seconds, nanoseconds).
pub fn time_of(spec: &GenSpec, i: u64) -> (u32, u32) {
    if spec.edge_times {
        const EDGES: [(u32, u32); 6] = [
            (0, 0),
            (0, 999_999_999),
            (1, 1),
            (0x7FFF_FFFF, 500_000_000),
            (0x8000_0000, 0),
            (0xFFFF_FFFD, 999_999_999),
        ];
        return EDGES[(i % EDGES.len() as u64) as usize];
    }
    (
        spec.start_sec.wrapping_add((i / 1000) as u32),
        ((i % 1000) * 1_000_000 + i % 1000) as u32,
    )
}

/// The layout of record `i`: mixed cycles current, legacy EventTime, legacy uint, legacy float.
fn layout_of(spec: &GenSpec, i: u64) -> (bool, TimeKind) {
    match spec.layout {
        FbLayout::Current => (true, TimeKind::EventTime),
        FbLayout::Legacy => (false, TimeKind::EventTime),
        FbLayout::Mixed => match i % 4 {
            0 => (true, TimeKind::EventTime),
            1 => (false, TimeKind::EventTime),
            2 => (false, TimeKind::Uint),
            _ => (false, TimeKind::Float),
        },
    }
}

/// The fixed part of a generated record, without the message padding.
const RECORD_OVERHEAD: usize = 48;

/// Appends record `i`.
pub fn write_record(out: &mut Vec<u8>, spec: &GenSpec, i: u64, message: &str) {
    let (sec, nsec) = time_of(spec, i);
    let (current, kind) = layout_of(spec, i);
    out.push(0x92);
    if current {
        out.push(0x92);
        event_time(out, sec, nsec);
        map_len(out, 0, spec.map32);
    } else {
        match kind {
            TimeKind::EventTime => event_time(out, sec, nsec),
            TimeKind::Uint | TimeKind::Int => {
                ok(rmp::encode::write_uint(out, u64::from(sec)));
            }
            TimeKind::Float => {
                ok(rmp::encode::write_f64(
                    out,
                    f64::from(sec) + f64::from(nsec) / 1e9,
                ));
            }
        }
    }
    map_len(out, 3, spec.map32);
    str(out, "message");
    str(out, message);
    str(out, "n");
    ok(rmp::encode::write_uint(out, i));
    str(out, "level");
    str(out, if i.is_multiple_of(10) { "warn" } else { "info" });
}

/// Appends a group start (`start`) or end marker.
pub fn write_group_marker(out: &mut Vec<u8>, start: bool, group: u64, map32: bool) {
    out.extend_from_slice(&[0x92, 0x92]);
    event_time(out, if start { GROUP_START } else { GROUP_END }, 0);
    if start {
        map_len(out, 1, map32);
        str(out, "group");
        ok(rmp::encode::write_uint(out, group));
        map_len(out, 1, map32);
        str(out, "resource");
        str(out, "harness");
    } else {
        map_len(out, 0, map32);
        map_len(out, 0, map32);
    }
}

/// The message of record `i`: printable, `record_bytes - overhead` long (at least 1).
pub fn message_for(spec: &GenSpec, i: u64) -> String {
    let len = spec.record_bytes.saturating_sub(RECORD_OVERHEAD).max(1);
    let head = format!("record {i} ");
    let mut s = String::with_capacity(len.max(head.len()));
    s.push_str(&head);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut k = i as usize;
    while s.len() < len {
        s.push(alphabet[k % alphabet.len()] as char);
        k += 7;
    }
    s.truncate(len.max(1));
    s
}

/// Writes records `from..to` (group markers included), returns how many records.
pub fn generate_range(out: &mut Vec<u8>, spec: &GenSpec, from: u64, to: u64) -> u64 {
    for i in from..to {
        if spec.group_every > 0 && i.is_multiple_of(spec.group_every) {
            write_group_marker(out, true, i / spec.group_every, spec.map32);
        }
        let m = message_for(spec, i);
        write_record(out, spec, i, &m);
        if spec.group_every > 0
            && ((i + 1).is_multiple_of(spec.group_every) || i + 1 == spec.records)
        {
            write_group_marker(out, false, i / spec.group_every, spec.map32);
        }
    }
    to.saturating_sub(from)
}

/// The whole generated chunk.
#[cfg(test)]
pub fn generate(spec: &GenSpec) -> Vec<u8> {
    let mut out = Vec::new();
    generate_range(&mut out, spec, 0, spec.records);
    out
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub sec: i64,
    pub nsec: u32,
    pub kind: TimeKind,
    pub current: bool,
    pub metadata: Value,
    pub record: Value,
}

/// An object that is valid msgpack but not a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub offset: usize,
    pub reason: String,
}

/// A chunk decoded as far as it is valid msgpack.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    pub events: Vec<Event>,
    /// (offset, end, is a record) of every top-level object, records and markers alike.
    pub objects: Vec<(usize, usize, bool)>,
    pub group_starts: u64,
    pub group_ends: u64,
    pub invalid: Vec<Invalid>,
    /// Where the bytes stop being msgpack (offset, error), if they do.
    pub malformed: Option<(usize, String)>,
}

fn time_of_value(v: &Value) -> Result<(i64, u32, TimeKind), String> {
    match v {
        Value::Ext(0, b) if b.len() == 8 => Ok((
            i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            TimeKind::EventTime,
        )),
        Value::Ext(t, b) => Err(format!("time is ext type {t} of {} bytes", b.len())),
        Value::Integer(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Ok((i64::try_from(u).unwrap_or(i64::MAX), 0, TimeKind::Uint)),
            (None, Some(i)) => Ok((i, 0, TimeKind::Int)),
            _ => Err("time is an integer out of range".into()),
        },
        Value::F64(f) if f.is_finite() => {
            let s = f.floor();
            Ok((
                s as i64,
                ((f - s) * 1e9).round().min(999_999_999.0) as u32,
                TimeKind::Float,
            ))
        }
        Value::F32(f) if f.is_finite() => {
            let f = f64::from(*f);
            let s = f.floor();
            Ok((
                s as i64,
                ((f - s) * 1e9).round().min(999_999_999.0) as u32,
                TimeKind::Float,
            ))
        }
        other => Err(format!("time is {}", kind_name(other))),
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::String(_) => "a string",
        Value::Binary(_) => "binary",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Ext(..) => "an ext",
    }
}

/// Interprets one top-level object.
fn interpret(v: Value) -> Result<Option<Event>, Result<bool, String>> {
    let Value::Array(mut outer) = v else {
        return Err(Err(format!("a record is {}, not an array", kind_name(&v))));
    };
    if outer.len() != 2 {
        return Err(Err(format!(
            "a record array has {} elements, not 2",
            outer.len()
        )));
    }
    let record = outer.pop().expect("2 elements");
    let head = outer.pop().expect("2 elements");
    let (time, metadata, current) = match head {
        Value::Array(mut h) if h.len() == 2 => {
            let meta = h.pop().expect("2");
            (h.pop().expect("2"), meta, true)
        }
        Value::Array(h) => {
            return Err(Err(format!(
                "a record header has {} elements, not 2",
                h.len()
            )))
        }
        t => (t, Value::Map(Vec::new()), false),
    };
    let (sec, nsec, kind) = time_of_value(&time).map_err(Err)?;
    if kind == TimeKind::EventTime && (sec == i64::from(GROUP_START) || sec == i64::from(GROUP_END))
    {
        return Err(Ok(sec == i64::from(GROUP_START)));
    }
    if !matches!(record, Value::Map(_)) {
        return Err(Err(format!(
            "a record body is {}, not a map",
            kind_name(&record)
        )));
    }
    if !matches!(metadata, Value::Map(_)) {
        return Err(Err(format!(
            "record metadata is {}, not a map",
            kind_name(&metadata)
        )));
    }
    Ok(Some(Event {
        sec,
        nsec,
        kind,
        current,
        metadata,
        record,
    }))
}

/// Decodes a chunk: every record, the group markers, objects that are not records, and where
/// the msgpack breaks (decoding stops there).
pub fn decode(data: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    let mut cur = Cursor::new(data);
    while (cur.position() as usize) < data.len() {
        let at = cur.position() as usize;
        match rmpv::decode::read_value(&mut cur) {
            Ok(v) => {
                let end = cur.position() as usize;
                let r = interpret(v);
                d.objects.push((at, end, matches!(r, Ok(Some(_)))));
                match r {
                    Ok(Some(e)) => d.events.push(e),
                    Ok(None) => {}
                    Err(Ok(true)) => d.group_starts += 1,
                    Err(Ok(false)) => d.group_ends += 1,
                    Err(Err(reason)) => d.invalid.push(Invalid { offset: at, reason }),
                }
            }
            Err(e) => {
                d.malformed = Some((at, e.to_string()));
                break;
            }
        }
    }
    d
}

/// Splits a chunk file into chunks of at most `per_chunk` records, at object boundaries
/// (group markers stay with the records that follow them). Bytes after a msgpack error form
/// one last chunk as they are. Returns (start, end, records) per chunk.
pub fn split(data: &[u8], per_chunk: u64) -> (Vec<(usize, usize, u64)>, Decoded) {
    let d = decode(data);
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut records = 0u64;
    let mut end = 0usize;
    for &(at, stop, is_record) in &d.objects {
        if is_record {
            if records == per_chunk {
                chunks.push((start, at, records));
                start = at;
                records = 0;
            }
            records += 1;
        }
        end = stop;
    }
    if end > start {
        chunks.push((start, end, records));
    }
    if let Some((at, _)) = &d.malformed {
        chunks.push((*at, data.len(), 0));
    }
    (chunks, d)
}

/// A msgpack value as JSON: string keys kept, other keys as their JSON text; binary as
/// `{"$bin": hex}`, ext as `{"$ext": type, "hex": ..}`.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(n) => n
            .as_u64()
            .map(J::from)
            .or_else(|| n.as_i64().map(J::from))
            .unwrap_or(J::Null),
        Value::F32(f) => serde_json::Number::from_f64(f64::from(*f)).map_or(J::Null, J::Number),
        Value::F64(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::String(s) => J::String(match s.as_str() {
            Some(s) => s.to_string(),
            None => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        }),
        Value::Binary(b) => serde_json::json!({ "$bin": hex(b) }),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Ext(t, b) => serde_json::json!({ "$ext": t, "hex": hex(b) }),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One record as the JSON line `input` prints.
pub fn event_json(tag: &str, e: &Event) -> serde_json::Value {
    serde_json::json!({
        "tag": tag,
        "time": [e.sec, e.nsec],
        "time_type": e.kind.name(),
        "layout": if e.current { "current" } else { "legacy" },
        "metadata": to_json(&e.metadata),
        "record": to_json(&e.record),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_abi_example_record_decodes() {
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
        let d = decode(&b);
        assert!(d.malformed.is_none() && d.invalid.is_empty(), "{d:?}");
        assert_eq!(d.events.len(), 1);
        let e = &d.events[0];
        assert_eq!(
            (e.sec, e.nsec, e.kind, e.current),
            (0x6b02_d28a, 0x0ce1_148c, TimeKind::EventTime, true)
        );
        let j = event_json("t", e);
        assert_eq!(
            j["record"],
            serde_json::json!({"message": "hello", "n": 42})
        );
    }

    #[test]
    fn generated_layouts_round_trip() {
        for layout in [FbLayout::Current, FbLayout::Legacy, FbLayout::Mixed] {
            for map32 in [false, true] {
                let spec = GenSpec {
                    records: 40,
                    layout,
                    record_bytes: 200,
                    map32,
                    group_every: 7,
                    ..GenSpec::default()
                };
                let data = generate(&spec);
                let d = decode(&data);
                assert!(
                    d.malformed.is_none() && d.invalid.is_empty(),
                    "{layout:?}: {d:?}"
                );
                assert_eq!(d.events.len(), 40);
                assert_eq!((d.group_starts, d.group_ends), (6, 6));
                for (i, e) in d.events.iter().enumerate() {
                    assert_eq!(e.record.as_map().unwrap()[1].1.as_u64(), Some(i as u64));
                    let (sec, nsec) = time_of(&spec, i as u64);
                    assert_eq!(e.sec, i64::from(sec));
                    match e.kind {
                        TimeKind::EventTime => assert_eq!(e.nsec, nsec),
                        TimeKind::Float => {
                            assert!((i64::from(e.nsec) - i64::from(nsec)).abs() < 1000)
                        }
                        _ => assert_eq!(e.nsec, 0),
                    }
                }
                let first_len = d.objects[1].1 - d.objects[1].0;
                assert!((180..=215).contains(&first_len), "{first_len}");
                if map32 {
                    assert!(data.windows(5).any(|w| w == [0xdf, 0, 0, 0, 3]));
                }
            }
        }
    }

    #[test]
    fn edge_times_and_huge_records() {
        let spec = GenSpec {
            records: 6,
            edge_times: true,
            record_bytes: 3 << 20,
            ..GenSpec::default()
        };
        let data = generate(&spec);
        let d = decode(&data);
        assert_eq!(d.events.len(), 6);
        assert_eq!((d.events[1].sec, d.events[1].nsec), (0, 999_999_999));
        assert_eq!(d.events[5].sec, 0xFFFF_FFFD);
        assert!(data.len() > 6 * (3 << 20) - 1000);
    }

    #[test]
    fn malformed_and_invalid_input() {
        let spec = GenSpec {
            records: 5,
            ..GenSpec::default()
        };
        let mut data = generate(&spec);
        let good = data.len();
        // A map32 claiming 4 billion entries, then nothing: rmpv must fail, not allocate.
        data.extend_from_slice(&[
            0x92, 0xd7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xdf, 0xff, 0xff, 0xff, 0xff,
        ]);
        let d = decode(&data);
        assert_eq!(d.events.len(), 5);
        assert_eq!(d.malformed.as_ref().map(|m| m.0), Some(good));

        // Valid msgpack that is not a record: skipped with a reason.
        let mut odd = vec![
            0x2a, 0x93, 1, 2, 3, 0x92, 0xa1, b'x', 0x80, 0x92, 0xc7, 4, 5, 1, 2, 3, 4, 0x80,
        ];
        odd.extend_from_slice(&generate(&spec));
        let d = decode(&odd);
        assert_eq!(d.invalid.len(), 4, "{:?}", d.invalid);
        assert_eq!(d.events.len(), 5);

        // Truncated in the middle of a record.
        let full = generate(&spec);
        let d = decode(&full[..full.len() - 3]);
        assert_eq!(d.events.len(), 4);
        assert!(d.malformed.is_some());
    }

    #[test]
    fn splitting_keeps_markers_and_the_malformed_tail() {
        let spec = GenSpec {
            records: 10,
            group_every: 5,
            ..GenSpec::default()
        };
        let mut data = generate(&spec);
        let (chunks, _) = split(&data, 4);
        assert_eq!(
            chunks.iter().map(|c| c.2).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        assert_eq!(chunks[0].0, 0);
        assert_eq!(chunks.last().unwrap().1, data.len());
        for w in chunks.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        data.extend_from_slice(&[0x92, 0xdd, 0]); // an array32 cut short
        let (chunks, d) = split(&data, 100);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1], (data.len() - 3, data.len(), 0));
        assert!(d.malformed.is_some());
    }
}
