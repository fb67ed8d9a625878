//! `processor_regex`: extracts fields from one content with a regex; capture group `i`
//! becomes key `Keys[i]`. Extracted values are zero-copy slices of the source value.

use super::parse_support::{preview, SourceKey, WarnLimiter};
use crate::api::prelude::*;
use crate::patterns::plan::Plan;
use crate::patterns::{compile, compile_bytes, go_pattern, splits_char, Wrap};
use regex::bytes::{CaptureLocations, Regex};

const NAME: &str = "processor_regex";

fn yes() -> bool {
    true
}

fn content() -> String {
    "content".into()
}

/// Options of `processor_regex`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// The regex; each capture group is one field.
    regex: String,
    /// Field names, one per capture group.
    keys: Vec<String>,
    /// Content to parse; `""` means the first content.
    #[serde(default = "content")]
    source_key: String,
    /// The whole value must match (otherwise a match anywhere is enough).
    #[serde(default = "yes")]
    full_match: bool,
    /// Warn when a log has no source content.
    #[serde(default)]
    no_key_error: bool,
    /// Warn when the value does not match.
    #[serde(default = "yes")]
    no_match_error: bool,
    /// Keep the source content after a successful parse.
    #[serde(default)]
    keep_source: bool,
    /// Keep the source content when the value does not match.
    #[serde(default = "yes")]
    keep_source_if_parse_error: bool,
}

struct RegexProcessor {
    re: Regex,
    locs: CaptureLocations,
    /// Byte-class variant, tried first (see `parse_support::byte_classes`).
    fast: Option<Regex>,
    /// Linear plan for log-format-shaped patterns, tried before any regex.
    plan: Option<Plan>,
    /// Capture spans of the last match (index 0: the whole match).
    spans: Vec<Option<(usize, usize)>>,
    keys: Vec<Bytes>,
    /// No key appears twice in `keys`.
    distinct_keys: bool,
    source: SourceKey,
    no_key_error: bool,
    no_match_error: bool,
    keep_source: bool,
    keep_source_if_parse_error: bool,
    warn: WarnLimiter,
}

fn new(detail: &Value, cx: &PluginContext) -> Result<RegexProcessor, DetailError> {
    let o: Options = parse_detail(detail)?;
    if o.keys.is_empty() {
        return Err(DetailError::new("Keys", "must name at least one key"));
    }
    let wrap = if o.full_match {
        Wrap::DotAllFull
    } else {
        Wrap::DotAll
    };
    let re = compile("Regex", &o.regex, wrap)?;
    let groups = re.captures_len() - 1;
    if groups != o.keys.len() {
        return Err(DetailError::new(
            "Keys",
            format!(
                "{} keys for {} capture groups in Regex (they must be equal; use (?:...) for groups that extract nothing)",
                o.keys.len(),
                groups
            ),
        ));
    }
    Ok(RegexProcessor {
        locs: re.capture_locations(),
        fast: compile_bytes(&o.regex, wrap),
        plan: Plan::new(&go_pattern(&o.regex), o.full_match),
        spans: vec![None; re.captures_len()],
        re,
        keys: o.keys.iter().map(|k| config_text(k.as_bytes())).collect(),
        distinct_keys: o.keys.len()
            == o.keys
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len(),
        source: SourceKey::new(o.source_key),
        no_key_error: o.no_key_error,
        no_match_error: o.no_match_error,
        keep_source: o.keep_source,
        keep_source_if_parse_error: o.keep_source_if_parse_error,
        warn: WarnLimiter::new(NAME, cx),
    })
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Processor>, DetailError> {
    Ok(Box::new(new(detail, cx)?))
}

impl RegexProcessor {
    /// Runs the regex, filling `self.locs`. The byte-class variant matches a superset of the
    /// exact regex's language with the same priorities, so its answer is the exact one unless
    /// a capture boundary splits a character: then the exact regex decides.
    fn captures(&mut self, value: &[u8]) -> bool {
        if let Some(plan) = &self.plan {
            if plan.find(value, &mut self.spans).is_some() {
                return true;
            }
        }
        let matched = self.regex_captures(value);
        if matched {
            for (i, s) in self.spans.iter_mut().enumerate() {
                *s = self.locs.get(i);
            }
        }
        matched
    }

    fn regex_captures(&mut self, value: &[u8]) -> bool {
        if let Some(fast) = &self.fast {
            if fast.captures_read(&mut self.locs, value).is_none() {
                return false;
            }
            let aligned = (0..self.locs.len()).all(|i| {
                self.locs
                    .get(i)
                    .is_none_or(|(s, e)| !splits_char(value, s) && !splits_char(value, e))
            });
            if aligned {
                return true;
            }
        }
        self.re.captures_read(&mut self.locs, value).is_some()
    }

    fn process_event(&mut self, e: &mut LogEvent) {
        let Some(idx) = self.source.find(e) else {
            if self.no_key_error {
                let source = &self.source;
                self.warn.warn("REGEX_FIND_ALARM", || {
                    format!("cannot find key {}", source.name())
                });
            }
            return;
        };
        // A refcount: the extracted fields are slices of this buffer.
        let value = e.contents[idx].1.clone();
        if !self.captures(&value) {
            if self.no_match_error {
                self.warn.warn("REGEX_UNMATCHED_ALARM", || {
                    format!("unmatch this log content: {}", preview(&value))
                });
            }
            if !(self.keep_source || self.keep_source_if_parse_error) {
                e.contents.remove(idx);
            }
            return;
        }
        if !self.keep_source {
            e.contents.remove(idx);
        }
        e.contents.reserve(self.keys.len());
        // With distinct keys a new field can only replace one of the contents the event had
        // before: no need to compare it with the fields added just before it.
        let before = if self.distinct_keys {
            e.contents.len()
        } else {
            usize::MAX
        };
        for (i, key) in self.keys.iter().enumerate() {
            // Groups that did not take part in the match (`(a)?`, alternations) are skipped.
            let Some(Some((start, end))) = self.spans.get(i + 1).copied() else {
                continue;
            };
            let field = value.slice(start..end);
            let old = before.min(e.contents.len());
            match e.contents[..old].iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = field,
                None => e.contents.push((key.clone(), field)),
            }
        }
    }
}

