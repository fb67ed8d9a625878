//! Cutting records out of a read buffer without copying: single lines, or multiline records
//! recognised by full-line regexes (iLogtail's StartPattern / ContinuePattern / EndPattern).
//!
//! [`Splitter::split`] only returns ranges into the buffer it is given; its state across calls
//! is kept as offsets relative to the first byte the caller still holds (`buf[done..]`), so the
//! caller must carry exactly that tail over to the front of the next buffer.
//!
//! A line longer than `max_line_bytes` is classified by its first `max_line_bytes` bytes (the
//! patterns are full-line matches, so a start pattern ending in `.*` still works); such a record
//! is emitted in pieces as soon as the bytes are in the buffer. The carried tail stays at most
//! `max_line_bytes + 1` bytes in single-line mode and `2 * max_line_bytes + 3` in multiline mode.
//!
//! Multiline rules follow iLogtail: with start + end, start lines inside a record are content;
//! with a ContinuePattern and an EndPattern, a line matching neither makes the open record and
//! itself unmatched; on flush an open record is emitted when there is no EndPattern, else its
//! lines are unmatched. A record already partly emitted as pieces is always finished as a
//! record. Empty lines are skipped unless inside a record. Patterns match bytes
//! (`regex::bytes`), so GBK lines only match where the pattern does not need their non-ASCII part.

use memchr::memchr;
use regex::bytes::Regex;

/// What to do with lines that belong to no multiline record (UnmatchedContentTreatment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unmatched {
    /// Each such line is a record of its own.
    SingleLine,
    /// Such lines are dropped and counted in [`Splitter::discarded`].
    Discard,
}

/// Multiline options: full-line patterns and the unmatched treatment.
#[derive(Debug, Clone)]
pub(crate) struct Multiline {
    /// StartPattern: a line matching it begins a record.
    pub(crate) start: Option<Regex>,
    /// ContinuePattern: a line matching it continues the record.
    pub(crate) cont: Option<Regex>,
    /// EndPattern: a line matching it ends the record (inclusive).
    pub(crate) end: Option<Regex>,
    /// UnmatchedContentTreatment.
    pub(crate) unmatched: Unmatched,
}

impl Multiline {
    /// Compiles the patterns as full-line matches (`^(?:p)$`, see [`full_line`]); an empty
    /// pattern counts as unset.
    /// Errors are `(field, message)`, field `Multiline.StartPattern` etc., or `Multiline` when
    /// neither a start nor an end pattern is given (a ContinuePattern alone is not enough).
    pub(crate) fn new(
        start: Option<&str>,
        cont: Option<&str>,
        end: Option<&str>,
        unmatched: Unmatched,
    ) -> Result<Self, (String, String)> {
        let compile = |p: Option<&str>, field: &str| match p.filter(|p| !p.is_empty()) {
            None => Ok(None),
            Some(p) => Regex::new(&full_line(p))
                .map(Some)
                .map_err(|e| (format!("Multiline.{field}"), e.to_string())),
        };
        let m = Multiline {
            start: compile(start, "StartPattern")?,
            cont: compile(cont, "ContinuePattern")?,
            end: compile(end, "EndPattern")?,
            unmatched,
        };
        if m.start.is_none() && m.end.is_none() {
            let msg =
                "needs a StartPattern or an EndPattern (a ContinuePattern alone is not enough)";
            return Err(("Multiline".into(), msg.into()));
        }
        Ok(m)
    }
}

/// Options of a [`Splitter`].
#[derive(Debug, Clone)]
pub(crate) struct SplitOptions {
    /// Longest record emitted whole; longer ones are cut into pieces (0 is taken as 1).
    pub(crate) max_line_bytes: usize,
    /// Multiline mode, or single lines when `None`.
    pub(crate) multiline: Option<Multiline>,
}

