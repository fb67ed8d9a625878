//! The zero-copy protobuf decoders on arbitrary bytes.
//!
//! Properties: decoding never panics; every decoded key/value is a slice of the input; a decoded
//! group re-encoded with `encode_log_group` decodes again to the same events, tags and topic
//! (`Time_ns` is kept only when the header asks for it); the lazy decoder accepts exactly what
//! the full one does, and what it sends on unchanged decodes to the same events.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use engine::event::{EventGroup, LogEvent};
use engine::proto::{
    decode_log, decode_log_group, decode_log_group_lazy, encode_log_group, GroupHeader,
};

fn assert_within(input: &Bytes, piece: &Bytes) {
    if piece.is_empty() {
        return;
    }
    let (base, p) = (input.as_ptr() as usize, piece.as_ptr() as usize);
    assert!(
        p >= base && p + piece.len() <= base + input.len(),
        "decoded bytes are not a slice of the input"
    );
}

fn check_event_slices(input: &Bytes, event: &LogEvent) {
    for (k, v) in &event.contents {
        assert_within(input, k);
        assert_within(input, v);
    }
}

fn without_time_ns(group: &EventGroup) -> Vec<LogEvent> {
    let mut events = group.events.clone();
    for e in &mut events {
        e.time_ns = None;
    }
    events
}

fn roundtrip(group: &EventGroup, header: &GroupHeader<'_>) -> EventGroup {
    let mut out = Vec::new();
    encode_log_group(&mut out, group, header);
    let again = Bytes::from(out);
    match decode_log_group(&again) {
        Ok(g) => g,
        Err(e) => panic!("re-encoded group does not decode: {e} ({again:?})"),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);

    if let Ok(event) = decode_log(&input) {
        check_event_slices(&input, &event);
        // A lone Log re-encoded as a one-event group must decode to the same event.
        let group = EventGroup {
            events: vec![event.clone()],
            ..EventGroup::default()
        };
        let header = GroupHeader {
            with_time_ns: true,
            ..GroupHeader::default()
        };
        assert_eq!(roundtrip(&group, &header).events, vec![event]);
    }

    let lazy = decode_log_group_lazy(&input);
    let Ok(group) = decode_log_group(&input) else {
        assert!(lazy.is_err(), "the lazy decoder accepted what the full one rejects");
        return;
    };
    let lazy = lazy.expect("the lazy decoder rejected what the full one accepts");
    assert_eq!(lazy, group, "lazy and full decoding differ");
    for with_time_ns in [false, true] {
        let header = GroupHeader {
            with_time_ns,
            ..GroupHeader::default()
        };
        assert_eq!(roundtrip(&lazy, &header), roundtrip(&group, &header));
    }
    for e in &group.events {
        check_event_slices(&input, e);
    }
    for (k, v) in &group.tags {
        assert_within(&input, k);
        assert_within(&input, v);
    }
    assert_within(&input, &group.topic);

    // Default header: Category/Source empty (not written), Time_ns dropped.
    let plain = roundtrip(&group, &GroupHeader::default());
    assert_eq!(plain.events, without_time_ns(&group), "events changed");
    assert_eq!(plain.tags, group.tags, "tags changed");
    assert_eq!(plain.topic, group.topic, "topic changed");

    // Full header: Category/Source are written but not decoded; Time_ns survives.
    let header = GroupHeader {
        category: "logstore",
        source: "10.0.0.1",
        with_time_ns: true,
    };
    let full = roundtrip(&group, &header);
    assert_eq!(full.events, group.events, "events changed (with Time_ns)");
    assert_eq!(full.tags, group.tags, "tags changed (with header)");
    assert_eq!(full.topic, group.topic, "topic changed (with header)");
});