impl Processor for RegexProcessor {
    fn process(&mut self, group: &mut EventGroup) {
        for e in &mut group.events {
            self.process_event(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::processors::test_support::{built, event_at, pairs, run};
    use serde_json::json;

    const NGINX: &str =
        r#"^(\S+) - (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d+) (\d+) "([^"]*)" "([^"]*)""#;
    const NGINX_KEYS: [&str; 10] = [
        "remote_addr",
        "remote_user",
        "time_local",
        "method",
        "url",
        "protocol",
        "status",
        "body_bytes_sent",
        "http_referer",
        "http_user_agent",
    ];
    const NGINX_LINE: &str = r#"192.168.1.10 - alice [10/Oct/2023:13:55:36 +0000] "GET /api/v1/users?id=42&sort=asc HTTP/1.1" 200 1532 "https://example.com/home" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 Safari/537.36""#;

    fn proc(detail: Value) -> RegexProcessor {
        built(new, &detail)
    }

    #[test]
    fn extracted_fields_replace_existing_ones_and_repeated_keys_keep_the_last() {
        let line = "a=1 b=2";
        let mut p =
            proc(json!({"Regex": r"a=(\d) b=(\d)", "Keys": ["x", "status"], "KeepSource": true}));
        assert!(p.distinct_keys);
        let got = run(&mut p, vec![event(&[("status", "old"), ("content", line)])]);
        assert_eq!(
            got,
            vec![pairs(&[("status", "2"), ("content", line), ("x", "1")])]
        );
        let mut p = proc(json!({"Regex": r"a=(\d) b=(\d)", "Keys": ["x", "x"]}));
        assert!(!p.distinct_keys);
        let got = run(&mut p, vec![event(&[("content", line)])]);
        assert_eq!(got, vec![pairs(&[("x", "2")])]);
    }

    fn event(contents: &[(&str, &str)]) -> LogEvent {
        event_at(1_700_000_000, contents)
    }

    fn nginx() -> RegexProcessor {
        proc(json!({"SourceKey": "content", "Regex": NGINX, "Keys": NGINX_KEYS}))
    }

    #[test]
    fn nginx_combined_every_field() {
        let mut p = nginx();
        let out = run(
            &mut p,
            vec![event(&[
                ("__tag__:path", "/var/log/nginx/access.log"),
                ("content", NGINX_LINE),
            ])],
        );
        assert_eq!(
            out[0],
            pairs(&[
                ("__tag__:path", "/var/log/nginx/access.log"),
                ("remote_addr", "192.168.1.10"),
                ("remote_user", "alice"),
                ("time_local", "10/Oct/2023:13:55:36 +0000"),
                ("method", "GET"),
                ("url", "/api/v1/users?id=42&sort=asc"),
                ("protocol", "HTTP/1.1"),
                ("status", "200"),
                ("body_bytes_sent", "1532"),
                ("http_referer", "https://example.com/home"),
                (
                    "http_user_agent",
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 Safari/537.36"
                ),
            ])
        );
        assert_eq!(p.warn.raised(), 0);
    }

    #[test]
    fn values_are_slices_of_the_source_buffer() {
        let mut p = nginx();
        let src = Bytes::from(NGINX_LINE);
        let range = src.as_ptr() as usize..src.as_ptr() as usize + src.len();
        let mut e = LogEvent::new(0);
        e.contents
            .push((Bytes::from_static(b"content"), src.clone()));
        p.process_event(&mut e);
        assert_eq!(e.contents.len(), 10);
        for (_, v) in &e.contents {
            assert!(range.contains(&(v.as_ptr() as usize)), "value was copied");
        }
    }

    #[test]
    fn nginx_anonymous_user_and_empty_referer() {
        let mut p = nginx();
        let line = r#"10.0.0.5 - - [10/Oct/2023:13:55:37 +0000] "POST /login HTTP/2.0" 302 0 "" "curl/8.4.0""#;
        let out = run(&mut p, vec![event(&[("content", line)])]);
        let get = |k: &str| out[0].iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("remote_user"), "-");
        assert_eq!(get("http_referer"), "");
        assert_eq!(get("status"), "302");
        assert_eq!(get("body_bytes_sent"), "0");
        assert_eq!(get("http_user_agent"), "curl/8.4.0");
        assert!(!out[0].iter().any(|(k, _)| k == "content"));
    }

    #[test]
    fn malformed_line_keeps_source_by_default_and_warns() {
        let mut p = nginx();
        // Truncated line (no user agent) and a garbage line.
        let truncated =
            r#"192.168.1.10 - alice [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 15"#;
        let out = run(
            &mut p,
            vec![
                event(&[("content", truncated)]),
                event(&[("content", "\u{1}\u{2}garbage")]),
            ],
        );
        assert_eq!(out[0], pairs(&[("content", truncated)]));
        assert_eq!(out[1], pairs(&[("content", "\u{1}\u{2}garbage")]));
        assert_eq!(p.warn.raised(), 2, "NoMatchError defaults to true");
        assert_eq!(p.warn.suppressed(), 1, "second warning is rate-limited");
    }

    #[test]
    fn no_match_error_off_and_source_dropped_on_error() {
        let mut p = proc(json!({
            "Regex": NGINX, "Keys": NGINX_KEYS,
            "NoMatchError": false, "KeepSourceIfParseError": false
        }));
        let out = run(
            &mut p,
            vec![event(&[("content", "not an access log"), ("a", "1")])],
        );
        assert_eq!(out[0], pairs(&[("a", "1")]));
        assert_eq!(p.warn.raised(), 0);
    }

    #[test]
    fn keep_source_keeps_it_in_place() {
        let mut p = proc(json!({"Regex": NGINX, "Keys": NGINX_KEYS, "KeepSource": true}));
        let out = run(
            &mut p,
            vec![event(&[("content", NGINX_LINE), ("after", "x")])],
        );
        assert_eq!(out[0].len(), 12);
        assert_eq!(out[0][0], ("content".to_string(), NGINX_LINE.to_string()));
        assert_eq!(out[0][1], ("after".to_string(), "x".to_string()));
        assert_eq!(out[0][2].0, "remote_addr");
    }

    #[test]
    fn missing_source_key_warns_only_with_no_key_error() {
        let mut p = nginx();
        let out = run(&mut p, vec![event(&[("message", NGINX_LINE)])]);
        assert_eq!(out[0], pairs(&[("message", NGINX_LINE)]));
        assert_eq!(p.warn.raised(), 0);

        let mut p = proc(json!({"Regex": NGINX, "Keys": NGINX_KEYS, "NoKeyError": true}));
        let out = run(&mut p, vec![event(&[("message", NGINX_LINE)])]);
        assert_eq!(out[0], pairs(&[("message", NGINX_LINE)]));
        assert_eq!(p.warn.raised(), 1);
    }

    #[test]
    fn empty_source_key_parses_first_content() {
        let mut p = proc(json!({"SourceKey": "", "Regex": NGINX, "Keys": NGINX_KEYS}));
        let out = run(
            &mut p,
            vec![event(&[("msg", NGINX_LINE), ("content", "x")])],
        );
        assert_eq!(out[0][0], ("content".to_string(), "x".to_string()));
        assert_eq!(
            out[0][1],
            ("remote_addr".to_string(), "192.168.1.10".to_string())
        );
        // A log without any content is left alone.
        let out = run(&mut p, vec![LogEvent::new(0)]);
        assert!(out[0].is_empty());
    }

    #[test]
    fn full_match_versus_partial_match() {
        // Apache common log with a trailing extra field: not a full match.
        let line = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 extra"#;
        let re = r#"(\S+) \S+ (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+|-)"#;
        let keys = ["host", "user", "time", "request", "status", "size"];
        let mut full = proc(json!({"Regex": re, "Keys": keys}));
        let out = run(&mut full, vec![event(&[("content", line)])]);
        assert_eq!(out[0], pairs(&[("content", line)]));

        let mut partial = proc(json!({"Regex": re, "Keys": keys, "FullMatch": false}));
        let out = run(&mut partial, vec![event(&[("content", line)])]);
        assert_eq!(
            out[0],
            pairs(&[
                ("host", "127.0.0.1"),
                ("user", "frank"),
                ("time", "10/Oct/2000:13:55:36 -0700"),
                ("request", "GET /apache_pb.gif HTTP/1.0"),
                ("status", "200"),
                ("size", "2326"),
            ])
        );
        // The same pattern matches a clean line in full.
        let clean = &line[..line.len() - " extra".len()];
        let out = run(&mut full, vec![event(&[("content", clean)])]);
        assert_eq!(out[0][5], ("size".to_string(), "2326".to_string()));
    }

    #[test]
    fn full_match_accepts_any_alternative_that_spans_the_value() {
        let mut p = proc(json!({"Regex": "(a|ab)", "Keys": ["x"]}));
        let out = run(&mut p, vec![event(&[("content", "ab")])]);
        assert_eq!(out[0], pairs(&[("x", "ab")]));
    }

    #[test]
    fn syslog_rfc3164() {
        let re = r"^(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+) ([^\[:]+)(?:\[(\d+)\])?: (.*)$";
        let keys = ["time", "host", "program", "pid", "message"];
        let mut p = proc(json!({"Regex": re, "Keys": keys}));
        let out = run(
            &mut p,
            vec![
                event(&[(
                    "content",
                    "Oct 11 22:14:15 mymachine sshd[4721]: Accepted publickey for root from 10.0.0.1 port 52144 ssh2",
                )]),
                // No pid: the optional group does not participate, so its key is not set.
                event(&[("content", "Feb  5 01:02:03 web01 kernel: [12345.678] eth0: link up")]),
            ],
        );
        assert_eq!(
            out[0],
            pairs(&[
                ("time", "Oct 11 22:14:15"),
                ("host", "mymachine"),
                ("program", "sshd"),
                ("pid", "4721"),
                (
                    "message",
                    "Accepted publickey for root from 10.0.0.1 port 52144 ssh2"
                ),
            ])
        );
        assert_eq!(
            out[1],
            pairs(&[
                ("time", "Feb  5 01:02:03"),
                ("host", "web01"),
                ("program", "kernel"),
                ("message", "[12345.678] eth0: link up"),
            ])
        );
    }

    #[test]
    fn syslog_rfc5424() {
        let re = r"^<(\d+)>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) ?(.*)$";
        let keys = [
            "pri",
            "version",
            "timestamp",
            "hostname",
            "app",
            "procid",
            "msgid",
            "sd",
            "msg",
        ];
        let mut p = proc(json!({"Regex": re, "Keys": keys}));
        let line = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event log entry..."#;
        let out = run(&mut p, vec![event(&[("content", line)])]);
        assert_eq!(
            out[0],
            pairs(&[
                ("pri", "165"),
                ("version", "1"),
                ("timestamp", "2003-10-11T22:14:15.003Z"),
                ("hostname", "mymachine.example.com"),
                ("app", "evntslog"),
                ("procid", "-"),
                ("msgid", "ID47"),
                (
                    "sd",
                    r#"[exampleSDID@32473 iut="3" eventSource="Application"]"#
                ),
                ("msg", "An application event log entry..."),
            ])
        );
    }

    #[test]
    fn java_multiline_stack_trace_dot_matches_newline() {
        // Go's processor_regex prepends (?s): `.` spans the lines of a multiline event.
        let re = r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) \[([^\]]+)\] (\w+)\s+(\S+) - (.*)";
        let keys = ["time", "thread", "level", "logger", "message"];
        let mut p = proc(json!({"Regex": re, "Keys": keys}));
        let msg = "Request failed\njava.lang.NullPointerException: boom\n\tat com.example.Foo.bar(Foo.java:42)\n\tat com.example.Main.main(Main.java:7)";
        let line =
            format!("2023-10-10 13:55:36.123 [http-nio-8080-exec-1] ERROR com.example.Foo - {msg}");
        let out = run(&mut p, vec![event(&[("content", &line)])]);
        assert_eq!(
            out[0],
            pairs(&[
                ("time", "2023-10-10 13:55:36.123"),
                ("thread", "http-nio-8080-exec-1"),
                ("level", "ERROR"),
                ("logger", "com.example.Foo"),
                ("message", msg),
            ])
        );
    }