/// One record: a range of the buffer passed to [`Splitter::split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    /// Offset of the first byte in the buffer.
    pub(crate) start: usize,
    /// Exclusive end; excludes the terminating `"\n"` and a `"\r"` just before it.
    pub(crate) end: usize,
    /// 0: a whole record; n >= 1: the n-th piece of a record longer than `max_line_bytes`.
    pub(crate) cut: u32,
}

/// Where records go.
type Out = Vec<Record>;

/// A record being built: offsets relative to the current buffer.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// First byte not yet emitted (moves on as pieces are emitted).
    rs: usize,
    /// Pieces emitted so far.
    cut: u32,
    /// Content end of the last complete line in the record.
    last: usize,
}

/// A [`Record`].
fn record(start: usize, end: usize, cut: u32) -> Record {
    Record { start, end, cut }
}

/// A record from `rs` whose last complete line ends at `last`, nothing emitted yet.
fn open(rs: usize, last: usize) -> Open {
    Open { rs, cut: 0, last }
}

/// An incomplete over-long line that has already been classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Long {
    /// It belongs to the open record, which goes on after it.
    Joined,
    /// The open record ends with it.
    Closing,
    /// It is being discarded.
    Discard,
}

/// What a line does to the open record before [`Act`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pre {
    /// Nothing.
    Keep,
    /// The open record is emitted.
    Close,
    /// The open record is unmatched.
    Drop,
}

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// Begins a record, or joins the open one.
    Join,
    /// Ends the open record (inclusive).
    End,
    /// A record of its own.
    Single,
    /// Unmatched.
    Unmatched,
}

/// The content end of a line whose `"\n"` is at `nl`: strips one `"\r"` at or after `lo`.
#[inline]
fn strip_cr(buf: &[u8], lo: usize, nl: usize) -> usize {
    nl - usize::from(nl > lo && buf[nl - 1] == b'\r')
}

/// Classifies a line (or the head of an over-long one) like iLogtail does.
/// The regex matching whole lines for pattern `p`: `^(?:p)$`, or `^(?:p)` when `p` ends with
/// `.*` at its top level (the usual `\d{4}-\d{2}-\d{2} .*`): any rest of the line matches it
/// (a line holds no newline), so the match may stop after the prefix instead of running to the
/// end of every line. The rest may then be any bytes, also ones that are not UTF-8 (GBK text
/// after a date, say), where `.` would have refused them.
fn full_line(p: &str) -> String {
    use regex_syntax::hir::{Dot, HirKind};
    let ends_with_any = regex_syntax::Parser::new()
        .parse(p)
        .ok()
        .is_some_and(|h| match h.kind() {
            HirKind::Concat(parts) => parts.last().is_some_and(|last| match last.kind() {
                HirKind::Repetition(r) => {
                    r.min == 0
                        && r.max.is_none()
                        && [Dot::AnyCharExceptLF, Dot::AnyChar]
                            .iter()
                            .any(|d| *r.sub == regex_syntax::hir::Hir::dot(*d))
                }
                _ => false,
            }),
            _ => false,
        });
    if ends_with_any {
        format!("^(?:{p})")
    } else {
        format!("^(?:{p})$")
    }
}

fn classify(ml: &Multiline, open: bool, line: &[u8]) -> (Pre, Act) {
    // Each pattern is matched at most once per line (the decisions below ask again).
    let memo = |r: &Option<Regex>, seen: &std::cell::Cell<Option<bool>>| match seen.get() {
        Some(v) => v,
        None => {
            let v = r.as_ref().is_some_and(|r| r.is_match(line));
            seen.set(Some(v));
            v
        }
    };
    let (ms, mc, me) = Default::default();
    let start = || memo(&ml.start, &ms);
    let cont = || memo(&ml.cont, &mc);
    let end = || memo(&ml.end, &me);
    let (s, c, e) = (ml.start.is_some(), ml.cont.is_some(), ml.end.is_some());
    let act = if !open {
        if (s || c) && (if s { start() } else { cont() }) {
            Act::Join
        } else if !s && end() {
            Act::Single
        } else if !s && !c {
            Act::Join // end only: any other line begins a record
        } else {
            Act::Unmatched
        }
    } else if cont() || (e && !c && !end()) || (!e && !c && !start()) {
        Act::Join
    } else if e {
        return if end() {
            (Pre::Keep, Act::End)
        } else {
            (Pre::Drop, Act::Unmatched)
        };
    } else if start() {
        return (Pre::Close, Act::Join);
    } else {
        return (Pre::Close, Act::Unmatched);
    };
    (Pre::Keep, act)
}

