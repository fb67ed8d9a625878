//! `aggregator_default`: batches events per source into log groups of at most
//! `MaxLogCount` logs and 3 MiB, flushed when full or every `AggregatIntervalMs`, each ending
//! with a `__pack_id__` tag whose sequence is gap-free per source.

use crate::api::prelude::*;
use crate::api::{Ack, PackIds};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest serialized group, as in the original.
pub const MAX_GROUP_BYTES: usize = 3 * 1024 * 1024;

/// Options of `aggregator_default`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Options {
    /// Maximum logs per group.
    max_log_count: usize,
    /// Accepted for compatibility: groups are handed on as soon as they are full, so no
    /// per-source backlog is kept here (the flush queue bounds it instead).
    max_log_group_count: usize,
    /// Topic set on every group (overrides the input's).
    topic: String,
    /// Add the `__pack_id__` tag.
    pack_flag: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_log_count: 1024,
            max_log_group_count: 4,
            topic: String::new(),
            pack_flag: true,
        }
    }
}

#[derive(Default)]
struct Batch {
    events: Vec<LogEvent>,
    tags: Vec<(Bytes, Bytes)>,
    topic: Bytes,
    bytes: usize,
    /// Acks of every input group with events in this batch.
    acks: Vec<Ack>,
}

struct DefaultAggregator {
    max_count: usize,
    topic: Option<Bytes>,
    pack_flag: bool,
    pack_ids: Arc<PackIds>,
    /// Sources in first-seen order, so interval flushes are deterministic.
    order: Vec<Bytes>,
    batches: HashMap<Bytes, Batch>,
}

pub(crate) fn build(
    detail: &Value,
    cx: &PluginContext,
) -> Result<Box<dyn Aggregator>, DetailError> {
    let o: Options = parse_detail(detail)?;
    if o.max_log_count == 0 {
        return Err(DetailError::new("MaxLogCount", "must be at least 1"));
    }
    Ok(Box::new(DefaultAggregator {
        max_count: o.max_log_count,
        topic: (!o.topic.is_empty()).then(|| Bytes::from(o.topic)),
        pack_flag: o.pack_flag,
        pack_ids: cx.pack_ids.clone(),
        order: Vec::new(),
        batches: HashMap::new(),
    }))
}

fn emit(batch: &mut Batch, source: &Bytes, pack: Option<&PackIds>, out: &mut Vec<EventGroup>) {
    if batch.events.is_empty() {
        return;
    }
    let mut tags = batch.tags.clone();
    if let Some(p) = pack {
        tags.push((
            Bytes::from_static(b"__pack_id__"),
            Bytes::from(p.next(source)),
        ));
    }
    out.push(EventGroup {
        events: std::mem::take(&mut batch.events),
        tags,
        topic: batch.topic.clone(),
        source: source.clone(),
        acks: std::mem::take(&mut batch.acks),
    });
    batch.bytes = 0;
}

impl Aggregator for DefaultAggregator {
    fn reads_encoded(&self) -> bool {
        // Groups are sized with `LogEvent::byte_size`, which an encoding alone answers.
        true
    }

    fn add(&mut self, mut group: EventGroup, out: &mut Vec<EventGroup>) {
        let topic = self.topic.clone().unwrap_or_else(|| group.topic.clone());
        let pack = self.pack_flag.then_some(&*self.pack_ids);
        let batch = match self.batches.get_mut(&group.source) {
            Some(b) => b,
            None => {
                self.order.push(group.source.clone());
                self.batches.entry(group.source.clone()).or_default()
            }
        };
        if !batch.events.is_empty() && (batch.tags != group.tags || batch.topic != topic) {
            emit(batch, &group.source, pack, out);
        }
        if batch.events.is_empty() {
            batch.tags = std::mem::take(&mut group.tags);
            batch.topic = topic;
        }
        batch.events.reserve(group.events.len().min(self.max_count));
        // Every batch that receives some of this group's events holds its acks, so the input
        // commits only after all of them were delivered.
        let acks = std::mem::take(&mut group.acks);
        let mut attached = false;
        for e in group.events.drain(..) {
            let size = e.byte_size();
            if !batch.events.is_empty()
                && (batch.events.len() >= self.max_count || batch.bytes + size > MAX_GROUP_BYTES)
            {
                emit(batch, &group.source, pack, out);
                attached = false;
            }
            if !attached {
                batch.acks.extend(acks.iter().cloned());
                attached = true;
            }
            batch.bytes += size;
            batch.events.push(e);
        }
        if batch.events.len() >= self.max_count {
            emit(batch, &group.source, pack, out);
        }
    }

