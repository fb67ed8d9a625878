//! A cheap log counter over `sls_logs` groups (messages from `wire::sls`), and the JSON line
//! `run` prints for each received group.

use std::fmt::Write as _;

#[allow(unused_imports)] // LogTag and PACK_ID_TAG: for tests and callers building groups
pub use wire::sls::{Content, Log, LogGroup, LogTag, PACK_ID_TAG};

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