/// Cuts lines or multiline records out of successive read buffers.
#[derive(Debug)]
pub(crate) struct Splitter {
    /// `max_line_bytes`, at least 1.
    max: usize,
    /// Multiline options.
    ml: Option<Multiline>,
    /// Where the next line (or the rest of an over-long line) starts in the next buffer.
    scan: usize,
    /// The record being built (multiline), or the over-long line being cut.
    rec: Option<Open>,
    /// Set while the line at `scan` is an over-long line already classified.
    long: Option<Long>,
    /// Lines and bytes discarded so far.
    discarded: (u64, u64),
}

impl Splitter {
    /// A splitter with no data seen yet.
    pub(crate) fn new(o: SplitOptions) -> Self {
        let (max, ml) = (o.max_line_bytes.max(1), o.multiline);
        Splitter {
            max,
            ml,
            scan: 0,
            rec: None,
            long: None,
            discarded: (0, 0),
        }
    }

    /// Lines discarded so far (UnmatchedContentTreatment discard), and their bytes.
    pub(crate) fn discarded(&self) -> (u64, u64) {
        self.discarded
    }

    /// `buf` holds the bytes from the first byte not yet done with (the caller carries the
    /// undone tail of one call over to the front of the next buffer). Pushes complete records
    /// (ranges into `buf`) to `out` in order and returns how many leading bytes of `buf` are done
    /// with (emitted or discarded): the caller keeps `buf[done..]` for the next call.
    ///
    /// `flush == true`: no more data is coming for now (a timeout, or the file is being closed):
    /// the incomplete tail (a last line without `"\n"`, the multiline record being built) is
    /// emitted too, so done == buf.len().
    pub(crate) fn split(&mut self, buf: &[u8], flush: bool, out: &mut Vec<Record>) -> usize {
        let mut pos = self.scan.min(buf.len());
        if self.long.is_some() {
            let Some(i) = memchr(b'\n', &buf[pos..]) else {
                return self.tail(buf, pos, flush, out);
            };
            self.finish_long(buf, pos, pos + i, out);
            pos += i + 1;
        }
        let (max, multi) = (self.max, self.ml.is_some());
        while let Some(i) = memchr(b'\n', &buf[pos..]) {
            let le = strip_cr(buf, pos, pos + i);
            if multi {
                self.line(buf, pos, Some(le), out);
            } else if le - pos <= max {
                // The hot path: one memchr and at most one push per line.
                if le > pos {
                    out.push(record(pos, le, 0));
                }
            } else {
                self.close(buf, open(pos, le), le, out);
            }
            pos += i + 1;
        }
        self.tail(buf, pos, flush, out)
    }

