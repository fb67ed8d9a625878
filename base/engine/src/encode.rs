//! Encoders (Heka's): the one place that turns event groups into bytes, shared by every
//! flusher.
//!
//! This is the hot path of every output, so each format is written straight into the
//! caller's buffer: no intermediate value per event and no allocation per event (the buffer
//! grows once per group). Events whose contents are still pending (only in their protobuf
//! encoding, see [`LogEvent::is_pending`]) are normally decoded by the framework before it
//! calls [`Format::encode`]; one that is not is decoded into a scratch vector here (the only
//! per-event allocation, off the normal path).

use crate::event::{EventGroup, LogEvent};
use crate::proto::{encode_log_group, GroupHeader};
use bytes::Bytes;
use std::sync::Arc;

/// How a flusher encodes records.
#[derive(Debug, Clone)]
pub enum Format {
    /// One JSON object per event and line: `__time__`, the contents, and with `tags` the group
    /// tags as `__tag__:<key>` (and `__topic__`).
    Json {
        /// Also write the group's tags.
        tags: bool,
    },
    /// The value of one content key per line (`content` by default).
    Raw {
        /// The content key written.
        key: Bytes,
    },
    /// Each group as one `LogGroup`, framed as an element of a `LogGroupList` (field 1,
    /// length-delimited): a chunk body is a valid `LogGroupList`.
    Protobuf,
    /// Each event as a Fluent `Entry`, the msgpack array `[time, {key: value, ...}]`.
    Msgpack,
    /// An output's own encoding (a syslog frame per event, an OTLP `ResourceLogs` per
    /// group...): the chunk body is then what the output sends, with no second pass.
    Custom(Arc<dyn Encoder>),
}

/// An output's own encoder for [`Format::Custom`]. It runs on the inputs' side, as groups
/// are appended to chunks, so the output's write only sends the body.
pub trait Encoder: Send + Sync + std::fmt::Debug {
    /// Identifies the encoding and every option it depends on: two encoders with the same
    /// key write the same bytes, so a buffer may be handed to a successor with the same key
    /// (a reload with the same options).
    fn key(&self) -> &str;

    /// Appends the encoding of `group`'s events to `out`; returns how many records it
    /// wrote. Use [`with_contents`] to read an event's contents.
    fn encode(&self, group: &EventGroup, out: &mut Vec<u8>) -> usize;
}

impl PartialEq for Format {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Json { tags: a }, Self::Json { tags: b }) => a == b,
            (Self::Raw { key: a }, Self::Raw { key: b }) => a == b,
            (Self::Protobuf, Self::Protobuf) | (Self::Msgpack, Self::Msgpack) => true,
            (Self::Custom(a), Self::Custom(b)) => a.key() == b.key(),
            _ => false,
        }
    }
}

impl Eq for Format {}

impl Format {
    /// The format's name in configs: `json`, `raw`, `protobuf` or `msgpack`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Json { .. } => "json",
            Self::Raw { .. } => "raw",
            Self::Protobuf => "protobuf",
            Self::Msgpack => "msgpack",
            Self::Custom(_) => "custom",
        }
    }

    /// Appends the encoding of `group`'s events to `out`; returns how many records it wrote.
    ///
    /// - `Json`: one object and `\n` per event: `"__time__"`, `"__time_ns__"` when the event
    ///   has nanoseconds, with `tags` every group tag as `"__tag__:<key>"` and `"__topic__"`
    ///   when the topic is not empty, then the contents in order. Keys are written as they
    ///   come: a content named like a tag, or a repeated key, appears twice (most readers keep
    ///   the last). Text is escaped as JSON requires, invalid UTF-8 replaced by U+FFFD (as
    ///   [`String::from_utf8_lossy`] does).
    /// - `Raw`: the value of content `key` and `\n` per event; an event without that key
    ///   writes nothing and is not counted.
    /// - `Protobuf`: the whole group as one `LogGroup` (with `Time_ns`), prefixed by the key
    ///   of `LogGroupList.logGroupList` and its length; an empty group writes nothing.
    /// - `Msgpack`: per event `[time, {key: value, ...}]`, the time an `EventTime` (ext type
    ///   0: seconds and nanoseconds, big-endian `u32`s) when the event has nanoseconds, else
    ///   an integer; keys and values as `str` when valid UTF-8, else as `bin`. No tags.
    pub fn encode(&self, group: &EventGroup, out: &mut Vec<u8>) -> usize {
        if group.is_empty() {
            return 0;
        }
        match self {
            Self::Json { tags } => json_group(group, *tags, out),
            Self::Raw { key } => raw_group(group, key, out),
            Self::Protobuf => protobuf_group(group, out),
            Self::Msgpack => msgpack_group(group, out),
            Self::Custom(e) => e.encode(group, out),
        }
    }
}

