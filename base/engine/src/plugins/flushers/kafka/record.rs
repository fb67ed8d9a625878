//! What `flusher_kafka_v2` sends: one Kafka message per record, encoded as iLogtail's
//! converter does (`custom_single`, `custom_single_flatten`), and the topic template.
//!
//! The encoder runs as groups are appended to chunks ([`Format::Custom`]) and writes each
//! record as a frame, `u32` LE key length, key, `u32` LE value length, value (a length of 0:
//! no key), so the output only slices the chunk body into messages ([`frames`]).
//!
//! Tags are named as iLogtail's converter names them (`__path__` → `log.file.path`,
//! `__hostname__` → `host.name`, `_pod_name_` → `k8s.pod.name`, ...; contents named
//! `__tag__:<key>` are tags too, `__log_topic__` and the group topic are `log.topic`) plus
//! `host.ip`. Unlike Go's maps, keys keep their order and are not de-duplicated.

use crate::encode::{json_string, put_decimal, with_contents, Encoder};
use crate::event::EventGroup;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// iLogtail's `tagConversionMap` (`pkg/protocol/converter/converter.go`): raw tag → name.
const TAG_NAMES: &[(&str, &str)] = &[
    ("__path__", "log.file.path"),
    ("__hostname__", "host.name"),
    ("_node_ip_", "k8s.node.ip"),
    ("_node_name_", "k8s.node.name"),
    ("_namespace_", "k8s.namespace.name"),
    ("_pod_name_", "k8s.pod.name"),
    ("_pod_ip_", "k8s.pod.ip"),
    ("_pod_uid_", "k8s.pod.uid"),
    ("_container_name_", "container.name"),
    ("_container_ip_", "container.ip"),
    ("_image_name_", "container.image.name"),
];

/// iLogtail's name of raw tag `raw`.
fn tag_name(raw: &[u8]) -> &[u8] {
    TAG_NAMES
        .iter()
        .find(|(r, _)| r.as_bytes() == raw)
        .map_or(raw, |(_, n)| n.as_bytes())
}

/// The raw tag (as our groups carry it) of iLogtail tag name `name`.
pub(super) fn raw_tag(name: &str) -> &str {
    TAG_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map_or(name, |(r, _)| r)
}

/// A field of a record named as iLogtail's `HashKeys` name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Field {
    /// `content.<key>`.
    Content(String),
    /// `tag.<name>`: the tag's name as written (after `TagFieldsRename`).
    Tag(String),
}

/// How the message key is made (`PartitionerType: hash`).
#[derive(Debug)]
pub(super) struct HashKey {
    /// The fields whose values, joined by `###`, are the key.
    pub(super) fields: Vec<Field>,
    /// The key when the record has none of the fields (iLogtail: the logstore).
    pub(super) default: String,
    /// `HashOnce`: the first key made is the key of every message.
    pub(super) once: bool,
}

/// The record encoder of one `flusher_kafka_v2`.
#[derive(Debug)]
pub(super) struct RecordEncoder {
    key: String,
    /// `custom_single_flatten`: contents, tags and time in one object.
    flatten: bool,
    /// Protocol field names: time, contents, tags (`ProtocolFieldsRename`).
    time_name: String,
    contents_name: String,
    tags_name: String,
    /// `TagFieldsRename`: tag name → new name (empty: the tag is dropped).
    tag_renames: BTreeMap<String, String>,
    /// The `host.ip` tag.
    host_ip: String,
    hash: Option<HashKey>,
    first_key: OnceLock<Vec<u8>>,
}

impl RecordEncoder {
    pub(super) fn new(
        flatten: bool,
        protocol_renames: &BTreeMap<String, String>,
        tag_renames: BTreeMap<String, String>,
        host_ip: String,
        hash: Option<HashKey>,
    ) -> Self {
        let name = |n: &str| protocol_renames.get(n).cloned().unwrap_or(n.to_string());
        let key =
            format!("kafka\0{flatten}\0{protocol_renames:?}\0{tag_renames:?}\0{host_ip}\0{hash:?}");
        Self {
            key,
            flatten,
            time_name: name("time"),
            contents_name: name("contents"),
            tags_name: name("tags"),
            tag_renames,
            host_ip,
            hash,
            first_key: OnceLock::new(),
        }
    }