    /// Handles the bytes after the last `"\n"` (from `pos`), then returns `done`.
    fn tail(&mut self, buf: &[u8], pos: usize, flush: bool, out: &mut Out) -> usize {
        let len = buf.len();
        if flush {
            if self.long.is_some() {
                self.finish_long(buf, pos, len, out);
            } else if pos < len {
                self.line(buf, pos, Some(strip_cr(buf, pos, len)), out);
            }
            if let Some(r) = self.rec.take() {
                if self.ml.as_ref().is_some_and(|m| m.end.is_some()) {
                    self.drop_rec(buf, r, out);
                } else {
                    self.close(buf, r, r.last, out);
                }
            }
            self.scan = 0;
            return len;
        }
        self.scan = pos;
        if self.long.is_none() && len - pos > self.max.saturating_add(1) {
            self.line(buf, pos, None, out);
        } else if self.long == Some(Long::Discard) && len - pos >= 2 {
            self.discarded.1 += (len - 1 - pos) as u64;
        } else if self.long.is_some() {
            self.grow(buf, len.saturating_sub(1), out);
        }
        match self.long {
            Some(Long::Discard) => self.scan = self.scan.max(len.saturating_sub(1)),
            Some(_) => self.scan = len,
            None => {}
        }
        let done = self.rec.map_or(self.scan, |r| r.rs);
        self.scan -= done;
        if let Some(r) = &mut self.rec {
            r.rs -= done;
            r.last = r.last.saturating_sub(done);
        }
        done
    }

    /// Ends the over-long line classified earlier (from `pos`), its content ending before `nl`.
    fn finish_long(&mut self, buf: &[u8], pos: usize, nl: usize, out: &mut Out) {
        match (self.long.take(), self.rec) {
            (Some(Long::Joined), Some(mut r)) => {
                let last = strip_cr(buf, r.rs, nl);
                r.last = last;
                self.pieces(buf, &mut r, last, out);
                self.rec = Some(r);
            }
            (Some(Long::Closing), Some(r)) => {
                self.rec = None;
                self.close(buf, r, strip_cr(buf, r.rs, nl), out);
            }
            _ => self.count(strip_cr(buf, pos, nl) - pos),
        }
    }

    /// Counts one discarded line of `n` more bytes.
    fn count(&mut self, n: usize) {
        self.discarded.0 += 1;
        self.discarded.1 += n as u64;
    }

    /// A line from `ls`: complete (`le` is its content end) or the head of an over-long one
    /// (`le == None`: all of `buf` but its last byte is surely content).
    fn line(&mut self, buf: &[u8], ls: usize, le: Option<usize>, out: &mut Out) {
        let Some(ml) = &self.ml else {
            return self.unmatched(buf, ls, le, Unmatched::SingleLine, out);
        };
        let k = le.unwrap_or(buf.len() - 1);
        let (pre, act) = classify(
            ml,
            self.rec.is_some(),
            &buf[ls..k.min(ls.saturating_add(self.max))],
        );
        let treat = ml.unmatched;
        match (pre, self.rec.take()) {
            (Pre::Keep, r) => self.rec = r,
            (Pre::Close, Some(r)) => self.close(buf, r, r.last, out),
            (Pre::Drop, Some(r)) => self.drop_rec(buf, r, out),
            _ => {}
        }
        match act {
            Act::Join | Act::End if le.is_none() => {
                self.rec.get_or_insert(open(ls, ls));
                self.long = Some([Long::Joined, Long::Closing][usize::from(act == Act::End)]);
                self.grow(buf, k, out);
            }
            Act::Join => {
                self.rec.get_or_insert(open(ls, k)).last = k;
                self.grow(buf, k, out);
            }
            Act::End => {
                let r = self.rec.take().unwrap_or(open(ls, k));
                self.close(buf, r, k, out);
            }
            Act::Single => self.unmatched(buf, ls, le, Unmatched::SingleLine, out),
            Act::Unmatched => self.unmatched(buf, ls, le, treat, out),
        }
    }

