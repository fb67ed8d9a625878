//! `processor_desensitize`: masks sensitive content (passwords, card numbers…) of one
//! content with a constant string or its MD5.
//!
//! `Match: "full"` replaces the whole value. `Match: "regex"` replaces, left to right and
//! without overlap, every text matching `RegexContent` that immediately follows a match of
//! `RegexBegin` — the begin text itself is kept. This is the semantics of iLogtail's native
//! (C++) desensitizer, which matches `(RegexBegin)RegexContent`; the Go plugin looks for the
//! content anywhere after the begin but splices it right after the begin, which corrupts
//! the value when they are not adjacent. MD5 is the lowercase hex digest of the replaced
//! text (of the whole value for `full`).

use crate::api::prelude::*;
use crate::patterns::{self, go_pattern, Wrap};
use md5::{Digest, Md5};
use regex::bytes::{CaptureLocations, Regex};

/// Options of `processor_desensitize`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Options {
    /// Content to mask.
    source_key: String,
    /// `const` or `md5`.
    method: String,
    /// `full` or `regex`.
    #[serde(rename = "Match")]
    match_: String,
    /// Replacement for `const`.
    replace_string: String,
    /// What precedes the sensitive text (`regex`).
    regex_begin: String,
    /// The sensitive text (`regex`).
    regex_content: String,
    /// LoongCollector's time budget per log, in milliseconds, for its backtracking regex
    /// engine (`<= 0` = 100). Accepted for compatibility and unused: the `regex` crate
    /// matches in time linear in the value's length, so there is no runaway match to stop.
    #[serde(rename = "RegexTimeoutMs")]
    _regex_timeout_ms: i64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            source_key: String::new(),
            method: "const".into(),
            match_: "full".into(),
            replace_string: String::new(),
            regex_begin: String::new(),
            regex_content: String::new(),
            _regex_timeout_ms: 100,
        }
    }
}

enum Method {
    Const(Bytes),
    Md5,
}

