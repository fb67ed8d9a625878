//! `processor_split_log_regex`: splits a multi-line content into logs at lines matching a
//! "line start" regex (Java stack traces: a log starts at each timestamped line, the `at …`
//! and `Caused by:` lines that follow are appended to it).
//!
//! Follows iLogtail's Go plugin (`SplitLog`):
//! - a line starts a new log when the WHOLE line matches `SplitRegex` (default `.*`);
//! - the first line always opens the first log, matching or not, so lines before the first
//!   matching line become one log of their own (they are neither dropped nor glued to the
//!   next log);
//! - a log's value excludes the `\n` that separates it from the next one; the last log
//!   keeps everything up to the end of the value (a trailing `\n` included);
//! - an empty value yields no log; without the key the log is kept only when
//!   `PreserveOthers` (then it alarms if `NoKeyError`).
//!
//! Pieces are zero-copy slices of the source value.

use super::split_log_string::Splitter;
use crate::api::prelude::*;
use crate::patterns::{self, go_pattern, Wrap};
use regex::bytes::Regex;

const NAME: &str = "processor_split_log_regex";

/// Options of `processor_split_log_regex`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Options {
    /// Content to split; empty = the first content.
    split_key: String,
    /// A line matching this (entirely) starts a new log.
    split_regex: String,
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
            split_regex: ".*".into(),
            preserve_others: false,
            no_key_error: false,
            enable_log_position_meta: false,
        }
    }
}

struct SplitLogRegex {
    /// `SplitRegex` anchored at both ends of a line.
    regex: Regex,
    splitter: Splitter,
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Processor>, DetailError> {
    Ok(Box::new(new(detail, cx)?))
}

fn new(detail: &Value, cx: &PluginContext) -> Result<SplitLogRegex, DetailError> {
    let o: Options = parse_detail(detail)?;
    // Validates and quotes the user's pattern in errors.
    patterns::compile("SplitRegex", &o.split_regex, Wrap::Plain)?;
    let regex = Regex::new(&format!(r"\A(?:{})\z", go_pattern(&o.split_regex)))
        .map_err(|e| DetailError::new("SplitRegex", format!("invalid regex: {e}")))?;
    Ok(SplitLogRegex {
        regex,
        splitter: Splitter::new(
            cx,
            (NAME, "LOG_REGEX_FIND_ALARM"),
            o.split_key,
            o.preserve_others,
            o.no_key_error,
            o.enable_log_position_meta,
        ),
    })
}

/// The `(start, end)` of each log in `v` (see the module docs).
fn split(regex: &Regex, v: &[u8], pieces: &mut Vec<(usize, usize)>) {
    let mut last_line = 0;
    let mut last_check = 0;
    for (i, _) in v.iter().enumerate().filter(|(_, &c)| c == b'\n') {
        if last_check != 0 && regex.is_match(&v[last_check..i]) {
            pieces.push((last_line, last_check - 1));
            last_line = last_check;
        }
        last_check = i + 1;
    }
    if last_check != 0 && last_check < v.len() && regex.is_match(&v[last_check..]) {
        pieces.push((last_line, last_check - 1));
        last_line = last_check;
    }
    if last_line < v.len() {
        pieces.push((last_line, v.len()));
    }
}

impl Processor for SplitLogRegex {
    fn process(&mut self, group: &mut EventGroup) {
        let regex = &self.regex;
        self.splitter
            .split_group(group, |v, pieces| split(regex, v, pieces));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LogEvent;
    use crate::plugins::processors::test_support::{built, event_at};
    use serde_json::json;

    fn processor(detail: Value) -> SplitLogRegex {
        built(new, &detail)
    }

    fn event(contents: &[(&str, &str)]) -> LogEvent {
        event_at(1_696_917_336, contents)
    }

    fn values(g: &EventGroup, key: &str) -> Vec<String> {
        g.events
            .iter()
            .map(|e| String::from_utf8(e.get(key.as_bytes()).unwrap().to_vec()).unwrap())
            .collect()
    }

    const TRACE: &str = "\
2023-10-10 13:55:36.123 ERROR [main] c.e.OrderService - order failed
java.lang.IllegalStateException: inventory unavailable
\tat com.example.OrderService.place(OrderService.java:42)
\tat com.example.Api.handle(Api.java:17)
Caused by: java.net.SocketTimeoutException: Read timed out
\tat java.net.SocketInputStream.socketRead0(Native Method)
\t... 12 more
2023-10-10 13:55:37.001 INFO  [main] c.e.OrderService - retrying
2023-10-10 13:55:38.450 WARN  [pool-1] c.e.Cache - miss rate 0.42";

    const START: &str = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} .*";

    #[test]
    fn java_stack_traces_become_one_log_each() {
        let mut p = processor(json!({"SplitKey": "content", "SplitRegex": START}));
        let mut g = EventGroup::default();
        g.events
            .push(event(&[("content", TRACE), ("path", "/app/app.log")]));
        p.process(&mut g);
        let v = values(&g, "content");
        assert_eq!(v.len(), 3);
        assert!(v[0].starts_with("2023-10-10 13:55:36.123 ERROR"));
        assert!(v[0].ends_with("\t... 12 more"), "{}", v[0]);
        assert_eq!(v[0].lines().count(), 7);
        assert!(v[0].contains("\nCaused by: java.net.SocketTimeoutException"));
        assert_eq!(
            v[1],
            "2023-10-10 13:55:37.001 INFO  [main] c.e.OrderService - retrying"
        );
        assert_eq!(
            v[2],
            "2023-10-10 13:55:38.450 WARN  [pool-1] c.e.Cache - miss rate 0.42"
        );
        // PreserveOthers defaults to false for this plugin.
        assert!(g.events.iter().all(|e| e.contents.len() == 1));
        assert!(g.events.iter().all(|e| e.time == 1_696_917_336));
    }

