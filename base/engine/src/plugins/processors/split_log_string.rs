//! `processor_split_log_string`: splits one log into many at a separator string.
//!
//! Follows iLogtail's Go plugin: the content `SplitKey` (the first content when empty) is
//! split at every `SplitSep`; each non-empty piece becomes a log holding the other contents
//! (when `PreserveOthers`) followed by `SplitKey` = piece. Pieces are zero-copy slices of
//! the source value.

use super::parse_support::{SourceKey, WarnLimiter};
use crate::api::prelude::*;

const NAME: &str = "processor_split_log_string";

/// Options of `processor_split_log_string`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Options {
    /// Content to split; empty = the first content.
    split_key: String,
    /// Separator; empty = `\0` (as iLogtail).
    split_sep: String,
    /// Keep the other contents on every new log.
    preserve_others: bool,
    /// Alarm when `SplitKey` is missing.
    no_key_error: bool,
    /// Advance `__tag__:__file_offset__` / `__file_offset__` by each piece's offset.
    enable_log_position_meta: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            split_key: String::new(),
            split_sep: "\n".into(),
            preserve_others: true,
            no_key_error: false,
            enable_log_position_meta: false,
        }
    }
}

struct SplitLogString {
    sep: Box<[u8]>,
    splitter: Splitter,
}

/// What `processor_split_log_string` and `processor_split_log_regex` share: taking the source
/// content, the missing-key policy, and turning a value's pieces into logs.
pub(crate) struct Splitter {
    pub(crate) key: SourceKey,
    pub(crate) preserve_others: bool,
    pub(crate) no_key_error: bool,
    pub(crate) position_meta: bool,
    pub(crate) warn: WarnLimiter,
    /// Alarm type raised when the source content is missing (with `NoKeyError`).
    pub(crate) missing_alarm: &'static str,
    /// Reused: `(start, end)` of the pieces of the current value.
    pub(crate) pieces: Vec<(usize, usize)>,
}

impl Splitter {
    /// The shared part of both processors' options (`SplitKey`, `PreserveOthers`,
    /// `NoKeyError`, `EnableLogPositionMeta`); `name` and `missing_alarm` are the plugin's.
    pub(crate) fn new(
        cx: &PluginContext,
        (name, missing_alarm): (&'static str, &'static str),
        split_key: String,
        preserve_others: bool,
        no_key_error: bool,
        position_meta: bool,
    ) -> Self {
        Self {
            key: SourceKey::new(split_key),
            preserve_others,
            no_key_error,
            position_meta,
            warn: WarnLimiter::new(name, cx),
            missing_alarm,
            pieces: Vec::new(),
        }
    }

    /// Replaces every event of `group` by its pieces, as `cut` finds them in the source value
    /// (appending `(start, end)` ranges to the vector it is given, which starts empty).
    pub(crate) fn split_group(
        &mut self,
        group: &mut EventGroup,
        mut cut: impl FnMut(&[u8], &mut Vec<(usize, usize)>),
    ) {
        let events = std::mem::take(&mut group.events);
        let mut out = Vec::with_capacity(events.len());
        for mut e in events {
            let Some((key, value)) = take_source(&mut e, &self.key, self.preserve_others) else {
                if self.no_key_error {
                    let key = &self.key;
                    self.warn.warn(self.missing_alarm, || {
                        format!("can't find split key {}", key.name())
                    });
                }
                if self.preserve_others {
                    out.push(e);
                }
                continue;
            };
            self.pieces.clear();
            cut(&value, &mut self.pieces);
            emit_pieces(&mut out, e, &key, &value, &self.pieces, self.position_meta);
        }
        group.events = out;
    }
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Processor>, DetailError> {
    Ok(Box::new(new(detail, cx)?))
}

fn new(detail: &Value, cx: &PluginContext) -> Result<SplitLogString, DetailError> {
    let o: Options = parse_detail(detail)?;
    let sep = if o.split_sep.is_empty() {
        b"\0"[..].into()
    } else {
        o.split_sep.into_bytes().into()
    };
    Ok(SplitLogString {
        sep,
        splitter: Splitter::new(
            cx,
            (NAME, "PROCESSOR_SPLIT_LOG_STRING_FIND_ALARM"),
            o.split_key,
            o.preserve_others,
            o.no_key_error,
            o.enable_log_position_meta,
        ),
    })
}

/// Finds `needle` (non-empty) in `hay` from `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut at = from;
    while at + needle.len() <= hay.len() {
        let i = at
            + hay[at..=hay.len() - needle.len()]
                .iter()
                .position(|&c| c == first)?;
        if hay[i + 1..i + needle.len()] == *rest {
            return Some(i);
        }
        at = i + 1;
    }
    None
}