    /// A line that is a record of its own (`SingleLine`) or is discarded; empty lines are skipped.
    fn unmatched(&mut self, buf: &[u8], ls: usize, le: Option<usize>, t: Unmatched, out: &mut Out) {
        match (t, le) {
            (_, Some(le)) if le == ls => {}
            (Unmatched::SingleLine, Some(le)) => self.close(buf, open(ls, le), le, out),
            (Unmatched::SingleLine, None) => {
                self.rec = Some(open(ls, ls));
                self.long = Some(Long::Closing);
                self.grow(buf, buf.len() - 1, out);
            }
            (Unmatched::Discard, Some(le)) => self.count(le - ls),
            (Unmatched::Discard, None) => {
                self.long = Some(Long::Discard);
                self.discarded.1 += (buf.len() - 1 - ls) as u64;
            }
        }
    }

    /// Treats the lines of an unfinished record as unmatched (a record already cut is emitted).
    fn drop_rec(&mut self, buf: &[u8], r: Open, out: &mut Out) {
        if r.cut > 0 {
            return self.close(buf, r, r.last, out);
        }
        let t = self
            .ml
            .as_ref()
            .map_or(Unmatched::SingleLine, |m| m.unmatched);
        let mut p = r.rs;
        while let Some(i) = memchr(b'\n', &buf[p..r.last]) {
            self.unmatched(buf, p, Some(strip_cr(buf, p, p + i)), t, out);
            p += i + 1;
        }
        self.unmatched(buf, p, Some(r.last), t, out);
    }

    /// Emits pieces of the open record while more than `max` bytes before `k` are pending.
    fn grow(&mut self, buf: &[u8], k: usize, out: &mut Out) {
        if let Some(mut r) = self.rec {
            self.pieces(buf, &mut r, k, out);
            self.rec = Some(r);
        }
    }

    /// Emits `max`-byte pieces of `r` while more than `max` bytes before `k` are pending, each cut
    /// at a UTF-8 char boundary when one is within its last 3 bytes.
    fn pieces(&self, buf: &[u8], r: &mut Open, k: usize, out: &mut Out) {
        while k.saturating_sub(r.rs) > self.max {
            let p = r.rs + self.max;
            let boundary = (0..self.max.min(4))
                .map(|d| p - d)
                .find(|&q| buf[q] & 0xC0 != 0x80);
            let (start, end) = (r.rs, boundary.unwrap_or(p));
            r.cut = r.cut.saturating_add(1);
            out.push(record(start, end, r.cut));
            r.rs = end;
        }
    }