/// Calls `f` with `e`'s contents, decoding them first when they are still pending.
#[inline]
pub fn with_contents<R>(e: &LogEvent, f: impl FnOnce(&[(Bytes, Bytes)]) -> R) -> R {
    match (&e.encoded, e.is_pending()) {
        (Some(raw), true) => {
            let mut contents = Vec::new();
            crate::proto::decode_contents_into(raw, &mut contents);
            f(&contents)
        }
        _ => f(&e.contents),
    }
}

/// About what the group's encoding takes, to reserve once.
fn estimate(group: &EventGroup) -> usize {
    let tags: usize = group.tags.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    group.byte_size() + tags + group.topic.len() + 16
}

fn json_group(group: &EventGroup, tags: bool, out: &mut Vec<u8>) -> usize {
    let tag_len = if tags {
        let pairs: usize = group.tags.iter().map(|(k, v)| k.len() + v.len() + 16).sum();
        pairs + group.topic.len() + 16
    } else {
        0
    };
    out.reserve(group.byte_size() + group.len() * (48 + tag_len));
    // The tags' text is the same for every event: written once, then copied.
    let mut tag_text: Option<std::ops::Range<usize>> = None;
    for e in &group.events {
        out.extend_from_slice(b"{\"__time__\":");
        put_decimal(out, e.time);
        if let Some(ns) = e.time_ns {
            out.extend_from_slice(b",\"__time_ns__\":");
            put_decimal(out, ns);
        }
        if tags {
            match &tag_text {
                Some(r) => out.extend_from_within(r.clone()),
                None => {
                    let start = out.len();
                    for (k, v) in &group.tags {
                        out.extend_from_slice(b",\"__tag__:");
                        json_escaped(out, k);
                        out.extend_from_slice(b"\":");
                        json_string(out, v);
                    }
                    if !group.topic.is_empty() {
                        out.extend_from_slice(b",\"__topic__\":");
                        json_string(out, &group.topic);
                    }
                    tag_text = Some(start..out.len());
                }
            }
        }
        with_contents(e, |contents| {
            for (k, v) in contents {
                out.push(b',');
                json_string(out, k);
                out.push(b':');
                json_string(out, v);
            }
        });
        out.extend_from_slice(b"}\n");
    }
    group.len()
}

fn raw_group(group: &EventGroup, key: &[u8], out: &mut Vec<u8>) -> usize {
    out.reserve(group.byte_size());
    let mut lines = 0;
    for e in &group.events {
        with_contents(e, |contents| {
            if let Some((_, v)) = contents.iter().find(|(k, _)| k.as_ref() == key) {
                out.extend_from_slice(v);
                out.push(b'\n');
                lines += 1;
            }
        });
    }
    lines
}

fn protobuf_group(group: &EventGroup, out: &mut Vec<u8>) -> usize {
    let estimate = estimate(group);
    out.reserve(estimate + 8);
    framed_log_group(group, out, varint_len(estimate as u64));
    group.len()
}

/// Appends `group` as one `LogGroupList.logGroupList` element. Its length prefix comes
/// first but is known only after: room is left for a `guess`-byte varint, and the group is
/// moved in the rare case the real length's varint has another size.
fn framed_log_group(group: &EventGroup, out: &mut Vec<u8>, guess: usize) {
    out.push(0x0a); // field 1, length-delimited
    let prefix = out.len();
    out.resize(prefix + guess, 0);
    let header = GroupHeader {
        with_time_ns: true,
        ..GroupHeader::default()
    };
    encode_log_group(out, group, &header);
    let body = prefix + guess;
    let len = out.len() - body;
    let need = varint_len(len as u64);
    if need > guess {
        out.resize(out.len() + need - guess, 0);
        out.copy_within(body..body + len, prefix + need);
    } else if need < guess {
        out.copy_within(body..body + len, prefix + need);
        out.truncate(prefix + need + len);
    }
    put_varint(&mut out[prefix..prefix + need], len as u64);
}