struct Desensitize {
    key: Bytes,
    method: Method,
    /// `(?:RegexBegin)(RegexContent)` and the index of the content group; `None` = full.
    regex: Option<(Regex, usize)>,
    locs: Option<CaptureLocations>,
    /// Reused output buffer.
    buf: Vec<u8>,
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Processor>, DetailError> {
    Ok(Box::new(new(detail, cx)?))
}

fn new(detail: &Value, _cx: &PluginContext) -> Result<Desensitize, DetailError> {
    let o: Options = parse_detail(detail)?;
    if o.source_key.is_empty() {
        return Err(DetailError::new("SourceKey", "must not be empty"));
    }
    let method = match o.method.as_str() {
        "const" if o.replace_string.is_empty() => {
            return Err(DetailError::new(
                "ReplaceString",
                "must not be empty when Method is \"const\"",
            ))
        }
        "const" => Method::Const(config_text(o.replace_string.as_bytes())),
        "md5" => Method::Md5,
        other => {
            return Err(DetailError::new(
                "Method",
                format!("`{other}` is not \"const\" or \"md5\""),
            ))
        }
    };
    let regex = match o.match_.as_str() {
        "full" => None,
        "regex" => {
            for (field, v) in [
                ("RegexBegin", &o.regex_begin),
                ("RegexContent", &o.regex_content),
            ] {
                if v.is_empty() {
                    return Err(DetailError::new(
                        field,
                        "must not be empty when Match is \"regex\"",
                    ));
                }
            }
            let begin = patterns::compile("RegexBegin", &o.regex_begin, Wrap::Plain)?;
            patterns::compile("RegexContent", &o.regex_content, Wrap::Plain)?;
            let group = begin.captures_len();
            let re = Regex::new(&format!(
                "(?:{})({})",
                go_pattern(&o.regex_begin),
                go_pattern(&o.regex_content)
            ))
            .map_err(|e| DetailError::new("RegexContent", format!("invalid regex: {e}")))?;
            Some((re, group))
        }
        other => {
            return Err(DetailError::new(
                "Match",
                format!("`{other}` is not \"full\" or \"regex\""),
            ))
        }
    };
    Ok(Desensitize {
        key: config_text(o.source_key.as_bytes()),
        method,
        locs: regex.as_ref().map(|(r, _)| r.capture_locations()),
        regex,
        buf: Vec::new(),
    })
}

fn md5_hex(data: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in Md5::digest(data) {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

impl Desensitize {
    /// The masked value, or `None` when nothing matched.
    fn mask(&mut self, v: &Bytes) -> Option<Bytes> {
        let Some((re, group)) = &self.regex else {
            return Some(match &self.method {
                Method::Const(s) => s.clone(),
                Method::Md5 => {
                    self.buf.clear();
                    md5_hex(v, &mut self.buf);
                    Bytes::copy_from_slice(&self.buf)
                }
            });
        };
        let locs = self.locs.as_mut()?;
        self.buf.clear();
        let mut copied = 0;
        let mut at = 0;
        let mut any = false;
        while at <= v.len() && re.captures_read_at(locs, v, at).is_some() {
            let (Some((m_start, m_end)), Some((start, end))) = (locs.get(0), locs.get(*group))
            else {
                break;
            };
            any = true;
            self.buf.extend_from_slice(&v[copied..start]);
            match &self.method {
                Method::Const(s) => self.buf.extend_from_slice(s),
                Method::Md5 => md5_hex(&v[start..end], &mut self.buf),
            }
            copied = end;
            at = if m_end == m_start { m_end + 1 } else { m_end };
        }
        if !any {
            return None;
        }
        self.buf.extend_from_slice(&v[copied..]);
        Some(Bytes::copy_from_slice(&self.buf))
    }
}

impl Processor for Desensitize {
    fn process(&mut self, group: &mut EventGroup) {
        for e in &mut group.events {
            let Some(idx) = e.contents.iter().position(|(k, _)| *k == self.key) else {
                continue;
            };
            let v = e.contents[idx].1.clone();
            if let Some(masked) = self.mask(&v) {
                e.contents[idx].1 = masked;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LogEvent;
    use crate::plugins::processors::test_support::{self, built, event_at, process_one};
    use serde_json::json;

    fn processor(detail: Value) -> Desensitize {
        built(new, &detail)
    }

    fn run(p: &mut Desensitize, contents: &[(&str, &str)]) -> LogEvent {
        process_one(p, event_at(1, contents))
    }

    fn get(e: &LogEvent, k: &str) -> String {
        test_support::get(e, k).unwrap()
    }

    const ACCOUNTS: &str =
        "[{'account':'1812213231432969','password':'04a23f38'}, {'account':'1812213685634','password':'123a'}]";

    #[test]
    fn full_const_and_md5() {
        let mut p = processor(json!({
            "SourceKey": "password", "Method": "const", "Match": "full", "ReplaceString": "********"
        }));
        let e = run(&mut p, &[("user", "alice"), ("password", "123abcdefg")]);
        assert_eq!(get(&e, "password"), "********");
        assert_eq!(get(&e, "user"), "alice");
        let mut p = processor(json!({"SourceKey": "password", "Method": "md5"}));
        let e = run(&mut p, &[("password", "123abcdefg")]);
        // md5("123abcdefg")
        assert_eq!(get(&e, "password"), "6ff38cf4d47fe8855c7ad789a0e2d38e");
    }

    #[test]
    fn regex_const_masks_every_password() {
        let mut p = processor(json!({
            "SourceKey": "content", "Method": "const", "Match": "regex",
            "ReplaceString": "********", "RegexBegin": "'password':'", "RegexContent": "[^']*"
        }));
        let e = run(&mut p, &[("content", ACCOUNTS)]);
        assert_eq!(
            get(&e, "content"),
            "[{'account':'1812213231432969','password':'********'}, {'account':'1812213685634','password':'********'}]"
        );
    }

    #[test]
    fn regex_md5_of_each_match() {
        let mut p = processor(json!({
            "SourceKey": "content", "Method": "md5", "Match": "regex",
            "RegexBegin": "'password':'", "RegexContent": "[^']*"
        }));
        let e = run(&mut p, &[("content", ACCOUNTS)]);
        // iLogtail doc example 2: md5("04a23f38") and md5("123a")
        assert_eq!(
            get(&e, "content"),
            "[{'account':'1812213231432969','password':'9c525f463ba1c89d6badcd78b2b7bd79'}, {'account':'1812213685634','password':'1552c03e78d38d5005d4ce7b8018addf'}]"
        );
    }

    #[test]
    fn credit_cards_keep_the_last_four_digits() {
        let mut p = processor(json!({
            "SourceKey": "msg", "Method": "const", "Match": "regex", "ReplaceString": "****-****-****-",
            "RegexBegin": r"card(?:_no)?[=:]\s*", "RegexContent": r"\d{4}[- ]?\d{4}[- ]?\d{4}[- ]?"
        }));
        let e = run(&mut p, &[(
            "msg",
            "2023-10-10 13:55:36 INFO payment ok card=4111-1111-1111-1111 amount=12.00 card_no: 5500 0000 0000 0004 user=bob",
        )]);
        assert_eq!(
            get(&e, "msg"),
            "2023-10-10 13:55:36 INFO payment ok card=****-****-****-1111 amount=12.00 card_no: ****-****-****-0004 user=bob"
        );
    }

    #[test]
    fn content_must_follow_begin_immediately() {
        let mut p = processor(json!({
            "SourceKey": "content", "Match": "regex", "ReplaceString": "***",
            "RegexBegin": "password=", "RegexContent": r"\w+"
        }));
        // The first `password=` is followed by a space: not masked, nor is text further on.
        let e = run(
            &mut p,
            &[(
                "content",
                "password= (empty) user=x password=s3cr3t, token=abc",
            )],
        );
        assert_eq!(
            get(&e, "content"),
            "password= (empty) user=x password=***, token=abc"
        );
        // No match: the value is left as is (same buffer).
        let mut e = LogEvent::new(1);
        let v = Bytes::from_static(b"nothing sensitive here");
        e.contents.push((Bytes::from_static(b"content"), v.clone()));
        let mut g = EventGroup::default();
        g.events.push(e);
        p.process(&mut g);
        assert_eq!(g.events[0].contents[0].1.as_ptr(), v.as_ptr());
        // Go classes are ASCII: `\w` stops before non-ASCII letters.
        let e = run(&mut p, &[("content", "password=abcé")]);
        assert_eq!(get(&e, "content"), "password=***é");
    }

    #[test]
    fn groups_in_begin_do_not_shift_the_content() {
        let mut p = processor(json!({
            "SourceKey": "content", "Match": "regex", "Method": "md5",
            "RegexBegin": "(pass|pwd)(word)?:\\s*", "RegexContent": "(\\S+)"
        }));
        let e = run(&mut p, &[("content", "pwd: 123a password:04a23f38")]);
        assert_eq!(
            get(&e, "content"),
            "pwd: 1552c03e78d38d5005d4ce7b8018addf password:9c525f463ba1c89d6badcd78b2b7bd79"
        );
    }

    #[test]
    fn empty_matches_do_not_loop() {
        let mut p = processor(json!({
            "SourceKey": "content", "Match": "regex", "ReplaceString": "#",
            "RegexBegin": "x?", "RegexContent": "y*"
        }));
        let e = run(&mut p, &[("content", "ab")]);
        assert_eq!(get(&e, "content"), "#a#b#");
    }

    #[test]
    fn missing_key_is_ignored() {
        let mut p = processor(json!({"SourceKey": "password", "ReplaceString": "*"}));
        let e = run(&mut p, &[("user", "alice")]);
        assert_eq!(get(&e, "user"), "alice");
    }

    #[test]
    fn options_are_checked() {
        let cx = PluginContext::for_check("t");
        let field = |d: Value| build(&d, &cx).err().unwrap().field;
        assert_eq!(field(json!({"Method": "md5"})), "SourceKey");
        assert_eq!(field(json!({"SourceKey": "a"})), "ReplaceString");
        assert_eq!(field(json!({"SourceKey": "a", "Method": "sha1"})), "Method");
        assert_eq!(
            field(json!({"SourceKey": "a", "Method": "md5", "Match": "all"})),
            "Match"
        );
        assert_eq!(
            field(
                json!({"SourceKey": "a", "Method": "md5", "Match": "regex", "RegexContent": "x"})
            ),
            "RegexBegin"
        );
        assert_eq!(
            field(json!({"SourceKey": "a", "Method": "md5", "Match": "regex", "RegexBegin": "x"})),
            "RegexContent"
        );
        assert_eq!(
            field(
                json!({"SourceKey": "a", "Method": "md5", "Match": "regex", "RegexBegin": "(", "RegexContent": "x"})
            ),
            "RegexBegin"
        );
        assert_eq!(
            field(
                json!({"SourceKey": "a", "Method": "md5", "Match": "regex", "RegexBegin": "x", "RegexContent": "[z"})
            ),
            "RegexContent"
        );
        assert_eq!(
            field(json!({"SourceKey": "a", "ReplaceAll": true})),
            "ReplaceAll"
        );
        assert_eq!(
            field(json!({"SourceKey": "a", "Method": "md5", "RegexTimeoutMs": "50"})),
            "RegexTimeoutMs"
        );
    }

    #[test]
    fn regex_timeout_ms_is_accepted() {
        // Current LoongCollector's option (an int, <= 0 = 100 ms); matching is linear here.
        for ms in [50, 0, -1, 100_000] {
            let d = json!({"SourceKey": "a", "Method": "md5", "Match": "regex",
                           "RegexBegin": "A", "RegexContent": "(a+)+b", "RegexTimeoutMs": ms});
            assert!(build(&d, &PluginContext::for_check("t")).is_ok(), "{ms}");
        }
        // Go's catastrophic-backtracking case: no match, quickly, the value unchanged.
        let mut p = processor(
            json!({"SourceKey": "content", "ReplaceString": "X", "Match": "regex",
                                     "RegexBegin": "A", "RegexContent": "(a+)+b", "RegexTimeoutMs": 50}),
        );
        let value = format!("A{}c", "a".repeat(100_000));
        let e = run(&mut p, &[("content", &value)]);
        assert_eq!(get(&e, "content"), value);
    }
}
