//! `sls_logs.proto` (proto2) as prost derive structs, a cheap log counter, and the JSON line
//! `run` prints for each received group.

use std::fmt::Write as _;

/// `message Content { required string Key = 1; required string Value = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Content {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `message Log { required uint32 Time = 1; repeated Content Contents = 2;
/// repeated string Values = 3; optional fixed32 Time_ns = 4; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Log {
    #[prost(uint32, required, tag = "1")]
    pub time: u32,
    #[prost(message, repeated, tag = "2")]
    pub contents: Vec<Content>,
    #[prost(string, repeated, tag = "3")]
    pub values: Vec<String>,
    #[prost(fixed32, optional, tag = "4")]
    pub time_ns: Option<u32>,
}

/// `message LogTag { required string Key = 1; required string Value = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogTag {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `message LogGroup { repeated Log Logs = 1; optional string Category = 2; optional string
/// Topic = 3; optional string Source = 4; optional string MachineUUID = 5;
/// repeated LogTag LogTags = 6; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogGroup {
    #[prost(message, repeated, tag = "1")]
    pub logs: Vec<Log>,
    #[prost(string, optional, tag = "2")]
    pub category: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub topic: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub source: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub machine_uuid: Option<String>,
    #[prost(message, repeated, tag = "6")]
    pub log_tags: Vec<LogTag>,
}

/// Name of the tag carrying the pack id.
pub const PACK_ID_TAG: &str = "__pack_id__";

impl LogGroup {
    /// The value of the last `__pack_id__` tag.
    pub fn pack_id(&self) -> Option<&str> {
        self.log_tags
            .iter()
            .rev()
            .find(|t| t.key == PACK_ID_TAG)
            .map(|t| t.value.as_str())
    }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Counts the `Logs` of a serialized `LogGroup` without decoding them (walks the top-level
/// fields only). `None` when the bytes are not a well-formed message at that level.
pub fn count_logs(buf: &[u8]) -> Option<u64> {
    let mut pos = 0;
    let mut logs = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 {
            return None;
        }
        match wire {
            0 => {
                read_varint(buf, &mut pos)?;
            }
            1 => pos = pos.checked_add(8)?,
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)?).ok()?;
                pos = pos.checked_add(len)?;
                if field == 1 {
                    logs += 1;
                }
            }
            5 => pos = pos.checked_add(4)?,
            _ => return None,
        }
        if pos > buf.len() {
            return None;
        }
    }
    Some(logs)
}

fn json_str(out: &mut String, s: &str) {
    // Serialising a &str to JSON cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

fn json_opt(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.push_str("null"),
    }
}

fn json_pairs<'a>(out: &mut String, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    out.push('{');
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, k);
        out.push(':');
        json_str(out, v);
    }
    out.push('}');
}

/// The JSON line `run` prints for a group (keys in the documented order; duplicate keys in
/// contents or tags are kept as they came).
pub fn group_json_line(config: &str, logstore: &str, g: &LogGroup) -> String {
    let mut o = String::with_capacity(128 + g.logs.len() * 64);
    o.push_str("{\"config\":");
    json_str(&mut o, config);
    o.push_str(",\"logstore\":");
    json_str(&mut o, logstore);
    o.push_str(",\"pack_id\":");
    json_opt(&mut o, g.pack_id());
    o.push_str(",\"topic\":");
    json_opt(&mut o, g.topic.as_deref());
    o.push_str(",\"source\":");
    json_opt(&mut o, g.source.as_deref());
    o.push_str(",\"tags\":");
    json_pairs(
        &mut o,
        g.log_tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str())),
    );
    o.push_str(",\"logs\":[");
    for (i, log) in g.logs.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let _ = write!(o, "{{\"time\":{}", log.time);
        if let Some(ns) = log.time_ns {
            let _ = write!(o, ",\"time_ns\":{ns}");
        }
        o.push_str(",\"contents\":");
        json_pairs(
            &mut o,
            log.contents
                .iter()
                .map(|c| (c.key.as_str(), c.value.as_str())),
        );
        if !log.values.is_empty() {
            o.push_str(",\"values\":[");
            for (j, v) in log.values.iter().enumerate() {
                if j > 0 {
                    o.push(',');
                }
                json_str(&mut o, v);
            }
            o.push(']');
        }
        o.push('}');
    }
    o.push_str("]}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn sample() -> LogGroup {
        LogGroup {
            logs: vec![
                Log {
                    time: 1700000000,
                    contents: vec![
                        Content {
                            key: "content".into(),
                            value: "he said \"hi\"\n".into(),
                        },
                        Content {
                            key: "Index".into(),
                            value: "1".into(),
                        },
                    ],
                    values: vec![],
                    time_ns: None,
                },
                Log {
                    time: 1700000001,
                    contents: vec![],
                    values: vec!["v".into()],
                    time_ns: Some(5),
                },
            ],
            category: Some("ls".into()),
            topic: None,
            source: Some("127.0.0.1".into()),
            machine_uuid: None,
            log_tags: vec![LogTag {
                key: PACK_ID_TAG.into(),
                value: "ABC-1F".into(),
            }],
        }
    }

    #[test]
    fn count_matches_decode() {
        let g = sample();
        let bytes = g.encode_to_vec();
        assert_eq!(count_logs(&bytes), Some(2));
        assert_eq!(LogGroup::decode(bytes.as_slice()).unwrap(), g);
        assert_eq!(count_logs(&[]), Some(0));
        assert_eq!(count_logs(&bytes[..bytes.len() - 1]), None);
        assert_eq!(count_logs(&[0x0a, 0x05, 0x01]), None);
    }

    #[test]
    fn json_line_shape() {
        let line = group_json_line("cfg", "ls", &sample());
        assert_eq!(
            line,
            r#"{"config":"cfg","logstore":"ls","pack_id":"ABC-1F","topic":null,"source":"127.0.0.1","tags":{"__pack_id__":"ABC-1F"},"logs":[{"time":1700000000,"contents":{"content":"he said \"hi\"\n","Index":"1"}},{"time":1700000001,"time_ns":5,"contents":{},"values":["v"]}]}"#
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["logs"][0]["contents"]["Index"], "1");
    }
}