    #[test]
    fn word_class_is_ascii_like_go() {
        let mut p = proc(json!({"Regex": r"(\w+)(.*)", "Keys": ["word", "rest"]}));
        let out = run(&mut p, vec![event(&[("content", "user登录成功")])]);
        assert_eq!(out[0], pairs(&[("word", "user"), ("rest", "登录成功")]));
    }

    #[test]
    fn alternation_can_share_a_key() {
        // `size` is either digits or "-"; only the participating group is written.
        let mut p =
            proc(json!({"Regex": r"(\d+) (?:(\d+)|(-))", "Keys": ["status", "size", "size"]}));
        let out = run(
            &mut p,
            vec![
                event(&[("content", "200 512")]),
                event(&[("content", "304 -")]),
            ],
        );
        assert_eq!(out[0], pairs(&[("status", "200"), ("size", "512")]));
        assert_eq!(out[1], pairs(&[("status", "304"), ("size", "-")]));
    }

    #[test]
    fn extracted_key_replaces_existing_key() {
        let mut p = proc(json!({"Regex": r"(\w+): (.*)", "Keys": ["level", "content"]}));
        let out = run(
            &mut p,
            vec![event(&[
                ("level", "old"),
                ("content", "WARN: disk almost full"),
            ])],
        );
        assert_eq!(
            out[0],
            pairs(&[("level", "WARN"), ("content", "disk almost full")])
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let cx = PluginContext::for_check("t");
        let err = |d: Value| new(&d, &cx).err().expect("should fail");
        let e = err(json!({"Regex": NGINX, "Keys": ["a", "b"]}));
        assert_eq!(e.field, "Keys");
        assert!(
            e.message.contains("2 keys for 10 capture groups"),
            "{}",
            e.message
        );
        let e = err(json!({"Regex": "(a", "Keys": ["a"]}));
        assert_eq!(e.field, "Regex");
        let e = err(json!({"Regex": "(a)", "Keys": []}));
        assert_eq!(e.field, "Keys");
        let e = err(json!({"Keys": ["a"]}));
        assert!(e.message.contains("Regex"), "{e:?}");
        let e = err(json!({"Regex": "(a)", "Keys": ["a"], "Bogus": 1}));
        assert_eq!(e.field, "Bogus");
        assert!(build(&json!({"Regex": "(a)", "Keys": ["a"]}), &cx).is_ok());
    }

    #[test]
    fn byte_classes_never_change_results_on_multibyte_text() {
        // Adjacent classes: the byte-level regex would split `é`; the exact regex decides.
        let mut p = proc(json!({"Regex": r"(\S+)(\S+) ([^\]]+)\]", "Keys": ["a", "b", "c"]}));
        assert!(p.fast.is_some());
        let out = run(&mut p, vec![event(&[("content", "aé 日本]")])]);
        assert_eq!(
            out[0],
            vec![
                ("a".to_string(), "a".to_string()),
                ("b".to_string(), "é".to_string()),
                ("c".to_string(), "日本".to_string())
            ]
        );
    }
}
