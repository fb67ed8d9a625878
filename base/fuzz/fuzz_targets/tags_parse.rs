//! `engine::event::parse_tags` (`k1~=~v1^^^k2~=~v2`) on arbitrary bytes.
//!
//! Properties: never panics; every key and value is a slice of the input, in order and
//! non-overlapping; the result equals a naive reference split; and re-joining the tags gives a
//! string that parses back to the same tags.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use engine::event::parse_tags;

const PAIR: &[u8] = b"^^^";
const KV: &[u8] = b"~=~";

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    (0..=hay.len().checked_sub(needle.len())?).find(|&i| hay[i..].starts_with(needle))
}

/// The documented format, written independently: split on the first `^^^` each time, skip
/// empty pairs, split each pair on its first `~=~` (none: empty value). Returns offsets.
fn reference(data: &[u8]) -> Vec<((usize, usize), (usize, usize))> {
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = find(&data[start..], PAIR).map_or(data.len(), |i| start + i);
        if end > start {
            match find(&data[start..end], KV) {
                Some(i) => out.push(((start, start + i), (start + i + KV.len(), end))),
                None => out.push(((start, end), (end, end))),
            }
        }
        if end == data.len() {
            return out;
        }
        start = end + PAIR.len();
    }
}

/// Offset range of `piece` within `input` (panics when it is not a slice of it).
fn range_in(input: &Bytes, piece: &Bytes) -> Option<(usize, usize)> {
    if piece.is_empty() {
        return None; // an empty Bytes may be a fresh static one
    }
    let base = input.as_ptr() as usize;
    let p = piece.as_ptr() as usize;
    assert!(
        p >= base && p + piece.len() <= base + input.len(),
        "tag piece {piece:?} is not a slice of the input"
    );
    Some((p - base, p - base + piece.len()))
}

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);
    let tags = parse_tags(&input);

    let want = reference(data);
    assert_eq!(tags.len(), want.len(), "tag count differs from reference");
    let mut last_end = 0;
    for ((k, v), (kr, vr)) in tags.iter().zip(&want) {
        assert_eq!(k.as_ref(), &data[kr.0..kr.1], "key differs from reference");
        assert_eq!(
            v.as_ref(),
            &data[vr.0..vr.1],
            "value differs from reference"
        );
        if let Some((s, e)) = range_in(&input, k) {
            assert_eq!((s, e), *kr, "key is not the expected slice");
            assert!(s >= last_end, "tags overlap or are out of order");
            last_end = e;
        }
        if let Some((s, e)) = range_in(&input, v) {
            assert_eq!((s, e), *vr, "value is not the expected slice");
            assert!(s >= last_end, "tags overlap or are out of order");
            last_end = e;
        }
        assert!(find(k, KV).is_none(), "key contains ~=~");
        assert!(
            find(k, PAIR).is_none() && find(v, PAIR).is_none(),
            "piece contains ^^^"
        );
    }

    // Re-join and parse again. `k~=~v` re-splits at the same place because `k` came from a
    // first-`~=~` split; a valueless key whose `k~=~` would split earlier (k ends in `~` or
    // `~=`) is written bare, as it must have been in the input.
    let mut joined = Vec::new();
    for (i, (k, v)) in tags.iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(PAIR);
        }
        let mut piece = k.to_vec();
        piece.extend_from_slice(KV);
        if v.is_empty() && find(&piece, KV) != Some(k.len()) {
            piece.truncate(k.len());
        } else {
            piece.extend_from_slice(v);
        }
        joined.extend_from_slice(&piece);
    }
    let again = parse_tags(&Bytes::from(joined.clone()));
    assert_eq!(again, tags, "re-joined tags {joined:?} parse differently");
});
