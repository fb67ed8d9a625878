//! `fluentbit::records::decode` (Fluent Bit chunks, msgpack) on arbitrary bytes.
//!
//! Properties: never panics nor exhausts the stack (nesting is bounded); a chunk either
//! decodes or names the offset of a record inside it; decoded events re-encoded with
//! `encode_record` decode to the same times and string contents (except records whose
//! seconds are a group marker's, which only the legacy layout can carry).
#![no_main]

use bytes::Bytes;
use fluentbit::records::{decode, encode_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let chunk = Bytes::copy_from_slice(data);
    match decode(&chunk) {
        Err(bad) => assert!(bad.offset <= data.len(), "offset {} past the chunk", bad.offset),
        Ok(d) => {
            let events: Vec<_> = d.events.iter().filter(|e| e.time < 0xFFFF_FFFE).collect();
            let mut again = Vec::new();
            for e in &events {
                encode_record(
                    &mut again,
                    e.time,
                    e.time_ns.unwrap_or(0),
                    e.contents.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
                );
            }
            let back = decode(&Bytes::from(again)).expect("our own encoding decodes");
            assert_eq!(back.events.len(), events.len());
            for (a, b) in back.events.iter().zip(&events) {
                assert_eq!((a.time, a.time_ns), (b.time, b.time_ns));
                assert_eq!(a.contents, b.contents);
            }
        }
    }
});