    #[test]
    fn pieces_are_zero_copy() {
        let mut p = processor(json!({"SplitRegex": START}));
        let mut g = EventGroup::default();
        g.events.push(event(&[("content", TRACE)]));
        let base = g.events[0].contents[0].1.as_ptr() as usize;
        p.process(&mut g);
        let second = g.events[1].contents[0].1.as_ptr() as usize;
        assert_eq!(second - base, TRACE.find("2023-10-10 13:55:37").unwrap());
    }

    #[test]
    fn lines_before_the_first_match_form_their_own_log() {
        let mut p = processor(json!({"SplitRegex": START, "PreserveOthers": true}));
        let raw = format!("\tat com.example.Tail.run(Tail.java:9)\n\t... 3 more\n{TRACE}");
        let mut g = EventGroup::default();
        g.events
            .push(event(&[("content", &raw), ("path", "/app/app.log")]));
        p.process(&mut g);
        let v = values(&g, "content");
        assert_eq!(v.len(), 4);
        assert_eq!(v[0], "\tat com.example.Tail.run(Tail.java:9)\n\t... 3 more");
        assert!(v[1].starts_with("2023-10-10 13:55:36.123 ERROR"));
        // Others preserved, split key appended last.
        let keys: Vec<&[u8]> = g.events[0]
            .contents
            .iter()
            .map(|(k, _)| k.as_ref())
            .collect();
        assert_eq!(keys, [&b"path"[..], b"content"]);
    }

    #[test]
    fn no_matching_line_keeps_the_value_whole() {
        let mut p = processor(json!({"SplitRegex": START}));
        let mut g = EventGroup::default();
        g.events.push(event(&[("content", "just\nsome\nlines")]));
        p.process(&mut g);
        assert_eq!(values(&g, "content"), ["just\nsome\nlines"]);
    }

    #[test]
    fn whole_line_must_match_and_trailing_newline_stays() {
        // `ERROR` alone matches only a line that is exactly `ERROR`.
        let mut p = processor(json!({"SplitRegex": "ERROR"}));
        let mut g = EventGroup::default();
        g.events
            .push(event(&[("content", "a\nERROR x\nERROR\nb\n")]));
        p.process(&mut g);
        assert_eq!(values(&g, "content"), ["a\nERROR x", "ERROR\nb\n"]);
    }

    #[test]
    fn default_regex_splits_every_line() {
        let mut p = processor(json!({}));
        let mut g = EventGroup::default();
        g.events.push(event(&[("content", "l1\nl2\n\nl4")]));
        p.process(&mut g);
        // `.*` matches the empty line too (iLogtail emits it as an empty log).
        assert_eq!(values(&g, "content"), ["l1", "l2", "", "l4"]);
    }

    #[test]
    fn go_classes_are_ascii_and_crlf_lines_work() {
        let mut p = processor(json!({"SplitRegex": r"\d+ .*"}));
        let mut g = EventGroup::default();
        g.events
            .push(event(&[("content", "1 a\r\n２ full-width\r\n3 c")]));
        p.process(&mut g);
        assert_eq!(values(&g, "content"), ["1 a\r\n２ full-width\r", "3 c"]);
    }

    #[test]
    fn missing_key_empty_value_and_alarm() {
        let mut p = processor(json!({"SplitKey": "content", "NoKeyError": true}));
        let mut g = EventGroup {
            events: vec![event(&[("x", "1")]), event(&[("content", "")])],
            ..EventGroup::default()
        };
        p.process(&mut g);
        assert!(
            g.events.is_empty(),
            "dropped without PreserveOthers; empty value → no log"
        );
        assert_eq!(p.splitter.warn.raised(), 1);
        let mut p = processor(json!({"SplitKey": "content", "PreserveOthers": true}));
        g.events = vec![event(&[("x", "1")])];
        p.process(&mut g);
        assert_eq!(g.events.len(), 1);
        assert_eq!(p.splitter.warn.raised(), 0);
    }

    #[test]
    fn file_offsets_advance() {
        let mut p = processor(json!({
            "SplitKey": "content", "SplitRegex": "L.*",
            "PreserveOthers": true, "EnableLogPositionMeta": true
        }));
        let mut g = EventGroup::default();
        g.events.push(event(&[
            ("__file_offset__", "100"),
            ("content", "L1\n x\nL2"),
        ]));
        p.process(&mut g);
        assert_eq!(values(&g, "__file_offset__"), ["100", "106"]);
    }

    #[test]
    fn bad_regex_names_the_field() {
        let e = build(
            &json!({"SplitRegex": "(unclosed"}),
            &PluginContext::for_check("t"),
        )
        .err()
        .unwrap();
        assert_eq!(e.field, "SplitRegex");
        assert!(e.message.contains("(unclosed"), "{}", e.message);
    }
}