    /// Appends tag `name` (already iLogtail's name) = `value` to `tags` as JSON members,
    /// renamed or dropped as `TagFieldsRename` says.
    fn tag(&self, tags: &mut Vec<u8>, name: &[u8], value: &[u8]) {
        let name = match std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.tag_renames.get(n))
        {
            Some(new) if new.is_empty() => return,
            Some(new) => new.as_bytes(),
            None => name,
        };
        tags.push(b',');
        json_string(tags, name);
        tags.push(b':');
        json_string(tags, value);
    }

    /// The group's own tags as JSON members, each preceded by `,`.
    fn group_tags(&self, group: &EventGroup) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &group.tags {
            if matches!(k.as_ref(), b"__user_defined_id__" | b"__pack_id__") {
                continue;
            }
            self.tag(&mut out, tag_name(k), v);
        }
        self.tag(&mut out, b"host.ip", self.host_ip.as_bytes());
        if !group.topic.is_empty() {
            self.tag(&mut out, b"log.topic", &group.topic);
        }
        out
    }

    /// Appends the message key of a record (`HashKeys`), nothing without `hash`.
    fn lookup_key(
        &self,
        group: &EventGroup,
        contents: &[(bytes::Bytes, bytes::Bytes)],
        out: &mut Vec<u8>,
    ) {
        let Some(h) = &self.hash else { return };
        if h.once {
            if let Some(k) = self.first_key.get() {
                out.extend_from_slice(k);
                return;
            }
        }
        let start = out.len();
        let mut found = false;
        for f in &h.fields {
            let v = match f {
                Field::Content(k) => contents
                    .iter()
                    .find(|(ck, _)| ck.as_ref() == k.as_bytes())
                    .map(|(_, v)| v.as_ref()),
                Field::Tag(name) => self.find_tag(group, contents, name),
            };
            if let Some(v) = v {
                if found {
                    out.extend_from_slice(b"###");
                }
                out.extend_from_slice(v);
                found = true;
            }
        }
        if !found {
            out.extend_from_slice(h.default.as_bytes());
        }
        if h.once {
            let _ = self.first_key.set(out[start..].to_vec());
        }
    }

    /// The value of the tag written as `name` (after renames), for a hash key.
    fn find_tag<'a>(
        &self,
        group: &'a EventGroup,
        contents: &'a [(bytes::Bytes, bytes::Bytes)],
        name: &str,
    ) -> Option<&'a [u8]> {
        // The name before `TagFieldsRename`, then the raw tag our groups carry.
        let original = self
            .tag_renames
            .iter()
            .find(|(_, new)| *new == name)
            .map_or(name, |(old, _)| old.as_str());
        if original == "log.topic" && !group.topic.is_empty() {
            return Some(&group.topic);
        }
        let raw = raw_tag(original);
        let in_contents = contents.iter().find(|(k, _)| {
            k.strip_prefix(b"__tag__:")
                .is_some_and(|t| t == raw.as_bytes())
        });
        in_contents
            .map(|(_, v)| v.as_ref())
            .or_else(|| group.tag(raw.as_bytes()).map(|v| v.as_ref()))
    }
}

impl Encoder for RecordEncoder {
    fn key(&self) -> &str {
        &self.key
    }