fn msgpack_group(group: &EventGroup, out: &mut Vec<u8>) -> usize {
    use rmp::encode as mp;
    out.reserve(group.byte_size() + group.len() * 16);
    for e in &group.events {
        // Writing to a Vec cannot fail.
        let _ = mp::write_array_len(out, 2);
        match e.time_ns {
            Some(ns) => {
                let _ = mp::write_ext_meta(out, 8, 0);
                out.extend_from_slice(&e.time.to_be_bytes());
                out.extend_from_slice(&ns.to_be_bytes());
            }
            None => {
                let _ = mp::write_uint(out, u64::from(e.time));
            }
        }
        with_contents(e, |contents| {
            let _ = mp::write_map_len(out, u32::try_from(contents.len()).unwrap_or(u32::MAX));
            for (k, v) in contents.iter().take(u32::MAX as usize) {
                msgpack_text(out, k);
                msgpack_text(out, v);
            }
        });
    }
    group.len()
}

/// `b` as a msgpack `str` when it is UTF-8, else as `bin` (cut at 4 GiB, the format's limit).
pub fn msgpack_text(out: &mut Vec<u8>, b: &[u8]) {
    use rmp::encode as mp;
    let b = &b[..b.len().min(u32::MAX as usize)];
    let _ = match std::str::from_utf8(b) {
        Ok(_) => mp::write_str_len(out, b.len() as u32),
        Err(_) => mp::write_bin_len(out, b.len() as u32),
    };
    out.extend_from_slice(b);
}

/// `v` in decimal.
pub fn put_decimal(out: &mut Vec<u8>, mut v: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `s` as a quoted JSON string.
#[inline]
pub fn json_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    json_escaped(out, s);
    out.push(b'"');
}

/// `s` escaped for the inside of a JSON string; invalid UTF-8 becomes U+FFFD, one per
/// maximal invalid subsequence (as [`String::from_utf8_lossy`] does).
pub fn json_escaped(out: &mut Vec<u8>, mut s: &[u8]) {
    loop {
        match std::str::from_utf8(s) {
            Ok(valid) => return escape_utf8(out, valid.as_bytes()),
            Err(e) => {
                let (valid, rest) = s.split_at(e.valid_up_to());
                escape_utf8(out, valid);
                out.extend_from_slice("\u{FFFD}".as_bytes());
                match e.error_len() {
                    Some(n) => s = &rest[n..],
                    None => return,
                }
            }
        }
    }
}