/// iLogtail's `ReviseFileOffset`: adds `offset` to the last `__tag__:__file_offset__` (or
/// `__file_offset__`) content when it holds an integer.
pub(crate) fn revise_file_offset(e: &mut LogEvent, offset: usize) {
    let Some((_, v)) = e.contents.iter_mut().rev().find(|(k, _)| {
        k.as_ref() == b"__tag__:__file_offset__" || k.as_ref() == b"__file_offset__"
    }) else {
        return;
    };
    let parsed = std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<i64>().ok());
    if let Some(begin) = parsed {
        *v = Bytes::from((begin + offset as i64).to_string());
    }
}

/// Prepares `e` to be the template of its pieces: stamps a zero time with the current time
/// (as iLogtail) and returns the source content, or `None` when it is missing.
fn take_source(e: &mut LogEvent, key: &SourceKey, preserve_others: bool) -> Option<(Bytes, Bytes)> {
    if e.time == 0 {
        e.time = crate::event::now().0;
        e.time_ns = None;
    }
    let idx = key.find(e);
    let source = idx.map(|i| e.contents.remove(i));
    if !preserve_others {
        e.contents.clear();
    }
    source
}

/// Appends one log per `(start, end)` of `pieces`: `template` plus `key` = slice of `value`.
fn emit_pieces(
    out: &mut Vec<LogEvent>,
    template: LogEvent,
    key: &Bytes,
    value: &Bytes,
    pieces: &[(usize, usize)],
    position_meta: bool,
) {
    let Some((&last, head)) = pieces.split_last() else {
        return;
    };
    let mut push = |mut e: LogEvent, (start, end): (usize, usize)| {
        e.contents.push((key.clone(), value.slice(start..end)));
        if position_meta {
            revise_file_offset(&mut e, start);
        }
        out.push(e);
    };
    for &p in head {
        push(template.clone(), p);
    }
    push(template, last);
}

