//! LoongCollector's `PipelineEventGroup` (what `ProcessPipelineEventGroup` receives) on
//! arbitrary bytes: decoded with the base's prost messages and turned into engine events.
//!
//! Properties: never panics; a log group keeps every log and every content in order; a metric
//! group gives one log per metric; a span group gives no log and counts every span; the
//! converted group encodes as a `LogGroup` that decodes again to the same events.
#![no_main]

use bytes::Bytes;
use engine::proto::{decode_log_group, encode_log_group, GroupHeader};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use wire::models::{PipelineEventGroup, PipelineEvents};

fuzz_target!(|data: &[u8]| {
    let Ok(g) = PipelineEventGroup::decode(data) else {
        return;
    };
    let expected: Vec<usize> = match &g.events {
        Some(PipelineEvents::Logs(l)) => l.events.iter().map(|e| e.contents.len()).collect(),
        Some(PipelineEvents::Metrics(m)) => vec![usize::MAX; m.events.len()],
        _ => Vec::new(),
    };
    let spans = match &g.events {
        Some(PipelineEvents::Spans(s)) => s.events.len(),
        _ => 0,
    };
    let c = PluginBase::loong::convert(g, "FUZZ");
    assert_eq!(c.spans, spans);
    let Some(group) = c.group else {
        assert!(expected.is_empty());
        return;
    };
    assert_eq!(group.events.len(), expected.len());
    for (e, n) in group.events.iter().zip(&expected) {
        if *n != usize::MAX {
            assert_eq!(e.contents.len(), *n);
        }
    }
    let mut out = Vec::new();
    encode_log_group(
        &mut out,
        &group,
        &GroupHeader {
            category: "c",
            source: "s",
            with_time_ns: true,
        },
    );
    let back = decode_log_group(&Bytes::from(out)).expect("our own encoding decodes");
    assert_eq!(back.events.len(), group.events.len());
    for (a, b) in back.events.iter().zip(&group.events) {
        assert_eq!(a.contents, b.contents);
        assert_eq!(a.time, b.time);
    }
});