/// What a byte of valid UTF-8 becomes inside a JSON string: 0 for itself, `u` for `\u00XX`,
/// else the letter after the backslash (serde_json's choices).
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any byte of `w` is a control character, `"` or a backslash (exact: the classic
/// "has a byte below n" and "has a zero byte" word tricks, for n ≤ 128).
#[inline(always)]
fn word_needs_escape(w: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(LO * u64::from(n)) & !x & HI;
    let quote = w ^ (LO * u64::from(b'"'));
    let backslash = w ^ (LO * u64::from(b'\\'));
    (below(w, 0x20) | below(quote, 1) | below(backslash, 1)) != 0
}

fn escape_utf8(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        // Eight bytes at a time while none needs escaping (most text).
        if let Some(w) = s.get(i..i + 8) {
            let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            if !word_needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let b = s[i];
        let esc = ESCAPE[b as usize];
        i += 1;
        if esc == 0 {
            continue;
        }
        let i = i - 1;
        out.extend_from_slice(&s[start..i]);
        match esc {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
            c => out.extend_from_slice(&[b'\\', c]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Writes `v` as a varint filling exactly `dst` (whose length is `varint_len(v)`).
fn put_varint(dst: &mut [u8], mut v: u64) {
    let last = dst.len() - 1;
    for (i, b) in dst.iter_mut().enumerate() {
        *b = (v as u8 & 0x7f) | if i < last { 0x80 } else { 0 };
        v >>= 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::LogGroup;
    use serde_json::Value;

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    #[test]
    fn the_word_test_finds_exactly_the_bytes_to_escape() {
        for fill in [b'a', 0x7f, 0xc3, 0xff, b' '] {
            for x in 0..=255u8 {
                for pos in 0..8 {
                    let mut w = [fill; 8];
                    w[pos] = x;
                    assert_eq!(
                        word_needs_escape(u64::from_le_bytes(w)),
                        ESCAPE[x as usize] != 0 || ESCAPE[fill as usize] != 0,
                        "byte {x:#x} at {pos} among {fill:#x}"
                    );
                }
            }
        }
    }

    fn event(time: u32, ns: Option<u32>, contents: &[(&[u8], &[u8])]) -> LogEvent {
        let mut e = LogEvent::new(time);
        e.time_ns = ns;
        e.contents = contents.iter().map(|(k, v)| (b(k), b(v))).collect();
        e
    }

    fn group(events: Vec<LogEvent>) -> EventGroup {
        EventGroup {
            events,
            tags: vec![(b(b"host"), b(b"h\"1")), (b(b"ip"), b(b"10.0.0.1"))],
            topic: b(b"topic-a"),
            ..EventGroup::default()
        }
    }

    fn json_lines(out: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(out).expect("json output is UTF-8");
        assert!(text.ends_with('\n'));
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
            .collect()
    }

    #[test]
    fn json_escapes_every_control_char_quotes_backslash_and_invalid_utf8() {
        let controls: Vec<u8> = (0u8..0x20).chain(*b"\"\\/\x7f").collect();
        let invalid: &[u8] = b"a\xffb\xe2\x82c\xf0\x9f\x98\x80\xc3";
        let g = group(vec![
            event(
                1,
                None,
                &[(&controls[..], &controls[..]), (b"bad", invalid)],
            ),
            event(2, Some(7), &[(b"k\xfe", b"\xe6\x97\xa5\xe6\x9c\xac")]),
        ]);
        let mut out = Vec::new();
        assert_eq!(Format::Json { tags: false }.encode(&g, &mut out), 2);
        let lines = json_lines(&out);
        let want = String::from_utf8(controls).unwrap();
        assert_eq!(lines[0][&want], want.as_str());
        assert_eq!(lines[0]["bad"], String::from_utf8_lossy(invalid).as_ref());
        assert_eq!(lines[0]["__time__"], 1);
        assert!(lines[0].get("__time_ns__").is_none());
        assert!(lines[0].get("__tag__:host").is_none());
        assert_eq!(lines[1]["__time_ns__"], 7);
        assert_eq!(lines[1]["k\u{fffd}"], "日本");
    }

    proptest::proptest! {
        #[test]
        fn json_strings_are_what_serde_json_writes_for_the_lossy_text(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let mut out = Vec::new();
            json_string(&mut out, &bytes);
            let lossy = String::from_utf8_lossy(&bytes);
            proptest::prop_assert_eq!(out, serde_json::to_vec(&lossy).unwrap());
        }
    }

    #[test]
    fn json_writes_tags_topic_then_contents_in_order_on_every_line() {
        let g = group(vec![
            event(u32::MAX, Some(999_999_999), &[(b"b", b"1"), (b"a", b"2")]),
            event(0, None, &[]),
            event(10, None, &[(b"b", b"3")]),
        ]);
        let mut out = b"kept".to_vec();
        assert_eq!(Format::Json { tags: true }.encode(&g, &mut out), 3);
        assert!(out.starts_with(b"kept"));
        let text = std::str::from_utf8(&out[4..]).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            r#"{"__time__":4294967295,"__time_ns__":999999999,"__tag__:host":"h\"1","__tag__:ip":"10.0.0.1","__topic__":"topic-a","b":"1","a":"2"}"#
        );
        let lines = json_lines(&out[4..]);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1]["__time__"], 0);
        assert_eq!(lines[2]["__tag__:host"], "h\"1");
        assert_eq!(lines[2]["__topic__"], "topic-a");
        assert_eq!(lines[2]["b"], "3");
    }

    #[test]
    fn raw_writes_the_key_per_line_and_skips_events_without_it() {
        let g = group(vec![
            event(1, None, &[(b"content", b"line one"), (b"x", b"y")]),
            event(2, None, &[(b"x", b"no content")]),
            event(3, None, &[(b"content", b"\xff raw bytes")]),
        ]);
        let mut out = Vec::new();
        let raw = Format::Raw { key: b(b"content") };
        assert_eq!(raw.encode(&g, &mut out), 2);
        assert_eq!(out, b"line one\n\xff raw bytes\n");
        assert_eq!(raw.encode(&EventGroup::default(), &mut out), 0);
    }

    /// `LogGroupList` of sls_logs.proto.
    #[derive(Clone, PartialEq, prost::Message)]
    struct LogGroupList {
        #[prost(message, repeated, tag = "1")]
        log_group_list: Vec<LogGroup>,
    }

    #[test]
    fn protobuf_groups_concatenate_into_a_log_group_list() {
        let mut out = Vec::new();
        let small = group(vec![event(5, Some(6), &[(b"k", b"v")])]);
        assert_eq!(Format::Protobuf.encode(&small, &mut out), 1);
        assert_eq!(Format::Protobuf.encode(&EventGroup::default(), &mut out), 0);
        let mut sizes = Vec::new();
        for n in [60, 100, 16_370, 2_097_100] {
            let value = vec![b'x'; n];
            let g = group(vec![event(n as u32, None, &[(b"c", &value)])]);
            assert_eq!(Format::Protobuf.encode(&g, &mut out), 1);
            sizes.push(n);
        }
        // A wrong guess of the prefix's size, either way, moves the group into place.
        for (n, guess) in [(10, 3), (200, 1), (20_000, 2), (300, 5)] {
            let value = vec![b'y'; n];
            let g = group(vec![event(n as u32, None, &[(b"c", &value)])]);
            framed_log_group(&g, &mut out, guess);
            sizes.push(n);
        }
        let many: Vec<LogEvent> = (0..300).map(|i| event(i, None, &[(b"i", b"v")])).collect();
        assert_eq!(Format::Protobuf.encode(&group(many), &mut out), 300);
        let list = <LogGroupList as prost::Message>::decode(out.as_slice()).unwrap();
        assert_eq!(list.log_group_list.len(), 2 + sizes.len());
        let first = &list.log_group_list[0];
        assert_eq!(first.logs[0].time, 5);
        assert_eq!(first.logs[0].time_ns, Some(6));
        assert_eq!(first.topic.as_deref(), Some("topic-a"));
        assert_eq!(first.log_tags[0].value, "h\"1");
        for (g, n) in list.log_group_list[1..].iter().zip(&sizes) {
            assert_eq!(g.logs[0].time, *n as u32);
            assert_eq!(g.logs[0].contents[0].value.len(), *n);
        }
        assert_eq!(list.log_group_list.last().unwrap().logs.len(), 300);
    }

    #[test]
    fn pending_events_are_encoded_from_their_protobuf() {
        let mut raw = Vec::new();
        crate::proto::encode_log(&mut raw, 9, &[(b"content", b"lazy")]);
        let g = group(vec![LogEvent::from_encoded(9, Bytes::from(raw))]);
        let mut out = Vec::new();
        Format::Json { tags: false }.encode(&g, &mut out);
        assert_eq!(out, b"{\"__time__\":9,\"content\":\"lazy\"}\n");
        out.clear();
        let raw = Format::Raw { key: b(b"content") };
        assert_eq!(raw.encode(&g, &mut out), 1);
        assert_eq!(out, b"lazy\n");
    }

    #[test]
    fn msgpack_writes_fluent_entries() {
        use rmpv::Value as Mp;
        let g = group(vec![
            event(
                1_700_000_000,
                Some(123),
                &[(b"k", b"v"), (b"bin", b"\xff\x00")],
            ),
            event(42, None, &[]),
        ]);
        let mut out = Vec::new();
        assert_eq!(Format::Msgpack.encode(&g, &mut out), 2);
        let mut rd = out.as_slice();
        let first = rmpv::decode::read_value(&mut rd).unwrap();
        let second = rmpv::decode::read_value(&mut rd).unwrap();
        assert!(rd.is_empty());
        let mut time = 1_700_000_000u32.to_be_bytes().to_vec();
        time.extend_from_slice(&123u32.to_be_bytes());
        assert_eq!(
            first,
            Mp::Array(vec![
                Mp::Ext(0, time),
                Mp::Map(vec![
                    (Mp::from("k"), Mp::from("v")),
                    (Mp::from("bin"), Mp::Binary(vec![0xff, 0])),
                ]),
            ])
        );
        assert_eq!(second, Mp::Array(vec![Mp::from(42), Mp::Map(vec![])]));
    }

    #[test]
    fn names_are_the_config_names() {
        let names: Vec<_> = [
            Format::Json { tags: true },
            Format::Raw { key: Bytes::new() },
            Format::Protobuf,
            Format::Msgpack,
        ]
        .iter()
        .map(Format::name)
        .collect();
        assert_eq!(names, ["json", "raw", "protobuf", "msgpack"]);
    }
}
