//! Transcoding of non-UTF-8 file encodings (GBK) to UTF-8.
//!
//! In GBK the second byte of a two-byte character is 0x40..=0xFE and the first 0x81..=0xFE, so
//! `"\n"` (0x0A) never occurs inside a multi-byte character: raw GBK can be split on `"\n"`
//! (see the sibling `split` module) before each record is transcoded on its own.

use encoding_rs::{CoderResult, GBK};

/// Appends the UTF-8 transcoding of GBK bytes `src` to `out` (invalid sequences become U+FFFD).
/// Returns nothing. `src` is taken as complete: a lead byte at its very end is invalid too.
pub(crate) fn gbk_to_utf8(src: &[u8], out: &mut Vec<u8>) {
    let mut decoder = GBK.new_decoder_without_bom_handling();
    let need = decoder
        .max_utf8_buffer_length(src.len())
        .unwrap_or(src.len().saturating_mul(3).saturating_add(3));
    let old = out.len();
    out.resize(old + need, 0);
    let (result, _read, written, _replaced) = decoder.decode_to_utf8(src, &mut out[old..], true);
    debug_assert_eq!(result, CoderResult::InputEmpty);
    out.truncate(old + written);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(src: &[u8]) -> Vec<u8> {
        let mut out = b"x".to_vec();
        gbk_to_utf8(src, &mut out);
        out
    }

    #[test]
    fn ascii_unchanged() {
        assert_eq!(conv(b"hello, world\r\n"), b"xhello, world\r\n");
        assert_eq!(conv(b""), b"x");
    }

    #[test]
    fn chinese() {
        assert_eq!(conv(&[0xD6, 0xD0, 0xCE, 0xC4]), "x中文".as_bytes());
        assert_eq!(
            conv(&[b'a', 0xD6, 0xD0, b'\n', 0xCE, 0xC4]),
            "xa中\n文".as_bytes()
        );
    }

    #[test]
    fn invalid_becomes_replacement() {
        assert_eq!(conv(&[0xFF]), "x\u{FFFD}".as_bytes());
        assert_eq!(conv(&[b'a', 0xD6]), "xa\u{FFFD}".as_bytes());
        assert_eq!(conv(&[0xD6, b'\n']), "x\u{FFFD}\n".as_bytes());
    }

    #[test]
    fn newline_never_inside_a_character() {
        // Every two-byte sequence ending in 0x0A decodes with the "\n" intact.
        for lead in 0x81..=0xFEu8 {
            let out = conv(&[lead, b'\n']);
            assert!(out.ends_with(b"\n"), "lead {lead:#x}");
        }
    }
}