    fn flush(&mut self, out: &mut Vec<EventGroup>) {
        let pack = self.pack_flag.then_some(&*self.pack_ids);
        for source in &self.order {
            if let Some(b) = self.batches.get_mut(source) {
                emit(b, source, pack, out);
            }
        }
        // Forget idle sources so a stream of short-lived sources cannot grow the map.
        self.batches.retain(|_, b| !b.events.is_empty());
        self.order.retain(|s| self.batches.contains_key(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(source: &'static [u8], n: usize, tag: &'static [u8]) -> EventGroup {
        let mut g = EventGroup::new(Bytes::from_static(source));
        g.tags
            .push((Bytes::from_static(b"t"), Bytes::from_static(tag)));
        for i in 0..n {
            let mut e = LogEvent::new(0);
            e.set(Bytes::from_static(b"i"), Bytes::from(i.to_string()));
            g.events.push(e);
        }
        g
    }

    fn agg(detail: Value) -> Box<dyn Aggregator> {
        match build(&detail, &PluginContext::for_check("t")) {
            Ok(a) => a,
            Err(e) => panic!("build: {e:?}"),
        }
    }

    fn seq(g: &EventGroup) -> u64 {
        let id = g.tags.last().unwrap();
        assert_eq!(id.0.as_ref(), b"__pack_id__");
        let s = std::str::from_utf8(&id.1).unwrap();
        u64::from_str_radix(s.rsplit_once('-').unwrap().1, 16).unwrap()
    }

    #[test]
    fn splits_at_max_count_and_numbers_without_gaps() {
        let mut a = agg(serde_json::json!({"MaxLogCount": 10, "Topic": "top"}));
        let mut out = Vec::new();
        a.add(group(b"s", 25, b"x"), &mut out);
        assert_eq!(
            out.iter().map(EventGroup::len).collect::<Vec<_>>(),
            [10, 10]
        );
        a.flush(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].len(), 5);
        assert_eq!(out.iter().map(seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(out.iter().all(|g| g.topic.as_ref() == b"top"));
        a.flush(&mut out);
        assert_eq!(out.len(), 3, "nothing left to flush");
    }

    #[test]
    fn sources_and_tags_do_not_mix() {
        let mut a = agg(serde_json::json!({}));
        let mut out = Vec::new();
        a.add(group(b"s1", 3, b"x"), &mut out);
        a.add(group(b"s2", 2, b"x"), &mut out);
        a.add(group(b"s1", 1, b"y"), &mut out);
        assert_eq!(out.len(), 1, "tag change closes the s1 group");
        a.flush(&mut out);
        assert_eq!(out.len(), 3);
        let total: usize = out.iter().map(EventGroup::len).sum();
        assert_eq!(total, 6);
        let s1: Vec<u64> = out
            .iter()
            .filter(|g| g.source.as_ref() == b"s1")
            .map(seq)
            .collect();
        assert_eq!(s1, [1, 2]);
    }

    #[test]
    fn respects_the_size_limit() {
        let mut a = agg(serde_json::json!({"MaxLogCount": 100000}));
        let mut g = EventGroup::new(Bytes::from_static(b"s"));
        let big = Bytes::from(vec![b'x'; 1024 * 1024]);
        for _ in 0..7 {
            let mut e = LogEvent::new(0);
            e.set(Bytes::from_static(b"c"), big.clone());
            g.events.push(e);
        }
        let mut out = Vec::new();
        a.add(g, &mut out);
        a.flush(&mut out);
        assert!(
            out.iter().all(|g| g.len() <= 2),
            "3 MiB limit: at most 2 x 1 MiB logs"
        );
        assert_eq!(out.iter().map(EventGroup::len).sum::<usize>(), 7);
    }

    #[test]
    fn pack_flag_false_omits_the_tag() {
        let mut a = agg(serde_json::json!({"PackFlag": false}));
        let mut out = Vec::new();
        a.add(group(b"s", 1, b"x"), &mut out);
        a.flush(&mut out);
        assert!(out[0].tag(b"__pack_id__").is_none());
    }
}