impl Processor for SplitLogString {
    fn process(&mut self, group: &mut EventGroup) {
        let sep = &self.sep;
        self.splitter.split_group(group, |v, pieces| {
            let mut start = 0;
            loop {
                let end = find(v, sep, start).unwrap_or(v.len());
                if end > start {
                    pieces.push((start, end));
                }
                if end == v.len() {
                    break;
                }
                start = end + sep.len();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::processors::test_support::{boxed, event_at, pairs, run};
    use serde_json::json;

    fn processor(detail: Value) -> Box<dyn Processor> {
        boxed(build, &detail)
    }

    fn event(time: u32, contents: &[(&str, &str)]) -> LogEvent {
        let mut e = event_at(time, contents);
        e.time_ns = Some(7);
        e
    }

    const NGINX: &str = "192.168.1.10 - - [10/Oct/2023:13:55:36 +0800] \"GET /index.html HTTP/1.1\" 200 612 \"-\" \"curl/8.0\"";

    #[test]
    fn splits_lines_keeping_others_by_default() {
        let mut p = processor(json!({"SplitKey": "content"}));
        let raw = format!("{NGINX}\n\n{NGINX}\nlast line\n");
        let out = run(
            &mut *p,
            vec![event(
                1_696_917_336,
                &[
                    ("host", "web-1"),
                    ("content", &raw),
                    ("file", "/var/log/nginx/access.log"),
                ],
            )],
        );
        // Empty pieces (the blank line and after the final `\n`) are dropped; the split key
        // moves after the preserved contents, as in iLogtail.
        assert_eq!(
            out,
            vec![
                pairs(&[
                    ("host", "web-1"),
                    ("file", "/var/log/nginx/access.log"),
                    ("content", NGINX)
                ]),
                pairs(&[
                    ("host", "web-1"),
                    ("file", "/var/log/nginx/access.log"),
                    ("content", NGINX)
                ]),
                pairs(&[
                    ("host", "web-1"),
                    ("file", "/var/log/nginx/access.log"),
                    ("content", "last line")
                ]),
            ]
        );
    }

    #[test]
    fn pieces_are_zero_copy_and_keep_time() {
        let mut p = processor(json!({}));
        let mut e = event(1_696_917_336, &[("content", "a\nbb\nccc")]);
        let src = e.contents[0].1.clone();
        e.contents[0].1 = src.clone();
        let mut g = EventGroup::default();
        g.events.push(e);
        p.process(&mut g);
        assert_eq!(g.events.len(), 3);
        let base = src.as_ptr() as usize;
        for (e, (off, text)) in g.events.iter().zip([(0, "a"), (2, "bb"), (5, "ccc")]) {
            let v = &e.contents[0].1;
            assert_eq!(v.as_ref(), text.as_bytes());
            assert_eq!(v.as_ptr() as usize - base, off, "slice of the source value");
            assert_eq!(e.time, 1_696_917_336);
            assert_eq!(e.time_ns, Some(7));
        }
    }

    #[test]
    fn empty_split_key_means_first_content() {
        let mut p = processor(json!({"PreserveOthers": false}));
        let out = run(
            &mut *p,
            vec![event(1, &[("msg", "x|y"), ("other", "1\n2")])],
        );
        assert_eq!(out, vec![pairs(&[("msg", "x|y")])]);
    }

    #[test]
    fn multi_byte_and_default_nul_separators() {
        let mut p =
            processor(json!({"SplitKey": "content", "SplitSep": "||", "PreserveOthers": false}));
        let out = run(&mut *p, vec![event(1, &[("content", "a||b|c||||d||")])]);
        assert_eq!(
            out,
            vec![
                pairs(&[("content", "a")]),
                pairs(&[("content", "b|c")]),
                pairs(&[("content", "d")])
            ]
        );
        let mut p = processor(json!({"SplitKey": "content", "SplitSep": ""}));
        let out = run(&mut *p, vec![event(1, &[("content", "a\0b\nc")])]);
        assert_eq!(
            out,
            vec![pairs(&[("content", "a")]), pairs(&[("content", "b\nc")])]
        );
    }

    #[test]
    fn missing_key_and_empty_value() {
        let mut p = processor(json!({"SplitKey": "content", "NoKeyError": true}));
        let out = run(
            &mut *p,
            vec![event(1, &[("other", "v")]), event(1, &[("content", "")])],
        );
        // The log without the key is kept as is; the empty value yields no log.
        assert_eq!(out, vec![pairs(&[("other", "v")])]);
        let mut p = processor(json!({"SplitKey": "content", "PreserveOthers": false}));
        let out = run(&mut *p, vec![event(1, &[("other", "v")])]);
        assert!(
            out.is_empty(),
            "iLogtail drops it when others are not preserved"
        );
    }

    #[test]
    fn no_key_error_raises_rate_limited_alarm() {
        let mut p = new(
            &json!({"SplitKey": "content", "NoKeyError": true}),
            &PluginContext::for_check("t"),
        )
        .unwrap();
        let mut g = EventGroup {
            events: vec![event(1, &[("a", "b")]), event(1, &[("a", "b")])],
            ..EventGroup::default()
        };
        p.process(&mut g);
        assert_eq!(p.splitter.warn.raised(), 2);
        assert_eq!(p.splitter.warn.suppressed(), 1);
        p.splitter.no_key_error = false;
        p.process(&mut g);
        assert_eq!(p.splitter.warn.raised(), 2);
    }

    #[test]
    fn zero_time_is_stamped_with_now() {
        let mut p = processor(json!({}));
        let mut g = EventGroup::default();
        g.events.push(event(0, &[("content", "a\nb")]));
        p.process(&mut g);
        let now = crate::event::now().0;
        assert!(g
            .events
            .iter()
            .all(|e| e.time + 5 >= now && e.time_ns.is_none()));
    }

    #[test]
    fn file_offset_meta_advances_per_piece() {
        let mut p = processor(json!({"SplitKey": "content", "EnableLogPositionMeta": true}));
        let out = run(
            &mut *p,
            vec![event(
                1,
                &[
                    ("__tag__:__file_offset__", "1000"),
                    ("content", "ab\n\ncd\nef"),
                ],
            )],
        );
        let offsets: Vec<&str> = out.iter().map(|e| e[0].1.as_str()).collect();
        assert_eq!(offsets, ["1000", "1004", "1007"]);
        let mut p = processor(json!({"SplitKey": "content"}));
        let out = run(
            &mut *p,
            vec![event(
                1,
                &[("__file_offset__", "10"), ("content", "ab\ncd")],
            )],
        );
        assert_eq!(out[1][0].1, "10", "unchanged without EnableLogPositionMeta");
    }

    #[test]
    fn options_are_checked() {
        let cx = PluginContext::for_check("t");
        let e = build(&json!({"SplitSeparator": "\n"}), &cx).err().unwrap();
        assert_eq!(e.field, "SplitSeparator");
        let e = build(&json!({"PreserveOthers": "yes"}), &cx).err().unwrap();
        assert_eq!(e.field, "PreserveOthers");
    }

    #[test]
    fn find_handles_edges() {
        assert_eq!(find(b"abcabd", b"abd", 0), Some(3));
        assert_eq!(find(b"aaa", b"aa", 1), Some(1));
        assert_eq!(find(b"ab", b"abc", 0), None);
        assert_eq!(find(b"ab", b"b", 2), None);
    }
}