    fn encode(&self, group: &EventGroup, out: &mut Vec<u8>) -> usize {
        out.reserve(group.byte_size() + group.len() * 64);
        let group_tags = self.group_tags(group);
        let mut event_tags = Vec::new();
        for e in &group.events {
            with_contents(e, |contents| {
                // The key frame.
                let key_at = out.len();
                out.extend_from_slice(&[0; 4]);
                self.lookup_key(group, contents, out);
                patch_len(out, key_at);
                // The value frame.
                let value_at = out.len();
                out.extend_from_slice(&[0; 4]);
                event_tags.clear();
                out.push(b'{');
                if !self.flatten {
                    json_string(out, self.contents_name.as_bytes());
                    out.extend_from_slice(b":{");
                }
                let mut first = true;
                for (k, v) in contents {
                    if let Some(t) = k.strip_prefix(b"__tag__:") {
                        if t != b"__user_defined_id__" {
                            self.tag(&mut event_tags, tag_name(t), v);
                        }
                        continue;
                    }
                    if k.as_ref() == b"__log_topic__" {
                        self.tag(&mut event_tags, b"log.topic", v);
                        continue;
                    }
                    if TAG_NAMES.iter().any(|(r, _)| r.as_bytes() == k.as_ref()) {
                        self.tag(&mut event_tags, tag_name(k), v);
                        continue;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    json_string(out, k);
                    out.push(b':');
                    json_string(out, v);
                }
                let tags = [event_tags.as_slice(), group_tags.as_slice()];
                if self.flatten {
                    for t in tags {
                        // Each member starts with `,`: drop the first when nothing precedes.
                        let t = if first { t.get(1..).unwrap_or(&[]) } else { t };
                        first &= t.is_empty();
                        out.extend_from_slice(t);
                    }
                    if !first {
                        out.push(b',');
                    }
                } else {
                    out.extend_from_slice(b"},");
                    json_string(out, self.tags_name.as_bytes());
                    out.extend_from_slice(b":{");
                    let mut empty = true;
                    for t in tags {
                        let t = if empty { t.get(1..).unwrap_or(&[]) } else { t };
                        empty &= t.is_empty();
                        out.extend_from_slice(t);
                    }
                    out.extend_from_slice(b"},");
                }
                json_string(out, self.time_name.as_bytes());
                out.push(b':');
                put_decimal(out, e.time);
                out.push(b'}');
                patch_len(out, value_at);
            });
        }
        group.len()
    }
}

/// Writes the length of what follows the 4 bytes at `at` into them.
fn patch_len(out: &mut [u8], at: usize) {
    let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// The `(key, value)` messages of a chunk body written by [`RecordEncoder`]; `None` when the
/// body is not a sequence of whole frames.
pub(super) fn frames(body: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    fn take<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let s = rest.get(4..4 + len)?;
        *rest = &rest[4 + len..];
        Some(s)
    }
    let mut rest = body;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let key = take(&mut rest)?;
        let value = take(&mut rest)?;
        out.push((key, value));
    }
    Some(out)
}

/// One part of a topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A chunk key name (`tag`, a content field, `__tag__:<raw tag>`).
    Key(String),
}

/// `Topic`: text with `%{content.<key>}`, `%{tag.<name>}` (iLogtail) and `${<chunk key>}`
/// (ours, as `flusher_file`) placeholders, each a chunk key so that a chunk has one topic.
#[derive(Debug, Clone)]
pub(super) struct Topic {
    parts: Vec<Part>,
}

impl Topic {
    /// Parses `text`; `renames` is `TagFieldsRename` (a `%{tag.x}` may name a renamed tag).
    ///
    /// # Errors
    /// What is wrong with the template.
    pub(super) fn parse(text: &str, renames: &BTreeMap<String, String>) -> Result<Self, String> {
        if text.is_empty() {
            return Err("is required".into());
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while !rest.is_empty() {
            let at = rest.find(['%', '$']);
            let Some(i) = at else {
                literal.push_str(rest);
                break;
            };
            literal.push_str(&rest[..i]);
            let (sigil, tail) = rest[i..].split_at(1);
            let Some(after) = tail.strip_prefix('{') else {
                literal.push_str(sigil);
                rest = tail;
                continue;
            };
            let Some(end) = after.find('}') else {
                return Err(format!("unclosed `{sigil}{{` in {text:?}"));
            };
            let name = &after[..end];
            let key = if sigil == "$" {
                if name.is_empty() {
                    return Err(format!("empty placeholder in {text:?}"));
                }
                name.to_string()
            } else if let Some(k) = name.strip_prefix("content.").filter(|k| !k.is_empty()) {
                k.to_string()
            } else if let Some(t) = name.strip_prefix("tag.").filter(|t| !t.is_empty()) {
                let original = renames
                    .iter()
                    .find(|(_, new)| *new == t)
                    .map_or(t, |(old, _)| old.as_str());
                format!("__tag__:{}", raw_tag(original))
            } else {
                return Err(format!(
                    "`%{{{name}}}` is not `%{{content.<key>}}` or `%{{tag.<key>}}`"
                ));
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Key(key));
            rest = &after[end + 1..];
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// The chunk keys the template needs, in order, without repeats.
    pub(super) fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for p in &self.parts {
            if let Part::Key(k) = p {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        keys
    }

    /// The topic of a chunk with key `key` (a value it lacks is empty).
    pub(super) fn render(&self, key: &crate::api::ChunkKey) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Key(k) => {
                    out.push_str(&String::from_utf8_lossy(key.value(k).unwrap_or_default()))
                }
            }
        }
        out
    }
}