    /// Emits the rest of `r` up to `end`: whole, or as pieces with the last one numbered too.
    fn close(&self, buf: &[u8], mut r: Open, end: usize, out: &mut Out) {
        self.pieces(buf, &mut r, end, out);
        if end > r.rs {
            let cut = if r.cut > 0 {
                r.cut.saturating_add(1)
            } else {
                0
            };
            out.push(record(r.rs, end, cut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_dot_star_needs_no_end_anchor() {
        assert_eq!(full_line(r"\d{4}-\d{2} .*"), r"^(?:\d{4}-\d{2} .*)");
        assert_eq!(
            full_line(r"a|b.*"),
            r"^(?:a|b.*)$",
            "the .* belongs to one branch"
        );
        assert_eq!(full_line(r"a\.*"), r"^(?:a\.*)$", "dots, not any character");
        assert_eq!(
            full_line(r"a.*?"),
            r"^(?:a.*?)",
            "lazy or not, whether it matches"
        );
        assert_eq!(full_line(r"(a.*)"), r"^(?:(a.*))$");
        let ml = Multiline::new(Some(r"\d+ .*"), None, None, Unmatched::SingleLine).unwrap();
        let start = ml.start.unwrap();
        assert!(start.is_match(b"2026 \xd6\xd0 gbk after the date"));
        assert!(!start.is_match(b"x2026 y"));
    }
    use proptest::prelude::*;

    type Recs = Vec<(Vec<u8>, u32)>;

    /// Mode `m`: 0 single-line, then each valid combination of `S.*`, `C.*` and `.*E`.
    fn sp(max: usize, m: usize, discard: bool) -> Splitter {
        let u = [Unmatched::SingleLine, Unmatched::Discard][usize::from(discard)];
        let (s, c, e) = (Some("S.*"), Some("C.*"), Some(".*E"));
        let pats = [
            (s, None, None),
            (s, c, None),
            (s, None, e),
            (s, c, e),
            (None, c, e),
        ];
        let multiline = match m {
            0 => None,
            1..=5 => Some(pats[m - 1]),
            _ => Some((None, None, e)),
        };
        let multiline = multiline.map(|(s, c, e)| Multiline::new(s, c, e, u).unwrap());
        Splitter::new(SplitOptions {
            max_line_bytes: max,
            multiline,
        })
    }

    /// Feeds `data` in chunks of the given sizes (cycled) like the caller will, flushing at
    /// the end; returns the records and the longest tail carried over between calls.
    fn feed(s: &mut Splitter, data: &[u8], sizes: &[usize]) -> (Recs, usize) {
        let (mut carry, mut recs, mut out, mut at, mut most) = (vec![], vec![], vec![], 0, 0);
        for i in 0.. {
            let n = sizes
                .get(i % sizes.len().max(1))
                .copied()
                .unwrap_or(data.len());
            let next = (at + n).min(data.len());
            carry.extend_from_slice(&data[at..next]);
            at = next;
            out.clear();
            let done = s.split(&carry, at == data.len(), &mut out);
            recs.extend(out.iter().map(|r| (carry[r.start..r.end].to_vec(), r.cut)));
            carry.drain(..done);
            if at == data.len() {
                assert!(carry.is_empty());
                return (recs, most);
            }
            most = most.max(carry.len());
        }
        unreachable!()
    }

    /// Records as `text#cut` (`#0` left out) joined by `|`.
    fn show(recs: &Recs) -> String {
        let one = |(t, c): &(Vec<u8>, u32)| {
            let t = String::from_utf8_lossy(t);
            if *c == 0 {
                t.into_owned()
            } else {
                format!("{t}#{c}")
            }
        };
        recs.iter().map(one).collect::<Vec<_>>().join("|")
    }

    /// Mode, discard, max, input, the records as [`show`] writes them, `discarded()`.
    type Case = (usize, bool, usize, &'static str, &'static str, (u64, u64));

    #[test]
    fn cases() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (0, false, 100, "a\nbb\r\n\n\r\nccc", "a|bb|ccc", (0, 0)),
            (0, false, 4, "abcdefghij\nxy\nabcd\nabcd\r\nabcde\n", "abcd#1|efgh#2|ij#3|xy|abcd|abcd|abcd#1|e#2", (0, 0)),
            (0, false, 4, "a中b\nab中\n", "a中#1|b#2|ab#1|中#2", (0, 0)),
            (1, false, 100, "x\nS1\na\n\nS2\r\nb\r\n", "x|S1\na\n|S2\r\nb", (0, 0)),
            (1, true, 100, "x\nyy\nS1\na\nS2", "S1\na|S2", (2, 3)),
            (2, false, 100, "S1\nC1\nX\nC2\nS2\nS3\r\nC3\r\n", "S1\nC1|X|C2|S2|S3\r\nC3", (0, 0)),
            (3, false, 100, "x\nS1\nm\nS\n1E\ny\nS2\nm", "x|S1\nm\nS\n1E|y|S2|m", (0, 0)),
            (4, true, 100, "S\nC\nE\nS\nX\nE\nS\nC", "S\nC\nE", (5, 5)),
            (5, false, 100, "C1\nC2\nE\nE\nC3\nX\nZ\nC4", "C1\nC2\nE|E|C3|X|Z|C4", (0, 0)),
            (6, false, 100, "a\nbE\ncE\n\nd\ne", "a\nbE|cE|d|e", (0, 0)),
            (6, true, 100, "a\nbE\nd\ne", "a\nbE", (2, 2)),
            (1, false, 10, "S1111111111111111111111111\nxxxxx\nS2\n", "S111111111#1|1111111111#2|111111\nxxx#3|xx#4|S2", (0, 0)),
            // An over-long line is classified by its first max bytes.
            (6, false, 4, "abcEdefg\nxyzE\nabcdefE\n", "abcE#1|defg#2|xyzE|abcd#1|efE#2", (0, 0)),
            (1, true, 4, "abcdefgh\r\nS\n", "S", (1, 8)),
        ];
        for &(m, discard, max, input, want, dropped) in cases {
            for sizes in [&[][..], &[1], &[2], &[3, 5]] {
                let mut s = sp(max, m, discard);
                let (recs, most) = feed(&mut s, input.as_bytes(), sizes);
                assert_eq!(show(&recs), want, "{input:?} {sizes:?}");
                assert_eq!(s.discarded(), dropped, "{input:?} {sizes:?}");
                assert!(most <= 2 * max + 3, "{input:?} {sizes:?}");
            }
        }
    }

    #[test]
    fn offsets_and_done() {
        let (mut s, mut out) = (sp(100, 0, false), vec![]);
        assert_eq!(s.split(b"a\nbb\r\n\n\r\nccc", false, &mut out), 9);
        assert_eq!(out, [record(0, 1, 0), record(2, 4, 0)]);
        out.clear();
        assert_eq!(s.split(b"ccc", true, &mut out), 3);
        assert_eq!(
            s.split(b"", true, &mut out) + s.split(b"\r", true, &mut out),
            1
        );
        assert_eq!(out, [record(0, 3, 0)]);
        // Pieces of a long line are emitted before its "\n" comes.
        let mut s = sp(4, 0, false);
        assert_eq!(s.split(b"abcdefghij", false, &mut out), 8);
        assert_eq!(out[1..], [record(0, 4, 1), record(4, 8, 2)]);
        assert_eq!(s.split(b"ij\nk\n", false, &mut out), 5);
        assert_eq!(out[3..], [record(0, 2, 3), record(3, 4, 0)]);
    }

    #[test]
    fn java_stack_traces() {
        let trace = "2024-01-01 10:00:00 ERROR boom\njava.lang.RuntimeException: x\n\
            \tat a.b(C.java:1)\n\tat d.e(F.java:2)";
        let data = format!("garbage\n{trace}\n2024-01-01 10:00:01 INFO ok\n");
        let start = Some(r"\d{4}-\d{2}-\d{2} .*");
        let ml = Multiline::new(start, None, None, Unmatched::SingleLine).unwrap();
        let mut s = Splitter::new(SplitOptions {
            max_line_bytes: 1000,
            multiline: Some(ml),
        });
        let mut out = vec![];
        let done = s.split(data.as_bytes(), false, &mut out);
        let got: Vec<&str> = out.iter().map(|r| &data[r.start..r.end]).collect();
        assert_eq!(got, ["garbage", trace]);
        assert_eq!(&data[done..], "2024-01-01 10:00:01 INFO ok\n");
        out.clear();
        s.split(&data.as_bytes()[done..], true, &mut out);
        assert_eq!(out, [record(0, 27, 0)]);
    }

    #[test]
    fn multiline_new() {
        let err = |s, c, e| {
            Multiline::new(s, c, e, Unmatched::SingleLine)
                .unwrap_err()
                .0
        };
        assert_eq!(err(None, Some("a"), None), "Multiline");
        assert_eq!(err(Some(""), None, None), "Multiline");
        assert_eq!(err(Some("("), None, None), "Multiline.StartPattern");
        assert_eq!(err(Some("a"), Some("["), None), "Multiline.ContinuePattern");
        assert_eq!(err(None, None, Some("*")), "Multiline.EndPattern");
        // Full-line matches: `S.*|a` does not match "xS".
        let ml = Multiline::new(Some("S.*|a"), None, None, Unmatched::SingleLine).unwrap();
        let mut s = Splitter::new(SplitOptions {
            max_line_bytes: 9,
            multiline: Some(ml),
        });
        assert_eq!(show(&feed(&mut s, b"a\nxS\nab\nS", &[]).0), "a\nxS\nab|S");
    }

    fn text() -> impl Strategy<Value = Vec<u8>> {
        let tok = prop::sample::select(&["a", "S", "C", "E", "\n", "\n", "\r", "é", "中", " "][..]);
        prop::collection::vec(tok, 0..120).prop_map(|t| t.concat().into_bytes())
    }

    fn lines(data: &[u8]) -> Vec<Vec<u8>> {
        let strip = |l: &[u8]| l.strip_suffix(b"\r").unwrap_or(l).to_vec();
        data.split(|&b| b == b'\n')
            .map(strip)
            .filter(|l| !l.is_empty())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn chunking_does_not_matter(data in text(), max in 1usize..16, m in 0usize..7,
                                    discard: bool, sizes in prop::collection::vec(1usize..24, 1..8)) {
            let (mut a, mut b) = (sp(max, m, discard), sp(max, m, discard));
            let (whole, _) = feed(&mut a, &data, &[]);
            let (chunked, most) = feed(&mut b, &data, &sizes);
            prop_assert_eq!(&whole, &chunked);
            prop_assert_eq!(a.discarded(), b.discarded());
            prop_assert!(most <= if m == 0 { max + 1 } else { 2 * max + 3 }, "tail {}", most);
            prop_assert!(whole.iter().all(|(t, _)| !t.is_empty() && t.len() <= max));
        }

        #[test]
        fn single_lines_are_the_input(data in text(), max in 1usize..16,
                                      sizes in prop::collection::vec(1usize..24, 1..8)) {
            let (recs, _) = feed(&mut sp(usize::MAX, 0, false), &data, &sizes);
            prop_assert!(recs.iter().all(|r| r.1 == 0));
            let joined = recs.into_iter().map(|r| r.0).collect::<Vec<_>>().join(&b'\n');
            prop_assert_eq!(joined, lines(&data).join(&b'\n'));
            // With a small max, the pieces of each line join back into it, numbered 1, 2, ...
            let mut got: Recs = vec![];
            for (t, cut) in feed(&mut sp(max, 0, false), &data, &sizes).0 {
                match (cut, got.last_mut()) {
                    (0 | 1, _) => got.push((t, cut)),
                    (n, Some((g, last))) if *last + 1 == n => { g.extend(t); *last = n; }
                    _ => prop_assert!(false, "bad numbering"),
                }
            }
            prop_assert!(got.iter().all(|(g, n)| (*n == 0) == (g.len() <= max) && *n != 1));
            prop_assert_eq!(got.into_iter().map(|g| g.0).collect::<Vec<_>>(), lines(&data));
        }
    }

    #[test]
    #[ignore]
    fn throughput() {
        let (mut data, mut i) = (Vec::with_capacity(64 << 20), 0u64);
        while data.len() < 64 << 20 {
            i += 1;
            let pad = "x".repeat(40 + (i % 120) as usize);
            data.extend_from_slice(format!("2024-01-01 00:00:00 INFO line {i} {pad}\n").as_bytes());
        }
        let (mut s, mut out, mut n) = (sp(512 << 10, 0, false), Vec::with_capacity(1 << 20), 0);
        let t = std::time::Instant::now();
        for _ in 0..10 {
            for chunk in data.chunks(1 << 20) {
                out.clear();
                std::hint::black_box(s.split(chunk, true, &mut out));
                std::hint::black_box(&out);
                n += out.len();
            }
        }
        let gbps = (data.len() * 10) as f64 / t.elapsed().as_secs_f64() / 1e9;
        println!(
            "{gbps:.2} GB/s single-line, {} records of ~{} bytes",
            n,
            data.len() * 10 / n
        );
    }
}
